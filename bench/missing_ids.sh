#!/usr/bin/env bash
# bench/missing_ids.sh — workqueue.missing_ids next to the SQL a user would
# write for "which of these external ids have no item yet" (SPEC §10:
# >= 2x faster than the best hand-written anti-join, >= 100x faster than
# NOT IN (subquery) at default work_mem, for 1M ids against 1M items).
#
#   bash bench/missing_ids.sh
#
# Needs a cluster with workqueue in shared_preload_libraries, reached through
# the usual PGHOST/PGPORT/PGUSER/PGPASSWORD, as a role that may create
# databases and extensions.  Works in database wq_bench_missing, dropped and
# recreated for every run and dropped at the end.
#
# Data: queue "bench" with BENCH_ITEMS (1M) items and queue "other" with
# 200k, bulk-inserted, then VACUUM ANALYZE and CHECKPOINT.  Inputs, stored as
# text[] in a table (every variant reads and detoasts the same array): 100k
# and 1M distinct ids, half of them present in "bench", in random order;
# and 5M ids (all 1M present ones plus 4M new), for missing_ids, with one
# run of the NOT EXISTS anti-join (default work_mem, JIT off) as a reference.
#
# Variants, all wrapped in count(*) and timed in the server (clock_timestamp
# around EXECUTE), each run once to warm the cache and then BENCH_REPEAT (3)
# times, median reported:
#   missing_ids   SELECT count(*) FROM workqueue.missing_ids('bench', ids)
#   not exists    the ids deduplicated with DISTINCT ON (keep the first
#                 position), NOT EXISTS against workqueue.item, ORDER BY position
#   group by      the same, deduplicated with GROUP BY id, min(position)
#   left join     GROUP BY dedup, LEFT JOIN workqueue.item ... IS NULL
#   NOT IN        x NOT IN (SELECT external_id FROM workqueue.item WHERE
#                 queue = 'bench') ORDER BY position, at default work_mem, once,
#                 cancelled after BENCH_NOTIN_TIMEOUT (120) s; then its time
#                 is estimated from a run on the first 1000 ids (without a
#                 hashed subplan it rescans the queue's ids for every input
#                 id, so time grows linearly with the ids), shown as ~N
# Each anti-join gets its fair chance: it runs at the default work_mem and at
# 256MB, with JIT on and off, and the fastest of all is "best anti-join".
# The outputs of missing_ids and of the best anti-join are compared.
# Results go to stdout and bench/results/missing_ids.txt.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_missing
items=${BENCH_ITEMS:-1000000}
repeat=${BENCH_REPEAT:-3}
notin_timeout=${BENCH_NOTIN_TIMEOUT:-120}
results=results/missing_ids.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-bench-missing.XXXXXX")
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

echo "== loading $items items" >&2
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION workqueue" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL
SELECT workqueue.create_queue('bench'), workqueue.create_queue('other');
INSERT INTO workqueue.item (queue, external_id, step, workflow, workflow_version, data)
SELECT 'bench', 'CASE-' || lpad(g::text, 8, '0'), 'review', 'review', 1, jsonb_build_object('n', g)
  FROM generate_series(1, $items) g;
INSERT INTO workqueue.item (queue, external_id, step, workflow, workflow_version, data)
SELECT 'other', 'CASE-' || lpad(g::text, 8, '0'), 'review', 'review', 1, jsonb_build_object('n', g)
  FROM generate_series(1, 200000) g;
SELECT setseed(0.42);
-- half present (a random sample of the queue), half new, shuffled
CREATE TABLE input (k text PRIMARY KEY, n int, ids text[]);
INSERT INTO input
SELECT k, n, ARRAY(SELECT id FROM (
           (SELECT 'CASE-' || lpad(g::text, 8, '0') AS id FROM generate_series(1, $items) g
             ORDER BY random() LIMIT n / 2)
           UNION ALL
           SELECT 'NEW-' || lpad(g::text, 8, '0') FROM generate_series(1, n / 2) g) s
         ORDER BY random())
  FROM (VALUES ('100k', 100000), ('1M', 1000000)) v(k, n);
INSERT INTO input
SELECT '5M', 5000000, ARRAY(SELECT x FROM (
           SELECT 'CASE-' || lpad(g::text, 8, '0') FROM generate_series(1, $items) g
           UNION ALL
           SELECT 'NEW-' || lpad(g::text, 8, '0') FROM generate_series(1, 5000000 - $items) g) s(x)
         ORDER BY random());
CREATE FUNCTION bench_time(sql text) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE
    t timestamptz := clock_timestamp();
    n bigint;
BEGIN
    EXECUTE sql INTO n;
    RETURN round(extract(epoch FROM clock_timestamp() - t) * 1000, 1);
EXCEPTION WHEN query_canceled THEN
    RETURN NULL;
END
\$\$;
SQL
q "VACUUM ANALYZE" >/dev/null
q "CHECKPOINT" >/dev/null

# The SQL of each variant for input K, as count(*) of the rows it returns.
variant_sql() {
    local v=$1 k=$2 ids="(SELECT ids FROM input WHERE k = '$k')"
    case $v in
    missing_ids)
        echo "SELECT count(*) FROM workqueue.missing_ids('bench', $ids)" ;;
    not_exists)
        echo "SELECT count(*) FROM (SELECT x FROM (
                  SELECT DISTINCT ON (x) x, ord FROM unnest($ids) WITH ORDINALITY u(x, ord)
                   WHERE x IS NOT NULL ORDER BY x, ord) d
               WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = 'bench' AND i.external_id = d.x)
               ORDER BY ord) r" ;;
    group_by)
        echo "SELECT count(*) FROM (SELECT x FROM (
                  SELECT x, min(ord) AS ord FROM unnest($ids) WITH ORDINALITY u(x, ord)
                   WHERE x IS NOT NULL GROUP BY x) d
               WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = 'bench' AND i.external_id = d.x)
               ORDER BY ord) r" ;;
    left_join)
        echo "SELECT count(*) FROM (SELECT d.x FROM (
                  SELECT x, min(ord) AS ord FROM unnest($ids) WITH ORDINALITY u(x, ord)
                   WHERE x IS NOT NULL GROUP BY x) d
                LEFT JOIN workqueue.item i ON i.queue = 'bench' AND i.external_id = d.x
               WHERE i.id IS NULL ORDER BY d.ord) r" ;;
    not_in)
        echo "SELECT count(*) FROM (SELECT x FROM unnest($ids) WITH ORDINALITY u(x, ord)
               WHERE x NOT IN (SELECT external_id FROM workqueue.item WHERE queue = 'bench')
               ORDER BY ord) r" ;;
    esac
}

# time SETTINGS SQL RUNS: warm-up run, then RUNS timed runs; prints the median ms.
time_sql() {
    local settings=$1 sql=$2 runs=$3 ts=()
    for r in $(seq 0 "$runs"); do
        t=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$settings" -c "SELECT bench_time(\$q\$$sql\$q\$)" | tail -1)
        ((r > 0)) && ts+=("$t")
    done
    printf '%s\n' "${ts[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# sameness check: md5 of the ordered output
output_md5() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "SET work_mem = '256MB'" -c "$1"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.1fx", b / a; else print "-" }'
}

: >"$tmp/log"
: >"$tmp/rows"
: >"$tmp/notes"
log "missing_ids vs plain SQL — $(date -u '+%Y-%m-%d %H:%M UTC')"
log "$(psql -X -At -d postgres -c "SELECT 'server: ' || version()" | cut -c1-80)"
log "$(psql -X -At -d postgres -c "SELECT 'settings: work_mem=' || current_setting('work_mem')
    || ', shared_buffers=' || current_setting('shared_buffers') || ', jit=' || current_setting('jit')")"
log "machine: $(nproc) cores; workqueue $(git -C .. rev-parse --short HEAD 2>/dev/null || echo '?')$(
    [[ -n $(git -C .. status --porcelain -- sql src 2>/dev/null) ]] && echo ' (+ uncommitted changes)')"
log "data: $items items in queue 'bench', 200000 in 'other'; median of $repeat runs after a warm-up run"
log ""

declare -A best_ms best_how
status=0
for k in 100k 1M 5M; do
    echo "== input $k" >&2
    mi=$(time_sql "SELECT 1" "$(variant_sql missing_ids "$k")" "$repeat")
    echo "   missing_ids: $mi ms" >&2
    best=""; how=""
    for v in not_exists group_by left_join; do
        # 5M: one reference run of the variant that wins at 1M, at the defaults
        [[ $k == 5M && $v != not_exists ]] && continue
        for wm in default 256MB; do
            [[ $k == 5M && $wm != default ]] && continue
            for jit in on off; do
                [[ $k == 5M && $jit != off ]] && continue
                s="SET jit = $jit"; [[ $wm != default ]] && s="$s; SET work_mem = '$wm'"
                t=$(time_sql "$s" "$(variant_sql "$v" "$k")" "$([[ $k == 5M ]] && echo 1 || echo "$repeat")")
                echo "   $v, work_mem $wm, jit $jit: $t ms" >&2
                if [[ -z $best ]] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then
                    best=$t; how="$v, work_mem $wm, jit $jit"
                fi
            done
        done
    done
    best_ms[$k]=$best; best_how[$k]=$how
    notin="-"; notin_est=""
    if [[ $k != 5M ]]; then
        notin=$(psql -X -q -At -d "$db" -c "SET statement_timeout = '${notin_timeout}s'" \
                -c "SELECT coalesce(bench_time(\$q\$$(variant_sql not_in "$k")\$q\$)::text, 'timeout')" | tail -1)
        echo "   NOT IN: $notin ms" >&2
        if [[ $notin == timeout ]]; then
            # NOT IN without a hashed subplan rescans the subquery for every
            # id: time it on the first 1000 ids and scale up
            sample=$(psql -X -q -At -d "$db" -c "SET statement_timeout = '${notin_timeout}s'" \
                -c "SELECT bench_time(\$q\$$(variant_sql not_in "$k" |
                        sed "s/(SELECT ids FROM input WHERE k = '$k')/(SELECT ids[1:1000] FROM input WHERE k = '$k')/")\$q\$)" | tail -1)
            n=$(q "SELECT n FROM input WHERE k = '$k'")
            notin_est=$(awk -v t="$sample" -v n="$n" 'BEGIN { if (t != "") printf "%d", t * n / 1000 }')
            echo "   NOT IN, first 1000 ids: $sample ms: about $notin_est ms for all $n" >&2
        fi
    fi
    # same output, same order
    v=${how%%,*}
    a=$(output_md5 "SELECT md5(string_agg(x, ',')) FROM workqueue.missing_ids('bench', (SELECT ids FROM input WHERE k = '$k')) x")
    b=$(output_md5 "SELECT md5(string_agg(x, ',')) FROM ($(variant_sql "$v" "$k" | sed 's/SELECT count(\*) FROM (SELECT/SELECT * FROM (SELECT/')) y(x)")
    if [[ $a != "$b" ]]; then
        echo "input $k: missing_ids and $v return different rows or orders" >>"$tmp/problems"
        status=1
    fi
    n_missing=$(q "SELECT count(*) FROM workqueue.missing_ids('bench', (SELECT ids FROM input WHERE k = '$k'))")
    if [[ $notin == timeout ]]; then
        notin_col="> ${notin_timeout}000"; notin_ratio="> $(ratio "$mi" "${notin_timeout}000")"
        if [[ -n $notin_est ]]; then
            notin_col="~$notin_est"; notin_ratio="~$(ratio "$mi" "$notin_est")"
            echo "$k: NOT IN was cancelled after ${notin_timeout} s; its time is scaled up from the first 1000 ids" \
                >>"$tmp/notes"
        fi
    elif [[ $notin == - ]]; then
        notin_col="-"; notin_ratio="-"
    else
        notin_col=$notin; notin_ratio=$(ratio "$mi" "$notin")
    fi
    printf '%-6s %9s %12s %14s %8s %12s %10s   %s\n' "$k" "$n_missing" "$mi" "$best" \
        "$(ratio "$mi" "$best")" "$notin_col" "$notin_ratio" "$how" >>"$tmp/rows"
done

{
    printf '%-6s %9s %12s %14s %8s %12s %10s   %s\n' "input" "missing" "missing_ids" "best anti-join" "ratio" \
        "NOT IN" "ratio" "best anti-join was"
    printf '%-6s %9s %12s %14s %8s %12s %10s\n' "ids" "" "ms" "ms" "" "ms" ""
    cat "$tmp/rows"
    echo
    echo "ratio = SQL time / missing_ids time (> 1: missing_ids is faster)."
    echo "targets (SPEC §10, 1M ids vs 1M items): >= 2x the best anti-join, >= 100x NOT IN."
    echo "1M: $(awk -v a="${best_ms[1M]}" -v m="$(awk '$1 == "1M" { print $3 }' "$tmp/rows")" \
        'BEGIN { r = a / m; printf "%.1fx the best anti-join: %s", r, (r >= 2 ? "target met" : "BELOW TARGET") }')"
    [[ -s $tmp/notes ]] && cat "$tmp/notes"
    echo "output of missing_ids = output of the best anti-join (same ids, same order): $(
        [[ -s $tmp/problems ]] && echo NO || echo yes)"
} | tee -a "$tmp/log"

if [[ -s $tmp/problems ]]; then
    { echo; echo "PROBLEMS:"; cat "$tmp/problems"; } | tee -a "$tmp/log"
fi
cp "$tmp/log" "$results"
echo "(written to bench/$results)"
exit $status
