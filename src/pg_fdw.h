/*-------------------------------------------------------------------------
 *
 * pg_fdw.h
 *		Declarations shared by the files of the postgres_fdw and dblink
 *		helpers (src/pg_fdw*.c, src/pg_dblink.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_FDW_H
#define PG_FDW_H

#include "postgres.h"

#include "fmgr.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"

#include "pg_heroku.h"

/* hr_server_ownercheck, hr_fdw_aclcheck, hr_proc_aclcheck: pg_compat.h */

/* What the caller's pg_foreign_data_wrapper row tells us about it. */
typedef enum FdwKind
{
	FDW_POSTGRES,				/* validator postgres_fdw_validator */
	FDW_DBLINK					/* validator dblink_fdw_validator */
} FdwKind;

/* Options split for a server and its mappings, as DefElem lists. */
typedef struct SplitOptions
{
	List	   *server;
	List	   *mapping;
} SplitOptions;

/* Where the registry is and who owns it. */
typedef struct Registry
{
	char	   *qualname;		/* quoted schema.table */
	Oid			owner;
} Registry;

/*
 * One row of the registry.  A server is known by its OID and the owner it
 * had when registered, a user mapping by its OID: never by a name, which
 * anyone with USAGE on the wrapper can take once the server is dropped.
 */
typedef struct RegEntry
{
	char	   *server;			/* its name (the catalog's, for a live row) */
	char	   *app;
	char	   *config_var;
	Oid			server_oid;		/* InvalidOid: the server is gone */
	Oid			server_owner;	/* its owner when registered */
	List	   *roles;			/* OIDs of the roles whose mappings we made */
	List	   *mappings;		/* OIDs of those mappings, in the same order */
	List	   *server_keys;	/* names of the server options we set */
	List	   *mapping_keys;	/* names of the mapping options we set */
} RegEntry;

/* Whether a registry row still stands for the server it was made for. */
typedef enum RegState
{
	REG_LIVE,					/* the server of that OID, with that owner */
	REG_DROPPED,				/* no server has that OID (any more) */
	REG_OWNER_CHANGED			/* the server has another owner now */
} RegState;

/* pg_fdw_forget.c */
/* Forget a dead row (with a WARNING) if the caller registered it. */
extern void hr_fdw_forget_dead(Registry *reg, RegEntry *e, RegState state,
							   ForeignServer *srv);

/* pg_fdw_options.c */
extern SplitOptions hr_fdw_split_options(FdwKind kind, const HrResolved *r);
extern List *hr_fdw_option_names(List *defs);
/* ADD/SET/DROP from current to desired, leaving the user's own options */
extern List *hr_fdw_option_changes(List *current, List *desired, List *managed);
extern void hr_fdw_append_options_text(StringInfo buf, List *defs);

/*
 * pg_fdw_ddl.c: each works on the object of the OID it is given, and raises
 * an error (undoing the statement) if the name it went by led elsewhere.
 */
extern Oid	hr_ddl_create_server(const char *server, const char *fdwname,
								 List *options);
extern void hr_ddl_alter_server(Oid serverid, List *changes);
extern Oid	hr_ddl_create_user_mapping(Oid roleid, Oid serverid, List *options);
extern void hr_ddl_alter_user_mapping(Oid umid, Oid roleid, Oid serverid,
									  List *changes);
extern bool hr_ddl_user_mapping_options(Oid roleid, Oid serverid,
										List **options);
/* Lock mapping umid; true (and its options) if it is roleid's for serverid. */
extern bool hr_ddl_user_mapping_is(Oid umid, Oid roleid, Oid serverid,
								   List **options);

/* pg_fdw_registry.c */
/* NULL if missing_ok and the registry (1.2's) is not there */
extern Registry *hr_registry_for(FunctionCallInfo fcinfo, bool missing_ok);
extern void hr_registry_insert(Registry *reg, RegEntry *e);
extern void hr_registry_update(Registry *reg, RegEntry *e, bool changed);
extern void hr_registry_set_error(Registry *reg, Oid serverid,
								  const char *message);
extern bool hr_registry_has(Registry *reg, Oid serverid);
/* The row of the server with that OID (FOR UPDATE if lock); NULL if none. */
extern RegEntry *hr_registry_fetch(Registry *reg, Oid serverid, bool lock);
extern bool hr_registry_delete(Registry *reg, Oid serverid);
/* Delete a dead row if it is still dead; false if it was not deleted. */
extern bool hr_registry_forget_dead(Registry *reg, RegEntry *e);
/* Every row, with server, app, server_oid and server_owner filled in. */
extern List *hr_registry_list(Registry *reg);
/* The dead rows whose last known name is server. */
extern List *hr_registry_dead_named(Registry *reg, const char *server);
/* In a sql_drop event trigger: forget the servers being dropped. */
extern void hr_registry_forget_dropped(Registry *reg);

/* pg_fdw_lookup.c */
/* 42501 unless the caller owns the server (superusers do). */
extern void hr_fdw_check_server_owner(ForeignServer *srv);
extern RegState hr_registry_state(RegEntry *e, ForeignServer **srv);

/*
 * The live registry row of the server of that name (or OID), locked, and
 * the server, locked against DROP and RENAME; 42704 if the server does not
 * exist or is not registered (a row whose server is gone or changed hands
 * is no registration).
 */
extern RegEntry *hr_registry_lookup(Registry *reg, const char *server,
									ForeignServer **srv);
extern RegEntry *hr_registry_lookup_oid(Registry *reg, Oid serverid,
										ForeignServer **srv);

#endif							/* PG_FDW_H */
