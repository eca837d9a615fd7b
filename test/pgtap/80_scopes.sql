-- Row-level security by scope (SPEC §8): grant_scope, revoke_scope,
-- set_scope, a queue's default scope; what a role sees by direct SELECT
-- and through every API function, and that items out of its scopes cannot
-- be claimed, moved, commented, released, fetched or reported.
-- Runs in one transaction that is rolled back.
BEGIN;
SELECT plan(59);

CREATE ROLE wq80_emea LOGIN;
CREATE ROLE wq80_amer LOGIN;
CREATE ROLE wq80_none LOGIN;
CREATE ROLE wq80_team NOLOGIN;         -- a group role holding a scope
CREATE ROLE wq80_member LOGIN IN ROLE wq80_team;
CREATE ROLE wq80_admin LOGIN IN ROLE workqueue_admin;

SELECT workqueue.create_queue('q80', lease_timeout => '1 hour') AS _ \gset
SELECT workqueue.add('q80', '{"n": "open"}') AS i_open \gset
SELECT workqueue.add('q80', '{"n": "emea"}', external_id => 'E-1') AS i_emea \gset
SELECT workqueue.add('q80', '{"n": "amer"}', external_id => 'A-1') AS i_amer \gset
SELECT workqueue.add('q80', '{"n": "both"}') AS i_both \gset

------------------------------------------------------------------------------
-- grants and set_scope
------------------------------------------------------------------------------

SELECT lives_ok($$SELECT workqueue.grant_scope('wq80_emea', 'emea'), workqueue.grant_scope('wq80_amer', 'amer'),
                         workqueue.grant_scope('wq80_team', 'amer')$$, 'scopes granted');
SELECT lives_ok($$SELECT workqueue.grant_scope('wq80_emea', 'emea')$$, 'granting twice is harmless');
SELECT throws_ok($$SELECT workqueue.grant_scope('wq80_nobody', 'emea')$$,
    '42704', 'role "wq80_nobody" does not exist', 'a scope for an unknown role is refused');
SELECT throws_ok($$SELECT workqueue.grant_scope('wq80_emea', '')$$,
    '22023', 'scope must not be empty', 'an empty scope is refused');
SELECT throws_ok($$SELECT workqueue.grant_scope('wq80_emea', NULL)$$,
    '22023', 'scope must not be empty', 'a NULL scope is refused');
SELECT throws_ok($$SELECT workqueue.revoke_scope('wq80_emea', 'apac')$$,
    '42704', 'scope "apac" is not granted to role "wq80_emea"', 'revoking what was not granted is an error');

SELECT is(workqueue.set_scope(ARRAY[:i_emea, :i_both], '{emea}'), 2, 'set_scope on two items');
SELECT is(workqueue.set_scope(ARRAY[:i_amer], '{amer}'), 1, 'and on one');
SELECT is(workqueue.set_scope(ARRAY[:i_both], '{emea,amer}'), 1, 'both scopes');
SELECT is(workqueue.set_scope(ARRAY[:i_both], '{emea,amer}'), 0, 'setting the same scope writes nothing');
SELECT results_eq(format($$SELECT payload FROM workqueue.item_event WHERE item_id = %s AND kind = 'field_update' ORDER BY id$$, :i_both),
    $$VALUES ('{"old": {"scope": []}, "new": {"scope": ["emea"]}}'::jsonb),
             ('{"old": {"scope": ["emea"]}, "new": {"scope": ["emea", "amer"]}}')$$,
    'a field_update event records the old and new scope');
SELECT throws_ok($$SELECT workqueue.set_scope(ARRAY[-5], '{emea}')$$, '42704', 'item -5 does not exist',
    'set_scope of an unknown item');
SELECT throws_ok($$SELECT workqueue.set_scope(ARRAY[1], '{""}')$$, '22023', 'scope must be an array of non-empty names',
    'an empty scope name is refused');
SELECT throws_ok($$SELECT workqueue.set_scope(ARRAY[1], NULL)$$, '22023', 'scope must be an array of non-empty names',
    'a NULL scope is refused');
SELECT throws_ok($$SELECT workqueue.set_scope(NULL, '{}')$$, '22004', 'item array must not be or contain null',
    'a NULL item array is refused');

SET ROLE wq80_emea;
SELECT throws_ok($$SELECT workqueue.grant_scope('wq80_emea', 'amer')$$,
    '42501', 'permission denied to grant scopes', 'a plain role cannot grant itself a scope');
SELECT throws_ok($$SELECT workqueue.revoke_scope('wq80_amer', 'amer')$$,
    '42501', 'permission denied to revoke scopes', 'nor revoke one');
SELECT throws_ok(format($$SELECT workqueue.set_scope(ARRAY[%s], '{}')$$, :i_amer),
    '42501', 'permission denied to set scopes', 'nor change an item''s scope');
RESET ROLE;

------------------------------------------------------------------------------
-- what each role sees
------------------------------------------------------------------------------

CREATE SCHEMA wqt80;
GRANT USAGE ON SCHEMA wqt80 TO PUBLIC;
CREATE TABLE wqt80.ids AS SELECT :i_open AS o, :i_emea AS e, :i_amer AS a, :i_both AS b;
GRANT SELECT ON wqt80.ids TO PUBLIC;
CREATE FUNCTION wqt80.seen(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT string_agg(CASE x.id WHEN o THEN ''open'' WHEN e THEN ''emea'' WHEN a THEN ''amer''
                                                WHEN b THEN ''both'' END, '','' ORDER BY x.id)
                      FROM (%s) x(id), wqt80.ids', q) INTO r;
    RETURN r;
END $f$;
GRANT EXECUTE ON FUNCTION wqt80.seen(text) TO PUBLIC;

SET ROLE wq80_emea;
SELECT is(wqt80.seen('SELECT id FROM workqueue.item WHERE queue = ''q80'''), 'open,emea,both',
    'emea: SELECT on item shows unscoped and emea items');
SELECT is(wqt80.seen('SELECT DISTINCT item_id FROM workqueue.item_event WHERE queue = ''q80'''), 'open,emea,both',
    'emea: and only their events');
SELECT is(wqt80.seen('SELECT id FROM workqueue.list_items(''q80'')'), 'open,emea,both', 'emea: list_items');
SELECT is(wqt80.seen(format('SELECT id FROM workqueue.get_items(ARRAY[%s,%s,%s,%s])', :i_open, :i_emea, :i_amer, :i_both)),
    'open,emea,both', 'emea: get_items');
SELECT is(wqt80.seen('SELECT id FROM workqueue.get_items_by_external(''q80'', ''{E-1,A-1}'')'), 'emea',
    'emea: get_items_by_external');
SELECT throws_ok(format('SELECT * FROM workqueue.history(%s)', :i_amer), '42704', format('item %s does not exist', :i_amer),
    'emea: the history of an amer item does not exist');
SELECT throws_ok(format('SELECT * FROM workqueue.sla_status(%s)', :i_amer), '42704', format('item %s does not exist', :i_amer),
    'emea: nor its sla_status');
SELECT throws_ok(format($$SELECT workqueue.comment(%s, 'hi')$$, :i_amer), '42704', format('item %s does not exist', :i_amer),
    'emea: cannot comment on it');
SELECT throws_ok(format($$SELECT workqueue.update_fields(%s, '{"x": 1}')$$, :i_amer), '42704',
    format('item %s does not exist', :i_amer), 'emea: cannot update its fields');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'resolve')$$, :i_amer), '42704',
    format('item %s does not exist', :i_amer), 'emea: cannot move it');
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s, %s], 'resolve')$$, :i_emea, :i_amer), '42704',
    format('item %s does not exist', :i_amer), 'emea: a batch with it is refused as a whole');
SELECT throws_ok(format($$SELECT * FROM workqueue.allowed_transitions(%s)$$, :i_amer), '42704',
    format('item %s does not exist', :i_amer), 'emea: allowed_transitions of it');
SELECT throws_ok(format($$SELECT workqueue.release(%s)$$, :i_amer), '42704',
    format('item %s does not exist', :i_amer), 'emea: release of it');
SELECT throws_ok(format($$SELECT workqueue.enqueue_fetch(%s, 'x')$$, :i_amer), '42704',
    format('item %s does not exist', :i_amer), 'emea: a fetch of it');
SELECT is(wqt80.seen('SELECT id FROM workqueue.claim(''q80'', 10)'), 'open,emea,both', 'emea: claim takes only visible items');
SELECT lives_ok(format($$SELECT workqueue.comment(%s, 'mine')$$, :i_emea), 'emea: comments on an emea item');
RESET ROLE;
SELECT is((SELECT status FROM workqueue.item WHERE id = :i_amer), 'open', 'the amer item was not claimed');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :i_amer AND kind IN ('comment', 'field_update', 'transition')),
    1::bigint, 'and nothing but its set_scope event was written on it');

SET ROLE wq80_amer;
SELECT is(wqt80.seen('SELECT id FROM workqueue.item WHERE queue = ''q80'''), 'open,amer,both', 'amer: SELECT on item');
SELECT is(wqt80.seen('SELECT id FROM workqueue.claim(''q80'', 10)'), 'amer', 'amer: claims the one open amer item');
SELECT is(wqt80.seen('SELECT id FROM workqueue.list_items(''q80'', ''in_progress'')'), 'open,amer,both',
    'amer: lists the in-progress items it can see, not the emea one');
RESET ROLE;

SET ROLE wq80_none;
SELECT is(wqt80.seen('SELECT id FROM workqueue.item WHERE queue = ''q80'''), 'open', 'no scope: only the unscoped item');
SELECT is(wqt80.seen('SELECT item_id FROM workqueue.item_event WHERE queue = ''q80'' GROUP BY item_id'), 'open',
    'no scope: only its events');
SELECT is((SELECT items FROM workqueue.sla_report('q80', now() - interval '1 hour', now() + interval '1 hour')), 1::bigint,
    'no scope: sla_report counts only the visible item');
RESET ROLE;

SET ROLE wq80_member;
SELECT is(wqt80.seen('SELECT id FROM workqueue.item WHERE queue = ''q80'''), 'open,amer,both',
    'a member of a group role has the group''s scopes');
RESET ROLE;

SET ROLE wq80_admin;
SELECT is(wqt80.seen('SELECT id FROM workqueue.item WHERE queue = ''q80'''), 'open,emea,amer,both',
    'an administrator sees every item by SELECT');
SELECT is(wqt80.seen(format('SELECT id FROM workqueue.get_items(ARRAY[%s,%s,%s,%s])', :i_open, :i_emea, :i_amer, :i_both)),
    'open,emea,amer,both', 'and through the API');
RESET ROLE;

------------------------------------------------------------------------------
-- revoking, and the scope of new items
------------------------------------------------------------------------------

SELECT lives_ok($$SELECT workqueue.revoke_scope('wq80_emea', 'emea')$$, 'emea revoked');
SET ROLE wq80_emea;
SELECT is(wqt80.seen('SELECT id FROM workqueue.item WHERE queue = ''q80'''), 'open', 'after the revoke only the unscoped item');
SELECT throws_ok(format($$SELECT workqueue.comment(%s, 'again')$$, :i_emea), '42704', format('item %s does not exist', :i_emea),
    'and the emea item is gone for it');
RESET ROLE;

SELECT is((workqueue.alter_queue('q80', '{"scope": ["emea"]}')).scope, '{emea}'::text[], 'alter_queue sets the default scope');
SELECT throws_ok($$SELECT workqueue.alter_queue('q80', '{"scope": "emea"}')$$,
    '22023', 'scope must be an array of non-empty names', 'a scope that is no array is refused');
SELECT throws_ok($$SELECT workqueue.alter_queue('q80', '{"scope": [""]}')$$,
    '22023', 'scope must be an array of non-empty names', 'an empty scope name is refused');
SELECT workqueue.add('q80') AS i_new \gset
SELECT is((SELECT scope FROM workqueue.item WHERE id = :i_new), '{emea}'::text[], 'add() gives new items the queue''s scope');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q80', '[{"external_id": "U-1", "data": {}}]')$$,
    $$VALUES (1, 0, 0)$$, 'an upsert');
SELECT is((SELECT scope FROM workqueue.item WHERE queue = 'q80' AND external_id = 'U-1'), '{emea}'::text[],
    'upsert_items gives new items the queue''s scope');
SELECT lives_ok($$SELECT workqueue.grant_scope('wq80_emea', 'emea')$$, 'emea granted again');
SET ROLE wq80_emea;
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q80' AND scope = '{emea}'), 3::bigint,
    'emea sees every emea item, including the new ones');
RESET ROLE;
SET ROLE wq80_none;
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q80' AND scope = '{emea}'), 0::bigint,
    'a role without the scope sees none of them');
SELECT throws_ok($$INSERT INTO workqueue.item (queue, step, workflow, workflow_version) VALUES ('q80', 'review', 'review', 1)$$,
    '42501', 'permission denied for table item', 'nobody writes the table directly');
RESET ROLE;
SET ROLE wq80_admin;
SELECT throws_ok($$UPDATE workqueue.item SET notes = notes WHERE queue = 'q80'$$,
    '42501', 'permission denied for table item', 'administrators do not write the table directly either (issue 13.1)');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
