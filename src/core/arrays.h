/*
 * arrays.h
 *		Arrays that callers pass in.
 */
#ifndef WORKQUEUE_ARRAYS_H
#define WORKQUEUE_ARRAYS_H

#include "postgres.h"

#include "utils/array.h"

/*
 * The elements of an array that must hold no NULL; WqElement reads them,
 * raising 22004 at a NULL one.
 */
typedef struct WqElements
{
	int			n;
	Datum	   *values;
	bool	   *nulls;
	const char *null_message;	/* errmsg of the error */
	const char *null_detail;	/* errdetail: a format taking the 1-based position */
} WqElements;

extern void WqElementsInit(WqElements *e, ArrayType *arr, Oid elemtype,
						   const char *null_message, const char *null_detail);
extern Datum WqElement(const WqElements *e, int i);

#endif							/* WORKQUEUE_ARRAYS_H */
