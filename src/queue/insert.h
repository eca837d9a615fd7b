/*
 * insert.h
 *		The one insert path for new items: add(), add_many() and the new
 *		records of upsert_items() (src/queue/insert.c).
 */
#ifndef WORKQUEUE_INSERT_H
#define WORKQUEUE_INSERT_H

#include "postgres.h"

#include "utils/jsonb.h"

/* What new items of a queue start with (NewItemsReadQueue). */
typedef struct NewItemsQueue
{
	char	   *workflow;
	int32		version;		/* the workflow's current version */
	char	   *start_step;
	char	   *role;			/* the start step's role, or NULL */
	bool		sla;			/* the queue has an SLA policy */
} NewItemsQueue;

/* One new item; data points into the caller's value. */
typedef struct NewItem
{
	const char *external_id;	/* NULL: none */
	int			external_id_len;
	int16		priority;		/* 1-5 */
	JsonbContainer *data;		/* an object */
	uint32		datalen;
} NewItem;

/* What NewItemsInsert wrote. */
typedef struct NewItemsResult
{
	int64		inserted;
	int		   *skipped;		/* indexes (into pos) lost to an existing external id */
	int			nskipped;
	int64	   *ids;			/* the new items' ids, in the order of pos */
} NewItemsResult;

extern void NewItemsReadQueue(text *queue, NewItemsQueue *q);
extern void NewItemsInsert(text *queue, const NewItemsQueue *q, text *source, Datum actor,
						   bool seen, bool precheck, const NewItem *items, const int *pos, int n,
						   NewItemsResult *res);

#endif							/* WORKQUEUE_INSERT_H */
