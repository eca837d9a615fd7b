-- workqueue 0.5 -> 0.6: the source moved into src/<capability>/ and the
-- install script is built from it.  One new table (lease_fence); every function, view
-- and policy is written again from src/ by the definitions that follow this
-- step in the built script.

-- Under load (doc/operations.md, "Upgrading"): the update takes the
-- locks of the tables it rewrites or gives policies at once, in the order
-- the writers take them (queue, item, item_event, fetch), rather than one by
-- one as its statements come -- a client that read its queue and waits to
-- insert an item would otherwise close a cycle with it.  And it waits ten
-- seconds, not one, before it looks for a deadlock, so that in a cycle with
-- a writer that locks in another order the writer (which may retry; the
-- workers do) is the one that gives way, not the update.  Both last until
-- the transaction of the ALTER EXTENSION ends (SET LOCAL).
SET LOCAL deadlock_timeout = '10s';
LOCK TABLE workqueue.queue, workqueue.item, workqueue.item_event, workqueue.fetch IN ACCESS EXCLUSIVE MODE;

-- _sla_start() and _sla_move() became one function, _sla_enter().
DROP FUNCTION IF EXISTS workqueue._sla_start(bigint[], bigint[], text[]);
DROP FUNCTION IF EXISTS workqueue._sla_move(bigint[], bigint[], text[]);

-- The fetch worker writes a turn with its own statements (src/fetch/fetch.c);
-- the SQL helpers it used before are gone.
DROP FUNCTION IF EXISTS workqueue._fetches_completed(text, text, jsonb, bigint[], int[]);
DROP FUNCTION IF EXISTS workqueue._fetch_failed(text, bigint, int, text, boolean, bigint);

-- Fencing that outlasts the sweep: the workers whose lease on an item ran
-- out and who have not claimed it since (src/queue/tables.sql).
CREATE TABLE workqueue.lease_fence (
    queue       text NOT NULL,
    item_id     bigint NOT NULL,
    worker      text NOT NULL,
    lease_until timestamptz NOT NULL,
    PRIMARY KEY (queue, item_id, worker),
    FOREIGN KEY (queue, item_id) REFERENCES workqueue.item (queue, id)
);
CREATE INDEX lease_fence_worker_idx ON workqueue.lease_fence (queue, worker);
SELECT pg_catalog.pg_extension_config_dump('workqueue.lease_fence', '');

-- Announcements sent by the announce worker, not by writers
-- (src/queue/announce.c): each event records its transaction; events
-- written before the update have none and are not announced again.
ALTER TABLE workqueue.item_event ADD COLUMN tx xid8;
CREATE INDEX item_event_tx_idx ON workqueue.item_event (tx);
CREATE TABLE workqueue.announce_state (
    one          bool PRIMARY KEY DEFAULT true CHECK (one),
    since        timestamptz NOT NULL DEFAULT clock_timestamp(),
    snapshot     pg_snapshot NOT NULL DEFAULT pg_current_snapshot(),
    pending      pg_snapshot,
    after_id     bigint NOT NULL DEFAULT 0,
    announced_at timestamptz,
    events       bigint NOT NULL DEFAULT 0
);
INSERT INTO workqueue.announce_state DEFAULT VALUES;

-- extend_lease() writes an event now (it announced without one before).
ALTER TABLE workqueue.item_event DROP CONSTRAINT item_event_kind_check;
ALTER TABLE workqueue.item_event ADD CONSTRAINT item_event_kind_check
    CHECK (kind IN ('created', 'synced', 'claimed', 'released', 'lease_expired',
                    'transition', 'comment', 'field_update', 'assigned', 'sla_warning', 'sla_breach',
                    'escalated', 'upstream_closed', 'upstream_reopened', 'fetch_completed', 'fetch_failed',
                    'sla_recomputed', 'lease_extended'));

-- The insert path without per-row foreign-key checks (src/queue/insert.c;
-- doc/queue.md, "Integrity"): item no longer references queue,
-- workflow_version, sla_policy and calendar, item_event no longer
-- references item; queues and items can no longer be deleted, nor a
-- queue's name or an item's queue changed, by workqueue_admin.
ALTER TABLE workqueue.item DROP CONSTRAINT item_queue_fkey,
                           DROP CONSTRAINT item_workflow_workflow_version_fkey,
                           DROP CONSTRAINT item_sla_policy_sla_policy_version_fkey,
                           DROP CONSTRAINT item_sla_calendar_sla_calendar_version_fkey;
ALTER TABLE workqueue.item_event DROP CONSTRAINT item_event_queue_item_id_fkey;

-- Leases bounded per queue (issue 13.6): extend_lease() refuses to run a
-- lease beyond now() + max_lease.  A queue whose lease_timeout is longer
-- than the default day keeps it as its maximum.
ALTER TABLE workqueue.queue ADD COLUMN max_lease interval NOT NULL DEFAULT '1 day' CHECK (max_lease > interval '0');
UPDATE workqueue.queue SET max_lease = lease_timeout WHERE lease_timeout > max_lease;
ALTER TABLE workqueue.queue ADD CONSTRAINT queue_lease_timeout_max CHECK (lease_timeout <= max_lease);

-- The identity sequences behind item, item_event, sync_run and fetch are
-- dumped too (a setval each), so that ids continue after a pg_restore
-- instead of starting again at 1 (doc/operations.md, "Backup and restore").
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.item', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.item_event', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.sync_run', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.fetch', 'id'), '');

-- Retention per queue (issue 14.3; doc/operations.md, "Retention"): the
-- queue's setting, the index the purge finds finished items by, the index
-- on fetch for the item foreign key's check, and the purges' summary rows.
ALTER TABLE workqueue.queue ADD COLUMN retention interval CHECK (retention > interval '0');
CREATE INDEX item_ended_idx ON workqueue.item (queue, (coalesce(resolved_at, updated_at)))
    WHERE status IN ('resolved', 'rejected', 'closed');
CREATE INDEX fetch_item_idx ON workqueue.fetch (queue, item_id);
CREATE TABLE workqueue.purge (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue           text NOT NULL,
    retention       interval NOT NULL,
    cutoff          timestamptz NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    batches         int NOT NULL DEFAULT 0,
    items           bigint NOT NULL DEFAULT 0,
    events          bigint NOT NULL DEFAULT 0,
    fences          bigint NOT NULL DEFAULT 0,
    fetches         bigint NOT NULL DEFAULT 0,
    oldest_resolved timestamptz,
    newest_resolved timestamptz
);
CREATE INDEX purge_queue_idx ON workqueue.purge (queue, id);
CREATE UNIQUE INDEX purge_open_idx ON workqueue.purge (queue) WHERE finished_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('workqueue.purge', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.purge', 'id'), '');

-- Scale-out on Citus (issue 15; src/scale/tables.sql, doc/scale-out.md):
-- whether workqueue.distribute() has distributed this install.
CREATE TABLE workqueue.scale_state (
    one        bool PRIMARY KEY DEFAULT true CHECK (one),
    mode       text NOT NULL DEFAULT 'single' CHECK (mode IN ('single', 'citus')),
    changed_at timestamptz,
    changed_by text
);
INSERT INTO workqueue.scale_state DEFAULT VALUES;
