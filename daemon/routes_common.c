/* routes_common.c - helpers shared by the sandbox, exec and file routes. */
#include "routes_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "json.h"
#include "routes.h"
#include "sched/sandboxes.h"

/* utf8_seq_len - length of the valid UTF-8 sequence at p (n bytes left), or
 * 0 when it is invalid (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

json_t *sk_json_string_lossy(const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    char *out = xmalloc(len * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_seq_len(p + i, len - i);
        if (l == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, p + i, l);
        o += l;
        i += l;
    }
    json_t *s = json_stringn(out, o);
    free(out);
    return s ? s : json_string("");
}

json_t *sk_sandbox_json(const struct sk_sandbox_rec *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "name", r->name ? json_string(r->name) : json_null());
    json_object_set_new(o, "state", json_string(r->state ? r->state : "unknown"));
    json_t *tags = r->tags_json ? json_loads(r->tags_json, 0, NULL) : NULL;
    json_object_set_new(o, "tags", tags ? tags : json_object());
    json_t *spec = r->spec_json ? json_loads(r->spec_json, 0, NULL) : NULL;
    json_object_set_new(o, "spec", spec ? spec : json_object());
    json_object_set_new(o, "created_at", sk_json_time(r->created_at));
    json_object_set_new(o, "started_at", sk_json_time(r->started_at));
    json_object_set_new(o, "ended_at", sk_json_time(r->ended_at));
    json_object_set_new(o, "exit_code", r->reason && r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
    json_object_set_new(o, "reason", r->reason ? json_string(r->reason) : json_null());
    json_object_set_new(o, "reason_detail", r->reason_detail ? json_string(r->reason_detail) : json_null());
    /* the entrypoint runs as an exec: its id addresses its stdin, signals, output */
    json_t *rt = r->runtime_json ? json_loads(r->runtime_json, 0, NULL) : NULL;
    json_t *ep = rt ? json_object_get(rt, "entrypoint_exec") : NULL;
    json_object_set_new(o, "entrypoint_exec", json_is_string(ep) ? json_string(json_string_value(ep)) : json_null());
    /* the network policy (net/policy.h; mode "none" when it was made without) */
    json_t *pol = rt ? json_object_get(json_object_get(rt, "network"), "policy") : NULL;
    json_object_set_new(o, "network",
                        json_is_object(pol) ? json_deep_copy(pol)
                                            : json_pack("{s:s, s:n, s:[], s:n, s:n, s:n, s:n}", "mode", "none",
                                                        "allow_cidrs", "deny_cidrs", "allow_domains", "bandwidth_mbps",
                                                        "max_connections", "network_group"));
    /* made ahead of demand by the warm pool (false: made on request) */
    json_object_set_new(o, "pooled", json_boolean(rt != NULL && json_is_true(json_object_get(rt, "pooled"))));
    json_decref(rt);
    return o;
}

/* strv_from_json - a NULL-terminated array borrowing the strings of a JSON
 * array of strings (already type-checked by the decoder). Caller frees the
 * array only. */
const char **sk_strv_from_json(const json_t *arr)
{
    if (arr == NULL)
        return NULL;
    size_t n = json_array_size(arr);
    const char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(arr, i));
    return v;
}

/* env_from_json - "K=V" strings from a JSON object of strings; the caller
 * frees with sk_env_free. Keys must be non-empty without '='. */
char **sk_env_from_json(struct sk_http_req *req, const json_t *obj)
{
    if (obj == NULL)
        return NULL;
    size_t n = json_object_size(obj);
    char **env = xcalloc(n + 1, sizeof(char *));
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (k[0] == '\0' || strchr(k, '=') != NULL) {
            sk_env_free(env);
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                    "field 'env' has an invalid variable name '%s' (empty or with '=')", k);
            return NULL;
        }
        env[i++] = xasprintf("%s=%s", k, json_string_value(v));
    }
    return env;
}

void sk_env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

struct sk_agent *sk_route_sandbox_agent(struct sk_daemon *d, struct sk_http_req *req, size_t path_max,
                                        const char **path, char **id)
{
    if (path != NULL) {
        if (sk_http_query_str(req, "path", path_max, path) < 0)
            return NULL;
        if (*path == NULL || (*path)[0] == '\0') {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "query 'path' is required");
            return NULL;
        }
    }
    struct sk_error err = {0};
    struct sk_sandbox_rec rec;
    memset(&rec, 0, sizeof(rec));
    if (sk_sched_get(d->sched, sk_http_param(req, "id"), &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return NULL;
    }
    struct sk_agent *a = sk_sched_agent(d->sched, rec.id, &err);
    if (a == NULL)
        sk_http_reply_api_error(req, SK_API_FAILED_PRECONDITION, "sandbox '%s' is not running (state '%s')", rec.id,
                                rec.state ? rec.state : "unknown");
    else if (id != NULL)
        *id = xstrdup(rec.id);
    sk_sandbox_rec_release(&rec);
    return a;
}

int sk_route_get_exec(struct sk_daemon *d, struct sk_http_req *req, struct sk_exec_rec *e)
{
    struct sk_error err = {0};
    memset(e, 0, sizeof(*e));
    const char *eid = sk_http_param(req, "exec");
    if (sk_store_exec_get(d->store, eid, e, &err) < 0) {
        sk_http_reply_error(req, &err);
        return -1;
    }
    struct sk_sandbox_rec sb;
    memset(&sb, 0, sizeof(sb));
    if (sk_sched_get(d->sched, sk_http_param(req, "id"), &sb, &err) < 0 || strcmp(sb.id, e->sandbox_id) != 0) {
        sk_sandbox_rec_release(&sb);
        sk_exec_rec_release(e);
        sk_http_reply_api_error(req, SK_API_NOT_FOUND, "exec '%s' not found in sandbox '%s'", eid,
                                sk_http_param(req, "id"));
        return -1;
    }
    sk_sched_touch(d->sched, sb.id);
    sk_sandbox_rec_release(&sb);
    return 0;
}
