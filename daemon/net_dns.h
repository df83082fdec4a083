/* net_dns.h - skiffd's side of sandbox networking on its loop: the DNS
 * forwarder's sockets (UDP and TCP on the resolver address, non-blocking
 * upstream queries with retries and timeouts) and the kernel's log of
 * denied packets, both fed into lib/net (net/net.h), which decides what a
 * sandbox may resolve and records the denials, and into /metrics.
 *
 * Nothing is opened before lib/net has set up the host side (its
 * on_active callback calls sk_netd_start), so a skiffd whose sandboxes
 * never ask for a network listens on nothing more. Loop thread only.
 */
#ifndef SK_DAEMON_NET_DNS_H
#define SK_DAEMON_NET_DNS_H

#include "base/error.h"

struct sk_daemon;
struct sk_net;
struct sk_netd;

#define SK_NETD_QUERY_TIMEOUT_MS 4000  /* then SERVFAIL */
#define SK_NETD_RETRY_MS 1000          /* then the next upstream */
#define SK_NETD_PENDING_MAX 1024       /* queries in flight upstream */
#define SK_NETD_PENDING_PER_SANDBOX 64 /* of them from one sandbox (more: SERVFAIL) */
#define SK_NETD_TCP_MAX 64             /* TCP clients at a time */
#define SK_NETD_TCP_PER_ADDRESS 8      /* of them from one address */
#define SK_NETD_TCP_IDLE_MS 10000

/* sk_netd_new - sandbox networking for daemon d: lib/net's handle for
 * `cfg` (its on_active wired to sk_netd_start; EINVAL for bad options)
 * and the forwarder, its metrics registered. */
struct sk_net_config;
int sk_netd_new(struct sk_daemon *d, const struct sk_net_config *cfg, struct sk_netd **out, struct sk_error *err);
/* sk_netd_net - lib/net's handle (for the sandbox manager and the routes). */
struct sk_net *sk_netd_net(struct sk_netd *nd);
/* sk_netd_start - open and watch the sockets (lib/net's on_active). A
 * failure is logged: sandboxes then get no answers to DNS queries. */
void sk_netd_start(void *netd);
/* sk_netd_drain_denials - record the denials the kernel has reported but
 * the loop has not read yet (before a sandbox's denials are shown). */
void sk_netd_drain_denials(struct sk_netd *nd);
/* sk_netd_free - after the sandbox manager is gone: close everything
 * (queries in flight get no answer), remove the host side when no sandbox
 * needs it any more (sk_net_teardown; after a stop that leaves sandboxes
 * running it stays for the next start), free lib/net's handle. NULL is a
 * no-op. */
void sk_netd_free(struct sk_netd *nd);

#endif
