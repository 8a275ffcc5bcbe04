/*-------------------------------------------------------------------------
 *
 * pg_cache.c
 *		The resolution cache and the Heroku API rate-limit economy.
 *
 * With shared_preload_libraries the cache lives in shared memory, one for
 * the whole cluster, keyed by (api_url, app, config var) and guarded by one
 * LWLock.  Without the preload each backend keeps a private table that
 * behaves the same way.  An entry holds the raw URL (a secret, never shown),
 * the ETag to send as If-None-Match, and counters for the status functions.
 *
 * Single flight: the first backend to miss marks the entry busy and asks
 * the API without holding the lock; others missing the same key sleep on a
 * condition variable (interruptibly) until that flight ends, then take its
 * answer, or its error, without a request of their own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

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

/* GUCs */
static int	hr_cache_ttl_ms = 60 * 1000;
static int	hr_stale_if_error_ms = 5 * 60 * 1000;
static int	hr_rate_limit_reserve = 100;
static int	hr_cache_entries = 256;

static HrCache *cache = NULL;
static bool cache_shared = false;

/*
 * Set by the refresher: a fresh call takes the failure of a fresh request
 * made earlier in the same statement rather than asking again, so that a
 * round spends one request per (app, config var) during an outage too.
 * Interactive refreshes try every server.
 */
bool		hr_cache_share_fresh_failures = false;

/*
 * Set by a caller whose connection just failed (heroku_dblink_connect's
 * retry): a fresh answer must have been asked for after this moment, so an
 * answer another backend fetched earlier in the statement, possibly before
 * the credentials changed, is not taken for it.  0 = statement start.
 */
TimestampTz hr_cache_fresh_after = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(heroku_resolver_invalidate);
PG_FUNCTION_INFO_V1(heroku_resolver_cache);
PG_FUNCTION_INFO_V1(heroku_resolver_status);

static Size
cache_size(int nentries)
{
	return add_size(offsetof(HrCache, entries),
					mul_size(sizeof(HrCacheEntry), nentries));
}

static void
cache_reset(HrCache *c, int nentries, LWLock *lock)
{
	memset(c, 0, cache_size(nentries));
	c->lock = lock;
	c->nentries = nentries;
	c->ratelimit_remaining = -1;
	strlcpy(c->worker_state, "off", sizeof(c->worker_state));
	ConditionVariableInit(&c->flight_cv);
}

static void
hr_cache_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(cache_size(hr_cache_entries));
	RequestNamedLWLockTranche(HR_CACHE_TRANCHE, 1);
}

static void
hr_cache_shmem_startup(void)
{
	bool		found;
	HrCache    *c;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	c = ShmemInitStruct("heroku_resolver cache", cache_size(hr_cache_entries), &found);
	if (!found)
		cache_reset(c, hr_cache_entries,
					&(GetNamedLWLockTranche(HR_CACHE_TRANCHE))->lock);
	LWLockRelease(AddinShmemInitLock);
	cache = c;
	cache_shared = true;
}

/* GUCs, and shared memory when preloaded. */
void
hr_cache_init(void)
{
	DefineCustomIntVariable("heroku.cache_ttl",
							"How long a resolved URL is served from the cache without asking the Heroku API.",
							"0 turns the cache off: every call asks the API.",
							&hr_cache_ttl_ms,
							60 * 1000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("heroku.stale_if_error",
							"How old a cached URL may be and still be served, with a WARNING, when the Heroku API fails.",
							"0 never serves a stale URL.",
							&hr_stale_if_error_ms,
							5 * 60 * 1000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("heroku.rate_limit_reserve",
							"Below this many remaining Heroku API requests, cached URLs are served past their TTL (within heroku.stale_if_error).",
							NULL,
							&hr_rate_limit_reserve,
							100, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	/* the shared cache exists only when preloaded; so does its size */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("heroku.cache_entries",
								"Number of entries of the shared resolution cache.",
								NULL,
								&hr_cache_entries,
								256, 16, 100000,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
		hr_install_shmem_request_hook(prev_shmem_request_hook, hr_cache_shmem_request);
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = hr_cache_shmem_startup;
	}
}

/* The cache: the shared one when preloaded, else this backend's own. */
static HrCache *
get_cache(void)
{
	if (cache == NULL)
	{
		int			n = Min(hr_cache_entries, HR_CACHE_LOCAL_MAX);

		cache = MemoryContextAlloc(TopMemoryContext, cache_size(n));
		cache_reset(cache, n, NULL);
		cache_shared = false;
	}
	return cache;
}

static void
cache_lock(HrCache *c)
{
	if (c->lock)
		LWLockAcquire(c->lock, LW_EXCLUSIVE);
}

static void
cache_unlock(HrCache *c)
{
	if (c->lock)
		LWLockRelease(c->lock);
}

/* Publicly: is the cache in shared memory? */
bool
hr_cache_is_shared(void)
{
	return cache_shared;
}

/* The refresher's state as heroku_resolver_status() shows it. */
void
hr_cache_set_worker_state(const char *state, bool ran)
{
	if (!cache_shared)
		return;
	cache_lock(cache);
	strlcpy(cache->worker_state, state, sizeof(cache->worker_state));
	cache->worker_pid = MyProcPid;
	if (ran)
		cache->worker_last_run = GetCurrentTimestamp();
	cache_unlock(cache);
}

static uint32
key_hash(const char *api_url, const char *app, const char *config_var)
{
	uint32		h = hash_bytes((const unsigned char *) api_url, strlen(api_url));

	h = hash_combine(h, hash_bytes((const unsigned char *) app, strlen(app)));
	return hash_combine(h, hash_bytes((const unsigned char *) config_var,
									  strlen(config_var)));
}

static HrCacheEntry *
find_entry(HrCache *c, uint32 hash, const char *api_url, const char *app,
		   const char *config_var)
{
	int			i;

	for (i = 0; i < c->nentries; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		if (e->in_use && e->hash == hash && strcmp(e->app, app) == 0 &&
			strcmp(e->config_var, config_var) == 0 &&
			strcmp(e->api_url, api_url) == 0)
			return e;
	}
	return NULL;
}

/* A free entry, else the least recently used idle one; NULL if all busy. */
static HrCacheEntry *
new_entry(HrCache *c, uint32 hash, const char *api_url, const char *app,
		  const char *config_var)
{
	HrCacheEntry *victim = NULL;
	int			i;

	for (i = 0; i < c->nentries; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		if (!e->in_use)
		{
			victim = e;
			break;
		}
		if (!e->busy && (victim == NULL || e->last_used < victim->last_used))
			victim = e;
	}
	if (victim == NULL)
		return NULL;
	explicit_bzero(victim->url, sizeof(victim->url));
	memset(victim, 0, offsetof(HrCacheEntry, url));
	victim->in_use = true;
	victim->hash = hash;
	strlcpy(victim->api_url, api_url, sizeof(victim->api_url));
	strlcpy(victim->app, app, sizeof(victim->app));
	strlcpy(victim->config_var, config_var, sizeof(victim->config_var));
	return victim;
}

static HrBackoff *
find_backoff(HrCache *c, const char *api_url)
{
	int			i;

	for (i = 0; i < HR_CACHE_BACKOFF_SLOTS; i++)
		if (c->backoff[i].until != 0 && strcmp(c->backoff[i].api_url, api_url) == 0)
			return &c->backoff[i];
	return NULL;
}

/* Remember a 429: no request to api_url for seconds. */
static void
set_backoff(HrCache *c, const char *api_url, long seconds, TimestampTz now)
{
	HrBackoff  *b = find_backoff(c, api_url);
	int			i;

	if (b == NULL)
	{
		/* the slot ending first makes room */
		b = &c->backoff[0];
		for (i = 1; i < HR_CACHE_BACKOFF_SLOTS; i++)
			if (c->backoff[i].until < b->until)
				b = &c->backoff[i];
		strlcpy(b->api_url, api_url, sizeof(b->api_url));
	}
	b->until = TimestampTzPlusMilliseconds(now, seconds * 1000);
}

/* What a call takes away from the cache. */
typedef struct HrCacheCopy
{
	bool		has_value;
	TimestampTz validated_at;
	char		used_var[HR_CACHE_VAR_MAX];
	char		url[HR_CACHE_URL_MAX];
} HrCacheCopy;

static void
take_copy(HrCacheCopy *cp, const HrCacheEntry *e)
{
	cp->has_value = e != NULL && e->has_value;
	if (!cp->has_value)
		return;
	cp->validated_at = e->validated_at;
	strlcpy(cp->used_var, e->used_var, sizeof(cp->used_var));
	strlcpy(cp->url, e->url, sizeof(cp->url));
}

/* Hand the copied URL to the caller in palloc'd memory, wiping the copy. */
static char *
give_copy(HrCacheCopy *cp, char **used_var)
{
	char	   *url = pstrdup(cp->url);

	*used_var = pstrdup(cp->used_var);
	explicit_bzero(cp->url, sizeof(cp->url));
	return url;
}

/* Failures of the API itself, for which a stale answer may be served. */
static bool
is_transient(hr_code code)
{
	return code == HR_EUNAVAILABLE || code == HR_ERATELIMIT;
}

/* Failures saying the cached value is no longer the caller's to have. */
static bool
drops_value(hr_code code)
{
	return code == HR_EAUTH || code == HR_EFORBIDDEN || code == HR_ENOTFOUND ||
		code == HR_EPROTOCOL || code == HR_EBADURL;
}

/*
 * A failed resolution: serve the stale copy with a WARNING when allowed,
 * else raise err.
 */
static char *
fail_or_stale(const hr_error *err, HrCacheCopy *cp, bool fresh,
			  const char *app, const char *config_var, char **used_var)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!fresh && is_transient(err->code) && cp->has_value &&
		hr_stale_if_error_ms > 0 &&
		now < TimestampTzPlusMilliseconds(cp->validated_at, hr_stale_if_error_ms))
	{
		ereport(WARNING,
				(errcode(err->code == HR_ERATELIMIT ? ERRCODE_CONFIGURATION_LIMIT_EXCEEDED
						 : ERRCODE_CONNECTION_FAILURE),
				 errmsg("serving the cached value of config var \"%s\" of Heroku app \"%s\" from %s: the Heroku API failed",
						config_var, app, timestamptz_to_str(cp->validated_at)),
				 errdetail_internal("%s", err->message)));
		return give_copy(cp, used_var);
	}
	explicit_bzero(cp->url, sizeof(cp->url));
	hr_pg_report(ERROR, err);
}

/* One request, with its effect on the counters; no lock held. */
static hr_code
ask_api(HrCache *c, hr_http *http, const hr_settings *s, const char *api_url,
		const char *app, const char *config_var, const char *etag, hr_fetch *f,
		hr_error *err)
{
	hr_code		rc;
	TimestampTz now;

	memset(err, 0, sizeof(*err));
	rc = hr_fetch_config_var(http, s, app, config_var, etag, f, err);
	now = GetCurrentTimestamp();

	cache_lock(c);
	if (rc != HR_ECANCELED && (rc == HR_OK || err->http_status != 0 ||
							   rc == HR_EUNAVAILABLE))
		c->api_requests++;
	if (rc == HR_OK && f->http_status == 304)
		c->not_modified++;
	if (f->ratelimit_remaining >= 0)
	{
		c->ratelimit_remaining = f->ratelimit_remaining;
		c->ratelimit_at = now;
	}
	if (rc == HR_ERATELIMIT)
	{
		c->rate_limited++;
		set_backoff(c, api_url, err->retry_after > 0 ? err->retry_after : 60, now);
	}
	cache_unlock(c);
	return rc;
}

/* A palloc'd copy of s, or NULL when out of memory (never throws). */
static char *
pstrdup_noerror(const char *s)
{
	size_t		len = strlen(s) + 1;
	char	   *d = MemoryContextAllocExtended(CurrentMemoryContext, len,
											   MCXT_ALLOC_NO_OOM);

	if (d)
		memcpy(d, s, len);
	return d;
}

/* The value of a 200 answer in palloc'd memory; frees the answer. */
static char *
take_fetched(hr_fetch *f, char **used_var)
{
	char	   *url = pstrdup_noerror(f->value);

	*used_var = pstrdup_noerror(f->config_var);
	hr_fetch_free(f);
	if (url == NULL || *used_var == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return url;
}

/* No cache: ask the API, as every call does with heroku.cache_ttl = 0. */
static char *
resolve_uncached(HrCache *c, const hr_settings *s, const char *api_url,
				 const char *app, const char *config_var, char **used_var)
{
	hr_fetch	f;
	hr_error	err;

	if (ask_api(c, hr_pg_http(), s, api_url, app, config_var, NULL, &f, &err) != HR_OK)
		hr_pg_report(ERROR, &err);
	return take_fetched(&f, used_var);
}

static void
check_length(const char *what, const char *s, size_t max, const char *app,
			 const char *config_var)
{
	if (strlen(s) >= max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s for config var \"%s\" of Heroku app \"%s\" is too long for the resolution cache",
						what, config_var, app),
				 errdetail("It has %zu bytes; the cache holds at most %zu.", strlen(s), max - 1),
				 errhint("Set heroku.cache_ttl = 0 to resolve it without the cache.")));
}

/*
 * The URL in app's config var, from the cache or the API.  Returns a
 * palloc'd URL (a secret) and sets *used_var to the name it was found
 * under.  fresh = true asks the API unless another fresh call already did
 * during the current statement, and never takes a stale answer; a refresh
 * of many servers sharing one app in one statement therefore asks once.
 */
char *
hr_cache_resolve(const hr_settings *s, const char *app, const char *config_var,
				 bool fresh, char **used_var)
{
	HrCache    *c = get_cache();
	hr_http    *http = hr_pg_http();	/* may throw: before any flight */
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	TimestampTz min_fetched = fresh ? Max(GetCurrentStatementStartTimestamp(),
										  hr_cache_fresh_after) : 0;
	HrCacheCopy *cp;
	HrCacheEntry *e;
	uint32		hash;
	bool		waited = false;
	uint64		seen_flight = 0;
	hr_fetch	f;
	hr_error	err;
	hr_code		rc;
	char		etag[HR_CACHE_ETAG_MAX];
	TimestampTz sent_at;

	/* invalid names go to the core, which refuses them with its message */
	if (hr_cache_ttl_ms == 0 || !hr_valid_app(app) || !hr_valid_config_var(config_var))
		return resolve_uncached(c, s, api_url, app, config_var, used_var);
	check_length("the API URL", api_url, HR_CACHE_API_URL_MAX, app, config_var);

	hash = key_hash(api_url, app, config_var);
	cp = palloc0(sizeof(HrCacheCopy));

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		HrBackoff  *b;

		CHECK_FOR_INTERRUPTS();
		cache_lock(c);
		e = find_entry(c, hash, api_url, app, config_var);

		/*
		 * The flight we waited for failed, or (fresh) one sent during this
		 * statement did: share its error, no request.
		 */
		if (e != NULL && e->last_flight_failed &&
			((waited && e->flight != seen_flight) ||
			 (fresh && hr_cache_share_fresh_failures && !e->busy &&
			  e->last_flight_fresh && e->last_sent_at >= min_fetched)))
		{
			err = e->last_err;
			take_copy(cp, e);
			cache_unlock(c);
			return fail_or_stale(&err, cp, fresh, app, config_var, used_var);
		}

		if (e != NULL && e->has_value)
		{
			bool		hit;

			/*
			 * fresh: only what a fresh request brought during this
			 * statement, e.g. for another server of the same app.  A plain
			 * request made in this statement does not count: a failed
			 * connection with it is what sends a caller here.
			 */
			if (fresh)
				hit = e->fresh_sent_at != 0 && e->fresh_sent_at >= min_fetched;
			else
			{
				hit = now < TimestampTzPlusMilliseconds(e->validated_at, hr_cache_ttl_ms);
				/* low budget: past the TTL, within stale_if_error */
				if (!hit && c->ratelimit_remaining >= 0 &&
					c->ratelimit_remaining < hr_rate_limit_reserve &&
					now < TimestampTzPlusMilliseconds(e->validated_at, hr_stale_if_error_ms))
					hit = true;
			}
			if (hit)
			{
				e->hits++;
				e->last_used = now;
				take_copy(cp, e);
				cache_unlock(c);
				return give_copy(cp, used_var);
			}
		}

		/* someone else is asking: wait for the end of that flight */
		if (e != NULL && e->busy && e->busy_pid != MyProcPid &&
			now < TimestampTzPlusMilliseconds(e->busy_since,
											  2 * (int64) Max(s->timeout_ms, 0) + 5000))
		{
			seen_flight = e->flight;
			waited = true;
			if (c->lock)
			{
				ConditionVariablePrepareToSleep(&c->flight_cv);
				cache_unlock(c);
				for (;;)
				{
					bool		done;

					ConditionVariableTimedSleep(&c->flight_cv, 100, PG_WAIT_EXTENSION);
					CHECK_FOR_INTERRUPTS();
					LWLockAcquire(c->lock, LW_SHARED);
					e = find_entry(c, hash, api_url, app, config_var);
					done = e == NULL || e->flight != seen_flight || !e->busy;
					LWLockRelease(c->lock);
					if (done)
						break;
				}
				ConditionVariableCancelSleep();
			}
			else
				cache_unlock(c);
			continue;
		}

		/* no request during a 429 back-off */
		b = find_backoff(c, api_url);
		if (b != NULL && now < b->until)
		{
			memset(&err, 0, sizeof(err));
			err.code = HR_ERATELIMIT;
			err.http_status = 429;
			err.retry_after = -1;
			snprintf(err.message, sizeof(err.message),
					 "Heroku API rate limit reached while reading config var \"%s\" of app \"%s\"",
					 config_var, app);
			snprintf(err.detail, sizeof(err.detail),
					 "After a 429 answer no request is made to the Heroku API before %s.",
					 timestamptz_to_str(b->until));
			take_copy(cp, e);
			cache_unlock(c);
			return fail_or_stale(&err, cp, fresh, app, config_var, used_var);
		}

		/* lead the flight */
		if (e == NULL)
			e = new_entry(c, hash, api_url, app, config_var);
		if (e == NULL)
		{
			/* every entry is busy: ask without the cache */
			cache_unlock(c);
			pfree(cp);
			return resolve_uncached(c, s, api_url, app, config_var, used_var);
		}
		e->busy = true;
		e->busy_pid = MyProcPid;
		e->busy_since = now;
		e->discard_flight = false;
		e->last_used = now;
		strlcpy(etag, e->has_value ? e->etag : "", sizeof(etag));
		cache_unlock(c);
		break;
	}

	/*
	 * The request.  The core never throws; anything that could (an
	 * ereport, an interrupt) waits until the flight has been closed below.
	 */
	sent_at = GetCurrentTimestamp();
	rc = ask_api(c, http, s, api_url, app, config_var, etag[0] ? etag : NULL, &f, &err);
	if (rc == HR_OK && f.http_status != 304 && strlen(f.value) >= HR_CACHE_URL_MAX)
	{
		size_t		len = strlen(f.value);

		hr_fetch_free(&f);
		memset(&err, 0, sizeof(err));
		err.code = HR_EBADURL;
		snprintf(err.message, sizeof(err.message),
				 "config var \"%s\" of Heroku app \"%s\" is too long for the resolution cache",
				 config_var, app);
		snprintf(err.detail, sizeof(err.detail),
				 "It has %zu bytes; the cache holds at most %d.", len, HR_CACHE_URL_MAX - 1);
		snprintf(err.hint, sizeof(err.hint),
				 "Set heroku.cache_ttl = 0 to resolve it without the cache.");
		rc = HR_EBADURL;
	}
	if (rc == HR_OK && f.http_status == 304 && etag[0] == '\0')
	{
		/* cannot happen: a 304 answers only an If-None-Match */
		hr_fetch_free(&f);
		memset(&err, 0, sizeof(err));
		err.code = HR_EPROTOCOL;
		snprintf(err.message, sizeof(err.message),
				 "unexpected answer from the Heroku API for app \"%s\"", app);
		rc = HR_EPROTOCOL;
	}

	cache_lock(c);
	/* the entry stays ours while busy: nobody evicts a busy entry */
	e->api_requests++;
	e->last_status = (int) (rc == HR_OK ? f.http_status : err.http_status);
	if (rc == HR_OK)
	{
		memset(&e->last_err, 0, sizeof(e->last_err));
		if (!e->discard_flight)
		{
			if (f.http_status != 304)
			{
				strlcpy(e->url, f.value, sizeof(e->url));
				strlcpy(e->used_var, f.config_var, sizeof(e->used_var));
				strlcpy(e->etag, f.etag ? f.etag : "", sizeof(e->etag));
				e->has_value = true;
			}
			e->fetched_at = sent_at;
			e->validated_at = GetCurrentTimestamp();
			if (fresh)
				e->fresh_sent_at = sent_at;
		}
		e->last_flight_failed = false;
	}
	else if (rc == HR_ECANCELED)
		e->last_flight_failed = false;	/* the waiters ask for themselves */
	else
	{
		e->last_err = err;
		e->last_flight_failed = true;
		if (drops_value(rc))
		{
			e->has_value = false;
			e->etag[0] = '\0';
			explicit_bzero(e->url, sizeof(e->url));
		}
	}
	if (rc == HR_OK && f.http_status == 304)
		take_copy(cp, e);
	else if (rc != HR_OK)
		take_copy(cp, e);
	e->last_sent_at = sent_at;
	e->last_flight_fresh = fresh;
	e->busy = false;
	e->busy_pid = 0;
	e->flight++;
	cache_unlock(c);
	if (c->lock)
		ConditionVariableBroadcast(&c->flight_cv);

	if (rc != HR_OK)
		return fail_or_stale(&err, cp, fresh, app, config_var, used_var);
	if (f.http_status == 304)
	{
		hr_fetch_free(&f);
		if (!cp->has_value)
		{
			/* invalidated during the flight: ask again, plainly */
			pfree(cp);
			return resolve_uncached(c, s, api_url, app, config_var, used_var);
		}
		return give_copy(cp, used_var);
	}
	pfree(cp);
	return take_fetched(&f, used_var);
}

/* heroku_resolver_invalidate(app, config_var): drop matching entries. */
Datum
heroku_resolver_invalidate(PG_FUNCTION_ARGS)
{
	char	   *app = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *config_var = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	HrCache    *c = get_cache();
	int			n = 0;
	int			i;

	cache_lock(c);
	for (i = 0; i < c->nentries; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		if (!e->in_use || (app && strcmp(e->app, app) != 0) ||
			(config_var && strcmp(e->config_var, config_var) != 0))
			continue;
		n++;
		explicit_bzero(e->url, sizeof(e->url));
		if (e->busy)
		{
			/* its flight ends without storing what it brings */
			e->discard_flight = true;
			e->has_value = false;
			e->etag[0] = '\0';
		}
		else
			memset(e, 0, offsetof(HrCacheEntry, url));
	}
	cache_unlock(c);
	PG_RETURN_INT32(n);
}

static Datum
timestamp_or_null(TimestampTz t, bool *isnull)
{
	*isnull = (t == 0);
	return TimestampTzGetDatum(t);
}

/* heroku_resolver_cache(): one row per entry, never a user or password. */
Datum
heroku_resolver_cache(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HrCache    *c = get_cache();
	HrCacheEntry *e = palloc(sizeof(HrCacheEntry));
	int			ttl = hr_cache_ttl_ms;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < c->nentries; i++)
	{
		Datum		values[11];
		bool		nulls[11];
		hr_conninfo ci;
		hr_error	err;
		const char *v;
		bool		parsed = false;

		cache_lock(c);
		memcpy(e, &c->entries[i], sizeof(HrCacheEntry));
		cache_unlock(c);
		if (!e->in_use)
			continue;

		memset(nulls, 0, sizeof(nulls));
		memset(&ci, 0, sizeof(ci));
		if (e->has_value)
			parsed = hr_url_parse(e->url, HR_SSLMODE_REQUIRE, e->app, e->config_var,
								  &ci, &err) == HR_OK;
		explicit_bzero(e->url, sizeof(e->url));

		values[0] = CStringGetTextDatum(e->app);
		values[1] = CStringGetTextDatum(e->config_var);
		v = parsed ? hr_conninfo_get(&ci, "host") : NULL;
		nulls[2] = v == NULL;
		values[2] = v ? CStringGetTextDatum(v) : (Datum) 0;
		v = parsed ? hr_conninfo_get(&ci, "port") : NULL;
		nulls[3] = v == NULL;
		values[3] = v ? CStringGetTextDatum(v) : (Datum) 0;
		v = parsed ? hr_conninfo_get(&ci, "dbname") : NULL;
		nulls[4] = v == NULL;
		values[4] = v ? CStringGetTextDatum(v) : (Datum) 0;
		if (parsed)
			hr_conninfo_free(&ci);
		values[5] = timestamp_or_null(e->has_value ? e->fetched_at : 0, &nulls[5]);
		values[6] = timestamp_or_null(e->has_value ?
									  TimestampTzPlusMilliseconds(e->validated_at, ttl) : 0,
									  &nulls[6]);
		values[7] = Int64GetDatum((int64) e->hits);
		values[8] = Int64GetDatum((int64) e->api_requests);
		nulls[9] = e->last_status == 0;
		values[9] = Int32GetDatum(e->last_status);
		nulls[10] = e->last_err.code == HR_OK;
		values[10] = nulls[10] ? (Datum) 0 : CStringGetTextDatum(e->last_err.message);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(e);
	return (Datum) 0;
}

/* heroku_resolver_status(): one row about the cache, the API and the worker. */
Datum
heroku_resolver_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	HrCache    *c = get_cache();
	Datum		values[12];
	bool		nulls[12];
	int			entries = 0;
	TimestampTz backoff_until = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));

	cache_lock(c);
	for (i = 0; i < c->nentries; i++)
		if (c->entries[i].in_use)
			entries++;
	for (i = 0; i < HR_CACHE_BACKOFF_SLOTS; i++)
		if (c->backoff[i].until > now && c->backoff[i].until > backoff_until)
			backoff_until = c->backoff[i].until;
	values[0] = BoolGetDatum(c->lock != NULL);
	values[1] = Int32GetDatum(entries);
	values[2] = Int32GetDatum(c->nentries);
	values[3] = Int64GetDatum((int64) c->api_requests);
	values[4] = Int64GetDatum((int64) c->not_modified);
	values[5] = Int64GetDatum((int64) c->rate_limited);
	nulls[6] = c->ratelimit_remaining < 0;
	values[6] = Int64GetDatum((int64) c->ratelimit_remaining);
	values[7] = timestamp_or_null(c->ratelimit_at, &nulls[7]);
	values[8] = timestamp_or_null(backoff_until, &nulls[8]);
	values[9] = CStringGetTextDatum(c->worker_state);
	nulls[10] = c->worker_pid == 0;
	values[10] = Int32GetDatum(c->worker_pid);
	values[11] = timestamp_or_null(c->worker_last_run, &nulls[11]);
	cache_unlock(c);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
