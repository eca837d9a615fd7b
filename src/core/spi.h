/*
 * spi.h
 *		SPI plans prepared once per backend.
 */
#ifndef WORKQUEUE_SPI_H
#define WORKQUEUE_SPI_H

#include "postgres.h"

#include "executor/spi.h"

extern SPIPlanPtr WqPlanCursor(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes,
							   int cursor_options);
extern int	WqExecuteIndexed(SPIPlanPtr plan, Datum *args, bool read_only, long tcount, bool no_sort);

/*
 * The plan of sql kept in *slot (a static of the caller), prepared and
 * kept on first use.  Must be connected to SPI.
 */
static inline SPIPlanPtr
WqPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return WqPlanCursor(slot, sql, nargs, argtypes, 0);
}

/* A generic plan, kept: for WqExecuteIndexed. */
static inline SPIPlanPtr
WqPlanGeneric(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return WqPlanCursor(slot, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

#endif							/* WORKQUEUE_SPI_H */
