/*
 * calendar.h
 *		Business-hours calendars: compiled form and arithmetic.
 *
 * A calendar version (time zone, weekly hours, holidays) is validated and
 * compiled once into a Calendar (calendar.c).  Working time is the union of
 * the calendar's working intervals in real time: each weekly interval is
 * local wall-clock time of the calendar's zone, belongs to the local day it
 * starts on (a holiday removes the intervals that start on it) and its ends
 * are converted to UTC exactly as PostgreSQL reads a local timestamptz.
 * calendar_zone.c keeps a per-backend table of each zone's UTC offsets so
 * that conversions are cheap, and calendar_walk.c walks the intervals, whole
 * weeks at a time where nothing changes.  None of these files uses SPI;
 * calendar_cache.c loads and caches versions, calendar_sql.c is the SQL
 * interface.
 */
#ifndef WORKQUEUE_CALENDAR_H
#define WORKQUEUE_CALENDAR_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/date.h"
#include "utils/jsonb.h"

#define CAL_WEEKDAYS 7
#define CAL_WEEK_USECS (INT64CONST(7) * USECS_PER_DAY)

/* no working time within this many days: an error rather than a long walk */
#define CAL_MAX_IDLE_DAYS 3653

/* one weekly interval, in microseconds from the local midnight of its day */
typedef struct CalSpan
{
	int64		start;			/* 0 <= start < USECS_PER_DAY */
	int64		end;			/* start < end <= start + USECS_PER_DAY */
} CalSpan;

/* one stretch of constant UTC offset of a zone (calendar_zone.c) */
typedef struct CalZonePeriod
{
	int64		start;			/* UTC instant it begins (PG epoch, usec) */
	int64		off;			/* local = UTC + off (usec) */
	int64		safe_lo;		/* local times in [safe_lo, safe_hi) are */
	int64		safe_hi;		/* unambiguous and exist, in this period */
} CalZonePeriod;

typedef struct CalZone
{
	pg_tz	   *tz;
	int			n;				/* periods in the table */
	int			cap;
	CalZonePeriod *p;			/* sorted by start; p[0].start = -inf */
	bool		windowed;		/* ... unless earlier periods were dropped */
	int64		first_off;		/* the offset before the first transition */
	bool		complete;		/* no boundary after p[n - 1] */
	pg_time_t	scan;			/* no offset change in (p[n-1].start, scan] */
	int			hint;			/* last period found */
	int64		off_min;		/* extreme offsets seen so far */
	int64		off_max;
	int64		max_gap;		/* largest spring-forward jump seen so far */
	int64		max_shift;		/* largest offset change either way */
} CalZone;

typedef struct Calendar
{
	char	   *name;
	int32		version;
	char	   *tzname;			/* canonical spelling of the zone */
	CalZone    *zone;
	int			nspans[CAL_WEEKDAYS];	/* Monday = 0 */
	CalSpan    *spans[CAL_WEEKDAYS];	/* sorted by start */
	int			nholidays;
	DateADT    *holidays;		/* sorted, distinct */
	int64		week_usecs;		/* nominal working time of any 7 days */
	int			workdays;		/* weekdays with at least one interval */
	/* for the 7 days starting on weekday d, relative to that day's midnight */
	int64		first_start[CAL_WEEKDAYS];	/* earliest interval start */
	int64		last_end[CAL_WEEKDAYS]; /* latest interval end */
	/* latest end of the intervals of weekday d, from its midnight (or 0) */
	int64		day_end[CAL_WEEKDAYS];
	int64		max_day_end;	/* the largest of these */
} Calendar;

/* calendar.c: validation and compilation, no catalog access */
extern pg_tz *CalendarParseZone(const char *tzname);
extern Calendar *CalendarCompile(const char *name, int32 version, const char *tzname,
								 Jsonb *hours, ArrayType *holidays);

/* calendar_zone.c */
extern long int CalZoneLargestOffset(pg_tz *tz);
extern CalZone *CalZoneGet(pg_tz *tz);
extern int64 CalZoneOffsetAt(CalZone *z, TimestampTz t);
extern TimestampTz CalZoneToUtc(CalZone *z, int64 local);
extern int	CalZoneSafePeriod(CalZone *z, int64 local, int64 horizon);

/* calendar_walk.c: the arithmetic (SPEC §6, doc/sla.md) */
extern TimestampTz CalendarAdd(const Calendar *cal, TimestampTz t, int64 amount);
extern int64 CalendarBetween(const Calendar *cal, TimestampTz a, TimestampTz b);
extern TimestampTz CalendarAddDays(const Calendar *cal, TimestampTz t, int32 days);

/* calendar_cache.c: version 0 means the current version; needs no SPI */
extern const Calendar *CalendarLookup(FunctionCallInfo fcinfo, text *name, int32 version);

#endif							/* WORKQUEUE_CALENDAR_H */
