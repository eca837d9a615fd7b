-- The background workers' side in SQL: waking them at commit and reading
-- their state from shared memory (C: src/worker/launcher.c).

-- Wakes this database's worker when the current transaction commits.
CREATE OR REPLACE FUNCTION workqueue._wake() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'workqueue_wake';

REVOKE ALL ON FUNCTION workqueue._wake() FROM PUBLIC;

-- Wakes this database's fetch worker when the transaction commits (C).
CREATE OR REPLACE FUNCTION workqueue._wake_fetch() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'workqueue_wake_fetch';

REVOKE ALL ON FUNCTION workqueue._wake_fetch() FROM PUBLIC;

-- Keeps this database's background workers out of the tables until the
-- caller's transaction ends: each of their transactions takes the same
-- advisory lock in share mode first (C: src/worker/xact.c).  For
-- distribute() and the table changes of an update of a distributed install
-- (doc/scale-out.md).
CREATE OR REPLACE FUNCTION workqueue._hold_workers() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'workqueue_hold_workers';

REVOKE ALL ON FUNCTION workqueue._hold_workers() FROM PUBLIC;

-- For the DBA -----------------------------------------------------------------
-- The workers of this cluster, from shared memory (C).
CREATE OR REPLACE FUNCTION workqueue._workers(OUT database text, OUT kind text, OUT pid int, OUT started_at timestamptz,
                                   OUT last_loop_at timestamptz, OUT jobs_done bigint, OUT in_flight int)
    RETURNS SETOF record
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_workers';

-- For the DBA: the workers of this database and what waits for them.
-- (security_invoker: fetches and items through the reader's row-level
-- security, so counts and the last fetch error cover only the items the
-- reader may see)
CREATE OR REPLACE VIEW workqueue.worker_status WITH (security_invoker = true) AS
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
