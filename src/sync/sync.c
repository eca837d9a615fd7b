/*
 * sync.c
 *		Executing a sync run in the background worker.
 *
 * A run: list the open ids page by page -> reopen listed items that a sync
 * had closed -> missing_ids -> fetch details of the missing ids (of all ids
 * for a full run) in batches, max_concurrency requests at a time ->
 * upsert_items per batch, each batch committed with the run's counters ->
 * for a full run whose listing completed, close the source's open items
 * that were not listed, in one transaction.
 *
 * Transactions are short: HTTP happens with no transaction open, then each
 * response is parsed and written in a transaction of its own, so a long
 * sync never pins the xmin horizon and its progress is visible at once.
 * Any ERROR fails the run (worker.c catches it): what was committed stays,
 * and nothing is closed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "http/http.h"
#include "sync/source.h"
#include "sync/sync.h"
#include "worker/xact.h"
#include "core/workqueue.h"

typedef struct SyncRun
{
	int64		id;
	bool		full;
	SourceDef  *src;
	HttpOptions http;
	MemoryContext cxt;			/* lives for the whole run */
	List	   *ids;			/* listed ids, in listing order */
	RecordErrors errs;
} SyncRun;

static void
Exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "workqueue sync: \"%s\" returned %s", sql, SPI_result_code_string(rc));
}

static Datum
TextArray(List *strings)
{
	int			n = list_length(strings);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, strings)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Reads a text[] result column into a List of strings allocated in cxt. */
static List *
TextArrayToList(Datum arr, MemoryContext cxt)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *out = NIL;
	MemoryContext old = MemoryContextSwitchTo(cxt);

	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			out = lappend(out, TextDatumGetCString(elems[i]));
	MemoryContextSwitchTo(old);
	return out;
}

/* Appends copies of strings to list; both live in cxt. */
static List *
AppendStrings(List *list, List *strings, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ListCell   *lc;

	foreach(lc, strings)
		list = lappend(list, pstrdup((char *) lfirst(lc)));
	MemoryContextSwitchTo(old);
	return list;
}

static void
HttpFailed(SyncRun *run, HttpRequest *req, const char *what)
{
	if (req->cross_origin)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s request failed: %s", what, req->error),
				 errdetail("The source's headers go only to the origins of its ids_url and details_url (%s); the request for %s was not sent.",
						   HttpOriginList(run->src->origins), req->url),
				 errhint("Point the source at the API's final address with workqueue.alter_source().")));
	if (req->refused)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s request failed: %s", what, req->error),
				 errdetail("The request for %s was refused before connecting.", req->url),
				 errhint("A superuser can add the host to workqueue.allowed_hosts (ALTER SYSTEM, then pg_reload_conf()).")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("%s request failed: %s", what, req->error),
			 errdetail("GET %s failed after %d attempt(s).", req->url, req->attempts)));
}

static void
LoadRun(SyncRun *run)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run->id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		opts;
	MemoryContext old;

	WorkerTxBegin("workqueue sync: loading run");
	Exec("SELECT r.\"full\", s.name, s.queue, s.ids_url, s.details_url, s.options "
		 "FROM workqueue.sync_run r JOIN workqueue.source s ON s.name = r.source WHERE r.id = $1",
		 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "sync run " INT64_FORMAT " does not exist", run->id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(run->cxt);
	run->full = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	opts = SPI_getbinval(tup, desc, 6, &isnull);
	run->src = SourceParse(SPI_getvalue(tup, desc, 2), SPI_getvalue(tup, desc, 3),
						   SPI_getvalue(tup, desc, 4), SPI_getvalue(tup, desc, 5),
						   DatumGetJsonbPCopy(opts));
	run->http.timeout_ms = run->src->timeout_ms;
	run->http.connect_timeout_ms = Min(run->src->timeout_ms, 10000);
	run->http.max_concurrency = run->src->max_concurrency;
	run->http.retries = run->src->retries;
	run->http.max_response_bytes = workqueue_http_max_response_bytes;
	run->http.headers = run->src->headers;
	run->http.origins = run->src->origins;
	run->http.source = run->src->name;
	run->errs.samples = makeStringInfo();
	MemoryContextSwitchTo(old);
	WorkerTxCommit(run->cxt);
}

/* Upserts an items array; adds the counts to the run (caller holds a tx). */
static void
UpsertAndCount(SyncRun *run, Jsonb *items, bool batch_done)
{
	Oid			types[3] = {TEXTOID, JSONBOID, TEXTOID};
	Datum		values[3] = {CStringGetTextDatum(run->src->queue), JsonbPGetDatum(items),
	CStringGetTextDatum(run->src->name)};
	int			counts[3] = {0, 0, 0};
	bool		isnull;
	Oid			utypes[7] = {INT8OID, INT4OID, INT4OID, INT4OID, INT4OID, JSONBOID, INT4OID};
	Datum		uvalues[7];

	if (JsonContainerSize(&items->root) > 0)
	{
		Exec("SELECT inserted, updated, unchanged FROM workqueue.upsert_items($1, $2, $3)",
			 3, types, values, NULL, SPI_OK_SELECT);
		for (int i = 0; i < 3; i++)
			counts[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull));
	}
	uvalues[0] = Int64GetDatum(run->id);
	uvalues[1] = Int32GetDatum(counts[0]);
	uvalues[2] = Int32GetDatum(counts[1]);
	uvalues[3] = Int32GetDatum(counts[2]);
	uvalues[4] = Int32GetDatum(run->errs.count);
	uvalues[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(psprintf("[%s]", run->errs.samples->data)));
	uvalues[6] = Int32GetDatum(batch_done ? 1 : 0);
	Exec("UPDATE workqueue.sync_run SET inserted = inserted + $2, updated = updated + $3, "
		 "unchanged = unchanged + $4, errors = $5, error_samples = $6, batches_done = batches_done + $7 "
		 "WHERE id = $1", 7, utypes, uvalues, NULL, SPI_OK_UPDATE);
}

static void
SetPhase(SyncRun *run, const char *phase)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(run->id), CStringGetTextDatum(phase)};

	Exec("UPDATE workqueue.sync_run SET phase = $2 WHERE id = $1", 2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Lists the open ids page by page.  For a listing-only source (no
 * details_url) the records on each page are upserted as they arrive.
 */
static void
ListIds(SyncRun *run)
{
	SourceDef  *src = run->src;
	char	   *url = src->ids_url;
	int			offset = 0;

	if (src->page_style == PAGE_OFFSET)
	{
		url = HttpUrlWithParam(url, src->offset_param, "0");
		url = HttpUrlWithParam(url, src->limit_param, psprintf("%d", src->limit));
	}
	for (int page = 1;; page++)
	{
		HttpRequest req = {0};
		Jsonb	   *body;
		List	   *page_ids = NIL;
		int			page_records;
		char	   *next = NULL;
		char	   *text;
		Oid			types[3] = {INT8OID, INT4OID, INT4OID};
		Datum		values[3];

		CHECK_FOR_INTERRUPTS();
		if (page > src->max_pages)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("listing of source \"%s\" exceeded max_pages (%d)", src->name, src->max_pages),
					 errdetail("The next page would have been %s.", url),
					 errhint("Raise pagination.max_pages if the listing is really that long; nothing was closed.")));
		req.url = url;
		pgstat_report_activity(STATE_RUNNING, "workqueue sync: listing");
		WorkerReloadConfig();	/* e.g. a changed workqueue.allowed_hosts */
		HttpPerform(&req, 1, &run->http);
		if (req.error)
			HttpFailed(run, &req, "listing");

		WorkerTxBegin("workqueue sync: listing page");
		body = ParseJsonBody(req.response, req.response_len, req.url, "listing");
		if (src->details_url == NULL)
		{
			Jsonb	   *items = RecordsToItems(src, body, &page_ids, &run->errs, &page_records);

			UpsertAndCount(run, items, false);
		}
		else
		{
			ListingIds(src, body, &page_ids);
			page_records = list_length(page_ids);
		}
		run->ids = AppendStrings(run->ids, page_ids, run->cxt);

		switch (src->page_style)
		{
			case PAGE_NONE:
				break;
			case PAGE_NEXT_URL:
				if (PathFirstText(body, &src->next_url_path, &text) && text[0] != '\0')
					next = HttpResolveUrl(url, text);
				break;
			case PAGE_LINK:
				if (req.next_link)
					next = HttpResolveUrl(url, req.next_link);
				break;
			case PAGE_CURSOR:
				if (PathFirstText(body, &src->cursor_path, &text) && text[0] != '\0')
					next = HttpUrlWithParam(src->ids_url, src->cursor_param, text);
				break;
			case PAGE_OFFSET:
				{
					int			count = page_records;
					long		total = -1;

					offset += count;
					if (src->has_total && PathFirstText(body, &src->total_path, &text))
						total = strtol(text, NULL, 10);
					if (count > 0 && count >= src->limit && (total < 0 || offset < total))
						next = HttpUrlWithParam(url, src->offset_param, psprintf("%d", offset));
					break;
				}
		}
		/*
		 * a page link elsewhere would take the source's headers to another
		 * origin: the run fails (and closes nothing).  Cursor and offset
		 * pages are built on ids_url.
		 */
		if (next && src->headers != NIL && !HttpOriginAllowed(next, src->origins))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("next page link to another origin refused: %s is not an origin of source \"%s\"",
							next, src->name),
					 errdetail("The source's headers go only to the origins of its ids_url and details_url (%s); page %d of the listing linked to %s.",
							   HttpOriginList(src->origins), page, next),
					 errhint("Point the source at the API's final address with workqueue.alter_source(); nothing was closed.")));
		values[0] = Int64GetDatum(run->id);
		values[1] = Int32GetDatum(page);
		values[2] = Int32GetDatum(list_length(run->ids));
		Exec("UPDATE workqueue.sync_run SET pages = $2, ids_seen = $3 WHERE id = $1",
			 3, types, values, NULL, SPI_OK_UPDATE);
		if (next)
			next = MemoryContextStrdup(run->cxt, next);
		WorkerTxCommit(run->cxt);
		if (next == NULL)
			break;
		url = next;
	}
}

static char *
DetailsUrl(const SourceDef *src, List *ids)
{
	StringInfoData joined;
	StringInfoData url;
	const char *mark = strstr(src->details_url, "{ids}");
	ListCell   *lc;

	initStringInfo(&joined);
	foreach(lc, ids)
		appendStringInfo(&joined, "%s%s", joined.len ? "," : "", HttpEncode((char *) lfirst(lc)));
	initStringInfo(&url);
	appendBinaryStringInfo(&url, src->details_url, mark - src->details_url);
	appendStringInfoString(&url, joined.data);
	appendStringInfoString(&url, mark + strlen("{ids}"));
	return url.data;
}

static char *
DetailsBody(List *ids)
{
	StringInfoData b;
	ListCell   *lc;

	initStringInfo(&b);
	appendStringInfoChar(&b, '[');
	foreach(lc, ids)
	{
		if (b.len > 1)
			appendStringInfoChar(&b, ',');
		escape_json(&b, (char *) lfirst(lc));
	}
	appendStringInfoChar(&b, ']');
	return b.data;
}

/*
 * Fetches the details of ids in batches, max_concurrency requests at a
 * time, and upserts each batch in its own transaction.  Returns the ids the
 * API returned records for (allocated in the run's context).
 */
static List *
FetchDetails(SyncRun *run, List *ids, bool count_batches)
{
	SourceDef  *src = run->src;
	int			n = list_length(ids);
	int			per_wave = src->batch_size * src->max_concurrency;
	List	   *returned = NIL;
	MemoryContext wavecxt = AllocSetContextCreate(run->cxt, "workqueue sync wave", ALLOCSET_DEFAULT_SIZES);

	for (int start = 0; start < n; start += per_wave)
	{
		int			nreq = Min(src->max_concurrency, (n - start + src->batch_size - 1) / src->batch_size);
		HttpRequest *reqs;

		MemoryContextReset(wavecxt);
		MemoryContextSwitchTo(wavecxt);
		reqs = palloc0(sizeof(HttpRequest) * nreq);
		for (int r = 0; r < nreq; r++)
		{
			int			from = start + r * src->batch_size;
			List	   *batch = list_copy_head(list_copy_tail(ids, from), src->batch_size);

			if (src->details_post)
			{
				reqs[r].url = src->details_url;
				reqs[r].body = DetailsBody(batch);
			}
			else
				reqs[r].url = DetailsUrl(src, batch);
		}
		pgstat_report_activity(STATE_RUNNING, "workqueue sync: fetching details");
		WorkerReloadConfig();
		HttpPerform(reqs, nreq, &run->http);

		for (int r = 0; r < nreq; r++)
		{
			Jsonb	   *body;
			Jsonb	   *items;
			List	   *got = NIL;

			if (reqs[r].error)
				HttpFailed(run, &reqs[r], "details");
			WorkerTxBegin("workqueue sync: writing a batch");
			body = ParseJsonBody(reqs[r].response, reqs[r].response_len, reqs[r].url, "details");
			items = RecordsToItems(src, body, &got, &run->errs, NULL);
			UpsertAndCount(run, items, count_batches);
			returned = AppendStrings(returned, got, run->cxt);
			WorkerTxCommit(wavecxt);
		}
	}
	MemoryContextSwitchTo(run->cxt);
	MemoryContextDelete(wavecxt);
	return returned;
}

/* Reopens listed items, finds what to fetch, records the counts. */
static List *
PlanDetails(SyncRun *run)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTARRAYOID, INT8OID};
	Datum		values[4];
	bool		isnull;
	List	   *to_fetch = NIL;
	HeapTuple	tup;
	TupleDesc	desc;
	int			nfetch;

	WorkerTxBegin("workqueue sync: planning");
	values[0] = CStringGetTextDatum(run->src->queue);
	values[1] = CStringGetTextDatum(run->src->name);
	values[2] = TextArray(run->ids);
	values[3] = Int64GetDatum(run->id);
	/*
	 * What to fetch: the missing ids (incremental run) or every listed id
	 * once, in listing order (full run).  Chosen here from the run, not by a
	 * CASE in the statement: Citus refuses a non-immutable function
	 * (missing_ids) inside CASE.
	 */
	Exec(run->full ?
		 "SELECT workqueue._reopen_listed($1, $2, $3), "
		 "(SELECT count(DISTINCT x) FROM unnest($3) x), "
		 "ARRAY(SELECT x FROM (SELECT DISTINCT ON (x) x, o FROM unnest($3) WITH ORDINALITY u(x, o) "
		 "                     WHERE x IS NOT NULL ORDER BY x, o) d ORDER BY o), "
		 "(SELECT count(*) FROM workqueue.missing_ids($1, $3))" :
		 "SELECT workqueue._reopen_listed($1, $2, $3), "
		 "(SELECT count(DISTINCT x) FROM unnest($3) x), "
		 "ARRAY(SELECT workqueue.missing_ids($1, $3)), "
		 "(SELECT count(*) FROM workqueue.missing_ids($1, $3))",
		 4, types, values, NULL, SPI_OK_SELECT);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (run->src->details_url)
		to_fetch = TextArrayToList(SPI_getbinval(tup, desc, 3, &isnull), run->cxt);
	nfetch = list_length(to_fetch);
	{
		Oid			utypes[6] = {INT8OID, INT4OID, INT4OID, INT4OID, INT4OID, TEXTOID};
		Datum		uvalues[6];

		uvalues[0] = Int64GetDatum(run->id);
		uvalues[1] = Int32GetDatum(DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull)));
		uvalues[2] = Int32GetDatum((int32) DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)));
		uvalues[3] = Int32GetDatum((int32) DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull)));
		uvalues[4] = Int32GetDatum((nfetch + run->src->batch_size - 1) / run->src->batch_size);
		uvalues[5] = CStringGetTextDatum(run->src->details_url ? "details" : "listed");
		Exec("UPDATE workqueue.sync_run SET reopened = $2, ids_seen = $3, "
			 "missing = CASE WHEN $6 = 'listed' THEN inserted ELSE $4 END, "
			 "batches_total = $5, phase = $6 WHERE id = $1",
			 6, utypes, uvalues, NULL, SPI_OK_UPDATE);
	}
	WorkerTxCommit(run->cxt);
	return to_fetch;
}

/* Full runs: close the source's open items the listing did not name. */
static void
CloseVanished(SyncRun *run)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID};
	Datum		values[5];
	List	   *keep = NIL;
	bool		isnull;

	values[0] = CStringGetTextDatum(run->src->queue);
	values[1] = CStringGetTextDatum(run->src->name);
	values[4] = Int64GetDatum(run->id);

	if (run->src->confirm_close)
	{
		List	   *candidates;

		WorkerTxBegin("workqueue sync: confirming closes");
		values[2] = TextArray(run->ids);
		Exec("SELECT ARRAY(SELECT i.external_id FROM workqueue.item i "
			 " WHERE i.queue = $1 AND i.source = $2 AND i.status IN ('open', 'in_progress') "
			 "   AND NOT EXISTS (SELECT 1 FROM unnest($3) l(x) WHERE l.x = i.external_id) ORDER BY i.id)",
			 3, types, values, NULL, SPI_OK_SELECT);
		candidates = TextArrayToList(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
									 run->cxt);
		SetPhase(run, "confirming");
		WorkerTxCommit(run->cxt);
		if (candidates != NIL)
			keep = FetchDetails(run, candidates, false);
	}

	WorkerTxBegin("workqueue sync: closing vanished items");
	values[2] = TextArray(run->ids);
	values[3] = TextArray(keep);
	if (WqDistributed())
	{
		/*
		 * Citus refuses a volatile function in an UPDATE of a distributed
		 * (here: reference) table: close first, then record the count.
		 */
		bool		cnull;

		Exec("SELECT workqueue._close_unlisted($1, $2, $3, $4)", 4, types, values, NULL, SPI_OK_SELECT);
		values[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &cnull);
		types[2] = INT4OID;
		Exec("UPDATE workqueue.sync_run SET closed = $3, phase = 'closing' WHERE id = $5",
			 5, types, values, NULL, SPI_OK_UPDATE);
	}
	else
		Exec("UPDATE workqueue.sync_run SET closed = workqueue._close_unlisted($1, $2, $3, $4), phase = 'closing' "
			 "WHERE id = $5", 5, types, values, NULL, SPI_OK_UPDATE);
	WorkerTxCommit(run->cxt);
}

void
SyncRunExecute(int64 run_id)
{
	MemoryContext outer = CurrentMemoryContext;
	SyncRun    *run;
	List	   *to_fetch;

	run = MemoryContextAllocZero(outer, sizeof(SyncRun));
	run->id = run_id;
	run->cxt = AllocSetContextCreate(outer, "workqueue sync run", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(run->cxt);

	LoadRun(run);
	ListIds(run);
	to_fetch = PlanDetails(run);
	if (to_fetch != NIL)
		FetchDetails(run, to_fetch, true);
	if (run->full)
		CloseVanished(run);

	{
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(run_id)};

		WorkerTxBegin("workqueue sync: finishing");
		Exec("UPDATE workqueue.sync_run SET status = 'completed', phase = NULL, finished_at = now() "
			 "WHERE id = $1", 1, types, values, NULL, SPI_OK_UPDATE);
		WorkerTxCommit(outer);
	}
	MemoryContextDelete(run->cxt);
}

void
SyncRunFail(int64 run_id, const char *message)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(run_id), CStringGetTextDatum(message)};
	MemoryContext old = CurrentMemoryContext;

	WorkerTxBegin("workqueue sync: recording a failure");
	Exec("SELECT workqueue._fail_run($1, $2)", 2, types, values, NULL, SPI_OK_SELECT);
	WorkerTxCommit(old);
	ereport(LOG, (errmsg("workqueue sync run " INT64_FORMAT " failed: %s", run_id, message)));
}

void
SyncRecoverInterrupted(void)
{
	MemoryContext old = CurrentMemoryContext;
	int			n;
	bool		isnull;

	WorkerTxBegin("workqueue: recovering sync runs");
	Exec("SELECT workqueue._recover_runs()", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	WorkerTxCommit(old);
	if (n > 0)
		ereport(LOG, (errmsg("workqueue re-queued %d sync run(s) interrupted by a restart", n)));
}

int64
SyncClaimNextRun(void)
{
	MemoryContext old = CurrentMemoryContext;
	int64		id = 0;
	bool		isnull;

	WorkerTxBegin("workqueue: looking for sync runs");
	Exec("SELECT workqueue._claim_run()", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			id = DatumGetInt64(d);
	}
	WorkerTxCommit(old);
	return id;
}
