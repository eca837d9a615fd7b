-- workqueue 0.2 -> 0.3: background enrichment fetches, lease expiry by the
-- worker, and views for the DBA.

\echo Use "ALTER EXTENSION workqueue UPDATE TO '0.3'" to load this file. \quit

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
