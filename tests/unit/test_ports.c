/* test_ports.c - lib/sched/ports: CIDR allowlists, port spec rules, the
 * durable JSON form, and connect tokens (forgery, tampering, claims). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "harness.h"
#include "sched/ports.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        FAIL("bad test address %s", text);
    return ss;
}

static bool matches(const char *cidr, const char *a)
{
    struct sk_cidr c;
    struct sk_error err = {0};
    if (sk_cidr_parse(cidr, &c, &err) < 0)
        FAIL("%s: %s", cidr, err.msg);
    struct sockaddr_storage ss = addr(a);
    return sk_cidr_match(&c, (struct sockaddr *)&ss);
}

TEST(cidr_parse_normalises_and_refuses_garbage)
{
    struct sk_cidr c;
    struct sk_error err = {0};
    char text[SK_CIDR_TEXT_MAX];
    ASSERT_OK(sk_cidr_parse("10.1.2.3/8", &c, &err));
    sk_cidr_format(&c, text);
    ASSERT_EQ_STR(text, "10.0.0.0/8");
    ASSERT_OK(sk_cidr_parse("127.0.0.1", &c, &err));
    sk_cidr_format(&c, text);
    ASSERT_EQ_STR(text, "127.0.0.1/32");
    ASSERT_OK(sk_cidr_parse("fd00:1:2::7/17", &c, &err));
    sk_cidr_format(&c, text);
    ASSERT_EQ_STR(text, "fd00::/17");
    ASSERT_OK(sk_cidr_parse("::1", &c, &err));
    ASSERT_EQ_INT(c.prefix, 128);
    ASSERT_OK(sk_cidr_parse("0.0.0.0/0", &c, &err));
    static const char *const bad[] = {"",         "10.0.0.0/33", "::/129",       "10.0.0.0/",  "10.0.0.0/-1",
                                      "10.0.0/8", "example.com", "10.0.0.0/8/8", "1.2.3.4 /8", "10.0.0.0/0x8"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        if (sk_cidr_parse(bad[i], &c, &err) != -EINVAL)
            FAIL("'%s' was accepted", bad[i]);
    }
    ASSERT_EQ_INT(sk_cidr_parse(NULL, &c, &err), -EINVAL);
}

TEST(cidr_match_by_prefix_and_family)
{
    ASSERT_TRUE(matches("127.0.0.0/8", "127.9.9.9"));
    ASSERT_FALSE(matches("127.0.0.0/8", "128.0.0.1"));
    ASSERT_TRUE(matches("10.0.0.0/13", "10.7.255.255"));
    ASSERT_FALSE(matches("10.0.0.0/13", "10.8.0.0"));
    ASSERT_TRUE(matches("127.0.0.2", "127.0.0.2"));
    ASSERT_FALSE(matches("127.0.0.2", "127.0.0.1"));
    ASSERT_TRUE(matches("0.0.0.0/0", "8.8.8.8"));
    ASSERT_TRUE(matches("fd00::/8", "fdff::1"));
    ASSERT_FALSE(matches("fd00::/8", "fe00::1"));
    /* an IPv4 client of a dual-stack socket matches IPv4 networks only */
    ASSERT_TRUE(matches("192.168.0.0/16", "::ffff:192.168.3.4"));
    ASSERT_FALSE(matches("192.168.0.0/16", "::ffff:10.0.0.1"));
    ASSERT_FALSE(matches("::/0", "127.0.0.1"));
    ASSERT_FALSE(matches("0.0.0.0/0", "::1"));
    struct sk_cidr c;
    struct sk_error err = {0};
    ASSERT_OK(sk_cidr_parse("0.0.0.0/0", &c, &err));
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    ASSERT_FALSE(sk_cidr_match(&c, (struct sockaddr *)&un));
    ASSERT_FALSE(sk_cidr_match(&c, NULL));
}

TEST(port_spec_rules)
{
    struct sk_port_spec p = {.port = 8000};
    struct sk_error err = {0};
    ASSERT_OK(sk_port_spec_check(&p, &err));
    struct sockaddr_storage a = addr("1.2.3.4");
    ASSERT_TRUE(sk_port_spec_allows(&p, (struct sockaddr *)&a)); /* no list: anyone */
    p.port = 0;
    ASSERT_EQ_INT(sk_port_spec_check(&p, &err), -EINVAL);
    /* raw TCP carries no token: public or an allowlist */
    p = (struct sk_port_spec){.port = 9000, .protocol = SK_PORT_TCP};
    ASSERT_EQ_INT(sk_port_spec_check(&p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "public");
    p.public = true;
    ASSERT_OK(sk_port_spec_check(&p, &err));
    p.public = false;
    ASSERT_OK(sk_cidr_parse("10.0.0.0/8", &p.cidrs[p.n_cidrs++], &err));
    ASSERT_OK(sk_port_spec_check(&p, &err));
    ASSERT_FALSE(sk_port_spec_allows(&p, (struct sockaddr *)&a));
    struct sockaddr_storage in = addr("10.2.3.4");
    ASSERT_TRUE(sk_port_spec_allows(&p, (struct sockaddr *)&in));
    enum sk_port_protocol proto;
    ASSERT_EQ_INT(sk_port_protocol_parse("udp", &proto), -1);
    ASSERT_EQ_INT(sk_port_protocol_parse("tcp", &proto), 0);
    ASSERT_EQ_STR(sk_port_protocol_name(proto), "tcp");
}

TEST(durable_form_round_trips_and_skips_bad_entries)
{
    struct sk_port_spec v[2] = {
        {.port = 8000, .public = true, .generation = 0x1122334455667788ULL, .exposed_at = 1700000000123LL},
        {.port = 9000, .protocol = SK_PORT_TCP, .host_port = 40123, .generation = 7}};
    struct sk_error err = {0};
    ASSERT_OK(sk_cidr_parse("127.0.0.0/8", &v[1].cidrs[v[1].n_cidrs++], &err));
    json_t *arr = sk_ports_to_json(v, 2);
    json_array_append_new(arr, json_pack("{s:i, s:s}", "port", 0, "protocol", "http"));
    json_array_append_new(arr, json_pack("{s:i, s:s}", "port", 81, "protocol", "udp"));
    json_array_append_new(arr, json_string("junk"));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    json_t *back = json_loads(text, 0, NULL);
    free(text);
    struct sk_port_spec *out = NULL;
    size_t n = 0;
    sk_ports_from_json(back, &out, &n);
    json_decref(back);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(out[0].port, 8000);
    ASSERT_TRUE(out[0].public);
    ASSERT_TRUE(out[0].generation == 0x1122334455667788ULL);
    ASSERT_EQ_INT(out[0].exposed_at, 1700000000123LL);
    ASSERT_EQ_INT(out[1].protocol, SK_PORT_TCP);
    ASSERT_EQ_INT(out[1].host_port, 40123);
    ASSERT_EQ_INT(out[1].n_cidrs, 1);
    char c[SK_CIDR_TEXT_MAX];
    sk_cidr_format(&out[1].cidrs[0], c);
    ASSERT_EQ_STR(c, "127.0.0.0/8");
    free(out);
    sk_ports_from_json(NULL, &out, &n);
    ASSERT_EQ_INT(n, 0);
    ASSERT_TRUE(out == NULL);
}

static void key_of(uint8_t key[SK_CONNECT_KEY_LEN], uint8_t fill)
{
    memset(key, fill, SK_CONNECT_KEY_LEN);
}

TEST(connect_tokens_carry_their_claims_and_resist_tampering)
{
    ASSERT_TRUE(sodium_init() >= 0);
    uint8_t key[SK_CONNECT_KEY_LEN], other[SK_CONNECT_KEY_LEN];
    key_of(key, 1);
    key_of(other, 2);
    struct sk_connect_claims c = {.sandbox_id = "sb-0123456789abcdef",
                                  .port = 8443,
                                  .generation = 0xdeadbeefcafef00dULL,
                                  .expires_at = 1800000000000LL};
    char tok[SK_CONNECT_TOKEN_LEN + 1];
    struct sk_error err = {0};
    ASSERT_OK(sk_connect_token_mint(key, &c, tok, &err));
    ASSERT_EQ_INT(strlen(tok), SK_CONNECT_TOKEN_LEN);
    ASSERT_EQ_INT(strncmp(tok, "skc_", 4), 0);
    ASSERT_EQ_INT(strspn(tok + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                  SK_CONNECT_TOKEN_LEN - 4);
    struct sk_connect_claims got;
    ASSERT_OK(sk_connect_token_parse(key, tok, &got, &err));
    ASSERT_EQ_STR(got.sandbox_id, c.sandbox_id);
    ASSERT_EQ_INT(got.port, 8443);
    ASSERT_TRUE(got.generation == c.generation);
    ASSERT_EQ_INT(got.expires_at, c.expires_at);
    /* another key, any changed character, a cut or longer token */
    ASSERT_EQ_INT(sk_connect_token_parse(other, tok, &got, &err), -EACCES);
    for (size_t i = 4; i < SK_CONNECT_TOKEN_LEN; i++) {
        char t[SK_CONNECT_TOKEN_LEN + 1];
        memcpy(t, tok, sizeof(t));
        t[i] = t[i] == 'A' ? 'B' : 'A';
        if (sk_connect_token_parse(key, t, &got, &err) == 0)
            FAIL("token changed at %zu still parses", i);
    }
    char cut[SK_CONNECT_TOKEN_LEN + 2];
    snprintf(cut, sizeof(cut), "%.*s", SK_CONNECT_TOKEN_LEN - 1, tok);
    ASSERT_EQ_INT(sk_connect_token_parse(key, cut, &got, &err), -EACCES);
    snprintf(cut, sizeof(cut), "%sA", tok);
    ASSERT_EQ_INT(sk_connect_token_parse(key, cut, &got, &err), -EACCES);
    ASSERT_EQ_INT(sk_connect_token_parse(key, "skf_0123456789abcdef_x", &got, &err), -EACCES);
    ASSERT_EQ_INT(sk_connect_token_parse(key, NULL, &got, &err), -EACCES);
    /* ids that are not sandbox ids cannot be minted */
    struct sk_connect_claims bad = c;
    snprintf(bad.sandbox_id, sizeof(bad.sandbox_id), "my-box");
    ASSERT_EQ_INT(sk_connect_token_mint(key, &bad, tok, &err), -EINVAL);
    snprintf(bad.sandbox_id, sizeof(bad.sandbox_id), "sb-0123456789abcdeg");
    ASSERT_EQ_INT(sk_connect_token_mint(key, &bad, tok, &err), -EINVAL);
    /* a new exposure, a new generation */
    ASSERT_TRUE(sk_port_generation_new() != 0);
    ASSERT_TRUE(sk_port_generation_new() != sk_port_generation_new());
}

TEST(connect_key_is_created_once_and_kept)
{
    char dir[] = "/tmp/skiff-test-key-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/connect.key", dir);
    uint8_t k1[SK_CONNECT_KEY_LEN], k2[SK_CONNECT_KEY_LEN];
    struct sk_error err = {0};
    ASSERT_TRUE(sodium_init() >= 0);
    ASSERT_OK(sk_connect_key_load(path, k1, &err));
    struct stat st;
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    ASSERT_EQ_INT(st.st_size, SK_CONNECT_KEY_LEN);
    ASSERT_OK(sk_connect_key_load(path, k2, &err));
    ASSERT_TRUE(memcmp(k1, k2, sizeof(k1)) == 0);
    /* a file of the wrong size is refused, not replaced */
    ASSERT_EQ_INT(truncate(path, 5), 0);
    ASSERT_EQ_INT(sk_connect_key_load(path, k2, &err), -EINVAL);
    sk_remove_tree(dir, NULL);
}
