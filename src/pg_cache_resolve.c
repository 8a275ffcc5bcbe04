/*-------------------------------------------------------------------------
 *
 * pg_cache_resolve.c
 *		The resolve path through the cache: serve a fresh entry, wait for
 *		another backend's request, or lead a request of our own.
 *
 * The locking protocol.  One lock (the LWLock of the shared cache; none for
 * a per-backend cache) guards every entry.  It is held only to look at or
 * change entries, never across a request, an ereport or a sleep:
 *
 *   look     under the lock, decide from the entry: serve its value (a hit),
 *            share the error of a flight that just failed, wait for a flight
 *            in progress, refuse during a 429 back-off, or lead a flight.
 *   lead     still under the lock, mark the entry busy (busy_pid, busy_since)
 *            and copy its ETag; a busy entry is never evicted.
 *   fly      without the lock, ask the API (If-None-Match: the ETag).  The
 *            core never throws, so nothing can leave the entry busy.
 *   land     under the lock again, store the answer (unless invalidated
 *            meanwhile: discard_flight), close the flight (busy = false,
 *            flight++) and broadcast flight_cv.
 *   wait     other backends that missed the same key sleep on flight_cv
 *            (interruptibly, 100 ms at a time) until the flight number moves,
 *            then look again and take its answer or its error: a single
 *            request for any number of callers.  A flight older than twice
 *            the timeout plus 5 s is taken for dead and led again.
 *
 * Whatever leaves the lock with a URL copies it first (HrCacheCopy) and the
 * copy is wiped once handed over.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

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

HrServed	hr_cache_last_served;

/*
 * Set by the worker while it heals a server for a role whose connection
 * failed: the requests are that role's doing and counted as its own in
 * role_requests, not the worker's.  InvalidOid: the current user.
 */
Oid			hr_cache_charge_role = InvalidOid;


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

/*
 * One request, with its effect on the counters; no lock held.  The token is
 * looked up again (the key holds only its digest).
 */
static hr_code
ask_api(HrCache *c, hr_http *http, const hr_settings *s, const HrCacheKey *key,
		const char *etag, hr_fetch *f, hr_error *err)
{
	hr_code		rc;
	TimestampTz now;

	memset(err, 0, sizeof(*err));
	rc = hr_fetch_checked(http, s, key->app, key->config_var, etag, f, err);
	now = GetCurrentTimestamp();

	hr_cache_lock(c);
	if (rc != HR_ECANCELED && (rc == HR_OK || err->http_status != 0 ||
							   rc == HR_EUNAVAILABLE))
	{
		c->api_requests++;
		hr_cache_count_request(c, OidIsValid(hr_cache_charge_role) ?
							   hr_cache_charge_role : GetUserId(), now);
	}
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
		hr_cache_set_backoff(c, key, err->retry_after > 0 ? err->retry_after : 60, now);
	}
	hr_cache_unlock(c);
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
resolve_uncached(HrCache *c, const hr_settings *s, const HrCacheKey *key,
				 char **used_var)
{
	hr_fetch	f;
	hr_error	err;

	if (ask_api(c, hr_pg_http(), s, key, NULL, &f, &err) != HR_OK)
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


/* One resolution's way through the cache. */
typedef struct HrLookup
{
	HrCache    *c;
	const hr_settings *s;
	HrCacheKey	key;
	const char *app;			/* = key.app, for messages */
	const char *config_var;		/* = key.config_var */
	bool		fresh;
	TimestampTz min_fetched;	/* fresh: what counts was sent after this */
	bool		waited;			/* we slept on another backend's flight */
	uint64		seen_flight;	/* the number of that flight */
	HrCacheEntry *e;			/* the entry whose flight we lead */
	char		etag[HR_CACHE_ETAG_MAX];	/* sent with our request */
	HrCacheCopy cp;				/* what we take away from the entry */
} HrLookup;

/* What look() decided. */
typedef enum HrStep
{
	STEP_SERVE,					/* l->cp holds the value to serve */
	STEP_FAIL,					/* *err is the failure (l->cp: a stale copy) */
	STEP_WAIT,					/* another backend's flight is in progress */
	STEP_LEAD,					/* l->e is busy with our flight */
	STEP_UNCACHED				/* every entry is busy: ask without the cache */
} HrStep;

/* Is the entry's value a hit for this lookup?  Lock held. */
static bool
is_hit(const HrLookup *l, const HrCacheEntry *e, TimestampTz now)
{
	/* the app changed after the value was fetched: ask, conditionally */
	if (e->changed_at > e->fetched_at)
		return false;
	/*
	 * fresh: only what a fresh request brought during this statement, e.g.
	 * for another server of the same app.  A plain request made in this
	 * statement does not count: a failed connection with it is what sends a
	 * caller here.
	 */
	if (l->fresh)
		return e->fresh_sent_at != 0 && e->fresh_sent_at >= l->min_fetched;
	/*
	 * a connection with it failed: ask whatever the TTL, at most once a
	 * second while the answers keep the same URL (a storm of failures with
	 * it); counted from the last such request (land()), not the last fetch,
	 * so a rotation right after a fetch still heals at the next call
	 */
	if (e->suspect && now >= TimestampTzPlusMilliseconds(e->heal_asked_at, HR_HEAL_MIN_MS))
		return false;
	if (now < TimestampTzPlusMilliseconds(e->validated_at, hr_cache_ttl_ms))
		return true;
	/* low budget: past the TTL, within stale_if_error */
	return l->c->ratelimit_remaining >= 0 &&
		l->c->ratelimit_remaining < hr_rate_limit_reserve &&
		now < TimestampTzPlusMilliseconds(e->validated_at, hr_stale_if_error_ms);
}

/* The error a request would meet during a 429 back-off. */
static void
backoff_error(const HrLookup *l, TimestampTz until, hr_error *err)
{
	memset(err, 0, sizeof(*err));
	err->code = HR_ERATELIMIT;
	err->http_status = 429;
	err->retry_after = -1;
	snprintf(err->message, sizeof(err->message),
			 "Heroku API rate limit reached while reading config var \"%s\" of app \"%s\"",
			 l->config_var, l->app);
	snprintf(err->detail, sizeof(err->detail),
			 "After a 429 answer no request is made to the Heroku API before %s.",
			 timestamptz_to_str(until));
}

/* Decide under the lock what to do next (see the protocol above). */
static HrStep
look(HrLookup *l, hr_error *err)
{
	HrCache    *c = l->c;
	TimestampTz now = GetCurrentTimestamp();
	HrCacheEntry *e;
	HrBackoff  *b;
	HrStep		step;

	hr_cache_lock(c);
	e = hr_cache_find_entry(c, &l->key);

	/*
	 * The flight we waited for failed, or (fresh) one sent during this
	 * statement did, or (plain) a 404 is still fresh: share its error, no
	 * request.
	 */
	if (e != NULL && e->last_flight_failed &&
		((l->waited && e->flight != l->seen_flight) ||
		 (l->fresh && hr_cache_share_fresh_failures && !e->busy &&
		  e->last_flight_fresh && e->last_sent_at >= l->min_fetched) ||
		 (!l->fresh && !e->busy && now < e->negative_until)))
	{
		*err = e->last_err;
		take_copy(&l->cp, e);
		step = STEP_FAIL;
	}
	else if (e != NULL && e->has_value && is_hit(l, e, now))
	{
		e->hits++;
		e->last_used = now;
		take_copy(&l->cp, e);
		step = STEP_SERVE;
	}
	else if (e != NULL && e->busy && e->busy_pid != MyProcPid &&
			 now < TimestampTzPlusMilliseconds(e->busy_since,
											   2 * (int64) Max(l->s->timeout_ms, 0) + 5000))
	{
		l->seen_flight = e->flight;
		l->waited = true;
		step = STEP_WAIT;
	}
	else if ((b = hr_cache_find_backoff(c, &l->key)) != NULL && now < b->until)
	{
		backoff_error(l, b->until, err);
		take_copy(&l->cp, e);
		step = STEP_FAIL;
	}
	else if (e == NULL && (e = hr_cache_new_entry(c, &l->key, now)) == NULL)
		step = STEP_UNCACHED;
	else
	{
		e->busy = true;
		e->busy_pid = MyProcPid;
		e->busy_since = now;
		e->discard_flight = false;
		e->last_used = now;
		strlcpy(l->etag, e->has_value ? e->etag : "", sizeof(l->etag));
		l->e = e;
		step = STEP_LEAD;
	}
	/* a waiter prepares to sleep before the lock goes, not to miss a wake-up */
	if (step == STEP_WAIT && c->lock)
		ConditionVariablePrepareToSleep(&c->flight_cv);
	hr_cache_unlock(c);
	return step;
}

/* Sleep until the flight l->seen_flight of our key has ended. */
static void
wait_for_flight(HrLookup *l)
{
	HrCache    *c = l->c;

	if (c->lock == NULL)
		return;					/* a per-backend cache has no other backend */
	for (;;)
	{
		HrCacheEntry *e;
		bool		done;

		ConditionVariableTimedSleep(&c->flight_cv, 100, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
		LWLockAcquire(c->lock, LW_SHARED);
		e = hr_cache_find_entry(c, &l->key);
		done = e == NULL || e->flight != l->seen_flight || !e->busy;
		LWLockRelease(c->lock);
		if (done)
			break;
	}
	ConditionVariableCancelSleep();
}

/*
 * Our flight's request, without the lock.  Never throws: anything that
 * could (an ereport, an interrupt) waits until land() has closed the flight.
 */
static hr_code
fly(HrLookup *l, hr_fetch *f, hr_error *err)
{
	hr_code		rc;

	rc = ask_api(l->c, hr_pg_http(), l->s, &l->key, l->etag[0] ? l->etag : NULL,
				 f, err);
	if (rc == HR_OK && f->http_status != 304 && strlen(f->value) >= HR_CACHE_URL_MAX)
	{
		size_t		len = strlen(f->value);

		hr_fetch_free(f);
		memset(err, 0, sizeof(*err));
		err->code = HR_EBADURL;
		snprintf(err->message, sizeof(err->message),
				 "config var \"%s\" of Heroku app \"%s\" is too long for the resolution cache",
				 l->config_var, l->app);
		snprintf(err->detail, sizeof(err->detail),
				 "It has %zu bytes; the cache holds at most %d.", len, HR_CACHE_URL_MAX - 1);
		snprintf(err->hint, sizeof(err->hint),
				 "Set heroku.cache_ttl = 0 to resolve it without the cache.");
		rc = HR_EBADURL;
	}
	if (rc == HR_OK && f->http_status == 304 && l->etag[0] == '\0')
	{
		/* cannot happen: a 304 answers only an If-None-Match */
		hr_fetch_free(f);
		memset(err, 0, sizeof(*err));
		err->code = HR_EPROTOCOL;
		snprintf(err->message, sizeof(err->message),
				 "unexpected answer from the Heroku API for app \"%s\"", l->app);
		rc = HR_EPROTOCOL;
	}
	return rc;
}

/* Store what our flight brought and close it, under the lock. */
static void
land(HrLookup *l, hr_code rc, const hr_fetch *f, const hr_error *err,
	 TimestampTz sent_at)
{
	HrCache    *c = l->c;
	HrCacheEntry *e = l->e;		/* still ours: nobody evicts a busy entry */

	hr_cache_lock(c);
	e->api_requests++;
	e->last_status = (int) (rc == HR_OK ? f->http_status : err->http_status);
	/*
	 * The limit of one healing request a second counts from a request made
	 * while the entry was suspect (set when it lands, not when it leaves:
	 * meanwhile the others wait for its answer rather than take the suspect
	 * value).  An answer bringing another URL lifts it, below.
	 */
	if (e->suspect)
		e->heal_asked_at = sent_at;
	if (rc == HR_OK)
	{
		memset(&e->last_err, 0, sizeof(e->last_err));
		e->suspect = false;		/* revalidated: 200 with the new URL, or 304 */
		if (!e->discard_flight)
		{
			if (f->http_status != 304)
			{
				/* another URL: a failure with it is news, not the same storm */
				if (!e->has_value || strcmp(e->url, f->value) != 0)
					e->heal_asked_at = 0;
				strlcpy(e->url, f->value, sizeof(e->url));
				strlcpy(e->used_var, f->config_var, sizeof(e->used_var));
				strlcpy(e->etag, f->etag ? f->etag : "", sizeof(e->etag));
				e->has_value = true;
			}
			e->fetched_at = sent_at;
			e->validated_at = GetCurrentTimestamp();
			e->expires_at = TimestampTzPlusMilliseconds(e->validated_at,
														Max(hr_cache_ttl_ms, hr_stale_if_error_ms));
			if (l->fresh)
				e->fresh_sent_at = sent_at;
		}
		e->last_flight_failed = false;
	}
	else if (rc == HR_ECANCELED)
		e->last_flight_failed = false;	/* the waiters ask for themselves */
	else
	{
		e->last_err = *err;
		e->last_flight_failed = true;
		/* an unknown app: the same question gets the same answer for a while */
		if (rc == HR_ENOTFOUND && err->http_status == 404)
			e->negative_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															Min(hr_cache_ttl_ms, HR_NEGATIVE_TTL_MS));
		if (drops_value(rc))
		{
			e->has_value = false;
			e->etag[0] = '\0';
			explicit_bzero(e->url, sizeof(e->url));
		}
	}
	/* a 304 serves the stored value; a failure may serve it stale */
	if (rc != HR_OK || f->http_status == 304)
		take_copy(&l->cp, e);
	e->last_sent_at = sent_at;
	e->last_flight_fresh = l->fresh;
	e->busy = false;
	e->busy_pid = 0;
	e->flight++;
	hr_cache_unlock(c);
	if (c->lock)
		ConditionVariableBroadcast(&c->flight_cv);
}

/* Lead a flight and give its outcome to the caller. */
static char *
lead(HrLookup *l, char **used_var)
{
	TimestampTz sent_at = GetCurrentTimestamp();
	hr_fetch	f;
	hr_error	err;
	hr_code		rc;

	rc = fly(l, &f, &err);
	land(l, rc, &f, &err, sent_at);
	if (rc != HR_OK)
		return fail_or_stale(&err, &l->cp, l->fresh, l->app, l->config_var, used_var);
	if (f.http_status == 304)
	{
		hr_fetch_free(&f);
		if (!l->cp.has_value)
		{
			/* invalidated during the flight: ask again, plainly */
			return resolve_uncached(l->c, l->s, &l->key, used_var);
		}
		return give_copy(&l->cp, used_var);
	}
	return take_fetched(&f, used_var);
}

/*
 * The URL in app's config var, from the cache or the API.  Returns a
 * palloc'd URL (a secret) and sets *used_var to the name it was found
 * under.  fresh = true asks the API unless another fresh call already did
 * during the current statement, and never takes a stale answer; a refresh
 * of many servers sharing one app in one statement therefore asks once.
 * The names were checked where they entered (hr_pg_resolve).
 */
char *
hr_cache_resolve(const hr_settings *s, const char *app, const char *config_var,
				 bool fresh, char **used_var)
{
	HrCache    *c = hr_cache_get();
	const char *api_url = (s->api_url && s->api_url[0]) ? s->api_url : HR_DEFAULT_API_URL;
	HrLookup   *l;
	hr_error	err;
	char	   *url;

	(void) hr_pg_http();		/* may throw: before any flight */

	/* the caller's own token decides what it may be served */
	memset(&err, 0, sizeof(err));
	l = palloc0(sizeof(HrLookup));
	hr_cache_caller_key(c, &l->key, s, api_url, app, config_var);
	hr_served_set(&hr_cache_last_served, &l->key);
	if (hr_cache_ttl_ms == 0)
		return resolve_uncached(c, s, &l->key, used_var);
	check_length("the API URL", api_url, HR_CACHE_API_URL_MAX, app, config_var);

	l->c = c;
	l->s = s;
	l->app = app;
	l->config_var = config_var;
	l->fresh = fresh;
	l->min_fetched = fresh ? Max(GetCurrentStatementStartTimestamp(),
								 hr_cache_fresh_after) : 0;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		switch (look(l, &err))
		{
			case STEP_SERVE:
				url = give_copy(&l->cp, used_var);
				break;
			case STEP_FAIL:
				url = fail_or_stale(&err, &l->cp, fresh, app, config_var, used_var);
				break;
			case STEP_WAIT:
				wait_for_flight(l);
				continue;
			case STEP_UNCACHED:
				url = resolve_uncached(c, s, &l->key, used_var);
				break;
			case STEP_LEAD:
			default:
				url = lead(l, used_var);
				break;
		}
		break;
	}
	pfree(l);
	return url;
}
