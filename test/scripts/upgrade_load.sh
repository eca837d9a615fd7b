#!/usr/bin/env bash
# test/scripts/upgrade_load.sh — ALTER EXTENSION workqueue UPDATE from 0.5
# while the workers run and clients claim (issue 14.5).
#
# A database of its own installs 0.5 (test/upgrade/workqueue--0.5.sql) with
# the current library loaded, is served by the workers, and gets work of
# every kind through the 0.5 API only: a source on the sample API (slowed
# down, so that the transfers overlap the update), fetches queued for all
# its items, a sync run, and client sessions that claim, resolve and add in
# a loop.  Then the update runs in the middle of it.  Checked: the update
# is not blocked by the workers; no worker restarts or logs an error, before
# or after; every fetch queued before the update ends with an outcome and
# the sync run completes; the clients' calls go on succeeding (the
# acceptable errors are spelled out below); the announce worker, which idles
# at 0.5 (no announce_state), announces the events written after the
# update.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/lib.sh"

db=wq_upgload
released=$(pg_config --sharedir)/extension/workqueue--0.5.sql
if [[ ! -r $released ]]; then
    ok 1 "the 0.5 install script is installed ($released: test/run.sh copies it from test/upgrade/)"
    finish; exit
fi

current=$(psql -XAtqc "SELECT default_version FROM pg_available_extensions WHERE name = 'workqueue'")
tmp=$(mktemp -d /tmp/wq-upgload.XXXX)
clients=()
cleanup() {
    touch "$tmp/stop"
    for p in "${clients[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    listen_stop
    [[ -n ${T_API_PID:-} ]] && kill "$T_API_PID" 2>/dev/null
    PGDATABASE=postgres unserve_database $db 2>/dev/null
    PGDATABASE=postgres dropdb --if-exists --force $db >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
PGDATABASE=postgres dropdb --if-exists --force $db >/dev/null 2>&1

# The server log, if this cluster has one we can read: the logging
# collector's file, pg_lsclusters' log, or the log file pg_ctl -l writes into
# the data directory (/opt/wq-cluster.sh).
server_log() {
    local f d
    f=$(q "SELECT CASE WHEN pg_current_logfile() IS NULL THEN ''
                       WHEN pg_current_logfile() LIKE '/%' THEN pg_current_logfile()
                       ELSE current_setting('data_directory') || '/' || pg_current_logfile() END" 2>/dev/null)
    [[ -z $f ]] && f=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PGPORT" '$3 == p {print $7}')
    d=$(q "SELECT current_setting('data_directory')" 2>/dev/null)
    [[ -z $f && -r $d/log ]] && f=$d/log
    echo "$f"
}
LOG=$(server_log)
log_size() { if [[ -r $LOG ]]; then stat -c %s "$LOG"; else echo 0; fi; }
log_since() { [[ -r $LOG ]] && tail -c +$(($1 + 1)) "$LOG"; }

createdb $db || exit 1
export PGDATABASE=$db
q "CREATE EXTENSION workqueue VERSION '0.5'" >/dev/null
ok $? "0.5 installed in database $db with the $current library loaded"
serve_database $db
wait_workers 20
ok $? "a fetch, a sync and an announce worker serve the database at 0.5"

# the extension's processes of this database and the launcher, with their start
workers_sql="SELECT string_agg(($(worker_kind_sql)) || '=' || pid || '@' || backend_start, ' ' ORDER BY backend_type)
               FROM pg_stat_activity
              WHERE backend_type IN ($(worker_types_sql)) AND (datname = current_database() OR datname IS NULL)"
workers0=$(q "$workers_sql")
log0=$(log_size)

########################################################################
# work of every kind, through the 0.5 API
api_start
control '{"reset": true}'
q "SELECT workqueue.create_queue('uq');
   SELECT workqueue.create_source('uq', 'uq', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
                                  '{\"batch_size\": 10, \"retries\": 6}')" >/dev/null
r0=$(q "SELECT workqueue.sync('uq')")
is "$(wait_run "$r0" 60)|$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'uq'")" "completed||250" \
   "at 0.5: a sync run loads the 250 cases of the sample API"
is "$(q "SELECT count(workqueue.enqueue_fetch(id)) FROM workqueue.item WHERE queue = 'uq' AND id % 5 = 0")" 50 \
   "at 0.5: 50 fetches queued"
wait_fetches uq 60
is "$(q "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM workqueue.fetch GROUP BY 1) s")" \
   "completed=50" "at 0.5: the fetch worker completes them"

q "SELECT workqueue.create_queue('load');
   SELECT count(workqueue.add('load', jsonb_build_object('n', g))) FROM generate_series(1, 3000) g" >/dev/null
ok $? "at 0.5: 3,000 items added for the clients"

# Clients: sessions that each, in a loop (every 20 ms; one session each, as
# a pool would keep), add an item and claim one (plpgsql at 0.5), then
# resolve what they hold (C: workqueue.transition).  A statement is one
# line; psql names the line of a failed one (step i: lines 2i-1 and 2i).
client() {      # client N: until $tmp/stop exists
    local i=0
    while [[ ! -e $tmp/stop ]]; do
        i=$((i + 1))
        echo "SELECT 'step $i ' || workqueue.add('load', '{\"by\": \"c$1\"}') || ' ' || coalesce((SELECT c.id FROM workqueue.claim('load', 1, 'c$1') c)::text, 'none');"
        echo "SELECT 'resolved $i ' || count((workqueue.transition(i.id, 'resolve', '{}', 'c$1')).status) FROM workqueue.item i WHERE i.queue = 'load' AND i.status = 'in_progress' AND i.claimed_by = 'c$1';"
        sleep 0.02
    done | psql -X -At -v VERBOSITY=terse -f - >"$tmp/c$1.out" 2>"$tmp/c$1.err"
}
steps() { cat "$tmp/c$1.out" 2>/dev/null | grep -c '^step '; }
# errors N FIRST-STEP LAST-STEP KIND [GREP-ARGS...]: how many errors client N
# got in steps FIRST..LAST (KIND: claim, the add-and-claim statements;
# resolve, the transitions; any) -- those that grep GREP-ARGS selects
errors() {
    local n=$1 from=$2 to=$3 kind=$4
    shift 4
    [[ $# -gt 0 ]] || set -- .
    sed -nE 's/^psql:<stdin>:([0-9]+): ERROR:  (.*)$/\1 \2/p' "$tmp/c$n.err" |
        awk -v from=$((2 * from - 1)) -v to=$((2 * to)) -v kind="$kind" \
            '$1 >= from && $1 <= to && (kind == "any" || (kind == "claim") == ($1 % 2 == 1))' |
        grep -c "$@"
}
for c in 1 2 3; do client $c & clients+=($!); done
clients_stepped() { local c; for c in 1 2 3; do [[ $(steps $c) -ge $1 ]] || return 1; done; }
wait_until 30 "each client to have made 20 steps" clients_stepped 20
ok $? "three clients add and claim at 0.5"

# At 0.5 the C functions of the new library that need the new schema
# (transition, transition_many, allowed_transitions) refuse with a clear
# error instead of a missing function or table: the window between the
# restart with the new library and the update (doc/operations.md,
# "Upgrading").  Everything in plpgsql at 0.5 (add, claim, ...) works.
mismatch="the workqueue extension in database \"$db\" is at version 0.5, the loaded library is $current"
is "$(psql -X -At -v VERBOSITY=verbose -c "SELECT workqueue.transition(min(id), 'resolve', '{}', 'probe') FROM workqueue.item WHERE queue = 'load'" 2>&1 | grep -E '^(ERROR|HINT)')" \
   "ERROR:  55000: $mismatch
HINT:  Run ALTER EXTENSION workqueue UPDATE in this database." \
   "at 0.5 with the $current library, transition() refuses with SQLSTATE 55000 and says what to do"
is "$(qerr "SELECT workqueue.allowed_transitions(min(id)) FROM workqueue.item WHERE queue = 'load'")" "$mismatch" \
   "so does allowed_transitions()"

# the API slowed down: fetches and a sync run in flight during the update
control '{"slow_ms": 300}'
q "SELECT count(workqueue.enqueue_fetch(id)) FROM workqueue.item WHERE queue = 'uq' AND id % 5 <> 0" >/dev/null
before_ids=$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM workqueue.fetch")
nfetch=$(q "SELECT count(*) FROM workqueue.fetch")
r1=$(q "SELECT workqueue.sync('uq', true)")
wait_until 30 "sync run $r1 to be running and fetches to be in flight" \
    q_is "SELECT (SELECT status FROM workqueue.sync_run WHERE id = $r1) = 'running'
             AND (SELECT count(*) FROM workqueue.fetch WHERE status = 'processing') > 0" t
ok $? "at 0.5: sync run $r1 is running and fetches are in flight ($nfetch fetches queued in all)"
is "$(q "SELECT jobs_done FROM workqueue.worker_status WHERE kind = 'announce'")" 0 \
   "at 0.5 the announce worker idles (no announce_state; announcements came from the writers)"

########################################################################
# the update, under all of that
steps_before=$(for c in 1 2 3; do steps $c; done | paste -sd' ')
t0=${EPOCHREALTIME//[!0-9]/}
out=$(psql -X -At -v ON_ERROR_STOP=1 -c "SET statement_timeout = '120s'" -c "ALTER EXTENSION workqueue UPDATE" 2>&1)
rc=$?
t1=${EPOCHREALTIME//[!0-9]/}
alter_ms=$(( (t1 - t0) / 1000 ))
ok $rc "ALTER EXTENSION workqueue UPDATE under load succeeds in ${alter_ms} ms"
[[ $rc != 0 ]] && echo "$out" | sed 's/^/#   /'
ok $([[ $alter_ms -lt 30000 ]]; echo $?) "the update is not held up by the workers (${alter_ms} ms < 30 s)"
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'workqueue'")" "$current" "the database is at $current"
steps_after=$(for c in 1 2 3; do steps $c; done | paste -sd' ')

# the clients go on after the update
read -r -a base <<<"$steps_after"
clients_went_on() { local c; for c in 1 2 3; do [[ $(steps $c) -ge $(( base[c - 1] + 30 )) ]] || return 1; done; }
wait_until 60 "each client to make 30 steps after the update" clients_went_on
ok $? "the clients make 30 steps each after the update (steps before: $steps_before; at its end: $steps_after)"
touch "$tmp/stop"
for p in "${clients[@]}"; do wait "$p" 2>/dev/null; done
clients=()
for c in 1 2 3; do
    grep -vF "$mismatch" "$tmp/c$c.err" | head -5 | sed "s/^/# client $c: /"
done
is "$(for c in 1 2 3; do errors $c 1 999999 claim; done | paste -sd' ')" "0 0 0" \
   "no add or claim of the clients failed, before, during or after the update"
pre=$(for c in 1 2 3; do errors $c 1 "${base[c - 1]}" resolve; done | paste -sd' ')
is "$(for c in 1 2 3; do errors $c 1 "${base[c - 1]}" resolve -vF "$mismatch"; done | paste -sd' ')" "0 0 0" \
   "until the update committed, the clients' transitions failed only with the version error ($pre of them)"
is "$(for c in 1 2 3; do errors $c $(( base[c - 1] + 2 )) 999999 any; done | paste -sd' ')" "0 0 0" \
   "no client call begun after the update failed"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'load' AND claimed_by IN ('c1', 'c2', 'c3') AND status = 'in_progress'")" 0 \
   "the clients resolved every item they had claimed at 0.5"

########################################################################
# nothing lost
wait_fetches uq 120
ok $? "every fetch ends"
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed' AND http_status = 200)
                || ' ' || count(*) FILTER (WHERE status = 'failed' AND error IS NOT NULL)
                || ' ' || count(*) FILTER (WHERE status NOT IN ('completed', 'failed'))
           FROM workqueue.fetch WHERE id IN ($before_ids)")" "$nfetch 0 0" \
   "the $nfetch fetches queued before the update all completed (none failed, none left queued or processing)"
is "$(wait_run "$r1" 120)" "completed|" "sync run $r1, running during the update, completes"
is "$(q "SELECT count(*) FROM workqueue.sync_run WHERE status NOT IN ('completed')")" 0 "no run is left queued, running or failed"

########################################################################
# the workers after the update
r2=$(q "SELECT workqueue.sync('uq')")
is "$(wait_run "$r2" 60)" "completed|" "a sync run queued after the update completes"
f2=$(q "SELECT workqueue.enqueue_fetch(min(id)) FROM workqueue.item WHERE queue = 'uq'")
wait_fetches uq 60
is "$(q "SELECT status FROM workqueue.fetch WHERE id = $f2")" completed "a fetch queued after the update completes"

# the announce worker notices announce_state (within its 5 s idle wait) and
# announces what is written from now on
listen_start "$tmp/listen"
probe_announced() { q "SELECT workqueue.add('load', '{\"probe\": true}')" >/dev/null; listen_heard "$tmp/listen" 1; }
wait_until -i 0.5 20 "the announce worker to announce an item added after the update" probe_announced
ok $? "the announce worker announces the events written after the update"
listen_stop
ok $([[ $(q "SELECT jobs_done FROM workqueue.worker_status WHERE kind = 'announce'") -gt 0 ]]; echo $?) \
   "worker_status shows the announce worker at work"

is "$(q "$workers_sql")" "$workers0" "no worker and not the launcher restarted: same pids and start times as at 0.5"
if [[ -r $LOG ]]; then
    # the lines of our workers and the launcher, and the postmaster's about them
    pids=$(echo "$workers0" | grep -oE '=[0-9]+' | tr -d = | paste -sd'|')
    errs=$(log_since "$log0" | grep -E "\[($pids)\]|worker for database $db" \
           | grep -E '(ERROR|FATAL|PANIC|WARNING):|terminated by signal|exited with exit code')
    [[ -n $errs ]] && echo "$errs" | head -10 | sed 's/^/#   /'
    is "$(echo -n "$errs" | grep -c .)" 0 "the server log shows no error or warning of the workers, and no worker exit"
else
    echo "ok $((T_N += 1)) # skip the server log is not readable here"
fi
finish
