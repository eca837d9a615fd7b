-- The work queue: queues, items, claims with leases, actions and the audit
-- trail (every event is a row of item_event; the announce worker sends a
-- NOTIFY on "workqueue" for it after it commits: src/queue/announce.c).
-- Rules: doc/queue.md.

-- The transaction writing an event (the default of item_event.tx); asks for
-- the announce worker to be woken when it commits (src/queue/announce.c).
CREATE OR REPLACE FUNCTION workqueue._event_tx() RETURNS xid8
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'workqueue_event_tx';

REVOKE ALL ON FUNCTION workqueue._event_tx() FROM PUBLIC;

-- (once for a cluster: src/scale/cluster.sql)
SELECT workqueue._cluster_command($$ALTER TABLE workqueue.item_event ALTER COLUMN tx SET DEFAULT workqueue._event_tx()$$);

-- Whether a worker may act on an item at its step (an item's workflow,
-- version, step and assignee): the role rule of transitions, without the
-- administrator's exemption, which claim() passes in itself.  Steps' roles
-- and the worker's memberships are read once per statement
-- (src/workflow/transition.c).
CREATE OR REPLACE FUNCTION workqueue._may_claim(workflow text, version int, step text, assignee text, worker text)
    RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_may_claim';

REVOKE ALL ON FUNCTION workqueue._may_claim(text, int, text, text, text) FROM PUBLIC;

-- Appends one audit event; the announce worker sends NOTIFY workqueue for it
-- once it commits.
CREATE OR REPLACE FUNCTION workqueue._event(queue text, item bigint, actor text, kind text,
                                 from_step text, to_step text, payload jsonb DEFAULT '{}')
    RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    event_id bigint;
BEGIN
    INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
    VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, '{}'))
    RETURNING id INTO event_id;
    RETURN event_id;
END
$$;

REVOKE ALL ON FUNCTION workqueue._event(text, bigint, text, text, text, text, jsonb) FROM PUBLIC;

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
        PERFORM workqueue._raise_undefined('queue', _queue.name,
            'Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;');
    END IF;
    RETURN q;
END
$$;

-- Locks and returns an item by id.  An item out of the caller's scopes is
-- not there, and is not locked either: the scope is part of the condition
-- the row lock is taken under, so a hidden item that someone else holds
-- locked makes the caller wait no more than a missing one.
CREATE OR REPLACE FUNCTION workqueue._item_for_update(id bigint) RETURNS workqueue.item
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    it workqueue.item;
    q text;
    scopes text[];
BEGIN
    IF _item_for_update.id IS NULL THEN
        RAISE EXCEPTION 'item id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF workqueue._citus() THEN
        -- distributed: the lock in the item's shard (a row lock needs the
        -- queue named), so the queue first: known to this backend (an item
        -- it claimed or met before, src/core/scale.c), or read from every
        -- shard and remembered.  The caller's scopes are read here, on the
        -- coordinator, and the scope rule is part of the lock's condition:
        -- in the shard's query _visible() would be judged as the user Citus
        -- connects to the worker as.
        q := workqueue._known_queue(_item_for_update.id);
        IF q IS NULL THEN
            SELECT item.queue INTO q FROM workqueue.item WHERE item.id = _item_for_update.id;
            IF NOT FOUND THEN
                PERFORM workqueue._raise_no_item(_item_for_update.id);
            END IF;
            PERFORM workqueue._remember_queue(_item_for_update.id, q);
        END IF;
        scopes := workqueue._caller_scopes();
        SELECT * INTO it FROM workqueue.item
         WHERE item.queue = q AND item.id = _item_for_update.id
           AND (item.scope = '{}' OR coalesce(item.scope && scopes, true)) FOR UPDATE;
    ELSE
        SELECT * INTO it FROM workqueue.item
         WHERE item.id = _item_for_update.id AND workqueue._visible(item.scope) FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        PERFORM workqueue._raise_no_item(_item_for_update.id);
    END IF;
    RETURN it;
END
$$;

REVOKE ALL ON FUNCTION workqueue._item_for_update(bigint) FROM PUBLIC;

-- Raises "item N does not exist": for an item that is not there and for
-- one out of the caller's scopes alike.
CREATE OR REPLACE FUNCTION workqueue._raise_no_item(id bigint) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'item % does not exist', coalesce(id::text, 'NULL')
        USING ERRCODE = 'undefined_object',
              HINT = 'Look items up with workqueue.list_items() or workqueue.get_items_by_external().';
END
$$;

CREATE OR REPLACE FUNCTION workqueue.create_queue(name text, workflow text DEFAULT 'review', sla_policy text DEFAULT NULL,
                                                  lease_timeout interval DEFAULT '15 minutes') RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('create queues');
    PERFORM workqueue._require_name('queue', create_queue.name);
    IF create_queue.workflow IS NULL THEN
        RAISE EXCEPTION 'workflow name must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave workflow out for the built-in ''review''.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM workqueue.workflow WHERE name = create_queue.workflow) THEN
        PERFORM workqueue._raise_undefined('workflow', create_queue.workflow,
                                           'Define it with workqueue.define_workflow() or use the built-in ''review''.');
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
                  HINT = 'Pick another name, or retire the old queue first with workqueue.drop_queue().';
    END IF;
    -- the maximum lease is a day, or the lease timeout if that is longer
    INSERT INTO workqueue.queue (name, workflow, sla_policy, lease_timeout, max_lease, created_by)
    VALUES (create_queue.name, create_queue.workflow, create_queue.sla_policy, create_queue.lease_timeout,
            greatest(interval '1 day', create_queue.lease_timeout), workqueue._caller());
END
$$;

-- Changes a queue's sla_policy (NULL: none), lease_timeout, max_lease (the
-- longest a lease may run from now; at least lease_timeout), scope (of
-- new items) or retention (how long finished items are kept; NULL: for
-- ever; doc/operations.md, "Retention").  Items keep the SLA they started with;
-- workqueue.recompute_sla() moves them.  Leases already running keep their
-- end: a lower max_lease bounds their next extension.
CREATE OR REPLACE FUNCTION workqueue.alter_queue(name text, changes jsonb) RETURNS workqueue.queue
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q workqueue.queue;
    k text;
    lt interval;
    setting text;
BEGIN
    PERFORM workqueue._require_admin('alter queues');
    q := workqueue._queue(alter_queue.name);
    IF alter_queue.changes IS NULL OR jsonb_typeof(alter_queue.changes) <> 'object' THEN
        RAISE EXCEPTION 'changes must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass e.g. {"sla_policy": "standard"} or {"lease_timeout": "30 minutes"}.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(alter_queue.changes) LOOP
        IF k NOT IN ('sla_policy', 'lease_timeout', 'max_lease', 'scope', 'retention') THEN
            RAISE EXCEPTION 'queue setting "%" cannot be changed', left(k, 100)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'alter_queue changes "sla_policy", "lease_timeout", "max_lease", "scope" and "retention"; a queue''s workflow is fixed.';
        END IF;
    END LOOP;
    IF alter_queue.changes ? 'sla_policy' THEN
        IF jsonb_typeof(alter_queue.changes->'sla_policy') NOT IN ('string', 'null') THEN
            RAISE EXCEPTION 'sla_policy must be a policy name or null' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM workqueue._require_sla_policy(alter_queue.changes->>'sla_policy');
        q.sla_policy := alter_queue.changes->>'sla_policy';
    END IF;
    FOREACH setting IN ARRAY ARRAY['lease_timeout', 'max_lease'] LOOP
        CONTINUE WHEN NOT alter_queue.changes ? setting;
        BEGIN
            lt := CASE WHEN jsonb_typeof(alter_queue.changes->setting) = 'string'
                       THEN (alter_queue.changes->>setting)::interval END;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            lt := NULL;
        END;
        IF lt IS NULL OR lt <= interval '0' THEN
            RAISE EXCEPTION '% must be a positive interval', setting
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given is %s.', left((alter_queue.changes->setting)::text, 100)),
                      HINT = format('Pass e.g. {"%s": "30 minutes"}.', setting);
        END IF;
        IF lt > interval '1 year' THEN
            RAISE EXCEPTION '% must be at most 1 year', setting
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given was %s.', lt),
                      HINT = 'Workers that need longer extend their lease with workqueue.extend_lease().';
        END IF;
        IF setting = 'lease_timeout' THEN
            q.lease_timeout := lt;
        ELSE
            q.max_lease := lt;
        END IF;
    END LOOP;
    IF q.lease_timeout > q.max_lease THEN
        RAISE EXCEPTION 'lease_timeout must not be longer than max_lease'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Queue "%s" would have lease_timeout %s and max_lease %s.',
                                  q.name, q.lease_timeout, q.max_lease),
                  HINT = 'Lower lease_timeout, or raise max_lease in the same call.';
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
    IF alter_queue.changes ? 'retention' THEN
        BEGIN
            lt := CASE WHEN jsonb_typeof(alter_queue.changes->'retention') = 'string'
                       THEN (alter_queue.changes->>'retention')::interval END;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            lt := NULL;
        END;
        IF jsonb_typeof(alter_queue.changes->'retention') = 'null' THEN
            q.retention := NULL;
        ELSIF lt IS NULL OR lt <= interval '0' THEN
            RAISE EXCEPTION 'retention must be a positive interval or null'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given is %s.', left((alter_queue.changes->'retention')::text, 100)),
                      HINT = 'Pass e.g. {"retention": "90 days"}, or {"retention": null} to keep every item.';
        ELSIF lt < interval '1 hour' THEN
            RAISE EXCEPTION 'retention must be at least 1 hour'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given was %s.', lt),
                      HINT = 'Finished items are deleted with their history once their retention has passed: pass e.g. {"retention": "90 days"}.';
        ELSE
            q.retention := lt;
        END IF;
    END IF;
    UPDATE workqueue.queue x SET sla_policy = q.sla_policy, lease_timeout = q.lease_timeout, max_lease = q.max_lease,
                                 scope = q.scope, retention = q.retention
     WHERE x.name = q.name RETURNING * INTO q;
    RETURN q;
END
$$;

-- Retires a queue: deletes it with its items, their events, lease fences
-- and fetches, its sources with their sync runs and pg_cron schedules, in
-- one transaction (doc/queue.md, "Retiring a queue").  Refused while items
-- are open or in progress unless forced, and -- forced or not -- while a
-- fetch of the queue is in the fetch worker's hands or a run of one of its
-- sources is running, and while fetches of other queues name one of its
-- sources.  Locks, in this order (the order of every path that locks
-- several of these, so that it can wait for them but not deadlock): the
-- queue row; the queue's items in id order (as transition_many, the
-- fetch worker's recording and the sync worker's batches); its fetches in
-- id order; its sources by name; their sync runs in id order.  Claims and
-- the workers' takers skip locked rows.
CREATE OR REPLACE FUNCTION workqueue.drop_queue(name text, force boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q text := drop_queue.name;
    n_open bigint;
    n_busy bigint;
    srcs text[];
    busy text;
    jobs bigint;
BEGIN
    PERFORM workqueue._require_admin('drop queues');
    -- on Citus the reference-table deletes (source, sync_run, queue, purge)
    -- may not follow a parallel multi-shard statement of the transaction
    IF workqueue._citus() THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    IF q IS NULL THEN
        RAISE EXCEPTION 'queue name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM 1 FROM workqueue.queue x WHERE x.name = q FOR UPDATE;
    -- (items left behind by an add() that raced a drop have no queue row:
    -- they can be dropped all the same)
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = q) THEN
        PERFORM workqueue._raise_undefined('queue', q, 'List queues with: SELECT name FROM workqueue.queue;');
    END IF;
    PERFORM 1 FROM workqueue.item i WHERE i.queue = q ORDER BY i.id FOR UPDATE;
    PERFORM 1 FROM workqueue.fetch f WHERE f.queue = q ORDER BY f.id FOR UPDATE;
    SELECT coalesce(array_agg(s.name ORDER BY s.name), '{}') INTO srcs
      FROM (SELECT s.name FROM workqueue.source s WHERE s.queue = q ORDER BY s.name FOR UPDATE) s;
    PERFORM 1 FROM workqueue.sync_run r WHERE r.source = ANY (srcs) ORDER BY r.id FOR UPDATE;

    SELECT count(*) FILTER (WHERE i.status = 'open'), count(*) FILTER (WHERE i.status = 'in_progress')
      INTO n_open, n_busy
      FROM workqueue.item i WHERE i.queue = q AND i.status IN ('open', 'in_progress');
    IF (n_open > 0 OR n_busy > 0) AND NOT coalesce(drop_queue.force, false) THEN
        RAISE EXCEPTION 'queue "%" has % open and % in-progress items', q, n_open, n_busy
            USING ERRCODE = 'object_in_use',
                  DETAIL = 'Dropping the queue deletes its items with their history.',
                  HINT = format('Resolve or close them first, or drop them with the queue: SELECT workqueue.drop_queue(%L, force => true);', q);
    END IF;
    -- a fetch in flight or a running sync run is in a worker's hands, which
    -- would write its outcome to rows that are gone: wait for it
    SELECT string_agg(f.id::text, ', ' ORDER BY f.id) INTO busy
      FROM workqueue.fetch f WHERE f.queue = q AND f.status = 'processing';
    IF busy IS NOT NULL THEN
        RAISE EXCEPTION 'queue "%" has fetches in flight', q
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('The fetch worker is fetching %s (status processing).', 'fetch ' || busy),
                  HINT = 'Call drop_queue again once they finished (seconds, usually); queued fetches are dropped with the queue.';
    END IF;
    SELECT string_agg(format('run %s of source "%s"', r.id, r.source), ', ' ORDER BY r.id) INTO busy
      FROM workqueue.sync_run r WHERE r.source = ANY (srcs) AND r.status = 'running';
    IF busy IS NOT NULL THEN
        RAISE EXCEPTION 'queue "%" has a sync run running', q
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('The sync worker is running %s.', busy),
                  HINT = 'Wait for it with workqueue.wait(run), then call drop_queue again; queued runs are dropped with the queue.';
    END IF;
    SELECT string_agg(DISTINCT format('source "%s" (queue "%s")', f.source, f.queue), ', ') INTO busy
      FROM workqueue.fetch f WHERE f.source = ANY (srcs) AND f.queue <> q;
    IF busy IS NOT NULL THEN
        RAISE EXCEPTION 'sources of queue "%" are used by fetches of other queues', q
            USING ERRCODE = 'object_in_use',
                  DETAIL = format('Fetches name %s.', busy),
                  HINT = 'Move the source to a queue that stays with workqueue.alter_source(source, ''{"queue": "..."}''), then drop the queue.';
    END IF;

    -- pg_cron schedules of the sources (schedule_sync names them so)
    IF cardinality(srcs) > 0 AND EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        EXECUTE 'SELECT count(cron.unschedule(j.jobid)) FROM cron.job j
                  WHERE j.jobname = ANY ($1) AND j.database = current_database()'
           INTO jobs
          USING ARRAY(SELECT 'workqueue sync ' || s FROM unnest(srcs) s);
    END IF;
    DELETE FROM workqueue.sync_run r WHERE r.source = ANY (srcs);
    DELETE FROM workqueue.fetch f WHERE f.queue = q;
    DELETE FROM workqueue.source s WHERE s.name = ANY (srcs);
    DELETE FROM workqueue.lease_fence l WHERE l.queue = q;
    DELETE FROM workqueue.item_event e WHERE e.queue = q;
    DELETE FROM workqueue.item i WHERE i.queue = q;
    DELETE FROM workqueue.purge p WHERE p.queue = q;
    DELETE FROM workqueue.queue x WHERE x.name = q;
END
$$;

-- Retention (doc/operations.md, "Retention"): deletes one batch of at most
-- batch_size finished items -- resolved, rejected or closed, ended
-- (resolved_at; updated_at if closed) before now() minus the queue's
-- retention -- with their events, lease fences and finished fetches, and
-- returns how many went; 0 once no queue has any left.  The fetch worker
-- calls it, one call per transaction, until it returns 0 (src/fetch/fetch.c).
-- Each batch adds its counts to the queue's open workqueue.purge row (made
-- by the first batch of a pass, closed by the call that finds the queue has
-- nothing more), so a pass over a queue leaves one row.  Items are taken
-- FOR UPDATE SKIP LOCKED, so a purge never waits for a claim, a transition
-- or any other holder of an item (a locked item waits for the next pass),
-- and nobody waits for it longer than one batch.  Then the fetches of the
-- taken items are locked, in id order (items first, then fetches: the order
-- of drop_queue, retry_fetches and the fetch worker), and items that have
-- a queued or processing fetch, or a child item, stay.
CREATE OR REPLACE FUNCTION workqueue._purge(batch_size int DEFAULT 500) RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q record;
    cutoff timestamptz;
    ids bigint[];
    oldest timestamptz;
    newest timestamptz;
    n_items bigint;
    n_events bigint;
    n_fences bigint;
    n_fetches bigint;
    kept text[];
BEGIN
    -- passes over queues whose retention was taken away end here
    IF workqueue._citus() THEN
        -- (the queues read first: for an UPDATE of a reference table with a
        -- sub-select, Citus locks the tables read -- queue, then workflow,
        -- which queue references -- in the other order than a write to
        -- sync_run locks them (workflow, queue, source): the sync worker's
        -- writes deadlocked with this statement of the fetch worker)
        kept := ARRAY(SELECT x.name FROM workqueue.queue x WHERE x.retention IS NOT NULL);
        UPDATE workqueue.purge p SET finished_at = now()
         WHERE p.finished_at IS NULL AND p.queue <> ALL (kept);
    ELSE
        UPDATE workqueue.purge p SET finished_at = now()
         WHERE p.finished_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM workqueue.queue x WHERE x.name = p.queue AND x.retention IS NOT NULL);
    END IF;
    FOR q IN SELECT x.name, x.retention, p.id AS purge, p.cutoff
               FROM workqueue.queue x
               LEFT JOIN workqueue.purge p ON p.queue = x.name AND p.finished_at IS NULL
              WHERE x.retention IS NOT NULL
              ORDER BY x.name
    LOOP
        -- a pass keeps the cutoff it began with (so that it ends), unless
        -- the retention was raised since
        cutoff := least(q.cutoff, now() - q.retention);
        SELECT array_agg(c.id ORDER BY c.id) INTO ids
          FROM (SELECT i.id FROM workqueue.item i
                 WHERE i.queue = q.name AND i.status IN ('resolved', 'rejected', 'closed')
                   AND coalesce(i.resolved_at, i.updated_at) < cutoff
                   AND NOT EXISTS (SELECT 1 FROM workqueue.fetch f
                                    WHERE f.queue = i.queue AND f.item_id = i.id AND f.status IN ('queued', 'processing'))
                   AND NOT EXISTS (SELECT 1 FROM workqueue.item c WHERE c.queue = i.queue AND c.parent_id = i.id)
                 ORDER BY coalesce(i.resolved_at, i.updated_at)
                 LIMIT greatest(_purge.batch_size, 1)
                   FOR UPDATE OF i SKIP LOCKED) c;
        IF ids IS NOT NULL THEN
            PERFORM 1 FROM workqueue.fetch f WHERE f.queue = q.name AND f.item_id = ANY (ids) ORDER BY f.id FOR UPDATE;
            -- again, with the locks held (a fetch or a child may have
            -- committed since the statement above took its snapshot; none
            -- can be added now)
            SELECT array_agg(i.id ORDER BY i.id), min(coalesce(i.resolved_at, i.updated_at)),
                   max(coalesce(i.resolved_at, i.updated_at))
              INTO ids, oldest, newest
              FROM workqueue.item i
             WHERE i.queue = q.name AND i.id = ANY (ids)
               AND i.status IN ('resolved', 'rejected', 'closed')
               AND NOT EXISTS (SELECT 1 FROM workqueue.fetch f
                                WHERE f.queue = i.queue AND f.item_id = i.id AND f.status IN ('queued', 'processing'))
               AND NOT EXISTS (SELECT 1 FROM workqueue.item c WHERE c.queue = i.queue AND c.parent_id = i.id);
        END IF;
        IF ids IS NULL THEN
            -- nothing (more) to purge in this queue: its pass, if any, ends
            UPDATE workqueue.purge p SET finished_at = now() WHERE p.id = q.purge;
            CONTINUE;
        END IF;
        DELETE FROM workqueue.item_event e WHERE e.queue = q.name AND e.item_id = ANY (ids);
        GET DIAGNOSTICS n_events = ROW_COUNT;
        DELETE FROM workqueue.lease_fence l WHERE l.queue = q.name AND l.item_id = ANY (ids);
        GET DIAGNOSTICS n_fences = ROW_COUNT;
        DELETE FROM workqueue.fetch f WHERE f.queue = q.name AND f.item_id = ANY (ids);
        GET DIAGNOSTICS n_fetches = ROW_COUNT;
        DELETE FROM workqueue.item i WHERE i.queue = q.name AND i.id = ANY (ids);
        GET DIAGNOSTICS n_items = ROW_COUNT;
        IF q.purge IS NULL THEN
            INSERT INTO workqueue.purge (queue, retention, cutoff) VALUES (q.name, q.retention, cutoff)
            RETURNING id INTO q.purge;
        END IF;
        UPDATE workqueue.purge p
           SET batches = p.batches + 1, items = p.items + n_items, events = p.events + n_events,
               fences = p.fences + n_fences, fetches = p.fetches + n_fetches,
               oldest_resolved = least(p.oldest_resolved, oldest), newest_resolved = greatest(p.newest_resolved, newest)
         WHERE p.id = q.purge;
        RETURN n_items;
    END LOOP;
    RETURN 0;
END
$$;

REVOKE ALL ON FUNCTION workqueue._purge(int) FROM PUBLIC;

-- Adds one item at the start step of the queue's workflow and returns its
-- id: add_many() of one item (C, src/queue/add.c), with add()'s arguments.
CREATE OR REPLACE FUNCTION workqueue.add(queue text, data jsonb DEFAULT '{}', priority int DEFAULT 3,
                                         external_id text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'workqueue_add';

-- Adds a batch of items from a JSON array of {"data": {...}, "priority": 1-5,
-- "external_id": "..."} (every key may be left out) and returns their ids in
-- the order given; all of them or, on any error, none (C, src/queue/add.c;
-- doc/queue.md, "Adding many items").
CREATE OR REPLACE FUNCTION workqueue.add_many(queue text, items jsonb)
    RETURNS SETOF bigint
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET jit = off
    ROWS 1000
    AS 'MODULE_PATHNAME', 'workqueue_add_many';

-- Returns items whose lease has passed to the queue ("lease_expired") and
-- fences their holders (workqueue.lease_fence).  Locks in id order.
CREATE OR REPLACE FUNCTION workqueue._expire_leases(queue text) RETURNS int
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
             ORDER BY i.id
               FOR UPDATE SKIP LOCKED),
        fenced AS (
            INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until)
            SELECT e.queue, e.id, e.claimed_by, e.lease_until FROM expired e
            ON CONFLICT (queue, item_id, worker) DO UPDATE SET lease_until = excluded.lease_until)
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

REVOKE ALL ON FUNCTION workqueue._expire_leases(text) FROM PUBLIC;

-- Returns every item whose lease has run out to its queue.
CREATE OR REPLACE FUNCTION workqueue._expire_all_leases() RETURNS int
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

REVOKE ALL ON FUNCTION workqueue._expire_all_leases() FROM PUBLIC;

-- Takes up to n items in inbox order: open ones and those whose lease has
-- run out (before the worker's sweep returned them), each of the latter
-- with its "lease_expired" event first and its old holder fenced; the
-- worker's fences on the items it takes end.  (C: src/queue/claim.c, one
-- statement in the usual case, with plans that read item_inbox_idx in
-- order whatever the statistics say.)
CREATE OR REPLACE FUNCTION workqueue.claim(queue text, n int DEFAULT 1, worker text DEFAULT current_user)
    RETURNS SETOF workqueue.item
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp ROWS 1
    AS 'MODULE_PATHNAME', 'workqueue_claim';

-- Raises unless "worker" is one the caller may act as (_check_actor) and
-- holds a live lease on the item (an administrator acting as itself may act
-- on any claim).  A worker fenced off the item (its lease ran out and it has
-- not claimed the item since, workqueue.lease_fence) is told that its lease
-- has expired, unless someone else holds a live lease on the item or the
-- item is resolved or rejected (no claim is held or taken there).
CREATE OR REPLACE FUNCTION workqueue._check_holder(it workqueue.item, worker text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ended timestamptz;          -- when the worker's lease ran out, if that is why it is refused
BEGIN
    PERFORM workqueue._check_actor(worker, 'worker');
    IF it.claimed_by IS DISTINCT FROM worker AND it.status NOT IN ('resolved', 'rejected')
       AND NOT (it.status = 'in_progress' AND it.lease_until > now()) THEN
        SELECT f.lease_until INTO ended FROM workqueue.lease_fence f
         WHERE f.queue = it.queue AND f.item_id = it.id AND f.worker = _check_holder.worker;
        IF ended IS NOT NULL AND workqueue._actor_is_admin(worker) THEN
            ended := NULL;
        END IF;
    END IF;
    IF ended IS NULL THEN
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
            ended := it.lease_until;
        END IF;
    END IF;
    IF ended IS NOT NULL THEN
        RAISE EXCEPTION 'lease of "%" on item % has expired', worker, it.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The lease ended at %s.', ended),
                  HINT = 'Claim the item again with workqueue.claim(); extend leases before they run out.';
    END IF;
END
$$;

-- Returns a claimed item to the queue: its holder (or an agent acting as
-- it) gives it back, or an administrator breaks the claim, live lease or
-- not.  A claim ended by someone else, or whose lease had run out, fences
-- its holder as the worker's sweep does: it may not act on the item until
-- it claims it again.  The "released" event of a broken claim names the
-- former holder and its lease.
CREATE OR REPLACE FUNCTION workqueue.release(item bigint, worker text DEFAULT current_user) RETURNS workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(release.item);
    holder text;
    lease timestamptz;
    broken boolean;
BEGIN
    PERFORM workqueue._check_holder(it, release.worker);
    holder := it.claimed_by;
    lease := it.lease_until;
    broken := holder <> release.worker;
    IF broken OR lease <= now() THEN
        -- the lease ended now, or when it ran out
        INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until)
        VALUES (it.queue, it.id, holder, least(lease, now()))
        ON CONFLICT (queue, item_id, worker) DO UPDATE SET lease_until = excluded.lease_until;
    END IF;
    UPDATE workqueue.item SET status = 'open', claimed_by = NULL, lease_until = NULL, updated_at = now()
     WHERE queue = it.queue AND id = it.id RETURNING * INTO it;
    PERFORM workqueue._event(it.queue, it.id, release.worker, 'released', it.step, it.step,
                             CASE WHEN broken THEN jsonb_build_object('claimed_by', holder, 'lease_until', lease) END);
    RETURN it;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.extend_lease(item bigint, by interval, worker text DEFAULT current_user) RETURNS workqueue.item
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(extend_lease.item);
    max_lease interval;
BEGIN
    IF extend_lease.by IS NULL OR extend_lease.by <= interval '0' THEN
        RAISE EXCEPTION 'lease extension must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', coalesce(extend_lease.by::text, 'NULL'));
    END IF;
    PERFORM workqueue._check_holder(it, extend_lease.worker);
    SELECT q.max_lease INTO max_lease FROM workqueue.queue q WHERE q.name = it.queue;
    -- (by alone beyond the maximum: the sum could overflow)
    IF extend_lease.by > max_lease OR greatest(it.lease_until, now()) + extend_lease.by > now() + max_lease THEN
        RAISE EXCEPTION 'lease on item % cannot run longer than the maximum lease of queue "%"', it.id, it.queue
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The maximum lease is %s, so it may run until %s; extending by %s asks for %s.',
                                  max_lease, now() + max_lease, extend_lease.by,
                                  CASE WHEN extend_lease.by > max_lease
                                       THEN format('%s past %s', extend_lease.by, greatest(it.lease_until, now()))
                                       ELSE (greatest(it.lease_until, now()) + extend_lease.by)::text END),
                  HINT = 'Extend by less, and again before the lease runs out; an administrator can raise the '
                         'maximum with workqueue.alter_queue(queue, ''{"max_lease": "2 days"}'').';
    END IF;
    IF workqueue._citus() THEN
        -- (Citus calls no now() next to a column: the row is locked, so its
        -- lease is it.lease_until)
        UPDATE workqueue.item SET lease_until = greatest(it.lease_until, now()) + extend_lease.by, updated_at = now()
         WHERE queue = it.queue AND id = it.id RETURNING * INTO it;
    ELSE
        UPDATE workqueue.item SET lease_until = greatest(lease_until, now()) + extend_lease.by, updated_at = now()
         WHERE queue = it.queue AND id = it.id RETURNING * INTO it;
    END IF;
    -- the new end of the lease is in the audit trail (fencing is judged by it)
    PERFORM workqueue._event(it.queue, it.id, extend_lease.worker, 'lease_extended', it.step, it.step,
                             jsonb_build_object('lease_until', it.lease_until));
    RETURN it;
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

CREATE OR REPLACE FUNCTION workqueue.update_fields(item bigint, fields jsonb, actor text DEFAULT current_user)
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
        PERFORM workqueue._raise_not_object('fields', update_fields.fields,
                                            'Pass an object of field names and values, e.g. {"resolution": "fixed"}.');
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

-- On a distributed install (workqueue.scale_state) an id names no queue, so
-- no shard: the items whose queues this backend knows (_known_queue) are
-- read from those queues' shards (queue = ANY, which Citus prunes by), the
-- others from every shard at once (id = ANY), their queues remembered; both
-- planned for the call's arrays (Citus cannot route a generic plan's
-- parameter), and put in the caller's order on the coordinator.
CREATE OR REPLACE FUNCTION workqueue.get_items(ids bigint[]) RETURNS SETOF workqueue.item
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    known text[];               -- (distributed) the queues of ids, NULL where unknown
    r workqueue.item;
BEGIN
    IF EXISTS (SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus') THEN
        known := ARRAY(SELECT workqueue._known_queue(x.id) FROM unnest(get_items.ids) x(id));
        IF array_position(known, NULL) IS NULL THEN
            RETURN QUERY EXECUTE
                'SELECT i.* FROM unnest($1) WITH ORDINALITY AS x(id, ord)
                   JOIN (SELECT * FROM workqueue.item WHERE queue = ANY ($3) AND id = ANY ($1)) i ON i.id = x.id
                  WHERE i.scope = ''{}'' OR $2 IS NULL OR i.scope && $2
                  ORDER BY x.ord'
                USING get_items.ids, workqueue._caller_scopes(), ARRAY(SELECT DISTINCT unnest(known));
            RETURN;
        END IF;
        FOR r IN EXECUTE
            'SELECT i.* FROM unnest($1) WITH ORDINALITY AS x(id, ord)
               JOIN (SELECT * FROM workqueue.item WHERE id = ANY ($1)) i ON i.id = x.id
              WHERE i.scope = ''{}'' OR $2 IS NULL OR i.scope && $2
              ORDER BY x.ord'
            USING get_items.ids, workqueue._caller_scopes()
        LOOP
            PERFORM workqueue._remember_queue(r.id, r.queue);
            RETURN NEXT r;
        END LOOP;
        RETURN;
    END IF;
    RETURN QUERY SELECT i.* FROM unnest(get_items.ids) WITH ORDINALITY AS x(id, ord)
                   JOIN workqueue.item i ON i.id = x.id
                  CROSS JOIN (SELECT workqueue._caller_scopes() AS scopes) c
                  WHERE i.scope = '{}' OR c.scopes IS NULL OR i.scope && c.scopes
                  ORDER BY x.ord;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.get_items_by_external(queue text, external_ids text[]) RETURNS SETOF workqueue.item
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    scopes text[] := workqueue._caller_scopes();     -- NULL: all
    q workqueue.queue := workqueue._queue(get_items_by_external.queue);
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
    it workqueue.item;
BEGIN
    IF workqueue._citus() THEN
        it := workqueue._read_item_citus(history.item);
        q := it.queue;              -- (NULL: no such item)
        sc := it.scope;
    ELSE
        SELECT i.queue, i.scope INTO q, sc FROM workqueue.item i WHERE i.id = history.item;
    END IF;
    IF q IS NULL OR NOT workqueue._visible(sc) THEN
        PERFORM workqueue._raise_no_item(history.item);
    END IF;
    RETURN QUERY SELECT * FROM workqueue.item_event e
                  WHERE e.queue = q AND e.item_id = history.item ORDER BY e.id DESC;
END
$$;

-- Direct reads of fences: row-level security as for item_event (src/core/scopes.sql).

-- For the DBA: counts per queue.  breached: the SLA clock has reached the
-- target (a paused clock has not).
-- (security_invoker: the items are counted through the reader's row-level
-- security, so a count includes only the items the reader may see)
CREATE OR REPLACE VIEW workqueue.queue_stats WITH (security_invoker = true) AS
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
