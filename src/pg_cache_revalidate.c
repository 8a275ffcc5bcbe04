/*-------------------------------------------------------------------------
 *
 * pg_cache_revalidate.c
 *		Revalidating cache entries on demand, for heroku_resolver_refresh()
 *		and the release feed (pg_feed.c): every entry of an app (and config
 *		var) is marked changed, and those of the caller's own token are
 *		asked again at once, conditionally, so that they hold the app's
 *		current URL before anyone needs it.
 *
 * An entry is keyed by an HMAC of the token that fetched it (pg_cache.h)
 * and the token itself is never stored, so an entry of another token can
 * only be asked again by a caller holding that token.  Marking it
 * (changed_at) makes its next resolution ask the API with If-None-Match
 * instead of serving it for the rest of its TTL: one request, answered 304
 * if the URL did not change.
 *
 * The throttle.  Whoever may call heroku_resolver_refresh() could otherwise
 * spend the account's API budget as fast as it can call it.  An entry is
 * asked again at most once a second (refresh_asked_at), and a call is never
 * skipped: one within the second of the last request sleeps until that
 * second is over and then asks, unless another call went to ask after this
 * one started, whose answer it takes through the cache's single flight
 * (hr_cache_fresh_after).  N callers in one second cost one request, and
 * each gets an answer the API gave after its call began.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

#define HR_REFRESH_MIN_MS	1000	/* one revalidation per entry a second */

/* An entry of the caller's token, to ask again. */
typedef struct OwnEntry
{
	char		app[HR_CACHE_APP_MAX];
	char		config_var[HR_CACHE_VAR_MAX];
	uint64		url_hash;		/* of the URL it held: no copy of a secret */
} OwnEntry;

/* app NULL (and alias NULL) matches any; an app id matches in any case. */
static bool
app_matches(const HrCacheEntry *e, const char *app, const char *alias)
{
	if (app == NULL && alias == NULL)
		return true;
	return (app && pg_strcasecmp(e->app, app) == 0) ||
		(alias && pg_strcasecmp(e->app, alias) == 0);
}

/* The config var as asked for, or as found (X_URL for X). */
static bool
var_matches(const HrCacheEntry *e, const char *config_var)
{
	return config_var == NULL || hr_same_config_var(e->config_var, config_var) ||
		(e->has_value && hr_same_config_var(e->used_var, config_var));
}

static uint64
url_hash(const char *url)
{
	return hash_bytes_extended((const unsigned char *) url, strlen(url), 0);
}

/*
 * Ask the API again for one entry, in a subtransaction: a failure becomes
 * a WARNING naming the app and the config var (a cancel or a shutdown is
 * raised again).  Returns the URL, palloc'd, or NULL after a failure.
 */
static char *
resolve_or_warn(const hr_settings *s, const OwnEntry *own)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *volatile url = NULL;
	ErrorData  *edata;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		char	   *used_var;

		url = hr_cache_resolve(s, own->app, own->config_var, true, &used_var);
		pfree(used_var);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION)
			ReThrowError(edata);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not revalidate config var \"%s\" of Heroku app \"%s\": %s",
						own->config_var, own->app, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->hint ? errhint("%s", edata->hint) : 0));
		FreeErrorData(edata);
		url = NULL;
	}
	PG_END_TRY();
	return url;
}

/*
 * Wait for this call's turn to ask the API again for the entry of key
 * (see the throttle, above).  When it is ours, the entry is marked changed
 * and its turn taken; when another call took a turn after we started, we
 * go and take its answer.  Sleeps interruptibly; the lock is never held
 * across the sleep.
 */
static void
wait_turn(HrCache *c, const HrCacheKey *key, TimestampTz started)
{
	bool		latch_was_set = false;

	for (;;)
	{
		HrCacheEntry *e;
		TimestampTz now;
		TimestampTz next;

		CHECK_FOR_INTERRUPTS();
		now = GetCurrentTimestamp();
		hr_cache_lock(c);
		e = hr_cache_find_entry(c, key);
		if (e == NULL || e->refresh_asked_at >= started)
			break;				/* gone, or asked for after we started */
		next = TimestampTzPlusMilliseconds(e->refresh_asked_at, HR_REFRESH_MIN_MS);
		if (now >= next)
		{
			e->refresh_asked_at = now;
			e->changed_at = now;
			break;
		}
		hr_cache_unlock(c);
		if (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					  (long) ((next - now + 999) / 1000), PG_WAIT_EXTENSION) & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_was_set = true;
		}
	}
	hr_cache_unlock(c);
	/* a wake-up meant for the caller (the worker's, say) is not lost */
	if (latch_was_set)
		SetLatch(MyLatch);
}

/*
 * Ask the API again for the caller's own entries, each in its turn (see the
 * throttle, above): an answer sent after started is taken, from the cache's
 * single flight, and the failure of such a request is shared too.  Returns
 * how many now hold another URL; a failure is raised, or, with failed
 * given, warned about and counted there.
 */
static int
ask_own(HrCache *c, const hr_settings *s, const HrCacheKey *tokkey,
		const OwnEntry *own, int nown, TimestampTz started, int *failed)
{
	TimestampTz save_after = hr_cache_fresh_after;
	bool		save_share = hr_cache_share_fresh_failures;
	volatile int changed = 0;
	int			i;

	PG_TRY();
	{
		hr_cache_fresh_after = started;
		hr_cache_share_fresh_failures = true;
		for (i = 0; i < nown; i++)
		{
			HrCacheKey	key = *tokkey;
			char	   *used_var = NULL;
			char	   *url;

			key.app = own[i].app;
			key.config_var = own[i].config_var;
			hr_cache_key_finish(&key);
			wait_turn(c, &key, started);
			if (failed)
				url = resolve_or_warn(s, &own[i]);
			else
				url = hr_cache_resolve(s, own[i].app, own[i].config_var, true, &used_var);
			if (url == NULL)
			{
				(*failed)++;
				continue;
			}
			if (url_hash(url) != own[i].url_hash)
				changed++;
			explicit_bzero(url, strlen(url));
			pfree(url);
			if (used_var)
				pfree(used_var);
		}
	}
	PG_FINALLY();
	{
		hr_cache_fresh_after = save_after;
		hr_cache_share_fresh_failures = save_share;
	}
	PG_END_TRY();
	return changed;
}

/*
 * Mark every entry of the caller's API URL for app (or alias, e.g. the
 * app's id; both NULL: any app) and config_var (NULL: any) changed, and
 * ask the API again, now and conditionally, for those of the caller's
 * token that hold a value.  Returns how many of those now hold another
 * URL.  A failure (a 404 or 403 drops the entry, as any resolution does)
 * is raised; with failed given, it is a WARNING counted there, and the
 * other entries are still asked.  Either way those asked before it stay
 * revalidated.  In a transaction.
 */
int
hr_cache_revalidate(const char *app, const char *alias, const char *config_var,
					int *failed)
{
	HrCache    *c = hr_cache_get();
	hr_settings s;
	hr_error	err;
	const char *api_url;
	char	   *token;
	HrCacheKey	key;
	OwnEntry   *own;
	int			nown = 0;
	int			changed;
	TimestampTz now = GetCurrentTimestamp();
	/* without a cache in this session there is nothing to store the answer in */
	bool		asking = hr_cache_ttl_ms != 0;
	int			i;

	hr_pg_settings(&s);
	api_url = (s.api_url && s.api_url[0]) ? s.api_url : HR_DEFAULT_API_URL;
	memset(&err, 0, sizeof(err));
	if (hr_find_token(&s, &token, NULL, &err) != HR_OK)
		hr_pg_report(ERROR, &err);
	/* the digest does not depend on the app: one key serves every entry */
	hr_cache_make_key(c, &key, api_url, "", "", token, s.ca_file);
	hr_free_secret(token);

	own = palloc(sizeof(OwnEntry) * c->nentries);
	hr_cache_lock(c);
	for (i = 0; i < c->nentries; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		/* an app of another API URL is another app */
		if (!e->in_use || strcmp(e->api_url, api_url) != 0 ||
			!app_matches(e, app, alias) || !var_matches(e, config_var))
			continue;
		if (asking && e->has_value &&
			memcmp(e->token_digest, key.token_digest, HR_DIGEST_LEN) == 0)
		{
			/* ours: marked when its turn to be asked comes (wait_turn) */
			strlcpy(own[nown].app, e->app, sizeof(own[nown].app));
			strlcpy(own[nown].config_var, e->config_var, sizeof(own[nown].config_var));
			own[nown].url_hash = url_hash(e->url);
			nown++;
			continue;
		}
		e->changed_at = now;
	}
	hr_cache_unlock(c);

	changed = ask_own(c, &s, &key, own, nown, now, failed);
	pfree(own);
	return changed;
}
