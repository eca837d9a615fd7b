-- Sources and sync requests: validation, errors, secrets, scheduling.
-- (Runs of the worker against the sample API are in test/scripts/sync.sh.)
BEGIN;
SELECT plan(43);

SELECT workqueue.create_queue('q50');

-- create_source: every option is validated by the worker's own parser
SELECT lives_ok($$SELECT workqueue.create_source('s50', 'q50', 'http://127.0.0.1:9/ids',
    'http://127.0.0.1:9/details?ids={ids}',
    '{"ids_path": "$.ids", "batch_size": 50, "mapping": {"priority": "$.severity", "data.title": "$.name"},
      "headers": {"Authorization": "Bearer s3cret"}, "pagination": {"next_url_path": "$.next"}}')$$,
    'a source with paths, mapping, headers and pagination');
SELECT throws_ok($$SELECT workqueue.create_source('s50', 'q50', 'http://127.0.0.1:9/ids', NULL)$$,
    '42710', 'source "s50" already exists', 'duplicate source name');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'nope', 'http://127.0.0.1:9/ids', NULL)$$,
    '42704', 'queue "nope" does not exist', 'unknown queue');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'ftp://127.0.0.1/ids', NULL)$$,
    '22023', 'ids_url must be an http or https URL', 'not an http URL');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', NULL, NULL)$$,
    '22004', 'ids_url must not be null', 'no ids_url');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', 'http://h/details')$$,
    '22023', 'details_url must contain "{ids}" for GET requests', 'GET details without {ids}');
SELECT lives_ok($$SELECT workqueue.create_source('post50', 'q50', 'http://h/ids', 'http://h/details',
    '{"details_method": "POST"}')$$, 'POST details need no {ids}');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"batchsize": 5}')$$,
    '22023', 'unrecognized source option "batchsize"', 'a misspelt option');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"batch_size": 0}')$$,
    '22023', 'option "batch_size" must be an integer between 1 and 10000', 'batch_size out of range');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"retries": "3"}')$$,
    '22023', 'option "retries" must be a number', 'retries of the wrong type');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"ids_path": "$.["}')$$,
    '42601', NULL, 'an invalid jsonpath');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"details_method": "PUT"}')$$,
    '22023', 'option "details_method" must be GET or POST', 'an unknown method');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"mapping": {"step": "$.s"}}')$$,
    '22023', 'unrecognized mapping target "step"', 'mapping a locally owned field');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"headers": {"X": 1}}')$$,
    '22023', 'value of HTTP header "X" must be a single-line string', 'a header that is not a string');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"pagination": {"cursor_path": "$.c"}}')$$,
    '22023', 'cursor pagination needs "cursor_param"', 'cursor pagination without its parameter');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL,
    '{"pagination": {"link_header": true, "next_url_path": "$.n"}}')$$,
    '22023', 'option "pagination" names several pagination styles', 'two pagination styles');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"pagination": {"offset_param": "o"}}')$$,
    '22023', 'offset pagination needs "limit_param" and "limit"', 'offset pagination without a limit');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"pagination": {"max_pages": 0}}')$$,
    '22023', 'option "pagination.max_pages" must be an integer between 1 and 10000000', 'max_pages out of range');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '{"confirm_close": true}')$$,
    '22023', 'option "confirm_close" needs a details_url', 'confirm_close without details');
SELECT throws_ok($$SELECT workqueue.create_source('x', 'q50', 'http://h/ids', NULL, '[]')$$,
    '22023', 'source options must be a JSON object', 'options not an object');
SELECT is((SELECT count(*) FROM workqueue.source WHERE name = 'x'), 0::bigint, 'no failed definition was stored');

-- alter_source: columns change, options merge, a null removes an option
SELECT lives_ok($$SELECT workqueue.alter_source('s50', '{"ids_url": "http://127.0.0.1:9/v2/ids", "batch_size": 20, "pagination": null}')$$,
    'alter_source changes a URL and merges options');
SELECT results_eq($$SELECT ids_url, options->'batch_size', options ? 'pagination', options->>'ids_path' FROM workqueue.source WHERE name = 's50'$$,
    $$VALUES ('http://127.0.0.1:9/v2/ids', '20'::jsonb, false, '$.ids')$$, '... keeping the other options');
SELECT throws_ok($$SELECT workqueue.alter_source('s50', '{"batch_size": -1}')$$,
    '22023', 'option "batch_size" must be an integer between 1 and 10000', 'alter_source validates the result');
SELECT is((SELECT options->'batch_size' FROM workqueue.source WHERE name = 's50'), '20'::jsonb, '... and changes nothing on error');
SELECT throws_ok($$SELECT workqueue.alter_source('nope', '{}')$$, '42704', 'source "nope" does not exist', 'unknown source');

-- secrets: headers hidden from ordinary roles
CREATE ROLE wq50_user LOGIN;
SET ROLE wq50_user;
SELECT throws_ok($$SELECT options FROM workqueue.source$$, '42501', NULL, 'ordinary roles cannot read source options');
SELECT results_eq($$SELECT has_headers, options ? 'headers' FROM workqueue.sources WHERE name = 's50'$$,
    $$VALUES (true, false)$$, 'the sources view shows a source without its headers');
SELECT throws_ok($$SELECT workqueue.create_source('y', 'q50', 'http://h/ids', NULL)$$, '42501', 'permission denied to create sources',
    'ordinary roles cannot define sources');
SELECT throws_ok($$SELECT workqueue.alter_source('s50', '{}')$$, '42501', 'permission denied to alter sources',
    'ordinary roles cannot alter sources');
SELECT lives_ok($$SELECT workqueue.sync('s50')$$, 'ordinary roles may request a sync');
SELECT is(workqueue.sync('s50', force => true), workqueue.sync('s50'),
    'an ordinary role''s force => true gets the queued run, not another one');
SELECT is(workqueue.sync('s50', true, true), workqueue.sync('s50'), '... also for a full run');
RESET ROLE;
SELECT is((SELECT count(*) FROM workqueue.sync_run WHERE source = 's50' AND status IN ('queued', 'running')), 1::bigint,
    'so an ordinary role cannot queue runs beyond the one queued');

-- sync requests
SELECT is(workqueue.sync('s50'), workqueue.sync('s50'), 'a second request returns the queued run');
SELECT isnt(workqueue.sync('s50', force => true), workqueue.sync('s50'), 'force queues another run');
SELECT is((SELECT triggered_by FROM workqueue.sync_run ORDER BY id LIMIT 1), 'wq50_user', 'the run records who asked');
SELECT throws_ok($$SELECT workqueue.sync('nope')$$, '42704', 'source "nope" does not exist', 'sync of an unknown source');
SELECT throws_ok($$SELECT workqueue.wait(-1)$$, '42704', 'sync run -1 does not exist', 'wait for an unknown run');
-- a run queued by this transaction (every run here is): the worker cannot
-- see it before the commit, so wait() refuses at once instead of waiting
-- out its timeout (issue 14.4; the timeout itself: test/scripts/sync.sh)
SELECT workqueue.sync('s50') AS queued_run \gset
SELECT is((SELECT ROW(e.state, e.msg, e.detail, e.hint)::text FROM wqt.err(format($$SELECT workqueue.wait(%s)$$, :queued_run)) e),
    ROW('55000', format('sync run %s was queued by this transaction', :queued_run),
        'The worker cannot see the run until the transaction that queued it commits.',
        format('Commit first, then wait in a statement of its own: SELECT workqueue.sync(...) AS run \gset, then SELECT * FROM workqueue.wait(%s);', :queued_run))::text,
    'wait() on a run of this transaction fails at once, with the two-statement form as hint');
SELECT throws_ok($$SELECT workqueue.wait(workqueue.sync('s50', force => true))$$,
    '55000', NULL, 'wait(sync(...)) in one statement fails at once');
SAVEPOINT sp50;
SELECT workqueue.sync('s50', force => true) AS sub_run \gset
RELEASE SAVEPOINT sp50;
SELECT throws_ok(format($$SELECT workqueue.wait(%s)$$, :sub_run),
    '55000', format('sync run %s was queued by this transaction', :sub_run), '... also for a run queued in a subtransaction');

-- pg_cron is not installed in this database
SELECT throws_ok($$SELECT workqueue.schedule_sync('s50', '*/5 * * * *')$$,
    '0A000', 'pg_cron is not installed in this database', 'schedule_sync without pg_cron is a clear error');

SELECT * FROM finish();
ROLLBACK;
