/*
 * worker.h
 *		Background workers: the launcher, the per-database workers and the
 *		shared memory through which backends wake them.
 */
#ifndef WORKQUEUE_WORKER_H
#define WORKQUEUE_WORKER_H

#include "postgres.h"

#include "storage/spin.h"

#define WQ_MAX_DATABASES 32

/* One slot per database worker; protected by WorkqueueShared->mutex. */
typedef struct WorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	char		dbname[NAMEDATALEN];
	pid_t		pid;			/* 0 while not running */
	int			procno;			/* pgprocno of the worker, to set its latch */
	TimestampTz started_at;
	TimestampTz last_loop_at;
	int64		runs_done;
} WorkerSlot;

typedef struct WorkqueueShared
{
	slock_t		mutex;
	int			launcher_procno;	/* -1 when no launcher */
	WorkerSlot	slots[WQ_MAX_DATABASES];
} WorkqueueShared;

extern WorkqueueShared *WqShared;

/* launcher.c */
extern void WorkqueueShmemInit(void);
extern void WorkqueueRegisterLauncher(void);
extern void WorkqueueWakeWorker(Oid dboid);
PGDLLEXPORT void WorkqueueLauncherMain(Datum arg);

/* worker.c */
PGDLLEXPORT void WorkqueueWorkerMain(Datum arg);

/* sync.c */
extern void SyncRunExecute(int64 run_id);
extern void SyncRecoverInterrupted(void);
extern int64 SyncClaimNextRun(void);
extern void SyncRunFail(int64 run_id, const char *message);

#endif							/* WORKQUEUE_WORKER_H */
