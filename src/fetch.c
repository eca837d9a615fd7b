/*
 * fetch.c
 *		The fetch worker: enrichment fetches, lease expiry.
 *
 * One loop keeps up to workqueue.http_max_concurrency transfers in flight
 * (and at most workqueue.http_max_per_host to one host) on a libcurl multi
 * handle that lives as long as the process.  Each turn it:
 *
 *	- returns expired claims to their queues (once a second);
 *	- takes as many due fetches as there are free transfer slots
 *	  (FOR UPDATE SKIP LOCKED, status "processing", in a short transaction)
 *	  and starts them -- so a backlog of any size never puts more than the
 *	  cap in flight, and memory does not grow with the backlog;
 *	- lets transfers progress for up to 50 ms;
 *	- writes the outcome of every finished transfer in one transaction, each
 *	  in a subtransaction of its own: the record mapped onto the item through
 *	  the source's mapping (upsert_items, a fetch_completed event), or a
 *	  retry after exponential backoff with jitter (Retry-After honoured), or,
 *	  after the source's retries, "failed" with the error (a fetch_failed
 *	  event).
 *
 * With nothing in flight it sleeps on its latch until the next fetch falls
 * due, a lease runs out, or enqueue_fetch() wakes it.  No transaction is
 * open while transfers run.  Fetches a dead worker left "processing" are
 * queued again at start: delivery is at least once, and applying a record
 * twice writes nothing the second time.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "http.h"
#include "source.h"
#include "worker.h"
#include "workqueue.h"

#define LEASE_CHECK_MS 1000
#define PROGRESS_WAIT_MS 50

/* What a transfer is for; lives in the fetch context with its request. */
typedef struct FetchTag
{
	char	   *queue;
	int64		id;
	int64		item_id;
	char	   *source;
	char	   *external_id;
	int			attempts;
} FetchTag;

/* A parsed source, for the turn in which fetches are started or finished. */
typedef struct SourceEntry
{
	char	   *name;
	SourceDef  *def;
} SourceEntry;

static SourceDef *
LookupSource(List **cache, const char *name)
{
	ListCell   *lc;
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	SourceEntry *e;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	foreach(lc, *cache)
		if (strcmp(((SourceEntry *) lfirst(lc))->name, name) == 0)
			return ((SourceEntry *) lfirst(lc))->def;
	if (SPI_execute_with_args("SELECT queue, ids_url, details_url, options FROM workqueue.source WHERE name = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "source \"%s\" does not exist", name);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	e = palloc(sizeof(SourceEntry));
	e->name = pstrdup(name);
	e->def = SourceParse(name, SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
						 SPI_getvalue(tup, desc, 3),
						 DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull)));
	*cache = lappend(*cache, e);
	return e->def;
}

static HttpOptions
OptionsFor(const SourceDef *src)
{
	HttpOptions o;

	o.timeout_ms = src->timeout_ms;
	o.connect_timeout_ms = Min(src->timeout_ms, 10000);
	o.max_concurrency = workqueue_http_max_concurrency;
	o.retries = 0;
	o.max_response_bytes = workqueue_http_max_response_bytes;
	o.headers = src->headers;
	return o;
}

/* Takes due fetches for the free slots and starts them. */
static int
StartDueFetches(HttpAsync *http, MemoryContext fetchcxt, int free_slots)
{
	MemoryContext turn = CurrentMemoryContext;
	List	   *sources = NIL;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(free_slots)};
	int			n;

	WorkerTxBegin("workqueue: taking due fetches");
	if (SPI_execute_with_args("SELECT queue, id, item_id, source, url, body, attempts, external_id "
							  "FROM workqueue._claim_fetches($1)", 1, types, values, NULL, false, 0)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not take due fetches");
	n = (int) SPI_processed;
	for (int r = 0; r < n; r++)
	{
		SPITupleTable *tt = SPI_tuptable;
		HeapTuple	tup = tt->vals[r];
		TupleDesc	desc = tt->tupdesc;
		char	   *source = SPI_getvalue(tup, desc, 4);
		SourceDef  *src;
		HttpOptions opts;
		HttpRequest *req;
		FetchTag   *tag;
		char	   *body;
		MemoryContext old;

		src = LookupSource(&sources, source);
		SPI_tuptable = tt;		/* LookupSource ran a query of its own */
		opts = OptionsFor(src);

		old = MemoryContextSwitchTo(fetchcxt);
		tag = palloc0(sizeof(FetchTag));
		tag->queue = pstrdup(SPI_getvalue(tup, desc, 1));
		tag->id = pg_strtoint64(SPI_getvalue(tup, desc, 2));
		tag->item_id = pg_strtoint64(SPI_getvalue(tup, desc, 3));
		tag->source = pstrdup(source);
		tag->attempts = pg_strtoint32(SPI_getvalue(tup, desc, 7));
		tag->external_id = pstrdup(SPI_getvalue(tup, desc, 8));
		req = palloc0(sizeof(HttpRequest));
		req->url = pstrdup(SPI_getvalue(tup, desc, 5));
		body = SPI_getvalue(tup, desc, 6);
		req->body = body ? pstrdup(body) : NULL;
		req->attempts = tag->attempts - 1;	/* for the backoff of this attempt */
		req->tag = tag;
		MemoryContextSwitchTo(old);
		HttpAsyncStart(http, req, &opts);
	}
	WorkerTxCommit(turn);
	return n;
}

/*
 * Maps the response of a finished fetch onto its item (caller holds a
 * transaction).  Raises on anything that makes the fetch fail.
 */
static void
ApplyResponse(HttpRequest *req, FetchTag *tag, List **sources)
{
	SourceDef  *src = LookupSource(sources, tag->source);
	Jsonb	   *body = ParseJsonBody(req->response, req->url, "fetch");
	List	   *ids = NIL;
	RecordErrors errs = {0, 0, makeStringInfo()};
	Jsonb	   *items = RecordsToItems(src, body, &ids, &errs, NULL);
	JsonbParseState *st = NULL;
	JsonbValue *one;
	bool		found = false;
	int			n = JsonContainerSize(&items->root);
	Oid			types[6] = {TEXTOID, INT8OID, INT8OID, TEXTOID, INT4OID, JSONBOID};
	Datum		values[6];

	/* the record of this item, as a one-element items array */
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n && !found; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&items->root, i);
		JsonbValue	idv;

		if (getKeyJsonValueFromContainer(elem->val.binary.data, "external_id", 11, &idv) &&
			idv.type == jbvString && (size_t) idv.val.string.len == strlen(tag->external_id) &&
			memcmp(idv.val.string.val, tag->external_id, idv.val.string.len) == 0)
		{
			pushJsonbValue(&st, WJB_ELEM, elem);
			found = true;
		}
	}
	one = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no usable record for \"%s\" in the response", tag->external_id),
				 errs.count > 0 ? errdetail("Rejected records: [%s].", errs.samples->data) : 0));

	values[0] = CStringGetTextDatum(tag->queue);
	values[1] = Int64GetDatum(tag->id);
	values[2] = Int64GetDatum(tag->item_id);
	values[3] = CStringGetTextDatum(tag->source);
	values[4] = Int32GetDatum((int32) req->status);
	values[5] = JsonbPGetDatum(JsonbValueToJsonb(one));
	if (SPI_execute_with_args("SELECT workqueue._fetch_completed($1, $2, $3, $4, $5, $6)",
							  6, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record fetch " INT64_FORMAT, tag->id);
}

static void
RecordFailure(FetchTag *tag, long http_status, const char *error, bool retry, long delay_ms)
{
	Oid			types[6] = {TEXTOID, INT8OID, INT4OID, TEXTOID, BOOLOID, INT8OID};
	Datum		values[6];
	char		nulls[6] = "      ";

	values[0] = CStringGetTextDatum(tag->queue);
	values[1] = Int64GetDatum(tag->id);
	values[2] = Int32GetDatum((int32) http_status);
	if (http_status == 0)
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(error);
	values[4] = BoolGetDatum(retry);
	values[5] = Int64GetDatum(delay_ms);
	if (SPI_execute_with_args("SELECT workqueue._fetch_failed($1, $2, $3, $4, $5, $6)",
							  6, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record fetch " INT64_FORMAT, tag->id);
}

/*
 * Writes the outcome of every finished transfer, each in a subtransaction:
 * an error while applying one response fails that fetch only.
 */
static int
FinishTransfers(HttpAsync *http)
{
	MemoryContext turn = CurrentMemoryContext;
	ResourceOwner owner;
	List	   *sources = NIL;
	HttpRequest *req;
	volatile int done = 0;

	if ((req = HttpAsyncNextDone(http)) == NULL)
		return 0;
	WorkerTxBegin("workqueue: recording fetches");
	owner = CurrentResourceOwner;
	for (; req != NULL; req = HttpAsyncNextDone(http))
	{
		FetchTag   *tag = (FetchTag *) req->tag;

		if (req->error)
			RecordFailure(tag, req->status, req->error, req->retryable, req->retry_delay_ms);
		else
		{
			MemoryContext cxt = CurrentMemoryContext;

			BeginInternalSubTransaction(NULL);
			MemoryContextSwitchTo(cxt);
			PG_TRY();
			{
				ApplyResponse(req, tag, &sources);
				ReleaseCurrentSubTransaction();
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				MemoryContextSwitchTo(cxt);
				edata = CopyErrorData();
				FlushErrorState();
				RollbackAndReleaseCurrentSubTransaction();
				MemoryContextSwitchTo(cxt);
				CurrentResourceOwner = owner;
				RecordFailure(tag, req->status,
							  strncmp(edata->message, "invalid JSON", 12) == 0 ? "invalid JSON" : edata->message,
							  false, 0);
				FreeErrorData(edata);
			}
			PG_END_TRY();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		done++;
		if (req->response)
			pfree(req->response);
		pfree(req->url);
		pfree(tag->queue);
		pfree(tag->source);
		pfree(tag->external_id);
		pfree(tag);
		pfree(req);
	}
	WorkerTxCommit(turn);
	return done;
}

static void
ExpireLeases(void)
{
	MemoryContext turn = CurrentMemoryContext;

	WorkerTxBegin("workqueue: expiring leases");
	if (SPI_execute("SELECT workqueue._expire_all_leases()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not expire leases");
	WorkerTxCommit(turn);
}

/* Milliseconds until the next queued fetch is due (capped). */
static long
NextFetchDueMs(long cap)
{
	MemoryContext turn = CurrentMemoryContext;
	long		ms = cap;
	bool		isnull;
	Datum		d;

	WorkerTxBegin("workqueue: waiting for fetches");
	if (SPI_execute("SELECT workqueue._next_fetch_at()", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the fetch queue");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		long		secs;
		int			usecs;

		TimestampDifference(GetCurrentTimestamp(), DatumGetTimestampTz(d), &secs, &usecs);
		ms = Min(cap, secs * 1000 + usecs / 1000 + 1);
	}
	WorkerTxCommit(turn);
	return ms;
}

/* The fetch worker's main loop; never returns. */
void
FetchWorkerLoop(void)
{
	MemoryContext fetchcxt = AllocSetContextCreate(TopMemoryContext, "workqueue fetches",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext turncxt = AllocSetContextCreate(TopMemoryContext, "workqueue fetch turn",
												  ALLOCSET_DEFAULT_SIZES);
	HttpAsync  *http = NULL;
	bool		recovered = false;
	TimestampTz next_lease_check = 0;

	for (;;)
	{
		int			inflight;

		MemoryContextReset(turncxt);
		MemoryContextSwitchTo(turncxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		ResetLatch(MyLatch);

		if (!WorkerExtensionReady("fetch"))
		{
			recovered = false;
			WorkerSetInFlight(http ? HttpAsyncInFlight(http) : 0);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000L, PG_WAIT_EXTENSION);
			continue;
		}
		if (!recovered)
		{
			WorkerTxBegin("workqueue: re-queueing interrupted fetches");
			if (SPI_execute("SELECT workqueue._requeue_fetches()", false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not re-queue fetches");
			WorkerTxCommit(turncxt);
			recovered = true;
		}
		if (http == NULL)
			http = HttpAsyncCreate(fetchcxt, workqueue_http_max_per_host);

		if (GetCurrentTimestamp() >= next_lease_check)
		{
			ExpireLeases();
			next_lease_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LEASE_CHECK_MS);
		}

		inflight = HttpAsyncInFlight(http);
		if (inflight < workqueue_http_max_concurrency)
			inflight += StartDueFetches(http, fetchcxt, workqueue_http_max_concurrency - inflight);
		WorkerSetInFlight(inflight);

		if (inflight > 0)
		{
			HttpAsyncWait(http, PROGRESS_WAIT_MS);
			WorkerCountJobs(FinishTransfers(http));
			continue;
		}

		{
			long		until_lease;
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), next_lease_check, &secs, &usecs);
			until_lease = secs * 1000 + usecs / 1000 + 1;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 NextFetchDueMs(until_lease), PG_WAIT_EXTENSION);
		}
	}
}

PG_FUNCTION_INFO_V1(workqueue_url_encode);

/* SQL: workqueue._url_encode(text) */
Datum
workqueue_url_encode(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(HttpEncode(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}
