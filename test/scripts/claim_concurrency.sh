#!/usr/bin/env bash
# test/scripts/claim_concurrency.sh — claim never hands one item to two
# callers (SPEC §3), and claim + transition_many in one transaction resolves
# every item exactly once under concurrency (SPEC §5).
#
# Round 1: 2000 items of mixed priorities; 8 pgbench clients call
# claim(queue, 1) until the queue is empty and record every row they get in
# a plain table without constraints, so that a double claim would show up.
# Round 2: 1000 fresh items; 8 clients each run, in one transaction,
# claim(queue, 5) followed by transition_many(ids, 'resolve').
# Round 3: 200 items with 20 ms leases, claimed by 8 clients for 3 s: claim
# takes expired leases back and hands the items out again; no item may go to
# a second caller while an earlier lease on it is live.
#
# Uses whatever PGHOST/PGPORT/PGUSER/PGPASSWORD the environment gives; works
# in a database of its own, created fresh and dropped at the end.  Prints
# "ok N - ..." / "not ok N - ..." lines and "N passed, M failed"; exits 1 if
# anything failed.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"    # ok, is, finish
set -e

db=wq_claim_concurrency
clients=8
items1=2000
items2=1000
items3=200
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-claim.XXXXXX")

cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT



# is GOT WANT DESCRIPTION

q() {                       # one value from a query
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

# run_pgbench LABEL ARGS...: runs pgbench, shows its output as comments and
# reports whether every client finished without error.
run_pgbench() {
    local label=$1; shift
    local rc=0
    pgbench -n "$@" "$db" >"$tmp/$label.out" 2>&1 || rc=$?
    sed 's/^/# /' "$tmp/$label.out"
    if [[ $rc == 0 ]] && ! grep -qiE 'aborted|error' "$tmp/$label.out"; then
        ok 0 "$label: every pgbench client finished without error"
    else
        ok 1 "$label: every pgbench client finished without error (pgbench exit status $rc)"
    fi
}

start=$SECONDS
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL
CREATE EXTENSION workqueue;
SELECT workqueue.create_queue('cq');
SELECT workqueue.create_queue('cq2');
SELECT workqueue.create_queue('cq3', lease_timeout => '20 milliseconds');
-- Deliberately no key and no unique constraint: a double claim must be visible.
CREATE TABLE claims (item_id bigint, worker text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE claims2 (item_id bigint, worker text);
CREATE TABLE claims3 (item_id bigint, worker text);
-- Mixed priorities, spread so that every priority is claimed concurrently with the others.
SELECT count(workqueue.add('cq', jsonb_build_object('n', g), 1 + (g * 7919) % 5)) FROM generate_series(1, $items1) g;
SELECT count(workqueue.add('cq2', jsonb_build_object('n', g), 1 + (g * 7919) % 5)) FROM generate_series(1, $items2) g;
SELECT count(workqueue.add('cq3', jsonb_build_object('n', g), 1 + (g * 7919) % 5)) FROM generate_series(1, $items3) g;
SQL

echo "# round 1: $clients clients claim 1 item at a time from $items1 items"
cat >"$tmp/claim.sql" <<'SQL'
INSERT INTO claims (item_id, worker) SELECT id, 'w' || :client_id FROM workqueue.claim('cq', 1, 'w' || :client_id);
SQL
# 8 x 400 = 3200 calls for 2000 items: the queue runs dry before the end.
run_pgbench "round 1" -c "$clients" -j 2 -t 400 -f "$tmp/claim.sql"

is "$(q "SELECT count(*) FROM claims")" "$items1" "round 1: $items1 claims were handed out"
is "$(q "SELECT count(DISTINCT item_id) FROM claims")" "$items1" "round 1: $items1 distinct items were claimed"
is "$(q "SELECT count(*) FROM (SELECT item_id FROM claims GROUP BY item_id HAVING count(*) > 1) d")" 0 \
   "round 1: no item was handed to two callers"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq' AND status <> 'in_progress'")" 0 \
   "round 1: the queue is empty: every item is in_progress"
is "$(q "SELECT count(*) FROM workqueue.item i JOIN claims c ON c.item_id = i.id
          WHERE i.queue = 'cq' AND i.claimed_by = c.worker AND i.lease_until > now()")" "$items1" \
   "round 1: every item's claimed_by is the worker that got it, with a live lease"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cq' AND kind = 'claimed'")" "$items1" \
   "round 1: exactly $items1 'claimed' events"
is "$(q "SELECT count(*) FROM (SELECT item_id FROM workqueue.item_event WHERE queue = 'cq' AND kind = 'claimed'
          GROUP BY item_id HAVING count(*) > 1) d")" 0 \
   "round 1: no item has two 'claimed' events"
is "$(q "SELECT count(*) FROM workqueue.item_event e JOIN claims c ON c.item_id = e.item_id
          WHERE e.queue = 'cq' AND e.kind = 'claimed' AND e.actor = c.worker")" "$items1" \
   "round 1: each 'claimed' event names the worker that got the item"
is "$(q "SELECT count(DISTINCT worker) FROM claims")" "$clients" "round 1: all $clients clients claimed items"

echo "# round 2: $clients clients claim 5 and resolve them with transition_many in one transaction, $items2 items"
cat >"$tmp/claim_resolve.sql" <<'SQL'
BEGIN;
WITH c AS (SELECT id FROM workqueue.claim('cq2', 5, 'w' || :client_id)),
     r AS (INSERT INTO claims2 (item_id, worker) SELECT id, 'w' || :client_id FROM c)
SELECT 'ARRAY[' || coalesce(string_agg(id::text, ','), '') || ']::bigint[]' AS ids FROM c \gset
SELECT workqueue.transition_many(:ids, 'resolve', '{}', 'w' || :client_id);
COMMIT;
SQL
# 8 x 40 = 320 batches of up to 5 for 1000 items (200 full batches).
run_pgbench "round 2" -c "$clients" -j 2 -t 40 -f "$tmp/claim_resolve.sql"

is "$(q "SELECT count(*) || '/' || count(DISTINCT item_id) FROM claims2")" "$items2/$items2" \
   "round 2: $items2 claims of $items2 distinct items"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq2' AND status = 'resolved' AND step = 'resolved'
          AND claimed_by IS NULL AND lease_until IS NULL AND resolved_at IS NOT NULL")" "$items2" \
   "round 2: all $items2 items are resolved, unclaimed, with resolved_at set"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cq2' AND kind = 'claimed'")" "$items2" \
   "round 2: exactly $items2 'claimed' events"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cq2' AND kind = 'transition'")" "$items2" \
   "round 2: exactly $items2 'transition' events"
is "$(q "SELECT count(*) FROM (SELECT item_id, kind FROM workqueue.item_event
          WHERE queue = 'cq2' AND kind IN ('claimed', 'transition') GROUP BY item_id, kind HAVING count(*) > 1) d")" 0 \
   "round 2: no item was claimed or resolved twice"
is "$(q "SELECT count(*) FROM workqueue.item_event e JOIN claims2 c ON c.item_id = e.item_id
          WHERE e.queue = 'cq2' AND e.kind = 'transition' AND e.actor = c.worker
            AND e.from_step = 'review' AND e.to_step = 'resolved'")" "$items2" \
   "round 2: each item was resolved (review -> resolved) by the worker that claimed it"

echo "# round 3: $clients clients claim for 3 s from $items3 items whose leases last 20 ms, so that"
echo "#          expired leases are taken back and handed out again all the time"
cat >"$tmp/claim_expiring.sql" <<'SQL'
INSERT INTO claims3 (item_id, worker) SELECT id, 'w' || :client_id FROM workqueue.claim('cq3', 1, 'w' || :client_id);
SQL
run_pgbench "round 3" -c "$clients" -j 2 -T 3 -f "$tmp/claim_expiring.sql"

# The item's history of claims and expiries, oldest first, with each claim's lease.
hist="SELECT item_id, id, kind, at, (payload->>'lease_until')::timestamptz AS lease_until,
             lag(kind) OVER w AS prev_kind, lag((payload->>'lease_until')::timestamptz) OVER w AS prev_lease
        FROM workqueue.item_event
       WHERE queue = 'cq3' AND kind IN ('claimed', 'lease_expired', 'released')
      WINDOW w AS (PARTITION BY item_id ORDER BY id)"
claims3=$(q "SELECT count(*) FROM claims3")
echo "# round 3: $claims3 claims, $(q "SELECT count(DISTINCT item_id) FROM claims3") distinct items"
is "$(q "SELECT count(*) > $items3 FROM claims3")" t "round 3: items were claimed again after their leases expired"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'cq3' AND kind = 'claimed'")" "$claims3" \
   "round 3: one 'claimed' event per claim handed out"
is "$(q "SELECT count(*) FROM ($hist) h WHERE kind = 'claimed' AND prev_kind = 'claimed'")" 0 \
   "round 3: no item was claimed again before its previous claim ended"
is "$(q "SELECT count(*) FROM ($hist) h WHERE kind = 'claimed' AND prev_lease IS NOT NULL AND at <= prev_lease")" 0 \
   "round 3: no item was handed out while an earlier lease on it was live"
is "$(q "SELECT count(*) FROM ($hist) h WHERE kind = 'lease_expired' AND prev_kind IS DISTINCT FROM 'claimed'")" 0 \
   "round 3: every 'lease_expired' ends a claim"
is "$(q "SELECT count(*) FROM workqueue.item i WHERE queue = 'cq3' AND (status = 'in_progress') <>
          ((SELECT kind FROM workqueue.item_event e WHERE e.queue = i.queue AND e.item_id = i.id
             AND kind IN ('claimed', 'lease_expired', 'released') ORDER BY id DESC LIMIT 1) = 'claimed')")" 0 \
   "round 3: each item's status agrees with its last claim event"

echo "# runtime $((SECONDS - start)) s"
finish || exit 1
