/*-------------------------------------------------------------------------
 *
 * hr_watch_feed.c
 *		The release feed for heroku-pg-resolve watch (see hr_watch_feed.h),
 *		on the core's listing (src/hr_feed.c: GET /apps page by page, each
 *		page conditional on its last ETag) over the core's transport
 *		(src/hr_http.c).  What is left here is what counts as a change: an
 *		app whose released_at differs from what the watcher last saw of it.
 *
 * The core hands back the apps of the pages that changed only (a page
 * answered 304 holds what it held), so the apps last seen are kept here,
 * sorted by id, and each listing's apps are merged into them.  An app that
 * left the account stays known until a listing in which no page was
 * answered 304; it costs a few bytes and is never reported.
 *
 * released_at has whole seconds: an app released in the second of the
 * listing that saw it (hr_feed_racy) is reported once more by the first
 * listing made after that second, whose page may well be a 304, since a
 * second release within that second leaves its stamp unchanged.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "hr_internal.h"
#include "hr_watch_feed.h"

struct hr_wfeed
{
	hr_feed		feed;			/* the core's: pages and ETags of the last listing */
	int			listed;			/* a listing has been recorded */
	hr_feed_app *known;			/* every app last seen, sorted by id */
	int			nknown;
};

hr_wfeed *
hr_wfeed_new(int page_size)
{
	hr_wfeed   *f = calloc(1, sizeof(hr_wfeed));

	if (f)
		f->feed.page_size = (page_size >= 1 && page_size <= HR_FEED_PAGE_MAX)
			? page_size : HR_FEED_PAGE_MAX;
	return f;
}

void
hr_wfeed_free(hr_wfeed *f)
{
	if (f == NULL)
		return;
	hr_feed_reset(&f->feed);
	hr_feed_apps_free(f->known, f->nknown);
	free(f);
}

static int
cmp_app(const void *a, const void *b)
{
	return strcmp(((const hr_feed_app *) a)->id, ((const hr_feed_app *) b)->id);
}

static int
same_release(const hr_feed_app *a, const hr_feed_app *b)
{
	if (a->released_at == NULL || b->released_at == NULL)
		return a->released_at == b->released_at;
	return strcmp(a->released_at, b->released_at) == 0;
}

/*
 * The apps last seen with the listing's (sorted) apps merged in, a listed
 * app replacing the one of its id; takes over both arrays' strings.  With
 * all, the listing covered the whole account: it alone is kept.
 */
static hr_code
remember(hr_wfeed *f, hr_feed_listing *l, int all, hr_error *err)
{
	hr_feed_app *merged;
	int			i = 0;
	int			j = 0;
	int			n = 0;

	if (all)
	{
		hr_feed_apps_free(f->known, f->nknown);
		f->known = l->apps;
		f->nknown = l->napps;
		l->apps = NULL;
		l->napps = 0;
		return HR_OK;
	}
	merged = malloc(sizeof(hr_feed_app) * (size_t) (f->nknown + l->napps + 1));
	if (merged == NULL)
		return hr_error_oom(err);
	while (i < f->nknown || j < l->napps)
	{
		int			c = i == f->nknown ? 1 : j == l->napps ? -1
			: strcmp(f->known[i].id, l->apps[j].id);

		if (c == 0)
		{
			/* the listing's copy wins: free the old one's strings */
			free(f->known[i].id);
			free(f->known[i].name);
			free(f->known[i].released_at);
			i++;
			continue;
		}
		merged[n++] = c < 0 ? f->known[i++] : l->apps[j++];
	}
	free(f->known);
	free(l->apps);
	f->known = merged;
	f->nknown = n;
	l->apps = NULL;
	l->napps = 0;
	return HR_OK;
}

hr_code
hr_wfeed_poll(hr_wfeed *f, hr_http *h, const hr_settings *s, const char *token,
			  hr_wfeed_change_fn changed, void *arg, hr_wfeed_stats *stats,
			  hr_error *err)
{
	hr_feed_listing l;
	hr_code		rc;
	int			i;

	memset(stats, 0, sizeof(*stats));
	rc = hr_feed_list(h, s, token, &f->feed, &l, err);
	stats->requests = l.requests;
	if (rc != HR_OK)
	{
		hr_feed_listing_free(&l);
		return rc;
	}
	stats->not_modified = l.pages_not_modified;
	stats->apps = l.apps_seen;
	if (l.napps > 1)
		qsort(l.apps, (size_t) l.napps, sizeof(hr_feed_app), cmp_app);
	for (i = 0; f->listed && i < l.napps; i++)
	{
		const hr_feed_app *was = f->nknown == 0 ? NULL
			: bsearch(&l.apps[i], f->known, (size_t) f->nknown, sizeof(hr_feed_app), cmp_app);

		if (was == NULL || !same_release(was, &l.apps[i]))
		{
			stats->changes++;
			changed(arg, l.apps[i].id, l.apps[i].name);
		}
		else if (was->racy && !hr_feed_racy(l.apps[i].released_at, l.listed_at))
			changed(arg, l.apps[i].id, l.apps[i].name);
	}
	for (i = 0; i < l.napps; i++)
		l.apps[i].racy = hr_feed_racy(l.apps[i].released_at, l.listed_at);
	rc = remember(f, &l, l.pages_not_modified == 0, err);
	hr_feed_listing_free(&l);
	if (rc != HR_OK)
	{
		/* the next listing must not take its 304s for "nothing changed" */
		hr_feed_reset(&f->feed);
		return rc;
	}
	/* the apps of 304 pages whose racy second has passed: once more */
	for (i = 0; i < f->nknown; i++)
	{
		hr_feed_app *k = &f->known[i];

		if (k->racy && !hr_feed_racy(k->released_at, l.listed_at))
		{
			k->racy = 0;
			if (f->listed)
				changed(arg, k->id, k->name);
		}
	}
	f->listed = 1;
	return HR_OK;
}
