/*
 * fuzz_service.c
 *		libFuzzer harness: a service file's text through the client's
 *		hr_service_replace() (client/hr_service.c, pure text in/text out).
 *		An input holding a NUL byte is "text NUL password"; otherwise the
 *		whole input is the text.  Properties (from hr_service.h): applying
 *		the replacement to its own output changes nothing, and
 *		hr_service_get() reads back every value written.
 */
#include "fuzz_common.h"

#include "hr_service.h"

#define NKW 6

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t		tlen = nul ? (size_t) (nul - data) : size;
	char	   *text = malloc(tlen ? tlen : 1);
	char	   *password = nul ? fuzz_cstring(nul + 1, size - tlen - 1)
		: fuzz_cstring((const uint8_t *) "p'a ss\\w=rd#", 12);
	const char *kw[NKW] = {"host", "port", "dbname", "user", "password", "sslmode"};
	const char *val[NKW] = {"ec2-1-2-3-4.compute-1.amazonaws.com", "5432",
	"d8abc123", "u1x2y3", password, "require"};
	char	   *out = NULL;
	size_t		outlen = 0;
	hr_service_error err;
	hr_service_status st;
	int			i;

	if (text == NULL)
		abort();
	memcpy(text, data, tlen);	/* exact size: not NUL-terminated */
	st = hr_service_replace(text, tlen, "heroku-myapp", NKW, kw, val,
							&out, &outlen, &err);
	if (st == HR_SERVICE_OK)
	{
		char	   *out2 = NULL;
		size_t		outlen2 = 0;

		FUZZ_CHECK(out != NULL && out[outlen] == '\0', "output is terminated");
		for (i = 0; i < NKW; i++)
		{
			char	   *v = hr_service_get(out, outlen, "heroku-myapp", kw[i]);

			FUZZ_CHECK(v != NULL && strcmp(v, val[i]) == 0, "a written value reads back");
			hr_service_free(v, strlen(v));
		}
		st = hr_service_replace(out, outlen, "heroku-myapp", NKW, kw, val,
								&out2, &outlen2, &err);
		FUZZ_CHECK(st == HR_SERVICE_OK, "output can be rewritten");
		FUZZ_CHECK(outlen2 == outlen && memcmp(out, out2, outlen) == 0,
				   "rewriting the output changes nothing");
		hr_service_free(out2, outlen2);
	}
	else
	{
		FUZZ_CHECK(st == HR_SERVICE_EBADVALUE && out == NULL,
				   "only the password can be refused");
	}
	hr_service_free(out, outlen);
	free(password);
	free(text);
	return 0;
}
