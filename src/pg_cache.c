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

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/hashfn.h"
#include "lib/stringinfo.h"
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
	if (!pg_strong_random(c->hmac_key, sizeof(c->hmac_key)))
		elog(ERROR, "could not generate a random key for the resolution cache");
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
	cache->worker_latch = MyLatch;
	cache->worker_dbid = MyDatabaseId;
	if (ran)
		cache->worker_last_run = GetCurrentTimestamp();
	hr_cache_unlock(cache);
}

/*
 * Fill key for (api_url, app, config_var) asked with token (and ca_file):
 * the digest is HMAC-SHA256 under the cache's random key, so neither the
 * token nor a plain hash of it (guessable for a short secret) is stored.
 */
void
hr_cache_make_key(HrCache *c, HrCacheKey *key, const char *api_url,
				  const char *app, const char *config_var, const char *token,
				  const char *ca_file)
{
	StringInfoData who;
	unsigned int len = 0;

	initStringInfo(&who);
	appendStringInfoString(&who, token);
	appendStringInfoChar(&who, '\0');
	appendStringInfoString(&who, ca_file ? ca_file : "");
	if (HMAC(EVP_sha256(), c->hmac_key, HR_DIGEST_LEN, (unsigned char *) who.data,
			 who.len, key->token_digest, &len) == NULL || len != HR_DIGEST_LEN)
		elog(ERROR, "could not compute an HMAC-SHA256");
	explicit_bzero(who.data, who.len);
	pfree(who.data);
	key->api_url = api_url;
	key->app = app;
	key->config_var = config_var;
	hr_cache_key_finish(key);
}

/* Set key->hash from its other fields. */
void
hr_cache_key_finish(HrCacheKey *key)
{
	key->hash = hash_bytes((const unsigned char *) key->api_url, strlen(key->api_url));
	key->hash = hash_combine(key->hash, hash_bytes((const unsigned char *) key->app,
												   strlen(key->app)));
	key->hash = hash_combine(key->hash, hash_bytes((const unsigned char *) key->config_var,
												   strlen(key->config_var)));
	key->hash = hash_combine(key->hash, hash_bytes(key->token_digest, HR_DIGEST_LEN));
}

/* Forget an entry's value, wiping the URL. */
void
hr_cache_wipe_entry(HrCacheEntry *e)
{
	explicit_bzero(e->url, sizeof(e->url));
	e->has_value = false;
	e->etag[0] = '\0';
}

/*
 * A value nobody may be served any more: past the TTL and stale_if_error of
 * the session that stored it (a session with shorter settings of its own
 * does not cut the value short for the others).
 */
static bool
is_expired(const HrCacheEntry *e, TimestampTz now)
{
	if (e->busy)
		return false;
	if (e->has_value)
		return now >= e->expires_at;
	return now >= e->negative_until;
}

/*
 * The entry for key, or NULL.  The same pass wipes every value that has
 * expired, so no URL stays in memory longer than it can be served.
 */
HrCacheEntry *
hr_cache_find_entry(HrCache *c, const HrCacheKey *key)
{
	TimestampTz now = GetCurrentTimestamp();
	HrCacheEntry *found = NULL;
	int			i;

	for (i = 0; i < c->nentries; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		if (!e->in_use)
			continue;
		if (e->has_value && is_expired(e, now))
			hr_cache_wipe_entry(e);
		if (found == NULL && e->hash == key->hash &&
			memcmp(e->token_digest, key->token_digest, HR_DIGEST_LEN) == 0 &&
			strcmp(e->app, key->app) == 0 &&
			strcmp(e->config_var, key->config_var) == 0 &&
			strcmp(e->api_url, key->api_url) == 0)
			found = e;
	}
	return found;
}

/*
 * An entry for key: a free one, else an expired one, else the least
 * recently used idle entry of the same token, else of anyone.  So a caller
 * evicts another token's live entries only when the cache holds nothing
 * else.  NULL if every entry is busy.
 */
HrCacheEntry *
hr_cache_new_entry(HrCache *c, const HrCacheKey *key, TimestampTz now)
{
	HrCacheEntry *victim = NULL;
	HrCacheEntry *own = NULL;
	HrCacheEntry *any = NULL;
	int			i;

	for (i = 0; i < c->nentries && victim == NULL; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		if (!e->in_use || is_expired(e, now))
			victim = e;
		else if (e->busy)
			continue;
		else if (memcmp(e->token_digest, key->token_digest, HR_DIGEST_LEN) == 0)
		{
			if (own == NULL || e->last_used < own->last_used)
				own = e;
		}
		else if (any == NULL || e->last_used < any->last_used)
			any = e;
	}
	if (victim == NULL)
		victim = own ? own : any;
	if (victim == NULL)
		return NULL;
	explicit_bzero(victim->url, sizeof(victim->url));
	memset(victim, 0, offsetof(HrCacheEntry, url));
	victim->in_use = true;
	victim->hash = key->hash;
	memcpy(victim->token_digest, key->token_digest, HR_DIGEST_LEN);
	strlcpy(victim->api_url, key->api_url, sizeof(victim->api_url));
	strlcpy(victim->app, key->app, sizeof(victim->app));
	strlcpy(victim->config_var, key->config_var, sizeof(victim->config_var));
	return victim;
}

/* The 429 back-off of key's API URL and token, or NULL. */
HrBackoff *
hr_cache_find_backoff(HrCache *c, const HrCacheKey *key)
{
	int			i;

	for (i = 0; i < HR_CACHE_BACKOFF_SLOTS; i++)
		if (c->backoff[i].until != 0 &&
			memcmp(c->backoff[i].token_digest, key->token_digest, HR_DIGEST_LEN) == 0 &&
			strcmp(c->backoff[i].api_url, key->api_url) == 0)
			return &c->backoff[i];
	return NULL;
}

/*
 * Remember a 429 for key's API URL and token: no request with that token
 * for seconds, at most HR_BACKOFF_MAX_S (a Retry-After of a day must not
 * stop the cluster for a day).  Other tokens are not held back.
 */
void
hr_cache_set_backoff(HrCache *c, const HrCacheKey *key, long seconds, TimestampTz now)
{
	HrBackoff  *b = hr_cache_find_backoff(c, key);
	int			i;

	if (b == NULL)
	{
		/* the slot ending first makes room */
		b = &c->backoff[0];
		for (i = 1; i < HR_CACHE_BACKOFF_SLOTS; i++)
			if (c->backoff[i].until < b->until)
				b = &c->backoff[i];
		strlcpy(b->api_url, key->api_url, sizeof(b->api_url));
		memcpy(b->token_digest, key->token_digest, HR_DIGEST_LEN);
	}
	b->until = TimestampTzPlusMilliseconds(now, Min(seconds, HR_BACKOFF_MAX_S) * 1000);
}

/* The minute since the epoch that t falls in. */
static int64
minute_of(TimestampTz t)
{
	return t / (60 * (int64) USECS_PER_SEC);
}

/* Count one API request made for roleid (heroku_resolver_status shows it). */
void
hr_cache_count_request(HrCache *c, Oid roleid, TimestampTz now)
{
	HrRoleRate *r = NULL;
	HrRoleRate *oldest = &c->roles[0];
	int64		m = minute_of(now);
	int			i;

	for (i = 0; i < HR_CACHE_ROLE_SLOTS && r == NULL; i++)
	{
		if (c->roles[i].roleid == roleid)
			r = &c->roles[i];
		else if (hr_cache_role_last_hour(&c->roles[i], now) <
				 hr_cache_role_last_hour(oldest, now))
			oldest = &c->roles[i];
	}
	if (r == NULL)
	{
		/* the quietest role of the last hour makes room */
		r = oldest;
		memset(r, 0, sizeof(*r));
		r->roleid = roleid;
	}
	r->requests++;
	if (r->minute[m % 60] != m)
	{
		r->minute[m % 60] = m;
		r->count[m % 60] = 0;
	}
	r->count[m % 60]++;
}

/* Requests of the last 60 minutes. */
int64
hr_cache_role_last_hour(const HrRoleRate *r, TimestampTz now)
{
	int64		m = minute_of(now);
	int64		n = 0;
	int			i;

	if (r->roleid == InvalidOid)
		return 0;
	for (i = 0; i < 60; i++)
		if (r->minute[i] > m - 60 && r->minute[i] <= m)
			n += r->count[i];
	return n;
}
