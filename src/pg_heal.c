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
 *   - ExecutorStart notes the foreign servers of the statement's plan: its
 *     foreign tables, and the servers dblink's own functions (known by
 *     OID) name in its FROM clauses, each only for a role that may use the
 *     server (USAGE on it and a user mapping for it), so that a role with
 *     no grant on a server cannot make the worker spend requests on it.
 * The executor's run is wrapped so that an error's SQLSTATE is seen before
 * it propagates; the shared state is changed in the abort callback, once
 * the aborted (sub)transaction has released its locks.  An unrelated
 * failure (another SQLSTATE, or a statement that used nothing of ours)
 * changes nothing; a storm costs at most one API request per entry per
 * second (HR_HEAL_MIN_MS, pg_cache_resolve.c), and one per server a
 * minute when healing found nothing to change (pg_heal_queue.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pg_cache.h"

#define HR_HEAL_NOTES	16		/* answers remembered per transaction */
#define HR_HEAL_USED	16		/* foreign servers remembered per transaction */

/* heroku.heal */
bool		hr_heal = true;

/* this transaction's answers and foreign servers, and whether it failed so */
static HrServed served[HR_HEAL_NOTES];
static int	nserved = 0;
static HrHealServer used_servers[HR_HEAL_USED];
static int	nused = 0;
static bool failed_to_connect = false;

static void note_failure(void);

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;

/* Remember key in s (the URL hash is the caller's to set). */
void
hr_served_set(HrServed *s, const HrCacheKey *key)
{
	strlcpy(s->api_url, key->api_url, sizeof(s->api_url));
	strlcpy(s->app, key->app, sizeof(s->app));
	strlcpy(s->config_var, key->config_var, sizeof(s->config_var));
	memcpy(s->token_digest, key->token_digest, HR_DIGEST_LEN);
	s->url_hash = 0;
}

/*
 * A connection made with what s served failed: if the entry still holds
 * that very URL, its next resolve asks the API first.  True if marked.
 */
bool
hr_cache_mark_suspect(const HrServed *s)
{
	HrCache    *c = hr_cache_get();
	HrCacheKey	key;
	HrCacheEntry *e;
	bool		marked = false;

	key.api_url = s->api_url;
	key.app = s->app;
	key.config_var = s->config_var;
	memcpy(key.token_digest, s->token_digest, HR_DIGEST_LEN);
	hr_cache_key_finish(&key);
	hr_cache_lock(c);
	e = hr_cache_find_entry(c, &key);
	if (e != NULL && e->has_value &&
		hash_bytes((const unsigned char *) e->url, strlen(e->url)) == s->url_hash)
	{
		e->suspect = true;
		marked = true;
	}
	hr_cache_unlock(c);
	return marked;
}

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

/*
 * May roleid use the server (USAGE on it, and a user mapping for it or for
 * PUBLIC)?  Only then can its failed connection be the server's
 * credentials' doing, and worth a request on the worker's token.
 */
static bool
may_use_server(Oid serverid, Oid roleid)
{
	if (hr_server_aclcheck(serverid, roleid, ACL_USAGE) != ACLCHECK_OK)
		return false;
	return SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(roleid),
								 ObjectIdGetDatum(serverid)) ||
		SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							  ObjectIdGetDatum(serverid));
}

/* Remember that roleid used the server in this transaction, if it may. */
static void
note_server(Oid serverid, Oid roleid)
{
	ForeignServer *srv;
	int			i;

	for (i = 0; i < nused; i++)
		if (used_servers[i].serverid == serverid && used_servers[i].roleid == roleid)
			return;
	if (nused == HR_HEAL_USED || !may_use_server(serverid, roleid))
		return;
	srv = GetForeignServerExtended(serverid, FSV_MISSING_OK);
	if (srv == NULL)
		return;
	memset(&used_servers[nused], 0, sizeof(HrHealServer));
	used_servers[nused].dbid = MyDatabaseId;
	used_servers[nused].serverid = serverid;
	used_servers[nused].roleid = roleid;
	namestrcpy(&used_servers[nused].name, srv->servername);
	nused++;
}

/*
 * Is funcid one of dblink's own functions?  Its name is looked at first
 * (cheap, from the syscache), then its membership in extension dblink: a
 * function some role made with a name starting with "dblink" is none.
 */
static bool
is_dblink_function(Oid funcid)
{
	char	   *fname = get_func_name(funcid);
	bool		named = fname != NULL && strncmp(fname, "dblink", 6) == 0;
	Oid			dblink;

	if (fname)
		pfree(fname);
	if (!named)
		return false;
	dblink = get_extension_oid("dblink", true);
	return OidIsValid(dblink) && getExtensionOfObject(ProcedureRelationId, funcid) == dblink;
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
	char	   *sname;
	ForeignServer *srv;

	if (f == NULL || !IsA(f, FuncExpr) || list_length(f->args) < 1)
		return InvalidOid;
	arg = (Const *) linitial(f->args);
	if (!IsA(arg, Const) || arg->constisnull || arg->consttype != TEXTOID)
		return InvalidOid;
	if (!is_dblink_function(f->funcid))
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

			/* dblink connects with the current user's mapping */
			if (OidIsValid(serverid))
				note_server(serverid, GetUserId());
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

		/* an FDW connects as the user the table is checked as (a view's owner) */
		if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_FOREIGN_TABLE)
		{
			Oid			checkas = hr_rte_check_as_user(stmt, rte);

			note_server(GetForeignTable(rte->relid)->serverid,
						OidIsValid(checkas) ? checkas : GetUserId());
		}
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

/*
 * After a (sub)transaction that failed to connect has released its locks:
 * mark what it was served suspect and hand its foreign servers to the
 * worker.  Never throws (it runs during abort).
 */
static void
heal_now(void)
{
	int			i;

	for (i = 0; i < nserved; i++)
		(void) hr_cache_mark_suspect(&served[i]);
	if (nused > 0)
		hr_heal_queue(used_servers, nused);
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
