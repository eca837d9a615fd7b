/*
 * announce.h
 *		Announcements: NOTIFY workqueue for committed events, sent by a
 *		worker of their own (announce.c).
 */
#ifndef WORKQUEUE_ANNOUNCE_H
#define WORKQUEUE_ANNOUNCE_H

extern void AnnounceWorkerLoop(void) pg_attribute_noreturn();

#endif							/* WORKQUEUE_ANNOUNCE_H */
