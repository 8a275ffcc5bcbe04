/*-------------------------------------------------------------------------
 *
 * hr_watch.h
 *		heroku-pg-resolve watch: keep service-file entries and clusters in
 *		step with Heroku config vars, told by webhooks (hr_watch_http.c) or
 *		the release feed (hr_watch_feed.c).  The mode's entry point, its
 *		loop (hr_watch.c) and its webhook receiver; the shared state is in
 *		hr_watch_base.h, the options in hr_watch_opts.h, the clusters in
 *		hr_watch_db.h.
 *
 * The files call downwards only: hr_watch_main.c (start and stop) calls
 * hr_watch_http.c (with its guard, hr_watch_guard.c), which calls the
 * loop in hr_watch.c; the loop calls
 * hr_watch_opts.c and hr_watch_db.c; all of them call hr_watch_base.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_H
#define HR_WATCH_H

#include "hr_watch_base.h"

/* hr_watch_main.c */
extern int	hr_watch_main(int argc, char **argv);

/* hr_watch.c */
extern int	hr_watch_check_app(hr_watch *w, int i, int initial);
extern int	hr_watch_poll_feed(hr_watch *w, int initial);
extern void hr_watch_run(hr_watch *w);
extern int	hr_watch_match_app(hr_watch *w, const char *id, const char *name);
extern int	hr_watch_apply(hr_watch *w, int app, const char *what, long wait_ms,
						   char *why, size_t whylen);
extern char *hr_watch_health(hr_watch *w);

/* hr_watch_http.c: the webhook receiver */
extern int	hr_watch_http_start(hr_watch *w, char *why, size_t whylen);
extern void hr_watch_http_stop(hr_watch *w);

#endif							/* HR_WATCH_H */
