/*
 * slot.c
 *		A database worker's own slot in shared memory.
 *
 * The launcher starts each worker with the number of a slot (launcher.h);
 * the worker fills it in when it starts, keeps the figures that
 * workqueue._workers() shows up to date, and frees the slot when it exits.
 * Backends find the worker's latch there.  Each update holds
 * WqShared->mutex to copy a few fields.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

#include "worker/launcher.h"
#include "worker/slot.h"

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

/*
 * Takes slot number slot for this process, a worker of the slot's kind
 * connected to database dbname; frees it again at exit.
 */
void
WorkerSlotAttach(int slot, const char *dbname)
{
	my_slot = slot;
	before_shmem_exit(ReleaseSlot, (Datum) 0);
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
}

/* Records that the worker's loop went round once more. */
void
WorkerSlotTouch(void)
{
	SpinLockAcquire(&WqShared->mutex);
	WqShared->slots[my_slot].last_loop_at = GetCurrentTimestamp();
	SpinLockRelease(&WqShared->mutex);
}

/* Publishes this worker's transfers in flight (and that its loop went round). */
void
WorkerSlotSetInFlight(int n)
{
	SpinLockAcquire(&WqShared->mutex);
	WqShared->slots[my_slot].in_flight = n;
	WqShared->slots[my_slot].last_loop_at = GetCurrentTimestamp();
	SpinLockRelease(&WqShared->mutex);
}

/* Counts n more jobs done: sync runs, or fetches finished. */
void
WorkerSlotCountJobs(int n)
{
	SpinLockAcquire(&WqShared->mutex);
	WqShared->slots[my_slot].jobs_done += n;
	SpinLockRelease(&WqShared->mutex);
}
