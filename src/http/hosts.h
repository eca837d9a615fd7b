/*
 * hosts.h
 *		The workqueue.allowed_hosts policy: which hosts HTTP may reach.
 *
 * The setting is parsed once, by its GUC check hook, into a HostPolicy
 * (malloc'd: the GUC machinery owns and frees it); the assign hook makes
 * it current.  HostAllowed and HostRefusal neither allocate nor throw, so
 * libcurl's callbacks can call them.
 */
#ifndef WORKQUEUE_HOSTS_H
#define WORKQUEUE_HOSTS_H

#include "postgres.h"

#include <sys/socket.h>

#include "utils/guc.h"

/* room for 'host "<253 chars>" (address <IPv6>) is not in ...' */
#define HOST_REFUSAL_LEN 400

extern bool AllowedHostsCheck(char **newval, void **extra, GucSource source);
extern void AllowedHostsAssign(const char *newval, void *extra);
extern bool HostPolicyActive(void);
extern bool HostAllowed(const char *host, const struct sockaddr *addr);
extern void HostRefusal(char *buf, size_t len, const char *host, const struct sockaddr *addr);

#endif							/* WORKQUEUE_HOSTS_H */
