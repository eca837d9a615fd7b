# Shared helpers of the script tests: TAP-like "ok N - ..." lines, a final
# "N passed, M failed" line, psql shortcuts, the sample API, waiting
# (wait_until) and the extension's workers (worker_type, worker_pid).
# Source it; it expects PG* variables for the target cluster.
set -uo pipefail
T_N=0
T_FAILED=0

ok() {      # ok CONDITION-EXIT-STATUS DESCRIPTION
    T_N=$((T_N + 1))
    if [[ $1 == 0 ]]; then echo "ok $T_N - $2"; else echo "not ok $T_N - $2"; T_FAILED=$((T_FAILED + 1)); fi
}

is() {      # is ACTUAL EXPECTED DESCRIPTION
    T_N=$((T_N + 1))
    if [[ "$1" == "$2" ]]; then
        echo "ok $T_N - $3"
    else
        echo "not ok $T_N - $3"
        echo "#   got:      $1"
        echo "#   expected: $2"
        T_FAILED=$((T_FAILED + 1))
    fi
}

finish() {
    echo "$((T_N - T_FAILED)) passed, $T_FAILED failed"
    [[ $T_FAILED == 0 ]]
}

q() {       # q SQL: one value (or rows separated by newlines), errors to stderr
    psql -XAtq -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "$1"
}

qerr() {    # qerr SQL: the error message of SQL ("" if none)
    psql -XAtq -v ON_ERROR_STOP=1 -v VERBOSITY=terse -c "$1" 2>&1 >/dev/null | sed -E 's/^(psql:[^ ]* )?ERROR:  //' | head -1
}

# The sample API: reuse WQ_API if the runner started one, else start our own.
api_start() {
    if [[ -n ${WQ_API:-} ]]; then return; fi
    local dir port_file
    dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    port_file=$(mktemp)
    python3 "$dir/sample_api.py" --port 0 --port-file "$port_file" >/dev/null &
    T_API_PID=$!
    wait_until -i 0.05 10 "the sample API to write its port to $port_file" test -s "$port_file"
    WQ_API="http://127.0.0.1:$(cat "$port_file")"
    rm -f "$port_file"
    trap 'kill $T_API_PID 2>/dev/null' EXIT
}

api() {     # api METHOD PATH [JSON]: prints the response body
    python3 - "$WQ_API" "$1" "$2" "${3:-}" <<'PY'
import sys, urllib.request
base, method, path, body = sys.argv[1:5]
req = urllib.request.Request(base + path, data=body.encode() if body else None, method=method,
                             headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode())
PY
}

control() { api POST /_control "$1" >/dev/null; }

# wait_run RUN [TIMEOUT]: waits for a sync run; prints "status|error"
wait_run() {
    q "SELECT status || '|' || coalesce(error, '') FROM workqueue.wait($1, '${2:-60 seconds}')"
}

########################################################################
# Waiting: one helper for every "until something holds" of the tests.
#
# wait_until [-i INTERVAL] SECONDS WHAT COMMAND [ARG...]
#   Runs COMMAND ARG... (a command or shell function: exit status 0 means
#   the condition holds) every INTERVAL seconds (default 0.1) until it holds,
#   then returns 0; after SECONDS (wall clock; decimals allowed) it prints
#   "# timed out after SECONDSs waiting for: WHAT" to stderr and returns 1.
#   COMMAND runs in the current shell, so a function may set variables for
#   the caller (the pid it found, say).  Conditions on one query: q_is,
#   q_ge, q_any; quiet hides their errors while the server restarts.
wait_until() {
    local interval=0.1 seconds what int frac deadline
    if [[ $1 == -i ]]; then interval=$2; shift 2; fi
    seconds=$1 what=$2
    shift 2
    int=${seconds%%.*} frac=000000
    [[ $seconds == *.* ]] && frac=${seconds#*.}000000
    deadline=$(( ${EPOCHREALTIME//[!0-9]/} + 10#${int:-0} * 1000000 + 10#${frac:0:6} ))
    while :; do
        if "$@"; then return 0; fi
        if [[ ${EPOCHREALTIME//[!0-9]/} -ge $deadline ]]; then
            echo "# timed out after ${seconds}s waiting for: $what" >&2
            return 1
        fi
        sleep "$interval"
    done
}
q_is() { [[ $(q "$1") == "$2" ]]; }         # q_is SQL VALUE: SQL's value is VALUE
q_ge() { [[ $(q "$1") -ge $2 ]]; }          # q_ge SQL N: SQL's value is a number >= N
q_any() { [[ -n $(q "$1") ]]; }             # q_any SQL: SQL returns a non-empty value
quiet() { "$@" 2>/dev/null; }               # quiet COMMAND...: without its stderr

########################################################################
# The extension's processes.  KIND is fetch, sync or launcher; their
# backend_type in pg_stat_activity is spelled here and nowhere else.
worker_type() {     # worker_type KIND: prints the backend_type of that kind
    case ${1:-} in
    fetch) echo 'workqueue fetch worker' ;;
    sync) echo 'workqueue sync worker' ;;
    announce) echo 'workqueue announce worker' ;;
    launcher) echo 'workqueue launcher' ;;
    *) echo "worker_type: unknown kind '${1:-}' (fetch, sync, announce or launcher)" >&2; return 1 ;;
    esac
}

worker_types_sql() {    # worker_types_sql [KIND...]: the backend types, quoted for an SQL IN (...) list (default: all kinds)
    local kind list=""
    [[ $# -gt 0 ]] || set -- fetch sync announce launcher
    for kind in "$@"; do list+="${list:+, }'$(worker_type "$kind")'"; done
    echo "$list"
}

worker_kind_sql() {     # worker_kind_sql [COLUMN]: SQL naming the kind of a backend type (NULL for other backends)
    echo "CASE ${1:-backend_type} WHEN '$(worker_type fetch)' THEN 'fetch' WHEN '$(worker_type sync)' THEN 'sync'" \
         "WHEN '$(worker_type announce)' THEN 'announce' WHEN '$(worker_type launcher)' THEN 'launcher' END"
}

# worker_pid [KIND]: the pid of the worker of that kind (default fetch) of
# the current database -- the launcher's serves the whole cluster; empty
# while none runs
worker_pid() {
    local kind=${1:-fetch} type
    type=$(worker_type "$kind") || return 1
    if [[ $kind == launcher ]]; then
        q "SELECT pid FROM pg_stat_activity WHERE backend_type = '$type'"
    else
        q "SELECT pid FROM pg_stat_activity WHERE backend_type = '$type' AND datname = current_database()"
    fi
}

worker_running() { [[ -n $(worker_pid "$@") ]]; }     # worker_running [KIND]: worker_pid prints a pid

# workers_running [OLD-PID...]: a fetch, a sync and an announce worker serve
# the current database, none of them one of OLD-PID (quiet: false while the server
# restarts; pg_catalog.count as hostile_conditions.sh shadows count(text))
workers_running() {
    local old
    old=$(IFS=,; echo "${*:-0}")
    [[ $(q "SELECT pg_catalog.count(DISTINCT backend_type) FROM pg_stat_activity
             WHERE backend_type IN ($(worker_types_sql fetch sync announce)) AND datname = current_database()
               AND pid NOT IN ($old)" 2>/dev/null) == 3 ]]
}

# wait_workers [SECONDS [OLD-PID...]]: until workers_running OLD-PID...
# (default 20 s)
wait_workers() {
    local seconds=${1:-20}
    shift $(( $# > 0 ))
    wait_until "$seconds" "a fetch, a sync and an announce worker of this database${*:+ other than pids $*}" workers_running "$@"
}

# wait_fetches QUEUE [SECONDS]: until no fetch of the queue is queued or
# processing (default 60 s)
wait_fetches() {
    wait_until "${2:-60}" "the fetches of queue $1 to finish" \
        quiet q_is "SELECT count(*) FROM workqueue.fetch WHERE queue = '$1' AND status IN ('queued', 'processing')" 0
}

# workers_reloaded: the workers of the current database have published a
# loop turn (worker_status.last_loop_at) since the postmaster last read the
# configuration files -- a new session's pg_conf_load_time() is the
# postmaster's; the SIGHUP it sent then wakes the workers, and their turn
# begins by rereading the files
workers_reloaded() {
    q_is "SELECT count(*) FROM workqueue.worker_status WHERE last_loop_at > pg_conf_load_time()" 3
}

########################################################################
# Announcements (NOTIFY workqueue) come from the announce worker of a
# database served by the workers (workqueue.databases), after the commit.
#
# serve_database DB: adds DB to workqueue.databases (ALTER SYSTEM, reload)
# and waits for its announce worker; unserve_database DB takes it out again.
serve_database() {
    local dbs
    dbs=$(q "SELECT coalesce(nullif(current_setting('workqueue.databases'), ''), current_setting('workqueue.database_name'))")
    [[ ", $dbs, " == *", $1, "* ]] ||
        { q "ALTER SYSTEM SET workqueue.databases = '$dbs, $1'" && q "SELECT pg_reload_conf()"; } >/dev/null
    wait_until 20 "the announce worker of database $1" \
        q_any "SELECT 1 FROM pg_stat_activity WHERE datname = '$1' AND backend_type = '$(worker_type announce)'"
}
unserve_database() {
    local dbs
    dbs=$(q "SELECT array_to_string(array_remove(string_to_array(replace(current_setting('workqueue.databases'), ' ', ''), ','), '$1'), ', ')")
    { q "ALTER SYSTEM SET workqueue.databases = '$dbs'" && q "SELECT pg_reload_conf()"; } >/dev/null
}

# listen_start FILE [DB]: a session LISTENs on "workqueue" (in DB, default
# the current one) and prints what it receives to FILE, for up to 120 s or
# until listen_stop; returns once it listens.  One listener at a time.
listen_start() {
    local app="wq_listener_$$"
    {
        echo "SET application_name = '$app';"
        echo "LISTEN workqueue;"
        for _ in $(seq 2400); do echo "SELECT pg_sleep(0.05);"; done
    } | psql -X -q -At ${2:+-d "$2"} >"$1" 2>&1 &
    T_LISTENER=$!
    wait_until 10 "the listener to LISTEN" \
        q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = '$app' AND query LIKE '%pg_sleep%'"
}
listen_stop() {
    if [[ -n ${T_LISTENER:-} ]]; then kill "$T_LISTENER" 2>/dev/null; wait "$T_LISTENER" 2>/dev/null || true; fi
    T_LISTENER=
}
# listen_payloads FILE: the payloads received, one per line, in order
listen_payloads() {
    sed -n 's/^Asynchronous notification "workqueue" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p' "$1"
}
# listen_heard FILE N [GREP-PATTERN]: FILE holds at least N payloads (matching)
listen_heard() { [[ $(listen_payloads "$1" | grep -c -- "${3:-.}") -ge $2 ]]; }

########################################################################
# Citus (test/citus/*.sh, on the cluster of test/citus/cluster.sh)

# qw PORT SQL: one value (or rows) from the node on PORT (a worker, or the
# coordinator through its port)
qw() {
    psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -c "SET client_min_messages = warning" -c "$2"
}
# citus_distribute: distributes the coordinator's install (PG*) unless it is
citus_distribute() {
    [[ $(q "SELECT mode FROM workqueue.scale_state") == citus ]] ||
        q "SET client_min_messages = warning; SELECT workqueue.distribute()" >/dev/null
}
# citus_queue_on PREFIX PORT: a new queue name (PREFIX and a number, no
# queue of that name yet: a suite can run again on the same cluster) whose
# item shard is on the worker node on PORT
citus_queue_on() {
    q "SELECT n FROM (SELECT '$1' || g AS n FROM generate_series(1, 500) g) x
        WHERE NOT EXISTS (SELECT 1 FROM workqueue.queue WHERE name = x.n)
          AND (SELECT p.nodeport FROM pg_dist_shard_placement p
                WHERE p.shardid = get_shard_id_for_distribution_column('workqueue.item', x.n)) = $2
        ORDER BY length(n), n LIMIT 1"
}
