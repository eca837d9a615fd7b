# Shared helpers of the script tests: TAP-like "ok N - ..." lines, a final
# "N passed, M failed" line, psql shortcuts and the sample API.
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
    for _ in $(seq 200); do [[ -s $port_file ]] && break; sleep 0.05; done
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

worker_pid() {
    q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'workqueue worker' AND datname = current_database()"
}
