-- missing_ids(queue, ids): external ids with no item in the queue (SPEC §4).
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (q40_*, wq40_*) so that files may run in parallel.  Both ways of
-- looking ids up are covered: reading the queue's index range (an input
-- about as large as the queue) and probing the index per id (a tiny input
-- against a larger queue), and the SQL path taken when workqueue.item is a
-- Citus table (faked at the end); odd ids are checked against a plain SQL
-- anti-join on every path.  5M ids are in 90_hostile.sql, timings in
-- bench/missing_ids.sh.
BEGIN;
SELECT plan(45);


-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises.
SELECT has_function('workqueue', 'missing_ids', ARRAY['text', 'text[]'], 'missing_ids(text, text[]) exists');
SELECT function_returns('workqueue', 'missing_ids', ARRAY['text', 'text[]'], 'setof text',
    'missing_ids returns setof text');

DO $$
BEGIN
    PERFORM workqueue.create_queue('q40_a');
    PERFORM workqueue.create_queue('q40_b');
    PERFORM workqueue.add('q40_a', '{}', 3, x) FROM unnest(ARRAY['A-1', 'A-2', 'A-3', 'shared']) x;
    PERFORM workqueue.add('q40_b', '{}', 3, x) FROM unnest(ARRAY['B-1', 'B-2', 'A-4']) x;
    PERFORM workqueue.add('q40_a');     -- an item without an external id
END
$$;

------------------------------------------------------------------------------
-- Errors
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT * FROM workqueue.missing_ids('q40_nope', ARRAY['x'])$$,
    '42704', 'queue "q40_nope" does not exist', 'an unknown queue is refused');
SELECT is((wqt.err($$SELECT * FROM workqueue.missing_ids('q40_nope', ARRAY['x'])$$)).hint,
    (wqt.err($$SELECT workqueue._queue('q40_nope'::text)$$)).hint,
    'with the same hint as the rest of the API');
SELECT throws_ok($$SELECT * FROM workqueue.missing_ids('q40_nope', NULL)$$,
    '42704', 'queue "q40_nope" does not exist', 'the queue is checked even for a NULL array');
SELECT throws_ok($$SELECT * FROM workqueue.missing_ids(NULL, ARRAY['x'])$$,
    '22004', 'queue name must not be null', 'a NULL queue name is refused');

------------------------------------------------------------------------------
-- Order, duplicates, NULLs
------------------------------------------------------------------------------

SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY['N-3', 'A-1', 'N-1', 'A-2', 'N-2']) x$$,
    $$VALUES (ARRAY['N-3', 'N-1', 'N-2'])$$,
    'missing ids come back in input order');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a',
        ARRAY['N-2', NULL, 'A-1', 'N-1', 'N-2', NULL, 'A-1', 'N-1', 'N-3']) x$$,
    $$VALUES (ARRAY['N-2', 'N-1', 'N-3'])$$,
    'duplicates are returned once, at their first position, and NULLs are ignored');
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['A-3', 'A-1', 'shared', 'A-2'])$$,
    'ids that all exist give no rows');
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', '{}')$$, 'an empty array gives no rows');
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', NULL)$$, 'a NULL array gives no rows');
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY[NULL, NULL]::text[])$$,
    'an array of NULLs gives no rows');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY['a-1', 'A-1 ', 'A-1', '']) x$$,
    $$VALUES (ARRAY['a-1', 'A-1 ', ''])$$,
    'ids are compared exactly: case, trailing blanks and the empty string count');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', '{{N-1, A-1}, {N-2, N-1}}'::text[]) x$$,
    $$VALUES (ARRAY['N-1', 'N-2'])$$,
    'a two-dimensional array is read in storage order');

------------------------------------------------------------------------------
-- Queues are separate
------------------------------------------------------------------------------

SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY['B-1', 'A-1', 'A-4', 'shared']) x$$,
    $$VALUES (ARRAY['B-1', 'A-4'])$$,
    'items of another queue do not count');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_b', ARRAY['B-1', 'A-1', 'A-4', 'shared']) x$$,
    $$VALUES (ARRAY['A-1', 'shared'])$$,
    'and the other way round');
DO $$ BEGIN PERFORM workqueue.create_queue('q40_empty'); END $$;
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_empty', ARRAY['A-1', 'B-1']) x$$,
    $$VALUES (ARRAY['A-1', 'B-1'])$$,
    'against an empty queue every id is missing');

------------------------------------------------------------------------------
-- Strategies: read the queue's index range, or probe per id
------------------------------------------------------------------------------

DO $$
BEGIN
    PERFORM workqueue.create_queue('q40_big');
    PERFORM workqueue.add('q40_big', '{}', 3, 'K-' || g) FROM generate_series(1, 3000) g;
END
$$;

-- 6 ids against 3000 items: the pass gives up after 6 * 32 entries and probes
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_big',
        ARRAY['K-2999', 'K-0', 'K-17', 'K-3001', 'K-1', 'K-17']) x$$,
    $$VALUES (ARRAY['K-0', 'K-3001'])$$,
    'a tiny input against a larger queue (index probes) is right');
-- 4000 ids against 3000 items: one pass over the queue
SELECT results_eq(
    $$SELECT count(*), min(x), max(x) FROM workqueue.missing_ids('q40_big',
        ARRAY(SELECT 'K-' || g FROM generate_series(4000, 1, -1) g)) x$$,
    $$VALUES (1000::bigint, 'K-3001', 'K-4000')$$,
    'an input as large as the queue (one index pass) is right');
SELECT results_eq(
    $$SELECT array_agg(x) FROM (SELECT x FROM workqueue.missing_ids('q40_big',
        ARRAY(SELECT 'K-' || g FROM generate_series(4000, 1, -1) g)) x LIMIT 3) y$$,
    $$VALUES (ARRAY['K-4000', 'K-3999', 'K-3998'])$$,
    'and keeps the input order');

-- long ids are stored compressed in the index
DO $$ BEGIN PERFORM workqueue.add('q40_a', '{}', 3, repeat('long-', 400)); END $$;
SELECT results_eq(
    format($$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY[%L, %L, 'A-1']) x$$,
           repeat('long-', 400), repeat('long-', 401)),
    format($$VALUES (ARRAY[%L])$$, repeat('long-', 401)),
    'a long (compressed) external id is found by reading the queue');
SELECT results_eq(
    format($$SELECT array_agg(x) FROM workqueue.missing_ids('q40_big', ARRAY[%L, 'K-5']) x
             UNION ALL SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY[%L]) x$$,
           repeat('long-', 400), repeat('long-', 400)),
    format($$VALUES (ARRAY[%L]), (NULL::text[])$$, repeat('long-', 400)),
    'and by probing');

SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY['Zürich-1', 'A-1', '東京', 'Zürich-1']) x$$,
    $$VALUES (ARRAY['Zürich-1', '東京'])$$,
    'non-ASCII ids work');

-- 200k ids, half of them present
DO $$ BEGIN PERFORM workqueue.create_queue('q40_many'); END $$;
INSERT INTO workqueue.item (queue, external_id, step, workflow, workflow_version)
SELECT 'q40_many', 'M-' || g, 'review', 'review', 1 FROM generate_series(1, 100000) g;
SELECT results_eq(
    $$SELECT count(*), count(DISTINCT x), min(substr(x, 3)::int), max(substr(x, 3)::int)
        FROM workqueue.missing_ids('q40_many', ARRAY(SELECT 'M-' || g FROM generate_series(1, 200000) g)) x$$,
    $$VALUES (100000::bigint, 100000::bigint, 100001, 200000)$$,
    '200k ids against 100k items: the 100k missing ones');

------------------------------------------------------------------------------
-- Odd ids, checked against a plain SQL anti-join
------------------------------------------------------------------------------

-- Ids with the characters of array literals and SQL, blanks, the empty
-- string, composed and decomposed accents, case pairs that some collations
-- fold, long (compressed) ids.  Every other one has an item in q40_odd,
-- among 2000 fillers; the input holds each 3 times (NULLs between) in a
-- scrambled order.
CREATE TEMP TABLE odd40 (x text);
INSERT INTO odd40 VALUES ('a,b'), ('{x}'), ('"q"'), ('back\slash'), (E'new\nline'), (E'tab\t'), ('NULL'),
    ('null'), (''), (' '), ('  '), (U&'\00E9'), (U&'e\0301'), ('ß'), ('SS'), ('ss'), ('İ'), ('i'), ('I'),
    (repeat('z', 2040)), (repeat('z', 2039)), (repeat('y', 1000) || 'é'), ('😀'), (U&'\FEFF'), (E'\\'),
    (''''), ('a''b'), ('{}'), ('(1,2)'), ('k-1'), ('K-1'), ('K-1 '), (' K-1');
DO $$
BEGIN
    PERFORM workqueue.create_queue('q40_odd');
END
$$;
-- inserted directly: add() refuses some of them (the empty string, for one)
INSERT INTO workqueue.item (queue, external_id, step, workflow, workflow_version)
SELECT 'q40_odd', x, 'review', 'review', 1
  FROM (SELECT x, row_number() OVER (ORDER BY md5(x)) AS n FROM odd40 UNION ALL
        SELECT 'F-' || g, 0 FROM generate_series(1, 2000) g) o WHERE n % 2 = 0;
-- the odd ids 3 times, 5 NULLs and F-1990 .. F-(1990 + fillers), scrambled
CREATE FUNCTION pg_temp.odd40_input(fillers int) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(x ORDER BY md5(coalesce(x, '') || r || k))
      FROM (SELECT x, r, 'o' AS k FROM odd40, generate_series(1, 3) r
            UNION ALL SELECT NULL, r, 'n' FROM generate_series(1, 5) r
            UNION ALL SELECT 'F-' || g, 1, 'f' FROM generate_series(1990, 1990 + fillers) g) s
$$;
-- the same question in SQL
CREATE FUNCTION pg_temp.anti40(queue text, ids text[]) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT x FROM (SELECT DISTINCT ON (x COLLATE "C") x, n FROM unnest(ids) WITH ORDINALITY u(x, n)
                    WHERE x IS NOT NULL ORDER BY x COLLATE "C", n) d
     WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = anti40.queue AND i.external_id = d.x)
     ORDER BY n
$$;

SELECT results_eq(
    $$SELECT * FROM workqueue.missing_ids('q40_odd', pg_temp.odd40_input(0))$$,
    $$SELECT * FROM pg_temp.anti40('q40_odd', pg_temp.odd40_input(0))$$,
    'odd ids, duplicates and NULLs against a larger queue (index probes): as the SQL anti-join');
SELECT results_eq(
    $$SELECT * FROM workqueue.missing_ids('q40_odd', pg_temp.odd40_input(3000))$$,
    $$SELECT * FROM pg_temp.anti40('q40_odd', pg_temp.odd40_input(3000))$$,
    'odd ids, duplicates and NULLs among 3000 fillers (one index pass): as the SQL anti-join');
SELECT is((SELECT count(*) FROM workqueue.missing_ids('q40_odd', pg_temp.odd40_input(0))), 17::bigint,
    '17 of the 33 odd ids are missing');

------------------------------------------------------------------------------
-- Visibility and privileges
------------------------------------------------------------------------------

DO $$ BEGIN PERFORM workqueue.add('q40_a', '{}', 3, 'A-new'); END $$;
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['A-new'])$$,
    'an item added earlier in the same transaction is seen');
SAVEPOINT before_rollback;
DO $$ BEGIN PERFORM workqueue.add('q40_a', '{}', 3, 'A-gone'); END $$;
ROLLBACK TO SAVEPOINT before_rollback;
SELECT results_eq($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['A-gone'])$$,
    $$VALUES ('A-gone'::text)$$, 'an item whose insert was rolled back is missing');
DO $$ BEGIN PERFORM workqueue.add('q40_a', '{}', 3, 'A-gone'); END $$;
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['A-gone'])$$,
    'an id added again after a rolled-back insert is seen (its first index entry is dead)');
DELETE FROM workqueue.item_event e USING workqueue.item i
 WHERE e.queue = i.queue AND e.item_id = i.id AND i.queue = 'q40_a' AND i.external_id = 'A-3';
DELETE FROM workqueue.item WHERE queue = 'q40_a' AND external_id = 'A-3';
SELECT results_eq($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['A-3', 'A-2'])$$,
    $$VALUES ('A-3'::text)$$, 'an item deleted earlier in the same transaction is missing');

CREATE ROLE wq40_reader LOGIN;
SET ROLE wq40_reader;
SELECT results_eq($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['A-1', 'N-1'])$$,
    $$VALUES ('N-1'::text)$$, 'an ordinary role may call missing_ids');
RESET ROLE;

SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'workqueue.missing_ids(text, text[])'::regprocedure),
    's', 'missing_ids is STABLE');
SELECT ok((SELECT prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp']
             FROM pg_proc WHERE oid = 'workqueue.missing_ids(text, text[])'::regprocedure),
    'missing_ids is SECURITY DEFINER with a pinned search_path');

------------------------------------------------------------------------------
-- The SQL path, taken when workqueue.item is a Citus table
------------------------------------------------------------------------------

-- A stand-in for Citus's metadata table, rolled back with the rest.  With
-- index scans off, the SQL path reads workqueue.item with a sequential scan
-- and the index pass never does: that tells which path ran.
SET LOCAL allow_system_table_mods = on;
CREATE TABLE pg_catalog.pg_dist_partition (logicalrelid regclass);
RESET allow_system_table_mods;
CREATE FUNCTION pg_temp.seq40() RETURNS bigint LANGUAGE sql AS $$
    SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'workqueue.item'::regclass
$$;
CREATE TEMP TABLE seq40 AS SELECT pg_temp.seq40() AS n;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT results_eq($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['N-1', 'A-1'])$$,
    $$VALUES ('N-1'::text)$$, 'pg_dist_partition without workqueue.item: the index pass');
SELECT is(pg_temp.seq40(), (SELECT n FROM seq40), 'which reads no table');
INSERT INTO pg_catalog.pg_dist_partition VALUES ('workqueue.item');
SELECT results_eq($$SELECT * FROM workqueue.missing_ids('q40_a', ARRAY['N-1', 'A-1'])$$,
    $$VALUES ('N-1'::text)$$, 'workqueue.item distributed: the SQL path');
SELECT is(pg_temp.seq40(), (SELECT n FROM seq40) + 1, 'which reads workqueue.item through SQL');
RESET enable_indexscan;
RESET enable_bitmapscan;

SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a',
        ARRAY['N-2', NULL, 'A-1', 'N-1', 'N-2', NULL, 'A-1', 'N-1', 'N-3']) x$$,
    $$VALUES (ARRAY['N-2', 'N-1', 'N-3'])$$,
    'SQL path: duplicates once, at their first position, NULLs ignored');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_b', ARRAY['B-1', 'A-1', 'A-4', 'shared']) x$$,
    $$VALUES (ARRAY['A-1', 'shared'])$$,
    'SQL path: items of another queue do not count');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', '{{N-1, A-1}, {N-2, N-1}}'::text[]) x$$,
    $$VALUES (ARRAY['N-1', 'N-2'])$$,
    'SQL path: a two-dimensional array');
SELECT results_eq(
    $$SELECT * FROM workqueue.missing_ids('q40_odd', pg_temp.odd40_input(3000))$$,
    $$SELECT * FROM pg_temp.anti40('q40_odd', pg_temp.odd40_input(3000))$$,
    'SQL path: odd ids, duplicates and NULLs as the SQL anti-join');
SELECT results_eq(
    $$SELECT array_agg(x) FROM workqueue.missing_ids('q40_a', ARRAY['A-gone', 'A-3', 'A-new', 'A-2']) x$$,
    $$VALUES (ARRAY['A-3'])$$,
    'SQL path: the statement''s snapshot (added, re-added and deleted in this transaction)');
SELECT is_empty($$SELECT * FROM workqueue.missing_ids('q40_a', NULL)$$, 'SQL path: a NULL array gives no rows');
SELECT throws_ok($$SELECT * FROM workqueue.missing_ids('q40_nope', ARRAY['x'])$$,
    '42704', 'queue "q40_nope" does not exist', 'SQL path: an unknown queue is refused');

SELECT * FROM finish();
ROLLBACK;
