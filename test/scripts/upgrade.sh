#!/usr/bin/env bash
# test/scripts/upgrade.sh — a database at 0.5 that runs ALTER EXTENSION
# workqueue UPDATE ends up with exactly the catalog of a fresh install.
#
# One database installs the current version; another installs 0.5 (the
# released script, kept as test/upgrade/workqueue--0.5.sql and installed by
# test/run.sh), calls every C entry point once with the new library loaded,
# adds data, and updates.  test/upgrade/catalog.sql lists every object of
# the two (functions with bodies and settings, tables, columns, constraints,
# indexes, views, policies, privileges, config-dump registrations, built-in
# rows) and any line that differs fails with its name.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/lib.sh"

fresh=wq_upgrade_fresh
old=wq_upgrade_old
cleanup() { for d in $fresh $old; do dropdb --if-exists "$d" >/dev/null 2>&1; done; }
trap cleanup EXIT
cleanup

released=$(pg_config --sharedir)/extension/workqueue--0.5.sql
if [[ ! -r $released ]]; then
    ok 1 "the 0.5 install script is installed ($released: test/run.sh copies it from test/upgrade/)"
    finish; exit
fi
current=$(psql -XAtqc "SELECT default_version FROM pg_available_extensions WHERE name = 'workqueue'")

createdb $fresh && createdb $old
psql -Xq -d $fresh -v ON_ERROR_STOP=1 -c "CREATE EXTENSION workqueue" >/dev/null
ok $? "fresh install of $current"
psql -Xq -d $old -v ON_ERROR_STOP=1 -c "CREATE EXTENSION workqueue VERSION '0.5'" >/dev/null
ok $? "install of 0.5"

# Every C function of 0.5, called once with NULL arguments under the new
# library: each returns or raises an ordinary error (never an internal
# error, never a crash that takes the connection).
calls=$(psql -XAtq -d $old -v ON_ERROR_STOP=1 <<'SQL' 2>&1
SET client_min_messages = warning;
CREATE TEMP TABLE c_calls (fn text, result text);
DO $$
DECLARE
    f record;
    state text;
BEGIN
    FOR f IN SELECT p.oid, p.proname, p.proretset,
                    (SELECT string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY o)
                       FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, o)) AS args
               FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
              WHERE p.pronamespace = 'workqueue'::regnamespace AND l.lanname = 'c'
              ORDER BY p.proname, p.oid
    LOOP
        BEGIN
            EXECUTE format('SELECT count(*) FROM (SELECT workqueue.%I(%s)) x',
                           f.proname, coalesce(f.args, ''));
            state := 'ok';
        EXCEPTION WHEN OTHERS THEN
            state := SQLSTATE;
        END;
        INSERT INTO c_calls VALUES (f.proname || '(' || coalesce(f.args, '') || ')', state);
    END LOOP;
END
$$;
SELECT count(*) || ' C functions called; internal errors: ' ||
       coalesce(string_agg(fn || ' ' || result, ', ') FILTER (WHERE result LIKE 'XX%'), 'none')
  FROM c_calls;
SQL
)
is "$calls" "$(psql -XAtq -d $old -c "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                                     WHERE p.pronamespace = 'workqueue'::regnamespace AND l.lanname = 'c'") C functions called; internal errors: none" \
   "at 0.5 with the $current library loaded, every C entry point answers (NULL arguments: a result or an ordinary error)"

psql -Xq -d $old -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT workqueue.create_queue('kept');
SELECT workqueue.add('kept', '{"n": 1}', 2, 'K-1');
SELECT workqueue.create_calendar('office', 'Europe/Berlin', '{"mon": [["09:00", "17:00"]]}');
SQL
ok $? "data added at 0.5"

psql -Xq -d $old -v ON_ERROR_STOP=1 -c "ALTER EXTENSION workqueue UPDATE" >/dev/null
ok $? "ALTER EXTENSION workqueue UPDATE from 0.5"
is "$(psql -XAtq -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'workqueue'")" "$current" \
   "the updated database is at $current"
is "$(psql -XAtq -d $old -c "SELECT external_id || ' ' || data::text || ' ' || (SELECT count(*) FROM workqueue.item_event)
                              FROM workqueue.item")" 'K-1 {"n": 1} 1' "the item and its event are kept"

# The built-in rows of user data differ by design (the calendar "office");
# compare the catalogs without it.
psql -Xq -d $old -c "SET session_replication_role = replica; DELETE FROM workqueue.calendar WHERE name = 'office'" >/dev/null
psql -XAtq -d $fresh -f "$here/upgrade/catalog.sql" >/tmp/wq-catalog-fresh.$$
psql -XAtq -d $old -f "$here/upgrade/catalog.sql" >/tmp/wq-catalog-updated.$$
n=$(wc -l </tmp/wq-catalog-fresh.$$)
d=$(diff /tmp/wq-catalog-fresh.$$ /tmp/wq-catalog-updated.$$ | grep '^[<>]' | sed -E 's/^</fresh:  /; s/^>/updated:/' | cut -c1-300)
ok $([[ $n -gt 500 && -z $d ]]; echo $?) "0.5 + UPDATE has the catalog of a fresh $current install ($n objects and attributes compared)"
[[ -n $d ]] && echo "$d" | sed 's/^/#   /'
rm -f /tmp/wq-catalog-fresh.$$ /tmp/wq-catalog-updated.$$
finish
