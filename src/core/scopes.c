/*
 * scopes.c
 *		The one scope check in C: may the caller see an item with this scope?
 *
 * An item with an empty scope is visible to everyone; one with scopes to
 * administrators and to a role granted (workqueue.grant_scope) one of them,
 * directly or through a role whose privileges it has (pg_has_role USAGE,
 * which honours NOINHERIT).  The rule in SQL is workqueue._visible() and the
 * row-level security policies (src/core/scopes.sql); the C paths that read
 * the heap or an index themselves, or filter inside a statement, use this:
 * claim and transition (through workqueue._scope_visible), missing_ids and
 * upsert_items (src/sync).  The grants are read once per check object, on
 * the first item that has a scope: a queue without scopes costs nothing.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"

#include "core/spi.h"
#include "core/workqueue.h"

/* Prepares a check for caller (admin: sees everything); nothing is read yet. */
void
WqScopeCheckInit(WqScopeCheck *check, Oid caller, bool admin, MemoryContext cxt)
{
	check->caller = caller;
	check->admin = admin;
	check->loaded = false;
	check->scopes = NULL;
	check->cxt = cxt;
}

/* Reads the scopes granted to the caller (connects to SPI itself). */
static void
LoadGrants(WqScopeCheck *check)
{
	static SPIPlanPtr grants_plan;
	Oid			types[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(check->caller)};
	bool		isnull;
	Datum		d;
	int			nest = WqNestedBegin(); /* on a shard: scope_grant is a reference table */

	fmgr_info_cxt(F_ARRAYOVERLAP, &check->overlap, check->cxt);
	SPI_connect();
	if (SPI_execute_plan(WqPlan(&grants_plan,
								"SELECT coalesce(array_agg(g.scope), '{}') FROM workqueue.scope_grant g"
								" JOIN pg_catalog.pg_roles r ON r.rolname = g.role"
								" WHERE pg_catalog.pg_has_role($1, r.oid, 'USAGE')", 1, types),
						 args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the scope grants of role %u", check->caller);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(check->cxt);

		check->scopes = DatumGetArrayTypePCopy(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	WqNestedEnd(nest);
	check->loaded = true;
}

/*
 * The scopes granted to caller, read on this node ('{}' if none), in the
 * current memory context: what a statement that runs on another node checks
 * item scopes against (Citus: a role's OID on a worker node is not the one
 * here, src/workflow/transition.c).
 */
ArrayType *
WqScopeGrants(Oid caller)
{
	WqScopeCheck check;

	WqScopeCheckInit(&check, caller, false, CurrentMemoryContext);
	LoadGrants(&check);
	return check.scopes != NULL ? check.scopes : construct_empty_array(TEXTOID);
}

/* May the check's caller see an item with this scope? */
bool
WqScopeVisible(WqScopeCheck *check, ArrayType *scope)
{
	if (check->admin || ArrayGetNItems(ARR_NDIM(scope), ARR_DIMS(scope)) == 0)
		return true;
	if (!check->loaded)
		LoadGrants(check);
	if (check->scopes == NULL)
		return false;
	return DatumGetBool(FunctionCall2Coll(&check->overlap, DEFAULT_COLLATION_OID,
										  PointerGetDatum(scope), PointerGetDatum(check->scopes)));
}

PG_FUNCTION_INFO_V1(workqueue_scope_visible);

/*
 * SQL: workqueue._scope_visible(scope text[], admin boolean, caller oid)
 * returns boolean
 *
 * The check as a function, so that the statements filtering by it carry no
 * subquery to set up on every run: the grants are read on the first scoped
 * item of a statement and kept for the rest of it (fn_extra).
 */
Datum
workqueue_scope_visible(PG_FUNCTION_ARGS)
{
	ArrayType  *scope;
	WqScopeCheck *check;
	Oid			caller;
	bool		admin;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	scope = PG_GETARG_ARRAYTYPE_P(0);
	admin = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	if (admin || ArrayGetNItems(ARR_NDIM(scope), ARR_DIMS(scope)) == 0)
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	caller = PG_GETARG_OID(2);

	check = (WqScopeCheck *) fcinfo->flinfo->fn_extra;
	if (check == NULL || check->caller != caller)
	{
		if (check == NULL)
			check = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(WqScopeCheck));
		WqScopeCheckInit(check, caller, false, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = check;
	}
	PG_RETURN_BOOL(WqScopeVisible(check, scope));
}
