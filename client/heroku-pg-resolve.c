/*-------------------------------------------------------------------------
 *
 * heroku-pg-resolve.c
 *		Command-line front end of the resolver: print an app's database
 *		conninfo or URL, write it to a libpq service file, or run a command
 *		with DATABASE_URL set to a fresh value.
 *
 *		heroku-pg-resolve [options] APP [CONFIG_VAR]
 *		heroku-pg-resolve --url APP [CONFIG_VAR]
 *		heroku-pg-resolve --service NAME [--service-file F] APP [CONFIG_VAR]
 *		heroku-pg-resolve --exec APP [CONFIG_VAR] -- COMMAND [ARGS...]
 *		heroku-pg-resolve watch [options]	(client/hr_watch*.c)
 *
 * Errors: one line on stderr, then a hint line; never a token or a
 * password (the core's texts carry none).  Exit codes follow sysexits.h
 * and are listed in --help and in doc/heroku-pg-resolve.1.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "heroku_resolver.h"
#include "hr_exec.h"
#include "hr_service.h"
#include "hr_watch.h"

#define PROG "heroku-pg-resolve"
#define DEFAULT_CONFIG_VAR "DATABASE_URL"

/* exit codes beyond sysexits.h: those of a shell that cannot run a command */
#define EXIT_CANNOT_EXECUTE 126
#define EXIT_COMMAND_NOT_FOUND 127

#define OOM_HINT "The system is short of memory; retry later."

typedef enum run_mode
{
	MODE_CONNINFO,
	MODE_URL,
	MODE_SERVICE,
	MODE_EXEC
} run_mode;

static const struct option long_options[] = {
	{"url", no_argument, NULL, 'u'},
	{"service", required_argument, NULL, 's'},
	{"service-file", required_argument, NULL, 'f'},
	{"exec", no_argument, NULL, 'e'},
	{"api-url", required_argument, NULL, 'a'},
	{"api-key-file", required_argument, NULL, 'k'},
	{"netrc-file", required_argument, NULL, 'n'},
	{"ca-file", required_argument, NULL, 'c'},
	{"timeout", required_argument, NULL, 't'},
	{"min-sslmode", required_argument, NULL, 'm'},
	{"sslcert", required_argument, NULL, 'C'},
	{"sslkey", required_argument, NULL, 'K'},
	{"sslrootcert", required_argument, NULL, 'R'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

static void
usage(void)
{
	printf("%s resolves a Heroku app's database config var (DATABASE_URL by default)\n"
		   "through the Heroku Platform API, with sslmode=require at least.\n\n", PROG);
	printf("Usage:\n"
		   "  %s [OPTION]... APP [CONFIG_VAR]                     print the conninfo\n"
		   "  %s --url [OPTION]... APP [CONFIG_VAR]               print the URL\n"
		   "  %s --service NAME [OPTION]... APP [CONFIG_VAR]      write section [NAME]\n"
		   "                                                    of the service file\n"
		   "  %s --exec [OPTION]... APP [CONFIG_VAR] -- COMMAND [ARG]...\n"
		   "                                                    run COMMAND with\n"
		   "                                                    DATABASE_URL set\n"
		   "  %s watch [OPTION]...%*skeep service entries and\n"
		   "                                                    clusters up to date, and\n"
		   "                                                    env files, a command,\n"
		   "                                                    metrics (\"watch --help\")\n\n",
		   PROG, PROG, PROG, PROG, PROG, 32, "");
	printf("Modes:\n"
		   "      --url                print the postgres:// URL instead of the conninfo\n"
		   "      --service NAME       write/replace section [NAME] of the service file\n"
		   "      --service-file FILE  service file (default $PGSERVICEFILE, else\n"
		   "                           ~/.pg_service.conf)\n"
		   "      --exec               run COMMAND (after \"--\") with DATABASE_URL set to\n"
		   "                           the URL; the exit status is COMMAND's\n\n");
	printf("Options:\n"
		   "      --api-url URL        Heroku API (default $HEROKU_API_URL, else\n"
		   "                           %s)\n"
		   "      --api-key-file FILE  file whose first line is the API token\n"
		   "      --netrc-file FILE    netrc file (default ~/.netrc)\n"
		   "      --ca-file FILE       CA bundle for the API's certificate\n"
		   "      --timeout TIME       API request time limit: milliseconds, or with\n"
		   "                           \"ms\" or \"s\" (default %d ms)\n"
		   "      --min-sslmode MODE   require (default), verify-ca or verify-full\n"
		   "      --sslcert FILE       client certificate (chain) for mutual TLS\n"
		   "      --sslkey FILE        its private key (mode 0600 or less)\n"
		   "      --sslrootcert FILE   root certificate of the server; sslmode becomes\n"
		   "                           verify-ca at least (Private and Shield databases:\n"
		   "                           heroku data:mtls:certificates:download)\n"
		   "  -h, --help               show this help and exit\n"
		   "  -V, --version            show the version and exit\n\n",
		   HR_DEFAULT_API_URL, HR_DEFAULT_TIMEOUT_MS);
	printf("The API token is taken from --api-key-file, else $HEROKU_API_KEY, else the\n"
		   "netrc entry whose machine is the API host (api.heroku.com by default),\n"
		   "white space around it dropped.  `heroku auth:token` prints the Heroku CLI's\n"
		   "token (`heroku login` writes netrc only with HEROKU_NETRC_WRITE=true).\n\n");
	printf("Exit status:\n"
		   "    0  success (with --exec: COMMAND's exit status)\n"
		   "   64  usage error: bad arguments, invalid app, config var or service name\n"
		   "   65  bad data: the API's answer is unusable, or the config var's value is\n"
		   "       not a usable postgres:// URL (or cannot go into a service file)\n"
		   "   66  not found: no such app, or the config var is not set or is null\n"
		   "   69  API unavailable: cannot connect, timeout, TLS failure, HTTP 5xx, or\n"
		   "       rate limited (HTTP 429)\n"
		   "   70  internal error (out of memory)\n"
		   "   71  watch: cannot listen on --listen or --metrics-listen HOST:PORT\n"
		   "       (such as a port in use), or start a thread\n"
		   "   73  cannot read or write the service file (watch: or --env-file)\n"
		   "   74  cannot write the output\n"
		   "   77  not authorized: no token, token rejected (401), no access (402, 403)\n"
		   "   78  configuration error: bad option value, unreadable token, netrc or CA\n"
		   "       file, invalid API URL; a --sslcert, --sslkey or --sslrootcert file\n"
		   "       missing, unreadable or not absolute, a key readable by others\n"
		   "  126  --exec: COMMAND cannot be run\n"
		   "  127  --exec: COMMAND not found\n");
}

static int
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: error: ", PROG);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nhint: Try \"%s --help\".\n", PROG);
	return EX_USAGE;
}

/* Exit code for a resolver error: the one mapping, shared with watch. */
static int
exit_code_for(const hr_error *err)
{
	return hr_watch_exit_code(err->code);
}

/*
 * Report a resolver error: the core's message (and detail) on one line,
 * then a hint fit for this command rather than for the server.
 */
static int
report(const hr_error *err, const hr_settings *s, const char *api_host)
{
	char		hint[600];

	hint[0] = '\0';
	switch (err->code)
	{
		case HR_ENOTOKEN:
			snprintf(hint, sizeof(hint),
					 "Give --api-key-file FILE, set HEROKU_API_KEY, or add \"machine %s login EMAIL password TOKEN\" to ~/.netrc (or --netrc-file FILE).  `heroku auth:token` prints the Heroku CLI's token; `heroku login` writes netrc only with HEROKU_NETRC_WRITE=true.",
					 api_host);
			break;
		case HR_EUNAVAILABLE:
			if (err->http_status >= 500)
				snprintf(hint, sizeof(hint), "The Heroku API is failing; retry later.");
			else if (err->hint[0])	/* the core gives a hint for a timeout */
				snprintf(hint, sizeof(hint),
						 "Raise --timeout (now %ld ms), or check that the API answers.",
						 s->timeout_ms);
			else
				snprintf(hint, sizeof(hint),
						 "Check the API URL (--api-url or HEROKU_API_URL), the network, and for https the CA (--ca-file).");
			break;
		case HR_EINVAL:
			snprintf(hint, sizeof(hint), "Check --api-url or HEROKU_API_URL.");
			break;
		case HR_ETOKENFILE:
			snprintf(hint, sizeof(hint), "Check the file's path and permissions.");
			break;
		default:
			break;
	}
	if (hint[0] == '\0' && err->hint[0])
		snprintf(hint, sizeof(hint), "%s", err->hint);
	if (hint[0] == '\0')
	{
		switch (err->code)
		{
			case HR_EFORBIDDEN:
				snprintf(hint, sizeof(hint), "The token's account cannot read this app's config vars.");
				break;
			case HR_ENOTFOUND:
				snprintf(hint, sizeof(hint),
						 "Check the app name (heroku apps) and its config vars (heroku config -a APP).");
				break;
			case HR_EPROTOCOL:
				snprintf(hint, sizeof(hint),
						 "Check that the API URL (--api-url or HEROKU_API_URL) is the Heroku Platform API.");
				break;
			case HR_EBADURL:
				snprintf(hint, sizeof(hint),
						 "Name a config var that holds a Heroku Postgres URL, such as DATABASE_URL.");
				break;
			default:
				snprintf(hint, sizeof(hint), "See \"%s --help\".", PROG);
				break;
		}
	}
	if (err->detail[0])
		hr_cli_fail(hint, "%s (%s)", err->message, err->detail);
	else
		hr_cli_fail(hint, "%s", err->message);
	return exit_code_for(err);
}

/*
 * The option getopt_long stopped at, for a message: a short option as
 * "-x", a long one up to any '=' (what follows might be a secret).
 */
static const char *
option_name(const char *arg, int opt)
{
	static char buf[64];

	if (opt > 0 && opt < 256 && arg[0] == '-' && arg[1] != '-')
		snprintf(buf, sizeof(buf), "-%c", opt);
	else
		snprintf(buf, sizeof(buf), "%.*s", (int) strcspn(arg, "="), arg);
	return buf;
}

/* Does the long option (without "--", before any '=') take a value? */
static int
option_takes_value(const char *name)
{
	size_t		n = strcspn(name, "=");
	const struct option *o;

	if (name[n] == '=')
		return 0;				/* --opt=value: the value is attached */
	for (o = long_options; o->name; o++)
		if (o->has_arg == required_argument && strncmp(o->name, name, n) == 0)
			return 1;
	return 0;
}

/* Index of the "--" that ends our own arguments, or argc. */
static int
find_double_dash(int argc, char **argv)
{
	int			i;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--") == 0)
			return i;
		if (strncmp(argv[i], "--", 2) == 0 && option_takes_value(argv[i] + 2))
			i++;				/* skip the option's value */
	}
	return argc;
}

/* Host of the API URL for messages ("api.heroku.com"), best effort. */
static void
api_host_of(const char *url, char *dst, size_t dstlen)
{
	const char *p = strstr(url, "://");
	size_t		n;

	p = p ? p + 3 : url;
	if (*p == '[')
	{
		p++;
		n = strcspn(p, "]");
	}
	else
		n = strcspn(p, ":/?#@");
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static int
write_service(const char *file, const char *name, const hr_result *r)
{
	hr_service_error serr;
	hr_service_status st;
	char	   *path = file ? strdup(file) : hr_service_default_file();

	if (path == NULL)
	{
		hr_cli_fail("Give --service-file FILE or set PGSERVICEFILE.",
				  "could not find the home directory for ~/.pg_service.conf");
		return EX_CANTCREAT;
	}
	st = hr_service_file_update(path, name, r->params.n,
								(const char *const *) r->params.keywords,
								(const char *const *) r->params.values, &serr);
	free(path);
	switch (st)
	{
		case HR_SERVICE_OK:
			return EX_OK;
		case HR_SERVICE_EBADNAME:
			hr_cli_fail("Use letters, digits, \"_\", \"-\" or \".\".", "%s", serr.message);
			return EX_USAGE;
		case HR_SERVICE_EBADVALUE:
			hr_cli_fail("Use the conninfo or --url output instead of a service file.",
					  "%s", serr.message);
			return EX_DATAERR;
		case HR_SERVICE_ENOMEM:
			hr_cli_fail(OOM_HINT, "%s", serr.message);
			return EX_SOFTWARE;
		case HR_SERVICE_EIO:
			break;
	}
	hr_cli_fail(serr.hint[0] ? serr.hint
			  : "Choose another file with --service-file or PGSERVICEFILE.",
			  "%s", serr.message);
	return EX_CANTCREAT;
}

/*
 * --exec: COMMAND gets DATABASE_URL, and not the account-wide API token,
 * which reads every app's config vars: HEROKU_API_KEY is removed (whatever
 * the token's source was).  The rest of the environment is passed on.
 */
static int
run_command(char **cmd, const char *url)
{
	int			e;

	/* every copy of it: glibc's unsetenv() fails only on an invalid name */
	(void) unsetenv("HEROKU_API_KEY");
	if (setenv("DATABASE_URL", url, 1) != 0)
	{
		hr_cli_fail(OOM_HINT, "could not set DATABASE_URL: %s", strerror(errno));
		return EX_SOFTWARE;
	}
	e = hr_exec(cmd);
	hr_cli_fail(e == ENOENT ? "Check the command's name and PATH." : "Check the command's permissions.",
			  "could not run \"%s\": %s", cmd[0], strerror(e));
	return e == ENOENT ? EXIT_COMMAND_NOT_FOUND : EXIT_CANNOT_EXECUTE;
}

int
main(int argc, char **argv)
{
	run_mode	m = MODE_CONNINFO;
	int			nmodes = 0;
	const char *service = NULL;
	const char *service_file = NULL;
	const char *app;
	const char *config_var = DEFAULT_CONFIG_VAR;
	const char *timeout_text = NULL;
	const char *sslmode_text = NULL;
	const char *api_url_env = getenv("HEROKU_API_URL");
	char	  **cmd = NULL;
	char		api_host[256];
	char		ua[64];
	char	   *positional[2];
	int			npositional = 0;
	int			dd;
	int			c;
	int			rc;
	hr_settings s;
	hr_error	err;
	hr_http    *http;
	hr_result	r;
	hr_tls_files tls = {NULL, NULL, NULL};

	/* heroku-pg-resolve watch ...: client/hr_watch*.c ("-- watch" resolves an app "watch") */
	if (argc > 1 && strcmp(argv[1], "watch") == 0)
		return hr_watch_main(argc - 1, argv + 1);

	hr_settings_init(&s);
	if (api_url_env && api_url_env[0])
		s.api_url = api_url_env;

	/* our arguments end at the first "--"; with --exec, COMMAND follows */
	dd = find_double_dash(argc, argv);
	if (dd < argc)
		argv[dd] = NULL;

	opterr = 0;					/* our own messages, in our own format */
	while ((c = getopt_long(dd, argv, ":hV", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'u':
				m = MODE_URL;
				nmodes++;
				break;
			case 's':
				m = MODE_SERVICE;
				service = optarg;
				nmodes++;
				break;
			case 'f':
				service_file = optarg;
				break;
			case 'e':
				m = MODE_EXEC;
				nmodes++;
				break;
			case 'a':
				s.api_url = optarg;
				break;
			case 'k':
				s.api_key_file = optarg;
				break;
			case 'n':
				s.netrc_file = optarg;
				break;
			case 'c':
				s.ca_file = optarg;
				break;
			case 't':
				timeout_text = optarg;
				break;
			case 'm':
				sslmode_text = optarg;
				break;
			case 'C':
				tls.sslcert = optarg;
				break;
			case 'K':
				tls.sslkey = optarg;
				break;
			case 'R':
				tls.sslrootcert = optarg;
				break;
			case 'h':
				usage();
				return fflush(stdout) == 0 && !ferror(stdout) ? EX_OK : EX_IOERR;
			case 'V':
				printf("%s (heroku_resolver) %s\n", PROG, hr_version());
				return fflush(stdout) == 0 && !ferror(stdout) ? EX_OK : EX_IOERR;
			case ':':
				return usage_error("option \"%s\" needs a value",
								   option_name(argv[optind - 1], optopt));
			default:
				return usage_error("unknown option \"%s\"",
								   option_name(argv[optind - 1], optopt));
		}
	}
	while (optind < dd)
	{
		if (npositional == 2)
			return usage_error("too many arguments, starting with \"%s\"", argv[optind]);
		positional[npositional++] = argv[optind++];
	}
	if (dd < argc)
	{
		if (m == MODE_EXEC)
			cmd = argv + dd + 1;
		else
		{
			/* without --exec, "--" only ends the options */
			int			i;

			for (i = dd + 1; i < argc; i++)
			{
				if (npositional == 2)
					return usage_error("too many arguments, starting with \"%s\"", argv[i]);
				positional[npositional++] = argv[i];
			}
		}
	}

	if (nmodes > 1)
		return usage_error("%s", "--url, --service and --exec exclude one another");
	if (npositional == 0)
		return usage_error("%s", "no app given");
	if (service_file && m != MODE_SERVICE)
		return usage_error("%s", "--service-file needs --service NAME");
	if (m == MODE_EXEC && (cmd == NULL || cmd[0] == NULL))
		return usage_error("%s", "--exec needs \"-- COMMAND [ARG]...\" after the app");
	app = positional[0];
	if (npositional == 2)
		config_var = positional[1];
	if (!hr_valid_app(app))
	{
		hr_cli_fail("An app name is 3 to 30 characters of a-z, 0-9 and \"-\", starting with a letter; an app id is a UUID.",
				  "invalid Heroku app name \"%.60s\"", app);
		return EX_USAGE;
	}
	if (!hr_valid_config_var(config_var))
	{
		hr_cli_fail("A config var name is letters, digits and \"_\", such as DATABASE_URL.",
				  "invalid config var name \"%.60s\"", config_var);
		return EX_USAGE;
	}
	if (service && !hr_service_valid_name(service))
	{
		hr_cli_fail("Use letters, digits, \"_\", \"-\" or \".\".",
				  "invalid service name \"%.60s\"", service);
		return EX_USAGE;
	}

	/* option values: configuration errors */
	if (timeout_text)
	{
		s.timeout_ms = hr_parse_timeout_ms(timeout_text);
		if (s.timeout_ms < 0)
		{
			hr_cli_fail("Give milliseconds (5000), or a number with \"ms\" or \"s\" (5s).",
					  "invalid --timeout value \"%.40s\"", timeout_text);
			return EX_CONFIG;
		}
	}
	if (sslmode_text)
	{
		int			sm = hr_sslmode_from_name(sslmode_text);

		if (sm < 0)
		{
			hr_cli_fail("Use require, verify-ca or verify-full.",
					  "invalid --min-sslmode value \"%.40s\"", sslmode_text);
			return EX_CONFIG;
		}
		s.min_sslmode = (hr_sslmode) sm;
	}
	if (s.ca_file && access(s.ca_file, R_OK) != 0)
	{
		hr_cli_fail("Give a readable PEM file of CA certificates.",
				  "could not read CA file \"%s\": %s", s.ca_file, strerror(errno));
		return EX_CONFIG;
	}

	memset(&err, 0, sizeof(err));
	if (hr_tls_check(&tls, &err) != HR_OK)
	{
		hr_cli_fail(err.hint[0] ? err.hint : "Give absolute paths of readable files: the three of heroku data:mtls:certificates:download.",
					"%s", err.message);
		return EX_CONFIG;
	}

	snprintf(ua, sizeof(ua), "%s/%s", PROG, hr_version());
	s.user_agent = ua;
	api_host_of(s.api_url ? s.api_url : HR_DEFAULT_API_URL, api_host, sizeof(api_host));

	memset(&err, 0, sizeof(err));
	if (hr_global_init(&err) != HR_OK)
		return report(&err, &s, api_host);
	http = hr_http_new();
	if (http == NULL)
	{
		hr_cli_fail(OOM_HINT, "out of memory");
		return EX_SOFTWARE;
	}
	rc = hr_resolve(http, &s, app, config_var, &r, &err);
	hr_http_free(http);
	if (rc == HR_OK && (rc = hr_result_add_tls(&r, &tls, &err)) != HR_OK)
		hr_result_free(&r);
	if (rc != HR_OK)
		return report(&err, &s, api_host);

	switch (m)
	{
		case MODE_CONNINFO:
		case MODE_URL:
			printf("%s\n", m == MODE_URL ? r.url : r.conninfo);
			rc = EX_OK;
			if (fflush(stdout) != 0 || ferror(stdout))
			{
				hr_cli_fail("Check where the output goes.", "could not write the output: %s",
						  strerror(errno));
				rc = EX_IOERR;
			}
			break;
		case MODE_SERVICE:
			rc = write_service(service_file, service, &r);
			break;
		case MODE_EXEC:
			rc = run_command(cmd, r.url);
			break;
	}
	hr_result_free(&r);
	return rc;
}
