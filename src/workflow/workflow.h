/*
 * workflow.h
 *		Compiled workflow definitions.
 *
 * A workflow version's JSON definition is validated and compiled once into
 * a Workflow, so transitions never parse JSON.  Compilation (workflow.c) is
 * pure: no SPI, no catalog access.
 */
#ifndef WORKQUEUE_WORKFLOW_H
#define WORKQUEUE_WORKFLOW_H

#include "postgres.h"
#include "utils/jsonb.h"

typedef enum WfKind
{
	WF_WORK,					/* a working step, someone acts on it */
	WF_RESOLVED,				/* terminal, status "resolved" */
	WF_REJECTED					/* terminal, status "rejected" */
} WfKind;

typedef struct WfStep
{
	char	   *name;
	char	   *role;			/* NULL: anyone may act */
	bool		is_start;
	WfKind		kind;
	char	   *on_enter_fetch; /* source to fetch from on entry, or NULL */
} WfStep;

typedef struct WfTransition
{
	char	   *name;
	int			nfrom;
	int		   *from;			/* step indexes */
	int			to;
	int			nrequires;
	char	  **requires;
	bool		reopen;			/* may leave a terminal step */
} WfTransition;

/* a name -> index entry; arrays of these are kept sorted by name */
typedef struct WfName
{
	const char *name;
	int			index;
} WfName;

typedef struct Workflow
{
	int			nsteps;
	WfStep	   *steps;
	int			ntransitions;
	WfTransition *transitions;
	int			start;
	WfName	   *step_index;		/* nsteps entries, sorted */
	WfName	   *transition_index;	/* ntransitions entries, sorted */
	bool		new_definition; /* compiled for define_workflow(): limits apply */
} Workflow;

extern Workflow *WorkflowCompile(Jsonb *definition, bool new_definition);
extern int	WorkflowFindStep(const Workflow *wf, const char *name);
extern int	WorkflowFindTransition(const Workflow *wf, const char *name);
extern bool WorkflowTransitionFrom(const WfTransition *t, int step);
extern char *WorkflowAllowedList(const Workflow *wf, int step);

/* workflow_cache.c: needs an SPI connection */
extern const Workflow *WorkflowGet(const char *name, int version);

#endif							/* WORKQUEUE_WORKFLOW_H */
