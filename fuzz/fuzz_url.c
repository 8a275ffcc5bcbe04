/*
 * fuzz_url.c
 *		libFuzzer harness: a config var's value through hr_url_parse(),
 *		hr_conninfo_to_string() and hr_conninfo_to_url(), with two
 *		properties:
 *		  - round trip: the URL form, parsed again, gives the same conninfo
 *		    string;
 *		  - hr_mask_url() never leaves a password: what libpq reads from the
 *		    masked text has no password, or "***".
 */
#include "fuzz_common.h"

#include "libpq-fe.h"

#include "heroku_resolver.h"

/* What libpq reads as the password of url: NULL if none or unparsable. */
static char *
libpq_password(const char *url)
{
	PQconninfoOption *opts;
	PQconninfoOption *o;
	char	   *errmsg = NULL;
	char	   *pw = NULL;

	opts = PQconninfoParse(url, &errmsg);
	if (errmsg)
		PQfreemem(errmsg);
	if (opts == NULL)
		return NULL;
	for (o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "password") == 0)
			pw = strdup(o->val);
	PQconninfoFree(opts);
	return pw;
}

static void
check_masked(const char *url)
{
	char	   *masked = hr_mask_url(url);
	char	   *pw;

	FUZZ_CHECK(masked != NULL, "hr_mask_url returns a string");
	pw = libpq_password(masked);
	if (pw)
		FUZZ_CHECK(strcmp(pw, "***") == 0, "hr_mask_url left a password libpq reads");
	free(pw);
	free(masked);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *url = fuzz_cstring(data, size);
	hr_sslmode	mode = (hr_sslmode) (size % 3);
	hr_conninfo ci;
	hr_conninfo ci2;
	hr_error	err;
	hr_code		rc;

	check_masked(url);
	rc = hr_url_parse(url, mode, "myapp", "DATABASE_URL", &ci, &err);
	if (rc == HR_OK)
	{
		char	   *s1 = hr_conninfo_to_string(&ci);
		char	   *u = hr_conninfo_to_url(&ci);
		const char *sslmode = hr_conninfo_get(&ci, "sslmode");

		FUZZ_CHECK(s1 != NULL && u != NULL, "both forms are made");
		FUZZ_CHECK(sslmode != NULL && hr_sslmode_from_name(sslmode) >= (int) mode,
				   "sslmode is at least the minimum");
		rc = hr_url_parse(u, mode, "myapp", "DATABASE_URL", &ci2, &err);
		if (rc != HR_OK)
		{
			fprintf(stderr, "URL form does not parse again: %s / %s\n",
					err.message, err.detail);
			abort();
		}
		{
			char	   *s2 = hr_conninfo_to_string(&ci2);

			FUZZ_CHECK(s2 != NULL, "second conninfo string is made");
			if (strcmp(s1, s2) != 0)
			{
				fprintf(stderr, "round trip differs:\n  %s\n  %s\n", s1, s2);
				abort();
			}
			hr_free_secret(s2);
		}
		check_masked(u);
		hr_conninfo_free(&ci2);
		hr_free_secret(s1);
		hr_free_secret(u);
		hr_conninfo_free(&ci);
	}
	else
	{
		FUZZ_CHECK(ci.n == 0 && ci.keywords == NULL, "an error leaves no pairs");
		FUZZ_CHECK(err.code == rc, "err.code is the returned code");
	}
	free(url);
	return 0;
}
