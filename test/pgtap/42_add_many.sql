-- add_many(queue, items): validation (every error names its element and
-- writes nothing), the items and events it writes, SLA and assignee in the
-- same write, privileges and scopes (doc/queue.md, "Adding many items").
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (q42_*, wq42_*) so that files may run in parallel.
BEGIN;
SELECT plan(69);

CREATE ROLE wq42_plain LOGIN;

-- wqt42.e(sql): "SQLSTATE message / detail / hint" of a statement's error.
CREATE SCHEMA wqt42;
CREATE FUNCTION wqt42.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT e.state || ' ' || e.msg || ' / ' || coalesce(e.detail, '') || ' / ' || coalesce(e.hint, '')
      FROM wqt.err(sql) e
$$;

SELECT has_function('workqueue', 'add_many', ARRAY['text', 'jsonb'], 'add_many(text, jsonb) exists');
SELECT ok((SELECT prosecdef AND proretset AND prorettype = 'int8'::regtype
                  AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp']
             FROM pg_proc WHERE oid = 'workqueue.add_many(text, jsonb)'::regprocedure),
    'add_many returns setof bigint, SECURITY DEFINER with a pinned search_path');
SELECT ok(has_function_privilege('wq42_plain', 'workqueue.add_many(text, jsonb)', 'EXECUTE'),
    'a plain role may call it, as add()');

DO $$
BEGIN
    PERFORM workqueue.create_queue('q42');
    PERFORM workqueue.create_queue('q42_other');
END
$$;
SELECT workqueue.add('q42', '{"old": true}', 3, 'OLD-1') AS old1 \gset

------------------------------------------------------------------------------
-- Validation: nothing is written, every error names its element
------------------------------------------------------------------------------

SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many(NULL, '[]')$$),
    '22004 queue name must not be null /  / ', 'a NULL queue name');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42_nope', '[{}]')$$),
    '42704 queue "q42_nope" does not exist /  / Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;',
    'an unknown queue, with the hint of the rest of the API');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42_nope', '[]')$$),
    '42704 queue "q42_nope" does not exist /  / Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;',
    'an unknown queue also with no items');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', NULL)$$),
    '22023 items must be a JSON array / The value given is of type NULL. / Pass an array of objects like {"data": {...}, "priority": 2, "external_id": "A-1"}; each key may be left out.',
    'NULL items');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '{"data": {}}')$$),
    '22023 items must be a JSON array / The value given is of type object. / Pass an array of objects like {"data": {...}, "priority": 2, "external_id": "A-1"}; each key may be left out.',
    'an object instead of an array');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '"x"')$$)).detail,
    'The value given is of type string.', 'a scalar instead of an array');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', 'null')$$)).detail,
    'The value given is of type null.', 'JSON null instead of an array');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{}, 1]')$$),
    '22023 items must be an array of JSON objects / Element 2 of items is of type number. / Pass an array of objects like {"data": {...}, "priority": 2, "external_id": "A-1"}; each key may be left out.',
    'an element that is not an object: its position in the detail');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '[{}, {}, [1]]')$$)).detail,
    'Element 3 of items is of type array.', 'an array element');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '[null]')$$)).detail,
    'Element 1 of items is of type null.', 'a null element');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{}, {"data": {}, "title": "x"}]')$$),
    '22023 unrecognized key "title" in items / Element 2 of items has it. / The keys of an element are "data", "priority" and "external_id".',
    'an unrecognized key');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"data": [1, 2]}]')$$),
    '22023 item data must be a JSON object / Element 1 of items has "data" of type array. / Leave "data" out for an empty object, or wrap the value, e.g. {"value": ...}.',
    'data that is not an object (the message of add())');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '[{}, {"data": null}]')$$)).detail,
    'Element 2 of items has "data" of type null.', 'null data');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{}, {}, {"priority": 6}]')$$),
    '22003 priority 6 is out of range / Element 3 of items has it. Priorities run from 1 (highest) to 5 (lowest). / Pass a priority between 1 and 5.',
    'a priority out of range (the message of add())');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '[{"priority": 0}]')$$)).state, '22003', 'priority 0');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '[{"priority": "-1"}]')$$)).msg,
    'priority "-1" is out of range', 'a negative priority as a string');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"priority": 2.5}]')$$),
    '22023 priority 2.5 is not an integer / Element 1 of items has it. Priorities run from 1 (highest) to 5 (lowest). / Pass an integer from 1 to 5, or leave "priority" out for 3.',
    'a priority with a fraction');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"priority": "high"}]')$$),
    '22023 priority "high" is not a number / Element 1 of items has it. Priorities run from 1 (highest) to 5 (lowest). / Pass an integer from 1 to 5, or leave "priority" out for 3.',
    'a priority that is not a number');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"priority": true}]')$$),
    '22023 priority must be a number or a numeric string / Element 1 of items has a "priority" of type boolean. / Pass an integer from 1 to 5, or leave "priority" out for 3.',
    'a priority of the wrong type');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"external_id": ""}]')$$),
    '22023 external id must not be empty / Element 1 of items has an empty "external_id". / Leave "external_id" out, or pass null, for an item without one.',
    'an empty external id');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"external_id": {"a": 1}}]')$$),
    '22023 external id must be a string or a number / Element 1 of items has an "external_id" of type object. / Leave "external_id" out, or pass null, for an item without one.',
    'an external id of the wrong type');
SELECT is((wqt.err(format($$SELECT * FROM workqueue.add_many('q42', '[{}, {"external_id": "%s"}]')$$, repeat('x', 2049)))).state,
    '22001', 'an external id over the limit');
SELECT is((wqt.err(format($$SELECT * FROM workqueue.add_many('q42', '[{}, {"external_id": "%s"}]')$$, repeat('x', 2049)))).detail,
    'Element 2 of items has an external id of 2049 bytes; the limit is 2048 bytes. It begins "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...".',
    'with its position and size');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42', '[{"external_id": "D"}, {}, {"external_id": "E"}, {"external_id": "D"}]')$$),
    '22023 external id "D" appears more than once in items / Elements 1 and 4 of items have it. / Pass each external id once per call.',
    'an external id twice in the batch');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42', '[{"external_id": "7"}, {"external_id": 7}]')$$)).detail,
    'Elements 1 and 2 of items have it.', 'a number and its text form are the same external id');
SELECT is(wqt42.e(format($$SELECT * FROM workqueue.add_many('q42', '[{"external_id": "N-1"}, {"external_id": "OLD-1"}]')$$)),
    format('23505 external id "OLD-1" already exists in queue "q42" / Element 2 of items has it; it belongs to item %s. / Use workqueue.upsert_items() to insert-or-update by external id.', :old1),
    'an external id that exists in the queue: the element and the item');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42_other', '[{"external_id": "OLD-1"}]') x$$),
    NULL, 'the same external id in another queue is fine');

-- all or nothing
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q42'), 1::bigint,
    'no failed call wrote an item');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE queue = 'q42'), 1::bigint,
    'nor an event');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q42' AND external_id = 'N-1'), 0::bigint,
    'the good element before the existing external id was rolled back with the call');
SELECT is_empty($$SELECT * FROM workqueue.add_many('q42', '[]')$$, 'an empty array adds nothing and returns no row');

------------------------------------------------------------------------------
-- What it writes
------------------------------------------------------------------------------

CREATE TEMP TABLE ids42 AS
SELECT row_number() OVER () AS n, id
  FROM workqueue.add_many('q42', '[{"data": {"title": "one"}, "priority": 2, "external_id": "A-1"},
                                   {},
                                   {"data": {"title": "three"}, "priority": "1", "external_id": 42},
                                   {"priority": 4.0, "external_id": null},
                                   {"priority": null, "data": {"n": 5}}]') id;
SELECT is((SELECT count(*) FROM ids42), 5::bigint, 'one id per element');
SELECT ok((SELECT bool_and(a.id < b.id) FROM ids42 a JOIN ids42 b ON b.n = a.n + 1),
    'in the order of the elements');
SELECT results_eq($$SELECT i.external_id, i.priority::int, i.data, i.step, i.status, i.workflow, i.workflow_version,
                          i.scope, i.source, i.last_seen_at IS NULL, i.assignee, i.sla_target
                     FROM ids42 x JOIN workqueue.item i ON i.id = x.id ORDER BY x.n$$,
    $$VALUES ('A-1', 2, '{"title": "one"}'::jsonb, 'review', 'open', 'review', 1, '{}'::text[], NULL::text, true, NULL::text, NULL::interval),
             (NULL, 3, '{}', 'review', 'open', 'review', 1, '{}', NULL, true, NULL, NULL),
             ('42', 1, '{"title": "three"}', 'review', 'open', 'review', 1, '{}', NULL, true, NULL, NULL),
             (NULL, 4, '{}', 'review', 'open', 'review', 1, '{}', NULL, true, NULL, NULL),
             (NULL, 3, '{"n": 5}', 'review', 'open', 'review', 1, '{}', NULL, true, NULL, NULL)$$,
    'the items: data ({} if absent), priority (3 if absent or null; "1" and 4.0 read as 1 and 4), external id (a number as text)');
SELECT results_eq($$SELECT e.actor = current_user::text, e.kind, e.from_step, e.to_step, e.payload
                     FROM ids42 x JOIN workqueue.item_event e ON e.queue = 'q42' AND e.item_id = x.id ORDER BY e.id$$,
    $$VALUES (true, 'created', NULL::text, 'review', '{"priority": 2, "external_id": "A-1", "workflow": "review", "workflow_version": 1}'::jsonb),
             (true, 'created', NULL, 'review', '{"priority": 3, "external_id": null, "workflow": "review", "workflow_version": 1}'),
             (true, 'created', NULL, 'review', '{"priority": 1, "external_id": "42", "workflow": "review", "workflow_version": 1}'),
             (true, 'created', NULL, 'review', '{"priority": 4, "external_id": null, "workflow": "review", "workflow_version": 1}'),
             (true, 'created', NULL, 'review', '{"priority": 3, "external_id": null, "workflow": "review", "workflow_version": 1}')$$,
    'one "created" event per item, in order, with the payload of add()');
SELECT ok((SELECT bool_and(e.id > (SELECT max(id) FROM workqueue.item_event WHERE item_id = :old1))
             FROM ids42 x JOIN workqueue.item_event e ON e.queue = 'q42' AND e.item_id = x.id),
    'written after everything before');
SELECT is((SELECT count(*) FROM workqueue.history((SELECT id FROM ids42 WHERE n = 1))), 1::bigint,
    'history() shows the event');
SELECT is(wqt42.e($$SELECT workqueue.add('q42', '{}', 3, 'A-1')$$),
    format('23505 external id "A-1" already exists in queue "q42" / It belongs to item %s. / Use workqueue.upsert_items() to insert-or-update by external id.',
           (SELECT id FROM ids42 WHERE n = 1)),
    'add() finds the external ids add_many() wrote');
SELECT is((SELECT array_agg(id ORDER BY priority, created_at, id) FROM workqueue.claim('q42', 2, 'wq42_w')),
    (SELECT ARRAY[(SELECT id FROM ids42 WHERE n = 3), (SELECT id FROM ids42 WHERE n = 1)]),
    'claim takes them in inbox order');

-- a big batch
SELECT is((SELECT count(*) FROM workqueue.add_many('q42_other',
              (SELECT jsonb_agg(jsonb_build_object('external_id', 'B-' || g, 'priority', 1 + g % 5, 'data', jsonb_build_object('n', g)))
                 FROM generate_series(1, 5000) g))), 5000::bigint, '5000 items in one call');
SELECT is((SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.queue = e.queue AND i.id = e.item_id
            WHERE e.queue = 'q42_other' AND e.kind = 'created' AND i.external_id LIKE 'B-%'
              AND e.payload->>'external_id' = i.external_id AND (e.payload->>'priority')::int = i.priority),
    5000::bigint, 'each with its own "created" event');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q42_other' AND external_id LIKE 'B-%'
              AND priority = 1 + (data->>'n')::int % 5 AND external_id = 'B-' || (data->>'n')),
    5000::bigint, 'each element became its own item');

------------------------------------------------------------------------------
-- SLA and assignee in the same write
------------------------------------------------------------------------------

DO $$
BEGIN
    PERFORM workqueue.create_sla_policy('p42', '24x7', '{"1": "2 hours", "3": "1 day"}', '{50}');
    PERFORM workqueue.define_workflow('w42', $w${"steps": [
        {"name": "triage", "start": true, "role": "r42", "weight": 1},
        {"name": "work", "weight": 3},
        {"name": "done", "kind": "resolved"}],
      "transitions": [{"name": "go", "from": "triage", "to": "work"}, {"name": "finish", "from": "work", "to": "done"}]}$w$);
    PERFORM workqueue.define_workflow('w42p', $w${"steps": [
        {"name": "waiting", "start": true, "pauses_sla": true},
        {"name": "done", "kind": "resolved"}],
      "transitions": [{"name": "finish", "from": "waiting", "to": "done"}]}$w$);
    PERFORM workqueue.create_queue('q42_sla', 'w42', 'p42');
    PERFORM workqueue.create_queue('q42_pause', 'w42p', 'p42');
    PERFORM workqueue.create_queue('q42_nobody', 'w42');
    PERFORM workqueue.add_member('r42', 'ann');
    PERFORM workqueue.add_member('r42', 'bob');
END
$$;

CREATE TEMP TABLE upd42 AS
SELECT n_tup_upd AS v FROM pg_stat_xact_user_tables WHERE relid = 'workqueue.item'::regclass;
CREATE TEMP TABLE sla42 AS
SELECT row_number() OVER () AS n, id
  FROM workqueue.add_many('q42_sla', '[{"priority": 1}, {"priority": 2}, {"priority": 3}, {"priority": 1}]') id;
SELECT results_eq($$SELECT i.assignee, i.sla_policy, i.sla_policy_version, i.sla_calendar, i.sla_calendar_version,
                          i.sla_target, i.due_at - i.created_at, i.sla_clock_from = i.created_at, i.sla_paused_at,
                          i.sla_next_at - i.created_at, i.step_due_at - i.created_at, i.sla_level::int, i.sla_elapsed
                     FROM sla42 x JOIN workqueue.item i ON i.id = x.id ORDER BY x.n$$,
    $$VALUES ('ann', 'p42', 1, '24x7', 1, interval '2 hours', interval '2 hours', true, NULL::timestamptz,
              interval '1 hour', interval '30 minutes', 0, interval '0'),
             ('bob', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, interval '0'),
             ('ann', 'p42', 1, '24x7', 1, interval '1 day', interval '1 day', true, NULL,
              interval '12 hours', interval '6 hours', 0, interval '0'),
             ('bob', 'p42', 1, '24x7', 1, interval '2 hours', interval '2 hours', true, NULL,
              interval '1 hour', interval '30 minutes', 0, interval '0')$$,
    'the SLA of each priority (none without a target) and the assignees in turn, as _sla_enter() and _after_enter() give them');
SELECT results_eq($$SELECT x.n::int, e.kind, e.from_step, e.to_step, e.payload->>'assignee', e.payload->>'role', e.payload->>'strategy'
                     FROM sla42 x JOIN workqueue.item_event e ON e.queue = 'q42_sla' AND e.item_id = x.id ORDER BY e.id$$,
    $$VALUES (1, 'created', NULL::text, 'triage', NULL::text, NULL::text, NULL::text), (2, 'created', NULL, 'triage', NULL, NULL, NULL),
             (3, 'created', NULL, 'triage', NULL, NULL, NULL), (4, 'created', NULL, 'triage', NULL, NULL, NULL),
             (1, 'assigned', 'triage', 'triage', 'ann', 'r42', 'round_robin'), (2, 'assigned', 'triage', 'triage', 'bob', 'r42', 'round_robin'),
             (3, 'assigned', 'triage', 'triage', 'ann', 'r42', 'round_robin'), (4, 'assigned', 'triage', 'triage', 'bob', 'r42', 'round_robin')$$,
    'the "created" events, then an "assigned" event per item');
SELECT is((SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'workqueue.item'::regclass),
    (SELECT v FROM upd42), 'no item was updated: SLA and assignee are in the insert');
SELECT is((SELECT assigned::int FROM workqueue.role_assignment WHERE role = 'r42'), 4, 'the role counts its assignments');
SELECT is((SELECT sum(assigned_count)::int FROM workqueue.role_member WHERE role = 'r42'), 4, 'and each member its own');
SELECT workqueue.add('q42_sla', '{}', 2) AS turn \gset
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :turn), 'ann', 'add() continues the turn');

CREATE TEMP TABLE pause42 AS SELECT id FROM workqueue.add_many('q42_pause', '[{"priority": 3}]') id;
SELECT results_eq($$SELECT i.sla_target, i.sla_clock_from, i.sla_paused_at = i.created_at, i.sla_next_at, i.step_due_at,
                          i.due_at - i.created_at, i.assignee
                     FROM pause42 x JOIN workqueue.item i ON i.id = x.id$$,
    $$VALUES (interval '1 day', NULL::timestamptz, true, NULL::timestamptz, NULL::timestamptz, interval '1 day', NULL::text)$$,
    'a start step that pauses the SLA: the clock is paused from creation, no threshold due');

DO $$ BEGIN PERFORM workqueue.remove_member('r42', 'ann'); PERFORM workqueue.remove_member('r42', 'bob'); END $$;
CREATE TEMP TABLE nobody42 AS SELECT id FROM workqueue.add_many('q42_nobody', '[{}, {}]') id;
SELECT results_eq($$SELECT i.assignee, (SELECT count(*) FROM workqueue.item_event e WHERE e.queue = i.queue AND e.item_id = i.id)
                     FROM nobody42 x JOIN workqueue.item i ON i.id = x.id ORDER BY i.id$$,
    $$VALUES (NULL::text, 1::bigint), (NULL, 1)$$,
    'a role without active members: no assignee, no "assigned" event');

------------------------------------------------------------------------------
-- Privileges and scopes: as add()
------------------------------------------------------------------------------

DO $$ BEGIN PERFORM workqueue.create_queue('q42_scoped'); PERFORM workqueue.alter_queue('q42_scoped', '{"scope": ["s42"]}'); END $$;
SET ROLE wq42_plain;
CREATE TEMP TABLE plain42 AS SELECT id FROM workqueue.add_many('q42_scoped', '[{"external_id": "P-1"}, {"external_id": "P-2"}]') id;
SELECT is((SELECT count(*) FROM plain42), 2::bigint, 'a plain role adds items');
SELECT is((SELECT count(*) FROM workqueue.get_items((SELECT array_agg(id) FROM plain42))), 0::bigint,
    'they get the queue''s scope, which the role was not granted: it cannot see them');
SELECT is((wqt.err($$SELECT * FROM workqueue.add_many('q42_scoped', '[{"external_id": "P-1"}]')$$)).state, '23505',
    'an external id out of its scopes still counts as taken (as add())');
SELECT is((wqt.err($$INSERT INTO workqueue.item (queue, step, workflow, workflow_version) VALUES ('q42', 'review', 'review', 1)$$)).state,
    '42501', 'while it cannot insert into the table itself');
RESET ROLE;
SELECT results_eq($$SELECT i.scope, e.actor FROM plain42 x JOIN workqueue.item i ON i.id = x.id
                      JOIN workqueue.item_event e ON e.queue = i.queue AND e.item_id = i.id ORDER BY i.id$$,
    $$VALUES ('{s42}'::text[], 'wq42_plain'::text), ('{s42}', 'wq42_plain')$$,
    'the items have the queue''s scope; the caller is the actor of their events');
SELECT is(wqt42.e($$SELECT * FROM workqueue.add_many('q42_scoped', '[{"external_id": "S-1"}]') x$$), NULL,
    'an administrator adds to a scoped queue');

------------------------------------------------------------------------------
-- add() is add_many() of one: the same errors it always had
------------------------------------------------------------------------------

SELECT is(wqt42.e($$SELECT workqueue.add('q42', '{}', 6)$$),
    '22003 priority 6 is out of range / Priorities run from 1 (highest) to 5 (lowest). / Pass a priority between 1 and 5.', 'add: priority');
SELECT is(wqt42.e($$SELECT workqueue.add('q42', '{}', NULL)$$),
    '22003 priority NULL is out of range / Priorities run from 1 (highest) to 5 (lowest). / Pass a priority between 1 and 5.', 'add: NULL priority');
SELECT is(wqt42.e($$SELECT workqueue.add('q42', '"x"')$$),
    '22023 item data must be a JSON object / The value given is of type string. / Wrap the value in an object, e.g. {"value": ...}.', 'add: data');
SELECT is(wqt42.e($$SELECT workqueue.add('q42', NULL)$$),
    '22023 item data must be a JSON object / The value given is of type NULL. / Wrap the value in an object, e.g. {"value": ...}.', 'add: NULL data');
SELECT is(wqt42.e($$SELECT workqueue.add('q42', '{}', 3, '')$$),
    '22023 external id must not be empty /  / Pass NULL for an item without an external id.', 'add: empty external id');
SELECT is(wqt42.e($$SELECT workqueue.add(NULL)$$), '22004 queue name must not be null /  / ', 'add: NULL queue');
SELECT is(wqt42.e($$SELECT workqueue.add('q42_nope', '{}', 9)$$),
    '42704 queue "q42_nope" does not exist /  / Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;',
    'add: the queue is checked first');
SELECT lives_ok($$SELECT workqueue.add('q42', '{}', 3, 'SEQ-1')$$, 'add: one more');
CREATE TEMP TABLE seq42 AS SELECT last_value AS v FROM workqueue.item_id_seq;
SELECT throws_ok($$SELECT workqueue.add('q42', '{}', 3, 'SEQ-1')$$, '23505', NULL, 'add: an existing external id');
SELECT is((SELECT last_value FROM workqueue.item_id_seq), (SELECT v FROM seq42),
    'add: an existing external id draws no id, as before');

SELECT * FROM finish();
ROLLBACK;
