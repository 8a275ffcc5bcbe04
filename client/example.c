/*
 * example.c - connect to a Heroku app's database with libheroku_resolver.
 *
 *	cc -o example example.c $(pkg-config --cflags --libs heroku_resolver)
 *	HEROKU_API_KEY=... ./example APP [CONFIG_VAR]
 *
 * Connects, prints who it is connected as, then reconnects once per line
 * read on standard input, as a long-running program would: each time the
 * last resolution is tried first, and only when that fails (the password
 * was rotated, the database moved) is the API asked again, with one retry.
 *
 * The token comes from HEROKU_API_KEY or ~/.netrc; HEROKU_API_URL, if set,
 * replaces https://api.heroku.com.  For a Private or Shield database over
 * mutual TLS, HEROKU_PG_SSLCERT, HEROKU_PG_SSLKEY and HEROKU_PG_SSLROOTCERT
 * name the files of "heroku data:mtls:certificates:download".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <heroku_resolver.h>

/* Print one line about the connection; 0 if the query failed. */
static int
show(PGconn *conn, int retried)
{
	PGresult   *res;
	int			ok;

	res = PQexec(conn,
				 "SELECT current_user, current_database(), inet_server_port(), "
				 "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	if (ok)
		printf("user=%s database=%s port=%s ssl=%s retried=%d\n",
			   PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
			   PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), retried);
	else
		fprintf(stderr, "example: query failed: %s", PQerrorMessage(conn));
	fflush(stdout);
	PQclear(res);
	return ok;
}

int
main(int argc, char **argv)
{
	const char *app = argc > 1 ? argv[1] : NULL;
	const char *config_var = argc > 2 ? argv[2] : "DATABASE_URL";
	hr_settings settings;
	hr_error	err;
	hr_result	last;
	hr_http    *http;
	hr_tls_files tls;
	char		line[256];
	int			status = 0;

	if (app == NULL)
	{
		fprintf(stderr, "usage: example APP [CONFIG_VAR]\n");
		return 64;
	}
	hr_settings_init(&settings);
	settings.api_url = getenv("HEROKU_API_URL");	/* NULL: the default */
	tls.sslcert = getenv("HEROKU_PG_SSLCERT");	/* NULL: none */
	tls.sslkey = getenv("HEROKU_PG_SSLKEY");
	tls.sslrootcert = getenv("HEROKU_PG_SSLROOTCERT");

	/* once per process, before any thread starts */
	if (hr_global_init(&err) != HR_OK || (http = hr_http_new()) == NULL)
	{
		fprintf(stderr, "example: could not initialize libcurl\n");
		return 70;
	}
	memset(&last, 0, sizeof(last));
	do
	{
		int			retried;
		PGconn	   *conn = hr_connect_tls(http, &settings, app, config_var,
										  &tls, &last, &retried, &err);

		if (conn == NULL)
		{
			/* the API could not give a usable value */
			fprintf(stderr, "example: %s (%s)\n", err.message, hr_code_name(err.code));
			status = 1;
			break;
		}
		if (PQstatus(conn) != CONNECTION_OK)
		{
			fprintf(stderr, "example: connection failed (retried=%d): %s",
					retried, PQerrorMessage(conn));
			status = 1;
		}
		else if (!show(conn, retried))
			status = 1;
		PQfinish(conn);
	} while (status == 0 && fgets(line, sizeof(line), stdin) != NULL);

	hr_result_free(&last);
	hr_http_free(http);
	return status;
}
