/*-------------------------------------------------------------------------
 *
 * hr_watch_guard.c
 *		heroku-pg-resolve watch: what keeps slow or noisy clients from
 *		shutting out a listener, the webhook receiver (hr_watch_http.c) or
 *		the metrics listener (hr_watch_metrics.c), beside libmicrohttpd's
 *		own limits (all connections, connections per client address, idle
 *		time):
 *
 *		- the deadline: a request must be whole (headers and body) within
 *		  --request-timeout of its connection's start, or of the end of the
 *		  connection's previous request.  libmicrohttpd 0.9.75 (Debian 12)
 *		  only closes a connection idle that long, so a client sending a
 *		  header line every few seconds would hold its slot for ever.  A
 *		  request being answered has no deadline (the answer is bounded by
 *		  HR_WATCH_APPLY_WAIT_MS).
 *		- the refusal log: at most one line a second per kind of refusal;
 *		  the others are counted and reported in the next line of that
 *		  kind, a second later, or at exit.
 *
 * One thread does both, every GUARD_TICK_MS.  A late connection is cut
 * with shutdown(): its own thread sees the end of the stream and closes
 * it.  A connection is known from libmicrohttpd's start notification to
 * its close notification, which comes before its socket is closed, so a
 * socket is never shut down after its number was reused.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hr_watch_guard.h"
#include "hr_watch_sinks.h"

#define GUARD_TICK_MS 200
#define LOG_EVERY 1.0			/* seconds: one line per kind at most */

/* A connection, from its start to its close. */
typedef struct guard_conn
{
	struct guard_conn *prev;
	struct guard_conn *next;
	hr_watch_guard *g;
	int			fd;
	double		since;			/* its request started (monotonic) */
	int			answering;		/* the request is whole */
	int			cut;
	char		who[INET6_ADDRSTRLEN];
} guard_conn;

/* One kind of refusal: when it was last logged, what is not logged yet. */
typedef struct guard_kind
{
	double		logged_at;
	unsigned long pending;
	double		pending_since;
	char		who[64];		/* the last address counted */
	char		detail[200];	/* and its detail */
} guard_kind;

struct hr_watch_guard
{
	hr_watch   *w;
	const char *listener;		/* "webhook" or "metrics", for log lines */
	int			webhooks;		/* count refusals in heroku_pg_resolve_webhooks_total */
	long		deadline_ms;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t	thread;
	int			running;
	int			stop;
	guard_conn *conns;
	guard_kind	kinds[HR_REFUSE_KINDS];
};

static const struct
{
	unsigned int status;		/* 0: no answer, cut */
	const char *what;
}			refusal_text[HR_REFUSE_KINDS] = {
	[HR_REFUSE_SIGNATURE] = {401, "refused: missing or wrong signature or authorization"},
	[HR_REFUSE_MALFORMED] = {400, "refused: not a JSON object, or a release without an app"},
	[HR_REFUSE_NOT_RELEASE] = {202, "ignored: not a release"},
	[HR_REFUSE_NOT_WATCHED] = {202, "ignored: an app not watched"},
	[HR_REFUSE_UNSETTLED] = {202, "ignored until it succeeds: a release pending or failed"},
	[HR_REFUSE_DUPLICATE] = {200, "ignored: a delivery already applied"},
	[HR_REFUSE_NOT_APPLIED] = {503, "not applied"},
	[HR_REFUSE_PATH] = {404, "refused: unknown path"},
	[HR_REFUSE_METHOD] = {405, "refused: not a POST"},
	[HR_REFUSE_TOO_LARGE] = {413, "refused: body over 1 MiB"},
	[HR_REFUSE_MEDIA_TYPE] = {415, "refused: Content-Type is not application/json"},
	[HR_REFUSE_DEADLINE] = {0, "cut: the request was not whole by its deadline"},
};

/* "what[: detail] (status)" of a kind, for a log line. */
static void
describe(hr_refusal kind, const char *detail, char *dst, size_t dstlen)
{
	char		status[16] = "";

	if (refusal_text[kind].status)
		snprintf(status, sizeof(status), " (%u)", refusal_text[kind].status);
	snprintf(dst, dstlen, "%s%s%s%s", refusal_text[kind].what,
			 detail && detail[0] ? ": " : "", detail ? detail : "", status);
}

/* With g->mu held: log what a kind has counted since its last line. */
static void
flush_kind(hr_watch_guard *g, hr_refusal kind, double now)
{
	guard_kind *k = &g->kinds[kind];
	char		text[400];

	if (k->pending == 0)
		return;
	describe(kind, k->detail, text, sizeof(text));
	hr_watch_log(g->w, "%s: %lu more request%s like this in the last %.1f s, the last from %s: %s",
				 g->listener, k->pending, k->pending == 1 ? "" : "s", now - k->logged_at, k->who, text);
	k->logged_at = now;
	k->pending = 0;
}

/*
 * With g->mu held: count requests refused alike (the same kind); the first
 * is logged at once unless its kind was logged less than a second ago.
 */
/* the result label of a refusal in heroku_pg_resolve_webhooks_total */
static const char *const metric_label[HR_REFUSE_KINDS] = {
	"unauthorized", "bad_request", "ignored_not_release", "ignored_not_watched",
	"ignored_unsettled", "duplicate", "not_applied", "not_found", "method_not_allowed",
	"too_large", "unsupported_media_type", "cut_deadline"
};

static void
note(hr_watch_guard *g, hr_refusal kind, const char *who, const char *detail,
	 unsigned long count)
{
	double		now = hr_watch_now();
	guard_kind *k = &g->kinds[kind];

	if (g->webhooks)
		hr_watch_metric(g->w, HR_M_WEBHOOK, metric_label[kind]);

	if (k->pending == 0 && (k->logged_at == 0 || now - k->logged_at >= LOG_EVERY))
	{
		char		text[400];

		describe(kind, detail, text, sizeof(text));
		hr_watch_log(g->w, "%s from %s: %s", g->listener, who, text);
		k->logged_at = now;
		count--;
	}
	if (count == 0)
		return;
	/* the guard's thread logs the count once the second is over */
	k->pending += count;
	snprintf(k->who, sizeof(k->who), "%s", who);
	snprintf(k->detail, sizeof(k->detail), "%s", detail ? detail : "");
}

void
hr_watch_guard_refused(hr_watch_guard *g, hr_refusal kind, const char *who,
					   const char *detail)
{
	pthread_mutex_lock(&g->mu);
	note(g, kind, who, detail, 1);
	pthread_mutex_unlock(&g->mu);
}

/* The client's address of c, for a log line. */
void
hr_watch_client_address(struct MHD_Connection *c, char *dst, size_t dstlen)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(dst, dstlen, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, dst, (socklen_t) dstlen);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, dst, (socklen_t) dstlen);
}

/* With g->mu held: cut the connections past their deadline. */
static void
cut_late(hr_watch_guard *g, double now)
{
	guard_conn *gc;
	char		detail[80];

	snprintf(detail, sizeof(detail), "%.1f s", g->deadline_ms / 1000.0);
	for (gc = g->conns; gc; gc = gc->next)
	{
		if (gc->answering || gc->cut || (now - gc->since) * 1000 < g->deadline_ms)
			continue;
		gc->cut = 1;
		shutdown(gc->fd, SHUT_RDWR);
		note(g, HR_REFUSE_DEADLINE, gc->who, detail, 1);
	}
}

static void *
guard_thread(void *arg)
{
	hr_watch_guard *g = arg;
	int			i;

	pthread_mutex_lock(&g->mu);
	while (!g->stop)
	{
		double		now = hr_watch_now();
		struct timespec ts;

		cut_late(g, now);
		for (i = 0; i < HR_REFUSE_KINDS; i++)
			if (g->kinds[i].pending > 0 && now - g->kinds[i].logged_at >= LOG_EVERY)
				flush_kind(g, (hr_refusal) i, now);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += GUARD_TICK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&g->cond, &g->mu, &ts);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

hr_watch_guard *
hr_watch_guard_start(hr_watch *w, const char *listener, long deadline_ms)
{
	hr_watch_guard *g = calloc(1, sizeof(hr_watch_guard));
	pthread_condattr_t attr;

	if (g == NULL)
		return NULL;
	g->w = w;
	g->listener = listener;
	g->webhooks = strcmp(listener, "webhook") == 0;
	g->deadline_ms = deadline_ms;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&g->thread, NULL, guard_thread, g) != 0)
	{
		pthread_cond_destroy(&g->cond);
		pthread_mutex_destroy(&g->mu);
		free(g);
		return NULL;
	}
	g->running = 1;
	return g;
}

/* After the daemon stopped (no connection left): log what is pending. */
void
hr_watch_guard_stop(hr_watch_guard *g)
{
	double		now = hr_watch_now();
	int			i;

	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	if (g->running)
		pthread_join(g->thread, NULL);
	for (i = 0; i < HR_REFUSE_KINDS; i++)
		flush_kind(g, (hr_refusal) i, now);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

void
hr_watch_guard_connection(void *cls, struct MHD_Connection *c,
						  void **socket_context,
						  enum MHD_ConnectionNotificationCode toe)
{
	hr_watch_guard *g = cls;
	guard_conn *gc = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
	{
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		/* without memory or its socket, only the idle timeout applies */
		if (ci == NULL || (gc = calloc(1, sizeof(guard_conn))) == NULL)
			return;
		gc->g = g;
		gc->fd = ci->connect_fd;
		gc->since = hr_watch_now();
		hr_watch_client_address(c, gc->who, sizeof(gc->who));
		pthread_mutex_lock(&g->mu);
		gc->next = g->conns;
		if (g->conns)
			g->conns->prev = gc;
		g->conns = gc;
		pthread_mutex_unlock(&g->mu);
		*socket_context = gc;
		return;
	}
	if (gc == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		g->conns = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	pthread_mutex_unlock(&g->mu);
	free(gc);
	*socket_context = NULL;
}

/* The guard's record of c, or NULL. */
static guard_conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? (guard_conn *) ci->socket_context : NULL;
}

void
hr_watch_guard_answering(struct MHD_Connection *c)
{
	guard_conn *gc = conn_of(c);

	if (gc == NULL)
		return;
	pthread_mutex_lock(&gc->g->mu);
	gc->answering = 1;
	pthread_mutex_unlock(&gc->g->mu);
}

void
hr_watch_guard_request_over(struct MHD_Connection *c)
{
	guard_conn *gc = conn_of(c);

	if (gc == NULL)
		return;
	pthread_mutex_lock(&gc->g->mu);
	gc->answering = 0;
	gc->since = hr_watch_now();
	pthread_mutex_unlock(&gc->g->mu);
}
