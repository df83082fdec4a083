/* rtnl.c - rtnetlink requests with libmnl (see rtnl.h). Messages are built
 * with libmnl's attribute helpers and answers read with mnl_cb_run; the
 * only payload looked into is the ifinfomsg header of a link and its
 * IFLA_IFNAME attribute. */
#include "net/rtnl.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"

#define RECV_BUF 32768
#define REQ_BUF 2048

struct sk_rtnl {
    struct mnl_socket *nl;
    unsigned portid;
    unsigned seq;
    char buf[RECV_BUF];
};

int sk_rtnl_open(int netns_fd, int home_fd, struct sk_rtnl **out, struct sk_error *err)
{
    *out = NULL;
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
        return sk_error_set(err, errno, "enter the sandbox's network namespace");
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    int saved = errno;
    if (netns_fd >= 0 && setns(home_fd, CLONE_NEWNET) < 0) {
        /* Carrying on in the sandbox's namespace would act on the wrong
         * network from here on. */
        sk_log_error("cannot return to skiffd's network namespace: %s", strerror(errno));
        abort();
    }
    if (nl == NULL)
        return sk_error_set(err, saved, "open an rtnetlink socket");
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        saved = errno;
        mnl_socket_close(nl);
        return sk_error_set(err, saved, "bind an rtnetlink socket");
    }
    struct sk_rtnl *r = xcalloc(1, sizeof(*r));
    r->nl = nl;
    r->portid = mnl_socket_get_portid(nl);
    r->seq = (unsigned)time(NULL);
    *out = r;
    return 0;
}

void sk_rtnl_close(struct sk_rtnl *r)
{
    if (r == NULL)
        return;
    mnl_socket_close(r->nl);
    free(r);
}

/* talk - send nlh and read answers until the kernel's ACK, NLMSG_DONE or
 * an error (its errno). */
static int talk(struct sk_rtnl *r, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    nlh->nlmsg_seq = ++r->seq;
    if (mnl_socket_sendto(r->nl, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(r->nl, r->buf, sizeof(r->buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        int ret = mnl_cb_run(r->buf, (size_t)n, r->seq, r->portid, cb, data);
        if (ret < 0)
            return -(errno ? errno : EIO);
        if (ret == MNL_CB_STOP)
            return 0;
    }
}

static struct nlmsghdr *put_header(char *buf, uint16_t type, uint16_t flags)
{
    memset(buf, 0, REQ_BUF);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    return nlh;
}

int sk_rtnl_veth_add(struct sk_rtnl *r, const char *name, const char *peer, int peer_netns_fd, int master_ifindex,
                     struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (master_ifindex > 0)
        mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master_ifindex);
    struct nlattr *linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    struct nlattr *peer_attr = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    /* VETH_INFO_PEER carries a whole ifinfomsg, then the peer's attributes. */
    struct ifinfomsg *pifm = (struct ifinfomsg *)((char *)nlh + nlh->nlmsg_len);
    memset(pifm, 0, sizeof(*pifm));
    nlh->nlmsg_len += MNL_ALIGN(sizeof(*pifm));
    pifm->ifi_family = AF_UNSPEC; /* not up yet: the kernel opens it before it has a peer (ENOTCONN) */
    mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
    if (peer_netns_fd >= 0)
        mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
    mnl_attr_nest_end(nlh, peer_attr);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, linkinfo);
    int ret = talk(r, nlh, NULL, NULL);
    if (ret < 0)
        return sk_error_set(err, -ret, "create veth '%s' (peer '%s')", name, peer);
    return 0;
}

int sk_rtnl_link_up(struct sk_rtnl *r, int ifindex, struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_NEWLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = ifindex;
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    int ret = talk(r, nlh, NULL, NULL);
    if (ret < 0)
        return sk_error_set(err, -ret, "bring link %d up", ifindex);
    return 0;
}

int sk_rtnl_bridge_add(struct sk_rtnl *r, const char *name, struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    struct nlattr *linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, linkinfo);
    int ret = talk(r, nlh, NULL, NULL);
    if (ret < 0)
        return sk_error_set(err, -ret, "create bridge '%s'", name);
    return 0;
}

int sk_rtnl_link_del(struct sk_rtnl *r, const char *name, struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_DELLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    int ret = talk(r, nlh, NULL, NULL);
    if (ret < 0)
        return sk_error_set(err, -ret, "delete link '%s'", name);
    return 0;
}

static int on_link_index(const struct nlmsghdr *nlh, void *data)
{
    if (nlh->nlmsg_type == RTM_NEWLINK && mnl_nlmsg_get_payload_len(nlh) >= sizeof(struct ifinfomsg)) {
        const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        *(int *)data = ifm->ifi_index;
    }
    return MNL_CB_OK;
}

int sk_rtnl_link_index(struct sk_rtnl *r, const char *name, int *ifindex, struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_GETLINK, NLM_F_ACK);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    *ifindex = 0;
    int ret = talk(r, nlh, on_link_index, ifindex);
    if (ret == 0 && *ifindex <= 0)
        ret = -ENODEV;
    if (ret < 0)
        return sk_error_set(err, -ret, "look up link '%s'", name);
    return 0;
}

struct names {
    char **v;
    size_t n, cap;
};

static int on_link_attr(const struct nlattr *attr, void *data)
{
    if (mnl_attr_get_type(attr) == IFLA_IFNAME && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
        *(const char **)data = mnl_attr_get_str(attr);
    return MNL_CB_OK;
}

static int on_link_name(const struct nlmsghdr *nlh, void *data)
{
    struct names *ns = data;
    const char *name = NULL;
    if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifinfomsg))
        return MNL_CB_OK;
    mnl_attr_parse(nlh, sizeof(struct ifinfomsg), on_link_attr, &name);
    if (name == NULL)
        return MNL_CB_OK;
    if (ns->n + 2 > ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 64;
        ns->v = xrealloc(ns->v, ns->cap * sizeof(char *));
    }
    ns->v[ns->n++] = xstrdup(name);
    ns->v[ns->n] = NULL;
    return MNL_CB_OK;
}

int sk_rtnl_link_names(struct sk_rtnl *r, char ***names, struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_GETLINK, NLM_F_DUMP);
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    struct names ns = {0};
    int ret = talk(r, nlh, on_link_name, &ns);
    if (ret < 0) {
        sk_rtnl_names_free(ns.v);
        return sk_error_set(err, -ret, "list links");
    }
    if (ns.v == NULL)
        ns.v = xcalloc(1, sizeof(char *));
    *names = ns.v;
    return 0;
}

void sk_rtnl_names_free(char **names)
{
    if (names == NULL)
        return;
    for (size_t i = 0; names[i] != NULL; i++)
        free(names[i]);
    free(names);
}

static int addr_msg(struct sk_rtnl *r, uint16_t type, uint16_t flags, int ifindex, int family, const uint8_t *addr,
                    unsigned prefix)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, type, flags | NLM_F_ACK);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    ifa->ifa_prefixlen = (uint8_t)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (uint32_t)ifindex;
    size_t len = family == AF_INET ? 4 : 16;
    mnl_attr_put(nlh, IFA_LOCAL, len, addr);
    mnl_attr_put(nlh, IFA_ADDRESS, len, addr);
    if (family == AF_INET6 && type == RTM_NEWADDR) {
        /* Usable at once: the link has exactly two ends, both ours. */
        ifa->ifa_flags = IFA_F_NODAD;
        mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
    }
    return talk(r, nlh, NULL, NULL);
}

int sk_rtnl_addr_add(struct sk_rtnl *r, int ifindex, int family, const uint8_t *addr, unsigned prefix,
                     struct sk_error *err)
{
    int ret = addr_msg(r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, family, addr, prefix);
    if (ret < 0)
        return sk_error_set(err, -ret, "add an IPv%d address to link %d", family == AF_INET ? 4 : 6, ifindex);
    return 0;
}

int sk_rtnl_addr_del(struct sk_rtnl *r, int ifindex, int family, const uint8_t *addr, unsigned prefix,
                     struct sk_error *err)
{
    int ret = addr_msg(r, RTM_DELADDR, 0, ifindex, family, addr, prefix);
    if (ret < 0)
        return sk_error_set(err, -ret, "remove an IPv%d address from link %d", family == AF_INET ? 4 : 6, ifindex);
    return 0;
}

int sk_rtnl_route_add(struct sk_rtnl *r, int family, const uint8_t *dst, unsigned dst_len, const uint8_t *gw,
                      int ifindex, struct sk_error *err)
{
    char buf[REQ_BUF];
    struct nlmsghdr *nlh = put_header(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = (uint8_t)family;
    rtm->rtm_dst_len = (uint8_t)(dst ? dst_len : 0);
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_STATIC;
    rtm->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    rtm->rtm_type = RTN_UNICAST;
    size_t len = family == AF_INET ? 4 : 16;
    if (dst)
        mnl_attr_put(nlh, RTA_DST, len, dst);
    if (gw)
        mnl_attr_put(nlh, RTA_GATEWAY, len, gw);
    mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
    int ret = talk(r, nlh, NULL, NULL);
    if (ret < 0)
        return sk_error_set(err, -ret, "add an IPv%d route", family == AF_INET ? 4 : 6);
    return 0;
}
