-- Least privilege (SPEC §8, doc/security.md "Roles and grants"): catalog
-- checks over every object of the extension, and a plain login role
-- refused every definition function with 42501 and a hint naming the role
-- to grant.  Runs in one transaction that is rolled back.
BEGIN;
SELECT plan(56);

CREATE ROLE wq85_plain LOGIN;
CREATE ROLE wq85_admin LOGIN IN ROLE workqueue_admin;

SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace = 'workqueue'::regnamespace AND p.prosecdef
                     AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false)$$,
    'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is_empty($$SELECT c.relname || ' ' || x.priv FROM pg_class c
                    CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) x(priv)
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'v')
                     AND has_table_privilege('wq85_plain', c.oid, x.priv)$$,
    'a plain role can write no table or view, directly or through PUBLIC');
SELECT is_empty($$SELECT c.relname FROM pg_class c
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind = 'r'
                     AND c.relname NOT IN ('source') AND NOT has_any_column_privilege('wq85_plain', c.oid, 'SELECT')$$,
    'a plain role can read every table but the source table (a dashboard)');
SELECT ok(NOT has_column_privilege('wq85_plain', 'workqueue.sync_run', 'error_samples', 'SELECT')
          AND has_column_privilege('wq85_plain', 'workqueue.sync_run', 'error', 'SELECT')
          AND has_column_privilege('wq85_admin', 'workqueue.sync_run', 'error_samples', 'SELECT'),
    'sync_run.error_samples (upstream text quoting items by external id) is for administrators only');

-- Administrators define things through the API; they never write tables
-- directly nor run code as the owner (issue 13.1).  From the catalog: no
-- role but a relation's owner holds a privilege other than SELECT on it
-- (table or column), or any privilege on a sequence, or CREATE on the schema.
SELECT is_empty($$SELECT c.relname || ' ' || coalesce(nullif(a.grantee::regrole::text, '-'), 'PUBLIC') || ' ' || a.privilege_type
                    FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND a.grantee <> c.relowner
                     AND (c.relkind = 'S' OR a.privilege_type <> 'SELECT')$$,
    'no role but the owner holds INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES or TRIGGER on a table or view, or a sequence privilege');
SELECT is_empty($$SELECT c.relname || '.' || t.attname || ' ' || a.privilege_type
                    FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid
                         CROSS JOIN LATERAL aclexplode(t.attacl) a
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND a.grantee <> c.relowner
                     AND a.privilege_type <> 'SELECT'$$,
    'nor a column privilege other than SELECT');
SELECT is_empty($$SELECT coalesce(nullif(a.grantee::regrole::text, '-'), 'PUBLIC') || ' ' || a.privilege_type
                    FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
                   WHERE n.oid = 'workqueue'::regnamespace AND a.grantee <> n.nspowner AND a.privilege_type <> 'USAGE'$$,
    'nor CREATE on the schema');
SELECT is_empty($$SELECT c.relname || ' ' || x.priv FROM pg_class c
                    CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) x(priv)
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p', 'v')
                     AND has_table_privilege('wq85_admin', c.oid, x.priv)$$,
    'a member of workqueue_admin holds none of them, through any role');
SELECT is_empty($$SELECT c.relname FROM pg_class c
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p', 'v')
                     AND NOT has_table_privilege('wq85_admin', c.oid, 'SELECT')$$,
    'and reads every table and view, the source table included');
SELECT is_empty($$SELECT c.relname FROM pg_class c
                   WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind = 'S'
                     AND (has_sequence_privilege('wq85_admin', c.oid, 'USAGE') OR has_sequence_privilege('wq85_admin', c.oid, 'UPDATE'))$$,
    'a member of workqueue_admin cannot use or set a sequence');
SELECT ok(NOT has_schema_privilege('wq85_admin', 'workqueue', 'CREATE'), 'nor create objects in the schema');
SELECT ok(NOT has_table_privilege('wq85_plain', 'workqueue.source', 'SELECT'), 'it cannot read workqueue.source (headers)');
SELECT ok(NOT has_any_column_privilege('wq85_plain', 'workqueue.source', 'SELECT'), 'not even one column of it');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace = 'workqueue'::regnamespace
                     AND p.proname IN ('_event', '_expire_leases', '_expire_all_leases', '_claim_fetches', '_requeue_fetches',
                                       '_wake', '_wake_fetch', '_event_tx', '_scope_visible', '_may_claim', '_item_for_update',
                                       '_sla_enter', '_step_shares', '_pick_members', '_assignments',
                                       '_after_enter', '_fire_sla_timers', '_enqueue_fetch')
                     AND has_function_privilege('wq85_plain', p.oid, 'EXECUTE')$$,
    'internal functions that write or wake the workers are not executable by a plain role');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.oid IN ('workqueue.add(text, jsonb, integer, text)'::regprocedure,
                                   'workqueue.add_many(text, jsonb)'::regprocedure,
                                   'workqueue.upsert_items(text, jsonb, text)'::regprocedure)
                     AND NOT (p.prosecdef AND p.provolatile = 'v'
                              AND has_function_privilege('wq85_plain', p.oid, 'EXECUTE'))$$,
    'the functions that add items (add, add_many, upsert_items) are volatile SECURITY DEFINER, callable by a plain role');
SELECT ok(EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workqueue_admin' AND NOT rolcanlogin), 'role workqueue_admin exists, NOLOGIN');
SELECT ok(EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workqueue_agent' AND NOT rolcanlogin), 'role workqueue_agent exists, NOLOGIN');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'workqueue.item'::regclass), 'row-level security is on for item');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'workqueue.item_event'::regclass), 'and for item_event');

-- every definition function refuses a plain role
CREATE FUNCTION pg_temp.refused(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE e record;
BEGIN
    SELECT * INTO e FROM wqt.err(sql);
    RETURN e.state || ' ' || e.msg || ' / ' || coalesce(e.hint, '');
END $$;
SET ROLE wq85_plain;
SELECT is(pg_temp.refused($$SELECT workqueue.create_queue('q85')$$),
    '42501 permission denied to create queues / Ask an administrator to run: GRANT workqueue_admin TO wq85_plain;',
    'create_queue is refused, the hint names the role to grant');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.define_workflow('w85', '{}')$$), ' / ', 1), '42501 permission denied to define workflows',
    'define_workflow');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.create_source('s85', 'q', 'http://127.0.0.1/x', NULL)$$), ' / ', 1),
    '42501 permission denied to create sources', 'create_source');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.alter_source('s85', '{}')$$), ' / ', 1), '42501 permission denied to alter sources',
    'alter_source');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.create_calendar('c85', 'UTC', '{}')$$), ' / ', 1),
    '42501 permission denied to define calendars', 'create_calendar');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.create_sla_policy('p85', '24x7', '{"1": "1 hour"}')$$), ' / ', 1),
    '42501 permission denied to define sla policies', 'create_sla_policy');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.alter_queue('q85', '{}')$$), ' / ', 1), '42501 permission denied to alter queues',
    'alter_queue');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.add_member('r85', 'x')$$), ' / ', 1), '42501 permission denied to manage role members',
    'add_member');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.remove_member('r85', 'x')$$), ' / ', 1), '42501 permission denied to manage role members',
    'remove_member');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.assignment_strategy('r85', 'round_robin')$$), ' / ', 1),
    '42501 permission denied to set assignment strategies', 'assignment_strategy');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.grant_scope('wq85_plain', 's')$$), ' / ', 1), '42501 permission denied to grant scopes',
    'grant_scope');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.revoke_scope('wq85_plain', 's')$$), ' / ', 1), '42501 permission denied to revoke scopes',
    'revoke_scope');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.set_scope('{1}', '{}')$$), ' / ', 1), '42501 permission denied to set scopes',
    'set_scope');
SELECT is(split_part(pg_temp.refused($$SELECT * FROM workqueue.recompute_sla('q85')$$), ' / ', 1),
    '42501 permission denied to recompute sla due times', 'recompute_sla');
SELECT is(left(pg_temp.refused($$SELECT workqueue.schedule_sync('s85', '* * * * *')$$), 23), '42501 permission denied',
    'schedule_sync');
SELECT is(left(pg_temp.refused($$SELECT workqueue.retry_fetches()$$), 23), '42501 permission denied', 'retry_fetches');
SELECT is(split_part(pg_temp.refused($$INSERT INTO workqueue.calendar (name, version, timezone, hours) VALUES ('c85', 1, 'UTC', '{}')$$), ' / ', 1),
    '42501 permission denied for table calendar', 'no direct INSERT into a definition table');
RESET ROLE;

-- What an administrator tries, as an attacker would: each is refused.
CREATE SCHEMA wq85 AUTHORIZATION wq85_admin;
SET ROLE wq85_admin;
SELECT is((wqt.err($$CREATE FUNCTION wq85.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'$$)).state,
    NULL, 'an administrator may create a function of its own elsewhere');
SELECT is((wqt.err($$CREATE TRIGGER wq85 BEFORE INSERT ON workqueue.item_event FOR EACH ROW EXECUTE FUNCTION wq85.f()$$)).state,
    '42501', 'but cannot attach it as a trigger to item_event');
SELECT is((wqt.err($$CREATE TRIGGER wq85 BEFORE UPDATE ON workqueue.item FOR EACH ROW EXECUTE FUNCTION wq85.f()$$)).state,
    '42501', 'nor to item');
SELECT is((wqt.err($$CREATE CONSTRAINT TRIGGER wq85 AFTER INSERT ON workqueue.fetch FROM workqueue.item
                     FOR EACH ROW EXECUTE FUNCTION wq85.f()$$)).state,
    '42501', 'nor as a constraint trigger');
SELECT is((wqt.err($$CREATE RULE wq85 AS ON INSERT TO workqueue.item_event DO ALSO NOTHING$$)).state,
    '42501', 'cannot create a rule on item_event');
SELECT is((wqt.err($$CREATE POLICY wq85 ON workqueue.item USING (true)$$)).state,
    '42501', 'nor a policy on item');
SELECT is((wqt.err($$ALTER TABLE workqueue.item DISABLE ROW LEVEL SECURITY$$)).state,
    '42501', 'nor turn row-level security off');
SELECT is((wqt.err($$CREATE FUNCTION workqueue._event_tx() RETURNS xid8 LANGUAGE sql AS 'SELECT NULL::xid8'$$)).state,
    '42501', 'nor create or replace a function in the schema');
SELECT is((wqt.err($$CREATE TABLE workqueue.wq85 (id int)$$)).state, '42501', 'nor a table in the schema');
SELECT is((wqt.err($$CREATE TABLE wq85.t (queue text REFERENCES workqueue.queue (name))$$)).state,
    '42501', 'nor reference an extension table from a table of its own (REFERENCES)');
SELECT is((wqt.err($$INSERT INTO workqueue.item_event (queue, item_id, actor, kind) VALUES ('q', 1, 'x', 'comment')$$)).state,
    '42501', 'nor insert an event');
SELECT is((wqt.err($$UPDATE workqueue.item_event SET actor = 'x'$$)).state, '42501', 'nor change one');
SELECT is((wqt.err($$DELETE FROM workqueue.item_event$$)).state, '42501', 'nor delete one');
SELECT is((wqt.err($$TRUNCATE workqueue.item_event$$)).state, '42501', 'nor truncate the events');
SELECT is((wqt.err($$UPDATE workqueue.source SET options = options$$)).state, '42501',
    'nor change a source behind alter_source''s back');
SELECT is((wqt.err($$SELECT setval('workqueue.item_event_id_seq', 1)$$)).state, '42501', 'nor set a sequence');
RESET ROLE;

-- NOINHERIT (issue 13.8): a membership that does not pass its privileges on
-- passes no workqueue rights either, until SET ROLE.
CREATE ROLE wq85_noinherit LOGIN NOINHERIT IN ROLE workqueue_admin, workqueue_agent;
DO $$ BEGIN PERFORM workqueue.create_queue('q85n'); END $$;
SELECT ok(NOT workqueue.is_admin('wq85_noinherit'), 'a NOINHERIT member of workqueue_admin is not an administrator');
SET ROLE wq85_noinherit;
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.create_queue('q85n')$$), ' / ', 1), '42501 permission denied to create queues',
    'and is refused definitions');
SELECT is(split_part(pg_temp.refused($$SELECT workqueue.claim('q85n', 1, 'someone_else')$$), ' / ', 1),
    '42501 role "wq85_noinherit" cannot act as "someone_else"',
    'as a NOINHERIT member of workqueue_agent it cannot act for someone else');
SET ROLE workqueue_admin;
SELECT ok(workqueue.is_admin(), 'after SET ROLE workqueue_admin it is one');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
