#!/usr/bin/env bash
# Background enrichment fetches end to end: the fetch worker against a
# sample API of its own (2,000 cases) over loopback, in the database the
# workers serve.  Every failure ends in its own state; nothing is lost.
source "$(dirname "$0")/../lib.sh"
WQ_API=""                                   # our own server: 2,000 cases
dir=$(cd "$(dirname "$0")/.." && pwd)
port_file=$(mktemp)
python3 "$dir/sample_api.py" --port 0 --cases 2000 --port-file "$port_file" >/dev/null &
api_pid=$!
trap 'kill $api_pid 2>/dev/null' EXIT
wait_until -i 0.05 10 "the sample API to write its port to $port_file" test -s "$port_file"
WQ_API="http://127.0.0.1:$(cat "$port_file")"

q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
# new_fetch_pid OLD-PID: a fetch worker other than OLD-PID runs (its pid in $new)
new_fetch_pid() { new=$(worker_pid fetch 2>/dev/null); [[ -n $new && $new != "$1" ]]; }
wait_until 10 "a fetch worker of this database" worker_running fetch
ok $([[ -n $(worker_pid fetch) ]]; echo $?) "a fetch worker serves this database"

fstatus() { q "SELECT status || '|' || coalesce(http_status::text, '') || '|' || coalesce(error, '') || '|' || attempts FROM workqueue.fetch WHERE id = $1"; }

########################################################################
# load 2,000 items, change 2,000 records upstream, fetch them all through
# injected 500s and 429s
q "SELECT workqueue.create_queue('fq');
   SELECT workqueue.create_source('fq', 'fq', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
          '{\"batch_size\": 200, \"retries\": 6}')" >/dev/null
r=$(q "SELECT workqueue.sync('fq')")
is "$(wait_run $r)|$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'fq'")" "completed||2000" "2,000 items loaded"
python3 - "$WQ_API" <<'PY'
import json, sys, urllib.request
upd = {"C-%04d" % i: {"name": "Enriched %d" % i} for i in range(1, 2001)}
req = urllib.request.Request(sys.argv[1] + "/_control", data=json.dumps(
    {"update": upd, "fail_every": 7, "fail_status": 500}).encode(), method="POST")
urllib.request.urlopen(req).read()
PY
api POST /_stats/reset >/dev/null
start=$(date +%s.%N)
q "SELECT count(workqueue.enqueue_fetch(id)) FROM workqueue.item WHERE queue = 'fq'" >/dev/null
wait_fetches fq 120
secs=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'fq'")" "2000/2000" "2,000 fetches through every 7th request failing: all completed (${secs} s)"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'fq' AND data->>'name' LIKE 'Enriched %'")" 2000 "every record was written onto its item"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'fq' AND kind = 'fetch_completed'")" 2000 "a fetch_completed event each"
ok $([[ $(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fq' AND attempts > 1") -gt 0 ]]; echo $?) "some fetches needed retries"
max=$(api GET /_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_in_flight"])')
cap=$(q "SHOW workqueue.http_max_concurrency")
ok $([[ $max -le $cap ]]; echo $?) "never more than workqueue.http_max_concurrency ($cap) requests in flight (saw $max)"

control '{"reset": true, "fail_first": 30, "fail_status": 429, "retry_after": 1}'
q "SELECT count(workqueue.enqueue_fetch(id)) FROM workqueue.item WHERE queue = 'fq' AND id % 20 = 0" >/dev/null
wait_fetches fq 60
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fq' AND status <> 'completed'")" 0 "429 with Retry-After on the first 30 requests: all complete"
control '{"reset": true}'

########################################################################
# every failure in its own state
q "SELECT workqueue.create_queue('ff');
   SELECT workqueue.create_source('ff500', 'ff', '$WQ_API/cases/ids', '$WQ_API/status/500?x={ids}', '{\"retries\": 2}');
   SELECT workqueue.create_source('ffslow', 'ff', '$WQ_API/cases/ids', '$WQ_API/slow?ms=2000&x={ids}', '{\"retries\": 0, \"timeout_ms\": 300}');
   SELECT workqueue.create_source('ffdown', 'ff', '$WQ_API/cases/ids', 'http://127.0.0.1:9/x?ids={ids}', '{\"retries\": 0}');
   SELECT workqueue.create_source('ffjson', 'ff', '$WQ_API/cases/ids', '$WQ_API/invalid-json?x={ids}', '{\"retries\": 0}');
   SELECT workqueue.create_source('ffbig', 'ff', '$WQ_API/cases/ids', '$WQ_API/big?bytes=300000&x={ids}', '{\"retries\": 0}');
   SELECT workqueue.create_source('ffnone', 'ff', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids=X{ids}', '{\"retries\": 0}');
   SELECT workqueue.create_source('ff429', 'ff', '$WQ_API/cases/ids', '$WQ_API/status/429?retry_after=60&x={ids}', '{\"retries\": 3}')" >/dev/null
item() { q "SELECT workqueue.add('ff', '{}', 3, '$1')"; }
f500=$(q "SELECT workqueue.enqueue_fetch($(item F-1), 'ff500')")
fslow=$(q "SELECT workqueue.enqueue_fetch($(item F-2), 'ffslow')")
fdown=$(q "SELECT workqueue.enqueue_fetch($(item F-3), 'ffdown')")
fjson=$(q "SELECT workqueue.enqueue_fetch($(item F-4), 'ffjson')")
fnone=$(q "SELECT workqueue.enqueue_fetch($(item F-6), 'ffnone')")
wait_fetches ff 30
is "$(fstatus $f500)" "failed|500|HTTP 500|3" "a permanent 500 fails after its retries, with the status"
is "$(q "SELECT payload->>'error' FROM workqueue.item_event WHERE kind = 'fetch_failed' AND payload->>'fetch' = '$f500'")" "HTTP 500" "... and a fetch_failed event"
is "$(fstatus $fslow)" "failed||timeout|1" "a slow endpoint fails as a timeout, never a success"
ok $([[ $(fstatus $fdown) == "failed||could not connect: "*"|1" ]]; echo $?) "a refused connection fails as could not connect ($(fstatus $fdown))"
is "$(fstatus $fjson)" "failed|200|invalid JSON|1" "a body that is not JSON fails as invalid JSON"
is "$(fstatus $fnone)" "failed|200|no usable record for \"F-6\" in the response|1" "a response without the item's record fails"
q "ALTER SYSTEM SET workqueue.http_max_response_bytes = '100kB'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 5 "a new session to see http_max_response_bytes = 100kB" q_is "SHOW workqueue.http_max_response_bytes" 100kB
wait_until 10 "the workers to reread the configuration" workers_reloaded
fbig=$(q "SELECT workqueue.enqueue_fetch($(item F-5), 'ffbig')")
wait_fetches ff 30
is "$(fstatus $fbig)" "failed|200|response too large|1" "a body over workqueue.http_max_response_bytes fails as response too large"
q "ALTER SYSTEM RESET workqueue.http_max_response_bytes" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

# idempotent enqueue, cancel, dead-letter retry
i7=$(item F-7)
a=$(q "SELECT workqueue.enqueue_fetch($i7, 'ff429')")
wait_until 5 "fetch $a to be tried once and queued again (429)" \
    q_is "SELECT attempts >= 1 AND status = 'queued' FROM workqueue.fetch WHERE id = $a" t
is "$(q "SELECT workqueue.enqueue_fetch($i7, 'ff429')")" "$a" "a second enqueue while one is queued returns it"
ok $([[ $(q "SELECT next_attempt_at > now() + interval '50 seconds' FROM workqueue.fetch WHERE id = $a") == t ]]; echo $?) "Retry-After: 60 is honoured"
is "$(q "SELECT status FROM workqueue.cancel_fetch($a)")" cancelled "cancel_fetch cancels a queued fetch"
is "$(qerr "SELECT workqueue.cancel_fetch($a)")" "fetch $a is cancelled, not queued" "... and refuses one that is not queued"
is "$(qerr "SELECT workqueue.cancel_fetch(-1)")" "fetch -1 does not exist" "... or does not exist"
is "$(qerr "SELECT workqueue.enqueue_fetch($(q "SELECT workqueue.add('ff', '{}')"), 'ff500')")" "item $(q "SELECT max(id) FROM workqueue.item") has no external id" "an item without external id cannot be fetched"
is "$(qerr "SELECT workqueue.enqueue_fetch($i7)")" "item $i7 has no source" "an item without source needs one named"
is "$(qerr "SELECT workqueue.enqueue_fetch(-5)")" "item -5 does not exist" "unknown item"
q "SELECT workqueue.alter_source('ff500', '{\"details_url\": \"$WQ_API/cases/details?ids={ids}\"}')" >/dev/null
is "$(q "SELECT workqueue.retry_fetches('ff500')")" 1 "retry_fetches re-queues the dead letters of a source"
wait_fetches ff 30
is "$(q "SELECT status FROM workqueue.fetch WHERE queue = 'ff' AND source = 'ff500' ORDER BY id DESC LIMIT 1")" failed "... which still use the URL they were queued with"

########################################################################
# leases run out without anyone calling claim
q "SELECT workqueue.create_queue('fl', lease_timeout => '1 second'); SELECT workqueue.add('fl')" >/dev/null
q "SELECT workqueue.claim('fl', 1, 'sleepy')" >/dev/null
# a 1-second lease: the worker must have expired it within 3 s
wait_until 3 "the worker to expire the 1-second lease of queue fl" \
    q_is "SELECT status || ' ' || coalesce(claimed_by, '-') FROM workqueue.item WHERE queue = 'fl'" "open -"
is "$(q "SELECT status || ' ' || coalesce(claimed_by, '-') FROM workqueue.item WHERE queue = 'fl'")" "open -" "the worker returns an expired claim to the queue"
is "$(q "SELECT actor || ' ' || (payload->>'claimed_by') FROM workqueue.item_event WHERE queue = 'fl' AND kind = 'lease_expired'")" "workqueue sleepy" "... with a lease_expired event"

########################################################################
# on_enter: a batch transition queues one fetch per item in its transaction
q "SELECT workqueue.define_workflow('enrich', '{\"steps\": [{\"name\": \"new\", \"start\": true}, {\"name\": \"enriching\"},
     {\"name\": \"done\", \"kind\": \"resolved\"}], \"transitions\": [{\"name\": \"go\", \"from\": \"new\", \"to\": \"enriching\"},
     {\"name\": \"finish\", \"from\": \"enriching\", \"to\": \"done\"}], \"on_enter\": {\"enriching\": {\"fetch\": \"fo\"}}}');
   SELECT workqueue.create_queue('fo', 'enrich');
   SELECT workqueue.create_source('fo', 'fo', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT count(workqueue.add('fo', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 50) g" >/dev/null
q "BEGIN; SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE queue = 'fo'), 'go'); ROLLBACK" >/dev/null
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fo'")" 0 "a rolled-back transition queues nothing"
q "SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE queue = 'fo'), 'go')" >/dev/null
wait_fetches fo 30
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'fo'")" "50/50" "transition_many into an on_enter step fetched all 50 items"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'fo' AND data ? 'severity'")" 50 "... and wrote their records"

########################################################################
# kill -9 and pg_terminate_backend of the fetch worker with fetches in flight
control '{"reset": true, "slow_ms": 300}'
q "SELECT workqueue.create_queue('fk');
   SELECT workqueue.create_source('fk', 'fk', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT count(workqueue.add('fk', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 200) g;
   SELECT count(workqueue.enqueue_fetch(id, 'fk')) FROM workqueue.item WHERE queue = 'fk'" >/dev/null
wait_until 10 "20 fetches of queue fk to complete" \
    q_ge "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fk' AND status = 'completed'" 20
pid=$(worker_pid fetch)
kill -9 "$pid"
wait_until 30 "a new fetch worker after the crash restart (kill -9 of $pid)" new_fetch_pid "$pid"
ok $([[ -n $(worker_pid fetch) && $(worker_pid fetch) != "$pid" ]]; echo $?) "after kill -9 a new fetch worker runs"
pid=$(worker_pid fetch)
q "SELECT pg_terminate_backend($pid)" >/dev/null
t0=$(date +%s)
wait_until 15 "a new fetch worker after pg_terminate_backend($pid)" new_fetch_pid "$pid"
ok $([[ -n $new && $new != "$pid" && $(( $(date +%s) - t0 )) -le 10 ]]; echo $?) "after pg_terminate_backend it is back within 10 s"
control '{"slow_ms": 0}'
wait_fetches fk 60
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'fk'")" "200/200" "no fetch lost: all 200 completed"
is "$(q "SELECT count(DISTINCT item_id) FROM workqueue.item_event WHERE queue = 'fk' AND kind = 'fetch_completed'")" 200 "every item got its record"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'fk' AND kind = 'synced' GROUP BY item_id ORDER BY 1 DESC LIMIT 1")" 1 "none written twice in effect (at most one synced event per item)"

########################################################################
# a backlog: never more than the cap in flight, memory flat
q "SELECT workqueue.create_queue('fb');
   SELECT workqueue.create_source('fb', 'fb', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT count(workqueue.add('fb', '{}', 3, format('C-%s', lpad(g::text, 4, '0')))) FROM generate_series(1, 2000) g" >/dev/null
pid=$(worker_pid fetch)
rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
api POST /_stats/reset >/dev/null
q "SELECT count(workqueue.enqueue_fetch(id, 'fb')) FROM workqueue.item WHERE queue = 'fb'" >/dev/null
maxseen=0
# backlog_drained: notes the worker's in_flight in maxseen; true once no fetch of fb is queued or processing
backlog_drained() {
    local f
    f=$(q "SELECT in_flight FROM workqueue.worker_status WHERE kind = 'fetch'")
    [[ -n $f && $f -gt $maxseen ]] && maxseen=$f
    q_is "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fb' AND status IN ('queued', 'processing')" 0
}
wait_until 60 "the 2,000-fetch backlog of queue fb to drain" backlog_drained
rss1=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE queue = 'fb' AND status = 'completed'")" 2000 "a 2,000-fetch backlog drains"
ok $([[ $maxseen -le $cap ]]; echo $?) "worker_status never showed more than $cap in flight (max $maxseen)"
ok $([[ $(api GET /_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_in_flight"])') -le $cap ]]; echo $?) "the server never saw more than $cap at once"
ok $([[ $(( rss1 - rss0 )) -lt 20000 ]]; echo $?) "the worker's memory stayed flat (RSS ${rss0} kB -> ${rss1} kB)"

finish
