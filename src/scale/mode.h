/*
 * mode.h
 *		The layout of this install, cached per backend (src/scale/mode.c).
 */
#ifndef WORKQUEUE_MODE_H
#define WORKQUEUE_MODE_H

extern bool WorkqueueDistributed(void);

#endif							/* WORKQUEUE_MODE_H */
