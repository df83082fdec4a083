/* routes.c - the one list of API endpoints (docs/api.md documents each). */
#include "routes.h"

const struct sk_route sk_api_routes[] = {
    {"GET", "/healthz", sk_route_healthz, SK_ROUTE_NO_AUTH, 0},
    {"GET", "/metrics", sk_route_metrics, 0, 0},
    {"GET", "/v1/version", sk_route_version, 0, 0},

    {"POST", "/v1/tokens", sk_route_tokens_create, 0, 0},
    {"GET", "/v1/tokens", sk_route_tokens_list, 0, 0},
    {"GET", "/v1/tokens/{id}", sk_route_tokens_get, 0, 0},
    {"DELETE", "/v1/tokens/{id}", sk_route_tokens_revoke, 0, 0},
};
const size_t sk_api_routes_len = sizeof(sk_api_routes) / sizeof(sk_api_routes[0]);

const struct sk_route sk_debug_routes[] = {
    {"GET", "/v1/debug/stream", sk_route_debug_stream, 0, 0},
    {"GET", "/v1/debug/wait", sk_route_debug_wait, 0, 0},
    {"POST", "/v1/debug/sink", sk_route_debug_sink, SK_ROUTE_STREAM_BODY, 0},
    {"POST", "/v1/debug/child", sk_route_debug_child, 0, 0},
    {"POST", "/v1/debug/thread", sk_route_debug_thread, 0, 0},
};
const size_t sk_debug_routes_len = sizeof(sk_debug_routes) / sizeof(sk_debug_routes[0]);
