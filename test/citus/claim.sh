#!/usr/bin/env bash
# test/citus/claim.sh — the write path on a distributed install (issue 15,
# part 2): add, add_many, upsert_items, get_items and claim give the
# single-node answers, and concurrent claims from the coordinator and the
# workers take every item exactly once.  Runs under test/citus/cluster.sh
# (PG* name the coordinator, WQ_CITUS_WORKERS the workers' ports).
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"


citus_distribute
cq=wq_claim_$$ wq=wq_write_$$       # new queues on every run (drop_queue of a queue with a source fails on Citus)
is "$(q "SELECT mode FROM workqueue.scale_state")" citus "the install is distributed"
q "SELECT workqueue.create_queue('$cq')" >/dev/null
q "SELECT workqueue.create_queue('$wq')" >/dev/null

# --- single calls: the single-node answers ---------------------------------
a=$(q "SELECT workqueue.add('$wq', '{\"n\": 1}', 2)")
b=$(q "SELECT workqueue.add('$wq', '{\"n\": 2}', 1, 'x-2')")
is "$(q "SELECT count(*) FROM workqueue.add_many('$wq', '[{\"data\": {\"n\": 3}}, {\"data\": {\"n\": 4}, \"priority\": 5}]')")" 2 \
   "add_many adds 2 items"
is "$(qerr "SELECT workqueue.add('$wq', '{}', 3, 'x-2')")" "external id \"x-2\" already exists in queue \"$wq\"" \
   "add refuses an external id the queue has"
is "$(q "SELECT string_agg(g.data->>'n', ',') FROM workqueue.get_items(ARRAY[$b, 0, $a, $b]) g")" 2,1,2 \
   "get_items: the ids' order, unknown ids skipped, repeats kept"
is "$(q "SELECT count(*) FROM workqueue.get_items('{}')") $(q "SELECT count(*) FROM workqueue.get_items(NULL)")" "0 0" \
   "get_items of no ids"
is "$(q "SELECT format('%s/%s/%s', inserted, updated, unchanged) FROM workqueue.upsert_items('$wq',
           '[{\"external_id\": \"x-2\", \"data\": {\"n\": 2}}, {\"external_id\": \"x-3\", \"data\": {\"n\": 30}}]', 'up')")" 1/0/1 \
   "upsert_items: a new record, an equal one"
is "$(q "SELECT format('%s/%s/%s', inserted, updated, unchanged) FROM workqueue.upsert_items('$wq',
           '[{\"external_id\": \"x-2\", \"data\": {\"n\": 20}, \"priority\": 4}, {\"external_id\": \"x-3\", \"data\": {\"n\": 30}}]', 'up')")" 0/1/1 \
   "upsert_items: a changed record"
is "$(q "SELECT format('%s %s %s', priority, data, source) FROM workqueue.item WHERE queue = '$wq' AND external_id = 'x-2'")" \
   '4 {"n": 20} up' "... which is written"
is "$(q "SELECT string_agg(kind || ':' || actor || ':' || payload::text, ' ' ORDER BY id) FROM workqueue.item_event
           WHERE queue = '$wq' AND item_id = $b AND kind = 'synced'")" \
   'synced:up:{"new": {"data": {"n": 20}, "priority": 4}, "old": {"data": {"n": 2}, "priority": 1}}' \
   "... with its synced event"
is "$(q "SELECT string_agg(data->>'n', ',') FROM workqueue.claim('$wq', 3, 'w0')")" 1,3,30 \
   "claim takes the first items in inbox order"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$wq' AND kind = 'claimed' AND actor = 'w0'")" 3 \
   "... and writes their claimed events"
is "$(qw "${workers[0]}" "SELECT data->>'n' FROM workqueue.claim('$wq', 1, 'w1')")" 20 \
   "claim through a worker"
is "$(qerr "SELECT workqueue.claim('wq_nope')")" 'queue "wq_nope" does not exist' "claim of a queue that does not exist"
# a lease that has run out: the item is taken over, its holder fenced
# (the background workers held meanwhile: the coordinator's lease sweep,
# locking the item when the claim looks, made the claim skip it, once)
hold="SELECT workqueue._hold_workers();"
is "$(q "$hold UPDATE workqueue.item SET lease_until = now() - interval '1 minute' WHERE queue = '$wq' AND id = $a;
         SELECT id FROM workqueue.claim('$wq', 1, 'w2')" | tail -1)" "$a" "claim takes over an item whose lease ran out"
is "$(q "SELECT string_agg(kind, ',' ORDER BY id) FROM workqueue.item_event WHERE queue = '$wq' AND item_id = $a
           AND kind IN ('lease_expired', 'claimed')")" claimed,lease_expired,claimed "... with lease_expired then claimed"
is "$(q "SELECT worker FROM workqueue.lease_fence WHERE queue = '$wq' AND item_id = $a")" w0 "... and fences the old holder"
q "$hold UPDATE workqueue.item SET lease_until = now() - interval '1 minute' WHERE queue = '$wq' AND id = $a;
   SELECT count(*) FROM workqueue.claim('$wq', 1, 'w0')" >/dev/null
is "$(q "SELECT string_agg(worker, ',') FROM workqueue.lease_fence WHERE queue = '$wq' AND item_id = $a")" w2 \
   "a claim ends the claiming worker's own fence"

# --- concurrent claims: every item exactly once -----------------------------
items=300
clients=6
q "SELECT count(*) FROM workqueue.add_many('$cq',
     (SELECT jsonb_agg(jsonb_build_object('data', jsonb_build_object('i', g), 'priority', 1 + g % 5))
        FROM generate_series(1, $items) g))" >/dev/null
out=$(mktemp -d)
nodes=("$PGPORT" "${workers[@]}")
pids=()
for c in $(seq 1 $clients); do
    port=${nodes[$((c % ${#nodes[@]}))]}
    (
        while :; do
            got=$(qw "$port" "SELECT string_agg(id::text, E'\n') FROM workqueue.claim('$cq', 1 + $c % 4, 'cw$c')" 2>>"$out/err")
            [[ -z $got ]] && break
            echo "$got" >>"$out/claimed.$c"
        done
    ) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
is "$(cat "$out"/err 2>/dev/null)" "" "$clients clients claimed without an error"
is "$(cat "$out"/claimed.* 2>/dev/null | wc -l)" $items "the clients took $items items"
is "$(cat "$out"/claimed.* 2>/dev/null | sort | uniq -d | wc -l)" 0 "... none twice"
is "$(q "SELECT count(*) || ' ' || count(DISTINCT item_id) FROM workqueue.item_event WHERE queue = '$cq' AND kind = 'claimed'")" \
   "$items $items" "one claimed event per item"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = '$cq' AND status = 'in_progress'
           AND claimed_by = (SELECT e.actor FROM workqueue.item_event e WHERE e.queue = '$cq' AND e.item_id = item.id AND e.kind = 'claimed')")" \
   $items "every item is held by the client whose event says so"
busy=$(ls "$out"/claimed.* 2>/dev/null | wc -l)
echo "# $busy of $clients clients took items"
rm -rf "$out"

# --- scopes: a scoped role claims what it may see, as on one node -----------
sq=wq_scope_$$
q "SELECT workqueue.create_queue('$sq')" >/dev/null
q "DO \$\$BEGIN CREATE ROLE wq_claim_agent LOGIN IN ROLE workqueue_agent; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null
q "SELECT workqueue.grant_scope('wq_claim_agent', 'emea')" >/dev/null
hidden=$(q "SELECT workqueue.add('$sq', '{\"n\": 1}', 1)")
seen=$(q "SELECT workqueue.add('$sq', '{\"n\": 2}', 2)")
open=$(q "SELECT workqueue.add('$sq', '{\"n\": 3}', 3)")
q "SELECT workqueue.set_scope(ARRAY[$hidden], '{apac}'); SELECT workqueue.set_scope(ARRAY[$seen], '{emea}')" >/dev/null
is "$(q "SET ROLE wq_claim_agent; SELECT string_agg(id::text, ',' ORDER BY priority) FROM workqueue.claim('$sq', 3, 'wq_claim_agent')")" \
   "$seen,$open" "a scoped role claims the items of its scopes and those without one, not the others"
is "$(q "SELECT status FROM workqueue.item WHERE queue = '$sq' AND id = $hidden")" open "... the hidden item stays open"

finish
