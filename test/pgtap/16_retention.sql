-- Retention (issue 14.3; doc/operations.md, "Retention"): alter_queue's
-- "retention" and the purge the fetch worker runs (workqueue._purge), called
-- here directly as superuser.  One transaction, rolled back; names carry the
-- file's number (q16_*, wq16_*).  Items are aged by setting their end
-- (resolved_at, or updated_at if closed) in the past.
BEGIN;
SELECT plan(33);

CREATE ROLE wq16_plain LOGIN;

-- 1-9: alter_queue validates retention
SELECT workqueue.create_queue('q16_r');
SELECT workqueue.create_queue('q16_none');
SELECT is((workqueue.alter_queue('q16_r', '{"retention": "90 days"}')).retention, interval '90 days',
    'retention is set from an interval string');
SELECT is((SELECT retention FROM workqueue.queue WHERE name = 'q16_none'), NULL, 'the default: no retention (keep everything)');
SELECT throws_ok($$SELECT workqueue.alter_queue('q16_r', '{"retention": "-1 day"}')$$, '22023',
    'retention must be a positive interval or null', 'a negative retention: 22023');
SELECT throws_ok($$SELECT workqueue.alter_queue('q16_r', '{"retention": "0"}')$$, '22023',
    'retention must be a positive interval or null', 'a zero retention: 22023');
SELECT throws_ok($$SELECT workqueue.alter_queue('q16_r', '{"retention": "ninety days"}')$$, '22023',
    'retention must be a positive interval or null', 'not an interval: 22023');
SELECT throws_ok($$SELECT workqueue.alter_queue('q16_r', '{"retention": 90}')$$, '22023',
    'retention must be a positive interval or null', 'a number: 22023');
SELECT throws_ok($$SELECT workqueue.alter_queue('q16_r', '{"retention": "10 minutes"}')$$, '22023',
    'retention must be at least 1 hour', 'under an hour: 22023');
SELECT is((workqueue.alter_queue('q16_r', '{"retention": null}')).retention, NULL, 'null takes the retention away');
SET ROLE wq16_plain;
SELECT throws_ok($$SELECT workqueue.alter_queue('q16_r', '{"retention": "1 day"}')$$, '42501', NULL,
    'a plain role cannot set a retention');
RESET ROLE;

-- the items
SELECT workqueue.create_source('s16', 'q16_r', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}');
CREATE TEMP TABLE it (name text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.add(n text, q text DEFAULT 'q16_r') RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO it VALUES (n, workqueue.add(q, jsonb_build_object('n', n), 3, 'X-' || n)) RETURNING id $$;
CREATE FUNCTION pg_temp.id(n text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM it WHERE name = n $$;
CREATE FUNCTION pg_temp.age(n text, ago interval) RETURNS void LANGUAGE sql AS $$
    UPDATE workqueue.item SET resolved_at = CASE WHEN status <> 'closed' THEN now() - ago END, updated_at = now() - ago
     WHERE id = pg_temp.id(n) $$;
CREATE FUNCTION pg_temp.left_of(q text) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(t.name, ',' ORDER BY t.name) FROM it t JOIN workqueue.item i ON i.id = t.id AND i.queue = q $$;

SELECT pg_temp.add(n) FROM unnest(ARRAY['old_resolved', 'old_rejected', 'old_closed', 'recent', 'open', 'busy',
                                        'active_fetch', 'done_fetch', 'fenced', 'parent', 'child', 'b1', 'b2', 'b3']) n;
SELECT pg_temp.add('other', 'q16_none');
SELECT (workqueue.transition(pg_temp.id(n), 'resolve')).id
  FROM unnest(ARRAY['old_resolved', 'recent', 'active_fetch', 'done_fetch', 'fenced', 'parent', 'b1', 'b2', 'b3']) n;
SELECT (workqueue.transition(pg_temp.id('old_rejected'), 'reject')).id;
SELECT (workqueue.transition(pg_temp.id('other'), 'resolve')).id;
UPDATE workqueue.item SET status = 'closed' WHERE id = pg_temp.id('old_closed');
UPDATE workqueue.item SET parent_id = pg_temp.id('parent') WHERE id = pg_temp.id('child');
SELECT workqueue.comment(pg_temp.id('old_resolved'), 'a comment that goes');
SELECT workqueue.comment(pg_temp.id('recent'), 'a comment that stays');
SELECT workqueue.enqueue_fetch(pg_temp.id('active_fetch'), 's16') AS f_active \gset
SELECT workqueue.enqueue_fetch(pg_temp.id('done_fetch'), 's16') AS f_done \gset
UPDATE workqueue.fetch SET status = 'completed', finished_at = now() WHERE id = :f_done;
INSERT INTO workqueue.lease_fence (queue, item_id, worker, lease_until) VALUES ('q16_r', pg_temp.id('fenced'), 'wq16_gone', now());
SELECT pg_temp.age(n, '100 days')
  FROM unnest(ARRAY['old_resolved', 'old_rejected', 'old_closed', 'active_fetch', 'done_fetch', 'fenced',
                    'parent', 'b1', 'b2', 'b3', 'other']) n;
SELECT pg_temp.age('recent', '10 days');
SELECT count(*) AS _ FROM workqueue.claim('q16_r', 1, 'wq16_worker') \gset
-- (open and in progress for 100 days: they stay all the same)
SELECT pg_temp.age(n, '100 days') FROM unnest(ARRAY['open', 'busy']) n;
SELECT (SELECT count(*) FROM workqueue.item_event e JOIN it ON e.item_id = it.id
         WHERE it.name IN ('recent', 'open', 'busy', 'active_fetch', 'parent', 'child')) AS kept_events,
       (SELECT count(*) FROM workqueue.item_event e JOIN it ON e.item_id = it.id
         WHERE it.name IN ('old_resolved', 'old_rejected', 'old_closed', 'done_fetch', 'fenced', 'b1', 'b2', 'b3')) AS gone_events,
       (SELECT string_agg(x::text, ';' ORDER BY x.id) FROM workqueue.item_event x WHERE x.queue = 'q16_none') AS other_events
\gset

-- 10-11: no retention, nothing goes
SELECT is(workqueue._purge(500), 0, 'without a retention the purge deletes nothing');
SELECT is((SELECT count(*) FROM workqueue.purge WHERE queue IN ('q16_r', 'q16_none')), 0::bigint, '... and leaves no row');

-- 12-15: the purge, in batches of 3
SELECT (workqueue.alter_queue('q16_r', '{"retention": "30 days"}')).name AS _ \gset
SELECT is(workqueue._purge(3), 3, 'a batch deletes at most batch_size items');
SELECT ok((SELECT finished_at IS NULL AND batches = 1 AND items = 3 FROM workqueue.purge WHERE queue = 'q16_r'),
    'the first batch opens the summary row of the pass');
SELECT is(workqueue._purge(3) + workqueue._purge(3) + workqueue._purge(3), 5,
    'the next batches take the rest: 8 old finished items in all');
SELECT is(workqueue._purge(3), 0, 'then the purge finds nothing');

-- 16-24: what went, what stayed
SELECT is(pg_temp.left_of('q16_r'), 'active_fetch,busy,child,open,parent,recent',
    'old resolved, rejected and closed items went; open, in-progress, recent, fetching and parent items stayed');
SELECT is(pg_temp.left_of('q16_none'), 'other', 'a queue without retention keeps its old items');
SELECT is((SELECT string_agg(x::text, ';' ORDER BY x.id) FROM workqueue.item_event x WHERE x.queue = 'q16_none'),
    :'other_events', '... and their events');
SELECT is((SELECT count(*) FROM workqueue.item_event e JOIN it ON e.item_id = it.id
            WHERE it.name IN ('recent', 'open', 'busy', 'active_fetch', 'parent', 'child')), :kept_events::bigint,
    'the events of kept items stay');
SELECT is((SELECT count(*) FROM workqueue.item_event e WHERE e.queue = 'q16_r'
             AND NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = e.queue AND i.id = e.item_id)), 0::bigint,
    'the events of purged items went');
SELECT is((SELECT count(*) FROM workqueue.lease_fence WHERE queue = 'q16_r'), 0::bigint, 'their lease fences went');
SELECT is((SELECT string_agg(status, ',') FROM workqueue.fetch WHERE queue = 'q16_r'), 'queued',
    'the finished fetch went, the queued one stayed');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q16_r' AND claimed_by = 'wq16_worker' AND status = 'in_progress'),
    1::bigint, 'the claimed item is untouched');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = pg_temp.id('recent') AND kind = 'comment'), 1::bigint,
    'the recent item keeps its comment');

-- 25-28: one summary row for the pass
SELECT is((SELECT count(*) FROM workqueue.purge WHERE queue = 'q16_r'), 1::bigint, 'one summary row for the pass');
SELECT is((SELECT format('%s %s %s %s %s %s', items, events, fences, fetches, batches, retention)
             FROM workqueue.purge WHERE queue = 'q16_r'),
          format('8 %s 1 1 3 30 days', :gone_events), 'it counts the items, events, fences and fetches');
SELECT ok((SELECT finished_at IS NOT NULL AND cutoff = now() - interval '30 days'
                  AND oldest_resolved = now() - interval '100 days' AND newest_resolved = now() - interval '100 days'
             FROM workqueue.purge WHERE queue = 'q16_r'), 'it is closed, with its cutoff and the range of the ends');
SELECT is(workqueue._purge(500), 0, 'a second pass with nothing to do ...');
SELECT is((SELECT count(*) FROM workqueue.purge WHERE queue = 'q16_r'), 1::bigint, '... leaves no row');

-- 29-30: the parent goes once its child is gone
SELECT (workqueue.transition(pg_temp.id('child'), 'resolve')).id AS _ \gset
SELECT pg_temp.age('child', '100 days');
SELECT is(workqueue._purge(500) + workqueue._purge(500), 2, 'a finished child goes, then its parent');
SELECT is((SELECT count(*) FROM workqueue.purge WHERE queue = 'q16_r'), 2::bigint, '... in a second pass, with its row');

-- 31: readable by everyone (counts only)
SET ROLE wq16_plain;
SELECT is((SELECT count(*) FROM workqueue.purge WHERE queue = 'q16_r'), 2::bigint, 'everyone reads the summary rows');
RESET ROLE;

-- 32: drop_queue takes them with the queue
SELECT workqueue.drop_queue('q16_r', force => true);
SELECT is((SELECT count(*) FROM workqueue.purge WHERE queue = 'q16_r'), 0::bigint, 'drop_queue deletes the queue''s summary rows');

SELECT * FROM finish();
ROLLBACK;
