/*
 * srf.h
 *		Set-returning functions that return a materialized set.
 */
#ifndef WORKQUEUE_SRF_H
#define WORKQUEUE_SRF_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/tuplestore.h"

extern Tuplestorestate *WqMaterializedResult(FunctionCallInfo fcinfo, TupleDesc *desc);

#endif							/* WORKQUEUE_SRF_H */
