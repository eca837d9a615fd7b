#!/usr/bin/env bash
# workqueue.allowed_hosts (SPEC §8): a superuser-only list of host names and
# CIDR ranges that sync requests and fetches may reach, checked before every
# connection and after every redirect.  Against the sample API on
# 127.0.0.1; 127.0.0.2 (loopback, nothing listens there) stands for a host
# that is not allowed.  The setting is reset at the end, also on failure.
source "$(dirname "$0")/../lib.sh"
api_start
port=${WQ_API##*:}
LOCAL="http://localhost:$port"

reset_hosts() {
    psql -XAtq -c "ALTER SYSTEM RESET workqueue.allowed_hosts" -c "SELECT pg_reload_conf()" >/dev/null
}
trap 'reset_hosts; [[ -n ${T_API_PID:-} ]] && kill $T_API_PID 2>/dev/null' EXIT

# set_hosts VALUE: ALTER SYSTEM + reload, then wait until a new session sees
# it and the workers have taken the SIGHUP
set_hosts() {
    psql -XAtq -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET workqueue.allowed_hosts = '$1'" \
        -c "SELECT pg_reload_conf()" >/dev/null || return 1
    hosts_reloaded "$1"
}
# hosts_reloaded VALUE: until a new session sees VALUE and both workers have reread the configuration
hosts_reloaded() {
    wait_until 5 "a new session to see workqueue.allowed_hosts = '$1'" q_is "SHOW workqueue.allowed_hosts" "$1"
    wait_until 10 "the workers to reread the configuration" workers_reloaded
}

# a plain login role
PLAIN_PW=wq-plain-$$
q "DROP ROLE IF EXISTS wq_plain; CREATE ROLE wq_plain LOGIN PASSWORD '$PLAIN_PW'" >/dev/null
plain_err() { PGPASSWORD=$PLAIN_PW PGUSER=wq_plain qerr "$1"; }

# full_err SQL: message, detail and hint of the error of SQL, one line
full_err() {
    psql -XAtq -v ON_ERROR_STOP=1 -v VERBOSITY=default -c "$1" 2>&1 >/dev/null | tr '\n' ' '
}

fstatus() { q "SELECT status || '|' || attempts || '|' || coalesce(error, '') FROM workqueue.fetch WHERE id = $1"; }
wait_fetch() {     # wait_fetch ID: until it is no longer queued or processing
    wait_until 30 "fetch $1 to finish" fetch_done "$1"
}
fetch_done() { [[ ! $(q "SELECT status FROM workqueue.fetch WHERE id = $1") =~ ^(queued|processing)$ ]]; }
requests() {       # requests ENDPOINT: how many the API received since the last /_stats/reset
    api GET /_stats | python3 -c "import json,sys; print(json.load(sys.stdin)['by_endpoint'].get('$1', 0))"
}
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

########################################################################
# the setting itself
is "$(q "SHOW workqueue.allowed_hosts")" "" "empty by default (no restriction)"
is "$(q "SELECT context FROM pg_settings WHERE name = 'workqueue.allowed_hosts'")" "superuser" "context superuser (PGC_SUSET)"
is "$(plain_err "SET workqueue.allowed_hosts = '10.0.0.0/8'")" \
   'permission denied to set parameter "workqueue.allowed_hosts"' "a plain role cannot SET it"
ok $([[ $(plain_err "ALTER SYSTEM SET workqueue.allowed_hosts = ''") == *"permission denied"* ]]; echo $?) \
   "a plain role cannot ALTER SYSTEM SET it"

is "$(q "SET workqueue.allowed_hosts = '127.0.0.1/32, api.example.com, 10.0.0.0/8, ::1/128'; SHOW workqueue.allowed_hosts")" \
   "127.0.0.1/32, api.example.com, 10.0.0.0/8, ::1/128" "a list of names and IPv4/IPv6 ranges is accepted"
is "$(q "SET workqueue.allowed_hosts = ' API.Example.COM. , 192.168.1.7 , [::1], fe80::/10, 0.0.0.0/0 '; SELECT 1")" 1 \
   "names in any case with a trailing dot, bare addresses, bracketed IPv6, /0 are accepted"
is "$(qerr "SET workqueue.allowed_hosts = '10.0.0.0/33'")" \
   'invalid value for parameter "workqueue.allowed_hosts": "10.0.0.0/33"' "a prefix longer than 32 is rejected"
ok $([[ $(full_err "SET workqueue.allowed_hosts = '127.0.0.1/32, 10.0.0.0/33'") == *'DETAIL:  "10.0.0.0/33" is not a valid CIDR range: the prefix length of an IPv4 address is 0 to 32.'* ]]; echo $?) \
   "... with a detail saying why"
ok $([[ $(full_err "SET workqueue.allowed_hosts = '10.0.0.1/8'") == *'bits set to the right of the mask.'*'HINT:  Write "10.0.0.0/8".'* ]]; echo $?) \
   "host bits right of the mask are rejected, with the network as hint"
ok $([[ $(full_err "SET workqueue.allowed_hosts = '::1/129'") == *'prefix length of an IPv6 address is 0 to 128'* ]]; echo $?) \
   "an IPv6 prefix longer than 128 is rejected"
ok $([[ $(full_err "SET workqueue.allowed_hosts = '10.0.0.x/8'") == *'"10.0.0.x" is not an IPv4 or IPv6 address'* ]]; echo $?) \
   "a range whose address is not one is rejected"
for bad in '10.0.0.0/' '10.0.0.0/8x' '300.1.1.1' 'api example.com' '*.example.com' 'a,,b' 'a,' 'http://a.example' '2001:db8::g'; do
    ok $([[ $(qerr "SET workqueue.allowed_hosts = '$bad'") == 'invalid value for parameter "workqueue.allowed_hosts"'* ]]; echo $?) \
       "\"$bad\" is rejected"
done
ok $([[ $(full_err "SET workqueue.allowed_hosts = '*.example.com'") == *'Wildcards are not supported'* ]]; echo $?) \
   "a wildcard gets a hint"
ok $([[ $(qerr "ALTER SYSTEM SET workqueue.allowed_hosts = '10.0.0.0/33'") == 'invalid value for parameter'* ]]; echo $?) \
   "ALTER SYSTEM rejects a malformed range too"
is "$(q "SELECT count(*) FROM pg_file_settings WHERE name = 'workqueue.allowed_hosts'")" 0 "... and writes nothing"

########################################################################
# a source at 127.0.0.1, loaded while nothing is restricted
control '{"reset": true}'
q "SELECT workqueue.create_queue('ah');
   SELECT workqueue.create_queue('ahl');
   SELECT workqueue.create_source('ah', 'ah', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
          '{\"retries\": 3}');
   SELECT workqueue.create_source('ah_local', 'ahl', '$LOCAL/cases/ids', '$LOCAL/cases/details?ids={ids}',
          '{\"retries\": 3}')" >/dev/null
r=$(q "SELECT workqueue.sync('ah')")
is "$(wait_run $r)|$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'ah' AND status = 'open'")" "completed||250" \
   "unrestricted: a sync loads 250 items"
f=$(q "SELECT workqueue.enqueue_fetch(id) FROM workqueue.item WHERE queue = 'ah' AND external_id = 'C-0001'")
wait_fetch $f
is "$(fstatus $f)" "completed|1|" "unrestricted: a fetch completes (and leaves a kept-alive connection in the fetch worker)"

########################################################################
# a list that excludes 127.0.0.1
set_hosts '10.0.0.0/8'
control '{"open": ["C-0001", "C-0002", "C-0003"]}'   # a full sync would now close 247
api POST /_stats/reset >/dev/null
r=$(q "SELECT workqueue.sync('ah', \"full\" => true)")
res=$(wait_run $r)
is "$res" 'failed|listing request failed: host "127.0.0.1" (address 127.0.0.1) is not in workqueue.allowed_hosts' \
   "10.0.0.0/8: a full sync fails with the host and address in the error"
is "$(q "SELECT closed || '/' || (SELECT count(*) FROM workqueue.item WHERE queue = 'ah' AND status = 'open') FROM workqueue.sync_run WHERE id = $r")" \
   "0/250" "... and closes nothing"
is "$(requests /cases/ids)" 0 "... the listing request was never sent"

f=$(q "SELECT workqueue.enqueue_fetch(id) FROM workqueue.item WHERE queue = 'ah' AND external_id = 'C-0002'")
wait_fetch $f
is "$(fstatus $f)" 'failed|1|host "127.0.0.1" (address 127.0.0.1) is not in workqueue.allowed_hosts' \
   "a fetch fails with the error after 1 attempt (of 4): a refusal is not retried, not even on a reused connection"
is "$(q "SELECT payload->>'error' FROM workqueue.item_event WHERE kind = 'fetch_failed' AND (payload->>'fetch')::bigint = $f")" \
   'host "127.0.0.1" (address 127.0.0.1) is not in workqueue.allowed_hosts' "... and its fetch_failed event says so"
is "$(requests /cases/details)" 0 "... no details request reached the API"

# a name matches the URL's host, not the address it resolves to
set_hosts 'localhost'
r=$(q "SELECT workqueue.sync('ah')")
is "$(wait_run $r)" 'failed|listing request failed: host "127.0.0.1" (address 127.0.0.1) is not in workqueue.allowed_hosts' \
   "the name localhost does not allow a URL with host 127.0.0.1"
r=$(q "SELECT workqueue.sync('ah_local')")
is "$(wait_run $r)" "completed|" "the name localhost allows a URL with host localhost"
set_hosts 'LocalHost'
r=$(q "SELECT workqueue.sync('ah_local')")
is "$(wait_run $r)" "completed|" "names match in any case"

########################################################################
# the allowing forms
control '{"reset": true}'
for allow in '127.0.0.1/32' '127.0.0.1' '10.0.0.0/8, 127.0.0.0/8' '::1/128, 127.0.0.1/32'; do
    set_hosts "$allow"
    r=$(q "SELECT workqueue.sync('ah')")
    is "$(wait_run $r)" "completed|" "'$allow' allows 127.0.0.1"
done
set_hosts '127.0.0.1/32'
control '{"open": ["C-0001", "C-0002", "C-0003"]}'
r=$(q "SELECT workqueue.sync('ah', \"full\" => true)")
is "$(wait_run $r)|$(q "SELECT closed FROM workqueue.sync_run WHERE id = $r")" "completed||247" \
   "127.0.0.1/32: the same full sync completes and closes the 247 vanished items"
f=$(q "SELECT workqueue.enqueue_fetch(id) FROM workqueue.item WHERE queue = 'ah' AND external_id = 'C-0003'")
wait_fetch $f
is "$(fstatus $f)" "completed|1|" "127.0.0.1/32: a fetch completes"
# localhost may also resolve to ::1: that address is refused, 127.0.0.1 used
r=$(q "SELECT workqueue.sync('ah_local')")
is "$(wait_run $r)" "completed|" "127.0.0.1/32: a URL with host localhost connects to its allowed address"
control '{"reset": true}'

########################################################################
# redirects
to2=$(enc "http://127.0.0.2:$port/cases/ids")
to1=$(enc "$WQ_API/cases/ids")
q "SELECT workqueue.create_queue('ahr');
   SELECT workqueue.create_source('ah_redir2', 'ahr', '$WQ_API/redirect?to=$to2', '$WQ_API/cases/details?ids={ids}',
          '{\"retries\": 3}');
   SELECT workqueue.create_source('ah_redir1', 'ahr', '$LOCAL/redirect?to=$to1', '$WQ_API/cases/details?ids={ids}',
          '{\"retries\": 3}');
   SELECT workqueue.create_source('ah_fredir', 'ah', '$WQ_API/cases/ids',
          '$WQ_API/redirect?to=' || workqueue._url_encode('http://127.0.0.2:$port/cases/details?ids=') || '{ids}',
          '{\"retries\": 3}')" >/dev/null
api POST /_stats/reset >/dev/null
r=$(q "SELECT workqueue.sync('ah_redir2')")
is "$(wait_run $r)" 'failed|listing request failed: host "127.0.0.2" (address 127.0.0.2) is not in workqueue.allowed_hosts' \
   "127.0.0.1/32: a redirect to 127.0.0.2 is refused"
is "$(requests /redirect)" 1 "... after the allowed first request, once (not retried)"
f=$(q "SELECT workqueue.enqueue_fetch(id, 'ah_fredir') FROM workqueue.item WHERE queue = 'ah' AND external_id = 'C-0001'")
wait_fetch $f
is "$(fstatus $f)" 'failed|1|host "127.0.0.2" (address 127.0.0.2) is not in workqueue.allowed_hosts' \
   "127.0.0.1/32: a fetch redirected to 127.0.0.2 fails after 1 attempt"

set_hosts '127.0.0.0/8'
r=$(q "SELECT workqueue.sync('ah_redir2')")
res=$(wait_run $r)
ok $([[ $res == "failed|listing request failed: could not connect"* ]]; echo $?) \
   "127.0.0.0/8: the same redirect is followed (and finds nothing listening on 127.0.0.2: $res)"

set_hosts 'localhost'
r=$(q "SELECT workqueue.sync('ah_redir1')")
is "$(wait_run $r)" 'failed|listing request failed: host "127.0.0.1" (address 127.0.0.1) is not in workqueue.allowed_hosts' \
   "localhost: a redirect from localhost to 127.0.0.1 is refused"
set_hosts 'localhost, 127.0.0.1'
r=$(q "SELECT workqueue.sync('ah_redir1')")
is "$(wait_run $r)" "completed|" "localhost, 127.0.0.1: the same redirect is followed"

########################################################################
# back to no restriction
reset_hosts
hosts_reloaded ""
is "$(q "SHOW workqueue.allowed_hosts")" "" "ALTER SYSTEM RESET + reload: empty again"
r=$(q "SELECT workqueue.sync('ah')")
is "$(wait_run $r)" "completed|" "... and syncs reach 127.0.0.1 again"
q "DROP ROLE wq_plain" >/dev/null
finish
