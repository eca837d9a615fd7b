#!/usr/bin/env bash
# bench/announce.sh — announcements under load (issue 12): the single-item
# drain (BEGIN; claim 1; resolve; COMMIT) with BENCH_CLIENTS pgbench clients
# for BENCH_SECONDS while one session LISTENs on "workqueue"; then, from the
# audit trail, every event of the run is matched with its notification.
#
#   bash bench/announce.sh
#
# Prints the drain rate, the number of events and notifications, lost ones
# (an event with no notification), duplicates, notifications out of event
# order for an item, and the latency from the event's write
# (item_event.at, clock_timestamp() inside the writing transaction, so an
# upper bound of the time since its commit) to its arrival at the listener:
# p50, p99, max.  Target (SPEC, issue 12): 0 lost, 0 out of order, p99 <= 50 ms.
#
# Needs a cluster with workqueue preloaded, reached through PGHOST/PGPORT/...,
# as a superuser (it adds its database to workqueue.databases for the time of
# the run, so that an announce worker serves it), and Debian's python3 with
# psycopg2 (package python3-psycopg2) for the listener.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_announce
name=announce
items=${BENCH_ITEMS:-200000}
seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-4}
py=${BENCH_PYTHON:-/usr/bin/python3}
source ../test/lib.sh    # serve_database, wait_until (its q is replaced by lib.sh's)
source ./lib.sh
set -e
cleanup_announce() {
    [[ -n ${listener:-} ]] && kill "$listener" 2>/dev/null
    unserve_database "$db" || true
    wait_until 20 "the workers of $db to stop" \
        q_is "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type LIKE 'workqueue%'" 0 || true
    cleanup
}
trap cleanup_announce EXIT

if ! "$py" -c 'import psycopg2' 2>/dev/null; then
    echo "bench/announce.sh: $py has no psycopg2 (apt-get install python3-psycopg2); skipped"
    exit 0
fi

dropdb --if-exists "$db" >/dev/null 2>&1 || true
createdb "$db"
q "CREATE EXTENSION workqueue" >/dev/null
q "SELECT workqueue.create_queue('bench')" >/dev/null
for ((s = 0; s < items; s += 50000)); do
    q "SELECT inserted FROM workqueue.upsert_items('bench',
         (SELECT jsonb_agg(jsonb_build_object('external_id', 'b' || g, 'priority', 1 + g % 5))
            FROM generate_series($s + 1, least($s + 50000, $items)) g))" >/dev/null
done
q "VACUUM ANALYZE workqueue.item" >/dev/null
q "VACUUM ANALYZE workqueue.item_event" >/dev/null
serve_database "$db"

cat >"$tmp/listen.py" <<'PY'
import json, os, select, sys, time
import psycopg2
conn = psycopg2.connect(dbname=sys.argv[1])
conn.set_session(autocommit=True)
conn.cursor().execute("LISTEN workqueue")
out = open(sys.argv[2], "w")
ready = sys.argv[3]
open(ready, "w").close()
stop = sys.argv[4]
while not os.path.exists(stop):
    if select.select([conn], [], [], 0.1) == ([], [], []):
        continue
    conn.poll()
    now = time.time()
    while conn.notifies:
        n = conn.notifies.pop(0)
        p = json.loads(n.payload)
        if "event" in p:
            out.write("%d\t%d\t%.6f\n" % (p["event"], p["item"], now))
    out.flush()
out.close()
PY
"$py" "$tmp/listen.py" "$db" "$tmp/heard.tsv" "$tmp/ready" "$tmp/stop" &
listener=$!
wait_until 10 "the listener" test -e "$tmp/ready"

first=$(q "SELECT coalesce(max(id), 0) FROM workqueue.item_event")
printf '%s\n' "BEGIN;" "SELECT id FROM workqueue.claim('bench', 1, 'w' || :client_id) \\gset" \
    "SELECT step FROM workqueue.transition(:id, 'resolve', actor => 'w' || :client_id);" "COMMIT;" >"$tmp/drain.sql"
pgbench -n -T "$seconds" -c "$clients" -j "$clients" -f "$tmp/drain.sql" "$db" >"$tmp/pgbench.out" 2>&1
last=$(q "SELECT max(id) FROM workqueue.item_event")
events=$((last - first))
heard() { [[ $(wc -l <"$tmp/heard.tsv") -ge $events ]]; }
wait_until 30 "the listener to hear $events notifications" heard || true
touch "$tmp/stop"
wait "$listener" || true
listener=

q "CREATE TABLE heard (event bigint, item bigint, at float8)"
psql -X -q -d "$db" -c "\\copy heard FROM '$tmp/heard.tsv'"
resolved=$(q "SELECT count(*) FROM workqueue.item WHERE status = 'resolved'")
log "announce: drain1, $clients clients, ${seconds}s: $((resolved / seconds)) items/s ($resolved resolved)"
log "  events written $events, notifications heard $(q "SELECT count(*) FROM heard WHERE event > $first")"
log "  lost (event without notification): $(q "SELECT count(*) FROM workqueue.item_event e WHERE e.id > $first AND NOT EXISTS (SELECT FROM heard h WHERE h.event = e.id)")"
log "  duplicates: $(q "SELECT count(*) - count(DISTINCT event) FROM heard")"
log "  out of event order for an item: $(q "SELECT count(*) FROM (SELECT event, lag(event) OVER (PARTITION BY item ORDER BY at, event) AS prev FROM heard) x WHERE event < prev")"
log "  latency write -> heard (ms): $(q "SELECT format('p50 %s, p99 %s, max %s',
        round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l))::numeric, 1),
        round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l))::numeric, 1), round(max(l)::numeric, 1))
      FROM (SELECT (h.at - extract(epoch FROM e.at)) * 1000 AS l
              FROM heard h JOIN workqueue.item_event e ON e.id = h.event) x") (target p99 <= 50)"
save_results
