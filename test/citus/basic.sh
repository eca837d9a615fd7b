#!/usr/bin/env bash
# test/citus/basic.sh — workqueue.distribute() on a fresh install in a Citus
# cluster (test/citus/cluster.sh: PG* name the coordinator, WQ_CITUS_WORKERS
# the workers' ports, all on 127.0.0.1), then the API on the distributed
# install.
#
# API calls that do not work on Citus yet (issue 15, part 2) are listed in
# KNOWN_FAILING with the error they give: such a call that fails is reported
# "ok ... # TODO", one that fails otherwise or on a call not listed is
# "not ok", and a listed call that works now says so (take it off the list).
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"

# name -> the start of the error it gives on a distributed install today
declare -A KNOWN_FAILING=(
)


api_call() {    # api_call NAME SQL: the call works, or fails as listed
    local name=$1 err
    err=$(qerr "SET client_min_messages = warning; $2")
    if [[ -z $err ]]; then
        if [[ -n ${KNOWN_FAILING[$name]:-} ]]; then
            ok 0 "$name works (listed in KNOWN_FAILING: take it off)"
        else
            ok 0 "$name works"
        fi
    elif [[ -n ${KNOWN_FAILING[$name]:-} && $err == "${KNOWN_FAILING[$name]}"* ]]; then
        ok 0 "$name fails as known: $err # TODO issue 15.2"
    else
        ok 1 "$name"
        echo "#   error: $err"
    fi
}

api_value() {   # api_value NAME SQL EXPECTED: the call gives the single-node answer
    local name=$1 got
    got=$(q "$2" 2>&1)
    if [[ $got == "$3" ]]; then
        ok 0 "$name answers right${KNOWN_FAILING[$name]:+ (listed in KNOWN_FAILING: take it off)}"
    elif [[ -n ${KNOWN_FAILING[$name]:-} ]]; then
        ok 0 "$name answers wrong as known: got '$got', single node: '$3' # TODO issue 15.2"
    else
        ok 1 "$name answers right"
        echo "#   got: $got; expected: $3"
    fi
}

ins="INSERT INTO workqueue.item (queue, step, workflow, workflow_version, data"

# --- distribute ------------------------------------------------------------

is "$(q "SELECT mode FROM workqueue.scale_state")" single "a fresh install is single-node"
# The last worker joins after distribute() (doc/scale-out.md, "Adding a node").
late=${workers[-1]}
is "$(qerr "SELECT citus_remove_node('127.0.0.1', $late)")" "" "worker $late leaves before distribution"
# distribute() while the coordinator's fetch worker purges batch after batch
# (retention): without the workers' gate (workqueue._hold_workers(),
# src/worker/xact.c) this ended in a (distributed) deadlock in 4 runs of 4
q "ALTER SYSTEM SET workqueue.purge_batch_size = 20" >/dev/null
q "ALTER SYSTEM SET workqueue.purge_interval = 1" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "SET client_min_messages = warning; SELECT workqueue.create_queue('rq');
   SELECT workqueue.alter_queue('rq', '{\"retention\": \"1 hour\"}')" >/dev/null
q "$ins, status, resolved_at, updated_at)
   SELECT 'rq', 'resolved', 'review', 1, '{}', 'resolved', now() - interval '2 hours', now() - interval '2 hours'
     FROM generate_series(1, 20000)" >/dev/null
q "INSERT INTO workqueue.item_event (queue, item_id, actor, kind) SELECT queue, id, 'test', 'created'
     FROM workqueue.item WHERE queue = 'rq'" >/dev/null
purging() { [[ $(q "SELECT coalesce(sum(items), 0) > 0 FROM workqueue.purge") == t ]]; }
wait_until 30 "the fetch worker purges" purging
ok $? "the coordinator's fetch worker purges (retention) before distribute()"
is "$(qerr "SET client_min_messages = warning; SELECT workqueue.distribute()")" "" \
   "distribute() on a fresh install, while the fetch worker purges"
is "$(q "SELECT (SELECT count(*) FROM workqueue.item WHERE queue = 'rq') < 20000")" t "... items were purged before"
q "ALTER SYSTEM RESET workqueue.purge_batch_size" >/dev/null
q "ALTER SYSTEM RESET workqueue.purge_interval" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
is "$(q "SELECT string_agg(mode, ',') FROM workqueue.scale_state")" citus "the coordinator records the mode"
is "$(q "SELECT count(*) FILTER (WHERE partmethod = 'n') || ' ' || count(*) FILTER (WHERE partmethod = 'h')
           FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'workqueue.%'")" "12 4" \
   "12 reference tables (purge among them), 4 distributed tables"
is "$(q "SELECT string_agg(logicalrelid::regclass::text || ':' || column_to_column_name(logicalrelid, partkey), ' '
                          ORDER BY logicalrelid::regclass::text)
           FROM pg_dist_partition WHERE partmethod = 'h' AND logicalrelid::regclass::text LIKE 'workqueue.%'")" \
   'workqueue."fetch":queue workqueue.item:queue workqueue.item_event:queue workqueue.lease_fence:queue' \
   "item, item_event, fetch, lease_fence distributed by queue"
is "$(q "SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE partmethod = 'h'
           AND logicalrelid::regclass::text LIKE 'workqueue.%'")" 1 "the per-item tables are co-located"
is "$(q "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'workqueue'::regnamespace
           AND conrelid::regclass::text !~ '_[0-9]+$'")" 10 \
   "the 10 foreign keys are back on the coordinator"
is "$(q "SELECT workqueue.distribute()")" "already distributed" "a second distribute() is a no-op"
is "$(q "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'workqueue.%'")" 16 \
   "... and leaves the 16 tables as they were"
q "$ins) SELECT 'cq0', 'review', 'review', 1, '{}' FROM generate_series(1, 20)" >/dev/null 2>&1
is "$(qerr "SELECT citus_add_node('127.0.0.1', $late)")" "" "worker $late joins the distributed install"
is "$(q "SELECT workqueue.distribute()")" "already distributed" "distribute() again after citus_add_node"
for w in "${workers[@]}"; do
    is "$(qw "$w" "SELECT mode FROM workqueue.scale_state")" citus "worker $w records the mode"
    is "$(qw "$w" "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN
                     ('workqueue.item'::regclass, 'workqueue.fetch'::regclass, 'workqueue.workflow_step'::regclass)")" 4 \
       "worker $w: the foreign keys are on its tables"
    is "$(qw "$w" "SELECT count(*) FROM pg_policies WHERE schemaname = 'workqueue' AND tablename = 'item_event'
                     AND qual LIKE '%_item_visible%'")" 1 "worker $w: the policies in function form"
done
is "$(qerr "SET client_min_messages = warning; SELECT workqueue._hold_workers(); SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')")" "" \
   "rebalance_table_shards() onto the new worker"
is "$(q "SELECT count(DISTINCT nodeport) FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid)
           WHERE s.logicalrelid = 'workqueue.item'::regclass")" "${#workers[@]}" "every worker holds item shards"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq0'")" 20 "... and no item was lost"
# the rebalancer's background jobs (citus_rebalance_start): they move shards
# outside any transaction of ours, so the background workers are not held;
# Citus retries a move that failed (doc/scale-out.md).  Drain the new
# worker, then fill it again.
bg_rebalance() {   # bg_rebalance ARGS: a background rebalance, waited for; prints its job's state
    local job
    job=$(q "SELECT citus_rebalance_start($1, shard_transfer_mode => 'block_writes')") || return 1
    q "SELECT citus_rebalance_wait()" >/dev/null
    q "SELECT state FROM pg_dist_background_job WHERE job_id = $job"
}
shards_on() {
    q "SELECT count(*) FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid)
        WHERE s.logicalrelid = 'workqueue.item'::regclass AND p.nodeport = $1"
}
q "SELECT citus_set_node_property('127.0.0.1', $late, 'shouldhaveshards', false)" >/dev/null
is "$(bg_rebalance "drain_only => true")" finished "citus_rebalance_start(drain_only) moves every shard off worker $late"
is "$(shards_on "$late")" 0 "... which holds no item shard then"
q "SELECT citus_set_node_property('127.0.0.1', $late, 'shouldhaveshards', true)" >/dev/null
is "$(bg_rebalance "drain_only => false")" finished "citus_rebalance_start() fills it again"
ok $([[ $(shards_on "$late") -gt 0 ]]; echo $?) "... with item shards"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq0'")" 20 "... and no item was lost"
q "CREATE ROLE wq_citus_agent LOGIN IN ROLE workqueue_agent" >/dev/null 2>&1
is "$(qerr "SET ROLE wq_citus_agent; SELECT workqueue.distribute()")" \
   "permission denied for function distribute" "distribute() is not for everyone"
is "$(psql -XAtq -h 127.0.0.1 -p "${workers[0]}" -v VERBOSITY=terse -c "SELECT workqueue.distribute()" 2>&1 |
      sed -E 's/^ERROR:  //')" "workqueue.distribute() must run on the Citus coordinator" "distribute() on a worker is refused"

# identity: each worker gives out ids from its own range (as Citus does for
# the sequences of the tables it creates)
ranges=$(for w in "${workers[@]}"; do
    qw "$w" "SELECT seqmin FROM pg_sequence WHERE seqrelid = 'workqueue.item_id_seq'::regclass"
done | sort -u | wc -l)
is "$ranges" "${#workers[@]}" "each worker has its own range of item ids"

# --- plain SQL routed by queue, from the coordinator and from a worker ---

is "$(qerr "SELECT workqueue.create_queue('cq1'); SELECT workqueue.create_queue('cq2')")" "" "create_queue works"
is "$(q "$ins) SELECT 'cq1', 'review', 'review', 1, jsonb_build_object('n', g) FROM generate_series(1, 5) g RETURNING 1" |
      wc -l)" 5 "an INSERT routed by queue on the coordinator"
is "$(qw "${workers[0]}" "$ins) SELECT 'cq1', 'review', 'review', 1, jsonb_build_object('n', g) FROM generate_series(1, 5) g RETURNING 1" |
      wc -l)" 5 "an INSERT routed by queue on worker ${workers[0]}"
is "$(q "SELECT count(*) = count(DISTINCT id) FROM workqueue.item")" t "ids are unique across nodes"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq1' AND id > (1::bigint << 48)")" 5 \
   "the worker's rows got ids of its range"

# --- the API on the distributed install -------------------------------------
# (ids of items made by plain SQL above, in case add() does not work)
id1=$(q "SELECT min(id) FROM workqueue.item WHERE queue = 'cq1'")
id2=$(q "SELECT max(id) FROM workqueue.item WHERE queue = 'cq1'")

api_call add "SELECT workqueue.add('cq1', '{\"x\": 1}')"
api_call add_many "SELECT workqueue.add_many('cq1', '[{\"data\": {\"y\": 1}}, {\"data\": {\"y\": 2}}]')"
api_call upsert_items "SELECT workqueue.upsert_items('cq2', '[{\"external_id\": \"e1\", \"data\": {\"t\": 1}}]')"
api_call claim "SELECT count(*) FROM workqueue.claim('cq1', 2, 'w1')"
claimed=$(q "SELECT id FROM workqueue.item WHERE queue = 'cq1' AND status = 'in_progress' ORDER BY id LIMIT 1")
if [[ -z $claimed ]]; then     # (claim() fails: a claim by plain SQL, routed by queue)
    claimed=$id1
    q "UPDATE workqueue.item SET status = 'in_progress', claimed_by = 'w1', lease_until = now() + interval '1 minute'
        WHERE queue = 'cq1' AND id = $claimed" >/dev/null
fi
api_call extend_lease "SELECT workqueue.extend_lease($claimed, '5 minutes', 'w1')"
api_call release "SELECT workqueue.release($claimed, 'w1')"
api_call comment "SELECT workqueue.comment($id1, 'hello')"
api_call update_fields "SELECT workqueue.update_fields($id1, '{\"note\": \"x\"}')"
api_call allowed_transitions "SELECT count(*) FROM workqueue.allowed_transitions($id1)"
api_call transition "SELECT workqueue.transition($id1, 'resolve')"
api_call transition_many "SELECT workqueue.transition_many(ARRAY[$id2], 'resolve')"
api_call list_items "SELECT count(*) FROM workqueue.list_items('cq1')"
api_call get_items "SELECT count(*) FROM workqueue.get_items(ARRAY[$id1, $id2])"
api_call get_items_by_external "SELECT count(*) FROM workqueue.get_items_by_external('cq1', ARRAY['nope'])"
api_call history "SELECT count(*) FROM workqueue.history($id1)"
api_call queue_stats "SELECT count(*) FROM workqueue.queue_stats"
api_call alter_queue "SELECT workqueue.alter_queue('cq2', '{\"lease_timeout\": \"10 minutes\"}')"
api_call define_workflow "SELECT workqueue.define_workflow('two', '{\"steps\": [{\"name\": \"a\", \"kind\": \"work\", \"start\": true}, {\"name\": \"done\", \"kind\": \"resolved\"}], \"transitions\": [{\"name\": \"finish\", \"from\": \"a\", \"to\": \"done\"}]}')"
api_call workflow_graph "SELECT length(workqueue.workflow_graph('review')) > 0"
api_call add_member "SELECT workqueue.add_member('reviewers', 'wq_citus_agent')"
api_call grant_scope "SELECT workqueue.grant_scope('wq_citus_agent', 'emea')"
api_call set_scope "SELECT workqueue.set_scope(ARRAY[$id2], '{emea}')"
api_call create_calendar "SELECT workqueue.create_calendar('office', 'Europe/Berlin', '{\"mon\": [[\"09:00\", \"17:00\"]]}')"
api_call create_sla_policy "SELECT workqueue.create_sla_policy('fast', '24x7', '{\"1\": \"1 hour\", \"2\": \"2 hours\", \"3\": \"4 hours\", \"4\": \"8 hours\", \"5\": \"1 day\"}')"
api_call sla_status "SELECT workqueue.sla_status($id1)"
api_call create_source "SELECT workqueue.create_source('src1', 'cq2', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/cases/{ids}')"
q "$ins, external_id) VALUES ('cq1', 'review', 'review', 1, '{}', 'ext-1')" >/dev/null
api_value missing_ids "SELECT string_agg(x, ',') FROM workqueue.missing_ids('cq1', ARRAY['ext-1', 'ext-2']) x" ext-2
ext1=$(q "SELECT id FROM workqueue.item WHERE queue = 'cq1' AND external_id = 'ext-1'")
api_call enqueue_fetch "SELECT workqueue.enqueue_fetch($ext1, 'src1')"
api_call sync "SELECT workqueue.sync('src1') IS NOT NULL"
q "SELECT workqueue.create_queue('cq3')" >/dev/null
q "SELECT workqueue.create_source('src3', 'cq3', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/cases/{ids}')" >/dev/null 2>&1
api_call drop_queue "SELECT workqueue.drop_queue('cq3', true)"

# --- a hot queue on a shard of its own -------------------------------------

n_before=$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq1'")
is "$(qerr "SET client_min_messages = warning;
            SELECT workqueue._hold_workers(); SELECT isolate_tenant_to_new_shard('workqueue.item', 'cq1', 'CASCADE', shard_transfer_mode => 'block_writes')")" "" \
   "isolate_tenant_to_new_shard() for queue cq1 (with its events, fetches, fences)"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue = 'cq1'")" "$n_before" "... keeps its items"
is "$(q "SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = 'workqueue.item'::regclass
           AND s.shardid = get_shard_id_for_distribution_column('workqueue.item', 'cq1')
           AND s.shardminvalue = s.shardmaxvalue")" 1 "... in a shard of its own"

# --- row-level security: direct reads by a scoped role ----------------------

q "SELECT workqueue.grant_scope('wq_citus_agent', 'emea')" >/dev/null 2>&1
q "UPDATE workqueue.item SET scope = '{apac}' WHERE queue = 'cq1' AND id = $id1;
   UPDATE workqueue.item SET scope = '{emea}' WHERE queue = 'cq1' AND id = $id2" >/dev/null
is "$(qerr "SET ROLE wq_citus_agent; SELECT count(*) FROM workqueue.item")" "" \
   "a scoped role reads item directly (policy in function form)"
is "$(q "SET ROLE wq_citus_agent; SELECT count(*) FILTER (WHERE id = $id1) || ' ' || count(*) FILTER (WHERE id = $id2)
           FROM workqueue.item WHERE queue = 'cq1'")" "0 1" "... and sees the item of its scope only"
q "INSERT INTO workqueue.item_event (queue, item_id, actor, kind)
   VALUES ('cq1', $id1, 'test', 'comment'), ('cq1', $id2, 'test', 'comment')" >/dev/null
is "$(q "SET ROLE wq_citus_agent; SELECT count(*) FROM workqueue.item_event WHERE queue = 'cq1' AND item_id = $id1")" 0 \
   "... and not the events of an item it cannot see"
is "$(q "SET ROLE wq_citus_agent; SELECT count(*) > 0 FROM workqueue.item_event WHERE queue = 'cq1' AND item_id = $id2")" t \
   "... but those of an item it can see"
is "$(q "SET ROLE wq_citus_agent; SELECT count(*) FROM workqueue.item_event e
           WHERE e.item_id IN ($id1, $id2) AND e.item_id = $id1")" 0 \
   "... also when the read spans every shard"

finish
