#!/usr/bin/env bash
# bench/missing_ids.sh — workqueue.missing_ids next to the SQL a user would
# write for "which of these external ids have no item yet" (SPEC §10 and
# issue 12: 1M ids against 1M items, the ids passed as one array literal:
# >= 2x faster than the best hand-written anti-join, >= 100x faster than
# NOT IN (subquery) at default work_mem).
#
#   bash bench/missing_ids.sh
#
# Needs a cluster with workqueue in shared_preload_libraries, reached through
# the usual PGHOST/PGPORT/PGUSER/PGPASSWORD, as a role that may create
# databases and extensions.  Works in database wq_bench_missing, dropped and
# recreated for every run and dropped at the end.
#
# Data: queue "bench" with BENCH_ITEMS (1M) items and queue "other" with
# 200k (the same external ids: only "bench" may count), bulk-inserted, then
# VACUUM ANALYZE and CHECKPOINT.
#
# Inputs: 100k and 1M distinct ids in random order, BENCH_MISSING_PCT (1)
# percent of them new, the others a random sample of the queue's ids.  Each
# is written out once as an array literal ('{CASE-00000042,...}') and every
# statement of every variant carries that same literal in its text, sent by
# psql as a client would: the server parses the literal (array_in) in every
# variant, and the time is psql's \timing of the statement (send, parse,
# plan, execute, one row back).  "parse only" times
# SELECT cardinality('{...}'::text[]): the floor every variant shares.
#
# Variants, all wrapped in count(*); a warm-up round, then BENCH_REPEAT (3)
# rounds, each running every variant (and setting) once in turn, each run
# in a new session; the median of each is reported:
#   missing_ids   SELECT count(*) FROM workqueue.missing_ids('bench', '{...}')
#   not exists    the ids deduplicated with DISTINCT ON (keep the first
#                 position), NOT EXISTS against workqueue.item, ORDER BY position
#   group by      the same, deduplicated with GROUP BY id, min(position)
#   left join     GROUP BY dedup, LEFT JOIN workqueue.item ... IS NULL
#   except        unnest(ids) EXCEPT SELECT external_id ... -- the same set,
#                 but in no particular order: less work than missing_ids does
#   NOT IN        x NOT IN (SELECT external_id FROM workqueue.item WHERE
#                 queue = 'bench') ORDER BY position, at default work_mem:
#                 without a hashed subplan it rescans the queue's ids for
#                 every input id, so it is timed once on the first
#                 BENCH_NOTIN_SAMPLE (100) ids and scaled up (shown as ~N)
# Each anti-join gets its fair chance: it runs at the default work_mem and at
# 256MB, with JIT on and off, and the fastest of all is "best anti-join".
# The outputs of missing_ids and of the ordered anti-join are compared (same
# ids, same order), and the set of EXCEPT's.
# Results go to stdout and bench/results/missing_ids.txt.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_missing
items=${BENCH_ITEMS:-1000000}
repeat=${BENCH_REPEAT:-3}
missing_pct=${BENCH_MISSING_PCT:-1}
notin_sample=${BENCH_NOTIN_SAMPLE:-100}
sizes=${BENCH_SIZES:-"100k 1M"}
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

n_of() {
    case $1 in 100k) echo 100000 ;; 1M) echo 1000000 ;; *) echo "$1" ;; esac
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
SQL
q "VACUUM ANALYZE" >/dev/null
q "CHECKPOINT" >/dev/null

# The literals: K.lit holds '{...}' (quotes doubled for SQL), K.sample the
# first ids of the same input for NOT IN.
for k in $sizes; do
    n=$(n_of "$k"); new=$((n * missing_pct / 100))
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" >"$tmp/$k.arr" <<SQL
SELECT setseed(0.42) \\g /dev/null
SELECT ARRAY(SELECT id FROM (
           (SELECT 'CASE-' || lpad(g::text, 8, '0') AS id FROM generate_series(1, $items) g
             ORDER BY random() LIMIT $((n - new)))
           UNION ALL
           SELECT 'NEW-' || lpad(g::text, 8, '0') FROM generate_series(1, $new) g) s
         ORDER BY random());
SQL
    sed "s/'/''/g; s/^/'/; s/\$/'/" "$tmp/$k.arr" >"$tmp/$k.lit"
    cut -d, -f1-"$notin_sample" "$tmp/$k.arr" |
        sed "s/'/''/g; s/^/'/; s/\$/}'/; s/}}'\$/}'/" >"$tmp/$k.sample"
done

# The SQL of variant V over the literal L (the literal itself is spliced in
# by stmt_file), as count(*) of the rows it returns; rows=1 gives the rows.
variant_sql() {
    local v=$1 ids="@IDS@::text[]"
    case $v in
    parse_only)
        echo "SELECT cardinality($ids)" ;;
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
    except)
        echo "SELECT count(*) FROM (SELECT x FROM unnest($ids) u(x) WHERE x IS NOT NULL
               EXCEPT SELECT external_id FROM workqueue.item WHERE queue = 'bench') r" ;;
    not_in)
        echo "SELECT count(*) FROM (SELECT x FROM unnest($ids) WITH ORDINALITY u(x, ord)
               WHERE x NOT IN (SELECT external_id FROM workqueue.item WHERE queue = 'bench')
               ORDER BY ord) r" ;;
    esac
}

# stmt_file FILE SETTINGS SQL LITERAL_FILE: a psql script that applies the
# settings and then sends SQL with the literal spliced in, timed by psql
# and by the backend's on-CPU time before and after (/proc/PID/schedstat,
# when the server runs on this machine).
stmt_file() {
    local f=$1 settings=$2 sql=$3 lit=$4
    {
        echo 'SELECT pg_backend_pid() AS wq_pid \gset'
        echo '\setenv WQ_PID :wq_pid'
        echo "$settings"
        echo '\! echo "cpu $(cut -d" " -f1 /proc/$WQ_PID/schedstat 2>/dev/null)"'
        echo '\timing on'
        # split around @IDS@ so that the literal is never an argument
        printf '%s' "${sql%%@IDS@*}"
        tr -d '\n' <"$lit"
        printf '%s;\n' "${sql#*@IDS@}"
        echo '\timing off'
        echo '\! echo "cpu $(cut -d" " -f1 /proc/$WQ_PID/schedstat 2>/dev/null)"'
    } >"$f"
}

# run_once FILE: runs a statement file in a new session; prints psql's ms
# and the backend's on-CPU ms (or -), as WALL:CPU.
run_once() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$1" | awk '
        /^Time: / { wall = $2 }
        /^cpu / { if ($2 == "") ok = 0; else { cpu[++n] = $2; ok = 1 } }
        END { printf "%s:%s\n", wall, (ok && n == 2 ? sprintf("%.1f", (cpu[2] - cpu[1]) / 1e6) : "-") }'
}

# the result rows of a statement file (without psql's and the cpu lines)
rows_of() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -f "$1" | grep -v '^Time:\|^cpu '
}

median() {
    tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# md5 of the rows of a variant, in the order it returns them (sorted: in
# sorted order)
output_md5() {
    local v=$1 lit=$2 sorted=${3:-} sql
    sql=$(variant_sql "$v" | sed 's/SELECT count(\*) FROM (/SELECT md5(string_agg(x, '"'"','"'"'$ORD)) FROM (/')
    [[ $v == missing_ids ]] && sql="SELECT md5(string_agg(x, ',' \$ORD)) FROM workqueue.missing_ids('bench', @IDS@::text[]) x"
    if [[ -n $sorted ]]; then sql=${sql//\$ORD/ ORDER BY x}; else sql=${sql//\$ORD/}; fi
    stmt_file "$tmp/md5.sql" "SET work_mem = '256MB';" "$sql" "$lit"
    rows_of "$tmp/md5.sql" | tail -1
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", b / a; else print "-" }'
}

: >"$tmp/log"
: >"$tmp/rows"
: >"$tmp/detail"
log "missing_ids vs plain SQL — $(date -u '+%Y-%m-%d %H:%M UTC')"
log "$(psql -X -At -d postgres -c "SELECT 'server: ' || version()" | cut -c1-80)"
log "$(psql -X -At -d postgres -c "SELECT 'settings: work_mem=' || current_setting('work_mem')
    || ', shared_buffers=' || current_setting('shared_buffers') || ', jit=' || current_setting('jit')")"
log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); workqueue $(git -C .. rev-parse --short HEAD 2>/dev/null || echo '?')$(
    [[ -n $(git -C .. status --porcelain -- sql src 2>/dev/null) ]] && echo ' (+ uncommitted changes)')"
log "data: $items items in queue 'bench', 200000 in 'other'; ids as one array literal, ${missing_pct}% missing;"
log "      psql \\timing, median of $repeat runs after a warm-up run, every variant in this same run"
log ""

# best NAMES...: of the anti-join names, the one with the lowest median of
# field F (1 wall, 2 cpu) in times[]: prints "ms name"
best_of() {
    local f=$1; shift
    for name in "$@"; do
        echo "$(echo "${times[$name]}" | tr ' ' '\n' | grep . | cut -d: -f"$f" | median) $name"
    done | grep -v '^-\? ' | grep -v '^ ' | sort -n | head -1
}

declare -A best_wall best_cpu mi_wall mi_cpu
status=0
for k in $sizes; do
    echo "== input $k" >&2
    lit=$tmp/$k.lit
    # every variant: a statement file; then rounds, each running every
    # variant once in turn (round 0 warms up), so that a burst of load on
    # this shared machine hits all variants alike
    names=(parse_only missing_ids)
    stmt_file "$tmp/$k.parse_only.sql" "" "$(variant_sql parse_only)" "$lit"
    stmt_file "$tmp/$k.missing_ids.sql" "" "$(variant_sql missing_ids)" "$lit"
    for v in not_exists group_by left_join except; do
        for wm in default 256MB; do
            for jit in on off; do
                s="SET jit = $jit;"; [[ $wm != default ]] && s="$s SET work_mem = '$wm';"
                names+=("$v,$wm,$jit")
                stmt_file "$tmp/$k.$v,$wm,$jit.sql" "$s" "$(variant_sql "$v")" "$lit"
            done
        done
    done
    declare -A times=()
    for r in $(seq 0 "$repeat"); do
        echo "   round $r of $repeat" >&2
        for name in "${names[@]}"; do
            t=$(run_once "$tmp/$k.$name.sql")
            ((r > 0)) && times[$name]="${times[$name]:-} $t"
        done
    done
    for name in "${names[@]}"; do
        w=$(echo "${times[$name]}" | tr ' ' '\n' | grep . | cut -d: -f1 | median)
        c=$(echo "${times[$name]}" | tr ' ' '\n' | grep . | cut -d: -f2 | median)
        echo "   $name: wall $w ms, backend cpu $c ms (wall:cpu of each run:${times[$name]})" >&2
        printf '%-6s %-26s %10s %10s\n' "$k" "$name" "$w" "$c" >>"$tmp/detail"
        case $name in
        parse_only) po_w=$w; po_c=$c ;;
        missing_ids) mi_wall[$k]=$w; mi_cpu[$k]=$c ;;
        esac
    done
    read -r bw bw_how <<<"$(best_of 1 "${names[@]:2}")"
    read -r bc bc_how <<<"$(best_of 2 "${names[@]:2}")"
    best_wall[$k]=$bw; best_cpu[$k]=${bc:--}
    # NOT IN on the first ids, scaled up
    n=$(n_of "$k")
    stmt_file "$tmp/notin.sql" "" "$(variant_sql not_in)" "$tmp/$k.sample"
    sample=$(run_once "$tmp/notin.sql" | cut -d: -f1)
    notin=$(awk -v t="$sample" -v n="$n" -v s="$notin_sample" 'BEGIN { if (t != "") printf "%d", t * n / s }')
    echo "   NOT IN, first $notin_sample ids: $sample ms: about $notin ms for all $n" >&2
    # same output, same order as the ordered anti-join; same set as EXCEPT
    a=$(output_md5 missing_ids "$lit")
    b=$(output_md5 not_exists "$lit")
    [[ $a == "$b" ]] || { echo "input $k: missing_ids and not_exists return different rows or orders" >>"$tmp/problems"; status=1; }
    a=$(output_md5 missing_ids "$lit" sorted)
    b=$(output_md5 except "$lit" sorted)
    [[ $a == "$b" ]] || { echo "input $k: missing_ids and except return different sets" >>"$tmp/problems"; status=1; }
    n_missing=$(rows_of "$tmp/$k.missing_ids.sql" | tail -1)
    printf '%-6s %8s %10s %12s %10s %7s %12s %10s   %s\n' "$k" "$n_missing" "$po_w" "${mi_wall[$k]}" "$bw" \
        "$(ratio "${mi_wall[$k]}" "$bw")" "~$notin" "~$(ratio "${mi_wall[$k]}" "$notin")" "${bw_how//,/ }" >>"$tmp/rows"
    printf '%-6s %8s %10s %12s %10s %7s %12s %10s   %s\n' "" "cpu:" "$po_c" "${mi_cpu[$k]}" "${bc:--}" \
        "$(ratio "${mi_cpu[$k]}" "${bc:--}")" "" "" "${bc_how//,/ }" >>"$tmp/rows"
done

{
    printf '%-6s %8s %10s %12s %10s %7s %12s %10s   %s\n' "input" "missing" "parse only" "missing_ids" \
        "best anti" "ratio" "NOT IN" "ratio" "best anti-join was (variant work_mem jit)"
    printf '%-6s %8s %10s %12s %10s %7s %12s %10s\n' "ids" "" "ms" "ms" "ms" "" "ms" ""
    cat "$tmp/rows"
    echo
    echo "ratio = SQL time / missing_ids time (> 1: missing_ids is faster).  First line: psql's time"
    echo "(send, parse, plan, execute); \"cpu:\" line: the backend's on-CPU time for the same runs, which"
    echo "a busy machine disturbs much less.  Every time includes parsing the literal (\"parse only\")."
    echo "NOT IN is timed on the first $notin_sample ids and scaled up."
    echo "targets (SPEC §10, issue 12; 1M ids vs 1M items): >= 2x the best anti-join, >= 100x NOT IN."
    if [[ -n ${best_wall[1M]:-} ]]; then
        for m in wall cpu; do
            declare -n bm=best_$m mm=mi_$m
            echo "1M, $m: $(awk -v a="${bm[1M]}" -v m="${mm[1M]}" \
                'BEGIN { if (a > 0 && m > 0) { r = a / m; printf "%.2fx the best anti-join: %s", r, (r >= 2 ? "target met" : "BELOW TARGET") } else print "-" }')"
        done
    fi
    echo "output of missing_ids = output of not_exists (same ids, same order) and of except (same set): $(
        [[ -s $tmp/problems ]] && echo NO || echo yes)"
    echo
    echo "every variant (median ms: wall, backend cpu):"
    cat "$tmp/detail"
} | tee -a "$tmp/log"

if [[ -s $tmp/problems ]]; then
    { echo; echo "PROBLEMS:"; cat "$tmp/problems"; } | tee -a "$tmp/log"
fi
cp "$tmp/log" "$results"
echo "(written to bench/$results)"
exit $status
