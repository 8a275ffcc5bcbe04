/*-------------------------------------------------------------------------
 *
 * pg_cache_sql.c
 *		The SQL functions that clear and show the resolution cache:
 *		heroku_resolver_invalidate(), heroku_resolver_cache() and
 *		heroku_resolver_status().  They never show a user or a password.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

PG_FUNCTION_INFO_V1(heroku_resolver_invalidate);
PG_FUNCTION_INFO_V1(heroku_resolver_cache);
PG_FUNCTION_INFO_V1(heroku_resolver_status);

/* heroku_resolver_invalidate(app, config_var): drop matching entries. */
Datum
heroku_resolver_invalidate(PG_FUNCTION_ARGS)
{
	char	   *app = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *config_var = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	HrCache    *c = hr_cache_get();
	int			n = 0;
	int			i;

	hr_cache_lock(c);
	for (i = 0; i < c->nentries; i++)
	{
		HrCacheEntry *e = &c->entries[i];

		if (!e->in_use || (app && strcmp(e->app, app) != 0) ||
			(config_var && strcmp(e->config_var, config_var) != 0))
			continue;
		n++;
		if (e->busy)
		{
			/* its flight ends without storing what it brings */
			e->discard_flight = true;
			hr_cache_wipe_entry(e);
		}
		else
		{
			hr_cache_wipe_entry(e);
			memset(e, 0, offsetof(HrCacheEntry, url));
		}
	}
	/* a stored Retry-After must not outlive an operator's decision */
	memset(c->backoff, 0, sizeof(c->backoff));
	hr_cache_unlock(c);
	PG_RETURN_INT32(n);
}

static Datum
timestamp_or_null(TimestampTz t, bool *isnull)
{
	*isnull = (t == 0);
	return TimestampTzGetDatum(t);
}

/* Whose entries heroku_resolver_cache() shows to its caller. */
typedef enum HrShown
{
	SHOW_ALL,					/* a superuser or pg_read_all_stats */
	SHOW_OWN,					/* those of the caller's own token */
	SHOW_NONE					/* the caller has no token */
} HrShown;

/*
 * Which entries the caller may see: every one for a superuser or a member
 * of pg_read_all_stats, as pg_stat_activity does; for others only those
 * fetched with their own effective token and CA settings, by the digest the
 * resolve path keys them with (*digest).  An entry shows an app and where
 * its database is, which another token's holder need not learn.
 */
static HrShown
shown_entries(HrCache *c, uint8 *digest)
{
	hr_settings s;
	hr_error	err;
	char	   *token;
	HrCacheKey	key;

	if (has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		return SHOW_ALL;
	hr_pg_settings(&s);
	memset(&err, 0, sizeof(err));
	if (hr_find_token(&s, &token, NULL, &err) != HR_OK)
		return SHOW_NONE;
	hr_cache_make_key(c, &key, "", "", "", token, s.ca_file);
	hr_free_secret(token);
	memcpy(digest, key.token_digest, HR_DIGEST_LEN);
	return SHOW_OWN;
}

/* heroku_resolver_cache(): one row per entry, never a user or password. */
Datum
heroku_resolver_cache(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HrCache    *c = hr_cache_get();
	HrCacheEntry *e = palloc(sizeof(HrCacheEntry));
	int			ttl = hr_cache_ttl_ms;
	uint8		own[HR_DIGEST_LEN];
	HrShown		shown = shown_entries(c, own);
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (shown == SHOW_NONE)
	{
		pfree(e);
		return (Datum) 0;
	}
	for (i = 0; i < c->nentries; i++)
	{
		Datum		values[11];
		bool		nulls[11];
		hr_conninfo ci;
		hr_error	err;
		const char *v;
		bool		parsed = false;

		hr_cache_lock(c);
		memcpy(e, &c->entries[i], sizeof(HrCacheEntry));
		hr_cache_unlock(c);
		if (!e->in_use ||
			(shown == SHOW_OWN && memcmp(e->token_digest, own, HR_DIGEST_LEN) != 0))
		{
			explicit_bzero(e->url, sizeof(e->url));
			continue;
		}

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

/* {"role": requests of the last hour, ...} as jsonb; roles since dropped show their OID. */
static Datum
role_requests(const HrRoleRate *roles, TimestampTz now)
{
	StringInfoData buf;
	bool		first = true;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < HR_CACHE_ROLE_SLOTS; i++)
	{
		int64		n = hr_cache_role_last_hour(&roles[i], now);
		char	   *name;

		if (n == 0)
			continue;
		name = GetUserNameFromId(roles[i].roleid, true);
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		if (name)
			escape_json(&buf, name);
		else
			appendStringInfo(&buf, "\"%u\"", roles[i].roleid);
		appendStringInfo(&buf, ": " INT64_FORMAT, n);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* The 0-based number of the column named name, or -1 (an older definition). */
static int
column_of(TupleDesc tupdesc, const char *name)
{
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
		if (strcmp(NameStr(TupleDescAttr(tupdesc, i)->attname), name) == 0)
			return i;
	return -1;
}

/*
 * The release feed's columns (1.2), found by name: a definition without
 * them (1.1) still works, and their place in the row is the SQL script's.
 */
static void
feed_columns(TupleDesc tupdesc, const HrFeedStatus *f, Datum *values, bool *nulls)
{
	int			col;

	if ((col = column_of(tupdesc, "feed_last_listing")) >= 0)
		values[col] = timestamp_or_null(f->last_listing, &nulls[col]);
	if ((col = column_of(tupdesc, "feed_apps_seen")) >= 0)
	{
		nulls[col] = f->last_listing == 0;
		values[col] = Int32GetDatum(f->apps_seen);
	}
	if ((col = column_of(tupdesc, "feed_changes")) >= 0)
		values[col] = Int64GetDatum((int64) f->changes);
	if ((col = column_of(tupdesc, "feed_requests")) >= 0)
		values[col] = Int64GetDatum((int64) f->requests);
	if ((col = column_of(tupdesc, "feed_last_error")) >= 0)
	{
		nulls[col] = f->last_error.code == HR_OK;
		values[col] = nulls[col] ? (Datum) 0 : CStringGetTextDatum(f->last_error.message);
	}
}

/* heroku_resolver_status(): one row about the cache, the API and the worker. */
Datum
heroku_resolver_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	HrCache    *c = hr_cache_get();
	Datum	   *values;
	bool	   *nulls;
	int			entries = 0;
	TimestampTz backoff_until = 0;
	TimestampTz now = GetCurrentTimestamp();
	HrRoleRate	roles[HR_CACHE_ROLE_SLOTS];
	HrFeedStatus feed;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values = palloc0(sizeof(Datum) * Max(tupdesc->natts, 13));
	nulls = palloc0(sizeof(bool) * Max(tupdesc->natts, 13));

	hr_cache_lock(c);
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
	memcpy(roles, c->roles, sizeof(roles));
	feed = c->feed;
	hr_cache_unlock(c);
	/* 1.2 added role_requests; a 1.1 definition has 12 columns */
	if (tupdesc->natts > 12)
		values[12] = role_requests(roles, now);
	feed_columns(tupdesc, &feed, values, nulls);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
