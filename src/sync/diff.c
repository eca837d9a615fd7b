/*
 * diff.c
 *		Finding a queue's items by external id: missing_ids(), and the read
 *		phase of upsert_items().
 *
 * Both get a batch of external ids -- up to millions for missing_ids --
 * and need to know which of them have an item in the queue:
 *
 *	1. The ids go into an open-addressing hash set (SyncIdSet) that points
 *	   at them instead of copying them: a slot is a 32-bit hash and a
 *	   reference.  For missing_ids the reference is the element's offset in
 *	   the detoasted text[] (elements are 4-byte aligned, so offset / 4 fits
 *	   and is unique); upsert_items passes a list of (pointer, length).
 *	   NULLs are skipped and a repeated id keeps its first position.  A
 *	   bitmap marks the ids not found in the queue yet.
 *	2. SyncFindItems reads the queue's external ids in one pass over the
 *	   unique index item_queue_external_id_key (queue = $1) and looks each
 *	   up in the set -- index-only where the visibility map allows, unless
 *	   the caller wants the items' rows.  When the queue turns out to be
 *	   much larger than the batch -- more than SCAN_ENTRIES_PER_PROBE index
 *	   entries per id still missing -- the pass stops and each remaining id
 *	   is probed in the index instead.  Either way the cost stays within
 *	   about twice the cheaper of "read the queue" and "probe every id",
 *	   without statistics.  Lookups go in batches whose hash slots, and
 *	   then ids, are prefetched together (see LOOKUP_BATCH): the set of
 *	   1M ids spans some 36 MB, and waiting on memory was the pass's cost.
 *	3. missing_ids walks its input array once more, in order, and returns
 *	   every id still marked through a tuplestore (which spills to disk past
 *	   work_mem).
 *
 * When workqueue.item is a Citus table, this node's heap and index are an
 * empty shell: missing_ids then replaces step 2 with one SQL statement
 * (FindItemsSql), which Citus routes to the queue's shard.
 *
 * Memory: 8 bytes per hash slot (1.33 to 2.67 slots per id) and one bit
 * per 4 bytes of array data (per id for a list), in the caller's memory
 * context; missing_ids works in its own "workqueue missing_ids" context,
 * which also holds the detoasted input, and deletes it before returning.
 *
 * Ids are compared byte for byte, which is what equality means under any
 * deterministic collation -- and external_id has the database's default
 * collation, which always is one, libc or ICU.  Index
 * entries are checked against the given MVCC snapshot; in serializable
 * transactions the pages read are predicate-locked, as an index-only scan
 * does.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "core/spi.h"
#include "core/srf.h"
#include "core/workqueue.h"
#include "sync/sync_db.h"

/*
 * Reading one index entry of the queue costs roughly this many times less
 * than probing the index for one id: measured on 1M items, about 65 ns
 * against 2.6 us (the probe's comparisons go through the collation; the
 * pass only hashes).  See step 2 above.
 */
#define SCAN_ENTRIES_PER_PROBE	32

/* A slot of the hash set: ref is 0 for an empty slot, else index + 1. */
typedef struct IdSlot
{
	uint32		hash;
	uint32		ref;
} IdSlot;

struct SyncIdSet
{
	/* the ids: elements of a text array, or a list */
	char	   *arrdata;		/* ARR_DATA_PTR of the array, or NULL */
	const SyncId *list;
	IdSlot	   *slots;
	uint32		mask;			/* number of slots - 1 */
	uint64		pending;		/* distinct ids not found in the queue yet */
	bits8	   *missing;		/* by index: a first occurrence not found */
};

#define BIT_SET(map, i)		((map)[(i) >> 3] |= (1 << ((i) & 7)))
#define BIT_CLEAR(map, i)	((map)[(i) >> 3] &= ~(1 << ((i) & 7)))
#define BIT_TEST(map, i)	(((map)[(i) >> 3] & (1 << ((i) & 7))) != 0)

/*
 * A batch of this many ids is hashed and its slots prefetched before any
 * of them is looked at: slots and ids are spread over tens of megabytes,
 * and a lookup that waits for memory twice (slot, then id) is what the
 * pass over the queue spent most of its time on.
 */
#define LOOKUP_BATCH	16

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(addr)	__builtin_prefetch(addr)
#else
#define PREFETCH(addr)	((void) 0)
#endif

static SPIPlanPtr queue_plan;
static SPIPlanPtr distributed_plan;
static SPIPlanPtr existing_plan;

/* ARR_DATA_OFFSET without its signed/unsigned mix, which -Wextra reports */
static inline Size
ArrayDataOffset(ArrayType *arr)
{
	return ARR_HASNULL(arr) ? (Size) arr->dataoffset : ARR_OVERHEAD_NONULLS(ARR_NDIM(arr));
}

/* The id an index of the set stands for. */
static inline void
IdGet(const SyncIdSet *set, uint32 index, const char **s, int *len)
{
	if (set->arrdata != NULL)
	{
		const char *elem = set->arrdata + ((Size) index << 2);

		*s = VARDATA_ANY(elem);
		*len = VARSIZE_ANY_EXHDR(elem);
	}
	else
	{
		*s = set->list[index].s;
		*len = set->list[index].len;
	}
}

static inline uint32
IdHash(const char *s, int len)
{
	return hash_bytes((const unsigned char *) s, len);
}

static SyncIdSet *
IdSetCreate(uint64 capacity, uint64 nindexes)
{
	SyncIdSet  *set = palloc0(sizeof(SyncIdSet));
	uint64		nslots = 16;

	while (nslots < capacity + capacity / 3 + 1)
		nslots <<= 1;
	set->slots = MemoryContextAllocHuge(CurrentMemoryContext, nslots * sizeof(IdSlot));
	memset(set->slots, 0, nslots * sizeof(IdSlot));
	set->mask = (uint32) (nslots - 1);
	set->missing = MemoryContextAllocHuge(CurrentMemoryContext, nindexes / 8 + 1);
	memset(set->missing, 0, nindexes / 8 + 1);
	return set;
}

/*
 * From slot i on, the first slot that is empty or holds an id of hash h.
 */
static inline uint32
IdSetCandidate(const SyncIdSet *set, uint32 i, uint32 h)
{
	for (;; i = (i + 1) & set->mask)
	{
		const IdSlot *slot = &set->slots[i];

		if (slot->ref == 0 || slot->hash == h)
			return i;
	}
}

/* Prefetches the id a (non-empty) slot refers to. */
static inline void
IdSetPrefetchId(const SyncIdSet *set, const IdSlot *slot)
{
	if (set->arrdata != NULL)
		PREFETCH(set->arrdata + ((Size) (slot->ref - 1) << 2));
	else
		PREFETCH(&set->list[slot->ref - 1]);
}

/*
 * The slot of the set that holds the id s (of len bytes, hash h), or the
 * empty slot where it would go; the search starts at slot i, which must
 * be h & mask or a slot after it in h's probe sequence.
 */
static inline IdSlot *
IdSetProbeFrom(const SyncIdSet *set, uint32 i, const char *s, int len, uint32 h)
{
	for (;; i = (i + 1) & set->mask)
	{
		IdSlot	   *slot;
		const char *t;
		int			tlen;

		i = IdSetCandidate(set, i, h);
		slot = &set->slots[i];
		if (slot->ref == 0)
			return slot;
		IdGet(set, slot->ref - 1, &t, &tlen);
		if (tlen == len && memcmp(t, s, len) == 0)
			return slot;
	}
}

/*
 * The slot of the set that holds the id s (of len bytes, hash h), or the
 * empty slot where it would go.
 */
static inline IdSlot *
IdSetProbe(const SyncIdSet *set, const char *s, int len, uint32 h)
{
	return IdSetProbeFrom(set, h & set->mask, s, len, h);
}

/*
 * Adds the id of an index; returns the index of an equal id already there,
 * or -1.
 */
static int64
IdSetAddHashed(SyncIdSet *set, uint32 index, uint32 h)
{
	const char *s;
	int			len;
	IdSlot	   *slot;

	IdGet(set, index, &s, &len);
	slot = IdSetProbe(set, s, len, h);
	if (slot->ref != 0)
		return slot->ref - 1;
	slot->hash = h;
	slot->ref = index + 1;
	BIT_SET(set->missing, index);
	set->pending++;
	return -1;
}

static int64
IdSetAdd(SyncIdSet *set, uint32 index)
{
	const char *s;
	int			len;

	IdGet(set, index, &s, &len);
	return IdSetAddHashed(set, index, IdHash(s, len));
}

/* Marks the id s (of len bytes) found, if it is in the set and missing. */
static void
IdSetMarkFound(SyncIdSet *set, const char *s, int len)
{
	IdSlot	   *slot = IdSetProbe(set, s, len, IdHash(s, len));

	if (slot->ref != 0 && BIT_TEST(set->missing, slot->ref - 1))
	{
		BIT_CLEAR(set->missing, slot->ref - 1);
		set->pending--;
	}
}

/*
 * A set of the non-null elements of a text array, which must stay in
 * memory while the set is used.  An element's index is its byte offset in
 * the array's data / 4.
 */
SyncIdSet *
SyncIdSetFromArray(ArrayType *arr)
{
	int			nelems = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	bits8	   *nulls = ARR_NULLBITMAP(arr);
	Size		datasize = ARR_SIZE(arr) - ArrayDataOffset(arr);
	uint64		nonnull = nelems;
	SyncIdSet  *set;
	char	   *p;

	if (nulls != NULL)
		for (int i = 0; i < nelems; i++)
			if (!(nulls[i >> 3] & (1 << (i & 7))))
				nonnull--;
	set = IdSetCreate(nonnull, datasize / 4 + 1);

	set->arrdata = (char *) arr + ArrayDataOffset(arr);
	p = set->arrdata;
	for (int i = 0; i < nelems;)
	{
		uint32		index[LOOKUP_BATCH];
		uint32		hash[LOOKUP_BATCH];
		int			n = 0;

		CHECK_FOR_INTERRUPTS();
		/* hash a batch of elements and prefetch their slots ... */
		for (; i < nelems && n < LOOKUP_BATCH; i++)
		{
			if (nulls != NULL && !(nulls[i >> 3] & (1 << (i & 7))))
				continue;
			index[n] = (uint32) ((p - set->arrdata) >> 2);
			hash[n] = IdHash(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p));
			PREFETCH(&set->slots[hash[n] & set->mask]);
			n++;
			p = att_addlength_pointer(p, -1, p);
			p = (char *) att_align_nominal(p, TYPALIGN_INT);
		}
		/* ... then add them */
		for (int j = 0; j < n; j++)
			(void) IdSetAddHashed(set, index[j], hash[j]);
	}
	return set;
}

/*
 * A set of a list of n ids, which must stay in memory while the set is
 * used; an id's index is its position in the list.  If an id appears
 * twice, returns NULL and sets *dup1 < *dup2 to the two positions.
 */
SyncIdSet *
SyncIdSetFromList(const SyncId *ids, int n, int *dup1, int *dup2)
{
	SyncIdSet  *set = IdSetCreate(n, n);

	set->list = ids;
	for (int i = 0; i < n; i++)
	{
		int64		other;

		CHECK_FOR_INTERRUPTS();
		other = IdSetAdd(set, i);
		if (other >= 0)
		{
			*dup1 = (int) other;
			*dup2 = i;
			return NULL;
		}
	}
	return set;
}

/* Is the id of this index in the set and not found in the queue? */
bool
SyncIdSetMissing(const SyncIdSet *set, uint32 index)
{
	return BIT_TEST(set->missing, index);
}

/* Marks an index found and tells the caller. */
static inline void
Found(SyncIdSet *set, uint32 index, TupleTableSlot *slot, SyncFoundFn found, void *arg)
{
	BIT_CLEAR(set->missing, index);
	set->pending--;
	if (found != NULL)
		found(arg, index, slot);
}

/*
 * Is there a row visible to the scan's snapshot for the index entry that
 * points at tid?  With fetch the row is read into slot; without, pages
 * that the visibility map marks all-visible are not read (as in an
 * index-only scan).  The entry need not be the one the scan is on: the
 * row is read with table_index_fetch_tuple, which follows the HOT chain
 * and predicate-locks the tuple as index_fetch_heap does, but without
 * marking the scan's current entry dead.
 */
static bool
EntryVisible(IndexScanDesc scan, ItemPointer tid, TupleTableSlot *slot, bool fetch, Buffer *vmbuf)
{
	BlockNumber blk = ItemPointerGetBlockNumber(tid);

	if (fetch || !VM_ALL_VISIBLE(scan->heapRelation, blk, vmbuf))
	{
		ItemPointerData t = *tid;
		bool		call_again = false;
		bool		all_dead = false;
		bool		visible;

		visible = table_index_fetch_tuple(scan->xs_heapfetch, &t, scan->xs_snapshot, slot,
										  &call_again, &all_dead);
		if (visible)
			pgstat_count_heap_fetch(scan->indexRelation);
		return visible;
	}
	PredicateLockPage(scan->heapRelation, blk, scan->xs_snapshot);
	return true;
}

/* An index entry of a batch in ScanQueue. */
typedef struct ScanEntry
{
	ItemPointerData tid;
	uint32		hash;
	uint32		pos;			/* the slot it is looked up at */
	Size		off;			/* its external id in the batch's buffer */
	int			len;
} ScanEntry;

/*
 * Reads the queue's external ids from the index, marking the ones in the
 * set.  Returns false if it stopped after "budget" entries, true when it
 * read them all.
 *
 * The entries are taken in batches of LOOKUP_BATCH: their ids are copied
 * and hashed and their slots prefetched; then the first candidate slot of
 * each is found and the id it refers to prefetched; then the ids are
 * compared.  Entries are still handled, and found() called, in index order.
 */
static bool
ScanQueue(IndexScanDesc scan, ScanKey queuekey, SyncIdSet *set, uint64 budget,
		  TupleTableSlot *slot, SyncFoundFn found, void *arg)
{
	Buffer		vmbuf = InvalidBuffer;
	ScanEntry	batch[LOOKUP_BATCH];
	Size		bufsize = 1024;
	char	   *buf = palloc(bufsize);
	uint64		seen = 0;
	bool		complete = true;
	bool		more = true;

	index_rescan(scan, queuekey, 1, NULL, 0);
	while (more && set->pending > 0)
	{
		Size		used = 0;
		int			n = 0;

		CHECK_FOR_INTERRUPTS();
		/* 1. a batch of entries: copy and hash the ids, prefetch the slots */
		while (n < LOOKUP_BATCH)
		{
			ItemPointer tid;
			ScanEntry  *e = &batch[n];
			Datum		d;
			bool		isnull;
			text	   *t;

			if (seen >= budget)
			{
				complete = more = false;
				break;
			}
			if ((tid = index_getnext_tid(scan, ForwardScanDirection)) == NULL)
			{
				more = false;
				break;
			}
			seen++;
			d = index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull);
			if (isnull)
				continue;		/* an item without external id */
			t = DatumGetTextPP(d);
			e->len = VARSIZE_ANY_EXHDR(t);
			if (used + e->len > bufsize)
			{
				bufsize = Max(bufsize * 2, used + e->len);
				buf = repalloc(buf, bufsize);
			}
			memcpy(buf + used, VARDATA_ANY(t), e->len);
			if ((Pointer) t != DatumGetPointer(d))
				pfree(t);
			e->tid = *tid;
			e->off = used;
			e->hash = IdHash(buf + used, e->len);
			e->pos = e->hash & set->mask;
			PREFETCH(&set->slots[e->pos]);
			used += e->len;
			n++;
		}
		/* 2. the first candidate slot of each; prefetch the id it holds */
		for (int i = 0; i < n; i++)
		{
			ScanEntry  *e = &batch[i];

			e->pos = IdSetCandidate(set, e->pos, e->hash);
			if (set->slots[e->pos].ref != 0)
				IdSetPrefetchId(set, &set->slots[e->pos]);
		}
		/* 3. compare; mark the ones found */
		for (int i = 0; i < n && set->pending > 0; i++)
		{
			ScanEntry  *e = &batch[i];
			IdSlot	   *s;
			uint32		index;

			if (set->slots[e->pos].ref == 0)
				continue;		/* not asked for */
			s = IdSetProbeFrom(set, e->pos, buf + e->off, e->len, e->hash);
			if (s->ref == 0)
				continue;		/* not asked for */
			index = s->ref - 1;
			if (!BIT_TEST(set->missing, index))
				continue;		/* already found */
			if (EntryVisible(scan, &e->tid, slot, found != NULL, &vmbuf))
				Found(set, index, slot, found, arg);
			ExecClearTuple(slot);
		}
	}
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	pfree(buf);
	return complete;
}

/*
 * Probes the index for every id of the set still missing.
 */
static void
ProbeIds(IndexScanDesc scan, ScanKey keys, SyncIdSet *set,
		 TupleTableSlot *slot, SyncFoundFn found, void *arg)
{
	Buffer		vmbuf = InvalidBuffer;
	text	   *key = NULL;
	int			keymax = 0;

	for (uint32 i = 0; i <= set->mask; i++)
	{
		uint32		ref = set->slots[i].ref;
		ItemPointer tid;

		if (ref == 0 || !BIT_TEST(set->missing, ref - 1))
			continue;
		CHECK_FOR_INTERRUPTS();
		if (set->arrdata != NULL)
			keys[1].sk_argument = PointerGetDatum(set->arrdata + ((Size) (ref - 1) << 2));
		else
		{
			const SyncId *id = &set->list[ref - 1];

			if (id->len > keymax)
			{
				keymax = Max(id->len, 64);
				key = key ? repalloc(key, VARHDRSZ + keymax) : palloc(VARHDRSZ + keymax);
			}
			SET_VARSIZE(key, VARHDRSZ + id->len);
			memcpy(VARDATA(key), id->s, id->len);
			keys[1].sk_argument = PointerGetDatum(key);
		}
		index_rescan(scan, keys, 2, NULL, 0);
		while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			bool		visible = EntryVisible(scan, tid, slot, found != NULL, &vmbuf);

			if (visible)
				Found(set, ref - 1, slot, found, arg);
			ExecClearTuple(slot);
			if (visible)
				break;
		}
	}
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	if (key)
		pfree(key);
}

/*
 * Opens workqueue.item and its unique index on (queue, external_id) with
 * AccessShareLock; checks that the index is what this code expects.
 */
void
SyncOpenItemIndex(Relation *heap, Relation *index)
{
	Oid			nsp = get_namespace_oid("workqueue", false);
	Oid			heapoid = get_relname_relid("item", nsp);
	Oid			indexoid = get_relname_relid("item_queue_external_id_key", nsp);

	if (!OidIsValid(heapoid) || !OidIsValid(indexoid))
		elog(ERROR, "workqueue.item or its index item_queue_external_id_key is missing");
	*heap = table_open(heapoid, AccessShareLock);
	*index = index_open(indexoid, AccessShareLock);
	if ((*index)->rd_index->indrelid != heapoid ||
		(*index)->rd_rel->relam != BTREE_AM_OID ||
		(*index)->rd_index->indnkeyatts != 2 ||
		(*index)->rd_index->indkey.values[0] != get_attnum(heapoid, "queue") ||
		(*index)->rd_index->indkey.values[1] != get_attnum(heapoid, "external_id"))
		elog(ERROR, "index item_queue_external_id_key is not a btree on workqueue.item (queue, external_id)");
}

/*
 * SyncFindItems on a distributed install, where this node's heap and index
 * of workqueue.item are an empty shell (or one shard of many): the ids
 * still missing are looked up with "SELECT * FROM workqueue.item WHERE
 * queue = $1 AND external_id = ANY ($2)", which Citus routes to the shard of
 * the queue, read through a cursor in batches; each row found is handed to
 * found in a slot of the table's row type.  The statement reads with a
 * snapshot of its own, taken when it starts (a new one in READ COMMITTED,
 * as the caller's snap).
 */
static void
FindItemsByQuery(SyncIdSet *set, text *queue, SyncFoundFn found, void *arg)
{
	static SPIPlanPtr rows_plan;
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		args[2];
	Datum	   *ids = palloc(sizeof(Datum) * set->pending);
	int			nids = 0;
	Relation	heap;
	TupleDesc	desc;
	TupleTableSlot *slot;
	Portal		portal;

	/* the ids still missing, from the set's slots */
	for (uint64 i = 0; i <= set->mask; i++)
	{
		const char *s;
		int			len;

		if (set->slots[i].ref == 0 || !BIT_TEST(set->missing, set->slots[i].ref - 1))
			continue;
		IdGet(set, set->slots[i].ref - 1, &s, &len);
		ids[nids++] = PointerGetDatum(cstring_to_text_with_len(s, len));
	}
	args[0] = PointerGetDatum(queue);
	args[1] = PointerGetDatum(construct_array(ids, nids, TEXTOID, -1, false, TYPALIGN_INT));

	heap = table_open(get_relname_relid("item", get_namespace_oid("workqueue", false)), AccessShareLock);
	desc = RelationGetDescr(heap);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);

	SPI_connect();
	portal = SPI_cursor_open(NULL,
							 WqPlan(&rows_plan,
									"SELECT * FROM workqueue.item WHERE queue = $1 AND external_id = ANY ($2)",
									2, types),
							 args, NULL, false);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed && set->pending > 0; r++)
		{
			HeapTuple	row = SPI_tuptable->vals[r];
			TupleDesc	rowdesc = SPI_tuptable->tupdesc;
			int			col = 0;
			int			eid = 0;
			IdSlot	   *hit;
			text	   *t;

			/* SELECT * has the table's columns in order, but the dropped ones */
			ExecClearTuple(slot);
			for (int a = 0; a < desc->natts; a++)
			{
				if (TupleDescAttr(desc, a)->attisdropped)
				{
					slot->tts_values[a] = (Datum) 0;
					slot->tts_isnull[a] = true;
					continue;
				}
				if (++col > rowdesc->natts)
					elog(ERROR, "rows read do not match the row type of workqueue.item");
				slot->tts_values[a] = SPI_getbinval(row, rowdesc, col, &slot->tts_isnull[a]);
				if (strcmp(NameStr(TupleDescAttr(desc, a)->attname), "external_id") == 0)
					eid = a;
			}
			ExecStoreVirtualTuple(slot);
			if (slot->tts_isnull[eid])
				continue;
			t = DatumGetTextPP(slot->tts_values[eid]);
			hit = IdSetProbe(set, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
							 IdHash(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
			if (hit->ref != 0 && BIT_TEST(set->missing, hit->ref - 1))
				Found(set, hit->ref - 1, slot, found, arg);
		}
		SPI_freetuptable(SPI_tuptable);
		if (set->pending == 0)
			break;
	}
	SPI_cursor_close(portal);
	SPI_finish();
	ExecDropSingleTupleTableSlot(slot);
	table_close(heap, AccessShareLock);
}

/*
 * Finds the items of the queue whose external ids are in the set, as seen
 * by snap, and clears their marks.  With a callback, also reads each such
 * item's row and calls found(arg, index, slot) with it.  On a distributed
 * install, through SQL (FindItemsByQuery).
 */
void
SyncFindItems(SyncIdSet *set, text *queue, Snapshot snap, SyncFoundFn found, void *arg)
{
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	bool		complete;

	if (set->pending == 0)
		return;
	if (unlikely(WqDistributed()))
	{
		FindItemsByQuery(set, queue, found, arg);
		return;
	}
	SyncOpenItemIndex(&heap, &index);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(queue));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[1], F_TEXTEQ, (Datum) 0);
	slot = table_slot_create(heap, NULL);

	scan = index_beginscan(heap, index, snap, 1, 0);
	scan->xs_want_itup = true;
	complete = ScanQueue(scan, keys, set, set->pending * SCAN_ENTRIES_PER_PROBE, slot, found, arg);
	index_endscan(scan);
	if (!complete)
	{
		scan = index_beginscan(heap, index, snap, 2, 0);
		ProbeIds(scan, keys, set, slot, found, arg);
		index_endscan(scan);
	}

	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
}

/*
 * Raises the error of workqueue._queue() unless the queue exists.
 */
static void
CheckQueueExists(text *queue)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {PointerGetDatum(queue)};
	bool		found;

	SPI_connect();
	if (SPI_execute_plan(WqPlan(&queue_plan, "SELECT 1 FROM workqueue.queue WHERE name = $1", 1, types),
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read workqueue.queue");
	found = SPI_processed > 0;
	SPI_finish();
	if (!found)
		SYNC_QUEUE_NOT_FOUND(text_to_cstring(queue));
}

/*
 * Is workqueue.item a Citus table?  Then this node's heap and index of it
 * are an empty shell (or hold one shard of many), and ids must be looked
 * up through SQL, which Citus routes to the shard of the queue.
 */
static bool
ItemsDistributed(void)
{
	bool		distributed;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;
	SPI_connect();
	if (SPI_execute_plan(WqPlan(&distributed_plan,
								"SELECT 1 FROM pg_catalog.pg_dist_partition"
								" WHERE logicalrelid = 'workqueue.item'::regclass", 0, NULL),
						 NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_catalog.pg_dist_partition");
	distributed = SPI_processed > 0;
	SPI_finish();
	return distributed;
}

/*
 * The SQL path of missing_ids: marks found the ids of the set that
 * "SELECT external_id FROM workqueue.item WHERE queue = $1 AND external_id
 * = ANY ($2)" returns, read through a cursor in batches, and that check (if
 * not NULL) lets the caller see.  Slower than the index pass (the array
 * goes through the executor and each element is compared under the
 * column's collation), but correct wherever SQL is.
 */
static void
FindItemsSql(SyncIdSet *set, text *queue, ArrayType *arr, WqScopeCheck *check)
{
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		args[2] = {PointerGetDatum(queue), PointerGetDatum(arr)};
	Portal		portal;

	SPI_connect();
	portal = SPI_cursor_open(NULL,
							 WqPlan(&existing_plan,
									"SELECT external_id, scope FROM workqueue.item"
									" WHERE queue = $1 AND external_id = ANY ($2)", 2, types),
							 args, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			text	   *t;

			if (isnull)
				continue;
			if (check != NULL)
			{
				bool		scope_null;
				Datum		scope = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &scope_null);

				if (!scope_null && !WqScopeVisible(check, DatumGetArrayTypeP(scope)))
					continue;
			}
			t = DatumGetTextPP(d);
			IdSetMarkFound(set, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			if ((Pointer) t != DatumGetPointer(d))
				pfree(t);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

/*
 * For a caller who is not an administrator, the ids found of items out of
 * the caller's scopes: missing_ids reports them missing, as it reports an
 * id that no item has (a scope does not reveal that an item exists).
 */
typedef struct HiddenIds
{
	WqScopeCheck check;
	AttrNumber	scope_att;
	List	   *indexes;		/* of the set, found but hidden */
} HiddenIds;

static void
NoteHidden(void *arg, uint32 index, TupleTableSlot *slot)
{
	HiddenIds  *hidden = (HiddenIds *) arg;
	bool		isnull;
	Datum		scope = slot_getattr(slot, hidden->scope_att, &isnull);

	if (!isnull && !WqScopeVisible(&hidden->check, DatumGetArrayTypeP(scope)))
		hidden->indexes = lappend_int(hidden->indexes, (int) index);
}

PG_FUNCTION_INFO_V1(workqueue_missing_ids);

/*
 * SQL: workqueue.missing_ids(queue text, ids text[]) returns setof text
 *
 * A NULL array gives no rows (the queue is still checked).
 */
Datum
workqueue_missing_ids(PG_FUNCTION_ARGS)
{
	text	   *queue;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext cxt;
	MemoryContext oldcxt;
	ArrayType  *arr;
	SyncIdSet  *set;
	int			nelems;
	bits8	   *nulls;
	char	   *p;
	bool		isnull = false;
	HiddenIds	hidden;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue name must not be null")));
	queue = PG_GETARG_TEXT_PP(0);
	CheckQueueExists(queue);
	store = WqMaterializedResult(fcinfo, &tupdesc);
	if (PG_ARGISNULL(1))
		return (Datum) 0;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "workqueue missing_ids", ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	arr = PG_GETARG_ARRAYTYPE_P(1);
	set = SyncIdSetFromArray(arr);
	hidden.indexes = NIL;
	WqScopeCheckInit(&hidden.check, GetOuterUserId(), WorkqueueIsAdmin(NULL), cxt);
	hidden.scope_att = get_attnum(get_relname_relid("item", get_namespace_oid("workqueue", false)), "scope");
	if (set->pending > 0 && ItemsDistributed())
		FindItemsSql(set, queue, arr, hidden.check.admin ? NULL : &hidden.check);
	else
		SyncFindItems(set, queue, GetActiveSnapshot(),
					  hidden.check.admin ? NULL : NoteHidden, &hidden);
	foreach(lc, hidden.indexes)
	{
		BIT_SET(set->missing, lfirst_int(lc));
		set->pending++;
	}

	/* the ids still marked, in input order */
	nelems = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	nulls = ARR_NULLBITMAP(arr);
	p = set->arrdata;
	for (int i = 0; i < nelems && set->pending > 0; i++)
	{
		uint32		index;

		if (nulls != NULL && !(nulls[i >> 3] & (1 << (i & 7))))
			continue;
		CHECK_FOR_INTERRUPTS();
		index = (uint32) ((p - set->arrdata) >> 2);
		if (BIT_TEST(set->missing, index))
		{
			Datum		value = PointerGetDatum(p);

			tuplestore_putvalues(store, tupdesc, &value, &isnull);
			set->pending--;
		}
		p = att_addlength_pointer(p, -1, p);
		p = (char *) att_align_nominal(p, TYPALIGN_INT);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
