/* http.c - libmicrohttpd glue: listening socket, event-loop integration,
 * per-request state machine (headers, body, dispatch, suspend/resume,
 * streaming), protocol upgrades and graceful stop. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define HTTP_STREAM_BLOCK (64 * 1024)
#define HTTP_CONN_MEMORY (64 * 1024)
#define HTTP_BACKLOG 511
/* After an early answer (413, 401 with a body on the way) at most this much
 * more body is read and dropped before the connection is cut. */
#define HTTP_DISCARD_MAX (1024 * 1024)

struct sk_http {
    struct sk_loop *loop;
    struct sk_http_config cfg;
    struct MHD_Daemon *mhd;
    struct sk_loop_watch *watch;
    struct sk_loop_timer timer;
    struct sk_loop_deferred kick;
    char *listen;
    char *url;
    char *unix_path; /* unlinked at stop */
    bool quiesced;
    struct sk_http_req *reqs; /* in flight */
    size_t n_active;
    struct sk_http_upgraded *upgrades; /* answered with 101: waiting to be sent, or taken over */
};

struct sk_http_upgraded {
    struct sk_http *h;
    struct sk_http_req *req; /* until the 101 is sent */
    const struct sk_http_upgrade_ops *ops;
    void *ctx;
    char *protocol;
    struct MHD_UpgradeResponseHandle *urh; /* set once taken over */
    bool in_started;                       /* ops->started runs */
    bool closed;                           /* closed from inside ops->started */
    struct sk_http_upgraded *prev, *next;
};

static void http_run(struct sk_http *h);
static void on_kick(struct sk_loop *loop, void *ctx);

/* ---- listening socket ------------------------------------------------------- */

static int listen_unix(const char *path, int *out, struct sk_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
        return sk_error_setv(err, EINVAL, "listen address 'unix:%s': need an absolute path shorter than %zu bytes",
                             path, sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return sk_error_set(err, errno, "socket");
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return sk_error_setv(err, EEXIST, "listen address 'unix:%s' exists and is not a socket", path);
        /* A socket nobody answers on is left over from a crash. */
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return sk_error_setv(err, EADDRINUSE, "listen address 'unix:%s' is in use by another server", path);
        unlink(path);
    }
    /* Only the owner may connect; tokens are still required. */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int saved = errno;
    umask(old);
    if (r < 0)
        return sk_error_set(err, saved, "bind 'unix:%s'", path);
    if (listen(fd, HTTP_BACKLOG) < 0)
        return sk_error_set(err, errno, "listen 'unix:%s'", path);
    *out = steal_fd(&fd);
    return 0;
}

static int listen_tcp(const char *spec, int *out, char **url, struct sk_error *err)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        strlen(colon + 1) > 5 || atoi(colon + 1) > 65535)
        return sk_error_setv(err, EINVAL, "listen address '%s': expected HOST:PORT, [V6]:PORT or unix:/PATH", spec);
    _cleanup_free_ char *host = xstrndup(spec, (size_t)(colon - spec));
    if (host[0] == '[') {
        size_t len = strlen(host);
        if (len < 3 || host[len - 1] != ']')
            return sk_error_setv(err, EINVAL, "listen address '%s': unbalanced brackets", spec);
        memmove(host, host + 1, len - 2);
        host[len - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gr != 0)
        return sk_error_setv(err, EINVAL, "listen address '%s': %s", spec, gai_strerror(gr));
    _cleanup_close_ int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return sk_error_set(err, errno, "socket");
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int saved = errno;
        freeaddrinfo(ai);
        return sk_error_set(err, saved, "bind '%s'", spec);
    }
    freeaddrinfo(ai);
    if (listen(fd, HTTP_BACKLOG) < 0)
        return sk_error_set(err, errno, "listen '%s'", spec);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return sk_error_set(err, errno, "getsockname");
    char addr[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
        port = ntohs(s6->sin6_port);
        *url = xasprintf("http://[%s]:%d", addr, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
        port = ntohs(s4->sin_port);
        *url = xasprintf("http://%s:%d", addr, port);
    }
    *out = steal_fd(&fd);
    return 0;
}

/* ---- requests ------------------------------------------------------------------- */

static void req_resume(struct sk_http_req *req)
{
    struct sk_http *h = req->server;
    if (!req->suspended)
        return;
    req->suspended = false;
    MHD_resume_connection(req->conn);
    /* MHD sees the resumption on its next run; make sure there is one. */
    sk_loop_defer(h->loop, &h->kick, on_kick, h);
}

static const struct sk_http_req_ops req_ops = {.resume = req_resume};

static void req_suspend(struct sk_http_req *req)
{
    if (req->suspended)
        return;
    req->suspended = true;
    MHD_suspend_connection(req->conn);
}

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct sk_http_req *req = cls;
    if (kind == MHD_GET_ARGUMENT_KIND)
        sk_http_req_add_query(req, key, value);
    else
        sk_http_req_add_header(req, key, value);
    return MHD_YES;
}

static struct sk_http_req *req_new(struct sk_http *h, struct MHD_Connection *conn, const char *method, const char *url)
{
    struct sk_http_req *req = xmalloc(sizeof(*req));
    sk_http_req_init(req, method, url, h->cfg.max_body);
    req->ops = &req_ops;
    req->conn = conn;
    req->server = h;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_kv, req);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_kv, req);
    req->next = h->reqs;
    if (h->reqs != NULL)
        h->reqs->prev = req;
    h->reqs = req;
    h->n_active++;
    return req;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sk_http_req *req = cls;
    if (req->aborted || req->closing)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    req->in_callback = true;
    req->wake_pending = false;
    ssize_t r = req->stream_fn(req, pos, buf, max, req->stream_ctx);
    req->in_callback = false;
    if (r > 0 && (size_t)r <= max)
        return r;
    if (r == SK_HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (r == SK_HTTP_STREAM_WAIT) {
        /* Returning 0 makes MHD ask again at once; sleep until the
         * producer's owner calls sk_http_resume, unless it already did. */
        if (!req->wake_pending)
            req_suspend(req);
        req->wake_pending = false;
        return 0;
    }
    if (r > 0)
        sk_log_error("request '%s %s': stream producer returned %zd bytes for a %zu-byte buffer", req->method,
                     req->path, r, max);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* ---- protocol upgrades ---------------------------------------------------------- */

static void upgrade_unlink(struct sk_http_upgraded *up)
{
    struct sk_http *h = up->h;
    if (up->prev != NULL)
        up->prev->next = up->next;
    else if (h->upgrades == up)
        h->upgrades = up->next;
    if (up->next != NULL)
        up->next->prev = up->prev;
    up->prev = up->next = NULL;
}

static void upgrade_free(struct sk_http_upgraded *up)
{
    free(up->protocol);
    free(up);
}

/* upgrade_is_listed - up (maybe freed: compared, never read) is still open. */
static bool upgrade_is_listed(const struct sk_http *h, const struct sk_http_upgraded *up)
{
    for (const struct sk_http_upgraded *u = h->upgrades; u != NULL; u = u->next)
        if (u == up)
            return true;
    return false;
}

/* find_upgrade - the upgrade answer waiting to be sent for req, if any. */
static struct sk_http_upgraded *find_upgrade(const struct sk_http_req *req)
{
    const struct sk_http *h = req->server;
    if (h == NULL)
        return NULL;
    for (struct sk_http_upgraded *up = h->upgrades; up != NULL; up = up->next)
        if (up->req == req && up->urh == NULL)
            return up;
    return NULL;
}

/* on_upgrade - MHD sent the 101 and hands the socket over. MHD keeps the
 * connection suspended (out of its epoll set) until the owner closes it,
 * so the socket is the owner's alone: it goes on skiffd's loop. */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct sk_http_upgraded *up = cls;
    (void)conn;
    (void)con_cls;
    up->urh = urh;
    if (up->req != NULL) {
        /* The request is over for its owner: ops->started takes over. */
        up->req->close_fn = NULL;
        up->req->close_ctx = NULL;
        up->req = NULL;
    }
    int fl = fcntl(sock, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(sock, F_SETFL, fl | O_NONBLOCK);
    fcntl(sock, F_SETFD, FD_CLOEXEC);
    up->in_started = true;
    up->ops->started(up, sock, extra_in, extra_in_size, up->ctx);
    up->in_started = false;
    if (up->closed)
        upgrade_free(up);
    else if (up->h->quiesced)
        up->ops->stop(up, false, up->ctx);
}

void sk_http_reply_upgrade(struct sk_http_req *req, const char *protocol, const struct sk_http_upgrade_ops *ops,
                           void *ctx)
{
    struct sk_http *h = req->server;
    if (req->closing || req->cancelled)
        return;
    if (sk_http_is_answered(req)) {
        sk_log_warn("request '%s %s' answered twice; keeping status %d", req->method, req->path, req->status);
        return;
    }
    if (h == NULL || req->ops != &req_ops) {
        sk_http_reply_api_error(req, SK_API_INTERNAL, "request '%s %s' cannot switch protocols here", req->method,
                                req->path);
        return;
    }
    struct sk_http_upgraded *up = xcalloc(1, sizeof(*up));
    up->h = h;
    up->req = req;
    up->ops = ops;
    up->ctx = ctx;
    up->protocol = xstrdup(protocol);
    up->next = h->upgrades;
    if (h->upgrades != NULL)
        h->upgrades->prev = up;
    h->upgrades = up;
    req->status = MHD_HTTP_SWITCHING_PROTOCOLS;
    /* as request.c's end_answer: an answer from outside wakes the request */
    if (!req->in_callback && req->suspended)
        req_resume(req);
}

void sk_http_upgraded_close(struct sk_http_upgraded *up)
{
    struct sk_http *h = up->h;
    if (up->urh != NULL)
        MHD_upgrade_action(up->urh, MHD_UPGRADE_ACTION_CLOSE);
    upgrade_unlink(up);
    /* MHD closes the socket and finishes the request on its next run. */
    if (h->mhd != NULL)
        sk_loop_defer(h->loop, &h->kick, on_kick, h);
    if (up->in_started)
        up->closed = true;
    else
        upgrade_free(up);
}

static enum MHD_Result queue_answer(struct sk_http_req *req)
{
    struct MHD_Response *resp;
    struct sk_http_upgraded *up = req->status == MHD_HTTP_SWITCHING_PROTOCOLS ? find_upgrade(req) : NULL;
    if (up != NULL) {
        resp = MHD_create_response_for_upgrade(on_upgrade, up);
        if (resp != NULL && MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, up->protocol) != MHD_YES) {
            MHD_destroy_response(resp);
            resp = NULL;
        }
    } else if (req->stream_fn != NULL && strcmp(req->method, "HEAD") == 0 && !req->stream_sized) {
        /* MHD would still frame an empty chunked body after the headers of
         * a HEAD answer, corrupting a kept-alive connection. (A sized one
         * gets its Content-Length and no body.) */
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else if (req->stream_fn != NULL) {
        uint64_t size = req->stream_sized ? req->stream_size : MHD_SIZE_UNKNOWN;
        resp = MHD_create_response_from_callback(size, HTTP_STREAM_BLOCK, stream_reader, req, NULL);
    } else {
        resp = MHD_create_response_from_buffer(req->resp_len, req->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp != NULL)
            req->resp_body = NULL;
    }
    if (resp == NULL) {
        sk_log_error("request '%s %s': cannot create a response", req->method, req->path);
        return MHD_NO;
    }
    if (req->resp_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->resp_type);
    /* Answers can carry secrets (a new token): never cache them - unless
     * the handler says otherwise (a proxied answer keeps its own). */
    bool cache_control = false;
    for (size_t i = 0; i < req->n_resp_headers; i++) {
        cache_control |= strcasecmp(req->resp_headers[i].name, MHD_HTTP_HEADER_CACHE_CONTROL) == 0;
        MHD_add_response_header(resp, req->resp_headers[i].name, req->resp_headers[i].value);
    }
    if (!cache_control && !req->passthrough)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(req->conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    req->queued = true;
    if (ok != MHD_YES)
        sk_log_error("request '%s %s': cannot queue the response", req->method, req->path);
    return ok;
}

/* after_dispatch - what a handler or end-of-body sink left: an answer to
 * send, a wish to sleep, or nothing (a bug in the handler: 500). */
static enum MHD_Result after_dispatch(struct sk_http_req *req)
{
    bool want_suspend = req->want_suspend, wake = req->wake_pending;
    req->want_suspend = req->wake_pending = false;
    if (sk_http_is_answered(req))
        return queue_answer(req);
    if (wake)
        return MHD_YES; /* resumed before it slept: MHD calls again at once */
    if (want_suspend) {
        req_suspend(req);
        return MHD_YES;
    }
    sk_http_reply_api_error(req, SK_API_INTERNAL, "handler for '%s %s' returned without an answer", req->method,
                            req->path);
    return queue_answer(req);
}

static void check_content_length(struct sk_http_req *req)
{
    const char *cl = sk_http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL)
        return;
    /* MHD has already refused a malformed Content-Length with 400. */
    unsigned long long n = strtoull(cl, NULL, 10);
    if (n > req->max_body)
        sk_http_reply_api_error(req, SK_API_TOO_LARGE, "request body of %llu bytes is over the limit of %zu bytes", n,
                                req->max_body);
}

static bool has_body(const struct sk_http_req *req)
{
    const char *cl = sk_http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return sk_http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL || (cl != NULL && strcmp(cl, "0") != 0);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct sk_http *h = cls;
    struct sk_http_req *req = *con_cls;
    (void)version;

    if (req == NULL || req->server == NULL) {
        /* Headers are in: route and authenticate before reading any body. */
        char *raw_uri = req != NULL ? steal_pointer(&req->raw_uri) : NULL;
        free(req);
        req = req_new(h, conn, method, url);
        req->raw_uri = raw_uri;
        *con_cls = req;
        req->in_callback = true;
        h->cfg.on_headers(req, h->cfg.ctx);
        req->in_callback = false;
        if (!sk_http_is_answered(req) && req->sink_fn == NULL)
            check_content_length(req);
        /* An answer queued now makes MHD close the connection (it cannot
         * know whether a body follows); without a body, wait for the
         * final call so the connection can be kept alive. */
        if (sk_http_is_answered(req) && has_body(req))
            return queue_answer(req);
        if (req->want_suspend) {
            req->want_suspend = false;
            req_suspend(req);
        }
        return MHD_YES;
    }
    if (req->aborted)
        return MHD_NO;
    if (req->queued)
        return MHD_YES;

    if (*upload_size > 0) {
        size_t n = *upload_size;
        if (sk_http_is_answered(req)) {
            /* Answered during the upload (a sink's error, an overflow): MHD
             * only takes the answer at the end, so drop the rest, within
             * reason. */
            *upload_size = 0;
            req->discarded += n;
            return req->discarded > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (req->sink_fn != NULL) {
            req->in_callback = true;
            req->wake_pending = false;
            ssize_t used = req->sink_fn(req, upload_data, n, req->sink_ctx);
            req->in_callback = false;
            bool wake = req->wake_pending;
            req->want_suspend = req->wake_pending = false;
            if (sk_http_is_answered(req)) {
                *upload_size = 0;
                return MHD_YES;
            }
            if (used < 0 || (size_t)used > n) {
                sk_http_reply_api_error(req, SK_API_INTERNAL, "body sink of '%s %s' failed", req->method, req->path);
                *upload_size = 0;
                return MHD_YES;
            }
            *upload_size = n - (size_t)used;
            if ((size_t)used < n && !wake)
                req_suspend(req);
            return MHD_YES;
        }
        *upload_size = 0;
        if (sk_http_req_append_body(req, upload_data, n) < 0) {
            sk_http_reply_api_error(req, SK_API_TOO_LARGE, "request body is over the limit of %zu bytes",
                                    req->max_body);
            req->discarded += n;
        }
        return MHD_YES;
    }

    /* The whole request is in (or a sleeping request was resumed). */
    if (sk_http_is_answered(req))
        return queue_answer(req);
    req->in_callback = true;
    req->wake_pending = false;
    if (req->sink_fn != NULL) {
        ssize_t r = req->sink_fn(req, NULL, 0, req->sink_ctx);
        (void)r;
    } else {
        req->dispatched = true;
        h->cfg.on_request(req, h->cfg.ctx);
    }
    req->in_callback = false;
    return after_dispatch(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct sk_http *h = cls;
    struct sk_http_req *req = *con_cls;
    (void)conn;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (req->server == NULL) {
        /* only its request line was seen (on_uri) */
        free(req->raw_uri);
        free(req);
        return;
    }
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        h->reqs = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    h->n_active--;
    struct sk_http_upgraded *up = find_upgrade(req);
    if (up != NULL) {
        /* never sent: the close callback below releases the owner's ctx */
        upgrade_unlink(up);
        upgrade_free(up);
    }

    req->closing = true;
    if (req->close_fn != NULL)
        req->close_fn(req, req->close_ctx);
    int status = req->queued ? req->status : 0;
    if (sk_log_enabled(SK_LOG_DEBUG)) {
        double ms = (double)(sk_now_ns() - req->start_ns) / 1e6;
        sk_log_debug("http '%s %s' %d%s %.1f ms", req->method, req->path, status,
                     toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (cut short)", ms);
    }
    if (h->cfg.on_done != NULL)
        h->cfg.on_done(req, status, h->cfg.ctx);
    sk_http_req_release(req);
    free(req);
}

/* on_uri - the request line is in: keep the target as sent (the access
 * handler only gets it percent-decoded and without the query), for a proxy
 * that must forward it unchanged. The request proper starts in on_access. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct sk_http_req *req = xcalloc(1, sizeof(*req));
    req->raw_uri = xstrdup(uri != NULL ? uri : "");
    return req;
}

int sk_http_peer(const struct sk_http_req *req, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (req->conn == NULL || req->server == NULL)
        return -1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return -1;
    const struct sockaddr *sa = ci->client_addr;
    size_t len = sa->sa_family == AF_INET6  ? sizeof(struct sockaddr_in6)
                 : sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                            : sizeof(struct sockaddr_un);
    memcpy(out, sa, len);
    return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!sk_log_enabled(SK_LOG_INFO))
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '.'))
        msg[--len] = '\0';
    sk_log_info("http: %s", msg);
}

/* ---- loop integration ------------------------------------------------------------ */

static void http_run(struct sk_http *h)
{
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES)
        sk_loop_timer_start(h->loop, &h->timer, ms > 60000 ? 60000 : (int64_t)ms);
    else
        sk_loop_timer_stop(h->loop, &h->timer);
}

static void on_epoll_ready(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)fd;
    (void)events;
    http_run(ctx);
}

static void on_timer(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)loop;
    (void)t;
    http_run(ctx);
}

static void on_kick(struct sk_loop *loop, void *ctx)
{
    (void)loop;
    http_run(ctx);
}

/* ---- life cycle ---------------------------------------------------------------- */

int sk_http_new(struct sk_loop *loop, const struct sk_http_config *cfg, struct sk_http **out, struct sk_error *err)
{
    struct sk_http *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->cfg = *cfg;
    h->listen = xstrdup(cfg->listen);
    h->cfg.listen = h->listen;
    sk_loop_timer_init(&h->timer, on_timer, h);
    int fd = -1, r;
    bool is_unix = strncmp(cfg->listen, "unix:", 5) == 0;
    if (is_unix) {
        r = listen_unix(cfg->listen + 5, &fd, err);
        if (r == 0) {
            h->unix_path = xstrdup(cfg->listen + 5);
            h->url = xstrdup(cfg->listen);
        }
    } else {
        r = listen_tcp(cfg->listen, &fd, &h->url, err);
    }
    if (r < 0)
        goto fail;

    /* No internal threads: MHD only runs inside http_run, on our loop. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                              MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned int)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              (unsigned int)(is_unix ? 0 : cfg->max_per_ip), MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned int)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              (size_t)HTTP_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_END);
    if (h->mhd == NULL) {
        close(fd);
        r = sk_error_setv(err, EIO, "libmicrohttpd refused to start on '%s'", cfg->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        r = sk_error_setv(err, EIO, "libmicrohttpd has no epoll fd");
        goto fail;
    }
    r = sk_loop_watch_add(loop, info->epoll_fd, SK_LOOP_READ, on_epoll_ready, h, &h->watch, err);
    if (r < 0)
        goto fail;
    http_run(h);
    *out = h;
    return 0;
fail:
    sk_http_free(h);
    return r;
}

size_t sk_http_active(const struct sk_http *h)
{
    return h->n_active;
}

const char *sk_http_url(const struct sk_http *h)
{
    return h->url;
}

void sk_http_quiesce(struct sk_http *h)
{
    if (h->quiesced || h->mhd == NULL)
        return;
    h->quiesced = true;
    MHD_socket s = MHD_quiesce_daemon(h->mhd);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    if (h->unix_path != NULL)
        unlink(h->unix_path);
    for (struct sk_http_req *req = h->reqs; req != NULL; req = req->next) {
        if (req->stream_fn != NULL && strcmp(req->method, "HEAD") != 0) {
            /* Streams can be endless (exec output): cut them; clients
             * resume by offset. Uploads get the drain time to finish. */
            req->aborted = true;
            req_resume(req);
        } else if (!sk_http_is_answered(req) && req->suspended) {
            sk_http_reply_api_error(req, SK_API_UNAVAILABLE, "the server is shutting down");
            req->cancelled = true; /* its owner may still answer: quietly dropped */
        }
    }
    /* Taken-over connections say goodbye in their own protocol. */
    for (struct sk_http_upgraded *up = h->upgrades, *next; up != NULL; up = next) {
        next = up->next;
        if (up->urh != NULL)
            up->ops->stop(up, false, up->ctx);
    }
}

void sk_http_free(struct sk_http *h)
{
    if (h == NULL)
        return;
    if (h->mhd != NULL) {
        /* MHD must not be stopped with sleeping connections: wake and
         * abort them, let MHD see that once, then stop. */
        bool woke = false;
        for (;;) {
            struct sk_http_upgraded *up = h->upgrades;
            while (up != NULL && up->urh == NULL)
                up = up->next;
            if (up == NULL)
                break;
            up->ops->stop(up, true, up->ctx);
            if (upgrade_is_listed(h, up)) {
                sk_log_warn("upgraded connection still open at stop; closing it");
                sk_http_upgraded_close(up);
            }
            woke = true;
        }
        for (struct sk_http_req *req = h->reqs; req != NULL; req = req->next) {
            req->aborted = true;
            if (req->suspended) {
                req->suspended = false;
                MHD_resume_connection(req->conn);
                woke = true;
            }
        }
        if (woke)
            MHD_run(h->mhd);
        sk_loop_watch_remove(h->loop, h->watch);
        MHD_stop_daemon(h->mhd);
        h->mhd = NULL;
    }
    while (h->upgrades != NULL) {
        struct sk_http_upgraded *up = h->upgrades;
        upgrade_unlink(up);
        upgrade_free(up);
    }
    sk_loop_timer_stop(h->loop, &h->timer);
    sk_loop_defer_cancel(h->loop, &h->kick);
    if (h->unix_path != NULL && !h->quiesced)
        unlink(h->unix_path);
    free(h->unix_path);
    free(h->url);
    free(h->listen);
    free(h);
}
