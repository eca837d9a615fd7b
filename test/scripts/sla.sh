#!/usr/bin/env bash
# test/scripts/sla.sh — SLA timers fired by the real background worker, on
# time, and round-robin / least-loaded assignment under concurrency
# (SPEC §5, §6, §7).
#
#  1. A policy with a 4-second target (warnings at 25% and 50%) on the 24x7
#     calendar: a running item gets sla_warning at 1 s and 2 s and sla_breach
#     at 4 s after creation, each within a second of its instant, then an
#     escalated event to the step's escalate_to role and a new assignee; a
#     LISTENing client receives a NOTIFY for each.  An item paused at once
#     and an item resolved at once get no SLA events.
#  2. The fetch worker is terminated while a timer is pending: the worker
#     comes back and the breach still fires (timers live in the table).
#  3. 8 pgbench clients create 400 items in a queue whose start step has a
#     role of 4 members with round robin: exactly 100 each; the same with
#     least_loaded: exactly 100 open items each.
#
# Runs in the database the worker serves (postgres), with names prefixed
# sla_sh; prints "ok N - ..." lines and "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
export LC_ALL=C
export PGDATABASE=postgres

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-sla.XXXXXX")
listener_pid=
cleanup() {
    if [[ -n $listener_pid ]]; then kill "$listener_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# the worker must be up for this database
wait_until 10 "the fetch worker of this database" q_is "SELECT count(*) FROM workqueue.worker_status WHERE kind = 'fetch'" 1
is "$(q "SELECT count(*) FROM workqueue.worker_status WHERE kind = 'fetch'")" 1 "the fetch worker serves this database"

q "SELECT workqueue.create_sla_policy('sla_sh_fast', '24x7', '{\"1\": \"4 seconds\", \"2\": \"3 seconds\"}', '{25,50}')" >/dev/null
q "SELECT workqueue.define_workflow('sla_sh_flow', '{\"steps\": [
      {\"name\": \"work\", \"role\": \"sla_sh_agent\", \"start\": true, \"escalate_to\": \"sla_sh_lead\"},
      {\"name\": \"wait\", \"pauses_sla\": true},
      {\"name\": \"done\", \"kind\": \"resolved\"}],
    \"transitions\": [{\"name\": \"park\", \"from\": \"work\", \"to\": \"wait\"},
                      {\"name\": \"finish\", \"from\": \"work\", \"to\": \"done\"}]}')" >/dev/null
q "SELECT workqueue.add_member('sla_sh_agent', 'amy'), workqueue.add_member('sla_sh_lead', 'lou')" >/dev/null
q "SELECT workqueue.create_queue('sla_sh', 'sla_sh_flow', 'sla_sh_fast')" >/dev/null

# a listener for the whole of part 1: LISTEN, then sleep; psql prints the
# notifications it received after the sleep
PGAPPNAME=sla_sh_listener psql -X -q -c "LISTEN workqueue" -c "SELECT pg_sleep(8)" -c "SELECT 1" >"$tmp/listen.out" 2>&1 &
listener_pid=$!
wait_until 10 "the listener to LISTEN (and sleep)" \
    q_is "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sla_sh_listener' AND wait_event = 'PgSleep'" 1

ids=$(q "SELECT string_agg(workqueue.add('sla_sh', jsonb_build_object('n', n), 1)::text, ' ') FROM generate_series(1, 3) n")
read -r run paused resolved <<<"$ids"
q "SELECT workqueue.transition($paused, 'park'), workqueue.transition($resolved, 'finish')" >/dev/null
is "$(q "SELECT assignee FROM workqueue.item WHERE id = $run")" amy "the new item is assigned to the agent"

# not a wait: part 1 is checked at one instant, 5.5 s after the items were
# created -- by then everything due by 4 s has fired (each within its
# second), and nothing else (no event for the paused and resolved items, no
# second one for the running item)
sleep 5.5
is "$(q "SELECT string_agg(kind || coalesce(':' || (payload->>'percent'), ''), ',' ORDER BY id)
           FROM workqueue.item_event WHERE item_id = $run AND kind IN ('sla_warning', 'sla_breach', 'escalated')")" \
   "sla_warning:25,sla_warning:50,sla_breach:100,escalated" "warnings at 25% and 50%, the breach, then the escalation"
lateness=$(q "SELECT string_agg(round(extract(epoch FROM e.at - i.created_at)::numeric, 3)::text, ' ' ORDER BY e.id)
                FROM workqueue.item_event e JOIN workqueue.item i ON i.id = e.item_id
               WHERE e.item_id = $run AND e.kind IN ('sla_warning', 'sla_breach')")
echo "# fired at (seconds after creation; due at 1, 2, 4): $lateness"
is "$(q "SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.id = e.item_id
          WHERE e.item_id = $run AND e.kind IN ('sla_warning', 'sla_breach')
            AND e.at - i.created_at BETWEEN i.sla_target * ((CASE WHEN e.kind = 'sla_breach' THEN 100
                                                                 ELSE (e.payload->>'percent')::int END) / 100.0)
                                        AND i.sla_target * ((CASE WHEN e.kind = 'sla_breach' THEN 100
                                                                 ELSE (e.payload->>'percent')::int END) / 100.0)
                                            + interval '1 second'")" 3 "each fired within a second of its instant, not before"
is "$(q "SELECT assignee FROM workqueue.item WHERE id = $run")" lou "escalated to the lead"
is "$(q "SELECT (sla_status).breached FROM (SELECT workqueue.sla_status($run)) s")" t "sla_status says breached"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE item_id = $paused AND kind LIKE 'sla%'")" 0 \
   "the paused item got no SLA events"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE item_id = $resolved AND kind LIKE 'sla%'")" 0 \
   "the resolved item got no SLA events"

wait "$listener_pid"
listener_pid=
grep -o '"item" *: *'"$run"', *"queue" *: *"sla_sh", *"kind" *: *"[a-z_]*"' "$tmp/listen.out" |
    sed -E 's/.*"kind" *: *"([a-z_]*)"/\1/' | grep -E '^(sla_|escalated)' | tr '\n' ',' >"$tmp/kinds"
is "$(cat "$tmp/kinds")" "sla_warning,sla_warning,sla_breach,escalated," "a listener got a NOTIFY for each"

# 2. the worker dies while a timer is pending
late=$(q "SELECT workqueue.add('sla_sh', '{}', 2)")
q "SELECT pg_terminate_backend(pid) FROM workqueue.worker_status WHERE kind = 'fetch'" >/dev/null
fired=
breach_fired() { fired=$(q "SELECT count(*) FROM workqueue.item_event WHERE item_id = $late AND kind = 'sla_breach'"); [[ $fired == 1 ]]; }
wait_until 15 "the breach of item $late after the fetch worker was terminated" breach_fired
is "$fired" 1 "after the worker was terminated, its successor fires the pending breach"

# 3. assignment under concurrency
for strategy in round_robin least_loaded; do
    role=sla_sh_pool_$strategy
    q "SELECT workqueue.define_workflow('sla_sh_pool_$strategy', '{\"steps\": [
          {\"name\": \"work\", \"role\": \"$role\", \"start\": true}, {\"name\": \"done\", \"kind\": \"resolved\"}],
        \"transitions\": [{\"name\": \"finish\", \"from\": \"work\", \"to\": \"done\"}]}')" >/dev/null
    q "SELECT workqueue.assignment_strategy('$role', '$strategy')" >/dev/null
    q "SELECT workqueue.add_member('$role', m) FROM unnest(ARRAY['p1', 'p2', 'p3', 'p4']) m" >/dev/null
    q "SELECT workqueue.create_queue('sla_sh_pool_$strategy', 'sla_sh_pool_$strategy')" >/dev/null
    echo "SELECT workqueue.add('sla_sh_pool_$strategy');" >"$tmp/add.sql"
    pgbench -n -c 8 -j 2 -t 50 -f "$tmp/add.sql" >"$tmp/pgbench.out" 2>&1
    ok $? "$strategy: 8 pgbench clients added 400 items without error"
    is "$(q "SELECT string_agg(assignee || '=' || n, ' ' ORDER BY assignee)
               FROM (SELECT assignee, count(*) AS n FROM workqueue.item
                      WHERE queue = 'sla_sh_pool_$strategy' GROUP BY assignee) x")" \
       "p1=100 p2=100 p3=100 p4=100" "$strategy: exactly 100 items for each of the 4 members"
    is "$(q "SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.id = e.item_id
              WHERE i.queue = 'sla_sh_pool_$strategy' AND e.kind = 'assigned'")" 400 "$strategy: one assigned event per item"
done

finish
