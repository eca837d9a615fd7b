-- How this install is laid out (src/scale/scale.sql, doc/scale-out.md):
-- 'single' (one PostgreSQL) or 'citus' (distributed by workqueue.distribute()
-- on a Citus coordinator).  One row, on every node: the workers of a Citus
-- cluster hold their own copy of the extension and of this row.
CREATE TABLE workqueue.scale_state (
    one        bool PRIMARY KEY DEFAULT true CHECK (one),
    mode       text NOT NULL DEFAULT 'single' CHECK (mode IN ('single', 'citus')),
    changed_at timestamptz,
    changed_by text
);
INSERT INTO workqueue.scale_state DEFAULT VALUES;
