/*
 * jsonutil.h
 *		Small jsonb helpers shared by the parsers of workflow, source and
 *		calendar definitions.
 */
#ifndef WORKQUEUE_JSONUTIL_H
#define WORKQUEUE_JSONUTIL_H

#include "postgres.h"
#include "utils/jsonb.h"

extern JsonbValue *JbGet(JsonbContainer *obj, const char *key);
extern const char *JbTypeName(JsonbValue *v);
extern bool JbIsObject(JsonbValue *v);
extern bool JbIsArray(JsonbValue *v);

#endif							/* WORKQUEUE_JSONUTIL_H */
