/*
 * core_unit.c
 *		Drive every resolver-core entry point that needs no network through
 *		a table of fixed inputs, under AddressSanitizer and UBSan
 *		(test/checks/asan.sh).  With HEROKU_MOCK_URL and HR_API_KEY_FILE set,
 *		also one real hr_resolve() against the mock.  Exit 0 = every check
 *		held; a sanitizer report stops the program first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hr_internal.h"

static int	failures = 0;
static int	checks = 0;

#define CHECK(cond, ...) \
	do { \
		checks++; \
		if (!(cond)) \
		{ \
			failures++; \
			fprintf(stderr, "core_unit: FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* A copy of s in a buffer of exactly strlen(s) bytes: no terminator to lean on. */
static char *
exact(const char *s, size_t *len)
{
	char	   *p;

	*len = strlen(s);
	p = malloc(*len ? *len : 1);
	memcpy(p, s, *len);
	return p;
}

static void
test_validation(void)
{
	static const struct
	{
		const char *s;
		int			app;
		int			var;
	}			t[] = {
		{"myapp", 1, 1},
		{"my-app-2", 1, 0},
		{"ab", 0, 1},
		{"-app", 0, 0},
		{"app-", 0, 0},
		{"App", 0, 1},
		{"0123abcd-89ab-cdef-0123-456789abcdef", 1, 0},
		{"../etc", 0, 0},
		{"", 0, 0},
		{"DATABASE_URL", 0, 1},
		{"a b", 0, 0},
	};
	char		longvar[300];
	size_t		i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
	{
		CHECK(hr_valid_app(t[i].s) == t[i].app, "hr_valid_app(\"%s\")", t[i].s);
		CHECK(hr_valid_config_var(t[i].s) == t[i].var, "hr_valid_config_var(\"%s\")", t[i].s);
	}
	CHECK(!hr_valid_app(NULL) && !hr_valid_config_var(NULL), "NULL names are invalid");
	memset(longvar, 'A', sizeof(longvar) - 1);
	longvar[sizeof(longvar) - 1] = '\0';
	CHECK(!hr_valid_config_var(longvar), "a 299-byte config var name is invalid");
	longvar[255] = '\0';
	CHECK(hr_valid_config_var(longvar), "a 255-byte config var name is valid");
}

static void
test_small(void)
{
	static const struct
	{
		const char *s;
		long		ms;
	}			t[] = {
		{"5000", 5000}, {"5s", 5000}, {" 250 ms", 250}, {"0", -1}, {"-1", -1},
		{"2147483647", 2147483647L}, {"2147483648", -1}, {"2147484s", -1},
		{"99999999999999999999999", -1}, {"1h", -1}, {"", -1}, {"s", -1},
	};
	hr_settings s;
	char		buf[16];
	size_t		i;
	int			c;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK(hr_parse_timeout_ms(t[i].s) == t[i].ms, "hr_parse_timeout_ms(\"%s\")", t[i].s);
	CHECK(hr_parse_timeout_ms(NULL) == -1, "hr_parse_timeout_ms(NULL)");
	CHECK(hr_sslmode_from_name("verify-full") == HR_SSLMODE_VERIFY_FULL &&
		  hr_sslmode_from_name("prefer") == -1 && hr_sslmode_from_name(NULL) == -1,
		  "hr_sslmode_from_name");
	CHECK(strcmp(hr_sslmode_name(HR_SSLMODE_VERIFY_CA), "verify-ca") == 0 &&
		  strcmp(hr_sslmode_name((hr_sslmode) 42), "require") == 0, "hr_sslmode_name");
	for (c = HR_OK; c <= HR_ENOMEM + 1; c++)
		CHECK(hr_code_name((hr_code) c) != NULL, "hr_code_name(%d)", c);
	CHECK(strcmp(hr_version(), HR_VERSION) == 0, "hr_version");
	hr_settings_init(&s);
	CHECK(s.use_env == 1 && s.timeout_ms == HR_DEFAULT_TIMEOUT_MS && s.api_key == NULL,
		  "hr_settings_init");
	hr_printable(buf, sizeof(buf), "a\"b\\c\nd and a long tail", 10);
	CHECK(strcmp(buf, "a?b?c?d an...") == 0, "hr_printable cuts to fit: \"%s\"", buf);
	hr_printable(buf, 1, "abc", 10);
	CHECK(buf[0] == '\0', "hr_printable with room for the NUL only");
	CHECK(hr_host_is_loopback("127.0.0.1") && hr_host_is_loopback("[::1]") &&
		  !hr_host_is_loopback("127.0.0.1.evil.example") && !hr_host_is_loopback(NULL),
		  "hr_host_is_loopback");
	{
		char	   *h = hr_url_host("https://api.heroku.com/apps");
		char	   *h6 = hr_url_host("http://[::1]:5000/");
		char	   *bad = hr_url_host("::not a url");

		CHECK(h && strcmp(h, "api.heroku.com") == 0, "hr_url_host");
		CHECK(h6 && strcmp(h6, "::1") == 0, "hr_url_host IPv6");
		CHECK(bad == NULL, "hr_url_host of garbage");
		free(h);
		free(h6);
		free(bad);
	}
}

static void
test_netrc(void)
{
	static const struct
	{
		const char *text;
		const char *machine;
		int			found;
		const char *login;
		const char *password;
	}			t[] = {
		{"machine api.heroku.com login me password tok\n", "api.heroku.com", 1, "me", "tok"},
		{"machine a login x password y\nmachine api.heroku.com\n  login me\n  password tok", "api.heroku.com", 1, "me", "tok"},
		{"machine \"api.heroku.com\" password \"p\\\"q\\\\r s\"", "api.heroku.com", 1, NULL, "p\"q\\r s"},
		{"macdef m\nmachine api.heroku.com password fake\n\nmachine api.heroku.com password real", "api.heroku.com", 1, NULL, "real"},
		{"machine other password x\ndefault login anon password guest", "api.heroku.com", 1, "anon", "guest"},
		{"machine other password x", "api.heroku.com", 0, NULL, NULL},
		{"machine api.heroku.com password", "api.heroku.com", 1, NULL, NULL},
		{"machine api.heroku.com password \"unterminated", "api.heroku.com", 1, NULL, "unterminated"},
		{"machine api.heroku.com password \"ends in backslash\\", "api.heroku.com", 1, NULL, "ends in backslash\\"},
		{"machine", "api.heroku.com", 0, NULL, NULL},
		{"macdef", NULL, 0, NULL, NULL},
		{"", "api.heroku.com", 0, NULL, NULL},
		{"default password d", NULL, 1, NULL, "d"},
	};
	size_t		i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
	{
		size_t		len;
		char	   *text = exact(t[i].text, &len);
		char	   *login;
		char	   *password;
		int			found = hr_netrc_lookup(text, len, t[i].machine, &login, &password);

		CHECK(found == t[i].found, "netrc case %zu: found %d", i, found);
		CHECK((login == NULL) == (t[i].login == NULL) &&
			  (login == NULL || strcmp(login, t[i].login) == 0),
			  "netrc case %zu: login", i);
		CHECK((password == NULL) == (t[i].password == NULL) &&
			  (password == NULL || strcmp(password, t[i].password) == 0),
			  "netrc case %zu: password", i);
		free(login);
		hr_free_secret(password);
		free(text);
	}
}

static void
test_config_vars(void)
{
	static const struct
	{
		const char *body;
		const char *var;
		hr_code		rc;
		const char *value;
		const char *used;
	}			t[] = {
		{"{\"DATABASE_URL\":\"postgres://u:p@h/d\"}", "DATABASE_URL", HR_OK, "postgres://u:p@h/d", "DATABASE_URL"},
		{"{\"HEROKU_POSTGRESQL_VIOLET_URL\":\"x\"} \r\n", "HEROKU_POSTGRESQL_VIOLET", HR_OK, "x", "HEROKU_POSTGRESQL_VIOLET_URL"},
		{"{\"DATABASE_URL\":null}", "DATABASE_URL", HR_ENOTFOUND, NULL, NULL},
		{"{\"OTHER\":\"x\"}", "DATABASE_URL", HR_ENOTFOUND, NULL, NULL},
		{"{\"DATABASE_URL\":5}", "DATABASE_URL", HR_EPROTOCOL, NULL, NULL},
		{"{\"DATABASE_URL\":\"a\\u0000b\"}", "DATABASE_URL", HR_EBADURL, NULL, NULL},
		{"{\"DATABASE_URL\":\"a\",\"DATABASE_URL\":\"b\"}", "DATABASE_URL", HR_EPROTOCOL, NULL, NULL},
		{"{\"A\":{\"DATABASE_URL\":\"n\"},\"DATABASE_URL\":\"t\"}", "DATABASE_URL", HR_OK, "t", "DATABASE_URL"},
		{"[\"DATABASE_URL\"]", "DATABASE_URL", HR_EPROTOCOL, NULL, NULL},
		{"{\"DATABASE_URL\":\"x\"} trailing", "DATABASE_URL", HR_EPROTOCOL, NULL, NULL},
		{"{\"DATABASE_URL\":", "DATABASE_URL", HR_EPROTOCOL, NULL, NULL},
		{"", "DATABASE_URL", HR_EPROTOCOL, NULL, NULL},
	};
	size_t		i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
	{
		size_t		len;
		char	   *body = exact(t[i].body, &len);
		char	   *value;
		char	   *used;
		hr_error	err;
		hr_code		rc;

		memset(&err, 0, sizeof(err));
		rc = hr_config_vars_pick(body, len, "myapp", t[i].var, &value, &used, &err);
		CHECK(rc == t[i].rc, "config vars case %zu: code %d (%s)", i, (int) rc, err.message);
		CHECK((value == NULL) == (t[i].value == NULL) &&
			  (value == NULL || strcmp(value, t[i].value) == 0),
			  "config vars case %zu: value", i);
		CHECK((used == NULL) == (t[i].used == NULL) &&
			  (used == NULL || strcmp(used, t[i].used) == 0),
			  "config vars case %zu: name", i);
		if (rc != HR_OK)
			CHECK(err.message[0] != '\0', "config vars case %zu: a message", i);
		hr_free_secret(value);
		free(used);
		free(body);
	}
	{
		const char *eb = "{\"id\":\"not_found\",\"message\":\"Couldn't find that app.\"}";
		char		dst[200];

		hr_api_error_text(eb, strlen(eb), dst, sizeof(dst));
		CHECK(strcmp(dst, "not_found: Couldn't find that app.") == 0, "api error text: %s", dst);
		hr_api_error_text("nope", 4, dst, sizeof(dst));
		CHECK(dst[0] == '\0', "api error text of garbage");
		hr_api_error_text(NULL, 0, dst, sizeof(dst));
		CHECK(dst[0] == '\0', "api error text of nothing");
	}
}

static void
test_urls(void)
{
	static const struct
	{
		const char *url;
		hr_sslmode	min;
		hr_code		rc;
		const char *conninfo;
	}			t[] = {
		{"postgres://u:p%27q%5C@ec2-1-2-3-4.compute-1.amazonaws.com:5432/d1", HR_SSLMODE_REQUIRE, HR_OK,
		"host='ec2-1-2-3-4.compute-1.amazonaws.com' port='5432' dbname='d1' user='u' password='p\\'q\\\\' sslmode='require'"},
		{"postgresql://u@h/d?sslmode=disable", HR_SSLMODE_VERIFY_FULL, HR_OK,
		"host='h' dbname='d' user='u' sslmode='verify-full'"},
		{"postgres://h/d?sslmode=verify-full&application_name=a%20b", HR_SSLMODE_REQUIRE, HR_OK,
		"host='h' dbname='d' application_name='a b' sslmode='verify-full'"},
		{"postgres://[::1]:5433,h2:5434/d", HR_SSLMODE_REQUIRE, HR_OK,
		"host='::1,h2' port='5433,5434' dbname='d' sslmode='require'"},
		{"postgres:///d?hostaddr=10.0.0.1", HR_SSLMODE_REQUIRE, HR_OK,
		"hostaddr='10.0.0.1' dbname='d' sslmode='require'"},
		{"postgres://a,b/d?port=5433", HR_SSLMODE_REQUIRE, HR_OK, "host='a,b' port='5433' dbname='d' sslmode='require'"},
		{"postgres:///d?host=a,b", HR_SSLMODE_REQUIRE, HR_OK, "host='a,b' dbname='d' sslmode='require'"},
		{"postgres://h/?password=&user=&dbname=&port=", HR_SSLMODE_REQUIRE, HR_OK, "host='h' port='' dbname='' user='' password='' sslmode='require'"},
		{"postgres://u:se#cret@h/d", HR_SSLMODE_REQUIRE, HR_OK, NULL},
		{"postgres://u:pw?x@h/d", HR_SSLMODE_REQUIRE, HR_OK, NULL},
		{"mysql://u:p@h/d", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"not a url", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres:///d", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres:///d?host=/tmp", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres://h:0/d", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres://h:65536/d", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres://h/d?sslmode=bogus", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres://u:%zz@h/d", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
		{"postgres://h/d?nosuchoption=1", HR_SSLMODE_REQUIRE, HR_EBADURL, NULL},
	};
	size_t		i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
	{
		hr_result	r;
		hr_result	r2;
		hr_error	err;
		hr_code		rc;

		memset(&err, 0, sizeof(err));
		rc = hr_result_from_url(t[i].url, t[i].min, "myapp", "DATABASE_URL", &r, &err);
		CHECK(rc == t[i].rc, "url case %zu: code %d (%s; %s)", i, (int) rc, err.message, err.detail);
		if (rc != HR_OK)
		{
			/* no password may reach an error text */
			CHECK(strstr(err.detail, "p@h") == NULL && strstr(err.detail, "%zz") == NULL,
				  "url case %zu: detail shows a password: %s", i, err.detail);
			continue;
		}
		if (t[i].conninfo)
			CHECK(strcmp(r.conninfo, t[i].conninfo) == 0, "url case %zu: %s", i, r.conninfo);
		/* the URL form parses back to the same conninfo */
		rc = hr_result_from_url(r.url, t[i].min, "myapp", "DATABASE_URL", &r2, &err);
		CHECK(rc == HR_OK && strcmp(r.conninfo, r2.conninfo) == 0,
			  "url case %zu: round trip", i);
		if (rc == HR_OK)
			hr_result_free(&r2);
		CHECK(hr_conninfo_get(&r.params, "sslmode") != NULL, "url case %zu: sslmode", i);
		hr_result_free(&r);
	}
}

static void
test_mask(void)
{
	static const struct
	{
		const char *url;
		const char *masked;
	}			t[] = {
		{"postgres://u:secret@h.example:5432/db?sslmode=require&password=x", "postgres://u:***@h.example:5432/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db?password=secret", "postgres://h/db"},
		{"postgres://u:p@ss@h/db", "postgres://u:***@h/db"},
		/* libpq ends the userinfo at '@' or '/', not at '?' or '#' */
		{"postgres://u:se#cret@h/db", "postgres://u:***@h/db"},
		{"postgres://u:pw?x@h/db", "postgres://u:***@h/db"},
		{"postgres://u:pw?x", "postgres://u:pw"},
		/* a query between the first '@' (libpq's) and the last is not shown */
		{"postgres://@h?password=secret@x", "postgres://@x"},
		{"postgres://h?password=secret@x/db", "postgres://***@x/db"},
		{"postgres://u:pw@h?password=secret@x/db?sslmode=require", "postgres://u:***@x/db"},
		{"postgres://u@h,h2:5433/db", "postgres://u@h,h2:5433/db"},
		{"no scheme", "***"},
	};
	size_t		i;

	CHECK(hr_mask_url(NULL) == NULL, "hr_mask_url(NULL)");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
	{
		char	   *m = hr_mask_url(t[i].url);

		CHECK(m && strcmp(m, t[i].masked) == 0, "hr_mask_url(\"%s\") = \"%s\"", t[i].url, m ? m : "(null)");
		free(m);
	}
}

static void
write_file(const char *path, const char *text)
{
	FILE	   *f = fopen(path, "w");

	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static void
test_tokens(void)
{
	char		dir[] = "/tmp/hr_core_unit.XXXXXX";
	char		keyfile[200];
	char		emptyfile[200];
	char		netrc[200];
	hr_settings s;
	hr_error	err;
	char	   *tok;
	const char *src;
	hr_code		rc;

	if (mkdtemp(dir) == NULL)
	{
		perror("mkdtemp");
		exit(2);
	}
	snprintf(keyfile, sizeof(keyfile), "%s/key", dir);
	snprintf(emptyfile, sizeof(emptyfile), "%s/empty", dir);
	snprintf(netrc, sizeof(netrc), "%s/netrc", dir);
	write_file(keyfile, "  key-from-file \r\nsecond line\n");
	write_file(emptyfile, "\n");
	write_file(netrc, "machine api.heroku.com login me password netrc-token\n");

	hr_settings_init(&s);
	s.use_env = 0;
	s.api_key = "direct";
	rc = hr_find_token(&s, &tok, &src, &err);
	CHECK(rc == HR_OK && strcmp(tok, "direct") == 0, "token: api_key");
	hr_free_secret(tok);

	s.api_key = NULL;
	s.api_key_file = keyfile;
	rc = hr_find_token(&s, &tok, NULL, &err);
	CHECK(rc == HR_OK && strcmp(tok, "key-from-file") == 0, "token: key file");
	hr_free_secret(tok);

	s.api_key_file = emptyfile;
	rc = hr_find_token(&s, &tok, &src, &err);
	CHECK(rc == HR_ENOTOKEN && tok == NULL, "token: empty key file");

	s.api_key_file = "/nonexistent/key";
	rc = hr_find_token(&s, &tok, &src, &err);
	CHECK(rc == HR_ETOKENFILE && tok == NULL && err.sys_errno != 0, "token: missing key file");

	s.api_key_file = NULL;
	s.netrc_file = netrc;
	rc = hr_find_token(&s, &tok, &src, &err);
	CHECK(rc == HR_OK && tok && strcmp(tok, "netrc-token") == 0 && strcmp(src, "netrc") == 0,
		  "token: netrc");
	hr_free_secret(tok);

	s.api_url = "https://other.example";
	rc = hr_find_token(&s, &tok, &src, &err);
	CHECK(rc == HR_ENOTOKEN && tok == NULL && strstr(err.hint, "other.example") != NULL,
		  "token: no netrc entry for the host");

	s.api_url = "::garbage";
	rc = hr_find_token(&s, &tok, &src, &err);
	CHECK(rc == HR_ENOTOKEN && tok == NULL, "token: garbage API URL");

	unlink(keyfile);
	unlink(emptyfile);
	unlink(netrc);
	rmdir(dir);
}

/* Requests that are refused before any network I/O. */
static void
test_http_offline(void)
{
	static const char *const bad_api[] = {
		"ftp://api.heroku.com", "http://api.heroku.com", "not a url",
		"http://127.0.0.1.evil.example:1",
	};
	hr_http    *h;
	hr_settings s;
	hr_error	err;
	hr_fetch	f;
	hr_result	r;
	size_t		i;

	CHECK(hr_global_init(&err) == HR_OK, "hr_global_init");
	CHECK(hr_global_init(&err) == HR_OK, "hr_global_init twice");
	h = hr_http_new();
	CHECK(h != NULL, "hr_http_new");
	hr_settings_init(&s);
	s.use_env = 0;
	s.api_key = "t";
	for (i = 0; i < sizeof(bad_api) / sizeof(bad_api[0]); i++)
	{
		hr_code		rc;

		s.api_url = bad_api[i];
		rc = hr_fetch_config_var(h, &s, "myapp", "DATABASE_URL", NULL, &f, &err);
		CHECK(rc == HR_EINVAL, "fetch with API URL \"%s\": %d (%s)", bad_api[i], (int) rc, err.message);
		if (rc == HR_OK)
			hr_fetch_free(&f);
	}
	s.api_url = "http://127.0.0.1:1";
	CHECK(hr_resolve(h, &s, "../x", "DATABASE_URL", &r, &err) == HR_EINVAL, "resolve: bad app");
	CHECK(hr_resolve(h, &s, "myapp", "A-B", &r, &err) == HR_EINVAL, "resolve: bad config var");
	hr_result_free(&r);
	hr_http_free(h);
	hr_http_free(NULL);
	hr_fetch_free(NULL);
	hr_result_free(NULL);
	hr_conninfo_free(NULL);
	hr_free_secret(NULL);
}

/* The apps list of the release feed: what is refused, what is read. */
static void
test_apps_list(void)
{
	static const char *const bad[] = {
		"", "{}", "[1]", "[{}]", "[{\"id\": \"x\", \"name\": \"myapp\", \"released_at\": null}]",
		"[{\"id\": \"0123abcd-89ab-cdef-0123-456789abcdef\", \"name\": \"My_App\", \"released_at\": null}]",
		"[{\"id\": \"0123abcd-89ab-cdef-0123-456789abcdef\", \"name\": \"myapp\"}]",
		"[{\"id\": \"0123abcd-89ab-cdef-0123-456789abcdef\", \"name\": \"myapp\", \"released_at\": 5}]",
		"[{\"id\": \"0123abcd-89ab-cdef-0123-456789abcdef\", \"name\": \"myapp\", \"released_at\": \"a\\nb\"}]",
		"[{\"id\": \"0123abcd-89ab-cdef-0123-456789abcdef\", \"name\": \"myapp\", \"released_at\": null}",
	};
	const char *good = "[{\"id\": \"0123abcd-89ab-cdef-0123-456789abcdef\", \"name\": \"myapp\","
		" \"released_at\": \"2024-01-02T03:04:05.678901Z\", \"owner\": {\"id\": \"x\"}},"
		" {\"id\": \"11111111-2222-3333-4444-555555555555\", \"name\": \"new-app\", \"released_at\": null}]";
	hr_feed_app *apps;
	hr_error	err;
	int			n;
	size_t		i;
	size_t		len;
	char	   *body;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		body = exact(bad[i], &len);
		CHECK(hr_apps_list_parse(body, len, &apps, &n, &err) == HR_EPROTOCOL && apps == NULL,
			  "apps list %zu is refused", i);
		free(body);
	}
	body = exact(good, &len);
	CHECK(hr_apps_list_parse(body, len, &apps, &n, &err) == HR_OK && n == 2,
		  "apps list: %s (%s)", err.message, err.detail);
	if (n == 2)
	{
		CHECK(strcmp(apps[0].name, "myapp") == 0 && strcmp(apps[1].id, "11111111-2222-3333-4444-555555555555") == 0,
			  "apps list: names and ids");
		CHECK(strcmp(apps[0].released_at, "2024-01-02T03:04:05.678901Z") == 0 && apps[1].released_at == NULL,
			  "apps list: released_at, null for an app never released");
	}
	hr_feed_apps_free(apps, n);
	free(body);
	CHECK(hr_same_config_var("DATABASE_URL", "DATABASE") && hr_same_config_var("X", "X") &&
		  !hr_same_config_var("DATABASE_URL_URL", "DATABASE") && !hr_same_config_var("X", "X_URL"),
		  "hr_same_config_var");
}

/* The release feed's listing against the mock, two apps a page. */
static void
test_mock_feed(const hr_settings *s, hr_http *h)
{
	hr_feed		feed = {2, 0, NULL};
	hr_feed_listing l;
	hr_error	err;
	hr_code		rc;
	char	   *token = NULL;
	int			pages;

	if (hr_find_token(s, &token, NULL, &err) != HR_OK)
	{
		CHECK(0, "mock feed: no token: %s", err.message);
		return;
	}
	rc = hr_feed_list(h, s, token, &feed, &l, &err);
	CHECK(rc == HR_OK, "mock feed: %s (%s)", err.message, err.detail);
	CHECK(l.pages >= 2 && l.pages == l.requests && l.napps == l.apps_seen && l.napps >= 3 &&
		  l.pages_not_modified == 0, "mock feed: %d apps in %d pages", l.napps, l.pages);
	pages = l.pages;
	hr_feed_listing_free(&l);
	/* nothing changed: every page a 304, no app read, the same count */
	rc = hr_feed_list(h, s, token, &feed, &l, &err);
	CHECK(rc == HR_OK && l.pages == pages && l.pages_not_modified == pages && l.napps == 0 &&
		  l.apps_seen >= 3, "mock feed again: %d of %d pages not modified", l.pages_not_modified,
		  l.pages);
	hr_feed_listing_free(&l);
	/* a bad token: 401, and the last listing is kept */
	rc = hr_feed_list(h, s, "HRKU-not-a-token", &feed, &l, &err);
	CHECK(rc == HR_EAUTH && err.http_status == 401 && feed.npages == pages,
		  "mock feed with a bad token: %d", (int) rc);
	hr_feed_listing_free(&l);
	hr_feed_reset(&feed);
	hr_free_secret(token);
}

/* One real request against the test suite's mock, when it runs. */
static void
test_mock(void)
{
	const char *url = getenv("HEROKU_MOCK_URL");
	const char *keyfile = getenv("HR_API_KEY_FILE");
	hr_http    *h;
	hr_settings s;
	hr_error	err;
	hr_result	r;
	hr_code		rc;

	if (!url || !url[0] || !keyfile || !keyfile[0] || access(keyfile, R_OK) != 0)
	{
		printf("core_unit: HEROKU_MOCK_URL/HR_API_KEY_FILE not usable: mock request skipped\n");
		return;
	}
	h = hr_http_new();
	hr_settings_init(&s);
	s.use_env = 0;
	s.api_url = url;
	s.api_key_file = keyfile;
	rc = hr_resolve(h, &s, "myapp", "DATABASE_URL", &r, &err);
	CHECK(rc == HR_OK, "mock: hr_resolve: %s (%s)", err.message, err.detail);
	if (rc == HR_OK)
	{
		CHECK(strstr(r.conninfo, "sslmode='require'") != NULL, "mock: sslmode");
		CHECK(strcmp(r.config_var, "DATABASE_URL") == 0, "mock: config var");
		hr_result_free(&r);
	}
	/* the same handle again (keep-alive), a missing var and a missing app */
	rc = hr_resolve(h, &s, "myapp", "NO_SUCH_VAR", &r, &err);
	CHECK(rc == HR_ENOTFOUND, "mock: missing var: %d (%s)", (int) rc, err.message);
	hr_result_free(&r);
	rc = hr_resolve(h, &s, "no-such-app", "DATABASE_URL", &r, &err);
	CHECK(rc == HR_ENOTFOUND, "mock: missing app: %d (%s)", (int) rc, err.message);
	hr_result_free(&r);
	test_mock_feed(&s, h);
	hr_http_free(h);
	printf("core_unit: mock request done\n");
}

int
main(void)
{
	test_validation();
	test_small();
	test_netrc();
	test_config_vars();
	test_urls();
	test_mask();
	test_tokens();
	test_http_offline();
	test_apps_list();
	test_mock();
	printf("core_unit: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
