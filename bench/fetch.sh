#!/usr/bin/env bash
# bench/fetch.sh — background fetches end to end, next to pg_net (issue 12).
#
#   bash bench/fetch.sh
#
# workqueue: N fetches (BENCH_FETCHES, 10,000) enqueued at once, in one
# transaction, for the N items of a queue created right before (never
# analyzed: a queue created a second ago) -> every fetch completed, its
# record written onto its item with a fetch_completed event; at
# workqueue.http_max_concurrency 16 (the default), then 1 and 64
# (BENCH_FETCH_CONCURRENCY, "16 1 64").
# pg_net 0.20.4 at its defaults (pg_net.batch_size 200): the same N GET
# requests to the same server, queued with net.http_get() in one
# transaction -> N responses in net._http_response.  Same cluster, same run.
#
# Rate = N / (time from just before the enqueueing statement to the last
# fetch's finished_at, or the last response's created), on the server's
# clock, so polling does not blur it.  Also printed: how long enqueueing
# took, and the CPU seconds the worker (the fetch worker, pg_net's worker)
# and the HTTP server used per 1,000 requests.
#
# The HTTP server: by default a minimal HTTP/1.1 keep-alive server written
# here (Python asyncio) that answers /cases/details?ids=C-<n> with the record
# of case n as the sample API does, so that the workers under test share the
# 2 cores with as little server as possible; BENCH_FETCH_SERVER=sample uses
# test/sample_api.py (a thread per connection; it tops out near 3,000
# requests/s here).
#
# Where: the database the workers serve (PGDATABASE; "postgres" by default;
# queues bench_fetch_*, deleted at the end).  pg_net must be in
# shared_preload_libraries.  When the cluster does not preload it, the
# script -- with pg_virtualenv at hand -- runs itself in a throw-away
# cluster that preloads pg_net and workqueue (the numbers of both then come
# from that cluster); BENCH_FETCH_OWN_CLUSTER=0 stays in your cluster and
# skips pg_net with a message.  pg_net is built from the vendored release
# (PG_NET_TARBALL, default /work/shared/vendor/pg_net-68ef0bf.tar.gz) with
# PGXS (make && make install: root, usually) in a temporary directory when
# the server does not offer it.
#
# Checked (exit 1 if wrong): every fetch completed, every record written,
# exactly one fetch_completed event per fetch; N pg_net responses, all 200.
# A missed target is reported, not failed.  Results: stdout and
# bench/results/fetch.txt.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
N=${BENCH_FETCHES:-10000}
width=$(( ${#N} > 4 ? ${#N} : 4 ))     # external ids C-0001 ..., as the sample API numbers its cases
concurrencies=${BENCH_FETCH_CONCURRENCY:-16 1 64}
server_kind=${BENCH_FETCH_SERVER:-fast}
pg_net_tarball=${PG_NET_TARBALL:-/work/shared/vendor/pg_net-68ef0bf.tar.gz}
mkdir -p bench/results
out=bench/results/fetch.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench-fetch.XXXXXX")
chmod 755 "$tmp"

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "$1"; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }

########################################################################
# pg_net: offered by the server, or built from the vendored release
pg_net_offered() {
    [[ $(q "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_net'") == 1 ]]
}
build_pg_net() {
    local pgc dir
    pgc=${PG_CONFIG:-$(command -v pg_config || true)}
    [[ -n $pgc ]] && "$pgc" --version | grep -q 'PostgreSQL 15\.' || { echo "no pg_config of PostgreSQL 15"; return 1; }
    [[ -r $pg_net_tarball ]] || { echo "$pg_net_tarball is missing"; return 1; }
    mkdir -p "$tmp/pg_net"
    tar xzf "$pg_net_tarball" -C "$tmp/pg_net"
    dir=$(dirname "$(find "$tmp/pg_net" -name Makefile -path '*pg_net*' | head -1)")
    echo "== building pg_net from $(basename "$pg_net_tarball") in $dir" >&2
    if ! (cd "$dir" && make PG_CONFIG="$pgc" && make install PG_CONFIG="$pgc") >"$tmp/pg_net-build.log" 2>&1; then
        echo "building or installing it failed: $(tail -1 "$tmp/pg_net-build.log")"; return 1
    fi
}

pg_net_note=""
if [[ -z ${BENCH_FETCH_INSIDE:-} && $(q "SHOW shared_preload_libraries") != *pg_net* ]]; then
    if [[ ${BENCH_FETCH_OWN_CLUSTER:-1} != 0 ]] && command -v pg_virtualenv >/dev/null; then
        if pg_net_offered || note=$(build_pg_net); then
            echo "== pg_net is not in shared_preload_libraries here: running in a throw-away cluster that preloads pg_net and workqueue" >&2
            rm -rf "$tmp"
            # (without the connection settings of this cluster, which may itself be a pg_virtualenv's)
            exec env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD -u PGDATABASE -u PG_CLUSTER_CONF_ROOT -u PGSYSCONFDIR \
                pg_virtualenv -t -v 15 -o "shared_preload_libraries=pg_net,workqueue" -o "max_worker_processes=32" \
                env BENCH_FETCH_INSIDE=1 bash "$self"
        fi
        pg_net_note="pg_net could not be built ($note)"
    else
        pg_net_note="pg_net is not in shared_preload_libraries of this cluster (and BENCH_FETCH_OWN_CLUSTER=0, or no pg_virtualenv)"
    fi
fi
if [[ -z $pg_net_note ]] && ! pg_net_offered; then
    note=$(build_pg_net) || pg_net_note="pg_net could not be built ($note)"
fi

########################################################################
# the HTTP server
cat >"$tmp/server.py" <<'PY'
# A minimal HTTP/1.1 keep-alive server: GET (or POST) /cases/details?ids=C-<n>
# answers [{"id": "C-<n>", "name": "Case <n>", "severity": n % 5 + 1,
# "status": "open"}]; anything else answers {}.  Writes its port to argv[1].
import asyncio, json, re, socket, sys

IDS = re.compile(rb"[?&]ids=([^&\s]+)")

def answer(target):
    m = IDS.search(target)
    if not m:
        return b"{}"
    ident = m.group(1).decode("latin-1")
    digits = re.sub(r"\D", "", ident)
    n = int(digits) if digits else 0
    return json.dumps([{"id": ident, "name": "Case %d" % n, "severity": n % 5 + 1,
                        "status": "open"}], separators=(",", ":")).encode()

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].split(b"\r\n")
            length = 0
            for h in head[1:]:
                if h[:15].lower() == b"content-length:":
                    length = int(h[15:])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            parts = head[0].split(b" ")
            body = answer(parts[1] if len(parts) > 1 else b"/")
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))

async def main():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = await asyncio.get_running_loop().create_server(Http, sock=sock)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(sock.getsockname()[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    await server.serve_forever()

asyncio.run(main())
PY
port_file=$tmp/port
if [[ $server_kind == sample ]]; then
    python3 test/sample_api.py --port 0 --cases "$N" --port-file "$port_file" >/dev/null &
    server_desc="the sample API (test/sample_api.py)"
else
    python3 "$tmp/server.py" "$port_file" &
    server_desc="a minimal asyncio HTTP/1.1 server (keep-alive)"
fi
server_pid=$!
queues=()
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    q "ALTER SYSTEM RESET workqueue.http_max_concurrency; SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    # the queues of this run, with everything in them (there is no API for that)
    for qn in "${queues[@]}"; do
        q "BEGIN; DELETE FROM workqueue.item_event WHERE queue = '$qn'; DELETE FROM workqueue.fetch WHERE queue = '$qn';
           DELETE FROM workqueue.item WHERE queue = '$qn'; DELETE FROM workqueue.source WHERE queue = '$qn';
           DELETE FROM workqueue.queue WHERE name = '$qn'; COMMIT" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 200); do [[ -s $port_file ]] && break; sleep 0.05; done
api="http://127.0.0.1:$(cat "$port_file")"

cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }   # CPU seconds of a local pid
worker_of() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = '$1' AND datname = current_database() LIMIT 1"; }

q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
for _ in $(seq 200); do [[ -n $(worker_of 'workqueue fetch worker') ]] && break; sleep 0.1; done
[[ -n $(worker_of 'workqueue fetch worker') ]] || { echo "no workqueue fetch worker serves database $(q 'SELECT current_database()')" >&2; exit 1; }

{
echo "background fetches, end to end: $N enqueued at once -> all done — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "server: $(q 'SELECT version()' | cut -c1-60); $(nproc) cores; HTTP: $server_desc on 127.0.0.1"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with changes)')"
echo
printf '%-34s %9s %9s %11s %11s %11s\n' "" "enqueue" "total" "requests/s" "worker cpu" "server cpu"
printf '%-34s %9s %9s %11s %11s %11s\n' "" "s" "s" "" "s/1000" "s/1000"
} | tee "$out"

row() {     # row LABEL ENQUEUE-S TOTAL-S RATE WORKER-CPU SERVER-CPU
    printf '%-34s %9s %9s %11s %11s %11s\n' "$1" "$2" "$3" "$4" \
        "$(python3 -c "print(f'{$5 * 1000 / $N:.2f}')")" "$(python3 -c "print(f'{$6 * 1000 / $N:.2f}')")" | tee -a "$out"
}

########################################################################
# workqueue
declare -A wq_rate
run_workqueue() {     # run_workqueue CONCURRENCY [N [quiet]]
    local c=$1 n=${2:-$N} quiet=${3:-} qn t0 t1 t_end left wpid w0 w1 s0 s1 label
    qn="bench_fetch_$(date +%s)_${#queues[@]}_c$c"
    queues+=("$qn")
    if [[ $c == 16 ]]; then
        q "ALTER SYSTEM RESET workqueue.http_max_concurrency" >/dev/null
    else
        q "ALTER SYSTEM SET workqueue.http_max_concurrency = $c" >/dev/null
    fi
    q "SELECT pg_reload_conf()" >/dev/null
    # until the fetch worker has begun a loop turn since the reload (it rereads the files first)
    for _ in $(seq 100); do
        [[ $(q "SELECT count(*) FROM workqueue.worker_status WHERE kind = 'fetch' AND last_loop_at > pg_conf_load_time()") == 1 ]] && break
        sleep 0.1
    done
    q "SELECT workqueue.create_queue('$qn');
       SELECT workqueue.create_source('$qn', '$qn', '$api/cases/ids', '$api/cases/details?ids={ids}',
              '{\"retries\": 3, \"mapping\": {\"priority\": \"\$.severity\", \"data.title\": \"\$.name\"}}');
       SELECT inserted FROM workqueue.upsert_items('$qn',
              (SELECT jsonb_agg(jsonb_build_object('external_id', format('C-%s', lpad(g::text, $width, '0'))))
                 FROM generate_series(1, $n) g))" >/dev/null
    wpid=$(worker_of 'workqueue fetch worker')
    w0=$(cpu_of "$wpid"); s0=$(cpu_of "$server_pid")
    t0=$(q "SELECT extract(epoch FROM clock_timestamp())")
    q "SELECT count(workqueue.enqueue_fetch(id, '$qn')) FROM workqueue.item WHERE queue = '$qn'" >/dev/null
    t1=$(q "SELECT extract(epoch FROM clock_timestamp())")
    for _ in $(seq 6000); do
        left=$(q "SELECT count(*) FROM (SELECT FROM workqueue.fetch WHERE queue = '$qn' AND status IN ('queued', 'processing') LIMIT 1) x")
        [[ $left == 0 ]] && break
        sleep 0.1
    done
    w1=$(cpu_of "$wpid"); s1=$(cpu_of "$server_pid")
    t_end=$(q "SELECT extract(epoch FROM max(finished_at)) FROM workqueue.fetch WHERE queue = '$qn'")
    if [[ -z $quiet ]]; then
        wq_rate[$c]=$(python3 -c "print(round($N / ($t_end - $t0)))")
        label="workqueue, http_max_concurrency $c"
        [[ $c == 16 ]] && label="workqueue (defaults: concurrency 16)"
        row "$label" "$(secs "$(python3 -c "print($t1 - $t0)")")" "$(secs "$(python3 -c "print($t_end - $t0)")")" \
            "${wq_rate[$c]}" "$(python3 -c "print($w1 - $w0)")" "$(python3 -c "print($s1 - $s0)")"
    fi
    # what must hold
    local got
    got=$(q "SELECT count(*) FILTER (WHERE f.status = 'completed') || ' ' ||
                    (SELECT count(*) FROM workqueue.item WHERE queue = '$qn' AND data->>'title' LIKE 'Case %') || ' ' ||
                    (SELECT count(*) FROM workqueue.item_event WHERE queue = '$qn' AND kind = 'fetch_completed') || ' ' ||
                    (SELECT count(DISTINCT payload->>'fetch') FROM workqueue.item_event WHERE queue = '$qn' AND kind = 'fetch_completed')
               FROM workqueue.fetch f WHERE f.queue = '$qn'")
    if [[ $got != "$n $n $n $n" ]]; then
        echo "WRONG: completed fetches, records written, fetch_completed events, distinct fetches in them: $got (want $n each)" | tee -a "$out"
        exit 1
    fi
}

########################################################################
# pg_net
pg_net_rate=""
run_pg_net() {
    local before t0 t1 t_end got wpid w0 w1 s0 s1
    q "CREATE EXTENSION IF NOT EXISTS pg_net" >/dev/null
    for _ in $(seq 100); do [[ -n $(q "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'pg_net%' LIMIT 1") ]] && break; sleep 0.1; done
    wpid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'pg_net%' LIMIT 1")
    before=$(q "SELECT coalesce(max(id), 0) FROM net._http_response")
    w0=$(cpu_of "${wpid:-0}"); s0=$(cpu_of "$server_pid")
    t0=$(q "SELECT extract(epoch FROM clock_timestamp())")
    q "SELECT count(net.http_get(format('$api/cases/details?ids=C-%s', lpad(g::text, $width, '0')))) FROM generate_series(1, $N) g" >/dev/null
    t1=$(q "SELECT extract(epoch FROM clock_timestamp())")
    for _ in $(seq 6000); do
        [[ $(q "SELECT count(*) FROM net._http_response WHERE id > $before") -ge $N ]] && break
        sleep 0.1
    done
    w1=$(cpu_of "${wpid:-0}"); s1=$(cpu_of "$server_pid")
    t_end=$(q "SELECT extract(epoch FROM max(created)) FROM net._http_response WHERE id > $before")
    pg_net_rate=$(python3 -c "print(round($N / ($t_end - $t0)))")
    row "pg_net $(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_net'") (defaults: batch_size $(q "SHOW pg_net.batch_size"))" \
        "$(secs "$(python3 -c "print($t1 - $t0)")")" "$(secs "$(python3 -c "print($t_end - $t0)")")" "$pg_net_rate" \
        "$(python3 -c "print($w1 - $w0)")" "$(python3 -c "print($s1 - $s0)")"
    got=$(q "SELECT count(*) FILTER (WHERE status_code = 200) || ' ' || count(*) FROM net._http_response WHERE id > $before")
    if [[ $got != "$N $N" ]]; then
        echo "WRONG: pg_net responses with status 200, responses: $got (want $N)" | tee -a "$out"
        exit 1
    fi
}

# a warm-up, not reported: the worker's first plans, the tables' first pages
run_workqueue 16 1000 quiet
first=1
for c in $concurrencies; do
    run_workqueue "$c"
    if [[ $first == 1 ]]; then       # pg_net right after workqueue at its defaults
        first=0
        if [[ -z $pg_net_note ]]; then run_pg_net; fi
    fi
done

{
echo
if [[ -n $pg_net_note ]]; then
    echo "pg_net: skipped -- $pg_net_note."
elif [[ -n ${wq_rate[16]:-} ]]; then
    echo "workqueue / pg_net at their defaults: $(python3 -c "print(f'{${wq_rate[16]} / $pg_net_rate:.1f}')")x"
fi
echo "target (issue 12): >= 2,000 requests/s end to end at the defaults, >= 5x pg_net; zero lost requests."
echo "workqueue does more per request than pg_net: it maps the record onto the item (with a synced"
echo "and a fetch_completed event, announced by the announce worker); pg_net stores the response.  pg_net's worker"
echo "waits one second after each batch of pg_net.batch_size requests (to spare the CPU, says its"
echo "source), so at its defaults it cannot pass about 200 requests/s."
} | tee -a "$out"
