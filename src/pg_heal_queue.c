/*-------------------------------------------------------------------------
 *
 * pg_heal_queue.c
 *		The foreign servers queued for healing (pg_heal.c queues them when a
 *		connection failed), and the background worker's side: it takes them
 *		and calls the extension's heroku_fdw_refresh(name) for each, by OID.
 *
 * What a role can make the worker spend is bounded: a server is queued
 * only by a role that may use it (pg_heal.c), only in the worker's own
 * database, and not again for HR_HEAL_QUIET_MS after a healing that found
 * nothing to change (HR_HEAL_MIN_MS after one that did); the requests are
 * charged to the role whose connection failed (role_requests).  A slot is
 * freed when the worker takes it; a full queue drops its oldest entry, with
 * a LOG line.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

/* The entry of the worker's recent healings for a server, or NULL. */
static HrHealRecent *
find_recent(HrCache *c, Oid dbid, Oid serverid)
{
	int			i;

	for (i = 0; i < HR_HEAL_RECENT; i++)
		if (c->healed[i].dbid == dbid && c->healed[i].serverid == serverid)
			return &c->healed[i];
	return NULL;
}

/* Is the server resting after a recent healing? */
static bool
resting(HrCache *c, Oid dbid, Oid serverid, TimestampTz now)
{
	HrHealRecent *r = find_recent(c, dbid, serverid);

	return r != NULL &&
		now < TimestampTzPlusMilliseconds(r->healed_at,
										  r->changed ? HR_HEAL_MIN_MS : HR_HEAL_QUIET_MS);
}

/*
 * Queue one server, lock held; returns the slot of the entry it dropped to
 * make room (then copied to *dropped), else false.
 */
static bool
queue_one(HrCache *c, const HrHealServer *u, TimestampTz now, HrHealServer *dropped)
{
	HrHealServer *slot = NULL;
	HrHealServer *oldest = NULL;
	int			i;

	for (i = 0; i < HR_HEAL_SLOTS; i++)
	{
		HrHealServer *h = &c->heal[i];

		if (h->dbid == u->dbid && h->serverid == u->serverid)
		{
			h->failed_at = now;
			h->roleid = u->roleid;
			return false;
		}
		if (h->dbid == InvalidOid)
		{
			if (slot == NULL)
				slot = h;
		}
		else if (oldest == NULL || h->failed_at < oldest->failed_at)
			oldest = h;
	}
	if (slot == NULL)
	{
		*dropped = *oldest;
		slot = oldest;
	}
	*slot = *u;
	slot->failed_at = now;
	return slot == oldest;
}

/*
 * Hand the servers a failed (sub)transaction used to the worker, and wake
 * it.  Runs during abort: never throws.
 */
void
hr_heal_queue(const HrHealServer *used, int n)
{
	HrCache    *c = hr_cache_get();
	TimestampTz now = GetCurrentTimestamp();
	HrHealServer dropped[HR_HEAL_SLOTS];
	int			ndropped = 0;
	bool		queued = false;
	Latch	   *wake;
	int			i;

	/* no worker (no preload), or another database: nobody would take it */
	if (c->lock == NULL)
		return;
	hr_cache_lock(c);
	if (c->worker_dbid != MyDatabaseId)
	{
		hr_cache_unlock(c);
		return;
	}
	for (i = 0; i < n; i++)
	{
		if (resting(c, used[i].dbid, used[i].serverid, now))
			continue;
		if (queue_one(c, &used[i], now, &dropped[ndropped]) && ndropped < HR_HEAL_SLOTS - 1)
			ndropped++;
		queued = true;
	}
	wake = queued ? c->worker_latch : NULL;
	hr_cache_unlock(c);
	for (i = 0; i < ndropped; i++)
		ereport(LOG,
				(errmsg("heroku_resolver heal queue is full: dropped foreign server \"%s\", queued since %s",
						NameStr(dropped[i].name), timestamptz_to_str(dropped[i].failed_at)),
				 errdetail("At most %d failed foreign servers wait for the background worker.",
						   HR_HEAL_SLOTS)));
	if (wake)
		SetLatch(wake);
}

/*
 * The worker's part: take (and free) the queued servers of database dbid,
 * noting each as healed now in the recent list (its oldest entry makes
 * room).
 */
static int
take_queue(Oid dbid, HrHealServer *out)
{
	HrCache    *c = hr_cache_get();
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;
	int			i;

	hr_cache_lock(c);
	for (i = 0; i < HR_HEAL_SLOTS; i++)
	{
		HrHealServer *h = &c->heal[i];
		HrHealRecent *r;
		int			j;

		if (h->dbid != dbid)
			continue;
		out[n++] = *h;
		r = find_recent(c, h->dbid, h->serverid);
		for (j = 0; r == NULL && j < HR_HEAL_RECENT; j++)
			if (c->healed[j].dbid == InvalidOid)
				r = &c->healed[j];
		if (r == NULL)
		{
			r = &c->healed[0];
			for (j = 1; j < HR_HEAL_RECENT; j++)
				if (c->healed[j].healed_at < r->healed_at)
					r = &c->healed[j];
		}
		r->dbid = h->dbid;
		r->serverid = h->serverid;
		r->healed_at = now;
		r->changed = false;
		memset(h, 0, sizeof(*h));
	}
	hr_cache_unlock(c);
	return n;
}

/* A healing changed the server: it may be healed again after HR_HEAL_MIN_MS. */
static void
note_changed(Oid dbid, Oid serverid)
{
	HrCache    *c = hr_cache_get();
	HrHealRecent *r;

	hr_cache_lock(c);
	r = find_recent(c, dbid, serverid);
	if (r)
		r->changed = true;
	hr_cache_unlock(c);
}

/*
 * heroku_fdw_refresh(server) by OID, in a transaction of its own, with the
 * requests charged to the role whose connection failed.  A server that is
 * not registered (42704: a foreign server of another kind failed) or no
 * longer exists is skipped quietly; another error is logged and the next
 * server is healed all the same; a cancel or a shutdown propagates.
 */
static void
heal_one(const HrHealServer *h, int *done)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtype = NAMEOID;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "heroku_resolver: healing a foreign server");
	PG_TRY();
	{
		Oid			fn = hr_ext_function("heroku_fdw_refresh", 1, &argtype);
		bool		changed = false;

		if (OidIsValid(fn) && OidIsValid(hr_ext_function("heroku_fdw_forget_dropped", 0, NULL)))
		{
			hr_cache_charge_role = h->roleid;
			changed = DatumGetBool(OidFunctionCall1(fn, NameGetDatum(&h->name)));
			hr_cache_charge_role = InvalidOid;
			if (changed)
				ereport(LOG,
						(errmsg("heroku_resolver healed foreign server \"%s\" after a failed connection",
								NameStr(h->name)),
						 errdetail("Its credentials had changed.")));
			else
				ereport(LOG,
						(errmsg("heroku_resolver healed foreign server \"%s\" after a failed connection",
								NameStr(h->name)),
						 errdetail("Nothing had changed: it is not healed again for %d s.",
								   HR_HEAL_QUIET_MS / 1000)));
			if (changed)
				note_changed(h->dbid, h->serverid);
			(*done)++;
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		hr_cache_charge_role = InvalidOid;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION)
			PG_RE_THROW();
		if (edata->sqlerrcode != ERRCODE_UNDEFINED_OBJECT)
			EmitErrorReport();
		FlushErrorState();
		FreeErrorData(edata);
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * In the worker: refresh the queued servers of this database, each in its
 * own transaction.  Returns how many it refreshed.  Throws only on a
 * cancel or a shutdown (or what cannot happen); the caller recovers.
 */
int
hr_heal_worker_round(void)
{
	HrHealServer servers[HR_HEAL_SLOTS];
	int			n = take_queue(MyDatabaseId, servers);
	int			done = 0;
	int			i;

	for (i = 0; i < n; i++)
		heal_one(&servers[i], &done);
	return done;
}
