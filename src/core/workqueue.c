/*
 * workqueue.c
 *		Module glue: _PG_init and small SQL-callable helpers.
 */
#include "postgres.h"

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
