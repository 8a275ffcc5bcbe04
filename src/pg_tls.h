/*-------------------------------------------------------------------------
 *
 * pg_tls.h
 *		Mutual TLS files of the extension (src/pg_tls.c, src/pg_tls_x509.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_TLS_H
#define PG_TLS_H

#include "pg_heroku.h"

/* pg_tls.c: add the files set for app (heroku_tls_set) to a resolution */
extern void hr_tls_apply(HrResolved *r, const char *app);

/* pg_tls_x509.c: OpenSSL's reading of the files */
extern const char *hr_x509_check_pair(const char *cert, const char *key);
extern bool hr_x509_not_after(const char *path, TimestampTz *not_after);
extern bool hr_x509_is_cert(const char *path);

#endif							/* PG_TLS_H */
