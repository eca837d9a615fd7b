/*
 * priority.h
 *		An item's priority read from JSON: one rule for upsert_items and for
 *		the priority a source's mapping takes from an upstream record.
 */
#ifndef WORKQUEUE_PRIORITY_H
#define WORKQUEUE_PRIORITY_H

#include "utils/jsonb.h"

typedef enum PriorityStatus
{
	PRIORITY_OK,				/* an integer from 1 to 5 */
	PRIORITY_ABSENT,			/* no value, or JSON null */
	PRIORITY_WRONG_TYPE,		/* neither a number nor a string */
	PRIORITY_NOT_NUMBER,		/* a string that is not a number */
	PRIORITY_NOT_INTEGER,		/* a number with a fraction (2.5; 2.0 is 2) */
	PRIORITY_OUT_OF_RANGE		/* an integer outside 1-5 */
} PriorityStatus;

/*
 * Reads v.  On PRIORITY_OK sets *value; otherwise, for the messages, *text
 * is the value as written (trimmed of blanks for a number; NULL for
 * PRIORITY_ABSENT and PRIORITY_WRONG_TYPE) and *quoted tells whether it was a
 * JSON string.
 */
extern PriorityStatus PriorityParse(const JsonbValue *v, int16 *value, char **text, bool *quoted);

#endif
