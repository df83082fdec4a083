/* proxy_http.c - proxied HTTP requests: libcurl's multi-socket API on
 * skiffd's loop is the client side, libmicrohttpd the server side.
 *
 * One exchange per request (struct px_http). The request body streams from
 * the client (a body sink) into a bounded buffer that curl's read callback
 * drains; the answer streams from curl's write callback into another
 * bounded buffer that the client's stream producer drains. A full buffer
 * pauses its writer (the sink sleeps; curl is paused) and a drained one
 * wakes it, so a slow side never grows the daemon's memory beyond
 * PX_HTTP_BUF per direction. The answer starts once the sandbox's response
 * headers are in and the request body has been passed on (libmicrohttpd
 * sends an answer only after the whole request was read).
 *
 * Connections inside the sandbox are made by curl through our
 * OPENSOCKETFUNCTION, which creates the socket in the sandbox's network
 * namespace, and are kept alive in curl's connection cache for the next
 * request. Every sandbox is reached under a name of its own,
 * "<sandbox id>.skiff.invalid:<port>", that CONNECT_TO sends to 127.0.0.1
 * (of the namespace the socket was made in): curl reuses a connection only
 * for the same name and port, so a connection can never carry a request to
 * another sandbox or port. A request with a body gets a fresh connection
 * (curl can retry a request on a reused connection that died only when it
 * can send the body again, and a streamed body cannot be). When a port is
 * unexposed or its sandbox ends, the cached connections to it are closed
 * at once (px_kill_sockets): they would otherwise keep the sandbox's
 * namespace alive.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "proxy_int.h"
#include "sched/sandboxes.h"

#define PX_RESP_HEADERS_MAX 100

struct px_hdr {
    char *name, *value;
};

struct px_http {
    struct sk_proxy *p;
    struct px_http *prev, *next;
    struct sk_http_req *req; /* NULL once the client side is finished */
    CURL *easy;              /* NULL once the transfer is over */
    struct curl_slist *hdrs;
    char sandbox_id[20];
    uint16_t port;
    int64_t start_ns;
    bool head_request;
    char *set_cookie;

    /* client -> sandbox */
    char *in;
    size_t in_len, in_off;
    bool in_done;      /* the body has been read whole */
    bool read_paused;  /* curl waits for body bytes */
    bool sink_waiting; /* the sink took less than offered: resume when there is room */

    /* sandbox -> client */
    int status;
    struct px_hdr *rh;
    size_t n_rh;
    int64_t content_length; /* -1: not given */
    bool head_done;
    char *out;
    size_t out_len, out_off, out_cap;
    bool write_paused;

    bool body_end_seen; /* the sink saw the end of the request body */
    bool answered;
    bool done;   /* the transfer is over */
    bool failed; /* ... without a complete answer */
    struct sk_loop_timer timer;
};

struct px_sock {
    struct sk_proxy *p;
    curl_socket_t fd;
    struct sk_loop_watch *watch;
};

static void check_done(struct sk_proxy *p);

/* ---- curl on the loop ---------------------------------------------------------------- */

static void on_curl_fd(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    struct px_sock *ps = ctx;
    struct sk_proxy *p = ps->p;
    int bits = ((events & SK_LOOP_READ) ? CURL_CSELECT_IN : 0) | ((events & SK_LOOP_WRITE) ? CURL_CSELECT_OUT : 0) |
               ((events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
    curl_multi_socket_action(p->multi, fd, bits, &p->curl_running);
    check_done(p);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    struct sk_proxy *p = userp;
    struct px_sock *ps = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (ps != NULL) {
            sk_loop_watch_remove(p->d->loop, ps->watch);
            curl_multi_assign(p->multi, fd, NULL);
            free(ps);
        }
        return 0;
    }
    uint32_t ev = ((what & CURL_POLL_IN) ? SK_LOOP_READ : 0) | ((what & CURL_POLL_OUT) ? SK_LOOP_WRITE : 0);
    struct sk_error err = {0};
    if (ps == NULL) {
        ps = xcalloc(1, sizeof(*ps));
        ps->p = p;
        ps->fd = fd;
        if (sk_loop_watch_add(p->d->loop, fd, ev, on_curl_fd, ps, &ps->watch, &err) < 0) {
            sk_log_error("proxy: %s", err.msg);
            free(ps);
            return -1;
        }
        curl_multi_assign(p->multi, fd, ps);
    } else if (sk_loop_watch_modify(p->d->loop, ps->watch, ev, &err) < 0) {
        sk_log_error("proxy: %s", err.msg);
        return -1;
    }
    return 0;
}

static void on_curl_timer(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)loop;
    (void)t;
    struct sk_proxy *p = ctx;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &p->curl_running);
    check_done(p);
}

static int on_curl_timeout(CURLM *m, long ms, void *userp)
{
    (void)m;
    struct sk_proxy *p = userp;
    if (ms < 0)
        sk_loop_timer_stop(p->d->loop, &p->curl_timer);
    else
        sk_loop_timer_start(p->d->loop, &p->curl_timer, ms);
    return 0;
}

int sk__px_http_init(struct sk_proxy *p, struct sk_error *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sk_error_setv(err, EIO, "libcurl cannot start");
    p->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (p->devnull < 0)
        return sk_error_set(err, errno, "open '/dev/null'");
    p->multi = curl_multi_init();
    p->connect_to = curl_slist_append(NULL, "::127.0.0.1:");
    if (p->multi == NULL || p->connect_to == NULL)
        return sk_error_setv(err, ENOMEM, "libcurl: no multi handle");
    sk_loop_timer_init(&p->curl_timer, on_curl_timer, p);
    curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, (long)PX_KEEPALIVE_MAX);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    return 0;
}

void sk__px_http_release(struct sk_proxy *p)
{
    if (p->multi != NULL)
        curl_multi_cleanup(p->multi); /* closes the cached connections (on_close_socket) */
    p->multi = NULL;
    curl_slist_free_all(p->connect_to);
    p->connect_to = NULL;
    while (p->usocks != NULL) {
        struct px_usock *u = p->usocks;
        p->usocks = u->next;
        close(u->fd);
        free(u);
    }
    sk_close(&p->devnull);
    if (p->d != NULL && p->d->loop != NULL)
        sk_loop_timer_stop(p->d->loop, &p->curl_timer);
}

/* ---- one exchange ------------------------------------------------------------------ */

static void x_free(struct px_http *x)
{
    struct sk_proxy *p = x->p;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else if (p->https == x)
        p->https = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    sk_loop_timer_stop(p->d->loop, &x->timer);
    curl_slist_free_all(x->hdrs);
    for (size_t i = 0; i < x->n_rh; i++) {
        free(x->rh[i].name);
        free(x->rh[i].value);
    }
    free(x->rh);
    free(x->in);
    free(x->out);
    free(x->set_cookie);
    free(x);
}

/* x_end_transfer - take the easy handle out (never from a curl callback). */
static void x_end_transfer(struct px_http *x)
{
    if (x->easy == NULL)
        return;
    curl_multi_remove_handle(x->p->multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    sk_loop_timer_stop(x->p->d->loop, &x->timer);
}

static void x_unpause(struct px_http *x)
{
    if (x->easy == NULL || (!x->read_paused && !x->write_paused))
        return;
    x->read_paused = x->write_paused = false;
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

static ssize_t produce(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx)
{
    (void)req;
    (void)pos;
    struct px_http *x = ctx;
    size_t avail = x->out_len - x->out_off;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, x->out + x->out_off, n);
        x->out_off += n;
        if (x->out_off == x->out_len)
            x->out_off = x->out_len = 0;
        if (x->write_paused)
            x_unpause(x); /* may append more right away */
        return (ssize_t)n;
    }
    if (x->done)
        return x->failed ? SK_HTTP_STREAM_ERROR : SK_HTTP_STREAM_END;
    if (x->write_paused)
        x_unpause(x);
    return SK_HTTP_STREAM_WAIT;
}

static bool no_body_status(int status)
{
    return status == 204 || status == 304 || (status >= 100 && status < 200);
}

/* x_answer - pass the sandbox's status and headers on, once they are in
 * and the request body is through. */
static void x_answer(struct px_http *x)
{
    struct sk_http_req *req = x->req;
    if (req == NULL || x->answered || !x->head_done || !x->body_end_seen)
        return;
    x->answered = true;
    const char *ctype = NULL;
    for (size_t i = 0; i < x->n_rh; i++) {
        if (ctype == NULL && strcasecmp(x->rh[i].name, "Content-Type") == 0)
            ctype = x->rh[i].value;
        else
            sk_http_set_header(req, x->rh[i].name, x->rh[i].value);
    }
    if (x->set_cookie != NULL)
        sk_http_set_header(req, "Set-Cookie", x->set_cookie);
    if (x->content_length >= 0 && !no_body_status(x->status))
        sk_http_set_stream_size(req, (uint64_t)x->content_length);
    sk_http_passthrough(req);
    sk_http_reply_stream(req, x->status, ctype, produce, x);
}

/* x_fail - the exchange cannot go on: an error answer when none has begun,
 * a cut body otherwise. */
static void x_fail(struct px_http *x, enum sk_api_code code, const char *reason, const char *msg)
{
    x->done = x->failed = true;
    sk_metric_inc(x->p->m_refused, reason);
    if (x->req == NULL)
        return;
    if (!x->answered) {
        x->answered = true;
        sk_http_reply_api_error(x->req, code, "%s", msg);
    } else {
        sk_http_resume(x->req); /* the producer sees the end */
    }
}

static void x_transfer_done(struct px_http *x, CURLcode res)
{
    x_end_transfer(x);
    x->done = true;
    if (res == CURLE_OK && x->head_done) {
        if (x->req != NULL)
            sk_http_resume(x->req);
    } else if (!x->head_done) {
        char msg[256];
        if (res == CURLE_COULDNT_CONNECT)
            snprintf(msg, sizeof(msg), "nothing answers on port %u in sandbox '%s'", x->port, x->sandbox_id);
        else if (res == CURLE_OPERATION_TIMEDOUT)
            snprintf(msg, sizeof(msg), "port %u in sandbox '%s' did not accept the connection in time", x->port,
                     x->sandbox_id);
        else
            snprintf(msg, sizeof(msg), "the server on port %u in sandbox '%s' gave no valid HTTP answer (%s)", x->port,
                     x->sandbox_id, res == CURLE_OK ? "no response headers" : curl_easy_strerror(res));
        bool timeout = res == CURLE_OPERATION_TIMEDOUT;
        x_fail(x, timeout ? SK_API_DEADLINE_EXCEEDED : SK_API_BAD_GATEWAY, timeout ? "timeout" : "bad_gateway", msg);
    } else {
        sk_log_debug("proxy: sandbox '%s' port %u: answer cut: %s", x->sandbox_id, x->port, curl_easy_strerror(res));
        x_fail(x, SK_API_BAD_GATEWAY, "bad_gateway", "cut");
    }
    if (x->req == NULL)
        x_free(x);
}

static void check_done(struct sk_proxy *p)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode res = msg->data.result;
        struct px_http *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            x_transfer_done(x, res);
    }
}

static void on_header_timeout(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)loop;
    (void)t;
    struct px_http *x = ctx;
    if (x->head_done || x->done)
        return;
    x_end_transfer(x);
    char msg[256];
    snprintf(msg, sizeof(msg), "the server on port %u in sandbox '%s' did not answer within %lld s", x->port,
             x->sandbox_id, (long long)(x->p->timeout_ms / 1000));
    x_fail(x, SK_API_DEADLINE_EXCEEDED, "timeout", msg);
    if (x->req == NULL)
        x_free(x);
}

/* ---- curl callbacks (nothing here may remove a handle) ------------------------------- */

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct px_http *x = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN || addr->family != AF_INET)
        return CURL_SOCKET_BAD;
    /* the only address curl may connect to is the sandbox's loopback */
    const struct sockaddr_in *sa = (const struct sockaddr_in *)&addr->addr;
    if (sa->sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        return CURL_SOCKET_BAD;
    struct px_sandbox *s = sk__px_find_sandbox(x->p, x->sandbox_id);
    if (s == NULL)
        return CURL_SOCKET_BAD;
    int fd = sk__px_open_socket(x->p, s->netns_fd, AF_INET);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    struct px_usock *u = xcalloc(1, sizeof(*u));
    u->fd = fd;
    u->port = x->port;
    snprintf(u->sandbox_id, sizeof(u->sandbox_id), "%s", x->sandbox_id);
    u->next = x->p->usocks;
    x->p->usocks = u;
    return fd;
}

/* on_close_socket - curl is done with a connection (clientp is the proxy:
 * the exchange that opened it may be long gone). */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    struct sk_proxy *p = clientp;
    for (struct px_usock **pp = &p->usocks; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            struct px_usock *u = *pp;
            *pp = u->next;
            free(u);
            break;
        }
    }
    return close(fd);
}

/* px_kill_sockets - close the sandbox end of every connection curl holds to
 * (sandbox, port) (port 0: any) without taking the descriptors from curl:
 * dup2 puts /dev/null in their place, which curl finds readable - a dead
 * connection - and closes when it looks at it next. */
static void px_kill_sockets(struct sk_proxy *p, const char *sandbox_id, uint16_t port)
{
    for (struct px_usock *u = p->usocks; u != NULL; u = u->next) {
        if ((sandbox_id != NULL && strcmp(u->sandbox_id, sandbox_id) != 0) || (port != 0 && u->port != port))
            continue;
        if (dup2(p->devnull, u->fd) < 0)
            sk_log_warn("proxy: drop a connection to sandbox '%s' port %u: %s", u->sandbox_id, u->port,
                        strerror(errno));
        u->sandbox_id[0] = '\0'; /* not the sandbox's any more */
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct px_http *x = ctx;
    size_t len = size * n;
    if (x->head_done)
        return len; /* trailers */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        for (size_t i = 0; i < x->n_rh; i++) {
            free(x->rh[i].name);
            free(x->rh[i].value);
        }
        x->n_rh = 0;
        x->content_length = -1;
        const char *sp = memchr(data, ' ', len);
        x->status = sp != NULL && (size_t)(sp - data) + 4 <= len ? atoi(sp + 1) : 0;
        return len;
    }
    size_t end = len;
    while (end > 0 && (data[end - 1] == '\r' || data[end - 1] == '\n'))
        end--;
    if (end == 0) {
        /* the end of a head; 1xx ones are interim */
        if (x->status >= 100 && x->status < 200)
            return len;
        x->head_done = true;
        sk_loop_timer_stop(x->p->d->loop, &x->timer);
        sk_metric_observe(x->p->m_latency, NULL, (double)(sk_now_ns() - x->start_ns) / 1e9);
        if (x->status < 200 || x->status > 999)
            return 0; /* not HTTP we can pass on: fails the transfer */
        x_answer(x);
        return len;
    }
    const char *colon = memchr(data, ':', end);
    if (colon == NULL || colon == data || data[0] == ' ' || data[0] == '\t')
        return len;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    while (v < data + end && (*v == ' ' || *v == '\t'))
        v++;
    char *name = xstrndup(data, nlen);
    char *value = xstrndup(v, (size_t)(data + end - v));
    if (strcasecmp(name, "Content-Length") == 0)
        x->content_length = strtoll(value, NULL, 10);
    if (sk__px_is_hop_header(name, false) || x->n_rh >= PX_RESP_HEADERS_MAX) {
        free(name);
        free(value);
        return len;
    }
    x->rh = xrealloc(x->rh, (x->n_rh + 1) * sizeof(*x->rh));
    x->rh[x->n_rh].name = name;
    x->rh[x->n_rh].value = value;
    x->n_rh++;
    return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *ctx)
{
    struct px_http *x = ctx;
    size_t len = size * n;
    if (x->req == NULL)
        return 0; /* nobody to give it to: fail the transfer */
    if (x->out_off > 0 && x->out_off == x->out_len)
        x->out_off = x->out_len = 0;
    if (x->out_len > 0 && x->out_len + len > PX_HTTP_BUF) {
        if (x->out_off > 0) {
            memmove(x->out, x->out + x->out_off, x->out_len - x->out_off);
            x->out_len -= x->out_off;
            x->out_off = 0;
        }
        if (x->out_len + len > PX_HTTP_BUF) {
            x->write_paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
    }
    if (x->out_len + len > x->out_cap) {
        x->out_cap = x->out_len + len > PX_HTTP_BUF ? x->out_len + len : PX_HTTP_BUF;
        x->out = xrealloc(x->out, x->out_cap);
    }
    memcpy(x->out + x->out_len, data, len);
    x->out_len += len;
    sk_metric_add(x->p->m_bytes, "http", (double)len);
    sk__px_touch(x->p, x->sandbox_id);
    sk_http_resume(x->req);
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
    struct px_http *x = ctx;
    size_t max = size * n;
    size_t avail = x->in_len - x->in_off;
    if (avail == 0) {
        if (x->in_done)
            return 0;
        x->read_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t k = avail < max ? avail : max;
    memcpy(buf, x->in + x->in_off, k);
    x->in_off += k;
    if (x->in_off == x->in_len)
        x->in_off = x->in_len = 0;
    sk_metric_add(x->p->m_bytes, "http", (double)k);
    if (x->sink_waiting && x->req != NULL) {
        x->sink_waiting = false;
        sk_http_resume(x->req);
    }
    return k;
}

/* ---- the client's side ------------------------------------------------------------- */

static ssize_t sink(struct sk_http_req *req, const char *data, size_t len, void *ctx)
{
    struct px_http *x = ctx;
    if (data == NULL) {
        x->in_done = x->body_end_seen = true;
        if (x->read_paused)
            x_unpause(x);
        x_answer(x);
        if (!x->answered)
            sk_http_suspend(req);
        return 0;
    }
    if (x->done)
        return (ssize_t)len; /* nowhere to go: drop */
    if (x->in_off > 0) {
        memmove(x->in, x->in + x->in_off, x->in_len - x->in_off);
        x->in_len -= x->in_off;
        x->in_off = 0;
    }
    if (x->in == NULL)
        x->in = xmalloc(PX_HTTP_BUF); /* only requests with a body need one */
    size_t room = PX_HTTP_BUF - x->in_len;
    size_t k = len < room ? len : room;
    memcpy(x->in + x->in_len, data, k);
    x->in_len += k;
    if (k < len)
        x->sink_waiting = true;
    if (x->read_paused && k > 0)
        x_unpause(x);
    return (ssize_t)k;
}

static void on_req_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct px_http *x = ctx;
    x->req = NULL;
    x_end_transfer(x);
    x_free(x);
}

static void add_header(const char *name, const char *value, void *arg)
{
    struct px_http *x = arg;
    char *line = value[0] != '\0' ? xasprintf("%s: %s", name, value) : xasprintf("%s;", name);
    struct curl_slist *l = curl_slist_append(x->hdrs, line);
    free(line);
    if (l == NULL)
        abort(); /* out of memory */
    x->hdrs = l;
}

void sk__px_http_start(struct sk_proxy *p, struct sk_http_req *req, struct px_target *t)
{
    struct px_http *x = xcalloc(1, sizeof(*x));
    x->p = p;
    x->req = req;
    x->port = t->port_num;
    x->content_length = -1;
    x->start_ns = sk_now_ns();
    x->head_request = strcmp(req->method, "HEAD") == 0;
    snprintf(x->sandbox_id, sizeof(x->sandbox_id), "%s", t->sb->id);
    x->set_cookie = steal_pointer(&t->set_cookie);
    sk_loop_timer_init(&x->timer, on_header_timeout, x);
    x->next = p->https;
    if (p->https != NULL)
        p->https->prev = x;
    p->https = x;

    const char *cl = sk_http_header(req, "Content-Length");
    bool has_body = sk_http_header(req, "Transfer-Encoding") != NULL || cl != NULL;
    sk__px_forward_headers(p, req, t, false, add_header, x);
    /* "Name:" removes a header curl would add: no 100-continue round trip
     * (the body is on its way), no Accept the client did not send */
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    if (sk_http_header(req, "Accept") == NULL)
        x->hdrs = curl_slist_append(x->hdrs, "Accept:");
    if (x->hdrs == NULL)
        abort(); /* out of memory */

    CURL *e = curl_easy_init();
    if (e == NULL)
        abort();
    /* a name per sandbox: curl's connection cache keys on it */
    char *url = xasprintf("http://%s.skiff.invalid:%u%s", x->sandbox_id, x->port, t->forward);
    curl_easy_setopt(e, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, p->connect_to);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, has_body ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)PX_KEEPALIVE_S);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)PX_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, p);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    if (has_body) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_off_t size = cl != NULL && sk_http_header(req, "Transfer-Encoding") == NULL ? strtoll(cl, NULL, 10) : -1;
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, size);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (x->head_request) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    x->easy = e;
    x->in_done = !has_body;
    sk_http_on_close(req, on_req_closed, x);
    sk_http_body_sink(req, sink, x);
    sk_loop_timer_start(p->d->loop, &x->timer, p->timeout_ms);
    CURLMcode mc = curl_multi_add_handle(p->multi, e);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(e);
        x->easy = NULL;
        x_fail(x, SK_API_INTERNAL, "bad_gateway", curl_multi_strerror(mc));
    }
}

void sk__px_http_abort(struct sk_proxy *p, const char *sandbox_id, uint16_t port, const char *why)
{
    for (struct px_http *x = p->https, *next; x != NULL; x = next) {
        next = x->next;
        if (sandbox_id != NULL && strcmp(x->sandbox_id, sandbox_id) != 0)
            continue;
        if (port != 0 && x->port != port)
            continue;
        if (x->done && x->easy == NULL)
            continue;
        x_end_transfer(x);
        char msg[256];
        snprintf(msg, sizeof(msg), "port %u of sandbox '%s' is gone: %s", x->port, x->sandbox_id, why);
        x_fail(x, SK_API_NOT_FOUND, "not_found", msg);
        if (x->req == NULL)
            x_free(x);
    }
    px_kill_sockets(p, sandbox_id, port);
}
