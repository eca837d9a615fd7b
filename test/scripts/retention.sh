#!/usr/bin/env bash
# test/scripts/retention.sh — the fetch worker purges finished items past
# their queue's retention by itself (issue 14.3; doc/operations.md,
# "Retention").
#
# With workqueue.purge_interval at 1 s and purge_batch_size at 400: a queue
# of 1,000 items aged 100 days (resolved, rejected, closed) and 200 open
# ones gets a retention of 30 days; the worker deletes the 1,000 with their
# events in three batches, leaves one closed summary row, keeps the open
# items with their events, and leaves a queue without retention alone.
# Runs in the database the workers serve (postgres), names prefixed ret_sh.
set -uo pipefail
source "$(dirname "$0")/../lib.sh"
export LC_ALL=C
export PGDATABASE=postgres

cleanup() {
    q "ALTER SYSTEM RESET workqueue.purge_interval; ALTER SYSTEM RESET workqueue.purge_batch_size" >/dev/null 2>&1
    q "SELECT pg_reload_conf()" >/dev/null 2>&1
    q "SELECT workqueue.drop_queue(name, force => true) FROM workqueue.queue WHERE name IN ('ret_sh', 'ret_sh_keep')" >/dev/null 2>&1
}
trap cleanup EXIT

wait_until 10 "the fetch worker of this database" q_is "SELECT count(*) FROM workqueue.worker_status WHERE kind = 'fetch'" 1
q "ALTER SYSTEM SET workqueue.purge_interval = '1s'" >/dev/null
q "ALTER SYSTEM SET workqueue.purge_batch_size = 400" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_until 10 "the workers to reload" workers_reloaded

q "SELECT workqueue.create_queue('ret_sh'), workqueue.create_queue('ret_sh_keep')" >/dev/null
q "SELECT count(*) FROM workqueue.add_many('ret_sh', (SELECT jsonb_agg(jsonb_build_object('data', jsonb_build_object('n', n)))
                                                        FROM generate_series(1, 1200) n))" >/dev/null
q "SELECT count(*) FROM workqueue.add_many('ret_sh_keep', (SELECT jsonb_agg(jsonb_build_object('data', jsonb_build_object('n', n)))
                                                             FROM generate_series(1, 100) n))" >/dev/null
# the first 1,000 of ret_sh and every item of ret_sh_keep finished 100 days ago
# (set directly, as a superuser: the API has no way to age an item)
q "WITH f AS (SELECT queue, id, row_number() OVER (PARTITION BY queue ORDER BY id) AS n FROM workqueue.item
               WHERE queue IN ('ret_sh', 'ret_sh_keep'))
   UPDATE workqueue.item i
      SET status = (ARRAY['resolved', 'rejected', 'closed'])[1 + f.n % 3],
          resolved_at = CASE WHEN f.n % 3 <> 2 THEN now() - interval '100 days' END,
          updated_at = now() - interval '100 days'
     FROM f WHERE i.queue = f.queue AND i.id = f.id AND (f.queue = 'ret_sh_keep' OR f.n <= 1000)" >/dev/null
keep_before=$(q "SELECT count(*) FROM workqueue.item_event WHERE queue = 'ret_sh_keep'")
is "$(q "SELECT count(*) FROM workqueue.purge WHERE queue = 'ret_sh'")" 0 "no purge without a retention"

q "SELECT workqueue.alter_queue('ret_sh', '{\"retention\": \"30 days\"}')" >/dev/null
wait_until 30 "the worker to purge the 1,000 finished items" \
    q_is "SELECT count(*) FROM workqueue.item WHERE queue = 'ret_sh'" 200
ok $? "the worker deleted the 1,000 old finished items by itself"
wait_until 10 "the purge's summary row to be closed" \
    q_is "SELECT count(*) FROM workqueue.purge WHERE queue = 'ret_sh' AND finished_at IS NOT NULL" 1
ok $? "the pass ended"
is "$(q "SELECT format('%s rows: %s items, %s events in %s batches', count(*), sum(items), sum(events), sum(batches))
           FROM workqueue.purge WHERE queue = 'ret_sh'")" \
   "1 rows: 1000 items, 1000 events in 3 batches" "one summary row with the counts (batches of 400)"
is "$(q "SELECT count(*) FILTER (WHERE status = 'open') || ' open, ' || count(*) || ' events'
           FROM workqueue.item i JOIN workqueue.item_event e ON e.queue = i.queue AND e.item_id = i.id
          WHERE i.queue = 'ret_sh'")" "200 open, 200 events" "the open items stay with their events"
is "$(q "SELECT count(*) FROM workqueue.item_event e WHERE e.queue = 'ret_sh'
            AND NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = e.queue AND i.id = e.item_id)")" 0 \
   "no event of a purged item is left"
is "$(q "SELECT count(*) || ' items, ' || (SELECT count(*) FROM workqueue.item_event WHERE queue = 'ret_sh_keep') || ' events'
           FROM workqueue.item WHERE queue = 'ret_sh_keep'")" "100 items, $keep_before events" \
   "a queue without retention keeps its old items and events"
is "$(q "SELECT count(*) FROM workqueue.purge WHERE queue = 'ret_sh_keep'")" 0 "... and gets no summary row"
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = '$(worker_type fetch)' AND datname = 'postgres'")" 1 \
   "the fetch worker is still the one worker"
# another pass a second later finds nothing and leaves no row
later=$(q "SELECT clock_timestamp() + interval '1.5 s'")
wait_until 10 "a later pass" q_any "SELECT 1 FROM workqueue.worker_status WHERE kind = 'fetch' AND last_loop_at > '$later'"
is "$(q "SELECT count(*) FROM workqueue.purge WHERE queue = 'ret_sh'")" 1 "a pass with nothing to delete leaves no row"

finish
