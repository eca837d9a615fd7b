#!/usr/bin/env bash
# bench/sla.sh — what SLAs and assignment cost, next to the plain SQL a user
# would write for the same job.
#
#   bash bench/sla.sh
#
# Works in database wq_bench_sla (dropped first and at the end; the worker
# does not serve it, so the timer function is called directly).  Set-up: a
# London 09:00-17:00 weekday calendar, a policy (4 h / 8 h / 2 days by
# priority), a workflow whose start step has a role of 4 members (round
# robin).  Three measurements, BENCH_REPEAT (3) rounds each, median:
#
#  1. creating BENCH_ITEMS (20k) items with one upsert_items call into a
#     queue without SLA or role, and into one with both (each item pins its
#     SLA, gets due_at, its first timer and an assignee with an event): the
#     overhead of SLA + assignment on a first load.
#  2. an idle timer tick with 100k open SLA items and nothing due:
#     workqueue._fire_sla_timers() (an index probe on sla_next_at) vs the
#     query a user would schedule with pg_cron every minute to find breaches
#     (open items past due_at without a breach event yet).
#  3. firing 10k due breaches at once: _fire_sla_timers (events, NOTIFY,
#     next timers) vs that cron job's INSERT of one breach event per due
#     item (set-based, no NOTIFY, no warnings, no escalation).
#
# Results go to stdout and bench/results/sla.txt.
set -euo pipefail
cd "$(dirname "$0")"
db=wq_bench_sla
name=sla
items=${BENCH_ITEMS:-20000}
repeat=${BENCH_REPEAT:-3}
source ./lib.sh

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
calc() { awk "BEGIN { print $1 }"; }

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION workqueue;
SELECT workqueue.create_calendar('office', 'Europe/London',
    '{"mon": [["09:00","17:00"]], "tue": [["09:00","17:00"]], "wed": [["09:00","17:00"]],
      "thu": [["09:00","17:00"]], "fri": [["09:00","17:00"]]}');
SELECT workqueue.create_sla_policy('std', 'office', '{"1": "4 hours", "2": "8 hours", "3": "2 days", "4": "5 days", "5": "10 days"}');
SELECT workqueue.define_workflow('desk', '{"steps": [{"name": "work", "role": "agents", "start": true},
    {"name": "done", "kind": "resolved"}], "transitions": [{"name": "finish", "from": "work", "to": "done"}]}');
SELECT workqueue.add_member('agents', m) FROM unnest(ARRAY['a1', 'a2', 'a3', 'a4']) m;
CREATE TABLE input (items jsonb);
SQL
q "INSERT INTO input SELECT jsonb_agg(jsonb_build_object('external_id', 'C-' || g, 'priority', 1 + g % 5,
       'data', jsonb_build_object('title', 'case ' || g, 'n', g))) FROM generate_series(1, $items) g" >/dev/null

log "# bench/sla.sh — $(date -u '+%Y-%m-%d %H:%M UTC'), $items items per load, median of $repeat"

# 1. first load without and with SLA + assignment
plain=(); sla=()
for r in $(seq "$repeat"); do
    q "SELECT workqueue.create_queue('plain_$r'), workqueue.create_queue('sla_$r', 'desk', 'std')" >/dev/null
    q "CHECKPOINT" >/dev/null
    plain+=("$(ms "SELECT * FROM workqueue.upsert_items('plain_$r', (SELECT items FROM input))")")
    q "CHECKPOINT" >/dev/null
    sla+=("$(ms "SELECT * FROM workqueue.upsert_items('sla_$r', (SELECT items FROM input))")")
done
p_ms=$(printf '%s\n' "${plain[@]}" | median)
s_ms=$(printf '%s\n' "${sla[@]}" | median)
check=$(q "SELECT count(*) FILTER (WHERE due_at IS NOT NULL AND assignee IS NOT NULL AND sla_next_at IS NOT NULL)
             FROM workqueue.item WHERE queue = 'sla_1'")
[[ $check == "$items" ]] || { echo "not every item got its SLA and assignee ($check of $items)" >&2; exit 1; }
log ""
log "1. first load of $items items (upsert_items)"
log "$(printf '   %-34s %9s ms  %9.0f items/s\n' "queue without SLA or role" "$p_ms" "$(calc "$items / $p_ms * 1000")")"
log "$(printf '   %-34s %9s ms  %9.0f items/s\n' "queue with SLA policy + round robin" "$s_ms" "$(calc "$items / $s_ms * 1000")")"
log "$(printf '   SLA + assignment cost %.2fx the time of a plain load\n' "$(calc "$s_ms / $p_ms")")"

# 2. an idle tick over 100k open SLA items
q "SELECT workqueue.create_queue('big', 'desk', 'std')" >/dev/null
for k in 1 2 3 4 5; do
    q "SELECT * FROM workqueue.upsert_items('big', (SELECT jsonb_agg(jsonb_set(e, '{external_id}', to_jsonb((e->>'external_id') || '-$k')))
                                                    FROM input, jsonb_array_elements(items) e))" >/dev/null
done
open=$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'big'")
q "VACUUM ANALYZE workqueue.item" >/dev/null; q "VACUUM ANALYZE workqueue.item_event" >/dev/null
cron_sql="SELECT count(*) FROM workqueue.item i
           WHERE i.status IN ('open', 'in_progress') AND i.due_at <= now()
             AND NOT EXISTS (SELECT 1 FROM workqueue.item_event e
                              WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind = 'sla_breach')"
# both in one session, alternating, 11 times each; the first (cold) round is dropped
for r in $(seq 11); do
    echo "SELECT workqueue._fire_sla_timers();"
    echo "$cron_sql;"
done | psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c '\timing on' -f - | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' >"$tmp/ticks"
t_ms=$(awk 'NR > 2 && NR % 2 == 1' "$tmp/ticks" | median)
c_ms=$(awk 'NR > 2 && NR % 2 == 0' "$tmp/ticks" | median)
log ""
log "2. idle timer tick, $open open SLA items (all SLA items: $(q "SELECT count(*) FROM workqueue.item WHERE sla_target IS NOT NULL")), none due"
log "$(printf '   %-34s %9s ms\n' "_fire_sla_timers (timer index)" "$t_ms")"
log "$(printf '   %-34s %9s ms\n' "pg_cron breach query (scan)" "$c_ms")"
log "$(printf '   the timer tick is %.0fx cheaper\n' "$(calc "$c_ms / $t_ms")")"

# 3. 10k breaches due at once
due_sql="UPDATE workqueue.item SET sla_clock_from = sla_clock_from - interval '3 years', sla_level = 2,
                                  sla_next_at = now() - interval '1 second', due_at = now() - interval '1 second'
          WHERE queue = 'big' AND id IN (SELECT id FROM workqueue.item WHERE queue = 'big' AND sla_level = 0
                                          ORDER BY id LIMIT 10000)"
fire=(); plainfire=()
for r in $(seq "$repeat"); do
    q "$due_sql" >/dev/null
    before=$(q "SELECT count(*) FROM workqueue.item_event WHERE kind = 'sla_breach' AND actor = 'workqueue'")
    fire+=("$(ms "SELECT workqueue._fire_sla_timers(10000)")")
    n=$(( $(q "SELECT count(*) FROM workqueue.item_event WHERE kind = 'sla_breach' AND actor = 'workqueue'") - before ))
    [[ $n == 10000 ]] || { echo "the timer fired $n breaches, not 10000" >&2; exit 1; }
    q "$due_sql" >/dev/null
    plainfire+=("$(ms "INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
                       SELECT i.queue, i.id, 'cron', 'sla_breach', i.step, i.step, jsonb_build_object('due_at', i.due_at)
                         FROM workqueue.item i
                        WHERE i.status IN ('open', 'in_progress') AND i.due_at <= now()
                          AND NOT EXISTS (SELECT 1 FROM workqueue.item_event e
                                           WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind = 'sla_breach')")")
    q "UPDATE workqueue.item SET sla_level = 3, sla_next_at = NULL WHERE queue = 'big' AND sla_next_at <= now()" >/dev/null
done
f_ms=$(printf '%s\n' "${fire[@]}" | median)
pf_ms=$(printf '%s\n' "${plainfire[@]}" | median)
log ""
log "3. 10,000 breaches due at once (each round checked: 10,000 sla_breach events)"
log "$(printf '   %-34s %9s ms  %9.0f breaches/s\n' "_fire_sla_timers" "$f_ms" "$(calc "10000 / $f_ms * 1000")")"
log "$(printf '   %-34s %9s ms  %9.0f breaches/s\n' "pg_cron INSERT of breach events" "$pf_ms" "$(calc "10000 / $pf_ms * 1000")")"
log "$(printf '   ratio %.2fx (the timer also reschedules each item; the announce worker announces its events)\n' "$(calc "$pf_ms / $f_ms")")"
save_results
