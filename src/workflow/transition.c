/*
 * transition.c
 *		Moving items through their workflow: transition, transition_many and
 *		allowed_transitions.
 *
 * A transition locks the item row (FOR UPDATE), checks it against the
 * item's pinned, compiled workflow version, the lease and the actor's role,
 * then moves the step and writes a "transition" event (the announcement of
 * the move: the writer sends no NOTIFY).  The usual single move is two
 * statements, the lock and the move, both prepared once per backend; SQL
 * functions run only for the SLA, assignment and on_enter steps of items
 * that have them.  Rules, in the order they are checked:
 *
 *	1. the item exists, is in the caller's scopes (else it does not exist
 *	   for the caller) and is not closed upstream;
 *	2. while the item is claimed with a live lease, only the holder may move
 *	   it; a holder whose lease has expired is refused (fencing), and so is
 *	   a former holder the lease ran out on, whatever happened since, until
 *	   it claims the item again (workqueue.lease_fence) -- except while the
 *	   item is resolved or rejected, where nobody holds a claim;
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
 *
 * A move that ends a claim whose lease has run out fences its holder (a row
 * in workqueue.lease_fence).  Items are locked in id order, the order of
 * every statement that waits to lock several items.
 */
#include "postgres.h"
#include "access/htup_details.h"
#include "access/xact.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "storage/itemptr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "core/arrays.h"
#include "core/spi.h"
#include "workflow/workflow.h"
#include "core/workqueue.h"

typedef struct ItemState
{
	int64		id;
	char	   *queue;
	char	   *step;
	char	   *status;
	char	   *claimed_by;		/* NULL unless in_progress */
	bool		lease_live;
	char	   *lease_until;
	TimestampTz lease_end;		/* lease_until as a timestamptz (if claimed) */
	char	   *fenced_until;	/* the actor's lease that ran out, if fenced */
	char	   *assignee;
	char	   *workflow;
	int			version;
	bool		has_sla;		/* the item's SLA clock must follow its step */
	bool		visible;		/* in the caller's scopes (else: "does not exist") */
	ItemPointerData ctid;		/* the row version read (locked, by LockItems) */
} ItemState;

/*
 * Most items one transition_many() call takes: a batch is locked, checked
 * and written in memory at once (about a kilobyte per item), and an input
 * of millions of ids would hold its locks and memory for minutes.
 */
#define TRANSITION_MANY_MAX 100000

/*
 * Moves a batch: $1-$4 the items' queues, ids, new steps and statuses, $5
 * the payload, $6-$9 their old steps, statuses, claimants and assignees,
 * $10 the actor, $11 the transition, $12 whether each keeps its assignee,
 * $13 the row versions LockItems locked (found by ctid: no index descent).
 * Writes the steps and an event per item (the event is the announcement:
 * no NOTIFY here); MOVE_SQL returns the number of events, MOVE_ONE_SQL the
 * moved item's row (transition() returns it, unless something changes the
 * item after the move).  MOVE_SQL carries the old values through the
 * UPDATE's RETURNING (o is u): the event needs no join of u and m, which
 * with index scans and nested loops only would compare every pair of a
 * batch; MOVE_ONE_SQL returns the row as it is and joins its one item (o is
 * m).
 */
#define MOVE_UPDATE(shard, now, returning) \
"WITH m AS (" \
"  SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $6::text[], $7::text[]," \
"                       $8::text[], $9::text[], $12::bool[], $13::tid[])" \
"    AS m(queue, id, step, status, old_step, old_status, old_claimed, old_assignee, keep, row_tid))," \
" u AS (" \
"  UPDATE workqueue.item i SET step = m.step, status = m.status," \
"         resolved_at = CASE WHEN m.status IN ('resolved', 'rejected') THEN " now " END," \
"         claimed_by = NULL, lease_until = NULL," \
"         assignee = CASE WHEN m.keep THEN i.assignee END, notes = i.notes || $5," \
"         updated_at = now()" \
"    FROM m WHERE " shard "i.queue = m.queue AND i.ctid = m.row_tid" \
"  RETURNING " returning ")"

/* the events of MOVE_UPDATE's u (o: where the old values are) */
#define MOVE_EVENTS(o, events_from) \
", e AS (" \
"  INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)" \
"  SELECT u.queue, u.id, $10, 'transition', " o ".old_step, u.step, jsonb_build_object(" \
"         'transition', $11, 'payload', $5," \
"         'old', jsonb_build_object('step', " o ".old_step, 'status', " o ".old_status," \
"                                   'claimed_by', " o ".old_claimed, 'assignee', " o ".old_assignee)," \
"         'new', jsonb_build_object('step', u.step, 'status', u.status, 'resolved_at', u.resolved_at))" \
"    FROM " events_from \
"  RETURNING id)"

#define MOVE_WITH(shard, now, returning, o, events_from) MOVE_UPDATE(shard, now, returning) MOVE_EVENTS(o, events_from)

static const char *const MOVE_SQL =
MOVE_WITH("", "now()", "i.queue, i.id, i.step, i.status, i.resolved_at, m.old_step, m.old_status, m.old_claimed, m.old_assignee",
		  "u", "u") " SELECT count(*) FROM e";
static const char *const MOVE_ONE_SQL =
MOVE_WITH("", "now()", "i.*", "m", "u JOIN m ON m.queue = u.queue AND m.id = u.id") " SELECT u.* FROM u";

/*
 * On a distributed install (Citus, doc/scale-out.md) a batch is the items
 * of one queue, and every statement on items names it ($14 here), so that
 * it runs in that queue's shard; these statements are planned for each
 * call's values (custom plans), which Citus routes.  Citus allows no
 * now() in a CASE: $15 is the transaction's start (what now() is).  There
 * is no MOVE_ONE_SQL (Citus cannot plan its join of u and m with a ctid
 * condition): transition() reads the moved item back.
 */
static const char *const MOVE_CITUS_SQL =
MOVE_UPDATE("i.queue = $14 AND ", "$15",
			"i.id, i.step, i.status, i.resolved_at, m.old_step, m.old_status, m.old_claimed, m.old_assignee")
" SELECT u.* FROM u";

/*
 * The events of the items MOVE_CITUS_SQL moved, a statement of its own: as
 * a CTE of the same statement, Citus planned it in pieces, sent the rows
 * moved through the coordinator to every worker as intermediate results
 * and committed on two nodes in two phases; alone, the UPDATE runs in the
 * queue's shard and the events are copied there over the same connection.
 * $1 queue, $2 actor, $3 transition, $4 payload, $5-$12 the columns of
 * MOVE_CITUS_SQL's rows.
 */
static const char *const MOVE_CITUS_EVENTS_SQL =
"INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
" SELECT $1, x.id, $2, 'transition', x.old_step, x.step, jsonb_build_object("
"        'transition', $3, 'payload', $4,"
"        'old', jsonb_build_object('step', x.old_step, 'status', x.old_status,"
"                                  'claimed_by', x.old_claimed, 'assignee', x.old_assignee),"
"        'new', jsonb_build_object('step', x.step, 'status', x.status, 'resolved_at', x.resolved_at))"
"   FROM unnest($5, $6, $7, $8, $9, $10, $11, $12)"
"     AS x(id, step, status, resolved_at, old_step, old_status, old_claimed, old_assignee)";

/*
 * Fences the holders of claims whose lease ran out that a batch ends (a
 * statement of its own, run only when there are some): $1-$4 the items'
 * queues, ids, holders and the ends of their leases.
 */
static const char *const FENCE_SQL =
"INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until)"
" SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[])"
" ON CONFLICT (queue, item_id, worker) DO UPDATE SET lease_until = excluded.lease_until";

static SPIPlanPtr lock_plan;
static SPIPlanPtr fence_plan;
static SPIPlanPtr peek_plan;
static SPIPlanPtr member_plan;
static SPIPlanPtr move_plan;
static SPIPlanPtr move_one_plan;
static SPIPlanPtr fence_insert_plan;
static SPIPlanPtr result_plan;
static SPIPlanPtr on_enter_plan;
static SPIPlanPtr after_enter_plan;
static SPIPlanPtr citus_after_enter_plan;
static int	CompareInt64(const void *a, const void *b);
static SPIPlanPtr citus_queues_plan;
static SPIPlanPtr citus_lock_plan;
static SPIPlanPtr citus_peek_plan;
static SPIPlanPtr citus_peek_known_plan;
static SPIPlanPtr citus_fence_plan;
static SPIPlanPtr citus_move_plan;
static SPIPlanPtr citus_move_events_plan;
static SPIPlanPtr citus_result_plan;
static SPIPlanPtr citus_on_enter_plan;

/* A plan made again for each call's values, kept: what Citus can route. */
static SPIPlanPtr
CustomPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return WqPlanCursor(slot, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
}

/*
 * The columns FillItem reads.  The twelfth is workqueue._visible(scope)
 * with the caller passed in ($2 the caller is an administrator, $3 the
 * caller's role OID; src/queue/claim.c), so that no SQL function runs per
 * item; the caller's scope grants are read only for an item that has a
 * scope.  The last is the row version, which the move updates by.
 */
#define ITEM_COLUMNS_WITH(visible) \
	"SELECT id, queue, step, status, claimed_by, lease_until > now(), lease_until, assignee, " \
	"workflow, workflow_version, sla_target IS NOT NULL, " \
	visible ", " \
	"ctid " \
	"FROM workqueue.item"
#define ITEM_COLUMNS ITEM_COLUMNS_WITH("workqueue._scope_visible(scope, $2, $3)")
/*
 * The same check on a distributed install, where the statement runs on a
 * worker node and the caller's role OID ($3) names another role there, or
 * none: the scopes granted to the caller, read on this node, are passed in
 * as parameter n (CitusGrants; none needed for an administrator).
 */
#define CITUS_VISIBLE(n) "(scope = '{}' OR $2 OR scope && $" #n ")"

/* $2 and $3 of ITEM_COLUMNS */
static void
VisibleArgs(Oid *types, Datum *args)
{
	types[1] = BOOLOID;
	types[2] = OIDOID;
	args[1] = BoolGetDatum(WorkqueueIsAdmin(NULL));
	args[2] = ObjectIdGetDatum(GetOuterUserId());
}

/* The scopes for CITUS_VISIBLE, from the arguments VisibleArgs filled */
static Datum
CitusGrants(Datum *args)
{
	return PointerGetDatum(DatumGetBool(args[1]) ? construct_empty_array(TEXTOID)
						   : WqScopeGrants(DatumGetObjectId(args[2])));
}

/*
 * Checks the actor argument (see WorkqueueCheckActor) and tells whether the
 * actor acts with administrator rights.
 */
static bool
ActorRights(const char *actor)
{
	WorkqueueCheckActor(actor, "actor");
	return WorkqueueActorIsAdmin(actor);
}

/* Fills an ItemState from row r of SPI_tuptable (columns of ITEM_COLUMNS). */
static void
FillItem(ItemState *it, int r)
{
	HeapTuple	tup = SPI_tuptable->vals[r];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	char	   *live;
	bool		isnull;

	it->id = pg_strtoint64(SPI_getvalue(tup, desc, 1));
	it->queue = SPI_getvalue(tup, desc, 2);
	it->step = SPI_getvalue(tup, desc, 3);
	it->status = SPI_getvalue(tup, desc, 4);
	it->claimed_by = SPI_getvalue(tup, desc, 5);
	live = SPI_getvalue(tup, desc, 6);
	it->lease_live = it->claimed_by != NULL && live != NULL && strcmp(live, "t") == 0;
	it->lease_until = SPI_getvalue(tup, desc, 7);
	it->lease_end = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &isnull));
	if (isnull)
		it->lease_end = 0;
	it->assignee = SPI_getvalue(tup, desc, 8);
	it->workflow = SPI_getvalue(tup, desc, 9);
	it->version = pg_strtoint32(SPI_getvalue(tup, desc, 10));
	live = SPI_getvalue(tup, desc, 11);
	it->has_sla = live != NULL && strcmp(live, "t") == 0;
	live = SPI_getvalue(tup, desc, 12);
	it->visible = live != NULL && strcmp(live, "t") == 0;
	it->fenced_until = NULL;	/* see ReadFences */
	ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 13, &isnull)), &it->ctid);
}

static void
NoSuchItem(int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("item " INT64_FORMAT " does not exist", id),
			 errhint("Look items up with workqueue.list_items() or workqueue.get_items_by_external().")));
}

/* Resolved or rejected: no claim is held or taken there. */
static bool
IsDone(const ItemState *it)
{
	return strcmp(it->status, "resolved") == 0 || strcmp(it->status, "rejected") == 0;
}

static Datum
TextArrayOf(char **values, int n, bool *nulls)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
		elems[i] = values[i] ? CStringGetTextDatum(values[i]) : (Datum) 0;
	if (n == 0)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Reads the actor's fences (workqueue.lease_fence) into fenced_until, for
 * the items rule 2 needs them for: those nobody holds a live lease on and
 * that are not resolved or rejected.  For locked items it runs after the
 * lock was taken, so that it sees the fence of a sweep the lock waited for.
 */
static void
ReadFences(ItemState *items, int n, const char *actor, bool read_only)
{
	static const char *const fences_sql =
		"SELECT x.ord, f.lease_until FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS x(q, i, ord) "
		"JOIN workqueue.lease_fence f ON f.queue = x.q AND f.item_id = x.i AND f.worker = $3";
	bool		citus = WqDistributed();
	char	  **queues = palloc(sizeof(char *) * n);
	Datum	   *ids = palloc(sizeof(Datum) * n);
	int		   *which = palloc(sizeof(int) * n);
	int			m = 0;
	Oid			types[4] = {TEXTARRAYOID, INT8ARRAYOID, TEXTOID, TEXTOID};
	Datum		args[4];

	for (int i = 0; i < n; i++)
		if (!items[i].lease_live && !IsDone(&items[i]))
		{
			queues[m] = items[i].queue;
			ids[m] = Int64GetDatum(items[i].id);
			which[m++] = i;
		}
	if (m == 0)
		return;
	args[0] = TextArrayOf(queues, m, NULL);
	args[1] = PointerGetDatum(construct_array(ids, m, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = CStringGetTextDatum(actor);
	/* distributed: the items are of one queue (LockItems, ReadItem) */
	args[3] = CStringGetTextDatum(queues[0]);
	if (SPI_execute_plan(citus ? CustomPlan(&citus_fence_plan, psprintf("%s WHERE f.queue = $4", fences_sql), 4, types)
						 : WqPlan(&fence_plan, fences_sql, 3, types),
						 args, NULL, read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the fences of items");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		int			ord = pg_strtoint32(SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));

		items[which[ord - 1]].fenced_until = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Reads an item without locking it; raises if it does not exist. */
static void
ReadItem(int64 id, ItemState *it)
{
	Oid			types[5] = {INT8OID, InvalidOid, InvalidOid, TEXTARRAYOID, TEXTOID};
	Datum		args[5] = {Int64GetDatum(id)};
	int			rc;
	const char *queue = NULL;

	VisibleArgs(types, args);
	if (WqDistributed())
	{
		/*
		 * distributed: read on a worker node (CITUS_VISIBLE), in the queue's
		 * shard if this backend knows the queue (WqKnownQueue), else from
		 * every shard
		 */
		args[3] = CitusGrants(args);
		queue = WqKnownQueue(id);
		if (queue != NULL)
		{
			args[4] = CStringGetTextDatum(queue);
			rc = SPI_execute_plan(CustomPlan(&citus_peek_known_plan, ITEM_COLUMNS_WITH(CITUS_VISIBLE(4))
											 " WHERE queue = $5 AND id = $1", 5, types), args, NULL, true, 1);
		}
		else
			rc = SPI_execute_plan(CustomPlan(&citus_peek_plan, ITEM_COLUMNS_WITH(CITUS_VISIBLE(4)) " WHERE id = $1",
											 4, types), args, NULL, true, 1);
	}
	else
		rc = SPI_execute_plan(WqPlan(&peek_plan, ITEM_COLUMNS " WHERE id = $1", 3, types),
							  args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read item " INT64_FORMAT, id);
	if (SPI_processed == 0)
		NoSuchItem(id);
	FillItem(it, 0);
	if (WqDistributed() && queue == NULL)
		WqRememberQueue(id, it->queue);
	if (!it->visible)
		NoSuchItem(id);			/* outside the caller's scopes */
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Locks the items of a sorted, duplicate-free id array in id order -- the
 * order of every statement that waits to lock several items (within one
 * queue that is (queue, id) order), so that concurrent batches, a batch and
 * a sync's close or reopen, and a batch and the fetch worker's recording
 * cannot deadlock -- and reads them; raises for the first id that does not
 * exist.  An item out of the caller's scopes does not exist, and is not
 * locked either: the scope is part of the condition the row lock is taken
 * under, so that waiting for a lock someone else holds cannot tell that a
 * hidden item is there.
 */
static ItemState *
LockItems(int64 *ids, int n, const char *queue)
{
	Oid			types[5] = {INT8ARRAYOID, InvalidOid, InvalidOid, TEXTOID, TEXTARRAYOID};
	Datum	   *elems = palloc(sizeof(Datum) * n);
	Datum		args[5];
	int			rc;
	ItemState  *items = palloc0(sizeof(ItemState) * n);

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	args[0] = PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	VisibleArgs(types, args);
	if (queue != NULL)
	{
		/* distributed: the items of one queue, in its shard */
		args[3] = CStringGetTextDatum(queue);
		args[4] = CitusGrants(args);
		rc = SPI_execute_plan(CustomPlan(&citus_lock_plan, ITEM_COLUMNS_WITH(CITUS_VISIBLE(5))
										 " WHERE queue = $4 AND id = ANY ($1)"
										 " AND " CITUS_VISIBLE(5) " ORDER BY id FOR UPDATE",
										 5, types), args, NULL, false, 0);
	}
	else
		rc = WqExecuteIndexed(WqPlanGeneric(&lock_plan, ITEM_COLUMNS " WHERE id = ANY ($1)"
											" AND workqueue._scope_visible(scope, $2, $3) ORDER BY id FOR UPDATE",
											3, types), args, false, 0, false);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not lock items");
	for (int i = 0, r = 0; i < n; i++)
	{
		if (r >= (int) SPI_processed || pg_strtoint64(SPI_getvalue(SPI_tuptable->vals[r],
																	SPI_tuptable->tupdesc, 1)) != ids[i])
			NoSuchItem(ids[i]);
		FillItem(&items[i], r++);
		if (!items[i].visible)
			NoSuchItem(ids[i]); /* outside the caller's scopes */
	}
	SPI_freetuptable(SPI_tuptable);
	return items;
}

static bool
IsActiveMember(const char *role, const char *member)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(role), CStringGetTextDatum(member)};
	bool		found;

	if (SPI_execute_plan(WqPlan(&member_plan, "SELECT 1 FROM workqueue.role_member "
								"WHERE role = $1 AND member = $2 AND active", 2, types),
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read role members");
	found = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * Lease rule (2): returns normally if the actor may move the item as far as
 * claims are concerned, else raises (or returns false when quiet).  Someone
 * else's live lease is named first; then the actor's own lease that has run
 * out, whether the item is still claimed in its name or its fence is all
 * that is left of the claim (ReadFences reads no fence of a resolved or
 * rejected item).
 */
static bool
CheckLease(const ItemState *it, const char *actor, bool quiet)
{
	bool		claimed = strcmp(it->status, "in_progress") == 0 && it->claimed_by != NULL;
	const char *ended = NULL;

	if (claimed && strcmp(it->claimed_by, actor) != 0 && it->lease_live)
	{
		if (quiet)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("item " INT64_FORMAT " is claimed by \"%s\"", it->id, it->claimed_by),
				 errdetail("\"%s\" does not hold the lease; it runs until %s.", actor, it->lease_until),
				 errhint("Only the holder or a workqueue administrator can move a claimed item.")));
	}
	if (claimed && strcmp(it->claimed_by, actor) == 0 && !it->lease_live)
		ended = it->lease_until;
	else if (it->fenced_until != NULL)
		ended = it->fenced_until;
	if (ended == NULL)
		return true;
	if (quiet)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("lease of \"%s\" on item " INT64_FORMAT " has expired", actor, it->id),
			 errdetail("The lease ended at %s.", ended),
			 errhint("Claim the item again with workqueue.claim(); extend leases before they run out.")));
	return false;
}

/*
 * Role rule (4) without raising: whether the actor may act on an item at
 * the step -- the step has no role, the actor is the item's assignee, or
 * an active member of the step's role.  (Administrators are the caller's
 * business.)  Transitions and claims (workqueue._may_claim) both ask here.
 */
static bool
MayActAt(const char *role, const char *assignee, const char *actor)
{
	if (role == NULL)
		return true;
	if (assignee != NULL && strcmp(assignee, actor) == 0)
		return true;
	return IsActiveMember(role, actor);
}

/* Role rule (4). */
static bool
CheckRole(const ItemState *it, const WfStep *step, const char *actor, bool quiet)
{
	if (MayActAt(step->role, it->assignee, actor))
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

/* Memo of role membership checks within one call (the actor is fixed). */
typedef struct RoleMemo
{
	const char *role;
	bool		member;
} RoleMemo;

/*
 * Checks one move (rules 1-5 of the file header); returns the index of the
 * target step.
 */
static int
CheckMove(const ItemState *it, const Workflow *wf, const char *tname, Jsonb *payload,
		  const char *actor, bool admin, List **memo)
{
	int			cur;
	int			ti;
	const WfTransition *t;

	if (strcmp(it->status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("item " INT64_FORMAT " is closed", it->id),
				 errdetail("It was closed because its source no longer lists it as open."),
				 errhint("It reopens at its step when the source lists it again.")));
	cur = WorkflowFindStep(wf, it->step);
	if (cur < 0)
		elog(ERROR, "item " INT64_FORMAT " is at step \"%s\", which workflow \"%s\" version %d lacks",
			 it->id, it->step, it->workflow, it->version);

	if (!admin)
		CheckLease(it, actor, false);

	ti = WorkflowFindTransition(wf, tname);
	if (ti < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transition \"%s\" does not exist in workflow \"%s\" version %d",
						tname, it->workflow, it->version),
				 errdetail("Item " INT64_FORMAT " is at step \"%s\".", it->id, it->step),
				 errhint("Allowed transitions: %s.", WorkflowAllowedList(wf, cur))));
	t = &wf->transitions[ti];
	if (!WorkflowTransitionFrom(t, cur))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("transition \"%s\" is not allowed from step \"%s\"", tname, it->step),
				 errdetail("Item " INT64_FORMAT " is at step \"%s\" of workflow \"%s\" version %d.",
						   it->id, it->step, it->workflow, it->version),
				 errhint("Allowed transitions: %s.", WorkflowAllowedList(wf, cur))));

	if (!admin && wf->steps[cur].role != NULL &&
		!(it->assignee != NULL && strcmp(it->assignee, actor) == 0))
	{
		ListCell   *lc;
		RoleMemo   *m = NULL;

		foreach(lc, *memo)
			if (strcmp(((RoleMemo *) lfirst(lc))->role, wf->steps[cur].role) == 0)
				m = lfirst(lc);
		if (m == NULL)
		{
			m = palloc(sizeof(RoleMemo));
			m->role = wf->steps[cur].role;
			m->member = IsActiveMember(m->role, actor);
			*memo = lappend(*memo, m);
		}
		if (!m->member)
			CheckRole(it, &wf->steps[cur], actor, false);
	}

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
	return t->to;
}

/*
 * Column col of the n rows of tt as an array of its type (nulls kept).
 */
static Datum
ColumnArray(SPITupleTable *tt, int n, int col)
{
	Oid			type = SPI_gettypeid(tt->tupdesc, col);
	Datum	   *values = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		len;
	bool		byval;
	char		align;

	for (int r = 0; r < n; r++)
		values[r] = SPI_getbinval(tt->vals[r], tt->tupdesc, col, &nulls[r]);
	get_typlenbyvalalign(type, &len, &byval, &align);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type, len, byval, align));
}

/*
 * Distributed: writes the "transition" events of the n items moved by
 * MOVE_CITUS_SQL (the rows of tt) in queue.
 */
static void
WriteMoveEvents(SPITupleTable *tt, int n, Datum queue, Datum actor, Datum tname, Datum payload)
{
	Oid			types[12] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		args[12];

	if (tt->tupdesc->natts != 8)
		elog(ERROR, "moved rows have %d columns, not 8", tt->tupdesc->natts);
	args[0] = queue;
	args[1] = actor;
	args[2] = tname;
	args[3] = payload;
	for (int c = 1; c <= 8; c++)
		args[3 + c] = ColumnArray(tt, n, c);
	if (SPI_execute_plan(CustomPlan(&citus_move_events_plan, MOVE_CITUS_EVENTS_SQL, 12, types), args, NULL, false, 0)
		!= SPI_OK_INSERT || SPI_processed != (uint64) n)
		elog(ERROR, "could not write the events of %d moved items", n);
}

/*
 * Moves a batch of items: locks them, checks every move, then writes all
 * steps and events with one statement.  All or nothing: the first refusal
 * raises.  ids must be sorted and free of duplicates.  With moved (only
 * for one item), returns the item's row as the move left it in SPI tuple
 * table *moved -- or NULL there if the SLA, assignment or on_enter steps
 * that followed may have changed it.  queue: NULL, or on a distributed
 * install the queue of every item of the batch (TransitionGroups).
 */
static void
TransitionBatch(int64 *ids, int n, const char *queue, const char *tname, Jsonb *payload, const char *actor,
				bool admin, SPITupleTable **moved)
{
	ItemState  *items = LockItems(ids, n, queue);
	List	   *memo = NIL;
	char	  **queues = palloc(sizeof(char *) * n);
	char	  **steps = palloc(sizeof(char *) * n);
	char	  **statuses = palloc(sizeof(char *) * n);
	char	  **old_steps = palloc(sizeof(char *) * n);
	char	  **old_statuses = palloc(sizeof(char *) * n);
	char	  **old_claimed = palloc(sizeof(char *) * n);
	char	  **old_assignees = palloc(sizeof(char *) * n);
	bool	   *claimed_nulls = palloc(sizeof(bool) * n);
	bool	   *assignee_nulls = palloc(sizeof(bool) * n);
	Datum	   *id_elems = palloc(sizeof(Datum) * n);
	Datum	   *tid_elems = palloc(sizeof(Datum) * n);
	const Workflow *wf = NULL;
	const char *wf_name = NULL;
	int			wf_version = 0;
	Datum	   *fetch_items = palloc(sizeof(Datum) * n);
	Datum	   *fetch_sources = palloc(sizeof(Datum) * n);
	int			nfetch = 0;
	bool	   *keep_assignee = palloc(sizeof(bool) * n);
	Datum	   *enter_items = palloc(sizeof(Datum) * n);
	int			nenter = 0;
	char	  **fence_queues = palloc(sizeof(char *) * n);
	Datum	   *fence_ids = palloc(sizeof(Datum) * n);
	char	  **fence_holders = palloc(sizeof(char *) * n);
	Datum	   *fence_ends = palloc(sizeof(Datum) * n);
	int			nfence = 0;

	if (!admin)
		ReadFences(items, n, actor, false);
	for (int i = 0; i < n; i++)
	{
		ItemState  *it = &items[i];
		const WfStep *to;

		if (wf == NULL || wf_version != it->version || strcmp(wf_name, it->workflow) != 0)
		{
			wf = WorkflowGet(it->workflow, it->version);
			wf_name = it->workflow;
			wf_version = it->version;
		}
		to = &wf->steps[CheckMove(it, wf, tname, payload, actor, admin, &memo)];
		queues[i] = it->queue;
		steps[i] = to->name;
		statuses[i] = to->kind == WF_RESOLVED ? "resolved" : to->kind == WF_REJECTED ? "rejected" : "open";
		old_steps[i] = it->step;
		old_statuses[i] = it->status;
		old_claimed[i] = it->claimed_by;
		old_assignees[i] = it->assignee;
		claimed_nulls[i] = it->claimed_by == NULL;
		assignee_nulls[i] = it->assignee == NULL;
		id_elems[i] = Int64GetDatum(it->id);
		tid_elems[i] = PointerGetDatum(&it->ctid);
		/* a claim whose lease ran out ends here: its holder is fenced */
		if (it->claimed_by != NULL && !it->lease_live)
		{
			fence_queues[nfence] = it->queue;
			fence_ids[nfence] = Int64GetDatum(it->id);
			fence_holders[nfence] = it->claimed_by;
			fence_ends[nfence++] = TimestampTzGetDatum(it->lease_end);
		}
		/* a step with a role keeps an assignee who is a member of it (see _assign_items) */
		keep_assignee[i] = to->kind == WF_WORK && to->role != NULL;
		if (it->has_sla || keep_assignee[i])
			enter_items[nenter++] = Int64GetDatum(it->id);
		if (to->on_enter_fetch)
		{
			fetch_items[nfetch] = Int64GetDatum(it->id);
			fetch_sources[nfetch++] = CStringGetTextDatum(to->on_enter_fetch);
		}
	}

	{
		Oid			types[15] = {TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, JSONBOID,
			TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TEXTOID, BOOLARRAYOID, TIDARRAYOID,
		TEXTOID, TIMESTAMPTZOID};
		Datum		args[15];
		bool		isnull;
		Datum	   *keep = palloc(sizeof(Datum) * n);

		for (int i = 0; i < n; i++)
			keep[i] = BoolGetDatum(keep_assignee[i]);

		args[0] = TextArrayOf(queues, n, NULL);
		args[1] = PointerGetDatum(construct_array(id_elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = TextArrayOf(steps, n, NULL);
		args[3] = TextArrayOf(statuses, n, NULL);
		args[4] = JsonbPGetDatum(payload);
		args[5] = TextArrayOf(old_steps, n, NULL);
		args[6] = TextArrayOf(old_statuses, n, NULL);
		args[7] = TextArrayOf(old_claimed, n, claimed_nulls);
		args[8] = TextArrayOf(old_assignees, n, assignee_nulls);
		args[9] = CStringGetTextDatum(actor);
		args[10] = CStringGetTextDatum(tname);
		args[11] = PointerGetDatum(construct_array(keep, n, BOOLOID, 1, true, TYPALIGN_CHAR));
		args[12] = PointerGetDatum(construct_array(tid_elems, n, TIDOID, sizeof(ItemPointerData), false,
												   TYPALIGN_SHORT));
		if (queue != NULL)
		{
			args[13] = CStringGetTextDatum(queue);
			args[14] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		}
		if (moved != NULL && queue == NULL)
		{
			Assert(n == 1);
			if (WqExecuteIndexed(WqPlanGeneric(&move_one_plan, MOVE_ONE_SQL, 13, types), args, false, 0, false) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "could not move item " INT64_FORMAT, ids[0]);
			/* kept (SPI frees it at SPI_finish) unless the item changes below */
			*moved = nenter == 0 && nfetch == 0 ? SPI_tuptable : NULL;
		}
		else if (queue != NULL)
		{
			if (SPI_execute_plan(CustomPlan(&citus_move_plan, MOVE_CITUS_SQL, 15, types), args, NULL, false, 0)
				!= SPI_OK_SELECT || SPI_processed != (uint64) n)
				elog(ERROR, "could not move %d items", n);
			WriteMoveEvents(SPI_tuptable, n, args[13], args[9], args[10], args[4]);
			if (moved != NULL)
				*moved = NULL;	/* distributed: transition() reads it back */
		}
		else
		{
			if (WqExecuteIndexed(WqPlanGeneric(&move_plan, MOVE_SQL, 13, types), args, false, 0, false) != SPI_OK_SELECT ||
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) != n)
				elog(ERROR, "could not move %d items", n);
			SPI_freetuptable(SPI_tuptable);
		}
	}

	if (nfence > 0)
	{
		Oid			types[4] = {TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
		Datum		args[4];

		args[0] = TextArrayOf(fence_queues, nfence, NULL);
		args[1] = PointerGetDatum(construct_array(fence_ids, nfence, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = TextArrayOf(fence_holders, nfence, NULL);
		args[3] = PointerGetDatum(construct_array(fence_ends, nfence, TIMESTAMPTZOID, sizeof(TimestampTz),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_plan(WqPlan(&fence_insert_plan, FENCE_SQL, 4, types), args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not fence the holders of %d expired claims", nfence);
	}

	/* the SLA clocks and assignments of the items that need them */
	if (nenter > 0)
	{
		Oid			types[3] = {INT8ARRAYOID, TEXTOID, TEXTOID};
		Datum		args[3];

		args[0] = PointerGetDatum(construct_array(enter_items, nenter, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = CStringGetTextDatum(actor);
		if (queue != NULL)
		{
			/* distributed: the items of one queue, read from its shard */
			args[2] = CStringGetTextDatum(queue);
			if (SPI_execute_plan(WqPlan(&citus_after_enter_plan, "SELECT workqueue._after_enter_citus($1, $2, $3)", 3, types),
								 args, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not update the SLA and assignment of moved items");
		}
		else if (SPI_execute_plan(WqPlan(&after_enter_plan, "SELECT workqueue._after_enter($1, $2, false)", 2, types),
								  args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not update the SLA and assignment of moved items");
		SPI_freetuptable(SPI_tuptable);
	}

	/*
	 * on_enter hooks: queue an enrichment fetch per item, in this transaction
	 * (items without an external id have nothing to fetch).  The source is
	 * the one an administrator named in the workflow, so it may belong to
	 * another queue (a workflow serves several queues): any_queue => true,
	 * for the caller of the transition too (doc/security.md, Credentials).
	 */
	if (nfetch > 0)
	{
		Oid			types[3] = {INT8ARRAYOID, TEXTARRAYOID, TEXTOID};
		Datum		args[3];
		int			rc;

		args[0] = PointerGetDatum(construct_array(fetch_items, nfetch, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = PointerGetDatum(construct_array(fetch_sources, nfetch, TEXTOID, -1, false, TYPALIGN_INT));
		if (queue != NULL)
		{
			/*
			 * distributed: the items with an external id are read from the
			 * queue's shard first, and the fetches queued here (a function
			 * of the shard's query would run on the worker node)
			 */
			args[2] = CStringGetTextDatum(queue);
			rc = SPI_execute_plan(CustomPlan(&citus_on_enter_plan,
											 "SELECT count(workqueue._enqueue_fetch(x.i, x.s, true)) FROM unnest($1::int8[], $2::text[]) AS x(i, s) "
											 "WHERE x.i = ANY (ARRAY(SELECT it.id FROM workqueue.item it "
											 "WHERE it.queue = $3 AND it.id = ANY ($1) AND it.external_id IS NOT NULL))",
											 3, types), args, NULL, false, 0);
		}
		else
			rc = SPI_execute_plan(WqPlan(&on_enter_plan,
									"SELECT count(workqueue._enqueue_fetch(x.i, x.s, true)) FROM unnest($1::int8[], $2::text[]) AS x(i, s) "
									"JOIN workqueue.item it ON it.id = x.i WHERE it.external_id IS NOT NULL",
									2, types), args, NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not queue the fetches of on_enter");
		SPI_freetuptable(SPI_tuptable);
	}
}

/* an item and its queue, for TransitionGroups */
typedef struct QueuedItem
{
	char	   *queue;
	int64		id;
} QueuedItem;

static int
CompareQueuedItems(const void *a, const void *b)
{
	const QueuedItem *x = a;
	const QueuedItem *y = b;
	int			c = strcmp(x->queue, y->queue);

	if (c != 0)
		return c;
	return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

/*
 * On a distributed install: moves the items of a sorted, duplicate-free id
 * array queue by queue (a batch per queue, TransitionBatch), in (queue, id)
 * order.  The queues of items this backend has met are known
 * (WqKnownQueue, src/core/scale.c); the others are read (a read of every
 * shard), and raises for the first of those that does not exist (one that
 * was known and is gone since is not found by the batch's lock: the same
 * error).  Returns the queue of the first item (for transition(), which
 * has one).
 */
static char *
TransitionGroups(int64 *ids, int n, const char *tname, Jsonb *payload, const char *actor, bool admin,
				 SPITupleTable **moved)
{
	QueuedItem *items = palloc(sizeof(QueuedItem) * n);
	int64	   *unknown = palloc(sizeof(int64) * n);
	int			m = 0;
	int			nunknown = 0;

	/* the queues this backend knows (WqKnownQueue: an item never moves) */
	for (int i = 0; i < n; i++)
	{
		const char *q = WqKnownQueue(ids[i]);

		if (q != NULL)
		{
			items[m].queue = pstrdup(q);	/* (the cache may be reset below) */
			items[m++].id = ids[i];
		}
		else
			unknown[nunknown++] = ids[i];
	}

	/* the others', read from every shard */
	if (nunknown > 0)
	{
		Oid			types[1] = {INT8ARRAYOID};
		Datum	   *elems = palloc(sizeof(Datum) * nunknown);
		Datum		args[1];
		int			found;
		int64	   *found_ids;

		for (int i = 0; i < nunknown; i++)
			elems[i] = Int64GetDatum(unknown[i]);
		args[0] = PointerGetDatum(construct_array(elems, nunknown, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_plan(CustomPlan(&citus_queues_plan,
										"SELECT queue, id FROM workqueue.item WHERE id = ANY ($1) ORDER BY id",
										1, types), args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the queues of items");
		found = (int) SPI_processed;
		found_ids = palloc(sizeof(int64) * Max(found, 1));
		for (int r = 0; r < found; r++)
		{
			items[m].queue = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
			items[m].id = found_ids[r] = pg_strtoint64(SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2));
			WqRememberQueue(items[m].id, items[m].queue);
			m++;
		}
		SPI_freetuptable(SPI_tuptable);
		/* (unknown is sorted, as ids is) */
		for (int i = 0; i < nunknown; i++)
			if (i >= found || found_ids[i] != unknown[i])
				NoSuchItem(unknown[i]);
	}
	qsort(items, m, sizeof(QueuedItem), CompareQueuedItems);
	for (int start = 0, end; start < m; start = end)
	{
		int64	   *batch = palloc(sizeof(int64) * m);

		for (end = start; end < m && strcmp(items[end].queue, items[start].queue) == 0; end++)
			batch[end - start] = items[end].id;
		TransitionBatch(batch, end - start, items[start].queue, tname, payload, actor, admin, moved);
	}
	return items[0].queue;
}

/*
 * Refuses with a clear error while the extension in this database is older
 * than the loaded library: between the restart that loads a new library
 * and ALTER EXTENSION workqueue UPDATE (doc/operations.md, "Upgrading"),
 * the SQL of an old version still calls these C functions, whose
 * statements need the new version's tables and functions (lease_fence,
 * _scope_visible).  Two syscache lookups per call; the version is read only
 * when the table is missing.
 */
static void
RequireSchema(const char *fname)
{
	Oid			nsp = get_namespace_oid("workqueue", true);
	char	   *installed = NULL;

	if (OidIsValid(nsp) && OidIsValid(get_relname_relid("lease_fence", nsp)))
		return;
	SPI_connect();
	if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'workqueue'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		installed = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (installed != NULL && strcmp(installed, WORKQUEUE_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the workqueue extension in database \"%s\" is at version %s, the loaded library is %s",
						get_database_name(MyDatabaseId), installed, WORKQUEUE_VERSION),
				 errdetail("%s() of library %s needs the tables and functions of version %s.",
						   fname, WORKQUEUE_VERSION, WORKQUEUE_VERSION),
				 errhint("Run ALTER EXTENSION workqueue UPDATE in this database.")));
	SPI_finish();
}

/*
 * The item row tuple of src as a value of the function's result type
 * (workqueue.item), in outer.  Columns are matched by name, so that a
 * result read through Citus, which leaves out columns dropped from the
 * table, fits the row type, which keeps them (as NULL).
 */
static HeapTupleHeader
ItemResult(FunctionCallInfo fcinfo, HeapTuple tup, TupleDesc src, MemoryContext outer)
{
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	HeapTuple	t;
	MemoryContext old;

	/* the row type, looked up once per call site (fn_extra), not per call */
	desc = (TupleDesc) fcinfo->flinfo->fn_extra;
	if (desc == NULL)
	{
		MemoryContext fn = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "transition() must return a row type");
		desc = CreateTupleDescCopy(desc);
		MemoryContextSwitchTo(fn);
		fcinfo->flinfo->fn_extra = desc;
	}
	if (src->natts == desc->natts)
		return SPI_returntuple(tup, src);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		int			col = att->attisdropped ? SPI_ERROR_NOATTRIBUTE : SPI_fnumber(src, NameStr(att->attname));

		if (col <= 0)
		{
			values[a] = (Datum) 0;
			nulls[a] = true;
		}
		else
			values[a] = SPI_getbinval(tup, src, col, &nulls[a]);
	}
	old = MemoryContextSwitchTo(outer);
	t = heap_form_tuple(desc, values, nulls);
	MemoryContextSwitchTo(old);
	return t->t_data;
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
	Oid			types[1] = {INT8OID};
	Datum		args[1];
	SPITupleTable *moved;
	MemoryContext outer;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item id must not be null")));
	id = PG_GETARG_INT64(0);
	args[0] = Int64GetDatum(id);

	RequireSchema("transition");
	outer = CurrentMemoryContext;
	SPI_connect();
	if (WqDistributed())
	{
		char	   *queue = TransitionGroups(&id, 1, tname, payload, actor, ActorRights(actor), &moved);

		if (moved == NULL)
		{
			Oid			ctypes[2] = {INT8OID, TEXTOID};
			Datum		cargs[2] = {Int64GetDatum(id), CStringGetTextDatum(queue)};

			if (SPI_execute_plan(CustomPlan(&citus_result_plan, "SELECT * FROM workqueue.item WHERE queue = $2 AND id = $1",
											2, ctypes), cargs, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "could not read item " INT64_FORMAT " back", id);
			moved = SPI_tuptable;
		}
	}
	else
		TransitionBatch(&id, 1, NULL, tname, payload, actor, ActorRights(actor), &moved);
	if (moved == NULL)
	{
		/* the SLA, assignment or on_enter steps may have changed it */
		if (SPI_execute_plan(WqPlan(&result_plan, "SELECT * FROM workqueue.item WHERE id = $1", 1, types),
							 args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read item " INT64_FORMAT " back", id);
		moved = SPI_tuptable;
	}
	result = ItemResult(fcinfo, moved->vals[0], moved->tupdesc, outer);
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
 * All or nothing: the first refusal raises and rolls the whole call back.
 */
Datum
workqueue_transition_many(PG_FUNCTION_ARGS)
{
	ArrayType  *arr;
	char	   *tname = TextArg(fcinfo, 1, "transition name");
	Jsonb	   *payload = PayloadArg(fcinfo, 2);
	char	   *actor = TextArg(fcinfo, 3, "actor");
	WqElements	elems;
	int			n;
	int64	   *ids;
	int			nids = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item array must not be null")));
	arr = PG_GETARG_ARRAYTYPE_P(0);
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (n > TRANSITION_MANY_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot transition %d items in one call", n),
				 errdetail("The limit is %d items per call.", TRANSITION_MANY_MAX),
				 errhint("Call transition_many() several times in one transaction; it stays all or nothing.")));
	WqElementsInit(&elems, arr, INT8OID, "item array must not contain nulls", "Element %d is null.");
	n = elems.n;
	ids = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
		ids[i] = DatumGetInt64(WqElement(&elems, i));
	qsort(ids, n, sizeof(int64), CompareInt64);
	for (int i = 0; i < n; i++)
		if (nids == 0 || ids[nids - 1] != ids[i])
			ids[nids++] = ids[i];
	if (nids == 0)
		PG_RETURN_INT32(0);

	RequireSchema("transition_many");
	SPI_connect();
	if (WqDistributed())
		(void) TransitionGroups(ids, nids, tname, payload, actor, ActorRights(actor), NULL);
	else
		TransitionBatch(ids, nids, NULL, tname, payload, actor, ActorRights(actor), NULL);
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

	RequireSchema("allowed_transitions");
	SPI_connect();
	admin = ActorRights(actor);
	ReadItem(PG_GETARG_INT64(0), &it);
	if (!admin)
		ReadFences(&it, 1, actor, true);
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

/*
 * What workqueue._may_claim() found out about one step of one workflow
 * version, for the rest of the statement: the step's role (NULL: none) and
 * whether the worker is an active member of it.
 */
typedef struct ClaimStep
{
	char	   *workflow;
	int			version;
	char	   *step;
	char	   *role;
	bool		member;
} ClaimStep;

typedef struct ClaimSteps
{
	char	   *worker;
	List	   *steps;			/* of ClaimStep */
} ClaimSteps;

/* Does the text equal the NUL-terminated string? */
static bool
TextIs(text *t, const char *s)
{
	size_t		len = VARSIZE_ANY_EXHDR(t);

	return strlen(s) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

PG_FUNCTION_INFO_V1(workqueue_may_claim);

/*
 * SQL: workqueue._may_claim(workflow text, version int, step text, assignee
 * text, worker text) returns boolean
 *
 * Role rule (4) for claim() (src/queue/claim.c), which passes an item's
 * workflow, version, step and assignee: whether the worker may act on it
 * (MayActAt, the rule transitions apply; the caller skips it for a worker
 * acting with administrator rights).  A step's role and the worker's
 * membership are read on the first item at that step in a statement and
 * kept for the rest of it, so a statement that sees only steps without a
 * role reads no member, and one of a queue's items read costs a lookup in
 * a short list.
 */
Datum
workqueue_may_claim(PG_FUNCTION_ARGS)
{
	text	   *workflow;
	int32		version;
	text	   *step;
	ClaimSteps *memo;
	ClaimStep  *found = NULL;
	ListCell   *lc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		PG_RETURN_BOOL(false);
	workflow = PG_GETARG_TEXT_PP(0);
	version = PG_GETARG_INT32(1);
	step = PG_GETARG_TEXT_PP(2);

	memo = (ClaimSteps *) fcinfo->flinfo->fn_extra;
	if (memo == NULL || !TextIs(PG_GETARG_TEXT_PP(4), memo->worker))
	{
		memo = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ClaimSteps));
		memo->worker = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, text_to_cstring(PG_GETARG_TEXT_PP(4)));
		fcinfo->flinfo->fn_extra = memo;
	}
	foreach(lc, memo->steps)
	{
		ClaimStep  *s = lfirst(lc);

		if (s->version == version && TextIs(step, s->step) && TextIs(workflow, s->workflow))
		{
			found = s;
			break;
		}
	}
	if (found == NULL)
	{
		char	   *wfname = text_to_cstring(workflow);
		char	   *stepname = text_to_cstring(step);
		const Workflow *wf;
		int			cur;
		MemoryContext old;
		char	   *role = NULL;
		bool		member = false;
		int			nest = WqNestedBegin(); /* on a shard: reads reference tables */

		SPI_connect();
		wf = WorkflowGet(wfname, version);
		cur = WorkflowFindStep(wf, stepname);
		if (cur < 0)
			role = "";			/* a step the version lacks: nobody's */
		else if (wf->steps[cur].role != NULL)
		{
			role = wf->steps[cur].role;
			member = MayActAt(role, NULL, memo->worker);
		}
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		found = palloc(sizeof(ClaimStep));
		found->workflow = pstrdup(wfname);
		found->version = version;
		found->step = pstrdup(stepname);
		found->role = role ? pstrdup(role) : NULL;
		found->member = member;
		memo->steps = lappend(memo->steps, found);
		MemoryContextSwitchTo(old);
		SPI_finish();
		WqNestedEnd(nest);
	}
	if (found->role == NULL || found->member)
		PG_RETURN_BOOL(true);
	/* MayActAt's assignee clause, on the row's text */
	PG_RETURN_BOOL(!PG_ARGISNULL(3) && TextIs(PG_GETARG_TEXT_PP(3), memo->worker));
}
