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
/* Zero n bytes so that the compiler cannot drop it (a secret's memory). */
extern void hr_wipe(void *p, size_t n);

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

/* hr_util.c: the names as they enter the resolver; HR_EINVAL or HR_OK. */
extern hr_code hr_check_names(const char *app, const char *config_var,
							  hr_error *err);
/* name is asked or asked_URL (what asking for asked may find) */
extern int	hr_same_config_var(const char *name, const char *asked);

/* hr_url.c: URLs and hosts */
/*
 * hr_url_parse with local_ok = 0 refusing hosts on this machine (the
 * server, unless heroku.allow_local_hosts); hr_url_parse passes 1.
 */
extern hr_code hr_url_parse_checked(const char *url, hr_sslmode min_sslmode,
									int local_ok, const char *app,
									const char *config_var, hr_conninfo *out,
									hr_error *err);
/* Loopback, link-local, unspecified or a localhost name. */
extern int	hr_host_is_local(const char *host);
/* True if host is localhost, 127.0.0.0/8 or ::1. */
extern int	hr_host_is_loopback(const char *host);
/* Host part of an http(s) URL ("api.heroku.com"); malloc'd or NULL. */
extern char *hr_url_host(const char *url);
/* https, or http to a loopback host; else HR_EINVAL. */
extern hr_code hr_api_url_check(const char *api_url, hr_error *err);

/* hr_conninfo.c: append a copy of kw=val; 0 when out of memory. */
extern int	hr_conninfo_add(hr_conninfo *ci, const char *kw, const char *val);

/*
 * hr_json.c: body as exactly one strict JSON value of at most
 * HR_LIST_MAX_BODY_BYTES, or NULL (not JSON, truncated, trailing bytes); the
 * caller puts it.  Only files that include json-c may call it.
 */
struct json_object;
extern struct json_object *hr_json_parse_whole(const char *body, size_t len);

/* hr_json.c: "id: message" of a Heroku error body, or "". */
extern void hr_api_error_text(const char *body, size_t len, char *dst, size_t dstlen);

/* hr_http.c: what one API request brought back. */
typedef struct hr_response
{
	long		status;			/* HTTP status, 0 when none was had */
	hr_buf		body;			/* may hold secrets: hr_response_free wipes */
	char		etag[256];
	long		ratelimit_remaining;	/* -1 if absent */
	long		retry_after;	/* seconds, -1 if absent */
	long long	date;			/* the Date header, Unix seconds; -1 if absent */
	char		next_range[512];	/* a list's Next-Range, "" if absent */
	int			next_range_cut; /* it was longer than next_range holds */
} hr_response;

extern hr_code hr_http_get(hr_http *h, const hr_settings *s, const char *url,
						   const char *token, const char *etag, const char *app,
						   hr_response *resp, hr_error *err);
extern hr_code hr_http_get_range(hr_http *h, const hr_settings *s, const char *url,
								 const char *token, const char *etag,
								 const char *range, const char *app,
								 hr_response *resp, hr_error *err);
extern void hr_response_free(hr_response *resp);

/* hr_json.c and hr_feed.c: the release feed (GET /apps) */
#define HR_FEED_STAMP_MAX		63	/* longest released_at accepted */
/* apps a page at most (the API's largest max=) */
#define HR_FEED_PAGE_MAX		1000
/*
 * Bytes one answer of the apps list may have: a full page of real app
 * objects (about 1 kB each, 22 fields) with room for long names, URLs and
 * descriptions, 8 KiB an app.  Other answers keep HR_MAX_BODY_BYTES.
 */
#define HR_LIST_MAX_BODY_BYTES	(HR_FEED_PAGE_MAX * 8 * 1024)

/* Seconds since the epoch of a UTC calendar time (no range checks beyond sanity), or -1. */
extern long long hr_utc_seconds(int y, int mon, int d, int hh, int mm, int ss);
/* released_at ("2012-01-01T12:00:00Z", fractions and offsets allowed) in Unix seconds, or -1. */
extern long long hr_feed_stamp_seconds(const char *stamp);
/*
 * Is a release stamped released_at "racy" for a listing made at second
 * listed_at: not older than that second, so that another release in the
 * same second would leave the listing unchanged (a 304)?  An unreadable
 * stamp or an unknown listing time is racy.
 */
extern int	hr_feed_racy(const char *released_at, long long listed_at);

/* One app of the account's list. */
typedef struct hr_feed_app
{
	char	   *id;				/* a UUID */
	char	   *name;
	char	   *released_at;	/* as the API wrote it; NULL: never released */
	int			racy;			/* for the caller: to follow once more (hr_feed_racy) */
} hr_feed_app;

/* One page of the last listing, for a conditional request next time. */
typedef struct hr_feed_page
{
	char	   *range;			/* the Range sent ("" for none) */
	char	   *etag;			/* the ETag it answered with ("" if none) */
	char	   *next_range;		/* its Next-Range; NULL on the last page */
	int			napps;
} hr_feed_page;

/* What one listing keeps for the next (zero it to start; hr_feed_reset). */
typedef struct hr_feed
{
	int			page_size;		/* max= of the Range; 0 sends none (API: 200) */
	int			npages;
	hr_feed_page *pages;
} hr_feed;

/* What one listing found. */
typedef struct hr_feed_listing
{
	hr_feed_app *apps;			/* the apps of the pages that answered 200/206 */
	int			napps;
	int			apps_seen;		/* every app, those of 304 pages included */
	int			pages;
	int			pages_not_modified;
	int			requests;		/* API requests made, failed ones included */
	long		ratelimit_remaining;	/* the last RateLimit-Remaining, or -1 */
	long long	listed_at;		/* the API's clock (Date) at its first answer, Unix seconds */
	long long	bytes;			/* body bytes read */
} hr_feed_listing;

extern hr_code hr_apps_list_parse(const char *body, size_t len, hr_feed_app **apps,
								  int *napps, hr_error *err);
extern void hr_feed_apps_free(hr_feed_app *apps, int n);
/*
 * List the account's apps with token, every page conditional on what
 * feed kept of the last listing; feed is updated only on success.  out is
 * filled (requests, rate limit) even on failure; free it with
 * hr_feed_listing_free either way.
 */
extern hr_code hr_feed_list(hr_http *h, const hr_settings *s, const char *token,
							hr_feed *feed, hr_feed_listing *out, hr_error *err);
extern void hr_feed_listing_free(hr_feed_listing *l);
extern void hr_feed_reset(hr_feed *feed);

/*
 * hr_resolve.c: the steps of hr_fetch_config_var, for callers that have
 * checked the names where they entered.
 */
extern hr_code hr_prepare_request(const hr_settings *s, const char *app,
								  const char *config_var, char **token,
								  hr_error *err);
extern hr_code hr_fetch_with_token(hr_http *h, const hr_settings *s,
								   const char *token, const char *app,
								   const char *config_var, const char *etag,
								   hr_fetch *out, hr_error *err);
extern hr_code hr_result_from_url_checked(const char *url, hr_sslmode min_sslmode,
										  int local_ok, const char *app,
										  const char *config_var, hr_result *out,
										  hr_error *err);
extern hr_code hr_fetch_checked(hr_http *h, const hr_settings *s, const char *app,
								const char *config_var, const char *etag,
								hr_fetch *out, hr_error *err);

#endif							/* HR_INTERNAL_H */
