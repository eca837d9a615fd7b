/*
 * http.h
 *		A small HTTP client on libcurl's multi interface.
 *
 * HttpPerform runs a set of requests concurrently (at most max_concurrency
 * in flight), retrying transient failures with exponential backoff and
 * jitter (honouring Retry-After on 429 and 503), and records for each
 * request either its response or a short error: "timeout", "could not
 * connect: ...", "HTTP 503", "response too large", ...
 */
#ifndef WORKQUEUE_HTTP_H
#define WORKQUEUE_HTTP_H

#include "postgres.h"
#include "nodes/pg_list.h"

typedef struct HttpRequest
{
	/* input */
	char	   *url;
	char	   *body;			/* POST body (JSON), or NULL for GET */
	/* outcome, allocated in the caller's memory context */
	long		status;			/* last HTTP status seen, 0 if none */
	char	   *response;		/* NUL-terminated body on success, else NULL */
	size_t		response_len;
	char	   *next_link;		/* target of a Link: <...>; rel="next" header */
	char	   *error;			/* NULL on success */
	int			attempts;
	bool		retryable;		/* the final error was of a transient kind */
} HttpRequest;

typedef struct HttpOptions
{
	long		timeout_ms;		/* per attempt, from the start of the transfer */
	long		connect_timeout_ms;
	int			max_concurrency;
	int			retries;		/* extra attempts after the first */
	long		max_response_bytes;
	List	   *headers;		/* of char *, "Name: value" */
} HttpOptions;

extern void HttpPerform(HttpRequest *reqs, int nreqs, const HttpOptions *opts);
extern char *HttpResolveUrl(const char *base, const char *ref);
extern char *HttpUrlWithParam(const char *url, const char *name, const char *value);
extern char *HttpEncode(const char *s);

#endif							/* WORKQUEUE_HTTP_H */
