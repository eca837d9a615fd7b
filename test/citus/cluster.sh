#!/usr/bin/env bash
# test/citus/cluster.sh start|stop|env — a throw-away Citus cluster on
# loopback: one coordinator and two workers, PostgreSQL 15 with Citus,
# pg_cron and workqueue preloaded on each node.  Run as root (the servers run
# as user postgres).
#
#   CITUS_PREFIX  root of the PostgreSQL tree ("" = the system's; the harness
#                 of a shared machine uses a private copy, e.g. /opt/pg-citus)
#   CITUS_PORTS   "COORDINATOR WORKER WORKER" (default "5610 5611 5612")
#   CITUS_DATA    where the data directories go (default /tmp/wq-citus-PORT)
#
# start: initdb, start, CREATE EXTENSION citus on every node, register the
# coordinator and the workers, then CREATE EXTENSION pg_cron and workqueue on
# the coordinator (Citus propagates both to the workers).  Prints the PG*
# settings of the coordinator (eval "$(bash test/citus/cluster.sh env)").
# stop: stops the three servers and removes their data.  crash PORT /
# start-node PORT: an immediate shutdown of one node, and its start again
# (test/citus/recovery.sh).
set -euo pipefail
cmd=${1:-}
prefix=${CITUS_PREFIX:-}
read -r -a ports <<<"${CITUS_PORTS:-5610 5611 5612}"
base=${CITUS_DATA:-/tmp/wq-citus-${ports[0]}}
bin=$prefix/usr/lib/postgresql/15/bin
sock=$base/sock

as_pg() { (cd / && su postgres -s /bin/sh -c "$*"); }   # (from a cwd postgres may not enter)
sql() {     # sql PORT SQL...
    local port=$1; shift
    local args=()
    for s in "$@"; do args+=(-c "$s"); done
    "$bin/psql" -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "${args[@]}"
}

case $cmd in
env)
    echo "export PGHOST=127.0.0.1 PGPORT=${ports[0]} PGUSER=postgres PGDATABASE=postgres PATH=$bin:\$PATH"
    echo "export WQ_CITUS_WORKERS='${ports[*]:1}'"
    ;;
start)
    [[ -x $bin/initdb ]] || { echo "cluster.sh: no PostgreSQL 15 under '$prefix'" >&2; exit 2; }
    [[ -f $prefix/usr/lib/postgresql/15/lib/citus.so ]] ||
        { echo "cluster.sh: citus is not installed under '$prefix' (bash test/citus/build.sh)" >&2; exit 2; }
    if [[ -d $base ]]; then "$0" stop; fi
    mkdir -p "$sock"
    chown postgres "$base" "$sock"
    for port in "${ports[@]}"; do
        data=$base/$port
        as_pg "$bin/initdb -D $data -U postgres --auth=trust" >/dev/null
        cat >>"$data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
shared_preload_libraries = 'citus,pg_cron,workqueue'
wal_level = logical
max_prepared_transactions = 100
max_connections = 200
max_worker_processes = 32
cron.database_name = 'postgres'
cron.use_background_workers = on
fsync = ${WQ_FSYNC:-off}
log_min_messages = warning
CONF
        echo "host all all 127.0.0.1/32 trust" >>"$data/pg_hba.conf"
        as_pg "$bin/pg_ctl -D $data -l $data/log -w start" >/dev/null
    done
    for port in "${ports[@]}"; do
        sql "$port" "SET client_min_messages = warning" "CREATE EXTENSION citus"
    done
    sql "${ports[0]}" "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]})" >/dev/null
    for port in "${ports[@]:1}"; do
        sql "${ports[0]}" "SELECT citus_add_node('127.0.0.1', $port)" >/dev/null
    done
    sql "${ports[0]}" "SET client_min_messages = warning" \
        "CREATE EXTENSION pg_cron" "CREATE EXTENSION workqueue"
    echo "== citus cluster up: coordinator 127.0.0.1:${ports[0]}, workers ${ports[*]:1} ($(sql "${ports[0]}" \
        "SELECT count(*) FROM pg_dist_node WHERE isactive") nodes)"
    ;;
crash)      # crash PORT: an immediate shutdown of one node (no checkpoint: recovery at its start)
    [[ -n ${2:-} && -d $base/${2:-} ]] || { echo "cluster.sh crash: no node on port '${2:-}'" >&2; exit 2; }
    as_pg "$bin/pg_ctl -D $base/$2 -m immediate -w stop" >/dev/null
    ;;
start-node) # start-node PORT: starts one node again
    [[ -n ${2:-} && -d $base/${2:-} ]] || { echo "cluster.sh start-node: no node on port '${2:-}'" >&2; exit 2; }
    as_pg "$bin/pg_ctl -D $base/$2 -l $base/$2/log -w start" >/dev/null
    ;;
stop)
    for port in "${ports[@]}"; do
        data=$base/$port
        [[ -d $data ]] && as_pg "$bin/pg_ctl -D $data -m fast stop" >/dev/null 2>&1 || true
    done
    rm -rf "$base"
    ;;
*)
    echo "usage: bash test/citus/cluster.sh start|stop|env|crash PORT|start-node PORT" >&2
    exit 2
    ;;
esac
