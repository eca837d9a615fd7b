-- Hostile input (issue 7, SPEC §9 "no input crashes a backend"): every
-- public function of the extension gets NULLs, empty strings and arrays,
-- 5,000,000-element arrays, multi-megabyte strings, 10,000 levels of JSON
-- nesting, wrongly typed JSON, infinite timestamps and huge intervals,
-- unknown names, malformed time zones and hours, a 20,000-step workflow and
-- a caller's search_path full of look-alike functions and operators.  Each
-- must give a sane result or a clean error with a proper SQLSTATE -- never
-- an internal error, a crash or a runaway call.  Limits enforced and why:
-- doc/hostile-input.md.  The limits the SQL function bodies enforce are
-- in 91_hostile_sql.sql.
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (q90_*, h90_*) so that files may run in parallel.
BEGIN;
SELECT plan(307);

SET LOCAL timezone = 'UTC';

-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises
-- (all NULL when it succeeds).
CREATE SCHEMA h90;
GRANT USAGE ON SCHEMA h90 TO PUBLIC;

-- h90.timed(sql): how long sql ran, and the error it raised -- a query
-- cancel included, which WHEN OTHERS (and so throws_ok) does not catch.
-- (A timeout can be reported twice: a second cancel, while the first is
-- being handled, is caught by the outer block.)
CREATE FUNCTION h90.timed(sql text, OUT state text, OUT msg text, OUT secs float8)
    LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    BEGIN
        EXECUTE sql;
    EXCEPTION
        WHEN query_canceled THEN
            state := '57014';
            secs := extract(epoch FROM clock_timestamp() - t0);
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    secs := coalesce(secs, extract(epoch FROM clock_timestamp() - t0));
EXCEPTION
    WHEN query_canceled THEN
        state := coalesce(state, '57014');
        secs := coalesce(secs, extract(epoch FROM clock_timestamp() - t0));
END
$$;

-- A 5 MB string, and JSON nested 10,000 levels deep.
CREATE TABLE h90.big AS
SELECT repeat('x', 5 * 1024 * 1024) AS s5m,
       repeat('[', 10000) || repeat(']', 10000) AS deep;

GRANT SELECT ON h90.big TO PUBLIC;

CREATE ROLE h90_user LOGIN;     -- an ordinary role, not an administrator
SELECT rolname AS su FROM pg_roles WHERE oid = 10 \gset

SELECT workqueue.create_queue('q90') AS _ \gset
SELECT workqueue.add('q90', '{}', 3, '7') AS it7 \gset
SELECT workqueue.add('q90', '{}', 3, '4999999') AS it_last \gset
SELECT workqueue.add('q90') AS it \gset
SELECT workqueue.create_calendar('h90_cal', 'Europe/London',
    '{"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]], "wed": [["09:00", "17:00"]],
      "thu": [["09:00", "17:00"]], "fri": [["09:00", "17:00"]]}') AS _ \gset
SELECT workqueue.create_source('h90_src', 'q90', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}') AS _ \gset

------------------------------------------------------------------------------
-- NULL in every argument position
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.create_queue(NULL)$$,
    '22023', 'queue name must not be empty', 'create_queue: NULL name');
SELECT throws_ok($$SELECT workqueue.create_queue('q90_n', 'review', NULL, NULL)$$,
    '22023', 'lease_timeout must be positive', 'create_queue: NULL lease_timeout');
SELECT throws_ok(format('SELECT workqueue.add(%L, NULL)', 'q90'),
    '22023', 'item data must be a JSON object', 'add: NULL data');
SELECT throws_ok($$SELECT workqueue.add('q90', '{}', NULL)$$,
    '22003', 'priority NULL is out of range', 'add: NULL priority');
SELECT throws_ok($$SELECT workqueue.claim('q90', NULL)$$,
    '22023', 'cannot claim NULL items at once', 'claim: NULL n');
SELECT throws_ok($$SELECT workqueue.claim('q90', 1, NULL)$$,
    '22004', 'worker must not be empty', 'claim: NULL worker');
SELECT throws_ok($$SELECT workqueue.release(NULL)$$,
    '22004', 'item id must not be null', 'release: NULL item');
SELECT throws_ok(format('SELECT workqueue.release(%s, NULL)', :it),
    '22004', 'worker must not be empty', 'release: NULL worker');
SELECT throws_ok(format('SELECT workqueue.extend_lease(%s, NULL)', :it),
    '22023', 'lease extension must be positive', 'extend_lease: NULL interval');
SELECT throws_ok(format('SELECT workqueue.extend_lease(%s, %L, NULL)', :it, '1 hour'),
    '22004', 'worker must not be empty', 'extend_lease: NULL worker');
SELECT throws_ok(format('SELECT workqueue.comment(%s, NULL)', :it),
    '22023', 'comment must not be empty', 'comment: NULL body');
SELECT throws_ok(format('SELECT workqueue.comment(%s, %L, NULL)', :it, 'hi'),
    '22004', 'actor must not be empty', 'comment: NULL actor');
SELECT throws_ok($$SELECT workqueue.comment(NULL, 'hi')$$,
    '22004', 'item id must not be null', 'comment: NULL item');
SELECT throws_ok(format('SELECT workqueue.update_fields(%s, NULL)', :it),
    '22023', 'fields must be a JSON object', 'update_fields: NULL fields');
SELECT throws_ok(format('SELECT workqueue.update_fields(%s, %L, NULL)', :it, '{"a": 1}'),
    '22004', 'actor must not be empty', 'update_fields: NULL actor');
SELECT throws_ok($$SELECT workqueue.list_items('q90', NULL)$$,
    '22023', 'unrecognized item status "NULL"', 'list_items: NULL status');
SELECT is((SELECT count(*) FROM workqueue.list_items('q90', 'open', NULL, NULL)), 3::bigint,
    'list_items: NULL first and after give the first page');
SELECT is_empty($$SELECT * FROM workqueue.get_items(NULL)$$, 'get_items: NULL array gives no rows');
SELECT is_empty($$SELECT * FROM workqueue.get_items_by_external('q90', NULL)$$,
    'get_items_by_external: NULL array gives no rows');
SELECT throws_ok($$SELECT workqueue.history(NULL)$$,
    '42704', 'item NULL does not exist', 'history: NULL item');
SELECT throws_ok($$SELECT workqueue.transition(NULL, 'resolve')$$,
    '22004', 'item id must not be null', 'transition: NULL item');
SELECT throws_ok(format('SELECT workqueue.transition(%s, NULL)', :it),
    '22004', 'transition name must not be empty', 'transition: NULL transition');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L, %L, NULL)', :it, 'resolve', '{}'),
    '22004', 'actor must not be empty', 'transition: NULL actor');
SELECT throws_ok($$SELECT workqueue.transition_many(NULL, 'resolve')$$,
    '22004', 'item array must not be null', 'transition_many: NULL array');
SELECT throws_ok($$SELECT workqueue.transition_many('{1, NULL}', 'resolve')$$,
    '22004', 'item array must not contain nulls', 'transition_many: a NULL element');
SELECT throws_ok($$SELECT workqueue.transition_many('{1}', NULL)$$,
    '22004', 'transition name must not be empty', 'transition_many: NULL transition');
SELECT throws_ok($$SELECT workqueue.transition_many('{1}', 'resolve', '{}', NULL)$$,
    '22004', 'actor must not be empty', 'transition_many: NULL actor');
SELECT throws_ok($$SELECT workqueue.allowed_transitions(NULL)$$,
    '22004', 'item id must not be null', 'allowed_transitions: NULL item');
SELECT throws_ok(format('SELECT workqueue.allowed_transitions(%s, NULL)', :it),
    '22004', 'actor must not be empty', 'allowed_transitions: NULL actor');
SELECT throws_ok($$SELECT workqueue.define_workflow(NULL, '{}')$$,
    '22023', 'workflow name must not be empty', 'define_workflow: NULL name');
SELECT throws_ok($$SELECT workqueue.define_workflow('wf90_n', NULL)$$,
    '22004', 'workflow definition must not be null', 'define_workflow: NULL definition');
SELECT throws_ok($$SELECT workqueue.workflow_graph('review', 1, NULL)$$,
    '22023', 'unrecognized graph format "NULL"', 'workflow_graph: NULL format');
SELECT is(workqueue.workflow_graph('review', NULL), workqueue.workflow_graph('review', 1),
    'workflow_graph: NULL version is the current version');
SELECT throws_ok($$SELECT workqueue.add_member(NULL, NULL)$$,
    '22023', 'role and member must not be empty', 'add_member: NULLs');
SELECT throws_ok($$SELECT workqueue.create_source(NULL, 'q90', 'http://x/', NULL)$$,
    '22023', 'source name must not be empty', 'create_source: NULL name');
SELECT throws_ok($$SELECT workqueue.create_source('h90_n', 'q90', NULL, NULL)$$,
    '22004', 'ids_url must not be null', 'create_source: NULL ids_url');
SELECT workqueue.create_source('h90_nullopt', 'q90', 'http://x/', NULL, NULL) AS _ \gset
SELECT is((SELECT options FROM workqueue.source WHERE name = 'h90_nullopt'), '{}'::jsonb,
    'create_source: NULL options are {}');
SELECT throws_ok($$SELECT workqueue.alter_source('h90_src', NULL)$$,
    '22023', 'changes must be a JSON object', 'alter_source: NULL changes');
SELECT throws_ok($$SELECT workqueue.alter_source('h90_src', '{"ids_url": null}')$$,
    '22004', 'ids_url must not be null', 'alter_source: a null ids_url');
SELECT throws_ok($$SELECT workqueue.sync(NULL)$$,
    '42704', 'source "NULL" does not exist', 'sync: NULL source');
SELECT ok(workqueue.sync('h90_src', NULL, NULL) > 0, 'sync: NULL full and force are false');
SELECT throws_ok($$SELECT workqueue.wait(NULL)$$,
    '42704', 'sync run NULL does not exist', 'wait: NULL run');
SELECT throws_ok($$SELECT workqueue.schedule_sync(NULL, '* * * * *')$$,
    '42704', 'source "NULL" does not exist', 'schedule_sync: NULL source');
SELECT throws_ok($$SELECT workqueue.enqueue_fetch(NULL)$$,
    '22004', 'item id must not be null', 'enqueue_fetch: NULL item');
SELECT throws_ok(format('SELECT workqueue.enqueue_fetch(%s, NULL)', :it),
    '22023', format('item %s has no source', :it), 'enqueue_fetch: NULL source for an item without one');
SELECT is(workqueue.retry_fetches(NULL, NULL), 0, 'retry_fetches: NULLs retry nothing here');
SELECT throws_ok($$SELECT workqueue.cancel_fetch(NULL)$$,
    '42704', 'fetch NULL does not exist', 'cancel_fetch: NULL id');
SELECT throws_ok($$SELECT workqueue.create_calendar(NULL, 'UTC', '{}')$$,
    '22023', 'calendar name must not be empty', 'create_calendar: NULL name');
SELECT throws_ok($$SELECT workqueue.create_calendar('h90_c', NULL, '{}')$$,
    '22004', 'time zone of a calendar must not be null', 'create_calendar: NULL time zone');
SELECT throws_ok($$SELECT workqueue.create_calendar('h90_c', 'UTC', NULL)$$,
    '22004', 'hours of a calendar must not be null', 'create_calendar: NULL hours');
SELECT is(workqueue.create_calendar('h90_nullhol', 'UTC', '{"mon": [["09:00", "17:00"]]}', NULL), 1,
    'create_calendar: NULL holidays are none');
SELECT is(ARRAY[workqueue.business_add(NULL, '1 hour', 'h90_cal'), workqueue.business_add(now(), NULL, 'h90_cal'),
                workqueue.business_add(now(), '1 hour', NULL), workqueue.business_add(now(), '1 hour', 'h90_cal', NULL),
                workqueue.business_add_days(NULL, 1, 'h90_cal'), workqueue.business_add_days(now(), NULL, 'h90_cal')],
          ARRAY[NULL, NULL, NULL, NULL, NULL, NULL]::timestamptz[],
    'business_add, business_add_days: a NULL argument gives NULL');
SELECT is(workqueue.business_between(now(), NULL, 'h90_cal'), NULL, 'business_between: NULL gives NULL');
SELECT throws_ok($$SELECT * FROM workqueue.missing_ids(NULL, '{a}')$$,
    '22004', 'queue name must not be null', 'missing_ids: NULL queue');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items(NULL, '[]')$$,
    '22004', 'queue name must not be null', 'upsert_items: NULL queue');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', NULL)$$,
    '22023', 'items must be a JSON array', 'upsert_items: NULL items');
SELECT is(workqueue.is_admin(NULL), true, 'is_admin: NULL asks about the caller');
SELECT is(workqueue._actor_is_admin(NULL), false, '_actor_is_admin: NULL is nobody');
SELECT throws_ok($$SELECT workqueue._check_actor(NULL, NULL)$$,
    '22004', 'actor must not be empty', '_check_actor: NULLs');
SELECT throws_ok($$SELECT workqueue._check_source(NULL, NULL, NULL)$$,
    '22004', 'ids_url must not be null', '_check_source: NULL ids_url');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, NULL)$$,
    '22023', 'source options must be a JSON object', '_check_source: NULL options');
SELECT throws_ok($$SELECT workqueue._validate_workflow(NULL)$$,
    '22004', 'workflow definition must not be null', '_validate_workflow: NULL');
SELECT throws_ok($$SELECT workqueue._validate_calendar(NULL, '{}', NULL)$$,
    '22004', 'time zone of a calendar must not be null', '_validate_calendar: NULL zone');
SELECT is(ARRAY[workqueue._url_encode(NULL), workqueue._dot_id(NULL)], ARRAY[NULL, NULL]::text[],
    '_url_encode, _dot_id: NULL gives NULL');
SELECT is_empty($$SELECT * FROM workqueue._workflow_edges(NULL)$$, '_workflow_edges: NULL gives no rows');
SELECT throws_ok($$SELECT workqueue._item_for_update(NULL)$$,
    '22004', 'item id must not be null', '_item_for_update: NULL');
SELECT throws_ok($$SELECT workqueue._allowed_transitions(NULL, 'x')$$,
    '22004', 'item id must not be null', '_allowed_transitions: NULL item');

------------------------------------------------------------------------------
-- Empty strings, empty arrays, empty objects
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.create_queue('')$$,
    '22023', 'queue name must not be empty', 'create_queue: empty name');
SELECT throws_ok($$SELECT workqueue.create_queue('q90_e', '')$$,
    '42704', 'workflow "" does not exist', 'create_queue: empty workflow');
SELECT throws_ok($$SELECT workqueue.add('')$$,
    '42704', 'queue "" does not exist', 'add: empty queue');
SELECT throws_ok($$SELECT workqueue.claim('q90', 1, '')$$,
    '22004', 'worker must not be empty', 'claim: empty worker');
SELECT throws_ok(format('SELECT workqueue.comment(%s, %L)', :it, '    '),
    '22023', 'comment must not be empty', 'comment: a blank body');
SELECT count(*) AS events FROM workqueue.history(:it) \gset
SELECT is((workqueue.update_fields(:it, '{}')).updated_at, (SELECT updated_at FROM workqueue.item WHERE id = :it),
    'update_fields: {} returns the item as it is');
SELECT is((SELECT count(*) FROM workqueue.history(:it)), :events::bigint, 'update_fields: {} writes no event');
SELECT throws_ok($$SELECT workqueue.list_items('q90', '')$$,
    '22023', 'unrecognized item status ""', 'list_items: empty status');
SELECT is_empty($$SELECT * FROM workqueue.get_items('{}')$$, 'get_items: empty array');
SELECT is_empty($$SELECT * FROM workqueue.get_items_by_external('q90', '{}')$$, 'get_items_by_external: empty array');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L)', :it, ''),
    '22004', 'transition name must not be empty', 'transition: empty name');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L, %L, %L)', :it, 'resolve', '{}', ''),
    '22004', 'actor must not be empty', 'transition: empty actor');
SELECT is(workqueue.transition_many('{}', 'resolve'), 0, 'transition_many: empty array moves nothing');
SELECT throws_ok($$SELECT workqueue.define_workflow('', '{}')$$,
    '22023', 'workflow name must not be empty', 'define_workflow: empty name');
SELECT throws_ok($$SELECT workqueue.define_workflow('wf90_e', '{}')$$,
    '42P17', 'workflow definition needs a "steps" array', 'define_workflow: {}');
SELECT throws_ok($$SELECT workqueue.define_workflow('wf90_e', '{"steps": []}')$$,
    '42P17', 'workflow has no steps', 'define_workflow: no steps');
SELECT throws_ok($$SELECT workqueue.define_workflow('wf90_e', '{"steps": [{"name": "", "start": true}]}')$$,
    '42P17', 'step 1 has no name', 'define_workflow: an empty step name');
SELECT throws_ok($$SELECT workqueue.workflow_graph('')$$,
    '42704', 'workflow "" does not exist', 'workflow_graph: empty name');
SELECT throws_ok($$SELECT workqueue.workflow_graph('review', 1, '')$$,
    '22023', 'unrecognized graph format ""', 'workflow_graph: empty format');
SELECT throws_ok($$SELECT workqueue.add_member('', 'x')$$,
    '22023', 'role and member must not be empty', 'add_member: empty role');
SELECT throws_ok($$SELECT workqueue.remove_member('', '')$$,
    '42704', '"" is not a member of role ""', 'remove_member: empty names');
SELECT throws_ok($$SELECT workqueue.create_source('', 'q90', 'http://x/', NULL)$$,
    '22023', 'source name must not be empty', 'create_source: empty name');
SELECT throws_ok($$SELECT workqueue.create_source('h90_e', 'q90', '', NULL)$$,
    '22023', 'ids_url must be an http or https URL', 'create_source: empty ids_url');
SELECT throws_ok($$SELECT workqueue.create_source('h90_e', 'q90', 'http://x/', '')$$,
    '22023', 'details_url must be an http or https URL', 'create_source: empty details_url');
SELECT throws_ok($$SELECT workqueue.sync('')$$,
    '42704', 'source "" does not exist', 'sync: empty source');
SELECT throws_ok(format('SELECT workqueue.enqueue_fetch(%s, %L)', :it, ''),
    '42704', 'source "" does not exist', 'enqueue_fetch: empty source');
SELECT throws_ok($$SELECT workqueue.create_calendar('', 'UTC', '{}')$$,
    '22023', 'calendar name must not be empty', 'create_calendar: empty name');
SELECT throws_ok($$SELECT workqueue.create_calendar('h90_c', '', '{}')$$,
    '22023', 'time zone "" is not recognized', 'create_calendar: empty time zone');
SELECT is(workqueue.create_calendar('h90_never', 'UTC', '{}', '{}'), 1, 'create_calendar: {} hours and no holidays');
SELECT throws_ok($$SELECT workqueue.business_add('2025-01-06 10:00+00', '1 hour', 'h90_never')$$,
    '22023', 'calendar "h90_never" has no working time', 'business_add: a calendar without working time');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', '')$$,
    '42704', 'calendar "" does not exist', 'business_add: empty calendar name');
SELECT is(workqueue.business_between('2025-01-06 10:00+00', '2025-01-06 10:00+00', 'h90_cal'), '0'::interval,
    'business_between: an empty range');
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q90', '{}')$$, 'missing_ids: empty array');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q90', '[]')$$, $$VALUES (0, 0, 0)$$,
    'upsert_items: empty array');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": ""}]')$$,
    '22023', 'element 1 of items has an empty "external_id"', 'upsert_items: empty external id');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[]', '')$$,
    '22004', 'source must not be empty', 'upsert_items: empty source');
SELECT is(workqueue._url_encode(''), '', '_url_encode: empty string');

------------------------------------------------------------------------------
-- Wrongly typed JSON
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.add('q90', '[]')$$,
    '22023', 'item data must be a JSON object', 'add: data is an array');
SELECT throws_ok($$SELECT workqueue.add('q90', '"{}"')$$,
    '22023', 'item data must be a JSON object', 'add: data is a string');
SELECT throws_ok($$SELECT workqueue.add('q90', 'null')$$,
    '22023', 'item data must be a JSON object', 'add: data is JSON null');
SELECT throws_ok($$SELECT workqueue.add('q90', '{}', 0)$$, '22003', 'priority 0 is out of range', 'add: priority 0');
SELECT throws_ok($$SELECT workqueue.add('q90', '{}', 6)$$, '22003', 'priority 6 is out of range', 'add: priority 6');
SELECT throws_ok($$SELECT workqueue.add('q90', '{}', (-2147483648)::int)$$,
    '22003', 'priority -2147483648 is out of range', 'add: the smallest int priority');
SELECT throws_ok(format('SELECT workqueue.update_fields(%s, %L)', :it, '["a"]'),
    '22023', 'fields must be a JSON object', 'update_fields: an array');
SELECT throws_ok(format('SELECT workqueue.update_fields(%s, %L)', :it, '5'),
    '22023', 'fields must be a JSON object', 'update_fields: a number');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L, %L)', :it, 'resolve', '[]'),
    '22023', 'transition payload must be a JSON object', 'transition: payload is an array');
SELECT throws_ok(format('SELECT workqueue.transition_many(ARRAY[%s], %L, %L)', :it, 'resolve', '"x"'),
    '22023', 'transition payload must be a JSON object', 'transition_many: payload is a string');

SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '{"external_id": "a"}')$$,
    '22023', 'items must be a JSON array', 'upsert_items: an object instead of an array');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '42')$$,
    '22023', 'items must be a JSON array', 'upsert_items: a number');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[["a"]]')$$,
    '22023', 'element 1 of items is not a JSON object', 'upsert_items: an array element');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": 0}]')$$,
    '22003', 'priority 0 of element 1 is out of range', 'upsert_items: priority 0');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": 6}]')$$,
    '22003', 'priority 6 of element 1 is out of range', 'upsert_items: priority 6');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": 1.5}]')$$,
    '22023', 'priority 1.5 of element 1 is not an integer', 'upsert_items: priority 1.5');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": "x"}]')$$,
    '22023', 'priority "x" of element 1 is not a number', 'upsert_items: priority "x"');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": "99999999999999999999"}]')$$,
    '22003', 'priority "99999999999999999999" of element 1 is out of range', 'upsert_items: a huge priority string');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": 1e1000}]')$$,
    '22003', 'priority 1' || repeat('0', 1000) || ' of element 1 is out of range', 'upsert_items: priority 1e1000');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "priority": true}]')$$,
    '22023', 'priority of element 1 must be a number or a numeric string', 'upsert_items: priority true');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "h90-a", "priority": " 2.00 "}]')$$,
    $$VALUES (1, 0, 0)$$, 'upsert_items: priority " 2.00 " is 2');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": ["a"]}]')$$,
    '22023', '"external_id" of element 1 must be a string or a number', 'upsert_items: external id is an array');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": null}]')$$,
    '22023', 'element 1 of items has no "external_id"', 'upsert_items: external id is null');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": 1}, {"external_id": "1"}]')$$,
    '22023', 'external_id "1" appears in elements 1 and 2 of items', 'upsert_items: 1 and "1" are the same id');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "data": [1]}]')$$,
    '22023', '"data" of element 1 must be a JSON object', 'upsert_items: data is an array');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": "a", "extra": 1}]')$$,
    '22023', 'element 1 of items has unrecognized key "extra"', 'upsert_items: an unknown key');

SELECT throws_ok($$SELECT workqueue._validate_workflow('[]')$$,
    '42P17', 'workflow definition must be a JSON object', 'workflow: an array');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": {"name": "a"}}')$$,
    '42P17', 'workflow definition needs a "steps" array', 'workflow: steps is an object');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [1]}')$$,
    '42P17', 'step 1 is not a JSON object', 'workflow: a step is a number');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": "yes"}]}')$$,
    '42P17', '"start" of step "a" must be true or false', 'workflow: start is a string');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true, "weight": "1"}]}')$$,
    '42P17', '"weight" of step "a" must be a number', 'workflow: weight is a string');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true, "weight": 1e400}]}')$$,
    '42P17', '"weight" of step "a" must be a positive number', 'workflow: weight 1e400');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true, "weight": 0}]}')$$,
    '42P17', '"weight" of step "a" must be a positive number', 'workflow: weight 0');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": 7, "start": true}]}')$$,
    '42P17', 'step 1 has no name', 'workflow: a numeric step name');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true}], "transitions": {}}')$$,
    '42P17', '"transitions" must be an array', 'workflow: transitions is an object');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true}], "transitions": [{"name": "t", "from": 5, "to": "a"}]}')$$,
    '42P17', '"from" of transition "t" must name a step', 'workflow: from is a number');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true}], "transitions": [{"name": "t", "from": "a", "to": ["a"]}]}')$$,
    '42P17', '"to" of transition "t" must name a step', 'workflow: to is an array');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true}], "transitions": [{"name": "t", "from": "a", "to": "a", "requires": "x"}]}')$$,
    '42P17', '"requires" of transition "t" must be an array of field names', 'workflow: requires is a string');
SELECT throws_ok($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true}], "on_enter": []}')$$,
    '42P17', '"on_enter" must be an object keyed by step name', 'workflow: on_enter is an array');

SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '[]')$$,
    '22023', 'source options must be a JSON object', 'source: options is an array');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '{"batch_size": "10"}')$$,
    '22023', 'option "batch_size" must be a number', 'source: batch_size is a string');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '{"batch_size": 1.5}')$$,
    '22023', 'option "batch_size" must be an integer between 1 and 10000', 'source: batch_size 1.5');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '{"batch_size": 1e1000}')$$,
    '22023', 'option "batch_size" must be an integer between 1 and 10000', 'source: batch_size 1e1000');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '{"headers": ["X-A: b"]}')$$,
    '22023', 'option "headers" must be an object of header names and values', 'source: headers is an array');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '{"headers": {"X-A": "a\r\nX-Evil: 1"}}')$$,
    '22023', 'value of HTTP header "X-A" must be a single-line string', 'source: a header value with CRLF');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, '{"pagination": true}')$$,
    '22023', 'option "pagination" must be an object', 'source: pagination is a boolean');
SELECT throws_ok($$SELECT workqueue._check_source('file:///etc/passwd', NULL, '{}')$$,
    '22023', 'ids_url must be an http or https URL', 'source: a file URL');
SELECT throws_ok($$SELECT workqueue.alter_source('h90_src', '[]')$$,
    '22023', 'changes must be a JSON object', 'alter_source: an array');
SELECT throws_ok($$SELECT workqueue.alter_source('h90_src', '{"ids_url": 5}')$$,
    '22023', 'ids_url must be an http or https URL', 'alter_source: ids_url is a number');

------------------------------------------------------------------------------
-- Time zones and hours
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue._validate_calendar('Mars/Olympus', '{}', NULL)$$,
    '22023', 'time zone "Mars/Olympus" is not recognized', 'zone: unknown name');
SELECT throws_ok($$SELECT workqueue._validate_calendar('../../../../etc/passwd', '{}', NULL)$$,
    '22023', 'time zone "../../../../etc/passwd" is not recognized', 'zone: a path');
SELECT throws_ok($$SELECT workqueue._validate_calendar('<+99>-99', '{}', NULL)$$,
    '22023', 'time zone "<+99>-99" is not supported', 'zone: a POSIX zone 99 hours east');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC+25', '{}', NULL)$$,
    '22023', 'time zone "UTC+25" is not supported', 'zone: UTC+25');
SELECT is((wqt.err($$SELECT workqueue._validate_calendar('AAA-10BBB+30,M3.2.0,M11.1.0', '{}', NULL)$$)).detail,
    'Its UTC offset reaches 30:00 hours; calendars support offsets of less than 24 hours.',
    'zone: a POSIX rule whose daylight offset is 30 hours');
SELECT is(workqueue._validate_calendar('<+2359>-23:59', '{}', NULL), '<+2359>-23:59',
    'zone: 23:59 hours east is supported');
SELECT is((SELECT count(*) FROM pg_timezone_names
            WHERE (wqt.err(format('SELECT workqueue._validate_calendar(%L, %L, NULL)', name, '{}'))).state IS NOT NULL),
          0::bigint, 'zone: every name of pg_timezone_names is supported');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": [["25:00", "26:00"]]}', NULL)$$,
    '22023', 'invalid time "25:00" in interval 1 of "mon"', 'hours: 25:00');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": [["9am", "5pm"]]}', NULL)$$,
    '22023', 'invalid time "9am" in interval 1 of "mon"', 'hours: 9am');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": [["09:00"]]}', NULL)$$,
    '22023', 'interval 1 of "mon" must be a pair of times', 'hours: [["09:00"]]');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": ["09:00", "17:00"]}', NULL)$$,
    '22023', 'interval 1 of "mon" must be a pair of times', 'hours: a flat pair');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": [[9, 17]]}', NULL)$$,
    '22023', 'interval 1 of "mon" must be a pair of times', 'hours: numbers');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": [["09:60", "17:00"]]}', NULL)$$,
    '22023', 'invalid time "09:60" in interval 1 of "mon"', 'hours: 09:60');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": [["24:00", "02:00"]]}', NULL)$$,
    '22023', 'interval ["24:00", "02:00"] of "mon" starts at 24:00', 'hours: a start at 24:00');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"Mon": []}', NULL)$$,
    '22023', 'unrecognized day "Mon" in hours', 'hours: a capitalised day');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{"mon": {}}', NULL)$$,
    '22023', 'hours of "mon" must be an array of intervals', 'hours: a day is an object');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '[]', NULL)$$,
    '22023', 'hours must be a JSON object', 'hours: an array');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{}', '{infinity}')$$,
    '22023', 'holiday "infinity" is not a finite date', 'holidays: infinity');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{}', '{2025-01-01, NULL}')$$,
    '22004', 'holidays must not contain NULL', 'holidays: a NULL date');

------------------------------------------------------------------------------
-- Infinite timestamps, huge intervals, unknown calendars and versions
------------------------------------------------------------------------------

SELECT is(ARRAY[workqueue.business_add('infinity', '1 hour', 'h90_cal'), workqueue.business_add('-infinity', '-1 hour', 'h90_cal'),
                workqueue.business_add_days('infinity', 5, 'h90_cal'), workqueue.business_add_days('-infinity', -5, 'h90_cal')],
          ARRAY['infinity', '-infinity', 'infinity', '-infinity']::timestamptz[],
    'business_add, business_add_days: infinity stays infinity');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1000000 years', 'h90_cal')$$,
    '22008', 'interval out of range', 'business_add: 1000000 years');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '100000 years', 'h90_cal')$$,
    '22008', 'timestamp out of range', 'business_add: 100000 years');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '-100000 years', 'h90_cal')$$,
    '22008', 'timestamp out of range', 'business_add: -100000 years');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '2147483647 months 2147483647 days', '24x7')$$,
    '22008', 'interval out of range', 'business_add: the largest interval fields');
SELECT throws_ok($$SELECT workqueue.business_add('294276-12-31 12:00+00', '1 day', '24x7')$$,
    '22008', 'timestamp out of range', 'business_add: past the end of timestamptz');
SELECT throws_ok($$SELECT workqueue.business_between('infinity', now(), 'h90_cal')$$,
    '22008', 'cannot compute working time to or from an infinite timestamp', 'business_between: infinity');
SELECT throws_ok($$SELECT workqueue.business_between('-infinity', 'infinity', 'h90_cal')$$,
    '22008', 'cannot compute working time to or from an infinite timestamp', 'business_between: -infinity to infinity');
SELECT throws_ok($$SELECT workqueue.business_between('4713-01-01 00:00+00 BC', '294276-12-31 00:00+00', '24x7')$$,
    '22008', 'interval out of range', 'business_between: the whole timestamptz range');
SELECT throws_ok($$SELECT workqueue.business_add_days(now(), 2147483647, 'h90_cal')$$,
    '22008', 'timestamp out of range', 'business_add_days: 2147483647 days');
SELECT throws_ok($$SELECT workqueue.business_add_days(now(), (-2147483648)::int, 'h90_cal')$$,
    '22008', 'timestamp out of range', 'business_add_days: -2147483648 days');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', 'h90_nope')$$,
    '42704', 'calendar "h90_nope" does not exist', 'business_add: unknown calendar');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', 'h90_cal', 0)$$,
    '42704', 'calendar "h90_cal" version 0 does not exist', 'business_add: version 0');
SELECT throws_ok($$SELECT workqueue.business_between(now(), now(), 'h90_cal', -1)$$,
    '42704', 'calendar "h90_cal" version -1 does not exist', 'business_between: version -1');
SELECT is((wqt.err($$SELECT workqueue.business_add_days(now(), 1, 'h90_cal', 2147483647)$$)).detail,
    'Calendar "h90_cal" has versions 1 to 1.', 'business_add_days: version 2147483647');
SELECT throws_ok(format('SELECT workqueue.extend_lease(%s, %L)', (SELECT id FROM workqueue.claim('q90', 1) LIMIT 1), '1000000 years'),
    '22023', NULL, 'extend_lease: 1000000 years is beyond the maximum lease (and does not overflow)');
SELECT throws_ok(format('SELECT workqueue.extend_lease(%s, %L)', :it7, '-1 microsecond'),
    '22023', 'lease extension must be positive', 'extend_lease: a negative interval');
SELECT throws_ok($$SELECT workqueue.wait((SELECT max(id) FROM workqueue.sync_run), '1000000 years')$$,
    '22008', 'timestamp out of range', 'wait: a timeout of 1000000 years');
SELECT is(workqueue.retry_fetches('h90_src', 'infinity'), 0, 'retry_fetches: since infinity');

------------------------------------------------------------------------------
-- Unknown names and ids, numbers out of range
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.add('q90_nope')$$,
    '42704', 'queue "q90_nope" does not exist', 'add: unknown queue');
SELECT throws_ok($$SELECT workqueue.claim('q90_nope')$$,
    '42704', 'queue "q90_nope" does not exist', 'claim: unknown queue');
SELECT throws_ok($$SELECT * FROM workqueue.missing_ids('q90_nope', '{a}')$$,
    '42704', 'queue "q90_nope" does not exist', 'missing_ids: unknown queue');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90_nope', '[]')$$,
    '42704', 'queue "q90_nope" does not exist', 'upsert_items: unknown queue');
SELECT throws_ok($$SELECT workqueue.create_queue('q90_x', 'wf90_nope')$$,
    '42704', 'workflow "wf90_nope" does not exist', 'create_queue: unknown workflow');
SELECT throws_ok($$SELECT workqueue.workflow_graph('review', 99)$$,
    '42704', 'workflow "review" version 99 does not exist', 'workflow_graph: unknown version');
SELECT throws_ok($$SELECT workqueue.alter_source('h90_nope', '{}')$$,
    '42704', 'source "h90_nope" does not exist', 'alter_source: unknown source');
SELECT throws_ok($$SELECT workqueue.alter_source('h90_src', '{"queue": ["q90"]}')$$,
    '42704', 'queue "["q90"]" does not exist', 'alter_source: queue is an array');
SELECT throws_ok(format('SELECT workqueue.enqueue_fetch(%s, %L)', :it, 'h90_nope'),
    '42704', 'source "h90_nope" does not exist', 'enqueue_fetch: unknown source');
SELECT throws_ok($$SELECT workqueue.remove_member('h90_nope', 'h90_nobody')$$,
    '42704', '"h90_nobody" is not a member of role "h90_nope"', 'remove_member: unknown member');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L)', :it, 'h90_nope'),
    '22023', 'transition "h90_nope" does not exist in workflow "review" version 1', 'transition: unknown name');
SELECT throws_ok($$SELECT workqueue.transition((-9223372036854775808)::bigint, 'resolve')$$,
    '42704', 'item -9223372036854775808 does not exist', 'transition: the smallest bigint');
SELECT throws_ok($$SELECT workqueue.transition_many('{9223372036854775807, -1}', 'resolve')$$,
    '42704', 'item -1 does not exist', 'transition_many: unknown ids, the first in id order');
SELECT throws_ok($$SELECT workqueue.history(-1)$$,
    '42704', 'item -1 does not exist', 'history: unknown item');
SELECT throws_ok($$SELECT workqueue.allowed_transitions(-1)$$,
    '42704', 'item -1 does not exist', 'allowed_transitions: unknown item');
SELECT throws_ok($$SELECT workqueue.cancel_fetch(-1)$$,
    '42704', 'fetch -1 does not exist', 'cancel_fetch: unknown fetch');
SELECT throws_ok($$SELECT workqueue.wait(-1)$$,
    '42704', 'sync run -1 does not exist', 'wait: unknown run');
SELECT throws_ok($$SELECT workqueue.claim('q90', 10001)$$,
    '22023', 'cannot claim 10001 items at once', 'claim: n above the limit');
SELECT throws_ok($$SELECT workqueue.claim('q90', (-2147483648)::int)$$,
    '22023', 'cannot claim -2147483648 items at once', 'claim: the smallest int');
SELECT throws_ok($$SELECT workqueue.list_items('q90', 'open', 2147483647)$$,
    '22023', 'page size 2147483647 is out of range', 'list_items: first 2147483647');
SELECT throws_ok($$SELECT workqueue.list_items('q90', 'open', NULL, -1)$$,
    '22023', 'item -1 is not in queue "q90"', 'list_items: after an unknown item');

------------------------------------------------------------------------------
-- 5,000,000-element arrays: a sane result or a clean refusal, in bounded
-- time, and cancellable
------------------------------------------------------------------------------

-- (temporary: 90 MB that need no WAL)
CREATE TEMP TABLE ids AS
SELECT ARRAY(SELECT generate_series(1, 5000000)::text) AS texts,
       ARRAY(SELECT generate_series(1, 5000000)::bigint) AS bigints;
CREATE TABLE h90.run AS
SELECT * FROM h90.timed($$CREATE TABLE h90.missing AS
                          SELECT count(*) AS n FROM workqueue.missing_ids('q90', (SELECT texts FROM ids))$$);
SELECT is((SELECT n FROM h90.missing), 4999998::bigint,
    'missing_ids: 5,000,000 ids, two of them in the queue');
SELECT ok((SELECT state IS NULL AND secs < 10 FROM h90.run), 'missing_ids: 5,000,000 ids take less than 10 s');
-- a timeout of a quarter of the whole call
SELECT set_config('statement_timeout', greatest(20, (secs * 250)::int)::text, true) AS _ FROM h90.run \gset
CREATE TABLE h90.cancelled AS
SELECT * FROM h90.timed($$SELECT count(*) FROM workqueue.missing_ids('q90', (SELECT texts FROM ids))$$);
SET LOCAL statement_timeout = 0;
SELECT is((SELECT state FROM h90.cancelled), '57014', 'missing_ids: a statement_timeout cancels 5,000,000 ids');
SELECT ok((SELECT c.secs < r.secs / 2 FROM h90.cancelled c, h90.run r),
    'missing_ids: promptly, not after the whole call');
SELECT is((SELECT count(*) FROM workqueue.get_items_by_external('q90', (SELECT texts FROM ids))), 2::bigint,
    'get_items_by_external: 5,000,000 ids, two found');
SELECT is((SELECT count(*) FROM workqueue.get_items((SELECT bigints FROM ids))),
          (SELECT count(*) FROM workqueue.item WHERE id BETWEEN 1 AND 5000000),
    'get_items: 5,000,000 ids');
SELECT throws_ok($$SELECT workqueue.transition_many((SELECT bigints FROM ids), 'resolve')$$,
    '54000', 'cannot transition 5000000 items in one call', 'transition_many: 5,000,000 ids are refused');
SELECT is(workqueue.create_calendar('h90_holidays', 'UTC', '{"mon": [["09:00", "17:00"]]}',
                                    ARRAY(SELECT date '2000-01-01' + 2 * i FROM generate_series(0, 4999999) i)),
          1, 'create_calendar: 5,000,000 holidays');
SELECT is(workqueue.business_add('2025-01-13 09:00+00', '1 hour', 'h90_holidays'), '2025-01-20 10:00+00',
    'business_add: with 5,000,000 holidays (Monday 2025-01-13 is one, 2025-01-20 is not)');
SELECT is(workqueue.business_add('2025-01-13 09:00+00', '1 hour', 'h90_holidays'), '2025-01-20 10:00+00',
    'business_add: with 5,000,000 holidays, cached');
SELECT throws_ok($$SELECT workqueue._validate_calendar('UTC', '{}', ARRAY(SELECT date '2000-01-01' + i FROM generate_series(0, 10000000) i))$$,
    '54000', 'calendar has too many holidays', 'create_calendar: 10,000,001 holidays are refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', ('[' || repeat('{}, ', 1000000) || '{}]')::jsonb)$$,
    '54000', 'items has too many elements', 'upsert_items: 1,000,001 records are refused, before any is read');

------------------------------------------------------------------------------
-- Multi-megabyte strings
------------------------------------------------------------------------------

SELECT workqueue.comment(:it, (SELECT s5m FROM h90.big)) AS ev \gset
SELECT is((SELECT length(payload->>'body') FROM workqueue.item_event WHERE id = :ev), 5 * 1024 * 1024,
    'comment: a 5 MB body is stored whole');
SELECT is((SELECT length(k) FROM jsonb_object_keys((workqueue.update_fields(:it,
             jsonb_build_object((SELECT s5m FROM h90.big), 1))).notes) k WHERE length(k) > 100), 5 * 1024 * 1024,
    'update_fields: a 5 MB JSON key');
SELECT results_eq(format($$SELECT * FROM workqueue.upsert_items('q90', jsonb_build_array(jsonb_build_object(
                              'external_id', 'h90-key', 'data', jsonb_build_object(%L::text, 1))))$$, (SELECT s5m FROM h90.big)),
    $$VALUES (1, 0, 0)$$, 'upsert_items: a 5 MB key in data');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', jsonb_build_array(jsonb_build_object(
                     'external_id', (SELECT s5m FROM h90.big))))$$,
    '22001', '"external_id" of element 1 is too long', 'upsert_items: a 5 MB external id');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[{"external_id": 1e3000}]')$$,
    '22001', '"external_id" of element 1 is too long', 'upsert_items: a 3001-digit numeric external id');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q90', jsonb_build_array(jsonb_build_object(
                      'external_id', repeat('é', 1024))))$$,
    $$VALUES (1, 0, 0)$$, 'upsert_items: an external id of exactly 2048 bytes');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[]', (SELECT s5m FROM h90.big))$$,
    '42622', 'source name is too long', 'upsert_items: a 5 MB source');
SELECT is((SELECT array_agg(x) FROM workqueue.missing_ids('q90', ARRAY[(SELECT s5m FROM h90.big), '7']) x),
          ARRAY[(SELECT s5m FROM h90.big)], 'missing_ids: a 5 MB id is missing');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L)', :it, (SELECT s5m FROM h90.big)),
    '22023', format('transition "%s" does not exist in workflow "review" version 1', (SELECT s5m FROM h90.big)),
    'transition: a 5 MB transition name');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L, %L, %L)', :it, 'resolve', '{}', (SELECT s5m FROM h90.big)),
    '42622', 'actor name is too long', 'transition: a 5 MB actor');
SELECT throws_ok($$SELECT workqueue.claim('q90', 1, (SELECT s5m FROM h90.big))$$,
    '42622', 'worker name is too long', 'claim: a 5 MB worker');
SELECT throws_ok($$SELECT workqueue.define_workflow('wf90_big', jsonb_build_object('steps',
                     jsonb_build_array(jsonb_build_object('name', (SELECT s5m FROM h90.big), 'start', true))))$$,
    '42622', 'step name is too long', 'define_workflow: a 5 MB step name');
SELECT is((wqt.err($$SELECT workqueue._validate_workflow(jsonb_build_object('steps', jsonb_build_array(
              jsonb_build_object('name', 'a', 'start', true, 'role', repeat('r', 256)))))$$)).detail,
    'The name is 256 bytes long; the limit is 255 bytes. It begins "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr...".',
    'define_workflow: a 256-byte role, with the facts in the detail');
SELECT is(workqueue._validate_workflow(jsonb_build_object('steps', jsonb_build_array(
              jsonb_build_object('name', repeat('ü', 127) || 's', 'start', true)))), repeat('ü', 127) || 's',
    'define_workflow: a step name of exactly 255 bytes');
SELECT throws_ok($$SELECT workqueue._validate_calendar((SELECT s5m FROM h90.big), '{}', NULL)$$,
    '22023', format('time zone "%s" is not recognized', (SELECT s5m FROM h90.big)), 'a 5 MB time zone');
SELECT throws_ok($$SELECT workqueue.business_add(now(), '1 hour', (SELECT s5m FROM h90.big))$$,
    '42704', format('calendar "%s" does not exist', (SELECT s5m FROM h90.big)), 'business_add: a 5 MB calendar name');
SELECT is(length(workqueue._url_encode((SELECT s5m FROM h90.big))), 5 * 1024 * 1024, '_url_encode: 5 MB');
SELECT is(length(workqueue._url_encode(repeat(' ', 1024 * 1024))), 3 * 1024 * 1024, '_url_encode: 1 MB of blanks');

------------------------------------------------------------------------------
-- JSON nested 10,000 levels deep (and 100,000: PostgreSQL's own limit)
------------------------------------------------------------------------------

SELECT workqueue.add('q90', jsonb_build_object('a', (SELECT deep FROM h90.big)::jsonb)) AS deep \gset
SELECT is((SELECT data->'a' FROM workqueue.item WHERE id = :deep), (SELECT deep FROM h90.big)::jsonb,
    'add: data nested 10,000 deep, stored as given');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q90', jsonb_build_array(jsonb_build_object(
                      'external_id', 'h90-deep', 'data', jsonb_build_object('a', (SELECT deep FROM h90.big)::jsonb))))$$,
    $$VALUES (1, 0, 0)$$, 'upsert_items: data nested 10,000 deep');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q90', jsonb_build_array(jsonb_build_object(
                      'external_id', 'h90-deep', 'data', jsonb_build_object('a', (SELECT deep FROM h90.big)::jsonb))))$$,
    $$VALUES (0, 0, 1)$$, 'upsert_items: the same deep data again is unchanged');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q90', jsonb_build_array(jsonb_build_object(
                      'external_id', 'h90-deep', 'data', jsonb_build_object('a', ('[1, ' || (SELECT deep FROM h90.big) || ']')::jsonb))))$$,
    $$VALUES (0, 1, 0)$$, 'upsert_items: changed deep data is an update');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', (SELECT deep FROM h90.big)::jsonb)$$,
    '22023', 'element 1 of items is not a JSON object', 'upsert_items: items nested 10,000 deep');
SELECT is(jsonb_typeof((workqueue.update_fields(:it, jsonb_build_object('deep', (SELECT deep FROM h90.big)::jsonb))).notes->'deep'),
    'array', 'update_fields: a value nested 10,000 deep');
SELECT is((wqt.err($$SELECT workqueue._validate_calendar('UTC', jsonb_build_object('mon', jsonb_build_array((SELECT deep FROM h90.big)::jsonb)), NULL)$$)).msg,
    'interval 1 of "mon" must be a pair of times', 'hours: an interval nested 10,000 deep');
SELECT throws_ok($$SELECT workqueue._validate_workflow(jsonb_build_object('steps', (SELECT deep FROM h90.big)::jsonb))$$,
    '42P17', 'step 1 is not a JSON object', 'workflow: steps nested 10,000 deep');
SELECT throws_ok($$SELECT workqueue._check_source('http://x/', NULL, jsonb_build_object('mapping', (SELECT deep FROM h90.big)::jsonb))$$,
    '22023', 'option "mapping" must be an object', 'source: mapping nested 10,000 deep');
SELECT throws_ok($$SELECT workqueue.add('q90', ('{"a": ' || repeat('[', 100000) || repeat(']', 100000) || '}')::jsonb)$$,
    '54001', 'stack depth limit exceeded', '100,000 levels: PostgreSQL refuses the JSON itself, cleanly');

------------------------------------------------------------------------------
-- Big workflows: 20,000 steps are accepted and stay fast; above the
-- limits a clear error
------------------------------------------------------------------------------

CREATE TABLE h90.wf AS
SELECT jsonb_build_object(
    'steps', (SELECT jsonb_agg(jsonb_build_object('name', 's' || i, 'start', i = 1)
                               || CASE WHEN i = 20000 THEN '{"kind": "resolved"}'::jsonb ELSE '{}'::jsonb END
                               ORDER BY i) FROM generate_series(1, 20000) i),
    'transitions', (SELECT jsonb_agg(jsonb_build_object('name', 't' || i, 'from', 's' || i, 'to', 's' || (i + 1))
                                     ORDER BY i) FROM generate_series(1, 19999) i)) AS def;
CREATE TABLE h90.wf_run AS
SELECT * FROM h90.timed($$SELECT workqueue.define_workflow('wf90_big', (SELECT def FROM h90.wf))$$);
SELECT ok((SELECT state IS NULL AND secs < 10 FROM h90.wf_run), 'define_workflow: 20,000 steps in less than 10 s');
SELECT workqueue.create_queue('q90_big', 'wf90_big') AS _ \gset
SELECT workqueue.add('q90_big') AS big \gset
SELECT is((workqueue.transition(:big, 't1')).step, 's2', 'a transition on the 20,000-step workflow');
CREATE TABLE h90.tr_run AS
SELECT * FROM h90.timed(format($$SELECT workqueue.transition(%s, 't2'), workqueue.transition(%s, 't3'),
                                       workqueue.transition(%s, 't4'), workqueue.transition(%s, 't5')$$,
                               :big, :big, :big, :big));
SELECT ok((SELECT state IS NULL AND secs < 0.5 FROM h90.tr_run), 'four more transitions take less than 0.5 s');
SELECT is(ARRAY(SELECT workqueue.allowed_transitions(:big)), ARRAY['t6'], 'allowed_transitions on it');
SELECT throws_ok(format('SELECT workqueue.transition(%s, %L)', :big, 't9'),
    '55000', 'transition "t9" is not allowed from step "s6"', 'a transition from another step of it');
SELECT is(length(workqueue.workflow_graph('wf90_big')) > 20000 * 20, true, 'workflow_graph of it');

CREATE TABLE h90.huge AS
SELECT jsonb_build_object('steps', (SELECT jsonb_agg(jsonb_build_object('name', 's' || i, 'start', i = 1))
                                      FROM generate_series(1, 100001) i)) AS def;
SELECT throws_ok($$SELECT workqueue._validate_workflow((SELECT def FROM h90.huge))$$,
    '54000', 'workflow has too many steps', 'define_workflow: 100,001 steps are refused');
SELECT is((wqt.err($$SELECT workqueue._validate_workflow((SELECT def FROM h90.huge))$$)).detail,
    'It has 100001 steps; the limit is 100000.', 'with the facts in the detail');
SELECT throws_ok($$SELECT workqueue._validate_workflow(('{"steps": [{"name": "a", "start": true}], "transitions": ['
                     || repeat('{"name": "t", "from": "a", "to": "a"}, ', 100000) || '{"name": "t", "from": "a", "to": "a"}]}')::jsonb)$$,
    '54000', 'workflow has too many transitions', 'define_workflow: 100,001 transitions are refused');
SELECT throws_ok($$SELECT workqueue._validate_workflow(('{"steps": [{"name": "a", "start": true}], "transitions": [{"name": "t", "from": ['
                     || repeat('"a", ', 1000000) || '"a"], "to": "a"}]}')::jsonb)$$,
    '54000', 'transitions of the workflow leave from too many steps', 'define_workflow: 1,000,001 "from" steps are refused');
UPDATE h90.huge SET def = jsonb_set(def, '{steps}', (def->'steps') - 100000);
-- the whole validation, warm (the second of two runs), then a quarter of it
CREATE TABLE h90.wf_full AS SELECT * FROM h90.timed($$SELECT workqueue._validate_workflow((SELECT def FROM h90.huge))$$);
TRUNCATE h90.wf_full;
INSERT INTO h90.wf_full SELECT * FROM h90.timed($$SELECT workqueue._validate_workflow((SELECT def FROM h90.huge))$$);
SELECT set_config('statement_timeout', greatest(20, (secs * 250)::int)::text, true) AS _ FROM h90.wf_full \gset
CREATE TABLE h90.wf_cancel AS SELECT * FROM h90.timed($$SELECT workqueue._validate_workflow((SELECT def FROM h90.huge))$$);
SET LOCAL statement_timeout = 0;
SELECT is((SELECT state FROM h90.wf_cancel), '57014', 'validating 100,000 steps can be cancelled');
SELECT ok((SELECT c.secs < f.secs / 2 FROM h90.wf_cancel c, h90.wf_full f),
    'promptly, not after the whole validation');

------------------------------------------------------------------------------
-- A hostile search_path: look-alike functions, aggregates and operators
-- first in the path change nothing
------------------------------------------------------------------------------

CREATE SCHEMA h90_evil;
CREATE FUNCTION h90_evil.boom() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hijacked by h90_evil';
END
$$;
CREATE FUNCTION h90_evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT h90_evil.boom()::timestamptz $$;
CREATE FUNCTION h90_evil.jsonb_build_object(text, anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT h90_evil.boom()::jsonb $$;
CREATE FUNCTION h90_evil.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS $$ SELECT h90_evil.boom() $$;
CREATE FUNCTION h90_evil.replace(text, text, text) RETURNS text LANGUAGE sql AS $$ SELECT h90_evil.boom() $$;
CREATE FUNCTION h90_evil.texteq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT h90_evil.boom()::boolean $$;
CREATE FUNCTION h90_evil.int4eq(int, int) RETURNS boolean LANGUAGE sql AS $$ SELECT h90_evil.boom()::boolean $$;
CREATE FUNCTION h90_evil.int8eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS $$ SELECT h90_evil.boom()::boolean $$;
CREATE FUNCTION h90_evil.max_step(int, int) RETURNS int LANGUAGE sql AS $$ SELECT h90_evil.boom()::int $$;
CREATE AGGREGATE h90_evil.max(int) (SFUNC = h90_evil.max_step, STYPE = int);
CREATE OPERATOR h90_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = h90_evil.texteq);
CREATE OPERATOR h90_evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = h90_evil.int4eq);
CREATE OPERATOR h90_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = h90_evil.int8eq);
GRANT USAGE ON SCHEMA h90_evil TO PUBLIC;

-- h90.evil(sql): the text of sql's one value, run with the hostile path
-- (or the error it raised, as text).
CREATE FUNCTION h90.evil(sql text) RETURNS text LANGUAGE plpgsql
    SET search_path = h90_evil, pg_catalog, public AS $$
DECLARE
    r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR: ' || SQLERRM;
END
$$;

SELECT is(h90.evil('SELECT now()'), 'ERROR: hijacked by h90_evil',
    'the hostile path does replace now() for plain SQL');
SELECT is(h90.evil($$SELECT workqueue.business_add('2025-01-03 16:00+00', '2 hours', 'h90_cal')$$),
          workqueue.business_add('2025-01-03 16:00+00', '2 hours', 'h90_cal')::text, 'business_add');
SELECT is(h90.evil($$SELECT workqueue.business_add('2025-01-03 16:00+00', '2 hours', 'h90_cal', 1)$$),
          workqueue.business_add('2025-01-03 16:00+00', '2 hours', 'h90_cal', 1)::text, 'business_add, version 1');
SELECT is(h90.evil($$SELECT workqueue.business_between('2025-01-03 16:00+00', '2025-01-07 16:00+00', 'h90_cal')$$),
          workqueue.business_between('2025-01-03 16:00+00', '2025-01-07 16:00+00', 'h90_cal')::text, 'business_between');
SELECT is(h90.evil($$SELECT workqueue.business_add_days('2025-01-03 16:00+00', 3, 'h90_cal')$$),
          workqueue.business_add_days('2025-01-03 16:00+00', 3, 'h90_cal')::text, 'business_add_days');
SELECT is(h90.evil($$SELECT (wqt.err('SELECT workqueue.business_add(''2025-01-03'', ''1 hour'', ''h90_cal'', 7)')).detail$$),
    'Calendar "h90_cal" has versions 1 to 1.', 'an unknown calendar version: the latest version is found with pg_catalog.max');
SELECT is(h90.evil($$SELECT array_agg(x) FROM workqueue.missing_ids('q90', '{7, h90-n1, 4999999}') x$$),
    '{h90-n1}', 'missing_ids');
SELECT is(h90.evil($$SELECT row(u.*) FROM workqueue.upsert_items('q90', '[{"external_id": "h90-evil", "priority": 2}]') u$$),
    '(1,0,0)', 'upsert_items');
SELECT is(h90.evil($$SELECT row(u.*) FROM workqueue.upsert_items('q90', '[{"external_id": "h90-evil", "priority": 1}]') u$$),
    '(0,1,0)', 'upsert_items, an update');
SELECT ok(h90.evil($$SELECT workqueue.add('q90', '{"from": "evil"}', 2, 'h90-evil-add')$$)::bigint > 0, 'add');
SELECT is(h90.evil(format('SELECT workqueue.comment(%s, ''hello'') IS NOT NULL', :it)), 'true', 'comment');
SELECT is(h90.evil(format('SELECT (workqueue.update_fields(%s, ''{"evil": 1}'')).notes->>''evil''', :it)), '1', 'update_fields');
SELECT workqueue.create_queue('q90_evil') AS _ \gset
SELECT workqueue.add('q90_evil') AS ev_item \gset
SELECT is(h90.evil($$SELECT (workqueue.claim('q90_evil', 1, current_user)).id$$), :'ev_item', 'claim');
SELECT is(h90.evil(format('SELECT (workqueue.extend_lease(%s, ''1 hour'')).status', :ev_item)), 'in_progress', 'extend_lease');
SELECT is(h90.evil(format('SELECT (workqueue.release(%s)).status', :ev_item)), 'open', 'release');
SELECT is(h90.evil(format('SELECT (workqueue.transition(%s, ''resolve'')).status', :ev_item)), 'resolved', 'transition');
SELECT is(h90.evil(format('SELECT workqueue.transition_many(ARRAY[%s], ''reopen'')', :ev_item)), '1', 'transition_many');
SELECT is(h90.evil(format('SELECT string_agg(t, '','') FROM workqueue.allowed_transitions(%s) t', :ev_item)),
    'resolve,reject', 'allowed_transitions');
SELECT is(h90.evil(format('SELECT count(*) FROM workqueue.history(%s)', :it)),
          (SELECT count(*) FROM workqueue.history(:it))::text, 'history');
SELECT is(h90.evil($$SELECT count(*) FROM workqueue.list_items('q90')$$),
          (SELECT count(*) FROM workqueue.list_items('q90'))::text, 'list_items');
SELECT is(h90.evil($$SELECT workqueue.define_workflow('wf90_evil', '{"steps": [{"name": "a", "start": true}]}')$$),
    '1', 'define_workflow');
SELECT is(h90.evil($$SELECT workqueue.workflow_graph('review')$$), workqueue.workflow_graph('review'), 'workflow_graph');
SELECT is(h90.evil($$SELECT workqueue.create_calendar('h90_evil_cal', 'Europe/Paris', '{"mon": [["09:00", "17:00"]]}', '{2025-12-25}')$$),
    '1', 'create_calendar');
SELECT is(h90.evil($$SELECT workqueue._validate_workflow('{"steps": [{"name": "a", "start": true}]}')$$), 'a', '_validate_workflow');
SELECT is(h90.evil($$SELECT workqueue.is_admin()::text || workqueue._actor_is_admin(current_user)::text$$), 'truetrue',
    'is_admin, _actor_is_admin');
SELECT is(h90.evil($$SELECT workqueue.sync('h90_src') > 0$$), 'true', 'sync');

------------------------------------------------------------------------------
-- The helpers an ordinary role can call
------------------------------------------------------------------------------

SET ROLE h90_user;
SELECT is(workqueue._caller(), 'h90_user', '_caller: the ordinary role');
SELECT is(ARRAY[workqueue.is_admin(), workqueue.is_admin(NULL), workqueue._actor_is_admin(:'su')],
          ARRAY[false, false, false], 'is_admin, _actor_is_admin: naming a superuser gains nothing');
SELECT throws_ok($$SELECT workqueue._require_admin('do x')$$, '42501', 'permission denied to do x',
    '_require_admin refuses');
SELECT throws_ok(format('SELECT workqueue._check_actor(%L, %L)', :'su', 'actor'), '42501', format('role "h90_user" cannot act as "%s"', :'su'),
    '_check_actor: acting as someone else');
SELECT throws_ok(format('SELECT workqueue._item_for_update(%s)', :it), '42501', 'permission denied for function _item_for_update',
    '_item_for_update is not for the public');
SELECT throws_ok($$SELECT workqueue._event('q90', 1, 'x', 'comment', NULL, NULL)$$, '42501',
    'permission denied for function _event', '_event is not for the public');
SELECT throws_ok($$SELECT workqueue._sync_payload('{}', '{}', 1::int2, 2::int2)$$, '42501',
    'permission denied for function _sync_payload', '_sync_payload is not for the public');
SELECT throws_ok($$SELECT workqueue._close_unlisted('q90', 'h90_src', '{}')$$, '42501',
    'permission denied for function _close_unlisted', '_close_unlisted is not for the public');
SELECT throws_ok($$SELECT workqueue.create_queue('q90_user')$$, '42501', 'permission denied to create queues',
    'create_queue refuses an ordinary role');
SELECT is((workqueue._queue('q90'::text)).name, 'q90', '_queue: an ordinary role may read a queue');
SELECT throws_ok($$SELECT workqueue._queue('q90_nope'::text)$$, '42704', 'queue "q90_nope" does not exist',
    '_queue: unknown queue');
SELECT throws_ok(format('SELECT workqueue._check_holder(i, %L) FROM workqueue.item i WHERE id = %s', 'h90_user', :it),
    '55000', format('item %s is not claimed', :it), '_check_holder: an item that is not claimed');
SELECT is(workqueue._next_fetch_at(), NULL, '_next_fetch_at: no fetch is queued');
SELECT throws_ok($$SELECT workqueue._wake()$$, '42501', 'permission denied for function _wake',
    '_wake is not for the public (waking is for the API functions)');
SELECT is((SELECT count(*) FROM workqueue._workers() w WHERE w.database IS NULL OR w.pid <= 0), 0::bigint,
    '_workers: only live workers, each with its database');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q90', '[]', (SELECT s5m FROM h90.big))$$,
    '42622', 'source name is too long', 'upsert_items: a 5 MB source, as an ordinary role');
SELECT throws_ok(format('SELECT * FROM workqueue.upsert_items(%L, %L, %L)', 'q90', '[{"external_id": "u"}]', :'su'),
    '42501', format('role "h90_user" cannot act as "%s"', :'su'), 'upsert_items: a source naming someone else');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
