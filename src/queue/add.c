/*
 * add.c
 *		add() and add_many(): new items from the caller, written by the one
 *		insert path (src/queue/insert.c).
 *
 * Both check everything before they write anything: the queue, then each
 * item (add_many: the first bad element raises, its 1-based position in the
 * error's detail), then, for add_many, that no external id appears twice.
 * An external id that already exists in the queue is found by the insert
 * itself (ON CONFLICT ... DO NOTHING skips it) and raised then, which rolls
 * the whole call back: a call adds all of its items or none.
 *
 * Items get the queue's scope, whoever adds them (doc/security.md); the
 * caller (workqueue._caller()) is the actor of their events.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "core/jsonutil.h"
#include "core/srf.h"
#include "core/workqueue.h"
#include "queue/insert.h"
#include "queue/priority.h"
#include "sync/sync_db.h"

/* Most items one add_many call takes (as upsert_items). */
#define ADD_MANY_MAX_ITEMS		1000000

#define DEFAULT_PRIORITY		3

#define ITEMS_HINT "Pass an array of objects like {\"data\": {...}, \"priority\": 2, \"external_id\": \"A-1\"}; each key may be left out."
#define DATA_HINT "Wrap the value in an object, e.g. {\"value\": ...}."
#define EXISTS_HINT "Use workqueue.upsert_items() to insert-or-update by external id."

static Jsonb *
EmptyObject(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

/* The JSON type name of a jsonb value, as jsonb_typeof() gives it. */
static const char *
RootTypeName(Jsonb *j)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(j))
		(void) JsonbExtractScalar(&j->root, &v);
	else
		JsonbToJsonbValue(j, &v);
	return JsonbTypeName(&v);
}

/* Reads "priority" of element pos of items; absent or null is 3. */
static int16
ElementPriority(JsonbValue *v, int pos)
{
	int16		value = DEFAULT_PRIORITY;
	char	   *text;
	bool		quoted;

	switch (PriorityParse(v, &value, &text, &quoted))
	{
		case PRIORITY_OK:
		case PRIORITY_ABSENT:
			break;
		case PRIORITY_WRONG_TYPE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("priority must be a number or a numeric string"),
					 errdetail("Element %d of items has a \"priority\" of type %s.", pos, JsonbTypeName(v)),
					 errhint("Pass an integer from 1 to 5, or leave \"priority\" out for 3.")));
			break;
		case PRIORITY_NOT_NUMBER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("priority \"%s\" is not a number", text),
					 errdetail("Element %d of items has it. Priorities run from 1 (highest) to 5 (lowest).", pos),
					 errhint("Pass an integer from 1 to 5, or leave \"priority\" out for 3.")));
			break;
		case PRIORITY_NOT_INTEGER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg(quoted ? "priority \"%s\" is not an integer" : "priority %s is not an integer", text),
					 errdetail("Element %d of items has it. Priorities run from 1 (highest) to 5 (lowest).", pos),
					 errhint("Pass an integer from 1 to 5, or leave \"priority\" out for 3.")));
			break;
		case PRIORITY_OUT_OF_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg(quoted ? "priority \"%s\" is out of range" : "priority %s is out of range", text),
					 errdetail("Element %d of items has it. Priorities run from 1 (highest) to 5 (lowest).", pos),
					 errhint("Pass a priority between 1 and 5.")));
			break;
	}
	return value;
}

/* Reads "external_id" of element pos: a string, or a number as text. */
static void
ElementExternalId(JsonbValue *v, int pos, NewItem *item)
{
	item->external_id = NULL;
	item->external_id_len = 0;
	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type == jbvNumeric)
	{
		item->external_id = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		item->external_id_len = strlen(item->external_id);
	}
	else if (v->type == jbvString)
	{
		item->external_id = v->val.string.val;
		item->external_id_len = v->val.string.len;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external id must be a string or a number"),
				 errdetail("Element %d of items has an \"external_id\" of type %s.", pos, JsonbTypeName(v)),
				 errhint("Leave \"external_id\" out, or pass null, for an item without one.")));
	if (item->external_id_len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external id must not be empty"),
				 errdetail("Element %d of items has an empty \"external_id\".", pos),
				 errhint("Leave \"external_id\" out, or pass null, for an item without one.")));
	if (item->external_id_len > WQ_EXTERNAL_ID_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("external id is too long"),
				 errdetail("Element %d of items has an external id of %d bytes; the limit is %d bytes. It begins \"%s\".",
						   pos, item->external_id_len, WQ_EXTERNAL_ID_MAX_BYTES,
						   WorkqueueClip(item->external_id, item->external_id_len)),
				 errhint("Upstream ids are short keys; pass the long value in \"data\" instead.")));
}

/* Reads element pos (1-based) of items; empty is the {} of absent data. */
static void
ParseElement(JsonbValue *elem, int pos, NewItem *item, Jsonb *empty)
{
	static const char *const element_keys[] = {"data", "priority", "external_id", NULL};
	JsonbContainer *obj;
	JsonbValue	datav;
	JsonbValue	priov;
	JsonbValue	idv;
	JsonbValue *data;
	JsonbValue *prio;
	JsonbValue *id;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be an array of JSON objects"),
				 errdetail("Element %d of items is of type %s.", pos, JsonbTypeName(elem)),
				 errhint(ITEMS_HINT)));
	obj = elem->val.binary.data;
	data = getKeyJsonValueFromContainer(obj, "data", 4, &datav);
	prio = getKeyJsonValueFromContainer(obj, "priority", 8, &priov);
	id = getKeyJsonValueFromContainer(obj, "external_id", 11, &idv);
	if (JsonContainerSize(obj) > (uint32) ((data != NULL) + (prio != NULL) + (id != NULL)))
	{
		JbMembers	m;

		JbMembersInit(&m, obj);
		while (JbMembersNext(&m))
			if (!JbKeyIn(element_keys, &m.key))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unrecognized key \"%s\" in items", WorkqueueClip(m.key.val.string.val,
																				 m.key.val.string.len)),
						 errdetail("Element %d of items has it.", pos),
						 errhint("The keys of an element are \"data\", \"priority\" and \"external_id\".")));
	}

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
				 errmsg("item data must be a JSON object"),
				 errdetail("Element %d of items has \"data\" of type %s.", pos, JsonbTypeName(data)),
				 errhint("Leave \"data\" out for an empty object, or wrap the value, e.g. {\"value\": ...}.")));
	item->priority = ElementPriority(prio, pos);
	ElementExternalId(id, pos, item);
}

/*
 * Validates items (a JSON array of objects) and returns its elements;
 * raises on the first problem, also for an external id given twice.
 */
static NewItem *
ParseItems(Jsonb *items, int *n)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Jsonb	   *empty = EmptyObject();
	NewItem    *out;
	SyncId	   *ids;
	int		   *idpos;
	int			nids = 0;
	int			pos = 0;

	if (!JB_ROOT_IS_ARRAY(items) || JB_ROOT_IS_SCALAR(items))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be a JSON array"),
				 errdetail("The value given is of type %s.", RootTypeName(items)),
				 errhint(ITEMS_HINT)));
	*n = JB_ROOT_COUNT(items);
	if (*n > ADD_MANY_MAX_ITEMS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("items has too many elements"),
				 errdetail("It has %d elements; the limit is %d per call.", *n, ADD_MANY_MAX_ITEMS),
				 errhint("Pass the items in smaller batches, in one transaction if they belong together.")));
	out = palloc(sizeof(NewItem) * Max(*n, 1));
	ids = palloc(sizeof(SyncId) * Max(*n, 1));
	idpos = palloc(sizeof(int) * Max(*n, 1));
	it = JsonbIteratorInit(&items->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		CHECK_FOR_INTERRUPTS();
		ParseElement(&v, pos + 1, &out[pos], empty);
		if (out[pos].external_id != NULL)
		{
			ids[nids].s = out[pos].external_id;
			ids[nids].len = out[pos].external_id_len;
			idpos[nids++] = pos;
		}
		pos++;
	}
	Assert(pos == *n);

	if (nids > 1)
	{
		int			dup1;
		int			dup2;

		if (SyncIdSetFromList(ids, nids, &dup1, &dup2) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("external id \"%s\" appears more than once in items",
							WorkqueueClip(ids[dup1].s, ids[dup1].len)),
					 errdetail("Elements %d and %d of items have it.", idpos[dup1] + 1, idpos[dup2] + 1),
					 errhint("Pass each external id once per call.")));
	}
	return out;
}

/* Raises the error for an external id that exists in the queue. */
static void
RaiseExists(text *queue, const NewItem *item, int pos)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {PointerGetDatum(queue),
	PointerGetDatum(cstring_to_text_with_len(item->external_id, item->external_id_len))};
	char	   *id = NULL;
	WqScopeCheck scopes;

	/*
	 * The one that won (NULL if a concurrent one rolled back after all), if
	 * the caller may see it: the error names no item out of its scopes.
	 */
	WqScopeCheckInit(&scopes, GetOuterUserId(), WorkqueueIsAdmin(NULL), CurrentMemoryContext);
	if (SPI_execute_with_args("SELECT id, scope FROM workqueue.item WHERE queue = $1 AND external_id = $2",
							  2, types, args, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		scope = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (isnull || WqScopeVisible(&scopes, DatumGetArrayTypeP(scope)))
			id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("external id \"%s\" already exists in queue \"%s\"",
					WorkqueueClip(item->external_id, item->external_id_len), text_to_cstring(queue)),
			 id == NULL
			 ? (pos > 0 ? errdetail("Element %d of items has it.", pos) : 0)
			 : pos > 0
			 ? errdetail("Element %d of items has it; it belongs to item %s.", pos, id)
			 : errdetail("It belongs to item %s.", id),
			 errhint(EXISTS_HINT)));
}

/*
 * Writes the n items (n > 0) into the queue through the insert path and
 * returns their ids in order, allocated in cxt.  add (single) words the
 * errors as add() always has.  Must be connected to SPI; the queue has been
 * read into *q.
 */
static int64 *
WriteItems(text *queue, const NewItemsQueue *q, const NewItem *items, int n, bool single,
		   MemoryContext cxt)
{
	int		   *pos = palloc(sizeof(int) * n);
	NewItemsResult res;
	MemoryContext oldcxt;

	for (int i = 0; i < n; i++)
		pos[i] = i;
	oldcxt = MemoryContextSwitchTo(cxt);
	NewItemsInsert(queue, q, NULL, CStringGetTextDatum(WorkqueueCallerName()), false, single,
				   items, pos, n, &res);
	MemoryContextSwitchTo(oldcxt);
	if (res.nskipped > 0)
		RaiseExists(queue, &items[res.skipped[0]], single ? 0 : res.skipped[0] + 1);
	if (res.inserted != n)
		elog(ERROR, "inserted " INT64_FORMAT " of %d items", res.inserted, n);
	return res.ids;
}

/* The check of the queue argument, as workqueue._queue() makes it. */
static text *
QueueArg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue name must not be null")));
	return PG_GETARG_TEXT_PP(0);
}

PG_FUNCTION_INFO_V1(workqueue_add_many);

/*
 * SQL: workqueue.add_many(queue text, items jsonb) returns setof bigint
 *
 * The ids of the new items, in the order of items.
 */
Datum
workqueue_add_many(PG_FUNCTION_ARGS)
{
	text	   *queue = QueueArg(fcinfo);
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext cxt;
	MemoryContext oldcxt;
	NewItemsQueue q;
	NewItem    *items;
	int64	   *ids = NULL;
	int			n;

	store = WqMaterializedResult(fcinfo, &tupdesc);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "workqueue add_many", ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	SPI_connect();
	MemoryContextSwitchTo(cxt);
	NewItemsReadQueue(queue, &q);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("items must be a JSON array"),
				 errdetail("The value given is of type NULL."),
				 errhint(ITEMS_HINT)));
	items = ParseItems(PG_GETARG_JSONB_P(1), &n);
	if (n > 0)
		ids = WriteItems(queue, &q, items, n, false, cxt);
	SPI_finish();

	MemoryContextSwitchTo(oldcxt);
	for (int i = 0; i < n; i++)
	{
		Datum		value = Int64GetDatum(ids[i]);
		bool		isnull = false;

		tuplestore_putvalues(store, tupdesc, &value, &isnull);
	}
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(workqueue_add);

/*
 * SQL: workqueue.add(queue text, data jsonb, priority int, external_id text)
 *		returns bigint
 *
 * add_many() of one item, with add()'s arguments and messages.
 */
Datum
workqueue_add(PG_FUNCTION_ARGS)
{
	text	   *queue = QueueArg(fcinfo);
	NewItemsQueue q;
	NewItem		item;
	Jsonb	   *data;
	int64		id;

	SPI_connect();
	NewItemsReadQueue(queue, &q);
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1 || PG_GETARG_INT32(2) > 5)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("priority %s is out of range", PG_ARGISNULL(2) ? "NULL" : psprintf("%d", PG_GETARG_INT32(2))),
				 errdetail("Priorities run from 1 (highest) to 5 (lowest)."),
				 errhint("Pass a priority between 1 and 5.")));
	if (PG_ARGISNULL(1) || !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("item data must be a JSON object"),
				 errdetail("The value given is of type %s.", PG_ARGISNULL(1) ? "NULL" : RootTypeName(PG_GETARG_JSONB_P(1))),
				 errhint(DATA_HINT)));
	data = PG_GETARG_JSONB_P(1);
	item.data = &data->root;
	item.datalen = VARSIZE(data) - VARHDRSZ;
	item.priority = (int16) PG_GETARG_INT32(2);
	item.external_id = NULL;
	item.external_id_len = 0;
	if (!PG_ARGISNULL(3))
	{
		text	   *ext = PG_GETARG_TEXT_PP(3);

		item.external_id = VARDATA_ANY(ext);
		item.external_id_len = VARSIZE_ANY_EXHDR(ext);
		if (item.external_id_len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("external id must not be empty"),
					 errhint("Pass NULL for an item without an external id.")));
		WorkqueueCheckExternalId(item.external_id, item.external_id_len);
	}
	id = WriteItems(queue, &q, &item, 1, true, CurrentMemoryContext)[0];
	SPI_finish();
	PG_RETURN_INT64(id);
}
