#!/usr/bin/env bash
# The fetch worker's write path under concurrency (issue 12), in the
# database the workers serve, against a sample API of its own.
#
# Round 1: 300 items move between two steps, each of which queues a fetch
# when an item enters it (on_enter), while 4 pgbench clients move them --
# transition_many over a sorted slice, several transition() calls in id
# order in one statement, two transition() calls in id order in one
# transaction -- and the worker records the fetches (every 4th request a
# transient 500).  No client may see a deadlock; no fetch may fail, let
# alone with a deadlock or serialization message; every fetch completes
# with exactly one fetch_completed event; and every event's from_step is
# the step the item had then: the events of each item form a chain (each
# from_step is the previous event's to_step).
#
# Round 2: a client that locks out of order makes the worker a deadlock's
# victim; the worker rolls back and records the same turn again, and the
# client never sees an error.
#
# Round 4 (after round 3): retry_fetches() and enqueue_fetch() of the same
# item at once -- the retry holds its transaction open while enqueue_fetch()
# asks for the item's fetch: enqueue_fetch() waits and returns the fetch the
# retry queued again (one active fetch per item), never a unique violation
# (found by test/scripts/model.sh).
#
# Round 3: the worker's own statements (read from src/fetch/fetch.c) and
# _claim_fetches on a queue that grew from 20 to 10,020 items after the last
# ANALYZE, planned as the worker plans them, in a database of their own:
# whether planned while the queue was small (and kept) or now, each finds
# its rows through an index on id, one probe per row, and reads nothing
# else of the queue; a claim reads only the due fetches it takes.  Nothing
# sorts more than the turn's 16 rows.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../crashlib.sh"    # server_log, log_size, log_since
dir=$(cd "$(dirname "$0")/../.." && pwd)
WQ_API=""
port_file=$(mktemp)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-fetchcc.XXXXXX")
plandb=wq_fetch_plan
python3 "$dir/test/sample_api.py" --port 0 --cases 300 --port-file "$port_file" >/dev/null &
api_pid=$!
trap 'kill $api_pid 2>/dev/null; rm -rf "$tmp" "$port_file"; dropdb --if-exists $plandb >/dev/null 2>&1' EXIT
wait_until -i 0.05 10 "the sample API to write its port to $port_file" test -s "$port_file"
WQ_API="http://127.0.0.1:$(cat "$port_file")"

q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
wait_until 10 "a fetch worker of this database" worker_running fetch

########################################################################
# Round 1: fetches recorded while clients move the same items
clients=4
seconds=${FETCH_CC_SECONDS:-8}
q "SELECT workqueue.define_workflow('fcw', '{\"steps\": [{\"name\": \"a\", \"start\": true}, {\"name\": \"b\"}],
     \"transitions\": [{\"name\": \"to_b\", \"from\": \"a\", \"to\": \"b\"}, {\"name\": \"to_a\", \"from\": \"b\", \"to\": \"a\"}],
     \"on_enter\": {\"a\": {\"fetch\": \"fcs\"}, \"b\": {\"fetch\": \"fcs\"}}}');
   SELECT workqueue.create_queue('fcq', 'fcw');
   SELECT workqueue.create_source('fcs', 'fcq', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
          '{\"retries\": 20, \"mapping\": {\"priority\": \"\$.severity\", \"data.title\": \"\$.name\"}}');
   SELECT count(workqueue.add('fcq', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 300) g" >/dev/null
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'fcq'")" 300 "300 items in a queue whose two steps both fetch on entry"
control '{"reset": true, "fail_every": 4, "fail_status": 500}'

# Each client moves only its own items (id % clients = client_id), so the
# clients never race each other for an item's step -- only the worker.
own="queue = 'fcq' AND id % $clients = :client_id"
cat >"$tmp/many.sql" <<SQL
\set off random(0, 40)
\set dir random(0, 1)
SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE $own
                                         AND step = CASE :dir WHEN 0 THEN 'a' ELSE 'b' END
                                       ORDER BY id OFFSET :off LIMIT 25),
                                 CASE :dir WHEN 0 THEN 'to_b' ELSE 'to_a' END)
 WHERE EXISTS (SELECT FROM workqueue.item WHERE $own AND step = CASE :dir WHEN 0 THEN 'a' ELSE 'b' END);
SQL
cat >"$tmp/single.sql" <<SQL
\set off random(0, 60)
SELECT count(workqueue.transition(s.id, CASE s.step WHEN 'a' THEN 'to_b' ELSE 'to_a' END))
  FROM (SELECT id, step FROM workqueue.item WHERE $own ORDER BY id OFFSET :off LIMIT 8) s;
SQL
cat >"$tmp/pair.sql" <<SQL
\set off random(0, 70)
BEGIN;
SELECT workqueue.transition(s.id, CASE s.step WHEN 'a' THEN 'to_b' ELSE 'to_a' END)
  FROM (SELECT id, step FROM workqueue.item WHERE $own ORDER BY id OFFSET :off LIMIT 1) s;
SELECT workqueue.transition(s.id, CASE s.step WHEN 'a' THEN 'to_b' ELSE 'to_a' END)
  FROM (SELECT id, step FROM workqueue.item WHERE $own ORDER BY id OFFSET :off + 1 LIMIT 1) s;
END;
SQL
# the first moves queue a fetch for every item; the clients keep them coming
q "SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE queue = 'fcq' ORDER BY id), 'to_b')" >/dev/null
pgbench -n -c $clients -j 2 -T "$seconds" -f "$tmp/many.sql@2" -f "$tmp/single.sql@2" -f "$tmp/pair.sql@1" \
    >"$tmp/pgbench.out" 2>&1
rc=$?
sed 's/^/# /' "$tmp/pgbench.out" | grep -vE '^# (pgbench|transaction type|scaling|query mode|number of|maximum|latency|initial|tps|SQL script|statement latencies| - )' | head -20
ok $([[ $(grep -ci 'deadlock' "$tmp/pgbench.out") == 0 ]]; echo $?) "no client saw a deadlock"
ok $([[ $rc == 0 ]] && ! grep -qiE 'aborted|error' "$tmp/pgbench.out"; echo $?) "every client finished without error (pgbench exit status $rc)"
moves=$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'fcq' AND kind = 'transition'")
control '{"fail_every": 0}'
wait_fetches fcq 45

fetches=$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fcq'")
ok $([[ $fetches -ge 600 && $moves -ge 1000 ]]; echo $?) "the clients moved items $moves times while the worker took $fetches fetches"
ok $([[ $(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fcq' AND attempts > 1") -gt 0 ]]; echo $?) \
   "some fetches failed transiently before completing (turns with failures and completions)"
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fcq'
          AND error ~* 'deadlock|serializ|could not obtain lock'")|$(q "SELECT count(*) FROM workqueue.item_event
          WHERE queue = 'fcq' AND kind = 'fetch_failed'")" "0|0" "no fetch was failed (none with a deadlock or serialization message)"
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'fcq'")" \
   "$fetches/$fetches" "every fetch completed"
is "$(q "SELECT count(*) FROM workqueue.fetch f
          WHERE f.queue = 'fcq' AND (SELECT count(*) FROM workqueue.item_event e
                                     WHERE e.queue = f.queue AND e.item_id = f.item_id AND e.kind = 'fetch_completed'
                                       AND (e.payload->>'fetch')::bigint = f.id) <> 1")" 0 \
   "every fetch has exactly one fetch_completed event"
is "$(q "SELECT count(*) FROM workqueue.item_event e
          WHERE e.queue = 'fcq' AND e.kind = 'fetch_completed'
            AND NOT EXISTS (SELECT FROM workqueue.fetch f WHERE f.queue = e.queue AND f.id = (e.payload->>'fetch')::bigint
                                                            AND f.item_id = e.item_id)")" 0 \
   "... and none names another fetch"
chain="SELECT e.item_id, e.id, e.kind, e.from_step, e.to_step,
              lag(e.to_step) OVER (PARTITION BY e.item_id ORDER BY e.id) AS before,
              row_number() OVER (PARTITION BY e.item_id ORDER BY e.id) AS n
         FROM workqueue.item_event e WHERE e.queue = 'fcq'"
is "$(q "SELECT count(*) FROM ($chain) c WHERE c.n > 1 AND c.from_step IS DISTINCT FROM c.before")" 0 \
   "each item's events form a chain: every from_step is the previous event's to_step"
is "$(q "SELECT count(*) FROM ($chain) c WHERE c.kind IN ('fetch_completed', 'synced') AND c.from_step IS DISTINCT FROM c.to_step")" 0 \
   "... and a fetch's events name the step the item had when they were written"
bad=$(q "SELECT string_agg(format('%s #%s %s %s->%s after %s', item_id, id, kind, from_step, to_step, before), '; ')
           FROM (SELECT * FROM ($chain) c WHERE c.n > 1 AND c.from_step IS DISTINCT FROM c.before LIMIT 5) x")
[[ -n $bad ]] && echo "# broken chains: $bad"
ok $([[ $(q "SELECT count(DISTINCT from_step) FROM workqueue.item_event WHERE queue = 'fcq' AND kind = 'fetch_completed'") == 2 ]]; echo $?) \
   "fetches completed on items in both steps"

########################################################################
# Round 2: the worker loses a deadlock.  The client locks the last of 16
# items whose fetches are under way (the API answers after 400 ms), waits
# until the worker, recording them, waits for that lock -- holding the
# locks of the items before it -- and then locks those in id order: a
# cycle.  The worker waited first, so its deadlock check runs first and it
# is the victim; it rolls back, which lets the client finish, and records
# the turn again.  Tried up to 3 times, for the one turn in which all 16
# responses are recorded (one finishing a little late is recorded alone).
q "SELECT workqueue.create_queue('fdq');
   SELECT workqueue.create_source('fds', 'fdq', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
          '{\"mapping\": {\"data.title\": \"\$.name\"}}');
   SELECT count(workqueue.add('fdq', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 16) g" >/dev/null
control '{"reset": true, "slow_ms": 400}'
last=$(q "SELECT max(id) FROM workqueue.item WHERE queue = 'fdq'")
wpid=$(worker_pid fetch)
retried=""
client_errors=""
for round in 1 2 3; do
    from=$(log_size)
    q "SELECT count(workqueue.enqueue_fetch(id, 'fds')) FROM workqueue.item WHERE queue = 'fdq'" >/dev/null
    out=$(psql -XAtq -v ON_ERROR_STOP=1 2>&1 <<SQL
BEGIN;
SELECT 1 FROM workqueue.item WHERE queue = 'fdq' AND id = $last FOR UPDATE;
-- until the fetch worker waits for this transaction (at most 20 s)
DO \$\$ BEGIN
    FOR i IN 1..2000 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_locks WHERE pid = $wpid AND NOT granted);
        PERFORM pg_sleep(0.01);
    END LOOP;
END \$\$;
SELECT count(*) FROM (SELECT FROM workqueue.item WHERE queue = 'fdq' AND id < $last ORDER BY id FOR UPDATE) l;
COMMIT;
SQL
)
    [[ $out == *ERROR* ]] && client_errors+="$out "
    wait_fetches fdq 30
    if log_since "$from" | grep -q 'recording fetches: deadlock detected; trying again'; then
        retried=$round
        break
    fi
done
echo "# the client's session: $(tr '\n' ' ' <<<"$out")"
ok $([[ -z $client_errors ]]; echo $?) "the client that locked out of order saw no error"
if [[ -r $T_LOG ]]; then
    ok $([[ -n $retried ]]; echo $?) "the worker lost the deadlock, rolled back and recorded the turn again (round ${retried:-none})"
else
    echo "ok $((T_N += 1)) # skip the server log is not readable here"
fi
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) || ' ' ||
               (SELECT count(*) FROM workqueue.item_event WHERE queue = 'fdq' AND kind = 'fetch_failed')
          FROM workqueue.fetch WHERE queue = 'fdq'")" "$(q "SELECT count(*) || '/' || count(*) || ' 0' FROM workqueue.fetch WHERE queue = 'fdq'")" \
   "every fetch of those turns completed; none failed"
is "$(bad_fetch_events fdq)" 0 "exactly one fetch_completed event per fetch"
control '{"reset": true}'

########################################################################
# Round 3: the worker's statements on a queue that grew from 20 to 10,020
# items after the last ANALYZE, planned as the worker plans them (with the
# planner settings fetch.c sets around them; _claim_fetches sets its own),
# in a database of their own.  The plans kept since the queue had 20 items
# (generic) and plans made now (custom) must find each row through an index
# on id, one probe per row, read no other row of the queue, and sort
# nothing; a claim of 16 reads 16 due fetches, not the 10,020.
sql_of() {      # sql_of NAME: the text of the C string constant NAME in src/fetch/fetch.c
    python3 - "$dir/src/fetch/fetch.c" "$1" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r'static const char \*const ' + sys.argv[2] + r' =\s*((?:"(?:[^"\\]|\\.)*"\s*)+);', src)
print("".join(bytes(p, "utf-8").decode("unicode_escape") for p in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))))
PY
}
# scans FILE: for every JSON plan in FILE (EXPLAIN output, auto_explain
# notices), "relation|node|index|index condition|rows per loop|rows removed"
# for each scan of item or fetch, and "SORT|rows" for each sort
scans() {
    python3 - "$1" <<'PY'
import json, sys
text, dec, pos = open(sys.argv[1]).read(), json.JSONDecoder(), 0
def walk(n):
    yield n
    for c in n.get("Plans", []):
        yield from walk(c)
while True:
    starts = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
    if not starts:
        break
    try:
        doc, end = dec.raw_decode(text[min(starts):])
    except ValueError:
        pos = min(starts) + 1
        continue
    pos = min(starts) + end
    doc = doc[0] if isinstance(doc, list) and doc and isinstance(doc[0], dict) else doc
    if not isinstance(doc, dict) or "Plan" not in doc:
        continue
    for n in walk(doc["Plan"]):
        if "Sort" in n["Node Type"]:
            print("SORT|%d" % n["Actual Rows"])
        if n.get("Relation Name") in ("item", "fetch") and "Scan" in n["Node Type"]:
            removed = n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0)
            print("|".join(str(x) for x in (n["Relation Name"], n["Node Type"], n.get("Index Name", "-"),
                                            n.get("Index Cond", n.get("TID Cond", "-")), n["Actual Rows"], removed)))
PY
}
fence=$(sed -nE 's/.*set_config_option\("(enable_[a-z]+)", "off".*/SET \1 = off;/p' "$dir/src/fetch/fetch.c" | tr '\n' ' ')
ok $([[ $fence == *enable_seqscan* && $fence == *enable_hashjoin* ]]; echo $?) "the worker plans its statements with: $fence"
dropdb --if-exists $plandb >/dev/null 2>&1
createdb $plandb
pq() { psql -XAtq -v ON_ERROR_STOP=1 -d $plandb -c "SET client_min_messages = warning" -c "$1"; }
pq "CREATE EXTENSION workqueue;
    ALTER TABLE workqueue.item SET (autovacuum_enabled = off);
    ALTER TABLE workqueue.fetch SET (autovacuum_enabled = off);
    SELECT workqueue.create_queue('old1'); SELECT workqueue.create_queue('old2');
    SELECT count(workqueue.add(CASE WHEN g % 2 = 0 THEN 'old1' ELSE 'old2' END, '{}', 3, 'O-' || g))
      FROM generate_series(1, 2000) g;
    ANALYZE workqueue.item; ANALYZE workqueue.fetch;
    SELECT workqueue.create_queue('fresh'); SELECT workqueue.create_queue('fresh_c');
    SELECT workqueue.create_source('fresh', 'fresh', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
    SELECT workqueue.create_source('fresh_c', 'fresh_c', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null
# N more items in queue fresh (with a processing fetch each) and fresh_c (a queued one)
grow_sql() {
    echo "SELECT count(workqueue.add(v.q, '{}', 3, format('%s-%s', v.q, g))) FROM (VALUES ('fresh'), ('fresh_c')) v(q),
                 generate_series((SELECT count(*) FROM workqueue.item WHERE queue = 'fresh') + 1,
                                 (SELECT count(*) FROM workqueue.item WHERE queue = 'fresh') + $1) g;
          INSERT INTO workqueue.fetch (queue, item_id, source, url, max_attempts, requested_by, status, attempts)
          SELECT i.queue, i.id, i.queue, 'http://127.0.0.1/x', 4, 'test',
                 CASE i.queue WHEN 'fresh' THEN 'processing' ELSE 'queued' END, CASE i.queue WHEN 'fresh' THEN 1 ELSE 0 END
            FROM workqueue.item i WHERE i.queue IN ('fresh', 'fresh_c')
             AND NOT EXISTS (SELECT FROM workqueue.fetch f WHERE f.queue = i.queue AND f.item_id = i.id);"
}
pq "$(grow_sql 20)" >/dev/null
declare -A types=(
    [LOCK_SQL]="text[], int8[]"
    [COMPLETE_SQL]="text[], int8[], jsonb[], int2[], text[], jsonb[], int2[], text[], text[], int8[], int4[], text[], text[], text[]"
    [FAIL_SQL]="text[], int8[], int4[], text[], bool[], int8[], text[]"
)
qs="array_fill('fresh'::text, ARRAY[16])"
steps="array_fill('review'::text, ARRAY[16])"
declare -A values=(
    [LOCK_SQL]="$qs, :'ids'"
    [COMPLETE_SQL]="$qs, :'ids', array_fill('{\"title\": \"x\"}'::jsonb, ARRAY[16]), array_fill(2::int2, ARRAY[16]),
                    array_fill('fresh'::text, ARRAY[16]), array_fill('{}'::jsonb, ARRAY[16]), array_fill(3::int2, ARRAY[16]),
                    $steps, $qs, :'fids', array_fill(200, ARRAY[16]), $steps, '{}', '{}'"
    [FAIL_SQL]="$qs, :'fids', array_fill(503, ARRAY[16]), array_fill('HTTP 503'::text, ARRAY[16]), array_fill(true, ARRAY[16]),
                array_fill(250::int8, ARRAY[16]), $steps"
)
names="LOCK_SQL COMPLETE_SQL FAIL_SQL"
# 16 items of queue fresh spread over it, and their fetches, into :ids and :fids
pick="SELECT array_agg(s.id ORDER BY s.id) AS ids, array_agg(f.id ORDER BY s.id) AS fids
        FROM (SELECT id, row_number() OVER (ORDER BY id) AS r, count(*) OVER () AS n
                FROM workqueue.item WHERE queue = 'fresh') s
        JOIN workqueue.fetch f ON f.queue = 'fresh' AND f.item_id = s.id
       WHERE (s.r - 1) % (s.n / 16) = 0 AND s.r <= 16 * (s.n / 16) \gset"
{
    echo "SET client_min_messages = warning; $fence"
    echo "LOAD 'auto_explain';"
    echo "SET plan_cache_mode = force_generic_plan;"
    for name in $names; do echo "PREPARE ${name,,}(${types[$name]}) AS $(sql_of $name);"; done
    echo "-- the generic plans, made while queue fresh has 20 items, and a claim's"
    echo "$pick"
    echo "BEGIN;"
    for name in $names; do echo "EXPLAIN EXECUTE ${name,,}(${values[$name]});"; done
    echo "SELECT count(*) FROM workqueue._claim_fetches(16);"
    echo "ROLLBACK;"
    echo "-- the queue grows, in another session"
    echo "\\! psql -XAtq -v ON_ERROR_STOP=1 -d $plandb -f $tmp/grow.sql"
    echo "$pick"
    for mode in generic custom; do
        echo "SET plan_cache_mode = force_${mode}_plan;"
        echo "BEGIN;"
        for name in $names; do
            echo "\\o $tmp/$name.$mode.json"
            echo "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ${name,,}(${values[$name]});"
        done
        echo "\\o"
        echo "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on;"
        echo "SET auto_explain.log_format = json; SET auto_explain.log_level = notice; SET client_min_messages = notice;"
        echo "SELECT count(*) FROM workqueue._claim_fetches(16);"
        echo "SET client_min_messages = warning; SET auto_explain.log_min_duration = -1;"
        echo "ROLLBACK;"
    done
} >"$tmp/plans.sql"
grow_sql 10000 >"$tmp/grow.sql"
psql -XAtq -v ON_ERROR_STOP=1 -d $plandb -f "$tmp/plans.sql" >"$tmp/plans.out" 2>"$tmp/claim.log"
rc=$?
is "$rc|$(pq "SELECT count(*) FROM workqueue.item WHERE queue = 'fresh'")|$(pq "SELECT reltuples::int < 10000
     FROM pg_class WHERE oid = 'workqueue.item'::regclass")" "0|10020|t" \
   "queue fresh grew to 10,020 items after the plans were made; the statistics still predate it"
# what is not one probe per row (an index on id, or the row locked found
# again by its ctid; one row a loop, nothing thrown away), or sorts more
# than the 16 rows of the batch
probes_only() {
    awk -F'|' '$1 == "SORT" { if ($2 > 16) print; next }
               $2 == "Tid Scan" { if ($4 !~ /[(]ctid = / || $5 > 1 || $6 > 0) print; next }
               $3 !~ /^(item_pkey|item_id_idx|fetch_pkey|fetch_id_idx)$/ || $4 !~ /[(]id = / || $5 > 1 || $6 > 0' <<<"$1"
}
for name in $names; do
    for mode in generic custom; do
        out=$(scans "$tmp/$name.$mode.json")
        sed "s/^/# $name ($mode): /" <<<"$out"
        ok $([[ -n $out && -z $(probes_only "$out") ]]; echo $?) \
           "$name, $mode plan, on the grown queue: each item and fetch found by its id, one row per probe, nothing else read or sorted"
    done
done
# the claim: 16 rows of fetch_due_idx, then probes; no sort (once per mode)
for mode in 1 2; do
    out=$(awk -v m=$mode 'BEGIN {n = 0} /duration: .*plan:/ {n++} n == 2 * m - 1' "$tmp/claim.log" > "$tmp/claim.$mode.log"; scans "$tmp/claim.$mode.log")
    sed "s/^/# _claim_fetches ($([[ $mode == 1 ]] && echo generic || echo custom)): /" <<<"$out"
    due=$(grep -c '|fetch_due_idx|.*|16|0$' <<<"$out")
    ok $([[ $due == 1 && $out != *SORT* && -z $(probes_only "$(grep -v '|fetch_due_idx|' <<<"$out")") ]]; echo $?) \
       "_claim_fetches(16), $([[ $mode == 1 ]] && echo "plan kept since 20 fetches were due" || echo "plan made now"), of 10,020 due: reads 16 of fetch_due_idx in order, then probes by ctid and id; no sort"
done

########################################################################
# Round 4: retry_fetches and enqueue_fetch race for one item
# (the API answers slowly, so that the fetch queued again stays queued or
# processing while enqueue_fetch looks: were it completed first, a new
# fetch would be right, and the race would not be tested)
control '{"reset": true, "slow_ms": 3000}'
q "SELECT workqueue.create_queue('frq');
   SELECT workqueue.create_source('frs', 'frq', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null
ritem=$(q "SELECT workqueue.add('frq', '{}', 3, 'C-0001')")
rfetch=$(psql -XAtq -v ON_ERROR_STOP=1 <<SQL
BEGIN;
SELECT workqueue.enqueue_fetch($ritem, 'frs');
UPDATE workqueue.fetch SET status = 'failed', finished_at = now(), error = 'made to fail' WHERE item_id = $ritem;
COMMIT;
SQL
)
psql -XAtq -v ON_ERROR_STOP=1 >"$tmp/retry.out" 2>&1 <<SQL &
SET application_name = 'wq_fcc_retry';
BEGIN;
SELECT workqueue.retry_fetches('frs');
SELECT pg_sleep(1);
COMMIT;
SQL
retry_pid=$!
wait_until 10 "retry_fetches to hold its transaction open" \
    q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wq_fcc_retry' AND query LIKE '%pg_sleep%'"
got=$(psql -XAtq -v VERBOSITY=terse -c "SELECT workqueue.enqueue_fetch($ritem, 'frs')" 2>&1)
wait $retry_pid
is "$got|$(grep -v '^$' "$tmp/retry.out" | head -1)" "$rfetch|1" \
   "enqueue_fetch during a retry_fetches of the same item waits and returns the fetch queued again (no unique violation)"
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE item_id = $ritem")" 1 "... and the item still has one fetch"
control '{"reset": true}'

finish
