/* routes_ports.c - a sandbox's inbound ports: list, expose, unexpose, and
 * connect tokens. The proxying itself is proxy.c's (docs/ports.md). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "proxy.h"
#include "routes.h"

/* port_param - {port} of the path, 1-65535; answers 400 otherwise. */
static int port_param(struct sk_http_req *req, uint16_t *out)
{
    const char *s = sk_http_param(req, "port");
    size_t len = s != NULL ? strlen(s) : 0;
    long v = len > 0 && len <= 5 && strspn(s, "0123456789") == len ? strtol(s, NULL, 10) : 0;
    if (v < 1 || v > 65535) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "path parameter 'port' must be a port number 1-65535");
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

static struct sk_proxy *proxy_of(struct sk_daemon *d, struct sk_http_req *req)
{
    if (d->proxy == NULL)
        sk_http_reply_api_error(req, SK_API_NOT_IMPLEMENTED, "this server proxies no ports");
    return d->proxy;
}

void sk_route_ports_list(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_proxy *p = proxy_of(d, req);
    if (p == NULL)
        return;
    struct sk_error err = {0};
    char id[20];
    struct sk_port_spec *specs = NULL;
    size_t n = 0;
    if (sk_proxy_list(p, sk_http_param(req, "id"), id, &specs, &n, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, sk_proxy_port_json(p, id, &specs[i]));
    free(specs);
    json_t *o = json_object();
    json_object_set_new(o, "sandbox_id", json_string(id));
    json_object_set_new(o, "ports", arr);
    sk_http_reply_json(req, 200, o);
}

void sk_route_ports_get(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_proxy *p = proxy_of(d, req);
    uint16_t port = 0;
    if (p == NULL || port_param(req, &port) < 0)
        return;
    struct sk_error err = {0};
    char id[20];
    struct sk_port_spec *specs = NULL;
    size_t n = 0;
    if (sk_proxy_list(p, sk_http_param(req, "id"), id, &specs, &n, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (specs[i].port == port) {
            sk_http_reply_json(req, 200, sk_proxy_port_json(p, id, &specs[i]));
            free(specs);
            return;
        }
    }
    free(specs);
    sk_http_reply_api_error(req, SK_API_NOT_FOUND, "port %u of sandbox '%s' is not exposed", port, id);
}

void sk_route_ports_expose(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_proxy *p = proxy_of(d, req);
    if (p == NULL)
        return;
    struct sk_error err = {0};
    enum sk_api_code code = SK_API_INVALID_ARGUMENT;
    if (req->json == NULL && sk_json_parse(req->body, req->body_len, &req->json, &code, &err) < 0) {
        sk_http_reply_api_error(req, code, "%s", err.msg);
        return;
    }
    struct sk_port_spec spec, out;
    if (sk_proxy_decode_port(req, req->json, NULL, &spec) < 0)
        return;
    char id[20];
    if (sk_proxy_expose(p, sk_http_param(req, "id"), &spec, &out, id, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    char location[96];
    snprintf(location, sizeof(location), "/v1/sandboxes/%s/ports/%u", id, out.port);
    sk_http_set_header(req, "Location", location);
    sk_http_reply_json(req, 201, sk_proxy_port_json(p, id, &out));
}

void sk_route_ports_unexpose(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_proxy *p = proxy_of(d, req);
    uint16_t port = 0;
    if (p == NULL || port_param(req, &port) < 0)
        return;
    struct sk_error err = {0};
    if (sk_proxy_unexpose(p, sk_http_param(req, "id"), port, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "port", json_integer(port));
    json_object_set_new(o, "unexposed", json_true());
    sk_http_reply_json(req, 200, o);
}

void sk_route_ports_connect_token(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_proxy *p = proxy_of(d, req);
    uint16_t port = 0;
    if (p == NULL || port_param(req, &port) < 0)
        return;
    int64_t ttl_s = SK_PROXY_TOKEN_TTL_DEFAULT_S;
    const struct sk_field fields[] = {
        SK_FIELD_INT("ttl_seconds", &ttl_s, SK_OPTIONAL, 1, SK_PROXY_TOKEN_TTL_MAX_S),
    };
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    struct sk_error err = {0};
    json_t *o = NULL;
    if (sk_proxy_connect_token(p, sk_http_param(req, "id"), port, ttl_s * 1000, &o, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_reply_json(req, 201, o);
}
