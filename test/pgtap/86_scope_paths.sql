-- A scope hides an item on every path (SPEC §8, doc/security.md "Scopes";
-- issue 13.2).  Every function of the schema is listed below, from pg_proc:
-- a function added to the API and not listed here fails the first check.
-- Each one that takes an item, an external id, a queue or a fetch is called
-- by a role without the item's scope twice -- once against a hidden item,
-- once against a missing one -- and must answer the same (result or error,
-- with the ids and names of the two cases written alike) and change nothing
-- of the hidden item, its events or its fetches.  Runs in one transaction
-- that is rolled back.
BEGIN;
SELECT plan(37);

CREATE ROLE wq86_plain LOGIN;
DO $$ BEGIN
    PERFORM workqueue.create_queue('q86h');
    PERFORM workqueue.create_queue('q86m');
    PERFORM workqueue.create_source('s86h', 'q86h', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}');
    PERFORM workqueue.create_source('s86m', 'q86m', 'http://127.0.0.1:9/ids', 'http://127.0.0.1:9/d/{ids}');
END $$;
SELECT setval(pg_get_serial_sequence('workqueue.item', 'id'), greatest(86000, nextval(pg_get_serial_sequence('workqueue.item', 'id')))) AS _ \gset
SELECT setval(pg_get_serial_sequence('workqueue.fetch', 'id'), greatest(860000, nextval(pg_get_serial_sequence('workqueue.fetch', 'id')))) AS _ \gset
SELECT workqueue.add('q86h', '{"secret": true}', 2, 'x86') AS h \gset
SELECT workqueue.set_scope(ARRAY[:h], '{secret86}') AS _ \gset
SELECT (workqueue.enqueue_fetch(:h, 's86h')) AS fh \gset
SELECT :h + 1000003 AS m, :fh + 2000003 AS fm \gset

-- what a call must leave alone: the hidden item, its events, its fetches
CREATE FUNCTION pg_temp.fingerprint() RETURNS text
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT md5(concat((SELECT string_agg(i::text, ';' ORDER BY i.id) FROM workqueue.item i WHERE i.queue = 'q86h'),
                      (SELECT string_agg(e::text, ';' ORDER BY e.id) FROM workqueue.item_event e WHERE e.queue = 'q86h'),
                      (SELECT string_agg(f::text, ';' ORDER BY f.id) FROM workqueue.fetch f WHERE f.queue = 'q86h')))
$$;
-- runs sql, returns its rows or its error (then rolls it back either way),
-- and whether the hidden item changed
CREATE FUNCTION pg_temp.outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.fingerprint();
    res text;
    st text; m text; d text; h text;
BEGIN
    BEGIN
        EXECUTE format('SELECT coalesce(string_agg(t::text, %L), %L) FROM (%s) t', ';', '', sql) INTO res;
        res := 'rows: ' || res || CASE WHEN pg_temp.fingerprint() <> before THEN ' | CHANGED the hidden item' ELSE '' END;
        RAISE EXCEPTION USING ERRCODE = 'WQ086', MESSAGE = res;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
        IF st = 'WQ086' THEN
            RETURN m;
        END IF;
        RETURN format('%s %s / %s / %s', st, m, d, h);
    END;
END $$;

-- Every function of the schema: a call with the placeholders :Q (queue),
-- :ID (item id), :EXT (external id), :FETCH (fetch id), :SRC (source of
-- the queue), or the reason it needs none.  kind 'same': hidden and missing
-- answer alike; 'unique': the external id is taken (a unique key cannot
-- pretend otherwise), so the hidden case must fail as a duplicate that
-- names no item.
CREATE TEMP TABLE calls (fn text PRIMARY KEY, kind text, call text, why text);
INSERT INTO calls VALUES
  ('workqueue.transition(bigint,text,jsonb,text)', 'same', $$SELECT (workqueue.transition(:ID, 'done')).id$$, NULL),
  ('workqueue.transition_many(bigint[],text,jsonb,text)', 'same', $$SELECT workqueue.transition_many(ARRAY[:ID], 'done')$$, NULL),
  ('workqueue.allowed_transitions(bigint,text)', 'same', $$SELECT * FROM workqueue.allowed_transitions(:ID)$$, NULL),
  ('workqueue._allowed_transitions(bigint,text)', 'same', $$SELECT * FROM workqueue._allowed_transitions(:ID, current_user)$$, NULL),
  ('workqueue.release(bigint,text)', 'same', $$SELECT (workqueue.release(:ID)).id$$, NULL),
  ('workqueue.extend_lease(bigint,interval,text)', 'same', $$SELECT (workqueue.extend_lease(:ID, '1 minute')).id$$, NULL),
  ('workqueue.comment(bigint,text,text)', 'same', $$SELECT workqueue.comment(:ID, 'hello')$$, NULL),
  ('workqueue.update_fields(bigint,jsonb,text)', 'same', $$SELECT (workqueue.update_fields(:ID, '{"notes": "x"}')).id$$, NULL),
  ('workqueue.get_items(bigint[])', 'same', $$SELECT id FROM workqueue.get_items(ARRAY[:ID])$$, NULL),
  ('workqueue.history(bigint)', 'same', $$SELECT kind FROM workqueue.history(:ID)$$, NULL),
  ('workqueue.sla_status(bigint)', 'same', $$SELECT * FROM workqueue.sla_status(:ID)$$, NULL),
  ('workqueue.set_scope(bigint[],text[])', 'same', $$SELECT workqueue.set_scope(ARRAY[:ID], '{}')$$, NULL),
  ('workqueue._raise_no_item(bigint)', 'same', $$SELECT workqueue._raise_no_item(:ID)$$, NULL),
  ('workqueue.enqueue_fetch(bigint,text)', 'same', $$SELECT workqueue.enqueue_fetch(:ID, ':SRC')$$, NULL),
  ('workqueue.cancel_fetch(bigint)', 'same', $$SELECT (workqueue.cancel_fetch(:FETCH)).status$$, NULL),
  ('workqueue.claim(text,integer,text)', 'same', $$SELECT id FROM workqueue.claim(':Q', 10)$$, NULL),
  ('workqueue.list_items(text,text,integer,bigint)', 'same', $$SELECT id FROM workqueue.list_items(':Q')$$, NULL),
  ('workqueue.get_items_by_external(text,text[])', 'same', $$SELECT id FROM workqueue.get_items_by_external(':Q', ARRAY[':EXT'])$$, NULL),
  ('workqueue.missing_ids(text,text[])', 'same', $$SELECT * FROM workqueue.missing_ids(':Q', ARRAY[':EXT', 'other'])$$, NULL),
  ('workqueue.sla_report(text,timestamp with time zone,timestamp with time zone)', 'same',
   $$SELECT * FROM workqueue.sla_report(':Q', now() - interval '1 day', now() + interval '1 day')$$, NULL),
  ('workqueue.recompute_sla(text,boolean)', 'same', $$SELECT * FROM workqueue.recompute_sla(':Q')$$, NULL),
  ('workqueue.drop_queue(text,boolean)', 'same', $$SELECT workqueue.drop_queue(':Q')$$, NULL),
  ('workqueue.retry_fetches(text,timestamp with time zone)', 'same', $$SELECT workqueue.retry_fetches(':SRC')$$, NULL),
  ('workqueue.add(text,jsonb,integer,text)', 'unique', $$SELECT workqueue.add(':Q', '{}', 3, ':EXT')$$, NULL),
  ('workqueue.add_many(text,jsonb)', 'unique', $$SELECT * FROM workqueue.add_many(':Q', '[{"external_id": ":EXT"}]')$$, NULL),
  ('workqueue.upsert_items(text,jsonb,text)', 'unique', $$SELECT * FROM workqueue.upsert_items(':Q', '[{"external_id": ":EXT", "data": {"x": 1}}]')$$, NULL),
  -- no item, external id or fetch to pass
  ('workqueue._caller()', NULL, NULL, 'who calls'),
  ('workqueue.is_admin(text)', NULL, NULL, 'a role''s rights'),
  ('workqueue._actor_is_admin(text)', NULL, NULL, 'a role''s rights'),
  ('workqueue._require_admin(text)', NULL, NULL, 'a role''s rights'),
  ('workqueue._check_actor(text,text)', NULL, NULL, 'a role''s rights'),
  ('workqueue._caller_scopes()', NULL, NULL, 'the caller''s own grants'),
  ('workqueue._visible(text[])', NULL, NULL, 'takes a scope, not an item'),
  ('workqueue._item_visible(text,bigint)', NULL, NULL, 'runs as the caller: the item''s own policy answers (the policy form of a distributed install)'),
  ('workqueue._check_name(text,text)', NULL, NULL, 'argument check'),
  ('workqueue._check_external_id(text)', NULL, NULL, 'argument check (length only)'),
  ('workqueue._require_nonempty(text,text[])', NULL, NULL, 'argument check'),
  ('workqueue._raise_undefined(text,text,text)', NULL, NULL, 'raises what it is given'),
  ('workqueue._require_name(text,text)', NULL, NULL, 'argument check'),
  ('workqueue._raise_not_object(text,jsonb,text)', NULL, NULL, 'raises what it is given'),
  ('workqueue._check_holder(workqueue.item,text)', NULL, NULL, 'takes a row the caller has already read'),
  ('workqueue.grant_scope(text,text)', NULL, NULL, 'administrators only; scopes, not items'),
  ('workqueue.revoke_scope(text,text)', NULL, NULL, 'administrators only; scopes, not items'),
  ('workqueue._validate_workflow(jsonb)', NULL, NULL, 'workflow definitions are not scoped'),
  ('workqueue.define_workflow(text,jsonb)', NULL, NULL, 'workflow definitions are not scoped'),
  ('workqueue._workflow_edges(jsonb)', NULL, NULL, 'workflow definitions are not scoped'),
  ('workqueue._dot_id(text)', NULL, NULL, 'workflow definitions are not scoped'),
  ('workqueue.workflow_graph(text,integer,text)', NULL, NULL, 'workflow definitions are not scoped'),
  ('workqueue.add_member(text,text)', NULL, NULL, 'workflow roles are not scoped'),
  ('workqueue.remove_member(text,text)', NULL, NULL, 'workflow roles are not scoped'),
  ('workqueue.assignment_strategy(text,text)', NULL, NULL, 'workflow roles are not scoped'),
  ('workqueue._queue(text)', NULL, NULL, 'queues are not scoped'),
  ('workqueue.create_queue(text,text,text,interval)', NULL, NULL, 'queues are not scoped'),
  ('workqueue.alter_queue(text,jsonb)', NULL, NULL, 'queues are not scoped'),
  ('workqueue._validate_calendar(text,jsonb,date[])', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.create_calendar(text,text,jsonb,date[])', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.business_add(timestamp with time zone,interval,text)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.business_add(timestamp with time zone,interval,text,integer)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.business_between(timestamp with time zone,timestamp with time zone,text)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.business_between(timestamp with time zone,timestamp with time zone,text,integer)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.business_add_days(timestamp with time zone,integer,text)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue.business_add_days(timestamp with time zone,integer,text,integer)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue._require_calendar(text,text)', NULL, NULL, 'calendars are not scoped'),
  ('workqueue._require_sla_policy(text)', NULL, NULL, 'SLA policies are not scoped'),
  ('workqueue.create_sla_policy(text,text,jsonb,integer[],jsonb)', NULL, NULL, 'SLA policies are not scoped'),
  ('workqueue._check_calendar_by(jsonb)', NULL, NULL, 'SLA policies are not scoped'),
  ('workqueue._sla_calendar(jsonb,jsonb,text)', NULL, NULL, 'SLA policies are not scoped'),
  ('workqueue._sla_clock(interval,timestamp with time zone,text,integer)', NULL, NULL, 'arithmetic on its arguments'),
  ('workqueue._sla_next_at(timestamp with time zone,interval,interval,integer,text,integer)', NULL, NULL, 'arithmetic on its arguments'),
  ('workqueue._sla_threshold(integer[],integer)', NULL, NULL, 'arithmetic on its arguments'),
  ('workqueue.create_source(text,text,text,text,jsonb)', NULL, NULL, 'sources are not scoped (administrators only)'),
  ('workqueue._check_source(text,text,jsonb)', NULL, NULL, 'sources are not scoped'),
  ('workqueue.alter_source(text,jsonb)', NULL, NULL, 'sources are not scoped (administrators only)'),
  ('workqueue.sync(text,boolean,boolean)', NULL, NULL, 'queues a run of a source; the worker writes'),
  ('workqueue.wait(bigint,interval)', NULL, NULL, 'runs are not scoped; their error samples are for administrators'),
  ('workqueue.schedule_sync(text,text,boolean)', NULL, NULL, 'administrators only'),
  ('workqueue._url_encode(text)', NULL, NULL, 'string function'),
  ('workqueue._next_fetch_at()', NULL, NULL, 'reads as the caller, through row-level security'),
  ('workqueue._workers()', NULL, NULL, 'the workers, from shared memory');

-- 1-2: the list is the schema's functions that a plain role may execute
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace = 'workqueue'::regnamespace
                     AND has_function_privilege('wq86_plain', p.oid, 'EXECUTE')
                     AND p.oid::regprocedure::text NOT IN (SELECT fn FROM calls)$$,
    'every function of the schema a plain role may execute is listed in this test (add the new one to "calls")');
SELECT is_empty($$SELECT fn FROM calls c
                   WHERE NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'workqueue'::regnamespace
                                        AND p.oid::regprocedure::text = c.fn
                                        AND has_function_privilege('wq86_plain', p.oid, 'EXECUTE'))$$,
    'and every function listed exists and is executable by a plain role');

CREATE TEMP TABLE outcomes (fn text, kind text, hidden text, missing text);
GRANT ALL ON outcomes TO wq86_plain;
GRANT SELECT ON calls TO wq86_plain;
-- the two cases
CREATE TEMP TABLE cases (name text, q text, id bigint, ext text, fid bigint, src text);
INSERT INTO cases VALUES ('hidden', 'q86h', :h, 'x86', :fh, 's86h'), ('missing', 'q86m', :m, 'x86', :fm, 's86m');
GRANT SELECT ON cases TO wq86_plain;

SET ROLE wq86_plain;
INSERT INTO outcomes
SELECT c.fn, c.kind,
       max(o.txt) FILTER (WHERE k.name = 'hidden'), max(o.txt) FILTER (WHERE k.name = 'missing')
  FROM calls c CROSS JOIN cases k
       CROSS JOIN LATERAL (SELECT pg_temp.outcome(replace(replace(replace(replace(replace(c.call,
                                  ':FETCH', k.fid::text), ':SRC', k.src), ':EXT', k.ext), ':ID', k.id::text), ':Q', k.q)) AS raw) r
       CROSS JOIN LATERAL (SELECT CASE WHEN c.call LIKE '%:FETCH%'
                                       THEN regexp_replace(r.raw, '\m' || k.fid || '\M', 'FETCH', 'g')
                                       ELSE regexp_replace(r.raw, '\m' || k.id || '\M', 'ID', 'g') END AS t1) n1
       CROSS JOIN LATERAL (SELECT replace(replace(n1.t1, k.src, 'SRC'), k.q, 'Q') AS txt) o
 WHERE c.call IS NOT NULL
 GROUP BY c.fn, c.kind;
RESET ROLE;

-- 3-27: hidden answers as missing (or, for a taken external id, as a
-- duplicate that names no item), and changes nothing
SELECT is(o.hidden, o.missing, o.fn || ': a hidden item answers as a missing one')
  FROM outcomes o WHERE o.kind = 'same' ORDER BY o.fn;
SELECT ok(o.hidden LIKE '23505 external id "x86" already exists in queue "Q"%' AND o.hidden NOT LIKE '%ID%'
          AND o.hidden NOT LIKE '%CHANGED%',
          o.fn || ': a hidden item''s external id is refused as taken, naming no item: ' || o.hidden)
  FROM outcomes o WHERE o.kind = 'unique' ORDER BY o.fn;
SELECT is((SELECT string_agg(fn, ', ') FROM outcomes WHERE hidden LIKE '%CHANGED%' OR missing LIKE '%CHANGED%'), NULL,
    'no call changed the hidden item, its events or its fetches');

-- the views: counts and errors through the reader's row-level security
SET ROLE wq86_plain;
SELECT is((SELECT open FROM workqueue.queue_stats WHERE queue = 'q86h'), 0::bigint,
    'queue_stats does not count the hidden item');
SELECT is((SELECT fetches_queued FROM workqueue.worker_status LIMIT 1), NULL,
    'worker_status shows no workers here') WHERE NOT EXISTS (SELECT 1 FROM workqueue.worker_status);
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.item WHERE id = :h), 'direct reads do not show it');
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.fetch WHERE id = :fh), 'nor its fetch');
SELECT ok(NOT EXISTS (SELECT 1 FROM workqueue.item_event WHERE item_id = :h), 'nor its events');
RESET ROLE;
SELECT is((SELECT open FROM workqueue.queue_stats WHERE queue = 'q86h'), 1::bigint, 'the owner counts it');

-- an administrator is told which item holds a taken external id
SELECT is((wqt.err($$SELECT workqueue.add('q86h', '{}', 3, 'x86')$$)).detail, format('It belongs to item %s.', :h),
    'an administrator''s duplicate error names the item');
SELECT is((wqt.err($$SELECT * FROM workqueue.upsert_items('q86h', '[{"external_id": "x86", "data": {"x": 1}}]')$$)).state, NULL,
    'and upsert_items updates it for an administrator');

SELECT * FROM finish();
ROLLBACK;
