/*
 * sync_db.h
 *		Declarations shared by the database side of sync: missing_ids
 *		(diff.c) and upsert_items (upsert.c).
 */
#ifndef WORKQUEUE_SYNC_DB_H
#define WORKQUEUE_SYNC_DB_H

#include "core/workqueue.h"

#include "executor/tuptable.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "utils/tuplestore.h"

/*
 * The error workqueue._queue() raises for a queue that does not exist; the
 * C functions raise the very same one.
 */
#define SYNC_QUEUE_NOT_FOUND(name) \
	ereport(ERROR, \
			(errcode(ERRCODE_UNDEFINED_OBJECT), \
			 errmsg("queue \"%s\" does not exist", (name)), \
			 errhint("Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;")))

/* diff.c: finding a queue's items by external id */
typedef struct SyncId
{
	const char *s;
	int			len;
} SyncId;

typedef struct SyncIdSet SyncIdSet;

/* Called for each id found, with its index in the set and the item's row. */
typedef void (*SyncFoundFn) (void *arg, uint32 index, TupleTableSlot *slot);

extern SyncIdSet *SyncIdSetFromArray(ArrayType *arr);
extern SyncIdSet *SyncIdSetFromList(const SyncId *ids, int n, int *dup1, int *dup2);
extern bool SyncIdSetMissing(const SyncIdSet *set, uint32 index);
extern void SyncFindItems(SyncIdSet *set, text *queue, Snapshot snap, SyncFoundFn found, void *arg);
extern void SyncOpenItemIndex(Relation *heap, Relation *index);

/*
 * Checks that a set-returning function may return a materialized set and
 * sets one up: returns the tuplestore (in the per-query context, spilling
 * past work_mem) and its descriptor.  PostgreSQL 15's InitMaterializedSRF
 * does the same; this also builds on 14.
 */
static inline Tuplestorestate *
SyncMaterializedResult(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	Tuplestorestate *store;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
	{
		/* a scalar result, such as SETOF text */
		tupdesc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(tupdesc, (AttrNumber) 1, "value",
						   get_fn_expr_rettype(fcinfo->flinfo), -1, 0);
	}
	tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
	store = tuplestore_begin_heap(rsinfo->allowedModes & SFRM_Materialize_Random, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcxt);

	*desc = tupdesc;
	return store;
}

#endif							/* WORKQUEUE_SYNC_DB_H */
