/*-------------------------------------------------------------------------
 *
 * pg_backend.c
 *		What every server-side file uses: the API settings (GUCs), the
 *		backend's libcurl handle, turning the core's errors into ereports
 *		with the documented SQLSTATEs, and reading text arguments.  It calls
 *		only the core, never another server-side file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <errno.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "pg_heroku.h"

static char *hr_api_url = NULL;
static char *hr_api_key = NULL;
static char *hr_api_key_file = NULL;
static char *hr_netrc_file = NULL;
static char *hr_ca_file = NULL;
static int	hr_timeout_ms = HR_DEFAULT_TIMEOUT_MS;
static int	hr_min_sslmode = HR_SSLMODE_REQUIRE;

/* May a resolved URL name a host on this machine?  (pg_heroku.h) */
bool		hr_allow_local_hosts = false;

static const struct config_enum_entry sslmode_options[] = {
	{"require", HR_SSLMODE_REQUIRE, false},
	{"verify-ca", HR_SSLMODE_VERIFY_CA, false},
	{"verify-full", HR_SSLMODE_VERIFY_FULL, false},
	{NULL, 0, false}
};

/* Kept for the life of the backend, so API connections are reused. */
static hr_http *backend_http = NULL;

/* The refusal of check_api_key, as its error's message reads. */
#define API_KEY_REFUSAL "heroku.api_key may only be set in a session"

/* The core's refusal of a superuser-only setting to others (guc.c). */
#define SET_DENIED_ID "permission denied to set parameter \"%s\""

/* check_api_key just refused a value: its error is on the way. */
static bool api_key_refused = false;

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * heroku.api_key only from a session (SET, or the client's options): a value
 * stored by ALTER ROLE/DATABASE ... SET (validated as PGC_S_TEST), ALTER
 * SYSTEM or a configuration file is readable by every role in the catalogs
 * or reaches the server log on reload.  The message never shows the value,
 * and hide_api_key_statement keeps the statement that carried it out of
 * the log.
 */
static bool
check_api_key(char **newval, void **extra, GucSource source)
{
	api_key_refused = false;
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	switch (source)
	{
		case PGC_S_DEFAULT:
		case PGC_S_CLIENT:
		case PGC_S_OVERRIDE:
		case PGC_S_INTERACTIVE:
		case PGC_S_SESSION:
			return true;
		default:
			api_key_refused = true;
			GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
			GUC_check_errmsg(API_KEY_REFUSAL);
			GUC_check_errdetail("A value stored with ALTER ROLE, ALTER DATABASE, ALTER SYSTEM, a function's SET clause or a configuration file would be readable in the catalogs or the server log.");
			GUC_check_errhint("Put the token in a file readable only by the server's OS user and set heroku.api_key_file.");
			return false;
	}
}

/* Whether msg names the setting heroku.api_key (not heroku.api_key_file). */
static bool
names_api_key(const char *msg)
{
	const char *p;

	for (p = msg; (p = strstr(p, "heroku.api_key")) != NULL; p++)
	{
		char		next = p[strlen("heroku.api_key")];

		if (!isalnum((unsigned char) next) && next != '_')
			return true;
	}
	return false;
}

/*
 * emit_log_hook: the error refusing a value of heroku.api_key (our check
 * hook's, or the core's to a role that may not set it) would log the
 * statement that carried the token (log_min_error_statement), and a
 * statement run from a function shows in its CONTEXT: both are left out,
 * for the server log and the client alike.  Only those two errors: the
 * check hook's is recognised by the flag it set just before it and by its
 * code and text, the core's by its message's untranslated form and the
 * setting's name.
 */
static void
hide_api_key_statement(ErrorData *edata)
{
	bool		ours = api_key_refused &&
		edata->sqlerrcode == ERRCODE_INVALID_PARAMETER_VALUE &&
		edata->message != NULL && strcmp(edata->message, API_KEY_REFUSAL) == 0;
	bool		denied = edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE &&
		edata->message_id != NULL && strcmp(edata->message_id, SET_DENIED_ID) == 0 &&
		edata->message != NULL && names_api_key(edata->message);

	if (ours || edata->elevel >= ERROR)
		api_key_refused = false;
	if (ours || denied)
	{
		edata->hide_stmt = true;
		edata->context = NULL;
		edata->internalquery = NULL;
		edata->internalpos = 0;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* The API settings' GUCs, and the hook that keeps a refused token out of the log. */
void
hr_pg_backend_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = hide_api_key_statement;

	DefineCustomStringVariable("heroku.api_url",
							   "Base URL of the Heroku Platform API.",
							   "Plain http is accepted only for a loopback host.",
							   &hr_api_url,
							   HR_DEFAULT_API_URL,
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);

	/*
	 * Hidden from anyone but superusers; still, a value written in
	 * postgresql.conf reaches the server log on reload (see README).
	 */
	DefineCustomStringVariable("heroku.api_key",
							   "Heroku API token, for a superuser's session; prefer heroku.api_key_file.",
							   NULL,
							   &hr_api_key,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_api_key, NULL, NULL);

	DefineCustomStringVariable("heroku.api_key_file",
							   "File whose first line is the Heroku API token (read on use).",
							   NULL,
							   &hr_api_key_file,
							   "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("heroku.netrc_file",
							   "netrc file to take the token from; empty means $HOME/.netrc of the server's OS user.",
							   NULL,
							   &hr_netrc_file,
							   "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("heroku.ca_file",
							   "CA bundle for verifying the Heroku API's certificate; empty means the system store.",
							   NULL,
							   &hr_ca_file,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("heroku.timeout",
							"Time limit for one Heroku API request, connecting included.",
							NULL,
							&hr_timeout_ms,
							HR_DEFAULT_TIMEOUT_MS, 1, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("heroku.min_sslmode",
							 "Weakest sslmode a resolved connection string may carry.",
							 "A weaker or missing sslmode in the URL is raised to this.",
							 &hr_min_sslmode,
							 HR_SSLMODE_REQUIRE,
							 sslmode_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("heroku.allow_local_hosts",
							 "Accept resolved URLs whose host is on this machine (loopback, link-local, localhost).",
							 "Off: a config var's value cannot point dblink or postgres_fdw at a local server. For local test set-ups only.",
							 &hr_allow_local_hosts,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* Polled by the core while a request is in flight. */
static int
backend_interrupted(void *arg)
{
	(void) arg;
	return QueryCancelPending || ProcDiePending;
}

/* The settings in force for a request from this backend. */
void
hr_pg_settings(hr_settings *s)
{
	hr_settings_init(s);
	s->api_url = hr_api_url;
	s->api_key = hr_api_key;
	s->api_key_file = hr_api_key_file;
	s->netrc_file = hr_netrc_file;
	s->ca_file = hr_ca_file;
	s->timeout_ms = hr_timeout_ms;
	s->min_sslmode = (hr_sslmode) hr_min_sslmode;
	s->interrupt = backend_interrupted;
	s->interrupt_arg = NULL;
}

static int
sqlstate_for(const hr_error *err)
{
	switch (err->code)
	{
		case HR_EINVAL:
		case HR_EBADURL:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case HR_ENOTOKEN:
		case HR_EAUTH:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case HR_EFORBIDDEN:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case HR_ENOTFOUND:
			return ERRCODE_UNDEFINED_OBJECT;
		case HR_ERATELIMIT:
			return ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
		case HR_EUNAVAILABLE:
			return ERRCODE_CONNECTION_FAILURE;
		case HR_EPROTOCOL:
			return ERRCODE_PROTOCOL_VIOLATION;
		case HR_ENOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case HR_ECANCELED:
			return ERRCODE_QUERY_CANCELED;
		case HR_ETOKENFILE:
		case HR_OK:
			break;
	}
	return ERRCODE_INTERNAL_ERROR;
}

/*
 * ereport a core error.  The texts were written by the core, which never
 * puts a token or a password in them.
 */
void
hr_pg_report(int elevel, const hr_error *err)
{
	int			code;

	if (err->code == HR_ECANCELED)
	{
		/* raise the real cause: cancel, statement_timeout or termination */
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling statement due to user request")));
	}
	if (err->code == HR_ETOKENFILE)
	{
		/* as errcode_for_file_access() would, outside an ereport */
		if (err->sys_errno == ENOENT || err->sys_errno == ENOTDIR)
			code = ERRCODE_UNDEFINED_FILE;
		else if (err->sys_errno == EACCES || err->sys_errno == EPERM)
			code = ERRCODE_INSUFFICIENT_PRIVILEGE;
		else
			code = ERRCODE_IO_ERROR;
	}
	else
		code = sqlstate_for(err);

	if (err->code == HR_ENOTOKEN && err->hint[0] == 'G')
	{
		/* the core's hint speaks of options; name the server's settings */
		ereport(elevel,
				(errcode(code),
				 errmsg_internal("%s", err->message),
				 err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
				 errhint("Set heroku.api_key_file, HEROKU_API_KEY in the server's environment, a netrc entry for the API host (heroku.netrc_file or ~/.netrc of the server's OS user), or heroku.api_key in this session.  \"heroku auth:token\" prints the Heroku CLI's token; \"heroku login\" writes netrc only with HEROKU_NETRC_WRITE=true.")));
	}
	else
		ereport(elevel,
				(errcode(code),
				 errmsg_internal("%s", err->message),
				 err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
				 err->hint[0] ? errhint("%s", err->hint) : 0));
	pg_unreachable();
}

/* This backend's libcurl handle, made on first use. */
hr_http *
hr_pg_http(void)
{
	if (backend_http == NULL)
	{
		hr_error	err;

		memset(&err, 0, sizeof(err));
		if (hr_global_init(&err) != HR_OK)
			hr_pg_report(ERROR, &err);
		backend_http = hr_http_new();
		if (backend_http == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
	}
	return backend_http;
}

/* A text argument as a C string; NULL raises 22004 naming the argument. */
char *
hr_pg_text_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* A name argument as a C string; NULL raises 22004 naming the argument. */
char *
hr_pg_name_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", name)));
	return pstrdup(NameStr(*PG_GETARG_NAME(argno)));
}
