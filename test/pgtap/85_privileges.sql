-- Least privilege (SPEC §8, doc/security.md "Roles and grants"): catalog
-- checks over every object of the extension, and a plain login role
-- refused every definition function with 42501 and a hint naming the role
-- to grant.  Runs in one transaction that is rolled back.
BEGIN;
SELECT plan(28);

CREATE ROLE wq85_plain LOGIN;

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
                     AND c.relname NOT IN ('source') AND NOT has_table_privilege('wq85_plain', c.oid, 'SELECT')$$,
    'a plain role can read every table but the source table (a dashboard)');
SELECT ok(NOT has_table_privilege('wq85_plain', 'workqueue.source', 'SELECT'), 'it cannot read workqueue.source (headers)');
SELECT ok(NOT has_any_column_privilege('wq85_plain', 'workqueue.source', 'SELECT'), 'not even one column of it');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace = 'workqueue'::regnamespace
                     AND p.proname IN ('_event', '_expire_leases', '_expire_all_leases', '_claim_fetches', '_requeue_fetches',
                                       '_wake', '_wake_fetch', '_event_tx', '_scope_visible', '_may_claim', '_item_for_update',
                                       '_sla_enter', '_step_shares', '_pick_members', '_assignments',
                                       '_after_enter', '_fire_sla_timers')
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

SELECT * FROM finish();
ROLLBACK;
