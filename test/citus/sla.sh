#!/usr/bin/env bash
# test/citus/sla.sh — SLA timers, transitions into SLA and role steps,
# create_calendar, set_scope and scopes on a distributed install (issue 15,
# part 2; doc/scale-out.md, "SLA timers, calendars and scopes").  The same
# answers as on one node; the timers fire through the coordinator's fetch
# worker.  (Runs on the cluster basic.sh distributed; distributes if not.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"

citus_distribute
is "$(q "SELECT workqueue._citus()")" t "the cached mode says distributed"

# create_calendar: a reference table, written through the coordinator
is "$(q "SELECT workqueue.create_calendar('sla_office', 'Europe/London',
          '{\"mon\": [[\"09:00\", \"17:00\"]], \"tue\": [[\"09:00\", \"17:00\"]]}', '{2026-12-29,2026-12-28,2026-12-29}')")" 1 \
   "create_calendar() works"
is "$(q "SELECT holidays FROM workqueue.calendar WHERE name = 'sla_office'")" "{2026-12-28,2026-12-29}" \
   "... its holidays sorted, each once"
is "$(q "SELECT workqueue.business_add('2026-12-07 16:00+00', '2 hours', 'sla_office')")" "2026-12-08 10:00:00+00" \
   "... and counts working time as on one node"

# a policy with short targets and a workflow with SLA and role steps
q "SELECT workqueue.create_sla_policy('sla_fast', '24x7', '{\"2\": \"1 hour\", \"3\": \"4 seconds\"}', '{50}')" >/dev/null
q "SELECT workqueue.define_workflow('sla_flow', '{
  \"steps\": [{\"name\": \"triage\", \"start\": true, \"escalate_to\": \"sla_leads\"},
            {\"name\": \"work\", \"role\": \"sla_agents\", \"weight\": 3},
            {\"name\": \"wait\", \"pauses_sla\": true},
            {\"name\": \"done\", \"kind\": \"resolved\"}],
  \"transitions\": [{\"name\": \"start\", \"from\": \"triage\", \"to\": \"work\"},
                  {\"name\": \"hold\", \"from\": \"work\", \"to\": \"wait\"},
                  {\"name\": \"resume\", \"from\": \"wait\", \"to\": \"work\"},
                  {\"name\": \"finish\", \"from\": [\"triage\", \"work\"], \"to\": \"done\"}]}')" >/dev/null
q "SELECT workqueue.add_member('sla_leads', 'lea'); SELECT workqueue.add_member('sla_agents', 'ann');
   SELECT workqueue.add_member('sla_agents', 'bob')" >/dev/null
for n in 1 2 3 4; do q "SELECT workqueue.create_queue('sla$n', 'sla_flow', 'sla_fast')" >/dev/null; done
is "$(q "SELECT count(DISTINCT p.nodeport) FROM unnest('{sla1,sla2,sla3,sla4}'::text[]) x(q)
           JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('workqueue.item', x.q)
           JOIN pg_dist_node p ON p.groupid = pl.groupid")" 2 "the four queues are on both workers"

# items on both workers: slow ones (priority 2, 1 hour) to move, fast ones
# (priority 3, 4 seconds) for the timers
read -r s1 s2 s3 s4 <<<"$(q "SELECT string_agg(workqueue.add(q, '{}', 2)::text, ' ' ORDER BY q) FROM unnest('{sla1,sla2,sla3,sla4}'::text[]) q")"
# (created_at is the shard's now(), the SLA columns the coordinator's: a
# few milliseconds apart)
is "$(q "SELECT count(*) FROM workqueue.item WHERE id IN ($s1, $s2, $s3, $s4) AND sla_target = '1 hour'
           AND abs(extract(epoch FROM due_at - created_at) - 3600) < 2
           AND sla_next_at = due_at - interval '30 minutes'")" 4 \
   "add() starts the SLA of each item"

# transitions into a role step with an SLA
is "$(q "SELECT step || ':' || coalesce(assignee, '-') FROM workqueue.transition($s1, 'start')")" "work:ann" \
   "transition() into a role step assigns (round robin)"
is "$(q "SELECT workqueue.transition_many(ARRAY[$s2, $s3], 'start')")" 2 "transition_many() over two queues"
# (in turn queue by queue: a batch is moved per queue on Citus)
is "$(q "SELECT string_agg(assignee, ',' ORDER BY assignee) FROM workqueue.item WHERE id IN ($s2, $s3)")" \
   "ann,bob" "... each assigned by the role in turn"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE item_id IN ($s1, $s2, $s3) AND kind = 'assigned'")" 3 \
   "... with an assigned event each"
is "$(q "SELECT count(*) FROM workqueue.item WHERE id IN ($s1, $s2, $s3) AND sla_clock_from IS NOT NULL
           AND sla_paused_at IS NULL AND step_due_at IS NOT NULL AND sla_next_at IS NOT NULL")" 3 \
   "... their clocks run, with the step's due time"
# pause and resume
due=$(q "SELECT due_at FROM workqueue.item WHERE id = $s1")
is "$(q "SELECT step FROM workqueue.transition($s1, 'hold')")" wait "transition() into a step that pauses the SLA"
is "$(q "SELECT sla_paused_at IS NOT NULL AND sla_clock_from IS NULL AND sla_next_at IS NULL AND due_at = '$due'
           FROM workqueue.item WHERE id = $s1")" t "... stops the clock, keeps the due time"
is "$(q "SELECT paused FROM workqueue.sla_status($s1)")" t "... sla_status() says paused"
is "$(q "SELECT step FROM workqueue.transition($s1, 'resume')")" work "transition() back to work"
is "$(q "SELECT sla_paused_at IS NULL AND sla_clock_from IS NOT NULL AND due_at >= '$due' AND sla_next_at IS NOT NULL
           FROM workqueue.item WHERE id = $s1")" t "... runs the clock again, the due time moved by the pause"
is "$(q "SELECT string_agg(payload->>'assignee', ',' ORDER BY id) FROM workqueue.item_event
           WHERE item_id = $s1 AND kind = 'assigned'")" "ann,$(q "SELECT assignee FROM workqueue.item WHERE id = $s1")" \
   "... and assigned again (a step without a role left it unassigned)"
is "$(q "SELECT step || ':' || status FROM workqueue.transition($s4, 'finish')")" done:resolved \
   "transition() into a terminal step"
is "$(q "SELECT sla_clock_from IS NULL AND sla_next_at IS NULL FROM workqueue.item WHERE id = $s4")" t \
   "... stops the clock for good"

# the timers, fired by the coordinator's fetch worker
read -r f1 f2 f3 f4 <<<"$(q "SELECT string_agg(workqueue.add(q, '{}', 3)::text, ' ' ORDER BY q) FROM unnest('{sla1,sla2,sla3,sla4}'::text[]) q")"
fast="$f1, $f2, $f3, $f4"
wait_until 30 "the warnings fire" q_is "SELECT count(*) FROM workqueue.item_event WHERE item_id IN ($fast) AND kind = 'sla_warning'" 4
ok $? "sla_warning fires for the items of both workers"
wait_until 30 "the breaches fire" q_is "SELECT count(*) FROM workqueue.item_event WHERE item_id IN ($fast) AND kind = 'sla_breach'" 4
ok $? "sla_breach fires"
wait_until 10 "the escalations" q_is "SELECT count(*) FROM workqueue.item_event WHERE item_id IN ($fast) AND kind = 'escalated'" 4
ok $? "the breached items are escalated"
is "$(q "SELECT string_agg(DISTINCT assignee, ',') FROM workqueue.item WHERE id IN ($fast)")" lea \
   "... to the member of the step's escalate_to role"
is "$(q "SELECT string_agg(DISTINCT e.payload->>'percent' || ':' || (e.payload->>'target'), ',')
           FROM workqueue.item_event e WHERE e.item_id IN ($fast) AND e.kind = 'sla_warning'")" "50:00:00:04" \
   "the warnings carry the percentage and the target"
is "$(q "SELECT count(*) FROM workqueue.item WHERE id IN ($fast) AND sla_level = 2 AND sla_next_at IS NULL")" 4 \
   "... and every item is past its last threshold"
is "$(q "SELECT breached || ':' || (percent >= 100) || ':' || paused FROM workqueue.sla_status($f2)")" "true:true:false" \
   "sla_status() of a breached item"
is "$(q "SELECT priority || ':' || items || ':' || breached FROM workqueue.sla_report('sla1', now() - interval '1 hour', now() + interval '1 hour')
           ORDER BY priority")" "$(printf '2:1:0\n3:1:1')" "sla_report() counts as on one node"
is "$(q "SELECT workqueue._fire_sla_timers() IS NOT NULL")" t "_fire_sla_timers() by hand: the next threshold (the slow items)"

# assignment strategies: least_loaded counts open items over every shard
is "$(qerr "SELECT workqueue.assignment_strategy('sla_agents', 'least_loaded')")" "" "assignment_strategy() works"
q "SELECT workqueue.add_member('sla_agents', 'cid')" >/dev/null
l1=$(q "SELECT workqueue.add('sla2', '{}', 2)")
is "$(q "SELECT assignee FROM workqueue.transition($l1, 'start')")" cid \
   "least_loaded: the member without open items gets the item"

# set_scope over items of both workers
is "$(q "SELECT workqueue.set_scope(ARRAY[$s2, $s3], '{emea}')")" 2 "set_scope() over two queues"
is "$(q "SELECT workqueue.set_scope(ARRAY[$s2, $s3], '{emea}')")" 0 "... again: nothing changes"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE item_id IN ($s2, $s3) AND kind = 'field_update'
           AND payload->'new'->'scope' = '[\"emea\"]'")" 2 "... one event each"
is "$(qerr "SELECT workqueue.set_scope(ARRAY[$s2, 999999999], '{}')")" "item 999999999 does not exist" \
   "set_scope() with an unknown id raises"

# scopes in transition(): the scope check runs in the shard's query, with
# the coordinator's caller
q "DROP ROLE IF EXISTS wq_citus_sla; CREATE ROLE wq_citus_sla LOGIN IN ROLE workqueue_agent" >/dev/null 2>&1
q "SELECT workqueue.grant_scope('wq_citus_sla', 'emea')" >/dev/null
q "SELECT workqueue.create_queue('slascope1'); SELECT workqueue.create_queue('slascope2')" >/dev/null
read -r h1 v1 h2 v2 <<<"$(q "SELECT string_agg(workqueue.add(q, '{}')::text, ' ' ORDER BY q, n)
                              FROM unnest('{slascope1,slascope2}'::text[]) q, generate_series(1, 2) n")"
q "SELECT workqueue.set_scope(ARRAY[$h1, $h2], '{apac}'); SELECT workqueue.set_scope(ARRAY[$v1, $v2], '{emea}')" >/dev/null
as_role() { qerr "SET ROLE wq_citus_sla; $1"; }
is "$(as_role "SELECT workqueue.transition($h1, 'resolve')")" "item $h1 does not exist" \
   "a scoped role: transition() of an item of another scope: does not exist"
is "$(as_role "SELECT workqueue.transition(999999999, 'resolve')")" "item 999999999 does not exist" \
   "... as a missing one"
is "$(as_role "SELECT workqueue.transition_many(ARRAY[$h2], 'resolve')")" "item $h2 does not exist" \
   "... transition_many() too"
is "$(as_role "SELECT workqueue.transition_many(ARRAY[$v2, $h1], 'resolve')")" "item $h1 does not exist" \
   "... also next to a visible item"
is "$(q "SELECT string_agg(status, ',') FROM workqueue.item WHERE id IN ($h1, $h2, $v2)")" "open,open,open" \
   "... nothing moved"
is "$(as_role "SELECT workqueue.allowed_transitions($h1)")" "item $h1 does not exist" \
   "allowed_transitions() of an item of another scope: does not exist"
is "$(q "SET ROLE wq_citus_sla; SELECT string_agg(t, ',' ORDER BY t) FROM workqueue.allowed_transitions($v1) t")" \
   "reject,resolve" "allowed_transitions() of an item of its scope"
is "$(as_role "SELECT workqueue.transition($v1, 'resolve')")" "" "transition() of an item of its scope works"
is "$(as_role "SELECT workqueue.transition_many(ARRAY[$v2], 'resolve')")" "" "transition_many() of one works"
is "$(q "SELECT string_agg(status, ',' ORDER BY id) FROM workqueue.item WHERE id IN ($v1, $v2)")" "resolved,resolved" \
   "... both moved"

finish
