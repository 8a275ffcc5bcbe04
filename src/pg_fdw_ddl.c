/*-------------------------------------------------------------------------
 *
 * pg_fdw_ddl.c
 *		CREATE/ALTER SERVER and CREATE/ALTER USER MAPPING for the postgres_fdw
 *		and dblink helpers, and the options of an existing user mapping.
 *
 * The DDL is run through ProcessUtility() on parse trees built here, never
 * from SQL text: a statement carrying a password, run through SPI, would be
 * quoted in the CONTEXT of any error it raised.  The query text handed
 * along (seen by event triggers and utility hooks such as pgaudit or
 * pg_stat_statements) is the statement with its secret values masked.
 *
 * The statements name their objects, but the callers know them by OID:
 * each function checks afterwards, in the same transaction, that the name
 * led to the object of that OID, so that a server or mapping dropped and
 * made again under the same name is never written to.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "storage/lmgr.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "pg_fdw.h"

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

/* The server's name now; an error if it is gone. */
static char *
server_name(Oid serverid)
{
	return pstrdup(GetForeignServer(serverid)->servername);
}

/* After DDL by name: the name must still lead to serverid. */
static void
check_server_is(const char *server, Oid serverid)
{
	ForeignServer *srv = GetForeignServerByName(server, true);

	if (srv == NULL || srv->serverid != serverid)
		elog(ERROR, "foreign server \"%s\" is not the server with OID %u", server, serverid);
}

/* The OID of role's mapping for the server, or InvalidOid. */
static Oid
user_mapping_oid(Oid roleid, Oid serverid)
{
	HeapTuple	tup;
	Oid			umid;

	tup = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(roleid),
						  ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	umid = ((Form_pg_user_mapping) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return umid;
}

/* CREATE SERVER server FOREIGN DATA WRAPPER fdwname OPTIONS (...); its OID */
Oid
hr_ddl_create_server(const char *server, const char *fdwname, List *options)
{
	CreateForeignServerStmt *stmt = makeNode(CreateForeignServerStmt);
	StringInfoData sql;

	stmt->servername = pstrdup(server);
	stmt->fdwname = pstrdup(fdwname);
	stmt->options = options;
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE SERVER %s FOREIGN DATA WRAPPER %s",
					 quote_identifier(server), quote_identifier(fdwname));
	hr_fdw_append_options_text(&sql, options);
	run_utility((Node *) stmt, sql.data);
	return GetForeignServerByName(server, false)->serverid;
}

/* ALTER SERVER <serverid> OPTIONS (ADD/SET/DROP ...) */
void
hr_ddl_alter_server(Oid serverid, List *changes)
{
	AlterForeignServerStmt *stmt = makeNode(AlterForeignServerStmt);
	char	   *server = server_name(serverid);
	StringInfoData sql;

	stmt->servername = server;
	stmt->options = changes;
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER SERVER %s", quote_identifier(server));
	hr_fdw_append_options_text(&sql, changes);
	run_utility((Node *) stmt, sql.data);
	check_server_is(server, serverid);
}

/* CREATE USER MAPPING FOR role SERVER <serverid> OPTIONS (...); its OID */
Oid
hr_ddl_create_user_mapping(Oid roleid, Oid serverid, List *options)
{
	CreateUserMappingStmt *stmt = makeNode(CreateUserMappingStmt);
	char	   *server = server_name(serverid);
	StringInfoData sql;
	Oid			umid;

	stmt->user = role_spec(roleid);
	stmt->servername = server;
	stmt->options = options;
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE USER MAPPING FOR %s SERVER %s",
					 quote_identifier(stmt->user->rolename), quote_identifier(server));
	hr_fdw_append_options_text(&sql, options);
	run_utility((Node *) stmt, sql.data);
	check_server_is(server, serverid);
	umid = user_mapping_oid(roleid, serverid);
	if (!OidIsValid(umid))
		elog(ERROR, "user mapping for role %u on foreign server %u was not created", roleid, serverid);
	return umid;
}

/* ALTER USER MAPPING <umid> (role's on serverid) OPTIONS (ADD/SET/DROP ...) */
void
hr_ddl_alter_user_mapping(Oid umid, Oid roleid, Oid serverid, List *changes)
{
	AlterUserMappingStmt *stmt = makeNode(AlterUserMappingStmt);
	char	   *server = server_name(serverid);
	StringInfoData sql;

	stmt->user = role_spec(roleid);
	stmt->servername = server;
	stmt->options = changes;
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER USER MAPPING FOR %s SERVER %s",
					 quote_identifier(stmt->user->rolename), quote_identifier(server));
	hr_fdw_append_options_text(&sql, changes);
	run_utility((Node *) stmt, sql.data);
	check_server_is(server, serverid);
	if (user_mapping_oid(roleid, serverid) != umid)
		elog(ERROR, "the user mapping for role %u on foreign server \"%s\" is not the one with OID %u",
			 roleid, server, umid);
}

/* The options of role's own mapping for the server; false if it has none. */
bool
hr_ddl_user_mapping_options(Oid roleid, Oid serverid, List **options)
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

/*
 * Lock the user mapping umid against DROP USER MAPPING, then: true, with
 * its options, if it exists and is roleid's mapping for serverid.  A
 * mapping of the same role and server with another OID was made by someone
 * else, after ours was dropped.
 */
bool
hr_ddl_user_mapping_is(Oid umid, Oid roleid, Oid serverid, List **options)
{
	HeapTuple	tup;
	Form_pg_user_mapping um;
	Datum		datum;
	bool		isnull;
	bool		ours;

	if (!OidIsValid(umid))
		return false;
	LockDatabaseObject(UserMappingRelationId, umid, 0, AccessShareLock);
	tup = SearchSysCache1(USERMAPPINGOID, ObjectIdGetDatum(umid));
	if (!HeapTupleIsValid(tup))
		return false;
	um = (Form_pg_user_mapping) GETSTRUCT(tup);
	ours = um->umuser == roleid && um->umserver == serverid;
	if (ours)
	{
		datum = SysCacheGetAttr(USERMAPPINGOID, tup,
								Anum_pg_user_mapping_umoptions, &isnull);
		*options = isnull ? NIL : untransformRelOptions(datum);
	}
	ReleaseSysCache(tup);
	return ours;
}
