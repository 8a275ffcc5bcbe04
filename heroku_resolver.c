/*-------------------------------------------------------------------------
 *
 * heroku_resolver.c
 *		SQL-facing entry points of the heroku_resolver extension.
 *
 * heroku_dblink_url() and heroku_database_url() ask the Heroku Platform
 * API for an app's config var at call time (through a cache of at most
 * heroku.cache_ttl; src/pg_cache.c), so a rotated password or a
 * failed-over host is picked up, and always with TLS.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "src/pg_heroku.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	hr_pg_backend_init();
	hr_cache_init();
	hr_heal_init();
	hr_feed_init();
	hr_worker_init();
	MarkGUCPrefixReserved("heroku");
}

PG_FUNCTION_INFO_V1(heroku_dblink_url);

/* heroku_dblink_url(app, config_var): a libpq keyword/value conninfo. */
Datum
heroku_dblink_url(PG_FUNCTION_ARGS)
{
	char	   *app = hr_pg_text_arg(fcinfo, 0, "app");
	char	   *config_var = hr_pg_text_arg(fcinfo, 1, "config_var");
	HrResolved *r = hr_pg_resolve(app, config_var, false);

	PG_RETURN_TEXT_P(cstring_to_text(r->conninfo));
}

PG_FUNCTION_INFO_V1(heroku_database_url);

/* heroku_database_url(app, config_var): the URL, sslmode ensured. */
Datum
heroku_database_url(PG_FUNCTION_ARGS)
{
	char	   *app = hr_pg_text_arg(fcinfo, 0, "app");
	char	   *config_var = hr_pg_text_arg(fcinfo, 1, "config_var");
	HrResolved *r = hr_pg_resolve(app, config_var, false);

	PG_RETURN_TEXT_P(cstring_to_text(r->url));
}
