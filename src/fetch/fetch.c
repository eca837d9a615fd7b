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
 *	- deletes one batch of finished items whose queue's retention has passed
 *	  (workqueue._purge, workqueue.purge_batch_size items in a transaction),
 *	  batch after batch, one a turn, until none is left, then again after
 *	  workqueue.purge_interval (doc/operations.md, "Retention");
 *	- takes as many due fetches as there are free transfer slots
 *	  (FOR UPDATE SKIP LOCKED, status "processing", in a short transaction)
 *	  and starts them -- so a backlog of any size never puts more than the
 *	  cap in flight, and memory does not grow with the backlog;
 *	- lets transfers progress for up to 50 ms;
 *	- records the outcome of every finished transfer in one transaction
 *	  (RecordTurn): the record mapped onto its item through the source's
 *	  mapping, the fetch completed and a fetch_completed event; or a retry
 *	  after exponential backoff with jitter (Retry-After honoured); or,
 *	  after the source's retries, "failed" with the error and a fetch_failed
 *	  event.
 *
 * Recording a turn.  First every item of the turn is locked, in id order
 * -- the order transition_many, upsert_items and set_scope lock in, so the
 * worker can wait for them but never deadlock with them -- and read as
 * locked: its step is the one the events name, its data and priority what
 * the record is compared with.  Then three statements, prepared once per
 * backend, write the whole turn: the items whose record changed (with a
 * "synced" event each), the completed fetches (with a "fetch_completed"
 * event each), and the failed ones.  Every row is reached by its key
 * (queue, id) taken from the arrays of the turn, one index probe per row:
 * a constant "queue = 'q'" would let the planner read a queue its
 * statistics have not seen yet through the queue's whole index range.  And
 * they are planned and run with sequential scans, hash and merge joins off
 * (ExecuteProbing): a plan is kept for the life of the backend, and one
 * made while a new queue's tables were small -- where reading them whole
 * is cheapest -- would go on reading them whole once they have grown.
 *
 * A turn whose transaction loses a lock conflict -- a deadlock, a
 * serialization failure -- is rolled back and recorded again from the
 * start (WorkerTxRetry), never recorded as the fetches' failure; after
 * RECORD_ATTEMPTS the fetches stay "processing" and are taken again when
 * the worker next starts.  A batch of completions that fails for another
 * reason is written again one completion at a time, and only those that
 * still fail are recorded as failed, with the error.
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
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "http/http.h"
#include "sync/source.h"
#include "fetch/fetch.h"
#include "worker/slot.h"
#include "worker/xact.h"
#include "core/spi.h"
#include "core/workqueue.h"

#define LEASE_CHECK_MS 1000
#define PROGRESS_WAIT_MS 50

/* Times a turn is recorded before its fetches are left for the next start. */
#define RECORD_ATTEMPTS 5

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

static SPIPlanPtr source_plan;

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
	if (SPI_execute_plan(WqPlan(&source_plan, "SELECT queue, ids_url, details_url, options FROM workqueue.source WHERE name = $1",
								1, types), values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
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
	o.origins = src->origins;
	o.source = src->name;
	return o;
}

static SPIPlanPtr claim_plan;
static SPIPlanPtr claim_citus_plan;
static SPIPlanPtr lock_plan;
static SPIPlanPtr complete_plan;
static SPIPlanPtr fail_plan;

/* Takes due fetches for the free slots and starts them. */
static int
StartDueFetches(HttpAsync *http, MemoryContext fetchcxt, int free_slots)
{
	MemoryContext turn = CurrentMemoryContext;
	List	   *sources = NIL;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(free_slots)};
	int			n;
	SPIPlanPtr	plan;

	WorkerTxBegin("workqueue: taking due fetches");
	/* a distributed install locks the due fetches one queue at a time */
	if (unlikely(WqDistributed()))
		plan = WqPlan(&claim_citus_plan, "SELECT queue, id, source, url, body, attempts, external_id, item_id "
					  "FROM workqueue._claim_fetches_citus($1)", 1, types);
	else
		plan = WqPlan(&claim_plan, "SELECT queue, id, source, url, body, attempts, external_id, item_id "
					  "FROM workqueue._claim_fetches($1)", 1, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
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
		tag->item_id = pg_strtoint64(SPI_getvalue(tup, desc, 8));
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

/*
 * Locks the items of a turn, given as arrays of their queues and ids in id
 * order without duplicates, in that order, and returns them as locked:
 * their latest committed version, whatever the snapshot of a statement
 * before saw (FOR NO KEY UPDATE waits for a transaction that holds one and
 * then reads what it committed).
 */
static const char *const LOCK_SQL =
"SELECT i.id, i.step, i.data, i.priority"
"  FROM unnest($1::text[], $2::int8[]) AS k(queue, id)"
"  JOIN workqueue.item i ON i.queue = k.queue AND i.id = k.id"
" ORDER BY i.id"
"   FOR NO KEY UPDATE OF i";

/*
 * Writes the completed fetches of a turn.  $1-$8: the items whose record
 * differs from what they hold, in id order -- queue, id, new data, new
 * priority (NULL: keep), source, old data, old priority, step as locked;
 * $9-$12: the completed fetches -- queue, fetch id, HTTP status, the step
 * of the item as locked.
 *
 * An item's record goes on it as upsert_items writes it (data, priority
 * when given, source when it had none, last_seen_at, updated_at) with a
 * "synced" event; each fetch becomes "completed" with a "fetch_completed"
 * event (the announce worker announces them: src/queue/announce.c).
 */
static const char *const COMPLETE_SQL =
"WITH upd AS ("
"  UPDATE workqueue.item i"
"     SET data = c.data, priority = coalesce(c.priority, i.priority),"
"         source = coalesce(i.source, c.source), last_seen_at = now(), updated_at = now()"
"    FROM unnest($1::text[], $2::int8[], $3::jsonb[], $4::int2[], $5::text[])"
"         AS c(queue, id, data, priority, source)"
"   WHERE i.queue = c.queue AND i.id = c.id"
"  RETURNING i.queue, i.id"
"), done AS ("
"  UPDATE workqueue.fetch g"
"     SET status = 'completed', http_status = d.http_status, error = NULL, finished_at = now()"
"    FROM unnest($9::text[], $10::int8[], $11::int4[], $12::text[]) AS d(queue, id, http_status, step)"
"   WHERE g.queue = d.queue AND g.id = d.id"
"  RETURNING g.queue, g.id, g.item_id, g.source, d.http_status, d.step"
"), ev AS ("
"  INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
"  SELECT s.queue, s.id, s.source, 'synced', s.step, s.step,"
"         workqueue._sync_payload(s.old_data, s.data, s.old_priority, s.priority)"
"    FROM unnest($1::text[], $2::int8[], $3::jsonb[], $4::int2[], $5::text[], $6::jsonb[], $7::int2[], $8::text[])"
"         AS s(queue, id, data, priority, source, old_data, old_priority, step)"
"   WHERE EXISTS (SELECT FROM upd WHERE upd.queue = s.queue AND upd.id = s.id)"
"  UNION ALL"
"  SELECT done.queue, done.item_id, done.source, 'fetch_completed', done.step, done.step,"
"         pg_catalog.jsonb_build_object('fetch', done.id, 'http_status', done.http_status)"
"    FROM done"
"  RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.kind, item_event.to_step,"
"            item_event.actor"
")"
"SELECT count(*) FROM ev";

/*
 * Writes the failed attempts of a turn: $1-$7 their queues, fetch ids, HTTP
 * statuses (NULL: none), errors, whether the failure is transient, the
 * delay before another attempt, the step of the item as locked.  A
 * transient failure with attempts left queues the fetch again; any other
 * fails it for good, with a "fetch_failed" event.
 */
static const char *const FAIL_SQL =
"WITH u AS ("
"  UPDATE workqueue.fetch g"
"     SET status = CASE WHEN x.retry AND g.attempts < g.max_attempts THEN 'queued' ELSE 'failed' END,"
"         http_status = x.http_status, error = x.error,"
"         next_attempt_at = CASE WHEN x.retry AND g.attempts < g.max_attempts"
"                                THEN now() + make_interval(secs => x.delay_ms / 1000.0)"
"                                ELSE g.next_attempt_at END,"
"         finished_at = CASE WHEN x.retry AND g.attempts < g.max_attempts THEN g.finished_at ELSE now() END"
"    FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::bool[], $6::int8[], $7::text[])"
"         AS x(queue, id, http_status, error, retry, delay_ms, step)"
"   WHERE g.queue = x.queue AND g.id = x.id"
"  RETURNING g.queue, g.id, g.item_id, g.source, g.status, g.attempts, x.http_status, x.error, x.step"
"), e AS ("
"  INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
"  SELECT u.queue, u.item_id, u.source, 'fetch_failed', u.step, u.step,"
"         pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('fetch', u.id, 'http_status', u.http_status,"
"                                                                    'error', u.error, 'attempts', u.attempts))"
"    FROM u WHERE u.status = 'failed'"
"  RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step"
")"
"SELECT count(*) FROM e";

/*
 * Runs a statement of the write path (no argument NULL) with the planner
 * left nothing but index probes and nested loops: sequential scans, hash
 * and merge joins are off while it is planned -- the plan is kept and
 * planned again only when the tables' definitions or statistics change --
 * and run.  What these statements touch is a few rows per key, which an
 * index probe finds in any size of table; the choices taken away are the
 * ones whose cost grows with the table.
 */
static int
ExecuteProbing(SPIPlanPtr plan, Datum *args)
{
	int			nest = NewGUCNestLevel();
	int			rc;

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	AtEOXact_GUC(true, nest);
	return rc;
}

/* A column of a statement's array arguments, filled row by row. */
typedef struct ArgColumn
{
	Oid			type;			/* of the elements */
	int			n;
	Datum	   *values;
	bool	   *nulls;
} ArgColumn;

static void
ColumnInit(ArgColumn *c, Oid type, int capacity)
{
	c->type = type;
	c->n = 0;
	c->values = palloc(sizeof(Datum) * Max(capacity, 1));
	c->nulls = palloc(sizeof(bool) * Max(capacity, 1));
}

static void
ColumnAdd(ArgColumn *c, Datum value, bool isnull)
{
	c->values[c->n] = value;
	c->nulls[c->n++] = isnull;
}

/* The column as a one-dimensional array (empty if no row). */
static Datum
ColumnArray(ArgColumn *c)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {c->n};
	int			lbs[1] = {1};

	if (c->n == 0)
		return PointerGetDatum(construct_empty_array(c->type));
	get_typlenbyvalalign(c->type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(c->values, c->nulls, 1, dims, lbs, c->type,
											  typlen, typbyval, typalign));
}

/* What became of one finished transfer. */
typedef struct Outcome
{
	HttpRequest *req;
	FetchTag   *tag;
	JsonbValue *record;			/* completed: the item's mapped record */
	const char *error;			/* else failed: why */
	bool		retry;			/* ... whether another attempt may succeed */
	long		delay_ms;		/* ... and after how long */
	/* the item as locked (LockItems) */
	Datum		step;
	Jsonb	   *data;
	int16		priority;
} Outcome;

/* Item id order of outcomes (ids are unique across queues; the queue only keeps the order total). */
static int
CompareOutcomes(const void *a, const void *b)
{
	const FetchTag *x = ((const Outcome *) a)->tag;
	const FetchTag *y = ((const Outcome *) b)->tag;

	if (x->item_id != y->item_id)
		return x->item_id < y->item_id ? -1 : 1;
	return strcmp(x->queue, y->queue);
}

static int
CompareOutcomePointers(const void *a, const void *b)
{
	return CompareOutcomes(*(Outcome *const *) a, *(Outcome *const *) b);
}

/*
 * Sorts a finished transfer into completed (the response holds the item's
 * record) or failed.  Mapping touches no table (the source is read first):
 * catching its errors needs no subtransaction.
 */
static void
MapOutcome(Outcome *o, List **sources)
{
	HttpRequest *req = o->req;
	MemoryContext cxt = CurrentMemoryContext;
	JsonbValue *volatile record = NULL;
	const char *volatile why = NULL;

	if (req->error)
	{
		o->error = req->error;
		o->retry = req->retryable;
		o->delay_ms = req->retry_delay_ms;
		return;
	}
	(void) LookupSource(sources, o->tag->source);
	PG_TRY();
	{
		record = MapResponse(req, o->tag, sources);
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
		FreeErrorData(edata);
	}
	PG_END_TRY();
	o->record = record;
	o->error = why;
}

/*
 * The write path of a turn on a distributed install: Citus locks and
 * writes rows of one shard per statement, so every item and fetch is
 * reached by its queue and id, one statement each, planned for its values
 * (Citus routes a statement by the queue's value).  now() is passed in as
 * a value (Citus refuses it next to a column in an UPDATE).  The turn is
 * still one transaction; a single-node install never runs these.
 */
static void
CitusExec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "could not record finished fetches: SPI result %d", rc);
}

static void
LockItemsDistributed(Outcome *o, int n)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	int			j = 0;

	while (j < n)
	{
		Datum		args[2];
		int			k;
		bool		isnull;
		HeapTuple	tup;
		TupleDesc	desc;

		args[0] = CStringGetTextDatum(o[j].tag->queue);
		args[1] = Int64GetDatum(o[j].tag->item_id);
		CitusExec("SELECT i.step, i.data, i.priority FROM workqueue.item i"
				  " WHERE i.queue = $1 AND i.id = $2 FOR NO KEY UPDATE OF i",
				  2, types, args, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			elog(ERROR, "item " INT64_FORMAT " of fetch " INT64_FORMAT " does not exist",
				 o[j].tag->item_id, o[j].tag->id);
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		for (k = j; k < n && CompareOutcomes(&o[j], &o[k]) == 0; k++)
		{
			o[k].step = SPI_getbinval(tup, desc, 1, &isnull);
			o[k].data = DatumGetJsonbP(SPI_getbinval(tup, desc, 2, &isnull));
			o[k].priority = DatumGetInt16(SPI_getbinval(tup, desc, 3, &isnull));
		}
		j = k;
	}
}

/* One completion on a distributed install (see LockItemsDistributed). */
static void
WriteCompletionDistributed(Outcome *o, bool changed, Jsonb *data, bool has_priority, int16 priority)
{
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Datum		queue = CStringGetTextDatum(o->tag->queue);
	Datum		source = CStringGetTextDatum(o->tag->source);

	if (changed)
	{
		Oid			ut[6] = {TEXTOID, INT8OID, JSONBOID, INT2OID, TEXTOID, TIMESTAMPTZOID};
		Datum		ua[6] = {queue, Int64GetDatum(o->tag->item_id), JsonbPGetDatum(data),
		Int16GetDatum(priority), source, now};
		char		un[7] = {' ', ' ', ' ', has_priority ? ' ' : 'n', ' ', ' ', 0};
		Oid			et[8] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, INT2OID, INT2OID};
		Datum		ea[8] = {queue, Int64GetDatum(o->tag->item_id), source, o->step,
			JsonbPGetDatum(o->data), JsonbPGetDatum(data), Int16GetDatum(o->priority), Int16GetDatum(priority)};
		char		en[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', has_priority ? ' ' : 'n', 0};

		CitusExec("UPDATE workqueue.item i SET data = $3, priority = coalesce($4, i.priority),"
				  " source = coalesce(i.source, $5), last_seen_at = $6, updated_at = $6"
				  " WHERE i.queue = $1 AND i.id = $2", 6, ut, ua, un, SPI_OK_UPDATE);
		if (SPI_processed == 1)
			CitusExec("INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
					  " VALUES ($1, $2, $3, 'synced', $4, $4, workqueue._sync_payload($5, $6, $7, $8))",
					  8, et, ea, en, SPI_OK_INSERT);
	}
	{
		Oid			ft[4] = {TEXTOID, INT8OID, INT4OID, TIMESTAMPTZOID};
		Datum		fa[4] = {queue, Int64GetDatum(o->tag->id), Int32GetDatum((int32) o->req->status), now};

		CitusExec("UPDATE workqueue.fetch g SET status = 'completed', http_status = $3, error = NULL,"
				  " finished_at = $4 WHERE g.queue = $1 AND g.id = $2", 4, ft, fa, NULL, SPI_OK_UPDATE);
		if (SPI_processed == 1)
		{
			Oid			et[6] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, INT8OID, INT4OID};
			Datum		ea[6] = {queue, Int64GetDatum(o->tag->item_id), source, o->step,
			Int64GetDatum(o->tag->id), Int32GetDatum((int32) o->req->status)};

			CitusExec("INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
					  " VALUES ($1, $2, $3, 'fetch_completed', $4, $4,"
					  " pg_catalog.jsonb_build_object('fetch', $5, 'http_status', $6))",
					  6, et, ea, NULL, SPI_OK_INSERT);
		}
	}
}

/* One failed attempt on a distributed install (see LockItemsDistributed). */
static void
WriteFailureDistributed(Outcome *o)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		queue = CStringGetTextDatum(o->tag->queue);
	Oid			ft[7] = {TEXTOID, INT8OID, BOOLOID, INT4OID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		fa[7] = {queue, Int64GetDatum(o->tag->id), BoolGetDatum(o->retry),
		Int32GetDatum((int32) o->req->status), CStringGetTextDatum(o->error),
		TimestampTzGetDatum(now + (TimestampTz) o->delay_ms * 1000), TimestampTzGetDatum(now)};
	char		fn[8] = {' ', ' ', ' ', o->req->status == 0 ? 'n' : ' ', ' ', ' ', ' ', 0};
	bool		isnull;

	CitusExec("UPDATE workqueue.fetch g"
			  "   SET status = CASE WHEN $3 AND g.attempts < g.max_attempts THEN 'queued' ELSE 'failed' END,"
			  "       http_status = $4, error = $5,"
			  "       next_attempt_at = CASE WHEN $3 AND g.attempts < g.max_attempts THEN $6 ELSE g.next_attempt_at END,"
			  "       finished_at = CASE WHEN $3 AND g.attempts < g.max_attempts THEN g.finished_at ELSE $7 END"
			  " WHERE g.queue = $1 AND g.id = $2"
			  " RETURNING g.status = 'failed', g.attempts, g.source",
			  7, ft, fa, fn, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		int32		attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
														   &isnull));
		char	   *source = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		Oid			et[8] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, INT8OID, INT4OID, TEXTOID, INT4OID};
		Datum		ea[8] = {queue, Int64GetDatum(o->tag->item_id), CStringGetTextDatum(source), o->step,
			Int64GetDatum(o->tag->id), Int32GetDatum((int32) o->req->status), CStringGetTextDatum(o->error),
		Int32GetDatum(attempts)};
		char		en[9] = {' ', ' ', ' ', ' ', ' ', o->req->status == 0 ? 'n' : ' ', ' ', ' ', 0};

		CitusExec("INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
				  " VALUES ($1, $2, $3, 'fetch_failed', $4, $4, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object("
				  "'fetch', $5, 'http_status', $6, 'error', $7, 'attempts', $8)))",
				  8, et, ea, en, SPI_OK_INSERT);
	}
}

/*
 * Locks the items of the outcomes (sorted by item id) in id order, and
 * fills in each outcome its item's step, data and priority as locked.
 */
static void
LockItems(Outcome *o, int n)
{
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2];
	ArgColumn	queues;
	ArgColumn	ids;
	int			j = 0;

	if (unlikely(WqDistributed()))
	{
		LockItemsDistributed(o, n);
		return;
	}
	ColumnInit(&queues, TEXTOID, n);
	ColumnInit(&ids, INT8OID, n);
	for (int i = 0; i < n; i++)
		if (i == 0 || CompareOutcomes(&o[i - 1], &o[i]) != 0)
		{
			ColumnAdd(&queues, CStringGetTextDatum(o[i].tag->queue), false);
			ColumnAdd(&ids, Int64GetDatum(o[i].tag->item_id), false);
		}
	args[0] = ColumnArray(&queues);
	args[1] = ColumnArray(&ids);
	if (ExecuteProbing(WqPlan(&lock_plan, LOCK_SQL, 2, types), args) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the items of finished fetches");

	/* the rows come in id order, one per distinct item */
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		step = SPI_getbinval(tup, desc, 2, &isnull);
		Jsonb	   *data = DatumGetJsonbP(SPI_getbinval(tup, desc, 3, &isnull));
		int16		priority = DatumGetInt16(SPI_getbinval(tup, desc, 4, &isnull));

		for (; j < n && o[j].tag->item_id == id; j++)
		{
			o[j].step = step;
			o[j].data = data;
			o[j].priority = priority;
		}
	}
	if (j < n)
		elog(ERROR, "item " INT64_FORMAT " of fetch " INT64_FORMAT " does not exist",
			 o[j].tag->item_id, o[j].tag->id);
}

/*
 * Writes the completed fetches done[0..n-1] (in item id order) with
 * COMPLETE_SQL: the record of each compared with its item as locked, and
 * written only where it differs.
 */
static void
WriteCompletions(Outcome **done, int n)
{
	Oid			types[12] = {TEXTARRAYOID, INT8ARRAYOID, JSONBARRAYOID, INT2ARRAYOID, TEXTARRAYOID,
		JSONBARRAYOID, INT2ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID};
	Oid			coltypes[12] = {TEXTOID, INT8OID, JSONBOID, INT2OID, TEXTOID, JSONBOID, INT2OID, TEXTOID,
	TEXTOID, INT8OID, INT4OID, TEXTOID};
	ArgColumn	col[12];
	Datum		args[12];

	for (int c = 0; c < 12; c++)
		ColumnInit(&col[c], coltypes[c], n);
	for (int i = 0; i < n; i++)
	{
		Outcome    *o = done[i];
		JsonbContainer *rec = o->record->val.binary.data;
		JsonbValue	v;
		Jsonb	   *data;
		bool		has_priority = false;
		int16		priority = 0;

		if (getKeyJsonValueFromContainer(rec, "priority", 8, &v) && v.type == jbvNumeric)
		{
			has_priority = true;
			priority = DatumGetInt16(DirectFunctionCall1(numeric_int2, NumericGetDatum(v.val.numeric)));
		}
		if (getKeyJsonValueFromContainer(rec, "data", 4, &v) && v.type == jbvBinary)
			data = JsonbValueToJsonb(&v);
		else
			data = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));

		/* as upsert_items: an equal record writes nothing but the fetch */
		if (unlikely(WqDistributed()))
		{
			WriteCompletionDistributed(o, (has_priority && priority != o->priority) ||
									   compareJsonbContainers(&data->root, &o->data->root) != 0,
									   data, has_priority, priority);
			continue;
		}
		if ((has_priority && priority != o->priority) ||
			compareJsonbContainers(&data->root, &o->data->root) != 0)
		{
			ColumnAdd(&col[0], CStringGetTextDatum(o->tag->queue), false);
			ColumnAdd(&col[1], Int64GetDatum(o->tag->item_id), false);
			ColumnAdd(&col[2], JsonbPGetDatum(data), false);
			ColumnAdd(&col[3], Int16GetDatum(priority), !has_priority);
			ColumnAdd(&col[4], CStringGetTextDatum(o->tag->source), false);
			ColumnAdd(&col[5], JsonbPGetDatum(o->data), false);
			ColumnAdd(&col[6], Int16GetDatum(o->priority), false);
			ColumnAdd(&col[7], o->step, false);
		}
		ColumnAdd(&col[8], CStringGetTextDatum(o->tag->queue), false);
		ColumnAdd(&col[9], Int64GetDatum(o->tag->id), false);
		ColumnAdd(&col[10], Int32GetDatum((int32) o->req->status), false);
		ColumnAdd(&col[11], o->step, false);
	}
	if (unlikely(WqDistributed()))
		return;
	for (int c = 0; c < 12; c++)
		args[c] = ColumnArray(&col[c]);
	if (ExecuteProbing(WqPlan(&complete_plan, COMPLETE_SQL, 12, types), args) != SPI_OK_SELECT)
		elog(ERROR, "could not record completed fetches");
}

/*
 * Writes the completions done[0..n-1] in a subtransaction.  Returns NULL
 * if they were written; else the error (in the caller's memory context),
 * with nothing of them written -- unless the error is retryable
 * (WorkerErrorIsRetryable), which is raised again: the whole turn is
 * recorded again, not its fetches failed.
 */
static ErrorData *
TryCompletions(Outcome **done, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile failed = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		WriteCompletions(done, n);
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
		if (WorkerErrorIsRetryable(edata->sqlerrcode))
			ReThrowError(edata);
		failed = edata;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return failed;
}

/*
 * Writes the failed attempts fails[0..n-1] (their items locked) with
 * FAIL_SQL.
 */
static void
WriteFailures(Outcome **fails, int n)
{
	Oid			types[7] = {TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, BOOLARRAYOID,
	INT8ARRAYOID, TEXTARRAYOID};
	Oid			coltypes[7] = {TEXTOID, INT8OID, INT4OID, TEXTOID, BOOLOID, INT8OID, TEXTOID};
	ArgColumn	col[7];
	Datum		args[7];

	if (unlikely(WqDistributed()))
	{
		for (int i = 0; i < n; i++)
			WriteFailureDistributed(fails[i]);
		return;
	}
	for (int c = 0; c < 7; c++)
		ColumnInit(&col[c], coltypes[c], n);
	for (int i = 0; i < n; i++)
	{
		Outcome    *o = fails[i];

		ColumnAdd(&col[0], CStringGetTextDatum(o->tag->queue), false);
		ColumnAdd(&col[1], Int64GetDatum(o->tag->id), false);
		ColumnAdd(&col[2], Int32GetDatum((int32) o->req->status), o->req->status == 0);
		ColumnAdd(&col[3], CStringGetTextDatum(o->error), false);
		ColumnAdd(&col[4], BoolGetDatum(o->retry), false);
		ColumnAdd(&col[5], Int64GetDatum((int64) o->delay_ms), false);
		ColumnAdd(&col[6], o->step, false);
	}
	for (int c = 0; c < 7; c++)
		args[c] = ColumnArray(&col[c]);
	if (ExecuteProbing(WqPlan(&fail_plan, FAIL_SQL, 7, types), args) != SPI_OK_SELECT)
		elog(ERROR, "could not record failed fetches");
}

/* A turn's finished transfers, for RecordTurn. */
typedef struct Turn
{
	HttpRequest **reqs;
	int			n;
} Turn;

/*
 * Records the outcome of a turn's finished transfers (a WorkerTxBody: it
 * runs in a transaction, and again from the start in a new one after a
 * lost lock conflict).  The responses are mapped, every item of the turn
 * is locked in id order, then the completions and the failures are
 * written.  Completions that cannot be written fail, with the error --
 * all of them in one batch first, and when that fails each alone, so that
 * one bad record fails its fetch only.
 */
static void
RecordTurn(void *arg)
{
	Turn	   *turn = (Turn *) arg;
	int			n = turn->n;
	Outcome    *o = palloc0(sizeof(Outcome) * n);
	Outcome   **done = palloc(sizeof(Outcome *) * n);
	Outcome   **fails = palloc(sizeof(Outcome *) * n);
	int			ndone = 0;
	int			nfails = 0;
	List	   *sources = NIL;

	for (int i = 0; i < n; i++)
	{
		o[i].req = turn->reqs[i];
		o[i].tag = (FetchTag *) turn->reqs[i]->tag;
		MapOutcome(&o[i], &sources);
	}
	qsort(o, n, sizeof(Outcome), CompareOutcomes);
	LockItems(o, n);

	for (int i = 0; i < n; i++)
	{
		if (o[i].record)
			done[ndone++] = &o[i];
		else
			fails[nfails++] = &o[i];
	}
	if (ndone > 0)
	{
		ErrorData  *edata = TryCompletions(done, ndone);

		for (int i = 0; edata != NULL && i < ndone; i++)
		{
			ErrorData  *one = ndone == 1 ? edata : TryCompletions(&done[i], 1);

			if (one == NULL)
				continue;
			done[i]->record = NULL;
			done[i]->error = one->message;
			done[i]->retry = false;
			fails[nfails++] = done[i];
		}
	}
	if (nfails > 0)
	{
		/* back in item id order, for the events' ids */
		qsort(fails, nfails, sizeof(Outcome *), CompareOutcomePointers);
		WriteFailures(fails, nfails);
	}
}

/*
 * Records the outcome of every finished transfer in one transaction
 * (RecordTurn), retried after a lost lock conflict; returns how many were
 * recorded.
 */
static int
FinishTransfers(HttpAsync *http)
{
	Turn		turn;
	HttpRequest *req;
	ErrorData  *edata;
	int			cap = 16;

	turn.n = 0;
	turn.reqs = palloc(sizeof(HttpRequest *) * cap);
	while ((req = HttpAsyncNextDone(http)) != NULL)
	{
		if (turn.n == cap)
			turn.reqs = repalloc(turn.reqs, sizeof(HttpRequest *) * (cap *= 2));
		turn.reqs[turn.n++] = req;
	}
	if (turn.n == 0)
		return 0;

	edata = WorkerTxRetry("workqueue: recording fetches", RecordTurn, &turn, RECORD_ATTEMPTS);
	if (edata != NULL)
		ereport(LOG,
				(errmsg("workqueue fetch worker: could not record %d finished fetch(es) after %d attempts",
						turn.n, RECORD_ATTEMPTS),
				 errdetail("The last attempt failed with: %s", edata->message),
				 errhint("They stay processing and are taken again when the fetch worker next starts.")));

	/* the requests live in the fetch context */
	for (int i = 0; i < turn.n; i++)
	{
		HttpRequest *r = turn.reqs[i];
		FetchTag   *tag = r->tag;

		if (r->response)
			pfree(r->response);
		if (r->error)
			pfree(r->error);
		if (r->next_link)
			pfree(r->next_link);
		if (r->body)
			pfree(r->body);
		pfree(r->url);
		pfree(tag->queue);
		pfree(tag->source);
		pfree(tag->external_id);
		pfree(tag);
		pfree(r);
	}
	return edata == NULL ? turn.n : 0;
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

/*
 * Fires the SLA timers (workqueue._fire_sla_timers) in a transaction of its
 * own, as RunStatement.  On a distributed install a failure is logged (a
 * WARNING) and the turn goes on -- fetches and leases must not stop with
 * it -- and the timers are tried again a minute later; on one node an
 * error ends the worker, as ever.  (The mode is asked inside the
 * transaction: WqDistributed reads a table the first time.)
 */
static bool
FireSlaTimers(TimestampTz *at)
{
	static TimestampTz failed_until = 0;
	MemoryContext turn = CurrentMemoryContext;
	volatile bool citus = false;
	volatile bool due = false;

	PG_TRY();
	{
		WorkerTxBegin("workqueue: firing sla timers");
		citus = WqDistributed();
		if (!citus || GetCurrentTimestamp() >= failed_until)
		{
			bool		isnull;
			Datum		d;

			if (SPI_execute("SELECT workqueue._fire_sla_timers(1000)", false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not fire sla timers");
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				*at = DatumGetTimestampTz(d);
			due = !isnull;
		}
		WorkerTxCommit(turn);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (!citus)
			PG_RE_THROW();
		edata = WorkerTxAbort(turn);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("workqueue: sla timers failed on a distributed install: %s", edata->message),
				 errdetail("Fetches and leases go on; the timers are tried again in a minute."),
				 errhint("See doc/scale-out.md, \"The fetch worker on Citus\".")));
		FreeErrorData(edata);
		failed_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000);
		due = false;
	}
	PG_END_TRY();
	return due;
}

/*
 * Deletes one batch of finished items past their queue's retention
 * (workqueue._purge) in a transaction of its own and returns how many went.
 * A failure is logged and ends the purge until the next interval, rather
 * than the worker: fetches, leases and SLA timers go on.
 */
static int
PurgeBatch(void)
{
	MemoryContext turn = CurrentMemoryContext;
	volatile int n = 0;

	PG_TRY();
	{
		Oid			argtype = INT4OID;
		Datum		arg = Int32GetDatum(workqueue_purge_batch_size);
		bool		isnull;

		WorkerTxBegin("workqueue: purging finished items");
		/*
		 * Only once the database is at this library's version: before its
		 * ALTER EXTENSION ... UPDATE (doc/operations.md, "Upgrading") there
		 * is no workqueue._purge, and no retention set either.
		 */
		if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'workqueue'"
						" AND extversion = '" WORKQUEUE_VERSION "'", true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
		{
			if (SPI_execute_with_args("SELECT workqueue._purge($1)", 1, &argtype, &arg, NULL,
									  false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not purge finished items");
			n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		WorkerTxCommit(turn);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		edata = WorkerTxAbort(turn);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("workqueue: retention purge failed: %s", edata->message),
				 errdetail("The purge goes on after workqueue.purge_interval (%d s).",
						   workqueue_purge_interval_s)));
		FreeErrorData(edata);
		n = 0;
	}
	PG_END_TRY();
	return n;
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
	TimestampTz next_purge = 0;

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
			bool		due = FireSlaTimers(&next);

			next_sla_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LEASE_CHECK_MS);
			if (due && next < next_sla_check)
				next_sla_check = next;
		}

		/*
		 * Retention: one batch a turn while a purge finds items, so that
		 * fetches, leases and timers go on between batches
		 */
		if (workqueue_purge_interval_s > 0)
		{
			/* (an interval shortened by a reload applies at once) */
			next_purge = Min(next_purge, TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																	 (int64) workqueue_purge_interval_s * 1000));
		}
		if (workqueue_purge_interval_s > 0 && GetCurrentTimestamp() >= next_purge)
		{
			if (PurgeBatch() > 0)
				next_purge = GetCurrentTimestamp();
			else
				next_purge = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 (int64) workqueue_purge_interval_s * 1000);
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

		/* idle: sleep until the next fetch, lease check, SLA threshold or purge is due */
		{
			long		timeout = MsUntil(Min(next_lease_check, next_sla_check));
			TimestampTz next_fetch;

			if (workqueue_purge_interval_s > 0)
				timeout = Min(timeout, MsUntil(next_purge));

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
