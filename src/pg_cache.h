/*-------------------------------------------------------------------------
 *
 * pg_cache.h
 *		The resolution cache's layout, shared by its three files:
 *		pg_cache.c (the store), pg_cache_resolve.c (the resolve path) and
 *		pg_cache_sql.c (the SQL functions that show and clear it).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_CACHE_H
#define PG_CACHE_H

#include "storage/condition_variable.h"
#include "storage/lwlock.h"

#include "pg_heroku.h"

#define HR_CACHE_URL_MAX		4096	/* a cached URL, terminator included */
#define HR_CACHE_API_URL_MAX	512
#define HR_CACHE_APP_MAX		64
#define HR_CACHE_VAR_MAX		264
#define HR_CACHE_ETAG_MAX		256
#define HR_CACHE_BACKOFF_SLOTS	8
#define HR_CACHE_LOCAL_MAX		64	/* entries of a per-backend cache */
#define HR_CACHE_TRANCHE		"heroku_resolver"

typedef struct HrCacheEntry
{
	bool		in_use;
	bool		has_value;		/* url, used_var and etag are valid */
	bool		busy;			/* a request for this key is in flight */
	bool		discard_flight; /* invalidated during the flight */
	bool		last_flight_failed; /* the flight that ended last failed */
	bool		last_flight_fresh;	/* that flight was led by a fresh call */
	TimestampTz last_sent_at;	/* when that flight's request was sent */
	TimestampTz fresh_sent_at;	/* request of the last fresh flight giving url */
	int			busy_pid;
	TimestampTz busy_since;
	uint64		flight;			/* number of flights ended */
	uint32		hash;
	TimestampTz fetched_at;		/* when the request that gave url was sent */
	TimestampTz validated_at;	/* last 200 or 304 */
	TimestampTz last_used;
	uint64		hits;
	uint64		api_requests;
	int			last_status;	/* HTTP status of the last answer, 0 if none */
	hr_error	last_err;		/* of the last failure (no secret) */
	char		api_url[HR_CACHE_API_URL_MAX];
	char		app[HR_CACHE_APP_MAX];
	char		config_var[HR_CACHE_VAR_MAX];	/* as asked for */
	char		used_var[HR_CACHE_VAR_MAX]; /* as found (X or X_URL) */
	char		etag[HR_CACHE_ETAG_MAX];
	char		url[HR_CACHE_URL_MAX];	/* secret */
} HrCacheEntry;

/* No request to api_url before until (after a 429). */
typedef struct HrBackoff
{
	char		api_url[HR_CACHE_API_URL_MAX];
	TimestampTz until;
} HrBackoff;

typedef struct HrCache
{
	LWLock	   *lock;			/* NULL for a per-backend cache */
	ConditionVariable flight_cv;	/* broadcast when a flight ends */
	int			nentries;
	uint64		api_requests;
	uint64		not_modified;
	uint64		rate_limited;
	long		ratelimit_remaining;	/* -1: not known yet */
	TimestampTz ratelimit_at;
	HrBackoff	backoff[HR_CACHE_BACKOFF_SLOTS];
	/* the background refresher (pg_worker.c) */
	int			worker_pid;
	char		worker_state[64];
	TimestampTz worker_last_run;
	HrCacheEntry entries[FLEXIBLE_ARRAY_MEMBER];
} HrCache;

/* GUCs (pg_cache.c) */
extern int	hr_cache_ttl_ms;
extern int	hr_stale_if_error_ms;
extern int	hr_rate_limit_reserve;

/* pg_cache.c: the store.  Entry and back-off functions need the lock held. */
extern HrCache *hr_cache_get(void);
extern void hr_cache_lock(HrCache *c);
extern void hr_cache_unlock(HrCache *c);
extern uint32 hr_cache_key_hash(const char *api_url, const char *app,
								const char *config_var);
extern HrCacheEntry *hr_cache_find_entry(HrCache *c, uint32 hash,
										 const char *api_url, const char *app,
										 const char *config_var);
extern HrCacheEntry *hr_cache_new_entry(HrCache *c, uint32 hash,
										const char *api_url, const char *app,
										const char *config_var);
extern HrBackoff *hr_cache_find_backoff(HrCache *c, const char *api_url);
extern void hr_cache_set_backoff(HrCache *c, const char *api_url, long seconds,
								 TimestampTz now);

#endif							/* PG_CACHE_H */
