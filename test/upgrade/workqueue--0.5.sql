-- workqueue 0.5 as released: the install script 0.1 followed by the upgrade scripts
-- 0.1--0.2 ... 0.4--0.5, concatenated unchanged (git 4c790bb).  A test fixture:
-- test/upgrade.sh installs it to prove that 0.5 + ALTER EXTENSION UPDATE equals a fresh install.
\echo Use "CREATE EXTENSION workqueue VERSION '0.5'" to load this file. \quit

-- ==== workqueue--0.1.sql ====
-- workqueue 0.1: queues, items, audit events and versioned workflows.
--
-- Layout of this script: roles, tables, internal helpers, workflow
-- definition, queue and item API.  Every function that changes data is
-- SECURITY DEFINER with a pinned search_path; ordinary roles get SELECT on
-- the tables and EXECUTE on the API, never direct write access, so the audit
-- trail in item_event cannot be bypassed or rewritten.
--
-- Keys are ready for Citus: everything tied to an item carries "queue" and
-- every primary, unique and foreign key on those tables includes it.


DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'workqueue_admin') THEN
        CREATE ROLE workqueue_admin NOLOGIN;
    END IF;
    -- members may pass another person's name as worker/actor (applications)
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'workqueue_agent') THEN
        CREATE ROLE workqueue_agent NOLOGIN;
    END IF;
END
$$;

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

CREATE TABLE workqueue.workflow (
    name            text PRIMARY KEY CHECK (name <> ''),
    current_version int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL DEFAULT current_user
);

-- Immutable: rows are only ever inserted (by define_workflow).
CREATE TABLE workqueue.workflow_version (
    workflow    text NOT NULL REFERENCES workqueue.workflow (name),
    version     int NOT NULL CHECK (version > 0),
    definition  jsonb NOT NULL,
    start_step  text NOT NULL,
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (workflow, version)
);

-- The steps of each version, unpacked from the definition for SQL use.
CREATE TABLE workqueue.workflow_step (
    workflow    text NOT NULL,
    version     int NOT NULL,
    position    int NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('work', 'resolved', 'rejected')),
    role        text,
    weight      double precision NOT NULL DEFAULT 1,
    is_start    boolean NOT NULL DEFAULT false,
    pauses_sla  boolean NOT NULL DEFAULT false,
    escalate_to text,
    PRIMARY KEY (workflow, version, name),
    FOREIGN KEY (workflow, version) REFERENCES workqueue.workflow_version (workflow, version)
);

CREATE TABLE workqueue.queue (
    name          text PRIMARY KEY CHECK (name <> ''),
    workflow      text NOT NULL DEFAULT 'review' REFERENCES workqueue.workflow (name),
    sla_policy    text,
    lease_timeout interval NOT NULL DEFAULT '15 minutes' CHECK (lease_timeout > interval '0'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL DEFAULT current_user
);

CREATE TABLE workqueue.item (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    queue            text NOT NULL REFERENCES workqueue.queue (name),
    external_id      text,
    source           text,
    parent_id        bigint,
    step             text NOT NULL,
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'in_progress', 'resolved', 'rejected', 'closed')),
    priority         smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    assignee         text,
    claimed_by       text,
    lease_until      timestamptz,
    data             jsonb NOT NULL DEFAULT '{}',
    notes            jsonb NOT NULL DEFAULT '{}',
    scope            text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    due_at           timestamptz,
    sla_paused_at    timestamptz,
    last_seen_at     timestamptz,
    workflow         text NOT NULL,
    workflow_version int NOT NULL,
    PRIMARY KEY (queue, id),
    UNIQUE (queue, external_id),
    FOREIGN KEY (queue, parent_id) REFERENCES workqueue.item (queue, id),
    FOREIGN KEY (workflow, workflow_version) REFERENCES workqueue.workflow_version (workflow, version),
    CHECK ((status = 'in_progress') = (claimed_by IS NOT NULL))
);
CREATE INDEX item_id_idx ON workqueue.item (id);
-- inbox order: priority 1 first, then oldest; serves claim and list_items
CREATE INDEX item_inbox_idx ON workqueue.item (queue, status, priority, created_at, id);
CREATE INDEX item_lease_idx ON workqueue.item (queue, lease_until) WHERE status = 'in_progress';
-- a queue table: every claim leaves a dead index entry at the head of the
-- inbox until vacuum, so vacuum it early
ALTER TABLE workqueue.item SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

-- Append-only audit trail.  Written only by the API functions (never by
-- triggers, so it distributes with the item); ordinary roles may read it.
CREATE TABLE workqueue.item_event (
    id        bigint GENERATED ALWAYS AS IDENTITY,
    queue     text NOT NULL,
    item_id   bigint NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),  -- when it was written
    actor     text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('created', 'synced', 'claimed', 'released', 'lease_expired',
                    'transition', 'comment', 'field_update', 'assigned', 'sla_warning', 'sla_breach',
                    'escalated', 'upstream_closed', 'upstream_reopened', 'fetch_completed', 'fetch_failed')),
    from_step text,
    to_step   text,
    payload   jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (queue, id),
    FOREIGN KEY (queue, item_id) REFERENCES workqueue.item (queue, id)
);
CREATE INDEX item_event_item_idx ON workqueue.item_event (queue, item_id, id);

-- Assignment pools of workflow roles ("reviewer", "coordinator", ...).
-- Members are names, not necessarily database roles.  Removing a member
-- only deactivates the row.
CREATE TABLE workqueue.role_member (
    role      text NOT NULL CHECK (role <> ''),
    member    text NOT NULL CHECK (member <> ''),
    active    boolean NOT NULL DEFAULT true,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, member)
);

-- pg_dump keeps user data; the built-in workflow is recreated by the script.
SELECT pg_catalog.pg_extension_config_dump('workqueue.workflow', 'WHERE name <> ''review''');
SELECT pg_catalog.pg_extension_config_dump('workqueue.workflow_version', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('workqueue.workflow_step', 'WHERE NOT (workflow = ''review'' AND version = 1)');
SELECT pg_catalog.pg_extension_config_dump('workqueue.queue', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.item', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.item_event', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.role_member', '');

------------------------------------------------------------------------------
-- Internal helpers
------------------------------------------------------------------------------

-- The role that called into workqueue: the session's current role outside
-- any SECURITY DEFINER function (current_user inside them is the owner).
CREATE FUNCTION workqueue._caller() RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'workqueue_caller';

-- Is this database role an administrator of workqueue: a superuser or a
-- member of workqueue_admin?  Defaults to the caller.  (C, system caches.)
CREATE FUNCTION workqueue.is_admin(who text DEFAULT NULL) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_is_admin';

-- Does "actor" act with administrator rights?  Only if it names an
-- administrator and is either the caller itself or named by an
-- administrator: acting as someone else never gains rights.
CREATE FUNCTION workqueue._actor_is_admin(actor text) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_actor_is_admin';

CREATE FUNCTION workqueue._require_admin(what text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT workqueue.is_admin() THEN
        RAISE EXCEPTION 'permission denied to %', what
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role "%s" is not a workqueue administrator.', workqueue._caller()),
                  HINT = 'Ask an administrator to run: GRANT workqueue_admin TO ' || quote_ident(workqueue._caller()) || ';';
    END IF;
END
$$;

-- Appends one audit event and announces it on channel "workqueue".
CREATE FUNCTION workqueue._event(queue text, item bigint, actor text, kind text,
                                 from_step text, to_step text, payload jsonb DEFAULT '{}')
    RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    event_id bigint;
BEGIN
    INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
    VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '{}'))
    RETURNING id INTO event_id;
    PERFORM pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
        'item', $2, 'queue', $1, 'kind', $4, 'event', event_id, 'step', $6)::text);
    RETURN event_id;
END
$$;

CREATE FUNCTION workqueue._queue(name text) RETURNS workqueue.queue
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q workqueue.queue;
BEGIN
    SELECT * INTO q FROM workqueue.queue WHERE queue.name = _queue.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'queue "%" does not exist', _queue.name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;';
    END IF;
    RETURN q;
END
$$;

-- Locks and returns an item by id.
CREATE FUNCTION workqueue._item_for_update(id bigint) RETURNS workqueue.item
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    it workqueue.item;
BEGIN
    IF _item_for_update.id IS NULL THEN
        RAISE EXCEPTION 'item id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO it FROM workqueue.item WHERE item.id = _item_for_update.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % does not exist', _item_for_update.id
            USING ERRCODE = 'undefined_object',
                  HINT = 'Look items up with workqueue.list_items() or workqueue.get_items_by_external().';
    END IF;
    RETURN it;
END
$$;

-- Checks a worker/actor argument: not empty, and naming someone other than
-- the caller only if the caller is an administrator or a member of
-- workqueue_agent (an application acting for its users).  (C.)
CREATE FUNCTION workqueue._check_actor(actor text, what text) RETURNS void
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_check_actor';

------------------------------------------------------------------------------
-- Workflows
------------------------------------------------------------------------------

-- Validates a workflow definition (C); returns the start step's name.
CREATE FUNCTION workqueue._validate_workflow(definition jsonb) RETURNS text
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'workqueue_validate_workflow';

CREATE FUNCTION workqueue.define_workflow(name text, definition jsonb) RETURNS int
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
CREATE FUNCTION workqueue.transition(item bigint, transition text, payload jsonb DEFAULT '{}',
                                     actor text DEFAULT current_user)
    RETURNS workqueue.item
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_transition';

CREATE FUNCTION workqueue.transition_many(items bigint[], transition text, payload jsonb DEFAULT '{}',
                                          actor text DEFAULT current_user)
    RETURNS int
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_transition_many';

CREATE FUNCTION workqueue._allowed_transitions(item bigint, actor text) RETURNS text[]
    LANGUAGE c STABLE SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_allowed_transitions';

CREATE FUNCTION workqueue.allowed_transitions(item bigint, actor text DEFAULT current_user)
    RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.unnest(workqueue._allowed_transitions(item, actor))
$$;

-- One row per (transition, from step), in definition order.
CREATE FUNCTION workqueue._workflow_edges(definition jsonb)
    RETURNS TABLE (ord bigint, name text, from_step text, to_step text)
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT row_number() OVER (ORDER BY t.ord, f.ord), t.t->>'name', f.x, t.t->>'to'
      FROM jsonb_array_elements(definition->'transitions') WITH ORDINALITY AS t(t, ord),
           LATERAL jsonb_array_elements_text(CASE jsonb_typeof(t.t->'from') WHEN 'array' THEN t.t->'from'
                                                  ELSE jsonb_build_array(t.t->'from') END)
                   WITH ORDINALITY AS f(x, ord)
$$;

CREATE FUNCTION workqueue._dot_id(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT '"' || replace(replace(name, '\', '\\'), '"', '\"') || '"'
$$;

CREATE FUNCTION workqueue.workflow_graph(name text, version int DEFAULT NULL, format text DEFAULT 'dot')
    RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    wv workqueue.workflow_version;
    out text;
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
        SELECT out || coalesce(string_agg(format(E'  s%s --> s%s: %s\n', f.position, t.position,
                                                 replace(replace(e.name, '"', '#quot;'), ':', '#colon;')),
                                          '' ORDER BY e.ord), '')
          INTO out
          FROM workqueue._workflow_edges(wv.definition) e
          JOIN workqueue.workflow_step f ON f.workflow = wv.workflow AND f.version = wv.version AND f.name = e.from_step
          JOIN workqueue.workflow_step t ON t.workflow = wv.workflow AND t.version = wv.version AND t.name = e.to_step;
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

CREATE FUNCTION workqueue.add_member(role text, member text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('manage role members');
    IF add_member.role IS NULL OR add_member.role = '' OR add_member.member IS NULL OR add_member.member = '' THEN
        RAISE EXCEPTION 'role and member must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO workqueue.role_member (role, member) VALUES (add_member.role, add_member.member)
        ON CONFLICT (role, member) DO UPDATE SET active = true;
END
$$;

CREATE FUNCTION workqueue.remove_member(role text, member text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('manage role members');
    UPDATE workqueue.role_member SET active = false
     WHERE role = remove_member.role AND member = remove_member.member;
    IF NOT FOUND THEN
        RAISE EXCEPTION '"%" is not a member of role "%"', remove_member.member, remove_member.role
            USING ERRCODE = 'undefined_object',
                  HINT = 'List members with: SELECT * FROM workqueue.role_member;';
    END IF;
END
$$;

-- The built-in workflow every queue starts with.
SELECT workqueue.define_workflow('review', $${
  "steps": [
    {"name": "review", "start": true},
    {"name": "resolved", "kind": "resolved"},
    {"name": "rejected", "kind": "rejected"}],
  "transitions": [
    {"name": "resolve", "from": "review", "to": "resolved"},
    {"name": "reject",  "from": "review", "to": "rejected"},
    {"name": "reopen",  "from": ["resolved", "rejected"], "to": "review", "reopen": true}]
}$$);
UPDATE workqueue.workflow_version SET builtin = true WHERE workflow = 'review' AND version = 1;

------------------------------------------------------------------------------
-- Queues and items
------------------------------------------------------------------------------

CREATE FUNCTION workqueue.create_queue(name text, workflow text DEFAULT 'review', sla_policy text DEFAULT NULL,
                                       lease_timeout interval DEFAULT '15 minutes')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('create queues');
    IF create_queue.name IS NULL OR create_queue.name = '' THEN
        RAISE EXCEPTION 'queue name must not be empty' USING ERRCODE = 'invalid_parameter_value';
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

CREATE FUNCTION workqueue.add(queue text, data jsonb DEFAULT '{}', priority int DEFAULT 3,
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

-- Returns items whose lease has passed to the queue ("lease_expired").
CREATE FUNCTION workqueue._expire_leases(queue text) RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n int := 0;
BEGIN
    FOR r IN
        WITH expired AS (
            SELECT i.queue, i.id, i.claimed_by, i.lease_until FROM workqueue.item i
             WHERE i.queue = _expire_leases.queue AND i.status = 'in_progress' AND i.lease_until <= now()
               FOR UPDATE SKIP LOCKED)
        UPDATE workqueue.item i SET status = 'open', claimed_by = NULL, lease_until = NULL, updated_at = now()
          FROM expired e WHERE i.queue = e.queue AND i.id = e.id
        RETURNING i.queue, i.id, i.step, e.claimed_by, e.lease_until
    LOOP
        PERFORM workqueue._event(r.queue, r.id, 'workqueue', 'lease_expired', r.step, r.step,
                                 jsonb_build_object('claimed_by', r.claimed_by, 'lease_until', r.lease_until));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION workqueue.claim(queue text, n int DEFAULT 1, worker text DEFAULT current_user)
    RETURNS SETOF workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp ROWS 1 AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(claim.queue);
BEGIN
    IF claim.n IS NULL OR claim.n < 1 OR claim.n > 10000 THEN
        RAISE EXCEPTION 'cannot claim % items at once', coalesce(claim.n::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass n between 1 and 10000.';
    END IF;
    PERFORM workqueue._check_actor(claim.worker, 'worker');
    PERFORM workqueue._expire_leases(q.name);

    -- one statement: take the items, write their events, announce them
    RETURN QUERY
        WITH c AS (
            SELECT i.queue, i.id FROM workqueue.item i
             WHERE i.queue = q.name AND i.status = 'open'
             ORDER BY i.priority, i.created_at, i.id
             LIMIT claim.n
               FOR UPDATE SKIP LOCKED),
        u AS (
            UPDATE workqueue.item i
               SET status = 'in_progress', claimed_by = claim.worker,
                   lease_until = now() + q.lease_timeout, updated_at = now()
              FROM c WHERE i.queue = c.queue AND i.id = c.id
            RETURNING i.*),
        e AS (
            INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
            SELECT u.queue, u.id, claim.worker, 'claimed', u.step, u.step,
                   jsonb_build_object('lease_until', u.lease_until)
              FROM u
            RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step),
        announced AS (
            SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
                       'item', e.item_id, 'queue', e.queue, 'kind', 'claimed', 'event', e.id,
                       'step', e.to_step)::text)) AS n
              FROM e)
        SELECT u.* FROM u, announced ORDER BY u.priority, u.created_at, u.id;
END
$$;

-- Raises unless "worker" holds a live lease on the item (an administrator
-- acting as itself may act on any claim).
CREATE FUNCTION workqueue._check_holder(it workqueue.item, worker text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF it.status <> 'in_progress' THEN
        RAISE EXCEPTION 'item % is not claimed', it.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its status is "%s".', it.status),
                  HINT = 'Claim it first with workqueue.claim().';
    END IF;
    IF workqueue._actor_is_admin(worker) THEN
        RETURN;
    END IF;
    IF it.claimed_by <> worker THEN
        RAISE EXCEPTION 'item % is claimed by "%"', it.id, it.claimed_by
            USING ERRCODE = 'lock_not_available',
                  DETAIL = format('"%s" does not hold the lease; it runs until %s.', worker, it.lease_until),
                  HINT = 'Only the holder or a workqueue administrator can change this claim.';
    END IF;
    IF it.lease_until <= now() THEN
        RAISE EXCEPTION 'lease of "%" on item % has expired', worker, it.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The lease ended at %s.', it.lease_until),
                  HINT = 'Claim the item again with workqueue.claim(); extend leases before they run out.';
    END IF;
END
$$;

CREATE FUNCTION workqueue.release(item bigint, worker text DEFAULT current_user) RETURNS workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(release.item);
BEGIN
    PERFORM workqueue._check_actor(release.worker, 'worker');
    PERFORM workqueue._check_holder(it, release.worker);
    UPDATE workqueue.item SET status = 'open', claimed_by = NULL, lease_until = NULL, updated_at = now()
     WHERE queue = it.queue AND id = it.id RETURNING * INTO it;
    PERFORM workqueue._event(it.queue, it.id, release.worker, 'released', it.step, it.step);
    RETURN it;
END
$$;

CREATE FUNCTION workqueue.extend_lease(item bigint, by interval, worker text DEFAULT current_user)
    RETURNS workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(extend_lease.item);
BEGIN
    IF extend_lease.by IS NULL OR extend_lease.by <= interval '0' THEN
        RAISE EXCEPTION 'lease extension must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', coalesce(extend_lease.by::text, 'NULL'));
    END IF;
    PERFORM workqueue._check_actor(extend_lease.worker, 'worker');
    PERFORM workqueue._check_holder(it, extend_lease.worker);
    UPDATE workqueue.item SET lease_until = greatest(lease_until, now()) + extend_lease.by, updated_at = now()
     WHERE queue = it.queue AND id = it.id RETURNING * INTO it;
    -- a heartbeat: announced, but not written to the audit trail
    PERFORM pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
        'item', it.id, 'queue', it.queue, 'kind', 'lease_extended', 'lease_until', it.lease_until)::text);
    RETURN it;
END
$$;

CREATE FUNCTION workqueue.comment(item bigint, body text, actor text DEFAULT current_user) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(comment.item);
BEGIN
    PERFORM workqueue._check_actor(comment.actor, 'actor');
    IF comment.body IS NULL OR btrim(comment.body) = '' THEN
        RAISE EXCEPTION 'comment must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE workqueue.item SET updated_at = now() WHERE queue = it.queue AND id = it.id;
    RETURN workqueue._event(it.queue, it.id, comment.actor, 'comment', it.step, it.step,
                            jsonb_build_object('body', comment.body));
END
$$;

CREATE FUNCTION workqueue.update_fields(item bigint, fields jsonb, actor text DEFAULT current_user)
    RETURNS workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(update_fields.item);
    old_values jsonb;
    new_values jsonb;
BEGIN
    PERFORM workqueue._check_actor(update_fields.actor, 'actor');
    IF update_fields.fields IS NULL OR jsonb_typeof(update_fields.fields) <> 'object' THEN
        RAISE EXCEPTION 'fields must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is of type %s.', coalesce(jsonb_typeof(update_fields.fields), 'NULL')),
                  HINT = 'Pass an object of field names and values, e.g. {"resolution": "fixed"}.';
    END IF;
    SELECT jsonb_object_agg(f.key, it.notes->f.key), jsonb_object_agg(f.key, f.value)
      INTO old_values, new_values
      FROM jsonb_each(update_fields.fields) f
     WHERE it.notes->f.key IS DISTINCT FROM f.value OR NOT it.notes ? f.key;
    IF new_values IS NULL THEN
        RETURN it;                  -- nothing changes: no write, no event
    END IF;
    UPDATE workqueue.item SET notes = notes || new_values, updated_at = now()
     WHERE queue = it.queue AND id = it.id RETURNING * INTO it;
    PERFORM workqueue._event(it.queue, it.id, update_fields.actor, 'field_update', it.step, it.step,
                             jsonb_build_object('old', old_values, 'new', new_values));
    RETURN it;
END
$$;

CREATE FUNCTION workqueue.list_items(queue text, status text DEFAULT 'open', first int DEFAULT NULL,
                                     after bigint DEFAULT NULL)
    RETURNS SETOF workqueue.item
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(list_items.queue);
    lim int := coalesce(list_items.first, current_setting('workqueue.page_size', true)::int, 25);
    cur workqueue.item;
BEGIN
    IF list_items.status IS NULL
       OR list_items.status NOT IN ('open', 'in_progress', 'resolved', 'rejected', 'closed') THEN
        RAISE EXCEPTION 'unrecognized item status "%"', coalesce(list_items.status, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use one of: open, in_progress, resolved, rejected, closed.';
    END IF;
    IF lim < 1 OR lim > 10000 THEN
        RAISE EXCEPTION 'page size % is out of range', lim
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass first between 1 and 10000.';
    END IF;
    IF list_items.after IS NULL THEN
        RETURN QUERY SELECT * FROM workqueue.item i
                      WHERE i.queue = q.name AND i.status = list_items.status
                      ORDER BY i.priority, i.created_at, i.id LIMIT lim;
        RETURN;
    END IF;
    SELECT * INTO cur FROM workqueue.item i WHERE i.queue = q.name AND i.id = list_items.after;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % is not in queue "%"', list_items.after, q.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass as "after" the id of the last item of the previous page.';
    END IF;
    RETURN QUERY SELECT * FROM workqueue.item i
                  WHERE i.queue = q.name AND i.status = list_items.status
                    AND (i.priority, i.created_at, i.id) > (cur.priority, cur.created_at, cur.id)
                  ORDER BY i.priority, i.created_at, i.id LIMIT lim;
END
$$;

CREATE FUNCTION workqueue.get_items(ids bigint[]) RETURNS SETOF workqueue.item
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.* FROM unnest(ids) WITH ORDINALITY AS x(id, ord)
      JOIN workqueue.item i ON i.id = x.id
     ORDER BY x.ord
$$;

CREATE FUNCTION workqueue.get_items_by_external(queue text, external_ids text[]) RETURNS SETOF workqueue.item
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(get_items_by_external.queue);
BEGIN
    RETURN QUERY SELECT i.* FROM unnest(get_items_by_external.external_ids) WITH ORDINALITY AS x(eid, ord)
                   JOIN workqueue.item i ON i.queue = q.name AND i.external_id = x.eid
                  ORDER BY x.ord;
END
$$;

CREATE FUNCTION workqueue.history(item bigint) RETURNS SETOF workqueue.item_event
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q text;
BEGIN
    SELECT i.queue INTO q FROM workqueue.item i WHERE i.id = history.item;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % does not exist', coalesce(history.item::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Look items up with workqueue.list_items() or workqueue.get_items_by_external().';
    END IF;
    RETURN QUERY SELECT * FROM workqueue.item_event e
                  WHERE e.queue = q AND e.item_id = history.item ORDER BY e.id DESC;
END
$$;

------------------------------------------------------------------------------
-- Privileges: read for everyone, writes only through the API above.
------------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA workqueue FROM PUBLIC;
GRANT USAGE ON SCHEMA workqueue TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA workqueue TO PUBLIC;
REVOKE ALL ON FUNCTION workqueue._event(text, bigint, text, text, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION workqueue._expire_leases(text) FROM PUBLIC;
GRANT ALL ON ALL TABLES IN SCHEMA workqueue TO workqueue_admin;
REVOKE UPDATE, DELETE, TRUNCATE ON workqueue.item_event, workqueue.workflow_version, workqueue.workflow_step
    FROM workqueue_admin;

-- ==== workqueue--0.1--0.2.sql ====
-- workqueue 0.1 -> 0.2: upstream sync.
--
-- Sources describe an external API that lists open cases; sync runs,
-- executed by the background worker, keep a queue in step with it.


CREATE TABLE workqueue.source (
    name        text PRIMARY KEY CHECK (name <> ''),
    queue       text NOT NULL REFERENCES workqueue.queue (name),
    ids_url     text NOT NULL,
    details_url text,
    options     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT current_user,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workqueue.sync_run (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        text NOT NULL REFERENCES workqueue.source (name),
    "full"        boolean NOT NULL DEFAULT false,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    triggered_by  text NOT NULL,
    retry_of      bigint REFERENCES workqueue.sync_run (id),
    queued_at     timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    phase         text,
    ids_seen      int NOT NULL DEFAULT 0,
    missing       int NOT NULL DEFAULT 0,
    inserted      int NOT NULL DEFAULT 0,
    updated       int NOT NULL DEFAULT 0,
    unchanged     int NOT NULL DEFAULT 0,
    closed        int NOT NULL DEFAULT 0,
    reopened      int NOT NULL DEFAULT 0,
    errors        int NOT NULL DEFAULT 0,
    pages         int NOT NULL DEFAULT 0,
    batches_total int NOT NULL DEFAULT 0,
    batches_done  int NOT NULL DEFAULT 0,
    error         text,
    error_samples jsonb NOT NULL DEFAULT '[]',
    worker_pid    int
);
CREATE INDEX sync_run_active_idx ON workqueue.sync_run (source, id) WHERE status IN ('queued', 'running');
CREATE INDEX sync_run_source_idx ON workqueue.sync_run (source, id);

-- the open items of a source, for closing what vanished upstream
CREATE INDEX item_source_idx ON workqueue.item (queue, source) WHERE status IN ('open', 'in_progress');

SELECT pg_catalog.pg_extension_config_dump('workqueue.source', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.sync_run', '');

------------------------------------------------------------------------------
-- Diffing and upserting (C: src/diff.c, src/upsert.c)
------------------------------------------------------------------------------

-- External ids of "ids" that have no item in the queue, in input order,
-- each once; NULLs ignored.  A NULL array gives no rows.
CREATE FUNCTION workqueue.missing_ids(queue text, ids text[]) RETURNS SETOF text
    LANGUAGE c STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    ROWS 1000
    AS 'MODULE_PATHNAME', 'workqueue_missing_ids';

-- Payload of a "synced" event: old and new values of what changed (C).
CREATE FUNCTION workqueue._sync_payload(old_data jsonb, new_data jsonb, old_priority smallint,
                                        new_priority smallint) RETURNS jsonb
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'workqueue_sync_payload';

-- Inserts new items and updates changed ones from a JSON array of
-- {"external_id": ..., "priority": ..., "data": {...}}; unchanged items are
-- not written at all.
CREATE FUNCTION workqueue.upsert_items(queue text, items jsonb, source text DEFAULT NULL)
    RETURNS TABLE (inserted int, updated int, unchanged int)
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    -- JIT only slows a write of this shape down (by half a second at 100k items)
    SET jit = off
    ROWS 1
    AS 'MODULE_PATHNAME', 'workqueue_upsert_items';

REVOKE ALL ON FUNCTION workqueue._sync_payload(jsonb, jsonb, smallint, smallint) FROM PUBLIC;

------------------------------------------------------------------------------
-- Sources
------------------------------------------------------------------------------

-- Validates a source definition (C: the same parser the worker uses).
CREATE FUNCTION workqueue._check_source(ids_url text, details_url text, options jsonb) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'workqueue_check_source';

CREATE FUNCTION workqueue.create_source(name text, queue text, ids_url text, details_url text,
                                        options jsonb DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('create sources');
    IF create_source.name IS NULL OR create_source.name = '' THEN
        RAISE EXCEPTION 'source name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
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

CREATE FUNCTION workqueue.alter_source(name text, changes jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    s workqueue.source;
    opts jsonb;
BEGIN
    PERFORM workqueue._require_admin('alter sources');
    SELECT * INTO s FROM workqueue.source WHERE name = alter_source.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', alter_source.name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_source().';
    END IF;
    IF alter_source.changes IS NULL OR jsonb_typeof(alter_source.changes) <> 'object' THEN
        RAISE EXCEPTION 'changes must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass e.g. {"ids_url": "...", "batch_size": 50}; a null option value removes the option.';
    END IF;
    IF changes ? 'queue' THEN
        s.queue := (workqueue._queue(changes->>'queue')).name;
    END IF;
    IF changes ? 'ids_url' THEN
        s.ids_url := changes->>'ids_url';
    END IF;
    IF changes ? 'details_url' THEN
        s.details_url := changes->>'details_url';
    END IF;
    opts := jsonb_strip_nulls(s.options || (changes - 'queue' - 'ids_url' - 'details_url'));
    PERFORM workqueue._check_source(s.ids_url, s.details_url, opts);
    UPDATE workqueue.source
       SET queue = s.queue, ids_url = s.ids_url, details_url = s.details_url, options = opts,
           updated_at = now()
     WHERE name = s.name;
END
$$;

------------------------------------------------------------------------------
-- Sync runs
------------------------------------------------------------------------------

-- Wakes this database's worker when the current transaction commits.
CREATE FUNCTION workqueue._wake() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'workqueue_wake';

CREATE FUNCTION workqueue.sync(source text, "full" boolean DEFAULT false, force boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    run_id bigint;
BEGIN
    -- serialize requests per source so that two callers cannot both queue
    PERFORM 1 FROM workqueue.source WHERE name = sync.source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', coalesce(sync.source, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_source(), or list sources with: SELECT name FROM workqueue.source;';
    END IF;
    IF NOT coalesce(sync.force, false) THEN
        SELECT id INTO run_id FROM workqueue.sync_run
         WHERE source = sync.source AND status IN ('queued', 'running')
         ORDER BY id LIMIT 1;
        IF FOUND THEN
            RETURN run_id;
        END IF;
    END IF;
    INSERT INTO workqueue.sync_run (source, "full", triggered_by)
    VALUES (sync.source, coalesce(sync."full", false), workqueue._caller())
    RETURNING id INTO run_id;
    PERFORM workqueue._wake();
    RETURN run_id;
END
$$;

CREATE FUNCTION workqueue.wait(run bigint, timeout interval DEFAULT '10 minutes')
    RETURNS workqueue.sync_run
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r workqueue.sync_run;
    deadline timestamptz := clock_timestamp() + coalesce(wait.timeout, '10 minutes');
    last_note text := '';
    note text;
BEGIN
    LOOP
        SELECT * INTO r FROM workqueue.sync_run WHERE id = wait.run;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'sync run % does not exist', coalesce(wait.run::text, 'NULL')
                USING ERRCODE = 'undefined_object',
                      HINT = 'sync() returns the run id; recent runs: SELECT * FROM workqueue.sync_run ORDER BY id DESC;';
        END IF;
        note := format('run %s %s: %s ids listed, %s missing, batches %s/%s, inserted %s, updated %s, unchanged %s, closed %s, errors %s',
                       r.id, coalesce(r.phase, r.status), r.ids_seen, r.missing, r.batches_done, r.batches_total,
                       r.inserted, r.updated, r.unchanged, r.closed, r.errors);
        IF r.status = 'running' AND r.batches_done > 0 AND r.batches_total > r.batches_done THEN
            note := note || format(', about %s s left',
                round(extract(epoch FROM clock_timestamp() - r.started_at)
                      * (r.batches_total - r.batches_done) / r.batches_done));
        END IF;
        IF note <> last_note AND r.status <> 'queued' THEN
            RAISE NOTICE '%', note;
            last_note := note;
        END IF;
        EXIT WHEN r.status IN ('completed', 'failed');
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'sync run % did not finish within %', r.id, wait.timeout
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('It is %s.', coalesce(r.phase, r.status)),
                      HINT = 'Wait again, or check that the workqueue worker runs for this database (workqueue.databases).';
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN r;
END
$$;

CREATE FUNCTION workqueue.schedule_sync(source text, cron text, "full" boolean DEFAULT false) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    job bigint;
BEGIN
    PERFORM workqueue._require_admin('schedule syncs');
    IF NOT EXISTS (SELECT 1 FROM workqueue.source WHERE name = schedule_sync.source) THEN
        RAISE EXCEPTION 'source "%" does not exist', coalesce(schedule_sync.source, 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'Create it with workqueue.create_source().';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Database "%s" has no extension pg_cron.', current_database()),
                  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database and run CREATE EXTENSION pg_cron.';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
       INTO job
      USING 'workqueue sync ' || schedule_sync.source, schedule_sync.cron,
            format('SELECT workqueue.sync(%L, "full" => %s)', schedule_sync.source,
                   CASE WHEN schedule_sync."full" THEN 'true' ELSE 'false' END);
    RETURN job;
END
$$;

-- Worker side (called by the background worker through SPI) ---------------

CREATE FUNCTION workqueue._claim_run() RETURNS bigint
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    UPDATE workqueue.sync_run
       SET status = 'running', started_at = now(), phase = 'listing', worker_pid = pg_backend_pid()
     WHERE id = (SELECT id FROM workqueue.sync_run WHERE status = 'queued'
                  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id
$$;

-- Runs left "running" by a worker that died are failed, and re-queued once.
CREATE FUNCTION workqueue._recover_runs() RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n int;
BEGIN
    WITH dead AS (
        UPDATE workqueue.sync_run
           SET status = 'failed', finished_at = now(), phase = NULL,
               error = 'interrupted by server restart'
         WHERE status = 'running'
        RETURNING id, source, "full", triggered_by, retry_of)
    INSERT INTO workqueue.sync_run (source, "full", triggered_by, retry_of)
    SELECT source, "full", triggered_by, id FROM dead WHERE retry_of IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION workqueue._fail_run(run bigint, message text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    UPDATE workqueue.sync_run SET status = 'failed', finished_at = now(), phase = NULL, error = message
     WHERE id = run AND status IN ('queued', 'running')
$$;

-- Listed again: closed items of the source go back to "open" at their step.
CREATE FUNCTION workqueue._reopen_listed(queue text, source text, ids text[]) RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n int := 0;
BEGIN
    FOR r IN
        UPDATE workqueue.item i SET status = 'open', updated_at = now(), last_seen_at = now()
         WHERE i.queue = _reopen_listed.queue AND i.status = 'closed'
           AND i.external_id = ANY (_reopen_listed.ids)
        RETURNING i.queue, i.id, i.step
    LOOP
        PERFORM workqueue._event(r.queue, r.id, _reopen_listed.source, 'upstream_reopened', r.step, r.step,
                                 jsonb_build_object('source', _reopen_listed.source));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Closes the source's open items that the listing did not name (and that
-- the details endpoint did not confirm as open: "keep").
CREATE FUNCTION workqueue._close_unlisted(queue text, source text, listed text[], keep text[] DEFAULT '{}')
    RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n int := 0;
BEGIN
    FOR r IN
        WITH gone AS (
            SELECT i.queue, i.id, i.status, i.claimed_by, i.lease_until
              FROM workqueue.item i
             WHERE i.queue = _close_unlisted.queue AND i.source = _close_unlisted.source
               AND i.status IN ('open', 'in_progress')
               AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.listed) AS l(x) WHERE l.x = i.external_id)
               AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.keep) AS k(x) WHERE k.x = i.external_id)
               FOR UPDATE OF i)
        UPDATE workqueue.item i
           SET status = 'closed', claimed_by = NULL, lease_until = NULL, updated_at = now()
          FROM gone g WHERE i.queue = g.queue AND i.id = g.id
        RETURNING i.queue, i.id, i.step, g.status AS old_status, g.claimed_by, g.lease_until
    LOOP
        PERFORM workqueue._event(r.queue, r.id, _close_unlisted.source, 'upstream_closed', r.step, r.step,
                                 jsonb_strip_nulls(jsonb_build_object(
                                     'source', _close_unlisted.source, 'old_status', r.old_status,
                                     'claimed_by', r.claimed_by, 'lease_until', r.lease_until)));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------

-- Source options may hold API tokens (headers): only administrators read them.
REVOKE ALL ON workqueue.source FROM PUBLIC;
GRANT ALL ON workqueue.source, workqueue.sync_run TO workqueue_admin;
GRANT SELECT ON workqueue.sync_run TO PUBLIC;
CREATE VIEW workqueue.sources AS
    SELECT name, queue, ids_url, details_url, options - 'headers' AS options,
           options ? 'headers' AS has_headers, created_at, created_by, updated_at
      FROM workqueue.source;
GRANT SELECT ON workqueue.sources TO PUBLIC;
REVOKE ALL ON FUNCTION workqueue._claim_run(), workqueue._recover_runs(), workqueue._fail_run(bigint, text),
    workqueue._reopen_listed(text, text, text[]), workqueue._close_unlisted(text, text, text[], text[])
    FROM PUBLIC;

-- ==== workqueue--0.2--0.3.sql ====
-- workqueue 0.2 -> 0.3: background enrichment fetches, lease expiry by the
-- worker, and views for the DBA.


-- One HTTP request for one item.  The failed rows are the dead-letter queue.
CREATE TABLE workqueue.fetch (
    queue           text NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    item_id         bigint NOT NULL,
    source          text NOT NULL REFERENCES workqueue.source (name),
    url             text NOT NULL,
    body            text,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    attempts        int NOT NULL DEFAULT 0,
    max_attempts    int NOT NULL CHECK (max_attempts > 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    http_status     int,
    error           text,
    requested_by    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    worker_pid      int,
    PRIMARY KEY (queue, id),
    FOREIGN KEY (queue, item_id) REFERENCES workqueue.item (queue, id)
);
-- at most one queued or processing fetch per item
CREATE UNIQUE INDEX fetch_active_idx ON workqueue.fetch (queue, item_id) WHERE status IN ('queued', 'processing');
CREATE INDEX fetch_due_idx ON workqueue.fetch (next_attempt_at) WHERE status = 'queued';
CREATE INDEX fetch_failed_idx ON workqueue.fetch (source, finished_at) WHERE status = 'failed';
CREATE INDEX fetch_id_idx ON workqueue.fetch (id);
-- leases that run out, across queues, for the worker
CREATE INDEX item_lease_due_idx ON workqueue.item (lease_until) WHERE status = 'in_progress';

SELECT pg_catalog.pg_extension_config_dump('workqueue.fetch', '');
GRANT SELECT ON workqueue.fetch TO PUBLIC;
GRANT ALL ON workqueue.fetch TO workqueue_admin;

-- Percent-encodes a string for a URL (C).
CREATE FUNCTION workqueue._url_encode(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'workqueue_url_encode';

-- Wakes this database's fetch worker when the transaction commits (C).
CREATE FUNCTION workqueue._wake_fetch() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'workqueue_wake_fetch';

CREATE FUNCTION workqueue.enqueue_fetch(item bigint, source text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(enqueue_fetch.item);
    s workqueue.source;
    fetch_id bigint;
BEGIN
    SELECT * INTO s FROM workqueue.source WHERE name = coalesce(enqueue_fetch.source, it.source);
    IF NOT FOUND THEN
        IF coalesce(enqueue_fetch.source, it.source) IS NULL THEN
            RAISE EXCEPTION 'item % has no source', it.id
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Name the source to fetch from: workqueue.enqueue_fetch(item, ''source'').';
        END IF;
        RAISE EXCEPTION 'source "%" does not exist', enqueue_fetch.source
            USING ERRCODE = 'undefined_object', HINT = 'Create it with workqueue.create_source().';
    END IF;
    IF s.details_url IS NULL THEN
        RAISE EXCEPTION 'source "%" has no details_url', s.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Enrichment fetches ask the details endpoint; set one with workqueue.alter_source().';
    END IF;
    IF it.external_id IS NULL THEN
        RAISE EXCEPTION 'item % has no external id', it.id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Only items with an external id can be fetched from a source.';
    END IF;
    SELECT id INTO fetch_id FROM workqueue.fetch f
     WHERE f.queue = it.queue AND f.item_id = it.id AND f.status IN ('queued', 'processing');
    IF FOUND THEN
        RETURN fetch_id;            -- one queued or processing fetch per item
    END IF;
    INSERT INTO workqueue.fetch (queue, item_id, source, url, body, max_attempts, requested_by)
    VALUES (it.queue, it.id, s.name,
            CASE WHEN upper(coalesce(s.options->>'details_method', 'GET')) = 'POST' THEN s.details_url
                 ELSE replace(s.details_url, '{ids}', workqueue._url_encode(it.external_id)) END,
            CASE WHEN upper(coalesce(s.options->>'details_method', 'GET')) = 'POST'
                 THEN jsonb_build_array(it.external_id)::text END,
            1 + coalesce((s.options->>'retries')::int, 3), workqueue._caller())
    RETURNING id INTO fetch_id;
    PERFORM workqueue._wake_fetch();
    RETURN fetch_id;
END
$$;

CREATE FUNCTION workqueue.retry_fetches(source text DEFAULT NULL, since timestamptz DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n int;
BEGIN
    PERFORM workqueue._require_admin('retry fetches');
    UPDATE workqueue.fetch f
       SET status = 'queued', attempts = 0, next_attempt_at = now(), error = NULL, http_status = NULL,
           finished_at = NULL, started_at = NULL
     WHERE f.status = 'failed'
       AND (retry_fetches.source IS NULL OR f.source = retry_fetches.source)
       AND (retry_fetches.since IS NULL OR f.finished_at >= retry_fetches.since)
       AND NOT EXISTS (SELECT 1 FROM workqueue.fetch g
                        WHERE g.queue = f.queue AND g.item_id = f.item_id AND g.status IN ('queued', 'processing'))
       AND f.id = (SELECT max(h.id) FROM workqueue.fetch h
                    WHERE h.queue = f.queue AND h.item_id = f.item_id AND h.status = 'failed');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM workqueue._wake_fetch();
    END IF;
    RETURN n;
END
$$;

CREATE FUNCTION workqueue.cancel_fetch(id bigint) RETURNS workqueue.fetch
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    f workqueue.fetch;
BEGIN
    SELECT * INTO f FROM workqueue.fetch g WHERE g.id = cancel_fetch.id FOR UPDATE OF g;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fetch % does not exist', coalesce(cancel_fetch.id::text, 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'List fetches with: SELECT * FROM workqueue.fetch;';
    END IF;
    IF f.status <> 'queued' THEN
        RAISE EXCEPTION 'fetch % is %, not queued', f.id, f.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only queued fetches can be cancelled; one in flight finishes on its own.';
    END IF;
    UPDATE workqueue.fetch g SET status = 'cancelled', finished_at = now(), error = 'cancelled by ' || workqueue._caller()
     WHERE g.queue = f.queue AND g.id = f.id RETURNING g.* INTO f;
    RETURN f;
END
$$;

-- Worker side ---------------------------------------------------------------

-- Takes up to n due fetches (processing, attempt counted).
CREATE FUNCTION workqueue._claim_fetches(n int)
    RETURNS TABLE (queue text, id bigint, item_id bigint, source text, url text, body text,
                   attempts int, max_attempts int, external_id text)
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH due AS (
        SELECT f.queue, f.id FROM workqueue.fetch f
         WHERE f.status = 'queued' AND f.next_attempt_at <= now()
         ORDER BY f.next_attempt_at, f.id
         LIMIT n FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE workqueue.fetch f
           SET status = 'processing', attempts = f.attempts + 1, started_at = now(),
               worker_pid = pg_backend_pid()
          FROM due WHERE f.queue = due.queue AND f.id = due.id
        RETURNING f.queue, f.id, f.item_id, f.source, f.url, f.body, f.attempts, f.max_attempts)
    SELECT t.queue, t.id, t.item_id, t.source, t.url, t.body, t.attempts, t.max_attempts, i.external_id
      FROM taken t JOIN workqueue.item i ON i.queue = t.queue AND i.id = t.item_id
$$;

-- When the next queued fetch falls due (NULL if none).
CREATE FUNCTION workqueue._next_fetch_at() RETURNS timestamptz
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT min(next_attempt_at) FROM workqueue.fetch WHERE status = 'queued'
$$;

-- At worker start: fetches a dead worker left in flight go back to the queue.
CREATE FUNCTION workqueue._requeue_fetches() RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n int;
BEGIN
    UPDATE workqueue.fetch SET status = 'queued', next_attempt_at = now(), worker_pid = NULL
     WHERE status = 'processing';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Completed fetches of one queue and source: their records upserted with one
-- call, the fetches marked, a fetch_completed event each.
CREATE FUNCTION workqueue._fetches_completed(queue text, source text, items jsonb, fetch_ids bigint[],
                                             http_statuses int[])
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    announced bigint;
BEGIN
    PERFORM * FROM workqueue.upsert_items(_fetches_completed.queue, _fetches_completed.items,
                                          _fetches_completed.source);
    WITH done AS (
        UPDATE workqueue.fetch g
           SET status = 'completed', http_status = x.s, error = NULL, finished_at = now()
          FROM unnest(_fetches_completed.fetch_ids, _fetches_completed.http_statuses) AS x(id, s)
         WHERE g.queue = _fetches_completed.queue AND g.id = x.id
        RETURNING g.queue, g.id, g.item_id, x.s),
    e AS (
        INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
        SELECT i.queue, i.id, _fetches_completed.source, 'fetch_completed', i.step, i.step,
               jsonb_build_object('fetch', done.id, 'http_status', done.s)
          FROM done JOIN workqueue.item i ON i.queue = done.queue AND i.id = done.item_id
        RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step)
    SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
               'item', e.item_id, 'queue', e.queue, 'kind', 'fetch_completed', 'event', e.id,
               'step', e.to_step)::text))
      INTO announced
      FROM e;
END
$$;

-- A failed attempt: queued again after delay_ms, or failed for good.
CREATE FUNCTION workqueue._fetch_failed(queue text, id bigint, http_status int, error text, retry boolean,
                                        delay_ms bigint)
    RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    f workqueue.fetch;
    it workqueue.item;
BEGIN
    SELECT * INTO f FROM workqueue.fetch g WHERE g.queue = _fetch_failed.queue AND g.id = _fetch_failed.id;
    IF _fetch_failed.retry AND f.attempts < f.max_attempts THEN
        UPDATE workqueue.fetch g
           SET status = 'queued', http_status = _fetch_failed.http_status, error = _fetch_failed.error,
               next_attempt_at = now() + make_interval(secs => _fetch_failed.delay_ms / 1000.0)
         WHERE g.queue = f.queue AND g.id = f.id;
        RETURN;
    END IF;
    UPDATE workqueue.fetch g
       SET status = 'failed', http_status = _fetch_failed.http_status, error = _fetch_failed.error, finished_at = now()
     WHERE g.queue = f.queue AND g.id = f.id;
    SELECT * INTO it FROM workqueue.item i WHERE i.queue = f.queue AND i.id = f.item_id;
    PERFORM workqueue._event(it.queue, it.id, f.source, 'fetch_failed', it.step, it.step,
                             jsonb_strip_nulls(jsonb_build_object('fetch', f.id, 'http_status', _fetch_failed.http_status,
                                                'error', _fetch_failed.error, 'attempts', f.attempts)));
END
$$;

-- Returns every item whose lease has run out to its queue.
CREATE FUNCTION workqueue._expire_all_leases() RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text;
    n int := 0;
BEGIN
    FOR q IN SELECT DISTINCT i.queue FROM workqueue.item i
              WHERE i.status = 'in_progress' AND i.lease_until <= now()
    LOOP
        n := n + workqueue._expire_leases(q);
    END LOOP;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION workqueue._claim_fetches(int), workqueue._requeue_fetches(),
    workqueue._fetches_completed(text, text, jsonb, bigint[], int[]),
    workqueue._fetch_failed(text, bigint, int, text, boolean, bigint), workqueue._expire_all_leases()
    FROM PUBLIC;

-- For the DBA -----------------------------------------------------------------

-- The workers of this cluster, from shared memory (C).
CREATE FUNCTION workqueue._workers(OUT database text, OUT kind text, OUT pid int, OUT started_at timestamptz,
                                   OUT last_loop_at timestamptz, OUT jobs_done bigint, OUT in_flight int)
    RETURNS SETOF record
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_workers';

CREATE VIEW workqueue.worker_status AS
    SELECT w.database, w.kind, w.pid, w.started_at, w.last_loop_at, w.jobs_done, w.in_flight,
           (SELECT count(*) FROM workqueue.fetch WHERE status = 'queued') AS fetches_queued,
           (SELECT count(*) FROM workqueue.fetch WHERE status = 'processing') AS fetches_processing,
           (SELECT count(*) FROM workqueue.fetch
             WHERE status = 'failed' AND finished_at > now() - interval '1 hour') AS fetches_failed_last_hour,
           (SELECT f.error FROM workqueue.fetch f WHERE f.status = 'failed' ORDER BY f.finished_at DESC LIMIT 1)
               AS last_fetch_error,
           (SELECT r.error FROM workqueue.sync_run r WHERE r.status = 'failed' ORDER BY r.finished_at DESC LIMIT 1)
               AS last_sync_error,
           least((SELECT min(next_attempt_at) FROM workqueue.fetch WHERE status = 'queued'),
                 (SELECT min(lease_until) FROM workqueue.item WHERE status = 'in_progress')) AS next_timer
      FROM workqueue._workers() w
     WHERE w.database = current_database();

CREATE VIEW workqueue.queue_stats AS
    SELECT q.name AS queue,
           count(i.id) FILTER (WHERE i.status = 'open') AS open,
           count(i.id) FILTER (WHERE i.status = 'in_progress') AS in_progress,
           count(i.id) FILTER (WHERE i.status IN ('resolved', 'rejected')) AS done,
           count(i.id) FILTER (WHERE i.status = 'closed') AS closed,
           now() - min(i.created_at) FILTER (WHERE i.status = 'open') AS oldest_open_age,
           count(i.id) FILTER (WHERE i.status IN ('open', 'in_progress') AND i.due_at < now()) AS breached
      FROM workqueue.queue q LEFT JOIN workqueue.item i ON i.queue = q.name
     GROUP BY q.name;
GRANT SELECT ON workqueue.worker_status, workqueue.queue_stats TO PUBLIC;

-- ==== workqueue--0.3--0.4.sql ====
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

-- ==== workqueue--0.4--0.5.sql ====
-- workqueue 0.4 -> 0.5: SLA policies, timers and assignment (SPEC §5, §6),
-- row-level security by scope (SPEC §8).
--
-- An SLA policy gives each priority a target in working time of a calendar.
-- When an item is created in a queue with a policy, it pins the policy's and
-- the calendar's current versions and its target; the clock then runs in
-- working steps, stops in steps that pause the SLA and in terminal steps.
-- The fetch worker fires the timers (sla_warning, sla_breach, escalation)
-- from an index on item.sla_next_at.  Assignment gives an item entering a
-- step with a role to a member of that role's pool, by the role's strategy.
-- Exact rules: doc/sla.md ("SLA policies") and doc/workflows.md
-- ("Assignment").


------------------------------------------------------------------------------
-- Hostile input (SPEC §9, doc/hostile-input.md): names of queues,
-- workflows, sources, calendars and role members are limited to 255 bytes,
-- external ids to 2048; _queue(NULL) is 22004; workflow_graph's mermaid
-- output no longer joins quadratically; _dot_id does not depend on the
-- caller's search_path.  create_queue() and add() get the same checks
-- where 0.5 redefines them below.
------------------------------------------------------------------------------

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

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

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

-- How each role's pool hands out work, and its round-robin counter.
CREATE TABLE workqueue.role_assignment (
    role        text PRIMARY KEY CHECK (role <> ''),
    strategy    text NOT NULL DEFAULT 'round_robin' CHECK (strategy IN ('round_robin', 'least_loaded')),
    assigned    bigint NOT NULL DEFAULT 0,      -- items handed out so far
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text NOT NULL DEFAULT current_user
);
SELECT pg_catalog.pg_extension_config_dump('workqueue.role_assignment', '');

-- the cursor of round robin: when the member last got an item (in units of
-- role_assignment.assigned), and how many it got
ALTER TABLE workqueue.role_member
    ADD COLUMN last_assigned bigint,
    ADD COLUMN assigned_count bigint NOT NULL DEFAULT 0;

-- An item's SLA: the versions and target it pinned, and its clock.  The
-- clock is running while sla_clock_from is set (working time since then
-- adds to sla_elapsed), paused while sla_paused_at is set, stopped when
-- neither is.  sla_level counts the thresholds (warn_at..., 100) fired;
-- sla_next_at is when the next one is due.
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
    ADD COLUMN step_due_at          timestamptz,
    ADD FOREIGN KEY (sla_policy, sla_policy_version) REFERENCES workqueue.sla_policy (name, version),
    ADD FOREIGN KEY (sla_calendar, sla_calendar_version) REFERENCES workqueue.calendar (name, version);

-- The inbox index split in two partial indexes, for the open and the done
-- statuses: a query by (queue, id) alone -- the foreign-key checks of every
-- event, fetch and child item -- can use neither, so it always takes the
-- primary key.  (With the whole inbox index, which ends in id, the planner
-- could pick it for those checks on a new or small table, and then scan the
-- queue's whole index range for every event of a big first load.)
DROP INDEX workqueue.item_inbox_idx;
CREATE INDEX item_inbox_idx ON workqueue.item (queue, status, priority, created_at, id)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX item_done_idx ON workqueue.item (queue, status, priority, created_at, id)
    WHERE status IN ('resolved', 'rejected', 'closed');

-- the timer index: the worker reads the next due instant from it
CREATE INDEX item_sla_timer_idx ON workqueue.item (sla_next_at) WHERE sla_next_at IS NOT NULL;
-- least_loaded counts each member's open items
CREATE INDEX item_assignee_idx ON workqueue.item (assignee)
    WHERE assignee IS NOT NULL AND status IN ('open', 'in_progress');
-- children of a parent (and the parent foreign key's checks)
CREATE INDEX item_parent_idx ON workqueue.item (queue, parent_id) WHERE parent_id IS NOT NULL;

-- a recompute_sla() that moved an item's due time
ALTER TABLE workqueue.item_event DROP CONSTRAINT item_event_kind_check;
ALTER TABLE workqueue.item_event ADD CONSTRAINT item_event_kind_check
    CHECK (kind IN ('created', 'synced', 'claimed', 'released', 'lease_expired',
                    'transition', 'comment', 'field_update', 'assigned', 'sla_warning', 'sla_breach',
                    'escalated', 'upstream_closed', 'upstream_reopened', 'fetch_completed', 'fetch_failed',
                    'sla_recomputed'));

------------------------------------------------------------------------------
-- SLA policies
------------------------------------------------------------------------------

-- Raises unless a calendar of that name exists.
CREATE FUNCTION workqueue._require_calendar(name text, what text) RETURNS void
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

CREATE FUNCTION workqueue.create_sla_policy(name text, calendar text, targets jsonb,
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
    IF create_sla_policy.name IS NULL OR create_sla_policy.name = '' THEN
        RAISE EXCEPTION 'sla policy name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
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

CREATE FUNCTION workqueue._check_calendar_by(calendar_by jsonb) RETURNS void
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
CREATE FUNCTION workqueue._sla_calendar(calendar_by jsonb, data jsonb, fallback text) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN calendar_by IS NULL THEN fallback
                ELSE coalesce(calendar_by->'map'->>(pg_catalog.jsonb_path_query_first(data,
                                  (calendar_by->>'path')::pg_catalog.jsonpath, '{}', true) #>> '{}'),
                              calendar_by->>'default', fallback) END
$$;

-- The working time on an item's SLA clock now: what it had when the clock
-- last stopped, plus, while it runs, the working time since clock_from.
CREATE FUNCTION workqueue._sla_clock(elapsed interval, clock_from timestamptz, calendar text, version int)
    RETURNS interval
    LANGUAGE sql STABLE AS $$
    SELECT elapsed + CASE WHEN clock_from IS NOT NULL
                          THEN workqueue.business_between(clock_from, now(), calendar, version)
                          ELSE interval '0' END
$$;

-- The threshold (percent) an item fires next, NULL once the breach fired.
CREATE FUNCTION workqueue._sla_threshold(warn_at int[], level int) RETURNS int
    LANGUAGE sql IMMUTABLE AS $$
    SELECT (warn_at || 100)[level + 1]
$$;

-- The steps of the given items' workflow versions, with each working step's
-- share of the target (weight / sum of the weights of the working steps
-- whose clock runs; NULL for steps that pause the SLA and terminal steps).
CREATE FUNCTION workqueue._step_shares(ids bigint[])
    RETURNS TABLE (workflow text, version int, step text, kind text, pauses_sla boolean, escalate_to text,
                   share double precision)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH v AS (SELECT DISTINCT i.workflow, i.workflow_version AS version
                 FROM unnest(ids) AS x(id) JOIN workqueue.item i ON i.id = x.id)
    SELECT s.workflow, s.version, s.name, s.kind, s.pauses_sla, s.escalate_to,
           CASE WHEN s.kind = 'work' AND NOT s.pauses_sla
                THEN s.weight / nullif(sum(s.weight) FILTER (WHERE s.kind = 'work' AND NOT s.pauses_sla)
                                       OVER (PARTITION BY s.workflow, s.version), 0) END
      FROM v JOIN workqueue.workflow_step s ON s.workflow = v.workflow AND s.version = v.version
$$;

-- Starts the SLA of new items (called by add() and upsert_items() in the
-- transaction that created them): pins the queue's policy, the calendar
-- (calendar_by) and their current versions, the target of the item's
-- priority; starts the clock at created_at, or pauses it if the start step
-- pauses the SLA.  Items whose priority has no target get no SLA.
CREATE FUNCTION workqueue._sla_start(ids bigint[], a_ids bigint[], a_members text[]) RETURNS bigint[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done bigint[];
BEGIN
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
                   workqueue.business_add(y.created_at, y.target * (y.first_pct / 100.0), y.cal, y.calv) END,
           step_due_at = CASE WHEN NOT y.pauses_sla THEN
                   workqueue.business_add(y.created_at, y.target * y.share, y.cal, y.calv) END,
           assignee = CASE WHEN y.reassign THEN y.member ELSE i.assignee END
      FROM y
     WHERE i.queue = y.queue AND i.id = y.id
    RETURNING i.id)
    SELECT array_agg(u.id) INTO done FROM u;
    RETURN done;
END
$$;

-- Moves the SLA clock of items that have just entered their current step
-- (called by transitions, in their transaction, with the items locked).
-- Working step: the clock runs (a paused clock resumes and the due time
-- moves by the paused working time; a stopped one restarts, as after a
-- reopen).  Step that pauses the SLA: the clock stops, due_at keeps the
-- value it had.  Terminal step: the clock stops for good.
CREATE FUNCTION workqueue._sla_move(ids bigint[], a_ids bigint[], a_members text[]) RETURNS bigint[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done bigint[];
BEGIN
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
                   workqueue.business_add(now(), greatest(y.target * (y.next_pct / 100.0) - y.elapsed, interval '0'),
                                          y.cal, y.calv) END,
           step_due_at = CASE WHEN y.runs THEN workqueue.business_add(now(), y.target * y.share, y.cal, y.calv) END,
           assignee = CASE WHEN y.reassign THEN y.member ELSE i.assignee END
      FROM y
     WHERE i.queue = y.queue AND i.id = y.id
    RETURNING i.id)
    SELECT array_agg(u.id) INTO done FROM u;
    RETURN done;
END
$$;

------------------------------------------------------------------------------
-- Assignment
------------------------------------------------------------------------------

CREATE FUNCTION workqueue.assignment_strategy(role text, strategy text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('set assignment strategies');
    IF assignment_strategy.role IS NULL OR assignment_strategy.role = '' THEN
        RAISE EXCEPTION 'role must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF assignment_strategy.strategy IS NULL OR assignment_strategy.strategy NOT IN ('round_robin', 'least_loaded') THEN
        RAISE EXCEPTION 'unrecognized assignment strategy "%"', coalesce(left(assignment_strategy.strategy, 100), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''round_robin'' (members in turn) or ''least_loaded'' (fewest open items).';
    END IF;
    INSERT INTO workqueue.role_assignment (role, strategy, changed_by)
    VALUES (assignment_strategy.role, assignment_strategy.strategy, workqueue._caller())
        ON CONFLICT (role) DO UPDATE SET strategy = excluded.strategy, changed_at = now(),
                                         changed_by = excluded.changed_by;
END
$$;

-- Picks n members of a role's pool by its strategy (NULL if the pool has
-- no active member).  Locks the role's row until the end of the
-- transaction, so concurrent assignments of one role take turns and round
-- robin stays fair.
CREATE FUNCTION workqueue._pick_members(role text, n int, OUT members text[], OUT strategy text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    base bigint;
    names text[];
    loads bigint[];
    k int;
    best int;
BEGIN
    INSERT INTO workqueue.role_assignment AS r (role) VALUES (role) ON CONFLICT ON CONSTRAINT role_assignment_pkey DO NOTHING;
    SELECT r.strategy, r.assigned INTO strategy, base FROM workqueue.role_assignment r WHERE r.role = role FOR UPDATE;

    IF strategy = 'least_loaded' THEN
        SELECT array_agg(m.member ORDER BY m.last_assigned NULLS FIRST, m.member),
               array_agg((SELECT count(*) FROM workqueue.item i
                           WHERE i.assignee = m.member AND i.status IN ('open', 'in_progress'))
                         ORDER BY m.last_assigned NULLS FIRST, m.member)
          INTO names, loads
          FROM workqueue.role_member m WHERE m.role = role AND m.active;
    ELSE
        SELECT array_agg(m.member ORDER BY m.last_assigned NULLS FIRST, m.member) INTO names
          FROM workqueue.role_member m WHERE m.role = role AND m.active;
    END IF;
    IF names IS NULL THEN
        RETURN;
    END IF;
    k := cardinality(names);
    members := array_fill(NULL::text, ARRAY[n]);
    FOR i IN 1..n LOOP
        IF strategy = 'least_loaded' THEN
            best := 1;
            FOR j IN 2..k LOOP
                IF loads[j] < loads[best] THEN best := j; END IF;
            END LOOP;
            loads[best] := loads[best] + 1;
            -- the one served rotates to the back of equals
            names := names[1:best - 1] || names[best + 1:k] || names[best];
            loads := loads[1:best - 1] || loads[best + 1:k] || loads[best];
            members[i] := names[k];
        ELSE
            members[i] := names[(i - 1) % k + 1];
        END IF;
    END LOOP;

    UPDATE workqueue.role_assignment r SET assigned = r.assigned + n WHERE r.role = role;
    UPDATE workqueue.role_member m
       SET last_assigned = base + a.last_pos, assigned_count = m.assigned_count + a.cnt
      FROM (SELECT x.member, max(x.pos) AS last_pos, count(*) AS cnt
              FROM unnest(members) WITH ORDINALITY AS x(member, pos) GROUP BY x.member) a
     WHERE m.role = role AND m.member = a.member;
END
$$;

-- The assignments items need that have just entered (or been created in) a
-- working step with a role: an assignee who is an active member of that
-- role keeps the item (no row); anyone else is replaced by a member picked
-- by the role's strategy, or by nobody (member NULL) if the role has no
-- active member.
CREATE FUNCTION workqueue._assignments(ids bigint[])
    RETURNS TABLE (id bigint, role text, member text, strategy text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g record;
    pick record;
BEGIN
    FOR g IN
        SELECT s.role, array_agg(i.id ORDER BY i.id) AS ids
          FROM unnest(ids) AS u(id)
          JOIN workqueue.item i ON i.id = u.id
          JOIN workqueue.workflow_step s
            ON s.workflow = i.workflow AND s.version = i.workflow_version AND s.name = i.step
         WHERE s.kind = 'work' AND s.role IS NOT NULL
           AND i.status IN ('open', 'in_progress')
           AND NOT EXISTS (SELECT 1 FROM workqueue.role_member m
                            WHERE m.role = s.role AND m.member = i.assignee AND m.active)
         GROUP BY s.role ORDER BY s.role
    LOOP
        pick := workqueue._pick_members(g.role, cardinality(g.ids));
        RETURN QUERY SELECT x.id, g.role, x.member, pick.strategy
                       FROM unnest(g.ids, coalesce(pick.members, array_fill(NULL::text, ARRAY[cardinality(g.ids)])))
                            AS x(id, member);
    END LOOP;
END
$$;

-- What happens to items that have just been created in, or moved into,
-- their current step: their SLA clock starts or moves and they are
-- assigned, with one write per item, then an "assigned" event per new
-- assignee.  Called by add(), upsert_items() and the transitions, in their
-- transaction, with the items locked.
CREATE FUNCTION workqueue._after_enter(ids bigint[], actor text, created boolean) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a_ids bigint[];
    a_members text[];
    a_roles text[];
    a_strategies text[];
    done bigint[];
    notified bigint;
BEGIN
    SELECT array_agg(a.id ORDER BY a.id), array_agg(a.member ORDER BY a.id),
           array_agg(a.role ORDER BY a.id), array_agg(a.strategy ORDER BY a.id)
      INTO a_ids, a_members, a_roles, a_strategies
      FROM workqueue._assignments(ids) a;
    IF created THEN
        done := workqueue._sla_start(ids, a_ids, a_members);
    ELSE
        done := workqueue._sla_move(ids, a_ids, a_members);
    END IF;
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
    SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
               'item', e.item_id, 'queue', e.queue, 'kind', 'assigned', 'event', e.id, 'step', e.to_step)::text))
      INTO notified FROM e;
END
$$;

------------------------------------------------------------------------------
-- Timers (run by the fetch worker)
------------------------------------------------------------------------------

-- Fires the SLA thresholds that are due: sla_warning at each warn_at
-- percentage, sla_breach at 100% with escalation to the step's escalate_to
-- role.  Takes at most max_items items (locked, SKIP LOCKED), set-based:
-- one statement writes every threshold event (in order per item, with its
-- NOTIFY) and moves every item to its next threshold, then the breached
-- items are escalated per role.  Returns when the next threshold of any
-- item is due (NULL: none).
CREATE FUNCTION workqueue._fire_sla_timers(max_items int DEFAULT 1000) RETURNS timestamptz
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    esc_ids bigint[];
    esc_roles text[];
    g record;
    pick record;
    notified bigint;
BEGIN
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
    SELECT (SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
                       'item', e.item_id, 'queue', e.queue, 'kind', e.kind, 'event', e.id, 'step', e.to_step)::text))
              FROM e) + (SELECT count(*) FROM u),
           array_agg(f.id ORDER BY f.id) FILTER (WHERE f.pct = 100 AND f.escalate_to IS NOT NULL),
           array_agg(f.escalate_to ORDER BY f.id) FILTER (WHERE f.pct = 100 AND f.escalate_to IS NOT NULL)
      INTO notified, esc_ids, esc_roles
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
        SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
                   'item', e.item_id, 'queue', e.queue, 'kind', 'escalated', 'event', e.id, 'step', e.to_step)::text))
          INTO notified FROM e;
    END LOOP;
    RETURN (SELECT min(i.sla_next_at) FROM workqueue.item i WHERE i.sla_next_at IS NOT NULL);
END
$$;

------------------------------------------------------------------------------
-- Items closed upstream stop their SLA clock; reopened ones restart it
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION workqueue._reopen_listed(queue text, source text, ids text[]) RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n int := 0;
    reopened bigint[] := '{}';
BEGIN
    FOR r IN
        UPDATE workqueue.item i SET status = 'open', updated_at = now(), last_seen_at = now()
          FROM unnest(_reopen_listed.ids) AS l(x)
         WHERE i.queue = _reopen_listed.queue AND i.status = 'closed' AND i.external_id = l.x
        RETURNING i.queue, i.id, i.step
    LOOP
        reopened := reopened || r.id;
        PERFORM workqueue._event(r.queue, r.id, _reopen_listed.source, 'upstream_reopened', r.step, r.step,
                                 jsonb_build_object('source', _reopen_listed.source));
        n := n + 1;
    END LOOP;
    -- the SLA clock runs again where it stopped
    PERFORM workqueue._sla_move(reopened, NULL, NULL);
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION workqueue._close_unlisted(queue text, source text, listed text[], keep text[] DEFAULT '{}')
    RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n int := 0;
BEGIN
    FOR r IN
        WITH gone AS (
            SELECT i.queue, i.id, i.status, i.claimed_by, i.lease_until
              FROM workqueue.item i
             WHERE i.queue = _close_unlisted.queue AND i.source = _close_unlisted.source
               AND i.status IN ('open', 'in_progress')
               AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.listed) AS l(x) WHERE l.x = i.external_id)
               AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.keep) AS k(x) WHERE k.x = i.external_id)
               FOR UPDATE OF i)
        UPDATE workqueue.item i
           SET status = 'closed', claimed_by = NULL, lease_until = NULL, updated_at = now(),
               -- the SLA clock stops (a paused one stays paused) and no timer fires
               sla_elapsed = workqueue._sla_clock(i.sla_elapsed, i.sla_clock_from, i.sla_calendar,
                                                  i.sla_calendar_version),
               sla_clock_from = NULL, sla_next_at = NULL, step_due_at = NULL
          FROM gone g WHERE i.queue = g.queue AND i.id = g.id
        RETURNING i.queue, i.id, i.step, g.status AS old_status, g.claimed_by, g.lease_until
    LOOP
        PERFORM workqueue._event(r.queue, r.id, _close_unlisted.source, 'upstream_closed', r.step, r.step,
                                 jsonb_strip_nulls(jsonb_build_object(
                                     'source', _close_unlisted.source, 'old_status', r.old_status,
                                     'claimed_by', r.claimed_by, 'lease_until', r.lease_until)));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

------------------------------------------------------------------------------
-- Status, report, recompute
------------------------------------------------------------------------------

CREATE FUNCTION workqueue.sla_status(item bigint)
    RETURNS TABLE (due_at timestamptz, elapsed interval, remaining interval, percent numeric,
                   breached boolean, paused boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item;
    el interval;
BEGIN
    SELECT * INTO it FROM workqueue.item i WHERE i.id = sla_status.item;
    IF NOT FOUND OR NOT workqueue._visible(it.scope) THEN
        RAISE EXCEPTION 'item % does not exist', coalesce(sla_status.item::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Look items up with workqueue.list_items() or workqueue.get_items_by_external().';
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

CREATE FUNCTION workqueue.sla_report(queue text, since timestamptz, until timestamptz)
    RETURNS TABLE (priority smallint, items bigint, resolved bigint, met bigint, breached bigint,
                   compliance numeric, median_time_to_resolve interval, p90_time_to_resolve interval)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(sla_report.queue);
    scopes text[] := workqueue._caller_scopes();     -- NULL: all
BEGIN
    IF sla_report.since IS NULL OR sla_report.until IS NULL OR sla_report.since > sla_report.until THEN
        RAISE EXCEPTION 'invalid report period'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The period given runs from %s to %s.', coalesce(sla_report.since::text, 'NULL'),
                                  coalesce(sla_report.until::text, 'NULL')),
                  HINT = 'Pass since <= until; items created in [since, until) are reported.';
    END IF;
    RETURN QUERY
    WITH x AS (
        SELECT i.priority, i.resolved_at IS NOT NULL AS done, i.sla_target,
               -- working time on the SLA clock (pauses excluded); real time without an SLA
               CASE WHEN i.sla_target IS NULL THEN
                        CASE WHEN i.resolved_at IS NOT NULL THEN i.resolved_at - i.created_at END
                    WHEN i.resolved_at IS NOT NULL AND i.sla_clock_from IS NULL AND i.sla_paused_at IS NULL
                        THEN i.sla_elapsed
                    ELSE workqueue._sla_clock(i.sla_elapsed, i.sla_clock_from, i.sla_calendar,
                                              i.sla_calendar_version) END AS elapsed
          FROM workqueue.item i
         WHERE i.queue = q.name AND i.created_at >= sla_report.since AND i.created_at < sla_report.until
           AND i.status <> 'closed' AND (i.scope = '{}' OR scopes IS NULL OR i.scope && scopes))
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
     ORDER BY x.priority;
END
$$;

CREATE FUNCTION workqueue.recompute_sla(queue text, dry_run boolean DEFAULT true)
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
        UPDATE workqueue.item i
           SET sla_policy = CASE WHEN target IS NOT NULL THEN p.name END,
               sla_policy_version = CASE WHEN target IS NOT NULL THEN p.version END,
               sla_calendar = CASE WHEN target IS NOT NULL THEN cal END,
               sla_calendar_version = CASE WHEN target IS NOT NULL THEN calv END,
               sla_target = target, due_at = due, sla_level = lvl,
               sla_elapsed = CASE WHEN target IS NOT NULL THEN el ELSE interval '0' END,
               sla_clock_from = CASE WHEN target IS NOT NULL AND running THEN now() END,
               sla_paused_at = CASE WHEN target IS NOT NULL AND NOT running THEN coalesce(r.sla_paused_at, now()) END,
               sla_next_at = CASE WHEN target IS NOT NULL AND running AND pct IS NOT NULL THEN
                   workqueue.business_add(now(), greatest(target * (pct / 100.0) - el, interval '0'), cal, calv) END,
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

------------------------------------------------------------------------------
-- Queues: an sla_policy at creation, alter_queue later
------------------------------------------------------------------------------

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
    PERFORM workqueue._check_name('queue', create_queue.name);
    IF create_queue.workflow IS NULL THEN
        RAISE EXCEPTION 'workflow name must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave workflow out for the built-in ''review''.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM workqueue.workflow WHERE name = create_queue.workflow) THEN
        RAISE EXCEPTION 'workflow "%" does not exist', create_queue.workflow
            USING ERRCODE = 'undefined_object',
                  HINT = 'Define it with workqueue.define_workflow() or use the built-in ''review''.';
    END IF;
    PERFORM workqueue._require_sla_policy(create_queue.sla_policy);
    IF create_queue.lease_timeout IS NULL OR create_queue.lease_timeout <= interval '0' THEN
        RAISE EXCEPTION 'lease_timeout must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', coalesce(create_queue.lease_timeout::text, 'NULL'));
    END IF;
    IF create_queue.lease_timeout > interval '1 year' THEN
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

CREATE FUNCTION workqueue._require_sla_policy(name text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM workqueue.sla_policy p WHERE p.name = _require_sla_policy.name) THEN
        RAISE EXCEPTION 'sla policy "%" does not exist', name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_sla_policy(), or list policies with: SELECT name, version FROM workqueue.sla_policy;';
    END IF;
END
$$;

-- Changes a queue's sla_policy (NULL: none), lease_timeout or scope (of
-- new items).  Items keep
-- the SLA they started with; workqueue.recompute_sla() moves them.
CREATE FUNCTION workqueue.alter_queue(name text, changes jsonb) RETURNS workqueue.queue
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue;
    k text;
    lt interval;
BEGIN
    PERFORM workqueue._require_admin('alter queues');
    q := workqueue._queue(alter_queue.name);
    IF alter_queue.changes IS NULL OR jsonb_typeof(alter_queue.changes) <> 'object' THEN
        RAISE EXCEPTION 'changes must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass e.g. {"sla_policy": "standard"} or {"lease_timeout": "30 minutes"}.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(alter_queue.changes) LOOP
        IF k NOT IN ('sla_policy', 'lease_timeout', 'scope') THEN
            RAISE EXCEPTION 'queue setting "%" cannot be changed', left(k, 100)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'alter_queue changes "sla_policy", "lease_timeout" and "scope"; a queue''s workflow is fixed.';
        END IF;
    END LOOP;
    IF alter_queue.changes ? 'sla_policy' THEN
        IF jsonb_typeof(alter_queue.changes->'sla_policy') NOT IN ('string', 'null') THEN
            RAISE EXCEPTION 'sla_policy must be a policy name or null' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM workqueue._require_sla_policy(alter_queue.changes->>'sla_policy');
        q.sla_policy := alter_queue.changes->>'sla_policy';
    END IF;
    IF alter_queue.changes ? 'lease_timeout' THEN
        BEGIN
            lt := (alter_queue.changes->>'lease_timeout')::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            lt := NULL;
        END;
        IF lt IS NULL OR lt <= interval '0' THEN
            RAISE EXCEPTION 'lease_timeout must be a positive interval'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given is %s.', left((alter_queue.changes->'lease_timeout')::text, 100));
        END IF;
        IF lt > interval '1 year' THEN
            RAISE EXCEPTION 'lease_timeout must be at most 1 year'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given was %s.', lt),
                      HINT = 'Workers that need longer extend their lease with workqueue.extend_lease().';
        END IF;
        q.lease_timeout := lt;
    END IF;
    IF alter_queue.changes ? 'scope' THEN
        IF jsonb_typeof(alter_queue.changes->'scope') <> 'array'
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(alter_queue.changes->'scope') e
                       WHERE jsonb_typeof(e) <> 'string' OR e = '""') THEN
            RAISE EXCEPTION 'scope must be an array of non-empty names'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass e.g. {"scope": ["emea"]}, or {"scope": []} for everyone.';
        END IF;
        q.scope := ARRAY(SELECT jsonb_array_elements_text(alter_queue.changes->'scope'));
    END IF;
    UPDATE workqueue.queue x SET sla_policy = q.sla_policy, lease_timeout = q.lease_timeout, scope = q.scope
     WHERE x.name = q.name RETURNING * INTO q;
    RETURN q;
END
$$;

------------------------------------------------------------------------------
-- add(): start the SLA and assign
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION workqueue.add(queue text, data jsonb DEFAULT '{}', priority int DEFAULT 3,
                                         external_id text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(add.queue);
    wv workqueue.workflow_version;
    start_role text;
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
    PERFORM workqueue._check_external_id(add.external_id);
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

    -- ON CONFLICT: two racing calls with one external id get this error, not a raw unique violation
    INSERT INTO workqueue.item (queue, external_id, step, status, priority, data, workflow, workflow_version, scope)
    VALUES (q.name, add.external_id, wv.start_step, 'open', add.priority, add.data, wv.workflow, wv.version, q.scope)
        ON CONFLICT (queue, external_id) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN
        SELECT id INTO existing FROM workqueue.item WHERE queue = q.name AND external_id = add.external_id;
        RAISE EXCEPTION 'external id "%" already exists in queue "%"', add.external_id, q.name
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('It belongs to item %s.', existing),
                  HINT = 'Use workqueue.upsert_items() to insert-or-update by external id.';
    END IF;
    PERFORM workqueue._event(q.name, new_id, workqueue._caller(), 'created', NULL, wv.start_step,
                             jsonb_build_object('priority', add.priority, 'external_id', add.external_id,
                                                'workflow', wv.workflow, 'workflow_version', wv.version));
    SELECT s.role INTO start_role FROM workqueue.workflow_step s
     WHERE s.workflow = wv.workflow AND s.version = wv.version AND s.name = wv.start_step;
    IF q.sla_policy IS NOT NULL OR start_role IS NOT NULL THEN
        PERFORM workqueue._after_enter(ARRAY[new_id], workqueue._caller(), true);
    END IF;
    RETURN new_id;
END
$$;

------------------------------------------------------------------------------
-- sync(): the hint for an unknown source names the view everyone may read
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION workqueue.sync(source text, "full" boolean DEFAULT false, force boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    run_id bigint;
BEGIN
    -- serialize requests per source so that two callers cannot both queue
    PERFORM 1 FROM workqueue.source WHERE name = sync.source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', coalesce(sync.source, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_source(), or list sources with: SELECT name FROM workqueue.sources;';
    END IF;
    IF NOT coalesce(sync.force, false) THEN
        SELECT id INTO run_id FROM workqueue.sync_run
         WHERE source = sync.source AND status IN ('queued', 'running')
         ORDER BY id LIMIT 1;
        IF FOUND THEN
            RETURN run_id;
        END IF;
    END IF;
    INSERT INTO workqueue.sync_run (source, "full", triggered_by)
    VALUES (sync.source, coalesce(sync."full", false), workqueue._caller())
    RETURNING id INTO run_id;
    PERFORM workqueue._wake();
    RETURN run_id;
END
$$;

------------------------------------------------------------------------------
-- Scopes: row-level security on items (SPEC §8)
--
-- An item's scope is a text[]; an empty scope is visible to everyone who
-- may use the queue.  A role sees an item with a non-empty scope if one of
-- the item's scopes was granted (grant_scope) to it or to a role it is a
-- member of; administrators see everything.  The check applies to the
-- calling database role (workqueue._caller()), also when it acts for
-- someone else.  Tables read directly are filtered by policies; the API
-- functions (SECURITY DEFINER, so exempt from policies) filter themselves:
-- an item out of scope does not exist for them.
------------------------------------------------------------------------------

CREATE TABLE workqueue.scope_grant (
    role        text NOT NULL,
    scope       text NOT NULL CHECK (scope <> ''),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    granted_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (role, scope)
);
SELECT pg_catalog.pg_extension_config_dump('workqueue.scope_grant', '');

-- the scope new items of a queue get
ALTER TABLE workqueue.queue ADD COLUMN scope text[] NOT NULL DEFAULT '{}';
CREATE INDEX item_scope_idx ON workqueue.item USING gin (scope) WHERE scope <> '{}';

-- The scopes the caller sees items of; NULL for an administrator (all).
CREATE FUNCTION workqueue._caller_scopes() RETURNS text[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN workqueue.is_admin(workqueue._caller()) THEN NULL
                ELSE coalesce((SELECT array_agg(DISTINCT g.scope)
                                 FROM workqueue.scope_grant g JOIN pg_roles r ON r.rolname = g.role
                                WHERE pg_has_role(workqueue._caller(), r.oid, 'MEMBER')), '{}') END
$$;

-- May the caller see an item with this scope?
CREATE FUNCTION workqueue._visible(scope text[]) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT scope = '{}' OR coalesce(scope && workqueue._caller_scopes(), true)
$$;

CREATE FUNCTION workqueue.grant_scope(role text, scope text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('grant scopes');
    IF grant_scope.scope IS NULL OR grant_scope.scope = '' THEN
        RAISE EXCEPTION 'scope must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF grant_scope.role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grant_scope.role) THEN
        RAISE EXCEPTION 'role "%" does not exist', coalesce(left(grant_scope.role, 100), 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Scopes are granted to database roles (or group roles): CREATE ROLE first.';
    END IF;
    INSERT INTO workqueue.scope_grant (role, scope, granted_by)
    VALUES (grant_scope.role, grant_scope.scope, workqueue._caller())
        ON CONFLICT ON CONSTRAINT scope_grant_pkey DO NOTHING;
END
$$;

CREATE FUNCTION workqueue.revoke_scope(role text, scope text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('revoke scopes');
    DELETE FROM workqueue.scope_grant WHERE role = revoke_scope.role AND scope = revoke_scope.scope;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scope "%" is not granted to role "%"', coalesce(left(revoke_scope.scope, 100), 'NULL'),
                        coalesce(left(revoke_scope.role, 100), 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'List grants with: SELECT * FROM workqueue.scope_grant;';
    END IF;
END
$$;

-- Sets the scope of items (a field_update event records old and new).
CREATE FUNCTION workqueue.set_scope(items bigint[], scope text[]) RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n int;
BEGIN
    PERFORM workqueue._require_admin('set scopes');
    IF set_scope.scope IS NULL OR array_position(set_scope.scope, NULL) IS NOT NULL
       OR '' = ANY (set_scope.scope) THEN
        RAISE EXCEPTION 'scope must be an array of non-empty names'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. ''{emea}'', or ''{}'' for everyone.';
    END IF;
    IF set_scope.items IS NULL OR array_position(set_scope.items, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'item array must not be or contain null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(set_scope.items) x(id) WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.id = x.id)) THEN
        RAISE EXCEPTION 'item % does not exist',
            (SELECT x.id FROM unnest(set_scope.items) x(id)
              WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.id = x.id) LIMIT 1)
            USING ERRCODE = 'undefined_object';
    END IF;
    WITH l AS (
        SELECT i.queue, i.id, i.step, i.scope AS old FROM workqueue.item i
         WHERE i.id IN (SELECT unnest(set_scope.items)) AND i.scope IS DISTINCT FROM set_scope.scope
         ORDER BY i.id FOR UPDATE),
    u AS (
        UPDATE workqueue.item i SET scope = set_scope.scope, updated_at = now()
          FROM l WHERE i.queue = l.queue AND i.id = l.id
        RETURNING i.queue, i.id, i.step, l.old),
    e AS (
        INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
        SELECT u.queue, u.id, workqueue._caller(), 'field_update', u.step, u.step,
               jsonb_build_object('old', jsonb_build_object('scope', u.old),
                                  'new', jsonb_build_object('scope', set_scope.scope))
          FROM u
        RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step)
    SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
               'item', e.item_id, 'queue', e.queue, 'kind', 'field_update', 'event', e.id, 'step', e.to_step)::text))
      INTO n FROM e;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION workqueue._item_for_update(id bigint) RETURNS workqueue.item
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    it workqueue.item;
BEGIN
    IF _item_for_update.id IS NULL THEN
        RAISE EXCEPTION 'item id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO it FROM workqueue.item WHERE item.id = _item_for_update.id FOR UPDATE;
    IF NOT FOUND OR NOT workqueue._visible(it.scope) THEN     -- out of the caller's scopes: not there
        RAISE EXCEPTION 'item % does not exist', _item_for_update.id
            USING ERRCODE = 'undefined_object',
                  HINT = 'Look items up with workqueue.list_items() or workqueue.get_items_by_external().';
    END IF;
    RETURN it;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.claim(queue text, n int DEFAULT 1, worker text DEFAULT current_user)
    RETURNS SETOF workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp ROWS 1 AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(claim.queue);
    scopes text[] := workqueue._caller_scopes();     -- NULL: all
BEGIN
    IF claim.n IS NULL OR claim.n < 1 OR claim.n > 10000 THEN
        RAISE EXCEPTION 'cannot claim % items at once', coalesce(claim.n::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass n between 1 and 10000.';
    END IF;
    PERFORM workqueue._check_actor(claim.worker, 'worker');
    PERFORM workqueue._expire_leases(q.name);

    -- one statement: take the items, write their events, announce them
    RETURN QUERY
        WITH c AS (
            SELECT i.queue, i.id FROM workqueue.item i
             WHERE i.queue = q.name AND i.status = 'open'
               AND (i.scope = '{}' OR scopes IS NULL OR i.scope && scopes)
             ORDER BY i.priority, i.created_at, i.id
             LIMIT claim.n
               FOR UPDATE SKIP LOCKED),
        u AS (
            UPDATE workqueue.item i
               SET status = 'in_progress', claimed_by = claim.worker,
                   lease_until = now() + q.lease_timeout, updated_at = now()
              FROM c WHERE i.queue = c.queue AND i.id = c.id
            RETURNING i.*),
        e AS (
            INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
            SELECT u.queue, u.id, claim.worker, 'claimed', u.step, u.step,
                   jsonb_build_object('lease_until', u.lease_until)
              FROM u
            RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step),
        announced AS (
            SELECT count(pg_catalog.pg_notify('workqueue', pg_catalog.json_build_object(
                       'item', e.item_id, 'queue', e.queue, 'kind', 'claimed', 'event', e.id,
                       'step', e.to_step)::text)) AS n
              FROM e)
        SELECT u.* FROM u, announced ORDER BY u.priority, u.created_at, u.id;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.list_items(queue text, status text DEFAULT 'open', first int DEFAULT NULL,
                                     after bigint DEFAULT NULL)
    RETURNS SETOF workqueue.item
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(list_items.queue);
    lim int := coalesce(list_items.first, current_setting('workqueue.page_size', true)::int, 25);
    cur workqueue.item;
    scopes text[] := workqueue._caller_scopes();     -- NULL: all
BEGIN
    IF list_items.status IS NULL
       OR list_items.status NOT IN ('open', 'in_progress', 'resolved', 'rejected', 'closed') THEN
        RAISE EXCEPTION 'unrecognized item status "%"', coalesce(list_items.status, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use one of: open, in_progress, resolved, rejected, closed.';
    END IF;
    IF lim < 1 OR lim > 10000 THEN
        RAISE EXCEPTION 'page size % is out of range', lim
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass first between 1 and 10000.';
    END IF;
    IF list_items.after IS NULL THEN
        RETURN QUERY SELECT * FROM workqueue.item i
                      WHERE i.queue = q.name AND i.status = list_items.status
                        AND (i.scope = '{}' OR scopes IS NULL OR i.scope && scopes)
                      ORDER BY i.priority, i.created_at, i.id LIMIT lim;
        RETURN;
    END IF;
    SELECT * INTO cur FROM workqueue.item i WHERE i.queue = q.name AND i.id = list_items.after;
    IF NOT FOUND OR NOT workqueue._visible(cur.scope) THEN
        RAISE EXCEPTION 'item % is not in queue "%"', list_items.after, q.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass as "after" the id of the last item of the previous page.';
    END IF;
    RETURN QUERY SELECT * FROM workqueue.item i
                  WHERE i.queue = q.name AND i.status = list_items.status
                    AND (i.scope = '{}' OR scopes IS NULL OR i.scope && scopes)
                    AND (i.priority, i.created_at, i.id) > (cur.priority, cur.created_at, cur.id)
                  ORDER BY i.priority, i.created_at, i.id LIMIT lim;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.get_items(ids bigint[]) RETURNS SETOF workqueue.item
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.* FROM unnest(ids) WITH ORDINALITY AS x(id, ord)
      JOIN workqueue.item i ON i.id = x.id
     CROSS JOIN (SELECT workqueue._caller_scopes() AS scopes) c
     WHERE i.scope = '{}' OR c.scopes IS NULL OR i.scope && c.scopes
     ORDER BY x.ord
$$;

CREATE OR REPLACE FUNCTION workqueue.get_items_by_external(queue text, external_ids text[]) RETURNS SETOF workqueue.item
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue := workqueue._queue(get_items_by_external.queue);
    scopes text[] := workqueue._caller_scopes();     -- NULL: all
BEGIN
    RETURN QUERY SELECT i.* FROM unnest(get_items_by_external.external_ids) WITH ORDINALITY AS x(eid, ord)
                   JOIN workqueue.item i ON i.queue = q.name AND i.external_id = x.eid
                  WHERE i.scope = '{}' OR scopes IS NULL OR i.scope && scopes
                  ORDER BY x.ord;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.history(item bigint) RETURNS SETOF workqueue.item_event
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q text;
    sc text[];
BEGIN
    SELECT i.queue, i.scope INTO q, sc FROM workqueue.item i WHERE i.id = history.item;
    IF NOT FOUND OR NOT workqueue._visible(sc) THEN
        RAISE EXCEPTION 'item % does not exist', coalesce(history.item::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Look items up with workqueue.list_items() or workqueue.get_items_by_external().';
    END IF;
    RETURN QUERY SELECT * FROM workqueue.item_event e
                  WHERE e.queue = q AND e.item_id = history.item ORDER BY e.id DESC;
END
$$;

-- Direct reads: items by scope, events and fetches of visible items only.
-- Administrators (workqueue_admin) may read and write everything;
-- superusers, the owner and SECURITY DEFINER functions are exempt.
ALTER TABLE workqueue.item ENABLE ROW LEVEL SECURITY;
CREATE POLICY item_by_scope ON workqueue.item FOR SELECT
    USING (scope = '{}' OR coalesce(scope && (SELECT workqueue._caller_scopes()), true));
CREATE POLICY item_admin ON workqueue.item TO workqueue_admin USING (true) WITH CHECK (true);
ALTER TABLE workqueue.item_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY item_event_by_scope ON workqueue.item_event FOR SELECT
    USING (EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = item_event.queue AND i.id = item_event.item_id));
CREATE POLICY item_event_admin ON workqueue.item_event TO workqueue_admin USING (true) WITH CHECK (true);
ALTER TABLE workqueue.fetch ENABLE ROW LEVEL SECURITY;
CREATE POLICY fetch_by_scope ON workqueue.fetch FOR SELECT
    USING (EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = "fetch".queue AND i.id = "fetch".item_id));
CREATE POLICY fetch_admin ON workqueue.fetch TO workqueue_admin USING (true) WITH CHECK (true);

------------------------------------------------------------------------------
-- remove_member(NULL, ...) says so; a comment of tabs and newlines is blank
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION workqueue.remove_member(role text, member text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('manage role members');
    IF remove_member.role IS NULL OR remove_member.member IS NULL THEN
        RAISE EXCEPTION 'role and member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE workqueue.role_member SET active = false
     WHERE role = remove_member.role AND member = remove_member.member;
    IF NOT FOUND THEN
        RAISE EXCEPTION '"%" is not a member of role "%"', remove_member.member, remove_member.role
            USING ERRCODE = 'undefined_object',
                  HINT = 'List members with: SELECT * FROM workqueue.role_member;';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.comment(item bigint, body text, actor text DEFAULT current_user) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(comment.item);
BEGIN
    PERFORM workqueue._check_actor(comment.actor, 'actor');
    IF comment.body IS NULL OR comment.body !~ '[^[:space:]]' THEN      -- tabs and newlines are blank too
        RAISE EXCEPTION 'comment must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE workqueue.item SET updated_at = now() WHERE queue = it.queue AND id = it.id;
    RETURN workqueue._event(it.queue, it.id, comment.actor, 'comment', it.step, it.step,
                            jsonb_build_object('body', comment.body));
END
$$;

------------------------------------------------------------------------------
-- Views: SLA timers and paused items
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW workqueue.worker_status AS
    SELECT w.database, w.kind, w.pid, w.started_at, w.last_loop_at, w.jobs_done, w.in_flight,
           (SELECT count(*) FROM workqueue.fetch WHERE status = 'queued') AS fetches_queued,
           (SELECT count(*) FROM workqueue.fetch WHERE status = 'processing') AS fetches_processing,
           (SELECT count(*) FROM workqueue.fetch
             WHERE status = 'failed' AND finished_at > now() - interval '1 hour') AS fetches_failed_last_hour,
           (SELECT f.error FROM workqueue.fetch f WHERE f.status = 'failed' ORDER BY f.finished_at DESC LIMIT 1)
               AS last_fetch_error,
           (SELECT r.error FROM workqueue.sync_run r WHERE r.status = 'failed' ORDER BY r.finished_at DESC LIMIT 1)
               AS last_sync_error,
           least((SELECT min(next_attempt_at) FROM workqueue.fetch WHERE status = 'queued'),
                 (SELECT min(lease_until) FROM workqueue.item WHERE status = 'in_progress'),
                 (SELECT min(sla_next_at) FROM workqueue.item WHERE sla_next_at IS NOT NULL)) AS next_timer
      FROM workqueue._workers() w
     WHERE w.database = current_database();

-- breached: the SLA clock has reached the target (a paused clock has not)
CREATE OR REPLACE VIEW workqueue.queue_stats AS
    SELECT q.name AS queue,
           count(i.id) FILTER (WHERE i.status = 'open') AS open,
           count(i.id) FILTER (WHERE i.status = 'in_progress') AS in_progress,
           count(i.id) FILTER (WHERE i.status IN ('resolved', 'rejected')) AS done,
           count(i.id) FILTER (WHERE i.status = 'closed') AS closed,
           now() - min(i.created_at) FILTER (WHERE i.status = 'open') AS oldest_open_age,
           count(i.id) FILTER (WHERE i.status IN ('open', 'in_progress') AND i.sla_paused_at IS NULL
                                 AND i.due_at < now()) AS breached,
           count(i.id) FILTER (WHERE i.status IN ('open', 'in_progress') AND i.sla_paused_at IS NOT NULL) AS sla_paused
      FROM workqueue.queue q LEFT JOIN workqueue.item i ON i.queue = q.name
     GROUP BY q.name;

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------

REVOKE ALL ON workqueue.sla_policy, workqueue.role_assignment, workqueue.scope_grant FROM PUBLIC;
GRANT SELECT ON workqueue.sla_policy, workqueue.role_assignment, workqueue.scope_grant TO PUBLIC;
REVOKE ALL ON FUNCTION workqueue._sla_start(bigint[], bigint[], text[]),
    workqueue._sla_move(bigint[], bigint[], text[]), workqueue._step_shares(bigint[]),
    workqueue._pick_members(text, int), workqueue._assignments(bigint[]),
    workqueue._after_enter(bigint[], text, boolean), workqueue._fire_sla_timers(int)
    FROM PUBLIC;
-- waking the workers and locking items are for the API functions only
REVOKE ALL ON FUNCTION workqueue._wake(), workqueue._wake_fetch(), workqueue._item_for_update(bigint) FROM PUBLIC;
