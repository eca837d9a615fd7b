#!/usr/bin/env bash
# Crashes, and the counts that prove nothing was lost or doubled: kill -9 of
# a backend inside upsert_items (all or nothing), of the sync worker inside
# a sync and of the fetch worker inside fetches (one created event per item,
# one fetch_completed per fetch, run counters that add up), kill -9 of a
# worker during its start-up, and an immediate shutdown during a mixed load
# whose acknowledged commits must all be there afterwards.  sync.sh and
# fetch.sh already prove that runs are re-queued and fetches redone; this
# script checks the books.  Needs WQ_CLUSTER (test/inside.sh sets it) for the
# immediate shutdown.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../crashlib.sh"
api_start
tmp=$(mktemp -d)
trap '[[ -n ${T_API_PID:-} ]] && kill $T_API_PID 2>/dev/null; rm -rf "$tmp"; psql -XAtqc "DROP TABLE IF EXISTS public.crash_payload" >/dev/null 2>&1' EXIT
q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
wait_workers
ok $? "both workers serve database $(q 'SELECT current_database()')"

new_source() {      # new_source NAME OPTIONS: a queue and a source of the sample API
    q "SELECT workqueue.create_queue('$1');
       SELECT workqueue.create_source('$1', '$1', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}', '$2')" >/dev/null
}
restarted() {       # restarted [KILLED-PID]: after a crash, the cluster is back and both workers run
    { [[ -z ${1:-} ]] || wait_crash_restart "$1"; } && wait_accepting && wait_workers 30
}

########################################################################
# kill -9 of a backend inside one upsert_items call of 200,000 items
q "SELECT workqueue.create_queue('cu');
   SELECT * FROM workqueue.upsert_items('cu', (SELECT jsonb_agg(jsonb_build_object('external_id', 'B-' || g))
                                                FROM generate_series(1, 1000) g))" >/dev/null
q "DROP TABLE IF EXISTS public.crash_payload;
   CREATE TABLE public.crash_payload AS
   SELECT jsonb_agg(jsonb_build_object('external_id', 'U-' || g, 'priority', 1 + g % 5, 'data', jsonb_build_object('n', g))) j
     FROM generate_series(1, 200000) g" >/dev/null
before=$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cu'")
pm0=$(cluster_epoch)
lsn0=$(q "SELECT pg_current_wal_insert_lsn()")
psql -XAtq -c "SELECT * FROM workqueue.upsert_items('cu', (SELECT j FROM public.crash_payload))" >"$tmp/upsert.out" 2>&1 &
client=$!
pid=""
# kill it once it is writing: 8 MB of WAL after it started
upsert_writing() {
    pid=$(q "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%upsert_items(''cu''%' AND pid <> pg_backend_pid()")
    [[ -n $pid && $(q "SELECT pg_current_wal_insert_lsn() - '$lsn0'") -gt 8000000 ]]
}
wait_until -i 0.05 15 "the upsert_items backend to write 8 MB of WAL" upsert_writing
kill -9 "$pid"
wait $client
rc=$?
# (the client's words depend on the connection: plain or SSL)
ok $([[ $rc != 0 ]] && grep -qiE 'server closed the connection unexpectedly|connection to server was lost|SSL SYSCALL error|unexpected eof|terminating connection' "$tmp/upsert.out"; echo $?) "kill -9 of the backend in the middle of upsert_items (its client lost the connection)"
[[ $rc != 0 ]] || { echo "#   client exit $rc, backend '$pid', it printed:"; sed 's/^/#   /' "$tmp/upsert.out"; }
restarted "$pid"
ok $? "the postmaster recovered and the workers are back"
ok $([[ $(cluster_epoch) != "$pm0" ]]; echo $?) "... after a crash restart (the checkpointer is new)"
after=$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cu'")
ok $([[ $after == "$before" || $after == $((before + 200000)) ]]; echo $?) "all or nothing: $after items, was $before"
is "$(bad_created cu)" 0 "every item has exactly one created event"
is "$(q "SELECT count(*) - count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'cu'")" 0 "no external id twice"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cu'")" "$after" "no event without its item"
q "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null 2>&1
if [[ -n $(q "SELECT 1 FROM pg_extension WHERE extname = 'amcheck'") ]]; then
    is "$(qerr "SELECT bt_index_check(c.oid, true) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                       JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
                 WHERE x.indrelid IN ('workqueue.item'::regclass, 'workqueue.item_event'::regclass)")" "" \
       "amcheck: the item and event indexes match their heaps"
fi
is "$(q "SELECT inserted FROM workqueue.upsert_items('cu', (SELECT jsonb_agg(jsonb_build_object('external_id', 'U-' || g)) FROM generate_series(1, 5000) g))")" \
   "$(( after == before ? 5000 : 0 ))" "the same call afterwards inserts what is missing"
q "DROP TABLE public.crash_payload" >/dev/null

########################################################################
# kill -9 of the sync worker inside a sync run
control '{"reset": true, "slow_ms": 300}'
new_source cs '{"batch_size": 10, "max_concurrency": 1}'
r=$(q "SELECT workqueue.sync('cs')")
wait_until 15 "run $r to commit 3 batches" q_ge "SELECT batches_done FROM workqueue.sync_run WHERE id = $r" 3
pid=$(worker_pid sync)
kill -9 "$pid"
restarted "$pid"
ok $? "kill -9 of the sync worker mid-run: the cluster and workers are back"
control '{"slow_ms": 0}'
retry_queued() { retry=$(q "SELECT id FROM workqueue.sync_run WHERE retry_of = $r"); [[ -n $retry ]]; }
wait_until 10 "a retry of run $r" retry_queued
is "$(wait_run "$retry")" "completed|" "the interrupted run is re-queued and completes"
is "$(q "SELECT count(*) || ' ' || count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'cs'")" "250 250" "250 items, none twice"
is "$(bad_created cs)" 0 "exactly one created event per item"
is "$(q "SELECT a.inserted + b.inserted FROM workqueue.sync_run a, workqueue.sync_run b WHERE a.id = $r AND b.id = $retry")" 250 \
   "run counters add up: inserted by the killed run + by its retry = 250"
is "$(q "SELECT inserted = 10 * batches_done FROM workqueue.sync_run WHERE id = $r")" t \
   "the killed run counted exactly the batches that survived (counters commit with their batch)"
is "$(q "SELECT b.missing = 250 - a.inserted FROM workqueue.sync_run a, workqueue.sync_run b WHERE a.id = $r AND b.id = $retry")" t \
   "the retry fetched only what was missing"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cs' AND kind = 'synced'")" 0 "nothing was written twice (no synced events)"

########################################################################
# kill -9 of the fetch worker with fetches in flight
control '{"reset": true, "slow_ms": 200}'
python3 - "$WQ_API" <<'PY'
import json, sys, urllib.request
upd = {"C-%04d" % i: {"name": "Fetched %d" % i} for i in range(1, 251)}
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/_control", data=json.dumps({"update": upd}).encode(),
                                              method="POST")).read()
PY
q "SELECT workqueue.create_queue('cf');
   SELECT workqueue.create_source('cf', 'cf', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT count(workqueue.add('cf', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 250) g" >/dev/null
api POST /_stats/reset >/dev/null
q "SELECT count(workqueue.enqueue_fetch(id, 'cf')) FROM workqueue.item WHERE queue = 'cf'" >/dev/null
wait_until -i 0.05 10 "30 fetches of queue cf to complete" \
    q_ge "SELECT count(*) FROM workqueue.fetch WHERE queue = 'cf' AND status = 'completed'" 30
inflight=$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'cf' AND status = 'processing'")
pid=$(worker_pid fetch)
kill -9 "$pid"
restarted "$pid"
ok $? "kill -9 of the fetch worker with $inflight fetches processing: the cluster and workers are back"
control '{"slow_ms": 0}'
wait_fetches cf 60
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'cf'")" "250/250" "every fetch completed"
is "$(bad_fetch_events cf)" 0 "exactly one fetch_completed event per fetch, none for anything else"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cf' AND data->>'name' = 'Fetched ' || ltrim(substr(external_id, 3), '0')")" 250 "every record arrived on its item"
is "$(q "SELECT count(*) FROM (SELECT item_id FROM workqueue.item_event WHERE queue = 'cf' AND kind = 'synced' GROUP BY item_id HAVING count(*) <> 1) x")" 0 \
   "each record changed its item exactly once (a redone fetch writes nothing)"
requests=$(api GET /_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["by_endpoint"].get("/cases/details", 0))')
ok $([[ $requests -gt 250 || $inflight == 0 ]]; echo $?) \
   "the fetches cut off by the kill were redone: $requests requests for 250 fetches (at least once, applied once)"

########################################################################
# kill -9 of a worker during its start-up (pg_net lost its queue this way)
old=$(worker_pid fetch)
q "SELECT pg_terminate_backend($old)" >/dev/null
# (looked for inside one statement, every 2 ms: a wait_until of psql calls
# would come too late to catch the worker in its start-up)
new=$(q "DO \$\$
DECLARE p int; t0 timestamptz := clock_timestamp();
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT pid INTO p FROM pg_stat_activity
         WHERE backend_type = '$(worker_type fetch)' AND datname = current_database() AND pid <> $old;
        EXIT WHEN p IS NOT NULL OR clock_timestamp() > t0 + interval '15 seconds';
        PERFORM pg_sleep(0.002);
    END LOOP;
    RAISE WARNING '%', p;
END \$\$" 2>&1 | sed -nE 's/.*WARNING:  ([0-9]+)$/\1/p')
ok $([[ -n $new ]] && kill -9 "$new"; echo $?) "kill -9 of the new fetch worker the moment it appears"
restarted "$new"
ok $? "the cluster and both workers come back"
q "SELECT count(workqueue.enqueue_fetch(id, 'cf')) FROM workqueue.item WHERE queue = 'cf' AND id % 10 = 0" >/dev/null
wait_fetches cf 30
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'cf' AND status <> 'completed'")" 0 "and work again: 25 more fetches complete"

########################################################################
# an immediate shutdown during a mixed load; every acknowledged commit survives
control '{"reset": true, "slow_ms": 250}'
new_source cm '{"batch_size": 10, "max_concurrency": 1}'
q "SELECT workqueue.create_queue('cmw');
   SELECT count(workqueue.add('cmw', '{}', 3, 'W-' || g)) FROM generate_series(1, 400) g" >/dev/null
q "SELECT workqueue.create_source('cmf', 'cmw', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null
q "SELECT count(workqueue.add('cmw', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 200) g" >/dev/null
q "SELECT count(workqueue.enqueue_fetch(id, 'cmf')) FROM workqueue.item WHERE queue = 'cmw' AND external_id LIKE 'C-%'" >/dev/null
items=($(q "SELECT id FROM workqueue.item WHERE queue = 'cmw' AND external_id LIKE 'W-%' ORDER BY id"))
r=$(q "SELECT workqueue.sync('cm')")
# three clients, each printing what the server acknowledged
{ echo '\set ON_ERROR_STOP on'
  for n in $(seq 1 3000); do echo "SELECT 'c-$n:' || workqueue.comment(${items[$((n % 400))]}, 'crash comment $n');"; done
} >"$tmp/comments.sql"
{ echo '\set ON_ERROR_STOP on'
  for n in $(seq 1 3000); do echo "SELECT 'a-$n:' || workqueue.add('cmw', '{}', 3, 'A-$n');"; done
} >"$tmp/adds.sql"
{ echo '\set ON_ERROR_STOP on'
  for n in $(seq 1 1500); do
      echo "SELECT 'k-$n:' || id FROM workqueue.claim('cmw', 1, 'crasher');"
  done
} >"$tmp/claims.sql"
psql -XAtq -f "$tmp/comments.sql" >"$tmp/comments.out" 2>"$tmp/comments.err" &
c1=$!
psql -XAtq -f "$tmp/adds.sql" >"$tmp/adds.out" 2>"$tmp/adds.err" &
c2=$!
psql -XAtq -f "$tmp/claims.sql" >"$tmp/claims.out" 2>"$tmp/claims.err" &
c3=$!
# until the sync run has committed 2 batches and each client has committed something
under_load() {
    q_is "SELECT (SELECT batches_done >= 2 FROM workqueue.sync_run WHERE id = $r)
             AND EXISTS (SELECT FROM workqueue.item_event WHERE queue = 'cmw' AND kind = 'comment')
             AND EXISTS (SELECT FROM workqueue.item WHERE queue = 'cmw' AND external_id LIKE 'A-%')
             AND EXISTS (SELECT FROM workqueue.item WHERE queue = 'cmw' AND claimed_by = 'crasher')" t
}
wait_until 15 "run $r to commit 2 batches while the 3 clients write" under_load
if [[ -n ${WQ_CLUSTER:-} ]]; then
    processing=$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'cmw' AND status = 'processing'")
    pg_ctlcluster $(cluster_args) stop -m immediate >/dev/null 2>&1
    wait $c1 $c2 $c3
    pg_ctlcluster $(cluster_args) start >/dev/null 2>&1
    restarted
    ok $? "immediate shutdown under load (sync running, $processing fetches processing, 3 clients writing), then start"
    control '{"slow_ms": 0}'
    acked_c=$(grep -c '^c-' "$tmp/comments.out"); acked_a=$(grep -c '^a-' "$tmp/adds.out"); acked_k=$(grep -c '^k-' "$tmp/claims.out")
    ok $([[ $acked_c -gt 0 && $acked_c -lt 3000 && $acked_a -gt 0 && $acked_a -lt 3000 ]]; echo $?) \
       "the clients were cut off mid-stream ($acked_c comments, $acked_a adds, $acked_k claims acknowledged)"
    # every acknowledged comment is there, once
    sed -E 's/^c-[0-9]+:([0-9]+)$/\1/' "$tmp/comments.out" | paste -sd, >"$tmp/c.ids"
    is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cmw' AND kind = 'comment' AND id = ANY ('{$(cat "$tmp/c.ids")}'::bigint[])")" "$acked_c" \
       "every acknowledged comment survived"
    n=$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cmw' AND kind = 'comment'")
    ok $([[ $n -ge $acked_c && $n -le $((acked_c + 1)) ]]; echo $?) "no comment doubled or invented ($n events for $acked_c acknowledged, at most one in flight)"
    is "$(q "SELECT count(*) FROM (SELECT payload->>'body' FROM workqueue.item_event WHERE queue = 'cmw' AND kind = 'comment' GROUP BY 1 HAVING count(*) > 1) x")" 0 \
       "no comment body twice"
    sed -E 's/^a-[0-9]+:([0-9]+)$/\1/' "$tmp/adds.out" | paste -sd, >"$tmp/a.ids"
    is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cmw' AND id = ANY ('{$(cat "$tmp/a.ids")}'::bigint[])")" "$acked_a" \
       "every acknowledged add survived"
    n=$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cmw' AND external_id LIKE 'A-%'")
    ok $([[ $n -ge $acked_a && $n -le $((acked_a + 1)) ]]; echo $?) "no add doubled or invented ($n items for $acked_a acknowledged)"
    sed -E 's/^k-[0-9]+:([0-9]+)$/\1/' "$tmp/claims.out" | paste -sd, >"$tmp/k.ids"
    is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cmw' AND status = 'in_progress' AND claimed_by = 'crasher'
               AND id = ANY ('{$(cat "$tmp/k.ids")}'::bigint[])")" "$acked_k" "every acknowledged claim holds"
    is "$(q "SELECT count(*) FROM workqueue.item i WHERE queue = 'cmw'
               AND (i.status = 'in_progress') <> coalesce((SELECT e.kind = 'claimed' FROM workqueue.item_event e
                      WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind IN ('created', 'claimed', 'released', 'lease_expired', 'transition')
                      ORDER BY e.id DESC LIMIT 1), false)")" 0 "every item's status agrees with its last event"
    is "$(bad_created cmw)" 0 "exactly one created event per item"
    retry=""
    wait_until 10 "a retry of run $r" retry_queued
    is "$(wait_run "$retry")" "completed|" "the interrupted sync run is re-queued and completes"
    is "$(q "SELECT count(*) || ' ' || count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'cm'")|$(bad_created cm)" "250 250|0" \
       "... 250 items, none twice, one created event each"
    is "$(q "SELECT a.inserted + b.inserted FROM workqueue.sync_run a, workqueue.sync_run b WHERE a.id = $r AND b.id = $retry")" 250 "... and its counters add up to 250"
    wait_fetches cmw 60
    is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'cmw'")|$(bad_fetch_events cmw)" "200/200|0" \
       "every fetch completed, with exactly one fetch_completed event"
else
    echo "# WQ_CLUSTER not set: immediate shutdown skipped"
    kill $c1 $c2 $c3 2>/dev/null
fi

finish
