-- Workflows: validation, versions, transitions, graphs.
\set SHOW_CONTEXT never
\pset footer off

-- the built-in workflow
SELECT workqueue.workflow_graph('review');
SELECT workqueue.workflow_graph('review', format => 'mermaid');

-- validation names the offending step or transition
SELECT workqueue.define_workflow('bad', '[]');
SELECT workqueue.define_workflow('bad', '{"steps": []}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}, {"name": "b", "start": true}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}, {"name": "a"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}],
  "transitions": [{"name": "go", "from": "a", "to": "nowhere"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}],
  "transitions": [{"name": "go", "from": ["a", "elsewhere"], "to": "a"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}, {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "finish", "from": "a", "to": "done"}, {"name": "again", "from": "done", "to": "a"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}, {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "finish", "from": "a", "to": "done"}, {"name": "finish", "from": "a", "to": "a"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true, "kind": "closed"}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true, "weight": -1}]}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}], "trasitions": []}');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true}], "on_enter": {"b": {"fetch": "x"}}}');
SELECT workqueue.define_workflow('bad', NULL);
SELECT count(*) AS stored FROM workqueue.workflow WHERE name = 'bad';

-- the example of the specification
SELECT workqueue.define_workflow('case', $${"steps": [
   {"name": "triage",  "role": "coordinator", "weight": 1, "start": true, "escalate_to": "lead"},
   {"name": "review",  "role": "reviewer",    "weight": 3},
   {"name": "waiting", "role": "reviewer",    "pauses_sla": true},
   {"name": "resolved", "kind": "resolved"},
   {"name": "rejected", "kind": "rejected"}],
 "transitions": [
   {"name": "accept",  "from": "triage", "to": "review"},
   {"name": "ask",     "from": "review", "to": "waiting"},
   {"name": "answer",  "from": "waiting", "to": "review"},
   {"name": "resolve", "from": "review", "to": "resolved", "requires": ["resolution"]},
   {"name": "reject",  "from": ["triage", "review"], "to": "rejected"}],
 "on_enter": {"review": {"fetch": "cases"}}}$$);
SELECT position, name, kind, role, weight, is_start, pauses_sla, escalate_to
  FROM workqueue.workflow_step WHERE workflow = 'case' ORDER BY position;
SELECT workqueue.workflow_graph('case');

SELECT workqueue.create_queue('cases', 'case');
SELECT workqueue.add_member('coordinator', 'carol');
SELECT workqueue.add_member('reviewer', 'rita');
SELECT workqueue.add('cases', '{"n": 1}') AS a, workqueue.add('cases', '{"n": 2}') AS b \gset

-- role check, invalid moves with the allowed ones in the hint, requires
SELECT * FROM workqueue.allowed_transitions(:a, 'rita');
SELECT * FROM workqueue.allowed_transitions(:a, 'carol');
SELECT workqueue.transition(:a, 'accept', actor => 'rita');
SELECT workqueue.transition(:a, 'resolve', actor => 'carol');
SELECT workqueue.transition(:a, 'fly', actor => 'carol');
SELECT step, status FROM workqueue.transition(:a, 'accept', actor => 'carol');
SELECT workqueue.transition(:a, 'resolve', actor => 'rita');
SELECT step, status FROM workqueue.transition(:a, 'ask', actor => 'rita');
SELECT step, status FROM workqueue.transition(:a, 'answer', actor => 'rita');
SELECT step, status, notes, resolved_at IS NOT NULL AS has_resolved_at
  FROM workqueue.transition(:a, 'resolve', '{"resolution": "fixed"}', actor => 'rita');
SELECT * FROM workqueue.allowed_transitions(:a, 'rita');

-- leases: only the holder moves a claimed item; an expired holder is refused
-- (terse: the details carry timestamps)
\set VERBOSITY terse
SELECT id, claimed_by FROM workqueue.claim('cases', 1, 'carol');
SELECT workqueue.add_member('coordinator', 'cody');
SELECT workqueue.transition(:b, 'accept', actor => 'cody');
UPDATE workqueue.item SET lease_until = now() - interval '1 second' WHERE id = :b;
SELECT workqueue.transition(:b, 'accept', actor => 'carol');
SELECT id, claimed_by FROM workqueue.claim('cases', 1, 'cody');
SELECT workqueue.transition(:b, 'accept', actor => 'carol');
SELECT step, status, claimed_by FROM workqueue.transition(:b, 'accept', actor => 'cody');
\set VERBOSITY default
SELECT kind, actor FROM workqueue.history(:b);

-- all or nothing
SELECT workqueue.add('cases', '{"n": 3}') AS c, workqueue.add('cases', '{"n": 4}') AS d \gset
SELECT workqueue.transition_many(ARRAY[:c, :d, :b], 'accept', actor => 'cody');
SELECT id, step FROM workqueue.get_items(ARRAY[:c, :d]);
SELECT workqueue.transition_many(ARRAY[:c, :d, :d], 'accept', actor => 'carol');
SELECT workqueue.transition_many(ARRAY[:c, NULL], 'reject', actor => 'rita');
SELECT workqueue.transition_many('{}', 'reject');

-- versions are immutable; items keep the version they started on
SELECT workqueue.define_workflow('case', '{"steps": [{"name": "todo", "start": true}, {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "finish", "from": "todo", "to": "done"}]}');
SELECT workqueue.add('cases', '{"n": 5}') AS e \gset
SELECT id, step, workflow_version FROM workqueue.get_items(ARRAY[:c, :e]);
SELECT step FROM workqueue.transition(:c, 'reject', actor => 'rita');
SELECT step FROM workqueue.transition(:e, 'finish');
SELECT workqueue.workflow_graph('case', 1, 'mermaid');
SELECT workqueue.workflow_graph('case', 3);
SELECT workqueue.workflow_graph('case', format => 'svg');

-- names that need quoting in DOT and Mermaid
SELECT workqueue.define_workflow('odd names', $${"steps": [
   {"name": "node", "start": true}, {"name": "needs info"}, {"name": "say \"hi\"", "kind": "resolved"}],
 "transitions": [{"name": "ask: why", "from": "node", "to": "needs info"},
                 {"name": "done", "from": "needs info", "to": "say \"hi\""}]}$$);
SELECT workqueue.workflow_graph('odd names');
SELECT workqueue.workflow_graph('odd names', format => 'mermaid');
SELECT workqueue.workflow_graph('nope');
SELECT workqueue.define_workflow('bad', '{"steps": [{"name": "a", "start": true, "weight": 1e400}]}');
