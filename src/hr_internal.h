/*-------------------------------------------------------------------------
 *
 * hr_internal.h
 *		Helpers shared by the resolver core's files.  No server headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_INTERNAL_H
#define HR_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "heroku_resolver.h"

#ifndef HR_VERSION
#error "HR_VERSION must be defined by the build (from heroku_resolver.control)"
#endif

#if defined(__GNUC__)
#define HR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HR_PRINTF(f, a)
#endif

/* Growable byte buffer, always NUL-terminated. */
typedef struct hr_buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	int			oom;			/* an append failed; data is unusable */
} hr_buf;

extern void hr_buf_init(hr_buf *b);
extern void hr_buf_append(hr_buf *b, const char *s, size_t n);
extern void hr_buf_puts(hr_buf *b, const char *s);
extern void hr_buf_putc(hr_buf *b, char c);
extern void hr_buf_free_secret(hr_buf *b);

/* Set err's code and message (printf-style); clears detail and hint. */
extern hr_code hr_error_set(hr_error *err, hr_code code, const char *fmt,...) HR_PRINTF(3, 4);
extern void hr_error_detail(hr_error *err, const char *fmt,...) HR_PRINTF(2, 3);
extern void hr_error_hint(hr_error *err, const char *fmt,...) HR_PRINTF(2, 3);
extern hr_code hr_error_oom(hr_error *err);

/* Copy of s for a message: control characters and quotes made safe, cut. */
extern void hr_printable(char *dst, size_t dstlen, const char *s, size_t maxchars);

extern char *hr_strdup(const char *s);
extern char *hr_strndup(const char *s, size_t n);

/* Read the first line of a file (CR/LF and surrounding blanks trimmed). */
extern hr_code hr_read_first_line(const char *path, const char *what,
								  char **line, hr_error *err);
/* Read a whole (small) file. */
extern hr_code hr_read_file(const char *path, const char *what, size_t max,
							char **text, size_t *len, hr_error *err);

/* Host part of an http(s) URL ("api.heroku.com"); malloc'd or NULL. */
extern char *hr_url_host(const char *url);

/* "id: message" of a Heroku error body, or "" (hr_json.c). */
extern void hr_api_error_text(const char *body, size_t len, char *dst, size_t dstlen);

/* True if host is localhost, 127.0.0.0/8 or ::1. */
extern int	hr_host_is_loopback(const char *host);

#endif							/* HR_INTERNAL_H */
