/*-------------------------------------------------------------------------
 *
 * hr_watch_base.c
 *		heroku-pg-resolve watch: the small utilities every part of the
 *		watcher calls (the monotonic clock, the log, the wait on
 *		hr_watch.cond) and the command's error printer and exit statuses,
 *		shared with its other modes.  It calls no other file of the
 *		watcher.
 *
 *-------------------------------------------------------------------------
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <sysexits.h>

#include "hr_watch_base.h"

double
hr_watch_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One line to stderr (or syslog): never a token, secret or password. */
void
hr_watch_log(hr_watch *w, const char *fmt,...)
{
	char		line[1200];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (w->use_syslog)
		syslog(LOG_INFO, "%s", line);
	else
		fprintf(stderr, "%s watch: %s\n", HR_WATCH_PROG, line);
}

/* With mu held: wait for news on cond, or until the monotonic time until. */
void
hr_watch_wait(hr_watch *w, double until)
{
	struct timespec ts;
	double		now = hr_watch_now();

	if (until <= now)
		return;
	if (until > now + 3600)
		until = now + 3600;
	ts.tv_sec = (time_t) until;
	ts.tv_nsec = (long) ((until - (double) ts.tv_sec) * 1e9);
	pthread_cond_timedwait(&w->cond, &w->mu, &ts);
}

void
hr_cli_fail(const char *hint, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: error: ", HR_WATCH_PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (hint && hint[0])
		fprintf(stderr, "hint: %s\n", hint);
}

/* The exit status for a resolver error, as the other modes map it. */
int
hr_watch_exit_code(hr_code code)
{
	switch (code)
	{
		case HR_OK:
			return EX_OK;
		case HR_EINVAL:
		case HR_ETOKENFILE:
			return EX_CONFIG;
		case HR_ENOTOKEN:
		case HR_EAUTH:
		case HR_EFORBIDDEN:
			return EX_NOPERM;
		case HR_ENOTFOUND:
			return EX_NOINPUT;
		case HR_ERATELIMIT:
		case HR_EUNAVAILABLE:
			return EX_UNAVAILABLE;
		case HR_EPROTOCOL:
		case HR_EBADURL:
			return EX_DATAERR;
		case HR_ECANCELED:
		case HR_ENOMEM:
			return EX_SOFTWARE;
	}
	return EX_SOFTWARE;
}

/* Split HOST:PORT ("[v6]:port" too) and resolve it for listening. */
struct addrinfo *
hr_watch_listen_address(const char *listen, char *why, size_t whylen)
{
	char		host[256];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t		hl;
	struct addrinfo hints;
	struct addrinfo *ai = NULL;
	int			rc;
	long		port;
	char	   *end;

	if (colon == NULL || colon == listen)
	{
		snprintf(why, whylen, "expected HOST:PORT");
		return NULL;
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || port < 1 || port > 65535)
	{
		snprintf(why, whylen, "the port must be a number from 1 to 65535");
		return NULL;
	}
	hl = (size_t) (colon - listen);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
	{
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
	{
		snprintf(why, whylen, "expected HOST:PORT");
		return NULL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0)
	{
		snprintf(why, whylen, "%s", gai_strerror(rc));
		return NULL;
	}
	return ai;
}
