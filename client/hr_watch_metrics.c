/*-------------------------------------------------------------------------
 *
 * hr_watch_metrics.c
 *		heroku-pg-resolve watch --metrics-listen ADDR:PORT: Prometheus text
 *		format (version 0.0.4) at GET /metrics, on a listener of its own
 *		(never the webhook receiver's, so that what can scrape cannot post
 *		and the reverse).
 *
 * Counters are kept whether or not the listener runs (a few adds under a
 * mutex); each is a family and a fixed label word.  The listener is
 * libmicrohttpd, as the webhook receiver, with one polling thread, a
 * bound on connections per client address, an idle timeout and, from the
 * webhook receiver's guard (hr_watch_guard.c), a deadline for each whole
 * request (--request-timeout); it answers GET and HEAD on /metrics only.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "hr_internal.h"
#include "hr_watch.h"
#include "hr_watch_guard.h"
#include "hr_watch_sinks.h"
#include "hr_watch_tls.h"

#define MAX_SAMPLES 96
#define METRICS_CONNECTIONS 16
#define METRICS_IDLE_TIMEOUT_S 10

typedef struct sample
{
	int			family;
	char		label[24];
	unsigned long long value;
} sample;

struct hr_watch_metrics
{
	pthread_mutex_t mu;
	sample		samples[MAX_SAMPLES];
	int			nsamples;
	time_t		gauges[HR_MT_GAUGES];
	struct MHD_Daemon *daemon;
	hr_watch_guard *guard;
};

static const struct
{
	const char *name;
	const char *label;
	const char *help;
}			families[HR_M_COUNTERS] = {
	{"heroku_pg_resolve_webhooks_total", "result", "Webhook requests answered, by result."},
	{"heroku_pg_resolve_api_requests_total", "status", "Heroku API requests, by HTTP status (error: no answer)."},
	{"heroku_pg_resolve_feed_listings_total", "result", "Listings of the release feed, by result."},
	{"heroku_pg_resolve_sink_writes_total", "sink", "Sink files rewritten (a changed text), by sink."},
	{"heroku_pg_resolve_sink_failures_total", "sink", "Sink writes that failed (retried), by sink."},
	{"heroku_pg_resolve_on_change_runs_total", "result", "Runs of --on-change, by result."},
};

static const struct
{
	const char *name;
	const char *help;
}			gauges[HR_MT_GAUGES] = {
	{"heroku_pg_resolve_last_successful_check_timestamp_seconds",
	"Unix time of the last successful check of an app's config vars (0: none yet)."},
	{"heroku_pg_resolve_last_change_timestamp_seconds",
	"Unix time of the last real change of a service's URL in the sinks (0: none yet)."},
};

/* The sample of family f, label; added at 0 if new.  With mu held. */
static sample *
find(hr_watch_metrics *m, int f, const char *label)
{
	int			i;

	for (i = 0; i < m->nsamples; i++)
		if (m->samples[i].family == f && strcmp(m->samples[i].label, label) == 0)
			return &m->samples[i];
	if (m->nsamples == MAX_SAMPLES)
		return NULL;
	m->samples[m->nsamples].family = f;
	snprintf(m->samples[m->nsamples].label, sizeof(m->samples[0].label), "%s", label);
	m->samples[m->nsamples].value = 0;
	return &m->samples[m->nsamples++];
}

/* The samples a scrape shows at 0 before anything happened. */
int
hr_watch_metrics_init(hr_watch *w)
{
	hr_watch_metrics *m = calloc(1, sizeof(hr_watch_metrics));

	if (m == NULL)
		return -1;
	pthread_mutex_init(&m->mu, NULL);
	if (w->service_file)
	{
		find(m, HR_M_SINK_WRITE, "service_file");
		find(m, HR_M_SINK_FAILURE, "service_file");
	}
	if (w->env_file)
	{
		find(m, HR_M_SINK_WRITE, "env_file");
		find(m, HR_M_SINK_FAILURE, "env_file");
	}
	if (w->on_change)
	{
		find(m, HR_M_ON_CHANGE, "ok");
		find(m, HR_M_ON_CHANGE, "failed");
		find(m, HR_M_ON_CHANGE, "timeout");
		find(m, HR_M_ON_CHANGE, "not_found");
	}
	if (w->interval_ms > 0)
	{
		find(m, HR_M_FEED_LISTING, "ok");
		find(m, HR_M_FEED_LISTING, "error");
	}
	w->metrics = m;
	return 0;
}

void
hr_watch_metric(hr_watch *w, hr_metric f, const char *label)
{
	hr_watch_metrics *m = w->metrics;
	sample	   *s;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	if ((s = find(m, (int) f, label)) != NULL)
		s->value++;
	pthread_mutex_unlock(&m->mu);
}

void
hr_watch_metric_status(hr_watch *w, long http_status)
{
	char		label[16];

	if (http_status > 0)
		snprintf(label, sizeof(label), "%ld", http_status);
	else
		snprintf(label, sizeof(label), "error");
	hr_watch_metric(w, HR_M_API_REQUEST, label);
}

void
hr_watch_metric_now(hr_watch *w, hr_metric_time g)
{
	hr_watch_metrics *m = w->metrics;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->gauges[g] = time(NULL);
	pthread_mutex_unlock(&m->mu);
}

/* The exposition: each family's HELP and TYPE, then its samples. */
static char *
render(hr_watch *w, hr_watch_metrics *m)
{
	hr_buf		b;
	char		line[600];
	int			f;
	int			i;

	hr_buf_init(&b);
	pthread_mutex_lock(&m->mu);
	for (f = 0; f < HR_M_COUNTERS; f++)
	{
		snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s counter\n",
				 families[f].name, families[f].help, families[f].name);
		hr_buf_puts(&b, line);
		for (i = 0; i < m->nsamples; i++)
			if (m->samples[i].family == f)
			{
				snprintf(line, sizeof(line), "%s{%s=\"%s\"} %llu\n", families[f].name,
						 families[f].label, m->samples[i].label, m->samples[i].value);
				hr_buf_puts(&b, line);
			}
	}
	for (f = 0; f < HR_MT_GAUGES; f++)
	{
		snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n",
				 gauges[f].name, gauges[f].help, gauges[f].name, gauges[f].name,
				 (long long) m->gauges[f]);
		hr_buf_puts(&b, line);
	}
	pthread_mutex_unlock(&m->mu);
	hr_watch_tls_metrics(w, &b);
	if (b.oom)
	{
		free(b.data);
		return NULL;
	}
	return b.data;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned int status, const char *type, char *text,
	  enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, mode);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (status == 405)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* GET /metrics; a body sent to it is not read. */
static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
		const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	hr_watch   *w = cls;
	char	   *text;

	(void) version;
	(void) upload;
	(void) upload_size;
	(void) con_cls;
	/* the request line and headers are whole: no deadline while answering */
	hr_watch_guard_answering(c);
	if (strcmp(url, "/metrics") != 0)
		return reply(c, 404, "text/plain", "not found\n", MHD_RESPMEM_PERSISTENT);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(c, 405, "text/plain", "method not allowed\n", MHD_RESPMEM_PERSISTENT);
	text = render(w, w->metrics);
	if (text == NULL)
		return reply(c, 500, "text/plain", "out of memory\n", MHD_RESPMEM_PERSISTENT);
	return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, MHD_RESPMEM_MUST_FREE);
}

/* The request is over: a next one on the connection gets a deadline of its own. */
static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
		  enum MHD_RequestTerminationCode toe)
{
	(void) cls;
	(void) con_cls;
	(void) toe;
	hr_watch_guard_request_over(c);
}

int
hr_watch_metrics_start(hr_watch *w, char *why, size_t whylen)
{
	hr_watch_metrics *m = w->metrics;
	struct addrinfo *ai;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;

	if (w->metrics_listen == NULL || m == NULL)
		return 0;
	ai = hr_watch_listen_address(w->metrics_listen, why, whylen);
	if (ai == NULL)
		return HR_WATCH_EX_METRICS;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->guard = hr_watch_guard_start(w, "metrics", w->request_timeout_ms);
	if (m->guard == NULL)
	{
		freeaddrinfo(ai);
		snprintf(why, whylen, "could not start a thread");
		return HR_WATCH_EX_METRICS;
	}
	errno = 0;
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handler, w,
								 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
								 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) METRICS_CONNECTIONS,
								 MHD_OPTION_PER_IP_CONNECTION_LIMIT,
								 (unsigned int) HR_WATCH_DEFAULT_PER_ADDRESS,
								 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) METRICS_IDLE_TIMEOUT_S,
								 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
								 MHD_OPTION_NOTIFY_CONNECTION, hr_watch_guard_connection, m->guard,
								 MHD_OPTION_END);
	freeaddrinfo(ai);
	if (m->daemon == NULL)
	{
		hr_watch_guard_stop(m->guard);
		m->guard = NULL;
		snprintf(why, whylen, "%s", errno ? strerror(errno) : "libmicrohttpd could not start");
		return HR_WATCH_EX_METRICS;
	}
	return 0;
}

void
hr_watch_metrics_stop(hr_watch *w)
{
	hr_watch_metrics *m = w->metrics;

	if (m == NULL)
		return;
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	hr_watch_guard_stop(m->guard);
	pthread_mutex_destroy(&m->mu);
	free(m);
	w->metrics = NULL;
}
