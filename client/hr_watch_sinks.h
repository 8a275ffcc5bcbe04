/*-------------------------------------------------------------------------
 *
 * hr_watch_sinks.h
 *		heroku-pg-resolve watch: the sinks beside the service file and the
 *		clusters.  --env-file (hr_watch_envfile.c): NAME_URL= lines for
 *		systemd's EnvironmentFile= and dotenv.  --on-change
 *		(hr_watch_onchange.c): a command run after a real change, one at a
 *		time, coalesced, timed out, retried.  --metrics-listen
 *		(hr_watch_metrics.c): Prometheus counters and gauges on a listener
 *		of their own.  Every function is a no-op when its sink is off.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_SINKS_H
#define HR_WATCH_SINKS_H

#include "hr_watch_base.h"

/* exit status: a metrics port that cannot be listened on (as --listen) */
#define HR_WATCH_EX_METRICS HR_WATCH_EX_OSERR
/* default of --on-change-timeout */
#define HR_WATCH_ON_CHANGE_TIMEOUT_MS 30000L

/* hr_watch_envfile.c */
/* the env file's variable of a service ("app-db" -> "APP_DB_URL"), or 0 */
extern int	hr_watch_env_name(const char *service, char *dst, size_t dstlen);
/* options: 0, or the usage exit status after a message */
extern int	hr_watch_env_check(hr_watch *w);
/* at start: the URLs the env file already holds become the entries' */
extern void hr_watch_env_seed(hr_watch *w);
/* a URL made safe for the file: only URL characters, none a quote */
extern char *hr_watch_env_safe_url(const char *url);

/*
 * After app's service entries were written with the URLs fresh[k] (per
 * entry; NULL for other apps' entries): write the env file, then commit
 * the URLs and start --on-change for the services whose URL changed.
 * Returns 0, or the exit status of a failure (err set); on failure nothing
 * is committed, so the retry of the check sees the same change again.
 */
extern int	hr_watch_sinks_apply(hr_watch *w, int app, char **fresh, hr_error *err);

/* hr_watch_onchange.c */
extern int	hr_watch_onchange_start(hr_watch *w);
extern void hr_watch_onchange_stop(hr_watch *w);
/* names changed: run the command (now, or once after the run in progress) */
extern void hr_watch_onchange_notify(hr_watch *w, const char *names);

/* hr_watch_metrics.c: counters (label is a fixed word) and time gauges */
typedef enum hr_metric
{
	HR_M_WEBHOOK,				/* label: result */
	HR_M_API_REQUEST,			/* label: HTTP status, or "error" */
	HR_M_FEED_LISTING,			/* label: "ok" or "error" */
	HR_M_SINK_WRITE,			/* label: sink */
	HR_M_SINK_FAILURE,			/* label: sink */
	HR_M_ON_CHANGE,				/* label: result */
	HR_M_COUNTERS
} hr_metric;

typedef enum hr_metric_time
{
	HR_MT_LAST_CHECK,			/* last successful check of an app */
	HR_MT_LAST_CHANGE,			/* last real change of a service's URL */
	HR_MT_GAUGES
} hr_metric_time;

extern int	hr_watch_metrics_init(hr_watch *w);
extern int	hr_watch_metrics_start(hr_watch *w, char *why, size_t whylen);
extern void hr_watch_metrics_stop(hr_watch *w);
extern void hr_watch_metric(hr_watch *w, hr_metric m, const char *label);
extern void hr_watch_metric_status(hr_watch *w, long http_status);
extern void hr_watch_metric_now(hr_watch *w, hr_metric_time g);

#endif							/* HR_WATCH_SINKS_H */
