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

#include "core/spi.h"

/*
 * As WqPlan, with SPI_prepare_cursor's options (CURSOR_OPT_CUSTOM_PLAN: plan
 * again for every call's values).
 */
SPIPlanPtr
WqPlanCursor(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
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
