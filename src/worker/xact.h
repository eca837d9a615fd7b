/*
 * xact.h
 *		The short transactions of the background workers.
 */
#ifndef WORKQUEUE_XACT_H
#define WORKQUEUE_XACT_H

#include "postgres.h"

extern Oid	WorkerExtensionOid(const char *table);
extern char *WorkerExtensionVersion(void);
extern void WorkerTxBegin(const char *activity);
extern void WorkerTxCommit(MemoryContext back);
extern ErrorData *WorkerTxAbort(MemoryContext back);
extern void WorkerReloadConfig(void);

/* A transaction body for WorkerTxRetry; runs between WorkerTxBegin and WorkerTxCommit. */
typedef void (*WorkerTxBody) (void *arg);

extern bool WorkerErrorIsRetryable(int sqlerrcode);
extern ErrorData *WorkerTxRetry(const char *activity, WorkerTxBody body, void *arg, int attempts);

#endif							/* WORKQUEUE_XACT_H */
