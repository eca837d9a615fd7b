/*
 * workqueue.h
 *		Declarations shared by the workqueue C modules.
 */
#ifndef WORKQUEUE_H
#define WORKQUEUE_H

#include "core/compat.h"
#include "fmgr.h"

/* guc.c */
extern int	workqueue_page_size;
extern char *workqueue_database_name;
extern char *workqueue_databases;
extern int	workqueue_http_max_concurrency;
extern int	workqueue_http_max_response_bytes;
extern int	workqueue_http_timeout_ms;
extern int	workqueue_http_max_per_host;
extern char *workqueue_allowed_hosts;
extern int	workqueue_purge_batch_size;
extern int	workqueue_purge_interval_s;
extern int	workqueue_test_commit_delay_ms;
extern void WorkqueueDefineGucs(void);

/* workqueue.c */
extern char *WorkqueueCallerName(void);

/* limits.c: see there for why these limits */
#define WQ_NAME_MAX_BYTES			255
#define WQ_EXTERNAL_ID_MAX_BYTES	2048
extern void WorkqueueCheckName(const char *what, const char *name, Size len);
extern void WorkqueueCheckExternalId(const char *id, Size len);
extern char *WorkqueueClip(const char *s, Size len);

/* privileges.c */
extern bool WorkqueueIsAdmin(const char *role);
extern bool WorkqueueActorIsAdmin(const char *actor);
extern void WorkqueueCheckActor(const char *actor, const char *what);
extern bool WorkqueueActorAcceptable(const char *actor);

/* scale.c: the layout of this install (src/scale/, doc/scale-out.md) */
extern bool WqDistributed(void);
extern void WqForgetMode(void);
extern void WqRememberQueue(int64 id, const char *queue);
extern const char *WqKnownQueue(int64 id);
extern int	WqNestedBegin(void);
extern void WqNestedEnd(int nest);

/* scopes.c: the scope check (an item out of the caller's scopes is not there) */
typedef struct WqScopeCheck
{
	Oid			caller;
	bool		admin;			/* sees everything */
	bool		loaded;			/* grants read */
	struct ArrayType *scopes;	/* granted to the caller; NULL: none */
	MemoryContext cxt;
	FmgrInfo	overlap;		/* arrayoverlap (it caches in fn_extra) */
} WqScopeCheck;
extern void WqScopeCheckInit(WqScopeCheck *check, Oid caller, bool admin, MemoryContext cxt);
extern bool WqScopeVisible(WqScopeCheck *check, struct ArrayType *scope);
extern struct ArrayType *WqScopeGrants(Oid caller);

#endif							/* WORKQUEUE_H */
