-- The README demo: a sync from the bundled sample API, then a queue with a
-- workflow: items, claims, transitions and the audit trail.
-- Run with psql -v api=http://127.0.0.1:PORT (test/run.sh demo does).
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS workqueue;

\echo
\echo '== 0. Sync: pull the open cases of the sample API into a queue'
SELECT workqueue.create_queue('cases');
SELECT workqueue.create_source('sample', 'cases', :'api' || '/cases/ids/next?per_page=100',
       :'api' || '/cases/details?ids={ids}',
       '{"ids_path": "$.ids", "pagination": {"next_url_path": "$.next"}, "batch_size": 50,
         "mapping": {"priority": "$.severity", "data.title": "$.name", "data.customer": "$.details.customer"}}');
SELECT workqueue.sync('sample') AS run \gset
SET client_min_messages = notice;
SELECT id, status, ids_seen, inserted, updated, unchanged, closed, errors
  FROM workqueue.wait(:run);
SET client_min_messages = warning;
SELECT priority, count(*) AS items FROM workqueue.item WHERE queue = 'cases' GROUP BY priority ORDER BY priority;
SELECT external_id, priority, data FROM workqueue.list_items('cases', first => 3);
\echo '   ... a full reload finds nothing changed and writes nothing:'
SELECT workqueue.sync('sample', "full" => true) AS run \gset
SELECT status, ids_seen, inserted, updated, unchanged, closed FROM workqueue.wait(:run);

\echo
\echo '== 1. A workflow: triage -> review -> resolved | rejected, steps owned by roles'
SELECT workqueue.define_workflow('support', $${
  "steps": [
    {"name": "triage",   "role": "coordinator", "start": true},
    {"name": "review",   "role": "reviewer", "weight": 3},
    {"name": "resolved", "kind": "resolved"},
    {"name": "rejected", "kind": "rejected"}],
  "transitions": [
    {"name": "accept",  "from": "triage", "to": "review"},
    {"name": "resolve", "from": "review", "to": "resolved", "requires": ["resolution"]},
    {"name": "reject",  "from": ["triage", "review"], "to": "rejected"}]
}$$) AS version;
SELECT workqueue.add_member('coordinator', 'carol');
SELECT workqueue.add_member('reviewer', 'alice');
SELECT workqueue.workflow_graph('support', format => 'mermaid') AS graph;

\echo '== 2. A queue and three items (priority 1 is the highest)'
SELECT workqueue.create_queue('support', workflow => 'support', lease_timeout => '10 minutes');
SELECT workqueue.add('support', '{"title": "Printer on fire"}', 1, 'CASE-1') AS printer,
       workqueue.add('support', '{"title": "Password reset"}', 3, 'CASE-2') AS password,
       workqueue.add('support', '{"title": "New laptop"}', 2, 'CASE-3') AS laptop
\gset
SELECT id, external_id, priority, step, status, data->>'title' AS title
  FROM workqueue.list_items('support');

\echo '== 3. carol claims the two most urgent items (priority first, then oldest)'
SELECT id, external_id, status, claimed_by FROM workqueue.claim('support', 2, 'carol');

\echo '== 4. carol accepts the printer case; it moves to review, open for a reviewer'
SELECT id, step, status, claimed_by FROM workqueue.transition(:printer, 'accept', actor => 'carol');

\echo '== 5. alice may not accept the laptop: carol holds it, and triage is not her step'
\set ON_ERROR_STOP 0
SELECT workqueue.transition(:laptop, 'accept', actor => 'alice');
\echo '   ... and resolving needs a resolution:'
SELECT workqueue.transition(:printer, 'resolve', actor => 'alice');
\set ON_ERROR_STOP 1

\echo '== 6. alice claims it, comments, records a field and resolves it'
SELECT id, step, status, claimed_by FROM workqueue.claim('support', 1, 'alice');
SELECT workqueue.comment(:printer, 'Extinguisher applied.', actor => 'alice') > 0 AS commented;
SELECT notes FROM workqueue.update_fields(:printer, '{"cause": "toner"}', actor => 'alice');
SELECT id, step, status, resolved_at IS NOT NULL AS resolved
  FROM workqueue.transition(:printer, 'resolve', '{"resolution": "replaced the fuser"}', actor => 'alice');

\echo '== 7. Everything that happened to the printer case, newest first'
SELECT kind, actor, from_step, to_step, payload - 'lease_until' AS payload
  FROM workqueue.history(:printer);

\echo '== 8. The inbox now'
SELECT status, count(*) FROM workqueue.item WHERE queue = 'support' GROUP BY status ORDER BY status;

\echo '== 9. SLAs: a policy (on the 24x7 calendar, to see it fire within seconds); the worker warns, breaches and escalates'
SELECT workqueue.create_sla_policy('demo_fast', '24x7', '{"1": "3 seconds", "3": "8 hours"}', '{50}') AS policy_version;
SELECT workqueue.define_workflow('urgent', $${"steps": [
    {"name": "handle", "role": "agent", "start": true, "escalate_to": "lead"},
    {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "finish", "from": "handle", "to": "done"}]}$$) AS version;
SELECT workqueue.add_member('agent', 'amy'), workqueue.add_member('agent', 'ben'), workqueue.add_member('lead', 'lou');
SELECT workqueue.create_queue('urgent', 'urgent', 'demo_fast');
SELECT workqueue.add('urgent', '{"title": "Site down"}', 1) AS site_down,
       workqueue.add('urgent', '{"title": "Typo on homepage"}', 3) AS typo
\gset
SELECT id, assignee, due_at - created_at AS target, step_due_at - created_at AS step_share
  FROM workqueue.get_items(ARRAY[:site_down, :typo]);
SELECT pg_sleep(4);
SELECT kind, actor, payload->>'percent' AS percent, payload->>'to' AS escalated_to
  FROM workqueue.history(:site_down) WHERE kind IN ('assigned', 'sla_warning', 'sla_breach', 'escalated')
 ORDER BY id;
SELECT due_at IS NOT NULL AS has_due, round(percent) AS percent, breached, paused FROM workqueue.sla_status(:site_down);
SELECT priority, items, breached FROM workqueue.sla_report('urgent', now() - interval '1 hour', now() + interval '1 minute');
