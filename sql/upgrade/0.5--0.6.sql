-- workqueue 0.5 -> 0.6: the source moved into src/<capability>/ and the
-- install script is built from it.  One new table (lease_fence); every function, view
-- and policy is written again from src/ by the definitions that follow this
-- step in the built script.

-- _sla_start() and _sla_move() became one function, _sla_enter().
DROP FUNCTION IF EXISTS workqueue._sla_start(bigint[], bigint[], text[]);
DROP FUNCTION IF EXISTS workqueue._sla_move(bigint[], bigint[], text[]);

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
REVOKE ALL ON workqueue.lease_fence FROM PUBLIC;
GRANT SELECT ON workqueue.lease_fence TO PUBLIC;
GRANT ALL ON workqueue.lease_fence TO workqueue_admin;
