-- Business-hours calendars, versioned like workflows, and their arithmetic
-- (C: src/sla/calendar*.c).  Rules: doc/sla.md, "Calendars".
--
-- Privileges: everyone may read calendars and call the arithmetic (it reads
-- workqueue.calendar with the caller's rights, through schema-qualified
-- queries that do not depend on search_path; it is neither SECURITY
-- DEFINER nor has a SET clause, which would cost a GUC save/restore on each
-- of possibly millions of calls).  Only administrators define calendars,
-- through create_calendar(), which validates them.

-- Validates a calendar definition (C); returns the zone's canonical name.
CREATE OR REPLACE FUNCTION workqueue._validate_calendar(timezone text, hours jsonb, holidays date[])
    RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_validate_calendar';

CREATE OR REPLACE FUNCTION workqueue.create_calendar(name text, timezone text, hours jsonb,
                                          holidays date[] DEFAULT '{}')
    RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    zone text;                  -- the time zone's canonical name
    v int;
    days date[];
BEGIN
    PERFORM workqueue._require_admin('define calendars');
    PERFORM workqueue._require_name('calendar', create_calendar.name);
    IF create_calendar.name = '24x7' THEN
        RAISE EXCEPTION 'calendar name "24x7" is reserved' USING ERRCODE = 'reserved_name',
            DETAIL = 'The built-in calendar "24x7" counts every hour of every day, in UTC.',
            HINT = 'Choose another name.';
    END IF;
    zone := workqueue._validate_calendar(create_calendar.timezone, create_calendar.hours,
                                         create_calendar.holidays);

    -- one definer at a time, so that version numbers never collide; readers
    -- are not blocked
    LOCK TABLE workqueue.calendar IN SHARE ROW EXCLUSIVE MODE;
    SELECT coalesce(max(c.version), 0) + 1 INTO v
      FROM workqueue.calendar c WHERE c.name = create_calendar.name;

    -- the holidays sorted, each once, before the INSERT: Citus refuses a
    -- sub-select in an INSERT into a reference table (distributed install)
    days := ARRAY(SELECT DISTINCT d FROM unnest(coalesce(create_calendar.holidays, '{}')) AS d ORDER BY d);
    INSERT INTO workqueue.calendar (name, version, timezone, hours, holidays, created_by)
    VALUES (create_calendar.name, v, zone, create_calendar.hours, days, workqueue._caller());
    RETURN v;
END
$$;

-- The arithmetic (C): business_add(start, amount, calendar),
-- business_between(a, b, calendar) and business_add_days(start, days,
-- calendar), each also with a last argument "version int" that counts on
-- that version of the calendar rather than the current one (an item's SLA
-- counts on the version it pinned).  All six are declared from this one
-- template, so that none of them gains a SET clause or SECURITY DEFINER.
DO $$
DECLARE
    f record;
    version_arg text;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('business_add', 'start timestamptz, amount interval', 'timestamptz'),
                                   ('business_between', 'a timestamptz, b timestamptz', 'interval'),
                                   ('business_add_days', 'start timestamptz, days int', 'timestamptz'))
                           AS v(name, args, result)
    LOOP
        FOREACH version_arg IN ARRAY ARRAY['', ', version int'] LOOP
            EXECUTE format('CREATE OR REPLACE FUNCTION workqueue.%I(%s, calendar text%s) RETURNS %s '
                           'LANGUAGE c STABLE STRICT PARALLEL SAFE AS %L, %L',
                           f.name, f.args, version_arg, f.result, 'MODULE_PATHNAME', 'workqueue_' || f.name);
        END LOOP;
    END LOOP;
END
$$;

-- Raises unless a calendar of that name exists.
CREATE OR REPLACE FUNCTION workqueue._require_calendar(name text, what text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR NOT EXISTS (SELECT 1 FROM workqueue.calendar c WHERE c.name = _require_calendar.name) THEN
        RAISE EXCEPTION 'calendar "%" does not exist', coalesce(name, 'NULL')
            USING ERRCODE = 'undefined_object',
                  DETAIL = format('It is named as %s.', what),
                  HINT = 'Create it with workqueue.create_calendar(), or use the built-in ''24x7''.';
    END IF;
END
$$;
