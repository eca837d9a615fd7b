/*
 * xact.h
 *		The short transactions of the background workers.
 */
#ifndef WORKQUEUE_XACT_H
#define WORKQUEUE_XACT_H

#include "postgres.h"

extern Oid	WorkerExtensionOid(const char *table);
extern void WorkerTxBegin(const char *activity);
extern void WorkerTxCommit(MemoryContext back);
extern void WorkerReloadConfig(void);

#endif							/* WORKQUEUE_XACT_H */
