/*
 * fuzz_netrc.c
 *		libFuzzer harness: netrc text through hr_netrc_lookup().  An input
 *		holding a NUL byte is "machine NUL text"; otherwise the machine is
 *		the API host.  The text is an exact-size buffer, not NUL-terminated,
 *		as hr_read_file() would not promise either.
 */
#include "fuzz_common.h"

#include "heroku_resolver.h"

static void
lookup(const char *text, size_t len, const char *machine)
{
	char	   *login = (char *) 1;
	char	   *password = (char *) 1;
	int			found;

	found = hr_netrc_lookup(text, len, machine, &login, &password);
	if (found)
	{
		/* both are NULL or strings; reading them lets ASan check them */
		if (login)
			(void) strlen(login);
		if (password)
			(void) strlen(password);
	}
	else
		FUZZ_CHECK(login == NULL && password == NULL, "no match leaves both NULL");
	free(login);
	hr_free_secret(password);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);

	if (nul != NULL)
	{
		char	   *machine = fuzz_cstring(data, nul - data);
		size_t		tlen = size - (nul - data) - 1;
		char	   *text = malloc(tlen ? tlen : 1);

		if (text == NULL)
			abort();
		memcpy(text, nul + 1, tlen);
		lookup(text, tlen, machine);
		free(text);
		free(machine);
	}
	else
	{
		lookup((const char *) data, size, "api.heroku.com");
		lookup((const char *) data, size, NULL);
	}
	return 0;
}
