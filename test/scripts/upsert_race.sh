#!/usr/bin/env bash
# test/scripts/upsert_race.sh — upsert_items under concurrency, and its
# notifications (SPEC §3, §4).
#
# 1. Two sessions upsert the same new external id; the first holds its
#    transaction open.  The second must wait for it, then see the item and
#    update it: no unique violation, no second item.
# 2. 8 pgbench clients upsert the same 300 new external ids, each call in a
#    random order with its own data.  No client may fail (no unique
#    violation, no deadlock), and there must be exactly 300 items with one
#    "created" event each.
# 3. Under REPEATABLE READ the same conflict is a serialization failure.
# 4. Notifications: one per changed item up to 1000, one summary above.
#
# Uses whatever PGHOST/PGPORT/PGUSER/PGPASSWORD the environment gives; works
# in a database of its own, created fresh and dropped at the end.
# Prints "ok N - ..." / "not ok N - ..."
# lines and "N passed, M failed"; exits 1 if anything failed.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"    # ok, is, finish
set -e
cd "$(dirname "$0")/../.."

db=wq_upsert_race
clients=8
ids=300
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-upsert-race.XXXXXX")
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    listen_stop
    unserve_database "$db" || true
    wait_until 20 "the workers of $db to stop" \
        q_is "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type LIKE 'workqueue%'" 0 || true
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT




q() {                       # one value from a query
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}
# holding NAME: the session with that application_name has upserted and holds
# its transaction open (it is in its pg_sleep)
holding() { q_is "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND wait_event = 'PgSleep'" 1; }

start=$SECONDS
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION workqueue" >/dev/null
q "SELECT workqueue.create_queue('race'), workqueue.create_queue('race2'), workqueue.create_queue('rr'),
          workqueue.create_queue('note')" >/dev/null

# ---------------------------------------------------------------------------
echo "# 1. two sessions upsert the same new external id"
# (the first holds its transaction open with pg_sleep: that is the race tested)
PGAPPNAME=race_a psql -X -q -At -d "$db" >"$tmp/a.out" 2>&1 <<'SQL' &
BEGIN;
SELECT inserted, updated, unchanged FROM workqueue.upsert_items('race', '[{"external_id": "X-1", "data": {"by": "a"}}]', 'a');
SELECT pg_sleep(2);
COMMIT;
SQL
pids+=($!)
a_pid=$!
wait_until 5 "the first session to upsert X-1 and hold its transaction" holding race_a || true
psql -X -q -At -d "$db" >"$tmp/b.out" 2>&1 <<'SQL' &
SELECT inserted || '/' || updated || '/' || unchanged
  FROM workqueue.upsert_items('race', '[{"external_id": "X-1", "data": {"by": "b"}}, {"external_id": "X-2"}]', 'b');
SQL
pids+=($!)
b_pid=$!
wait_until 1.5 "the second session to wait for a lock" \
    q_any "SELECT 1 FROM pg_stat_activity WHERE datname = '$db' AND query LIKE '%external_id\": \"X-2%' AND wait_event_type = 'Lock'" || true
is "$(q "SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity
          WHERE datname = '$db' AND query LIKE '%external_id\": \"X-2%' AND pid <> pg_backend_pid()")" \
   "Lock:transactionid" "the second session waits for the first one's transaction"
a_rc=0; wait "$a_pid" || a_rc=$?
b_rc=0; wait "$b_pid" || b_rc=$?
sed 's/^/# a: /' "$tmp/a.out"; sed 's/^/# b: /' "$tmp/b.out"
is "$a_rc/$b_rc" "0/0" "both sessions succeed"
ok "$(grep -qi error "$tmp/a.out" "$tmp/b.out" && echo 1 || echo 0)" "neither reports an error (no unique violation)"
is "$(tail -1 "$tmp/b.out")" "1/1/0" "the second session inserts X-2 and updates X-1, which the first inserted"
is "$(q "SELECT count(*) || ' ' || string_agg(data->>'by', ',') FROM workqueue.item WHERE queue = 'race' AND external_id = 'X-1'")" \
   "1 b" "there is one item X-1, with the data of the later upsert"
is "$(q "SELECT string_agg(kind || ' by ' || actor || coalesce(' ' || (payload->'old'->'data'->>'by') || '->' || (payload->'new'->'data'->>'by'), ''), ', ' ORDER BY id)
          FROM workqueue.item_event e WHERE queue = 'race'
           AND item_id = (SELECT id FROM workqueue.item WHERE queue = 'race' AND external_id = 'X-1')")" \
   "created by a, synced by b a->b" "its history: created by the first, synced by the second with the right old value"

# ---------------------------------------------------------------------------
echo "# 2. $clients clients upsert the same $ids new external ids in random orders"
cat >"$tmp/race.sql" <<SQL
SELECT * FROM workqueue.upsert_items('race2', (
    SELECT jsonb_agg(jsonb_build_object('external_id', 'R-' || g, 'data', jsonb_build_object('client', :client_id, 'n', g))
                     ORDER BY random())
      FROM generate_series(1, $ids) g), 'c' || :client_id);
SQL
rc=0
pgbench -n -c "$clients" -j 2 -t 10 -f "$tmp/race.sql" "$db" >"$tmp/pgbench.out" 2>&1 || rc=$?
sed 's/^/# /' "$tmp/pgbench.out"
ok "$([[ $rc == 0 ]] && ! grep -qiE 'aborted|error|deadlock' "$tmp/pgbench.out" && echo 0 || echo 1)" \
   "every client finished without error: no unique violation, no deadlock"
is "$(q "SELECT count(*) || '/' || count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'race2'")" \
   "$ids/$ids" "$ids items, one per external id"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'race2' AND kind = 'created'")" \
   "$ids" "one 'created' event per item"
is "$(q "SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.queue = e.queue AND i.id = e.item_id
          WHERE e.queue = 'race2' AND e.kind = 'synced'
            AND e.payload->'old'->'data' = e.payload->'new'->'data'")" \
   "0" "no 'synced' event records a change that was none"
is "$(q "SELECT count(*) FROM workqueue.item i WHERE queue = 'race2' AND 'c' || (data->>'client') <> (
          SELECT e.actor FROM workqueue.item_event e WHERE e.queue = i.queue AND e.item_id = i.id ORDER BY e.id DESC LIMIT 1)")" \
   "0" "each item's data was written by the client of its last event"
echo "# $(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'race2' AND kind = 'synced'") 'synced' events"

# ---------------------------------------------------------------------------
echo "# 3. REPEATABLE READ"
# (the first session holds its transaction open with pg_sleep: the conflict tested)
PGAPPNAME=rr_a psql -X -q -At -d "$db" >"$tmp/rr_a.out" 2>&1 <<'SQL' &
BEGIN;
SELECT inserted FROM workqueue.upsert_items('rr', '[{"external_id": "Y-1"}]');
SELECT pg_sleep(1.5);
COMMIT;
SQL
pids+=($!)
a_pid=$!
wait_until 5 "the first session to upsert Y-1 and hold its transaction" holding rr_a || true
psql -X -q -At -d "$db" >"$tmp/rr_b.out" 2>&1 <<'SQL' || true
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 1;
\set VERBOSITY verbose
SELECT inserted FROM workqueue.upsert_items('rr', '[{"external_id": "Y-1", "data": {"v": 2}}]');
ROLLBACK;
SQL
wait "$a_pid" || true
sed 's/^/# /' "$tmp/rr_b.out"
ok "$(grep -q '40001' "$tmp/rr_b.out" && echo 0 || echo 1)" \
   "a REPEATABLE READ upsert of an id inserted concurrently fails with a serialization failure (40001)"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'rr'")" "1" "and creates no second item"

# ---------------------------------------------------------------------------
echo "# 4. notifications"
# announced by the announce worker of a database the workers serve
serve_database "$db"
# (the worker's first rounds announce what the sections above wrote: let
# them pass before listening, or the listener hears them too -- it did
# once, on a loaded machine)
PGDATABASE=$db wait_until 30 "the announce worker to announce the events written so far" \
    q_any "SELECT 1 FROM workqueue.announce_state WHERE announced_at IS NOT NULL AND pending IS NULL"
listen_start "$tmp/listen.out" "$db"
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
SELECT 'call' FROM workqueue.upsert_items('note', '[{"external_id": "N-1"}, {"external_id": "N-2"}, {"external_id": "N-3"}]', 's');
SELECT 'call' FROM workqueue.upsert_items('note', '[{"external_id": "N-1"}, {"external_id": "N-2", "data": {"v": 1}}]', 's');
SQL
wait_until 10 "four notifications" listen_heard "$tmp/listen.out" 4 || true
notes=$(listen_payloads "$tmp/listen.out")
echo "$notes" | sed 's/^/# /'
is "$(echo "$notes" | grep -c '"kind" : "created"')" "3" "three new items: three 'created' notifications"
is "$(echo "$notes" | grep -c '"kind" : "synced"')" "1" "one changed and one unchanged item: one 'synced' notification"
ok "$(echo "$notes" | grep '"kind" : "synced"' | grep -q '"queue" : "note"' && echo 0 || echo 1)" \
   "a notification names the queue"
listen_stop
listen_start "$tmp/listen.out" "$db"
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
SELECT 'call' FROM workqueue.upsert_items('note', (SELECT jsonb_agg(jsonb_build_object('external_id', 'M-' || g)) FROM generate_series(1, 1000) g));
SELECT 'call' FROM workqueue.upsert_items('note', (SELECT jsonb_agg(jsonb_build_object('external_id', 'M-' || g, 'data', jsonb_build_object('g', g))) FROM generate_series(501, 1501) g));
SQL
wait_until 10 "1001 notifications" listen_heard "$tmp/listen.out" 1001 || true
notes=$(listen_payloads "$tmp/listen.out")
listen_stop
is "$(echo "$notes" | grep -c '"kind" : "created"')" "1000" "1000 new items: 1000 notifications"
is "$(echo "$notes" | wc -l)" "1001" \
   "1001 changed items: one notification for the second call"
is "$(echo "$notes" | grep -c '{"queue": "note", "kind": "synced", "inserted": 501, "updated": 500, "bulk": true}')" "1" \
   "it is the summary: {\"queue\": ..., \"kind\": \"synced\", \"inserted\": 501, \"updated\": 500, \"bulk\": true}"

echo "# runtime $((SECONDS - start)) s"
finish || exit 1
