/*-------------------------------------------------------------------------
 *
 * hr_feed.c
 *		The release feed's request: list the account's apps with GET /apps,
 *		page by page (Range, then each answer's Next-Range), every page
 *		conditional on the ETag it had at the last listing.  An account
 *		where nothing happened costs one 304 per page; a page that changed
 *		brings each app's id, name and released_at.  What counts as a
 *		change is the caller's business.  No server headers.
 *
 * The ETag of a list is that of one page, so a 304 on the first page says
 * nothing of the second: each page is asked with its own ETag, and a page
 * asked with the same Range as last time and answered 304 holds the same
 * apps and the same Next-Range as then.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hr_internal.h"

/* A list longer than this many pages is taken for a Next-Range loop. */
#define HR_FEED_MAX_PAGES		1000

/*
 * released_at in Unix seconds (its fraction dropped), or -1: RFC 3339
 * ("2012-01-01T12:00:00Z", with a fraction or a +hh:mm offset too).
 */
long long
hr_feed_stamp_seconds(const char *stamp)
{
	int			y,
				mon,
				d,
				hh,
				mm,
				ss,
				used = 0;
	long long	t;
	const char *p;

	if (stamp == NULL ||
		sscanf(stamp, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n",
			   &y, &mon, &d, &hh, &mm, &ss, &used) != 6 || used != 19)
		return -1;
	t = hr_utc_seconds(y, mon, d, hh, mm, ss);
	p = stamp + used;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return t;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &used) == 2 &&
		used == 5 && p[6] == '\0' && t >= 0)
		return t - (*p == '+' ? 1 : -1) * (hh * 3600LL + mm * 60LL);
	return -1;
}

/*
 * Like git's "racy" stat: a listing made in second T shows a release of
 * second T, but another release in the rest of T leaves the stamp, so the
 * page, unchanged.  Such a release is followed once more by the caller
 * when a later listing's second has passed it.
 */
int
hr_feed_racy(const char *released_at, long long listed_at)
{
	long long	t;

	if (released_at == NULL)
		return 0;
	t = hr_feed_stamp_seconds(released_at);
	return t < 0 || listed_at < 0 || t >= listed_at;
}

/* The error of an answer to the apps list that is not 200, 206 or 304. */
static hr_code
list_status_error(const hr_response *r, hr_error *err)
{
	char		api[400];
	hr_code		code;

	hr_api_error_text(r->body.data, r->body.len, api, sizeof(api));
	if (r->status == 401)
		code = hr_error_set(err, HR_EAUTH, "the Heroku API rejected the token while listing apps");
	else if (r->status == 402 || r->status == 403)
		code = hr_error_set(err, HR_EFORBIDDEN, "permission denied to list the Heroku apps");
	else if (r->status == 429)
		code = hr_error_set(err, HR_ERATELIMIT, "Heroku API rate limit reached while listing apps");
	else if (r->status >= 500)
		code = hr_error_set(err, HR_EUNAVAILABLE, "the Heroku API failed while listing apps");
	else
		code = hr_error_set(err, HR_EPROTOCOL, "unexpected answer from the Heroku API for the apps list");
	if (err)
	{
		err->http_status = r->status;
		err->retry_after = r->retry_after;
	}
	if (api[0])
		hr_error_detail(err, "HTTP %ld, %s", r->status, api);
	else
		hr_error_detail(err, "HTTP %ld", r->status);
	return code;
}

/* A Next-Range fit to be sent back as a header: printable ASCII, no CR/LF. */
static int
valid_range(const char *s)
{
	if (s[0] == '\0')
		return 0;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

static hr_code
protocol_error(hr_error *err, const char *detail)
{
	hr_error_set(err, HR_EPROTOCOL, "invalid answer from the Heroku API for the apps list");
	hr_error_detail(err, "%s", detail);
	return HR_EPROTOCOL;
}

static void
pages_free(hr_feed_page *pages, int n)
{
	int			i;

	if (pages == NULL)
		return;
	for (i = 0; i < n; i++)
	{
		free(pages[i].range);
		free(pages[i].etag);
		free(pages[i].next_range);
	}
	free(pages);
}

/* Forget the last listing: the next one asks every page unconditionally. */
void
hr_feed_reset(hr_feed *feed)
{
	pages_free(feed->pages, feed->npages);
	feed->pages = NULL;
	feed->npages = 0;
}

void
hr_feed_listing_free(hr_feed_listing *l)
{
	if (l == NULL)
		return;
	hr_feed_apps_free(l->apps, l->napps);
	l->apps = NULL;
	l->napps = 0;
}

/* Append a page's apps to the listing (taking them over). */
static hr_code
take_apps(hr_feed_listing *out, hr_feed_app *apps, int n, hr_error *err)
{
	hr_feed_app *all;

	if (n == 0)
	{
		free(apps);
		return HR_OK;
	}
	all = realloc(out->apps, sizeof(hr_feed_app) * (size_t) (out->napps + n));
	if (all == NULL)
	{
		hr_feed_apps_free(apps, n);
		return hr_error_oom(err);
	}
	memcpy(all + out->napps, apps, sizeof(hr_feed_app) * (size_t) n);
	free(apps);
	out->apps = all;
	out->napps += n;
	return HR_OK;
}

/*
 * One page: ask it (conditionally when the last listing had the same Range),
 * record it in *page and its apps in out.
 */
static hr_code
list_page(hr_http *h, const hr_settings *s, const char *token, const char *url,
		  const hr_feed *feed, int index, const char *range, hr_feed_page *page,
		  hr_feed_listing *out, hr_error *err)
{
	const hr_feed_page *last = index < feed->npages ? &feed->pages[index] : NULL;
	const char *etag = NULL;
	hr_response r;
	hr_code		rc;

	if (last && strcmp(last->range, range) == 0 && last->etag[0])
		etag = last->etag;
	rc = hr_http_get_range(h, s, url, token, etag, range[0] ? range : NULL, NULL, &r, err);
	out->requests++;
	out->bytes += (long long) r.body.len;
	if (out->requests == 1 && r.date >= 0)
		out->listed_at = r.date;
	if (r.ratelimit_remaining >= 0)
		out->ratelimit_remaining = r.ratelimit_remaining;
	if (rc != HR_OK)
	{
		/* no answer at all: nothing more to read from it */
		hr_response_free(&r);
		return rc;
	}
	page->range = hr_strdup(range);
	if (r.status == 304 && etag)
	{
		/* the same page as last time: same apps, same Next-Range */
		page->etag = hr_strdup(etag);
		page->next_range = last->next_range ? hr_strdup(last->next_range) : NULL;
		page->napps = last->napps;
		out->pages_not_modified++;
		hr_response_free(&r);
		if (page->range == NULL || page->etag == NULL ||
			(last->next_range && page->next_range == NULL))
			return hr_error_oom(err);
		return HR_OK;
	}
	if (r.status == 200 || r.status == 206)
	{
		hr_feed_app *apps;
		int			n;

		if (r.status == 206 && (r.next_range_cut || !valid_range(r.next_range)))
			rc = protocol_error(err, "A cut list (206) came without a usable Next-Range.");
		else
			rc = hr_apps_list_parse(r.body.data ? r.body.data : "", r.body.len,
									&apps, &n, err);
		if (rc == HR_OK)
		{
			page->etag = hr_strdup(r.etag);
			page->next_range = r.status == 206 ? hr_strdup(r.next_range) : NULL;
			page->napps = n;
			rc = take_apps(out, apps, n, err);
			if (rc == HR_OK && (page->range == NULL || page->etag == NULL ||
								(r.status == 206 && page->next_range == NULL)))
				rc = hr_error_oom(err);
		}
		hr_response_free(&r);
		return rc;
	}
	if (r.status == 304)
		rc = protocol_error(err, "HTTP 304 to a request without If-None-Match.");
	else
		rc = list_status_error(&r, err);
	hr_response_free(&r);
	return rc;
}

hr_code
hr_feed_list(hr_http *h, const hr_settings *s, const char *token, hr_feed *feed,
			 hr_feed_listing *out, hr_error *err)
{
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	hr_feed_page *pages = NULL;
	int			npages = 0;
	char		first[64];
	const char *range;
	hr_buf		url;
	hr_code		rc;
	size_t		n;

	memset(out, 0, sizeof(*out));
	out->ratelimit_remaining = -1;
	/* the local clock until the API's first answer tells its own */
	out->listed_at = (long long) time(NULL);
	if (err)
	{
		err->http_status = 0;
		err->retry_after = -1;
	}
	rc = hr_api_url_check(api_url, err);
	if (rc == HR_OK)
		rc = hr_global_init(err);
	if (rc != HR_OK)
		return rc;

	hr_buf_init(&url);
	n = strlen(api_url);
	while (n > 0 && api_url[n - 1] == '/')
		n--;
	hr_buf_append(&url, api_url, n);
	hr_buf_puts(&url, "/apps");
	pages = calloc(HR_FEED_MAX_PAGES, sizeof(hr_feed_page));
	if (url.oom || pages == NULL)
	{
		hr_buf_free_secret(&url);
		free(pages);
		return hr_error_oom(err);
	}

	if (feed->page_size > 0)
		snprintf(first, sizeof(first), "id ..; max=%d", feed->page_size);
	else
		first[0] = '\0';
	range = first;
	for (;;)
	{
		hr_feed_page *page = &pages[npages];

		if (npages == HR_FEED_MAX_PAGES)
		{
			rc = protocol_error(err, "The list has more pages than the resolver follows.");
			break;
		}
		npages++;
		rc = list_page(h, s, token, url.data, feed, npages - 1, range, page, out, err);
		if (rc != HR_OK)
			break;
		out->apps_seen += page->napps;
		if (page->next_range == NULL)
			break;
		if (strcmp(page->next_range, range) == 0)
		{
			rc = protocol_error(err, "A Next-Range repeats the Range it answers.");
			break;
		}
		range = page->next_range;
	}
	hr_buf_free_secret(&url);
	out->pages = npages;
	if (rc != HR_OK)
	{
		pages_free(pages, npages);
		hr_feed_listing_free(out);
		return rc;
	}
	hr_feed_reset(feed);
	feed->pages = pages;
	feed->npages = npages;
	return HR_OK;
}
