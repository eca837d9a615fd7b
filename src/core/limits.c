/*
 * limits.c
 *		Length limits on the names and ids callers pass in.
 *
 * Names of queues, workflows, steps, transitions, sources, calendars and
 * roles end up in primary keys and in every NOTIFY payload ("queue" and
 * "step"), and external ids in the unique index on (queue, external_id).
 * Without a limit a long name is accepted where it is stored -- a
 * compressible one even fits the index -- and breaks later: the 8000-byte
 * payload of pg_notify() overflows on the item's first event, or btree
 * refuses the row with "index row requires ... bytes".  So they are checked
 * up front, in bytes, with a deterministic limit (doc/hostile-input.md):
 *
 *	- WQ_NAME_MAX_BYTES for names: even with every byte escaped by JSON
 *	  (\u0001 is six bytes) a queue and a step name fit one payload;
 *	- WQ_EXTERNAL_ID_MAX_BYTES for external ids: with the longest queue
 *	  name, an index entry stays below btree's 2704-byte maximum, compressed
 *	  or not.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "core/workqueue.h"

/*
 * Raises 42622 if a name of the given kind ("queue", "step", ...) is longer
 * than WQ_NAME_MAX_BYTES bytes.  len is its length in bytes.
 */
void
WorkqueueCheckName(const char *what, const char *name, Size len)
{
	if (len > WQ_NAME_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("%s name is too long", what),
				 errdetail("The name is %zu bytes long; the limit is %d bytes. It begins \"%s\".",
						   len, WQ_NAME_MAX_BYTES, WorkqueueClip(name, len)),
				 errhint("Use a shorter name.")));
}

/* Raises 22001 if an external id is longer than WQ_EXTERNAL_ID_MAX_BYTES. */
void
WorkqueueCheckExternalId(const char *id, Size len)
{
	if (len > WQ_EXTERNAL_ID_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("external id is too long"),
				 errdetail("The external id is %zu bytes long; the limit is %d bytes. It begins \"%s\".",
						   len, WQ_EXTERNAL_ID_MAX_BYTES, WorkqueueClip(id, len)),
				 errhint("Upstream ids are short keys; pass the long value in \"data\" instead.")));
}

/*
 * The first few characters of a string, for messages about values too long
 * to quote whole (never cut inside a multibyte character).
 */
char *
WorkqueueClip(const char *s, Size len)
{
	int			cut = (int) Min(len, (Size) 40);

	cut = pg_mbcliplen(s, (int) Min(len, (Size) PG_INT32_MAX), cut);
	return psprintf("%.*s%s", cut, s, (Size) cut < len ? "..." : "");
}

/*
 * The bytes of text argument n of a SQL call; false if it is NULL, which
 * passes the checks below.
 */
static bool
TextArgBytes(FunctionCallInfo fcinfo, int n, const char **bytes, Size *len)
{
	text	   *t;

	if (PG_ARGISNULL(n))
		return false;
	t = PG_GETARG_TEXT_PP(n);
	*bytes = VARDATA_ANY(t);
	*len = VARSIZE_ANY_EXHDR(t);
	return true;
}

PG_FUNCTION_INFO_V1(workqueue_check_name);

/*
 * SQL: workqueue._check_name(what text, name text) returns void
 *
 * The length check of the SQL API functions; NULL passes (each function
 * says itself whether a NULL name is allowed).
 */
Datum
workqueue_check_name(PG_FUNCTION_ARGS)
{
	const char *name;
	Size		len;

	if (TextArgBytes(fcinfo, 1, &name, &len))
		WorkqueueCheckName(PG_ARGISNULL(0) ? "object" : text_to_cstring(PG_GETARG_TEXT_PP(0)), name, len);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(workqueue_check_external_id);

/*
 * SQL: workqueue._check_external_id(external_id text) returns void
 *
 * NULL passes (an item without external id); the empty string does not,
 * as in upsert_items().
 */
Datum
workqueue_check_external_id(PG_FUNCTION_ARGS)
{
	const char *id;
	Size		len;

	if (!TextArgBytes(fcinfo, 0, &id, &len))
		PG_RETURN_VOID();
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external id must not be empty"),
				 errhint("Pass NULL for an item without an external id.")));
	WorkqueueCheckExternalId(id, len);
	PG_RETURN_VOID();
}
