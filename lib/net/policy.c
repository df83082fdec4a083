/* policy.c - a sandbox's network policy as data (see policy.h). */
#include "net/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/util.h"

const struct sk_net_cidr sk_net_special_ranges[] = {
    {AF_INET, 8, {0}},                           /* "this network" */
    {AF_INET, 8, {10}},                          /* private */
    {AF_INET, 10, {100, 64}},                    /* carrier-grade NAT */
    {AF_INET, 8, {127}},                         /* loopback */
    {AF_INET, 16, {169, 254}},                   /* link-local, cloud metadata */
    {AF_INET, 12, {172, 16}},                    /* private */
    {AF_INET, 24, {192, 0, 0}},                  /* IETF protocol assignments */
    {AF_INET, 16, {192, 168}},                   /* private */
    {AF_INET, 4, {224}},                         /* multicast */
    {AF_INET, 4, {240}},                         /* reserved, broadcast */
    {AF_INET6, 128, {0}},                        /* unspecified */
    {AF_INET6, 128, {[15] = 1}},                 /* loopback */
    {AF_INET6, 96, {[10] = 0xff, [11] = 0xff}},  /* IPv4-mapped */
    {AF_INET6, 48, {0, 0x64, 0xff, 0x9b, 0, 1}}, /* local-use NAT64 */
    {AF_INET6, 64, {1}},                         /* discard-only */
    {AF_INET6, 7, {0xfc}},                       /* unique local */
    {AF_INET6, 10, {0xfe, 0x80}},                /* link-local */
    {AF_INET6, 8, {0xff}},                       /* multicast */
};
const size_t sk_net_special_ranges_len = SK_ARRAY_SIZE(sk_net_special_ranges);

/* ---- CIDRs ---------------------------------------------------------------------- */

static size_t addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

static void clear_host_bits(struct sk_net_cidr *c)
{
    size_t len = addr_len(c->family);
    for (size_t i = 0; i < len; i++) {
        int bits = (int)c->prefix - (int)(i * 8);
        if (bits >= 8)
            continue;
        c->addr[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
    }
}

int sk_net_cidr_parse(const char *s, struct sk_net_cidr *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    char buf[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return sk_error_setv(err, EINVAL, "'%.64s' is not an IPv4 or IPv6 CIDR", s);
    memcpy(buf, s, n + 1);
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3)
            return sk_error_setv(err, EINVAL, "'%s' is not an IPv4 or IPv6 CIDR", s);
        prefix = 0;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p))
                return sk_error_setv(err, EINVAL, "'%s' is not an IPv4 or IPv6 CIDR", s);
            prefix = prefix * 10 + (*p - '0');
        }
    }
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return sk_error_setv(err, EINVAL, "'%s' is not an IPv4 or IPv6 CIDR", s);
    long max = out->family == AF_INET ? 32 : 128;
    if (prefix > max)
        return sk_error_setv(err, EINVAL, "'%s': the prefix length must be at most %ld", s, max);
    out->prefix = (uint8_t)(prefix < 0 ? max : prefix);
    clear_host_bits(out);
    return 0;
}

void sk_net_cidr_format(const struct sk_net_cidr *c, char *buf, size_t size)
{
    char a[INET6_ADDRSTRLEN];
    if (inet_ntop(c->family, c->addr, a, sizeof(a)) == NULL)
        snprintf(a, sizeof(a), "?");
    snprintf(buf, size, "%s/%u", a, (unsigned)c->prefix);
}

/* prefix_equal - the first `bits` bits of a and b agree. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    size_t whole = bits / 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    unsigned rest = bits % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool sk_net_cidr_has(const struct sk_net_cidr *c, int family, const uint8_t *addr)
{
    return c->family == family && prefix_equal(c->addr, addr, c->prefix);
}

bool sk_net_cidr_contains(const struct sk_net_cidr *outer, const struct sk_net_cidr *inner)
{
    return outer->family == inner->family && outer->prefix <= inner->prefix &&
           prefix_equal(outer->addr, inner->addr, outer->prefix);
}

bool sk_net_cidr_overlaps(const struct sk_net_cidr *a, const struct sk_net_cidr *b)
{
    return sk_net_cidr_contains(a, b) || sk_net_cidr_contains(b, a);
}

bool sk_net_cidr_is_special(const struct sk_net_cidr *c)
{
    for (size_t i = 0; i < sk_net_special_ranges_len; i++)
        if (sk_net_cidr_contains(&sk_net_special_ranges[i], c))
            return true;
    return false;
}

/* ---- domains -------------------------------------------------------------------- */

int sk_net_domain_normalize(const char *in, bool pattern, char *out, size_t size, struct sk_error *err)
{
    size_t n = strlen(in);
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0)
        return sk_error_setv(err, EINVAL, "the domain name is empty");
    if (n > SK_NET_DOMAIN_MAX || n + 1 > size)
        return sk_error_setv(err, EINVAL, "'%.64s...' is longer than %d bytes", in, SK_NET_DOMAIN_MAX);
    size_t start = 0;
    if (n >= 2 && in[0] == '*' && in[1] == '.') {
        if (!pattern)
            return sk_error_setv(err, EINVAL, "'%.*s': a wildcard is not allowed here", (int)n, in);
        start = 2;
        if (n == 2)
            return sk_error_setv(err, EINVAL, "'%.*s' has no domain after the wildcard", (int)n, in);
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        out[i] = c;
        if (i < start)
            continue;
        if (c == '.') {
            if (label == 0 || in[i - 1] == '-')
                return sk_error_setv(err, EINVAL,
                                     "'%.*s' is not a valid domain name (empty label or a label ending "
                                     "with '-')",
                                     (int)n, in);
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok)
            return sk_error_setv(err, EINVAL,
                                 "'%.*s' is not a valid domain name (letters, digits, '-', '_' and '.' only%s)", (int)n,
                                 in, pattern ? ", with an optional leading '*.'" : "");
        if (label == 0 && c == '-')
            return sk_error_setv(err, EINVAL, "'%.*s' is not a valid domain name (a label starts with '-')", (int)n,
                                 in);
        if (++label > 63)
            return sk_error_setv(err, EINVAL, "'%.*s' has a label longer than 63 bytes", (int)n, in);
    }
    if (label == 0 || in[n - 1] == '-')
        return sk_error_setv(err, EINVAL, "'%.*s' is not a valid domain name", (int)n, in);
    out[n] = '\0';
    return 0;
}

bool sk_net_domain_match(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *suffix = pattern + 1; /* ".example.com" */
        size_t sl = strlen(suffix), nl = strlen(name);
        return nl > sl && strcmp(name + nl - sl, suffix) == 0;
    }
    return strcmp(pattern, name) == 0;
}

/* ---- the policy ------------------------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sk_net_policy_release(struct sk_net_policy *p)
{
    free(p->allow_cidrs);
    free(p->deny_cidrs);
    strv_free(p->allow_domains, p->n_allow_domains);
    free(p->group);
    memset(p, 0, sizeof(*p));
}

static struct sk_net_cidr *cidrs_dup(const struct sk_net_cidr *v, size_t n)
{
    if (n == 0)
        return NULL;
    struct sk_net_cidr *c = xmalloc(n * sizeof(*c));
    memcpy(c, v, n * sizeof(*c));
    return c;
}

void sk_net_policy_copy(struct sk_net_policy *dst, const struct sk_net_policy *src)
{
    struct sk_net_policy p = *src;
    p.allow_cidrs = cidrs_dup(src->allow_cidrs, src->n_allow_cidrs);
    p.deny_cidrs = cidrs_dup(src->deny_cidrs, src->n_deny_cidrs);
    p.allow_domains = src->n_allow_domains ? xcalloc(src->n_allow_domains, sizeof(char *)) : NULL;
    for (size_t i = 0; i < src->n_allow_domains; i++)
        p.allow_domains[i] = xstrdup(src->allow_domains[i]);
    p.group = src->group ? xstrdup(src->group) : NULL;
    if (dst != src)
        sk_net_policy_release(dst);
    *dst = p;
}

static int parse_cidr_list(const json_t *v, const char *prefix, const char *field, struct sk_net_cidr **out,
                           size_t *n_out, struct sk_error *err)
{
    if (!json_is_array(v))
        return sk_error_setv(err, EINVAL, "field '%s%s' must be an array of CIDR strings", prefix, field);
    size_t n = json_array_size(v);
    if (n > SK_NET_CIDRS_MAX)
        return sk_error_setv(err, E2BIG, "field '%s%s' has %zu entries (at most %d)", prefix, field, n,
                             SK_NET_CIDRS_MAX);
    struct sk_net_cidr *c = n ? xcalloc(n, sizeof(*c)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        struct sk_error e2 = {0};
        if (s == NULL) {
            free(c);
            return sk_error_setv(err, EINVAL, "field '%s%s[%zu]' must be a string", prefix, field, i);
        }
        if (sk_net_cidr_parse(s, &c[i], &e2) < 0) {
            free(c);
            return sk_error_setv(err, EINVAL, "field '%s%s[%zu]': %s", prefix, field, i, e2.msg);
        }
    }
    *out = c;
    *n_out = n;
    return 0;
}

static int parse_domain_list(const json_t *v, const char *prefix, char ***out, size_t *n_out, struct sk_error *err)
{
    if (!json_is_array(v))
        return sk_error_setv(err, EINVAL, "field '%sallow_domains' must be an array of domain names", prefix);
    size_t n = json_array_size(v);
    if (n > SK_NET_DOMAINS_MAX)
        return sk_error_setv(err, E2BIG, "field '%sallow_domains' has %zu entries (at most %d)", prefix, n,
                             SK_NET_DOMAINS_MAX);
    char **d = n ? xcalloc(n, sizeof(char *)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        char norm[SK_NET_DOMAIN_MAX + 1];
        struct sk_error e2 = {0};
        if (s == NULL || sk_net_domain_normalize(s, true, norm, sizeof(norm), &e2) < 0) {
            strv_free(d, i);
            if (s == NULL)
                return sk_error_setv(err, EINVAL, "field '%sallow_domains[%zu]' must be a string", prefix, i);
            return sk_error_setv(err, EINVAL, "field '%sallow_domains[%zu]': %s", prefix, i, e2.msg);
        }
        d[i] = xstrdup(norm);
    }
    *out = d;
    *n_out = n;
    return 0;
}

static int parse_cap(const json_t *v, const char *prefix, const char *field, int64_t max, uint32_t *out,
                     struct sk_error *err)
{
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
        return sk_error_setv(err, EINVAL, "field '%s%s' must be an integer from 1 to %lld (or null for none)", prefix,
                             field, (long long)max);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

int sk_net_policy_patch(struct sk_net_policy *p, const json_t *obj, const char *prefix, struct sk_error *err)
{
    if (prefix == NULL)
        prefix = "";
    if (!json_is_object(obj))
        return sk_error_setv(err, EINVAL, "'%.*s' must be an object", (int)(strlen(prefix) ? strlen(prefix) - 1 : 7),
                             strlen(prefix) ? prefix : "network");
    struct sk_net_policy next = {0};
    sk_net_policy_copy(&next, p);
    const char *key;
    json_t *v;
    int r = 0;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "mode") == 0) {
            const char *m = json_string_value(v);
            if (m != NULL && strcmp(m, "egress") == 0)
                next.egress = true;
            else if (m != NULL && strcmp(m, "none") == 0)
                next.egress = false;
            else if (json_is_null(v))
                next.egress = false;
            else
                r = sk_error_setv(err, EINVAL, "field '%smode' must be \"none\" or \"egress\"", prefix);
        } else if (strcmp(key, "allow_cidrs") == 0 || strcmp(key, "deny_cidrs") == 0) {
            bool allow = key[0] == 'a';
            struct sk_net_cidr **list = allow ? &next.allow_cidrs : &next.deny_cidrs;
            size_t *n = allow ? &next.n_allow_cidrs : &next.n_deny_cidrs;
            free(*list);
            *list = NULL;
            *n = 0;
            if (allow)
                next.has_allow_cidrs = !json_is_null(v);
            if (!json_is_null(v))
                r = parse_cidr_list(v, prefix, key, list, n, err);
        } else if (strcmp(key, "allow_domains") == 0) {
            strv_free(next.allow_domains, next.n_allow_domains);
            next.allow_domains = NULL;
            next.n_allow_domains = 0;
            next.has_allow_domains = !json_is_null(v);
            if (!json_is_null(v))
                r = parse_domain_list(v, prefix, &next.allow_domains, &next.n_allow_domains, err);
        } else if (strcmp(key, "bandwidth_mbps") == 0) {
            r = parse_cap(v, prefix, key, SK_NET_BANDWIDTH_MAX, &next.bandwidth_mbps, err);
        } else if (strcmp(key, "max_connections") == 0) {
            r = parse_cap(v, prefix, key, SK_NET_CONNECTIONS_MAX, &next.max_connections, err);
        } else {
            r = sk_error_setv(err, EINVAL, "unknown field '%s%s'", prefix, key);
        }
        if (r < 0)
            break;
    }
    if (r < 0) {
        sk_net_policy_release(&next);
        return r;
    }
    sk_net_policy_release(p);
    *p = next;
    return 0;
}

static bool valid_group(const char *g)
{
    size_t n = strlen(g);
    if (n == 0 || n > SK_NET_GROUP_MAX || !isalnum((unsigned char)g[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = g[i];
        if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

int sk_net_policy_set_group(struct sk_net_policy *p, const char *group, struct sk_error *err)
{
    if (group != NULL && !valid_group(group))
        return sk_error_setv(err, EINVAL,
                             "network_group must be 1 to %d characters of [A-Za-z0-9._-] starting with a letter or "
                             "digit",
                             SK_NET_GROUP_MAX);
    free(p->group);
    p->group = group ? xstrdup(group) : NULL;
    return 0;
}

static json_t *cidrs_json(const struct sk_net_cidr *c, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char buf[SK_NET_CIDR_STR_MAX];
        sk_net_cidr_format(&c[i], buf, sizeof(buf));
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

json_t *sk_net_policy_json(const struct sk_net_policy *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "mode", json_string(p->egress ? "egress" : "none"));
    json_object_set_new(o, "allow_cidrs",
                        p->has_allow_cidrs ? cidrs_json(p->allow_cidrs, p->n_allow_cidrs) : json_null());
    json_object_set_new(o, "deny_cidrs", cidrs_json(p->deny_cidrs, p->n_deny_cidrs));
    json_t *d = json_null();
    if (p->has_allow_domains) {
        d = json_array();
        for (size_t i = 0; i < p->n_allow_domains; i++)
            json_array_append_new(d, json_string(p->allow_domains[i]));
    }
    json_object_set_new(o, "allow_domains", d);
    json_object_set_new(o, "bandwidth_mbps", p->bandwidth_mbps ? json_integer(p->bandwidth_mbps) : json_null());
    json_object_set_new(o, "max_connections", p->max_connections ? json_integer(p->max_connections) : json_null());
    json_object_set_new(o, "network_group", p->group ? json_string(p->group) : json_null());
    return o;
}

int sk_net_policy_from_json(const json_t *obj, struct sk_net_policy *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj))
        return sk_error_setv(err, EINVAL, "network state: not an object");
    json_t *copy = json_copy((json_t *)obj);
    json_t *g = json_object_get(copy, "network_group");
    const char *group = json_string_value(g);
    char *group_copy = group ? xstrdup(group) : NULL;
    json_object_del(copy, "network_group");
    int r = sk_net_policy_patch(out, copy, "network.", err);
    json_decref(copy);
    if (r == 0)
        r = sk_net_policy_set_group(out, group_copy, err);
    free(group_copy);
    if (r < 0)
        sk_net_policy_release(out);
    return r;
}

bool sk_net_policy_is_open(const struct sk_net_policy *p)
{
    return p->egress && !p->has_allow_cidrs && !p->has_allow_domains;
}

bool sk_net_policy_allows_name(const struct sk_net_policy *p, const char *name)
{
    if (!p->egress)
        return false;
    if (sk_net_policy_is_open(p))
        return true;
    char norm[SK_NET_DOMAIN_MAX + 1];
    if (sk_net_domain_normalize(name, false, norm, sizeof(norm), NULL) < 0)
        return false;
    for (size_t i = 0; i < p->n_allow_domains; i++)
        if (sk_net_domain_match(p->allow_domains[i], norm))
            return true;
    return false;
}
