/*-------------------------------------------------------------------------
 *
 * hr_watch_db.c
 *		The clusters heroku-pg-resolve watch notifies (--db CONNINFO): one
 *		thread each, so that a cluster that is down or slow never holds up
 *		the others, the service files or the webhooks.  For each changed
 *		app a thread runs SELECT heroku_resolver_refresh(app) over a kept
 *		libpq connection; a failure is retried after 1 s, then 2, 4, ... up
 *		to a minute, until it succeeds.
 *
 * No role of the cluster can get its own function run by the watcher: each
 * new connection first pins search_path to pg_catalog, pg_temp, then finds
 * the extension's schema in pg_extension, and the function is called by
 * that schema and its argument types (text, text).  A schema named after
 * the connecting role ("$user", first in the default search_path) or any
 * overload in the extension's schema is never reached.
 *
 * Each cluster keeps, per app, the newest change generation it was handed
 * (wanted), the newest it applied (acked) and the newest that failed
 * (failed), so that a webhook can wait for its change to reach every
 * cluster.  Everything here but the libpq calls runs with hr_watch.mu held.
 * No conninfo is ever shown: it may hold a password; a cluster is named by
 * host, port and database.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "libpq-fe.h"

#include "hr_watch_db.h"

#define DB_CONNECT_TIMEOUT "5"

typedef struct hr_watch_db
{
	hr_watch   *w;
	int			index;
	const char *conninfo;
	char		label[200];
	pthread_t	thread;
	int			running;
	PGconn	   *conn;
	char	   *call;			/* the qualified SELECT, for conn */
	unsigned long *wanted;
	unsigned long *acked;
	unsigned long *failed;
	double		next_try;		/* after a failure */
	long		backoff_ms;
	int			up;				/* the last attempt worked */
	time_t		last_ok;
	unsigned long refreshes;
} hr_watch_db;

struct hr_watch_dbs
{
	int			n;
	hr_watch_db *db;
};

/*
 * "host:port/dbname" of a conninfo, for messages; 0 if it does not parse
 * (libpq's message is not shown: it may quote the string).
 */
int
hr_watch_db_label(const char *conninfo, char *dst, size_t dstlen)
{
	PQconninfoOption *opts;
	PQconninfoOption *o;
	const char *host = NULL;
	const char *port = NULL;
	const char *db = NULL;
	char	   *msg = NULL;

	opts = PQconninfoParse(conninfo, &msg);
	if (opts == NULL)
	{
		PQfreemem(msg);
		return 0;
	}
	for (o = opts; o->keyword; o++)
	{
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "host") == 0 || (host == NULL && strcmp(o->keyword, "hostaddr") == 0))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
	}
	snprintf(dst, dstlen, "%.80s:%.10s/%.60s", host ? host : "(default host)",
			 port ? port : "5432", db ? db : "(default database)");
	PQconninfoFree(opts);
	return 1;
}

/* Apps this cluster still has to be told about; with mu held. */
static int
has_work(hr_watch_db *d, double now)
{
	int			i;

	if (now < d->next_try)
		return 0;
	for (i = 0; i < d->w->napps; i++)
		if (d->wanted[i] > d->acked[i])
			return 1;
	return 0;
}

/* The first line of a failed result's message (or the connection's). */
static void
result_error(PGconn *conn, PGresult *res, char *why, size_t whylen)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;

	if (m == NULL || m[0] == '\0')
		m = PQerrorMessage(conn);
	snprintf(why, whylen, "%.*s", (int) strcspn(m, "\n"), m);
}

/*
 * On a new connection: pin search_path (by a qualified call), then build
 * the call of heroku_resolver_refresh qualified with the extension's
 * schema, as found in pg_extension.  0, or -1 and why.
 */
static int
prepare_call(hr_watch_db *d, char *why, size_t whylen)
{
	PGresult   *res;
	char	   *schema;
	size_t		len;

	res = PQexec(d->conn, "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		result_error(d->conn, res, why, whylen);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	res = PQexec(d->conn,
				 "SELECT n.nspname FROM pg_catalog.pg_extension e"
				 " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
				 " WHERE e.extname OPERATOR(pg_catalog.=) 'heroku_resolver'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			snprintf(why, whylen, "the extension heroku_resolver is not installed in this database");
		else
			result_error(d->conn, res, why, whylen);
		PQclear(res);
		return -1;
	}
	schema = PQescapeIdentifier(d->conn, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
	PQclear(res);
	if (schema == NULL)
	{
		result_error(d->conn, NULL, why, whylen);
		return -1;
	}
	len = strlen(schema) + 128;
	free(d->call);
	d->call = malloc(len);
	if (d->call != NULL)
		snprintf(d->call, len, "SELECT %s.heroku_resolver_refresh($1::pg_catalog.text, NULL::pg_catalog.text)",
				 schema);
	PQfreemem(schema);
	if (d->call == NULL)
	{
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* A kept connection, made again when it was lost.  NULL: see why. */
static PGconn *
connection(hr_watch_db *d, char *why, size_t whylen)
{
	const char *kw[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *val[] = {DB_CONNECT_TIMEOUT, "heroku-pg-resolve watch", d->conninfo, NULL};

	if (d->conn && PQstatus(d->conn) == CONNECTION_OK)
		return d->conn;
	if (d->conn)
		PQfinish(d->conn);
	/* the conninfo (dbname, expanded) comes after the defaults: it wins */
	d->conn = PQconnectdbParams(kw, val, 1);
	if (d->conn && PQstatus(d->conn) == CONNECTION_OK)
	{
		if (prepare_call(d, why, whylen) == 0)
			return d->conn;
		PQfinish(d->conn);
		d->conn = NULL;
		return NULL;
	}
	snprintf(why, whylen, "%.*s", (int) strcspn(d->conn ? PQerrorMessage(d->conn) : "out of memory", "\n"),
			 d->conn ? PQerrorMessage(d->conn) : "out of memory");
	PQfinish(d->conn);
	d->conn = NULL;
	return NULL;
}

/*
 * SELECT <schema>.heroku_resolver_refresh(app, NULL): 0 and *changed, or
 * -1 and why.
 */
static int
refresh(hr_watch_db *d, const char *app, long *changed, char *why, size_t whylen)
{
	const char *params[1] = {app};
	PGconn	   *conn = connection(d, why, whylen);
	PGresult   *res;

	if (conn == NULL)
		return -1;
	res = PQexecParams(conn, d->call, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* no such function or schema: the extension moved; look again */
		int			moved = state && (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0);

		result_error(conn, res, why, whylen);
		PQclear(res);
		if (moved || PQstatus(conn) != CONNECTION_OK)
		{
			PQfinish(conn);
			d->conn = NULL;
		}
		return -1;
	}
	*changed = PQgetisnull(res, 0, 0) ? 0 : strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static void *
db_thread(void *arg)
{
	hr_watch_db *d = arg;
	hr_watch   *w = d->w;
	int			napps = w->napps;
	unsigned long *todo = calloc((size_t) napps, sizeof(unsigned long));
	int			i;

	if (todo == NULL)
	{
		hr_watch_log(w, "cluster %s: out of memory; its notifications are lost", d->label);
		return NULL;
	}
	pthread_mutex_lock(&w->mu);
	while (!w->stop)
	{
		double		now = hr_watch_now();
		int			failed = 0;

		if (!has_work(d, now))
		{
			hr_watch_wait(w, now < d->next_try ? d->next_try : now + 3600);
			continue;
		}
		memcpy(todo, d->wanted, (size_t) napps * sizeof(unsigned long));
		pthread_mutex_unlock(&w->mu);

		for (i = 0; i < napps && !w->stop && !failed; i++)
		{
			char		why[300];
			long		changed = 0;
			double		t0 = hr_watch_now();
			int			rc;

			if (todo[i] == 0)
				continue;
			pthread_mutex_lock(&w->mu);
			if (todo[i] <= d->acked[i])
			{
				pthread_mutex_unlock(&w->mu);
				continue;
			}
			pthread_mutex_unlock(&w->mu);
			rc = refresh(d, w->apps[i].ident, &changed, why, sizeof(why));
			pthread_mutex_lock(&w->mu);
			if (rc == 0)
			{
				d->acked[i] = todo[i];
				d->up = 1;
				d->backoff_ms = 0;
				d->last_ok = time(NULL);
				d->refreshes++;
				hr_watch_log(w, "cluster %s: heroku_resolver_refresh('%s') = %ld, %.0f ms",
							 d->label, w->apps[i].ident, changed,
							 (hr_watch_now() - t0) * 1000);
			}
			else
			{
				failed = 1;
				d->failed[i] = todo[i];
				d->up = 0;
				d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : 1000;
				if (d->backoff_ms > HR_WATCH_MAX_BACKOFF_MS)
					d->backoff_ms = HR_WATCH_MAX_BACKOFF_MS;
				d->next_try = hr_watch_now() + d->backoff_ms / 1000.0;
				hr_watch_log(w, "cluster %s: could not notify app %s: %s; retrying in %ld s",
							 d->label, w->apps[i].ident, why, d->backoff_ms / 1000);
			}
			pthread_cond_broadcast(&w->cond);
			pthread_mutex_unlock(&w->mu);
		}
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	free(todo);
	if (d->conn)
		PQfinish(d->conn);
	d->conn = NULL;
	free(d->call);
	d->call = NULL;
	return NULL;
}

int
hr_watch_dbs_start(hr_watch *w)
{
	hr_watch_dbs *dbs = calloc(1, sizeof(hr_watch_dbs));
	int			i;

	if (dbs == NULL)
		return -1;
	w->dbs = dbs;
	dbs->db = calloc((size_t) (w->ndbs ? w->ndbs : 1), sizeof(hr_watch_db));
	if (dbs->db == NULL)
		return -1;
	for (i = 0; i < w->ndbs; i++)
	{
		hr_watch_db *d = &dbs->db[i];

		d->w = w;
		d->index = i;
		d->conninfo = w->dbs_conninfo[i];
		d->up = 1;
		if (!hr_watch_db_label(d->conninfo, d->label, sizeof(d->label)))
			snprintf(d->label, sizeof(d->label), "#%d", i + 1);
		d->wanted = calloc((size_t) w->napps, sizeof(unsigned long));
		d->acked = calloc((size_t) w->napps, sizeof(unsigned long));
		d->failed = calloc((size_t) w->napps, sizeof(unsigned long));
		if (d->wanted == NULL || d->acked == NULL || d->failed == NULL)
			return -1;
		dbs->n++;
	}
	for (i = 0; i < dbs->n; i++)
	{
		if (pthread_create(&dbs->db[i].thread, NULL, db_thread, &dbs->db[i]) != 0)
			return -1;
		dbs->db[i].running = 1;
	}
	return 0;
}

void
hr_watch_dbs_notify(hr_watch *w, int app, unsigned long gen)
{
	int			i;

	for (i = 0; w->dbs && i < w->dbs->n; i++)
		if (w->dbs->db[i].wanted[app] < gen)
			w->dbs->db[i].wanted[app] = gen;
	pthread_cond_broadcast(&w->cond);
}

/*
 * Has generation gen of app reached every cluster?  1 yes, 0 not yet, -1
 * it failed on one of them (which goes on retrying by itself).
 */
int
hr_watch_dbs_state(hr_watch *w, int app, unsigned long gen)
{
	int			i;
	int			state = 1;

	for (i = 0; w->dbs && i < w->dbs->n; i++)
	{
		hr_watch_db *d = &w->dbs->db[i];

		if (d->acked[app] >= gen)
			continue;
		if (d->failed[app] >= gen)
			return -1;
		state = 0;
	}
	return state;
}

/* Each cluster's state for /healthz: no conninfo, only the label. */
void
hr_watch_dbs_health(hr_watch *w, struct json_object *array)
{
	int			i;
	int			j;

	for (i = 0; w->dbs && i < w->dbs->n; i++)
	{
		hr_watch_db *d = &w->dbs->db[i];
		struct json_object *o = json_object_new_object();
		int			pending = 0;

		for (j = 0; j < w->napps; j++)
			if (d->wanted[j] > d->acked[j])
				pending++;
		json_object_object_add(o, "cluster", json_object_new_string(d->label));
		json_object_object_add(o, "up", json_object_new_boolean(d->up));
		json_object_object_add(o, "apps_pending", json_object_new_int(pending));
		json_object_object_add(o, "refreshes", json_object_new_int64((int64_t) d->refreshes));
		json_object_array_add(array, o);
	}
}

void
hr_watch_dbs_stop(hr_watch *w)
{
	hr_watch_dbs *dbs = w->dbs;
	int			left = 0;
	int			i;

	if (dbs == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	for (i = 0; i < dbs->n; i++)
	{
		hr_watch_db *d = &dbs->db[i];

		if (d->running)
		{
			struct timespec ts;

			/* a cluster in the middle of a connection attempt gets its timeout */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 10;
			if (pthread_timedjoin_np(d->thread, NULL, &ts) != 0)
			{
				/* left behind, still using its state: the process exits anyway */
				hr_watch_log(w, "cluster %s: still busy at exit, left behind", d->label);
				left = 1;
				continue;
			}
			d->running = 0;
		}
	}
	if (left)
		return;
	for (i = 0; i < dbs->n; i++)
	{
		free(dbs->db[i].wanted);
		free(dbs->db[i].acked);
		free(dbs->db[i].failed);
	}
	free(dbs->db);
	free(dbs);
	w->dbs = NULL;
}
