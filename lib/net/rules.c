/* rules.c - the nftables side of sandbox networking (see net.h, net_int.h).
 *
 * Every sandbox's packets run through the same chains; what differs
 * between sandboxes lives in sets and maps keyed by the host end of its
 * veth (its interface name):
 *
 *   forward  iifname @sb_ifs jump sandbox_out    sandbox -> anywhere
 *            oifname @sb_ifs jump sandbox_in     anywhere -> sandbox
 *            group bridges: only within the same bridge
 *   input    iifname @sb_ifs jump sandbox_host   sandbox -> this host
 *            group bridges -> grp_host (DNS only)
 *
 * So giving a sandbox a network, changing its policy or taking it away is
 * adding and removing set elements in one transaction: no rule and no jump
 * is added, so the kernel has no chains to validate and libnftables
 * nothing to parse but the elements - the cost does not grow with the
 * number of sandboxes. Only a sandbox with caps (bandwidth, connections)
 * has chains of its own, jumped to through the caps maps.
 *
 * Accepted connections carry the sandbox's policy generation in their
 * conntrack mark (genmap); packets of a connection accepted under the
 * current generation (gens) pass at once, every other packet runs through
 * the policy, so a new generation re-checks every open connection at its
 * next packet.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/util.h"
#include "net/net_int.h"

/* ---- addresses --------------------------------------------------------------------- */

void sk__net_fmt_addr(int family, const uint8_t *a, char *buf, size_t size)
{
    if (inet_ntop(family, a, buf, (socklen_t)size) == NULL)
        snprintf(buf, size, "?");
}

static uint32_t be32(const uint8_t *a)
{
    return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

static void addr4(const struct sk_net_cidr *base, uint32_t offset, uint8_t out[4])
{
    uint32_t v = be32(base->addr) + offset;
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

uint32_t sk__net_offset4(const struct sk_net_cidr *base, const uint8_t a[4])
{
    return be32(a) - be32(base->addr);
}

void sk__net_slot_v4(const struct sk_net *n, uint32_t slot, uint32_t host, uint8_t out[4])
{
    addr4(&n->cidr4, slot * 4 + host, out);
}

void sk__net_slot_v6(const struct sk_net *n, uint32_t slot, uint8_t host, uint8_t out[16])
{
    memcpy(out, n->cidr6.addr, 16);
    uint64_t hi = 0;
    for (int i = 0; i < 8; i++)
        hi = hi << 8 | out[i];
    hi += slot; /* the /64 number: bits prefix..63, free in a prefix <= /64 */
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)hi;
        hi >>= 8;
    }
    memset(out + 8, 0, 8);
    out[15] = host;
}

void sk__net_group_v4(const struct sk_net *n, uint32_t index, uint32_t host, uint8_t out[4])
{
    addr4(&n->group4, index * 256 + host, out);
}

void sk__net_resolver4(const struct sk_net *n, uint8_t out[4])
{
    addr4(&n->cidr4, 1, out);
}

/* ---- the base ---------------------------------------------------------------------- */

static void emit_cidr(struct sk_nft_buf *b, const struct sk_net_cidr *c, bool *first)
{
    char s[SK_NET_CIDR_STR_MAX];
    sk_net_cidr_format(c, s, sizeof(s));
    sk_nft_buf_add(b, "%s%s", *first ? "" : ", ", s);
    *first = false;
}

/* The per-sandbox sets: name, type, flags. */
static const struct {
    const char *name, *type, *flags;
} sandbox_sets[] = {
    {"sb_ifs", "ifname", NULL},
    {"src4", "ifname . ipv4_addr", NULL},
    {"src6", "ifname . ipv6_addr", NULL},
    {"gens", "mark . ifname", NULL},
    {"open_ifs", "ifname", NULL},
    {"deny4", "ifname . ipv4_addr", "interval"},
    {"deny6", "ifname . ipv6_addr", "interval"},
    {"allowsp4", "ifname . ipv4_addr", "interval"},
    {"allowsp6", "ifname . ipv6_addr", "interval"},
    {"allow4", "ifname . ipv4_addr", "interval"},
    {"allow6", "ifname . ipv6_addr", "interval"},
};
static const struct {
    const char *name, *type;
} sandbox_maps[] = {
    {"genmap", "ifname : mark"},
    {"caps_out", "ifname : verdict"},
    {"caps_in", "ifname : verdict"},
};

/* emit_ladder - the policy checks of one direction: `key` is "meta iifname"
 * (from the sandbox) or "meta oifname" (to it), `dir` "daddr" or "saddr". */
static void emit_ladder(struct sk_nft_buf *b, const char *T, const char *chain, const char *key, const char *dir,
                        const char *deny, bool out)
{
    char mark[80];
    snprintf(mark, sizeof(mark), "ct mark set %s map @genmap accept", key);
    static const char *const ips[] = {"ip", "ip6"};
    for (int v = 0; v < 2; v++)
        sk_nft_buf_add(b, "add rule inet %s %s %s . %s %s @deny%d %s\n", T, chain, key, ips[v], dir, v ? 6 : 4, deny);
    for (int v = 0; v < 2; v++)
        sk_nft_buf_add(b, "add rule inet %s %s %s %s @own%d %s\n", T, chain, ips[v], dir, v ? 6 : 4, deny);
    /* allow entries inside special ranges: the explicit exceptions */
    for (int v = 0; v < 2; v++)
        sk_nft_buf_add(b, "add rule inet %s %s %s . %s %s @allowsp%d %s\n", T, chain, key, ips[v], dir, v ? 6 : 4,
                       mark);
    for (int v = 0; v < 2; v++)
        sk_nft_buf_add(b, "add rule inet %s %s %s %s @special%d %s\n", T, chain, ips[v], dir, v ? 6 : 4, deny);
    for (int v = 0; v < 2; v++)
        sk_nft_buf_add(b, "add rule inet %s %s %s . %s %s @allow%d %s\n", T, chain, key, ips[v], dir, v ? 6 : 4, mark);
    if (out) /* names are resolved by skiffd's forwarder only */
        sk_nft_buf_add(b, "add rule inet %s %s meta l4proto . th dport @dns_ports %s\n", T, chain, deny);
    sk_nft_buf_add(b, "add rule inet %s %s %s @open_ifs %s\n", T, chain, key, mark);
    for (int v = 0; v < 2; v++)
        sk_nft_buf_add(b, "add rule inet %s %s %s . %s %s @dns%d %s\n", T, chain, key, ips[v], dir, v ? 6 : 4, mark);
    sk_nft_buf_add(b, "add rule inet %s %s %s\n", T, chain, deny);
}

void sk__net_emit_base(const struct sk_net *n, struct sk_nft_buf *b)
{
    const char *T = n->table;
    char res[INET_ADDRSTRLEN], c4[SK_NET_CIDR_STR_MAX], c6[SK_NET_CIDR_STR_MAX], g4[SK_NET_CIDR_STR_MAX];
    uint8_t r4[4];
    sk__net_resolver4(n, r4);
    sk__net_fmt_addr(AF_INET, r4, res, sizeof(res));
    sk_net_cidr_format(&n->cidr4, c4, sizeof(c4));
    sk_net_cidr_format(&n->group4, g4, sizeof(g4));
    if (n->v6)
        sk_net_cidr_format(&n->cidr6, c6, sizeof(c6));
    sk_nft_buf_add(b, "add table inet %s\n", T);
    sk_nft_buf_add(b, "add chain inet %s %s\n", T, n->owner);

    /* per sandbox */
    for (size_t i = 0; i < SK_ARRAY_SIZE(sandbox_sets); i++)
        sk_nft_buf_add(b, "add set inet %s %s { type %s;%s%s%s }\n", T, sandbox_sets[i].name, sandbox_sets[i].type,
                       sandbox_sets[i].flags ? " flags " : "", sandbox_sets[i].flags ? sandbox_sets[i].flags : "",
                       sandbox_sets[i].flags ? ";" : "");
    for (size_t i = 0; i < SK_ARRAY_SIZE(sandbox_maps); i++)
        sk_nft_buf_add(b, "add map inet %s %s { type %s; }\n", T, sandbox_maps[i].name, sandbox_maps[i].type);
    sk_nft_buf_add(b, "add set inet %s dns4 { type ifname . ipv4_addr; flags timeout; size 262144; }\n", T);
    sk_nft_buf_add(b, "add set inet %s dns6 { type ifname . ipv6_addr; flags timeout; size 262144; }\n", T);
    sk_nft_buf_add(b, "add set inet %s lograte { type ifname; flags dynamic,timeout; timeout 60s; size 65536; }\n", T);
    sk_nft_buf_add(b, "add set inet %s grp_brs { type ifname; }\n", T);
    sk_nft_buf_add(b, "add set inet %s grp_same { type ifname . ifname; }\n", T);

    /* constant: the special ranges, skiff's own ranges, ports and types */
    for (int fam = 4; fam <= 6; fam += 2) {
        sk_nft_buf_add(b, "add set inet %s special%d { type ipv%d_addr; flags interval; auto-merge; }\n", T, fam, fam);
        sk_nft_buf_add(b, "flush set inet %s special%d\n", T, fam);
        sk_nft_buf_add(b, "add element inet %s special%d { ", T, fam);
        bool first = true;
        for (size_t i = 0; i < sk_net_special_ranges_len; i++)
            if (sk_net_special_ranges[i].family == (fam == 4 ? AF_INET : AF_INET6))
                emit_cidr(b, &sk_net_special_ranges[i], &first);
        sk_nft_buf_add(b, " }\n");
    }
    sk_nft_buf_add(b, "add set inet %s own4 { type ipv4_addr; flags interval; auto-merge; }\n", T);
    sk_nft_buf_add(b, "flush set inet %s own4\n", T);
    sk_nft_buf_add(b, "add element inet %s own4 { %s, %s }\n", T, c4, g4);
    sk_nft_buf_add(b, "add set inet %s own6 { type ipv6_addr; flags interval; auto-merge; }\n", T);
    sk_nft_buf_add(b, "flush set inet %s own6\n", T);
    if (n->v6)
        sk_nft_buf_add(b, "add element inet %s own6 { %s }\n", T, c6);
    sk_nft_buf_add(b, "add set inet %s dns_ports { type inet_proto . inet_service; }\n", T);
    sk_nft_buf_add(b, "flush set inet %s dns_ports\n", T);
    sk_nft_buf_add(b, "add element inet %s dns_ports { tcp . 53, udp . 53, tcp . 853, udp . 853 }\n", T);
    sk_nft_buf_add(b, "add set inet %s dns_local { type inet_proto . inet_service; }\n", T);
    sk_nft_buf_add(b, "flush set inet %s dns_local\n", T);
    sk_nft_buf_add(b, "add element inet %s dns_local { tcp . 53, udp . 53 }\n", T);
    sk_nft_buf_add(b, "add set inet %s icmp_protos { type inet_proto; }\n", T);
    sk_nft_buf_add(b, "flush set inet %s icmp_protos\n", T);
    sk_nft_buf_add(b, "add element inet %s icmp_protos { icmp, ipv6-icmp }\n", T);
    sk_nft_buf_add(b, "add set inet %s nd_types { type icmpv6_type; }\n", T);
    sk_nft_buf_add(b, "flush set inet %s nd_types\n", T);
    sk_nft_buf_add(b,
                   "add element inet %s nd_types { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, "
                   "mld-listener-report, mld2-listener-report, mld-listener-done }\n",
                   T);

    /* the shared chains, created empty first (they refer to each other) */
    static const char *const chains[] = {"deny", "deny_in", "grp_host", "sandbox_out", "sandbox_in", "sandbox_host"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(chains); i++)
        sk_nft_buf_add(b, "add chain inet %s %s\nflush chain inet %s %s\n", T, chains[i], T, chains[i]);
    sk_nft_buf_add(b, "add chain inet %s forward { type filter hook forward priority filter; policy accept; }\n", T);
    sk_nft_buf_add(b, "flush chain inet %s forward\n", T);
    sk_nft_buf_add(b, "add chain inet %s input { type filter hook input priority filter; policy accept; }\n", T);
    sk_nft_buf_add(b, "flush chain inet %s input\n", T);
    sk_nft_buf_add(b, "add chain inet %s postrouting { type nat hook postrouting priority srcnat; policy accept; }\n",
                   T);
    sk_nft_buf_add(b, "flush chain inet %s postrouting\n", T);

    /* deny: logged (at most 100/s per sandbox, told apart by interface),
     * then refused */
    sk_nft_buf_add(b,
                   "add rule inet %s deny update @lograte { meta iifname limit rate 100/second burst 100 packets } log "
                   "group %u snaplen %d prefix \"" SK__NET_LOG_PREFIX "\"\n",
                   T, (unsigned)n->nflog_group, SK__NET_NFLOG_SNAPLEN);
    sk_nft_buf_add(b, "add rule inet %s deny meta l4proto tcp reject with tcp reset\n", T);
    sk_nft_buf_add(b, "add rule inet %s deny reject with icmpx admin-prohibited\n", T);
    sk_nft_buf_add(b, "add rule inet %s deny_in meta l4proto tcp reject with tcp reset\n", T);
    sk_nft_buf_add(b, "add rule inet %s deny_in drop\n", T);
    sk_nft_buf_add(b, "add rule inet %s grp_host ip daddr %s meta l4proto . th dport @dns_local accept\n", T, res);
    sk_nft_buf_add(b, "add rule inet %s grp_host drop\n", T);

    /* out: from a sandbox, forwarded */
    sk_nft_buf_add(b, "add rule inet %s sandbox_out meta iifname . ip saddr != @src4 drop\n", T);
    if (n->v6)
        sk_nft_buf_add(b, "add rule inet %s sandbox_out meta iifname . ip6 saddr != @src6 drop\n", T);
    else
        sk_nft_buf_add(b, "add rule inet %s sandbox_out meta nfproto ipv6 drop\n", T);
    sk_nft_buf_add(b, "add rule inet %s sandbox_out iifname vmap @caps_out\n", T);
    sk_nft_buf_add(b, "add rule inet %s sandbox_out ct state established,related ct mark . meta iifname @gens accept\n",
                   T);
    emit_ladder(b, T, "sandbox_out", "meta iifname", "daddr", "goto deny", true);

    /* in: to a sandbox; only answers to what it started */
    sk_nft_buf_add(b, "add rule inet %s sandbox_in ct state new,invalid,untracked drop\n", T);
    sk_nft_buf_add(b, "add rule inet %s sandbox_in oifname vmap @caps_in\n", T);
    sk_nft_buf_add(b, "add rule inet %s sandbox_in ct mark . meta oifname @gens accept\n", T);
    sk_nft_buf_add(b, "add rule inet %s sandbox_in ct state related meta l4proto @icmp_protos accept\n", T);
    emit_ladder(b, T, "sandbox_in", "meta oifname", "saddr", "goto deny_in", false);

    /* host: to this host itself, DNS to the forwarder and neighbour
     * discovery only */
    sk_nft_buf_add(b,
                   "add rule inet %s sandbox_host meta iifname . ip saddr @src4 ip daddr %s meta l4proto . th dport "
                   "@dns_local accept\n",
                   T, res);
    sk_nft_buf_add(b, "add rule inet %s sandbox_host icmpv6 type @nd_types accept\n", T);
    sk_nft_buf_add(b, "add rule inet %s sandbox_host goto deny\n", T);

    sk_nft_buf_add(b, "add rule inet %s forward iifname @sb_ifs jump sandbox_out\n", T);
    sk_nft_buf_add(b, "add rule inet %s forward oifname @sb_ifs jump sandbox_in\n", T);
    /* With br_netfilter, traffic bridged inside a group passes here with
     * the bridge as both interfaces; anything routed in or out of a group's
     * bridge does not pass. */
    sk_nft_buf_add(b, "add rule inet %s forward iifname . oifname @grp_same accept\n", T);
    sk_nft_buf_add(b, "add rule inet %s forward iifname @grp_brs drop\n", T);
    sk_nft_buf_add(b, "add rule inet %s forward oifname @grp_brs drop\n", T);
    sk_nft_buf_add(b, "add rule inet %s input iifname @sb_ifs jump sandbox_host\n", T);
    sk_nft_buf_add(b, "add rule inet %s input iifname @grp_brs jump grp_host\n", T);
    sk_nft_buf_add(b, "add rule inet %s postrouting ip saddr %s masquerade\n", T, c4);
    if (n->v6)
        sk_nft_buf_add(b, "add rule inet %s postrouting ip6 saddr %s masquerade\n", T, c6);

    /* A group's port may only send from its own address (so the forwarder,
     * which tells sandboxes apart by source address, cannot be fooled), and
     * only IPv4 and ARP. */
    sk_nft_buf_add(b, "add table bridge %s\n", T);
    sk_nft_buf_add(b, "add set bridge %s ports { type ifname; }\n", T);
    sk_nft_buf_add(b, "add set bridge %s src4 { type ifname . ipv4_addr; }\n", T);
    sk_nft_buf_add(b, "add chain bridge %s pre { type filter hook prerouting priority filter; policy accept; }\n", T);
    sk_nft_buf_add(b, "flush chain bridge %s pre\n", T);
    sk_nft_buf_add(b, "add rule bridge %s pre iifname != @ports accept\n", T);
    sk_nft_buf_add(b, "add rule bridge %s pre ether type ip iifname . ip saddr @src4 accept\n", T);
    sk_nft_buf_add(b, "add rule bridge %s pre ether type arp iifname . arp saddr ip @src4 accept\n", T);
    sk_nft_buf_add(b, "add rule bridge %s pre drop\n", T);
}

void sk__net_emit_flush_sandbox_sets(struct sk_nft_buf *b, const struct sk_net *n)
{
    for (size_t i = 0; i < SK_ARRAY_SIZE(sandbox_sets); i++)
        sk_nft_buf_add(b, "flush set inet %s %s\n", n->table, sandbox_sets[i].name);
    for (size_t i = 0; i < SK_ARRAY_SIZE(sandbox_maps); i++)
        sk_nft_buf_add(b, "flush map inet %s %s\n", n->table, sandbox_maps[i].name);
}

/* ---- per sandbox ---------------------------------------------------------------------- */

/* elem - add one element; with add false, add it and delete it (a removal
 * that does not fail when it is not there). */
static void elem(struct sk_nft_buf *b, const char *T, const char *set, bool add, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void elem(struct sk_nft_buf *b, const char *T, const char *set, bool add, const char *fmt, ...)
{
    char e[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e, sizeof(e), fmt, ap);
    va_end(ap);
    sk_nft_buf_add(b, "add element inet %s %s { %s }\n", T, set, e);
    if (!add) {
        /* a map's element is deleted by its key alone */
        char *colon = strstr(e, " : ");
        if (colon != NULL)
            *colon = '\0';
        sk_nft_buf_add(b, "delete element inet %s %s { %s }\n", T, set, e);
    }
}

void sk__net_emit_sandbox(struct sk_nft_buf *b, const struct sk_net *n, const struct net_sb *s, bool add)
{
    const char *T = n->table;
    uint8_t a[16];
    char as[INET6_ADDRSTRLEN];
    elem(b, T, "sb_ifs", add, "\"%s\"", s->ifname);
    sk__net_slot_v4(n, s->slot, 2, a);
    sk__net_fmt_addr(AF_INET, a, as, sizeof(as));
    elem(b, T, "src4", add, "\"%s\" . %s", s->ifname, as);
    if (n->v6) {
        sk__net_slot_v6(n, s->slot, 2, a);
        sk__net_fmt_addr(AF_INET6, a, as, sizeof(as));
        elem(b, T, "src6", add, "\"%s\" . %s", s->ifname, as);
    }
}

/* covered - entry i of list is the same as an earlier entry of its class,
 * or lies inside another entry of its class (the kernel refuses
 * overlapping elements of an interval set; the wider one says it all). */
static bool covered(const struct sk_net_cidr *list, size_t n, size_t i, int cls,
                    int (*class_of)(const struct sk_net_cidr *))
{
    for (size_t j = 0; j < n; j++) {
        if (j == i || list[j].family != list[i].family || class_of(&list[j]) != cls)
            continue;
        if (sk_net_cidr_contains(&list[j], &list[i]) &&
            (list[j].prefix < list[i].prefix || j < i)) /* wider, or the same and earlier */
            return true;
    }
    return false;
}

static int class_none(const struct sk_net_cidr *c)
{
    (void)c;
    return 0;
}

static int class_special(const struct sk_net_cidr *c)
{
    return sk_net_cidr_is_special(c) ? 1 : 0;
}

static void emit_cidrs(struct sk_nft_buf *b, const char *T, const char *ifname, const struct sk_net_cidr *list,
                       size_t len, int (*class_of)(const struct sk_net_cidr *), int cls, const char *set4,
                       const char *set6, bool add)
{
    for (size_t i = 0; i < len; i++) {
        if (class_of(&list[i]) != cls || covered(list, len, i, cls, class_of))
            continue;
        char c[SK_NET_CIDR_STR_MAX];
        sk_net_cidr_format(&list[i], c, sizeof(c));
        elem(b, T, list[i].family == AF_INET ? set4 : set6, add, "\"%s\" . %s", ifname, c);
    }
}

void sk__net_emit_policy(struct sk_nft_buf *b, const struct sk_net *n, const struct net_sb *s,
                         const struct sk_net_policy *p, uint32_t gen, bool add)
{
    const char *T = n->table, *X = s->ifname;
    elem(b, T, "genmap", add, "\"%s\" : 0x%08x", X, gen);
    elem(b, T, "gens", add, "0x%08x . \"%s\"", gen, X);
    if (sk_net_policy_is_open(p))
        elem(b, T, "open_ifs", add, "\"%s\"", X);
    emit_cidrs(b, T, X, p->deny_cidrs, p->n_deny_cidrs, class_none, 0, "deny4", "deny6", add);
    emit_cidrs(b, T, X, p->allow_cidrs, p->n_allow_cidrs, class_special, 1, "allowsp4", "allowsp6", add);
    emit_cidrs(b, T, X, p->allow_cidrs, p->n_allow_cidrs, class_special, 0, "allow4", "allow6", add);
    if (p->bandwidth_mbps == 0 && p->max_connections == 0)
        return;
    /* caps: chains of its own (named by generation, so that a change makes
     * new ones before the old ones go) */
    char capo[64], capi[64];
    snprintf(capo, sizeof(capo), "sb-%s-capo-%08x", s->hex, gen);
    snprintf(capi, sizeof(capi), "sb-%s-capi-%08x", s->hex, gen);
    unsigned long long rate = (unsigned long long)p->bandwidth_mbps * 125000ULL; /* bytes per second */
    unsigned long long burst = rate / 10 < 65536 ? 65536 : rate / 10;
    if (add) {
        sk_nft_buf_add(b, "add chain inet %s %s\nadd chain inet %s %s\n", T, capo, T, capi);
        if (rate > 0) {
            sk_nft_buf_add(b, "add rule inet %s %s limit rate over %llu bytes/second burst %llu bytes drop\n", T, capo,
                           rate, burst);
            sk_nft_buf_add(b, "add rule inet %s %s limit rate over %llu bytes/second burst %llu bytes drop\n", T, capi,
                           rate, burst);
        }
        if (p->max_connections > 0)
            sk_nft_buf_add(b, "add rule inet %s %s ct state new ct count over %u goto deny\n", T, capo,
                           p->max_connections);
    } else {
        sk_nft_buf_add(b, "add chain inet %s %s\nadd chain inet %s %s\n", T, capo, T, capi);
    }
    elem(b, T, "caps_out", add, "\"%s\" : jump %s", X, capo);
    elem(b, T, "caps_in", add, "\"%s\" : jump %s", X, capi);
    if (!add)
        sk_nft_buf_add(
            b, "flush chain inet %s %s\nflush chain inet %s %s\ndelete chain inet %s %s\ndelete chain inet %s %s\n", T,
            capo, T, capi, T, capo, T, capi);
}

bool sk__net_is_caps_chain(const char *name, char hex[17])
{
    if (strncmp(name, "sb-", 3) != 0 || strlen(name) != 3 + 16 + 6 + 8 || name[19] != '-' ||
        (strncmp(name + 20, "capo-", 5) != 0 && strncmp(name + 20, "capi-", 5) != 0))
        return false;
    memcpy(hex, name + 3, 16);
    hex[16] = '\0';
    for (int i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)hex[i]))
            return false;
    return true;
}

void sk__net_emit_member(struct sk_nft_buf *b, const struct sk_net *n, const struct net_sb *s, bool add)
{
    uint8_t a[4];
    char as[INET_ADDRSTRLEN];
    sk__net_group_v4(n, s->group->index, s->member, a);
    sk__net_fmt_addr(AF_INET, a, as, sizeof(as));
    const char *T = n->table;
    sk_nft_buf_add(b, "add element bridge %s ports { \"%s\" }\n", T, s->gifname);
    sk_nft_buf_add(b, "add element bridge %s src4 { \"%s\" . %s }\n", T, s->gifname, as);
    if (!add) {
        sk_nft_buf_add(b, "delete element bridge %s ports { \"%s\" }\n", T, s->gifname);
        sk_nft_buf_add(b, "delete element bridge %s src4 { \"%s\" . %s }\n", T, s->gifname, as);
    }
}
