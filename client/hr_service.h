/*-------------------------------------------------------------------------
 *
 * hr_service.h
 *		libpq connection service files (pg_service.conf): replace one
 *		[NAME] section and keep every other byte, and write the result
 *		safely.  Used by heroku-pg-resolve --service.
 *
 * The text functions are pure (text in, text out, no I/O, malloc only), so
 * that a fuzzer can drive them; the file function does the locking and the
 * atomic replacement.  Nothing here prints, and no message quotes a value.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_SERVICE_H
#define HR_SERVICE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Longest line libpq reads from a service file (it refuses a longer one as
 * "line too long").
 */
#define HR_SERVICE_MAX_LINE 1021

typedef enum hr_service_status
{
	HR_SERVICE_OK = 0,
	HR_SERVICE_EBADNAME,		/* the section name cannot be written */
	HR_SERVICE_EBADVALUE,		/* a keyword or value cannot be written */
	HR_SERVICE_EIO,				/* the file could not be read or written */
	HR_SERVICE_ENOMEM
} hr_service_status;

/* What went wrong, fit to show (never a value: values hold a password). */
typedef struct hr_service_error
{
	hr_service_status status;
	char		message[512];
	char		hint[256];
} hr_service_error;

/*
 * A usable section name: 1 to 200 bytes, none of them a control character,
 * a space, '[' or ']'.
 */
extern int	hr_service_valid_name(const char *name);

/*
 * text (len bytes, need not be NUL-terminated, may hold anything) with the
 * section [name] set to the n keyword=value pairs: the first section libpq
 * would read for name has its setting lines replaced (the new ones go where
 * the first old one was, or right after the header), its comments and blank
 * lines kept in place; absent, the section is appended.  Every byte outside
 * the replaced setting lines is kept.  Same input, same output; applying it
 * to its own output changes nothing.
 *
 * *out (malloc'd, NUL-terminated, *outlen bytes before the NUL) holds the
 * values, so a password: free it with hr_service_free().
 */
extern hr_service_status hr_service_replace(const char *text, size_t len,
											const char *name, int n,
											const char *const *keywords,
											const char *const *values,
											char **out, size_t *outlen,
											hr_service_error *err);

/*
 * The value libpq would read for keyword in service name from text, as a
 * malloc'd string, or NULL when there is none (or out of memory).
 */
extern char *hr_service_get(const char *text, size_t len, const char *name,
							const char *keyword);

/* Wipe and free a text made by hr_service_replace() or hr_service_get(). */
extern void hr_service_free(char *text, size_t len);

/*
 * Set section [name] of the service file at path (see hr_service_replace),
 * creating the file if needed.  Serialized against other writers by an
 * flock() on "<path>.lock"; the new text goes to a temporary file in the
 * same directory, mode 0600, fsync'd, then renamed over path, and the
 * directory fsync'd.  A symbolic link at path is followed, link by link,
 * and its target replaced, but only a link owned by the caller or root, and
 * in a sticky world-writable directory (such as /tmp) only one owned by the
 * caller: another is refused (HR_SERVICE_EIO), and nothing is written.
 */
extern hr_service_status hr_service_file_update(const char *path,
												const char *name, int n,
												const char *const *keywords,
												const char *const *values,
												hr_service_error *err);

/*
 * hr_service_file_update, telling in *changed (may be NULL) whether the
 * file was replaced (1) or already held exactly that text, mode 0600 (0).
 * heroku-pg-resolve watch rewrites an entry only when its text changed.
 */
extern hr_service_status hr_service_file_set(const char *path,
											 const char *name, int n,
											 const char *const *keywords,
											 const char *const *values,
											 int *changed,
											 hr_service_error *err);

/*
 * The safe write under hr_service_file_set, for any file a program owns:
 * fn gets the old text (NULL and 0 when there is none) and gives the new
 * one (malloc'd); the lock, the link rules, the atomic replacement and
 * *changed are as above, the mode is mode (a file with group bits in mode
 * keeps the group an operator gave it, so that another program may read
 * it), and what ("env file") names the file in messages.
 */
typedef hr_service_status (*hr_rewrite_fn) (const char *old, size_t oldlen, void *arg,
											char **new, size_t *newlen,
											hr_service_error *err);
extern hr_service_status hr_safe_file_rewrite(const char *path, const char *what,
											  mode_t mode, hr_rewrite_fn fn, void *arg,
											  int *changed, hr_service_error *err);

/* hr_safe_file_rewrite with the whole new text given. */
extern hr_service_status hr_safe_file_write(const char *path, const char *what,
											mode_t mode, const char *text, size_t len,
											int *changed, hr_service_error *err);

/* ~/.pg_service.conf: $HOME, else the user's home directory; malloc'd. */
extern char *hr_service_default_file(void);

#endif							/* HR_SERVICE_H */
