#!/usr/bin/env bash
# test/inside.sh MODE — runs inside a cluster (PGHOST, PGPORT, PGUSER,
# PGPASSWORD and PGDATABASE set, as pg_virtualenv does); called by
# test/run.sh.  MODE is demo, check or bench.
#
# check runs, in order: pg_regress (sql/ -> expected/), pgTAP
# (test/pgtap/*.sql with pg_prove) and the script tests (test/scripts/*.sh),
# then prints one line "N passed, N failed" over all of them and exits
# non-zero if anything failed.  A single suite: TESTS=pgtap or
# TESTS=regress or TESTS=scripts; a single script: SCRIPTS=claim_concurrency.
set -uo pipefail
cd "$(dirname "$0")/.."
source test/lib.sh      # wait_until
mode=${1:-check}

psql -Xq -c "CREATE EXTENSION IF NOT EXISTS pg_cron" -c "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null

# the cluster's name, for tests that restart it (pg_ctlcluster VERSION NAME)
WQ_CLUSTER=$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p {print $1 "/" $2}')
export WQ_CLUSTER

# the sample case API on a free loopback port, for sync tests and the demo
api_port_file=$(mktemp)
python3 test/sample_api.py --port 0 --port-file "$api_port_file" >/dev/null &
api_pid=$!
trap 'kill $api_pid 2>/dev/null' EXIT
wait_until -i 0.05 10 "the sample API to write its port to $api_port_file" test -s "$api_port_file"
WQ_API="http://127.0.0.1:$(cat "$api_port_file")"
export WQ_API

case $mode in
demo)
    psql -X -q -v ON_ERROR_STOP=1 -v api="$WQ_API" -f test/demo.sql
    exit $?
    ;;
bench)
    rc=0
    for b in bench/*.sh; do
        echo "== $b"
        bash "$b" || rc=1
    done
    exit $rc
    ;;
esac

passed=0
failed=0
suites=${TESTS:-regress pgtap scripts}
log=$(mktemp -d /tmp/workqueue-tests.XXXX)

if [[ " $suites " == *" regress "* ]]; then
    echo "== pg_regress"
    make -s installcheck >"$log/regress.out" 2>&1
    cat "$log/regress.out"
    p=$(grep -cE '\.\.\. ok' "$log/regress.out")
    f=$(grep -cE '\.\.\. FAILED' "$log/regress.out")
    if [[ $p == 0 && $f == 0 ]]; then f=1; fi       # pg_regress itself failed
    [[ -f test/regress/regression.diffs ]] && head -100 test/regress/regression.diffs
    passed=$((passed + p)); failed=$((failed + f))
fi

if [[ " $suites " == *" pgtap "* ]]; then
    echo "== pgTAP"
    dropdb --if-exists wq_tap >/dev/null 2>&1
    createdb wq_tap
    psql -Xq -d wq_tap -c "CREATE EXTENSION workqueue; CREATE EXTENSION pgtap;" -f test/pgtap_setup.sql >/dev/null
    pg_prove --verbose -d wq_tap ${PGTAP_FILES:-test/pgtap/*.sql} >"$log/pgtap.out" 2>&1
    grep -vE '^ok ' "$log/pgtap.out"
    p=$(grep -cE '^ok ' "$log/pgtap.out")
    f=$(grep -cE '^not ok ' "$log/pgtap.out")
    if ! grep -q '^Result: PASS' "$log/pgtap.out" && [[ $f == 0 ]]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
fi

if [[ " $suites " == *" scripts "* ]]; then
    for s in test/scripts/*.sh; do
        name=$(basename "$s" .sh)
        [[ -n ${SCRIPTS:-} && " $SCRIPTS " != *" $name "* ]] && continue
        echo "== script $name"
        bash "$s" >"$log/$name.out" 2>&1
        rc=$?
        cat "$log/$name.out"
        p=$(grep -cE '^ok ' "$log/$name.out")
        f=$(grep -cE '^not ok ' "$log/$name.out")
        if [[ $rc != 0 && $f == 0 ]]; then f=1; echo "not ok - $name exited with status $rc"; fi
        passed=$((passed + p)); failed=$((failed + f))
    done
fi

echo
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
