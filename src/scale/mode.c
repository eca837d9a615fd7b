/*
 * mode.c
 *		The layout of this install (workqueue.scale_state.mode), cached per
 *		backend.
 *
 * Statements that differ on a distributed install (Citus: every statement
 * on a per-item table names its queue, doc/scale-out.md) are chosen by
 * WorkqueueDistributed(), which reads scale_state once per backend: a
 * single-node install then runs exactly the statements it ran before, plus
 * no query.  The cache is dropped by a relcache invalidation of
 * scale_state, which its statement trigger (_scale_state_changed, every
 * write of the row: distribute() on each node) sends at commit to every
 * backend; so is it when the extension is dropped (the table goes).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "scale/mode.h"

static bool mode_valid = false;
static bool mode_citus = false;
static Oid	mode_relid = InvalidOid;
static bool callback_registered = false;

static void
ModeInvalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == mode_relid)
		mode_valid = false;
}

/*
 * Is this install distributed (workqueue.distribute() ran here, or on the
 * coordinator for a worker node)?  False without the extension's table.
 */
bool
WorkqueueDistributed(void)
{
	Oid			nsp;

	if (mode_valid)
		return mode_citus;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(ModeInvalidate, (Datum) 0);
		callback_registered = true;
	}
	nsp = get_namespace_oid("workqueue", true);
	mode_relid = OidIsValid(nsp) ? get_relname_relid("scale_state", nsp) : InvalidOid;
	mode_citus = false;
	if (OidIsValid(mode_relid))
	{
		SPI_connect();
		if (SPI_execute("SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus'", true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read workqueue.scale_state");
		mode_citus = SPI_processed > 0;
		SPI_finish();
	}
	/* (a write of the row that rolls back invalidates it here too) */
	mode_valid = OidIsValid(mode_relid);
	return mode_citus;
}

PG_FUNCTION_INFO_V1(workqueue_distributed_cached);

/* SQL: workqueue._citus() returns boolean */
Datum
workqueue_distributed_cached(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(WorkqueueDistributed());
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
	mode_valid = false;
	return PointerGetDatum(NULL);
}
