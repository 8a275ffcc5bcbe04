/*-------------------------------------------------------------------------
 *
 * hr_util.c
 *		Small pieces of the resolver core: errors, buffers, validation,
 *		settings, file reading.  No server headers.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hr_internal.h"

/* explicit_bzero is in glibc >= 2.25; fall back to a volatile loop. */
void
hr_wipe(void *p, size_t n)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
	explicit_bzero(p, n);
#else
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
#endif
}

void
hr_free_secret(char *s)
{
	if (s == NULL)
		return;
	hr_wipe(s, strlen(s));
	free(s);
}

const char *
hr_version(void)
{
	return HR_VERSION;
}

void
hr_settings_init(hr_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->timeout_ms = HR_DEFAULT_TIMEOUT_MS;
	s->min_sslmode = HR_SSLMODE_REQUIRE;
	s->use_env = 1;
}

/* --- buffers ----------------------------------------------------------- */

void
hr_buf_init(hr_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = 0;
}

void
hr_buf_append(hr_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;
		char	   *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = malloc(cap);
		if (p == NULL)
		{
			hr_buf_free_secret(b);
			b->oom = 1;
			return;
		}
		/* copy rather than realloc, so no stray copy of a secret survives */
		if (b->data)
		{
			memcpy(p, b->data, b->len);
			hr_wipe(b->data, b->cap);
			free(b->data);
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
hr_buf_puts(hr_buf *b, const char *s)
{
	hr_buf_append(b, s, strlen(s));
}

void
hr_buf_putc(hr_buf *b, char c)
{
	hr_buf_append(b, &c, 1);
}

void
hr_buf_free_secret(hr_buf *b)
{
	if (b->data)
	{
		hr_wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}

/* --- errors ------------------------------------------------------------ */

hr_code
hr_error_set(hr_error *err, hr_code code, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL)
		return code;
	err->code = code;
	err->detail[0] = '\0';
	err->hint[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

void
hr_error_detail(hr_error *err, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

void
hr_error_hint(hr_error *err, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
}

hr_code
hr_error_oom(hr_error *err)
{
	return hr_error_set(err, HR_ENOMEM, "out of memory");
}

void
hr_printable(char *dst, size_t dstlen, const char *s, size_t maxchars)
{
	size_t		o = 0;
	size_t		i;

	if (dstlen == 0)
		return;
	for (i = 0; s[i] != '\0' && o + 5 < dstlen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (i >= maxchars)
		{
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			dst[o++] = '?';
		else
			dst[o++] = (char) c;
	}
	dst[o] = '\0';
}

char *
hr_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *
hr_strndup(const char *s, size_t n)
{
	char	   *p = malloc(n + 1);

	if (p)
	{
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

const char *
hr_code_name(hr_code code)
{
	switch (code)
	{
		case HR_OK:
			return "ok";
		case HR_EINVAL:
			return "invalid argument";
		case HR_ENOTOKEN:
			return "no API token";
		case HR_ETOKENFILE:
			return "token file unreadable";
		case HR_EAUTH:
			return "authentication failed";
		case HR_EFORBIDDEN:
			return "permission denied";
		case HR_ENOTFOUND:
			return "not found";
		case HR_ERATELIMIT:
			return "rate limited";
		case HR_EUNAVAILABLE:
			return "API unavailable";
		case HR_EPROTOCOL:
			return "invalid API answer";
		case HR_EBADURL:
			return "invalid database URL";
		case HR_ECANCELED:
			return "canceled";
		case HR_ENOMEM:
			return "out of memory";
	}
	return "unknown error";
}

/* --- validation -------------------------------------------------------- */

static int
is_uuid(const char *s)
{
	int			i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return 0;
		}
		else if (!isxdigit((unsigned char) s[i]))
			return 0;
	}
	return 1;
}

/* ^[a-z][a-z0-9-]{1,28}[a-z0-9]$ or a UUID: nothing that could bend a path */
int
hr_valid_app(const char *app)
{
	size_t		n;
	size_t		i;

	if (app == NULL)
		return 0;
	if (is_uuid(app))
		return 1;
	n = strlen(app);
	if (n < 3 || n > 30)
		return 0;
	if (!(app[0] >= 'a' && app[0] <= 'z'))
		return 0;
	for (i = 1; i < n; i++)
	{
		char		c = app[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (c == '-' && i < n - 1)))
			return 0;
	}
	return 1;
}

int
hr_valid_config_var(const char *name)
{
	size_t		i;

	if (name == NULL || name[0] == '\0')
		return 0;
	for (i = 0; name[i] != '\0'; i++)
	{
		char		c = name[i];

		if (i >= 255)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

/*
 * Is name what asking for config var asked finds: asked itself, or its
 * <asked>_URL form (an attachment name)?
 */
int
hr_same_config_var(const char *name, const char *asked)
{
	size_t		n = strlen(asked);

	return strcmp(name, asked) == 0 ||
		(strncmp(name, asked, n) == 0 && strcmp(name + n, "_URL") == 0);
}

/*
 * Check an app and a config var name as they enter the resolver, with the
 * message a user sees; HR_EINVAL or HR_OK.
 */
hr_code
hr_check_names(const char *app, const char *config_var, hr_error *err)
{
	char		shown[120];

	if (!hr_valid_app(app))
	{
		hr_printable(shown, sizeof(shown), app ? app : "", 60);
		hr_error_set(err, HR_EINVAL, "invalid Heroku app name \"%s\"", shown);
		hr_error_detail(err, "An app name is 3 to 30 characters of a-z, 0-9 and \"-\", starting with a letter; an app id is a UUID.");
		return HR_EINVAL;
	}
	if (!hr_valid_config_var(config_var))
	{
		hr_printable(shown, sizeof(shown), config_var ? config_var : "", 60);
		hr_error_set(err, HR_EINVAL, "invalid config var name \"%s\"", shown);
		hr_error_detail(err, "A config var name is 1 to 255 characters of A-Z, a-z, 0-9 and \"_\".");
		return HR_EINVAL;
	}
	return HR_OK;
}

int
hr_sslmode_from_name(const char *name)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, "require") == 0)
		return HR_SSLMODE_REQUIRE;
	if (strcmp(name, "verify-ca") == 0)
		return HR_SSLMODE_VERIFY_CA;
	if (strcmp(name, "verify-full") == 0)
		return HR_SSLMODE_VERIFY_FULL;
	return -1;
}

const char *
hr_sslmode_name(hr_sslmode mode)
{
	switch (mode)
	{
		case HR_SSLMODE_VERIFY_CA:
			return "verify-ca";
		case HR_SSLMODE_VERIFY_FULL:
			return "verify-full";
		case HR_SSLMODE_REQUIRE:
			break;
	}
	return "require";
}

long
hr_parse_timeout_ms(const char *text)
{
	char	   *end;
	long long	v;

	if (text == NULL)
		return -1;
	while (isspace((unsigned char) *text))
		text++;
	if (!isdigit((unsigned char) *text))
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0)
		return -1;
	while (isspace((unsigned char) *end))
		end++;
	if (strcmp(end, "s") == 0)
	{
		if (v > INT_MAX / 1000)
			return -1;
		v *= 1000;
	}
	else if (*end != '\0' && strcmp(end, "ms") != 0)
		return -1;
	if (v < 1 || v > INT_MAX)
		return -1;
	return (long) v;
}

/* --- files ------------------------------------------------------------- */

hr_code
hr_read_file(const char *path, const char *what, size_t max,
			 char **text, size_t *len, hr_error *err)
{
	FILE	   *f;
	hr_buf		b;
	char		chunk[4096];
	size_t		n;

	*text = NULL;
	*len = 0;
	f = fopen(path, "r");
	if (f == NULL)
	{
		int			e = errno;

		hr_error_set(err, HR_ETOKENFILE, "could not open %s \"%s\": %s",
					 what, path, strerror(e));
		if (err)
			err->sys_errno = e;
		return HR_ETOKENFILE;
	}
	hr_buf_init(&b);
	hr_buf_append(&b, "", 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
	{
		hr_buf_append(&b, chunk, n);
		if (b.len > max)
			break;
	}
	memset(chunk, 0, sizeof(chunk));
	if (ferror(f))
	{
		int			e = errno;

		fclose(f);
		hr_buf_free_secret(&b);
		hr_error_set(err, HR_ETOKENFILE, "could not read %s \"%s\": %s",
					 what, path, strerror(e));
		if (err)
			err->sys_errno = e;
		return HR_ETOKENFILE;
	}
	fclose(f);
	if (b.oom)
		return hr_error_oom(err);
	if (b.len > max)
	{
		hr_buf_free_secret(&b);
		hr_error_set(err, HR_ETOKENFILE, "%s \"%s\" is larger than %zu bytes",
					 what, path, max);
		return HR_ETOKENFILE;
	}
	*text = b.data;
	*len = b.len;
	return HR_OK;
}

hr_code
hr_read_first_line(const char *path, const char *what, char **line,
				   hr_error *err)
{
	char	   *text;
	size_t		len;
	size_t		start = 0;
	size_t		end;
	hr_code		rc;

	*line = NULL;
	rc = hr_read_file(path, what, 64 * 1024, &text, &len, err);
	if (rc != HR_OK)
		return rc;
	end = strcspn(text, "\r\n");
	while (start < end && isspace((unsigned char) text[start]))
		start++;
	while (end > start && isspace((unsigned char) text[end - 1]))
		end--;
	*line = hr_strndup(text + start, end - start);
	hr_free_secret(text);
	if (*line == NULL)
		return hr_error_oom(err);
	return HR_OK;
}

/* Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm). */
static long long
days_from_civil(int y, int m, int d)
{
	long long	era;
	int			yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (int) (y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Seconds since the epoch of a UTC time; -1 for a field out of range. */
long long
hr_utc_seconds(int y, int mon, int d, int hh, int mm, int ss)
{
	if (y < 1970 || y > 9999 || mon < 1 || mon > 12 || d < 1 || d > 31 ||
		hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return -1;
	return days_from_civil(y, mon, d) * 86400 + hh * 3600 + mm * 60 + ss;
}
