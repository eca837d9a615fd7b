#!/usr/bin/env bash
# test/citus/sync.sh — sync runs, drop_queue, retention and announcements on
# a distributed install (issue 15, part 2): the sync worker on the
# coordinator syncs into queues whose shards are on either worker; change
# detection, vanished items closed, a failed run closes nothing; drop_queue
# of a queue with a source; a retention pass (purge a reference table);
# NOTIFY to a listener on the coordinator.
# (Runs on the cluster test/run.sh citus starts; distributes if not yet.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
export LC_ALL=C
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-citus-sync.XXXXXX")
api_start
trap 'listen_stop; kill $T_API_PID 2>/dev/null; rm -rf "$tmp"' EXIT

citus_distribute
is "$(q "SELECT workqueue._citus()")" t "the cached mode says distributed"
is "$(q "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'workqueue.purge'::regclass AND partmethod = 'n'")" 1 \
   "purge is a reference table"

qa=$(citus_queue_on cs "${workers[0]}"); qb=$(citus_queue_on cs "${workers[1]}")
ok $([[ -n $qa && -n $qb ]]; echo $?) "a queue on each worker ($qa on ${workers[0]}, $qb on ${workers[1]})"

new_source() {
    q "SELECT workqueue.create_queue('$1');
       SELECT workqueue.create_source('$1', '$1', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
                                      '{\"batch_size\": 50, \"mapping\": {\"priority\": \"\$.severity\"}}')" >/dev/null
}
sync() { q "SELECT workqueue.sync('$1', \"full\" => ${2:-false}, force => true)"; }
count() { q "SELECT count(*) FROM workqueue.item WHERE queue = '$1' ${2:+AND $2}"; }
run_col() { q "SELECT $2 FROM workqueue.sync_run WHERE id = $1"; }

wait_until 20 "a fetch worker on the coordinator" worker_running fetch
listen_start "$tmp/listen.out"
wait_until 10 "the listener" q_is "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wq_listener_$$'" 1

control '{"reset": true}'
for s in "$qa" "$qb"; do
    new_source "$s"
    r=$(sync "$s")
    is "$(wait_run $r "120 seconds")" "completed|" "$s: first load completes"
    is "$(run_col $r "ids_seen || ' ' || missing || ' ' || inserted || ' ' || batches_done")" "250 250 250 5" \
       "$s: 250 listed, missing and inserted in 5 batches"
    is "$(count "$s")" 250 "$s: 250 items"
done
is "$(psql -XAtq -h 127.0.0.1 -p "${workers[0]}" -c "SELECT count(*) FROM workqueue.item WHERE queue = '$qa'")" 250 \
   "the items of $qa are on ${workers[0]}"

id7=$(q "SELECT id FROM workqueue.item WHERE queue = '$qa' AND external_id = 'C-0007'")
q "SELECT workqueue.update_fields($id7, '{\"owner\": \"alice\"}')" >/dev/null
control '{"update": {"C-0007": {"name": "Case seven", "severity": 1}}}'
r=$(sync "$qa" true)
is "$(wait_run $r "60 seconds")" "completed|" "full run completes"
is "$(run_col $r "updated || ' ' || unchanged || ' ' || closed")" "1 249 0" "one changed, 249 unchanged, none closed"
is "$(q "SELECT data->>'name' || ' ' || priority || ' ' || (notes->>'owner') FROM workqueue.item WHERE id = $id7")" \
   "Case seven 1 alice" "upstream change applied, local note kept"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$qa' AND item_id = $id7 AND kind = 'synced'")" 1 "a synced event"

# a failed run closes nothing
control '{"open": ["C-0001", "C-0002"], "listing_down": true}'
r=$(sync "$qb" true)
st=$(wait_run $r "60 seconds")
is "${st%%|*}" failed "a run against a failing API fails"
is "$(count "$qb" "status = 'closed'")" 0 "... and closes nothing"

control '{"reset": true}'
control '{"open": ["C-0001", "C-0002", "C-0003", "C-0004", "C-0005", "C-0006", "C-0007", "C-0008"]}'
r=$(sync "$qb" true)
is "$(wait_run $r "60 seconds")" "completed|" "full reload completes"
is "$(run_col $r closed)" 242 "full reload closes the 242 vanished items"
is "$(count "$qb" "status = 'closed'")" 242 "242 items closed"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$qb' AND kind = 'upstream_closed'")" 242 "an upstream_closed event each"
is "$(q "SELECT count(*) FROM workqueue.sync_run WHERE source IN ('$qa', '$qb') AND status = 'running'")" 0 "no run left running"

# announcements reach the listener on the coordinator (test/citus/notify.sh
# tests them in depth)
n=$(q "SELECT workqueue.add('$qa', '{\"n\": 1}')")
wait_until 15 "the announcement of item $n" listen_heard "$tmp/listen.out" 1 "\"item\" : $n[,}]"
ok $? "an add() through the coordinator is announced to a coordinator listener"
is "$(listen_payloads "$tmp/listen.out" | grep -c "\"queue\" : \"$qa\", \"kind\" : \"created\"")" 251 \
   "... and so is every item of the first load of $qa (250 and that one)"
listen_stop

# a retention pass
q "UPDATE workqueue.item SET resolved_at = now() - interval '40 days'
    WHERE queue = '$qb' AND status = 'closed'" >/dev/null
q "SELECT workqueue.alter_queue('$qb', '{\"retention\": \"30 days\"}')" >/dev/null
q "ALTER SYSTEM SET workqueue.purge_interval = 1" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 60 "the retention pass over $qb" q_is "SELECT count(*) FROM workqueue.item WHERE queue = '$qb' AND status = 'closed'" 0
ok $? "the coordinator's fetch worker runs the retention pass"
q "ALTER SYSTEM RESET workqueue.purge_interval" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
is "$(count "$qb" "status = 'closed'")" 0 "the retention pass purged the 242 closed items"
is "$(count "$qb")" 8 "... and kept the open ones"
is "$(q "SELECT sum(items) FROM workqueue.purge WHERE queue = '$qb'")" 242 "a purge summary row counts them"

# drop_queue of a queue with a source
is "$(qerr "SELECT workqueue.drop_queue('$qa', true)")" "" "drop_queue of a queue with a source"
is "$(q "SELECT (SELECT count(*) FROM workqueue.item WHERE queue = '$qa') + (SELECT count(*) FROM workqueue.source WHERE queue = '$qa')
          + (SELECT count(*) FROM workqueue.sync_run WHERE source = '$qa')")" 0 "... its items, source and runs are gone"
is "$(qerr "SELECT workqueue.drop_queue('$qb', true)")" "" "drop_queue of the other (with purge rows)"
finish
