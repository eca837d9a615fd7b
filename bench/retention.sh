#!/usr/bin/env bash
# bench/retention.sh — claim + resolve latency while the fetch worker purges
# a queue's old history, next to the same load without a purge (issue 14.3;
# doc/operations.md, "Retention"; target: claim p99 during a purge no worse
# than 2x without one).
#
#   bash bench/retention.sh
#
# Needs a cluster with workqueue in shared_preload_libraries (its workers
# serve the bench database: the script adds it to workqueue.databases and
# takes it out again), reached through PGHOST/PGPORT/PGUSER, as a superuser.
# Works in database wq_bench_retention, dropped and recreated, dropped at the end.
#
# Data, generated with INSERT ... SELECT generate_series (a few minutes):
# one queue of BENCH_ITEMS items (500,000) with BENCH_EVENTS events each (20:
# 10 million events, a 'created' first, then comments, field updates,
# claims and transitions with small payloads): half resolved or rejected
# 100 days ago, 30% resolved a day ago, 20% open; VACUUM ANALYZE, CHECKPOINT.
#
# Then, with BENCH_CLIENTS (4) pgbench clients running "BEGIN; claim 1;
# resolve it; COMMIT" for BENCH_SECONDS (30) each:
#   1. without a purge (retention unset);
#   2. while the fetch worker purges: retention "30 days" is set, and
#      workqueue.purge_interval 1 s, so the worker deletes the old half in
#      batches of workqueue.purge_batch_size (500) items (10,000 events).
# Latencies are each pgbench transaction's (claim + resolve + commit), from
# pgbench's per-transaction log: p50, p99, max.  The purge row shows how far
# the purge got in the window; the wait events of the clients are sampled
# every 100 ms in both windows.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_retention
items=${BENCH_ITEMS:-500000}
per_item=${BENCH_EVENTS:-20}
seconds=${BENCH_SECONDS:-30}
clients=${BENCH_CLIENTS:-4}
results=results/retention.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench-ret.XXXXXX")
mkdir -p results
dbs_before=

cleanup() {
    if [[ -n $dbs_before ]]; then
        psql -X -q -d postgres -c "ALTER SYSTEM SET workqueue.databases = '$dbs_before'" >/dev/null 2>&1 || true
    fi
    psql -X -q -d postgres -c "ALTER SYSTEM RESET workqueue.purge_interval" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
log() { echo "$*" | tee -a "$tmp/log"; }

dropdb --if-exists --force "$db"
createdb "$db"
q "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null 2>&1 || true
q "CREATE EXTENSION workqueue"
# no purge until the second window
psql -X -q -d postgres -c "ALTER SYSTEM SET workqueue.purge_interval = 0" -c "SELECT pg_reload_conf()" >/dev/null
dbs_before=$(psql -X -At -d postgres -c "SELECT coalesce(nullif(current_setting('workqueue.databases'), ''), current_setting('workqueue.database_name'))")
psql -X -q -d postgres -c "ALTER SYSTEM SET workqueue.databases = '$dbs_before, $db'" -c "SELECT pg_reload_conf()" >/dev/null

log "== retention bench: $items items x $per_item events, $clients clients, ${seconds}s per window ($(date -u +%FT%TZ))"
t0=$(date +%s)
q "SELECT workqueue.create_queue('bench')" >/dev/null
# items: n % 10 in 0-4 old (resolved or rejected 100 days ago), 5-7 recent, 8-9 open
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<SQL
SET synchronous_commit = off;
INSERT INTO workqueue.item (queue, external_id, step, status, priority, data, created_at, updated_at, resolved_at,
                            workflow, workflow_version)
SELECT 'bench', 'B-' || n,
       CASE WHEN n % 10 < 8 THEN 'resolved' ELSE 'review' END,
       CASE WHEN n % 10 < 4 THEN 'resolved' WHEN n % 10 = 4 THEN 'rejected' WHEN n % 10 < 8 THEN 'resolved' ELSE 'open' END,
       1 + n % 5,
       jsonb_build_object('n', n, 'customer', 'C-' || (n % 9973), 'subject', 'case ' || n),
       t.created, t.ended, CASE WHEN n % 10 < 8 THEN t.ended END,
       'review', 1
  FROM generate_series(1, $items) n,
       LATERAL (SELECT CASE WHEN n % 10 < 5 THEN now() - interval '120 days' + n * interval '1 ms'
                            ELSE now() - interval '2 days' + n * interval '1 ms' END AS created,
                       CASE WHEN n % 10 < 5 THEN now() - interval '100 days'
                            WHEN n % 10 < 8 THEN now() - interval '1 day' ELSE now() - interval '2 days' END AS ended) t;
INSERT INTO workqueue.item_event (queue, item_id, at, actor, kind, from_step, to_step, payload, tx)
SELECT 'bench', i.id, i.created_at + k * interval '1 minute', 'agent' || (i.id % 50),
       CASE WHEN k = 0 THEN 'created' WHEN k % 4 = 1 THEN 'claimed' WHEN k % 4 = 2 THEN 'comment'
            WHEN k % 4 = 3 THEN 'field_update' ELSE 'released' END,
       CASE WHEN k > 0 THEN 'review' END, 'review',
       CASE WHEN k = 0 THEN '{}'::jsonb WHEN k % 4 = 2 THEN jsonb_build_object('text', 'note ' || k || ' on case ' || i.id)
            WHEN k % 4 = 3 THEN jsonb_build_object('fields', jsonb_build_object('customer', 'C-' || k)) ELSE '{}' END,
       NULL
  FROM workqueue.item i, generate_series(0, $per_item - 1) k
 WHERE i.queue = 'bench'
 ORDER BY i.id, k;
SQL
q "VACUUM ANALYZE workqueue.item" >/dev/null
q "VACUUM ANALYZE workqueue.item_event" >/dev/null
q "CHECKPOINT" >/dev/null
log "generated $(q "SELECT count(*) FROM workqueue.item_event") events of $(q "SELECT count(*) FROM workqueue.item") items in $(( $(date +%s) - t0 )) s;" \
    "item_event $(q "SELECT pg_size_pretty(pg_total_relation_size('workqueue.item_event'))") with indexes"

cat >"$tmp/claim.sql" <<'SQL'
BEGIN;
SELECT coalesce(max(id), 0) AS id FROM workqueue.claim('bench', 1, 'w' || :client_id) \gset
\if :id > 0
SELECT id FROM workqueue.transition(:id, 'resolve', '{}', 'w' || :client_id);
\endif
COMMIT;
SQL

# sample the clients' wait events every 100 ms while pgbench runs
sample() {
    while kill -0 "$1" 2>/dev/null; do
        psql -X -At -d "$db" -c "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
                                  WHERE application_name = 'pgbench' AND state = 'active'" >>"$2" 2>/dev/null || true
        sleep 0.1
    done
}

# run NAME: one window; prints "p50 p99 max tps"
run() {
    local name=$1 dir="$tmp/$1" pid
    mkdir -p "$dir"
    (cd "$dir" && pgbench -n -c "$clients" -j 2 -T "$seconds" -l -f "$tmp/claim.sql" "$db" >"$dir/out" 2>&1) &
    pid=$!
    sample "$pid" "$dir/waits" &
    wait "$pid"
    cat "$dir"/pgbench_log.* | awk '{print $3}' | sort -n >"$dir/lat"
    local n; n=$(wc -l <"$dir/lat")
    awk -v n="$n" 'NR == int(n * 0.50) + 1 {p50 = $1} NR == int(n * 0.99) + 1 {p99 = $1} {max = $1}
                   END {printf "%.1f %.1f %.1f %d\n", p50 / 1000, p99 / 1000, max / 1000, n}' "$dir/lat"
}

waits() { sort "$tmp/$1/waits" | uniq -c | sort -rn | head -5 | awk '{printf "%s %s; ", $2, $1}'; }

read -r b50 b99 bmax bn < <(run baseline)
log "without a purge: $bn transactions, latency p50 $b50 ms, p99 $b99 ms, max $bmax ms; client waits: $(waits baseline)"

q "SELECT workqueue.alter_queue('bench', '{\"retention\": \"30 days\"}')" >/dev/null
psql -X -q -d postgres -c "ALTER SYSTEM SET workqueue.purge_interval = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
# the purge has begun once its row is there
for _ in $(seq 1 100); do [[ $(q "SELECT count(*) FROM workqueue.purge") -gt 0 ]] && break; sleep 0.1; done
read -r p50 p99 pmax pn < <(run purge)
log "during the purge: $pn transactions, latency p50 $p50 ms, p99 $p99 ms, max $pmax ms; client waits: $(waits purge)"
log "purged in the window and before it: $(q "SELECT format('%s items, %s events in %s batches (%s)', items, events, batches,
                                               CASE WHEN finished_at IS NULL THEN 'still running at the end of the window'
                                                    ELSE 'finished ' || round(extract(epoch FROM finished_at - started_at)) || ' s after it began' END)
                                          FROM workqueue.purge ORDER BY id DESC LIMIT 1")"
log "ratio during/without: p99 $(awk -v a="$p99" -v b="$b99" 'BEGIN {printf "%.2f", a / b}'), p50 $(awk -v a="$p50" -v b="$b50" 'BEGIN {printf "%.2f", a / b}'), transactions $(awk -v a="$pn" -v b="$bn" 'BEGIN {printf "%.2f", a / b}')"
cp "$tmp/log" "$results"
