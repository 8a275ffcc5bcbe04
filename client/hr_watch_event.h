/*-------------------------------------------------------------------------
 *
 * hr_watch_event.h
 *		The body of a Heroku app webhook notification, read with json-c:
 *		what kind of event it is, which app, which delivery.  Pure (no I/O,
 *		no global state), so that a fuzzer can drive it
 *		(fuzz/fuzz_webhook.c).  The body is only a hint: nothing in it but
 *		the app's identity and the delivery id is used, and the URL always
 *		comes from the API.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HR_WATCH_EVENT_H
#define HR_WATCH_EVENT_H

#include <stddef.h>

/* largest body accepted, as for the API's own answers */
#define HR_WEBHOOK_MAX_BODY (1024 * 1024)

typedef enum hr_webhook_kind
{
	HR_WEBHOOK_RELEASE,			/* resource "release", with an app, succeeded */
	HR_WEBHOOK_UNSETTLED,		/* a release still pending (its release phase
								 * runs) or failed: nothing to apply yet */
	HR_WEBHOOK_OTHER,			/* a JSON object about something else */
	HR_WEBHOOK_MALFORMED		/* not one JSON object, or a release without an app */
} hr_webhook_kind;

typedef struct hr_webhook_event
{
	char		app_id[40];		/* data.app.id if a UUID, else "" */
	char		app_name[40];	/* data.app.name if an app name, else "" */
	char		delivery_id[80];	/* webhook_metadata.delivery.id, printable, or "" */
} hr_webhook_event;

/*
 * Read body (len bytes, need not be NUL-terminated): exactly one JSON
 * object (RFC 8259, no trailing bytes), at most HR_WEBHOOK_MAX_BODY bytes.
 * A release has data.app.id (a UUID) or data.app.name (an app name), or
 * both; values that are not valid names or ids are left out, never cut.
 * Its data.status tells whether it is to be applied: "succeeded" (or no
 * status) is, "pending" waits for the update event that says succeeded,
 * "failed" (or anything else) changed nothing.
 */
extern hr_webhook_kind hr_webhook_parse(const char *body, size_t len,
										hr_webhook_event *ev);

#endif							/* HR_WATCH_EVENT_H */
