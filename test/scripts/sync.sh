#!/usr/bin/env bash
# Sync runs end to end: the background worker against the sample API over
# loopback.  Runs in the database the worker serves (PGDATABASE, "postgres"
# under test/run.sh); every case uses its own queue and source.
source "$(dirname "$0")/../lib.sh"
api_start
q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
wait_until 10 "a fetch worker of this database" worker_running fetch
ok $([[ -n $(worker_pid fetch) ]]; echo $?) "a workqueue fetch worker serves database $(q 'SELECT current_database()')"

# new_source NAME IDS_PATH DETAILS_PATH OPTIONS: a queue and a source of that name
new_source() {
    local details=NULL
    [[ -n $3 ]] && details="'$WQ_API$3'"
    q "SELECT workqueue.create_queue('$1');
       SELECT workqueue.create_source('$1', '$1', '$WQ_API$2', $details, '$4')" >/dev/null
}
sync() { q "SELECT workqueue.sync('$1', \"full\" => ${2:-false}, force => true)"; }
count() { q "SELECT count(*) FROM workqueue.item WHERE queue = '$1' ${2:+AND $2}"; }
run_col() { q "SELECT $2 FROM workqueue.sync_run WHERE id = $1"; }

########################################################################
# first load, incremental, change detection, local fields, close, reopen
control '{"reset": true}'
new_source s1 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 50, "max_concurrency": 4, "mapping": {"priority": "$.severity"}}'
r=$(sync s1)
is "$(wait_run $r)" "completed|" "first load completes"
is "$(run_col $r "ids_seen || ' ' || missing || ' ' || inserted || ' ' || batches_done")" "250 250 250 5" "first load: 250 listed, 250 missing and inserted in 5 batches"
is "$(count s1)" 250 "250 items in the queue"
is "$(q "SELECT priority FROM workqueue.item WHERE queue = 's1' AND external_id = 'C-0007'")" 3 "priority mapped from severity"
is "$(q "SELECT data->>'name' FROM workqueue.item WHERE queue = 's1' AND external_id = 'C-0007'")" "Case 7" "data holds the whole record without a data mapping"
is "$(q "SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.queue = e.queue AND i.id = e.item_id WHERE i.queue = 's1' AND e.kind = 'created'")" 250 "a created event per item"

r=$(sync s1)
is "$(wait_run $r)" "completed|" "incremental run completes"
is "$(run_col $r "missing || ' ' || inserted || ' ' || batches_total")" "0 0 0" "incremental run with nothing new fetches nothing"

id7=$(q "SELECT id FROM workqueue.item WHERE queue = 's1' AND external_id = 'C-0007'")
q "SELECT workqueue.update_fields($id7, '{\"owner\": \"alice\"}')" >/dev/null
q "SELECT workqueue.claim('s1', 1, 'bob')" >/dev/null
control '{"update": {"C-0007": {"name": "Case seven", "severity": 1}}}'
r=$(sync s1 true)
is "$(wait_run $r)" "completed|" "full run completes"
is "$(run_col $r "updated || ' ' || unchanged || ' ' || closed")" "1 249 0" "full run: one changed, 249 unchanged, none closed"
is "$(q "SELECT data->>'name' || ' ' || priority || ' ' || (notes->>'owner') FROM workqueue.item WHERE id = $id7")" "Case seven 1 alice" "upstream change applied, local note kept"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 's1' AND status = 'in_progress' AND claimed_by = 'bob'")" 1 "the claim survived the sync"
is "$(q "SELECT payload->'new'->'data'->>'name' FROM workqueue.item_event WHERE item_id = $id7 AND kind = 'synced'")" "Case seven" "synced event records the new value"

control '{"open": ["C-0001", "C-0002", "C-0003", "C-0004", "C-0005", "C-0006", "C-0007", "C-0008"]}'
r=$(sync s1)
is "$(wait_run $r)" "completed|" "incremental run after upstream closes completes"
is "$(count s1 "status = 'closed'")" 0 "an incremental run never closes"
r=$(sync s1 true)
is "$(wait_run $r)" "completed|" "full reload completes"
is "$(run_col $r closed)" 242 "full reload closes the 242 vanished items"
is "$(count s1 "status = 'closed'")" 242 "242 items closed"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 's1' AND kind = 'upstream_closed'")" 242 "an upstream_closed event per closed item"
is "$(count s1)" 250 "nothing was deleted"

id9=$(q "SELECT id FROM workqueue.item WHERE queue = 's1' AND external_id = 'C-0009'")
q "SELECT workqueue.update_fields($id9, '{\"note\": \"keep me\"}')" >/dev/null
control '{"open": ["C-0001", "C-0002", "C-0003", "C-0004", "C-0005", "C-0006", "C-0007", "C-0008", "C-0009"]}'
r=$(sync s1)
is "$(wait_run $r)" "completed|" "run after a case comes back completes"
is "$(q "SELECT status || ' ' || step || ' ' || (notes->>'note') FROM workqueue.item WHERE id = $id9")" "open review keep me" "a listed closed item is reopened at its step, notes intact"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE item_id = $id9 AND kind = 'upstream_reopened'")" 1 "with an upstream_reopened event"

########################################################################
# a second request while one is queued or running returns the same run
control '{"reset": true, "slow_ms": 300}'
new_source s2 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 100}'
a=$(q "SELECT workqueue.sync('s2')"); b=$(q "SELECT workqueue.sync('s2')")
is "$b" "$a" "sync() while a run is queued or running returns that run"
c=$(q "SELECT workqueue.sync('s2', force => true)")
ok $([[ $c != "$a" ]]; echo $?) "force queues a new run"
wait_run $a >/dev/null; wait_run $c >/dev/null
is "$(count s2)" 250 "both runs together leave one item per case"

########################################################################
# wait(): its timeout, and a run queued by the waiting transaction itself,
# which the worker cannot see before it commits (issue 14.4): refused at once
control '{"reset": true, "slow_ms": 300}'
new_source w1 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 100}'
r=$(sync w1)
err() { psql -XAtq -c '\set VERBOSITY sqlstate' -c "$1" 2>&1 | grep '^ERROR'; }   # its progress NOTICEs left out
is "$(err "SELECT workqueue.wait($r, '50 milliseconds')")" "ERROR:  55000" "wait() gives up after its timeout (55000), the run goes on"
n0=$(q "SELECT count(*) FROM workqueue.sync_run WHERE source = 'w1'")
t0=$(date +%s%3N)
is "$(err "SELECT workqueue.wait(workqueue.sync('w1', force => true))")" "ERROR:  55000" "wait(sync(...)) in one statement: 55000"
ms=$(( $(date +%s%3N) - t0 ))
ok $([[ $ms -lt 5000 ]]; echo $?) "... at once ($ms ms), not after the timeout"
is "$(q "SELECT count(*) FROM workqueue.sync_run WHERE source = 'w1'")" "$n0" "... and the run it queued was rolled back with it"
control '{"slow_ms": 0}'
is "$(wait_run $r)" "completed|" "the committed run completes"

########################################################################
# pagination styles and listing-only sources
control '{"reset": true}'
new_source p1 '/cases/ids/next?per_page=40' '/cases/details?ids={ids}' '{"ids_path": "$.ids", "pagination": {"next_url_path": "$.next"}}'
r=$(sync p1); is "$(wait_run $r)|$(run_col $r pages)|$(count p1)" "completed||7|250" "next-URL pagination (relative URLs): 7 pages, 250 items"
new_source p2 '/cases/ids/link?per_page=40' '/cases/details?ids={ids}' '{"pagination": {"link_header": true}}'
r=$(sync p2); is "$(wait_run $r)|$(run_col $r pages)|$(count p2)" "completed||7|250" "Link header pagination: 7 pages, 250 items"
new_source p3 '/cases/ids/cursor?per_page=40' '/cases/details?ids={ids}' '{"ids_path": "$.data[*].id", "pagination": {"cursor_path": "$.meta.next_cursor", "cursor_param": "cursor"}}'
r=$(sync p3); is "$(wait_run $r)|$(run_col $r pages)|$(count p3)" "completed||7|250" "cursor pagination: 7 pages, 250 items"
new_source p4 '/cases/ids/offset' '/cases/details?ids={ids}' '{"ids_path": "$.values[*].id", "pagination": {"offset_param": "startAt", "limit_param": "maxResults", "limit": 100, "total_path": "$.total"}}'
r=$(sync p4); is "$(wait_run $r)|$(run_col $r pages)|$(count p4)" "completed||3|250" "offset pagination with total: 3 pages, 250 items"
new_source p5 '/cases/search?per_page=60' '' '{"records_path": "$.issues", "pagination": {"next_url_path": "$.next"}, "mapping": {"priority": "$.severity", "data.title": "$.name", "data.region": "$.details.region"}}'
r=$(sync p5 true); is "$(wait_run $r)|$(run_col $r pages)|$(count p5)" "completed||5|250" "listing-only source over 5 pages"
is "$(q "SELECT data FROM workqueue.item WHERE queue = 'p5' AND external_id = 'C-0002'")" '{"title": "Case 2", "region": "apac"}' "data built from the mapping"
new_source p6 '/cases/ids' '/cases/details' '{"details_method": "POST", "records_path": "$.records", "batch_size": 64}'
r=$(sync p6); is "$(wait_run $r)|$(count p6)" "completed||250" "POST details endpoint"
new_source p7 '/numeric/ids' '/numeric/details?ids={ids}' '{}'
r=$(sync p7); is "$(wait_run $r)|$(count p7)" "completed||20" "numeric ids become their text form"
is "$(q "SELECT string_agg(external_id, ',' ORDER BY external_id::int) FROM (SELECT * FROM workqueue.item WHERE queue = 'p7' ORDER BY external_id::int LIMIT 3) x")" "1,2,3" "numeric external ids"

########################################################################
# failures: nothing closed, committed batches kept, clear errors
control '{"reset": true}'
new_source f1 '/cases/ids/next?per_page=50' '/cases/details?ids={ids}' '{"ids_path": "$.ids", "pagination": {"next_url_path": "$.next", "max_pages": 3}}'
r=$(sync f1 true); wait_run $r >/dev/null
is "$(run_col $r status)" failed "a listing longer than max_pages fails the run"
is "$(run_col $r error)" 'listing of source "f1" exceeded max_pages (3)' "... with a clear error"
is "$(count f1 "status = 'closed'")" 0 "... and closes nothing"

control '{"reset": true}'
new_source f2 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 50, "retries": 1}'
r=$(sync f2); wait_run $r >/dev/null
control '{"listing_down": true}'
r=$(sync f2 true); wait_run $r >/dev/null
is "$(run_col $r status)" failed "a listing outage fails the run"
is "$(run_col $r error)" "listing request failed: HTTP 503" "... with the HTTP status"
is "$(count f2 "status = 'closed'")" 0 "... and closes nothing"

control '{"reset": true, "pages_forever": true}'
new_source f3 '/cases/ids/next?per_page=100' '/cases/details?ids={ids}' '{"ids_path": "$.ids", "pagination": {"next_url_path": "$.next", "max_pages": 20}}'
r=$(sync f3 true); wait_run $r >/dev/null
is "$(run_col $r "status || ' ' || pages")" "failed 20" "a listing that pages forever is stopped by max_pages"

control '{"reset": true, "fail_every": 3, "fail_status": 500}'
new_source f4 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 25, "retries": 4}'
r=$(sync f4); is "$(wait_run $r)|$(count f4)" "completed||250" "flaky upstream (every 3rd request a 500): everything arrives through retries"
ok $([[ $(api GET /_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["failed"])') -gt 0 ]]; echo $?) "... and the API really failed some requests"
control '{"reset": true, "fail_every": 2, "fail_status": 429, "retry_after": 1}'
new_source f5 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 125, "retries": 3}'
start=$(date +%s)
r=$(sync f5); is "$(wait_run $r)|$(count f5)" "completed||250" "429 with Retry-After: everything arrives"
ok $([[ $(( $(date +%s) - start )) -ge 1 ]]; echo $?) "... after honouring Retry-After"

control '{"reset": true, "malformed_details_after": 2}'
new_source f6 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 50, "max_concurrency": 1}'
r=$(sync f6); wait_run $r >/dev/null
is "$(run_col $r status)" failed "a malformed details response fails the run"
ok $([[ $(run_col $r error) == "invalid JSON in details response from $WQ_API/cases/details?ids="* ]]; echo $?) "... with an error naming invalid JSON and the URL"
is "$(count f6)" 100 "... and keeps the two batches committed before it"

control '{"reset": true, "no_id": ["C-0003", "C-0004"], "bad_severity": ["C-0010"]}'
new_source f7 /cases/ids '/cases/details?ids={ids}' '{"mapping": {"priority": "$.severity"}}'
r=$(sync f7); is "$(wait_run $r)" "completed|" "records without id or with a bad priority do not fail the run"
is "$(run_col $r "errors || ' ' || inserted")" "3 247" "... they are counted and skipped"
is "$(q "SELECT error_samples->0->>'reason' FROM workqueue.sync_run WHERE id = $r")" 'record has no id at "$.id"' "... with the reason in the run"

# a mapped priority follows the rule of upsert_items (src/queue/priority.c):
# 2.0, "2.0" and " 1 " are priorities, 2.5 and "high" are not
control '{"reset": true, "update": {"C-0011": {"severity": "2.0"}, "C-0012": {"severity": 4.0}, "C-0013": {"severity": 2.5}, "C-0014": {"severity": "high"}, "C-0015": {"severity": " 1 "}}}'
new_source f8 /cases/ids '/cases/details?ids={ids}' '{"mapping": {"priority": "$.severity"}}'
r=$(sync f8); is "$(wait_run $r)" "completed|" "a run with unusual mapped priorities completes"
is "$(q "SELECT string_agg(external_id || '=' || priority, ' ' ORDER BY external_id) FROM workqueue.item
          WHERE queue = 'f8' AND external_id IN ('C-0011', 'C-0012', 'C-0015')")" "C-0011=2 C-0012=4 C-0015=1" \
   "... \"2.0\", 4.0 and \" 1 \" are mapped as priorities 2, 4 and 1, as upsert_items takes them"
is "$(q "SELECT string_agg(e->>'id' || ': ' || (e->>'reason'), ' | ' ORDER BY e->>'id')
          FROM workqueue.sync_run, jsonb_array_elements(error_samples) e WHERE sync_run.id = $r")" \
   'C-0013: priority 2.5 is not an integer | C-0014: priority "high" is not a number' \
   "... 2.5 and \"high\" are skipped with the reasons upsert_items gives"
is "$(qerr "SELECT workqueue.upsert_items('f8', '[{\"external_id\": \"X\", \"priority\": 2.5}]')")|$(qerr "SELECT workqueue.upsert_items('f8', '[{\"external_id\": \"X\", \"priority\": \"high\"}]')")" \
   'priority 2.5 of element 1 is not an integer|priority "high" of element 1 is not a number' \
   "... which refuses the same two values"

########################################################################
# crashes: kill -9 of the worker mid-run, then an immediate shutdown
control '{"reset": true, "slow_ms": 400}'
new_source c1 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 10, "max_concurrency": 1}'
r=$(sync c1)
wait_until 10 "run $r to commit 2 batches" q_ge "SELECT batches_done FROM workqueue.sync_run WHERE id = $r" 2
pid=$(worker_pid fetch)
kill -9 "$pid"
# the crash restart is over once the restarted sync worker has recovered the run
wait_until 30 "run $r to be recovered after kill -9 of pid $pid" \
    quiet q_is "SELECT status <> 'running' FROM workqueue.sync_run WHERE id = $r" t
is "$(q "SELECT status || '|' || error FROM workqueue.sync_run WHERE id = $r")" "failed|interrupted by server restart" "kill -9 of the worker: the run is marked failed"
retry=$(q "SELECT id FROM workqueue.sync_run WHERE retry_of = $r")
ok $([[ -n $retry ]]; echo $?) "... and re-queued once"
control '{"slow_ms": 0}'
is "$(wait_run $retry)" "completed|" "the re-queued run completes"
is "$(q "SELECT count(*) || ' ' || count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'c1'")" "250 250" "no item lost or doubled"

if [[ -n ${WQ_CLUSTER:-} ]]; then
    control '{"reset": true, "slow_ms": 400}'
    new_source c2 /cases/ids '/cases/details?ids={ids}' '{"batch_size": 10, "max_concurrency": 1}'
    r=$(sync c2)
    wait_until 10 "run $r to commit 2 batches" q_ge "SELECT batches_done FROM workqueue.sync_run WHERE id = $r" 2
    pg_ctlcluster ${WQ_CLUSTER/\// } stop -m immediate >/dev/null 2>&1
    pg_ctlcluster ${WQ_CLUSTER/\// } start >/dev/null 2>&1
    wait_until 30 "run $r to be re-queued after the restart" \
        quiet q_is "SELECT count(*) FROM workqueue.sync_run WHERE retry_of = $r" 1
    is "$(run_col $r status)" failed "immediate shutdown mid-run: the run is marked failed"
    control '{"slow_ms": 0}'
    is "$(wait_run "$(q "SELECT id FROM workqueue.sync_run WHERE retry_of = $r")")" "completed|" "... re-queued, and completes after the restart"
    is "$(q "SELECT count(*) || ' ' || count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'c2'")" "250 250" "... with no item lost or doubled"
fi

finish
