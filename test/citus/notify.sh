#!/usr/bin/env bash
# test/citus/notify.sh — announcements on a distributed install (issue 15,
# part 2): a LISTEN workqueue on the coordinator hears every event written
# through the API, whichever worker holds the item, after its transaction
# committed on every node, never an event of a rolled-back transaction, the
# events of one item in their order, and an item with a scope by its event
# id alone.  Transactions that write on both workers commit in two phases:
# Citus sends COMMIT PREPARED after the coordinator's commit, and the
# announce worker must not read before it (src/queue/announce.c,
# SettleCommits); many of them, from two clients, are all heard.
# (Runs on the cluster test/run.sh citus starts; distributes if not yet.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
export LC_ALL=C
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-citus-notify.XXXXXX")
api_start
trap 'listen_stop; kill $T_API_PID 2>/dev/null; rm -rf "$tmp"' EXIT

citus_distribute
is "$(q "SELECT workqueue._citus()")" t "the cached mode says distributed"

qa=$(citus_queue_on an "${workers[0]}"); qb=$(citus_queue_on an "${workers[1]}")
ok $([[ -n $qa && -n $qb ]]; echo $?) "a queue on each worker ($qa on ${workers[0]}, $qb on ${workers[1]})"
q "SELECT workqueue.create_queue('$qa'); SELECT workqueue.create_queue('$qb')" >/dev/null

# the event ids heard, one per line, sorted; and those written in the two queues
heard_ids() { listen_payloads "$tmp/listen.out" | sed -n 's/.*"event" : \([0-9]*\).*/\1/p' | sort -u; }
event_ids() { q "SELECT id FROM workqueue.item_event WHERE queue IN ('$qa', '$qb') ${1:+AND $1} ORDER BY id::text"; }
all_heard() { [[ -z $(comm -23 <(event_ids "$@") <(heard_ids)) ]]; }

listen_start "$tmp/listen.out"

# --- one call after another, on either worker ------------------------------
a1=$(q "SELECT workqueue.add('$qa', '{\"n\": 1}')")
a2=$(q "SELECT workqueue.add('$qa', '{\"n\": 2}')")
b1=$(q "SELECT workqueue.add('$qb', '{\"n\": 1}')")
b2=$(q "SELECT workqueue.add('$qb', '{\"n\": 2}')")
cl=$(q "SELECT id FROM workqueue.claim('$qa', 1)")
q "SELECT workqueue.extend_lease($cl, '5 minutes')" >/dev/null
q "SELECT workqueue.release($cl)" >/dev/null
q "SELECT workqueue.comment($a1, 'looked at it')" >/dev/null
q "SELECT workqueue.update_fields($b1, '{\"owner\": \"alice\"}')" >/dev/null
q "SELECT workqueue.transition($a2, 'resolve')" >/dev/null
# one call, both workers: two-phase commit
is "$(q "SELECT workqueue.transition_many(ARRAY[$b1, $b2], 'reject')")" 2 "transition_many() over the items of one worker"
is "$(q "SELECT count(*) FROM workqueue.add_many('$qb', '[{\"data\": {\"n\": 3}}, {\"data\": {\"n\": 4}}]')")" 2 \
   "add_many() into one queue"
# a transaction over both workers, and one rolled back
qs() { psql -XAtq -v ON_ERROR_STOP=1; }   # qs <<<SQL: a script, its rows
read -r c1 c2 <<<"$(qs <<<"BEGIN; SELECT workqueue.add('$qa', '{\"n\": 10}'); SELECT workqueue.add('$qb', '{\"n\": 10}'); COMMIT;" | paste -sd' ')"
ok $([[ -n $c1 && -n $c2 ]]; echo $?) "a transaction adds an item on each worker ($c1, $c2)"
q "SELECT workqueue.transition_many(ARRAY[$c1, $c2], 'resolve')" >/dev/null
gone=$(qs <<<"BEGIN; SELECT workqueue.add('$qa', '{\"n\": 99}'); ROLLBACK;")

wait_until 30 "every event of the two queues to be heard" all_heard
ok $? "every event written in $qa and $qb is heard on the coordinator ($(event_ids | wc -l) events)"
ok "$(listen_payloads "$tmp/listen.out" | grep -c "\"item\" : $gone[,}]")" "no announcement of the rolled-back add (item $gone)"
for it in $a1 $b1 $c1 $c2; do
    is "$(listen_payloads "$tmp/listen.out" | sed -n "s/.*\"item\" : $it, .*\"event\" : \([0-9]*\).*/\1/p" | paste -sd' ')" \
       "$(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM workqueue.item_event WHERE item_id = $it")" \
       "the events of item $it are heard once each, in their order"
done
is "$(listen_payloads "$tmp/listen.out" | grep -c "\"item\" : $c2, .*\"kind\" : \"transition\"")" 1 \
   "the move of item $c2 is announced as a transition"

# written by the coordinator's fetch worker: a fetch into each queue
q "SELECT workqueue.create_source('${qa}s', '$qa', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT workqueue.create_source('${qb}s', '$qb', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null
q "UPDATE workqueue.item SET external_id = 'C-0001' WHERE queue = '$qa' AND id = $a1;
   UPDATE workqueue.item SET external_id = 'C-0002' WHERE queue = '$qb' AND id = $b1" >/dev/null
q "SELECT workqueue.enqueue_fetch($a1, '${qa}s')" >/dev/null
q "SELECT workqueue.enqueue_fetch($b1, '${qb}s')" >/dev/null
wait_until 60 "the two fetches" q_is "SELECT count(*) FROM workqueue.item_event
                                       WHERE queue IN ('$qa', '$qb') AND kind = 'fetch_completed'" 2
ok $? "the fetch worker completes a fetch in each queue"
wait_until 30 "every event, the fetch worker's too, to be heard" all_heard
ok $? "... and its events are heard too"

# --- an item with a scope: its event id alone -----------------------------
q "SELECT workqueue.set_scope(ARRAY[$a1], '{emea}')" >/dev/null
q "SELECT workqueue.comment($a1, 'secret')" >/dev/null
e=$(q "SELECT max(id) FROM workqueue.item_event WHERE item_id = $a1")
wait_until 15 "the comment on the scoped item" listen_heard "$tmp/listen.out" 1 "^{\"event\" : $e}$"
ok $? "an event of an item with a scope is announced by its id alone"

# --- a round in the middle of a two-phase commit ----------------------------
# The transaction's commit is visible on the coordinator, its rows on the
# workers not yet (Citus sends COMMIT PREPARED after the coordinator's
# commit; workqueue.test_commit_delay holds it back 3 s).  Meanwhile another
# add commits and is announced: the round that announces it must not move
# past the first transaction's events.
q "DO \$\$ BEGIN CREATE ROLE wq_notify_plain LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
is "$(qerr "SET ROLE wq_notify_plain; SET workqueue.test_commit_delay = 3000")" \
   'permission denied to set parameter "workqueue.test_commit_delay"' "a plain role cannot set the test's commit delay"
PGAPPNAME=wq_slow_commit psql -XAtq -v ON_ERROR_STOP=1 >"$tmp/slow.out" 2>&1 <<SQL &
SET workqueue.test_commit_delay = 3000;
BEGIN;
SELECT workqueue.add('$qa', '{"slow": true}');
SELECT workqueue.add('$qb', '{"slow": true}');
COMMIT;
SQL
slow=$!
in_commit() {   # committed on the coordinator, still in its commit callbacks
    q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wq_slow_commit'
            AND state = 'active' AND query = 'COMMIT;' AND backend_xid IS NULL"
}
wait_until 30 "the slow transaction to be in its commit" in_commit
ok $? "a transaction over both workers has committed on the coordinator, not yet on the workers"
d=$(q "SELECT workqueue.add('$qa', '{\"during\": true}')")
wait "$slow"
ok $? "the slow transaction commits"
read -r s1 s2 <<<"$(paste -sd' ' "$tmp/slow.out")"
wait_until 20 "the events of the slow transaction and of the add during it" all_heard
ok $? "its events are heard ($s1, $s2), and those of the add during its commit ($d)"

# --- two clients, each transaction on both workers -------------------------
cat >"$tmp/both.sql" <<SQL
BEGIN;
SELECT workqueue.add('$qa', '{"load": true}');
SELECT workqueue.add('$qb', '{"load": true}');
COMMIT;
SQL
before=$(event_ids | wc -l)
pgbench -n -c 2 -j 2 -T 8 -f "$tmp/both.sql" >"$tmp/pgbench.out" 2>&1
ok $? "two clients add on both workers for 8 s: $(sed -n 's/^number of transactions actually processed: //p' "$tmp/pgbench.out") transactions"
added=$(( $(event_ids | wc -l) - before ))
ok $([[ $added -gt 20 ]]; echo $?) "they wrote $added events"
wait_until 60 "every event of the load to be heard" all_heard
ok $? "every event of the load is heard: $(comm -23 <(event_ids) <(heard_ids) | wc -l) missing of $added"
ok "$(listen_payloads "$tmp/listen.out" | grep -c '"bulk"')" "none of them as a bulk summary (one add per transaction and queue)"

listen_stop
q "SELECT workqueue.drop_queue('$qa', force => true); SELECT workqueue.drop_queue('$qb', force => true)" >/dev/null
ok $? "the queues are dropped"

finish
