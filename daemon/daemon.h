/* daemon.h - skiffd's context: the loop, the store, the HTTP server, the
 * router and the metrics, plus start-up (data directory, first admin
 * token) and the graceful stop on SIGINT/SIGTERM.
 *
 * Route handlers receive the struct sk_daemon and reach everything through
 * it; there is no other daemon state. Single-threaded: everything runs on
 * the loop.
 */
#ifndef SK_DAEMON_DAEMON_H
#define SK_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "http.h"
#include "loop.h"
#include "metrics.h"
#include "router.h"
#include "loop_ops.h"
#include "runtime/pool.h"
#include "runtime/runtime.h"
#include "sched/sandboxes.h"
#include "store/store.h"

#define SK_DAEMON_VERSION "0.1.0"
#define SK_DAEMON_API "v1"
#define SK_DAEMON_DEFAULT_LISTEN "127.0.0.1:7433"
#define SK_DAEMON_DEFAULT_MAX_BODY ((size_t)16 << 20)
#define SK_DAEMON_DRAIN_MS 5000 /* how long a graceful stop waits for requests in flight */

struct sk_daemon_config {
    const char *listen;   /* see sk_http_config.listen */
    const char *data_dir; /* created 0700 when missing */
    size_t max_body;
    unsigned max_connections;
    unsigned max_per_ip;
    unsigned idle_timeout_s;
    bool debug_routes;              /* serve /v1/debug/... (tests of streaming and long polls) */
    unsigned sandbox_timeout_s;     /* default sandbox lifetime; 0: 300 */
    unsigned max_sandbox_timeout_s; /* largest timeout a request may ask for; 0: none */
    unsigned retention_s;           /* ended sandboxes stay queryable this long; 0: 24 h */
    /* The warm pool (runtime/pool.h). pool_size: ready sandboxes always kept
     * for the default key (host image, default disk, network none); with
     * pool_size 0 and no pool_keys there is no pool at all. */
    unsigned pool_size;
    unsigned pool_max;                          /* adaptive growth bound per key; 0: 64 */
    unsigned pool_idle_s;                       /* back to the minimum after this long without a claim; 0: 60 */
    const struct sk_pool_key_config *pool_keys; /* --pool KEY options (borrowed) */
    size_t n_pool_keys;
    /* Inbound ports (proxy.h). */
    const char *proxy_domain; /* host-based routing "<port>-<sandbox>.<domain>"; NULL: none */
    const char *proxy_bind;   /* address of raw TCP port listeners; NULL: 127.0.0.1 */
    unsigned proxy_timeout_s; /* wait for a sandbox's response headers; 0: 60 */
    /* Sandbox networking (net/net.h, docs/networking.md); NULL: defaults. */
    const char *net_cidr;       /* --net-cidr */
    const char *net_cidr6;      /* --net-cidr6 ("off": IPv4 only) */
    const char *net_group_cidr; /* --net-group-cidr */
    const char *dns_upstream;   /* --dns-upstream */
    const char *nft_table;      /* --nft-table */
};

/* Metrics the daemon exports; handlers feed them, e.g.
 * sk_metric_inc(d->m.sandbox_creates, NULL) or
 * sk_metric_set(d->m.sandboxes, "running", n). */
struct sk_daemon_metrics {
    struct sk_metric *http_requests;           /* skiff_http_requests_total{code} */
    struct sk_metric *http_duration;           /* skiff_http_request_duration_seconds */
    struct sk_metric *sandboxes;               /* skiff_sandboxes{state} (gauge) */
    struct sk_metric *sandbox_creates;         /* skiff_sandbox_creates_total */
    struct sk_metric *sandbox_terminations;    /* skiff_sandbox_terminations_total{reason} */
    struct sk_metric *sandbox_create_duration; /* skiff_sandbox_create_duration_seconds */
    struct sk_metric *exec_duration;           /* skiff_exec_duration_seconds */
};

struct sk_daemon {
    struct sk_daemon_config cfg; /* strings owned by the daemon */
    char *data_dir;
    char *listen;
    struct sk_loop *loop;
    struct sk_store *store;
    struct sk_http *http;
    struct sk_router *router;
    struct sk_route *routes; /* the table the router was built from */
    size_t n_routes;
    struct sk_metrics *metrics;
    struct sk_daemon_metrics m;
    struct sk_runtime *rt;           /* sandboxes' runtime (<data_dir>/runtime) */
    struct sk_loop_adapter loop_ops; /* the loop as lib/sched sees it */
    struct sk_sched *sched;          /* API sandboxes and execs */
    struct sk_pool *pool;            /* the warm pool, or NULL */
    struct sk_proxy *proxy;          /* inbound ports (proxy.h) */
    struct sk_netd *netd;            /* sandbox networking: DNS forwarder, denials (net_dns.h) */
    struct sk_net *net;              /* its lib/net handle (net/net.h) */
    size_t n_running;                /* for skiff_sandboxes{state="running"} */
    bool stopping;
    struct sk_loop_timer stop_timer;
};

/* sk_daemon_init - create the data directory, open the store (running
 * migrations), create the first admin token when there is no live one
 * (written to DATA_DIR/admin.token, mode 0600), start listening and
 * install the SIGINT/SIGTERM handlers. On failure everything done so far
 * is undone (call sk_daemon_release anyway; it is safe). */
int sk_daemon_init(struct sk_daemon *d, const struct sk_daemon_config *cfg, struct sk_error *err);
/* sk_daemon_run - serve until SIGINT/SIGTERM, then stop accepting, give
 * requests in flight up to SK_DAEMON_DRAIN_MS, and return 0. */
int sk_daemon_run(struct sk_daemon *d, struct sk_error *err);
/* sk_daemon_release - close connections, the store and the loop. */
void sk_daemon_release(struct sk_daemon *d);

#endif
