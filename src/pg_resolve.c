/*-------------------------------------------------------------------------
 *
 * pg_resolve.c
 *		The server side's one way to resolve: app and config var checked as
 *		they enter, the URL from the cache (pg_cache_resolve.c), parsed by
 *		the core, and copied into palloc'd memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pg_heroku.h"
#include "pg_tls.h"

/* Copy the core's malloc'd result into palloc'd memory. */
static HrResolved *
copy_result(const hr_result *r)
{
	HrResolved *res = palloc0(sizeof(HrResolved));
	int			i;

	res->conninfo = pstrdup(r->conninfo);
	res->url = pstrdup(r->url);
	res->config_var = pstrdup(r->config_var);
	res->nparams = r->params.n;
	res->keywords = palloc(sizeof(char *) * Max(r->params.n, 1));
	res->values = palloc(sizeof(char *) * Max(r->params.n, 1));
	for (i = 0; i < r->params.n; i++)
	{
		res->keywords[i] = pstrdup(r->params.keywords[i]);
		res->values[i] = pstrdup(r->params.values[i]);
	}
	return res;
}

/*
 * The last URL this backend parsed and what it gave, so that a warm cache
 * hit costs no libpq parse.  malloc'd; the URL is a secret, wiped on reuse.
 */
static struct
{
	bool		valid;
	int			min_sslmode;
	bool		local_ok;
	char	   *url;
	char	   *used_var;
	hr_result	r;
} last_parse;

static void
forget_last_parse(void)
{
	if (!last_parse.valid)
		return;
	last_parse.valid = false;
	hr_free_secret(last_parse.url);
	free(last_parse.used_var);
	hr_result_free(&last_parse.r);
}

/*
 * The parse of url, in last_parse.r (reused when url is the last one).
 * Never throws.
 */
static hr_code
parse_url(const char *url, const hr_settings *s, const char *app,
		  const char *used_var, hr_error *err)
{
	hr_result	r;
	hr_code		rc;

	if (last_parse.valid && last_parse.min_sslmode == (int) s->min_sslmode &&
		last_parse.local_ok == hr_allow_local_hosts &&
		strcmp(last_parse.url, url) == 0 && strcmp(last_parse.used_var, used_var) == 0)
		return HR_OK;

	rc = hr_result_from_url_checked(url, s->min_sslmode, hr_allow_local_hosts ? 1 : 0,
									app, used_var, &r, err);
	if (rc != HR_OK)
		return rc;
	forget_last_parse();
	last_parse.url = strdup(url);
	last_parse.used_var = strdup(used_var);
	if (last_parse.url == NULL || last_parse.used_var == NULL)
	{
		hr_free_secret(last_parse.url);
		free(last_parse.used_var);
		hr_result_free(&r);
		err->code = HR_ENOMEM;
		strlcpy(err->message, "out of memory", sizeof(err->message));
		return HR_ENOMEM;
	}
	last_parse.r = r;
	last_parse.min_sslmode = (int) s->min_sslmode;
	last_parse.local_ok = hr_allow_local_hosts;
	last_parse.valid = true;
	return HR_OK;
}

/*
 * Resolve app's config var, from the cache (pg_cache.c) or the API.
 * fresh = true (the self-healing paths) asks the API unless a fresh call
 * already did in this statement (after hr_cache_fresh_after, when a caller
 * set it), and stores what it gets.  Throws on
 * failure; the raw URL is wiped once parsed.
 */
HrResolved *
hr_pg_resolve(const char *app, const char *config_var, bool fresh)
{
	hr_settings s;
	hr_error	err;
	char	   *url;
	char	   *used_var;
	hr_code		rc;
	HrResolved *res;

	memset(&err, 0, sizeof(err));
	if (hr_check_names(app, config_var, &err) != HR_OK)
		hr_pg_report(ERROR, &err);
	hr_pg_settings(&s);
	url = hr_cache_resolve(&s, app, config_var, fresh, &used_var);
	hr_heal_note_served(url);
	memset(&err, 0, sizeof(err));
	rc = parse_url(url, &s, app, used_var, &err);
	explicit_bzero(url, strlen(url));
	pfree(url);
	pfree(used_var);
	if (rc != HR_OK)
		hr_pg_report(ERROR, &err);
	res = copy_result(&last_parse.r);
	/* mutual TLS files a superuser set for the app (heroku_tls_set) */
	hr_tls_apply(res, app);
	return res;
}
