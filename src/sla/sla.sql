-- SLA policies, the clock of an item and its timers (SPEC §5, §6).
--
-- An SLA policy gives each priority a target in working time of a calendar.
-- When an item is created in a queue with a policy, it pins the policy's and
-- the calendar's current versions and its target; the clock then runs in
-- working steps, stops in steps that pause the SLA and in terminal steps.
-- The fetch worker fires the timers (sla_warning, sla_breach, escalation)
-- from an index on item.sla_next_at.  Rules: doc/sla.md, "SLA policies".

-- Raises unless an sla policy of that name exists (NULL: none, which is fine).
CREATE OR REPLACE FUNCTION workqueue._require_sla_policy(name text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM workqueue.sla_policy p WHERE p.name = _require_sla_policy.name) THEN
        PERFORM workqueue._raise_undefined('sla policy', name,
            'Create it with workqueue.create_sla_policy(), or list policies with: SELECT name, version FROM workqueue.sla_policy;');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.create_sla_policy(name text, calendar text, targets jsonb,
                                            warn_at int[] DEFAULT '{50,75}', calendar_by jsonb DEFAULT NULL)
    RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    norm jsonb := '{}';
    k text;
    v jsonb;
    t interval;
    secs numeric;
    warn int[];
    ver int;
BEGIN
    PERFORM workqueue._require_admin('define sla policies');
    PERFORM workqueue._require_nonempty('sla policy name', create_sla_policy.name);
    PERFORM workqueue._require_calendar(create_sla_policy.calendar, 'the calendar of the policy');

    -- targets: {"1": "4 hours", ...}, priorities 1-5, positive working time
    IF create_sla_policy.targets IS NULL OR jsonb_typeof(create_sla_policy.targets) <> 'object'
       OR create_sla_policy.targets = '{}' THEN
        RAISE EXCEPTION 'sla targets must be a non-empty JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is %s.', coalesce(left(create_sla_policy.targets::text, 200), 'NULL')),
                  HINT = 'Give a working-time target per priority, e.g. {"1": "4 hours", "2": "8 hours", "3": "2 days"}.';
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(create_sla_policy.targets) e LOOP
        IF k NOT IN ('1', '2', '3', '4', '5') THEN
            RAISE EXCEPTION 'sla target key "%" is not a priority', left(k, 100)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Target keys are the priorities "1" (highest) to "5" (lowest).',
                      HINT = 'Write targets as {"1": "4 hours", ...}.';
        END IF;
        BEGIN
            t := (v #>> '{}')::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow
                       OR invalid_text_representation THEN
            t := NULL;
        END;
        IF jsonb_typeof(v) <> 'string' OR t IS NULL THEN
            RAISE EXCEPTION 'sla target of priority % is not an interval', k
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given is %s.', left(v::text, 200)),
                      HINT = 'Write the target as a string such as "4 hours" or "2 days" (working time).';
        END IF;
        secs := extract(epoch FROM t);
        IF secs <= 0 OR secs > 3162240000 THEN
            RAISE EXCEPTION 'sla target of priority % is out of range', k
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The target given is %s.', t),
                      HINT = 'A target must be more than zero and at most 100 years of working time.';
        END IF;
        -- counted in seconds, as the calendar arithmetic counts (1 day = 24 hours)
        norm := norm || jsonb_build_object(k, make_interval(secs => secs)::text);
    END LOOP;

    -- warn_at: percentages 1-99, sorted, each once
    IF create_sla_policy.warn_at IS NULL OR array_position(create_sla_policy.warn_at, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'warn_at must not be or contain null'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass percentages such as ''{50,75}'', or ''{}'' for no warnings.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(create_sla_policy.warn_at) w WHERE w NOT BETWEEN 1 AND 99) THEN
        RAISE EXCEPTION 'warn_at percentages must be between 1 and 99'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is %s.', create_sla_policy.warn_at),
                  HINT = 'The breach itself fires at 100%; warnings come before it.';
    END IF;
    warn := ARRAY(SELECT DISTINCT w FROM unnest(create_sla_policy.warn_at) w ORDER BY w);

    -- calendar_by: {"path": jsonpath, "map": {"value": "calendar"}, "default": "calendar"}
    IF create_sla_policy.calendar_by IS NOT NULL THEN
        PERFORM workqueue._check_calendar_by(create_sla_policy.calendar_by);
    END IF;

    LOCK TABLE workqueue.sla_policy IN SHARE ROW EXCLUSIVE MODE;
    SELECT coalesce(max(p.version), 0) + 1 INTO ver FROM workqueue.sla_policy p WHERE p.name = create_sla_policy.name;
    INSERT INTO workqueue.sla_policy (name, version, calendar, targets, warn_at, calendar_by, created_by)
    VALUES (create_sla_policy.name, ver, create_sla_policy.calendar, norm, warn, create_sla_policy.calendar_by,
            workqueue._caller());
    RETURN ver;
END
$$;

CREATE OR REPLACE FUNCTION workqueue._check_calendar_by(calendar_by jsonb) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k text;
    v jsonb;
BEGIN
    IF jsonb_typeof(calendar_by) <> 'object' OR NOT calendar_by ? 'path' OR NOT calendar_by ? 'map'
       OR jsonb_typeof(calendar_by->'path') <> 'string' OR jsonb_typeof(calendar_by->'map') <> 'object' THEN
        RAISE EXCEPTION 'calendar_by must be an object with "path" and "map"'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is %s.', left(calendar_by::text, 200)),
                  HINT = 'Write e.g. {"path": "$.region", "map": {"emea": "london", "amer": "new_york"}, "default": "24x7"}.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(calendar_by) LOOP
        IF k NOT IN ('path', 'map', 'default') THEN
            RAISE EXCEPTION 'unrecognized calendar_by key "%"', left(k, 100)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'The keys are "path", "map" and "default".';
        END IF;
    END LOOP;
    BEGIN
        PERFORM (calendar_by->>'path')::jsonpath;
    EXCEPTION WHEN syntax_error OR invalid_text_representation THEN
        RAISE EXCEPTION 'calendar_by path is not a valid jsonpath'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The path given is %s.', left(calendar_by->>'path', 200)),
                  HINT = 'Write a PostgreSQL jsonpath such as "$.region".';
    END;
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(calendar_by->'map') e LOOP
        IF jsonb_typeof(v) <> 'string' THEN
            RAISE EXCEPTION 'calendar_by map value for "%" is not a calendar name', left(k, 100)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Map each value to a calendar name (a string).';
        END IF;
        PERFORM workqueue._require_calendar(v #>> '{}', format('calendar_by for "%s"', left(k, 100)));
    END LOOP;
    IF calendar_by ? 'default' THEN
        IF jsonb_typeof(calendar_by->'default') <> 'string' THEN
            RAISE EXCEPTION 'calendar_by default is not a calendar name'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Write "default": "24x7" or leave it out.';
        END IF;
        PERFORM workqueue._require_calendar(calendar_by->>'default', 'the calendar_by default');
    END IF;
END
$$;

-- The helpers below are plain SQL without a SET clause so that the planner
-- inlines them; they are only called from functions that pin search_path.
-- The calendar a policy gives an item with this data.
CREATE OR REPLACE FUNCTION workqueue._sla_calendar(calendar_by jsonb, data jsonb, fallback text) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN calendar_by IS NULL THEN fallback
                ELSE coalesce(calendar_by->'map'->>(pg_catalog.jsonb_path_query_first(data,
                                  (calendar_by->>'path')::pg_catalog.jsonpath, '{}', true) #>> '{}'),
                              calendar_by->>'default', fallback) END
$$;

-- The working time on an item's SLA clock now: what it had when the clock
-- last stopped, plus, while it runs, the working time since clock_from.
CREATE OR REPLACE FUNCTION workqueue._sla_clock(elapsed interval, clock_from timestamptz, calendar text, version int)
    RETURNS interval
    LANGUAGE sql STABLE AS $$
    SELECT elapsed + CASE WHEN clock_from IS NOT NULL
                          THEN workqueue.business_between(clock_from, now(), calendar, version)
                          ELSE interval '0' END
$$;

-- When the threshold at pct percent of the target falls due, for a clock
-- with that working time on it that runs from "from_at" (at from_at at the
-- earliest: a threshold already passed falls due at once).
CREATE OR REPLACE FUNCTION workqueue._sla_next_at(from_at timestamptz, target interval, elapsed interval, pct int,
                                                 calendar text, version int)
    RETURNS timestamptz
    LANGUAGE sql STABLE AS $$
    SELECT workqueue.business_add(from_at, greatest(target * (pct / 100.0) - elapsed, interval '0'), calendar, version)
$$;

-- The threshold (percent) an item fires next, NULL once the breach fired.
CREATE OR REPLACE FUNCTION workqueue._sla_threshold(warn_at int[], level int) RETURNS int
    LANGUAGE sql IMMUTABLE AS $$
    SELECT (warn_at || 100)[level + 1]
$$;

-- The steps of a workflow version, with each working step's share of the
-- target (weight / sum of the weights of the working steps whose clock
-- runs; NULL for steps that pause the SLA and terminal steps).
CREATE OR REPLACE FUNCTION workqueue._version_step_shares(workflow text, version int)
    RETURNS TABLE (step text, kind text, pauses_sla boolean, escalate_to text, share double precision)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.name, s.kind, s.pauses_sla, s.escalate_to,
           CASE WHEN s.kind = 'work' AND NOT s.pauses_sla
                THEN s.weight / nullif(sum(s.weight) FILTER (WHERE s.kind = 'work' AND NOT s.pauses_sla) OVER (), 0) END
      FROM workqueue.workflow_step s WHERE s.workflow = $1 AND s.version = $2
$$;

REVOKE ALL ON FUNCTION workqueue._version_step_shares(text, int) FROM PUBLIC;

-- The same for the workflow versions of the given items.
CREATE OR REPLACE FUNCTION workqueue._step_shares(ids bigint[])
    RETURNS TABLE (workflow text, version int, step text, kind text, pauses_sla boolean, escalate_to text,
                   share double precision)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH v AS (SELECT DISTINCT i.workflow, i.workflow_version AS version
                 FROM unnest(ids) AS x(id) JOIN workqueue.item i ON i.id = x.id)
    SELECT v.workflow, v.version, s.step, s.kind, s.pauses_sla, s.escalate_to, s.share
      FROM v, workqueue._version_step_shares(v.workflow, v.version) s
$$;

REVOKE ALL ON FUNCTION workqueue._step_shares(bigint[]) FROM PUBLIC;

-- The SLA of items that have just been created in, or moved into, their
-- current step (called by _after_enter(), in the transaction that created
-- or moved them, with the items locked), written together with their new
-- assignees (a_ids, a_members); returns the items written.
--
-- Created: the SLA starts.  It pins the queue's policy, the calendar
-- (calendar_by) and their current versions, the target of the item's
-- priority; starts the clock at created_at, or pauses it if the start step
-- pauses the SLA.  Items whose priority has no target get no SLA.
--
-- Moved: the clock moves.  Working step: the clock runs (a paused clock
-- resumes and the due time moves by the paused working time; a stopped one
-- restarts, as after a reopen).  Step that pauses the SLA: the clock stops,
-- due_at keeps the value it had.  Terminal step: the clock stops for good.
CREATE OR REPLACE FUNCTION workqueue._sla_enter(ids bigint[], a_ids bigint[], a_members text[], created boolean)
    RETURNS bigint[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done bigint[];
BEGIN
    -- two statements, each planned for its own case
    IF created THEN
        WITH st AS MATERIALIZED (
            SELECT * FROM workqueue._step_shares(ids)),
        x AS MATERIALIZED (
            SELECT i.queue, i.id, i.created_at, p.name AS pname, p.version AS pversion,
                   (p.warn_at || 100)[1] AS first_pct,
                   (p.targets->>i.priority::text)::interval AS target,
                   CASE WHEN p.calendar_by IS NULL THEN p.calendar
                        ELSE workqueue._sla_calendar(p.calendar_by, i.data, p.calendar) END AS cal,
                   st.pauses_sla, st.share
              FROM unnest(ids) AS u(id)
              JOIN workqueue.item i ON i.id = u.id
              JOIN workqueue.queue q ON q.name = i.queue
              JOIN LATERAL (SELECT * FROM workqueue.sla_policy p WHERE p.name = q.sla_policy
                             ORDER BY p.version DESC LIMIT 1) p ON true
              JOIN st ON st.workflow = i.workflow AND st.version = i.workflow_version AND st.step = i.step
             WHERE i.sla_target IS NULL),
        cv AS MATERIALIZED (
            SELECT c.name, max(c.version) AS version FROM workqueue.calendar c
             WHERE c.name IN (SELECT DISTINCT x.cal FROM x) GROUP BY c.name),
        y AS (
            SELECT x.*, cv.version AS calv, a.id IS NOT NULL AS reassign, a.member
              FROM x JOIN cv ON cv.name = x.cal
              LEFT JOIN unnest(a_ids, a_members) AS a(id, member) ON a.id = x.id
             WHERE x.target IS NOT NULL),
        u AS (
        UPDATE workqueue.item i
           SET sla_policy = y.pname, sla_policy_version = y.pversion,
               sla_calendar = y.cal, sla_calendar_version = y.calv, sla_target = y.target,
               sla_elapsed = '0', sla_level = 0,
               due_at = workqueue.business_add(y.created_at, y.target, y.cal, y.calv),
               sla_clock_from = CASE WHEN y.pauses_sla THEN NULL ELSE y.created_at END,
               sla_paused_at = CASE WHEN y.pauses_sla THEN y.created_at END,
               sla_next_at = CASE WHEN NOT y.pauses_sla THEN
                       workqueue._sla_next_at(y.created_at, y.target, interval '0', y.first_pct, y.cal, y.calv) END,
               step_due_at = CASE WHEN NOT y.pauses_sla THEN
                       workqueue.business_add(y.created_at, y.target * y.share, y.cal, y.calv) END,
               assignee = CASE WHEN y.reassign THEN y.member ELSE i.assignee END
          FROM y
         WHERE i.queue = y.queue AND i.id = y.id
        RETURNING i.id)
        SELECT array_agg(u.id) INTO done FROM u;
    ELSE
        WITH st AS MATERIALIZED (
            SELECT * FROM workqueue._step_shares(ids)),
        x AS MATERIALIZED (
            SELECT i.queue, i.id, i.sla_target AS target, i.sla_calendar AS cal, i.sla_calendar_version AS calv,
                   i.due_at, i.sla_paused_at, i.sla_clock_from,
                   (p.warn_at || 100)[i.sla_level + 1] AS next_pct, st.kind, st.pauses_sla, st.share,
                   st.kind = 'work' AND NOT st.pauses_sla AS runs,
                   -- working time on the clock now
                   workqueue._sla_clock(i.sla_elapsed, i.sla_clock_from, i.sla_calendar, i.sla_calendar_version) AS elapsed
              FROM unnest(ids) AS u(id)
              JOIN workqueue.item i ON i.id = u.id
              JOIN workqueue.sla_policy p ON p.name = i.sla_policy AND p.version = i.sla_policy_version
              JOIN st ON st.workflow = i.workflow AND st.version = i.workflow_version AND st.step = i.step
             WHERE i.sla_target IS NOT NULL),
        y AS (
            SELECT x.*, a.id IS NOT NULL AS reassign, a.member,
                   -- the due time if the clock runs from now on
                   CASE WHEN x.sla_clock_from IS NOT NULL THEN x.due_at
                        WHEN x.sla_paused_at IS NOT NULL THEN
                            workqueue.business_add(x.due_at, workqueue.business_between(x.sla_paused_at, now(), x.cal, x.calv),
                                                   x.cal, x.calv)
                        ELSE workqueue.business_add(now(), x.target - x.elapsed, x.cal, x.calv) END AS due_running
              FROM x LEFT JOIN unnest(a_ids, a_members) AS a(id, member) ON a.id = x.id),
        u AS (
        UPDATE workqueue.item i
           SET sla_elapsed = y.elapsed,
               sla_clock_from = CASE WHEN y.runs THEN now() END,
               sla_paused_at = CASE WHEN y.kind = 'work' AND y.pauses_sla THEN coalesce(y.sla_paused_at, now()) END,
               due_at = CASE WHEN y.runs THEN y.due_running
                             WHEN y.kind = 'work' THEN                -- pausing: keeps the due time it has
                                  CASE WHEN y.sla_clock_from IS NULL AND y.sla_paused_at IS NULL
                                       THEN y.due_running ELSE y.due_at END
                             WHEN y.sla_paused_at IS NOT NULL THEN y.due_running
                             ELSE y.due_at END,
               sla_next_at = CASE WHEN y.runs AND y.next_pct IS NOT NULL THEN
                       workqueue._sla_next_at(now(), y.target, y.elapsed, y.next_pct, y.cal, y.calv) END,
               step_due_at = CASE WHEN y.runs THEN workqueue.business_add(now(), y.target * y.share, y.cal, y.calv) END,
               assignee = CASE WHEN y.reassign THEN y.member ELSE i.assignee END
          FROM y
         WHERE i.queue = y.queue AND i.id = y.id
        RETURNING i.id)
        SELECT array_agg(u.id) INTO done FROM u;
    END IF;
    RETURN done;
END
$$;

REVOKE ALL ON FUNCTION workqueue._sla_enter(bigint[], bigint[], text[], boolean) FROM PUBLIC;

-- _sla_enter(ids, a_ids, a_members, created => false) on a distributed
-- install, for items of one queue (locked): Citus refuses the STABLE
-- functions (business_add, _sla_clock) with column references, and now() in
-- a CASE, in an UPDATE of items, so the items are read from the queue's
-- shard, their clocks and due times computed here, on the coordinator, and
-- each item written with constants by a statement routed to its shard,
-- with its new assignee (a_ids, a_members; NULL: none).  Returns the items
-- written.  Called by _after_enter_citus (transitions) and _reopen_listed
-- (a sync that reopens closed items).
CREATE OR REPLACE FUNCTION workqueue._sla_enter_citus(queue text, ids bigint[], a_ids bigint[], a_members text[])
    RETURNS bigint[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    done bigint[] := '{}';
    r record;
    st record;
    next_pct int;
    el interval;
    runs boolean;
    due_running timestamptz;
    k int;
    member text;
BEGIN
    FOR r IN EXECUTE
        'SELECT i.id, i.step, i.workflow, i.workflow_version, i.sla_target AS target, i.sla_calendar AS cal,
                i.sla_calendar_version AS calv, i.due_at, i.sla_paused_at, i.sla_clock_from, i.sla_elapsed,
                i.sla_level, i.sla_policy, i.sla_policy_version
           FROM workqueue.item i WHERE i.queue = $1 AND i.id = ANY ($2) AND i.sla_target IS NOT NULL ORDER BY i.id'
        USING queue, ids
    LOOP
        SELECT x.kind, x.pauses_sla, x.share INTO st
          FROM workqueue._version_step_shares(r.workflow, r.workflow_version) x WHERE x.step = r.step;
        CONTINUE WHEN NOT FOUND;
        SELECT (p.warn_at || 100)[r.sla_level + 1] INTO next_pct FROM workqueue.sla_policy p
         WHERE p.name = r.sla_policy AND p.version = r.sla_policy_version;
        CONTINUE WHEN NOT FOUND;
        el := workqueue._sla_clock(r.sla_elapsed, r.sla_clock_from, r.cal, r.calv);
        runs := st.kind = 'work' AND NOT st.pauses_sla;
        due_running := CASE WHEN r.sla_clock_from IS NOT NULL THEN r.due_at
                            WHEN r.sla_paused_at IS NOT NULL THEN
                                workqueue.business_add(r.due_at, workqueue.business_between(r.sla_paused_at, now(), r.cal, r.calv),
                                                       r.cal, r.calv)
                            ELSE workqueue.business_add(now(), r.target - el, r.cal, r.calv) END;
        k := array_position(a_ids, r.id);
        member := CASE WHEN k IS NOT NULL THEN a_members[k] END;
        EXECUTE 'UPDATE workqueue.item SET sla_elapsed = $3, sla_clock_from = $4, sla_paused_at = $5, due_at = $6,
                        sla_next_at = $7, step_due_at = $8, assignee = CASE WHEN $9 THEN $10 ELSE assignee END
                  WHERE queue = $1 AND id = $2'
            USING queue, r.id, el,
                  CASE WHEN runs THEN now() END,
                  CASE WHEN st.kind = 'work' AND st.pauses_sla THEN coalesce(r.sla_paused_at, now()) END,
                  CASE WHEN runs THEN due_running
                       WHEN st.kind = 'work' THEN                -- pausing: keeps the due time it has
                            CASE WHEN r.sla_clock_from IS NULL AND r.sla_paused_at IS NULL
                                 THEN due_running ELSE r.due_at END
                       WHEN r.sla_paused_at IS NOT NULL THEN due_running
                       ELSE r.due_at END,
                  CASE WHEN runs AND next_pct IS NOT NULL THEN
                      workqueue._sla_next_at(now(), r.target, el, next_pct, r.cal, r.calv) END,
                  CASE WHEN runs THEN workqueue.business_add(now(), r.target * st.share, r.cal, r.calv) END,
                  k IS NOT NULL, member;
        done := done || r.id;
    END LOOP;
    RETURN done;
END
$$;

REVOKE ALL ON FUNCTION workqueue._sla_enter_citus(text, bigint[], bigint[], text[]) FROM PUBLIC;

-- Fires the SLA thresholds that are due: sla_warning at each warn_at
-- percentage, sla_breach at 100% with escalation to the step's escalate_to
-- role.  Takes at most max_items items (locked, SKIP LOCKED), set-based:
-- one statement writes every threshold event (in order per item, with its
-- NOTIFY) and moves every item to its next threshold, then the breached
-- items are escalated per role.  Returns when the next threshold of any
-- item is due (NULL: none).
CREATE OR REPLACE FUNCTION workqueue._fire_sla_timers(max_items int DEFAULT 1000) RETURNS timestamptz
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    esc_ids bigint[];
    esc_roles text[];
    g record;
    pick record;
    written bigint;
BEGIN
    IF workqueue._citus() THEN
        RETURN workqueue._fire_sla_timers_citus(max_items);
    END IF;
    WITH due AS MATERIALIZED (
        SELECT i.queue, i.id, i.step, i.due_at, i.sla_target AS target, i.sla_elapsed, i.sla_clock_from,
               i.sla_calendar AS cal, i.sla_calendar_version AS calv, i.sla_level, p.warn_at || 100 AS th,
               s.escalate_to
          FROM workqueue.item i
          JOIN workqueue.sla_policy p ON p.name = i.sla_policy AND p.version = i.sla_policy_version
          JOIN workqueue.workflow_step s
            ON s.workflow = i.workflow AND s.version = i.workflow_version AND s.name = i.step
         WHERE i.sla_next_at <= now()
         ORDER BY i.sla_next_at
         LIMIT max_items
           FOR UPDATE OF i SKIP LOCKED),
    e0 AS (
        SELECT d.*, workqueue._sla_clock(d.sla_elapsed, d.sla_clock_from, d.cal, d.calv) AS elapsed
          FROM due d),
    -- the new level: the thresholds (sorted) the elapsed time has reached
    x AS MATERIALIZED (
        SELECT e0.*, CASE WHEN e0.sla_clock_from IS NULL THEN e0.sla_level
                          ELSE greatest(e0.sla_level, (SELECT count(*) FROM unnest(e0.th) AS t(pct)
                                                        WHERE e0.elapsed >= e0.target * (t.pct / 100.0))) END AS lvl
          FROM e0),
    -- the thresholds each item has reached and not fired yet, in order
    f AS MATERIALIZED (
        SELECT x.queue, x.id, x.step, x.due_at, x.target, x.elapsed, x.escalate_to, t.pct, t.ord
          FROM x, unnest(x.th) WITH ORDINALITY AS t(pct, ord)
         WHERE t.ord > x.sla_level AND t.ord <= x.lvl),
    nx AS (
        SELECT x.queue, x.id, x.lvl, x.lvl - x.sla_level AS fired,
               CASE WHEN x.sla_clock_from IS NOT NULL AND x.th[x.lvl + 1] IS NOT NULL THEN
                   workqueue.business_add(x.sla_clock_from, x.target * (x.th[x.lvl + 1] / 100.0) - x.sla_elapsed,
                                          x.cal, x.calv) END AS next_at
          FROM x),
    u AS (
        UPDATE workqueue.item i
           SET sla_level = nx.lvl,
               -- never spin on an instant that rounding keeps in the past
               sla_next_at = CASE WHEN nx.fired = 0 AND nx.next_at <= now() THEN now() + interval '100 milliseconds'
                                  ELSE nx.next_at END
          FROM nx WHERE i.queue = nx.queue AND i.id = nx.id
        RETURNING i.id),
    e AS (
        INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
        SELECT f.queue, f.id, 'workqueue', CASE WHEN f.pct < 100 THEN 'sla_warning' ELSE 'sla_breach' END,
               f.step, f.step,
               CASE WHEN f.pct < 100
                    THEN jsonb_build_object('percent', f.pct, 'due_at', f.due_at, 'target', f.target,
                                            'elapsed', f.elapsed, 'remaining', f.target - f.elapsed)
                    ELSE jsonb_build_object('percent', 100, 'due_at', f.due_at, 'target', f.target,
                                            'elapsed', f.elapsed) END
          FROM f ORDER BY f.id, f.ord
        RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.kind, item_event.to_step)
    SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM u),
           array_agg(f.id ORDER BY f.id) FILTER (WHERE f.pct = 100 AND f.escalate_to IS NOT NULL),
           array_agg(f.escalate_to ORDER BY f.id) FILTER (WHERE f.pct = 100 AND f.escalate_to IS NOT NULL)
      INTO written, esc_ids, esc_roles
      FROM f;

    -- escalation of the breached items, per role
    FOR g IN SELECT x.role, array_agg(x.id ORDER BY x.id) AS ids
               FROM unnest(esc_ids, esc_roles) AS x(id, role) GROUP BY x.role ORDER BY x.role
    LOOP
        pick := workqueue._pick_members(g.role, cardinality(g.ids));
        WITH a AS (
            SELECT x.id, x.member
              FROM unnest(g.ids, coalesce(pick.members, array_fill(NULL::text, ARRAY[cardinality(g.ids)])))
                   AS x(id, member)),
        old AS (
            SELECT i.queue, i.id, i.step, i.assignee, a.member FROM a JOIN workqueue.item i ON i.id = a.id),
        u AS (
            UPDATE workqueue.item i SET assignee = old.member, updated_at = now()
              FROM old WHERE i.queue = old.queue AND i.id = old.id AND old.member IS NOT NULL),
        e AS (
            INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
            SELECT old.queue, old.id, 'workqueue', 'escalated', old.step, old.step,
                   jsonb_build_object('role', g.role, 'from', old.assignee, 'to', old.member, 'strategy', pick.strategy)
              FROM old ORDER BY old.id
            RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step)
        SELECT count(*) INTO written FROM e;
    END LOOP;
    RETURN (SELECT min(i.sla_next_at) FROM workqueue.item i WHERE i.sla_next_at IS NOT NULL);
END
$$;

REVOKE ALL ON FUNCTION workqueue._fire_sla_timers(int) FROM PUBLIC;

-- _fire_sla_timers() on a distributed install (doc/scale-out.md, "SLA
-- timers, calendars and scopes"): the same thresholds, events and
-- escalations, but Citus refuses row locks in a statement over many shards
-- and STABLE functions with column references in an UPDATE, so the queues
-- with due items are read first (no locks), then per queue the due items
-- are locked (one statement routed to the queue's shard, SKIP LOCKED), and
-- each item's clock, level and next threshold are computed here, on this
-- node, and written with constants.
CREATE OR REPLACE FUNCTION workqueue._fire_sla_timers_citus(max_items int) RETURNS timestamptz
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    qn text;
    r record;
    left_ int := max_items;
    th int[];
    el interval;
    lvl int;
    next_at timestamptz;
    pct int;
    esc record;
    esc_q text[] := '{}';
    esc_ids bigint[] := '{}';
    esc_steps text[] := '{}';
    esc_old text[] := '{}';
    esc_roles text[] := '{}';
    g record;
    pick record;
    k int;
BEGIN
    FOR qn IN SELECT DISTINCT i.queue FROM workqueue.item i WHERE i.sla_next_at <= now() ORDER BY 1 LOOP
        EXIT WHEN left_ <= 0;
        FOR r IN EXECUTE
            'SELECT i.queue, i.id, i.step, i.due_at, i.sla_target AS target, i.sla_elapsed, i.sla_clock_from,
                    i.sla_calendar AS cal, i.sla_calendar_version AS calv, i.sla_level, i.assignee,
                    i.sla_policy, i.sla_policy_version, i.workflow, i.workflow_version
               FROM workqueue.item i
              WHERE i.queue = $1 AND i.sla_next_at <= now()
              ORDER BY i.sla_next_at LIMIT $2
                FOR UPDATE SKIP LOCKED' USING qn, left_
        LOOP
            left_ := left_ - 1;
            SELECT p.warn_at || 100 INTO th FROM workqueue.sla_policy p
             WHERE p.name = r.sla_policy AND p.version = r.sla_policy_version;
            el := workqueue._sla_clock(r.sla_elapsed, r.sla_clock_from, r.cal, r.calv);
            lvl := CASE WHEN r.sla_clock_from IS NULL THEN r.sla_level
                        ELSE greatest(r.sla_level, (SELECT count(*) FROM unnest(th) AS t(pct)
                                                     WHERE el >= r.target * (t.pct / 100.0))) END;
            next_at := CASE WHEN r.sla_clock_from IS NOT NULL AND th[lvl + 1] IS NOT NULL THEN
                           workqueue.business_add(r.sla_clock_from, r.target * (th[lvl + 1] / 100.0) - r.sla_elapsed,
                                                  r.cal, r.calv) END;
            -- never spin on an instant that rounding keeps in the past
            IF lvl = r.sla_level AND next_at <= now() THEN
                next_at := now() + interval '100 milliseconds';
            END IF;
            EXECUTE 'UPDATE workqueue.item SET sla_level = $3, sla_next_at = $4 WHERE queue = $1 AND id = $2'
                USING r.queue, r.id, lvl, next_at;
            FOR k IN r.sla_level + 1 .. lvl LOOP
                pct := th[k];
                PERFORM workqueue._event(r.queue, r.id, 'workqueue',
                    CASE WHEN pct < 100 THEN 'sla_warning' ELSE 'sla_breach' END, r.step, r.step,
                    CASE WHEN pct < 100
                         THEN jsonb_build_object('percent', pct, 'due_at', r.due_at, 'target', r.target,
                                                 'elapsed', el, 'remaining', r.target - el)
                         ELSE jsonb_build_object('percent', 100, 'due_at', r.due_at, 'target', r.target,
                                                 'elapsed', el) END);
                IF pct = 100 THEN
                    SELECT s.escalate_to AS role INTO esc FROM workqueue.workflow_step s
                     WHERE s.workflow = r.workflow AND s.version = r.workflow_version AND s.name = r.step;
                    IF esc.role IS NOT NULL THEN
                        esc_q := esc_q || r.queue; esc_ids := esc_ids || r.id; esc_steps := esc_steps || r.step;
                        esc_old := esc_old || r.assignee; esc_roles := esc_roles || esc.role;
                    END IF;
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;

    -- escalation of the breached items, per role, in id order
    FOR g IN SELECT x.role, array_agg(x.q ORDER BY x.id) AS qs, array_agg(x.id ORDER BY x.id) AS ids,
                    array_agg(x.step ORDER BY x.id) AS steps, array_agg(x.old ORDER BY x.id) AS olds
               FROM unnest(esc_q, esc_ids, esc_steps, esc_old, esc_roles) AS x(q, id, step, old, role)
              GROUP BY x.role ORDER BY x.role
    LOOP
        pick := workqueue._pick_members(g.role, cardinality(g.ids));
        FOR k IN 1 .. cardinality(g.ids) LOOP
            CONTINUE WHEN pick.members IS NULL OR pick.members[k] IS NULL;
            EXECUTE 'UPDATE workqueue.item SET assignee = $3, updated_at = $4 WHERE queue = $1 AND id = $2'
                USING g.qs[k], g.ids[k], pick.members[k], now();
        END LOOP;
        FOR k IN 1 .. cardinality(g.ids) LOOP
            PERFORM workqueue._event(g.qs[k], g.ids[k], 'workqueue', 'escalated', g.steps[k], g.steps[k],
                jsonb_build_object('role', g.role, 'from', g.olds[k], 'to', pick.members[k],
                                   'strategy', pick.strategy));
        END LOOP;
    END LOOP;
    RETURN (SELECT min(i.sla_next_at) FROM workqueue.item i WHERE i.sla_next_at IS NOT NULL);
END
$$;

REVOKE ALL ON FUNCTION workqueue._fire_sla_timers_citus(int) FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue.sla_status(item bigint)
    RETURNS TABLE (due_at timestamptz, elapsed interval, remaining interval, percent numeric,
                   breached boolean, paused boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item;
    el interval;
BEGIN
    IF workqueue._citus() THEN
        it := workqueue._read_item_citus(sla_status.item);     -- (in its shard when the queue is known)
    ELSE
        SELECT * INTO it FROM workqueue.item i WHERE i.id = sla_status.item;
    END IF;
    IF it.id IS NULL OR NOT workqueue._visible(it.scope) THEN
        PERFORM workqueue._raise_no_item(sla_status.item);
    END IF;
    IF it.sla_target IS NULL THEN               -- no SLA: its queue has no policy, or none for its priority
        RETURN QUERY SELECT NULL::timestamptz, NULL::interval, NULL::interval, NULL::numeric, false, false;
        RETURN;
    END IF;
    el := workqueue._sla_clock(it.sla_elapsed, it.sla_clock_from, it.sla_calendar, it.sla_calendar_version);
    RETURN QUERY SELECT it.due_at, el, it.sla_target - el,
                        round(100 * extract(epoch FROM el) / extract(epoch FROM it.sla_target), 1),
                        el >= it.sla_target, it.sla_paused_at IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.sla_report(queue text, since timestamptz, until timestamptz)
    RETURNS TABLE (priority smallint, items bigint, resolved bigint, met bigint, breached bigint,
                   compliance numeric, median_time_to_resolve interval, p90_time_to_resolve interval)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(sla_report.queue);
    scopes text[] := workqueue._caller_scopes();     -- NULL: all
    -- the items reported: $1 the queue, $2 since, $3 until, $4 the caller's scopes
    rows_sql constant text := $q$
        SELECT i.priority, i.resolved_at, i.created_at, i.sla_target, i.sla_elapsed, i.sla_clock_from,
               i.sla_paused_at, i.sla_calendar, i.sla_calendar_version
          FROM workqueue.item i
         WHERE i.queue = $1 AND i.created_at >= $2 AND i.created_at < $3
           AND i.status <> 'closed' AND (i.scope = '{}' OR $4 IS NULL OR i.scope && $4)$q$;
    -- the report over rows of those columns (%s: where they come from)
    report_sql constant text := $q$
        WITH i AS (%s),
        x AS (
            SELECT i.priority, i.resolved_at IS NOT NULL AS done, i.sla_target,
                   -- working time on the SLA clock (pauses excluded); real time without an SLA
                   CASE WHEN i.sla_target IS NULL THEN
                            CASE WHEN i.resolved_at IS NOT NULL THEN i.resolved_at - i.created_at END
                        WHEN i.resolved_at IS NOT NULL AND i.sla_clock_from IS NULL AND i.sla_paused_at IS NULL
                            THEN i.sla_elapsed
                        ELSE workqueue._sla_clock(i.sla_elapsed, i.sla_clock_from, i.sla_calendar,
                                                  i.sla_calendar_version) END AS elapsed
              FROM i)
        SELECT x.priority, count(*), count(*) FILTER (WHERE x.done),
               count(*) FILTER (WHERE x.done AND x.elapsed < x.sla_target),
               count(*) FILTER (WHERE x.elapsed >= x.sla_target),
               round(100.0 * count(*) FILTER (WHERE x.done AND x.elapsed < x.sla_target)
                     / nullif(count(*) FILTER (WHERE (x.done AND x.sla_target IS NOT NULL) OR x.elapsed >= x.sla_target), 0),
                     1),
               make_interval(secs => percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM x.elapsed))
                                     FILTER (WHERE x.done)),
               make_interval(secs => percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM x.elapsed))
                                     FILTER (WHERE x.done))
          FROM x
         GROUP BY x.priority
         ORDER BY x.priority$q$;
    c_pri smallint[];                                 -- (distributed: the rows read, column by column)
    c_res timestamptz[];
    c_cre timestamptz[];
    c_tgt interval[];
    c_el interval[];
    c_from timestamptz[];
    c_paused timestamptz[];
    c_cal text[];
    c_calv int[];
BEGIN
    IF sla_report.since IS NULL OR sla_report.until IS NULL OR sla_report.since > sla_report.until THEN
        RAISE EXCEPTION 'invalid report period'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The period given runs from %s to %s.', coalesce(sla_report.since::text, 'NULL'),
                                  coalesce(sla_report.until::text, 'NULL')),
                  HINT = 'Pass since <= until; items created in [since, until) are reported.';
    END IF;
    IF NOT workqueue._citus() THEN
        RETURN QUERY EXECUTE format(report_sql, rows_sql) USING q.name, sla_report.since, sla_report.until, scopes;
        RETURN;
    END IF;
    -- distributed: the rows are read from the queue's shard first, and the
    -- clocks computed here (business_between reads the calendar, a reference
    -- table, which Citus refuses inside a shard's query)
    EXECUTE format('SELECT array_agg(r.priority), array_agg(r.resolved_at), array_agg(r.created_at),
                           array_agg(r.sla_target), array_agg(r.sla_elapsed), array_agg(r.sla_clock_from),
                           array_agg(r.sla_paused_at), array_agg(r.sla_calendar), array_agg(r.sla_calendar_version)
                      FROM (%s) r', rows_sql)
       INTO c_pri, c_res, c_cre, c_tgt, c_el, c_from, c_paused, c_cal, c_calv
      USING q.name, sla_report.since, sla_report.until, scopes;
    RETURN QUERY EXECUTE format(report_sql,
        'SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9)
                  AS u(priority, resolved_at, created_at, sla_target, sla_elapsed, sla_clock_from,
                       sla_paused_at, sla_calendar, sla_calendar_version)')
        USING c_pri, c_res, c_cre, c_tgt, c_el, c_from, c_paused, c_cal, c_calv;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.recompute_sla(queue text, dry_run boolean DEFAULT true)
    RETURNS TABLE (item bigint, old_due timestamptz, new_due timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue;
    p workqueue.sla_policy;
    r record;
    el interval;
    target interval;
    cal text;
    calv int;
    due timestamptz;
    lvl int;
    pct int;
    running boolean;
    t_now timestamptz := now();
    next_at timestamptz;
BEGIN
    PERFORM workqueue._require_admin('recompute sla due times');
    q := workqueue._queue(recompute_sla.queue);
    IF recompute_sla.dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Pass true to see what would change, false to change it.';
    END IF;
    IF q.sla_policy IS NULL THEN
        RAISE EXCEPTION 'queue "%" has no sla policy', q.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Give it one with workqueue.alter_queue(name, ''{"sla_policy": "..."}'').';
    END IF;
    SELECT * INTO p FROM workqueue.sla_policy x WHERE x.name = q.sla_policy ORDER BY x.version DESC LIMIT 1;

    FOR r IN
        SELECT i.*, s.kind AS step_kind, s.pauses_sla AS step_pauses, op.warn_at AS old_warn_at
          FROM workqueue.item i
          JOIN workqueue.workflow_step s
            ON s.workflow = i.workflow AND s.version = i.workflow_version AND s.name = i.step
          LEFT JOIN workqueue.sla_policy op ON op.name = i.sla_policy AND op.version = i.sla_policy_version
         WHERE i.queue = q.name AND i.status IN ('open', 'in_progress')
         ORDER BY i.id
           FOR UPDATE OF i
    LOOP
        cal := workqueue._sla_calendar(p.calendar_by, r.data, p.calendar);
        SELECT max(c.version) INTO calv FROM workqueue.calendar c WHERE c.name = cal;
        target := (p.targets->>r.priority::text)::interval;
        -- working time so far, measured by the calendar it ran on (without an
        -- SLA yet: since creation, by the new calendar)
        IF r.sla_target IS NULL THEN
            el := workqueue.business_between(r.created_at, now(), cal, calv);
        ELSE
            el := workqueue._sla_clock(r.sla_elapsed, r.sla_clock_from, r.sla_calendar, r.sla_calendar_version);
        END IF;
        running := NOT r.step_pauses;
        due := CASE WHEN target IS NULL THEN NULL
                    WHEN running THEN workqueue.business_add(now(), target - el, cal, calv)
                    ELSE workqueue.business_add(coalesce(r.sla_paused_at, now()), target - el, cal, calv) END;
        CONTINUE WHEN r.due_at IS NOT DISTINCT FROM due AND r.sla_policy_version IS NOT DISTINCT FROM p.version
                  AND r.sla_calendar IS NOT DISTINCT FROM cal AND r.sla_calendar_version IS NOT DISTINCT FROM calv
                  AND r.sla_target IS NOT DISTINCT FROM target;
        item := r.id; old_due := r.due_at; new_due := due;
        RETURN NEXT;
        CONTINUE WHEN recompute_sla.dry_run;

        -- thresholds already passed are not fired again, except a breach
        -- that had not fired yet
        lvl := 0;
        IF target IS NOT NULL THEN
            SELECT count(*) INTO lvl FROM unnest(p.warn_at) w WHERE el >= target * (w / 100.0);
            IF el >= target AND r.sla_level > cardinality(coalesce(r.old_warn_at, '{}')) THEN
                lvl := lvl + 1;
            END IF;
        END IF;
        pct := workqueue._sla_threshold(p.warn_at, lvl);
        -- (computed here, not in a CASE of the UPDATE: Citus refuses
        -- functions that are not IMMUTABLE in a CASE of a distributed UPDATE)
        next_at := CASE WHEN target IS NOT NULL AND running AND pct IS NOT NULL THEN
                       workqueue._sla_next_at(t_now, target, el, pct, cal, calv) END;
        UPDATE workqueue.item i
           SET sla_policy = CASE WHEN target IS NOT NULL THEN p.name END,
               sla_policy_version = CASE WHEN target IS NOT NULL THEN p.version END,
               sla_calendar = CASE WHEN target IS NOT NULL THEN cal END,
               sla_calendar_version = CASE WHEN target IS NOT NULL THEN calv END,
               sla_target = target, due_at = due, sla_level = lvl,
               sla_elapsed = CASE WHEN target IS NOT NULL THEN el ELSE interval '0' END,
               sla_clock_from = CASE WHEN target IS NOT NULL AND running THEN t_now END,
               sla_paused_at = CASE WHEN target IS NOT NULL AND NOT running THEN coalesce(r.sla_paused_at, t_now) END,
               sla_next_at = next_at,
               step_due_at = CASE WHEN target IS NOT NULL AND running THEN r.step_due_at END,
               updated_at = now()
         WHERE i.queue = r.queue AND i.id = r.id;
        PERFORM workqueue._event(r.queue, r.id, workqueue._caller(), 'sla_recomputed', r.step, r.step,
            jsonb_build_object('old_due', r.due_at, 'new_due', due,
                'old', jsonb_build_object('policy', r.sla_policy, 'policy_version', r.sla_policy_version,
                                          'calendar', r.sla_calendar, 'calendar_version', r.sla_calendar_version,
                                          'target', r.sla_target),
                'new', jsonb_build_object('policy', p.name, 'policy_version', p.version, 'calendar', cal,
                                          'calendar_version', calv, 'target', target),
                'elapsed', el));
    END LOOP;
END
$$;
