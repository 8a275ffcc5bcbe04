/*-------------------------------------------------------------------------
 *
 * pg_heroku.h
 *		Declarations shared by the extension's server-side files.  Includes
 *		server headers, so it must never meet json-c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_HEROKU_H
#define PG_HEROKU_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"

#include "heroku_resolver.h"
#include "hr_internal.h"
#include "pg_compat.h"

/* A resolution copied into palloc'd memory of the caller's context. */
typedef struct HrResolved
{
	char	   *conninfo;		/* keyword='value' ... (secret) */
	char	   *url;			/* postgres://... (secret) */
	char	   *config_var;		/* the name actually used */
	int			nparams;
	char	  **keywords;
	char	  **values;
} HrResolved;

/* pg_backend.c: used by every server-side file; calls only the core */
extern void hr_pg_backend_init(void);
extern void hr_pg_settings(hr_settings *s);
pg_noreturn extern void hr_pg_report(int elevel, const hr_error *err);
extern char *hr_pg_text_arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern char *hr_pg_name_arg(FunctionCallInfo fcinfo, int argno, const char *name);
extern hr_http *hr_pg_http(void);
extern bool hr_allow_local_hosts;

/* pg_resolve.c */
/*
 * Resolve app's config var.  fresh = true (the self-healing paths) asks
 * the API unless a fresh call did in the same statement, and stores what
 * it gets; false may be answered from the cache (heroku.cache_ttl).
 */
extern HrResolved *hr_pg_resolve(const char *app, const char *config_var,
								 bool fresh);
/* pg_cache.c, pg_cache_resolve.c */
extern void hr_cache_init(void);
extern char *hr_cache_resolve(const hr_settings *s, const char *app,
							  const char *config_var, bool fresh,
							  char **used_var);
extern bool hr_cache_is_shared(void);
extern void hr_cache_set_worker_state(const char *state, bool ran);
extern bool hr_cache_share_fresh_failures;
extern TimestampTz hr_cache_fresh_after;

/* pg_heal.c: healing on failure (the backends' side) */
extern bool hr_heal;
extern void hr_heal_init(void);
extern void hr_heal_note_served(const char *url);

/* pg_heal_queue.c: the servers queued for healing, and the worker's side */
extern int	hr_heal_worker_round(void);

/* pg_extobj.c: the extension's own functions, by OID, for the worker */
extern Oid	hr_extension_schema(const char *extname);
extern Oid	hr_ext_function(const char *fname, int nargs, const Oid *argtypes);
extern void hr_pin_search_path(void);

/* pg_worker.c */
extern void hr_worker_init(void);

/* pg_feed.c: the release feed, run by the worker */
extern int	hr_watch_interval_ms;
extern void hr_feed_init(void);
extern void hr_feed_round(void);

/* pg_cache_revalidate.c: heroku_resolver_refresh() and the feed */
extern int	hr_cache_revalidate(const char *app, const char *alias,
								const char *config_var, int *failed);

#endif							/* PG_HEROKU_H */
