/*-------------------------------------------------------------------------
 *
 * hr_watch_main.c
 *		heroku-pg-resolve watch: start-up and shut-down.  The order at
 *		start: options and secrets (hr_watch_opts.c), the webhook listener,
 *		the feed's first look, a first check of every app (which writes the
 *		service entries, and ends the watcher with the other modes' exit
 *		status when retrying cannot help), the cluster threads, then the
 *		loop (hr_watch.c).  SIGTERM or SIGINT ends the loop once the check
 *		in progress, and so the write in progress, is over; SIGHUP reads
 *		the secrets again.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sysexits.h>

#include "hr_watch.h"
#include "hr_watch_db.h"
#include "hr_watch_feed.h"
#include "hr_watch_opts.h"
#include "hr_watch_sinks.h"
#include "hr_watch_pgbouncer.h"
#include "hr_watch_tls.h"

/* The interrupt callback of API requests: give up when stopping. */
static int
interrupted(void *arg)
{
	return ((hr_watch *) arg)->stop;
}

/* SIGTERM and SIGINT stop the loop, SIGHUP reloads the secrets. */
static void *
signal_thread(void *arg)
{
	hr_watch   *w = arg;
	sigset_t	set;
	int			sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;)
	{
		if (sigwait(&set, &sig) != 0)
			continue;
		pthread_mutex_lock(&w->mu);
		if (sig == SIGHUP)
			w->hup = 1;
		else
			w->stop = 1;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->mu);
		if (sig != SIGHUP)
			break;
	}
	return NULL;
}

/* Signals to the signal thread, a condition on the monotonic clock. */
static int
setup_threads(hr_watch *w)
{
	pthread_condattr_t ca;
	pthread_t	th;
	sigset_t	set;

	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* every thread made from now on inherits the mask */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&th, NULL, signal_thread, w) != 0)
		return -1;
	pthread_detach(th);
	return 0;
}

/* Stop what runs and free everything; the exit status passes through. */
static int
finish(hr_watch *w, int status)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	hr_watch_http_stop(w);
	hr_watch_metrics_stop(w);
	hr_watch_onchange_stop(w);
	hr_watch_dbs_stop(w);
	hr_wpgb_stop(w);
	hr_wfeed_free(w->feed);
	hr_http_free(w->api);
	if (status == 0)
		hr_watch_log(w, "stopped");
	hr_watch_free_config(w);
	if (w->use_syslog)
		closelog();
	return status;
}

/* The hint for a first check that failed for good. */
static const char *
start_hint(int status)
{
	switch (status)
	{
		case EX_NOINPUT:
			return "Check the app name (heroku apps) and its config vars (heroku config -a APP).";
		case EX_DATAERR:
			return "Name a config var that holds a Heroku Postgres URL, such as DATABASE_URL.";
		case EX_CANTCREAT:
			return "Choose another file (--service-file, PGSERVICEFILE, --env-file) or fix its directory's permissions.";
		case EX_NOPERM:
			return "Check the token: \"heroku authorizations:create\" makes one that does not expire.";
		case EX_CONFIG:
			return "Check --api-url or HEROKU_API_URL.";
		default:
			return "See \"heroku-pg-resolve watch --help\".";
	}
}

int
hr_watch_main(int argc, char **argv)
{
	hr_watch	w;
	hr_error	err;
	char		why[300];
	int			rc;
	int			i;

	memset(&w, 0, sizeof(w));
	if (setup_threads(&w) != 0)
	{
		hr_cli_fail("The system is short of resources; retry later.", "could not start a thread: %s", strerror(errno));
		return HR_WATCH_EX_OSERR;
	}
	rc = hr_watch_configure(&w, argc, argv);
	if (rc >= 0)
	{
		hr_watch_free_config(&w);
		return rc;
	}
	if (w.use_syslog)
		openlog(HR_WATCH_PROG, LOG_PID, LOG_DAEMON);
	w.s.interrupt = interrupted;
	w.s.interrupt_arg = &w;
	memset(&err, 0, sizeof(err));
	if (hr_global_init(&err) != HR_OK)
	{
		hr_cli_fail("The system is short of resources; retry later.", "%s", err.message);
		return finish(&w, EX_SOFTWARE);
	}
	w.api = hr_http_new();
	w.feed = hr_wfeed_new(w.feed_page);
	if (w.api == NULL || w.feed == NULL)
	{
		hr_cli_fail("The system is short of memory; retry later.", "out of memory");
		return finish(&w, EX_SOFTWARE);
	}
	if (w.listen && (rc = hr_watch_http_start(&w, why, sizeof(why))) != 0)
	{
		hr_cli_fail("Choose another address or port, or stop what uses it.",
					  "could not listen on %s: %s", w.listen, why);
		return finish(&w, rc);
	}

	/* a client certificate near its end: said now, then daily */
	if (hr_watch_tls_any(&w))
		hr_watch_tls_expiry(&w);

	/* a PgBouncer that would send the passwords without TLS: no start */
	if ((rc = hr_wpgb_check_start(&w)) != 0)
		return finish(&w, rc);

	/* the sinks beside the service file: metrics listener, on-change thread */
	if (hr_watch_metrics_init(&w) != 0 || hr_watch_onchange_start(&w) != 0)
	{
		hr_cli_fail("The system is short of resources; retry later.", "could not start the on-change thread");
		return finish(&w, HR_WATCH_EX_OSERR);
	}
	if ((rc = hr_watch_metrics_start(&w, why, sizeof(why))) != 0)
	{
		hr_cli_fail("Choose another address or port for --metrics-listen, or stop what uses it.",
					"could not listen on %s for metrics: %s", w.metrics_listen, why);
		return finish(&w, rc);
	}
	hr_watch_env_seed(&w);

	/* the feed's first look comes first: a change after it is seen */
	if (w.interval_ms > 0 && (rc = hr_watch_poll_feed(&w, 1)) != 0)
		return finish(&w, rc);
	for (i = 0; i < w.napps && !w.stop; i++)
		if ((rc = hr_watch_check_app(&w, i, 1)) != 0)
		{
			hr_cli_fail(start_hint(rc), "app %s: %s", w.apps[i].ident, w.apps[i].last_error);
			return finish(&w, rc);
		}
	if ((rc = hr_wpgb_start(&w)) != 0)
		return finish(&w, rc);
	if (hr_watch_dbs_start(&w) != 0)
	{
		hr_cli_fail("The system is short of resources; retry later.", "could not start the cluster threads");
		return finish(&w, HR_WATCH_EX_OSERR);
	}
	if (w.interval_ms > 0)
		snprintf(why, sizeof(why), "every %.1f s", w.interval_ms / 1000.0);
	else
		snprintf(why, sizeof(why), "off");
	hr_watch_log(&w, "watching %d app%s (%d service entr%s), %d cluster%s; feed %s; webhooks %s%s",
				 w.napps, w.napps == 1 ? "" : "s", w.nentries, w.nentries == 1 ? "y" : "ies",
				 w.ndbs, w.ndbs == 1 ? "" : "s", why,
				 w.listen ? "on " : "off", w.listen ? w.listen : "");
	hr_watch_run(&w);
	return finish(&w, 0);
}
