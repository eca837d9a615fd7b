/*
 * workflow.c
 *		Validation and compilation of workflow definitions.
 *
 * WorkflowCompile turns a definition such as
 *
 *	{"steps": [{"name": "review", "role": "reviewer", "start": true}, ...],
 *	 "transitions": [{"name": "resolve", "from": "review", "to": "resolved"}],
 *	 "on_enter": {"review": {"fetch": "cases"}}}
 *
 * into a Workflow, or raises an error naming the offending step or
 * transition.  Everything is allocated in CurrentMemoryContext; nothing here
 * touches SPI or the catalogs.  Lookups by name use sorted indexes so that
 * very large definitions compile in O(n log n); new definitions are limited
 * in size (WF_MAX_*) and name length (limits.c).
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/jsonb.h"

#include "core/jsonutil.h"
#include "workflow/workflow.h"
#include "core/workqueue.h"

/*
 * Size limits of a definition.  Every backend compiles a version on its
 * first transition, in O(n log n) of these: at the limits that is well
 * under a second, and define_workflow() about two (doc/hostile-input.md).
 */
#define WF_MAX_STEPS		100000
#define WF_MAX_TRANSITIONS	100000
#define WF_MAX_FROM			1000000	/* "from" entries of all transitions */

#define WF_ERROR(...) \
	ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION), __VA_ARGS__))

static const char *const top_keys[] = {"steps", "transitions", "on_enter", "description", NULL};
static const char *const step_keys[] = {"name", "role", "weight", "start", "kind", "escalate_to",
"pauses_sla", "description", NULL};
static const char *const transition_keys[] = {"name", "from", "to", "requires", "reopen",
"description", NULL};

/*
 * A name-like string (step, transition, role, source), length-checked in a
 * new definition.  (Versions stored before the limit existed still load.)
 */
static char *
JbName(Workflow *wf, JsonbValue *v, const char *what)
{
	if (wf->new_definition)
		WorkqueueCheckName(what, v->val.string.val, v->val.string.len);
	return JbString(v);
}

/* Raises if obj has a key that is not in allowed. */
static void
CheckKeys(JsonbContainer *obj, const char *const *allowed, const char *where)
{
	JbMembers	m;

	JbMembersInit(&m, obj);
	while (JbMembersNext(&m))
	{
		if (!JbKeyIn(allowed, &m.key))
			WF_ERROR(errmsg("unrecognized key \"%s\" in %s", JbString(&m.key), where),
					 errhint("Valid keys are: %s.", JbKeyList(allowed)));
	}
}

/* An optional string member; raises if present with another type. */
static char *
OptString(JsonbContainer *obj, const char *key, const char *where)
{
	JsonbValue *v = JbGet(obj, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString || v->val.string.len == 0)
		WF_ERROR(errmsg("\"%s\" of %s must be a non-empty string", key, where),
				 errdetail("It is a %s.", JbTypeName(v)));
	return JbString(v);
}

/* An optional name-like string member (see JbName). */
static char *
OptName(Workflow *wf, JsonbContainer *obj, const char *key, const char *where, const char *what)
{
	char	   *s = OptString(obj, key, where);

	if (s != NULL && wf->new_definition)
		WorkqueueCheckName(what, s, strlen(s));
	return s;
}

static bool
OptBool(JsonbContainer *obj, const char *key, const char *where)
{
	JsonbValue *v = JbGet(obj, key);

	if (v == NULL || v->type == jbvNull)
		return false;
	if (v->type != jbvBool)
		WF_ERROR(errmsg("\"%s\" of %s must be true or false", key, where),
				 errdetail("It is a %s.", JbTypeName(v)));
	return v->val.boolean;
}

static int
CompareNames(const void *a, const void *b)
{
	return strcmp(((const WfName *) a)->name, ((const WfName *) b)->name);
}

static WfName *
BuildIndex(int n, char **names, const char *what)
{
	WfName	   *index = palloc(sizeof(WfName) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		index[i].name = names[i];
		index[i].index = i;
	}
	qsort(index, n, sizeof(WfName), CompareNames);
	for (int i = 1; i < n; i++)
	{
		if (strcmp(index[i - 1].name, index[i].name) == 0)
			WF_ERROR(errmsg("duplicate %s name \"%s\"", what, index[i].name),
					 errdetail("The %ss at positions %d and %d share the name.", what,
							   Min(index[i - 1].index, index[i].index) + 1,
							   Max(index[i - 1].index, index[i].index) + 1),
					 errhint("Give every %s a unique name.", what));
	}
	return index;
}

static int
FindIndex(const WfName *index, int n, const char *name)
{
	WfName		key = {name, 0};
	WfName	   *found;

	if (n == 0)
		return -1;
	found = bsearch(&key, index, n, sizeof(WfName), CompareNames);
	return found ? found->index : -1;
}

int
WorkflowFindStep(const Workflow *wf, const char *name)
{
	return FindIndex(wf->step_index, wf->nsteps, name);
}

int
WorkflowFindTransition(const Workflow *wf, const char *name)
{
	return FindIndex(wf->transition_index, wf->ntransitions, name);
}

bool
WorkflowTransitionFrom(const WfTransition *t, int step)
{
	for (int i = 0; i < t->nfrom; i++)
		if (t->from[i] == step)
			return true;
	return false;
}

/*
 * Comma-separated names of the transitions leaving a step, for hints;
 * "none" when there are none.
 */
char *
WorkflowAllowedList(const Workflow *wf, int step)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < wf->ntransitions; i++)
	{
		if (WorkflowTransitionFrom(&wf->transitions[i], step))
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", wf->transitions[i].name);
	}
	if (buf.len == 0)
		appendStringInfoString(&buf, "none");
	return buf.data;
}

static char *
StepList(const Workflow *wf)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < wf->nsteps && i < 20; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", wf->steps[i].name);
	if (wf->nsteps > 20)
		appendStringInfoString(&buf, ", ...");
	return buf.data;
}

/* Raises if a new definition has more than max steps or transitions (what). */
static void
CheckCount(Workflow *wf, int n, int max, const char *what, const char *hint)
{
	if (n > max && wf->new_definition)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("workflow has too many %s", what),
				 errdetail("It has %d %s; the limit is %d.", n, what, max),
				 errhint("%s", hint)));
}

/*
 * Element i of the steps or transitions array, which must be an object with
 * a "name" and no other keys than allowed; what is "step" or "transition",
 * example how one is written.  Sets *name (length-checked, see JbName) and
 * *where (for messages) and returns the object.
 */
static JsonbContainer *
NamedElement(Workflow *wf, JsonbContainer *array, int i, const char *what, const char *example,
			 const char *const *allowed, char **name, char **where)
{
	JsonbValue *v = getIthJsonbValueFromContainer(array, i);
	JsonbContainer *obj;
	JsonbValue *n;

	CHECK_FOR_INTERRUPTS();
	if (!JbIsObject(v))
		WF_ERROR(errmsg("%s %d is not a JSON object", what, i + 1),
				 errdetail("It is a %s.", JbTypeName(v)),
				 errhint("Write each %s as %s.", what, example));
	obj = v->val.binary.data;
	n = JbGet(obj, "name");
	if (n == NULL || n->type != jbvString || n->val.string.len == 0)
		WF_ERROR(errmsg("%s %d has no name", what, i + 1),
				 errhint("Give every %s a non-empty \"name\" string.", what));
	*name = JbName(wf, n, what);
	*where = psprintf("%s \"%s\"", what, *name);
	CheckKeys(obj, allowed, *where);
	return obj;
}

/* Checks a step's optional "weight": a positive number below 1e308. */
static void
CheckWeight(JsonbContainer *obj, const char *step)
{
	JsonbValue *weight = JbGet(obj, "weight");
	char	   *text;
	double		w;

	if (weight == NULL || weight->type == jbvNull)
		return;
	if (weight->type != jbvNumeric)
		WF_ERROR(errmsg("\"weight\" of step \"%s\" must be a number", step),
				 errdetail("It is a %s.", JbTypeName(weight)));
	/* via text: numeric_float8 raises its own error on overflow */
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(weight->val.numeric)));
	w = strtod(text, NULL);
	if (!(w > 0) || isinf(w))
		WF_ERROR(errmsg("\"weight\" of step \"%s\" must be a positive number", step),
				 errdetail("It is %.40s.", text),
				 errhint("Weights are relative shares such as 1 or 3, greater than 0 and below 1e308."));
}

static void
CompileSteps(Workflow *wf, JsonbContainer *steps)
{
	int			n = JsonContainerSize(steps);
	char	  **names;
	int			nstart = 0;

	if (n == 0)
		WF_ERROR(errmsg("workflow has no steps"),
				 errhint("List the steps in a \"steps\" array."));
	CheckCount(wf, n, WF_MAX_STEPS, "steps", "Split the process into several workflows.");

	wf->nsteps = n;
	wf->steps = palloc0(sizeof(WfStep) * n);
	names = palloc(sizeof(char *) * n);

	for (int i = 0; i < n; i++)
	{
		WfStep	   *s = &wf->steps[i];
		char	   *where;
		JsonbContainer *obj = NamedElement(wf, steps, i, "step", "{\"name\": ..., \"role\": ...}",
										   step_keys, &s->name, &where);
		char	   *kind;

		names[i] = s->name;

		/* escalate_to, pauses_sla and weight are only checked here: SQL reads them */
		s->role = OptName(wf, obj, "role", where, "role");
		(void) OptName(wf, obj, "escalate_to", where, "escalation target");
		s->is_start = OptBool(obj, "start", where);
		(void) OptBool(obj, "pauses_sla", where);

		kind = OptString(obj, "kind", where);
		if (kind == NULL || strcmp(kind, "work") == 0)
			s->kind = WF_WORK;
		else if (strcmp(kind, "resolved") == 0)
			s->kind = WF_RESOLVED;
		else if (strcmp(kind, "rejected") == 0)
			s->kind = WF_REJECTED;
		else
			WF_ERROR(errmsg("step \"%s\" has unrecognized kind \"%s\"", s->name, kind),
					 errhint("Use \"resolved\" or \"rejected\" for terminal steps; leave \"kind\" out for working steps."));

		CheckWeight(obj, s->name);
		if (s->kind != WF_WORK && s->role != NULL)
			WF_ERROR(errmsg("terminal step \"%s\" cannot have a role", s->name),
					 errhint("Nobody works on a terminal step; remove \"role\"."));
		if (s->is_start)
		{
			if (nstart++ > 0)
				WF_ERROR(errmsg("workflow has several start steps"),
						 errdetail("Steps \"%s\" and \"%s\" are both marked \"start\".",
								   wf->steps[wf->start].name, s->name),
						 errhint("Mark exactly one step with \"start\": true."));
			wf->start = i;
		}
	}
	if (nstart == 0)
		WF_ERROR(errmsg("workflow has no start step"),
				 errhint("Mark exactly one step with \"start\": true."));
	if (wf->steps[wf->start].kind != WF_WORK)
		WF_ERROR(errmsg("start step \"%s\" cannot be terminal", wf->steps[wf->start].name),
				 errhint("Start with a working step."));
	wf->step_index = BuildIndex(n, names, "step");
}

/* Resolves a step name used by a transition. */
static int
TransitionStep(Workflow *wf, JsonbValue *v, const char *tname, const char *key)
{
	char	   *name;
	int			idx;

	if (v->type != jbvString || v->val.string.len == 0)
		WF_ERROR(errmsg("\"%s\" of transition \"%s\" must name a step", key, tname),
				 errdetail("It is a %s.", JbTypeName(v)));
	name = JbName(wf, v, "step");
	idx = WorkflowFindStep(wf, name);
	if (idx < 0)
		WF_ERROR(errmsg("transition \"%s\" %s unrecognized step \"%s\"", tname,
						strcmp(key, "to") == 0 ? "leads to" : "starts from", name),
				 errdetail("The steps are: %s.", StepList(wf)));
	return idx;
}

static void
CompileTransitions(Workflow *wf, JsonbContainer *transitions)
{
	int			n = transitions ? JsonContainerSize(transitions) : 0;
	char	  **names;
	int64		nfrom = 0;

	CheckCount(wf, n, WF_MAX_TRANSITIONS, "transitions",
			   "A transition may leave several steps: list them in its \"from\" array.");
	names = palloc(sizeof(char *) * Max(n, 1));

	wf->ntransitions = n;
	wf->transitions = palloc0(sizeof(WfTransition) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		WfTransition *t = &wf->transitions[i];
		char	   *where;
		JsonbContainer *obj = NamedElement(wf, transitions, i, "transition",
										   "{\"name\": ..., \"from\": ..., \"to\": ...}",
										   transition_keys, &t->name, &where);
		JsonbValue *from;
		JsonbValue *to;
		JsonbValue *req;

		names[i] = t->name;
		t->reopen = OptBool(obj, "reopen", where);

		from = JbGet(obj, "from");
		if (from == NULL || from->type == jbvNull)
			WF_ERROR(errmsg("transition \"%s\" has no \"from\" step", t->name),
					 errhint("Name the step or steps it leaves, e.g. \"from\": [\"triage\", \"review\"]."));
		if (JbIsArray(from))
		{
			JsonbContainer *arr = from->val.binary.data;

			t->nfrom = JsonContainerSize(arr);
			if (t->nfrom == 0)
				WF_ERROR(errmsg("transition \"%s\" has no \"from\" step", t->name),
						 errhint("Name the step or steps it leaves."));
			nfrom += t->nfrom;
			if (nfrom > WF_MAX_FROM && wf->new_definition)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("transitions of the workflow leave from too many steps"),
						 errdetail("The \"from\" lists of transitions 1 to %d name more than %d steps in all.",
								   i + 1, WF_MAX_FROM),
						 errhint("Split the process into several workflows.")));
			t->from = palloc(sizeof(int) * t->nfrom);
			for (int j = 0; j < t->nfrom; j++)
				t->from[j] = TransitionStep(wf, getIthJsonbValueFromContainer(arr, j), t->name, "from");
		}
		else
		{
			t->nfrom = 1;
			t->from = palloc(sizeof(int));
			t->from[0] = TransitionStep(wf, from, t->name, "from");
		}

		to = JbGet(obj, "to");
		if (to == NULL || to->type == jbvNull)
			WF_ERROR(errmsg("transition \"%s\" has no \"to\" step", t->name),
					 errhint("Name the step it leads to."));
		t->to = TransitionStep(wf, to, t->name, "to");

		for (int j = 0; j < t->nfrom; j++)
		{
			WfStep	   *s = &wf->steps[t->from[j]];

			if (s->kind != WF_WORK && !t->reopen)
				WF_ERROR(errmsg("terminal step \"%s\" has outgoing transition \"%s\"", s->name, t->name),
						 errhint("Terminal steps end the workflow; mark a transition that reopens items with \"reopen\": true."));
		}

		req = JbGet(obj, "requires");
		if (req != NULL && req->type != jbvNull)
		{
			JsonbContainer *arr;

			if (!JbIsArray(req))
				WF_ERROR(errmsg("\"requires\" of transition \"%s\" must be an array of field names", t->name),
						 errdetail("It is a %s.", JbTypeName(req)));
			arr = req->val.binary.data;
			t->nrequires = JsonContainerSize(arr);
			t->requires = palloc(sizeof(char *) * Max(t->nrequires, 1));
			for (int j = 0; j < t->nrequires; j++)
			{
				JsonbValue *f = getIthJsonbValueFromContainer(arr, j);

				if (f->type != jbvString || f->val.string.len == 0)
					WF_ERROR(errmsg("\"requires\" of transition \"%s\" must be an array of field names", t->name),
							 errdetail("Element %d is a %s.", j + 1, JbTypeName(f)));
				t->requires[j] = JbString(f);
			}
		}
	}
	wf->transition_index = BuildIndex(n, names, "transition");
}

static void
CompileOnEnter(Workflow *wf, JsonbValue *on_enter)
{
	JbMembers	m;

	if (!JbIsObject(on_enter))
		WF_ERROR(errmsg("\"on_enter\" must be an object keyed by step name"),
				 errdetail("It is a %s.", JbTypeName(on_enter)));
	JbMembersInit(&m, on_enter->val.binary.data);
	while (JbMembersNext(&m))
	{
		char	   *name = JbString(&m.key);
		int			step = WorkflowFindStep(wf, name);
		JsonbContainer *hooks;
		char	   *where;

		if (step < 0)
			WF_ERROR(errmsg("\"on_enter\" names unrecognized step \"%s\"", name),
					 errdetail("The steps are: %s.", StepList(wf)));
		where = psprintf("on_enter of step \"%s\"", wf->steps[step].name);
		if (!JbIsObject(&m.value))
			WF_ERROR(errmsg("%s must be an object", where),
					 errhint("Write it as {\"fetch\": \"source name\"}."));
		hooks = m.value.val.binary.data;
		CheckKeys(hooks, (const char *const[]) {"fetch", NULL}, where);
		if (JbGet(hooks, "fetch") != NULL)
			wf->steps[step].on_enter_fetch = OptName(wf, hooks, "fetch", where, "source");
	}
}

/* Raises if a step cannot be reached from the start step. */
static void
CheckReachable(Workflow *wf)
{
	int			nedges = 0;
	int		   *first = palloc0(sizeof(int) * (wf->nsteps + 1));
	int		   *edges;
	int		   *fill;
	bool	   *seen = palloc0(sizeof(bool) * wf->nsteps);
	int		   *stack = palloc(sizeof(int) * wf->nsteps);
	int			top = 0;

	/* adjacency in compressed rows: edges[first[s] .. first[s+1]) */
	for (int i = 0; i < wf->ntransitions; i++)
		for (int j = 0; j < wf->transitions[i].nfrom; j++)
		{
			first[wf->transitions[i].from[j] + 1]++;
			nedges++;
		}
	for (int s = 0; s < wf->nsteps; s++)
		first[s + 1] += first[s];
	edges = palloc(sizeof(int) * Max(nedges, 1));
	fill = palloc(sizeof(int) * wf->nsteps);
	memcpy(fill, first, sizeof(int) * wf->nsteps);
	for (int i = 0; i < wf->ntransitions; i++)
		for (int j = 0; j < wf->transitions[i].nfrom; j++)
			edges[fill[wf->transitions[i].from[j]]++] = wf->transitions[i].to;

	seen[wf->start] = true;
	stack[top++] = wf->start;
	while (top > 0)
	{
		int			s = stack[--top];

		for (int e = first[s]; e < first[s + 1]; e++)
			if (!seen[edges[e]])
			{
				seen[edges[e]] = true;
				stack[top++] = edges[e];
			}
	}
	for (int s = 0; s < wf->nsteps; s++)
		if (!seen[s])
			WF_ERROR(errmsg("step \"%s\" is unreachable from start step \"%s\"",
							wf->steps[s].name, wf->steps[wf->start].name),
					 errhint("Add a transition into it or remove it."));
}

/*
 * Validates a definition and compiles it in CurrentMemoryContext; raises an
 * error naming the offending step or transition.  new_definition: the
 * definition is about to be stored, so the size and name-length limits
 * apply (a stored version is compiled without them).
 */
Workflow *
WorkflowCompile(Jsonb *definition, bool new_definition)
{
	Workflow   *wf = palloc0(sizeof(Workflow));
	JsonbContainer *root = &definition->root;
	JsonbValue *steps;
	JsonbValue *transitions;
	JsonbValue *on_enter;

	wf->new_definition = new_definition;
	if (!JsonContainerIsObject(root) || JsonContainerIsScalar(root))
		WF_ERROR(errmsg("workflow definition must be a JSON object"),
				 errhint("Write it as {\"steps\": [...], \"transitions\": [...]}."));
	CheckKeys(root, top_keys, "workflow definition");

	steps = JbGet(root, "steps");
	if (steps == NULL || !JbIsArray(steps))
		WF_ERROR(errmsg("workflow definition needs a \"steps\" array"),
				 steps ? errdetail("\"steps\" is a %s.", JbTypeName(steps)) : 0,
				 errhint("Write it as {\"steps\": [...], \"transitions\": [...]}."));
	CompileSteps(wf, steps->val.binary.data);

	transitions = JbGet(root, "transitions");
	if (transitions != NULL && transitions->type != jbvNull && !JbIsArray(transitions))
		WF_ERROR(errmsg("\"transitions\" must be an array"),
				 errdetail("It is a %s.", JbTypeName(transitions)));
	CompileTransitions(wf, transitions && transitions->type != jbvNull ? transitions->val.binary.data : NULL);

	on_enter = JbGet(root, "on_enter");
	if (on_enter != NULL && on_enter->type != jbvNull)
		CompileOnEnter(wf, on_enter);

	CheckReachable(wf);
	return wf;
}

PG_FUNCTION_INFO_V1(workqueue_validate_workflow);

/*
 * SQL: workqueue._validate_workflow(definition jsonb) returns the start
 * step's name, or raises the first problem found.
 */
Datum
workqueue_validate_workflow(PG_FUNCTION_ARGS)
{
	Workflow   *wf;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("workflow definition must not be null")));
	wf = WorkflowCompile(PG_GETARG_JSONB_P(0), true);
	PG_RETURN_TEXT_P(cstring_to_text(wf->steps[wf->start].name));
}
