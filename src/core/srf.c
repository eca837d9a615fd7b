/*
 * srf.c
 *		Set-returning functions that return a materialized set.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"

#include "core/srf.h"

/*
 * Checks that a set-returning function may return a materialized set and
 * sets one up: returns the tuplestore (in the per-query context, spilling
 * past work_mem) and its descriptor.  PostgreSQL 15's InitMaterializedSRF
 * does much the same; this also serves a scalar result (SETOF text), as one
 * column named "value", and builds on 14.
 */
Tuplestorestate *
WqMaterializedResult(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	Tuplestorestate *store;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
	{
		/* a scalar result, such as SETOF text */
		tupdesc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(tupdesc, (AttrNumber) 1, "value",
						   get_fn_expr_rettype(fcinfo->flinfo), -1, 0);
	}
	tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
	store = tuplestore_begin_heap(rsinfo->allowedModes & SFRM_Materialize_Random, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcxt);

	*desc = tupdesc;
	return store;
}
