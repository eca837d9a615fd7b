/*
 * calendar_walk.c
 *		Business-time arithmetic: walking a calendar's working intervals.
 *
 * Working time is the union, in real time, of the calendar's interval
 * instances: weekly interval k on local day D (unless D is a holiday) is
 * [utc(D + start_k), utc(D + end_k)), where utc() reads a local time as
 * timestamptz input does (calendar_zone.c).  Across a DST change an
 * instance keeps its wall-clock ends, so it is shorter or longer in real
 * time; an end inside a spring-forward gap can even make instances overlap
 * or come out of order, which is why this is a union and why the walker
 * below sorts what it generates before handing it out.
 *
 * A CalWalk generates the instances day by day, forwards or backwards from
 * an instant, keeps them in a small buffer ordered by start (forwards) or
 * end (backwards), and hands out the disjoint pieces of the union in order.
 * A piece is only handed out once no day still to be generated can produce
 * an instance before it.  When nothing is pending, whole weeks that hold no
 * holiday and no UTC-offset change are skipped in one step: such a week
 * holds exactly the calendar's nominal weekly working time.  So the cost of
 * a call grows with the holidays and DST changes crossed, not with the span.
 *
 * Everything here is pure computation; errors are the only side effect.
 */
#include "postgres.h"

#include "common/int.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "sla/calendar.h"

/* local days (PG epoch) whose intervals stay inside the timestamptz range */
#define CAL_MIN_DAY ((int32) (MIN_TIMESTAMP / USECS_PER_DAY) + 3)
#define CAL_MAX_DAY ((int32) (END_TIMESTAMP / USECS_PER_DAY) - 3)

typedef struct CalPiece
{
	TimestampTz u;				/* real start */
	TimestampTz v;				/* real end */
	int32		day;			/* local day the instance belongs to */
} CalPiece;

typedef struct CalWalk
{
	const Calendar *cal;
	CalZone    *z;
	int			dir;			/* +1 forwards, -1 backwards */
	int32		next_day;		/* next local day to generate */
	TimestampTz edge;			/* forwards: latest end handed out (or the
								 * start instant); backwards: earliest start */
	bool		bounded;		/* stop at limit instead of erroring when idle */
	TimestampTz limit;
	int			idle;			/* days generated since working time was found */
	int32		idle_from;
	int32		bound_day;		/* next_day for which bound was computed */
	TimestampTz bound;			/* see Bound() */
	int64		safe_lo;		/* local times in [safe_lo, safe_hi) are at */
	int64		safe_hi;		/* UTC local - off (the last period used) */
	int64		off;
	int			head;
	int			tail;
	int			cap;
	CalPiece   *buf;
	CalPiece	inline_buf[32];
} CalWalk;

static inline int32
DayOf(int64 local)
{
	return (int32) (local >= 0 ? local / USECS_PER_DAY : -((-local + USECS_PER_DAY - 1) / USECS_PER_DAY));
}

/* Monday = 0; day 0 of the PostgreSQL epoch, 2000-01-01, was a Saturday */
static inline int
Weekday(int32 day)
{
	return ((day % 7) + 12) % 7;
}

static void
OutOfRange(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("timestamp out of range")));
}

static char *
DayText(int32 day)
{
	return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(day)));
}

static void
NoWorkingTime(const Calendar *cal)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("calendar \"%s\" has no working time", cal->name),
			 errdetail("Version %d of the calendar has no working intervals on any day of the week.",
					   cal->version),
			 errhint("Create a new version with workqueue.create_calendar() that has working hours.")));
}

static void
NoWorkingTimeFor(const Calendar *cal, int32 from, int32 to)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("calendar \"%s\" has no working time from %s to %s",
					cal->name, DayText(Min(from, to)), DayText(Max(from, to))),
			 errdetail("Every day of these %d years is a holiday or has no working intervals (version %d).",
					   CAL_MAX_IDLE_DAYS / 365, cal->version),
			 errhint("Check the holidays of the calendar.")));
}

/* Index of the first holiday >= day, or nholidays. */
static int
HolidayFrom(const Calendar *cal, int32 day)
{
	int			lo = 0,
				hi = cal->nholidays;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (cal->holidays[mid] < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static inline bool
IsHoliday(const Calendar *cal, int32 day)
{
	int			i;

	if (cal->nholidays == 0)
		return false;
	i = HolidayFrom(cal, day);
	return i < cal->nholidays && cal->holidays[i] == day;
}

static inline bool
IsWorkingDay(const Calendar *cal, int32 day)
{
	return cal->nspans[Weekday(day)] > 0 && !IsHoliday(cal, day);
}

/* Real start and end of an instance. */
static inline void
Instance(const Calendar *cal, int32 day, const CalSpan *s, TimestampTz *u, TimestampTz *v)
{
	int64		midnight = (int64) day * USECS_PER_DAY;

	*u = CalZoneToUtc(cal->zone, midnight + s->start);
	*v = CalZoneToUtc(cal->zone, midnight + s->end);
}

/*
 * The period in which local time L exists unambiguously (-1 if none), like
 * CalZoneSafePeriod, remembering it in the walker for ToUtc().
 */
static int
WalkPeriod(CalWalk *w, int64 local, int64 horizon)
{
	int			i = CalZoneSafePeriod(w->z, local, horizon);

	if (i >= 0)
	{
		w->safe_lo = w->z->p[i].safe_lo;
		w->safe_hi = w->z->p[i].safe_hi;
		w->off = w->z->p[i].off;
	}
	return i;
}

/* CalZoneToUtc, without a table search while the walk stays in one period */
static inline TimestampTz
ToUtc(CalWalk *w, int64 local)
{
	if (local >= w->safe_lo && local < w->safe_hi)
		return local - w->off;
	if (WalkPeriod(w, local, 0) >= 0)
		return local - w->off;
	return CalZoneToUtc(w->z, local);
}

/*
 * Earliest real start (*u) and latest real end (*v) of the instances of a
 * working day; raises if it is none (a holiday or a weekday without
 * intervals).
 */
static void
DayRange(const Calendar *cal, int32 day, TimestampTz *u, TimestampTz *v)
{
	int			dow = Weekday(day);

	if (day < CAL_MIN_DAY || day > CAL_MAX_DAY)
		OutOfRange();
	if (cal->nspans[dow] == 0 || IsHoliday(cal, day))
		elog(ERROR, "day %d of calendar \"%s\" is not a working day", day, cal->name);
	*u = PG_INT64_MAX;
	*v = PG_INT64_MIN;
	for (int k = 0; k < cal->nspans[dow]; k++)
	{
		TimestampTz a,
					b;

		Instance(cal, day, &cal->spans[dow][k], &a, &b);
		*u = Min(*u, a);
		*v = Max(*v, b);
	}
}

/* Adds a piece to the buffer, keeping it ordered. */
static void
Push(CalWalk *w, TimestampTz u, TimestampTz v, int32 day)
{
	int			i;

	if (w->tail == w->cap)
	{
		if (w->head > 0)
		{
			memmove(w->buf, w->buf + w->head, (w->tail - w->head) * sizeof(CalPiece));
			w->tail -= w->head;
			w->head = 0;
		}
		else
		{
			CalPiece   *buf = palloc(2 * w->cap * sizeof(CalPiece));

			memcpy(buf, w->buf, w->tail * sizeof(CalPiece));
			if (w->buf != w->inline_buf)
				pfree(w->buf);
			w->buf = buf;
			w->cap *= 2;
		}
	}
	/* instances come almost always in order: insertion from the back */
	for (i = w->tail; i > w->head; i--)
	{
		CalPiece   *prev = &w->buf[i - 1];

		if (w->dir > 0 ? prev->u <= u : prev->v >= v)
			break;
		w->buf[i] = *prev;
	}
	w->buf[i].u = u;
	w->buf[i].v = v;
	w->buf[i].day = day;
	w->tail++;
}

static void
GenerateDay(CalWalk *w, int32 day)
{
	const Calendar *cal = w->cal;
	int			dow = Weekday(day);
	int64		midnight = (int64) day * USECS_PER_DAY;

	if (day < CAL_MIN_DAY || day > CAL_MAX_DAY)
		OutOfRange();
	if (cal->nspans[dow] == 0 || IsHoliday(cal, day))
		return;
	for (int k = 0; k < cal->nspans[dow]; k++)
	{
		TimestampTz u = ToUtc(w, midnight + cal->spans[dow][k].start);
		TimestampTz v = ToUtc(w, midnight + cal->spans[dow][k].end);

		if (v > u)
			Push(w, u, v, day);
	}
}

/*
 * Forwards: no instance of a day >= next_day starts before the bound.
 * Backwards: no instance of a day <= next_day ends after it.
 */
static TimestampTz
Bound(CalWalk *w)
{
	const Calendar *cal = w->cal;
	CalZone    *z = w->z;
	int32		d = w->next_day;
	int			i;

	if (w->bound_day == d)
		return w->bound;
	w->bound_day = d;
	if (w->dir > 0)
	{
		int64		x = (int64) d * USECS_PER_DAY;

		/*
		 * Local times after x are at UTC x - off or later, also across the
		 * next transition (a gap is read with the earlier offset).
		 */
		if (x >= w->safe_lo && x < w->safe_hi)
			w->bound = x - w->off;
		else
			w->bound = x - (WalkPeriod(w, x, 0) >= 0 ? w->off : z->off_max);
	}
	else
	{
		/* the latest local end of an instance of day d or before */
		int64		y = (int64) d * USECS_PER_DAY;

		y = Max(y, y + cal->day_end[Weekday(d)]);
		y = Max(y, (int64) (d - 1) * USECS_PER_DAY + cal->day_end[Weekday(d - 1)]);

		/*
		 * Local times before y are at UTC y - off or earlier, unless y is
		 * within a gap's width after a spring-forward change: times in the
		 * gap are read with the earlier offset, i.e. later.
		 */
		i = CalZoneSafePeriod(z, y, 0);
		if (i >= 0 && (z->p[i].safe_lo == PG_INT64_MIN || y - z->p[i].safe_lo >= z->max_gap))
			w->bound = y - z->p[i].off;
		else
			w->bound = y - z->off_min;
	}
	return w->bound;
}

static void
WalkInit(CalWalk *w, const Calendar *cal, TimestampTz t, int dir)
{
	int64		off;
	int32		day;

	w->cal = cal;
	w->z = cal->zone;
	w->dir = dir;
	off = CalZoneOffsetAt(w->z, t);
	day = DayOf(t + off);
	if (dir > 0)
	{
		/*
		 * Instances of earlier days may still cover t: an overnight
		 * interval, or one whose end a DST change reads later (an end in a
		 * spring-forward gap, or in a fall-back hour, which is read as its
		 * second occurrence).  Those of day X end before local midnight X +
		 * max_day_end + max_shift; start with the first day for which that
		 * can be after t's local midnight.
		 */
		w->next_day = day + 1 -
			(int32) ((cal->max_day_end + w->z->max_shift + USECS_PER_DAY - 1) / USECS_PER_DAY);
	}
	else
		w->next_day = day + 1;
	w->edge = t;
	w->bounded = false;
	w->limit = 0;
	w->idle = 0;
	w->idle_from = w->next_day;
	w->bound_day = PG_INT32_MIN;
	w->safe_lo = w->safe_hi = w->off = 0;
	w->head = w->tail = 0;
	w->cap = lengthof(w->inline_buf);
	w->buf = w->inline_buf;
}

/*
 * Starts a walk from t, forwards for a positive amount (of working time or
 * of working days), backwards for a negative one.  Returns false when there
 * is nothing to walk, t being infinite or amount 0: the result is t.
 * Raises if the calendar has no working time at all.
 */
static bool
WalkFrom(CalWalk *w, const Calendar *cal, TimestampTz t, int64 amount)
{
	if (TIMESTAMP_NOT_FINITE(t) || amount == 0)
		return false;
	if (cal->week_usecs == 0)
		NoWorkingTime(cal);
	WalkInit(w, cal, t, amount > 0 ? 1 : -1);
	return true;
}

/*
 * Hands out the next piece of working time: forwards, [u, v) after the
 * previous piece (and after the start instant); backwards, before.  A
 * bounded forward walk returns false once nothing can start before its
 * limit; an unbounded one raises an error after CAL_MAX_IDLE_DAYS days
 * without working time.
 */
static bool
WalkNext(CalWalk *w, CalPiece *out)
{
	for (;;)
	{
		if (w->head < w->tail)
		{
			CalPiece   *p = &w->buf[w->head];

			if (w->dir > 0 ? p->u <= Bound(w) : p->v >= Bound(w))
			{
				w->head++;
				if (w->dir > 0 && p->v > Max(p->u, w->edge))
				{
					out->u = Max(p->u, w->edge);
					out->v = p->v;
					out->day = p->day;
					w->edge = p->v;
					w->idle = 0;
					return true;
				}
				if (w->dir < 0 && Min(p->v, w->edge) > p->u)
				{
					out->u = p->u;
					out->v = Min(p->v, w->edge);
					out->day = p->day;
					w->edge = p->u;
					w->idle = 0;
					return true;
				}
				continue;
			}
		}
		if (w->bounded && w->dir > 0 && Bound(w) >= w->limit &&
			(w->head == w->tail || w->buf[w->head].u >= w->limit))
			return false;
		if (w->idle++ == 0)
			w->idle_from = w->next_day;
		else if (!w->bounded && w->idle > CAL_MAX_IDLE_DAYS)
			NoWorkingTimeFor(w->cal, w->idle_from, w->next_day);
		CHECK_FOR_INTERRUPTS();
		GenerateDay(w, w->next_day);
		w->next_day += w->dir;
	}
}

/*
 * With nothing pending, skips whole weeks that lie in one stretch of
 * constant UTC offset and hold no holiday: each holds exactly the nominal
 * weekly working time.  Skips fewer weeks than budget allows (the walk ends
 * in the last week) and, for a bounded walk, only weeks that end before the
 * limit.  Returns the working time skipped.
 */
static int64
WalkSkip(CalWalk *w, int64 budget)
{
	const Calendar *cal = w->cal;
	CalZone    *z = w->z;
	int64		week = cal->week_usecs;
	int32		d = w->next_day;
	int64		k;
	int			i;
	int			h;
	int64		off;

	if (w->head != w->tail || week == 0 || budget <= week)
		return 0;
	k = (budget - 1) / week;

	if (w->dir > 0)
	{
		int64		x = (int64) d * USECS_PER_DAY;
		int			dow = Weekday(d);

		/* cheap refusal first: still inside the first, partial week */
		if (x >= w->safe_lo && x < w->safe_hi && w->edge > x + cal->first_start[dow] - w->off)
			return 0;
		k = Min(k, (CAL_MAX_DAY - d) / 7 - 1);
		/* the weeks' local times, up to the overnight end, in one period */
		i = WalkPeriod(w, x, 400 * USECS_PER_DAY);
		if (i < 0)
			return 0;
		off = z->p[i].off;
		if (z->p[i].safe_hi != PG_INT64_MAX)
			k = Min(k, (z->p[i].safe_hi - 1 - x - USECS_PER_DAY) / CAL_WEEK_USECS);
		h = HolidayFrom(cal, d);
		if (h < cal->nholidays)
			k = Min(k, (cal->holidays[h] - d) / 7);
		if (w->bounded)
		{
			int64		room = w->limit + off - x - cal->last_end[dow];

			if (room < 0)
				return 0;
			k = Min(k, room / CAL_WEEK_USECS + 1);
		}
		if (k < 1 || w->edge > x + cal->first_start[dow] - off)
			return 0;
		w->edge = x + (k - 1) * CAL_WEEK_USECS + cal->last_end[dow] - off;
		w->next_day = d + (int32) (7 * k);
	}
	else
	{
		/* days d - 7k + 1 .. d, whose instances end before local y */
		int64		y = (int64) (d + 2) * USECS_PER_DAY;
		int64		first_midnight;

		k = Min(k, (d - CAL_MIN_DAY) / 7 - 1);
		i = CalZoneSafePeriod(z, y - 1, 0);
		if (i < 0)
			return 0;
		off = z->p[i].off;
		/* clear of the gap before the period, whose times are read later */
		if (z->p[i].safe_lo != PG_INT64_MIN)
			k = Min(k, ((int64) (d + 1) * USECS_PER_DAY - z->p[i].safe_lo - z->max_gap) / CAL_WEEK_USECS);
		h = HolidayFrom(cal, d + 1) - 1;
		if (h >= 0)
			k = Min(k, (d - cal->holidays[h]) / 7);
		if (k < 1 ||
			w->edge < (int64) (d - 6) * USECS_PER_DAY + cal->last_end[Weekday(d - 6)] - off)
			return 0;
		first_midnight = (int64) (d + 1) * USECS_PER_DAY - k * CAL_WEEK_USECS;
		w->edge = first_midnight + cal->first_start[Weekday(d + 1)] - off;
		w->next_day = d - (int32) (7 * k);
	}
	w->idle = 0;
	return k * week;
}

/*
 * The instant when amount (usec, either sign) of working time has elapsed
 * from t.  Positive: the earliest r with working time in [t, r) = amount;
 * negative: the latest r with working time in [r, t) = -amount.
 */
TimestampTz
CalendarAdd(const Calendar *cal, TimestampTz t, int64 amount)
{
	CalWalk		w;
	CalPiece	p;
	int64		rem;
	TimestampTz result;

	if (!WalkFrom(&w, cal, t, amount))
		return t;
	rem = amount > 0 ? amount : (amount == PG_INT64_MIN ? PG_INT64_MAX : -amount);
	for (;;)
	{
		int64		len;

		if (w.head == w.tail)
			rem -= WalkSkip(&w, rem);
		(void) WalkNext(&w, &p);
		len = p.v - p.u;
		if (rem <= len)
		{
			result = amount > 0 ? p.u + rem : p.v - rem;
			break;
		}
		rem -= len;
	}
	if (!IS_VALID_TIMESTAMP(result))
		OutOfRange();
	return result;
}

/* Working time in [a, b), negative if b < a. */
int64
CalendarBetween(const Calendar *cal, TimestampTz a, TimestampTz b)
{
	CalWalk		w;
	CalPiece	p;
	int64		sum = 0;

	if (TIMESTAMP_NOT_FINITE(a) || TIMESTAMP_NOT_FINITE(b))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("cannot compute working time to or from an infinite timestamp"),
				 errhint("Working time between infinite timestamps is not finite (or is not defined); pass finite timestamps.")));
	if (a == b || cal->week_usecs == 0)
		return 0;
	if (a > b)
		return -CalendarBetween(cal, b, a);
	WalkInit(&w, cal, a, 1);
	w.bounded = true;
	w.limit = b;
	for (;;)
	{
		if (w.head == w.tail && pg_add_s64_overflow(sum, WalkSkip(&w, PG_INT64_MAX), &sum))
			goto overflow;
		if (!WalkNext(&w, &p) || p.u >= b)
			break;
		if (pg_add_s64_overflow(sum, Min(p.v, b) - p.u, &sum))
			goto overflow;
	}
	return sum;

overflow:
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("interval out of range")));
	return 0;					/* keep compiler quiet */
}

/* The n-th working day after (n > 0) or before (n < 0) day. */
static int32
NthWorkingDay(const Calendar *cal, int32 day, int64 n)
{
	int			dir = n > 0 ? 1 : -1;
	int64		rem = n > 0 ? n : -n;
	int			idle = 0;
	int32		idle_from = day;

	while (rem > 0)
	{
		CHECK_FOR_INTERRUPTS();
		/* a week without holidays holds exactly cal->workdays working days */
		if (rem > cal->workdays)
		{
			int64		k = (rem - 1) / cal->workdays;
			int			h;

			if (dir > 0)
			{
				k = Min(k, (CAL_MAX_DAY - day) / 7 - 1);
				h = HolidayFrom(cal, day + 1);
				if (h < cal->nholidays)
					k = Min(k, (cal->holidays[h] - day - 1) / 7);
			}
			else
			{
				k = Min(k, (day - CAL_MIN_DAY) / 7 - 1);
				h = HolidayFrom(cal, day) - 1;
				if (h >= 0)
					k = Min(k, (day - 1 - cal->holidays[h]) / 7);
			}
			if (k > 0)
			{
				day += dir * (int32) (7 * k);
				rem -= k * cal->workdays;
				idle = 0;
				continue;
			}
		}
		day += dir;
		if (day < CAL_MIN_DAY || day > CAL_MAX_DAY)
			OutOfRange();
		if (IsWorkingDay(cal, day))
		{
			rem--;
			idle = 0;
		}
		else if (idle++ == 0)
			idle_from = day;
		else if (idle > CAL_MAX_IDLE_DAYS)
			NoWorkingTimeFor(cal, idle_from, day);
	}
	return day;
}

/*
 * The instant at which w of a working day's working time has elapsed, or
 * the end of its working time if it has less.
 */
static TimestampTz
DayPosition(const Calendar *cal, int32 day, int64 w)
{
	TimestampTz u,
				v;
	int64		len;

	DayRange(cal, day, &u, &v);
	len = v > u ? CalendarBetween(cal, u, v) : 0;
	return CalendarAdd(cal, u, Min(w, len));
}

/*
 * Adds whole working days.  The instant t is first moved to working time
 * (forwards for days > 0, backwards for days < 0) and read as a position
 * within its working day D: w = working time of D before it.  The result is
 * the same position in the working day |days| working days after (before)
 * D: the earliest instant at which w of that day's working time has elapsed,
 * or its end if the day is shorter.  Position 0 (t at or before the start
 * of D) is the end of the previous working day, so that Friday evening plus
 * one working day is the end of Monday.
 */
TimestampTz
CalendarAddDays(const Calendar *cal, TimestampTz t, int32 days)
{
	CalWalk		w;
	CalPiece	p;
	TimestampTz u,
				v;
	int64		pos;
	int32		target;

	if (!WalkFrom(&w, cal, t, days))
		return t;
	(void) WalkNext(&w, &p);
	DayRange(cal, p.day, &u, &v);
	pos = CalendarBetween(cal, u, days > 0 ? p.u : p.v);
	if (days > 0 && pos == 0)
	{
		/* the end of the working day before the target */
		target = days == 1 ? p.day : NthWorkingDay(cal, p.day, (int64) days - 1);
		pos = PG_INT64_MAX;
	}
	else
		target = NthWorkingDay(cal, p.day, days);
	return DayPosition(cal, target, pos);
}
