/*-------------------------------------------------------------------------
 *
 * pg_fdw_registry.c
 *		The registry of the foreign servers made by the postgres_fdw and
 *		dblink helpers: which app and config var each follows, and which
 *		of its options and user mappings were set from the app's URL.
 *
 * The registry table (heroku_fdw_registry) is read and written through SPI
 * as the table's owner, with search_path pinned, after the caller's rights
 * on the server have been checked: see heroku_resolver--1.0--1.1.sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "pg_fdw.h"

#define REGISTRY_TABLE "heroku_fdw_registry"

/* The registry of the schema the called function lives in. */
Registry *
hr_registry_for(FunctionCallInfo fcinfo)
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
void
hr_registry_insert(Registry *reg, RegEntry *e)
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
void
hr_registry_update(Registry *reg, RegEntry *e, bool changed)
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
void
hr_registry_set_error(Registry *reg, const char *server, const char *message)
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
bool
hr_registry_delete(Registry *reg, const char *server)
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

/* Every registered server with its app (and config var), by server name. */
void
hr_registry_list(Registry *reg, List **servers, List **apps, List **config_vars)
{
	RegistryAccess ra;
	char	   *sql;
	uint64		i;

	*servers = NIL;
	*apps = NIL;
	if (config_vars)
		*config_vars = NIL;
	registry_begin(reg, &ra);
	sql = psprintf("SELECT server::pg_catalog.text, app, config_var FROM %s ORDER BY server",
				   reg->qualname);
	registry_exec(sql, 0, NULL, NULL, NULL, true, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi_cxt = MemoryContextSwitchTo(ra.caller_cxt);

		*servers = lappend(*servers, SPI_getvalue(tup, desc, 1));
		*apps = lappend(*apps, SPI_getvalue(tup, desc, 2));
		if (config_vars)
			*config_vars = lappend(*config_vars, SPI_getvalue(tup, desc, 3));
		MemoryContextSwitchTo(spi_cxt);
	}
	registry_end(&ra);
}

/*
 * The server and its registry row, locked: 42704 when the server does not
 * exist or is not registered.
 */
RegEntry *
hr_registry_lookup(Registry *reg, const char *server, ForeignServer **srv)
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
