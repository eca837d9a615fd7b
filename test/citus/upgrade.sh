#!/usr/bin/env bash
# test/citus/upgrade.sh — ALTER EXTENSION workqueue UPDATE on a distributed
# install with data in place (issue 15.3), and distribute()'s coverage of
# the schema's tables.  Runs under test/citus/cluster.sh like basic.sh
# (PG* name the coordinator, WQ_CITUS_WORKERS the workers).
#
# There is no 0.7 yet: the test writes a throw-away update 0.6 -> 0.6.1 into
# the extension directory of its private tree (all nodes share it on this
# box) and one back, each built as a real update script is (a step, then
# every definition of src/, sql/upgrade/README.md): the step adds a column
# and an index to item, fills the column, and the way back drops both.
# Afterwards every shard, every worker and the coordinator must have the
# same columns and indexes, and the API must still work.  The scripts are
# removed at the end and the install is left at 0.6 as it was found.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"

ext=$(pg_config --sharedir)/extension
[[ -f $ext/workqueue--0.5--0.6.sql ]] || ext=${CITUS_PREFIX:-}/usr/share/postgresql/15/extension
defs=$(sed -n '/^-- ==== src\//,$p' "$ext/workqueue--0.5--0.6.sql")     # the definitions of 0.6
cleanup() { rm -f "$ext/workqueue--0.6--0.6.1.sql" "$ext/workqueue--0.6.1--0.6.sql"; }
trap cleanup EXIT

# again SQL: its error (the name is from when a distributed deadlock with the
# nodes' background workers was retried here; the workers' gate,
# src/worker/xact.c, ended that race: doc/scale-out.md)
again() {
    qerr "SET client_min_messages = warning; $1"
}

# tables distributed or reference, as the coordinator knows them
citus_tables="SELECT logicalrelid FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'workqueue.%'"
# a table's columns and indexes, as one line, without names of shards or
# indexes (%1$s: the table or shard, as run_command_on_shards() names it)
shape="SELECT coalesce((SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END,
                                          ', ' ORDER BY attnum)
                          FROM pg_attribute WHERE attrelid = '%1\$s'::regclass AND attnum > 0 AND NOT attisdropped), '')
            || ' | ' || coalesce((SELECT string_agg(d, ', ' ORDER BY d)
                                    FROM (SELECT regexp_replace(pg_get_indexdef(indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', '\\1') AS d
                                            FROM pg_index WHERE indrelid = '%1\$s'::regclass) i), '')"
same_shape() {  # same_shape DESCRIPTION: every table has one shape on every shard and node
    local bad
    bad=$(q "WITH t AS ($citus_tables),
                  here AS (SELECT logicalrelid AS rel, result AS v
                             FROM t, LATERAL run_command_on_coordinator(replace(\$s\$$shape\$s\$, '%1\$s', logicalrelid::text))),
                  there AS (SELECT logicalrelid AS rel, 'shard ' || shardid AS at, result AS v
                              FROM t, LATERAL run_command_on_shards(logicalrelid, \$s\$$shape\$s\$)
                            UNION ALL
                            SELECT logicalrelid, 'node ' || nodeport, result
                              FROM t, LATERAL run_command_on_workers(replace(\$s\$$shape\$s\$, '%1\$s', logicalrelid::text)))
             SELECT count(*) || coalesce(' differ, e.g. ' || min(x.rel::text || ' on ' || x.at || ': ' || x.v
                                                          || E'\n#     coordinator: ' || h.v), '')
               FROM there x JOIN here h USING (rel)
              WHERE x.v IS DISTINCT FROM h.v" 2>&1)
    ok "$([[ $bad == 0 ]]; echo $?)" "$1"
    [[ $bad == 0 ]] || echo "#   $bad"
}

# --- every table has its place ----------------------------------------------

is "$(again "SELECT workqueue.distribute()")" "" "distribute() (again)"
is "$(q "SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
          WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p')
            AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid
                             AND (p.partmethod = 'n' OR (p.partmethod = 'h'
                                  AND column_to_column_name(p.logicalrelid, p.partkey) = 'queue'
                                  AND p.colocationid = (SELECT colocationid FROM pg_dist_partition
                                                         WHERE logicalrelid = 'workqueue.item'::regclass))))")" \
   "announce_state, scale_state" \
   "every table is a reference table, distributed by queue with item, or local (announce_state, scale_state: doc/scale-out.md)"
same_shape "before the update: one shape per table on every shard and node"

# --- data in place -----------------------------------------------------------

ins="INSERT INTO workqueue.item (queue, step, workflow, workflow_version, data"
q "SET client_min_messages = warning; SELECT workqueue.create_queue('uq1'); SELECT workqueue.create_queue('uq2')" >/dev/null
q "$ins) SELECT 'uq' || (g % 2 + 1), 'review', 'review', 1, jsonb_build_object('n', g) FROM generate_series(1, 40) g" >/dev/null
q "INSERT INTO workqueue.item_event (queue, item_id, actor, kind) SELECT queue, id, 'test', 'comment' FROM workqueue.item
    WHERE queue IN ('uq1', 'uq2')" >/dev/null
items_before=$(q "SELECT count(*) || ' ' || sum((data->>'n')::int) FROM workqueue.item WHERE queue IN ('uq1', 'uq2')")
events_before=$(q "SELECT count(*) FROM workqueue.item_event")
is "$items_before" "40 820" "40 items in two queues before the update"

# --- 0.6 -> 0.6.1: a column and an index on item ---------------------------

shards=$(q "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'workqueue.item'::regclass")

{
    echo "\\echo Use \"ALTER EXTENSION workqueue UPDATE TO '0.6.1'\" to load this file. \\quit"
    cat <<'STEP'
-- a test's step (test/citus/upgrade.sh): table changes one statement at a
-- time through workqueue._cluster_command() (sql/upgrade/README.md), after
-- the locks of the tables it changes, taken at once in the writers' order
SET LOCAL deadlock_timeout = '10s';
SELECT workqueue._cluster_command($$LOCK TABLE workqueue.queue, workqueue.item, workqueue.item_event IN ACCESS EXCLUSIVE MODE$$);
SELECT workqueue._cluster_command($$ALTER TABLE workqueue.item ADD COLUMN probe text NOT NULL DEFAULT 'new'$$);
SELECT workqueue._cluster_command($$CREATE INDEX item_probe_idx ON workqueue.item (queue, probe)$$);
SELECT workqueue._cluster_command($$UPDATE workqueue.item SET probe = 'old' WHERE created_at < now()$$);
-- a new table: on every node, then placed by distribute() (which does not
-- know this one)
CREATE TABLE workqueue.probe_new (id int PRIMARY KEY);
STEP
    echo "$defs"
} >"$ext/workqueue--0.6--0.6.1.sql"
{
    echo "\\echo Use \"ALTER EXTENSION workqueue UPDATE TO '0.6'\" to load this file. \\quit"
    echo "SET LOCAL deadlock_timeout = '10s';"
    echo "SELECT workqueue._cluster_command(\$\$LOCK TABLE workqueue.queue, workqueue.item IN ACCESS EXCLUSIVE MODE\$\$);"
    echo "SELECT workqueue._cluster_command(\$\$DROP INDEX workqueue.item_probe_idx\$\$);"
    echo "SELECT workqueue._cluster_command(\$\$ALTER TABLE workqueue.item DROP COLUMN probe\$\$);"
    echo "DROP TABLE workqueue.probe_new;"
    echo "$defs"
} >"$ext/workqueue--0.6.1--0.6.sql"
chmod 644 "$ext/workqueue--0.6--0.6.1.sql" "$ext/workqueue--0.6.1--0.6.sql"

# With DDL propagation off the coordinator would change its own table only.
is "$(qerr "SET citus.enable_ddl_propagation = off; ALTER EXTENSION workqueue UPDATE TO '0.6.1'")" \
   "cannot update a distributed workqueue with DDL propagation off" \
   "the update is refused with citus.enable_ddl_propagation off"
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'workqueue'")" 0.6 "... and nothing changed"

is "$(again "ALTER EXTENSION workqueue UPDATE TO '0.6.1'")" "" \
   "ALTER EXTENSION workqueue UPDATE TO '0.6.1' on the coordinator"
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'workqueue'")" 0.6.1 "the coordinator is at 0.6.1"
for w in "${workers[@]}"; do
    is "$(qw "$w" "SELECT extversion FROM pg_extension WHERE extname = 'workqueue'")" 0.6.1 "worker $w is at 0.6.1"
    is "$(qw "$w" "SELECT count(*) FROM pg_attribute WHERE attrelid = 'workqueue.item'::regclass AND attname = 'probe'")" 1 \
       "worker $w: item has the new column"
    is "$(qw "$w" "SELECT count(*) FROM pg_indexes WHERE schemaname = 'workqueue' AND indexname = 'item_probe_idx'")" 1 \
       "worker $w: item has the new index"
done
is "$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE success AND result = '1')
           FROM run_command_on_shards('workqueue.item', \$\$SELECT count(*) FROM pg_attribute
                                       WHERE attrelid = '%s'::regclass AND attname = 'probe'\$\$)")" "$shards $shards" \
   "every item shard has the new column ($shards)"
is "$(q "SELECT count(*) FILTER (WHERE success AND result = '1')
           FROM run_command_on_shards('workqueue.item', \$\$SELECT count(*) FROM pg_index i JOIN pg_attribute a
                    ON a.attrelid = i.indexrelid WHERE i.indrelid = '%s'::regclass AND a.attname = 'probe'\$\$)")" "$shards" \
   "every item shard has the new index"
same_shape "after the update: one shape per table on every shard and node"
is "$(q "SELECT count(*) || ' ' || sum((data->>'n')::int) FROM workqueue.item WHERE queue IN ('uq1', 'uq2')")" "$items_before" \
   "the items are all there"
is "$(q "SELECT count(*) FROM workqueue.item_event")" "$events_before" "... and their events"
is "$(q "SELECT string_agg(DISTINCT probe, ',') FROM workqueue.item WHERE queue IN ('uq1', 'uq2')")" old \
   "the step's data change reached every shard"

# --- the API after the update -------------------------------------------------

is "$(qerr "SET client_min_messages = warning; SELECT workqueue.create_queue('uq3')")" "" "create_queue works after the update"
is "$(q "$ins) SELECT 'uq3', 'review', 'review', 1, '{}' FROM generate_series(1, 3) RETURNING probe" | sort -u)" new \
   "an INSERT routed by queue gets the new column's default"
is "$(qw "${workers[0]}" "$ins) VALUES ('uq3', 'review', 'review', 1, '{}') RETURNING probe")" new \
   "... also through worker ${workers[0]}"
is "$(q "SELECT count(*) FROM workqueue.list_items('uq1')")" 20 "list_items works after the update"
id=$(q "SELECT min(id) FROM workqueue.item WHERE queue = 'uq1'")
is "$(q "SELECT count(*) FROM workqueue.history($id)")" 1 "history works after the update"
is "$(q "SELECT sum(open + in_progress + done + closed) FROM workqueue.queue_stats WHERE queue LIKE 'uq_'")" 44 "queue_stats works after the update"
for w in "${workers[@]}"; do
    is "$(qw "$w" "SELECT to_regclass('workqueue.probe_new') IS NOT NULL")" t "worker $w: the new table is there"
done
is "$(qerr "SELECT workqueue.distribute()")" "workqueue.distribute() does not know table probe_new" \
   "distribute() refuses a table that is in none of its lists"

# --- and back: 0.6.1 -> 0.6 ----------------------------------------------------

is "$(again "ALTER EXTENSION workqueue UPDATE TO '0.6'")" "" \
   "ALTER EXTENSION workqueue UPDATE TO '0.6' (drops the column and the index)"
is "$(q "SELECT string_agg(DISTINCT result, ',') FROM run_command_on_workers(
           \$\$SELECT extversion FROM pg_extension WHERE extname = 'workqueue'\$\$)")" 0.6 "every worker is back at 0.6"
is "$(q "SELECT count(*) FILTER (WHERE success AND result = '0')
           FROM run_command_on_shards('workqueue.item', \$\$SELECT count(*) FROM pg_attribute
                                       WHERE attrelid = '%s'::regclass AND attname = 'probe' AND NOT attisdropped\$\$)")" "$shards" \
   "no item shard has the column"
same_shape "after the way back: one shape per table on every shard and node"
# (again: the known race of distribute() with the coordinator's background
# workers, doc/scale-out.md -- run it once more, as a user would)
is "$(again "DO \$\$ BEGIN IF workqueue.distribute() <> 'already distributed' THEN RAISE EXCEPTION 'not already distributed'; END IF; END \$\$")" "" \
   "distribute() after the way back: nothing to do (already distributed)"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue LIKE 'uq_'")" 44 "the items are all there"

finish
