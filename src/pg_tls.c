/*-------------------------------------------------------------------------
 *
 * pg_tls.c
 *		Mutual TLS for Private and Shield databases: heroku_tls_set() and
 *		heroku_tls_unset() keep the client certificate, its key and the root
 *		certificate that a superuser names for an app in the extension's
 *		table heroku_tls_files; hr_tls_apply() adds them to every answer for
 *		that app (hr_pg_resolve), so that heroku_dblink_url(),
 *		heroku_database_url() and the foreign servers of the FDW helpers
 *		carry them.  A config var never names these files (the core refuses
 *		sslcert, sslkey and sslrootcert in a URL): an app collaborator must
 *		not choose files on this server.
 *
 * The resolution cache holds what the API said; the files are added to
 * each answer from the table as it is in the caller's snapshot, so a change
 * takes effect at the next call without touching the cache.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>

#include "access/heapam.h"
#include "access/relation.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_tls.h"

#define HR_TLS_TABLE "heroku_tls_files"
/* a client certificate this close to its end is warned about */
#define HR_TLS_EXPIRY_WARN_SECS (30 * 86400)

/* The three files of one row; NULLs where not set. */
typedef struct TlsFiles
{
	char	   *sslcert;
	char	   *sslkey;
	char	   *sslrootcert;
} TlsFiles;

/*
 * The OID of the extension's table in this database, or InvalidOid (not
 * installed, or a version before 1.3).  A table of that name that is not a
 * member of the extension (someone who may create in its schema made it
 * before ALTER EXTENSION ... UPDATE) is never read: it could choose files.
 */
static Oid
tls_table(void)
{
	Oid			nsp = hr_extension_schema("heroku_resolver");
	Oid			relid;

	if (!OidIsValid(nsp))
		return InvalidOid;
	relid = get_relname_relid(HR_TLS_TABLE, nsp);
	if (!OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) != get_extension_oid("heroku_resolver", true))
		return InvalidOid;
	return relid;
}

/*
 * The table's OID as last found, for the reads of every resolve: finding it
 * takes three catalog index scans, more than the rest of a warm call.  Any
 * change to the table's pg_class row (made, dropped, renamed, moved with
 * the extension's schema) is a relcache invalidation for it, and the
 * callback forgets the answer; an answer of "none" is forgotten at any
 * relcache invalidation, so that the table's creation by ALTER EXTENSION
 * ... UPDATE is seen at once.
 */
static Oid	tls_relid = InvalidOid;
static bool tls_relid_known = false;

static void
tls_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || !OidIsValid(tls_relid) || relid == tls_relid)
		tls_relid_known = false;
}

/*
 * The extension's table opened with AccessShareLock, or NULL when there is
 * none.  Locking it reads pending invalidations: if they name the table
 * (dropped and made again by another session), look it up afresh.
 */
static Relation
tls_open(void)
{
	static bool registered = false;
	int			attempt;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(tls_relcache_callback, (Datum) 0);
		registered = true;
	}
	for (attempt = 0; attempt < 3; attempt++)
	{
		Relation	rel;
		Oid			relid;

		if (!tls_relid_known)
		{
			tls_relid = tls_table();
			tls_relid_known = true;
		}
		if (!OidIsValid(relid = tls_relid))
			return NULL;
		rel = try_relation_open(relid, AccessShareLock);
		if (rel != NULL && tls_relid_known && tls_relid == relid)
			return rel;
		if (rel != NULL)
			relation_close(rel, AccessShareLock);
		tls_relid_known = false;
	}
	return NULL;
}

/*
 * A text column of tup as a palloc'd C string, or NULL.  heap_deform_tuple,
 * not heap_getattr: the inline heap_getattr of some 17.x headers calls a
 * function that earlier 17.x servers do not export.
 */
static char *
text_col(HeapTuple tup, TupleDesc desc, int attno)
{
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	char	   *result;

	heap_deform_tuple(tup, desc, values, nulls);
	result = nulls[attno - 1] ? NULL : TextDatumGetCString(values[attno - 1]);
	pfree(values);
	pfree(nulls);
	return result;
}

/*
 * The files set for app and the config var actually used: the row naming
 * it (as NAME or NAME without _URL) before the app's row for every config
 * var.  Read by the extension itself, not through the caller's rights: a
 * role that may resolve the app gets the files in its answers without
 * reading the table.  False when there is none.
 */
static bool
tls_lookup(const char *app, const char *used_var, TlsFiles *out)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	int			best = 0;

	if (!IsTransactionState() || (rel = tls_open()) == NULL)
		return false;
	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		char	   *row_app = text_col(tup, desc, 1);
		char	   *row_var = text_col(tup, desc, 2);
		int			rank;

		if (row_app == NULL || strcmp(row_app, app) != 0)
			continue;
		if (row_var == NULL)
			rank = 1;
		else if (hr_same_config_var(used_var, row_var))
			rank = 2;
		else
			continue;
		if (rank <= best)
			continue;
		best = rank;
		out->sslcert = text_col(tup, desc, 3);
		out->sslkey = text_col(tup, desc, 4);
		out->sslrootcert = text_col(tup, desc, 5);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return best > 0;
}

/* Client certificates already warned about in this process, with when. */
typedef struct WarnedCert
{
	char		path[1024];
	TimestampTz at;
} WarnedCert;

static WarnedCert warned[16];
static int	nwarned = 0;

/*
 * A client certificate within 30 days of its end: a WARNING once per
 * backend, a LOG line from the background worker (once a day), naming the
 * file and the app.  Never an error: the connection may still work.
 */
static void
warn_if_expiring(const char *cert, const char *app)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz not_after;
	bool		worker = MyBackendType == B_BG_WORKER;
	int			i;
	long		secs;
	int			usecs;

	for (i = 0; i < nwarned; i++)
		if (strcmp(warned[i].path, cert) == 0)
		{
			if (!worker || !TimestampDifferenceExceeds(warned[i].at, now, 86400 * 1000))
				return;
			break;
		}
	if (!hr_x509_not_after(cert, &not_after) ||
		not_after - now > (int64) HR_TLS_EXPIRY_WARN_SECS * USECS_PER_SEC)
		return;
	if (i == nwarned)
	{
		if (nwarned == lengthof(warned))
			return;
		strlcpy(warned[nwarned++].path, cert, sizeof(warned[0].path));
	}
	warned[i].at = now;
	TimestampDifference(now, not_after, &secs, &usecs);
	ereport(worker ? LOG : WARNING,
			(errmsg("client certificate \"%s\" of Heroku app \"%s\" %s %s",
					cert, app, not_after > now ? "expires on" : "expired on",
					timestamptz_to_str(not_after)),
			 not_after > now ? errdetail("%ld days are left.", secs / 86400) : 0,
			 errhint("Download the renewed certificate (heroku data:mtls:certificates:download) and install it at the same path, or point heroku_tls_set() at it.")));
}

/* Set keyword in the palloc'd pairs of r, appending when absent. */
static void
set_pair(HrResolved *r, const char *keyword, const char *value)
{
	int			i;

	for (i = 0; i < r->nparams; i++)
		if (strcmp(r->keywords[i], keyword) == 0)
		{
			r->values[i] = pstrdup(value);
			return;
		}
	r->keywords = repalloc(r->keywords, sizeof(char *) * (r->nparams + 1));
	r->values = repalloc(r->values, sizeof(char *) * (r->nparams + 1));
	r->keywords[r->nparams] = pstrdup(keyword);
	r->values[r->nparams++] = pstrdup(value);
}

/*
 * Add the files set for app to a resolution: its pairs, conninfo and URL;
 * with a root certificate, sslmode becomes verify-ca unless it is
 * verify-full (heroku.min_sslmode) already.
 */
void
hr_tls_apply(HrResolved *r, const char *app)
{
	TlsFiles	f = {NULL, NULL, NULL};
	hr_conninfo ci;
	char	   *s;

	if (!tls_lookup(app, r->config_var, &f))
		return;
	if (f.sslcert)
	{
		set_pair(r, "sslcert", f.sslcert);
		set_pair(r, "sslkey", f.sslkey);
		warn_if_expiring(f.sslcert, app);
	}
	if (f.sslrootcert)
	{
		const char *mode = NULL;
		int			i;

		set_pair(r, "sslrootcert", f.sslrootcert);
		for (i = 0; i < r->nparams; i++)
			if (strcmp(r->keywords[i], "sslmode") == 0)
				mode = r->values[i];
		if (mode == NULL || strcmp(mode, "verify-full") != 0)
			set_pair(r, "sslmode", "verify-ca");
	}
	ci.n = r->nparams;
	ci.keywords = r->keywords;
	ci.values = r->values;
	s = hr_conninfo_to_string(&ci);
	if (s == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	r->conninfo = pstrdup(s);
	hr_free_secret(s);
	s = hr_conninfo_to_url(&ci);
	if (s == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	r->url = pstrdup(s);
	hr_free_secret(s);
}

/* Only superusers, whatever EXECUTE says: the files are the server's. */
static void
require_superuser(const char *fname)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", fname),
				 errdetail("Only superusers may choose the mutual TLS files of this server.")));
}

/* The optional text argument argno, or NULL (SQL NULL or ''). */
static char *
opt_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *s;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	return s[0] ? s : NULL;
}

/* app and config_var checked as everywhere else (22023). */
static void
check_app_var(const char *app, const char *config_var)
{
	hr_error	err;

	memset(&err, 0, sizeof(err));
	if (hr_check_names(app, config_var ? config_var : "DATABASE_URL", &err) != HR_OK)
		hr_pg_report(ERROR, &err);
}

/* A failed check of hr_tls_check(), with the SQLSTATE of its cause. */
static void
report_tls_check(const hr_error *err)
{
	int			code;

	if (err->sys_errno == ENOENT || err->sys_errno == ENOTDIR)
		code = ERRCODE_UNDEFINED_FILE;
	else if (err->sys_errno == EACCES)
		code = ERRCODE_INSUFFICIENT_PRIVILEGE;
	else
		code = ERRCODE_INVALID_PARAMETER_VALUE;
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", err->message),
			 err->hint[0] ? errhint("%s", err->hint) : 0));
}

/* Run one statement on the extension's table, with $1..$n text. */
static uint64
tls_exec(const char *fmt, int nargs, char **args, int expect)
{
	Oid			relid = tls_table();
	Oid			types[5];
	Datum		values[5];
	char		nulls[5];
	char	   *sql;
	int			i;
	int			rc;
	uint64		n;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s of extension heroku_resolver is missing", HR_TLS_TABLE),
				 errhint("Run ALTER EXTENSION heroku_resolver UPDATE.")));
	sql = psprintf(fmt, quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   HR_TLS_TABLE));
	for (i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	if (rc != expect)
		elog(ERROR, "query on %s failed: %s", HR_TLS_TABLE, SPI_result_code_string(rc));
	n = SPI_processed;
	SPI_finish();
	return n;
}

PG_FUNCTION_INFO_V1(heroku_tls_set);

/*
 * heroku_tls_set(app, config_var, sslcert, sslkey, sslrootcert): the files
 * for app (config_var NULL: every config var), replacing what was set.
 * Each is checked now as libpq will check it: absolute, readable (58P01
 * when missing, 42501 when unreadable), a key open to no one else (22023),
 * a certificate that matches its key (22023).
 */
Datum
heroku_tls_set(PG_FUNCTION_ARGS)
{
	char	   *args[5];
	hr_tls_files files;
	hr_error	err;
	const char *msg;

	require_superuser("heroku_tls_set");
	args[0] = hr_pg_text_arg(fcinfo, 0, "app");
	args[1] = opt_arg(fcinfo, 1);
	args[2] = opt_arg(fcinfo, 2);
	args[3] = opt_arg(fcinfo, 3);
	args[4] = opt_arg(fcinfo, 4);
	check_app_var(args[0], args[1]);
	if (args[2] == NULL && args[3] == NULL && args[4] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("heroku_tls_set needs sslcert and sslkey, or sslrootcert"),
				 errhint("Use heroku_tls_unset() to remove the files of an app.")));
	files.sslcert = args[2];
	files.sslkey = args[3];
	files.sslrootcert = args[4];
	memset(&err, 0, sizeof(err));
	if (hr_tls_check(&files, &err) != HR_OK)
		report_tls_check(&err);
	if (args[2] && (msg = hr_x509_check_pair(args[2], args[3])) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", msg),
				 errhint("Give the client certificate and the private key downloaded together (heroku data:mtls:certificates:download).")));
	if (args[4] && !hr_x509_is_cert(args[4]))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("root certificate file \"%s\" holds no PEM certificate", args[4])));
	tls_exec("DELETE FROM %s WHERE app = $1 AND config_var IS NOT DISTINCT FROM $2",
			 2, args, SPI_OK_DELETE);
	tls_exec("INSERT INTO %s (app, config_var, sslcert, sslkey, sslrootcert) "
			 "VALUES ($1, $2, $3, $4, $5)", 5, args, SPI_OK_INSERT);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(heroku_tls_unset);

/*
 * heroku_tls_unset(app, config_var): forget the files of app for
 * config_var, or (NULL) every row of the app.  False when there was none.
 */
Datum
heroku_tls_unset(PG_FUNCTION_ARGS)
{
	char	   *args[2];
	uint64		n;

	require_superuser("heroku_tls_unset");
	args[0] = hr_pg_text_arg(fcinfo, 0, "app");
	args[1] = opt_arg(fcinfo, 1);
	check_app_var(args[0], args[1]);
	if (args[1])
		n = tls_exec("DELETE FROM %s WHERE app = $1 AND config_var = $2", 2, args, SPI_OK_DELETE);
	else
		n = tls_exec("DELETE FROM %s WHERE app = $1", 1, args, SPI_OK_DELETE);
	PG_RETURN_BOOL(n > 0);
}
