/* proxy_int.h - what proxy.c, proxy_http.c and proxy_relay.c share. Not
 * for other files: their interface is proxy.h. */
#ifndef SK_DAEMON_PROXY_INT_H
#define SK_DAEMON_PROXY_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon.h"
#include "loop.h"
#include "metrics.h"
#include "proxy.h"
#include "request.h"
#include "sched/ports.h"

#define PX_BUF 65536                /* relay buffer per direction */
#define PX_HTTP_BUF (256 * 1024)    /* request and response body buffers of one HTTP exchange */
#define PX_HEAD_MAX (64 * 1024)     /* an upstream's response head (upgrades, errors) */
#define PX_ERR_BODY_MAX (1 << 20)   /* body of a refused upgrade that is passed on */
#define PX_CONNECT_TIMEOUT_MS 10000 /* connecting inside the sandbox */
#define PX_TOUCH_NS 500000000LL     /* report activity at most this often per sandbox */
#define PX_PIPES_MAX 4096           /* relayed connections (WebSocket and TCP) at once */
#define PX_KEEPALIVE_MAX 256        /* idle connections into sandboxes kept for reuse */
#define PX_KEEPALIVE_S 30           /* ... for at most this long */
#define PX_COOKIE "skiff_connect"
#define PX_QUERY_TOKEN "skiff_token"
#define PX_HEADER_TOKEN "X-Skiff-Token"

struct px_sandbox;

/* An exposed port, live. */
struct px_port {
    struct px_sandbox *sb;
    struct sk_port_spec spec;
    int listen_fd; /* tcp: the host listener; else -1 */
    struct sk_loop_watch *listen_watch;
};

/* A sandbox with exposed ports. */
struct px_sandbox {
    struct sk_proxy *p;
    struct px_sandbox *next;
    char id[20];
    char *name;   /* NULL when it has none */
    int netns_fd; /* its network namespace */
    uint64_t waiter;
    int64_t last_touch_ns;
    size_t n_ports;
    struct px_port *ports[SK_PORTS_MAX];
};

struct px_http;
struct px_pipe;

/* A socket curl connected inside a sandbox (in use or kept alive in its
 * connection cache). */
struct px_usock {
    struct px_usock *next;
    int fd;
    char sandbox_id[20];
    uint16_t port;
};

struct sk_proxy {
    struct sk_daemon *d;
    char *domain; /* lower case; NULL: no host form */
    char *bind;
    int64_t timeout_ms;
    uint8_t key[SK_CONNECT_KEY_LEN];
    int self_netns; /* skiffd's own network namespace, to return to */
    struct px_sandbox *sandboxes;
    struct px_http *https;
    struct px_pipe *pipes;
    size_t n_pipes;
    bool stopping;

    CURLM *multi;
    struct sk_loop_timer curl_timer;
    int curl_running;
    struct curl_slist *connect_to; /* every name connects to the sandbox's 127.0.0.1 */
    struct px_usock *usocks;
    int devnull; /* what a dropped sandbox's cached sockets become (see px_kill_sockets) */

    struct sk_metric *m_requests; /* skiff_proxy_requests_total{protocol} */
    struct sk_metric *m_conns;    /* skiff_proxy_connections_total{protocol} */
    struct sk_metric *m_bytes;    /* skiff_proxy_bytes_total{protocol} */
    struct sk_metric *m_refused;  /* skiff_proxy_refused_total{reason} */
    struct sk_metric *m_ports;    /* skiff_proxy_exposed_ports{protocol} */
    struct sk_metric *m_latency;  /* skiff_proxy_upstream_header_seconds */
};

/* What a request to a proxied port resolved to. */
struct px_target {
    struct px_sandbox *sb;
    struct px_port *port;
    uint16_t port_num;
    bool host_form;
    char prefix[200]; /* "/p/<sandbox>/<port>" (path form), "" (host form) */
    char *forward;    /* the target to send upstream: path and query, credentials removed */
    char *set_cookie; /* a Set-Cookie for the answer (a token came in the query), or NULL */
};

/* ---- proxy.c -------------------------------------------------------------- */

/* sk__px_open_socket - a TCP socket (non-blocking, close-on-exec) created
 * inside the sandbox's network namespace; -1 with errno set. */
int sk__px_open_socket(struct sk_proxy *p, int netns_fd, int family);
/* sk__px_connect - a socket in the sandbox's namespace connecting (non-
 * blocking) to 127.0.0.1:port there; *fd is the caller's. Returns 0 (in
 * progress or connected) or -errno. */
int sk__px_connect(struct sk_proxy *p, const char *sandbox_id, uint16_t port, int *fd);
/* sk__px_touch - activity through a port: the sandbox's idle timer. */
void sk__px_touch(struct sk_proxy *p, const char *sandbox_id);
/* sk__px_find_sandbox - by id ("sb-...") */
struct px_sandbox *sk__px_find_sandbox(struct sk_proxy *p, const char *id);
/* sk__px_forward_headers - add the request headers to forward (hop-by-hop
 * ones, Host, framing and skiff's credentials left out) by calling
 * add(name, value, arg) for each, then Host and X-Forwarded-*. */
void sk__px_forward_headers(struct sk_proxy *p, struct sk_http_req *req, const struct px_target *t, bool upgrade,
                            void (*add)(const char *name, const char *value, void *arg), void *arg);
/* sk__px_is_hop_header - a response header a proxy must not pass on. */
bool sk__px_is_hop_header(const char *name, bool upgrade);
void sk__px_target_release(struct px_target *t);

/* ---- proxy_http.c ---------------------------------------------------------- */

int sk__px_http_init(struct sk_proxy *p, struct sk_error *err);
void sk__px_http_release(struct sk_proxy *p);
/* sk__px_http_start - forward req (takes t->forward and t->set_cookie). */
void sk__px_http_start(struct sk_proxy *p, struct sk_http_req *req, struct px_target *t);
/* sk__px_http_abort - end every exchange with (sandbox, port); port 0: all. */
void sk__px_http_abort(struct sk_proxy *p, const char *sandbox_id, uint16_t port, const char *why);

/* ---- proxy_relay.c ---------------------------------------------------------- */

/* sk__px_upgrade_start - forward a request with Upgrade (WebSocket) and
 * relay bytes after the sandbox's 101 (takes t->forward, t->set_cookie). */
void sk__px_upgrade_start(struct sk_proxy *p, struct sk_http_req *req, struct px_target *t);
/* sk__px_tcp_accept - a client of a tcp port's listener */
void sk__px_tcp_accept(struct sk_proxy *p, struct px_port *port, int fd, const struct sockaddr *peer);
/* sk__px_pipes_abort - close every relay of (sandbox, port); port 0: all;
 * sandbox NULL: every relay. */
void sk__px_pipes_abort(struct sk_proxy *p, const char *sandbox_id, uint16_t port);

#endif
