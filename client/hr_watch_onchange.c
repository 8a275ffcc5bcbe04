/*-------------------------------------------------------------------------
 *
 * hr_watch_onchange.c
 *		heroku-pg-resolve watch --on-change CMD: run CMD with /bin/sh -c
 *		after every sink holds a changed URL (hr_watch_sinks_apply).
 *
 * One thread runs the command, so never two runs at once.  Names that
 * change while it runs (or while a failed run waits for its retry) are
 * gathered and make exactly one more run, with all of them in
 * HEROKU_PG_RESOLVE_CHANGED.  The command runs in a process group of its
 * own, with the watcher's environment less HEROKU_API_KEY, stdin from
 * /dev/null; after --on-change-timeout the group gets SIGTERM, and SIGKILL
 * 2 s later.  A failure (non-zero status, a signal, the timeout) is logged
 * with its status and retried after 1 s, 2 s, ... 60 s.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hr_watch_sinks.h"

extern char **environ;

#define KILL_GRACE_S 2.0

struct hr_watch_onchange
{
	hr_watch   *w;
	pthread_t	thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char		pending[1024];	/* space-separated, each name once */
	volatile int stop;
	int			running;
};

/* Add the names not yet pending; with mu held. */
static void
add_names(hr_watch_onchange *o, const char *names)
{
	char		copy[1024];
	char	   *save = NULL;
	char	   *n;

	snprintf(copy, sizeof(copy), "%s", names);
	for (n = strtok_r(copy, " ", &save); n; n = strtok_r(NULL, " ", &save))
	{
		size_t		len = strlen(n);
		const char *p = o->pending;
		int			found = 0;

		while ((p = strstr(p, n)) != NULL && !found)
		{
			found = (p == o->pending || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0');
			p += len;
		}
		if (!found && strlen(o->pending) + len + 2 < sizeof(o->pending))
			snprintf(o->pending + strlen(o->pending), sizeof(o->pending) - strlen(o->pending),
					 "%s%s", o->pending[0] ? " " : "", n);
	}
}

/* The child's environment: ours, less the token, plus the changed names. */
static char **
child_env(const char *names, char **extra)
{
	size_t		n = 0;
	char	  **env;
	size_t		k = 0;
	size_t		i;

	while (environ && environ[n])
		n++;
	env = calloc(n + 2, sizeof(char *));
	if (env == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "HEROKU_API_KEY=", 15) != 0 &&
			strncmp(environ[i], "HEROKU_PG_RESOLVE_CHANGED=", 26) != 0)
			env[k++] = environ[i];
	env[k] = malloc(strlen(names) + 32);
	if (env[k] == NULL)
	{
		free(env);
		return NULL;
	}
	sprintf(env[k], "HEROKU_PG_RESOLVE_CHANGED=%s", names);
	*extra = env[k];
	return env;
}

/* Sleep until the monotonic time until, or stop; with o->mu held. */
static void
wait_until(hr_watch_onchange *o, double until)
{
	while (!o->stop && hr_watch_now() < until)
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		{
			double		left = until - hr_watch_now();

			ts.tv_sec += (time_t) left;
			ts.tv_nsec += (long) ((left - (double) (time_t) left) * 1e9);
			if (ts.tv_nsec >= 1000000000L)
			{
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
		}
		pthread_cond_timedwait(&o->cond, &o->mu, &ts);
	}
}

/*
 * Run the command once for names.  Returns its wait status, or -1 when it
 * could not be started; *timed_out says the timeout killed it.
 */
static int
run_once(hr_watch_onchange *o, const char *names, int *timed_out)
{
	hr_watch   *w = o->w;
	char	   *argv[] = {"sh", "-c", (char *) w->on_change, NULL};
	char	   *extra = NULL;
	char	  **env = child_env(names, &extra);
	double		deadline = hr_watch_now() + w->on_change_timeout_ms / 1000.0;
	double		killed_at = 0;
	int			status = -1;
	pid_t		pid;

	*timed_out = 0;
	if (env == NULL)
		return -1;
	pid = fork();
	if (pid == 0)
	{
		struct sigaction sa;
		sigset_t	none;
		int			fd;

		/* only async-signal-safe calls from here on */
		setpgid(0, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &sa, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		fd = open("/dev/null", O_RDONLY);
		if (fd > 0)
		{
			dup2(fd, 0);
			close(fd);
		}
		close_range(3, ~0U, 0);
		execve("/bin/sh", argv, env);
		_exit(127);
	}
	free(extra);
	free(env);
	if (pid < 0)
		return -1;
	/* in its own group before any kill, whichever of the two setpgid wins */
	setpgid(pid, pid);
	for (;;)
	{
		pid_t		r = waitpid(pid, &status, WNOHANG);
		double		now = hr_watch_now();

		if (r == pid || (r < 0 && errno != EINTR))
			break;
		if (killed_at == 0 && (now >= deadline || o->stop))
		{
			*timed_out = now >= deadline;
			kill(-pid, SIGTERM);
			killed_at = now;
		}
		else if (killed_at > 0 && now >= killed_at + KILL_GRACE_S)
		{
			kill(-pid, SIGKILL);
			killed_at = now + 3600;
		}
		usleep(10000);
	}
	/* what it left behind in its group goes with it */
	if (killed_at > 0)
		kill(-pid, SIGKILL);
	return status;
}

/* Describe a wait status for the log; 0 when it is a success. */
static int
describe(int status, int timed_out, long timeout_ms, char *dst, size_t len,
		 const char **result)
{
	if (status == -1)
	{
		snprintf(dst, len, "could not be started: %s", strerror(errno));
		*result = "failed";
		return 1;
	}
	if (timed_out)
	{
		snprintf(dst, len, "killed after the timeout of %.1f s (--on-change-timeout)",
				 timeout_ms / 1000.0);
		*result = "timeout";
		return 1;
	}
	if (WIFSIGNALED(status))
	{
		snprintf(dst, len, "killed by signal %d", WTERMSIG(status));
		*result = "failed";
		return 1;
	}
	if (WEXITSTATUS(status) == 127)
	{
		snprintf(dst, len, "exit status 127: command not found (see the shell's message above; check --on-change)");
		*result = "not_found";
		return 1;
	}
	if (WEXITSTATUS(status) == 126)
	{
		snprintf(dst, len, "exit status 126: command not executable (check --on-change)");
		*result = "failed";
		return 1;
	}
	snprintf(dst, len, "exit status %d", WEXITSTATUS(status));
	*result = WEXITSTATUS(status) == 0 ? "ok" : "failed";
	return WEXITSTATUS(status) != 0;
}

/* The thread: one run at a time; what arrives meanwhile makes one more. */
static void *
onchange_thread(void *arg)
{
	hr_watch_onchange *o = arg;
	hr_watch   *w = o->w;
	long		backoff_ms = 0;
	double		retry_at = 0;

	pthread_mutex_lock(&o->mu);
	for (;;)
	{
		char		names[1024];
		char		what[200];
		const char *result;
		double		start;
		int			timed_out;
		int			status;

		while (!o->stop && o->pending[0] == '\0')
			pthread_cond_wait(&o->cond, &o->mu);
		if (!o->stop && retry_at > 0)
			wait_until(o, retry_at);
		if (o->stop)
			break;
		snprintf(names, sizeof(names), "%s", o->pending);
		o->pending[0] = '\0';
		o->running = 1;
		pthread_mutex_unlock(&o->mu);

		start = hr_watch_now();
		status = run_once(o, names, &timed_out);
		if (describe(status, timed_out, w->on_change_timeout_ms, what, sizeof(what), &result))
		{
			backoff_ms = backoff_ms ? backoff_ms * 2 : 1000;
			if (backoff_ms > HR_WATCH_MAX_BACKOFF_MS)
				backoff_ms = HR_WATCH_MAX_BACKOFF_MS;
			retry_at = hr_watch_now() + backoff_ms / 1000.0;
			hr_watch_log(w, "on-change for %s failed after %.0f ms: %s; retrying in %ld s",
						 names, (hr_watch_now() - start) * 1000, what, backoff_ms / 1000);
		}
		else
		{
			backoff_ms = 0;
			retry_at = 0;
			hr_watch_log(w, "on-change for %s done in %.0f ms", names,
						 (hr_watch_now() - start) * 1000);
		}
		hr_watch_metric(w, HR_M_ON_CHANGE, result);

		pthread_mutex_lock(&o->mu);
		o->running = 0;
		/* a failed run is run again, with what arrived meanwhile */
		if (retry_at > 0)
		{
			char		merged[1024];

			snprintf(merged, sizeof(merged), "%s", o->pending);
			snprintf(o->pending, sizeof(o->pending), "%s", names);
			add_names(o, merged);
		}
	}
	if (o->pending[0])
		hr_watch_log(w, "stopping: on-change for %s not run", o->pending);
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

int
hr_watch_onchange_start(hr_watch *w)
{
	hr_watch_onchange *o;
	pthread_condattr_t ca;

	if (w->on_change == NULL)
		return 0;
	o = calloc(1, sizeof(hr_watch_onchange));
	if (o == NULL)
		return -1;
	o->w = w;
	pthread_mutex_init(&o->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&o->thread, NULL, onchange_thread, o) != 0)
	{
		free(o);
		return -1;
	}
	w->onchange = o;
	return 0;
}

void
hr_watch_onchange_stop(hr_watch *w)
{
	hr_watch_onchange *o = w->onchange;

	if (o == NULL)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = 1;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->mu);
	free(o);
	w->onchange = NULL;
}

void
hr_watch_onchange_notify(hr_watch *w, const char *names)
{
	hr_watch_onchange *o = w->onchange;

	if (o == NULL)
		return;
	pthread_mutex_lock(&o->mu);
	add_names(o, names);
	if (o->running)
		hr_watch_log(w, "on-change for %s: a run is in progress; one more run follows it", names);
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->mu);
}
