/*
 * xact.c
 *		The short transactions of the background workers.
 *
 * Both loops -- the sync worker's (worker.c, sync.c) and the fetch
 * worker's (fetch.c) -- do every piece of work in a transaction of its own,
 * begun and committed here, and hold none across network I/O.  Between
 * transactions they check that the extension still exists and reread the
 * configuration after a SIGHUP.  A transaction that loses a lock conflict
 * (a deadlock, a serialization failure) is rolled back and run again
 * (WorkerTxRetry) rather than recorded as the outcome of the work.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "core/workqueue.h"
#include "worker/xact.h"

/*
 * Is this node a Citus worker (its group is not the coordinator's, 0)?
 * Its copy of the extension's tables holds no items -- they are in shards,
 * written through the coordinator (doc/scale-out.md) -- so the workers run
 * on the coordinator only.  Needs a transaction.
 */
static bool
CitusWorkerNode(void)
{
	bool		worker = false;

	if (!OidIsValid(get_relname_relid("pg_dist_local_group", PG_CATALOG_NAMESPACE)))
		return false;			/* no Citus here */
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_dist_local_group WHERE groupid > 0", true, 1) == SPI_OK_SELECT)
		worker = SPI_processed > 0;
	SPI_finish();
	PopActiveSnapshot();
	return worker;
}

/*
 * The OID of the extension if it is installed here at a version that has
 * this table, else InvalidOid -- also on a Citus worker node, where the
 * background workers idle as without the extension (CitusWorkerNode).  A new OID means the extension was dropped
 * and created again.  Looks in a transaction of its own, and returns in the
 * caller's memory context (committing switches to TopMemoryContext).
 */
Oid
WorkerExtensionOid(const char *table)
{
	MemoryContext back = CurrentMemoryContext;
	Oid			ext;
	Oid			nsp;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ext = get_extension_oid("workqueue", true);
	if (OidIsValid(ext))
	{
		nsp = get_namespace_oid("workqueue", true);
		if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid(table, nsp)) || CitusWorkerNode())
			ext = InvalidOid;
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(back);
	return ext;
}

/*
 * The installed version of the extension (pg_extension.extversion), or NULL
 * if there is none, in the caller's memory context.  ALTER EXTENSION ...
 * UPDATE keeps the extension's OID and changes this.
 */
char *
WorkerExtensionVersion(void)
{
	MemoryContext back = CurrentMemoryContext;
	char	   *version = NULL;

	WorkerTxBegin("workqueue: reading the extension's version");
	if (SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'workqueue'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			version = MemoryContextStrdup(back, v);
	}
	WorkerTxCommit(back);
	return version;
}

/*
 * The workers' gate: an advisory lock of this database (the two-key form
 * of pg_advisory_xact_lock, keys 'WQUE' and 1) that every transaction of the
 * background workers holds in share mode, taken before anything else, and
 * that workqueue._hold_workers() takes in exclusive mode for the rest of the
 * caller's transaction.  workqueue.distribute() and the table changes of an
 * update of a distributed install (_cluster_command) take it first: they
 * change every table of the schema, one after another, on every node, and a
 * worker's transaction that had read one of them and then waited for the
 * next made a cycle with them -- the distributed deadlocks of
 * doc/scale-out.md.  With the gate, a worker's transaction either ends
 * before they begin or begins after they commit.
 */
#define WQ_GATE_KEY1	0x57515545	/* 'WQUE' */
#define WQ_GATE_KEY2	1

static void
LockGate(LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, WQ_GATE_KEY1, WQ_GATE_KEY2, 2);
	(void) LockAcquire(&tag, mode, false, false);
}

PG_FUNCTION_INFO_V1(workqueue_hold_workers);

/* workqueue._hold_workers(): keeps the background workers out until commit. */
Datum
workqueue_hold_workers(PG_FUNCTION_ARGS)
{
	LockGate(ExclusiveLock);
	PG_RETURN_VOID();
}

/*
 * Starts a transaction for SPI work, in worker_spi's order.
 *
 * The workers run with synchronous_commit off (worker.c): a crash may lose
 * their last commits, all of each or nothing.  On a distributed install that
 * no longer holds: Citus sends COMMIT PREPARED to the worker nodes once the
 * coordinator's commit record is written, not flushed, so a crash of the
 * coordinator kept a transaction's rows on the worker nodes and lost its
 * part on the coordinator -- a sync batch's items without the run's
 * counters in the coordinator's copy of sync_run (the reference table's
 * copies then differed), and the coordinator's sequence handed out again
 * ids that rows on the shards had taken (duplicate key on item_pkey).  So
 * there the commit waits for the flush (synchronous_commit on, for the
 * transaction), as Citus' two-phase commit assumes.  (The mode is the
 * cached one: on one node, no statement but its first read per backend.)
 */
void
WorkerTxBegin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, activity);
	LockGate(ShareLock);		/* (waits while _hold_workers() holds it) */
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (unlikely(WqDistributed()))
		(void) set_config_option("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/* Commits it and switches back to memory context back. */
void
WorkerTxCommit(MemoryContext back)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(back);
}

/*
 * In the PG_CATCH of a worker's transaction: takes the error (copied into
 * memory context back), rolls the transaction back and reports the worker
 * idle.  Returns in back; the caller logs the error and frees it.
 */
ErrorData *
WorkerTxAbort(MemoryContext back)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(back);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(back);
	return edata;
}

/*
 * Is an error with this SQLSTATE a lost lock conflict, which the same work
 * may well not meet when run again: a deadlock (40P01), a serialization
 * failure (40001) or a lock that could not be taken (55P03)?
 */
bool
WorkerErrorIsRetryable(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/*
 * One attempt of WorkerTxRetry: NULL if body committed, else the retryable
 * error it failed with (in memory context back), its transaction rolled back.
 */
static ErrorData *
TryTransaction(const char *activity, WorkerTxBody body, void *arg, MemoryContext back)
{
	ErrorData  *volatile failed = NULL;

	PG_TRY();
	{
		WorkerTxBegin(activity);
		body(arg);
		WorkerTxCommit(back);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(back);
		edata = CopyErrorData();
		if (!WorkerErrorIsRetryable(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(back);
		failed = edata;
	}
	PG_END_TRY();
	return failed;
}

/*
 * Runs body(arg) in a transaction of its own (WorkerTxBegin, then
 * WorkerTxCommit) and returns NULL once it has committed.  When body fails
 * with a retryable error (WorkerErrorIsRetryable), the transaction is rolled
 * back -- with every lock it took -- and body runs again in a new one after a
 * short backoff (10 ms, doubling, with jitter), at most attempts times in
 * all; after the last, the error is returned (allocated in the caller's
 * memory context) and nothing of body is left.  Any other error propagates
 * unchanged.  body must be repeatable: it starts from its arguments each
 * time, and keeps nothing from an attempt that was rolled back.
 */
ErrorData *
WorkerTxRetry(const char *activity, WorkerTxBody body, void *arg, int attempts)
{
	MemoryContext back = CurrentMemoryContext;

	for (int attempt = 1;; attempt++)
	{
		ErrorData  *edata = TryTransaction(activity, body, arg, back);
		long		ms;

		if (edata == NULL || attempt >= attempts)
			return edata;

		/* the other transaction usually needs a few milliseconds more */
		ms = 10L << Min(attempt - 1, 6);
		ms += (long) (pg_prng_double(&pg_global_prng_state) * ms);
		ereport(LOG,
				(errmsg("%s: %s; trying again", activity, edata->message),
				 errdetail("Attempt %d of %d was rolled back; the next one starts in %ld ms.",
						   attempt, attempts, ms)));
		FreeErrorData(edata);
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Rereads the configuration files if a SIGHUP arrived.  Called at the top
 * of the loops and, in the sync worker, before each HTTP request of a run,
 * so that a reloaded setting (workqueue.allowed_hosts) applies to the next
 * request.  Never inside a transaction.
 */
void
WorkerReloadConfig(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}
