-- Queues, items and the audit trail of every item.
--
-- The SLA clock's columns of an item are added by src/sla/tables.sql, next
-- to the rules that use them.

CREATE TABLE workqueue.queue (
    name          text PRIMARY KEY CHECK (name <> ''),
    workflow      text NOT NULL DEFAULT 'review' REFERENCES workqueue.workflow (name),
    sla_policy    text,
    lease_timeout interval NOT NULL DEFAULT '15 minutes' CHECK (lease_timeout > interval '0'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL DEFAULT current_user,
    scope         text[] NOT NULL DEFAULT '{}',     -- the scope new items of the queue get
    -- the longest a lease may run from now: extend_lease() refuses more
    max_lease     interval NOT NULL DEFAULT '1 day' CHECK (max_lease > interval '0'),
    -- how long finished items are kept (doc/operations.md, "Retention");
    -- NULL: for ever
    retention     interval CHECK (retention > interval '0'),
    CONSTRAINT queue_lease_timeout_max CHECK (lease_timeout <= max_lease)
);

CREATE TABLE workqueue.item (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    -- no foreign keys to queue or workflow_version: checked per row, they
    -- cost a query per new item; the insert path reads both in the same
    -- transaction, and neither is ever deleted (doc/queue.md, "Integrity")
    queue            text NOT NULL,
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
    CHECK ((status = 'in_progress') = (claimed_by IS NOT NULL))
);
CREATE INDEX item_id_idx ON workqueue.item (id);
-- Inbox order: priority 1 first, then oldest; serves claim and list_items.
-- Two partial indexes, for the open and the done statuses: a query by
-- (queue, id) alone -- the foreign-key checks of every event, fetch and
-- child item -- can use neither, so it always takes the primary key.  (With
-- one index over every status, which ends in id, the planner could pick it
-- for those checks on a new or small table, and then scan the queue's whole
-- index range for every event of a big first load.)
CREATE INDEX item_inbox_idx ON workqueue.item (queue, status, priority, created_at, id)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX item_done_idx ON workqueue.item (queue, status, priority, created_at, id)
    WHERE status IN ('resolved', 'rejected', 'closed');
CREATE INDEX item_lease_idx ON workqueue.item (queue, lease_until) WHERE status = 'in_progress';
-- leases that run out, across queues, for the worker
CREATE INDEX item_lease_due_idx ON workqueue.item (lease_until) WHERE status = 'in_progress';
-- finished items by when they ended, for the retention purge (workqueue._purge)
CREATE INDEX item_ended_idx ON workqueue.item (queue, (coalesce(resolved_at, updated_at)))
    WHERE status IN ('resolved', 'rejected', 'closed');
-- least_loaded assignment counts each member's open items
CREATE INDEX item_assignee_idx ON workqueue.item (assignee)
    WHERE assignee IS NOT NULL AND status IN ('open', 'in_progress');
-- children of a parent (and the parent foreign key's checks)
CREATE INDEX item_parent_idx ON workqueue.item (queue, parent_id) WHERE parent_id IS NOT NULL;
-- items with a scope, for row-level security (src/core/scopes.sql)
CREATE INDEX item_scope_idx ON workqueue.item USING gin (scope) WHERE scope <> '{}';
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
                    'escalated', 'upstream_closed', 'upstream_reopened', 'fetch_completed', 'fetch_failed',
                    'sla_recomputed', 'lease_extended')),
    from_step text,
    to_step   text,
    payload   jsonb NOT NULL DEFAULT '{}',
    -- the transaction that wrote it; the default, workqueue._event_tx()
    -- (src/queue/queue.sql), also wakes the announce worker at its commit
    tx        xid8,
    -- no foreign key to item (a query per event): events are written only
    -- by the API for items it has just written or locked, and items are
    -- never deleted (doc/queue.md, "Integrity")
    PRIMARY KEY (queue, id)
);
CREATE INDEX item_event_item_idx ON workqueue.item_event (queue, item_id, id);
-- the events of the transactions that committed since the last announcement
CREATE INDEX item_event_tx_idx ON workqueue.item_event (tx);

-- Announcements (src/queue/announce.c): the snapshot up to which the
-- announce worker has sent NOTIFY workqueue for the events, and a batch in
-- progress (the snapshot it is announcing up to and the last event id sent).
-- One row.  Not part of a dump: a restored database starts afresh (its
-- transaction ids are not the dumped cluster's, so the events the dump
-- brings, written before "since", are never announced).
CREATE TABLE workqueue.announce_state (
    one          bool PRIMARY KEY DEFAULT true CHECK (one),
    since        timestamptz NOT NULL DEFAULT clock_timestamp(),  -- events written before are not announced
    snapshot     pg_snapshot NOT NULL DEFAULT pg_current_snapshot(),
    pending      pg_snapshot,
    after_id     bigint NOT NULL DEFAULT 0,
    announced_at timestamptz,
    events       bigint NOT NULL DEFAULT 0      -- announced since the row was made
);
INSERT INTO workqueue.announce_state DEFAULT VALUES;

-- Fencing (doc/workflows.md, "Moving items"): a worker whose claim on an
-- item ended with its lease run out -- swept by the worker, taken over by
-- claim(), or ended by someone else's transition or release or by an
-- upstream close -- may not act on the item until it claims it again
-- (while the item is resolved or rejected the fence does not apply).  One
-- row per such worker and item, until then.  A table of its own: fences are
-- rare, an item may fence several workers, and the item row stays as it is.
CREATE TABLE workqueue.lease_fence (
    queue       text NOT NULL,
    item_id     bigint NOT NULL,
    worker      text NOT NULL,
    lease_until timestamptz NOT NULL,       -- when the worker's lease ran out
    PRIMARY KEY (queue, item_id, worker),
    FOREIGN KEY (queue, item_id) REFERENCES workqueue.item (queue, id)
);
-- the fences of a worker in a queue, which its claim ends
CREATE INDEX lease_fence_worker_idx ON workqueue.lease_fence (queue, worker);

-- Retention (doc/operations.md, "Retention"): one row per purge, the
-- worker's pass over a queue that deleted its finished items older than the
-- queue's retention, with their events, fences and finished fetches.  Its
-- counters grow with each batch, in the batch's transaction; finished_at is
-- set when the pass finds nothing more (a pass cut short by a restart goes
-- on in the same row).  Counts and times only: everyone may read it.
CREATE TABLE workqueue.purge (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue           text NOT NULL,
    retention       interval NOT NULL,      -- the queue's, when the pass began
    cutoff          timestamptz NOT NULL,   -- items that ended before it went
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,            -- NULL while the pass goes on
    batches         int NOT NULL DEFAULT 0,
    items           bigint NOT NULL DEFAULT 0,
    events          bigint NOT NULL DEFAULT 0,
    fences          bigint NOT NULL DEFAULT 0,
    fetches         bigint NOT NULL DEFAULT 0,
    -- the range of the purged items' ends (resolved_at; updated_at if closed)
    oldest_resolved timestamptz,
    newest_resolved timestamptz
);
CREATE INDEX purge_queue_idx ON workqueue.purge (queue, id);
-- one pass in progress per queue
CREATE UNIQUE INDEX purge_open_idx ON workqueue.purge (queue) WHERE finished_at IS NULL;

SELECT pg_catalog.pg_extension_config_dump('workqueue.queue', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.purge', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.item', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.item_event', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.lease_fence', '');
-- The identity sequences too (a setval in the dump), or the ids of a
-- restored database start again at 1 (doc/operations.md, "Backup and
-- restore"); the same for sync_run and fetch.
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.item', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.item_event', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.purge', 'id'), '');

-- Privileges (read for everyone, writes only through the API, for
-- administrators too): src/core/grants.sql.
