/*
 * pgloop: one client of a pool in a loop, for the --pgbouncer test and
 * bench/sinks.sh.  It keeps one connection (as an application does) and
 * runs SELECT count(*) FROM orders every PERIOD_MS until DURATION_S is
 * over; a failed query is logged and the connection made again.  One line
 * per query on stdout: the wall-clock time in seconds and "ok" or "fail"
 * (never the server's message: it might name the user, not a password,
 * but a log has no use for it).
 *
 *	pgloop CONNINFO PERIOD_MS DURATION_S
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

/* Wall-clock seconds, to line up with the webhook's time. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	PGconn	   *c = NULL;
	double		end;
	long		period_ms;

	if (argc != 4)
	{
		fprintf(stderr, "usage: pgloop CONNINFO PERIOD_MS DURATION_S\n");
		return 64;
	}
	period_ms = atol(argv[2]);
	end = now() + atof(argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (now() < end)
	{
		double		t = now();
		int			ok = 0;

		if (c == NULL || PQstatus(c) != CONNECTION_OK)
		{
			PQfinish(c);
			c = PQconnectdb(argv[1]);
		}
		if (PQstatus(c) == CONNECTION_OK)
		{
			PGresult   *r = PQexec(c, "SELECT count(*) FROM orders");

			ok = PQresultStatus(r) == PGRES_TUPLES_OK;
			PQclear(r);
		}
		if (!ok)
		{
			PQfinish(c);
			c = NULL;
		}
		printf("%.3f %s\n", t, ok ? "ok" : "fail");
		usleep((useconds_t) (period_ms * 1000));
	}
	PQfinish(c);
	return 0;
}
