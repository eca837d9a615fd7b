/*
 * calendar_cache.c
 *		Loading calendar versions and caching them per backend.
 *
 * Three levels, so that a call such as business_add(t, x, 'london') costs a
 * few comparisons once warm:
 *
 * - fn_extra of the calling expression remembers the last calendar it used
 *   (name, requested version, compiled calendar);
 * - a cache of compiled versions (core/version_cache.c), keyed by (OID of
 *   workqueue.calendar, name, version).  Versions are immutable once
 *   committed, so entries never go stale; keying by the table's OID makes a
 *   re-created extension start afresh.  A version inserted by the current
 *   transaction is compiled but not cached: it may yet roll back;
 * - a hash from name to current version, valid for the snapshot it was read
 *   with (see SnapKey).
 *
 * A name-based lookup ("the current version") is only reused while it
 * cannot have changed: in the same transaction, subtransaction and command
 * as when read, or in a later snapshot without own changes (curcid 0) as
 * long as no transaction has ended in between.  The last rule uses the
 * snapshot's xact completion counter (PostgreSQL 14+): when no transaction
 * completed between two snapshots, they see the same committed rows.
 *
 * Compiled calendars live in their own memory contexts, under
 * CacheMemoryContext when cached, else under the caller's fn_mcxt.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "core/spi.h"
#include "core/version_cache.h"
#include "sla/calendar.h"
#include "core/workqueue.h"

/* what a name-based lookup depended on */
typedef struct SnapKey
{
	LocalTransactionId lxid;
	SubTransactionId subxid;
	CommandId	curcid;
	uint64		completion;		/* 0: unknown (e.g. a restored snapshot) */
	Snapshot	snap;
	TransactionId xmin;
	TransactionId xmax;
} SnapKey;

/* name -> current version; the key's version is 0 */
typedef struct CurrentEntry
{
	VersionKey	key;
	int32		current;
	SnapKey		snap;
} CurrentEntry;

/* fn_extra */
typedef struct CalFnCache
{
	int32		version;		/* as requested, 0 = current */
	int			name_len;
	int			name_cap;
	char	   *name;
	const Calendar *cal;
	bool		stable;			/* a committed version: valid for good */
	SnapKey		snap;
	MemoryContext owned;		/* the uncached calendar's context, or NULL */
} CalFnCache;

static VersionCache versions = VERSION_CACHE("workqueue calendar versions", VersionEntry);
static VersionCache currents = VERSION_CACHE("workqueue current calendar versions", CurrentEntry);
static SPIPlanPtr current_plan = NULL;
static SPIPlanPtr version_plan = NULL;
static SPIPlanPtr latest_plan = NULL;

static bool
GetSnapKey(SnapKey *k)
{
	Snapshot	s;

	if (!ActiveSnapshotSet())
		return false;
	s = GetActiveSnapshot();
	k->lxid = WqMyLocalTransactionId();
	k->subxid = GetCurrentSubTransactionId();
	k->curcid = s->curcid;
	k->completion = s->snapXactCompletionCount;
	k->snap = s;
	k->xmin = s->xmin;
	k->xmax = s->xmax;
	return true;
}

/* Would a lookup made under snapshot e see the same rows under c? */
static bool
SnapKeyMatches(const SnapKey *e, const SnapKey *c)
{
	if (e->lxid == c->lxid && e->subxid == c->subxid && e->curcid == c->curcid)
	{
		if (e->completion != 0 && e->completion == c->completion)
			return true;
		if (e->snap == c->snap && e->xmin == c->xmin && e->xmax == c->xmax)
			return true;
	}
	/* no own changes, and no transaction ended since */
	return e->completion != 0 && e->completion == c->completion &&
		e->curcid == 0 && c->curcid == 0;
}

/*
 * The statements reading calendar versions, with the argument types (name,
 * version).  Qualified names, operators and aggregates: the callers'
 * search_path does not matter (these functions are not SECURITY DEFINER).
 */
static Oid	plan_types[2] = {TEXTOID, INT4OID};

#define CURRENT_SQL "SELECT version, timezone, hours, holidays, xmin FROM workqueue.calendar " \
	"WHERE name OPERATOR(pg_catalog.=) $1 ORDER BY version DESC LIMIT 1"
#define VERSION_SQL "SELECT version, timezone, hours, holidays, xmin FROM workqueue.calendar " \
	"WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2"
#define LATEST_SQL "SELECT pg_catalog.max(version) FROM workqueue.calendar WHERE name OPERATOR(pg_catalog.=) $1"

/* Raises 42704 for a calendar (version) that does not exist. */
static void
NotFound(const char *name, int32 version, Datum *args)
{
	bool		isnull = true;
	Datum		latest = 0;

	if (version > 0 &&
		SPI_execute_plan(WqPlan(&latest_plan, LATEST_SQL, 1, plan_types), args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		latest = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (version <= 0 || isnull)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("calendar \"%s\" does not exist", name),
				 errhint("Create it with workqueue.create_calendar(), or use the built-in calendar \"24x7\".")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("calendar \"%s\" version %d does not exist", name, version),
			 errdetail("Calendar \"%s\" has versions 1 to %d.", name, DatumGetInt32(latest))));
}

/*
 * Reads a calendar version (version 0: the current one) and compiles it in
 * a context of its own, which is re-parented under CacheMemoryContext if the
 * row was committed (*committed) and under fallback otherwise.
 */
static Calendar *
LoadVersion(const char *name, int32 version, MemoryContext fallback, MemoryContext *cxt_out,
			bool *committed)
{
	Datum		args[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	bool		isnull;
	HeapTuple	row;
	TupleDesc	desc;
	MemoryContext cxt;
	MemoryContext old;
	Calendar   *cal;
	SPIPlanPtr	plan;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = version > 0 ? WqPlan(&version_plan, VERSION_SQL, 2, plan_types)
		: WqPlan(&current_plan, CURRENT_SQL, 1, plan_types);
	rc = SPI_execute_plan(plan, args, NULL, ActiveSnapshotSet(), 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read calendar \"%s\": %s", name, SPI_result_code_string(rc));
	if (SPI_processed == 0)
		NotFound(name, version, args);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*committed = VersionRowCommitted(row, desc, 5);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "workqueue calendar", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	{
		Datum		holidays = SPI_getbinval(row, desc, 4, &isnull);

		cal = CalendarCompile(name,
							  DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull)),
							  TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull)),
							  DatumGetJsonbP(SPI_getbinval(row, desc, 3, &isnull)),
							  isnull ? NULL : DatumGetArrayTypeP(holidays));
	}
	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, *committed ? CacheMemoryContext : fallback);
	*cxt_out = cxt;
	SPI_finish();
	return cal;
}

/*
 * The compiled calendar for (name, version), version 0 meaning the current
 * version under the active snapshot.  *stable says it is a committed
 * version (cached for good); otherwise it lives in *owned, a context under
 * fallback that the caller must delete when done with it.
 */
static const Calendar *
CalendarGet(const char *name, int32 version, const SnapKey *snap, MemoryContext fallback,
			bool *stable, MemoryContext *owned)
{
	VersionKey	key;
	CurrentEntry *current;
	VersionEntry *entry;
	bool		found;
	bool		committed;
	MemoryContext cxt;
	Calendar   *cal;
	bool		cacheable;

	*stable = false;
	*owned = NULL;
	cacheable = VersionKeyInit(&key, "calendar", name, 0);

	if (version == 0 && cacheable && snap != NULL)
	{
		current = VersionCacheFind(&currents, &key);
		if (current != NULL && SnapKeyMatches(&current->snap, snap))
			version = current->current;
	}
	if (version > 0 && cacheable)
	{
		key.version = version;
		entry = VersionCacheFind(&versions, &key);
		if (entry != NULL)
		{
			*stable = true;
			return entry->compiled;
		}
	}

	cal = LoadVersion(name, version, fallback, &cxt, &committed);
	if (!committed || !cacheable)
	{
		if (committed)
			MemoryContextSetParent(cxt, fallback);
		*owned = cxt;
		return cal;
	}
	if (version == 0 && snap != NULL)
	{
		key.version = 0;
		current = VersionCacheEnter(&currents, &key, &found);
		current->current = cal->version;
		current->snap = *snap;
	}
	key.version = cal->version;
	*stable = true;
	return VersionCacheKeep(&versions, &key, cal, cxt);
}

/*
 * The calendar a SQL call asks for, by name (version 0: the current
 * version) or by (name, version); remembered in fn_extra.
 */
const Calendar *
CalendarLookup(FunctionCallInfo fcinfo, text *name, int32 version)
{
	CalFnCache *c = fcinfo->flinfo->fn_extra;
	int			len = VARSIZE_ANY_EXHDR(name);
	SnapKey		snap;
	bool		have_snap = GetSnapKey(&snap);
	char	   *cname;
	bool		stable;
	MemoryContext owned;
	const Calendar *cal;

	if (c != NULL && c->version == version && c->name_len == len &&
		memcmp(c->name, VARDATA_ANY(name), len) == 0 &&
		(c->stable || (have_snap && SnapKeyMatches(&c->snap, &snap))))
		return c->cal;

	if (version < 0 || (version == 0 && PG_NARGS() > 3))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("calendar \"%s\" version %d does not exist", text_to_cstring(name), version),
				 errhint("Calendar versions are numbered from 1.")));
	cname = text_to_cstring(name);
	cal = CalendarGet(cname, version, have_snap ? &snap : NULL, fcinfo->flinfo->fn_mcxt,
					  &stable, &owned);

	if (c == NULL)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CalFnCache));
		fcinfo->flinfo->fn_extra = c;
	}
	if (c->owned != NULL)
		MemoryContextDelete(c->owned);
	if (c->name_cap < len + 1)
	{
		if (c->name != NULL)
			pfree(c->name);
		c->name_cap = Max(len + 1, 64);
		c->name = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, c->name_cap);
	}
	memcpy(c->name, VARDATA_ANY(name), len);
	c->name_len = len;
	c->version = version;
	c->cal = cal;
	c->stable = stable && version > 0;
	c->owned = owned;
	if (have_snap)
		c->snap = snap;
	else
		memset(&c->snap, 0, sizeof(c->snap));	/* never matches: completion 0, no snapshot */
	return cal;
}
