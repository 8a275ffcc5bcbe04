/*-------------------------------------------------------------------------
 *
 * hr_service.c
 *		Rewrite the text of a libpq connection service file: set one [NAME]
 *		section, keep every other byte.  Pure functions (no I/O, no global
 *		state), read exactly as libpq's parseServiceFile() reads the file:
 *		each line is trimmed of surrounding white space; an empty line or one
 *		starting with '#' is ignored; "[NAME]..." starts a section; anything
 *		else is keyword=value, the value being the rest of the line.  libpq
 *		uses the first section whose header matches.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hr_service.h"

typedef enum line_kind
{
	LINE_BLANK,
	LINE_COMMENT,
	LINE_HEADER,
	LINE_SETTING
} line_kind;

/* One line of the text: [start, end) without its '\n'; next line at next. */
typedef struct line
{
	size_t		start;
	size_t		end;
	size_t		next;
	size_t		cs;				/* content, trimmed as libpq trims it */
	size_t		ce;
	line_kind	kind;
} line;

static void
set_error(hr_service_error *err, hr_service_status status, const char *fmt,
		  const char *arg)
{
	if (err == NULL)
		return;
	err->status = status;
	snprintf(err->message, sizeof(err->message), fmt, arg);
	err->hint[0] = '\0';
}

/* Read the line starting at pos (pos < len) and classify it. */
static void
read_line(const char *text, size_t len, size_t pos, line *l)
{
	const char *nl = memchr(text + pos, '\n', len - pos);
	const char *nul;

	l->start = pos;
	l->end = nl ? (size_t) (nl - text) : len;
	l->next = nl ? l->end + 1 : len;
	/* libpq reads a line as a C string: a NUL byte ends it */
	nul = memchr(text + pos, '\0', l->end - pos);
	l->ce = nul ? (size_t) (nul - text) : l->end;
	l->cs = pos;
	while (l->ce > l->cs && isspace((unsigned char) text[l->ce - 1]))
		l->ce--;
	while (l->cs < l->ce && isspace((unsigned char) text[l->cs]))
		l->cs++;
	if (l->cs == l->ce)
		l->kind = LINE_BLANK;
	else if (text[l->cs] == '#')
		l->kind = LINE_COMMENT;
	else if (text[l->cs] == '[')
		l->kind = LINE_HEADER;
	else
		l->kind = LINE_SETTING;
}

/* Does header line l start section name, as libpq matches it? */
static int
header_matches(const char *text, const line *l, const char *name)
{
	size_t		n = strlen(name);

	return l->kind == LINE_HEADER && l->ce - l->cs >= n + 2 &&
		memcmp(text + l->cs + 1, name, n) == 0 && text[l->cs + 1 + n] == ']';
}

/* Offset of the header of the first section name, or len if none. */
static size_t
find_section(const char *text, size_t len, const char *name)
{
	size_t		pos = 0;
	line		l;

	while (pos < len)
	{
		read_line(text, len, pos, &l);
		if (header_matches(text, &l, name))
			return pos;
		pos = l.next;
	}
	return len;
}

int
hr_service_valid_name(const char *name)
{
	size_t		i;

	if (name == NULL || name[0] == '\0')
		return 0;
	for (i = 0; name[i] != '\0'; i++)
	{
		unsigned char c = (unsigned char) name[i];

		if (i >= 200 || c <= 0x20 || c == 0x7f || c == '[' || c == ']')
			return 0;
	}
	return 1;
}

/* libpq keywords are lowercase letters and '_'; "service" cannot nest. */
static int
valid_keyword(const char *kw)
{
	size_t		i;

	if (kw == NULL || kw[0] == '\0' || strlen(kw) > 64 ||
		strcmp(kw, "service") == 0)
		return 0;
	for (i = 0; kw[i] != '\0'; i++)
		if (!((kw[i] >= 'a' && kw[i] <= 'z') || (kw[i] >= '0' && kw[i] <= '9') ||
			  kw[i] == '_'))
			return 0;
	return 1;
}

/*
 * Can value be written so that libpq reads it back unchanged?  Not with a
 * line break, not with trailing white space (libpq trims it), not longer
 * than a line libpq accepts.
 */
static const char *
value_problem(const char *kw, const char *value)
{
	size_t		n;

	if (value == NULL)
		return "has no value";
	n = strlen(value);
	if (strpbrk(value, "\n\r") != NULL)
		return "contains a line break, which a service file cannot hold";
	if (n > 0 && isspace((unsigned char) value[n - 1]))
		return "ends with white space, which libpq would drop from a service file";
	if (strlen(kw) + 1 + n > HR_SERVICE_MAX_LINE)
		return "is too long for a line of a service file";
	return NULL;
}

/* Append n bytes at *o (the caller sized the buffer). */
static void
put(char *buf, size_t *o, const char *s, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf + *o, s, n);
	*o += n;
}

hr_service_status
hr_service_replace(const char *text, size_t len, const char *name, int n,
				   const char *const *keywords, const char *const *values,
				   char **out, size_t *outlen, hr_service_error *err)
{
	size_t		blocklen = 0;
	size_t		cap;
	size_t		o = 0;
	size_t		hpos;
	char	   *buf;
	int			i;

	*out = NULL;
	*outlen = 0;
	if (err)
	{
		err->status = HR_SERVICE_OK;
		err->message[0] = err->hint[0] = '\0';
	}
	if (text == NULL)
		len = 0;
	if (!hr_service_valid_name(name))
	{
		set_error(err, HR_SERVICE_EBADNAME, "%s",
				  "invalid service name: it must be 1 to 200 characters, without spaces, control characters, \"[\" or \"]\"");
		return HR_SERVICE_EBADNAME;
	}
	for (i = 0; i < n; i++)
	{
		const char *why;

		if (!valid_keyword(keywords[i]))
		{
			char		shown[80];
			size_t		j;

			/* keywords are not secret, but keep the text printable */
			for (j = 0; keywords[i] && keywords[i][j] && j < sizeof(shown) - 1; j++)
				shown[j] = isprint((unsigned char) keywords[i][j]) ? keywords[i][j] : '?';
			shown[j] = '\0';
			set_error(err, HR_SERVICE_EBADVALUE,
					  "connection option \"%s\" cannot be written to a service file", shown);
			return HR_SERVICE_EBADVALUE;
		}
		why = value_problem(keywords[i], values[i]);
		if (why)
		{
			if (err)
			{
				err->status = HR_SERVICE_EBADVALUE;
				snprintf(err->message, sizeof(err->message),
						 "the value of connection option \"%s\" %s", keywords[i], why);
				err->hint[0] = '\0';
			}
			return HR_SERVICE_EBADVALUE;
		}
		blocklen += strlen(keywords[i]) + 1 + strlen(values[i]) + 1;
	}

	/* text, a header, the block, and at most three added newlines */
	cap = len + strlen(name) + blocklen + 8;
	buf = malloc(cap);
	if (buf == NULL)
	{
		set_error(err, HR_SERVICE_ENOMEM, "%s", "out of memory");
		return HR_SERVICE_ENOMEM;
	}

#define PUT_BLOCK() \
	do { \
		for (i = 0; i < n; i++) \
		{ \
			put(buf, &o, keywords[i], strlen(keywords[i])); \
			put(buf, &o, "=", 1); \
			put(buf, &o, values[i], strlen(values[i])); \
			put(buf, &o, "\n", 1); \
		} \
	} while (0)

	hpos = find_section(text, len, name);
	if (hpos == len)
	{
		/* absent: append, after a blank line if the text does not end in one */
		put(buf, &o, text, len);
		if (len > 0)
		{
			size_t		ls;
			line		last;

			if (text[len - 1] != '\n')
				put(buf, &o, "\n", 1);
			/* the last line of the text */
			ls = len - (text[len - 1] == '\n' ? 1 : 0);
			while (ls > 0 && text[ls - 1] != '\n')
				ls--;
			read_line(text, len, ls, &last);
			if (last.kind != LINE_BLANK)
				put(buf, &o, "\n", 1);
		}
		put(buf, &o, "[", 1);
		put(buf, &o, name, strlen(name));
		put(buf, &o, "]\n", 2);
		PUT_BLOCK();
	}
	else
	{
		line		h;
		line		l;
		size_t		pos;
		size_t		send;
		int			has_settings = 0;
		int			done = 0;

		read_line(text, len, hpos, &h);
		/* the section runs to the next header or the end */
		for (pos = h.next, send = len; pos < len; pos = l.next)
		{
			read_line(text, len, pos, &l);
			if (l.kind == LINE_HEADER)
			{
				send = pos;
				break;
			}
			if (l.kind == LINE_SETTING)
				has_settings = 1;
		}
		put(buf, &o, text, h.next);
		if (h.next == h.end)
			put(buf, &o, "\n", 1);	/* header was the last line, unended */
		if (!has_settings)
		{
			PUT_BLOCK();
			done = 1;
		}
		/* comments and blank lines stay; settings give way to the block */
		for (pos = h.next; pos < send; pos = l.next)
		{
			read_line(text, len, pos, &l);
			if (l.kind != LINE_SETTING)
				put(buf, &o, text + l.start, l.next - l.start);
			else if (!done)
			{
				PUT_BLOCK();
				done = 1;
			}
		}
		put(buf, &o, text + send, len - send);
	}
#undef PUT_BLOCK

	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return HR_SERVICE_OK;
}

char *
hr_service_get(const char *text, size_t len, const char *name,
			   const char *keyword)
{
	size_t		pos;
	size_t		klen = strlen(keyword);
	line		l;

	pos = find_section(text, len, name);
	if (pos == len)
		return NULL;
	read_line(text, len, pos, &l);
	for (pos = l.next; pos < len; pos = l.next)
	{
		const char *eq;

		read_line(text, len, pos, &l);
		if (l.kind == LINE_HEADER)
			break;
		if (l.kind != LINE_SETTING)
			continue;
		eq = memchr(text + l.cs, '=', l.ce - l.cs);
		if (eq == NULL)
			return NULL;		/* libpq: syntax error */
		if ((size_t) (eq - (text + l.cs)) == klen &&
			memcmp(text + l.cs, keyword, klen) == 0)
		{
			size_t		vs = (size_t) (eq - text) + 1;
			char	   *v = malloc(l.ce - vs + 1);

			if (v == NULL)
				return NULL;
			memcpy(v, text + vs, l.ce - vs);
			v[l.ce - vs] = '\0';
			return v;
		}
	}
	return NULL;
}

void
hr_service_free(char *text, size_t len)
{
	volatile char *v = text;

	if (text == NULL)
		return;
	while (len--)
		*v++ = 0;
	free(text);
}
