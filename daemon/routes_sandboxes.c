/* routes_sandboxes.c - sandboxes: create, get, list, terminate, wait, tags,
 * usage, entrypoint logs. The lifecycle itself is lib/sched's. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/util.h"
#include "proxy.h"
#include "routes.h"
#include "routes_common.h"
#include "sched/sandboxes.h"

#define MAX_ARGV 1024
#define MAX_ENV 1024
#define WAIT_MAX_S 3600

/* reply_rec - look the sandbox up again and answer with it. */
static void reply_rec(struct sk_daemon *d, struct sk_http_req *req, const char *id, int status)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec rec;
    memset(&rec, 0, sizeof(rec));
    if (sk_sched_get(d->sched, id, &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_reply_json(req, status, sk_sandbox_json(&rec));
    sk_sandbox_rec_release(&rec);
}

/* A create waiting for its sandbox. It lives until both the request is
 * gone (create_closed) and the creation reported (create_done): the
 * creation completes - and its ports are exposed - even when the client
 * has left. */
struct pending_create {
    struct sk_daemon *d;
    struct sk_http_req *req; /* NULL once the request is gone */
    int64_t start;
    struct sk_port_spec *port_specs;
    size_t n_ports;
    bool waiting; /* create_done has not run yet */
};

static void pending_create_free(struct pending_create *pc)
{
    free(pc->port_specs);
    free(pc);
}

static void create_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct pending_create *pc = ctx;
    pc->req = NULL;
    if (!pc->waiting)
        pending_create_free(pc);
}

static void create_done(void *arg, int ret, const struct sk_sandbox_rec *rec, const struct sk_error *cerr)
{
    struct pending_create *pc = arg;
    struct sk_daemon *d = pc->d;
    pc->waiting = false;
    struct sk_http_req *req = pc->req;
    struct sk_error err = {0};
    if (ret < 0) {
        if (req != NULL)
            sk_http_reply_error(req, cerr);
    } else if (pc->n_ports > 0 && sk_proxy_expose_all(d->proxy, rec->id, pc->port_specs, pc->n_ports, &err) < 0) {
        sk_sched_terminate(d->sched, rec->id, "its ports could not be exposed", NULL);
        if (req != NULL)
            sk_http_reply_error(req, &err);
    } else {
        sk_metric_inc(d->m.sandbox_creates, NULL);
        sk_metric_observe(d->m.sandbox_create_duration, NULL, (double)(sk_now_ns() - pc->start) / 1e9);
        if (req != NULL) {
            char location[96];
            snprintf(location, sizeof(location), "/v1/sandboxes/%s", rec->id);
            sk_http_set_header(req, "Location", location);
            sk_http_reply_json(req, 201, sk_sandbox_json(rec));
        }
    }
    if (req == NULL)
        pending_create_free(pc);
}

void sk_route_sandboxes_create(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *image = NULL, *workdir = NULL, *name = NULL;
    const json_t *entrypoint = NULL, *env = NULL, *tags = NULL;
    const json_t *ports = NULL; /* inbound ports (proxy.h) */
    /* network policy (routes_network.c) */
    const json_t *network = NULL;
    const char *network_group = NULL;
    double cpu = 0;
    int64_t pids = 0, timeout_s = 0, idle_s = 0, memory_mb = 0, disk_mb = 0;
    bool want_stdin = false;
    const struct sk_field fields[] = {
        SK_FIELD_STR("image", &image, SK_OPTIONAL, 4096),
        SK_FIELD_STRV("entrypoint", &entrypoint, SK_OPTIONAL, MAX_ARGV),
        SK_FIELD_BOOL("stdin", &want_stdin, SK_OPTIONAL),
        SK_FIELD_STRMAP("env", &env, SK_OPTIONAL, MAX_ENV),
        SK_FIELD_STR("workdir", &workdir, SK_OPTIONAL, 4096),
        SK_FIELD_NUM("cpu", &cpu, SK_OPTIONAL),
        SK_FIELD_INT("memory", &memory_mb, SK_OPTIONAL, 4, INT64_C(1) << 30),
        SK_FIELD_INT("pids", &pids, SK_OPTIONAL, 1, 4194304),
        SK_FIELD_INT("disk", &disk_mb, SK_OPTIONAL, 1, INT64_C(1) << 30),
        SK_FIELD_INT("timeout", &timeout_s, SK_OPTIONAL, 1, INT64_C(1) << 40),
        SK_FIELD_INT("idle_timeout", &idle_s, SK_OPTIONAL, 1, INT64_C(1) << 40),
        SK_FIELD_STRMAP("tags", &tags, SK_OPTIONAL, 64),
        SK_FIELD_STR("name", &name, SK_OPTIONAL, 64),
        SK_FIELD_ARR("ports", &ports, SK_OPTIONAL, SK_PORTS_MAX),
        SK_FIELD_OBJ("network", &network, SK_OPTIONAL),
        SK_FIELD_STR("network_group", &network_group, SK_OPTIONAL, 64),
    };
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    struct sk_error err = {0};
    /* a name must also work as a path parameter (/v1/sandboxes/{name}) */
    if (name != NULL && !sk_router_is_valid_param(name)) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "field 'name' must be 1 to 64 characters of [A-Za-z0-9._-] starting with a letter "
                                "or digit");
        return;
    }
    struct sk_sandbox_req sr = {.image = image, .workdir = workdir, .name = name};
    if (cpu < 0 || cpu > 1024) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'cpu' must be between 0.01 and 1024 cores");
        return;
    }
    sr.limits.cpu = cpu;
    sr.limits.pids = pids;
    sr.limits.memory_bytes = memory_mb << 20;
    sr.disk_bytes = disk_mb << 20;
    sr.timeout_ms = timeout_s * 1000;
    sr.idle_timeout_ms = idle_s * 1000;
    _cleanup_free_ const char **argv = sk_strv_from_json(entrypoint);
    if (argv != NULL && argv[0] == NULL) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'entrypoint' must not be empty");
        return;
    }
    sr.entrypoint = argv;
    if (want_stdin && argv == NULL) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'stdin' needs an 'entrypoint'");
        return;
    }
    sr.entrypoint_stdin = want_stdin;
    /* ports are checked before anything is created, exposed once it runs */
    _cleanup_free_ struct sk_port_spec *port_specs = NULL;
    size_t n_ports = 0;
    if (ports != NULL && sk_proxy_decode_ports(req, ports, &port_specs, &n_ports) < 0)
        return;
    /* the network is attached after the sandbox is made, before it runs */
    _cleanup_free_ char *network_json = NULL;
    if (sk_route_network_of_create(req, network, network_group, &network_json) < 0)
        return;
    sr.network_json = network_json;
    char **envv = NULL;
    if (env != NULL && (envv = sk_env_from_json(req, env)) == NULL)
        return;
    sr.env = (const char *const *)envv;
    _cleanup_free_ char *tags_json = tags ? json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    sr.tags_json = tags_json;
    _cleanup_free_ char *spec_json = json_dumps(req->json, JSON_COMPACT | JSON_SORT_KEYS);
    sr.spec_json = spec_json;

    /* The answer comes from create_done: at once from the warm pool, else
     * once a worker thread has built the sandbox (the loop serves others
     * meanwhile). */
    struct pending_create *pc = xcalloc(1, sizeof(*pc));
    pc->d = d;
    pc->req = req;
    pc->start = sk_now_ns();
    pc->port_specs = steal_pointer(&port_specs);
    pc->n_ports = n_ports;
    pc->waiting = true;
    sk_http_suspend(req);
    sk_http_on_close(req, create_closed, pc);
    int r = sk_sched_create_async(d->sched, &sr, create_done, pc, &err);
    sk_env_free(envv);
    if (r < 0) {
        pc->waiting = false;
        sk_http_reply_error(req, &err);
    }
}

void sk_route_sandboxes_get(struct sk_daemon *d, struct sk_http_req *req)
{
    reply_rec(d, req, sk_http_param(req, "id"), 200);
}

void sk_route_sandboxes_list(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *state = NULL, *name = NULL, *cursor = NULL, *tag = NULL;
    int64_t limit = 0;
    if (sk_http_query_str(req, "state", 32, &state) < 0 || sk_http_query_str(req, "name", 64, &name) < 0 ||
        sk_http_query_str(req, "cursor", 256, &cursor) < 0 || sk_http_query_str(req, "tag", 512, &tag) < 0 ||
        sk_http_query_int(req, "limit", 1, 1000, 100, &limit) < 0)
        return;
    /* tag=key:value[,key:value...] - every pair must match */
    const char *keys[16], *values[16];
    size_t n_tags = 0;
    _cleanup_free_ char *tagbuf = tag ? xstrdup(tag) : NULL;
    for (char *save = NULL, *p = tagbuf ? strtok_r(tagbuf, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(p, ':');
        if (colon == NULL || colon == p || n_tags == SK_ARRAY_SIZE(keys)) {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                    "query 'tag' must be key:value pairs separated by ',' (at most 16)");
            return;
        }
        *colon = '\0';
        keys[n_tags] = p;
        values[n_tags++] = colon + 1;
    }
    struct sk_sandbox_filter f = {
        .state = state,
        .name = name,
        .tag_keys = keys,
        .tag_values = values,
        .n_tags = n_tags,
        .limit = (size_t)limit,
        .cursor = cursor && *cursor ? cursor : NULL,
    };
    struct sk_error err = {0};
    struct sk_sandbox_rec *recs = NULL;
    size_t n = 0;
    _cleanup_free_ char *next = NULL;
    if (sk_store_sandbox_list(d->store, &f, &recs, &n, &next, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, sk_sandbox_json(&recs[i]));
    sk_sandbox_recs_free(recs, n);
    json_t *o = json_object();
    json_object_set_new(o, "sandboxes", arr);
    json_object_set_new(o, "next_cursor", next ? json_string(next) : json_null());
    sk_http_reply_json(req, 200, o);
}

void sk_route_sandboxes_terminate(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    const char *id = sk_http_param(req, "id");
    if (sk_sched_terminate(d->sched, id, req->auth.id, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    reply_rec(d, req, id, 200);
}

void sk_route_sandboxes_tags(struct sk_daemon *d, struct sk_http_req *req)
{
    const json_t *tags = NULL;
    const struct sk_field fields[] = {SK_FIELD_STRMAP("tags", &tags, SK_REQUIRED, 64)};
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    struct sk_error err = {0};
    struct sk_sandbox_rec rec;
    memset(&rec, 0, sizeof(rec));
    if (sk_sched_get(d->sched, sk_http_param(req, "id"), &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    _cleanup_free_ char *tags_json = json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS);
    int r = sk_sched_set_tags(d->sched, rec.id, tags_json, &err);
    if (r < 0)
        sk_http_reply_error(req, &err);
    else
        reply_rec(d, req, rec.id, 200);
    sk_sandbox_rec_release(&rec);
}

void sk_route_sandboxes_usage(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    struct sk_cgroup_usage u;
    memset(&u, 0, sizeof(u));
    struct sk_sandbox_rec rec;
    memset(&rec, 0, sizeof(rec));
    if (sk_sched_get(d->sched, sk_http_param(req, "id"), &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    if (sk_sched_usage(d->sched, rec.id, &u, &err) < 0) {
        if (err.code == ENOENT)
            sk_http_reply_api_error(req, SK_API_FAILED_PRECONDITION, "sandbox '%s' is not running (state '%s')", rec.id,
                                    rec.state ? rec.state : "unknown");
        else
            sk_http_reply_error(req, &err);
        sk_sandbox_rec_release(&rec);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(rec.id));
    sk_sandbox_rec_release(&rec);
    json_object_set_new(o, "cpu_seconds", json_real((double)u.cpu_usec / 1e6));
    json_object_set_new(o, "memory_bytes", json_integer((json_int_t)u.memory_current));
    json_object_set_new(o, "memory_peak_bytes", json_integer((json_int_t)u.memory_peak));
    json_object_set_new(o, "pids", json_integer((json_int_t)u.pids_current));
    json_object_set_new(o, "oom_kills", json_integer((json_int_t)u.oom_kills));
    sk_http_reply_json(req, 200, o);
}

/* ---- wait (long poll) ------------------------------------------------------ */

struct waiter {
    struct sk_daemon *d;
    struct sk_http_req *req;
    uint64_t id;
};

static void wait_done(void *arg, const struct sk_sandbox_rec *rec)
{
    struct waiter *w = arg;
    w->id = 0;
    if (rec->reason == NULL) {
        json_t *o = sk_sandbox_json(rec);
        json_object_set_new(o, "timed_out", json_true());
        sk_http_reply_json(w->req, 200, o);
    } else {
        sk_http_reply_json(w->req, 200, sk_sandbox_json(rec));
    }
}

static void wait_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct waiter *w = ctx;
    if (w->id != 0)
        sk_sched_wait_cancel(w->d->sched, w->id);
    free(w);
}

void sk_route_sandboxes_wait(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t timeout_s = 0;
    if (sk_http_query_int(req, "timeout", 0, WAIT_MAX_S, 60, &timeout_s) < 0)
        return;
    struct waiter *w = xcalloc(1, sizeof(*w));
    w->d = d;
    w->req = req;
    sk_http_suspend(req);
    sk_http_on_close(req, wait_closed, w);
    struct sk_error err = {0};
    uint64_t id = 0;
    if (sk_sched_wait(d->sched, sk_http_param(req, "id"), timeout_s * 1000, wait_done, w, &id, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    w->id = id; /* callbacks never run inside sk_sched_wait */
}
