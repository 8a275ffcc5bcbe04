/*-------------------------------------------------------------------------
 *
 * hr_watch_pgbouncer.h
 *		heroku-pg-resolve watch: the --pgbouncer sink (hr_watch_pgbouncer.c).
 *		A [databases] file for PgBouncer's %include, one line per
 *		--service entry, and, with --pgbouncer-admin, the admin console
 *		commands that make PgBouncer's new server logins use it at once.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_PGBOUNCER_H
#define HR_WATCH_PGBOUNCER_H

#include "hr_watch_base.h"

struct json_object;

/* options: 0, or the exit status (the message printed) */
extern int	hr_wpgb_configure(hr_watch *w, const char *file, const char *admin);

/* before anything is written: 0, or EX_CONFIG when server_tls_sslmode is weak */
extern int	hr_wpgb_check_start(hr_watch *w);

/* entry k's new connection options (from write_entries); then one kick */
extern void hr_wpgb_set(hr_watch *w, int k, int n, char *const *keywords,
						char *const *values);
extern void hr_wpgb_kick(hr_watch *w);

/* after the first checks: the first write (0, or EX_CANTCREAT), then the thread */
extern int	hr_wpgb_start(hr_watch *w);
extern void hr_wpgb_stop(hr_watch *w);

/* /healthz: "sinks": {"pgbouncer": {...}}; clears *ok when failing; mu held */
extern void hr_wpgb_health(hr_watch *w, struct json_object *root, int *ok);

#endif							/* HR_WATCH_PGBOUNCER_H */
