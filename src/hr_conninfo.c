/*-------------------------------------------------------------------------
 *
 * hr_conninfo.c
 *		libpq keyword/value pairs (hr_conninfo): building, looking up, and
 *		writing them as a conninfo string or a postgres:// URL.  No server
 *		headers.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "hr_internal.h"


void
hr_conninfo_free(hr_conninfo *ci)
{
	int			i;

	if (ci == NULL)
		return;
	for (i = 0; i < ci->n; i++)
	{
		free(ci->keywords[i]);
		hr_free_secret(ci->values[i]);
	}
	free(ci->keywords);
	free(ci->values);
	ci->keywords = NULL;
	ci->values = NULL;
	ci->n = 0;
}

const char *
hr_conninfo_get(const hr_conninfo *ci, const char *keyword)
{
	int			i;

	for (i = 0; i < ci->n; i++)
		if (strcmp(ci->keywords[i], keyword) == 0)
			return ci->values[i];
	return NULL;
}

/* Append a copy of kw=val; 0 when out of memory. */
int
hr_conninfo_add(hr_conninfo *ci, const char *kw, const char *val)
{
	char	  **k = realloc(ci->keywords, sizeof(char *) * (ci->n + 1));

	if (k == NULL)
		return 0;
	ci->keywords = k;
	k = realloc(ci->values, sizeof(char *) * (ci->n + 1));
	if (k == NULL)
		return 0;
	ci->values = k;
	ci->keywords[ci->n] = hr_strdup(kw);
	ci->values[ci->n] = hr_strdup(val);
	if (ci->keywords[ci->n] == NULL || ci->values[ci->n] == NULL)
	{
		free(ci->keywords[ci->n]);
		hr_free_secret(ci->values[ci->n]);
		return 0;
	}
	ci->n++;
	return 1;
}


char *
hr_conninfo_to_string(const hr_conninfo *ci)
{
	hr_buf		b;
	int			i;

	hr_buf_init(&b);
	hr_buf_append(&b, "", 0);
	for (i = 0; i < ci->n; i++)
	{
		const char *v;

		if (i > 0)
			hr_buf_putc(&b, ' ');
		hr_buf_puts(&b, ci->keywords[i]);
		hr_buf_puts(&b, "='");
		/* libpq conninfo quoting: backslash escapes ' and \ */
		for (v = ci->values[i]; *v; v++)
		{
			if (*v == '\'' || *v == '\\')
				hr_buf_putc(&b, '\\');
			hr_buf_putc(&b, *v);
		}
		hr_buf_putc(&b, '\'');
	}
	if (b.oom)
		return NULL;
	return b.data;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static void
put_encoded(hr_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			hr_buf_putc(b, (char) c);
		else
		{
			char		e[3] = {'%', hex[c >> 4], hex[c & 15]};

			hr_buf_append(b, e, 3);
		}
	}
}

/* One host of a (possibly comma-separated) host list, with its port. */
static void
put_host(hr_buf *b, const char *host, size_t hlen, const char *port, size_t plen)
{
	char	   *h = hr_strndup(host, hlen);

	if (h == NULL)
	{
		b->oom = 1;
		return;
	}
	if (memchr(h, ':', hlen))
	{
		/*
		 * IPv6 literal.  libpq percent-decodes a bracketed host too, so
		 * anything but hex digits, ':' and '.' (a zone's '%', a stray ']')
		 * is encoded, or the URL would not read back as the same host.
		 */
		const char *c;

		hr_buf_putc(b, '[');
		for (c = h; *c; c++)
		{
			if (isalnum((unsigned char) *c) || *c == ':' || *c == '.')
				hr_buf_putc(b, *c);
			else
			{
				char		one[2] = {*c, '\0'};

				put_encoded(b, one);
			}
		}
		hr_buf_putc(b, ']');
	}
	else
		put_encoded(b, h);
	free(h);
	if (plen > 0)
	{
		hr_buf_putc(b, ':');
		hr_buf_append(b, port, plen);
	}
}

char *
hr_conninfo_to_url(const hr_conninfo *ci)
{
	const char *user = hr_conninfo_get(ci, "user");
	const char *password = hr_conninfo_get(ci, "password");
	const char *host = hr_conninfo_get(ci, "host");
	const char *port = hr_conninfo_get(ci, "port");
	const char *dbname = hr_conninfo_get(ci, "dbname");
	hr_buf		b;
	int			i;
	int			nparams = 0;
	int			nhosts = 0;
	int			nports = 0;
	int			hosts_inline;
	int			ports_inline;
	const char *c;

	/*
	 * libpq skips an empty user, password, dbname, host or port in the
	 * URI's authority and path, so an empty one goes in a parameter.
	 * libpq reads "h1,h2" in the authority as two hosts with the port list
	 * ",": several hosts without a port go in a host= parameter too.
	 * Ports go next to their hosts only when there is one per host; a single
	 * port for several hosts (libpq applies it to all), or a list of another
	 * length, is kept exactly as a port= parameter.
	 */
	if (user && user[0] == '\0')
		user = NULL;
	if (password && password[0] == '\0')
		password = NULL;
	if (dbname && dbname[0] == '\0')
		dbname = NULL;
	if (host)
		for (nhosts = 1, c = host; *c; c++)
			nhosts += (*c == ',');
	if (port)
		for (nports = 1, c = port; *c; c++)
			nports += (*c == ',');
	hosts_inline = host && host[0] && (port || nhosts == 1);
	ports_inline = hosts_inline && port && port[0] && nports == nhosts;

	hr_buf_init(&b);
	hr_buf_puts(&b, "postgres://");
	if (user || password)
	{
		if (user)
			put_encoded(&b, user);
		if (password)
		{
			hr_buf_putc(&b, ':');
			put_encoded(&b, password);
		}
		hr_buf_putc(&b, '@');
	}
	if (hosts_inline)
	{
		/* pair the i-th host with the i-th port, as libpq does */
		const char *h = host;
		const char *p = ports_inline ? port : NULL;

		for (;;)
		{
			size_t		hl = strcspn(h, ",");
			size_t		pl = p ? strcspn(p, ",") : 0;

			put_host(&b, h, hl, p, pl);
			if (h[hl] == '\0')
				break;
			hr_buf_putc(&b, ',');
			h += hl + 1;
			if (p)
				p = p[pl] ? p + pl + 1 : NULL;
		}
	}
	hr_buf_putc(&b, '/');
	if (dbname)
		put_encoded(&b, dbname);
	for (i = 0; i < ci->n; i++)
	{
		const char *k = ci->keywords[i];

		if ((strcmp(k, "user") == 0 && user) ||
			(strcmp(k, "password") == 0 && password) ||
			(strcmp(k, "dbname") == 0 && dbname) ||
			(strcmp(k, "host") == 0 && hosts_inline) ||
			(strcmp(k, "port") == 0 && ports_inline))
			continue;
		hr_buf_putc(&b, nparams++ ? '&' : '?');
		put_encoded(&b, k);
		hr_buf_putc(&b, '=');
		put_encoded(&b, ci->values[i]);
	}
	if (b.oom)
		return NULL;
	return b.data;
}
