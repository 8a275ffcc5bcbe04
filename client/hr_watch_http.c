/*-------------------------------------------------------------------------
 *
 * hr_watch_http.c
 *		The webhook receiver of heroku-pg-resolve watch, on libmicrohttpd
 *		(--listen HOST:PORT):
 *
 *		POST /webhooks/heroku	a Heroku app webhook notification
 *		GET  /healthz			the watcher's state as JSON (no secrets)
 *
 * A notification is believed only when Heroku-Webhook-Hmac-SHA256 is the
 * base64 HMAC-SHA256 of the raw body under the secret (and Authorization
 * matches --webhook-authorization-file, if given), both compared in
 * constant time; it is then only a hint: the app it names is asked again
 * through the API (hr_watch_apply), and the answer is 2xx only once the
 * change has been applied, 503 when it could not be (Heroku's sync
 * webhooks then retry).  A delivery id answered 2xx in the last 10 minutes
 * is acknowledged and ignored.
 *
 * libmicrohttpd runs one thread per connection: at most MAX_CONNECTIONS at
 * once, at most --max-connections-per-address of them from one client
 * address (the others are closed at once), each closed after
 * CONNECTION_TIMEOUT seconds of silence; hr_watch_guard.c cuts a request
 * not whole within --request-timeout, and aggregates the log lines of
 * refused requests (at most one a second per kind, with a count).
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "hr_watch.h"
#include "hr_watch_event.h"
#include "hr_watch_guard.h"
#include "hr_watch_sinks.h"

#define HOOK_PATH "/webhooks/heroku"
#define HEALTH_PATH "/healthz"
#define MAX_CONNECTIONS HR_WATCH_MAX_CONNECTIONS
#define CONNECTION_TIMEOUT 10	/* seconds */
#define REPLAY_WINDOW 600.0		/* seconds */
#define REPLAY_MAX 4096
/* a chunked body past 1 MiB is read up to this, for its 413, then cut off */
#define DROP_LIMIT (4 * HR_WEBHOOK_MAX_BODY)

typedef struct seen_delivery
{
	char		id[80];
	double		at;
} seen_delivery;

struct hr_watch_http
{
	struct MHD_Daemon *daemon;
	hr_watch_guard *guard;
	pthread_mutex_t mu;			/* the replay cache */
	seen_delivery *seen;
	int			nseen;
	int			next;
};

/* One POST in progress: its body so far. */
typedef struct hook_request
{
	char	   *body;
	size_t		len;
	size_t		cap;
	int			too_big;
	size_t		dropped;		/* bytes read past the limit */
} hook_request;

/* Queue a small JSON answer (with Allow for a 405). */
static enum MHD_Result
answer_allow(struct MHD_Connection *c, unsigned int status, const char *json,
			 const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(json), (void *) json, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (allow)
		MHD_add_response_header(r, "Allow", allow);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
answer(struct MHD_Connection *c, unsigned int status, const char *json)
{
	return answer_allow(c, status, json, status == 405 ? "POST" : NULL);
}

/* Log the refusal (aggregated by the guard), then answer. */
static enum MHD_Result
refuse(hr_watch *w, struct MHD_Connection *c, unsigned int status,
	   hr_refusal kind, const char *detail, const char *json)
{
	char		who[INET6_ADDRSTRLEN];

	hr_watch_client_address(c, who, sizeof(who));
	hr_watch_guard_refused(w->http->guard, kind, who, detail);
	return answer(c, status, json);
}

/*
 * Is the Content-Type application/json (parameters allowed), or missing?
 * Heroku promises neither way; the signature is what authenticates.
 */
static int
json_content_type(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	size_t		n = strlen("application/json");

	if (ct == NULL)
		return 1;
	if (strncasecmp(ct, "application/json", n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/*
 * Does the signature header match the body under the secret, and the
 * Authorization header the expected value (when one is set)?  Both
 * compared in constant time; the secrets are read under the watcher's lock
 * (SIGHUP may replace them).
 */
static int
authentic(hr_watch *w, struct MHD_Connection *c, const hook_request *r)
{
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Heroku-Webhook-Hmac-SHA256");
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	int			ok;

	if (sig == NULL)
		return 0;
	pthread_mutex_lock(&w->mu);
	ok = HMAC(EVP_sha256(), w->secret, (int) strlen(w->secret),
			  (const unsigned char *) (r->body ? r->body : ""), r->len, mac, &maclen) != NULL;
	if (ok && w->authorization)
	{
		unsigned char want[SHA256_DIGEST_LENGTH];
		unsigned char got[SHA256_DIGEST_LENGTH];

		/* digests of both: equal lengths, so the compare leaks nothing */
		SHA256((const unsigned char *) w->authorization, strlen(w->authorization), want);
		SHA256((const unsigned char *) (auth ? auth : ""), auth ? strlen(auth) : 0, got);
		ok = auth != NULL && CRYPTO_memcmp(want, got, sizeof(want)) == 0;
	}
	pthread_mutex_unlock(&w->mu);
	if (!ok)
		return 0;
	EVP_EncodeBlock(b64, mac, (int) maclen);
	ok = strlen(sig) == strlen((char *) b64) &&
		CRYPTO_memcmp(sig, b64, strlen(sig)) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* Was this delivery answered 2xx in the last REPLAY_WINDOW seconds? */
static int
seen_recently(hr_watch_http *h, const char *id)
{
	double		now = hr_watch_now();
	int			i;
	int			found = 0;

	if (id[0] == '\0')
		return 0;
	pthread_mutex_lock(&h->mu);
	for (i = 0; i < h->nseen && !found; i++)
		found = strcmp(h->seen[i].id, id) == 0 && now - h->seen[i].at < REPLAY_WINDOW;
	pthread_mutex_unlock(&h->mu);
	return found;
}

/* Remember a delivery answered 2xx (the oldest goes when full). */
static void
remember(hr_watch_http *h, const char *id)
{
	if (id[0] == '\0')
		return;
	pthread_mutex_lock(&h->mu);
	snprintf(h->seen[h->next].id, sizeof(h->seen[h->next].id), "%s", id);
	h->seen[h->next].at = hr_watch_now();
	h->next = (h->next + 1) % REPLAY_MAX;
	if (h->nseen < REPLAY_MAX)
		h->nseen++;
	pthread_mutex_unlock(&h->mu);
}

/* A whole, size-checked POST to the hook path. */
static enum MHD_Result
handle_hook(hr_watch *w, struct MHD_Connection *c, const hook_request *r)
{
	hr_webhook_event ev;
	hr_webhook_kind kind;
	char		why[300];
	char		line[400];
	int			app;
	int			rc;

	if (!authentic(w, c, r))
		return refuse(w, c, 401, HR_REFUSE_SIGNATURE, NULL, "{\"status\":\"unauthorized\"}");
	kind = hr_webhook_parse(r->body, r->len, &ev);
	if (kind == HR_WEBHOOK_MALFORMED)
		return refuse(w, c, 400, HR_REFUSE_MALFORMED, NULL, "{\"status\":\"bad request\"}");
	if (kind == HR_WEBHOOK_OTHER)
		return refuse(w, c, 202, HR_REFUSE_NOT_RELEASE, NULL, "{\"status\":\"ignored\"}");
	if (kind == HR_WEBHOOK_UNSETTLED)
		return refuse(w, c, 202, HR_REFUSE_UNSETTLED, NULL, "{\"status\":\"ignored\"}");
	app = hr_watch_match_app(w, ev.app_id, ev.app_name);
	if (app < 0)
		return refuse(w, c, 202, HR_REFUSE_NOT_WATCHED, NULL, "{\"status\":\"ignored\"}");
	if (seen_recently(w->http, ev.delivery_id))
	{
		snprintf(line, sizeof(line), "delivery %s of app %s", ev.delivery_id, w->apps[app].ident);
		return refuse(w, c, 200, HR_REFUSE_DUPLICATE, line, "{\"status\":\"duplicate\"}");
	}
	rc = hr_watch_apply(w, app, "webhook", HR_WATCH_APPLY_WAIT_MS, why, sizeof(why));
	if (rc == 0)
	{
		remember(w->http, ev.delivery_id);
		hr_watch_metric(w, HR_M_WEBHOOK, "applied");
		return answer(c, 200, "{\"status\":\"applied\"}");
	}
	snprintf(line, sizeof(line), "app %s: %s", w->apps[app].ident, why);
	return refuse(w, c, 503, HR_REFUSE_NOT_APPLIED, line, "{\"status\":\"not applied\"}");
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
		const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	hr_watch   *w = cls;
	hook_request *r = *con_cls;

	(void) version;
	if (r == NULL)
	{
		/* the headers are in: refuse what needs no body */
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");

		if (strcmp(url, HEALTH_PATH) == 0)
		{
			char	   *json;
			enum MHD_Result ret;

			if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
				return answer_allow(c, 405, "{\"status\":\"method not allowed\"}", "GET, HEAD");
			json = hr_watch_health(w);
			if (json == NULL)
				return answer(c, 500, "{\"status\":\"out of memory\"}");
			ret = answer(c, 200, json);
			free(json);
			return ret;
		}
		if (strcmp(url, HOOK_PATH) != 0)
			return refuse(w, c, 404, HR_REFUSE_PATH, NULL, "{\"status\":\"not found\"}");
		if (strcmp(method, "POST") != 0)
			return refuse(w, c, 405, HR_REFUSE_METHOD, NULL, "{\"status\":\"method not allowed\"}");
		if (cl && strtoull(cl, NULL, 10) > (unsigned long long) HR_WEBHOOK_MAX_BODY)
			return refuse(w, c, 413, HR_REFUSE_TOO_LARGE, NULL, "{\"status\":\"too large\"}");
		if (!json_content_type(c))
			return refuse(w, c, 415, HR_REFUSE_MEDIA_TYPE, NULL,
						  "{\"status\":\"unsupported media type\"}");
		r = calloc(1, sizeof(hook_request));
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size > 0)
	{
		size_t		n = *upload_size;

		*upload_size = 0;
		if (r->too_big)
		{
			/* read and drop a little more, then hang up on the sender */
			r->dropped += n;
			return r->dropped > DROP_LIMIT ? MHD_NO : MHD_YES;
		}
		if (r->len + n > (size_t) HR_WEBHOOK_MAX_BODY)
		{
			/* no Content-Length (chunked): 413 once the body is over */
			r->too_big = 1;
			r->dropped = r->len + n;
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return MHD_YES;
		}
		if (r->len + n > r->cap)
		{
			size_t		cap = r->cap ? r->cap : 4096;
			char	   *grown;

			while (cap < r->len + n)
				cap *= 2;
			grown = realloc(r->body, cap);
			if (grown == NULL)
				return MHD_NO;
			r->body = grown;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		return MHD_YES;
	}
	if (r->too_big)
		return refuse(w, c, 413, HR_REFUSE_TOO_LARGE, NULL, "{\"status\":\"too large\"}");
	/* whole: no deadline while it is applied (HR_WATCH_APPLY_WAIT_MS at most) */
	hr_watch_guard_answering(c);
	return handle_hook(w, c, r);
}

/*
 * The request is over (answered, or the client left): free its body; a
 * next request on the connection gets a deadline of its own.
 */
static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
		  enum MHD_RequestTerminationCode toe)
{
	hook_request *r = *con_cls;

	(void) cls;
	(void) toe;
	hr_watch_guard_request_over(c);
	if (r)
	{
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

int
hr_watch_http_start(hr_watch *w, char *why, size_t whylen)
{
	hr_watch_http *h;
	struct addrinfo *ai;
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;

	ai = hr_watch_listen_address(w->listen, why, whylen);
	if (ai == NULL)
		return HR_WATCH_EX_OSERR;
	h = calloc(1, sizeof(hr_watch_http));
	if (h == NULL || (h->seen = calloc(REPLAY_MAX, sizeof(seen_delivery))) == NULL)
	{
		freeaddrinfo(ai);
		free(h);
		snprintf(why, whylen, "out of memory");
		return 70;
	}
	pthread_mutex_init(&h->mu, NULL);
	w->http = h;
	h->guard = hr_watch_guard_start(w, "webhook", w->request_timeout_ms);
	if (h->guard == NULL)
	{
		freeaddrinfo(ai);
		snprintf(why, whylen, "could not start a thread");
		return HR_WATCH_EX_OSERR;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handler, w,
								 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
								 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) MAX_CONNECTIONS,
								 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) w->per_address,
								 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) CONNECTION_TIMEOUT,
								 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
								 MHD_OPTION_NOTIFY_CONNECTION, hr_watch_guard_connection, h->guard,
								 MHD_OPTION_END);
	freeaddrinfo(ai);
	if (h->daemon == NULL)
	{
		snprintf(why, whylen, "%s", errno ? strerror(errno) : "libmicrohttpd could not start");
		return HR_WATCH_EX_OSERR;
	}
	return 0;
}

void
hr_watch_http_stop(hr_watch *w)
{
	hr_watch_http *h = w->http;

	if (h == NULL)
		return;
	/* waiting requests see w->stop and answer 503 */
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	/* every connection is closed: the refusals not yet logged are */
	hr_watch_guard_stop(h->guard);
	pthread_mutex_destroy(&h->mu);
	free(h->seen);
	free(h);
	w->http = NULL;
}
