/*-------------------------------------------------------------------------
 *
 * pg_fdw_lookup.c
 *		Finding a registered foreign server for a change: the live registry
 *		row of a server named (or of an OID), and the server, both locked,
 *		after checking that the caller may alter it.
 *
 * A row is live when its server still exists with the owner recorded at
 * registration (pg_fdw_registry.c, which reads and writes the table).  A
 * server is locked the way DROP SERVER and ALTER SERVER ... RENAME lock it,
 * so neither can happen while it is being refreshed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_foreign_server.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "pg_fdw.h"

/* Whether e still stands for its server; srv is that server, if it exists. */
RegState
hr_registry_state(RegEntry *e, ForeignServer **srv)
{
	*srv = OidIsValid(e->server_oid) ?
		GetForeignServerExtended(e->server_oid, FSV_MISSING_OK) : NULL;
	if (*srv == NULL)
		return REG_DROPPED;
	if ((*srv)->owner != e->server_owner)
		return REG_OWNER_CHANGED;
	return REG_LIVE;
}

/* The server with that OID, locked against DROP and RENAME; NULL if gone. */
static ForeignServer *
lock_server(Oid serverid)
{
	/* what DROP SERVER and ALTER SERVER ... RENAME take AccessExclusiveLock on */
	LockDatabaseObject(ForeignServerRelationId, serverid, 0, AccessShareLock);
	return GetForeignServerExtended(serverid, FSV_MISSING_OK);
}

/* 42704 for a registered server whose owner is not the one recorded. */
static void
report_owner_changed(const char *server)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("server \"%s\" is not registered with heroku_resolver", server),
			 errdetail("Its owner changed after it was registered."),
			 errhint("Forget it with heroku_fdw_unregister().")));
}

/*
 * The caller must own the server (superusers do), as ALTER SERVER requires,
 * and before it takes any lock on a registered server or its row: 42501.
 */
void
hr_fdw_check_server_owner(ForeignServer *srv)
{
	if (!hr_server_ownercheck(srv->serverid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FOREIGN_SERVER, srv->servername);
}

/*
 * The live row of serverid, and the server, both locked, after checking the
 * caller's rights; 42704 if it is not (or no longer) live.  listed is what
 * the caller saw without locks.
 */
static RegEntry *
lock_live(Registry *reg, Oid serverid, ForeignServer *listed)
{
	ForeignServer *srv;
	RegEntry   *e;

	hr_fdw_check_server_owner(listed);
	srv = lock_server(serverid);
	e = hr_registry_fetch(reg, serverid, true);
	if (srv == NULL || e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", listed->servername),
				 errdetail("It was dropped or unregistered meanwhile.")));
	if (e->server_owner != srv->owner)
		report_owner_changed(srv->servername);
	e->server = pstrdup(srv->servername);
	return e;
}

/*
 * The live row of the server of that name, and the server, both locked;
 * 42704 when the server does not exist or is not registered, 42501 when the
 * caller may not alter it.
 */
RegEntry *
hr_registry_lookup(Registry *reg, const char *server, ForeignServer **srv)
{
	ForeignServer *found = GetForeignServerByName(server, true);
	RegEntry   *e;
	List	   *dead;

	if (found != NULL)
	{
		e = hr_registry_fetch(reg, found->serverid, false);
		if (e != NULL && e->server_owner == found->owner)
		{
			e = lock_live(reg, found->serverid, found);
			*srv = GetForeignServer(found->serverid);
			if (strcmp((*srv)->servername, server) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("server \"%s\" does not exist", server),
						 errdetail("It was renamed meanwhile.")));
			return e;
		}
		if (e != NULL)
			report_owner_changed(server);
		if (hr_registry_dead_named(reg, server) != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("server \"%s\" is not registered with heroku_resolver", server),
					 errdetail("The server registered under this name was dropped; this one is another server.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" is not registered with heroku_resolver", server),
				 errhint("Create it with heroku_fdw_create_server().")));
	}

	dead = hr_registry_dead_named(reg, server);
	if (dead != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", server),
				 errdetail("It is registered for Heroku app \"%s\".",
						   ((RegEntry *) linitial(dead))->app),
				 errhint("Forget it with heroku_fdw_unregister().")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("server \"%s\" does not exist", server)));
	pg_unreachable();
}

/* The same, by the OID of a server seen live (heroku_fdw_refresh_all). */
RegEntry *
hr_registry_lookup_oid(Registry *reg, Oid serverid, ForeignServer **srv)
{
	ForeignServer *found = GetForeignServerExtended(serverid, FSV_MISSING_OK);
	RegEntry   *e;

	if (found == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server with OID %u does not exist", serverid)));
	e = lock_live(reg, serverid, found);
	*srv = GetForeignServer(serverid);
	return e;
}
