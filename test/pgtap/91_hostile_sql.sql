-- Hostile input against the SQL function bodies of 0.5: name and
-- external-id length limits in the SQL API, NULL queue names,
-- lease_timeout's upper bound, workflow_graph's mermaid output of a
-- 20,000-step workflow, and _dot_id() under a hostile search_path.  See
-- 90_hostile.sql for the rest and doc/hostile-input.md for the limits.
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (q91_*, h91_*) so that files may run in parallel.
BEGIN;
SELECT plan(42);

SET LOCAL timezone = 'UTC';

SELECT has_function('workqueue', '_check_name', ARRAY['text', 'text'], '_check_name(what, name) exists');
SELECT has_function('workqueue', '_check_external_id', ARRAY['text'], '_check_external_id(external_id) exists');

------------------------------------------------------------------------------
-- Names: at most 255 bytes
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.create_queue(repeat('x', 5 * 1024 * 1024))$$,
    '42622', 'queue name is too long', 'create_queue: a 5 MB name');
SELECT is((wqt.err($$SELECT workqueue.create_queue(repeat('q', 100000))$$)).detail,
    'The name is 100000 bytes long; the limit is 255 bytes. It begins "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...".',
    'create_queue: a compressible 100,000-byte name (it used to be stored, and break every add())');
SELECT throws_ok($$SELECT workqueue.create_queue(repeat('x', 256))$$,
    '42622', 'queue name is too long', 'create_queue: 256 bytes');
SELECT throws_ok($$SELECT workqueue.define_workflow(repeat('w', 256), '{"steps": [{"name": "a", "start": true}]}')$$,
    '42622', 'workflow name is too long', 'define_workflow: a 256-byte name');
SELECT throws_ok($$SELECT workqueue.create_source(repeat('s', 256), 'q91', 'http://x/', NULL)$$,
    '42622', 'source name is too long', 'create_source: a 256-byte name');
SELECT throws_ok($$SELECT workqueue.create_calendar(repeat('c', 256), 'UTC', '{}')$$,
    '42622', 'calendar name is too long', 'create_calendar: a 256-byte name');
SELECT throws_ok($$SELECT workqueue.add_member(repeat('r', 256), 'm')$$,
    '42622', 'role name is too long', 'add_member: a 256-byte role');
SELECT throws_ok($$SELECT workqueue.add_member('r', repeat('m', 256))$$,
    '42622', 'member name is too long', 'add_member: a 256-byte member');
SELECT is((wqt.err($$SELECT workqueue._check_name('queue', repeat('é', 200))$$)).detail,
    'The name is 400 bytes long; the limit is 255 bytes. It begins "éééééééééééééééééééé...".',
    'the limit counts bytes; the detail quotes 40 bytes, cut between characters');
SELECT is(workqueue._check_name('queue', NULL)::text, '', '_check_name: NULL passes (the caller decides about NULL)');

-- the longest names, of the characters JSON escapes most, still fit every
-- NOTIFY payload: a queue and a step of 255 control characters each
SELECT is(workqueue.define_workflow('wf91_ctl', jsonb_build_object('steps', jsonb_build_array(
              jsonb_build_object('name', repeat(E'\x02', 255), 'start', true),
              jsonb_build_object('name', 'done', 'kind', 'resolved')),
          'transitions', jsonb_build_array(jsonb_build_object('name', 'finish', 'from', repeat(E'\x02', 255), 'to', 'done')))),
    1, 'a workflow whose start step is 255 control characters');
SELECT is(workqueue.create_queue(repeat(E'\x01', 255), 'wf91_ctl')::text, '', 'a queue of 255 control characters');
SELECT workqueue.add(repeat(E'\x01', 255)) AS ctl \gset
SELECT is((SELECT step FROM workqueue.item WHERE id = :ctl), repeat(E'\x02', 255), 'add() to it (a NOTIFY of 3 kB)');
SELECT is((SELECT (workqueue.claim(repeat(E'\x01', 255))).id), :ctl::bigint, 'claim() from it');
SELECT is((workqueue.transition(:ctl, 'finish')).status, 'resolved', 'transition() in it');

------------------------------------------------------------------------------
-- External ids: not empty, at most 2048 bytes
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q91') AS _ \gset
SELECT throws_ok($$SELECT workqueue.add('q91', '{}', 3, '')$$,
    '22023', 'external id must not be empty', 'add: an empty external id (as upsert_items)');
SELECT throws_ok($$SELECT workqueue.add('q91', '{}', 3, repeat('x', 5 * 1024 * 1024))$$,
    '22001', 'external id is too long', 'add: a 5 MB external id');
SELECT is((wqt.err($$SELECT workqueue.add('q91', '{}', 3, repeat('x', 2049))$$)).detail,
    'The external id is 2049 bytes long; the limit is 2048 bytes. It begins "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...".',
    'add: 2049 bytes, with the facts in the detail');
SELECT ok(workqueue.add('q91', '{}', 3, repeat('é', 1024)) > 0, 'add: exactly 2048 bytes');
SELECT left(string_agg(md5(g::text), ''), 255) AS longq FROM generate_series(1, 8) g \gset
SELECT workqueue.create_queue(:'longq') AS _ \gset
SELECT ok(workqueue.add(:'longq', '{}', 3, (SELECT string_agg(md5(g::text), '') FROM generate_series(100, 163) g)) > 0,
    'add: 2048 bytes that do not compress, in a queue of the longest name: the index entry fits');
SELECT is((SELECT count(*) FROM workqueue.missing_ids('q91', ARRAY[repeat('é', 1024)])), 0::bigint,
    'missing_ids finds them');

------------------------------------------------------------------------------
-- NULL queue names, lease_timeout, NULL workflow
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.add(NULL)$$,
    '22004', 'queue name must not be null', 'add: NULL queue');
SELECT throws_ok($$SELECT workqueue.claim(NULL)$$,
    '22004', 'queue name must not be null', 'claim: NULL queue');
SELECT throws_ok($$SELECT workqueue.list_items(NULL)$$,
    '22004', 'queue name must not be null', 'list_items: NULL queue');
SELECT throws_ok($$SELECT workqueue.get_items_by_external(NULL, '{a}')$$,
    '22004', 'queue name must not be null', 'get_items_by_external: NULL queue');
SELECT throws_ok($$SELECT workqueue.create_source('h91_s', NULL, 'http://x/', NULL)$$,
    '22004', 'queue name must not be null', 'create_source: NULL queue');
SELECT workqueue.create_source('h91_src', 'q91', 'http://x/', NULL) AS _ \gset
SELECT throws_ok($$SELECT workqueue.alter_source('h91_src', '{"queue": null}')$$,
    '22004', 'queue name must not be null', 'alter_source: a null queue');
SELECT throws_ok($$SELECT workqueue.create_queue('q91_n', NULL)$$,
    '22004', 'workflow name must not be null', 'create_queue: NULL workflow');
SELECT throws_ok($$SELECT workqueue.create_queue('q91_long', 'review', NULL, '1000000 years')$$,
    '22023', 'lease_timeout must be at most 1 year', 'create_queue: a lease of 1000000 years (claim() used to fail)');
SELECT throws_ok($$SELECT workqueue.create_queue('q91_long', 'review', NULL, '1 year 1 second')$$,
    '22023', 'lease_timeout must be at most 1 year', 'create_queue: just over a year');
SELECT is(workqueue.create_queue('q91_year', 'review', NULL, '1 year')::text, '', 'create_queue: a lease of 1 year');
SELECT ok(workqueue.add('q91_year') > 0 AND (SELECT count(*) FROM workqueue.claim('q91_year')) = 1,
    'and claim() works in it');

------------------------------------------------------------------------------
-- workflow_graph of a 20,000-step workflow, in mermaid
------------------------------------------------------------------------------

SELECT workqueue.define_workflow('wf91_big', jsonb_build_object(
    'steps', (SELECT jsonb_agg(jsonb_build_object('name', 's' || i, 'start', i = 1) ORDER BY i)
                FROM generate_series(1, 20000) i),
    'transitions', (SELECT jsonb_agg(jsonb_build_object('name', 't' || i, 'from', 's' || i, 'to', 's' || (i + 1))
                                     ORDER BY i) FROM generate_series(1, 19999) i))) AS _ \gset
CREATE TEMP TABLE graph AS
SELECT clock_timestamp() AS t0, workqueue.workflow_graph('wf91_big', NULL, 'mermaid') AS g, clock_timestamp() AS t1;
SELECT ok((SELECT t1 - t0 < interval '5 seconds' FROM graph), 'mermaid graph of 20,000 steps in less than 5 s');
SELECT is((SELECT array_length(regexp_split_to_array(g, E'\n'), 1) FROM graph), 1 + 20000 + 1 + 19999,
    'with every state and every edge');
SELECT ok((SELECT g LIKE E'%\n  s19999 --> s20000: t19999' FROM graph), 'the last edge by position');

------------------------------------------------------------------------------
-- _dot_id under a hostile search_path
------------------------------------------------------------------------------

CREATE SCHEMA h91_evil;
CREATE FUNCTION h91_evil.boom() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hijacked by h91_evil';
END
$$;
CREATE FUNCTION h91_evil.replace(text, text, text) RETURNS text LANGUAGE sql AS $$ SELECT h91_evil.boom() $$;
CREATE FUNCTION h91_evil.textcat(text, text) RETURNS text LANGUAGE sql AS $$ SELECT h91_evil.boom() $$;
CREATE OPERATOR h91_evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = h91_evil.textcat);
CREATE FUNCTION pg_temp.evil(sql text) RETURNS text LANGUAGE plpgsql
    SET search_path = h91_evil, pg_catalog, public AS $$
DECLARE
    r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
END
$$;
SELECT throws_ok($$SELECT pg_temp.evil('SELECT ''a'' || ''b''')$$, 'P0001', 'hijacked by h91_evil',
    'the hostile path does replace || for plain SQL');
SELECT is(pg_temp.evil($$SELECT workqueue._dot_id('say "hi"\')$$), '"say \"hi\"\\"', '_dot_id is not hijacked');

RESET search_path;
SELECT workqueue.add('q91') AS c91 \gset
SELECT throws_ok(format($$SELECT workqueue.comment(%s, E'\t\n \r')$$, :c91), '22023', 'comment must not be empty',
    'comment: tabs and newlines are blank');
SELECT throws_ok($$SELECT workqueue.remove_member(NULL, 'x')$$, '22004', 'role and member must not be null',
    'remove_member: a NULL role');
SELECT throws_ok($$SELECT workqueue.workflow_graph(NULL)$$, '22004', 'workflow name must not be null',
    'workflow_graph: a NULL name');

SELECT * FROM finish();
ROLLBACK;
