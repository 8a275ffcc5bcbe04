/*-------------------------------------------------------------------------
 *
 * hr_watch_feed.c
 *		The release feed for heroku-pg-resolve watch (see hr_watch_feed.h):
 *		GET {api}/apps with "Range: id ..; max=N", following Next-Range page
 *		by page, each page sent again with If-None-Match so that a quiet
 *		account costs one 304 per page.  A change is an app whose
 *		released_at differs from the last listing's.
 *
 * libcurl is set up as the core's hr_http.c sets it up (TLS 1.2+, verified,
 * no redirects, no proxy for plain http, the body capped at 1 MiB); this
 * file has its own handle because the core's request sends no Range and
 * reads no Next-Range.  json-c is used here only: no server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "hr_internal.h"
#include "hr_watch_feed.h"

#define FEED_MAX_PAGES 1000
#define FEED_FIELD 40			/* ids are 36 characters, names at most 30 */
#define FEED_STAMP 40			/* released_at, an ISO 8601 time */
#define FEED_RANGE 256

typedef struct feed_app
{
	char		id[FEED_FIELD];
	char		name[FEED_FIELD];
	char		released_at[FEED_STAMP];	/* "" for null */
} feed_app;

/* A page as last answered: what was sent, its ETag, what it held. */
typedef struct feed_page
{
	char		range[FEED_RANGE];
	char		etag[256];
	char		next[FEED_RANGE];	/* "" on the last page */
	feed_app   *apps;
	int			napps;
} feed_page;

struct hr_wfeed
{
	int			page_size;
	int			listed;			/* a listing has been recorded */
	feed_page  *pages;			/* the last good listing, page by page */
	int			npages;
	feed_app   *known;			/* all its apps, sorted by id */
	int			nknown;
};

/* What one request brought back. */
typedef struct feed_answer
{
	long		status;
	hr_buf		body;
	char		etag[256];
	char		next[FEED_RANGE];
	long		retry_after;
	int			too_large;
	const hr_settings *s;
} feed_answer;

hr_wfeed *
hr_wfeed_new(int page_size)
{
	hr_wfeed    *f = calloc(1, sizeof(hr_wfeed));

	if (f)
		f->page_size = (page_size >= 1 && page_size <= 1000) ? page_size : 1000;
	return f;
}

static void
free_pages(feed_page *pages, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		free(pages[i].apps);
	free(pages);
}

void
hr_wfeed_free(hr_wfeed *f)
{
	if (f == NULL)
		return;
	free_pages(f->pages, f->npages);
	free(f->known);
	free(f);
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	feed_answer *a = arg;
	size_t		n = size * nmemb;

	if (a->body.len + n > (size_t) HR_MAX_BODY_BYTES)
	{
		a->too_large = 1;
		return 0;
	}
	hr_buf_append(&a->body, data, n);
	return a->body.oom ? 0 : n;
}

/* The value of header name in line h (n bytes), trimmed, or NULL. */
static const char *
header_value(const char *h, size_t n, const char *name, size_t *vlen)
{
	size_t		nl = strlen(name);
	size_t		i;

	if (n <= nl || strncasecmp(h, name, nl) != 0 || h[nl] != ':')
		return NULL;
	for (i = nl + 1; i < n && (h[i] == ' ' || h[i] == '\t'); i++)
		;
	*vlen = n - i;
	while (*vlen > 0 && isspace((unsigned char) h[i + *vlen - 1]))
		(*vlen)--;
	return h + i;
}

/* Copy a header value if it fits and is printable ASCII (it is sent back). */
static void
take_header(char *dst, size_t dstlen, const char *v, size_t vlen)
{
	size_t		i;

	for (i = 0; i < vlen; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return;
	if (vlen < dstlen)
	{
		memcpy(dst, v, vlen);
		dst[vlen] = '\0';
	}
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	feed_answer *a = arg;
	size_t		n = size * nmemb;
	const char *v;
	size_t		vlen;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		a->etag[0] = a->next[0] = '\0';
		a->retry_after = -1;
	}
	else if ((v = header_value(data, n, "ETag", &vlen)) != NULL)
		take_header(a->etag, sizeof(a->etag), v, vlen);
	else if ((v = header_value(data, n, "Next-Range", &vlen)) != NULL)
		take_header(a->next, sizeof(a->next), v, vlen);
	else if ((v = header_value(data, n, "Retry-After", &vlen)) != NULL && vlen < 9)
	{
		char		num[10];

		memcpy(num, v, vlen);
		num[vlen] = '\0';
		a->retry_after = strtol(num, NULL, 10);
	}
	return n;
}

static int
xferinfo_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	feed_answer *a = arg;

	(void) dt;
	(void) dn;
	(void) ut;
	(void) un;
	return (a->s->interrupt && a->s->interrupt(a->s->interrupt_arg)) ? 1 : 0;
}

/*
 * Append the header line "name: value" to *list (the line is wiped after
 * curl copied it: the Authorization line holds the token).  0 on ENOMEM.
 */
static int
add_header(struct curl_slist **list, const char *name, const char *v1,
		   const char *v2)
{
	hr_buf		b;
	struct curl_slist *t;

	hr_buf_init(&b);
	hr_buf_puts(&b, name);
	hr_buf_puts(&b, ": ");
	hr_buf_puts(&b, v1);
	if (v2)
		hr_buf_puts(&b, v2);
	if (b.oom)
		return 0;
	t = curl_slist_append(*list, b.data);
	hr_buf_free_secret(&b);
	if (t == NULL)
		return 0;
	*list = t;
	return 1;
}

static void
free_headers(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l; l = l->next)
		if (l->data)
			memset(l->data, 0, strlen(l->data));
	curl_slist_free_all(list);
}

/* GET url with Range (and If-None-Match when etag is given). */
static hr_code
feed_get(CURL *e, const hr_settings *s, const char *url, const char *token,
		 const char *range, const char *etag, feed_answer *a, hr_error *err)
{
	struct curl_slist *h = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	long		timeout = s->timeout_ms > 0 ? s->timeout_ms : HR_DEFAULT_TIMEOUT_MS;
	CURLcode	rc;

	memset(a, 0, sizeof(*a));
	hr_buf_init(&a->body);
	a->retry_after = -1;
	a->s = s;
	if (!add_header(&h, "Accept", "application/vnd.heroku+json; version=3", NULL) ||
		!add_header(&h, "Authorization", "Bearer ", token) ||
		!add_header(&h, "Range", range, NULL) ||
		(etag && etag[0] && !add_header(&h, "If-None-Match", etag, NULL)))
	{
		free_headers(h);
		return hr_error_oom(err);
	}

	errbuf[0] = '\0';
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_USERAGENT,
					 s->user_agent && s->user_agent[0] ? s->user_agent : "heroku_resolver/" HR_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, a);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (s->ca_file && s->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
	if (strncasecmp(url, "http://", 7) == 0)
		curl_easy_setopt(e, CURLOPT_PROXY, "");
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a->status);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
	free_headers(h);

	if (rc == CURLE_OK && !a->body.oom)
		return HR_OK;
	if (a->body.oom)
		return hr_error_oom(err);
	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return hr_error_set(err, HR_ECANCELED, "listing the apps was canceled");
	if (a->too_large)
		return hr_error_set(err, HR_EPROTOCOL, "the apps list page is larger than %d bytes",
							HR_MAX_BODY_BYTES);
	{
		char		why[CURL_ERROR_SIZE + 8];

		hr_printable(why, sizeof(why), errbuf[0] ? errbuf : curl_easy_strerror(rc),
					 CURL_ERROR_SIZE);
		hr_error_set(err, HR_EUNAVAILABLE, "could not list the apps: %s", why);
	}
	return HR_EUNAVAILABLE;
}

/* An HTTP status other than 200, 206, 304 as an error. */
static hr_code
status_error(const feed_answer *a, hr_error *err)
{
	char		api[400];
	hr_code		code;

	hr_api_error_text(a->body.data, a->body.len, api, sizeof(api));
	if (a->status == 401)
		code = HR_EAUTH;
	else if (a->status == 402 || a->status == 403)
		code = HR_EFORBIDDEN;
	else if (a->status == 429)
		code = HR_ERATELIMIT;
	else if (a->status >= 500)
		code = HR_EUNAVAILABLE;
	else
		code = HR_EPROTOCOL;
	hr_error_set(err, code, "the Heroku API answered HTTP %ld to the apps list%s%s",
				 a->status, api[0] ? ": " : "", api);
	if (err)
	{
		err->http_status = a->status;
		err->retry_after = a->retry_after;
	}
	return code;
}

/* Copy a JSON string member into dst if present and it fits; 0 if not. */
static int
get_field(struct json_object *o, const char *key, char *dst, size_t dstlen, int null_ok)
{
	struct json_object *v;
	const char *str;

	dst[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (v == NULL)
		return null_ok;
	if (!json_object_is_type(v, json_type_string))
		return 0;
	str = json_object_get_string(v);
	if (strlen(str) >= dstlen)
		return 0;
	memcpy(dst, str, strlen(str) + 1);
	return 1;
}

/* A page's JSON array of apps into *apps (malloc'd). */
static hr_code
parse_page(const char *body, size_t len, feed_app **apps, int *napps, hr_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *arr = NULL;
	size_t		i;
	size_t		n;

	*apps = NULL;
	*napps = 0;
	if (tok == NULL)
		return hr_error_oom(err);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	arr = json_tokener_parse_ex(tok, body ? body : "", (int) len);
	if (arr == NULL || json_tokener_get_error(tok) != json_tokener_success ||
		!json_object_is_type(arr, json_type_array))
	{
		json_object_put(arr);
		json_tokener_free(tok);
		return hr_error_set(err, HR_EPROTOCOL, "the apps list is not a JSON array");
	}
	json_tokener_free(tok);
	n = json_object_array_length(arr);
	*apps = calloc(n ? n : 1, sizeof(feed_app));
	if (*apps == NULL)
	{
		json_object_put(arr);
		return hr_error_oom(err);
	}
	for (i = 0; i < n; i++)
	{
		struct json_object *o = json_object_array_get_idx(arr, i);
		feed_app   *a = &(*apps)[*napps];

		/* an app the feed cannot name is skipped, not fatal */
		if (o == NULL || !json_object_is_type(o, json_type_object) ||
			!get_field(o, "id", a->id, sizeof(a->id), 0) ||
			!get_field(o, "name", a->name, sizeof(a->name), 0) ||
			!get_field(o, "released_at", a->released_at, sizeof(a->released_at), 1) ||
			!hr_valid_app(a->id) || !hr_valid_app(a->name))
			continue;
		(*napps)++;
	}
	json_object_put(arr);
	return HR_OK;
}

static int
cmp_app(const void *a, const void *b)
{
	return strcmp(((const feed_app *) a)->id, ((const feed_app *) b)->id);
}

/* The page of the last listing that was sent this range, or NULL. */
static feed_page *
cached_page(hr_wfeed *f, const char *range)
{
	int			i;

	for (i = 0; i < f->npages; i++)
		if (strcmp(f->pages[i].range, range) == 0)
			return &f->pages[i];
	return NULL;
}

hr_code
hr_wfeed_poll(hr_wfeed *f, const hr_settings *s, const char *token,
			 hr_wfeed_change_fn changed, void *arg, hr_wfeed_stats *stats,
			 hr_error *err)
{
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	feed_page  *pages = NULL;
	int			npages = 0;
	feed_app   *all = NULL;
	int			nall = 0;
	char		range[FEED_RANGE];
	hr_buf		url;
	hr_code		rc = HR_OK;
	CURL	   *e;
	int			i;
	size_t		n;

	memset(stats, 0, sizeof(*stats));
	if ((rc = hr_api_url_check(api_url, err)) != HR_OK ||
		(rc = hr_global_init(err)) != HR_OK)
		return rc;
	e = curl_easy_init();
	if (e == NULL)
		return hr_error_oom(err);
	hr_buf_init(&url);
	n = strlen(api_url);
	while (n > 0 && api_url[n - 1] == '/')
		n--;
	hr_buf_append(&url, api_url, n);
	hr_buf_puts(&url, "/apps");
	if (url.oom)
	{
		curl_easy_cleanup(e);
		return hr_error_oom(err);
	}

	snprintf(range, sizeof(range), "id ..; max=%d", f->page_size);
	while (rc == HR_OK)
	{
		feed_answer a;
		feed_page  *old = cached_page(f, range);
		feed_page  *p;
		feed_page  *grown;

		if (npages == FEED_MAX_PAGES)
		{
			rc = hr_error_set(err, HR_EPROTOCOL, "the apps list has more than %d pages",
							  FEED_MAX_PAGES);
			break;
		}
		rc = feed_get(e, s, url.data, token, range, old ? old->etag : NULL, &a, err);
		stats->requests++;
		if (rc != HR_OK)
		{
			hr_buf_free_secret(&a.body);
			break;
		}
		grown = realloc(pages, (size_t) (npages + 1) * sizeof(feed_page));
		if (grown == NULL)
		{
			hr_buf_free_secret(&a.body);
			rc = hr_error_oom(err);
			break;
		}
		pages = grown;
		p = &pages[npages];
		memset(p, 0, sizeof(*p));
		snprintf(p->range, sizeof(p->range), "%s", range);
		if (a.status == 304 && old != NULL)
		{
			stats->not_modified++;
			snprintf(p->etag, sizeof(p->etag), "%s", old->etag);
			snprintf(p->next, sizeof(p->next), "%s", old->next);
			p->apps = malloc((size_t) (old->napps ? old->napps : 1) * sizeof(feed_app));
			if (p->apps == NULL)
				rc = hr_error_oom(err);
			else
			{
				memcpy(p->apps, old->apps, (size_t) old->napps * sizeof(feed_app));
				p->napps = old->napps;
			}
		}
		else if (a.status == 200 || a.status == 206)
		{
			snprintf(p->etag, sizeof(p->etag), "%s", a.etag);
			if (a.status == 206)
				snprintf(p->next, sizeof(p->next), "%s", a.next);
			rc = parse_page(a.body.data, a.body.len, &p->apps, &p->napps, err);
		}
		else
			rc = status_error(&a, err);
		hr_buf_free_secret(&a.body);
		npages++;
		if (rc != HR_OK || p->next[0] == '\0')
			break;
		snprintf(range, sizeof(range), "%s", p->next);
	}
	curl_easy_cleanup(e);
	free(url.data);

	/* the whole list, sorted by id, compared with the last one */
	if (rc == HR_OK)
	{
		for (i = 0; i < npages; i++)
			nall += pages[i].napps;
		all = malloc((size_t) (nall ? nall : 1) * sizeof(feed_app));
		if (all == NULL)
			rc = hr_error_oom(err);
	}
	if (rc != HR_OK)
	{
		free_pages(pages, npages);
		return rc;
	}
	for (nall = 0, i = 0; i < npages; i++)
	{
		memcpy(all + nall, pages[i].apps, (size_t) pages[i].napps * sizeof(feed_app));
		nall += pages[i].napps;
	}
	qsort(all, (size_t) nall, sizeof(feed_app), cmp_app);
	stats->apps = nall;
	if (f->listed)
	{
		for (i = 0; i < nall; i++)
		{
			feed_app   *was = bsearch(&all[i], f->known, (size_t) f->nknown,
									  sizeof(feed_app), cmp_app);

			if (was == NULL || strcmp(was->released_at, all[i].released_at) != 0)
			{
				stats->changes++;
				changed(arg, all[i].id, all[i].name);
			}
		}
	}
	free_pages(f->pages, f->npages);
	free(f->known);
	f->pages = pages;
	f->npages = npages;
	f->known = all;
	f->nknown = nall;
	f->listed = 1;
	return HR_OK;
}
