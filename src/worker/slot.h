/*
 * slot.h
 *		A database worker's own slot in shared memory (launcher.h).
 */
#ifndef WORKQUEUE_SLOT_H
#define WORKQUEUE_SLOT_H

#include "postgres.h"

extern void WorkerSlotAttach(int slot, const char *dbname);
extern void WorkerSlotTouch(void);
extern void WorkerSlotSetInFlight(int n);
extern void WorkerSlotCountJobs(int n);

#endif							/* WORKQUEUE_SLOT_H */
