/*-------------------------------------------------------------------------
 *
 * pg_heal.c
 *		Healing on failure: when a statement fails to connect (SQLSTATE
 *		class 08 or 28) with credentials this cluster handed out, the cache
 *		entry behind them becomes suspect cluster-wide (its next resolve, in
 *		any backend, asks the API first), and the registered foreign servers
 *		the statement used are queued for the background worker, which is
 *		woken to refresh them at once.
 *
 * What was used is recorded as it happens, never guessed from message text
 * (messages are translated):
 *   - hr_pg_resolve() notes each answer it serves in this transaction: the
 *     cache key and a hash of the URL (hr_heal_note_served);
 *   - ExecutorStart notes the foreign servers of the statement's plan.
 * The executor's run is wrapped so that an error's SQLSTATE is seen before
 * it propagates; the shared state is changed in the abort callback, once
 * the aborted (sub)transaction has released its locks.  An unrelated
 * failure (another SQLSTATE, or a statement that used nothing of ours)
 * changes nothing; a storm costs at most one API request per entry per
 * second (HR_HEAL_MIN_MS, pg_cache_resolve.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_cache.h"

#define HR_HEAL_NOTES	16		/* answers remembered per transaction */
#define HR_HEAL_USED	16		/* foreign servers remembered per transaction */

/* heroku.heal */
bool		hr_heal = true;

/* this transaction's answers and foreign servers, and whether it failed so */
static HrServed served[HR_HEAL_NOTES];
static int	nserved = 0;
static Oid	used_servers[HR_HEAL_USED];
static int	nused = 0;
static bool failed_to_connect = false;

static void note_failure(void);

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;

/* Note an answer hr_pg_resolve() is about to hand out (url: the raw URL). */
void
hr_heal_note_served(const char *url)
{
	HrServed	s = hr_cache_last_served;
	int			i;

	if (!hr_heal)
		return;
	s.url_hash = hash_bytes((const unsigned char *) url, strlen(url));
	for (i = 0; i < nserved; i++)
		if (memcmp(&served[i], &s, sizeof(s)) == 0)
			return;
	/* a full list keeps the newest: the oldest answers are the least likely used */
	if (nserved == HR_HEAL_NOTES)
		memmove(&served[0], &served[1], sizeof(HrServed) * (HR_HEAL_NOTES - 1));
	else
		nserved++;
	served[nserved - 1] = s;
	explicit_bzero(&s, sizeof(s));
}

static void
note_server(Oid serverid)
{
	int			i;

	for (i = 0; i < nused; i++)
		if (used_servers[i] == serverid)
			return;
	if (nused < HR_HEAL_USED)
		used_servers[nused++] = serverid;
}

/*
 * The foreign server a dblink function in FROM names by its first argument,
 * as in dblink('srv', 'select ...'): a constant text naming an existing
 * server.  InvalidOid otherwise (a conninfo, a connection name, an
 * expression, another function).
 */
static Oid
dblink_server(RangeTblFunction *rtf)
{
	FuncExpr   *f = (FuncExpr *) rtf->funcexpr;
	Const	   *arg;
	char	   *fname;
	char	   *sname;
	ForeignServer *srv;
	bool		is_dblink;

	if (f == NULL || !IsA(f, FuncExpr) || list_length(f->args) < 1)
		return InvalidOid;
	arg = (Const *) linitial(f->args);
	if (!IsA(arg, Const) || arg->constisnull || arg->consttype != TEXTOID)
		return InvalidOid;
	fname = get_func_name(f->funcid);
	is_dblink = fname != NULL && strncmp(fname, "dblink", 6) == 0;
	if (fname)
		pfree(fname);
	if (!is_dblink)
		return InvalidOid;
	sname = TextDatumGetCString(arg->constvalue);
	/* a conninfo is no server name (and may hold a password): not looked up */
	if (strchr(sname, '=') != NULL || strlen(sname) >= NAMEDATALEN)
		srv = NULL;
	else
		srv = GetForeignServerByName(sname, true);
	explicit_bzero(sname, strlen(sname));
	pfree(sname);
	return srv ? srv->serverid : InvalidOid;
}

/*
 * The servers dblink functions name in a plan's function scans (the final
 * range table no longer holds the functions: the plan nodes do).
 */
static void
note_dblink_servers(Plan *plan)
{
	ListCell   *lc;

	check_stack_depth();
	if (plan == NULL)
		return;
	if (IsA(plan, FunctionScan))
	{
		foreach(lc, ((FunctionScan *) plan)->functions)
		{
			Oid			serverid = dblink_server(lfirst_node(RangeTblFunction, lc));

			if (OidIsValid(serverid))
				note_server(serverid);
		}
	}
	else if (IsA(plan, Append))
	{
		foreach(lc, ((Append *) plan)->appendplans)
			note_dblink_servers((Plan *) lfirst(lc));
	}
	else if (IsA(plan, MergeAppend))
	{
		foreach(lc, ((MergeAppend *) plan)->mergeplans)
			note_dblink_servers((Plan *) lfirst(lc));
	}
	else if (IsA(plan, SubqueryScan))
		note_dblink_servers(((SubqueryScan *) plan)->subplan);
	note_dblink_servers(plan->lefttree);
	note_dblink_servers(plan->righttree);
}

/*
 * Remember the foreign servers a plan reads or writes: its foreign tables,
 * and the servers dblink functions in its FROM clauses name.
 */
static void
note_foreign_servers(PlannedStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_FOREIGN_TABLE)
			note_server(GetForeignTable(rte->relid)->serverid);
	}
	note_dblink_servers(stmt->planTree);
	foreach(lc, stmt->subplans)
		note_dblink_servers((Plan *) lfirst(lc));
}

/*
 * Note the statement's foreign servers first: postgres_fdw connects while
 * the executor starts, so a failure to connect may come from here.
 */
static void
heal_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (hr_heal && queryDesc->plannedstmt)
		note_foreign_servers(queryDesc->plannedstmt);
	PG_TRY();
	{
		if (prev_executor_start)
			prev_executor_start(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
	}
	PG_CATCH();
	{
		note_failure();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Is sqlerrcode a failure to connect or to authenticate? */
static bool
is_connect_failure(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_CONNECTION_EXCEPTION ||
		category == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
}

/* In a PG_CATCH: was the error a failure to connect with what we noted? */
static void
note_failure(void)
{
	if (hr_heal && (nserved > 0 || nused > 0) && is_connect_failure(geterrcode()))
		failed_to_connect = true;
}

/* Run the statement; note (never handle) a connection failure on the way out. */
static void
heal_executor_run(HR_EXECUTOR_RUN_PARAMS)
{
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(HR_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(HR_EXECUTOR_RUN_ARGS);
	}
	PG_CATCH();
	{
		note_failure();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Queue a failed registered server for the worker; false if the queue is full. */
static bool
queue_server(HrCache *c, Oid serverid, TimestampTz now)
{
	HrHealServer *free_slot = NULL;
	int			i;

	for (i = 0; i < HR_HEAL_SLOTS; i++)
	{
		HrHealServer *h = &c->heal[i];

		if (h->dbid == MyDatabaseId && h->serverid == serverid)
		{
			h->failed_at = now;
			return true;
		}
		if (h->dbid == InvalidOid && free_slot == NULL)
			free_slot = h;
	}
	if (free_slot == NULL)
		return false;
	free_slot->dbid = MyDatabaseId;
	free_slot->serverid = serverid;
	free_slot->failed_at = now;
	free_slot->refreshed_at = 0;
	return true;
}

/*
 * After a (sub)transaction that failed to connect has released its locks:
 * mark what it was served suspect and hand its foreign servers to the
 * worker.  Never throws (it runs during abort).
 */
static void
heal_now(void)
{
	HrCache    *c = hr_cache_get();
	TimestampTz now = GetCurrentTimestamp();
	Latch	   *wake = NULL;
	int			i;

	for (i = 0; i < nserved; i++)
		(void) hr_cache_mark_suspect(&served[i]);
	if (nused > 0 && c->lock != NULL)
	{
		hr_cache_lock(c);
		for (i = 0; i < nused; i++)
			(void) queue_server(c, used_servers[i], now);
		wake = c->worker_latch;
		hr_cache_unlock(c);
		if (wake)
			SetLatch(wake);
	}
	failed_to_connect = false;
}

static void
forget_transaction(void)
{
	explicit_bzero(served, sizeof(served));
	nserved = 0;
	nused = 0;
	failed_to_connect = false;
}

static void
heal_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT && failed_to_connect)
		heal_now();
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT)
		forget_transaction();
}

/* A failure caught by a savepoint or an exception block heals too. */
static void
heal_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && failed_to_connect)
		heal_now();
}

/*
 * The worker's part: take the servers of database dbid that failed since
 * their last refresh (at most one refresh per server a second).
 */
static int
take_queue(Oid dbid, Oid *servers, int max)
{
	HrCache    *c = hr_cache_get();
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;
	int			i;

	hr_cache_lock(c);
	for (i = 0; i < HR_HEAL_SLOTS && n < max; i++)
	{
		HrHealServer *h = &c->heal[i];

		if (h->dbid != dbid || h->failed_at <= h->refreshed_at ||
			now < TimestampTzPlusMilliseconds(h->refreshed_at, HR_HEAL_MIN_MS))
			continue;
		h->refreshed_at = now;
		servers[n++] = h->serverid;
	}
	hr_cache_unlock(c);
	return n;
}

/* Is server in the registry of this database?  Inside SPI. */
static bool
registered(const char *server)
{
	Datum		arg = CStringGetTextDatum(server);
	Oid			argtype = TEXTOID;
	int			ret;

	ret = SPI_execute_with_args(
		"SELECT pg_catalog.format('SELECT 1 FROM %I.heroku_fdw_registry WHERE server::text OPERATOR(pg_catalog.=) %L', n.nspname, $1)"
		" FROM pg_catalog.pg_extension e"
		" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
		" WHERE e.extname OPERATOR(pg_catalog.=) 'heroku_resolver'",
		1, &argtype, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	ret = SPI_execute(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), true, 1);
	return ret == SPI_OK_SELECT && SPI_processed == 1;
}

/*
 * In the worker: refresh the registered servers of this database whose
 * connections failed, each in its own transaction (a server dropped
 * meanwhile, or not registered, is skipped).  Returns how many it refreshed.
 * Throws on failure; the caller recovers.
 */
int
hr_heal_worker_round(void)
{
	Oid			servers[HR_HEAL_SLOTS];
	int			n = take_queue(MyDatabaseId, servers, HR_HEAL_SLOTS);
	int			done = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		Datum		arg = ObjectIdGetDatum(servers[i]);
		Oid			argtype = OIDOID;
		int			ret;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "heroku_resolver: healing a foreign server");
		/* registered servers only, through the extension's own function */
		ret = SPI_execute_with_args(
			"SELECT pg_catalog.format('SELECT %I.heroku_fdw_refresh(%L)', n.nspname, s.srvname)"
			" FROM pg_catalog.pg_foreign_server s, pg_catalog.pg_extension e"
			" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
			" WHERE e.extname OPERATOR(pg_catalog.=) 'heroku_resolver'"
			" AND s.oid OPERATOR(pg_catalog.=) $1"
			" AND pg_catalog.to_regclass(pg_catalog.format('%I.heroku_fdw_registry', n.nspname)) IS NOT NULL",
			1, &argtype, &arg, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
		{
			char	   *call = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			char	   *server = NULL;

			/* heroku_fdw_refresh refuses an unregistered server: ask first */
			ret = SPI_execute_with_args(
				"SELECT s.srvname::text FROM pg_catalog.pg_foreign_server s"
				" WHERE s.oid OPERATOR(pg_catalog.=) $1",
				1, &argtype, &arg, NULL, true, 1);
			if (ret == SPI_OK_SELECT && SPI_processed == 1)
				server = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			if (server && registered(server))
			{
				if (SPI_execute(call, false, 1) != SPI_OK_SELECT)
					elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
				ereport(LOG,
						(errmsg("heroku_resolver healed foreign server \"%s\" after a failed connection",
								server)));
				done++;
			}
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	return done;
}

/* heroku.heal and the hooks; called from _PG_init. */
void
hr_heal_init(void)
{
	DefineCustomBoolVariable("heroku.heal",
							 "Revalidate credentials at once when a connection made with them fails.",
							 "On: a failed dblink or foreign-server connection (SQLSTATE class 08 or 28) with credentials this cluster handed out makes the next resolve ask the Heroku API, and wakes the background worker to refresh the foreign server.",
							 &hr_heal,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = heal_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = heal_executor_run;
	RegisterXactCallback(heal_xact_callback, NULL);
	RegisterSubXactCallback(heal_subxact_callback, NULL);
}
