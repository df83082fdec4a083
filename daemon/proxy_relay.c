/* proxy_relay.c - byte relays between a client and a port in a sandbox:
 * WebSocket (any HTTP Upgrade) through skiffd's listener, and raw TCP on
 * a port's own listener.
 *
 * An upgrade request is written to the sandbox by hand (libcurl does not
 * hand over a connection after a 101 in this version): request line, the
 * forwarded headers, and then the sandbox's answer head is read and parsed
 * just enough to pass it on. A 101 is answered to the client with the
 * sandbox's headers (sk_http_reply_upgrade); once libmicrohttpd hands the
 * client's socket over, bytes flow both ways unchanged. Any other answer
 * is passed on as it is (its body when Content-Length gives its size, up
 * to PX_ERR_BODY_MAX, or until the sandbox closes; a chunked one without
 * its body).
 *
 * The relay keeps one bounded buffer per direction and reads a side only
 * while its buffer has room, so a slow reader slows its writer instead of
 * growing memory; an end of stream is passed on as a half-close
 * (shutdown SHUT_WR), and the relay ends once both directions are closed
 * or either side fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "http.h"
#include "proxy_int.h"

enum pipe_kind { PIPE_WS, PIPE_TCP };
enum pipe_state {
    P_CONNECTING,  /* connecting inside the sandbox */
    P_HANDSHAKE,   /* upgrade: request going out, answer head coming in */
    P_ERR_BODY,    /* upgrade refused: reading the body of the answer */
    P_WAIT_CLIENT, /* the 101 is queued: waiting for the client's socket */
    P_RELAY,
};

struct px_buf {
    char *data;
    size_t len, off, cap;
    bool eof;  /* the source ended */
    bool shut; /* ... and that went on to the destination */
};

struct px_pipe {
    struct sk_proxy *p;
    struct px_pipe *prev, *next;
    enum pipe_kind kind;
    enum pipe_state state;
    char sandbox_id[20];
    uint16_t port;
    const char *label; /* metrics: "websocket" or "tcp" */

    int cfd; /* the client: a TCP connection, or the upgraded HTTP one (then up) */
    struct sk_http_upgraded *up;
    struct sk_loop_watch *cw;
    int ufd; /* the sandbox's port */
    struct sk_loop_watch *uw;
    struct px_buf c2u, u2c;

    struct sk_http_req *req; /* upgrade: until the answer is decided */
    char *set_cookie;
    int status; /* of the sandbox's answer */
    char *protocol;
    int64_t body_left; /* P_ERR_BODY: bytes still to read, -1: until EOF */
    bool aborted;      /* unexposed while the 101 was on its way */
    struct sk_loop_timer timer;
};

static void pipe_unlink(struct px_pipe *pp)
{
    struct sk_proxy *p = pp->p;
    if (pp->prev != NULL)
        pp->prev->next = pp->next;
    else if (p->pipes == pp)
        p->pipes = pp->next;
    if (pp->next != NULL)
        pp->next->prev = pp->prev;
    pp->prev = pp->next = NULL;
    p->n_pipes--;
}

/* pipe_free - close everything and free; callers return right after. */
static void pipe_free(struct px_pipe *pp)
{
    struct sk_proxy *p = pp->p;
    struct sk_loop *loop = p->d->loop;
    pipe_unlink(pp);
    sk_loop_timer_stop(loop, &pp->timer);
    sk_loop_watch_remove(loop, pp->cw);
    sk_loop_watch_remove(loop, pp->uw);
    if (pp->up != NULL)
        sk_http_upgraded_close(pp->up); /* the server closes its socket */
    else
        sk_close(&pp->cfd);
    sk_close(&pp->ufd);
    free(pp->c2u.data);
    free(pp->u2c.data);
    free(pp->set_cookie);
    free(pp->protocol);
    free(pp);
}

static struct px_pipe *pipe_new(struct sk_proxy *p, enum pipe_kind kind, const char *sandbox_id, uint16_t port)
{
    struct px_pipe *pp = xcalloc(1, sizeof(*pp));
    pp->p = p;
    pp->kind = kind;
    pp->label = kind == PIPE_WS ? "websocket" : "tcp";
    pp->cfd = pp->ufd = -1;
    snprintf(pp->sandbox_id, sizeof(pp->sandbox_id), "%s", sandbox_id);
    pp->port = port;
    pp->next = p->pipes;
    if (p->pipes != NULL)
        p->pipes->prev = pp;
    p->pipes = pp;
    p->n_pipes++;
    return pp;
}

static void buf_reserve(struct px_buf *b, size_t cap)
{
    if (b->cap < cap) {
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
}

static void buf_append(struct px_buf *b, const void *data, size_t len)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    buf_reserve(b, b->len + len > PX_BUF ? b->len + len : PX_BUF);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* ---- the relay --------------------------------------------------------------------- */

static void on_fd(struct sk_loop *loop, int fd, uint32_t events, void *ctx);

static uint32_t want(const struct px_buf *in, const struct px_buf *out)
{
    /* read this side while its buffer has room; write it while the other
     * direction has bytes for it */
    uint32_t ev = 0;
    if (!in->eof && in->len - in->off < PX_BUF)
        ev |= SK_LOOP_READ;
    if (out->len > out->off)
        ev |= SK_LOOP_WRITE;
    return ev;
}

static int set_watch(struct px_pipe *pp, int fd, struct sk_loop_watch **w, uint32_t ev)
{
    struct sk_error err = {0};
    int r = *w == NULL ? sk_loop_watch_add(pp->p->d->loop, fd, ev, on_fd, pp, w, &err)
                       : sk_loop_watch_modify(pp->p->d->loop, *w, ev, &err);
    if (r < 0)
        sk_log_warn("proxy: sandbox '%s' port %u: %s", pp->sandbox_id, pp->port, err.msg);
    return r;
}

/* move - read from `from` into b while it has room, write b to `to`.
 * -1 when a side failed. */
static int move(struct px_pipe *pp, int from, struct px_buf *b, int to)
{
    while (!b->eof && b->len - b->off < PX_BUF) {
        if (b->off > 0 && b->off == b->len)
            b->off = b->len = 0;
        if (b->len == b->cap && b->off > 0) {
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        buf_reserve(b, PX_BUF);
        if (b->len == b->cap)
            break;
        ssize_t n = SK_RETRY_EINTR(recv(from, b->data + b->len, b->cap - b->len, 0));
        if (n > 0) {
            b->len += (size_t)n;
            sk_metric_add(pp->p->m_bytes, pp->label, (double)n);
            sk__px_touch(pp->p, pp->sandbox_id);
            continue;
        }
        if (n == 0)
            b->eof = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        break;
    }
    while (b->len > b->off) {
        ssize_t n = SK_RETRY_EINTR(send(to, b->data + b->off, b->len - b->off, MSG_NOSIGNAL));
        if (n > 0) {
            b->off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (b->eof && b->len == b->off && !b->shut) {
        shutdown(to, SHUT_WR);
        b->shut = true;
    }
    return 0;
}

/* relay - move what can be moved, then watch for what comes next; frees
 * the pipe (and returns false) when it is over. */
static bool relay(struct px_pipe *pp)
{
    if (move(pp, pp->cfd, &pp->c2u, pp->ufd) < 0 || move(pp, pp->ufd, &pp->u2c, pp->cfd) < 0 ||
        (pp->c2u.shut && pp->u2c.shut)) {
        pipe_free(pp);
        return false;
    }
    if (set_watch(pp, pp->cfd, &pp->cw, want(&pp->c2u, &pp->u2c)) < 0 ||
        set_watch(pp, pp->ufd, &pp->uw, want(&pp->u2c, &pp->c2u)) < 0) {
        pipe_free(pp);
        return false;
    }
    return true;
}

static void relay_start(struct px_pipe *pp)
{
    pp->state = P_RELAY;
    sk_loop_timer_stop(pp->p->d->loop, &pp->timer);
    sk_metric_inc(pp->p->m_conns, pp->label);
    buf_reserve(&pp->c2u, PX_BUF);
    buf_reserve(&pp->u2c, PX_BUF);
    relay(pp);
}

/* ---- upgrade handshake ------------------------------------------------------------- */

static void add_line(const char *name, const char *value, void *arg)
{
    struct px_buf *b = arg;
    char *line = xasprintf("%s: %s\r\n", name, value);
    buf_append(b, line, strlen(line));
    free(line);
}

/* answer_error - refuse the upgrade before any answer of the sandbox could
 * be passed on; the request's close callback frees the pipe. */
static void answer_error(struct px_pipe *pp, enum sk_api_code code, const char *reason, const char *msg)
{
    sk_metric_inc(pp->p->m_refused, reason);
    struct sk_loop *loop = pp->p->d->loop;
    sk_loop_timer_stop(loop, &pp->timer);
    sk_loop_watch_remove(loop, pp->uw);
    pp->uw = NULL;
    sk_close(&pp->ufd);
    if (pp->req != NULL)
        sk_http_reply_api_error(pp->req, code, "%s", msg);
}

static void ws_started(struct sk_http_upgraded *up, int fd, const char *extra, size_t extra_len, void *ctx)
{
    struct px_pipe *pp = ctx;
    pp->up = up;
    pp->cfd = fd;
    pp->req = NULL; /* over for us; its close callback will not run */
    if (pp->aborted || pp->ufd < 0) {
        pipe_free(pp);
        return;
    }
    if (extra_len > 0)
        buf_append(&pp->c2u, extra, extra_len);
    relay_start(pp);
}

static void ws_stop(struct sk_http_upgraded *up, bool now, void *ctx)
{
    (void)up;
    (void)now;
    /* no goodbye of our own to say in someone else's protocol: close */
    pipe_free(ctx);
}

static const struct sk_http_upgrade_ops ws_ops = {.started = ws_started, .stop = ws_stop};

static const char *head_header(const char *head, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *end = strstr(v, "\r\n");
            *len = end != NULL ? (size_t)(end - v) : strlen(v);
            while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
                (*len)--;
            return v;
        }
    }
    return NULL;
}

/* pass_headers - the sandbox's answer headers onto the client's answer
 * (hop-by-hop ones and the framing left out); its Content-Type to *ctype. */
static void pass_headers(struct px_pipe *pp, const char *head, bool upgrade, char **ctype)
{
    for (const char *line = strstr(head, "\r\n"); line != NULL;) {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (end == NULL || end == line)
            break;
        const char *colon = memchr(line, ':', (size_t)(end - line));
        if (colon != NULL && colon != line && line[0] != ' ' && line[0] != '\t') {
            char *name = xstrndup(line, (size_t)(colon - line));
            const char *v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            char *value = xstrndup(v, (size_t)(end - v));
            bool skip = sk__px_is_hop_header(name, false);
            if (!skip && !upgrade && ctype != NULL && *ctype == NULL && strcasecmp(name, "Content-Type") == 0)
                *ctype = xstrdup(value);
            else if (!skip)
                sk_http_set_header(pp->req, name, value);
            free(name);
            free(value);
        }
        line = end;
    }
    if (pp->set_cookie != NULL)
        sk_http_set_header(pp->req, "Set-Cookie", pp->set_cookie);
}

/* answer_refused - the sandbox answered the upgrade with something else
 * than 101: pass that answer on, with the body read so far. */
static void answer_refused(struct px_pipe *pp)
{
    struct sk_loop *loop = pp->p->d->loop;
    sk_loop_timer_stop(loop, &pp->timer);
    sk_loop_watch_remove(loop, pp->uw);
    pp->uw = NULL;
    sk_close(&pp->ufd);
    if (pp->req == NULL)
        return;
    char *ctype = NULL;
    pass_headers(pp, pp->c2u.data, false, &ctype); /* the head was kept in c2u */
    size_t body = pp->u2c.len - pp->u2c.off;
    sk_http_passthrough(pp->req);
    sk_http_reply_data(pp->req, pp->status, ctype != NULL ? ctype : "application/octet-stream",
                       pp->u2c.data + pp->u2c.off, body);
    free(ctype);
}

/* got_head - the sandbox's answer head is complete (the first `head_len`
 * bytes of u2c). */
static void got_head(struct px_pipe *pp, size_t head_len)
{
    char *head = xstrndup(pp->u2c.data + pp->u2c.off, head_len);
    pp->u2c.off += head_len;
    int status = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 999) {
        free(head);
        char msg[160];
        snprintf(msg, sizeof(msg), "the server on port %u in sandbox '%s' gave no valid HTTP answer", pp->port,
                 pp->sandbox_id);
        answer_error(pp, SK_API_BAD_GATEWAY, "bad_gateway", msg);
        return;
    }
    pp->status = status;
    if (status == 101) {
        size_t len = 0;
        const char *proto = head_header(head, "Upgrade", &len);
        pp->protocol = proto != NULL ? xstrndup(proto, len) : xstrdup(sk_http_header(pp->req, "Upgrade"));
        pass_headers(pp, head, true, NULL);
        free(head);
        pp->state = P_WAIT_CLIENT;
        sk_loop_timer_stop(pp->p->d->loop, &pp->timer);
        sk_loop_watch_modify(pp->p->d->loop, pp->uw, 0, NULL);
        /* what the sandbox sent after its 101 waits in u2c for the client */
        struct sk_http_req *req = pp->req;
        sk_http_passthrough(req);
        sk_http_reply_upgrade(req, pp->protocol, &ws_ops, pp);
        return;
    }
    /* keep the head for the answer; the body follows in u2c */
    free(pp->c2u.data);
    pp->c2u.data = head;
    pp->c2u.len = pp->c2u.cap = head_len;
    pp->c2u.off = 0;
    size_t len = 0;
    const char *cl = head_header(head, "Content-Length", &len);
    const char *te = head_header(head, "Transfer-Encoding", &len);
    if (status == 204 || status == 304 || strcmp(pp->req->method, "HEAD") == 0 || te != NULL)
        pp->body_left = 0; /* a chunked body is not passed on here */
    else if (cl != NULL)
        pp->body_left = strtoll(cl, NULL, 10);
    else
        pp->body_left = -1;
    if (pp->body_left > PX_ERR_BODY_MAX || pp->body_left < -1)
        pp->body_left = PX_ERR_BODY_MAX;
    pp->state = P_ERR_BODY;
}

static void handshake_io(struct px_pipe *pp)
{
    /* the request out */
    while (pp->c2u.len > pp->c2u.off) {
        ssize_t n = SK_RETRY_EINTR(send(pp->ufd, pp->c2u.data + pp->c2u.off, pp->c2u.len - pp->c2u.off, MSG_NOSIGNAL));
        if (n > 0) {
            pp->c2u.off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        goto failed;
    }
    /* the answer in */
    for (;;) {
        if (pp->state == P_ERR_BODY) {
            size_t have = pp->u2c.len - pp->u2c.off;
            if (pp->body_left >= 0 && (int64_t)have >= pp->body_left) {
                pp->u2c.len = pp->u2c.off + (size_t)pp->body_left;
                answer_refused(pp);
                return;
            }
            if (have >= PX_ERR_BODY_MAX) {
                answer_refused(pp);
                return;
            }
        }
        size_t cap = pp->state == P_ERR_BODY ? PX_ERR_BODY_MAX + PX_HEAD_MAX : PX_HEAD_MAX;
        buf_reserve(&pp->u2c, cap);
        if (pp->u2c.len == pp->u2c.cap) {
            if (pp->state == P_HANDSHAKE)
                goto too_big;
            answer_refused(pp);
            return;
        }
        ssize_t n = SK_RETRY_EINTR(recv(pp->ufd, pp->u2c.data + pp->u2c.len, pp->u2c.cap - pp->u2c.len, 0));
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (pp->state == P_ERR_BODY) {
                answer_refused(pp); /* the body ends with the connection */
                return;
            }
            goto failed;
        }
        size_t old = pp->u2c.len;
        pp->u2c.len += (size_t)n;
        if (pp->state == P_HANDSHAKE) {
            size_t from = old - pp->u2c.off >= 3 ? old - 3 : pp->u2c.off;
            char *end = memmem(pp->u2c.data + from, pp->u2c.len - from, "\r\n\r\n", 4);
            if (end != NULL) {
                got_head(pp, (size_t)(end + 4 - (pp->u2c.data + pp->u2c.off)));
                if (pp->state != P_ERR_BODY)
                    return;
            }
        }
    }
    set_watch(pp, pp->ufd, &pp->uw, SK_LOOP_READ | (pp->c2u.len > pp->c2u.off ? SK_LOOP_WRITE : 0));
    return;
too_big:;
    char msg[160];
    snprintf(msg, sizeof(msg), "the answer head of port %u in sandbox '%s' is larger than %d bytes", pp->port,
             pp->sandbox_id, PX_HEAD_MAX);
    answer_error(pp, SK_API_BAD_GATEWAY, "bad_gateway", msg);
    return;
failed:;
    char fmsg[160];
    snprintf(fmsg, sizeof(fmsg), "the server on port %u in sandbox '%s' closed the connection without an answer",
             pp->port, pp->sandbox_id);
    answer_error(pp, SK_API_BAD_GATEWAY, "bad_gateway", fmsg);
}

/* connected - the non-blocking connect inside the sandbox finished. */
static void connected(struct px_pipe *pp)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(pp->ufd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr == EINPROGRESS || soerr == EALREADY)
        return;
    if (soerr != 0) {
        if (pp->kind == PIPE_TCP) {
            sk_metric_inc(pp->p->m_refused, "bad_gateway");
            pipe_free(pp);
            return;
        }
        char msg[160];
        snprintf(msg, sizeof(msg), "nothing answers on port %u in sandbox '%s'", pp->port, pp->sandbox_id);
        answer_error(pp, SK_API_BAD_GATEWAY, "bad_gateway", msg);
        return;
    }
    if (pp->kind == PIPE_TCP) {
        relay_start(pp);
        return;
    }
    pp->state = P_HANDSHAKE;
    handshake_io(pp);
}

static void on_fd(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct px_pipe *pp = ctx;
    switch (pp->state) {
    case P_CONNECTING: connected(pp); break;
    case P_HANDSHAKE:
    case P_ERR_BODY: handshake_io(pp); break;
    case P_WAIT_CLIENT: break;
    case P_RELAY: relay(pp); break;
    }
}

static void on_timer(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)loop;
    (void)t;
    struct px_pipe *pp = ctx;
    if (pp->kind == PIPE_TCP) {
        sk_metric_inc(pp->p->m_refused, "timeout");
        pipe_free(pp);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "the server on port %u in sandbox '%s' did not answer within %lld s", pp->port,
             pp->sandbox_id, (long long)(pp->p->timeout_ms / 1000));
    answer_error(pp, SK_API_DEADLINE_EXCEEDED, "timeout", msg);
}

/* ---- the request's side ---------------------------------------------------------- */

static ssize_t ws_sink(struct sk_http_req *req, const char *data, size_t len, void *ctx)
{
    (void)ctx;
    if (data != NULL)
        return (ssize_t)len; /* an upgrade request carries no body to pass on */
    if (!sk_http_is_answered(req))
        sk_http_suspend(req);
    return 0;
}

static void ws_req_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct px_pipe *pp = ctx;
    pp->req = NULL;
    pipe_free(pp); /* the 101 never went out, or the answer was another */
}

void sk__px_upgrade_start(struct sk_proxy *p, struct sk_http_req *req, struct px_target *t)
{
    if (p->n_pipes >= PX_PIPES_MAX) {
        sk_metric_inc(p->m_refused, "unavailable");
        sk_http_reply_api_error(req, SK_API_UNAVAILABLE, "too many proxied connections (%d); retry later",
                                PX_PIPES_MAX);
        return;
    }
    struct px_pipe *pp = pipe_new(p, PIPE_WS, t->sb->id, t->port_num);
    pp->req = req;
    pp->set_cookie = steal_pointer(&t->set_cookie);
    sk_loop_timer_init(&pp->timer, on_timer, pp);
    sk_http_on_close(req, ws_req_closed, pp);
    sk_http_body_sink(req, ws_sink, pp);
    /* the request, as it goes to the sandbox */
    char *line = xasprintf("%s %s HTTP/1.1\r\n", req->method, t->forward);
    buf_append(&pp->c2u, line, strlen(line));
    free(line);
    sk__px_forward_headers(p, req, t, true, add_line, &pp->c2u);
    buf_append(&pp->c2u, "\r\n", 2);

    int r = sk__px_connect(p, pp->sandbox_id, pp->port, &pp->ufd);
    if (r < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot connect to port %u in sandbox '%s': %s", pp->port, pp->sandbox_id,
                 strerror(-r));
        answer_error(pp, SK_API_BAD_GATEWAY, "bad_gateway", msg);
        return;
    }
    pp->state = P_CONNECTING;
    sk_loop_timer_start(p->d->loop, &pp->timer, p->timeout_ms);
    if (set_watch(pp, pp->ufd, &pp->uw, SK_LOOP_WRITE) < 0)
        answer_error(pp, SK_API_INTERNAL, "bad_gateway", "cannot watch the connection");
}

void sk__px_tcp_accept(struct sk_proxy *p, struct px_port *port, int fd, const struct sockaddr *peer)
{
    (void)peer;
    if (p->n_pipes >= PX_PIPES_MAX || p->stopping) {
        sk_metric_inc(p->m_refused, "unavailable");
        close(fd);
        return;
    }
    struct px_pipe *pp = pipe_new(p, PIPE_TCP, port->sb->id, port->spec.port);
    pp->cfd = fd;
    sk_loop_timer_init(&pp->timer, on_timer, pp);
    sk__px_touch(p, pp->sandbox_id);
    int r = sk__px_connect(p, pp->sandbox_id, pp->port, &pp->ufd);
    if (r < 0) {
        sk_metric_inc(p->m_refused, "bad_gateway");
        pipe_free(pp);
        return;
    }
    pp->state = P_CONNECTING;
    sk_loop_timer_start(p->d->loop, &pp->timer, PX_CONNECT_TIMEOUT_MS);
    if (set_watch(pp, pp->ufd, &pp->uw, SK_LOOP_WRITE) < 0)
        pipe_free(pp);
}

void sk__px_pipes_abort(struct sk_proxy *p, const char *sandbox_id, uint16_t port)
{
    for (struct px_pipe *pp = p->pipes, *next; pp != NULL; pp = next) {
        next = pp->next;
        if (sandbox_id != NULL && strcmp(pp->sandbox_id, sandbox_id) != 0)
            continue;
        if (port != 0 && pp->port != port)
            continue;
        if (pp->state == P_RELAY || pp->kind == PIPE_TCP) {
            pipe_free(pp);
        } else if (pp->state == P_WAIT_CLIENT) {
            /* the 101 is on its way: its start callback closes */
            pp->aborted = true;
            sk_loop_watch_remove(p->d->loop, pp->uw);
            pp->uw = NULL;
            sk_close(&pp->ufd);
        } else if (pp->req != NULL && !sk_http_is_answered(pp->req)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "port %u of sandbox '%s' is gone", pp->port, pp->sandbox_id);
            answer_error(pp, SK_API_NOT_FOUND, "not_found", msg);
        }
    }
}
