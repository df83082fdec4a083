/* http.h - the HTTP server: libmicrohttpd in external epoll mode, driven
 * by skiffd's loop (no threads of its own).
 *
 * MHD's epoll fd is watched by the loop, MHD_run is called when it is
 * readable and when MHD's own timeout expires (a loop timer). The server
 * turns each request into a struct sk_http_req (request.h), buffers its
 * body up to the route's cap, and hands it to the dispatcher through two
 * callbacks: on_headers (route, authenticate; may answer at once, so an
 * unauthenticated or oversized upload is refused before its body is
 * read) and on_request (the body is complete: run the handler).
 *
 * A request may also be answered with 101 Switching Protocols
 * (sk_http_reply_upgrade): libmicrohttpd sends the answer and hands the
 * socket over; the owner then serves it from the same loop (WebSocket,
 * routes_ws.c) until it gives it back with sk_http_upgraded_close.
 *
 * A flood of connections is bounded three ways: a total connection limit,
 * a per-IP limit (so one address cannot take every slot), and an idle
 * timeout that closes connections which send nothing.
 */
#ifndef SK_DAEMON_HTTP_H
#define SK_DAEMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "base/error.h"
#include "loop.h"
#include "request.h"

struct sk_http;

struct sk_http_config {
    const char *listen;       /* "127.0.0.1:7433", "[::1]:7433", "localhost:0", "unix:/run/skiff.sock" */
    size_t max_body;          /* default cap of buffered bodies (413 beyond) */
    unsigned max_connections; /* all connections together */
    unsigned max_per_ip;      /* connections from one address (TCP only) */
    unsigned idle_timeout_s;  /* close connections silent this long (not suspended ones) */

    /* Dispatcher callbacks, all on the loop thread; ctx is theirs. */
    void (*on_headers)(struct sk_http_req *req, void *ctx);
    void (*on_request)(struct sk_http_req *req, void *ctx);
    /* on_done - the request is finished; status is the one sent (0 if the
     * connection ended before an answer). Called after the request left
     * the active count (sk_http_active). */
    void (*on_done)(struct sk_http_req *req, int status, void *ctx);
    void *ctx;
};

/* sk_http_new - listen and start serving from `loop`. cfg is copied (its
 * strings too). Errors: EINVAL for a bad listen address, those of
 * socket/bind/listen (EADDRINUSE...), EIO when libmicrohttpd refuses. */
int sk_http_new(struct sk_loop *loop, const struct sk_http_config *cfg, struct sk_http **out, struct sk_error *err);
/* sk_http_free - close every connection (suspended ones are woken and
 * aborted first, as MHD requires) and stop. Close callbacks and on_done
 * run for requests still in flight. NULL is a no-op. */
void sk_http_free(struct sk_http *h);

/* sk_http_quiesce - begin a graceful stop: close the listening socket (new
 * connections are refused), answer requests that wait for a later answer
 * (suspended handlers) with 503 "unavailable", and cut streamed answers
 * (they may never end). Other requests, uploads to sinks included, go on
 * until they finish or the owner frees the server. */
void sk_http_quiesce(struct sk_http *h);
/* sk_http_active - requests in flight (received, not yet finished). */
size_t sk_http_active(const struct sk_http *h);
/* sk_http_url - "http://127.0.0.1:7433" or "unix:/path" (the bound port). */
const char *sk_http_url(const struct sk_http *h);
/* sk_http_peer - the client's address of a request this server drives (a
 * Unix socket's family is AF_UNIX); -1 for a detached request. */
int sk_http_peer(const struct sk_http_req *req, struct sockaddr_storage *out);

/* ---- protocol upgrades (WebSocket) -------------------------------------------- */

/* A connection taken over after a 101 Switching Protocols answer. */
struct sk_http_upgraded;

struct sk_http_upgrade_ops {
    /* started - the 101 went out: from now on the socket `fd` (non-blocking,
     * close-on-exec) speaks the new protocol and belongs to the owner, who
     * watches it on the loop and ends with sk_http_upgraded_close (never
     * close(fd)). `extra` holds `extra_len` bytes the client sent past the
     * request, already read from fd: treat them as read first (borrowed
     * for the call). The request is over: `req` must not be used any more
     * and its close callback will not run. */
    void (*started)(struct sk_http_upgraded *up, int fd, const char *extra, size_t extra_len, void *ctx);
    /* stop - the server stops. now == false (sk_http_quiesce): say goodbye
     * and close soon. now == true (sk_http_free): call
     * sk_http_upgraded_close and release everything before returning. */
    void (*stop)(struct sk_http_upgraded *up, bool now, void *ctx);
};

/* sk_http_reply_upgrade - answer `req` with 101 Switching Protocols and
 * "Upgrade: <protocol>" (add the protocol's own headers with
 * sk_http_set_header first). Once the 101 has been sent, ops->started is
 * called; if it never is (the client left first, the server stops), the
 * request's close callback runs as for any answer, so release ctx there
 * unless started was called. ops and ctx are the caller's; ops must
 * outlive the connection. Only the first answer counts (request.h). Needs
 * a request driven by this server (a detached one gets a 500). */
void sk_http_reply_upgrade(struct sk_http_req *req, const char *protocol, const struct sk_http_upgrade_ops *ops,
                           void *ctx);
/* sk_http_upgraded_close - the owner is done: the server closes the socket
 * (which the owner stops watching first) and frees `up`. */
void sk_http_upgraded_close(struct sk_http_upgraded *up);

#endif
