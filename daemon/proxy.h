/* proxy.h - inbound ports: skiffd proxies the ports a sandbox exposes.
 *
 * HTTP and WebSocket ports are served on skiffd's own listener, by path
 * (/p/<sandbox>/<port>/..., the prefix stripped before forwarding) and,
 * with a domain configured, by host name (<port>-<sandbox>.<domain>).
 * Raw TCP ports get a listener of their own on an allocated host port.
 * The proxy reaches a sandbox's port from inside the sandbox's network
 * namespace: it creates the socket there (setns on the loop thread and
 * back) and connects to 127.0.0.1:<port>, so no route from the sandbox to
 * the host is ever needed. Everything runs on skiffd's loop: HTTP requests
 * through libcurl's multi-socket API (proxy_http.c), WebSocket and TCP as
 * byte relays (proxy_relay.c).
 *
 * Access (docs/ports.md): an API token, or a connect token for that
 * sandbox and port, or nothing for a public port; an optional CIDR
 * allowlist is checked first. Activity through a port counts for the
 * sandbox's idle timeout. Ports are kept in the sandbox's runtime record,
 * so they survive a restart of skiffd with the re-adopted sandbox
 * (sk_proxy_restore); they go when the sandbox ends or the port is
 * unexposed, and so do the connections through them.
 */
#ifndef SK_DAEMON_PROXY_H
#define SK_DAEMON_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "request.h"
#include "sched/ports.h"

struct sk_daemon;
struct sk_proxy;

#define SK_PROXY_DEFAULT_TIMEOUT_S 60
#define SK_PROXY_TOKEN_TTL_DEFAULT_S 3600
#define SK_PROXY_TOKEN_TTL_MAX_S (30 * 86400)

struct sk_proxy_config {
    const char *domain;   /* host-based routing; NULL: path form only */
    const char *bind;     /* address of raw TCP listeners; NULL: 127.0.0.1 */
    unsigned timeout_s;   /* wait for an upstream's response headers; 0: SK_PROXY_DEFAULT_TIMEOUT_S */
    const char *key_path; /* connect-token key file (created when missing) */
};

/* sk_proxy_new - the proxy of daemon d (its loop, store, sched and HTTP
 * server must exist). Loads the connect-token key. Loop thread only. */
int sk_proxy_new(struct sk_daemon *d, const struct sk_proxy_config *cfg, struct sk_proxy **out, struct sk_error *err);
/* sk_proxy_restore - after sk_sched_recover: serve again the ports of the
 * sandboxes that run (TCP ports on their earlier host port when it is
 * free). Returns how many ports were restored. */
int sk_proxy_restore(struct sk_proxy *p, struct sk_error *err);
/* sk_proxy_quiesce - the server stops: close TCP listeners and relays. */
void sk_proxy_quiesce(struct sk_proxy *p);
/* sk_proxy_free - after sk_http_free, before sk_sched_free. NULL: no-op. */
void sk_proxy_free(struct sk_proxy *p);

/* sk_proxy_intercept - from the dispatcher's header callback, before
 * routing: a request for a proxied port (by path or host) is taken over
 * and answered here (true); anything else is left alone (false). */
bool sk_proxy_intercept(struct sk_proxy *p, struct sk_http_req *req);

/* ---- the API (routes_ports.c) ---------------------------------------------------- */

/* sk_proxy_decode_port - a port spec from a request: an integer (an http
 * port with the defaults) or an object {"port", "protocol", "public",
 * "allow_cidrs"}. `what` names it in messages ("ports[2]"); NULL: the
 * request body itself (an object). On bad input answers 400 and returns -1. */
int sk_proxy_decode_port(struct sk_http_req *req, const json_t *v, const char *what, struct sk_port_spec *out);
/* sk_proxy_decode_ports - the "ports" array of a create request (NULL: none;
 * duplicates refused). *out (caller frees). Answers 400 and returns -1. */
int sk_proxy_decode_ports(struct sk_http_req *req, const json_t *arr, struct sk_port_spec **out, size_t *n);

/* sk_proxy_expose - expose spec->port of a running sandbox (id or name) and
 * store it. *out (may be NULL) gets the stored spec. EEXIST when the port
 * is exposed already, ENOENT for an unknown sandbox, EALREADY when it is
 * not running, EINVAL for a bad spec or too many ports, errors of bind(2)
 * for a TCP port. */
int sk_proxy_expose(struct sk_proxy *p, const char *sandbox, const struct sk_port_spec *spec, struct sk_port_spec *out,
                    char id[20], struct sk_error *err);
/* sk_proxy_expose_all - expose the ports of a create request (decoded by
 * sk_proxy_decode_ports) on the sandbox `id` that was just created; stops
 * at the first error. */
int sk_proxy_expose_all(struct sk_proxy *p, const char *id, const struct sk_port_spec *specs, size_t n,
                        struct sk_error *err);
/* sk_proxy_unexpose - stop proxying a port: its routing and listener go,
 * and so does every connection through it. ENOENT when it is not exposed. */
int sk_proxy_unexpose(struct sk_proxy *p, const char *sandbox, uint16_t port, struct sk_error *err);
/* sk_proxy_list - the exposed ports of a sandbox: *specs (caller frees), its
 * id into id. An ended sandbox has none (0, *n = 0); ENOENT when unknown. */
int sk_proxy_list(struct sk_proxy *p, const char *sandbox, char id[20], struct sk_port_spec **specs, size_t *n,
                  struct sk_error *err);
/* sk_proxy_port_json - the API view of a port, with its URLs (new ref). */
json_t *sk_proxy_port_json(struct sk_proxy *p, const char *id, const struct sk_port_spec *spec);
/* sk_proxy_connect_token - mint a connect token for one exposed http port:
 * {"token", "sandbox_id", "port", "expires_at", "url", "host_url"} (new ref
 * in *out). ENOENT when the port is not exposed, EALREADY when the sandbox
 * is not running, ENOTTY for a tcp port (raw TCP carries no token; the API
 * answers 409 failed_precondition). */
int sk_proxy_connect_token(struct sk_proxy *p, const char *sandbox, uint16_t port, int64_t ttl_ms, json_t **out,
                           struct sk_error *err);

#endif
