/*-------------------------------------------------------------------------
 *
 * pg_cache.h
 *		The resolution cache's layout, shared by its four files:
 *		pg_cache.c (the store), pg_cache_resolve.c (the resolve path),
 *		pg_cache_token.c (the caller's token digest, remembered per backend)
 *		and pg_cache_sql.c (the SQL functions that show and clear it).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_CACHE_H
#define PG_CACHE_H

#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#include "pg_heroku.h"
#include "pg_heal.h"

#define HR_CACHE_URL_MAX		4096	/* a cached URL, terminator included */
#define HR_CACHE_API_URL_MAX	512
#define HR_CACHE_APP_MAX		64
#define HR_CACHE_VAR_MAX		264
#define HR_CACHE_ETAG_MAX		256
#define HR_CACHE_BACKOFF_SLOTS	8
#define HR_CACHE_LOCAL_MAX		64	/* entries of a per-backend cache */
#define HR_CACHE_TRANCHE		"heroku_resolver"
#define HR_DIGEST_LEN			32	/* HMAC-SHA256 */
#define HR_CACHE_ROLE_SLOTS		32	/* roles whose request rate is shown */
#define HR_BACKOFF_MAX_S		900 /* a Retry-After is obeyed up to 15 min */
#define HR_NEGATIVE_TTL_MS		30000	/* a 404 is served from the cache */
#define HR_HEAL_MIN_MS			1000	/* one healing request per entry a second */

/*
 * Who asks for what.  token_digest is an HMAC, with the cache's own random
 * key, of the caller's effective token and CA settings: an answer is only
 * ever served to callers who fetched it or would fetch it with the same
 * token, and the token itself is never stored.
 */
typedef struct HrCacheKey
{
	const char *api_url;
	const char *app;
	const char *config_var;
	uint8		token_digest[HR_DIGEST_LEN];
	uint32		hash;
} HrCacheKey;

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
	uint8		token_digest[HR_DIGEST_LEN];
	bool		suspect;		/* a connection with the value failed: ask
								 * the API before serving it (pg_heal.c) */
	TimestampTz heal_asked_at;	/* last request sent while suspect (set as
								 * it lands); 0 when an answer brought
								 * another URL */
	TimestampTz negative_until; /* a 404 is shared until then */
	TimestampTz expires_at;		/* the value is wiped after this (the TTL and
								 * stale_if_error of the session that stored
								 * or revalidated it) */
	TimestampTz fetched_at;		/* when the request that gave url was sent */
	TimestampTz validated_at;	/* last 200 or 304 */
	TimestampTz last_used;
	uint64		hits;
	uint64		api_requests;
	int			last_status;	/* HTTP status of the last answer, 0 if none */
	TimestampTz changed_at;		/* the release feed or a refresh saw the app
								 * change then: a value fetched before is
								 * asked again (pg_cache_revalidate.c) */
	hr_error	last_err;		/* of the last failure (no secret) */

	/* heroku_resolver_refresh()'s throttle (pg_cache_revalidate.c) */
	TimestampTz refresh_asked_at;	/* a revalidation went to ask then */

	char		api_url[HR_CACHE_API_URL_MAX];
	char		app[HR_CACHE_APP_MAX];
	char		config_var[HR_CACHE_VAR_MAX];	/* as asked for */
	char		used_var[HR_CACHE_VAR_MAX]; /* as found (X or X_URL) */
	char		etag[HR_CACHE_ETAG_MAX];
	char		url[HR_CACHE_URL_MAX];	/* secret */
} HrCacheEntry;

/* No request to api_url with this token before until (after a 429). */
typedef struct HrBackoff
{
	char		api_url[HR_CACHE_API_URL_MAX];
	uint8		token_digest[HR_DIGEST_LEN];
	TimestampTz until;
} HrBackoff;

/* What heroku_resolver_status() shows of the release feed (pg_feed.c). */
typedef struct HrFeedStatus
{
	TimestampTz last_listing;	/* the last complete listing */
	int			apps_seen;		/* apps in it */
	uint64		changes;		/* apps whose released_at moved, since start */
	uint64		requests;		/* GET /apps requests, since start */
	hr_error	last_error;		/* of the last listing; code HR_OK if none */
} HrFeedStatus;

/* API requests made for one role, in one-minute buckets over an hour. */
typedef struct HrRoleRate
{
	Oid			roleid;			/* InvalidOid: slot free */
	uint64		requests;		/* since the cache was made */
	int64		minute[60];		/* the minute (since epoch) of each bucket */
	uint32		count[60];
} HrRoleRate;

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
	uint8		hmac_key[HR_DIGEST_LEN];	/* random, never shown */
	HrBackoff	backoff[HR_CACHE_BACKOFF_SLOTS];
	HrRoleRate	roles[HR_CACHE_ROLE_SLOTS];
	/* the background refresher (pg_worker.c) */
	int			worker_pid;
	Latch	   *worker_latch;	/* set to wake the worker (failure healing) */
	Oid			worker_dbid;	/* the worker's database (heroku.database) */
	HrHealServer heal[HR_HEAL_SLOTS];	/* servers whose connections failed */
	HrHealRecent healed[HR_HEAL_RECENT];	/* servers healed lately */
	char		worker_state[64];
	TimestampTz worker_last_run;
	HrFeedStatus feed;			/* the release feed (pg_feed.c) */
	HrCacheEntry entries[FLEXIBLE_ARRAY_MEMBER];
} HrCache;

/*
 * What one resolution served: its cache key and a hash of the URL, so that
 * a failed connection can be matched to the entry that gave it (pg_heal.c).
 */
typedef struct HrServed
{
	char		api_url[HR_CACHE_API_URL_MAX];
	char		app[HR_CACHE_APP_MAX];
	char		config_var[HR_CACHE_VAR_MAX];
	uint8		token_digest[HR_DIGEST_LEN];
	uint32		url_hash;
} HrServed;

/* the key of this backend's last resolution (pg_cache_resolve.c) */
extern HrServed hr_cache_last_served;

/* GUCs (pg_cache.c) */
extern int	hr_cache_ttl_ms;
extern int	hr_stale_if_error_ms;
extern int	hr_rate_limit_reserve;

/* pg_cache.c: the store.  Entry and back-off functions need the lock held. */
extern HrCache *hr_cache_get(void);
extern void hr_cache_lock(HrCache *c);
extern void hr_cache_unlock(HrCache *c);
extern void hr_cache_make_key(HrCache *c, HrCacheKey *key, const char *api_url,
							  const char *app, const char *config_var,
							  const char *token, const char *ca_file);
extern void hr_cache_key_finish(HrCacheKey *key);
/* pg_cache_token.c */
extern void hr_cache_caller_key(HrCache *c, HrCacheKey *key, const hr_settings *s,
								const char *api_url, const char *app,
								const char *config_var);
extern HrCacheEntry *hr_cache_find_entry(HrCache *c, const HrCacheKey *key);
extern HrCacheEntry *hr_cache_new_entry(HrCache *c, const HrCacheKey *key,
										TimestampTz now);
extern void hr_cache_wipe_entry(HrCacheEntry *e);
extern HrBackoff *hr_cache_find_backoff(HrCache *c, const HrCacheKey *key);
extern void hr_cache_set_backoff(HrCache *c, const HrCacheKey *key, long seconds,
								 TimestampTz now);
/* pg_heal.c: what a backend served, and marking its entry suspect */
extern void hr_served_set(HrServed *s, const HrCacheKey *key);
extern bool hr_cache_mark_suspect(const HrServed *s);
extern void hr_cache_count_request(HrCache *c, Oid roleid, TimestampTz now);
/* pg_cache_resolve.c: the role the worker's requests are charged to */
extern Oid	hr_cache_charge_role;
extern int64 hr_cache_role_last_hour(const HrRoleRate *r, TimestampTz now);

#endif							/* PG_CACHE_H */
