/*-------------------------------------------------------------------------
 *
 * pg_cache.c
 *		The resolution cache's store: its GUCs, where it lives, its lock,
 *		and finding, making and evicting entries and back-offs.
 *
 * With shared_preload_libraries the cache lives in shared memory, one for
 * the whole cluster, keyed by (api_url, app, config var) and guarded by one
 * LWLock.  Without the preload each backend keeps a private table that
 * behaves the same way.  An entry holds the raw URL (a secret, never shown),
 * the ETag to send as If-None-Match, and counters for the status functions.
 * How a resolution uses the store is described in pg_cache_resolve.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

/* GUCs */
int			hr_cache_ttl_ms = 60 * 1000;
int			hr_stale_if_error_ms = 5 * 60 * 1000;
int			hr_rate_limit_reserve = 100;
static int	hr_cache_entries = 256;

static HrCache *cache = NULL;
static bool cache_shared = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

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
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = hr_cache_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = hr_cache_shmem_startup;
	}
}

/* The cache: the shared one when preloaded, else this backend's own. */
HrCache *
hr_cache_get(void)
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

void
hr_cache_lock(HrCache *c)
{
	if (c->lock)
		LWLockAcquire(c->lock, LW_EXCLUSIVE);
}

void
hr_cache_unlock(HrCache *c)
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
	hr_cache_lock(cache);
	strlcpy(cache->worker_state, state, sizeof(cache->worker_state));
	cache->worker_pid = MyProcPid;
	if (ran)
		cache->worker_last_run = GetCurrentTimestamp();
	hr_cache_unlock(cache);
}

uint32
hr_cache_key_hash(const char *api_url, const char *app, const char *config_var)
{
	uint32		h = hash_bytes((const unsigned char *) api_url, strlen(api_url));

	h = hash_combine(h, hash_bytes((const unsigned char *) app, strlen(app)));
	return hash_combine(h, hash_bytes((const unsigned char *) config_var,
									  strlen(config_var)));
}

HrCacheEntry *
hr_cache_find_entry(HrCache *c, uint32 hash, const char *api_url, const char *app,
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
HrCacheEntry *
hr_cache_new_entry(HrCache *c, uint32 hash, const char *api_url, const char *app,
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

HrBackoff *
hr_cache_find_backoff(HrCache *c, const char *api_url)
{
	int			i;

	for (i = 0; i < HR_CACHE_BACKOFF_SLOTS; i++)
		if (c->backoff[i].until != 0 && strcmp(c->backoff[i].api_url, api_url) == 0)
			return &c->backoff[i];
	return NULL;
}

/* Remember a 429: no request to api_url for seconds. */
void
hr_cache_set_backoff(HrCache *c, const char *api_url, long seconds, TimestampTz now)
{
	HrBackoff  *b = hr_cache_find_backoff(c, api_url);
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
