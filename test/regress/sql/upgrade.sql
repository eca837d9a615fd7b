-- Upgrading: install 0.5 (the released script, installed from
-- test/upgrade/ by test/run.sh), add data, update to the current version;
-- the data stays and every object is there.  test/scripts/upgrade.sh
-- compares the whole catalog with a fresh install.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION workqueue CASCADE;
CREATE EXTENSION workqueue VERSION '0.5';
SELECT extversion FROM pg_extension WHERE extname = 'workqueue';
SELECT workqueue.create_queue('before_upgrade');
SELECT workqueue.add('before_upgrade', '{"kept": true}', 2, 'U-1') AS item \gset
ALTER EXTENSION workqueue UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'workqueue';
SELECT external_id, priority, data, step, status FROM workqueue.item WHERE id = :item;
SELECT kind FROM workqueue.history(:item);
-- every member object of the extension
SELECT pg_describe_object(classid, objid, 0) AS object
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'workqueue')
 ORDER BY 1;
