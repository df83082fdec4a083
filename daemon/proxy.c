/* proxy.c - inbound ports (see proxy.h): the table of exposed ports, the
 * API's side of it, routing and access checks of proxied requests, TCP
 * listeners, and reaching into a sandbox's network namespace. The
 * exchanges themselves are proxy_http.c's and proxy_relay.c's. */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/log.h"
#include "base/util.h"
#include "http.h"
#include "json.h"
#include "proxy_int.h"
#include "sched/sandboxes.h"

/* ---- reaching into a sandbox ------------------------------------------------------ */

int sk__px_open_socket(struct sk_proxy *p, int netns_fd, int family)
{
    /* A socket belongs to the namespace it was created in, whatever the
     * thread does next: step in, create it, step out. Only this thread
     * moves (setns acts on the caller), and only for these three calls. */
    if (setns(netns_fd, CLONE_NEWNET) < 0)
        return -1;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int saved = errno;
    if (setns(p->self_netns, CLONE_NEWNET) < 0) {
        /* Staying in a sandbox's namespace would put every later socket of
         * the daemon there: stop (a restart re-adopts the sandboxes). */
        sk_log_error("cannot return to skiffd's network namespace: %s", strerror(errno));
        abort();
    }
    errno = saved;
    return fd;
}

struct px_sandbox *sk__px_find_sandbox(struct sk_proxy *p, const char *id)
{
    for (struct px_sandbox *s = p->sandboxes; s != NULL; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

/* find_ref - a sandbox by id or name (case-insensitive: host names are). */
static struct px_sandbox *find_ref(struct sk_proxy *p, const char *ref)
{
    for (struct px_sandbox *s = p->sandboxes; s != NULL; s = s->next)
        if (strcmp(s->id, ref) == 0 || (s->name != NULL && strcmp(s->name, ref) == 0))
            return s;
    for (struct px_sandbox *s = p->sandboxes; s != NULL; s = s->next)
        if (strcasecmp(s->id, ref) == 0 || (s->name != NULL && strcasecmp(s->name, ref) == 0))
            return s;
    return NULL;
}

static struct px_port *find_port(struct px_sandbox *s, uint16_t port)
{
    for (size_t i = 0; s != NULL && i < s->n_ports; i++)
        if (s->ports[i]->spec.port == port)
            return s->ports[i];
    return NULL;
}

int sk__px_connect(struct sk_proxy *p, const char *sandbox_id, uint16_t port, int *fd)
{
    *fd = -1;
    struct px_sandbox *s = sk__px_find_sandbox(p, sandbox_id);
    if (s == NULL || find_port(s, port) == NULL)
        return -ENOENT;
    int sfd = sk__px_open_socket(p, s->netns_fd, AF_INET);
    if (sfd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int r = -errno;
        close(sfd);
        return r;
    }
    *fd = sfd;
    return 0;
}

void sk__px_touch(struct sk_proxy *p, const char *sandbox_id)
{
    struct px_sandbox *s = sk__px_find_sandbox(p, sandbox_id);
    int64_t now = sk_now_ns();
    if (s == NULL || now - s->last_touch_ns < PX_TOUCH_NS)
        return;
    s->last_touch_ns = now;
    sk_sched_touch(p->d->sched, s->id);
}

/* ---- TCP listeners ------------------------------------------------------------------- */

static int bind_addr(const char *bind, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, bind, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, bind, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
        return 0;
    }
    return -1;
}

static void on_listener(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)events;
    struct px_port *pp = ctx;
    struct sk_proxy *p = pp->sb->p;
    /* a bounded batch per wake-up; level-triggered, so the rest comes next */
    for (int i = 0; i < 64 && pp->listen_fd == fd; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int c = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                sk_log_warn("port %u of sandbox '%s': accept: %s", pp->spec.port, pp->sb->id, strerror(errno));
            return;
        }
        if (!sk_port_spec_allows(&pp->spec, (struct sockaddr *)&peer)) {
            sk_metric_inc(p->m_refused, "cidr");
            close(c);
            continue;
        }
        sk__px_tcp_accept(p, pp, c, (struct sockaddr *)&peer);
    }
}

/* open_listener - a listener for a tcp port on the bind address: on
 * `prefer` when given and free, else on a port the kernel picks. */
static int open_listener(struct sk_proxy *p, struct px_port *pp, uint16_t prefer, struct sk_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (bind_addr(p->bind, prefer, &ss, &len) < 0)
        return sk_error_setv(err, EINVAL, "proxy bind address '%s' is not an IP address", p->bind);
    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sk_error_set(err, errno, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        if (prefer == 0 || (errno != EADDRINUSE && errno != EACCES))
            return sk_error_set(err, errno, "bind a listener for port %u on '%s'", pp->spec.port, p->bind);
        sk_log_warn("sandbox '%s' port %u: host port %u is taken now; allocating another", pp->sb->id, pp->spec.port,
                    prefer);
        bind_addr(p->bind, 0, &ss, &len);
        if (bind(fd, (struct sockaddr *)&ss, len) < 0)
            return sk_error_set(err, errno, "bind a listener for port %u on '%s'", pp->spec.port, p->bind);
    }
    if (listen(fd, 128) < 0)
        return sk_error_set(err, errno, "listen");
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return sk_error_set(err, errno, "getsockname");
    uint16_t host_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                        : ((struct sockaddr_in *)&ss)->sin_port);
    int r = sk_loop_watch_add(p->d->loop, fd, SK_LOOP_READ, on_listener, pp, &pp->listen_watch, err);
    if (r < 0)
        return r;
    pp->listen_fd = steal_fd(&fd);
    pp->spec.host_port = host_port;
    return 0;
}

static void close_listener(struct sk_proxy *p, struct px_port *pp)
{
    sk_loop_watch_remove(p->d->loop, pp->listen_watch);
    pp->listen_watch = NULL;
    sk_close(&pp->listen_fd);
}

/* ---- the table ---------------------------------------------------------------------- */

static void port_gauge(struct sk_proxy *p, enum sk_port_protocol proto, int delta)
{
    const char *label = sk_port_protocol_name(proto);
    sk_metric_set(p->m_ports, label, sk_metric_get(p->m_ports, label) + delta);
}

/* port_drop - stop serving one port: listener, routing, connections. */
static void port_drop(struct sk_proxy *p, struct px_sandbox *s, size_t i, const char *why)
{
    struct px_port *pp = s->ports[i];
    uint16_t port = pp->spec.port;
    s->ports[i] = s->ports[--s->n_ports];
    close_listener(p, pp);
    port_gauge(p, pp->spec.protocol, -1);
    free(pp);
    sk__px_http_abort(p, s->id, port, why);
    sk__px_pipes_abort(p, s->id, port);
}

static void sandbox_free(struct sk_proxy *p, struct px_sandbox *s, const char *why)
{
    while (s->n_ports > 0)
        port_drop(p, s, s->n_ports - 1, why);
    if (s->waiter != 0)
        sk_sched_wait_cancel(p->d->sched, s->waiter);
    for (struct px_sandbox **pp = &p->sandboxes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    /* holding the namespace would keep it (and its devices) alive */
    sk_close(&s->netns_fd);
    free(s->name);
    free(s);
}

static void on_sandbox_end(void *arg, const struct sk_sandbox_rec *rec)
{
    struct px_sandbox *s = arg;
    (void)rec;
    s->waiter = 0;
    sk_log_debug("sandbox '%s' ended: its %zu port(s) are gone", s->id, s->n_ports);
    sandbox_free(s->p, s, "the sandbox has ended");
}

/* sandbox_attach - the live entry of a running sandbox (created with its
 * namespace and an end watch when it has none yet). */
static struct px_sandbox *sandbox_attach(struct sk_proxy *p, const char *id, struct sk_error *err)
{
    struct px_sandbox *s = sk__px_find_sandbox(p, id);
    if (s != NULL)
        return s;
    s = xcalloc(1, sizeof(*s));
    s->p = p;
    s->netns_fd = -1;
    snprintf(s->id, sizeof(s->id), "%s", id);
    if (sk_sched_netns_open(p->d->sched, id, &s->netns_fd, err) < 0 ||
        sk_sched_wait(p->d->sched, id, 0, on_sandbox_end, s, &s->waiter, err) < 0) {
        sk_close(&s->netns_fd);
        free(s);
        return NULL;
    }
    struct sk_sandbox_rec rec;
    if (sk_sched_get(p->d->sched, id, &rec, NULL) == 0) {
        s->name = rec.name != NULL ? xstrdup(rec.name) : NULL;
        sk_sandbox_rec_release(&rec);
    }
    s->next = p->sandboxes;
    p->sandboxes = s;
    return s;
}

static void sandbox_release_if_empty(struct sk_proxy *p, struct px_sandbox *s)
{
    if (s != NULL && s->n_ports == 0)
        sandbox_free(p, s, "no port left");
}

/* port_add - serve a spec (its listener opened for tcp); false on error. */
static struct px_port *port_add(struct sk_proxy *p, struct px_sandbox *s, const struct sk_port_spec *spec,
                                struct sk_error *err)
{
    if (s->n_ports == SK_PORTS_MAX) {
        sk_error_setv(err, EINVAL, "sandbox '%s' has %d ports exposed already (the most)", s->id, SK_PORTS_MAX);
        return NULL;
    }
    struct px_port *pp = xcalloc(1, sizeof(*pp));
    pp->sb = s;
    pp->spec = *spec;
    pp->listen_fd = -1;
    if (spec->protocol == SK_PORT_TCP && open_listener(p, pp, spec->host_port, err) < 0) {
        free(pp);
        return NULL;
    }
    s->ports[s->n_ports++] = pp;
    port_gauge(p, spec->protocol, +1);
    return pp;
}

/* store_ports - write the live ports of s to its runtime record. */
static int store_ports(struct sk_proxy *p, struct px_sandbox *s, struct sk_error *err)
{
    struct sk_port_spec *v = xcalloc(s->n_ports ? s->n_ports : 1, sizeof(*v));
    for (size_t i = 0; i < s->n_ports; i++)
        v[i] = s->ports[i]->spec;
    json_t *arr = sk_ports_to_json(v, s->n_ports);
    free(v);
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    int r = sk_sched_ports_set(p->d->sched, s->id, text, err);
    free(text);
    return r;
}

/* ---- the API ----------------------------------------------------------------------------- */

int sk_proxy_decode_port(struct sk_http_req *req, const json_t *v, const char *what, struct sk_port_spec *out)
{
    memset(out, 0, sizeof(*out));
    if (json_is_integer(v) && what != NULL) {
        json_int_t port = json_integer_value(v);
        if (port < 1 || port > 65535) {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "%s must be a port number from 1 to 65535, not %lld",
                                    what, (long long)port);
            return -1;
        }
        out->port = (uint16_t)port;
        return 0;
    }
    if (!json_is_object(v)) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "%s must be a port number or an object {\"port\", \"protocol\", \"public\", "
                                "\"allow_cidrs\"}, not %s",
                                what ? what : "the body", sk_json_type_name(v));
        return -1;
    }
    int64_t port = 0;
    const char *protocol = NULL;
    bool public = false;
    const json_t *cidrs = NULL;
    const struct sk_field fields[] = {
        SK_FIELD_INT("port", &port, SK_REQUIRED, 1, 65535),
        SK_FIELD_STR("protocol", &protocol, SK_OPTIONAL, 16),
        SK_FIELD_BOOL("public", &public, SK_OPTIONAL),
        SK_FIELD_STRV("allow_cidrs", &cidrs, SK_OPTIONAL, SK_PORT_CIDRS_MAX),
    };
    enum sk_api_code code = SK_API_INVALID_ARGUMENT;
    struct sk_error err = {0};
    if (sk_json_decode_at(v, what, fields, SK_ARRAY_SIZE(fields), &code, &err) < 0) {
        sk_http_reply_api_error(req, code, "%s", err.msg);
        return -1;
    }
    out->port = (uint16_t)port;
    out->public = public;
    if (protocol != NULL && sk_port_protocol_parse(protocol, &out->protocol) < 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field '%s%sprotocol' must be \"http\" or \"tcp\"",
                                what ? what : "", what ? "." : "");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(cidrs); i++) {
        if (sk_cidr_parse(json_string_value(json_array_get(cidrs, i)), &out->cidrs[out->n_cidrs], &err) < 0) {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field '%s%sallow_cidrs': %s", what ? what : "",
                                    what ? "." : "", err.msg);
            return -1;
        }
        out->n_cidrs++;
    }
    if (sk_port_spec_check(out, &err) < 0) {
        sk_http_reply_error(req, &err);
        return -1;
    }
    return 0;
}

int sk_proxy_decode_ports(struct sk_http_req *req, const json_t *arr, struct sk_port_spec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = json_array_size(arr);
    if (len == 0)
        return 0;
    if (len > SK_PORTS_MAX) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'ports' may hold at most %d ports", SK_PORTS_MAX);
        return -1;
    }
    struct sk_port_spec *v = xcalloc(len, sizeof(*v));
    for (size_t i = 0; i < len; i++) {
        char what[32];
        snprintf(what, sizeof(what), "ports[%zu]", i);
        if (sk_proxy_decode_port(req, json_array_get(arr, i), what, &v[i]) < 0) {
            free(v);
            return -1;
        }
        for (size_t k = 0; k < i; k++) {
            if (v[k].port == v[i].port) {
                sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'ports': port %u is listed twice",
                                        v[i].port);
                free(v);
                return -1;
            }
        }
    }
    *out = v;
    *n = len;
    return 0;
}

int sk_proxy_expose(struct sk_proxy *p, const char *sandbox, const struct sk_port_spec *spec, struct sk_port_spec *out,
                    char id[20], struct sk_error *err)
{
    if (p->stopping)
        return sk_error_setv(err, EBUSY, "the server is shutting down");
    int r = sk_port_spec_check(spec, err);
    if (r < 0)
        return r;
    char sid[20];
    _cleanup_free_ char *json = NULL;
    r = sk_sched_ports_get(p->d->sched, sandbox, sid, &json, err);
    if (r < 0)
        return r;
    if (id != NULL)
        snprintf(id, 20, "%s", sid);
    struct px_sandbox *s = sandbox_attach(p, sid, err);
    if (s == NULL)
        return -err->code;
    if (find_port(s, spec->port) != NULL)
        return sk_error_setv(err, EEXIST, "port %u of sandbox '%s' is exposed already", spec->port, sid);
    struct sk_port_spec ns = *spec;
    ns.generation = sk_port_generation_new();
    ns.exposed_at = sk_auth_now_ms();
    ns.host_port = 0;
    struct px_port *pp = port_add(p, s, &ns, err);
    if (pp == NULL) {
        sandbox_release_if_empty(p, s);
        return -err->code;
    }
    r = store_ports(p, s, err);
    if (r < 0) {
        port_drop(p, s, s->n_ports - 1, "it could not be stored");
        sandbox_release_if_empty(p, s);
        return r;
    }
    if (out != NULL)
        *out = pp->spec;
    sk_log_info("sandbox '%s': port %u exposed (%s%s%s)", sid, ns.port, sk_port_protocol_name(ns.protocol),
                ns.public ? ", public" : "", ns.n_cidrs ? ", with an allowlist" : "");
    return 0;
}

int sk_proxy_expose_all(struct sk_proxy *p, const char *id, const struct sk_port_spec *specs, size_t n,
                        struct sk_error *err)
{
    if (p == NULL)
        return sk_error_setv(err, ENOTSUP, "this server proxies no ports");
    for (size_t i = 0; i < n; i++) {
        int r = sk_proxy_expose(p, id, &specs[i], NULL, NULL, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int sk_proxy_unexpose(struct sk_proxy *p, const char *sandbox, uint16_t port, struct sk_error *err)
{
    char sid[20];
    _cleanup_free_ char *json = NULL;
    int r = sk_sched_ports_get(p->d->sched, sandbox, sid, &json, err);
    if (r < 0)
        return r;
    struct px_sandbox *s = sk__px_find_sandbox(p, sid);
    size_t i = 0;
    while (s != NULL && i < s->n_ports && s->ports[i]->spec.port != port)
        i++;
    if (s == NULL || i == s->n_ports)
        return sk_error_setv(err, ENOENT, "port %u of sandbox '%s' is not exposed", port, sid);
    struct sk_port_spec keep = s->ports[i]->spec;
    port_drop(p, s, i, "the port was unexposed");
    r = store_ports(p, s, err);
    if (r < 0) {
        /* the record still lists it: serve it again rather than lie */
        struct sk_error e2 = {0};
        if (port_add(p, s, &keep, &e2) == NULL)
            sk_log_error("sandbox '%s' port %u: %s", sid, port, e2.msg);
        return r;
    }
    sandbox_release_if_empty(p, s);
    sk_log_info("sandbox '%s': port %u unexposed", sid, port);
    return 0;
}

int sk_proxy_list(struct sk_proxy *p, const char *sandbox, char id[20], struct sk_port_spec **specs, size_t *n,
                  struct sk_error *err)
{
    *specs = NULL;
    *n = 0;
    _cleanup_free_ char *json = NULL;
    int r = sk_sched_ports_get(p->d->sched, sandbox, id, &json, err);
    if (r == -EALREADY) {
        /* ended: its ports are gone */
        struct sk_sandbox_rec rec;
        if (sk_sched_get(p->d->sched, sandbox, &rec, err) < 0)
            return -err->code;
        snprintf(id, 20, "%s", rec.id);
        sk_sandbox_rec_release(&rec);
        sk_error_clear(err);
        return 0;
    }
    if (r < 0)
        return r;
    struct px_sandbox *s = sk__px_find_sandbox(p, id);
    if (s == NULL || s->n_ports == 0)
        return 0;
    *specs = xcalloc(s->n_ports, sizeof(**specs));
    for (size_t i = 0; i < s->n_ports; i++)
        (*specs)[i] = s->ports[i]->spec;
    /* oldest first */
    for (size_t i = 1; i < s->n_ports; i++)
        for (size_t k = i; k > 0 && (*specs)[k - 1].exposed_at > (*specs)[k].exposed_at; k--) {
            struct sk_port_spec t = (*specs)[k];
            (*specs)[k] = (*specs)[k - 1];
            (*specs)[k - 1] = t;
        }
    *n = s->n_ports;
    return 0;
}

/* base_url - skiffd's URL for the path form ("http://127.0.0.1:7433"). */
static const char *base_url(struct sk_proxy *p)
{
    return sk_http_url(p->d->http);
}

/* listen_port - the port of skiffd's listener, 0 for a Unix socket. */
static int listen_port(struct sk_proxy *p)
{
    const char *url = base_url(p);
    const char *colon = strrchr(url, ':');
    if (strncmp(url, "http://", 7) != 0 || colon == NULL)
        return 0;
    return atoi(colon + 1);
}

static json_t *host_url(struct sk_proxy *p, const char *id, uint16_t port, const char *query)
{
    if (p->domain == NULL)
        return json_null();
    int lp = listen_port(p);
    char portpart[16] = "";
    if (lp != 0 && lp != 80)
        snprintf(portpart, sizeof(portpart), ":%d", lp);
    char *u = xasprintf("http://%u-%s.%s%s/%s%s", port, id, p->domain, portpart, query ? "?" : "", query ? query : "");
    json_t *j = json_string(u);
    free(u);
    return j;
}

json_t *sk_proxy_port_json(struct sk_proxy *p, const char *id, const struct sk_port_spec *spec)
{
    json_t *cidrs = json_array();
    for (size_t i = 0; i < spec->n_cidrs; i++) {
        char text[SK_CIDR_TEXT_MAX];
        sk_cidr_format(&spec->cidrs[i], text);
        json_array_append_new(cidrs, json_string(text));
    }
    json_t *o = json_object();
    json_object_set_new(o, "port", json_integer(spec->port));
    json_object_set_new(o, "protocol", json_string(sk_port_protocol_name(spec->protocol)));
    json_object_set_new(o, "public", json_boolean(spec->public));
    json_object_set_new(o, "allow_cidrs", cidrs);
    json_object_set_new(o, "exposed_at", sk_json_time(spec->exposed_at));
    if (spec->protocol == SK_PORT_TCP) {
        char *u = strchr(p->bind, ':') != NULL ? xasprintf("tcp://[%s]:%u", p->bind, spec->host_port)
                                               : xasprintf("tcp://%s:%u", p->bind, spec->host_port);
        json_object_set_new(o, "url", json_string(u));
        free(u);
        json_object_set_new(o, "host_url", json_null());
        json_object_set_new(o, "tcp_host", json_string(p->bind));
        json_object_set_new(o, "tcp_port", json_integer(spec->host_port));
    } else {
        char *u = xasprintf("%s/p/%s/%u/", base_url(p), id, spec->port);
        json_object_set_new(o, "url", json_string(u));
        free(u);
        json_object_set_new(o, "host_url", host_url(p, id, spec->port, NULL));
        json_object_set_new(o, "tcp_host", json_null());
        json_object_set_new(o, "tcp_port", json_null());
    }
    return o;
}

int sk_proxy_connect_token(struct sk_proxy *p, const char *sandbox, uint16_t port, int64_t ttl_ms, json_t **out,
                           struct sk_error *err)
{
    *out = NULL;
    char sid[20];
    _cleanup_free_ char *json = NULL;
    int r = sk_sched_ports_get(p->d->sched, sandbox, sid, &json, err);
    if (r < 0)
        return r;
    struct px_port *pp = find_port(sk__px_find_sandbox(p, sid), port);
    if (pp == NULL)
        return sk_error_setv(err, ENOENT, "port %u of sandbox '%s' is not exposed", port, sid);
    if (pp->spec.protocol == SK_PORT_TCP)
        return sk_error_setv(err, ENOTTY,
                             "port %u of sandbox '%s' is a tcp port: raw TCP cannot carry a token (make it public "
                             "or give it allow_cidrs)",
                             port, sid);
    struct sk_connect_claims c = {.port = port, .generation = pp->spec.generation};
    snprintf(c.sandbox_id, sizeof(c.sandbox_id), "%s", sid);
    c.expires_at = sk_auth_now_ms() + ttl_ms;
    char token[SK_CONNECT_TOKEN_LEN + 1];
    r = sk_connect_token_mint(p->key, &c, token, err);
    if (r < 0)
        return r;
    json_t *o = json_object();
    json_object_set_new(o, "token", json_string(token));
    json_object_set_new(o, "sandbox_id", json_string(sid));
    json_object_set_new(o, "port", json_integer(port));
    json_object_set_new(o, "expires_at", sk_json_time(c.expires_at));
    char *u = xasprintf("%s/p/%s/%u/?%s=%s", base_url(p), sid, port, PX_QUERY_TOKEN, token);
    json_object_set_new(o, "url", json_string(u));
    free(u);
    char q[128];
    snprintf(q, sizeof(q), "%s=%s", PX_QUERY_TOKEN, token);
    json_object_set_new(o, "host_url", host_url(p, sid, port, q));
    explicit_bzero(token, sizeof(token));
    *out = o;
    return 0;
}

/* ---- forwarding headers --------------------------------------------------------------- */

static bool has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *q = list;
    while (*q != '\0') {
        q += strspn(q, " \t,");
        size_t n = strcspn(q, ",");
        size_t end = n;
        while (end > 0 && (q[end - 1] == ' ' || q[end - 1] == '\t'))
            end--;
        if (end == tlen && strncasecmp(q, token, tlen) == 0)
            return true;
        q += n;
    }
    return false;
}

/* is_our_bearer - "Bearer skf_..." / "Bearer skc_...": skiff's own token. */
static const char *our_bearer(const char *authz)
{
    if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authz + 7;
    while (*t == ' ')
        t++;
    return strncmp(t, "skf_", 4) == 0 || strncmp(t, SK_CONNECT_TOKEN_PREFIX, 4) == 0 ? t : NULL;
}

bool sk__px_is_hop_header(const char *name, bool upgrade)
{
    static const char *const hop[] = {
        "Connection",        "Keep-Alive",     "Proxy-Connection", "Proxy-Authenticate", "TE", "Trailer",
        "Transfer-Encoding", "Content-Length", "Upgrade",          "Proxy-Authorization"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(hop); i++)
        if (strcasecmp(name, hop[i]) == 0)
            return !(upgrade && strcasecmp(name, "Upgrade") == 0);
    return false;
}

/* filter_cookie - the Cookie header without skiff's own cookie; NULL when
 * nothing else is left. */
static char *filter_cookie(const char *value)
{
    size_t len = strlen(value);
    char *out = xmalloc(len + 1);
    size_t o = 0;
    const char *q = value;
    while (*q != '\0') {
        q += strspn(q, " ;");
        size_t n = strcspn(q, ";");
        if (n == 0)
            break;
        size_t nl = strlen(PX_COOKIE);
        bool ours = n > nl && strncmp(q, PX_COOKIE, nl) == 0 && q[nl] == '=';
        if (!ours) {
            if (o > 0) {
                out[o++] = ';';
                out[o++] = ' ';
            }
            memcpy(out + o, q, n);
            o += n;
        }
        q += n;
    }
    out[o] = '\0';
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void peer_text(struct sk_http_req *req, char *out, size_t size)
{
    struct sockaddr_storage ss;
    snprintf(out, size, "unknown");
    if (sk_http_peer(req, &ss) < 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)size);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)size);
    else if (ss.ss_family == AF_UNIX)
        snprintf(out, size, "unix");
}

void sk__px_forward_headers(struct sk_proxy *p, struct sk_http_req *req, const struct px_target *t, bool upgrade,
                            void (*add)(const char *name, const char *value, void *arg), void *arg)
{
    (void)p;
    const char *connection = sk_http_header(req, "Connection");
    const char *xff = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].key, *value = req->headers[i].value;
        if (sk__px_is_hop_header(name, upgrade) || strcasecmp(name, "Host") == 0 || strcasecmp(name, "Expect") == 0 ||
            strcasecmp(name, PX_HEADER_TOKEN) == 0 || strncasecmp(name, "X-Forwarded-", 12) == 0) {
            if (strcasecmp(name, "X-Forwarded-For") == 0)
                xff = value;
            continue;
        }
        /* headers the client marked hop-by-hop ("Connection: close, X-Foo") */
        if (connection != NULL && has_token(connection, name) && !(upgrade && strcasecmp(name, "Upgrade") == 0))
            continue;
        if (strcasecmp(name, "Authorization") == 0 && our_bearer(value) != NULL)
            continue; /* skiff's token is for skiff, never for the sandbox */
        if (strcasecmp(name, "Cookie") == 0) {
            char *c = filter_cookie(value);
            if (c != NULL)
                add(name, c, arg);
            free(c);
            continue;
        }
        add(name, value, arg);
    }
    const char *host = sk_http_header(req, "Host");
    char fallback[32];
    snprintf(fallback, sizeof(fallback), "127.0.0.1:%u", t->port_num);
    add("Host", host != NULL ? host : fallback, arg);
    char peer[INET6_ADDRSTRLEN + 8];
    peer_text(req, peer, sizeof(peer));
    char *ff = xff != NULL ? xasprintf("%s, %s", xff, peer) : xstrdup(peer);
    add("X-Forwarded-For", ff, arg);
    free(ff);
    add("X-Forwarded-Proto", "http", arg);
    if (host != NULL)
        add("X-Forwarded-Host", host, arg);
    if (!t->host_form)
        add("X-Forwarded-Prefix", t->prefix, arg);
    if (upgrade)
        add("Connection", "Upgrade", arg);
}

void sk__px_target_release(struct px_target *t)
{
    free(t->forward);
    free(t->set_cookie);
    t->forward = t->set_cookie = NULL;
}

/* ---- routing ------------------------------------------------------------------------------ */

struct px_parsed {
    char ref[SK_ROUTER_PARAM_MAX + 1]; /* sandbox id or name */
    long port;                         /* 0: malformed */
    bool host_form;
    const char *rest; /* the raw target after the prefix (path form), or all of it (host form) */
    char prefix[200];
};

/* parse_path_form - "/p/<sandbox>/<port>[/rest][?query]". Anything under
 * /p/ is the proxy's; a malformed one gets port 0 (answered 404). */
static bool parse_path_form(const char *raw, struct px_parsed *out)
{
    if (strncmp(raw, "/p/", 3) != 0)
        return false;
    const char *a = raw + 3;
    size_t n = strcspn(a, "/?");
    const char *b = a + n;
    if (n == 0 || n > SK_ROUTER_PARAM_MAX || *b != '/')
        return true;
    memcpy(out->ref, a, n);
    out->ref[n] = '\0';
    if (!sk_router_is_valid_param(out->ref))
        return true;
    b++;
    size_t m = strcspn(b, "/?");
    if (m == 0 || m > 5 || strspn(b, "0123456789") < m)
        return true;
    long port = strtol(b, NULL, 10);
    if (port < 1 || port > 65535)
        return true;
    out->port = port;
    out->rest = b + m;
    snprintf(out->prefix, sizeof(out->prefix), "/p/%s/%ld", out->ref, port);
    return true;
}

/* parse_host_form - Host "<port>-<sandbox>.<domain>[:listen port]". Only
 * names of that shape are the proxy's: the domain itself (or "www.") may
 * well be the API's. */
static bool parse_host_form(struct sk_proxy *p, struct sk_http_req *req, struct px_parsed *out)
{
    const char *host = sk_http_header(req, "Host");
    if (p->domain == NULL || host == NULL)
        return false;
    char h[256];
    size_t len = strlen(host);
    if (len >= sizeof(h) || host[0] == '[')
        return false;
    for (size_t i = 0; i <= len; i++)
        h[i] = (char)tolower((unsigned char)host[i]);
    char *colon = strchr(h, ':');
    if (colon != NULL)
        *colon = '\0';
    len = strlen(h);
    size_t dlen = strlen(p->domain);
    if (len > 0 && h[len - 1] == '.') /* a fully qualified name */
        h[--len] = '\0';
    if (len < dlen + 4 || strcmp(h + len - dlen, p->domain) != 0 || h[len - dlen - 1] != '.')
        return false;
    h[len - dlen - 1] = '\0';
    size_t digits = strspn(h, "0123456789");
    if (digits == 0 || digits > 5 || h[digits] != '-' || strchr(h, '.') != NULL)
        return false;
    long port = strtol(h, NULL, 10);
    const char *ref = h + digits + 1;
    if (port < 1 || port > 65535 || !sk_router_is_valid_param(ref))
        return false;
    snprintf(out->ref, sizeof(out->ref), "%s", ref);
    out->port = port;
    out->host_form = true;
    out->rest = sk_http_raw_uri(req);
    out->prefix[0] = '\0';
    return true;
}

/* strip_query_token - target without skiff_token=... in its query; the
 * first such value goes to *token (caller frees; NULL when none). */
static char *strip_query_token(const char *target, char **token)
{
    *token = NULL;
    const char *q = strchr(target, '?');
    if (q == NULL)
        return xstrdup(target);
    size_t tlen = strlen(target);
    char *out = xmalloc(tlen + 1);
    size_t o = (size_t)(q - target);
    memcpy(out, target, o);
    size_t qstart = o;
    const char *a = q + 1;
    size_t klen = strlen(PX_QUERY_TOKEN);
    while (*a != '\0') {
        size_t n = strcspn(a, "&");
        bool ours = n >= klen && strncmp(a, PX_QUERY_TOKEN, klen) == 0 && (n == klen || a[klen] == '=');
        if (ours) {
            if (*token == NULL && n > klen + 1)
                *token = xstrndup(a + klen + 1, n - klen - 1);
        } else if (n > 0) {
            out[o] = o == qstart ? '?' : '&';
            o++;
            memcpy(out + o, a, n);
            o += n;
        }
        a += n;
        if (*a == '&')
            a++;
    }
    out[o] = '\0';
    return out;
}

/* ---- access ---------------------------------------------------------------------------- */

enum px_verdict { V_NONE = 0, V_UNAUTH, V_FORBID, V_ALLOW };

struct px_auth {
    enum px_verdict v;
    char msg[256];
    bool from_query; /* the credential that passed came in the query string */
    char cookie_token[SK_CONNECT_TOKEN_LEN + 1];
    int64_t cookie_expires;
};

/* check_token - one presented token against the target (sandbox s or the
 * reference in pr, port pp when exposed). */
static enum px_verdict check_token(struct sk_proxy *p, const char *tok, const struct px_parsed *pr,
                                   const struct px_sandbox *s, const struct px_port *pp, struct px_auth *a)
{
    int64_t now = sk_auth_now_ms();
    struct sk_error err = {0};
    if (strncmp(tok, SK_CONNECT_TOKEN_PREFIX, 4) == 0) {
        struct sk_connect_claims c;
        if (sk_connect_token_parse(p->key, tok, &c, &err) < 0) {
            snprintf(a->msg, sizeof(a->msg), "%s", err.msg);
            return V_UNAUTH;
        }
        bool same =
            (s != NULL ? strcmp(c.sandbox_id, s->id) == 0 : strcmp(c.sandbox_id, pr->ref) == 0) && c.port == pr->port;
        if (!same) {
            snprintf(a->msg, sizeof(a->msg), "this connect token is for another sandbox or port");
            return V_FORBID;
        }
        if (c.expires_at <= now) {
            snprintf(a->msg, sizeof(a->msg), "connect token expired");
            return V_UNAUTH;
        }
        if (pp != NULL && c.generation != pp->spec.generation) {
            snprintf(a->msg, sizeof(a->msg), "connect token was issued before the port was last exposed");
            return V_UNAUTH;
        }
        snprintf(a->cookie_token, sizeof(a->cookie_token), "%s", tok);
        a->cookie_expires = c.expires_at;
        return V_ALLOW;
    }
    char bearer[SK_TOKEN_MAX_LEN + 16];
    snprintf(bearer, sizeof(bearer), "Bearer %s", tok);
    struct sk_token_rec rec;
    int r = sk_auth_verify(p->d->store, bearer, now, &rec, &err);
    explicit_bzero(bearer, sizeof(bearer));
    if (r < 0) {
        snprintf(a->msg, sizeof(a->msg), "%s", err.code == EACCES ? err.msg : "the token cannot be checked now");
        return V_UNAUTH;
    }
    /* A browser that came with an API token in the query keeps a cookie -
     * but never the API token itself: a connect token for this port only,
     * at most a day (and never past the API token's own expiry). */
    a->cookie_token[0] = '\0';
    if (pp != NULL && s != NULL) {
        int64_t until = now + 24LL * 3600 * 1000;
        if (rec.expires_at > 0 && rec.expires_at < until)
            until = rec.expires_at;
        struct sk_connect_claims c = {.port = pp->spec.port, .generation = pp->spec.generation, .expires_at = until};
        snprintf(c.sandbox_id, sizeof(c.sandbox_id), "%s", s->id);
        if (sk_connect_token_mint(p->key, &c, a->cookie_token, NULL) == 0)
            a->cookie_expires = until;
    }
    sk_token_rec_release(&rec);
    return V_ALLOW;
}

static void consider(struct sk_proxy *p, const char *tok, bool from_query, const struct px_parsed *pr,
                     const struct px_sandbox *s, const struct px_port *pp, struct px_auth *best)
{
    if (best->v == V_ALLOW || tok == NULL || tok[0] == '\0')
        return;
    struct px_auth a = {0};
    enum px_verdict v = check_token(p, tok, pr, s, pp, &a);
    a.v = v;
    a.from_query = from_query;
    if (v > best->v)
        *best = a;
}

/* authorize - the credentials of req, best first: an API or connect token
 * as a bearer token, in X-Skiff-Token, in ?skiff_token= or in the
 * skiff_connect cookie. */
static void authorize(struct sk_proxy *p, struct sk_http_req *req, const char *query_token, const struct px_parsed *pr,
                      const struct px_sandbox *s, const struct px_port *pp, struct px_auth *best)
{
    memset(best, 0, sizeof(*best));
    consider(p, our_bearer(sk_http_header(req, "Authorization")), false, pr, s, pp, best);
    consider(p, sk_http_header(req, PX_HEADER_TOKEN), false, pr, s, pp, best);
    consider(p, query_token, true, pr, s, pp, best);
    size_t nl = strlen(PX_COOKIE);
    for (size_t i = 0; i < req->n_headers && best->v != V_ALLOW; i++) {
        if (strcasecmp(req->headers[i].key, "Cookie") != 0)
            continue;
        const char *q = req->headers[i].value;
        while (*q != '\0' && best->v != V_ALLOW) {
            q += strspn(q, " ;");
            size_t n = strcspn(q, ";");
            if (n > nl && strncmp(q, PX_COOKIE, nl) == 0 && q[nl] == '=' && n - nl - 1 <= SK_CONNECT_TOKEN_LEN) {
                char tok[SK_CONNECT_TOKEN_LEN + 1];
                memcpy(tok, q + nl + 1, n - nl - 1);
                tok[n - nl - 1] = '\0';
                consider(p, tok, false, pr, s, pp, best);
            }
            q += n;
        }
    }
    if (best->v == V_NONE)
        snprintf(best->msg, sizeof(best->msg),
                 "this port needs a token: 'Authorization: Bearer <token>', header '%s', query parameter '%s' or "
                 "cookie '%s' (an API token or a connect token for the port)",
                 PX_HEADER_TOKEN, PX_QUERY_TOKEN, PX_COOKIE);
}

static void refuse(struct sk_proxy *p, struct sk_http_req *req, enum sk_api_code code, const char *reason,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void refuse(struct sk_proxy *p, struct sk_http_req *req, enum sk_api_code code, const char *reason,
                   const char *fmt, ...)
{
    char msg[SK_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sk_metric_inc(p->m_refused, reason);
    if (code == SK_API_UNAUTHENTICATED)
        sk_http_set_header(req, "WWW-Authenticate", "Bearer realm=\"skiff\"");
    sk_http_reply_api_error(req, code, "%s", msg);
}

static bool is_upgrade(struct sk_http_req *req)
{
    const char *connection = sk_http_header(req, "Connection");
    return sk_http_header(req, "Upgrade") != NULL && connection != NULL && has_token(connection, "upgrade");
}

bool sk_proxy_intercept(struct sk_proxy *p, struct sk_http_req *req)
{
    struct px_parsed pr;
    memset(&pr, 0, sizeof(pr));
    if (!parse_path_form(sk_http_raw_uri(req), &pr) && !parse_host_form(p, req, &pr))
        return false;
    struct px_sandbox *s = pr.port != 0 ? find_ref(p, pr.ref) : NULL;
    struct px_port *pp = find_port(s, (uint16_t)pr.port);
    bool http_port = pp != NULL && pp->spec.protocol == SK_PORT_HTTP;

    struct sockaddr_storage peer;
    bool have_peer = sk_http_peer(req, &peer) == 0;
    if (pp != NULL && pp->spec.n_cidrs > 0 &&
        (!have_peer || !sk_port_spec_allows(&pp->spec, (struct sockaddr *)&peer))) {
        refuse(p, req, SK_API_PERMISSION_DENIED, "cidr", "your address may not reach port %ld of sandbox '%s'", pr.port,
               s->id);
        return true;
    }
    _cleanup_free_ char *query_token = NULL;
    _cleanup_free_ char *forward = pr.rest != NULL ? strip_query_token(pr.rest, &query_token) : NULL;
    struct px_auth auth = {.v = V_ALLOW};
    if (!(http_port && pp->spec.public)) {
        authorize(p, req, query_token, &pr, s, pp, &auth);
        if (auth.v != V_ALLOW) {
            bool forbid = auth.v == V_FORBID;
            refuse(p, req, forbid ? SK_API_PERMISSION_DENIED : SK_API_UNAUTHENTICATED,
                   forbid ? "forbidden" : "unauthenticated", "%s", auth.msg);
            return true;
        }
    }
    if (pr.port == 0) {
        refuse(p, req, SK_API_NOT_FOUND, "not_found",
               "'%.200s' is not a proxied port: expected /p/<sandbox>/<port>/...", req->path);
        return true;
    }
    if (!http_port) {
        if (pp != NULL)
            refuse(p, req, SK_API_NOT_FOUND, "not_found",
                   "port %ld of sandbox '%s' is a tcp port: connect to %s port %u instead", pr.port, s->id, p->bind,
                   pp->spec.host_port);
        else
            refuse(p, req, SK_API_NOT_FOUND, "not_found", "port %ld of sandbox '%s' is not exposed", pr.port, pr.ref);
        return true;
    }
    if (p->stopping) {
        refuse(p, req, SK_API_UNAVAILABLE, "unavailable", "the server is shutting down");
        return true;
    }

    struct px_target t = {.sb = s, .port = pp, .port_num = (uint16_t)pr.port, .host_form = pr.host_form};
    snprintf(t.prefix, sizeof(t.prefix), "%s", pr.prefix);
    if (!pr.host_form && (forward[0] == '\0' || forward[0] == '?')) {
        if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) {
            /* /p/sb/8000 -> /p/sb/8000/ so that relative links resolve */
            char *loc = xasprintf("%s/%s", pr.prefix, pr.rest);
            sk_http_set_header(req, "Location", loc);
            free(loc);
            static const char moved[] = "the port's root is its path with a slash\n";
            sk_http_reply_data(req, 308, "text/plain", moved, sizeof(moved) - 1);
            return true;
        }
        char *f = xasprintf("/%s", forward);
        free(forward);
        forward = f;
    }
    if (auth.from_query && auth.cookie_token[0] != '\0') {
        int64_t max_age = (auth.cookie_expires - sk_auth_now_ms()) / 1000;
        t.set_cookie = xasprintf("%s=%s; Path=%s/; Max-Age=%lld; HttpOnly; SameSite=Lax", PX_COOKIE, auth.cookie_token,
                                 pr.host_form ? "" : pr.prefix, (long long)(max_age > 0 ? max_age : 0));
    }
    explicit_bzero(auth.cookie_token, sizeof(auth.cookie_token));
    t.forward = steal_pointer(&forward);
    sk__px_touch(p, s->id);
    if (is_upgrade(req)) {
        sk_metric_inc(p->m_requests, "websocket");
        sk__px_upgrade_start(p, req, &t);
    } else {
        sk_metric_inc(p->m_requests, "http");
        sk__px_http_start(p, req, &t);
    }
    sk__px_target_release(&t);
    return true;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static void register_metrics(struct sk_proxy *p)
{
    struct sk_metrics *m = p->d->metrics;
    p->m_requests =
        sk_metrics_counter(m, "skiff_proxy_requests_total",
                           "Requests to exposed ports, by protocol (http, websocket handshakes).", "protocol");
    p->m_conns = sk_metrics_counter(m, "skiff_proxy_connections_total",
                                    "Connections relayed to exposed ports, by protocol (websocket, tcp).", "protocol");
    p->m_bytes = sk_metrics_counter(m, "skiff_proxy_bytes_total",
                                    "Bytes carried through exposed ports, both directions, by protocol.", "protocol");
    p->m_refused =
        sk_metrics_counter(m, "skiff_proxy_refused_total",
                           "Requests and connections to exposed ports refused or failed, by reason.", "reason");
    p->m_ports = sk_metrics_gauge(m, "skiff_proxy_exposed_ports", "Ports exposed now, by protocol.", "protocol");
    p->m_latency = sk_metrics_histogram(m, "skiff_proxy_upstream_header_seconds",
                                        "Time from a proxied HTTP request to the sandbox's response headers.", NULL,
                                        sk_metrics_latency_buckets, sk_metrics_latency_buckets_len);
    static const char *const protos[] = {"http", "websocket", "tcp"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(protos); i++) {
        sk_metric_touch(p->m_requests, protos[i]);
        sk_metric_touch(p->m_conns, protos[i]);
        sk_metric_touch(p->m_bytes, protos[i]);
    }
    sk_metric_touch(p->m_ports, "http");
    sk_metric_touch(p->m_ports, "tcp");
    static const char *const reasons[] = {"unauthenticated", "forbidden", "cidr",       "not_found",
                                          "bad_gateway",     "timeout",   "unavailable"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(reasons); i++)
        sk_metric_touch(p->m_refused, reasons[i]);
}

int sk_proxy_new(struct sk_daemon *d, const struct sk_proxy_config *cfg, struct sk_proxy **out, struct sk_error *err)
{
    *out = NULL;
    struct sk_proxy *p = xcalloc(1, sizeof(*p));
    p->d = d;
    p->self_netns = -1;
    p->devnull = -1;
    p->bind = xstrdup(cfg->bind != NULL ? cfg->bind : "127.0.0.1");
    p->timeout_ms = (int64_t)(cfg->timeout_s ? cfg->timeout_s : SK_PROXY_DEFAULT_TIMEOUT_S) * 1000;
    int r;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (bind_addr(p->bind, 0, &ss, &sl) < 0) {
        r = sk_error_setv(err, EINVAL, "--proxy-bind '%s' is not an IPv4 or IPv6 address", p->bind);
        goto fail;
    }
    if (cfg->domain != NULL && cfg->domain[0] != '\0') {
        p->domain = xstrdup(cfg->domain);
        for (char *c = p->domain; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        size_t dl = strlen(p->domain);
        if (dl > 200 || strspn(p->domain, "abcdefghijklmnopqrstuvwxyz0123456789.-") != dl || p->domain[0] == '.' ||
            p->domain[dl - 1] == '.') {
            r = sk_error_setv(err, EINVAL, "--proxy-domain '%s' is not a domain name", cfg->domain);
            goto fail;
        }
    }
    p->self_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (p->self_netns < 0) {
        r = sk_error_set(err, errno, "open our own network namespace");
        goto fail;
    }
    r = sk_connect_key_load(cfg->key_path, p->key, err);
    if (r < 0)
        goto fail;
    register_metrics(p);
    r = sk__px_http_init(p, err);
    if (r < 0)
        goto fail;
    *out = p;
    return 0;
fail:
    sk_proxy_free(p);
    return r;
}

int sk_proxy_restore(struct sk_proxy *p, struct sk_error *err)
{
    int restored = 0;
    _cleanup_free_ char *cursor = NULL;
    for (;;) {
        struct sk_sandbox_filter f = {.state = "running", .limit = 1000, .cursor = cursor};
        struct sk_sandbox_rec *recs = NULL;
        size_t n = 0;
        char *next = NULL;
        int r = sk_store_sandbox_list(p->d->store, &f, &recs, &n, &next, err);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].runtime_json == NULL || strstr(recs[i].runtime_json, "\"ports\"") == NULL)
                continue;
            struct sk_error e = {0};
            _cleanup_free_ char *json = NULL;
            char sid[20];
            if (sk_sched_ports_get(p->d->sched, recs[i].id, sid, &json, &e) < 0)
                continue; /* recorded lost meanwhile */
            json_t *arr = json_loads(json, 0, NULL);
            struct sk_port_spec *specs = NULL;
            size_t ns = 0;
            sk_ports_from_json(arr, &specs, &ns);
            json_decref(arr);
            struct px_sandbox *s = ns > 0 ? sandbox_attach(p, sid, &e) : NULL;
            bool moved = false;
            for (size_t k = 0; s != NULL && k < ns; k++) {
                struct px_port *pp = port_add(p, s, &specs[k], &e);
                if (pp == NULL) {
                    sk_log_warn("sandbox '%s': port %u not restored: %s", sid, specs[k].port, e.msg);
                    moved = true;
                    continue;
                }
                moved |= pp->spec.host_port != specs[k].host_port;
                restored++;
            }
            if (s == NULL && ns > 0)
                sk_log_warn("sandbox '%s': its ports are not served: %s", sid, e.msg);
            if (s != NULL && moved && store_ports(p, s, &e) < 0)
                sk_log_warn("sandbox '%s': store its ports: %s", sid, e.msg);
            if (s != NULL)
                sandbox_release_if_empty(p, s);
            free(specs);
        }
        sk_sandbox_recs_free(recs, n);
        free(cursor);
        cursor = next;
        if (cursor == NULL)
            break;
    }
    if (restored > 0)
        sk_log_info("%d exposed port(s) of re-adopted sandboxes served again", restored);
    return restored;
}

void sk_proxy_quiesce(struct sk_proxy *p)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = true;
    /* the ports stay in the records: the next start serves them again */
    for (struct px_sandbox *s = p->sandboxes; s != NULL; s = s->next)
        for (size_t i = 0; i < s->n_ports; i++)
            close_listener(p, s->ports[i]);
    sk__px_pipes_abort(p, NULL, 0);
}

void sk_proxy_free(struct sk_proxy *p)
{
    if (p == NULL)
        return;
    p->stopping = true;
    sk__px_pipes_abort(p, NULL, 0);
    sk__px_http_abort(p, NULL, 0, "the server is stopping");
    while (p->sandboxes != NULL)
        sandbox_free(p, p->sandboxes, "the server is stopping");
    sk__px_http_release(p);
    sk_close(&p->self_netns);
    explicit_bzero(p->key, sizeof(p->key));
    free(p->domain);
    free(p->bind);
    free(p);
}
