/*-------------------------------------------------------------------------
 *
 * hr_http.c
 *		The Heroku Platform API request: libcurl with one kept handle per
 *		hr_http (keep-alive across calls), driven through the multi
 *		interface so that an interrupt callback is polled every 20 ms.
 *		No server headers; nothing here longjmps.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "hr_internal.h"

/* how often a request in flight checks the interrupt callback */
#define HR_POLL_MS 20

struct hr_http
{
	CURLM	   *multi;			/* owns the connection cache */
	CURL	   *easy;
};

/* What one request collects. */
typedef struct hr_req
{
	const hr_settings *s;
	hr_buf		body;
	int			too_large;
	int			canceled;
	char		etag[256];
	long		ratelimit_remaining;
	long		retry_after;
} hr_req;

static int	global_done = 0;

hr_code
hr_global_init(hr_error *err)
{
	CURLcode	rc;

	if (global_done)
		return HR_OK;
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
	{
		hr_error_set(err, HR_EUNAVAILABLE, "could not initialize libcurl");
		hr_error_detail(err, "%s", curl_easy_strerror(rc));
		return HR_EUNAVAILABLE;
	}
	global_done = 1;
	return HR_OK;
}

hr_http *
hr_http_new(void)
{
	hr_http    *h = calloc(1, sizeof(hr_http));

	if (h == NULL)
		return NULL;
	h->multi = curl_multi_init();
	h->easy = curl_easy_init();
	if (h->multi == NULL || h->easy == NULL)
	{
		hr_http_free(h);
		return NULL;
	}
	return h;
}

void
hr_http_free(hr_http *h)
{
	if (h == NULL)
		return;
	if (h->easy)
		curl_easy_cleanup(h->easy);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	free(h);
}

char *
hr_url_host(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	char	   *copy = NULL;

	if (u == NULL)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host)
	{
		size_t		n = strlen(host);

		/* "[::1]" -> "::1", as a netrc machine name would be written */
		if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
			copy = hr_strndup(host + 1, n - 2);
		else
			copy = hr_strdup(host);
	}
	curl_free(host);
	curl_url_cleanup(u);
	return copy;
}

/*
 * The API URL must be https, or http to a loopback host (a local mock):
 * a token must never cross a network in clear text.
 */
static hr_code
check_api_url(const char *api_url, hr_error *err)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char		shown[200];
	hr_code		rc = HR_OK;

	if (u == NULL)
		return hr_error_oom(err);
	hr_printable(shown, sizeof(shown), api_url, 150);
	if (curl_url_set(u, CURLUPART_URL, api_url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		rc = hr_error_set(err, HR_EINVAL, "invalid Heroku API URL \"%s\"", shown);
	}
	else if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)
	{
		rc = hr_error_set(err, HR_EINVAL,
						  "Heroku API URL \"%s\" must use https", shown);
	}
	else if (strcasecmp(scheme, "http") == 0 && !hr_host_is_loopback(host))
	{
		rc = hr_error_set(err, HR_EINVAL,
						  "Heroku API URL \"%s\" must use https", shown);
		hr_error_detail(err, "Plain http is allowed only to a loopback host, such as a local mock.");
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	hr_req	   *r = arg;
	size_t		n = size * nmemb;

	if (r->body.len + n > (size_t) HR_MAX_BODY_BYTES)
	{
		r->too_large = 1;
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	}
	hr_buf_append(&r->body, data, n);
	return r->body.oom ? 0 : n;
}

/* Does header line h (length n) start with name followed by ':'? */
static const char *
header_value(const char *h, size_t n, const char *name, size_t *vlen)
{
	size_t		nl = strlen(name);
	size_t		i;

	if (n <= nl || strncasecmp(h, name, nl) != 0 || h[nl] != ':')
		return NULL;
	i = nl + 1;
	while (i < n && (h[i] == ' ' || h[i] == '\t'))
		i++;
	*vlen = n - i;
	while (*vlen > 0 && isspace((unsigned char) h[i + *vlen - 1]))
		(*vlen)--;
	return h + i;
}

static long
parse_long(const char *v, size_t n)
{
	long		x = 0;
	size_t		i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) v[i]) || x > 100000000L)
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	return x;
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	hr_req	   *r = arg;
	size_t		n = size * nmemb;
	const char *v;
	size_t		vlen;

	/* a new status line starts a new response (after a 1xx) */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		r->etag[0] = '\0';
		r->ratelimit_remaining = -1;
		r->retry_after = -1;
	}
	else if ((v = header_value(data, n, "ETag", &vlen)) != NULL)
	{
		if (vlen < sizeof(r->etag))
		{
			memcpy(r->etag, v, vlen);
			r->etag[vlen] = '\0';
		}
	}
	else if ((v = header_value(data, n, "RateLimit-Remaining", &vlen)) != NULL)
		r->ratelimit_remaining = parse_long(v, vlen);
	else if ((v = header_value(data, n, "Retry-After", &vlen)) != NULL)
		r->retry_after = parse_long(v, vlen);
	return n;
}

/* Called by libcurl during the transfer; sets a flag, never longjmps. */
static int
xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	hr_req	   *r = arg;

	(void) dltotal;
	(void) dlnow;
	(void) ultotal;
	(void) ulnow;
	if (r->s->interrupt && r->s->interrupt(r->s->interrupt_arg))
	{
		r->canceled = 1;
		return 1;
	}
	return 0;
}

/* Wipe the header strings (one holds the token) and free the list. */
static void
free_headers(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l; l = l->next)
		if (l->data)
			memset(l->data, 0, strlen(l->data));
	curl_slist_free_all(list);
}

static struct curl_slist *
make_headers(const char *token, const char *etag)
{
	struct curl_slist *list = NULL;
	struct curl_slist *t;
	hr_buf		b;

	t = curl_slist_append(list, "Accept: application/vnd.heroku+json; version=3");
	if (t == NULL)
		return NULL;
	list = t;
	hr_buf_init(&b);
	hr_buf_puts(&b, "Authorization: Bearer ");
	hr_buf_puts(&b, token);
	if (b.oom)
	{
		free_headers(list);
		return NULL;
	}
	t = curl_slist_append(list, b.data);
	hr_buf_free_secret(&b);
	if (t == NULL)
	{
		free_headers(list);
		return NULL;
	}
	list = t;
	if (etag && etag[0])
	{
		char		line[300];

		snprintf(line, sizeof(line), "If-None-Match: %s", etag);
		t = curl_slist_append(list, line);
		if (t == NULL)
		{
			free_headers(list);
			return NULL;
		}
		list = t;
	}
	return list;
}

/* Run the transfer on the multi handle, checking the interrupt callback. */
static CURLcode
perform(hr_http *h, hr_req *r)
{
	CURLcode	result = CURLE_OK;
	int			running = 1;
	CURLMcode	mc;
	CURLMsg    *msg;
	int			left;

	mc = curl_multi_add_handle(h->multi, h->easy);
	if (mc != CURLM_OK)
		return CURLE_OUT_OF_MEMORY;
	while (running)
	{
		mc = curl_multi_perform(h->multi, &running);
		if (mc != CURLM_OK)
		{
			result = CURLE_RECV_ERROR;
			break;
		}
		if (!running)
			break;
		if (r->s->interrupt && r->s->interrupt(r->s->interrupt_arg))
		{
			r->canceled = 1;
			result = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
#if LIBCURL_VERSION_NUM >= 0x074200
		mc = curl_multi_poll(h->multi, NULL, 0, HR_POLL_MS, NULL);
#else
		mc = curl_multi_wait(h->multi, NULL, 0, HR_POLL_MS, NULL);
#endif
		if (mc != CURLM_OK)
		{
			result = CURLE_RECV_ERROR;
			break;
		}
	}
	/* drain the messages either way, so none is left for the next call */
	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy &&
			result == CURLE_OK)
			result = msg->data.result;
	curl_multi_remove_handle(h->multi, h->easy);
	/* the callback may have stopped the transfer inside curl_multi_perform */
	if (r->canceled)
		result = CURLE_ABORTED_BY_CALLBACK;
	return result;
}

/*
 * GET url with the token; fills r and *status.  Errors name app in their
 * message.
 */
static hr_code
api_get(hr_http *h, const hr_settings *s, const char *url, const char *token,
		const char *etag, const char *app, hr_req *r, long *status,
		hr_error *err)
{
	struct curl_slist *headers;
	char		errbuf[CURL_ERROR_SIZE];
	char		ua[128];
	long		timeout = s->timeout_ms > 0 ? s->timeout_ms : HR_DEFAULT_TIMEOUT_MS;
	CURLcode	rc;
	CURL	   *e = h->easy;

	*status = 0;
	headers = make_headers(token, etag);
	if (headers == NULL)
		return hr_error_oom(err);
	if (s->user_agent && s->user_agent[0])
		snprintf(ua, sizeof(ua), "%s", s->user_agent);
	else
		snprintf(ua, sizeof(ua), "heroku_resolver/%s", HR_VERSION);

	errbuf[0] = '\0';
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	/* libcurl must not use SIGALRM: the server uses it for its timeouts */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE, (long) HR_MAX_BODY_BYTES);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (s->ca_file && s->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);

	rc = perform(h, r);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	/* the handle must not keep pointers to our stack or the header list */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	free_headers(headers);

	if (r->canceled)
		return hr_error_set(err, HR_ECANCELED, "request to the Heroku API canceled");
	if (rc == CURLE_OK && !r->body.oom)
		return HR_OK;
	if (r->body.oom)
		return hr_error_oom(err);
	if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED)
	{
		hr_error_set(err, HR_EPROTOCOL,
					 "invalid answer from the Heroku API for app \"%s\"", app);
		hr_error_detail(err, "The answer is larger than %d bytes.", HR_MAX_BODY_BYTES);
		return HR_EPROTOCOL;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		hr_error_set(err, HR_EUNAVAILABLE,
					 "request to the Heroku API for app \"%s\" timed out after %ld ms",
					 app, timeout);
		hr_error_hint(err, "The limit is the timeout setting (heroku.timeout in the server).");
		return HR_EUNAVAILABLE;
	}
	{
		char		why[CURL_ERROR_SIZE + 64];

		hr_printable(why, sizeof(why), errbuf[0] ? errbuf : curl_easy_strerror(rc),
					 CURL_ERROR_SIZE);
		hr_error_set(err, HR_EUNAVAILABLE,
					 "could not reach the Heroku API for app \"%s\"", app);
		hr_error_detail(err, "libcurl: %s", why);
	}
	return HR_EUNAVAILABLE;
}

/* Turn a non-2xx answer into an error naming app and config var. */
static hr_code
status_error(long status, const hr_req *r, const char *app,
			 const char *config_var, hr_error *err)
{
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

hr_code
hr_fetch_config_var(hr_http *h, const hr_settings *s, const char *app,
					const char *config_var, const char *etag, hr_fetch *out,
					hr_error *err)
{
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	char		shown[120];
	char	   *token = NULL;
	hr_req		r;
	hr_buf		url;
	long		status;
	hr_code		rc;
	size_t		n;

	memset(out, 0, sizeof(*out));
	out->ratelimit_remaining = -1;
	if (err)
	{
		err->http_status = 0;
		err->sys_errno = 0;
		err->retry_after = -1;
	}
	if (!hr_valid_app(app))
	{
		hr_printable(shown, sizeof(shown), app ? app : "", 60);
		hr_error_set(err, HR_EINVAL, "invalid Heroku app name \"%s\"", shown);
		hr_error_detail(err, "An app name is 3 to 30 characters of a-z, 0-9 and \"-\", starting with a letter; an app id is a UUID.");
		return HR_EINVAL;
	}
	if (!hr_valid_config_var(config_var))
	{
		hr_printable(shown, sizeof(shown), config_var ? config_var : "", 60);
		hr_error_set(err, HR_EINVAL, "invalid config var name \"%s\"", shown);
		hr_error_detail(err, "A config var name is 1 to 255 characters of A-Z, a-z, 0-9 and \"_\".");
		return HR_EINVAL;
	}
	rc = check_api_url(api_url, err);
	if (rc != HR_OK)
		return rc;
	rc = hr_global_init(err);
	if (rc != HR_OK)
		return rc;
	rc = hr_find_token(s, &token, NULL, err);
	if (rc != HR_OK)
	{
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

	hr_buf_init(&url);
	n = strlen(api_url);
	while (n > 0 && api_url[n - 1] == '/')
		n--;
	hr_buf_append(&url, api_url, n);
	hr_buf_puts(&url, "/apps/");
	hr_buf_puts(&url, app);
	hr_buf_puts(&url, "/config-vars");
	if (url.oom)
	{
		hr_free_secret(token);
		return hr_error_oom(err);
	}

	memset(&r, 0, sizeof(r));
	r.s = s;
	hr_buf_init(&r.body);
	r.ratelimit_remaining = -1;
	r.retry_after = -1;
	rc = api_get(h, s, url.data, token, etag, app, &r, &status, err);
	hr_free_secret(token);
	hr_buf_free_secret(&url);
	out->ratelimit_remaining = r.ratelimit_remaining;
	if (rc != HR_OK)
	{
		if (err)
			err->retry_after = r.retry_after;
		hr_buf_free_secret(&r.body);
		return rc;
	}
	out->http_status = status;
	if (r.etag[0])
		out->etag = hr_strdup(r.etag);
	if (status == 304 && etag && etag[0])
	{
		hr_buf_free_secret(&r.body);
		out->config_var = hr_strdup(config_var);
		return HR_OK;
	}
	if (status != 200)
	{
		rc = status_error(status, &r, app, config_var, err);
		hr_buf_free_secret(&r.body);
		hr_fetch_free(out);
		out->ratelimit_remaining = r.ratelimit_remaining;
		return rc;
	}
	rc = hr_config_vars_pick(r.body.data ? r.body.data : "", r.body.len, app,
							 config_var, &out->value, &out->config_var, err);
	hr_buf_free_secret(&r.body);
	if (rc != HR_OK)
	{
		long		rl = out->ratelimit_remaining;

		hr_fetch_free(out);
		out->ratelimit_remaining = rl;
	}
	return rc;
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

hr_code
hr_result_from_url(const char *url, hr_sslmode min_sslmode, const char *app,
				   const char *config_var, hr_result *out, hr_error *err)
{
	hr_code		rc;

	memset(out, 0, sizeof(*out));
	out->ratelimit_remaining = -1;
	rc = hr_url_parse(url, min_sslmode, app, config_var, &out->params, err);
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
