-- Background fetches: one HTTP request for one item.  The failed rows are
-- the dead-letter queue.

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
-- every fetch of an item: the foreign key's check when an item is purged
-- (workqueue._purge), which would otherwise read the whole table per item
CREATE INDEX fetch_item_idx ON workqueue.fetch (queue, item_id);

SELECT pg_catalog.pg_extension_config_dump('workqueue.fetch', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.fetch', 'id'), '');
