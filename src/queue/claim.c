/*
 * claim.c
 *		workqueue.claim(): take up to n items of a queue in inbox order.
 *
 * The usual claim is one statement, prepared once per backend: it locks the
 * first n open items the caller may see (FOR UPDATE SKIP LOCKED, so that it
 * never waits and cannot deadlock), takes them (in_progress, the worker's
 * lease; the rows locked are updated by ctid, not looked up again) and
 * writes their "claimed" events.  The worker's fences on the items taken
 * (workqueue.lease_fence) end in a statement of its own, run only when that
 * table has a block at all (FencesMayExist).  It takes nothing when a lease
 * of the queue has run out (item_lease_idx says so at once): then a second
 * statement takes the first n of the open items and of those whose lease has
 * run out -- before the worker's sweep returned them -- writing
 * "lease_expired" then "claimed" for each of the latter and fencing its old
 * holder (see doc/workflows.md, "Fencing").  The second statement also runs
 * when the first took nothing because there was nothing open; when it takes
 * nothing either, the queue is looked up, to tell a queue that does not
 * exist from an empty one.
 *
 * Items are claimable only by a worker that may act at their step, by the
 * role rule of transitions (a member of the step's role, the assignee, an
 * administrator; for an agent, the worker it names): the others are
 * skipped, as items out of scope are.
 *
 * The queue, the caller's rights and scopes are read inside the statements
 * (the lease timeout as a one-time subquery, the scope grants by
 * workqueue._scope_visible(), once per statement and only for an item that
 * has a scope; steps' roles and the worker's memberships by
 * workqueue._may_claim(), once per step and statement, skipped for a worker
 * acting as an administrator); the checks of the arguments that come first, and raise in
 * the order claim() always did (queue, n, worker), look the queue up only
 * when one of them fails.
 *
 * Plans do not depend on statistics: the statements run (and are planned,
 * once, as generic plans, and again whenever the tables change) with
 * sequential and bitmap scans, sorts, hash and merge joins off, so that the
 * only plan left reads item_inbox_idx in order and stops after n rows -- on
 * a queue created and filled a second ago as on an analyzed one.  (The
 * final sort of the n rows taken stays, at the planner's penalty cost for
 * a disabled node, which would make the plan JIT-compiled: JIT is off for
 * them too.)  Nothing
 * here sends a NOTIFY: the events are the announcement (the background
 * announcer sends them).
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "core/spi.h"
#include "core/srf.h"
#include "core/workqueue.h"

/* most items one claim takes */
#define CLAIM_MAX 10000

/*
 * Whether the item (alias i) is in the caller's scopes: $4 the caller is an
 * administrator (sees all), $5 the caller's role OID.  The scopes granted
 * to the caller are read once per statement, and only if an item with a
 * scope comes up (workqueue_scope_visible below).
 */
#define CLAIM_VISIBLE "workqueue._scope_visible(i.scope, $4, $5)"

/*
 * The same on Citus, where the statement runs on a worker node: the
 * caller's role OID names no role there (or another), so the scopes the
 * caller may see are read here, on the coordinator, and passed in as $7
 * (WqScopeGrants, as transition() does).
 */
#define CLAIM_CITUS_VISIBLE "(i.scope = '{}' OR $4 OR i.scope && $7)"

/*
 * Whether the worker may act on the item (alias i) at its step, the rule of
 * transitions (src/workflow/transition.c): $6 the worker acts with
 * administrator rights, else the step has no role, or the worker is the
 * item's assignee or an active member of the step's role.  Steps' roles
 * and the worker's memberships are read once per statement, and a member
 * only for a step that has a role.  An item the worker may not act on is
 * not claimable by it: skipped, as one out of scope.
 */
#define CLAIM_MAY_ACT \
	"($6 OR workqueue._may_claim(i.workflow, i.workflow_version, i.step, i.assignee, $3))"

/* the lease of a claim made now */
#define CLAIM_LEASE \
	"now() + (SELECT q.lease_timeout FROM workqueue.queue q WHERE q.name = $1)"

/*
 * The usual claim: $1 queue, $2 n, $3 worker, $4 admin, $5 caller, $6 the
 * worker acts as an administrator.  Takes
 * nothing if a lease of the queue has run out.  Returns the items taken, in
 * inbox order.  The rows locked are updated by their key (a column of c)
 * matched by match: by ctid on one node, by id on Citus, which does not
 * route a modification by ctid ("Recursively planned distributed
 * modifications with ctid on where clause are not supported"); with
 * queue = $1 in every part, the whole statement goes to the queue's shard.
 */
#define CLAIM_SQL_BY(visible, key, match, events) \
"WITH c AS ("\
"  SELECT i." key " FROM workqueue.item i"\
"   WHERE i.queue = $1 AND i.status = 'open' AND " visible " AND " CLAIM_MAY_ACT\
"     AND NOT EXISTS (SELECT FROM workqueue.item x"\
"                      WHERE x.queue = $1 AND x.status = 'in_progress' AND x.lease_until <= now())"\
"   ORDER BY i.priority, i.created_at, i.id"\
"   LIMIT $2"\
"     FOR UPDATE SKIP LOCKED),"\
" u AS ("\
"  UPDATE workqueue.item i"\
"     SET status = 'in_progress', claimed_by = $3, lease_until = " CLAIM_LEASE ", updated_at = now()"\
"    FROM c WHERE i.queue = $1 AND " match\
"  RETURNING i.*)" events\
" SELECT u.* FROM u ORDER BY u.priority, u.created_at, u.id"

/* the "claimed" events of the items taken, a CTE of CLAIM_SQL */
#define CLAIM_EVENTS_CTE \
", e AS ("\
"  INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"\
"  SELECT u.queue, u.id, $3, 'claimed', u.step, u.step, jsonb_build_object('lease_until', u.lease_until)"\
"    FROM u)"

static const char *const CLAIM_SQL = CLAIM_SQL_BY(CLAIM_VISIBLE, "ctid", "i.ctid = c.ctid", CLAIM_EVENTS_CTE);

/*
 * On Citus, the claim without its events is one statement on the queue's
 * shard (Citus routes it whole); with the inserting CTE it was planned in
 * pieces, the rows locked sent through the coordinator as intermediate
 * results to every worker, and the transaction committed in two phases on
 * two nodes.  The events follow in a statement of their own
 * (CLAIM_CITUS_EVENTS_SQL), which Citus copies into the same shard over the
 * same connection: one node.  (After a COPY Citus commits in two phases,
 * PREPARE TRANSACTION, even on one node; the same rows as a multi-row
 * INSERT ... VALUES commit in one, but were not measurably faster:
 * doc/scale-out.md, "Benchmark".)
 */
static const char *const CLAIM_CITUS_SQL = CLAIM_SQL_BY(CLAIM_CITUS_VISIBLE, "id", "i.id = c.id", "");

/* $1 queue, $2 worker, $3 ids, $4 steps, $5 leases of the items taken, in order */
static const char *const CLAIM_CITUS_EVENTS_SQL =
"INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
" SELECT $1, x.id, $2, 'claimed', x.step, x.step, jsonb_build_object('lease_until', x.lease_until)"
"   FROM unnest($3, $4, $5) AS x(id, step, lease_until)";

/*
 * Whether a lease of the queue ($1) has run out: on Citus, the claim of
 * CLAIM_EXPIRED_SQL (several inserting CTEs, planned in pieces) runs only
 * then, not on every claim of an empty queue.
 */
static const char *const CLAIM_CITUS_EXPIRED_SQL =
"SELECT 1 FROM workqueue.item x WHERE x.queue = $1 AND x.status = 'in_progress' AND x.lease_until <= now() LIMIT 1";

/*
 * The claim when some lease has run out: two scans, each in inbox order and
 * each locking at most n items, the open items and the claimed ones whose
 * lease has run out; the first n of both are taken.  An item of either scan
 * that is not taken stays locked, and skipped by other claims, until this
 * transaction ends.  A taken item whose lease had run out gets its
 * "lease_expired" event just before its "claimed" one (one INSERT, in that
 * order), and its old holder is fenced.  The old holder and lease come
 * through u's RETURNING (a join of u and c, nested loops only, would
 * compare every pair).  Parameters as CLAIM_SQL.
 */
#define CLAIM_EXPIRED_SQL_WITH(visible) \
"WITH o AS ("\
"  SELECT i.queue, i.id, i.priority, i.created_at, NULL::text AS old_holder, NULL::timestamptz AS old_lease"\
"    FROM workqueue.item i"\
"   WHERE i.queue = $1 AND i.status = 'open' AND " visible " AND " CLAIM_MAY_ACT\
"   ORDER BY i.priority, i.created_at, i.id"\
"   LIMIT $2"\
"     FOR UPDATE SKIP LOCKED),"\
" x AS ("\
"  SELECT i.queue, i.id, i.priority, i.created_at, i.claimed_by, i.lease_until"\
"    FROM workqueue.item i"\
"   WHERE i.queue = $1 AND i.status = 'in_progress' AND i.lease_until <= now() AND " visible\
"     AND " CLAIM_MAY_ACT\
"   ORDER BY i.priority, i.created_at, i.id"\
"   LIMIT $2"\
"     FOR UPDATE SKIP LOCKED),"\
" c AS ("\
"  SELECT b.* FROM (SELECT * FROM o UNION ALL SELECT * FROM x) b"\
"   ORDER BY b.priority, b.created_at, b.id"\
"   LIMIT $2),"\
" u AS ("\
"  UPDATE workqueue.item i"\
"     SET status = 'in_progress', claimed_by = $3, lease_until = " CLAIM_LEASE ", updated_at = now()"\
"    FROM c WHERE i.queue = c.queue AND i.id = c.id"\
"  RETURNING i.*, c.old_holder, c.old_lease),"\
" fence AS ("\
"  INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until)"\
"  SELECT c.queue, c.id, c.old_holder, c.old_lease FROM c"\
"   WHERE c.old_holder IS NOT NULL AND c.old_holder <> $3"\
"  ON CONFLICT (queue, item_id, worker) DO UPDATE SET lease_until = excluded.lease_until),"\
" e AS ("\
"  INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"\
"  SELECT u.queue, u.id, k.actor, k.kind, u.step, u.step, k.payload"\
"    FROM u CROSS JOIN LATERAL (VALUES"\
"         (1, 'workqueue', 'lease_expired',"\
"          jsonb_build_object('claimed_by', u.old_holder, 'lease_until', u.old_lease)),"\
"         (2, $3, 'claimed', jsonb_build_object('lease_until', u.lease_until)))"\
"     AS k(ord, actor, kind, payload)"\
"   WHERE k.ord = 2 OR u.old_holder IS NOT NULL"\
"   ORDER BY u.priority, u.created_at, u.id, k.ord)"\
" SELECT u.* FROM u ORDER BY u.priority, u.created_at, u.id"

static const char *const CLAIM_EXPIRED_SQL = CLAIM_EXPIRED_SQL_WITH(CLAIM_VISIBLE);
static const char *const CLAIM_CITUS_EXPIRED_CLAIM_SQL = CLAIM_EXPIRED_SQL_WITH(CLAIM_CITUS_VISIBLE);

/*
 * Ends the worker's fences on the items it took (it has claimed them again):
 * $1 queue, $2 worker, $3 the ids taken.
 */
static const char *const END_FENCES_SQL =
"DELETE FROM workqueue.lease_fence f WHERE f.queue = $1 AND f.item_id = ANY ($3) AND f.worker = $2";

static SPIPlanPtr claim_plan;
static SPIPlanPtr claim_citus_plan;
static SPIPlanPtr claim_citus_events_plan;
static SPIPlanPtr claim_citus_expired_plan;
static SPIPlanPtr claim_citus_expired_claim_plan;
static SPIPlanPtr claim_expired_plan;
static SPIPlanPtr end_fences_plan;
static SPIPlanPtr queue_plan;

/*
 * Whether workqueue.lease_fence may hold a row: false when the table has no
 * block at all -- no fence was ever written, or vacuum has truncated the
 * table after the last one went.  Checked after the claim statement, which
 * has locked the items it took: every writer of a fence holds the item's
 * row lock (the sweep, a claim that takes an item over, a move, release,
 * an upstream close), so a fence on a taken item was written -- and the
 * table extended -- before the claim could lock the item.  (A table's
 * block count is a local fact, and on Citus this node's table is an empty
 * shell or one shard of many: EndFences runs the statement always there.)
 */
static bool
FencesMayExist(void)
{
	Oid			relid = get_relname_relid("lease_fence", get_namespace_oid("workqueue", false));
	Relation	rel;
	bool		some;

	if (!OidIsValid(relid))
		elog(ERROR, "table workqueue.lease_fence does not exist");
	rel = table_open(relid, AccessShareLock);
	some = RelationGetNumberOfBlocks(rel) > 0;
	table_close(rel, NoLock);
	return some;
}

/*
 * Ends the worker's fences on the taken items (the rows of tt), if there
 * may be any.
 */
static void
EndFences(Datum queue, Datum worker, SPITupleTable *tt, uint64 taken)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8ARRAYOID};
	Datum		args[3];
	Datum	   *ids;
	int			idcol;

	if (taken == 0 || (!WqDistributed() && !FencesMayExist()))
		return;
	idcol = SPI_fnumber(tt->tupdesc, "id");
	if (idcol <= 0)
		elog(ERROR, "claimed rows have no id");
	ids = palloc(sizeof(Datum) * taken);
	for (uint64 r = 0; r < taken; r++)
	{
		bool		isnull;

		ids[r] = SPI_getbinval(tt->vals[r], tt->tupdesc, idcol, &isnull);
	}
	args[0] = queue;
	args[1] = worker;
	args[2] = PointerGetDatum(construct_array(ids, (int) taken, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (WqExecuteIndexed(WqPlanGeneric(&end_fences_plan, END_FENCES_SQL, 3, types), args, false, 0, false)
		!= SPI_OK_DELETE)
		elog(ERROR, "could not end the fences of claimed items");
}

/*
 * Writes the "claimed" events of the items taken by CLAIM_CITUS_SQL (the
 * rows of tt), in their order.
 */
static void
WriteClaimEvents(Datum queue, Datum worker, SPITupleTable *tt, uint64 taken)
{
	Oid			types[5] = {TEXTOID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	int			cols[3];
	const char *names[3] = {"id", "step", "lease_until"};
	Datum	   *values[3];
	Datum		args[5];
	char	   *qname = TextDatumGetCString(queue);

	for (int c = 0; c < 3; c++)
	{
		cols[c] = SPI_fnumber(tt->tupdesc, names[c]);
		if (cols[c] <= 0)
			elog(ERROR, "claimed rows have no %s", names[c]);
		values[c] = palloc(sizeof(Datum) * taken);
	}
	for (uint64 r = 0; r < taken; r++)
	{
		for (int c = 0; c < 3; c++)
		{
			bool		isnull;

			values[c][r] = SPI_getbinval(tt->vals[r], tt->tupdesc, cols[c], &isnull);
			if (isnull)
				elog(ERROR, "a claimed row has no %s", names[c]);
		}
		/* the worker will name them by id (transition_many): no lookup then */
		WqRememberQueue(DatumGetInt64(values[0][r]), qname);
	}
	args[0] = queue;
	args[1] = worker;
	args[2] = PointerGetDatum(construct_array(values[0], (int) taken, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_array(values[1], (int) taken, TEXTOID, -1, false, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_array(values[2], (int) taken, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	if (SPI_execute_plan(WqPlan(&claim_citus_events_plan, CLAIM_CITUS_EVENTS_SQL, 5, types), args, NULL, false, 0)
		!= SPI_OK_INSERT)
		elog(ERROR, "could not write the events of claimed items");
}

/* On Citus: has a lease of the queue run out? */
static bool
CitusLeaseExpired(Datum queue)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {queue};

	if (SPI_execute_plan(WqPlan(&claim_citus_expired_plan, CLAIM_CITUS_EXPIRED_SQL, 1, types), args, NULL, true, 1)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not look for expired leases");
	return SPI_processed > 0;
}

/*
 * Raises "queue ... does not exist" (as workqueue._queue()) unless the
 * queue exists.  Connected to SPI.
 */
static void
RequireQueue(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};

	if (SPI_execute_plan(WqPlan(&queue_plan, "SELECT 1 FROM workqueue.queue WHERE name = $1", 1, types),
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up queue \"%s\"", name);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("queue \"%s\" does not exist", name),
				 errhint("Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;")));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Runs a claim statement with the planner left the inbox index in order
 * (see the file header); returns the number of items taken, in
 * SPI_tuptable.
 */
static uint64
RunClaim(SPIPlanPtr *slot, const char *sql, Datum *args, int nargs)
{
	static Oid	types[7] = {TEXTOID, INT4OID, TEXTOID, BOOLOID, OIDOID, BOOLOID, TEXTARRAYOID};
	int			rc = WqExecuteIndexed(WqPlanGeneric(slot, sql, nargs, types), args, false, 0, true);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not claim items: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

PG_FUNCTION_INFO_V1(workqueue_claim);

/*
 * SQL: workqueue.claim(queue text, n int DEFAULT 1, worker text DEFAULT
 * current_user) returns setof workqueue.item
 *
 * Raises, in this order, for a NULL queue (22004), a queue that does not
 * exist (42704), n out of 1..10000 (22023) and a worker the caller may not
 * act as (workqueue._check_actor()).  Items the worker may not act on at
 * their step are skipped, not an error.
 */
Datum
workqueue_claim(PG_FUNCTION_ARGS)
{
	char	   *queue;
	bool		n_ok = !PG_ARGISNULL(1) && PG_GETARG_INT32(1) >= 1 && PG_GETARG_INT32(1) <= CLAIM_MAX;
	char	   *worker = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	Datum		args[7];
	TupleDesc	desc;
	Tuplestorestate *store;
	uint64		taken;
	SPITupleTable *claimed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue name must not be null")));
	queue = text_to_cstring(PG_GETARG_TEXT_PP(0));
	store = WqMaterializedResult(fcinfo, &desc);

	SPI_connect();
	if (!n_ok || !WorkqueueActorAcceptable(worker))
	{
		RequireQueue(queue);
		if (!n_ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot claim %s items at once",
							PG_ARGISNULL(1) ? "NULL" : psprintf("%d", PG_GETARG_INT32(1))),
					 errhint("Pass n between 1 and %d.", CLAIM_MAX)));
		WorkqueueCheckActor(worker, "worker");	/* raises */
	}

	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	args[3] = BoolGetDatum(WorkqueueIsAdmin(NULL));
	args[4] = ObjectIdGetDatum(GetOuterUserId());
	args[5] = BoolGetDatum(WorkqueueActorIsAdmin(worker));

	if (unlikely(WqDistributed()))
	{
		args[6] = DatumGetBool(args[3]) ? PointerGetDatum(construct_empty_array(TEXTOID))
			: PointerGetDatum(WqScopeGrants(DatumGetObjectId(args[4])));
		taken = RunClaim(&claim_citus_plan, CLAIM_CITUS_SQL, args, 7);
		claimed = SPI_tuptable;
		if (taken > 0)
			WriteClaimEvents(args[0], args[2], claimed, taken);
		else if (CitusLeaseExpired(args[0]))
		{
			taken = RunClaim(&claim_citus_expired_claim_plan, CLAIM_CITUS_EXPIRED_CLAIM_SQL, args, 7);
			claimed = SPI_tuptable;
		}
		if (taken == 0)
			RequireQueue(queue);
	}
	else
	{
		taken = RunClaim(&claim_plan, CLAIM_SQL, args, 6);
		if (taken == 0)
		{
			/* a lease has run out, or nothing is open, or there is no such queue */
			taken = RunClaim(&claim_expired_plan, CLAIM_EXPIRED_SQL, args, 6);
			if (taken == 0)
				RequireQueue(queue);
		}
		claimed = SPI_tuptable;
	}
	EndFences(args[0], args[2], claimed, taken);

	/*
	 * The rows of u are the item's columns but its dropped ones, which the
	 * result's descriptor (the table's row type) keeps as nulls (then, from
	 * CLAIM_EXPIRED_SQL, the old holder and lease, which are not returned).
	 */
	{
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *nulls = palloc(sizeof(bool) * desc->natts);
		SPITupleTable *tt = claimed;

		for (uint64 r = 0; r < taken; r++)
		{
			int			col = 0;

			for (int a = 0; a < desc->natts; a++)
			{
				if (TupleDescAttr(desc, a)->attisdropped)
				{
					values[a] = (Datum) 0;
					nulls[a] = true;
					continue;
				}
				if (++col > tt->tupdesc->natts ||
					TupleDescAttr(tt->tupdesc, col - 1)->atttypid != TupleDescAttr(desc, a)->atttypid)
					elog(ERROR, "claimed rows do not match the row type of workqueue.item");
				values[a] = SPI_getbinval(tt->vals[r], tt->tupdesc, col, &nulls[a]);
			}
			tuplestore_putvalues(store, desc, values, nulls);
		}
	}
	SPI_finish();
	return (Datum) 0;
}
