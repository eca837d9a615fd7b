/*
 * jsonutil.h
 *		Small jsonb helpers shared by the parsers of workflow, source and
 *		calendar definitions, and by the builders of items and payloads.
 */
#ifndef WORKQUEUE_JSONUTIL_H
#define WORKQUEUE_JSONUTIL_H

#include "postgres.h"
#include "utils/jsonb.h"

extern JsonbValue *JbGet(JsonbContainer *obj, const char *key);
extern const char *JbTypeName(JsonbValue *v);
extern bool JbIsObject(JsonbValue *v);
extern bool JbIsArray(JsonbValue *v);
extern char *JbString(JsonbValue *v);
extern bool JbKeyIn(const char *const *keys, const JsonbValue *key);
extern char *JbKeyList(const char *const *keys);
extern void JbPushKey(JsonbParseState **state, const char *key);

/*
 * The members of an object, in storage order:
 *
 *		JbMembersInit(&m, obj);
 *		while (JbMembersNext(&m))
 *			... m.key, m.value ...
 */
typedef struct JbMembers
{
	JsonbIterator *it;
	JsonbValue	key;			/* a string */
	JsonbValue	value;			/* an object or array is jbvBinary */
} JbMembers;

extern void JbMembersInit(JbMembers *m, JsonbContainer *obj);
extern bool JbMembersNext(JbMembers *m);

#endif							/* WORKQUEUE_JSONUTIL_H */
