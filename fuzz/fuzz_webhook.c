/*
 * fuzz_webhook.c
 *		libFuzzer harness: a webhook notification's body through the
 *		watcher's parser, hr_webhook_parse() (client/hr_watch_event.c, pure,
 *		json-c).  The whole input is the body, as the receiver gets it (any
 *		bytes, not NUL-terminated).  Properties: the same body gives the same
 *		answer; every field is "" or what hr_watch_event.h promises (a UUID,
 *		an app name, a printable delivery id), terminated within its buffer;
 *		a release always names its app.
 */
#include "fuzz_common.h"

#include "heroku_resolver.h"
#include "hr_watch_event.h"

static void
check_field(const char *s, size_t size, const char *what)
{
	size_t		i;

	FUZZ_CHECK(memchr(s, '\0', size) != NULL, what);
	for (i = 0; s[i]; i++)
		FUZZ_CHECK(s[i] > 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\', what);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *body = malloc(size ? size : 1);
	hr_webhook_event ev;
	hr_webhook_event again;
	hr_webhook_kind kind;

	if (body == NULL)
		abort();
	memcpy(body, data, size);	/* exact size: not NUL-terminated */
	kind = hr_webhook_parse(body, size, &ev);
	FUZZ_CHECK(kind == HR_WEBHOOK_RELEASE || kind == HR_WEBHOOK_UNSETTLED ||
			   kind == HR_WEBHOOK_OTHER || kind == HR_WEBHOOK_MALFORMED, "a known kind");
	check_field(ev.app_id, sizeof(ev.app_id), "app id printable and terminated");
	check_field(ev.app_name, sizeof(ev.app_name), "app name printable and terminated");
	check_field(ev.delivery_id, sizeof(ev.delivery_id), "delivery id printable and terminated");
	FUZZ_CHECK(ev.app_id[0] == '\0' || (strlen(ev.app_id) == 36 && hr_valid_app(ev.app_id)),
			   "an app id is a UUID");
	FUZZ_CHECK(ev.app_name[0] == '\0' || (strlen(ev.app_name) <= 30 && hr_valid_app(ev.app_name)),
			   "an app name is valid");
	if (kind == HR_WEBHOOK_RELEASE || kind == HR_WEBHOOK_UNSETTLED)
		FUZZ_CHECK(ev.app_id[0] || ev.app_name[0], "a release names its app");
	else
		FUZZ_CHECK(ev.app_id[0] == '\0' && ev.app_name[0] == '\0', "only a release names an app");
	FUZZ_CHECK(hr_webhook_parse(body, size, &again) == kind &&
			   memcmp(&ev, &again, sizeof(ev)) == 0, "the same body, the same answer");
	free(body);
	return 0;
}
