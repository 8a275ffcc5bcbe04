/*-------------------------------------------------------------------------
 *
 * hr_service_file.c
 *		Read-modify-write of a service file: serialized by an flock() on a
 *		sidecar lock file, replaced atomically (temporary file in the same
 *		directory, fsync, rename, fsync of the directory), mode 0600.  The
 *		same safe write serves the watcher's other sink files
 *		(hr_safe_file_write), so there is one atomic writer.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hr_service.h"

/* Fill err for an allocation failure; returns HR_SERVICE_ENOMEM. */
static hr_service_status
oom_error(hr_service_error *err)
{
	if (err)
	{
		err->status = HR_SERVICE_ENOMEM;
		snprintf(err->message, sizeof(err->message), "out of memory");
		err->hint[0] = '\0';
	}
	return HR_SERVICE_ENOMEM;
}

/* a service file is small; anything bigger is not one */
#define HR_SERVICE_MAX_FILE (16 * 1024 * 1024)

static hr_service_status
io_error(hr_service_error *err, const char *fmt, const char *path, int e)
{
	if (err)
	{
		char		what[300];

		snprintf(what, sizeof(what), fmt, path);
		err->status = HR_SERVICE_EIO;
		snprintf(err->message, sizeof(err->message), "%s: %s", what, strerror(e));
		err->hint[0] = '\0';
	}
	return HR_SERVICE_EIO;
}

static void
set_hint(hr_service_error *err, const char *hint)
{
	if (err)
		snprintf(err->hint, sizeof(err->hint), "%s", hint);
}

/* Write all of buf to fd. */
static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		w = write(fd, buf, len);

		if (w < 0)
		{
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		len -= (size_t) w;
	}
	return 0;
}

/*
 * Read the whole file at fd into *text (malloc'd).  Returns 0, or -1 with
 * errno set.
 */
static int
read_all(int fd, char **text, size_t *len)
{
	size_t		cap = 8192;
	size_t		n = 0;
	char	   *buf = malloc(cap);

	if (buf == NULL)
		return -1;
	for (;;)
	{
		ssize_t		r;

		if (n == cap)
		{
			char	   *bigger;

			if (cap >= HR_SERVICE_MAX_FILE)
			{
				hr_service_free(buf, n);
				errno = EFBIG;
				return -1;
			}
			/* copy rather than realloc: the old text may hold passwords */
			bigger = malloc(cap * 2);
			if (bigger == NULL)
			{
				hr_service_free(buf, n);
				return -1;
			}
			memcpy(bigger, buf, n);
			hr_service_free(buf, n);
			buf = bigger;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0)
		{
			if (errno == EINTR)
				continue;
			{
				int			e = errno;

				hr_service_free(buf, n);
				errno = e;
			}
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t) r;
	}
	*text = buf;
	*len = n;
	return 0;
}

/* The directory part of path, as a malloc'd string. */
static char *
dir_of(const char *path)
{
	char	   *copy = strdup(path);
	char	   *dir;

	if (copy == NULL)
		return NULL;
	dir = strdup(dirname(copy));
	free(copy);
	return dir;
}

/* The last part of path, as a malloc'd string. */
static char *
base_of(const char *path)
{
	char	   *copy = strdup(path);
	char	   *base;

	if (copy == NULL)
		return NULL;
	base = strdup(basename(copy));
	free(copy);
	return base;
}

/* Most links followed in a row, as the kernel allows (then ELOOP). */
#define HR_SERVICE_MAX_LINKS 40

/*
 * Follow path while it names a symbolic link, link by link, and set
 * *target (malloc'd) to the path it leads to; path itself if it is no link.
 *
 * A link planted by another user could point the writer at any file the
 * caller may write, so a link is followed only when it is the caller's or
 * root's, and one in a sticky world-writable directory (such as /tmp) only
 * when it is the caller's: the kernel's fs.protected_symlinks rule, with
 * root's links in such a directory refused too.  Each link is opened
 * itself (O_PATH | O_NOFOLLOW) so that the link whose owner is checked is
 * the link that is read.  Directories along the way are left to the
 * kernel, as for a path that is no link.
 */
static hr_service_status
follow_links(const char *path, char **target, hr_service_error *err)
{
	hr_service_status st = HR_SERVICE_OK;
	uid_t		me = geteuid();
	char	   *cur = strdup(path);
	char	   *dir = NULL;
	char	   *base = NULL;
	int			dfd = -1;
	int			lfd = -1;
	int			hops;

	*target = NULL;
	if (cur == NULL)
		goto oom;
	for (hops = 0;; hops++)
	{
		struct stat lsb;
		struct stat dsb;
		char		text[PATH_MAX];
		ssize_t		len;
		char	   *next;
		const char *why = NULL;

		dir = dir_of(cur);
		base = base_of(cur);
		if (dir == NULL || base == NULL)
			goto oom;
		dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			lfd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || lfd < 0 || fstat(lfd, &lsb) != 0)
		{
			int			e = errno;

			/* no link at all: what goes wrong is reported on writing */
			if (hops == 0)
				break;
			st = io_error(err, "could not follow the symbolic link \"%s\"", path, e);
			goto done;
		}
		if (!S_ISLNK(lsb.st_mode))
			break;
		if (hops == HR_SERVICE_MAX_LINKS)
		{
			st = io_error(err, "could not follow the symbolic link \"%s\"", path, ELOOP);
			goto done;
		}

		if (lsb.st_uid != me && lsb.st_uid != 0)
			why = "it is owned by another user";
		else if (lsb.st_uid != me)
		{
			if (fstat(dfd, &dsb) != 0)
			{
				st = io_error(err, "could not access directory \"%s\"", dir, errno);
				goto done;
			}
			if ((dsb.st_mode & S_ISVTX) && (dsb.st_mode & S_IWOTH))
				why = "it is in a sticky world-writable directory and owned by another user";
		}
		if (why)
		{
			if (err)
			{
				err->status = HR_SERVICE_EIO;
				snprintf(err->message, sizeof(err->message),
						 "refusing to follow the symbolic link \"%.300s\": %s", cur, why);
			}
			set_hint(err, "Give the file itself, or a link you own (--service-file or PGSERVICEFILE).");
			st = HR_SERVICE_EIO;
			goto done;
		}

		len = readlinkat(lfd, "", text, sizeof(text));
		if (len < 0 || (size_t) len >= sizeof(text))
		{
			st = io_error(err, "could not follow the symbolic link \"%s\"", cur,
						  len < 0 ? errno : ENAMETOOLONG);
			goto done;
		}
		text[len] = '\0';
		if (text[0] == '/')
			next = strdup(text);
		else
		{
			/* relative to the link's directory */
			next = malloc(strlen(dir) + (size_t) len + 2);
			if (next)
				sprintf(next, "%s/%s", dir, text);
		}
		if (next == NULL)
			goto oom;
		free(cur);
		cur = next;
		free(dir);
		free(base);
		dir = base = NULL;
		close(lfd);
		close(dfd);
		lfd = dfd = -1;
	}
	*target = cur;
	cur = NULL;
	goto done;

oom:
	st = oom_error(err);

done:
	if (lfd >= 0)
		close(lfd);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	free(base);
	free(cur);
	return st;
}

hr_service_status
hr_service_file_update(const char *path, const char *name, int n,
					   const char *const *keywords, const char *const *values,
					   hr_service_error *err)
{
	return hr_service_file_set(path, name, n, keywords, values, NULL, err);
}

/* What hr_service_file_set puts in place of the old text. */
typedef struct section_edit
{
	const char *name;
	int			n;
	const char *const *keywords;
	const char *const *values;
} section_edit;

static hr_service_status
edit_section(const char *old, size_t oldlen, void *arg, char **new, size_t *newlen,
			 hr_service_error *err)
{
	section_edit *e = arg;

	return hr_service_replace(old, oldlen, e->name, e->n, e->keywords, e->values,
							  new, newlen, err);
}

hr_service_status
hr_service_file_set(const char *path, const char *name, int n,
					const char *const *keywords, const char *const *values,
					int *changed, hr_service_error *err)
{
	section_edit e = {name, n, keywords, values};

	return hr_safe_file_rewrite(path, "service file", 0600, edit_section, &e, changed, err);
}

/* The whole new text, for hr_safe_file_write. */
typedef struct whole_text
{
	const char *text;
	size_t		len;
} whole_text;

static hr_service_status
put_whole(const char *old, size_t oldlen, void *arg, char **new, size_t *newlen,
		  hr_service_error *err)
{
	whole_text *t = arg;

	(void) old;
	(void) oldlen;
	*new = malloc(t->len + 1);
	if (*new == NULL)
		return oom_error(err);
	memcpy(*new, t->text, t->len);
	(*new)[t->len] = '\0';
	*newlen = t->len;
	return HR_SERVICE_OK;
}

hr_service_status
hr_safe_file_write(const char *path, const char *what, mode_t mode, const char *text,
				   size_t len, int *changed, hr_service_error *err)
{
	whole_text	t = {text, len};

	return hr_safe_file_rewrite(path, what, mode, put_whole, &t, changed, err);
}

hr_service_status
hr_safe_file_rewrite(const char *path, const char *what, mode_t mode,
					 hr_rewrite_fn fn, void *arg, int *changed, hr_service_error *err)
{
	hr_service_status st = HR_SERVICE_OK;
	char		label[400];
	struct stat sb;
	char	   *target = NULL;
	char	   *dir = NULL;
	char	   *lockpath = NULL;
	char	   *tmppath = NULL;
	char	   *old = NULL;
	size_t		oldlen = 0;
	char	   *new = NULL;
	size_t		newlen = 0;
	int			existed = 0;
	int			lockfd = -1;
	int			fd = -1;
	int			same;
	mode_t		oldmode = 0;
	gid_t		oldgid = (gid_t) -1;

	if (changed)
		*changed = 0;
	if (err)
	{
		err->status = HR_SERVICE_OK;
		err->message[0] = err->hint[0] = '\0';
	}

	/* a symbolic link (dotfiles kept elsewhere): replace what it points to */
	st = follow_links(path, &target, err);
	if (st != HR_SERVICE_OK)
		goto done;
	dir = dir_of(target);
	if (dir == NULL)
		goto oom;
	snprintf(label, sizeof(label), "%s \"%.300s\"", what, target);

	if (stat(dir, &sb) != 0)
	{
		int			e = errno;

		if (e == ENOENT)
		{
			if (err)
			{
				err->status = HR_SERVICE_EIO;
				snprintf(err->message, sizeof(err->message),
						 "could not write %s \"%.200s\": directory \"%.200s\" does not exist",
						 what, target, dir);
			}
			set_hint(err, "Create the directory first, or choose another file.");
			st = HR_SERVICE_EIO;
		}
		else
			st = io_error(err, "could not access directory \"%s\"", dir, e);
		goto done;
	}
	if (!S_ISDIR(sb.st_mode))
	{
		if (err)
		{
			err->status = HR_SERVICE_EIO;
			snprintf(err->message, sizeof(err->message),
					 "could not write %s \"%.200s\": \"%.200s\" is not a directory",
					 what, target, dir);
		}
		st = HR_SERVICE_EIO;
		goto done;
	}

	/* one writer at a time, from reading the file to renaming the new one */
	lockpath = malloc(strlen(target) + 6);
	if (lockpath == NULL)
		goto oom;
	sprintf(lockpath, "%s.lock", target);
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0)
	{
		st = io_error(err, "could not open lock file \"%s\"", lockpath, errno);
		set_hint(err, "The file's directory must be writable.");
		goto done;
	}
	while (flock(lockfd, LOCK_EX) != 0)
	{
		if (errno != EINTR)
		{
			st = io_error(err, "could not lock \"%s\"", lockpath, errno);
			goto done;
		}
	}

	fd = open(target, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
	{
		st = io_error(err, "could not read %s", label, errno);
		set_hint(err, "The file is kept as it is; fix its permissions, or choose another file.");
		goto done;
	}
	if (fd >= 0)
	{
		existed = 1;
		if (fstat(fd, &sb) != 0)
		{
			st = io_error(err, "could not stat %s", label, errno);
			goto done;
		}
		if (!S_ISREG(sb.st_mode))
		{
			if (err)
			{
				err->status = HR_SERVICE_EIO;
				snprintf(err->message, sizeof(err->message),
						 "%s is not a regular file", label);
			}
			st = HR_SERVICE_EIO;
			goto done;
		}
		oldmode = sb.st_mode & 07777;
		oldgid = sb.st_gid;
		if (read_all(fd, &old, &oldlen) != 0)
		{
			if (errno == ENOMEM)
				goto oom;
			st = io_error(err, "could not read %s", label, errno);
			goto done;
		}
		close(fd);
		fd = -1;
	}

	st = fn(old, oldlen, arg, &new, &newlen, err);
	if (st != HR_SERVICE_OK)
		goto done;

	/* nothing to change: leave the file alone */
	same = existed && oldmode == mode && newlen == oldlen &&
		memcmp(new, old, oldlen) == 0;
	if (same)
		goto done;

	tmppath = malloc(strlen(dir) + strlen(target) + 16);
	if (tmppath == NULL)
		goto oom;
	{
		char	   *copy = strdup(target);

		if (copy == NULL)
			goto oom;
		sprintf(tmppath, "%s/.%s.XXXXXX", dir, basename(copy));
		free(copy);
	}
	fd = mkostemp(tmppath, O_CLOEXEC);
	if (fd < 0)
	{
		st = io_error(err, "could not create a temporary file in directory \"%s\"", dir, errno);
		set_hint(err, "The file's directory must be writable.");
		free(tmppath);
		tmppath = NULL;
		goto done;
	}
	if ((existed && (mode & 070) && oldgid != getegid() &&
		 fchown(fd, (uid_t) -1, oldgid) != 0) ||
		fchmod(fd, mode) != 0 || write_all(fd, new, newlen) != 0 ||
		fsync(fd) != 0)
	{
		st = io_error(err, "could not write temporary file \"%s\"", tmppath, errno);
		goto done;
	}
	if (close(fd) != 0)
	{
		fd = -1;
		st = io_error(err, "could not write temporary file \"%s\"", tmppath, errno);
		goto done;
	}
	fd = -1;
	if (rename(tmppath, target) != 0)
	{
		st = io_error(err, "could not replace %s", label, errno);
		goto done;
	}
	free(tmppath);
	tmppath = NULL;
	if (changed)
		*changed = 1;
	/* make the rename itself durable */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
	{
		(void) fsync(fd);
		close(fd);
		fd = -1;
	}
	goto done;

oom:
	st = oom_error(err);

done:
	if (fd >= 0)
		close(fd);
	if (tmppath)
	{
		unlink(tmppath);
		free(tmppath);
	}
	if (lockfd >= 0)
		close(lockfd);			/* releases the lock */
	hr_service_free(old, oldlen);
	hr_service_free(new, newlen);
	free(lockpath);
	free(dir);
	free(target);
	return st;
}

/* ~/.pg_service.conf: $HOME, else the user's home directory. */
char *
hr_service_default_file(void)
{
	const char *env = getenv("PGSERVICEFILE");
	const char *home = getenv("HOME");
	char	   *path;

	if (env && env[0])
		return strdup(env);
	if (home == NULL || home[0] == '\0')
	{
		struct passwd *pw = getpwuid(geteuid());

		home = pw ? pw->pw_dir : NULL;
	}
	if (home == NULL)
		return NULL;
	path = malloc(strlen(home) + sizeof("/.pg_service.conf"));
	if (path)
		sprintf(path, "%s/.pg_service.conf", home);
	return path;
}
