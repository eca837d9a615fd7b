/*
 * jsonutil.c
 *		Small jsonb helpers shared by the definition parsers and the
 *		builders of items and payloads.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "core/jsonutil.h"

/* Looks up key in an object container; NULL if absent. */
JsonbValue *
JbGet(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = palloc(sizeof(JsonbValue));

	return getKeyJsonValueFromContainer(obj, key, strlen(key), v);
}

/* The JSON type of a value, for messages ("a string", "an object"...). */
const char *
JbTypeName(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "array" : "object";
		default:
			return "value";
	}
}

bool
JbIsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

bool
JbIsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* A string value as a C string. */
char *
JbString(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Is the string key one of keys (a NULL-terminated list)? */
bool
JbKeyIn(const char *const *keys, const JsonbValue *key)
{
	for (; *keys; keys++)
		if (strlen(*keys) == (size_t) key->val.string.len &&
			memcmp(*keys, key->val.string.val, key->val.string.len) == 0)
			return true;
	return false;
}

/* The keys of a NULL-terminated list, comma-separated, for hints. */
char *
JbKeyList(const char *const *keys)
{
	StringInfoData b;

	initStringInfo(&b);
	for (const char *const *k = keys; *k; k++)
		appendStringInfo(&b, "%s%s", k == keys ? "" : ", ", *k);
	return b.data;
}

/* Pushes an object key while building a value with pushJsonbValue. */
void
JbPushKey(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

void
JbMembersInit(JbMembers *m, JsonbContainer *obj)
{
	m->it = JsonbIteratorInit(obj);
}

/* Moves to the next member; false when there is none left. */
bool
JbMembersNext(JbMembers *m)
{
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&m->it, &m->key, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&m->it, &m->value, true);
		Assert(tok == WJB_VALUE);
		return true;
	}
	return false;
}
