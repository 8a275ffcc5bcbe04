/*-------------------------------------------------------------------------
 *
 * hr_watch_opts.c
 *		heroku-pg-resolve watch: its options, their checks, the secrets it
 *		reads at start and on SIGHUP, and its start-up errors.  The exit
 *		statuses are those of the other modes (sysexits.h, mapped by
 *		hr_watch_exit_code in hr_watch_base.c), plus 71 when it cannot
 *		listen or start a thread; they are listed in --help and in
 *		doc/heroku-pg-resolve.1.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "hr_internal.h"
#include "hr_service.h"
#include "hr_watch_db.h"
#include "hr_watch_opts.h"
#include "hr_watch_sinks.h"
#include "hr_watch_pgbouncer.h"
#include "hr_watch_tls.h"

#define DEFAULT_INTERVAL_MS 30000
#define MAX_INTERVAL_MS (24L * 3600 * 1000)

static const struct option watch_options[] = {
	{"service", required_argument, NULL, 's'},
	{"service-file", required_argument, NULL, 'f'},
	{"app", required_argument, NULL, 'A'},
	{"db", required_argument, NULL, 'd'},
	{"interval", required_argument, NULL, 'i'},
	{"listen", required_argument, NULL, 'l'},
	{"webhook-secret-file", required_argument, NULL, 'S'},
	{"webhook-authorization-file", required_argument, NULL, 'Z'},
	{"max-connections-per-address", required_argument, NULL, 'P'},
	{"request-timeout", required_argument, NULL, 'R'},
	{"syslog", no_argument, NULL, 'y'},
	{"env-file", required_argument, NULL, 1001},
	{"on-change", required_argument, NULL, 1002},
	{"on-change-timeout", required_argument, NULL, 1003},
	{"metrics-listen", required_argument, NULL, 1004},
	{"service-option", required_argument, NULL, 1005},
	{"pgbouncer", required_argument, NULL, 'B'},
	{"pgbouncer-admin", required_argument, NULL, 'b'},
	{"api-url", required_argument, NULL, 'a'},
	{"api-key-file", required_argument, NULL, 'k'},
	{"netrc-file", required_argument, NULL, 'n'},
	{"ca-file", required_argument, NULL, 'c'},
	{"timeout", required_argument, NULL, 't'},
	{"min-sslmode", required_argument, NULL, 'm'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}
};

static int
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: error: ", HR_WATCH_PROG);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nhint: Try \"%s watch --help\".\n", HR_WATCH_PROG);
	return EX_USAGE;
}

/* An option as typed, up to any '=' (what follows might be a secret). */
static const char *
option_name(const char *arg)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%.*s", (int) strcspn(arg, "="), arg);
	return buf;
}

/*
 * "0", or a number with a unit: ms, s, min, h.  Milliseconds, or -1 when
 * invalid or over a day.
 */
long
hr_watch_parse_duration_ms(const char *text)
{
	char	   *end;
	double		v;
	double		unit;

	if (text == NULL || text[0] == '\0')
		return -1;
	if (strcmp(text, "0") == 0)
		return 0;
	if (!(text[0] >= '0' && text[0] <= '9'))
		return -1;
	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text)
		return -1;
	if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "s") == 0)
		unit = 1000;
	else if (strcmp(end, "min") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0)
		unit = 3600000;
	else
		return -1;
	v *= unit;
	if (v < 1 || v > (double) MAX_INTERVAL_MS)
		return v == 0 ? 0 : -1;
	return (long) v;
}

/* The app given as ident, added if new; its index, or -1 (ENOMEM). */
static int
app_index(hr_watch *w, const char *ident)
{
	hr_watch_app *grown;
	int			i;

	for (i = 0; i < w->napps; i++)
		if (strcmp(w->apps[i].ident, ident) == 0)
			return i;
	grown = realloc(w->apps, (size_t) (w->napps + 1) * sizeof(hr_watch_app));
	if (grown == NULL)
		return -1;
	w->apps = grown;
	memset(&w->apps[w->napps], 0, sizeof(hr_watch_app));
	w->apps[w->napps].ident = strdup(ident);
	if (w->apps[w->napps].ident == NULL)
		return -1;
	w->apps[w->napps].last_ok = 1;
	return w->napps++;
}

/* --service NAME=APP[:CONFIG_VAR]: 0, or an exit status. */
static int
add_service(hr_watch *w, const char *spec)
{
	const char *eq = strchr(spec, '=');
	char	   *app;
	char	   *var;
	char	   *colon;
	char		name[256];
	hr_watch_entry *grown;
	int			i;
	int			idx;

	if (eq == NULL || eq == spec || (size_t) (eq - spec) >= sizeof(name))
		return usage_error("--service takes NAME=APP or NAME=APP:CONFIG_VAR, not \"%.80s\"", spec);
	memcpy(name, spec, (size_t) (eq - spec));
	name[eq - spec] = '\0';
	if (!hr_service_valid_name(name))
	{
		hr_cli_fail("Use letters, digits, \"_\", \"-\" or \".\".",
					  "invalid service name \"%.60s\"", name);
		return EX_USAGE;
	}
	for (i = 0; i < w->nentries; i++)
		if (strcmp(w->entries[i].service, name) == 0)
			return usage_error("service \"%.60s\" is given twice", name);
	app = strdup(eq + 1);
	if (app == NULL)
		return EX_SOFTWARE;
	colon = strchr(app, ':');
	var = colon ? colon + 1 : "DATABASE_URL";
	if (colon)
		*colon = '\0';
	if (!hr_valid_app(app))
	{
		hr_cli_fail("An app name is 3 to 30 characters of a-z, 0-9 and \"-\", starting with a letter; an app id is a UUID.",
					  "invalid Heroku app name \"%.60s\"", app);
		free(app);
		return EX_USAGE;
	}
	if (!hr_valid_config_var(var))
	{
		hr_cli_fail("A config var name is letters, digits and \"_\", such as DATABASE_URL.",
					  "invalid config var name \"%.60s\"", var);
		free(app);
		return EX_USAGE;
	}
	idx = app_index(w, app);
	grown = realloc(w->entries, (size_t) (w->nentries + 1) * sizeof(hr_watch_entry));
	if (idx < 0 || grown == NULL)
	{
		free(app);
		return EX_SOFTWARE;
	}
	w->entries = grown;
	memset(&w->entries[w->nentries], 0, sizeof(hr_watch_entry));
	w->entries[w->nentries].service = strdup(name);
	w->entries[w->nentries].config_var = strdup(var);
	w->entries[w->nentries].app = idx;
	free(app);
	if (w->entries[w->nentries].service == NULL || w->entries[w->nentries].config_var == NULL)
		return EX_SOFTWARE;
	w->apps[idx].nentries++;
	w->nentries++;
	return 0;
}

/*
 * The token (same lookup as the other modes), the webhook secret and the
 * expected Authorization.  At start an error is printed and its exit
 * status returned; later (SIGHUP) it is logged and the old values kept.
 */
int
hr_watch_load_secrets(hr_watch *w, int at_start)
{
	char	   *token = NULL;
	char	   *secret = NULL;
	char	   *auth = NULL;
	hr_error	err;
	hr_code		rc;

	memset(&err, 0, sizeof(err));
	rc = hr_find_token(&w->s, &token, NULL, &err);
	if (rc == HR_OK && w->secret_file)
	{
		rc = hr_read_first_line(w->secret_file, "webhook secret file", &secret, &err);
		if (rc == HR_OK && secret[0] == '\0')
			rc = hr_error_set(&err, HR_ETOKENFILE, "webhook secret file \"%s\" is empty",
							  w->secret_file);
	}
	if (rc == HR_OK && w->auth_file)
	{
		rc = hr_read_first_line(w->auth_file, "webhook authorization file", &auth, &err);
		if (rc == HR_OK && auth[0] == '\0')
			rc = hr_error_set(&err, HR_ETOKENFILE, "webhook authorization file \"%s\" is empty",
							  w->auth_file);
	}
	if (rc != HR_OK)
	{
		hr_free_secret(token);
		hr_free_secret(secret);
		hr_free_secret(auth);
		if (!at_start)
		{
			hr_watch_log(w, "SIGHUP: %s; keeping the secrets read before", err.message);
			return 0;
		}
		if (rc == HR_ENOTOKEN)
		{
			char		hint[400];

			snprintf(hint, sizeof(hint),
					 "Give --api-key-file FILE, set HEROKU_API_KEY, or add \"machine %s login EMAIL password TOKEN\" to ~/.netrc (or --netrc-file FILE).  `heroku auth:token` prints the Heroku CLI's token; `heroku login` writes netrc only with HEROKU_NETRC_WRITE=true.",
					 w->api_host);
			hr_cli_fail(hint, "%s", err.message);
		}
		else
			hr_cli_fail("Check the file's path and permissions.", "%s", err.message);
		return hr_watch_exit_code(rc);
	}
	pthread_mutex_lock(&w->mu);
	hr_free_secret(w->token);
	hr_free_secret(w->secret);
	hr_free_secret(w->authorization);
	w->token = token;
	w->secret = secret;
	w->authorization = auth;
	pthread_mutex_unlock(&w->mu);
	if (!at_start)
		hr_watch_log(w, "SIGHUP: token%s read again", w->secret_file ? " and webhook secret" : "");
	return 0;
}

/* Host of the API URL for hints ("api.heroku.com"). */
static void
set_api_host(hr_watch *w)
{
	char	   *host = hr_url_host(w->s.api_url ? w->s.api_url : HR_DEFAULT_API_URL);

	snprintf(w->api_host, sizeof(w->api_host), "%s", host ? host : "api.heroku.com");
	free(host);
}

/* A HOST:PORT value; 1 when well formed. */
static int
host_port(const char *v)
{
	const char *colon = strrchr(v, ':');

	return colon && colon != v && colon[1] != '\0' &&
		strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
		atol(colon + 1) >= 1 && atol(colon + 1) <= 65535;
}

/* --env-file, --on-change-timeout, --metrics-listen: 0 or the exit status. */
static int
check_sink_values(hr_watch *w)
{
	if (w->on_change_timeout_ms < 100 || w->on_change_timeout_ms > 3600000)
	{
		hr_cli_fail("Give a number with ms, s or min, from 100ms to 1h (30s).",
					"invalid --on-change-timeout value");
		return EX_CONFIG;
	}
	if (w->metrics_listen && !host_port(w->metrics_listen))
	{
		hr_cli_fail("Give HOST:PORT, such as 127.0.0.1:9187 or [::1]:9187.",
					"invalid --metrics-listen value \"%.80s\"", w->metrics_listen);
		return EX_CONFIG;
	}
	return hr_watch_env_check(w);
}

/* Check the option values: 0 or the exit status. */
static int
check_values(hr_watch *w, const char *interval, const char *timeout,
			 const char *sslmode, const char *per_address, const char *request_timeout)
{
	const char *page = getenv("HEROKU_PG_RESOLVE_FEED_PAGE");
	const char *colon = w->listen ? strrchr(w->listen, ':') : NULL;
	hr_error	err;
	int			i;

	w->interval_ms = interval ? hr_watch_parse_duration_ms(interval) : DEFAULT_INTERVAL_MS;
	if (w->interval_ms < 0)
	{
		hr_cli_fail("Give 0, or a number with ms, s, min or h (500ms, 30s, 1min).",
					  "invalid --interval value \"%.40s\"", interval);
		return EX_CONFIG;
	}
	if (per_address)
	{
		char	   *end;
		long		n = strtol(per_address, &end, 10);

		if (end == per_address || *end != '\0' || n < 1 || n > HR_WATCH_MAX_CONNECTIONS)
		{
			hr_cli_fail("Give a number from 1 to 64.",
						  "invalid --max-connections-per-address value \"%.40s\"", per_address);
			return EX_CONFIG;
		}
		w->per_address = (int) n;
	}
	w->request_timeout_ms = request_timeout ? hr_watch_parse_duration_ms(request_timeout)
		: HR_WATCH_DEFAULT_REQUEST_TIMEOUT_MS;
	if (w->request_timeout_ms < 100 || w->request_timeout_ms > 3600000)
	{
		hr_cli_fail("Give a number with ms, s or min, from 100ms to 1h (10s).",
					  "invalid --request-timeout value \"%.40s\"", request_timeout);
		return EX_CONFIG;
	}
	if (timeout && (w->s.timeout_ms = hr_parse_timeout_ms(timeout)) < 0)
	{
		hr_cli_fail("Give milliseconds (5000), or a number with \"ms\" or \"s\" (5s).",
					  "invalid --timeout value \"%.40s\"", timeout);
		return EX_CONFIG;
	}
	if (sslmode)
	{
		int			sm = hr_sslmode_from_name(sslmode);

		if (sm < 0)
		{
			hr_cli_fail("Use require, verify-ca or verify-full.",
						  "invalid --min-sslmode value \"%.40s\"", sslmode);
			return EX_CONFIG;
		}
		w->s.min_sslmode = (hr_sslmode) sm;
	}
	if (w->s.ca_file && access(w->s.ca_file, R_OK) != 0)
	{
		hr_cli_fail("Give a readable PEM file of CA certificates.",
					  "could not read CA file \"%s\": %s", w->s.ca_file, strerror(errno));
		return EX_CONFIG;
	}
	if (w->listen && (colon == NULL || colon == w->listen || colon[1] == '\0' ||
					  strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
					  atol(colon + 1) < 1 || atol(colon + 1) > 65535))
	{
		hr_cli_fail("Give HOST:PORT, such as 127.0.0.1:8080 or [::1]:8080.",
					  "invalid --listen value \"%.80s\"", w->listen);
		return EX_CONFIG;
	}
	if ((i = check_sink_values(w)) != 0)
		return i;
	for (i = 0; i < w->ndbs; i++)
	{
		char		label[200];

		if (!hr_watch_db_label(w->dbs_conninfo[i], label, sizeof(label)))
		{
			/* the value is not shown: it may hold a password */
			fprintf(stderr, "%s: error: invalid --db value (number %d): not a libpq connection string\n"
					"hint: Give a conninfo such as \"host=db1 dbname=app\" or a postgres:// URI.\n",
					HR_WATCH_PROG, i + 1);
			return EX_CONFIG;
		}
	}
	memset(&err, 0, sizeof(err));
	if (hr_api_url_check(w->s.api_url ? w->s.api_url : HR_DEFAULT_API_URL, &err) != HR_OK)
	{
		hr_cli_fail("Check --api-url or HEROKU_API_URL.", "%s", err.message);
		return EX_CONFIG;
	}
	w->feed_page = 1000;
	if (page && page[0])
		w->feed_page = atoi(page);
	return 0;
}

int
hr_watch_configure(hr_watch *w, int argc, char **argv)
{
	const char *api_url_env = getenv("HEROKU_API_URL");
	const char *interval = NULL;
	const char *timeout = NULL;
	const char *sslmode = NULL;
	const char *service_file = NULL;
	const char *per_address = NULL;
	const char *request_timeout = NULL;
	const char *on_change_timeout = NULL;
	const char *pgbouncer = NULL;
	const char *pgbouncer_admin = NULL;
	int			c;
	int			rc;

	hr_settings_init(&w->s);
	if (api_url_env && api_url_env[0])
		w->s.api_url = api_url_env;
	w->dbs_conninfo = calloc((size_t) argc, sizeof(char *));
	w->service_opts = calloc((size_t) argc, sizeof(char *));
	if (w->dbs_conninfo == NULL || w->service_opts == NULL)
		return EX_SOFTWARE;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hV", watch_options, NULL)) != -1)
	{
		switch (c)
		{
			case 's':
				if ((rc = add_service(w, optarg)) != 0)
					return rc;
				break;
			case 'f':
				service_file = optarg;
				break;
			case 'A':
				if (!hr_valid_app(optarg))
				{
					hr_cli_fail("An app name is 3 to 30 characters of a-z, 0-9 and \"-\", starting with a letter; an app id is a UUID.",
								  "invalid Heroku app name \"%.60s\"", optarg);
					return EX_USAGE;
				}
				if (app_index(w, optarg) < 0)
					return EX_SOFTWARE;
				break;
			case 'd':
				w->dbs_conninfo[w->ndbs++] = optarg;
				break;
			case 'i':
				interval = optarg;
				break;
			case 'l':
				w->listen = optarg;
				break;
			case 'S':
				w->secret_file = optarg;
				break;
			case 'Z':
				w->auth_file = optarg;
				break;
			case 'P':
				per_address = optarg;
				break;
			case 'R':
				request_timeout = optarg;
				break;
			case 'y':
				w->use_syslog = 1;
				break;
			case 1001:
				w->env_file = optarg;
				break;
			case 1002:
				w->on_change = optarg;
				break;
			case 1003:
				on_change_timeout = optarg;
				break;
			case 1004:
				w->metrics_listen = optarg;
				break;
			case 1005:
				w->service_opts[w->nservice_opts++] = optarg;
				break;
			case 'B':
				pgbouncer = optarg;
				break;
			case 'b':
				pgbouncer_admin = optarg;
				break;
			case 'a':
				w->s.api_url = optarg;
				break;
			case 'k':
				w->s.api_key_file = optarg;
				break;
			case 'n':
				w->s.netrc_file = optarg;
				break;
			case 'c':
				w->s.ca_file = optarg;
				break;
			case 't':
				timeout = optarg;
				break;
			case 'm':
				sslmode = optarg;
				break;
			case 'h':
				hr_watch_usage();
				return fflush(stdout) == 0 && !ferror(stdout) ? EX_OK : EX_IOERR;
			case 'V':
				printf("%s (heroku_resolver) %s\n", HR_WATCH_PROG, hr_version());
				return fflush(stdout) == 0 && !ferror(stdout) ? EX_OK : EX_IOERR;
			case ':':
				return usage_error("option \"%s\" needs a value", option_name(argv[optind - 1]));
			default:
				return usage_error("unknown option \"%s\"", option_name(argv[optind - 1]));
		}
	}
	if (optind < argc)
		return usage_error("watch takes no arguments, but \"%.60s\" was given", argv[optind]);
	if (w->napps == 0)
		return usage_error("%s", "nothing to watch: give --service NAME=APP or --app APP");
	if (service_file && w->nentries == 0)
		return usage_error("%s", "--service-file needs --service NAME=APP");
	if (w->listen && w->secret_file == NULL)
		return usage_error("%s", "--listen needs --webhook-secret-file FILE");
	if (!w->listen && (w->secret_file || w->auth_file || per_address || request_timeout))
		return usage_error("%s", "--webhook-secret-file, --webhook-authorization-file, --max-connections-per-address and --request-timeout need --listen");
	if ((w->env_file || w->on_change) && w->nentries == 0)
		return usage_error("%s", "--env-file and --on-change need --service NAME=APP");
	if (on_change_timeout && !w->on_change)
		return usage_error("%s", "--on-change-timeout needs --on-change");
	w->on_change_timeout_ms = on_change_timeout ? hr_watch_parse_duration_ms(on_change_timeout)
		: HR_WATCH_ON_CHANGE_TIMEOUT_MS;
	w->per_address = HR_WATCH_DEFAULT_PER_ADDRESS;
	if ((rc = check_values(w, interval, timeout, sslmode, per_address, request_timeout)) != 0)
		return rc;
	/* the files before w->pgb is made: a refusal leaves nothing to free */
	if ((rc = hr_watch_tls_configure(w, pgbouncer, pgbouncer_admin)) != 0 ||
		(rc = hr_wpgb_configure(w, pgbouncer, pgbouncer_admin)) != 0)
		return rc;
	if (w->interval_ms == 0 && !w->listen)
		return usage_error("%s", "with --interval 0 only webhooks tell of a change: give --listen");
	if (w->nentries > 0)
	{
		w->service_file = service_file ? strdup(service_file) : hr_service_default_file();
		if (w->service_file == NULL)
		{
			hr_cli_fail("Give --service-file FILE or set PGSERVICEFILE.",
						  "could not find the home directory for ~/.pg_service.conf");
			return EX_CANTCREAT;
		}
	}
	snprintf(w->user_agent, sizeof(w->user_agent), "%s/%s", HR_WATCH_PROG, hr_version());
	w->s.user_agent = w->user_agent;
	set_api_host(w);
	rc = hr_watch_load_secrets(w, 1);
	return rc ? rc : -1;
}

void
hr_watch_free_config(hr_watch *w)
{
	int			i;

	for (i = 0; i < w->nentries; i++)
	{
		hr_free_secret(w->entries[i].url);
		free(w->entries[i].service);
		free(w->entries[i].config_var);
	}
	free(w->entries);
	for (i = 0; i < w->napps; i++)
	{
		free(w->apps[i].ident);
		free(w->apps[i].etag);
	}
	free(w->apps);
	free(w->dbs_conninfo);
	free(w->service_opts);
	free(w->service_file);
	hr_free_secret(w->token);
	hr_free_secret(w->secret);
	hr_free_secret(w->authorization);
	w->token = w->secret = w->authorization = NULL;
}
