-- workqueue 0.3 -> 0.4: business-hours calendars (SPEC §6).
--
-- Calendars are versioned like workflows: create_calendar() stores a new
-- immutable version, items pin the version their SLA started on and the
-- arithmetic takes either a name (the current version) or name + version.
-- The arithmetic is in C (src/calendar*.c); its exact rules are in
-- doc/sla.md, "Calendars".
--
-- Privileges: everyone may read calendars and call the arithmetic (it reads
-- workqueue.calendar with the caller's rights, through schema-qualified
-- queries that do not depend on search_path; it is neither SECURITY
-- DEFINER nor has a SET clause, which would cost a GUC save/restore on each
-- of possibly millions of calls).  Only administrators define calendars,
-- through create_calendar(), which validates them: nobody gets INSERT on
-- the table.

\echo Use "ALTER EXTENSION workqueue UPDATE TO '0.4'" to load this file. \quit

------------------------------------------------------------------------------
-- Table
------------------------------------------------------------------------------

-- Immutable: rows are only ever inserted (by create_calendar and this script).
CREATE TABLE workqueue.calendar (
    name        text NOT NULL CHECK (name <> ''),
    version     int NOT NULL CHECK (version > 0),
    timezone    text NOT NULL,
    hours       jsonb NOT NULL,
    holidays    date[] NOT NULL DEFAULT '{}',
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version)
);

COMMENT ON TABLE workqueue.calendar IS
    'Business-hours calendars, one row per immutable version; define them with workqueue.create_calendar().';

-- The built-in calendar: every day 00:00-24:00 UTC, no holidays.
INSERT INTO workqueue.calendar (name, version, timezone, hours, builtin)
VALUES ('24x7', 1, 'UTC',
        '{"mon": [["00:00", "24:00"]], "tue": [["00:00", "24:00"]], "wed": [["00:00", "24:00"]],
          "thu": [["00:00", "24:00"]], "fri": [["00:00", "24:00"]], "sat": [["00:00", "24:00"]],
          "sun": [["00:00", "24:00"]]}', true);

-- pg_dump keeps user calendars; the built-in one is recreated by the script.
SELECT pg_catalog.pg_extension_config_dump('workqueue.calendar', 'WHERE NOT builtin');

------------------------------------------------------------------------------
-- Definition
------------------------------------------------------------------------------

-- Validates a calendar definition (C); returns the zone's canonical name.
CREATE FUNCTION workqueue._validate_calendar(timezone text, hours jsonb, holidays date[])
    RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_validate_calendar';

CREATE FUNCTION workqueue.create_calendar(name text, timezone text, hours jsonb,
                                          holidays date[] DEFAULT '{}')
    RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    zone text;
    v int;
BEGIN
    PERFORM workqueue._require_admin('define calendars');
    IF create_calendar.name IS NULL OR create_calendar.name = '' THEN
        RAISE EXCEPTION 'calendar name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
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

    INSERT INTO workqueue.calendar (name, version, timezone, hours, holidays, created_by)
    VALUES (create_calendar.name, v, zone, create_calendar.hours,
            ARRAY(SELECT DISTINCT d FROM unnest(coalesce(create_calendar.holidays, '{}')) AS d ORDER BY d),
            workqueue._caller());
    RETURN v;
END
$$;

------------------------------------------------------------------------------
-- Arithmetic (C).  By name: the calendar's current version.  With a
-- version: that version, as an item's SLA pins it.
------------------------------------------------------------------------------

CREATE FUNCTION workqueue.business_add(start timestamptz, amount interval, calendar text)
    RETURNS timestamptz
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_business_add';

CREATE FUNCTION workqueue.business_add(start timestamptz, amount interval, calendar text, version int)
    RETURNS timestamptz
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_business_add';

CREATE FUNCTION workqueue.business_between(a timestamptz, b timestamptz, calendar text)
    RETURNS interval
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_business_between';

CREATE FUNCTION workqueue.business_between(a timestamptz, b timestamptz, calendar text, version int)
    RETURNS interval
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_business_between';

CREATE FUNCTION workqueue.business_add_days(start timestamptz, days int, calendar text)
    RETURNS timestamptz
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_business_add_days';

CREATE FUNCTION workqueue.business_add_days(start timestamptz, days int, calendar text, version int)
    RETURNS timestamptz
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_business_add_days';

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------

REVOKE ALL ON workqueue.calendar FROM PUBLIC;
GRANT SELECT ON workqueue.calendar TO PUBLIC;
