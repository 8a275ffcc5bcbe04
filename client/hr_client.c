/*-------------------------------------------------------------------------
 *
 * hr_client.c
 *		The client library's own entry points, on top of the resolver core:
 *		resolve to a string, and connect with one self-healing retry.
 *		No server headers: this file is built only into libheroku_resolver
 *		and the heroku-pg-resolve command.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpq-fe.h"

#include "heroku_resolver.h"

#define HR_DEFAULT_CONFIG_VAR "DATABASE_URL"

/*
 * Resolve with http, or with a temporary handle when http is NULL; the
 * mutual TLS files (tls may be NULL) are checked first and added after.
 */
static hr_code
resolve(hr_http *http, const hr_settings *s, const char *app,
		const char *config_var, const hr_tls_files *tls, hr_result *out,
		hr_error *err)
{
	hr_http    *own = NULL;
	hr_code		rc;

	if (config_var == NULL)
		config_var = HR_DEFAULT_CONFIG_VAR;
	rc = hr_tls_check(tls, err);
	if (rc != HR_OK)
	{
		memset(out, 0, sizeof(*out));
		return rc;
	}
	if (http == NULL)
	{
		rc = hr_global_init(err);
		if (rc != HR_OK)
		{
			memset(out, 0, sizeof(*out));
			return rc;
		}
		own = hr_http_new();
		if (own == NULL)
		{
			memset(out, 0, sizeof(*out));
			if (err)
			{
				memset(err, 0, sizeof(*err));
				err->code = HR_ENOMEM;
				err->retry_after = -1;
				snprintf(err->message, sizeof(err->message),
						 "could not create a libcurl handle");
			}
			return HR_ENOMEM;
		}
		http = own;
	}
	rc = hr_resolve(http, s, app, config_var, out, err);
	hr_http_free(own);
	if (rc == HR_OK)
	{
		rc = hr_result_add_tls(out, tls, err);
		if (rc != HR_OK)
			hr_result_free(out);
	}
	return rc;
}

/* Take one string out of a resolution and free the rest. */
static char *
resolve_string(hr_http *http, const hr_settings *s, const char *app,
			   const char *config_var, const hr_tls_files *tls, int want_url,
			   hr_error *err)
{
	hr_result	r;
	char	   *str;

	if (resolve(http, s, app, config_var, tls, &r, err) != HR_OK)
		return NULL;
	if (want_url)
	{
		str = r.url;
		r.url = NULL;
	}
	else
	{
		str = r.conninfo;
		r.conninfo = NULL;
	}
	hr_result_free(&r);
	return str;
}

char *
hr_resolve_conninfo(hr_http *http, const hr_settings *s, const char *app,
					const char *config_var, hr_error *err)
{
	return resolve_string(http, s, app, config_var, NULL, 0, err);
}

char *
hr_resolve_url(hr_http *http, const hr_settings *s, const char *app,
			   const char *config_var, hr_error *err)
{
	return resolve_string(http, s, app, config_var, NULL, 1, err);
}

char *
hr_resolve_conninfo_tls(hr_http *http, const hr_settings *s, const char *app,
						const char *config_var, const hr_tls_files *tls,
						hr_error *err)
{
	return resolve_string(http, s, app, config_var, tls, 0, err);
}

char *
hr_resolve_url_tls(hr_http *http, const hr_settings *s, const char *app,
				   const char *config_var, const hr_tls_files *tls,
				   hr_error *err)
{
	return resolve_string(http, s, app, config_var, tls, 1, err);
}

/*
 * PQconnectdbParams with the parsed pairs (never re-parsing a string, so
 * no quoting question arises).  NULL only when out of memory.
 */
static PGconn *
connect_params(const hr_conninfo *ci)
{
	const char **kw;
	const char **val;
	PGconn	   *conn;
	int			i;

	kw = calloc(ci->n + 1, sizeof(char *));
	val = calloc(ci->n + 1, sizeof(char *));
	if (kw == NULL || val == NULL)
	{
		free(kw);
		free(val);
		return NULL;
	}
	for (i = 0; i < ci->n; i++)
	{
		kw[i] = ci->keywords[i];
		val[i] = ci->values[i];
	}
	conn = PQconnectdbParams(kw, val, 0);
	free(kw);
	free(val);
	return conn;
}

static PGconn *
connect_oom(hr_error *err)
{
	if (err)
	{
		memset(err, 0, sizeof(*err));
		err->code = HR_ENOMEM;
		err->retry_after = -1;
		snprintf(err->message, sizeof(err->message), "out of memory");
	}
	return NULL;
}

/*
 * After a failed connection, the re-resolution failed too: say so in the
 * detail, with libpq's first line (libpq never quotes a password).
 */
static void
note_first_failure(hr_error *err, const char *why)
{
	size_t		used;
	size_t		n;

	if (err == NULL || why == NULL || why[0] == '\0')
		return;
	n = strcspn(why, "\n");
	used = strlen(err->detail);
	snprintf(err->detail + used, sizeof(err->detail) - used,
			 "%sThe connection attempt before failed: %.*s",
			 used ? " " : "", (int) (n > 300 ? 300 : n), why);
}

struct pg_conn *
hr_connect(hr_http *http, const hr_settings *s, const char *app,
		   const char *config_var, hr_result *last, int *retried,
		   hr_error *err)
{
	return hr_connect_tls(http, s, app, config_var, NULL, last, retried, err);
}

/* hr_connect with mutual TLS files (tls may be NULL): on every resolution. */
struct pg_conn *
hr_connect_tls(hr_http *http, const hr_settings *s, const char *app,
			   const char *config_var, const hr_tls_files *tls,
			   hr_result *last, int *retried, hr_error *err)
{
	hr_result	local;
	hr_result	fresh;
	hr_result  *cur = last ? last : &local;
	PGconn	   *conn = NULL;
	char		why[512];
	int			dummy;

	if (retried == NULL)
		retried = &dummy;
	*retried = 0;
	if (err)
		err->code = HR_OK;
	if (last == NULL)
		memset(&local, 0, sizeof(local));

	/* first attempt: the kept resolution, else a fresh one */
	if (cur->conninfo == NULL || cur->params.n == 0)
	{
		hr_result_free(cur);
		if (resolve(http, s, app, config_var, tls, cur, err) != HR_OK)
			return NULL;
	}
	conn = connect_params(&cur->params);
	if (conn == NULL)
	{
		if (cur == &local)
			hr_result_free(&local);
		return connect_oom(err);
	}
	if (PQstatus(conn) == CONNECTION_OK)
	{
		if (cur == &local)
			hr_result_free(&local);
		return conn;
	}

	/* the credential or the host may have changed: ask again, retry once */
	snprintf(why, sizeof(why), "%s", PQerrorMessage(conn));
	PQfinish(conn);
	*retried = 1;
	if (resolve(http, s, app, config_var, tls, &fresh, err) != HR_OK)
	{
		note_first_failure(err, why);
		if (cur == &local)
			hr_result_free(&local);
		return NULL;
	}
	hr_result_free(cur);
	*cur = fresh;
	conn = connect_params(&cur->params);
	if (cur == &local)
		hr_result_free(&local);
	if (conn == NULL)
		return connect_oom(err);
	return conn;
}
