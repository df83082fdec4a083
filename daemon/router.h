/* router.h - the route table: {method, pattern, handler, flags}.
 *
 * Patterns are absolute paths whose segments are literals or parameters:
 * "/v1/sandboxes/{id}/execs/{exec}". A request path matches a route when it
 * has as many segments and every literal is equal; parameters capture one
 * segment each and must be valid names (sk_router_is_valid_param). HEAD
 * matches GET routes. When several routes match, the one with the most
 * literal segments wins ("/v1/x/search" beats "/v1/x/{id}").
 *
 * Matching allocates nothing and touches no global state, so it can be
 * called on any input (it is fuzzed: tests/fuzz/fuzz_router.c).
 */
#ifndef SK_DAEMON_ROUTER_H
#define SK_DAEMON_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

struct sk_daemon;
struct sk_http_req;

/* sk_route_fn - a route handler. It runs on the loop thread once the
 * request (and, unless SK_ROUTE_STREAM_BODY, its body) has arrived and the
 * token has been checked. Before it returns it must answer (sk_http_reply_*),
 * start a stream (sk_http_reply_stream), install a body sink
 * (SK_ROUTE_STREAM_BODY routes) or suspend (sk_http_suspend) and answer
 * later; a handler that does none of these gets a 500 for its request. */
typedef void (*sk_route_fn)(struct sk_daemon *d, struct sk_http_req *req);

enum sk_route_flags {
    /* No token needed. Only for what a load balancer or a person without a
     * token must reach (/healthz); everything else is authenticated by
     * default so a forgotten flag fails closed. */
    SK_ROUTE_NO_AUTH = 1u << 0,
    /* The handler runs as soon as the headers are in and authenticated,
     * before the body is read, and installs a sink (sk_http_body_sink) that
     * receives the body in pieces; the route's max_body does not apply. */
    SK_ROUTE_STREAM_BODY = 1u << 1,
};

struct sk_route {
    const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern; /* "/v1/tokens/{id}" */
    sk_route_fn handler;
    unsigned flags;  /* enum sk_route_flags */
    size_t max_body; /* buffered body cap for this route; 0 = the server's --max-body */
};

#define SK_ROUTER_MAX_SEGMENTS 16
#define SK_ROUTER_MAX_PARAMS 4
#define SK_ROUTER_PARAM_MAX 128 /* bytes of one parameter value */
#define SK_ROUTER_PATH_MAX 2048

struct sk_route_param {
    const char *name; /* borrowed from the router */
    char value[SK_ROUTER_PARAM_MAX + 1];
};

struct sk_route_match {
    const struct sk_route *route; /* the matched entry (NULL unless SK_ROUTER_OK) */
    size_t n_params;
    struct sk_route_param params[SK_ROUTER_MAX_PARAMS];
    char allow[64];        /* SK_ROUTER_METHOD_NOT_ALLOWED: "GET, HEAD, POST" */
    const char *bad_param; /* SK_ROUTER_BAD_PARAM: the parameter's name */
};

enum sk_router_result {
    SK_ROUTER_OK = 0,
    SK_ROUTER_NOT_FOUND,          /* no pattern has this shape */
    SK_ROUTER_METHOD_NOT_ALLOWED, /* the path matches, the method does not; see allow */
    SK_ROUTER_BAD_PARAM,          /* the path matches but a parameter is not a valid name */
};

struct sk_router;

/* sk_router_new - compile a route table (borrowed: it must outlive the
 * router). Errors: EINVAL for a malformed pattern (a programming error,
 * reported at startup). The caller frees the router with sk_router_free. */
int sk_router_new(const struct sk_route *routes, size_t n, struct sk_router **out, struct sk_error *err);
void sk_router_free(struct sk_router *r);

/* sk_router_match - look up `method` and `path` (percent-decoded, without
 * the query string; any bytes). Fills *m; never fails otherwise. */
enum sk_router_result sk_router_match(const struct sk_router *r, const char *method, const char *path,
                                      struct sk_route_match *m);

/* sk_router_is_valid_param - whether s can be a path parameter: 1 to
 * SK_ROUTER_PARAM_MAX bytes of [A-Za-z0-9._-], starting with a letter or
 * digit. Names that users choose (tokens, sandboxes) follow the same rule
 * so that they can appear in paths. */
bool sk_router_is_valid_param(const char *s);

#endif
