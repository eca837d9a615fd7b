/*
 * upsert.c
 *		upsert_items: writes a batch of upstream records as work items.
 *
 * A call has three phases; nothing is written before the third.
 *
 *	1. Validation (ParseItems), in C: items is an array of objects with the
 *	   keys external_id (a string or a number, which becomes its text form),
 *	   priority (absent, null or an integer 1-5, as a number or a numeric
 *	   string) and data (absent, which means {}, or an object), and no
 *	   external_id appears twice.  The first problem raises an error naming
 *	   the element's 1-based position.  Nothing is copied: each SyncItem
 *	   points into the items value.
 *
 *	2. Reading (ClassifyRecords), in C: the external ids are looked up in
 *	   the queue with a fresh snapshot (SyncFindItems in diff.c: one pass over
 *	   the queue's part of the unique index, or an index probe per id for a
 *	   small batch), and each item found is compared with its record: data
 *	   with jsonb equality, priority only when given.  This sorts the
 *	   records into new ones, changed ones and equal ones.  Equal ones are
 *	   done with: no lock, no new tuple, no event, so a re-sync of unchanged
 *	   records writes no WAL.  The queue is read and the source checked
 *	   (workqueue._check_actor: it becomes the events' actor) here too.
 *
 *	3. Writing.  First the changed records: one SQL statement (UPDATE_SQL),
 *	   prepared once per backend, run through SPI with them as arrays, that
 *	   locks the changed items in id order (FOR NO KEY UPDATE, which reads
 *	   their latest version) and updates those that still differ: data,
 *	   priority when given, last_seen_at, updated_at, and source when it was
 *	   NULL; each gets a "synced" event with the old and new values of what
 *	   changed (workqueue._sync_payload).  Then the new records, in external-id order, through the one
 *	   insert path for new items (src/queue/insert.c): at the start step of
 *	   the current version of the queue's workflow, with their SLA and
 *	   assignee in the same write, a "created" event each and an "assigned"
 *	   event for each assignee.  Both statements are re-planned for every
 *	   big call (CURSOR_OPT_CUSTOM_PLAN): a generic plan guesses ten array
 *	   elements.  The announce worker announces the events after the
 *	   commit (src/queue/announce.c; one summary for a bulk of them).
 *
 * Concurrency.  New items go in through the insert path, which ends up
 * with ON CONFLICT (queue, external_id) DO NOTHING when an id exists
 * (src/queue/insert.c): when another transaction inserts the same new
 * external id first, our row is skipped (after waiting for that
 * transaction to end), never duplicated and never a unique violation.  The statement returns the skipped records
 * and the call classifies and writes just those once more, with a new
 * snapshot in which they exist (under REPEATABLE READ the conflict is a
 * serialization failure instead, as for any write-write conflict).  Rows
 * are locked in a fixed order -- existing items by id, then the role of the
 * start step (the insert path picks assignees), then new external ids in
 * byte order -- so that concurrent upserts of overlapping batches cannot
 * deadlock, nor an upsert with a transition (items, then the role).
 *
 * The ownership rule holds by construction: the statement writes no other
 * column of an existing item than the upstream-owned ones above.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "core/jsonutil.h"
#include "core/spi.h"
#include "core/srf.h"
#include "queue/insert.h"
#include "queue/priority.h"
#include "sync/sync_db.h"


/*
 * Most records one call takes: 10 times the benchmark's 100,000, and far
 * below the 26 million elements a 256 MB jsonb array can hold, for which
 * the per-record state alone would exceed palloc's 1 GB.
 */
#define UPSERT_MAX_ITEMS		1000000

/* Rounds of classify-and-write per call: the first, and retries of races. */
#define UPSERT_MAX_PASSES		3

/* One validated element of items; pointers go into the items value. */
typedef struct SyncItem
{
	SyncId		id;				/* external id (palloc'd if it was a number) */
	bool		has_priority;
	int16		priority;
	JsonbContainer *data;		/* the data object */
	uint32		datalen;
} SyncItem;

/* What ClassifyRecords found for a set of positions of the input. */
typedef struct Classified
{
	int		   *newpos;			/* positions with no item, in external-id order */
	int			nnew;
	int		   *chpos;			/* positions whose item differs, in item-id order */
	int64	   *chid;			/* ... and those items' ids */
	int			nch;
} Classified;

/* Counts of one run of the statement. */
typedef struct PassResult
{
	int64		inserted;
	int64		updated;
	int		   *skipped;		/* positions of new items lost to a race */
	int			nskipped;
} PassResult;

#define UPDATE_NARGS 6

/* locks the changed items in id order and updates those that still differ */
#define UPDATE_CTES \
"WITH lk AS (" \
"    SELECT i.id, i.step, i.data AS old_data, i.priority AS old_priority," \
"           c.data AS new_data, c.priority AS new_priority" \
"      FROM (SELECT unnest($4::int8[]) AS id, unnest($5::int2[]) AS priority," \
"                   unnest($6::jsonb[]) AS data) AS c" \
"      JOIN workqueue.item i ON i.queue = $1 AND i.id = c.id" \
"     ORDER BY i.id" \
"       FOR NO KEY UPDATE OF i" \
"), upd AS (" \
"    UPDATE workqueue.item i" \
"       SET data = lk.new_data, priority = coalesce(lk.new_priority, i.priority)," \
"           source = coalesce(i.source, $2), last_seen_at = now(), updated_at = now()" \
"      FROM lk" \
"     WHERE i.queue = $1 AND i.id = lk.id" \
"       AND (lk.old_data <> lk.new_data OR coalesce(lk.old_priority <> lk.new_priority, false))" \
"    RETURNING i.id, i.step, lk.old_data, lk.new_data, lk.old_priority, lk.new_priority"

/*
 * $1 queue, $2 source, $3 actor, $4-$6 the changed items (item ids,
 * priorities, data) in id order.
 *
 * Returns the count of updated items.  The arrays are read
 * with unnest() in the target list, which streams them in order (unnest()
 * in FROM would first copy them into a tuplestore).
 */
static const char *const UPDATE_SQL =
UPDATE_CTES
"), ev AS ("
"    INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
"    SELECT $1, upd.id, $3, 'synced', upd.step, upd.step,"
"           workqueue._sync_payload(upd.old_data, upd.new_data, upd.old_priority, upd.new_priority)"
"      FROM upd"
"    RETURNING id"
")"
"SELECT count(*) FROM upd";

/*
 * UPDATE_SQL on a distributed install, in two statements: Citus plans a
 * statement with an INSERT in a CTE in pieces (one per CTE, passing rows
 * between them through the coordinator) and failed on the pieces of
 * UPDATE_SQL ("invalid input syntax for type bigint: \"PGCOPY\"").  The
 * same parameters; returns the updated items' ids, steps and event
 * payloads, and UPDATE_EVENTS_SQL ($1 queue, $2 actor, $3-$5 those columns)
 * writes their "synced" events.  Both name the queue, and both go to its
 * shard, in the same transaction.
 */
static const char *const UPDATE_CITUS_SQL =
UPDATE_CTES
")"
"SELECT upd.id, upd.step,"
"       workqueue._sync_payload(upd.old_data, upd.new_data, upd.old_priority, upd.new_priority)"
"  FROM upd ORDER BY upd.id";

static const char *const UPDATE_EVENTS_SQL =
"INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)"
"SELECT $1, e.id, $2, 'synced', e.step, e.step, e.payload"
"  FROM unnest($3::int8[], $4::text[], $5::jsonb[]) AS e(id, step, payload)";

/* the types of $1 to $6 of UPDATE_SQL */
static Oid	update_types[UPDATE_NARGS] = {TEXTOID, TEXTOID, TEXTOID,
INT8ARRAYOID, INT2ARRAYOID, JSONBARRAYOID};

static SPIPlanPtr actor_plan;
static SPIPlanPtr update_plan;
static SPIPlanPtr update_citus_plan;
static SPIPlanPtr update_events_plan;

/*
 * external_id of element pos: a string as it is, a number in its text form.
 */
static void
ExternalId(JsonbValue *v, int pos, SyncItem *item)
{
	if (v == NULL || v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("element %d of items has no \"external_id\"", pos),
				 errhint("Every element needs an \"external_id\" that is a string or a number.")));
	if (v->type == jbvNumeric)
	{
		item->id.s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		item->id.len = strlen(item->id.s);
	}
	else if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"external_id\" of element %d must be a string or a number", pos),
				 errdetail("It is of type %s.", JsonbTypeName(v))));
	else if (v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("element %d of items has an empty \"external_id\"", pos),
				 errhint("Every element needs a non-empty \"external_id\".")));
	else
	{
		item->id.s = v->val.string.val;
		item->id.len = v->val.string.len;
	}
	if (item->id.len > WQ_EXTERNAL_ID_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("\"external_id\" of element %d is too long", pos),
				 errdetail("It is %d bytes long; the limit is %d bytes. It begins \"%s\".",
						   item->id.len, WQ_EXTERNAL_ID_MAX_BYTES, WorkqueueClip(item->id.s, item->id.len)),
				 errhint("Upstream ids are short keys; pass the long value in \"data\" instead.")));
}

/* priority of element pos, unless absent or null (src/queue/priority.c). */
static void
Priority(JsonbValue *v, int pos, SyncItem *item)
{
	char	   *text;
	bool		quoted;

	PriorityStatus status = PriorityParse(v, &item->priority, &text, &quoted);

	switch (status)
	{
		case PRIORITY_OK:
			item->has_priority = true;
			return;
		case PRIORITY_ABSENT:
			item->has_priority = false;
			return;
		case PRIORITY_WRONG_TYPE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("priority of element %d must be a number or a numeric string", pos),
					 errdetail("It is of type %s.", JsonbTypeName(v))));
			break;
		case PRIORITY_NOT_NUMBER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("priority \"%s\" of element %d is not a number", text, pos),
					 errdetail("Priorities run from 1 (highest) to 5 (lowest)."),
					 errhint("Pass an integer from 1 to 5, as a number or a numeric string.")));
			break;
		case PRIORITY_NOT_INTEGER:
		case PRIORITY_OUT_OF_RANGE:
			{
				bool		range = status == PRIORITY_OUT_OF_RANGE;

				ereport(ERROR,
						(errcode(range ? ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE : ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg(quoted ? "priority \"%s\" of element %d is %s" : "priority %s of element %d is %s",
								text, pos, range ? "out of range" : "not an integer"),
						 errdetail("Priorities run from 1 (highest) to 5 (lowest)."),
						 range ? errhint("Pass a priority between 1 and 5, or leave it out to keep the item's priority.") : 0));
			}
			break;
	}
}

/*
 * Reads element pos (1-based) of items; empty is the {} used when there is
 * no "data".
 */
static void
ParseElement(JsonbValue *elem, int pos, SyncItem *item, Jsonb *empty)
{
	JsonbContainer *obj;
	JsonbValue	idv;
	JsonbValue	priov;
	JsonbValue	datav;
	JsonbValue *id;
	JsonbValue *prio;
	JsonbValue *data;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("element %d of items is not a JSON object", pos),
				 errdetail("It is of type %s.", JsonbTypeName(elem)),
				 errhint("Each element looks like {\"external_id\": \"A-1\", \"priority\": 2, \"data\": {...}}.")));
	obj = elem->val.binary.data;

	id = getKeyJsonValueFromContainer(obj, "external_id", 11, &idv);
	prio = getKeyJsonValueFromContainer(obj, "priority", 8, &priov);
	data = getKeyJsonValueFromContainer(obj, "data", 4, &datav);
	if (JsonContainerSize(obj) > (uint32) ((id != NULL) + (prio != NULL) + (data != NULL)))
	{
		static const char *const element_keys[] = {"external_id", "priority", "data", NULL};
		JbMembers	m;

		JbMembersInit(&m, obj);
		while (JbMembersNext(&m))
			if (!JbKeyIn(element_keys, &m.key))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("element %d of items has unrecognized key \"%s\"", pos, JbString(&m.key)),
						 errhint("The keys of an element are \"external_id\", \"priority\" and \"data\".")));
	}

	ExternalId(id, pos, item);
	Priority(prio, pos, item);
	if (data == NULL)
	{
		item->data = &empty->root;
		item->datalen = VARSIZE(empty) - VARHDRSZ;
	}
	else if (data->type == jbvBinary && JsonContainerIsObject(data->val.binary.data))
	{
		item->data = data->val.binary.data;
		item->datalen = data->val.binary.len;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"data\" of element %d must be a JSON object", pos),
				 errdetail("It is of type %s.", JsonbTypeName(data)),
				 errhint("Leave \"data\" out for an empty object, or wrap the value, e.g. {\"value\": ...}.")));
}

/*
 * Validates items and returns its elements; raises on the first problem.
 * Also returns the set of their external ids (for the first ClassifyRecords).
 */
static SyncItem *
ParseItems(Jsonb *items, int *n, SyncIdSet **set)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Jsonb	   *empty = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	SyncItem   *out;
	int			pos = 0;
	SyncId	   *ids;
	int			dup1;
	int			dup2;

	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
	{
		JsonbValue	root;

		JsonbToJsonbValue(items, &root);
		if (JB_ROOT_IS_SCALAR(items))
			(void) JsonbExtractScalar(&items->root, &root);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be a JSON array"),
				 errdetail("The value given is of type %s.", JsonbTypeName(&root)),
				 errhint("Pass an array of objects like {\"external_id\": \"A-1\", \"priority\": 2, \"data\": {...}}.")));
	}

	*n = JB_ROOT_COUNT(items);
	if (*n > UPSERT_MAX_ITEMS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("items has too many elements"),
				 errdetail("It has %d elements; the limit is %d per call.", *n, UPSERT_MAX_ITEMS),
				 errhint("Pass the records in smaller batches, in one transaction if they belong together.")));
	out = palloc(sizeof(SyncItem) * Max(*n, 1));
	it = JsonbIteratorInit(&items->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		CHECK_FOR_INTERRUPTS();
		ParseElement(&v, pos + 1, &out[pos], empty);
		pos++;
	}
	Assert(pos == *n);

	ids = palloc(sizeof(SyncId) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		ids[i] = out[i].id;
	*set = SyncIdSetFromList(ids, *n, &dup1, &dup2);
	if (*set == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_id \"%s\" appears in elements %d and %d of items",
						pnstrdup(out[dup1].id.s, out[dup1].id.len), dup1 + 1, dup2 + 1),
				 errhint("Pass each external id once per call.")));
	return out;
}

/*
 * The source becomes the actor of the events: it must not be empty, and
 * naming someone other than the caller needs the rights of
 * workqueue._check_actor() (an administrator or workqueue_agent).  Must be
 * connected to SPI.
 */
static void
CheckSource(text *source)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {PointerGetDatum(source)};

	if (SPI_execute_plan(WqPlan(&actor_plan, "SELECT workqueue._check_actor($1, 'source')", 1, types),
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check the source");
	SPI_freetuptable(SPI_tuptable);
}

/* Byte order of the external ids of two positions (for qsort_arg). */
static int
CompareIds(const void *a, const void *b, void *arg)
{
	const SyncItem *x = &((const SyncItem *) arg)[*(const int *) a];
	const SyncItem *y = &((const SyncItem *) arg)[*(const int *) b];
	int			c = memcmp(x->id.s, y->id.s, Min(x->id.len, y->id.len));

	return c != 0 ? c : (x->id.len > y->id.len) - (x->id.len < y->id.len);
}

typedef struct Changed
{
	int64		id;
	int			pos;
} Changed;

static int
CompareChanged(const void *a, const void *b)
{
	int64		x = ((const Changed *) a)->id;
	int64		y = ((const Changed *) b)->id;

	return (x > y) - (x < y);
}

/* ClassifyRecords's state while SyncFindItems reports the items it finds. */
typedef struct ClassifyRecordsState
{
	SyncItem   *items;
	int		   *pos;			/* set index -> position in items */
	AttrNumber	col_id;
	AttrNumber	col_priority;
	AttrNumber	col_data;
	Changed    *changed;
	int			nch;
	MemoryContext tmp;
	text	   *queue;
	AttrNumber	col_scope;
	WqScopeCheck scopes;		/* the caller's */
} ClassifyRecordsState;

/* Compares a record with its item's row (a SyncFoundFn). */
static void
ItemFound(void *arg, uint32 index, TupleTableSlot *slot)
{
	ClassifyRecordsState *st = (ClassifyRecordsState *) arg;
	SyncItem   *item = &st->items[st->pos[index]];
	bool		isnull;
	bool		same;
	Datum		scope = slot_getattr(slot, st->col_scope, &isnull);

	/*
	 * An item out of the caller's scopes is neither compared nor written:
	 * the record is refused as a duplicate of an item it cannot see, with
	 * the error add() gives, which names no item (doc/security.md).
	 */
	if (!isnull && !WqScopeVisible(&st->scopes, DatumGetArrayTypeP(scope)))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("external id \"%s\" already exists in queue \"%s\"",
						WorkqueueClip(item->id.s, item->id.len), text_to_cstring(st->queue)),
				 errdetail("Element %d of items has it.", st->pos[index] + 1),
				 errhint("Leave it out of items, or ask an administrator to upsert it.")));

	same = !item->has_priority ||
		DatumGetInt16(slot_getattr(slot, st->col_priority, &isnull)) == item->priority;
	if (same)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(st->tmp);
		Jsonb	   *cur = DatumGetJsonbP(slot_getattr(slot, st->col_data, &isnull));

		same = compareJsonbContainers(&cur->root, item->data) == 0;
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(st->tmp);
	}
	if (!same)
	{
		st->changed[st->nch].id = DatumGetInt64(slot_getattr(slot, st->col_id, &isnull));
		st->changed[st->nch].pos = st->pos[index];
		st->nch++;
	}
}

/*
 * Looks up the items of the records at positions pos[0..npos-1] (whose
 * external ids make up set) with a new snapshot, and sorts the positions
 * into new items and items that differ; equal ones are left out.  Takes no
 * locks beyond AccessShareLock.
 */
static void
ClassifyRecords(text *queue, SyncItem *items, int *pos, int npos, SyncIdSet *set, Classified *out)
{
	ClassifyRecordsState st;
	Oid			itemrel = get_relname_relid("item", get_namespace_oid("workqueue", false));
	Snapshot	snap;

	st.col_id = get_attnum(itemrel, "id");
	st.col_priority = get_attnum(itemrel, "priority");
	st.col_data = get_attnum(itemrel, "data");
	st.col_scope = get_attnum(itemrel, "scope");
	st.queue = queue;
	WqScopeCheckInit(&st.scopes, GetOuterUserId(), WorkqueueIsAdmin(NULL), CurrentMemoryContext);
	st.items = items;
	st.pos = pos;
	st.changed = palloc(sizeof(Changed) * Max(npos, 1));
	st.nch = 0;
	st.tmp = AllocSetContextCreate(CurrentMemoryContext, "workqueue upsert compare", ALLOCSET_SMALL_SIZES);

	snap = RegisterSnapshot(GetTransactionSnapshot());
	SyncFindItems(set, queue, snap, ItemFound, &st);
	UnregisterSnapshot(snap);
	MemoryContextDelete(st.tmp);

	out->newpos = palloc(sizeof(int) * Max(npos, 1));
	out->nnew = 0;
	for (int i = 0; i < npos; i++)
		if (SyncIdSetMissing(set, i))
			out->newpos[out->nnew++] = pos[i];

	/* the orders in which the statement takes row locks: see the header */
	qsort_arg(out->newpos, out->nnew, sizeof(int), CompareIds, items);
	qsort(st.changed, st.nch, sizeof(Changed), CompareChanged);
	out->nch = st.nch;
	out->chpos = palloc(sizeof(int) * Max(st.nch, 1));
	out->chid = palloc(sizeof(int64) * Max(st.nch, 1));
	for (int i = 0; i < st.nch; i++)
	{
		out->chpos[i] = st.changed[i].pos;
		out->chid[i] = st.changed[i].id;
	}
	pfree(st.changed);
}

/*
 * A one-dimensional text[] of the external ids (or, with data, a jsonb[]
 * of the data) of the given positions, built in one piece: each element is
 * copied once, straight from the items value.
 */
static Datum
VarlenaArray(SyncItem *items, int *pos, int n, bool data)
{
	Size		size = ARR_OVERHEAD_NONULLS(1);
	ArrayType  *arr;
	char	   *p;

	for (int i = 0; i < n; i++)
		size += INTALIGN(VARHDRSZ + (data ? items[pos[i]].datalen : (uint32) items[pos[i]].id.len));
	if (!AllocSizeIsValid(size))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("items is too large for one call"),
				 errhint("Pass the records in smaller batches.")));
	arr = palloc0(size);
	SET_VARSIZE(arr, size);
	arr->ndim = 1;
	arr->dataoffset = 0;
	arr->elemtype = data ? JSONBOID : TEXTOID;
	ARR_DIMS(arr)[0] = n;
	ARR_LBOUND(arr)[0] = 1;
	p = (char *) arr + ARR_OVERHEAD_NONULLS(1);
	for (int i = 0; i < n; i++)
	{
		SyncItem   *item = &items[pos[i]];
		uint32		len = data ? item->datalen : (uint32) item->id.len;

		SET_VARSIZE(p, VARHDRSZ + len);
		memcpy(VARDATA(p), data ? (const char *) item->data : item->id.s, len);
		p += INTALIGN(VARHDRSZ + len);
	}
	return PointerGetDatum(arr);
}

/* The priorities of the given positions as int2[], NULL where absent. */
static Datum
PriorityArray(SyncItem *items, int *pos, int n)
{
	Datum	   *v = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *isnull = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	if (n == 0)
		return PointerGetDatum(construct_empty_array(INT2OID));
	for (int i = 0; i < n; i++)
	{
		v[i] = Int16GetDatum(items[pos[i]].priority);
		isnull[i] = !items[pos[i]].has_priority;
	}
	return PointerGetDatum(construct_md_array(v, isnull, 1, dims, lbs, INT2OID, 2, true, TYPALIGN_SHORT));
}

/*
 * The changed items' update on a distributed install: UPDATE_CITUS_SQL,
 * then UPDATE_EVENTS_SQL with what it returned.  args and nulls as
 * UPDATE_SQL's; returns the number of items updated.
 */
static int64
UpdateDistributed(Datum *args, char *nulls)
{
	static Oid	event_types[5] = {TEXTOID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID, JSONBARRAYOID};
	Datum		evargs[5];
	Datum	   *cols[3];
	uint64		n;
	SPITupleTable *tt;

	if (SPI_execute_plan(WqPlanCursor(&update_citus_plan, UPDATE_CITUS_SQL, UPDATE_NARGS, update_types,
									  CURSOR_OPT_CUSTOM_PLAN),
						 args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not update items");
	n = SPI_processed;
	tt = SPI_tuptable;
	if (n == 0)
	{
		SPI_freetuptable(tt);
		return 0;
	}
	for (int c = 0; c < 3; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		for (uint64 r = 0; r < n; r++)
		{
			bool		isnull;

			cols[c][r] = SPI_getbinval(tt->vals[r], tt->tupdesc, c + 1, &isnull);
			if (isnull)
				elog(ERROR, "an updated item has no %s", c == 0 ? "id" : c == 1 ? "step" : "event payload");
		}
	}
	evargs[0] = args[0];
	evargs[1] = args[2];
	evargs[2] = PointerGetDatum(construct_array(cols[0], (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	evargs[3] = PointerGetDatum(construct_array(cols[1], (int) n, TEXTOID, -1, false, TYPALIGN_INT));
	evargs[4] = PointerGetDatum(construct_array(cols[2], (int) n, JSONBOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(WqPlanCursor(&update_events_plan, UPDATE_EVENTS_SQL, 5, event_types,
									  CURSOR_OPT_CUSTOM_PLAN),
						 evargs, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write the events of updated items");
	SPI_freetuptable(tt);
	return (int64) n;
}

/*
 * Writes what ClassifyRecords found -- the changed items (UPDATE_SQL), then
 * the new ones (the insert path) -- and fills *res.  args holds $1-$3 of
 * UPDATE_SQL; newitems are the items as the insert path reads them.
 */
static void
RunPass(SyncItem *items, const NewItem *newitems, Classified *c, text *queue, const NewItemsQueue *q,
		text *source, Datum *args, char *nulls, PassResult *res)
{
	res->inserted = 0;
	res->updated = 0;
	res->skipped = NULL;
	res->nskipped = 0;

	if (c->nch > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * c->nch);
		bool		isnull;

		for (int i = 0; i < c->nch; i++)
			ids[i] = Int64GetDatum(c->chid[i]);
		args[3] = PointerGetDatum(construct_array(ids, c->nch, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[4] = PriorityArray(items, c->chpos, c->nch);
		args[5] = VarlenaArray(items, c->chpos, c->nch, true);
		if (unlikely(WqDistributed()))
			res->updated = UpdateDistributed(args, nulls);
		else
		{
			if (SPI_execute_plan(WqPlanCursor(&update_plan, UPDATE_SQL, UPDATE_NARGS, update_types,
											  CURSOR_OPT_CUSTOM_PLAN),
								 args, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "could not update items");
			res->updated = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
													   &isnull));
			SPI_freetuptable(SPI_tuptable);
		}
		pfree(ids);
	}

	if (c->nnew > 0)
	{
		NewItemsResult ins;

		NewItemsInsert(queue, q, source, args[2], true, false, newitems, c->newpos, c->nnew, &ins);
		res->inserted = ins.inserted;
		if (ins.nskipped > 0)
		{
			res->skipped = palloc(sizeof(int) * ins.nskipped);
			for (int i = 0; i < ins.nskipped; i++)
				res->skipped[i] = c->newpos[ins.skipped[i]];
			res->nskipped = ins.nskipped;
		}
	}
}

/*
 * Classifies and writes the items, then again the new items another
 * transaction inserted first.  Adds up the counts.
 */
static void
WriteItems(text *queue, SyncItem *items, int n, SyncIdSet *set, text *source,
		   int64 *inserted, int64 *updated)
{
	NewItemsQueue q;
	NewItem    *newitems = palloc(sizeof(NewItem) * Max(n, 1));
	Datum		args[UPDATE_NARGS];
	char		nulls[UPDATE_NARGS + 1];
	int		   *pos = palloc(sizeof(int) * Max(n, 1));
	int			npos = n;
	MemoryContext cxt = CurrentMemoryContext;

	memset(nulls, ' ', UPDATE_NARGS);
	nulls[UPDATE_NARGS] = '\0';
	for (int i = 0; i < n; i++)
	{
		pos[i] = i;
		newitems[i].external_id = items[i].id.s;
		newitems[i].external_id_len = items[i].id.len;
		newitems[i].priority = items[i].has_priority ? items[i].priority : 3;
		newitems[i].data = items[i].data;
		newitems[i].datalen = items[i].datalen;
	}

	SPI_connect();
	MemoryContextSwitchTo(cxt);
	NewItemsReadQueue(queue, &q);
	if (source)
		CheckSource(source);
	args[0] = PointerGetDatum(queue);
	args[1] = PointerGetDatum(source);
	nulls[1] = source ? ' ' : 'n';
	args[2] = source ? PointerGetDatum(source) : CStringGetTextDatum(WorkqueueCallerName());

	for (int pass = 1; npos > 0; pass++)
	{
		Classified	c;
		PassResult	res;

		if (pass > UPSERT_MAX_PASSES)
			elog(ERROR, "could not upsert %d items after %d attempts", npos, UPSERT_MAX_PASSES);
		if (pass > 1)
		{
			SyncId	   *ids = palloc(sizeof(SyncId) * npos);
			int			dup1;
			int			dup2;

			for (int i = 0; i < npos; i++)
				ids[i] = items[pos[i]].id;
			set = SyncIdSetFromList(ids, npos, &dup1, &dup2);
		}
		ClassifyRecords(queue, items, pos, npos, set, &c);
		if (c.nnew + c.nch == 0)
			break;				/* all equal: nothing to write */
		RunPass(items, newitems, &c, queue, &q, source, args, nulls, &res);

		*inserted += res.inserted;
		*updated += res.updated;
		pos = res.skipped;
		npos = res.nskipped;
	}
	SPI_finish();
}

PG_FUNCTION_INFO_V1(workqueue_upsert_items);

/*
 * SQL: workqueue.upsert_items(queue text, items jsonb, source text)
 *		returns table(inserted int, updated int, unchanged int)
 */
Datum
workqueue_upsert_items(PG_FUNCTION_ARGS)
{
	text	   *queue;
	text	   *source = NULL;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext cxt;
	MemoryContext oldcxt;
	SyncItem   *items;
	SyncIdSet  *set;
	int			n;
	int64		inserted = 0;
	int64		updated = 0;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue name must not be null")));
	queue = PG_GETARG_TEXT_PP(0);
	if (!PG_ARGISNULL(2))
	{
		source = PG_GETARG_TEXT_PP(2);
		WorkqueueCheckName("source", VARDATA_ANY(source), VARSIZE_ANY_EXHDR(source));
	}
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be a JSON array"),
				 errdetail("The value given is of type NULL."),
				 errhint("Pass an array of objects like {\"external_id\": \"A-1\", \"priority\": 2, \"data\": {...}}.")));
	store = WqMaterializedResult(fcinfo, &tupdesc);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "workqueue upsert", ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	items = ParseItems(PG_GETARG_JSONB_P(1), &n, &set);
	WriteItems(queue, items, n, set, source, &inserted, &updated);
	MemoryContextSwitchTo(oldcxt);

	values[0] = Int32GetDatum((int32) inserted);
	values[1] = Int32GetDatum((int32) updated);
	values[2] = Int32GetDatum((int32) (n - inserted - updated));
	tuplestore_putvalues(store, tupdesc, values, nulls);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/*
 * Are two JSON values (scalars, or containers as jbvBinary) equal?
 */
static bool
ValuesEqual(JsonbValue *a, JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			return false;
	}
}

/* One top-level key whose value differs; a NULL side lacks the key. */
typedef struct KeyChange
{
	JsonbValue	key;
	JsonbValue *old;
	JsonbValue *new;
} KeyChange;

/*
 * Collects the top-level keys whose values differ between two objects.
 */
static int
DiffObjects(Jsonb *old, Jsonb *new, KeyChange **out)
{
	int			cap = 8;
	int			n = 0;
	KeyChange  *ch = palloc(sizeof(KeyChange) * cap);

	for (int side = 0; side < 2; side++)
	{
		Jsonb	   *from = side == 0 ? old : new;
		Jsonb	   *other = side == 0 ? new : old;
		JbMembers	m;

		JbMembersInit(&m, &from->root);
		while (JbMembersNext(&m))
		{
			JsonbValue *v;
			JsonbValue *ov = getKeyJsonValueFromContainer(&other->root, m.key.val.string.val,
														  m.key.val.string.len, NULL);

			/* keys in both objects are compared once, from the old side */
			if (ov != NULL && (side == 1 || ValuesEqual(&m.value, ov)))
				continue;
			v = palloc(sizeof(JsonbValue));
			*v = m.value;
			if (n == cap)
				ch = repalloc(ch, sizeof(KeyChange) * (cap *= 2));
			ch[n].key = m.key;
			ch[n].old = side == 0 ? v : ov;
			ch[n].new = side == 0 ? ov : v;
			n++;
		}
	}
	*out = ch;
	return n;
}

/* Pushes one side ("old" or "new") of a synced event's payload. */
static void
PushSide(JsonbParseState **st, bool new_side, KeyChange *ch, int nch, Jsonb *whole,
		 bool prio_changed, int16 prio)
{
	JbPushKey(st, new_side ? "new" : "old");
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	if (whole != NULL)
	{
		JsonbValue	v;

		/* not both objects: the whole value */
		JbPushKey(st, "data");
		v.type = jbvBinary;
		v.val.binary.data = &whole->root;
		v.val.binary.len = VARSIZE(whole) - VARHDRSZ;
		if (JB_ROOT_IS_SCALAR(whole))
			(void) JsonbExtractScalar(&whole->root, &v);
		pushJsonbValue(st, WJB_VALUE, &v);
	}
	else if (nch > 0)
	{
		JbPushKey(st, "data");
		pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
		for (int i = 0; i < nch; i++)
		{
			JsonbValue *v = new_side ? ch[i].new : ch[i].old;

			if (v == NULL)
				continue;
			pushJsonbValue(st, WJB_KEY, &ch[i].key);
			pushJsonbValue(st, WJB_VALUE, v);
		}
		pushJsonbValue(st, WJB_END_OBJECT, NULL);
	}
	if (prio_changed)
	{
		JsonbValue	v;

		JbPushKey(st, "priority");
		v.type = jbvNumeric;
		v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int2_numeric, Int16GetDatum(prio)));
		pushJsonbValue(st, WJB_VALUE, &v);
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

PG_FUNCTION_INFO_V1(workqueue_sync_payload);

/*
 * SQL: workqueue._sync_payload(old_data jsonb, new_data jsonb,
 *		old_priority smallint, new_priority smallint) returns jsonb
 *
 * The payload of a "synced" event: {"old": {...}, "new": {...}} where each
 * side holds "data" with only the top-level keys that changed (a key
 * missing from one side was added or removed) and "priority" if it
 * changed.  Data that is not an object on both sides is recorded whole.
 */
Datum
workqueue_sync_payload(PG_FUNCTION_ARGS)
{
	Jsonb	   *old = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	Jsonb	   *new = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	bool		prio_changed = !PG_ARGISNULL(2) && !PG_ARGISNULL(3) &&
		PG_GETARG_INT16(2) != PG_GETARG_INT16(3);
	KeyChange  *ch = NULL;
	int			nch = 0;
	bool		whole = false;
	JsonbParseState *st = NULL;
	JsonbValue *res;

	if (old != NULL && new != NULL)
	{
		if (JB_ROOT_IS_OBJECT(old) && JB_ROOT_IS_OBJECT(new))
			nch = DiffObjects(old, new, &ch);
		else
			whole = compareJsonbContainers(&old->root, &new->root) != 0;
	}
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	PushSide(&st, false, ch, nch, whole ? old : NULL, prio_changed,
			 prio_changed ? PG_GETARG_INT16(2) : 0);
	PushSide(&st, true, ch, nch, whole ? new : NULL, prio_changed,
			 prio_changed ? PG_GETARG_INT16(3) : 0);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}
