/* routes_pool.c - the warm pool's state: GET /v1/pool and its part of
 * GET /metrics. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "routes.h"

void sk_route_pool(struct sk_daemon *d, struct sk_http_req *req)
{
    json_t *keys = json_array();
    if (d->pool != NULL) {
        struct sk_pool_key_stats st[SK_POOL_KEYS_MAX];
        size_t n = sk_pool_stats(d->pool, st, SK_POOL_KEYS_MAX);
        for (size_t i = 0; i < n; i++) {
            const struct sk_pool_key_stats *k = &st[i];
            json_array_append_new(
                keys, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f}", "key", k->key, "ready",
                                (json_int_t)k->ready, "target", (json_int_t)k->target, "min", (json_int_t)k->min, "max",
                                (json_int_t)k->max, "hits", (json_int_t)k->hits, "misses", (json_int_t)k->misses,
                                "discarded", (json_int_t)k->discarded, "created", (json_int_t)k->created, "failed",
                                (json_int_t)k->failed, "refilling", k->refilling, "refill_seconds_avg",
                                k->refill_count ? k->refill_sum_s / (double)k->refill_count : 0.0));
        }
    }
    sk_http_reply_json(req, 200, json_pack("{s:b, s:o}", "enabled", d->pool != NULL, "keys", keys));
}

/* append - printf onto a growing buffer. */
static void __attribute__((format(printf, 4, 5))) append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        *cap = (*cap + (size_t)n) * 2;
        *buf = xrealloc(*buf, *cap);
    }
}

char *sk_pool_metrics_render(struct sk_daemon *d, size_t *len_out)
{
    size_t len = 0, cap = 4096;
    char *buf = xmalloc(cap);
    buf[0] = '\0';
    *len_out = 0;
    if (d->pool == NULL)
        return buf;
    struct sk_pool_key_stats st[SK_POOL_KEYS_MAX];
    size_t n = sk_pool_stats(d->pool, st, SK_POOL_KEYS_MAX);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"skiff_pool_hits_total", "counter", "Sandbox creates served from the warm pool."},
        {"skiff_pool_misses_total", "counter", "Sandbox creates that found no ready sandbox and ran cold."},
        {"skiff_pool_discarded_total", "counter", "Pooled sandboxes thrown away (init gone, image changed)."},
        {"skiff_pool_refill_failures_total", "counter", "Pool refills that failed."},
        {"skiff_pool_ready", "gauge", "Ready sandboxes in the pool."},
        {"skiff_pool_target", "gauge", "How many ready sandboxes the pool aims for now."},
    };
    for (size_t f = 0; f < SK_ARRAY_SIZE(fam); f++) {
        append(&buf, &len, &cap, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (size_t i = 0; i < n; i++) {
            const struct sk_pool_key_stats *k = &st[i];
            unsigned long long v = f == 0   ? k->hits
                                   : f == 1 ? k->misses
                                   : f == 2 ? k->discarded
                                   : f == 3 ? k->failed
                                   : f == 4 ? k->ready
                                            : k->target;
            append(&buf, &len, &cap, "%s{key=\"%s\"} %llu\n", fam[f].name, k->key, v);
        }
    }
    static const double bounds[] = SK_POOL_REFILL_BUCKETS;
    append(&buf, &len, &cap,
           "# HELP skiff_pool_refill_seconds Time to make one pooled sandbox (off the request path).\n"
           "# TYPE skiff_pool_refill_seconds histogram\n");
    for (size_t i = 0; i < n; i++) {
        const struct sk_pool_key_stats *k = &st[i];
        for (size_t b = 0; b < SK_ARRAY_SIZE(bounds); b++)
            append(&buf, &len, &cap, "skiff_pool_refill_seconds_bucket{key=\"%s\",le=\"%g\"} %llu\n", k->key, bounds[b],
                   (unsigned long long)k->refill_buckets[b]);
        append(&buf, &len, &cap, "skiff_pool_refill_seconds_bucket{key=\"%s\",le=\"+Inf\"} %llu\n", k->key,
               (unsigned long long)k->refill_count);
        append(&buf, &len, &cap, "skiff_pool_refill_seconds_sum{key=\"%s\"} %.6f\n", k->key, k->refill_sum_s);
        append(&buf, &len, &cap, "skiff_pool_refill_seconds_count{key=\"%s\"} %llu\n", k->key,
               (unsigned long long)k->refill_count);
    }
    *len_out = len;
    return buf;
}
