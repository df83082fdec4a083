/* router.c - segment-wise matching of request paths against patterns. */
#include "router.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

struct segment {
    char *text; /* literal, or the parameter's name */
    size_t len;
    bool param;
};

struct compiled {
    const struct sk_route *route;
    struct segment segs[SK_ROUTER_MAX_SEGMENTS];
    size_t n_segs;
    size_t n_literals;
};

struct sk_router {
    struct compiled *routes;
    size_t n;
};

static bool valid_param_bytes(const char *s, size_t len)
{
    if (len == 0 || len > SK_ROUTER_PARAM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

bool sk_router_is_valid_param(const char *s)
{
    return s != NULL && valid_param_bytes(s, strnlen(s, SK_ROUTER_PARAM_MAX + 1));
}

static void free_compiled(struct compiled *c)
{
    for (size_t i = 0; i < c->n_segs; i++)
        free(c->segs[i].text);
}

void sk_router_free(struct sk_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free_compiled(&r->routes[i]);
    free(r->routes);
    free(r);
}

static int compile(const struct sk_route *route, struct compiled *c, struct sk_error *err)
{
    const char *p = route->pattern;
    c->route = route;
    if (route->method == NULL || route->handler == NULL || p == NULL || p[0] != '/')
        return sk_error_setv(err, EINVAL, "route '%s': needs a method, a handler and an absolute pattern",
                             p ? p : "(null)");
    if (strcmp(p, "/") == 0)
        return 0;
    size_t n_params = 0;
    while (*p == '/') {
        const char *start = ++p;
        while (*p != '\0' && *p != '/')
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0 || c->n_segs == SK_ROUTER_MAX_SEGMENTS)
            return sk_error_setv(err, EINVAL, "route '%s': empty segment or too many segments", route->pattern);
        struct segment *s = &c->segs[c->n_segs++];
        if (start[0] == '{') {
            if (len < 3 || start[len - 1] != '}' || ++n_params > SK_ROUTER_MAX_PARAMS)
                return sk_error_setv(err, EINVAL, "route '%s': bad parameter segment", route->pattern);
            s->param = true;
            s->text = xstrndup(start + 1, len - 2);
            s->len = len - 2;
            for (size_t i = 0; i + 1 < c->n_segs; i++)
                if (c->segs[i].param && strcmp(c->segs[i].text, s->text) == 0)
                    return sk_error_setv(err, EINVAL, "route '%s': parameter '%s' twice", route->pattern, s->text);
        } else {
            if (memchr(start, '{', len) != NULL || memchr(start, '}', len) != NULL)
                return sk_error_setv(err, EINVAL, "route '%s': braces inside a literal", route->pattern);
            s->text = xstrndup(start, len);
            s->len = len;
            c->n_literals++;
        }
    }
    return 0;
}

int sk_router_new(const struct sk_route *routes, size_t n, struct sk_router **out, struct sk_error *err)
{
    struct sk_router *r = xcalloc(1, sizeof(*r));
    r->routes = xcalloc(n ? n : 1, sizeof(*r->routes));
    for (size_t i = 0; i < n; i++) {
        r->n = i + 1;
        int ret = compile(&routes[i], &r->routes[i], err);
        if (ret < 0) {
            sk_router_free(r);
            return ret;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(routes[j].pattern, routes[i].pattern) == 0 && strcmp(routes[j].method, routes[i].method) == 0) {
                ret =
                    sk_error_setv(err, EINVAL, "route '%s %s' is declared twice", routes[i].method, routes[i].pattern);
                sk_router_free(r);
                return ret;
            }
        }
    }
    *out = r;
    return 0;
}

static void allow_add(char *allow, size_t size, const char *method)
{
    /* Parse the list so far instead of strstr: "GET" is inside no other
     * method name today, but a substring test would be wrong in general. */
    const char *p = allow;
    size_t mlen = strlen(method);
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == mlen && memcmp(p, method, mlen) == 0)
            return;
        if (end == NULL)
            break;
        p = end + 2;
    }
    size_t used = strlen(allow);
    snprintf(allow + used, size - used, "%s%s", used ? ", " : "", method);
}

enum sk_router_result sk_router_match(const struct sk_router *r, const char *method, const char *path,
                                      struct sk_route_match *m)
{
    memset(m, 0, sizeof(*m));
    struct {
        const char *p;
        size_t len;
    } segs[SK_ROUTER_MAX_SEGMENTS];
    size_t n_segs = 0;

    size_t plen = strnlen(path, SK_ROUTER_PATH_MAX + 1);
    if (plen == 0 || plen > SK_ROUTER_PATH_MAX || path[0] != '/')
        return SK_ROUTER_NOT_FOUND;
    if (plen > 1) {
        const char *p = path;
        while (*p == '/') {
            const char *start = ++p;
            while (*p != '\0' && *p != '/')
                p++;
            /* Empty segments ("//", a trailing "/") match nothing. */
            if (p == start || n_segs == SK_ROUTER_MAX_SEGMENTS)
                return SK_ROUTER_NOT_FOUND;
            segs[n_segs].p = start;
            segs[n_segs].len = (size_t)(p - start);
            n_segs++;
        }
    }
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

    const struct compiled *best = NULL;
    const char *bad = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const struct compiled *c = &r->routes[i];
        if (c->n_segs != n_segs)
            continue;
        bool fits = true;
        const char *bad_here = NULL;
        for (size_t s = 0; s < n_segs && fits; s++) {
            const struct segment *seg = &c->segs[s];
            if (!seg->param)
                fits = seg->len == segs[s].len && memcmp(seg->text, segs[s].p, seg->len) == 0;
            else if (bad_here == NULL && !valid_param_bytes(segs[s].p, segs[s].len))
                bad_here = seg->text;
        }
        if (!fits)
            continue;
        if (bad_here != NULL) {
            if (bad == NULL)
                bad = bad_here;
            continue;
        }
        if (strcmp(c->route->method, want) != 0) {
            allow_add(m->allow, sizeof(m->allow), c->route->method);
            if (strcmp(c->route->method, "GET") == 0)
                allow_add(m->allow, sizeof(m->allow), "HEAD");
            continue;
        }
        if (best == NULL || c->n_literals > best->n_literals)
            best = c;
    }
    if (best == NULL) {
        if (m->allow[0] != '\0')
            return SK_ROUTER_METHOD_NOT_ALLOWED;
        if (bad != NULL) {
            m->bad_param = bad;
            return SK_ROUTER_BAD_PARAM;
        }
        return SK_ROUTER_NOT_FOUND;
    }
    m->route = best->route;
    for (size_t s = 0; s < n_segs; s++) {
        if (!best->segs[s].param)
            continue;
        struct sk_route_param *prm = &m->params[m->n_params++];
        prm->name = best->segs[s].text;
        memcpy(prm->value, segs[s].p, segs[s].len);
        prm->value[segs[s].len] = '\0';
    }
    return SK_ROUTER_OK;
}
