/* routes_meta.c - health, version and metrics. */
#include <jansson.h>
#include <string.h>

#include "base/util.h"

#include "routes.h"

void sk_route_healthz(struct sk_daemon *d, struct sk_http_req *req)
{
    (void)d;
    sk_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void sk_route_version(struct sk_daemon *d, struct sk_http_req *req)
{
    sk_http_reply_json(req, 200,
                       json_pack("{s:s, s:s, s:i}", "version", SK_DAEMON_VERSION, "api", SK_DAEMON_API, "schema",
                                 sk_store_schema_version(d->store)));
}

void sk_route_metrics(struct sk_daemon *d, struct sk_http_req *req)
{
    size_t len = 0, plen = 0;
    char *text = sk_metrics_render(d->metrics, &len);
    _cleanup_free_ char *pool = sk_pool_metrics_render(d, &plen);
    if (plen > 0) {
        text = xrealloc(text, len + plen + 1);
        memcpy(text + len, pool, plen + 1);
        len += plen;
    }
    sk_http_reply_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
