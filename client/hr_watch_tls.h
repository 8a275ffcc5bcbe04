/*-------------------------------------------------------------------------
 *
 * hr_watch_tls.h
 *		heroku-pg-resolve watch --service-option NAME:KEY=VALUE: mutual TLS
 *		files (and a stronger sslmode) for one service entry, written into
 *		its service-file section and its env-file URL; the client
 *		certificate's expiry (a daily log line and a gauge); and, for
 *		--pgbouncer, the comparison with PgBouncer's global server_tls_*
 *		settings (hr_watch_tls.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_TLS_H
#define HR_WATCH_TLS_H

#include <libpq-fe.h>

#include "hr_internal.h"
#include "hr_watch_base.h"

/* a client certificate this close to its end is logged daily */
#define HR_WATCH_CERT_WARN_DAYS 30

/* after the other options: 0, or the exit status (78) after a message */
extern int	hr_watch_tls_configure(hr_watch *w, const char *pgbouncer,
								   const char *pgbouncer_admin);
/* 1 when some service has --service-option files */
extern int	hr_watch_tls_any(hr_watch *w);
/* entry k's sslmode floor: --min-sslmode, its sslmode=, verify-ca with a root */
extern hr_sslmode hr_watch_tls_min_sslmode(hr_watch *w, int k);
/* add entry k's files to its resolution (pairs, conninfo, URL) */
extern hr_code hr_watch_tls_add(hr_watch *w, int k, hr_result *res, hr_error *err);
/* at start and then daily (main thread, mu not held): the expiry lines */
extern void hr_watch_tls_expiry(hr_watch *w);
extern double hr_watch_tls_due(hr_watch *w);
/* the expiry gauge of --metrics-listen */
extern void hr_watch_tls_metrics(hr_watch *w, hr_buf *b);

/*
 * SHOW CONFIG of a PgBouncer: 1 when server_tls_sslmode is require or
 * stronger and the server_tls_* files are the services'; 0 when the
 * sslmode is weak, 2 when a service's files differ (why says which).
 */
extern int	hr_watch_tls_pgb_check(hr_watch *w, PGresult *config, char *why,
								   size_t whylen);

#endif							/* HR_WATCH_TLS_H */
