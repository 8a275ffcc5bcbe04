/*-------------------------------------------------------------------------
 *
 * hr_watch_pgbouncer.c
 *		heroku-pg-resolve watch: the --pgbouncer sink.
 *
 * The watcher owns FILE: a [databases] section for PgBouncer's %include,
 * one line per --service entry ("NAME = host=... port=... dbname=...
 * user=... password=..."), every value single-quoted.  It is written with
 * the service file's writer (hr_safe_file_write: locked, atomic, links
 * checked), mode 0640, keeping the group an operator gave it, and only
 * once every entry has a value, so that a failing app never empties it.
 *
 * With --pgbouncer-admin, after each write a thread of its own tells the
 * admin console, as PgBouncer 1.18 needs (checked on it): RELOAD alone
 * serves only until one server login has failed with the old password;
 * then the pool waits server_login_retry (15 s) and neither RELOAD nor
 * RECONNECT ends that wait, but KILL "db" then RESUME "db" does.  RELOAD
 * answers success even when PgBouncer could not read the file, so SHOW
 * DATABASES must show every entry's host, port and user (checked before
 * the KILL, which would only say "no such database").  PgBouncer has
 * no per-database sslmode: SHOW CONFIG's server_tls_sslmode must be
 * require or stronger, and with --service-option its global server_tls_*
 * files the services' (hr_watch_tls.c, checked before any write), else the
 * watcher does not start (exit 78) and, found later, nothing is reloaded.  A failure is retried after 1 s,
 * 2 s, ... 60 s; the other sinks do not wait for it.  No password is
 * ever logged, nor the admin conninfo (only its host, port and dbname).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "hr_internal.h"
#include "hr_service.h"
#include "hr_watch_db.h"
#include "hr_watch_pgbouncer.h"
#include "hr_watch_tls.h"

/* the keywords of a [databases] line, in this order */
static const char *const pgb_keys[] = {"host", "port", "dbname", "user", "password"};
#define PGB_NKEYS 5

typedef struct pgb_line
{
	char	   *v[PGB_NKEYS];	/* NULL until the entry's app was read */
	int			dirty;			/* changed since PgBouncer was last told */
} pgb_line;

struct hr_wpgb
{
	char	   *file;
	const char *admin;			/* conninfo (may hold a password): never logged */
	char		label[200];		/* host:port/dbname of the admin console */
	pgb_line   *lines;			/* one per w->entries */

	/* under w->mu */
	unsigned long want;			/* changes handed over */
	unsigned long done;			/* changes PgBouncer has taken */
	int			ok;
	char		error[400];
	long		backoff_ms;
	double		retry_at;
	time_t		applied_at;
	pthread_t	thread;
	int			running;
	int			tls_checked;	/* SHOW CONFIG agreed at start */
};

/* --pgbouncer FILE, --pgbouncer-admin CONNINFO: 0 or the exit status. */
int
hr_wpgb_configure(hr_watch *w, const char *file, const char *admin)
{
	hr_wpgb    *p;
	char		label[200] = "";
	int			k;

	if (file == NULL && admin == NULL)
		return 0;
	if (file == NULL)
	{
		hr_cli_fail("Give --pgbouncer FILE too.", "--pgbouncer-admin needs --pgbouncer FILE");
		return EX_USAGE;
	}
	if (w->nentries == 0)
	{
		hr_cli_fail("Give --service NAME=APP: each becomes a [databases] line.",
					"--pgbouncer needs --service NAME=APP");
		return EX_USAGE;
	}
	for (k = 0; k < w->nentries; k++)
	{
		const char *s = w->entries[k].service;

		/* an ini key, and a name the admin console takes double-quoted */
		if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(s) ||
			s[0] == '.' || strcmp(s, "pgbouncer") == 0)
		{
			hr_cli_fail("With --pgbouncer, a service name is letters, digits, \"_\", \"-\" and \".\", and not \"pgbouncer\".",
						"service name \"%.60s\" cannot be a PgBouncer database name", s);
			return EX_USAGE;
		}
	}
	if (admin && !hr_watch_db_label(admin, label, sizeof(label)))
	{
		/* the value is not shown: it may hold a password */
		hr_cli_fail("Give a conninfo such as \"host=/run/postgresql port=6432 dbname=pgbouncer user=pgbouncer\".",
					"invalid --pgbouncer-admin value: not a libpq connection string");
		return EX_CONFIG;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->lines = calloc((size_t) w->nentries, sizeof(pgb_line))) == NULL ||
		(p->file = strdup(file)) == NULL)
	{
		if (p)
			free(p->lines);
		free(p);
		return EX_SOFTWARE;
	}
	p->admin = admin;
	p->ok = 1;
	memcpy(p->label, label, sizeof(label));
	w->pgb = p;
	return 0;
}

/* A value as PgBouncer's connection string parser reads it back. */
static void
put_quoted(hr_buf *b, const char *v)
{
	hr_buf_puts(b, "'");
	for (; *v; v++)
	{
		if (*v == '\'')
			hr_buf_puts(b, "'");	/* a quote doubled */
		hr_buf_append(b, v, 1);
	}
	hr_buf_puts(b, "'");
}

/* Entry k's connection options; with mu taken here. */
void
hr_wpgb_set(hr_watch *w, int k, int n, char *const *keywords, char *const *values)
{
	hr_wpgb    *p = w->pgb;
	pgb_line   *l;
	int			i;
	int			j;

	if (p == NULL)
		return;
	l = &p->lines[k];
	pthread_mutex_lock(&w->mu);
	for (j = 0; j < PGB_NKEYS; j++)
	{
		const char *v = "";

		for (i = 0; i < n; i++)
			if (strcmp(keywords[i], pgb_keys[j]) == 0)
				v = values[i];
		/* a line break would end the line: never written (the URL parser refuses it anyway) */
		if (strpbrk(v, "\r\n"))
			v = "";
		if (l->v[j] && strcmp(l->v[j], v) == 0)
			continue;
		hr_free_secret(l->v[j]);
		l->v[j] = hr_strdup(v);
		l->dirty = 1;
	}
	pthread_mutex_unlock(&w->mu);
}

/* After write_entries: hand the lines that changed to the thread. */
void
hr_wpgb_kick(hr_watch *w)
{
	hr_wpgb    *p = w->pgb;
	int			k;

	if (p == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	for (k = 0; k < w->nentries; k++)
		if (p->lines[k].dirty)
		{
			p->want++;
			pthread_cond_broadcast(&w->cond);
			break;
		}
	pthread_mutex_unlock(&w->mu);
}

/*
 * The file's text (a secret) with mu held, or NULL while an entry has no
 * value yet (or out of memory).  names gets the dirty entries' indexes
 * (-1 ended), their flags cleared.
 */
static char *
render(hr_watch *w, int *names)
{
	hr_wpgb    *p = w->pgb;
	hr_buf		b;
	int			k;
	int			j;
	int			m = 0;

	for (k = 0; k < w->nentries; k++)
		if (p->lines[k].v[0] == NULL)
			return NULL;
	hr_buf_init(&b);
	hr_buf_puts(&b, "; written by heroku-pg-resolve watch --pgbouncer: do not edit\n");
	for (k = 0; k < w->nentries; k++)
	{
		hr_buf_puts(&b, w->entries[k].service);
		hr_buf_puts(&b, " =");
		for (j = 0; j < PGB_NKEYS; j++)
		{
			if (p->lines[k].v[j][0] == '\0')
				continue;
			hr_buf_puts(&b, " ");
			hr_buf_puts(&b, pgb_keys[j]);
			hr_buf_puts(&b, "=");
			put_quoted(&b, p->lines[k].v[j]);
		}
		hr_buf_puts(&b, "\n");
		if (p->lines[k].dirty && names)
			names[m++] = k;
		if (names)
			p->lines[k].dirty = 0;
	}
	if (names)
		names[m] = -1;
	if (b.oom)
	{
		hr_free_secret(b.data);
		return NULL;
	}
	return b.data;
}

/* One admin console command; 0, or -1 with why set. */
static int
admin_exec(PGconn *c, const char *sql, PGresult **out, char *why, size_t whylen)
{
	PGresult   *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

		if (msg == NULL)
			msg = PQerrorMessage(c);
		snprintf(why, whylen, "%.40s failed: %.*s", sql, (int) strcspn(msg, "\n"), msg);
		PQclear(r);
		return -1;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

/* The admin console, or NULL with why set. */
static PGconn *
admin_connect(hr_wpgb *p, char *why, size_t whylen)
{
	const char *const keys[] = {"dbname", "connect_timeout", NULL};
	const char *const vals[] = {p->admin, "5", NULL};
	PGconn	   *c = PQconnectdbParams(keys, vals, 1);

	if (c == NULL || PQstatus(c) != CONNECTION_OK)
	{
		char	   *m = c ? PQerrorMessage(c) : "out of memory";

		snprintf(why, whylen, "PgBouncer's admin console (%s) is unreachable: %.*s", p->label,
				 (int) strcspn(m, "\n"), m);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* SHOW CONFIG against hr_watch_tls_pgb_check (1, 0, 2); -1 when unread. */
static int
tls_ok(hr_watch *w, PGconn *c, char *why, size_t whylen)
{
	PGresult   *r = NULL;
	int			ok;

	if (admin_exec(c, "SHOW CONFIG", &r, why, whylen) != 0)
		return -1;
	ok = hr_watch_tls_pgb_check(w, r, why, whylen);
	PQclear(r);
	return ok;
}

/*
 * At start, before any sink is written: a PgBouncer that would send the
 * passwords without TLS stops the watcher; one that is down does not.
 */
int
hr_wpgb_check_start(hr_watch *w)
{
	hr_wpgb    *p = w->pgb;
	char		why[400];
	PGconn	   *c;
	int			t;

	if (p == NULL || p->admin == NULL)
		return 0;
	c = admin_connect(p, why, sizeof(why));
	if (c == NULL)
	{
		hr_watch_log(w, "pgbouncer: %s; its server_tls_sslmode is checked once it answers", why);
		return 0;
	}
	t = tls_ok(w, c, why, sizeof(why));
	PQfinish(c);
	if (t == 0 || t == 2)
	{
		hr_cli_fail(t == 0 ? "Set server_tls_sslmode = require (or verify-full) in pgbouncer.ini, then RELOAD it."
					: "Set server_tls_ca_file, server_tls_cert_file, server_tls_key_file and server_tls_sslmode in pgbouncer.ini to the service's files, then RELOAD it; or leave the service out of --pgbouncer.",
					"%s", why);
		return EX_CONFIG;
	}
	p->tls_checked = t == 1;
	if (t < 0)
		hr_watch_log(w, "pgbouncer: %s", why);
	return 0;
}

/* SHOW DATABASES has every entry's host, port and user: 0, or -1 with why. */
static int
verify(hr_watch *w, PGconn *c, char **want, char *why, size_t whylen)
{
	PGresult   *r = NULL;
	int			k;
	int			i;

	if (admin_exec(c, "SHOW DATABASES", &r, why, whylen) != 0)
		return -1;
	for (k = 0; k < w->nentries; k++)
	{
		char	  **v = &want[k * PGB_NKEYS];
		int			found = 0;

		for (i = 0; i < PQntuples(r) && !found; i++)
			found = strcmp(PQgetvalue(r, i, 0), w->entries[k].service) == 0 &&
				strcmp(PQgetvalue(r, i, 1), v[0]) == 0 &&
				strcmp(PQgetvalue(r, i, 2), v[1][0] ? v[1] : "5432") == 0 &&
				strcmp(PQgetvalue(r, i, 4), v[3]) == 0;
		if (!found)
		{
			snprintf(why, whylen, "SHOW DATABASES lacks the new line of \"%s\" after RELOAD: can PgBouncer's user read %s? (its log says why)",
					 w->entries[k].service, w->pgb->file);
			PQclear(r);
			return -1;
		}
	}
	PQclear(r);
	return 0;
}

/*
 * Write the file and tell PgBouncer.  names: the changed entries, -1
 * ended.  0, or -1 with why set; *fatal 1 when the file cannot be
 * written, 2 when nothing was written (PgBouncer's TLS files differ).
 */
static int
apply(hr_watch *w, const char *text, char **want, const int *names, char *why,
	  size_t whylen, int *fatal)
{
	hr_wpgb    *p = w->pgb;
	hr_service_error serr;
	char		sql[300];
	PGconn	   *c = NULL;
	int			changed = 0;
	int			rc = 0;
	int			i;

	*fatal = 0;
	/* --service-option: PgBouncer's global TLS files are compared before any write */
	if (p->admin && hr_watch_tls_any(w) &&
		((c = admin_connect(p, why, whylen)) == NULL || tls_ok(w, c, why, whylen) != 1))
	{
		PQfinish(c);
		*fatal = 2;				/* nothing written */
		return -1;
	}
	if (hr_safe_file_write(p->file, "PgBouncer file", 0640, text, strlen(text), &changed, &serr) != HR_SERVICE_OK)
	{
		snprintf(why, whylen, "could not write %s: %s", p->file, serr.message);
		*fatal = 1;
		PQfinish(c);
		return -1;
	}
	if (p->admin == NULL)
		return 0;
	if (c == NULL && (c = admin_connect(p, why, whylen)) == NULL)
		return -1;
	if (tls_ok(w, c, why, whylen) != 1 || admin_exec(c, "RELOAD", NULL, why, whylen) != 0)
		rc = -1;
	/* before KILL: a database PgBouncer did not take would only say "no such database" */
	if (rc == 0)
		rc = verify(w, c, want, why, whylen);
	for (i = 0; rc == 0 && names[i] >= 0; i++)
	{
		/* the pool's server_login_retry wait ends only so */
		snprintf(sql, sizeof(sql), "KILL \"%s\"", w->entries[names[i]].service);
		rc = admin_exec(c, sql, NULL, why, whylen);
		snprintf(sql, sizeof(sql), "RESUME \"%s\"", w->entries[names[i]].service);
		if (rc == 0)
			rc = admin_exec(c, sql, NULL, why, whylen);
	}
	PQfinish(c);
	return rc;
}

/* The thread: apply each change, retrying a failure with back-off. */
static void *
pgb_thread(void *arg)
{
	hr_watch   *w = arg;
	hr_wpgb    *p = w->pgb;
	int		   *names = calloc((size_t) w->nentries + 1, sizeof(int));
	char	  **want = calloc((size_t) w->nentries * PGB_NKEYS, sizeof(char *));

	pthread_mutex_lock(&w->mu);
	while (!w->stop && names && want)
	{
		unsigned long target = p->want;
		char		why[400];
		char		done[300];
		char	   *text;
		double		t0 = hr_watch_now();
		int			fatal;
		int			rc;
		int			k;
		int			j;

		if (p->done >= target || (p->retry_at > 0 && t0 < p->retry_at))
		{
			hr_watch_wait(w, p->retry_at > t0 ? p->retry_at : t0 + 3600);
			continue;
		}
		text = render(w, names);
		if (text == NULL)
		{
			/* an entry not read yet: its app's check will kick again */
			p->done = target;
			continue;
		}
		for (k = 0; k < w->nentries; k++)
			for (j = 0; j < PGB_NKEYS; j++)
				want[k * PGB_NKEYS + j] = hr_strdup(p->lines[k].v[j]);
		pthread_mutex_unlock(&w->mu);

		rc = apply(w, text, want, names, why, sizeof(why), &fatal);
		hr_free_secret(text);
		done[0] = '\0';
		for (k = 0; names[k] >= 0; k++)
			snprintf(done + strlen(done), sizeof(done) - strlen(done), "%s\"%s\"",
					 k ? ", " : "", w->entries[names[k]].service);
		for (k = 0; k < w->nentries * PGB_NKEYS; k++)
		{
			hr_free_secret(want[k]);
			want[k] = NULL;
		}

		pthread_mutex_lock(&w->mu);
		if (rc == 0)
		{
			p->done = target;
			p->ok = 1;
			p->error[0] = '\0';
			p->backoff_ms = 0;
			p->retry_at = 0;
			p->applied_at = time(NULL);
			hr_watch_log(w, "pgbouncer: wrote %s%s%s%s; %.0f ms", p->file,
						 p->admin ? ", RELOAD, SHOW DATABASES agrees, KILL and RESUME of " : "",
						 p->admin ? (done[0] ? done : "none") : "",
						 p->admin ? "" : " (no --pgbouncer-admin: not reloaded)",
						 (hr_watch_now() - t0) * 1000);
			continue;
		}
		/* the same lines are due again */
		for (k = 0; names[k] >= 0; k++)
			p->lines[names[k]].dirty = 1;
		p->ok = 0;
		snprintf(p->error, sizeof(p->error), "%s", why);
		p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 1000;
		if (p->backoff_ms > HR_WATCH_MAX_BACKOFF_MS)
			p->backoff_ms = HR_WATCH_MAX_BACKOFF_MS;
		p->retry_at = hr_watch_now() + p->backoff_ms / 1000.0;
		hr_watch_log(w, "pgbouncer: %s; %sretrying in %ld s", why,
					 fatal ? "" : "the file is written; ", p->backoff_ms / 1000);
	}
	pthread_mutex_unlock(&w->mu);
	free(names);
	free(want);
	return NULL;
}

/*
 * After the first checks: the first write here, so that an unwritable
 * FILE ends the watcher (73) as the service file does; then the thread.
 */
int
hr_wpgb_start(hr_watch *w)
{
	hr_wpgb    *p = w->pgb;
	hr_service_error serr;
	char	   *text;
	int			changed = 0;
	int			rc = 0;
	int			k;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&w->mu);
	text = render(w, NULL);
	pthread_mutex_unlock(&w->mu);
	/* with --service-option, only once SHOW CONFIG agreed (else the thread checks first) */
	if (text && hr_watch_tls_any(w) && !p->tls_checked)
	{
		hr_free_secret(text);
		text = NULL;
	}
	if (text && hr_safe_file_write(p->file, "PgBouncer file", 0640, text, strlen(text), &changed, &serr) != HR_SERVICE_OK)
	{
		hr_cli_fail(serr.hint[0] ? serr.hint : "Choose another --pgbouncer file, or fix its directory's permissions.",
					"--pgbouncer: %s", serr.message);
		rc = EX_CANTCREAT;
	}
	hr_free_secret(text);
	/* the file as PgBouncer has it: RELOAD and SHOW DATABASES, no KILL */
	pthread_mutex_lock(&w->mu);
	for (k = 0; text && !changed && k < w->nentries; k++)
		p->lines[k].dirty = 0;
	p->want++;
	pthread_mutex_unlock(&w->mu);
	if (rc == 0 && pthread_create(&p->thread, NULL, pgb_thread, w) != 0)
		rc = HR_WATCH_EX_OSERR;
	p->running = rc == 0;
	return rc;
}

/* At exit (w->stop set): the thread ends after its apply; the values wiped. */
void
hr_wpgb_stop(hr_watch *w)
{
	hr_wpgb    *p = w->pgb;
	int			k;
	int			j;

	if (p == NULL)
		return;
	if (p->running)
		pthread_join(p->thread, NULL);
	for (k = 0; k < w->nentries; k++)
		for (j = 0; j < PGB_NKEYS; j++)
			hr_free_secret(p->lines[k].v[j]);
	free(p->lines);
	free(p->file);
	free(p);
	w->pgb = NULL;
}

/* /healthz: which sink fails and why (no password: the error texts hold none). */
void
hr_wpgb_health(hr_watch *w, struct json_object *root, int *ok)
{
	hr_wpgb    *p = w->pgb;
	struct json_object *sinks = NULL;
	struct json_object *o;
	char		stamp[32];

	if (p == NULL)
		return;
	if (!json_object_object_get_ex(root, "sinks", &sinks))
	{
		sinks = json_object_new_object();
		json_object_object_add(root, "sinks", sinks);
	}
	o = json_object_new_object();
	json_object_object_add(o, "file", json_object_new_string(p->file));
	json_object_object_add(o, "admin", p->admin ? json_object_new_string(p->label) : NULL);
	json_object_object_add(o, "ok", json_object_new_boolean(p->ok));
	json_object_object_add(o, "error", p->ok ? NULL : json_object_new_string(p->error));
	if (p->applied_at)
	{
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&p->applied_at));
		json_object_object_add(o, "last_applied", json_object_new_string(stamp));
	}
	else
		json_object_object_add(o, "last_applied", NULL);
	json_object_object_add(sinks, "pgbouncer", o);
	if (!p->ok)
		*ok = 0;
}
