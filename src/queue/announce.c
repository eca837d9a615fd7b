/*
 * announce.c
 *		Announcements: one NOTIFY workqueue per event, sent after the event
 *		commits by a worker of its own, never by the writer.
 *
 * A transaction that NOTIFYs takes a cluster-wide lock from pre-commit until
 * after its commit (PreCommit_Notify in PostgreSQL's async.c), so writers
 * that announce their own changes serialize their commits.  Here writers
 * only record events.  Each row of item_event carries in its column tx the
 * id of the transaction that wrote it (its default, workqueue._event_tx(),
 * also asks for this database's announce worker to be woken when the
 * transaction commits).
 *
 * The announce worker keeps in workqueue.announce_state the snapshot up to
 * which it has announced.  A round takes a new snapshot and announces, in
 * event id order, the events whose transaction is visible in the new
 * snapshot and was not in the stored one, then stores the new snapshot --
 * one transaction, so the NOTIFYs and the stored snapshot commit together
 * (PgQ's ticker uses the same technique).  Therefore:
 *
 *  - nothing is lost: an event of a transaction that commits late (after
 *    later ones, or long after it wrote the event) is not visible in the
 *    stored snapshot, so some later round announces it; a round that
 *    fails (a crash, a full notification queue) is done again;
 *  - nothing is announced before it commits, nor after a rollback;
 *  - per item the order is right: two transactions that change one item
 *    are serialized by the item's row lock, so the later one takes its
 *    event ids after the earlier one committed, and a later round only
 *    holds transactions that committed after the previous round's snapshot;
 *  - at least once: a crash after NOTIFY but before the stored snapshot is
 *    flushed (the worker commits asynchronously) sends a round again.
 *
 * A round sends at most ANNOUNCE_BATCH notifications; a bigger backlog is
 * announced in batches between the same two snapshots, remembered as
 * "pending" with the last event id sent.  More than ANNOUNCE_BULK "created"
 * and "synced" events of one transaction in one queue (a load of 100k
 * items) get one summary notification instead of one each, as upsert_items
 * sent before announcements moved here.  An event of an item with a scope
 * is announced as {"event": id} alone (and a bulk of them as {"event":
 * first id, "bulk": true}): PostgreSQL has no privilege on LISTEN, so a
 * payload may say only what every listener may know; a listener with the
 * scope reads the event (and its item) through row-level security.  Events
 * written before the state
 * row was made (a restored dump's, whose transaction ids are another
 * cluster's) are never announced.
 *
 * Latency: the worker is woken at the commit of every transaction that
 * wrote events, and waits at least ANNOUNCE_PAUSE_MS between rounds that
 * announced something, so that under load one round carries many commits.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/xid8.h"

#include "core/spi.h"
#include "queue/announce.h"
#include "worker/launcher.h"
#include "worker/slot.h"
#include "worker/xact.h"

#define ANNOUNCE_BATCH 10000
#define ANNOUNCE_BULK 1000
#define ANNOUNCE_PAUSE_MS 5
#define ANNOUNCE_IDLE_MS 1000

PG_FUNCTION_INFO_V1(workqueue_event_tx);

/*
 * SQL: workqueue._event_tx() -- the default of item_event.tx: the id of the
 * (top-level) transaction writing the event, and a request to wake the
 * announce worker when it commits.
 */
Datum
workqueue_event_tx(PG_FUNCTION_ARGS)
{
	WorkqueueWakeAtCommit(WORKER_ANNOUNCE);
	PG_RETURN_FULLTRANSACTIONID(GetTopFullTransactionId());
}

/* The state row; a statement of its own so the round's snapshot is new. */
static const char *const STATE_SQL =
"SELECT snapshot::text, pending::text, after_id, since FROM workqueue.announce_state FOR UPDATE";

/*
 * $1 the stored snapshot, $2 the pending one (NULL: take a new one), $3 the
 * last event id announced between the two, $4 the batch size, $5 the most
 * "created" and "synced" events of one transaction and queue announced one
 * by one: above that they get one summary (a bulk load, a sync of
 * thousands), at the place of the first of them; $6 the time the state row
 * was made: events written before (brought by a restored dump, with another
 * cluster's transaction ids) are not announced.  Returns the snapshot
 * announced up to, the number of notifications sent and the last event id
 * they cover.
 */
static const char *const ROUND_SQL =
"WITH w AS MATERIALIZED ("
"  SELECT $1::pg_catalog.pg_snapshot AS old,"
"         coalesce($2::pg_catalog.pg_snapshot, pg_catalog.pg_current_snapshot()) AS new"
"), win AS MATERIALIZED ("
"  SELECT e.id, e.tx, e.queue, e.item_id, e.kind, e.to_step,"
"         EXISTS (SELECT FROM workqueue.item i"
"                  WHERE i.queue = e.queue AND i.id = e.item_id AND i.scope <> '{}') AS hidden"
"    FROM workqueue.item_event e, w"
"   WHERE e.tx >= pg_catalog.pg_snapshot_xmin(w.old) AND e.tx < pg_catalog.pg_snapshot_xmax(w.new)"
"     AND NOT pg_catalog.pg_visible_in_snapshot(e.tx, w.old)"
"     AND pg_catalog.pg_visible_in_snapshot(e.tx, w.new)"
"     AND e.at >= $6"
"), bulk AS MATERIALIZED ("
"  SELECT tx, queue, hidden, min(id) AS id, count(*) FILTER (WHERE kind = 'created') AS inserted,"
"         count(*) FILTER (WHERE kind = 'synced') AS updated"
"    FROM win WHERE kind IN ('created', 'synced')"
"   GROUP BY tx, queue, hidden HAVING count(*) > $5"
"), out AS ("
"  SELECT win.id, CASE WHEN win.hidden THEN pg_catalog.json_build_object('event', win.id)"
"                   ELSE pg_catalog.json_build_object('item', win.item_id, 'queue', win.queue, 'kind', win.kind,"
"                                                     'event', win.id, 'step', win.to_step) END::text AS payload"
"    FROM win"
"   WHERE win.id > $3"
"     AND NOT (win.kind IN ('created', 'synced')"
"              AND EXISTS (SELECT FROM bulk b"
"                           WHERE b.tx = win.tx AND b.queue = win.queue AND b.hidden = win.hidden))"
"  UNION ALL"
"  SELECT b.id, CASE WHEN b.hidden THEN pg_catalog.format('{\"event\": %s, \"bulk\": true}', b.id)"
"              ELSE pg_catalog.format('{\"queue\": %s, \"kind\": \"synced\", \"inserted\": %s, \"updated\": %s, \"bulk\": true}',"
"                                     pg_catalog.to_json(b.queue), b.inserted, b.updated) END"
"    FROM bulk b WHERE b.id > $3"
"   ORDER BY 1 LIMIT $4"
")"
" SELECT (SELECT new::text FROM w), count(pg_catalog.pg_notify('workqueue', o.payload)), coalesce(max(o.id), 0)"
"   FROM (SELECT * FROM out ORDER BY id) o";

/* $1 the snapshot, $2 pending (NULL: done), $3 the last id, $4 events sent */
static const char *const STORE_SQL =
"UPDATE workqueue.announce_state"
"   SET snapshot = CASE WHEN $2 IS NULL THEN $1::pg_catalog.pg_snapshot ELSE snapshot END,"
"       pending = $2::pg_catalog.pg_snapshot, after_id = $3,"
"       announced_at = pg_catalog.now(), events = events + $4";

static SPIPlanPtr state_plan;
static SPIPlanPtr round_plan;
static SPIPlanPtr store_plan;

static char *
TextOrNull(int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? NULL : TextDatumGetCString(d);
}

/* One round; returns the number of events announced (0: none were due). */
static int64
AnnounceRound(bool *more)
{
	Oid			round_types[6] = {TEXTOID, TEXTOID, INT8OID, INT4OID, INT4OID, TIMESTAMPTZOID};
	Oid			store_types[4] = {TEXTOID, TEXTOID, INT8OID, INT8OID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Datum		since;
	char	   *old;
	char	   *pending;
	char	   *new;
	bool		isnull;
	int64		after_id;
	int64		n;
	int64		last_id;

	*more = false;
	if (SPI_execute_plan(WqPlan(&state_plan, STATE_SQL, 0, NULL), NULL, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read workqueue.announce_state");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("workqueue.announce_state has %d rows, not 1", (int) SPI_processed),
				 errhint("Put the row back with: INSERT INTO workqueue.announce_state DEFAULT VALUES;")));
	old = TextOrNull(1, &isnull);
	pending = TextOrNull(2, &isnull);
	after_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	since = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);

	args[0] = CStringGetTextDatum(old);
	if (pending)
		args[1] = CStringGetTextDatum(pending);
	else
		nulls[1] = 'n';
	args[2] = Int64GetDatum(after_id);
	args[3] = Int32GetDatum(ANNOUNCE_BATCH);
	args[4] = Int32GetDatum(ANNOUNCE_BULK);
	args[5] = since;
	if (SPI_execute_plan(WqPlan(&round_plan, ROUND_SQL, 6, round_types), args, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not announce events");
	new = TextOrNull(1, &isnull);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	last_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));

	if (n == 0 && pending == NULL)
		return 0;				/* nothing new: keep the stored snapshot */

	args[0] = CStringGetTextDatum(new);
	nulls[1] = ' ';
	if (n == ANNOUNCE_BATCH)
	{
		/* more may follow between the same two snapshots */
		args[1] = CStringGetTextDatum(new);
		args[2] = Int64GetDatum(last_id);
		*more = true;
	}
	else
	{
		nulls[1] = 'n';
		args[2] = Int64GetDatum(0);
	}
	args[3] = Int64GetDatum(n);
	if (SPI_execute_plan(WqPlan(&store_plan, STORE_SQL, 4, store_types), args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the announced snapshot");
	return n;
}

/*
 * The announce worker's loop: a round whenever its latch is set (a
 * transaction that wrote events committed) or a second has passed.  An
 * error (the notification queue is full, say) is logged and the round is
 * tried again a second later; nothing is lost meanwhile.
 */
void
AnnounceWorkerLoop(void)
{
	MemoryContext roundcxt = AllocSetContextCreate(TopMemoryContext, "workqueue announce round",
												   ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		wait_ms = ANNOUNCE_IDLE_MS;
		bool		more = false;

		MemoryContextReset(roundcxt);
		MemoryContextSwitchTo(roundcxt);
		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();
		ResetLatch(MyLatch);

		if (!OidIsValid(WorkerExtensionOid("announce_state")))
		{
			WorkerSlotTouch();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000L, PG_WAIT_EXTENSION);
			continue;
		}

		PG_TRY();
		{
			int64		n;

			WorkerTxBegin("workqueue: announcing events");
			n = AnnounceRound(&more);
			WorkerTxCommit(roundcxt);
			WorkerSlotCountJobs((int) n);
			if (n > 0)
				wait_ms = more ? 0 : ANNOUNCE_PAUSE_MS;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(roundcxt);
			EmitErrorReport();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		PG_END_TRY();
		WorkerSlotTouch();

		if (wait_ms == ANNOUNCE_PAUSE_MS)
		{
			/* let commits gather before the next round */
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
			continue;
		}
		if (wait_ms > 0)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
	}
}
