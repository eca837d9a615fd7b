-- Sync: diffing ids (C: src/sync/diff.c), upserting records
-- (src/sync/upsert.c), sources (src/sync/source.c) and sync runs, which the
-- sync worker executes (src/sync/sync.c).  Rules: doc/sync.md.

-- External ids of "ids" that have no item in the queue, in input order,
-- each once; NULLs ignored.  A NULL array gives no rows.
CREATE OR REPLACE FUNCTION workqueue.missing_ids(queue text, ids text[]) RETURNS SETOF text
    LANGUAGE c STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    ROWS 1000
    AS 'MODULE_PATHNAME', 'workqueue_missing_ids';

-- Payload of a "synced" event: old and new values of what changed (C).
CREATE OR REPLACE FUNCTION workqueue._sync_payload(old_data jsonb, new_data jsonb, old_priority smallint,
                                        new_priority smallint) RETURNS jsonb
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'workqueue_sync_payload';

REVOKE ALL ON FUNCTION workqueue._sync_payload(jsonb, jsonb, smallint, smallint) FROM PUBLIC;

-- Inserts new items and updates changed ones from a JSON array of
-- {"external_id": ..., "priority": ..., "data": {...}}; unchanged items are
-- not written at all.
CREATE OR REPLACE FUNCTION workqueue.upsert_items(queue text, items jsonb, source text DEFAULT NULL)
    RETURNS TABLE (inserted int, updated int, unchanged int)
    LANGUAGE c VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    -- JIT only slows a write of this shape down (by half a second at 100k items)
    SET jit = off
    ROWS 1
    AS 'MODULE_PATHNAME', 'workqueue_upsert_items';

CREATE OR REPLACE FUNCTION workqueue.create_source(name text, queue text, ids_url text, details_url text,
                                        options jsonb DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('create sources');
    PERFORM workqueue._require_name('source', create_source.name);
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

-- Validates a source definition (C: the same parser the worker uses).
CREATE OR REPLACE FUNCTION workqueue._check_source(ids_url text, details_url text, options jsonb) RETURNS void
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'workqueue_check_source';

CREATE OR REPLACE FUNCTION workqueue.alter_source(name text, changes jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    s workqueue.source;
    opts jsonb;
BEGIN
    PERFORM workqueue._require_admin('alter sources');
    SELECT * INTO s FROM workqueue.source WHERE name = alter_source.name FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM workqueue._raise_undefined('source', alter_source.name, 'Create it with workqueue.create_source().');
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
        PERFORM workqueue._raise_undefined('source', coalesce(sync.source, 'NULL'),
            'Create it with workqueue.create_source(), or list sources with: SELECT name FROM workqueue.sources;');
    END IF;
    -- Forcing another run (which the worker executes with the source's
    -- credentials, as often as asked) is for administrators; anyone else
    -- gets the run already queued or running, as without force.
    IF coalesce(sync.force, false) AND NOT workqueue.is_admin() THEN
        RAISE NOTICE 'force => true is for administrators; not forcing another run of source "%"', sync.source
            USING HINT = 'An administrator (workqueue_admin) may force a run; without force you get the run already queued.';
        sync.force := false;
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

-- Whether a row's xmin is this transaction or one of its subtransactions
-- (C: TransactionIdIsCurrentTransactionId).
CREATE OR REPLACE FUNCTION workqueue._xid_is_current(x xid) RETURNS boolean
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'workqueue_xid_is_current';

REVOKE ALL ON FUNCTION workqueue._xid_is_current(xid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue.wait(run bigint, timeout interval DEFAULT '10 minutes')
    RETURNS workqueue.sync_run
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r workqueue.sync_run;
    deadline timestamptz := clock_timestamp() + coalesce(wait.timeout, '10 minutes');
    last_note text := '';
    note text;
BEGIN
    -- A run this transaction queued is invisible to the worker until the
    -- transaction commits: waiting for it would wait until the timeout,
    -- and the error would then roll the run back (issue 14.4).
    IF EXISTS (SELECT 1 FROM workqueue.sync_run x WHERE x.id = wait.run AND workqueue._xid_is_current(x.xmin)) THEN
        RAISE EXCEPTION 'sync run % was queued by this transaction', wait.run
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'The worker cannot see the run until the transaction that queued it commits.',
                  HINT = format('Commit first, then wait in a statement of its own: SELECT workqueue.sync(...) AS run \gset, then SELECT * FROM workqueue.wait(%s);', wait.run);
    END IF;
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
    -- the upstream error samples quote items by external id, hidden ones
    -- too: for administrators only, as the column is (src/core/grants.sql)
    IF NOT workqueue.is_admin() THEN
        r.error_samples := NULL;
    END IF;
    RETURN r;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.schedule_sync(source text, cron text, "full" boolean DEFAULT false) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    job bigint;                 -- pg_cron's job id
BEGIN
    PERFORM workqueue._require_admin('schedule syncs');
    IF NOT EXISTS (SELECT 1 FROM workqueue.source WHERE name = schedule_sync.source) THEN
        PERFORM workqueue._raise_undefined('source', coalesce(schedule_sync.source, 'NULL'),
                                           'Create it with workqueue.create_source().');
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
CREATE OR REPLACE FUNCTION workqueue._claim_run() RETURNS bigint
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    UPDATE workqueue.sync_run
       SET status = 'running', started_at = now(), phase = 'listing', worker_pid = pg_backend_pid()
     WHERE id = (SELECT id FROM workqueue.sync_run WHERE status = 'queued'
                  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id
$$;

REVOKE ALL ON FUNCTION workqueue._claim_run() FROM PUBLIC;

-- Runs left "running" by a worker that died are failed, and re-queued once.
CREATE OR REPLACE FUNCTION workqueue._recover_runs() RETURNS int
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

REVOKE ALL ON FUNCTION workqueue._recover_runs() FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue._fail_run(run bigint, message text) RETURNS void
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    UPDATE workqueue.sync_run SET status = 'failed', finished_at = now(), phase = NULL, error = message
     WHERE id = run AND status IN ('queued', 'running')
$$;

REVOKE ALL ON FUNCTION workqueue._fail_run(bigint, text) FROM PUBLIC;

-- Listed again: closed items of the source go back to "open" at their step.
-- Locks them in id order (one queue: (queue, id) order), as every statement
-- that waits to lock several items does (transition_many, the fetch
-- worker's recording), so that they cannot deadlock.
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
          FROM (SELECT x.queue, x.id FROM workqueue.item x
                 WHERE x.queue = _reopen_listed.queue AND x.status = 'closed'
                   AND x.external_id = ANY (_reopen_listed.ids)
                 ORDER BY x.id
                   FOR UPDATE) l
         WHERE i.queue = l.queue AND i.id = l.id
        RETURNING i.queue, i.id, i.step
    LOOP
        reopened := reopened || r.id;
        PERFORM workqueue._event(r.queue, r.id, _reopen_listed.source, 'upstream_reopened', r.step, r.step,
                                 jsonb_build_object('source', _reopen_listed.source));
        n := n + 1;
    END LOOP;
    -- the SLA clock runs again where it stopped (none reopened: nothing to
    -- do).  On Citus _sla_enter's statement is refused (now() in a CASE, a
    -- STABLE function of columns, in an UPDATE of items), even for no
    -- items: the clocks are computed on the coordinator instead
    -- (_sla_enter_citus, one routed UPDATE per item).
    IF cardinality(reopened) > 0 THEN
        IF workqueue._citus() THEN
            PERFORM workqueue._sla_enter_citus(_reopen_listed.queue, reopened, NULL, NULL);
        ELSE
            PERFORM workqueue._sla_enter(reopened, NULL, NULL, false);
        END IF;
    END IF;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION workqueue._reopen_listed(text, text, text[]) FROM PUBLIC;

-- Closes the source's open items that the listing did not name (and that
-- the details endpoint did not confirm as open: "keep").  Locks them in
-- id order (one queue: (queue, id) order), as every statement that waits
-- to lock several items does (transition_many, the fetch worker's
-- recording), so that they cannot deadlock.  A claim whose lease had run
-- out fences its holder (workqueue.lease_fence), as the worker's sweep
-- would have.
CREATE OR REPLACE FUNCTION workqueue._close_unlisted(queue text, source text, listed text[], keep text[] DEFAULT '{}')
    RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n int := 0;
    r record;
    ids bigint[];
    st text[];
    by_ text[];
    lu timestamptz[];
    el interval[];
    cf timestamptz[];
    cal text[];
    calv int[];
    k int;
    kid bigint;
    kel interval;
BEGIN
    IF workqueue._citus() THEN
        -- on Citus one single-shard statement at a time (Citus plans a
        -- modifying CTE apart from the rest, and refuses the SLA clock's
        -- CASE with now() in a statement on items): lock, fence, compute
        -- the stopped clocks here on the coordinator, close
        SELECT array_agg(g.id ORDER BY g.id), array_agg(g.status ORDER BY g.id),
               array_agg(g.claimed_by ORDER BY g.id), array_agg(g.lease_until ORDER BY g.id),
               array_agg(g.sla_elapsed ORDER BY g.id), array_agg(g.sla_clock_from ORDER BY g.id),
               array_agg(g.sla_calendar ORDER BY g.id), array_agg(g.sla_calendar_version ORDER BY g.id)
          INTO ids, st, by_, lu, el, cf, cal, calv
          FROM (SELECT i.id, i.status, i.claimed_by, i.lease_until, i.sla_elapsed, i.sla_clock_from,
                       i.sla_calendar, i.sla_calendar_version
                  FROM workqueue.item i
                 WHERE i.queue = _close_unlisted.queue AND i.source = _close_unlisted.source
                   AND i.status IN ('open', 'in_progress')
                   AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.listed) AS l(x) WHERE l.x = i.external_id)
                   AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.keep) AS k(x) WHERE k.x = i.external_id)
                 ORDER BY i.id
                   FOR UPDATE OF i) g;
        IF ids IS NULL THEN
            RETURN 0;
        END IF;
        el := ARRAY(SELECT workqueue._sla_clock(u.e, u.f, u.c, u.v)
                      FROM unnest(el, cf, cal, calv) WITH ORDINALITY u(e, f, c, v, o) ORDER BY u.o);
        INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until)
        SELECT i.queue, i.id, i.claimed_by, i.lease_until FROM workqueue.item i
         WHERE i.queue = _close_unlisted.queue AND i.id = ANY (ids)
           AND i.status = 'in_progress' AND i.lease_until <= now()
        ON CONFLICT (queue, item_id, worker) DO UPDATE SET lease_until = excluded.lease_until;
        FOR k IN 1 .. cardinality(ids) LOOP
            -- (scalars, not array elements, in the statement: Citus 13.2
            -- crashes on el[k] in an UPDATE of a distributed table)
            kid := ids[k];
            kel := el[k];
            UPDATE workqueue.item i
               SET status = 'closed', claimed_by = NULL, lease_until = NULL, updated_at = now(),
                   sla_elapsed = kel, sla_clock_from = NULL, sla_next_at = NULL, step_due_at = NULL
             WHERE i.queue = _close_unlisted.queue AND i.id = kid
            RETURNING i.step INTO r;
            PERFORM workqueue._event(_close_unlisted.queue, kid, _close_unlisted.source, 'upstream_closed',
                                     r.step, r.step,
                                     jsonb_strip_nulls(jsonb_build_object(
                                         'source', _close_unlisted.source, 'old_status', st[k],
                                         'claimed_by', by_[k], 'lease_until', lu[k])));
            n := n + 1;
        END LOOP;
        RETURN n;
    END IF;
    FOR r IN
        WITH gone AS (
            -- (the stopped SLA clock computed here, not in the UPDATE:
            -- Citus refuses a stable function of columns in an UPDATE)
            SELECT i.queue, i.id, i.status, i.claimed_by, i.lease_until,
                   workqueue._sla_clock(i.sla_elapsed, i.sla_clock_from, i.sla_calendar,
                                        i.sla_calendar_version) AS sla_elapsed
              FROM workqueue.item i
             WHERE i.queue = _close_unlisted.queue AND i.source = _close_unlisted.source
               AND i.status IN ('open', 'in_progress')
               AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.listed) AS l(x) WHERE l.x = i.external_id)
               AND NOT EXISTS (SELECT 1 FROM unnest(_close_unlisted.keep) AS k(x) WHERE k.x = i.external_id)
             ORDER BY i.id
               FOR UPDATE OF i),
        fenced AS (
            INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until)
            SELECT g.queue, g.id, g.claimed_by, g.lease_until FROM gone g
             WHERE g.status = 'in_progress' AND g.lease_until <= now()
            ON CONFLICT (queue, item_id, worker) DO UPDATE SET lease_until = excluded.lease_until)
        UPDATE workqueue.item i
           SET status = 'closed', claimed_by = NULL, lease_until = NULL, updated_at = now(),
               -- the SLA clock stops (a paused one stays paused) and no timer fires
               sla_elapsed = g.sla_elapsed,
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

REVOKE ALL ON FUNCTION workqueue._close_unlisted(text, text, text[], text[]) FROM PUBLIC;

-- Sources without their secret headers, for everyone.
CREATE OR REPLACE VIEW workqueue.sources AS
    SELECT name, queue, ids_url, details_url, options - 'headers' AS options,
           options ? 'headers' AS has_headers, created_at, created_by, updated_at
      FROM workqueue.source;
