/*
 * mode.c
 *		The layout of this install (workqueue.scale_state.mode), cached per
 *		backend.
 *
 * Statements that differ on a distributed install (Citus: every statement
 * on a per-item table names its queue, doc/scale-out.md) are chosen by
 * WqDistributed() (src/core/scale.c), which reads scale_state once per
 * backend: a single-node install then runs exactly the statements it ran
 * before, plus no query.  Here: that cache for SQL (workqueue._citus()),
 * and the statement trigger on scale_state (_scale_state_changed, every
 * write of the row: distribute() on each node), which sends a relcache
 * invalidation of scale_state at commit to every backend, so that each
 * reads the mode again.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "core/workqueue.h"

PG_FUNCTION_INFO_V1(workqueue_distributed_cached);

/* SQL: workqueue._citus() returns boolean */
Datum
workqueue_distributed_cached(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(WqDistributed());
}

PG_FUNCTION_INFO_V1(workqueue_scale_state_changed);

/* Trigger on workqueue.scale_state: every backend reads the mode again. */
Datum
workqueue_scale_state_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "workqueue._scale_state_changed() must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	WqForgetMode();
	return PointerGetDatum(NULL);
}

/*
 * The queues of items this backend has met (WqKnownQueue, src/core/scale.c),
 * for SQL: the calls of queue.sql that name an item by id alone
 * (_item_for_update, history, ...) route their statements to the item's
 * shard when the queue is known, and remember it after a read of every
 * shard.  On a single-node install nothing is kept: _known_queue() is NULL
 * and _remember_queue() does nothing.
 */
PG_FUNCTION_INFO_V1(workqueue_known_queue);

/* SQL: workqueue._known_queue(id bigint) returns text (strict) */
Datum
workqueue_known_queue(PG_FUNCTION_ARGS)
{
	const char *queue;

	if (!WqDistributed())
		PG_RETURN_NULL();
	queue = WqKnownQueue(PG_GETARG_INT64(0));
	if (queue == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(queue));
}

PG_FUNCTION_INFO_V1(workqueue_remember_queue);

/* SQL: workqueue._remember_queue(id bigint, queue text) returns void (strict) */
Datum
workqueue_remember_queue(PG_FUNCTION_ARGS)
{
	if (WqDistributed())
		WqRememberQueue(PG_GETARG_INT64(0), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}
