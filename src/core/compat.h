/*
 * compat.h
 *		Every PG_VERSION_NUM difference workqueue cares about, in one place.
 *
 * workqueue targets PostgreSQL 15 and builds on 14 through 17.
 */
#ifndef WORKQUEUE_COMPAT_H
#define WORKQUEUE_COMPAT_H

#include "postgres.h"

#include "miscadmin.h"

#if PG_VERSION_NUM < 140000
#error "workqueue requires PostgreSQL 14 or later"
#endif

/* MarkGUCPrefixReserved() replaced EmitWarningsOnPlaceholders() in 15. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * Shared memory is requested from shmem_request_hook since 15, and straight
 * from _PG_init before.  WqShmemRequestAt(request, &prev) arranges for
 * request to run at the right time; request must first call *prev, the hook
 * installed before it, if there is one.
 */
typedef void (*WqShmemRequestFn) (void);

static inline void
WqShmemRequestAt(WqShmemRequestFn request, WqShmemRequestFn *prev)
{
#if PG_VERSION_NUM >= 150000
	*prev = shmem_request_hook;
	shmem_request_hook = request;
#else
	*prev = NULL;
	request();
#endif
}

/* varatt.h split out of postgres.h in 16. */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* PGPROC's local transaction id moved into PGPROC.vxid in 17. */
#if PG_VERSION_NUM >= 170000
#define WqMyLocalTransactionId() (MyProc->vxid.lxid)
#else
#define WqMyLocalTransactionId() (MyProc->lxid)
#endif

#endif							/* WORKQUEUE_COMPAT_H */
