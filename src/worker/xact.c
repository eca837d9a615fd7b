/*
 * xact.c
 *		The short transactions of the background workers.
 *
 * Both loops -- the sync worker's (worker.c, sync.c) and the fetch
 * worker's (fetch.c) -- do every piece of work in a transaction of its own,
 * begun and committed here, and hold none across network I/O.  Between
 * transactions they check that the extension still exists and reread the
 * configuration after a SIGHUP.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "worker/xact.h"

/*
 * The OID of the extension if it is installed here at a version that has
 * this table, else InvalidOid.  A new OID means the extension was dropped
 * and created again.  Looks in a transaction of its own, and returns in the
 * caller's memory context (committing switches to TopMemoryContext).
 */
Oid
WorkerExtensionOid(const char *table)
{
	MemoryContext back = CurrentMemoryContext;
	Oid			ext;
	Oid			nsp;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ext = get_extension_oid("workqueue", true);
	if (OidIsValid(ext))
	{
		nsp = get_namespace_oid("workqueue", true);
		if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid(table, nsp)))
			ext = InvalidOid;
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(back);
	return ext;
}

/* Starts a transaction for SPI work, in worker_spi's order. */
void
WorkerTxBegin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Commits it and switches back to memory context back. */
void
WorkerTxCommit(MemoryContext back)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(back);
}

/*
 * Rereads the configuration files if a SIGHUP arrived.  Called at the top
 * of the loops and, in the sync worker, before each HTTP request of a run,
 * so that a reloaded setting (workqueue.allowed_hosts) applies to the next
 * request.  Never inside a transaction.
 */
void
WorkerReloadConfig(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}
