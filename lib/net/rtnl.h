/* rtnl.h - the rtnetlink requests skiff's networking needs (libmnl): veth
 * pairs (one end created directly in a sandbox's network namespace),
 * bridges, addresses, routes, and listing and deleting links.
 *
 * A struct sk_rtnl is one NETLINK_ROUTE socket. It acts on the network
 * namespace it was opened in: sk_rtnl_open with a namespace fd enters that
 * namespace on the calling thread only for the socket() call and returns to
 * `home` before it returns (sockets stay in the namespace they were made
 * in), so a daemon can configure a sandbox's interfaces without a helper
 * process. Requests are synchronous and acknowledged; errors carry the
 * kernel's errno. Not thread-safe; one socket per user.
 */
#ifndef SK_NET_RTNL_H
#define SK_NET_RTNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct sk_rtnl;

/* sk_rtnl_open - a socket in the network namespace `netns_fd` (-1: the
 * calling thread's own). With netns_fd >= 0, `home_fd` must be the calling
 * thread's namespace (/proc/thread-self/ns/net, opened before); failing to
 * return to it aborts the process, as nothing else would be safe. */
int sk_rtnl_open(int netns_fd, int home_fd, struct sk_rtnl **out, struct sk_error *err);
void sk_rtnl_close(struct sk_rtnl *r);

/* sk_rtnl_veth_add - create veth pair `name` (here, up) / `peer` (in the
 * namespace peer_netns_fd, or here when -1; down: bring it up with
 * sk_rtnl_link_up from a socket in its namespace). With master_ifindex
 * > 0, `name` becomes a port of that bridge. EEXIST when a link of either
 * name exists. */
int sk_rtnl_veth_add(struct sk_rtnl *r, const char *name, const char *peer, int peer_netns_fd, int master_ifindex,
                     struct sk_error *err);
/* sk_rtnl_link_up - set link ifindex up. */
int sk_rtnl_link_up(struct sk_rtnl *r, int ifindex, struct sk_error *err);
/* sk_rtnl_bridge_add - create bridge `name`, up. EEXIST when it exists. */
int sk_rtnl_bridge_add(struct sk_rtnl *r, const char *name, struct sk_error *err);
/* sk_rtnl_link_del - delete link `name` (a veth takes its peer with it).
 * ENODEV when there is none. */
int sk_rtnl_link_del(struct sk_rtnl *r, const char *name, struct sk_error *err);
/* sk_rtnl_link_index - the ifindex of `name` (ENODEV when there is none). */
int sk_rtnl_link_index(struct sk_rtnl *r, const char *name, int *ifindex, struct sk_error *err);
/* sk_rtnl_link_names - every link's name; *names (NULL-terminated) is
 * freed by the caller with sk_rtnl_names_free. */
int sk_rtnl_link_names(struct sk_rtnl *r, char ***names, struct sk_error *err);
void sk_rtnl_names_free(char **names);

/* sk_rtnl_addr_add - add addr/prefix (family AF_INET or AF_INET6, addr 4
 * or 16 bytes) to ifindex; IPv6 addresses skip duplicate address detection
 * (usable at once). An address that is already there is not an error. */
int sk_rtnl_addr_add(struct sk_rtnl *r, int ifindex, int family, const uint8_t *addr, unsigned prefix,
                     struct sk_error *err);
/* sk_rtnl_addr_del - remove it; EADDRNOTAVAIL when it is not there. */
int sk_rtnl_addr_del(struct sk_rtnl *r, int ifindex, int family, const uint8_t *addr, unsigned prefix,
                     struct sk_error *err);
/* sk_rtnl_route_add - route dst/dst_len (dst NULL: the default route) via
 * gateway `gw` (NULL: directly) out of ifindex, in the main table. An
 * existing route is replaced. */
int sk_rtnl_route_add(struct sk_rtnl *r, int family, const uint8_t *dst, unsigned dst_len, const uint8_t *gw,
                      int ifindex, struct sk_error *err);

#endif
