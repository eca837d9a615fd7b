-- Assignment (SPEC §5): assignment_strategy, round robin and least loaded
-- over a role's active members, assignment on creation and on every
-- transition into a step with a role, keeping an assignee who is a member,
-- roles without members.  The concurrency of round robin is in
-- test/scripts/sla.sh.  Runs in one transaction that is rolled back.
BEGIN;
SELECT plan(30);

CREATE ROLE wq75_plain LOGIN;

SELECT workqueue.define_workflow('w75', $${"steps": [
    {"name": "intake", "role": "r75_desk", "start": true},
    {"name": "check",  "role": "r75_desk"},
    {"name": "fix",    "role": "r75_eng"},
    {"name": "loose"},
    {"name": "done", "kind": "resolved"}],
  "transitions": [
    {"name": "check", "from": "intake", "to": "check"},
    {"name": "fix",   "from": ["intake", "check"], "to": "fix"},
    {"name": "loose", "from": "fix", "to": "loose"},
    {"name": "back",  "from": "loose", "to": "fix"},
    {"name": "done",  "from": ["fix", "loose", "check"], "to": "done"}]}$$) AS _ \gset
SELECT workqueue.create_queue('q75', 'w75') AS _ \gset

------------------------------------------------------------------------------
-- assignment_strategy
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.assignment_strategy('r75_desk', 'random')$$,
    '22023', 'unrecognized assignment strategy "random"', 'an unknown strategy is refused');
SELECT throws_ok($$SELECT workqueue.assignment_strategy('r75_desk', NULL)$$,
    '22023', 'unrecognized assignment strategy "NULL"', 'a NULL strategy is refused');
SELECT throws_ok($$SELECT workqueue.assignment_strategy('', 'round_robin')$$,
    '22023', 'role must not be empty', 'an empty role is refused');
SELECT throws_ok($$SELECT workqueue.assignment_strategy(NULL, 'round_robin')$$,
    '22023', 'role must not be empty', 'a NULL role is refused');
SET ROLE wq75_plain;
SELECT throws_ok($$SELECT workqueue.assignment_strategy('r75_desk', 'least_loaded')$$,
    '42501', 'permission denied to set assignment strategies', 'a plain role cannot set strategies');
RESET ROLE;
SELECT is((SELECT count(*) FROM workqueue.role_assignment WHERE role LIKE 'r75%'), 0::bigint,
          'refused calls store nothing');

------------------------------------------------------------------------------
-- no members: no assignee
------------------------------------------------------------------------------

SELECT workqueue.add('q75') AS a0 \gset
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :a0), NULL, 'a role without members leaves the item unassigned');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :a0 AND kind = 'assigned'), 0::bigint,
          'and writes no assigned event');

------------------------------------------------------------------------------
-- round robin (the default)
------------------------------------------------------------------------------

SELECT workqueue.add_member('r75_desk', m) FROM unnest(ARRAY['dora', 'abe', 'cy']) m;
CREATE TEMP TABLE rr75 AS SELECT workqueue.add('q75', jsonb_build_object('n', n)) AS id, n FROM generate_series(1, 9) n;
SELECT results_eq($$SELECT string_agg(i.assignee, ',' ORDER BY r.n) FROM rr75 r JOIN workqueue.item i ON i.id = r.id$$,
    $$VALUES ('abe,cy,dora,abe,cy,dora,abe,cy,dora'::text)$$,
    'round robin: new members first, by name, then in turn');
SELECT results_eq($$SELECT payload FROM workqueue.item_event WHERE item_id = (SELECT id FROM rr75 WHERE n = 1) AND kind = 'assigned'$$,
    $$VALUES ('{"role": "r75_desk", "assignee": "abe", "strategy": "round_robin"}'::jsonb)$$,
    'the assigned event names the assignee, the role and the strategy');
SELECT results_eq($$SELECT member, assigned_count FROM workqueue.role_member WHERE role = 'r75_desk' ORDER BY member$$,
    $$VALUES ('abe'::text, 3::bigint), ('cy', 3), ('dora', 3)$$, 'each member got three');

SELECT workqueue.add_member('r75_desk', 'bo') AS _ \gset
SELECT workqueue.remove_member('r75_desk', 'cy') AS _ \gset
CREATE TEMP TABLE rr75b AS SELECT workqueue.add('q75') AS id, n FROM generate_series(1, 4) n;
SELECT results_eq($$SELECT string_agg(i.assignee, ',' ORDER BY r.n) FROM rr75b r JOIN workqueue.item i ON i.id = r.id$$,
    $$VALUES ('bo,abe,dora,bo'::text)$$,
    'a new member is next; a removed member gets nothing; the turn goes on where it was');

-- a batch transition assigns in turn too
SELECT lives_ok($$SELECT workqueue.transition_many(ARRAY(SELECT id FROM rr75), 'fix')$$, 'nine items into fix');
SELECT is((SELECT count(*) FROM workqueue.item WHERE id IN (SELECT id FROM rr75) AND assignee IS NULL), 9::bigint,
          'the fix role has no members: the items are unassigned');
SELECT workqueue.add_member('r75_eng', m) FROM unnest(ARRAY['eve', 'fay', 'gil']) m;
SELECT lives_ok($$SELECT workqueue.transition_many(ARRAY(SELECT id FROM rr75), 'loose')$$, 'into a step without a role');
SELECT lives_ok($$SELECT workqueue.transition_many(ARRAY(SELECT id FROM rr75), 'back')$$, 'and back into fix');
SELECT results_eq($$SELECT assignee, count(*) FROM workqueue.item WHERE id IN (SELECT id FROM rr75) GROUP BY 1 ORDER BY 1$$,
    $$VALUES ('eve'::text, 3::bigint), ('fay', 3), ('gil', 3)$$, 'a batch of nine is spread evenly over three members');

------------------------------------------------------------------------------
-- keeping the assignee
------------------------------------------------------------------------------

SELECT id AS k1 FROM rr75b WHERE n = 1 \gset
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :k1), 'bo', 'bo has the item at intake');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'check')$$, :k1), 'into another step of the same role');
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :k1), 'bo', 'a member of the next step''s role keeps the item');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :k1 AND kind = 'assigned'), 1::bigint,
          'no new assigned event');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'fix')$$, :k1), 'into the engineers'' step');
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :k1), 'eve', 'an assignee outside the role is replaced');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'done')$$, :k1), 'done');
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :k1), NULL, 'a terminal step has no assignee');

------------------------------------------------------------------------------
-- least loaded
------------------------------------------------------------------------------

SELECT lives_ok($$SELECT workqueue.assignment_strategy('r75_eng', 'least_loaded')$$, 'r75_eng: least_loaded');
-- open items now: eve 3 (+0: k1 is done), fay 3, gil 3; resolve two of fay's
SELECT lives_ok($$SELECT workqueue.transition_many(ARRAY(SELECT id FROM workqueue.item WHERE assignee = 'fay' AND queue = 'q75'
                                                     ORDER BY id LIMIT 2), 'done')$$, 'fay finishes two');
SELECT lives_ok($$SELECT workqueue.transition_many(ARRAY(SELECT id FROM rr75b WHERE n > 1 ORDER BY n), 'fix')$$,
    'three items into fix');
SELECT results_eq($$SELECT i.assignee FROM rr75b r JOIN workqueue.item i ON i.id = r.id WHERE r.n > 1 ORDER BY r.n$$,
    $$VALUES ('fay'::text), ('fay'), ('gil')$$,
    'least loaded: fay (1 open) gets two until she has as many as the others, then the one who waited longest');
SELECT results_eq($$SELECT payload->>'strategy' FROM workqueue.item_event
                    WHERE item_id = (SELECT id FROM rr75b WHERE n = 2) AND kind = 'assigned' ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('least_loaded'::text)$$, 'the event names the strategy');

SELECT * FROM finish();
ROLLBACK;
