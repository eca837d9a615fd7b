-- Calendars: create_calendar (validation, versions), business_add,
-- business_between and business_add_days (SPEC §6, §9; doc/sla.md).
--
-- Hand-checked cases first, then the failure modes of other business-time
-- code (PEERS.md §7), then property tests over thousands of generated cases
-- against an independent SQL computation.
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (c60_*, wq60_*) so that files may run in parallel.
BEGIN;
SELECT plan(196);

SET LOCAL timezone = 'UTC';

-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises
-- (all NULL when it succeeds).
CREATE SCHEMA wqt60;
GRANT USAGE ON SCHEMA wqt60 TO PUBLIC;
-- wqt60.week(from, to): the same intervals for the weekdays from..to (1 = mon)
CREATE FUNCTION wqt60.week(intervals jsonb, first int DEFAULT 1, last int DEFAULT 5) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_object_agg((ARRAY['mon','tue','wed','thu','fri','sat','sun'])[d], intervals)
      FROM generate_series(first, last) d
$$;

-- wqt60.oracle(a, b, calendar): working time in [a, b) in seconds, computed
-- the plain-SQL way: every day's intervals built AT TIME ZONE, their union
-- (range_agg) intersected with [a, b).  Independent of the C code.
CREATE FUNCTION wqt60.oracle(a timestamptz, b timestamptz, cal text) RETURNS numeric
    LANGUAGE sql STABLE AS $$
    WITH c AS (SELECT * FROM workqueue.calendar WHERE name = cal ORDER BY version DESC LIMIT 1),
    inst AS (
        SELECT x.s, x.e
          FROM c
         CROSS JOIN LATERAL generate_series(((a AT TIME ZONE c.timezone)::date - 3)::timestamp,
                                            ((b AT TIME ZONE c.timezone)::date + 2)::timestamp, '1 day') AS d(day)
         CROSS JOIN LATERAL jsonb_array_elements(c.hours -> (ARRAY['mon','tue','wed','thu','fri','sat','sun'])[extract(isodow FROM d.day)]) AS iv(pair)
         CROSS JOIN LATERAL (SELECT (d.day + (iv.pair->>0)::time) AT TIME ZONE c.timezone AS s,
                                    (d.day + CASE WHEN (iv.pair->>1)::time <= (iv.pair->>0)::time
                                                  THEN interval '1 day' ELSE interval '0' END
                                           + (iv.pair->>1)::time) AT TIME ZONE c.timezone AS e) x
         WHERE NOT d.day::date = ANY (c.holidays) AND x.e > x.s),
    u AS (SELECT unnest(range_agg(tstzrange(s, e)) * tstzmultirange(tstzrange(a, b))) AS r FROM inst)
    SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0) FROM u
$$;

CREATE ROLE wq60_nina LOGIN;    -- not an administrator
CREATE ROLE wq60_adam LOGIN;    -- a workqueue administrator
GRANT workqueue_admin TO wq60_adam;

------------------------------------------------------------------------------
-- The built-in calendar and the table
------------------------------------------------------------------------------

SELECT results_eq(
    $$SELECT version, timezone, holidays, builtin FROM workqueue.calendar WHERE name = '24x7'$$,
    $$VALUES (1, 'UTC'::text, '{}'::date[], true)$$,
    '24x7 is built in, version 1, in UTC, without holidays');
SELECT is(workqueue.business_add('2024-06-07 16:00+00', '1 day', '24x7'), '2024-06-08 16:00+00',
    '24x7: one day is 24 working hours');
SELECT is(workqueue.business_between('2024-01-01 00:00+00', '2025-01-01 00:00+00', '24x7'), '8784:00:00',
    '24x7: a leap year has 8784 working hours');
SELECT is(workqueue.business_add('2024-03-31 00:30 Europe/London', '2 hours', '24x7'),
    '2024-03-31 02:30+00', '24x7 counts real time, whatever the session zone');

------------------------------------------------------------------------------
-- create_calendar: versions, privileges
------------------------------------------------------------------------------

SELECT is(workqueue.create_calendar('c60_office', 'europe/london',
        wqt60.week('[["09:00", "17:00"]]'), '{2024-12-26, 2024-12-25, 2024-12-25}'), 1,
    'create_calendar returns version 1 for a new calendar');
SELECT results_eq(
    $$SELECT timezone, holidays, created_by = current_user FROM workqueue.calendar WHERE name = 'c60_office'$$,
    $$VALUES ('Europe/London'::text, '{2024-12-25, 2024-12-26}'::date[], true)$$,
    'the zone is stored with its canonical spelling, holidays sorted and distinct');

SET LOCAL ROLE wq60_nina;
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_nina', 'UTC', '{}')$$,
    '42501', 'permission denied to define calendars', 'only administrators define calendars');
SELECT throws_ok($$INSERT INTO workqueue.calendar (name, version, timezone, hours) VALUES ('c60_x', 1, 'UTC', '{}')$$,
    '42501', NULL, 'nobody writes the calendar table directly');
SELECT is(workqueue.business_add('2024-06-07 16:00+00', '1 hour', 'c60_office'), '2024-06-10 09:00+00',
    'everyone may use calendars');
SELECT is((SELECT count(*) FROM workqueue.calendar WHERE name = 'c60_office'), 1::bigint,
    'everyone may read calendars');
RESET ROLE;
SET LOCAL ROLE wq60_adam;
SELECT is(workqueue.create_calendar('c60_adam', 'UTC', '{}'), 1, 'members of workqueue_admin define calendars');
RESET ROLE;

------------------------------------------------------------------------------
-- Validation: every error with its SQLSTATE and message
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'Mars/Olympus', '{}')$$,
    '22023', 'time zone "Mars/Olympus" is not recognized', 'an unknown time zone is an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', '', '{}')$$,
    '22023', 'time zone "" is not recognized', 'an empty time zone is an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', NULL, '{}')$$,
    '22004', 'time zone of a calendar must not be null', 'a NULL time zone is an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', NULL)$$,
    '22004', 'hours of a calendar must not be null', 'NULL hours are an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '[]')$$,
    '22023', 'hours must be a JSON object', 'hours must be an object');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '"09:00-17:00"')$$,
    '22023', 'hours must be a JSON object', 'hours must be an object, not a string');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"monday": []}')$$,
    '22023', 'unrecognized day "monday" in hours', 'days are mon..sun');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"mon": "09:00-17:00"}')$$,
    '22023', 'hours of "mon" must be an array of intervals', 'a day is an array');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"tue": [["09:00"]]}')$$,
    '22023', 'interval 1 of "tue" must be a pair of times', 'an interval has two ends');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"tue": [["08:00", "09:00"], ["09:00", 17]]}')$$,
    '22023', 'interval 2 of "tue" must be a pair of times', 'the ends are strings');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"wed": [["9am", "17:00"]]}')$$,
    '22023', 'invalid time "9am" in interval 1 of "wed"', 'times are HH:MM');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"wed": [["09:60", "17:00"]]}')$$,
    '22023', 'invalid time "09:60" in interval 1 of "wed"', 'minutes go to 59');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"wed": [["09:00", "24:30"]]}')$$,
    '22023', 'invalid time "24:30" in interval 1 of "wed"', 'nothing after 24:00');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"wed": [["09:00", "17:00:60"]]}')$$,
    '22023', 'invalid time "17:00:60" in interval 1 of "wed"', 'seconds go to 59');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"thu": [["24:00", "06:00"]]}')$$,
    '22023', 'interval ["24:00", "06:00"] of "thu" starts at 24:00', 'an interval cannot start at 24:00');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"thu": [["22:00", "00:00"]]}')$$,
    '22023', 'interval ["22:00", "00:00"] of "thu" ends at 00:00', 'an interval cannot end at 00:00');
SELECT is((wqt.err($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"thu": [["22:00", "00:00"]]}')$$)).hint,
    'Write "24:00" for midnight at the end of the day.', '... and the hint says to write 24:00');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"fri": [["09:00", "09:00"]]}')$$,
    '22023', 'interval ["09:00", "09:00"] of "fri" is empty', 'an empty interval is an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}')$$,
    '22023', 'intervals ["09:00", "12:00"] of "mon" and ["11:00", "13:00"] of "mon" overlap',
    'overlapping intervals are an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"mon": [["22:00", "06:00"]], "tue": [["05:00", "09:00"]]}')$$,
    '22023', 'intervals ["22:00", "06:00"] of "mon" and ["05:00", "09:00"] of "tue" overlap',
    'an overnight shift may not overlap the next day''s hours');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"sun": [["22:00", "06:00"]], "mon": [["05:30", "09:00"]]}')$$,
    '22023', 'intervals ["22:00", "06:00"] of "sun" and ["05:30", "09:00"] of "mon" overlap',
    'Sunday night runs into Monday');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{"sat": [["12:00", "11:00"]], "sun": [["10:00", "11:00"]]}')$$,
    '22023', 'intervals ["12:00", "11:00"] of "sat" and ["10:00", "11:00"] of "sun" overlap',
    'a 23-hour shift overlaps the next day''s morning');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{}', '{2025-01-01, NULL}')$$,
    '22004', 'holidays must not contain NULL', 'a NULL holiday is an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('c60_bad', 'UTC', '{}', '{infinity}')$$,
    '22023', 'holiday "infinity" is not a finite date', 'an infinite holiday is an error');
SELECT throws_ok($$SELECT workqueue.create_calendar('24x7', 'UTC', '{}')$$,
    '42939', 'calendar name "24x7" is reserved', 'the name 24x7 is reserved');
SELECT throws_ok($$SELECT workqueue.create_calendar('', 'UTC', '{}')$$,
    '22023', 'calendar name must not be empty', 'a calendar needs a name');
SELECT is((SELECT count(*) FROM workqueue.calendar WHERE name = 'c60_bad'), 0::bigint,
    'a rejected definition stores nothing');
SELECT is(workqueue.create_calendar('c60_touch', 'UTC',
        '{"mon": [["09:00", "12:00"], ["12:00", "17:00:30"]], "tue": [["22:00", "06:00"]], "wed": [["06:00", "09:00"]], "sun": [["18:00", "24:00"]]}', NULL),
    1, 'touching intervals, seconds, 24:00 ends and NULL holidays are accepted');
SELECT is(workqueue.business_between('2024-06-03 00:00+00', '2024-06-10 00:00+00', 'c60_touch'), '25:00:30',
    '... and count every second once');

SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', 'c60_nope')$$,
    '42704', 'calendar "c60_nope" does not exist', 'an unknown calendar is an error');
SELECT is((wqt.err($$SELECT workqueue.business_between(now(), now(), 'c60_nope')$$)).hint,
    'Create it with workqueue.create_calendar(), or use the built-in calendar "24x7".',
    '... whose hint says how to create one');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', 'c60_office', 9)$$,
    '42704', 'calendar "c60_office" version 9 does not exist', 'an unknown version is an error');
SELECT is((wqt.err($$SELECT workqueue.business_add_days(now(), 1, 'c60_office', 9)$$)).detail,
    'Calendar "c60_office" has versions 1 to 1.', '... whose detail lists the versions');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', 'c60_office', 0)$$,
    '42704', 'calendar "c60_office" version 0 does not exist', 'versions are numbered from 1');

------------------------------------------------------------------------------
-- The rules of SPEC §6, by example (office: 09:00-17:00 Mon-Fri, London)
------------------------------------------------------------------------------

SELECT is(workqueue.business_add('2024-06-07 16:00 Europe/London', '1 hour', 'c60_office'),
    '2024-06-07 17:00 Europe/London', 'Friday 16:00 + 1 h = Friday 17:00 (the earliest instant)');
SELECT is(workqueue.business_add('2024-06-07 17:00 Europe/London', '1 hour', 'c60_office'),
    '2024-06-10 10:00 Europe/London', 'Friday 17:00 + 1 h = Monday 10:00');
SELECT is(workqueue.business_add('2024-06-07 16:00 Europe/London', '0', 'c60_office'),
    '2024-06-07 16:00 Europe/London', 'adding 0 returns the start');
SELECT is(workqueue.business_add('2024-06-08 12:00 Europe/London', '0', 'c60_office'),
    '2024-06-08 12:00 Europe/London', 'adding 0 returns the start, also outside working time');
SELECT is(workqueue.business_add('2024-06-10 07:00 Europe/London', '1 hour', 'c60_office'),
    '2024-06-10 10:00 Europe/London', 'a start before hours counts from the opening');
SELECT is(workqueue.business_add('2024-06-08 12:00 Europe/London', '1 hour', 'c60_office'),
    '2024-06-10 10:00 Europe/London', 'a start on a non-working day counts from the next opening');
SELECT is(workqueue.business_add('2024-06-10 09:00 Europe/London', '8 hours', 'c60_office'),
    '2024-06-10 17:00 Europe/London', 'a whole working day ends at the closing');
SELECT is(workqueue.business_add('2024-06-10 09:00 Europe/London', '1 day', 'c60_office'),
    '2024-06-12 17:00 Europe/London', 'an amount is counted in seconds: 1 day = 24 working hours');
SELECT is(workqueue.business_add('2024-06-10 09:00 Europe/London', '1 month', 'c60_office'),
    workqueue.business_add('2024-06-10 09:00 Europe/London', '720 hours', 'c60_office'),
    'a month counts 30 days, as extract(epoch) does');
SELECT is(workqueue.business_add('2024-06-10 09:00:00.5 Europe/London', '1 microsecond', 'c60_office'),
    '2024-06-10 09:00:00.500001 Europe/London', 'microseconds count');
SELECT is(workqueue.business_between('2024-06-07 16:00 Europe/London', '2024-06-10 10:00 Europe/London', 'c60_office'),
    '02:00:00', 'business_between counts working time in [a, b)');
SELECT is(workqueue.business_between('2024-06-10 10:00 Europe/London', '2024-06-07 16:00 Europe/London', 'c60_office'),
    '-02:00:00', '... negative if b < a');
SELECT is(workqueue.business_between('2024-06-03 00:00+00', '2024-06-17 00:00+00', 'c60_office')::text,
    '80:00:00', 'the result is in hours, never days');
SELECT is(extract(epoch FROM workqueue.business_between('2024-06-03 00:00+00', '2024-06-17 00:00+00', 'c60_office')),
    288000::numeric, '... so that extract(epoch) gives the seconds back');
SELECT is(workqueue.business_between('2024-06-08 10:00+00', '2024-06-08 15:00+00', 'c60_office'), '00:00:00',
    'a span on a non-working day holds no working time');

-- negative amounts: the latest r with working time in [r, t) = |amount|
SELECT is(workqueue.business_add('2024-06-10 10:00 Europe/London', '-1 hour', 'c60_office'),
    '2024-06-10 09:00 Europe/London', 'Monday 10:00 - 1 h = Monday 09:00');
SELECT is(workqueue.business_add('2024-06-10 09:00 Europe/London', '-1 hour', 'c60_office'),
    '2024-06-07 16:00 Europe/London', 'Monday 09:00 - 1 h = Friday 16:00');
SELECT is(workqueue.business_add('2024-06-08 12:00 Europe/London', '-8 hours', 'c60_office'),
    '2024-06-07 09:00 Europe/London', 'Saturday - 8 h = Friday 09:00');
SELECT is(workqueue.business_add('2024-06-10 10:00 Europe/London', '-2 hours', 'c60_office'),
    '2024-06-07 16:00 Europe/London', 'backwards across a weekend');
SELECT is(workqueue.business_add('2024-06-10 10:00 Europe/London', '-1 hour -1 minute', 'c60_office'),
    '2024-06-07 16:59 Europe/London', 'a negative amount is counted in seconds too');

-- holidays (local dates)
SELECT is(workqueue.business_add('2024-12-24 16:00 Europe/London', '2 hours', 'c60_office'),
    '2024-12-27 10:00 Europe/London', 'holidays are skipped');
SELECT is(workqueue.business_add('2024-12-27 10:00 Europe/London', '-2 hours', 'c60_office'),
    '2024-12-24 16:00 Europe/London', 'holidays are skipped backwards');
SELECT is(workqueue.business_between('2024-12-23 00:00+00', '2024-12-30 00:00+00', 'c60_office'), '24:00:00',
    'a week with two holidays holds three working days');

-- infinity and NULL
SELECT is(workqueue.business_add('infinity', '1 hour', 'c60_office'), 'infinity'::timestamptz,
    'infinity plus working time is infinity');
SELECT is(workqueue.business_add('-infinity', '-1 hour', 'c60_office'), '-infinity'::timestamptz,
    '-infinity minus working time is -infinity');
SELECT is(workqueue.business_add_days('infinity', 3, 'c60_office'), 'infinity'::timestamptz,
    'infinity plus working days is infinity');
SELECT throws_ok($$SELECT workqueue.business_between('-infinity', '2024-01-01', 'c60_office')$$,
    '22008', 'cannot compute working time to or from an infinite timestamp',
    'working time from -infinity is an error');
SELECT throws_ok($$SELECT workqueue.business_between('2024-01-01', 'infinity', '24x7')$$,
    '22008', 'cannot compute working time to or from an infinite timestamp',
    'working time to infinity is an error');
SELECT is(workqueue.business_add(NULL, '1 hour', 'c60_office'), NULL, 'a NULL start gives NULL');
SELECT is(workqueue.business_add(now(), NULL, 'c60_office'), NULL, 'a NULL amount gives NULL');
SELECT is(workqueue.business_between(now(), now(), NULL), NULL, 'a NULL calendar gives NULL');
SELECT is(workqueue.business_add(now(), '1 hour', 'c60_office', NULL), NULL, 'a NULL version gives NULL');
SELECT throws_ok($$SELECT workqueue.business_add('294276-12-30 00:00+00', '10 days', '24x7')$$,
    '22008', 'timestamp out of range', 'a result past the timestamptz range is an error');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '178000000 years', '24x7')$$,
    '22008', 'interval out of range', 'an amount beyond the microsecond range is an error');

------------------------------------------------------------------------------
-- DST: an interval keeps its wall-clock ends (a Saturday night shift is 7 h
-- across the spring change, 9 h across the autumn change)
------------------------------------------------------------------------------

SELECT is(workqueue.create_calendar('c60_ny', 'America/New_York', '{"sat": [["22:00", "06:00"]]}'), 1, 'NY night shift');
SELECT is(workqueue.create_calendar('c60_lon', 'Europe/London', '{"sat": [["22:00", "06:00"]]}'), 1, 'London night shift');
SELECT is(workqueue.create_calendar('c60_syd', 'Australia/Sydney', '{"sat": [["22:00", "06:00"]]}'), 1, 'Sydney night shift');

SELECT is(workqueue.business_between('2024-03-02 00:00+00', '2024-03-03 12:00+00', 'c60_ny'), '08:00:00',
    'New York: an ordinary Saturday shift is 8 h');
SELECT is(workqueue.business_between('2024-03-09 00:00+00', '2024-03-10 12:00+00', 'c60_ny'), '07:00:00',
    'New York: the shift across the spring change (10 March 2024) is 7 h');
SELECT is(workqueue.business_between('2024-11-02 00:00+00', '2024-11-03 12:00+00', 'c60_ny'), '09:00:00',
    'New York: the shift across the autumn change (3 November 2024) is 9 h');
SELECT is(workqueue.business_add('2024-03-09 22:00 America/New_York', '7 hours', 'c60_ny'),
    '2024-03-10 06:00 America/New_York', 'New York: 7 h from the start of the spring shift is its 06:00 end');
SELECT is(workqueue.business_add('2024-11-02 22:00 America/New_York', '9 hours', 'c60_ny'),
    '2024-11-03 06:00 America/New_York', 'New York: 9 h from the start of the autumn shift is its 06:00 end');
SELECT is(workqueue.business_add('2024-11-02 22:00 America/New_York', '10 hours', 'c60_ny'),
    '2024-11-09 23:00 America/New_York', 'New York: the 10th hour is in the next shift');
SELECT is(workqueue.business_between('2024-03-30 00:00+00', '2024-03-31 12:00+00', 'c60_lon'), '07:00:00',
    'London: the shift across the spring change (31 March 2024) is 7 h');
SELECT is(workqueue.business_between('2024-10-26 00:00+00', '2024-10-27 12:00+00', 'c60_lon'), '09:00:00',
    'London: the shift across the autumn change (27 October 2024) is 9 h');
SELECT is(workqueue.business_add('2024-10-27 06:00 Europe/London', '-9 hours', 'c60_lon'),
    '2024-10-26 22:00 Europe/London', 'London: 9 h back from the end of the autumn shift is its start');
SELECT is(workqueue.business_between('2024-04-05 00:00+00', '2024-04-07 12:00+00', 'c60_syd'), '09:00:00',
    'Sydney: the shift across the autumn change (7 April 2024) is 9 h');
SELECT is(workqueue.business_between('2024-10-04 00:00+00', '2024-10-06 12:00+00', 'c60_syd'), '07:00:00',
    'Sydney: the shift across the spring change (6 October 2024) is 7 h');
SELECT is(workqueue.business_between('2024-06-07 00:00+00', '2024-06-09 12:00+00', 'c60_syd'), '08:00:00',
    'Sydney: an ordinary shift is 8 h');

SELECT is(workqueue.create_calendar('c60_cet', 'CET', '{"sat": [["22:00", "06:00"]]}'), 1, 'a calendar in the zone CET');
SELECT is(workqueue.business_between('2024-03-30 00:00+00', '2024-03-31 12:00+00', 'c60_cet'), '07:00:00',
    'a zone is read as SET timezone reads it: CET has summer time (AT TIME ZONE ''CET'' would be the fixed abbreviation)');

-- a wall-clock end that does not exist is read as PostgreSQL reads it
SELECT is(workqueue.create_calendar('c60_gap', 'America/New_York', '{"sun": [["01:00", "02:30"]]}'), 1, 'an end in the spring gap');
SELECT is(workqueue.business_between('2024-03-10 00:00+00', '2024-03-11 00:00+00', 'c60_gap'),
    '2024-03-10 02:30 America/New_York'::timestamptz - '2024-03-10 01:00 America/New_York'::timestamptz,
    'an end in the spring-forward gap is read like timestamptz input reads it');
SELECT is(workqueue.business_add('2024-03-10 01:00 America/New_York', '90 minutes', 'c60_gap'),
    '2024-03-10 02:30 America/New_York', '... and business_add ends there');

-- Asia/Kolkata, +05:30
SELECT is(workqueue.create_calendar('c60_kol', 'Asia/Kolkata', wqt60.week('[["09:30", "18:00"]]'), '{2024-08-15}'), 1, 'Kolkata office');
SELECT is(workqueue.business_add('2024-06-07 12:00 Asia/Kolkata', '8 hours', 'c60_kol'),
    '2024-06-10 11:30 Asia/Kolkata', 'Kolkata: Friday 12:00 + 8 h = Monday 11:30');
SELECT is(workqueue.business_add('2024-06-07 06:30+00', '8 hours', 'c60_kol'),
    '2024-06-10 06:00+00', '... which is 06:00 UTC');
SELECT is(workqueue.business_between('2024-08-12 00:00+00', '2024-08-17 00:00+00', 'c60_kol'), '34:00:00',
    'Kolkata: Independence Day is a holiday');

-- a holiday at a UTC-midnight boundary, in a zone far from UTC
SELECT is(workqueue.create_calendar('c60_akl', 'Pacific/Auckland',
        wqt60.week('[["00:00", "24:00"]]', 1, 7), '{2025-01-01}'), 1, 'Auckland, every hour, New Year''s Day off');
SELECT is(workqueue.business_between('2024-12-31 00:00+00', '2025-01-02 00:00+00', 'c60_akl'), '24:00:00',
    'Auckland: the holiday is the local 1 January (11:00 UTC to 11:00 UTC)');
SELECT is(workqueue.business_add('2024-12-31 10:00+00', '2 hours', 'c60_akl'), '2025-01-01 12:00+00',
    'Auckland: 23:00 on New Year''s Eve + 2 h skips the local holiday');
SELECT is(workqueue.business_add('2025-01-01 00:00+00', '1 hour', 'c60_akl'), '2025-01-01 12:00+00',
    'Auckland: a start inside the holiday counts from its end');
SELECT is(workqueue.business_add('2025-01-01 12:00+00', '-2 hours', 'c60_akl'), '2024-12-31 10:00+00',
    'Auckland: backwards across the holiday');

------------------------------------------------------------------------------
-- Overnight shifts, lunch breaks, weekday subsets, 24:00
------------------------------------------------------------------------------

SELECT is(workqueue.create_calendar('c60_night', 'Europe/Paris', wqt60.week('[["22:00", "06:00"]]')), 1, 'Paris night shifts Mon-Fri');
SELECT is(workqueue.business_add('2024-06-11 02:00 Europe/Paris', '5 hours', 'c60_night'),
    '2024-06-11 23:00 Europe/Paris', 'Tuesday 02:00 + 5 h: 4 h of Monday''s shift, 1 h of Tuesday''s');
SELECT is(workqueue.business_add('2024-06-15 03:00 Europe/Paris', '2 hours', 'c60_night'),
    '2024-06-15 05:00 Europe/Paris', 'Friday''s shift runs into Saturday morning');
SELECT is(workqueue.business_add('2024-06-16 12:00 Europe/Paris', '1 hour', 'c60_night'),
    '2024-06-17 23:00 Europe/Paris', 'Sunday noon + 1 h is in Monday night''s shift');
SELECT is(workqueue.business_between('2024-06-10 00:00 Europe/Paris', '2024-06-17 00:00 Europe/Paris', 'c60_night'),
    '40:00:00', 'five night shifts are 40 h');

SELECT is(workqueue.create_calendar('c60_lunch', 'Europe/Berlin', wqt60.week('[["09:00", "12:00"], ["13:00", "17:00"]]')), 1, 'a lunch break');
SELECT is(workqueue.business_add('2024-06-10 11:30 Europe/Berlin', '1 hour', 'c60_lunch'),
    '2024-06-10 13:30 Europe/Berlin', 'the lunch break does not count');
SELECT is(workqueue.business_add('2024-06-10 12:15 Europe/Berlin', '30 minutes', 'c60_lunch'),
    '2024-06-10 13:30 Europe/Berlin', 'a start during lunch counts from 13:00');
SELECT is(workqueue.business_add('2024-06-10 11:00 Europe/Berlin', '1 hour', 'c60_lunch'),
    '2024-06-10 12:00 Europe/Berlin', 'the earliest instant: 12:00, not 13:00');
SELECT is(workqueue.business_between('2024-06-10 09:00 Europe/Berlin', '2024-06-10 17:00 Europe/Berlin', 'c60_lunch'),
    '07:00:00', 'a day with a lunch break holds 7 h');

SELECT is(workqueue.create_calendar('c60_subset', 'America/Chicago', '{"tue": [["10:00", "14:00"]], "thu": [["10:00", "14:00"]]}'), 1,
    'Tuesdays and Thursdays only');
SELECT is(workqueue.business_add('2024-06-05 11:00 America/Chicago', '5 hours', 'c60_subset'),
    '2024-06-11 11:00 America/Chicago', 'Wednesday + 5 h = Thursday''s 4 h and 1 h of the next Tuesday');
SELECT is(workqueue.business_add('2024-06-09 11:00 America/Chicago', '1 hour', 'c60_subset'),
    '2024-06-11 11:00 America/Chicago', 'a Sunday start counts from Tuesday');
SELECT is(workqueue.business_between('2024-06-01 00:00+00', '2024-07-01 00:00+00', 'c60_subset'), '32:00:00',
    'June 2024 has 8 Tuesdays and Thursdays');

SELECT is(workqueue.create_calendar('c60_evening', 'UTC', wqt60.week('[["20:00", "24:00"]]', 1, 7)), 1, 'evenings to 24:00');
SELECT is(workqueue.business_add('2024-06-10 23:00+00', '2 hours', 'c60_evening'), '2024-06-11 21:00+00',
    'an interval ending at 24:00 ends at midnight');
SELECT is(workqueue.business_add('2024-06-11 00:00+00', '-1 hour', 'c60_evening'), '2024-06-10 23:00+00',
    '... also counted backwards');

------------------------------------------------------------------------------
-- business_add_days: the same position in the n-th working day
------------------------------------------------------------------------------

SELECT is(workqueue.business_add_days('2024-06-10 10:00 Europe/London', 1, 'c60_office'),
    '2024-06-11 10:00 Europe/London', 'Monday 10:00 + 1 working day = Tuesday 10:00');
SELECT is(workqueue.business_add_days('2024-06-10 10:00 Europe/London', 5, 'c60_office'),
    '2024-06-17 10:00 Europe/London', 'Monday 10:00 + 5 working days = next Monday 10:00');
SELECT is(workqueue.business_add_days('2024-06-07 20:00 Europe/London', 1, 'c60_office'),
    '2024-06-10 17:00 Europe/London', 'Friday evening + 1 working day = the end of Monday');
SELECT is(workqueue.business_add_days('2024-06-10 09:00 Europe/London', 1, 'c60_office'),
    '2024-06-10 17:00 Europe/London', 'Monday at opening + 1 working day = the end of Monday');
SELECT is(workqueue.business_add_days('2024-06-10 09:00 Europe/London', 2, 'c60_office'),
    '2024-06-11 17:00 Europe/London', 'Monday at opening + 2 working days = the end of Tuesday');
SELECT is(workqueue.business_add_days('2024-06-07 17:00 Europe/London', 1, 'c60_office'),
    '2024-06-10 17:00 Europe/London', 'Friday at closing + 1 working day = the end of Monday');
SELECT is(workqueue.business_add_days('2024-12-24 10:00 Europe/London', 1, 'c60_office'),
    '2024-12-27 10:00 Europe/London', 'holidays are not working days');
SELECT is(workqueue.business_add_days('2024-06-11 10:00 Europe/London', -1, 'c60_office'),
    '2024-06-10 10:00 Europe/London', 'Tuesday 10:00 - 1 working day = Monday 10:00');
SELECT is(workqueue.business_add_days('2024-06-10 10:00 Europe/London', -1, 'c60_office'),
    '2024-06-07 10:00 Europe/London', 'Monday 10:00 - 1 working day = Friday 10:00');
SELECT is(workqueue.business_add_days('2024-06-11 09:00 Europe/London', -1, 'c60_office'),
    '2024-06-07 17:00 Europe/London', 'Tuesday at opening (the end of Monday) - 1 working day = the end of Friday');
SELECT is(workqueue.business_add_days('2024-06-10 10:00 Europe/London', 0, 'c60_office'),
    '2024-06-10 10:00 Europe/London', 'adding 0 working days returns the start');
SELECT is(workqueue.business_add_days('2024-06-10 12:30 Europe/Berlin', 1, 'c60_lunch'),
    '2024-06-11 12:00 Europe/Berlin', 'a start in the lunch break: the earliest equivalent instant');
SELECT is(workqueue.business_add_days('2024-06-11 02:00 Europe/Paris', 1, 'c60_night'),
    '2024-06-12 02:00 Europe/Paris', 'a night shift belongs to the day it starts on');
SELECT is(workqueue.create_calendar('c60_short', 'UTC', wqt60.week('[["09:00", "17:00"]]', 1, 4) || '{"fri": [["09:00", "13:00"]]}'), 1,
    'a short Friday');
SELECT is(workqueue.business_add_days('2024-06-13 15:00+00', 1, 'c60_short'), '2024-06-14 13:00+00',
    'a position past the end of a shorter day is its end');
SELECT is(workqueue.business_add_days('2024-06-10 10:00+00', 520, 'c60_short'), '2026-06-08 10:00+00',
    'hundreds of working days are counted exactly');
SELECT is(workqueue.business_add_days('2024-06-05 11:00 America/Chicago', 1, 'c60_subset'),
    '2024-06-06 14:00 America/Chicago', 'a weekday-subset calendar: Wednesday + 1 working day = the end of Thursday');

------------------------------------------------------------------------------
-- Versions: items pin the version their SLA started on
------------------------------------------------------------------------------

SELECT is(workqueue.create_calendar('c60_sched', 'Europe/London', wqt60.week('[["09:00", "17:00"]]')), 1,
    'a schedule, version 1');
SELECT is(workqueue.business_add('2024-06-07 16:00 Europe/London', '2 hours', 'c60_sched'),
    '2024-06-10 10:00 Europe/London', 'version 1: Friday 16:00 + 2 h = Monday 10:00');
SELECT is(workqueue.create_calendar('c60_sched', 'Europe/London', wqt60.week('[["08:00", "18:00"]]')), 2,
    'changing the schedule over the weekend makes version 2');
SELECT is(workqueue.business_add('2024-06-07 16:00 Europe/London', '2 hours', 'c60_sched'),
    '2024-06-07 18:00 Europe/London', 'by name, the current version counts');
SELECT is(workqueue.business_add('2024-06-07 16:00 Europe/London', '2 hours', 'c60_sched', 1),
    '2024-06-10 10:00 Europe/London', 'the old version still computes as before');
SELECT is(workqueue.business_between('2024-06-03 00:00+00', '2024-06-10 00:00+00', 'c60_sched', 1), '40:00:00',
    'a week of version 1 is 40 h');
SELECT is(workqueue.business_between('2024-06-03 00:00+00', '2024-06-10 00:00+00', 'c60_sched'), '50:00:00',
    'a week of version 2 is 50 h, never both summed (dbt_zendesk#107)');
SELECT is(workqueue.business_between('2024-06-07 00:00+00', '2024-06-11 00:00+00', 'c60_sched', 1)
        + workqueue.business_between('2024-06-07 00:00+00', '2024-06-11 00:00+00', 'c60_sched', 2)
        - workqueue.business_between('2024-06-07 00:00+00', '2024-06-11 00:00+00', 'c60_sched'),
    '16:00:00', 'the current version is exactly version 2');
SAVEPOINT c60_v3;
SELECT is(workqueue.create_calendar('c60_sched', 'UTC', '{}'), 3, 'version 3, about to be rolled back');
SELECT throws_ok($$SELECT workqueue.business_add('2024-06-07 16:00+00', '2 hours', 'c60_sched')$$,
    '22023', 'calendar "c60_sched" has no working time', 'version 3 is the current version while it exists');
ROLLBACK TO SAVEPOINT c60_v3;
SELECT is(workqueue.business_add('2024-06-07 16:00 Europe/London', '2 hours', 'c60_sched'),
    '2024-06-07 18:00 Europe/London', 'after the rollback, version 2 is current again');
SELECT is(workqueue.create_calendar('c60_sched', 'Europe/London', wqt60.week('[["09:00", "17:00"]]')), 3,
    'the rolled-back version number is used again');
SELECT results_eq(
    $$SELECT workqueue.business_add('2024-06-07 16:00 Europe/London', '2 hours', 'c60_sched', v)
        FROM generate_series(1, 3) v$$,
    $$VALUES ('2024-06-10 10:00 Europe/London'::timestamptz), ('2024-06-07 18:00 Europe/London'), ('2024-06-10 10:00 Europe/London')$$,
    'each version computes with its own hours, also in one statement');

------------------------------------------------------------------------------
-- Known failures of other business-time code (PEERS.md §7)
------------------------------------------------------------------------------

-- moment-business-time#58: +1 h across fall-back returned the same instant
SELECT is(workqueue.create_calendar('c60_ny24', 'America/New_York', wqt60.week('[["00:00", "24:00"]]', 1, 7)), 1, 'every hour in New York');
SELECT is(workqueue.business_add('2024-11-03 01:30-04', '1 hour', 'c60_ny24'), '2024-11-03 01:30-05',
    '+1 h at 01:30 EDT on the fall-back night is 01:30 EST, an hour later');
SELECT isnt(workqueue.business_add('2024-11-03 01:30-04', '1 hour', 'c60_ny24'), '2024-11-03 01:30-04'::timestamptz,
    '+1 h across fall-back never returns the same instant');
SELECT is(workqueue.business_between('2024-11-03 00:00 America/New_York', '2024-11-04 00:00 America/New_York', 'c60_ny24'),
    '25:00:00', 'the fall-back day has 25 working hours');
SELECT is(workqueue.business_between('2024-03-10 00:00 America/New_York', '2024-03-11 00:00 America/New_York', 'c60_ny24'),
    '23:00:00', 'the spring-forward day has 23 working hours (dbt_zendesk#25)');
SELECT is(workqueue.business_add('2024-03-10 01:30 America/New_York', '1 hour', 'c60_ny24'), '2024-03-10 03:30 America/New_York',
    '+1 h across spring-forward is 03:30 EDT');

-- businesstimedelta#9: an infinite loop with a zone and holidays;
-- empty calendars and years of holidays must error, not hang
SELECT is(workqueue.create_calendar('c60_empty', 'Europe/London', '{"mon": [], "sun": []}'), 1, 'a calendar without working time');
SELECT throws_ok($$SELECT workqueue.business_add('2024-06-07 16:00+00', '1 hour', 'c60_empty')$$,
    '22023', 'calendar "c60_empty" has no working time', 'an empty calendar cannot add working time');
SELECT throws_ok($$SELECT workqueue.business_add('2024-06-07 16:00+00', '-1 second', 'c60_empty')$$,
    '22023', 'calendar "c60_empty" has no working time', '... nor subtract it');
SELECT throws_ok($$SELECT workqueue.business_add_days('2024-06-07 16:00+00', 1, 'c60_empty')$$,
    '22023', 'calendar "c60_empty" has no working time', '... nor add working days');
SELECT is(workqueue.business_add('2024-06-07 16:00+00', '0', 'c60_empty'), '2024-06-07 16:00+00',
    'an empty calendar adds 0 fine');
SELECT is(workqueue.business_between('2000-01-01 00:00+00', '2100-01-01 00:00+00', 'c60_empty'), '00:00:00',
    'an empty calendar holds no working time');
SELECT is(workqueue.create_calendar('c60_allhol', 'Pacific/Kiritimati', wqt60.week('[["09:00", "17:00"]]'),
        ARRAY(SELECT d::date FROM generate_series(date '2030-01-01', date '2041-12-31', '1 day') d)), 1,
    'twelve years of holidays');
SELECT is(workqueue.business_add('2029-12-31 16:00 Pacific/Kiritimati', '1 hour', 'c60_allhol'),
    '2029-12-31 17:00 Pacific/Kiritimati', 'working time before the holidays is found');
SELECT is((wqt.err($$SELECT workqueue.business_add('2029-12-31 16:00 Pacific/Kiritimati', '2 hours', 'c60_allhol')$$)).state,
    '22023', 'no working time within 10 years is an error, not a hang');
SELECT matches((wqt.err($$SELECT workqueue.business_add('2030-06-01 00:00+00', '1 hour', 'c60_allhol')$$)).msg,
    '^calendar "c60_allhol" has no working time from 2030-0.-.. to 2040-..-..$', '... whose message names the days searched');
SELECT is((wqt.err($$SELECT workqueue.business_add('2041-06-01 00:00+00', '-1 hour', 'c60_allhol')$$)).state,
    '22023', '... also backwards');
SELECT is((wqt.err($$SELECT workqueue.business_add_days('2030-06-01 00:00+00', 1, 'c60_allhol')$$)).state,
    '22023', '... also for working days');
SELECT is(workqueue.business_between('2030-01-01 00:00+00', '2041-12-31 12:00+00', 'c60_allhol'), '00:00:00',
    'working time across the holidays is 0');
SELECT is(workqueue.business_add('2041-12-31 00:00+00', '1 hour', 'c60_allhol'), '2042-01-01 10:00 Pacific/Kiritimati',
    'after the holidays, working time is found again');
SELECT is(workqueue.create_calendar('c60_yearoff', 'UTC', wqt60.week('[["09:00", "17:00"]]'),
        ARRAY(SELECT d::date FROM generate_series(date '2031-01-01', date '2031-12-31', '1 day') d)), 1,
    'a year of holidays');
SELECT is(workqueue.business_add('2030-12-31 16:00+00', '2 hours', 'c60_yearoff'), '2032-01-01 10:00+00',
    'a whole year of holidays is crossed');

-- bokmann/business_time#159, #45, #149: zone-agnostic, starts outside hours
SELECT is(workqueue.business_add('2024-06-10 08:00+00', '1 hour', 'c60_office'), '2024-06-10 10:00 Europe/London',
    '08:00 UTC is 09:00 in London: the zone is the calendar''s, not the session''s');
SELECT is(workqueue.business_add('2024-06-09 23:30+00', '30 minutes', 'c60_kol'), '2024-06-10 04:30+00',
    'a start on Sunday in UTC that is Monday 05:00 in Kolkata counts from Monday 09:30 IST');

-- osTicket#6739 and frappe/helpdesk#2075, #2212 are covered above (weekday
-- subsets, starts on non-working days, lunch breaks)

------------------------------------------------------------------------------
-- Long spans: whole weeks are skipped, and stay exact
------------------------------------------------------------------------------

SELECT is(workqueue.business_between('2000-01-01 00:00+00', '2100-01-01 00:00+00', '24x7'),
    '876600:00:00',
    '24x7 over a century: every hour');
SELECT is(extract(epoch FROM workqueue.business_between('2020-01-06 00:00+00', '2030-01-07 00:00+00', 'c60_office')),
    wqt60.oracle('2020-01-06 00:00+00', '2030-01-07 00:00+00', 'c60_office'),
    'ten years of office hours across 20 DST changes match the plain-SQL count');
SELECT is(workqueue.business_between('2024-06-07 16:00+00', workqueue.business_add('2024-06-07 16:00+00', '10 years', 'c60_office'), 'c60_office'),
    '87660:00:00', 'adding ten years of working time and measuring it back');
SELECT is(extract(epoch FROM workqueue.business_between('2760-01-01 00:00+00', '2780-01-01 00:00+00', 'c60_office')),
    wqt60.oracle('2760-01-01 00:00+00', '2780-01-01 00:00+00', 'c60_office'),
    'past the end of the zone''s transition table, DST is extrapolated as PostgreSQL does');
SELECT is(workqueue.business_add('5000-07-03 09:00 Europe/London', '1 hour', 'c60_office'), '5000-07-03 10:00 Europe/London',
    'summer time in the year 5000');
SELECT is(extract(epoch FROM workqueue.business_between('2000-01-01 00:00+00', '12000-01-01 00:00+00', 'c60_lon')) / 3600 % 1,
    0::numeric, 'ten thousand years of London night shifts (20,000 DST changes)');
SELECT cmp_ok((SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name = 'workqueue calendar zones'),
    '<', 8000000::numeric, '... in bounded memory');
SELECT is(workqueue.business_add('2024-10-26 22:00 Europe/London', '9 hours', 'c60_lon'), '2024-10-27 06:00 Europe/London',
    '... after which the present is computed as before');
SELECT is(workqueue.business_add('2024-06-07 16:00+00', '-10 years', 'c60_ny'),
    workqueue.business_add(workqueue.business_add('2024-06-07 16:00+00', '-5 years', 'c60_ny'), '-5 years', 'c60_ny'),
    'ten years back is twice five years back on a night-shift calendar');

------------------------------------------------------------------------------
-- Property tests (seeded, deterministic)
------------------------------------------------------------------------------

CREATE TEMP TABLE c60_cases AS
SELECT c.name AS cal,
       timestamptz '2015-01-01 00:00+00' + random() * interval '15 years' AS t,
       CASE WHEN g % 3 = 0 THEN random() * interval '400 days' - interval '200 days'
            ELSE random() * interval '10 days' - interval '3 days' END AS x
  FROM (SELECT setseed(0.6006)) s,
       generate_series(1, 800) g,
       (VALUES ('c60_office'), ('c60_ny'), ('c60_syd'), ('c60_kol'), ('c60_akl'), ('c60_night'),
               ('c60_lunch'), ('c60_subset'), ('c60_gap'), ('24x7')) AS c(name);

-- cases that start near the DST changes of the zones
INSERT INTO c60_cases
SELECT z.cal, h + (random() - 0.5) * interval '3 days', (random() - 0.5) * interval '5 days'
  FROM (SELECT setseed(0.1234)) s,
       (VALUES ('c60_ny', 'America/New_York'), ('c60_lon', 'Europe/London'), ('c60_syd', 'Australia/Sydney'),
               ('c60_gap', 'America/New_York'), ('c60_night', 'Europe/Paris')) AS z(cal, tz),
       generate_series(timestamptz '2018-01-01 00:00+00', '2026-01-01 00:00+00', '1 hour') h,
       generate_series(1, 5) n
 WHERE (h AT TIME ZONE z.tz) - ((h - interval '1 hour') AT TIME ZONE z.tz) <> interval '1 hour';

SELECT cmp_ok((SELECT count(*) FROM c60_cases), '>', 8000::bigint, 'thousands of generated cases');
SELECT is((SELECT count(*) FROM c60_cases
            WHERE workqueue.business_between(t, workqueue.business_add(t, x, cal), cal) <> x),
    0::bigint, 'business_between(t, business_add(t, x)) = x for every case');
SELECT is((SELECT count(*) FROM c60_cases
            WHERE workqueue.business_between(t, t + x, cal) <> -workqueue.business_between(t + x, t, cal)),
    0::bigint, 'business_between(a, b) = -business_between(b, a) for every case');
SELECT is((SELECT count(*) FROM c60_cases
            WHERE x > interval '0'
              AND workqueue.business_between(t, workqueue.business_add(t, x, cal) - interval '1 microsecond', cal) >= x),
    0::bigint, 'business_add returns the earliest such instant');
SELECT is((SELECT count(*) FROM c60_cases
            WHERE x < interval '0'
              AND workqueue.business_between(workqueue.business_add(t, x, cal) + interval '1 microsecond', t, cal) >= -x),
    0::bigint, 'a negative amount returns the latest such instant');
SELECT is((SELECT count(*) FROM (SELECT * FROM c60_cases WHERE x BETWEEN interval '-5 days' AND interval '5 days' LIMIT 600) c
            WHERE extract(epoch FROM workqueue.business_between(t, t + x, cal))
                  <> CASE WHEN x >= interval '0' THEN wqt60.oracle(t, t + x, cal) ELSE -wqt60.oracle(t + x, t, cal) END),
    0::bigint, 'business_between agrees with the plain-SQL union of intervals');
SELECT is((SELECT count(*) FROM c60_cases
            WHERE workqueue.business_add(t, x, cal) < t + x AND x > interval '0' AND cal = '24x7'),
    0::bigint, 'on 24x7, adding working time is adding real time');
-- (on calendars whose working days all have the same length)
SELECT is((SELECT count(*) FROM c60_cases c
            WHERE cal IN ('c60_office', 'c60_kol', 'c60_lunch', 'c60_subset', 'c60_night', '24x7')
              AND workqueue.business_between(workqueue.business_add_days(workqueue.business_add_days(t, 3, cal), -3, cal), t, cal) <> '0'),
    0::bigint, 'three working days forwards and back return to the same working time');

SELECT * FROM finish();
ROLLBACK;
