-- Work queue API: create_queue, add, claim, release, extend_lease, comment,
-- update_fields, list_items, get_items, get_items_by_external, history and
-- the privileges of ordinary roles (SPEC §2, §3, §8, §9).
--
-- Runs in one transaction that is rolled back: the queues, items and the
-- LOGIN roles created here leave nothing behind.  Names carry the file's
-- number (q10_*, wq10_*) so that files may run in parallel.
BEGIN;
SELECT plan(148);

-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises
-- (all NULL when it succeeds); for asserting hints and details.
SELECT current_user AS me \gset
CREATE ROLE wq10_alice LOGIN;
CREATE ROLE wq10_bob LOGIN;
CREATE ROLE wq10_pat LOGIN;
CREATE ROLE wq10_adam LOGIN;
GRANT workqueue_admin TO wq10_adam;

------------------------------------------------------------------------------
-- create_queue
------------------------------------------------------------------------------

SELECT lives_ok($$SELECT workqueue.create_queue('q10_main')$$, 'create_queue with defaults');
SELECT results_eq(
    $$SELECT workflow, sla_policy, lease_timeout, created_by FROM workqueue.queue WHERE name = 'q10_main'$$,
    format($$VALUES ('review'::text, NULL::text, interval '15 minutes', %L::text)$$, :'me'),
    'a new queue uses the review workflow, no SLA policy and a 15 minute lease');
SELECT lives_ok($$SELECT workqueue.create_queue('q10_other', 'review', NULL, '10 minutes')$$,
    'create_queue with every argument');
SELECT is((SELECT lease_timeout FROM workqueue.queue WHERE name = 'q10_other'), interval '10 minutes',
    'create_queue stores lease_timeout');

SELECT throws_ok($$SELECT workqueue.create_queue('q10_main')$$,
    '42710', 'queue "q10_main" already exists', 'a duplicate queue name is refused');
SELECT throws_ok($$SELECT workqueue.create_queue('q10_x', 'nope')$$,
    '42704', 'workflow "nope" does not exist', 'an unrecognized workflow is refused');
SELECT throws_ok($$SELECT workqueue.create_queue('q10_x', lease_timeout => '0 seconds')$$,
    '22023', 'lease_timeout must be positive', 'a zero lease_timeout is refused');
SELECT throws_ok($$SELECT workqueue.create_queue('q10_x', lease_timeout => '-1 minute')$$,
    '22023', 'lease_timeout must be positive', 'a negative lease_timeout is refused');
SELECT throws_ok($$SELECT workqueue.create_queue('')$$,
    '22023', 'queue name must not be empty', 'an empty queue name is refused');
SELECT throws_ok($$SELECT workqueue.create_queue(NULL)$$,
    '22023', 'queue name must not be empty', 'a NULL queue name is refused');
SELECT throws_ok($$SELECT workqueue.create_queue('q10_x', sla_policy => 'gold')$$,
    '42704', 'sla policy "gold" does not exist', 'an unknown sla_policy is refused');
SELECT is((SELECT count(*) FROM workqueue.queue WHERE name LIKE 'q10_x%'), 0::bigint,
    'failed create_queue calls create nothing');

------------------------------------------------------------------------------
-- add
------------------------------------------------------------------------------

SELECT workqueue.add('q10_main', '{"title": "one"}', 2, 'EXT-1') AS item1 \gset
SELECT ok(:item1 > 0, 'add returns the new item id');
SELECT results_eq(
    format($$SELECT queue, external_id, step, status, priority::int, data, notes, claimed_by,
                    workflow, workflow_version
               FROM workqueue.item WHERE id = %s$$, :item1),
    $$VALUES ('q10_main'::text, 'EXT-1'::text, 'review'::text, 'open'::text, 2, '{"title": "one"}'::jsonb,
              '{}'::jsonb, NULL::text, 'review'::text, 1)$$,
    'a new item is open at the start step of the queue''s workflow, pinned to its version');
SELECT results_eq(
    format($$SELECT kind, actor, from_step, to_step, payload->>'external_id', (payload->>'priority')::int
               FROM workqueue.item_event WHERE item_id = %s$$, :item1),
    format($$VALUES ('created'::text, %L::text, NULL::text, 'review'::text, 'EXT-1'::text, 2)$$, :'me'),
    'add writes one created event with the actor');

SELECT workqueue.add('q10_main') AS item2 \gset
SELECT results_eq(
    format($$SELECT priority::int, data, external_id FROM workqueue.item WHERE id = %s$$, :item2),
    $$VALUES (3, '{}'::jsonb, NULL::text)$$,
    'add defaults: priority 3, empty data, no external id');

SELECT throws_ok($$SELECT workqueue.add('q10_main', '{}', 0)$$,
    '22003', 'priority 0 is out of range', 'priority 0 is refused');
SELECT throws_ok($$SELECT workqueue.add('q10_main', '{}', 6)$$,
    '22003', 'priority 6 is out of range', 'priority 6 is refused');
SELECT throws_ok($$SELECT workqueue.add('q10_main', '{}', NULL)$$,
    '22003', 'priority NULL is out of range', 'a NULL priority is refused');
SELECT is((wqt.err($$SELECT workqueue.add('q10_main', '{}', 6)$$)).hint,
    'Pass a priority between 1 and 5.', 'the priority error hints at the range');
SELECT throws_ok($$SELECT workqueue.add('q10_main', '[1, 2]')$$,
    '22023', 'item data must be a JSON object', 'data that is an array is refused');
SELECT throws_ok($$SELECT workqueue.add('q10_main', '"text"')$$,
    '22023', 'item data must be a JSON object', 'data that is a scalar is refused');
SELECT throws_ok($$SELECT workqueue.add('q10_main', NULL)$$,
    '22023', 'item data must be a JSON object', 'NULL data is refused');
SELECT throws_ok($$SELECT workqueue.add('q10_main', '{}', 3, 'EXT-1')$$,
    '23505', 'external id "EXT-1" already exists in queue "q10_main"',
    'a duplicate external id in the same queue is refused');
SELECT is((wqt.err($$SELECT workqueue.add('q10_main', '{}', 3, 'EXT-1')$$)).detail,
    format('It belongs to item %s.', :item1), 'the duplicate error names the existing item');
SELECT lives_ok($$SELECT workqueue.add('q10_other', '{}', 3, 'EXT-1')$$,
    'the same external id in another queue is fine');
SELECT throws_ok($$SELECT workqueue.add('nope', '{}')$$,
    '42704', 'queue "nope" does not exist', 'add to an unrecognized queue is refused');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q10_main'), 2::bigint,
    'failed add calls create no item');

------------------------------------------------------------------------------
-- claim
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q10_order', lease_timeout => '10 minutes') AS _ \gset
SELECT workqueue.add('q10_order', '{"n": "a"}', 3) AS oa,
       workqueue.add('q10_order', '{"n": "b"}', 3) AS ob,
       workqueue.add('q10_order', '{"n": "c"}', 1) AS oc,
       workqueue.add('q10_order', '{"n": "d"}', 5) AS od,
       workqueue.add('q10_order', '{"n": "e"}', 3) AS oe \gset
-- b is the oldest of the priority-3 items (now() is fixed inside a transaction)
UPDATE workqueue.item SET created_at = now() - interval '1 hour' WHERE id = :ob;
-- the order claim returns must not depend on the plan the planner picks (a
-- hash join, as here, is what it picks on some table sizes); these are the
-- first claims of the session, so claim's queries are planned under them
SET LOCAL enable_nestloop = off;
SET LOCAL enable_mergejoin = off;

SELECT results_eq(
    $$SELECT id FROM workqueue.claim('q10_order', 2, 'w1') ORDER BY id$$,
    format('SELECT unnest(ARRAY[%s, %s]::bigint[]) ORDER BY 1', :oc, :ob),
    'claim takes priority 1 first, then the oldest');
SELECT array_agg(id)::text AS claimed2 FROM workqueue.claim('q10_order', 10, 'w2') \gset
SELECT is((SELECT array_agg(x ORDER BY x) FROM unnest(:'claimed2'::bigint[]) x),
    (SELECT array_agg(x ORDER BY x) FROM unnest(ARRAY[:oa, :oe, :od]::bigint[]) x),
    'claim takes up to n items: the rest of the queue');
SELECT is(:'claimed2'::bigint[], ARRAY[:oa, :oe, :od]::bigint[],
    'claim returns the items in inbox order (priority, then oldest)');
RESET enable_nestloop;
RESET enable_mergejoin;
SELECT results_eq(
    format($$SELECT status, claimed_by, lease_until FROM workqueue.item WHERE id = %s$$, :oc),
    $$VALUES ('in_progress'::text, 'w1'::text, now() + interval '10 minutes')$$,
    'claim sets status, claimed_by and lease_until = now() + lease_timeout');
SELECT results_eq(
    format($$SELECT kind, actor, from_step, to_step, (payload->>'lease_until')::timestamptz
               FROM workqueue.item_event WHERE item_id = %s ORDER BY id DESC LIMIT 1$$, :oc),
    $$VALUES ('claimed'::text, 'w1'::text, 'review'::text, 'review'::text, now() + interval '10 minutes')$$,
    'claim writes a claimed event with the worker and the lease');
SELECT is((SELECT count(*) FROM workqueue.claim('q10_order', 5, 'w3')), 0::bigint,
    'claim on a queue with no open items returns no rows');

SELECT workqueue.create_queue('q10_empty') AS _ \gset
SELECT is((SELECT count(*) FROM workqueue.claim('q10_empty')), 0::bigint,
    'claim on an empty queue returns no rows');
SELECT throws_ok($$SELECT workqueue.claim('q10_order', 0)$$,
    '22023', 'cannot claim 0 items at once', 'n = 0 is refused');
SELECT throws_ok($$SELECT workqueue.claim('q10_order', -1)$$,
    '22023', 'cannot claim -1 items at once', 'a negative n is refused');
SELECT throws_ok($$SELECT workqueue.claim('q10_order', NULL)$$,
    '22023', 'cannot claim NULL items at once', 'a NULL n is refused');
SELECT throws_ok($$SELECT workqueue.claim('q10_order', 1, '')$$,
    '22004', 'worker must not be empty', 'an empty worker is refused');
SELECT throws_ok($$SELECT workqueue.claim('q10_order', 1, NULL)$$,
    '22004', 'worker must not be empty', 'a NULL worker is refused');
SELECT throws_ok($$SELECT workqueue.claim('nope')$$,
    '42704', 'queue "nope" does not exist', 'claim from an unrecognized queue is refused');

-- default worker is the calling role
SELECT workqueue.create_queue('q10_def') AS _ \gset
SELECT workqueue.add('q10_def') AS dflt \gset
SET ROLE wq10_alice;
SELECT is((SELECT claimed_by FROM workqueue.claim('q10_def')), 'wq10_alice',
    'claim defaults the worker to the calling role');
RESET ROLE;

-- expired leases go back to the queue
SELECT workqueue.create_queue('q10_exp') AS _ \gset
SELECT workqueue.add('q10_exp') AS ex \gset
SELECT is((SELECT id FROM workqueue.claim('q10_exp', 1, 'w1')), :ex::bigint, 'w1 claims the item');
SELECT is((SELECT count(*) FROM workqueue.claim('q10_exp', 1, 'w2')), 0::bigint,
    'a claimed item with a live lease is not handed to another worker');
UPDATE workqueue.item SET lease_until = now() - interval '1 minute' WHERE id = :ex;
SELECT is((SELECT id FROM workqueue.claim('q10_exp', 1, 'w2')), :ex::bigint,
    'an item whose lease expired is claimed again');
SELECT results_eq(
    format($$SELECT kind, actor, payload->>'claimed_by' FROM workqueue.item_event
              WHERE item_id = %s ORDER BY id DESC LIMIT 2$$, :ex),
    $$VALUES ('claimed'::text, 'w2'::text, NULL::text), ('lease_expired', 'workqueue', 'w1')$$,
    'the expired lease is recorded (lease_expired, naming the old holder) before the new claim');
SELECT results_eq(
    format($$SELECT status, claimed_by FROM workqueue.item WHERE id = %s$$, :ex),
    $$VALUES ('in_progress'::text, 'w2'::text)$$, 'the new worker holds the item');

-- a lease that ends exactly now has ended for everyone: the holder is told
-- it expired, so another worker must be able to claim the item
SELECT workqueue.create_queue('q10_edge') AS _ \gset
SELECT workqueue.add('q10_edge') AS edge \gset
SET ROLE wq10_alice;
SELECT is((SELECT id FROM workqueue.claim('q10_edge')), :edge::bigint, 'alice claims an item');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() WHERE id = :edge;
SET ROLE wq10_alice;
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, '1 minute')$$, :edge),
    '55000', format('lease of "wq10_alice" on item %s has expired', :edge),
    'a lease ending now counts as expired for its holder');
SET ROLE wq10_bob;
SELECT is((SELECT count(*) FROM workqueue.claim('q10_edge')), 1::bigint,
    '... and so the item can be claimed by another worker');
RESET ROLE;

------------------------------------------------------------------------------
-- release
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q10_rel') AS _ \gset
SELECT workqueue.add('q10_rel') AS rel \gset
SET ROLE wq10_alice;
SELECT is((SELECT id FROM workqueue.claim('q10_rel')), :rel::bigint, 'alice claims an item');
SET ROLE wq10_bob;
SELECT throws_ok(format('SELECT workqueue.release(%s)', :rel),
    '55P03', format('item %s is claimed by "wq10_alice"', :rel),
    'a non-admin who does not hold the lease cannot release it');
SELECT is((wqt.err(format('SELECT workqueue.release(%s)', :rel))).hint,
    'Only the holder or a workqueue administrator can change this claim.',
    'the refusal hints at who may release');
SET ROLE wq10_alice;
SELECT results_eq(
    format('SELECT status, claimed_by, lease_until FROM workqueue.release(%s)', :rel),
    $$VALUES ('open'::text, NULL::text, NULL::timestamptz)$$,
    'the holder releases the item: open again, no claim');
RESET ROLE;
SELECT results_eq(
    format($$SELECT kind, actor, from_step, to_step FROM workqueue.item_event
              WHERE item_id = %s ORDER BY id DESC LIMIT 1$$, :rel),
    $$VALUES ('released'::text, 'wq10_alice'::text, 'review'::text, 'review'::text)$$,
    'release writes a released event');
SELECT throws_ok(format('SELECT workqueue.release(%s)', :rel),
    '55000', format('item %s is not claimed', :rel), 'releasing an unclaimed item is refused');
SELECT throws_ok('SELECT workqueue.release(0)',
    '42704', 'item 0 does not exist', 'releasing an unrecognized item is refused');
SELECT throws_ok('SELECT workqueue.release(NULL)',
    '22004', 'item id must not be null', 'releasing a NULL item is refused');
SELECT is((SELECT count(*) FROM workqueue.claim('q10_rel', 1, 'wq10_alice')), 1::bigint, 'alice claims again');
SELECT is((SELECT status FROM workqueue.release(:rel)), 'open',
    'an administrator may release a claim held by someone else');

------------------------------------------------------------------------------
-- extend_lease
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q10_ext', lease_timeout => '5 minutes') AS _ \gset
SELECT workqueue.add('q10_ext') AS ext \gset
SET ROLE wq10_alice;
SELECT is((SELECT lease_until FROM workqueue.claim('q10_ext')), now() + interval '5 minutes',
    'alice claims with a 5 minute lease');
SELECT is((SELECT lease_until FROM workqueue.extend_lease(:ext, '10 minutes')), now() + interval '15 minutes',
    'extend_lease moves lease_until on by the interval');
SELECT is((SELECT lease_until FROM workqueue.item WHERE id = :ext), now() + interval '15 minutes',
    'the extended lease is stored');
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, '0 seconds')$$, :ext),
    '22023', 'lease extension must be positive', 'a zero extension is refused');
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, '-5 minutes')$$, :ext),
    '22023', 'lease extension must be positive', 'a negative extension is refused');
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, NULL)$$, :ext),
    '22023', 'lease extension must be positive', 'a NULL extension is refused');
SET ROLE wq10_bob;
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, '1 minute')$$, :ext),
    '55P03', format('item %s is claimed by "wq10_alice"', :ext),
    'a non-admin who does not hold the lease cannot extend it');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() - interval '1 second' WHERE id = :ext;
SET ROLE wq10_alice;
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, '1 minute')$$, :ext),
    '55000', format('lease of "wq10_alice" on item %s has expired', :ext),
    'a holder whose lease expired cannot extend it');
RESET ROLE;
SELECT is((SELECT lease_until FROM workqueue.item WHERE id = :ext), now() - interval '1 second',
    'the refused extensions changed nothing');
SELECT workqueue.add('q10_ext') AS ext2 \gset
SELECT throws_ok(format($$SELECT workqueue.extend_lease(%s, '1 minute')$$, :ext2),
    '55000', format('item %s is not claimed', :ext2), 'extending the lease of an unclaimed item is refused');

------------------------------------------------------------------------------
-- comment
------------------------------------------------------------------------------

SELECT workqueue.comment(:item1, 'looks fine to me') AS cev \gset
SELECT results_eq(
    format($$SELECT item_id, kind, actor, from_step, to_step, payload FROM workqueue.item_event WHERE id = %s$$, :cev),
    format($$VALUES (%s::bigint, 'comment'::text, %L::text, 'review'::text, 'review'::text,
                     '{"body": "looks fine to me"}'::jsonb)$$, :item1, :'me'),
    'comment returns the id of a comment event carrying the body');
SELECT workqueue.comment(:item1, 'on behalf', 'someone') AS cev2 \gset
SELECT is((SELECT actor FROM workqueue.item_event WHERE id = :cev2), 'someone',
    'comment records the given actor');
SELECT throws_ok(format($$SELECT workqueue.comment(%s, '')$$, :item1),
    '22023', 'comment must not be empty', 'an empty comment is refused');
SELECT throws_ok(format($$SELECT workqueue.comment(%s, '   ')$$, :item1),
    '22023', 'comment must not be empty', 'a blank comment is refused');
SELECT throws_ok(format($$SELECT workqueue.comment(%s, NULL)$$, :item1),
    '22023', 'comment must not be empty', 'a NULL comment is refused');
SELECT throws_ok($$SELECT workqueue.comment(0, 'hello')$$,
    '42704', 'item 0 does not exist', 'a comment on an unrecognized item is refused');
SELECT throws_ok(format($$SELECT workqueue.comment(%s, 'x', '')$$, :item1),
    '22004', 'actor must not be empty', 'a comment with an empty actor is refused');

------------------------------------------------------------------------------
-- update_fields
------------------------------------------------------------------------------

SELECT is((SELECT notes FROM workqueue.update_fields(:item1, '{"owner": "ann", "score": 1}')),
    '{"owner": "ann", "score": 1}'::jsonb, 'update_fields merges the fields into notes');
SELECT results_eq(
    format($$SELECT kind, actor, payload FROM workqueue.item_event WHERE item_id = %s ORDER BY id DESC LIMIT 1$$, :item1),
    format($$VALUES ('field_update'::text, %L::text,
              '{"old": {"owner": null, "score": null}, "new": {"owner": "ann", "score": 1}}'::jsonb)$$, :'me'),
    'the field_update event records old and new values');
SELECT is((SELECT notes FROM workqueue.update_fields(:item1, '{"owner": "ann", "score": 2, "tag": "x"}')),
    '{"owner": "ann", "score": 2, "tag": "x"}'::jsonb, 'a second update merges over the first');
SELECT is((SELECT payload FROM workqueue.item_event WHERE item_id = :item1 ORDER BY id DESC LIMIT 1),
    '{"old": {"score": 1, "tag": null}, "new": {"score": 2, "tag": "x"}}'::jsonb,
    'the event names only the fields whose value changed');
SELECT (SELECT count(*) FROM workqueue.item_event WHERE item_id = :item1) AS nev \gset
SELECT is((SELECT notes FROM workqueue.update_fields(:item1, '{"owner": "ann", "score": 2}')),
    '{"owner": "ann", "score": 2, "tag": "x"}'::jsonb, 'an update that changes nothing returns the item as it is');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :item1), :nev::bigint,
    'an update that changes nothing writes no event');
SELECT is((SELECT notes FROM workqueue.update_fields(:item1, '{}')),
    '{"owner": "ann", "score": 2, "tag": "x"}'::jsonb, 'an empty object changes nothing');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :item1), :nev::bigint,
    'an empty object writes no event');
SELECT is((SELECT data FROM workqueue.item WHERE id = :item1), '{"title": "one"}'::jsonb,
    'update_fields never touches the upstream-owned data');
SELECT throws_ok(format($$SELECT workqueue.update_fields(%s, '[1]')$$, :item1),
    '22023', 'fields must be a JSON object', 'fields that are not an object are refused');
SELECT throws_ok(format($$SELECT workqueue.update_fields(%s, NULL)$$, :item1),
    '22023', 'fields must be a JSON object', 'NULL fields are refused');
SELECT throws_ok($$SELECT workqueue.update_fields(0, '{"a": 1}')$$,
    '42704', 'item 0 does not exist', 'update_fields on an unrecognized item is refused');

------------------------------------------------------------------------------
-- list_items
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q10_list') AS _ \gset
SELECT workqueue.add('q10_list', '{}', 3) AS la,
       workqueue.add('q10_list', '{}', 1) AS lb,
       workqueue.add('q10_list', '{}', 5) AS lc,
       workqueue.add('q10_list', '{}', 2) AS ld,
       workqueue.add('q10_list', '{}', 3) AS le,
       workqueue.add('q10_list', '{}', 1) AS lf,
       workqueue.add('q10_list', '{}', 4) AS lg \gset
-- inbox order: b f d a e g c

SELECT results_eq(
    $$SELECT id FROM workqueue.list_items('q10_list')$$,
    format('SELECT unnest(ARRAY[%s, %s, %s, %s, %s, %s, %s]::bigint[])', :lb, :lf, :ld, :la, :le, :lg, :lc),
    'list_items returns open items in inbox order: priority, then oldest');
SELECT results_eq(
    $$SELECT id FROM workqueue.list_items('q10_list', first => 3)$$,
    format('SELECT unnest(ARRAY[%s, %s, %s]::bigint[])', :lb, :lf, :ld), 'page 1');
SELECT results_eq(
    format($$SELECT id FROM workqueue.list_items('q10_list', first => 3, after => %s)$$, :ld),
    format('SELECT unnest(ARRAY[%s, %s, %s]::bigint[])', :la, :le, :lg), 'page 2 starts after the last id of page 1');
SELECT results_eq(
    format($$SELECT id FROM workqueue.list_items('q10_list', first => 3, after => %s)$$, :lg),
    format('SELECT unnest(ARRAY[%s]::bigint[])', :lc), 'page 3 holds the rest');
SELECT is_empty(
    format($$SELECT id FROM workqueue.list_items('q10_list', first => 3, after => %s)$$, :lc),
    'the page after the last item is empty');
SELECT results_eq(
    format($$WITH p1 AS (SELECT id FROM workqueue.list_items('q10_list', 'open', 3)),
                  p2 AS (SELECT id FROM workqueue.list_items('q10_list', 'open', 3, %s)),
                  p3 AS (SELECT id FROM workqueue.list_items('q10_list', 'open', 3, %s))
             SELECT count(*), count(DISTINCT id) FROM (TABLE p1 UNION ALL TABLE p2 UNION ALL TABLE p3) x$$,
           :ld, :lg),
    $$VALUES (7::bigint, 7::bigint)$$, 'three pages cover every item once: no duplicates, no gaps');

SET LOCAL workqueue.page_size = 2;
SELECT results_eq(
    $$SELECT id FROM workqueue.list_items('q10_list')$$,
    format('SELECT unnest(ARRAY[%s, %s]::bigint[])', :lb, :lf),
    'the page size defaults to the workqueue.page_size setting');
RESET workqueue.page_size;
SELECT is((SELECT count(*) FROM workqueue.list_items('q10_main', first => NULL)), 2::bigint,
    'first => NULL uses the default page size');

SELECT is((SELECT count(*) FROM workqueue.claim('q10_list', 2, 'w1')), 2::bigint, 'two items claimed');
SELECT results_eq(
    $$SELECT id FROM workqueue.list_items('q10_list', 'in_progress')$$,
    format('SELECT unnest(ARRAY[%s, %s]::bigint[])', :lb, :lf), 'list_items filters by status');
SELECT results_eq(
    $$SELECT id FROM workqueue.list_items('q10_list')$$,
    format('SELECT unnest(ARRAY[%s, %s, %s, %s, %s]::bigint[])', :ld, :la, :le, :lg, :lc),
    'claimed items leave the open list');
SELECT is_empty($$SELECT * FROM workqueue.list_items('q10_list', 'resolved')$$,
    'no resolved items yet');

SELECT throws_ok($$SELECT * FROM workqueue.list_items('q10_list', 'done')$$,
    '22023', 'unrecognized item status "done"', 'an unrecognized status is refused');
SELECT is((wqt.err($$SELECT * FROM workqueue.list_items('q10_list', 'done')$$)).hint,
    'Use one of: open, in_progress, resolved, rejected, closed.', 'the status error lists the statuses');
SELECT throws_ok(format($$SELECT * FROM workqueue.list_items('q10_list', after => %s)$$, :item1),
    '22023', format('item %s is not in queue "q10_list"', :item1), 'an "after" item of another queue is refused');
SELECT throws_ok($$SELECT * FROM workqueue.list_items('q10_list', first => 0)$$,
    '22023', 'page size 0 is out of range', 'a page size of 0 is refused');
SELECT throws_ok($$SELECT * FROM workqueue.list_items('nope')$$,
    '42704', 'queue "nope" does not exist', 'listing an unrecognized queue is refused');

------------------------------------------------------------------------------
-- get_items, get_items_by_external
------------------------------------------------------------------------------

SELECT results_eq(
    format('SELECT id FROM workqueue.get_items(ARRAY[%s, 0, %s, %s]::bigint[])', :lc, :la, :item1),
    format('SELECT unnest(ARRAY[%s, %s, %s]::bigint[])', :lc, :la, :item1),
    'get_items keeps the input order and skips ids that do not exist');
SELECT is_empty($$SELECT * FROM workqueue.get_items('{}')$$, 'get_items of no ids is empty');
SELECT workqueue.add('q10_main', '{}', 3, 'EXT-2') AS item3 \gset
SELECT results_eq(
    $$SELECT id FROM workqueue.get_items_by_external('q10_main', ARRAY['EXT-2', 'missing', 'EXT-1'])$$,
    format('SELECT unnest(ARRAY[%s, %s]::bigint[])', :item3, :item1),
    'get_items_by_external keeps the input order and skips unknown external ids');
SELECT results_eq(
    $$SELECT queue FROM workqueue.get_items_by_external('q10_other', ARRAY['EXT-1'])$$,
    $$VALUES ('q10_other'::text)$$, 'get_items_by_external looks only in the given queue');
SELECT throws_ok($$SELECT * FROM workqueue.get_items_by_external('nope', ARRAY['EXT-1'])$$,
    '42704', 'queue "nope" does not exist', 'get_items_by_external on an unrecognized queue is refused');

------------------------------------------------------------------------------
-- history
------------------------------------------------------------------------------

SELECT workqueue.add('q10_rel', '{}', 1) AS hi \gset
SELECT is((SELECT count(*) FROM workqueue.claim('q10_rel', 1, 'h1')), 1::bigint, 'claimed for history');
SELECT ok(workqueue.comment(:hi, 'note') > 0, 'commented for history');
SELECT is((SELECT step FROM workqueue.update_fields(:hi, '{"a": 1}')), 'review', 'fields updated for history');
SELECT is((SELECT status FROM workqueue.release(:hi, 'h1')), 'open', 'released for history');
SELECT results_eq(
    format('SELECT kind FROM workqueue.history(%s)', :hi),
    $$VALUES ('released'::text), ('field_update'), ('comment'), ('claimed'), ('created')$$,
    'history lists the item''s events newest first');
SELECT ok((SELECT bool_and(item_id = :hi) FROM workqueue.history(:hi)), 'history shows only that item''s events');
SELECT throws_ok('SELECT * FROM workqueue.history(0)',
    '42704', 'item 0 does not exist', 'history of an unrecognized item is refused');

------------------------------------------------------------------------------
-- privileges: ordinary roles read everything and write only through the API
------------------------------------------------------------------------------

SET ROLE wq10_pat;
SELECT lives_ok($$SELECT count(*) FROM workqueue.item$$, 'a plain role can read workqueue.item');
SELECT lives_ok($$SELECT count(*) FROM workqueue.item_event$$, 'a plain role can read workqueue.item_event');
SELECT workqueue.add('q10_main', '{"by": "pat"}') AS pat_item \gset
SELECT is((SELECT actor FROM workqueue.item_event WHERE item_id = :pat_item AND kind = 'created'), 'wq10_pat',
    'a plain role can add; the created event names it');
SELECT is((SELECT claimed_by FROM workqueue.claim('q10_main', 1)), 'wq10_pat', 'a plain role can claim');
SELECT throws_ok(format($$UPDATE workqueue.item_event SET actor = 'forged' WHERE item_id = %s$$, :pat_item),
    '42501', 'permission denied for table item_event', 'a plain role cannot update audit events');
SELECT throws_ok(format($$DELETE FROM workqueue.item_event WHERE item_id = %s$$, :pat_item),
    '42501', 'permission denied for table item_event', 'a plain role cannot delete audit events');
SELECT throws_ok($$INSERT INTO workqueue.item_event (queue, item_id, actor, kind) VALUES ('q10_main', 1, 'x', 'comment')$$,
    '42501', 'permission denied for table item_event', 'a plain role cannot insert audit events');
SELECT throws_ok($$INSERT INTO workqueue.item (queue, step, workflow, workflow_version) VALUES ('q10_main', 'review', 'review', 1)$$,
    '42501', 'permission denied for table item', 'a plain role cannot insert items directly');
SELECT throws_ok(format($$UPDATE workqueue.item SET step = 'resolved' WHERE id = %s$$, :pat_item),
    '42501', 'permission denied for table item', 'a plain role cannot update items directly');
SELECT throws_ok(format($$DELETE FROM workqueue.item WHERE id = %s$$, :pat_item),
    '42501', 'permission denied for table item', 'a plain role cannot delete items');
SELECT throws_ok($$UPDATE workqueue.queue SET lease_timeout = '1 day'$$,
    '42501', 'permission denied for table queue', 'a plain role cannot change queues directly');
SELECT throws_ok(format($$SELECT workqueue._event('q10_main', %s, 'x', 'comment', NULL, NULL)$$, :pat_item),
    '42501', 'permission denied for function _event', 'a plain role cannot write events through the internal helper');
SELECT throws_ok($$SELECT workqueue.create_queue('q10_pat')$$,
    '42501', 'permission denied to create queues', 'a plain role cannot create queues');
SELECT results_eq(
    $$SELECT detail, hint FROM wqt.err('SELECT workqueue.create_queue(''q10_pat'')')$$,
    $$VALUES ('Role "wq10_pat" is not a workqueue administrator.'::text,
              'Ask an administrator to run: GRANT workqueue_admin TO wq10_pat;'::text)$$,
    'the refusal says who is refused and hints at granting workqueue_admin');
SELECT throws_ok($$SELECT workqueue.define_workflow('q10_wf', '{"steps": [{"name": "a", "start": true}]}')$$,
    '42501', 'permission denied to define workflows', 'a plain role cannot define workflows');
SELECT alike((wqt.err($$SELECT workqueue.define_workflow('q10_wf', '{"steps": [{"name": "a", "start": true}]}')$$)).hint,
    '%GRANT workqueue_admin TO wq10_pat%', 'the define_workflow refusal hints at workqueue_admin');
SELECT throws_ok($$SELECT workqueue.add_member('q10_role', 'wq10_pat')$$,
    '42501', 'permission denied to manage role members', 'a plain role cannot add members');
SELECT alike((wqt.err($$SELECT workqueue.add_member('q10_role', 'wq10_pat')$$)).hint,
    '%GRANT workqueue_admin TO wq10_pat%', 'the add_member refusal hints at workqueue_admin');
SELECT throws_ok($$SELECT workqueue.remove_member('q10_role', 'wq10_pat')$$,
    '42501', 'permission denied to manage role members', 'a plain role cannot remove members');
SELECT ok(NOT workqueue.is_admin(), 'a plain role is not a workqueue administrator');
RESET ROLE;
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :pat_item AND actor = 'forged'), 0::bigint,
    'the audit trail is untouched');
SELECT is((SELECT count(*) FROM workqueue.queue WHERE name = 'q10_pat'), 0::bigint, 'no queue was created');

SET ROLE wq10_adam;
SELECT ok(workqueue.is_admin(), 'a member of workqueue_admin is a workqueue administrator');
SELECT lives_ok($$SELECT workqueue.create_queue('q10_adam')$$, 'a member of workqueue_admin can create queues');
SELECT is((SELECT created_by FROM workqueue.queue WHERE name = 'q10_adam'), 'wq10_adam',
    'the queue records who created it');
SELECT is(workqueue.define_workflow('q10_wf', '{"steps": [{"name": "a", "start": true}]}'), 1,
    'a member of workqueue_admin can define workflows');
SELECT lives_ok($$SELECT workqueue.add_member('q10_role', 'wq10_pat')$$, 'a member of workqueue_admin can add members');
SELECT lives_ok($$SELECT workqueue.remove_member('q10_role', 'wq10_pat')$$, 'a member of workqueue_admin can remove members');
SELECT throws_ok(format($$UPDATE workqueue.item_event SET actor = 'forged' WHERE item_id = %s$$, :pat_item),
    '42501', 'permission denied for table item_event', 'even an administrator cannot rewrite audit events');
SELECT throws_ok(format($$DELETE FROM workqueue.item_event WHERE item_id = %s$$, :pat_item),
    '42501', 'permission denied for table item_event', 'even an administrator cannot delete audit events');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
