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

#endif							/* PG_FDW_H */
