#!/usr/bin/env bash
# test/scripts/claim_plan.sh — a claim's plan does not depend on statistics
# (issue 12, "plans that don't depend on luck").
#
# A database whose item table was never analyzed (autovacuum off on it),
# queues created and loaded right before the claims.  Every statement
# claim() runs is caught by auto_explain (nested statements, actual rows,
# JSON) in four cases:
#   1. claim(q, 1) and claim(q, 10) in a new session while the table holds
#      1,020 items (q 1,000): plans made now (0.5's claim sorted the whole
#      queue, read through item_source_idx, here);
#   2. the same session again, after q and a queue that had 20 items grew to
#      50,000 and 49,020 in another session (the plans kept since);
#   3. a lease of the queue has run out: the claim that takes it back
#      (its second statement);
#   4. the same on a queue whose items all carry a scope, by a caller who
#      is not an administrator (the scope check reads the grants);
#   5. a queue whose items are at a step with a workflow role, by a member
#      (the role check reads the step's role and the membership).
# In each, the claim's statements must read item_inbox_idx in order and
# stop after n rows (no sequential or bitmap scan of item, no other index
# of item except probes by id, a TID scan of the rows locked (one per loop)
# and the lease indexes reading the few leases
# that have run out, no sort of more
# than the items taken, no JIT).
#
# Uses whatever PGHOST/PGPORT/PGUSER/PGPASSWORD the environment gives; works
# in a database of its own, created fresh and dropped at the end.  Prints
# "ok N - ..." / "not ok N - ..." lines and "N passed, M failed".
set -euo pipefail
source "$(dirname "$0")/../lib.sh"    # ok, is, finish
set -e

db=wq_claim_plan
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-claim-plan.XXXXXX")
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    psql -XAtq -d postgres -c "DROP ROLE IF EXISTS wq_plan_reader" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
pq() { psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c "SET client_min_messages = warning" -c "$1"; }

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
# load QUEUE FROM TO [SCOPE]: items FROM..TO into QUEUE, priorities 1-5
# spread over them, as one upsert_items call (the usual first load)
load() {
    pq "SELECT inserted FROM workqueue.upsert_items('$1',
            (SELECT jsonb_agg(jsonb_build_object('external_id', 'L-' || g, 'priority', 1 + (g * 7919) % 5,
                                                 'data', jsonb_build_object('n', g)) ORDER BY g)
               FROM generate_series($2, $3) g))" >/dev/null
}
pq "CREATE EXTENSION workqueue;
    ALTER TABLE workqueue.item SET (autovacuum_enabled = off);
    ALTER TABLE workqueue.item_event SET (autovacuum_enabled = off);
    SELECT workqueue.create_queue('fresh');
    SELECT workqueue.create_queue('grows');
    SELECT workqueue.create_queue('scoped');
    SELECT workqueue.alter_queue('scoped', '{\"scope\": [\"emea\"]}')" >/dev/null
load fresh 1 1000
load grows 1 20
psql -XAtq -d postgres -c "DROP ROLE IF EXISTS wq_plan_reader" >/dev/null 2>&1
pq "CREATE ROLE wq_plan_reader; GRANT USAGE ON SCHEMA workqueue TO wq_plan_reader;
    SELECT workqueue.grant_scope('wq_plan_reader', 'emea')" >/dev/null
explain="LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on; SET auto_explain.log_format = json; SET auto_explain.log_level = notice;
SET client_min_messages = notice;"
# case 1 and 2 in one session: claims planned while the table holds 1,020
# items, then, after the queues grew in another session, again
grow="SELECT u.inserted FROM (VALUES ('fresh'), ('grows'), ('scoped')) v(q), LATERAL workqueue.upsert_items(q,
          (SELECT jsonb_agg(jsonb_build_object('external_id', q || '-' || g, 'priority', 1 + (g * 7919) % 5,
                                               'data', jsonb_build_object('n', g)) ORDER BY g)
             FROM generate_series(1001, 50000) g)) u"
grow=$(tr '\n' ' ' <<<"$grow")     # one line of \!
{
    echo "$explain"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('fresh', 1, 'w'); SELECT count(*) FROM workqueue.claim('fresh', 10, 'w'); ROLLBACK;"
    echo "\\! psql -XAtq -d $db -c \"$grow\" >/dev/null"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('fresh', 1, 'w'); SELECT count(*) FROM workqueue.claim('fresh', 10, 'w'); ROLLBACK;"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('grows', 1, 'w'); SELECT count(*) FROM workqueue.claim('grows', 10, 'w'); ROLLBACK;"
} >"$tmp/s1.sql"
psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/s1.sql" >"$tmp/s1.out" 2>"$tmp/s1.log"
is "$(pq "SELECT string_agg(queue || ':' || n, ' ' ORDER BY queue) FROM (SELECT queue, count(*) AS n FROM workqueue.item GROUP BY queue) c")" \
   "fresh:50000 grows:49020 scoped:49000" "the queues grew from 1,000, 20 and 0 items to 50,000, 49,020 and 49,000 in another session"
is "$(pq "SELECT c.reltuples < 0 AND s.last_analyze IS NULL AND s.last_autoanalyze IS NULL
            FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'workqueue.item'::regclass")" t \
   "workqueue.item (148,020 items now) was never analyzed"

# case 3: two leases of queue fresh have run out (set back by hand)
pq "SELECT count(*) FROM workqueue.claim('fresh', 2, 'old');
    UPDATE workqueue.item SET lease_until = now() - interval '1 minute' WHERE queue = 'fresh' AND status = 'in_progress'" >/dev/null
{
    echo "$explain"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('fresh', 1, 'w'); ROLLBACK;"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('fresh', 10, 'w'); ROLLBACK;"
} >"$tmp/s3.sql"
psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/s3.sql" >"$tmp/s3.out" 2>"$tmp/s3.log"
# case 4: a caller with a scope grant, on queue scoped
{
    echo "$explain"
    echo "SET ROLE wq_plan_reader;"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('scoped', 1); SELECT count(*) FROM workqueue.claim('scoped', 10); ROLLBACK;"
} >"$tmp/s4.sql"
psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/s4.sql" >"$tmp/s4.out" 2>"$tmp/s4.log"
# case 5: a queue whose start step has a workflow role, by a member (the
# role check reads the step's role and the membership once per statement)
pq "SELECT workqueue.define_workflow('roled', '{\"steps\": [{\"name\": \"a\", \"role\": \"rr\", \"start\": true},
        {\"name\": \"done\", \"kind\": \"resolved\"}], \"transitions\": [{\"name\": \"fin\", \"from\": \"a\", \"to\": \"done\"}]}');
    SELECT workqueue.create_queue('roles', 'roled');
    SELECT workqueue.add_member('rr', 'w')" >/dev/null
load roles 1 1000
{
    echo "$explain"
    echo "BEGIN; SELECT count(*) FROM workqueue.claim('roles', 1, 'w'); SELECT count(*) FROM workqueue.claim('roles', 10, 'w'); ROLLBACK;"
} >"$tmp/s5.sql"
psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/s5.sql" >"$tmp/s5.out" 2>"$tmp/s5.log"
is "$(tr '\n' ' ' <"$tmp/s1.out")|$(tr '\n' ' ' <"$tmp/s3.out")|$(tr '\n' ' ' <"$tmp/s4.out")|$(tr '\n' ' ' <"$tmp/s5.out")" \
   "1 10 1 10 1 10 |1 10 |1 10 |1 10 " "every claim took its n items"

# plans FILE: for every plan of a claim statement in FILE (auto_explain's
# JSON), one line "N|problems" -- N the items it took, problems what it did
# that a claim must not (empty: nothing)
plans() {
    python3 - "$1" <<'PY'
import json, sys
text, dec, pos = open(sys.argv[1]).read(), json.JSONDecoder(), 0
def walk(n):
    yield n
    for c in n.get("Plans", []):
        yield from walk(c)
while True:
    i = text.find("{", pos)
    if i < 0:
        break
    try:
        doc, end = dec.raw_decode(text[i:])
    except ValueError:
        pos = i + 1
        continue
    pos = i + end
    q = doc.get("Query Text", "")
    if not (q.startswith("WITH c AS") or q.startswith("WITH o AS")):
        continue
    taken, bad = None, []
    for n in walk(doc["Plan"]):
        t = n["Node Type"]
        if t == "ModifyTable" and n.get("Relation Name") == "item":
            taken = n["Actual Rows"]
        if "Sort" in t and n["Actual Rows"] > 20:
            bad.append("sorts %d rows" % n["Actual Rows"])
        if n.get("Relation Name") != "item" or "Scan" not in t:
            continue
        ix, rows = n.get("Index Name", "-"), n["Actual Rows"] * n["Actual Loops"]
        removed = n.get("Rows Removed by Filter", 0)
        if ix == "item_inbox_idx":
            if rows > 10 or removed > 0:
                bad.append("reads %d rows of item_inbox_idx (%d removed)" % (rows, removed))
        elif ix in ("item_pkey", "item_id_idx") and "(id = " in n.get("Index Cond", ""):
            if n["Actual Rows"] > 1:
                bad.append("probes %s for %d rows" % (ix, n["Actual Rows"]))
        elif ix in ("item_lease_idx", "item_lease_due_idx") and rows + removed <= 10:
            pass    # the leases that have run out (the sweep returns them every second)
        elif t == "Tid Scan":
            if n["Actual Rows"] > 1:    # the row versions the claim has locked, one per loop
                bad.append("Tid Scan of %d rows per loop" % n["Actual Rows"])
        else:
            bad.append("%s %s (%d rows)" % (t, ix, rows))
    if "JIT" in doc:
        bad.append("JIT")
    print("%s|%s" % (taken, "; ".join(bad)))
PY
}
check() {   # check FILE WANT DESCRIPTION: the claim statements' plans in FILE
    local out
    out=$(plans "$1" | grep -v '^0|$' || true)     # (a statement that took nothing and did nothing wrong)
    sed "s/^/# /" <<<"$out"
    is "$(cut -d'|' -f1 <<<"$out" | tr '\n' ' ')|$(cut -d'|' -f2 <<<"$out" | tr -d '\n')" "$2|" "$3"
}
check "$tmp/s1.log" "1 10 1 10 1 10 " \
   "claims of 1 and 10 on a never-analyzed queue of 1,000 items, then in the same session on it and another queue grown to 50,000 items: item_inbox_idx read in order, n rows, nothing sorted but them"
check "$tmp/s3.log" "1 10 " \
   "with two leases run out: the claim takes the expired items back and open ones, reading at most n rows of each scan"
check "$tmp/s4.log" "1 10 " \
   "a caller with a scope grant on a queue whose 49,000 items have a scope: item_inbox_idx in order, n rows"
check "$tmp/s5.log" "1 10 " \
   "a member of the role of the step all 1,000 items are at: item_inbox_idx in order, n rows"
is "$(pq "SELECT count(*) FROM workqueue.item_event WHERE kind IN ('claimed', 'lease_expired') AND actor <> 'old'")" 0 \
   "the claims were rolled back"

finish
