/*-------------------------------------------------------------------------
 *
 * hr_resolve.c
 *		The resolver core's entry points, chaining the layers below them:
 *		names checked (hr_util.c), the API URL and the token (hr_url.c,
 *		hr_token.c), the request (hr_http.c), the answer (hr_json.c), and
 *		the URL turned into a conninfo (hr_url.c, hr_conninfo.c).  No
 *		server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_internal.h"

/* Turn a non-2xx answer into an error naming app and config var. */
static hr_code
status_error(const hr_response *r, const char *app,
			 const char *config_var, hr_error *err)
{
	long		status = r->status;
	char		api[400];
	hr_code		code;

	hr_api_error_text(r->body.data, r->body.len, api, sizeof(api));
	switch (status)
	{
		case 401:
			code = hr_error_set(err, HR_EAUTH,
								"the Heroku API rejected the token while reading config var \"%s\" of app \"%s\"",
								config_var, app);
			break;
		case 402:
		case 403:
			code = hr_error_set(err, HR_EFORBIDDEN,
								"permission denied to read config var \"%s\" of Heroku app \"%s\"",
								config_var, app);
			break;
		case 404:
			code = hr_error_set(err, HR_ENOTFOUND,
								"Heroku app \"%s\" not found", app);
			break;
		case 429:
			code = hr_error_set(err, HR_ERATELIMIT,
								"Heroku API rate limit reached while reading config var \"%s\" of app \"%s\"",
								config_var, app);
			break;
		default:
			if (status >= 500)
				code = hr_error_set(err, HR_EUNAVAILABLE,
									"the Heroku API failed while reading config var \"%s\" of app \"%s\"",
									config_var, app);
			else
				code = hr_error_set(err, HR_EPROTOCOL,
									"unexpected answer from the Heroku API for app \"%s\"",
									app);
			break;
	}
	if (err)
	{
		err->http_status = status;
		err->retry_after = r->retry_after;
	}
	if (api[0])
		hr_error_detail(err, "HTTP %ld, %s", status, api);
	else if (status >= 300 && status < 400)
		hr_error_detail(err, "HTTP %ld: redirects are not followed.", status);
	else
		hr_error_detail(err, "HTTP %ld", status);
	if (status == 401)
		hr_error_hint(err, "Check the token: \"heroku authorizations:create\" makes one that does not expire.");
	else if (status == 403)
		hr_error_hint(err, "Reading config vars needs a token with the read-protected scope and access to the app.");
	else if (status == 429)
		hr_error_hint(err, "Heroku allows about 4500 requests an hour per account; retry after %ld s.",
					  r->retry_after > 0 ? r->retry_after : 60);
	return code;
}

/*
 * Everything a request needs before it is sent: a usable API URL, libcurl
 * set up, and the token (malloc'd into *token; the caller wipes it).  The
 * names are not checked here: that happened where they entered.
 */
hr_code
hr_prepare_request(const hr_settings *s, const char *app,
				   const char *config_var, char **token, hr_error *err)
{
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	hr_code		rc;

	*token = NULL;
	rc = hr_api_url_check(api_url, err);
	if (rc != HR_OK)
		return rc;
	rc = hr_global_init(err);
	if (rc != HR_OK)
		return rc;
	rc = hr_find_token(s, token, NULL, err);
	if (rc == HR_ENOTOKEN && err &&
		strncmp(err->message, "no Heroku API token", 19) == 0)
	{
		char		msg[sizeof(err->message)];

		snprintf(msg, sizeof(msg), "%s to read config var \"%s\" of app \"%s\"",
				 err->message, config_var, app);
		memcpy(err->message, msg, sizeof(msg));
	}
	return rc;
}

/* Reset what a fetch reports, so that a failure leaves no old values. */
static void
fetch_reset(hr_fetch *out, hr_error *err)
{
	memset(out, 0, sizeof(*out));
	out->ratelimit_remaining = -1;
	if (err)
	{
		err->http_status = 0;
		err->sys_errno = 0;
		err->retry_after = -1;
	}
}

/*
 * GET the config vars of app with token, and pick config_var (or its _URL
 * form) from the answer.  A 304 (etag given and unchanged) leaves
 * out->value NULL.
 */
hr_code
hr_fetch_with_token(hr_http *h, const hr_settings *s, const char *token,
					const char *app, const char *config_var, const char *etag,
					hr_fetch *out, hr_error *err)
{
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	hr_response r;
	hr_buf		url;
	hr_code		rc;
	size_t		n;

	fetch_reset(out, err);
	hr_buf_init(&url);
	n = strlen(api_url);
	while (n > 0 && api_url[n - 1] == '/')
		n--;
	hr_buf_append(&url, api_url, n);
	hr_buf_puts(&url, "/apps/");
	hr_buf_puts(&url, app);
	hr_buf_puts(&url, "/config-vars");
	if (url.oom)
		return hr_error_oom(err);

	rc = hr_http_get(h, s, url.data, token, etag, app, &r, err);
	hr_buf_free_secret(&url);
	out->ratelimit_remaining = r.ratelimit_remaining;
	if (rc != HR_OK)
	{
		if (err)
			err->retry_after = r.retry_after;
		hr_response_free(&r);
		return rc;
	}
	out->http_status = r.status;
	if (r.etag[0])
		out->etag = hr_strdup(r.etag);
	if (r.status == 304 && etag && etag[0])
	{
		hr_response_free(&r);
		out->config_var = hr_strdup(config_var);
		return HR_OK;
	}
	if (r.status != 200)
	{
		rc = status_error(&r, app, config_var, err);
		hr_response_free(&r);
		hr_fetch_free(out);
		out->ratelimit_remaining = r.ratelimit_remaining;
		return rc;
	}
	rc = hr_config_vars_pick(r.body.data ? r.body.data : "", r.body.len, app,
							 config_var, &out->value, &out->config_var, err);
	hr_response_free(&r);
	if (rc != HR_OK)
	{
		long		rl = out->ratelimit_remaining;

		hr_fetch_free(out);
		out->ratelimit_remaining = rl;
	}
	return rc;
}

/* hr_prepare_request, then hr_fetch_with_token: names already checked. */
hr_code
hr_fetch_checked(hr_http *h, const hr_settings *s, const char *app,
				 const char *config_var, const char *etag, hr_fetch *out,
				 hr_error *err)
{
	char	   *token;
	hr_code		rc;

	fetch_reset(out, err);
	rc = hr_prepare_request(s, app, config_var, &token, err);
	if (rc != HR_OK)
		return rc;
	rc = hr_fetch_with_token(h, s, token, app, config_var, etag, out, err);
	hr_free_secret(token);
	return rc;
}

/* The public entry: the names enter here, so they are checked here. */
hr_code
hr_fetch_config_var(hr_http *h, const hr_settings *s, const char *app,
					const char *config_var, const char *etag, hr_fetch *out,
					hr_error *err)
{
	fetch_reset(out, err);
	if (hr_check_names(app, config_var, err) != HR_OK)
		return HR_EINVAL;
	return hr_fetch_checked(h, s, app, config_var, etag, out, err);
}

void
hr_fetch_free(hr_fetch *f)
{
	if (f == NULL)
		return;
	hr_free_secret(f->value);
	free(f->config_var);
	free(f->etag);
	f->value = NULL;
	f->config_var = NULL;
	f->etag = NULL;
}

/* hr_result_from_url, refusing hosts on this machine unless local_ok. */
hr_code
hr_result_from_url_checked(const char *url, hr_sslmode min_sslmode, int local_ok,
						   const char *app, const char *config_var, hr_result *out,
						   hr_error *err)
{
	hr_code		rc;

	memset(out, 0, sizeof(*out));
	out->ratelimit_remaining = -1;
	rc = hr_url_parse_checked(url, min_sslmode, local_ok, app, config_var,
							  &out->params, err);
	if (rc != HR_OK)
		return rc;
	out->conninfo = hr_conninfo_to_string(&out->params);
	out->url = hr_conninfo_to_url(&out->params);
	out->config_var = hr_strdup(config_var);
	if (out->conninfo == NULL || out->url == NULL || out->config_var == NULL)
	{
		hr_result_free(out);
		return hr_error_oom(err);
	}
	return HR_OK;
}

/* As the client side does: hosts on this machine are allowed. */
hr_code
hr_result_from_url(const char *url, hr_sslmode min_sslmode, const char *app,
				   const char *config_var, hr_result *out, hr_error *err)
{
	return hr_result_from_url_checked(url, min_sslmode, 1, app, config_var, out, err);
}

hr_code
hr_resolve(hr_http *h, const hr_settings *s, const char *app,
		   const char *config_var, hr_result *out, hr_error *err)
{
	hr_fetch	f;
	hr_code		rc;

	memset(out, 0, sizeof(*out));
	out->ratelimit_remaining = -1;
	rc = hr_fetch_config_var(h, s, app, config_var, NULL, &f, err);
	if (rc != HR_OK)
	{
		out->ratelimit_remaining = f.ratelimit_remaining;
		return rc;
	}
	rc = hr_result_from_url(f.value, s->min_sslmode, app, f.config_var, out, err);
	if (rc == HR_OK)
	{
		out->etag = f.etag;
		f.etag = NULL;
		out->ratelimit_remaining = f.ratelimit_remaining;
	}
	hr_fetch_free(&f);
	return rc;
}

void
hr_result_free(hr_result *r)
{
	if (r == NULL)
		return;
	hr_conninfo_free(&r->params);
	hr_free_secret(r->conninfo);
	hr_free_secret(r->url);
	free(r->config_var);
	free(r->etag);
	r->conninfo = NULL;
	r->url = NULL;
	r->config_var = NULL;
	r->etag = NULL;
}
