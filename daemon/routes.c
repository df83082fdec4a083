/* routes.c - the one list of API endpoints (docs/api.md documents each). */
#include "routes.h"
#include "sched/sandboxes.h"

const struct sk_route sk_api_routes[] = {
    {"GET", "/healthz", sk_route_healthz, SK_ROUTE_NO_AUTH, 0},
    {"GET", "/metrics", sk_route_metrics, 0, 0},
    {"GET", "/v1/version", sk_route_version, 0, 0},
    {"GET", "/v1/pool", sk_route_pool, 0, 0},

    {"POST", "/v1/tokens", sk_route_tokens_create, 0, 0},
    {"GET", "/v1/tokens", sk_route_tokens_list, 0, 0},
    {"GET", "/v1/tokens/{id}", sk_route_tokens_get, 0, 0},
    {"DELETE", "/v1/tokens/{id}", sk_route_tokens_revoke, 0, 0},

    {"POST", "/v1/sandboxes", sk_route_sandboxes_create, 0, 0},
    {"GET", "/v1/sandboxes", sk_route_sandboxes_list, 0, 0},
    {"GET", "/v1/sandboxes/{id}", sk_route_sandboxes_get, 0, 0},
    {"POST", "/v1/sandboxes/{id}/terminate", sk_route_sandboxes_terminate, 0, 0},
    {"GET", "/v1/sandboxes/{id}/wait", sk_route_sandboxes_wait, 0, 0},
    {"PUT", "/v1/sandboxes/{id}/tags", sk_route_sandboxes_tags, 0, 0},
    {"GET", "/v1/sandboxes/{id}/usage", sk_route_sandboxes_usage, 0, 0},
    {"GET", "/v1/sandboxes/{id}/network", sk_route_network_get, 0, 0},
    {"PATCH", "/v1/sandboxes/{id}/network", sk_route_network_patch, 0, 0},
    {"GET", "/v1/sandboxes/{id}/logs", sk_route_sandboxes_logs, 0, 0},
    {"POST", "/v1/sandboxes/{id}/run", sk_route_sandboxes_run, 0, 0},

    {"POST", "/v1/sandboxes/{id}/execs", sk_route_execs_create, 0, 0},
    {"GET", "/v1/sandboxes/{id}/execs", sk_route_execs_list, 0, 0},
    {"GET", "/v1/sandboxes/{id}/execs/{exec}", sk_route_execs_get, 0, 0},
    {"GET", "/v1/sandboxes/{id}/execs/{exec}/output", sk_route_execs_output, 0, 0},
    {"POST", "/v1/sandboxes/{id}/execs/{exec}/stdin", sk_route_execs_stdin, 0, SK_SCHED_STDIN_BUF_MAX},
    {"POST", "/v1/sandboxes/{id}/execs/{exec}/signal", sk_route_execs_signal, 0, 0},
    {"POST", "/v1/sandboxes/{id}/execs/{exec}/resize", sk_route_execs_resize, 0, 0},
    {"GET", "/v1/sandboxes/{id}/execs/{exec}/wait", sk_route_execs_wait, 0, 0},
    {"GET", "/v1/sandboxes/{id}/execs/{exec}/attach", sk_route_execs_attach, 0, 0},

    {"GET", "/v1/sandboxes/{id}/files", sk_route_files_read, 0, 0},
    {"PUT", "/v1/sandboxes/{id}/files", sk_route_files_write, SK_ROUTE_STREAM_BODY, 0},
    {"DELETE", "/v1/sandboxes/{id}/files", sk_route_files_remove, 0, 0},
    {"GET", "/v1/sandboxes/{id}/files/stat", sk_route_files_stat, 0, 0},
    {"GET", "/v1/sandboxes/{id}/files/list", sk_route_files_list, 0, 0},
    {"GET", "/v1/sandboxes/{id}/files/watch", sk_route_files_watch, 0, 0},
    {"POST", "/v1/sandboxes/{id}/files/mkdir", sk_route_files_mkdir, 0, 0},
    {"POST", "/v1/sandboxes/{id}/files/move", sk_route_files_move, 0, 0},
    {"GET", "/v1/sandboxes/{id}/files/tar", sk_route_files_tar_get, 0, 0},
    {"PUT", "/v1/sandboxes/{id}/files/tar", sk_route_files_tar_put, SK_ROUTE_STREAM_BODY, 0},

    {"GET", "/v1/sandboxes/{id}/ports", sk_route_ports_list, 0, 0},
    {"POST", "/v1/sandboxes/{id}/ports", sk_route_ports_expose, 0, 0},
    {"GET", "/v1/sandboxes/{id}/ports/{port}", sk_route_ports_get, 0, 0},
    {"DELETE", "/v1/sandboxes/{id}/ports/{port}", sk_route_ports_unexpose, 0, 0},
    {"POST", "/v1/sandboxes/{id}/ports/{port}/connect-tokens", sk_route_ports_connect_token, 0, 0},
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
