/*
 * scale.c
 *		The layout of this install (workqueue.scale_state, src/scale/), for C.
 *
 * WqDistributed() says whether workqueue.distribute() has made this node
 * part of a Citus cluster.  It is read once per backend and kept: a
 * single-node install asks a static after the first call.  distribute()
 * changes the tables (the foreign keys of workqueue.item are dropped and
 * added, the table is distributed), on the coordinator and on every
 * worker, which invalidates item's relcache entry in every backend, and
 * writes scale_state, whose statement trigger (src/scale/mode.c) does the
 * same for scale_state: the callback below then forgets the mode, and the
 * next call reads it again.  This is the one cache of the mode: SQL asks
 * it through workqueue._citus().
 *
 * The write path chooses its statements by the mode: a Citus install runs
 * statements that Citus routes to the shard of one queue, and plans them
 * for each call's values (SPI plans are custom plans there: Citus cannot
 * route a generic plan's parameters), while a single-node install runs the
 * statements it always did.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"

#include "core/workqueue.h"

typedef enum WqMode
{
	WQ_MODE_UNKNOWN,
	WQ_MODE_SINGLE,
	WQ_MODE_CITUS
} WqMode;

static WqMode mode = WQ_MODE_UNKNOWN;
static Oid	item_relid = InvalidOid;	/* whose invalidations forget the mode */
static Oid	state_relid = InvalidOid;
static bool callback_registered = false;

static void ForgetQueues(void);

static void
ForgetMode(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == item_relid || relid == state_relid)
		mode = WQ_MODE_UNKNOWN;
	if (relid == state_relid && OidIsValid(relid))
		ForgetQueues();			/* (distribute(): start afresh) */
}

/* Forgets the mode in this backend (the trigger on scale_state, src/scale/mode.c). */
void
WqForgetMode(void)
{
	mode = WQ_MODE_UNKNOWN;
	ForgetQueues();
}

/*
 * Is this install distributed (workqueue.scale_state says 'citus')?  Reads
 * the row on the first call of a backend, and again after workqueue.item
 * changed; false when the table does not exist (an install older than
 * 0.6, in the middle of its update).
 */
bool
WqDistributed(void)
{
	static SPIPlanPtr mode_plan;
	Oid			nsp;
	Oid			relid;

	if (likely(mode != WQ_MODE_UNKNOWN))
		return mode == WQ_MODE_CITUS;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(ForgetMode, (Datum) 0);
		callback_registered = true;
	}
	nsp = get_namespace_oid("workqueue", true);
	item_relid = OidIsValid(nsp) ? get_relname_relid("item", nsp) : InvalidOid;
	relid = OidIsValid(nsp) ? get_relname_relid("scale_state", nsp) : InvalidOid;
	state_relid = relid;
	if (!OidIsValid(relid))
		return false;			/* not kept: asked again next time */

	SPI_connect();
	if (mode_plan == NULL)
	{
		/* not WqPlan, which asks for the mode */
		mode_plan = SPI_prepare("SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus'", 0, NULL);
		if (mode_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(mode_plan);
	}
	if (SPI_execute_plan(mode_plan, NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read workqueue.scale_state");
	mode = SPI_processed > 0 ? WQ_MODE_CITUS : WQ_MODE_SINGLE;
	SPI_finish();
	return mode == WQ_MODE_CITUS;
}

/*
 * Lets the caller's SPI statements read Citus tables (reference tables: a
 * copy on every node) while it runs inside a query on a shard, as a
 * function called by a statement that Citus sent to a worker
 * (workqueue._may_claim, workqueue._scope_visible).  Citus refuses such
 * nesting unless citus.allow_nested_distributed_execution is on; the reads
 * done here are of reference tables, whose copy on the shard's node is
 * local, so the nesting is safe.  Returns the GUC nest level to pass to
 * WqNestedEnd, or 0 on a single-node install (nothing set).
 */
int
WqNestedBegin(void)
{
	int			nest;

	if (!WqDistributed())
		return 0;
	nest = NewGUCNestLevel();
	(void) set_config_option("citus.allow_nested_distributed_execution", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* Ends what WqNestedBegin began. */
void
WqNestedEnd(int nest)
{
	if (nest > 0)
		AtEOXact_GUC(true, nest);
}

/*
 * The queues of items this backend has met, on a distributed install.  A
 * call that names items by id alone (transition, transition_many,
 * allowed_transitions; in SQL, through workqueue._known_queue and
 * _remember_queue, src/scale/mode.c: release, comment, history, ...) must
 * find each item's queue before Citus can route its statements to the
 * queue's shard, and finding it is a read of every shard (32 queries over
 * every worker; ~7 ms on the test cluster against ~0.5 ms for a routed
 * read).  An item never changes queue (there is no such update, and
 * rename_queue is refused), and ids are never given out twice, so what a
 * backend has learnt stays true for the item's life: a worker that claimed
 * items and moves them needs no lookup.  An item deleted since (drop_queue,
 * retention) is simply not found by the statement that locks it, by queue
 * and id: "does not exist", as without the cache.  At most QUEUE_CACHE_MAX
 * items are kept; then the cache starts afresh.  Forgotten when the mode
 * is (distribute()).
 */
#define QUEUE_CACHE_MAX 65536

typedef struct QueueOfItem
{
	int64		id;				/* key */
	char	   *queue;
} QueueOfItem;

static HTAB *queue_of = NULL;
static MemoryContext queue_cxt = NULL;

static void
ForgetQueues(void)
{
	if (queue_of != NULL)
	{
		hash_destroy(queue_of);
		queue_of = NULL;
	}
	if (queue_cxt != NULL)
		MemoryContextReset(queue_cxt);
}

/* Remembers that item id is in queue (a distributed install only). */
void
WqRememberQueue(int64 id, const char *queue)
{
	QueueOfItem *entry;
	bool		found;

	if (queue_of == NULL || hash_get_num_entries(queue_of) >= QUEUE_CACHE_MAX)
	{
		HASHCTL		ctl;

		if (queue_cxt == NULL)
			queue_cxt = AllocSetContextCreate(TopMemoryContext, "workqueue queues of items",
											  ALLOCSET_DEFAULT_SIZES);
		ForgetQueues();
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(QueueOfItem);
		ctl.hcxt = queue_cxt;
		queue_of = hash_create("workqueue queues of items", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(queue_of, &id, HASH_ENTER, &found);
	if (!found || strcmp(entry->queue, queue) != 0)
		entry->queue = MemoryContextStrdup(queue_cxt, queue);
}

/* The queue of item id if this backend has met it, else NULL. */
const char *
WqKnownQueue(int64 id)
{
	QueueOfItem *entry;

	if (queue_of == NULL)
		return NULL;
	entry = hash_search(queue_of, &id, HASH_FIND, NULL);
	return entry != NULL ? entry->queue : NULL;
}
