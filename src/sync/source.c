/*
 * source.c
 *		Parsing source definitions, and turning API responses into ids and
 *		items.
 *
 * Paths in options are PostgreSQL jsonpath expressions evaluated in lax,
 * silent mode; the common "$" and "$.key" forms are looked up directly.
 * A path's results are flattened one level: an array result contributes
 * its elements, so "$" on an array body and "$.ids" both yield the ids.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/jsonpath.h"
#include "utils/numeric.h"

#include "core/jsonutil.h"
#include "http/http.h"
#include "queue/priority.h"
#include "sync/source.h"
#include "core/workqueue.h"

#define OPT_ERROR(...) \
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), __VA_ARGS__))

static const char *const option_keys[] = {
	"ids_path", "details_method", "batch_size", "records_path", "id_path", "mapping", "headers",
	"timeout_ms", "max_concurrency", "retries", "pagination", "confirm_close", "children", NULL
};
static const char *const pagination_keys[] = {
	"next_url_path", "link_header", "cursor_path", "cursor_param", "offset_param", "limit_param",
	"limit", "total_path", "max_pages", NULL
};

static char *
OptText(JsonbValue *v, const char *name)
{
	if (v->type != jbvString || v->val.string.len == 0)
		OPT_ERROR(errmsg("option \"%s\" must be a non-empty string", name),
				  errdetail("It is a %s.", JbTypeName(v)));
	return JbString(v);
}

static int
OptInt(JsonbValue *v, const char *name, int min, int max)
{
	char	   *s;
	char	   *end;
	long		n;

	if (v->type != jbvNumeric)
		OPT_ERROR(errmsg("option \"%s\" must be a number", name),
				  errdetail("It is a %s.", JbTypeName(v)));
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	n = strtol(s, &end, 10);
	if (*end != '\0' || n < min || n > max)
		OPT_ERROR(errmsg("option \"%s\" must be an integer between %d and %d", name, min, max),
				  errdetail("It is %.40s.", s));
	return (int) n;
}

static bool
OptBool(JsonbValue *v, const char *name)
{
	if (v->type != jbvBool)
		OPT_ERROR(errmsg("option \"%s\" must be true or false", name),
				  errdetail("It is a %s.", JbTypeName(v)));
	return v->val.boolean;
}

typedef struct PathErrorContext
{
	const char *option;
} PathErrorContext;

static void
PathErrorCallback(void *arg)
{
	errcontext("jsonpath of option \"%s\"", ((PathErrorContext *) arg)->option);
}

static void
ParsePath(JPath *p, const char *text, const char *option)
{
	ErrorContextCallback cb;
	PathErrorContext ctx = {option};
	size_t		len = strlen(text);

	p->text = pstrdup(text);
	cb.callback = PathErrorCallback;
	cb.arg = &ctx;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	p->path = DirectFunctionCall1(jsonpath_in, CStringGetDatum(p->text));
	error_context_stack = cb.previous;

	p->is_root = strcmp(text, "$") == 0;
	p->simple_key = NULL;
	if (len > 2 && text[0] == '$' && text[1] == '.')
	{
		bool		simple = true;

		for (size_t i = 2; i < len; i++)
			if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z') ||
				  (text[i] >= '0' && text[i] <= '9' && i > 2) || text[i] == '_'))
				simple = false;
		if (simple)
			p->simple_key = pstrdup(text + 2);
	}
}

/*
 * An http(s) URL without credentials: libcurl would send a user:password
 * before the host as an Authorization header, but unlike the headers
 * option, URLs are readable by everyone (the sources view, fetches, error
 * texts).  The error does not repeat the URL, so as not to show the
 * password.
 */
static void
CheckUrl(const char *url, const char *what)
{
	const char *authority;

	if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
		OPT_ERROR(errmsg("%s must be an http or https URL", what),
				  errdetail("It is \"%s\".", url ? url : "NULL"));
	authority = strstr(url, "://") + 3;
	if (memchr(authority, '@', strcspn(authority, "/?#")) != NULL)
		OPT_ERROR(errmsg("%s must not contain a user name or password", what),
				  errdetail("Everyone can read a source's URLs; only its headers are kept from non-administrators."),
				  errhint("Send credentials in a header instead, e.g. {\"headers\": {\"Authorization\": \"Basic ...\"}}."));
}

/*
 * The origins (scheme, host, port) of a source's URLs, without duplicates:
 * where its headers may go (doc/security.md, Credentials).  Only the part
 * before the path is parsed, so "{ids}" anywhere after it does not matter.
 */
static List *
SourceOrigins(const char *ids_url, const char *details_url)
{
	List	   *origins = NIL;
	const char *urls[2] = {ids_url, details_url};

	for (int i = 0; i < 2; i++)
	{
		const char *authority;
		char	   *origin;

		if (urls[i] == NULL || (authority = strstr(urls[i], "://")) == NULL)
			continue;
		authority += 3;
		origin = HttpOrigin(psprintf("%.*s/", (int) (authority - urls[i] + strcspn(authority, "/?#")), urls[i]));
		if (origin != NULL && (origins == NIL || strcmp(linitial(origins), origin) != 0))
			origins = lappend(origins, origin);
	}
	return origins;
}

/*
 * Starts on the members of option name, which must be an object; what says
 * "an object" or of what, and hint (or NULL) shows an example.
 */
static void
OptMembers(JbMembers *m, JsonbValue *v, const char *name, const char *what, const char *hint)
{
	if (!JbIsObject(v))
		OPT_ERROR(errmsg("option \"%s\" must be %s", name, what),
				  errdetail("It is a %s.", JbTypeName(v)),
				  hint ? errhint("%s", hint) : 0);
	JbMembersInit(m, v->val.binary.data);
}

/*
 * Moves to the next member of an options object and returns its key, or
 * NULL when there is none left.  Raises if the key is not one of keys
 * ("unrecognized <what>", with a hint listing the valid <plural>).
 */
static char *
NextOption(JbMembers *m, const char *const *keys, const char *what, const char *plural)
{
	char	   *key;

	if (!JbMembersNext(m))
		return NULL;
	key = JbString(&m->key);
	if (!JbKeyIn(keys, &m->key))
		OPT_ERROR(errmsg("unrecognized %s \"%s\"", what, key),
				  errhint("Valid %s are: %s.", plural, JbKeyList(keys)));
	return key;
}

static void
ParsePagination(SourceDef *src, JsonbValue *pv)
{
	JbMembers	m;
	char	   *key;
	int			styles = 0;

	OptMembers(&m, pv, "pagination", "an object",
			   "For example {\"next_url_path\": \"$.next\"} or {\"link_header\": true}.");
	while ((key = NextOption(&m, pagination_keys, "pagination option", "keys")) != NULL)
	{
		JsonbValue *v = &m.value;

		if (strcmp(key, "next_url_path") == 0)
		{
			ParsePath(&src->next_url_path, OptText(v, "pagination.next_url_path"), "pagination.next_url_path");
			src->page_style = PAGE_NEXT_URL;
			styles++;
		}
		else if (strcmp(key, "link_header") == 0)
		{
			if (OptBool(v, "pagination.link_header"))
			{
				src->page_style = PAGE_LINK;
				styles++;
			}
		}
		else if (strcmp(key, "cursor_path") == 0)
		{
			ParsePath(&src->cursor_path, OptText(v, "pagination.cursor_path"), "pagination.cursor_path");
			src->page_style = PAGE_CURSOR;
			styles++;
		}
		else if (strcmp(key, "cursor_param") == 0)
			src->cursor_param = OptText(v, "pagination.cursor_param");
		else if (strcmp(key, "offset_param") == 0)
		{
			src->offset_param = OptText(v, "pagination.offset_param");
			src->page_style = PAGE_OFFSET;
			styles++;
		}
		else if (strcmp(key, "limit_param") == 0)
			src->limit_param = OptText(v, "pagination.limit_param");
		else if (strcmp(key, "limit") == 0)
			src->limit = OptInt(v, "pagination.limit", 1, 100000);
		else if (strcmp(key, "total_path") == 0)
		{
			ParsePath(&src->total_path, OptText(v, "pagination.total_path"), "pagination.total_path");
			src->has_total = true;
		}
		else if (strcmp(key, "max_pages") == 0)
			src->max_pages = OptInt(v, "pagination.max_pages", 1, 10000000);
	}
	if (styles > 1)
		OPT_ERROR(errmsg("option \"pagination\" names several pagination styles"),
				  errhint("Use one of next_url_path, link_header, cursor_path or offset_param."));
	if (src->page_style == PAGE_CURSOR && src->cursor_param == NULL)
		OPT_ERROR(errmsg("cursor pagination needs \"cursor_param\""),
				  errhint("Name the query parameter that carries the cursor, e.g. \"cursor\"."));
	if (src->page_style == PAGE_OFFSET && (src->limit_param == NULL || src->limit == 0))
		OPT_ERROR(errmsg("offset pagination needs \"limit_param\" and \"limit\""),
				  errhint("For example {\"offset_param\": \"startAt\", \"limit_param\": \"maxResults\", \"limit\": 100}."));
	if (src->page_style == PAGE_NONE && (src->cursor_param || src->limit_param || src->has_total))
		OPT_ERROR(errmsg("option \"pagination\" names no pagination style"),
				  errhint("Use one of next_url_path, link_header, cursor_path or offset_param."));
}

static void
ParseMapping(SourceDef *src, JsonbValue *mv)
{
	JbMembers	m;
	int			n;

	OptMembers(&m, mv, "mapping", "an object",
			   "For example {\"priority\": \"$.severity\", \"data.title\": \"$.name\"}.");
	n = JsonContainerSize(mv->val.binary.data);
	src->map = palloc0(sizeof(MapEntry) * Max(n, 1));
	while (JbMembersNext(&m))
	{
		char	   *key = JbString(&m.key);
		MapEntry   *e = &src->map[src->nmap++];
		char	   *what = psprintf("mapping.%s", key);

		if (strcmp(key, "priority") == 0)
		{
			e->key = NULL;
			src->map_priority = e;
		}
		else if (strncmp(key, "data.", 5) == 0 && key[5] != '\0')
		{
			e->key = pstrdup(key + 5);
			src->map_data = true;
		}
		else
			OPT_ERROR(errmsg("unrecognized mapping target \"%s\"", key),
					  errhint("Map \"priority\" or \"data.<field>\"; other fields are locally owned."));
		ParsePath(&e->path, OptText(&m.value, what), what);
	}
}

static void
ParseHeaders(SourceDef *src, JsonbValue *hv)
{
	JbMembers	m;

	OptMembers(&m, hv, "headers", "an object of header names and values", NULL);
	while (JbMembersNext(&m))
	{
		char	   *key = JbString(&m.key);
		JsonbValue *v = &m.value;

		if (key[0] == '\0' || strpbrk(key, ":\r\n ") != NULL)
			OPT_ERROR(errmsg("invalid HTTP header name \"%s\"", key));
		if (v->type != jbvString || memchr(v->val.string.val, '\n', v->val.string.len) ||
			memchr(v->val.string.val, '\r', v->val.string.len))
			OPT_ERROR(errmsg("value of HTTP header \"%s\" must be a single-line string", key));
		src->headers = lappend(src->headers,
							   psprintf("%s: %.*s", key, v->val.string.len, v->val.string.val));
	}
}

/*
 * Parses and validates a source; raises an error naming the offending
 * option.  Everything is allocated in CurrentMemoryContext.
 */
SourceDef *
SourceParse(const char *name, const char *queue, const char *ids_url, const char *details_url,
			Jsonb *options)
{
	SourceDef  *src = palloc0(sizeof(SourceDef));
	JbMembers	opts;
	char	   *key;

	src->name = name ? pstrdup(name) : NULL;
	src->queue = queue ? pstrdup(queue) : NULL;
	CheckUrl(ids_url, "ids_url");
	src->ids_url = pstrdup(ids_url);
	if (details_url)
	{
		CheckUrl(details_url, "details_url");
		src->details_url = pstrdup(details_url);
	}
	src->origins = SourceOrigins(ids_url, details_url);
	src->batch_size = 100;
	src->timeout_ms = workqueue_http_timeout_ms;
	src->max_concurrency = 4;
	src->retries = 3;
	src->max_pages = 10000;
	ParsePath(&src->ids_path, "$", "ids_path");
	ParsePath(&src->records_path, "$", "records_path");
	ParsePath(&src->id_path, "$.id", "id_path");

	if (options == NULL || !JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		OPT_ERROR(errmsg("source options must be a JSON object"));
	JbMembersInit(&opts, &options->root);
	while ((key = NextOption(&opts, option_keys, "source option", "options")) != NULL)
	{
		JsonbValue *v = &opts.value;

		if (strcmp(key, "ids_path") == 0)
			ParsePath(&src->ids_path, OptText(v, key), key);
		else if (strcmp(key, "records_path") == 0)
			ParsePath(&src->records_path, OptText(v, key), key);
		else if (strcmp(key, "id_path") == 0)
			ParsePath(&src->id_path, OptText(v, key), key);
		else if (strcmp(key, "details_method") == 0)
		{
			char	   *m = OptText(v, key);

			if (pg_strcasecmp(m, "POST") == 0)
				src->details_post = true;
			else if (pg_strcasecmp(m, "GET") != 0)
				OPT_ERROR(errmsg("option \"details_method\" must be GET or POST"),
						  errdetail("It is \"%s\".", m));
		}
		else if (strcmp(key, "batch_size") == 0)
			src->batch_size = OptInt(v, key, 1, 10000);
		else if (strcmp(key, "timeout_ms") == 0)
			src->timeout_ms = OptInt(v, key, 100, 3600 * 1000);
		else if (strcmp(key, "max_concurrency") == 0)
			src->max_concurrency = OptInt(v, key, 1, 1024);
		else if (strcmp(key, "retries") == 0)
			src->retries = OptInt(v, key, 0, 20);
		else if (strcmp(key, "confirm_close") == 0)
			src->confirm_close = OptBool(v, key);
		else if (strcmp(key, "mapping") == 0)
			ParseMapping(src, v);
		else if (strcmp(key, "headers") == 0)
			ParseHeaders(src, v);
		else if (strcmp(key, "pagination") == 0)
			ParsePagination(src, v);
		else if (strcmp(key, "children") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("option \"children\" is not supported yet"),
					 errhint("Hierarchical sources will come in a later version; remove the option.")));
	}
	if (src->details_url && !src->details_post && strstr(src->details_url, "{ids}") == NULL)
		OPT_ERROR(errmsg("details_url must contain \"{ids}\" for GET requests"),
				  errdetail("It is \"%s\".", src->details_url),
				  errhint("Put {ids} where the comma-separated ids go, or set \"details_method\": \"POST\"."));
	if (src->confirm_close && src->details_url == NULL)
		OPT_ERROR(errmsg("option \"confirm_close\" needs a details_url"),
				  errhint("Closing is confirmed by asking the details endpoint for the vanished ids."));
	src->max_concurrency = Min(src->max_concurrency, workqueue_http_max_concurrency);
	return src;
}

static void
AppendFlattened(List **out, JsonbValue *v)
{
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbContainer *c = v->val.binary.data;
		int			n = JsonContainerSize(c);

		for (int i = 0; i < n; i++)
			*out = lappend(*out, getIthJsonbValueFromContainer(c, i));
	}
	else
		*out = lappend(*out, v);
}

/*
 * The values a path selects in doc, arrays flattened one level; a list of
 * JsonbValue * (which may point into doc).
 */
List *
PathValues(Jsonb *doc, const JPath *p)
{
	List	   *out = NIL;

	if (JB_ROOT_IS_SCALAR(doc))
	{
		JsonbValue *v = palloc(sizeof(JsonbValue));

		if (p->is_root && JsonbExtractScalar(&doc->root, v))
			out = lappend(out, v);
		return out;
	}
	if (p->is_root)
	{
		JsonbValue *v = palloc(sizeof(JsonbValue));

		v->type = jbvBinary;
		v->val.binary.data = &doc->root;
		v->val.binary.len = VARSIZE(doc) - VARHDRSZ;
		AppendFlattened(&out, v);
	}
	else if (p->simple_key && JB_ROOT_IS_OBJECT(doc))
	{
		JsonbValue *v = JbGet(&doc->root, p->simple_key);

		if (v)
			AppendFlattened(&out, v);
	}
	else
	{
		Jsonb	   *vars = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		Jsonb	   *arr = DatumGetJsonbP(DirectFunctionCall4(jsonb_path_query_array,
															 JsonbPGetDatum(doc), p->path,
															 JsonbPGetDatum(vars), BoolGetDatum(true)));
		int			n = JsonContainerSize(&arr->root);

		for (int i = 0; i < n; i++)
			AppendFlattened(&out, getIthJsonbValueFromContainer(&arr->root, i));
	}
	return out;
}

/* A string as itself, a number in its text form; NULL for anything else. */
char *
JsonbScalarText(JsonbValue *v)
{
	if (v->type == jbvString)
		return JbString(v);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

bool
PathFirstText(Jsonb *doc, const JPath *path, char **out)
{
	List	   *vals = PathValues(doc, path);

	*out = vals ? JsonbScalarText((JsonbValue *) linitial(vals)) : NULL;
	return *out != NULL;
}

/* Appends the ids a listing page holds (ids_path) to *ids. */
void
ListingIds(const SourceDef *src, Jsonb *page, List **ids)
{
	List	   *vals = PathValues(page, &src->ids_path);
	ListCell   *lc;

	foreach(lc, vals)
	{
		JsonbValue *v = lfirst(lc);
		char	   *id = JsonbScalarText(v);

		if (id == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("ids_path \"%s\" selected a value of type %s, not an id", src->ids_path.text, JbTypeName(v)),
					 errhint("Point ids_path at the ids themselves, e.g. \"$.ids\" or \"$.data[*].id\".")));
		*ids = lappend(*ids, id);
	}
}

static void
RecordError(RecordErrors *errs, int position, const char *id, const char *reason)
{
	StringInfoData s;

	errs->count++;
	if (errs->nsamples >= 20)
		return;
	initStringInfo(&s);
	appendStringInfoString(&s, "{\"record\": ");
	appendStringInfo(&s, "%d, \"id\": ", position);
	if (id)
		escape_json(&s, id);
	else
		appendStringInfoString(&s, "null");
	appendStringInfoString(&s, ", \"reason\": ");
	escape_json(&s, reason);
	appendStringInfoChar(&s, '}');
	if (errs->samples->len > 0)
		appendStringInfoString(errs->samples, ", ");
	appendStringInfoString(errs->samples, s.data);
	errs->nsamples++;
}

/* The first value of a path in a record (a JsonbValue of an object). */
static JsonbValue *
RecordValue(JsonbValue *rec, Jsonb **recdoc, const JPath *p)
{
	List	   *vals;

	if (p->simple_key)
		return JbGet(rec->val.binary.data, p->simple_key);
	if (p->is_root)
		return rec;
	if (*recdoc == NULL)
		*recdoc = JsonbValueToJsonb(rec);
	vals = PathValues(*recdoc, p);
	return vals ? (JsonbValue *) linitial(vals) : NULL;
}

/*
 * A mapped priority as an integer 1-5 (the rule of upsert_items,
 * src/queue/priority.c), or -1 with *why set.
 */
static int
PriorityOf(JsonbValue *v, const char **why)
{
	int16		value;
	char	   *text;
	bool		quoted;

	switch (PriorityParse(v, &value, &text, &quoted))
	{
		case PRIORITY_OK:
			return value;
		case PRIORITY_ABSENT:
			*why = "priority is missing";
			break;
		case PRIORITY_WRONG_TYPE:
			*why = psprintf("priority is of type %s, not a number", JsonbTypeName(v));
			break;
		case PRIORITY_NOT_NUMBER:
			*why = psprintf("priority \"%s\" is not a number", text);
			break;
		case PRIORITY_NOT_INTEGER:
			*why = psprintf(quoted ? "priority \"%s\" is not an integer" : "priority %s is not an integer", text);
			break;
		case PRIORITY_OUT_OF_RANGE:
			*why = psprintf(quoted ? "priority \"%s\" is out of range 1-5" : "priority %s is out of range 1-5", text);
			break;
	}
	return -1;
}

/*
 * Turns a details (or listing-only) response into the items array of
 * upsert_items: records_path selects the records, id_path the id of each,
 * mapping the priority and data.  Records without an id or with a bad
 * priority are counted in errs and skipped.  The ids of all records that
 * have one (kept or skipped for their priority) are appended to *ids: they
 * are open upstream, so a full run must not close their items.
 */
Jsonb *
RecordsToItems(const SourceDef *src, Jsonb *body, List **ids, RecordErrors *errs, int *nrecords)
{
	List	   *records = PathValues(body, &src->records_path);
	JsonbParseState *st = NULL;
	JsonbValue *res;
	ListCell   *lc;
	int			pos = 0;

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, records)
	{
		JsonbValue *rec = lfirst(lc);
		Jsonb	   *recdoc = NULL;
		JsonbValue *idv;
		char	   *id;
		int			priority = 0;
		JsonbValue	jv;

		pos++;
		if (!JbIsObject(rec))
		{
			RecordError(errs, pos, NULL, psprintf("record is a %s, not an object", JbTypeName(rec)));
			continue;
		}
		idv = RecordValue(rec, &recdoc, &src->id_path);
		id = idv ? JsonbScalarText(idv) : NULL;
		if (id == NULL || id[0] == '\0')
		{
			RecordError(errs, pos, NULL, psprintf("record has no id at \"%s\"", src->id_path.text));
			continue;
		}
		if (src->map_priority)
		{
			const char *why = NULL;

			priority = PriorityOf(RecordValue(rec, &recdoc, &src->map_priority->path), &why);
			if (priority < 0)
			{
				RecordError(errs, pos, id, why);
				*ids = lappend(*ids, id);	/* skipped, but listed upstream */
				continue;
			}
		}

		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		JbPushKey(&st, "external_id");
		jv.type = jbvString;
		jv.val.string.val = id;
		jv.val.string.len = strlen(id);
		pushJsonbValue(&st, WJB_VALUE, &jv);
		if (src->map_priority)
		{
			JbPushKey(&st, "priority");
			jv.type = jbvNumeric;
			jv.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric, Int32GetDatum(priority)));
			pushJsonbValue(&st, WJB_VALUE, &jv);
		}
		JbPushKey(&st, "data");
		if (src->map_data)
		{
			pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
			for (int i = 0; i < src->nmap; i++)
			{
				MapEntry   *e = &src->map[i];
				JsonbValue *val;

				if (e->key == NULL)
					continue;
				val = RecordValue(rec, &recdoc, &e->path);
				if (val == NULL)
					continue;
				JbPushKey(&st, e->key);
				pushJsonbValue(&st, WJB_VALUE, val);
			}
			pushJsonbValue(&st, WJB_END_OBJECT, NULL);
		}
		else
			pushJsonbValue(&st, WJB_VALUE, rec);
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
		*ids = lappend(*ids, id);
	}
	res = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	if (nrecords)
		*nrecords = list_length(records);
	return JsonbValueToJsonb(res);
}

/*
 * Parses a response body of len bytes as JSON.  JSON is UTF-8 (RFC 8259):
 * a body that is not -- binary, a NUL byte, another encoding -- raises
 * "invalid UTF-8 in <what> response from <url>" before anything can store
 * its text; it is then converted to the database encoding.  A body that is
 * not JSON raises "invalid JSON in <what> response from <url>" with the
 * parser's message as detail.
 */
Jsonb *
ParseJsonBody(const char *body, size_t len, const char *url, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *result = NULL;
	int			valid;

	/* a body was palloc'd, so len fits in an int */
	valid = pg_encoding_verifymbstr(PG_UTF8, body, (int) len);
	if ((size_t) valid < len)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid UTF-8 in %s response from %s", what, url),
				 errdetail("Byte %d of %zu (0x%02x) does not continue a valid UTF-8 sequence.",
						   valid + 1, len, (unsigned char) body[valid]),
				 errhint("JSON must be UTF-8; check what the API sends.")));
	body = pg_any_to_server(body, (int) len, PG_UTF8);

	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid JSON in %s response from %s", what, url),
				 errdetail("%s", edata->message)));
	}
	PG_END_TRY();
	return result;
}

PG_FUNCTION_INFO_V1(workqueue_check_source);

/*
 * SQL: workqueue._check_source(ids_url, details_url, options) raises the
 * first problem of a source definition.
 */
Datum
workqueue_check_source(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ids_url must not be null"),
				 errhint("Give the URL that lists the open ids.")));
	(void) SourceParse(NULL, NULL, text_to_cstring(PG_GETARG_TEXT_PP(0)),
					   PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
					   PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2));
	PG_RETURN_VOID();
}
