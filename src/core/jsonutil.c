/*
 * jsonutil.c
 *		Small jsonb helpers shared by the definition parsers.
 */
#include "postgres.h"

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
