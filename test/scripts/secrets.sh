#!/usr/bin/env bash
# Source headers (API tokens) never reach a role that is not a workqueue
# administrator (SPEC §8): not through the source table, a view, sync runs,
# fetches, events, statistics, or the messages of the API functions.  Plain
# login roles connect with a password of their own.  Every place a secret
# could end up is scanned for it after syncs and fetches (successful and
# failed) of a source that has headers; the same scan run by an
# administrator must find the secret, so the scan itself is tested too.
source "$(dirname "$0")/../lib.sh"
api_start

MARK="S3CR3T-$$"
TOKEN="Bearer $MARK-token"
KEY="$MARK-apikey"
PW=wq-pw-$$
q "DROP ROLE IF EXISTS wq_plain; DROP ROLE IF EXISTS wq_agent_t; DROP ROLE IF EXISTS wq_admin_t;
   CREATE ROLE wq_plain LOGIN PASSWORD '$PW';
   CREATE ROLE wq_agent_t LOGIN PASSWORD '$PW' IN ROLE workqueue_agent;
   CREATE ROLE wq_admin_t LOGIN PASSWORD '$PW' IN ROLE workqueue_admin" >/dev/null

as() {      # as ROLE SQL: all output (rows, notices, errors with detail, hint and context)
    local role=$1
    shift
    PGUSER=$role PGPASSWORD=$PW psql -XAtq -v VERBOSITY=verbose -v SHOW_CONTEXT=always -c "$1" 2>&1
}
has_secret() { [[ $1 == *"$MARK"* ]]; }

# the relations of schema workqueue the caller can read whose rows contain the mark
SCAN="SELECT string_agg(c.oid::regclass::text, ',' ORDER BY c.oid::regclass::text)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'workqueue' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
         AND has_table_privilege(c.oid, 'SELECT')
         AND query_to_xml(format('SELECT t::text AS r FROM %s t', c.oid::regclass), false, false, '')::text
             LIKE '%$MARK%'"
READABLE="SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'workqueue' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
             AND has_table_privilege(c.oid, 'SELECT')"

########################################################################
# an administrator defines sources with headers; syncs and fetches run,
# some fail
control '{"reset": true}'
out=$(psql -XAt -v ON_ERROR_STOP=1 -c "SELECT workqueue.create_queue('sq');
   SELECT workqueue.create_source('sq', 'sq', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}',
          '{\"headers\": {\"Authorization\": \"$TOKEN\", \"X-Api-Key\": \"$KEY\"}, \"retries\": 0}');
   SELECT workqueue.create_source('sq_bad', 'sq', '$WQ_API/status/500', '$WQ_API/status/500?x={ids}',
          '{\"headers\": {\"Authorization\": \"$TOKEN\"}, \"retries\": 0}');
   SELECT workqueue.alter_source('sq', '{\"headers\": {\"Authorization\": \"$TOKEN-2\", \"X-Api-Key\": \"$KEY\"}}')" 2>&1)
ok $(! has_secret "$out"; echo $?) "create_source and alter_source print no header values (not even to an administrator)"
r=$(q "SELECT workqueue.sync('sq', \"full\" => true)")
is "$(wait_run $r)" "completed|" "a source with headers syncs"
r=$(q "SELECT workqueue.sync('sq_bad')")
is "$(wait_run $r)" "failed|listing request failed: HTTP 500" "a failing source with headers fails"
fok=$(q "SELECT workqueue.enqueue_fetch(id) FROM workqueue.item WHERE queue = 'sq' AND external_id = 'C-0001'")
fbad=$(q "SELECT workqueue.enqueue_fetch(id, 'sq_bad') FROM workqueue.item WHERE queue = 'sq' AND external_id = 'C-0002'")
wait_until 10 "fetches $fok and $fbad to finish" \
    q_is "SELECT count(*) FROM workqueue.fetch WHERE id IN ($fok, $fbad) AND status IN ('queued', 'processing')" 0
is "$(q "SELECT string_agg(status || ':' || coalesce(error, ''), ',' ORDER BY id) FROM workqueue.fetch WHERE id IN ($fok, $fbad)")" \
   "completed:,failed:HTTP 500" "fetches with headers complete, or fail"
q "ANALYZE workqueue.source" >/dev/null

# credentials in a URL would be sent as an Authorization header but are
# readable by everyone: refused, without echoing them
for u in "http://u:$MARK@127.0.0.1:9/ids|NULL|ids_url|user:password@" "http://$MARK@127.0.0.1:9/ids|NULL|ids_url|user@" \
         "http://127.0.0.1:9/ids|'https://u:$MARK@127.0.0.1:9/d?ids={ids}'|details_url|user:password@"; do
    IFS='|' read -r ids det what form <<<"$u"
    o=$(psql -XAtq -v VERBOSITY=verbose -c "SELECT workqueue.create_source('sq_cred', 'sq', '$ids', $det)" 2>&1)
    ok $([[ $o == *"$what must not contain a user name or password"*"Send credentials in a header instead"* ]] && ! has_secret "$o"; echo $?) \
       "create_source refuses $form in the $what, without repeating it"
done
o=$(psql -XAtq -v VERBOSITY=verbose -c "SELECT workqueue.alter_source('sq', '{\"ids_url\": \"http://u:$MARK@127.0.0.1:9/ids\"}')" 2>&1)
ok $([[ $o == *"ids_url must not contain a user name or password"* ]] && ! has_secret "$o"; echo $?) \
   "alter_source refuses one too"
is "$(q "SELECT count(*) FROM workqueue.source WHERE name = 'sq_cred' OR ids_url LIKE '%@%'")" 0 "... and nothing was stored"
is "$(q "SELECT workqueue._check_source('http://127.0.0.1:9/ids?mail=a@b.example#x@y', 'http://127.0.0.1:9/d/{ids}/@me', '{}')")" "" \
   "an @ in the path, query or fragment is fine"

########################################################################
# the scan finds the secret where administrators look
ok $([[ $(q "$SCAN") == *workqueue.source* ]]; echo $?) "control: the scan finds the headers in workqueue.source as superuser"
ok $([[ $(as wq_admin_t "$SCAN") == *workqueue.source* ]]; echo $?) "control: ... and as a member of workqueue_admin"
is "$(as wq_admin_t "SELECT options->'headers'->>'Authorization' FROM workqueue.source WHERE name = 'sq'")" "$TOKEN-2" \
   "administrators read the headers"

########################################################################
# plain roles and agents
for role in wq_plain wq_agent_t; do
    is "$(as $role "$SCAN")" "" "$role: no readable table or view of schema workqueue holds a header value"
    n=$(as $role "$READABLE")
    ok $([[ $n -ge 10 ]]; echo $?) "$role: ... of the $n it can read (sources, sync_run, fetch, item_event, item, views ...)"
    ok $([[ $(as $role "SELECT options FROM workqueue.source") == *"permission denied for table source"* ]]; echo $?) \
       "$role: cannot read workqueue.source"
done
for col in name queue ids_url details_url options created_by; do
    is "$(q "SELECT has_column_privilege('wq_plain', 'workqueue.source', '$col', 'SELECT')")" f \
       "wq_plain has no SELECT on workqueue.source.$col"
done
is "$(q "SELECT count(*) FROM aclexplode((SELECT relacl FROM pg_class WHERE oid = 'workqueue.source'::regclass))
         WHERE grantee = 0")" 0 "PUBLIC holds no privilege on workqueue.source"
is "$(as wq_plain "SELECT has_headers, options ? 'headers', options ? 'retries' FROM workqueue.sources WHERE name = 'sq'")" \
   "t|f|t" "the view sources: has_headers true, options without headers"
is "$(as wq_plain "SELECT count(*) FROM pg_stats WHERE schemaname = 'workqueue' AND tablename = 'source'")" 0 \
   "pg_stats shows wq_plain no statistics of workqueue.source"
ok $([[ $(q "SELECT count(*) FROM pg_stats WHERE schemaname = 'workqueue' AND tablename = 'source'") -gt 0 ]]; echo $?) \
   "control: ... which exist"

# what the API functions say to a plain role about a source with headers
out=""
check_msg() {   # check_msg EXPECTED-SUBSTRING SQL
    local o
    o=$(as wq_plain "$2")
    out+="$o"$'\n'
    ok $([[ $o == *"$1"* ]]; echo $?) "wq_plain: $2 → $1"
}
check_msg 'permission denied to alter sources' "SELECT workqueue.alter_source('sq', '{\"retries\": 1}')"
check_msg 'permission denied to alter sources' "SELECT workqueue.alter_source('sq', '{\"headers\": null}')"
check_msg 'permission denied to create sources' \
    "SELECT workqueue.create_source('sq', 'sq', 'http://127.0.0.1:9/ids', NULL)"
check_msg 'permission denied to schedule syncs' "SELECT workqueue.schedule_sync('sq', '* * * * *')"
check_msg 'permission denied to retry fetches' "SELECT workqueue.retry_fetches('sq')"
check_msg 'permission denied for function _claim_fetches' "SELECT * FROM workqueue._claim_fetches(1)"
check_msg 'source "nope" does not exist' "SELECT workqueue.sync('nope')"
check_msg 'source "nope" does not exist' \
    "SELECT workqueue.enqueue_fetch((SELECT id FROM workqueue.item WHERE queue = 'sq' AND external_id = 'C-0003'), 'nope')"
run=$(PGUSER=wq_plain PGPASSWORD=$PW q "SELECT workqueue.sync('sq_bad', force => true)")
check_msg 'listing request failed: HTTP 500' "SELECT status, error FROM workqueue.wait($run)"
run=$(PGUSER=wq_plain PGPASSWORD=$PW q "SELECT workqueue.sync('sq', force => true)")
check_msg 'NOTICE' "SELECT status, error FROM workqueue.wait($run)"
ok $(! has_secret "$out"; echo $?) "no message, notice, detail, hint or context of these shows a header value"
is "$(as wq_plain "$SCAN")" "" "wq_plain: after the runs it requested, still no header value in anything it can read"

########################################################################
q "DROP ROLE wq_plain; DROP ROLE wq_agent_t; DROP ROLE wq_admin_t" >/dev/null
finish
