/*
 * fetch.c
 *		The fetch worker: enrichment fetches, lease expiry, SLA timers.
 *
 * One loop keeps up to workqueue.http_max_concurrency transfers in flight
 * (and at most workqueue.http_max_per_host to one host) on a libcurl multi
 * handle that lives as long as the process.  Each turn it:
 *
 *	- returns expired claims to their queues (once a second);
 *	- fires the SLA warnings, breaches and escalations that are due, at the
 *	  instant the timer index (item.sla_next_at) gives and at least once a
 *	  second (workqueue._fire_sla_timers);
 *	- takes as many due fetches as there are free transfer slots
 *	  (FOR UPDATE SKIP LOCKED, status "processing", in a short transaction)
 *	  and starts them -- so a backlog of any size never puts more than the
 *	  cap in flight, and memory does not grow with the backlog;
 *	- lets transfers progress for up to 50 ms;
 *	- writes the outcome of every finished transfer in one transaction: the
 *	  records mapped onto their items through the source's mapping (one
 *	  upsert_items call per queue and source, fetch_completed events), or a
 *	  retry after exponential backoff with jitter (Retry-After honoured), or,
 *	  after the source's retries, "failed" with the error (a fetch_failed
 *	  event).
 *
 * With nothing in flight it sleeps on its latch until the next fetch falls
 * due, a lease runs out, an SLA threshold is reached, or enqueue_fetch()
 * wakes it.  No transaction is
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
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "http/http.h"
#include "sync/source.h"
#include "fetch/fetch.h"
#include "worker/slot.h"
#include "worker/xact.h"
#include "core/workqueue.h"

#define LEASE_CHECK_MS 1000
#define PROGRESS_WAIT_MS 50

/* What a transfer is for; lives in the fetch context with its request. */
typedef struct FetchTag
{
	char	   *queue;
	int64		id;
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
	if (SPI_execute_with_args("SELECT queue, id, source, url, body, attempts, external_id "
							  "FROM workqueue._claim_fetches($1)", 1, types, values, NULL, false, 0)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not take due fetches");
	n = (int) SPI_processed;
	for (int r = 0; r < n; r++)
	{
		SPITupleTable *tt = SPI_tuptable;
		HeapTuple	tup = tt->vals[r];
		TupleDesc	desc = tt->tupdesc;
		char	   *source = SPI_getvalue(tup, desc, 3);
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
		tag->source = pstrdup(source);
		tag->attempts = pg_strtoint32(SPI_getvalue(tup, desc, 6));
		tag->external_id = pstrdup(SPI_getvalue(tup, desc, 7));
		req = palloc0(sizeof(HttpRequest));
		req->url = pstrdup(SPI_getvalue(tup, desc, 4));
		body = SPI_getvalue(tup, desc, 5);
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
 * Maps the response of a finished fetch to the items element of its item
 * (a JsonbValue of the items array RecordsToItems built).  Raises on
 * anything that makes the fetch fail; touches no table.
 */
static JsonbValue *
MapResponse(HttpRequest *req, FetchTag *tag, List **sources)
{
	SourceDef  *src = LookupSource(sources, tag->source);
	Jsonb	   *body = ParseJsonBody(req->response, req->response_len, req->url, "fetch");
	List	   *ids = NIL;
	RecordErrors errs = {0, 0, makeStringInfo()};
	Jsonb	   *items = RecordsToItems(src, body, &ids, &errs, NULL);
	int			n = JsonContainerSize(&items->root);

	for (int i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&items->root, i);
		JsonbValue	idv;

		if (getKeyJsonValueFromContainer(elem->val.binary.data, "external_id", 11, &idv) &&
			idv.type == jbvString && (size_t) idv.val.string.len == strlen(tag->external_id) &&
			memcmp(idv.val.string.val, tag->external_id, idv.val.string.len) == 0)
			return elem;
	}
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("no usable record for \"%s\" in the response", tag->external_id),
			 errs.count > 0 ? errdetail("Rejected records: [%s].", errs.samples->data) : 0));
	return NULL;
}

/* Completed fetches of one queue and source, written with one statement. */
typedef struct DoneGroup
{
	char	   *queue;
	char	   *source;
	JsonbParseState *items;
	List	   *fetch_ids;		/* of int64 *, parallel to item order */
	List	   *statuses;		/* of int (as intptr) */
	int			n;
} DoneGroup;

static DoneGroup *
GroupFor(List **groups, FetchTag *tag)
{
	ListCell   *lc;
	DoneGroup  *g;

	foreach(lc, *groups)
	{
		g = lfirst(lc);
		if (strcmp(g->queue, tag->queue) == 0 && strcmp(g->source, tag->source) == 0)
			return g;
	}
	g = palloc0(sizeof(DoneGroup));
	g->queue = pstrdup(tag->queue);
	g->source = pstrdup(tag->source);
	pushJsonbValue(&g->items, WJB_BEGIN_ARRAY, NULL);
	*groups = lappend(*groups, g);
	return g;
}

static void
WriteGroup(DoneGroup *g)
{
	Oid			types[5] = {TEXTOID, TEXTOID, JSONBOID, INT8ARRAYOID, INT4ARRAYOID};
	Datum		values[5];
	Datum	   *ids = palloc(sizeof(Datum) * g->n);
	Datum	   *sts = palloc(sizeof(Datum) * g->n);
	ListCell   *a,
			   *b;
	int			i = 0;

	forboth(a, g->fetch_ids, b, g->statuses)
	{
		ids[i] = Int64GetDatum(*(int64 *) lfirst(a));
		sts[i++] = Int32GetDatum(lfirst_int(b));
	}
	values[0] = CStringGetTextDatum(g->queue);
	values[1] = CStringGetTextDatum(g->source);
	values[2] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&g->items, WJB_END_ARRAY, NULL)));
	values[3] = PointerGetDatum(construct_array(ids, g->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(sts, g->n, INT4OID, 4, true, TYPALIGN_INT));
	if (SPI_execute_with_args("SELECT workqueue._fetches_completed($1, $2, $3, $4, $5)",
							  5, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record completed fetches");
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
 * Writes the outcome of every finished transfer in one transaction: the
 * responses are mapped first (an unusable one fails its fetch only), then
 * the completed fetches of each queue and source are written with one
 * statement -- in a subtransaction, so that a group that cannot be written
 * fails its fetches instead of the worker.
 */
static int
FinishTransfers(HttpAsync *http)
{
	MemoryContext turn = CurrentMemoryContext;
	ResourceOwner owner;
	List	   *sources = NIL;
	List	   *groups = NIL;
	List	   *volatile finished = NIL;
	HttpRequest *req;
	ListCell   *lc;
	int			n;

	if ((req = HttpAsyncNextDone(http)) == NULL)
		return 0;
	WorkerTxBegin("workqueue: recording fetches");
	owner = CurrentResourceOwner;
	for (; req != NULL; req = HttpAsyncNextDone(http))
	{
		FetchTag   *tag = (FetchTag *) req->tag;
		MemoryContext cxt = CurrentMemoryContext;
		JsonbValue *volatile elem = NULL;
		char	   *volatile why = NULL;

		finished = lappend(finished, req);
		if (req->error)
		{
			RecordFailure(tag, req->status, req->error, req->retryable, req->retry_delay_ms);
			continue;
		}
		/* mapping touches no table: catching its errors needs no subtransaction */
		PG_TRY();
		{
			elem = MapResponse(req, tag, &sources);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			if (strncmp(edata->message, "invalid JSON", 12) == 0)
				why = "invalid JSON";
			else if (strncmp(edata->message, "invalid UTF-8", 13) == 0)
				why = "invalid UTF-8";
			else
				why = pstrdup(edata->message);
		}
		PG_END_TRY();
		if (why)
		{
			RecordFailure(tag, req->status, why, false, 0);
			continue;
		}
		{
			DoneGroup  *g = GroupFor(&groups, tag);
			int64	   *id = palloc(sizeof(int64));

			*id = tag->id;
			pushJsonbValue(&g->items, WJB_ELEM, elem);
			g->fetch_ids = lappend(g->fetch_ids, id);
			g->statuses = lappend_int(g->statuses, (int) req->status);
			g->n++;
		}
	}

	foreach(lc, groups)
	{
		DoneGroup  *g = lfirst(lc);
		MemoryContext cxt = CurrentMemoryContext;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			WriteGroup(g);
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;
			ListCell   *f;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			foreach(f, finished)
			{
				FetchTag   *tag = ((HttpRequest *) lfirst(f))->tag;

				if (strcmp(tag->queue, g->queue) == 0 && strcmp(tag->source, g->source) == 0 &&
					((HttpRequest *) lfirst(f))->error == NULL)
					RecordFailure(tag, ((HttpRequest *) lfirst(f))->status, edata->message, false, 0);
			}
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	n = list_length(finished);
	/* the requests live in the fetch context; the list in the transaction's */
	foreach(lc, finished)
	{
		HttpRequest *r = lfirst(lc);
		FetchTag   *tag = r->tag;

		if (r->response)
			pfree(r->response);
		pfree(r->url);
		pfree(tag->queue);
		pfree(tag->source);
		pfree(tag->external_id);
		pfree(tag);
		pfree(r);
	}
	WorkerTxCommit(turn);
	return n;
}

/*
 * Runs one of the loop's statements in a transaction of its own; raises
 * "could not <what>" unless it succeeds.  With at: returns whether the
 * statement's value is not NULL, and sets *at to it (a timestamptz).
 */
static bool
RunStatement(const char *activity, const char *sql, bool read_only, const char *what, TimestampTz *at)
{
	MemoryContext turn = CurrentMemoryContext;
	bool		isnull = true;
	Datum		d;

	WorkerTxBegin(activity);
	if (SPI_execute(sql, read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not %s", what);
	if (at != NULL)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			*at = DatumGetTimestampTz(d);
	}
	WorkerTxCommit(turn);
	return !isnull;
}

/* Milliseconds from now until t, rounded up; at least 1. */
static long
MsUntil(TimestampTz t)
{
	long		secs;
	int			usecs;

	TimestampDifference(GetCurrentTimestamp(), t, &secs, &usecs);
	return secs * 1000 + usecs / 1000 + 1;
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
	Oid			recovered = InvalidOid; /* the extension whose fetches were re-queued */
	TimestampTz next_lease_check = 0;
	TimestampTz next_sla_check = 0;

	for (;;)
	{
		int			inflight;
		Oid			ext;

		MemoryContextReset(turncxt);
		MemoryContextSwitchTo(turncxt);
		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();	/* applies to every connection and request from now on */
		ResetLatch(MyLatch);

		ext = WorkerExtensionOid("fetch");

		/*
		 * Dropped (and maybe created again) with transfers in flight: their
		 * fetch ids mean nothing now, or another fetch.  Start afresh in a
		 * new process (the launcher starts one within seconds).
		 */
		if (ext != recovered && http != NULL && HttpAsyncInFlight(http) > 0)
		{
			ereport(LOG,
					(errmsg("workqueue fetch worker: extension dropped with %d transfer(s) in flight; restarting",
							HttpAsyncInFlight(http))));
			proc_exit(0);
		}
		if (!OidIsValid(ext))
		{
			recovered = InvalidOid;
			WorkerSlotSetInFlight(0);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000L, PG_WAIT_EXTENSION);
			continue;
		}
		if (ext != recovered)
		{
			RunStatement("workqueue: re-queueing interrupted fetches", "SELECT workqueue._requeue_fetches()",
						 false, "re-queue fetches", NULL);
			recovered = ext;
		}
		if (http == NULL)
			http = HttpAsyncCreate(fetchcxt, workqueue_http_max_per_host);

		if (GetCurrentTimestamp() >= next_lease_check)
		{
			RunStatement("workqueue: expiring leases", "SELECT workqueue._expire_all_leases()",
						 false, "expire leases", NULL);
			next_lease_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LEASE_CHECK_MS);
		}

		/*
		 * SLA timers: at the next due instant the index gives, and at least
		 * once a second for items created or moved since
		 */
		if (GetCurrentTimestamp() >= next_sla_check)
		{
			TimestampTz next;	/* when the next threshold is due, if one is */
			bool		due = RunStatement("workqueue: firing sla timers",
										   "SELECT workqueue._fire_sla_timers(1000)",
										   false, "fire sla timers", &next);

			next_sla_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LEASE_CHECK_MS);
			if (due && next < next_sla_check)
				next_sla_check = next;
		}

		/* take due fetches in batches: when idle, or a quarter of the slots is free */
		inflight = HttpAsyncInFlight(http);
		if (inflight == 0 ||
			workqueue_http_max_concurrency - inflight >= Max(1, workqueue_http_max_concurrency / 4))
			inflight += StartDueFetches(http, fetchcxt, workqueue_http_max_concurrency - inflight);
		WorkerSlotSetInFlight(inflight);

		if (inflight > 0)
		{
			HttpAsyncWait(http, PROGRESS_WAIT_MS);
			WorkerSlotCountJobs(FinishTransfers(http));
			continue;
		}

		/* idle: sleep until the next fetch, lease check or SLA threshold is due */
		{
			long		timeout = MsUntil(Min(next_lease_check, next_sla_check));
			TimestampTz next_fetch;

			if (RunStatement("workqueue: waiting for fetches", "SELECT workqueue._next_fetch_at()",
							 true, "read the fetch queue", &next_fetch))
				timeout = Min(timeout, MsUntil(next_fetch));
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 timeout, PG_WAIT_EXTENSION);
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
