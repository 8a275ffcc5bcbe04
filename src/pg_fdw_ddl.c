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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
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

/* CREATE SERVER server FOREIGN DATA WRAPPER fdwname OPTIONS (...) */
void
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
}

/* ALTER SERVER server OPTIONS (ADD/SET/DROP ...) */
void
hr_ddl_alter_server(const char *server, List *changes)
{
	AlterForeignServerStmt *stmt = makeNode(AlterForeignServerStmt);
	StringInfoData sql;

	stmt->servername = pstrdup(server);
	stmt->options = changes;
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER SERVER %s", quote_identifier(server));
	hr_fdw_append_options_text(&sql, changes);
	run_utility((Node *) stmt, sql.data);
}

/* CREATE USER MAPPING FOR role SERVER server OPTIONS (...) */
void
hr_ddl_create_user_mapping(Oid roleid, const char *server, List *options)
{
	CreateUserMappingStmt *stmt = makeNode(CreateUserMappingStmt);
	StringInfoData sql;

	stmt->user = role_spec(roleid);
	stmt->servername = pstrdup(server);
	stmt->options = options;
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE USER MAPPING FOR %s SERVER %s",
					 quote_identifier(stmt->user->rolename), quote_identifier(server));
	hr_fdw_append_options_text(&sql, options);
	run_utility((Node *) stmt, sql.data);
}

/* ALTER USER MAPPING FOR role SERVER server OPTIONS (ADD/SET/DROP ...) */
void
hr_ddl_alter_user_mapping(Oid roleid, const char *server, List *changes)
{
	AlterUserMappingStmt *stmt = makeNode(AlterUserMappingStmt);
	StringInfoData sql;

	stmt->user = role_spec(roleid);
	stmt->servername = pstrdup(server);
	stmt->options = changes;
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER USER MAPPING FOR %s SERVER %s",
					 quote_identifier(stmt->user->rolename), quote_identifier(server));
	hr_fdw_append_options_text(&sql, changes);
	run_utility((Node *) stmt, sql.data);
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
