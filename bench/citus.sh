#!/usr/bin/env bash
# bench/citus.sh — claim + transition on a distributed install next to a
# single node, and the cost of routing one statement (issue 15.5).
#
#   bash test/citus/cluster.sh start; eval "$(bash test/citus/cluster.sh env)"
#   bash bench/citus.sh
#
# PG* name the Citus coordinator, whose database (PGDATABASE, "postgres")
# holds workqueue, distributed here if it is not yet.  The single node is the
# same server, in a database of its own (wq_bench_citus_single, dropped at
# the end) without the citus extension: the same binaries and settings, one
# node, in the same run.  On this box the three nodes share the machine
# (2 cores): the cluster figures show the overhead of distribution, not its
# scaling (doc/scale-out.md, "Benchmark").
#
# 1. claim + resolve, BENCH_CLIENTS (4) pgbench clients on BENCH_QUEUES (8)
#    queues of BENCH_ITEMS (15000) open items each, BENCH_SECONDS (10) per
#    run; each pgbench transaction picks a queue at random, claims
#    BENCH_BATCH (10) items and resolves them:
#      api    workqueue.claim + workqueue.transition_many
#      sql    the same as plain SQL on workqueue's tables, routed by queue:
#             one statement claims (FOR UPDATE SKIP LOCKED in inbox order)
#             and writes the 'claimed' events, one resolves and writes the
#             'transition' events
#    The api side runs on the cluster only when claim() works there (issue
#    15 part 2); the bench says which.
# 2. routing: one client, BENCH_SECONDS per statement, the latency of a point
#    read by (queue, id) and of a one-row UPDATE by (queue, id).
#
# After each run: no item claimed twice (events), none left in progress.
# Results go to stdout and bench/results/citus.txt.
set -euo pipefail
cd "$(dirname "$0")"
db=${PGDATABASE:-postgres}
single=wq_bench_citus_single
name=citus
queues=${BENCH_QUEUES:-8}
items=${BENCH_ITEMS:-15000}
seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-4}
jobs=${BENCH_JOBS:-2}
batch=${BENCH_BATCH:-10}
prefix=bench_citus_

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench-$name.XXXXXX")
mkdir -p results
# shellcheck disable=SC2317  # (called by the trap)
cleanup() {
    dropdb --if-exists "$single" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

qd() {      # qd DATABASE SQL: one value
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "SET client_min_messages = warning" -c "$2"
}
log() { echo "$*" | tee -a "$tmp/log"; }

# (bash test/run.sh bench runs every bench/*.sh on a single node: skipped there)
if [[ $(qd "$db" "SELECT count(*) FROM pg_extension WHERE extname = 'citus'" 2>/dev/null) != 1 ]]; then
    echo "bench/citus.sh: skipped: no citus in database $db (PG* must name a Citus coordinator," \
         "e.g. of bash test/citus/cluster.sh start: doc/scale-out.md, \"Benchmark\")"
    exit 0
fi
qd "$db" "SELECT workqueue.distribute()" >/dev/null

dropdb --if-exists "$single" >/dev/null 2>&1
createdb "$single"
qd "$single" "CREATE EXTENSION workqueue" >/dev/null

# load DB: the bench queues, emptied, with $items open items each (what
# add() writes for the item; no 'created' events, on both sides)
load() {
    local d=$1 i
    for i in $(seq "$queues"); do
        qd "$d" "SELECT workqueue.create_queue('$prefix$i') WHERE NOT EXISTS
                   (SELECT 1 FROM workqueue.queue WHERE name = '$prefix$i')" >/dev/null
        qd "$d" "DELETE FROM workqueue.item_event WHERE queue = '$prefix$i'" >/dev/null
        qd "$d" "DELETE FROM workqueue.lease_fence WHERE queue = '$prefix$i'" >/dev/null
        qd "$d" "DELETE FROM workqueue.item WHERE queue = '$prefix$i'" >/dev/null
        qd "$d" "INSERT INTO workqueue.item (queue, step, status, priority, data, workflow, workflow_version, created_at)
                 SELECT '$prefix$i', 'review', 'open', 1 + (g * 7919) % 5, jsonb_build_object('n', g), 'review', 1,
                        now() - ($items - g) * interval '1 ms'
                   FROM generate_series(1, $items) g" >/dev/null
    done
    qd "$d" "VACUUM ANALYZE workqueue.item" >/dev/null
    qd "$d" "VACUUM ANALYZE workqueue.item_event" >/dev/null
}

script() {  # script SIDE: the pgbench script of one claim + resolve
    local f=$tmp/$1.sql w="'w' || :client_id"
    case $1 in
    api)
        cat >"$f" <<SQL
\set q random(1, $queues)
BEGIN;
SELECT 'ARRAY[' || coalesce(string_agg(id::text, ','), '') || ']::bigint[]' AS ids
  FROM workqueue.claim('$prefix' || :q, $batch, $w) \gset
SELECT workqueue.transition_many(:ids, 'resolve', '{}', $w);
COMMIT;
SQL
        ;;
    sql)
        # (each statement a single task on the queue's shard: a modifying
        # CTE feeding an INSERT would be planned in two steps by Citus)
        local ev="string_agg(format('(%L, %s, %L, %L, %L, %L)', queue, id, 'w:client_id'"
        cat >"$f" <<SQL
\set q random(1, $queues)
BEGIN;
WITH u AS (UPDATE workqueue.item i SET status = 'in_progress', claimed_by = 'w:client_id',
                  lease_until = now() + interval '15 minutes', updated_at = now()
            WHERE i.queue = '$prefix:q'
              AND i.id IN (SELECT x.id FROM workqueue.item x WHERE x.queue = '$prefix:q' AND x.status = 'open'
                            ORDER BY x.priority, x.created_at, x.id LIMIT $batch FOR UPDATE SKIP LOCKED)
           RETURNING i.queue, i.id, i.step)
SELECT $ev, 'claimed', step, step), ', ') AS vals,
       'ARRAY[' || string_agg(id::text, ',') || ']::bigint[]' AS ids FROM u \gset
INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step) VALUES :vals;
WITH u AS (UPDATE workqueue.item i SET step = 'resolved', status = 'resolved', resolved_at = now(),
                  claimed_by = NULL, lease_until = NULL, updated_at = now()
            WHERE i.queue = '$prefix:q' AND i.id = ANY (:ids) AND i.claimed_by = 'w:client_id'
           RETURNING i.queue, i.id)
SELECT $ev, 'transition', 'review', 'resolved'), ', ') AS vals FROM u \gset
INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step) VALUES :vals;
COMMIT;
SQL
        ;;
    esac
    echo "$f"
}

# pgbench_run DB SCRIPT CLIENTS LABEL: runs it, prints the pgbench output's
# tps and latency; a failed client is a problem
pgbench_run() {
    local out=$tmp/$4.out rc=0
    pgbench -n -c "$3" -j "$(($3 < jobs ? $3 : jobs))" -T "$seconds" -f "$2" "$1" >"$out" 2>&1 || rc=$?
    if [[ $rc != 0 ]] || ! grep -qE 'number of failed transactions: 0 ' "$out"; then
        { echo "$4: pgbench failed (exit status $rc):"; sed 's/^/    /' "$out"; } >>"$tmp/problems"
    fi
}
latency() { sed -nE 's/^latency average = ([0-9.]+) ms/\1/p' "$tmp/$1.out"; }

resolved_check() {  # resolved_check DB LABEL: prints items resolved; checks the audit
    local d=$1 row n doubles left
    row=$(qd "$d" "SELECT (SELECT count(*) FROM workqueue.item WHERE queue LIKE '$prefix%' AND status = 'resolved'),
                          (SELECT count(*) FROM (SELECT queue, item_id FROM workqueue.item_event
                                                  WHERE queue LIKE '$prefix%' AND kind = 'claimed'
                                                  GROUP BY 1, 2 HAVING count(*) > 1) d),
                          (SELECT count(*) FROM workqueue.item WHERE queue LIKE '$prefix%' AND status = 'in_progress'),
                          (SELECT count(*) FROM workqueue.queue WHERE name LIKE '$prefix%')
                          - (SELECT count(DISTINCT queue) FROM workqueue.item WHERE queue LIKE '$prefix%' AND status = 'open')")
    IFS='|' read -r n doubles left dry <<<"$row"
    [[ $doubles == 0 && $left == 0 ]] ||
        echo "$2: $doubles items claimed twice, $left left in progress" >>"$tmp/problems"
    [[ $dry == 0 ]] || echo "$2: $dry queues ran dry; raise BENCH_ITEMS (now $items)" >>"$tmp/problems"
    echo "$n"
}

: >"$tmp/log"
touch "$tmp/problems"
log "claim + resolve and routing, Citus cluster vs single node — $(date -u '+%Y-%m-%d %H:%M UTC')"
log "server: $(qd "$db" "SELECT version()" | cut -c1-60); citus $(qd "$db" "SELECT extversion FROM pg_extension WHERE extname = 'citus'")"
log "cluster: coordinator + $(qd "$db" "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND groupid > 0") workers" \
    "on this machine ($(nproc) cores shared by all nodes); synchronous_commit=$(qd "$db" "SHOW synchronous_commit"), fsync=$(qd "$db" "SHOW fsync")"
log "run: $clients clients (-j $jobs), $queues queues of $items open items, batch $batch, ${seconds} s per run"
log ""

# Does the API claim on the cluster?
load "$db"
log "the $queues queues' shards: $(qd "$db" "SELECT string_agg(format('%s on %s', n, nodeport), ', ' ORDER BY nodeport)
      FROM (SELECT p.nodeport, count(*) AS n FROM workqueue.queue q,
                   LATERAL (SELECT nodeport FROM pg_dist_shard_placement
                             WHERE shardid = get_shard_id_for_distribution_column('workqueue.item', q.name)) p
             WHERE q.name LIKE '$prefix%' GROUP BY 1) x")"
log ""
api_err=$(psql -X -q -At -v VERBOSITY=terse -d "$db" -c "BEGIN" \
    -c "SELECT count(*) FROM workqueue.claim('${prefix}1', 1, 'probe')" -c "ROLLBACK" 2>&1 >/dev/null | head -1 || true)

declare -A rate
for side in sql api; do
    for where in single cluster; do
        d=$([[ $where == single ]] && echo "$single" || echo "$db")
        if [[ $side == api && $where == cluster && -n $api_err ]]; then
            rate[$side,$where]="-"
            continue
        fi
        load "$d"
        pgbench_run "$d" "$(script "$side")" "$clients" "$side-$where"
        n=$(resolved_check "$d" "$side/$where")
        rate[$side,$where]=$((n / seconds))
        echo "    $side / $where: $n items resolved in $seconds s ($(latency "$side-$where") ms per pgbench transaction)" >&2
    done
done

# routing: one statement, one client
id=$(qd "$db" "SELECT min(id) FROM workqueue.item WHERE queue = '${prefix}1'")
ids=$(qd "$single" "SELECT min(id) FROM workqueue.item WHERE queue = '${prefix}1'")
declare -A lat
for stmt in read update; do
    for where in single cluster; do
        d=$([[ $where == single ]] && echo "$single" || echo "$db")
        i=$([[ $where == single ]] && echo "$ids" || echo "$id")
        f=$tmp/$stmt.sql
        case $stmt in
        read)   echo "SELECT status FROM workqueue.item WHERE queue = '${prefix}1' AND id = $i;" >"$f" ;;
        update) echo "UPDATE workqueue.item SET updated_at = now() WHERE queue = '${prefix}1' AND id = $i;" >"$f" ;;
        esac
        pgbench_run "$d" "$f" 1 "$stmt-$where"
        lat[$stmt,$where]=$(latency "$stmt-$where")
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }'; }
row() { printf '%-46s %12s %12s %8s\n' "$@"; }
{
    row "" "single node" "cluster" "ratio"
    row "claim + resolve, plain SQL routed (items/s)" "${rate[sql,single]}" "${rate[sql,cluster]}" \
        "$(ratio "${rate[sql,cluster]}" "${rate[sql,single]}")"
    row "claim + resolve, API (items/s)" "${rate[api,single]}" "${rate[api,cluster]}" \
        "$(ratio "${rate[api,cluster]}" "${rate[api,single]}")"
    row "point read by (queue, id), 1 client (ms)" "${lat[read,single]}" "${lat[read,cluster]}" \
        "$(ratio "${lat[read,cluster]}" "${lat[read,single]}")"
    row "one-row UPDATE by (queue, id), 1 client (ms)" "${lat[update,single]}" "${lat[update,cluster]}" \
        "$(ratio "${lat[update,cluster]}" "${lat[update,single]}")"
    echo
    echo "ratio = cluster / single node (items/s: < 1 is slower; ms: > 1 is slower)."
    [[ -z $api_err ]] || echo "API on the cluster: workqueue.claim() fails there ($api_err): not measured (issue 15 part 2)."
} | tee -a "$tmp/log"

# leave the cluster's bench queues empty
for i in $(seq "$queues"); do
    qd "$db" "DELETE FROM workqueue.item_event WHERE queue = '$prefix$i'" >/dev/null
    qd "$db" "DELETE FROM workqueue.item WHERE queue = '$prefix$i'" >/dev/null
done

status=0
if [[ -s $tmp/problems ]]; then
    { echo; echo "PROBLEMS:"; cat "$tmp/problems"; } | tee -a "$tmp/log"
    status=1
fi
cp "$tmp/log" "results/$name.txt"
echo "(written to bench/results/$name.txt)"
exit $status
