/*
 * fuzz_config_vars.c
 *		libFuzzer harness: a config-vars answer body through
 *		hr_config_vars_pick() (and the error-body reader hr_api_error_text()).
 *		The body is given as an exact-size buffer, not NUL-terminated, as
 *		libcurl hands it over.
 */
#include "fuzz_common.h"

#include "hr_internal.h"

static void
pick(const uint8_t *data, size_t size, const char *var)
{
	char	   *value = NULL;
	char	   *used = NULL;
	hr_error	err;
	hr_code		rc;

	memset(&err, 0x5a, sizeof(err));
	rc = hr_config_vars_pick((const char *) data, size, "myapp", var,
							 &value, &used, &err);
	if (rc == HR_OK)
	{
		char		alt[300];

		FUZZ_CHECK(value != NULL && used != NULL, "HR_OK gives a value and a name");
		snprintf(alt, sizeof(alt), "%s_URL", var);
		FUZZ_CHECK(strcmp(used, var) == 0 || strcmp(used, alt) == 0,
				   "the name used is the one asked for or its _URL form");
		(void) strlen(value);
	}
	else
	{
		FUZZ_CHECK(value == NULL && used == NULL, "an error leaves no value");
		FUZZ_CHECK(err.code == rc, "err.code is the returned code");
		FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL &&
				   memchr(err.detail, '\0', sizeof(err.detail)) != NULL &&
				   memchr(err.hint, '\0', sizeof(err.hint)) != NULL,
				   "error texts are terminated");
	}
	hr_free_secret(value);
	free(used);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		detail[400];

	pick(data, size, "DATABASE_URL");
	pick(data, size, "HEROKU_POSTGRESQL_VIOLET");
	hr_api_error_text((const char *) data, size, detail, sizeof(detail));
	FUZZ_CHECK(strlen(detail) < sizeof(detail), "api error text fits");
	return 0;
}
