/* ports.c - port specs, CIDR allowlists, their durable JSON form and
 * connect tokens (see ports.h). */
#include "sched/ports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

/* Token payload: sandbox id (8 bytes, the 16 hex digits), port (2),
 * generation (8), expiry in Unix ms (8); then a 16-byte MAC. 42 bytes are
 * 56 base64url characters without padding. */
#define TOKEN_PAYLOAD 26
#define TOKEN_MAC 16
#define TOKEN_RAW (TOKEN_PAYLOAD + TOKEN_MAC)
#define TOKEN_B64 56

const char *sk_port_protocol_name(enum sk_port_protocol p)
{
    return p == SK_PORT_TCP ? "tcp" : "http";
}

int sk_port_protocol_parse(const char *s, enum sk_port_protocol *out)
{
    if (strcmp(s, "http") == 0)
        *out = SK_PORT_HTTP;
    else if (strcmp(s, "tcp") == 0)
        *out = SK_PORT_TCP;
    else
        return -1;
    return 0;
}

/* ---- CIDR ------------------------------------------------------------------------- */

static void mask_host_bits(struct sk_cidr *c)
{
    size_t len = c->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < len; i++) {
        unsigned bits = i * 8 >= c->prefix ? 0 : (c->prefix - i * 8 >= 8 ? 8 : c->prefix - i * 8);
        c->addr[i] &= (uint8_t)(0xff00u >> bits);
    }
}

int sk_cidr_parse(const char *text, struct sk_cidr *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    char buf[SK_CIDR_TEXT_MAX];
    if (text == NULL || strlen(text) >= sizeof(buf) || text[0] == '\0')
        return sk_error_setv(err, EINVAL, "'%.80s' is not a network (expected ADDRESS/PREFIX)", text ? text : "");
    snprintf(buf, sizeof(buf), "%s", text);
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        const char *p = slash + 1;
        if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 3)
            return sk_error_setv(err, EINVAL, "'%s' is not a network: bad prefix length", text);
        prefix = strtol(p, NULL, 10);
    }
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix > 32)
            return sk_error_setv(err, EINVAL, "'%s' is not a network: an IPv4 prefix is 0-32", text);
        out->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix > 128)
            return sk_error_setv(err, EINVAL, "'%s' is not a network: an IPv6 prefix is 0-128", text);
        out->prefix = prefix < 0 ? 128 : (unsigned)prefix;
    } else {
        return sk_error_setv(err, EINVAL, "'%s' is not a network (expected an IPv4 or IPv6 ADDRESS[/PREFIX])", text);
    }
    mask_host_bits(out);
    return 0;
}

void sk_cidr_format(const struct sk_cidr *c, char out[SK_CIDR_TEXT_MAX])
{
    char addr[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->family, c->addr, addr, sizeof(addr));
    snprintf(out, SK_CIDR_TEXT_MAX, "%s/%u", addr, c->prefix);
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    size_t full = prefix / 8;
    if (memcmp(a, b, full) != 0)
        return false;
    unsigned rest = prefix % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[full] & mask) == (b[full] & mask);
}

bool sk_cidr_match(const struct sk_cidr *c, const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return c->family == AF_INET && prefix_equal((const uint8_t *)&s4->sin_addr, c->addr, c->prefix);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = (const uint8_t *)&s6->sin6_addr;
        if (c->family == AF_INET6)
            return prefix_equal(a, c->addr, c->prefix);
        /* a client of a dual-stack listener: ::ffff:a.b.c.d is a.b.c.d */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            return prefix_equal(a + 12, c->addr, c->prefix);
    }
    return false;
}

bool sk_port_spec_allows(const struct sk_port_spec *spec, const struct sockaddr *sa)
{
    if (spec->n_cidrs == 0)
        return true;
    for (size_t i = 0; i < spec->n_cidrs; i++)
        if (sk_cidr_match(&spec->cidrs[i], sa))
            return true;
    return false;
}

int sk_port_spec_check(const struct sk_port_spec *spec, struct sk_error *err)
{
    if (spec->port == 0)
        return sk_error_setv(err, EINVAL, "port must be 1-65535");
    if (spec->n_cidrs > SK_PORT_CIDRS_MAX)
        return sk_error_setv(err, EINVAL, "port %u: at most %d networks in allow_cidrs", spec->port, SK_PORT_CIDRS_MAX);
    if (spec->protocol == SK_PORT_TCP && !spec->public && spec->n_cidrs == 0)
        return sk_error_setv(err, EINVAL,
                             "port %u: a tcp port cannot carry a token, so it must be \"public\": true or have "
                             "\"allow_cidrs\"",
                             spec->port);
    return 0;
}

/* ---- durable form ----------------------------------------------------------------- */

json_t *sk_ports_to_json(const struct sk_port_spec *specs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct sk_port_spec *p = &specs[i];
        json_t *cidrs = json_array();
        for (size_t k = 0; k < p->n_cidrs; k++) {
            char text[SK_CIDR_TEXT_MAX];
            sk_cidr_format(&p->cidrs[k], text);
            json_array_append_new(cidrs, json_string(text));
        }
        char gen[17];
        snprintf(gen, sizeof(gen), "%016" PRIx64, p->generation);
        json_t *o =
            json_pack("{s:i, s:s, s:b, s:o, s:s, s:I, s:i}", "port", (int)p->port, "protocol",
                      sk_port_protocol_name(p->protocol), "public", (int)p->public, "allow_cidrs", cidrs, "generation",
                      gen, "exposed_at", (json_int_t)p->exposed_at, "host_port", (int)p->host_port);
        json_array_append_new(arr, o);
    }
    return arr;
}

static int port_from_json(const json_t *o, struct sk_port_spec *p, struct sk_error *err)
{
    memset(p, 0, sizeof(*p));
    json_int_t port = json_integer_value(json_object_get(o, "port"));
    if (port < 1 || port > 65535)
        return sk_error_setv(err, EINVAL, "bad port");
    p->port = (uint16_t)port;
    const char *proto = json_string_value(json_object_get(o, "protocol"));
    if (proto == NULL || sk_port_protocol_parse(proto, &p->protocol) < 0)
        return sk_error_setv(err, EINVAL, "port %u: bad protocol", p->port);
    p->public = json_is_true(json_object_get(o, "public"));
    const json_t *cidrs = json_object_get(o, "allow_cidrs");
    for (size_t k = 0; k < json_array_size(cidrs) && p->n_cidrs < SK_PORT_CIDRS_MAX; k++)
        if (sk_cidr_parse(json_string_value(json_array_get(cidrs, k)), &p->cidrs[p->n_cidrs], err) == 0)
            p->n_cidrs++;
        else
            return sk_error_prefix(err, "port %u", p->port);
    const char *gen = json_string_value(json_object_get(o, "generation"));
    p->generation = gen != NULL ? strtoull(gen, NULL, 16) : 0;
    if (p->generation == 0)
        p->generation = sk_port_generation_new();
    p->exposed_at = (int64_t)json_integer_value(json_object_get(o, "exposed_at"));
    json_int_t hp = json_integer_value(json_object_get(o, "host_port"));
    p->host_port = hp > 0 && hp <= 65535 ? (uint16_t)hp : 0;
    return sk_port_spec_check(p, err);
}

void sk_ports_from_json(const json_t *arr, struct sk_port_spec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = json_array_size(arr);
    if (len == 0)
        return;
    struct sk_port_spec *v = xcalloc(len, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < len && k < SK_PORTS_MAX; i++) {
        struct sk_error err = {0};
        if (port_from_json(json_array_get(arr, i), &v[k], &err) == 0)
            k++;
        else
            sk_log_warn("stored port %zu skipped: %s", i, err.msg);
    }
    *out = v;
    *n = k;
}

/* ---- connect tokens ------------------------------------------------------------------ */

uint64_t sk_port_generation_new(void)
{
    uint64_t g = 0;
    while (g == 0)
        randombytes_buf(&g, sizeof(g));
    return g;
}

int sk_connect_key_load(const char *path, uint8_t key[SK_CONNECT_KEY_LEN], struct sk_error *err)
{
    char *data = NULL;
    size_t len = 0;
    struct sk_error rerr = {0};
    if (sk_read_file_at(AT_FDCWD, path, 4096, &data, &len, &rerr) == 0) {
        int r = 0;
        if (len != SK_CONNECT_KEY_LEN)
            r = sk_error_setv(err, EINVAL, "connect-token key '%s' has %zu bytes, not %d", path, len,
                              SK_CONNECT_KEY_LEN);
        else
            memcpy(key, data, SK_CONNECT_KEY_LEN);
        sodium_memzero(data, len);
        free(data);
        return r;
    }
    if (rerr.code != ENOENT) {
        *err = rerr;
        return -rerr.code;
    }
    randombytes_buf(key, SK_CONNECT_KEY_LEN);
    _cleanup_free_ char *tmp = xasprintf("%s.new", path);
    unlink(tmp); /* left over from a crash between write and rename */
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sk_error_set(err, errno, "create '%s'", tmp);
    if (sk_write_all(fd, key, SK_CONNECT_KEY_LEN) != SK_CONNECT_KEY_LEN || fsync(fd) < 0) {
        int r = sk_error_set(err, errno, "write '%s'", tmp);
        unlink(tmp);
        return r;
    }
    if (rename(tmp, path) < 0) {
        int r = sk_error_set(err, errno, "rename '%s' to '%s'", tmp, path);
        unlink(tmp);
        return r;
    }
    return 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void token_mac(const uint8_t key[SK_CONNECT_KEY_LEN], const uint8_t *payload, uint8_t mac[TOKEN_MAC])
{
    crypto_generichash(mac, TOKEN_MAC, payload, TOKEN_PAYLOAD, key, SK_CONNECT_KEY_LEN);
}

int sk_connect_token_mint(const uint8_t key[SK_CONNECT_KEY_LEN], const struct sk_connect_claims *c,
                          char out[SK_CONNECT_TOKEN_LEN + 1], struct sk_error *err)
{
    uint8_t raw[TOKEN_RAW];
    const char *id = c->sandbox_id;
    size_t bin_len = 0;
    if (strncmp(id, "sb-", 3) != 0 || strlen(id) != 19 ||
        sodium_hex2bin(raw, 8, id + 3, 16, NULL, &bin_len, NULL) != 0 || bin_len != 8)
        return sk_error_setv(err, EINVAL, "'%.40s' is not a sandbox id", id);
    raw[8] = (uint8_t)(c->port >> 8);
    raw[9] = (uint8_t)c->port;
    put_u64(raw + 10, c->generation);
    put_u64(raw + 18, (uint64_t)c->expires_at);
    token_mac(key, raw, raw + TOKEN_PAYLOAD);
    memcpy(out, SK_CONNECT_TOKEN_PREFIX, 4);
    sodium_bin2base64(out + 4, TOKEN_B64 + 1, raw, TOKEN_RAW, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

int sk_connect_token_parse(const uint8_t key[SK_CONNECT_KEY_LEN], const char *token, struct sk_connect_claims *c,
                           struct sk_error *err)
{
    memset(c, 0, sizeof(*c));
    uint8_t raw[TOKEN_RAW], mac[TOKEN_MAC];
    size_t raw_len = 0;
    if (token == NULL || strncmp(token, SK_CONNECT_TOKEN_PREFIX, 4) != 0 || strlen(token) != SK_CONNECT_TOKEN_LEN ||
        sodium_base642bin(raw, sizeof(raw), token + 4, TOKEN_B64, NULL, &raw_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        raw_len != TOKEN_RAW)
        return sk_error_setv(err, EACCES, "malformed connect token");
    token_mac(key, raw, mac);
    if (sodium_memcmp(mac, raw + TOKEN_PAYLOAD, TOKEN_MAC) != 0)
        return sk_error_setv(err, EACCES, "invalid connect token");
    memcpy(c->sandbox_id, "sb-", 3);
    sodium_bin2hex(c->sandbox_id + 3, 17, raw, 8);
    c->port = (uint16_t)(raw[8] << 8 | raw[9]);
    c->generation = get_u64(raw + 10);
    c->expires_at = (int64_t)get_u64(raw + 18);
    return 0;
}
