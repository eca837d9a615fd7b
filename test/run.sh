#!/usr/bin/env bash
# test/run.sh — the one entry point for a fresh Debian 12 machine.
#
#   bash test/run.sh demo    install what is missing, build, start a throw-away
#                            cluster and run the demo (test/demo.sql)
#   bash test/run.sh check   the same set-up, then every test suite
#   bash test/run.sh bench   the same set-up, then every benchmark in bench/
#   bash test/run.sh citus   the same set-up, then Citus 13.2.2 built from
#                            ../shared/vendor (test/citus/build.sh), a
#                            coordinator and two workers on loopback
#                            (test/citus/cluster.sh, ports CITUS_PORTS,
#                            default 5610-5612) and every test/citus/*.sh
#                            suite against them (doc/scale-out.md)
#
# Must run as root (it installs Debian packages and uses pg_virtualenv, which
# creates and destroys a PostgreSQL 15 cluster with
# shared_preload_libraries = 'pg_cron,workqueue'; the workqueue worker serves
# database "postgres", where the demo and the worker tests run).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
case $mode in demo|check|bench|citus) ;; *) echo "usage: bash test/run.sh demo|check|bench|citus" >&2; exit 2 ;; esac

if [[ $(id -u) != 0 ]]; then
    echo "test/run.sh: run as root (it installs packages and creates a throw-away cluster)" >&2
    exit 2
fi

# 1. Packages a bare Debian 12 lacks.
packages=(make gcc libc6-dev postgresql-15 postgresql-server-dev-15 postgresql-15-cron
          postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libcurl4-openssl-dev python3 python3-psycopg2)
source test/packages.sh
install_missing /tmp/workqueue-apt.log "${packages[@]}"

# 2. Build and install the extension (zero warnings is part of the contract).
echo "== building workqueue"
make -s clean >/dev/null 2>&1 || true
make -s 2>&1 | tee /tmp/workqueue-build.log
if grep -q 'warning:' /tmp/workqueue-build.log; then
    echo "build produced compiler warnings" >&2
    exit 1
fi
# (citus mode on a shared machine: CITUS_PREFIX names a private copy of the
# PostgreSQL tree to install workqueue and Citus into instead of the system's)
prefix=
[[ $mode == citus ]] && prefix=${CITUS_PREFIX:-}
make -s install DESTDIR="$prefix" >/dev/null
# The released 0.5 install script, a test fixture: test/scripts/upgrade.sh and
# the pg_regress test "upgrade" install 0.5 and update it to this version.
install -m 644 test/upgrade/workqueue--0.5.sql "$prefix$(pg_config --sharedir)/extension/"

# 3. A throw-away cluster, destroyed when the command inside returns.
echo "== starting a throw-away PostgreSQL 15 cluster"
# The server runs as user postgres, which must be able to enter /; a root
# made with mktemp/debootstrap can be mode 0700.
if ! su postgres -s /bin/sh -c 'test -x /'; then
    echo "   (making / traversable for the postgres user)"
    chmod go+rx /
fi
if [[ $mode == citus ]]; then
    DESTDIR=$prefix bash test/citus/build.sh
    export CITUS_PREFIX=$prefix
    trap 'bash test/citus/cluster.sh stop' EXIT
    bash test/citus/cluster.sh start
    eval "$(bash test/citus/cluster.sh env)"
    passed=0
    failed=0
    for t in test/citus/*.sh; do
        case $t in */build.sh|*/cluster.sh) continue ;; esac
        echo "== $t"
        out=$(bash "$t" 2>&1) || true     # (a failing suite is counted below, not the end of the run)
        echo "$out"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -1)
        if [[ -z $line ]]; then
            failed=$((failed + 1))
        else
            passed=$((passed + ${line%% *}))
            f=${line#*, }; failed=$((failed + ${f%% *}))
        fi
    done
    echo "$passed passed, $failed failed"
    [[ $failed == 0 ]]
    exit
fi
exec pg_virtualenv -v 15 \
    -o "shared_preload_libraries=pg_cron,workqueue" \
    -o "cron.database_name=postgres" \
    -o "cron.use_background_workers=on" \
    -o "max_worker_processes=32" \
    -o "max_connections=100" \
    bash test/inside.sh "$mode"
