/*
 * http.c
 *		HTTP on libcurl's multi interface; see http.h.
 *
 * Memory: libcurl and its buffers are malloc'd (curl calls our callbacks,
 * which must not throw), and are freed on every path, including an ERROR
 * or a query cancel that unwinds through HttpPerform (PG_FINALLY).  Results
 * are copied into the caller's memory context.  Interrupts are checked at
 * least every 100 ms, so a cancel or SIGTERM stops transfers promptly.
 *
 * workqueue.allowed_hosts is enforced by two libcurl callbacks on every
 * transfer: the open-socket callback sees each resolved address before a
 * connection is made to it (for the first request and every redirect) and
 * refuses the socket, and the pre-request callback checks again before
 * each request is sent, which covers a kept-alive connection reused after
 * the setting changed.  A refusal is its own, final error (never retried).
 *
 * A source's headers (API tokens) go only to the origins of its own URLs:
 * the pre-request callback also compares the origin (scheme, host, port)
 * of the URL about to be requested -- after a redirect, the Location's --
 * with the source's (HttpOptions.origins) and aborts the transfer before
 * anything is sent to another one.  libcurl itself drops only
 * Authorization and Cookie on a redirect to another host; an X-Api-Key
 * would go along.  A source without headers has nothing to leak and
 * follows redirects anywhere workqueue.allowed_hosts allows.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <curl/curl.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http/hosts.h"
#include "http/http.h"
#include "core/workqueue.h"

/* curl_multi_poll arrived in 7.66.0, CURLU in 7.62.0 */
_Static_assert(LIBCURL_VERSION_NUM >= 0x074200, "workqueue requires libcurl 7.66.0 or later");

#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS 30000
#define RETRY_AFTER_MAX_S 300

typedef enum TransferState
{
	T_WAITING,					/* not started, or waiting for a retry */
	T_RUNNING,
	T_DONE
} TransferState;

typedef struct Transfer
{
	HttpRequest *req;
	TransferState state;
	CURL	   *easy;
	TimestampTz not_before;
	/* filled by callbacks; malloc'd */
	char	   *buf;
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		too_large;
	int			retry_after;	/* seconds, -1 if none */
	char	   *link_next;
	struct curl_slist *own_headers; /* async transfers: freed when done */
	/* workqueue.allowed_hosts: the last refusal, and at which redirect */
	char		refusal[HOST_REFUSAL_LEN];
	long		refused_hop;
	long		opened_hop;		/* redirect count at the last allowed socket */
	/* the origin check: where headers may go, malloc'd; NULL: anywhere */
	char	   *origins;		/* "\norigin\norigin\n" */
	char	   *source;
	char		origin_refusal[1024];
} Transfer;

static bool curl_ready = false;

static struct curl_slist *BuildHeaders(const HttpOptions *opts);

static void
EnsureCurl(void)
{
	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not initialize libcurl")));
		curl_ready = true;
	}
}

static size_t
WriteCallback(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = (Transfer *) arg;
	size_t		n = size * nmemb;

	if (t->len + n > t->limit)
	{
		t->too_large = true;
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t		cap = Max(t->cap * 2, t->len + n + 1);
		char	   *nb;

		cap = Max(cap, 8192);
		nb = realloc(t->buf, cap);
		if (nb == NULL)
			return 0;
		t->buf = nb;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, data, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return n;
}

static bool
HeaderIs(const char *line, size_t len, const char *name)
{
	size_t		n = strlen(name);

	return len > n && pg_strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Finds the <url> whose parameters include rel="next" (RFC 8288). */
static char *
ParseLinkNext(const char *v, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		size_t		lt,
					gt,
					end;

		while (i < len && v[i] != '<')
			i++;
		if (i >= len)
			break;
		lt = i + 1;
		gt = lt;
		while (gt < len && v[gt] != '>')
			gt++;
		if (gt >= len)
			break;
		end = gt + 1;
		while (end < len && v[end] != ',' && v[end] != '<')
			end++;
		/* parameters between gt+1 and end */
		for (size_t p = gt + 1; p + 3 < end; p++)
		{
			if (pg_strncasecmp(v + p, "rel", 3) == 0)
			{
				size_t		q = p + 3;

				while (q < end && (v[q] == ' ' || v[q] == '='))
					q++;
				if (q < end && v[q] == '"')
					q++;
				/* rel may list several relation types separated by spaces */
				while (q < end && v[q] != '"' && v[q] != ';')
				{
					size_t		w = q;

					while (w < end && v[w] != ' ' && v[w] != '"' && v[w] != ';')
						w++;
					if (w - q == 4 && pg_strncasecmp(v + q, "next", 4) == 0)
					{
						char	   *url = malloc(gt - lt + 1);

						if (url)
						{
							memcpy(url, v + lt, gt - lt);
							url[gt - lt] = '\0';
						}
						return url;
					}
					q = w;
					while (q < end && v[q] == ' ')
						q++;
				}
			}
		}
		i = end;
	}
	return NULL;
}

static size_t
HeaderCallback(char *line, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = (Transfer *) arg;
	size_t		len = size * nmemb;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
	{
		/* a new response (e.g. after a redirect): forget the last one's */
		t->retry_after = -1;
		free(t->link_next);
		t->link_next = NULL;
	}
	else if (HeaderIs(line, len, "Retry-After"))
	{
		const char *v = line + strlen("Retry-After:");

		while (*v == ' ')
			v++;
		if (*v >= '0' && *v <= '9')
			t->retry_after = Min(atoi(v), RETRY_AFTER_MAX_S);
	}
	else if (HeaderIs(line, len, "Link"))
	{
		char	   *next = ParseLinkNext(line + 5, len - 5);

		if (next)
		{
			free(t->link_next);
			t->link_next = next;
		}
	}
	return len;
}

/*
 * The origin of url, "scheme://host:port" in lower case with the scheme's
 * default port filled in, into buf; false if it cannot be told.  No palloc,
 * no ereport (libcurl callbacks call it).
 */
static bool
OriginOf(const char *url, char *buf, size_t len)
{
	CURLU	   *u;
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	bool		found = false;

	buf[0] = '\0';
	if (url == NULL || (u = curl_url()) == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
	{
		int			n = snprintf(buf, len, "%s://%s:%s", scheme, host, port);

		found = n > 0 && (size_t) n < len;
		for (char *p = buf; *p; p++)
			*p = pg_ascii_tolower((unsigned char) *p);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	if (!found)
		buf[0] = '\0';
	return found;
}

/* Is origin (of OriginOf) one of list ("\no1\no2\n")? */
static bool
OriginListed(const char *list, const char *origin)
{
	size_t		n = strlen(origin);

	for (const char *p = list; (p = strchr(p, '\n')) != NULL; p++)
		if (strncmp(p + 1, origin, n) == 0 && p[1 + n] == '\n')
			return true;
	return false;
}

/*
 * The origins a transfer's headers may go to, as OriginListed reads them,
 * malloc'd; NULL if the request carries no source headers (or no origins
 * were given): no restriction.
 */
static char *
OriginsFor(const HttpOptions *opts)
{
	size_t		len = 2;
	char	   *list;
	ListCell   *lc;

	if (opts->headers == NIL || opts->origins == NIL)
		return NULL;
	foreach(lc, opts->origins)
		len += strlen((char *) lfirst(lc)) + 1;
	list = malloc(len);
	if (list == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	strcpy(list, "\n");
	foreach(lc, opts->origins)
	{
		strcat(list, (char *) lfirst(lc));
		strcat(list, "\n");
	}
	return list;
}

/* A malloc'd copy of s (or of ""), for a transfer. */
static char *
MallocStrdup(const char *s)
{
	char	   *copy = strdup(s ? s : "");

	if (copy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return copy;
}

/* The origin of url (see OriginOf), palloc'd; NULL if it has none. */
char *
HttpOrigin(const char *url)
{
	char		buf[1024];

	return OriginOf(url, buf, sizeof(buf)) ? pstrdup(buf) : NULL;
}

/* Is url's origin one of origins (a List of HttpOrigin strings)? */
bool
HttpOriginAllowed(const char *url, List *origins)
{
	char		buf[1024];
	ListCell   *lc;

	if (!OriginOf(url, buf, sizeof(buf)))
		return false;
	foreach(lc, origins)
		if (strcmp((char *) lfirst(lc), buf) == 0)
			return true;
	return false;
}

/* origins as "a, b" (palloc'd), for messages. */
char *
HttpOriginList(List *origins)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, origins)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", (char *) lfirst(lc));
	return buf.data;
}

/*
 * The host of the URL being requested now (after any redirects), into buf;
 * empty if it cannot be told.  Called from libcurl callbacks: no palloc,
 * no ereport.
 */
static void
CurrentHost(Transfer *t, char *buf, size_t len)
{
	char	   *url = NULL;
	char	   *host = NULL;
	CURLU	   *u;

	buf[0] = '\0';
	if (curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || url == NULL)
		return;
	if ((u = curl_url()) == NULL)
		return;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		strlcpy(buf, host, len);
		curl_free(host);
	}
	curl_url_cleanup(u);
}

/* How many redirects the transfer has followed so far. */
static long
CurrentHop(Transfer *t)
{
	long		n = 0;

	curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_COUNT, &n);
	return n;
}

/*
 * libcurl's socket(2): refuses (CURL_SOCKET_BAD) an address that
 * workqueue.allowed_hosts does not allow for the URL's host.  libcurl then
 * tries the host's other addresses, if any.
 */
static curl_socket_t
OpenSocketCallback(void *arg, curlsocktype purpose, struct curl_sockaddr *address)
{
	Transfer   *t = (Transfer *) arg;

	if (purpose == CURLSOCKTYPE_IPCXN && HostPolicyActive())
	{
		char		host[HOST_REFUSAL_LEN];

		CurrentHost(t, host, sizeof(host));
		if (!HostAllowed(host, &address->addr))
		{
			HostRefusal(t->refusal, sizeof(t->refusal), host, &address->addr);
			t->refused_hop = CurrentHop(t);
			return CURL_SOCKET_BAD;
		}
		t->opened_hop = CurrentHop(t);
	}
	return socket(address->family, address->socktype, address->protocol);
}

#if LIBCURL_VERSION_NUM >= 0x075000
/*
 * Called before every request, on a new or a reused connection: aborts the
 * transfer if it carries a source's headers to another origin than the
 * source's, or if workqueue.allowed_hosts (perhaps changed since the
 * connection was opened) does not allow it.
 */
static int
PrereqCallback(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	Transfer   *t = (Transfer *) arg;
	char		host[HOST_REFUSAL_LEN];
	struct sockaddr_storage ss;
	struct sockaddr *sa = (struct sockaddr *) &ss;

	if (t->origins != NULL)
	{
		char	   *url = NULL;
		char		origin[1024];

		if (curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || url == NULL ||
			!OriginOf(url, origin, sizeof(origin)) || !OriginListed(t->origins, origin))
		{
			snprintf(t->origin_refusal, sizeof(t->origin_refusal),
					 "%s to another origin refused: %s is not an origin of source \"%s\"",
					 CurrentHop(t) > 0 ? "redirect" : "request", url ? url : "(unknown URL)", t->source);
			return CURL_PREREQFUNC_ABORT;
		}
	}
	if (!HostPolicyActive())
		return CURL_PREREQFUNC_OK;
	CurrentHost(t, host, sizeof(host));
	memset(&ss, 0, sizeof(ss));
	if (primary_ip && inet_pton(AF_INET, primary_ip, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (primary_ip && inet_pton(AF_INET6, primary_ip, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		sa = NULL;
	if (HostAllowed(host, sa))
		return CURL_PREREQFUNC_OK;
	HostRefusal(t->refusal, sizeof(t->refusal), host, sa);
	t->refused_hop = CurrentHop(t);
	return CURL_PREREQFUNC_ABORT;
}
#endif

static void
StartTransfer(CURLM *multi, Transfer *t, const HttpOptions *opts, struct curl_slist *headers)
{
	CURL	   *e = curl_easy_init();

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	t->easy = e;
	t->len = 0;
	t->too_large = false;
	t->retry_after = -1;
	free(t->link_next);
	t->link_next = NULL;
	t->refusal[0] = '\0';
	t->refused_hop = -1;
	t->opened_hop = -1;
	t->origin_refusal[0] = '\0';
	t->req->attempts++;

	curl_easy_setopt(e, CURLOPT_URL, t->req->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, WriteCallback);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, HeaderCallback);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075000
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
#else
	/* no pre-request callback to check a redirect's origin: follow none with headers */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, t->origins == NULL ? 1L : 0L);
#endif
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) opts->max_response_bytes);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "workqueue/" WORKQUEUE_VERSION);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, OpenSocketCallback);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
#if LIBCURL_VERSION_NUM >= 0x075000
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, PrereqCallback);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	if (t->req->body)
	{
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->req->body);
	}
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start an HTTP transfer")));
	t->state = T_RUNNING;
}

/* Exponential backoff with jitter, or the server's Retry-After. */
static long
RetryDelayMs(const Transfer *t)
{
	long		ms;

	if (t->retry_after >= 0)
		return t->retry_after * 1000L;
	ms = BACKOFF_BASE_MS << Min(t->req->attempts - 1, 10);
	ms = Min(ms, BACKOFF_MAX_MS);
	/* jitter: uniformly between half and the whole delay */
	return ms / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (ms / 2));
}

/*
 * Classifies a finished attempt of a transfer: success, or which error;
 * returns true if it should be retried.  Sets req->status and req->error
 * (in cxt).
 */
static bool
ClassifyAttempt(Transfer *t, CURLcode rc, MemoryContext cxt)
{
	HttpRequest *req = t->req;
	long		status = 0;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	req->status = status;
	req->error = NULL;
	req->retryable = false;
	req->refused = false;
	req->cross_origin = false;

	/* the source's headers would have gone to another origin */
	if (rc == CURLE_ABORTED_BY_CALLBACK && t->origin_refusal[0] != '\0')
	{
		req->error = MemoryContextStrdup(cxt, t->origin_refusal);
		req->refused = true;
		req->cross_origin = true;
	}

	/*
	 * Refused by workqueue.allowed_hosts: the pre-request callback aborted,
	 * or every address tried since the last redirect was refused.
	 */
	else if (rc != CURLE_OK && t->refusal[0] != '\0' &&
		(rc == CURLE_ABORTED_BY_CALLBACK || t->refused_hop > t->opened_hop))
	{
		req->error = MemoryContextStrdup(cxt, t->refusal);
		req->refused = true;
	}
	else if (rc == CURLE_OK)
	{
		if (status >= 200 && status < 300)
			return false;
		req->error = MemoryContextStrdup(cxt, psprintf("HTTP %ld", status));
		req->retryable = status == 429 || status == 408 || status >= 500;
	}
	else if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED)
		req->error = MemoryContextStrdup(cxt, "response too large");
	else if (rc == CURLE_OPERATION_TIMEDOUT)
	{
		req->error = MemoryContextStrdup(cxt, "timeout");
		req->retryable = true;
	}
	else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
			 rc == CURLE_COULDNT_RESOLVE_PROXY)
	{
		req->error = MemoryContextStrdup(cxt, psprintf("could not connect: %s", curl_easy_strerror(rc)));
		req->retryable = true;
	}
	else if (rc == CURLE_TOO_MANY_REDIRECTS || rc == CURLE_UNSUPPORTED_PROTOCOL ||
			 rc == CURLE_URL_MALFORMAT)
		req->error = MemoryContextStrdup(cxt, curl_easy_strerror(rc));
	else
	{
		req->error = MemoryContextStrdup(cxt, curl_easy_strerror(rc));
		req->retryable = true;	/* connection reset, empty reply, ... */
	}
	return req->retryable;
}

static void
Finish(Transfer *t, MemoryContext cxt)
{
	HttpRequest *req = t->req;

	req->retry_delay_ms = req->retryable ? RetryDelayMs(t) : 0;
	if (req->error == NULL)
	{
		req->response = MemoryContextAlloc(cxt, t->len + 1);
		if (t->len)
			memcpy(req->response, t->buf, t->len);
		req->response[t->len] = '\0';
		req->response_len = t->len;
	}
	if (t->link_next)
		req->next_link = MemoryContextStrdup(cxt, t->link_next);
	t->state = T_DONE;
}

/*
 * Performs all requests; returns when each has succeeded or failed for
 * good.  Never more than opts->max_concurrency transfers are in flight.
 */
void
HttpPerform(HttpRequest *reqs, int nreqs, const HttpOptions *opts)
{
	MemoryContext cxt = CurrentMemoryContext;
	Transfer   *ts;
	CURLM	   *volatile multi = NULL;
	struct curl_slist *volatile headers = NULL;

	if (nreqs == 0)
		return;
	EnsureCurl();
	ts = palloc0(sizeof(Transfer) * nreqs);
	for (int i = 0; i < nreqs; i++)
	{
		ts[i].req = &reqs[i];
		ts[i].limit = opts->max_response_bytes;
		ts[i].retry_after = -1;
		reqs[i].attempts = 0;
		reqs[i].cross_origin = false;
		reqs[i].error = NULL;
		reqs[i].response = NULL;
		reqs[i].next_link = NULL;
		reqs[i].status = 0;
		reqs[i].refused = false;
	}

	PG_TRY();
	{
		int			done = 0;
		int			inflight = 0;

		multi = curl_multi_init();
		if (multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl multi handle")));
		headers = BuildHeaders(opts);
		for (int i = 0; i < nreqs; i++)
		{
			ts[i].origins = OriginsFor(opts);
			if (ts[i].origins)
				ts[i].source = MallocStrdup(opts->source);
		}

		while (done < nreqs)
		{
			TimestampTz now = GetCurrentTimestamp();
			long		wait_ms = 100;
			int			running;
			int			left;
			CURLMsg    *msg;

			CHECK_FOR_INTERRUPTS();

			for (int i = 0; i < nreqs && inflight < opts->max_concurrency; i++)
			{
				if (ts[i].state == T_WAITING && ts[i].not_before <= now)
				{
					StartTransfer(multi, &ts[i], opts, headers);
					inflight++;
				}
			}

			curl_multi_perform(multi, &running);
			while ((msg = curl_multi_info_read(multi, &left)) != NULL)
			{
				Transfer   *t;

				if (msg->msg != CURLMSG_DONE)
					continue;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
				curl_multi_remove_handle(multi, t->easy);
				inflight--;
				if (ClassifyAttempt(t, msg->data.result, cxt) && t->req->attempts <= opts->retries)
				{
					t->state = T_WAITING;
					t->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RetryDelayMs(t));
				}
				else
				{
					Finish(t, cxt);
					done++;
				}
				curl_easy_cleanup(t->easy);
				t->easy = NULL;
			}
			if (done == nreqs)
				break;

			/* sleep until a socket is ready, a retry is due, or 100 ms */
			if (inflight == 0)
			{
				TimestampTz next = 0;

				for (int i = 0; i < nreqs; i++)
					if (ts[i].state == T_WAITING && (next == 0 || ts[i].not_before < next))
						next = ts[i].not_before;
				if (next > now)
					wait_ms = Min(wait_ms, (long) ((next - now) / 1000) + 1);
				else
					wait_ms = 0;
			}
			if (wait_ms > 0)
				curl_multi_poll(multi, NULL, 0, (int) wait_ms, NULL);
		}
	}
	PG_FINALLY();
	{
		for (int i = 0; i < nreqs; i++)
		{
			if (ts[i].easy)
			{
				if (multi)
					curl_multi_remove_handle(multi, ts[i].easy);
				curl_easy_cleanup(ts[i].easy);
			}
			free(ts[i].buf);
			free(ts[i].link_next);
			free(ts[i].origins);
			free(ts[i].source);
		}
		if (multi)
			curl_multi_cleanup(multi);
		curl_slist_free_all(headers);
	}
	PG_END_TRY();
	pfree(ts);
}

static struct curl_slist *
BuildHeaders(const HttpOptions *opts)
{
	struct curl_slist *headers = NULL;
	ListCell   *lc;

	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, "Content-Type: application/json");
	foreach(lc, opts->headers)
		headers = curl_slist_append(headers, (char *) lfirst(lc));
	return headers;
}

struct HttpAsync
{
	CURLM	   *multi;
	MemoryContext cxt;
	int			inflight;
	HttpRequest **done;			/* finished, not yet collected */
	int			ndone;
	int			cap;
};

HttpAsync *
HttpAsyncCreate(MemoryContext cxt, long max_per_host)
{
	HttpAsync  *a = MemoryContextAllocZero(cxt, sizeof(HttpAsync));

	EnsureCurl();
	a->cxt = cxt;
	a->multi = curl_multi_init();
	if (a->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	if (max_per_host > 0)
		curl_multi_setopt(a->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_per_host);
	a->cap = 64;
	a->done = MemoryContextAlloc(cxt, sizeof(HttpRequest *) * a->cap);
	return a;
}

/* Starts one attempt of req (which must live in the HttpAsync's context). */
void
HttpAsyncStart(HttpAsync *a, HttpRequest *req, const HttpOptions *opts)
{
	Transfer   *t = calloc(1, sizeof(Transfer));

	if (t == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	t->req = req;
	t->limit = opts->max_response_bytes;
	t->retry_after = -1;
	t->own_headers = BuildHeaders(opts);
	req->error = NULL;
	req->response = NULL;
	req->next_link = NULL;
	req->status = 0;
	req->refused = false;
	req->cross_origin = false;
	PG_TRY();
	{
		t->origins = OriginsFor(opts);
		if (t->origins)
			t->source = MallocStrdup(opts->source);
		StartTransfer(a->multi, t, opts, t->own_headers);
	}
	PG_CATCH();
	{
		if (t->easy)
			curl_easy_cleanup(t->easy);
		curl_slist_free_all(t->own_headers);
		free(t->origins);
		free(t->source);
		free(t);
		PG_RE_THROW();
	}
	PG_END_TRY();
	a->inflight++;
}

/* Lets transfers progress for up to timeout_ms; collects finished ones. */
void
HttpAsyncWait(HttpAsync *a, long timeout_ms)
{
	int			running;
	int			left;
	CURLMsg    *msg;

	/* drive new transfers first: a freshly added handle has no socket yet */
	curl_multi_perform(a->multi, &running);
	if (running > 0 && running == a->inflight && timeout_ms > 0)
	{
		curl_multi_poll(a->multi, NULL, 0, (int) timeout_ms, NULL);
		curl_multi_perform(a->multi, &running);
	}
	while ((msg = curl_multi_info_read(a->multi, &left)) != NULL)
	{
		Transfer   *t;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		curl_multi_remove_handle(a->multi, t->easy);
		a->inflight--;
		(void) ClassifyAttempt(t, msg->data.result, a->cxt);
		Finish(t, a->cxt);
		curl_easy_cleanup(t->easy);
		free(t->buf);
		free(t->link_next);
		free(t->origins);
		free(t->source);
		curl_slist_free_all(t->own_headers);
		if (a->ndone == a->cap)
		{
			a->cap *= 2;
			a->done = repalloc(a->done, sizeof(HttpRequest *) * a->cap);
		}
		a->done[a->ndone++] = t->req;
		free(t);
	}
}

/* The next finished request, or NULL. */
HttpRequest *
HttpAsyncNextDone(HttpAsync *a)
{
	if (a->ndone == 0)
		return NULL;
	return a->done[--a->ndone];
}

int
HttpAsyncInFlight(HttpAsync *a)
{
	return a->inflight;
}

/*
 * Percent-encodes everything but RFC 3986's unreserved characters -- and
 * the dots of a string made of dots only: an external id "." or ".."
 * substituted into a URL's path would be a dot segment, which libcurl
 * (and servers) resolve, so that /tickets/.. asks for / instead of one
 * ticket; "%2E%2E" stays a segment of its own.  With "/" (and "\\", "?",
 * "#", "%") encoded too, an id is always one path segment.
 */
char *
HttpEncode(const char *s)
{
	StringInfoData buf;
	bool		dots = s[0] != '\0' && strspn(s, ".") == strlen(s);

	initStringInfo(&buf);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			*p == '-' || *p == '_' || (*p == '.' && !dots) || *p == '~')
			appendStringInfoChar(&buf, (char) *p);
		else
			appendStringInfo(&buf, "%%%02X", *p);
	}
	return buf.data;
}

/* Resolves ref (absolute or relative) against base; palloc'd. */
char *
HttpResolveUrl(const char *base, const char *ref)
{
	CURLU	   *u = curl_url();
	char	   *out = NULL;
	char	   *result;

	if (u == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
		curl_url_set(u, CURLUPART_URL, ref, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
	{
		curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URL \"%s\"", ref),
				 errdetail("It was found in the response from \"%s\".", base)));
	}
	result = pstrdup(out);
	curl_free(out);
	curl_url_cleanup(u);
	return result;
}

/* url with query parameter name set to value (replacing any earlier one). */
char *
HttpUrlWithParam(const char *url, const char *name, const char *value)
{
	const char *q = strchr(url, '?');
	const char *frag = strchr(url, '#');
	StringInfoData buf;
	size_t		namelen = strlen(name);
	bool		first = true;

	initStringInfo(&buf);
	if (q == NULL || (frag && frag < q))
		appendBinaryStringInfo(&buf, url, frag ? (int) (frag - url) : (int) strlen(url));
	else
	{
		const char *p = q + 1;
		const char *end = frag ? frag : url + strlen(url);

		appendBinaryStringInfo(&buf, url, q - url);
		while (p < end)
		{
			const char *amp = memchr(p, '&', end - p);
			const char *stop = amp ? amp : end;

			if (!((size_t) (stop - p) >= namelen && strncmp(p, name, namelen) == 0 &&
				  (p + namelen == stop || p[namelen] == '=')) && stop > p)
			{
				appendStringInfoChar(&buf, first ? '?' : '&');
				appendBinaryStringInfo(&buf, p, stop - p);
				first = false;
			}
			p = stop + 1;
		}
	}
	appendStringInfo(&buf, "%c%s=%s", first ? '?' : '&', HttpEncode(name), HttpEncode(value));
	return buf.data;
}
