/*
 * fetch.h
 *		The fetch worker's loop.
 */
#ifndef WORKQUEUE_FETCH_H
#define WORKQUEUE_FETCH_H

#include "postgres.h"

extern void FetchWorkerLoop(void) pg_attribute_noreturn();

#endif							/* WORKQUEUE_FETCH_H */
