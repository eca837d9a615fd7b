/*
 * insert.c
 *		The one insert path for new items: add(), add_many() and the new
 *		records of upsert_items().
 *
 * A batch of new items is one SQL statement (INSERT_SQL), prepared once per
 * backend and run through SPI with the items as arrays:
 *
 *	- one multi-row INSERT of the items, in the order given, at the start
 *	  step of the current version of the queue's workflow, with the queue's
 *	  scope, and with their SLA (the queue's policy, at its latest version)
 *	  and their assignee (the start step's role) in the same write -- not a
 *	  later UPDATE, so each item is written once and its indexes once;
 *	- one multi-row INSERT of their events: a "created" event per item, then
 *	  an "assigned" event per item that got an assignee.
 *
 * The SLA is what workqueue._sla_enter(..., created => true) gives a new
 * item: every item of the batch has created_at = now(), so due_at and the
 * first threshold depend only on the priority and the calendar, and are
 * computed once per (priority, calendar) pair, not once per item.  The
 * assignees are picked before the statement, for the whole batch, by
 * workqueue._pick_members() (one call: the role's row is locked from then
 * to the end of the transaction, as for any assignment), and handed out in
 * the order given, as _after_enter() hands them out in id order.
 *
 * Writers only record events: announcing them is not this file's job.
 *
 * Concurrency.  A batch with external ids is first inserted without ON
 * CONFLICT, in a subtransaction (InsertTried): if an external id exists, or
 * another transaction inserts it first (after waiting for it to end), the
 * unique violation rolls that back and the batch goes in again with ON
 * CONFLICT (queue, external_id) DO NOTHING, which skips those items and
 * returns them to the caller (add_many() raises, upsert_items() classifies
 * them again).  add() of an item with an external id looks for it first,
 * then uses ON CONFLICT.  A skipped item's pick of an assignee is spent: in
 * that race the role's turn moves on.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "core/spi.h"
#include "queue/insert.h"
#include "sync/sync_db.h"

/*
 * Up to this many items a batch runs one generic plan, made once per
 * backend (a custom plan of the statement costs more to make than a small
 * batch costs to write, and the plan cache keeps choosing custom plans for
 * it); above, a batch is planned for its own values.
 */
#define INSERT_GENERIC_MAX		100

#define INSERT_NARGS 14

/*
 * $1 queue, $2-$4 the items (external ids, NULL for none; priorities; data)
 * in the order to insert them, $5 source, $6 actor, $7 workflow, $8 its
 * version, $9 start step, $10 the assignees (NULL: the start step has no
 * role; a NULL element: nobody), $11 the role and $12 the strategy that
 * picked them, $13 whether to set last_seen_at (upsert_items), $14
 * whether to look for existing external ids first (add(): so that an
 * external id that exists draws no id from the sequence, as before).
 *
 * Returns a row per new item -- its id and its external id -- in the order
 * given; an item skipped for an existing
 * external id has none (NewItemsInsert finds which from that order).  The
 * arrays are read with unnest() in a target list, which streams them in
 * order, and each item meets its SLA through a nested loop (a LATERAL
 * subquery), which keeps that order: the items are inserted -- and their
 * ids drawn -- in the order given, without a sort, and RETURNING gives them
 * in that order.  (No counts or arrays computed in SQL: every subplan of
 * the statement is set up on each call, which is most of what a call of
 * one item costs.)
 *
 * The SLA columns follow workqueue._sla_enter()'s created case: the
 * policy's latest version, the calendar (calendar_by) at its latest
 * version, the target of the item's priority; the clock starts at
 * created_at or, in a step that pauses the SLA, is paused from then.  No
 * target for the priority (or no policy): no SLA.
 */
#define INSERT_SQL_HEAD \
"WITH p AS MATERIALIZED (" \
"    SELECT x.name, x.version, x.calendar, x.calendar_by, x.targets, (x.warn_at || 100)[1] AS first_pct" \
"      FROM workqueue.queue q" \
"      JOIN LATERAL (SELECT * FROM workqueue.sla_policy y WHERE y.name = q.sla_policy" \
"                     ORDER BY y.version DESC LIMIT 1) x ON true" \
"     WHERE q.name = $1" \
"), st AS MATERIALIZED (" \
"    SELECT s.pauses_sla," \
"           CASE WHEN s.kind = 'work' AND NOT s.pauses_sla" \
"                THEN s.weight / nullif((SELECT sum(w.weight) FROM workqueue.workflow_step w" \
"                                         WHERE w.workflow = $7 AND w.version = $8" \
"                                           AND w.kind = 'work' AND NOT w.pauses_sla), 0) END AS share" \
"      FROM workqueue.workflow_step s" \
"     WHERE s.workflow = $7 AND s.version = $8 AND s.name = $9" \
"), sla AS MATERIALIZED (" \
"    SELECT d.priority, d.cal, p.name, p.version, c.version AS calv, t.target," \
"           workqueue.business_add(now(), t.target, d.cal, c.version) AS due_at," \
"           CASE WHEN st.pauses_sla THEN NULL ELSE now() END AS clock_from," \
"           CASE WHEN st.pauses_sla THEN now() END AS paused_at," \
"           CASE WHEN NOT st.pauses_sla THEN" \
"                workqueue._sla_next_at(now(), t.target, interval '0', p.first_pct, d.cal, c.version) END AS next_at," \
"           CASE WHEN NOT st.pauses_sla THEN" \
"                workqueue.business_add(now(), t.target * st.share, d.cal, c.version) END AS step_due_at" \
"      FROM p CROSS JOIN st" \
"     CROSS JOIN LATERAL (SELECT DISTINCT x.priority," \
"                                workqueue._sla_calendar(p.calendar_by, x.data, p.calendar) AS cal" \
"                           FROM (SELECT unnest($3::int2[]) AS priority, unnest($4::jsonb[]) AS data) x) d" \
"     CROSS JOIN LATERAL (SELECT (p.targets->>d.priority::text)::interval AS target) t" \
"     CROSS JOIN LATERAL (SELECT max(v.version) AS version FROM workqueue.calendar v WHERE v.name = d.cal) c" \
"     WHERE t.target IS NOT NULL AND c.version IS NOT NULL" \
"), ins AS (" \
"    INSERT INTO workqueue.item AS i (queue, external_id, source, step, status, priority, data, workflow," \
"                                     workflow_version, last_seen_at, scope, assignee," \
"                                     sla_policy, sla_policy_version, sla_calendar, sla_calendar_version," \
"                                     sla_target, due_at, sla_clock_from, sla_paused_at, sla_next_at," \
"                                     step_due_at)" \
"    SELECT $1, y.external_id, $5, $9, 'open', y.priority, y.data, $7, $8, CASE WHEN $13 THEN now() END," \
"           (SELECT q.scope FROM workqueue.queue q WHERE q.name = $1), y.member," \
"           z.name, z.version, z.cal, z.calv, z.target, z.due_at, z.clock_from, z.paused_at, z.next_at," \
"           z.step_due_at" \
"      FROM (SELECT x.*, workqueue._sla_calendar((SELECT p.calendar_by FROM p), x.data," \
"                                                (SELECT p.calendar FROM p)) AS cal" \
"              FROM (SELECT unnest($2::text[]) AS external_id, unnest($3::int2[]) AS priority," \
"                           unnest($4::jsonb[]) AS data, unnest($10::text[]) AS member) x) y" \
"      LEFT JOIN LATERAL (SELECT * FROM sla WHERE sla.priority = y.priority AND sla.cal = y.cal LIMIT 1) z" \
"        ON true" \
"     WHERE NOT $14 OR y.external_id IS NULL" \
"        OR NOT EXISTS (SELECT FROM workqueue.item e WHERE e.queue = $1 AND e.external_id = y.external_id)"

/*
 * The same for a queue without an SLA policy (most queues, and add()'s
 * usual case): no SLA columns, so none of the SLA subqueries -- a plan of a
 * few nodes, which is what one add() call pays to start.
 */
#define INSERT_PLAIN_SQL_HEAD \
"WITH ins AS (" \
"    INSERT INTO workqueue.item AS i (queue, external_id, source, step, status, priority, data, workflow," \
"                                     workflow_version, last_seen_at, scope, assignee)" \
"    SELECT $1, y.external_id, $5, $9, 'open', y.priority, y.data, $7, $8, CASE WHEN $13 THEN now() END," \
"           (SELECT q.scope FROM workqueue.queue q WHERE q.name = $1), y.member" \
"      FROM (SELECT unnest($2::text[]) AS external_id, unnest($3::int2[]) AS priority," \
"                   unnest($4::jsonb[]) AS data, unnest($10::text[]) AS member) y" \
"     WHERE NOT $14 OR y.external_id IS NULL" \
"        OR NOT EXISTS (SELECT FROM workqueue.item e WHERE e.queue = $1 AND e.external_id = y.external_id)"

#define INSERT_SQL_TAIL \
"    RETURNING i.id, i.external_id, i.priority, i.assignee" \
"), ev AS (" \
"    INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)" \
"    SELECT $1, ins.id, $6, 'created', NULL, $9," \
"           CASE WHEN $5 IS NULL" \
"                THEN pg_catalog.jsonb_build_object('priority', ins.priority, 'external_id', ins.external_id," \
"                                                   'workflow', $7, 'workflow_version', $8)" \
"                ELSE pg_catalog.jsonb_build_object('priority', ins.priority, 'external_id', ins.external_id," \
"                                                   'workflow', $7, 'workflow_version', $8, 'source', $5) END" \
"      FROM ins" \
"    UNION ALL" \
"    SELECT $1, ins.id, $6, 'assigned', $9, $9," \
"           pg_catalog.jsonb_build_object('assignee', ins.assignee, 'role', $11, 'strategy', $12)" \
"      FROM ins WHERE ins.assignee IS NOT NULL" \
")" \
"SELECT ins.id, ins.external_id FROM ins"

#define INSERT_ON_CONFLICT "        ON CONFLICT (queue, external_id) DO NOTHING"

/*
 * The statements, by [sla][keyed]: with or without the SLA columns (the
 * queue has a policy), with or without ON CONFLICT (a batch without
 * external ids needs no speculative insertion).
 */
static const char *const insert_sql[2][2] = {
	{INSERT_PLAIN_SQL_HEAD INSERT_SQL_TAIL, INSERT_PLAIN_SQL_HEAD INSERT_ON_CONFLICT INSERT_SQL_TAIL},
	{INSERT_SQL_HEAD INSERT_SQL_TAIL, INSERT_SQL_HEAD INSERT_ON_CONFLICT INSERT_SQL_TAIL},
};

/*
 * The queue's workflow, its current version and start step, and the start
 * step's role (a working step's).
 */
static const char *const QUEUE_SQL =
"SELECT q.workflow, v.version, v.start_step, CASE WHEN s.kind = 'work' THEN s.role END,"
"       q.sla_policy IS NOT NULL"
"  FROM workqueue.queue q"
"  JOIN workqueue.workflow w ON w.name = q.workflow"
"  JOIN workqueue.workflow_version v"
"    ON v.workflow = w.name AND v.version = w.current_version"
"  JOIN workqueue.workflow_step s"
"    ON s.workflow = v.workflow AND s.version = v.version AND s.name = v.start_step"
" WHERE q.name = $1";

static Oid	insert_types[INSERT_NARGS] = {TEXTOID, TEXTARRAYOID, INT2ARRAYOID, JSONBARRAYOID,
	TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID};

static SPIPlanPtr queue_plan;
/* the plans of insert_sql, generic [..][..][0] and custom [..][..][1] */
static SPIPlanPtr insert_plans[2][2][2];
static SPIPlanPtr pick_plan;

/*
 * Reads what new items of the queue start with; raises the error of
 * workqueue._queue() if there is no such queue.  Must be connected to SPI.
 */
void
NewItemsReadQueue(text *queue, NewItemsQueue *q)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {PointerGetDatum(queue)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	if (SPI_execute_plan(WqPlanGeneric(&queue_plan, QUEUE_SQL, 1, types), args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read workqueue.queue");
	if (SPI_processed == 0)
		SYNC_QUEUE_NOT_FOUND(text_to_cstring(queue));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	q->workflow = SPI_getvalue(row, desc, 1);
	q->version = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
	q->start_step = SPI_getvalue(row, desc, 3);
	q->role = SPI_getvalue(row, desc, 4);	/* NULL if null */
	q->sla = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * A one-dimensional text[] of the external ids (NULL where an item has
 * none) or, with data, a jsonb[] of the data of items[pos[0..n-1]], built
 * in one piece: each element is copied once, straight from the caller's
 * value.
 */
static Datum
VarlenaArray(const NewItem *items, const int *pos, int n, bool data)
{
	Size		size;
	ArrayType  *arr;
	char	   *p;
	bits8	   *nulls = NULL;
	bool		hasnull = false;

	if (!data)
		for (int i = 0; i < n && !hasnull; i++)
			hasnull = items[pos[i]].external_id == NULL;
	size = hasnull ? ARR_OVERHEAD_WITHNULLS(1, n) : ARR_OVERHEAD_NONULLS(1);
	for (int i = 0; i < n; i++)
	{
		const NewItem *item = &items[pos[i]];

		if (data)
			size += INTALIGN(VARHDRSZ + item->datalen);
		else if (item->external_id != NULL)
			size += INTALIGN(VARHDRSZ + item->external_id_len);
	}
	if (!AllocSizeIsValid(size))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("items is too large for one call"),
				 errhint("Pass the items in smaller batches.")));
	arr = palloc0(size);
	SET_VARSIZE(arr, size);
	arr->ndim = 1;
	arr->dataoffset = hasnull ? ARR_OVERHEAD_WITHNULLS(1, n) : 0;
	arr->elemtype = data ? JSONBOID : TEXTOID;
	ARR_DIMS(arr)[0] = n;
	ARR_LBOUND(arr)[0] = 1;
	if (hasnull)
		nulls = ARR_NULLBITMAP(arr);
	p = (char *) arr + (hasnull ? ARR_OVERHEAD_WITHNULLS(1, n) : ARR_OVERHEAD_NONULLS(1));
	for (int i = 0; i < n; i++)
	{
		const NewItem *item = &items[pos[i]];
		uint32		len;

		if (!data && item->external_id == NULL)
			continue;			/* its bit stays 0: null */
		if (nulls)
			nulls[i / 8] |= 1 << (i % 8);
		len = data ? item->datalen : (uint32) item->external_id_len;
		SET_VARSIZE(p, VARHDRSZ + len);
		memcpy(VARDATA(p), data ? (const char *) item->data : item->external_id, len);
		p += INTALIGN(VARHDRSZ + len);
	}
	return PointerGetDatum(arr);
}

/* The priorities of items[pos[0..n-1]] as int2[]. */
static Datum
PriorityArray(const NewItem *items, const int *pos, int n)
{
	Datum	   *v = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		v[i] = Int16GetDatum(items[pos[i]].priority);
	return PointerGetDatum(construct_array(v, n, INT2OID, 2, true, TYPALIGN_SHORT));
}

/*
 * Picks assignees for n new items from the role's pool
 * (workqueue._pick_members): sets *members (text[]; a NULL element when the
 * pool is empty) and *strategy.
 */
static void
PickMembers(const char *role, int n, Datum *members, Datum *strategy, bool *strategy_null)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(role), Int32GetDatum(n)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (SPI_execute_plan(WqPlanGeneric(&pick_plan, "SELECT m.members, m.strategy FROM workqueue._pick_members($1, $2) m",
								2, types),
						 args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not pick members of role \"%s\"", role);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(row, desc, 1, &isnull);
	if (isnull)
	{
		/* nobody to pick: every item gets no assignee */
		Datum	   *v = palloc0(sizeof(Datum) * n);
		bool	   *nulls = palloc(sizeof(bool) * n);
		int			dims[1] = {n};
		int			lbs[1] = {1};

		memset(nulls, true, sizeof(bool) * n);
		*members = PointerGetDatum(construct_md_array(v, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	}
	else
		*members = PointerGetDatum(DatumGetArrayTypePCopy(d));
	d = SPI_getbinval(row, desc, 2, &isnull);
	*strategy_null = isnull;
	*strategy = isnull ? (Datum) 0 : PointerGetDatum(DatumGetTextPCopy(d));
	SPI_freetuptable(SPI_tuptable);
}

/* The plan of the statement for q, with or without ON CONFLICT, for n items. */
static SPIPlanPtr
InsertPlan(const NewItemsQueue *q, bool on_conflict, int n)
{
	const char *sql = insert_sql[q->sla][on_conflict];

	if (n <= INSERT_GENERIC_MAX)
		return WqPlanGeneric(&insert_plans[q->sla][on_conflict][0], sql, INSERT_NARGS, insert_types);
	return WqPlanCursor(&insert_plans[q->sla][on_conflict][1], sql, INSERT_NARGS, insert_types,
						CURSOR_OPT_CUSTOM_PLAN);
}

/*
 * Runs plan (the insert without ON CONFLICT) in a subtransaction.  Returns
 * false, the subtransaction rolled back, if an external id exists in the
 * queue (a unique violation of item_queue_external_id_key); raises any
 * other error.  On success SPI_tuptable holds the statement's rows.
 */
static bool
InsertTried(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool done = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not insert items");
		ReleaseCurrentSubTransaction();
		done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION || edata->constraint_name == NULL ||
			strcmp(edata->constraint_name, "item_queue_external_id_key") != 0)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return done;
}

/*
 * Inserts items[pos[0..n-1]] (n > 0) into the queue, in that order, with
 * their events, and fills *res.  source (or NULL) is recorded on the items
 * and in their "created" events, actor is the events' actor, seen sets
 * last_seen_at, precheck skips items whose external id exists before they
 * draw an id.  Must be connected to SPI; what *res points to is allocated
 * in CurrentMemoryContext.
 */
void
NewItemsInsert(text *queue, const NewItemsQueue *q, text *source, Datum actor, bool seen,
			   bool precheck, const NewItem *items, const int *pos, int n, NewItemsResult *res)
{
	Datum		args[INSERT_NARGS];
	char		nulls[INSERT_NARGS + 1];
	bool		keyed = false;
	HeapTuple	row = NULL;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	int			k;
	int			r = 0;
	MemoryContext caller = CurrentMemoryContext;

	Assert(n > 0);
	memset(nulls, ' ', INSERT_NARGS);
	nulls[INSERT_NARGS] = '\0';
	args[0] = PointerGetDatum(queue);
	args[1] = VarlenaArray(items, pos, n, false);
	args[2] = PriorityArray(items, pos, n);
	args[3] = VarlenaArray(items, pos, n, true);
	args[4] = PointerGetDatum(source);
	nulls[4] = source ? ' ' : 'n';
	args[5] = actor;
	args[6] = CStringGetTextDatum(q->workflow);
	args[7] = Int32GetDatum(q->version);
	args[8] = CStringGetTextDatum(q->start_step);
	args[12] = BoolGetDatum(seen);
	args[13] = BoolGetDatum(precheck);
	if (q->role != NULL)
	{
		bool		strategy_null;

		PickMembers(q->role, n, &args[9], &args[11], &strategy_null);
		args[10] = CStringGetTextDatum(q->role);
		nulls[11] = strategy_null ? 'n' : ' ';
	}
	else
	{
		args[9] = args[10] = args[11] = (Datum) 0;
		nulls[9] = nulls[10] = nulls[11] = 'n';
	}

	for (int i = 0; i < n && !keyed; i++)
		keyed = items[pos[i]].external_id != NULL;

	/*
	 * A batch with external ids goes in first without ON CONFLICT, in a
	 * subtransaction: the unique index checks each id as it inserts it,
	 * where ON CONFLICT probes the index once more and confirms every row
	 * with a WAL record of its own.  Only if an id exists (the rare case:
	 * add_many raises, upsert_items lost a race) is that rolled back and
	 * the batch inserted again with ON CONFLICT DO NOTHING, which finds
	 * which ones.
	 */
	if (!keyed || precheck || !InsertTried(InsertPlan(q, false, n), args, nulls))
	{
		if (SPI_execute_plan(InsertPlan(q, keyed, n), args, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not insert items");
	}
	/* SPI leaves us in its procedure context, which SPI_finish() frees */
	MemoryContextSwitchTo(caller);

	/*
	 * The rows come in the order given, one per inserted item: walk both
	 * lists together; an item whose row does not come next was skipped.
	 */
	desc = SPI_tuptable->tupdesc;
	if (SPI_processed > (uint64) n)
		elog(ERROR, "inserted " UINT64_FORMAT " of %d items", SPI_processed, n);
	k = (int) SPI_processed;
	res->inserted = k;
	res->ids = palloc(sizeof(int64) * Max(k, 1));
	res->skipped = k < n ? palloc(sizeof(int) * (n - k)) : NULL;
	res->nskipped = 0;
	for (int i = 0; i < n; i++)
	{
		const NewItem *item = &items[pos[i]];
		bool		match = false;

		if (r < k)
		{
			row = SPI_tuptable->vals[r];
			d = SPI_getbinval(row, desc, 2, &isnull);
			if (item->external_id == NULL)
				match = isnull;
			else if (!isnull)
			{
				text	   *ext = DatumGetTextPP(d);

				match = VARSIZE_ANY_EXHDR(ext) == (Size) item->external_id_len &&
					memcmp(VARDATA_ANY(ext), item->external_id, item->external_id_len) == 0;
			}
		}
		if (!match)
		{
			if (item->external_id == NULL || res->nskipped >= n - k)
				elog(ERROR, "could not match the new items to the items given");
			res->skipped[res->nskipped++] = i;
			continue;
		}
		res->ids[r] = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		r++;
	}
	if (r != k)
		elog(ERROR, "could not match the new items to the items given");
	SPI_freetuptable(SPI_tuptable);
}
