/*
 * launcher.c
 *		Shared memory, the launcher background worker, and waking workers.
 *
 * The launcher is registered at shared_preload_libraries time.  It connects
 * to no database (shared catalogs only), reads workqueue.databases and keeps
 * two dynamic background workers running for each of those databases that
 * exists -- a sync worker that executes sync runs, and a worker for the
 * fetch queue and timers, which a long sync never holds up -- starting it again (no sooner than WORKER_RESTART_MS after its
 * previous start) whenever it stops: after pg_terminate_backend, an error or
 * a crash it is back within seconds.
 *
 * Backends wake the worker of their database by setting its latch when a
 * transaction that queued work commits (WorkqueueWakeWorker via a
 * transaction callback), so workers sleep instead of polling.
 *
 * Locking: WqShared->mutex (a spinlock) protects the slots; it is held only
 * to copy a few fields.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "utils/snapmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "worker.h"
#include "workqueue.h"

#define WORKER_RESTART_MS 5000

WorkqueueShared *WqShared = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static void
WorkqueueShmemRequest(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkqueueShared)));
}

static void
WorkqueueShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	WqShared = ShmemInitStruct("workqueue", sizeof(WorkqueueShared), &found);
	if (!found)
	{
		memset(WqShared, 0, sizeof(WorkqueueShared));
		SpinLockInit(&WqShared->mutex);
		WqShared->launcher_procno = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared memory hooks; called from _PG_init. */
void
WorkqueueShmemInit(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = WorkqueueShmemRequest;
#else
	WorkqueueShmemRequest();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = WorkqueueShmemStartup;
}

void
WorkqueueRegisterLauncher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "workqueue");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "WorkqueueLauncherMain");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "workqueue launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "workqueue launcher");
	RegisterBackgroundWorker(&bgw);
}

/*
 * Sets the latch of the worker serving a database, if one runs.
 */
void
WorkqueueWakeWorker(Oid dboid, WorkerKind kind)
{
	int			procno = -1;

	if (WqShared == NULL)
		return;
	SpinLockAcquire(&WqShared->mutex);
	for (int i = 0; i < WQ_MAX_SLOTS; i++)
		if (WqShared->slots[i].dboid == dboid && WqShared->slots[i].kind == kind &&
			WqShared->slots[i].pid != 0)
			procno = WqShared->slots[i].procno;
	SpinLockRelease(&WqShared->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

static bool wake_pending[WORKER_KINDS];
static bool wake_callback_registered = false;

static void
WakeAtCommit(XactEvent event, void *arg)
{
	for (int k = 0; k < WORKER_KINDS; k++)
	{
		if (!wake_pending[k])
			continue;
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		{
			wake_pending[k] = false;
			WorkqueueWakeWorker(MyDatabaseId, (WorkerKind) k);
		}
		else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
			wake_pending[k] = false;
	}
}

/* Wakes this database's worker of a kind when the transaction commits. */
static void
WakeAtCommitOf(WorkerKind kind)
{
	if (!wake_callback_registered)
	{
		RegisterXactCallback(WakeAtCommit, NULL);
		wake_callback_registered = true;
	}
	wake_pending[kind] = true;
}

PG_FUNCTION_INFO_V1(workqueue_workers);

/*
 * SQL: workqueue._workers() -- the workers of the cluster, from shared
 * memory.
 */
Datum
workqueue_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WorkerSlot	copy[WQ_MAX_SLOTS];

	InitMaterializedSRF(fcinfo, 0);
	if (WqShared == NULL)
		return (Datum) 0;
	SpinLockAcquire(&WqShared->mutex);
	memcpy(copy, WqShared->slots, sizeof(copy));
	SpinLockRelease(&WqShared->mutex);
	for (int i = 0; i < WQ_MAX_SLOTS; i++)
	{
		Datum		values[7];
		bool		nulls[7] = {0};

		if (copy[i].pid == 0)
			continue;
		values[0] = CStringGetTextDatum(copy[i].dbname);
		values[1] = CStringGetTextDatum(copy[i].kind == WORKER_SYNC ? "sync" : "fetch");
		values[2] = Int32GetDatum(copy[i].pid);
		values[3] = TimestampTzGetDatum(copy[i].started_at);
		values[4] = TimestampTzGetDatum(copy[i].last_loop_at);
		values[5] = Int64GetDatum(copy[i].jobs_done);
		values[6] = Int32GetDatum(copy[i].in_flight);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(workqueue_wake);

/*
 * SQL: workqueue._wake() -- wake this database's sync worker when the
 * current transaction commits.  Repeated calls in one transaction wake it
 * once.
 */
Datum
workqueue_wake(PG_FUNCTION_ARGS)
{
	WakeAtCommitOf(WORKER_SYNC);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(workqueue_wake_fetch);

/* SQL: workqueue._wake_fetch() -- the same for the fetch worker. */
Datum
workqueue_wake_fetch(PG_FUNCTION_ARGS)
{
	WakeAtCommitOf(WORKER_FETCH);
	PG_RETURN_VOID();
}

/* Splits workqueue.databases (or, if empty, workqueue.database_name). */
static List *
ConfiguredDatabases(void)
{
	char	   *raw;
	List	   *names = NIL;

	if (workqueue_databases != NULL && workqueue_databases[0] != '\0')
		raw = pstrdup(workqueue_databases);
	else
		raw = pstrdup(workqueue_database_name ? workqueue_database_name : "postgres");
	if (!SplitIdentifierString(raw, ',', &names))
	{
		ereport(LOG,
				(errmsg("workqueue: invalid list syntax in \"workqueue.databases\"")));
		return NIL;
	}
	return names;
}

/*
 * Does a database of this name exist (and accept connections)?  The
 * launcher is connected to no database, so it scans the shared catalog
 * pg_database as autovacuum's launcher does.
 */
static bool
DatabaseExists(const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0 && db->datallowconn)
			found = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

static BackgroundWorkerHandle *
StartDatabaseWorker(int slotno, const char *dbname)
{
	const char *kind = slotno % WORKER_KINDS == WORKER_SYNC ? "sync worker" : "worker";

	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "workqueue");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "WorkqueueWorkerMain");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "workqueue %s for database %s", kind, dbname);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "workqueue %s", kind);
	bgw.bgw_main_arg = Int32GetDatum(slotno);
	strlcpy(bgw.bgw_extra, dbname, BGW_EXTRALEN);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
	{
		ereport(WARNING,
				(errmsg("workqueue: could not start the worker for database \"%s\"", dbname),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

void
WorkqueueLauncherMain(Datum arg)
{
	BackgroundWorkerHandle *handles[WQ_MAX_SLOTS] = {0};
	TimestampTz last_start[WQ_MAX_SLOTS] = {0};
	MemoryContext loopcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("workqueue launcher");

	SpinLockAcquire(&WqShared->mutex);
	WqShared->launcher_procno = MyProc->pgprocno;
	SpinLockRelease(&WqShared->mutex);

	loopcxt = AllocSetContextCreate(TopMemoryContext, "workqueue launcher loop", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		List	   *dbs;
		ListCell   *lc;
		int			i = 0;

		MemoryContextReset(loopcxt);
		MemoryContextSwitchTo(loopcxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dbs = ConfiguredDatabases();
		foreach(lc, dbs)
		{
			char	   *name = (char *) lfirst(lc);
			bool		exists = false;
			bool		checked = false;

			if (i >= WQ_MAX_DATABASES)
				break;
			for (int k = 0; k < WORKER_KINDS; k++)
			{
				int			slot = i * WORKER_KINDS + k;
				pid_t		pid;
				bool		running;

				running = handles[slot] != NULL &&
					GetBackgroundWorkerPid(handles[slot], &pid) != BGWH_STOPPED;
				if (running ||
					!TimestampDifferenceExceeds(last_start[slot], GetCurrentTimestamp(), WORKER_RESTART_MS))
					continue;
				if (!checked)
				{
					exists = DatabaseExists(name);
					checked = true;
				}
				if (!exists)
					break;
				{
					MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

					if (handles[slot])
						pfree(handles[slot]);
					handles[slot] = StartDatabaseWorker(slot, name);
					last_start[slot] = GetCurrentTimestamp();
					MemoryContextSwitchTo(old);
				}
			}
			i++;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
