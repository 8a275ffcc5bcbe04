/*-------------------------------------------------------------------------
 *
 * hr_watch_usage.c
 *		heroku-pg-resolve watch --help: every option and every exit status
 *		(the same as doc/heroku-pg-resolve.1 lists).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>

#include "hr_watch_opts.h"

/* The watch mode's --help. */
void
hr_watch_usage(void)
{
	printf("%s watch keeps service-file entries and clusters up to date with Heroku\n"
		   "config vars, until SIGTERM or SIGINT.  Changes are noticed by the release\n"
		   "feed (polling GET /apps) and by Heroku app webhooks (--listen); the URL\n"
		   "always comes from the API.\n\n", HR_WATCH_PROG);
	printf("Usage:\n"
		   "  %s watch [OPTION]... --service NAME=APP[:CONFIG_VAR]... [--db CONNINFO]...\n\n",
		   HR_WATCH_PROG);
	printf("What to keep up to date:\n"
		   "      --service NAME=APP[:CONFIG_VAR]  section [NAME] of the service file holds\n"
		   "                           APP's CONFIG_VAR (default DATABASE_URL); repeatable\n"
		   "      --service-file FILE  service file (default $PGSERVICEFILE, else\n"
		   "                           ~/.pg_service.conf)\n"
		   "      --app APP            watch APP for the clusters only; repeatable\n"
		   "      --db CONNINFO        a cluster to notify: SELECT heroku_resolver_refresh(app)\n"
		   "                           for each changed app; repeatable\n"
		   "      --env-file FILE      keep NAME_URL='postgres://...' lines, one per\n"
		   "                           --service, for systemd's EnvironmentFile= and dotenv\n"
		   "      --on-change CMD      run CMD with /bin/sh -c once every sink holds a\n"
		   "                           changed URL; HEROKU_PG_RESOLVE_CHANGED names the\n"
		   "                           services; one run at a time, failures retried\n"
		   "      --on-change-timeout TIME  kill CMD's process group after TIME\n"
		   "                           (default 30s)\n"
		   "      --metrics-listen HOST:PORT  Prometheus metrics at GET /metrics\n"
		   "                           (see doc/watcher-sinks.md)\n"
		   "      --service-option NAME:KEY=VALUE  mutual TLS for service NAME (Private\n"
		   "                           and Shield databases): KEY sslcert, sslkey,\n"
		   "                           sslrootcert (absolute paths, checked at start) or\n"
		   "                           sslmode (stronger only: require < verify-ca <\n"
		   "                           verify-full; a root makes it at least verify-ca);\n"
		   "                           written into the service entry and the env file\n"
		   "                           URL; a client certificate within 30 days of its\n"
		   "                           end is logged daily and is a metric; repeatable\n");
	printf("      --pgbouncer FILE     a [databases] file for PgBouncer's %%include, one\n"
		   "                           line per --service (mode 0640, its group kept)\n"
		   "      --pgbouncer-admin CONNINFO  PgBouncer's admin console: RELOAD, then KILL\n"
		   "                           and RESUME of each changed database after a write;\n"
		   "                           its server_tls_sslmode must be require or stronger,\n"
		   "                           and with --service-option its global server_tls_*\n"
		   "                           files those of the service (see doc/mtls.md)\n\n");
	printf("How changes are noticed:\n"
		   "      --interval TIME      poll the release feed every TIME: 0 (never), or\n"
		   "                           with a unit: 500ms, 30s, 1min, 1h (default 30s)\n"
		   "      --listen HOST:PORT   receive Heroku webhooks on POST /webhooks/heroku;\n"
		   "                           GET /healthz answers the state as JSON\n"
		   "      --webhook-secret-file FILE  the webhooks' secret (needed with --listen)\n"
		   "      --webhook-authorization-file FILE  the Authorization the webhooks send\n"
		   "      --max-connections-per-address N  connections from one client address\n"
		   "                           at once, 1 to %d (default %d; of %d in all)\n"
		   "      --request-timeout TIME  a request (webhook or metrics) must be whole\n"
		   "                           (headers and body) within TIME, else it is cut\n"
		   "                           (default %lds)\n"
		   "      --syslog             log to syslog instead of standard error\n\n",
		   HR_WATCH_MAX_CONNECTIONS, HR_WATCH_DEFAULT_PER_ADDRESS, HR_WATCH_MAX_CONNECTIONS,
		   HR_WATCH_DEFAULT_REQUEST_TIMEOUT_MS / 1000);
	printf("Options:\n"
		   "      --api-url URL, --api-key-file FILE, --netrc-file FILE, --ca-file FILE,\n"
		   "      --timeout TIME, --min-sslmode MODE   as for the other modes\n"
		   "  -h, --help               show this help and exit\n"
		   "  -V, --version            show the version and exit\n\n");
	printf("SIGHUP reads the token and the webhook secret files again; SIGTERM or SIGINT\n"
		   "ends the watcher (exit status 0) once the write in progress is done.\n\n");
	printf("Exit status:\n"
		   "    0  stopped by SIGTERM or SIGINT (or --help, --version)\n"
		   "   64  usage error: bad arguments, invalid app, config var or service name\n"
		   "   65  at start: a config var's value is not a usable postgres:// URL\n"
		   "   66  at start: no such app, or the config var is not set or is null\n"
		   "   70  internal error (out of memory)\n"
		   "   71  cannot listen on --listen or --metrics-listen HOST:PORT (such as a\n"
		   "       port in use), or cannot start a thread\n"
		   "   73  at start: cannot read or write the service file, the env file or\n"
		   "       --pgbouncer FILE\n"
		   "   77  not authorized: no token, token rejected (401), no access (402, 403)\n"
		   "   78  configuration error: bad option value, unreadable token, secret,\n"
		   "       netrc or CA file, invalid API URL; PgBouncer's server_tls_sslmode\n"
		   "       weaker than require; a bad --service-option (a missing or unreadable\n"
		   "       file, a key open to others, a certificate without its key or not\n"
		   "       matching it, an unknown KEY, a weaker sslmode, NAME not a --service);\n"
		   "       with --pgbouncer, PgBouncer's server_tls_* files not the service's\n"
		   "An unavailable API at start (69 in the other modes) does not stop the watcher:\n"
		   "it keeps the old entries and retries.\n");
}
