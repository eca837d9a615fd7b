#!/usr/bin/env bash
# test/citus/workflow.sh — calls that name an item by id alone, on a
# distributed install (issue 15, part 2): each looks the item's queue up and
# then works in that queue's shard.  The same answers as on one node.  Also:
# the background workers run on the coordinator only.
# (Runs after basic.sh, on the cluster it distributed; distributes if not.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"


citus_distribute
is "$(q "SELECT workqueue._citus()")" t "the cached mode says distributed"

ins="INSERT INTO workqueue.item (queue, step, workflow, workflow_version, data"
q "SELECT workqueue.create_queue('wf1'); SELECT workqueue.create_queue('wf2')" >/dev/null
# items by plain SQL routed by queue (add() is another part of the issue)
q "$ins) SELECT 'wf' || (1 + g % 2), 'review', 'review', 1, jsonb_build_object('n', g) FROM generate_series(1, 6) g" >/dev/null
read -r a1 a2 a3 <<<"$(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM workqueue.item WHERE queue = 'wf1'")"
read -r b1 b2 b3 <<<"$(q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM workqueue.item WHERE queue = 'wf2'")"

# transition, transition_many across two queues
is "$(q "SELECT status FROM workqueue.transition($a1, 'resolve', '{\"why\": \"done\"}')")" resolved \
   "transition() moves an item and returns it"
is "$(q "SELECT workqueue.transition_many(ARRAY[$a2, $b1, $b2], 'reject')")" 3 \
   "transition_many() over items of two queues"
is "$(q "SELECT string_agg(i.status, ',' ORDER BY x.o) FROM unnest(ARRAY[$a1, $a2, $b1, $b2]) WITH ORDINALITY x(id, o)
           JOIN workqueue.item i ON i.id = x.id")" \
   "resolved,rejected,rejected,rejected" "... every item moved"
is "$(q "SELECT count(*) FROM workqueue.item WHERE id IN ($a1, $a2, $b1, $b2) AND resolved_at IS NOT NULL")" 4 \
   "... with its resolved_at"
is "$(q "SELECT kind || ':' || (payload->>'transition') || ':' || (payload->'payload'->>'why') FROM workqueue.history($a1)")" \
   "transition:resolve:done" "history() has the transition event"
is "$(qerr "SELECT workqueue.transition_many(ARRAY[$a3, 999999999], 'resolve')")" "item 999999999 does not exist" \
   "transition_many() with an unknown id raises"
is "$(q "SELECT status FROM workqueue.item WHERE id = $a3")" open "... and moves nothing"
is "$(qerr "SELECT workqueue.transition($a1, 'resolve')")" \
   "transition \"resolve\" is not allowed from step \"resolved\"" "a transition the workflow does not allow is refused"

# claims by plain SQL (claim() is another part), then the lease calls
q "UPDATE workqueue.item SET status = 'in_progress', claimed_by = 'w1', lease_until = now() + interval '1 minute'
    WHERE queue = 'wf2' AND id = $b3" >/dev/null
is "$(qerr "SELECT workqueue.extend_lease($b3, '2 minutes', 'w1')")" "" "extend_lease() by id"
is "$(q "SELECT lease_until > now() + interval '2 minutes' FROM workqueue.item WHERE id = $b3")" t "... the lease is longer"
is "$(q "SELECT status FROM workqueue.release($b3, 'w1')")" open "release() by id"
is "$(qerr "SELECT workqueue.release($b3, 'w1')")" "item $b3 is not claimed" "... a second release() is refused"
is "$(q "SELECT workqueue.comment($a3, 'hello') > 0")" t "comment() by id"
is "$(q "SELECT (workqueue.update_fields($a3, '{\"note\": \"x\"}')).notes->>'note'")" x "update_fields() by id"
is "$(q "SELECT string_agg(kind, ',' ORDER BY id) FROM workqueue.history($a3)")" "comment,field_update" \
   "history() of the item: both events"
is "$(q "SELECT string_agg(kind, ',' ORDER BY id) FROM workqueue.history($b3)")" "lease_extended,released" \
   "history() of the released item"
is "$(qerr "SELECT workqueue.comment(999999999, 'x')")" "item 999999999 does not exist" "an unknown id does not exist"

# scopes: an item out of the caller's scopes does not exist for it
q "CREATE ROLE wq_citus_wf LOGIN IN ROLE workqueue_agent" >/dev/null 2>&1
q "SELECT workqueue.grant_scope('wq_citus_wf', 'emea')" >/dev/null
q "UPDATE workqueue.item SET scope = '{apac}' WHERE queue = 'wf1' AND id = $a3" >/dev/null
is "$(qerr "SET ROLE wq_citus_wf; SELECT workqueue.comment($a3, 'x')")" "item $a3 does not exist" \
   "a scoped role: an item of another scope does not exist"
q "UPDATE workqueue.item SET scope = '{emea}' WHERE queue = 'wf1' AND id = $a3" >/dev/null
is "$(qerr "SET ROLE wq_citus_wf; SELECT workqueue.comment($a3, 'x')")" "" "... one of its scope it may comment on"

# the queues of items a backend has met (src/core/scale.c): a worker that
# claimed items moves them without reading every shard; an item deleted
# since it was met is not found, as without the cache
q "$ins) SELECT 'wf1', 'review', 'review', 1, '{}' FROM generate_series(1, 4)" >/dev/null
gone=$(q "SELECT max(id) FROM workqueue.item WHERE queue = 'wf1' AND status = 'open'")
session=$(psql -X -At -v VERBOSITY=terse 2>&1 <<SQL
SELECT array_agg(id ORDER BY id) AS ids FROM workqueue.claim('wf1', 2, 'wc') \gset
SET citus.log_remote_commands = on;
SET client_min_messages = log;
SELECT 'moved ' || workqueue.transition_many(:'ids', 'resolve', '{}', 'wc');
RESET client_min_messages;
RESET citus.log_remote_commands;
SELECT 'met ' || workqueue.transition_many(ARRAY[$gone]::bigint[], 'resolve');
\! psql -XAtq -c "DELETE FROM workqueue.item_event WHERE queue = 'wf1' AND item_id = $gone" -c "DELETE FROM workqueue.item WHERE queue = 'wf1' AND id = $gone" >/dev/null
SELECT 'again ' || workqueue.transition_many(ARRAY[$gone]::bigint[], 'reopen');
SQL
)
is "$(grep -c '^moved 2$' <<<"$session") $(grep -c 'SELECT queue, id FROM workqueue.item_' <<<"$session")" "1 0" \
   "transition_many() of the items the session claimed: no read of every shard"
is "$(grep -c '^met 1$' <<<"$session")" 1 "an item looked up once is moved"
is "$(grep -o 'ERROR: .*' <<<"$session" | head -1)" "ERROR:  item $gone does not exist" \
   "... and, deleted by another session since, does not exist for the one that met it"
is "$(grep -c '^again' <<<"$session")" 0 "... (nothing moved)"

# the background workers: on the coordinator only
for w in "${workers[@]}"; do
    is "$(qw "$w" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'workqueue fetch worker' AND state = 'active'")" 0 \
       "worker node $w: no fetch worker at work"
done
coordinator_workers() {
    [[ $(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'workqueue % worker'") -ge 2 ]]
}
wait_until 20 "the coordinator's workers run" coordinator_workers
ok $? "the coordinator runs its workers"

finish
