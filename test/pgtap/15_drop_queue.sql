-- Retiring a queue: drop_queue (issue 14.2; doc/queue.md, "Retiring a
-- queue").  Runs in one transaction that is rolled back; names carry the
-- file's number (q15_*, wq15_*) so that files may run in parallel.
BEGIN;
SELECT plan(27);

CREATE ROLE wq15_plain LOGIN;

-- rows of queue q in every table of the schema that has a column "queue",
-- found from the catalog (a per-queue table added later is checked too)
CREATE FUNCTION pg_temp.rows_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t regclass;
    n bigint;
    res text := '';
BEGIN
    FOR t IN SELECT c.oid::regclass FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'queue' AND NOT a.attisdropped
              WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p')
              ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s WHERE queue = $1', t) INTO n USING q;
        IF n > 0 THEN
            res := res || format('%s: %s; ', t, n);
        END IF;
    END LOOP;
    RETURN res;
END $$;

-- everything of queue q: its row, items, events, fences, fetches, sources, runs
CREATE FUNCTION pg_temp.footprint(q text) RETURNS text LANGUAGE sql AS $$
    SELECT md5(concat((SELECT string_agg(x::text, ';') FROM workqueue.queue x WHERE x.name = q),
                      (SELECT string_agg(i::text, ';' ORDER BY i.id) FROM workqueue.item i WHERE i.queue = q),
                      (SELECT string_agg(e::text, ';' ORDER BY e.id) FROM workqueue.item_event e WHERE e.queue = q),
                      (SELECT string_agg(l::text, ';' ORDER BY l.item_id) FROM workqueue.lease_fence l WHERE l.queue = q),
                      (SELECT string_agg(f::text, ';' ORDER BY f.id) FROM workqueue.fetch f WHERE f.queue = q),
                      (SELECT string_agg(s::text, ';' ORDER BY s.name) FROM workqueue.source s WHERE s.queue = q),
                      (SELECT string_agg(r::text, ';' ORDER BY r.id) FROM workqueue.sync_run r
                        WHERE r.source IN (SELECT name FROM workqueue.source WHERE queue = q))))
$$;

-- a queue with a bit of everything: open, in-progress and closed items, a
-- comment, a lease fence, fetches (queued, completed), a source with runs
SELECT workqueue.create_queue('q15_a', lease_timeout => '1 minute');
SELECT workqueue.create_queue('q15_keep');
SELECT workqueue.create_source('s15_a', 'q15_a', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}');
SELECT workqueue.create_source('s15_keep', 'q15_keep', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}');
SELECT workqueue.add('q15_a', '{"n": 1}', 1, 'A-1') AS a1 \gset
SELECT workqueue.add('q15_a', '{"n": 2}', 2, 'A-2') AS a2 \gset
SELECT workqueue.add('q15_a', '{"n": 3}', 3, 'A-3') AS a3 \gset
SELECT workqueue.add('q15_a', '{"n": 4}', 4, 'A-4') AS a4 \gset
SELECT count(*) AS _ FROM workqueue.claim('q15_a', 1, 'wq15_worker') \gset
SELECT workqueue.comment(:a2, 'hello') AS _ \gset
SELECT (workqueue.transition(:a3, 'reject')).id AS _ \gset
SELECT workqueue.enqueue_fetch(:a2, 's15_a') AS fq \gset
SELECT workqueue.enqueue_fetch(:a4, 's15_a') AS fc \gset
UPDATE workqueue.fetch SET status = 'completed', finished_at = now() WHERE id = :fc;
INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until) VALUES ('q15_a', :a1, 'wq15_gone', now());
SELECT workqueue.sync('s15_a') AS run_q \gset
UPDATE workqueue.sync_run SET status = 'completed', finished_at = now() WHERE id = :run_q;
SELECT workqueue.sync('s15_a') AS run_q2 \gset
-- the queue that stays, with its own rows
SELECT workqueue.add('q15_keep', '{"k": 1}', 3, 'A-1') AS k1 \gset
SELECT workqueue.enqueue_fetch(:k1, 's15_keep') AS kf \gset
SELECT workqueue.sync('s15_keep') AS krun \gset
SELECT pg_temp.footprint('q15_keep') AS keep_before \gset

-- 1-2: administrators only
SET ROLE wq15_plain;
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_a')$$, '42501', 'permission denied to drop queues',
    'a plain role cannot drop a queue');
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_nope', force => true)$$, '42501', 'permission denied to drop queues',
    '... nor learn whether one exists');
RESET ROLE;

-- 3-4: unknown, NULL
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_nope')$$, '42704', 'queue "q15_nope" does not exist',
    'an unknown queue: 42704');
SELECT throws_ok($$SELECT workqueue.drop_queue(NULL)$$, '22004', 'queue name must not be null', 'a NULL name: 22004');

-- 5-7: refused while items are open or in progress
SELECT is((SELECT ROW(e.state, e.msg, e.hint)::text FROM wqt.err($$SELECT workqueue.drop_queue('q15_a')$$) e),
    ROW('55006', 'queue "q15_a" has 2 open and 1 in-progress items',
        'Resolve or close them first, or drop them with the queue: SELECT workqueue.drop_queue(''q15_a'', force => true);')::text,
    'refused with open and in-progress items: 55006, the counts, and the forced call as hint');
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_a', force => false)$$, '55006', NULL, '... also with force => false');
SELECT isnt(pg_temp.rows_of('q15_a'), '', '... and nothing was deleted');

-- 8-10: refused, even forced, while a worker holds a fetch or a run of the queue
UPDATE workqueue.fetch SET status = 'processing', started_at = now(), worker_pid = 1 WHERE id = :fq;
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_a', force => true)$$, '55006', 'queue "q15_a" has fetches in flight',
    'forced, but a fetch is in the fetch worker''s hands: refused');
UPDATE workqueue.fetch SET status = 'queued', started_at = NULL, worker_pid = NULL WHERE id = :fq;
UPDATE workqueue.sync_run SET status = 'running', started_at = now(), phase = 'listing' WHERE id = :run_q2;
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_a', force => true)$$, '55006', 'queue "q15_a" has a sync run running',
    'forced, but a run of its source is running: refused');
UPDATE workqueue.sync_run SET status = 'queued', started_at = NULL, phase = NULL WHERE id = :run_q2;
-- a fetch of another queue through this queue's source (administrators may)
SELECT workqueue.add('q15_keep', '{"k": 2}', 3, 'K-2') AS k2 \gset
SELECT workqueue.enqueue_fetch(:k2, 's15_a') AS _ \gset
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_a', force => true)$$, '55006',
    'sources of queue "q15_a" are used by fetches of other queues',
    'forced, but a fetch of another queue names its source: refused');
DELETE FROM workqueue.fetch WHERE queue = 'q15_keep' AND source = 's15_a';
SELECT pg_temp.footprint('q15_keep') AS keep_before \gset

-- 11-17: forced: the queue goes with everything of it
SELECT lives_ok($$SELECT workqueue.drop_queue('q15_a', force => true)$$, 'forced, the queue is dropped');
SELECT is(pg_temp.rows_of('q15_a'), '', 'no row of the queue is left in any table with a "queue" column');
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.queue WHERE name = 'q15_a'), 'the queue row is gone');
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.source WHERE name = 's15_a'), 'its source is gone');
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.sync_run WHERE source = 's15_a'), 'with its sync runs');
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.item WHERE id IN (:a1, :a2, :a3, :a4))
          AND NOT EXISTS (SELECT 1 FROM workqueue.item_event WHERE item_id IN (:a1, :a2, :a3, :a4))
          AND NOT EXISTS (SELECT 1 FROM workqueue.fetch WHERE id IN (:fq, :fc)),
    'its items, events and fetches are gone');
SELECT is(pg_temp.footprint('q15_keep'), :'keep_before', 'the other queue, its source, fetch and run are untouched');

-- 18-19: a queue without open work drops without force
SELECT workqueue.create_queue('q15_empty');
SELECT lives_ok($$SELECT workqueue.drop_queue('q15_empty')$$, 'an empty queue drops without force');
SELECT workqueue.create_queue('q15_done');
SELECT workqueue.add('q15_done', '{}') AS d1 \gset
SELECT (workqueue.transition(:d1, 'reject')).id AS _ \gset
SELECT lives_ok($$SELECT workqueue.drop_queue('q15_done')$$, 'a queue whose items are all finished drops without force');

-- 20-24: the name can be used again, from scratch
SELECT lives_ok($$SELECT workqueue.create_queue('q15_a')$$, 'a dropped queue''s name can be created again');
SELECT lives_ok($$SELECT workqueue.create_source('s15_a', 'q15_a', 'http://127.0.0.1:9/ids', NULL)$$,
    '... and so can its source');
SELECT workqueue.add('q15_a', '{"again": true}', 2, 'A-1') AS again \gset
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q15_a'), 1::bigint,
    'the new queue holds only its new item (the old external id A-1 is free)');
SELECT is((SELECT id FROM workqueue.claim('q15_a', 5, 'wq15_worker')), :again::bigint, 'and it is claimed as usual');
SELECT is((SELECT count(*) FROM workqueue.history(:again)), 2::bigint, 'with a history of its own (created, claimed)');

-- 25-26: a second drop of the dropped name
SELECT lives_ok($$SELECT workqueue.drop_queue('q15_a', force => true)$$, 'the new queue drops too');
SELECT throws_ok($$SELECT workqueue.drop_queue('q15_a')$$, '42704', 'queue "q15_a" does not exist',
    'and is then unknown');

-- 27: pg_cron schedules of its sources go with it (when pg_cron is here)
CREATE FUNCTION pg_temp.cron_case() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RETURN 'no pg_cron';
    END IF;
    PERFORM workqueue.create_queue('q15_cron');
    PERFORM workqueue.create_source('s15_cron', 'q15_cron', 'http://127.0.0.1:9/ids', NULL);
    PERFORM workqueue.schedule_sync('s15_cron', '*/5 * * * *');
    PERFORM workqueue.drop_queue('q15_cron');
    EXECUTE 'SELECT count(*) FROM cron.job WHERE jobname = ''workqueue sync s15_cron''' INTO n;
    RETURN CASE WHEN n = 0 THEN 'unscheduled' ELSE n || ' jobs left' END;
END $$;
SELECT pg_temp.cron_case() AS cron_case \gset
SELECT ok(:'cron_case' IN ('unscheduled', 'no pg_cron'), 'its pg_cron schedules are unscheduled: ' || :'cron_case');

SELECT * FROM finish();
ROLLBACK;
