/* lib/net's plain-data parts: network policies (CIDRs, domain patterns,
 * the API object and its patches) and the DNS forwarder's messages. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/util.h"
#include "harness.h"
#include "net/dns.h"
#include "net/policy.h"

static void cidr_is(const char *in, const char *want)
{
    struct sk_error err = {0};
    struct sk_net_cidr c;
    ASSERT_OK(sk_net_cidr_parse(in, &c, &err));
    char buf[SK_NET_CIDR_STR_MAX];
    sk_net_cidr_format(&c, buf, sizeof(buf));
    ASSERT_EQ_STR(buf, want);
}

static void cidr_bad(const char *in)
{
    struct sk_net_cidr c;
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_net_cidr_parse(in, &c, &err), -EINVAL);
    ASSERT_TRUE(err.msg[0] != '\0');
}

TEST(cidrs_parse_strictly_and_normalize)
{
    cidr_is("10.0.0.0/8", "10.0.0.0/8");
    cidr_is("10.1.2.3/8", "10.0.0.0/8"); /* host bits cleared */
    cidr_is("192.0.2.1", "192.0.2.1/32");
    cidr_is("0.0.0.0/0", "0.0.0.0/0");
    cidr_is("2001:db8::1/32", "2001:db8::/32");
    cidr_is("::1", "::1/128");
    cidr_is("fe80::1/10", "fe80::/10");
    cidr_is("10.0.0.255/31", "10.0.0.254/31");
    cidr_bad("");
    cidr_bad("nope");
    cidr_bad("10.0.0.0/33");
    cidr_bad("10.0.0.0/");
    cidr_bad("10.0.0.0/-1");
    cidr_bad("10.0.0.0/8x");
    cidr_bad("::/129");
    cidr_bad("1.2.3");
    cidr_bad("1.2.3.4 /8");
}

static struct sk_net_cidr C(const char *s) {
    struct sk_net_cidr c;
    struct sk_error err = {0};
    if (sk_net_cidr_parse(s, &c, &err) < 0)
        FAIL("%s", err.msg);
    return c;
}

TEST(cidr_containment_and_special_ranges)
{
    struct sk_net_cidr a = C("10.0.0.0/8"), b = C("10.1.0.0/16"), c = C("11.0.0.0/8"), v6 = C("fc00::/7");
    ASSERT_TRUE(sk_net_cidr_contains(&a, &b));
    ASSERT_FALSE(sk_net_cidr_contains(&b, &a));
    ASSERT_TRUE(sk_net_cidr_overlaps(&b, &a));
    ASSERT_FALSE(sk_net_cidr_overlaps(&a, &c));
    ASSERT_FALSE(sk_net_cidr_contains(&a, &v6)); /* other family */
    uint8_t addr[16];
    inet_pton(AF_INET, "10.200.3.4", addr);
    ASSERT_TRUE(sk_net_cidr_has(&a, AF_INET, addr));
    ASSERT_FALSE(sk_net_cidr_has(&c, AF_INET, addr));
    /* private, loopback, metadata, CGNAT, multicast, ULA, link-local:
     * special; public ranges and ranges that only partly cover a special
     * one: not */
    const char *special[] = {"10.1.2.0/24", "127.0.0.1", "169.254.169.254", "100.64.0.1", "172.20.0.0/16",
                             "192.168.1.1", "224.0.0.1", "255.255.255.255", "0.0.0.0",    "fd00::1",
                             "fe80::1",     "::1",       "::ffff:1.2.3.4",  "ff02::1"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(special); i++) {
        struct sk_net_cidr x = C(special[i]);
        if (!sk_net_cidr_is_special(&x))
            FAIL("'%s' should be special", special[i]);
    }
    const char *plain[] = {"198.18.1.10", "8.8.8.8", "0.0.0.0/0", "8.0.0.0/5", "2001:db8::1", "::/0", "172.32.0.1"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(plain); i++) {
        struct sk_net_cidr x = C(plain[i]);
        if (sk_net_cidr_is_special(&x))
            FAIL("'%s' should not be special", plain[i]);
    }
}

TEST(domain_names_and_patterns)
{
    char out[SK_NET_DOMAIN_MAX + 1];
    struct sk_error err = {0};
    ASSERT_OK(sk_net_domain_normalize("Example.COM.", false, out, sizeof(out), &err));
    ASSERT_EQ_STR(out, "example.com");
    ASSERT_OK(sk_net_domain_normalize("*.Example.com", true, out, sizeof(out), &err));
    ASSERT_EQ_STR(out, "*.example.com");
    ASSERT_OK(sk_net_domain_normalize("_dmarc.x-y.io", false, out, sizeof(out), &err));
    const char *bad[] = {"",  ".",  "a..b",    "-a.com", "a-.com", "a.*.com",
                         "*", "*.", "a b.com", "a/b",    "ü.com",  "**.com"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++)
        if (sk_net_domain_normalize(bad[i], true, out, sizeof(out), NULL) == 0)
            FAIL("'%s' should be refused", bad[i]);
    ASSERT_EQ_INT(sk_net_domain_normalize("*.a.com", false, out, sizeof(out), &err), -EINVAL);
    char label[80];
    memset(label, 'a', 64);
    strcpy(label + 64, ".com");
    ASSERT_EQ_INT(sk_net_domain_normalize(label, false, out, sizeof(out), &err), -EINVAL);
    char longname[400];
    memset(longname, 0, sizeof(longname));
    for (int i = 0; i < 60; i++)
        strcat(longname, "abcd.");
    strcat(longname, "com");
    ASSERT_EQ_INT(sk_net_domain_normalize(longname, false, out, sizeof(out), &err), -EINVAL);

    ASSERT_TRUE(sk_net_domain_match("example.com", "example.com"));
    ASSERT_FALSE(sk_net_domain_match("example.com", "www.example.com"));
    ASSERT_TRUE(sk_net_domain_match("*.example.com", "www.example.com"));
    ASSERT_TRUE(sk_net_domain_match("*.example.com", "a.b.example.com"));
    ASSERT_FALSE(sk_net_domain_match("*.example.com", "example.com"));
    ASSERT_FALSE(sk_net_domain_match("*.example.com", "badexample.com"));
    ASSERT_FALSE(sk_net_domain_match("*.example.com", "example.com.evil.test"));
}

static int patch(struct sk_net_policy *p, const char *text, struct sk_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    if (j == NULL)
        FAIL("bad test JSON: %s", text);
    int r = sk_net_policy_patch(p, j, "network.", err);
    json_decref(j);
    return r;
}

TEST(policy_objects_patch_and_round_trip)
{
    struct sk_error err = {0};
    struct sk_net_policy p = {0};
    ASSERT_FALSE(p.egress);
    ASSERT_FALSE(sk_net_policy_allows_name(&p, "example.com")); /* none resolves nothing */
    ASSERT_OK(
        patch(&p,
              "{\"mode\": \"egress\", \"allow_cidrs\": [\"1.2.3.4\", \"10.1.0.0/16\"], \"deny_cidrs\": "
              "[\"2001:db8::/32\"], \"allow_domains\": [\"*.Example.com\", \"api.test.\"], \"bandwidth_mbps\": 10, "
              "\"max_connections\": 50}",
              &err));
    ASSERT_TRUE(p.egress);
    ASSERT_FALSE(sk_net_policy_is_open(&p));
    ASSERT_EQ_INT(p.n_allow_cidrs, 2);
    ASSERT_EQ_INT(p.n_deny_cidrs, 1);
    ASSERT_EQ_INT(p.bandwidth_mbps, 10);
    ASSERT_EQ_INT(p.max_connections, 50);
    ASSERT_TRUE(sk_net_policy_allows_name(&p, "www.EXAMPLE.com."));
    ASSERT_TRUE(sk_net_policy_allows_name(&p, "api.test"));
    ASSERT_FALSE(sk_net_policy_allows_name(&p, "example.com"));
    ASSERT_FALSE(sk_net_policy_allows_name(&p, "data.evil.test"));
    ASSERT_FALSE(sk_net_policy_allows_name(&p, "api.test\\.evil"));

    /* the API's view, and back (group included) */
    ASSERT_OK(sk_net_policy_set_group(&p, "team-a.1", &err));
    json_t *j = sk_net_policy_json(&p);
    _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_EQ_STR(text, "{\"allow_cidrs\":[\"1.2.3.4/32\",\"10.1.0.0/16\"],\"allow_domains\":[\"*.example.com\","
                        "\"api.test\"],\"bandwidth_mbps\":10,\"deny_cidrs\":[\"2001:db8::/32\"],\"max_connections\":50,"
                        "\"mode\":\"egress\",\"network_group\":\"team-a.1\"}");
    struct sk_net_policy q = {0};
    ASSERT_OK(sk_net_policy_from_json(j, &q, &err));
    json_t *j2 = sk_net_policy_json(&q);
    _cleanup_free_ char *text2 = json_dumps(j2, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_EQ_STR(text2, text);
    json_decref(j);
    json_decref(j2);
    sk_net_policy_release(&q);

    /* a patch replaces what it names; null resets; the rest stays */
    ASSERT_OK(patch(&p, "{\"allow_cidrs\": null, \"bandwidth_mbps\": null}", &err));
    ASSERT_FALSE(p.has_allow_cidrs);
    ASSERT_EQ_INT(p.bandwidth_mbps, 0);
    ASSERT_EQ_INT(p.max_connections, 50);
    ASSERT_TRUE(p.has_allow_domains);
    ASSERT_OK(patch(&p, "{\"allow_domains\": null}", &err));
    ASSERT_TRUE(sk_net_policy_is_open(&p));
    ASSERT_TRUE(sk_net_policy_allows_name(&p, "anything.example"));
    /* an empty allow list allows nothing (it is not "open") */
    ASSERT_OK(patch(&p, "{\"allow_cidrs\": []}", &err));
    ASSERT_FALSE(sk_net_policy_is_open(&p));
    ASSERT_FALSE(sk_net_policy_allows_name(&p, "anything.example"));

    /* errors name the field and change nothing */
    static const struct {
        const char *patch, *field;
        int code;
    } bad[] = {
        {"{\"mode\": \"bogus\"}", "network.mode", EINVAL},
        {"{\"mode\": 3}", "network.mode", EINVAL},
        {"{\"allow_cidrs\": [\"1.2.3.4\", \"x\"]}", "network.allow_cidrs[1]", EINVAL},
        {"{\"allow_cidrs\": \"1.2.3.4\"}", "network.allow_cidrs", EINVAL},
        {"{\"deny_cidrs\": [7]}", "network.deny_cidrs[0]", EINVAL},
        {"{\"allow_domains\": [\"ok.com\", \"*\"]}", "network.allow_domains[1]", EINVAL},
        {"{\"bandwidth_mbps\": 0}", "network.bandwidth_mbps", EINVAL},
        {"{\"max_connections\": 2000000}", "network.max_connections", EINVAL},
        {"{\"colour\": 1}", "network.colour", EINVAL},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        struct sk_error e2 = {0};
        int r = patch(&p, bad[i].patch, &e2);
        if (r != -bad[i].code || strstr(e2.msg, bad[i].field) == NULL)
            FAIL("%s: got %d '%s'", bad[i].patch, r, e2.msg);
    }
    ASSERT_TRUE(p.has_allow_cidrs);
    ASSERT_EQ_INT(p.n_allow_cidrs, 0);
    ASSERT_EQ_INT(p.max_connections, 50);
    /* bounds on list sizes */
    json_t *many = json_pack("{s:[]}", "allow_cidrs");
    for (int i = 0; i < SK_NET_CIDRS_MAX + 1; i++)
        json_array_append_new(json_object_get(many, "allow_cidrs"), json_string("1.2.3.4"));
    ASSERT_EQ_INT(sk_net_policy_patch(&p, many, "network.", &err), -E2BIG);
    json_decref(many);
    ASSERT_EQ_INT(sk_net_policy_set_group(&p, "-bad", &err), -EINVAL);
    ASSERT_EQ_INT(sk_net_policy_set_group(&p, "", &err), -EINVAL);
    ASSERT_EQ_STR(p.group, "team-a.1");
    sk_net_policy_release(&p);
}

/* query - a DNS query for name/qtype with id, as a client sends it. */
static size_t query(uint8_t *buf, uint16_t id, const char *name, uint16_t qtype)
{
    size_t n = 0;
    uint8_t head[12] = {(uint8_t)(id >> 8), (uint8_t)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    memcpy(buf, head, 12);
    n = 12;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        buf[n++] = (uint8_t)l;
        memcpy(buf + n, p, l);
        n += l;
        p += l + (dot ? 1 : 0);
    }
    buf[n++] = 0;
    buf[n++] = (uint8_t)(qtype >> 8);
    buf[n++] = (uint8_t)qtype;
    buf[n++] = 0;
    buf[n++] = 1;
    return n;
}

TEST(dns_messages)
{
    struct sk_error err = {0};
    uint8_t q[512];
    size_t qlen = query(q, 0xbeef, "WWW.Example.com", SK_DNS_TYPE_A);
    struct sk_dns_query dq;
    ASSERT_OK(sk_dns_parse_query(q, qlen, &dq, &err));
    ASSERT_EQ_INT(dq.id, 0xbeef);
    ASSERT_EQ_INT(dq.qtype, SK_DNS_TYPE_A);
    ASSERT_EQ_INT(dq.qclass, 1);
    ASSERT_EQ_STR(dq.name, "www.example.com");
    ASSERT_EQ_STR(dq.type_name, "A");

    /* REFUSED: same id and question */
    uint8_t *out = NULL;
    size_t out_len = 0;
    ASSERT_OK(sk_dns_reply(q, qlen, SK_DNS_RCODE_REFUSED, NULL, 0, &out, &out_len, &err));
    ASSERT_EQ_INT(sk_dns_get_id(out), 0xbeef);
    ASSERT_TRUE(out[2] & 0x80); /* a response */
    ASSERT_EQ_INT(out[3] & 0x0f, SK_DNS_RCODE_REFUSED);
    struct sk_dns_addr got[4];
    size_t n_got = 0;
    int rcode = -1;
    ASSERT_OK(sk_dns_read_answer(out, out_len, &dq, &rcode, got, 4, &n_got, &err));
    ASSERT_EQ_INT(rcode, SK_DNS_RCODE_REFUSED);
    ASSERT_EQ_INT(n_got, 0);
    free(out);

    /* an answer with addresses: only those of the asked type */
    struct sk_dns_addr addrs[2] = {{.family = AF_INET, .ttl = 42}, {.family = AF_INET6, .ttl = 7}};
    inet_pton(AF_INET, "198.18.1.10", addrs[0].addr);
    inet_pton(AF_INET6, "2001:db8::1", addrs[1].addr);
    ASSERT_OK(sk_dns_reply(q, qlen, 0, addrs, 2, &out, &out_len, &err));
    ASSERT_OK(sk_dns_read_answer(out, out_len, &dq, &rcode, got, 4, &n_got, &err));
    ASSERT_EQ_INT(rcode, 0);
    ASSERT_EQ_INT(n_got, 1);
    ASSERT_EQ_INT(got[0].family, AF_INET);
    ASSERT_EQ_INT(got[0].ttl, 42);
    ASSERT_TRUE(memcmp(got[0].addr, addrs[0].addr, 4) == 0);
    /* the id can be rewritten for upstream and back */
    sk_dns_set_id(out, 0x1234);
    ASSERT_EQ_INT(sk_dns_get_id(out), 0x1234);

    /* an answer to another question is not taken */
    struct sk_dns_query other = dq;
    snprintf(other.name, sizeof(other.name), "evil.test");
    ASSERT_EQ_INT(sk_dns_read_answer(out, out_len, &other, &rcode, got, 4, &n_got, &err), -EINVAL);
    other = dq;
    other.qtype = SK_DNS_TYPE_AAAA;
    ASSERT_EQ_INT(sk_dns_read_answer(out, out_len, &other, &rcode, got, 4, &n_got, &err), -EINVAL);
    /* a query is not an answer, an answer is not a query */
    ASSERT_EQ_INT(sk_dns_read_answer(q, qlen, &dq, &rcode, got, 4, &n_got, &err), -EINVAL);
    ASSERT_EQ_INT(sk_dns_parse_query(out, out_len, &dq, &err), -EINVAL);
    free(out);

    /* garbage of every length up to a full header and a bit: refused, not
     * crashed on */
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len < sizeof(junk); len++)
        sk_dns_parse_query(junk, len, &dq, NULL);
    ASSERT_EQ_INT(sk_dns_parse_query(q, 11, &dq, &err), -EINVAL);
    /* two questions */
    uint8_t two[512];
    size_t tl = query(two, 1, "a.test", 1);
    two[5] = 2;
    ASSERT_EQ_INT(sk_dns_parse_query(two, tl, &dq, &err), -EINVAL);
    /* a name with odd bytes is kept escaped: it can never match a policy */
    uint8_t odd[512];
    size_t ol = query(odd, 2, "a b.test", 1);
    ASSERT_OK(sk_dns_parse_query(odd, ol, &dq, &err));
    char norm[SK_NET_DOMAIN_MAX + 1];
    ASSERT_TRUE(sk_net_domain_normalize(dq.name, false, norm, sizeof(norm), NULL) < 0);
}
