/*
 * http.h
 *		A small HTTP client on libcurl's multi interface.
 *
 * HttpPerform runs a set of requests concurrently (at most max_concurrency
 * in flight), retrying transient failures with exponential backoff and
 * jitter (honouring Retry-After on 429 and 503), and records for each
 * request either its response or a short error: "timeout", "could not
 * connect: ...", "HTTP 503", "response too large", ..., or 'host "x"
 * (address a) is not in workqueue.allowed_hosts' when the destination of
 * the request or of a redirect is not allowed (see hosts.h).
 *
 * A request that carries a source's headers goes only to the origins
 * (scheme, host, port) of the source's own URLs (HttpOptions.origins): a
 * redirect elsewhere is refused before it is sent, with the error
 * 'redirect to another origin refused: URL is not an origin of source "s"'
 * (never retried).
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
	bool		refused;		/* by workqueue.allowed_hosts or the origin check
								 * (never retried) */
	bool		cross_origin;	/* refused: it would have carried the source's
								 * headers to another origin */
	long		retry_delay_ms; /* backoff (or Retry-After) before another try */
	void	   *tag;			/* the caller's, untouched */
} HttpRequest;

typedef struct HttpOptions
{
	long		timeout_ms;		/* per attempt, from the start of the transfer */
	long		connect_timeout_ms;
	int			max_concurrency;
	int			retries;		/* extra attempts after the first */
	long		max_response_bytes;
	List	   *headers;		/* of char *, "Name: value" */
	List	   *origins;		/* of char *: the only origins a request with
								 * headers may go to (HttpOrigin); NIL: any */
	const char *source;			/* for the origin check's message */
} HttpOptions;

extern void HttpPerform(HttpRequest *reqs, int nreqs, const HttpOptions *opts);

/*
 * Asynchronous use, for a loop that keeps transfers in flight across
 * iterations (the fetch worker): start requests, wait a little, collect
 * the finished ones.  Each request is tried once (retries are the
 * caller's); requests and their results live in the memory context given
 * to HttpAsyncCreate.  An HttpAsync lives as long as its process.
 */
typedef struct HttpAsync HttpAsync;

extern HttpAsync *HttpAsyncCreate(MemoryContext cxt, long max_per_host);
extern void HttpAsyncStart(HttpAsync *a, HttpRequest *req, const HttpOptions *opts);
extern void HttpAsyncWait(HttpAsync *a, long timeout_ms);
extern HttpRequest *HttpAsyncNextDone(HttpAsync *a);
extern int	HttpAsyncInFlight(HttpAsync *a);
extern char *HttpResolveUrl(const char *base, const char *ref);
extern char *HttpUrlWithParam(const char *url, const char *name, const char *value);
extern char *HttpEncode(const char *s);
extern char *HttpOrigin(const char *url);
extern bool HttpOriginAllowed(const char *url, List *origins);
extern char *HttpOriginList(List *origins);

#endif							/* WORKQUEUE_HTTP_H */
