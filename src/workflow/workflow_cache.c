/*
 * workflow_cache.c
 *		Per-backend cache of compiled workflow versions.
 *
 * Versions are immutable once committed, so an entry never goes stale
 * while the table it was read from exists; entries are keyed by the OID of
 * workqueue.workflow_version as well, so a dropped and re-created extension
 * starts afresh.  A version inserted by the current transaction is compiled
 * but not cached: it may yet roll back.  Each entry lives in its own context under
 * CacheMemoryContext.  Callers must be connected to SPI.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "access/transam.h"
#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "core/spi.h"
#include "workflow/workflow.h"

#define WF_CACHE_NAME_LEN 256

typedef struct WfCacheKey
{
	Oid			relid;
	int			version;
	char		name[WF_CACHE_NAME_LEN];
} WfCacheKey;

typedef struct WfCacheEntry
{
	WfCacheKey	key;
	Workflow   *workflow;
} WfCacheEntry;

static HTAB *wf_cache = NULL;
static SPIPlanPtr load_plan = NULL;

static Workflow *
LoadAndCompile(const char *name, int version, MemoryContext parent, bool *cacheable)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	bool		isnull;
	Datum		def;
	MemoryContext cxt;
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

	/*
	 * A version defined by this very transaction may still roll back (and
	 * its number be reused by a different definition): cache only versions
	 * that were committed before.
	 */
	*cacheable = !TransactionIdIsCurrentTransactionId(
		DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)));
	if (!*cacheable)
		parent = NULL;

	/* compile in a context of its own; it dies with the transaction on error */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "workqueue workflow", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	wf = WorkflowCompile(DatumGetJsonbPCopy(def), false);
	MemoryContextSwitchTo(old);
	if (parent != NULL)
		MemoryContextSetParent(cxt, parent);
	return wf;
}

/*
 * Returns the compiled form of a workflow version, compiling it on first
 * use in this backend.
 */
const Workflow *
WorkflowGet(const char *name, int version)
{
	WfCacheKey	key;
	WfCacheEntry *entry;
	bool		found;
	Oid			nsp = get_namespace_oid("workqueue", false);

	memset(&key, 0, sizeof(key));
	key.relid = get_relname_relid("workflow_version", nsp);
	key.version = version;
	if (strlen(name) >= WF_CACHE_NAME_LEN)
		return LoadAndCompile(name, version, NULL, &found);	/* rare: not cached */
	strlcpy(key.name, name, WF_CACHE_NAME_LEN);

	if (wf_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(WfCacheKey);
		ctl.entrysize = sizeof(WfCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		wf_cache = hash_create("workqueue workflow cache", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(wf_cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->workflow;

	{
		bool		cacheable;
		Workflow   *wf = LoadAndCompile(name, version, CacheMemoryContext, &cacheable);

		if (!cacheable)
			return wf;			/* lives until the caller's SPI_finish */
		entry = hash_search(wf_cache, &key, HASH_ENTER, &found);
		entry->workflow = wf;
		return wf;
	}
}
