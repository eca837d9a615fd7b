/*
 * compat.h
 *		Every PG_VERSION_NUM difference workqueue cares about, in one place.
 *
 * workqueue targets PostgreSQL 15 and builds on 14 through 17.
 */
#ifndef WORKQUEUE_COMPAT_H
#define WORKQUEUE_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 140000
#error "workqueue requires PostgreSQL 14 or later"
#endif

/* MarkGUCPrefixReserved() replaced EmitWarningsOnPlaceholders() in 15. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* varatt.h split out of postgres.h in 16. */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* PGPROC's local transaction id moved into PGPROC.vxid in 17. */
#if PG_VERSION_NUM >= 170000
#define WqMyLocalTransactionId() (MyProc->vxid.lxid)
#else
#define WqMyLocalTransactionId() (MyProc->lxid)
#endif

/*
 * InitMaterializedSRF() (15) sets up a materialized set-returning function;
 * on 14, do the same by hand.
 */
#if PG_VERSION_NUM < 150000
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

static inline void
InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	MemoryContext old;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
	MemoryContextSwitchTo(old);
}
#endif

#endif							/* WORKQUEUE_COMPAT_H */
