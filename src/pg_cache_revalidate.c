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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

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
	int			changed = 0;
	TimestampTz now = GetCurrentTimestamp();
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
		e->changed_at = now;
		if (!e->has_value || memcmp(e->token_digest, key.token_digest, HR_DIGEST_LEN) != 0)
			continue;
		strlcpy(own[nown].app, e->app, sizeof(own[nown].app));
		strlcpy(own[nown].config_var, e->config_var, sizeof(own[nown].config_var));
		own[nown].url_hash = url_hash(e->url);
		nown++;
	}
	hr_cache_unlock(c);

	/* without a cache in this session there is nothing to store the answer in */
	if (hr_cache_ttl_ms == 0)
		nown = 0;
	for (i = 0; i < nown; i++)
	{
		char	   *used_var = NULL;
		char	   *url;

		CHECK_FOR_INTERRUPTS();
		if (failed)
			url = resolve_or_warn(&s, &own[i]);
		else
			url = hr_cache_resolve(&s, own[i].app, own[i].config_var, true, &used_var);
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
	pfree(own);
	return changed;
}
