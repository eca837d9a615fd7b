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
#include "utils/inval.h"
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

static void
ForgetMode(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == item_relid || relid == state_relid)
		mode = WQ_MODE_UNKNOWN;
}

/* Forgets the mode in this backend (the trigger on scale_state, src/scale/mode.c). */
void
WqForgetMode(void)
{
	mode = WQ_MODE_UNKNOWN;
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
