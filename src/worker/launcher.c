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
 * A database that another session needs to itself -- DROP DATABASE, ALTER
 * DATABASE RENAME or SET TABLESPACE, CREATE DATABASE with it as template
 * all lock the database object and then wait at most 5 seconds for every
 * other session to leave -- gets its workers stopped and none started while
 * that lock is wanted.  The launcher notices within a second by trying the
 * lock a new connection would take, without waiting for it.
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
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "core/srf.h"
#include "worker/launcher.h"
#include "core/workqueue.h"

#define WORKER_RESTART_MS 5000

WorkqueueShared *WqShared = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static WqShmemRequestFn prev_shmem_request_hook = NULL;

static void
WorkqueueShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
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
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared memory hooks; called from _PG_init. */
void
WorkqueueShmemInit(void)
{
	WqShmemRequestAt(WorkqueueShmemRequest, &prev_shmem_request_hook);
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

const char *const WorkerKindNames[WORKER_KINDS] = {"sync", "fetch", "announce"};

static bool wake_pending[WORKER_KINDS];
static bool wake_callback_registered = false;

static void
WakeAtCommit(XactEvent event, void *arg)
{
	bool		woke = false;

	for (int k = 0; k < WORKER_KINDS; k++)
	{
		if (!wake_pending[k])
			continue;
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		{
			wake_pending[k] = false;
			WorkqueueWakeWorker(MyDatabaseId, (WorkerKind) k);
			woke = true;
		}
		else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
			wake_pending[k] = false;
	}
	if (woke && workqueue_test_commit_delay_ms > 0)
		pg_usleep(workqueue_test_commit_delay_ms * 1000L);	/* tests only: see guc.c */
}

/* Wakes this database's worker of a kind when the transaction commits. */
void
WorkqueueWakeAtCommit(WorkerKind kind)
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
	TupleDesc	desc;
	Tuplestorestate *store = WqMaterializedResult(fcinfo, &desc);
	WorkerSlot	copy[WQ_MAX_SLOTS];

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
		values[1] = CStringGetTextDatum(WorkerKindNames[copy[i].kind]);
		values[2] = Int32GetDatum(copy[i].pid);
		values[3] = TimestampTzGetDatum(copy[i].started_at);
		values[4] = TimestampTzGetDatum(copy[i].last_loop_at);
		values[5] = Int64GetDatum(copy[i].jobs_done);
		values[6] = Int32GetDatum(copy[i].in_flight);
		tuplestore_putvalues(store, desc, values, nulls);
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
	WorkqueueWakeAtCommit(WORKER_SYNC);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(workqueue_wake_fetch);

/* SQL: workqueue._wake_fetch() -- the same for the fetch worker. */
Datum
workqueue_wake_fetch(PG_FUNCTION_ARGS)
{
	WorkqueueWakeAtCommit(WORKER_FETCH);
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
 * Does another session want the database to itself?  DROP DATABASE and the
 * other commands that need a database without sessions hold a lock on it
 * that conflicts with the RowExclusiveLock every new connection takes (and
 * they wait for sessions to leave while holding it).  Tries that lock
 * without waiting; the caller holds a transaction.
 */
static bool
DatabaseWantedAlone(Oid dboid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, dboid, 0);
	if (LockAcquire(&tag, RowExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, false);
	return false;
}

/*
 * For each name, the database's OID if it exists, accepts connections and
 * is not wanted alone by another session (see DatabaseWantedAlone), else
 * InvalidOid; *busy[i] says whether it was wanted alone.  The launcher is
 * connected to no database, so it scans the shared catalog pg_database as
 * autovacuum's launcher does.
 */
static void
LookupDatabases(char **names, int n, Oid *oids, bool *busy)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	for (int i = 0; i < n; i++)
	{
		oids[i] = InvalidOid;
		busy[i] = false;
	}
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		for (int i = 0; i < n; i++)
			if (strcmp(NameStr(db->datname), names[i]) == 0 && db->datallowconn)
				oids[i] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	for (int i = 0; i < n; i++)
		if (OidIsValid(oids[i]) && DatabaseWantedAlone(oids[i]))
		{
			busy[i] = true;
			oids[i] = InvalidOid;
		}
	CommitTransactionCommand();
}

static BackgroundWorkerHandle *
StartDatabaseWorker(int slotno, const char *dbname)
{
	const char *kind = WorkerKindNames[slotno % WORKER_KINDS];

	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "workqueue");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "WorkqueueWorkerMain");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "workqueue %s worker for database %s", kind, dbname);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "workqueue %s worker", kind);
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

/*
 * The launcher's loop: once a second (or when its latch is set) it stops
 * the workers that should not run -- their database left
 * workqueue.databases or another session wants it alone -- and starts the
 * missing ones.  A slot (index * WORKER_KINDS + kind) remembers the
 * database it was started for, so that a reordered or shortened list never
 * leaves two workers of one kind serving one database.
 */
/* the launcher's workers; stopped with it (LauncherExit) */
static BackgroundWorkerHandle *handles[WQ_MAX_SLOTS];

/*
 * The launcher is going away (pg_terminate_backend, an error): its workers
 * go too, or the next launcher, which cannot know them, would start a
 * second worker of each kind for every database.
 */
static void
LauncherExit(int code, Datum arg)
{
	for (int slot = 0; slot < WQ_MAX_SLOTS; slot++)
		if (handles[slot] != NULL)
			TerminateBackgroundWorker(handles[slot]);
}

void
WorkqueueLauncherMain(Datum arg)
{
	TimestampTz last_start[WQ_MAX_SLOTS] = {0};
	char		slot_db[WQ_MAX_SLOTS][NAMEDATALEN];
	MemoryContext loopcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("workqueue launcher");

	before_shmem_exit(LauncherExit, (Datum) 0);

	memset(slot_db, 0, sizeof(slot_db));
	loopcxt = AllocSetContextCreate(TopMemoryContext, "workqueue launcher loop", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		List	   *dbs;
		ListCell   *lc;
		char	   *names[WQ_MAX_DATABASES];
		Oid			oids[WQ_MAX_DATABASES];
		bool		busy[WQ_MAX_DATABASES];
		bool		running[WQ_MAX_SLOTS];
		bool		stopped[WQ_MAX_DATABASES] = {0};
		int			n = 0;

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
			if (n < WQ_MAX_DATABASES)
				names[n++] = (char *) lfirst(lc);
		LookupDatabases(names, n, oids, busy);

		/* stop what should not run; SIGTERM ends a worker within ~100 ms */
		for (int slot = 0; slot < WQ_MAX_SLOTS; slot++)
		{
			int			i = slot / WORKER_KINDS;
			pid_t		pid;

			running[slot] = handles[slot] != NULL &&
				GetBackgroundWorkerPid(handles[slot], &pid) != BGWH_STOPPED;
			if (!running[slot])
				continue;
			if (i >= n || strcmp(slot_db[slot], names[i]) != 0)
				TerminateBackgroundWorker(handles[slot]);
			else if (busy[i])
			{
				TerminateBackgroundWorker(handles[slot]);
				stopped[i] = true;
			}
		}
		for (int i = 0; i < n; i++)
			if (stopped[i])
				ereport(LOG,
						(errmsg("workqueue: stopping the workers of database \"%s\"", names[i]),
						 errdetail("Another session needs the database to itself (DROP DATABASE, ALTER DATABASE, or CREATE DATABASE with it as template)."),
						 errhint("The workers start again once that session is done, if the database still exists.")));

		/* start the missing ones, unless a worker of that kind and database still runs */
		for (int i = 0; i < n; i++)
		{
			for (int k = 0; k < WORKER_KINDS; k++)
			{
				int			slot = i * WORKER_KINDS + k;
				bool		other = false;
				MemoryContext old;

				if (running[slot] || !OidIsValid(oids[i]) ||
					!TimestampDifferenceExceeds(last_start[slot], GetCurrentTimestamp(), WORKER_RESTART_MS))
					continue;
				for (int s2 = k; s2 < WQ_MAX_SLOTS; s2 += WORKER_KINDS)
					if (s2 != slot && running[s2] && strcmp(slot_db[s2], names[i]) == 0)
						other = true;
				if (other)
					continue;
				old = MemoryContextSwitchTo(TopMemoryContext);
				if (handles[slot])
					pfree(handles[slot]);
				handles[slot] = StartDatabaseWorker(slot, names[i]);
				strlcpy(slot_db[slot], names[i], NAMEDATALEN);
				last_start[slot] = GetCurrentTimestamp();
				MemoryContextSwitchTo(old);
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
