/*-------------------------------------------------------------------------
 *
 * hr_watch_tls.c
 *		heroku-pg-resolve watch --service-option NAME:KEY=VALUE: mutual TLS
 *		for Private and Shield databases reached from outside Heroku.
 *
 * KEY is sslcert, sslkey, sslrootcert or sslmode.  The files come from the
 * operator on the command line, never from a config var (an app
 * collaborator must not choose files on this host).  They are checked at
 * start as libpq will check them (hr_tls_check: absolute, readable, a key
 * open to no one else, a certificate with its key), and a certificate must
 * match its key; any failure is exit 78 with the file or option named.
 * The files ride along with every URL the service gets: its service-file
 * section and its env-file URL (percent-encoded parameters); with a root
 * certificate sslmode becomes at least verify-ca, as in the extension.  An
 * sslmode may only be made stronger (require < verify-ca < verify-full).
 *
 * A client certificate within 30 days of its end is logged at start and
 * then daily, naming the service and the file, and its seconds left are
 * the gauge heroku_pg_resolve_client_cert_expiry_seconds.  PgBouncer's
 * TLS files are global (server_tls_*): a service in --pgbouncer with its
 * own files is refused unless SHOW CONFIG shows the same files.  No key
 * material is ever read into a message.
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hr_watch_tls.h"

#define DAY_S 86400

/* KEY of --service-option, as indexes of hr_watch_entry.tls */
static const char *const tls_keys[] = {"sslcert", "sslkey", "sslrootcert", "sslmode"};

/* PgBouncer's global setting for each file */
static const char *const pgb_settings[] = {"server_tls_cert_file", "server_tls_key_file",
"server_tls_ca_file"};

/* A configuration error at start: message, hint, exit 78. */
static int
config_error(const char *hint, const char *fmt, const char *a, const char *b)
{
	char		msg[700];

	snprintf(msg, sizeof(msg), fmt, a, b);
	hr_cli_fail(hint, "%s", msg);
	return EX_CONFIG;
}

/* The certificate's notAfter as Unix time, or 0 when unreadable. */
static time_t
cert_not_after(const char *path, X509 **keep)
{
	FILE	   *f = fopen(path, "r");
	X509	   *x;
	struct tm	tm;
	time_t		t = 0;

	if (f == NULL)
		return 0;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = timegm(&tm);
	if (keep)
		*keep = x;
	else
		X509_free(x);
	return t;
}

/* 1 when the certificate at cert is the one of the key at key. */
static int
cert_matches_key(X509 *x, const char *key)
{
	FILE	   *f = fopen(key, "r");
	EVP_PKEY   *k;
	int			ok;

	if (f == NULL)
		return 0;
	/* a key with a passphrase is not asked for: it could not be used anyway */
	k = PEM_read_PrivateKey(f, NULL, NULL, (void *) "");
	fclose(f);
	if (k == NULL)
		return 0;
	ok = X509_check_private_key(x, k) == 1;
	EVP_PKEY_free(k);
	return ok;
}

/* One --service-option: recorded on its entry; 0 or the exit status. */
static int
parse_option(hr_watch *w, const char *opt)
{
	const char *colon = strchr(opt, ':');
	const char *eq = colon ? strchr(colon, '=') : NULL;
	char		name[256];
	char		key[32];
	int			k;
	int			i;

	if (colon == NULL || eq == NULL || colon == opt || eq == colon + 1 ||
		(size_t) (colon - opt) >= sizeof(name) || (size_t) (eq - colon - 1) >= sizeof(key))
		return config_error("Give NAME:KEY=VALUE, such as priv:sslcert=/etc/heroku/client.crt.",
							"invalid --service-option \"%.100s\"%s", opt, "");
	snprintf(name, sizeof(name), "%.*s", (int) (colon - opt), opt);
	snprintf(key, sizeof(key), "%.*s", (int) (eq - colon - 1), colon + 1);
	for (k = 0; k < w->nentries; k++)
		if (strcmp(w->entries[k].service, name) == 0)
			break;
	if (k == w->nentries)
		return config_error("NAME is one of the --service NAME=APP given.",
							"--service-option \"%.100s\": \"%.60s\" is not a --service name", opt, name);
	for (i = 0; i < 4; i++)
		if (strcmp(key, tls_keys[i]) == 0)
			break;
	if (i == 4)
		return config_error("KEY is sslcert, sslkey, sslrootcert or sslmode.",
							"--service-option \"%.100s\": unknown KEY \"%.30s\"", opt, key);
	if (eq[1] == '\0')
		return config_error("Give a value after \"=\".",
							"--service-option \"%.100s\": no value%s", opt, "");
	if (w->entries[k].tls[i])
		return config_error("Give each KEY once per service.",
							"--service-option: %.30s is given twice for \"%.60s\"", key, name);
	if (i == 3)
	{
		int			m = hr_sslmode_from_name(eq + 1);

		if (m < 0 || m < (int) w->s.min_sslmode)
			return config_error("sslmode may only be made stronger: require, verify-ca or verify-full (and not below --min-sslmode).",
								"--service-option \"%.100s\": sslmode \"%.20s\" is weaker than the watcher's or unknown",
								opt, eq + 1);
	}
	w->entries[k].tls[i] = eq + 1;
	return 0;
}

/* Entry k's files, checked as libpq will, and its certificate's end read. */
static int
check_entry(hr_watch *w, int k)
{
	hr_watch_entry *e = &w->entries[k];
	hr_tls_files f = {e->tls[0], e->tls[1], e->tls[2]};
	hr_error	err;
	X509	   *x = NULL;
	char		what[300];

	memset(&err, 0, sizeof(err));
	snprintf(what, sizeof(what), "--service-option for service \"%s\"", e->service);
	if (hr_tls_check(&f, &err) != HR_OK)
		return config_error(err.hint[0] ? err.hint : "Give absolute paths of readable files: the three of heroku data:mtls:certificates:download.",
							"%s: %s", what, err.message);
	if (e->tls[0] == NULL)
		return 0;
	e->cert_not_after = cert_not_after(e->tls[0], &x);
	if (e->cert_not_after == 0 || x == NULL)
	{
		X509_free(x);
		return config_error("Give the PEM client certificate of heroku data:mtls:certificates:download.",
							"%s: could not read a certificate from \"%.300s\"", what, e->tls[0]);
	}
	if (!cert_matches_key(x, e->tls[1]))
	{
		X509_free(x);
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ": certificate \"%.100s\"",
				 e->tls[0]);
		return config_error("Give the certificate and the key downloaded together (an unencrypted PEM key).",
							"%s does not match key \"%.200s\"", what, e->tls[1]);
	}
	X509_free(x);
	return 0;
}

int
hr_watch_tls_configure(hr_watch *w, const char *pgbouncer, const char *pgbouncer_admin)
{
	int			rc;
	int			i;

	for (i = 0; i < w->nservice_opts; i++)
		if ((rc = parse_option(w, w->service_opts[i])) != 0)
			return rc;
	for (i = 0; i < w->nentries; i++)
		if ((rc = check_entry(w, i)) != 0)
			return rc;
	if (pgbouncer && pgbouncer_admin == NULL && hr_watch_tls_any(w))
		return config_error("Give --pgbouncer-admin CONNINFO, so that SHOW CONFIG can show PgBouncer's server_tls_ca_file, server_tls_cert_file, server_tls_key_file and server_tls_sslmode.",
							"--service-option with --pgbouncer %s needs --pgbouncer-admin: PgBouncer's TLS files are global (server_tls_*)%s",
							pgbouncer, "");
	return 0;
}

int
hr_watch_tls_any(hr_watch *w)
{
	int			k;

	for (k = 0; k < w->nentries; k++)
		if (w->entries[k].tls[0] || w->entries[k].tls[2] || w->entries[k].tls[3])
			return 1;
	return 0;
}

hr_sslmode
hr_watch_tls_min_sslmode(hr_watch *w, int k)
{
	hr_watch_entry *e = &w->entries[k];
	int			m = (int) w->s.min_sslmode;

	if (e->tls[3] && hr_sslmode_from_name(e->tls[3]) > m)
		m = hr_sslmode_from_name(e->tls[3]);
	if (e->tls[2] && m < (int) HR_SSLMODE_VERIFY_CA)
		m = HR_SSLMODE_VERIFY_CA;
	return (hr_sslmode) m;
}

hr_code
hr_watch_tls_add(hr_watch *w, int k, hr_result *res, hr_error *err)
{
	hr_watch_entry *e = &w->entries[k];
	hr_tls_files f = {e->tls[0], e->tls[1], e->tls[2]};

	return hr_result_add_tls(res, &f, err);
}

/* When the next daily look is due (monotonic seconds). */
double
hr_watch_tls_due(hr_watch *w)
{
	return w->tls_next_log;
}

/*
 * Each client certificate within 30 days of its end (or past it): a log
 * line naming the service and the file.  The file is read again, so a
 * renewed certificate is seen.  Then the next look, a day later.
 */
void
hr_watch_tls_expiry(hr_watch *w)
{
	time_t		now = time(NULL);
	int			k;

	for (k = 0; k < w->nentries; k++)
	{
		hr_watch_entry *e = &w->entries[k];
		time_t		t;
		char		stamp[32];
		long		left;

		if (e->tls[0] == NULL)
			continue;
		t = cert_not_after(e->tls[0], NULL);
		pthread_mutex_lock(&w->mu);
		if (t)
			e->cert_not_after = t;
		t = e->cert_not_after;
		pthread_mutex_unlock(&w->mu);
		left = (long) (t - now);
		if (left > (long) HR_WATCH_CERT_WARN_DAYS * DAY_S)
			continue;
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		if (left > 0)
			hr_watch_log(w, "service \"%s\": client certificate %s expires in %ld day%s (%s): renew it (heroku data:mtls:certificates:download)",
						 e->service, e->tls[0], left / DAY_S, left / DAY_S == 1 ? "" : "s", stamp);
		else
			hr_watch_log(w, "service \"%s\": client certificate %s expired at %s: renew it (heroku data:mtls:certificates:download)",
						 e->service, e->tls[0], stamp);
	}
	w->tls_next_log = hr_watch_now() + DAY_S;
}

/* The gauge's family, one sample per service with a client certificate. */
void
hr_watch_tls_metrics(hr_watch *w, hr_buf *b)
{
	static const char name[] = "heroku_pg_resolve_client_cert_expiry_seconds";
	time_t		now = time(NULL);
	char		line[400];
	int			k;

	if (!hr_watch_tls_any(w))
		return;
	snprintf(line, sizeof(line), "# HELP %s Seconds until the client certificate of a service (--service-option sslcert) ends; negative when it has.\n# TYPE %s gauge\n",
			 name, name);
	hr_buf_puts(b, line);
	pthread_mutex_lock(&w->mu);
	for (k = 0; k < w->nentries; k++)
		if (w->entries[k].tls[0])
		{
			/* a service name is letters, digits, "_", "-", ".": nothing to escape */
			snprintf(line, sizeof(line), "%s{service=\"%s\"} %lld\n", name,
					 w->entries[k].service, (long long) (w->entries[k].cert_not_after - now));
			hr_buf_puts(b, line);
		}
	pthread_mutex_unlock(&w->mu);
}

/* SHOW CONFIG's value of key, or "" when not shown. */
static const char *
config_value(PGresult *config, const char *key)
{
	int			i;

	for (i = 0; i < PQntuples(config); i++)
		if (strcmp(PQgetvalue(config, i, 0), key) == 0)
			return PQgetvalue(config, i, 1);
	return "";
}

/* 1 when two paths name the same file (the same text, or the same real path). */
static int
same_file(const char *a, const char *b)
{
	char		ra[PATH_MAX];
	char		rb[PATH_MAX];

	if (strcmp(a, b) == 0)
		return 1;
	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/*
 * SHOW CONFIG of a PgBouncer: 1 when server_tls_sslmode is require or
 * stronger (it has no per-database sslmode) and the global server_tls_*
 * files are those of every --service-option; 0 when the sslmode is weaker
 * than require, 2 when a file or the sslmode differs from a service's
 * (why names the setting).
 */
int
hr_watch_tls_pgb_check(hr_watch *w, PGresult *config, char *why, size_t whylen)
{
	const char *mode = config_value(config, "server_tls_sslmode");
	int			k;
	int			i;

	if (hr_sslmode_from_name(mode) < 0)
	{
		snprintf(why, whylen, "PgBouncer's server_tls_sslmode is \"%.20s\", weaker than require: it would send the passwords of %s without TLS",
				 mode[0] ? mode : "(not shown)", "Heroku Postgres");
		return 0;
	}
	for (k = 0; k < w->nentries; k++)
	{
		hr_watch_entry *e = &w->entries[k];

		for (i = 0; i < 3; i++)
		{
			const char *v = config_value(config, pgb_settings[i]);

			if (e->tls[i] == NULL || same_file(e->tls[i], v))
				continue;
			snprintf(why, whylen, "PgBouncer's TLS files are global: its %s is \"%.200s\", not service \"%s\"'s %s \"%.200s\" (server_tls_ca_file, server_tls_cert_file, server_tls_key_file and server_tls_sslmode serve every database); nothing is written",
					 pgb_settings[i], v, e->service, tls_keys[i], e->tls[i]);
			return 2;
		}
		if ((e->tls[0] || e->tls[2] || e->tls[3]) &&
			hr_sslmode_from_name(mode) < (int) hr_watch_tls_min_sslmode(w, k))
		{
			snprintf(why, whylen, "PgBouncer's TLS settings are global: its server_tls_sslmode is \"%.20s\", weaker than service \"%s\"'s %s; nothing is written",
					 mode, e->service, hr_sslmode_name(hr_watch_tls_min_sslmode(w, k)));
			return 2;
		}
	}
	return 1;
}
