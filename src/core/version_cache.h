/*
 * version_cache.h
 *		Per-backend caches of compiled definitions, keyed by name and
 *		version (workflow versions, calendar versions).
 */
#ifndef WORKQUEUE_VERSION_CACHE_H
#define WORKQUEUE_VERSION_CACHE_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/hsearch.h"

/* names this long or longer are never cached */
#define VERSION_CACHE_NAME_LEN 256

/*
 * (table, name, version): table is the OID of the workqueue table the
 * version was read from, so that a re-created extension starts afresh.
 */
typedef struct VersionKey
{
	Oid			relid;
	int32		version;
	char		name[VERSION_CACHE_NAME_LEN];
} VersionKey;

/* An entry of a cache of compiled versions. */
typedef struct VersionEntry
{
	VersionKey	key;
	const void *compiled;		/* lives in its own context under CacheMemoryContext */
} VersionEntry;

/*
 * A cache: a hash in CacheMemoryContext, made on first use, whose entries
 * (entrysize bytes) begin with their VersionKey.
 */
typedef struct VersionCache
{
	const char *label;
	Size		entrysize;
	HTAB	   *hash;
} VersionCache;

#define VERSION_CACHE(label, entrytype) {(label), sizeof(entrytype), NULL}

extern bool VersionKeyInit(VersionKey *key, const char *table, const char *name, int32 version);
extern void *VersionCacheFind(VersionCache *cache, const VersionKey *key);
extern void *VersionCacheEnter(VersionCache *cache, const VersionKey *key, bool *found);
extern const void *VersionCacheKeep(VersionCache *cache, const VersionKey *key, const void *compiled,
									MemoryContext cxt);
extern bool VersionRowCommitted(HeapTuple row, TupleDesc desc, int xmin_column);

#endif							/* WORKQUEUE_VERSION_CACHE_H */
