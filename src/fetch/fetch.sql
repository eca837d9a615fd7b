-- Background fetches: one HTTP request for one item, executed by the fetch
-- worker (src/fetch/fetch.c) with retries and backoff.  Rules: doc/fetch.md.

-- Percent-encodes a string for a URL (C).
CREATE OR REPLACE FUNCTION workqueue._url_encode(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'workqueue_url_encode';

-- A fetch sends the source's headers (its API tokens) upstream and writes
-- the answer onto the item, which the caller can read: so a fetch may use
-- only a source of the item's own queue (issue 13.4), unless any_queue --
-- an administrator's call, or an on_enter hook of a workflow (which an
-- administrator defined: src/workflow/transition.c).  The item is looked
-- up first, so an item out of the caller's scopes answers "item N does not
-- exist" whatever the source.  Rules: doc/fetch.md, doc/security.md.
CREATE OR REPLACE FUNCTION workqueue._enqueue_fetch(item bigint, source text, any_queue boolean) RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    it workqueue.item := workqueue._item_for_update(_enqueue_fetch.item);
    fetch_id bigint;
    s workqueue.source;
BEGIN
    SELECT * INTO s FROM workqueue.source WHERE name = coalesce(_enqueue_fetch.source, it.source);
    IF NOT FOUND THEN
        IF coalesce(_enqueue_fetch.source, it.source) IS NULL THEN
            RAISE EXCEPTION 'item % has no source', it.id
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Name the source to fetch from: workqueue.enqueue_fetch(item, ''source'').';
        END IF;
        PERFORM workqueue._raise_undefined('source', coalesce(_enqueue_fetch.source, it.source),
                                           'Create it with workqueue.create_source().');
    END IF;
    IF s.queue <> it.queue AND NOT coalesce(_enqueue_fetch.any_queue, false) THEN
        RAISE EXCEPTION 'permission denied to fetch item % from source "%"', it.id, s.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Source "%s" belongs to queue "%s"; item %s is in queue "%s". '
                                  'A fetch sends the source''s headers upstream, so it may use only a source of the item''s own queue.',
                                  s.name, s.queue, it.id, it.queue),
                  HINT = format('Fetch from a source of queue "%s", or ask an administrator to queue the fetch.', it.queue);
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

REVOKE ALL ON FUNCTION workqueue._enqueue_fetch(bigint, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue.enqueue_fetch(item bigint, source text DEFAULT NULL) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT workqueue._enqueue_fetch(enqueue_fetch.item, enqueue_fetch.source, workqueue.is_admin())
$$;

CREATE OR REPLACE FUNCTION workqueue.retry_fetches(source text DEFAULT NULL, since timestamptz DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n int;                      -- fetches queued again
BEGIN
    PERFORM workqueue._require_admin('retry fetches');
    IF workqueue._citus() THEN
        RETURN workqueue._retry_fetches_citus(retry_fetches.source, retry_fetches.since);
    END IF;
    -- Lock the items first, in id order, as enqueue_fetch() and the fetch
    -- worker do: an enqueue_fetch() of one of them then either commits
    -- first (and the statement below, with a snapshot taken after the
    -- locks, sees its fetch and leaves the failed one alone) or waits and
    -- finds the fetch queued again here -- never two active fetches, never
    -- a unique violation (doc/fetch.md).
    PERFORM 1 FROM workqueue.item i
     WHERE (i.queue, i.id) IN (SELECT f.queue, f.item_id FROM workqueue.fetch f
                     WHERE f.status = 'failed'
                       AND (retry_fetches.source IS NULL OR f.source = retry_fetches.source)
                       AND (retry_fetches.since IS NULL OR f.finished_at >= retry_fetches.since))
     ORDER BY i.id
       FOR UPDATE;
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

-- retry_fetches() on a distributed install (doc/scale-out.md): Citus takes
-- row locks only in a statement on one shard, so the queues with failed
-- fetches are read first (no lock, all shards), then each queue's items
-- are locked in id order and its fetches queued again, as on one node.
CREATE OR REPLACE FUNCTION workqueue._retry_fetches_citus(source text, since timestamptz) RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text;
    k int;
    n int := 0;
BEGIN
    FOR q IN SELECT DISTINCT f.queue FROM workqueue.fetch f
              WHERE f.status = 'failed'
                AND (_retry_fetches_citus.source IS NULL OR f.source = _retry_fetches_citus.source)
                AND (_retry_fetches_citus.since IS NULL OR f.finished_at >= _retry_fetches_citus.since)
              ORDER BY 1 LOOP
        EXECUTE $q$
            SELECT count(*) FROM (
              SELECT 1 FROM workqueue.item i
               WHERE i.queue = $1
                 AND i.id IN (SELECT f.item_id FROM workqueue.fetch f
                               WHERE f.queue = $1 AND f.status = 'failed'
                                 AND ($2::text IS NULL OR f.source = $2)
                                 AND ($3::timestamptz IS NULL OR f.finished_at >= $3))
               ORDER BY i.id
                 FOR UPDATE) l$q$ INTO k USING q, _retry_fetches_citus.source, _retry_fetches_citus.since;
        EXECUTE $q$
            UPDATE workqueue.fetch f
               SET status = 'queued', attempts = 0, next_attempt_at = $4, error = NULL, http_status = NULL,
                   finished_at = NULL, started_at = NULL
             WHERE f.queue = $1 AND f.status = 'failed'
               AND ($2::text IS NULL OR f.source = $2)
               AND ($3::timestamptz IS NULL OR f.finished_at >= $3)
               AND NOT EXISTS (SELECT 1 FROM workqueue.fetch g
                                WHERE g.queue = $1 AND g.item_id = f.item_id AND g.status IN ('queued', 'processing'))
               AND f.id = (SELECT max(h.id) FROM workqueue.fetch h
                            WHERE h.queue = $1 AND h.item_id = f.item_id AND h.status = 'failed')$q$
            USING q, _retry_fetches_citus.source, _retry_fetches_citus.since, now();
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n + k;
    END LOOP;
    IF n > 0 THEN
        PERFORM workqueue._wake_fetch();
    END IF;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION workqueue._retry_fetches_citus(text, timestamptz) FROM PUBLIC;

-- cancel_fetch()'s lookup on a distributed install: the fetch's queue and
-- its item's scope are read first (no lock, all shards), the scope checked
-- here, and only then the fetch locked on its queue's shard.  NULL when
-- there is no such fetch or the caller may not see its item.
CREATE OR REPLACE FUNCTION workqueue._lock_fetch_citus(id bigint) RETURNS workqueue.fetch
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text;
    sc text[];
    f workqueue.fetch;
BEGIN
    SELECT g.queue, i.scope INTO q, sc
      FROM workqueue.fetch g JOIN workqueue.item i ON i.queue = g.queue AND i.id = g.item_id
     WHERE g.id = _lock_fetch_citus.id;
    IF NOT FOUND OR NOT workqueue._visible(sc) THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT g.* FROM workqueue.fetch g WHERE g.queue = $1 AND g.id = $2 FOR UPDATE'
       INTO f USING q, _lock_fetch_citus.id;
    RETURN f;
END
$$;

REVOKE ALL ON FUNCTION workqueue._lock_fetch_citus(bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue.cancel_fetch(id bigint) RETURNS workqueue.fetch
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    f workqueue.fetch;
BEGIN
    -- a fetch of an item out of the caller's scopes is not there (and is not
    -- locked: the scope is checked before the row lock is taken)
    IF workqueue._citus() THEN
        f := workqueue._lock_fetch_citus(cancel_fetch.id);
    ELSE
        SELECT g.* INTO f FROM workqueue.fetch g
         WHERE g.id = cancel_fetch.id
           AND EXISTS (SELECT 1 FROM workqueue.item i
                        WHERE i.queue = g.queue AND i.id = g.item_id AND workqueue._visible(i.scope))
           FOR UPDATE OF g;
    END IF;
    IF f.id IS NULL THEN
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
-- Takes up to n due fetches (processing, attempt counted), the longest due
-- first, in the order of fetch_due_idx and reading it only until n rows are
-- locked, so that a claim costs the same with 10 or 100,000 fetches queued.
-- Fetches due at the same instant (a batch enqueued in one transaction) come
-- in the index's order, the order they were queued in; ordering them by id
-- as well would sort the whole batch for every claim.  The plan is kept for
-- the session (PL/pgSQL), so it is made with only index probes and nested
-- loops to choose from (sorting, sequential scans, hash and merge joins
-- off): one made while the tables were small -- a queue filled a second
-- ago, statistics older than it -- must not collect and sort every due
-- fetch, or read every item, once they have grown.
CREATE OR REPLACE FUNCTION workqueue._claim_fetches(n int)
    RETURNS TABLE (queue text, id bigint, item_id bigint, source text, url text, body text,
                   attempts int, max_attempts int, external_id text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    SET enable_sort = off SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    -- (the rows locked are updated by ctid, not looked up again by key: a
    -- plan kept from a small table cannot pick another index of fetch for
    -- that, such as fetch_item_idx)
    WITH due AS (
        SELECT f.ctid AS tid FROM workqueue.fetch f
         WHERE f.status = 'queued' AND f.next_attempt_at <= now()
         ORDER BY f.next_attempt_at
         LIMIT _claim_fetches.n FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE workqueue.fetch f
           SET status = 'processing', attempts = f.attempts + 1, started_at = now(),
               worker_pid = pg_backend_pid()
          FROM due WHERE f.ctid = due.tid
        RETURNING f.queue, f.id, f.item_id, f.source, f.url, f.body, f.attempts, f.max_attempts)
    SELECT t.queue, t.id, t.item_id, t.source, t.url, t.body, t.attempts, t.max_attempts, i.external_id
      FROM taken t JOIN workqueue.item i ON i.queue = t.queue AND i.id = t.item_id;
END
$$;

REVOKE ALL ON FUNCTION workqueue._claim_fetches(int) FROM PUBLIC;

-- _claim_fetches() on a distributed install (the fetch worker asks this one
-- there: src/fetch/fetch.c).  Citus takes row locks only in a statement on
-- one shard: the queues with due fetches are read first (no lock, all
-- shards), the longest due first, then each queue's due fetches are locked
-- (SKIP LOCKED) and taken, up to n in all.
CREATE OR REPLACE FUNCTION workqueue._claim_fetches_citus(n int)
    RETURNS TABLE (queue text, id bigint, item_id bigint, source text, url text, body text,
                   attempts int, max_attempts int, external_id text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    q text;
    ids bigint[];
    left_over int := _claim_fetches_citus.n;
BEGIN
    FOR q IN SELECT f.queue FROM workqueue.fetch f
              WHERE f.status = 'queued' AND f.next_attempt_at <= now()
              GROUP BY f.queue ORDER BY min(f.next_attempt_at) LOOP
        EXIT WHEN left_over <= 0;
        EXECUTE $q$
            SELECT array_agg(d.id) FROM (
              SELECT f.id FROM workqueue.fetch f
               WHERE f.queue = $1 AND f.status = 'queued' AND f.next_attempt_at <= $3
               ORDER BY f.next_attempt_at
               LIMIT $2 FOR UPDATE SKIP LOCKED) d$q$ INTO ids USING q, left_over, now();
        CONTINUE WHEN ids IS NULL;
        RETURN QUERY EXECUTE $q$
            UPDATE workqueue.fetch f
               SET status = 'processing', attempts = f.attempts + 1, started_at = $3, worker_pid = $4
              FROM workqueue.item i
             WHERE f.queue = $1 AND f.id = ANY ($2) AND i.queue = $1 AND i.id = f.item_id
            RETURNING f.queue, f.id, f.item_id, f.source, f.url, f.body, f.attempts, f.max_attempts, i.external_id$q$
            USING q, ids, now(), pg_backend_pid();
        left_over := left_over - cardinality(ids);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION workqueue._claim_fetches_citus(int) FROM PUBLIC;

-- When the next queued fetch falls due (NULL if none).
CREATE OR REPLACE FUNCTION workqueue._next_fetch_at() RETURNS timestamptz
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT min(next_attempt_at) FROM workqueue.fetch WHERE status = 'queued'
$$;

-- At worker start: fetches a dead worker left in flight go back to the queue.
CREATE OR REPLACE FUNCTION workqueue._requeue_fetches() RETURNS int
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

REVOKE ALL ON FUNCTION workqueue._requeue_fetches() FROM PUBLIC;
