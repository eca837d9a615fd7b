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
 * Every piece of work happens in short transactions (xact.c); no transaction,
 * snapshot or row lock is held across network I/O (see sync.c).  An ERROR
 * while executing a run is caught here: the transaction is aborted and the
 * run marked failed with the message, and the loop goes on.  FATAL (SIGTERM,
 * pg_terminate_backend) ends the process; the launcher starts it again.
 *
 * A worker runs as the bootstrap superuser, so it never runs with the
 * search_path its database sets (ALTER DATABASE ... SET search_path): a
 * function there shadowing a built-in one would run with its rights.  It
 * uses "pg_catalog, pg_temp", like the extension's functions.
 *
 * The extension may be dropped (and created again) under a running worker:
 * it notices by the extension's OID, idles while there is none, and never
 * writes the outcome of work begun under one instance into the next.  An
 * update (ALTER EXTENSION ... UPDATE) keeps the OID: the worker goes on,
 * and runs again a run the update interrupted (ExecuteRunSafely).
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "fetch/fetch.h"
#include "queue/announce.h"
#include "sync/sync.h"
#include "worker/launcher.h"
#include "worker/slot.h"
#include "worker/worker.h"
#include "worker/xact.h"

/*
 * Executes a run; an ERROR fails it with the message -- unless the
 * extension was dropped meanwhile (ext: its OID when the run was taken),
 * when there is no run left to fail, or updated meanwhile (version: its
 * version then): a statement of the run that began before ALTER EXTENSION
 * ... UPDATE committed may go on after it and fail on what the update
 * dropped or changed (a plpgsql function of the old version calling a
 * dropped one).  The run is then queued again and runs from the start
 * under the new version; doing a run again writes nothing it wrote before.
 */
static void
ExecuteRunSafely(int64 run_id, Oid ext, const char *version)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		SyncRunExecute(run_id);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		edata = WorkerTxAbort(cxt);
		if (WorkerExtensionOid("sync_run") == ext)
		{
			char	   *now = WorkerExtensionVersion();

			if (version != NULL && now != NULL && strcmp(now, version) != 0)
			{
				ereport(LOG,
						(errmsg("workqueue sync run " INT64_FORMAT " was interrupted by the update of the extension from %s to %s; running it again",
								run_id, version, now),
						 errdetail("%s", edata->message)));
				SyncRecoverInterrupted();
			}
			else
				SyncRunFail(run_id, edata->message);
		}
		else
			ereport(LOG,
					(errmsg("workqueue sync run " INT64_FORMAT " ended: the extension was dropped", run_id),
					 errdetail("%s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

void
WorkqueueWorkerMain(Datum arg)
{
	int			slot = DatumGetInt32(arg);
	WorkerKind	kind = (WorkerKind) (slot % WORKER_KINDS);
	char		dbname[NAMEDATALEN];
	MemoryContext loopcxt;
	Oid			recovered = InvalidOid; /* the extension whose runs were recovered */

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
	 * a worker finish thousands of fetches a second.  (Not on a distributed
	 * install, where a commit is flushed: WorkerTxBegin, src/worker/xact.c.)
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker runs as the bootstrap superuser; a search_path from ALTER
	 * DATABASE ... SET (which the database owner may set) must not decide
	 * what its unqualified functions and operators (=, now(), ...) are.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	WorkerSlotAttach(slot, dbname);

	ereport(LOG, (errmsg("workqueue %s worker started for database \"%s\"",
						 WorkerKindNames[kind], dbname)));
	if (kind == WORKER_FETCH)
		FetchWorkerLoop();		/* never returns */
	if (kind == WORKER_ANNOUNCE)
		AnnounceWorkerLoop();	/* never returns */

	loopcxt = AllocSetContextCreate(TopMemoryContext, "workqueue worker loop", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		timeout = 10000L;
		Oid			ext;

		MemoryContextReset(loopcxt);
		MemoryContextSwitchTo(loopcxt);
		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();
		WorkerSlotTouch();

		ext = WorkerExtensionOid("sync_run");
		if (OidIsValid(ext))
		{
			int64		run_id;

			if (ext != recovered)
			{
				SyncRecoverInterrupted();
				recovered = ext;
			}
			run_id = SyncClaimNextRun();
			if (run_id > 0)
			{
				ExecuteRunSafely(run_id, ext, WorkerExtensionVersion());
				WorkerSlotCountJobs(1);
				continue;		/* look for more work at once */
			}
		}
		else
			timeout = 5000L;	/* recover again once it is created */

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
