/*
 * launcher.c
 *		Shared memory, the launcher background worker, and waking workers.
 *
 * The launcher is registered at shared_preload_libraries time.  It connects
 * to no database (shared catalogs only), reads workqueue.databases and keeps
 * one dynamic background worker running for each of those databases that
 * exists, starting it again (no sooner than WORKER_RESTART_MS after its
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
WorkqueueWakeWorker(Oid dboid)
{
	int			procno = -1;

	if (WqShared == NULL)
		return;
	SpinLockAcquire(&WqShared->mutex);
	for (int i = 0; i < WQ_MAX_DATABASES; i++)
		if (WqShared->slots[i].dboid == dboid && WqShared->slots[i].pid != 0)
			procno = WqShared->slots[i].procno;
	SpinLockRelease(&WqShared->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

static bool wake_pending = false;
static bool wake_callback_registered = false;

static void
WakeAtCommit(XactEvent event, void *arg)
{
	if (!wake_pending)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		wake_pending = false;
		WorkqueueWakeWorker(MyDatabaseId);
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		wake_pending = false;
}

PG_FUNCTION_INFO_V1(workqueue_wake);

/*
 * SQL: workqueue._wake() -- wake this database's worker when the current
 * transaction commits.  Repeated calls in one transaction wake it once.
 */
Datum
workqueue_wake(PG_FUNCTION_ARGS)
{
	if (!wake_callback_registered)
	{
		RegisterXactCallback(WakeAtCommit, NULL);
		wake_callback_registered = true;
	}
	wake_pending = true;
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
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "workqueue");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "WorkqueueWorkerMain");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "workqueue worker for database %s", dbname);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "workqueue worker");
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
	BackgroundWorkerHandle *handles[WQ_MAX_DATABASES] = {0};
	TimestampTz last_start[WQ_MAX_DATABASES] = {0};
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
			pid_t		pid;
			bool		running;

			if (i >= WQ_MAX_DATABASES)
				break;
			running = handles[i] != NULL &&
				GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED;
			if (!running &&
				TimestampDifferenceExceeds(last_start[i], GetCurrentTimestamp(), WORKER_RESTART_MS) &&
				DatabaseExists(name))
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				if (handles[i])
					pfree(handles[i]);
				handles[i] = StartDatabaseWorker(i, name);
				last_start[i] = GetCurrentTimestamp();
				MemoryContextSwitchTo(old);
			}
			i++;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
