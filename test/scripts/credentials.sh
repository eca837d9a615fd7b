#!/usr/bin/env bash
# Credentials stay home (issue 13.4, 13.5; doc/security.md, Credentials):
#  - a fetch uses only a source of the item's own queue (administrators and
#    workflow on_enter hooks excepted), and an item out of scope still
#    answers "item N does not exist";
#  - external ids ".", "..", "a/b" stay one path segment of the URL;
#  - a source's headers go only to the origins of its own URLs: a redirect
#    or a pagination link to another origin is refused, same-origin ones are
#    followed with the headers.
# Two loopback servers (test/credentials_server.py) on two ports, i.e. two
# origins, record the path and the secret headers of every request.
source "$(dirname "$0")/../lib.sh"
dir=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/wq-cred.XXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

start_server() {    # start_server NAME: sets PORT_<NAME>, log in $tmp/NAME.log
    python3 "$dir/credentials_server.py" --port-file "$tmp/$1.port" --log "$tmp/$1.log" &
    pids+=($!)
    wait_until -i 0.05 10 "server $1 to write its port" test -s "$tmp/$1.port"
    printf -v "PORT_$1" '%s' "$(cat "$tmp/$1.port")"
    touch "$tmp/$1.log"
}
start_server A
start_server B
A="http://127.0.0.1:$PORT_A"
B="http://127.0.0.1:$PORT_B"

# log_count NAME PYTHON-CONDITION: requests server NAME logged that match (r: the record)
log_count() {
    python3 - "$tmp/$1.log" "$2" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for r in rs if eval(sys.argv[2])))
PY
}
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

PLAIN_PW=wq-cred-$$
q "DROP ROLE IF EXISTS wq_cred_plain; CREATE ROLE wq_cred_plain LOGIN PASSWORD '$PLAIN_PW'" >/dev/null
as_plain() { PGPASSWORD=$PLAIN_PW PGUSER=wq_cred_plain "$@"; }
# err SQL: "SQLSTATE: message" of the error of SQL (as whoever PGUSER is)
err() {
    psql -XAtq -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$1" 2>&1 >/dev/null |
        sed -nE 's/^(psql:[^ ]* )?ERROR:  ([0-9A-Z]{5}): (.*)$/\2: \3/p' | head -1
}
# full_err SQL: message, detail and hint, one line
full_err() { psql -XAtq -v ON_ERROR_STOP=1 -v VERBOSITY=default -c "$1" 2>&1 >/dev/null | tr '\n' ' '; }
fstatus() { q "SELECT status || '|' || attempts || '|' || coalesce(error, '') FROM workqueue.fetch WHERE id = $1"; }
fetch_done() { [[ ! $(q "SELECT status FROM workqueue.fetch WHERE id = $1") =~ ^(queued|processing)$ ]]; }
wait_fetch() { wait_until 30 "fetch $1 to finish" fetch_done "$1"; }

HDR='{"headers": {"X-Api-Key": "SECRET-A", "Authorization": "Bearer TOKEN-A"}, "records_path": "$.records"}'
HDR_REC='{"headers": {"X-Api-Key": "SECRET-A", "Authorization": "Bearer TOKEN-A"}}'
HDR_OTHER='{"headers": {"X-Api-Key": "SECRET-O"}, "records_path": "$"}'

########################################################################
# 13.4: a fetch uses a source of the item's own queue
q "SELECT workqueue.define_workflow('cred_hook', '{\"steps\": [{\"name\": \"new\", \"start\": true}, {\"name\": \"enriching\"},
     {\"name\": \"done\", \"kind\": \"resolved\"}], \"transitions\": [{\"name\": \"go\", \"from\": \"new\", \"to\": \"enriching\"},
     {\"name\": \"finish\", \"from\": \"enriching\", \"to\": \"done\"}], \"on_enter\": {\"enriching\": {\"fetch\": \"cred_other\"}}}');
   SELECT workqueue.create_queue('cred_own');
   SELECT workqueue.create_queue('cred_other');
   SELECT workqueue.create_queue('cred_hook', 'cred_hook');
   SELECT workqueue.create_source('cred_own', 'cred_own', '$A/page', '$A/rec/{ids}', '{\"headers\": {\"X-Api-Key\": \"SECRET-OWN\"}}');
   SELECT workqueue.create_source('cred_other', 'cred_other', '$A/page', '$A/rec/{ids}', '$HDR_OTHER')" >/dev/null
own=$(q "SELECT workqueue.add('cred_own', '{}', 3, 'O-1')")
own2=$(q "SELECT workqueue.add('cred_own', '{}', 3, 'O-2')")
hidden=$(q "SELECT workqueue.add('cred_own', '{}', 3, 'O-HIDDEN')")
q "SELECT workqueue.set_scope(ARRAY[$hidden]::bigint[], '{cred_secret}')" >/dev/null
# an item labelled (by upsert_items, which anyone may call) with another queue's source
q "SELECT workqueue.upsert_items('cred_own', '[{\"external_id\": \"O-LABEL\"}]', 'cred_other')" >/dev/null
labelled=$(q "SELECT id FROM workqueue.item WHERE queue = 'cred_own' AND external_id = 'O-LABEL'")
is "$(q "SELECT source FROM workqueue.item WHERE id = $labelled")" "cred_other" "upsert_items can label an item with another queue's source"

is "$(as_plain err "SELECT workqueue.enqueue_fetch($own, 'cred_other')")" \
   "42501: permission denied to fetch item $own from source \"cred_other\"" \
   "a plain role cannot fetch its queue's item through another queue's source (42501)"
ok $([[ $(as_plain full_err "SELECT workqueue.enqueue_fetch($own, 'cred_other')") == *"DETAIL:  Source \"cred_other\" belongs to queue \"cred_other\"; item $own is in queue \"cred_own\"."*"HINT:  Fetch from a source of queue \"cred_own\""* ]]; echo $?) \
   "... the detail names the source's queue and the item's, the hint the remedy"
is "$(as_plain err "SELECT workqueue.enqueue_fetch($labelled)")" \
   "42501: permission denied to fetch item $labelled from source \"cred_other\"" \
   "... nor through the item's own source column when that names another queue's source"
is "$(q "SELECT count(*) FROM workqueue.fetch WHERE item_id IN ($own, $labelled)")" 0 "... no fetch was queued"
is "$(as_plain err "SELECT workqueue.enqueue_fetch($hidden, 'cred_other')")" \
   "42704: item $hidden does not exist" "an item out of the plain role's scopes: 'does not exist', not the queue check"
is "$(as_plain err "SELECT workqueue.enqueue_fetch(-77, 'cred_other')")" \
   "42704: item -77 does not exist" "... exactly as an item that does not exist"
is "$(as_plain err "SELECT workqueue.enqueue_fetch($own, 'cred_nope')")" \
   "42704: source \"cred_nope\" does not exist" "an unknown source is still 42704"
is "$(as_plain err "SELECT workqueue._enqueue_fetch($own, 'cred_other', true)")" \
   "42501: permission denied for function _enqueue_fetch" "a plain role cannot call the internal _enqueue_fetch"

f=$(as_plain q "SELECT workqueue.enqueue_fetch($own, 'cred_own')")
wait_fetch "$f"
is "$(fstatus "$f")" "completed|1|" "a plain role fetches through its queue's own source"
is "$(log_count A "r['path'] == '/rec/O-1' and r['x_api_key'] == 'SECRET-OWN'")" 1 "... which sent that source's header"

f=$(q "SELECT workqueue.enqueue_fetch($own2, 'cred_other')")
wait_fetch "$f"
is "$(fstatus "$f")" "completed|1|" "an administrator may fetch through another queue's source"
is "$(log_count A "r['path'] == '/rec/O-2' and r['x_api_key'] == 'SECRET-O'")" 1 "... with that source's header"

# on_enter: an administrator's workflow names cred_other for queue cred_hook; a plain role's transition runs it
hook=$(q "SELECT workqueue.add('cred_hook', '{}', 3, 'H-1')")
claimed=$(as_plain q "SELECT count(*) FROM workqueue.claim('cred_hook', 1)")
is "$claimed" 1 "a plain role claims an item of the hook's queue"
is "$(as_plain q "SELECT step FROM workqueue.transition($hook, 'go')")" "enriching" \
   "... and moves it into the on_enter step (the hook names another queue's source)"
f=$(q "SELECT id FROM workqueue.fetch WHERE queue = 'cred_hook' AND item_id = $hook")
is "$(q "SELECT source || '|' || requested_by FROM workqueue.fetch WHERE id = ${f:-0}")" "cred_other|wq_cred_plain" \
   "... the hook queued its fetch from the administrator's chosen source"
wait_fetch "${f:-0}"
is "$(fstatus "${f:-0}")" "completed|1|" "... which completes"

########################################################################
# 13.4: dot-segment ids stay one path segment
q "SELECT workqueue.create_queue('cred_dot');
   SELECT workqueue.create_source('cred_dot', 'cred_dot', '$A/page', '$A/rec/{ids}', '{\"headers\": {\"X-Api-Key\": \"SECRET-DOT\"}}')" >/dev/null
# external id -> the one segment expected
declare -A seg=([.]=%2E [..]=%2E%2E [a/b]=a%2Fb ['x?y#z']=x%3Fy%23z [%2E%2E]=%252E%252E ['a\b']=a%5Cb [a.b]=a.b)
for id in . .. a/b 'x?y#z' %2E%2E 'a\b' a.b; do
    i=$(q "SELECT workqueue.add('cred_dot', '{}', 3, \$\$$id\$\$)")
    f=$(q "SELECT workqueue.enqueue_fetch($i, 'cred_dot')")
    e=${seg[$id]}
    is "$(q "SELECT url FROM workqueue.fetch WHERE id = $f")" "$A/rec/$e" "external id '$id': the fetch URL has it as one segment ($e)"
    wait_fetch "$f"
    is "$(fstatus "$f")|$(log_count A "r['path'] == '/rec/$e'")" "completed|1||1" \
       "... the server received exactly /rec/$e and the fetch completed"
done
is "$(log_count A "r['path'] in ('/', '/rec/', '/rec', '/b', '/rec/a/b')")" 0 "no request ever reached a normalized path"

# sync details (GET, {ids} in the path), one id a request
q "SELECT workqueue.create_queue('cred_dots');
   SELECT workqueue.create_source('cred_dots', 'cred_dots', '$A/page?ids=' || workqueue._url_encode('.,..,a/b'), '$A/rec/{ids}',
          '{\"headers\": {\"X-Api-Key\": \"SECRET-DOTS\"}, \"ids_path\": \"\$.records[*].id\", \"batch_size\": 1}')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_dots')")
is "$(wait_run "$r")" "completed|" "a sync with details of ids '.', '..', 'a/b' completes"
is "$(q "SELECT string_agg(external_id, ' ' ORDER BY external_id) FROM workqueue.item WHERE queue = 'cred_dots'")" ". .. a/b" \
   "... all three items were fetched"
is "$(log_count A "r['path'] in ('/rec/%2E', '/rec/%2E%2E', '/rec/a%2Fb') and r['x_api_key'] == 'SECRET-DOTS'")" 3 \
   "... each as one path segment"

########################################################################
# 13.5a: redirects
q "SELECT workqueue.create_queue('cred_redir');
   SELECT workqueue.create_source('cred_cross', 'cred_redir', '$A/page', '$A/redirect/$PORT_B/rec/{ids}', '$HDR_REC');
   SELECT workqueue.create_source('cred_same', 'cred_redir', '$A/page', '$A/redirect/$PORT_A/rec/{ids}', '$HDR_REC');
   SELECT workqueue.create_source('cred_bare', 'cred_redir', '$A/page', '$A/redirect/$PORT_B/rec/{ids}', '{}')" >/dev/null
i=$(q "SELECT workqueue.add('cred_redir', '{}', 3, 'R-1')")
f=$(q "SELECT workqueue.enqueue_fetch($i, 'cred_cross')")
wait_fetch "$f"
is "$(fstatus "$f")" "failed|1|redirect to another origin refused: $B/rec/R-1 is not an origin of source \"cred_cross\"" \
   "a fetch redirected to another origin fails at once, with the refusal as its error"
is "$(q "SELECT payload->>'error' FROM workqueue.item_event WHERE kind = 'fetch_failed' AND (payload->>'fetch')::bigint = $f")" \
   "redirect to another origin refused: $B/rec/R-1 is not an origin of source \"cred_cross\"" "... and its fetch_failed event says so"
is "$(log_count A "r['path'] == '/redirect/$PORT_B/rec/R-1' and r['x_api_key'] == 'SECRET-A'")" 1 "... the source's own origin got the request"
is "$(log_count B "True")" 0 "... the other origin never got a request (nor the secret)"

f=$(q "SELECT workqueue.enqueue_fetch($i, 'cred_same')")
wait_fetch "$f"
is "$(fstatus "$f")" "completed|1|" "a same-origin redirect is followed"
is "$(log_count A "r['path'] == '/rec/R-1' and r['x_api_key'] == 'SECRET-A' and r['authorization'] == 'Bearer TOKEN-A'")" 1 \
   "... with the source's headers"

f=$(q "SELECT workqueue.enqueue_fetch($i, 'cred_bare')")
wait_fetch "$f"
is "$(fstatus "$f")" "completed|1|" "a source without headers follows a redirect to another origin"
is "$(log_count B "r['path'] == '/rec/R-1' and r['x_api_key'] is None and r['authorization'] is None")|$(log_count B "r['x_api_key'] is not None or r['authorization'] is not None")" \
   "1|0" "... which got no secret header"

# a sync listing redirected elsewhere
q "SELECT workqueue.create_queue('cred_lr');
   SELECT workqueue.create_source('cred_lr', 'cred_lr', '$A/redirect/$PORT_B/page?ids=L-1', NULL, '$HDR')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_lr')")
is "$(wait_run "$r")" "failed|listing request failed: redirect to another origin refused: $B/page?ids=L-1 is not an origin of source \"cred_lr\"" \
   "a sync whose listing redirects to another origin fails, with the refusal in the run's error"
is "$(log_count A "r['path'].startswith('/redirect/$PORT_B/page')")" "1" \
   "... after one request (a refusal is not retried)"
is "$(log_count B "r['path'].startswith('/page')")" 0 "... and the other origin got nothing"

########################################################################
# 13.5b: pagination links
q "SELECT workqueue.create_queue('cred_pg');
   SELECT workqueue.create_source('cred_pg', 'cred_pg', '$A/page?ids=P-1,P-2,P-3', NULL,
          '{\"headers\": {\"X-Api-Key\": \"SECRET-A\"}, \"records_path\": \"\$.records\", \"pagination\": {\"next_url_path\": \"\$.next\"}}')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_pg', \"full\" => true)")
is "$(wait_run "$r")|$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cred_pg' AND status = 'open'")" "completed||3" "a listing loads three items"

# same origin: followed, with the headers
q "SELECT workqueue.alter_source('cred_pg', '{\"ids_url\": \"$A/page?ids=P-1&next=$(enc "$A/page?ids=P-2,P-3")\"}')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_pg', \"full\" => true)")
is "$(wait_run "$r")|$(q "SELECT pages FROM workqueue.sync_run WHERE id = $r")" "completed||2" "a same-origin next link is followed"
is "$(log_count A "r['path'] == '/page?ids=P-2,P-3' and r['x_api_key'] == 'SECRET-A'")" 1 "... with the headers"

# another origin, next_url_path
q "SELECT workqueue.alter_source('cred_pg', '{\"ids_url\": \"$A/page?ids=P-1&next=$(enc "$B/page?ids=P-2,P-3")\"}')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_pg', \"full\" => true)")
is "$(wait_run "$r")" "failed|next page link to another origin refused: $B/page?ids=P-2,P-3 is not an origin of source \"cred_pg\"" \
   "a next link (body path) to another origin fails the full run"
is "$(q "SELECT closed || '/' || (SELECT count(*) FROM workqueue.item WHERE queue = 'cred_pg' AND status = 'open') FROM workqueue.sync_run WHERE id = $r")" \
   "0/3" "... and closes nothing"

# another origin, Link header (relative links resolve against the page: same origin)
q "SELECT workqueue.alter_source('cred_pg', '{\"ids_url\": \"$A/page?ids=P-1&link=$(enc "$B/page?ids=P-2")\",
     \"pagination\": {\"link_header\": true}}')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_pg', \"full\" => true)")
is "$(wait_run "$r")" "failed|next page link to another origin refused: $B/page?ids=P-2 is not an origin of source \"cred_pg\"" \
   "a Link rel=next header to another origin fails the full run"
is "$(q "SELECT closed || '/' || (SELECT count(*) FROM workqueue.item WHERE queue = 'cred_pg' AND status = 'open') FROM workqueue.sync_run WHERE id = $r")" \
   "0/3" "... and closes nothing"
is "$(log_count B "r['path'].startswith('/page')")" 0 "the other origin never got a listing request, nor a header"

# a source without headers follows a next link anywhere
q "SELECT workqueue.create_queue('cred_pgb');
   SELECT workqueue.create_source('cred_pgb', 'cred_pgb', '$A/page?ids=Q-1&next=$(enc "$B/page?ids=Q-2")', NULL,
          '{\"records_path\": \"\$.records\", \"pagination\": {\"next_url_path\": \"\$.next\"}}')" >/dev/null
r=$(q "SELECT workqueue.sync('cred_pgb', \"full\" => true)")
is "$(wait_run "$r")|$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cred_pgb'")" "completed||2" \
   "a source without headers follows a next link to another origin"

q "DROP OWNED BY wq_cred_plain; DROP ROLE wq_cred_plain" >/dev/null 2>&1 || true
finish
