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
