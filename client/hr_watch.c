/*-------------------------------------------------------------------------
 *
 * hr_watch.c
 *		heroku-pg-resolve watch: the loop and its state.
 *
 * The main thread makes every API request.  An app is checked (GET its
 * config vars, conditional on the ETag of the last good answer) when an
 * event asks for it: a webhook (hr_watch_http.c), the release feed
 * (hr_watch_feed.c), or its own retry after a failure; at most once a
 * second per app, however many events arrive, and every event waits for a
 * check that started after it arrived.  A 200 rewrites the app's service
 * entries whose text changed (hr_service_file_set: locked, atomic, other
 * sections untouched) and, when the config vars changed, hands a new
 * generation of the app to the clusters (hr_watch_db.c).  A failure keeps
 * the old entries, is logged, and is retried after 1 s, 2 s, ... 60 s.
 *
 * Tickets: hr_watch.seq counts requests; an app's want is its newest,
 * started the newest covered by the check in progress (it began after
 * them), done the newest covered by a finished check.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "hr_internal.h"
#include "hr_service.h"
#include "hr_watch.h"
#include "hr_watch_db.h"
#include "hr_watch_feed.h"
#include "hr_watch_opts.h"
#include "hr_watch_sinks.h"
#include "hr_watch_pgbouncer.h"
#include "hr_watch_tls.h"

/* Ask for a check of app i; with mu held.  Returns the ticket. */
static unsigned long
request_check(hr_watch *w, int i, const char *what)
{
	hr_watch_app *a = &w->apps[i];

	/* the first pending event is the one whose wait is timed */
	if (a->want <= a->started)
	{
		a->trigger = what;
		a->trigger_at = hr_watch_now();
	}
	a->want = ++w->seq;
	w->last_event = time(NULL);
	snprintf(w->last_event_app, sizeof(w->last_event_app), "%s", a->ident);
	snprintf(w->last_event_what, sizeof(w->last_event_what), "%s", what);
	pthread_cond_broadcast(&w->cond);
	return a->want;
}

int
hr_watch_match_app(hr_watch *w, const char *id, const char *name)
{
	int			i;
	int			found = -1;

	pthread_mutex_lock(&w->mu);
	for (i = 0; i < w->napps && found < 0; i++)
	{
		hr_watch_app *a = &w->apps[i];

		if ((id && id[0] && (strcasecmp(a->ident, id) == 0 || strcasecmp(a->id, id) == 0)) ||
			(name && name[0] && (strcmp(a->ident, name) == 0 || strcmp(a->name, name) == 0)))
			found = i;
	}
	if (found >= 0)
	{
		/* learn the other half, for events that give only one */
		if (id && id[0] && w->apps[found].id[0] == '\0' && strlen(id) < sizeof(w->apps[found].id))
			strcpy(w->apps[found].id, id);
		if (name && name[0] && w->apps[found].name[0] == '\0' &&
			strlen(name) < sizeof(w->apps[found].name))
			strcpy(w->apps[found].name, name);
	}
	pthread_mutex_unlock(&w->mu);
	return found;
}

int
hr_watch_apply(hr_watch *w, int i, const char *what, long wait_ms, char *why,
			   size_t whylen)
{
	hr_watch_app *a = &w->apps[i];
	double		deadline = hr_watch_now() + wait_ms / 1000.0;
	unsigned long ticket;
	int			state;

	pthread_mutex_lock(&w->mu);
	ticket = request_check(w, i, what);
	while (!w->stop && a->done < ticket && hr_watch_now() < deadline)
		hr_watch_wait(w, deadline);
	if (a->done < ticket)
	{
		snprintf(why, whylen, "%s", w->stop ? "the watcher is stopping"
				 : "no answer from the API in time");
		pthread_mutex_unlock(&w->mu);
		return -1;
	}
	if (!a->last_ok)
	{
		snprintf(why, whylen, "%s", a->last_error);
		pthread_mutex_unlock(&w->mu);
		return -1;
	}
	while (!w->stop && (state = hr_watch_dbs_state(w, i, a->gen)) == 0 &&
		   hr_watch_now() < deadline)
		hr_watch_wait(w, deadline);
	state = hr_watch_dbs_state(w, i, a->gen);
	if (state != 1)
		snprintf(why, whylen, "%s", state < 0 ? "a cluster could not be notified (retrying)"
				 : "a cluster was not notified in time");
	pthread_mutex_unlock(&w->mu);
	return state == 1 ? 0 : -1;
}

/* A non-2xx answer to GET config-vars as an error. */
static hr_code
answer_error(const hr_response *r, const char *app, hr_error *err)
{
	char		api[300];
	hr_code		code;

	hr_api_error_text(r->body.data, r->body.len, api, sizeof(api));
	if (r->status == 401)
		code = HR_EAUTH;
	else if (r->status == 402 || r->status == 403)
		code = HR_EFORBIDDEN;
	else if (r->status == 404)
		code = HR_ENOTFOUND;
	else if (r->status == 429)
		code = HR_ERATELIMIT;
	else if (r->status >= 500)
		code = HR_EUNAVAILABLE;
	else
		code = HR_EPROTOCOL;
	hr_error_set(err, code, "the Heroku API answered HTTP %ld for the config vars of app \"%s\"%s%s",
				 r->status, app, api[0] ? ": " : "", api);
	return code;
}

/*
 * Write app i's service entries from a config-vars body.  Returns 0, or
 * the exit status fit for a start-up failure (with err set).  rewritten
 * gets the names of the sections whose text changed.
 */
static int
write_entries(hr_watch *w, int i, const hr_response *r, char *rewritten,
			  size_t rlen, hr_error *err)
{
	char	  **fresh = calloc((size_t) w->nentries + 1, sizeof(char *));
	int			status = 0;
	int			k;

	rewritten[0] = '\0';
	if (fresh == NULL)
	{
		hr_error_oom(err);
		return EX_SOFTWARE;
	}
	for (k = 0; k < w->nentries && status == 0; k++)
	{
		hr_watch_entry *e = &w->entries[k];
		hr_service_error serr;
		hr_service_status st;
		hr_result	res;
		char	   *value = NULL;
		char	   *used = NULL;
		int			changed = 0;
		hr_code		rc;

		if (e->app != i)
			continue;
		rc = hr_config_vars_pick(r->body.data ? r->body.data : "", r->body.len,
								 w->apps[i].ident, e->config_var, &value, &used, err);
		if (rc == HR_OK)
			rc = hr_result_from_url(value, hr_watch_tls_min_sslmode(w, k), w->apps[i].ident,
									used, &res, err);
		/* --service-option's files ride along in every sink's URL */
		if (rc == HR_OK && (rc = hr_watch_tls_add(w, k, &res, err)) != HR_OK)
			hr_result_free(&res);
		hr_free_secret(value);
		free(used);
		if (rc != HR_OK)
		{
			status = hr_watch_exit_code(rc);
			break;
		}
		fresh[k] = hr_watch_env_safe_url(res.url);
		if (fresh[k] == NULL)
		{
			hr_result_free(&res);
			hr_error_oom(err);
			status = EX_SOFTWARE;
			break;
		}
		hr_wpgb_set(w, k, res.params.n, res.params.keywords, res.params.values);
		st = hr_service_file_set(w->service_file, e->service, res.params.n,
								 (const char *const *) res.params.keywords,
								 (const char *const *) res.params.values, &changed, &serr);
		hr_result_free(&res);
		if (st != HR_SERVICE_OK)
		{
			hr_error_set(err, st == HR_SERVICE_ENOMEM ? HR_ENOMEM : HR_EBADURL,
						 "service [%s]: %s", e->service, serr.message);
			hr_watch_metric(w, HR_M_SINK_FAILURE, "service_file");
			status = st == HR_SERVICE_EIO ? EX_CANTCREAT
				: st == HR_SERVICE_ENOMEM ? EX_SOFTWARE : EX_DATAERR;
			break;
		}
		if (changed)
			hr_watch_metric(w, HR_M_SINK_WRITE, "service_file");
		if (changed)
			snprintf(rewritten + strlen(rewritten), rlen - strlen(rewritten), "%s[%s]",
					 rewritten[0] ? ", " : "", e->service);
	}
	/* the other sinks, then the commit of the URLs and --on-change */
	if (status == 0)
		status = hr_watch_sinks_apply(w, i, fresh, err);
	for (k = 0; k < w->nentries; k++)
		hr_free_secret(fresh[k]);
	free(fresh);
	if (status == 0)
		hr_wpgb_kick(w);
	return status;
}

/*
 * Check app i (its check has been marked started).  At start (initial),
 * returns the exit status of a failure that retrying cannot cure; else 0.
 */
int
hr_watch_check_app(hr_watch *w, int i, int initial)
{
	hr_watch_app *a = &w->apps[i];
	const char *api_url = w->s.api_url ? w->s.api_url : HR_DEFAULT_API_URL;
	const char *what;
	char	   *token;
	char	   *etag;
	char		rewritten[600];
	hr_response r;
	hr_error	err;
	hr_buf		url;
	double		since;
	int			status = 0;
	int			ok = 0;
	int			changed = 0;
	hr_code		rc;
	size_t		n;

	memset(&err, 0, sizeof(err));
	rewritten[0] = '\0';
	pthread_mutex_lock(&w->mu);
	token = hr_strdup(w->token);
	etag = a->etag ? hr_strdup(a->etag) : NULL;
	what = initial ? "start" : a->trigger ? a->trigger : "retry";
	since = initial ? hr_watch_now() : a->trigger_at;
	pthread_mutex_unlock(&w->mu);

	hr_buf_init(&url);
	n = strlen(api_url);
	while (n > 0 && api_url[n - 1] == '/')
		n--;
	hr_buf_append(&url, api_url, n);
	hr_buf_puts(&url, "/apps/");
	hr_buf_puts(&url, a->ident);
	hr_buf_puts(&url, "/config-vars");
	memset(&r, 0, sizeof(r));
	if (token == NULL || url.oom)
		rc = hr_error_oom(&err);
	else
	{
		rc = hr_http_get(w->api, &w->s, url.data, token, etag, a->ident, &r, &err);
		hr_watch_metric_status(w, rc == HR_OK ? r.status : err.http_status);
	}
	hr_free_secret(token);
	free(url.data);
	if (rc == HR_OK && r.status == 304 && etag)
		ok = 1;
	else if (rc == HR_OK && r.status == 200)
	{
		status = write_entries(w, i, &r, rewritten, sizeof(rewritten), &err);
		ok = status == 0;
		changed = ok && (etag == NULL || strcmp(etag, r.etag) != 0);
	}
	else if (rc == HR_OK)
	{
		status = hr_watch_exit_code(answer_error(&r, a->ident, &err));
		err.retry_after = r.retry_after;
	}
	else
		status = hr_watch_exit_code(rc);
	hr_response_free(&r);

	pthread_mutex_lock(&w->mu);
	a->done = a->started;
	a->last_ok = ok;
	if (ok)
	{
		hr_watch_metric_now(w, HR_MT_LAST_CHECK);
		a->backoff_ms = 0;
		a->retry_at = 0;
		a->checked_at = time(NULL);
		if (r.etag[0] && (a->etag == NULL || strcmp(a->etag, r.etag) != 0))
		{
			free(a->etag);
			a->etag = hr_strdup(r.etag);
		}
		/*
		 * A first look is no change, nor is the retry of a failed start;
		 * an event's check after a failed start is, to be safe.
		 */
		if (changed && !initial && (etag != NULL || strcmp(what, "retry") != 0))
			hr_watch_dbs_notify(w, i, ++a->gen);
		else
			changed = 0;
	}
	else
	{
		snprintf(a->last_error, sizeof(a->last_error), "%s%s%s%s", err.message,
				 err.detail[0] ? " (" : "", err.detail, err.detail[0] ? ")" : "");
		a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : 1000;
		if (a->backoff_ms > HR_WATCH_MAX_BACKOFF_MS)
			a->backoff_ms = HR_WATCH_MAX_BACKOFF_MS;
		/* a 429 says when to come back (at most 15 minutes) */
		if (err.retry_after > 0 && err.retry_after * 1000L > a->backoff_ms)
			a->backoff_ms = (err.retry_after > 900 ? 900 : err.retry_after) * 1000L;
		a->retry_at = hr_watch_now() + a->backoff_ms / 1000.0;
	}
	pthread_cond_broadcast(&w->cond);
	if (!ok)
		hr_watch_log(w, "app %s: check failed (%s): %s; old entries kept, retrying in %ld s",
					 a->ident, what, a->last_error, a->backoff_ms / 1000);
	else if (initial)
		hr_watch_log(w, "app %s: at start: %s%s; %.0f ms", a->ident,
					 rewritten[0] ? "rewrote " : a->nentries ? "entries already up to date" : "looked",
					 rewritten, (hr_watch_now() - since) * 1000);
	else
		hr_watch_log(w, "app %s: %s (%s): %s%s%s; %.0f ms", a->ident,
					 changed || rewritten[0] ? "changed" : "no change", what,
					 rewritten[0] ? "rewrote " : "no entry rewritten", rewritten,
					 changed && w->ndbs ? ", clusters to notify" : "",
					 (hr_watch_now() - since) * 1000);
	pthread_mutex_unlock(&w->mu);
	free(etag);
	if (initial && !ok && rc != HR_EUNAVAILABLE && rc != HR_ERATELIMIT && rc != HR_ECANCELED &&
		!(rc == HR_OK && r.status >= 500) && !(rc == HR_OK && r.status == 429))
		return status ? status : EX_SOFTWARE;
	return 0;
}

/* Feed callback: an app's released_at moved. */
static void
feed_changed(void *arg, const char *id, const char *name)
{
	hr_watch   *w = arg;
	int			i = hr_watch_match_app(w, id, name);

	if (i < 0)
		return;
	pthread_mutex_lock(&w->mu);
	request_check(w, i, "feed");
	pthread_mutex_unlock(&w->mu);
}

/* One listing of the feed.  At start, the exit status of a hopeless failure. */
int
hr_watch_poll_feed(hr_watch *w, int initial)
{
	hr_wfeed_stats st;
	hr_error	err;
	char	   *token;
	hr_code		rc;
	int			was_ok;
	int			k;

	memset(&err, 0, sizeof(err));
	pthread_mutex_lock(&w->mu);
	token = hr_strdup(w->token);
	was_ok = w->last_feed == 0 || w->last_feed_ok;
	pthread_mutex_unlock(&w->mu);
	if (token == NULL)
		return EX_SOFTWARE;
	rc = hr_wfeed_poll(w->feed, w->api, &w->s, token, feed_changed, w, &st, &err);
	hr_free_secret(token);
	hr_watch_metric(w, HR_M_FEED_LISTING, rc == HR_OK ? "ok" : rc == HR_ECANCELED ? "canceled" : "error");
	/* the feed tells how many requests and how many were 304s */
	for (k = 0; k < st.requests; k++)
		hr_watch_metric_status(w, k < st.not_modified ? 304 : rc == HR_OK || k < st.requests - 1 ? 200
							   : err.http_status);
	pthread_mutex_lock(&w->mu);
	w->last_feed = time(NULL);
	w->last_feed_ok = rc == HR_OK;
	pthread_mutex_unlock(&w->mu);
	if (rc == HR_ECANCELED)
		return 0;
	if (rc != HR_OK && initial && (rc == HR_EAUTH || rc == HR_EFORBIDDEN || rc == HR_EINVAL))
	{
		hr_cli_fail(rc == HR_EINVAL ? "Check --api-url or HEROKU_API_URL."
					  : "Check the token: listing the apps needs access to them.",
					  "%s", err.message);
		return hr_watch_exit_code(rc);
	}
	w->feed_wait_ms = w->interval_ms;
	if (rc != HR_OK && err.retry_after * 1000L > w->interval_ms)
		w->feed_wait_ms = (err.retry_after > 900 ? 900 : err.retry_after) * 1000L;
	if (rc != HR_OK)
		hr_watch_log(w, "feed: %s%s%s%s; trying again in %.1f s", err.message,
					 err.detail[0] ? " (" : "", err.detail, err.detail[0] ? ")" : "",
					 w->feed_wait_ms / 1000.0);
	else if (st.changes > 0 || !was_ok)
		hr_watch_log(w, "feed: %d of %d apps released since the last look (%d request%s, %d not modified)",
					 st.changes, st.apps, st.requests, st.requests == 1 ? "" : "s",
					 st.not_modified);
	return 0;
}

/* The loop: checks as they come due, the feed on its interval. */
void
hr_watch_run(hr_watch *w)
{
	double		next_feed = hr_watch_now() + w->interval_ms / 1000.0;

	pthread_mutex_lock(&w->mu);
	while (!w->stop)
	{
		double		now = hr_watch_now();
		double		wake = now + 3600;
		int			pick = -1;
		int			i;

		if (w->hup)
		{
			w->hup = 0;
			pthread_mutex_unlock(&w->mu);
			hr_watch_load_secrets(w, 0);
			pthread_mutex_lock(&w->mu);
			continue;
		}
		for (i = 0; i < w->napps; i++)
		{
			hr_watch_app *a = &w->apps[i];
			double		due = -1;

			if (a->want > a->started)
				due = a->last_start + HR_WATCH_MIN_RECHECK_MS / 1000.0;
			else if (a->retry_at > 0)
				due = a->retry_at;
			if (due < 0)
				continue;
			if (due <= now && pick < 0)
				pick = i;
			else if (due < wake)
				wake = due;
		}
		if (pick >= 0)
		{
			hr_watch_app *a = &w->apps[pick];

			if (a->want <= a->started)
			{
				a->trigger = "retry";
				a->trigger_at = now;
			}
			a->started = w->seq;
			a->last_start = now;
			a->retry_at = 0;
			pthread_mutex_unlock(&w->mu);
			hr_watch_check_app(w, pick, 0);
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (now >= hr_watch_tls_due(w) && hr_watch_tls_any(w))
		{
			pthread_mutex_unlock(&w->mu);
			hr_watch_tls_expiry(w);
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (w->interval_ms > 0 && now >= next_feed)
		{
			pthread_mutex_unlock(&w->mu);
			hr_watch_poll_feed(w, 0);
			next_feed = hr_watch_now() + w->feed_wait_ms / 1000.0;
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (w->interval_ms > 0 && next_feed < wake)
			wake = next_feed;
		if (hr_watch_tls_any(w) && hr_watch_tls_due(w) < wake)
			wake = hr_watch_tls_due(w);
		hr_watch_wait(w, wake);
	}
	pthread_mutex_unlock(&w->mu);
}

/* /healthz: the state as JSON; no token, secret, password or conninfo. */
char *
hr_watch_health(hr_watch *w)
{
	struct json_object *root = json_object_new_object();
	struct json_object *apps = json_object_new_array();
	struct json_object *clusters = json_object_new_array();
	struct json_object *feed = json_object_new_object();
	char		stamp[32];
	char	   *text = NULL;
	int			ok = 1;
	int			i;

	if (root == NULL || apps == NULL || clusters == NULL || feed == NULL)
	{
		json_object_put(root);
		json_object_put(apps);
		json_object_put(clusters);
		json_object_put(feed);
		return NULL;
	}
#define STAMP(t) (strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&(t))), \
				  json_object_new_string(stamp))
	pthread_mutex_lock(&w->mu);
	for (i = 0; i < w->napps; i++)
	{
		hr_watch_app *a = &w->apps[i];
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "app", json_object_new_string(a->ident));
		if (a->name[0])
			json_object_object_add(o, "name", json_object_new_string(a->name));
		if (a->id[0])
			json_object_object_add(o, "id", json_object_new_string(a->id));
		json_object_object_add(o, "service_entries", json_object_new_int(a->nentries));
		json_object_object_add(o, "ok", json_object_new_boolean(a->last_ok));
		json_object_object_add(o, "last_checked", a->checked_at ? STAMP(a->checked_at) : NULL);
		json_object_array_add(apps, o);
		ok = ok && a->last_ok;
	}
	json_object_object_add(feed, "interval_ms", json_object_new_int64(w->interval_ms));
	json_object_object_add(feed, "last", w->last_feed ? STAMP(w->last_feed) : NULL);
	json_object_object_add(feed, "ok", w->last_feed ? json_object_new_boolean(w->last_feed_ok) : NULL);
	if (w->last_feed && !w->last_feed_ok)
		ok = 0;
	json_object_object_add(root, "status", json_object_new_string(ok ? "ok" : "degraded"));
	json_object_object_add(root, "apps", apps);
	json_object_object_add(root, "feed", feed);
	if (w->last_event)
	{
		struct json_object *ev = json_object_new_object();

		json_object_object_add(ev, "app", json_object_new_string(w->last_event_app));
		json_object_object_add(ev, "source", json_object_new_string(w->last_event_what));
		json_object_object_add(ev, "at", STAMP(w->last_event));
		json_object_object_add(root, "last_event", ev);
	}
	else
		json_object_object_add(root, "last_event", NULL);
	hr_watch_dbs_health(w, clusters);
	hr_wpgb_health(w, root, &ok);
	json_object_object_add(root, "status", json_object_new_string(ok ? "ok" : "degraded"));
	json_object_object_add(root, "clusters", clusters);
	pthread_mutex_unlock(&w->mu);
#undef STAMP
	text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return text;
}

