/*
 * sync.h
 *		Sync runs, as the sync worker (worker.c) executes them.
 */
#ifndef WORKQUEUE_SYNC_H
#define WORKQUEUE_SYNC_H

#include "postgres.h"

extern int64 SyncClaimNextRun(void);
extern void SyncRunExecute(int64 run_id);
extern void SyncRunFail(int64 run_id, const char *message);
extern void SyncRecoverInterrupted(void);

#endif							/* WORKQUEUE_SYNC_H */
