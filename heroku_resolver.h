/*-------------------------------------------------------------------------
 *
 * heroku_resolver.h
 *		The resolver core: ask the Heroku Platform API for an app's config
 *		var and turn the postgres:// URL it holds into a libpq conninfo.
 *
 * This header includes no PostgreSQL server header.  The extension, the
 * client library (libheroku_resolver) and the fuzz harnesses all build the
 * same core files against it.  Everything the core allocates comes from
 * malloc() and is released with the matching hr_*_free() function; the core
 * never longjmps, never prints, and never puts a token or a password into an
 * error text.
 *
 * Thread safety: an hr_http handle (and the hr_error/hr_result it fills)
 * must be used by one thread at a time.  Different threads may use
 * different handles at once once hr_global_init() has run.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HEROKU_RESOLVER_H
#define HEROKU_RESOLVER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* Default Heroku Platform API endpoint. */
#define HR_DEFAULT_API_URL		"https://api.heroku.com"
/* Default whole-request timeout, connect included. */
#define HR_DEFAULT_TIMEOUT_MS	5000
/* Answers larger than this are refused. */
#define HR_MAX_BODY_BYTES		(1024 * 1024)

/* What went wrong; the extension maps each code to one SQLSTATE. */
typedef enum hr_code
{
	HR_OK = 0,
	HR_EINVAL,					/* bad argument: app, config var, option */
	HR_ENOTOKEN,				/* no API token configured anywhere */
	HR_ETOKENFILE,				/* a configured token/netrc file is unreadable */
	HR_EAUTH,					/* the API answered 401 */
	HR_EFORBIDDEN,				/* the API answered 402 or 403 */
	HR_ENOTFOUND,				/* no such app, or config var absent/null */
	HR_ERATELIMIT,				/* the API answered 429 */
	HR_EUNAVAILABLE,			/* connect, timeout, TLS failure, 5xx */
	HR_EPROTOCOL,				/* unusable answer: not JSON, too big, 3xx... */
	HR_EBADURL,					/* the value is not a usable postgres URI */
	HR_ECANCELED,				/* the interrupt callback asked to stop */
	HR_ENOMEM					/* out of memory */
} hr_code;

/* An error as a code plus texts fit to show a user (never a secret). */
typedef struct hr_error
{
	hr_code		code;
	long		http_status;	/* 0 when no HTTP answer was had */
	int			sys_errno;		/* errno for HR_ETOKENFILE, else 0 */
	long		retry_after;	/* seconds, from a 429's Retry-After; -1 if none */
	char		message[320];	/* one line, lowercase start, names app/var */
	char		detail[1024];	/* library or API text, may be empty */
	char		hint[512];		/* may be empty */
} hr_error;

/* Minimum sslmode a resolved connection string gets. */
typedef enum hr_sslmode
{
	HR_SSLMODE_REQUIRE = 0,
	HR_SSLMODE_VERIFY_CA,
	HR_SSLMODE_VERIFY_FULL
} hr_sslmode;

/*
 * Settings for one resolution.  Every pointer may be NULL (or "") for the
 * default.  The strings are borrowed for the duration of the call only.
 */
typedef struct hr_settings
{
	const char *api_url;		/* default HR_DEFAULT_API_URL */
	const char *api_key;		/* token given directly */
	const char *api_key_file;	/* file whose first line is the token */
	const char *netrc_file;		/* default $HOME/.netrc */
	const char *ca_file;		/* default: system CA store */
	long		timeout_ms;		/* <= 0: HR_DEFAULT_TIMEOUT_MS */
	hr_sslmode	min_sslmode;
	const char *user_agent;		/* default "heroku_resolver/<version>" */
	int			use_env;		/* consult HEROKU_API_KEY (1) or not (0) */

	/*
	 * Polled at least every 20 ms while a request is in flight; a non-zero
	 * return abandons the request with HR_ECANCELED.  Must not longjmp.
	 */
	int			(*interrupt) (void *arg);
	void	   *interrupt_arg;
} hr_settings;

/* Set *s to the defaults (use_env = 1). */
extern void hr_settings_init(hr_settings *s);

/*
 * One config var's value as fetched from the API, with what the API said
 * about it.  value is NULL after a 304 (not modified).
 */
typedef struct hr_fetch
{
	char	   *value;			/* the URL (secret); NULL after a 304 */
	char	   *config_var;		/* the name actually used (X or X_URL) */
	char	   *etag;			/* the answer's ETag, or NULL */
	long		http_status;	/* 200 or 304 */
	long		ratelimit_remaining;	/* RateLimit-Remaining, -1 if absent */
} hr_fetch;

/* A URL parsed into libpq keyword/value pairs, sslmode already ensured. */
typedef struct hr_conninfo
{
	int			n;
	char	  **keywords;
	char	  **values;			/* "password" holds a secret */
} hr_conninfo;

/* A complete resolution: the parsed options and both string forms. */
typedef struct hr_result
{
	hr_conninfo params;
	char	   *conninfo;		/* keyword='value' ... (secret) */
	char	   *url;			/* postgres://...?sslmode=... (secret) */
	char	   *config_var;		/* the name actually used */
	char	   *etag;
	long		ratelimit_remaining;
} hr_result;

/* Opaque per-thread HTTP state: a kept libcurl handle (keep-alive). */
typedef struct hr_http hr_http;

/* Library set-up; call once before threads start (idempotent). */
extern hr_code hr_global_init(hr_error *err);

extern hr_http *hr_http_new(void);
extern void hr_http_free(hr_http *http);

/* Checks: app name or UUID; config var name ([A-Za-z0-9_]+, <= 255). */
extern int	hr_valid_app(const char *app);
extern int	hr_valid_config_var(const char *name);

/*
 * Find the API token: settings->api_key, settings->api_key_file,
 * HEROKU_API_KEY (if use_env), then the netrc entry whose machine is the
 * API URL's host.  *token is malloc'd; free it with hr_free_secret().
 * *source (may be NULL) gets a static description of where it came from.
 */
extern hr_code hr_find_token(const hr_settings *s, char **token,
							 const char **source, hr_error *err);

/*
 * Parse netrc text; on a match for machine (or a "default" entry), set
 * *password (malloc'd, may be NULL if the entry has none) and return 1.
 */
extern int	hr_netrc_lookup(const char *text, size_t len, const char *machine,
							char **login, char **password);

/*
 * GET {api_url}/apps/{app}/config-vars and pick config_var (or
 * config_var + "_URL").  If etag is non-NULL it is sent as If-None-Match
 * and a 304 answer returns HR_OK with out->value == NULL.
 */
extern hr_code hr_fetch_config_var(hr_http *http, const hr_settings *s,
								   const char *app, const char *config_var,
								   const char *etag, hr_fetch *out,
								   hr_error *err);
extern void hr_fetch_free(hr_fetch *f);

/*
 * Pick config_var (or config_var_URL) out of a config-vars JSON body.
 * *value and *used_name are malloc'd.  app is used in messages only.
 */
extern hr_code hr_config_vars_pick(const char *body, size_t len,
								   const char *app, const char *config_var,
								   char **value, char **used_name,
								   hr_error *err);

/*
 * Parse a postgres:// or postgresql:// URI with libpq, ensure sslmode is
 * at least min_sslmode, and check host and port.  app/config_var are used
 * in messages only.
 */
extern hr_code hr_url_parse(const char *url, hr_sslmode min_sslmode,
							const char *app, const char *config_var,
							hr_conninfo *out, hr_error *err);
extern void hr_conninfo_free(hr_conninfo *ci);

/* The value of keyword in ci, or NULL. */
extern const char *hr_conninfo_get(const hr_conninfo *ci, const char *keyword);

/* keyword='value' string with libpq quoting; malloc'd, NULL on ENOMEM. */
extern char *hr_conninfo_to_string(const hr_conninfo *ci);

/* postgres:// URL with every part percent-encoded; malloc'd. */
extern char *hr_conninfo_to_url(const hr_conninfo *ci);

/* A copy of url with its password replaced by "***"; malloc'd. */
extern char *hr_mask_url(const char *url);

/* Fetch, parse and format in one go. */
extern hr_code hr_resolve(hr_http *http, const hr_settings *s,
						  const char *app, const char *config_var,
						  hr_result *out, hr_error *err);
extern void hr_result_free(hr_result *r);

/* Build an hr_result from a URL already fetched (used by caches). */
extern hr_code hr_result_from_url(const char *url, hr_sslmode min_sslmode,
								  const char *app, const char *config_var,
								  hr_result *out, hr_error *err);

/*
 * Mutual TLS (Private and Shield databases reached from outside Heroku):
 * the client certificate (chain), its private key and the root
 * certificate that verifies the server, as files.  They come from the
 * operator, never from a config var.  Every pointer may be NULL or "".
 */
typedef struct hr_tls_files
{
	const char *sslcert;
	const char *sslkey;
	const char *sslrootcert;
} hr_tls_files;

/*
 * Check the files as libpq will: absolute paths this process can read, a
 * certificate and a key together, a key open to no one else (0600 or
 * less; 0640 if owned by root).  On failure HR_EINVAL, with err->sys_errno
 * ENOENT or ENOTDIR (missing), EACCES (unreadable), EPERM (key open to
 * others) or EINVAL (other); the message names the file.  f may be NULL.
 */
extern hr_code hr_tls_check(const hr_tls_files *f, hr_error *err);

/*
 * Add the files to a resolution (its pairs, conninfo and URL); with a root
 * certificate sslmode becomes at least verify-ca.  f may be NULL.
 */
extern hr_code hr_result_add_tls(hr_result *r, const hr_tls_files *f,
								 hr_error *err);

/* Zero then free a string that held a secret. */
extern void hr_free_secret(char *s);

/* "require", "verify-ca", "verify-full"; -1 for anything else. */
extern int	hr_sslmode_from_name(const char *name);
extern const char *hr_sslmode_name(hr_sslmode mode);

/*
 * Parse a timeout: a bare number of milliseconds, or with a "ms" or "s"
 * suffix.  Returns -1 when invalid or not in 1..INT_MAX ms.
 */
extern long hr_parse_timeout_ms(const char *text);

/* Short name of a code, e.g. "HR_EAUTH" -> "authentication failed". */
extern const char *hr_code_name(hr_code code);

/* The version of the resolver core ("1.0"). */
extern const char *hr_version(void);

/* --- client library (libheroku_resolver) --------------------------------
 *
 * For programs outside the server: link with
 *		cc prog.c $(pkg-config --cflags --libs heroku_resolver)
 * Every hr_* function above is part of the library too.
 *
 * Thread safety: call hr_global_init() once before starting threads; after
 * that, threads may resolve and connect at the same time as long as each
 * uses its own hr_http handle (or passes NULL for a temporary one) and its
 * own hr_settings, hr_result and hr_error.  libpq connections follow
 * libpq's usual rule: one thread at a time per PGconn.
 */

/* libpq's PGconn, so that this header needs no libpq header. */
struct pg_conn;

/*
 * Resolve app's config_var (NULL: "DATABASE_URL") and return the libpq
 * conninfo ("host='...' ... sslmode='require'") or the postgres:// URL,
 * sslmode raised to s->min_sslmode.  The string holds a password: free it
 * with hr_free_secret().  NULL on failure, with err filled.  http may be
 * NULL for a handle made and freed within the call.
 */
extern char *hr_resolve_conninfo(hr_http *http, const hr_settings *s,
								 const char *app, const char *config_var,
								 hr_error *err);
extern char *hr_resolve_url(hr_http *http, const hr_settings *s,
							const char *app, const char *config_var,
							hr_error *err);

/*
 * Resolve and connect (PQconnectdbParams), healing a stale credential: if
 * the connection fails (authentication refused, host gone, ...), resolve
 * again and retry once.
 *
 * last (may be NULL) keeps a resolution between calls: when it holds one,
 * that is tried first without asking the API, as a long-running program
 * reconnecting would; when it is empty (zeroed), the API is asked first.
 * Either way, on return it holds the resolution used last (free it with
 * hr_result_free() when done).
 *
 * *retried (may be NULL) is set to 1 if a second attempt was made, else 0.
 *
 * Returns NULL, with err filled, when the API could not give a usable
 * value (or out of memory).  Otherwise returns the PGconn of the last
 * attempt, like PQconnectdb(): check PQstatus(), read PQerrorMessage() when
 * it is CONNECTION_BAD, and PQfinish() it in every case.
 */
extern struct pg_conn *hr_connect(hr_http *http, const hr_settings *s,
								  const char *app, const char *config_var,
								  hr_result *last, int *retried,
								  hr_error *err);

/*
 * The same three with mutual TLS files (tls may be NULL): checked with
 * hr_tls_check() before the API is asked, and added to every answer.
 */
extern char *hr_resolve_conninfo_tls(hr_http *http, const hr_settings *s,
									 const char *app, const char *config_var,
									 const hr_tls_files *tls, hr_error *err);
extern char *hr_resolve_url_tls(hr_http *http, const hr_settings *s,
								const char *app, const char *config_var,
								const hr_tls_files *tls, hr_error *err);
extern struct pg_conn *hr_connect_tls(hr_http *http, const hr_settings *s,
									  const char *app, const char *config_var,
									  const hr_tls_files *tls, hr_result *last,
									  int *retried, hr_error *err);

#ifdef __cplusplus
}
#endif

#endif							/* HEROKU_RESOLVER_H */
