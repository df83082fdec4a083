/* routes.h - the API's route table and its handlers.
 *
 * To add an endpoint: write a handler `void sk_route_x(struct sk_daemon *d,
 * struct sk_http_req *req)` in the routes_<area>.c file it belongs to,
 * declare it here, and add one line to sk_api_routes in routes.c. The
 * dispatcher has already matched the route, checked the token (unless
 * SK_ROUTE_NO_AUTH) and read the body; see request.h for how to answer.
 */
#ifndef SK_DAEMON_ROUTES_H
#define SK_DAEMON_ROUTES_H

#include <stddef.h>

#include "daemon.h"
#include "request.h"
#include "router.h"

extern const struct sk_route sk_api_routes[];

/* routes_sandboxes.c */
void sk_route_sandboxes_create(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_list(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_get(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_terminate(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_wait(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_tags(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_usage(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_sandboxes_logs(struct sk_daemon *d, struct sk_http_req *req);
/* routes_execs.c */
void sk_route_sandboxes_run(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_create(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_list(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_get(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_output(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_stdin(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_signal(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_resize(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_execs_wait(struct sk_daemon *d, struct sk_http_req *req);
/* routes_ws.c */
void sk_route_execs_attach(struct sk_daemon *d, struct sk_http_req *req);
/* routes_files.c */
void sk_route_files_read(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_write(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_remove(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_stat(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_list(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_mkdir(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_move(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_watch(struct sk_daemon *d, struct sk_http_req *req);
/* routes_tar.c */
void sk_route_files_tar_get(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_files_tar_put(struct sk_daemon *d, struct sk_http_req *req);
/* routes_ports.c */
void sk_route_ports_list(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_ports_get(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_ports_expose(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_ports_unexpose(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_ports_connect_token(struct sk_daemon *d, struct sk_http_req *req);
extern const size_t sk_api_routes_len;
/* Served only with --debug-routes: exercise streaming, long polls and body
 * sinks end to end (tests), and show how to write such handlers. */
extern const struct sk_route sk_debug_routes[];
extern const size_t sk_debug_routes_len;

/* routes_network.c */
void sk_route_network_get(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_network_patch(struct sk_daemon *d, struct sk_http_req *req);
/* sk_route_network_of_create - the "network" object and "network_group"
 * of a create request (both may be NULL) as sk_sandbox_req.network_json
 * (*network_json heap, NULL when neither is given). Answers 400 and
 * returns -1 when they are wrong. */
int sk_route_network_of_create(struct sk_http_req *req, const json_t *network, const char *group, char **network_json);

/* routes_meta.c */
void sk_route_healthz(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_version(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_metrics(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_pool(struct sk_daemon *d, struct sk_http_req *req);
/* sk_pool_metrics_render - the warm pool's series in Prometheus text (empty
 * without a pool); the caller frees it. */
char *sk_pool_metrics_render(struct sk_daemon *d, size_t *len);

/* routes_tokens.c */
void sk_route_tokens_create(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_tokens_list(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_tokens_get(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_tokens_revoke(struct sk_daemon *d, struct sk_http_req *req);

/* routes_debug.c */
void sk_route_debug_stream(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_debug_wait(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_debug_sink(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_debug_child(struct sk_daemon *d, struct sk_http_req *req);
void sk_route_debug_thread(struct sk_daemon *d, struct sk_http_req *req);

#endif
