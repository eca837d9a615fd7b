-- SLA policies (create_sla_policy, versions, calendar_by), per-item SLA
-- clocks (start, step share, pause and resume, stop), the timers
-- (_fire_sla_timers: warnings, breach, escalation), sla_status,
-- sla_report, recompute_sla and alter_queue.  SPEC §6, §9; doc/sla.md.
--
-- now() is fixed inside this one transaction, so elapsed working time is
-- simulated by moving an item's clock back (sla_clock_from, sla_paused_at)
-- as a superuser; the worker's real timing is test/scripts/sla.sh.  Runs in
-- one transaction that is rolled back.
BEGIN;
SELECT plan(122);

SET LOCAL timezone = 'UTC';
CREATE ROLE wq70_plain LOGIN;

-- two weekday calendars and a workflow with a paused step and escalation
SELECT workqueue.create_calendar('c70_london', 'Europe/London',
    '{"mon": [["09:00","17:00"]], "tue": [["09:00","17:00"]], "wed": [["09:00","17:00"]],
      "thu": [["09:00","17:00"]], "fri": [["09:00","17:00"]]}') AS _ \gset
SELECT workqueue.create_calendar('c70_ny', 'America/New_York',
    '{"mon": [["09:00","17:00"]], "tue": [["09:00","17:00"]], "wed": [["09:00","17:00"]],
      "thu": [["09:00","17:00"]], "fri": [["09:00","17:00"]]}') AS _ \gset
SELECT workqueue.define_workflow('w70', $${"steps": [
    {"name": "triage",  "role": "r70_coord", "weight": 1, "start": true, "escalate_to": "r70_lead"},
    {"name": "review",  "role": "r70_rev",   "weight": 3, "escalate_to": "r70_lead"},
    {"name": "waiting", "role": "r70_rev",   "pauses_sla": true},
    {"name": "resolved", "kind": "resolved"},
    {"name": "rejected", "kind": "rejected"}],
  "transitions": [
    {"name": "accept",  "from": "triage", "to": "review"},
    {"name": "ask",     "from": "review", "to": "waiting"},
    {"name": "answer",  "from": "waiting", "to": "review"},
    {"name": "resolve", "from": "review", "to": "resolved"},
    {"name": "reject",  "from": ["triage", "review"], "to": "rejected"},
    {"name": "reopen",  "from": "resolved", "to": "review", "reopen": true}]}$$) AS _ \gset

------------------------------------------------------------------------------
-- create_sla_policy
------------------------------------------------------------------------------

SELECT is(workqueue.create_sla_policy('p70', 'c70_london', '{"1": "4 hours", "2": "8 hours", "3": "2 days"}'),
          1, 'a policy starts at version 1');
SELECT is((SELECT targets FROM workqueue.sla_policy WHERE name = 'p70' AND version = 1),
          '{"1": "04:00:00", "2": "08:00:00", "3": "48:00:00"}'::jsonb,
          'targets are stored in working hours ("2 days" is 48 working hours)');
SELECT is((SELECT warn_at FROM workqueue.sla_policy WHERE name = 'p70'), '{50,75}'::int[], 'warn_at defaults to 50 and 75');
SELECT is(workqueue.create_sla_policy('p70_fast', '24x7', '{"1": "1 hour", "5": "10 hours"}', '{90, 25, 25}'),
          1, 'a policy on the built-in 24x7 calendar');
SELECT is((SELECT warn_at FROM workqueue.sla_policy WHERE name = 'p70_fast'), '{25,90}'::int[],
          'warn_at is sorted, each percentage once');

SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_nowhere', '{"1": "1 hour"}')$$,
    '42704', 'calendar "c70_nowhere" does not exist', 'an unknown calendar is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('', 'c70_london', '{"1": "1 hour"}')$$,
    '22023', 'sla policy name must not be empty', 'an empty name is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy(NULL, 'c70_london', '{"1": "1 hour"}')$$,
    '22023', 'sla policy name must not be empty', 'a NULL name is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', NULL)$$,
    '22023', 'sla targets must be a non-empty JSON object', 'NULL targets are refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{}')$$,
    '22023', 'sla targets must be a non-empty JSON object', 'empty targets are refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '["1 hour"]')$$,
    '22023', 'sla targets must be a non-empty JSON object', 'an array of targets is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"0": "1 hour"}')$$,
    '22023', 'sla target key "0" is not a priority', 'priority 0 is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"6": "1 hour"}')$$,
    '22023', 'sla target key "6" is not a priority', 'priority 6 is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"high": "1 hour"}')$$,
    '22023', 'sla target key "high" is not a priority', 'a priority name is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": 3600}')$$,
    '22023', 'sla target of priority 1 is not an interval', 'a number as target is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "soon"}')$$,
    '22023', 'sla target of priority 1 is not an interval', 'a target that is no interval is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "0 hours"}')$$,
    '22023', 'sla target of priority 1 is out of range', 'a zero target is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "-1 hour"}')$$,
    '22023', 'sla target of priority 1 is out of range', 'a negative target is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "200 years"}')$$,
    '22023', 'sla target of priority 1 is out of range', 'a target of centuries is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}', '{50,NULL}')$$,
    '22004', 'warn_at must not be or contain null', 'a NULL warning percentage is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}', NULL)$$,
    '22004', 'warn_at must not be or contain null', 'NULL warn_at is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}', '{100}')$$,
    '22023', 'warn_at percentages must be between 1 and 99', 'a warning at 100% is refused (that is the breach)');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}', '{0}')$$,
    '22023', 'warn_at percentages must be between 1 and 99', 'a warning at 0% is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}', calendar_by => '{"path": "$.r"}')$$,
    '22023', 'calendar_by must be an object with "path" and "map"', 'calendar_by without a map is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}',
                                                     calendar_by => '{"path": "$.r", "map": {}, "zone": "x"}')$$,
    '22023', 'unrecognized calendar_by key "zone"', 'an unknown calendar_by key is refused');
SELECT throws_ok($q$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}',
                                                     calendar_by => '{"path": "$.[", "map": {}}')$q$,
    '22023', 'calendar_by path is not a valid jsonpath', 'a malformed jsonpath is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}',
                                                     calendar_by => '{"path": "$.r", "map": {"emea": "c70_mars"}}')$$,
    '42704', 'calendar "c70_mars" does not exist', 'a map to an unknown calendar is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}',
                                                     calendar_by => '{"path": "$.r", "map": {"emea": 1}}')$$,
    '22023', 'calendar_by map value for "emea" is not a calendar name', 'a map value that is no name is refused');
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}',
                                                     calendar_by => '{"path": "$.r", "map": {}, "default": "c70_mars"}')$$,
    '42704', 'calendar "c70_mars" does not exist', 'an unknown default calendar is refused');
SET ROLE wq70_plain;
SELECT throws_ok($$SELECT workqueue.create_sla_policy('p70_x', 'c70_london', '{"1": "1 hour"}')$$,
    '42501', 'permission denied to define sla policies', 'a plain role cannot define policies');
RESET ROLE;
SELECT is((SELECT count(*) FROM workqueue.sla_policy WHERE name = 'p70_x'), 0::bigint, 'refused calls store nothing');

------------------------------------------------------------------------------
-- queues with a policy; an item's SLA at creation
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.create_queue('q70_x', 'w70', 'p70_nowhere')$$,
    '42704', 'sla policy "p70_nowhere" does not exist', 'a queue with an unknown policy is refused');
SELECT lives_ok($$SELECT workqueue.create_queue('q70', 'w70', 'p70')$$, 'a queue with a policy');
SELECT lives_ok($$SELECT workqueue.add_member('r70_coord', 'ann'), workqueue.add_member('r70_rev', 'rex'),
                         workqueue.add_member('r70_lead', 'lee')$$, 'members of the roles');

SELECT workqueue.add('q70', '{"n": 1}', 1) AS i1 \gset
SELECT results_eq(format($$SELECT sla_policy, sla_policy_version, sla_calendar, sla_calendar_version, sla_target,
                                  sla_elapsed, sla_level, sla_clock_from = created_at, sla_paused_at
                             FROM workqueue.item WHERE id = %s$$, :i1),
    $$VALUES ('p70'::text, 1, 'c70_london'::text, 1, '04:00:00'::interval, '00:00:00'::interval, 0::smallint,
              true, NULL::timestamptz)$$,
    'a new item pins the policy, its calendar and their versions, and the target of its priority');
SELECT is((SELECT due_at FROM workqueue.item WHERE id = :i1),
          (SELECT workqueue.business_add(created_at, '4 hours', 'c70_london') FROM workqueue.item WHERE id = :i1),
          'due_at is the target in working time after creation');
SELECT is((SELECT sla_next_at FROM workqueue.item WHERE id = :i1),
          (SELECT workqueue.business_add(created_at, '2 hours', 'c70_london') FROM workqueue.item WHERE id = :i1),
          'the first timer is the 50% warning');
SELECT is((SELECT step_due_at FROM workqueue.item WHERE id = :i1),
          (SELECT workqueue.business_add(created_at, '1 hour', 'c70_london') FROM workqueue.item WHERE id = :i1),
          'the start step (weight 1 of 4) is due after a quarter of the target');
SELECT is((SELECT assignee FROM workqueue.item WHERE id = :i1), 'ann', 'the start step''s role gets the item');

SELECT workqueue.add('q70', '{}', 4) AS i_none \gset
SELECT results_eq(format($$SELECT sla_policy, sla_target, due_at, sla_next_at FROM workqueue.item WHERE id = %s$$, :i_none),
    $$VALUES (NULL::text, NULL::interval, NULL::timestamptz, NULL::timestamptz)$$,
    'a priority without a target gets no SLA');
SELECT results_eq(format('SELECT * FROM workqueue.sla_status(%s)', :i_none),
    $$VALUES (NULL::timestamptz, NULL::interval, NULL::interval, NULL::numeric, false, false)$$,
    'sla_status of an item without an SLA');
SELECT results_eq(format('SELECT elapsed, remaining, percent, breached, paused FROM workqueue.sla_status(%s)', :i1),
    $$VALUES ('00:00:00'::interval, '04:00:00'::interval, 0.0, false, false)$$,
    'sla_status of a new item: nothing elapsed');
SELECT throws_ok($$SELECT * FROM workqueue.sla_status(-1)$$, '42704', 'item -1 does not exist', 'sla_status of no item');
SELECT throws_ok($$SELECT * FROM workqueue.sla_status(NULL)$$, '42704', 'item NULL does not exist',
    'sla_status of a NULL item');

-- versions: a new policy or calendar version is used by new items only
SELECT is(workqueue.create_sla_policy('p70', 'c70_london', '{"1": "2 hours"}'), 2, 'policy version 2');
SELECT is(workqueue.create_calendar('c70_london', 'Europe/London', '{"sat": [["10:00","12:00"]]}'), 2,
          'calendar version 2');
SELECT workqueue.add('q70', '{"n": 2}', 1) AS i2 \gset
SELECT results_eq(format($$SELECT id, sla_policy_version, sla_calendar_version, sla_target FROM workqueue.item
                            WHERE id IN (%s, %s) ORDER BY id$$, :i1, :i2),
    format($$VALUES (%s::bigint, 1, 1, '04:00:00'::interval), (%s, 2, 2, '02:00:00')$$, :i1, :i2),
    'an existing item keeps its versions, a new one gets the current ones');

------------------------------------------------------------------------------
-- calendar_by
------------------------------------------------------------------------------

SELECT is(workqueue.create_sla_policy('p70_sun', '24x7', '{"1": "4 hours", "2": "4 hours", "3": "4 hours"}',
          calendar_by => '{"path": "$.region", "map": {"emea": "c70_london", "amer": "c70_ny"}, "default": "24x7"}'),
          1, 'a follow-the-sun policy');
SELECT lives_ok($$SELECT workqueue.create_queue('q70_sun', 'review', 'p70_sun')$$, 'a queue with it');
CREATE TEMP TABLE sun70 AS
SELECT workqueue.add('q70_sun', d) AS id FROM (VALUES ('{"region": "emea"}'::jsonb),
       ('{"region": "amer"}'), ('{"region": "apac"}'), ('{}'), ('{"region": 7}')) v(d);
SELECT results_eq($$SELECT coalesce(data->>'region', '-'), sla_calendar, sla_calendar_version
                      FROM workqueue.item WHERE id IN (SELECT id FROM sun70) ORDER BY id$$,
    $$VALUES ('emea', 'c70_london', 2), ('amer', 'c70_ny', 1), ('apac', '24x7', 1), ('-', '24x7', 1), ('7', '24x7', 1)$$,
    'calendar_by picks the calendar from the item''s data, else the default');

------------------------------------------------------------------------------
-- the clock through the steps: share, pause, resume, stop, reopen
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q70_24', 'w70', 'p70_fast') AS _ \gset
SELECT workqueue.add('q70_24', '{}', 1) AS t1 \gset
SELECT is((SELECT sla_next_at - created_at FROM workqueue.item WHERE id = :t1), '00:15:00'::interval,
          'on 24x7 with warn_at {25,90} the first timer is 15 minutes after creation');

-- pretend the item was created 30 minutes ago
UPDATE workqueue.item SET created_at = created_at - interval '30 minutes',
       sla_clock_from = sla_clock_from - interval '30 minutes', due_at = due_at - interval '30 minutes'
 WHERE id = :t1;
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :t1), 'accept');
SELECT results_eq(format($$SELECT sla_elapsed, sla_clock_from = now(), step_due_at - now(), due_at - created_at
                             FROM workqueue.item WHERE id = %s$$, :t1),
    $$VALUES ('00:30:00'::interval, true, '00:45:00'::interval, '01:00:00'::interval)$$,
    'a step change folds the elapsed time; review (weight 3 of 4) is due in three quarters of the target');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'ask')$$, :t1), 'ask: into a step that pauses the SLA');
SELECT results_eq(format($$SELECT sla_paused_at = now(), sla_clock_from, sla_next_at, step_due_at, due_at - created_at
                             FROM workqueue.item WHERE id = %s$$, :t1),
    $$VALUES (true, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, '01:00:00'::interval)$$,
    'paused: the clock stops, no timer, due_at keeps its value');
SELECT results_eq(format('SELECT elapsed, remaining, breached, paused FROM workqueue.sla_status(%s)', :t1),
    $$VALUES ('00:30:00'::interval, '00:30:00'::interval, false, true)$$, 'sla_status of a paused item');
SELECT is((SELECT breached FROM workqueue.queue_stats WHERE queue = 'q70_24'), 0::bigint,
          'a paused item is not counted as breached');
SELECT is((SELECT sla_paused FROM workqueue.queue_stats WHERE queue = 'q70_24'), 1::bigint, 'queue_stats counts it as paused');

-- paused for two hours: the due time moves by two hours of working time
UPDATE workqueue.item SET sla_paused_at = sla_paused_at - interval '2 hours' WHERE id = :t1;
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'answer')$$, :t1), 'answer: the clock runs again');
SELECT results_eq(format($$SELECT due_at - created_at, sla_paused_at, sla_clock_from = now(), sla_elapsed
                             FROM workqueue.item WHERE id = %s$$, :t1),
    $$VALUES ('03:00:00'::interval, NULL::timestamptz, true, '00:30:00'::interval)$$,
    'resumed: due_at moved by the paused working time');
SELECT is((SELECT sla_next_at - now() FROM workqueue.item WHERE id = :t1), '00:00:00'::interval,
          'the 25% warning that nobody fired yet is due at once');

UPDATE workqueue.item SET sla_clock_from = sla_clock_from - interval '10 minutes' WHERE id = :t1;
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'resolve')$$, :t1), 'resolve');
SELECT results_eq(format($$SELECT sla_elapsed, sla_clock_from, sla_paused_at, sla_next_at, step_due_at
                             FROM workqueue.item WHERE id = %s$$, :t1),
    $$VALUES ('00:40:00'::interval, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz)$$,
    'resolved: the clock stops for good with the elapsed working time');
SELECT results_eq(format('SELECT elapsed, remaining, percent, breached, paused FROM workqueue.sla_status(%s)', :t1),
    $$VALUES ('00:40:00'::interval, '00:20:00'::interval, 66.7, false, false)$$, 'sla_status of a resolved item');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'reopen')$$, :t1), 'reopen');
SELECT results_eq(format($$SELECT sla_clock_from = now(), due_at - now(), sla_elapsed FROM workqueue.item WHERE id = %s$$, :t1),
    $$VALUES (true, '00:20:00'::interval, '00:40:00'::interval)$$,
    'reopened: the clock restarts with what was left');

-- an item created in a step that pauses the SLA
SELECT workqueue.define_workflow('w70_wait', $${"steps": [
    {"name": "parked", "start": true, "pauses_sla": true}, {"name": "work"}, {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "go", "from": "parked", "to": "work"}, {"name": "finish", "from": "work", "to": "done"}]}$$) AS _ \gset
SELECT workqueue.create_queue('q70_wait', 'w70_wait', 'p70_fast') AS _ \gset
SELECT workqueue.add('q70_wait', '{}', 1) AS pw \gset
SELECT results_eq(format($$SELECT sla_paused_at = created_at, sla_clock_from, sla_next_at, due_at - created_at
                             FROM workqueue.item WHERE id = %s$$, :pw),
    $$VALUES (true, NULL::timestamptz, NULL::timestamptz, '01:00:00'::interval)$$,
    'created in a pausing step: the clock waits');
SELECT is((SELECT step_due_at - now() FROM workqueue.item WHERE id = :pw), NULL, 'and there is no step due time');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'go')$$, :pw), 'go');
SELECT is((SELECT step_due_at - now() FROM workqueue.item WHERE id = :pw), '01:00:00'::interval,
          'the only running step gets the whole target');

------------------------------------------------------------------------------
-- timers: warnings, breach, escalation
------------------------------------------------------------------------------

SELECT workqueue.add('q70_24', '{}', 1) AS t2 \gset
SELECT workqueue.add('q70_24', '{}', 1) AS t3 \gset
SELECT lives_ok(format($$SELECT workqueue.transition_many(ARRAY[%s, %s], 'accept')$$, :t2, :t3), 'two items in review');
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'ask')$$, :t3), 'one of them paused');
-- 50 minutes of working time have elapsed on t2 (the 25% warning is overdue)
UPDATE workqueue.item SET sla_clock_from = sla_clock_from - interval '50 minutes', sla_next_at = now() - interval '1 second',
       due_at = due_at - interval '50 minutes'
 WHERE id = :t2;
UPDATE workqueue.item SET sla_paused_at = sla_paused_at - interval '5 hours' WHERE id = :t3;
SELECT workqueue._fire_sla_timers() AS next \gset
SELECT is(nullif(:'next', '')::timestamptz, (SELECT min(sla_next_at) FROM workqueue.item WHERE sla_next_at IS NOT NULL),
          '_fire_sla_timers returns the next due instant');
SELECT is((SELECT count(*) FROM workqueue.item WHERE sla_next_at <= now()), 0::bigint, 'nothing due is left');
SELECT results_eq(format($$SELECT kind, actor, (payload->>'percent')::int, payload->>'elapsed'
                             FROM workqueue.item_event WHERE item_id = %s AND kind LIKE 'sla%%' ORDER BY id$$, :t2),
    $$VALUES ('sla_warning'::text, 'workqueue'::text, 25, '00:50:00'::text)$$,
    'the overdue 25% warning fires once; 90% is not reached');
SELECT results_eq(format($$SELECT sla_level, sla_next_at - sla_clock_from FROM workqueue.item WHERE id = %s$$, :t2),
    $$VALUES (1::smallint, '00:54:00'::interval)$$, 'the timer moves to the 90% instant');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :t3 AND kind LIKE 'sla%'), 0::bigint,
          'a paused item gets no SLA events, however long it waits');

-- now past the target: 90% and the breach fire together, then escalation
UPDATE workqueue.item SET sla_clock_from = sla_clock_from - interval '20 minutes', sla_next_at = now() - interval '1 second',
       due_at = due_at - interval '20 minutes'
 WHERE id = :t2;
SELECT workqueue._fire_sla_timers() AS next \gset
SELECT results_eq(format($$SELECT kind, payload->>'percent', payload->>'to', payload->>'from', payload->>'role'
                             FROM workqueue.item_event WHERE item_id = %s AND kind IN ('sla_warning', 'sla_breach', 'escalated')
                            ORDER BY id$$, :t2),
    $$VALUES ('sla_warning'::text, '25'::text, NULL::text, NULL::text, NULL::text), ('sla_warning', '90', NULL, NULL, NULL),
             ('sla_breach', '100', NULL, NULL, NULL), ('escalated', NULL, 'lee', 'rex', 'r70_lead')$$,
    'the 90% warning, the breach and the escalation to the step''s escalate_to role, in order');
SELECT results_eq(format($$SELECT assignee, sla_level, sla_next_at FROM workqueue.item WHERE id = %s$$, :t2),
    $$VALUES ('lee'::text, 3::smallint, NULL::timestamptz)$$, 'the item belongs to the lead now; no more timers');
SELECT results_eq(format('SELECT breached, remaining < interval ''0'' FROM workqueue.sla_status(%s)', :t2),
    $$VALUES (true, true)$$, 'sla_status: breached');
SELECT is((SELECT breached FROM workqueue.queue_stats WHERE queue = 'q70_24'), 1::bigint, 'queue_stats counts the breach');
SELECT workqueue._fire_sla_timers() AS next \gset
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :t2 AND kind IN ('sla_warning', 'sla_breach')),
          3::bigint, 'each threshold fired exactly once');

-- escalation to a role without members keeps the assignee
SELECT workqueue.add('q70_24', '{}', 1) AS t4 \gset
SELECT workqueue.remove_member('r70_lead', 'lee') AS _ \gset
UPDATE workqueue.item SET sla_clock_from = sla_clock_from - interval '2 hours', sla_next_at = now() - interval '1 second'
 WHERE id = :t4;
SELECT workqueue._fire_sla_timers() AS next \gset
SELECT results_eq(format($$SELECT assignee, (SELECT payload->>'to' FROM workqueue.item_event
                                              WHERE item_id = %s AND kind = 'escalated')
                             FROM workqueue.item WHERE id = %s$$, :t4, :t4),
    $$VALUES ('ann'::text, NULL::text)$$, 'no member to escalate to: the escalated event says so, the assignee stays');

------------------------------------------------------------------------------
-- sla_report
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q70_rep', 'review', 'p70_fast') AS _ \gset
-- five priority-1 items (target 1 hour): resolved after 10, 20, 30 and 70 minutes, one open past due;
-- one priority-5 item (target 10 hours) resolved after 1 hour
CREATE TEMP TABLE t70 AS
SELECT workqueue.add('q70_rep', jsonb_build_object('m', m), p) AS id, m FROM (VALUES (1, 10), (1, 20), (1, 30), (1, 70), (1, NULL), (5, 60)) v(p, m);
UPDATE workqueue.item i SET sla_clock_from = sla_clock_from - make_interval(mins => coalesce(t.m, 90))
  FROM t70 t WHERE i.id = t.id;
SELECT lives_ok($$SELECT workqueue.transition_many(ARRAY(SELECT id FROM t70 WHERE m IS NOT NULL), 'resolve')$$, 'resolve five');
SELECT results_eq($$SELECT * FROM workqueue.sla_report('q70_rep', now() - interval '1 day', now() + interval '1 second')$$,
    $$VALUES (1::smallint, 5::bigint, 4::bigint, 3::bigint, 2::bigint, 60.0, '00:25:00'::interval, '00:58:00'::interval),
             (5::smallint, 1::bigint, 1::bigint, 1::bigint, 0::bigint, 100.0, '01:00:00'::interval, '01:00:00'::interval)$$,
    'per priority: items, resolved, met, breached, compliance, median and p90 of the SLA clock');
SELECT is_empty($$SELECT * FROM workqueue.sla_report('q70_rep', now() + interval '1 day', now() + interval '2 days')$$,
    'a period without items reports nothing');
SELECT throws_ok($$SELECT * FROM workqueue.sla_report('q70_rep', now(), now() - interval '1 day')$$,
    '22023', 'invalid report period', 'since after until is refused');
SELECT throws_ok($$SELECT * FROM workqueue.sla_report('q70_rep', NULL, now())$$,
    '22023', 'invalid report period', 'a NULL bound is refused');
SELECT throws_ok($$SELECT * FROM workqueue.sla_report('q70_nowhere', now(), now())$$,
    '42704', 'queue "q70_nowhere" does not exist', 'an unknown queue is refused');

------------------------------------------------------------------------------
-- alter_queue and recompute_sla
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q70_re', 'review') AS _ \gset
SELECT workqueue.add('q70_re', '{}', 1) AS r1 \gset
SELECT workqueue.add('q70_re', '{}', 5) AS r2 \gset
SELECT throws_ok($$SELECT * FROM workqueue.recompute_sla('q70_re')$$,
    '55000', 'queue "q70_re" has no sla policy', 'recompute needs a policy');
SELECT throws_ok($$SELECT workqueue.alter_queue('q70_re', '{"sla_policy": "p70_nowhere"}')$$,
    '42704', 'sla policy "p70_nowhere" does not exist', 'alter_queue refuses an unknown policy');
SELECT throws_ok($$SELECT workqueue.alter_queue('q70_re', '{"workflow": "w70"}')$$,
    '22023', 'queue setting "workflow" cannot be changed', 'alter_queue refuses other settings');
SELECT throws_ok($$SELECT workqueue.alter_queue('q70_re', '{"lease_timeout": "-1 minute"}')$$,
    '22023', 'lease_timeout must be a positive interval', 'alter_queue refuses a negative lease');
SELECT throws_ok($$SELECT workqueue.alter_queue('q70_re', NULL)$$,
    '22023', 'changes must be a JSON object', 'alter_queue refuses NULL changes');
SELECT throws_ok($$SELECT workqueue.alter_queue('q70_nowhere', '{}')$$,
    '42704', 'queue "q70_nowhere" does not exist', 'alter_queue of an unknown queue');
SELECT is((workqueue.alter_queue('q70_re', '{"sla_policy": "p70_fast", "lease_timeout": "1 hour"}')).sla_policy,
          'p70_fast', 'alter_queue sets the policy');
SELECT is((SELECT lease_timeout FROM workqueue.queue WHERE name = 'q70_re'), '01:00:00'::interval, 'and the lease timeout');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q70_re' AND sla_target IS NOT NULL), 0::bigint,
          'existing items keep their (missing) SLA');

UPDATE workqueue.item SET created_at = created_at - interval '20 minutes' WHERE id = :r1;
SELECT results_eq($$SELECT item, old_due, new_due - now() FROM workqueue.recompute_sla('q70_re')$$,
    format($$VALUES (%s::bigint, NULL::timestamptz, '00:40:00'::interval), (%s, NULL, '10:00:00')$$, :r1, :r2),
    'dry run: the new due times, counting the time since creation');
SELECT is((SELECT count(*) FROM workqueue.item WHERE queue = 'q70_re' AND sla_target IS NOT NULL), 0::bigint,
          'a dry run changes nothing');
SELECT is((SELECT count(*) FROM workqueue.recompute_sla('q70_re', false)), 2::bigint, 'recompute for real');
SELECT results_eq(format($$SELECT sla_policy, sla_target, due_at - now(), sla_elapsed FROM workqueue.item WHERE id = %s$$, :r1),
    $$VALUES ('p70_fast'::text, '01:00:00'::interval, '00:40:00'::interval, '00:20:00'::interval)$$,
    'the item has the policy''s SLA now');
SELECT results_eq(format($$SELECT kind, payload->>'old_due', (payload->>'new_due')::timestamptz - now(),
                                  payload#>>'{new,policy}'
                             FROM workqueue.item_event WHERE item_id = %s AND kind = 'sla_recomputed'$$, :r1),
    $$VALUES ('sla_recomputed'::text, NULL::text, '00:40:00'::interval, 'p70_fast'::text)$$,
    'an sla_recomputed event records the old and new due time');
SELECT is_empty($$SELECT * FROM workqueue.recompute_sla('q70_re')$$, 'after a recompute nothing is left to move');

-- a new policy version with a shorter target: the breach fires, warnings are not repeated
SELECT is(workqueue.create_sla_policy('p70_fast', '24x7', '{"1": "10 minutes", "5": "10 hours"}', '{25,90}'), 2,
          'p70_fast version 2');
SELECT results_eq(format($$SELECT new_due - now() FROM workqueue.recompute_sla('q70_re', false) WHERE item = %s$$, :r1),
    $$VALUES ('-00:10:00'::interval)$$, 'the shorter target puts the due time in the past');
SELECT results_eq(format($$SELECT sla_policy_version, sla_level, sla_next_at = now() FROM workqueue.item WHERE id = %s$$, :r1),
    $$VALUES (2, 2::smallint, true)$$, 'both warnings count as passed; the breach is due at once');
SELECT workqueue._fire_sla_timers() AS next \gset
SELECT results_eq(format($$SELECT kind FROM workqueue.item_event WHERE item_id = %s AND kind LIKE 'sla_%%' ORDER BY id$$, :r1),
    $$VALUES ('sla_recomputed'::text), ('sla_recomputed'), ('sla_breach')$$, 'only the breach fired');

SET ROLE wq70_plain;
SELECT throws_ok($$SELECT * FROM workqueue.recompute_sla('q70_re')$$,
    '42501', 'permission denied to recompute sla due times', 'a plain role cannot recompute');
SELECT throws_ok($$SELECT workqueue.alter_queue('q70_re', '{"sla_policy": null}')$$,
    '42501', 'permission denied to alter queues', 'a plain role cannot alter queues');
SELECT throws_ok($$SELECT workqueue._fire_sla_timers()$$,
    '42501', 'permission denied for function _fire_sla_timers', 'a plain role cannot fire timers');
RESET ROLE;
SELECT is((workqueue.alter_queue('q70_re', '{"sla_policy": null}')).sla_policy, NULL, 'alter_queue removes the policy');

------------------------------------------------------------------------------
-- upsert_items starts SLAs too
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q70_up', 'w70', 'p70') AS _ \gset
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q70_up',
                     '[{"external_id": "u1", "priority": 1, "data": {}}, {"external_id": "u2", "priority": 2, "data": {}},
                       {"external_id": "u3", "priority": 5, "data": {}}]')$$,
    $$VALUES (3, 0, 0)$$, 'three new items');
SELECT results_eq($$SELECT external_id, sla_target, sla_calendar_version, assignee
                      FROM workqueue.item WHERE queue = 'q70_up' ORDER BY external_id$$,
    $$VALUES ('u1'::text, '02:00:00'::interval, 2, 'ann'::text), ('u2', NULL, NULL, 'ann'), ('u3', NULL, NULL, 'ann')$$,
    'upserted items get the current policy (version 2 has only priority 1) and are assigned');
SELECT is((SELECT due_at FROM workqueue.item WHERE queue = 'q70_up' AND external_id = 'u1'),
          (SELECT workqueue.business_add(created_at, '2 hours', 'c70_london', 2) FROM workqueue.item
            WHERE queue = 'q70_up' AND external_id = 'u1'),
          'on the calendar''s current version');
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q70_up', '[{"external_id": "u1", "priority": 1, "data": {"x": 1}}]')$$,
    $$VALUES (0, 1, 0)$$, 'an update');
SELECT is((SELECT count(*) FROM workqueue.item_event e JOIN workqueue.item i ON i.id = e.item_id
            WHERE i.queue = 'q70_up' AND e.kind = 'assigned'), 3::bigint, 'an update assigns nothing again');

------------------------------------------------------------------------------
-- closed upstream: the clock stops; listed again: it runs on
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q70_sync', 'review', 'p70_fast') AS _ \gset
SELECT results_eq($$SELECT * FROM workqueue.upsert_items('q70_sync', '[{"external_id": "S-1", "priority": 1, "data": {}}]', 's70')$$,
    $$VALUES (1, 0, 0)$$, 'an item from source s70');
SELECT id AS s1 FROM workqueue.item WHERE queue = 'q70_sync' AND external_id = 'S-1' \gset
UPDATE workqueue.item SET sla_clock_from = sla_clock_from - interval '10 minutes' WHERE id = :s1;
SELECT is(workqueue._close_unlisted('q70_sync', 's70', '{}'), 1, 'a full sync that no longer lists it closes it');
SELECT results_eq(format($$SELECT status, sla_elapsed, sla_clock_from, sla_next_at FROM workqueue.item WHERE id = %s$$, :s1),
    $$VALUES ('closed'::text, '00:10:00'::interval, NULL::timestamptz, NULL::timestamptz)$$,
    'closed: the clock stops with the elapsed time and no timer is left');
SELECT is(workqueue._reopen_listed('q70_sync', 's70', '{S-1}'), 1, 'listed again');
SELECT results_eq(format($$SELECT status, sla_clock_from = now(), due_at - now(), sla_next_at = now() FROM workqueue.item WHERE id = %s$$, :s1),
    $$VALUES ('open'::text, true, '00:00:00'::interval, true)$$,
    'reopened: the clock runs on with what was left (10 minutes of version 2''s 10 are gone: due now)');

SELECT * FROM finish();
ROLLBACK;
