#!/usr/bin/env bash
# test/citus/recovery.sh — reopening and crash recovery on a distributed
# install (issue 15): a sync that lists closed items again reopens them, and
# their SLA clocks run again (computed on the coordinator, _sla_enter_citus);
# kill -9 of the coordinator's sync worker mid-run (the run is failed and
# re-queued, the retry completes, no item lost or doubled, every node's copy
# of the runs the same, no prepared transaction left on the workers); kill -9
# of the coordinator's fetch worker with fetches in flight (_requeue_fetches
# puts them back, each is done once); a batch of fetch results that a
# constraint refuses is written again one completion at a time, and only
# the refused record fails; an immediate shutdown of a worker node during a
# run (the run is failed and re-queued once the node is back, nothing lost
# or doubled).  (doc/scale-out.md, "Crash recovery".)
# (Runs on the cluster test/run.sh citus starts; distributes if not yet.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
source test/crashlib.sh
export LC_ALL=C
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"
api_start
constraint_added=
cleanup() {     # (the constraint of the last part, should the script stop before it drops it)
    [[ -n $constraint_added ]] && q "ALTER TABLE workqueue.item DROP CONSTRAINT IF EXISTS rec_poison" >/dev/null 2>&1
    [[ -n ${T_API_PID:-} ]] && kill "$T_API_PID" 2>/dev/null
}
trap cleanup EXIT


citus_distribute
is "$(q "SELECT workqueue._citus()")" t "the cached mode says distributed"

sync() { q "SELECT workqueue.sync('$1', \"full\" => ${2:-false}, force => true)"; }
count() { q "SELECT count(*) FROM workqueue.item WHERE queue = '$1' ${2:+AND $2}"; }
run_col() { q "SELECT $2 FROM workqueue.sync_run WHERE id = $1"; }
# items of QUEUE whose number of events of KIND is not exactly one (one
# grouped read per shard)
not_once() {
    q "SELECT count(*) FROM workqueue.item i
         LEFT JOIN (SELECT queue, item_id, count(*) AS n FROM workqueue.item_event
                     WHERE queue = '$1' AND kind = '$2' GROUP BY 1, 2) e ON e.queue = i.queue AND e.item_id = i.id
        WHERE i.queue = '$1' AND coalesce(e.n, 0) <> 1"
}
# nothing prepared is left on worker node PORT once Citus' recovery ran
# (recover_prepared_transactions(): what its maintenance daemon runs)
no_prepared() {
    q "SELECT recover_prepared_transactions()" >/dev/null && [[ $(qw "$1" "SELECT count(*) FROM pg_prepared_xacts") == 0 ]]
}
# slow_run PREFIX: a new queue on the second worker with a source of
# batches of 10, a run of it at 400 ms a detail request, waited for until
# it committed 2 batches; sets run_q and run_r
slow_run() {
    control '{"reset": true, "slow_ms": 400}'
    run_q=$(citus_queue_on "$1" "${workers[1]}")
    q "SELECT workqueue.create_queue('$run_q');
       SELECT workqueue.create_source('$run_q', '$run_q', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
                                      '{\"batch_size\": 10, \"max_concurrency\": 1}')" >/dev/null
    run_r=$(sync "$run_q")
    wait_until 30 "run $run_r to commit 2 batches" q_ge "SELECT batches_done FROM workqueue.sync_run WHERE id = $run_r" 2
}
# rerun_done QUEUE RUN WHAT: RUN (of QUEUE, interrupted by WHAT, marked
# failed) was queued again once, the retry completes and between them
# they loaded the 250 cases once each; every node's copy of the runs is the
# same and nothing is left prepared
rerun_done() {
    local retry runs w
    retry=$(q "SELECT id FROM workqueue.sync_run WHERE retry_of = $2")
    ok $([[ -n $retry ]]; echo $?) "... and re-queued once (run ${retry:-none})"
    control '{"slow_ms": 0}'
    is "$(wait_run "${retry:-0}" "120 seconds")" "completed|" "the re-queued run completes"
    is "$(q "SELECT count(*) || ' ' || count(DISTINCT external_id) FROM workqueue.item WHERE queue = '$1'")" "250 250" \
       "250 items, none twice"
    is "$(not_once "$1" created)" 0 "exactly one created event per item"
    is "$(q "SELECT a.inserted + b.inserted FROM workqueue.sync_run a, workqueue.sync_run b WHERE a.id = $2 AND b.id = ${retry:-0}")" 250 \
       "run counters add up: inserted by the $3 run + by its retry = 250"
    # (sync_run is a reference table: a copy on every node, written in the
    # transaction of each batch; they differed when the coordinator lost its
    # part of a committed batch -- its workers committed asynchronously)
    runs="SELECT md5(string_agg(r::text, ',' ORDER BY r.id)) FROM workqueue.sync_run r WHERE r.source = '$1'"
    for w in "${workers[@]}"; do
        is "$(qw "$w" "$runs")" "$(q "$runs")" "worker node $w's copy of the runs agrees with the coordinator's"
    done
    for w in "${workers[@]}"; do
        wait_until 30 "no prepared transaction on $w" no_prepared "$w"
        ok $? "no prepared transaction left on worker node $w"
    done
}
open8='"C-0001", "C-0002", "C-0003", "C-0004", "C-0005", "C-0006", "C-0007", "C-0008"'

wait_workers 30
ok $? "a fetch, a sync and an announce worker run on the coordinator"

########################################################################
# a sync that lists closed items again: reopened, SLA clock running again
ra=$(citus_queue_on rr "${workers[0]}"); rb=$(citus_queue_on rr "${workers[1]}")
ok $([[ -n $ra && -n $rb ]]; echo $?) "a queue on each worker ($ra on ${workers[0]}, $rb on ${workers[1]})"
q "SELECT workqueue.create_sla_policy('rec_pol', '24x7', '{\"3\": \"4 hours\"}', '{50}')" >/dev/null
q "SELECT workqueue.create_queue('$ra', sla_policy => 'rec_pol'); SELECT workqueue.create_queue('$rb')" >/dev/null
for s in "$ra" "$rb"; do
    q "SELECT workqueue.create_source('$s', '$s', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
                                      '{\"batch_size\": 50}')" >/dev/null
done
control '{"reset": true}'
for s in "$ra" "$rb"; do
    r=$(sync "$s")
    is "$(wait_run "$r" "120 seconds")" "completed|" "$s: first load completes"
done
is "$(count "$ra" "sla_target = '4 hours' AND sla_clock_from IS NOT NULL")" 250 "$ra: 250 items with a running SLA clock"

control "{\"open\": [$open8]}"
for s in "$ra" "$rb"; do
    r=$(sync "$s" true)
    is "$(wait_run "$r" "60 seconds")|$(run_col "$r" closed)" "completed||242" "$s: a full run closes the 242 vanished items"
done
is "$(count "$ra" "status = 'closed' AND sla_clock_from IS NULL AND sla_next_at IS NULL")" 242 \
   "$ra: their SLA clocks stopped"

a9=$(q "SELECT id FROM workqueue.item WHERE queue = '$ra' AND external_id = 'C-0009'")
b9=$(q "SELECT id FROM workqueue.item WHERE queue = '$rb' AND external_id = 'C-0009'")
q "SELECT workqueue.update_fields($a9, '{\"note\": \"keep me\"}'); SELECT workqueue.update_fields($b9, '{\"note\": \"keep me\"}')" >/dev/null
# a closed item refuses moves until it is reopened
is "$(qerr "SELECT workqueue.transition($a9, 'resolve')")" "item $a9 is closed" "a closed item cannot be moved"
# (a clock stopped 2 hours ago with 1 hour on it: it must run from now with 3 hours left)
q "UPDATE workqueue.item SET sla_elapsed = interval '1 hour', due_at = now() - interval '1 hour'
    WHERE queue = '$ra' AND id = $a9" >/dev/null

control "{\"open\": [$open8, \"C-0009\", \"C-0010\"]}"
r=$(sync "$ra")
is "$(wait_run "$r" "60 seconds")" "completed|" "$ra: an incremental run that lists two closed items again completes"
is "$(run_col "$r" "reopened || ' ' || missing || ' ' || inserted")" "2 0 0" "... reopens them, fetches and inserts nothing"
is "$(q "SELECT status || ' ' || step || ' ' || (notes->>'note') FROM workqueue.item WHERE id = $a9")" "open review keep me" \
   "... at their step, notes intact"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$ra' AND item_id = $a9 AND kind = 'upstream_reopened'")" 1 \
   "... with an upstream_reopened event"
is "$(q "SELECT sla_elapsed || ' ' || (sla_clock_from > now() - interval '1 minute')
               || ' ' || (due_at = sla_clock_from + interval '3 hours')
               || ' ' || (sla_next_at = sla_clock_from + interval '1 hour')
               || ' ' || (step_due_at = sla_clock_from + interval '4 hours')
          FROM workqueue.item WHERE id = $a9")" "01:00:00 true true true true" \
   "... the SLA clock runs again where it stopped: 3 hours left, the warning at 50% in 1 hour"
is "$(count "$ra" "status = 'open' AND sla_clock_from IS NOT NULL")" 10 "$ra: 10 open items, every clock running"
is "$(count "$ra" "status = 'closed'")" 240 "... and 240 still closed"

r=$(sync "$rb" true)
is "$(wait_run "$r" "60 seconds")|$(run_col "$r" "reopened || ' ' || closed")" "completed||2 0" \
   "$rb (no SLA): a full run reopens the two, closes nothing more"
is "$(q "SELECT status || ' ' || (notes->>'note') || ' ' || (due_at IS NULL) FROM workqueue.item WHERE id = $b9")" "open keep me true" \
   "... the item is open, without an SLA"
is "$(q "SELECT step || ':' || status FROM workqueue.transition($b9, 'resolve')")" "resolved:resolved" \
   "... and can be moved again"

########################################################################
# kill -9 of the coordinator's sync worker in the middle of a run
slow_run rc
cs=$run_q r=$run_r
pid=$(worker_pid sync)
epoch=$(cluster_epoch)
kill -9 "$pid"
wait_crash_restart "$pid" && wait_accepting && wait_workers 60 "$pid"
ok $? "kill -9 of the coordinator's sync worker (pid $pid) mid-run: the coordinator and its workers are back"
ok $([[ $(cluster_epoch) != "$epoch" ]]; echo $?) "... after a crash restart of the coordinator"
wait_until 30 "run $r to be recovered" quiet q_is "SELECT status <> 'running' FROM workqueue.sync_run WHERE id = $r" t
is "$(q "SELECT status || '|' || error FROM workqueue.sync_run WHERE id = $r")" "failed|interrupted by server restart" \
   "the interrupted run is marked failed"
rerun_done "$cs" "$r" killed
is "$(q "SELECT inserted = 10 * batches_done FROM workqueue.sync_run WHERE id = $r")" t \
   "the killed run counted exactly the batches that survived"
is "$(q "SELECT count(*) FROM workqueue.sync_run WHERE status IN ('queued', 'running') AND source = '$cs'")" 0 "no run left queued or running"
is "$(psql -XAtq -h 127.0.0.1 -p "${workers[1]}" -c "SELECT count(*) FROM workqueue.item WHERE queue = '$cs'")" 250 \
   "the items are on ${workers[1]}"
r=$(sync "$cs" true)
is "$(wait_run "$r" "60 seconds")|$(run_col "$r" "unchanged || ' ' || closed")" "completed||250 0" \
   "a later full run completes: 250 unchanged, none closed"

########################################################################
# kill -9 of the coordinator's fetch worker with fetches in flight:
# _requeue_fetches at its next start puts them back
control '{"reset": true, "slow_ms": 1500}'
python3 - "$WQ_API" <<'PY'
import json, sys, urllib.request
upd = {"C-%04d" % i: {"name": "Fetched %d" % i} for i in range(1, 41)}
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/_control", data=json.dumps({"update": upd}).encode(),
                                              method="POST")).read()
PY
cf=$(citus_queue_on rf "${workers[0]}")
q "SELECT workqueue.create_queue('$cf');
   SELECT workqueue.create_source('$cf', '$cf', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null
q "SELECT count(workqueue.add('$cf', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 40) g" >/dev/null
# (a loop on the coordinator: enqueue_fetch inside a query on item would run on the shards)
q "DO \$\$ DECLARE r record; BEGIN
     FOR r IN SELECT id FROM workqueue.item WHERE queue = '$cf' ORDER BY id LOOP
       PERFORM workqueue.enqueue_fetch(r.id, '$cf');
     END LOOP; END \$\$" >/dev/null
wait_until 30 "fetches of $cf in flight" q_ge "SELECT count(*) FROM workqueue.fetch WHERE queue = '$cf' AND status = 'processing'" 1
inflight=$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM workqueue.fetch WHERE queue = '$cf' AND status = 'processing'")
pid=$(worker_pid fetch)
kill -9 "$pid"
wait_crash_restart "$pid" && wait_accepting && wait_workers 60 "$pid"
ok $? "kill -9 of the coordinator's fetch worker (pid $pid) with fetches in flight (${inflight:-none}): the coordinator and its workers are back"
control '{"slow_ms": 0}'
wait_fetches "$cf" 90
ok $? "the fetches of $cf finish"
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = '$cf'")" "40/40" \
   "every fetch completed"
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE id IN (${inflight:-0}) AND status = 'completed'")" \
   "$(tr ',' '\n' <<<"${inflight:-}" | grep -c .)" "... the fetches in flight at the kill among them"
ok $(q_ge "SELECT count(*) FROM workqueue.fetch WHERE queue = '$cf' AND attempts = 2" 1; echo $?) \
   "the fetches the kill left processing were queued again (_requeue_fetches) and taken a second time"
is "$(not_once "$cf" fetch_completed)" 0 "exactly one fetch_completed event per item (one fetch each)"
is "$(count "$cf" "data->>'name' = 'Fetched ' || ltrim(substr(external_id, 3), '0')")" 40 "every record arrived on its item"
is "$(not_once "$cf" synced)" 0 "each record changed its item exactly once"

########################################################################
# a batch of fetch results that fails is written again one completion at a
# time: a constraint refuses one record, the others complete
cb=$(citus_queue_on rb "${workers[1]}")
q "SELECT workqueue.create_queue('$cb');
   SELECT workqueue.create_source('$cb', '$cb', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}', '{\"retries\": 3}')" >/dev/null
q "SELECT count(workqueue.add('$cb', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 6) g" >/dev/null
control '{"reset": true, "slow_ms": 300, "update": {"C-0001": {"name": "One"}, "C-0002": {"name": "Two"}, "C-0003": {"name": "Poison"},
          "C-0004": {"name": "Four"}, "C-0005": {"name": "Five"}, "C-0006": {"name": "Six"}}}'
constraint_added=1
is "$(qerr "ALTER TABLE workqueue.item ADD CONSTRAINT rec_poison
              CHECK (queue <> '$cb' OR data->>'name' IS DISTINCT FROM 'Poison') NOT VALID")" "" \
   "a constraint that refuses one record (propagated to the shards)"
fpid=$(worker_pid fetch)
# (in one transaction: the worker takes them in one turn)
q "DO \$\$ DECLARE r record; BEGIN
     FOR r IN SELECT id FROM workqueue.item WHERE queue = '$cb' ORDER BY id LOOP
       PERFORM workqueue.enqueue_fetch(r.id, '$cb');
     END LOOP; END \$\$" >/dev/null
wait_fetches "$cb" 60
ok $? "the fetches of $cb finish"
poison=$(q "SELECT id FROM workqueue.item WHERE queue = '$cb' AND external_id = 'C-0003'")
is "$(q "SELECT status || '|' || http_status || '|' || attempts FROM workqueue.fetch WHERE queue = '$cb' AND item_id = $poison")" \
   "failed|200|1" "the refused record fails its fetch for good, at once"
err=$(q "SELECT error FROM workqueue.fetch WHERE queue = '$cb' AND item_id = $poison")
# (the shard's names on Citus: item_NNN, rec_poison_NNN)
ok $([[ $err == *'violates check constraint "rec_poison'* ]]; echo $?) "... with the error ($err)"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$cb' AND item_id = $poison AND kind = 'fetch_failed'")" 1 \
   "... and a fetch_failed event"
is "$(q "SELECT data FROM workqueue.item WHERE id = $poison")" "{}" "... its item is unchanged"
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = '$cb' AND status = 'completed'")" 5 "the other five fetches complete"
is "$(count "$cb" "data->>'name' IN ('One', 'Two', 'Four', 'Five', 'Six')")" 5 "... their records are on their items"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$cb' AND kind IN ('synced', 'fetch_completed')")" 10 \
   "... with a synced and a fetch_completed event each"
is "$(worker_pid fetch)" "$fpid" "the fetch worker did not restart"
is "$(qerr "ALTER TABLE workqueue.item DROP CONSTRAINT rec_poison")" "" "the constraint is dropped"
f=$(q "SELECT id FROM workqueue.fetch WHERE queue = '$cb' AND item_id = $poison")
is "$(q "SELECT workqueue.retry_fetches('$cb')")" 1 "retry_fetches() queues the failed fetch again"
wait_until 30 "fetch $f to complete" q_is "SELECT status FROM workqueue.fetch WHERE id = $f" completed
is "$(q "SELECT data->>'name' FROM workqueue.item WHERE id = $poison")" "Poison" "... and, without the constraint, it completes"

########################################################################
# an immediate shutdown of the worker node that holds the queue, mid-run:
# while it is down the coordinator's workers fail their transactions (a
# batch, the run's record in sync_run, a reference table with a copy there)
# and restart; once it is back the run is failed, re-queued and completed
slow_run rw
cw=$run_q r=$run_r
bash test/citus/cluster.sh crash "${workers[1]}"
ok $? "immediate shutdown of worker node ${workers[1]} in the middle of run $r"
wait_until 30 "the coordinator's sync worker to fail without the node" \
    q_is "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'workqueue sync worker'" 0
ok $? "... the coordinator's sync worker stops (its transactions cannot commit)"
is "$(q "SELECT status FROM workqueue.sync_run WHERE id = $r")" running "... the run is still running meanwhile"
bash test/citus/cluster.sh start-node "${workers[1]}"
ok $? "worker node ${workers[1]} starts again"
control '{"slow_ms": 0}'
wait_until 60 "run $r to be recovered" quiet q_is "SELECT status <> 'running' FROM workqueue.sync_run WHERE id = $r" t
is "$(q "SELECT status FROM workqueue.sync_run WHERE id = $r")" failed "the interrupted run is marked failed"
rerun_done "$cw" "$r" interrupted
wait_workers 30
ok $? "the coordinator's workers run again"
finish
