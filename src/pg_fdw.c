/*-------------------------------------------------------------------------
 *
 * pg_fdw.c
 *		postgres_fdw and dblink helpers: foreign servers whose options and
 *		user mappings come from a Heroku app's config var, a refresh that
 *		alters them only when the app's URL changed, and a dblink_connect()
 *		that resolves afresh and retries once when the credentials it had
 *		were refused.
 *
 * The DDL is run through ProcessUtility() on parse trees built here, never
 * from SQL text: a statement carrying a password, run through SPI, would be
 * quoted in the CONTEXT of any error it raised.  The query text handed
 * along (seen by event triggers and utility hooks such as pgaudit or
 * pg_stat_statements) is the statement with its secret values masked.
 *
 * The registry table (heroku_fdw_registry) is read and written through SPI
 * as the table's owner, with search_path pinned, after the caller's rights
 * on the server have been checked: see heroku_resolver--1.0--1.1.sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/plannodes.h"
#include "parser/parse_func.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pg_heroku.h"

#define REGISTRY_TABLE "heroku_fdw_registry"

/* What the caller's pg_foreign_data_wrapper row tells us about it. */
typedef enum FdwKind
{
	FDW_POSTGRES,				/* validator postgres_fdw_validator */
	FDW_DBLINK					/* validator dblink_fdw_validator */
} FdwKind;

/* Where a libpq option of a resolved URL goes. */
typedef enum OptPlace
{
	OPT_SKIP,					/* neither FDW accepts it */
	OPT_SERVER,
	OPT_MAPPING
} OptPlace;

/* Where the registry is and who owns it. */
typedef struct Registry
{
	char	   *qualname;		/* quoted schema.table */
	Oid			owner;
} Registry;

/* One row of the registry. */
typedef struct RegEntry
{
	char	   *server;
	char	   *app;
	char	   *config_var;
	List	   *roles;			/* OIDs of the roles whose mappings we made */
	List	   *server_keys;	/* names of the server options we set */
	List	   *mapping_keys;	/* names of the mapping options we set */
} RegEntry;

/* For the CONTEXT line of errors raised while working on a server. */
typedef struct ServerErrorContext
{
	const char *doing;
	const char *server;
	const char *app;
} ServerErrorContext;

/* Options split for a server and its mappings, as DefElem lists. */
typedef struct SplitOptions
{
	List	   *server;
	List	   *mapping;
} SplitOptions;

PG_FUNCTION_INFO_V1(heroku_fdw_create_server);
PG_FUNCTION_INFO_V1(heroku_fdw_add_user_mapping);
PG_FUNCTION_INFO_V1(heroku_fdw_refresh);
PG_FUNCTION_INFO_V1(heroku_fdw_refresh_all);
PG_FUNCTION_INFO_V1(heroku_fdw_unregister);
PG_FUNCTION_INFO_V1(heroku_dblink_connect);

/* ---------- arguments, lookups and checks ---------- */

/* A name argument as a C string; NULL raises 22004 naming the argument. */
static char *
name_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", argname)));
	return pstrdup(NameStr(*PG_GETARG_NAME(argno)));
}

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

/* The registry of the schema the called function lives in. */
static Registry *
registry_for(FunctionCallInfo fcinfo)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	char	   *nspname = get_namespace_name(nsp);
	Oid			relid = get_relname_relid(REGISTRY_TABLE, nsp);
	HeapTuple	tup;
	Registry   *reg;

	if (nspname == NULL || !OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" of extension heroku_resolver is missing", REGISTRY_TABLE),
				 errhint("Run ALTER EXTENSION heroku_resolver UPDATE.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	reg = palloc(sizeof(Registry));
	reg->owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	reg->qualname = quote_qualified_identifier(nspname, REGISTRY_TABLE);
	return reg;
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

/* The caller must own the server (superusers do), as ALTER SERVER requires. */
static void
check_server_owner(ForeignServer *srv)
{
	if (!hr_server_ownercheck(srv->serverid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_SERVER, srv->servername);
}

/* ---------- options ---------- */

/* libpq's keywords with where each goes; built once per backend. */
typedef struct LibpqOption
{
	char	   *keyword;
	bool		debug;			/* dispchar 'D': neither FDW takes it */
	bool		secret;			/* dispchar '*' */
} LibpqOption;

static LibpqOption *libpq_options = NULL;
static int	libpq_noptions = 0;

/* Fill libpq_options from PQconndefaults(), once. */
static void
load_libpq_options(void)
{
	PQconninfoOption *defs;
	PQconninfoOption *o;
	LibpqOption *opts;
	int			n = 0;

	if (libpq_options)
		return;
	defs = PQconndefaults();
	if (defs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	for (o = defs; o->keyword; o++)
		n++;
	opts = MemoryContextAllocZero(TopMemoryContext, sizeof(LibpqOption) * Max(n, 1));
	n = 0;
	for (o = defs; o->keyword; o++)
	{
		opts[n].keyword = MemoryContextStrdup(TopMemoryContext, o->keyword);
		opts[n].debug = strchr(o->dispchar, 'D') != NULL;
		opts[n].secret = strchr(o->dispchar, '*') != NULL;
		n++;
	}
	PQconninfoFree(defs);
	libpq_options = opts;
	libpq_noptions = n;
}

/* libpq's description of keyword, or NULL if libpq does not know it. */
static LibpqOption *
libpq_option(const char *keyword)
{
	int			i;

	load_libpq_options();
	for (i = 0; i < libpq_noptions; i++)
		if (strcmp(libpq_options[i].keyword, keyword) == 0)
			return &libpq_options[i];
	return NULL;
}

/* True for options libpq treats as secret (the password): masked in texts. */
static bool
is_secret_option(const char *keyword)
{
	LibpqOption *o = libpq_option(keyword);

	return o != NULL && o->secret;
}

/*
 * The rules of postgres_fdw's and dblink's validators: "user" and the secret
 * options belong to the user mapping, every other libpq option but the
 * debug ones and client_encoding to the server; postgres_fdw also refuses
 * fallback_application_name (it sets its own).
 */
static OptPlace
option_place(FdwKind kind, const char *keyword)
{
	LibpqOption *o = libpq_option(keyword);

	if (o == NULL || o->debug || strcmp(keyword, "client_encoding") == 0)
		return OPT_SKIP;
	if (kind == FDW_POSTGRES && strcmp(keyword, "fallback_application_name") == 0)
		return OPT_SKIP;
	if (strcmp(keyword, "user") == 0 || o->secret)
		return OPT_MAPPING;
	return OPT_SERVER;
}

/* The resolved pairs as the server's and the user mapping's options. */
static SplitOptions
split_options(FdwKind kind, const HrResolved *r)
{
	SplitOptions s = {NIL, NIL};
	int			i;

	for (i = 0; i < r->nparams; i++)
	{
		DefElem    *d = makeDefElem(pstrdup(r->keywords[i]),
									(Node *) makeString(pstrdup(r->values[i])), -1);

		switch (option_place(kind, r->keywords[i]))
		{
			case OPT_SERVER:
				s.server = lappend(s.server, d);
				break;
			case OPT_MAPPING:
				s.mapping = lappend(s.mapping, d);
				break;
			case OPT_SKIP:
				break;
		}
	}
	return s;
}

/* The names of a DefElem list, for the registry. */
static List *
option_names(List *defs)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, defs)
		names = lappend(names, ((DefElem *) lfirst(lc))->defname);
	return names;
}

/* The option called name in defs, or NULL. */
static DefElem *
find_option(List *defs, const char *name)
{
	ListCell   *lc;

	foreach(lc, defs)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, name) == 0)
			return d;
	}
	return NULL;
}

/*
 * The ADD/SET/DROP actions that turn current into desired.  An option that
 * is neither desired nor one we set before (managed) is the user's: left
 * alone.  NIL when nothing differs.
 */
static List *
option_changes(List *current, List *desired, List *managed)
{
	List	   *changes = NIL;
	ListCell   *lc;

	foreach(lc, desired)
	{
		DefElem    *want = (DefElem *) lfirst(lc);
		DefElem    *have = find_option(current, want->defname);

		if (have == NULL)
			changes = lappend(changes,
							  makeDefElemExtended(NULL, want->defname, want->arg,
												  DEFELEM_ADD, -1));
		else if (strcmp(defGetString(have), defGetString(want)) != 0)
			changes = lappend(changes,
							  makeDefElemExtended(NULL, want->defname, want->arg,
												  DEFELEM_SET, -1));
	}
	foreach(lc, managed)
	{
		char	   *name = (char *) lfirst(lc);

		if (find_option(desired, name) == NULL && find_option(current, name) != NULL)
			changes = lappend(changes,
							  makeDefElemExtended(NULL, name, NULL, DEFELEM_DROP, -1));
	}
	return changes;
}

/* " OPTIONS (...)" for the query text, with secret values masked. */
static void
append_options_text(StringInfo buf, List *defs)
{
	ListCell   *lc;
	bool		first = true;

	if (defs == NIL)
		return;
	appendStringInfoString(buf, " OPTIONS (");
	foreach(lc, defs)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		if (d->defaction == DEFELEM_ADD)
			appendStringInfoString(buf, "ADD ");
		else if (d->defaction == DEFELEM_SET)
			appendStringInfoString(buf, "SET ");
		else if (d->defaction == DEFELEM_DROP)
			appendStringInfoString(buf, "DROP ");
		appendStringInfoString(buf, quote_identifier(d->defname));
		if (d->defaction == DEFELEM_DROP)
			continue;
		appendStringInfoChar(buf, ' ');
		if (is_secret_option(d->defname))
			appendStringInfoString(buf, "'********'");
		else
			appendStringInfoString(buf, quote_literal_cstr(defGetString(d)));
	}
	appendStringInfoChar(buf, ')');
}

/* ---------- DDL ---------- */

/* Run one utility statement built here; query_text has no secret. */
static void
run_utility(Node *stmt, const char *query_text)
{
	PlannedStmt *pstmt = makeNode(PlannedStmt);
	QueryCompletion qc;

	pstmt->commandType = CMD_UTILITY;
	pstmt->canSetTag = false;
	pstmt->utilityStmt = stmt;
	pstmt->stmt_location = -1;
	pstmt->stmt_len = 0;
	InitializeQueryCompletion(&qc);
	hr_ProcessUtility(pstmt, query_text, PROCESS_UTILITY_QUERY,
					  NULL, NULL, None_Receiver, &qc);
	CommandCounterIncrement();
}

/* A RoleSpec naming the role, as the grammar would build it. */
static RoleSpec *
role_spec(Oid roleid)
{
	RoleSpec   *r = makeNode(RoleSpec);

	r->roletype = ROLESPEC_CSTRING;
	r->rolename = GetUserNameFromId(roleid, false);
	r->location = -1;
	return r;
}

/* CREATE SERVER server FOREIGN DATA WRAPPER fdwname OPTIONS (...) */
static void
create_server(const char *server, const char *fdwname, List *options)
{
	CreateForeignServerStmt *stmt = makeNode(CreateForeignServerStmt);
	StringInfoData sql;

	stmt->servername = pstrdup(server);
	stmt->fdwname = pstrdup(fdwname);
	stmt->options = options;
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE SERVER %s FOREIGN DATA WRAPPER %s",
					 quote_identifier(server), quote_identifier(fdwname));
	append_options_text(&sql, options);
	run_utility((Node *) stmt, sql.data);
}

/* ALTER SERVER server OPTIONS (ADD/SET/DROP ...) */
static void
alter_server(const char *server, List *changes)
{
	AlterForeignServerStmt *stmt = makeNode(AlterForeignServerStmt);
	StringInfoData sql;

	stmt->servername = pstrdup(server);
	stmt->options = changes;
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER SERVER %s", quote_identifier(server));
	append_options_text(&sql, changes);
	run_utility((Node *) stmt, sql.data);
}

/* CREATE USER MAPPING FOR role SERVER server OPTIONS (...) */
static void
create_user_mapping(Oid roleid, const char *server, List *options)
{
	CreateUserMappingStmt *stmt = makeNode(CreateUserMappingStmt);
	StringInfoData sql;

	stmt->user = role_spec(roleid);
	stmt->servername = pstrdup(server);
	stmt->options = options;
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE USER MAPPING FOR %s SERVER %s",
					 quote_identifier(stmt->user->rolename), quote_identifier(server));
	append_options_text(&sql, options);
	run_utility((Node *) stmt, sql.data);
}

/* ALTER USER MAPPING FOR role SERVER server OPTIONS (ADD/SET/DROP ...) */
static void
alter_user_mapping(Oid roleid, const char *server, List *changes)
{
	AlterUserMappingStmt *stmt = makeNode(AlterUserMappingStmt);
	StringInfoData sql;

	stmt->user = role_spec(roleid);
	stmt->servername = pstrdup(server);
	stmt->options = changes;
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER USER MAPPING FOR %s SERVER %s",
					 quote_identifier(stmt->user->rolename), quote_identifier(server));
	append_options_text(&sql, changes);
	run_utility((Node *) stmt, sql.data);
}

/* The options of role's own mapping for the server; false if it has none. */
static bool
user_mapping_options(Oid roleid, Oid serverid, List **options)
{
	HeapTuple	tup;
	Datum		datum;
	bool		isnull;

	tup = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(roleid),
						  ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tup))
		return false;
	datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tup,
							Anum_pg_user_mapping_umoptions, &isnull);
	*options = isnull ? NIL : untransformRelOptions(datum);
	ReleaseSysCache(tup);
	return true;
}

/* ---------- registry ---------- */

/*
 * Registry access runs as the registry's owner with a fixed search_path;
 * an error on the way is cleaned up by the (sub)transaction abort, which
 * restores both, as for a SECURITY DEFINER function.
 */
typedef struct RegistryAccess
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	MemoryContext caller_cxt;
} RegistryAccess;

/* Start registry access: owner's identity, pinned search_path, SPI. */
static void
registry_begin(Registry *reg, RegistryAccess *ra)
{
	ra->caller_cxt = CurrentMemoryContext;
	GetUserIdAndSecContext(&ra->save_userid, &ra->save_sec_context);
	SetUserIdAndSecContext(reg->owner,
						   ra->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	ra->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* End registry access and restore the caller's identity and settings. */
static void
registry_end(RegistryAccess *ra)
{
	SPI_finish();
	AtEOXact_GUC(true, ra->save_nestlevel);
	SetUserIdAndSecContext(ra->save_userid, ra->save_sec_context);
}

/* Run one registry statement; anything but the expected result is a bug. */
static void
registry_exec(const char *sql, int nargs, Oid *types, Datum *values,
			  const char *nulls, bool read_only, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls,
										   read_only, 0);

	if (rc != expect)
		elog(ERROR, "registry query failed: %s", SPI_result_code_string(rc));
}

/* A List of C strings as a text[] Datum. */
static Datum
text_array(List *names)
{
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	if (names == NIL)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	elems = palloc(sizeof(Datum) * list_length(names));
	foreach(lc, names)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* An OID List as an oid[] Datum. */
static Datum
oid_array(List *oids)
{
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	if (oids == NIL)
		return PointerGetDatum(construct_empty_array(OIDOID));
	elems = palloc(sizeof(Datum) * list_length(oids));
	foreach(lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/* A text[] Datum as a List of C strings (NULL elements skipped). */
static List *
text_array_list(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *res = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			res = lappend(res, TextDatumGetCString(elems[i]));
	return res;
}

/* An oid[] Datum as an OID List. */
static List *
oid_array_list(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *res = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			res = lappend_oid(res, DatumGetObjectId(elems[i]));
	return res;
}

/* A name parameter for SPI: a NameData, not a C string. */
static Datum
name_datum(const char *s)
{
	return DirectFunctionCall1(namein, CStringGetDatum(s));
}

/* The registry row of server, locked FOR UPDATE; NULL if none. */
static RegEntry *
registry_fetch(Registry *reg, const char *server)
{
	RegistryAccess ra;
	RegEntry   *e = NULL;
	char	   *sql;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];

	values[0] = name_datum(server);
	registry_begin(reg, &ra);
	sql = psprintf("SELECT app, config_var, roles::pg_catalog.oid[], server_options, mapping_options"
				   " FROM %s WHERE server OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				   reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext spi_cxt = MemoryContextSwitchTo(ra.caller_cxt);

		e = palloc0(sizeof(RegEntry));
		e->server = pstrdup(server);
		e->app = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		e->config_var = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		e->roles = oid_array_list(SPI_getbinval(tup, desc, 3, &isnull));
		e->server_keys = text_array_list(SPI_getbinval(tup, desc, 4, &isnull));
		e->mapping_keys = text_array_list(SPI_getbinval(tup, desc, 5, &isnull));
		MemoryContextSwitchTo(spi_cxt);
	}
	registry_end(&ra);
	return e;
}

/* Insert or replace (a server dropped and made again) a registry row. */
static void
registry_insert(Registry *reg, RegEntry *e)
{
	RegistryAccess ra;
	Oid			types[6] = {NAMEOID, TEXTOID, TEXTOID, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[6];
	char	   *sql;

	values[0] = name_datum(e->server);
	values[1] = CStringGetTextDatum(e->app);
	values[2] = CStringGetTextDatum(e->config_var);
	values[3] = oid_array(e->roles);
	values[4] = text_array(e->server_keys);
	values[5] = text_array(e->mapping_keys);
	registry_begin(reg, &ra);
	sql = psprintf("INSERT INTO %s AS r (server, app, config_var, roles, server_options,"
				   " mapping_options, registered_at, last_refreshed, last_changed)"
				   " VALUES ($1, $2, $3, $4::pg_catalog.regrole[], $5, $6,"
				   " pg_catalog.now(), pg_catalog.now(), pg_catalog.now())"
				   " ON CONFLICT (server) DO UPDATE SET app = EXCLUDED.app,"
				   " config_var = EXCLUDED.config_var, roles = EXCLUDED.roles,"
				   " server_options = EXCLUDED.server_options,"
				   " mapping_options = EXCLUDED.mapping_options,"
				   " registered_at = EXCLUDED.registered_at,"
				   " last_refreshed = EXCLUDED.last_refreshed,"
				   " last_changed = EXCLUDED.last_changed,"
				   " last_error = NULL, last_error_at = NULL",
				   reg->qualname);
	registry_exec(sql, 6, types, values, NULL, false, SPI_OK_INSERT);
	registry_end(&ra);
}

/* Record a successful resolution and what it left in place. */
static void
registry_update(Registry *reg, RegEntry *e, bool changed)
{
	RegistryAccess ra;
	Oid			types[5] = {NAMEOID, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BOOLOID};
	Datum		values[5];
	char	   *sql;

	values[0] = name_datum(e->server);
	values[1] = oid_array(e->roles);
	values[2] = text_array(e->server_keys);
	values[3] = text_array(e->mapping_keys);
	values[4] = BoolGetDatum(changed);
	registry_begin(reg, &ra);
	sql = psprintf("UPDATE %s SET roles = $2::pg_catalog.regrole[], server_options = $3,"
				   " mapping_options = $4, last_refreshed = pg_catalog.now(),"
				   " last_changed = CASE WHEN $5 THEN pg_catalog.now() ELSE last_changed END,"
				   " last_error = NULL, last_error_at = NULL"
				   " WHERE server OPERATOR(pg_catalog.=) $1",
				   reg->qualname);
	registry_exec(sql, 5, types, values, NULL, false, SPI_OK_UPDATE);
	registry_end(&ra);
}

/* Record the message of a failed refresh (heroku_fdw_refresh_all). */
static void
registry_set_error(Registry *reg, const char *server, const char *message)
{
	RegistryAccess ra;
	Oid			types[2] = {NAMEOID, TEXTOID};
	Datum		values[2];
	char	   *sql;

	values[0] = name_datum(server);
	values[1] = CStringGetTextDatum(message);
	registry_begin(reg, &ra);
	sql = psprintf("UPDATE %s SET last_error = $2, last_error_at = pg_catalog.now()"
				   " WHERE server OPERATOR(pg_catalog.=) $1",
				   reg->qualname);
	registry_exec(sql, 2, types, values, NULL, false, SPI_OK_UPDATE);
	registry_end(&ra);
}

/* Delete server's row; false if there was none. */
static bool
registry_delete(Registry *reg, const char *server)
{
	RegistryAccess ra;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	char	   *sql;
	bool		found;

	values[0] = name_datum(server);
	registry_begin(reg, &ra);
	sql = psprintf("DELETE FROM %s WHERE server OPERATOR(pg_catalog.=) $1",
				   reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_DELETE);
	found = SPI_processed > 0;
	registry_end(&ra);
	return found;
}

/* Every registered server with its app, by server name. */
static void
registry_list(Registry *reg, List **servers, List **apps)
{
	RegistryAccess ra;
	char	   *sql;
	uint64		i;

	*servers = NIL;
	*apps = NIL;
	registry_begin(reg, &ra);
	sql = psprintf("SELECT server::pg_catalog.text, app FROM %s ORDER BY server",
				   reg->qualname);
	registry_exec(sql, 0, NULL, NULL, NULL, true, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi_cxt = MemoryContextSwitchTo(ra.caller_cxt);

		*servers = lappend(*servers, SPI_getvalue(tup, desc, 1));
		*apps = lappend(*apps, SPI_getvalue(tup, desc, 2));
		MemoryContextSwitchTo(spi_cxt);
	}
	registry_end(&ra);
}

/*
 * The server and its registry row, locked: 42704 when the server does not
 * exist or is not registered.
 */
static RegEntry *
lookup_registered(Registry *reg, const char *server, ForeignServer **srv)
{
	RegEntry   *e;

	*srv = GetForeignServerByName(server, true);
	e = registry_fetch(reg, server);
	if (*srv == NULL)
	{
		if (e)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("server \"%s\" does not exist", server),
					 errdetail("It is registered for Heroku app \"%s\".", e->app),
					 errhint("Forget it with heroku_fdw_unregister().")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", server)));
	}
	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" is not registered with heroku_resolver", server),
				 errhint("Create it with heroku_fdw_create_server().")));
	return e;
}

/* ---------- refresh ---------- */

/*
 * Bring the server's options and the mappings listed in e to what r says,
 * altering only what differs; add a mapping for add_role if valid.  Mappings
 * that were dropped, or whose role was, leave the list.  e is updated to
 * what is now in place.  True if an existing object was altered.
 */
static bool
apply_resolution(ForeignServer *srv, RegEntry *e, const HrResolved *r, Oid add_role)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(srv->fdwid);
	SplitOptions want = split_options(fdw_kind(fdw), r);
	List	   *changes;
	List	   *kept = NIL;
	ListCell   *lc;
	bool		changed = false;

	changes = option_changes(srv->options, want.server, e->server_keys);
	if (changes != NIL)
	{
		alter_server(srv->servername, changes);
		changed = true;
	}

	foreach(lc, e->roles)
	{
		Oid			roleid = lfirst_oid(lc);
		List	   *current;

		if (GetUserNameFromId(roleid, true) == NULL ||
			!user_mapping_options(roleid, srv->serverid, &current))
			continue;
		kept = lappend_oid(kept, roleid);
		changes = option_changes(current, want.mapping, e->mapping_keys);
		if (changes != NIL)
		{
			alter_user_mapping(roleid, srv->servername, changes);
			changed = true;
		}
	}

	if (OidIsValid(add_role))
	{
		create_user_mapping(add_role, srv->servername, want.mapping);
		kept = list_append_unique_oid(kept, add_role);
	}

	e->roles = kept;
	e->server_keys = option_names(want.server);
	e->mapping_keys = option_names(want.mapping);
	return changed;
}

/* heroku_fdw_refresh() of one server. */
static bool
refresh_server(Registry *reg, const char *server)
{
	ForeignServer *srv;
	RegEntry   *e = lookup_registered(reg, server, &srv);
	ServerErrorContext ctx = {"refreshing", server, e->app};
	ErrorContextCallback cb;
	HrResolved *r;
	bool		changed;

	cb.callback = server_error_callback;
	cb.arg = &ctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;

	check_server_owner(srv);
	r = hr_pg_resolve(e->app, e->config_var, true);
	changed = apply_resolution(srv, e, r, InvalidOid);
	registry_update(reg, e, changed);

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
	char	   *server = name_arg(fcinfo, 0, "server");
	char	   *app = hr_pg_text_arg(fcinfo, 1, "app");
	char	   *config_var = hr_pg_text_arg(fcinfo, 2, "config_var");
	char	   *fdwname = name_arg(fcinfo, 3, "fdw");
	Oid			roleid = role_arg(fcinfo, 4, "for_role");
	Registry   *reg = registry_for(fcinfo);
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
	opts = split_options(kind, r);
	create_server(server, fdw->fdwname, opts.server);
	create_user_mapping(roleid, server, opts.mapping);

	e.server = server;
	e.app = app;
	/* the name the API answered to: X may have been found as X_URL */
	e.config_var = r->config_var;
	e.roles = list_make1_oid(roleid);
	e.server_keys = option_names(opts.server);
	e.mapping_keys = option_names(opts.mapping);
	registry_insert(reg, &e);

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
	char	   *server = name_arg(fcinfo, 0, "server");
	Oid			roleid = role_arg(fcinfo, 1, "for_role");
	Registry   *reg = registry_for(fcinfo);
	ForeignServer *srv;
	RegEntry   *e = lookup_registered(reg, server, &srv);
	List	   *existing;
	ServerErrorContext ctx = {"adding a user mapping to", server, e->app};
	ErrorContextCallback cb;
	HrResolved *r;
	bool		changed;

	check_server_owner(srv);
	if (user_mapping_options(roleid, srv->serverid, &existing))
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
	registry_update(reg, e, changed);

	error_context_stack = cb.previous;
	PG_RETURN_VOID();
}

/* heroku_fdw_refresh(server): true if the server or a mapping was altered. */
Datum
heroku_fdw_refresh(PG_FUNCTION_ARGS)
{
	char	   *server = name_arg(fcinfo, 0, "server");

	PG_RETURN_BOOL(refresh_server(registry_for(fcinfo), server));
}

/*
 * One server of heroku_fdw_refresh_all(), in a subtransaction: a failure
 * becomes a WARNING naming the server and the app, and is recorded in the
 * registry.  A cancel or a shutdown is raised again.  True if it changed.
 */
static bool
refresh_one(Registry *reg, const char *server, const char *app, MemoryContext work_cxt)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	volatile bool changed = false;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(work_cxt);
	PG_TRY();
	{
		changed = refresh_server(reg, server);
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
					server, app, edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 edata->hint ? errhint("%s", edata->hint) : 0));
	registry_set_error(reg, server, edata->message);
	return false;
}

/*
 * heroku_fdw_refresh_all(): refresh every registered server the caller
 * owns (all of them for a superuser); one failure does not stop the
 * others.  Returns how many changed.
 */
Datum
heroku_fdw_refresh_all(PG_FUNCTION_ARGS)
{
	Registry   *reg = registry_for(fcinfo);
	List	   *servers;
	List	   *apps;
	ListCell   *ls;
	ListCell   *la;
	int			nchanged = 0;
	MemoryContext work_cxt;

	registry_list(reg, &servers, &apps);
	work_cxt = AllocSetContextCreate(CurrentMemoryContext, "heroku_fdw_refresh_all",
									 ALLOCSET_DEFAULT_SIZES);
	forboth(ls, servers, la, apps)
	{
		const char *server = (const char *) lfirst(ls);
		const char *app = (const char *) lfirst(la);
		ForeignServer *srv;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(work_cxt);

		/* others' servers are theirs to refresh (or a superuser's) */
		srv = GetForeignServerByName(server, true);
		if (srv != NULL && !hr_server_ownercheck(srv->serverid, GetUserId()))
		{
			ereport(DEBUG1,
					(errmsg_internal("skipping foreign server \"%s\" of Heroku app \"%s\": not its owner",
									 server, app)));
			continue;
		}
		if (refresh_one(reg, server, app, work_cxt))
			nchanged++;
	}
	MemoryContextDelete(work_cxt);
	PG_RETURN_INT32(nchanged);
}

/* heroku_fdw_unregister(server): forget it; the server stays as it is. */
Datum
heroku_fdw_unregister(PG_FUNCTION_ARGS)
{
	char	   *server = name_arg(fcinfo, 0, "server");
	Registry   *reg = registry_for(fcinfo);
	ForeignServer *srv = GetForeignServerByName(server, true);

	/* a row whose server was dropped can be forgotten by anyone allowed in */
	if (srv != NULL)
		check_server_owner(srv);
	if (!registry_delete(reg, server))
	{
		if (srv == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("server \"%s\" does not exist", server)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" is not registered with heroku_resolver", server)));
	}
	PG_RETURN_VOID();
}

/* The schema of an installed extension, or InvalidOid. */
static Oid
extension_schema(const char *extname)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(extname));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/* dblink's dblink_connect(text, text), with the caller's EXECUTE checked. */
static Oid
dblink_connect_function(void)
{
	Oid			nsp = extension_schema("dblink");
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	char	   *nspname;
	Oid			fn;
	AclResult	aclresult;

	if (!OidIsValid(nsp) || (nspname = get_namespace_name(nsp)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"dblink\" is not installed"),
				 errhint("Install it with CREATE EXTENSION dblink.")));
	fn = LookupFuncName(list_make2(makeString(nspname), makeString("dblink_connect")),
						2, argtypes, true);
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s.dblink_connect(text, text) does not exist",
						quote_identifier(nspname))));
	aclresult = hr_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(fn));
	return fn;
}

/* Errors after which fresh credentials may help: class 08 and class 28. */
static bool
retryable(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_CONNECTION_EXCEPTION ||
		category == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
}

/*
 * heroku_dblink_connect(conname, app, config_var): dblink_connect(conname,
 * conninfo).  The first attempt runs in a subtransaction; if it fails with
 * a connection or authentication error, the app is resolved afresh
 * (bypassing any cache) and dblink_connect is called once more.  dblink
 * registers a named connection only once it is up, so a failed attempt
 * leaves none behind.
 */
Datum
heroku_dblink_connect(PG_FUNCTION_ARGS)
{
	char	   *conname = hr_pg_text_arg(fcinfo, 0, "conname");
	char	   *app = hr_pg_text_arg(fcinfo, 1, "app");
	char	   *config_var = hr_pg_text_arg(fcinfo, 2, "config_var");
	Oid			fn = dblink_connect_function();
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	HrResolved *r;
	Datum		result = (Datum) 0;
	ErrorData  *first_error = NULL;

	r = hr_pg_resolve(app, config_var, false);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller_cxt);
	PG_TRY();
	{
		result = OidFunctionCall2(fn, CStringGetTextDatum(conname),
								  CStringGetTextDatum(r->conninfo));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_cxt);
		CurrentResourceOwner = caller_owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller_cxt);
		first_error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_cxt);
		CurrentResourceOwner = caller_owner;
		if (!retryable(first_error->sqlerrcode))
			ReThrowError(first_error);
	}
	PG_END_TRY();

	if (first_error != NULL)
	{
		ereport(DEBUG1,
				(errmsg_internal("dblink connection \"%s\" to Heroku app \"%s\" failed, resolving afresh and retrying once",
								 conname, app),
				 first_error->detail ? errdetail_internal("%s", first_error->detail) : 0));
		/* an answer fetched before this failure may predate the rotation */
		hr_cache_fresh_after = GetCurrentTimestamp();
		PG_TRY();
		{
			r = hr_pg_resolve(app, config_var, true);
		}
		PG_FINALLY();
		{
			hr_cache_fresh_after = 0;
		}
		PG_END_TRY();
		result = OidFunctionCall2(fn, CStringGetTextDatum(conname),
								  CStringGetTextDatum(r->conninfo));
	}
	PG_RETURN_DATUM(result);
}
