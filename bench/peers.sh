#!/usr/bin/env bash
# bench/peers.sh — workqueue next to its peers (issue 12): pgmq 1.5.1 and the
# hand-written SQL queue a user would write, on the same cluster in the same
# run, each on a fresh queue, printed as rates and ratios.
#
#   bash bench/peers.sh
#
# Needs a cluster with workqueue in shared_preload_libraries, reached through
# the usual PGHOST/PGPORT/PGUSER/PGPASSWORD, as a role that may create
# databases and extensions.  pgmq is used when the cluster offers version
# 1.5.1; otherwise the script builds it from the vendored release
# (/work/shared/vendor/pgmq-a589028.tar.gz, or PGMQ_TARBALL) with PGXS and
# installs it (needs root and the cluster on this machine); when that fails
# it says why and leaves the pgmq column empty.
#
# Sides.  Each is loaded with the same BENCH_ITEMS (100k) open items (the
# same records: external id, priority 1-5, small data) in a template
# database, VACUUM ANALYZEd; every measurement runs in a fresh copy of that
# template (CREATE DATABASE ... STRATEGY FILE_COPY), CHECKPOINTed before
# pgbench.  The drain rows load BENCH_DRAIN_ITEMS instead (default: 25,000
# per second of run, at least BENCH_ITEMS; 250k at 10 s), so that no side
# runs dry: a single-item claim that finds nothing fails its \gset.
#   workqueue        workqueue.add / upsert_items / add_many / claim /
#                    transition(_many)
#   plain SQL        a table with lease columns and an audit table (one event
#                    row per action, a foreign key), written by plain SQL
#                    statements: INSERT, a FOR UPDATE SKIP LOCKED claim that
#                    first hands expired leases back, a checked status
#                    UPDATE; no NOTIFY (plain_schema below)
#   pgmq             pgmq.send / send_batch / read / delete
#   workqueue (fresh, no ANALYZE)
#                    workqueue again, on a queue whose tables were never
#                    vacuumed or analyzed (its template is not, and
#                    autovacuum is off on workqueue.item and item_event), as
#                    a queue created and loaded right before the run: plans
#                    must not depend on statistics
# Work (pgbench -n -T BENCH_SECONDS -c BENCH_CLIENTS -j BENCH_JOBS):
#   enqueue1   one item per call                                  jobs/s
#   enqueue10k calls of BENCH_BULK (10k) records, distinct ids    items/s
#              (workqueue: upsert_items)
#   enqueue10k_many  the same calls, workqueue through add_many   items/s
#   drain1     BEGIN; claim 1; resolve it; COMMIT, with BENCH_CLIENTS and
#              with BENCH_MANY_CLIENTS (16)                        items/s
#   drain10    BEGIN; claim 10; resolve them; COMMIT               items/s
# Rates count rows afterwards (items added, items resolved or deleted) and
# divide by BENCH_SECONDS.  Checked after every run: pgbench had no failed
# or aborted client; workqueue and plain: every new item has exactly one
# 'created' event, every resolved item exactly one 'claimed' and one
# 'transition' event, nothing resolved twice or left claimed; pgmq: nothing
# left read but not deleted; no queue ran dry.  Sequential scans of the item
# and event tables during a run are counted and reported (a warning, not a
# failure).  Then a probe: one claim, rolled back, on a never-analyzed queue
# of each of BENCH_PROBE_SIZES (1k 10k 50k BENCH_ITEMS) items, with the item
# rows it read (more than 100: a warning).  Exits non-zero only when a check
# fails, never for a missed target.  Results go to stdout and
# bench/results/peers.txt.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_peers
name=peers
items=${BENCH_ITEMS:-100000}
seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-4}
many=${BENCH_MANY_CLIENTS:-16}
jobs=${BENCH_JOBS:-2}
bulk=${BENCH_BULK:-10000}
# the drain rows take up to ~20k items/s here: their queues must not run dry
drain_items=${BENCH_DRAIN_ITEMS:-$((items > 25000 * seconds ? items : 25000 * seconds))}
batch=10
works=${BENCH_WORKS:-enqueue1 enqueue10k enqueue10k_many drain1 drain1many drain10}
# shellcheck disable=SC2086  # (a list of sizes)
probe_sizes=$(printf '%s\n' ${BENCH_PROBE_SIZES-1000 10000 50000 $items} | sort -nu | tr '\n' ' ')
pgmq_tarball=${PGMQ_TARBALL:-/work/shared/vendor/pgmq-a589028.tar.gz}
pgmq_version=1.5.1
tpl_prefix=wq_bench_peers_tpl
# shellcheck source=bench/lib.sh
source ./lib.sh     # $tmp, q, log, save_results

# shellcheck disable=SC2317  # (called by the trap)
cleanup() {
    local d
    for d in "$db" $(psql -X -At -d postgres -c "SELECT datname FROM pg_database
                                                  WHERE datname LIKE '${tpl_prefix}%'" 2>/dev/null); do
        dropdb --if-exists "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

ge() {      # ge A B: A >= B (numbers)
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "-" && a + 0 >= b + 0) }'
}
qd() {      # qd DB SQL: one query in DB
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

: >"$tmp/log"
touch "$tmp/problems" "$tmp/audit" "$tmp/warnings" "$tmp/probe"

# ---------------------------------------------------------------------------
# pgmq: use it if the cluster has 1.5.1, else build it from the vendored
# release.  Sets pgmq_note (what happened) and has_pgmq.
has_pgmq=false
pgmq_available() {
    [[ $(qd postgres "SELECT count(*) FROM pg_available_extension_versions
                       WHERE name = 'pgmq' AND version = '$pgmq_version'") == 1 ]]
}
# a checksum of the installed workqueue library and install scripts
installed_sum() {
    local pgc
    pgc=$(find_pg_config) || { echo "?"; return 0; }
    cat "$("$pgc" --pkglibdir)/workqueue.so" "$("$pgc" --sharedir)"/extension/workqueue--*.sql 2>/dev/null |
        md5sum | cut -c1-12
}
find_pg_config() {
    local c
    for c in "${PG_CONFIG:-}" /usr/lib/postgresql/15/bin/pg_config "$(command -v pg_config || true)"; do
        [[ -n $c && -x $c ]] && "$c" --version | grep -q 'PostgreSQL 15\.' && { echo "$c"; return 0; }
    done
    return 1
}
install_pgmq() {
    local pgc dir
    if ! pgc=$(find_pg_config); then
        pgmq_note="no pg_config of PostgreSQL 15 found"; return 1
    fi
    if [[ ! -r $pgmq_tarball ]]; then
        pgmq_note="$pgmq_tarball is missing"; return 1
    fi
    echo "== building pgmq $pgmq_version from $pgmq_tarball" >&2
    mkdir "$tmp/pgmq"
    tar xzf "$pgmq_tarball" -C "$tmp/pgmq"
    dir=$(dirname "$(find "$tmp/pgmq" -name pgmq.control | head -1)")
    if ! (cd "$dir" && make PG_CONFIG="$pgc" && make install PG_CONFIG="$pgc") >"$tmp/pgmq-build.log" 2>&1; then
        pgmq_note="building or installing it failed ($(tail -1 "$tmp/pgmq-build.log"))"; return 1
    fi
    if ! pgmq_available; then
        pgmq_note="installed into $("$pgc" --sharedir), but the server does not offer it (another machine?)"
        return 1
    fi
    pgmq_note="pgmq $pgmq_version built from $(basename "$pgmq_tarball") and installed"
}
if pgmq_available; then
    has_pgmq=true; pgmq_note="pgmq $pgmq_version (already installed)"
elif install_pgmq; then
    has_pgmq=true
else
    pgmq_note="pgmq $pgmq_version is not available and could not be installed: $pgmq_note; the pgmq column is skipped"
    echo "== $pgmq_note" >&2
fi
sides="workqueue plain"
$has_pgmq && sides+=" pgmq"
sides+=" fresh"

# ---------------------------------------------------------------------------
# The hand-written queue: the columns that matter, a unique external id, an
# inbox index in claim order, a partial index of leases, and an audit table
# with a foreign key.
plain_schema() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" >/dev/null <<'SQL'
CREATE SCHEMA plain;
CREATE TABLE plain.items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue       text NOT NULL,
    external_id text,
    step        text NOT NULL,
    status      text NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'in_progress', 'resolved', 'rejected', 'closed')),
    priority    smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    claimed_by  text,
    lease_until timestamptz,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (queue, external_id),
    CHECK ((status = 'in_progress') = (claimed_by IS NOT NULL))
);
CREATE INDEX items_inbox_idx ON plain.items (queue, status, priority, created_at, id);
CREATE INDEX items_lease_idx ON plain.items (queue, lease_until) WHERE status = 'in_progress';
CREATE TABLE plain.events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id   bigint NOT NULL REFERENCES plain.items (id),
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text NOT NULL,
    kind      text NOT NULL,
    from_step text,
    to_step   text,
    payload   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_item_idx ON plain.events (item_id, id);
SQL
}

# the records every side is loaded with, $1..$2
records() {
    echo "SELECT g, jsonb_build_object('external_id', 'L-' || g, 'priority', 1 + (g::bigint * 7919) % 5,
                                      'data', jsonb_build_object('title', 'Case ' || g, 'n', g)) AS r
            FROM generate_series($1, $2) g"
}

# The input of one enqueue10k call, kept as text as a client would send it:
# BENCH_BULK records whose external ids hold '@', replaced by a fresh number
# for every call (so every call inserts new items), as a jsonb array for
# workqueue and plain SQL and as a jsonb[] for pgmq.send_batch.
payload_table() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" >/dev/null <<SQL
CREATE TABLE bench_payload (kind text PRIMARY KEY, body text NOT NULL);
ALTER TABLE bench_payload ALTER body SET STORAGE EXTERNAL;
CREATE SEQUENCE bench_call;
INSERT INTO bench_payload
SELECT 'jsonb', jsonb_agg(r ORDER BY g)::text FROM (
    SELECT g, jsonb_build_object('external_id', 'B@-' || g, 'priority', 1 + g % 5,
                                 'data', jsonb_build_object('title', 'Case ' || g, 'n', g)) AS r
      FROM generate_series(1, $bulk) g) x;
INSERT INTO bench_payload
SELECT 'jsonb[]', array_agg(e ORDER BY o)::text
  FROM bench_payload, jsonb_array_elements(body::jsonb) WITH ORDINALITY x(e, o) WHERE kind = 'jsonb';
SQL
}

# upsert DB FROM TO: records FROM..TO into workqueue queue "bench" of DB,
# 100k per call
upsert() {
    local d=$1 lo hi chunk=100000
    for ((lo = $2; lo <= $3; lo += chunk)); do
        hi=$((lo + chunk - 1 < $3 ? lo + chunk - 1 : $3))
        qd "$d" "SELECT inserted FROM workqueue.upsert_items('bench',
                     (SELECT jsonb_agg(r ORDER BY g) FROM ($(records "$lo" "$hi")) x))" >/dev/null
    done
}

# new_queue DB: workqueue and an empty queue "bench" whose tables autovacuum
# leaves alone, so that they stay never analyzed
new_queue() {
    qd "$1" "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
    qd "$1" "SELECT workqueue.create_queue('bench')" >/dev/null
    qd "$1" "ALTER TABLE workqueue.item SET (autovacuum_enabled = off);
             ALTER TABLE workqueue.item_event SET (autovacuum_enabled = off)" >/dev/null
}

# load SIDE DB N: the extension or schema of SIDE and its queue "bench" with
# N open items, in DB.
load() {
    local side=$1 d=$2 items=$3 lo hi chunk=100000
    case $side in
    workqueue)
        qd "$d" "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
        qd "$d" "SELECT workqueue.create_queue('bench')" >/dev/null
        upsert "$d" 1 "$items"
        ;;
    fresh)
        new_queue "$d"
        upsert "$d" 1 "$items"
        ;;
    plain)
        plain_schema "$d"
        qd "$d" "WITH i AS (
                     INSERT INTO plain.items (queue, external_id, step, priority, data)
                     SELECT 'bench', r->>'external_id', 'review', (r->>'priority')::smallint, r->'data'
                       FROM ($(records 1 "$items")) x ORDER BY g
                     RETURNING id, step, priority, external_id)
                 INSERT INTO plain.events (item_id, actor, kind, to_step, payload)
                 SELECT id, current_user, 'created', step,
                        jsonb_build_object('priority', priority, 'external_id', external_id)
                   FROM i" >/dev/null
        ;;
    pgmq)
        qd "$d" "CREATE EXTENSION IF NOT EXISTS pgmq VERSION '$pgmq_version'" >/dev/null
        qd "$d" "SELECT pgmq.create('bench')" >/dev/null
        for ((lo = 1; lo <= items; lo += chunk)); do
            hi=$((lo + chunk - 1 < items ? lo + chunk - 1 : items))
            qd "$d" "SELECT count(*) FROM pgmq.send_batch('bench',
                         (SELECT array_agg(r ORDER BY g) FROM ($(records "$lo" "$hi")) x))" >/dev/null
        done
        ;;
    esac
    payload_table "$d"
}

# template SIDE N: SIDE's template database with N items, loaded unless it
# exists, then vacuumed and analyzed -- except for "fresh", whose tables are
# never vacuumed or analyzed (its copies have no statistics, as a queue
# just created and loaded)
template() {
    local side=$1 n=$2 tpl="${tpl_prefix}_$1_$2"
    if [[ $(qd postgres "SELECT count(*) FROM pg_database WHERE datname = '$tpl'") == 0 ]]; then
        echo "== loading the $side template ($n items)" >&2
        createdb "$tpl"
        load "$side" "$tpl" "$n"
        [[ $side == fresh ]] || qd "$tpl" "VACUUM ANALYZE" >/dev/null
    fi
}
# prepare SIDE N: the database of one measurement, a new copy of SIDE's
# template with N items
prepare() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    template "$1" "$2"
    createdb -S FILE_COPY -T "${tpl_prefix}_$1_$2" "$db"
    qd "$db" "CHECKPOINT" >/dev/null
}

# probe: one claim (rolled back) on a never-analyzed queue of each of
# BENCH_PROBE_SIZES items, loaded in steps into one new database: the item
# rows it reads and its time.  A claim must read a few rows whatever the
# planner knows.
probe() {
    local n loaded=0 r0 r1 t reads
    dropdb --if-exists "$db" >/dev/null 2>&1
    createdb "$db"
    new_queue "$db"
    payload_table "$db"
    for n in $probe_sizes; do
        ((n > loaded)) || continue
        upsert "$db" $((loaded + 1)) "$n"
        loaded=$n
        wait_idle
        r0=$(table_stats fresh | cut -d'|' -f2)
        t=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c '\timing on' -c "BEGIN" \
                -c "SELECT count(*) FROM workqueue.claim('bench', 1, 'probe')" -c "ROLLBACK" |
            sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | sed -n 2p)
        wait_idle
        r1=$(table_stats fresh | cut -d'|' -f2)
        reads=$((r1 - r0))
        printf '  %8d items: %7d item rows read, %8.1f ms\n' "$n" "$reads" "$t" >>"$tmp/probe"
        if ((reads > 100)); then
            echo "claim on a never-analyzed queue of $n items read $reads item rows in $t ms" \
                 "(a plan that reads the whole queue)" >>"$tmp/warnings"
        fi
    done
    dropdb --if-exists "$db" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
# pgbench scripts: script WORK SIDE prints the path of the script
w="'w' || :client_id"
expire_plain="x AS (
    UPDATE plain.items i SET status = 'open', claimed_by = NULL, lease_until = NULL, updated_at = now()
     WHERE i.id IN (SELECT id FROM plain.items
                     WHERE queue = 'bench' AND status = 'in_progress' AND lease_until <= now()
                       FOR UPDATE SKIP LOCKED)
    RETURNING i.id, i.step),
xe AS (
    INSERT INTO plain.events (item_id, actor, kind, from_step, to_step)
    SELECT id, 'system', 'lease_expired', step, step FROM x)"
claim_plain() {     # claim_plain N: the CTEs of a claim of N items, ending in u
    echo "WITH $expire_plain,
c AS (
    SELECT id FROM plain.items WHERE queue = 'bench' AND status = 'open'
     ORDER BY priority, created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED),
u AS (
    UPDATE plain.items i SET status = 'in_progress', claimed_by = $w,
           lease_until = now() + interval '15 minutes', updated_at = now()
      FROM c WHERE i.id = c.id
    RETURNING i.id, i.step, i.lease_until),
e AS (
    INSERT INTO plain.events (item_id, actor, kind, from_step, to_step, payload)
    SELECT id, $w, 'claimed', step, step, jsonb_build_object('lease_until', lease_until) FROM u)"
}
resolve_plain() {   # resolve_plain CONDITION: resolve the items CONDITION selects, if held
    echo "WITH u AS (
    UPDATE plain.items
       SET step = 'resolved', status = 'resolved', resolved_at = now(), claimed_by = NULL,
           lease_until = NULL, updated_at = now()
     WHERE $1 AND status = 'in_progress' AND claimed_by = $w AND lease_until > now() AND step = 'review'
    RETURNING id)
INSERT INTO plain.events (item_id, actor, kind, from_step, to_step, payload)
SELECT id, $w, 'transition', 'review', 'resolved', '{\"transition\": \"resolve\"}' FROM u;"
}
ids_of() {          # ids_of COLUMN: \gset-able text of an array literal
    echo "'ARRAY[' || coalesce(string_agg($1::text, ','), '') || ']::bigint[]' AS ids"
}
payload() {         # payload KIND CAST: this call's input, parsed
    echo "(SELECT replace(body, '@', nextval('bench_call')::text)::$2 FROM bench_payload WHERE kind = '$1')"
}
script() {
    local work=$1 side=${2/fresh/workqueue} f="$tmp/$1-$2.sql" data="jsonb_build_object('title', 'Case', 'n', :n)"
    case $work,$side in
    enqueue1,workqueue)
        printf '%s\n' '\set n random(1, 1000000000)' "SELECT workqueue.add('bench', $data);" ;;
    enqueue1,pgmq)
        printf '%s\n' '\set n random(1, 1000000000)' "SELECT pgmq.send('bench', $data);" ;;
    enqueue1,plain)
        printf '%s\n' '\set n random(1, 1000000000)' "WITH i AS (
    INSERT INTO plain.items (queue, step, priority, data) VALUES ('bench', 'review', 3, $data)
    RETURNING id, step, priority)
INSERT INTO plain.events (item_id, actor, kind, to_step, payload)
SELECT id, current_user, 'created', step, jsonb_build_object('priority', priority, 'external_id', NULL) FROM i;" ;;
    enqueue10k,workqueue)
        echo "SELECT inserted FROM workqueue.upsert_items('bench', $(payload jsonb jsonb));" ;;
    enqueue10k_many,workqueue)
        echo "SELECT count(*) FROM workqueue.add_many('bench', $(payload jsonb jsonb));" ;;
    enqueue10k,pgmq|enqueue10k_many,pgmq)
        echo "SELECT count(*) FROM pgmq.send_batch('bench', $(payload 'jsonb[]' 'jsonb[]'));" ;;
    enqueue10k,plain|enqueue10k_many,plain)
        echo "WITH i AS (
    INSERT INTO plain.items (queue, external_id, step, priority, data)
    SELECT 'bench', r->>'external_id', 'review', (r->>'priority')::smallint, r->'data'
      FROM jsonb_array_elements($(payload jsonb jsonb)) r
    RETURNING id, step, priority, external_id)
INSERT INTO plain.events (item_id, actor, kind, to_step, payload)
SELECT id, current_user, 'created', step, jsonb_build_object('priority', priority, 'external_id', external_id)
  FROM i;" ;;
    drain1,workqueue|drain1many,workqueue)
        printf '%s\n' "BEGIN;" "SELECT id FROM workqueue.claim('bench', 1, $w) \\gset" \
            "SELECT step FROM workqueue.transition(:id, 'resolve', actor => $w);" "COMMIT;" ;;
    drain1,pgmq|drain1many,pgmq)
        printf '%s\n' "BEGIN;" "SELECT msg_id FROM pgmq.read('bench', 30, 1) \\gset" \
            "SELECT pgmq.delete('bench', :msg_id);" "COMMIT;" ;;
    drain1,plain|drain1many,plain)
        printf '%s\n' "BEGIN;" "$(claim_plain 1)" "SELECT id FROM u \\gset" "$(resolve_plain 'id = :id')" "COMMIT;" ;;
    drain10,workqueue)
        printf '%s\n' "BEGIN;" "SELECT $(ids_of id) FROM workqueue.claim('bench', $batch, $w) \\gset" \
            "SELECT workqueue.transition_many(:ids, 'resolve', actor => $w);" "COMMIT;" ;;
    drain10,pgmq)
        printf '%s\n' "BEGIN;" "SELECT $(ids_of msg_id) FROM pgmq.read('bench', 30, $batch) \\gset" \
            "SELECT count(*) FROM pgmq.delete('bench', :ids);" "COMMIT;" ;;
    drain10,plain)
        printf '%s\n' "BEGIN;" "$(claim_plain $batch)" "SELECT $(ids_of id) FROM u \\gset" \
            "$(resolve_plain 'id = ANY (:ids)')" "COMMIT;" ;;
    esac >"$f"
    echo "$f"
}

# ---------------------------------------------------------------------------
# counts and checks

# the item and event tables of SIDE
tables() {
    case ${1/fresh/workqueue} in
    workqueue) echo "workqueue item item_event" ;;
    plain)     echo "plain items events" ;;
    pgmq)      echo "pgmq q_bench -" ;;
    esac
}
# table_stats SIDE: "seq scans of the item table|item rows read (by
# sequential and index scans)|seq scans of the event table" so far, and
# whether the item table was ever analyzed by autovacuum
table_stats() {
    local s t1 t2
    read -r s t1 t2 <<<"$(tables "$1")"
    qd "$db" "SELECT coalesce(sum(seq_scan) FILTER (WHERE relname = '$t1'), 0) || '|' ||
                     coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))
                              FILTER (WHERE relname = '$t1'), 0) || '|' ||
                     coalesce(sum(seq_scan) FILTER (WHERE relname = '$t2'), 0) || '|' ||
                     coalesce(bool_or(last_autoanalyze IS NOT NULL) FILTER (WHERE relname = '$t1'), false)
                FROM pg_stat_user_tables WHERE schemaname = '$s'"
}
# wait until pgbench's backends have gone (and flushed their statistics)
wait_idle() {
    local _
    for _ in $(seq 100); do
        [[ $(qd "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                   AND backend_type = 'client backend' AND pid <> pg_backend_pid()") == 0 ]] && return
        sleep 0.1
    done
}
# count WORK SIDE N: prints "rows|problem text" — items added or drained
# from the N loaded, and what is wrong with the audit trail or the queue
# (empty: nothing)
count() {
    local work=$1 side=${2/fresh/workqueue} items=$3
    case $work,$side in
    enqueue*,workqueue|enqueue*,plain)
        local item=workqueue.item ev=workqueue.item_event key="queue, item_id"
        [[ $side == plain ]] && { item=plain.items; ev=plain.events; key=item_id; }
        # the events' foreign key holds: as many created events as items and
        # none twice is one created event for every item
        qd "$db" "SELECT (SELECT count(*) FROM $item) - $items || '|' || concat_ws(', ',
            nullif((SELECT count(*) FROM $item) - (SELECT count(*) FROM $ev WHERE kind = 'created'), 0)
                || ' more items than created events',
            nullif((SELECT count(*) FROM (SELECT FROM $ev WHERE kind = 'created' GROUP BY $key
                                           HAVING count(*) > 1) d), 0) || ' items created twice')" ;;
    enqueue*,pgmq)
        qd "$db" "SELECT count(*) - $items || '|' FROM pgmq.q_bench" ;;
    drain*,workqueue|drain*,plain)
        local item=workqueue.item ev=workqueue.item_event join="e.queue = i.queue AND e.item_id = i.id"
        [[ $side == plain ]] && { item=plain.items; ev=plain.events; join="e.item_id = i.id"; }
        qd "$db" "WITH r AS (SELECT i.id,
                         count(*) FILTER (WHERE e.kind = 'claimed') AS claimed,
                         count(*) FILTER (WHERE e.kind = 'transition') AS moved
                    FROM $item i JOIN $ev e ON $join WHERE i.status = 'resolved' GROUP BY i.id)
            SELECT (SELECT count(*) FROM r) || '|' || concat_ws(', ',
                nullif((SELECT count(*) FROM r WHERE moved > 1), 0) || ' items resolved twice',
                nullif((SELECT count(*) FROM r WHERE claimed <> 1 OR moved <> 1), 0)
                    || ' resolved items without exactly one claimed and one transition event',
                nullif((SELECT count(*) FROM $ev WHERE kind = 'transition')
                       - (SELECT count(*) FROM r), 0) || ' transition events more than resolved items',
                nullif((SELECT count(*) FROM $item WHERE status = 'in_progress'), 0) || ' items left claimed',
                CASE WHEN NOT EXISTS (SELECT FROM $item WHERE status = 'open')
                     THEN 'the queue ran dry: raise BENCH_DRAIN_ITEMS (now $items) for a valid rate' END)" ;;
    drain*,pgmq)
        qd "$db" "SELECT $items - count(*) || '|' || concat_ws(', ',
            nullif(count(*) FILTER (WHERE read_ct > 0), 0) || ' messages read but not deleted',
            CASE WHEN count(*) = 0 THEN 'the queue ran dry: raise BENCH_DRAIN_ITEMS (now $items) for a valid rate' END)
            FROM pgmq.q_bench" ;;
    esac
}

label_of() {
    case $1 in
    enqueue1)   echo "enqueue, 1 per call (jobs/s)" ;;
    enqueue10k) echo "enqueue, $((bulk / 1000))k per call, upsert (items/s)" ;;
    enqueue10k_many) echo "enqueue, $((bulk / 1000))k per call, add_many (items/s)" ;;
    drain1)     echo "drain 1 + complete, $clients cl (items/s)" ;;
    drain1many) echo "drain 1 + complete, $many cl (items/s)" ;;
    drain10)    echo "drain $batch + complete, $clients cl (items/s)" ;;
    esac
}

# run WORK SIDE: one measured run; sets rate[WORK,SIDE]
declare -A rate
run() {
    local work=$1 side=$2 f out c=$clients rc=0 n problem loaded=$items t1 t2 seq evseq reads per txs
    local seq0 read0 evseq0 analyzed0 seq1 read1 evseq1 analyzed1
    [[ $work == drain1many ]] && c=$many
    [[ $work == drain* ]] && loaded=$drain_items
    echo "== $work / $side" >&2
    prepare "$side" "$loaded"
    f=$(script "$work" "$side")
    out="$tmp/$work-$side.out"
    IFS='|' read -r seq0 read0 evseq0 analyzed0 <<<"$(table_stats "$side")"
    pgbench -n -c "$c" -j "$jobs" -T "$seconds" -f "$f" "$db" >"$out" 2>&1 || rc=$?
    wait_idle
    IFS='|' read -r seq1 read1 evseq1 analyzed1 <<<"$(table_stats "$side")"
    if [[ $rc != 0 ]] || grep -qiE 'aborted|error' "$out" || ! grep -qE 'number of failed transactions: 0 ' "$out"; then
        {
            echo "$work / $side: pgbench failed (exit status $rc):"
            grep -iE 'aborted|error|failed' "$out" | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /'
        } >>"$tmp/problems"
        rate[$work,$side]="ERR"
    fi
    IFS='|' read -r n problem <<<"$(count "$work" "$side" "$loaded")"
    [[ -n $problem ]] && echo "$work / $side: $problem" >>"$tmp/problems"
    [[ ${rate[$work,$side]:-} == ERR ]] || rate[$work,$side]=$((n / seconds))
    read -r _ t1 t2 <<<"$(tables "$side")"
    seq=$((seq1 - seq0)); evseq=$((evseq1 - evseq0)); reads=$((read1 - read0))
    per=$(awk -v r="$reads" -v n="$n" 'BEGIN { if (n > 0) printf "%.1f", r / n; else print "-" }')
    txs=$(sed -n 's/^number of transactions actually processed: //p' "$out")
    if [[ $side != pgmq ]] && { ((seq + evseq > 0)) || { [[ $per != - ]] && ge "$per" 100; }; }; then
        echo "$work / $side: $seq sequential scans of $t1 and $evseq of $t2 during the run;" \
             "$reads rows of $t1 read, $per per item" >>"$tmp/warnings"
    fi
    if [[ $side == workqueue || $side == fresh ]]; then
        echo "$work / $side: $n items, $txs transactions; $t1: $seq seq scans, $per rows read per item;" \
             "$t2: $evseq seq scans$([[ $analyzed0 == f && $analyzed1 == t ]] && echo \
             "; autovacuum analyzed $t1 during the run")${problem:+; $problem}" >>"$tmp/audit"
    fi
    echo "   $n rows in $seconds s = ${rate[$work,$side]}/s ($(grep -E '^latency average' "$out" | sed 's/latency average = //')" \
         "per pgbench transaction, $c clients)" >&2
    dropdb --if-exists "$db" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
log "workqueue vs pgmq and plain SQL — $(date -u '+%Y-%m-%d %H:%M UTC')"
log "$(qd postgres "SELECT 'server: ' || version()" | cut -c1-80)"
log "$(qd postgres "SELECT 'settings: synchronous_commit=' || current_setting('synchronous_commit')
    || ', fsync=' || current_setting('fsync') || ', shared_buffers=' || current_setting('shared_buffers')")"
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
    "workqueue $(git -C .. rev-parse --short HEAD 2>/dev/null || echo '?')$(
    git -C .. diff --quiet HEAD -- sql src 2>/dev/null || echo ' (+ uncommitted changes)')"
installed0=$(installed_sum)
log "installed workqueue files (library and scripts): md5 $installed0"
log "peers: $pgmq_note; plain SQL: plain tables and statements, no NOTIFY"
log "run: ${seconds} s per run, $clients clients (-j $jobs; drain 1 also $many); queues loaded with $items items" \
    "(drain rows: $drain_items); enqueue batches of $bulk, drain batches of $batch"
log ""

cleanup_templates() {
    local d
    for d in $(qd postgres "SELECT datname FROM pg_database WHERE datname LIKE '${tpl_prefix}%'"); do
        dropdb "$d"
    done
}
cleanup_templates       # left by an interrupted run
# every template first, workqueue's first: CREATE EXTENSION reads the
# install script when it runs, the server runs the library it loaded at its
# start, and on a shared machine another build may be installed meanwhile
sizes=$(for work in $works; do [[ $work == drain* ]] && echo "$drain_items" || echo "$items"; done | sort -nu)
for side in workqueue fresh plain pgmq; do
    [[ " $sides " == *" $side "* ]] || continue
    for n in $sizes; do template "$side" "$n"; done
done
for work in $works; do
    case $work in enqueue1|enqueue10k|enqueue10k_many|drain1|drain1many|drain10) ;; *) echo "unknown work $work" >&2; exit 2 ;; esac
    for side in $sides; do
        run "$work" "$side"
    done
done
if [[ -n ${probe_sizes// /} ]]; then
    echo "== probe: claim on never-analyzed queues of $probe_sizes items" >&2
    probe
fi
if [[ $(installed_sum) != "$installed0" ]]; then
    echo "the installed workqueue files changed during the run (another build was installed): the figures" \
         "may mix builds, and a database created after the change may not match the library the server runs" \
         >>"$tmp/warnings"
fi

# ---------------------------------------------------------------------------
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'
}
verdict() { # verdict CONDITION...: "met" when every condition holds
    local ok=met c
    for c in "$@"; do eval "$c" || ok=MISSED; done
    echo "$ok"
}
r() { echo "${rate[$1,$2]:--}"; }
row() {
    printf '%-38s %10s %10s %10s %8s %8s  %s\n' "$@"
}
target() {  # target WORK SIDE: the target of WORK and whether SIDE meets it
    local work=$1 s=$2 p=plain g=pgmq wp wg
    wp=$(ratio "$(r "$work" "$s")" "$(r "$work" $p)")
    wg=$(ratio "$(r "$work" "$s")" "$(r "$work" $g)")
    local nog=""; $has_pgmq || nog=" (no pgmq)"
    case $work in
    enqueue1)
        echo ">= 1.0x pgmq: $($has_pgmq && verdict "ge $wg 1.0" || echo "-")" ;;
    enqueue10k|enqueue10k_many)
        echo ">= 150k/s, >= 0.5x pgmq: $(verdict "ge $(r "$work" "$s") 150000" "$has_pgmq && ge $wg 0.5 || ! $has_pgmq")$nog" ;;
    drain1)
        echo ">= 1.3x plain and pgmq: $(verdict "ge $wp 1.3" "$has_pgmq && ge $wg 1.3 || ! $has_pgmq")$nog" ;;
    drain1many)
        local y; y=$(ratio "$(r "$work" "$s")" "$(r drain1 "$s")")
        echo ">= 1.3x plain and pgmq, >= $clients cl: $(verdict "ge $wp 1.3" "$has_pgmq && ge $wg 1.3 || ! $has_pgmq" \
            "[[ $y == - ]] || ge $y 1")$nog ($(sed 's/[0-9]$/&x/' <<<"$y") the $clients-cl rate)" ;;
    drain10)
        local x; x=$(ratio "$(r "$work" "$s")" "$(r drain1 "$s")")
        echo ">= 2x the 1-item rate: $([[ $x == - ]] && echo "- (no 1-item rate)" || echo "$(verdict "ge $x 2") (${x}x)")" ;;
    esac
}
{
    row "work" "workqueue" "plain SQL" "pgmq" "wq/plain" "wq/pgmq" "target"
    for work in $works; do
        row "$(label_of "$work")" "$(r "$work" workqueue)" "$(r "$work" plain)" "$(r "$work" pgmq)" \
            "$(ratio "$(r "$work" workqueue)" "$(r "$work" plain)")" "$(ratio "$(r "$work" workqueue)" "$(r "$work" pgmq)")" \
            "$(target "$work" workqueue)"
        row "  workqueue (fresh, no ANALYZE)" "$(r "$work" fresh)" "" "" \
            "$(ratio "$(r "$work" fresh)" "$(r "$work" plain)")" "$(ratio "$(r "$work" fresh)" "$(r "$work" pgmq)")" \
            "$(ratio "$(r "$work" fresh)" "$(r "$work" workqueue)" | sed 's/[0-9]$/&x/') the analyzed queue"
    done
    echo
    echo "wq/plain, wq/pgmq: workqueue's rate over the peer's (> 1: workqueue is faster). Rates are rows counted"
    echo "afterwards / $seconds s; one run each on a $(nproc)-core machine: expect tens of percent of noise."
    echo
    echo "workqueue runs (items added or resolved, pgbench transactions, scans of its tables during the run):"
    sed 's/^/  /' "$tmp/audit"
    if [[ -s $tmp/probe ]]; then
        echo
        echo "one claim (rolled back) on a never-analyzed queue, loaded in steps:"
        cat "$tmp/probe"
    fi
    if [[ -s $tmp/warnings ]]; then
        echo
        echo "WARNINGS (not failures):"
        sed 's/^/  /' "$tmp/warnings"
    fi
} | tee -a "$tmp/log"

status=0
if [[ -s $tmp/problems ]]; then
    { echo; echo "PROBLEMS:"; sed 's/^/  /' "$tmp/problems"; } | tee -a "$tmp/log"
    status=1
fi
save_results
echo "(written to bench/results/$name.txt)"
exit $status
