-- SLA: business-hours calendars, SLA policies and the clock of an item.

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

-- Immutable: rows are only ever inserted (by create_sla_policy).
CREATE TABLE workqueue.sla_policy (
    name        text NOT NULL CHECK (name <> ''),
    version     int NOT NULL CHECK (version > 0),
    calendar    text NOT NULL,
    targets     jsonb NOT NULL,         -- {"1": "04:00:00", ...}: working time, normalised
    warn_at     int[] NOT NULL DEFAULT '{50,75}',
    calendar_by jsonb,                  -- {"path": ..., "map": {...}, "default": ...} or NULL
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE workqueue.sla_policy IS
    'SLA policies, one row per immutable version; define them with workqueue.create_sla_policy().';
SELECT pg_catalog.pg_extension_config_dump('workqueue.sla_policy', '');

-- An item's SLA: the versions and target it pinned, and its clock.  The
-- clock is running while sla_clock_from is set (working time since then
-- adds to sla_elapsed), paused while sla_paused_at is set, stopped when
-- neither is.  sla_level counts the thresholds (warn_at..., 100) fired;
-- sla_next_at is when the next one is due.  (The item's due_at and
-- sla_paused_at are in src/queue/tables.sql.)
ALTER TABLE workqueue.item
    ADD COLUMN sla_policy           text,
    ADD COLUMN sla_policy_version   int,
    ADD COLUMN sla_calendar         text,
    ADD COLUMN sla_calendar_version int,
    ADD COLUMN sla_target           interval,
    ADD COLUMN sla_elapsed          interval NOT NULL DEFAULT '0',
    ADD COLUMN sla_clock_from       timestamptz,
    ADD COLUMN sla_level            smallint NOT NULL DEFAULT 0,
    ADD COLUMN sla_next_at          timestamptz,
    ADD COLUMN step_due_at          timestamptz;
-- No foreign keys to sla_policy and calendar (a query per new item): the
-- versions an item pins are read from those tables in the statement that
-- writes them, and versions are never changed or deleted (doc/queue.md,
-- "Integrity").

-- the timer index: the worker reads the next due instant from it
CREATE INDEX item_sla_timer_idx ON workqueue.item (sla_next_at) WHERE sla_next_at IS NOT NULL;

-- Everyone reads calendars and policies; administrators define them
-- through create_calendar() and create_sla_policy(), which validate them
-- (privileges: src/core/grants.sql).
