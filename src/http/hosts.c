/*
 * hosts.c
 *		The workqueue.allowed_hosts policy; see hosts.h.
 *
 * The setting is a comma-separated list.  An entry that is an IP address,
 * with or without a /prefix (10.0.0.0/8, 127.0.0.1, ::1/128), matches the
 * address a connection is actually made to; any other entry is a host
 * name that matches the host of the URL being requested (exactly, in any
 * case).  Empty means no restriction.  The parsed list is the GUC's
 * "extra": the check hook builds it, the assign hook makes it current, and
 * the GUC machinery frees the one it replaces -- so readers always use
 * the current pointer and never keep a copy of it.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "http/hosts.h"

#define MAX_HOST_NAME 253

typedef struct HostRule
{
	bool		is_addr;		/* an address range, else a host name */
	int			family;			/* AF_INET or AF_INET6 */
	int			bits;			/* prefix length */
	unsigned char addr[16];		/* network order, host bits zero */
	char		name[MAX_HOST_NAME + 1];	/* lower case, no trailing dot */
} HostRule;

typedef struct HostPolicy
{
	int			nrules;
	HostRule	rules[FLEXIBLE_ARRAY_MEMBER];
} HostPolicy;

static const HostPolicy *policy = NULL;

static int
AddrLen(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* Parses an IPv4 or IPv6 address; returns its family, or 0. */
static int
ParseAddr(const char *s, unsigned char *addr)
{
	if (inet_pton(AF_INET, s, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, addr) == 1)
		return AF_INET6;
	return 0;
}

/* Does addr (of family) lie in the rule's range? */
static bool
RuleContains(const HostRule *r, int family, const unsigned char *addr)
{
	int			full = r->bits / 8;
	int			rest = r->bits % 8;

	if (family != r->family)
		return false;
	if (memcmp(addr, r->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((addr[full] ^ r->addr[full]) & (0xFF << (8 - rest)) & 0xFF) == 0;
}

static bool
ParseCidr(const char *entry, HostRule *r)
{
	const char *slash = strchr(entry, '/');
	char		addrpart[64];
	const char *p;
	int			max;

	if ((size_t) (slash - entry) >= sizeof(addrpart))
	{
		GUC_check_errdetail("\"%s\" is not a valid CIDR range: the address is too long.", entry);
		return false;
	}
	memcpy(addrpart, entry, slash - entry);
	addrpart[slash - entry] = '\0';
	r->family = ParseAddr(addrpart, r->addr);
	if (r->family == 0)
	{
		GUC_check_errdetail("\"%s\" is not a valid CIDR range: \"%s\" is not an IPv4 or IPv6 address.",
							entry, addrpart);
		return false;
	}
	max = r->family == AF_INET ? 32 : 128;
	for (p = slash + 1; *p >= '0' && *p <= '9'; p++)
		;
	if (p == slash + 1 || *p != '\0' || p - slash > 4 || atoi(slash + 1) > max)
	{
		GUC_check_errdetail("\"%s\" is not a valid CIDR range: the prefix length of an %s address is 0 to %d.",
							entry, r->family == AF_INET ? "IPv4" : "IPv6", max);
		return false;
	}
	r->bits = atoi(slash + 1);
	r->is_addr = true;
	{
		unsigned char net[16];
		char		text[INET6_ADDRSTRLEN];

		memset(net, 0, sizeof(net));
		memcpy(net, r->addr, r->bits / 8);
		if (r->bits % 8)
			net[r->bits / 8] = r->addr[r->bits / 8] & (0xFF << (8 - r->bits % 8));
		if (memcmp(net, r->addr, AddrLen(r->family)) != 0)
		{
			inet_ntop(r->family, net, text, sizeof(text));
			GUC_check_errdetail("\"%s\" is not a valid CIDR range: it has bits set to the right of the mask.",
								entry);
			GUC_check_errhint("Write \"%s/%d\".", text, r->bits);
			return false;
		}
	}
	return true;
}

static bool
ParseName(const char *entry, HostRule *r)
{
	size_t		len = strlen(entry);
	bool		only_digits = true;

	if (len > 0 && entry[len - 1] == '.')
		len--;					/* a fully qualified name's root */
	if (len == 0 || len > MAX_HOST_NAME || entry[0] == '.')
	{
		GUC_check_errdetail("\"%s\" is not a host name or an IP address.", entry);
		return false;
	}
	for (size_t i = 0; i < len; i++)
	{
		char		c = entry[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '-' || c == '_' || c == '.') ||
			(c == '.' && entry[i + 1] == '.'))
		{
			GUC_check_errdetail("\"%s\" is not a host name or an IP address.", entry);
			if (c == '*')
				GUC_check_errhint("Wildcards are not supported: list each host name, or give an address range such as 10.0.0.0/8.");
			return false;
		}
		if (c != '.' && !(c >= '0' && c <= '9'))
			only_digits = false;
	}
	if (only_digits)
	{
		GUC_check_errdetail("\"%s\" is not a valid IPv4 address.", entry);
		return false;
	}
	for (size_t i = 0; i < len; i++)
		r->name[i] = pg_tolower((unsigned char) entry[i]);
	r->name[len] = '\0';
	r->is_addr = false;
	return true;
}

/* GUC check hook: parses the list into a HostPolicy. */
bool
AllowedHostsCheck(char **newval, void **extra, GucSource source)
{
	const char *s = *newval ? *newval : "";
	int			nentries = 1;
	HostPolicy *p;
	const char *pos;
	bool		blank = true;

	for (pos = s; *pos; pos++)
	{
		if (*pos == ',')
			nentries++;
		else if (*pos != ' ' && *pos != '\t')
			blank = false;
	}
	if (blank && nentries == 1)
		nentries = 0;			/* empty: no restriction */

	p = malloc(offsetof(HostPolicy, rules) + sizeof(HostRule) * nentries);
	if (p == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	p->nrules = 0;
	pos = s;
	for (int i = 0; i < nentries; i++)
	{
		const char *start = pos;
		const char *end;
		char		entry[MAX_HOST_NAME + 3];
		HostRule   *r = &p->rules[p->nrules];
		bool		good;

		while (*pos && *pos != ',')
			pos++;
		end = pos;
		if (*pos == ',')
			pos++;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (start == end)
		{
			GUC_check_errdetail("Entry %d of the list is empty.", i + 1);
			GUC_check_errhint("Separate host names and address ranges with single commas.");
			free(p);
			return false;
		}
		if ((size_t) (end - start) >= sizeof(entry))
		{
			GUC_check_errdetail("Entry %d of the list is longer than a host name can be.", i + 1);
			free(p);
			return false;
		}
		memcpy(entry, start, end - start);
		entry[end - start] = '\0';

		memset(r, 0, sizeof(HostRule));
		if (strchr(entry, '/'))
			good = ParseCidr(entry, r);
		else
		{
			char		bare[sizeof(entry)];
			size_t		len = strlen(entry);

			/* an IPv6 address may come in URL brackets */
			if (len > 2 && entry[0] == '[' && entry[len - 1] == ']')
			{
				memcpy(bare, entry + 1, len - 2);
				bare[len - 2] = '\0';
			}
			else
				strlcpy(bare, entry, sizeof(bare));
			r->family = ParseAddr(bare, r->addr);
			if (r->family != 0)
			{
				r->is_addr = true;
				r->bits = AddrLen(r->family) * 8;
				good = true;
			}
			else
				good = ParseName(entry, r);
		}
		if (!good)
		{
			free(p);
			return false;
		}
		p->nrules++;
	}
	*extra = p;
	return true;
}

/* GUC assign hook: the parsed list becomes the policy. */
void
AllowedHostsAssign(const char *newval, void *extra)
{
	policy = (const HostPolicy *) extra;
}

/* Is any restriction in force? */
bool
HostPolicyActive(void)
{
	return policy != NULL && policy->nrules > 0;
}

/* The family and raw bytes of a socket address; IPv4-mapped IPv6 as IPv4. */
static int
SockAddrBytes(const struct sockaddr *sa, unsigned char *out)
{
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET)
	{
		memcpy(out, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6)
	{
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6))
		{
			memcpy(out, a6->s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(out, a6->s6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

/* Host names equal in any case, ignoring a trailing dot on the URL's host. */
static bool
NameMatches(const char *host, const char *name)
{
	size_t		len = strlen(host);
	size_t		nlen = strlen(name);

	if (len > 0 && host[len - 1] == '.')
		len--;
	return len == nlen && pg_strncasecmp(host, name, len) == 0;
}

/*
 * May a request for a URL whose host is "host" use a connection to addr
 * (NULL if not known)?  Neither allocates nor throws.
 */
bool
HostAllowed(const char *host, const struct sockaddr *addr)
{
	unsigned char bytes[16];
	int			family;

	if (!HostPolicyActive())
		return true;
	family = SockAddrBytes(addr, bytes);
	for (int i = 0; i < policy->nrules; i++)
	{
		const HostRule *r = &policy->rules[i];

		if (r->is_addr ? (family != 0 && RuleContains(r, family, bytes))
			: (host != NULL && NameMatches(host, r->name)))
			return true;
	}
	return false;
}

/* Writes the error text of a refused connection into buf. */
void
HostRefusal(char *buf, size_t len, const char *host, const struct sockaddr *addr)
{
	unsigned char bytes[16];
	char		text[INET6_ADDRSTRLEN];
	int			family = SockAddrBytes(addr, bytes);

	if (family != 0 && inet_ntop(family, bytes, text, sizeof(text)) != NULL)
		snprintf(buf, len, "host \"%.*s\" (address %s) is not in workqueue.allowed_hosts",
				 MAX_HOST_NAME, host ? host : "", text);
	else
		snprintf(buf, len, "host \"%.*s\" is not in workqueue.allowed_hosts",
				 MAX_HOST_NAME, host ? host : "");
}
