/*-------------------------------------------------------------------------
 *
 * pg_worker.c
 *		The background refresher: every heroku.refresh_interval it runs
 *		heroku_fdw_refresh_all() in heroku.database, so registered foreign
 *		servers follow a rotation without anyone calling a function.
 *
 * Needs shared_preload_libraries.  Each round is one transaction and one
 * statement: hr_pg_resolve(..., fresh = true) asks the API for the first
 * server of an (app, config var) and the cache hands that answer, or its
 * failure, to the others, so a round asks once per (app, config var).
 *
 * The same worker runs the release feed (pg_feed.c) every
 * heroku.watch_interval; it is idle only when both intervals are 0.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_heroku.h"

/* GUCs */
static int	hr_refresh_interval_ms = 0;
static char *hr_database = NULL;

PGDLLEXPORT void hr_worker_main(Datum main_arg);

void
hr_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("heroku.refresh_interval",
							"How often the background refresher refreshes every registered foreign server.",
							"0 turns the refresher off.  Needs shared_preload_libraries.",
							&hr_refresh_interval_ms,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* a postmaster setting can only be defined while preloading */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomStringVariable("heroku.database",
							   "Database in which the background refresher runs heroku_fdw_refresh_all().",
							   NULL,
							   &hr_database,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	if (IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "heroku_resolver", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "hr_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "heroku_resolver refresher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "heroku_resolver refresher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * One round, in its own transaction.  Returns false when the extension is
 * not in this database yet at 1.2 or later (the library refuses the registry
 * of 1.1, which knows servers by name only; 1.2 brought the event trigger
 * function heroku_fdw_forget_dropped).
 * Throws on failure; the caller recovers.
 */
static bool
refresh_round(void)
{
	const char *schema;
	Oid			refresh_all;
	int			ret;
	uint64		i;
	bool		ready;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "heroku_fdw_refresh_all()");

	/* the extension's own function, by OID: no name a role could plant */
	refresh_all = hr_ext_function("heroku_fdw_refresh_all", 0, NULL);
	ready = OidIsValid(refresh_all) &&
		OidIsValid(hr_ext_function("heroku_fdw_forget_dropped", 0, NULL));
	if (ready)
	{
		(void) OidFunctionCall0(refresh_all);

		/* the servers this round changed; no option value, only names */
		schema = quote_identifier(get_namespace_name(get_func_namespace(refresh_all)));
		/* not read-only: a new snapshot, to see what the refresh wrote */
		ret = SPI_execute(psprintf("SELECT server::pg_catalog.text, app, config_var"
								   " FROM %s.heroku_fdw_registry"
								   " WHERE last_changed OPERATOR(pg_catalog.=) pg_catalog.now()"
								   " ORDER BY 1", schema),
						  false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
		for (i = 0; i < SPI_processed; i++)
			ereport(LOG,
					(errmsg("heroku_resolver refresher updated foreign server \"%s\" from config var \"%s\" of Heroku app \"%s\"",
							SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
							SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3),
							SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2))));
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return ready;
}

/* "idle" when something is scheduled, else "off". */
static const char *
idle_state(void)
{
	return hr_refresh_interval_ms > 0 || hr_watch_interval_ms > 0 ? "idle" : "off";
}

/* After a failed round: log the error and undo the round's transaction. */
static void
recover(MemoryContext round_cxt)
{
	MemoryContextSwitchTo(round_cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* One round of the release feed, surviving its failures. */
static void
feed_round(MemoryContext round_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(round_cxt);

	PG_TRY();
	{
		hr_feed_round();
	}
	PG_CATCH();
	{
		recover(round_cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(round_cxt);
}

/*
 * Refresh at once the foreign servers whose connections failed (pg_heal.c
 * wakes us); an error is logged and undone, the next failure tries again.
 */
static void
heal_round(MemoryContext round_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(round_cxt);

	PG_TRY();
	{
		(void) hr_heal_worker_round();
	}
	PG_CATCH();
	{
		recover(round_cxt);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(round_cxt);
}

void
hr_worker_main(Datum main_arg)
{
	MemoryContext round_cxt;
	TimestampTz next_run = 0;
	volatile TimestampTz next_feed = 0;
	volatile bool waiting_logged = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(hr_database, NULL, 0);
	/* the database's owner may set its search_path: the worker's SQL ignores it */
	hr_pin_search_path();
	hr_cache_share_fresh_failures = true;

	round_cxt = AllocSetContextCreate(TopMemoryContext, "heroku_resolver refresher",
									  ALLOCSET_DEFAULT_SIZES);
	hr_cache_set_worker_state(idle_state(), false);
	ereport(LOG,
			(errmsg("heroku_resolver refresher started in database \"%s\"", hr_database)));

	for (;;)
	{
		long		timeout = -1;
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_run = 0;
			next_feed = 0;
			hr_cache_set_worker_state(idle_state(), false);
		}

		/* the feed first: its first listing is made at start */
		if (hr_watch_interval_ms > 0 &&
			(next_feed == 0 || GetCurrentTimestamp() >= next_feed))
		{
			TimestampTz started = GetCurrentTimestamp();

			feed_round(round_cxt);
			next_feed = TimestampTzPlusMilliseconds(started, hr_watch_interval_ms);
		}
		if (hr_heal)
			heal_round(round_cxt);

		if (hr_refresh_interval_ms > 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (next_run == 0)
				next_run = TimestampTzPlusMilliseconds(now, hr_refresh_interval_ms);
			if (now >= next_run)
			{
				MemoryContext old = MemoryContextSwitchTo(round_cxt);

				hr_cache_set_worker_state("refreshing", false);
				PG_TRY();
				{
					if (refresh_round())
					{
						waiting_logged = false;
						hr_cache_set_worker_state("idle", true);
					}
					else
					{
						if (!waiting_logged)
							ereport(LOG,
									(errmsg("heroku_resolver refresher is waiting for extension heroku_resolver 1.2 in database \"%s\"",
											hr_database)));
						waiting_logged = true;
						hr_cache_set_worker_state("waiting for the extension", true);
					}
				}
				PG_CATCH();
				{
					/* log it, undo the round, try again next interval */
					recover(round_cxt);
					hr_cache_set_worker_state("idle after an error", true);
				}
				PG_END_TRY();
				MemoryContextSwitchTo(old);
				MemoryContextReset(round_cxt);
				next_run = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   hr_refresh_interval_ms);
			}
			timeout = Max(1, (long) ((next_run - GetCurrentTimestamp()) / 1000));
			events |= WL_TIMEOUT;
		}
		if (hr_watch_interval_ms > 0)
		{
			long		until_feed = Max(1, (long) ((next_feed - GetCurrentTimestamp()) / 1000));

			timeout = timeout < 0 ? until_feed : Min(timeout, until_feed);
			events |= WL_TIMEOUT;
		}

		(void) WaitLatch(MyLatch, events, timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
