/*
 * worker.h
 *		The per-database background worker's entry point.
 */
#ifndef WORKQUEUE_WORKER_H
#define WORKQUEUE_WORKER_H

#include "postgres.h"

PGDLLEXPORT void WorkqueueWorkerMain(Datum arg);

#endif							/* WORKQUEUE_WORKER_H */
