/*
 * calendar_sql.c
 *		SQL interface of the business-hours calendar arithmetic.
 *
 * Each function takes the calendar by name (its current version) or by
 * name and version (as an item's SLA pins it): the C entry points serve
 * both signatures and tell them apart by their argument count.
 */
#include "postgres.h"

#include "common/int.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "sla/calendar.h"

#define MONTH_USECS (INT64CONST(30) * USECS_PER_DAY)
#define YEAR_USECS (INT64CONST(31557600) * USECS_PER_SEC)	/* 365.25 days */

static const Calendar *
ArgCalendar(FunctionCallInfo fcinfo, int arg)
{
	return CalendarLookup(fcinfo, PG_GETARG_TEXT_PP(arg),
						  PG_NARGS() > arg + 1 ? PG_GETARG_INT32(arg + 1) : 0);
}

/*
 * An interval as microseconds, counted the way extract(epoch from ...)
 * counts it: a day is 24 hours, a month 30 days, a year 365.25 days.
 */
static int64
IntervalUsecs(const Interval *iv)
{
	int64		r;
	int64		part;

	if (pg_mul_s64_overflow(iv->day, USECS_PER_DAY, &part) ||
		pg_add_s64_overflow(iv->time, part, &r) ||
		pg_mul_s64_overflow(iv->month / MONTHS_PER_YEAR, YEAR_USECS, &part) ||
		pg_add_s64_overflow(r, part, &r) ||
		pg_mul_s64_overflow(iv->month % MONTHS_PER_YEAR, MONTH_USECS, &part) ||
		pg_add_s64_overflow(r, part, &r))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("interval out of range")));
	return r;
}

/* business_add(start timestamptz, amount interval, calendar text [, version int]) */
PG_FUNCTION_INFO_V1(workqueue_business_add);
Datum
workqueue_business_add(PG_FUNCTION_ARGS)
{
	int64		amount = IntervalUsecs(PG_GETARG_INTERVAL_P(1));	/* checked before the calendar is read */

	PG_RETURN_TIMESTAMPTZ(CalendarAdd(ArgCalendar(fcinfo, 2), PG_GETARG_TIMESTAMPTZ(0), amount));
}

/* business_between(a timestamptz, b timestamptz, calendar text [, version int]) */
PG_FUNCTION_INFO_V1(workqueue_business_between);
Datum
workqueue_business_between(PG_FUNCTION_ARGS)
{
	Interval   *result = palloc0(sizeof(Interval));

	/* seconds only, so that extract(epoch from ...) gives them back */
	result->time = CalendarBetween(ArgCalendar(fcinfo, 2), PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_TIMESTAMPTZ(1));
	PG_RETURN_INTERVAL_P(result);
}

/* business_add_days(start timestamptz, days int, calendar text [, version int]) */
PG_FUNCTION_INFO_V1(workqueue_business_add_days);
Datum
workqueue_business_add_days(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(CalendarAddDays(ArgCalendar(fcinfo, 2), PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_INT32(1)));
}

/*
 * _validate_calendar(timezone text, hours jsonb, holidays date[]): checks a
 * calendar definition as create_calendar() is about to store it and returns
 * the time zone's canonical name.
 */
PG_FUNCTION_INFO_V1(workqueue_validate_calendar);
Datum
workqueue_validate_calendar(PG_FUNCTION_ARGS)
{
	Calendar   *cal;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("time zone of a calendar must not be null"),
				 errhint("Use a name from pg_timezone_names, such as \"Europe/London\", or \"UTC\".")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("hours of a calendar must not be null"),
				 errhint("Write hours as {\"mon\": [[\"09:00\", \"17:00\"]], ...}, or {} for no working time.")));
	cal = CalendarCompile("", 0, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_JSONB_P(1),
						  PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2));
	PG_RETURN_TEXT_P(cstring_to_text(cal->tzname));
}
