-- Scale-out on a single node (doc/scale-out.md; issue 15): an install is
-- single-node, keeps the single-node forms of its policies and the trigger
-- on workflow_version, and distribute() refuses without Citus.  (The Citus
-- side: test/citus/basic.sh, bash test/run.sh citus.)  Rolled back.
BEGIN;
SELECT plan(7);

SELECT is((SELECT mode FROM workqueue.scale_state), 'single', 'a fresh install is single-node');
SELECT is((SELECT count(*)::int FROM workqueue.scale_state), 1, 'one row of scale_state');
SELECT is((SELECT count(*)::int FROM pg_policies WHERE schemaname = 'workqueue' AND qual LIKE '%SELECT%'), 4,
          'the scope policies of item, item_event, fetch, lease_fence use sub-selects (the single-node form)');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgname = 'workflow_version_added'), 1,
          'the trigger on workflow_version is there');
SELECT throws_ok($$SELECT workqueue.distribute()$$, '55000', 'workqueue cannot be distributed without Citus',
                 'distribute() without Citus is refused');

CREATE ROLE wq95_plain LOGIN;
SET ROLE wq95_plain;
SELECT throws_ok($$SELECT workqueue.distribute()$$, '42501', NULL, 'distribute() is not for everyone');
RESET ROLE;
-- _scope_policies() runs again with every upgrade: the same policies
SELECT workqueue._scope_policies() AS _ \gset
SELECT is((SELECT count(*)::int FROM pg_policies WHERE schemaname = 'workqueue'), 8,
          '_scope_policies() again leaves the 8 policies');

SELECT * FROM finish();
ROLLBACK;
