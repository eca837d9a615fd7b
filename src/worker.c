/*
 * worker.c
 *		The per-database background worker's main loop.
 *
 * A worker registers itself in its shared memory slot, waits until the
 * extension exists in its database, recovers sync runs a previous worker
 * left "running", then executes queued sync runs one at a time.  Between
 * runs it sleeps on its latch (set by backends when they queue work) with a
 * timeout as a fallback.
 *
 * Every piece of work happens in short transactions; no transaction,
 * snapshot or row lock is held across network I/O (see sync.c).  An ERROR
 * while executing a run is caught here: the transaction is aborted and the
 * run marked failed with the message, and the loop goes on.  FATAL (SIGTERM,
 * pg_terminate_backend) ends the process; the launcher starts it again.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "worker.h"
#include "workqueue.h"

static int	my_slot = -1;

static void
ReleaseSlot(int code, Datum arg)
{
	if (my_slot < 0 || WqShared == NULL)
		return;
	SpinLockAcquire(&WqShared->mutex);
	if (WqShared->slots[my_slot].pid == MyProcPid)
	{
		WqShared->slots[my_slot].pid = 0;
		WqShared->slots[my_slot].dboid = InvalidOid;
	}
	SpinLockRelease(&WqShared->mutex);
}

/* Is the extension installed here, at a version that has this table? */
bool
WorkerExtensionReady(const char *table)
{
	bool		ready = false;
	Oid			nsp;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (OidIsValid(get_extension_oid("workqueue", true)))
	{
		nsp = get_namespace_oid("workqueue", true);
		ready = OidIsValid(nsp) && OidIsValid(get_relname_relid(table, nsp));
	}
	CommitTransactionCommand();
	return ready;
}

/* Starts a transaction for SPI work, in worker_spi's order. */
void
WorkerTxBegin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
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

/* Publishes this worker's transfers in flight (workqueue.worker_status). */
void
WorkerSetInFlight(int n)
{
	SpinLockAcquire(&WqShared->mutex);
	WqShared->slots[my_slot].in_flight = n;
	WqShared->slots[my_slot].last_loop_at = GetCurrentTimestamp();
	SpinLockRelease(&WqShared->mutex);
}

void
WorkerCountJobs(int n)
{
	SpinLockAcquire(&WqShared->mutex);
	WqShared->slots[my_slot].jobs_done += n;
	SpinLockRelease(&WqShared->mutex);
}

static void
ExecuteRunSafely(int64 run_id)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		SyncRunExecute(run_id);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		SyncRunFail(run_id, edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

void
WorkqueueWorkerMain(Datum arg)
{
	char		dbname[NAMEDATALEN];
	MemoryContext loopcxt;
	bool		recovered = false;

	my_slot = DatumGetInt32(arg);
	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("workqueue worker");

	/*
	 * A crash can lose the last few commits of a worker; that is safe: runs
	 * left "running" and fetches left "processing" are redone at start, and
	 * redoing writes nothing new.  Not waiting for each flush is what lets
	 * a worker finish thousands of fetches a second.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker runs as the bootstrap superuser; a search_path from ALTER
	 * DATABASE ... SET (which the database owner may set) must not decide
	 * what its unqualified functions and operators (=, now(), ...) are.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	SpinLockAcquire(&WqShared->mutex);
	WqShared->slots[my_slot].dboid = MyDatabaseId;
	WqShared->slots[my_slot].kind = (WorkerKind) (my_slot % WORKER_KINDS);
	WqShared->slots[my_slot].jobs_done = 0;
	WqShared->slots[my_slot].in_flight = 0;
	strlcpy(WqShared->slots[my_slot].dbname, dbname, NAMEDATALEN);
	WqShared->slots[my_slot].pid = MyProcPid;
	WqShared->slots[my_slot].procno = MyProc->pgprocno;
	WqShared->slots[my_slot].started_at = GetCurrentTimestamp();
	SpinLockRelease(&WqShared->mutex);
	before_shmem_exit(ReleaseSlot, (Datum) 0);

	ereport(LOG, (errmsg("workqueue %s worker started for database \"%s\"",
						 my_slot % WORKER_KINDS == WORKER_SYNC ? "sync" : "fetch", dbname)));
	if (my_slot % WORKER_KINDS == WORKER_FETCH)
		FetchWorkerLoop();		/* never returns */

	loopcxt = AllocSetContextCreate(TopMemoryContext, "workqueue worker loop", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		timeout = 10000L;

		MemoryContextReset(loopcxt);
		MemoryContextSwitchTo(loopcxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		SpinLockAcquire(&WqShared->mutex);
		WqShared->slots[my_slot].last_loop_at = GetCurrentTimestamp();
		SpinLockRelease(&WqShared->mutex);

		if (WorkerExtensionReady("sync_run"))
		{
			int64		run_id;

			if (!recovered)
			{
				SyncRecoverInterrupted();
				recovered = true;
			}
			run_id = SyncClaimNextRun();
			if (run_id > 0)
			{
				ExecuteRunSafely(run_id);
				WorkerCountJobs(1);
				continue;		/* look for more work at once */
			}
		}
		else
		{
			recovered = false;	/* recover again once it is (re)created */
			timeout = 5000L;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
