/*
 * launcher.h
 *		The launcher, and the shared memory through which it, the
 *		per-database workers and the backends that wake them meet.
 */
#ifndef WORKQUEUE_LAUNCHER_H
#define WORKQUEUE_LAUNCHER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/spin.h"

#define WQ_MAX_DATABASES 32

/* Each database gets three workers, one of each kind. */
typedef enum WorkerKind
{
	WORKER_SYNC = 0,			/* executes sync runs */
	WORKER_FETCH = 1,			/* fetch queue, lease expiry, timers */
	WORKER_ANNOUNCE = 2,		/* NOTIFY workqueue for committed events */
	WORKER_KINDS = 3
} WorkerKind;

/* "sync", "fetch" or "announce" */
extern const char *const WorkerKindNames[WORKER_KINDS];

#define WQ_MAX_SLOTS (WQ_MAX_DATABASES * WORKER_KINDS)

/* One slot per worker; protected by WorkqueueShared->mutex. */
typedef struct WorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	WorkerKind	kind;
	char		dbname[NAMEDATALEN];
	pid_t		pid;			/* 0 while not running */
	int			procno;			/* pgprocno of the worker, to set its latch */
	TimestampTz started_at;
	TimestampTz last_loop_at;
	int64		jobs_done;		/* sync runs, or fetches finished */
	int			in_flight;		/* HTTP transfers now */
} WorkerSlot;

typedef struct WorkqueueShared
{
	slock_t		mutex;
	WorkerSlot	slots[WQ_MAX_SLOTS];
} WorkqueueShared;

extern WorkqueueShared *WqShared;

extern void WorkqueueShmemInit(void);
extern void WorkqueueRegisterLauncher(void);
extern void WorkqueueWakeWorker(Oid dboid, WorkerKind kind);
extern void WorkqueueWakeAtCommit(WorkerKind kind);
PGDLLEXPORT void WorkqueueLauncherMain(Datum arg);

#endif							/* WORKQUEUE_LAUNCHER_H */
