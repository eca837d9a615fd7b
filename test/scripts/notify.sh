#!/usr/bin/env bash
# test/scripts/notify.sh — every state change is announced with NOTIFY
# workqueue and a JSON payload naming the item, the queue and the kind of
# change (SPEC §3), by the announce worker after the change commits, never
# by the writer (src/queue/announce.c).
#
# A listening session (listen_start, test/lib.sh) records what arrives while
# another session calls add, claim, update_fields, comment, release,
# extend_lease, transition and transition_many; the payloads are parsed
# back as JSON in SQL and checked against the events.  Changes that fail or
# roll back send nothing; nothing arrives before the commit; an event whose
# transaction commits after later ones is still announced; per item the
# announcements come in event order; a bulk load is one summary.
#
# Uses whatever PGHOST/PGPORT/PGUSER/PGPASSWORD the environment gives; works
# in a database of its own, served by the workers for the time of the test
# (serve_database), dropped at the end.  Prints "ok N - ..." / "not ok N -
# ..." lines and "N passed, M failed"; exits 1 if anything failed.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"    # ok, is, finish, listen_*, serve_database
set -e
export LC_ALL=C              # psql prints "Asynchronous notification ..." untranslated

db=wq_notify
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-notify.XXXXXX")
late_pid=

cleanup() {
    listen_stop
    if [[ -n $late_pid ]]; then kill "$late_pid" 2>/dev/null || true; fi
    unserve_database "$db" || true
    wait_until 20 "the workers of $db to stop" \
        q_is "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type LIKE 'workqueue%'" 0 || true
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

qd() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

# load TABLE FILE: stores the payloads found in FILE, one row each, in the
# order they arrived, as text (so that a payload that is not JSON is kept
# and reported, not lost).
load() {
    qd "SET client_min_messages = warning; DROP TABLE IF EXISTS $1; CREATE TABLE $1 (seq serial, payload text)"
    listen_payloads "$2" | psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "\\copy $1 (payload) FROM STDIN"
}

# count of notifications in TABLE matching a condition on j (the payload as json)
count() {
    qd "SELECT count(*) FROM (SELECT payload::json AS j FROM $1) p WHERE $2"
}

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION workqueue;
SELECT workqueue.create_queue('nq');
SQL
serve_database "$db"
listen_start "$tmp/listen.out" "$db"

# ---------------------------------------------------------------- the calls
# ON_ERROR_STOP stays off: two statements below fail on purpose.
psql -X -v VERBOSITY=terse -d "$db" >"$tmp/session.out" 2>&1 <<'SQL'
SELECT workqueue.add('nq', '{"title": "first"}', 2) AS a \gset
SELECT workqueue.add('nq', '{"title": "second"}', 4) AS b \gset
SELECT workqueue.add('nq', '{"title": "third"}', 5) AS c \gset
SELECT id FROM workqueue.claim('nq', 1, 'wn');
SELECT id FROM workqueue.update_fields(:a, '{"resolution": "fixed"}', 'wn');
SELECT workqueue.comment(:a, 'looked at it', 'wn');
SELECT id FROM workqueue.release(:a, 'wn');
SELECT id FROM workqueue.claim('nq', 1, 'wn');
SELECT id FROM workqueue.extend_lease(:a, '5 minutes', 'wn');
SELECT status FROM workqueue.transition(:a, 'resolve', '{}', 'wn');
-- fails: item a is resolved already; must send nothing
SELECT status FROM workqueue.transition(:a, 'resolve', '{}', 'wn');
-- rolled back: must send nothing
BEGIN;
SELECT workqueue.comment(:b, 'never happened', 'wn');
ROLLBACK;
SELECT workqueue.transition_many(ARRAY[:b, :c]::bigint[], 'reject', '{}', 'wn');
\echo MARK ids :a :b :c
SQL
sed 's/^/# /' "$tmp/session.out"
read -r a b c < <(sed -n "s/^MARK ids //p" "$tmp/session.out") || true
: "${a:=0}" "${b:=0}" "${c:=0}"
events=$(qd "SELECT count(*) FROM workqueue.item_event")
is "$events" 12 "12 state changes wrote 12 events (extend_lease writes one too)"
wait_until 10 "the listener to receive 12 notifications" listen_heard "$tmp/listen.out" 12 || true
load same "$tmp/listen.out"

is "$(qd "SELECT count(*) FROM same")" 12 "12 notifications for 12 state changes"
# (a payload that is not JSON makes the cast, and so this check, fail)
is "$(qd "SELECT count(*) FROM same WHERE json_typeof(payload::json) = 'object'")" 12 \
   "every payload is a JSON object"
is "$(count same "j->>'item' IS NOT NULL AND j->>'queue' = 'nq' AND j->>'kind' IS NOT NULL AND j->>'event' IS NOT NULL")" 12 \
   "every payload has item, queue, kind and event"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'created'")" 1 "add() is announced as kind created"
is "$(count same "(j->>'item')::bigint IN ($a, $b, $c) AND j->>'kind' = 'created'")" 3 \
   "each add() has its own created notification"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'claimed'")" 2 "claim() is announced as kind claimed"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'field_update'")" 1 \
   "update_fields() is announced as kind field_update"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'comment'")" 1 "comment() is announced as kind comment"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'released'")" 1 "release() is announced as kind released"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'lease_extended'")" 1 \
   "extend_lease() is announced as kind lease_extended"
is "$(count same "(j->>'item')::bigint = $a AND j->>'kind' = 'transition'")" 1 \
   "transition() is announced as kind transition (the failed second one is not)"
is "$(count same "(j->>'item')::bigint IN ($b, $c) AND j->>'kind' = 'transition'")" 2 \
   "transition_many() is announced once per item"
is "$(count same "(j->>'item')::bigint = $b AND j->>'kind' = 'comment'")" 0 \
   "a rolled-back change sends nothing"
is "$(qd "SELECT count(*) FROM (SELECT payload::json AS j FROM same) p
          JOIN workqueue.item_event e ON e.id = (j->>'event')::bigint
         WHERE e.item_id = (j->>'item')::bigint AND e.kind = j->>'kind' AND e.queue = j->>'queue'
           AND e.to_step IS NOT DISTINCT FROM j->>'step'")" 12 \
   "each notification matches the event it announces (item, kind, queue, step)"
is "$(qd "SELECT count(*) FROM (SELECT seq, (payload::json->>'item')::bigint AS item, (payload::json->>'event')::bigint AS ev,
                                     lag((payload::json->>'event')::bigint)
                                         OVER (PARTITION BY payload::json->>'item' ORDER BY seq) AS prev
                                FROM same) s WHERE ev <= prev")" 0 \
   "per item, notifications arrive in event order"
ok "$(grep -q 'received from server process with PID' "$tmp/listen.out" &&
      ! grep 'received from server process' "$tmp/listen.out" |
        grep -qv "PID $(qd "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND backend_type = '$(worker_type announce)'")\." &&
      echo 0 || echo 1)" \
   "every notification comes from the announce worker, none from a writer"

# ----------------------------------------------- commit order, late commits
# A transaction writes an event and stays open; a later one writes and
# commits.  The later one is announced; the open one is not, until it
# commits -- then it is, though its event id is the lower one.
: >"$tmp/listen.out"
listen_stop
listen_start "$tmp/listen.out" "$db"
d=$(qd "SELECT workqueue.add('nq', '{\"title\": \"late\"}')")
e=$(qd "SELECT workqueue.add('nq', '{\"title\": \"early\"}')")
wait_until 10 "the two created notifications" listen_heard "$tmp/listen.out" 2 || true
psql -X -q -At -d "$db" >"$tmp/late.out" 2>&1 <<SQL &
SET application_name = 'wq_notify_late';
BEGIN;
SELECT workqueue.comment($d, 'written first, committed last', 'wn');
SELECT pg_sleep(30);
COMMIT;
SQL
late_pid=$!
wait_until 10 "the late transaction to write its event and sleep" \
    q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wq_notify_late' AND query LIKE '%pg_sleep%'" || true
qd "SELECT workqueue.comment($e, 'written second, committed first', 'wn')" >/dev/null
wait_until 10 "the notification of the early commit" listen_heard "$tmp/listen.out" 1 "\"item\" : $e, .*\"comment\"" || true
ok "$(listen_heard "$tmp/listen.out" 1 "\"item\" : $e, .*\"comment\"" && echo 0 || echo 1)" \
   "a committed event is announced while an older transaction with an event is still open"
ok "$(listen_heard "$tmp/listen.out" 1 "\"item\" : $d, .*\"comment\"" && echo 1 || echo 0)" \
   "the open transaction's event is not announced before it commits"
qd "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'wq_notify_late'" >/dev/null
wait "$late_pid" 2>/dev/null || true
late_pid=
# pg_cancel_backend ends the sleep with an error, so the transaction rolls
# back: run it again, this time letting it commit after the early one.
psql -X -q -At -d "$db" >"$tmp/late.out" 2>&1 <<SQL &
SET application_name = 'wq_notify_late';
BEGIN;
SELECT workqueue.comment($d, 'written first, committed last', 'wn');
SELECT pg_sleep(1);
COMMIT;
SQL
late_pid=$!
wait_until 10 "the late transaction to write its event and sleep" \
    q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wq_notify_late' AND query LIKE '%pg_sleep%'" || true
qd "SELECT workqueue.comment($e, 'again written second, committed first', 'wn')" >/dev/null
wait "$late_pid" 2>/dev/null || true
late_pid=
wait_until 10 "the notification of the late commit" listen_heard "$tmp/listen.out" 1 "\"item\" : $d, .*\"comment\"" || true
load late "$tmp/listen.out"
is "$(count late "(j->>'item')::bigint = $d AND j->>'kind' = 'comment'")" 1 \
   "the event of the transaction that committed last is announced, once (the rolled-back one never)"
is "$(qd "SELECT count(*) FROM workqueue.item_event d, workqueue.item_event e
          WHERE d.item_id = $d AND d.kind = 'comment' AND e.item_id = $e AND e.kind = 'comment'
            AND e.payload->>'body' LIKE 'again%' AND d.id < e.id")" 1 \
   "(its event id is lower than that of the event announced before it)"

# ---------------------------------------------------------------- bulk
: >"$tmp/listen.out"
listen_stop
listen_start "$tmp/listen.out" "$db"
qd "SELECT count(*) FROM workqueue.upsert_items('nq', (SELECT jsonb_agg(jsonb_build_object('external_id', 'B-' || g)) FROM generate_series(1, 1500) g))" >/dev/null
wait_until 10 "the bulk summary" listen_heard "$tmp/listen.out" 1 '"bulk": true' || true
is "$(listen_payloads "$tmp/listen.out" | grep -c '{"queue": "nq", "kind": "synced", "inserted": 1500, "updated": 0, "bulk": true}')" 1 \
   "1,500 new items in one call: one summary notification"
is "$(listen_payloads "$tmp/listen.out" | grep -c '"kind" : "created"')" 0 "and no notification per item"

# ---------------------------------------------------- items with a scope
# PostgreSQL has no privilege on LISTEN: the announcement of an event of an
# item with a scope says only its event id; a role with the scope reads the
# event through row-level security, one without it reads nothing.
: >"$tmp/listen.out"
listen_stop
listen_start "$tmp/listen.out" "$db"
qd "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wq_notify_in') THEN CREATE ROLE wq_notify_in; END IF;
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wq_notify_out') THEN CREATE ROLE wq_notify_out; END IF;
    END \$\$;
    SELECT workqueue.create_queue('nq_secret');
    SELECT workqueue.alter_queue('nq_secret', '{\"scope\": [\"secret\"]}');
    SELECT workqueue.grant_scope('wq_notify_in', 'secret')" >/dev/null
g=$(qd "SELECT workqueue.add('nq_secret', '{\"title\": \"hidden\"}')")
qd "SELECT workqueue.comment($g, 'hidden comment', 'wn')" >/dev/null
qd "SELECT count(*) FROM workqueue.upsert_items('nq_secret', (SELECT jsonb_agg(jsonb_build_object('external_id', 'S-' || x)) FROM generate_series(1, 1200) x))" >/dev/null
wait_until 10 "three notifications about the hidden items" listen_heard "$tmp/listen.out" 3 || true
load hidden "$tmp/listen.out"
gev=$(qd "SELECT string_agg(id::text, ',' ORDER BY id) FROM workqueue.item_event WHERE item_id = $g")
is "$(qd "SELECT string_agg(payload, ' ' ORDER BY seq) FROM hidden WHERE payload NOT LIKE '%bulk%'")" \
   "$(qd "SELECT string_agg(format('{\"event\" : %s}', id), ' ' ORDER BY id) FROM workqueue.item_event WHERE item_id = $g")" \
   "an event of an item with a scope is announced by its event id alone ({\"event\" : N}, events $gev)"
is "$(qd "SELECT count(*) FROM hidden WHERE payload LIKE '%bulk%'")|$(qd "SELECT count(*) FROM hidden WHERE payload::json->>'bulk' = 'true' AND payload::json->>'queue' IS NULL AND (payload::json->>'event')::bigint > 0")" "1|1" \
   "a bulk of them is one summary without queue or counts ({\"event\": first, \"bulk\": true})"
is "$(grep -c 'nq_secret\|hidden\|S-' <(listen_payloads "$tmp/listen.out") || true)" 0 \
   "no payload names the queue, the item or its data"
first=${gev%%,*}
is "$(psql -XAtq -d "$db" -c "SET ROLE wq_notify_in" -c "SELECT count(*) FROM workqueue.item_event WHERE id = $first")|$(psql -XAtq -d "$db" -c "SET ROLE wq_notify_out" -c "SELECT count(*) FROM workqueue.item_event WHERE id = $first")" "1|0" \
   "a role with the scope reads the announced event; a role without it reads nothing"

# ------------------------------------------- the announce worker restarts
# The announce worker is held up (another session locks its state row), an
# event commits, the worker is terminated before it could announce it: the
# next announce worker announces it, once.
: >"$tmp/listen.out"
listen_stop
listen_start "$tmp/listen.out" "$db"
psql -X -q -At -d "$db" >/dev/null 2>&1 <<'SQL' &
SET application_name = 'wq_notify_lock';
BEGIN;
SELECT 1 FROM workqueue.announce_state FOR UPDATE;
SELECT pg_sleep(60);
SQL
late_pid=$!
wait_until 10 "the session locking announce_state" \
    q_any "SELECT 1 FROM pg_stat_activity WHERE application_name = 'wq_notify_lock' AND query LIKE '%pg_sleep%'" || true
old=$(qd "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND backend_type = '$(worker_type announce)'")
f=$(qd "SELECT workqueue.add('nq', '{\"title\": \"announced by the next worker\"}')")
wait_until 10 "the announce worker to wait for the lock" \
    q_is "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $old" Lock || true
ok "$(listen_heard "$tmp/listen.out" 1 "\"item\" : $f, " && echo 1 || echo 0)" \
   "(the event of item $f is committed and not announced: the worker waits)"
qd "SELECT pg_terminate_backend($old)" >/dev/null
wait_until 10 "the announce worker $old to exit" q_is "SELECT count(*) FROM pg_stat_activity WHERE pid = $old" 0 || true
qd "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'wq_notify_lock'" >/dev/null
wait "$late_pid" 2>/dev/null || true
late_pid=
wait_until 20 "the notification of item $f from a new announce worker" listen_heard "$tmp/listen.out" 1 "\"item\" : $f, " || true
is "$(listen_payloads "$tmp/listen.out" | grep -c "\"item\" : $f, .*\"created\"")" 1 \
   "an event left unannounced by a terminated announce worker is announced, once, by the next"
ok "$([[ $(qd "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND backend_type = '$(worker_type announce)'") != "$old" ]] && echo 0 || echo 1)" \
   "(by a new announce worker)"

listen_stop
finish || exit 1
