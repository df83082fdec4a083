/* routes_network.c - a sandbox's network policy: read it with its live side
 * (addresses, denial counters and log), change it while the sandbox runs;
 * and the "network" and "network_group" fields of a create request. The
 * policy's meaning is lib/net's (net/policy.h, docs/networking.md). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "net/net.h"
#include "net/policy.h"
#include "net_dns.h"
#include "routes.h"
#include "sched/sandboxes.h"

/* decode_network - type-check the API's "network" object (unknown fields,
 * wrong types and values out of range get their stable codes here) and,
 * with `patch` set, accept network_group too (*group gets it). Answers 400
 * and returns -1 when it is wrong. */
static int decode_network(struct sk_http_req *req, const json_t *obj, const char *prefix, bool patch,
                          const char **group)
{
    const char *mode = NULL, *grp = NULL;
    const json_t *allow = NULL, *deny = NULL, *domains = NULL;
    int64_t bw = 0, maxc = 0;
    const struct sk_field fields[] = {
        SK_FIELD_STR("mode", &mode, SK_OPTIONAL, 16),
        SK_FIELD_STRV("allow_cidrs", &allow, SK_OPTIONAL, SK_NET_CIDRS_MAX),
        SK_FIELD_STRV("deny_cidrs", &deny, SK_OPTIONAL, SK_NET_CIDRS_MAX),
        SK_FIELD_STRV("allow_domains", &domains, SK_OPTIONAL, SK_NET_DOMAINS_MAX),
        SK_FIELD_INT("bandwidth_mbps", &bw, SK_OPTIONAL, 1, SK_NET_BANDWIDTH_MAX),
        SK_FIELD_INT("max_connections", &maxc, SK_OPTIONAL, 1, SK_NET_CONNECTIONS_MAX),
        SK_FIELD_STR("network_group", &grp, SK_OPTIONAL, SK_NET_GROUP_MAX),
    };
    enum sk_api_code code = SK_API_INVALID_ARGUMENT;
    struct sk_error err = {0};
    size_t n = SK_ARRAY_SIZE(fields) - (patch ? 0 : 1);
    if (sk_json_decode_at(obj, prefix, fields, n, &code, &err) < 0) {
        sk_http_reply_api_error(req, code, "%s", err.msg);
        return -1;
    }
    if (group != NULL)
        *group = grp;
    return 0;
}

int sk_route_network_of_create(struct sk_http_req *req, const json_t *network, const char *group, char **network_json)
{
    *network_json = NULL;
    if (network == NULL && group == NULL)
        return 0;
    struct sk_error err = {0};
    struct sk_net_policy p = {0};
    if (network != NULL) {
        if (!json_is_object(network)) {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'network' must be an object");
            return -1;
        }
        if (decode_network(req, network, "network", false, NULL) < 0)
            return -1;
        if (sk_net_policy_patch(&p, network, "network.", &err) < 0) {
            sk_http_reply_error(req, &err);
            sk_net_policy_release(&p);
            return -1;
        }
    }
    if (sk_net_policy_set_group(&p, group, &err) < 0) {
        sk_http_reply_error(req, &err);
        sk_net_policy_release(&p);
        return -1;
    }
    json_t *j = sk_net_policy_json(&p);
    *network_json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    sk_net_policy_release(&p);
    return 0;
}

/* reply_network - the policy and, while the sandbox runs here, its live
 * side. */
static void reply_network(struct sk_daemon *d, struct sk_http_req *req, const char *id_or_name)
{
    struct sk_error err = {0};
    char id[24];
    _cleanup_free_ char *policy = NULL;
    bool running = false;
    if (sk_sched_network_get(d->sched, id_or_name, id, &policy, &running, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "sandbox_id", json_string(id));
    json_object_set_new(o, "running", json_boolean(running));
    json_t *p = json_loads(policy, 0, NULL);
    json_object_update(o, p);
    json_decref(p);
    if (running && d->netd != NULL)
        sk_netd_drain_denials(d->netd);
    json_t *live = running && d->net != NULL ? sk_net_status(d->net, id) : NULL;
    if (live == NULL)
        live = json_pack("{s:n, s:{}, s:{s:i, s:i}, s:[]}", "interface", "addresses", "denied", "connections", 0, "dns",
                         0, "log");
    /* times in the API's format */
    json_t *log = json_object_get(live, "log");
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        json_t *t = json_object_get(e, "time");
        if (json_is_integer(t))
            json_object_set_new(e, "time", sk_json_time((int64_t)json_integer_value(t)));
    }
    json_object_update(o, live);
    json_decref(live);
    sk_http_reply_json(req, 200, o);
}

void sk_route_network_get(struct sk_daemon *d, struct sk_http_req *req)
{
    reply_network(d, req, sk_http_param(req, "id"));
}

void sk_route_network_patch(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *group = NULL;
    enum sk_api_code code = SK_API_INVALID_JSON;
    struct sk_error perr = {0};
    if (req->json == NULL && sk_json_parse(req->body, req->body_len, &req->json, &code, &perr) < 0) {
        sk_http_reply_api_error(req, code, "%s", perr.msg);
        return;
    }
    const json_t *body = req->json;
    if (decode_network(req, body, NULL, true, &group) < 0)
        return;
    struct sk_error err = {0};
    const char *id_or_name = sk_http_param(req, "id");
    json_t *patch = json_copy((json_t *)body);
    if (group != NULL) {
        /* The group is the sandbox's for life: naming the same one is fine. */
        char id[24];
        _cleanup_free_ char *policy = NULL;
        bool running = false;
        if (sk_sched_network_get(d->sched, id_or_name, id, &policy, &running, &err) < 0) {
            json_decref(patch);
            sk_http_reply_error(req, &err);
            return;
        }
        json_t *cur = json_loads(policy, 0, NULL);
        const char *now = json_string_value(json_object_get(cur, "network_group"));
        bool same = now != NULL && strcmp(now, group) == 0;
        json_decref(cur);
        if (!same) {
            json_decref(patch);
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                    "field 'network_group' cannot change (it is set when the sandbox is created)");
            return;
        }
        json_object_del(patch, "network_group");
    } else if (json_object_get(patch, "network_group") != NULL) {
        json_object_del(patch, "network_group"); /* null: no change either */
    }
    _cleanup_free_ char *text = json_dumps(patch, JSON_COMPACT);
    json_decref(patch);
    sk_sched_touch(d->sched, id_or_name);
    if (sk_sched_network_set(d->sched, id_or_name, text, NULL, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    reply_network(d, req, id_or_name);
}
