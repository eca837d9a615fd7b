/*
 * source.h
 *		Parsed source definitions and the record mapping.
 *
 * A source row (ids_url, details_url, options jsonb) is parsed once per
 * sync run into a SourceDef; the same parser validates create_source and
 * alter_source, so what is accepted there is exactly what the worker runs.
 */
#ifndef WORKQUEUE_SOURCE_H
#define WORKQUEUE_SOURCE_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

typedef struct JPath
{
	char	   *text;			/* as written */
	Datum		path;			/* compiled jsonpath */
	char	   *simple_key;		/* "$.key": looked up directly, or NULL */
	bool		is_root;		/* "$" */
} JPath;

typedef enum PageStyle
{
	PAGE_NONE,
	PAGE_NEXT_URL,
	PAGE_LINK,
	PAGE_CURSOR,
	PAGE_OFFSET
} PageStyle;

typedef struct MapEntry
{
	char	   *key;			/* data key, or NULL for priority */
	JPath		path;
} MapEntry;

typedef struct SourceDef
{
	char	   *name;
	char	   *queue;
	char	   *ids_url;
	char	   *details_url;	/* NULL: the listing carries whole records */
	JPath		ids_path;
	JPath		records_path;
	JPath		id_path;
	bool		details_post;
	int			batch_size;
	int			timeout_ms;
	int			max_concurrency;
	int			retries;
	List	   *headers;		/* of char *, "Name: value" */
	List	   *origins;		/* of char *: the origins of ids_url and
								 * details_url, the only ones the headers go to */
	bool		confirm_close;
	/* pagination */
	PageStyle	page_style;
	JPath		next_url_path;
	JPath		cursor_path;
	char	   *cursor_param;
	char	   *offset_param;
	char	   *limit_param;
	int			limit;
	JPath		total_path;
	bool		has_total;
	int			max_pages;
	/* mapping */
	int			nmap;
	MapEntry   *map;
	MapEntry   *map_priority;	/* NULL if priority is not mapped */
	bool		map_data;		/* some data.* keys are mapped */
} SourceDef;

/* Per-record outcome counters of RecordsToItems. */
typedef struct RecordErrors
{
	int			count;
	int			nsamples;
	StringInfo	samples;		/* a JSON array body, without brackets */
} RecordErrors;

extern SourceDef *SourceParse(const char *name, const char *queue, const char *ids_url,
							  const char *details_url, Jsonb *options);
extern List *PathValues(Jsonb *doc, const JPath *path);
extern char *JsonbScalarText(JsonbValue *v);
extern void ListingIds(const SourceDef *src, Jsonb *page, List **ids);
extern Jsonb *RecordsToItems(const SourceDef *src, Jsonb *body, List **ids, RecordErrors *errs,
							 int *nrecords);
extern bool PathFirstText(Jsonb *doc, const JPath *path, char **out);
extern Jsonb *ParseJsonBody(const char *body, size_t len, const char *url, const char *what);

#endif							/* WORKQUEUE_SOURCE_H */
