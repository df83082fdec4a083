/* net.c - sandbox networking on this host (see net.h): the sandboxes'
 * links, addresses, routes and groups, their state, the sweep, and the DNS
 * forwarder's and the denial log's side of it. The nftables rules and
 * elements are rules.c's (its header comment has the layout).
 *
 * A sandbox's elements are written in one transaction before its links
 * exist (so it never has a moment without policy) and replaced in one on a
 * change.
 *
 * Addresses: slot s of cidr4 is the /30 base+4s (gateway .1, sandbox .2),
 * slot 0 holds the resolver (base+1, on lo); of cidr6 the /64 numbered s
 * (::1 gateway, ::2 sandbox); group n is the /24 n of group_cidr4 (the
 * bridge .1, members .2 to .254).
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "net/net_int.h"
#include "net/nft.h"
#include "net/rtnl.h"
#include "runtime/agent.h"

#define RESOLV_EGRESS_FMT "# skiff: the sandbox's DNS forwarder (skiffd)\nnameserver %s\noptions timeout:2 attempts:2\n"
#define RESOLV_NONE "# skiff: network mode 'none' has no resolver\n"
#define MAX_SLOTS SK__NET_MAX_SLOTS
#define MAX_GROUPS SK__NET_MAX_GROUPS
#define GROUP_MEMBERS SK__NET_GROUP_MEMBERS
#define NFLOG_SNAPLEN SK__NET_NFLOG_SNAPLEN

/* ---- small helpers -------------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_sysctl(const char *path, const char *value, struct sk_error *err)
{
    return sk_write_file_at(AT_FDCWD, path, value, strlen(value), err);
}

static struct net_sb *find_sb(struct sk_net *n, const char *id)
{
    for (struct net_sb *s = n->sandboxes; s != NULL; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static bool valid_id(const char *id)
{
    if (strlen(id) != 19 || strncmp(id, "sb-", 3) != 0)
        return false;
    for (size_t i = 3; i < 19; i++)
        if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
            return false;
    return true;
}

/* ---- configuration ------------------------------------------------------------------- */

static int parse_range(const char *opt, const char *s, int family, unsigned max_prefix, struct sk_net_cidr *out,
                       struct sk_error *err)
{
    struct sk_error e2 = {0};
    if (sk_net_cidr_parse(s, out, &e2) < 0)
        return sk_error_setv(err, EINVAL, "%s: %s", opt, e2.msg);
    if (out->family != family)
        return sk_error_setv(err, EINVAL, "%s: '%s' must be an IPv%d range", opt, s, family == AF_INET ? 4 : 6);
    if (out->prefix > max_prefix)
        return sk_error_setv(err, EINVAL, "%s: '%s' is too small (at most /%u)", opt, s, max_prefix);
    return 0;
}

static int parse_upstream(const char *item, struct sockaddr_storage *ss, struct sk_error *err)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port_s = NULL;
    memset(ss, 0, sizeof(*ss));
    if (item[0] == '[') {
        const char *end = strchr(item, ']');
        if (end == NULL || (size_t)(end - item - 1) >= sizeof(host))
            return sk_error_setv(err, EINVAL, "--dns-upstream: bad address '%s'", item);
        snprintf(host, sizeof(host), "%.*s", (int)(end - item - 1), item + 1);
        if (end[1] == ':')
            port_s = end + 2;
        else if (end[1] != '\0')
            return sk_error_setv(err, EINVAL, "--dns-upstream: bad address '%s'", item);
    } else {
        const char *colon = strchr(item, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            snprintf(host, sizeof(host), "%.*s", (int)(colon - item), item);
            port_s = colon + 1;
        } else {
            snprintf(host, sizeof(host), "%s", item);
        }
    }
    long port = 53;
    if (port_s != NULL) {
        char *end = NULL;
        port = strtol(port_s, &end, 10);
        if (end == port_s || *end != '\0' || port < 1 || port > 65535)
            return sk_error_setv(err, EINVAL, "--dns-upstream: bad port in '%s'", item);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    } else {
        return sk_error_setv(err, EINVAL, "--dns-upstream: '%s' is not an IP address", host);
    }
    return 0;
}

static int parse_upstreams(struct sk_net *n, const char *list, struct sk_error *err)
{
    _cleanup_free_ char *copy = xstrdup(list);
    char *save = NULL;
    for (char *item = strtok_r(copy, ", ", &save); item != NULL; item = strtok_r(NULL, ", ", &save)) {
        if (n->n_upstreams == SK_NET_UPSTREAMS_MAX)
            return sk_error_setv(err, EINVAL, "--dns-upstream: at most %d servers", SK_NET_UPSTREAMS_MAX);
        int r = parse_upstream(item, &n->upstreams[n->n_upstreams], err);
        if (r < 0)
            return r;
        n->n_upstreams++;
    }
    if (n->n_upstreams == 0)
        return sk_error_setv(err, EINVAL, "--dns-upstream: no server given");
    return 0;
}

/* upstreams_from_resolv_conf - the host's nameservers (a missing file or
 * none listed is not an error here: forwarding then answers SERVFAIL). */
static void upstreams_from_resolv_conf(struct sk_net *n)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (sk_read_file_at(AT_FDCWD, "/etc/resolv.conf", 65536, &text, &len, NULL) < 0)
        return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char addr[INET6_ADDRSTRLEN + 1];
        if (sscanf(line, " nameserver %46s", addr) != 1 || n->n_upstreams == SK_NET_UPSTREAMS_MAX)
            continue;
        char *pct = strchr(addr, '%'); /* fe80::1%eth0: no scope ids */
        if (pct != NULL)
            continue;
        if (parse_upstream(addr, &n->upstreams[n->n_upstreams], NULL) == 0)
            n->n_upstreams++;
    }
}

int sk_net_new(const struct sk_net_config *cfg, struct sk_net **out, struct sk_error *err)
{
    *out = NULL;
    struct sk_net *n = xcalloc(1, sizeof(*n));
    n->home_fd = -1;
    int r = 0;
    const char *table = cfg->table ? cfg->table : SK_NET_DEFAULT_TABLE;
    size_t tl = strlen(table);
    bool table_ok = tl > 0 && tl < sizeof(n->table) && isalpha((unsigned char)table[0]);
    for (size_t i = 0; table_ok && i < tl; i++)
        table_ok = isalnum((unsigned char)table[i]) || table[i] == '_';
    if (!table_ok)
        r = sk_error_setv(err, EINVAL, "--nft-table must be 1 to 32 of [A-Za-z0-9_] starting with a letter");
    else
        snprintf(n->table, sizeof(n->table), "%s", table);
    if (r == 0)
        r = parse_range("--net-cidr", cfg->cidr4 ? cfg->cidr4 : SK_NET_DEFAULT_CIDR4, AF_INET, 29, &n->cidr4, err);
    const char *c6 = cfg->cidr6 ? cfg->cidr6 : SK_NET_DEFAULT_CIDR6;
    n->v6 = strcmp(c6, "off") != 0;
    if (r == 0 && n->v6)
        r = parse_range("--net-cidr6", c6, AF_INET6, 63, &n->cidr6, err);
    if (r == 0)
        r = parse_range("--net-group-cidr", cfg->group_cidr4 ? cfg->group_cidr4 : SK_NET_DEFAULT_GROUP_CIDR4, AF_INET,
                        24, &n->group4, err);
    if (r == 0 && sk_net_cidr_overlaps(&n->cidr4, &n->group4))
        r = sk_error_setv(err, EINVAL, "--net-cidr and --net-group-cidr overlap");
    if (r == 0) {
        uint32_t s4 = n->cidr4.prefix <= 14 ? MAX_SLOTS : 1u << (30 - n->cidr4.prefix);
        uint32_t s6 = !n->v6 || n->cidr6.prefix <= 48 ? MAX_SLOTS : 1u << (64 - n->cidr6.prefix);
        n->n_slots = s4 < s6 ? s4 : s6;
        n->n_groups = n->group4.prefix <= 12 ? MAX_GROUPS : 1u << (24 - n->group4.prefix);
    }
    if (r == 0 && cfg->dns_upstream != NULL)
        r = parse_upstreams(n, cfg->dns_upstream, err);
    else if (r == 0)
        upstreams_from_resolv_conf(n);
    if (r == 0) {
        n->home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (n->home_fd < 0)
            r = sk_error_set(err, errno, "open '/proc/thread-self/ns/net'");
    }
    if (r < 0) {
        sk_net_free(n);
        return r;
    }
    n->nflog_group = cfg->nflog_group ? cfg->nflog_group : SK_NET_DEFAULT_NFLOG_GROUP;
    /* FNV-1a of the instance name: a mark, not a secret */
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = cfg->instance ? cfg->instance : "skiff"; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ULL;
    snprintf(n->owner, sizeof(n->owner), "owner-%016llx", (unsigned long long)h);
    n->on_active = cfg->on_active;
    n->on_setup = cfg->on_setup;
    n->ctx = cfg->ctx;
    n->by_slot = xcalloc(n->n_slots, sizeof(*n->by_slot));
    n->group_by_index = xcalloc(n->n_groups, sizeof(*n->group_by_index));
    *out = n;
    return 0;
}

static void sb_free(struct net_sb *s)
{
    for (size_t i = 0; i < s->n_learned; i++)
        free(s->learned[i].name);
    free(s->learned);
    if (s->log != NULL)
        for (size_t i = 0; i < SK_NET_LOG_MAX; i++)
            free(s->log[i].name);
    free(s->log);
    free(s->name);
    sk_net_policy_release(&s->policy);
    free(s);
}

static void group_free(struct net_group *g)
{
    free(g->name);
    free(g);
}

void sk_net_free(struct sk_net *n)
{
    if (n == NULL)
        return;
    while (n->sandboxes != NULL) {
        struct net_sb *s = n->sandboxes;
        n->sandboxes = s->next;
        sb_free(s);
    }
    while (n->groups != NULL) {
        struct net_group *g = n->groups;
        n->groups = g->next;
        group_free(g);
    }
    free(n->by_slot);
    free(n->group_by_index);
    if (n->nflog != NULL)
        mnl_socket_close(n->nflog);
    sk_nft_free(n->nft);
    sk_rtnl_close(n->rtnl);
    if (n->home_fd >= 0)
        close(n->home_fd);
    free(n);
}

bool sk_net_is_active(const struct sk_net *n)
{
    return n->active;
}

void sk_net_resolver(const struct sk_net *n, struct sockaddr_in *out)
{
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(53);
    sk__net_resolver4(n, (uint8_t *)&out->sin_addr);
}

const struct sockaddr_storage *sk_net_upstreams(const struct sk_net *n, size_t *count)
{
    *count = n->n_upstreams;
    return n->upstreams;
}

/* ---- the host side ---------------------------------------------------------------------- */

static int nflog_open(struct sk_net *n, struct sk_error *err)
{
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (nl == NULL)
        return sk_error_set(err, errno, "open a netfilter netlink socket");
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        mnl_socket_close(nl);
        return sk_error_set(err, e, "bind a netfilter netlink socket");
    }
    /* Configured while blocking (two acknowledged requests), read from the
     * loop without blocking afterwards. */
    char buf[8192];
    for (uint32_t step = 0; step < 2; step++) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        nlh->nlmsg_seq = step + 1;
        struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
        nfg->nfgen_family = AF_UNSPEC;
        nfg->version = NFNETLINK_V0;
        nfg->res_id = htons(n->nflog_group);
        if (step == 0) {
            struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
            mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof(cmd), &cmd);
        } else {
            struct nfulnl_msg_config_mode mode = {.copy_range = htonl(NFLOG_SNAPLEN), .copy_mode = NFULNL_COPY_PACKET};
            mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof(mode), &mode);
            /* every denial at once (the default batches 100, or waits 1 s) */
            mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(1));
        }
        int r = -1;
        errno = 0;
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) >= 0) {
            ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof(buf));
            if (got >= 0)
                r = mnl_cb_run(buf, (size_t)got, step + 1, mnl_socket_get_portid(nl), NULL, NULL);
        }
        if (r < 0) {
            int e = errno ? errno : EIO;
            mnl_socket_close(nl);
            return sk_error_set(err, e, "bind netlink log group %u", (unsigned)n->nflog_group);
        }
    }
    int fd = mnl_socket_get_fd(nl);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        mnl_socket_close(nl);
        return sk_error_set(err, e, "make the netlink log socket non-blocking");
    }
    n->nflog = nl;
    return 0;
}

/* table_owner - whose is table inet T: 0 nobody's (there is none), 1
 * ours, -1 another instance's (an owner chain with another mark, or none). */
static int table_owner(struct sk_net *n)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "list table inet %s", n->table);
    json_t *j = NULL;
    struct sk_error e2 = {0};
    if (sk_nft_list(n->nft, cmd, &j, &e2) < 0) {
        sk_log_debug("table owner: %s", e2.msg);
        return 0;
    }
    int owner = -1;
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, "nftables"), i, it)
    {
        const char *name = json_string_value(json_object_get(json_object_get(it, "chain"), "name"));
        if (name != NULL && strcmp(name, n->owner) == 0)
            owner = 1;
    }
    json_decref(j);
    return owner;
}

/* activate - set up the host side once: forwarding, the resolver address,
 * the tables, the denial log. */
static int activate(struct sk_net *n, struct sk_error *err)
{
    if (n->active)
        return 0;
    int r;
    if (n->rtnl == NULL && (r = sk_rtnl_open(-1, -1, &n->rtnl, err)) < 0)
        return r;
    if (n->nft == NULL && (r = sk_nft_new(&n->nft, err)) < 0)
        return r;
    if (table_owner(n) < 0)
        return sk_error_setv(err, EBUSY,
                             "the nftables table 'inet %s' belongs to another skiffd in this network namespace (give "
                             "each its own --nft-table and --net-cidr)",
                             n->table);
    struct sk_nft_buf b = {0};
    sk__net_emit_base(n, &b);
    r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
    sk_nft_buf_release(&b);
    if (r < 0)
        return sk_error_prefix(err, "set up the nftables tables '%s'", n->table);
    r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1", err);
    if (r == 0 && n->v6)
        r = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1", err);
    if (r < 0)
        return sk_error_prefix(err, "enable forwarding");
    int lo = 0;
    uint8_t res[4];
    sk__net_resolver4(n, res);
    /* (lo is down only in a fresh namespace - a test's, a container's) */
    if ((r = sk_rtnl_link_index(n->rtnl, "lo", &lo, err)) < 0 || (r = sk_rtnl_link_up(n->rtnl, lo, err)) < 0 ||
        (r = sk_rtnl_addr_add(n->rtnl, lo, AF_INET, res, 32, err)) < 0)
        return sk_error_prefix(err, "put the resolver address on 'lo'");
    struct sk_error lerr = {0};
    if (n->nflog == NULL && nflog_open(n, &lerr) < 0)
        sk_log_warn("network denials will not be logged: %s", lerr.msg);
    if (n->n_upstreams == 0)
        sk_log_warn("no DNS upstream (none given with --dns-upstream, none in /etc/resolv.conf): sandboxes' "
                    "allowed names will not resolve");
    n->active = true;
    char c4[SK_NET_CIDR_STR_MAX], c6[SK_NET_CIDR_STR_MAX] = "off";
    sk_net_cidr_format(&n->cidr4, c4, sizeof(c4));
    if (n->v6)
        sk_net_cidr_format(&n->cidr6, c6, sizeof(c6));
    sk_log_info("sandbox networking up: table '%s', sandboxes %s and %s, %u address slots", n->table, c4, c6,
                n->n_slots - 1);
    if (n->on_active != NULL)
        n->on_active(n->ctx);
    return 0;
}

/* ---- one sandbox's chains -------------------------------------------------------------------- */

/* forget_learned - drop the sandbox's learned addresses for which `keep`
 * says no (all with keep NULL) from the sets and from memory. */
static void forget_learned(struct sk_net *n, struct net_sb *s,
                           bool (*keep)(const struct net_sb *, const struct learned *))
{
    struct sk_nft_buf b = {0};
    size_t k = 0;
    for (size_t i = 0; i < s->n_learned; i++) {
        struct learned *l = &s->learned[i];
        if (keep != NULL && keep(s, l)) {
            s->learned[k++] = *l;
            continue;
        }
        char a[INET6_ADDRSTRLEN];
        sk__net_fmt_addr(l->family, l->addr, a, sizeof(a));
        int fam = l->family == AF_INET ? 4 : 6;
        /* added (with a short timeout) first: it may have expired already */
        sk_nft_buf_add(&b, "add element inet %s dns%d { \"%s\" . %s timeout 1s }\n", n->table, fam, s->ifname, a);
        sk_nft_buf_add(&b, "delete element inet %s dns%d { \"%s\" . %s }\n", n->table, fam, s->ifname, a);
        free(l->name);
    }
    s->n_learned = k;
    if (b.len > 0 && n->nft != NULL) {
        struct sk_error err = {0};
        if (sk_nft_run(n->nft, sk_nft_buf_str(&b), &err) < 0)
            sk_log_warn("sandbox '%s': forget DNS answers: %s", s->id, err.msg);
    }
    sk_nft_buf_release(&b);
}

static bool learned_still_allowed(const struct net_sb *s, const struct learned *l)
{
    return l->name != NULL && sk_net_policy_allows_name(&s->policy, l->name);
}

/* ---- links and addresses --------------------------------------------------------------------- */

static int open_netns(pid_t pid, int *fd, struct sk_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return sk_error_set(err, errno, "open '%s'", path);
    return 0;
}

/* write_resolv - point the sandbox's /etc/resolv.conf at the forwarder (or
 * say there is none). A sandbox may rewrite the file; nothing depends on
 * it but its own convenience. */
static int write_resolv(struct sk_net *n, struct sk_agent *agent, bool has_dns, struct sk_error *err)
{
    if (agent == NULL)
        return 0;
    char text[256];
    if (has_dns) {
        uint8_t r4[4];
        char res[INET_ADDRSTRLEN];
        sk__net_resolver4(n, r4);
        sk__net_fmt_addr(AF_INET, r4, res, sizeof(res));
        snprintf(text, sizeof(text), RESOLV_EGRESS_FMT, res);
    } else {
        snprintf(text, sizeof(text), "%s", RESOLV_NONE);
    }
    int r = sk_agent_write_file(agent, "/etc/resolv.conf", text, strlen(text), 0644, err);
    if (r < 0)
        return sk_error_prefix(err, "write the sandbox's /etc/resolv.conf");
    return 0;
}

/* egress_links - the veth pair, its addresses and the sandbox's default
 * routes. With `existing`, a veth that is there already is kept (re-adopt). */
static int egress_links(struct sk_net *n, struct net_sb *s, int nsfd, bool existing, struct sk_error *err)
{
    int r = sk_rtnl_veth_add(n->rtnl, s->ifname, "eth0", nsfd, 0, err);
    if (r == -EEXIST && existing)
        r = 0;
    if (r < 0)
        return r;
    uint8_t gw4[4], sb4[4], gw6[16], sb6[16];
    sk__net_slot_v4(n, s->slot, 1, gw4);
    sk__net_slot_v4(n, s->slot, 2, sb4);
    if (n->v6) {
        sk__net_slot_v6(n, s->slot, 1, gw6);
        sk__net_slot_v6(n, s->slot, 2, sb6);
    }
    int host_if = 0;
    if ((r = sk_rtnl_link_index(n->rtnl, s->ifname, &host_if, err)) == 0)
        s->host_if = host_if; /* the denials the kernel logs name it */
    if (r < 0 || (r = sk_rtnl_addr_add(n->rtnl, host_if, AF_INET, gw4, 30, err)) < 0)
        return r;
    if (n->v6 && (r = sk_rtnl_addr_add(n->rtnl, host_if, AF_INET6, gw6, 64, err)) < 0)
        return r;
    struct sk_rtnl *in = NULL;
    if ((r = sk_rtnl_open(nsfd, n->home_fd, &in, err)) < 0)
        return r;
    int sb_if = 0;
    if ((r = sk_rtnl_link_index(in, "eth0", &sb_if, err)) == 0 && (r = sk_rtnl_link_up(in, sb_if, err)) == 0 &&
        (r = sk_rtnl_addr_add(in, sb_if, AF_INET, sb4, 30, err)) == 0 &&
        (r = sk_rtnl_route_add(in, AF_INET, NULL, 0, gw4, sb_if, err)) == 0 && n->v6) {
        r = sk_rtnl_addr_add(in, sb_if, AF_INET6, sb6, 64, err);
        if (r == -EACCES || r == -EPERM) {
            /* IPv6 is disabled in there (disable_ipv6): IPv4 only. */
            sk_log_info("sandbox '%s': IPv6 is disabled inside; IPv4 only", s->id);
            r = 0;
        } else if (r == 0) {
            r = sk_rtnl_route_add(in, AF_INET6, NULL, 0, gw6, sb_if, err);
        }
    }
    sk_rtnl_close(in);
    return r;
}

/* ---- groups ------------------------------------------------------------------------------------ */

static struct net_group *find_group(struct sk_net *n, const char *name)
{
    for (struct net_group *g = n->groups; g != NULL; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

/* group_get - the group `name`, made (bridge, address, rules) when it does
 * not exist; `index` >= 0 asks for that number (re-adoption). */
static int group_get(struct sk_net *n, const char *name, long index, struct net_group **out, struct sk_error *err)
{
    struct net_group *g = find_group(n, name);
    if (g != NULL) {
        if (index >= 0 && (uint32_t)index != g->index)
            return sk_error_setv(err, EINVAL, "network group '%s' has number %u, not %ld", name, g->index, index);
        *out = g;
        return 0;
    }
    uint32_t idx = 0;
    if (index >= 0) {
        if ((uint32_t)index >= n->n_groups || n->group_by_index[index] != NULL)
            return sk_error_setv(err, EBUSY, "network group number %ld is not free", index);
        idx = (uint32_t)index;
    } else {
        while (idx < n->n_groups && n->group_by_index[idx] != NULL)
            idx++;
        if (idx == n->n_groups)
            return sk_error_setv(err, ENOSPC, "all %u network groups are in use", n->n_groups);
    }
    g = xcalloc(1, sizeof(*g));
    g->name = xstrdup(name);
    g->index = idx;
    snprintf(g->brname, sizeof(g->brname), "skbr%u", idx);
    int r = sk_rtnl_bridge_add(n->rtnl, g->brname, err);
    if (r == -EEXIST)
        r = 0; /* left over (or kept across a restart): reused */
    uint8_t gw[4];
    sk__net_group_v4(n, idx, 1, gw);
    if (r == 0 && (r = sk_rtnl_link_index(n->rtnl, g->brname, &g->br_ifindex, err)) == 0)
        r = sk_rtnl_addr_add(n->rtnl, g->br_ifindex, AF_INET, gw, 24, err);
    if (r == 0) {
        struct sk_nft_buf b = {0};
        sk_nft_buf_add(&b, "add element inet %s grp_brs { \"%s\" }\n", n->table, g->brname);
        sk_nft_buf_add(&b, "add element inet %s grp_same { \"%s\" . \"%s\" }\n", n->table, g->brname, g->brname);
        r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
        sk_nft_buf_release(&b);
    }
    if (r < 0) {
        sk_rtnl_link_del(n->rtnl, g->brname, NULL);
        group_free(g);
        return sk_error_prefix(err, "network group '%s'", name);
    }
    g->next = n->groups;
    n->groups = g;
    n->group_by_index[idx] = g;
    n->stats.groups++;
    *out = g;
    return 0;
}

static void group_put(struct sk_net *n, struct net_group *g)
{
    if (g->n_members > 0)
        return;
    struct sk_nft_buf b = {0};
    const char *T = n->table;
    sk_nft_buf_add(&b, "add element inet %s grp_brs { \"%s\" }\ndelete element inet %s grp_brs { \"%s\" }\n", T,
                   g->brname, T, g->brname);
    sk_nft_buf_add(&b,
                   "add element inet %s grp_same { \"%s\" . \"%s\" }\ndelete element inet %s grp_same { \"%s\" . "
                   "\"%s\" }\n",
                   T, g->brname, g->brname, T, g->brname, g->brname);
    struct sk_error err = {0};
    if (sk_nft_run(n->nft, sk_nft_buf_str(&b), &err) < 0)
        sk_log_warn("network group '%s': %s", g->name, err.msg);
    sk_nft_buf_release(&b);
    if (sk_rtnl_link_del(n->rtnl, g->brname, &err) < 0 && err.code != ENODEV)
        sk_log_warn("network group '%s': %s", g->name, err.msg);
    for (struct net_group **pp = &n->groups; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    n->group_by_index[g->index] = NULL;
    n->stats.groups--;
    group_free(g);
}

/* group_join - make s a member of group `name` (member number `member` > 0
 * when re-adopting): its address, the bridge rules, then its veth. */
static int group_join(struct sk_net *n, struct net_sb *s, const char *name, long index, long member, int nsfd,
                      bool existing, struct sk_error *err)
{
    struct net_group *g = NULL;
    int r = group_get(n, name, index, &g, err);
    if (r < 0)
        return r;
    uint32_t m = 0;
    if (member > 0) {
        if (member < 2 || member > GROUP_MEMBERS + 1 || (g->members[member] != NULL && g->members[member] != s)) {
            group_put(n, g);
            return sk_error_setv(err, EBUSY, "network group '%s': member address %ld is not free", name, member);
        }
        m = (uint32_t)member;
    } else {
        for (m = 2; m <= GROUP_MEMBERS + 1 && g->members[m] != NULL; m++)
            ;
        if (m > GROUP_MEMBERS + 1) {
            group_put(n, g);
            return sk_error_setv(err, ENOSPC, "network group '%s' has %d members already", name, GROUP_MEMBERS);
        }
    }
    s->group = g;
    s->member = m;
    g->members[m] = s;
    g->n_members++;
    snprintf(s->gifname, sizeof(s->gifname), "sg%.12s", s->hex);
    struct sk_nft_buf b = {0};
    sk__net_emit_member(&b, n, s, true);
    r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
    sk_nft_buf_release(&b);
    if (r == 0) {
        r = sk_rtnl_veth_add(n->rtnl, s->gifname, "eth1", nsfd, g->br_ifindex, err);
        if (r == -EEXIST && existing)
            r = 0;
    }
    if (r == 0) {
        struct sk_rtnl *in = NULL;
        uint8_t a[4], gw[4], res[4];
        sk__net_group_v4(n, g->index, m, a);
        sk__net_group_v4(n, g->index, 1, gw);
        sk__net_resolver4(n, res);
        int ifx = 0;
        if ((r = sk_rtnl_open(nsfd, n->home_fd, &in, err)) == 0 &&
            (r = sk_rtnl_link_index(in, "eth1", &ifx, err)) == 0 && (r = sk_rtnl_link_up(in, ifx, err)) == 0)
            r = sk_rtnl_addr_add(in, ifx, AF_INET, a, 24, err);
        /* The forwarder is reached through the bridge (a sandbox with
         * egress reaches it through its default route as well). */
        if (r == 0)
            r = sk_rtnl_route_add(in, AF_INET, res, 32, gw, ifx, err);
        sk_rtnl_close(in);
    }
    if (r < 0) {
        sk_error_prefix(err, "network group '%s'", name);
        struct sk_nft_buf u = {0};
        sk__net_emit_member(&u, n, s, false);
        sk_nft_run(n->nft, sk_nft_buf_str(&u), NULL);
        sk_nft_buf_release(&u);
        sk_rtnl_link_del(n->rtnl, s->gifname, NULL);
        g->members[m] = NULL;
        g->n_members--;
        s->group = NULL;
        group_put(n, g);
    }
    return r;
}

static void group_leave(struct sk_net *n, struct net_sb *s, bool gone)
{
    struct net_group *g = s->group;
    if (g == NULL)
        return;
    struct sk_nft_buf b = {0};
    sk__net_emit_member(&b, n, s, false);
    struct sk_error err = {0};
    if (sk_nft_run(n->nft, sk_nft_buf_str(&b), &err) < 0)
        sk_log_warn("sandbox '%s': leave network group: %s", s->id, err.msg);
    sk_nft_buf_release(&b);
    if (!gone && sk_rtnl_link_del(n->rtnl, s->gifname, &err) < 0 && err.code != ENODEV)
        sk_log_warn("sandbox '%s': %s", s->id, err.msg);
    g->members[s->member] = NULL;
    g->n_members--;
    s->group = NULL;
    group_put(n, g);
}

/* ---- egress on and off ---------------------------------------------------------------------- */

static uint32_t new_gen(const struct net_sb *s)
{
    uint32_t g = 0;
    while (g == 0 || g == s->gen)
        if (getentropy(&g, sizeof(g)) < 0)
            g = (uint32_t)sk_now_ns() | 1;
    return g;
}

/* egress_on - slot (given > 0 when re-adopting), chains, then links. */
static int egress_on(struct sk_net *n, struct net_sb *s, long slot, int nsfd, bool existing, struct sk_error *err)
{
    uint32_t sl = 0;
    if (slot > 0) {
        if ((uint32_t)slot >= n->n_slots || (n->by_slot[slot] != NULL && n->by_slot[slot] != s))
            return sk_error_setv(err, EBUSY, "address slot %ld is not free", slot);
        sl = (uint32_t)slot;
    } else {
        /* The lowest free slot from a rotating start, so that a slot just
         * freed is not handed out again at once. */
        uint32_t next = n->next_slot > 0 ? n->next_slot : 1;
        for (uint32_t i = 0; i < n->n_slots - 1 && sl == 0; i++) {
            uint32_t c = 1 + (next - 1 + i) % (n->n_slots - 1);
            if (n->by_slot[c] == NULL)
                sl = c;
        }
        if (sl == 0)
            return sk_error_setv(err, ENOSPC, "all %u sandbox address slots are in use", n->n_slots - 1);
        n->next_slot = sl + 1;
    }
    char ifname[16];
    snprintf(ifname, sizeof(ifname), "sk%.12s", s->hex);
    /* 48 bits of a random id: two live sandboxes sharing them is a one in
     * 10^14 event per pair - refused, not confused */
    for (const struct net_sb *o = n->sandboxes; o != NULL; o = o->next)
        if (o != s && strcmp(o->ifname, ifname) == 0)
            return sk_error_setv(err, EEXIST, "sandbox '%s' has interface '%s' already", o->id, ifname);
    s->slot = sl;
    n->by_slot[sl] = s;
    snprintf(s->ifname, sizeof(s->ifname), "%s", ifname);
    if (s->gen == 0)
        s->gen = new_gen(s);
    /* Its elements first (the shared chains then know the interface), the
     * link after: it never passes a packet without its policy. */
    struct sk_nft_buf b = {0};
    sk__net_emit_sandbox(&b, n, s, true);
    if (existing) /* re-adopted: its elements may be there already; its caps chains are rewritten */
        sk__net_emit_policy(&b, n, s, &s->policy, s->gen, false);
    sk__net_emit_policy(&b, n, s, &s->policy, s->gen, true);
    int r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
    sk_nft_buf_release(&b);
    if (r == 0)
        r = egress_links(n, s, nsfd, existing, err);
    if (r < 0) {
        struct sk_nft_buf u = {0};
        sk__net_emit_policy(&u, n, s, &s->policy, s->gen, false);
        sk__net_emit_sandbox(&u, n, s, false);
        sk_nft_run(n->nft, sk_nft_buf_str(&u), NULL);
        sk_nft_buf_release(&u);
        sk_rtnl_link_del(n->rtnl, s->ifname, NULL);
        n->by_slot[sl] = NULL;
        s->slot = 0;
        s->ifname[0] = '\0';
        return sk_error_prefix(err, "egress");
    }
    n->stats.egress++;
    return 0;
}

/* egress_off - remove the sandbox's egress; with `gone` its namespace is
 * going away and takes the veth with it (deleting a link waits for the
 * kernel's RCU grace periods, tens of milliseconds that need not be spent
 * on the loop). */
static void egress_off(struct sk_net *n, struct net_sb *s, const struct sk_net_policy *applied, bool gone)
{
    if (s->slot == 0)
        return;
    struct sk_error err = {0};
    /* The link first: once it is gone nothing passes the chains any more. */
    if (!gone && sk_rtnl_link_del(n->rtnl, s->ifname, &err) < 0 && err.code != ENODEV)
        sk_log_warn("sandbox '%s': %s", s->id, err.msg);
    forget_learned(n, s, NULL);
    struct sk_nft_buf b = {0};
    sk__net_emit_policy(&b, n, s, applied, s->gen, false);
    sk__net_emit_sandbox(&b, n, s, false);
    if (sk_nft_run(n->nft, sk_nft_buf_str(&b), &err) < 0)
        sk_log_warn("sandbox '%s': remove its rules: %s", s->id, err.msg);
    sk_nft_buf_release(&b);
    n->by_slot[s->slot] = NULL;
    s->slot = 0;
    s->ifname[0] = '\0';
    n->stats.egress--;
}

/* ---- attach, update, detach --------------------------------------------------------------------- */

int sk_net_check_policy(const struct sk_net *n, const struct sk_net_policy *p, struct sk_error *err)
{
    for (size_t i = 0; i < p->n_allow_cidrs; i++) {
        const struct sk_net_cidr *c = &p->allow_cidrs[i];
        char s[SK_NET_CIDR_STR_MAX];
        sk_net_cidr_format(c, s, sizeof(s));
        if (sk_net_cidr_contains(&n->cidr4, c) || sk_net_cidr_contains(&n->group4, c) ||
            (n->v6 && sk_net_cidr_contains(&n->cidr6, c)))
            return sk_error_setv(err, EINVAL,
                                 "network.allow_cidrs[%zu]: %s lies in skiff's own sandbox addresses, which are never "
                                 "reachable (connect sandboxes with a network_group)",
                                 i, s);
        if (c->family == AF_INET6 && !n->v6)
            return sk_error_setv(err, EINVAL,
                                 "network.allow_cidrs[%zu]: %s is IPv6, and sandbox IPv6 is off on this server", i, s);
    }
    return 0;
}

static json_t *state_json(const struct net_sb *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "policy", sk_net_policy_json(&s->policy));
    if (s->slot > 0)
        json_object_set_new(o, "slot", json_integer(s->slot));
    json_object_set_new(o, "gen", json_integer(s->gen));
    if (s->group != NULL) {
        json_object_set_new(o, "group_index", json_integer(s->group->index));
        json_object_set_new(o, "group_member", json_integer(s->member));
    }
    return o;
}

static struct net_sb *sb_new(const char *id, const char *name, const struct sk_net_policy *p)
{
    struct net_sb *s = xcalloc(1, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->hex, sizeof(s->hex), "%s", id + 3);
    s->name = name ? xstrdup(name) : NULL;
    sk_net_policy_copy(&s->policy, p);
    return s;
}

static void sb_link(struct sk_net *n, struct net_sb *s)
{
    s->next = n->sandboxes;
    n->sandboxes = s;
    n->stats.attached++;
}

static void sb_unlink(struct sk_net *n, struct net_sb *s)
{
    for (struct net_sb **pp = &n->sandboxes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            n->stats.attached--;
            return;
        }
    }
}

/* setup - bring s to its policy: egress and group as asked (slot, index and
 * member > 0 when re-adopting what exists). */
static int setup(struct sk_net *n, struct net_sb *s, pid_t pid, struct sk_agent *agent, long slot, long gindex,
                 long member, bool existing, struct sk_error *err)
{
    const struct sk_net_policy *p = &s->policy;
    if (!p->egress && p->group == NULL)
        return 0;
    int64_t t0 = sk_now_ns();
    int r = activate(n, err);
    if (r < 0)
        return r;
    _cleanup_close_ int nsfd = -1;
    if ((r = open_netns(pid, &nsfd, err)) < 0)
        return r;
    if (p->egress && (r = egress_on(n, s, slot, nsfd, existing, err)) < 0)
        return r;
    if (p->group != NULL && (r = group_join(n, s, p->group, gindex, member, nsfd, existing, err)) < 0) {
        egress_off(n, s, &s->policy, false);
        return r;
    }
    if (!existing && (r = write_resolv(n, agent, true, err)) < 0) {
        group_leave(n, s, false);
        egress_off(n, s, &s->policy, false);
        return r;
    }
    if (n->on_setup != NULL)
        n->on_setup(n->ctx, (double)(sk_now_ns() - t0) / 1e9);
    return 0;
}

int sk_net_attach(struct sk_net *n, const char *id, const char *name, pid_t pid, struct sk_agent *agent,
                  const struct sk_net_policy *p, json_t **state, struct sk_error *err)
{
    *state = NULL;
    if (!valid_id(id))
        return sk_error_setv(err, EINVAL, "'%s' is not a sandbox id", id);
    if (find_sb(n, id) != NULL)
        return sk_error_setv(err, EEXIST, "sandbox '%s' has a network already", id);
    int r = sk_net_check_policy(n, p, err);
    if (r < 0)
        return r;
    struct net_sb *s = sb_new(id, name, p);
    r = setup(n, s, pid, agent, 0, -1, 0, false, err);
    if (r < 0) {
        sb_free(s);
        return r;
    }
    sb_link(n, s);
    *state = state_json(s);
    return 0;
}

int sk_net_readopt(struct sk_net *n, const char *id, const char *name, pid_t pid, const json_t *state,
                   struct sk_error *err)
{
    if (!valid_id(id))
        return sk_error_setv(err, EINVAL, "'%s' is not a sandbox id", id);
    if (find_sb(n, id) != NULL)
        return sk_error_setv(err, EEXIST, "sandbox '%s' has a network already", id);
    struct sk_net_policy p = {0};
    int r = sk_net_policy_from_json(json_object_get(state, "policy"), &p, err);
    if (r < 0)
        return sk_error_prefix(err, "sandbox '%s': its stored network state", id);
    struct net_sb *s = sb_new(id, name, &p);
    sk_net_policy_release(&p);
    json_t *gen = json_object_get(state, "gen");
    s->gen = json_is_integer(gen) ? (uint32_t)json_integer_value(gen) : 0;
    json_t *slot = json_object_get(state, "slot"), *gi = json_object_get(state, "group_index"),
           *gm = json_object_get(state, "group_member");
    r = setup(n, s, pid, NULL, json_is_integer(slot) ? (long)json_integer_value(slot) : 0,
              json_is_integer(gi) ? (long)json_integer_value(gi) : -1,
              json_is_integer(gm) ? (long)json_integer_value(gm) : 0, true, err);
    if (r < 0) {
        sb_free(s);
        return sk_error_prefix(err, "sandbox '%s': re-attach its network", id);
    }
    sb_link(n, s);
    return 0;
}

int sk_net_update(struct sk_net *n, const char *id, pid_t pid, struct sk_agent *agent, const struct sk_net_policy *p,
                  json_t **state, struct sk_error *err)
{
    *state = NULL;
    struct net_sb *s = find_sb(n, id);
    if (s == NULL)
        return sk_error_setv(err, ENOENT, "sandbox '%s' has no network state here", id);
    if ((p->group == NULL) != (s->policy.group == NULL) || (p->group != NULL && strcmp(p->group, s->policy.group) != 0))
        return sk_error_setv(err, EINVAL, "network_group cannot change while the sandbox runs");
    int r = sk_net_check_policy(n, p, err);
    if (r < 0)
        return r;
    bool was = s->policy.egress;
    struct sk_net_policy old = {0};
    sk_net_policy_copy(&old, &s->policy);
    sk_net_policy_copy(&s->policy, p);
    if (p->egress && !was) {
        int64_t t0 = sk_now_ns();
        if ((r = activate(n, err)) == 0) {
            _cleanup_close_ int nsfd = -1;
            if ((r = open_netns(pid, &nsfd, err)) == 0)
                r = egress_on(n, s, 0, nsfd, false, err);
        }
        if (r == 0 && s->group == NULL)
            r = write_resolv(n, agent, true, err);
        if (r < 0)
            egress_off(n, s, &s->policy, false);
        else if (n->on_setup != NULL)
            n->on_setup(n->ctx, (double)(sk_now_ns() - t0) / 1e9);
    } else if (!p->egress && was) {
        egress_off(n, s, &old, false);
        if (s->group == NULL)
            r = write_resolv(n, agent, false, err);
    } else if (p->egress) {
        /* A new generation: every open connection is checked again at its
         * next packet, against the new policy, in one transaction. */
        uint32_t old_gen = s->gen;
        s->gen = new_gen(s);
        struct sk_nft_buf b = {0};
        sk__net_emit_policy(&b, n, s, &old, old_gen, false);
        sk__net_emit_policy(&b, n, s, &s->policy, s->gen, true);
        r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
        sk_nft_buf_release(&b);
        if (r == 0)
            forget_learned(n, s, learned_still_allowed);
        else
            s->gen = old_gen;
    }
    if (r < 0) {
        sk_net_policy_copy(&s->policy, &old);
        sk_net_policy_release(&old);
        return r;
    }
    sk_net_policy_release(&old);
    *state = state_json(s);
    return 0;
}

void sk_net_detach(struct sk_net *n, const char *id, bool gone)
{
    struct net_sb *s = find_sb(n, id);
    if (s == NULL)
        return;
    group_leave(n, s, gone);
    egress_off(n, s, &s->policy, gone);
    sb_unlink(n, s);
    sb_free(s);
}

/* ---- sweep and teardown -------------------------------------------------------------------------- */

static bool is_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    return s[len] == '\0';
}

static bool link_owned(const struct sk_net *n, const char *name)
{
    for (const struct net_sb *s = n->sandboxes; s != NULL; s = s->next)
        if (strcmp(s->ifname, name) == 0 || (s->group != NULL && strcmp(s->gifname, name) == 0))
            return true;
    for (const struct net_group *g = n->groups; g != NULL; g = g->next)
        if (strcmp(g->brname, name) == 0)
            return true;
    return false;
}

static bool is_our_link(const char *name)
{
    if ((strncmp(name, "sk", 2) == 0 || strncmp(name, "sg", 2) == 0) && strlen(name) == 14 && is_hex(name + 2, 12))
        return true;
    if (strncmp(name, "skbr", 4) == 0 && name[4] != '\0') {
        for (const char *p = name + 4; *p; p++)
            if (!isdigit((unsigned char)*p))
                return false;
        return true;
    }
    return false;
}

/* caps_chain_current - chain `name` holds the caps of an attached
 * sandbox under its current generation. */
static bool caps_chain_current(const struct sk_net *n, const char *name)
{
    for (const struct net_sb *s = n->sandboxes; s != NULL; s = s->next) {
        if (s->slot == 0 || (s->policy.bandwidth_mbps == 0 && s->policy.max_connections == 0))
            continue;
        char o[64], i[64];
        snprintf(o, sizeof(o), "sb-%s-capo-%08x", s->hex, s->gen);
        snprintf(i, sizeof(i), "sb-%s-capi-%08x", s->hex, s->gen);
        if (strcmp(name, o) == 0 || strcmp(name, i) == 0)
            return true;
    }
    return false;
}

/* sweep_nft - in one transaction: the per-sandbox sets and maps emptied
 * and filled again with the elements of the attached sandboxes, the caps
 * chains nobody uses removed, DNS answers and group elements of interfaces
 * no sandbox owns removed. Returns how many chains went. */
static int sweep_nft(struct sk_net *n, struct sk_error *err)
{
    json_t *j = NULL;
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "list table inet %s", n->table);
    int r = sk_nft_list(n->nft, cmd, &j, err);
    if (r < 0)
        return r;
    struct sk_nft_buf b = {0};
    int removed = 0;
    sk__net_emit_flush_sandbox_sets(&b, n);
    for (const struct net_sb *s = n->sandboxes; s != NULL; s = s->next) {
        if (s->slot == 0)
            continue;
        sk__net_emit_sandbox(&b, n, s, true);
        sk__net_emit_policy(&b, n, s, &s->policy, s->gen, true);
    }
    json_t *items = json_object_get(j, "nftables");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        json_t *obj = json_object_get(it, "set");
        const char *sname = json_string_value(json_object_get(obj, "name"));
        if (obj == NULL || sname == NULL)
            continue;
        bool dns = strcmp(sname, "dns4") == 0 || strcmp(sname, "dns6") == 0;
        bool grp = strcmp(sname, "grp_brs") == 0 || strcmp(sname, "grp_same") == 0;
        if (!dns && !grp)
            continue;
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(obj, "elem"), k, e)
        {
            json_t *val = json_object_get(e, "elem") != NULL ? json_object_get(json_object_get(e, "elem"), "val") : e;
            json_t *concat = json_object_get(val, "concat");
            const char *ifn =
                json_is_string(val) ? json_string_value(val) : json_string_value(json_array_get(concat, 0));
            if (ifn == NULL || link_owned(n, ifn))
                continue;
            if (dns) {
                const char *a = json_string_value(json_array_get(concat, 1));
                if (a != NULL)
                    sk_nft_buf_add(&b,
                                   "add element inet %s %s { \"%s\" . %s timeout 1s }\ndelete element inet %s %s { "
                                   "\"%s\" . %s }\n",
                                   n->table, sname, ifn, a, n->table, sname, ifn, a);
            } else if (strcmp(sname, "grp_brs") == 0) {
                sk_nft_buf_add(&b, "delete element inet %s grp_brs { \"%s\" }\n", n->table, ifn);
            } else {
                sk_nft_buf_add(&b, "delete element inet %s grp_same { \"%s\" . \"%s\" }\n", n->table, ifn, ifn);
            }
        }
    }
    /* chains last: nothing refers to them once the caps maps are refilled */
    json_array_foreach(items, i, it)
    {
        const char *cname = json_string_value(json_object_get(json_object_get(it, "chain"), "name"));
        char hex[17];
        if (cname == NULL || !sk__net_is_caps_chain(cname, hex) || caps_chain_current(n, cname))
            continue;
        sk_nft_buf_add(&b, "flush chain inet %s %s\ndelete chain inet %s %s\n", n->table, cname, n->table, cname);
        removed++;
    }
    json_decref(j);
    if (b.len > 0)
        r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
    sk_nft_buf_release(&b);
    if (r < 0)
        return r;

    /* the bridge table's elements */
    snprintf(cmd, sizeof(cmd), "list table bridge %s", n->table);
    struct sk_error e2 = {0};
    if (sk_nft_list(n->nft, cmd, &j, &e2) == 0) {
        struct sk_nft_buf u = {0};
        json_array_foreach(json_object_get(j, "nftables"), i, it)
        {
            json_t *obj = json_object_get(it, "set");
            const char *sname = json_string_value(json_object_get(obj, "name"));
            if (obj == NULL || sname == NULL)
                continue;
            size_t k;
            json_t *e;
            json_array_foreach(json_object_get(obj, "elem"), k, e)
            {
                json_t *concat = json_object_get(e, "concat");
                const char *ifn =
                    json_is_string(e) ? json_string_value(e) : json_string_value(json_array_get(concat, 0));
                if (ifn == NULL || link_owned(n, ifn))
                    continue;
                if (json_is_string(e))
                    sk_nft_buf_add(&u, "delete element bridge %s %s { \"%s\" }\n", n->table, sname, ifn);
                else if (json_string_value(json_array_get(concat, 1)) != NULL)
                    sk_nft_buf_add(&u, "delete element bridge %s %s { \"%s\" . %s }\n", n->table, sname, ifn,
                                   json_string_value(json_array_get(concat, 1)));
            }
        }
        json_decref(j);
        if (u.len > 0 && sk_nft_run(n->nft, sk_nft_buf_str(&u), &e2) < 0)
            sk_log_warn("network sweep: %s", e2.msg);
        sk_nft_buf_release(&u);
    }
    return removed;
}

/* in_use - some sandbox has kernel state (egress or a group). */
static bool in_use(const struct sk_net *n)
{
    for (const struct net_sb *s = n->sandboxes; s != NULL; s = s->next)
        if (s->slot > 0 || s->group != NULL)
            return true;
    return false;
}

static bool table_exists(struct sk_net *n, const char *family)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "list table %s %s", family, n->table);
    json_t *j = NULL;
    if (sk_nft_list(n->nft, cmd, &j, NULL) < 0)
        return false;
    json_decref(j);
    return true;
}

int sk_net_sweep(struct sk_net *n, struct sk_error *err)
{
    int r;
    if (n->nft == NULL) {
        struct sk_error e2 = {0};
        if (sk_nft_new(&n->nft, &e2) < 0)
            return 0; /* no nftables: nothing of ours can be there */
    }
    /* Only what our own table says is ours: another skiffd in this
     * namespace (a table of its own) is left alone, and without a table
     * nothing was ever set up. */
    int owner = table_owner(n);
    if (owner < 0)
        sk_log_info("network sweep: table 'inet %s' belongs to another skiffd; left alone", n->table);
    if (owner <= 0)
        return 0;
    if (n->rtnl == NULL && (r = sk_rtnl_open(-1, -1, &n->rtnl, err)) < 0)
        return r;
    char **names = NULL;
    if ((r = sk_rtnl_link_names(n->rtnl, &names, err)) < 0)
        return r;
    int removed = 0;
    for (size_t i = 0; names[i] != NULL; i++) {
        if (!is_our_link(names[i]) || link_owned(n, names[i]))
            continue;
        struct sk_error e2 = {0};
        if (sk_rtnl_link_del(n->rtnl, names[i], &e2) == 0)
            removed++;
        else if (e2.code != ENODEV) /* a veth goes with its peer's namespace */
            sk_log_warn("network sweep: %s", e2.msg);
    }
    sk_rtnl_names_free(names);
    r = sweep_nft(n, err);
    if (r < 0)
        return r;
    removed += r;
    if (!in_use(n)) {
        struct sk_error e2 = {0};
        if (sk_net_teardown(n, &e2) < 0)
            sk_log_warn("network sweep: %s", e2.msg);
    }
    if (removed > 0)
        sk_log_info("network sweep: %d leftover(s) removed", removed);
    return removed;
}

int sk_net_teardown(struct sk_net *n, struct sk_error *err)
{
    if (in_use(n))
        return sk_error_setv(err, EBUSY, "sandboxes still have networks");
    int r;
    if (n->rtnl == NULL && (r = sk_rtnl_open(-1, -1, &n->rtnl, err)) < 0)
        return r;
    if (n->nft == NULL && sk_nft_new(&n->nft, NULL) < 0)
        n->nft = NULL;
    if (n->nft == NULL || table_owner(n) <= 0)
        return 0; /* nothing of ours (or another skiffd's) */
    static const char *const families[] = {"inet", "bridge"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(families); i++) {
        if (!table_exists(n, families[i]))
            continue;
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "delete table %s %s\n", families[i], n->table);
        if ((r = sk_nft_run(n->nft, cmd, err)) < 0)
            return r;
    }
    char **names = NULL;
    if (sk_rtnl_link_names(n->rtnl, &names, NULL) == 0) {
        for (size_t i = 0; names[i] != NULL; i++)
            if (is_our_link(names[i]))
                sk_rtnl_link_del(n->rtnl, names[i], NULL);
        sk_rtnl_names_free(names);
    }
    int lo = 0;
    uint8_t res[4];
    sk__net_resolver4(n, res);
    if (sk_rtnl_link_index(n->rtnl, "lo", &lo, NULL) == 0)
        sk_rtnl_addr_del(n->rtnl, lo, AF_INET, res, 32, NULL);
    if (n->active)
        sk_log_info("sandbox networking down: table '%s' removed", n->table);
    n->active = false;
    return 0;
}

/* ---- status ----------------------------------------------------------------------------------------- */

static const char *proto_name(uint8_t p, char *buf, size_t size)
{
    switch (p) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmpv6";
    default: snprintf(buf, size, "%u", (unsigned)p); return buf;
    }
}

json_t *sk_net_status(struct sk_net *n, const char *id)
{
    struct net_sb *s = find_sb(n, id);
    if (s == NULL)
        return NULL;
    json_t *o = json_object();
    json_t *addrs = json_object();
    char buf[INET6_ADDRSTRLEN];
    uint8_t a[16];
    if (s->slot > 0) {
        json_object_set_new(o, "interface", json_string(s->ifname));
        sk__net_slot_v4(n, s->slot, 2, a);
        sk__net_fmt_addr(AF_INET, a, buf, sizeof(buf));
        json_object_set_new(addrs, "ipv4", json_string(buf));
        sk__net_slot_v4(n, s->slot, 1, a);
        sk__net_fmt_addr(AF_INET, a, buf, sizeof(buf));
        json_object_set_new(addrs, "gateway", json_string(buf));
        if (n->v6) {
            sk__net_slot_v6(n, s->slot, 2, a);
            sk__net_fmt_addr(AF_INET6, a, buf, sizeof(buf));
            json_object_set_new(addrs, "ipv6", json_string(buf));
        }
    } else {
        json_object_set_new(o, "interface", json_null());
    }
    if (s->group != NULL) {
        sk__net_group_v4(n, s->group->index, s->member, a);
        sk__net_fmt_addr(AF_INET, a, buf, sizeof(buf));
        json_object_set_new(addrs, "group", json_string(buf));
    }
    if (s->slot > 0 || s->group != NULL) {
        sk__net_resolver4(n, a);
        sk__net_fmt_addr(AF_INET, a, buf, sizeof(buf));
        json_object_set_new(addrs, "dns", json_string(buf));
    }
    json_object_set_new(o, "addresses", addrs);
    json_object_set_new(
        o, "denied",
        json_pack("{s:I, s:I}", "connections", (json_int_t)s->denied_connections, "dns", (json_int_t)s->dns_refused));
    json_t *log = json_array();
    for (size_t k = 0; k < s->log_n; k++) {
        const struct log_entry *l = &s->log[(s->log_next + SK_NET_LOG_MAX - s->log_n + k) % SK_NET_LOG_MAX];
        json_t *e = json_object();
        json_object_set_new(e, "time", json_integer(l->time_ms));
        json_object_set_new(e, "kind", json_string(l->dns ? "dns" : "connection"));
        if (l->dns) {
            json_object_set_new(e, "name", json_string(l->name ? l->name : ""));
            json_object_set_new(e, "type", json_string(l->type));
        } else {
            char pb[8];
            sk__net_fmt_addr(l->family, l->addr, buf, sizeof(buf));
            json_object_set_new(e, "protocol", json_string(proto_name(l->proto, pb, sizeof(pb))));
            json_object_set_new(e, "destination", json_string(buf));
            json_object_set_new(e, "port", l->port ? json_integer(l->port) : json_null());
        }
        json_array_append_new(log, e);
    }
    json_object_set_new(o, "log", log);
    return o;
}

static struct log_entry *log_add(struct net_sb *s)
{
    if (s->log == NULL)
        s->log = xcalloc(SK_NET_LOG_MAX, sizeof(*s->log));
    struct log_entry *l = &s->log[s->log_next];
    free(l->name);
    memset(l, 0, sizeof(*l));
    s->log_next = (s->log_next + 1) % SK_NET_LOG_MAX;
    if (s->log_n < SK_NET_LOG_MAX)
        s->log_n++;
    l->time_ms = wall_ms();
    return l;
}

/* ---- DNS ---------------------------------------------------------------------------------------------- */

static struct net_sb *sb_by_source(struct sk_net *n, int family, const uint8_t *src)
{
    if (family == AF_INET && sk_net_cidr_has(&n->cidr4, AF_INET, src)) {
        uint32_t off = sk__net_offset4(&n->cidr4, src);
        uint32_t slot = off / 4;
        struct net_sb *s = slot < n->n_slots ? n->by_slot[slot] : NULL;
        return s != NULL && off % 4 == 2 ? s : NULL;
    }
    if (family == AF_INET && sk_net_cidr_has(&n->group4, AF_INET, src)) {
        uint32_t off = sk__net_offset4(&n->group4, src);
        struct net_group *g = off / 256 < n->n_groups ? n->group_by_index[off / 256] : NULL;
        uint32_t m = off % 256;
        return g != NULL && m >= 2 && m <= GROUP_MEMBERS + 1 ? g->members[m] : NULL;
    }
    return NULL;
}

void sk_net_dns_decide(struct sk_net *n, int family, const uint8_t *src, const struct sk_dns_query *q,
                       struct sk_net_dns_decision *d)
{
    memset(d, 0, sizeof(*d));
    struct net_sb *s = sb_by_source(n, family, src);
    if (s == NULL) {
        d->action = SK_NET_DNS_DROP;
        return;
    }
    snprintf(d->sandbox_id, sizeof(d->sandbox_id), "%s", s->id);
    /* Group members by name or id: answered here, never forwarded. */
    if (s->group != NULL && q->qclass == 1) {
        for (uint32_t m = 2; m <= GROUP_MEMBERS + 1; m++) {
            const struct net_sb *o = s->group->members[m];
            if (o == NULL)
                continue;
            bool match = strcmp(q->name, o->id) == 0;
            if (!match && o->name != NULL) {
                char lower[SK_NET_DOMAIN_MAX + 1];
                snprintf(lower, sizeof(lower), "%s", o->name);
                for (char *c = lower; *c; c++)
                    *c = (char)tolower((unsigned char)*c);
                match = strcmp(q->name, lower) == 0;
            }
            if (!match)
                continue;
            d->action = SK_NET_DNS_ANSWER;
            d->n_addrs = 1;
            d->addrs[0].family = AF_INET;
            d->addrs[0].ttl = 5;
            sk__net_group_v4(n, s->group->index, m, d->addrs[0].addr);
            n->stats.dns_group_answers++;
            return;
        }
    }
    if (q->qclass == 1 && n->n_upstreams > 0 && sk_net_policy_allows_name(&s->policy, q->name)) {
        d->action = SK_NET_DNS_FORWARD;
        n->stats.dns_forwarded++;
        return;
    }
    d->action = SK_NET_DNS_REFUSE;
    s->dns_refused++;
    n->stats.dns_refused++;
    struct log_entry *l = log_add(s);
    l->dns = true;
    l->name = xstrdup(q->name);
    snprintf(l->type, sizeof(l->type), "%s", q->type_name);
    sk_log_debug("sandbox '%s': DNS name '%s' (%s) refused", s->id, q->name, q->type_name);
}

int sk_net_dns_learn(struct sk_net *n, const char *sandbox_id, const struct sk_dns_query *q,
                     const struct sk_dns_addr *addrs, size_t n_addrs, struct sk_error *err)
{
    struct net_sb *s = find_sb(n, sandbox_id);
    if (s == NULL || s->slot == 0)
        return sk_error_setv(err, ENOENT, "sandbox '%s' has no egress", sandbox_id);
    if (sk_net_policy_is_open(&s->policy) || n_addrs == 0)
        return 0;
    int64_t now = sk_now_ns();
    struct sk_nft_buf b = {0};
    for (size_t i = 0; i < n_addrs; i++) {
        const struct sk_dns_addr *a = &addrs[i];
        if (a->family == AF_INET6 && !n->v6)
            continue;
        struct sk_net_cidr host = {.family = a->family, .prefix = a->family == AF_INET ? 32 : 128};
        memcpy(host.addr, a->addr, a->family == AF_INET ? 4 : 16);
        if (sk_net_cidr_is_special(&host))
            continue; /* no DNS rebinding into private ranges */
        uint32_t ttl = a->ttl < SK_NET_DNS_TTL_MIN   ? SK_NET_DNS_TTL_MIN
                       : a->ttl > SK_NET_DNS_TTL_MAX ? SK_NET_DNS_TTL_MAX
                                                     : a->ttl;
        struct learned *l = NULL;
        for (size_t k = 0; k < s->n_learned && l == NULL; k++)
            if (s->learned[k].family == a->family && memcmp(s->learned[k].addr, a->addr, 16) == 0)
                l = &s->learned[k];
        if (l == NULL) {
            /* make room: drop what expired */
            if (s->n_learned == SK_NET_LEARNED_MAX) {
                size_t k2 = 0;
                for (size_t k = 0; k < s->n_learned; k++) {
                    if (s->learned[k].expires_ns > now)
                        s->learned[k2++] = s->learned[k];
                    else
                        free(s->learned[k].name);
                }
                s->n_learned = k2;
            }
            if (s->n_learned == SK_NET_LEARNED_MAX) {
                sk_nft_buf_release(&b);
                return sk_error_setv(err, ENOSPC, "sandbox '%s' has %d allowed addresses already", s->id,
                                     SK_NET_LEARNED_MAX);
            }
            if (s->n_learned % 64 == 0)
                s->learned = xrealloc(s->learned, (s->n_learned + 64) * sizeof(*s->learned));
            l = &s->learned[s->n_learned++];
            memset(l, 0, sizeof(*l));
            l->family = a->family;
            memcpy(l->addr, a->addr, 16);
        }
        free(l->name);
        l->name = xstrdup(q->name);
        int64_t exp = now + (int64_t)ttl * 1000000000LL;
        if (exp > l->expires_ns)
            l->expires_ns = exp;
        char as[INET6_ADDRSTRLEN];
        sk__net_fmt_addr(a->family, a->addr, as, sizeof(as));
        sk_nft_buf_add(&b, "add element inet %s dns%d { \"%s\" . %s timeout %us }\n", n->table,
                       a->family == AF_INET ? 4 : 6, s->ifname, as, ttl);
    }
    int r = 0;
    if (b.len > 0)
        r = sk_nft_run(n->nft, sk_nft_buf_str(&b), err);
    sk_nft_buf_release(&b);
    return r;
}

/* ---- denials from nftables' log --------------------------------------------------------------------- */

struct nflog_pkt {
    const char *prefix;
    uint32_t indev; /* ifindex the packet came in on, 0: none */
    const uint8_t *payload;
    size_t len;
};

static int on_nflog_attr(const struct nlattr *attr, void *data)
{
    struct nflog_pkt *p = data;
    switch (mnl_attr_get_type(attr)) {
    case NFULA_PREFIX:
        if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
            p->prefix = mnl_attr_get_str(attr);
        break;
    case NFULA_PAYLOAD:
        p->payload = mnl_attr_get_payload(attr);
        p->len = mnl_attr_get_payload_len(attr);
        break;
    case NFULA_IFINDEX_INDEV:
        if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
            p->indev = ntohl(mnl_attr_get_u32(attr));
        break;
    default: break;
    }
    return MNL_CB_OK;
}

/* record_denial - the IP header (and the first bytes of TCP/UDP) of a
 * packet nftables refused, for the sandbox whose veth it came in on. */
static void record_denial(struct sk_net *n, const struct nflog_pkt *p)
{
    struct net_sb *s = NULL;
    for (struct net_sb *o = n->sandboxes; o != NULL && s == NULL && p->indev > 0; o = o->next)
        if (o->slot > 0 && o->host_if == (int)p->indev)
            s = o;
    if (s == NULL || p->payload == NULL || p->len < 1)
        return;
    const uint8_t *b = p->payload;
    struct log_entry e = {0};
    size_t l4 = 0;
    if ((b[0] >> 4) == 4 && p->len >= 20) {
        e.family = AF_INET;
        e.proto = b[9];
        memcpy(e.addr, b + 16, 4);
        l4 = (size_t)(b[0] & 0x0f) * 4;
    } else if ((b[0] >> 4) == 6 && p->len >= 40) {
        e.family = AF_INET6;
        e.proto = b[6];
        memcpy(e.addr, b + 24, 16);
        l4 = 40;
    } else {
        return;
    }
    if ((e.proto == 6 || e.proto == 17) && p->len >= l4 + 4)
        e.port = (uint16_t)(b[l4 + 2] << 8 | b[l4 + 3]);
    s->denied_connections++;
    n->stats.denied_connections++;
    struct log_entry *l = log_add(s);
    l->family = e.family;
    l->proto = e.proto;
    memcpy(l->addr, e.addr, 16);
    l->port = e.port;
    if (sk_log_enabled(SK_LOG_DEBUG)) {
        char as[INET6_ADDRSTRLEN], pb[8];
        sk__net_fmt_addr(e.family, e.addr, as, sizeof(as));
        sk_log_debug("sandbox '%s': %s to '%s' port %u denied", s->id, proto_name(e.proto, pb, sizeof(pb)), as,
                     (unsigned)e.port);
    }
}

static int on_nflog_msg(const struct nlmsghdr *nlh, void *data)
{
    struct sk_net *n = data;
    if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_ULOG || NFNL_MSG_TYPE(nlh->nlmsg_type) != NFULNL_MSG_PACKET)
        return MNL_CB_OK;
    struct nflog_pkt p = {0};
    if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), on_nflog_attr, &p) < 0 || p.prefix == NULL ||
        strcmp(p.prefix, SK__NET_LOG_PREFIX) != 0)
        return MNL_CB_OK;
    record_denial(n, &p);
    return MNL_CB_OK;
}

int sk_net_nflog_fd(const struct sk_net *n)
{
    return n->nflog != NULL ? mnl_socket_get_fd(n->nflog) : -1;
}

int sk_net_nflog_read(struct sk_net *n)
{
    if (n->nflog == NULL)
        return 0;
    uint64_t before = n->stats.denied_connections;
    char buf[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t got = mnl_socket_recvfrom(n->nflog, buf, sizeof(buf));
        if (got < 0) {
            if (errno == ENOBUFS) {
                sk_log_debug("network denial log: messages were lost (the socket overflowed)");
                continue;
            }
            break; /* EAGAIN, or nothing more to do */
        }
        mnl_cb_run(buf, (size_t)got, 0, 0, on_nflog_msg, n);
    }
    return (int)(n->stats.denied_connections - before);
}

void sk_net_get_stats(const struct sk_net *n, struct sk_net_stats *s)
{
    *s = n->stats;
}
