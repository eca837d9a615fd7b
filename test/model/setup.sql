-- test/model/setup.sql: the world of the model-based concurrency test
-- (test/scripts/model.sh).  psql variables: :api, the sample API's base URL;
-- :r, a suffix that makes this run's queues, sources, workflow and policy
-- new (workqueue drops none of them), so the test may run again in the same
-- database.  Roles are m_*; run as a superuser in the workers' database.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS model CASCADE;
CREATE SCHEMA model;
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm_app') THEN
        CREATE ROLE m_app LOGIN IN ROLE workqueue_agent; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm_plain1') THEN CREATE ROLE m_plain1 LOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'm_plain2') THEN CREATE ROLE m_plain2 LOGIN; END IF;
END $$;
-- every call the clients made, as they saw it (test/model/driver.py)
CREATE TABLE model.call (
    client text NOT NULL, seq int NOT NULL, op text NOT NULL, queue text, items bigint[], arg jsonb,
    t0 timestamptz, t1 timestamptz,
    outcome text NOT NULL CHECK (outcome IN ('ok', 'error', 'unknown')), sqlstate text, message text, result jsonb,
    tag text NOT NULL);

-- a role-checked workflow with an SLA pause and an on_enter fetch
SELECT workqueue.define_workflow('m_flow_' || :'r', jsonb_set($j${
 "steps": [
   {"name": "triage",  "role": "m_coord", "weight": 1, "start": true, "escalate_to": "m_lead"},
   {"name": "review",  "role": "m_rev",   "weight": 3},
   {"name": "waiting", "role": "m_rev",   "pauses_sla": true},
   {"name": "resolved", "kind": "resolved"},
   {"name": "rejected", "kind": "rejected"}],
 "transitions": [
   {"name": "accept",  "from": "triage", "to": "review"},
   {"name": "ask",     "from": "review", "to": "waiting"},
   {"name": "answer",  "from": "waiting", "to": "review"},
   {"name": "resolve", "from": "review", "to": "resolved", "requires": ["resolution"]},
   {"name": "reject",  "from": ["triage", "review"], "to": "rejected"},
   {"name": "reopen",  "from": ["resolved", "rejected"], "to": "triage", "reopen": true}],
 "on_enter": {"review": {"fetch": "m_fsrc"}}}$j$::jsonb, '{on_enter,review,fetch}', to_jsonb('m_fsrc_' || :'r')));
-- SLA targets of seconds, so warnings, breaches and escalations happen during the run
SELECT workqueue.create_sla_policy('m_sla_' || :'r', '24x7',
    '{"1": "6 seconds", "2": "10 seconds", "3": "15 seconds", "4": "25 seconds", "5": "40 seconds"}', '{50,75}');
SELECT workqueue.create_queue('m_q1_' || :'r', 'm_flow_' || :'r', 'm_sla_' || :'r', '3 seconds');
-- the built-in review workflow with leases so short that they run out all the time
SELECT workqueue.create_queue('m_q2_' || :'r', 'review', NULL, '300 milliseconds');
-- workflow roles: coordinators a1-a4, reviewers a3-a8 and m_plain1, leads a1, a8
SELECT workqueue.add_member('m_coord', m) FROM unnest(ARRAY['a1', 'a2', 'a3', 'a4']) m;
SELECT workqueue.add_member('m_rev', m) FROM unnest(ARRAY['a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'm_plain1']) m;
SELECT workqueue.add_member('m_lead', m) FROM unnest(ARRAY['a1', 'a8']) m;
SELECT workqueue.assignment_strategy('m_rev', 'least_loaded');
-- scopes: the agents' application sees scope mx, the plain roles do not
SELECT workqueue.grant_scope('m_app', 'mx');
-- the synced source, and a second one on the same API for fetches (so that
-- a run's events are told apart from a fetch's by their actor)
SELECT workqueue.create_source('m_src_' || :'r', 'm_q1_' || :'r', :'api' || '/cases/ids', :'api' || '/cases/details?ids={ids}',
    '{"batch_size": 40, "retries": 2, "mapping": {"priority": "$.severity", "data.title": "$.name", "data.v": "$.version"}}');
SELECT workqueue.create_source('m_fsrc_' || :'r', 'm_q1_' || :'r', :'api' || '/cases/ids', :'api' || '/cases/details?ids={ids}',
    '{"retries": 3, "timeout_ms": 3000, "mapping": {"priority": "$.severity", "data.title": "$.name", "data.v": "$.version"}}');
