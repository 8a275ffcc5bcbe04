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

/* PostgreSQL 16 folded the per-catalog ACL checks into object_*check(). */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_proc.h"
#define hr_server_ownercheck(srvid, roleid) \
	object_ownercheck(ForeignServerRelationId, (srvid), (roleid))
#define hr_fdw_aclcheck(fdwid, roleid, mode) \
	object_aclcheck(ForeignDataWrapperRelationId, (fdwid), (roleid), (mode))
#define hr_proc_aclcheck(procid, roleid, mode) \
	object_aclcheck(ProcedureRelationId, (procid), (roleid), (mode))
#else
#define hr_server_ownercheck(srvid, roleid) \
	pg_foreign_server_ownercheck((srvid), (roleid))
#define hr_fdw_aclcheck(fdwid, roleid, mode) \
	pg_foreign_data_wrapper_aclcheck((fdwid), (roleid), (mode))
#define hr_proc_aclcheck(procid, roleid, mode) \
	pg_proc_aclcheck((procid), (roleid), (mode))
#endif

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

/* pg_fdw_options.c */
extern SplitOptions hr_fdw_split_options(FdwKind kind, const HrResolved *r);
extern List *hr_fdw_option_names(List *defs);
/* ADD/SET/DROP from current to desired, leaving the user's own options */
extern List *hr_fdw_option_changes(List *current, List *desired, List *managed);
extern void hr_fdw_append_options_text(StringInfo buf, List *defs);

/* pg_fdw_ddl.c */
extern void hr_ddl_create_server(const char *server, const char *fdwname,
								 List *options);
extern void hr_ddl_alter_server(const char *server, List *changes);
extern void hr_ddl_create_user_mapping(Oid roleid, const char *server,
									   List *options);
extern void hr_ddl_alter_user_mapping(Oid roleid, const char *server,
									  List *changes);
extern bool hr_ddl_user_mapping_options(Oid roleid, Oid serverid,
										List **options);

/* pg_fdw_registry.c */
extern Registry *hr_registry_for(FunctionCallInfo fcinfo);
extern void hr_registry_insert(Registry *reg, RegEntry *e);
extern void hr_registry_update(Registry *reg, RegEntry *e, bool changed);
extern void hr_registry_set_error(Registry *reg, const char *server,
								  const char *message);
extern bool hr_registry_delete(Registry *reg, const char *server);
/* config_vars may be NULL */
extern void hr_registry_list(Registry *reg, List **servers, List **apps,
							 List **config_vars);
/* The server and its registry row, locked; 42704 if either is missing. */
extern RegEntry *hr_registry_lookup(Registry *reg, const char *server,
									ForeignServer **srv);

#endif							/* PG_FDW_H */
