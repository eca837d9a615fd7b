#!/usr/bin/env bash
# bench/claim_transition.sh — claim + resolve throughput of workqueue next to
# the plain SQL / PL/pgSQL a user would write for the same steps (SPEC §10:
# >= 5,000 items/s with 4 pgbench clients, zero double claims).
#
#   bash bench/claim_transition.sh
#
# Needs a cluster with workqueue in shared_preload_libraries, reached through
# the usual PGHOST/PGPORT/PGUSER/PGPASSWORD, as a role that may create
# databases and extensions.  Works in database wq_bench_claim, dropped and
# recreated for every run and dropped at the end.
#
# Sides, each in a fresh database loaded with the same BENCH_ITEMS open items
# (priorities 1-5 mixed) and then VACUUM ANALYZEd and CHECKPOINTed:
#   workqueue     workqueue.claim + workqueue.transition_many / transition
#   plain         hand-written tables and PL/pgSQL (see plain_schema below),
#                 writing the same audit events and the same pg_notify
#   plain, quiet  the same without pg_notify
# Variants (BENCH_VARIANTS), each run for BENCH_SECONDS with BENCH_CLIENTS
# clients (-j BENCH_JOBS), the three sides one after the other, BENCH_REPEAT
# times (the table shows the median):
#   batch         BEGIN; claim BENCH_BATCH; resolve them all; COMMIT
#   single        BEGIN; claim 1; resolve it; COMMIT
#   batch, 2 tx   claim BENCH_BATCH (committed: the lease is taken), then
#                 resolve them in a second transaction, as a worker would
#
# items/s = items resolved (counted in the table afterwards) / BENCH_SECONDS.
# After every run the audit trail is checked: every resolved item has
# exactly one 'claimed' and one 'transition' event, nothing is left claimed.
# Results go to stdout and bench/results/claim_transition.txt.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_claim
items=${BENCH_ITEMS:-200000}
seconds=${BENCH_SECONDS:-15}
clients=${BENCH_CLIENTS:-4}
jobs=${BENCH_JOBS:-2}
batch=${BENCH_BATCH:-10}
variants=${BENCH_VARIANTS:-batch single batch2tx}
repeat=${BENCH_REPEAT:-1}
results=results/claim_transition.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench.XXXXXX")
mkdir -p results

# shellcheck disable=SC2317  # (called by the trap)
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

q() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"
}

log() {
    echo "$*" | tee -a "$tmp/log"
}

# ---------------------------------------------------------------------------
# The plain-SQL equivalent: the same columns that matter, the same indexes
# (primary key, external id, inbox order, leases), an audit table with a
# foreign key, a claim that returns expired leases first and takes items
# with FOR UPDATE SKIP LOCKED in inbox order, and a resolve that checks
# holder, lease and step before it moves the item.  Each writes one event
# per item and, unless told not to, one pg_notify per event as workqueue does.
plain_schema() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE SCHEMA plain;
CREATE TABLE plain.items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue       text NOT NULL,
    external_id text,
    step        text NOT NULL,
    status      text NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'in_progress', 'resolved', 'rejected', 'closed')),
    priority    smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    claimed_by  text,
    lease_until timestamptz,
    data        jsonb NOT NULL DEFAULT '{}',
    notes       jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (queue, external_id),
    CHECK ((status = 'in_progress') = (claimed_by IS NOT NULL))
);
CREATE INDEX items_inbox_idx ON plain.items (queue, status, priority, created_at, id);
CREATE INDEX items_lease_idx ON plain.items (queue, lease_until) WHERE status = 'in_progress';

CREATE TABLE plain.events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id   bigint NOT NULL REFERENCES plain.items (id),
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    kind      text NOT NULL,
    from_step text,
    to_step   text,
    payload   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_item_idx ON plain.events (item_id, id);

CREATE FUNCTION plain.event(p_item plain.items, p_actor text, p_kind text, p_from text, p_to text,
                            p_payload jsonb, p_notify boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    ev bigint;
BEGIN
    INSERT INTO plain.events (item_id, actor, kind, from_step, to_step, payload)
    VALUES (p_item.id, p_actor, p_kind, p_from, p_to, p_payload)
    RETURNING id INTO ev;
    IF p_notify THEN
        PERFORM pg_notify('plain', json_build_object('item', p_item.id, 'queue', p_item.queue,
                                                     'kind', p_kind, 'event', ev, 'step', p_to)::text);
    END IF;
    RETURN ev;
END
$$;

CREATE FUNCTION plain.claim(p_queue text, p_n int, p_worker text, p_notify boolean DEFAULT true)
    RETURNS SETOF plain.items
LANGUAGE plpgsql AS $$
DECLARE
    it plain.items;
BEGIN
    -- hand expired leases back to the queue
    FOR it IN
        UPDATE plain.items i SET status = 'open', claimed_by = NULL, lease_until = NULL, updated_at = now()
         WHERE i.id IN (SELECT x.id FROM plain.items x
                         WHERE x.queue = p_queue AND x.status = 'in_progress' AND x.lease_until < now()
                           FOR UPDATE SKIP LOCKED)
        RETURNING i.*
    LOOP
        PERFORM plain.event(it, 'system', 'lease_expired', it.step, it.step, '{}', p_notify);
    END LOOP;

    FOR it IN
        UPDATE plain.items i
           SET status = 'in_progress', claimed_by = p_worker,
               lease_until = now() + interval '15 minutes', updated_at = now()
         WHERE i.id IN (SELECT x.id FROM plain.items x
                         WHERE x.queue = p_queue AND x.status = 'open'
                         ORDER BY x.priority, x.created_at, x.id
                         LIMIT p_n
                           FOR UPDATE SKIP LOCKED)
        RETURNING i.*
    LOOP
        PERFORM plain.event(it, p_worker, 'claimed', it.step, it.step,
                            jsonb_build_object('lease_until', it.lease_until), p_notify);
        RETURN NEXT it;
    END LOOP;
END
$$;

CREATE FUNCTION plain.resolve(p_ids bigint[], p_worker text, p_notify boolean DEFAULT true) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    item_id bigint;
    it plain.items;
    n int := 0;
BEGIN
    -- in id order, so that concurrent batches cannot deadlock
    FOR item_id IN SELECT DISTINCT x FROM unnest(p_ids) x ORDER BY 1 LOOP
        SELECT * INTO it FROM plain.items i WHERE i.id = item_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'item % does not exist', item_id;
        END IF;
        IF it.status <> 'in_progress' OR it.claimed_by <> p_worker THEN
            RAISE EXCEPTION 'item % is not claimed by "%"', item_id, p_worker;
        END IF;
        IF it.lease_until <= now() THEN
            RAISE EXCEPTION 'lease of "%" on item % has expired', p_worker, item_id;
        END IF;
        IF it.step <> 'review' THEN
            RAISE EXCEPTION 'transition "resolve" is not allowed from step "%"', it.step;
        END IF;
        UPDATE plain.items i
           SET step = 'resolved', status = 'resolved', resolved_at = now(), claimed_by = NULL,
               lease_until = NULL, updated_at = now()
         WHERE i.id = item_id;
        PERFORM plain.event(it, p_worker, 'transition', it.step, 'resolved',
                            jsonb_build_object('transition', 'resolve',
                                               'old', jsonb_build_object('step', it.step, 'status', it.status,
                                                                         'claimed_by', it.claimed_by)),
                            p_notify);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
SQL
}

# fresh_db SIDE: a new database with workqueue and the plain schema, loaded
# with $items open items on SIDE (workqueue or plain), vacuumed and analyzed.
# Items are bulk-inserted with what workqueue.add() would write (the item at
# its workflow's start step and a 'created' event); add() is not measured.
fresh_db() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    createdb "$db"
    q "CREATE EXTENSION workqueue" >/dev/null
    plain_schema
    if [[ $1 == workqueue ]]; then
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL
SELECT workqueue.create_queue('bench');
INSERT INTO workqueue.item (queue, step, status, priority, data, workflow, workflow_version, created_at)
SELECT q.name, v.start_step, 'open', 1 + (g * 7919) % 5, jsonb_build_object('n', g), v.workflow, v.version,
       now() - ($items - g) * interval '1 ms'
  FROM generate_series(1, $items) g,
       workqueue.queue q
       JOIN workqueue.workflow w ON w.name = q.workflow
       JOIN workqueue.workflow_version v ON v.workflow = w.name AND v.version = w.current_version
 WHERE q.name = 'bench';
INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
SELECT queue, id, 'bench', 'created', NULL, step,
       jsonb_build_object('priority', priority, 'external_id', NULL, 'workflow', workflow,
                          'workflow_version', workflow_version)
  FROM workqueue.item;
SQL
    else
        psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL
INSERT INTO plain.items (queue, step, status, priority, data, created_at)
SELECT 'bench', 'review', 'open', 1 + (g * 7919) % 5, jsonb_build_object('n', g),
       now() - ($items - g) * interval '1 ms'
  FROM generate_series(1, $items) g;
INSERT INTO plain.events (item_id, actor, kind, to_step, payload)
SELECT id, 'bench', 'created', step, jsonb_build_object('priority', priority, 'external_id', NULL)
  FROM plain.items;
SQL
    fi
    q "VACUUM ANALYZE" >/dev/null
    q "CHECKPOINT" >/dev/null
}

# script VARIANT SIDE: writes the pgbench script for one run, prints its path.
script() {
    local variant=$1 side=$2 f="$tmp/$1-$2.sql" w="'w' || :client_id" notify claim resolve_many resolve_one
    case $side in
    workqueue)
        claim="workqueue.claim('bench', @N@, $w)"
        resolve_many="SELECT workqueue.transition_many(:ids, 'resolve', '{}', $w);"
        resolve_one="SELECT id FROM workqueue.transition(:id, 'resolve', '{}', $w);"
        ;;
    plain|quiet)
        [[ $side == plain ]] && notify=true || notify=false
        claim="plain.claim('bench', @N@, $w, $notify)"
        resolve_many="SELECT plain.resolve(:ids, $w, $notify);"
        resolve_one="SELECT plain.resolve(ARRAY[:id]::bigint[], $w, $notify);"
        ;;
    esac
    case $variant in
    batch)
        cat >"$f" <<SQL
BEGIN;
SELECT 'ARRAY[' || coalesce(string_agg(id::text, ','), '') || ']::bigint[]' AS ids FROM ${claim/@N@/$batch} \gset
$resolve_many
COMMIT;
SQL
        ;;
    single)
        cat >"$f" <<SQL
BEGIN;
SELECT coalesce(max(id), 0) AS id FROM ${claim/@N@/1} \gset
\if :id > 0
$resolve_one
\endif
COMMIT;
SQL
        ;;
    batch2tx)
        cat >"$f" <<SQL
SELECT 'ARRAY[' || coalesce(string_agg(id::text, ','), '') || ']::bigint[]' AS ids FROM ${claim/@N@/$batch} \gset
$resolve_many
SQL
        ;;
    esac
    echo "$f"
}

# run VARIANT SIDE: one measured run; prints items/s, records problems.
run() {
    local variant=$1 side=$2 f out rc=0 resolved rate
    fresh_db "$([[ $side == workqueue ]] && echo workqueue || echo plain)"
    f=$(script "$variant" "$side")
    out="$tmp/$variant-$side.out"
    pgbench -n -c "$clients" -j "$jobs" -T "$seconds" -f "$f" "$db" >"$out" 2>&1 || rc=$?
    if [[ $rc != 0 ]] || grep -qiE 'aborted|error' "$out" ||
       ! grep -qE 'number of failed transactions: 0 ' "$out"; then
        echo "$variant/$side: pgbench failed (exit status $rc):" >>"$tmp/problems"
        sed 's/^/    /' "$out" >>"$tmp/problems"
    fi
    if [[ $side == workqueue ]]; then
        resolved=$(q "SELECT count(*) FROM workqueue.item WHERE status = 'resolved'")
        check "$variant/$side" "
            SELECT (SELECT count(*) FROM workqueue.item WHERE status = 'in_progress') AS left_claimed,
                   (SELECT count(*) FROM workqueue.item WHERE status = 'open') AS left_open,
                   (SELECT count(*) FROM workqueue.item_event WHERE kind = 'claimed') AS claimed_events,
                   (SELECT count(*) FROM workqueue.item_event WHERE kind = 'transition') AS transition_events,
                   (SELECT count(*) FROM (SELECT item_id FROM workqueue.item_event WHERE kind = 'claimed'
                                           GROUP BY item_id HAVING count(*) > 1) d) AS double_claims,
                   (SELECT count(*) FROM workqueue.item i WHERE status = 'resolved' AND 1 <> (
                        SELECT count(*) FROM workqueue.item_event e
                         WHERE e.queue = i.queue AND e.item_id = i.id AND e.kind = 'claimed')) AS resolved_not_claimed_once" \
            "$resolved"
    else
        resolved=$(q "SELECT count(*) FROM plain.items WHERE status = 'resolved'")
        check "$variant/$side" "
            SELECT (SELECT count(*) FROM plain.items WHERE status = 'in_progress') AS left_claimed,
                   (SELECT count(*) FROM plain.items WHERE status = 'open') AS left_open,
                   (SELECT count(*) FROM plain.events WHERE kind = 'claimed') AS claimed_events,
                   (SELECT count(*) FROM plain.events WHERE kind = 'transition') AS transition_events,
                   (SELECT count(*) FROM (SELECT item_id FROM plain.events WHERE kind = 'claimed'
                                           GROUP BY item_id HAVING count(*) > 1) d) AS double_claims,
                   (SELECT count(*) FROM plain.items i WHERE status = 'resolved' AND 1 <> (
                        SELECT count(*) FROM plain.events e WHERE e.item_id = i.id AND e.kind = 'claimed'))
                        AS resolved_not_claimed_once" \
            "$resolved"
    fi
    rate=$((resolved / seconds))
    echo "    $variant / $side: $resolved items resolved in ${seconds} s = $rate items/s" \
         "($(grep -E '^latency average' "$out" | sed 's/latency average = //') per pgbench transaction)" >&2
    echo "$rate"
}

# check LABEL QUERY RESOLVED: the audit trail after a run must show every
# resolved item claimed once and resolved once, and nothing left claimed.
check() {
    local label=$1 row left_claimed left_open claimed transitions doubles bad
    row=$(q "$2")
    IFS='|' read -r left_claimed left_open claimed transitions doubles bad <<<"$row"
    if [[ $left_claimed != 0 || $claimed != "$3" || $transitions != "$3" || $doubles != 0 || $bad != 0 ]]; then
        echo "$label: audit check failed: resolved=$3 left_claimed=$left_claimed claimed_events=$claimed" \
             "transition_events=$transitions items_claimed_twice=$doubles resolved_not_claimed_once=$bad" \
             >>"$tmp/problems"
    fi
    if [[ $left_open == 0 ]]; then
        echo "$label: the queue ran dry; raise BENCH_ITEMS (now $items) for a valid rate" >>"$tmp/problems"
    fi
    [[ $label == */workqueue ]] && echo "$label: $3 resolved, $claimed 'claimed' events, $doubles items claimed twice" \
        >>"$tmp/audit"
    return 0
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

: >"$tmp/log"
touch "$tmp/problems" "$tmp/audit"
log "claim + resolve, workqueue vs plain SQL — $(date -u '+%Y-%m-%d %H:%M UTC')"
log "$(psql -X -At -d postgres -c "SELECT 'server: ' || version()" | cut -c1-80)"
log "$(psql -X -At -d postgres -c "SELECT 'settings: synchronous_commit=' || current_setting('synchronous_commit')
    || ', fsync=' || current_setting('fsync') || ', shared_buffers=' || current_setting('shared_buffers')")"
log "machine: $(nproc) cores; workqueue $(git -C .. rev-parse --short HEAD 2>/dev/null || echo '?')$(
    git -C .. diff --quiet HEAD -- sql src 2>/dev/null || echo ' (+ uncommitted changes)')"
log "run: $clients clients (-j $jobs), ${seconds} s per run, $items items loaded per run, batch $batch$(
    ((repeat > 1)) && echo ", median of $repeat rounds")"
log ""

# median of the arguments
median() {
    printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}

declare -A rate
for v in $variants; do
    case $v in batch|single|batch2tx) ;; *) echo "unknown variant $v" >&2; exit 2 ;; esac
    for side in workqueue plain quiet; do
        rate[$v,$side]=
    done
    for r in $(seq "$repeat"); do
        echo "== variant $v, round $r of $repeat" >&2
        for side in workqueue plain quiet; do
            rate[$v,$side]+=" $(run "$v" "$side")"
        done
    done
    for side in workqueue plain quiet; do
        # shellcheck disable=SC2086
        rate[$v,$side]=$(median ${rate[$v,$side]})
    done
done

row() {
    printf '%-22s %11s %11s %7s %11s %7s\n' "$@"
}
{
    row "variant" "workqueue" "plain" "ratio" "plain" "ratio"
    row "" "items/s" "+notify" "" "no notify" ""
    for v in $variants; do
        case $v in
        batch)    label="batch of $batch, 1 tx" ;;
        single)   label="1 item, 1 tx" ;;
        batch2tx) label="batch of $batch, 2 tx" ;;
        esac
        row "$label" "${rate[$v,workqueue]}" "${rate[$v,plain]}" \
            "$(ratio "${rate[$v,workqueue]}" "${rate[$v,plain]}")" "${rate[$v,quiet]}" \
            "$(ratio "${rate[$v,workqueue]}" "${rate[$v,quiet]}")"
    done
    echo
    echo "ratio = workqueue / plain (> 1: workqueue is faster)."
    best=0
    for v in $variants; do ((${rate[$v,workqueue]:-0} > best)) && best=${rate[$v,workqueue]}; done
    echo "target (SPEC §10): >= 5000 items/s with 4 clients; zero double claims."
    echo "best workqueue rate: $best items/s: $( ((best >= 5000)) && echo "target met" || echo "BELOW TARGET")" \
         "($clients clients, $(nproc) cores)"
    echo
    echo "audit after the workqueue runs:"
    sed 's/^/  /' "$tmp/audit"
} | tee -a "$tmp/log"

status=0
if [[ -s $tmp/problems ]]; then
    { echo; echo "PROBLEMS:"; cat "$tmp/problems"; } | tee -a "$tmp/log"
    status=1
fi
cp "$tmp/log" "$results"
echo "(written to bench/$results)"
exit $status
