#!/usr/bin/env bash
# test/citus/fetch.sh — the fetch worker, cancel_fetch and retry_fetches on a
# distributed install (issue 15, part 2): the worker on the coordinator
# takes due fetches one queue at a time and writes each result on its
# queue's shard; the same answers as on one node.  The worker does not
# restart meanwhile, and the workers on the worker nodes stay idle.
# (Runs after basic.sh, on the cluster it distributed; distributes if not.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
read -r -a workers <<<"${WQ_CITUS_WORKERS:?run under test/citus/cluster.sh (WQ_CITUS_WORKERS)}"


citus_distribute
api_start

# two queues whose shards are on different worker nodes
read -r qa qb <<<"$(q "WITH c AS (
    SELECT 'cf' || g AS name, (SELECT nodeport FROM pg_dist_shard_placement p
                                WHERE p.shardid = get_shard_id_for_distribution_column('workqueue.item', 'cf' || g)) AS port
      FROM generate_series(1, 40) g)
  SELECT a.name || ' ' || b.name FROM c a JOIN c b ON a.port < b.port LIMIT 1")"
ok $([[ -n $qa && -n $qb ]]; echo $?) "two queues with shards on different workers ($qa, $qb)"
q "SELECT workqueue.create_queue('$qa'); SELECT workqueue.create_queue('$qb');
   SELECT workqueue.create_source('${qa}s', '$qa', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT workqueue.create_source('${qb}s', '$qb', '$WQ_API/cases/ids', '$WQ_API/cases/details?ids={ids}');
   SELECT workqueue.create_source('${qb}bad', '$qb', '$WQ_API/cases/ids', '$WQ_API/status/500?x={ids}', '{\"retries\": 1}')" >/dev/null
ins="INSERT INTO workqueue.item (queue, step, workflow, workflow_version, external_id, data"
q "$ins) SELECT '$qa', 'review', 'review', 1, 'C-' || lpad(g::text, 4, '0'), '{}' FROM generate_series(1, 3) g;
   $ins) SELECT '$qb', 'review', 'review', 1, 'C-' || lpad(g::text, 4, '0'), '{}' FROM generate_series(4, 6) g" >/dev/null

wait_until 30 "a fetch worker on the coordinator" worker_running fetch
pid=$(worker_pid fetch)
ok $([[ -n $pid ]]; echo $?) "a fetch worker runs on the coordinator"

# enqueue_fetch in both queues: the worker completes them
# (one call per item: a call inside a query on item would run on the shards)
for it in $(q "SELECT queue || ':' || id FROM workqueue.item WHERE queue IN ('$qa', '$qb') ORDER BY id"); do
    q "SELECT workqueue.enqueue_fetch(${it#*:}, '${it%%:*}s')" >/dev/null
done
wait_fetches "$qa" 60
wait_fetches "$qb" 60
is "$(q "SELECT string_agg(status, ',' ORDER BY status) FROM (SELECT DISTINCT status FROM workqueue.fetch
          WHERE queue IN ('$qa', '$qb')) s")" completed "the fetches of both queues completed"
is "$(q "SELECT count(*) FROM workqueue.item WHERE queue IN ('$qa', '$qb') AND data <> '{}'")" 6 \
   "... and their records are on the items"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue IN ('$qa', '$qb') AND kind = 'fetch_completed'")" 6 \
   "... with a fetch_completed event each"

# a failing URL: retried with backoff, then failed; retry_fetches queues it again
bad=$(q "SELECT min(id) FROM workqueue.item WHERE queue = '$qb'")
fb=$(q "SELECT workqueue.enqueue_fetch($bad, '${qb}bad')")
wait_until 60 "fetch $fb to fail" quiet q_is "SELECT status FROM workqueue.fetch WHERE id = $fb" failed
is "$(q "SELECT attempts || '|' || http_status FROM workqueue.fetch WHERE id = $fb")" "2|500" \
   "a failing fetch is tried again, then fails"
is "$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = '$qb' AND item_id = $bad AND kind = 'fetch_failed'")" 1 \
   "... with one fetch_failed event"
is "$(q "SELECT workqueue.retry_fetches('${qb}bad')")" 1 "retry_fetches() queues the failed fetch again"
wait_until 60 "fetch $fb to fail again" quiet q_is "SELECT status || attempts FROM workqueue.fetch WHERE id = $fb" failed2
ok $(q_ge "SELECT workqueue.retry_fetches()" 1; echo $?) "retry_fetches() of every source"
# cancel a queued fetch: one due later (a fetch of a queue whose turn is not yet)
q "UPDATE workqueue.fetch SET next_attempt_at = now() + interval '1 hour' WHERE queue = '$qb' AND id = $fb" >/dev/null
is "$(q "SELECT (workqueue.cancel_fetch($fb)).status")" cancelled "cancel_fetch() of a queued fetch"
is "$(qerr "SELECT workqueue.cancel_fetch($fb)")" "fetch $fb is cancelled, not queued" "... not twice"
is "$(qerr "SELECT workqueue.cancel_fetch(999999999)")" "fetch 999999999 does not exist" "... of a missing fetch"
done1=$(q "SELECT min(id) FROM workqueue.fetch WHERE queue = '$qa' AND status = 'completed'")
is "$(qerr "SELECT workqueue.cancel_fetch($done1)")" "fetch $done1 is completed, not queued" "... of a completed one"
# a processing fetch (as the worker leaves it while its transfer runs)
q "UPDATE workqueue.fetch SET status = 'processing' WHERE id = $done1" >/dev/null
is "$(qerr "SELECT workqueue.cancel_fetch($done1)")" "fetch $done1 is processing, not queued" "... of a processing one"
q "UPDATE workqueue.fetch SET status = 'completed' WHERE id = $done1" >/dev/null
# a hidden one: same answer as a missing one
q "DO \$\$ BEGIN CREATE ROLE wq_cf_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
   GRANT USAGE ON SCHEMA workqueue TO wq_cf_reader;
   UPDATE workqueue.item SET scope = '{secret}' WHERE queue = '$qa'" >/dev/null 2>&1
is "$(PGUSER=wq_cf_reader qerr "SELECT workqueue.cancel_fetch($done1)")" "fetch $done1 does not exist" \
   "... of a fetch the caller may not see: as a missing one"

is "$(worker_pid fetch)" "$pid" "the fetch worker did not restart during the test"
for w in "${workers[@]}"; do
    is "$(qw "$w" "SELECT count(*) FROM workqueue.fetch WHERE worker_pid IS NOT NULL AND status = 'processing'")" 0 \
       "no fetch in flight on worker node $w"
done
finish
