/*-------------------------------------------------------------------------
 *
 * hr_url.c
 *		Everything about URLs and hosts: a config var's postgres:// URL to
 *		libpq keyword/value pairs (parsing is libpq's own, PQconninfoParse;
 *		this file checks the result against an allow-list and raises
 *		sslmode), password masking, and the Heroku API URL and its host.
 *		No server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>

#include <curl/curl.h>

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
	const char *at;
	const char *host;
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
	/* libpq's authority ends at the first '/' (not at '?' or '#') */
	auth_end = auth + strcspn(auth, "/");
	at = memchr(auth, '@', auth_end - auth);
	hr_buf_init(&b);
	hr_buf_append(&b, url, auth - url);
	host = auth;
	if (at != NULL)
	{
		/*
		 * libpq's userinfo ends at the first '@': its user (before a ':') is
		 * shown unless it looks like parameters, its password never.  The
		 * host shown is what follows the last '@': what lies between (for
		 * libpq, hosts and a query: "postgres://@h?password=pw@x") is not.
		 */
		size_t		user_len = strcspn(auth, ":@");

		if (strcspn(auth, "?&=#") < user_len)
			hr_buf_puts(&b, "***");
		else
			hr_buf_append(&b, auth, user_len);
		if (auth[user_len] == ':')
			hr_buf_puts(&b, ":***");
		hr_buf_puts(&b, "@");
		for (p = at; p < auth_end; p++)
			if (*p == '@')
				host = p + 1;
	}
	/* the hosts and the path (dbname) are harmless; a query may hold secrets */
	p = host + strcspn(host, "/?#");
	hr_buf_append(&b, host, p - host);
	if (*p == '/')
		hr_buf_append(&b, p, strcspn(p, "?#"));
	if (b.oom)
		return NULL;
	return b.data;
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

/*
 * The keywords a Heroku Postgres URL may carry.  A config var's value comes
 * from whoever can set config vars on the app, so everything else (passfile,
 * service, sslkey, options, ...) would let them steer the connection.
 * connect_timeout and (fallback_)application_name are harmless (a timeout, a
 * name shown in pg_stat_activity) and existing servers use them.
 */
static const char *const allowed_keywords[] = {
	"host", "hostaddr", "port", "dbname", "user", "password", "sslmode",
	"connect_timeout", "application_name", "fallback_application_name"
};

/* Is host (one element of a host or hostaddr list) on this machine? */
int
hr_host_is_local(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	size_t		n = strlen(host);

	if (hr_host_is_loopback(host))
		return 1;
	/* localhost, localhost., *.localhost (RFC 6761), in any case */
	while (n > 0 && host[n - 1] == '.')
		n--;
	if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
		(n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0))
		return 1;
	/* inet_aton takes every form the resolver takes: 127.1, 0x7f000001... */
	if (inet_aton(host, &a4))
	{
		uint32_t	v = ntohl(a4.s_addr);

		/* 0.0.0.0/8 (this host), 127.0.0.0/8, 169.254.0.0/16 (link-local) */
		return (v >> 24) == 0 || (v >> 24) == 127 || (v >> 16) == 0xa9fe;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1)
	{
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		static const unsigned char zero[15] = {0};

		if (memcmp(a6.s6_addr, mapped, 12) == 0)
		{
			char		v4[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, a6.s6_addr + 12, v4, sizeof(v4));
			return hr_host_is_local(v4);
		}
		/* ::, ::1, fe80::/10 */
		return (memcmp(a6.s6_addr, zero, 15) == 0 && a6.s6_addr[15] <= 1) ||
			(a6.s6_addr[0] == 0xfe && (a6.s6_addr[1] & 0xc0) == 0x80);
	}
	return 0;
}

/*
 * Check every element of a host or hostaddr list: never a Unix socket (an
 * absolute path, an abstract socket, or an empty element, which means the
 * default socket), and no address of this machine unless local_ok.
 */
static hr_code
check_host_list(const char *keyword, const char *list, int local_ok,
				const char *app, const char *config_var, hr_error *err)
{
	const char *p = list;

	for (;;)
	{
		size_t		n = strcspn(p, ",");
		char		one[256];

		if (n == 0 && strcmp(keyword, "host") == 0)
			return hr_error_set(err, HR_EBADURL,
								"config var \"%s\" of Heroku app \"%s\" names a Unix socket, not a network host",
								config_var, app);
		if (n >= sizeof(one))
			return hr_error_set(err, HR_EBADURL,
								"config var \"%s\" of Heroku app \"%s\" has a %s longer than %zu bytes",
								config_var, app, keyword, sizeof(one) - 1);
		memcpy(one, p, n);
		one[n] = '\0';
		if (one[0] == '/' || one[0] == '@')
			return hr_error_set(err, HR_EBADURL,
								"config var \"%s\" of Heroku app \"%s\" names a Unix socket, not a network host",
								config_var, app);
		if (n > 0 && !local_ok && hr_host_is_local(one))
		{
			hr_error_set(err, HR_EBADURL,
						 "config var \"%s\" of Heroku app \"%s\" names a %s on this machine",
						 config_var, app, keyword);
			hr_error_detail(err, "Loopback, link-local and unspecified addresses and \"localhost\" are refused.");
			hr_error_hint(err, "A superuser can allow them with heroku.allow_local_hosts, for a local test set-up.");
			return HR_EBADURL;
		}
		if (p[n] == '\0')
			return HR_OK;
		p += n + 1;
	}
}

/*
 * Step 4 of hr_url_parse_checked: only allowed keywords, and usable hosts;
 * names a keyword, never a value.
 */
static hr_code
check_options(const PQconninfoOption *opts, int local_ok, const char *app,
			  const char *config_var, hr_error *err)
{
	const PQconninfoOption *o;
	size_t		i;
	hr_code		rc;

	for (o = opts; o->keyword; o++)
	{
		int			allowed = 0;

		if (o->val == NULL)
			continue;
		for (i = 0; i < sizeof(allowed_keywords) / sizeof(allowed_keywords[0]); i++)
			if (strcmp(o->keyword, allowed_keywords[i]) == 0)
				allowed = 1;
		if (!allowed)
		{
			hr_error_set(err, HR_EBADURL,
						 "config var \"%s\" of Heroku app \"%s\" sets the connection option \"%s\", which is not allowed",
						 config_var, app, o->keyword);
			hr_error_detail(err, "A Heroku Postgres URL may set host, hostaddr, port, dbname, user, password, sslmode, connect_timeout, application_name and fallback_application_name.");
			return HR_EBADURL;
		}
		if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0)
		{
			rc = check_host_list(o->keyword, o->val, local_ok, app, config_var, err);
			if (rc != HR_OK)
				return rc;
		}
	}
	return HR_OK;
}

/* As the client side parses: hosts on this machine are allowed. */
hr_code
hr_url_parse(const char *url, hr_sslmode min_sslmode, const char *app,
			 const char *config_var, hr_conninfo *out, hr_error *err)
{
	return hr_url_parse_checked(url, min_sslmode, 1, app, config_var, out, err);
}

/*
 * Step 1: a Heroku Postgres config var holds a postgres:// or postgresql://
 * URI; anything else (a keyword=value string, another scheme) is refused,
 * not guessed at.  The detail shows the scheme only when it looks like one,
 * never the value.
 */
static hr_code
check_scheme(const char *url, const char *app, const char *config_var,
			 hr_error *err)
{
	char		scheme[40] = "";
	const char *se;

	if (is_postgres_uri(url))
		return HR_OK;
	se = strstr(url, "://");
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

/*
 * Step 2: parse with libpq's own parser, so we read the URI exactly as libpq
 * will.  NULL (err set) if it cannot: libpq's text may quote the whole URI
 * or a piece of it, password included, so the detail keeps only the part
 * before the quote, and the URI masked.
 */
static PQconninfoOption *
parse_uri(const char *url, const char *app, const char *config_var,
		  hr_error *err)
{
	PQconninfoOption *opts;
	char	   *errmsg = NULL;
	char	   *masked;
	char		why[200] = "out of memory";
	char		maskp[300];

	opts = PQconninfoParse(url, &errmsg);
	if (opts != NULL)
		return opts;
	masked = hr_mask_url(url);
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
	return NULL;
}

/* The value libpq parsed for keyword (the last one set), or NULL. */
static const char *
option_value(const PQconninfoOption *opts, const char *keyword)
{
	const PQconninfoOption *o;
	const char *val = NULL;

	for (o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, keyword) == 0)
			val = o->val;
	return val;
}

/*
 * Step 3: a host or a hostaddr must be named.  Without one libpq would use
 * its default, the local Unix socket.
 */
static hr_code
check_has_host(const PQconninfoOption *opts, const char *app,
			   const char *config_var, hr_error *err)
{
	const char *host = option_value(opts, "host");
	const char *hostaddr = option_value(opts, "hostaddr");

	if ((host == NULL || host[0] == '\0') && (hostaddr == NULL || hostaddr[0] == '\0'))
	{
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" has no host",
					 config_var, app);
		hr_error_detail(err, "A Heroku Postgres URL names its host: postgres://user:password@host:port/dbname.");
		return HR_EBADURL;
	}
	return HR_OK;
}

/*
 * Step 5 (after check_options): every port is a number libpq accepts, so a
 * bad one is reported here, by name, rather than at connect time.  The value
 * shown is cut short and made printable.
 */
static hr_code
check_port(const char *port, const char *app, const char *config_var,
		   hr_error *err)
{
	char		portp[40];

	if (port == NULL || ports_valid(port))
		return HR_OK;
	hr_printable(portp, sizeof(portp), port, 20);
	hr_error_set(err, HR_EBADURL,
				 "config var \"%s\" of Heroku app \"%s\" has an invalid port \"%s\"",
				 config_var, app, portp);
	hr_error_detail(err, "A port is a number from 1 to 65535.");
	return HR_EBADURL;
}

/*
 * Step 6: an sslmode, if given, is one of libpq's, so that it can be ranked
 * against the minimum.  The value shown is cut short and made printable.
 */
static hr_code
check_sslmode(const char *sslmode, const char *app, const char *config_var,
			  hr_error *err)
{
	char		modep[40];

	if (sslmode == NULL || sslmode_rank(sslmode) >= 0)
		return HR_OK;
	hr_printable(modep, sizeof(modep), sslmode, 20);
	hr_error_set(err, HR_EBADURL,
				 "config var \"%s\" of Heroku app \"%s\" has an invalid sslmode \"%s\"",
				 config_var, app, modep);
	return HR_EBADURL;
}

/*
 * Step 7: the sslmode to emit: one weaker than the minimum (or none) is
 * raised to it, a stronger one is kept, so the URL can only tighten TLS.
 */
static const char *
effective_sslmode(const char *sslmode, hr_sslmode min_sslmode)
{
	if (sslmode == NULL ||
		sslmode_rank(sslmode) < SSLMODE_REQUIRE_RANK + (int) min_sslmode)
		return hr_sslmode_name(min_sslmode);
	return sslmode;
}

/*
 * Step 8: copy the pairs to out in a stable order (leading keywords in a
 * fixed order, then the rest in libpq's order, sslmode last), so both string
 * forms are the same for the same URL.  0 when out of memory.
 */
static int
emit_pairs(const PQconninfoOption *opts, const char *sslmode, hr_conninfo *out)
{
	const PQconninfoOption *o;
	size_t		i;

	for (i = 0; i < sizeof(leading_keywords) / sizeof(leading_keywords[0]); i++)
		for (o = opts; o->keyword; o++)
			if (o->val && strcmp(o->keyword, leading_keywords[i]) == 0 &&
				!hr_conninfo_add(out, o->keyword, o->val))
				return 0;
	for (o = opts; o->keyword; o++)
	{
		int			leading = 0;

		if (o->val == NULL || strcmp(o->keyword, "sslmode") == 0)
			continue;
		for (i = 0; i < sizeof(leading_keywords) / sizeof(leading_keywords[0]); i++)
			if (strcmp(o->keyword, leading_keywords[i]) == 0)
				leading = 1;
		if (!leading && !hr_conninfo_add(out, o->keyword, o->val))
			return 0;
	}
	return hr_conninfo_add(out, "sslmode", sslmode);
}

/* PQconninfoParse's copies hold the password too: wipe it, then free. */
static void
wipe_and_free_options(PQconninfoOption *opts)
{
	PQconninfoOption *o;

	for (o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "password") == 0)
			hr_wipe(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

/*
 * A config var's URL to checked libpq pairs, in the order of the steps
 * above; the first step that fails sets err and ends it.
 */
hr_code
hr_url_parse_checked(const char *url, hr_sslmode min_sslmode, int local_ok,
					 const char *app, const char *config_var, hr_conninfo *out,
					 hr_error *err)
{
	PQconninfoOption *opts;
	const char *sslmode;

	memset(out, 0, sizeof(*out));
	if (check_scheme(url, app, config_var, err) != HR_OK)
		return HR_EBADURL;
	opts = parse_uri(url, app, config_var, err);
	if (opts == NULL)
		return HR_EBADURL;
	sslmode = option_value(opts, "sslmode");
	if (check_has_host(opts, app, config_var, err) != HR_OK ||
		check_options(opts, local_ok, app, config_var, err) != HR_OK ||
		check_port(option_value(opts, "port"), app, config_var, err) != HR_OK ||
		check_sslmode(sslmode, app, config_var, err) != HR_OK)
	{
		wipe_and_free_options(opts);
		return HR_EBADURL;
	}
	if (!emit_pairs(opts, effective_sslmode(sslmode, min_sslmode), out))
	{
		wipe_and_free_options(opts);
		hr_conninfo_free(out);
		return hr_error_oom(err);
	}
	wipe_and_free_options(opts);
	return HR_OK;
}

/* ---------- the Heroku API URL ---------- */

/* True if host is localhost, 127.0.0.0/8 or ::1. */
int
hr_host_is_loopback(const char *host)
{
	if (host == NULL)
		return 0;
	if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
		strcmp(host, "[::1]") == 0)
		return 1;
	/* 127.0.0.0/8 written as a dotted quad */
	if (strncmp(host, "127.", 4) == 0)
	{
		const char *p = host + 4;
		int			dots = 0;

		for (; *p; p++)
		{
			if (*p == '.')
				dots++;
			else if (!isdigit((unsigned char) *p))
				return 0;
		}
		return dots == 2;
	}
	return 0;
}

/* Host part of an http(s) URL ("api.heroku.com"); malloc'd or NULL. */
char *
hr_url_host(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	char	   *copy = NULL;

	if (u == NULL)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host)
	{
		size_t		n = strlen(host);

		/* "[::1]" -> "::1", as a netrc machine name would be written */
		if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
			copy = hr_strndup(host + 1, n - 2);
		else
			copy = hr_strdup(host);
	}
	curl_free(host);
	curl_url_cleanup(u);
	return copy;
}

/*
 * The API URL must be https, or http to a loopback host (a local mock):
 * a token must never cross a network in clear text.
 */
hr_code
hr_api_url_check(const char *api_url, hr_error *err)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char		shown[200];
	hr_code		rc = HR_OK;

	if (u == NULL)
		return hr_error_oom(err);
	hr_printable(shown, sizeof(shown), api_url, 150);
	if (curl_url_set(u, CURLUPART_URL, api_url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		rc = hr_error_set(err, HR_EINVAL, "invalid Heroku API URL \"%s\"", shown);
	}
	else if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)
	{
		rc = hr_error_set(err, HR_EINVAL,
						  "Heroku API URL \"%s\" must use https", shown);
	}
	else if (strcasecmp(scheme, "http") == 0 && !hr_host_is_loopback(host))
	{
		rc = hr_error_set(err, HR_EINVAL,
						  "Heroku API URL \"%s\" must use https", shown);
		hr_error_detail(err, "Plain http is allowed only to a loopback host, such as a local mock.");
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}
