/*-------------------------------------------------------------------------
 *
 * pg_heal.h
 *		Healing's shared state: the foreign servers queued for the background
 *		worker (pg_heal.c queues them, pg_heal_queue.c takes them) and those
 *		it healed lately.  Part of the cache's shared memory (pg_cache.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_HEAL_H
#define PG_HEAL_H

#include "datatype/timestamp.h"

#define HR_HEAL_SLOTS			32	/* failed servers queued for the worker */
#define HR_HEAL_RECENT			64	/* servers the worker healed lately */
#define HR_HEAL_QUIET_MS		60000	/* a server healed with no change waits */

/*
 * A foreign server whose connection failed, queued for the worker by a
 * role that may use it (USAGE and a user mapping); the worker's request is
 * charged to that role.  The slot is freed when the worker takes it.
 */
typedef struct HrHealServer
{
	Oid			dbid;			/* InvalidOid: slot free */
	Oid			serverid;
	Oid			roleid;			/* who failed to connect */
	TimestampTz failed_at;		/* the last failure reported */
	NameData	name;			/* the server's name, for log lines */
} HrHealServer;

/*
 * A server the worker healed lately: it is not queued again before
 * HR_HEAL_MIN_MS has passed if that healing changed it, HR_HEAL_QUIET_MS
 * if it did not (a failure that credentials did not cause).
 */
typedef struct HrHealRecent
{
	Oid			dbid;			/* InvalidOid: slot free */
	Oid			serverid;
	TimestampTz healed_at;
	bool		changed;
} HrHealRecent;

/* pg_heal_queue.c: queue failed servers for the worker (never throws) */
extern void hr_heal_queue(const HrHealServer *used, int n);

#endif							/* PG_HEAL_H */
