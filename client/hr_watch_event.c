/*-------------------------------------------------------------------------
 *
 * hr_watch_event.c
 *		Read a Heroku webhook notification's body with json-c (see
 *		hr_watch_event.h).  No server headers: json-c's json_object clashes
 *		with PostgreSQL's, and this file is only built into the command and
 *		the fuzzer.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "heroku_resolver.h"
#include "hr_internal.h"
#include "hr_watch_event.h"

/* obj.key as an object, or NULL */
static struct json_object *
member_object(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

/* obj.key as a string (no NUL inside), or NULL */
static const char *
member_string(struct json_object *obj, const char *key)
{
	struct json_object *v;
	const char *s;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	if (s == NULL || strlen(s) != (size_t) json_object_get_string_len(v))
		return NULL;
	return s;
}

/* Copy s to dst if it fits and every byte is printable ASCII; else "". */
static void
copy_printable(char *dst, size_t dstlen, const char *s)
{
	size_t		i;

	dst[0] = '\0';
	if (s == NULL || strlen(s) >= dstlen)
		return;
	for (i = 0; s[i]; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return;
	memcpy(dst, s, i + 1);
}

hr_webhook_kind
hr_webhook_parse(const char *body, size_t len, hr_webhook_event *ev)
{
	struct json_object *root;
	struct json_object *app;
	const char *resource;
	const char *s;
	hr_webhook_kind kind;

	memset(ev, 0, sizeof(*ev));
	if (body == NULL)
		return HR_WEBHOOK_MALFORMED;
	root = len > (size_t) HR_WEBHOOK_MAX_BODY ? NULL : hr_json_parse_whole(body, len);
	if (root == NULL)
		return HR_WEBHOOK_MALFORMED;
	if (!json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		return HR_WEBHOOK_MALFORMED;
	}

	copy_printable(ev->delivery_id, sizeof(ev->delivery_id),
				   member_string(member_object(member_object(root, "webhook_metadata"),
											   "delivery"), "id"));
	resource = member_string(root, "resource");
	if (resource == NULL || strcmp(resource, "release") != 0)
	{
		json_object_put(root);
		return HR_WEBHOOK_OTHER;
	}

	app = member_object(member_object(root, "data"), "app");
	s = member_string(app, "id");
	if (s && strlen(s) < sizeof(ev->app_id) && hr_valid_app(s) && strchr(s, '-') &&
		strlen(s) == 36)
		memcpy(ev->app_id, s, strlen(s) + 1);
	s = member_string(app, "name");
	if (s && strlen(s) < sizeof(ev->app_name) && hr_valid_app(s) && strlen(s) <= 30)
		memcpy(ev->app_name, s, strlen(s) + 1);
	kind = (ev->app_id[0] || ev->app_name[0]) ? HR_WEBHOOK_RELEASE : HR_WEBHOOK_MALFORMED;
	/* a release phase runs first: applied on the update that says succeeded */
	s = member_string(member_object(root, "data"), "status");
	if (kind == HR_WEBHOOK_RELEASE && s != NULL && strcmp(s, "succeeded") != 0)
		kind = HR_WEBHOOK_UNSETTLED;
	json_object_put(root);
	return kind;
}
