/*
 * calendar_zone.c
 *		Per-backend tables of a time zone's UTC offsets.
 *
 * Business-time arithmetic converts many local wall-clock times to UTC.
 * PostgreSQL's DetermineTimeZoneOffset() is exact but searches the zone's
 * transitions on every call, so each zone gets a table of the stretches
 * ("periods") of constant UTC offset, built with pg_next_dst_boundary() and
 * extended lazily as far into the future as calls reach.  For each period
 * the table also holds the local times that exist and are unambiguous in
 * it; such a local time L is at UTC L - offset, the only reading there is.
 * Any other local time (a spring-forward gap, a fall-back overlap) is passed
 * to DetermineTimeZoneOffset() itself, so every conversion is exactly the
 * one timestamptz input performs.
 *
 * The safe local ranges are disjoint and increase with the period, which
 * the binary search over them relies on.  Tables live in their own memory
 * context under CacheMemoryContext for the life of the backend; pg_tz
 * pointers are stable for that long too.  A table holds at most
 * ZONE_MAX_PERIODS periods (thousands of years of DST): walking further
 * drops the older half, and a later question about a dropped time rebuilds
 * the table from the start, so memory stays bounded whatever the span.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sla/calendar.h"

/* seconds between the Unix and the PostgreSQL epochs */
#define UNIX_PG_DIFF ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)
/* scan the transitions from a little before the earliest timestamptz ... */
#define SCAN_FIRST (MIN_TIMESTAMP / USECS_PER_SEC + UNIX_PG_DIFF - 2 * SECS_PER_DAY)
/* ... to a little after the last one */
#define SCAN_LAST (END_TIMESTAMP / USECS_PER_SEC + UNIX_PG_DIFF + 2 * SECS_PER_DAY)

#define ZONE_MAX_PERIODS 16384

static MemoryContext zone_cxt = NULL;
static CalZone **zones = NULL;
static int	nzones = 0;
static int	zones_cap = 0;

static inline int64
UnixToPg(pg_time_t t)
{
	return (t - UNIX_PG_DIFF) * USECS_PER_SEC;
}

/* The local times unambiguous in p[n-1] end no earlier than this. */
static void
SetLastSafeHi(CalZone *z)
{
	CalZonePeriod *last = &z->p[z->n - 1];

	/* the next boundary is after scan, and offsets are less than a day */
	last->safe_hi = z->complete ? PG_INT64_MAX : UnixToPg(z->scan) - USECS_PER_DAY;
}

static void
AppendPeriod(CalZone *z, int64 start, int64 off)
{
	CalZonePeriod *prev = &z->p[z->n - 1];
	CalZonePeriod *p;

	/* the previous period's safe range is now known; keep it ordered */
	prev->safe_hi = start + Min(prev->off, off);
	if (prev->safe_hi < prev->safe_lo)
		prev->safe_lo = prev->safe_hi;
	if (z->n == ZONE_MAX_PERIODS)
	{
		int			keep = ZONE_MAX_PERIODS / 2;

		memmove(z->p, z->p + z->n - keep, keep * sizeof(CalZonePeriod));
		z->n = keep;
		z->windowed = true;
		z->hint = 0;
	}
	if (z->n == z->cap)
	{
		z->cap *= 2;
		z->p = repalloc(z->p, z->cap * sizeof(CalZonePeriod));
	}
	p = &z->p[z->n++];
	p->start = start;
	p->off = off;
	p->safe_lo = start + Max(z->p[z->n - 2].off, off);
	z->off_min = Min(z->off_min, off);
	z->off_max = Max(z->off_max, off);
	z->max_gap = Max(z->max_gap, off - z->p[z->n - 2].off);
	z->max_shift = Max(z->max_shift, Abs(off - z->p[z->n - 2].off));
}

/*
 * Finds the next transition after z->scan and records it.
 *
 * pg_next_dst_boundary() is asked about the second after the last boundary
 * found, never about a boundary itself: asked about the very last entry of
 * a zone's transition table it looks one entry past the table.
 */
static void
Step(CalZone *z)
{
	long int	before,
				after;
	int			before_isdst,
				after_isdst;
	pg_time_t	t = z->scan + 1;
	pg_time_t	boundary = 0;
	int			res;

	res = pg_next_dst_boundary(&t, &before, &before_isdst, &boundary, &after, &after_isdst, z->tz);
	if (res != 1 || boundary > SCAN_LAST)
		z->complete = true;
	else
	{
		if (boundary < t || after <= -SECS_PER_DAY || after >= SECS_PER_DAY)
			elog(ERROR, "unexpected transition of time zone \"%s\" at %lld",
				 pg_get_timezone_name(z->tz), (long long) boundary);
		z->scan = boundary;
		if ((int64) after * USECS_PER_SEC != z->p[z->n - 1].off)
			AppendPeriod(z, UnixToPg(boundary), (int64) after * USECS_PER_SEC);
	}
	SetLastSafeHi(z);
}

/* Starts the table afresh: one period, before the first transition. */
static void
Reset(CalZone *z)
{
	z->n = 1;
	z->p[0].start = PG_INT64_MIN;
	z->p[0].off = z->first_off;
	z->p[0].safe_lo = PG_INT64_MIN;
	z->windowed = false;
	z->complete = false;
	z->scan = SCAN_FIRST;
	z->hint = 0;
	SetLastSafeHi(z);
}

/*
 * Makes sure every offset change up to UTC instant t is in the table, and
 * that the table reaches back to UTC instant from.
 */
static inline void
Extend(CalZone *z, int64 from, int64 t)
{
	if (z->windowed && from < z->p[0].start + USECS_PER_DAY)
		Reset(z);
	while (!z->complete && t >= UnixToPg(z->scan))
	{
		CHECK_FOR_INTERRUPTS();
		Step(z);
	}
}

/*
 * Returns the offset table of a zone, creating it on first use in this
 * backend.
 */
CalZone *
CalZoneGet(pg_tz *tz)
{
	CalZone    *z;
	MemoryContext old;
	long int	before,
				after;
	int			before_isdst,
				after_isdst;
	pg_time_t	t = SCAN_FIRST;
	pg_time_t	boundary;

	for (int i = 0; i < nzones; i++)
		if (zones[i]->tz == tz)
			return zones[i];

	if (zone_cxt == NULL)
		zone_cxt = AllocSetContextCreate(CacheMemoryContext, "workqueue calendar zones",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(zone_cxt);
	z = palloc0(sizeof(CalZone));
	z->tz = tz;
	z->cap = 64;
	z->p = palloc(z->cap * sizeof(CalZonePeriod));
	(void) pg_next_dst_boundary(&t, &before, &before_isdst, &boundary, &after, &after_isdst, tz);
	z->first_off = (int64) before * USECS_PER_SEC;
	z->off_min = z->off_max = z->first_off;
	Reset(z);

	if (zones == NULL)
	{
		zones_cap = 8;
		zones = palloc(zones_cap * sizeof(CalZone *));
	}
	else if (nzones == zones_cap)
	{
		zones_cap *= 2;
		zones = repalloc(zones, zones_cap * sizeof(CalZone *));
	}
	zones[nzones++] = z;
	MemoryContextSwitchTo(old);
	return z;
}

/*
 * The largest absolute UTC offset, in seconds, that a zone ever uses.  The
 * tables above assume that it is less than a day, as in every zone of the
 * tz database; a POSIX zone string such as "<+99>-99" can say up to 167
 * hours.  A fixed zone has one offset; otherwise the first
 * ZONE_CHECK_BOUNDARIES transitions are walked: more than any zone's table
 * holds before its rule repeats yearly, and both offsets of a POSIX rule
 * occur in its first year.
 */
#define ZONE_CHECK_BOUNDARIES 1000

long int
CalZoneLargestOffset(pg_tz *tz)
{
	long int	gmtoff;
	long int	before,
				after;
	int			before_isdst,
				after_isdst;
	pg_time_t	t = SCAN_FIRST;
	pg_time_t	boundary = 0;
	long int	largest;

	if (pg_get_timezone_offset(tz, &gmtoff))
		return labs(gmtoff);
	if (pg_next_dst_boundary(&t, &before, &before_isdst, &boundary, &after, &after_isdst, tz) != 1)
		return labs(before);
	largest = Max(labs(before), labs(after));
	for (int i = 1; i < ZONE_CHECK_BOUNDARIES && boundary <= SCAN_LAST; i++)
	{
		t = boundary + 1;		/* never a boundary itself: see Step() */
		if (pg_next_dst_boundary(&t, &before, &before_isdst, &boundary, &after, &after_isdst, tz) != 1)
			break;
		largest = Max(largest, labs(after));
	}
	return largest;
}

/*
 * The last period whose start (by_start) or safe_lo (else) is at or before
 * x, or 0 if none is: a binary search, since both increase with the period.
 */
static inline int
LastPeriodFrom(const CalZone *z, bool by_start, int64 x)
{
	int			lo = 0,
				hi = z->n - 1;

	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if ((by_start ? z->p[mid].start : z->p[mid].safe_lo) <= x)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* The period that contains UTC instant t; the table must reach past t. */
static inline int
FindUtc(CalZone *z, int64 t)
{
	int			h = z->hint;

	if (z->p[h].start <= t && (h + 1 == z->n || t < z->p[h + 1].start))
		return h;
	z->hint = LastPeriodFrom(z, true, t);
	return z->hint;
}

/* The UTC offset (usec, east positive) in force at instant t. */
int64
CalZoneOffsetAt(CalZone *z, TimestampTz t)
{
	Extend(z, t, t + 2 * USECS_PER_DAY);
	return z->p[FindUtc(z, t)].off;
}

/*
 * The period in which local time L exists unambiguously, or -1 if it is in
 * a gap or an overlap.  The table is first extended to horizon past L, so
 * that the caller may look at following periods too.
 */
int
CalZoneSafePeriod(CalZone *z, int64 local, int64 horizon)
{
	int			i;

	/* local times are within a day of their UTC instants */
	Extend(z, local - USECS_PER_DAY, local + horizon + USECS_PER_DAY);
	i = z->hint;
	if (z->p[i].safe_lo <= local && local < z->p[i].safe_hi)
		return i;
	i = LastPeriodFrom(z, false, local);
	if (local < z->p[i].safe_hi && z->p[i].safe_lo <= local)
	{
		z->hint = i;
		return i;
	}
	return -1;
}

/*
 * Converts a local wall-clock time of the zone to UTC the way timestamptz
 * input does: a time in a spring-forward gap is read with the offset before
 * the change, an ambiguous one with the offset after it.
 */
TimestampTz
CalZoneToUtc(CalZone *z, int64 local)
{
	int			i = CalZoneSafePeriod(z, local, 0);
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzwest;

	if (i >= 0)
		return local - z->p[i].off;
	if (timestamp2tm(local, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tzwest = DetermineTimeZoneOffset(&tm, z->tz);
	return local + (int64) tzwest * USECS_PER_SEC;
}
