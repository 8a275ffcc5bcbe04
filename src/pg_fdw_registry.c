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
 * A row knows its server by OID and by the owner the server had when it
 * was registered, and its user mappings by OID (1.2, see
 * heroku_resolver--1.1--1.2.sql).  A name only finds the server; a row
 * whose server is gone, or has another owner, is dead, and nothing is
 * written through it.  The OIDs are those of the catalogs named by the
 * row's oid_scope: a row that pg_dump or pg_upgrade brought from another
 * database is bound again, by name and owner, at the first access here
 * (registry_rebind).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
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

/* The columns entry_from_row() reads, in its order. */
#define ENTRY_COLUMNS \
	"server::pg_catalog.text, app, config_var, server_oid," \
	" server_owner::pg_catalog.oid, roles::pg_catalog.oid[], mapping_oids," \
	" server_options, mapping_options"

/*
 * The registry of the schema the called function lives in.  It must be
 * 1.2's (with the OID columns): the library serves every version, and an
 * older registry, which knows servers by name only, is refused.
 */
Registry *
hr_registry_for(FunctionCallInfo fcinfo, bool missing_ok)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	char	   *nspname = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	Oid			relid = nspname ? get_relname_relid(REGISTRY_TABLE, nsp) : InvalidOid;
	HeapTuple	tup;
	Registry   *reg;

	if (nspname == NULL || !OidIsValid(relid))
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" of extension heroku_resolver is missing", REGISTRY_TABLE),
				 errhint("Run ALTER EXTENSION heroku_resolver UPDATE.")));
	}
	if (get_attnum(relid, "oid_scope") == InvalidAttrNumber)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" of extension heroku_resolver is from a version before 1.2",
						REGISTRY_TABLE),
				 errdetail("It knows foreign servers by name only."),
				 errhint("Run ALTER EXTENSION heroku_resolver UPDATE.")));
	}
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
 * Where the OIDs of this database's catalogs mean what they say: the
 * cluster's system identifier and the database's OID.  The view
 * heroku_fdw_servers and the upgrade script compute the same text.
 */
static char *
registry_scope(void)
{
	return psprintf(INT64_FORMAT ":%u", (int64) GetSystemIdentifier(), MyDatabaseId);
}

/*
 * Registry access runs as the registry's owner with a fixed search_path;
 * an error on the way is cleaned up by the (sub)transaction abort, which
 * restores both, as for a SECURITY DEFINER function.  With search_path
 * pinned to pg_catalog, pg_temp, the statements' functions and operators
 * are pg_catalog's.
 */
typedef struct RegistryAccess
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	MemoryContext caller_cxt;
} RegistryAccess;

static void registry_rebind(Registry *reg);

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
	registry_rebind(reg);
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

/*
 * Rows whose OIDs come from another database's catalogs (pg_dump and
 * restore, pg_upgrade, CREATE DATABASE ... TEMPLATE) get this database's:
 * each is bound to the server of its name if that server has the owner
 * recorded (a regrole: pg_dump writes it as a name), and to the user
 * mappings of that server for the roles recorded.  A row without such a
 * server is dead.  Done before anything else reads the registry, at the
 * first access after the rows arrived.
 */
static void
registry_rebind(Registry *reg)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *sql;

	values[0] = CStringGetTextDatum(registry_scope());
	sql = psprintf("SELECT FROM %s WHERE oid_scope IS DISTINCT FROM $1 LIMIT 1",
				   reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;

	/* the OIDs of elsewhere mean nothing here */
	sql = psprintf("UPDATE %s SET server_oid = NULL, mapping_oids = '{}'"
				   " WHERE oid_scope IS DISTINCT FROM $1", reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_UPDATE);

	/* by name and owner; a server is bound to one row at most */
	sql = psprintf("WITH pick AS ("
				   " SELECT DISTINCT ON (s.oid) r.ctid AS rid, s.oid AS srvid"
				   " FROM %s r JOIN pg_catalog.pg_foreign_server s"
				   " ON s.srvname = r.server AND s.srvowner = r.server_owner::pg_catalog.oid"
				   " WHERE r.oid_scope IS DISTINCT FROM $1"
				   " AND NOT EXISTS (SELECT FROM %s o WHERE o.server_oid = s.oid)"
				   " ORDER BY s.oid, r.registered_at DESC)"
				   " UPDATE %s r SET server_oid = p.srvid,"
				   " mapping_oids = ARRAY(SELECT u.umid"
				   " FROM pg_catalog.unnest(r.roles::pg_catalog.oid[]) WITH ORDINALITY AS x(role, n)"
				   " JOIN pg_catalog.pg_user_mappings u ON u.srvid = p.srvid AND u.umuser = x.role"
				   " ORDER BY x.n),"
				   " roles = ARRAY(SELECT x.role"
				   " FROM pg_catalog.unnest(r.roles::pg_catalog.oid[]) WITH ORDINALITY AS x(role, n)"
				   " JOIN pg_catalog.pg_user_mappings u ON u.srvid = p.srvid AND u.umuser = x.role"
				   " ORDER BY x.n)::pg_catalog.regrole[]"
				   " FROM pick p WHERE r.ctid = p.rid",
				   reg->qualname, reg->qualname, reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_UPDATE);

	sql = psprintf("UPDATE %s SET oid_scope = $1 WHERE oid_scope IS DISTINCT FROM $1",
				   reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_UPDATE);
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

/* Row i of the last SPI result (ENTRY_COLUMNS), in the caller's memory. */
static RegEntry *
entry_from_row(uint64 i, MemoryContext cxt)
{
	HeapTuple	tup = SPI_tuptable->vals[i];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	MemoryContext spi_cxt = MemoryContextSwitchTo(cxt);
	RegEntry   *e = palloc0(sizeof(RegEntry));
	bool		isnull;
	Datum		d;

	e->server = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	e->app = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	e->config_var = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	e->server_oid = isnull ? InvalidOid : DatumGetObjectId(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	e->server_owner = isnull ? InvalidOid : DatumGetObjectId(d);
	e->roles = oid_array_list(SPI_getbinval(tup, desc, 6, &isnull));
	e->mappings = oid_array_list(SPI_getbinval(tup, desc, 7, &isnull));
	e->server_keys = text_array_list(SPI_getbinval(tup, desc, 8, &isnull));
	e->mapping_keys = text_array_list(SPI_getbinval(tup, desc, 9, &isnull));
	MemoryContextSwitchTo(spi_cxt);
	return e;
}

/* list with row i of the last SPI result appended, all in cxt. */
static List *
entry_append(List *list, uint64 i, MemoryContext cxt)
{
	RegEntry   *e = entry_from_row(i, cxt);
	MemoryContext spi_cxt = MemoryContextSwitchTo(cxt);

	list = lappend(list, e);
	MemoryContextSwitchTo(spi_cxt);
	return list;
}

/* The registry row of the server with that OID (FOR UPDATE if lock); NULL if none. */
RegEntry *
hr_registry_fetch(Registry *reg, Oid serverid, bool lock)
{
	RegistryAccess ra;
	RegEntry   *e = NULL;
	char	   *sql;
	Oid			types[1] = {OIDOID};
	Datum		values[1];

	values[0] = ObjectIdGetDatum(serverid);
	registry_begin(reg, &ra);
	sql = psprintf("SELECT " ENTRY_COLUMNS " FROM %s WHERE server_oid = $1%s",
				   reg->qualname, lock ? " FOR UPDATE" : "");
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
		e = entry_from_row(0, ra.caller_cxt);
	registry_end(&ra);
	return e;
}

/* Whether the server with that OID has a row (live or not). */
bool
hr_registry_has(Registry *reg, Oid serverid)
{
	return hr_registry_fetch(reg, serverid, false) != NULL;
}

/* The dead rows whose last known name is server. */
List *
hr_registry_dead_named(Registry *reg, const char *server)
{
	RegistryAccess ra;
	List	   *res = NIL;
	char	   *sql;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];
	uint64		i;

	values[0] = name_datum(server);
	registry_begin(reg, &ra);
	sql = psprintf("SELECT " ENTRY_COLUMNS " FROM %s r WHERE r.server = $1"
				   " AND NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server s"
				   " WHERE s.oid = r.server_oid AND s.srvowner = r.server_owner::pg_catalog.oid)"
				   " ORDER BY r.registered_at",
				   reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		res = entry_append(res, i, ra.caller_cxt);
	registry_end(&ra);
	return res;
}

/* Every row, by name. */
List *
hr_registry_list(Registry *reg)
{
	RegistryAccess ra;
	List	   *res = NIL;
	char	   *sql;
	uint64		i;

	registry_begin(reg, &ra);
	sql = psprintf("SELECT " ENTRY_COLUMNS " FROM %s ORDER BY server, registered_at",
				   reg->qualname);
	registry_exec(sql, 0, NULL, NULL, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		res = entry_append(res, i, ra.caller_cxt);
	registry_end(&ra);
	return res;
}

/*
 * Register a server just made.  A dead row of the same name goes (as 1.1
 * replaced it), and so does any row holding the new server's OID: that OID
 * was free, so the server that row had is gone.
 */
void
hr_registry_insert(Registry *reg, RegEntry *e)
{
	RegistryAccess ra;
	Oid			types[10] = {NAMEOID, OIDOID, TEXTOID, TEXTOID, OIDOID,
		OIDARRAYOID, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID};
	Datum		values[10];
	char	   *sql;

	Assert(list_length(e->roles) == list_length(e->mappings));
	values[0] = name_datum(e->server);
	values[1] = ObjectIdGetDatum(e->server_oid);
	values[2] = CStringGetTextDatum(e->app);
	values[3] = CStringGetTextDatum(e->config_var);
	values[4] = ObjectIdGetDatum(e->server_owner);
	values[5] = oid_array(e->roles);
	values[6] = oid_array(e->mappings);
	values[7] = text_array(e->server_keys);
	values[8] = text_array(e->mapping_keys);
	values[9] = CStringGetTextDatum(registry_scope());
	registry_begin(reg, &ra);
	sql = psprintf("DELETE FROM %s r WHERE r.server_oid = $2"
				   " OR (r.server = $1 AND NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server s"
				   " WHERE s.oid = r.server_oid))",
				   reg->qualname);
	registry_exec(sql, 2, types, values, NULL, false, SPI_OK_DELETE);
	sql = psprintf("INSERT INTO %s (server, server_oid, app, config_var, server_owner,"
				   " roles, mapping_oids, server_options, mapping_options, oid_scope,"
				   " registered_at, last_refreshed, last_changed)"
				   " VALUES ($1, $2, $3, $4, $5::pg_catalog.regrole,"
				   " $6::pg_catalog.regrole[], $7, $8, $9, $10,"
				   " pg_catalog.now(), pg_catalog.now(), pg_catalog.now())",
				   reg->qualname);
	registry_exec(sql, 10, types, values, NULL, false, SPI_OK_INSERT);
	registry_end(&ra);
}

/* Record a successful resolution and what it left in place. */
void
hr_registry_update(Registry *reg, RegEntry *e, bool changed)
{
	RegistryAccess ra;
	Oid			types[7] = {OIDOID, NAMEOID, OIDARRAYOID, OIDARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, BOOLOID};
	Datum		values[7];
	char	   *sql;

	Assert(list_length(e->roles) == list_length(e->mappings));
	values[0] = ObjectIdGetDatum(e->server_oid);
	values[1] = name_datum(e->server);
	values[2] = oid_array(e->roles);
	values[3] = oid_array(e->mappings);
	values[4] = text_array(e->server_keys);
	values[5] = text_array(e->mapping_keys);
	values[6] = BoolGetDatum(changed);
	registry_begin(reg, &ra);
	sql = psprintf("UPDATE %s SET server = $2, roles = $3::pg_catalog.regrole[],"
				   " mapping_oids = $4, server_options = $5, mapping_options = $6,"
				   " last_refreshed = pg_catalog.now(),"
				   " last_changed = CASE WHEN $7 THEN pg_catalog.now() ELSE last_changed END,"
				   " last_error = NULL, last_error_at = NULL"
				   " WHERE server_oid = $1",
				   reg->qualname);
	registry_exec(sql, 7, types, values, NULL, false, SPI_OK_UPDATE);
	registry_end(&ra);
}

/* Record the message of a failed refresh (heroku_fdw_refresh_all). */
void
hr_registry_set_error(Registry *reg, Oid serverid, const char *message)
{
	RegistryAccess ra;
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	char	   *sql;

	values[0] = ObjectIdGetDatum(serverid);
	values[1] = CStringGetTextDatum(message);
	registry_begin(reg, &ra);
	sql = psprintf("UPDATE %s SET last_error = $2, last_error_at = pg_catalog.now()"
				   " WHERE server_oid = $1",
				   reg->qualname);
	registry_exec(sql, 2, types, values, NULL, false, SPI_OK_UPDATE);
	registry_end(&ra);
}

/* Delete the row of the server with that OID; false if there was none. */
bool
hr_registry_delete(Registry *reg, Oid serverid)
{
	RegistryAccess ra;
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	char	   *sql;
	bool		found;

	values[0] = ObjectIdGetDatum(serverid);
	registry_begin(reg, &ra);
	sql = psprintf("DELETE FROM %s WHERE server_oid = $1", reg->qualname);
	registry_exec(sql, 1, types, values, NULL, false, SPI_OK_DELETE);
	found = SPI_processed > 0;
	registry_end(&ra);
	return found;
}

/* Delete a dead row, unless it came to life (its owner came back) meanwhile. */
bool
hr_registry_forget_dead(Registry *reg, RegEntry *e)
{
	RegistryAccess ra;
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *sql;
	bool		found;

	values[0] = ObjectIdGetDatum(e->server_oid);
	if (!OidIsValid(e->server_oid))
		nulls[0] = 'n';
	values[1] = name_datum(e->server);
	registry_begin(reg, &ra);
	sql = psprintf("DELETE FROM %s r WHERE (CASE WHEN $1 IS NULL"
				   " THEN r.server_oid IS NULL AND r.server = $2"
				   " ELSE r.server_oid = $1 END)"
				   " AND NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server s"
				   " WHERE s.oid = r.server_oid AND s.srvowner = r.server_owner::pg_catalog.oid)",
				   reg->qualname);
	registry_exec(sql, 2, types, values, nulls, false, SPI_OK_DELETE);
	found = SPI_processed > 0;
	registry_end(&ra);
	return found;
}

/* In a sql_drop event trigger: delete the rows of the servers dropped. */
void
hr_registry_forget_dropped(Registry *reg)
{
	RegistryAccess ra;
	char	   *sql;

	registry_begin(reg, &ra);
	sql = psprintf("DELETE FROM %s r USING pg_catalog.pg_event_trigger_dropped_objects() d"
				   " WHERE d.classid = 'pg_catalog.pg_foreign_server'::pg_catalog.regclass"
				   " AND d.objid = r.server_oid",
				   reg->qualname);
	registry_exec(sql, 0, NULL, NULL, NULL, false, SPI_OK_DELETE);
	registry_end(&ra);
}
