/* request.h - one HTTP request as a route handler sees it, and the ways to
 * answer it.
 *
 * The HTTP layer (http.c, libmicrohttpd) creates a struct sk_http_req per
 * request, fills method, path, query, headers and body, authenticates it
 * and calls the route's handler on the loop thread. The handler answers in
 * one of four ways, before it returns or later from any loop callback:
 *
 *   - at once:   sk_http_reply_json / _data / _error / _api_error
 *   - later:     sk_http_suspend(req) in the handler, keep `req`, and call
 *                any sk_http_reply_* when the answer is known (a long poll).
 *                The reply resumes the connection by itself.
 *   - streamed:  sk_http_reply_stream(req, status, type, producer, ctx); the
 *                producer is asked for bytes whenever the client can take
 *                them; it returns SK_HTTP_STREAM_WAIT when it has nothing,
 *                and its owner calls sk_http_resume(req) when data arrives.
 *   - body sink: (SK_ROUTE_STREAM_BODY routes) sk_http_body_sink(req, fn,
 *                ctx) receives the body in pieces with backpressure.
 *
 * Whoever keeps `req` beyond the handler must register sk_http_on_close:
 * the client can go away at any time, and after the close callback `req`
 * is freed. Handlers and everything here run on the loop thread only.
 *
 * Input helpers that validate (sk_http_decode_json, sk_http_query_int,
 * sk_http_query_str) answer the request themselves with a 400 when the
 * input is bad and return -1; the handler then simply returns.
 */
#ifndef SK_DAEMON_REQUEST_H
#define SK_DAEMON_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api_error.h"
#include "base/error.h"
#include "json.h"
#include "router.h"
#include "store/store.h"

struct sk_http_req;

/* sk_http_stream_fn - produce the next piece of a streamed body: copy at
 * most `max` bytes for offset `pos` into buf. Return the byte count (> 0),
 * SK_HTTP_STREAM_WAIT when nothing is available yet (the connection sleeps
 * until sk_http_resume), SK_HTTP_STREAM_END when the body is complete, or
 * SK_HTTP_STREAM_ERROR to cut the response short (the client sees a
 * truncated chunked body; there is no way to send a status any more). */
typedef ssize_t (*sk_http_stream_fn)(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx);
#define SK_HTTP_STREAM_WAIT ((ssize_t)0)
#define SK_HTTP_STREAM_END ((ssize_t)-1)
#define SK_HTTP_STREAM_ERROR ((ssize_t)-2)

/* sk_http_sink_fn - take a piece of the request body. Return how many
 * bytes were consumed (0..len); when fewer than len, the connection sleeps
 * until sk_http_resume and the rest is offered again. The sink may answer
 * the request at any time (an error, say); the remaining body is then
 * discarded. data == NULL and len == 0 mark the end of the body: the sink
 * must then answer, or suspend and answer later. */
typedef ssize_t (*sk_http_sink_fn)(struct sk_http_req *req, const char *data, size_t len, void *ctx);

/* sk_http_close_fn - the request is finished (answered and sent, or the
 * client went away, or the server stops); req is freed when it returns. */
typedef void (*sk_http_close_fn)(struct sk_http_req *req, void *ctx);

struct sk_http_kv {
    const char *key;
    const char *value;
};

/* Set by whoever drives the request (http.c); NULL for a detached request. */
struct sk_http_req_ops {
    void (*resume)(struct sk_http_req *req);
};

#define SK_HTTP_MAX_QUERY 64          /* more query parameters: 400 */
#define SK_HTTP_MAX_REPLY_HEADERS 128 /* a proxied answer carries the upstream's */

struct sk_http_resp_header {
    char *name, *value;
};

struct sk_http_req {
    /* ---- for handlers (read-only) ---- */
    const char *method; /* "GET", "HEAD", "POST", ... */
    const char *path;   /* percent-decoded, without the query string */
    const char *body;   /* buffered body, NUL-terminated (never NULL) */
    size_t body_len;
    bool authenticated;
    struct sk_token_rec auth;    /* the caller's token, when authenticated */
    struct sk_route_match match; /* route and path parameters */
    int64_t start_ns;            /* CLOCK_MONOTONIC at arrival */
    size_t max_body;             /* cap for the buffered body */

    /* ---- private to daemon/request.c and daemon/http.c ---- */
    char *method_buf, *path_buf;
    struct sk_http_kv *query, *headers;
    size_t n_query, n_headers, cap_query, cap_headers;
    bool query_overflow;
    char *body_buf;
    size_t body_cap;
    json_t *json; /* parsed body, owned */

    int status; /* 0 until answered */
    char *resp_body;
    size_t resp_len;
    char *resp_type;
    struct sk_http_resp_header *resp_headers; /* grown as needed, at most SK_HTTP_MAX_REPLY_HEADERS */
    size_t n_resp_headers, cap_resp_headers;
    bool stream_sized; /* the streamed body has stream_size bytes (Content-Length, not chunked) */
    bool passthrough;  /* a proxied answer: no default headers of ours */
    uint64_t stream_size;
    char *raw_uri; /* the request target as sent (not decoded, with the query), when the server knows it */
    sk_http_stream_fn stream_fn;
    void *stream_ctx;
    sk_http_sink_fn sink_fn;
    void *sink_ctx;
    sk_http_close_fn close_fn;
    void *close_ctx;

    bool in_callback;   /* a handler/sink/producer of this request is running */
    bool want_suspend;  /* sk_http_suspend was called in the callback */
    bool wake_pending;  /* sk_http_resume was called in the callback */
    bool suspended;     /* the connection sleeps */
    bool queued;        /* the answer went to the HTTP library */
    bool aborted;       /* the server gives up on it (shutdown) */
    bool closing;       /* the close callback runs: no more answers */
    bool cancelled;     /* answered by the server itself (shutdown): later answers are dropped quietly */
    bool dispatched;    /* the handler ran */
    uint64_t discarded; /* body bytes dropped after an early answer */

    const struct sk_http_req_ops *ops;
    void *conn;   /* struct MHD_Connection */
    void *server; /* struct sk_http */
    struct sk_http_req *prev, *next;
};

/* ---- life cycle (the HTTP layer, tests and the fuzzer) ------------------- */

/* sk_http_req_init - set up a detached request (copies method and path).
 * Release it with sk_http_req_release. */
void sk_http_req_init(struct sk_http_req *req, const char *method, const char *path, size_t max_body);
void sk_http_req_release(struct sk_http_req *req);
/* Add a query parameter or request header. key and value are borrowed and
 * must live as long as the request. Beyond SK_HTTP_MAX_QUERY parameters,
 * query parameters are dropped and sk_http_query_* answer 400. */
void sk_http_req_add_query(struct sk_http_req *req, const char *key, const char *value);
void sk_http_req_add_header(struct sk_http_req *req, const char *key, const char *value);
/* sk_http_req_append_body - buffer body bytes; -1 (nothing appended) when
 * the body would exceed req->max_body. */
int sk_http_req_append_body(struct sk_http_req *req, const char *data, size_t len);
/* sk_http_is_answered - a reply or a stream has been set. */
bool sk_http_is_answered(const struct sk_http_req *req);

/* ---- input -------------------------------------------------------------- */

/* Lookups return NULL when absent. Header names are case-insensitive. */
const char *sk_http_header(const struct sk_http_req *req, const char *name);
const char *sk_http_query(const struct sk_http_req *req, const char *name);
/* sk_http_raw_uri - the request target exactly as the client sent it
 * (percent-encoding and query string included), or the decoded path when
 * the HTTP layer did not record it (a detached request). */
const char *sk_http_raw_uri(const struct sk_http_req *req);
/* sk_http_param - a path parameter of the route ("id" for "/v1/tokens/{id}"),
 * already checked by the router (sk_router_is_valid_param). */
const char *sk_http_param(const struct sk_http_req *req, const char *name);

/* sk_http_query_int - an optional integer query parameter in [min, max];
 * *out = def when absent. On bad input answers 400 invalid_argument and
 * returns -1. */
int sk_http_query_int(struct sk_http_req *req, const char *name, int64_t min, int64_t max, int64_t def, int64_t *out);
/* sk_http_query_str - an optional string query parameter of at most
 * max_len bytes without control characters; *out = NULL when absent.
 * Answers 400 and returns -1 on bad input. */
int sk_http_query_str(struct sk_http_req *req, const char *name, size_t max_len, const char **out);

/* sk_http_decode_json - parse the body (empty = {}) and decode it against
 * `fields` (see json.h). Outputs borrow from the parsed body, which lives
 * until the request is freed. On failure answers 400 (invalid_json,
 * unknown_field or invalid_argument) and returns -1. */
int sk_http_decode_json(struct sk_http_req *req, const struct sk_field *fields, size_t n);

/* ---- answers ------------------------------------------------------------ */
/* Only the first answer counts; a second one is logged and dropped. After
 * the close callback started, answers are ignored. */

/* sk_http_set_header - add a response header (copied), e.g. "Location" or
 * "Retry-After". Call before answering. */
void sk_http_set_header(struct sk_http_req *req, const char *name, const char *value);
/* sk_http_reply_json - answer with `body` as JSON; takes the reference. */
void sk_http_reply_json(struct sk_http_req *req, int status, json_t *body);
/* sk_http_reply_data - answer with a copy of data. */
void sk_http_reply_data(struct sk_http_req *req, int status, const char *content_type, const void *data, size_t len);
/* sk_http_reply_take - answer with buf, which must be malloc'd; takes it. */
void sk_http_reply_take(struct sk_http_req *req, int status, const char *content_type, char *buf, size_t len);
/* sk_http_reply_error - answer with the JSON error for err (code mapped by
 * sk_api_code_from_errno, message err->msg). 5xx are logged. */
void sk_http_reply_error(struct sk_http_req *req, const struct sk_error *err);
/* sk_http_reply_api_error - answer with an explicit API code. */
void sk_http_reply_api_error(struct sk_http_req *req, enum sk_api_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sk_http_reply_stream - answer with a body produced piecewise by fn
 * (chunked transfer encoding). ctx belongs to the caller; release it from
 * the close callback (sk_http_on_close), which always runs. */
void sk_http_reply_stream(struct sk_http_req *req, int status, const char *content_type, sk_http_stream_fn fn,
                          void *ctx);
/* sk_http_set_stream_size - before sk_http_reply_stream: the body will be
 * exactly `size` bytes, sent with Content-Length instead of chunked (the
 * producer must deliver them all). content_type NULL: no Content-Type. A
 * Cache-Control header set with sk_http_set_header replaces the default
 * "no-store". */
void sk_http_set_stream_size(struct sk_http_req *req, uint64_t size);
/* sk_http_passthrough - before answering: the answer carries exactly the
 * headers set (a proxied one keeps the upstream's caching rules: no
 * default Cache-Control). */
void sk_http_passthrough(struct sk_http_req *req);

/* sk_http_suspend - from a handler or sink: answer later. Keep req and
 * register sk_http_on_close. Without a timeout of your own a suspended
 * request waits until the server stops (then it gets 503). */
void sk_http_suspend(struct sk_http_req *req);
/* sk_http_resume - wake a sleeping request without answering it: a stream
 * producer is asked again, a sink is offered the rest of the body, and a
 * suspended handler (or the sink at end of body) is called again. Any
 * answer resumes by itself. Safe at any time, also from inside the
 * request's own callbacks and on a request that does not sleep. */
void sk_http_resume(struct sk_http_req *req);
/* sk_http_body_sink - (SK_ROUTE_STREAM_BODY handlers) receive the body. */
void sk_http_body_sink(struct sk_http_req *req, sk_http_sink_fn fn, void *ctx);
/* sk_http_on_close - call fn when the request is finished (one callback;
 * a second call replaces the first). */
void sk_http_on_close(struct sk_http_req *req, sk_http_close_fn fn, void *ctx);

#endif
