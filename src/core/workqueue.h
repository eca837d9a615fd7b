/*
 * workqueue.h
 *		Declarations shared by the workqueue C modules.
 */
#ifndef WORKQUEUE_H
#define WORKQUEUE_H

#include "core/compat.h"

/* guc.c */
extern int	workqueue_page_size;
extern char *workqueue_database_name;
extern char *workqueue_databases;
extern int	workqueue_http_max_concurrency;
extern int	workqueue_http_max_response_bytes;
extern int	workqueue_http_timeout_ms;
extern int	workqueue_http_max_per_host;
extern char *workqueue_allowed_hosts;
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

#endif							/* WORKQUEUE_H */
