/*-------------------------------------------------------------------------
 *
 * pg_dblink.c
 *		heroku_dblink_connect(): a dblink_connect() that resolves the app's
 *		URL and, when the credentials it had were refused, resolves afresh
 *		and retries once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pg_fdw.h"

PG_FUNCTION_INFO_V1(heroku_dblink_connect);

/* dblink's dblink_connect(text, text), with the caller's EXECUTE checked. */
static Oid
dblink_connect_function(void)
{
	Oid			nsp = hr_extension_schema("dblink");
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	char	   *nspname;
	Oid			fn;
	AclResult	aclresult;

	if (!OidIsValid(nsp) || (nspname = get_namespace_name(nsp)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"dblink\" is not installed"),
				 errhint("Install it with CREATE EXTENSION dblink.")));
	fn = LookupFuncName(list_make2(makeString(nspname), makeString("dblink_connect")),
						2, argtypes, true);
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s.dblink_connect(text, text) does not exist",
						quote_identifier(nspname))));
	aclresult = hr_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(fn));
	return fn;
}

/* Errors after which fresh credentials may help: class 08 and class 28. */
static bool
retryable(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_CONNECTION_EXCEPTION ||
		category == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
}

/*
 * heroku_dblink_connect(conname, app, config_var): dblink_connect(conname,
 * conninfo).  The first attempt runs in a subtransaction; if it fails with
 * a connection or authentication error, the app is resolved afresh
 * (bypassing any cache) and dblink_connect is called once more.  dblink
 * registers a named connection only once it is up, so a failed attempt
 * leaves none behind.
 */
Datum
heroku_dblink_connect(PG_FUNCTION_ARGS)
{
	char	   *conname = hr_pg_text_arg(fcinfo, 0, "conname");
	char	   *app = hr_pg_text_arg(fcinfo, 1, "app");
	char	   *config_var = hr_pg_text_arg(fcinfo, 2, "config_var");
	Oid			fn = dblink_connect_function();
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	HrResolved *r;
	Datum		result = (Datum) 0;
	ErrorData  *first_error = NULL;

	r = hr_pg_resolve(app, config_var, false);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller_cxt);
	PG_TRY();
	{
		result = OidFunctionCall2(fn, CStringGetTextDatum(conname),
								  CStringGetTextDatum(r->conninfo));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_cxt);
		CurrentResourceOwner = caller_owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller_cxt);
		first_error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_cxt);
		CurrentResourceOwner = caller_owner;
		if (!retryable(first_error->sqlerrcode))
			ReThrowError(first_error);
	}
	PG_END_TRY();

	if (first_error != NULL)
	{
		ereport(DEBUG1,
				(errmsg_internal("dblink connection \"%s\" to Heroku app \"%s\" failed, resolving afresh and retrying once",
								 conname, app),
				 first_error->detail ? errdetail_internal("%s", first_error->detail) : 0));
		/* an answer fetched before this failure may predate the rotation */
		hr_cache_fresh_after = GetCurrentTimestamp();
		PG_TRY();
		{
			r = hr_pg_resolve(app, config_var, true);
		}
		PG_FINALLY();
		{
			hr_cache_fresh_after = 0;
		}
		PG_END_TRY();
		result = OidFunctionCall2(fn, CStringGetTextDatum(conname),
								  CStringGetTextDatum(r->conninfo));
	}
	PG_RETURN_DATUM(result);
}
