/*-------------------------------------------------------------------------
 *
 * pg_fdw_options.c
 *		The libpq options of a resolved URL as postgres_fdw and dblink_fdw
 *		take them: which go to the server and which to a user mapping, which
 *		are secret, and the ADD/SET/DROP changes from one list to another.
 *
 * What libpq knows of each keyword (secret or debug) is read once per
 * backend from PQconndefaults().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "libpq-fe.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pg_fdw.h"

/* Where a libpq option of a resolved URL goes. */
typedef enum OptPlace
{
	OPT_SKIP,					/* neither FDW accepts it */
	OPT_SERVER,
	OPT_MAPPING
} OptPlace;

/* libpq's keywords with where each goes; built once per backend. */
typedef struct LibpqOption
{
	char	   *keyword;
	bool		debug;			/* dispchar 'D': neither FDW takes it */
	bool		secret;			/* dispchar '*' */
} LibpqOption;

static LibpqOption *libpq_options = NULL;
static int	libpq_noptions = 0;

/* Fill libpq_options from PQconndefaults(), once. */
static void
load_libpq_options(void)
{
	PQconninfoOption *defs;
	PQconninfoOption *o;
	LibpqOption *opts;
	int			n = 0;

	if (libpq_options)
		return;
	defs = PQconndefaults();
	if (defs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	for (o = defs; o->keyword; o++)
		n++;
	opts = MemoryContextAllocZero(TopMemoryContext, sizeof(LibpqOption) * Max(n, 1));
	n = 0;
	for (o = defs; o->keyword; o++)
	{
		opts[n].keyword = MemoryContextStrdup(TopMemoryContext, o->keyword);
		opts[n].debug = strchr(o->dispchar, 'D') != NULL;
		opts[n].secret = strchr(o->dispchar, '*') != NULL;
		n++;
	}
	PQconninfoFree(defs);
	libpq_options = opts;
	libpq_noptions = n;
}

/* libpq's description of keyword, or NULL if libpq does not know it. */
static LibpqOption *
libpq_option(const char *keyword)
{
	int			i;

	load_libpq_options();
	for (i = 0; i < libpq_noptions; i++)
		if (strcmp(libpq_options[i].keyword, keyword) == 0)
			return &libpq_options[i];
	return NULL;
}

/* True for options libpq treats as secret (the password): masked in texts. */
static bool
is_secret_option(const char *keyword)
{
	LibpqOption *o = libpq_option(keyword);

	return o != NULL && o->secret;
}

/*
 * The rules of postgres_fdw's and dblink's validators: "user" and the secret
 * options belong to the user mapping, every other libpq option but the
 * debug ones and client_encoding to the server; postgres_fdw also refuses
 * fallback_application_name (it sets its own).
 */
static OptPlace
option_place(FdwKind kind, const char *keyword)
{
	LibpqOption *o = libpq_option(keyword);

	if (o == NULL || o->debug || strcmp(keyword, "client_encoding") == 0)
		return OPT_SKIP;
	if (kind == FDW_POSTGRES && strcmp(keyword, "fallback_application_name") == 0)
		return OPT_SKIP;
	if (strcmp(keyword, "user") == 0 || o->secret)
		return OPT_MAPPING;
	return OPT_SERVER;
}

/* The resolved pairs as the server's and the user mapping's options. */
SplitOptions
hr_fdw_split_options(FdwKind kind, const HrResolved *r)
{
	SplitOptions s = {NIL, NIL};
	int			i;

	for (i = 0; i < r->nparams; i++)
	{
		DefElem    *d = makeDefElem(pstrdup(r->keywords[i]),
									(Node *) makeString(pstrdup(r->values[i])), -1);

		switch (option_place(kind, r->keywords[i]))
		{
			case OPT_SERVER:
				s.server = lappend(s.server, d);
				break;
			case OPT_MAPPING:
				s.mapping = lappend(s.mapping, d);
				break;
			case OPT_SKIP:
				break;
		}
	}
	return s;
}

/* The names of a DefElem list, for the registry. */
List *
hr_fdw_option_names(List *defs)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, defs)
		names = lappend(names, ((DefElem *) lfirst(lc))->defname);
	return names;
}

/* The option called name in defs, or NULL. */
static DefElem *
find_option(List *defs, const char *name)
{
	ListCell   *lc;

	foreach(lc, defs)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, name) == 0)
			return d;
	}
	return NULL;
}

/*
 * The ADD/SET/DROP actions that turn current into desired.  An option that
 * is neither desired nor one we set before (managed) is the user's: left
 * alone.  NIL when nothing differs.
 */
List *
hr_fdw_option_changes(List *current, List *desired, List *managed)
{
	List	   *changes = NIL;
	ListCell   *lc;

	foreach(lc, desired)
	{
		DefElem    *want = (DefElem *) lfirst(lc);
		DefElem    *have = find_option(current, want->defname);

		if (have == NULL)
			changes = lappend(changes,
							  makeDefElemExtended(NULL, want->defname, want->arg,
												  DEFELEM_ADD, -1));
		else if (strcmp(defGetString(have), defGetString(want)) != 0)
			changes = lappend(changes,
							  makeDefElemExtended(NULL, want->defname, want->arg,
												  DEFELEM_SET, -1));
	}
	foreach(lc, managed)
	{
		char	   *name = (char *) lfirst(lc);

		if (find_option(desired, name) == NULL && find_option(current, name) != NULL)
			changes = lappend(changes,
							  makeDefElemExtended(NULL, name, NULL, DEFELEM_DROP, -1));
	}
	return changes;
}

/* " OPTIONS (...)" for the query text, with secret values masked. */
void
hr_fdw_append_options_text(StringInfo buf, List *defs)
{
	ListCell   *lc;
	bool		first = true;

	if (defs == NIL)
		return;
	appendStringInfoString(buf, " OPTIONS (");
	foreach(lc, defs)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		if (d->defaction == DEFELEM_ADD)
			appendStringInfoString(buf, "ADD ");
		else if (d->defaction == DEFELEM_SET)
			appendStringInfoString(buf, "SET ");
		else if (d->defaction == DEFELEM_DROP)
			appendStringInfoString(buf, "DROP ");
		appendStringInfoString(buf, quote_identifier(d->defname));
		if (d->defaction == DEFELEM_DROP)
			continue;
		appendStringInfoChar(buf, ' ');
		if (is_secret_option(d->defname))
			appendStringInfoString(buf, "'********'");
		else
			appendStringInfoString(buf, quote_literal_cstr(defGetString(d)));
	}
	appendStringInfoChar(buf, ')');
}
