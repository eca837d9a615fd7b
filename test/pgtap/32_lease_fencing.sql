-- Fencing that lasts (issue 12): a worker whose lease on an item ran out is
-- refused by every call that checks the holder -- transition,
-- transition_many, allowed_transitions, release, extend_lease -- until it
-- claims the item again, whatever the worker's sweep, other claims and
-- releases, other actors' moves and an upstream close did in between (the
-- fence does not apply while the item is resolved or rejected).  claim() takes
-- items whose lease ran out itself, in inbox order, writing "lease_expired"
-- before "claimed", and no longer sweeps the queue.  doc/workflows.md,
-- "Moving items"; doc/queue.md, "Claims and leases".
--
-- Leases run out by setting lease_until in the past.  Every actor is a LOGIN
-- role entered with SET ROLE.  Runs in one transaction that is rolled back.
BEGIN;
SELECT plan(119);

CREATE ROLE wq32_alice LOGIN;
CREATE ROLE wq32_bob LOGIN;
CREATE ROLE wq32_adam LOGIN;    -- workqueue administrator
GRANT workqueue_admin TO wq32_adam;

-- two working steps without a role (so that only the lease decides), two
-- terminal ones and a way back
SELECT is(workqueue.define_workflow('wq32_flow', $${"steps": [
    {"name": "a", "start": true},
    {"name": "b"},
    {"name": "done", "kind": "resolved"},
    {"name": "dropped", "kind": "rejected"}],
  "transitions": [
    {"name": "next",   "from": "a", "to": "b"},
    {"name": "back",   "from": "b", "to": "a"},
    {"name": "finish", "from": ["a", "b"], "to": "done"},
    {"name": "drop",   "from": ["a", "b"], "to": "dropped"},
    {"name": "reopen", "from": ["done", "dropped"], "to": "a", "reopen": true}]}$$), 1, 'workflow wq32_flow');

-- pg_temp.outcome(sql): "SQLSTATE message" of the error sql raises, or "ok"
CREATE FUNCTION pg_temp.outcome(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(e.state || ' ' || e.msg, 'ok') FROM wqt.err(sql) e
$$;
-- pg_temp.holder_calls(item): what each call that checks the holder does
-- for the current role on the item (a transition from step "a" or "b"),
-- and the transitions allowed_transitions offers it
CREATE FUNCTION pg_temp.holder_calls(item bigint) RETURNS TABLE (call text, outcome text) LANGUAGE sql AS $$
    SELECT 'transition', pg_temp.outcome(format($q$SELECT workqueue.transition(%s, 'drop')$q$, item))
    UNION ALL
    SELECT 'transition_many', pg_temp.outcome(format($q$SELECT workqueue.transition_many(ARRAY[%s], 'drop')$q$, item))
    UNION ALL
    SELECT 'release', pg_temp.outcome(format($q$SELECT workqueue.release(%s)$q$, item))
    UNION ALL
    SELECT 'extend_lease', pg_temp.outcome(format($q$SELECT workqueue.extend_lease(%s, '1 minute')$q$, item))
    UNION ALL
    SELECT 'allowed_transitions', coalesce((SELECT string_agg(t, ',') FROM workqueue.allowed_transitions(item) t), '')
$$;
-- pg_temp.error(sql): SQLSTATE, message, detail and hint of the error sql raises
CREATE FUNCTION pg_temp.error(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' / ', e.state, e.msg, e.detail, e.hint) FROM wqt.err(sql) e
$$;
-- pg_temp.fenced(item, worker): the four refusals and the empty list
CREATE FUNCTION pg_temp.fenced(item bigint, worker text) RETURNS TABLE (call text, outcome text) LANGUAGE sql AS $$
    SELECT c, format('55000 lease of "%s" on item %s has expired', worker, item)
      FROM unnest(ARRAY['transition', 'transition_many', 'release', 'extend_lease']) c
    UNION ALL
    SELECT 'allowed_transitions', ''
$$;
-- pg_temp.state(item): what a refusal must leave as it was
CREATE FUNCTION pg_temp.state(item bigint) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s %s %s %s events=%s', i.step, i.status, coalesce(i.claimed_by, '-'), coalesce(i.lease_until::text, '-'),
                  (SELECT count(*) FROM workqueue.item_event e WHERE e.queue = i.queue AND e.item_id = i.id))
      FROM workqueue.item i WHERE i.id = item
$$;

------------------------------------------------------------------------------
-- after the worker's sweep
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_sweep', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_sweep') AS s1 \gset
SET ROLE wq32_alice;
SELECT is((SELECT id FROM workqueue.claim('q32_sweep')), :s1::bigint, 'alice claims an item');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :s1;
SELECT lease_until AS s1_end FROM workqueue.item WHERE id = :s1 \gset
SELECT is(workqueue._expire_all_leases(), 1, 'her lease runs out and the worker''s sweep returns the item');
SELECT results_eq(format('SELECT status, claimed_by, lease_until FROM workqueue.item WHERE id = %s', :s1),
    $$VALUES ('open'::text, NULL::text, NULL::timestamptz)$$, 'the item is open, claimed by nobody');
SELECT results_eq(format('SELECT worker, lease_until FROM workqueue.lease_fence WHERE item_id = %s', :s1),
    format($$VALUES ('wq32_alice'::text, %L::timestamptz)$$, :'s1_end'),
    'the sweep fenced alice off the item, with the end of her lease');
SELECT pg_temp.state(:s1) AS s1_state \gset
SET ROLE wq32_alice;
SELECT results_eq(format('SELECT * FROM pg_temp.holder_calls(%s)', :s1),
    format($$SELECT * FROM pg_temp.fenced(%s, 'wq32_alice')$$, :s1),
    'after the sweep alice is refused by transition, transition_many, release and extend_lease, and offered nothing');
SELECT is(pg_temp.error(format($$SELECT workqueue.transition(%s, 'next')$$, :s1)),
    format('55000 / lease of "wq32_alice" on item %s has expired / The lease ended at %s. / '
           'Claim the item again with workqueue.claim(); extend leases before they run out.', :s1, :'s1_end'::timestamptz),
    'the refusal gives the end of her lease and says to claim again');
SELECT is(pg_temp.error(format($$SELECT workqueue.release(%s)$$, :s1)),
    pg_temp.error(format($$SELECT workqueue.transition(%s, 'next')$$, :s1)), 'release refuses with the same words');
RESET ROLE;
SELECT is(pg_temp.state(:s1), :'s1_state', 'the refusals changed nothing and wrote no event');
SET ROLE wq32_bob;
SELECT is(pg_temp.outcome(format('SELECT workqueue.release(%s)', :s1)), format('55000 item %s is not claimed', :s1),
    'someone else keeps today''s rights on the open item: nothing to release ...');
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :s1),
    $$VALUES ('next'::text), ('finish'), ('drop')$$, '... every transition offered');
RESET ROLE;

------------------------------------------------------------------------------
-- after another worker's claim and release; claiming again lifts the fence
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_hand', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_hand') AS h1 \gset
SET ROLE wq32_alice;
SELECT is((SELECT id FROM workqueue.claim('q32_hand')), :h1::bigint, 'alice claims an item');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :h1;
SET ROLE wq32_bob;
SELECT is((SELECT id FROM workqueue.claim('q32_hand')), :h1::bigint, 'her lease runs out and bob claims the item');
SET ROLE wq32_alice;
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition(%s, 'next')$$, :h1)),
    format('55P03 item %s is claimed by "wq32_bob"', :h1), 'while bob holds it, alice is told who does');
SET ROLE wq32_bob;
SELECT is((SELECT status FROM workqueue.release(:h1)), 'open', 'bob releases it');
SET ROLE wq32_alice;
SELECT results_eq(format('SELECT * FROM pg_temp.holder_calls(%s)', :h1),
    format($$SELECT * FROM pg_temp.fenced(%s, 'wq32_alice')$$, :h1),
    'after bob''s claim and release alice is still refused by every call');
SELECT is((SELECT id FROM workqueue.claim('q32_hand')), :h1::bigint, 'alice claims the item again');
SELECT is_empty(format('SELECT 1 FROM workqueue.lease_fence WHERE item_id = %s', :h1), 'her claim ends her fence');
SELECT ok((SELECT lease_until > now() FROM workqueue.extend_lease(:h1, '1 minute')), 'alice may extend her new lease');
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :h1),
    $$VALUES ('next'::text), ('finish'), ('drop')$$, 'and is offered every transition');
SELECT results_eq(format($$SELECT step, status, claimed_by FROM workqueue.transition(%s, 'next')$$, :h1),
    $$VALUES ('b'::text, 'open'::text, NULL::text)$$, 'and moves the item');
RESET ROLE;
SELECT results_eq(format($$SELECT kind, actor FROM workqueue.item_event WHERE item_id = %s
                            AND kind IN ('claimed', 'lease_expired', 'released', 'transition') ORDER BY id$$, :h1),
    $$VALUES ('claimed'::text, 'wq32_alice'::text), ('lease_expired', 'workqueue'), ('claimed', 'wq32_bob'),
             ('released', 'wq32_bob'), ('claimed', 'wq32_alice'), ('transition', 'wq32_alice')$$,
    'the audit trail has every claim, the expiry, the release and the move');

------------------------------------------------------------------------------
-- claim takes an item whose lease ran out itself, in inbox order
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_direct', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_direct', '{}', 2) AS e1 \gset
SELECT workqueue.add('q32_direct', '{}', 2) AS e2 \gset
SELECT workqueue.add('q32_direct', '{}', 3) AS o1 \gset
SELECT results_eq($$SELECT id FROM workqueue.claim('q32_direct', 2, 'wq32_alice')$$,
    format('VALUES (%s::bigint), (%s)', :e1, :e2), 'alice claims the two priority-2 items');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id IN (:e1, :e2);
SELECT lease_until AS e1_end FROM workqueue.item WHERE id = :e1 \gset
SELECT max(id) AS before_claim FROM workqueue.item_event \gset
SET ROLE wq32_bob;
SELECT results_eq($$SELECT id, status, claimed_by FROM workqueue.claim('q32_direct')$$,
    format($$VALUES (%s::bigint, 'in_progress'::text, 'wq32_bob'::text)$$, :e1),
    'bob''s claim takes the expired priority-2 item before the open priority-3 one, without a sweep');
RESET ROLE;
SELECT results_eq(format($$SELECT item_id, kind, actor, payload FROM workqueue.item_event WHERE id > %s ORDER BY id$$, :before_claim),
    format($$VALUES (%s::bigint, 'lease_expired'::text, 'workqueue'::text,
                     jsonb_build_object('claimed_by', 'wq32_alice', 'lease_until', %L::timestamptz)),
                    (%s, 'claimed', 'wq32_bob',
                     jsonb_build_object('lease_until', (SELECT lease_until FROM workqueue.item WHERE id = %s)))$$,
           :e1, :'e1_end', :e1, :e1),
    'it writes "lease_expired" (the old holder and lease, actor workqueue), then "claimed", and nothing else');
SELECT results_eq(format('SELECT status, claimed_by FROM workqueue.item WHERE id = %s', :e2),
    $$VALUES ('in_progress'::text, 'wq32_alice'::text)$$,
    'the other expired item is left to the sweep (claim no longer sweeps the queue)');
SELECT results_eq(format('SELECT item_id, worker FROM workqueue.lease_fence WHERE queue = %L ORDER BY item_id', 'q32_direct'),
    format($$VALUES (%s::bigint, 'wq32_alice'::text)$$, :e1), 'the claim fenced alice off the item it took');
SET ROLE wq32_alice;
SELECT is(pg_temp.outcome(format($$SELECT workqueue.extend_lease(%s, '1 minute')$$, :e2)),
    format('55000 lease of "wq32_alice" on item %s has expired', :e2),
    'alice is refused on the expired item nobody took either');
SET ROLE wq32_bob;
SELECT results_eq($$SELECT id FROM workqueue.claim('q32_direct', 5)$$,
    format('VALUES (%s::bigint), (%s)', :e2, :o1), 'a claim of 5 takes the expired item and the open one, in inbox order');
RESET ROLE;
SELECT results_eq(format($$SELECT item_id, kind FROM workqueue.item_event WHERE item_id IN (%s, %s) AND kind IN ('lease_expired', 'claimed')
                            ORDER BY id DESC LIMIT 3$$, :e2, :o1),
    format($$VALUES (%s::bigint, 'claimed'::text), (%s, 'claimed'), (%s, 'lease_expired')$$, :o1, :e2, :e2),
    'only the expired item gets a "lease_expired" event, just before its "claimed"');

-- the old holder may claim its own expired item: no fence, the expiry recorded
SELECT workqueue.create_queue('q32_self', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_self') AS m1 \gset
SET ROLE wq32_alice;
SELECT is((SELECT id FROM workqueue.claim('q32_self')), :m1::bigint, 'alice claims an item');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :m1;
SET ROLE wq32_alice;
SELECT results_eq($$SELECT id, claimed_by, lease_until > now() FROM workqueue.claim('q32_self')$$,
    format($$VALUES (%s::bigint, 'wq32_alice'::text, true)$$, :m1), 'her lease runs out and she claims the item again');
SELECT is((SELECT step FROM workqueue.transition(:m1, 'next')), 'b', 'and may move it');
RESET ROLE;
SELECT results_eq(format($$SELECT kind, actor, payload->>'claimed_by' FROM workqueue.item_event WHERE item_id = %s
                            AND kind IN ('claimed', 'lease_expired') ORDER BY id$$, :m1),
    $$VALUES ('claimed'::text, 'wq32_alice'::text, NULL::text), ('lease_expired', 'workqueue', 'wq32_alice'),
             ('claimed', 'wq32_alice', NULL)$$, 'the expiry is still recorded between her two claims');
SELECT is_empty(format('SELECT 1 FROM workqueue.lease_fence WHERE item_id = %s', :m1), 'and she is not fenced');

-- a claim that takes both kinds at once ends the claimer's fence and fences the other holder
SELECT workqueue.create_queue('q32_both', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_both') AS f1, workqueue.add('q32_both') AS f2 \gset
SELECT is((SELECT id FROM workqueue.claim('q32_both', 1, 'wq32_bob')), :f1::bigint, 'bob claims an item');
SELECT is((SELECT id FROM workqueue.claim('q32_both', 1, 'wq32_alice')), :f2::bigint, 'alice claims the other');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :f2;
SELECT is(workqueue._expire_all_leases(), 1, 'her lease runs out and the sweep returns her item, fencing her');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :f1;
SET ROLE wq32_alice;
SELECT results_eq($$SELECT id, claimed_by FROM workqueue.claim('q32_both', 2)$$,
    format($$VALUES (%s::bigint, 'wq32_alice'::text), (%s, 'wq32_alice')$$, :f1, :f2),
    'bob''s lease runs out too; alice''s claim of 2 takes his expired item and the open one');
RESET ROLE;
SELECT results_eq(format('SELECT item_id, worker FROM workqueue.lease_fence WHERE queue = %L', 'q32_both'),
    format($$VALUES (%s::bigint, 'wq32_bob'::text)$$, :f1), 'her fence on the open item ended, bob is fenced off his');

-- claim's scope filter holds for expired items too
SELECT workqueue.create_queue('q32_scope', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_scope') AS sc1 \gset
SELECT is(workqueue.set_scope(ARRAY[:sc1::bigint], '{s32}'), 1, 'an item is put in a scope bob has no grant for');
SELECT is((SELECT id FROM workqueue.claim('q32_scope', 1, 'wq32_alice')), :sc1::bigint, 'alice''s claim (by an administrator)');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :sc1;
SET ROLE wq32_bob;
SELECT is_empty($$SELECT * FROM workqueue.claim('q32_scope')$$, 'bob''s claim does not take the expired item outside his scopes');
RESET ROLE;
SELECT results_eq(format('SELECT status, claimed_by FROM workqueue.item WHERE id = %s', :sc1),
    $$VALUES ('in_progress'::text, 'wq32_alice'::text)$$, 'and leaves it as it was');
SELECT is(workqueue._expire_all_leases(), 1, 'the worker''s sweep returns it');
SELECT is((SELECT count(*) FROM workqueue.lease_fence WHERE item_id = :sc1), 1::bigint, 'and fences alice off it');
SET ROLE wq32_bob;
SELECT is_empty(format('SELECT * FROM workqueue.lease_fence WHERE item_id = %s', :sc1),
    'a fence is read through row-level security, like its item');
RESET ROLE;

------------------------------------------------------------------------------
-- other actors' moves keep the fence; it does not apply at a terminal step
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_move', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_move') AS v1, workqueue.add('q32_move') AS v2 \gset
SELECT is((SELECT id FROM workqueue.claim('q32_move', 1, 'wq32_alice')), :v1::bigint, 'alice claims an item');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :v1;
SET ROLE wq32_bob;
SELECT is((SELECT step FROM workqueue.transition(:v1, 'next')), 'b',
    'her lease runs out; bob moves the item on before any sweep, as he may');
SET ROLE wq32_alice;
SELECT results_eq(format('SELECT * FROM pg_temp.holder_calls(%s)', :v1),
    format($$SELECT * FROM pg_temp.fenced(%s, 'wq32_alice')$$, :v1),
    'alice is fenced off the item bob moved on');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition_many(ARRAY[%s, %s], 'drop')$$, :v2, :v1)),
    format('55000 lease of "wq32_alice" on item %s has expired', :v1),
    'transition_many refuses a batch of an item she may move and the fenced one');
RESET ROLE;
SELECT results_eq(format('SELECT id, step, status FROM workqueue.item WHERE id IN (%s, %s) ORDER BY id', :v1, :v2),
    format($$VALUES (%s::bigint, 'b'::text, 'open'::text), (%s, 'a', 'open')$$, :v1, :v2),
    'nothing of the batch moved');
SET ROLE wq32_bob;
SELECT is((SELECT status FROM workqueue.transition(:v1, 'finish')), 'resolved', 'bob resolves the item');
SET ROLE wq32_alice;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :v1), $$VALUES ('reopen'::text)$$,
    'a resolved item fences nobody: alice is offered reopen, as anyone is');
SELECT results_eq(format($$SELECT step, status FROM workqueue.transition(%s, 'reopen')$$, :v1),
    $$VALUES ('a'::text, 'open'::text)$$, 'and reopens it');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition(%s, 'next')$$, :v1)),
    format('55000 lease of "wq32_alice" on item %s has expired', :v1),
    'back at a working step, her fence applies again');
SELECT is((SELECT id FROM workqueue.claim('q32_move')), :v1::bigint, 'she claims the item');
SELECT is((SELECT step FROM workqueue.transition(:v1, 'next')), 'b', 'and may move it');
RESET ROLE;

------------------------------------------------------------------------------
-- administrators; an upstream close and reopen
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_admin', 'wq32_flow') AS _ \gset
SELECT workqueue.create_queue('q32_admin2', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_admin') AS d1, workqueue.add('q32_admin2') AS d2 \gset
SELECT is((SELECT id FROM workqueue.claim('q32_admin', 1, 'wq32_alice')), :d1::bigint, 'alice claims an item');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :d1;
SET ROLE wq32_adam;
SELECT is((SELECT status FROM workqueue.release(:d1)), 'open', 'her lease runs out; an administrator releases her claim');
SET ROLE wq32_alice;
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition(%s, 'next')$$, :d1)),
    format('55000 lease of "wq32_alice" on item %s has expired', :d1), 'alice is fenced all the same');
SET ROLE wq32_adam;
SELECT is((SELECT id FROM workqueue.claim('q32_admin2')), :d2::bigint, 'the administrator claims an item');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :d2;
SELECT is(workqueue._expire_all_leases(), 1, 'his lease runs out and the sweep returns the item');
SET ROLE wq32_adam;
SELECT is((SELECT step FROM workqueue.transition(:d2, 'next')), 'b', 'an administrator acting as itself is not fenced');
RESET ROLE;

SELECT workqueue.create_queue('q32_sync', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_sync', '{}', 3, 'X-1') AS u1 \gset
UPDATE workqueue.item SET source = 's32' WHERE id = :u1;
SELECT is((SELECT id FROM workqueue.claim('q32_sync', 1, 'wq32_alice')), :u1::bigint, 'alice claims a synced item');
UPDATE workqueue.item SET lease_until = now() - interval '5 seconds' WHERE id = :u1;
SELECT is(workqueue._close_unlisted('q32_sync', 's32', '{}'), 1, 'her lease runs out and the source no longer lists the item');
SELECT results_eq(format('SELECT status, worker FROM workqueue.item JOIN workqueue.lease_fence ON item_id = id WHERE id = %s', :u1),
    $$VALUES ('closed'::text, 'wq32_alice'::text)$$, 'closing it ended her claim and fenced her');
SELECT is(workqueue._reopen_listed('q32_sync', 's32', '{X-1}'), 1, 'then lists it again');
SELECT results_eq(format('SELECT status, claimed_by FROM workqueue.item WHERE id = %s', :u1),
    $$VALUES ('open'::text, NULL::text)$$, 'the item is open again');
SET ROLE wq32_alice;
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition(%s, 'next')$$, :u1)),
    format('55000 lease of "wq32_alice" on item %s has expired', :u1), 'alice is still fenced off it');
RESET ROLE;

------------------------------------------------------------------------------
-- bad input still errors cleanly, and changes nothing
------------------------------------------------------------------------------

SELECT pg_temp.state(:s1) AS s1_state \gset
SET ROLE wq32_alice;
SELECT is(pg_temp.outcome($$SELECT workqueue.claim('q32_sweep', 0)$$), '22023 cannot claim 0 items at once', 'claim: n of 0');
SELECT is(pg_temp.outcome($$SELECT workqueue.claim(NULL)$$), '22004 queue name must not be null', 'claim: NULL queue');
SELECT is(pg_temp.outcome($$SELECT workqueue.claim('q32_sweep', 1, '')$$), '22004 worker must not be empty', 'claim: empty worker');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.extend_lease(%s, '0 seconds')$$, :s1)),
    '22023 lease extension must be positive', 'extend_lease: a bad extension is named before the fence');
SELECT is(pg_temp.outcome($$SELECT workqueue.release(NULL)$$), '22004 item id must not be null', 'release: NULL item');
SELECT is(pg_temp.outcome($$SELECT workqueue.transition(NULL, 'next')$$), '22004 item id must not be null', 'transition: NULL item');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition_many(ARRAY[%s, NULL], 'next')$$, :s1)),
    '22004 item array must not contain nulls', 'transition_many: a NULL element');
SELECT is(pg_temp.outcome($$SELECT workqueue.transition(-1, 'next')$$), '42704 item -1 does not exist', 'transition: no such item');
RESET ROLE;
SELECT is(pg_temp.state(:s1), :'s1_state', 'the bad calls changed nothing');
SELECT results_eq(format('SELECT worker FROM workqueue.lease_fence WHERE item_id = %s', :s1),
    $$VALUES ('wq32_alice'::text)$$, 'and alice''s fence is still there');

------------------------------------------------------------------------------
-- leases are bounded per queue (issue 13.6): max_lease
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_max', 'wq32_flow') AS _ \gset
SELECT workqueue.create_queue('q32_max_long', 'wq32_flow', lease_timeout => '2 days') AS _ \gset
SELECT results_eq($$SELECT name, lease_timeout, max_lease FROM workqueue.queue WHERE name LIKE 'q32_max%' ORDER BY name$$,
    $$VALUES ('q32_max'::text, interval '15 minutes', interval '1 day'), ('q32_max_long', '2 days', '2 days')$$,
    'a queue''s maximum lease is a day, or its lease timeout if that is longer');
SELECT workqueue.add('q32_max') AS m1 \gset
SELECT is((SELECT id FROM workqueue.claim('q32_max', 1, 'wq32_alice')), :m1::bigint, 'alice claims an item');
SET ROLE wq32_alice;
SELECT ok((SELECT lease_until BETWEEN now() + interval '23 hours' AND now() + interval '1 day'
             FROM workqueue.extend_lease(:m1, '23 hours')), 'she extends her lease to nearly the maximum');
SELECT pg_temp.state(:m1) AS m1_state \gset
SELECT is(pg_temp.outcome(format($$SELECT workqueue.extend_lease(%s, '2 hours')$$, :m1)),
    format('22023 lease on item %s cannot run longer than the maximum lease of queue "q32_max"', :m1),
    'an extension beyond now() + max_lease is refused');
SELECT matches((wqt.err(format($$SELECT workqueue.extend_lease(%s, '2 hours')$$, :m1))).detail,
    '^The maximum lease is 1 day, so it may run until .*; extending by 02:00:00 asks for .*\.$',
    'the detail names the maximum, the latest end and the end asked for');
SELECT is((wqt.err(format($$SELECT workqueue.extend_lease(%s, '2 hours')$$, :m1))).hint,
    'Extend by less, and again before the lease runs out; an administrator can raise the maximum with '
    'workqueue.alter_queue(queue, ''{"max_lease": "2 days"}'').', 'the hint says what to do');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.extend_lease(%s, '1000 years')$$, :m1)),
    format('22023 lease on item %s cannot run longer than the maximum lease of queue "q32_max"', :m1),
    'a thousand years is refused the same way');
SET ROLE wq32_adam;
SELECT is(pg_temp.outcome(format($$SELECT workqueue.extend_lease(%s, '2 hours')$$, :m1)),
    format('22023 lease on item %s cannot run longer than the maximum lease of queue "q32_max"', :m1),
    'an administrator is bounded too');
RESET ROLE;
SELECT is(pg_temp.state(:m1), :'m1_state', 'the refused extensions changed nothing and wrote no event');

-- alter_queue sets and checks max_lease
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": "-1 hour"}')$$),
    '22023 max_lease must be a positive interval', 'max_lease: negative');
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": "0 seconds"}')$$),
    '22023 max_lease must be a positive interval', 'max_lease: zero');
SELECT is(pg_temp.error($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": "soon"}')$$),
    '22023 / max_lease must be a positive interval / The value given is "soon". / Pass e.g. {"max_lease": "30 minutes"}.',
    'max_lease: garbage, with the value and an example');
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": 3600}')$$),
    '22023 max_lease must be a positive interval', 'max_lease: a number');
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": null}')$$),
    '22023 max_lease must be a positive interval', 'max_lease: null');
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": "2 years"}')$$),
    '22023 max_lease must be at most 1 year', 'max_lease: beyond a year');
SELECT is(pg_temp.error($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": "10 minutes"}')$$),
    '22023 / lease_timeout must not be longer than max_lease / Queue "q32_max" would have lease_timeout 00:15:00 '
    'and max_lease 00:10:00. / Lower lease_timeout, or raise max_lease in the same call.',
    'max_lease below the lease timeout is refused');
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"lease_timeout": "2 days"}')$$),
    '22023 lease_timeout must not be longer than max_lease', 'a lease timeout above max_lease is refused');
SELECT results_eq($$SELECT lease_timeout, max_lease FROM workqueue.queue WHERE name = 'q32_max'$$,
    $$VALUES (interval '15 minutes', interval '1 day')$$, 'the refused changes changed nothing');
SELECT results_eq($$SELECT lease_timeout, max_lease FROM workqueue.alter_queue('q32_max', '{"max_lease": "3 days", "lease_timeout": "2 days"}')$$,
    $$VALUES (interval '2 days', interval '3 days')$$, 'both in one call');
SELECT results_eq($$SELECT lease_timeout, max_lease FROM workqueue.alter_queue('q32_max', '{"lease_timeout": "5 minutes", "max_lease": "2 hours"}')$$,
    $$VALUES (interval '5 minutes', interval '2 hours')$$, 'lowered again');
SET ROLE wq32_alice;
SELECT is(pg_temp.outcome($$SELECT workqueue.alter_queue('q32_max', '{"max_lease": "1000 years"}')$$),
    '42501 permission denied to alter queues', 'a plain role cannot change it');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.extend_lease(%s, '1 minute')$$, :m1)),
    format('22023 lease on item %s cannot run longer than the maximum lease of queue "q32_max"', :m1),
    'a lease already beyond a lowered maximum cannot be extended');
RESET ROLE;
SELECT throws_ok($$UPDATE workqueue.queue SET max_lease = '1 minute' WHERE name = 'q32_max'$$, '23514', NULL,
    'the table refuses a maximum below the lease timeout too');

------------------------------------------------------------------------------
-- an administrator breaks any lease; the old holder is fenced
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q32_break', 'wq32_flow') AS _ \gset
SELECT workqueue.add('q32_break') AS r1 \gset
SELECT is((SELECT id FROM workqueue.claim('q32_break', 1, 'wq32_alice')), :r1::bigint, 'alice claims an item');
SELECT lease_until AS r1_lease FROM workqueue.item WHERE id = :r1 \gset
SET ROLE wq32_bob;
SELECT is(pg_temp.outcome(format('SELECT workqueue.release(%s)', :r1)), format('55P03 item %s is claimed by "wq32_alice"', :r1),
    'bob cannot release alice''s live claim');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.release(%s, 'wq32_alice')$$, :r1)),
    '42501 role "wq32_bob" cannot act as "wq32_alice"', 'nor release it in her name');
SET ROLE wq32_adam;
SELECT results_eq(format('SELECT status, claimed_by, lease_until FROM workqueue.release(%s)', :r1),
    $$VALUES ('open'::text, NULL::text, NULL::timestamptz)$$, 'an administrator breaks her live lease');
RESET ROLE;
SELECT results_eq(format($$SELECT actor, payload FROM workqueue.item_event WHERE item_id = %s AND kind = 'released'$$, :r1),
    format($$VALUES ('wq32_adam'::text, jsonb_build_object('claimed_by', 'wq32_alice', 'lease_until', %L::timestamptz))$$,
           :'r1_lease'),
    'the "released" event names the administrator and the former holder and lease');
SELECT ok((SELECT lease_until <= now() FROM workqueue.lease_fence WHERE item_id = :r1 AND worker = 'wq32_alice'),
    'alice is fenced, her lease ended now');
SET ROLE wq32_alice;
SELECT results_eq(format('SELECT call, outcome FROM pg_temp.holder_calls(%s)', :r1),
    format('SELECT call, outcome FROM pg_temp.fenced(%s, %L)', :r1, 'wq32_alice'),
    'alice is refused by transition, transition_many, release and extend_lease, and offered nothing');
SELECT is(pg_temp.outcome(format($$SELECT workqueue.transition(%s, 'finish')$$, :r1)),
    format('55000 lease of "wq32_alice" on item %s has expired', :r1), 'her completing the item is refused');
SELECT is((SELECT id FROM workqueue.claim('q32_break')), :r1::bigint, 'she claims it again');
SELECT is((SELECT status FROM workqueue.transition(:r1, 'finish')), 'resolved', 'and completes it');
RESET ROLE;
SELECT is_empty(format('SELECT * FROM workqueue.lease_fence WHERE item_id = %s', :r1), 'her fence is gone');

-- the holder's own release, and an agent's in its name, break nothing
SELECT workqueue.add('q32_break') AS r2 \gset
CREATE ROLE wq32_app LOGIN;
GRANT workqueue_agent TO wq32_app;
SELECT is((SELECT id FROM workqueue.claim('q32_break', 1, 'wq32_bob')), :r2::bigint, 'bob claims an item');
SET ROLE wq32_app;
SELECT is(pg_temp.outcome(format($$SELECT workqueue.release(%s, 'wq32_alice')$$, :r2)),
    format('55P03 item %s is claimed by "wq32_bob"', :r2), 'an agent cannot release it in someone else''s name');
SELECT is((SELECT status FROM workqueue.release(:r2, 'wq32_bob')), 'open', 'an agent releases it in bob''s name');
RESET ROLE;
SELECT results_eq(format($$SELECT actor, payload FROM workqueue.item_event WHERE item_id = %s AND kind = 'released'$$, :r2),
    $$VALUES ('wq32_bob'::text, '{}'::jsonb)$$, 'a release by the holder names nobody else');
SELECT is_empty(format('SELECT * FROM workqueue.lease_fence WHERE item_id = %s', :r2), 'and fences nobody');

SELECT * FROM finish();
ROLLBACK;
