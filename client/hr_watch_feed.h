/*-------------------------------------------------------------------------
 *
 * hr_watch_feed.h
 *		The release feed as heroku-pg-resolve watch uses it: list every app
 *		the token can see (GET /apps, paged by Range, each page conditional
 *		on its ETag) and tell which apps' released_at moved since the last
 *		listing.
 *
 * This small interface is all the watcher knows of the feed.  The listing
 * itself is the core's (src/hr_feed.c, the one the extension's feed uses);
 * client/hr_watch_feed.c only keeps what was seen and tells the changes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_FEED_H
#define HR_WATCH_FEED_H

#include "heroku_resolver.h"

typedef struct hr_wfeed hr_wfeed;

/* An app whose released_at differs from the last listing (id and name). */
typedef void (*hr_wfeed_change_fn) (void *arg, const char *id, const char *name);

/* What one listing cost and found. */
typedef struct hr_wfeed_stats
{
	int			requests;		/* GET /apps requests made */
	int			not_modified;	/* of which answered 304 */
	int			apps;			/* apps listed */
	int			changes;		/* callbacks made */
} hr_wfeed_stats;

/* page_size: the Range's max= (1..1000; others: 1000).  NULL on ENOMEM. */
extern hr_wfeed *hr_wfeed_new(int page_size);
extern void hr_wfeed_free(hr_wfeed *f);

/*
 * One listing, over the transport h.  The first one after hr_wfeed_new()
 * only records what it sees; later ones call changed() for each app whose
 * released_at differs (an app new to the list included).  On an error
 * nothing is recorded, so the next listing compares with the last good
 * one.  s gives the API URL, CA file, timeout, user agent and interrupt
 * callback; token is the API token.
 */
extern hr_code hr_wfeed_poll(hr_wfeed *f, hr_http *h, const hr_settings *s,
							 const char *token, hr_wfeed_change_fn changed, void *arg,
							 hr_wfeed_stats *stats, hr_error *err);

#endif							/* HR_WATCH_FEED_H */
