/* net.h - sandbox networking on this host: egress through a veth pair and
 * NAT with a per-sandbox nftables policy, network groups on private
 * bridges, and the decisions of the DNS forwarder.
 *
 * One struct sk_net per skiffd. It acts on the network namespace it was
 * created in ("the host" below) and touches nothing there until the first
 * sandbox needs a network (sk_net_attach/_readopt): then it enables IPv4
 * (and, with an IPv6 range, IPv6) forwarding, puts the resolver address on
 * `lo`, and creates its nftables tables (inet and bridge family, both
 * named cfg.table, marked with the instance: chain owner-<16 hex>). Everything it makes on the host is named so that it can
 * be found again after a crash:
 *   sk<12 hex of the sandbox id>   host end of a sandbox's egress veth
 *                                  (eth0 inside the sandbox)
 *   sg<12 hex>                     host end of its group veth (eth1 inside)
 *   skbr<n>                        the bridge of group number n
 *   elements keyed by "sk<12 hex>" in the sets of table inet <table>,
 *   and, for a sandbox with caps, chains sb-<16 hex>-{capo,capi}-<gen>
 * Every sandbox's packets run through the same chains; its policy is data
 * in sets and maps (rules.c), so attaching, changing and detaching are
 * element changes whose cost does not grow with the number of sandboxes.
 * Every packet is checked, not just a connection's first, so a change cuts
 * what it no longer allows. sk_net_sweep removes whatever of this no
 * attached sandbox owns.
 *
 * Per sandbox the caller keeps the JSON state sk_net_attach returns (its
 * policy, address slot and group place) and hands it to sk_net_readopt
 * after a restart; kernel state survives a crash of skiffd, this process's
 * memory does not (denial counters and the log start again at zero).
 *
 * Not thread-safe: one owner (the daemon's loop). Functions that enter a
 * sandbox's network namespace do so on the calling thread only for socket
 * creation (see rtnl.h).
 */
#ifndef SK_NET_NET_H
#define SK_NET_NET_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "net/dns.h"
#include "net/policy.h"

#define SK_NET_DEFAULT_CIDR4 "10.210.0.0/16"
#define SK_NET_DEFAULT_CIDR6 "fd5c:5c1f:7a00::/48"
#define SK_NET_DEFAULT_GROUP_CIDR4 "10.211.0.0/16"
#define SK_NET_DEFAULT_TABLE "skiff"
#define SK_NET_DEFAULT_NFLOG_GROUP 2210
#define SK_NET_UPSTREAMS_MAX 4
#define SK_NET_LOG_MAX 64 /* denial log entries kept per sandbox */
/* Addresses the forwarder answered stay allowed for their TTL, within: */
#define SK_NET_DNS_TTL_MIN 60
#define SK_NET_DNS_TTL_MAX 3600
#define SK_NET_LEARNED_MAX 4096 /* allowed addresses per sandbox */

struct sk_agent;
struct sk_net;

struct sk_net_config {
    const char *cidr4;        /* sandbox addresses, a /30 each; NULL: SK_NET_DEFAULT_CIDR4 */
    const char *cidr6;        /* a /64 each (prefix <= /64); NULL: SK_NET_DEFAULT_CIDR6; "off": IPv4 only */
    const char *group_cidr4;  /* a /24 per network group; NULL: SK_NET_DEFAULT_GROUP_CIDR4 */
    const char *table;        /* nftables table name; NULL: SK_NET_DEFAULT_TABLE */
    const char *dns_upstream; /* "IP[:PORT],..." (IPv6 as [IP]:PORT); NULL: /etc/resolv.conf's nameservers */
    uint16_t nflog_group;     /* netlink log group for denials; 0: SK_NET_DEFAULT_NFLOG_GROUP */
    /* Who this is (skiffd passes its data directory): the tables are marked
     * with it, and a table marked by another instance is never touched -
     * neither swept nor used (sk_net_attach fails with EBUSY then: give the
     * other one its own --nft-table). NULL: "skiff". */
    const char *instance;
    /* Called once, right after the host side has been set up (the resolver
     * address exists): the owner starts the DNS forwarder's sockets and
     * watches sk_net_nflog_fd. */
    void (*on_active)(void *ctx);
    /* Called after each sandbox's network was set up (attach, re-attach, or
     * a change that adds egress) with the seconds it took (metrics). */
    void (*on_setup)(void *ctx, double seconds);
    void *ctx;
};

/* sk_net_new - check the configuration (EINVAL naming the option: ranges
 * that overlap or are too small, a bad table name, an unusable upstream)
 * and open the handle of the current network namespace. Touches nothing. */
int sk_net_new(const struct sk_net_config *cfg, struct sk_net **out, struct sk_error *err);
/* sk_net_free - forget everything; kernel state stays (sandboxes that run
 * on are re-adopted by the next process). NULL is a no-op. */
void sk_net_free(struct sk_net *n);
/* sk_net_teardown - with no sandbox attached: remove the tables, the
 * group bridges and the resolver address (an orderly stop). EBUSY while a
 * sandbox is attached. */
int sk_net_teardown(struct sk_net *n, struct sk_error *err);

/* sk_net_is_active - the host side has been set up. */
bool sk_net_is_active(const struct sk_net *n);

/* sk_net_check_policy - what sk_net_attach would refuse about policy p
 * before doing anything: allow_cidrs or deny_cidrs inside skiff's own
 * ranges (EINVAL), IPv6 entries while IPv6 is off (EINVAL). */
int sk_net_check_policy(const struct sk_net *n, const struct sk_net_policy *p, struct sk_error *err);

/* sk_net_attach - give sandbox `id` (name may be NULL; pid: host pid of its
 * pid 1) the network policy p asks for: for mode egress a veth pair, its
 * addresses and routes, its nftables chains; for a group the group's bridge
 * and a second veth; and /etc/resolv.conf through `agent` (may be NULL for
 * none). Mode none without a group is a no-op that still records the
 * sandbox. *state (new reference) is what sk_net_readopt needs. On failure
 * nothing is left behind. EEXIST when the sandbox is attached already,
 * ENOSPC when the address range is used up, ENOTSUP when the kernel lacks
 * veth, bridges or nftables, the kernel's errno otherwise. */
int sk_net_attach(struct sk_net *n, const char *id, const char *name, pid_t pid, struct sk_agent *agent,
                  const struct sk_net_policy *p, json_t **state, struct sk_error *err);
/* sk_net_readopt - after a restart: take sandbox `id` back with the state
 * sk_net_attach (or _update) returned, re-creating what is missing of its
 * kernel state (its chains are rewritten from the stored policy). */
int sk_net_readopt(struct sk_net *n, const char *id, const char *name, pid_t pid, const json_t *state,
                   struct sk_error *err);
/* sk_net_update - apply a new policy to an attached sandbox at once: mode
 * none -> egress adds the veth, egress -> none removes it (its connections
 * die with it), egress -> egress rewrites the chains atomically, so that
 * connections the new policy denies are cut at their next packet, and
 * forgets DNS answers for names no longer allowed. The group cannot change
 * (EINVAL). *state as for sk_net_attach. ENOENT when not attached. */
int sk_net_update(struct sk_net *n, const char *id, pid_t pid, struct sk_agent *agent, const struct sk_net_policy *p,
                  json_t **state, struct sk_error *err);
/* sk_net_detach - remove everything of the sandbox and forget it. With
 * `gone` (its processes are dead: its network namespace is going away and
 * takes its veths along) only the host's rules, elements and, for the last
 * member of a group, the bridge are removed; a sweep finds any veth that
 * outlives it. Unknown ids are ignored. */
void sk_net_detach(struct sk_net *n, const char *id, bool gone);
/* sk_net_sweep - remove links, chains, map and set elements and bridges
 * that look like ours but belong to no attached sandbox; with nothing
 * attached and nothing in use, the whole setup (sk_net_teardown). Returns
 * how many objects were removed. Creates nothing. */
int sk_net_sweep(struct sk_net *n, struct sk_error *err);

/* sk_net_status - the live side of an attached sandbox's network for the
 * API (new reference): {"interface", "addresses": {"ipv4", "ipv6",
 * "gateway", "dns", "group"}, "denied": {"connections", "dns"}, "log":
 * [{"time" (epoch ms), "kind": "connection"|"dns", ...}]}; NULL when it is
 * not attached. */
json_t *sk_net_status(struct sk_net *n, const char *id);

/* ---- the DNS forwarder's decisions --------------------------------------------- */

/* sk_net_resolver - the address sandboxes send queries to (on `lo`). */
void sk_net_resolver(const struct sk_net *n, struct sockaddr_in *out);
/* sk_net_upstreams - the servers allowed names are forwarded to. */
const struct sockaddr_storage *sk_net_upstreams(const struct sk_net *n, size_t *count);

enum sk_net_dns_action {
    SK_NET_DNS_DROP,    /* not from a sandbox we know: no answer */
    SK_NET_DNS_REFUSE,  /* answer REFUSED (counted and logged) */
    SK_NET_DNS_ANSWER,  /* answer with addrs (a group member's name) */
    SK_NET_DNS_FORWARD, /* ask upstream, then sk_net_dns_learn the answer */
};
struct sk_net_dns_decision {
    enum sk_net_dns_action action;
    char sandbox_id[24];
    struct sk_dns_addr addrs[2];
    size_t n_addrs;
};
/* sk_net_dns_decide - what to do with query q from address src (family
 * AF_INET or AF_INET6, 4 or 16 bytes): the sandbox is found by its source
 * address (which nftables guarantees), group members' names are answered
 * directly, names its policy allows are forwarded, everything else is
 * refused - and counted and logged for that sandbox. */
void sk_net_dns_decide(struct sk_net *n, int family, const uint8_t *src, const struct sk_dns_query *q,
                       struct sk_net_dns_decision *d);
/* sk_net_dns_learn - the upstream answered q for sandbox_id with addrs: add
 * them to its allowed set for their TTL (clamped to SK_NET_DNS_TTL_MIN ..
 * _MAX) before the answer is passed on. Addresses in special ranges are not
 * added. A no-op for an open policy. ENOSPC when the sandbox has
 * SK_NET_LEARNED_MAX addresses already; ENOENT when it is gone. */
int sk_net_dns_learn(struct sk_net *n, const char *sandbox_id, const struct sk_dns_query *q,
                     const struct sk_dns_addr *addrs, size_t n_addrs, struct sk_error *err);

/* ---- denials reported by the kernel ----------------------------------------------- */

/* sk_net_nflog_fd - the netlink socket on which nftables reports denied
 * packets (readable when there are some), -1 before the host side is set
 * up. */
int sk_net_nflog_fd(const struct sk_net *n);
/* sk_net_nflog_read - read what is queued without blocking and record each
 * denial with its sandbox. Returns how many denials were recorded. */
int sk_net_nflog_read(struct sk_net *n);

struct sk_net_stats {
    uint64_t denied_connections, dns_refused, dns_forwarded, dns_group_answers;
    size_t egress, groups, attached; /* sandboxes in mode egress, groups, sandboxes attached */
};
void sk_net_get_stats(const struct sk_net *n, struct sk_net_stats *s);

#endif
