-- Who may move an item: leases (only the holder of a live lease, fencing of
-- expired holders), administrators, and workflow roles (members, assignee,
-- removed members, steps without a role).  SPEC §3, §5, §8.
--
-- Every actor is a LOGIN role entered with SET ROLE, so the checks see the
-- session's role as the caller.  Runs in one transaction that is rolled back.
BEGIN;
SELECT plan(72);

-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises
-- (all NULL when it succeeds); for asserting hints and details.
CREATE ROLE wq30_alice LOGIN;   -- coordinator
CREATE ROLE wq30_bob LOGIN;     -- coordinator
CREATE ROLE wq30_rita LOGIN;    -- reviewer
CREATE ROLE wq30_nina LOGIN;    -- in no workflow role
CREATE ROLE wq30_adam LOGIN;    -- workqueue administrator
GRANT workqueue_admin TO wq30_adam;

SELECT is(workqueue.define_workflow('wq30_flow', $${"steps": [
    {"name": "triage", "role": "wq30_coord", "start": true},
    {"name": "review", "role": "wq30_rev"},
    {"name": "polish"},
    {"name": "done", "kind": "resolved"},
    {"name": "dropped", "kind": "rejected"}],
  "transitions": [
    {"name": "accept", "from": "triage", "to": "review"},
    {"name": "send",   "from": "review", "to": "polish"},
    {"name": "close",  "from": "polish", "to": "done"},
    {"name": "drop",   "from": ["triage", "review"], "to": "dropped"}]}$$), 1, 'workflow wq30_flow');
SELECT lives_ok($$SELECT workqueue.add_member('wq30_coord', 'wq30_alice'),
                         workqueue.add_member('wq30_coord', 'wq30_bob'),
                         workqueue.add_member('wq30_rev', 'wq30_rita')$$, 'members added');

------------------------------------------------------------------------------
-- leases: only the holder of a live lease moves a claimed item
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q30_lease', 'wq30_flow') AS _ \gset
SELECT workqueue.add('q30_lease') AS a \gset

SET ROLE wq30_alice;
SELECT is((SELECT id FROM workqueue.claim('q30_lease')), :a::bigint, 'alice claims the item');
SET ROLE wq30_bob;
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :a),
    '55P03', format('item %s is claimed by "wq30_alice"', :a),
    'another member of the role cannot move an item someone else holds');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'accept')$$, :a))).hint,
    'Only the holder or a workqueue administrator can move a claimed item.', 'the refusal says who may');
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :a),
    'allowed_transitions is empty for someone who does not hold the claim');
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s], 'accept')$$, :a),
    '55P03', format('item %s is claimed by "wq30_alice"', :a), 'transition_many enforces the lease too');
SET ROLE wq30_alice;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :a),
    $$VALUES ('accept'::text), ('drop')$$, 'the holder may take the step''s transitions');
RESET ROLE;

-- the lease runs out
UPDATE workqueue.item SET lease_until = now() - interval '1 second' WHERE id = :a;
SET ROLE wq30_alice;
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :a),
    '55000', format('lease of "wq30_alice" on item %s has expired', :a),
    'a holder whose lease expired is refused');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'accept')$$, :a))).hint,
    'Claim the item again with workqueue.claim(); extend leases before they run out.',
    'the refusal hints at claiming again');
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :a),
    'allowed_transitions is empty for a holder whose lease expired');

-- someone else claims it; the old holder stays fenced off
SET ROLE wq30_bob;
SELECT is((SELECT id FROM workqueue.claim('q30_lease')), :a::bigint, 'bob claims the item whose lease expired');
SET ROLE wq30_alice;
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :a),
    '55P03', format('item %s is claimed by "wq30_bob"', :a),
    'the old holder is refused once someone else holds the item');
RESET ROLE;
SELECT results_eq(format('SELECT step, status, claimed_by FROM workqueue.item WHERE id = %s', :a),
    $$VALUES ('triage'::text, 'in_progress'::text, 'wq30_bob'::text)$$, 'the refusals changed nothing');
SET ROLE wq30_bob;
SELECT results_eq(
    format($$SELECT step, status, claimed_by, lease_until FROM workqueue.transition(%s, 'accept')$$, :a),
    $$VALUES ('review'::text, 'open'::text, NULL::text, NULL::timestamptz)$$,
    'the holder of a live lease moves the item; the claim ends');
RESET ROLE;
SELECT results_eq(
    format($$SELECT actor, payload#>>'{old,claimed_by}', payload#>>'{old,status}'
               FROM workqueue.item_event WHERE item_id = %s AND kind = 'transition'$$, :a),
    $$VALUES ('wq30_bob'::text, 'wq30_bob'::text, 'in_progress'::text)$$,
    'the transition event records the holder and the claimed status it left');

-- an expired lease that nobody took over no longer blocks others
SELECT workqueue.create_queue('q30_lease2', 'wq30_flow') AS _ \gset
SELECT workqueue.add('q30_lease2') AS a2 \gset
SET ROLE wq30_alice;
SELECT is((SELECT id FROM workqueue.claim('q30_lease2')), :a2::bigint, 'alice claims another item');
RESET ROLE;
UPDATE workqueue.item SET lease_until = now() - interval '1 second' WHERE id = :a2;
SET ROLE wq30_bob;
SELECT is((SELECT step FROM workqueue.transition(:a2, 'accept')), 'review',
    'once the lease has expired another member may move the item');
RESET ROLE;

------------------------------------------------------------------------------
-- administrators may move an item someone else holds
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q30_admin', 'wq30_flow') AS _ \gset
SELECT workqueue.add('q30_admin') AS b1 \gset
SET ROLE wq30_alice;
SELECT is((SELECT id FROM workqueue.claim('q30_admin')), :b1::bigint, 'alice claims an item');
RESET ROLE;
SELECT results_eq(format($$SELECT step, status, claimed_by FROM workqueue.transition(%s, 'accept')$$, :b1),
    $$VALUES ('review'::text, 'open'::text, NULL::text)$$,
    'a superuser moves an item alice holds');

SELECT workqueue.create_queue('q30_admin2', 'wq30_flow') AS _ \gset
SELECT workqueue.add('q30_admin2') AS b2 \gset
SET ROLE wq30_alice;
SELECT is((SELECT id FROM workqueue.claim('q30_admin2')), :b2::bigint, 'alice claims another item');
SET ROLE wq30_adam;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :b2),
    $$VALUES ('accept'::text), ('drop')$$, 'an administrator sees every transition of a held item');
SELECT is((SELECT step FROM workqueue.transition(:b2, 'drop')), 'dropped',
    'a member of workqueue_admin moves an item alice holds, without being in the step''s role');
SELECT is((SELECT actor FROM workqueue.item_event WHERE item_id = :b2 AND kind = 'transition'), 'wq30_adam',
    'the event names the administrator');

SELECT workqueue.add('q30_admin') AS b3 \gset
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept', '{}', 'wq30_nina')$$, :b3),
    '42501', format('"wq30_nina" may not act on step "triage" of item %s', :b3),
    'an administrator naming a non-member as actor acts with that actor''s rights only');
RESET ROLE;

------------------------------------------------------------------------------
-- roles: members, the assignee, removed members, steps without a role
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q30_roles', 'wq30_flow') AS _ \gset
SELECT workqueue.create_queue('q30_roles2', 'wq30_flow') AS _ \gset
SELECT workqueue.add('q30_roles') AS c1, workqueue.add('q30_roles2') AS c2 \gset

SET ROLE wq30_nina;
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :c1),
    '42501', format('"wq30_nina" may not act on step "triage" of item %s', :c1),
    'someone in none of the step''s roles is refused');
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c1),
    'and has no allowed transitions');
SET ROLE wq30_rita;
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'drop')$$, :c1),
    '42501', format('"wq30_rita" may not act on step "triage" of item %s', :c1),
    'a member of another role (reviewer on a coordinator step) is refused');
RESET ROLE;

-- the assignee may act without being a member
UPDATE workqueue.item SET assignee = 'wq30_nina' WHERE id = :c1;
SET ROLE wq30_nina;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c1),
    $$VALUES ('accept'::text), ('drop')$$, 'the assignee may take the step''s transitions');
SELECT results_eq(format($$SELECT step, assignee FROM workqueue.transition(%s, 'accept')$$, :c1),
    $$VALUES ('review'::text, 'wq30_rita'::text)$$,
    'the assignee moves the item; the next step goes to a member of its role');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'send')$$, :c1),
    '42501', format('"wq30_nina" may not act on step "review" of item %s', :c1),
    'being assignee of the previous step gives no rights on the next');
RESET ROLE;

-- a non-member cannot even claim the item (claims honour the step's role)
SET ROLE wq30_nina;
SELECT is_empty($$SELECT * FROM workqueue.claim('q30_roles2')$$, 'nina, in none of the step''s roles, claims nothing');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :c2),
    '42501', format('"wq30_nina" may not act on step "triage" of item %s', :c2),
    'nor may she move it');
RESET ROLE;
SELECT results_eq(format('SELECT status, claimed_by FROM workqueue.item WHERE id = %s', :c2),
    $$VALUES ('open'::text, NULL::text)$$, 'the item stays open');

-- remove_member deactivates
SET ROLE wq30_bob;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c2),
    $$VALUES ('accept'::text), ('drop')$$, 'bob, a member, may move the item');
RESET ROLE;
SELECT lives_ok($$SELECT workqueue.remove_member('wq30_coord', 'wq30_bob')$$, 'remove_member');
SELECT results_eq($$SELECT active FROM workqueue.role_member WHERE role = 'wq30_coord' AND member = 'wq30_bob'$$,
    $$VALUES (false)$$, 'the member is kept but inactive');
SET ROLE wq30_bob;
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :c2),
    '42501', format('"wq30_bob" may not act on step "triage" of item %s', :c2),
    'a removed member is refused');
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c2),
    'a removed member has no allowed transitions');
RESET ROLE;
SELECT lives_ok($$SELECT workqueue.add_member('wq30_coord', 'wq30_bob')$$, 'add_member again');
SELECT results_eq($$SELECT active FROM workqueue.role_member WHERE role = 'wq30_coord' AND member = 'wq30_bob'$$,
    $$VALUES (true)$$, 'adding a removed member reactivates it');
SET ROLE wq30_bob;
SELECT is((SELECT step FROM workqueue.transition(:c2, 'accept')), 'review', 'the reactivated member may act again');
RESET ROLE;
SELECT throws_ok($$SELECT workqueue.remove_member('wq30_coord', 'wq30_nobody')$$,
    '42704', '"wq30_nobody" is not a member of role "wq30_coord"', 'removing someone who is not a member is refused');
SELECT throws_ok($$SELECT workqueue.add_member('', 'wq30_nina')$$,
    '22023', 'role and member must not be empty', 'add_member with an empty role is refused');
SELECT throws_ok($$SELECT workqueue.add_member('wq30_coord', NULL)$$,
    '22023', 'role and member must not be empty', 'add_member with a NULL member is refused');

-- a step without a role is open to anyone
SET ROLE wq30_rita;
SELECT is((SELECT step FROM workqueue.transition(:c2, 'send')), 'polish', 'the reviewer sends the item to polish');
SET ROLE wq30_nina;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c2),
    $$VALUES ('close'::text)$$, 'on a step without a role anyone may take its transitions');
SELECT results_eq(format($$SELECT step, status FROM workqueue.transition(%s, 'close')$$, :c2),
    $$VALUES ('done'::text, 'resolved'::text)$$, 'someone in no role closes the item');
RESET ROLE;

------------------------------------------------------------------------------
-- claims honour the step's role (issue 13.6): the rule of transitions
------------------------------------------------------------------------------

CREATE ROLE wq30_app LOGIN;     -- an application acting for its users
GRANT workqueue_agent TO wq30_app;
SELECT workqueue.create_queue('q30_claim', 'wq30_flow') AS _ \gset
SELECT workqueue.add('q30_claim', '{}', 1) AS k1 \gset
-- k2, later in inbox order, is moved to "polish", a step without a role
SELECT workqueue.add('q30_claim', '{}', 2) AS k2 \gset
SELECT is((SELECT step FROM workqueue.transition(:k2, 'accept')), 'review', 'k2 accepted');
SELECT is((SELECT step FROM workqueue.transition(:k2, 'send')), 'polish', 'k2 at polish, a step without a role');

SET ROLE wq30_nina;
SELECT results_eq($$SELECT id FROM workqueue.claim('q30_claim', 10)$$, ARRAY[:k2::bigint],
    'a non-member skips the item at a role''s step (first in inbox order) and claims the one at a step without a role');
SELECT is((SELECT status FROM workqueue.release(:k2)), 'open', 'she releases it');
SET ROLE wq30_rita;
SELECT results_eq($$SELECT id FROM workqueue.claim('q30_claim', 10)$$, ARRAY[:k2::bigint],
    'a member of another role skips it too');
SELECT is((SELECT status FROM workqueue.release(:k2)), 'open', 'rita releases hers');
RESET ROLE;
SELECT workqueue.add_member('wq30_coord', 'wq30_nina') AS _ \gset
SET ROLE wq30_nina;
SELECT results_eq($$SELECT id FROM workqueue.claim('q30_claim', 1)$$, ARRAY[:k1::bigint],
    'once added as a member she claims it');
SELECT is((SELECT status FROM workqueue.release(:k1)), 'open', 'and releases it');
RESET ROLE;
SELECT workqueue.remove_member('wq30_coord', 'wq30_nina') AS _ \gset
SET ROLE wq30_nina;
SELECT results_eq($$SELECT id FROM workqueue.claim('q30_claim', 1)$$, ARRAY[:k2::bigint],
    'removed again, she skips it again');
SELECT is((SELECT status FROM workqueue.release(:k2)), 'open', 'she releases the other');
RESET ROLE;

-- the assignee may claim without being a member
UPDATE workqueue.item SET assignee = 'wq30_nina' WHERE id = :k1;
SET ROLE wq30_nina;
SELECT results_eq($$SELECT id, claimed_by FROM workqueue.claim('q30_claim', 1)$$,
    format('VALUES (%s::bigint, %L::text)', :k1, 'wq30_nina'), 'the assignee claims the item at the role''s step');
SELECT is((SELECT status FROM workqueue.release(:k1)), 'open', 'she releases it');
RESET ROLE;
UPDATE workqueue.item SET assignee = NULL WHERE id = :k1;

-- an agent's claim is checked for the worker it names, not for itself
SELECT workqueue.add_member('wq30_coord', 'wq30_app') AS _ \gset
SET ROLE wq30_app;
SELECT results_eq($$SELECT id, claimed_by FROM workqueue.claim('q30_claim', 10, 'wq30_nina')$$,
    format('VALUES (%s::bigint, %L::text)', :k2, 'wq30_nina'),
    'an agent in the role claiming for nina gets only what nina may work');
SELECT is((SELECT status FROM workqueue.release(:k2, 'wq30_nina')), 'open', 'and releases it as nina');
SELECT results_eq($$SELECT id, claimed_by FROM workqueue.claim('q30_claim', 1, 'wq30_alice')$$,
    format('VALUES (%s::bigint, %L::text)', :k1, 'wq30_alice'), 'claiming for alice, a member, it gets the item');
SELECT is((SELECT status FROM workqueue.release(:k1, 'wq30_alice')), 'open', 'and releases it as alice');
RESET ROLE;
SELECT workqueue.remove_member('wq30_coord', 'wq30_app') AS _ \gset

-- administrators claim anything, but naming someone else gains nothing
SET ROLE wq30_adam;
SELECT results_eq($$SELECT id FROM workqueue.claim('q30_claim', 1)$$, ARRAY[:k1::bigint],
    'an administrator outside the role claims the item at the role''s step');
SELECT is((SELECT status FROM workqueue.release(:k1)), 'open', 'and releases it');
SELECT results_eq($$SELECT id FROM workqueue.claim('q30_claim', 10, 'wq30_nina')$$, ARRAY[:k2::bigint],
    'an administrator claiming for nina gets only what nina may work');
SELECT is((SELECT status FROM workqueue.release(:k2)), 'open', 'and breaks that claim');
RESET ROLE;

-- a lease that ran out is taken over only by someone who may act at the step
SELECT is((SELECT id FROM workqueue.claim('q30_claim', 1, 'wq30_alice')), :k1::bigint, 'alice claims k1');
UPDATE workqueue.item SET lease_until = now() - interval '1 second' WHERE id = :k1;
UPDATE workqueue.item SET status = 'resolved', step = 'done' WHERE id = :k2;      -- nothing open
SET ROLE wq30_nina;
SELECT is_empty($$SELECT * FROM workqueue.claim('q30_claim')$$, 'a non-member does not take over the expired claim');
SET ROLE wq30_bob;
SELECT results_eq($$SELECT id, claimed_by FROM workqueue.claim('q30_claim')$$,
    format('VALUES (%s::bigint, %L::text)', :k1, 'wq30_bob'), 'a member does');
RESET ROLE;
SELECT results_eq(format($$SELECT kind, actor FROM workqueue.item_event WHERE item_id = %s
                            AND kind IN ('claimed', 'lease_expired') ORDER BY id$$, :k1),
    $$VALUES ('claimed'::text, 'wq30_nina'::text), ('claimed', 'wq30_nina'), ('claimed', 'wq30_alice'), ('claimed', 'wq30_adam'),
             ('claimed', 'wq30_alice'), ('lease_expired', 'workqueue'), ('claimed', 'wq30_bob')$$,
    'the audit trail has only the claims that were allowed');

SELECT * FROM finish();
ROLLBACK;
