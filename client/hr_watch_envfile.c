/*-------------------------------------------------------------------------
 *
 * hr_watch_envfile.c
 *		heroku-pg-resolve watch --env-file FILE: one NAME_URL='postgres://
 *		...?sslmode=require' line per --service, for systemd's
 *		EnvironmentFile= and for dotenv (Ruby, Node, Python, Go), and the
 *		commit of a change to every sink (then --on-change).
 *
 * The value is single-quoted: systemd, every common dotenv and a POSIX
 * shell take a single-quoted value literally (no $ interpolation, no \
 * escapes, a # is no comment).  The URL is percent-encoded by the library,
 * and any byte that is not a URL character (a quote above all) is
 * percent-encoded again here, so the quotes can never be closed early;
 * libpq decodes %XX in every part of a URL.  The watcher owns the file: it
 * is written whole, atomically, mode 0600, by the service file's safe
 * writer (hr_safe_file_write: no planted symbolic link is followed).
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "hr_internal.h"
#include "hr_service.h"
#include "hr_watch_sinks.h"

#define ENV_HEADER "# Written by heroku-pg-resolve watch: every change replaces this file.\n" \
	"# For systemd's EnvironmentFile= and dotenv; do not edit.\n"

/* The variable of a service: upper case, '-' as '_', then _URL. */
int
hr_watch_env_name(const char *service, char *dst, size_t dstlen)
{
	size_t		n = strlen(service);
	size_t		i;

	if (n == 0 || n + 5 > dstlen || isdigit((unsigned char) service[0]))
		return 0;
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) service[i];

		if (c == '-')
			c = '_';
		if (!(isascii(c) && (isalnum(c) || c == '_')))
			return 0;
		dst[i] = (char) toupper(c);
	}
	memcpy(dst + n, "_URL", 5);
	return 1;
}

/* Every service has a usable variable, and no two the same. */
int
hr_watch_env_check(hr_watch *w)
{
	char		a[300];
	char		b[300];
	int			i;
	int			j;

	if (w->env_file == NULL)
		return 0;
	for (i = 0; i < w->nentries; i++)
	{
		if (!hr_watch_env_name(w->entries[i].service, a, sizeof(a)))
		{
			hr_cli_fail("With --env-file a service name is letters, digits, \"_\" and \"-\", not starting with a digit.",
						"service \"%.60s\" has no environment variable name", w->entries[i].service);
			return EX_USAGE;
		}
		for (j = 0; j < i; j++)
			if (hr_watch_env_name(w->entries[j].service, b, sizeof(b)) && strcmp(a, b) == 0)
			{
				hr_cli_fail("Give the services names that differ in more than case and \"-\"/\"_\".",
							"services \"%.60s\" and \"%.60s\" would both be %s",
							w->entries[j].service, w->entries[i].service, a);
				return EX_USAGE;
			}
	}
	return 0;
}

/* The URL with every byte but URL characters percent-encoded. */
char *
hr_watch_env_safe_url(const char *url)
{
	static const char keep[] = "-._~:/?@&=+,;%[]";
	size_t		n = strlen(url);
	char	   *out = malloc(n * 3 + 1);
	char	   *o = out;

	if (out == NULL)
		return NULL;
	for (; *url; url++)
	{
		unsigned char c = (unsigned char) *url;

		if (isascii(c) && (isalnum(c) || (c != '\0' && strchr(keep, c))))
			*o++ = (char) c;
		else
			o += sprintf(o, "%%%02X", c);
	}
	*o = '\0';
	return out;
}

/*
 * At start: a URL the env file already holds for a service is the one its
 * consumer has, so a different URL fetched now is a real change.
 */
void
hr_watch_env_seed(hr_watch *w)
{
	FILE	   *f;
	char		line[4096];
	char		name[300];
	int			i;

	if (w->env_file == NULL || (f = fopen(w->env_file, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f))
	{
		char	   *eq = strchr(line, '=');
		char	   *v;
		size_t		len;

		if (eq == NULL || line[0] == '#')
			continue;
		*eq = '\0';
		v = eq + 1;
		len = strcspn(v, "\r\n");
		v[len] = '\0';
		if (len >= 2 && (v[0] == '\'' || v[0] == '"') && v[len - 1] == v[0])
		{
			v[len - 1] = '\0';
			v++;
		}
		for (i = 0; i < w->nentries; i++)
			if (hr_watch_env_name(w->entries[i].service, name, sizeof(name)) &&
				strcmp(name, line) == 0 && w->entries[i].url == NULL)
				w->entries[i].url = hr_strdup(v);
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
}

/* Render the file: fresh URLs for app's entries, the committed ones else. */
static char *
render(hr_watch *w, char **fresh, size_t *len)
{
	hr_buf		b;
	char		name[300];
	int			k;

	hr_buf_init(&b);
	hr_buf_puts(&b, ENV_HEADER);
	for (k = 0; k < w->nentries; k++)
	{
		const char *url = fresh[k] ? fresh[k] : w->entries[k].url;

		if (url == NULL || !hr_watch_env_name(w->entries[k].service, name, sizeof(name)))
			continue;
		hr_buf_puts(&b, name);
		hr_buf_puts(&b, "='");
		hr_buf_puts(&b, url);
		hr_buf_puts(&b, "'\n");
	}
	if (b.oom)
	{
		hr_buf_free_secret(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

int
hr_watch_sinks_apply(hr_watch *w, int app, char **fresh, hr_error *err)
{
	char		names[600];
	int			k;

	(void) app;
	if (w->env_file)
	{
		hr_service_error serr;
		hr_service_status st;
		size_t		len = 0;
		char	   *text = render(w, fresh, &len);
		int			changed = 0;

		if (text == NULL)
		{
			hr_error_oom(err);
			return EX_SOFTWARE;
		}
		st = hr_safe_file_write(w->env_file, "env file", 0600, text, len, &changed, &serr);
		hr_service_free(text, len);
		if (st != HR_SERVICE_OK)
		{
			hr_watch_metric(w, HR_M_SINK_FAILURE, "env_file");
			hr_error_set(err, st == HR_SERVICE_ENOMEM ? HR_ENOMEM : HR_EBADURL, "%s", serr.message);
			return st == HR_SERVICE_ENOMEM ? EX_SOFTWARE : EX_CANTCREAT;
		}
		if (changed)
		{
			hr_watch_metric(w, HR_M_SINK_WRITE, "env_file");
			hr_watch_log(w, "env file %s rewritten", w->env_file);
		}
	}

	/* every sink holds the fresh URLs: commit them, and name the changed */
	names[0] = '\0';
	for (k = 0; k < w->nentries; k++)
	{
		hr_watch_entry *e = &w->entries[k];

		if (fresh[k] == NULL)
			continue;
		if (e->url && strcmp(e->url, fresh[k]) != 0 &&
			strlen(names) + strlen(e->service) + 2 < sizeof(names))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
					 names[0] ? " " : "", e->service);
		hr_free_secret(e->url);
		e->url = fresh[k];
		fresh[k] = NULL;
	}
	if (names[0])
	{
		hr_watch_metric_now(w, HR_MT_LAST_CHANGE);
		hr_watch_onchange_notify(w, names);
	}
	return 0;
}
