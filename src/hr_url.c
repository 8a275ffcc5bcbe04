/*-------------------------------------------------------------------------
 *
 * hr_url.c
 *		postgres:// URL to libpq keyword/value pairs and back.  Parsing is
 *		libpq's own (PQconninfoParse); this file only checks the result,
 *		raises sslmode and writes the two string forms.  No server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "libpq-fe.h"

#include "hr_internal.h"

/* libpq's sslmode values, weakest first */
static const char *const sslmode_order[] = {
	"disable", "allow", "prefer", "require", "verify-ca", "verify-full"
};

#define SSLMODE_REQUIRE_RANK 3

static int
sslmode_rank(const char *mode)
{
	int			i;

	for (i = 0; i < (int) (sizeof(sslmode_order) / sizeof(sslmode_order[0])); i++)
		if (strcmp(mode, sslmode_order[i]) == 0)
			return i;
	return -1;
}

/* The scheme of url if it is a postgres URI, for the checks below. */
static int
is_postgres_uri(const char *url)
{
	return strncmp(url, "postgres://", 11) == 0 ||
		strncmp(url, "postgresql://", 13) == 0;
}

char *
hr_mask_url(const char *url)
{
	const char *scheme_end;
	const char *auth;
	const char *auth_end;
	const char *at = NULL;
	const char *colon = NULL;
	const char *p;
	hr_buf		b;

	if (url == NULL)
		return NULL;
	scheme_end = strstr(url, "://");
	if (scheme_end == NULL || scheme_end == url)
		return hr_strdup("***");
	/* only a real scheme (RFC 3986) makes this a URL; anything else is hidden */
	for (p = url; p < scheme_end; p++)
		if (!(isalpha((unsigned char) *p) ||
			  (p > url && (isdigit((unsigned char) *p) || *p == '+' || *p == '-' || *p == '.'))))
			return hr_strdup("***");
	auth = scheme_end + 3;
	/*
	 * The last '@' before the path ends the userinfo.  libpq looks for it up
	 * to the first '/' only, so a '?' or '#' before it is part of the
	 * password ("postgres://u:pw?x@h/db"), not the start of a query.
	 */
	auth_end = auth + strcspn(auth, "/");
	for (p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	auth_end = (at ? at : auth) + strcspn(at ? at : auth, "/?#");
	if (at == NULL)
	{
		/* no userinfo: nothing secret before the path; hide the query */
		hr_buf_init(&b);
		hr_buf_append(&b, url, auth_end - url);
		if (*auth_end == '/')
			hr_buf_append(&b, auth_end, strcspn(auth_end, "?#"));
		if (b.oom)
			return NULL;
		return b.data;
	}
	for (p = auth; p < at; p++)
		if (*p == ':')
		{
			colon = p;
			break;
		}
	hr_buf_init(&b);
	hr_buf_append(&b, url, (colon ? colon : at) - url);
	if (colon)
		hr_buf_puts(&b, ":***");
	hr_buf_append(&b, at, auth_end - at);
	/* the path (dbname) is harmless; query parameters may hold secrets */
	if (*auth_end == '/')
		hr_buf_append(&b, auth_end, strcspn(auth_end, "?#"));
	if (b.oom)
		return NULL;
	return b.data;
}

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

static int
conninfo_add(hr_conninfo *ci, const char *kw, const char *val)
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

/* Each port of a comma-separated list must be 1..65535 (or empty). */
static int
ports_valid(const char *ports)
{
	const char *p = ports;

	for (;;)
	{
		long		v = 0;
		int			digits = 0;

		while (*p >= '0' && *p <= '9')
		{
			v = v * 10 + (*p - '0');
			if (v > 65535)
				return 0;
			p++;
			digits++;
		}
		if (digits > 0 && v < 1)
			return 0;
		if (*p == '\0')
			return 1;
		if (*p != ',')
			return 0;
		p++;
	}
}

/* Order of the pairs we emit: the usual ones first, sslmode last. */
static const char *const leading_keywords[] = {
	"host", "hostaddr", "port", "dbname", "user", "password"
};

hr_code
hr_url_parse(const char *url, hr_sslmode min_sslmode, const char *app,
			 const char *config_var, hr_conninfo *out, hr_error *err)
{
	PQconninfoOption *opts;
	PQconninfoOption *o;
	char	   *errmsg = NULL;
	const char *min_name = hr_sslmode_name(min_sslmode);
	const char *sslmode = NULL;
	const char *host = NULL;
	const char *hostaddr = NULL;
	const char *port = NULL;
	size_t		i;

	memset(out, 0, sizeof(*out));

	if (!is_postgres_uri(url))
	{
		char		scheme[40] = "";
		const char *se = strstr(url, "://");

		/* show the scheme only when it looks like one: never the value */
		if (se && se - url < 20)
		{
			char		tmp[24];

			memcpy(tmp, url, se - url);
			tmp[se - url] = '\0';
			hr_printable(scheme, sizeof(scheme), tmp, 20);
		}
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" is not a postgres:// URI",
					 config_var, app);
		if (scheme[0])
			hr_error_detail(err, "The value has the scheme \"%s\".", scheme);
		else
			hr_error_detail(err, "The value does not start with postgres:// or postgresql://.");
		return HR_EBADURL;
	}

	opts = PQconninfoParse(url, &errmsg);
	if (opts == NULL)
	{
		char	   *masked = hr_mask_url(url);
		char		why[200] = "out of memory";
		char		maskp[300];

		/*
		 * libpq's text may quote the whole URI or a piece of it, password
		 * included: keep only the part before the quote.
		 */
		if (errmsg)
		{
			size_t		n = strcspn(errmsg, "\":\n");

			if (n >= sizeof(why))
				n = sizeof(why) - 1;
			memcpy(why, errmsg, n);
			why[n] = '\0';
			while (n > 0 && isspace((unsigned char) why[n - 1]))
				why[--n] = '\0';
			PQfreemem(errmsg);
		}
		hr_printable(maskp, sizeof(maskp), masked ? masked : "***", 200);
		free(masked);
		hr_error_set(err, HR_EBADURL,
					 "could not parse config var \"%s\" of Heroku app \"%s\" as a postgres URI",
					 config_var, app);
		hr_error_detail(err, "libpq: %s; URI: %s", why, maskp);
		return HR_EBADURL;
	}

	for (o = opts; o->keyword; o++)
	{
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "sslmode") == 0)
			sslmode = o->val;
		else if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
	}

	if ((host == NULL || host[0] == '\0') && (hostaddr == NULL || hostaddr[0] == '\0'))
	{
		PQconninfoFree(opts);
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" has no host",
					 config_var, app);
		hr_error_detail(err, "A Heroku Postgres URL names its host: postgres://user:password@host:port/dbname.");
		return HR_EBADURL;
	}
	if (host && host[0] == '/')
	{
		PQconninfoFree(opts);
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" names a Unix socket, not a network host",
					 config_var, app);
		return HR_EBADURL;
	}
	if (port && !ports_valid(port))
	{
		char		portp[40];

		hr_printable(portp, sizeof(portp), port, 20);
		PQconninfoFree(opts);
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" has an invalid port \"%s\"",
					 config_var, app, portp);
		hr_error_detail(err, "A port is a number from 1 to 65535.");
		return HR_EBADURL;
	}
	if (sslmode && sslmode_rank(sslmode) < 0)
	{
		char		modep[40];

		hr_printable(modep, sizeof(modep), sslmode, 20);
		PQconninfoFree(opts);
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" has an invalid sslmode \"%s\"",
					 config_var, app, modep);
		return HR_EBADURL;
	}
	/* weaker than the minimum (or absent): raise it; stronger: keep it */
	if (sslmode == NULL ||
		sslmode_rank(sslmode) < SSLMODE_REQUIRE_RANK + (int) min_sslmode)
		sslmode = min_name;

	/* leading keywords in a fixed order, then the rest in libpq's order */
	for (i = 0; i < sizeof(leading_keywords) / sizeof(leading_keywords[0]); i++)
		for (o = opts; o->keyword; o++)
			if (o->val && strcmp(o->keyword, leading_keywords[i]) == 0 &&
				!conninfo_add(out, o->keyword, o->val))
				goto oom;
	for (o = opts; o->keyword; o++)
	{
		int			leading = 0;

		if (o->val == NULL || strcmp(o->keyword, "sslmode") == 0)
			continue;
		for (i = 0; i < sizeof(leading_keywords) / sizeof(leading_keywords[0]); i++)
			if (strcmp(o->keyword, leading_keywords[i]) == 0)
				leading = 1;
		if (!leading && !conninfo_add(out, o->keyword, o->val))
			goto oom;
	}
	if (!conninfo_add(out, "sslmode", sslmode))
		goto oom;
	/* PQconninfoParse copies hold the password too */
	for (o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "password") == 0)
			memset(o->val, 0, strlen(o->val));
	PQconninfoFree(opts);
	return HR_OK;

oom:
	for (o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "password") == 0)
			memset(o->val, 0, strlen(o->val));
	PQconninfoFree(opts);
	hr_conninfo_free(out);
	return hr_error_oom(err);
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
