/*-------------------------------------------------------------------------
 *
 * pg_cache_token.c
 *		The caller's half of a cache key: the HMAC of its effective token and
 *		CA settings, remembered per backend so that a warm call neither
 *		reads the token file again nor computes the HMAC again.
 *
 * A call used to read heroku.api_key_file and compute an HMAC-SHA256 before
 * every cache lookup: about 60% of a warm call.  The digest of the last
 * token is now kept with what it was derived from:
 *   - heroku.api_key: the token itself (this backend's GUC already holds it);
 *   - heroku.api_key_file: the path and the file's identity and times (device,
 *     inode, size, mtime, ctime), so one stat() stands for open+read+close;
 *     a file that is replaced, rewritten, truncated, moved or chmod'ed gets a
 *     new ctime and is read again.  It is only remembered when a stat()
 *     after the read still matches the stat() before, so a file changing
 *     during the read is never taken for its old self, and when its ctime
 *     is over 100 ms old, so a later write cannot leave the times as they
 *     were (they come from a coarse clock).
 * and the CA file setting and the cache (whose random HMAC key it is under).
 * Tokens from HEROKU_API_KEY or a netrc file are not remembered: each call
 * reads them, as before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <time.h>

#include "utils/memutils.h"

#include "pg_cache.h"

typedef struct TokenMemo
{
	bool		valid;
	HrCache    *cache;
	bool		from_file;		/* else from heroku.api_key */
	char	   *source;			/* the token (a secret) or the file's path */
	char	   *ca_file;
	struct stat st;
	uint8		digest[HR_DIGEST_LEN];
} TokenMemo;

static TokenMemo memo;

/* The last API URL that passed hr_api_url_check (a check of the string alone). */
static char *checked_api_url = NULL;

static void
check_api_url(const char *api_url)
{
	hr_error	err;

	if (checked_api_url && strcmp(checked_api_url, api_url) == 0)
		return;
	memset(&err, 0, sizeof(err));
	if (hr_api_url_check(api_url, &err) != HR_OK)
		hr_pg_report(ERROR, &err);
	if (checked_api_url)
		pfree(checked_api_url);
	checked_api_url = MemoryContextStrdup(TopMemoryContext, api_url);
}

/*
 * Whether two stat()s show the same file, unchanged.  Times to the second
 * would miss a token rewritten in place within a second: where stat() has
 * no nanoseconds (st_mtim, POSIX.1-2008) a file's token is not remembered.
 */
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
#define HR_STAT_NS 1
static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
		a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}
/*
 * A file changed less than this long ago is not remembered: file times come
 * from a coarse clock (a tick, a few ms), so a second write within the same
 * tick could leave them as they were.  Once a file's ctime is older than
 * this, any later write gives it a later one (git's "racily clean" rule).
 */
#define HR_RACY_NS (100 * 1000 * 1000)

static bool
settled(const struct stat *st)
{
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME, &now) != 0)
		return false;
	return (int64) (now.tv_sec - st->st_ctim.tv_sec) * 1000000000 +
		(now.tv_nsec - st->st_ctim.tv_nsec) > HR_RACY_NS;
}
#else
#define HR_STAT_NS 0
static bool
same_file(const struct stat *a, const struct stat *b)
{
	(void) a;
	(void) b;
	return false;
}

static bool
settled(const struct stat *st)
{
	(void) st;
	return false;
}
#endif

static void
memo_forget(void)
{
	if (memo.source)
	{
		explicit_bzero(memo.source, strlen(memo.source));
		pfree(memo.source);
	}
	if (memo.ca_file)
		pfree(memo.ca_file);
	memset(&memo, 0, sizeof(memo));
}

/* The remembered digest, if it stands for what s asks with now. */
static bool
memo_lookup(HrCache *c, const hr_settings *s, uint8 *digest)
{
	const char *ca = s->ca_file ? s->ca_file : "";
	struct stat st;

	if (!memo.valid || memo.cache != c || strcmp(memo.ca_file, ca) != 0)
		return false;
	if (s->api_key && s->api_key[0])
	{
		if (memo.from_file || strcmp(memo.source, s->api_key) != 0)
			return false;
	}
	else if (s->api_key_file && s->api_key_file[0])
	{
		if (!memo.from_file || strcmp(memo.source, s->api_key_file) != 0 ||
			stat(s->api_key_file, &st) != 0 || !same_file(&st, &memo.st))
			return false;
	}
	else
		return false;
	memcpy(digest, memo.digest, HR_DIGEST_LEN);
	return true;
}

static void
memo_remember(HrCache *c, const hr_settings *s, const uint8 *digest,
			  const struct stat *before)
{
	MemoryContext old;

	memo_forget();
	if (s->api_key && s->api_key[0])
		memo.from_file = false;
	else if (HR_STAT_NS && s->api_key_file && s->api_key_file[0] && before != NULL)
	{
		struct stat after;

		if (stat(s->api_key_file, &after) != 0 || !same_file(before, &after) ||
			!settled(&after))
			return;
		memo.from_file = true;
		memo.st = *before;
	}
	else
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	memo.source = pstrdup(memo.from_file ? s->api_key_file : s->api_key);
	memo.ca_file = pstrdup(s->ca_file ? s->ca_file : "");
	MemoryContextSwitchTo(old);
	memo.cache = c;
	memcpy(memo.digest, digest, HR_DIGEST_LEN);
	memo.valid = true;
}

/*
 * Fill key for (api_url, app, config_var) as asked by the caller of s: its
 * token's digest from the memo, or from the token found as a request would
 * find it (any error is reported, as hr_prepare_request gives it).
 */
void
hr_cache_caller_key(HrCache *c, HrCacheKey *key, const hr_settings *s,
					const char *api_url, const char *app, const char *config_var)
{
	hr_error	err;
	char	   *token;
	struct stat before;
	bool		have_before = false;

	memset(&err, 0, sizeof(err));
	if (memo_lookup(c, s, key->token_digest))
	{
		/* the rest of what hr_prepare_request checks before a request */
		check_api_url(api_url);
		key->api_url = api_url;
		key->app = app;
		key->config_var = config_var;
		hr_cache_key_finish(key);
		return;
	}
	if (!(s->api_key && s->api_key[0]) && s->api_key_file && s->api_key_file[0])
		have_before = stat(s->api_key_file, &before) == 0;
	if (hr_prepare_request(s, app, config_var, &token, &err) != HR_OK)
		hr_pg_report(ERROR, &err);
	hr_cache_make_key(c, key, api_url, app, config_var, token, s->ca_file);
	hr_free_secret(token);
	memo_remember(c, s, key->token_digest, have_before ? &before : NULL);
}
