/*
 * calendar.c
 *		Validation and compilation of calendar versions.
 *
 * CalendarCompile turns a time zone name, an hours object such as
 *
 *	{"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "sat": [["22:00", "06:00"]]}
 *
 * and a holiday list into a Calendar, or raises an error naming the
 * offending day or interval.  An interval whose end is at or before its
 * start runs past midnight into the next day; "24:00" is a valid end.
 * Intervals may touch but not overlap, also across midnight and from Sunday
 * night into Monday.  Everything is allocated in CurrentMemoryContext;
 * nothing here touches SPI or the catalogs.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"

#include "core/arrays.h"
#include "sla/calendar.h"
#include "core/jsonutil.h"

static const char *const day_keys[CAL_WEEKDAYS] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* an interval as written, for messages and the overlap check */
typedef struct SpanSource
{
	int			day;
	int64		start;			/* from Monday 00:00 of the week */
	int64		end;
	char	   *text;			/* ["22:00", "06:00"] */
} SpanSource;

/*
 * Most holidays a calendar version may list: a holiday every day for 27,000
 * years.  (A date[] of 1 GB holds 268 million; unpacking one that large
 * would ask for more than palloc gives.)
 */
#define CAL_MAX_HOLIDAYS 10000000

#define CAL_ERROR(...) \
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), __VA_ARGS__))

/* The JSON text of a value, for messages. */
static char *
JbText(JsonbValue *v)
{
	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	return JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
}

/*
 * Parses "HH:MM" or "HH:MM:SS" (one or two hour digits) into microseconds
 * from midnight; accepts 00:00 to 24:00.  Returns false if malformed.
 */
static bool
ParseClock(const char *s, int len, int64 *usecs)
{
	int			i = 0;
	int			h = 0,
				m,
				sec = 0;

	if (len < 4)
		return false;
	while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
		h = h * 10 + (s[i++] - '0');
	if (i == 0 || i >= len || s[i] != ':')
		return false;
	i++;
	if (i + 2 > len || s[i] < '0' || s[i] > '5' || s[i + 1] < '0' || s[i + 1] > '9')
		return false;
	m = (s[i] - '0') * 10 + (s[i + 1] - '0');
	i += 2;
	if (i < len)
	{
		if (s[i] != ':' || i + 3 != len || s[i + 1] < '0' || s[i + 1] > '5' ||
			s[i + 2] < '0' || s[i + 2] > '9')
			return false;
		sec = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	}
	if (h > 24 || (h == 24 && (m != 0 || sec != 0)))
		return false;
	*usecs = ((int64) h * SECS_PER_HOUR + m * SECS_PER_MINUTE + sec) * USECS_PER_SEC;
	return true;
}

/*
 * Looks up a time zone the way SET timezone does for a name; raises 22023
 * if PostgreSQL does not know it, or if its UTC offset ever reaches a day
 * (only a POSIX zone string can say so; calendar_zone.c relies on less).
 */
pg_tz *
CalendarParseZone(const char *tzname)
{
	pg_tz	   *tz = NULL;
	long int	largest;

	if (tzname[0] != '\0' && strlen(tzname) < TZ_STRLEN_MAX)
		tz = pg_tzset(tzname);
	if (tz == NULL || !pg_tz_acceptable(tz))
		CAL_ERROR(errmsg("time zone \"%s\" is not recognized", tzname),
				  errhint("Use a name from pg_timezone_names, such as \"Europe/London\"."));
	largest = CalZoneLargestOffset(tz);
	if (largest >= SECS_PER_DAY)
		CAL_ERROR(errmsg("time zone \"%s\" is not supported", tzname),
				  errdetail("Its UTC offset reaches %ld:%02ld hours; calendars support offsets of less than 24 hours.",
							largest / SECS_PER_HOUR, largest % SECS_PER_HOUR / SECS_PER_MINUTE),
				  errhint("Use a name from pg_timezone_names, such as \"Europe/London\"."));
	return tz;
}

/* Reads one ["HH:MM", "HH:MM"] element of day d; appends it to *out. */
static void
ReadSpan(int d, int ordinal, JsonbValue *elem, SpanSource *out)
{
	JsonbValue *ends[2];
	int64		clock[2];
	const char *day = day_keys[d];

	if (elem->type != jbvBinary || !JsonContainerIsArray(elem->val.binary.data) ||
		JsonContainerSize(elem->val.binary.data) != 2)
		CAL_ERROR(errmsg("interval %d of \"%s\" must be a pair of times", ordinal, day),
				  errdetail("Got %s.", JbText(elem)),
				  errhint("Write an interval as [\"09:00\", \"17:00\"]; an end at or before the start runs past midnight."));
	for (int i = 0; i < 2; i++)
	{
		ends[i] = getIthJsonbValueFromContainer(elem->val.binary.data, i);
		if (ends[i]->type != jbvString)
			CAL_ERROR(errmsg("interval %d of \"%s\" must be a pair of times", ordinal, day),
					  errdetail("Got %s.", JbText(elem)),
					  errhint("Times are strings written HH:MM or HH:MM:SS."));
		if (!ParseClock(ends[i]->val.string.val, ends[i]->val.string.len, &clock[i]))
			CAL_ERROR(errmsg("invalid time \"%s\" in interval %d of \"%s\"",
							 pnstrdup(ends[i]->val.string.val, ends[i]->val.string.len), ordinal, day),
					  errhint("Times are written HH:MM or HH:MM:SS, from 00:00 to 24:00."));
	}
	out->day = d;
	out->text = psprintf("[\"%s\", \"%s\"]",
						 pnstrdup(ends[0]->val.string.val, ends[0]->val.string.len),
						 pnstrdup(ends[1]->val.string.val, ends[1]->val.string.len));
	if (clock[0] == USECS_PER_DAY)
		CAL_ERROR(errmsg("interval %s of \"%s\" starts at 24:00", out->text, day),
				  errhint("An interval starts between 00:00 and 23:59:59; start it at 00:00 of the next day instead."));
	if (clock[1] == 0)
		CAL_ERROR(errmsg("interval %s of \"%s\" ends at 00:00", out->text, day),
				  errhint("Write \"24:00\" for midnight at the end of the day."));
	if (clock[1] == clock[0])
		CAL_ERROR(errmsg("interval %s of \"%s\" is empty", out->text, day),
				  errhint("An end at or before the start runs past midnight into the next day, so start and end must differ."));
	out->start = d * USECS_PER_DAY + clock[0];
	out->end = d * USECS_PER_DAY + clock[1] + (clock[1] < clock[0] ? USECS_PER_DAY : 0);
}

static int
SpanSourceCmp(const void *a, const void *b)
{
	const SpanSource *x = a;
	const SpanSource *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

static int
DateCmp(const void *a, const void *b)
{
	DateADT		x = *(const DateADT *) a;
	DateADT		y = *(const DateADT *) b;

	return (x > y) - (x < y);
}

/* Parses and checks the hours object; returns its intervals sorted. */
static SpanSource *
ReadHours(Jsonb *hours, int *nspans)
{
	JbMembers	days;
	int			n = 0,
				cap = 16;
	SpanSource *spans = palloc(cap * sizeof(SpanSource));

	if (!JB_ROOT_IS_OBJECT(hours))
	{
		JsonbValue	root;

		root.type = jbvBinary;
		root.val.binary.data = &hours->root;
		root.val.binary.len = VARSIZE(hours) - VARHDRSZ;
		if (JB_ROOT_IS_SCALAR(hours))
			(void) JsonbExtractScalar(&hours->root, &root);
		CAL_ERROR(errmsg("hours must be a JSON object"),
				  errdetail("Got a JSON %s.", JbTypeName(&root)),
				  errhint("Write hours as {\"mon\": [[\"09:00\", \"17:00\"]], \"tue\": ...}; days left out have no working time."));
	}

	JbMembersInit(&days, &hours->root);
	while (JbMembersNext(&days))
	{
		JsonbValue *v = &days.value;
		char	   *key = JbString(&days.key);
		int			d = -1;
		int			count;

		for (int i = 0; i < CAL_WEEKDAYS; i++)
			if (strcmp(key, day_keys[i]) == 0)
				d = i;
		if (d < 0)
			CAL_ERROR(errmsg("unrecognized day \"%s\" in hours", key),
					  errhint("Days are mon, tue, wed, thu, fri, sat and sun."));
		if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
			CAL_ERROR(errmsg("hours of \"%s\" must be an array of intervals", key),
					  errdetail("Got a JSON %s.", JbTypeName(v)),
					  errhint("Write a day as a list of [\"HH:MM\", \"HH:MM\"] pairs, such as [[\"09:00\", \"12:00\"], [\"13:00\", \"17:00\"]], or [] for none."));
		count = JsonContainerSize(v->val.binary.data);
		for (int i = 0; i < count; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (n == cap)
			{
				cap *= 2;
				spans = repalloc(spans, cap * sizeof(SpanSource));
			}
			ReadSpan(d, i + 1, getIthJsonbValueFromContainer(v->val.binary.data, i), &spans[n++]);
		}
	}

	qsort(spans, n, sizeof(SpanSource), SpanSourceCmp);
	for (int i = 0; i < n; i++)
	{
		/* the next interval of the week, wrapping from Sunday to Monday */
		SpanSource *a = &spans[i];
		SpanSource *b = &spans[(i + 1) % n];
		int64		next_start = b->start + (i + 1 == n ? CAL_WEEK_USECS : 0);

		if (a->end > next_start)
			CAL_ERROR(errmsg("intervals %s of \"%s\" and %s of \"%s\" overlap",
							 a->text, day_keys[a->day], b->text, day_keys[b->day]),
					  errdetail("An interval belongs to the day it starts on; one that ends at or before its start runs into the next day."),
					  errhint("Intervals may touch, as [\"09:00\", \"12:00\"] and [\"12:00\", \"17:00\"] do, but not overlap."));
	}
	*nspans = n;
	return spans;
}

/* Reads, checks, sorts and deduplicates the holidays. */
static DateADT *
ReadHolidays(ArrayType *holidays, int *nholidays)
{
	WqElements	dates;
	int			n;
	int			m = 0;
	DateADT    *out;

	*nholidays = 0;
	if (holidays == NULL)
		return NULL;
	if (ARR_ELEMTYPE(holidays) != DATEOID)
		elog(ERROR, "holidays must be of type date[]");
	n = ArrayGetNItems(ARR_NDIM(holidays), ARR_DIMS(holidays));
	if (n > CAL_MAX_HOLIDAYS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("calendar has too many holidays"),
				 errdetail("The list has %d dates; the limit is %d.", n, CAL_MAX_HOLIDAYS),
				 errhint("List the holidays of the years the calendar is used for.")));
	WqElementsInit(&dates, holidays, DATEOID,
				   "holidays must not contain NULL", "Element %d of the holiday list is NULL.");
	n = dates.n;
	out = palloc((n + 1) * sizeof(DateADT));
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		out[i] = DatumGetDateADT(WqElement(&dates, i));
		if (DATE_NOT_FINITE(out[i]))
			CAL_ERROR(errmsg("holiday \"%s\" is not a finite date",
							 DatumGetCString(DirectFunctionCall1(date_out, dates.values[i]))),
					  errhint("List holidays as dates, such as '2025-12-25'."));
	}
	qsort(out, n, sizeof(DateADT), DateCmp);
	for (int i = 0; i < n; i++)
		if (m == 0 || out[m - 1] != out[i])
			out[m++] = out[i];
	*nholidays = m;
	return out;
}

/*
 * Validates a calendar version and compiles it.  holidays may be NULL (no
 * holidays).  Raises 22023 (22004 for a NULL holiday) with a message naming
 * the offending day or interval.
 */
Calendar *
CalendarCompile(const char *name, int32 version, const char *tzname,
				Jsonb *hours, ArrayType *holidays)
{
	Calendar   *cal = palloc0(sizeof(Calendar));
	pg_tz	   *tz = CalendarParseZone(tzname);
	SpanSource *src;
	int			n;
	int			count[CAL_WEEKDAYS] = {0};

	cal->name = pstrdup(name);
	cal->version = version;
	cal->tzname = pstrdup(pg_get_timezone_name(tz));
	cal->zone = CalZoneGet(tz);

	src = ReadHours(hours, &n);
	for (int i = 0; i < n; i++)
		count[src[i].day]++;
	for (int d = 0; d < CAL_WEEKDAYS; d++)
	{
		cal->nspans[d] = 0;
		cal->spans[d] = palloc(Max(count[d], 1) * sizeof(CalSpan));
		if (count[d] > 0)
			cal->workdays++;
	}
	for (int i = 0; i < n; i++)
	{
		int			d = src[i].day;
		CalSpan    *s = &cal->spans[d][cal->nspans[d]++];

		s->start = src[i].start - d * USECS_PER_DAY;
		s->end = src[i].end - d * USECS_PER_DAY;
		cal->week_usecs += s->end - s->start;
		cal->day_end[d] = Max(cal->day_end[d], s->end);
		cal->max_day_end = Max(cal->max_day_end, s->end);
	}

	/* first start and last end of the 7 days starting on each weekday */
	for (int d = 0; d < CAL_WEEKDAYS; d++)
	{
		cal->first_start[d] = -1;
		cal->last_end[d] = -1;
		for (int k = 0; k < CAL_WEEKDAYS; k++)
		{
			int			wd = (d + k) % CAL_WEEKDAYS;

			if (cal->nspans[wd] == 0)
				continue;
			if (cal->first_start[d] < 0)
				cal->first_start[d] = k * USECS_PER_DAY + cal->spans[wd][0].start;
			cal->last_end[d] = k * USECS_PER_DAY + cal->spans[wd][cal->nspans[wd] - 1].end;
		}
	}

	cal->holidays = ReadHolidays(holidays, &cal->nholidays);
	return cal;
}
