#!/usr/bin/env bash
# test/scripts/scope_locks.sh — a scope hides an item from lock waits too
# (SPEC §8, issue 13.2): while another session holds a hidden item (and its
# fetch) locked, every call of a role without the item's scope that names
# it answers at once, exactly as for an id that does not exist -- it never
# waits for the lock, which would tell that the item exists.  pgTAP's
# 86_scope_paths.sql checks the answers; this needs a second session.
#
# Uses whatever PGHOST/PGPORT/PGUSER the environment gives; works in a
# database of its own, created fresh and dropped at the end.  Prints
# "ok N - ..." lines and "N passed, M failed"; exits 1 if anything failed.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")/../.."

db=wq_scope_locks
export PGDATABASE=$db
holder=""
cleanup() {
    [[ -n $holder ]] && kill "$holder" 2>/dev/null || true
    psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'" >/dev/null 2>&1 || true
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    psql -X -q -d postgres -c "DROP ROLE IF EXISTS wq_sl_plain" >/dev/null 2>&1 || true
}
trap cleanup EXIT

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION workqueue" >/dev/null
q "DROP ROLE IF EXISTS wq_sl_plain; CREATE ROLE wq_sl_plain" >/dev/null
q "SELECT workqueue.create_queue('sl'),
          workqueue.create_source('sl_src', 'sl', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}')" >/dev/null
# (ids that appear nowhere else in a message)
q "SELECT setval(pg_get_serial_sequence('workqueue.item', 'id'), 50000),
          setval(pg_get_serial_sequence('workqueue.fetch', 'id'), 70000)" >/dev/null
h=$(q "SELECT workqueue.add('sl', '{}', 3, 'hid-1')")
q "SELECT workqueue.set_scope(ARRAY[$h], '{sl_secret}')" >/dev/null
f=$(q "SELECT workqueue.enqueue_fetch($h, 'sl_src')")
m=$((h + 1000003)); fm=$((f + 2000003))

# the other session: holds the hidden item and its fetch locked
PGAPPNAME=sl_holder psql -X -q -At >/dev/null 2>&1 <<SQL &
BEGIN;
SELECT 1 FROM workqueue.item WHERE id = $h FOR UPDATE;
SELECT 1 FROM workqueue.fetch WHERE id = $f FOR UPDATE;
SELECT pg_sleep(120);
SQL
holder=$!
wait_until 10 "the other session to hold the hidden item locked" \
    q_is "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sl_holder' AND wait_event = 'PgSleep'" 1

# as the plain role, with a lock timeout: a wait would end in 55P03
as_plain() {    # as_plain SQL: SQLSTATE and message of SQL's error ("ok" if none)
    psql -XAtq -v VERBOSITY=default -c "SET lock_timeout = '2s'" -c "SET ROLE wq_sl_plain" \
         -c "\\set ON_ERROR_STOP 1" -c "$1" 2>&1 >/dev/null | sed -nE 's/^(psql:[^ ]* )?ERROR:  //p' | head -1 || true
}
calls=(
    "SELECT workqueue.comment(ID, 'x')"
    "SELECT workqueue.update_fields(ID, '{\"notes\": \"x\"}')"
    "SELECT workqueue.release(ID)"
    "SELECT workqueue.extend_lease(ID, '1 minute')"
    "SELECT workqueue.transition(ID, 'done')"
    "SELECT workqueue.transition_many(ARRAY[ID], 'done')"
    "SELECT workqueue.enqueue_fetch(ID, 'sl_src')"
    "SELECT workqueue.history(ID)"
    "SELECT workqueue.sla_status(ID)"
    "SELECT workqueue.allowed_transitions(ID)"
    "SELECT workqueue.cancel_fetch(FID)"
)
for c in "${calls[@]}"; do
    hidden_sql=${c//FID/$f}; hidden_sql=${hidden_sql//ID/$h}
    missing_sql=${c//FID/$fm}; missing_sql=${missing_sql//ID/$m}
    t0=$(date +%s%N)
    got=$(as_plain "$hidden_sql"); got=${got//$h/N}; got=${got//$f/N}
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    want=$(as_plain "$missing_sql"); want=${want//$m/N}; want=${want//$fm/N}
    is "$got" "$want" "${c%%(*}(hidden, locked by another session) answers as for a missing id, without waiting (${ms} ms)"
done
is "$(as_plain "SELECT workqueue.upsert_items('sl', '[{\"external_id\": \"hid-1\"}]')")" \
   'external id "hid-1" already exists in queue "sl"' \
   "upsert_items of the hidden item's external id is refused at once as a duplicate, not after a lock wait"
is "$(psql -XAtq -c "SET lock_timeout = '2s'" -c "SET ROLE wq_sl_plain" -c "SELECT count(*) FROM workqueue.claim('sl', 5)")" \
   "0" "claim passes over it"
finish
