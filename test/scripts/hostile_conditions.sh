#!/usr/bin/env bash
# Hostile conditions that must end in a clean error or a sane result and
# never crash the server: cancelling long calls, upstream bodies that are not
# UTF-8, dropping the extension or the database under a busy worker,
# terminating workers while they start, and a hostile search_path.  At the
# end the postmaster must not have restarted and the server log must show no
# process terminated by a signal.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../crashlib.sh"
api_start
tmp=$(mktemp -d)
db=$(q "SELECT current_database()")
db2=wq_hostile
cleanup() {
    [[ -n ${T_API_PID:-} ]] && kill $T_API_PID 2>/dev/null
    rm -rf "$tmp"
    psql -XAtq -c "DROP TABLE IF EXISTS public.hostile_payload, public.hostile_ids" \
         -c "ALTER DATABASE \"$db\" RESET search_path" -c "DROP SCHEMA IF EXISTS evil CASCADE" \
         -c "ALTER SYSTEM RESET workqueue.databases" -c "SELECT pg_reload_conf()" \
         -c "DROP DATABASE IF EXISTS $db2 WITH (FORCE)" >/dev/null 2>&1
}
trap cleanup EXIT
q "CREATE EXTENSION IF NOT EXISTS workqueue" >/dev/null
wait_workers
ok $? "both workers serve database $db"
epoch0=$(cluster_epoch)
log0=$(log_size)
# big arguments for the cancel tests, built while the first test runs
psql -XAtq -c "DROP TABLE IF EXISTS public.hostile_payload, public.hostile_ids" \
     -c "CREATE TABLE public.hostile_payload AS
         SELECT jsonb_agg(jsonb_build_object('external_id', 'U-' || g, 'data', jsonb_build_object('n', g))) j
           FROM generate_series(1, 200000) g" \
     -c "CREATE TABLE public.hostile_ids AS SELECT array_agg('X-' || g) a FROM generate_series(1, 4000000) g" >/dev/null 2>&1 &
builder=$!
ok $([[ -r $T_LOG ]]; echo $?) "the server log is readable ($T_LOG)"

details='/cases/details?ids={ids}'
new_source() {      # new_source NAME OPTIONS [IDS_PATH]
    q "SELECT workqueue.create_queue('$1');
       SELECT workqueue.create_source('$1', '$1', '$WQ_API${3:-/cases/ids}', '$WQ_API$details', '$2')" >/dev/null
}
run_col() { q "SELECT $2 FROM workqueue.sync_run WHERE id = $1"; }
# active_pid NAME: the pid of the session with that application_name while it runs a statement
active_pid() { q "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND application_name = '$1'"; }
now_ms() { date +%s%3N; }
restart_workers() { # terminates this database's workers, waits for new ones
    local old
    old=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
              WHERE backend_type IN ($(worker_types_sql fetch sync)) AND datname = current_database()")
    q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE backend_type IN ($(worker_types_sql fetch sync)) AND datname = current_database()" >/dev/null
    wait_workers 15 $old
}

########################################################################
# pg_cancel_backend inside workqueue.wait(): 57014, the session goes on
control '{"reset": true, "slow_ms": 5000, "fault_paths": ["/cases/ids"]}'
new_source hw '{}'
r=$(q "SELECT workqueue.sync('hw')")
PGAPPNAME=hostile_wait psql -XAtq >"$tmp/wait.out" 2>&1 <<SQL &
SELECT status FROM workqueue.wait($r, '1 minute');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT 'alive ' || count(*) FROM workqueue.sync_run WHERE id = $r;
SQL
client=$!
# in_wait: the session is inside wait(), in its pg_sleep between two looks at the run (pid in $pid)
in_wait() { pid=$(q "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND application_name = 'hostile_wait' AND wait_event = 'PgSleep'"); [[ -n $pid ]]; }
wait_until -i 0.05 10 "the hostile_wait session to sleep inside workqueue.wait()" in_wait
t0=$(now_ms)
q "SELECT pg_cancel_backend($pid)" >/dev/null
wait $client
ms=$(( $(now_ms) - t0 ))
ok $(grep -q 'sqlstate 57014' "$tmp/wait.out"; echo $?) "pg_cancel_backend inside wait(): SQLSTATE 57014 (after $ms ms)"
ok $(grep -q 'alive 1' "$tmp/wait.out"; echo $?) "... and the session is still usable"
control '{"slow_ms": 0}'
is "$(wait_run $r)" "completed|" "the run itself was not disturbed"

########################################################################
# pg_cancel_backend inside a 200,000-item upsert_items and 4M-id missing_ids calls
wait $builder
q "SELECT workqueue.create_queue('hu')" >/dev/null
lsn0=$(q "SELECT pg_current_wal_insert_lsn()")
PGAPPNAME=hostile_upsert psql -XAtq >"$tmp/upsert.out" 2>&1 <<SQL &
SELECT * FROM workqueue.upsert_items('hu', (SELECT j FROM public.hostile_payload));
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT 'alive ' || count(*) FROM workqueue.item WHERE queue = 'hu';
SQL
client=$!
upsert_writing() {  # the upsert runs (pid in $pid) and has written 4 MB of WAL
    pid=$(active_pid hostile_upsert)
    [[ -n $pid && $(q "SELECT pg_current_wal_insert_lsn() - '$lsn0'") -gt 4000000 ]]
}
wait_until -i 0.05 15 "the hostile_upsert session to write 4 MB of WAL" upsert_writing
q "SELECT pg_cancel_backend($pid)" >/dev/null
t0=$(now_ms)
wait $client
ms=$(( $(now_ms) - t0 ))
ok $(grep -q 'sqlstate 57014' "$tmp/upsert.out"; echo $?) "pg_cancel_backend while upsert_items writes: SQLSTATE 57014"
ok $([[ $ms -lt 3000 ]]; echo $?) "... $ms ms after the cancel (the whole call takes some 10 s)"
ok $(grep -q 'alive 0' "$tmp/upsert.out"; echo $?) "... nothing written, and the session is still usable"

# three calls of missing_ids over 4M ids in one statement: cancelled in the second second
PGAPPNAME=hostile_missing psql -XAtq >"$tmp/missing.out" 2>&1 <<SQL &
SELECT count(*) FROM public.hostile_ids h, generate_series(1, 3) g, LATERAL workqueue.missing_ids('hu', h.a);
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT 'alive';
SQL
client=$!
missing_active() { pid=$(active_pid hostile_missing); [[ -n $pid ]]; }
wait_until -i 0.02 2 "the hostile_missing session to run its statement" missing_active
sleep 1     # not a wait: the cancel is to come in the second second of the work
q "SELECT pg_cancel_backend($pid)" >/dev/null
t0=$(now_ms)
wait $client
ms=$(( $(now_ms) - t0 ))
ok $(grep -q 'sqlstate 57014' "$tmp/missing.out"; echo $?) "pg_cancel_backend inside missing_ids: SQLSTATE 57014"
ok $([[ $ms -lt 1000 ]]; echo $?) "... $ms ms after the cancel (one call over 4M ids takes some 2 s)"
ok $(grep -q '^alive' "$tmp/missing.out"; echo $?) "... and the session is still usable"
q "DROP TABLE public.hostile_payload, public.hostile_ids" >/dev/null

########################################################################
# upstream bodies that are not UTF-8: a clean error, nothing written
control '{"reset": true}'
new_source hb1 '{}' /binary
r=$(q "SELECT workqueue.sync('hb1')"); wait_run $r >/dev/null
is "$(run_col $r "status || '|' || error")" "failed|invalid UTF-8 in listing response from $WQ_API/binary" "a binary listing fails the run with a clear error"
control '{"reset": true, "invalid_utf8": true, "fault_paths": ["/cases/ids"]}'
new_source hb2 '{}'
r=$(q "SELECT workqueue.sync('hb2')"); wait_run $r >/dev/null
is "$(run_col $r "status || '|' || error")" "failed|invalid UTF-8 in listing response from $WQ_API/cases/ids" "a JSON listing with invalid UTF-8 in an id fails the run"
control '{"reset": true, "invalid_utf8": true, "fault_paths": ["/cases/details"]}'
new_source hb3 '{"batch_size": 50}'
r=$(q "SELECT workqueue.sync('hb3')"); wait_run $r >/dev/null
ok $([[ $(run_col $r "status || '|' || error") == "failed|invalid UTF-8 in details response from $WQ_API/cases/details?ids="* ]]; echo $?) \
   "JSON details with invalid UTF-8 in a value fail the run ($(run_col $r error | cut -c1-60)...)"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue IN ('hb1', 'hb2', 'hb3')")|$(q "SELECT count(*) FROM workqueue.item_event WHERE queue IN ('hb1', 'hb2', 'hb3')")" "0|0" \
   "... and nothing was written by any of them"
control '{"reset": true}'
q "SELECT workqueue.create_queue('hf');
   SELECT workqueue.create_source('hfbin', 'hf', '$WQ_API/cases/ids', '$WQ_API/binary?x={ids}', '{\"retries\": 0}');
   SELECT workqueue.create_source('hfutf', 'hf', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}', '{\"retries\": 0}')" >/dev/null
i1=$(q "SELECT workqueue.add('hf', '{\"name\": \"before\"}', 3, 'C-0001')")
i2=$(q "SELECT workqueue.add('hf', '{\"name\": \"before\"}', 3, 'C-0002')")
f1=$(q "SELECT workqueue.enqueue_fetch($i1, 'hfbin')")
wait_fetches hf 20
control '{"reset": true, "invalid_utf8": true, "fault_paths": ["/cases/details"]}'
f2=$(q "SELECT workqueue.enqueue_fetch($i2, 'hfutf')")
wait_fetches hf 20
is "$(q "SELECT string_agg(status || '|' || error, ', ' ORDER BY id) FROM workqueue.fetch WHERE id IN ($f1, $f2)")" \
   "failed|invalid UTF-8, failed|invalid UTF-8" "fetches of a binary body and of JSON with invalid UTF-8 fail as invalid UTF-8"
is "$(q "SELECT string_agg(data->>'name', ',') FROM workqueue.item WHERE queue = 'hf'")|$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'hf' AND kind IN ('synced', 'fetch_completed')")" \
   "before,before|0" "... their items are untouched"
control '{"reset": true}'

########################################################################
# a second database served by the workers (workqueue.databases is reloadable)
q "DROP DATABASE IF EXISTS $db2 WITH (FORCE)" >/dev/null
q "CREATE DATABASE $db2" >/dev/null
psql -XAtq -c "ALTER SYSTEM SET workqueue.databases = '$db, $db2'" -c "SELECT pg_reload_conf()" >/dev/null
q2() { PGDATABASE=$db2 q "$@"; }
q2_is() { PGDATABASE=$db2 q_is "$@"; }
workers2() { q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db2' AND backend_type IN ($(worker_types_sql))"; }
workers2_are() { [[ $(workers2) == "$1" ]]; }
q2 "CREATE EXTENSION workqueue" >/dev/null
wait_until 10 "three workers in $db2" workers2_are 3
is "$(workers2)" 3 "after ALTER SYSTEM SET workqueue.databases and a reload, three workers (fetch, sync, announce) serve $db2"

# reordering the list moves workers between slots without doubling any; a database left out loses its workers
per_kind() {
    q "SELECT string_agg(datname || ' ' || backend_type || ' ' || n, ', ' ORDER BY datname, $(worker_kind_sql))
         FROM (SELECT datname, backend_type, count(*) n FROM pg_stat_activity
                WHERE backend_type IN ($(worker_types_sql fetch sync announce)) GROUP BY 1, 2) x"
}
want="$db $(worker_type announce) 1, $db $(worker_type fetch) 1, $db $(worker_type sync) 1"
want+=", $db2 $(worker_type announce) 1, $db2 $(worker_type fetch) 1, $db2 $(worker_type sync) 1"
per_kind_is_want() { [[ $(per_kind) == "$want" ]]; }
# moved: one worker of each kind per database, none of them one of before (the
# order of the list decides the slots: every worker is replaced)
old_workers=$(q "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type IN ($(worker_types_sql fetch sync announce))")
moved() { per_kind_is_want && q_is "SELECT count(*) FROM pg_stat_activity WHERE pid IN (${old_workers:-0})" 0; }
psql -XAtq -c "ALTER SYSTEM SET workqueue.databases = '$db2, $db'" -c "SELECT pg_reload_conf()" >/dev/null
wait_until 15 "the workers to move to their new slots, one of each kind per database" moved
sleep 1     # not a wait: one worker of each kind must still be all there is a second later
is "$(per_kind)" "$want" "workqueue.databases reordered: still one worker of each kind per database"
psql -XAtq -c "ALTER SYSTEM SET workqueue.databases = '$db'" -c "SELECT pg_reload_conf()" >/dev/null
wait_until 10 "the workers of $db2 to stop" workers2_are 0
is "$(workers2)" 0 "$db2 left out of workqueue.databases: its workers stop"
psql -XAtq -c "ALTER SYSTEM SET workqueue.databases = '$db, $db2'" -c "SELECT pg_reload_conf()" >/dev/null
wait_until 10 "one worker of each kind per database" per_kind_is_want
is "$(per_kind)" "$want" "... and start again when it is back"

# busy2 NAME: a slow sync run and 16 slow fetches in flight in $db2
busy2() {
    control '{"reset": true, "slow_ms": 1000}'
    q2 "SELECT workqueue.create_queue('$1');
        SELECT workqueue.create_source('$1', '$1', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}', '{\"batch_size\": 10, \"max_concurrency\": 1}');
        SELECT workqueue.create_queue('${1}f');
        SELECT count(workqueue.enqueue_fetch(workqueue.add('${1}f', '{}', 3, format('C-%s', lpad(g::text, 4, '0'))), '$1'))
          FROM generate_series(1, 100) g;
        SELECT workqueue.sync('$1')" >/dev/null
    wait_until 10 "a sync run and fetches in flight in $db2" busy2_now
}
busy2_now() {
    [[ $(q2 "SELECT count(*) FROM workqueue.fetch WHERE status = 'processing'") -gt 0 &&
       $(q2 "SELECT count(*) FROM workqueue.sync_run WHERE status = 'running'") == 1 ]]
}
starts2() { log_since "$1" | grep -c "worker started for database \"$db2\""; }
exits2() { log_since "$1" | grep -cE "background worker \"($(worker_type fetch)|$(worker_type sync)|$(worker_type announce))\" \\(PID [0-9]+\\) exited with exit code 1"; }

# DROP EXTENSION under a busy worker; it idles, then picks up after CREATE EXTENSION
busy2 hd
ok $? "$db2: a sync run and fetches in flight"
mark=$(log_size)
t0=$(now_ms)
err=$(PGDATABASE=$db2 qerr "SET lock_timeout = '20s'; DROP EXTENSION workqueue")
ms=$(( $(now_ms) - t0 ))
is "$err" "" "DROP EXTENSION workqueue while its workers are busy succeeds ($ms ms)"
# let the workers settle (a fetch worker with transfers in flight exits
# and the launcher starts a new one): until both workers have run and no
# worker started or exited for 3 s, at most 20 s -- a worker that loops on
# errors never settles
last=-1; same=0
settled() {         # looked at every 0.5 s: true at the 6th look in a row that finds the same and all three workers
    local cur
    cur="$(exits2 "$mark")/$(starts2 "$mark")/$(workers2)"
    if [[ $cur == "$last" && $(workers2) == 3 ]]; then same=$((same + 1)); else same=0; last=$cur; fi
    [[ $same -ge 6 ]]
}
wait_until -i 0.5 20 "the workers of $db2 to settle (no start or exit for 3 s)" settled
n_exits=$(exits2 "$mark"); n_starts=$(starts2 "$mark")
ok $([[ $n_exits -le 2 && $n_starts -le 2 ]]; echo $?) "the workers do not loop on errors ($n_exits error exits, $n_starts restarts until they settled)"
mark=$(log_size)
sleep 3     # not a wait: the workers must stay idle over these 3 s
is "$(exits2 "$mark")|$(starts2 "$mark")|$(workers2)" "0|0|3" "... and then idle: no exit, no restart in 3 s, all three still there"
control '{"reset": true}'
q2 "CREATE EXTENSION workqueue" >/dev/null
q2 "SELECT workqueue.create_queue('he');
    SELECT workqueue.create_source('he', 'he', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}')" >/dev/null
r=$(q2 "SELECT workqueue.sync('he')")
is "$(PGDATABASE=$db2 wait_run $r 30)|$(q2 "SELECT count(*) FROM workqueue.item WHERE queue = 'he'")" "completed||250" \
   "after CREATE EXTENSION the worker picks up again: a sync completes"
f=$(q2 "SELECT workqueue.enqueue_fetch(min(id), 'he') FROM workqueue.item WHERE queue = 'he'")
wait_until 10 "fetch $f of $db2 to complete" q2_is "SELECT status FROM workqueue.fetch WHERE id = $f" completed
is "$(q2 "SELECT status FROM workqueue.fetch WHERE id = $f")" completed "... and so does a fetch"

# a plain DROP DATABASE under busy workers: they step aside
busy2 hp
ok $? "$db2: busy again"
mark=$(log_size)
t0=$(now_ms)
err=$(qerr "DROP DATABASE $db2")
ms=$(( $(now_ms) - t0 ))
is "$err" "" "a plain DROP DATABASE of a database the workers serve succeeds ($ms ms)"
sleep 3     # not a wait: no worker may start for the dropped database over these 3 s
is "$(workers2)|$(starts2 "$mark")" "0|0" "the launcher starts no worker for the dropped database (3 s)"
is "$(log_since "$mark" | grep -c "database \"$db2\" does not exist")" 0 "... and no worker fails on it"

# recreated under the same name it is served again; DROP DATABASE ... WITH (FORCE) works too
q "CREATE DATABASE $db2" >/dev/null
q2 "CREATE EXTENSION workqueue" >/dev/null
wait_until 10 "three workers in the new $db2" workers2_are 3
is "$(workers2)" 3 "a database created again under that name gets its workers"
busy2 hx
mark=$(log_size)
is "$(qerr "DROP DATABASE $db2 WITH (FORCE)")" "" "DROP DATABASE ... WITH (FORCE) under busy workers succeeds"
sleep 3     # not a wait: nothing may be restarted for it over these 3 s
is "$(workers2)|$(starts2 "$mark")|$(log_since "$mark" | grep -c "database \"$db2\" does not exist")" "0|0|0" "... and nothing is restarted for it"
psql -XAtq -c "ALTER SYSTEM RESET workqueue.databases" -c "SELECT pg_reload_conf()" >/dev/null
control '{"reset": true}'

########################################################################
# workers terminated while they start
# kill_new KIND OLDPID: terminates the next worker of that kind the moment it
# appears (looked for inside one statement, every 1 ms: a wait_until of psql
# calls would come too late to catch the worker in its start-up)
kill_new() {
    q "DO \$\$
DECLARE p int; t0 timestamptz := clock_timestamp();
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT pid INTO p FROM pg_stat_activity
         WHERE backend_type = '$(worker_type "$1")' AND datname = current_database() AND pid <> $2;
        EXIT WHEN p IS NOT NULL OR clock_timestamp() > t0 + interval '15 seconds';
        PERFORM pg_sleep(0.001);
    END LOOP;
    RAISE WARNING '%', CASE WHEN p IS NOT NULL AND pg_terminate_backend(p) THEN p END;
END \$\$" 2>&1 | sed -nE 's/.*WARNING:  ([0-9]+)$/\1/p'
}
# kill_starting KIND: terminates the worker, then its successor the moment it appears
kill_starting() {
    local old
    old=$(worker_pid "$1")
    [[ -n $old ]] && q "SELECT pg_terminate_backend($old)" >/dev/null
    kill_new "$1" "${old:-0}"
}
kill_starting fetch >"$tmp/kill1" &
kills=$!
kill_starting sync >"$tmp/kill2"
wait $kills
ok $([[ -s $tmp/kill1 && -s $tmp/kill2 ]]; echo $?) "fetch and sync worker: each terminated the moment it appeared (pids $(cat "$tmp/kill1") $(cat "$tmp/kill2"))"
t0=$(now_ms)
wait_workers 15
ok $? "both workers are back, $(( ($(now_ms) - t0) / 1000 )) s after the last termination"

# the launcher terminated: its workers go with it, the next launcher starts one of each again
launcher=$(worker_pid launcher)
old_fetch=$(worker_pid fetch); old_sync=$(worker_pid sync)
q "SELECT pg_terminate_backend($launcher)" >/dev/null
relaunched() {      # a new launcher, and new workers of each kind
    [[ -n $(worker_pid launcher) && $(worker_pid launcher) != "$launcher" ]] && workers_running "${old_fetch:-0}" "${old_sync:-0}"
}
wait_until 15 "a new launcher and new workers" relaunched
sleep 2     # not a wait: time for a second worker of a kind to show up, were one started
is "$(q "SELECT string_agg(backend_type || ' ' || n, ', ' ORDER BY $(worker_kind_sql)) FROM (SELECT backend_type, count(*) n FROM pg_stat_activity
           WHERE backend_type IN ($(worker_types_sql fetch sync)) AND datname = current_database() GROUP BY 1) x")" \
   "$(worker_type fetch) 1, $(worker_type sync) 1" "after pg_terminate_backend of the launcher: one worker of each kind, not two"
new_source hs '{}'
r=$(q "SELECT workqueue.sync('hs')")
is "$(wait_run $r 30)|$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'hs'")" "completed||250" "... and work: a sync completes"
f=$(q "SELECT workqueue.enqueue_fetch(min(id), 'hs') FROM workqueue.item WHERE queue = 'hs'")
wait_fetches hs 20
is "$(q "SELECT status FROM workqueue.fetch WHERE id = $f")" completed "... and a fetch"

########################################################################
# a hostile search_path: shadowing functions in schema "evil"
q "CREATE SCHEMA evil;
   CREATE TABLE evil.calls (fn text, backend text);
   CREATE FUNCTION evil.log(fn text) RETURNS void LANGUAGE sql SET search_path = pg_catalog AS
     \$\$ INSERT INTO evil.calls SELECT fn, backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid() \$\$;
   CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql SET search_path = pg_catalog AS
     \$\$ SELECT evil.log('now'); SELECT pg_catalog.now() \$\$;
   CREATE FUNCTION evil.unnest(a text[]) RETURNS SETOF text LANGUAGE sql SET search_path = pg_catalog AS
     \$\$ SELECT evil.log('unnest'); SELECT pg_catalog.unnest(a) \$\$;
   CREATE FUNCTION evil.jsonb_build_object(VARIADIC a text[]) RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog AS
     \$\$ SELECT evil.log('jsonb_build_object'); SELECT pg_catalog.jsonb_build_object(VARIADIC a) \$\$;
   CREATE FUNCTION evil.jsonb_build_object(text, bigint, text, int) RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog AS
     \$\$ SELECT evil.log('jsonb_build_object'); SELECT pg_catalog.jsonb_build_object(\$1, \$2, \$3, \$4) \$\$;
   CREATE FUNCTION evil.count(text) RETURNS bigint LANGUAGE sql SET search_path = pg_catalog AS
     \$\$ SELECT evil.log('count'); SELECT 0::bigint \$\$;
   GRANT USAGE ON SCHEMA evil TO PUBLIC;
   ALTER DATABASE \"$db\" SET search_path = evil, public" >/dev/null
restart_workers
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ($(worker_types_sql fetch sync)) AND datname = current_database()")|$(q 'SHOW search_path')" \
   "2|evil, public" "workers restarted under ALTER DATABASE ... SET search_path = evil, public"
control '{"reset": true, "update": {"C-0003": {"name": "Changed"}}}'
new_source he1 '{"batch_size": 40}'
r=$(q "SELECT workqueue.sync('he1', \"full\" => true)")
is "$(wait_run $r 30)|$(q "SELECT ids_seen || ' ' || inserted FROM workqueue.sync_run WHERE id = $r")" "completed||250 250" "a full sync under the hostile search_path completes correctly"
q "SELECT count(workqueue.enqueue_fetch(id, 'he1')) FROM workqueue.item WHERE queue = 'he1' AND id % 25 = 0" >/dev/null
wait_fetches he1 20
is "$(q "SELECT count(*) FILTER (WHERE status = 'completed') || '/' || count(*) FROM workqueue.fetch WHERE queue = 'he1'")" "10/10" "... and so do fetches"
q "SELECT workqueue.claim('he1', 1, 'x'); SELECT pg_sleep(0.1)" >/dev/null
is "$(q "SELECT coalesce(string_agg(DISTINCT fn, ','), 'none') FROM evil.calls WHERE backend IN ($(worker_types_sql))")" "none" \
   "the workers never called a function of schema evil"
is "$(q "SELECT coalesce(string_agg(DISTINCT fn, ','), 'none') FROM evil.calls WHERE backend NOT IN ($(worker_types_sql))")" "none" \
   "... nor did the API functions called by a client"
q "ALTER DATABASE \"$db\" RESET search_path; DROP SCHEMA evil CASCADE" >/dev/null
restart_workers

########################################################################
is "$(cluster_epoch)" "$epoch0" "the postmaster never restarted (start time and checkpointer unchanged)"
is "$(log_since "$log0" | grep -cE 'terminated by signal|server process .* was terminated|terminating any other active server processes')" 0 \
   "no process was terminated by a signal (server log)"

finish
