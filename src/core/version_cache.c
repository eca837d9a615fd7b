/*
 * version_cache.c
 *		Per-backend caches of compiled definitions, keyed by name and
 *		version.
 *
 * Workflow and calendar versions are immutable once committed, so their
 * compiled forms are kept for the life of the backend: an entry never goes
 * stale while the table it was read from exists, and keys name that
 * table's OID, so that a dropped and re-created extension starts afresh.
 * A version inserted by the current transaction may yet roll back (and its
 * number be reused by another definition): callers compile it but do not
 * cache it (VersionRowCommitted).  Each compiled version lives in a memory
 * context of its own, under CacheMemoryContext once cached.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "core/version_cache.h"

/*
 * Sets *key to (workqueue.<table>, name, version).  Returns false, leaving
 * the name out, if the name is too long to cache.
 */
bool
VersionKeyInit(VersionKey *key, const char *table, const char *name, int32 version)
{
	memset(key, 0, sizeof(VersionKey));
	key->relid = get_relname_relid(table, get_namespace_oid("workqueue", false));
	key->version = version;
	if (strlen(name) >= VERSION_CACHE_NAME_LEN)
		return false;
	strlcpy(key->name, name, VERSION_CACHE_NAME_LEN);
	return true;
}

/* The entry of key, or NULL. */
void *
VersionCacheFind(VersionCache *cache, const VersionKey *key)
{
	if (cache->hash == NULL)
		return NULL;
	return hash_search(cache->hash, key, HASH_FIND, NULL);
}

/*
 * The entry of key, made if there is none (*found false: all but its key
 * is uninitialized).
 */
void *
VersionCacheEnter(VersionCache *cache, const VersionKey *key, bool *found)
{
	if (cache->hash == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(VersionKey);
		ctl.entrysize = cache->entrysize;
		ctl.hcxt = CacheMemoryContext;
		cache->hash = hash_create(cache->label, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	return hash_search(cache->hash, key, HASH_ENTER, found);
}

/*
 * Caches a committed version compiled in cxt (under CacheMemoryContext) in
 * a cache of VersionEntry, and returns the cached one: if the version was
 * cached meanwhile, the first one stays and cxt is deleted.
 */
const void *
VersionCacheKeep(VersionCache *cache, const VersionKey *key, const void *compiled, MemoryContext cxt)
{
	bool		found;
	VersionEntry *entry = VersionCacheEnter(cache, key, &found);

	if (found)
		MemoryContextDelete(cxt);	/* compiled twice: keep the first */
	else
		entry->compiled = compiled;
	return entry->compiled;
}

/*
 * Was the row (read through SPI, with its xmin in column xmin_column)
 * committed before this transaction?  Only such versions may be cached.
 */
bool
VersionRowCommitted(HeapTuple row, TupleDesc desc, int xmin_column)
{
	bool		isnull;

	return !TransactionIdIsCurrentTransactionId(DatumGetTransactionId(SPI_getbinval(row, desc, xmin_column,
																				 &isnull)));
}
