/*
 * transition.c
 *		Moving items through their workflow: transition, transition_many and
 *		allowed_transitions.
 *
 * A transition locks the item row (FOR UPDATE), checks it against the
 * item's pinned, compiled workflow version, the lease and the actor's role,
 * then moves the step and writes a "transition" event (which also sends the
 * NOTIFY).  Rules, in the order they are checked:
 *
 *	1. the item exists and is not closed upstream;
 *	2. while the item is claimed with a live lease, only the holder may move
 *	   it; a holder whose lease has expired is refused (fencing);
 *	3. the transition exists and leaves the current step;
 *	4. the actor is an active member of the current step's role or the
 *	   item's assignee (steps without a role are open to anyone);
 *	5. every field the transition "requires" is present in the payload.
 *
 * An actor that is a workqueue administrator (a superuser, the extension
 * owner or a member of workqueue_admin) skips 2 and 4 -- but only when the
 * caller is that role itself or an administrator: naming someone else as
 * actor never gains rights.  The functions are SECURITY DEFINER; the caller
 * is the session's outer role.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "workflow.h"
#include "workqueue.h"

typedef struct ItemState
{
	int64		id;
	char	   *queue;
	char	   *step;
	char	   *status;
	char	   *claimed_by;		/* NULL unless in_progress */
	bool		lease_live;
	char	   *lease_until;
	char	   *assignee;
	char	   *workflow;
	int			version;
} ItemState;

static SPIPlanPtr lock_plan;
static SPIPlanPtr peek_plan;
static SPIPlanPtr member_plan;
static SPIPlanPtr admin_plan;
static SPIPlanPtr move_plan;
static SPIPlanPtr event_plan;

#define ITEM_COLUMNS \
	"SELECT queue, step, status, claimed_by, lease_until > now(), lease_until, assignee, " \
	"workflow, workflow_version FROM workqueue.item WHERE id = $1"

static SPIPlanPtr
Prepare(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

static char *
Col(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/*
 * Checks the actor argument (not empty; someone other than the caller only
 * for administrators and workqueue_agent members), then tells whether the
 * actor acts with administrator rights (see _actor_is_admin).
 */
static bool
ActorIsAdmin(const char *actor)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(actor)};
	bool		isnull;
	bool		result;

	Prepare(&admin_plan,
			"SELECT workqueue._actor_is_admin($1) FROM workqueue._check_actor($1, 'actor')", 1, types);
	if (SPI_execute_plan(admin_plan, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not check workqueue administrator status");
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return !isnull && result;
}

/* Reads (and with lock, locks) an item; raises if it does not exist. */
static void
ReadItem(int64 id, bool lock, ItemState *it)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(id)};
	int			rc;

	if (lock)
		rc = SPI_execute_plan(Prepare(&lock_plan, ITEM_COLUMNS " FOR UPDATE", 1, types),
							  args, NULL, false, 1);
	else
		rc = SPI_execute_plan(Prepare(&peek_plan, ITEM_COLUMNS, 1, types), args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read item " INT64_FORMAT, id);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("item " INT64_FORMAT " does not exist", id),
				 errhint("Look items up with workqueue.list_items() or workqueue.get_items_by_external().")));
	it->id = id;
	it->queue = Col(1);
	it->step = Col(2);
	it->status = Col(3);
	it->claimed_by = Col(4);
	it->lease_live = it->claimed_by != NULL && strcmp(Col(5), "t") == 0;
	it->lease_until = Col(6);
	it->assignee = Col(7);
	it->workflow = Col(8);
	it->version = pg_strtoint32(Col(9));
	SPI_freetuptable(SPI_tuptable);
}

static bool
IsActiveMember(const char *role, const char *member)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(role), CStringGetTextDatum(member)};
	bool		found;

	Prepare(&member_plan, "SELECT 1 FROM workqueue.role_member WHERE role = $1 AND member = $2 AND active",
			2, types);
	if (SPI_execute_plan(member_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read role members");
	found = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * Lease rule (2): returns normally if the actor may move the item as far as
 * claims are concerned, else raises (or returns false when quiet).
 */
static bool
CheckLease(const ItemState *it, const char *actor, bool quiet)
{
	if (strcmp(it->status, "in_progress") != 0 || it->claimed_by == NULL)
		return true;
	if (strcmp(it->claimed_by, actor) != 0 && it->lease_live)
	{
		if (quiet)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("item " INT64_FORMAT " is claimed by \"%s\"", it->id, it->claimed_by),
				 errdetail("\"%s\" does not hold the lease; it runs until %s.", actor, it->lease_until),
				 errhint("Only the holder or a workqueue administrator can move a claimed item.")));
	}
	if (strcmp(it->claimed_by, actor) == 0 && !it->lease_live)
	{
		if (quiet)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lease of \"%s\" on item " INT64_FORMAT " has expired", actor, it->id),
				 errdetail("The lease ended at %s.", it->lease_until),
				 errhint("Claim the item again with workqueue.claim(); extend leases before they run out.")));
	}
	return true;
}

/* Role rule (4). */
static bool
CheckRole(const ItemState *it, const WfStep *step, const char *actor, bool quiet)
{
	if (step->role == NULL)
		return true;
	if (it->assignee != NULL && strcmp(it->assignee, actor) == 0)
		return true;
	if (IsActiveMember(step->role, actor))
		return true;
	if (quiet)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("\"%s\" may not act on step \"%s\" of item " INT64_FORMAT, actor, step->name, it->id),
			 errdetail("Step \"%s\" belongs to role \"%s\"; \"%s\" is neither an active member nor the assignee.",
					   step->name, step->role, actor),
			 errhint("Add the member with workqueue.add_member('%s', '%s'), or act as an administrator.",
					 step->role, actor)));
	return false;
}

static char *
TextArg(FunctionCallInfo fcinfo, int n, const char *what)
{
	char	   *s;

	if (PG_ARGISNULL(n) || (s = text_to_cstring(PG_GETARG_TEXT_PP(n)))[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be empty", what)));
	return s;
}

static Jsonb *
PayloadArg(FunctionCallInfo fcinfo, int n)
{
	Jsonb	   *payload;

	if (PG_ARGISNULL(n))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	payload = PG_GETARG_JSONB_P(n);
	if (!JsonContainerIsObject(&payload->root) || JsonContainerIsScalar(&payload->root))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transition payload must be a JSON object"),
				 errhint("Pass fields as an object, e.g. {\"resolution\": \"fixed\"}.")));
	return payload;
}

/*
 * Performs one transition.  With want_result, returns the updated item row
 * copied out of SPI; otherwise NULL.
 */
static HeapTupleHeader
TransitionOne(int64 id, const char *tname, Jsonb *payload, const char *actor,
			  bool admin, bool want_result)
{
	ItemState	it;
	const Workflow *wf;
	int			cur;
	int			ti;
	const WfTransition *t;
	const WfStep *to;
	const char *new_status;
	HeapTupleHeader result = NULL;

	ReadItem(id, true, &it);
	if (strcmp(it.status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("item " INT64_FORMAT " is closed", id),
				 errdetail("It was closed because its source no longer lists it as open."),
				 errhint("It reopens at its step when the source lists it again.")));

	wf = WorkflowGet(it.workflow, it.version);
	cur = WorkflowFindStep(wf, it.step);
	if (cur < 0)
		elog(ERROR, "item " INT64_FORMAT " is at step \"%s\", which workflow \"%s\" version %d lacks",
			 id, it.step, it.workflow, it.version);

	if (!admin)
		CheckLease(&it, actor, false);

	ti = WorkflowFindTransition(wf, tname);
	if (ti < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transition \"%s\" does not exist in workflow \"%s\" version %d",
						tname, it.workflow, it.version),
				 errdetail("Item " INT64_FORMAT " is at step \"%s\".", id, it.step),
				 errhint("Allowed transitions: %s.", WorkflowAllowedList(wf, cur))));
	t = &wf->transitions[ti];
	if (!WorkflowTransitionFrom(t, cur))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("transition \"%s\" is not allowed from step \"%s\"", tname, it.step),
				 errdetail("Item " INT64_FORMAT " is at step \"%s\" of workflow \"%s\" version %d.",
						   id, it.step, it.workflow, it.version),
				 errhint("Allowed transitions: %s.", WorkflowAllowedList(wf, cur))));

	if (!admin)
		CheckRole(&it, &wf->steps[cur], actor, false);

	for (int i = 0; i < t->nrequires; i++)
	{
		JsonbValue	v;
		JsonbValue *f = getKeyJsonValueFromContainer(&payload->root, t->requires[i],
													 strlen(t->requires[i]), &v);

		if (f == NULL || f->type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("transition \"%s\" requires field \"%s\"", tname, t->requires[i]),
					 errdetail("The payload has no non-null \"%s\".", t->requires[i]),
					 errhint("Pass it in the payload, e.g. '{\"%s\": \"...\"}'.", t->requires[i])));
	}

	to = &wf->steps[t->to];
	new_status = to->kind == WF_RESOLVED ? "resolved" : to->kind == WF_REJECTED ? "rejected" : "open";
	{
		Oid			types[6] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, BOOLOID, JSONBOID};
		Datum		args[6] = {
			CStringGetTextDatum(it.queue), Int64GetDatum(id), CStringGetTextDatum(to->name),
			CStringGetTextDatum(new_status), BoolGetDatum(to->kind != WF_WORK), JsonbPGetDatum(payload)
		};

		Prepare(&move_plan,
				"UPDATE workqueue.item SET step = $3, status = $4, "
				"resolved_at = CASE WHEN $5 THEN now() END, claimed_by = NULL, lease_until = NULL, "
				"assignee = NULL, notes = notes || $6, updated_at = now() "
				"WHERE queue = $1 AND id = $2 RETURNING *", 6, types);
		if (SPI_execute_plan(move_plan, args, NULL, false, 1) != SPI_OK_UPDATE_RETURNING ||
			SPI_processed != 1)
			elog(ERROR, "could not move item " INT64_FORMAT, id);
		if (want_result)
			result = SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
		SPI_freetuptable(SPI_tuptable);
	}
	{
		Oid			types[10] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
		TEXTOID, TEXTOID, TEXTOID};
		Datum		args[10] = {
			CStringGetTextDatum(it.queue), Int64GetDatum(id), CStringGetTextDatum(actor),
			CStringGetTextDatum(it.step), CStringGetTextDatum(to->name), CStringGetTextDatum(tname),
			JsonbPGetDatum(payload), CStringGetTextDatum(it.status), 0, 0
		};
		char		nulls[10] = "          ";

		if (it.claimed_by)
			args[8] = CStringGetTextDatum(it.claimed_by);
		else
			nulls[8] = 'n';
		if (it.assignee)
			args[9] = CStringGetTextDatum(it.assignee);
		else
			nulls[9] = 'n';
		Prepare(&event_plan,
				"SELECT workqueue._event($1, $2, $3, 'transition', $4, $5, jsonb_build_object("
				"'transition', $6, 'payload', $7, "
				"'old', jsonb_build_object('step', $4, 'status', $8, 'claimed_by', $9, 'assignee', $10), "
				"'new', jsonb_build_object('step', $5, 'status', status, 'resolved_at', resolved_at))) "
				"FROM workqueue.item WHERE queue = $1 AND id = $2", 10, types);
		if (SPI_execute_plan(event_plan, args, nulls, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not record transition of item " INT64_FORMAT, id);
		SPI_freetuptable(SPI_tuptable);
	}
	return result;
}

PG_FUNCTION_INFO_V1(workqueue_transition);

/*
 * SQL: workqueue.transition(item bigint, transition text, payload jsonb,
 * actor text) returns workqueue.item
 */
Datum
workqueue_transition(PG_FUNCTION_ARGS)
{
	int64		id;
	char	   *tname = TextArg(fcinfo, 1, "transition name");
	Jsonb	   *payload = PayloadArg(fcinfo, 2);
	char	   *actor = TextArg(fcinfo, 3, "actor");
	HeapTupleHeader result;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item id must not be null")));
	id = PG_GETARG_INT64(0);

	SPI_connect();
	result = TransitionOne(id, tname, payload, actor, ActorIsAdmin(actor), true);
	SPI_finish();
	PG_RETURN_HEAPTUPLEHEADER(result);
}

static int
CompareInt64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

PG_FUNCTION_INFO_V1(workqueue_transition_many);

/*
 * SQL: workqueue.transition_many(items bigint[], ...) returns int
 *
 * All or nothing: the first failure raises and rolls the whole call back.
 * Items are locked in id order so that concurrent batches cannot deadlock.
 */
Datum
workqueue_transition_many(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	char	   *tname = TextArg(fcinfo, 1, "transition name");
	Jsonb	   *payload = PayloadArg(fcinfo, 2);
	char	   *actor = TextArg(fcinfo, 3, "actor");
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int64	   *ids;
	int			nids = 0;
	bool		admin;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item array must not be null")));
	arr = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	ids = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("item array must not contain nulls"),
					 errdetail("Element %d is null.", i + 1)));
		ids[i] = DatumGetInt64(elems[i]);
	}
	qsort(ids, n, sizeof(int64), CompareInt64);
	for (int i = 0; i < n; i++)
		if (nids == 0 || ids[nids - 1] != ids[i])
			ids[nids++] = ids[i];

	SPI_connect();
	admin = ActorIsAdmin(actor);
	for (int i = 0; i < nids; i++)
		TransitionOne(ids[i], tname, payload, actor, admin, false);
	SPI_finish();
	PG_RETURN_INT32(nids);
}

PG_FUNCTION_INFO_V1(workqueue_allowed_transitions);

/*
 * SQL: workqueue._allowed_transitions(item bigint, actor text) returns text[]
 *
 * The transitions the actor could take now from the item's current step,
 * ignoring "requires" (the payload is not known yet).
 */
Datum
workqueue_allowed_transitions(PG_FUNCTION_ARGS)
{
	char	   *actor = TextArg(fcinfo, 1, "actor");
	ItemState	it;
	const Workflow *wf;
	int			cur;
	ArrayBuildState *astate = NULL;
	bool		admin;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item id must not be null")));

	SPI_connect();
	admin = ActorIsAdmin(actor);
	ReadItem(PG_GETARG_INT64(0), false, &it);
	wf = WorkflowGet(it.workflow, it.version);
	cur = WorkflowFindStep(wf, it.step);
	if (cur >= 0 && strcmp(it.status, "closed") != 0 &&
		(admin || (CheckLease(&it, actor, true) && CheckRole(&it, &wf->steps[cur], actor, true))))
	{
		for (int i = 0; i < wf->ntransitions; i++)
			if (WorkflowTransitionFrom(&wf->transitions[i], cur))
				astate = accumArrayResult(astate, CStringGetTextDatum(wf->transitions[i].name), false,
										  TEXTOID, fcinfo->flinfo->fn_mcxt);
	}
	SPI_finish();
	if (astate == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	PG_RETURN_DATUM(makeArrayResult(astate, CurrentMemoryContext));
}
