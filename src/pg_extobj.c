/*-------------------------------------------------------------------------
 *
 * pg_extobj.c
 *		The extension's own functions, found by OID, for the code that acts
 *		for others: the background worker (refresher, healing, release feed)
 *		runs as the bootstrap superuser in a database that a non-superuser
 *		may own.  Whoever may CREATE in the extension's schema (the database
 *		owner on 15 and later, every role in 13 and 14's public schema) or
 *		set the database's search_path could otherwise get a function of
 *		theirs run in its place, so nothing is called by a name resolved at
 *		run time: a function is looked up with its schema and argument types
 *		and must be a member of the extension, then called through fmgr.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "pg_heroku.h"

/* The schema of installed extension extname, or InvalidOid. */
Oid
hr_extension_schema(const char *extname)
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

/*
 * The OID of function fname(argtypes) of extension heroku_resolver in this
 * database: looked up in the extension's schema with exactly those
 * argument types, and a member of the extension (pg_depend), else
 * InvalidOid (not installed, or a version without that function).  Needs
 * a transaction.
 */
Oid
hr_ext_function(const char *fname, int nargs, const Oid *argtypes)
{
	Oid			extoid = get_extension_oid("heroku_resolver", true);
	Oid			nsp;
	char	   *nspname;
	Oid			fn;

	if (!OidIsValid(extoid))
		return InvalidOid;
	nsp = hr_extension_schema("heroku_resolver");
	nspname = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	if (nspname == NULL)
		return InvalidOid;
	fn = LookupFuncName(list_make2(makeString(nspname), makeString(pstrdup(fname))),
						nargs, argtypes, true);
	if (!OidIsValid(fn) || getExtensionOfObject(ProcedureRelationId, fn) != extoid)
		return InvalidOid;
	return fn;
}

/*
 * Pin this process's search_path to pg_catalog, pg_temp, as a session
 * setting, above what ALTER DATABASE/ROLE ... SET and the configuration
 * file give it: the worker's SQL then means what it says, whoever owns the
 * database.  Called once the worker is connected (the database's settings
 * are applied while connecting, never again).
 */
void
hr_pin_search_path(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
}
