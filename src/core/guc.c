/*
 * guc.c
 *		The workqueue.* configuration settings.
 *
 * All settings are defined from _PG_init; the "workqueue" prefix is
 * reserved so that a misspelt setting is reported instead of ignored.
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "http/hosts.h"
#include "core/workqueue.h"

int			workqueue_page_size = 25;
char	   *workqueue_database_name = NULL;
char	   *workqueue_databases = NULL;
int			workqueue_http_max_concurrency = 16;
int			workqueue_http_max_response_bytes = 64 * 1024 * 1024;
int			workqueue_http_timeout_ms = 30000;
int			workqueue_http_max_per_host = 0;
char	   *workqueue_allowed_hosts = NULL;
int			workqueue_purge_batch_size = 500;
int			workqueue_purge_interval_s = 300;
int			workqueue_test_commit_delay_ms = 0;

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
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("workqueue.databases",
							   "Sets the databases, comma-separated, in which workqueue background workers run.",
							   "Empty means the one database named by workqueue.database_name.",
							   &workqueue_databases,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("workqueue.http_max_concurrency",
							"Sets the maximum number of HTTP transfers a worker keeps in flight.",
							"A source's max_concurrency option is capped by this.",
							&workqueue_http_max_concurrency,
							16, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("workqueue.http_max_per_host",
							"Sets the maximum number of connections a worker opens to one host.",
							"0 means no limit beyond workqueue.http_max_concurrency.",
							&workqueue_http_max_per_host,
							0, 0, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("workqueue.http_max_response_bytes",
							"Sets the largest HTTP response body a worker accepts.",
							NULL,
							&workqueue_http_max_response_bytes,
							64 * 1024 * 1024, 1024, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("workqueue.http_timeout",
							"Sets the default time limit of one HTTP request.",
							"A source's timeout_ms option overrides it.",
							&workqueue_http_timeout_ms,
							30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("workqueue.purge_batch_size",
							"Sets the number of finished items the retention purge deletes per transaction.",
							"Each batch locks its items (skipping locked ones) for one short transaction.",
							&workqueue_purge_batch_size,
							500, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("workqueue.purge_interval",
							"Sets the time between two retention purges of the fetch worker.",
							"A purge deletes batch after batch until nothing is left; 0 turns purging off.",
							&workqueue_purge_interval_s,
							300, 0, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	/*
	 * For tests only, hidden: a committing transaction that asked to wake a
	 * worker sleeps this long after its own commit and before the commit
	 * callbacks of libraries loaded before workqueue (Citus' COMMIT
	 * PREPARED on the workers): the moment test/citus/notify.sh needs to
	 * show that announcements wait for it (src/queue/announce.c).
	 */
	DefineCustomIntVariable("workqueue.test_commit_delay",
							"Sleeps at commit, for tests.",
							NULL,
							&workqueue_test_commit_delay_ms,
							0, 0, 10000,
							PGC_SUSET, GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	/*
	 * Superuser-only to set (PGC_SUSET), but readable by everyone: knowing
	 * where sources may point is no secret.  Parsed by the check hook, see
	 * hosts.c.
	 */
	DefineCustomStringVariable("workqueue.allowed_hosts",
							   "Sets the hosts, comma-separated, that sources and fetches may reach.",
							   "Host names match the URL's host; IP addresses and CIDR ranges match "
							   "the address connected to.  Empty means no restriction.",
							   &workqueue_allowed_hosts,
							   "",
							   PGC_SUSET, 0,
							   AllowedHostsCheck, AllowedHostsAssign, NULL);

	MarkGUCPrefixReserved("workqueue");
}
