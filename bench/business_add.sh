#!/usr/bin/env bash
# bench/business_add.sh — workqueue.business_add (C) next to the plain SQL
# and the PL/pgSQL a user would write for the same question (SPEC §10:
# >= 1M calls/s, >= 10x the best plain-SQL version, agreeing on every case).
#
#   bash bench/business_add.sh
#
# Needs a cluster with workqueue in shared_preload_libraries, reached through
# the usual PGHOST/PGPORT/PGUSER/PGPASSWORD, as a role that may create
# databases and extensions.  Works in database wq_bench_calendar, dropped and
# recreated for every run and dropped at the end.  Loads
# sql/staging/calendar.sql only if the extension lacks business_add.
#
# The calendar: 09:00-17:00 Monday to Friday, Europe/London, with the
# English bank holidays 2024-2027.  Case i (i = 1..N) starts at a minute
# spread pseudo-randomly over 2024-2025 (also nights and weekends) and adds
# between 1 minute and 5 weeks of working time: the same expressions feed
# every side.
#   workqueue   SELECT count(workqueue.business_add(start, amount, 'bench_london'))
#               over BENCH_CALLS cases
#   plain SQL   per case: generate_series over the local days the amount can
#               need, each day's 09:00-17:00 built AT TIME ZONE, weekends and
#               holidays left out, a window sum() of the intervals, the first
#               interval where the sum reaches the amount (LATERAL, no
#               function-call overhead); over BENCH_SQL_CALLS cases
#   PL/pgSQL    a loop over the days, consuming the amount interval by
#               interval; over BENCH_SQL_CALLS cases
# Each side runs BENCH_REPEAT times; the table shows the best run.  Time is
# measured inside the server (clock_timestamp around EXECUTE).  Then the
# three are compared on BENCH_CHECK cases and every mismatch is printed.
# Results go to stdout and bench/results/business_add.txt.
set -euo pipefail
cd "$(dirname "$0")"

db=wq_bench_calendar
calls=${BENCH_CALLS:-1000000}
sql_calls=${BENCH_SQL_CALLS:-20000}
check=${BENCH_CHECK:-20000}
repeat=${BENCH_REPEAT:-3}
results=results/business_add.txt
mkdir -p results

cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql_db() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql_db -c "CREATE EXTENSION workqueue"

psql_db <<'SQL'
SELECT workqueue.create_calendar('bench_london', 'Europe/London',
    '{"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]], "wed": [["09:00", "17:00"]],
      "thu": [["09:00", "17:00"]], "fri": [["09:00", "17:00"]]}',
    '{2024-01-01, 2024-03-29, 2024-04-01, 2024-05-06, 2024-05-27, 2024-08-26, 2024-12-25, 2024-12-26,
      2025-01-01, 2025-04-18, 2025-04-21, 2025-05-05, 2025-05-26, 2025-08-25, 2025-12-25, 2025-12-26,
      2026-01-01, 2026-04-03, 2026-04-06, 2026-05-04, 2026-05-25, 2026-08-31, 2026-12-25, 2026-12-28,
      2027-01-01, 2027-03-26, 2027-03-29, 2027-05-03, 2027-05-31, 2027-08-30, 2027-12-27, 2027-12-28}');

CREATE SCHEMA bench;

-- case i: a start minute over 2024-2025 and 1 minute to 5 weeks of working time
CREATE FUNCTION bench.start(i bigint) RETURNS timestamptz LANGUAGE sql STABLE AS
    $$ SELECT timestamptz '2024-01-01 00:00+00' + ((i * 7919) % 1051200) * interval '1 minute' $$;
CREATE FUNCTION bench.amount(i bigint) RETURNS interval LANGUAGE sql IMMUTABLE AS
    $$ SELECT ((i * 104729) % 50400 + 1) * interval '1 minute' $$;

-- the holidays, as a user keeps them
CREATE TABLE bench.holiday (day date PRIMARY KEY);
INSERT INTO bench.holiday SELECT unnest(holidays) FROM workqueue.calendar WHERE name = 'bench_london';
ANALYZE bench.holiday;

-- the plain-SQL way, written as a LATERAL subquery per case (the query text
-- is completed by the callers with the cases it runs over)
CREATE FUNCTION bench.plain_sql(cases text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
SELECT c.i, r.due
  FROM (%s) c
 CROSS JOIN LATERAL (
    SELECT w.s + (c.amount - (w.cum - w.len)) AS due
      FROM (SELECT iv.s, iv.e - iv.s AS len, sum(iv.e - iv.s) OVER (ORDER BY iv.s) AS cum
              FROM generate_series((c.start AT TIME ZONE 'Europe/London')::date::timestamp,
                                   ((c.start AT TIME ZONE 'Europe/London')::date
                                    + (ceil(extract(epoch FROM c.amount) / 28800 * 7 / 5)::int + 14))::timestamp,
                                   interval '1 day') AS g(day)
             CROSS JOIN LATERAL (SELECT greatest((g.day + time '09:00') AT TIME ZONE 'Europe/London', c.start) AS s,
                                        (g.day + time '17:00') AT TIME ZONE 'Europe/London' AS e) iv
             WHERE extract(isodow FROM g.day) < 6
               AND NOT EXISTS (SELECT 1 FROM bench.holiday h WHERE h.day = g.day::date)
               AND iv.e > iv.s) w
     WHERE w.cum >= c.amount
     ORDER BY w.s
     LIMIT 1) r
$q$, cases)
$f$;

-- the PL/pgSQL way: walk the days, consume the amount interval by interval
CREATE FUNCTION bench.plpgsql_add(start timestamptz, amount interval) RETURNS timestamptz
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    d date := (start AT TIME ZONE 'Europe/London')::date;
    rem interval := amount;
    s timestamptz;
    e timestamptz;
BEGIN
    LOOP
        IF extract(isodow FROM d) < 6 AND NOT EXISTS (SELECT 1 FROM bench.holiday h WHERE h.day = d) THEN
            s := greatest((d + time '09:00') AT TIME ZONE 'Europe/London', start);
            e := (d + time '17:00') AT TIME ZONE 'Europe/London';
            IF e > s THEN
                IF e - s >= rem THEN
                    RETURN s + rem;
                END IF;
                rem := rem - (e - s);
            END IF;
        END IF;
        d := d + 1;
    END LOOP;
END
$$;

-- seconds a statement takes, measured in the server
CREATE FUNCTION bench.time_it(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0);
END
$$;
SQL

# best of $repeat runs, in seconds
best() {
    local q=$1 b=""
    for ((r = 0; r < repeat; r++)); do
        t=$(psql_db -At -c "SELECT bench.time_it(\$q\$$q\$q\$)")
        if [[ -z $b ]] || awk -v t="$t" -v b="$b" 'BEGIN { exit !(t < b) }'; then b=$t; fi
    done
    echo "$b"
}

cases_sql() {
    echo "SELECT i, bench.start(i) AS start, bench.amount(i) AS amount FROM generate_series(1, $1) i"
}

echo "== business_add: $calls calls (workqueue), $sql_calls calls (plain SQL, PL/pgSQL), best of $repeat"
t_base=$(best "SELECT count(bench.start(i) + bench.amount(i)) FROM generate_series(1, $calls) i")
t_c=$(best "SELECT count(workqueue.business_add(bench.start(i), bench.amount(i), 'bench_london')) FROM generate_series(1, $calls) i")
plain=$(psql_db -At -c "SELECT bench.plain_sql(\$c\$$(cases_sql "$sql_calls")\$c\$)")
t_sql=$(best "SELECT count(due) FROM ($plain) x")
t_plpgsql=$(best "SELECT count(bench.plpgsql_add(bench.start(i), bench.amount(i))) FROM generate_series(1, $sql_calls) i")

echo "== agreement on $check cases"
plain_check=$(psql_db -At -c "SELECT bench.plain_sql(\$c\$$(cases_sql "$check")\$c\$)")
mismatches=$(psql_db -At -F ' | ' -c "
    WITH c AS (SELECT i, bench.start(i) AS start, bench.amount(i) AS amount,
                      workqueue.business_add(bench.start(i), bench.amount(i), 'bench_london') AS wq,
                      bench.plpgsql_add(bench.start(i), bench.amount(i)) AS plpgsql
                 FROM generate_series(1, $check) i),
         s AS ($plain_check)
    SELECT c.i, c.start, c.amount, c.wq, s.due, c.plpgsql
      FROM c LEFT JOIN s USING (i)
     WHERE c.wq IS DISTINCT FROM s.due OR c.wq IS DISTINCT FROM c.plpgsql
     ORDER BY c.i")
if [[ -n $mismatches ]]; then
    echo "case | start | amount | workqueue | plain SQL | PL/pgSQL"
    echo "$mismatches"
    n_bad=$(wc -l <<<"$mismatches")
else
    n_bad=0
fi

{
    echo "business_add, 09:00-17:00 Mon-Fri Europe/London with bank holidays; amounts 1 minute to 5 weeks"
    echo "PostgreSQL $(psql_db -At -c 'SHOW server_version'), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    awk -v n="$calls" -v ns="$sql_calls" -v base="$t_base" -v c="$t_c" -v s="$t_sql" -v p="$t_plpgsql" 'BEGIN {
        rc = n / c; rs = ns / s; rp = ns / p; rcx = n / (c - base)
        printf "%-40s %12s %14s %12s\n", "side", "calls", "calls/s", "vs plain SQL"
        printf "%-40s %12d %14.0f %11.1fx\n", "workqueue.business_add (C)", n, rc, rc / rs
        printf "%-40s %12d %14.0f %11.1fx\n", "  (C, less the query around it)", n, rcx, rcx / rs
        printf "%-40s %12d %14.0f %11.1fx\n", "plain SQL (generate_series, window sum)", ns, rs, 1
        printf "%-40s %12d %14.0f %11.1fx\n", "PL/pgSQL loop", ns, rp, rp / rs
        printf "\nworkqueue vs PL/pgSQL: %.1fx\n", rc / rp
    }'
    echo "agreement: $check cases compared, $n_bad mismatches"
    awk -v n="$calls" -v ns="$sql_calls" -v c="$t_c" -v s="$t_sql" -v bad="$n_bad" 'BEGIN {
        ok = (n / c >= 1000000) && ((n / c) / (ns / s) >= 10) && bad == 0
        printf "targets (>= 1M calls/s, >= 10x plain SQL, agreement): %s\n", ok ? "met" : "NOT met"
    }'
} | tee "$results"
[[ $n_bad == 0 ]]
