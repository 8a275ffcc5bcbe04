/*-------------------------------------------------------------------------
 *
 * pg_fdw.c
 *		postgres_fdw and dblink_fdw helpers: foreign servers whose options
 *		and user mappings come from a Heroku app's config var, and a refresh
 *		that alters them only when the app's URL changed.
 *
 * These are the SQL-callable functions that make and refresh servers,
 * including heroku_resolver_refresh() of an app's cache entries and
 * servers (pg_fdw_forget.c has those that forget a registration); they
 * call down into pg_fdw_options.c (which option goes where, what changed),
 * pg_fdw_ddl.c (the DDL, as parse trees), pg_fdw_registry.c (the registry
 * table), pg_fdw_lookup.c (a registered server, found and locked) and
 * pg_cache_revalidate.c, which never call back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pg_fdw.h"

/* For the CONTEXT line of errors raised while working on a server. */
typedef struct ServerErrorContext
{
	const char *doing;
	const char *server;
	const char *app;
} ServerErrorContext;

PG_FUNCTION_INFO_V1(heroku_fdw_create_server);
PG_FUNCTION_INFO_V1(heroku_fdw_add_user_mapping);
PG_FUNCTION_INFO_V1(heroku_fdw_refresh);
PG_FUNCTION_INFO_V1(heroku_fdw_refresh_all);
PG_FUNCTION_INFO_V1(heroku_resolver_refresh);

/* ---------- arguments, lookups and checks ---------- */

/* A regrole argument that names an existing role. */
static Oid
role_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	Oid			roleid;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", argname)));
	roleid = PG_GETARG_OID(argno);
	if (GetUserNameFromId(roleid, true) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", roleid)));
	return roleid;
}

/* CONTEXT: what was being done to which server of which app. */
static void
server_error_callback(void *arg)
{
	ServerErrorContext *c = (ServerErrorContext *) arg;

	errcontext("%s foreign server \"%s\" of Heroku app \"%s\"",
			   c->doing, c->server, c->app);
}

/* The FDW by name, or 42704 with a hint saying how to get it. */
static ForeignDataWrapper *
lookup_fdw(const char *fdwname)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapperByName(fdwname, true);

	if (fdw == NULL)
	{
		const char *ext = NULL;

		if (strcmp(fdwname, "postgres_fdw") == 0)
			ext = "postgres_fdw";
		else if (strcmp(fdwname, "dblink_fdw") == 0)
			ext = "dblink";
		if (ext)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("foreign-data wrapper \"%s\" does not exist", fdwname),
					 errhint("Install it with CREATE EXTENSION %s.", ext)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("foreign-data wrapper \"%s\" does not exist", fdwname),
				 errhint("Use postgres_fdw (CREATE EXTENSION postgres_fdw) or dblink_fdw (CREATE EXTENSION dblink).")));
	}
	return fdw;
}

/* Which of the supported FDWs this is, judged by its validator. */
static FdwKind
fdw_kind(ForeignDataWrapper *fdw)
{
	char	   *validator = OidIsValid(fdw->fdwvalidator) ?
		get_func_name(fdw->fdwvalidator) : NULL;

	if (validator && strcmp(validator, "postgres_fdw_validator") == 0)
		return FDW_POSTGRES;
	if (validator && strcmp(validator, "dblink_fdw_validator") == 0)
		return FDW_DBLINK;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("foreign-data wrapper \"%s\" is not supported by heroku_resolver",
					fdw->fdwname),
			 errhint("Use postgres_fdw or dblink_fdw.")));
	pg_unreachable();
}

/* ---------- refresh ---------- */

/*
 * Bring the server's options and the mappings listed in e to what r says,
 * altering only what differs; add a mapping for add_role if valid.  A
 * mapping is altered only if it is the one the extension made (its OID,
 * role and server); one that was dropped, or dropped and made again by
 * someone else, leaves the list untouched.  e is updated to what is now in
 * place.  True if an existing object was altered.  srv and e are the live,
 * locked server and row of hr_registry_lookup().
 */
static bool
apply_resolution(ForeignServer *srv, RegEntry *e, const HrResolved *r, Oid add_role)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(srv->fdwid);
	SplitOptions want = hr_fdw_split_options(fdw_kind(fdw), r);
	List	   *changes;
	List	   *kept_roles = NIL;
	List	   *kept_mappings = NIL;
	ListCell   *lr;
	ListCell   *lm;
	bool		changed = false;

	changes = hr_fdw_option_changes(srv->options, want.server, e->server_keys);
	if (changes != NIL)
	{
		hr_ddl_alter_server(srv->serverid, changes);
		changed = true;
	}

	forboth(lr, e->roles, lm, e->mappings)
	{
		Oid			roleid = lfirst_oid(lr);
		Oid			umid = lfirst_oid(lm);
		List	   *current;

		if (!hr_ddl_user_mapping_is(umid, roleid, srv->serverid, &current))
			continue;
		kept_roles = lappend_oid(kept_roles, roleid);
		kept_mappings = lappend_oid(kept_mappings, umid);
		changes = hr_fdw_option_changes(current, want.mapping, e->mapping_keys);
		if (changes != NIL)
		{
			hr_ddl_alter_user_mapping(umid, roleid, srv->serverid, changes);
			changed = true;
		}
	}

	if (OidIsValid(add_role))
	{
		kept_mappings = lappend_oid(kept_mappings,
									hr_ddl_create_user_mapping(add_role, srv->serverid,
															   want.mapping));
		kept_roles = lappend_oid(kept_roles, add_role);
	}

	e->roles = kept_roles;
	e->mappings = kept_mappings;
	e->server_keys = hr_fdw_option_names(want.server);
	e->mapping_keys = hr_fdw_option_names(want.mapping);
	return changed;
}

/* Refresh a live, locked server and its row (hr_registry_lookup*). */
static bool
refresh_server(Registry *reg, RegEntry *e, ForeignServer *srv)
{
	ServerErrorContext ctx = {"refreshing", e->server, e->app};
	ErrorContextCallback cb;
	HrResolved *r;
	bool		changed;

	cb.callback = server_error_callback;
	cb.arg = &ctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;

	hr_fdw_check_server_owner(srv);
	r = hr_pg_resolve(e->app, e->config_var, true);
	changed = apply_resolution(srv, e, r, InvalidOid);
	hr_registry_update(reg, e, changed);

	error_context_stack = cb.previous;
	return changed;
}

/* ---------- SQL functions ---------- */

/*
 * heroku_fdw_create_server(server, app, config_var, fdw, for_role): create
 * the server and for_role's mapping from the app's URL, and register them.
 */
Datum
heroku_fdw_create_server(PG_FUNCTION_ARGS)
{
	char	   *server = hr_pg_name_arg(fcinfo, 0, "server");
	char	   *app = hr_pg_text_arg(fcinfo, 1, "app");
	char	   *config_var = hr_pg_text_arg(fcinfo, 2, "config_var");
	char	   *fdwname = hr_pg_name_arg(fcinfo, 3, "fdw");
	Oid			roleid = role_arg(fcinfo, 4, "for_role");
	Registry   *reg = hr_registry_for(fcinfo, false);
	ForeignDataWrapper *fdw;
	FdwKind		kind;
	AclResult	aclresult;
	ServerErrorContext ctx = {"creating", server, app};
	ErrorContextCallback cb;
	HrResolved *r;
	SplitOptions opts;
	RegEntry	e;

	fdw = lookup_fdw(fdwname);
	kind = fdw_kind(fdw);

	/* what CREATE SERVER would refuse, refused before asking the API */
	aclresult = hr_fdw_aclcheck(fdw->fdwid, GetUserId(), ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FDW, fdw->fdwname);
	if (GetForeignServerByName(server, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("server \"%s\" already exists", server)));

	cb.callback = server_error_callback;
	cb.arg = &ctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;

	r = hr_pg_resolve(app, config_var, false);
	opts = hr_fdw_split_options(kind, r);
	e.server_oid = hr_ddl_create_server(server, fdw->fdwname, opts.server);
	e.server_owner = GetForeignServer(e.server_oid)->owner;
	e.mappings = list_make1_oid(hr_ddl_create_user_mapping(roleid, e.server_oid,
														   opts.mapping));
	e.roles = list_make1_oid(roleid);
	e.server = server;
	e.app = app;
	/* the name the API answered to: X may have been found as X_URL */
	e.config_var = r->config_var;
	e.server_keys = hr_fdw_option_names(opts.server);
	e.mapping_keys = hr_fdw_option_names(opts.mapping);
	hr_registry_insert(reg, &e);

	error_context_stack = cb.previous;
	PG_RETURN_VOID();
}

/*
 * heroku_fdw_add_user_mapping(server, for_role): a mapping for one more
 * role, with the credentials the app has now (the server and the other
 * mappings are brought up to date too if they differ).
 */
Datum
heroku_fdw_add_user_mapping(PG_FUNCTION_ARGS)
{
	char	   *server = hr_pg_name_arg(fcinfo, 0, "server");
	Oid			roleid = role_arg(fcinfo, 1, "for_role");
	Registry   *reg = hr_registry_for(fcinfo, false);
	ForeignServer *srv;
	RegEntry   *e = hr_registry_lookup(reg, server, &srv);
	List	   *existing;
	ServerErrorContext ctx = {"adding a user mapping to", server, e->app};
	ErrorContextCallback cb;
	HrResolved *r;
	bool		changed;

	hr_fdw_check_server_owner(srv);
	if (hr_ddl_user_mapping_options(roleid, srv->serverid, &existing))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("user mapping for \"%s\" already exists for server \"%s\"",
						GetUserNameFromId(roleid, false), server)));

	cb.callback = server_error_callback;
	cb.arg = &ctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;

	r = hr_pg_resolve(e->app, e->config_var, false);
	changed = apply_resolution(srv, e, r, roleid);
	hr_registry_update(reg, e, changed);

	error_context_stack = cb.previous;
	PG_RETURN_VOID();
}

/* heroku_fdw_refresh(server): true if the server or a mapping was altered. */
Datum
heroku_fdw_refresh(PG_FUNCTION_ARGS)
{
	char	   *server = hr_pg_name_arg(fcinfo, 0, "server");
	Registry   *reg = hr_registry_for(fcinfo, false);
	ForeignServer *srv;
	RegEntry   *e = hr_registry_lookup(reg, server, &srv);

	PG_RETURN_BOOL(refresh_server(reg, e, srv));
}

/*
 * One server of heroku_fdw_refresh_all(), in a subtransaction: a failure
 * becomes a WARNING naming the server and the app, and is recorded in the
 * registry.  A cancel or a shutdown is raised again.  True if it changed.
 */
static bool
refresh_one(Registry *reg, RegEntry *listed, MemoryContext work_cxt)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	volatile bool changed = false;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(work_cxt);
	PG_TRY();
	{
		ForeignServer *srv;
		RegEntry   *e = hr_registry_lookup_oid(reg, listed->server_oid, &srv);

		changed = refresh_server(reg, e, srv);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_cxt);
		CurrentResourceOwner = caller_owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(work_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_cxt);
		CurrentResourceOwner = caller_owner;
	}
	PG_END_TRY();

	if (edata == NULL)
		return changed;
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION)
		ReThrowError(edata);
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("could not refresh foreign server \"%s\" of Heroku app \"%s\": %s",
					listed->server, listed->app, edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 edata->hint ? errhint("%s", edata->hint) : 0));
	hr_registry_set_error(reg, listed->server_oid, edata->message);
	return false;
}

/*
 * heroku_fdw_refresh_all(): refresh every registered server the caller
 * owns (all of them for a superuser); one failure does not stop the
 * others.  Dead rows (the server dropped, or owned by another role now)
 * are forgotten with a WARNING.  Returns how many changed.
 */
Datum
heroku_fdw_refresh_all(PG_FUNCTION_ARGS)
{
	Registry   *reg = hr_registry_for(fcinfo, false);
	List	   *entries = hr_registry_list(reg);
	ListCell   *lc;
	int			nchanged = 0;
	MemoryContext work_cxt;

	work_cxt = AllocSetContextCreate(CurrentMemoryContext, "heroku_fdw_refresh_all",
									 ALLOCSET_DEFAULT_SIZES);
	foreach(lc, entries)
	{
		RegEntry   *e = (RegEntry *) lfirst(lc);
		ForeignServer *srv;
		RegState	state;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(work_cxt);

		state = hr_registry_state(e, &srv);
		if (state != REG_LIVE)
		{
			hr_fdw_forget_dead(reg, e, state, srv);
			continue;
		}
		e->server = pstrdup(srv->servername);

		/* others' servers are theirs to refresh (or a superuser's) */
		if (!hr_server_ownercheck(srv->serverid, GetUserId()))
		{
			ereport(DEBUG1,
					(errmsg_internal("skipping foreign server \"%s\" of Heroku app \"%s\": not its owner",
									 e->server, e->app)));
			continue;
		}
		if (refresh_one(reg, e, work_cxt))
			nchanged++;
	}
	MemoryContextDelete(work_cxt);
	PG_RETURN_INT32(nchanged);
}

/*
 * heroku_resolver_refresh(app, config_var): revalidate now the cache
 * entries of app and config_var (pg_cache_revalidate.c), then refresh the
 * registered servers in this database that follow them and that the
 * caller owns (all for a superuser).  Returns how many entries and servers
 * changed: a URL that differs, a server or mapping altered; a 304 is no
 * change.  For one app a failure is raised, as heroku_fdw_refresh() does;
 * a sweep of every app (app NULL) goes on past a failure with a WARNING,
 * as heroku_fdw_refresh_all() does.
 *
 * NULL means "any" here, as in heroku_resolver_invalidate(), where every
 * other function refuses a NULL argument (22004).
 */
Datum
heroku_resolver_refresh(PG_FUNCTION_ARGS)
{
	char	   *app = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *config_var = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	Registry   *reg = hr_registry_for(fcinfo, false);
	hr_error	err;
	List	   *entries;
	ListCell   *lc;
	int			nchanged;
	int			nfailed = 0;
	MemoryContext work_cxt;

	/* the names as they enter; a NULL stands for any, so a valid stand-in is checked */
	memset(&err, 0, sizeof(err));
	if (hr_check_names(app ? app : "any", config_var ? config_var : "ANY", &err) != HR_OK)
		hr_pg_report(ERROR, &err);

	nchanged = hr_cache_revalidate(app, NULL, config_var, app ? NULL : &nfailed);

	entries = hr_registry_list(reg);
	work_cxt = AllocSetContextCreate(CurrentMemoryContext, "heroku_resolver_refresh",
									 ALLOCSET_DEFAULT_SIZES);
	foreach(lc, entries)
	{
		RegEntry   *e = (RegEntry *) lfirst(lc);
		ForeignServer *srv;

		CHECK_FOR_INTERRUPTS();
		if ((app && pg_strcasecmp(e->app, app) != 0) ||
			(config_var && !hr_same_config_var(e->config_var, config_var)))
			continue;
		/* a dead row (dropped, or another owner's now) is not refreshed; others' are theirs */
		if (hr_registry_state(e, &srv) != REG_LIVE ||
			!hr_server_ownercheck(srv->serverid, GetUserId()))
			continue;
		e->server = pstrdup(srv->servername);
		MemoryContextReset(work_cxt);
		if (app)
		{
			/* one app: a failure is raised, as heroku_fdw_refresh() does */
			RegEntry   *locked = hr_registry_lookup(reg, e->server, &srv);

			if (refresh_server(reg, locked, srv))
				nchanged++;
		}
		else if (refresh_one(reg, e, work_cxt))
			nchanged++;
	}
	MemoryContextDelete(work_cxt);
	PG_RETURN_INT32(nchanged);
}
