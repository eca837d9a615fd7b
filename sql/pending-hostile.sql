-- Pending SQL of branch "hostile" (issue 7, SPEC §9): to be folded into the
-- next upgrade script.  Not installed (the Makefile installs only
-- sql/workqueue--*.sql).  The function bodies are those of 0.4 plus the
-- lines marked "-- hostile"; if 0.5 changes a body too, keep both.
--
-- What and why (doc/hostile-input.md):
--   * names of queues, workflows, sources, calendars and role members are
--     limited to 255 bytes, external ids to 2048 bytes (the C side --
--     workflow steps and transitions, upsert_items, actors -- already
--     checks).  A longer compressible name used to be accepted and then
--     break every add() of the queue ("payload string too long"), or be
--     refused by btree as "index row requires ... bytes";
--   * add() refuses an empty external id, as upsert_items() does;
--   * create_queue() refuses a lease_timeout above 1 year (one of 1000000
--     years made every claim() fail with "timestamp out of range") and says
--     "workflow name must not be null" instead of 'workflow "<NULL>" does not
--     exist';
--   * _queue(NULL) says "queue name must not be null" (22004), as
--     missing_ids() and upsert_items() do, instead of 'queue "<NULL>" does
--     not exist' -- for every function that takes a queue;
--   * workflow_graph(..., 'mermaid') looks step positions up in a jsonb
--     object: its join took 90 s for a 20,000-step workflow;
--   * _dot_id() qualifies its function and operators: it is neither
--     SECURITY DEFINER nor pinned, and a caller's search_path
--     (evil, pg_catalog) replaced replace() and ||.
--
-- test/pgtap/91_hostile_pending.sql checks all of this; it fails until this
-- file is in the installed version.

\echo Use "ALTER EXTENSION workqueue UPDATE" to load this file. \quit

-- hostile: the length checks, in C (src/limits.c)
CREATE FUNCTION workqueue._check_name(what text, name text) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_check_name';
CREATE FUNCTION workqueue._check_external_id(external_id text) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_check_external_id';

CREATE OR REPLACE FUNCTION workqueue._queue(name text) RETURNS workqueue.queue
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q workqueue.queue;
BEGIN
    IF _queue.name IS NULL THEN                                         -- hostile
        RAISE EXCEPTION 'queue name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO q FROM workqueue.queue WHERE queue.name = _queue.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', _queue.name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;';
    END IF;
    RETURN q;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.workflow_graph(name text, version int DEFAULT NULL, format text DEFAULT 'dot')
    RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    wv workqueue.workflow_version;
    out text;
    pos jsonb;
BEGIN
    SELECT * INTO wv FROM workqueue.workflow_version
     WHERE workflow = workflow_graph.name
       AND version = coalesce(workflow_graph.version,
                              (SELECT current_version FROM workqueue.workflow w WHERE w.name = workflow_graph.name));
    IF NOT FOUND THEN
        RAISE EXCEPTION '%', CASE WHEN workflow_graph.version IS NULL
                                  THEN format('workflow "%s" does not exist', workflow_graph.name)
                                  ELSE format('workflow "%s" version %s does not exist',
                                              workflow_graph.name, workflow_graph.version) END
            USING ERRCODE = 'undefined_object',
                  HINT = 'List workflows with: SELECT workflow, version FROM workqueue.workflow_version;';
    END IF;

    IF workflow_graph.format = 'dot' THEN
        -- DOT ids are always double-quoted, with " and \ escaped
        SELECT format(E'digraph %s {\n  rankdir=LR;\n', workqueue._dot_id(wv.workflow))
            || string_agg(format(E'  %s [shape=%s%s];\n', workqueue._dot_id(s.name),
                                 CASE WHEN s.kind = 'work' THEN 'box' ELSE 'doublecircle' END,
                                 CASE WHEN s.is_start THEN ', style=bold' ELSE '' END), '' ORDER BY s.position)
          INTO out
          FROM workqueue.workflow_step s WHERE s.workflow = wv.workflow AND s.version = wv.version;
        SELECT out || coalesce(string_agg(format(E'  %s -> %s [label=%s];\n', workqueue._dot_id(e.from_step),
                                                 workqueue._dot_id(e.to_step), workqueue._dot_id(e.name)),
                                          '' ORDER BY e.ord), '') || '}'
          INTO out
          FROM workqueue._workflow_edges(wv.definition) e;
    ELSIF workflow_graph.format = 'mermaid' THEN
        -- states get ids s1, s2, ... and their names as labels
        SELECT E'stateDiagram-v2\n'
            || string_agg(format(E'  state "%s" as s%s\n', replace(s.name, '"', '#quot;'), s.position),
                          '' ORDER BY s.position)
            || format(E'  [*] --> s%s\n', (SELECT position FROM workqueue.workflow_step x
                                             WHERE x.workflow = wv.workflow AND x.version = wv.version AND x.is_start))
          INTO out
          FROM workqueue.workflow_step s WHERE s.workflow = wv.workflow AND s.version = wv.version;
        -- hostile: the positions come from one jsonb object; joining the
        -- edges with workflow_step twice was planned as nested loops
        -- without statistics: 90 s for 20,000 steps
        SELECT jsonb_object_agg(s.name, s.position) INTO pos
          FROM workqueue.workflow_step s WHERE s.workflow = wv.workflow AND s.version = wv.version;
        SELECT out || coalesce(string_agg(format(E'  s%s --> s%s: %s\n', pos->>e.from_step, pos->>e.to_step,
                                                 replace(replace(e.name, '"', '#quot;'), ':', '#colon;')),
                                          '' ORDER BY e.ord), '')
          INTO out
          FROM workqueue._workflow_edges(wv.definition) e;
        SELECT out || coalesce(string_agg(format(E'  s%s --> [*]\n', s.position), '' ORDER BY s.position), '')
          INTO out
          FROM workqueue.workflow_step s
         WHERE s.workflow = wv.workflow AND s.version = wv.version AND s.kind <> 'work';
        out := rtrim(out, E'\n');
    ELSE
        RAISE EXCEPTION 'unrecognized graph format "%"', coalesce(workflow_graph.format, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''dot'' or ''mermaid''.';
    END IF;
    RETURN out;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.define_workflow(name text, definition jsonb) RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    start text;
    v int;
BEGIN
    PERFORM workqueue._require_admin('define workflows');
    IF define_workflow.name IS NULL OR define_workflow.name = '' THEN
        RAISE EXCEPTION 'workflow name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM workqueue._check_name('workflow', define_workflow.name);    -- hostile
    start := workqueue._validate_workflow(define_workflow.definition);

    INSERT INTO workqueue.workflow (name, created_by) VALUES (define_workflow.name, workqueue._caller())
        ON CONFLICT (name) DO NOTHING;
    UPDATE workqueue.workflow SET current_version = current_version + 1
     WHERE name = define_workflow.name RETURNING current_version INTO v;

    INSERT INTO workqueue.workflow_version (workflow, version, definition, start_step, created_by)
    VALUES (define_workflow.name, v, define_workflow.definition, start, workqueue._caller());

    INSERT INTO workqueue.workflow_step (workflow, version, position, name, kind, role, weight,
                                         is_start, pauses_sla, escalate_to)
    SELECT define_workflow.name, v, s.ord::int, s.step->>'name', coalesce(s.step->>'kind', 'work'),
           s.step->>'role', coalesce((s.step->>'weight')::float8, 1),
           coalesce((s.step->>'start')::boolean, false), coalesce((s.step->>'pauses_sla')::boolean, false),
           s.step->>'escalate_to'
      FROM jsonb_array_elements(define_workflow.definition->'steps') WITH ORDINALITY AS s(step, ord);
    RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION workqueue._dot_id(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$
    -- hostile: qualified, so that a caller's search_path cannot replace them
    SELECT '"' OPERATOR(pg_catalog.||) pg_catalog.replace(pg_catalog.replace(name, '\', '\\'), '"', '\"')
           OPERATOR(pg_catalog.||) '"'
$$;

CREATE OR REPLACE FUNCTION workqueue.add_member(role text, member text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('manage role members');
    IF add_member.role IS NULL OR add_member.role = '' OR add_member.member IS NULL OR add_member.member = '' THEN
        RAISE EXCEPTION 'role and member must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM workqueue._check_name('role', add_member.role);              -- hostile
    PERFORM workqueue._check_name('member', add_member.member);          -- hostile
    INSERT INTO workqueue.role_member (role, member) VALUES (add_member.role, add_member.member)
        ON CONFLICT (role, member) DO UPDATE SET active = true;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.create_queue(name text, workflow text DEFAULT 'review', sla_policy text DEFAULT NULL,
                                       lease_timeout interval DEFAULT '15 minutes')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('create queues');
    IF create_queue.name IS NULL OR create_queue.name = '' THEN
        RAISE EXCEPTION 'queue name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM workqueue._check_name('queue', create_queue.name);           -- hostile
    IF create_queue.workflow IS NULL THEN                                -- hostile
        RAISE EXCEPTION 'workflow name must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave workflow out for the built-in ''review''.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM workqueue.workflow WHERE name = create_queue.workflow) THEN
        RAISE EXCEPTION 'workflow "%" does not exist', create_queue.workflow
            USING ERRCODE = 'undefined_object',
                  HINT = 'Define it with workqueue.define_workflow() or use the built-in ''review''.';
    END IF;
    IF create_queue.sla_policy IS NOT NULL THEN
        RAISE EXCEPTION 'sla policies are not available in this version'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Queue "%s" was given sla_policy "%s".', create_queue.name, create_queue.sla_policy),
                  HINT = 'Create the queue without an sla_policy.';
    END IF;
    IF create_queue.lease_timeout IS NULL OR create_queue.lease_timeout <= interval '0' THEN
        RAISE EXCEPTION 'lease_timeout must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', coalesce(create_queue.lease_timeout::text, 'NULL'));
    END IF;
    IF create_queue.lease_timeout > interval '1 year' THEN               -- hostile
        RAISE EXCEPTION 'lease_timeout must be at most 1 year'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', create_queue.lease_timeout),
                  HINT = 'Workers that need longer extend their lease with workqueue.extend_lease().';
    END IF;
    IF EXISTS (SELECT 1 FROM workqueue.queue WHERE name = create_queue.name) THEN
        RAISE EXCEPTION 'queue "%" already exists', create_queue.name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Pick another name; queues are never dropped by workqueue.';
    END IF;
    INSERT INTO workqueue.queue (name, workflow, sla_policy, lease_timeout, created_by)
    VALUES (create_queue.name, create_queue.workflow, create_queue.sla_policy, create_queue.lease_timeout,
            workqueue._caller());
END
$$;

CREATE OR REPLACE FUNCTION workqueue.add(queue text, data jsonb DEFAULT '{}', priority int DEFAULT 3,
                              external_id text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(add.queue);
    wv workqueue.workflow_version;
    new_id bigint;
    existing bigint;
BEGIN
    IF add.priority IS NULL OR add.priority NOT BETWEEN 1 AND 5 THEN
        RAISE EXCEPTION 'priority % is out of range', coalesce(add.priority::text, 'NULL')
            USING ERRCODE = 'numeric_value_out_of_range',
                  DETAIL = 'Priorities run from 1 (highest) to 5 (lowest).',
                  HINT = 'Pass a priority between 1 and 5.';
    END IF;
    IF add.data IS NULL OR jsonb_typeof(add.data) <> 'object' THEN
        RAISE EXCEPTION 'item data must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is of type %s.', coalesce(jsonb_typeof(add.data), 'NULL')),
                  HINT = 'Wrap the value in an object, e.g. {"value": ...}.';
    END IF;
    PERFORM workqueue._check_external_id(add.external_id);              -- hostile
    IF add.external_id IS NOT NULL THEN
        SELECT id INTO existing FROM workqueue.item WHERE queue = q.name AND external_id = add.external_id;
        IF FOUND THEN
            RAISE EXCEPTION 'external id "%" already exists in queue "%"', add.external_id, q.name
                USING ERRCODE = 'unique_violation',
                      DETAIL = format('It belongs to item %s.', existing),
                      HINT = 'Use workqueue.upsert_items() to insert-or-update by external id.';
        END IF;
    END IF;
    SELECT v.* INTO wv FROM workqueue.workflow w
      JOIN workqueue.workflow_version v ON v.workflow = w.name AND v.version = w.current_version
     WHERE w.name = q.workflow;

    INSERT INTO workqueue.item (queue, external_id, step, status, priority, data, workflow, workflow_version)
    VALUES (q.name, add.external_id, wv.start_step, 'open', add.priority, add.data, wv.workflow, wv.version)
    RETURNING id INTO new_id;
    PERFORM workqueue._event(q.name, new_id, workqueue._caller(), 'created', NULL, wv.start_step,
                             jsonb_build_object('priority', add.priority, 'external_id', add.external_id,
                                                'workflow', wv.workflow, 'workflow_version', wv.version));
    RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.create_source(name text, queue text, ids_url text, details_url text,
                                        options jsonb DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('create sources');
    IF create_source.name IS NULL OR create_source.name = '' THEN
        RAISE EXCEPTION 'source name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM workqueue._check_name('source', create_source.name);         -- hostile
    PERFORM workqueue._queue(create_source.queue);
    PERFORM workqueue._check_source(create_source.ids_url, create_source.details_url,
                                    coalesce(create_source.options, '{}'));
    IF EXISTS (SELECT 1 FROM workqueue.source WHERE name = create_source.name) THEN
        RAISE EXCEPTION 'source "%" already exists', create_source.name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change it with workqueue.alter_source().';
    END IF;
    INSERT INTO workqueue.source (name, queue, ids_url, details_url, options, created_by)
    VALUES (create_source.name, create_source.queue, create_source.ids_url, create_source.details_url,
            coalesce(create_source.options, '{}'), workqueue._caller());
END
$$;

CREATE OR REPLACE FUNCTION workqueue.create_calendar(name text, timezone text, hours jsonb,
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
    PERFORM workqueue._check_name('calendar', create_calendar.name);     -- hostile
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
