/*-------------------------------------------------------------------------
 *
 * pg_tls_x509.c
 *		What the extension reads in the mutual TLS files with OpenSSL (the
 *		extension links -lcrypto already): whether a client certificate
 *		matches its key, and when a certificate ends.  No json-c here.
 *
 * No message built here ever quotes the content of a file: a key is
 * secret, and OpenSSL's error queue is cleared, never shown.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg_tls.h"

/* The first certificate of a PEM file, or NULL. */
static X509 *
read_cert(const char *path)
{
	FILE	   *f = AllocateFile(path, "r");
	X509	   *x;

	if (f == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	FreeFile(f);
	ERR_clear_error();
	return x;
}

/* Refuse to prompt for a passphrase: the server has no terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/*
 * Check a client certificate and its key with OpenSSL: each must parse
 * (PEM), the key must not need a passphrase, and they must belong
 * together.  Returns NULL when they do, else a message naming the files
 * (never their content).
 */
const char *
hr_x509_check_pair(const char *cert, const char *key)
{
	X509	   *x;
	EVP_PKEY   *k;
	FILE	   *f;
	const char *msg = NULL;

	x = read_cert(cert);
	if (x == NULL)
		return psprintf("client certificate file \"%s\" holds no PEM certificate", cert);
	f = AllocateFile(key, "r");
	k = f ? PEM_read_PrivateKey(f, NULL, no_passphrase, NULL) : NULL;
	if (f)
		FreeFile(f);
	if (k == NULL)
		msg = psprintf("private key file \"%s\" holds no PEM private key without a passphrase", key);
	else if (X509_check_private_key(x, k) != 1)
		msg = psprintf("client certificate \"%s\" does not match private key \"%s\"", cert, key);
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
	return msg;
}

/* True, with *not_after, when path holds a PEM certificate. */
bool
hr_x509_not_after(const char *path, TimestampTz *not_after)
{
	X509	   *x = read_cert(path);
	struct tm	tm;
	bool		ok;

	if (x == NULL)
		return false;
	ok = ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1;
	X509_free(x);
	ERR_clear_error();
	if (ok)
		*not_after = time_t_to_timestamptz(timegm(&tm));
	return ok;
}

/* True when path holds a PEM root certificate (first one parses). */
bool
hr_x509_is_cert(const char *path)
{
	X509	   *x = read_cert(path);

	X509_free(x);
	return x != NULL;
}

PG_FUNCTION_INFO_V1(heroku_tls_not_after);

/*
 * heroku_tls_not_after(certificate): for the heroku_tls view.  Superuser
 * only, even with EXECUTE granted: it reads files of the server.
 */
Datum
heroku_tls_not_after(PG_FUNCTION_ARGS)
{
	char	   *path;
	TimestampTz t;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function heroku_tls_not_after"),
				 errdetail("Only superusers may read the mutual TLS files.")));
	path = hr_pg_text_arg(fcinfo, 0, "certificate");
	if (path[0] != '/' || !hr_x509_not_after(path, &t))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(t);
}
