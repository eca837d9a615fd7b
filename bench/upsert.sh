#!/usr/bin/env bash
# bench/upsert.sh — workqueue.upsert_items next to the plain SQL a user would
# write to load upstream records into a table (SPEC §10: 100k items in one
# call at >= 100k items/s; a re-sync of unchanged items writes < 1% of the
# WAL of a plain INSERT ... ON CONFLICT DO UPDATE).
#
#   bash bench/upsert.sh
#
# Needs a cluster with workqueue in shared_preload_libraries, reached through
# the usual PGHOST/PGPORT/PGUSER/PGPASSWORD, as a role that may create
# databases and extensions.  Works in database wq_bench_upsert, dropped and
# recreated for every run and dropped at the end.
#
# Input: BENCH_ITEMS (100k) records {"external_id", "priority", "data"}
# (data: six keys, about 130 bytes) as one jsonb array in a table, and the
# same with 10% of the records changed (one key of data).  Every side starts
# from empty tables (TRUNCATE ... CASCADE), and runs:
#   first load        the records into an empty queue
#   re-sync unchanged the same records again (after VACUUM ANALYZE, as a
#                     re-sync comes long after the load)
#   re-sync 10% changed
# with a CHECKPOINT before each, timed by psql's \timing (connecting is not
# counted).  Sides, all writing workqueue.item (same
# indexes, same foreign keys):
#   workqueue         one workqueue.upsert_items(queue, items, source) call:
#                     change detection, one event per inserted or changed
#                     item, NOTIFY
#   workqueue x100    the same records in 100 calls of 1%, one transaction
#   row by row        a PL/pgSQL loop over jsonb_array_elements doing
#                     INSERT ... ON CONFLICT (queue, external_id) DO UPDATE
#   batched           one INSERT ... SELECT FROM jsonb_array_elements ...
#                     ON CONFLICT DO UPDATE
#   batched + events  the same, writing an event per row as workqueue does
#                     (RETURNING (xmax = 0) tells inserts from updates)
#   COPY              COPY of the same rows (from a CSV file the server
#                     reads) into an empty table with the same columns and
#                     no index or constraint: the write ceiling (first load)
# BENCH_REPEAT (3) rounds, median reported.  Then the WAL of the unchanged
# re-sync, workqueue vs batched: pg_current_wal_lsn() before and after (the
# whole cluster: other activity adds to it) and the backend's own WAL from
# EXPLAIN (ANALYZE, WAL).  Results go to stdout and bench/results/upsert.txt.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_upsert
items=${BENCH_ITEMS:-100000}
repeat=${BENCH_REPEAT:-3}
results=results/upsert.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench-upsert.XXXXXX")
chmod 755 "$tmp"
mkdir -p results

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

echo "== preparing $items records" >&2
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION workqueue" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL
SELECT workqueue.create_queue('bench');
CREATE TABLE input (k text PRIMARY KEY, items jsonb);
INSERT INTO input
SELECT k, jsonb_agg(jsonb_build_object(
           'external_id', 'CASE-' || lpad(g::text, 8, '0'),
           'priority', 1 + g % 5,
           'data', jsonb_build_object('title', 'Case number ' || g, 'customer', 'customer-' || (g % 1000),
                                      'amount', round((g * 1.37)::numeric, 2), 'tags', jsonb_build_array('a', 'b'),
                                      'opened', '2024-01-01'::date + g % 365,
                                      'state', CASE WHEN k = 'changed' AND g % 10 = 0 THEN 'pending' ELSE 'open' END))
           ORDER BY g)
  FROM generate_series(1, $items) g, (VALUES ('first'), ('changed')) v(k)
 GROUP BY k;
-- the same records in 100 batches
CREATE TABLE input_batches (k text, b int, items jsonb, PRIMARY KEY (k, b));
INSERT INTO input_batches
SELECT k, (o - 1) * 100 / $items, jsonb_agg(e ORDER BY o)
  FROM input, jsonb_array_elements(items) WITH ORDINALITY x(e, o)
 GROUP BY 1, 2;

CREATE FUNCTION plain_row_by_row(q text, items jsonb) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
    e jsonb;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(items) LOOP
        INSERT INTO workqueue.item AS i (queue, external_id, source, step, status, priority, data,
                                         workflow, workflow_version, last_seen_at)
        VALUES (q, e->>'external_id', 'plain', 'review', 'open', coalesce((e->>'priority')::int2, 3),
                coalesce(e->'data', '{}'), 'review', 1, now())
        ON CONFLICT (queue, external_id) DO UPDATE
           SET data = excluded.data, priority = excluded.priority, last_seen_at = now(), updated_at = now();
    END LOOP;
END
\$\$;
CREATE TABLE copy_target (LIKE workqueue.item INCLUDING DEFAULTS INCLUDING IDENTITY);
-- WAL bytes and full-page images the backend wrote running sql
CREATE FUNCTION explain_wal(sql text) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE
    j json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, WAL, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) ' || sql INTO j;
    RETURN coalesce(j->0->'Plan'->>'WAL Bytes', '0') || '|' || coalesce(j->0->'Plan'->>'WAL FPI', '0');
END
\$\$;
SQL
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "\\copy (SELECT 'bench', e->>'external_id', 'plain', 'review', 'open', (e->>'priority')::int2, e->'data', 'review', 1, now() FROM input, jsonb_array_elements(items) e WHERE k = 'first') TO '$tmp/first.csv' CSV"
chmod 644 "$tmp/first.csv"     # read by the server

batched_sql() {     # batched_sql K EVENTS
    local upsert="INSERT INTO workqueue.item AS i (queue, external_id, source, step, status, priority, data,
                                     workflow, workflow_version, last_seen_at)
    SELECT 'bench', e->>'external_id', 'plain', 'review', 'open', coalesce((e->>'priority')::int2, 3),
           coalesce(e->'data', '{}'), 'review', 1, now()
      FROM input, jsonb_array_elements(items) e WHERE k = '$1'
        ON CONFLICT (queue, external_id) DO UPDATE
       SET data = excluded.data, priority = excluded.priority, last_seen_at = now(), updated_at = now()"
    if [[ $2 == events ]]; then
        echo "WITH up AS ($upsert RETURNING i.queue, i.id, i.step, (i.xmax = 0) AS inserted)
              INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
              SELECT queue, id, 'plain', CASE WHEN inserted THEN 'created' ELSE 'synced' END,
                     CASE WHEN NOT inserted THEN step END, step, '{}' FROM up"
    else
        echo "$upsert"
    fi
}

# side_sql SIDE K: the statement(s) that load input K on that side
side_sql() {
    case $1 in
    workqueue)  echo "SELECT * FROM workqueue.upsert_items('bench', (SELECT items FROM input WHERE k = '$2'), 'bench')" ;;
    wq100)      echo "DO \$\$ DECLARE r record; BEGIN
                        FOR r IN SELECT items FROM input_batches WHERE k = '$2' ORDER BY b LOOP
                            PERFORM workqueue.upsert_items('bench', r.items, 'bench');
                        END LOOP; END \$\$" ;;
    rowbyrow)   echo "SELECT plain_row_by_row('bench', (SELECT items FROM input WHERE k = '$2'))" ;;
    batched)    batched_sql "$2" plain ;;
    events)     batched_sql "$2" events ;;
    copy)       echo "COPY copy_target (queue, external_id, source, step, status, priority, data, workflow, workflow_version, last_seen_at) FROM '$tmp/first.csv' CSV" ;;
    esac
}

# timed SQL: milliseconds SQL takes, as psql's \timing reports it (after a
# first statement, so that connecting is not counted)
timed() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "SELECT 1" -c "\\timing on" -c "$1" |
        sed -nE 's/^Time: ([0-9]+)(\.[0-9]+)? ms.*/\1/p' | tail -1
}

reset() {
    q "TRUNCATE workqueue.item, workqueue.item_event, copy_target CASCADE" >/dev/null   # and the fetches, ... of the items
    q "CHECKPOINT" >/dev/null
}

sides="workqueue wq100 rowbyrow batched events copy"
declare -A ms
for side in $sides; do
    for s in first unchanged changed; do ms[$side,$s]=""; done
done
for r in $(seq "$repeat"); do
    for side in $sides; do
        echo "== round $r of $repeat: $side" >&2
        reset
        ms[$side,first]+=" $(timed "$(side_sql $side first)")"
        [[ $side == copy ]] && continue
        q "VACUUM ANALYZE workqueue.item" >/dev/null
        q "CHECKPOINT" >/dev/null
        ms[$side,unchanged]+=" $(timed "$(side_sql $side first)")"
        q "CHECKPOINT" >/dev/null
        ms[$side,changed]+=" $(timed "$(side_sql $side changed)")"
        echo "   first${ms[$side,first]##* } ms, unchanged${ms[$side,unchanged]##* } ms," \
             "changed${ms[$side,changed]##* } ms" | sed 's/\([a-z]\)\([0-9]\)/\1 \2/g' >&2
    done
done

# checks: the workqueue side leaves one item per record and the right events
reset
q "SELECT * FROM workqueue.upsert_items('bench', (SELECT items FROM input WHERE k = 'first'), 'bench')" >/dev/null
q "SELECT * FROM workqueue.upsert_items('bench', (SELECT items FROM input WHERE k = 'first'), 'bench')" >/dev/null
counts=$(q "SELECT * FROM workqueue.upsert_items('bench', (SELECT items FROM input WHERE k = 'changed'), 'bench')")
events=$(q "SELECT count(*) FILTER (WHERE kind = 'created') || '/' || count(*) FILTER (WHERE kind = 'synced') FROM workqueue.item_event")
problems=""
[[ $counts == "0|$((items / 10))|$((items - items / 10))" ]] || problems+="re-sync with 10% changed returned $counts; "
[[ $events == "$items/$((items / 10))" ]] || problems+="events created/synced: $events; "

# WAL of the unchanged re-sync: "cluster bytes|own bytes|own FPIs"
wal_run() {
    reset
    q "$(side_sql "$1" first)" >/dev/null
    q "VACUUM ANALYZE workqueue.item" >/dev/null
    q "CHECKPOINT" >/dev/null
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <<SQL | tail -1
SELECT pg_current_wal_lsn() AS lsn0 \gset
SELECT explain_wal(\$q\$$(side_sql "$1" first)\$q\$) AS own \gset
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :'lsn0')::bigint || '|' || :'own';
SQL
}
echo "== WAL of the unchanged re-sync" >&2
IFS='|' read -r wq_cluster wq_own wq_fpi <<<"$(wal_run workqueue)"
IFS='|' read -r pl_cluster pl_own pl_fpi <<<"$(wal_run batched)"

median() {
    # shellcheck disable=SC2048,SC2086
    printf '%s\n' $* | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
rate() {    # rate MS: items/s
    awk -v ms="$1" -v n="$items" 'BEGIN { if (ms > 0) printf "%d", n / (ms / 1000); else print "-" }'
}
pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f%%", 100 * a / b; else print "-" }'
}

: >"$tmp/log"
log "upsert_items vs plain SQL — $(date -u '+%Y-%m-%d %H:%M UTC')"
log "$(psql -X -At -d postgres -c "SELECT 'server: ' || version()" | cut -c1-80)"
log "$(psql -X -At -d postgres -c "SELECT 'settings: synchronous_commit=' || current_setting('synchronous_commit')
    || ', shared_buffers=' || current_setting('shared_buffers') || ', work_mem=' || current_setting('work_mem')
    || ', max_wal_size=' || current_setting('max_wal_size')")"
log "machine: $(nproc) cores; workqueue $(git -C .. rev-parse --short HEAD 2>/dev/null || echo '?')$(
    [[ -n $(git -C .. status --porcelain -- sql src 2>/dev/null) ]] && echo ' (+ uncommitted changes)')"
log "input: $items records, $(q "SELECT pg_size_pretty(sum(pg_column_size(items))::bigint) FROM input WHERE k = 'first'") as stored jsonb; median of $repeat rounds"
log ""
{
    printf '%-22s %19s %19s %19s\n' "items/s (ms)" "first load" "re-sync unchanged" "re-sync 10% changed"
    for side in $sides; do
        case $side in
        workqueue) label="workqueue" ;;
        wq100)     label="workqueue, 100 calls" ;;
        rowbyrow)  label="row by row (PL/pgSQL)" ;;
        batched)   label="batched ON CONFLICT" ;;
        events)    label="batched + events" ;;
        copy)      label="COPY, no index" ;;
        esac
        line=$(printf '%-22s' "$label")
        for s in first unchanged changed; do
            m=$(median ${ms[$side,$s]})
            if [[ -z $m ]]; then line+=$(printf ' %19s' "-"); else line+=$(printf ' %19s' "$(rate "$m") ($m)"); fi
        done
        echo "$line"
    done
    echo
    wqf=$(median ${ms[workqueue,first]}); bf=$(median ${ms[batched,first]}); be=$(median ${ms[events,first]})
    wqu=$(median ${ms[workqueue,unchanged]}); bu=$(median ${ms[batched,unchanged]})
    echo "workqueue / batched ON CONFLICT: first load $(awk -v a="$wqf" -v b="$bf" 'BEGIN { printf "%.2f", b / a }')x," \
         "re-sync unchanged $(awk -v a="$wqu" -v b="$bu" 'BEGIN { printf "%.1f", b / a }')x;" \
         "vs batched + events: first load $(awk -v a="$wqf" -v b="$be" 'BEGIN { printf "%.2f", b / a }')x (> 1: workqueue is faster)"
    echo "target (SPEC §10): 100k items in one call at >= 100000 items/s: first load $(rate "$wqf") items/s," \
         "re-sync unchanged $(rate "$wqu") items/s, 10% changed $(rate "$(median ${ms[workqueue,changed]})") items/s"
    echo
    printf '%-40s %14s %14s %10s\n' "WAL of the re-sync of unchanged items" "cluster bytes" "own bytes" "own FPIs"
    printf '%-40s %14s %14s %10s\n' "workqueue.upsert_items" "$wq_cluster" "$wq_own" "$wq_fpi"
    printf '%-40s %14s %14s %10s\n' "batched INSERT ... ON CONFLICT DO UPDATE" "$pl_cluster" "$pl_own" "$pl_fpi"
    echo "workqueue / plain: $(pct "$wq_own" "$pl_own") of the backend's own WAL," \
         "$(pct "$wq_cluster" "$pl_cluster") by LSN (target < 1%: $(awk -v a="$wq_own" -v b="$pl_own" \
         'BEGIN { print (b > 0 && a / b < 0.01) ? "met" : "NOT MET" }'))"
    echo "(cluster bytes: pg_current_wal_lsn() difference, includes whatever else the cluster wrote meanwhile;"
    echo " own bytes: EXPLAIN (ANALYZE, WAL) of the call; a CHECKPOINT precedes each, so the plain update's"
    echo " first touch of every page is a full-page image, as it is for a re-sync in production)"
    if [[ -n $problems ]]; then echo; echo "PROBLEMS: $problems"; fi
} | tee -a "$tmp/log"
cp "$tmp/log" "$results"
echo "(written to bench/$results)"
[[ -z $problems ]]
