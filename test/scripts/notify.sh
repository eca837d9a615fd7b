#!/usr/bin/env bash
# test/scripts/notify.sh — every state change sends NOTIFY workqueue with a
# JSON payload naming the item, the queue and the kind of change (SPEC §3).
#
# One psql session LISTENs on "workqueue" and then calls add, claim,
# update_fields, comment, release, extend_lease, transition and
# transition_many itself; psql prints each notification after the statement
# that caused it.  The payloads are parsed back as JSON in SQL and checked.
# A second session, listening while a first one writes, checks delivery to
# other clients; changes that fail or roll back must send nothing.
#
# Uses whatever PGHOST/PGPORT/PGUSER/PGPASSWORD the environment gives; works
# in a database of its own, created fresh and dropped at the end.  Prints
# "ok N - ..." / "not ok N - ..." lines and "N passed, M failed"; exits 1 if
# anything failed.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"    # ok, is, finish
set -e
export LC_ALL=C              # psql prints "Asynchronous notification ..." untranslated

db=wq_notify
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-notify.XXXXXX")
listener_pid=

cleanup() {
    if [[ -n $listener_pid ]]; then kill "$listener_pid" 2>/dev/null || true; fi
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT




q() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

# payloads FILE: the payloads of the "workqueue" notifications psql printed.
payloads() {
    sed -n 's/^Asynchronous notification "workqueue" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p' "$1"
}

# load TABLE FILE: stores the payloads found in FILE, one row each, as text
# (so that a payload that is not JSON is kept and reported, not lost).
load() {
    q "CREATE TABLE $1 (seq serial, payload text)"
    payloads "$2" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "\\copy $1 (payload) FROM STDIN"
}

# count of notifications in TABLE matching a condition on j (the payload as json)
count() {
    q "SELECT count(*) FROM (SELECT payload::json AS j FROM $1) p WHERE $2"
}

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION workqueue;
SELECT workqueue.create_queue('nq');
SQL

# ---------------------------------------------------------------- same session
# ON_ERROR_STOP stays off: two statements below fail on purpose.
psql -X -v VERBOSITY=terse -d "$db" >"$tmp/session.out" 2>&1 <<'SQL'
LISTEN workqueue;
SELECT workqueue.add('nq', '{"title": "first"}', 2) AS a \gset
SELECT workqueue.add('nq', '{"title": "second"}', 4) AS b \gset
SELECT workqueue.add('nq', '{"title": "third"}', 5) AS c \gset
\echo MARK claim
SELECT id FROM workqueue.claim('nq', 1, 'wn');
\echo MARK update_fields
SELECT id FROM workqueue.update_fields(:a, '{"resolution": "fixed"}', 'wn');
\echo MARK comment
SELECT workqueue.comment(:a, 'looked at it', 'wn');
\echo MARK release
SELECT id FROM workqueue.release(:a, 'wn');
\echo MARK reclaim
SELECT id FROM workqueue.claim('nq', 1, 'wn');
\echo MARK extend_lease
SELECT id FROM workqueue.extend_lease(:a, '5 minutes', 'wn');
\echo MARK transition
SELECT status FROM workqueue.transition(:a, 'resolve', '{}', 'wn');
\echo MARK failing
-- fails: item a is resolved already; must send nothing
SELECT status FROM workqueue.transition(:a, 'resolve', '{}', 'wn');
-- rolled back: must send nothing
BEGIN;
SELECT workqueue.comment(:b, 'never happened', 'wn');
ROLLBACK;
\echo MARK transition_many
SELECT workqueue.transition_many(ARRAY[:b, :c]::bigint[], 'reject', '{}', 'wn');
\echo MARK ids :a :b :c
SQL
sed 's/^/# /' "$tmp/session.out"
read -r a b c < <(sed -n "s/^MARK ids //p" "$tmp/session.out") || true
: "${a:=0}" "${b:=0}" "${c:=0}"
load same "$tmp/session.out"

is "$(q "SELECT count(*) FROM same")" 12 "one session: 12 notifications for 12 state changes"
# (a payload that is not JSON makes the cast, and so this check, fail)
is "$(q "SELECT count(*) FROM same WHERE json_typeof(payload::json) = 'object'")" 12 \
   "every payload is a JSON object"
is "$(count same "j->>'item' IS NOT NULL AND j->>'queue' = 'nq' AND j->>'kind' IS NOT NULL")" 12 \
   "every payload has item, queue and kind"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'created'")" 1 "add() sends kind created"
is "$(count same "(j->>'item')::bigint IN ($a, $b, $c) AND j->>'kind' = 'created'")" 3 \
   "each add() sends its own created notification"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'claimed'")" 2 "claim() sends kind claimed"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'field_update'")" 1 \
   "update_fields() sends kind field_update"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'comment'")" 1 "comment() sends kind comment"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'released'")" 1 "release() sends kind released"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'lease_extended'")" 1 \
   "extend_lease() sends kind lease_extended"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'transition'")" 1 \
   "transition() sends kind transition"
is "$(count same "(j->>'item')::bigint IN ($b, $c) AND j->>'kind' = 'transition'")" 2 \
   "transition_many() sends one transition notification per item"
is "$(count same "(j->>'item')::bigint = $b AND j->>'kind' = 'comment'")" 0 \
   "a rolled-back change sends nothing"
is "$(q "SELECT count(*) FROM (SELECT payload::json AS j FROM same) p
          JOIN workqueue.item_event e ON e.id = (j->>'event')::bigint
         WHERE e.item_id = (j->>'item')::bigint AND e.kind = j->>'kind' AND e.queue = j->>'queue'")" 11 \
   "each notification of an audited change matches the event it announces"
# The failing transition sits between the MARK failing and MARK transition_many lines.
is "$(sed -n '/^MARK failing/,/^MARK transition_many/p' "$tmp/session.out" | grep -c '^Asynchronous notification' || true)" 0 \
   "a failed transition sends nothing"

# ---------------------------------------------------------------- two sessions
# The listener polls (each statement ends in psql printing what arrived) until
# it has seen the writer's notification or 10 s have passed: its script is
# 100 statements of pg_sleep(0.1) (not a wait of this script: the listening
# session's own life).
{
    echo "SET application_name = 'wq_notify_listener';"
    echo "LISTEN workqueue;"
    for _ in $(seq 100); do echo "SELECT pg_sleep(0.1);"; done
} | psql -X -q -At -d "$db" >"$tmp/listener.out" 2>&1 &
listener_pid=$!
wait_until 10 "the listener session to LISTEN (and sleep)" \
    q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wq_notify_listener' AND query LIKE '%pg_sleep%'" || true
d=$(q "SELECT workqueue.add('nq', '{\"title\": \"from another session\"}')")
# heard_or_gone: the listener printed the notification of item $d, or ended
heard_or_gone() { grep -q "\"item\" *: *$d," "$tmp/listener.out" 2>/dev/null || ! kill -0 "$listener_pid" 2>/dev/null; }
wait_until 10 "the listener to print the notification of item $d" heard_or_gone || true
kill "$listener_pid" 2>/dev/null || true
wait "$listener_pid" 2>/dev/null || true
listener_pid=
load other "$tmp/listener.out"
is "$(count other "(j->>'item')::bigint = $d AND j->>'queue' = 'nq' AND j->>'kind' = 'created'")" 1 \
   "another listening session receives the notification after commit"

finish || exit 1
