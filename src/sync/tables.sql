-- Sync: sources describe an external API that lists open cases; sync runs,
-- executed by the sync worker, keep a queue in step with it.

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
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('workqueue.sync_run', 'id'), '');

-- Source options may hold API tokens (headers): only administrators read
-- them (everyone else reads the view workqueue.sources, src/sync/sync.sql;
-- privileges: src/core/grants.sql).
