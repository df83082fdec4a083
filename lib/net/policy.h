/* policy.h - a sandbox's network policy: its mode, CIDR and domain lists,
 * caps and group, as the API accepts it and as skiffd stores it.
 *
 * A policy is plain data (no kernel state): parsed from and rendered to the
 * JSON object the API and a sandbox's runtime_json use, validated strictly
 * (every error names the field), and answered questions about (does it allow
 * this domain name; is it "open"). lib/net/net.h turns it into veths and
 * nftables rules.
 *
 * Semantics (docs/networking.md):
 *   mode "none"    loopback only (a network_group still adds the group's
 *                  private bridge);
 *   mode "egress"  a veth and NAT; without allow_cidrs and allow_domains
 *                  every public address is reachable ("open"); with either
 *                  list present only those (and the addresses the DNS
 *                  forwarder answered for allowed names) are. deny_cidrs
 *                  always win. Private, link-local and other special ranges
 *                  are reachable only when an allow_cidrs entry lies inside
 *                  them.
 * Domain patterns: "example.com" matches that name only; "*.example.com"
 * matches every name below it (not example.com itself). Names are compared
 * lowercase, without a trailing dot.
 *
 * Not thread-safe; plain values.
 */
#ifndef SK_NET_POLICY_H
#define SK_NET_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SK_NET_CIDRS_MAX 256        /* entries of allow_cidrs, and of deny_cidrs */
#define SK_NET_DOMAINS_MAX 256      /* entries of allow_domains */
#define SK_NET_DOMAIN_MAX 253       /* bytes of one name, without the trailing dot */
#define SK_NET_GROUP_MAX 64         /* bytes of a network_group name */
#define SK_NET_BANDWIDTH_MAX 100000 /* Mbit/s */
#define SK_NET_CONNECTIONS_MAX 1000000
#define SK_NET_CIDR_STR_MAX 52 /* "ffff:...:ffff/128" and a NUL */

struct sk_net_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t prefix;   /* 0..32 or 0..128 */
    uint8_t addr[16]; /* network byte order; host bits are zero */
};

struct sk_net_policy {
    bool egress;            /* mode "egress" (else "none") */
    bool has_allow_cidrs;   /* allow_cidrs given (an empty list allows nothing) */
    bool has_allow_domains; /* allow_domains given */
    struct sk_net_cidr *allow_cidrs;
    size_t n_allow_cidrs;
    struct sk_net_cidr *deny_cidrs;
    size_t n_deny_cidrs;
    char **allow_domains; /* normalized patterns */
    size_t n_allow_domains;
    uint32_t bandwidth_mbps;  /* each direction; 0: no cap */
    uint32_t max_connections; /* concurrent connections; 0: no cap */
    char *group;              /* network_group, or NULL */
};

/* sk_net_policy_release - free what p holds and zero it (a zeroed policy
 * is mode "none" without a group). */
void sk_net_policy_release(struct sk_net_policy *p);
/* sk_net_policy_copy - a deep copy into dst (released first). */
void sk_net_policy_copy(struct sk_net_policy *dst, const struct sk_net_policy *src);

/* sk_net_policy_patch - apply the fields present in `obj` (the API's
 * "network" object: mode, allow_cidrs, deny_cidrs, allow_domains,
 * bandwidth_mbps, max_connections; null resets a field to its default) to
 * *p. On error *p is unchanged and err names the field, prefixed with
 * `prefix` ("network.allow_cidrs[2]: ..."): EINVAL for a wrong value or an
 * unknown field, E2BIG for a list over its bound. Parsing a create request
 * is a patch of a zeroed policy. Types are checked here too, so the state
 * stored in runtime_json can be read back with the same function. */
int sk_net_policy_patch(struct sk_net_policy *p, const json_t *obj, const char *prefix, struct sk_error *err);

/* sk_net_policy_set_group - set (or with NULL clear) the group name: 1 to
 * SK_NET_GROUP_MAX of [A-Za-z0-9._-], starting with a letter or digit. */
int sk_net_policy_set_group(struct sk_net_policy *p, const char *group, struct sk_error *err);

/* sk_net_policy_json - the policy as the API shows it (new reference):
 * {"mode", "allow_cidrs" (null when absent), "deny_cidrs", "allow_domains"
 * (null when absent), "bandwidth_mbps" and "max_connections" (null when
 * none), "network_group" (null when none)}. sk_net_policy_patch of a zeroed
 * policy with it gives back the same policy (network_group aside, which
 * sk_net_policy_from_json reads too). */
json_t *sk_net_policy_json(const struct sk_net_policy *p);
/* sk_net_policy_from_json - the reverse of sk_net_policy_json, group
 * included (for stored state). */
int sk_net_policy_from_json(const json_t *obj, struct sk_net_policy *out, struct sk_error *err);

/* sk_net_policy_is_open - egress to every public address (no allow list). */
bool sk_net_policy_is_open(const struct sk_net_policy *p);
/* sk_net_policy_allows_name - whether the DNS forwarder may resolve `name`
 * (any case, trailing dot or not) for this policy: every name when open,
 * else a name allow_domains matches; never in mode "none". */
bool sk_net_policy_allows_name(const struct sk_net_policy *p, const char *name);

/* sk_net_cidr_parse - "10.0.0.0/8", "192.0.2.1" (a /32), "2001:db8::/32",
 * "::1" (a /128). Host bits are cleared. EINVAL otherwise. */
int sk_net_cidr_parse(const char *s, struct sk_net_cidr *out, struct sk_error *err);
/* sk_net_cidr_format - the canonical text ("10.0.0.0/8") into buf
 * (SK_NET_CIDR_STR_MAX bytes suffice). */
void sk_net_cidr_format(const struct sk_net_cidr *c, char *buf, size_t size);
/* sk_net_cidr_contains - every address of `inner` lies in `outer` (same
 * family). */
bool sk_net_cidr_contains(const struct sk_net_cidr *outer, const struct sk_net_cidr *inner);
/* sk_net_cidr_overlaps - the two ranges share an address. */
bool sk_net_cidr_overlaps(const struct sk_net_cidr *a, const struct sk_net_cidr *b);
/* sk_net_cidr_has - the address (4 or 16 bytes of `family`) lies in c. */
bool sk_net_cidr_has(const struct sk_net_cidr *c, int family, const uint8_t *addr);

/* sk_net_domain_normalize - lowercase `in`, drop one trailing dot and check
 * it: labels of 1 to 63 of [a-z0-9_-] (not starting or ending with '-'),
 * at most SK_NET_DOMAIN_MAX bytes; with `pattern`, a leading "*." is
 * allowed too. out needs SK_NET_DOMAIN_MAX + 1 bytes. EINVAL otherwise. */
int sk_net_domain_normalize(const char *in, bool pattern, char *out, size_t size, struct sk_error *err);
/* sk_net_domain_match - does normalized `pattern` match normalized `name`. */
bool sk_net_domain_match(const char *pattern, const char *name);

/* The special-purpose ranges that are unreachable unless an allow_cidrs
 * entry lies inside one of them (private, loopback, link-local with the
 * metadata address, CGNAT, multicast, reserved; IPv6 ULA, link-local,
 * multicast, mapped). */
extern const struct sk_net_cidr sk_net_special_ranges[];
extern const size_t sk_net_special_ranges_len;
/* sk_net_cidr_is_special - c lies inside one of the special ranges. */
bool sk_net_cidr_is_special(const struct sk_net_cidr *c);

#endif
