-- Naming someone else: the actor/worker arguments of transition,
-- transition_many, release, extend_lease and comment must not let an
-- ordinary role act as, or be recorded as, someone it is not.  SPEC §3
-- ("only the holder (or an admin)"), §5 (the actor's role is checked), §2
-- (every action audited), and the rule stated in the extension itself:
-- "acting as someone else never gains rights".
--
-- Administrators (members of workqueue_admin) may act on behalf of others;
-- an ordinary role naming another actor is refused.  Each check uses its own
-- item so that one failure does not cascade.  Runs in one transaction that
-- is rolled back.
BEGIN;
SELECT plan(20);

CREATE ROLE wq35_alice LOGIN;   -- coordinator
CREATE ROLE wq35_nina LOGIN;    -- in no workflow role
CREATE ROLE wq35_adam LOGIN;    -- workqueue administrator
GRANT workqueue_admin TO wq35_adam;

SELECT is(workqueue.define_workflow('wq35_flow', $${"steps": [
    {"name": "triage", "role": "wq35_coord", "start": true},
    {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "accept", "from": "triage", "to": "done"}]}$$), 1, 'workflow wq35_flow');
SELECT lives_ok($$SELECT workqueue.add_member('wq35_coord', 'wq35_alice')$$, 'alice is a coordinator');
SELECT workqueue.create_queue('q35_open', 'wq35_flow') AS _ \gset
SELECT workqueue.create_queue('q35_held', 'wq35_flow') AS _ \gset
SELECT workqueue.add('q35_open') AS t1, workqueue.add('q35_open') AS t2,
       workqueue.add('q35_open') AS c1, workqueue.add('q35_open') AS a1,
       workqueue.add('q35_open') AS g1 \gset
SELECT workqueue.add('q35_held') AS h1, workqueue.add('q35_held') AS h2, workqueue.add('q35_held') AS h3 \gset
SET ROLE wq35_alice;
SELECT is((SELECT count(*) FROM workqueue.claim('q35_held', 3)), 3::bigint, 'alice claims three items');

SET ROLE wq35_nina;
SELECT coalesce((wqt.err(format($$SELECT workqueue.transition(%s, 'accept', '{}', 'wq35_alice')$$, :t1))).state, 'none') AS s_t1,
       coalesce((wqt.err(format($$SELECT workqueue.transition_many(ARRAY[%s], 'accept', '{}', 'wq35_alice')$$, :t2))).state, 'none') AS s_t2,
       coalesce((wqt.err(format($$SELECT workqueue.release(%s, 'wq35_alice')$$, :h1))).state, 'none') AS s_h1,
       coalesce((wqt.err(format($$SELECT workqueue.extend_lease(%s, '1 hour', 'wq35_alice')$$, :h2))).state, 'none') AS s_h2,
       coalesce((wqt.err(format($$SELECT workqueue.transition(%s, 'accept', '{}', 'wq35_alice')$$, :h3))).state, 'none') AS s_h3,
       coalesce((wqt.err(format($$SELECT workqueue.comment(%s, 'forged', 'wq35_alice')$$, :c1))).state, 'none') AS s_c1 \gset
RESET ROLE;

SELECT is(:'s_t1'::text, '42501', 'a non-member cannot gain a role by naming a member as actor');
SELECT is((SELECT step FROM workqueue.item WHERE id = :t1), 'triage', '... the item did not move');
SELECT is(:'s_t2'::text, '42501', 'nor with transition_many');
SELECT is((SELECT step FROM workqueue.item WHERE id = :t2), 'triage', '... the item did not move');
SELECT ok(:'s_h1' IN ('55P03', '42501'), 'a non-holder cannot release a claim by naming the holder as worker');
SELECT is((SELECT claimed_by FROM workqueue.item WHERE id = :h1), 'wq35_alice', '... alice still holds it');
SELECT ok(:'s_h2' IN ('55P03', '42501'), 'a non-holder cannot extend a lease by naming the holder as worker');
SELECT is((SELECT lease_until FROM workqueue.item WHERE id = :h2), now() + interval '15 minutes',
    '... the lease was not extended');
SELECT ok(:'s_h3' IN ('55P03', '42501'), 'a non-holder cannot move a held item by naming the holder as actor');
SELECT is((SELECT step FROM workqueue.item WHERE id = :h3), 'triage', '... the item did not move');
SELECT ok(:'s_c1' = '42501'
          OR NOT EXISTS (SELECT 1 FROM workqueue.item_event WHERE item_id = :c1 AND kind = 'comment' AND actor = 'wq35_alice'),
    'an ordinary role cannot write an audit event in someone else''s name');

-- an administrator may act on behalf of a member
SET ROLE wq35_adam;
SELECT results_eq(format($$SELECT step, status FROM workqueue.transition(%s, 'accept', '{}', 'wq35_alice')$$, :a1),
    $$VALUES ('done'::text, 'resolved'::text)$$, 'an administrator may act as a member');
RESET ROLE;
SELECT is((SELECT actor FROM workqueue.item_event WHERE item_id = :a1 AND kind = 'transition'), 'wq35_alice',
    'the event names the actor the administrator acted for');

-- an application role in workqueue_agent may act for its users, with their rights only
CREATE ROLE wq35_app LOGIN;
GRANT workqueue_agent TO wq35_app;
SET ROLE wq35_app;
SELECT results_eq(format($$SELECT step, status FROM workqueue.transition(%s, 'accept', '{}', 'wq35_alice')$$, :g1),
    $$VALUES ('done'::text, 'resolved'::text)$$, 'a workqueue_agent member may act as a member');
SELECT is((wqt.err(format($$SELECT workqueue.comment(%s, 'hi', 'wq35_nina')$$, :g1))).state, NULL,
    'a workqueue_agent member may comment in a user''s name');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'accept', '{}', 'wq35_adam')$$, :c1))).state, '42501',
    '... but naming an administrator does not give it administrator rights');
RESET ROLE;
SET ROLE wq35_nina;
SELECT is((wqt.err(format($$SELECT workqueue.comment(%s, 'x', 'wq35_alice')$$, :g1))).hint,
    'Leave actor out to act as yourself, or ask an administrator to run: GRANT workqueue_agent TO wq35_nina;',
    'the refusal hints at workqueue_agent');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
