/*-------------------------------------------------------------------------
 *
 * hr_tls.c
 *		Mutual TLS for Private and Shield databases: the client certificate,
 *		its key and the root certificate that the operator names (never a
 *		config var: an app collaborator must not choose files on our side),
 *		checked as libpq would check them, and added to a resolution.
 *
 * Part of the resolver core: no server header, no json-c, no OpenSSL (the
 * extension compares a certificate with its key in src/pg_tls_x509.c).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heroku_resolver.h"
#include "hr_internal.h"

/* The keywords in the order they are added. */
static const char *const tls_keywords[] = {"sslcert", "sslkey", "sslrootcert"};

/* The file of tls_keywords[i] in f, or NULL when not set. */
static const char *
tls_file(const hr_tls_files *f, int i)
{
	const char *v = i == 0 ? f->sslcert : i == 1 ? f->sslkey : f->sslrootcert;

	return v && v[0] ? v : NULL;
}

/*
 * One file: an absolute path that exists, is a regular file and can be
 * read.  sys_errno tells the caller which SQLSTATE or exit code applies.
 */
static hr_code
check_file(const char *what, const char *path, struct stat *st, hr_error *err)
{
	hr_code		rc;

	if (path[0] != '/')
	{
		rc = hr_error_set(err, HR_EINVAL, "%s file \"%.200s\" is not an absolute path",
						  what, path);
		if (err)
			err->sys_errno = EINVAL;
		return rc;
	}
	if (stat(path, st) != 0 || access(path, R_OK) != 0)
	{
		int			e = errno;

		rc = hr_error_set(err, HR_EINVAL, "could not read %s file \"%.200s\": %s",
						  what, path, strerror(e));
		if (err)
			err->sys_errno = e;
		return rc;
	}
	if (!S_ISREG(st->st_mode))
	{
		rc = hr_error_set(err, HR_EINVAL, "%s file \"%.200s\" is not a regular file",
						  what, path);
		if (err)
			err->sys_errno = EINVAL;
		return rc;
	}
	return HR_OK;
}

/*
 * Check the files as libpq will when it connects: each an absolute path
 * this process can read; a key owned by this user open to no one else
 * (0600 or less), one owned by root at most 0640.  A key without a
 * certificate, or the reverse, is refused.  On failure err->code is
 * HR_EINVAL and err->sys_errno ENOENT/ENOTDIR (missing), EACCES (not
 * readable), EPERM (key open to others) or EINVAL (anything else).
 */
hr_code
hr_tls_check(const hr_tls_files *f, hr_error *err)
{
	static const char *const what[] = {"client certificate", "client key", "root certificate"};
	struct stat st;
	hr_code		rc;
	int			i;

	if (f == NULL)
		return HR_OK;
	if ((tls_file(f, 0) == NULL) != (tls_file(f, 1) == NULL))
	{
		rc = hr_error_set(err, HR_EINVAL, "%s",
						  tls_file(f, 0) ? "a client certificate needs its key (sslkey)"
						  : "a client key needs its certificate (sslcert)");
		if (err)
			err->sys_errno = EINVAL;
		return rc;
	}
	for (i = 0; i < 3; i++)
	{
		const char *path = tls_file(f, i);

		if (path == NULL)
			continue;
		if (strlen(path) > 1024)
		{
			rc = hr_error_set(err, HR_EINVAL, "%s file name is too long", what[i]);
			if (err)
				err->sys_errno = EINVAL;
			return rc;
		}
		rc = check_file(what[i], path, &st, err);
		if (rc != HR_OK)
			return rc;
		if (i == 1 &&
			((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
			 (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)))))
		{
			rc = hr_error_set(err, HR_EINVAL,
							  "private key file \"%.200s\" has group or world access", path);
			if (err)
				snprintf(err->hint, sizeof(err->hint), "%s",
						 "The file must have permissions u=rw (0600) or less if owned by its user, or u=rw,g=r (0640) or less if owned by root, as libpq requires.");
			if (err)
				err->sys_errno = EPERM;
			return rc;
		}
	}
	return HR_OK;
}

/* Set keyword to value in ci (replace, or append into room made by the caller). */
static int
conninfo_set(hr_conninfo *ci, const char *keyword, const char *value)
{
	int			i;
	char	   *v = strdup(value);

	if (v == NULL)
		return 0;
	for (i = 0; i < ci->n; i++)
		if (strcmp(ci->keywords[i], keyword) == 0)
		{
			hr_free_secret(ci->values[i]);
			ci->values[i] = v;
			return 1;
		}
	ci->keywords[ci->n] = strdup(keyword);
	if (ci->keywords[ci->n] == NULL)
	{
		free(v);
		return 0;
	}
	ci->values[ci->n++] = v;
	return 1;
}

/*
 * Add the files to a resolution: sslcert, sslkey and sslrootcert in its
 * pairs, its conninfo and its URL; with a root certificate, sslmode becomes
 * verify-ca unless it is verify-full already.  The files are not checked
 * here (hr_tls_check).  f NULL or empty: nothing changes.
 */
hr_code
hr_result_add_tls(hr_result *r, const hr_tls_files *f, hr_error *err)
{
	hr_conninfo *ci = &r->params;
	char	  **kw;
	char	  **val;
	char	   *conninfo;
	char	   *url;
	int			i;

	if (f == NULL || (!tls_file(f, 0) && !tls_file(f, 1) && !tls_file(f, 2)))
		return HR_OK;
	/* room for three files and sslmode */
	kw = realloc(ci->keywords, sizeof(char *) * (ci->n + 4));
	if (kw == NULL)
		return hr_error_set(err, HR_ENOMEM, "out of memory");
	ci->keywords = kw;
	val = realloc(ci->values, sizeof(char *) * (ci->n + 4));
	if (val == NULL)
		return hr_error_set(err, HR_ENOMEM, "out of memory");
	ci->values = val;
	for (i = 0; i < 3; i++)
		if (tls_file(f, i) && !conninfo_set(ci, tls_keywords[i], tls_file(f, i)))
			return hr_error_set(err, HR_ENOMEM, "out of memory");
	if (tls_file(f, 2))
	{
		const char *mode = hr_conninfo_get(ci, "sslmode");

		if ((mode == NULL || strcmp(mode, "verify-full") != 0) &&
			!conninfo_set(ci, "sslmode", "verify-ca"))
			return hr_error_set(err, HR_ENOMEM, "out of memory");
	}
	conninfo = hr_conninfo_to_string(ci);
	url = hr_conninfo_to_url(ci);
	if (conninfo == NULL || url == NULL)
	{
		hr_free_secret(conninfo);
		hr_free_secret(url);
		return hr_error_set(err, HR_ENOMEM, "out of memory");
	}
	hr_free_secret(r->conninfo);
	hr_free_secret(r->url);
	r->conninfo = conninfo;
	r->url = url;
	return HR_OK;
}
