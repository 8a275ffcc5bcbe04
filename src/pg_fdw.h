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

#endif							/* PG_FDW_H */
