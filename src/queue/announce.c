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
 *
 * On a distributed install (doc/scale-out.md, "Announcements") the events
 * are on the workers' shards, but their tx is still the coordinator's
 * transaction id (Citus evaluates the column's default, a volatile
 * function, on the coordinator) and the coordinator's snapshot still says
 * which transactions committed.  One more step is needed: a transaction
 * that wrote on two nodes commits in two phases, and Citus sends COMMIT
 * PREPARED to the workers after the coordinator's own commit, so for a
 * moment the coordinator's snapshot says committed while the worker's rows
 * are not visible yet -- a round read then would miss them and move past
 * them for good.  A round on Citus therefore takes its snapshot first and
 * then waits, for each transaction that committed since the stored one,
 * until that transaction has released its locks (the last thing a backend
 * does at commit, after Citus' COMMIT PREPARED), before it reads the events
 * (SettleCommits).  It also stores a new snapshot when nothing was
 * announced, so that the transactions to wait for are only those since
 * the last round.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/xid8.h"

#include "core/spi.h"
#include "core/workqueue.h"
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

/*
 * Citus: $1 the stored snapshot.  A new snapshot and the transactions that
 * ended between the two (visible in the new one, not in the stored one:
 * those in progress then, and those that began since).  Subtransactions'
 * ids are among them (a snapshot lists only top-level ones), and are told
 * apart by SettleCommits.
 */
static const char *const SETTLE_SQL =
"WITH s AS (SELECT $1::pg_catalog.pg_snapshot AS old, pg_catalog.pg_current_snapshot() AS new)"
" SELECT s.new::text,"
"        ARRAY(SELECT c.x::text::bigint"
"                FROM (SELECT pg_catalog.pg_snapshot_xip(s.old) AS x"
"                      UNION ALL"
"                      SELECT g::text::pg_catalog.xid8"
"                        FROM pg_catalog.generate_series(pg_catalog.pg_snapshot_xmax(s.old)::text::bigint,"
"                                                        pg_catalog.pg_snapshot_xmax(s.new)::text::bigint - 1) g) c"
"               WHERE pg_catalog.pg_visible_in_snapshot(c.x, s.new))"
"   FROM s";

static SPIPlanPtr state_plan;
static SPIPlanPtr round_plan;
static SPIPlanPtr store_plan;
static SPIPlanPtr settle_plan;

static char *
TextOrNull(int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Citus: takes a new snapshot and waits until every transaction that ended
 * between the stored snapshot and it has finished committing on every node
 * (see the head of this file); returns the new snapshot.  A transaction
 * holds the lock on its own id until after its commit callbacks, Citus'
 * COMMIT PREPARED among them; one that is still in progress (a
 * subtransaction's id whose parent runs on) is not waited for: its events,
 * if any, are not visible in the new snapshot.  The waits are short: only
 * for commits already decided.
 */
static char *
SettleCommits(const char *old)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	char	   *new;
	ArrayType  *xids;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;

	args[0] = CStringGetTextDatum(old);
	if (SPI_execute_plan(WqPlan(&settle_plan, SETTLE_SQL, 1, types), args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not take the snapshot to announce up to");
	new = TextOrNull(1, &isnull);
	xids = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	deconstruct_array(xids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
	{
		TransactionId xid = XidFromFullTransactionId(FullTransactionIdFromU64((uint64) DatumGetInt64(elems[i])));
		LOCKTAG		tag;

		if (elem_nulls[i] || !TransactionIdIsNormal(xid) || TransactionIdIsInProgress(xid))
			continue;
		SET_LOCKTAG_TRANSACTION(tag, xid);
		(void) LockAcquire(&tag, ShareLock, false, false);
		LockRelease(&tag, ShareLock, false);
	}
	return new;
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
	bool		distributed = WqDistributed();

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
	else if (distributed)
		args[1] = CStringGetTextDatum(SettleCommits(old));
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

	if (n == 0 && pending == NULL && (!distributed || strcmp(new, old) == 0))
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
