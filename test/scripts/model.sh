#!/usr/bin/env bash
# test/scripts/model.sh — the model-based concurrency test (issue 12).
#
# A random mix of every API call from 11 clients (8 agents acting for
# people, 2 plain roles, 1 administrator; test/model/driver.py) for
# MODEL_SECONDS (default 45) on two queues (test/model/setup.sql): one with a
# role-checked workflow, an SLA policy of seconds and an on_enter fetch, fed
# by a source synced from a sample API whose records and open set keep
# changing; one with leases of 300 ms, so that leases run out all the time
# and the sweep and other claims take items over.  Every MODEL_KILL_EVERY
# seconds (default 2) a random client backend is terminated (the client
# reconnects; the call in flight has an unknown outcome), and every
# MODEL_WORKER_KILL_EVERY seconds (default 5) the fetch or the sync worker.
# Each client pauses MODEL_PAUSE_MS (default 5) between calls.
#
# Then the invariants, replayed from the audit trail (item_event, fetch,
# sync_run) against the calls the clients saw (model.call): no double
# holder, fencing, the event chain, all-or-nothing batches, no lost update,
# one outcome per fetch, sync counters, no deadlock or serialization failure
# surfaced to a client -- each a check of its own that prints the offending
# rows.  First, that every kind of call really happened often enough.
#
# Runs in the workers' database; names are suffixed per run, so it can run
# again.  MODEL_SEED repeats a run's random choices (not its timing).
source "$(dirname "$0")/../lib.sh"
export PGDATABASE=${PGDATABASE:-postgres}
dir=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${MODEL_SECONDS:-45}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-model.XXXXXX")
port_file=$tmp/port
api_pid=""
trap 'kill $api_pid 2>/dev/null; rm -rf "$tmp"' EXIT
t_start=$(date +%s)

# a Python 3 with psycopg2 (Debian: python3-psycopg2, which test/run.sh installs)
py=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import psycopg2' 2>/dev/null; then py=$p; break; fi
done
if [[ -z $py ]]; then
    echo "not ok 1 - python3 with psycopg2 (apt-get install python3-psycopg2)"
    echo "0 passed, 1 failed"
    exit 1
fi

# none DESCRIPTION SQL: SQL lists violations, one a row; passes when it
# lists none, else shows the first ten
none() {
    local out t0=$SECONDS
    out=$(q "$2" 2>&1)
    (( SECONDS - t0 > 2 )) && echo "# (took $((SECONDS - t0)) s)"
    if [[ -z $out ]]; then
        ok 0 "$1"
    else
        ok 1 "$1"
        head -10 <<<"$out" | sed 's/^/#   /'
        echo "#   ($(wc -l <<<"$out") in all)"
    fi
}

cases=200
python3 "$dir/test/sample_api.py" --port 0 --cases $cases --port-file "$port_file" >/dev/null &
api_pid=$!
wait_until -i 0.05 10 "the sample API to write its port to $port_file" test -s "$port_file"
WQ_API="http://127.0.0.1:$(cat "$port_file")"

q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
wait_workers
ok $? "both workers serve database $PGDATABASE"

########################################################################
# the world
r=$(q "SELECT count(*) + 1 FROM workqueue.queue WHERE name LIKE 'm\_q1\_%'")
Q1=m_q1_$r Q2=m_q2_$r SRC=m_src_$r FSRC=m_fsrc_$r
psql -XAtq -v ON_ERROR_STOP=1 -v api="$WQ_API" -v r="$r" -f "$dir/test/model/setup.sql" >"$tmp/setup.out" 2>&1
ok $? "set-up: queues $Q1 (role-checked workflow, SLA, on_enter fetch) and $Q2 (300 ms leases), sources $SRC, $FSRC"
[[ $T_FAILED == 0 ]] || { sed 's/^/# /' "$tmp/setup.out"; finish; exit 1; }
run=$(q "SELECT workqueue.sync('$SRC')")
is "$(wait_run "$run" 60)" "completed|" "the first sync of $cases cases"
q "SELECT count(workqueue.add('$Q2', jsonb_build_object('n', g), 1 + g % 5)) FROM generate_series(1, 80) g;
   SELECT count(workqueue.add('$Q1', jsonb_build_object('n', g), 1 + g % 5)) FROM generate_series(1, 40) g;
   SELECT workqueue.set_scope(ARRAY(SELECT id FROM workqueue.item WHERE queue = '$Q1' ORDER BY id LIMIT 20), '{mx}')" >/dev/null
# transient upstream failures for the fetches and the runs' details
# and slow ones, so that a fetch worker's turn holds several outcomes
control '{"fail_every": 11, "fail_status": 503, "slow_ms": 15, "fault_paths": ["/cases/details"]}'

########################################################################
# the clients
t_run=$(date +%s)
echo "# $seconds s of clients"
$py "$dir/test/model/driver.py" --seconds "$seconds" --api "$WQ_API" --run "$r" --cases $cases \
    --pause-ms "${MODEL_PAUSE_MS:-5}" --kill-every "${MODEL_KILL_EVERY:-2}" --worker-kill-every "${MODEL_WORKER_KILL_EVERY:-5}" \
    ${MODEL_SEED:+--seed "$MODEL_SEED"} >"$tmp/driver.out" 2>&1
rc=$?
cat "$tmp/driver.out"
ok $rc "the driver ran to the end and recorded every call"
t_drain=$(date +%s)
control '{"reset": true}'
wait_workers 20
wait_until 90 "the sync runs of $SRC and the fetches of $Q1 to finish" \
    quiet q_is "SELECT (SELECT count(*) FROM workqueue.sync_run WHERE source = '$SRC' AND status IN ('queued', 'running'))
                    + (SELECT count(*) FROM workqueue.fetch WHERE queue = '$Q1' AND status IN ('queued', 'processing'))" 0
ok $? "the workers came back and finished every run and fetch"
t_books=$(date +%s)

# the books, as of one instant (the SLA timers and the sweep go on writing)
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN ISOLATION LEVEL REPEATABLE READ;
CREATE TABLE model.ev AS SELECT * FROM workqueue.item_event WHERE queue IN ('$Q1', '$Q2');
CREATE TABLE model.it AS SELECT * FROM workqueue.item WHERE queue IN ('$Q1', '$Q2');
CREATE TABLE model.fetch AS SELECT * FROM workqueue.fetch WHERE queue = '$Q1';
CREATE TABLE model.run AS SELECT * FROM workqueue.sync_run WHERE source = '$SRC';
COMMIT;
CREATE INDEX ON model.ev (item_id, id);
CREATE INDEX ON model.ev (kind, item_id);
CREATE INDEX ON model.ev ((payload->'payload'->>'tcall'));
CREATE INDEX ON model.it (id);
CREATE INDEX ON model.call (op, tag);
ANALYZE model.ev, model.it, model.fetch, model.run, model.call;
SQL
q "SELECT '#   ' || rpad(op, 20) || lpad(count(*) FILTER (WHERE outcome = 'ok')::text, 6) || ' ok'
        || lpad(count(*) FILTER (WHERE outcome = 'error')::text, 6) || ' error'
        || lpad(count(*) FILTER (WHERE outcome = 'unknown')::text, 4) || ' unknown   '
        || coalesce((SELECT string_agg(s || '×' || n, ' ' ORDER BY n DESC) FROM (SELECT sqlstate s, count(*) n FROM model.call d
                       WHERE d.op = c.op AND d.outcome = 'error' GROUP BY 1) x), '')
     FROM model.call c GROUP BY op ORDER BY count(*) DESC"

########################################################################
# it did not pass by accident: every kind of call happened, and often enough
short=$(q "WITH need(what, n, got) AS (VALUES
    ('add ok', 20, (SELECT count(*) FROM model.call WHERE op = 'add' AND outcome = 'ok')),
    ('claim of 1 that got an item', 20, (SELECT count(*) FROM model.call WHERE op = 'claim' AND outcome = 'ok' AND (arg->>'n')::int = 1 AND jsonb_array_length(result) = 1)),
    ('claim of n > 1 that got several', 5, (SELECT count(*) FROM model.call WHERE op = 'claim' AND outcome = 'ok' AND jsonb_array_length(result) > 1)),
    ('transition ok', 20, (SELECT count(*) FROM model.call WHERE op = 'transition' AND outcome = 'ok')),
    ('transition refused', 20, (SELECT count(*) FROM model.call WHERE op = 'transition' AND outcome = 'error')),
    ('transition_many ok', 5, (SELECT count(*) FROM model.call WHERE op = 'transition_many' AND outcome = 'ok')),
    ('transition_many refused as a whole', 5, (SELECT count(*) FROM model.call WHERE op = 'transition_many' AND outcome = 'error')),
    ('release ok', 5, (SELECT count(*) FROM model.call WHERE op = 'release' AND outcome = 'ok')),
    ('extend_lease ok', 3, (SELECT count(*) FROM model.call WHERE op = 'extend_lease' AND outcome = 'ok')),
    ('comment ok', 20, (SELECT count(*) FROM model.call WHERE op = 'comment' AND outcome = 'ok')),
    ('update_fields ok', 20, (SELECT count(*) FROM model.call WHERE op = 'update_fields' AND outcome = 'ok')),
    ('enqueue_fetch ok', 10, (SELECT count(*) FROM model.call WHERE op = 'enqueue_fetch' AND outcome = 'ok')),
    ('upsert_items ok', 5, (SELECT count(*) FROM model.call WHERE op = 'upsert_items' AND outcome = 'ok')),
    ('upsert_items refused', 1, (SELECT count(*) FROM model.call WHERE op = 'upsert_items' AND outcome = 'error')),
    ('sync requests', 3, (SELECT count(*) FROM model.call WHERE op = 'sync' AND outcome = 'ok')),
    ('set_scope ok', 5, (SELECT count(*) FROM model.call WHERE op = 'set_scope' AND outcome = 'ok')),
    ('cancel_fetch calls', 1, (SELECT count(*) FROM model.call WHERE op = 'cancel_fetch')),
    ('retry_fetches ok', 1, (SELECT count(*) FROM model.call WHERE op = 'retry_fetches' AND outcome = 'ok')),
    ('reads ok', 10, (SELECT count(*) FROM model.call WHERE op IN ('list_items', 'get_items', 'history', 'allowed_transitions', 'sla_status') AND outcome = 'ok')),
    ('role refusals (42501)', 5, (SELECT count(*) FROM model.call WHERE sqlstate = '42501')),
    ('refusals of an expired holder', 3, (SELECT count(*) FROM model.call WHERE sqlstate = '55000' AND message ~ 'lease of .* has expired')),
    ('refusals while someone else holds (55P03)', 3, (SELECT count(*) FROM model.call WHERE sqlstate = '55P03')),
    ('client backends terminated', 5, (SELECT count(*) FROM model.call WHERE op = 'kill_client' AND outcome = 'ok')),
    ('fetch workers terminated', 2, (SELECT count(*) FROM model.call WHERE op = 'kill_fetch' AND outcome = 'ok')),
    ('sync workers terminated', 2, (SELECT count(*) FROM model.call WHERE op = 'kill_sync' AND outcome = 'ok')),
    ('calls with an unknown outcome', 1, (SELECT count(*) FROM model.call WHERE outcome = 'unknown')),
    ('leases run out (lease_expired)', 5, (SELECT count(*) FROM model.ev WHERE kind = 'lease_expired')),
    ('on_enter fetches', 5, (SELECT count(*) FROM model.fetch f WHERE true AND NOT EXISTS (
         SELECT FROM model.call c WHERE c.op = 'enqueue_fetch' AND c.outcome = 'ok' AND (c.result->0->>0)::bigint = f.id))),
    ('fetches completed', 10, (SELECT count(*) FROM model.fetch WHERE true AND status = 'completed')),
    ('fetches failed', 1, (SELECT count(*) FROM model.fetch WHERE true AND status = 'failed')),
    ('sync runs completed', 2, (SELECT count(*) FROM model.run WHERE true AND status = 'completed' AND id > $run)),
    ('upstream closes', 1, (SELECT count(*) FROM model.ev WHERE kind = 'upstream_closed')),
    ('SLA warnings', 1, (SELECT count(*) FROM model.ev WHERE kind = 'sla_warning')))
  SELECT string_agg(format('%s: %s (want >= %s)', what, got, n), '; ') FROM need WHERE got < n")
ok $([[ -z $short ]]; echo $?) "every kind of call, refusal, kill and worker action happened often enough"
[[ -n $short ]] && echo "#   too few: $short"

########################################################################
# no deadlock, serialization failure or hang surfaced; no internal error
none "no client saw a deadlock (40P01) or serialization failure (40001), or waited until statement_timeout (57014)" \
    "SELECT format('%s %s on %s: %s %s', tag, op, items, sqlstate, message) FROM model.call
      WHERE sqlstate IN ('40P01', '40001', '57014')"
none "no call failed with an internal error (XX) or a constraint violation (23)" \
    "SELECT format('%s %s on %s: %s %s; overlapping: %s', c.tag, c.op, c.items, c.sqlstate, c.message,
                   (SELECT string_agg(format('%s %s %s', o.tag, o.op, o.outcome), ', ') FROM model.call o
                     WHERE o.t0 < c.t1 AND o.t1 > c.t0 AND o.tag <> c.tag AND o.outcome = 'ok'
                       AND (o.items && c.items OR o.op = 'retry_fetches'
                            OR (c.op = 'retry_fetches' AND o.op IN ('enqueue_fetch', 'transition', 'transition_many')))))
       FROM model.call c WHERE left(c.sqlstate, 2) IN ('XX', '23')
        AND NOT (c.op = 'upsert_items' AND c.sqlstate = '23505' AND c.message ~ '^(ERROR:  )?external id \"[^\"]*\" already exists'
                 AND EXISTS (SELECT FROM model.it i JOIN model.ev e ON e.item_id = i.id AND e.kind = 'field_update'
                              WHERE i.queue = c.queue AND i.external_id = substring(c.message from 'external id \"([^\"]*)\"')
                                AND jsonb_array_length(e.payload->'new'->'scope') > 0 AND e.at < c.t1))"
# (the one 23505 that is right, let through above: upsert_items of the
# external id of an item an administrator scoped out of the caller's sight,
# refused as a duplicate that names no item -- doc/security.md)
none "no fetch or sync run failed with a deadlock or serialization failure" \
    "SELECT format('fetch %s: %s', id, error) FROM model.fetch WHERE true AND error ~* 'deadlock|serializ'
     UNION ALL SELECT format('run %s: %s', id, error) FROM model.run WHERE true AND error ~* 'deadlock|serializ'"

########################################################################
# no double holder
claims="SELECT item_id, id, kind, at, actor, payload, lag(kind) OVER w AS prev, lag(id) OVER w AS prev_id
          FROM model.ev WHERE kind IN ('created', 'claimed', 'released', 'lease_expired', 'transition', 'upstream_closed')
        WINDOW w AS (PARTITION BY item_id ORDER BY id)"
none "no double holder: no item claimed again before its claim ended (released, expired, moved or closed)" \
    "SELECT format('item %s: event %s claimed by %s after claim %s', item_id, id, actor, prev_id)
       FROM ($claims) h WHERE kind = 'claimed' AND prev = 'claimed'"
none "every release and lease expiry ends a live claim, and no lease is taken back before it ran out" \
    "SELECT format('item %s: event %s %s after %s', item_id, id, kind, coalesce(prev, 'nothing'))
       FROM ($claims) h WHERE kind IN ('released', 'lease_expired') AND prev IS DISTINCT FROM 'claimed'
     UNION ALL
     SELECT format('item %s: event %s lease_expired at %s, lease until %s', item_id, id, at, payload->>'lease_until')
       FROM model.ev WHERE kind = 'lease_expired' AND at < (payload->>'lease_until')::timestamptz"
none "each item's claimed_by and status agree with its last claim event" \
    "SELECT format('item %s: %s/%s, last claim event %s', i.id, i.status, i.claimed_by, l.kind)
       FROM model.it i CROSS JOIN LATERAL (SELECT kind, actor FROM model.ev e WHERE e.item_id = i.id
                                            AND kind IN ('created', 'claimed', 'released', 'lease_expired', 'transition', 'upstream_closed')
                                          ORDER BY id DESC LIMIT 1) l
      WHERE (i.claimed_by IS NOT NULL) <> (l.kind = 'claimed') OR (l.kind = 'claimed' AND i.claimed_by <> l.actor)"

########################################################################
# fencing: a worker whose claim ended with lease_expired moves nothing,
# releases nothing and extends nothing before it claims the item again
# (terminal steps excepted: nobody holds an item there)
fenced="SELECT x.item_id, x.id AS xid, x.at AS xat, x.payload->>'claimed_by' AS w,
               (SELECT min(c.id) FROM model.ev c WHERE c.item_id = x.item_id AND c.kind = 'claimed'
                   AND c.actor = x.payload->>'claimed_by' AND c.id > x.id) AS reclaim
          FROM model.ev x WHERE x.kind = 'lease_expired'"
none "fencing: no transition or release by a holder whose lease expired, before it claimed the item again" \
    "SELECT format('item %s: %s (%s) by %s, event %s, %s after its lease_expired event %s',
                   e.item_id, e.kind, e.payload->>'transition', e.actor, e.id, e.at - f.xat, f.xid)
       FROM ($fenced) f JOIN model.ev e ON e.item_id = f.item_id AND e.actor = f.w AND e.id > f.xid
                                         AND (f.reclaim IS NULL OR e.id < f.reclaim)
      WHERE e.kind IN ('transition', 'released') AND e.from_step NOT IN ('resolved', 'rejected')"
none "fencing: no extend_lease by such a holder succeeded either" \
    "SELECT format('item %s: %s extend_lease by %s began %s after lease_expired event %s', f.item_id, c.tag, f.w, c.t0 - f.xat, f.xid)
       FROM ($fenced) f JOIN model.call c ON c.op = 'extend_lease' AND c.outcome = 'ok' AND c.items[1] = f.item_id
                                          AND coalesce(c.arg->>'worker', c.client) = f.w AND c.t0 > f.xat
      WHERE NOT EXISTS (SELECT FROM model.ev r WHERE r.id = f.reclaim AND r.at < c.t1)"

########################################################################
# the event chain
steps="SELECT e.item_id, e.id, e.kind, e.from_step, e.to_step, e.at,
              lag(e.to_step) OVER (PARTITION BY e.item_id ORDER BY e.id) AS before,
              lag(e.id) OVER (PARTITION BY e.item_id ORDER BY e.id) AS before_id
         FROM model.ev e WHERE e.kind IN ('created', 'transition')"
none "event chain: each transition's from_step is the to_step of the item's previous move" \
    "SELECT format('item %s: event %s %s->%s, previous move %s ended at %s', item_id, id, from_step, to_step, before_id, before)
       FROM ($steps) s WHERE kind = 'transition' AND from_step IS DISTINCT FROM before"
none "event chain: every other event names the step the item was at (the last move before it)" \
    "SELECT format('item %s: event %s %s at %s->%s, but the item was at %s since event %s',
                   e.item_id, e.id, e.kind, e.from_step, e.to_step, m.to_step, m.id)
       FROM model.ev e CROSS JOIN LATERAL (SELECT id, to_step FROM model.ev p WHERE p.item_id = e.item_id
                                           AND p.kind IN ('created', 'transition') AND p.id < e.id ORDER BY p.id DESC LIMIT 1) m
      WHERE e.kind NOT IN ('created', 'transition')
        AND (e.from_step IS DISTINCT FROM m.to_step OR e.to_step IS DISTINCT FROM m.to_step)"
none "event chain: each item's step is its last move's to_step, its status agrees with its last event" \
    "SELECT format('item %s: step %s status %s, last move %s to %s, last status event %s', i.id, i.step, i.status, m.id, m.to_step, l.kind)
       FROM model.it i
       CROSS JOIN LATERAL (SELECT id, to_step FROM model.ev p WHERE p.item_id = i.id AND p.kind IN ('created', 'transition')
                           ORDER BY p.id DESC LIMIT 1) m
       CROSS JOIN LATERAL (SELECT kind, to_step FROM model.ev p WHERE p.item_id = i.id
                              AND p.kind IN ('created', 'claimed', 'released', 'lease_expired', 'transition', 'upstream_closed', 'upstream_reopened')
                           ORDER BY p.id DESC LIMIT 1) l
      WHERE i.step IS DISTINCT FROM m.to_step
         OR i.status <> CASE l.kind WHEN 'claimed' THEN 'in_progress' WHEN 'upstream_closed' THEN 'closed'
                                    ELSE CASE WHEN l.to_step IN ('resolved', 'rejected') THEN l.to_step ELSE 'open' END END"

########################################################################
# all or nothing
none "all-or-nothing: each transition_many that succeeded moved every item of its batch; a refused one none (unknown: all or none)" \
    "SELECT format('%s %s on %s by %s: %s, %s moved (%s), returned %s', c.tag, c.arg->>'transition', c.items, c.client,
                   c.outcome, coalesce(m.n, 0), m.moved, c.result->0->>0)
       FROM model.call c
       LEFT JOIN LATERAL (SELECT count(*) AS n, array_agg(e.item_id ORDER BY e.item_id) AS moved FROM model.ev e
                           WHERE e.kind = 'transition' AND e.payload->'payload'->>'tcall' = c.tag) m ON true
      WHERE c.op = 'transition_many'
        AND NOT CASE c.outcome
                WHEN 'ok' THEN m.moved = ARRAY(SELECT DISTINCT unnest(c.items) ORDER BY 1) AND (c.result->0->>0)::int = m.n
                WHEN 'error' THEN coalesce(m.n, 0) = 0
                ELSE coalesce(m.n, 0) = 0 OR m.moved = ARRAY(SELECT DISTINCT unnest(c.items) ORDER BY 1) END"

########################################################################
# no lost update: the events of each kind are exactly the calls that
# succeeded (plus, at most, those whose outcome is unknown)
none "no lost update: each transition that succeeded has its event (one), a refused one none" \
    "SELECT format('%s transition %s of item %s by %s: %s, %s events', c.tag, c.arg->>'transition', c.items[1], c.client, c.outcome, count(e.id))
       FROM model.call c LEFT JOIN model.ev e ON e.kind = 'transition' AND e.payload->'payload'->>'tcall' = c.tag AND e.item_id = c.items[1]
      WHERE c.op = 'transition'
      GROUP BY c.tag, c.arg, c.items, c.client, c.outcome
     HAVING count(e.id) <> CASE c.outcome WHEN 'ok' THEN 1 WHEN 'error' THEN 0 ELSE least(count(e.id), 1) END
     UNION ALL
     SELECT format('event %s on item %s: transition with tag %s that no call made', e.id, e.item_id, e.payload->'payload'->>'tcall')
       FROM model.ev e WHERE e.kind = 'transition' AND e.payload->'payload' ? 'tcall'
        AND NOT EXISTS (SELECT FROM model.call c WHERE c.tag = e.payload->'payload'->>'tcall' AND c.op LIKE 'transition%')"
none "no lost update: each comment that succeeded is one comment event (the id it returned), a refused one none" \
    "SELECT format('%s comment on item %s: %s, returned %s, events %s', c.tag, c.items[1], c.outcome, c.result->0->>0, array_agg(e.id))
       FROM model.call c LEFT JOIN model.ev e ON e.kind = 'comment' AND e.payload->>'body' = 'cm ' || c.tag
      WHERE c.op = 'comment'
      GROUP BY c.tag, c.items, c.outcome, c.result
     HAVING NOT CASE c.outcome WHEN 'ok' THEN count(e.id) = 1 AND min(e.id) = (c.result->0->>0)::bigint AND min(e.item_id) = c.items[1]
                               WHEN 'error' THEN count(e.id) = 0 ELSE count(e.id) <= 1 END"
none "no lost update: each update_fields that succeeded is one field_update event, a refused one none" \
    "SELECT format('%s update_fields %s=%s on item %s: %s, %s events', c.tag, c.arg->>'key', c.arg->>'value', c.items[1], c.outcome, count(e.id))
       FROM model.call c LEFT JOIN model.ev e ON e.kind = 'field_update' AND e.item_id = c.items[1]
                                              AND e.payload->'new'->(c.arg->>'key') = c.arg->'value'
      WHERE c.op = 'update_fields'
      GROUP BY c.tag, c.arg, c.items, c.outcome
     HAVING count(e.id) <> CASE c.outcome WHEN 'ok' THEN 1 WHEN 'error' THEN 0 ELSE least(count(e.id), 1) END"
none "no lost update: each item's notes hold the newest value its field_update events recorded for each key" \
    "SELECT format('item %s: notes.%s = %s, newest event %s says %s', i.id, k.key, i.notes->k.key, k.id, k.val)
       FROM model.it i CROSS JOIN LATERAL (
            SELECT DISTINCT ON (n.key) n.key, n.value AS val, e.id FROM model.ev e, jsonb_each(e.payload->'new') n
             WHERE e.item_id = i.id AND e.kind = 'field_update' AND n.key ~ '^u[0-9]+$' ORDER BY n.key, e.id DESC) k
      WHERE i.notes->k.key IS DISTINCT FROM k.val"
none "no lost update: every item a claim returned has its claimed event for that worker, written during the call" \
    "SELECT format('%s claim by %s returned item %s: no claimed event in [%s, %s]', c.tag, w, x.id, c.t0, c.t1)
       FROM model.call c CROSS JOIN LATERAL (SELECT (r->>0)::bigint AS id FROM jsonb_array_elements(c.result) r) x
       CROSS JOIN LATERAL (SELECT coalesce(c.arg->>'worker', c.client) AS w) ww
      WHERE c.op = 'claim' AND c.outcome = 'ok'
        AND NOT EXISTS (SELECT FROM model.ev e WHERE e.kind = 'claimed' AND e.item_id = x.id AND e.actor = w
                          AND e.at BETWEEN c.t0 - interval '5 ms' AND c.t1 + interval '5 ms')"
none "no lost update: per worker, claimed events = items its claims returned (+ at most n per call of unknown outcome)" \
    "WITH calls AS (SELECT coalesce(arg->>'worker', client) AS w,
                           sum(jsonb_array_length(result)) FILTER (WHERE outcome = 'ok') AS got,
                           coalesce(sum((arg->>'n')::int) FILTER (WHERE outcome = 'unknown'), 0) AS slack
                      FROM model.call WHERE op = 'claim' GROUP BY 1),
          evs AS (SELECT actor AS w, count(*) AS n FROM model.ev WHERE kind = 'claimed' GROUP BY 1)
     SELECT format('%s: %s claimed events, claims returned %s (+%s unknown)', coalesce(c.w, v.w), coalesce(v.n, 0), coalesce(c.got, 0), c.slack)
       FROM calls c FULL JOIN evs v ON v.w = c.w
      WHERE coalesce(v.n, 0) NOT BETWEEN coalesce(c.got, 0) AND coalesce(c.got, 0) + coalesce(c.slack, 0)"
none "no lost update: per worker and item, released events = releases that succeeded (+ unknown ones)" \
    "WITH calls AS (SELECT coalesce(arg->>'worker', client) AS w, items[1] AS item,
                           count(*) FILTER (WHERE outcome = 'ok') AS ok, count(*) FILTER (WHERE outcome = 'unknown') AS slack
                      FROM model.call WHERE op = 'release' GROUP BY 1, 2),
          evs AS (SELECT actor AS w, item_id AS item, count(*) AS n FROM model.ev WHERE kind = 'released' GROUP BY 1, 2)
     SELECT format('%s on item %s: %s released events, %s releases succeeded (+%s unknown)', coalesce(c.w, v.w),
                   coalesce(c.item, v.item), coalesce(v.n, 0), coalesce(c.ok, 0), coalesce(c.slack, 0))
       FROM calls c FULL JOIN evs v ON v.w = c.w AND v.item = c.item
      WHERE coalesce(v.n, 0) NOT BETWEEN coalesce(c.ok, 0) AND coalesce(c.ok, 0) + coalesce(c.slack, 0)"
none "no lost update: each add that succeeded made its item with a created event; a refused one made none" \
    "SELECT format('%s add to %s: %s, returned %s, items %s', c.tag, c.queue, c.outcome, c.result->0->>0, array_agg(i.id))
       FROM model.call c LEFT JOIN model.it i ON i.data->>'tag' = c.tag AND i.data->>'by' = c.client
      WHERE c.op = 'add'
      GROUP BY c.tag, c.queue, c.outcome, c.result
     HAVING NOT CASE c.outcome WHEN 'ok' THEN count(i.id) = 1 AND min(i.id) = (c.result->0->>0)::bigint
                                          AND EXISTS (SELECT FROM model.ev e WHERE e.item_id = min(i.id) AND e.kind = 'created')
                               WHEN 'error' THEN count(i.id) = 0 ELSE count(i.id) <= 1 END"
none "no lost update: per source, upsert_items' inserted and updated counts = its created and synced events; a refused call wrote nothing" \
    "WITH calls AS (SELECT coalesce(arg->>'source', client) AS w,
                           coalesce(sum((result->0->>0)::int) FILTER (WHERE outcome = 'ok'), 0) AS ins,
                           coalesce(sum((result->0->>1)::int) FILTER (WHERE outcome = 'ok'), 0) AS upd,
                           coalesce(sum((arg->>'n')::int) FILTER (WHERE outcome = 'unknown'), 0) AS slack
                      FROM model.call WHERE op = 'upsert_items' GROUP BY 1),
          evs AS (SELECT actor AS w, count(*) FILTER (WHERE kind = 'created') AS ins, count(*) FILTER (WHERE kind = 'synced') AS upd
                    FROM model.ev e WHERE queue = '$Q1' AND EXISTS (SELECT FROM model.it i WHERE i.id = e.item_id AND i.external_id LIKE 'U-%')
                   GROUP BY 1)
     SELECT format('%s: %s created and %s synced events, calls returned %s inserted and %s updated (+%s unknown)',
                   coalesce(c.w, v.w), coalesce(v.ins, 0), coalesce(v.upd, 0), c.ins, c.upd, c.slack)
       FROM calls c FULL JOIN evs v ON v.w = c.w
      WHERE coalesce(v.ins, 0) + coalesce(v.upd, 0) NOT BETWEEN coalesce(c.ins + c.upd, 0) AND coalesce(c.ins + c.upd + c.slack, 0)
         OR coalesce(v.ins, 0) < coalesce(c.ins, 0) OR coalesce(v.upd, 0) < coalesce(c.upd, 0)
     UNION ALL
     SELECT format('item %s %s exists: a refused batch wrote it', id, external_id) FROM model.it WHERE external_id LIKE 'U-%-bad'"
none "no lost update: set_scope's counts = its field_update events; every fetch and run a call returned exists" \
    "SELECT format('set_scope: %s scope events, calls returned %s (+%s unknown)', n, ok, slack)
       FROM (SELECT (SELECT count(*) FROM model.ev WHERE kind = 'field_update' AND payload->'new' ? 'scope' AND at > (SELECT min(t0) FROM model.call)) AS n,
                    coalesce(sum((result->0->>0)::int) FILTER (WHERE outcome = 'ok'), 0) AS ok,
                    coalesce(sum(cardinality(items)) FILTER (WHERE outcome = 'unknown'), 0) AS slack
               FROM model.call WHERE op = 'set_scope') s
      WHERE n NOT BETWEEN ok AND ok + slack
     UNION ALL
     SELECT format('%s enqueue_fetch of item %s returned fetch %s, which is not there', c.tag, c.items[1], c.result->0->>0)
       FROM model.call c WHERE c.op = 'enqueue_fetch' AND c.outcome = 'ok'
        AND NOT EXISTS (SELECT FROM model.fetch f WHERE f.id = (c.result->0->>0)::bigint AND f.item_id = c.items[1])
     UNION ALL
     SELECT format('%s sync returned run %s, which is not there', c.tag, c.result->0->>0)
       FROM model.call c WHERE c.op = 'sync' AND c.outcome = 'ok'
        AND NOT EXISTS (SELECT FROM model.run r WHERE r.id = (c.result->0->>0)::bigint)"

########################################################################
# one outcome per fetch
outcomes="SELECT f.id AS fetch, f.status, e.id, e.kind, e.at,
                 lead(e.id) OVER w AS next_id, lead(e.at) OVER w AS next_at
            FROM model.fetch f JOIN model.ev e ON e.item_id = f.item_id AND e.kind IN ('fetch_completed', 'fetch_failed')
                                                  AND (e.payload->>'fetch')::bigint = f.id
           WHERE f.queue = '$Q1' WINDOW w AS (PARTITION BY f.id ORDER BY e.id)"
none "one outcome per fetch: none left queued or processing; each ended completed or failed with that outcome's event last" \
    "SELECT format('fetch %s: %s, attempts %s, error %s, last outcome event %s', f.id, f.status, f.attempts, f.error, l.kind)
       FROM model.fetch f LEFT JOIN LATERAL (SELECT kind FROM model.ev e WHERE e.item_id = f.item_id
                                                   AND e.kind IN ('fetch_completed', 'fetch_failed') AND (e.payload->>'fetch')::bigint = f.id
                                                 ORDER BY e.id DESC LIMIT 1) l ON true
      WHERE f.queue = '$Q1'
        AND NOT CASE f.status WHEN 'completed' THEN l.kind = 'fetch_completed' WHEN 'failed' THEN l.kind = 'fetch_failed'
                              WHEN 'cancelled' THEN l.kind IS DISTINCT FROM 'fetch_completed' ELSE false END"
none "one outcome per fetch: never two outcomes for one attempt (a second one only after retry_fetches re-queued a failed fetch)" \
    "SELECT format('fetch %s: %s (event %s) then event %s', o.fetch, o.kind, o.id, o.next_id)
       FROM ($outcomes) o
      WHERE o.next_id IS NOT NULL
        AND (o.kind = 'fetch_completed'
             OR NOT EXISTS (SELECT FROM model.call c WHERE c.op = 'retry_fetches' AND c.outcome <> 'error'
                              AND (c.result->0->>0)::int IS DISTINCT FROM 0 AND c.t1 > o.at AND c.t0 < o.next_at))"

########################################################################
# sync counters: each run's counters = the events its batches wrote (the
# sync worker writes as the source; a run's events fall between its start
# and the next run's)
none "sync counters: each run's inserted, updated, closed and reopened = its created, synced, upstream_closed and upstream_reopened events" \
    "WITH runs AS (SELECT r.*, lead(started_at) OVER (ORDER BY started_at) AS next_start
                     FROM model.run r WHERE started_at IS NOT NULL)
     SELECT format('run %s (%s, %s): counters %s/%s/%s/%s, events %s/%s/%s/%s', r.id, r.status, CASE WHEN r.full THEN 'full' ELSE 'incremental' END,
                   r.inserted, r.updated, r.closed, r.reopened, e.c, e.s, e.x, e.o)
       FROM runs r CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE kind = 'created') AS c, count(*) FILTER (WHERE kind = 'synced') AS s,
                   count(*) FILTER (WHERE kind = 'upstream_closed') AS x, count(*) FILTER (WHERE kind = 'upstream_reopened') AS o
              FROM model.ev e WHERE e.actor = '$SRC' AND e.at >= r.started_at AND (r.next_start IS NULL OR e.at < r.next_start)) e
      WHERE (r.inserted, r.updated, r.closed, r.reopened) IS DISTINCT FROM (e.c::int, e.s::int, e.x::int, e.o::int)"

echo "# runs: $(q "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM model.run WHERE true GROUP BY 1) x");" \
     "fetches: $(q "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM model.fetch WHERE true GROUP BY 1) x");" \
     "events: $(q "SELECT string_agg(kind || '=' || n, ' ' ORDER BY n DESC) FROM (SELECT kind, count(*) n FROM model.ev GROUP BY 1) x")"
# quiet: the items left at a working step would go on firing SLA timers and
# lease expiries into the tests that follow (sla.sh times its own timers);
# items waiting have their clocks paused
q "SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE queue = '$Q1' AND step IN ('triage', 'review')
                                           AND status IN ('open', 'in_progress') ORDER BY id), 'reject');
   SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE queue = '$Q2' AND step = 'review'
                                           AND status IN ('open', 'in_progress') ORDER BY id), 'reject')" >/dev/null ||
    echo "# (could not reject the items left at a working step)"
echo "# set-up $((t_run - t_start)) s, clients $((t_drain - t_run)) s, draining $((t_books - t_drain)) s, checks $(($(date +%s) - t_books)) s"
finish
