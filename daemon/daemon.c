/* daemon.c - start-up, request dispatch (route, authenticate, handle),
 * metrics of every request, and the graceful stop. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/log.h"
#include "base/util.h"
#include "net/net.h"
#include "net_dns.h"
#include "proxy.h"
#include "routes.h"

#define ADMIN_TOKEN_FILE "admin.token"

/* ---- dispatch ------------------------------------------------------------------ */

/* authenticate - check the bearer token; answers 401 (or 500 when the
 * store fails) and returns -1 when the request may not proceed. */
static int authenticate(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    const char *authz = sk_http_header(req, "Authorization");
    int r;
    if (authz == NULL)
        r = sk_error_setv(&err, EACCES, "missing Authorization header (expected 'Bearer <token>')");
    else
        r = sk_auth_verify(d->store, authz, sk_auth_now_ms(), &req->auth, &err);
    if (r == 0) {
        req->authenticated = true;
        return 0;
    }
    if (err.code == EACCES) {
        /* EACCES from the token check means "who are you?", not "no". */
        sk_http_set_header(req, "WWW-Authenticate", "Bearer realm=\"skiff\"");
        sk_http_reply_api_error(req, SK_API_UNAUTHENTICATED, "%s", err.msg);
    } else {
        sk_http_reply_error(req, &err);
    }
    return -1;
}

static void on_headers(struct sk_http_req *req, void *ctx)
{
    struct sk_daemon *d = ctx;
    /* Requests for a sandbox's exposed port (/p/..., or by host name) are
     * the proxy's: it checks their access itself (proxy.h). */
    if (d->proxy != NULL && sk_proxy_intercept(d->proxy, req))
        return;
    enum sk_router_result rr = sk_router_match(d->router, req->method, req->path, &req->match);
    const struct sk_route *route = rr == SK_ROUTER_OK ? req->match.route : NULL;
    /* Authenticate before saying anything about paths, so that probing
     * without a token learns nothing but "401". */
    if ((route == NULL || !(route->flags & SK_ROUTE_NO_AUTH)) && authenticate(d, req) < 0)
        return;
    switch (rr) {
    case SK_ROUTER_OK: break;
    case SK_ROUTER_NOT_FOUND:
        sk_http_reply_api_error(req, SK_API_NOT_FOUND, "no route for '%.16s %.200s'", req->method, req->path);
        return;
    case SK_ROUTER_METHOD_NOT_ALLOWED:
        sk_http_set_header(req, "Allow", req->match.allow);
        sk_http_reply_api_error(req, SK_API_METHOD_NOT_ALLOWED,
                                "method '%.16s' is not allowed on '%.200s' (allowed: %s)", req->method, req->path,
                                req->match.allow);
        return;
    case SK_ROUTER_BAD_PARAM:
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "path parameter '%s' must be 1 to %d characters of [A-Za-z0-9._-] starting with a "
                                "letter or digit",
                                req->match.bad_param, SK_ROUTER_PARAM_MAX);
        return;
    }
    if (route->max_body != 0)
        req->max_body = route->max_body;
    if (route->flags & SK_ROUTE_STREAM_BODY)
        route->handler(d, req);
}

static void on_request(struct sk_http_req *req, void *ctx)
{
    struct sk_daemon *d = ctx;
    req->match.route->handler(d, req);
}

static void on_done(struct sk_http_req *req, int status, void *ctx)
{
    struct sk_daemon *d = ctx;
    if (status != 0) {
        char code[16];
        snprintf(code, sizeof(code), "%d", status);
        sk_metric_inc(d->m.http_requests, code);
        sk_metric_observe(d->m.http_duration, NULL, (double)(sk_now_ns() - req->start_ns) / 1e9);
    }
    if (d->stopping && sk_http_active(d->http) == 0)
        sk_loop_stop(d->loop);
}

/* ---- stop ---------------------------------------------------------------------- */

static void on_drain_timeout(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    struct sk_daemon *d = ctx;
    (void)t;
    sk_log_warn("stopping with %zu requests still in flight", sk_http_active(d->http));
    sk_loop_stop(loop);
}

static void on_stop_signal(struct sk_loop *loop, int signo, void *ctx)
{
    struct sk_daemon *d = ctx;
    if (d->stopping) {
        sk_log_warn("second '%s': stopping now", strsignal(signo));
        sk_loop_stop(loop);
        return;
    }
    d->stopping = true;
    sk_log_info("'%s' received: stopping", strsignal(signo));
    sk_http_quiesce(d->http);
    sk_proxy_quiesce(d->proxy);
    if (sk_http_active(d->http) == 0)
        sk_loop_stop(loop);
    else
        sk_loop_timer_start(loop, &d->stop_timer, SK_DAEMON_DRAIN_MS);
}

/* ---- start-up ------------------------------------------------------------------- */

static int prepare_data_dir(const char *dir, struct sk_error *err)
{
    int r = sk_mkdir_p(dir, 0700, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(dir, &st) < 0)
        return sk_error_set(err, errno, "stat '%s'", dir);
    if (!S_ISDIR(st.st_mode))
        return sk_error_setv(err, ENOTDIR, "data directory '%s' is not a directory", dir);
    if (st.st_mode & 077)
        sk_log_warn("data directory '%s' is accessible to other users (mode %03o); it holds credentials", dir,
                    (unsigned)(st.st_mode & 0777));
    return 0;
}

static int fsync_dir(const char *dir, struct sk_error *err)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return sk_error_set(err, errno, "fsync '%s'", dir);
    return 0;
}

/* write_secret_file - create `path` with mode 0600 (O_EXCL: never through a
 * planted file or symlink), write `text` and fsync it. */
static int write_secret_file(const char *path, const char *text, struct sk_error *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sk_error_set(err, errno, "create '%s'", path);
    size_t len = strlen(text);
    if (sk_write_all(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
        int r = sk_error_set(err, errno, "write '%s'", path);
        unlink(path);
        return r;
    }
    return 0;
}

/* ensure_admin_token - on first start (no live admin token), create one,
 * store its record, and put the token text in DATA_DIR/admin.token. The
 * file is written under a temporary name first and renamed last, so a
 * crash never leaves a token file without its record or a half file. */
static int ensure_admin_token(struct sk_daemon *d, struct sk_error *err)
{
    int64_t now = sk_auth_now_ms();
    int n = sk_store_token_count_admin(d->store, now, err);
    if (n < 0)
        return n;
    _cleanup_free_ char *path = xasprintf("%s/%s", d->data_dir, ADMIN_TOKEN_FILE);
    if (n > 0) {
        sk_log_info("admin token file '%s' left as it is (a live admin token exists)", path);
        return 0;
    }
    _cleanup_free_ char *tmp = xasprintf("%s/.%s.new", d->data_dir, ADMIN_TOKEN_FILE);
    char token[SK_TOKEN_MAX_LEN + 2];
    struct sk_token_rec rec;
    memset(&rec, 0, sizeof(rec));
    int r = sk_auth_token_new("admin", "admin", "", now, 0, token, &rec, err);
    if (r < 0)
        return r;
    size_t tlen = strlen(token);
    token[tlen] = '\n';
    token[tlen + 1] = '\0';
    unlink(tmp); /* left over from a crash between write and rename */
    r = write_secret_file(tmp, token, err);
    explicit_bzero(token, sizeof(token));
    if (r < 0)
        goto out;
    r = sk_store_token_insert(d->store, &rec, err);
    if (r == -EEXIST) {
        /* An expired token is still called "admin". */
        free(rec.name);
        rec.name = xasprintf("admin-%s", rec.id);
        r = sk_store_token_insert(d->store, &rec, err);
    }
    if (r < 0) {
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        r = sk_error_set(err, errno, "rename '%s' to '%s'", tmp, path);
        /* A live admin token nobody can read would lock everyone out. */
        sk_store_token_revoke(d->store, rec.id, now, NULL);
        unlink(tmp);
        goto out;
    }
    r = fsync_dir(d->data_dir, err);
    if (r < 0)
        goto out;
    sk_log_warn("admin token written to '%s'", path);
out:
    sk_token_rec_release(&rec);
    return r;
}

static void register_metrics(struct sk_daemon *d)
{
    const double *lat = sk_metrics_latency_buckets;
    size_t nlat = sk_metrics_latency_buckets_len;
    struct sk_metrics *m = d->metrics;
    d->m.http_requests =
        sk_metrics_counter(m, "skiff_http_requests_total", "HTTP requests answered, by status code.", "code");
    d->m.http_duration = sk_metrics_histogram(m, "skiff_http_request_duration_seconds",
                                              "Time from request arrival to completion.", NULL, lat, nlat);
    d->m.sandboxes = sk_metrics_gauge(m, "skiff_sandboxes", "Sandboxes by state.", "state");
    static const char *const states[] = {"creating", "running", "terminated"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(states); i++)
        sk_metric_touch(d->m.sandboxes, states[i]);
    d->m.sandbox_creates = sk_metrics_counter(m, "skiff_sandbox_creates_total", "Sandboxes created.", NULL);
    d->m.sandbox_terminations = sk_metrics_counter(m, "skiff_sandbox_terminations_total",
                                                   "Sandboxes that ended, by recorded reason.", "reason");
    static const char *const reasons[] = {"exited", "timeout", "idle", "oom", "terminated", "error", "lost"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(reasons); i++)
        sk_metric_touch(d->m.sandbox_terminations, reasons[i]);
    d->m.sandbox_create_duration = sk_metrics_histogram(
        m, "skiff_sandbox_create_duration_seconds", "Time to create a sandbox, request to running.", NULL, lat, nlat);
    d->m.exec_duration =
        sk_metrics_histogram(m, "skiff_exec_duration_seconds", "Run time of execs, start to exit.", NULL, lat, nlat);
}

static int build_router(struct sk_daemon *d, struct sk_error *err)
{
    size_t n = sk_api_routes_len + (d->cfg.debug_routes ? sk_debug_routes_len : 0);
    d->routes = xcalloc(n, sizeof(*d->routes));
    memcpy(d->routes, sk_api_routes, sk_api_routes_len * sizeof(*d->routes));
    if (d->cfg.debug_routes)
        memcpy(d->routes + sk_api_routes_len, sk_debug_routes, sk_debug_routes_len * sizeof(*d->routes));
    d->n_routes = n;
    return sk_router_new(d->routes, n, &d->router, err);
}

/* Metrics fed by the sandbox manager. */
static void on_sandbox_change(void *ctx, const struct sk_sandbox_rec *rec)
{
    struct sk_daemon *d = ctx;
    if (rec->state != NULL && strcmp(rec->state, "running") == 0) {
        d->n_running++;
    } else {
        if (d->n_running > 0)
            d->n_running--;
        sk_metric_inc(d->m.sandbox_terminations, rec->reason ? rec->reason : "unknown");
    }
    sk_metric_set(d->m.sandboxes, "running", (double)d->n_running);
}

static void on_exec_end(void *ctx, const struct sk_exec_rec *rec)
{
    struct sk_daemon *d = ctx;
    if (rec->ended_at > 0 && rec->created_at > 0 && rec->ended_at >= rec->created_at)
        sk_metric_observe(d->m.exec_duration, NULL, (double)(rec->ended_at - rec->created_at) / 1000.0);
}

/* pool_prepare - on the pool's refill thread: the directory the sandbox's
 * exec output will go to, so its first exec does not make it. */
static int pool_prepare(void *ctx, struct sk_sandbox *sb)
{
    struct sk_daemon *d = ctx;
    struct sk_error err = {0};
    int r = sk_sched_prepare_dir(d->data_dir, sk_sandbox_id(sb), &err);
    if (r < 0)
        sk_log_warn("pool: %s", err.msg);
    return r;
}

/* pool_start - the warm pool, once the recovery (and its sweep of what
 * nobody owns) is done. Its refill thread starts filling at once; a crash
 * leaves its sandboxes to the next start's stale sweep. */
static int pool_start(struct sk_daemon *d, struct sk_error *err)
{
    const struct sk_daemon_config *c = &d->cfg;
    if (c->pool_size == 0 && c->n_pool_keys == 0) {
        sk_log_info("warm pool disabled: every sandbox is created on request");
        return 0;
    }
    struct sk_pool_key_config keys[SK_POOL_KEYS_MAX];
    size_t n = 0;
    bool have_default = false;
    for (size_t i = 0; i < c->n_pool_keys && n < SK_POOL_KEYS_MAX; i++) {
        keys[n] = c->pool_keys[i];
        const char *img = keys[n].image;
        if ((img == NULL || strcmp(img, "host") == 0) && keys[n].net == SK_NET_NONE &&
            (keys[n].disk_bytes == 0 || keys[n].disk_bytes == SK_SANDBOX_DEFAULT_DISK))
            have_default = true;
        n++;
    }
    if (!have_default && c->pool_size > 0 && n < SK_POOL_KEYS_MAX)
        keys[n++] = (struct sk_pool_key_config){.image = "host", .min = c->pool_size};
    struct sk_pool_config pc = {
        .keys = keys,
        .n_keys = n,
        .max_per_key = c->pool_max,
        .idle_ms = (int64_t)c->pool_idle_s * 1000,
        .adaptive_new_keys = true,
        .prepare = pool_prepare,
        .prepare_ctx = d,
    };
    int r = sk_pool_new(d->rt, &pc, &d->pool, err);
    if (r < 0)
        return sk_error_prefix(err, "warm pool");
    return 0;
}

int sk_daemon_init(struct sk_daemon *d, const struct sk_daemon_config *cfg, struct sk_error *err)
{
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    d->data_dir = xstrdup(cfg->data_dir);
    d->listen = xstrdup(cfg->listen);
    d->cfg.data_dir = d->data_dir;
    d->cfg.listen = d->listen;
    sk_loop_timer_init(&d->stop_timer, on_drain_timeout, d);

    int r = sk_loop_new(&d->loop, err);
    if (r < 0)
        return r;
    r = sk_loop_signal_watch(d->loop, SIGTERM, on_stop_signal, d, err);
    if (r == 0)
        r = sk_loop_signal_watch(d->loop, SIGINT, on_stop_signal, d, err);
    if (r < 0)
        return r;

    r = build_router(d, err);
    if (r < 0)
        return sk_error_prefix(err, "route table");
    d->metrics = sk_metrics_new();
    register_metrics(d);

    r = sk_auth_init(err);
    if (r < 0)
        return r;
    r = prepare_data_dir(d->data_dir, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *db = xasprintf("%s/skiff.db", d->data_dir);
    r = sk_store_open(db, &d->store, err);
    if (r < 0)
        return sk_error_prefix(err, "open store '%s'", db);
    r = ensure_admin_token(d, err);
    if (r < 0)
        return sk_error_prefix(err, "admin token");

    /* Listen before touching sandboxes: a start that fails (the address is
     * taken) must leave an earlier run's sandboxes to the next attempt, not
     * adopt them and end them on the way out. Nothing is answered before
     * sk_daemon_run, so no request sees a half-recovered state. */
    struct sk_http_config hc = {
        .listen = d->cfg.listen,
        .max_body = d->cfg.max_body,
        .max_connections = d->cfg.max_connections,
        .max_per_ip = d->cfg.max_per_ip,
        .idle_timeout_s = d->cfg.idle_timeout_s,
        .on_headers = on_headers,
        .on_request = on_request,
        .on_done = on_done,
        .ctx = d,
    };
    r = sk_http_new(d->loop, &hc, &d->http, err);
    if (r < 0)
        return r;

    /* The sandbox runtime keeps its state beside the database. Its start
     * must not sweep away what an earlier skiffd (one that crashed) left
     * running: sk_sched_recover re-adopts those sandboxes first, records
     * the ones it cannot as lost, and then sweeps the rest. */
    _cleanup_free_ char *rt_dir = xasprintf("%s/runtime", d->data_dir);
    struct sk_runtime_config rc = {.state_dir = rt_dir, .keep_unowned = true};
    r = sk_runtime_new(&rc, &d->rt, err);
    if (r < 0)
        return sk_error_prefix(err, "sandbox runtime");
    sk_loop_adapter_init(&d->loop_ops, d->loop);
    /* Sandbox networking: nothing on the host is touched until a sandbox
     * asks for a network (docs/networking.md). */
    struct sk_net_config nc = {.cidr4 = d->cfg.net_cidr,
                               .cidr6 = d->cfg.net_cidr6,
                               .group_cidr4 = d->cfg.net_group_cidr,
                               .table = d->cfg.nft_table,
                               .dns_upstream = d->cfg.dns_upstream,
                               .instance = d->data_dir};
    r = sk_netd_new(d, &nc, &d->netd, err);
    if (r < 0)
        return r;
    d->net = sk_netd_net(d->netd);
    struct sk_sched_config sc = {
        .data_dir = d->data_dir,
        .default_timeout_ms = (int64_t)d->cfg.sandbox_timeout_s * 1000,
        .max_timeout_ms = (int64_t)d->cfg.max_sandbox_timeout_s * 1000,
        .retention_ms = (int64_t)d->cfg.retention_s * 1000,
        .on_sandbox = on_sandbox_change,
        .on_exec_end = on_exec_end,
        .observer_ctx = d,
        .net = d->net,
    };
    r = sk_sched_new(d->rt, d->store, &d->loop_ops.ops, &sc, &d->sched, err);
    if (r < 0)
        return sk_error_prefix(err, "sandbox manager");
    r = sk_sched_recover(d->sched, err);
    if (r < 0)
        return sk_error_prefix(err, "recover sandboxes");
    if (r > 0)
        sk_log_warn("%d sandbox(es) of an earlier run could not be re-adopted and were recorded as 'lost'", r);
    /* The pool after the recovery: its stale sweep must not meet sandboxes
     * the refill thread is making. */
    r = pool_start(d, err);
    if (r < 0)
        return r;
    sk_sched_set_pool(d->sched, d->pool);

    /* Inbound ports, after the recovery: re-adopted sandboxes keep theirs. */
    _cleanup_free_ char *key_path = xasprintf("%s/connect.key", d->data_dir);
    struct sk_proxy_config pxc = {.domain = d->cfg.proxy_domain,
                                  .bind = d->cfg.proxy_bind,
                                  .timeout_s = d->cfg.proxy_timeout_s,
                                  .key_path = key_path};
    r = sk_proxy_new(d, &pxc, &d->proxy, err);
    if (r < 0)
        return sk_error_prefix(err, "port proxy");
    r = sk_proxy_restore(d->proxy, err);
    if (r < 0)
        return sk_error_prefix(err, "restore exposed ports");

    sk_log_info("listening on '%s' (data directory '%s', schema %d)", sk_http_url(d->http), d->data_dir,
                sk_store_schema_version(d->store));
    return 0;
}

int sk_daemon_run(struct sk_daemon *d, struct sk_error *err)
{
    int r = sk_loop_run(d->loop, err);
    if (r == 0)
        sk_log_info("stopped");
    return r;
}

void sk_daemon_release(struct sk_daemon *d)
{
    /* The server first: its last requests still report to the metrics. */
    sk_http_free(d->http);
    d->http = NULL;
    if (d->loop != NULL)
        sk_loop_timer_stop(d->loop, &d->stop_timer);
    /* The proxy's requests are gone with the server; its waiters go before
     * the manager that calls them. */
    sk_proxy_free(d->proxy);
    d->proxy = NULL;
    /* Then the sandboxes (each ends as "terminated", "server shutdown"). */
    sk_sched_free(d->sched);
    d->sched = NULL;
    sk_pool_free(d->pool); /* its ready sandboxes are nobody's: destroyed */
    d->pool = NULL;
    /* Every sandbox has ended: the network's host side goes too. */
    sk_netd_free(d->netd);
    d->netd = NULL;
    d->net = NULL;
    if (d->loop != NULL)
        sk_loop_adapter_release(&d->loop_ops);
    sk_runtime_free(d->rt);
    d->rt = NULL;
    sk_store_close(d->store);
    d->store = NULL;
    sk_router_free(d->router);
    d->router = NULL;
    free(d->routes);
    d->routes = NULL;
    sk_metrics_free(d->metrics);
    d->metrics = NULL;
    sk_loop_free(d->loop);
    d->loop = NULL;
    free(d->data_dir);
    free(d->listen);
    d->data_dir = d->listen = NULL;
}
