-- Work queue API: exact output of the common paths and their errors.
\set SHOW_CONTEXT never
\pset footer off

SELECT workqueue.create_queue('inbox', lease_timeout => '5 minutes');
SELECT name, workflow, sla_policy, lease_timeout FROM workqueue.queue;

-- errors: each changes nothing
SELECT workqueue.create_queue('inbox');
SELECT workqueue.create_queue('other', workflow => 'nope');
SELECT workqueue.create_queue('other', lease_timeout => '-1 minute');
SELECT workqueue.create_queue('');
SELECT count(*) AS queues FROM workqueue.queue;

-- items enter the start step of the queue's workflow
SELECT workqueue.add('inbox', '{"title": "one"}', 3, 'A-1');
SELECT workqueue.add('inbox', '{"title": "two"}', 1, 'A-2');
SELECT workqueue.add('inbox', '{"title": "three"}', 3);
SELECT workqueue.add('inbox', '{}', 6);
SELECT workqueue.add('inbox', '[1, 2]');
SELECT workqueue.add('inbox', '{}', 3, 'A-1');
SELECT workqueue.add('nowhere', '{}');
SELECT id, external_id, step, status, priority, data FROM workqueue.list_items('inbox');

-- claim: priority 1 first, then oldest
SELECT id, status, claimed_by FROM workqueue.claim('inbox', 2, 'alice');
SELECT id, status, claimed_by FROM workqueue.claim('inbox', 5, 'bob');
SELECT id FROM workqueue.claim('inbox', 1, 'carol');
SELECT workqueue.claim('inbox', 0);
SELECT workqueue.claim('inbox', 1, '');

-- release and extend_lease: only the holder
SELECT id, status, claimed_by FROM workqueue.release(1, 'alice');
SELECT workqueue.release(1, 'alice');
\set VERBOSITY terse
SELECT id, status FROM workqueue.release(2, 'bob');
\set VERBOSITY default
SELECT lease_until > now() + interval '1 hour' AS extended FROM workqueue.extend_lease(3, '1 hour', 'bob');
SELECT workqueue.extend_lease(3, '0 seconds', 'bob');
SELECT workqueue.extend_lease(99, '1 hour', 'bob');

-- comments and locally owned fields
SELECT workqueue.comment(1, 'looks urgent', 'alice') > 0 AS commented;
SELECT workqueue.comment(1, '   ');
SELECT notes FROM workqueue.update_fields(1, '{"tag": "hw", "owner": "alice"}', 'alice');
SELECT notes FROM workqueue.update_fields(1, '{"tag": "hw"}', 'alice');
SELECT notes FROM workqueue.update_fields(1, '{"tag": "sw"}', 'alice');
SELECT workqueue.update_fields(1, '"x"');
SELECT kind, actor, payload FROM workqueue.history(1) WHERE kind IN ('comment', 'field_update');
SELECT workqueue.history(42);

-- listing: keyset pagination in inbox order
SELECT id FROM workqueue.list_items('inbox', 'open', 1);
SELECT id FROM workqueue.list_items('inbox', 'open', 1, after => 2);
SELECT id FROM workqueue.list_items('inbox', 'open', 1, after => 1);
SELECT id FROM workqueue.list_items('inbox', 'in_progress');
SELECT workqueue.list_items('inbox', 'done');
SELECT workqueue.list_items('inbox', 'open', 1, after => 99);
SELECT id, external_id FROM workqueue.get_items('{3, 99, 1}');
SELECT id, external_id FROM workqueue.get_items_by_external('inbox', '{A-2, nope, A-1}');

-- the audit trail is append-only for ordinary roles
CREATE ROLE wq_regress_user;
SET ROLE wq_regress_user;
SELECT count(*) > 0 AS can_read FROM workqueue.item_event;
DELETE FROM workqueue.item_event;
UPDATE workqueue.item SET status = 'resolved';
SELECT workqueue.create_queue('mine');
RESET ROLE;
DROP ROLE wq_regress_user;
