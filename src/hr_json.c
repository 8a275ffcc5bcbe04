/*-------------------------------------------------------------------------
 *
 * hr_json.c
 *		Read the API's JSON answers with json-c.  json-c's json_object type
 *		clashes with PostgreSQL's json_object() declaration, so json-c stays
 *		in this file, which includes no server header.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "hr_internal.h"

/*
 * Parse body as exactly one JSON value; NULL if it is not JSON, is
 * truncated, or has trailing garbage.
 */
/*
 * Free a tokener, wiping its scratch buffer first: it holds the last string
 * parsed, which may be a secret.  (json-c has no accessor for it.)
 */
static void
tokener_free_wiped(struct json_tokener *tok)
{
	if (tok->pb && tok->pb->buf)
		memset(tok->pb->buf, 0, (size_t) tok->pb->size);
	json_tokener_free(tok);
}

struct json_object *
hr_json_parse_whole(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t		used;

	if (len > (size_t) HR_LIST_MAX_BODY_BYTES)
		return NULL;
	tok = json_tokener_new();
	if (tok == NULL)
		return NULL;
	/* RFC 8259 only: no comments, single quotes or trailing commas */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, body, (int) len);
	if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success)
	{
		/* json_tokener_continue means truncated: not a whole document */
		json_object_put(obj);
		tokener_free_wiped(tok);
		return NULL;
	}
	used = json_tokener_get_parse_end(tok);
	tokener_free_wiped(tok);
	while (used < len && strchr(" \t\r\n", body[used]) && body[used] != '\0')
		used++;
	if (used != len)
	{
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/*
 * Number of keys of the top-level object in body, counted on the raw text:
 * json-c keeps only the last of duplicate keys, and an answer that names a
 * config var twice is ambiguous, so the caller compares the two counts.
 */
static size_t
count_top_level_keys(const char *body, size_t len)
{
	size_t		i;
	size_t		keys = 0;
	int			depth = 0;
	int			in_string = 0;
	int			expect_key = 0;

	for (i = 0; i < len; i++)
	{
		char		c = body[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		switch (c)
		{
			case '"':
				in_string = 1;
				if (depth == 1 && expect_key)
				{
					keys++;
					expect_key = 0;
				}
				break;
			case '{':
			case '[':
				depth++;
				if (depth == 1 && c == '{')
					expect_key = 1;
				break;
			case '}':
			case ']':
				depth--;
				break;
			case ',':
				if (depth == 1)
					expect_key = 1;
				break;
			default:
				break;
		}
	}
	return keys;
}

static const char *
type_name(struct json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "a boolean";
		case json_type_double:
		case json_type_int:
			return "a number";
		case json_type_object:
			return "an object";
		case json_type_array:
			return "an array";
		case json_type_string:
			return "a string";
	}
	return "unknown";
}

/*
 * Free a config-vars answer, wiping every string value first: the other
 * config vars (URLs of other databases, API keys) are secrets too.
 */
static void
put_wiped(struct json_object *root)
{
	if (root != NULL && json_object_is_type(root, json_type_object))
	{
		json_object_object_foreach(root, key, val)
		{
			(void) key;
			if (val != NULL && json_object_is_type(val, json_type_string))
				memset((char *) json_object_get_string(val), 0,
					   (size_t) json_object_get_string_len(val));
		}
	}
	json_object_put(root);
}

hr_code
hr_config_vars_pick(const char *body, size_t len, const char *app,
					const char *config_var, char **value, char **used_name,
					hr_error *err)
{
	struct json_object *root;
	struct json_object *v = NULL;
	char		alt[300];
	const char *name = config_var;
	const char *s;
	size_t		slen;

	*value = NULL;
	*used_name = NULL;
	root = hr_json_parse_whole(body, len);
	if (root == NULL)
	{
		hr_error_set(err, HR_EPROTOCOL,
					 "invalid answer from the Heroku API for app \"%s\"", app);
		hr_error_detail(err, "The config-vars answer is not a complete JSON document.");
		return HR_EPROTOCOL;
	}
	if (!json_object_is_type(root, json_type_object))
	{
		hr_error_set(err, HR_EPROTOCOL,
					 "invalid answer from the Heroku API for app \"%s\"", app);
		hr_error_detail(err, "The config-vars answer is %s, not a JSON object.",
						type_name(root));
		put_wiped(root);
		return HR_EPROTOCOL;
	}
	if (count_top_level_keys(body, len) != (size_t) json_object_object_length(root))
	{
		hr_error_set(err, HR_EPROTOCOL,
					 "invalid answer from the Heroku API for app \"%s\"", app);
		hr_error_detail(err, "The config-vars answer names a config var more than once.");
		put_wiped(root);
		return HR_EPROTOCOL;
	}
	/* exact name first, then the attachment name's <NAME>_URL */
	if (!json_object_object_get_ex(root, config_var, &v))
	{
		snprintf(alt, sizeof(alt), "%s_URL", config_var);
		if (json_object_object_get_ex(root, alt, &v))
			name = alt;
		else
		{
			hr_error_set(err, HR_ENOTFOUND,
						 "config var \"%s\" is not set on Heroku app \"%s\"",
						 config_var, app);
			hr_error_hint(err, "Check the name with \"heroku config -a %s\"; an attachment name such as HEROKU_POSTGRESQL_VIOLET also finds HEROKU_POSTGRESQL_VIOLET_URL.",
						  app);
			put_wiped(root);
			return HR_ENOTFOUND;
		}
	}
	if (v == NULL || json_object_is_type(v, json_type_null))
	{
		hr_error_set(err, HR_ENOTFOUND,
					 "config var \"%s\" of Heroku app \"%s\" is null", name, app);
		put_wiped(root);
		return HR_ENOTFOUND;
	}
	if (!json_object_is_type(v, json_type_string))
	{
		hr_error_set(err, HR_EPROTOCOL,
					 "invalid answer from the Heroku API for app \"%s\"", app);
		hr_error_detail(err, "The value of config var \"%s\" is %s, not a string.",
						name, type_name(v));
		put_wiped(root);
		return HR_EPROTOCOL;
	}
	s = json_object_get_string(v);
	slen = (size_t) json_object_get_string_len(v);
	if (memchr(s, '\0', slen) != NULL)
	{
		hr_error_set(err, HR_EBADURL,
					 "config var \"%s\" of Heroku app \"%s\" contains a NUL character",
					 name, app);
		put_wiped(root);
		return HR_EBADURL;
	}
	*value = hr_strndup(s, slen);
	*used_name = hr_strdup(name);
	/* json-c keeps its own copies of every value: wipe them before freeing */
	put_wiped(root);
	if (*value == NULL || *used_name == NULL)
	{
		hr_free_secret(*value);
		free(*used_name);
		*value = NULL;
		*used_name = NULL;
		return hr_error_oom(err);
	}
	return HR_OK;
}

/*
 * The "id" and "message" of a Heroku error body, for a DETAIL line.
 * Writes "" when the body is not such an object.
 */
void
hr_api_error_text(const char *body, size_t len, char *dst, size_t dstlen)
{
	struct json_object *root;
	struct json_object *id = NULL;
	struct json_object *msg = NULL;
	char		idp[80] = "";
	char		msgp[300] = "";

	dst[0] = '\0';
	if (body == NULL || len == 0)
		return;
	root = hr_json_parse_whole(body, len);
	if (root == NULL)
		return;
	if (json_object_is_type(root, json_type_object))
	{
		if (json_object_object_get_ex(root, "id", &id) &&
			json_object_is_type(id, json_type_string))
			hr_printable(idp, sizeof(idp), json_object_get_string(id), 60);
		if (json_object_object_get_ex(root, "message", &msg) &&
			json_object_is_type(msg, json_type_string))
			hr_printable(msgp, sizeof(msgp), json_object_get_string(msg), 250);
		if (idp[0] || msgp[0])
			snprintf(dst, dstlen, "%s%s%s", idp, (idp[0] && msgp[0]) ? ": " : "", msgp);
	}
	json_object_put(root);
}

/* Free the first n apps of apps, then apps. */
void
hr_feed_apps_free(hr_feed_app *apps, int n)
{
	int			i;

	if (apps == NULL)
		return;
	for (i = 0; i < n; i++)
	{
		free(apps[i].id);
		free(apps[i].name);
		free(apps[i].released_at);
	}
	free(apps);
}

/* A string member of obj no longer than max bytes, or NULL. */
static const char *
string_member(struct json_object *obj, const char *key, size_t max)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_string) ||
		(size_t) json_object_get_string_len(v) > max)
		return NULL;
	return json_object_get_string(v);
}

/* Printable ASCII only: what a timestamp of the API is made of. */
static int
is_plain_text(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

/*
 * The apps of one page of GET /apps: each element's id (a UUID), name and
 * released_at (NULL for an app never released).  Anything else is refused
 * whole: a list the resolver cannot read completely would hide changes.
 * *apps is malloc'd (free with hr_feed_apps_free), *napps its length.
 */
hr_code
hr_apps_list_parse(const char *body, size_t len, hr_feed_app **apps, int *napps,
				   hr_error *err)
{
	struct json_object *root = hr_json_parse_whole(body, len);
	size_t		n;
	size_t		i;
	hr_feed_app *out;

	*apps = NULL;
	*napps = 0;
	if (root == NULL || !json_object_is_type(root, json_type_array))
	{
		hr_error_set(err, HR_EPROTOCOL, "invalid answer from the Heroku API for the apps list");
		if (root == NULL)
			hr_error_detail(err, "The answer is not a complete JSON document.");
		else
			hr_error_detail(err, "The answer is %s, not a JSON array.", type_name(root));
		json_object_put(root);
		return HR_EPROTOCOL;
	}
	n = json_object_array_length(root);
	out = calloc(n > 0 ? n : 1, sizeof(hr_feed_app));
	if (out == NULL)
	{
		json_object_put(root);
		return hr_error_oom(err);
	}
	for (i = 0; i < n; i++)
	{
		struct json_object *a = json_object_array_get_idx(root, i);
		struct json_object *rel = NULL;
		const char *id = NULL;
		const char *name = NULL;
		const char *released = NULL;
		int			ok = a != NULL && json_object_is_type(a, json_type_object);

		if (ok)
		{
			id = string_member(a, "id", 36);
			name = string_member(a, "name", 30);
			ok = id && name && hr_valid_app(id) && hr_valid_app(name) &&
				json_object_object_get_ex(a, "released_at", &rel);
		}
		if (ok && !json_object_is_type(rel, json_type_null))
		{
			released = string_member(a, "released_at", HR_FEED_STAMP_MAX);
			ok = released != NULL && is_plain_text(released);
		}
		if (!ok)
		{
			hr_error_set(err, HR_EPROTOCOL, "invalid answer from the Heroku API for the apps list");
			hr_error_detail(err, "Element %zu of the list is not an app with an id, a name and a released_at.",
							i);
			hr_feed_apps_free(out, (int) i);
			json_object_put(root);
			return HR_EPROTOCOL;
		}
		out[i].id = hr_strdup(id);
		out[i].name = hr_strdup(name);
		out[i].released_at = released ? hr_strdup(released) : NULL;
		if (out[i].id == NULL || out[i].name == NULL || (released && out[i].released_at == NULL))
		{
			hr_feed_apps_free(out, (int) i + 1);
			json_object_put(root);
			return hr_error_oom(err);
		}
	}
	json_object_put(root);
	*apps = out;
	*napps = (int) n;
	return HR_OK;
}
