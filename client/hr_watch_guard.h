/*-------------------------------------------------------------------------
 *
 * hr_watch_guard.h
 *		heroku-pg-resolve watch: a listener's guard (hr_watch_guard.c):
 *		the deadline of each request and the aggregated log of refused
 *		requests.  Used by the webhook receiver (hr_watch_http.c) and the
 *		metrics listener (hr_watch_metrics.c, the deadline only).
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_GUARD_H
#define HR_WATCH_GUARD_H

#include <microhttpd.h>

#include "hr_watch_base.h"

/* What a refused (or ignored) request is logged as: one line a second each */
typedef enum hr_refusal
{
	HR_REFUSE_SIGNATURE,		/* 401 */
	HR_REFUSE_MALFORMED,		/* 400 */
	HR_REFUSE_NOT_RELEASE,		/* 202 */
	HR_REFUSE_NOT_WATCHED,		/* 202 */
	HR_REFUSE_UNSETTLED,		/* 202 */
	HR_REFUSE_DUPLICATE,		/* 200 */
	HR_REFUSE_NOT_APPLIED,		/* 503 */
	HR_REFUSE_PATH,				/* 404 */
	HR_REFUSE_METHOD,			/* 405 */
	HR_REFUSE_TOO_LARGE,		/* 413 */
	HR_REFUSE_MEDIA_TYPE,		/* 415 */
	HR_REFUSE_DEADLINE,			/* cut: not whole by the deadline */
	HR_REFUSE_KINDS
} hr_refusal;

typedef struct hr_watch_guard hr_watch_guard;

/* listener: "webhook" or "metrics", as log lines name it */
extern hr_watch_guard *hr_watch_guard_start(hr_watch *w, const char *listener,
											 long deadline_ms);
extern void hr_watch_guard_stop(hr_watch_guard *g);
/* MHD_OPTION_NOTIFY_CONNECTION's callback; its closure is the guard */
extern void hr_watch_guard_connection(void *cls, struct MHD_Connection *c,
									  void **socket_context,
									  enum MHD_ConnectionNotificationCode toe);
/* the request of c is whole and being answered: its deadline is off */
extern void hr_watch_guard_answering(struct MHD_Connection *c);
/* the request of c is over: the next one on it gets a new deadline */
extern void hr_watch_guard_request_over(struct MHD_Connection *c);
/* the client's address of c, for a log line */
extern void hr_watch_client_address(struct MHD_Connection *c, char *dst, size_t dstlen);
/* log a refusal of a request from who (aggregated); detail may be NULL */
extern void hr_watch_guard_refused(hr_watch_guard *g, hr_refusal kind,
								   const char *who, const char *detail);

#endif							/* HR_WATCH_GUARD_H */
