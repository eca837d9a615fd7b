/*
 * workqueue.h
 *		Declarations shared by the workqueue C modules.
 */
#ifndef WORKQUEUE_H
#define WORKQUEUE_H

#include "compat.h"

/* guc.c */
extern int	workqueue_page_size;
extern char *workqueue_database_name;
extern void WorkqueueDefineGucs(void);

/* workqueue.c */
extern char *WorkqueueCallerName(void);

#endif							/* WORKQUEUE_H */
