/*
 * arrays.c
 *		Arrays that callers pass in.
 */
#include "postgres.h"

#include "utils/lsyscache.h"

#include "core/arrays.h"

/*
 * Unpacks arr, an array of elemtype, for WqElement; null_message and
 * null_detail make the error it raises at a NULL element.
 */
void
WqElementsInit(WqElements *e, ArrayType *arr, Oid elemtype, const char *null_message,
			   const char *null_detail)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &e->values, &e->nulls, &e->n);
	e->null_message = null_message;
	e->null_detail = null_detail;
}

/* Element i (0-based); raises 22004 if it is NULL. */
Datum
WqElement(const WqElements *e, int i)
{
	if (e->nulls[i])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s", e->null_message),
				 errdetail(e->null_detail, i + 1)));
	return e->values[i];
}
