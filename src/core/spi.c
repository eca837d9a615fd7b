/*
 * spi.c
 *		SPI plans prepared once per backend.
 *
 * A statement that runs on every call is prepared on its first use, kept
 * with SPI_keepplan (it lives under CacheMemoryContext, not in the caller's
 * SPI context) and remembered in a static of its caller, so later calls in
 * the backend skip parsing and planning.
 */
#include "postgres.h"

#include "executor/spi_priv.h"
#include "utils/guc.h"

#include "core/spi.h"
#include "core/workqueue.h"

/*
 * As WqPlan, with SPI_prepare_cursor's options (CURSOR_OPT_CUSTOM_PLAN: plan
 * again for every call's values).
 *
 * On a distributed install (WqDistributed) every plan is a custom plan:
 * Citus routes a statement by the value of its queue, which a generic
 * plan's parameter does not have ("could not create distributed plan").  A
 * plan kept before the install was distributed is prepared again.
 */
SPIPlanPtr
WqPlanCursor(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	if (unlikely(WqDistributed()))
	{
		cursor_options = (cursor_options & ~CURSOR_OPT_GENERIC_PLAN) | CURSOR_OPT_CUSTOM_PLAN;
		if (*slot != NULL && (*slot)->cursor_options != cursor_options)
		{
			SPI_freeplan(*slot);
			*slot = NULL;
		}
	}
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/*
 * Runs a plan of the write path (prepared with CURSOR_OPT_GENERIC_PLAN:
 * planned once, and again only when the tables change) with the planner
 * left index scans and nested loops: sequential and bitmap scans, hash and
 * merge joins (and, with no_sort, sorts) are off while it runs -- and is
 * planned, if it must be -- so that its plan does not depend on statistics
 * (a table filled a second ago, never analyzed, or grown since).  JIT is off
 * too: a disabled node's penalty cost would otherwise make the plan look
 * expensive enough to compile.  Returns SPI_execute_plan's result.
 */
int
WqExecuteIndexed(SPIPlanPtr plan, Datum *args, bool read_only, long tcount, bool no_sort)
{
	static const char *const off[] = {"enable_seqscan", "enable_bitmapscan", "enable_hashjoin",
	"enable_mergejoin", "jit", "enable_sort"};
	int			nest = NewGUCNestLevel();
	int			rc;

	for (int i = 0; i < (int) lengthof(off) - (no_sort ? 0 : 1); i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_plan(plan, args, NULL, read_only, tcount);
	AtEOXact_GUC(true, nest);
	return rc;
}
