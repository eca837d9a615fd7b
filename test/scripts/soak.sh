#!/usr/bin/env bash
# The soak: 16 pgbench clients for SOAK_SECONDS (default 60) on one queue,
# mixing claim-then-resolve/reject/release, reopen, comment, enqueue_fetch
# and sync requests (full and incremental) of a sample API source that feeds
# the same queue, while the upstream records keep changing.  Then the books:
# no failed or aborted client transaction, no deadlock in the server log, no
# double claim, every event count equal to the operations that committed,
# every item's status agreeing with its last event, every run and fetch
# finished.  Prints the operations per second of each kind.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../crashlib.sh"
seconds=${SOAK_SECONDS:-60}
t_start=$(date +%s)
clients=16
cases=1000
tmp=$(mktemp -d)
dir=$(cd "$(dirname "$0")/.." && pwd)
port_file=$(mktemp)
python3 "$dir/sample_api.py" --port 0 --cases $cases --port-file "$port_file" >/dev/null &
api_pid=$!
mutator=""
trap 'kill $api_pid $mutator 2>/dev/null; rm -rf "$tmp" "$port_file"' EXIT
wait_until -i 0.05 10 "the sample API to write its port to $port_file" test -s "$port_file"
WQ_API="http://127.0.0.1:$(cat "$port_file")"
q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
wait_workers
ok $? "both workers serve database $(q 'SELECT current_database()')"

########################################################################
# the queue: 1,000 synced items (external ids, source "soak") and 1,000
# local ones; the test's helpers log each committed operation in soak.done,
# in the operation's own transaction
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
DROP SCHEMA IF EXISTS soak CASCADE;
CREATE SCHEMA soak;
SELECT workqueue.create_queue('soak');
SELECT workqueue.create_source('soak', 'soak', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}', '{"batch_size": 100}');
SELECT count(workqueue.add('soak', jsonb_build_object('n', g), 1 + g % 5)) FROM generate_series(1, 1000) g;
CREATE TABLE soak.done (kind text NOT NULL, ref bigint);
CREATE TABLE soak.ids (n int PRIMARY KEY, item bigint NOT NULL);
CREATE TABLE soak.ext (n int PRIMARY KEY, item bigint NOT NULL);

-- claim one item (0 if none is open)
CREATE FUNCTION soak.claim(w text) RETURNS bigint LANGUAGE plpgsql AS \$\$
DECLARE got bigint;
BEGIN
    SELECT c.id INTO got FROM workqueue.claim('soak', 1, w) c;
    INSERT INTO soak.done VALUES (CASE WHEN got IS NULL THEN 'claim_none' ELSE 'claimed' END, got);
    RETURN coalesce(got, 0);
END \$\$;
-- the holder resolves (r = 1), rejects (2) or releases (3) it
CREATE FUNCTION soak.finish(it bigint, w text, r int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    IF it = 0 THEN RETURN; END IF;
    IF r = 3 THEN
        PERFORM workqueue.release(it, w);
        INSERT INTO soak.done VALUES ('released', it);
    ELSE
        PERFORM workqueue.transition(it, CASE r WHEN 1 THEN 'resolve' ELSE 'reject' END,
                                     '{"resolution": "soak"}', w);
        INSERT INTO soak.done VALUES ('transition', it);
    END IF;
END \$\$;
-- reopen one resolved or rejected item
CREATE FUNCTION soak.reopen() RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE it bigint;
BEGIN
    SELECT id INTO it FROM workqueue.item WHERE queue = 'soak' AND status IN ('resolved', 'rejected')
     LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF it IS NULL THEN
        INSERT INTO soak.done VALUES ('reopen_none', NULL);
        RETURN;
    END IF;
    PERFORM workqueue.transition(it, 'reopen', '{}', 'soak-reopener');
    INSERT INTO soak.done VALUES ('reopened', it);
END \$\$;
CREATE FUNCTION soak.comment(r int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE it bigint := (SELECT item FROM soak.ids WHERE n = r);
BEGIN
    INSERT INTO soak.done VALUES ('comment', workqueue.comment(it, 'soak comment ' || r, 'soak-commenter'));
END \$\$;
CREATE FUNCTION soak.fetch(r int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO soak.done VALUES ('fetch', workqueue.enqueue_fetch((SELECT item FROM soak.ext WHERE n = r)));
END \$\$;
CREATE FUNCTION soak.sync(full_run boolean) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO soak.done VALUES ('sync', workqueue.sync('soak', "full" => full_run));
END \$\$;
SQL
r=$(q "SELECT workqueue.sync('soak')")
is "$(wait_run $r 60)" "completed|" "initial sync of $cases cases"
q "INSERT INTO soak.ids SELECT row_number() OVER (ORDER BY id), id FROM workqueue.item WHERE queue = 'soak';
   INSERT INTO soak.ext SELECT row_number() OVER (ORDER BY id), id FROM workqueue.item WHERE queue = 'soak' AND external_id IS NOT NULL;
   ANALYZE workqueue.item, workqueue.item_event, soak.ids, soak.ext" >/dev/null
nitems=$(q "SELECT count(*) FROM soak.ids")
next=$(q "SELECT count(*) FROM soak.ext")
is "$nitems|$next" "2000|1000" "2,000 items, 1,000 of them from the source"

cat >"$tmp/claim.sql" <<'SQL'
\set r random(1, 3)
SELECT soak.claim('w' || :client_id) AS it \gset
SELECT soak.finish(:it, 'w' || :client_id, :r);
SQL
cat >"$tmp/reopen.sql" <<'SQL'
SELECT soak.reopen();
SQL
cat >"$tmp/comment.sql" <<SQL
\\set r random(1, $nitems)
SELECT soak.comment(:r);
SQL
cat >"$tmp/fetch.sql" <<SQL
\\set r random(1, $next)
SELECT soak.fetch(:r);
SQL
cat >"$tmp/sync.sql" <<'SQL'
\set f random(0, 1)
SELECT soak.sync(:f = 1);
SQL

########################################################################
# the soak; meanwhile the upstream changes 20 records every 2 seconds
( i=0
  while :; do
      i=$((i + 1))
      python3 - "$WQ_API" "$i" <<'PY' >/dev/null 2>&1
import json, random, sys, urllib.request
upd = {"C-%04d" % random.randint(1, 1000): {"name": "Round %s" % sys.argv[2]} for _ in range(20)}
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/_control", data=json.dumps({"update": upd}).encode(),
                                              method="POST"), timeout=5).read()
PY
      sleep 2     # not a wait: the pace of the upstream changes
  done ) &
mutator=$!
log0=$(log_size)
epoch0=$(cluster_epoch)
t_soak=$(date +%s)
ev0=$(q "SELECT coalesce(max(id), 0) FROM workqueue.item_event")
echo "# pgbench: $clients clients, $seconds s"
pgbench -n -c $clients -j 2 -T "$seconds" -r \
    -f "$tmp/claim.sql@36" -f "$tmp/reopen.sql@27" -f "$tmp/comment.sql@22" \
    -f "$tmp/fetch.sql@12" -f "$tmp/sync.sql@3" >"$tmp/pgbench.out" 2>"$tmp/pgbench.err"
rc=$?
kill $mutator 2>/dev/null; wait $mutator 2>/dev/null; mutator=""
sed -n '/^transaction type/,/^SQL script 1/p' "$tmp/pgbench.out" | grep -E 'number of (transactions|failed)|tps|latency average' | sed 's/^/# /'
awk '/^SQL script/ { n = split($0, p, "/"); name = p[n] }
     name && /transactions \(/ { sub(/^ - /, ""); print "# " name ": " $0; name = "" }' "$tmp/pgbench.out"
ok $([[ $rc == 0 ]] && ! grep -qiE 'aborted' "$tmp/pgbench.out" "$tmp/pgbench.err"; echo $?) "pgbench ran to the end, no client aborted"
[[ -s $tmp/pgbench.err ]] && head -5 "$tmp/pgbench.err" | sed 's/^/# /'
failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$tmp/pgbench.out")
is "${failed:-0}" 0 "no failed transaction (deadlock, serialization or other error)"

t_drain=$(date +%s)
# let the workers finish what was queued
wait_until 60 "the sync runs and fetches of the soak to finish" \
    q_is "SELECT (SELECT count(*) FROM workqueue.sync_run WHERE source = 'soak' AND status IN ('queued', 'running'))
               + (SELECT count(*) FROM workqueue.fetch WHERE queue = 'soak' AND status IN ('queued', 'processing'))" 0
is "$(log_since "$log0" | grep -cE 'deadlock detected|could not serialize')" 0 "no deadlock or serialization failure in the server log"
is "$(cluster_epoch)" "$epoch0" "no crash restart"

t_books=$(date +%s)
########################################################################
# the books
is "$(q "SELECT count(*) FROM (
           SELECT kind, lag(kind) OVER (PARTITION BY queue, item_id ORDER BY id) AS prev
             FROM workqueue.item_event
            WHERE queue = 'soak' AND kind IN ('claimed', 'released', 'lease_expired', 'transition', 'created')) x
         WHERE kind = 'claimed' AND prev = 'claimed'")" 0 \
   "no double claim: no item claimed twice without a release, expiry or transition in between"
# event kind -> the operations logged for it
declare -A ops=([comment]="'comment'" [claimed]="'claimed'" [released]="'released'" [transition]="'transition', 'reopened'")
for k in comment claimed released transition; do
    is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'soak' AND kind = '$k' AND id > $ev0")" \
       "$(q "SELECT count(*) FROM soak.done WHERE kind IN (${ops[$k]})")" "$k events = operations committed ($(q "SELECT count(*) FROM soak.done WHERE kind IN (${ops[$k]})"))"
done
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'soak'")" "$(q "SELECT count(DISTINCT ref) FROM soak.done WHERE kind = 'fetch'")" \
   "fetch rows = distinct fetches enqueue_fetch returned"
is "$(q "SELECT count(*) FROM workqueue.sync_run WHERE source = 'soak' AND id <> $r")" "$(q "SELECT count(DISTINCT ref) FROM soak.done WHERE kind = 'sync'")" \
   "sync runs = distinct runs sync() returned"
# pgbench's own count of each script = the operations logged for it
declare -A logged=([claim]="'claimed', 'claim_none'" [reopen]="'reopened', 'reopen_none'"
                   [comment]="'comment'" [fetch]="'fetch'" [sync]="'sync'")
for s in claim reopen comment fetch sync; do
    n=$(awk -v s="/$s.sql" '
        $0 ~ "^SQL script" && index($0, s) { hit = 1; next }
        hit && /transactions \(/ { gsub(/^ - /, ""); print $1; exit }' "$tmp/pgbench.out")
    # pgbench does not count a transaction still running when the time is up
    m=$(q "SELECT count(*) FROM soak.done WHERE kind IN (${logged[$s]})")
    ok $([[ -n $n && $m -ge $n && $m -le $((n + clients)) ]]; echo $?) \
       "$s.sql: operations logged ($m) = transactions pgbench counted (${n:-?}) + at most one per client cut off at the end"
done
is "$(q "SELECT count(*) FROM workqueue.item i WHERE queue = 'soak' AND i.status <> (
           SELECT CASE e.kind WHEN 'claimed' THEN 'in_progress' WHEN 'upstream_closed' THEN 'closed'
                              WHEN 'transition' THEN CASE e.to_step WHEN 'resolved' THEN 'resolved' WHEN 'rejected' THEN 'rejected' ELSE 'open' END
                              ELSE 'open' END
             FROM workqueue.item_event e
            WHERE e.queue = i.queue AND e.item_id = i.id
              AND e.kind IN ('created', 'claimed', 'released', 'lease_expired', 'transition', 'upstream_closed', 'upstream_reopened')
            ORDER BY e.id DESC LIMIT 1)")" 0 "every item's status agrees with its last event"
is "$(bad_created soak)|$(q "SELECT count(*) - count(DISTINCT external_id) - count(*) FILTER (WHERE external_id IS NULL) FROM workqueue.item WHERE queue = 'soak'")" \
   "0|0" "exactly one created event per item, no external id twice"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'soak'")" 2000 "no item appeared or vanished"
is "$(q "SELECT string_agg(DISTINCT status, ',') FROM workqueue.sync_run WHERE source = 'soak'")" completed "every sync run completed"
is "$(q "SELECT string_agg(DISTINCT status, ',') FROM workqueue.fetch WHERE queue = 'soak'")|$(bad_fetch_events soak)" "completed|0" \
   "every fetch completed, with exactly one fetch_completed event"
is "$(q "SELECT count(*) FROM workqueue.item i WHERE queue = 'soak' AND external_id IS NOT NULL
           AND data->>'name' IS DISTINCT FROM (SELECT e.payload->'new'->'data'->>'name' FROM workqueue.item_event e
                                                WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind = 'synced'
                                                ORDER BY e.id DESC LIMIT 1)
           AND EXISTS (SELECT 1 FROM workqueue.item_event e WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind = 'synced')")" 0 \
   "every synced item holds the value of its last synced event"

########################################################################
# the figures
q "SELECT '# ' || rpad(k, 24) || lpad(n::text, 8) || lpad(round(n / $seconds.0, 1)::text, 10) || ' /s'
     FROM (SELECT 1 o, 'claim' k, count(*) FILTER (WHERE kind = 'claimed') n FROM soak.done
           UNION ALL SELECT 2, 'resolve/reject', count(*) FROM workqueue.item_event WHERE queue = 'soak' AND id > $ev0 AND kind = 'transition' AND to_step <> 'review'
           UNION ALL SELECT 3, 'release', count(*) FILTER (WHERE kind = 'released') FROM soak.done
           UNION ALL SELECT 4, 'reopen', count(*) FILTER (WHERE kind = 'reopened') FROM soak.done
           UNION ALL SELECT 5, 'comment', count(*) FILTER (WHERE kind = 'comment') FROM soak.done
           UNION ALL SELECT 6, 'enqueue_fetch calls', count(*) FILTER (WHERE kind = 'fetch') FROM soak.done
           UNION ALL SELECT 7, 'fetches completed', count(*) FROM workqueue.fetch WHERE queue = 'soak' AND status = 'completed'
           UNION ALL SELECT 8, 'sync calls', count(*) FILTER (WHERE kind = 'sync') FROM soak.done
           UNION ALL SELECT 9, 'sync runs (full)', count(*) FILTER (WHERE \"full\") FROM workqueue.sync_run WHERE source = 'soak' AND id <> $r
           UNION ALL SELECT 10, 'sync runs (incremental)', count(*) FILTER (WHERE NOT \"full\") FROM workqueue.sync_run WHERE source = 'soak' AND id <> $r
           UNION ALL SELECT 11, 'synced events', count(*) FROM workqueue.item_event WHERE queue = 'soak' AND id > $ev0 AND kind = 'synced'
           UNION ALL SELECT 12, 'claim found nothing', count(*) FILTER (WHERE kind = 'claim_none') FROM soak.done
           UNION ALL SELECT 13, 'reopen found nothing', count(*) FILTER (WHERE kind = 'reopen_none') FROM soak.done
          ) x ORDER BY o"
q "DROP SCHEMA soak CASCADE" >/dev/null
echo "# set-up $((t_soak - t_start)) s, soak $((t_drain - t_soak)) s, draining $((t_books - t_drain)) s, checks $(($(date +%s) - t_books)) s"

finish
