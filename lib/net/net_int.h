/* net_int.h - what the files of lib/net's manager share (net.c: the
 * manager; rules.c: the nftables rules and elements it writes). Not a
 * public interface. */
#ifndef SK_NET_NET_INT_H
#define SK_NET_NET_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "net/nft.h"

#define SK__NET_MAX_SLOTS 65536u
#define SK__NET_MAX_GROUPS 4096u
#define SK__NET_GROUP_MEMBERS 253 /* .2 to .254 of a /24 */
#define SK__NET_NFLOG_SNAPLEN 96
#define SK__NET_LOG_PREFIX "skiff-deny"

struct learned {
    char *name; /* NULL when unknown (found in the set after a restart) */
    int family;
    uint8_t addr[16];
    int64_t expires_ns;
};

struct log_entry {
    int64_t time_ms;
    bool dns;
    int family;
    uint8_t addr[16];
    uint8_t proto;
    uint16_t port;
    char *name; /* dns: the name asked; heap */
    char type[16];
};

struct net_group;

struct net_sb {
    struct net_sb *next;
    char id[24];
    char hex[17]; /* the id's 16 hex digits */
    char *name;
    struct sk_net_policy policy;
    uint32_t slot; /* egress address slot, 0: none */
    uint32_t gen;  /* policy generation, the conntrack mark of what it accepted */
    char ifname[16];
    int host_if; /* ifindex of the host end of its egress veth (denials name it) */
    struct net_group *group;
    uint32_t member; /* host part in the group's /24 */
    char gifname[16];
    struct learned *learned;
    size_t n_learned;
    uint64_t denied_connections, dns_refused;
    struct log_entry *log; /* ring of SK_NET_LOG_MAX, allocated on the first entry */
    size_t log_next, log_n;
};

struct net_group {
    struct net_group *next;
    char *name;
    uint32_t index;
    char brname[16];
    int br_ifindex;
    struct net_sb *members[SK__NET_GROUP_MEMBERS + 2];
    size_t n_members;
};

struct sk_net {
    char table[33];
    char owner[24]; /* "owner-<16 hex of the instance>": the mark of our tables */
    struct sk_net_cidr cidr4, cidr6, group4;
    bool v6;
    uint32_t n_slots, n_groups;
    uint32_t next_slot; /* where the search for a free slot starts */
    struct sockaddr_storage upstreams[SK_NET_UPSTREAMS_MAX];
    size_t n_upstreams;
    uint16_t nflog_group;
    void (*on_active)(void *ctx);
    void (*on_setup)(void *ctx, double seconds);
    void *ctx;

    int home_fd; /* this thread's network namespace */
    bool active;
    struct sk_rtnl *rtnl;
    struct sk_nft *nft;
    struct mnl_socket *nflog;
    struct net_sb *sandboxes;
    struct net_sb **by_slot; /* n_slots */
    struct net_group *groups;
    struct net_group **group_by_index; /* n_groups */
    struct sk_net_stats stats;
};

/* ---- addresses (rules.c) ---------------------------------------------------------- */

void sk__net_fmt_addr(int family, const uint8_t *a, char *buf, size_t size);
/* slot s of cidr4: base + 4s + host (1 gateway, 2 sandbox) */
void sk__net_slot_v4(const struct sk_net *n, uint32_t slot, uint32_t host, uint8_t out[4]);
/* slot s of cidr6: the /64 number s, ::host */
void sk__net_slot_v6(const struct sk_net *n, uint32_t slot, uint8_t host, uint8_t out[16]);
/* group index g of group_cidr4: base + 256g + host */
void sk__net_group_v4(const struct sk_net *n, uint32_t index, uint32_t host, uint8_t out[4]);
void sk__net_resolver4(const struct sk_net *n, uint8_t out[4]);
/* the offset of address a (4 bytes) from the range's base */
uint32_t sk__net_offset4(const struct sk_net_cidr *base, const uint8_t a[4]);

/* ---- nftables (rules.c) ------------------------------------------------------------ */

/* sk__net_emit_base - the tables, their sets and maps, and the shared chains
 * every sandbox's packets go through; idempotent: the chains' rules and the
 * constant sets are rewritten, the per-sandbox elements left alone. */
void sk__net_emit_base(const struct sk_net *n, struct sk_nft_buf *b);
/* sk__net_emit_sandbox - the elements that make s's egress veth known (its
 * interface and source addresses); with add false, their removal
 * (idempotent: each is added before it is deleted). */
void sk__net_emit_sandbox(struct sk_nft_buf *b, const struct sk_net *n, const struct net_sb *s, bool add);
/* sk__net_emit_policy - the elements (and, with caps, the chains) of policy
 * p under generation gen for s; with add false, their removal. */
void sk__net_emit_policy(struct sk_nft_buf *b, const struct sk_net *n, const struct net_sb *s,
                         const struct sk_net_policy *p, uint32_t gen, bool add);
/* sk__net_emit_flush_sandbox_sets - empty every per-sandbox set and map
 * (the sweep re-adds the elements of the sandboxes it keeps). */
void sk__net_emit_flush_sandbox_sets(struct sk_nft_buf *b, const struct sk_net *n);
/* sk__net_emit_member - s's place in its group's bridge rules (bridge
 * table); with add false, its removal. */
void sk__net_emit_member(struct sk_nft_buf *b, const struct sk_net *n, const struct net_sb *s, bool add);
/* sk__net_caps_chain - does chain `name` hold the caps of the sandbox with
 * these hex digits? ("sb-<16 hex>-capo-<8 hex>"); *hex gets them. */
bool sk__net_is_caps_chain(const char *name, char hex[17]);

#endif
