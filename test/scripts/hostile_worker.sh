#!/usr/bin/env bash
# The background workers ignore a hostile search_path (doc/hostile-input.md):
# the database owner sets one with ALTER DATABASE, first in it a schema
# whose "=" on text and now() record every call; a sync run and an
# enrichment fetch must complete without calling either.  The workers run as
# the bootstrap superuser, so a call would be the owner's code running with
# superuser rights.  Runs in the database the worker serves (PGDATABASE);
# the setting and the schema are removed at the end, and the workers
# restarted again.
source "$(dirname "$0")/../lib.sh"
# this script's own sessions keep a harmless search_path
export PGOPTIONS="-c search_path=public"
api_start
q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
db=$(q 'SELECT current_database()')

sync_pid() { q "SELECT pid FROM workqueue.worker_status WHERE kind = 'sync'"; }
fetch_pid() { q "SELECT pid FROM workqueue.worker_status WHERE kind = 'fetch'"; }

# restart_workers: terminates this database's workers and waits for new ones
restart_workers() {
    local old_sync old_fetch
    old_sync=$(sync_pid); old_fetch=$(fetch_pid)
    q "SELECT pg_terminate_backend(pid) FROM workqueue.worker_status" >/dev/null
    wait_until 15 "new workers of database $db" new_workers "$old_sync" "$old_fetch"
}
new_workers() {     # new_workers OLD-SYNC-PID OLD-FETCH-PID: both workers run, neither of them an old one
    local s f
    s=$(sync_pid); f=$(fetch_pid)
    [[ -n $s && $s != "$1" && -n $f && $f != "$2" ]]
}

cleanup() {
    psql -XAtq -c "ALTER DATABASE \"$db\" RESET search_path" -c "DROP SCHEMA IF EXISTS h_evil CASCADE" >/dev/null 2>&1
    restart_workers >/dev/null 2>&1
}
trap 'cleanup; [[ -n ${T_API_PID:-} ]] && kill $T_API_PID 2>/dev/null' EXIT

q "DROP SCHEMA IF EXISTS h_evil CASCADE;
   CREATE SCHEMA h_evil;
   CREATE TABLE h_evil.calls (what text, app text);
   CREATE FUNCTION h_evil.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS \$\$
   BEGIN
       INSERT INTO h_evil.calls VALUES ('=', pg_catalog.current_setting('application_name'));
       RETURN pg_catalog.texteq(a, b);
   END \$\$;
   CREATE OPERATOR h_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = h_evil.texteq);
   CREATE FUNCTION h_evil.now() RETURNS timestamptz LANGUAGE plpgsql AS \$\$
   BEGIN
       INSERT INTO h_evil.calls VALUES ('now()', pg_catalog.current_setting('application_name'));
       RETURN pg_catalog.now();
   END \$\$;
   ALTER DATABASE \"$db\" SET search_path = h_evil, pg_catalog, public" >/dev/null
ok $(restart_workers; echo $?) "the workers restart with the database's hostile search_path"
is "$(PGOPTIONS= PGAPPNAME=trap psql -XAtqc 'SELECT 1 WHERE (SELECT $$a$$::text) = $$a$$' >/dev/null 2>&1
     q 'SELECT string_agg(what || $$ in $$ || app, $$, $$) FROM h_evil.calls')" "= in trap" \
    "a new session of the database does call h_evil's = (the trap works)"
q "TRUNCATE h_evil.calls" >/dev/null

control '{"reset": true}'
hw=hw_$$_$(date +%s)     # the database outlives this script: a fresh queue and source
q "SELECT workqueue.create_queue('$hw');
   SELECT workqueue.create_source('$hw', '$hw', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}', '{\"batch_size\": 100}')" >/dev/null
r=$(q "SELECT workqueue.sync('$hw', force => true)")
is "$(wait_run "$r")" "completed|" "a sync run completes"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = '$hw'")" 250 "and inserts the 250 cases"
q "SELECT workqueue.enqueue_fetch(id, '$hw') FROM workqueue.item WHERE queue = '$hw' AND external_id = 'C-0007'" >/dev/null
wait_fetches "$hw" 10
is "$(q "SELECT status FROM workqueue.fetch WHERE queue = '$hw'")" completed "an enrichment fetch completes"
is "$(q "SELECT coalesce(string_agg(DISTINCT what || ' in ' || app, ', '), 'none') FROM h_evil.calls")" none \
    "neither worker called h_evil's = or now()"

cleanup
ok $([[ -n $(sync_pid) && -n $(fetch_pid) ]]; echo $?) "the workers run again without the setting"
finish
