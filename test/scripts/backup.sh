#!/usr/bin/env bash
# test/scripts/backup.sh — a dump restores into a working database
# (issue 14.1; doc/operations.md, "Backup and restore").
#
# A database of its own gets data through the whole API (a queue with a
# workflow, an SLA policy and calendar, add, claim, transition, comment,
# upsert_items, a source with a secret header, enqueue_fetch, a sync run).
# It is dumped in custom and in plain format and each dump restored into a
# fresh database; every table of the schema must have the same rows, every
# sequence of the schema the same position, and the API must work in the
# restored database with ids above the restored ones.  Then a dump that
# leaves out the sources' rows (their headers are secrets).  None of these
# databases is served by the workers (workqueue.databases): nothing moves
# while the rows are compared.  Prints "ok N - ..." and "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
export LC_ALL=C

orig=wq_backup_orig
dbs="$orig wq_backup_fc wq_backup_plain wq_backup_nosrc"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-backup.XXXXXX")
cleanup() {
    for d in $dbs; do dropdb --if-exists "$d" >/dev/null 2>&1; done
    rm -rf "$tmp"
}
trap cleanup EXIT
cleanup
mkdir -p "$tmp"
chmod 777 "$tmp"    # pg_dump may run as another user than the one that made it

createdb $orig
export PGDATABASE=$orig
q "CREATE EXTENSION workqueue" >/dev/null
ok $? "the original database has the extension"

q "BEGIN;
   SELECT workqueue.create_calendar('bk_office', 'Europe/Berlin', '{\"mon\": [[\"09:00\", \"17:00\"]], \"tue\": [[\"09:00\", \"17:00\"]],
       \"wed\": [[\"09:00\", \"17:00\"]], \"thu\": [[\"09:00\", \"17:00\"]], \"fri\": [[\"09:00\", \"17:00\"]]}');
   SELECT workqueue.create_sla_policy('bk_sla', 'bk_office', '{\"1\": \"4 hours\", \"3\": \"2 days\"}');
   SELECT workqueue.define_workflow('bk_flow', '{\"steps\": [
       {\"name\": \"new\", \"start\": true}, {\"name\": \"work\"}, {\"name\": \"done\", \"kind\": \"resolved\"}],
     \"transitions\": [{\"name\": \"start\", \"from\": \"new\", \"to\": \"work\"},
                       {\"name\": \"finish\", \"from\": \"work\", \"to\": \"done\"}]}');
   SELECT workqueue.create_queue('bk', 'bk_flow', 'bk_sla');
   SELECT workqueue.create_queue('bk_plain');
   SELECT workqueue.create_source('bk_src', 'bk', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/details?ids={ids}',
                                  '{\"headers\": {\"Authorization\": \"Bearer BK-SECRET-TOKEN\"}}');
   SELECT count(workqueue.add('bk', jsonb_build_object('n', g), 1 + g % 5)) FROM generate_series(1, 300) g;
   SELECT count(workqueue.add('bk_plain', jsonb_build_object('n', g))) FROM generate_series(1, 50) g;
   SELECT * FROM workqueue.upsert_items('bk', (SELECT jsonb_agg(jsonb_build_object('external_id', 'S-' || g, 'data', jsonb_build_object('s', g)))
                                               FROM generate_series(1, 40) g), 'bk_src');
   SELECT count(*) FROM workqueue.claim('bk', 20, 'alice');
   SELECT count(workqueue.transition(id, 'start', actor => 'alice')) FROM workqueue.item WHERE queue = 'bk' AND claimed_by = 'alice';
   SELECT count(workqueue.comment(id, 'looked at it', 'alice')) FROM workqueue.item WHERE queue = 'bk' AND claimed_by = 'alice';
   SELECT count(workqueue.enqueue_fetch(id, 'bk_src')) FROM workqueue.item WHERE queue = 'bk' AND external_id LIKE 'S-%';
   SELECT workqueue.sync('bk_src');
   -- the built-in workflow redefined: version 2 (same steps)
   SELECT workqueue.define_workflow('review', (SELECT definition FROM workqueue.workflow_version
                                                WHERE workflow = 'review' AND version = 1));
   COMMIT" >/dev/null
ok $? "data made through the API (workflow, calendar, SLA policy, add, upsert_items, claim, transition, comment, source, enqueue_fetch, sync)"

# every table and every sequence of the schema, from the catalog
tables=$(q "SELECT relname FROM pg_class WHERE relnamespace = 'workqueue'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1")
seqs=$(q "SELECT relname FROM pg_class WHERE relnamespace = 'workqueue'::regnamespace AND relkind = 'S' ORDER BY 1")
is "$(q "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind = 'S'
           AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'workqueue')::oid[])")" 0 \
   "every sequence of the schema ($(echo $seqs)) is marked for pg_dump (pg_extension_config_dump)"
is "$(q "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p')
           AND c.relname NOT IN ('announce_state', 'scale_state')
           AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'workqueue')::oid[])")" 0 \
   "every table of the schema but announce_state and scale_state is marked for pg_dump"

# one line per table (a digest of the rows pg_dump keeps: the built-in rows
# that CREATE EXTENSION makes are left out by the table's condition) and
# per sequence (its position)
fingerprint() {     # fingerprint DB
    local t s cond
    for t in $tables; do
        # (scale_state: a node's own layout; a restored database is single-node
        # until workqueue.distribute() runs, doc/scale-out.md)
        [[ $t == announce_state || $t == scale_state ]] && continue
        cond=$(psql -XAtq -d "$1" -c "SELECT x.cond FROM pg_extension e, unnest(e.extconfig, e.extcondition) x(rel, cond)
                                      WHERE e.extname = 'workqueue' AND x.rel = 'workqueue.$t'::regclass")
        echo "$t $(psql -XAtq -d "$1" -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-')
                                           FROM workqueue.$t t $cond")"
    done
    for s in $seqs; do
        echo "sequence $s $(psql -XAtq -d "$1" -c "SELECT last_value || ' ' || is_called FROM workqueue.$s")"
    done
}
fingerprint $orig >"$tmp/orig"
maxid() { psql -XAtq -d "$1" -c "SELECT coalesce(max(id), 0) FROM workqueue.$2"; }

pg_dump -Fc -d $orig -f "$tmp/dump.fc" 2>"$tmp/dump.err"
ok $? "pg_dump -Fc"
pg_dump -Fp -d $orig -f "$tmp/dump.sql" 2>>"$tmp/dump.err"
ok $? "pg_dump -Fp"
is "$(grep -c "pg_catalog.setval('workqueue\." "$tmp/dump.sql")" "$(echo "$seqs" | grep -c .)" "the plain dump sets every sequence"

# restore_and_use DB FORMAT: restores, compares, runs the API
restore_and_use() {
    local db=$1 fmt=$2 d
    createdb "$db"
    if [[ $fmt == custom ]]; then
        pg_restore -d "$db" --exit-on-error "$tmp/dump.fc" 2>"$tmp/restore.err"
    else
        psql -XAq -d "$db" -v ON_ERROR_STOP=1 -f "$tmp/dump.sql" >/dev/null 2>"$tmp/restore.err"
    fi
    ok $? "$fmt dump restored into a fresh database$( [[ -s $tmp/restore.err ]] && echo ": $(head -3 "$tmp/restore.err")")"
    fingerprint "$db" >"$tmp/$db"
    d=$(diff "$tmp/orig" "$tmp/$db")
    ok $([[ -z $d ]]; echo $?) "$fmt: every table ($(echo "$tables" | grep -vcE '^(announce_state|scale_state)$')) and sequence ($(echo "$seqs" | grep -c .)) as in the original"
    [[ -n $d ]] && echo "$d" | sed 's/^/#   /'
    is "$(psql -XAtq -d "$db" -c "SELECT count(*) || ' ' || bool_and(events = 0) || ' ' || bool_and(since > (SELECT max(at) FROM workqueue.item_event))
                                    FROM workqueue.announce_state")" "1 true true" \
       "$fmt: announce_state is a fresh row (the restored events are older than its since: not announced)"

    local item event run fetch
    item=$(maxid "$db" item) event=$(maxid "$db" item_event) run=$(maxid "$db" sync_run) fetch=$(maxid "$db" fetch)
    local out
    out=$(PGDATABASE=$db q "
        SELECT workqueue.add('bk', '{\"after\": \"restore\"}', 1) > $item;
        SELECT count(*) FROM workqueue.claim('bk', 2, 'bob');
        SELECT (workqueue.transition(id, 'start')).step FROM workqueue.item WHERE queue = 'bk' AND id > $item;
        SELECT inserted || ' ' || updated FROM workqueue.upsert_items('bk', '[{\"external_id\": \"S-1\", \"data\": {\"s\": 100}},
                                                                          {\"external_id\": \"S-new\", \"data\": {\"s\": 0}}]', 'bk_src');
        SELECT workqueue.enqueue_fetch(id, 'bk_src') > $fetch FROM workqueue.item WHERE queue = 'bk' AND external_id = 'S-new';
        SELECT workqueue.sync('bk_src', force => true) > $run;
        SELECT count(*) FROM workqueue.item WHERE queue = 'bk' AND id > $item AND due_at IS NOT NULL AND sla_next_at IS NOT NULL;
        SELECT min(id) > $event FROM workqueue.item_event WHERE at > (SELECT since FROM workqueue.announce_state)" 2>&1 | tr '\n' ' ')
    is "$out" "t 2 work 1 1 t t 2 t " \
       "$fmt: add, claim, transition, upsert_items, enqueue_fetch, sync and SLA timers work; new ids above the restored ones"
    local added
    added=$(PGDATABASE=$db q "SELECT workqueue.add('bk_plain', '{}')")
    is "$(PGDATABASE=$db q "SELECT w.current_version || ' ' || i.workflow_version
                              FROM workqueue.item i CROSS JOIN workqueue.workflow w
                             WHERE i.id = $added AND w.name = 'review'")" "2 2" \
       "$fmt: the redefined built-in workflow is at its version 2 again, and new items start on it"
}
restore_and_use wq_backup_fc custom
restore_and_use wq_backup_plain plain

# Source headers are secrets: a dump without them
grep -q BK-SECRET-TOKEN "$tmp/dump.sql"
ok $? "a full dump holds the source headers (secrets)"
pg_dump -Fp -d $orig --exclude-table-data=workqueue.source --exclude-table-data=workqueue.sync_run \
        --exclude-table-data=workqueue.fetch -f "$tmp/nosrc.sql" 2>/dev/null
ok $? "pg_dump --exclude-table-data for source, sync_run and fetch"
! grep -q BK-SECRET-TOKEN "$tmp/nosrc.sql"
ok $? "that dump holds no header"
createdb wq_backup_nosrc
psql -XAq -d wq_backup_nosrc -v ON_ERROR_STOP=1 -f "$tmp/nosrc.sql" >/dev/null 2>"$tmp/restore.err"
ok $? "it restores$( [[ -s $tmp/restore.err ]] && echo ": $(head -3 "$tmp/restore.err")")"
is "$(PGDATABASE=wq_backup_nosrc q "SELECT (SELECT count(*) FROM workqueue.source) || ' ' || (SELECT count(*) FROM workqueue.sync_run) || ' '
                                        || (SELECT count(*) FROM workqueue.fetch) || ' ' || (SELECT count(*) FROM workqueue.item)
                                        || ' ' || (SELECT count(*) FROM workqueue.item WHERE source = 'bk_src')")" \
   "0 0 0 $(q "SELECT count(*) FROM workqueue.item") 40" "without sources, runs and fetches; every item, the synced ones still naming their source"
out=$(PGDATABASE=wq_backup_nosrc q "
    SELECT workqueue.create_source('bk_src', 'bk', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/details?ids={ids}');
    SELECT workqueue.sync('bk_src') > $(maxid $orig sync_run);
    SELECT workqueue.enqueue_fetch(id, 'bk_src') > $(maxid $orig fetch) FROM workqueue.item WHERE queue = 'bk' AND external_id = 'S-2'" 2>&1 | tr '\n' ' ')
is "$out" " t t " "after create_source again: sync and enqueue_fetch work, ids still continue"

finish
