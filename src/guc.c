/*
 * guc.c
 *		The workqueue.* configuration settings.
 *
 * All settings are defined from _PG_init; the "workqueue" prefix is
 * reserved so that a misspelt setting is reported instead of ignored.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "workqueue.h"

int			workqueue_page_size = 25;
char	   *workqueue_database_name = NULL;

/*
 * Defines every workqueue.* setting.
 */
void
WorkqueueDefineGucs(void)
{
	DefineCustomIntVariable("workqueue.page_size",
							"Sets the default number of items list_items returns per page.",
							NULL,
							&workqueue_page_size,
							25, 1, 10000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("workqueue.database_name",
							   "Sets the database in which the workqueue background worker runs.",
							   NULL,
							   &workqueue_database_name,
							   "postgres",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("workqueue");
}
