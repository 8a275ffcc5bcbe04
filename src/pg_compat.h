/*-------------------------------------------------------------------------
 *
 * pg_compat.h
 *		Everything that differs between the PostgreSQL majors the extension
 *		builds for (13 to 18), in one place.  The server-side files use the
 *		newest spelling, or an hr_ name where no spelling works everywhere;
 *		this header maps it onto what the major being built against has.
 *		Included by pg_heroku.h, so every server-side file has it.
 *
 *		test/checks/versions.sh builds and tests against 13, 15, 17 and 18.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_COMPAT_H
#define PG_COMPAT_H

#include "postgres.h"

#include "fmgr.h"

#if PG_VERSION_NUM < 130000
#error "heroku_resolver needs PostgreSQL 13 or later"
#endif

/*
 * Functions that never return: 18 removed pg_attribute_noreturn(), written
 * after a declaration, for pg_noreturn, written before it.  Before 18,
 * pg_attribute_noreturn() is a GCC-style attribute, which may stand first.
 */
#if PG_VERSION_NUM < 180000
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * Reserving the "heroku" prefix of settings (a misspelt heroku.* setting
 * is refused) came in 15; before it, placeholders already set for the
 * prefix are only warned about, and a misspelt SET is kept as a
 * placeholder.
 */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * Shared memory: 15 added shmem_request_hook, the only place 15 and later
 * accept RequestAddinShmemSpace() and RequestNamedLWLockTranche().  Before
 * 15 they are made from _PG_init() itself, while the library is being
 * preloaded: hr_install_shmem_request_hook() then calls the hook at once.
 */
#if PG_VERSION_NUM >= 150000
#define hr_install_shmem_request_hook(prev, hook) \
	do { \
		(prev) = shmem_request_hook; \
		shmem_request_hook = (hook); \
	} while (0)
#else
typedef void (*shmem_request_hook_type) (void);

#define hr_install_shmem_request_hook(prev, hook) \
	do { \
		(prev) = NULL; \
		(hook) (); \
	} while (0)
#endif

/*
 * A set-returning function in materialize mode: InitMaterializedSRF() came
 * in 15.  Before it, the same set-up by hand (as 15's funcapi.c does it).
 */
#if PG_VERSION_NUM < 150000
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#define MAT_SRF_USE_EXPECTED_DESC	0x01
#define MAT_SRF_BLESS				0x02

static inline void
hr_InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcontext;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize) ||
		((flags & MAT_SRF_USE_EXPECTED_DESC) != 0 && rsinfo->expectedDesc == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));

	oldcontext = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if ((flags & MAT_SRF_USE_EXPECTED_DESC) != 0)
		tupdesc = CreateTupleDescCopy(rsinfo->expectedDesc);
	else if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if ((flags & MAT_SRF_BLESS) != 0)
		BlessTupleDesc(tupdesc);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult =
		tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
							  false, work_mem);
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcontext);
}

#define InitMaterializedSRF(fcinfo, flags) hr_InitMaterializedSRF((fcinfo), (flags))
#endif

/*
 * Catalog index OIDs (ExtensionNameIndexId, ...) moved from
 * catalog/indexing.h into each catalog's own header in 14.
 */
#if PG_VERSION_NUM < 140000
#include "catalog/indexing.h"
#endif

/* 14 added ProcessUtility's readOnlyTree argument (false: may scribble). */
#if PG_VERSION_NUM >= 140000
#define hr_ProcessUtility(pstmt, query_string, context, params, query_env, dest, qc) \
	ProcessUtility((pstmt), (query_string), false, (context), (params), \
				   (query_env), (dest), (qc))
#else
#define hr_ProcessUtility(pstmt, query_string, context, params, query_env, dest, qc) \
	ProcessUtility((pstmt), (query_string), (context), (params), \
				   (query_env), (dest), (qc))
#endif

/* 16 folded the per-catalog ACL checks into object_*check(). */
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
#define hr_server_aclcheck(srvid, roleid, mode) \
	object_aclcheck(ForeignServerRelationId, (srvid), (roleid), (mode))
#else
#define hr_server_ownercheck(srvid, roleid) \
	pg_foreign_server_ownercheck((srvid), (roleid))
#define hr_fdw_aclcheck(fdwid, roleid, mode) \
	pg_foreign_data_wrapper_aclcheck((fdwid), (roleid), (mode))
#define hr_proc_aclcheck(procid, roleid, mode) \
	pg_proc_aclcheck((procid), (roleid), (mode))
#define hr_server_aclcheck(srvid, roleid, mode) \
	pg_foreign_server_aclcheck((srvid), (roleid), (mode))
#endif

/* 16 moved a range table entry's checkAsUser into RTEPermissionInfo. */
#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
#define hr_rte_check_as_user(stmt, rte) \
	((rte)->perminfoindex != 0 ? \
	 getRTEPermissionInfo((stmt)->permInfos, (rte))->checkAsUser : InvalidOid)
#else
#define hr_rte_check_as_user(stmt, rte) ((rte)->checkAsUser)
#endif

/* 14 renamed the predefined roles' OID macros (DEFAULT_ROLE_* to ROLE_PG_*). */
#if PG_VERSION_NUM < 140000
#define ROLE_PG_READ_ALL_STATS DEFAULT_ROLE_READ_ALL_STATS
#endif

/* 14 made string keys of dynahash explicit; before, they were the default. */
#if PG_VERSION_NUM < 140000
#define HASH_STRINGS 0
#endif

/* 18 dropped ExecutorRun's execute_once. */
#if PG_VERSION_NUM >= 180000
#define HR_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define HR_EXECUTOR_RUN_ARGS queryDesc, direction, count
#else
#define HR_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once
#define HR_EXECUTOR_RUN_ARGS queryDesc, direction, count, execute_once
#endif

#endif							/* PG_COMPAT_H */
