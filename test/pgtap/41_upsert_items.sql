-- upsert_items(queue, items, source): validation, inserts, change detection,
-- the ownership rule and the audit trail (SPEC §2, §4, §9).
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (q41_*, wq41_*) so that files may run in parallel.  Each call made
-- through lives_ok() runs in a subtransaction of its own, so rows it writes
-- get a new xmin: "unchanged rows keep their xmin" is meaningful here.
-- Notifications and concurrent upserts are covered by
-- test/scripts/upsert_race.sh.
BEGIN;
SELECT plan(87);

CREATE SCHEMA wqt41;
GRANT USAGE ON SCHEMA wqt41 TO PUBLIC;

-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises.
-- wqt41.up(queue, items, source): one upsert as "inserted/updated/unchanged".
CREATE FUNCTION wqt41.up(queue text, items jsonb, source text DEFAULT NULL) RETURNS text
    LANGUAGE sql AS $$
    SELECT format('%s/%s/%s', inserted, updated, unchanged) FROM workqueue.upsert_items(queue, items, source)
$$;

-- wqt41.rows(queue): the versions of a queue's items, by external id.
CREATE FUNCTION wqt41.rows(q text) RETURNS TABLE (external_id text, version text)
    LANGUAGE sql AS $$
    SELECT external_id, xmin::text || ctid::text FROM workqueue.item WHERE queue = q ORDER BY external_id
$$;

SELECT has_function('workqueue', 'upsert_items', ARRAY['text', 'jsonb', 'text'],
    'upsert_items(text, jsonb, text) exists');
SELECT ok((SELECT prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp']
             FROM pg_proc WHERE oid = 'workqueue.upsert_items(text, jsonb, text)'::regprocedure),
    'upsert_items is SECURITY DEFINER with a pinned search_path');

DO $$
BEGIN
    PERFORM workqueue.create_queue('q41');
    PERFORM workqueue.create_queue('q41_other');
END
$$;

------------------------------------------------------------------------------
-- Validation: every error names its element, and nothing is written
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41_nope', '[]')$$,
    '42704', 'queue "q41_nope" does not exist', 'an unknown queue is refused');
SELECT is((wqt.err($$SELECT * FROM workqueue.upsert_items('q41_nope', '[]')$$)).hint,
    'Create it with workqueue.create_queue(), or list queues with: SELECT name FROM workqueue.queue;',
    'with the hint of the rest of the API');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items(NULL, '[]')$$,
    '22004', 'queue name must not be null', 'a NULL queue name is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', NULL)$$,
    '22023', 'items must be a JSON array', 'NULL items are refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '{"external_id": "A"}')$$,
    '22023', 'items must be a JSON array', 'an object instead of an array is refused');
SELECT is((wqt.err($$SELECT * FROM workqueue.upsert_items('q41', '{"external_id": "A"}')$$)).detail,
    'The value given is of type object.', 'the detail names the type given');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '"A"')$$,
    '22023', 'items must be a JSON array', 'a scalar instead of an array is refused');
SELECT is((wqt.err($$SELECT * FROM workqueue.upsert_items('q41', '"A"')$$)).detail,
    'The value given is of type string.', 'the detail names a scalar''s type');

SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, {"external_id": "B"}, 17]')$$,
    '22023', 'element 3 of items is not a JSON object', 'an element that is not an object is refused');
SELECT is((wqt.err($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, [1]]')$$)).detail,
    'It is of type array.', 'the detail names the element''s type');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, {"external_id": "B"}, {"data": {}}]')$$,
    '22023', 'element 3 of items has no "external_id"', 'an element without external_id is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": null}]')$$,
    '22023', 'element 1 of items has no "external_id"', 'a null external_id is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, {"external_id": true}]')$$,
    '22023', '"external_id" of element 2 must be a string or a number', 'a boolean external_id is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": {"id": 1}}]')$$,
    '22023', '"external_id" of element 1 must be a string or a number', 'an object as external_id is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": ""}]')$$,
    '22023', 'element 1 of items has an empty "external_id"', 'an empty external_id is refused');

SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, {"external_id": "B"}, {"external_id": "C", "priority": 9}]')$$,
    '22003', 'priority 9 of element 3 is out of range', 'priority 9 is out of range');
SELECT results_eq(
    $$SELECT detail, hint FROM wqt.err($q$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": 9}]')$q$)$$,
    $$VALUES ('Priorities run from 1 (highest) to 5 (lowest).',
              'Pass a priority between 1 and 5, or leave it out to keep the item''s priority.')$$,
    'the detail gives the range and the hint the remedy');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": 0}]')$$,
    '22003', 'priority 0 of element 1 is out of range', 'priority 0 is out of range');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": -2}]')$$,
    '22003', 'priority -2 of element 1 is out of range', 'a negative priority is out of range');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": "7"}]')$$,
    '22003', 'priority "7" of element 1 is out of range', 'a numeric string out of range is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": 1e3}]')$$,
    '22003', 'priority 1000 of element 1 is out of range', 'a number in exponent notation is read');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": 2.5}]')$$,
    '22023', 'priority 2.5 of element 1 is not an integer', 'a fractional priority is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": "high"}]')$$,
    '22023', 'priority "high" of element 1 is not a number', 'a non-numeric string priority is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "priority": true}]')$$,
    '22023', 'priority of element 1 must be a number or a numeric string', 'a boolean priority is refused');

SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "data": [1, 2]}]')$$,
    '22023', '"data" of element 1 must be a JSON object', 'data that is an array is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "C", "data": null}]')$$,
    '22023', '"data" of element 1 must be a JSON object', 'null data is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, {"external_id": "C", "titel": "x"}]')$$,
    '22023', 'element 2 of items has unrecognized key "titel"', 'an unrecognized key is refused');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "A"}, {"external_id": "B"}, {"external_id": "A"}]')$$,
    '22023', 'external_id "A" appears in elements 1 and 3 of items', 'a repeated external_id names both positions');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": 12}, {"external_id": "12"}]')$$,
    '22023', 'external_id "12" appears in elements 1 and 2 of items', 'a number and its text form are the same id');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[]', '')$$,
    '22004', 'source must not be empty', 'an empty source name is refused');

-- a bad element after good ones: nothing of the call is written
DO $$ BEGIN PERFORM workqueue.upsert_items('q41', '[{"external_id": "E-1", "data": {"v": 1}}]'); END $$;
SELECT count(*) AS items_before FROM workqueue.item WHERE queue = 'q41' \gset
SELECT count(*) AS events_before FROM workqueue.item_event WHERE queue = 'q41' \gset
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41',
        '[{"external_id": "E-1", "data": {"v": 2}}, {"external_id": "E-2"}, {"external_id": "E-3", "priority": 6}]')$$,
    '22003', 'priority 6 of element 3 is out of range', 'a call with a bad last element fails');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q41'), :items_before::bigint,
    'no item of the failed call was inserted');
SELECT is((SELECT data FROM workqueue.item WHERE queue = 'q41' AND external_id = 'E-1'), '{"v": 1}'::jsonb,
    'no item of the failed call was updated');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE queue = 'q41'), :events_before::bigint,
    'no event of the failed call was written');

------------------------------------------------------------------------------
-- Inserting
------------------------------------------------------------------------------

SELECT is(wqt41.up('q41_other', '[]'), '0/0/0', 'an empty array does nothing');

SELECT is(wqt41.up('q41', $$[
    {"external_id": "I-1", "priority": 1, "data": {"title": "first", "tags": ["a"]}},
    {"external_id": "I-2", "data": {"title": "second"}},
    {"external_id": 1234, "priority": "2"},
    {"external_id": 56.70, "priority": 4.0, "data": {}},
    {"external_id": "I-5", "priority": " 5 "}]$$, 'crm'), '5/0/0', 'five new items are inserted');
SELECT results_eq(
    $$SELECT external_id, priority, data, step, status, source, workflow, workflow_version,
             last_seen_at IS NOT NULL, assignee, claimed_by, notes
        FROM workqueue.item WHERE queue = 'q41' AND external_id <> 'E-1' ORDER BY id$$,
    $$VALUES ('1234', 2::smallint, '{}'::jsonb, 'review', 'open', 'crm', 'review', 1, true, NULL::text, NULL::text, '{}'::jsonb),
             ('56.70', 4::smallint, '{}'::jsonb, 'review', 'open', 'crm', 'review', 1, true, NULL, NULL, '{}'),
             ('I-1', 1::smallint, '{"title": "first", "tags": ["a"]}'::jsonb, 'review', 'open', 'crm', 'review', 1, true, NULL, NULL, '{}'),
             ('I-2', 3::smallint, '{"title": "second"}'::jsonb, 'review', 'open', 'crm', 'review', 1, true, NULL, NULL, '{}'),
             ('I-5', 5::smallint, '{}'::jsonb, 'review', 'open', 'crm', 'review', 1, true, NULL, NULL, '{}')$$,
    'new items start at the start step, open, with defaults, the source and last_seen_at (inserted in external-id order)');
SELECT results_eq(
    $$SELECT i.external_id, e.actor, e.kind, e.from_step, e.to_step, e.payload
        FROM workqueue.item_event e JOIN workqueue.item i ON i.queue = e.queue AND i.id = e.item_id
       WHERE e.queue = 'q41' AND i.external_id IN ('I-1', '1234') ORDER BY e.id$$,
    $$VALUES ('1234', 'crm', 'created', NULL::text, 'review',
              '{"priority": 2, "external_id": "1234", "workflow": "review", "workflow_version": 1, "source": "crm"}'::jsonb),
             ('I-1', 'crm', 'created', NULL, 'review',
              '{"priority": 1, "external_id": "I-1", "workflow": "review", "workflow_version": 1, "source": "crm"}')$$,
    'each new item gets a "created" event by the source');
SELECT is((SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.queue = e.queue AND i.id = e.item_id
            WHERE e.queue = 'q41' AND i.external_id <> 'E-1'), 5::bigint, 'one event per new item');
SELECT is((SELECT actor FROM workqueue.item_event WHERE queue = 'q41' AND payload->>'external_id' = 'E-1'),
    current_user::text, 'without a source the actor is the caller');

SELECT is(wqt41.up('q41_other', '[{"external_id": "I-1"}, {"external_id": "I-2"}]'), '2/0/0',
    'the same external ids in another queue are other items');

-- a workflow whose current version starts elsewhere
SELECT is(workqueue.define_workflow('wq41_flow', '{"steps": [{"name": "intake", "start": true}, {"name": "done", "kind": "resolved"}],
    "transitions": [{"name": "finish", "from": "intake", "to": "done"}]}'), 1, 'a workflow is defined');
SELECT is(workqueue.define_workflow('wq41_flow', '{"steps": [{"name": "triage", "start": true}, {"name": "done", "kind": "resolved"}],
    "transitions": [{"name": "finish", "from": "triage", "to": "done"}]}'), 2, 'and changed');
DO $$ BEGIN PERFORM workqueue.create_queue('q41_flow', 'wq41_flow'); END $$;
SELECT is(wqt41.up('q41_flow', '[{"external_id": "F-1"}]'), '1/0/0', 'an item is upserted into a queue with that workflow');
SELECT results_eq($$SELECT step, workflow, workflow_version FROM workqueue.item WHERE queue = 'q41_flow'$$,
    $$VALUES ('triage', 'wq41_flow', 2)$$, 'it starts at the start step of the current version');

------------------------------------------------------------------------------
-- Change detection
------------------------------------------------------------------------------

CREATE TEMP TABLE before_resync AS SELECT * FROM wqt41.rows('q41');
SELECT count(*) AS events_before FROM workqueue.item_event WHERE queue = 'q41' \gset
SELECT lives_ok($$SELECT wqt41.up('q41', '[
    {"external_id": "I-1", "priority": 1, "data": {"tags": ["a"], "title": "first"}},
    {"external_id": "I-2", "data": {"title": "second"}},
    {"external_id": 1234},
    {"external_id": "56.70", "priority": 4, "data": {}},
    {"external_id": "I-5", "priority": 5}]', 'crm')$$, 'a re-sync of the same records runs');
SELECT is(wqt41.up('q41', '[
    {"external_id": "I-1", "priority": 1, "data": {"tags": ["a"], "title": "first"}},
    {"external_id": "I-2", "data": {"title": "second"}},
    {"external_id": 1234},
    {"external_id": "56.70", "priority": 4, "data": {}},
    {"external_id": "I-5", "priority": 5}]', 'crm'), '0/0/5', 'it counts them all as unchanged');
SELECT results_eq($$SELECT * FROM wqt41.rows('q41')$$, $$SELECT * FROM before_resync$$,
    'unchanged items are not written: same xmin, same ctid');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE queue = 'q41'), :events_before::bigint,
    'and get no event');

-- local state, set by the work queue API and by hand
DO $$
DECLARE
    it bigint := (SELECT id FROM workqueue.item WHERE queue = 'q41' AND external_id = 'I-1');
BEGIN
    PERFORM workqueue.update_fields(it, '{"resolution_note": "keep me"}');
    PERFORM workqueue.claim('q41', 1, 'wq41_worker');   -- priority 1 first: I-1
    UPDATE workqueue.item SET assignee = 'wq41_bob', scope = '{emea}', due_at = '2030-01-01'
     WHERE queue = 'q41' AND external_id = 'I-1';
    UPDATE workqueue.item SET status = 'closed', step = 'review' WHERE queue = 'q41' AND external_id = 'I-2';
END
$$;
CREATE TEMP TABLE local_state AS
SELECT external_id, step, status, assignee, claimed_by, lease_until, notes, scope, due_at, created_at, workflow_version
  FROM workqueue.item WHERE queue = 'q41';
CREATE TEMP TABLE before_update AS SELECT * FROM wqt41.rows('q41');
SELECT id AS i1 FROM workqueue.item WHERE queue = 'q41' AND external_id = 'I-1' \gset
SELECT max(id) AS last_event FROM workqueue.item_event WHERE queue = 'q41' \gset

SELECT is(wqt41.up('q41', '[
    {"external_id": "I-1", "data": {"title": "first, renamed", "tags": ["a"], "owner": "ann"}},
    {"external_id": "I-2", "priority": 2, "data": {"title": "second"}},
    {"external_id": 1234, "priority": 3},
    {"external_id": "56.70", "priority": 1, "data": {"x": null}},
    {"external_id": "I-5"},
    {"external_id": "I-6"}]', 'crm'), '1/4/1', 'one new, four changed, one unchanged');
SELECT results_eq(
    $$SELECT external_id, priority, data FROM workqueue.item WHERE queue = 'q41' AND external_id IN ('I-1', 'I-2', '1234', '56.70') ORDER BY external_id$$,
    $$VALUES ('1234', 3::smallint, '{}'::jsonb),
             ('56.70', 1::smallint, '{"x": null}'::jsonb),
             ('I-1', 1::smallint, '{"title": "first, renamed", "tags": ["a"], "owner": "ann"}'::jsonb),
             ('I-2', 2::smallint, '{"title": "second"}'::jsonb)$$,
    'data and priority are written; an absent priority keeps the item''s');
SELECT results_eq(
    $$SELECT external_id, step, status, assignee, claimed_by, lease_until, notes, scope, due_at, created_at, workflow_version
        FROM workqueue.item WHERE queue = 'q41' AND external_id <> 'I-6' ORDER BY external_id$$,
    $$SELECT * FROM local_state ORDER BY external_id$$,
    'step, status, assignee, claims, notes, scope, due time and workflow version are untouched');
SELECT is((SELECT status FROM workqueue.item WHERE queue = 'q41' AND external_id = 'I-1'), 'in_progress',
    'a claimed item stays claimed');
SELECT is((SELECT status FROM workqueue.item WHERE queue = 'q41' AND external_id = 'I-2'), 'closed',
    'a closed item is updated but stays closed');
SELECT is((SELECT version FROM wqt41.rows('q41') WHERE external_id = 'I-5'),
    (SELECT version FROM before_update WHERE external_id = 'I-5'), 'the unchanged item keeps its xmin and ctid');
SELECT isnt((SELECT version FROM wqt41.rows('q41') WHERE external_id = 'I-1'),
    (SELECT version FROM before_update WHERE external_id = 'I-1'), 'an updated item is a new row version');

SELECT results_eq(
    format($$SELECT i.external_id, e.actor, e.kind, e.from_step, e.to_step, e.payload
               FROM workqueue.item_event e JOIN workqueue.item i ON i.queue = e.queue AND i.id = e.item_id
              WHERE e.queue = 'q41' AND e.id > %s AND e.kind = 'synced' ORDER BY i.external_id$$, :last_event),
    $$VALUES ('1234', 'crm', 'synced', 'review', 'review', '{"old": {"priority": 2}, "new": {"priority": 3}}'::jsonb),
             ('56.70', 'crm', 'synced', 'review', 'review',
              '{"old": {"data": {}, "priority": 4}, "new": {"data": {"x": null}, "priority": 1}}'::jsonb),
             ('I-1', 'crm', 'synced', 'review', 'review',
              '{"old": {"data": {"title": "first"}}, "new": {"data": {"title": "first, renamed", "owner": "ann"}}}'::jsonb),
             ('I-2', 'crm', 'synced', 'review', 'review', '{"old": {"priority": 3}, "new": {"priority": 2}}'::jsonb)$$,
    'each changed item gets one "synced" event with old and new values of what changed');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE queue = 'q41' AND id > :last_event), 5::bigint,
    'four synced events and one created event');

-- a removed key, a nested change
SELECT is(wqt41.up('q41', '[{"external_id": "I-1", "data": {"title": "first, renamed", "tags": ["a", "b"]}}]', 'crm'),
    '0/1/0', 'a key removed and a nested value changed is a change');
SELECT is((SELECT payload FROM workqueue.item_event WHERE queue = 'q41' AND item_id = :i1 ORDER BY id DESC LIMIT 1),
    '{"old": {"data": {"owner": "ann", "tags": ["a"]}}, "new": {"data": {"tags": ["a", "b"]}}}'::jsonb,
    'the event records the removed key on the old side only, and the changed key whole');
SELECT is(wqt41.up('q41', '[{"external_id": "I-1", "data": {"tags": ["a", "b"], "title": "first, renamed"}}]', 'crm'),
    '0/0/1', 'key order does not matter');
SELECT is(wqt41.up('q41', '[{"external_id": "I-1", "priority": "1", "data": {"tags": ["a", "b"], "title": "first, renamed"}}]'),
    '0/0/1', 'an equal priority given as a string is unchanged');
SELECT is(wqt41.up('q41', '[{"external_id": "I-1", "data": {"tags": ["a", "b"], "title": "first, renamed", "n": 1.0}}]'),
    '0/1/0', 'a new key is a change');
SELECT is(wqt41.up('q41', '[{"external_id": "I-1", "data": {"tags": ["a", "b"], "title": "first, renamed", "n": 1}}]'),
    '0/0/1', 'numbers compare by value (1.0 = 1), as jsonb = does');
SELECT is(wqt41.up('q41', '[{"external_id": "I-1"}]', 'crm'), '0/1/0',
    'a record without data empties the item''s data');
SELECT is((SELECT data FROM workqueue.item WHERE id = :i1), '{}'::jsonb, 'data is now {}');

-- source
DO $$ BEGIN PERFORM workqueue.add('q41', '{"v": 1}', 3, 'S-1'); END $$;
SELECT is(wqt41.up('q41', '[{"external_id": "S-1", "data": {"v": 1}}]', 'crm'), '0/0/1',
    'an item added by hand with the same data is unchanged');
SELECT results_eq($$SELECT source, last_seen_at FROM workqueue.item WHERE queue = 'q41' AND external_id = 'S-1'$$,
    $$VALUES (NULL::text, NULL::timestamptz)$$, 'and not written: no source, no last_seen_at');
SELECT is(wqt41.up('q41', '[{"external_id": "S-1", "data": {"v": 2}}]', 'crm'), '0/1/0', 'changed, it is updated');
SELECT results_eq($$SELECT source, last_seen_at = now(), updated_at = now() FROM workqueue.item WHERE queue = 'q41' AND external_id = 'S-1'$$,
    $$VALUES ('crm'::text, true, true)$$, 'its missing source is filled in, last_seen_at and updated_at set');
SELECT is(wqt41.up('q41', '[{"external_id": "S-1", "data": {"v": 3}}]', 'erp'), '0/1/0', 'another source updates it');
SELECT is((SELECT source FROM workqueue.item WHERE queue = 'q41' AND external_id = 'S-1'), 'crm',
    'but does not replace its source');
SELECT is((SELECT actor FROM workqueue.item_event WHERE queue = 'q41' ORDER BY id DESC LIMIT 1), 'erp',
    'the event is by the source that wrote it');

------------------------------------------------------------------------------
-- Larger calls
------------------------------------------------------------------------------

DO $$ BEGIN PERFORM workqueue.create_queue('q41_bulk'); END $$;
SELECT is(wqt41.up('q41_bulk', (SELECT jsonb_agg(jsonb_build_object('external_id', 'B-' || g, 'priority', 1 + g % 5,
                                                                    'data', jsonb_build_object('n', g)))
                                  FROM generate_series(1, 3000) g), 'bulk'),
    '3000/0/0', '3000 new items in one call');
SELECT is(wqt41.up('q41_bulk', (SELECT jsonb_agg(jsonb_build_object('external_id', 'B-' || g, 'priority', 1 + g % 5,
                                                                    'data', jsonb_build_object('n', g + (g % 10 = 0)::int)))
                                  FROM generate_series(2001, 4000) g), 'bulk'),
    '1000/100/900', 'a re-sync with new, changed and unchanged records');
SELECT results_eq(
    $$SELECT count(*), count(*) FILTER (WHERE kind = 'created'), count(*) FILTER (WHERE kind = 'synced')
        FROM workqueue.item_event WHERE queue = 'q41_bulk'$$,
    $$VALUES (4100::bigint, 4000::bigint, 100::bigint)$$, 'with one event per inserted or changed item');
SELECT is((SELECT count(DISTINCT external_id) FROM workqueue.item WHERE queue = 'q41_bulk'), 4000::bigint,
    'and one item per external id');
-- 3 records against 4000 items: looked up by index probes instead of a pass over the queue
SELECT is(wqt41.up('q41_bulk', '[{"external_id": "B-5", "priority": 1, "data": {"n": 5}},
                                 {"external_id": "B-10", "data": {"n": 11}}, {"external_id": "B-9999"}]', 'bulk'),
    '1/1/1', 'a few records against a large queue (index probes) are told apart the same way');

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------

CREATE ROLE wq41_alice LOGIN;
SET ROLE wq41_alice;
SELECT throws_ok($$INSERT INTO workqueue.item (queue, external_id, step, workflow, workflow_version)
                   VALUES ('q41', 'X', 'review', 'review', 1)$$,
    '42501', 'permission denied for table item', 'an ordinary role cannot insert items directly');
SELECT is(wqt41.up('q41', '[{"external_id": "P-1", "data": {"by": "alice"}}]'), '1/0/0',
    'but may upsert them through the API');
SELECT throws_ok($$SELECT * FROM workqueue.upsert_items('q41', '[{"external_id": "P-2"}]', 'crm')$$,
    '42501', 'role "wq41_alice" cannot act as "crm"',
    'naming a source, which becomes the events'' actor, is acting for someone else');
SELECT is(wqt41.up('q41', '[{"external_id": "P-3"}]', 'wq41_alice'), '1/0/0', 'naming oneself is allowed');
RESET ROLE;
SELECT is((SELECT actor FROM workqueue.item_event WHERE queue = 'q41' AND payload->>'external_id' = 'P-1'),
    'wq41_alice', 'the actor is the calling role');
CREATE ROLE wq41_app LOGIN;
GRANT workqueue_agent TO wq41_app;
SET ROLE wq41_app;
SELECT is(wqt41.up('q41', '[{"external_id": "P-2"}]', 'crm'), '1/0/0', 'a member of workqueue_agent may name a source');
RESET ROLE;
SELECT is((SELECT actor FROM workqueue.item_event WHERE queue = 'q41' AND payload->>'external_id' = 'P-2'),
    'crm', 'and the source is the actor');

SELECT * FROM finish();
ROLLBACK;
