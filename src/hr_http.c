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

/* One request in progress: where its answer goes, and why it stopped. */
typedef struct hr_req
{
	const hr_settings *s;
	hr_response *resp;
	size_t		limit;			/* body bytes accepted */
	int			too_large;
	int			canceled;
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

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	hr_req	   *r = arg;
	size_t		n = size * nmemb;

	if (r->resp->body.len + n > r->limit)
	{
		r->too_large = 1;
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	}
	hr_buf_append(&r->resp->body, data, n);
	return r->resp->body.oom ? 0 : n;
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

/*
 * An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", the only form a server
 * may send) as seconds since the epoch, or -1: the server's clock, which
 * is the one the API's timestamps come from.
 */
static long long
parse_http_date(const char *v, size_t n)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char		text[64];
	char		mon[4];
	int			d,
				y,
				hh,
				mm,
				ss,
				used = 0;
	const char *m;

	if (n >= sizeof(text))
		return -1;
	memcpy(text, v, n);
	text[n] = '\0';
	if (sscanf(text, "%*3s, %2d %3s %4d %2d:%2d:%2d GMT%n",
			   &d, mon, &y, &hh, &mm, &ss, &used) != 6 || used != (int) n)
		return -1;
	m = strstr(months, mon);
	if (m == NULL || (m - months) % 3 != 0)
		return -1;
	return hr_utc_seconds(y, (int) (m - months) / 3 + 1, d, hh, mm, ss);
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
		r->resp->etag[0] = '\0';
		r->resp->next_range[0] = '\0';
		r->resp->next_range_cut = 0;
		r->resp->ratelimit_remaining = -1;
		r->resp->retry_after = -1;
		r->resp->date = -1;
	}
	else if ((v = header_value(data, n, "Date", &vlen)) != NULL)
		r->resp->date = parse_http_date(v, vlen);
	else if ((v = header_value(data, n, "ETag", &vlen)) != NULL)
	{
		if (vlen < sizeof(r->resp->etag))
		{
			memcpy(r->resp->etag, v, vlen);
			r->resp->etag[vlen] = '\0';
		}
	}
	else if ((v = header_value(data, n, "RateLimit-Remaining", &vlen)) != NULL)
		r->resp->ratelimit_remaining = parse_long(v, vlen);
	else if ((v = header_value(data, n, "Retry-After", &vlen)) != NULL)
		r->resp->retry_after = parse_long(v, vlen);
	else if ((v = header_value(data, n, "Next-Range", &vlen)) != NULL)
	{
		/* one too long is cut to nothing and flagged: never half a range */
		r->resp->next_range_cut = vlen >= sizeof(r->resp->next_range);
		if (!r->resp->next_range_cut)
		{
			memcpy(r->resp->next_range, v, vlen);
			r->resp->next_range[vlen] = '\0';
		}
	}
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

/* Append "name: value" to list; NULL (list freed) when out of memory. */
static struct curl_slist *
add_header(struct curl_slist *list, const char *name, const char *value)
{
	struct curl_slist *t;
	hr_buf		b;

	hr_buf_init(&b);
	hr_buf_puts(&b, name);
	hr_buf_puts(&b, ": ");
	hr_buf_puts(&b, value);
	t = b.oom ? NULL : curl_slist_append(list, b.data);
	hr_buf_free_secret(&b);
	if (t == NULL)
		free_headers(list);
	return t;
}

static struct curl_slist *
make_headers(const char *token, const char *etag, const char *range)
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
	if (etag && etag[0] && (list = add_header(list, "If-None-Match", etag)) == NULL)
		return NULL;
	if (range && range[0] && (list = add_header(list, "Range", range)) == NULL)
		return NULL;
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
 * GET url with the token (and If-None-Match: etag when given); fills *resp,
 * which the caller frees with hr_response_free whatever the result.  Only
 * transport failures are errors here (they name app); any HTTP status is
 * HR_OK and left to the caller.
 */
hr_code
hr_http_get(hr_http *h, const hr_settings *s, const char *url, const char *token,
			const char *etag, const char *app, hr_response *resp, hr_error *err)
{
	return hr_http_get_range(h, s, url, token, etag, NULL, app, resp, err);
}

/*
 * hr_http_get with a Range header when range is given (a list's page; the
 * answer's Next-Range lands in resp->next_range).  app NULL: the request is
 * for the apps list, and the messages say so.
 */
hr_code
hr_http_get_range(hr_http *h, const hr_settings *s, const char *url, const char *token,
				  const char *etag, const char *range, const char *app,
				  hr_response *resp, hr_error *err)
{
	char		what[80];
	/* a page of the apps list may be larger than any other answer */
	hr_req		req = {s, resp, app ? HR_MAX_BODY_BYTES : HR_LIST_MAX_BODY_BYTES, 0, 0};
	hr_req	   *r = &req;
	struct curl_slist *headers;
	char		errbuf[CURL_ERROR_SIZE];
	char		ua[128];
	long		timeout = s->timeout_ms > 0 ? s->timeout_ms : HR_DEFAULT_TIMEOUT_MS;
	CURLcode	rc;
	CURL	   *e = h->easy;

	memset(resp, 0, sizeof(*resp));
	hr_buf_init(&resp->body);
	resp->ratelimit_remaining = -1;
	resp->retry_after = -1;
	resp->date = -1;
	headers = make_headers(token, etag, range);
	if (headers == NULL)
		return hr_error_oom(err);
	if (app)
		snprintf(what, sizeof(what), "app \"%s\"", app);
	else
		snprintf(what, sizeof(what), "the apps list");
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
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE, (long) r->limit);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (s->ca_file && s->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
	/*
	 * Plain http goes only to a loopback mock: never through a proxy from
	 * the environment (http_proxy), which would see the token in clear.
	 */
	if (strncasecmp(url, "http://", 7) == 0)
		curl_easy_setopt(e, CURLOPT_PROXY, "");

	rc = perform(h, r);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	/* the handle must not keep pointers to our stack or the header list */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	free_headers(headers);

	if (r->canceled)
		return hr_error_set(err, HR_ECANCELED, "request to the Heroku API canceled");
	if (rc == CURLE_OK && !r->resp->body.oom)
		return HR_OK;
	if (r->resp->body.oom)
		return hr_error_oom(err);
	if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED)
	{
		hr_error_set(err, HR_EPROTOCOL,
					 "invalid answer from the Heroku API for %s", what);
		hr_error_detail(err, "The answer is larger than %zu bytes.", r->limit);
		return HR_EPROTOCOL;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		hr_error_set(err, HR_EUNAVAILABLE,
					 "request to the Heroku API for %s timed out after %ld ms",
					 what, timeout);
		hr_error_hint(err, "The limit is the timeout setting (heroku.timeout in the server).");
		return HR_EUNAVAILABLE;
	}
	{
		char		why[CURL_ERROR_SIZE + 64];

		hr_printable(why, sizeof(why), errbuf[0] ? errbuf : curl_easy_strerror(rc),
					 CURL_ERROR_SIZE);
		hr_error_set(err, HR_EUNAVAILABLE,
					 "could not reach the Heroku API for %s", what);
		hr_error_detail(err, "libcurl: %s", why);
	}
	return HR_EUNAVAILABLE;
}

/* Wipe and free what hr_http_get collected. */
void
hr_response_free(hr_response *resp)
{
	hr_buf_free_secret(&resp->body);
}
