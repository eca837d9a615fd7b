-- Workflows: define_workflow (validation, versions), transition,
-- transition_many, allowed_transitions, workflow_graph and the built-in
-- 'review' workflow (SPEC §2, §5, §9).
--
-- Runs in one transaction that is rolled back.  Names carry the file's
-- number (q20_*, wq20_*) so that files may run in parallel.
BEGIN;
SELECT plan(133);

-- wqt.err(sql): the SQLSTATE, message, detail and hint a statement raises
-- (all NULL when it succeeds); for asserting hints and details.
CREATE ROLE wq20_carol LOGIN;   -- coordinator
CREATE ROLE wq20_rita LOGIN;    -- reviewer
CREATE ROLE wq20_nina LOGIN;    -- member of no workflow role
CREATE ROLE wq20_adam LOGIN;    -- workqueue administrator
GRANT workqueue_admin TO wq20_adam;

------------------------------------------------------------------------------
-- the built-in 'review' workflow
------------------------------------------------------------------------------

SELECT results_eq(
    $$SELECT position, name, kind, role, is_start FROM workqueue.workflow_step
       WHERE workflow = 'review' AND version = 1 ORDER BY position$$,
    $$VALUES (1, 'review'::text, 'work'::text, NULL::text, true),
             (2, 'resolved', 'resolved', NULL, false),
             (3, 'rejected', 'rejected', NULL, false)$$,
    'review has one working start step, review, and the terminal steps resolved and rejected');
SELECT results_eq(
    $$SELECT t->>'name', t->'from', t->>'to', coalesce((t->>'reopen')::boolean, false)
        FROM workqueue.workflow_version v, jsonb_array_elements(v.definition->'transitions') t
       WHERE v.workflow = 'review' AND v.version = 1$$,
    $$VALUES ('resolve'::text, '"review"'::jsonb, 'resolved'::text, false),
             ('reject', '"review"', 'rejected', false),
             ('reopen', '["resolved", "rejected"]', 'review', true)$$,
    'review has the transitions resolve, reject and reopen');
SELECT results_eq(
    $$SELECT current_version, v.start_step, v.builtin FROM workqueue.workflow w
        JOIN workqueue.workflow_version v ON v.workflow = w.name AND v.version = w.current_version
       WHERE w.name = 'review'$$,
    $$VALUES (1, 'review'::text, true)$$, 'review is built in, at version 1');

SELECT is(workqueue.workflow_graph('review'),
E'digraph "review" {\n'
 '  rankdir=LR;\n'
 '  "review" [shape=box, style=bold];\n'
 '  "resolved" [shape=doublecircle];\n'
 '  "rejected" [shape=doublecircle];\n'
 '  "review" -> "resolved" [label="resolve"];\n'
 '  "review" -> "rejected" [label="reject"];\n'
 '  "resolved" -> "review" [label="reopen"];\n'
 '  "rejected" -> "review" [label="reopen"];\n'
 '}',
    'workflow_graph draws review in Graphviz DOT');
SELECT is(workqueue.workflow_graph('review', format => 'dot'), workqueue.workflow_graph('review'),
    'dot is the default format');
SELECT is(workqueue.workflow_graph('review', 1, 'mermaid'),
E'stateDiagram-v2\n'
 '  state "review" as s1\n'
 '  state "resolved" as s2\n'
 '  state "rejected" as s3\n'
 '  [*] --> s1\n'
 '  s1 --> s2: resolve\n'
 '  s1 --> s3: reject\n'
 '  s2 --> s1: reopen\n'
 '  s3 --> s1: reopen\n'
 '  s2 --> [*]\n'
 '  s3 --> [*]',
    'workflow_graph draws review as a mermaid state diagram');
SELECT throws_ok($$SELECT workqueue.workflow_graph('nope')$$,
    '42704', 'workflow "nope" does not exist', 'graph of an unrecognized workflow is refused');
SELECT throws_ok($$SELECT workqueue.workflow_graph('review', 9)$$,
    '42704', 'workflow "review" version 9 does not exist', 'graph of an unrecognized version is refused');
SELECT throws_ok($$SELECT workqueue.workflow_graph('review', format => 'png')$$,
    '22023', 'unrecognized graph format "png"', 'an unrecognized graph format is refused');

-- a plain queue: open -> resolved | rejected, and reopen
SELECT workqueue.create_queue('q20_review') AS _ \gset
SELECT workqueue.add('q20_review') AS r1, workqueue.add('q20_review') AS r2 \gset
SET ROLE wq20_nina;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :r1),
    $$VALUES ('resolve'::text), ('reject')$$, 'on review anyone may resolve or reject (the step has no role)');
SELECT results_eq(
    format($$SELECT step, status, resolved_at, claimed_by FROM workqueue.transition(%s, 'resolve')$$, :r1),
    $$VALUES ('resolved'::text, 'resolved'::text, now(), NULL::text)$$,
    'resolve moves the item into the terminal step, sets status resolved and resolved_at');
SELECT results_eq(
    format($$SELECT step, status, resolved_at FROM workqueue.transition(%s, 'reject')$$, :r2),
    $$VALUES ('rejected'::text, 'rejected'::text, now())$$,
    'reject sets status rejected and resolved_at');
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :r1),
    $$VALUES ('reopen'::text)$$, 'a resolved item may only be reopened');
SELECT results_eq(
    format($$SELECT step, status, resolved_at FROM workqueue.transition(%s, 'reopen')$$, :r1),
    $$VALUES ('review'::text, 'open'::text, NULL::timestamptz)$$,
    'reopen brings the item back to review, open, and clears resolved_at');
SELECT results_eq(
    format($$SELECT step, status, resolved_at FROM workqueue.transition(%s, 'reopen')$$, :r2),
    $$VALUES ('review'::text, 'open'::text, NULL::timestamptz)$$,
    'a rejected item can be reopened too');
RESET ROLE;

------------------------------------------------------------------------------
-- define_workflow: the example of SPEC §5
------------------------------------------------------------------------------

SELECT $${"steps": [
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
 "on_enter": {"review": {"fetch": "cases"}}}$$ AS case_def \gset

SELECT is(workqueue.define_workflow('wq20_case', :'case_def'), 1, 'define_workflow of a new workflow returns version 1');
SELECT results_eq(
    $$SELECT position, name, kind, role, weight, is_start, pauses_sla, escalate_to
        FROM workqueue.workflow_step WHERE workflow = 'wq20_case' AND version = 1 ORDER BY position$$,
    $$VALUES (1, 'triage'::text, 'work'::text, 'coordinator'::text, 1::float8, true, false, 'lead'::text),
             (2, 'review', 'work', 'reviewer', 3, false, false, NULL),
             (3, 'waiting', 'work', 'reviewer', 1, false, true, NULL),
             (4, 'resolved', 'resolved', NULL, 1, false, false, NULL),
             (5, 'rejected', 'rejected', NULL, 1, false, false, NULL)$$,
    'the steps are stored with kind, role, weight, start, pauses_sla and escalate_to');
SELECT results_eq(
    $$SELECT definition, start_step, builtin FROM workqueue.workflow_version WHERE workflow = 'wq20_case'$$,
    format($$VALUES (%L::jsonb, 'triage'::text, false)$$, :'case_def'),
    'the definition is stored as given, with its start step');

-- versions: immutable, items keep the version they started on
SELECT is(workqueue.define_workflow('wq20_ver', $${"steps": [
    {"name": "a", "start": true}, {"name": "b"}, {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "go", "from": "a", "to": "b"}, {"name": "finish", "from": "b", "to": "done"}]}$$),
    1, 'version 1 of wq20_ver');
SELECT definition AS ver1_def FROM workqueue.workflow_version WHERE workflow = 'wq20_ver' AND version = 1 \gset
SELECT workqueue.create_queue('q20_ver', 'wq20_ver') AS _ \gset
SELECT workqueue.add('q20_ver') AS v1item \gset
SELECT is(workqueue.define_workflow('wq20_ver', $${"steps": [
    {"name": "a", "start": true}, {"name": "c"}, {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "move", "from": "a", "to": "c"}, {"name": "end", "from": "c", "to": "done"}]}$$),
    2, 'defining the same name again returns version 2');
SELECT results_eq(
    $$SELECT version, definition FROM workqueue.workflow_version WHERE workflow = 'wq20_ver' ORDER BY version LIMIT 1$$,
    format($$VALUES (1, %L::jsonb)$$, :'ver1_def'), 'version 1 is unchanged');
SELECT results_eq(
    $$SELECT name FROM workqueue.workflow_step WHERE workflow = 'wq20_ver' AND version = 1 ORDER BY position$$,
    $$VALUES ('a'::text), ('b'), ('done')$$, 'the steps of version 1 are unchanged');
SELECT is((SELECT current_version FROM workqueue.workflow WHERE name = 'wq20_ver'), 2, 'the current version is 2');
SELECT workqueue.add('q20_ver') AS v2item \gset
SELECT results_eq(
    format('SELECT id, workflow_version FROM workqueue.item WHERE id IN (%s, %s) ORDER BY id', :v1item, :v2item),
    format('VALUES (%s::bigint, 1), (%s, 2)', :v1item, :v2item),
    'an item keeps the version it was created on; new items get the current one');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'move')$$, :v1item),
    '22023', 'transition "move" does not exist in workflow "wq20_ver" version 1',
    'an item of version 1 cannot use a transition that only version 2 has');
SELECT is((SELECT step FROM workqueue.transition(:v1item, 'go')), 'b',
    'an item of version 1 moves by the rules of version 1');
SELECT is((SELECT status FROM workqueue.transition(:v1item, 'finish')), 'resolved',
    '... even through a step version 2 no longer has');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'go')$$, :v2item),
    '22023', 'transition "go" does not exist in workflow "wq20_ver" version 2',
    'an item of version 2 cannot use a transition version 2 renamed');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'go')$$, :v2item))).hint,
    'Allowed transitions: move.', 'the hint lists the transitions of the item''s own version');
SELECT is((SELECT step FROM workqueue.transition(:v2item, 'move')), 'c', 'an item of version 2 moves by its rules');
SELECT is(workqueue.workflow_graph('wq20_ver', 1, 'mermaid'),
    E'stateDiagram-v2\n  state "a" as s1\n  state "b" as s2\n  state "done" as s3\n  [*] --> s1\n  s1 --> s2: go\n  s2 --> s3: finish\n  s3 --> [*]',
    'workflow_graph draws a given version');
SELECT is(workqueue.workflow_graph('wq20_ver', format => 'mermaid'),
    E'stateDiagram-v2\n  state "a" as s1\n  state "c" as s2\n  state "done" as s3\n  [*] --> s1\n  s1 --> s2: move\n  s2 --> s3: end\n  s3 --> [*]',
    'workflow_graph draws the current version by default');

------------------------------------------------------------------------------
-- define_workflow: validation (42P17, naming the offending step/transition)
------------------------------------------------------------------------------

SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}],
    "transitions": [{"name": "go", "from": ["a", "elsewhere"], "to": "a"}]}')$$,
    '42P17', 'transition "go" starts from unrecognized step "elsewhere"', 'an unrecognized "from" step');
SELECT is((wqt.err($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}],
    "transitions": [{"name": "go", "from": ["a", "elsewhere"], "to": "a"}]}')$$)).detail,
    'The steps are: a.', 'the detail lists the steps');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}],
    "transitions": [{"name": "go", "from": "a", "to": "nowhere"}]}')$$,
    '42P17', 'transition "go" leads to unrecognized step "nowhere"', 'an unrecognized "to" step');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a"}]}')$$,
    '42P17', 'workflow has no start step', 'no start step');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad',
    '{"steps": [{"name": "a", "start": true}, {"name": "b", "start": true}], "transitions": [{"name": "t", "from": "a", "to": "b"}]}')$$,
    '42P17', 'workflow has several start steps', 'several start steps');
SELECT is((wqt.err($$SELECT workqueue.define_workflow('wq20_bad',
    '{"steps": [{"name": "a", "start": true}, {"name": "b", "start": true}], "transitions": [{"name": "t", "from": "a", "to": "b"}]}')$$)).detail,
    'Steps "a" and "b" are both marked "start".', 'the detail names the start steps');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}]}')$$,
    '42P17', 'step "b" is unreachable from start step "a"', 'an unreachable step');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "done", "kind": "resolved"}],
    "transitions": [{"name": "finish", "from": "a", "to": "done"}, {"name": "again", "from": "done", "to": "a"}]}')$$,
    '42P17', 'terminal step "done" has outgoing transition "again"', 'a terminal step with an outgoing transition');
SELECT is(workqueue.define_workflow('wq20_reopen', '{"steps": [{"name": "a", "start": true}, {"name": "done", "kind": "resolved"}],
    "transitions": [{"name": "finish", "from": "a", "to": "done"}, {"name": "again", "from": "done", "to": "a", "reopen": true}]}'),
    1, 'a transition out of a terminal step is allowed when marked "reopen": true');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "a"}]}')$$,
    '42P17', 'duplicate step name "a"', 'duplicate step names');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "done", "kind": "resolved"}],
    "transitions": [{"name": "finish", "from": "a", "to": "done"}, {"name": "finish", "from": "a", "to": "a"}]}')$$,
    '42P17', 'duplicate transition name "finish"', 'duplicate transition names');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '[]')$$,
    '42P17', 'workflow definition must be a JSON object', 'a definition that is an array');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '"steps"')$$,
    '42P17', 'workflow definition must be a JSON object', 'a definition that is a scalar');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": {"name": "a"}}')$$,
    '42P17', 'workflow definition needs a "steps" array', '"steps" that is not an array');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"transitions": []}')$$,
    '42P17', 'workflow definition needs a "steps" array', 'a definition without steps');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": []}')$$,
    '42P17', 'workflow has no steps', 'an empty steps array');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, "b"]}')$$,
    '42P17', 'step 2 is not a JSON object', 'a step that is not an object');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"role": "x"}]}')$$,
    '42P17', 'step 2 has no name', 'a step without a name');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}], "trasitions": []}')$$,
    '42P17', 'unrecognized key "trasitions" in workflow definition', 'a misspelt top-level key');
SELECT is((wqt.err($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}], "trasitions": []}')$$)).hint,
    'Valid keys are: steps, transitions, on_enter, description.', 'the hint lists the valid keys');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true, "rol": "x"}]}')$$,
    '42P17', 'unrecognized key "rol" in step "a"', 'a misspelt step key');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}],
    "transitions": [{"name": "go", "from": "a", "too": "b"}]}')$$,
    '42P17', 'unrecognized key "too" in transition "go"', 'a misspelt transition key');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b", "kind": "closed"}],
    "transitions": [{"name": "go", "from": "a", "to": "b"}]}')$$,
    '42P17', 'step "b" has unrecognized kind "closed"', 'an unrecognized step kind');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true, "weight": -1}]}')$$,
    '42P17', '"weight" of step "a" must be a positive number', 'a negative weight');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true, "weight": 0}]}')$$,
    '42P17', '"weight" of step "a" must be a positive number', 'a zero weight');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true, "weight": "heavy"}]}')$$,
    '42P17', '"weight" of step "a" must be a number', 'a weight that is not a number');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true, "weight": 1e400}]}')$$,
    '42P17', NULL::text, 'a weight too large for double precision is a definition error naming the step');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true, "start": "yes"}]}')$$,
    '42P17', '"start" of step "a" must be true or false', 'a "start" that is not a boolean');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}], "on_enter": {"b": {"fetch": "x"}}}')$$,
    '42P17', '"on_enter" names unrecognized step "b"', 'on_enter naming an unrecognized step');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}], "on_enter": {"a": {"fetch": "x", "call": "y"}}}')$$,
    '42P17', 'unrecognized key "call" in on_enter of step "a"', 'on_enter with an unrecognized action');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}], "transitions": {}}')$$,
    '42P17', '"transitions" must be an array', '"transitions" that is not an array');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "done", "kind": "resolved", "role": "x"}],
    "transitions": [{"name": "finish", "from": "a", "to": "done"}]}')$$,
    '42P17', 'terminal step "done" cannot have a role', 'a terminal step with a role');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "done", "kind": "resolved", "start": true}]}')$$,
    '42P17', 'start step "done" cannot be terminal', 'a terminal start step');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}],
    "transitions": [{"name": "go", "to": "b"}]}')$$,
    '42P17', 'transition "go" has no "from" step', 'a transition without "from"');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}],
    "transitions": [{"name": "go", "from": "a"}]}')$$,
    '42P17', 'transition "go" has no "to" step', 'a transition without "to"');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}],
    "transitions": [{"from": "a", "to": "b"}]}')$$,
    '42P17', 'transition 1 has no name', 'a transition without a name');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', '{"steps": [{"name": "a", "start": true}, {"name": "b"}],
    "transitions": [{"name": "go", "from": "a", "to": "b", "requires": "resolution"}]}')$$,
    '42P17', '"requires" of transition "go" must be an array of field names', '"requires" that is not an array');
SELECT throws_ok($$SELECT workqueue.define_workflow('wq20_bad', NULL)$$,
    '22004', 'workflow definition must not be null', 'a NULL definition');
SELECT throws_ok($$SELECT workqueue.define_workflow('', '{"steps": [{"name": "a", "start": true}]}')$$,
    '22023', 'workflow name must not be empty', 'an empty workflow name');
SELECT is((SELECT count(*) FROM workqueue.workflow WHERE name IN ('wq20_bad', '')), 0::bigint,
    'no invalid definition was stored');

------------------------------------------------------------------------------
-- transition: the example workflow, walked by members of its roles
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q20_case', 'wq20_case') AS _ \gset
SELECT lives_ok($$SELECT workqueue.add_member('coordinator', 'wq20_carol')$$, 'carol joins coordinator');
SELECT lives_ok($$SELECT workqueue.add_member('reviewer', 'wq20_rita')$$, 'rita joins reviewer');
SELECT workqueue.add('q20_case', '{"n": 1}') AS c1 \gset
SELECT is((SELECT step FROM workqueue.item WHERE id = :c1), 'triage', 'an item starts at the start step');

SET ROLE wq20_carol;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c1),
    $$VALUES ('accept'::text), ('reject')$$, 'allowed_transitions for a member of the step''s role');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'fly')$$, :c1),
    '22023', 'transition "fly" does not exist in workflow "wq20_case" version 1',
    'an unrecognized transition is refused');
SELECT results_eq(
    format($$SELECT detail, hint FROM wqt.err('SELECT workqueue.transition(%s, ''fly'')')$$, :c1),
    format($$VALUES ('Item %s is at step "triage".'::text, 'Allowed transitions: accept, reject.'::text)$$, :c1),
    'its hint lists the transitions allowed from the current step');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'resolve')$$, :c1),
    '55000', 'transition "resolve" is not allowed from step "triage"',
    'a transition that does not leave the current step is refused');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'resolve')$$, :c1))).hint,
    'Allowed transitions: accept, reject.', 'its hint lists the allowed transitions');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept', '[1]')$$, :c1),
    '22023', 'transition payload must be a JSON object', 'a payload that is not an object is refused');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, '')$$, :c1),
    '22004', 'transition name must not be empty', 'an empty transition name is refused');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept', '{}', NULL)$$, :c1),
    '22004', 'actor must not be empty', 'a NULL actor is refused');
SELECT throws_ok($$SELECT workqueue.transition(0, 'accept')$$,
    '42704', 'item 0 does not exist', 'a transition of an unrecognized item is refused');
SELECT throws_ok($$SELECT workqueue.transition(NULL, 'accept')$$,
    '22004', 'item id must not be null', 'a transition of a NULL item is refused');
SELECT is((SELECT step FROM workqueue.item WHERE id = :c1), 'triage', 'refused transitions change nothing');
SELECT results_eq(
    format($$SELECT step, status, claimed_by, resolved_at FROM workqueue.transition(%s, 'accept')$$, :c1),
    $$VALUES ('review'::text, 'open'::text, NULL::text, NULL::timestamptz)$$,
    'the coordinator accepts: the item is open at review for the reviewers');
SELECT results_eq(
    format($$SELECT kind, actor, from_step, to_step, payload->>'transition', payload#>>'{old,step}',
                    payload#>>'{old,status}', payload#>>'{new,step}', payload#>>'{new,status}'
               FROM workqueue.item_event WHERE item_id = %s AND kind = 'transition' ORDER BY id DESC LIMIT 1$$, :c1),
    $$VALUES ('transition'::text, 'wq20_carol'::text, 'triage'::text, 'review'::text, 'accept'::text,
              'triage'::text, 'open'::text, 'review'::text, 'open'::text)$$,
    'the transition event records the actor, the transition and the old and new step and status');
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c1),
    'a coordinator has no transitions on a review step');

SET ROLE wq20_rita;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c1),
    $$VALUES ('ask'::text), ('resolve'), ('reject')$$, 'a reviewer may ask, resolve or reject');
SELECT is((SELECT id FROM workqueue.claim('q20_case', 1)), :c1::bigint, 'rita claims the item');
SELECT results_eq(
    format($$SELECT step, status, claimed_by, lease_until FROM workqueue.transition(%s, 'ask')$$, :c1),
    $$VALUES ('waiting'::text, 'open'::text, NULL::text, NULL::timestamptz)$$,
    'a transition into a working step leaves the item open and clears the claim');
SELECT is((SELECT payload#>>'{old,claimed_by}' FROM workqueue.item_event
            WHERE item_id = :c1 ORDER BY id DESC LIMIT 1), 'wq20_rita',
    'the event records who held the claim');
SELECT is((SELECT step FROM workqueue.transition(:c1, 'answer')), 'review', 'answer goes back to review');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'resolve')$$, :c1),
    '22004', 'transition "resolve" requires field "resolution"', 'a required field missing from the payload');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'resolve', '{"resolution": null}')$$, :c1),
    '22004', 'transition "resolve" requires field "resolution"', 'a required field that is null');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'resolve', '{"other": 1}')$$, :c1))).hint,
    E'Pass it in the payload, e.g. \'{"resolution": "..."}\'.', 'the hint shows how to pass the field');
SELECT results_eq(
    format($$SELECT step, status, resolved_at, claimed_by FROM workqueue.transition(%s, 'resolve', '{"resolution": "fixed"}')$$, :c1),
    $$VALUES ('resolved'::text, 'resolved'::text, now(), NULL::text)$$,
    'resolve with its required field: terminal step, status resolved, resolved_at set');
SELECT is((SELECT payload->'payload' FROM workqueue.item_event WHERE item_id = :c1 ORDER BY id DESC LIMIT 1),
    '{"resolution": "fixed"}'::jsonb, 'the event keeps the payload');
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c1),
    'nothing leaves a terminal step without a reopen transition');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'ask')$$, :c1),
    '55000', 'transition "ask" is not allowed from step "resolved"', 'a resolved item stays resolved');
SELECT is((wqt.err(format($$SELECT workqueue.transition(%s, 'ask')$$, :c1))).hint,
    'Allowed transitions: none.', 'the hint says that no transition is allowed');
RESET ROLE;

SELECT results_eq(
    format($$SELECT kind, from_step, to_step FROM workqueue.history(%s) WHERE kind <> 'assigned'$$, :c1),
    $$VALUES ('transition'::text, 'review'::text, 'resolved'::text),
             ('transition', 'waiting', 'review'),
             ('transition', 'review', 'waiting'),
             ('claimed', 'review', 'review'),
             ('transition', 'triage', 'review'),
             ('created', NULL, 'triage')$$,
    'history shows the walk newest first');

-- the role check and allowed_transitions for non-members and administrators
SELECT workqueue.add('q20_case', '{"n": 2}') AS c2 \gset
SET ROLE wq20_nina;
SELECT is_empty(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c2),
    'allowed_transitions is empty for someone in none of the step''s roles');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'accept')$$, :c2),
    '42501', format('"wq20_nina" may not act on step "triage" of item %s', :c2),
    'a non-member cannot move the item');
SELECT results_eq(
    format($$SELECT detail, hint FROM wqt.err('SELECT workqueue.transition(%s, ''accept'')')$$, :c2),
    $$VALUES ('Step "triage" belongs to role "coordinator"; "wq20_nina" is neither an active member nor the assignee.'::text,
              'Add the member with workqueue.add_member(''coordinator'', ''wq20_nina''), or act as an administrator.'::text)$$,
    'the refusal names the step''s role and hints at add_member');
SET ROLE wq20_adam;
SELECT results_eq(format('SELECT * FROM workqueue.allowed_transitions(%s)', :c2),
    $$VALUES ('accept'::text), ('reject')$$, 'an administrator may take every transition of the step');
SELECT is((SELECT step FROM workqueue.transition(:c2, 'reject')), 'rejected',
    'an administrator moves an item without being in the step''s role');
RESET ROLE;
SELECT throws_ok($$SELECT * FROM workqueue.allowed_transitions(0)$$,
    '42704', 'item 0 does not exist', 'allowed_transitions of an unrecognized item is refused');

------------------------------------------------------------------------------
-- transition_many: all or nothing
------------------------------------------------------------------------------

SELECT workqueue.create_queue('q20_many') AS _ \gset
SELECT workqueue.add('q20_many') AS m1, workqueue.add('q20_many') AS m2,
       workqueue.add('q20_many') AS m3, workqueue.add('q20_many') AS m4 \gset
SELECT is(workqueue.transition_many(ARRAY[:m1, :m2]::bigint[], 'resolve'), 2,
    'transition_many returns how many items moved');
SELECT results_eq(
    format('SELECT status FROM workqueue.item WHERE id IN (%s, %s)', :m1, :m2),
    $$VALUES ('resolved'::text), ('resolved')$$, 'both items moved');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id IN (:m1, :m2) AND kind = 'transition'), 2::bigint,
    'each moved item has its transition event');
-- m3 comes first (ids are processed in order) and could move; m4 cannot
SELECT is((SELECT step FROM workqueue.transition(:m4, 'reject')), 'rejected', 'm4 is rejected');
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s, %s], 'resolve')$$, :m4, :m3),
    '55000', 'transition "resolve" is not allowed from step "rejected"', 'one item that cannot move fails the call');
SELECT results_eq(
    format('SELECT step, status FROM workqueue.item WHERE id = %s', :m3),
    $$VALUES ('review'::text, 'open'::text)$$, '... and no item moved');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :m3 AND kind = 'transition'), 0::bigint,
    '... and no event was written');
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s, 0], 'resolve')$$, :m3),
    '42704', 'item 0 does not exist', 'an unrecognized item fails the call');
SELECT is(workqueue.transition_many(ARRAY[:m3, :m3, :m3]::bigint[], 'resolve'), 1,
    'an item listed several times moves and counts once');
SELECT is((SELECT count(*) FROM workqueue.item_event WHERE item_id = :m3 AND kind = 'transition'), 1::bigint,
    '... with one event');
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s, NULL], 'reopen')$$, :m3),
    '22004', 'item array must not contain nulls', 'a NULL element is refused');
SELECT throws_ok($$SELECT workqueue.transition_many(NULL, 'reopen')$$,
    '22004', 'item array must not be null', 'a NULL array is refused');
SELECT is(workqueue.transition_many('{}', 'resolve'), 0, 'an empty array moves nothing');
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s], 'fly')$$, :m3),
    '22023', 'transition "fly" does not exist in workflow "review" version 1', 'an unrecognized transition fails the call');
SELECT workqueue.add('q20_case') AS c3, workqueue.add('q20_case') AS c4 \gset
SET ROLE wq20_rita;
SELECT throws_ok(format($$SELECT workqueue.transition_many(ARRAY[%s, %s], 'accept')$$, :c3, :c4),
    '42501', format('"wq20_rita" may not act on step "triage" of item %s', :c3),
    'transition_many checks the role on every item');
SET ROLE wq20_carol;
SELECT is(workqueue.transition_many(ARRAY[:c3, :c4]::bigint[], 'accept'), 2, 'a member moves both');
RESET ROLE;

------------------------------------------------------------------------------
-- workflow_graph: names that need quoting
------------------------------------------------------------------------------

SELECT is(workqueue.define_workflow('wq20_names', $${"steps": [
    {"name": "node", "start": true}, {"name": "needs info"}, {"name": "say \"hi\""},
    {"name": "done", "kind": "resolved"}],
  "transitions": [{"name": "go", "from": "node", "to": "needs info"},
                  {"name": "go2", "from": "needs info", "to": "say \"hi\""},
                  {"name": "fin", "from": "say \"hi\"", "to": "done"}]}$$), 1,
    'a workflow whose step names need quoting');
SELECT workqueue.workflow_graph('wq20_names') AS names_dot, workqueue.workflow_graph('wq20_names', format => 'mermaid') AS names_mmd \gset
SELECT ok(:'names_dot' !~ E'\n  node[ ;\\[]',
    'DOT: a step named like the keyword "node" is quoted (a bare node statement sets defaults)');
SELECT ok(strpos(:'names_dot', '"say \"hi\""') > 0,
    'DOT: a double quote inside a name is escaped with a backslash');
SELECT ok(strpos(:'names_mmd', '--> needs info') = 0 AND strpos(:'names_mmd', E'\n  needs info -->') = 0,
    'mermaid: a name with a space is not used as a bare state id');

------------------------------------------------------------------------------
-- the compiled-workflow cache follows rolled-back definitions
------------------------------------------------------------------------------

SAVEPOINT wq20_cache;
SELECT workqueue.define_workflow('wq20_cache', '{"steps": [{"name": "s", "start": true}, {"name": "done", "kind": "resolved"}],
    "transitions": [{"name": "finish", "from": "s", "to": "done"}]}') AS _ \gset
SELECT workqueue.create_queue('q20_cache', 'wq20_cache') AS _ \gset
SELECT workqueue.transition(workqueue.add('q20_cache'), 'finish') AS _ \gset
ROLLBACK TO SAVEPOINT wq20_cache;
SELECT is(workqueue.define_workflow('wq20_cache', '{"steps": [{"name": "s", "start": true}, {"name": "end", "kind": "rejected"}],
    "transitions": [{"name": "stop", "from": "s", "to": "end"}]}'), 1,
    'version 1 of a workflow whose first definition was rolled back');
SELECT workqueue.create_queue('q20_cache', 'wq20_cache') AS _ \gset
SELECT workqueue.add('q20_cache') AS k1, workqueue.add('q20_cache') AS k2 \gset
SELECT lives_ok(format($$SELECT workqueue.transition(%s, 'stop')$$, :k1),
    'transitions follow the stored definition, not one compiled from a rolled-back version');
SELECT throws_ok(format($$SELECT workqueue.transition(%s, 'finish')$$, :k2),
    '22023', 'transition "finish" does not exist in workflow "wq20_cache" version 1',
    'a transition of the rolled-back definition does not exist');
SELECT is((SELECT count(*) FROM workqueue.item i
            WHERE i.queue = 'q20_cache'
              AND NOT EXISTS (SELECT 1 FROM workqueue.workflow_step s
                               WHERE s.workflow = i.workflow AND s.version = i.workflow_version AND s.name = i.step)),
    0::bigint, 'no item stands at a step its workflow version lacks');

SELECT * FROM finish();
ROLLBACK;
