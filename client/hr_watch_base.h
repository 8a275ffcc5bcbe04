/*-------------------------------------------------------------------------
 *
 * hr_watch_base.h
 *		heroku-pg-resolve watch: the state shared by the hr_watch*.c files of
 *		the command (struct hr_watch, its apps and service entries), its
 *		limits, and the small utilities of hr_watch_base.c that every part
 *		calls.  It includes no other header of the watcher: the other parts
 *		build on it, and it on none of them.  None of this is in
 *		libheroku_resolver.
 *
 * Threads: the main thread runs the loop (hr_watch.c) and makes every API
 * request; one thread per --db cluster notifies it (hr_watch_db.c);
 * libmicrohttpd runs one thread per webhook connection (hr_watch_http.c);
 * a signal thread turns SIGTERM/SIGINT/SIGHUP into flags.  Everything
 * that changes after start is guarded by hr_watch.mu, and every change is
 * announced on hr_watch.cond.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_BASE_H
#define HR_WATCH_BASE_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "heroku_resolver.h"

#define HR_WATCH_PROG "heroku-pg-resolve"

/* an exit status beyond those of the other modes: cannot listen, no thread */
#define HR_WATCH_EX_OSERR 71

/* the same app is asked again at most this often, whatever arrives */
#define HR_WATCH_MIN_RECHECK_MS 1000
/* a failed check or notification is retried after 1 s, doubling up to this */
#define HR_WATCH_MAX_BACKOFF_MS 60000
/* how long a webhook waits for its change to be applied before a 503 */
#define HR_WATCH_APPLY_WAIT_MS 8000
/* the webhook receiver's connections at once, and per client address */
#define HR_WATCH_MAX_CONNECTIONS 64
#define HR_WATCH_DEFAULT_PER_ADDRESS 8
/* a webhook request must be whole (headers and body) within this */
#define HR_WATCH_DEFAULT_REQUEST_TIMEOUT_MS 10000L

/* --service NAME=APP[:CONFIG_VAR]: one section of the service file */
typedef struct hr_watch_entry
{
	char	   *service;		/* section name */
	char	   *config_var;		/* DATABASE_URL unless given */
	int			app;			/* index into hr_watch.apps */
	char	   *url;			/* the URL every sink holds (secret); NULL: not yet */
	/* --service-option (hr_watch_tls.c): sslcert, sslkey, sslrootcert, sslmode */
	const char *tls[4];			/* in argv; NULL: not given */
	time_t		cert_not_after; /* of tls[0]; 0: none */
} hr_watch_entry;

/* One app being watched, by the name or id it was given as. */
typedef struct hr_watch_app
{
	char	   *ident;			/* as given on the command line */
	char		id[40];			/* learned from the feed or a webhook */
	char		name[40];
	char	   *etag;			/* of the config vars last applied */
	int			nentries;		/* service entries of this app */

	/* checks: tickets from hr_watch.seq */
	unsigned long want;			/* newest request */
	unsigned long started;		/* requests up to this are being checked */
	unsigned long done;			/* requests up to this have been checked */
	int			last_ok;		/* outcome of the newest finished check */
	char		last_error[300];	/* why it failed */
	time_t		checked_at;		/* wall clock of the newest good check */
	double		last_start;		/* monotonic seconds; 0 = never */
	double		retry_at;		/* after a failure; 0 = none due */
	long		backoff_ms;
	const char *trigger;		/* what asked: "webhook", "feed", "retry" */
	double		trigger_at;		/* when it asked */
	unsigned long gen;			/* config var changes handed to clusters */
} hr_watch_app;

typedef struct hr_watch_dbs hr_watch_dbs;
typedef struct hr_watch_http hr_watch_http;
typedef struct hr_wfeed hr_wfeed;
typedef struct hr_watch_onchange hr_watch_onchange;
typedef struct hr_watch_metrics hr_watch_metrics;
typedef struct hr_wpgb hr_wpgb;
struct json_object;

typedef struct hr_watch
{
	/* configuration, fixed once running */
	hr_settings s;
	char		user_agent[64];
	char		api_host[256];
	char	   *service_file;
	hr_watch_entry *entries;
	int			nentries;
	hr_watch_app *apps;
	int			napps;
	const char **dbs_conninfo;
	int			ndbs;
	long		interval_ms;	/* 0: no feed */
	long		feed_wait_ms;	/* until the next look: the interval, or a 429's Retry-After */
	int			feed_page;		/* Range max= of GET /apps */
	const char *listen;			/* HOST:PORT or NULL */
	const char *secret_file;
	const char *auth_file;
	int			per_address;	/* --max-connections-per-address */
	long		request_timeout_ms; /* --request-timeout */
	const char *token_settings_file;	/* --api-key-file, for messages */
	int			use_syslog;
	/* the env file, on-change and metrics sinks (hr_watch_sinks.h) */
	const char *env_file;
	const char *on_change;
	long		on_change_timeout_ms;
	const char *metrics_listen;
	/* --service-option NAME:KEY=VALUE as given (hr_watch_tls.c) */
	const char **service_opts;
	int			nservice_opts;
	double		tls_next_log;	/* monotonic: the next daily expiry look */

	/* secrets, read at start and again on SIGHUP (under mu) */
	char	   *token;
	char	   *secret;
	char	   *authorization;	/* NULL: not required */

	/* state, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned long seq;
	volatile int stop;
	int			hup;
	time_t		last_feed;		/* wall clock; 0 = never */
	int			last_feed_ok;
	time_t		last_event;
	char		last_event_app[40];
	char		last_event_what[24];

	/* parts */
	hr_watch_dbs *dbs;
	hr_watch_http *http;
	hr_wfeed    *feed;
	hr_wpgb    *pgb;			/* --pgbouncer (hr_watch_pgbouncer.c) */
	hr_http    *api;
	hr_watch_onchange *onchange;
	hr_watch_metrics *metrics;
} hr_watch;

/* hr_watch_base.c: the clock, the log, the wait; hr_cli_fail prints
 * "heroku-pg-resolve: error: ..." then "hint: ..." for every mode */
extern double hr_watch_now(void);
extern void hr_watch_log(hr_watch *w, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
extern void hr_watch_wait(hr_watch *w, double until);
extern int	hr_watch_exit_code(hr_code code);
extern void hr_cli_fail(const char *hint, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* hr_watch_base.c: HOST:PORT ("[v6]:port" too) resolved for a listener */
struct addrinfo;
extern struct addrinfo *hr_watch_listen_address(const char *listen, char *why,
												size_t whylen);

#endif							/* HR_WATCH_BASE_H */
