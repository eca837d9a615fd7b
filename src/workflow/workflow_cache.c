/*
 * workflow_cache.c
 *		Per-backend cache of compiled workflow versions.
 *
 * A version is compiled on its first use in the backend and kept (see
 * core/version_cache.c), keyed by the OID of workqueue.workflow_version,
 * name and version.  A version inserted by the current transaction is
 * compiled but not cached: it may yet roll back.  Callers must be
 * connected to SPI.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "core/spi.h"
#include "core/version_cache.h"
#include "workflow/workflow.h"

static VersionCache workflows = VERSION_CACHE("workqueue workflow cache", VersionEntry);
static SPIPlanPtr load_plan = NULL;

/*
 * Reads and compiles a workflow version in a context of its own, which is
 * re-parented under CacheMemoryContext if the version may be cached (*cxt,
 * *cacheable), else stays under the caller's (SPI) context.  cache: whether
 * the caller would cache it at all.
 */
static Workflow *
LoadAndCompile(const char *name, int version, bool cache, bool *cacheable, MemoryContext *cxt)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	bool		isnull;
	Datum		def;
	MemoryContext old;
	Workflow   *wf;

	if (SPI_execute_plan(WqPlan(&load_plan, "SELECT definition, xmin FROM workqueue.workflow_version "
								"WHERE workflow = $1 AND version = $2", 2, types),
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read workflow \"%s\" version %d", name, version);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("workflow \"%s\" version %d does not exist", name, version)));
	def = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*cacheable = VersionRowCommitted(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	/* compile in a context of its own; it dies with the transaction on error */
	*cxt = AllocSetContextCreate(CurrentMemoryContext, "workqueue workflow", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(*cxt);
	wf = WorkflowCompile(DatumGetJsonbPCopy(def), false);
	MemoryContextSwitchTo(old);
	if (cache && *cacheable)
		MemoryContextSetParent(*cxt, CacheMemoryContext);
	return wf;
}

/*
 * Returns the compiled form of a workflow version, compiling it on first
 * use in this backend.  One that is not cached lives until the caller's
 * SPI_finish.
 */
const Workflow *
WorkflowGet(const char *name, int version)
{
	VersionKey	key;
	VersionEntry *entry;
	bool		cache = VersionKeyInit(&key, "workflow_version", name, version);
	bool		cacheable;
	MemoryContext cxt;
	Workflow   *wf;

	if (cache && (entry = VersionCacheFind(&workflows, &key)) != NULL)
		return entry->compiled;
	wf = LoadAndCompile(name, version, cache, &cacheable, &cxt);
	if (!cache || !cacheable)
		return wf;
	return VersionCacheKeep(&workflows, &key, wf, cxt);
}
