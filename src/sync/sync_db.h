/*
 * sync_db.h
 *		Declarations shared by the database side of sync: missing_ids
 *		(diff.c) and upsert_items (upsert.c).
 */
#ifndef WORKQUEUE_SYNC_DB_H
#define WORKQUEUE_SYNC_DB_H

#include "core/workqueue.h"

#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

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

#endif							/* WORKQUEUE_SYNC_DB_H */
