-- Workflows: immutable versions, transitions (C: src/workflow/transition.c),
-- what happens when an item enters a step, and graphs.  Rules:
-- doc/workflows.md.

-- Validates a workflow definition (C); returns the start step's name.
CREATE OR REPLACE FUNCTION workqueue._validate_workflow(definition jsonb) RETURNS text
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'workqueue_validate_workflow';

CREATE OR REPLACE FUNCTION workqueue.define_workflow(name text, definition jsonb) RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    start text;
    v int;
BEGIN
    PERFORM workqueue._require_admin('define workflows');
    PERFORM workqueue._require_name('workflow', define_workflow.name);
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

-- A transition, in C: see src/transition.c for the rules it enforces.
CREATE OR REPLACE FUNCTION workqueue.transition(item bigint, transition text, payload jsonb DEFAULT '{}',
                                     actor text DEFAULT current_user)
    RETURNS workqueue.item
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_transition';

CREATE OR REPLACE FUNCTION workqueue.transition_many(items bigint[], transition text, payload jsonb DEFAULT '{}',
                                          actor text DEFAULT current_user)
    RETURNS int
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_transition_many';

CREATE OR REPLACE FUNCTION workqueue._allowed_transitions(item bigint, actor text) RETURNS text[]
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_allowed_transitions';

CREATE OR REPLACE FUNCTION workqueue.allowed_transitions(item bigint, actor text DEFAULT current_user)
    RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.unnest(workqueue._allowed_transitions(item, actor))
$$;

-- One row per (transition, from step), in definition order.
CREATE OR REPLACE FUNCTION workqueue._workflow_edges(definition jsonb)
    RETURNS TABLE (ord bigint, name text, from_step text, to_step text)
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT row_number() OVER (ORDER BY t.ord, f.ord), t.t->>'name', f.x, t.t->>'to'
      FROM jsonb_array_elements(definition->'transitions') WITH ORDINALITY AS t(t, ord),
           LATERAL jsonb_array_elements_text(CASE jsonb_typeof(t.t->'from') WHEN 'array' THEN t.t->'from'
                                                  ELSE jsonb_build_array(t.t->'from') END)
                   WITH ORDINALITY AS f(x, ord)
$$;

CREATE OR REPLACE FUNCTION workqueue._dot_id(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$
    -- hostile: qualified, so that a caller's search_path cannot replace them
    SELECT '"' OPERATOR(pg_catalog.||) pg_catalog.replace(pg_catalog.replace(name, '\', '\\'), '"', '\"')
           OPERATOR(pg_catalog.||) '"'
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
    IF workflow_graph.name IS NULL THEN
        RAISE EXCEPTION 'workflow name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
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

-- What happens to items that have just been created in, or moved into,
-- their current step: their SLA clock starts or moves and they are
-- assigned, with one write per item, then an "assigned" event per new
-- assignee.  Called by add(), upsert_items() and the transitions, in their
-- transaction, with the items locked.
CREATE OR REPLACE FUNCTION workqueue._after_enter(ids bigint[], actor text, created boolean) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a_ids bigint[];
    a_members text[];
    a_roles text[];
    a_strategies text[];
    done bigint[];
    written bigint;
BEGIN
    SELECT array_agg(a.id ORDER BY a.id), array_agg(a.member ORDER BY a.id),
           array_agg(a.role ORDER BY a.id), array_agg(a.strategy ORDER BY a.id)
      INTO a_ids, a_members, a_roles, a_strategies
      FROM workqueue._assignments(ids) a;
    done := workqueue._sla_enter(ids, a_ids, a_members, created);
    IF a_ids IS NULL THEN
        RETURN;
    END IF;
    -- the assignments of items whose SLA did not change
    UPDATE workqueue.item i SET assignee = a.member, updated_at = now()
      FROM (SELECT x.id, x.member FROM unnest(a_ids, a_members) AS x(id, member)
              LEFT JOIN unnest(done) AS d(id) ON d.id = x.id
             WHERE d.id IS NULL) a
     WHERE i.id = a.id AND i.assignee IS DISTINCT FROM a.member;
    WITH e AS (
        INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
        SELECT i.queue, i.id, actor, 'assigned', i.step, i.step,
               jsonb_build_object('assignee', a.member, 'role', a.role, 'strategy', a.strategy)
          FROM unnest(a_ids, a_members, a_roles, a_strategies) AS a(id, member, role, strategy)
          JOIN workqueue.item i ON i.id = a.id
         WHERE a.member IS NOT NULL
        RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step)
    SELECT count(*) INTO written FROM e;
END
$$;

REVOKE ALL ON FUNCTION workqueue._after_enter(bigint[], text, boolean) FROM PUBLIC;

-- _after_enter() for moved items on a distributed install (transition.c
-- calls it with the items of one queue, locked): Citus refuses the id-only
-- joins with item and the STABLE functions (business_add, _sla_clock) with
-- column references in the UPDATE, so the items are read from the queue's
-- shard once, the assignments, clocks and due times computed here, on the
-- coordinator, and each item written with constants by a statement routed
-- to its shard (doc/scale-out.md, "SLA timers, calendars and scopes").
CREATE OR REPLACE FUNCTION workqueue._after_enter_citus(ids bigint[], actor text, queue text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    v_ids bigint[];
    v_steps text[];
    v_status text[];
    v_assignee text[];
    v_wf text[];
    v_wfv int[];
    a_ids bigint[] := '{}';
    a_members text[] := '{}';
    a_roles text[] := '{}';
    a_strategies text[] := '{}';
    done bigint[];
    g record;
    pick record;
    k int;
BEGIN
    EXECUTE 'SELECT array_agg(i.id ORDER BY i.id), array_agg(i.step ORDER BY i.id), array_agg(i.status::text ORDER BY i.id),
                    array_agg(i.assignee ORDER BY i.id), array_agg(i.workflow ORDER BY i.id),
                    array_agg(i.workflow_version ORDER BY i.id)
               FROM workqueue.item i WHERE i.queue = $1 AND i.id = ANY ($2)'
       INTO v_ids, v_steps, v_status, v_assignee, v_wf, v_wfv USING queue, ids;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;

    -- the assignments (as _assignments(): an active member of the step's
    -- role keeps the item, anyone else is replaced by the role's pick)
    FOR g IN
        SELECT s.role, array_agg(x.id ORDER BY x.id) AS ids
          FROM unnest(v_ids, v_steps, v_status, v_assignee, v_wf, v_wfv) AS x(id, step, status, assignee, wf, wfv)
          JOIN workqueue.workflow_step s ON s.workflow = x.wf AND s.version = x.wfv AND s.name = x.step
          LEFT JOIN workqueue.role_member m ON m.role = s.role AND m.member = x.assignee AND m.active
         WHERE s.kind = 'work' AND s.role IS NOT NULL AND x.status IN ('open', 'in_progress') AND m.role IS NULL
         GROUP BY s.role ORDER BY s.role
    LOOP
        pick := workqueue._pick_members(g.role, cardinality(g.ids));
        a_ids := a_ids || g.ids;
        a_members := a_members || coalesce(pick.members, array_fill(NULL::text, ARRAY[cardinality(g.ids)]));
        a_roles := a_roles || array_fill(g.role, ARRAY[cardinality(g.ids)]);
        a_strategies := a_strategies || array_fill(pick.strategy, ARRAY[cardinality(g.ids)]);
    END LOOP;

    -- the SLA clocks, written with the assignments
    done := workqueue._sla_enter_citus(queue, ids, a_ids, a_members);
    IF cardinality(a_ids) = 0 THEN
        RETURN;
    END IF;

    -- the assignments of items whose SLA did not change, then the events
    FOR k IN 1 .. cardinality(a_ids) LOOP
        CONTINUE WHEN a_ids[k] = ANY (done);
        EXECUTE 'UPDATE workqueue.item SET assignee = $3, updated_at = $4
                  WHERE queue = $1 AND id = $2 AND assignee IS DISTINCT FROM $3'
            USING queue, a_ids[k], a_members[k], now();
    END LOOP;
    FOR k IN 1 .. cardinality(a_ids) LOOP
        CONTINUE WHEN a_members[k] IS NULL;
        PERFORM workqueue._event(queue, a_ids[k], actor, 'assigned', v_steps[array_position(v_ids, a_ids[k])],
                                 v_steps[array_position(v_ids, a_ids[k])],
                                 jsonb_build_object('assignee', a_members[k], 'role', a_roles[k],
                                                    'strategy', a_strategies[k]));
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION workqueue._after_enter_citus(bigint[], text, text) FROM PUBLIC;

-- The built-in workflow every queue starts with (installed once: an upgrade,
-- which runs this file again, finds it).  Once for a cluster
-- (src/scale/cluster.sql).
SELECT workqueue._cluster_command($cmd$SELECT workqueue.define_workflow('review', $${
  "steps": [
    {"name": "review", "start": true},
    {"name": "resolved", "kind": "resolved"},
    {"name": "rejected", "kind": "rejected"}],
  "transitions": [
    {"name": "resolve", "from": "review", "to": "resolved"},
    {"name": "reject",  "from": "review", "to": "rejected"},
    {"name": "reopen",  "from": ["resolved", "rejected"], "to": "review", "reopen": true}]
}$$)
 WHERE NOT EXISTS (SELECT 1 FROM workqueue.workflow WHERE name = 'review')$cmd$);
SELECT workqueue._cluster_command($$UPDATE workqueue.workflow_version SET builtin = true
                                     WHERE workflow = 'review' AND version = 1 AND NOT builtin$$);

-- A workflow's current version is its newest: define_workflow() sets it,
-- and this trigger keeps it so when versions come in any other way -- the
-- rows of a pg_restore.  The built-in "review" row is made by CREATE
-- EXTENSION and not dumped; the versions of a "review" redefined by the
-- user are, and restoring them moves its current_version up with them
-- (doc/operations.md, "Backup and restore").  The normal path matches no
-- row (define_workflow has already set the version): no extra write.
CREATE OR REPLACE FUNCTION workqueue._workflow_version_added() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE workqueue.workflow SET current_version = NEW.version
     WHERE name = NEW.workflow AND current_version < NEW.version;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION workqueue._workflow_version_added() FROM PUBLIC;

-- Not on a distributed install (src/scale/scale.sql): Citus refuses triggers
-- on reference tables, and a distributed install is restored the Citus way.
-- (distribute() dropped it there; even DROP TRIGGER IF EXISTS on a reference
-- table is refused, and would stop every update of a distributed install.)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus') THEN
        DROP TRIGGER IF EXISTS workflow_version_added ON workqueue.workflow_version;
        CREATE TRIGGER workflow_version_added AFTER INSERT ON workqueue.workflow_version
            FOR EACH ROW EXECUTE FUNCTION workqueue._workflow_version_added();
    END IF;
END
$$;
