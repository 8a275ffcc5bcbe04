/*-------------------------------------------------------------------------
 *
 * pg_fdw_forget.c
 *		Forgetting a registered foreign server: heroku_fdw_unregister(), the
 *		sql_drop event trigger, and the registrations found dead (the server
 *		dropped, or owned by another role now) by heroku_fdw_refresh_all().
 *
 * Only the role that registered a server (or a member of it, or a
 * superuser) forgets a dead registration; the server itself is never
 * touched here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"

#include "pg_fdw.h"

PG_FUNCTION_INFO_V1(heroku_fdw_unregister);
PG_FUNCTION_INFO_V1(heroku_fdw_forget_dropped);

/* A role's name, or its OID if it was dropped. */
static char *
role_name(Oid roleid)
{
	char	   *name = GetUserNameFromId(roleid, true);

	return name ? name : psprintf("%u", roleid);
}

/* A dead row is forgotten by a member of the role that registered it, or a superuser. */
static bool
may_forget(RegEntry *e)
{
	return superuser() ||
		(OidIsValid(e->server_owner) && has_privs_of_role(GetUserId(), e->server_owner));
}

/*
 * A row that no longer stands for its server: nothing is written through
 * it.  Its registering owner (or a superuser) forgets it, with a WARNING
 * naming the server and the app; others leave it alone.
 */
void
hr_fdw_forget_dead(Registry *reg, RegEntry *e, RegState state, ForeignServer *srv)
{
	if (!may_forget(e))
	{
		ereport(DEBUG1,
				(errmsg_internal("skipping dead registration of foreign server \"%s\" of Heroku app \"%s\": not its owner",
								 e->server, e->app)));
		return;
	}
	if (!hr_registry_forget_dead(reg, e))
		return;
	if (state == REG_OWNER_CHANGED)
		ereport(WARNING,
				(errmsg("forgetting foreign server \"%s\" of Heroku app \"%s\": its owner changed from \"%s\" to \"%s\" after it was registered",
						srv->servername, e->app,
						role_name(e->server_owner), role_name(srv->owner)),
				 errdetail("heroku_resolver writes only into the servers it made, as their owner had them; it wrote nothing into this one.")));
	else
		ereport(WARNING,
				(errmsg("forgetting foreign server \"%s\" of Heroku app \"%s\": it was dropped",
						e->server, e->app),
				 errdetail("heroku_resolver writes only into the servers it made; a server of that name made since is not one of them."),
				 errhint("Make it again with heroku_fdw_create_server().")));
}

/*
 * heroku_fdw_unregister(server): forget it; the server stays as it is.
 * A registration whose server was dropped is forgotten by its registering
 * owner or a superuser.
 */
Datum
heroku_fdw_unregister(PG_FUNCTION_ARGS)
{
	char	   *server = hr_pg_name_arg(fcinfo, 0, "server");
	Registry   *reg = hr_registry_for(fcinfo, false);
	ForeignServer *srv = GetForeignServerByName(server, true);
	List	   *dead;
	ListCell   *lc;
	bool		forgot = false;

	/* the server's own registration, live or not: who may alter it forgets it */
	if (srv != NULL && hr_registry_has(reg, srv->serverid))
	{
		hr_fdw_check_server_owner(srv);
		hr_registry_delete(reg, srv->serverid);
		PG_RETURN_VOID();
	}

	/* registrations under that name of a server that is gone */
	dead = hr_registry_dead_named(reg, server);
	foreach(lc, dead)
	{
		RegEntry   *e = (RegEntry *) lfirst(lc);

		if (may_forget(e) && hr_registry_forget_dead(reg, e))
			forgot = true;
	}
	if (forgot)
		PG_RETURN_VOID();

	if (srv == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", server)));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("server \"%s\" is not registered with heroku_resolver", server)));
	PG_RETURN_VOID();
}

/*
 * heroku_fdw_forget_dropped(): the sql_drop event trigger that forgets a
 * registered server as it is dropped.  The checks at every use stand on
 * their own (an event trigger does not fire when disabled, or with
 * session_replication_role = replica); this keeps the registry tidy and
 * a dropped server's name free of any registration at once.
 */
Datum
heroku_fdw_forget_dropped(PG_FUNCTION_ARGS)
{
	Registry   *reg;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by the event trigger manager",
						"heroku_fdw_forget_dropped")));
	/* DROP EXTENSION heroku_resolver itself: nothing left to forget */
	reg = hr_registry_for(fcinfo, true);
	if (reg != NULL)
		hr_registry_forget_dropped(reg);
	PG_RETURN_VOID();
}
