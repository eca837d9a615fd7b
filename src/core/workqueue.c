/*
 * workqueue.c
 *		Module glue: _PG_init and small SQL-callable helpers.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "worker/launcher.h"
#include "core/workqueue.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Defines the settings; when loaded through shared_preload_libraries, also
 * reserves shared memory and registers the launcher background worker.
 */
void
_PG_init(void)
{
	WorkqueueDefineGucs();
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;
	WorkqueueShmemInit();
	WorkqueueRegisterLauncher();
}

/*
 * Name of the role that called into workqueue.  Inside a SECURITY DEFINER
 * function current_user is the function's owner; the outer user is the role
 * the session runs as (after SET ROLE), which is who is asking.
 */
char *
WorkqueueCallerName(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

PG_FUNCTION_INFO_V1(workqueue_caller);
Datum
workqueue_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(WorkqueueCallerName()));
}

/*
 * Whether a row's xmin is the current transaction or one of its
 * subtransactions: a row this transaction wrote, which no other session
 * (a background worker included) can see before it commits.
 */
PG_FUNCTION_INFO_V1(workqueue_xid_is_current);
Datum
workqueue_xid_is_current(PG_FUNCTION_ARGS)
{
	TransactionId xid = DatumGetTransactionId(PG_GETARG_DATUM(0));

	PG_RETURN_BOOL(TransactionIdIsNormal(xid) && TransactionIdIsCurrentTransactionId(xid));
}
