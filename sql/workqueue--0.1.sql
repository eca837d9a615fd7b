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

\echo Use "CREATE EXTENSION workqueue" to load this file. \quit

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
