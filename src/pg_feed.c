/*-------------------------------------------------------------------------
 *
 * pg_feed.c
 *		The release feed: every heroku.watch_interval the background worker
 *		lists the account's apps (GET /apps, src/hr_feed.c) with the
 *		server's own token, and for each app whose released_at moved since
 *		the last listing it revalidates the app's cache entries in place
 *		(pg_cache_revalidate.c) and refreshes the app's registered foreign
 *		servers in heroku.database.
 *
 * Cost: one request per page of HR_FEED_PAGE_SIZE apps per interval (a
 * 304 when nothing changed), plus, per app that changed, one config-vars
 * request per (app, config var) cached with the server's token.  Entries
 * of other tokens are only marked: their next call asks, conditionally.
 *
 * A change is an app whose released_at differs from the last listing (or
 * that the last listing did not have); the first listing after the worker
 * starts, or after the API URL or the token changed, only records what it
 * sees.  released_at has whole seconds: an app released in the second of
 * the listing (hr_feed_racy) is followed once more by the first listing
 * made after that second, since a second release within it would leave
 * the page unchanged (a 304).  An app missing from a listing is not forgotten: its entries keep
 * their TTL.  Only the worker runs this (it needs the shared cache).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

/* apps per page of GET /apps: the API's largest, within HR_LIST_MAX_BODY_BYTES */
#define HR_FEED_PAGE_SIZE		HR_FEED_PAGE_MAX
/* listings that try again to follow a release whose following failed */
#define HR_FEED_RETRIES			5

/* GUC */
int			hr_watch_interval_ms = 10 * 1000;

/* What the last listing saw of one app. */
typedef struct KnownApp
{
	char		id[40];			/* hash key: the app's id, lower case */
	char		name[HR_CACHE_APP_MAX];
	bool		released;		/* released_at was not null */
	char		released_at[HR_FEED_STAMP_MAX + 1];
	int			retries;		/* following its last release failed so often */
	bool		pending;		/* to follow again at the next listing */
	bool		racy;			/* released in the second of the listing that saw it */
	uint64		round;			/* the last listing that had it on a page read */
} KnownApp;

/* What note_app() found. */
typedef enum AppNews
{
	APP_SAME,
	APP_CHANGED,				/* a new release (or a new app) */
	APP_RETRY,					/* the last release, whose following failed */
	APP_RACY					/* its release's second has passed: once more */
} AppNews;

/* An app that changed, for the rest of the round. */
typedef struct ChangedApp
{
	char	   *id;
	char	   *name;
} ChangedApp;

/* The worker's memory of the last listing (process-local). */
static hr_feed pages = {HR_FEED_PAGE_SIZE, 0, NULL};
static HTAB *known = NULL;
static bool listed_once = false;
static uint64 listing_round = 0;
static char known_api_url[HR_CACHE_API_URL_MAX];
static uint8 known_digest[HR_DIGEST_LEN];

void
hr_feed_init(void)
{
	DefineCustomIntVariable("heroku.watch_interval",
							"How often the background worker lists the account's Heroku apps to follow their releases (the release feed).",
							"0 turns the feed off.  Needs shared_preload_libraries and a token in the server's settings.",
							&hr_watch_interval_ms,
							10 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* Start again from nothing: another API, another token, or the first time. */
static void
forget_listing(const char *api_url, const uint8 *digest)
{
	HASHCTL		ctl;

	if (known)
		hash_destroy(known);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(((KnownApp *) 0)->id);
	ctl.entrysize = sizeof(KnownApp);
	known = hash_create("heroku_resolver feed apps", 256, &ctl, HASH_ELEM | HASH_STRINGS);
	hr_feed_reset(&pages);
	listed_once = false;
	strlcpy(known_api_url, api_url, sizeof(known_api_url));
	memcpy(known_digest, digest, HR_DIGEST_LEN);
}

/* The known app of this id, or NULL; made when enter. */
static KnownApp *
known_app(const char *app_id, bool enter, bool *found)
{
	char		id[40];
	char	   *p;

	strlcpy(id, app_id, sizeof(id));
	for (p = id; *p; p++)
		*p = pg_tolower((unsigned char) *p);
	return hash_search(known, id, enter ? HASH_ENTER : HASH_FIND, found);
}

/*
 * Record app in the known apps, and say whether it is news: after the
 * first listing, a released_at that moved or an app not seen before; or
 * the release whose following failed, to follow again; or a racy release
 * whose second the listing (made at listed_at) has passed.
 */
static AppNews
note_app(const hr_feed_app *app, long long listed_at)
{
	bool		found;
	KnownApp   *k = known_app(app->id, true, &found);
	bool		released = app->released_at != NULL;
	const char *stamp = released ? app->released_at : "";
	AppNews		news = APP_SAME;

	if (!found)
	{
		k->retries = 0;
		k->pending = false;
		if (listed_once)
			news = APP_CHANGED;
	}
	else if (k->released != released || strcmp(k->released_at, stamp) != 0)
	{
		k->retries = 0;
		news = APP_CHANGED;
	}
	else if (k->pending)
		news = APP_RETRY;
	else if (k->racy && !hr_feed_racy(app->released_at, listed_at))
		news = APP_RACY;
	k->pending = false;
	k->racy = hr_feed_racy(app->released_at, listed_at);
	k->round = listing_round;
	strlcpy(k->name, app->name, sizeof(k->name));
	k->released = released;
	strlcpy(k->released_at, stamp, sizeof(k->released_at));
	return news;
}

/*
 * The apps of pages answered 304 whose racy release's second this listing
 * (made at listed_at) has passed: appended to changed, to follow once more.
 */
static List *
racy_apps(List *changed, long long listed_at)
{
	HASH_SEQ_STATUS scan;
	KnownApp   *k;

	hash_seq_init(&scan, known);
	while ((k = hash_seq_search(&scan)) != NULL)
	{
		ChangedApp *app;

		if (k->round == listing_round || !k->racy ||
			hr_feed_racy(k->released ? k->released_at : NULL, listed_at))
			continue;
		k->racy = false;
		app = palloc(sizeof(ChangedApp));
		app->id = pstrdup(k->id);
		app->name = pstrdup(k->name);
		changed = lappend(changed, app);
	}
	return changed;
}

/*
 * Following app's release failed, or part of it: follow it again at the
 * next listing, up to HR_FEED_RETRIES times.  The next listing asks every
 * page unconditionally, so that the app is read again (a 200 takes no
 * more of the budget than a 304).
 */
static void
retry_later(const ChangedApp *app)
{
	bool		found;
	KnownApp   *k = known_app(app->id, false, &found);

	if (k == NULL)
		return;
	if (++k->retries > HR_FEED_RETRIES)
	{
		ereport(WARNING,
				(errmsg("heroku_resolver feed gives up following the release of Heroku app \"%s\" after %d attempts",
						app->name, HR_FEED_RETRIES + 1),
				 errdetail("Its cache entries ask the API on their next use; its foreign servers wait for heroku_fdw_refresh(), heroku_resolver_refresh() or the refresher.")));
		k->retries = 0;
		return;
	}
	k->pending = true;
	hr_feed_reset(&pages);
}

/*
 * A failed step of a round: undo its transaction and say what it was (the
 * refresh of server, else the app's cache entries, else, app NULL too,
 * reading the registry); the round goes on.
 */
static void
warn_and_abort(MemoryContext cxt, const char *server, const ChangedApp *app)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (server)
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not refresh foreign server \"%s\" of Heroku app \"%s\" after its release: %s",
						server, app->name, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->hint ? errhint("%s", edata->hint) : 0));
	else if (app)
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not revalidate the cached URLs of Heroku app \"%s\" after its release: %s",
						app->name, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->hint ? errhint("%s", edata->hint) : 0));
	else
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not read the registry of foreign servers in database \"%s\": %s",
						get_database_name(MyDatabaseId), edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->hint ? errhint("%s", edata->hint) : 0));
	FreeErrorData(edata);
}

/* A row of the registry: a server and what it follows. */
typedef struct RegRow
{
	char	   *server;
	char	   *app;
	char	   *config_var;
} RegRow;

/*
 * Every registered server of this database (RegRows in cxt), in a
 * transaction of its own; NIL when the extension (1.1 or later) is not
 * here, or (*ok false) when reading it failed.
 */
static List *
registry_rows(bool *ok, MemoryContext cxt)
{
	List	   *volatile rows = NIL;

	*ok = true;
	PG_TRY();
	{
		int			ret;
		uint64		i;
		Oid			argtype = NAMEOID;
		Oid			fn;

		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		fn = hr_ext_function("heroku_fdw_refresh", 1, &argtype);
		if (OidIsValid(fn))
		{
			const char *schema = quote_identifier(get_namespace_name(get_func_namespace(fn)));

			ret = SPI_execute(psprintf("SELECT server::pg_catalog.text, app, config_var"
									   " FROM %s.heroku_fdw_registry ORDER BY 1", schema),
							  true, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
			for (i = 0; i < SPI_processed; i++)
			{
				MemoryContext old = MemoryContextSwitchTo(cxt);
				RegRow	   *r = palloc(sizeof(RegRow));

				r->server = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
				r->app = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
				r->config_var = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
				rows = lappend(rows, r);
				MemoryContextSwitchTo(old);
			}
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		warn_and_abort(cxt, NULL, NULL);
		rows = NIL;
		*ok = false;
	}
	PG_END_TRY();
	return rows;
}

/* Is this the app (by name or id) that changed? */
static bool
is_app(const char *app, const ChangedApp *changed)
{
	return pg_strcasecmp(app, changed->name) == 0 || pg_strcasecmp(app, changed->id) == 0;
}

/* Has the cache an entry of the app, whoever's? */
static bool
has_entries(HrCache *c, const ChangedApp *app)
{
	bool		found = false;
	int			i;

	hr_cache_lock(c);
	for (i = 0; i < c->nentries && !found; i++)
		found = c->entries[i].in_use && is_app(c->entries[i].app, app);
	hr_cache_unlock(c);
	return found;
}

/* heroku_fdw_refresh(server) by OID, in a transaction of its own; false if it failed. */
static bool
refresh_server(const char *server, const char *config_var,
			   const ChangedApp *app, MemoryContext cxt)
{
	volatile bool ok = true;

	PG_TRY();
	{
		Oid			argtype = NAMEOID;
		Oid			fn;
		NameData	srvname;
		bool		changed = false;

		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "heroku_fdw_refresh() after a release");
		/* the extension's own function, by OID: no name a role could plant */
		fn = hr_ext_function("heroku_fdw_refresh", 1, &argtype);
		namestrcpy(&srvname, server);
		if (OidIsValid(fn))
			changed = DatumGetBool(OidFunctionCall1(fn, NameGetDatum(&srvname)));
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (changed)
			ereport(LOG,
					(errmsg("heroku_resolver feed updated foreign server \"%s\" from config var \"%s\" of Heroku app \"%s\"",
							server, config_var, app->name)));
	}
	PG_CATCH();
	{
		warn_and_abort(cxt, server, app);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Follow one app's release: its cache entries, then its servers (rows: the
 * registry).  Both share one statement start, so a server's refresh takes
 * the answer the entries just got instead of asking again.  An app with
 * neither costs nothing.  False if a step failed.
 */
static bool
follow_release(HrCache *c, const ChangedApp *app, List *rows, MemoryContext cxt)
{
	bool		cached = has_entries(c, app);
	ListCell   *lc;
	bool		registered = false;
	volatile bool ok = true;

	foreach(lc, rows)
		registered |= is_app(((RegRow *) lfirst(lc))->app, app);
	if (!cached && !registered)
		return true;

	SetCurrentStatementStartTimestamp();
	if (cached)
	{
		PG_TRY();
		{
			int			failed = 0;
			int			n;

			StartTransactionCommand();
			n = hr_cache_revalidate(app->name, app->id, NULL, &failed);
			CommitTransactionCommand();
			MemoryContextSwitchTo(cxt);
			ok = failed == 0;
			ereport(n > 0 ? LOG : DEBUG1,
					(errmsg("heroku_resolver feed saw a new release of Heroku app \"%s\": %d cached URL(s) changed",
							app->name, n)));
		}
		PG_CATCH();
		{
			warn_and_abort(cxt, NULL, app);
			ok = false;
		}
		PG_END_TRY();
	}
	foreach(lc, rows)
	{
		RegRow	   *r = lfirst(lc);

		if (is_app(r->app, app) && !refresh_server(r->server, r->config_var, app, cxt))
			ok = false;
	}
	return ok;
}

/*
 * Log a listing's failure once, not every interval while it lasts.  No
 * token at all is a set-up without a server token (sessions SET their
 * own): said at LOG, with the way to turn the feed off.
 */
static void
report_failure(const hr_error *err, const hr_error *before)
{
	if (before->code == err->code && strcmp(before->message, err->message) == 0)
		return;
	if (err->code == HR_ENOTOKEN)
		ereport(LOG,
				(errmsg("heroku_resolver feed cannot list the Heroku apps: %s", err->message),
				 errhint("The feed uses the server's token: heroku.api_key_file, HEROKU_API_KEY in the server's environment, or a netrc entry (\"heroku auth:token\" prints the Heroku CLI's token).  heroku.watch_interval = 0 turns it off.")));
	else
		ereport(WARNING,
				(errmsg("heroku_resolver feed could not list the Heroku apps: %s", err->message),
				 err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
				 err->hint[0] ? errhint("%s", err->hint) : 0));
}

/* Record a failure that kept the listing from being made at all. */
static void
fail_round(HrCache *c, const hr_error *err)
{
	hr_error	before;

	hr_cache_lock(c);
	before = c->feed.last_error;
	c->feed.last_error = *err;
	hr_cache_unlock(c);
	report_failure(err, &before);
}

/*
 * One round of the feed: list the apps, then follow each release seen.
 * Called by the worker outside a transaction; throws only on what cannot
 * happen (the steps after the listing catch their own errors).
 */
void
hr_feed_round(void)
{
	HrCache    *c = hr_cache_get();
	MemoryContext cxt = CurrentMemoryContext;
	hr_settings s;
	hr_http    *http;
	hr_error	err;
	hr_error	before;
	const char *api_url;
	char	   *token;
	HrCacheKey	key;
	HrBackoff  *b;
	hr_feed_listing l;
	hr_code		rc;
	TimestampTz now;
	List	   *changed = NIL;
	List	   *rows;
	bool		rows_ok;
	ListCell   *lc;
	int			nnew = 0;
	int			i;

	hr_pg_settings(&s);
	api_url = (s.api_url && s.api_url[0]) ? s.api_url : HR_DEFAULT_API_URL;
	memset(&err, 0, sizeof(err));
	if (strlen(api_url) >= HR_CACHE_API_URL_MAX)
	{
		err.code = HR_EINVAL;
		snprintf(err.message, sizeof(err.message),
				 "heroku.api_url is longer than %d bytes", HR_CACHE_API_URL_MAX - 1);
		fail_round(c, &err);
		return;
	}
	http = hr_pg_http();		/* may throw: before the token is had */
	if (hr_find_token(&s, &token, NULL, &err) != HR_OK)
	{
		fail_round(c, &err);
		return;
	}
	hr_cache_make_key(c, &key, api_url, "", "", token, s.ca_file);
	if (known == NULL || strcmp(known_api_url, api_url) != 0 ||
		memcmp(known_digest, key.token_digest, HR_DIGEST_LEN) != 0)
		forget_listing(api_url, key.token_digest);

	/* a 429 holds back this token's requests, the feed's too */
	now = GetCurrentTimestamp();
	hr_cache_lock(c);
	b = hr_cache_find_backoff(c, &key);
	if (b != NULL && now < b->until)
	{
		hr_cache_unlock(c);
		hr_free_secret(token);
		return;
	}
	hr_cache_unlock(c);

	pgstat_report_activity(STATE_RUNNING, "listing the Heroku apps");
	rc = hr_feed_list(http, &s, token, &pages, &l, &err);
	hr_free_secret(token);
	pgstat_report_activity(STATE_IDLE, NULL);

	now = GetCurrentTimestamp();
	hr_cache_lock(c);
	c->feed.requests += l.requests;
	for (i = 0; i < l.requests; i++)
		hr_cache_count_request(c, GetUserId(), now);
	if (l.ratelimit_remaining >= 0)
	{
		c->ratelimit_remaining = l.ratelimit_remaining;
		c->ratelimit_at = now;
	}
	before = c->feed.last_error;
	if (rc == HR_OK)
	{
		c->feed.last_listing = now;
		c->feed.apps_seen = l.apps_seen;
		memset(&c->feed.last_error, 0, sizeof(c->feed.last_error));
	}
	else
	{
		c->feed.last_error = err;
		if (rc == HR_ERATELIMIT)
		{
			c->rate_limited++;
			hr_cache_set_backoff(c, &key, err.retry_after > 0 ? err.retry_after : 60, now);
		}
	}
	hr_cache_unlock(c);

	if (rc != HR_OK)
	{
		if (rc == HR_ECANCELED)
			CHECK_FOR_INTERRUPTS();
		report_failure(&err, &before);
		hr_feed_listing_free(&l);
		return;
	}
	if (before.code != HR_OK)
		ereport(LOG, (errmsg("heroku_resolver feed lists the Heroku apps again")));

	listing_round++;
	for (i = 0; i < l.napps; i++)
	{
		AppNews		news = note_app(&l.apps[i], l.listed_at);

		if (news != APP_SAME)
		{
			ChangedApp *app = palloc(sizeof(ChangedApp));

			app->id = pstrdup(l.apps[i].id);
			app->name = pstrdup(l.apps[i].name);
			changed = lappend(changed, app);
			nnew += news == APP_CHANGED;
		}
	}
	changed = racy_apps(changed, l.listed_at);
	listed_once = true;
	hr_feed_listing_free(&l);
	if (changed == NIL)
		return;

	hr_cache_lock(c);
	c->feed.changes += nnew;
	hr_cache_unlock(c);
	rows = registry_rows(&rows_ok, cxt);
	foreach(lc, changed)
	{
		if (!follow_release(c, lfirst(lc), rows, cxt) || !rows_ok)
			retry_later(lfirst(lc));
	}
}
