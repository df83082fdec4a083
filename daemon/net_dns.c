/* net_dns.c - the DNS forwarder's I/O and the denial log on skiffd's loop
 * (see net_dns.h). What to answer is lib/net's decision; this file only
 * moves messages: client -> decision -> (REFUSED | a group member's address
 * | upstream -> addresses allowed -> client). */
#include "net_dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "daemon.h"
#include "net/dns.h"
#include "net/net.h"

#define UDP_MSG_MAX 4096 /* a client's query; EDNS answers up to this size */
#define TCP_QUERY_MAX 4096
#define TICK_MS 200
#define ANSWER_ADDRS_MAX 32

struct tcp_conn;

struct pending {
    struct pending *next;
    uint16_t up_id;
    uint16_t client_id;
    struct sockaddr_in client; /* UDP clients */
    struct tcp_conn *tcp;      /* TCP clients (NULL once it is gone) */
    struct sk_dns_query q;
    char sandbox_id[24];
    uint8_t *msg; /* as sent upstream */
    size_t len;
    size_t upstream; /* index of the server asked last */
    int64_t deadline_ns, retry_ns;
};

struct tcp_conn {
    struct sk_netd *nd;
    struct tcp_conn *next;
    int fd;
    struct sk_loop_watch *w;
    struct sockaddr_in peer;
    uint8_t in[2 + TCP_QUERY_MAX];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off;
    int64_t idle_deadline_ns;
};

struct sk_netd {
    struct sk_daemon *d;
    struct sk_net *net;
    bool started;
    int udp_fd, tcp_fd, up_fd[2]; /* upstream sockets: IPv4, IPv6 */
    int nflog_fd;
    struct sk_loop_watch *w_udp, *w_tcp, *w_up[2], *w_nflog;
    struct pending *pending;
    size_t n_pending;
    struct tcp_conn *conns;
    size_t n_conns;
    struct sk_loop_timer tick;
    struct sk_metric *denials; /* skiff_net_denials_total{kind} */
    struct sk_metric *queries; /* skiff_net_dns_queries_total{result} */
    struct sk_metric *setup;   /* skiff_net_setup_duration_seconds */
};

/* ---- answering ----------------------------------------------------------------------- */

static void tcp_close(struct tcp_conn *c);

static void tcp_send(struct tcp_conn *c, const uint8_t *msg, size_t len)
{
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    c->out = xrealloc(c->out, c->out_len + len + 2);
    c->out[c->out_len] = (uint8_t)(len >> 8);
    c->out[c->out_len + 1] = (uint8_t)len;
    memcpy(c->out + c->out_len + 2, msg, len);
    c->out_len += len + 2;
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            tcp_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    uint32_t ev = SK_LOOP_READ | (c->out_off < c->out_len ? SK_LOOP_WRITE : 0);
    sk_loop_watch_modify(c->nd->d->loop, c->w, ev, NULL);
}

/* answer - send msg to the client of a query (UDP address or TCP conn). */
static void answer(struct sk_netd *nd, const struct sockaddr_in *client, struct tcp_conn *tcp, const uint8_t *msg,
                   size_t len)
{
    if (tcp != NULL) {
        tcp_send(tcp, msg, len);
        return;
    }
    if (client != NULL && client->sin_family == AF_INET)
        sendto(nd->udp_fd, msg, len, MSG_DONTWAIT, (const struct sockaddr *)client, sizeof(*client));
}

static void answer_rcode(struct sk_netd *nd, const uint8_t *query, size_t len, int rcode,
                         const struct sockaddr_in *client, struct tcp_conn *tcp)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (sk_dns_reply(query, len, rcode, NULL, 0, &out, &out_len, NULL) == 0)
        answer(nd, client, tcp, out, out_len);
    free(out);
}

static struct pending *pending_by_id(struct sk_netd *nd, uint16_t id)
{
    for (struct pending *p = nd->pending; p != NULL; p = p->next)
        if (p->up_id == id)
            return p;
    return NULL;
}

static void pending_free(struct sk_netd *nd, struct pending *p)
{
    for (struct pending **pp = &nd->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            nd->n_pending--;
            break;
        }
    }
    free(p->msg);
    free(p);
}

static socklen_t sockaddr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* ask_upstream - send p's message to upstream number p->upstream. */
static void ask_upstream(struct sk_netd *nd, struct pending *p)
{
    size_t n_up = 0;
    const struct sockaddr_storage *ups = sk_net_upstreams(nd->net, &n_up);
    const struct sockaddr_storage *to = &ups[p->upstream % n_up];
    int fd = nd->up_fd[to->ss_family == AF_INET ? 0 : 1];
    if (fd >= 0)
        sendto(fd, p->msg, p->len, MSG_DONTWAIT, (const struct sockaddr *)to, sockaddr_len(to));
    p->retry_ns = sk_now_ns() + (int64_t)SK_NETD_RETRY_MS * 1000000;
}

/* on_query - one query from a sandbox, over UDP (client) or TCP (tcp). */
static void on_query(struct sk_netd *nd, const uint8_t *msg, size_t len, const struct sockaddr_in *src,
                     const struct sockaddr_in *client, struct tcp_conn *tcp)
{
    struct sk_dns_query q;
    if (sk_dns_parse_query(msg, len, &q, NULL) < 0) {
        sk_metric_inc(nd->queries, "malformed");
        return;
    }
    struct sk_net_dns_decision dec;
    sk_net_dns_decide(nd->net, AF_INET, (const uint8_t *)&src->sin_addr, &q, &dec);
    switch (dec.action) {
    case SK_NET_DNS_DROP: sk_metric_inc(nd->queries, "dropped"); return;
    case SK_NET_DNS_REFUSE:
        sk_metric_inc(nd->queries, "refused");
        sk_metric_inc(nd->denials, "dns");
        answer_rcode(nd, msg, len, SK_DNS_RCODE_REFUSED, client, tcp);
        return;
    case SK_NET_DNS_ANSWER: {
        sk_metric_inc(nd->queries, "group");
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (sk_dns_reply(msg, len, 0, dec.addrs, dec.n_addrs, &out, &out_len, NULL) == 0)
            answer(nd, client, tcp, out, out_len);
        free(out);
        return;
    }
    case SK_NET_DNS_FORWARD: break;
    }
    /* one sandbox cannot take the forwarder for itself */
    size_t mine = 0;
    for (struct pending *o = nd->pending; o != NULL; o = o->next)
        mine += strcmp(o->sandbox_id, dec.sandbox_id) == 0;
    if (nd->n_pending >= SK_NETD_PENDING_MAX || mine >= SK_NETD_PENDING_PER_SANDBOX) {
        sk_metric_inc(nd->queries, "failed");
        answer_rcode(nd, msg, len, SK_DNS_RCODE_SERVFAIL, client, tcp);
        return;
    }
    struct pending *p = xcalloc(1, sizeof(*p));
    p->client_id = q.id;
    p->q = q;
    snprintf(p->sandbox_id, sizeof(p->sandbox_id), "%s", dec.sandbox_id);
    if (client != NULL)
        p->client = *client;
    p->tcp = tcp;
    /* A fresh random id per upstream query, unique among those in flight:
     * answers are matched by it (and by their question). */
    for (int tries = 0; tries < 64; tries++) {
        uint16_t id;
        if (getentropy(&id, sizeof(id)) < 0)
            id = (uint16_t)sk_now_ns();
        if (pending_by_id(nd, id) == NULL) {
            p->up_id = id;
            break;
        }
    }
    p->msg = xmalloc(len);
    memcpy(p->msg, msg, len);
    p->len = len;
    sk_dns_set_id(p->msg, p->up_id);
    p->deadline_ns = sk_now_ns() + (int64_t)SK_NETD_QUERY_TIMEOUT_MS * 1000000;
    p->next = nd->pending;
    nd->pending = p;
    nd->n_pending++;
    ask_upstream(nd, p);
    if (!sk_loop_timer_is_active(&nd->tick))
        sk_loop_timer_start(nd->d->loop, &nd->tick, TICK_MS);
}

/* on_upstream_answer - an answer from an upstream server. */
static void on_upstream(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)events;
    struct sk_netd *nd = ctx;
    uint8_t buf[SK_DNS_MSG_MAX];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        if (n < 12)
            continue;
        /* only from a configured server */
        size_t n_up = 0;
        const struct sockaddr_storage *ups = sk_net_upstreams(nd->net, &n_up);
        bool known = false;
        for (size_t k = 0; k < n_up && !known; k++)
            known = fl == sockaddr_len(&ups[k]) && memcmp(&from, &ups[k], fl) == 0;
        struct pending *p = known ? pending_by_id(nd, sk_dns_get_id(buf)) : NULL;
        if (p == NULL)
            continue;
        struct sk_dns_addr addrs[ANSWER_ADDRS_MAX];
        size_t n_addrs = 0;
        int rcode = 0;
        if (sk_dns_read_answer(buf, (size_t)n, &p->q, &rcode, addrs, ANSWER_ADDRS_MAX, &n_addrs, NULL) < 0)
            continue; /* not the answer to that question: wait for the real one */
        struct sk_error err = {0};
        bool ok = sk_net_dns_learn(nd->net, p->sandbox_id, &p->q, addrs, n_addrs, &err) == 0;
        if (!ok)
            sk_log_warn("DNS answer for '%s' (sandbox '%s') not passed on: %s", p->q.name, p->sandbox_id, err.msg);
        sk_dns_set_id(buf, p->client_id);
        if (ok) {
            sk_metric_inc(nd->queries, "forwarded");
            answer(nd, p->tcp != NULL ? NULL : &p->client, p->tcp, buf, (size_t)n);
        } else {
            sk_metric_inc(nd->queries, "failed");
            sk_dns_set_id(p->msg, p->client_id);
            answer_rcode(nd, p->msg, p->len, SK_DNS_RCODE_SERVFAIL, p->tcp != NULL ? NULL : &p->client, p->tcp);
        }
        pending_free(nd, p);
    }
}

static void on_tick(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)t;
    struct sk_netd *nd = ctx;
    int64_t now = sk_now_ns();
    size_t n_up = 0;
    sk_net_upstreams(nd->net, &n_up);
    for (struct pending *p = nd->pending, *next; p != NULL; p = next) {
        next = p->next;
        if (now >= p->deadline_ns) {
            sk_metric_inc(nd->queries, "failed");
            sk_dns_set_id(p->msg, p->client_id);
            answer_rcode(nd, p->msg, p->len, SK_DNS_RCODE_SERVFAIL, p->tcp != NULL ? NULL : &p->client, p->tcp);
            pending_free(nd, p);
        } else if (now >= p->retry_ns) {
            p->upstream++; /* the next server (the same one when there is one) */
            ask_upstream(nd, p);
        }
    }
    for (struct tcp_conn *c = nd->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (now >= c->idle_deadline_ns)
            tcp_close(c);
    }
    if (nd->pending != NULL || nd->conns != NULL)
        sk_loop_timer_start(loop, &nd->tick, TICK_MS);
}

/* ---- sockets ---------------------------------------------------------------------------- */

static void on_udp(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)events;
    struct sk_netd *nd = ctx;
    uint8_t buf[UDP_MSG_MAX];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        if (fl != sizeof(from) || from.sin_family != AF_INET)
            continue;
        on_query(nd, buf, (size_t)n, &from, &from, NULL);
    }
}

static void tcp_close(struct tcp_conn *c)
{
    struct sk_netd *nd = c->nd;
    for (struct pending *p = nd->pending; p != NULL; p = p->next)
        if (p->tcp == c) {
            p->tcp = NULL; /* the answer goes nowhere */
            p->client.sin_family = 0;
        }
    for (struct tcp_conn **pp = &nd->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            nd->n_conns--;
            break;
        }
    }
    sk_loop_watch_remove(nd->d->loop, c->w);
    close(c->fd);
    free(c->out);
    free(c);
}

static void on_tcp_conn(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)fd;
    struct tcp_conn *c = ctx;
    if (events & SK_LOOP_WRITE) {
        while (c->out_off < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n <= 0) {
                tcp_close(c);
                return;
            }
            c->out_off += (size_t)n;
        }
        if (c->out_off == c->out_len)
            sk_loop_watch_modify(c->nd->d->loop, c->w, SK_LOOP_READ, NULL);
    }
    if (!(events & (SK_LOOP_READ | EPOLLHUP | EPOLLERR)))
        return;
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        tcp_close(c);
        return;
    }
    c->in_len += (size_t)n;
    c->idle_deadline_ns = sk_now_ns() + (int64_t)SK_NETD_TCP_IDLE_MS * 1000000;
    while (c->in_len >= 2) {
        size_t len = (size_t)c->in[0] << 8 | c->in[1];
        if (len > TCP_QUERY_MAX || len < 12) {
            tcp_close(c); /* not a query a sandbox needs to send */
            return;
        }
        if (c->in_len < len + 2)
            break;
        uint8_t msg[TCP_QUERY_MAX];
        memcpy(msg, c->in + 2, len);
        memmove(c->in, c->in + 2 + len, c->in_len - 2 - len);
        c->in_len -= 2 + len;
        on_query(c->nd, msg, len, &c->peer, NULL, c);
        /* on_query may have closed c (a failed send): stop if it is gone */
        bool alive = false;
        for (struct tcp_conn *o = c->nd->conns; o != NULL && !alive; o = o->next)
            alive = o == c;
        if (!alive)
            return;
    }
}

static void on_tcp_accept(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)events;
    struct sk_netd *nd = ctx;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        size_t same = 0;
        for (struct tcp_conn *o = nd->conns; o != NULL; o = o->next)
            same += o->peer.sin_addr.s_addr == peer.sin_addr.s_addr;
        if (nd->n_conns >= SK_NETD_TCP_MAX || same >= SK_NETD_TCP_PER_ADDRESS || pl != sizeof(peer)) {
            close(cfd);
            continue;
        }
        struct tcp_conn *c = xcalloc(1, sizeof(*c));
        c->nd = nd;
        c->fd = cfd;
        c->peer = peer;
        c->idle_deadline_ns = sk_now_ns() + (int64_t)SK_NETD_TCP_IDLE_MS * 1000000;
        if (sk_loop_watch_add(loop, cfd, SK_LOOP_READ, on_tcp_conn, c, &c->w, NULL) < 0) {
            close(cfd);
            free(c);
            continue;
        }
        c->next = nd->conns;
        nd->conns = c;
        nd->n_conns++;
        if (!sk_loop_timer_is_active(&nd->tick))
            sk_loop_timer_start(loop, &nd->tick, TICK_MS);
    }
}

void sk_netd_drain_denials(struct sk_netd *nd)
{
    int n = sk_net_nflog_read(nd->net);
    if (n > 0)
        sk_metric_add(nd->denials, "connection", (double)n);
}

static void on_nflog(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)fd;
    (void)events;
    sk_netd_drain_denials(ctx);
}

static int open_socket(int family, int type, const struct sockaddr *addr, socklen_t len, struct sk_error *err)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sk_error_set(err, errno, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr != NULL && bind(fd, addr, len) < 0) {
        int e = errno;
        close(fd);
        return sk_error_set(err, e, "bind");
    }
    if (type == SOCK_STREAM && listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return sk_error_set(err, e, "listen");
    }
    return fd;
}

void sk_netd_start(void *arg)
{
    struct sk_netd *nd = arg;
    if (nd->started)
        return;
    nd->started = true;
    struct sk_loop *loop = nd->d->loop;
    struct sk_error err = {0};
    struct sockaddr_in res;
    sk_net_resolver(nd->net, &res);
    char rs[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &res.sin_addr, rs, sizeof(rs));
    nd->udp_fd = open_socket(AF_INET, SOCK_DGRAM, (struct sockaddr *)&res, sizeof(res), &err);
    if (nd->udp_fd >= 0)
        nd->tcp_fd = open_socket(AF_INET, SOCK_STREAM, (struct sockaddr *)&res, sizeof(res), &err);
    if (nd->udp_fd < 0 || nd->tcp_fd < 0) {
        sk_log_error("DNS forwarder: listen on '%s:53': %s (sandboxes will get no DNS answers)", rs, err.msg);
        return;
    }
    nd->up_fd[0] = open_socket(AF_INET, SOCK_DGRAM, NULL, 0, &err);
    nd->up_fd[1] = open_socket(AF_INET6, SOCK_DGRAM, NULL, 0, &err);
    if (sk_loop_watch_add(loop, nd->udp_fd, SK_LOOP_READ, on_udp, nd, &nd->w_udp, &err) < 0 ||
        sk_loop_watch_add(loop, nd->tcp_fd, SK_LOOP_READ, on_tcp_accept, nd, &nd->w_tcp, &err) < 0)
        sk_log_error("DNS forwarder: %s", err.msg);
    for (int i = 0; i < 2; i++)
        if (nd->up_fd[i] >= 0 &&
            sk_loop_watch_add(loop, nd->up_fd[i], SK_LOOP_READ, on_upstream, nd, &nd->w_up[i], &err) < 0)
            sk_log_error("DNS forwarder: %s", err.msg);
    int lf = sk_net_nflog_fd(nd->net);
    if (lf >= 0 && sk_loop_watch_add(loop, lf, SK_LOOP_READ, on_nflog, nd, &nd->w_nflog, &err) < 0)
        sk_log_warn("network denial log: %s", err.msg);
    sk_log_info("DNS forwarder listening on '%s:53' (UDP and TCP)", rs);
}

static void on_setup(void *ctx, double seconds)
{
    struct sk_netd *nd = ctx;
    sk_metric_observe(nd->setup, NULL, seconds);
}

int sk_netd_new(struct sk_daemon *d, const struct sk_net_config *cfg, struct sk_netd **out, struct sk_error *err)
{
    *out = NULL;
    struct sk_netd *nd = xcalloc(1, sizeof(*nd));
    struct sk_net_config c = *cfg;
    c.on_active = sk_netd_start;
    c.on_setup = on_setup;
    c.ctx = nd;
    int r = sk_net_new(&c, &nd->net, err);
    if (r < 0) {
        free(nd);
        return r;
    }
    nd->d = d;
    nd->udp_fd = nd->tcp_fd = nd->up_fd[0] = nd->up_fd[1] = -1;
    sk_loop_timer_init(&nd->tick, on_tick, nd);
    nd->denials = sk_metrics_counter(d->metrics, "skiff_net_denials_total",
                                     "Denied sandbox network attempts: connections (packets nftables refused, logged "
                                     "up to 100/s per sandbox) and DNS names the forwarder refused.",
                                     "kind");
    sk_metric_touch(nd->denials, "connection");
    sk_metric_touch(nd->denials, "dns");
    nd->queries = sk_metrics_counter(d->metrics, "skiff_net_dns_queries_total",
                                     "DNS queries from sandboxes, by what the forwarder did with them.", "result");
    static const double setup_buckets[] = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5};
    nd->setup = sk_metrics_histogram(d->metrics, "skiff_net_setup_duration_seconds",
                                     "Time to give one sandbox its network (veths, addresses, routes, rules).", NULL,
                                     setup_buckets, SK_ARRAY_SIZE(setup_buckets));
    static const char *const results[] = {"forwarded", "refused", "group", "failed", "dropped", "malformed"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(results); i++)
        sk_metric_touch(nd->queries, results[i]);
    *out = nd;
    return 0;
}

void sk_netd_free(struct sk_netd *nd)
{
    if (nd == NULL)
        return;
    struct sk_loop *loop = nd->d->loop;
    if (loop != NULL)
        sk_loop_timer_stop(loop, &nd->tick);
    while (nd->conns != NULL)
        tcp_close(nd->conns);
    while (nd->pending != NULL)
        pending_free(nd, nd->pending);
    sk_loop_watch_remove(loop, nd->w_udp);
    sk_loop_watch_remove(loop, nd->w_tcp);
    sk_loop_watch_remove(loop, nd->w_up[0]);
    sk_loop_watch_remove(loop, nd->w_up[1]);
    sk_loop_watch_remove(loop, nd->w_nflog);
    sk_close(&nd->udp_fd);
    sk_close(&nd->tcp_fd);
    sk_close(&nd->up_fd[0]);
    sk_close(&nd->up_fd[1]);
    struct sk_error err = {0};
    if (sk_net_is_active(nd->net) && sk_net_teardown(nd->net, &err) < 0 && err.code != EBUSY)
        sk_log_warn("sandbox networking: %s", err.msg);
    sk_net_free(nd->net);
    free(nd);
}

struct sk_net *sk_netd_net(struct sk_netd *nd)
{
    return nd->net;
}
