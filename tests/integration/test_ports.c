/* Inbound ports through the real build/skiffd: a Python HTTP/WebSocket/TCP
 * echo server (tests/helpers/port_server.py) runs inside real sandboxes,
 * its ports are exposed, unexposed and reached through skiffd - by path,
 * by host name, and raw TCP - with API tokens, connect tokens, public
 * ports and CIDR allowlists. Only loopback addresses are used. */
#include "skiffd_test.h"

#include <netinet/tcp.h>

/* ---- fixture ----------------------------------------------------------------------- */

static void start_with(struct skiffd *s, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    make_data_dir(s);
    skiffd_start_args(s, extra);
}

static void start(struct skiffd *s)
{
    start_with(s, NULL);
}

static void api(const struct skiffd *s, const char *method, const char *path, const char *body, int want,
                struct resp *r)
{
    request(s, method, path, s->token, body, r);
    if (r->status != want)
        FAIL("%s %s: status %d, want %d: %.*s", method, path, r->status, want,
             (int)(r->body_len > 400 ? 400 : r->body_len), r->body ? r->body : "");
}

static void api_ok(const struct skiffd *s, const char *method, const char *path, const char *body, int want)
{
    struct resp r;
    api(s, method, path, body, want, &r);
    resp_free(&r);
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static void create_box(const struct skiffd *s, const char *body, char *id, size_t size)
{
    struct resp r;
    api(s, "POST", "/v1/sandboxes", body, 201, &r);
    snprintf(id, size, "%s", jstr(r.json, "id"));
    resp_free(&r);
}

/* server_script - tests/helpers/port_server.py, found from the build dir
 * (build/ or build/asan/) or the working directory. */
static char *server_script(size_t *len)
{
    const char *dir = sk_test_bin_dir();
    const char *cands[] = {"%s/../tests/helpers/port_server.py", "%s/../../tests/helpers/port_server.py",
                           "tests/helpers/port_server.py"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(cands); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), cands[i], dir);
        char *text = NULL;
        struct sk_error err = {0};
        if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, len, &err) == 0)
            return text;
    }
    FAIL("tests/helpers/port_server.py not found (from %s)", dir);
}

/* run_server - upload the server and start it in the background (`sh -c
 * '... &'`: the exec itself ends at once, so the sandbox can still go idle). */
static void run_server(const struct skiffd *s, const char *id, const char *args)
{
    size_t len = 0;
    _cleanup_free_ char *script = server_script(&len);
    char path[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/port_server.py", id);
    struct resp r;
    request_body(s, "PUT", path, s->token, script, len, &r);
    ASSERT_EQ_INT(r.status, 201);
    resp_free(&r);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"argv\": [\"sh\", \"-c\", \"setsid python3 /tmp/port_server.py %s </dev/null >/dev/null 2>&1 &\"]}",
             args);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    api_ok(s, "POST", path, body, 200);
}

static void expose(const struct skiffd *s, const char *id, const char *body, struct resp *r)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", id);
    api(s, "POST", path, body, 201, r);
}

/* ---- raw HTTP through the proxy ------------------------------------------------------ */

/* http - one request with extra header lines (each ending in \r\n) from
 * source address src (NULL: any). */
static int http_from(const struct skiffd *s, const char *src, const char *method, const char *target,
                     const char *headers, const char *body, size_t body_len, struct resp *r)
{
    int fd = connect_to(s, src);
    if (fd < 0)
        FAIL("connect: %s", strerror(errno));
    char *head = xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s\r\n", method, target,
                           headers ? headers : "", body ? "" : "");
    if (body != NULL) {
        free(head);
        head = xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n",
                         method, target, body_len, headers ? headers : "");
    }
    send_all(fd, head, strlen(head));
    free(head);
    if (body != NULL && body_len > 0)
        send_all(fd, body, body_len);
    int rc = read_response(fd, r, 20);
    close(fd);
    return rc;
}

static void http(const struct skiffd *s, const char *method, const char *target, const char *headers, struct resp *r)
{
    if (http_from(s, NULL, method, target, headers, NULL, 0, r) < 0)
        FAIL("%s %s: no answer", method, target);
}

static char *bearer(const char *token)
{
    return xasprintf("Authorization: Bearer %s\r\n", token);
}

/* wait_up - the server behind an exposed port answers (502 until it listens). */
static void wait_up(const struct skiffd *s, const char *id, int port)
{
    char target[256];
    snprintf(target, sizeof(target), "/p/%s/%d/info", id, port);
    _cleanup_free_ char *auth = bearer(s->token);
    for (int i = 0; i < 200; i++) {
        struct resp r;
        http(s, "GET", target, auth, &r);
        int st = r.status;
        resp_free(&r);
        if (st == 200)
            return;
        if (st != 502)
            FAIL("GET %s: %d while waiting for the server", target, st);
        usleep(25000);
    }
    FAIL("the server on port %d of %s did not come up", port, id);
}

/* forwarded_header - a header the sandbox's server saw (from /info). */
static const char *forwarded_header(const struct resp *r, const char *name)
{
    json_t *hs = json_object_get(r->json, "headers");
    for (size_t i = 0; i < json_array_size(hs); i++) {
        json_t *kv = json_array_get(hs, i);
        if (strcasecmp(json_string_value(json_array_get(kv, 0)), name) == 0)
            return json_string_value(json_array_get(kv, 1));
    }
    return NULL;
}

/* ---- a minimal WebSocket client -------------------------------------------------------- */

static int ws_open(const struct skiffd *s, const char *target, const char *headers, int *status)
{
    int fd = connect_to(s, NULL);
    if (fd < 0)
        FAIL("connect: %s", strerror(errno));
    char *head = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n",
                           target, headers ? headers : "");
    send_all(fd, head, strlen(head));
    free(head);
    /* the head, byte by byte: frames may follow it */
    char buf[8192];
    size_t len = 0;
    double deadline = now_ms() + 10000;
    while (len < sizeof(buf) - 1 && (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (now_ms() > deadline)
            FAIL("WebSocket handshake timed out");
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, 1);
        if (n <= 0)
            FAIL("connection closed during the WebSocket handshake");
        len++;
    }
    buf[len] = '\0';
    *status = 0;
    sscanf(buf, "HTTP/1.1 %d", status);
    if (*status == 101) {
        ASSERT_CONTAINS(buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
    return fd;
}

static void ws_send(int fd, int opcode, const void *data, size_t len)
{
    uint8_t head[14];
    size_t h = 0;
    head[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        head[h++] = 0x80 | 126;
        head[h++] = (uint8_t)(len >> 8);
        head[h++] = (uint8_t)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (uint8_t)(len >> (i * 8));
    }
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(head + h, mask, 4);
    h += 4;
    uint8_t *frame = xmalloc(h + len);
    memcpy(frame, head, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = ((const uint8_t *)data)[i] ^ mask[i % 4];
    send_all(fd, frame, h + len);
    free(frame);
}

static int read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    double deadline = now_ms() + timeout_ms;
    while (got < len) {
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            return -2;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* ws_recv - one frame; its payload (caller frees) and opcode. -1 at EOF. */
static int ws_recv(int fd, int *opcode, char **data, size_t *len)
{
    uint8_t h[2];
    if (read_exact(fd, h, 2, 10000) < 0)
        return -1;
    *opcode = h[0] & 0x0f;
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        uint8_t e[2];
        if (read_exact(fd, e, 2, 10000) < 0)
            return -1;
        n = (uint64_t)e[0] << 8 | e[1];
    } else if (n == 127) {
        uint8_t e[8];
        if (read_exact(fd, e, 8, 10000) < 0)
            return -1;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | e[i];
    }
    *data = xmalloc(n + 1);
    if (read_exact(fd, *data, n, 10000) < 0)
        return -1;
    (*data)[n] = '\0';
    *len = n;
    return 0;
}

static void ws_echo_check(int fd, int opcode, const char *data, size_t len)
{
    ws_send(fd, opcode, data, len);
    int op = 0;
    char *got = NULL;
    size_t glen = 0;
    if (ws_recv(fd, &op, &got, &glen) < 0)
        FAIL("no WebSocket echo");
    ASSERT_EQ_INT(op, opcode);
    ASSERT_EQ_INT(glen, len);
    ASSERT_TRUE(memcmp(got, data, len) == 0);
    free(got);
}

/* closed_within - the peer closes fd (EOF or reset) within ms. */
static bool closed_within(int fd, int ms)
{
    double deadline = now_ms() + ms;
    char buf[65536];
    while (now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return true;
    }
    return false;
}

static int tcp_connect(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (src != NULL) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            FAIL("bind %s: %s", src, strerror(errno));
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* tcp_echo - n bytes through a raw TCP port and back, half-closing after. */
static void tcp_echo(int fd, size_t n)
{
    char *out = xmalloc(n), *in = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(i * 7 + 3);
    /* write and read at once: the echo comes back while we send */
    size_t sent = 0, got = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    double deadline = now_ms() + 20000;
    while (got < n) {
        if (now_ms() > deadline)
            FAIL("tcp echo: %zu of %zu bytes back", got, n);
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0)};
        poll(&p, 1, 100);
        if (sent < n) {
            ssize_t k = write(fd, out + sent, n - sent);
            if (k > 0)
                sent += (size_t)k;
            if (sent == n)
                shutdown(fd, SHUT_WR);
        }
        ssize_t k = read(fd, in + got, n - got);
        if (k == 0)
            FAIL("tcp echo: EOF after %zu of %zu bytes", got, n);
        if (k > 0)
            got += (size_t)k;
    }
    ASSERT_TRUE(memcmp(out, in, n) == 0);
    /* our half-close went through: the echo server closes too */
    ASSERT_TRUE(closed_within(fd, 5000));
    free(out);
    free(in);
}

/* ---- tests ------------------------------------------------------------------------------ */

TEST_TIMEOUT(http_port_exposed_after_create_serves_get_post_and_streams, 90)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{\"name\": \"web\"}", id, sizeof(id));
    run_server(&s, id, "8000");
    struct resp r;
    expose(&s, id, "{\"port\": 8000}", &r);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "port")), 8000);
    ASSERT_EQ_STR(jstr(r.json, "protocol"), "http");
    ASSERT_FALSE(json_is_true(json_object_get(r.json, "public")));
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/p/%s/8000/", s.port, id);
    ASSERT_EQ_STR(jstr(r.json, "url"), url);
    resp_free(&r);
    wait_up(&s, id, 8000);
    _cleanup_free_ char *auth = bearer(s.token);

    /* GET by name and by id: the prefix is stripped, the query kept, the
     * API token not passed on */
    http(&s, "GET", "/p/web/8000/info?a=1&b=%20x", auth, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(jstr(r.json, "path"), "/info?a=1&b=%20x");
    ASSERT_EQ_STR(jstr(r.json, "method"), "GET");
    ASSERT_TRUE(forwarded_header(&r, "Authorization") == NULL);
    ASSERT_EQ_STR(forwarded_header(&r, "X-Forwarded-Prefix"), "/p/web/8000");
    ASSERT_EQ_STR(forwarded_header(&r, "X-Forwarded-For"), "127.0.0.1");
    ASSERT_EQ_STR(forwarded_header(&r, "Host"), "127.0.0.1");
    ASSERT_TRUE(forwarded_header(&r, "Expect") == NULL);
    /* the sandbox's own headers come back, and no caching rule of ours */
    ASSERT_EQ_STR(resp_header(&r, "X-Served-By"), "port_server");
    ASSERT_TRUE(resp_header(&r, "Cache-Control") == NULL);
    resp_free(&r);

    /* POST with a body of 1 MiB + 3: the same bytes come back */
    size_t n = (1 << 20) + 3;
    char *body = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 31 + 7);
    char target[128];
    snprintf(target, sizeof(target), "/p/%s/8000/echo", id);
    ASSERT_EQ_INT(http_from(&s, NULL, "POST", target, auth, body, n, &r), 0);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(r.body_len, n);
    ASSERT_TRUE(memcmp(r.body, body, n) == 0);
    ASSERT_EQ_STR(resp_header(&r, "Content-Length"), "1048579");
    resp_free(&r);
    free(body);

    /* a chunked upload arrives whole */
    int fd = connect_to(&s, NULL);
    char *head = xasprintf("POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                           target, auth);
    send_all(fd, head, strlen(head));
    free(head);
    ASSERT_EQ_INT(read_response(fd, &r, 20), 0);
    close(fd);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(r.body, "hello world");
    resp_free(&r);

    /* a streamed answer arrives as it is written, not at its end */
    fd = connect_to(&s, NULL);
    head = xasprintf("GET /p/%s/8000/stream?n=10&ms=150 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", id, auth);
    double t0 = now_ms();
    send_all(fd, head, strlen(head));
    free(head);
    char buf[4096];
    size_t got = 0;
    while (strstr(buf, "line 0") == NULL) {
        ASSERT_TRUE(read_exact(fd, buf + got, 1, 5000) == 0);
        got++;
        buf[got] = '\0';
    }
    double first = now_ms() - t0;
    ASSERT_LT_INT(first, 1000); /* the whole stream takes 1.5 s */
    ASSERT_CONTAINS(buf, "Transfer-Encoding: chunked");
    close(fd);

    /* the path form without its slash is redirected to the port's root */
    snprintf(target, sizeof(target), "/p/%s/8000?x=1", id);
    http(&s, "GET", target, auth, &r);
    ASSERT_EQ_INT(r.status, 308);
    char loc[128];
    snprintf(loc, sizeof(loc), "/p/%s/8000/?x=1", id);
    ASSERT_EQ_STR(resp_header(&r, "Location"), loc);
    resp_free(&r);

    /* HEAD: the size of the GET answer, no body */
    fd = connect_to(&s, NULL);
    head = xasprintf("HEAD /p/%s/8000/bytes?n=12345 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", id, auth);
    send_all(fd, head, strlen(head));
    free(head);
    char hbuf[4096];
    size_t hlen = 0;
    for (;;) {
        ssize_t k = read(fd, hbuf + hlen, sizeof(hbuf) - 1 - hlen);
        if (k <= 0)
            break;
        hlen += (size_t)k;
    }
    hbuf[hlen] = '\0';
    close(fd);
    ASSERT_CONTAINS(hbuf, "HTTP/1.1 200");
    ASSERT_CONTAINS(hbuf, "Content-Length: 12345\r\n");
    ASSERT_TRUE(strstr(hbuf, "\r\n\r\n") != NULL && strstr(hbuf, "\r\n\r\n")[4] == '\0');
    /* the server's own 404 is passed on as it is */
    snprintf(target, sizeof(target), "/p/%s/8000/nothing", id);
    http(&s, "GET", target, auth, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_EQ_STR(r.body, "not here");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST_TIMEOUT(websocket_by_path_and_by_host_name, 90)
{
    struct skiffd s;
    const char *extra[] = {"--proxy-domain", "Sandbox.Test", NULL};
    start_with(&s, extra);
    char id[64];
    create_box(&s, "{\"ports\": [8000]}", id, sizeof(id));
    run_server(&s, id, "8000");
    wait_up(&s, id, 8000);
    struct resp r;
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8000", id);
    api(&s, "GET", path, NULL, 200, &r);
    char want[256];
    snprintf(want, sizeof(want), "http://8000-%s.sandbox.test:%d/", id, s.port);
    ASSERT_EQ_STR(jstr(r.json, "host_url"), want);
    resp_free(&r);
    _cleanup_free_ char *auth = bearer(s.token);

    char target[128];
    snprintf(target, sizeof(target), "/p/%s/8000/ws", id);
    int status = 0;
    int fd = ws_open(&s, target, auth, &status);
    ASSERT_EQ_INT(status, 101);
    ws_echo_check(fd, 1, "hello", 5);
    char *big = xmalloc(200000);
    for (size_t i = 0; i < 200000; i++)
        big[i] = (char)i;
    ws_echo_check(fd, 2, big, 200000);
    ws_send(fd, 8, "\x03\xe8", 2);
    int op = 0;
    char *data = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(ws_recv(fd, &op, &data, &len), 0);
    ASSERT_EQ_INT(op, 8);
    free(data);
    ASSERT_TRUE(closed_within(fd, 5000));
    close(fd);

    /* by host name: the whole target goes through, case does not matter */
    char *hosth = xasprintf("%sHost: 8000-%s.SANDBOX.test:%d\r\n", auth, id, s.port);
    int cfd = connect_to(&s, NULL);
    char *req = xasprintf("GET /info?q=1 HTTP/1.1\r\n%sConnection: close\r\n\r\n", hosth);
    send_all(cfd, req, strlen(req));
    free(req);
    ASSERT_EQ_INT(read_response(cfd, &r, 20), 0);
    close(cfd);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(jstr(r.json, "path"), "/info?q=1");
    ASSERT_TRUE(forwarded_header(&r, "X-Forwarded-Prefix") == NULL);
    resp_free(&r);
    cfd = connect_to(&s, NULL);
    req = xasprintf("GET /ws HTTP/1.1\r\n%sUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                    hosth);
    send_all(cfd, req, strlen(req));
    free(req);
    char head[4096];
    size_t got = 0;
    while (got < 4 || memcmp(head + got - 4, "\r\n\r\n", 4) != 0) {
        ASSERT_EQ_INT(read_exact(cfd, head + got, 1, 10000), 0);
        got++;
    }
    head[got] = '\0';
    ASSERT_CONTAINS(head, "HTTP/1.1 101");
    ws_echo_check(cfd, 1, "by host", 7);
    close(cfd);
    free(hosth);
    free(big);
    /* a name outside the domain is the API's, not the proxy's */
    int afd = connect_to(&s, NULL);
    req = xasprintf("GET /v1/version HTTP/1.1\r\nHost: sandbox.test\r\n%sConnection: close\r\n\r\n", auth);
    send_all(afd, req, strlen(req));
    free(req);
    ASSERT_EQ_INT(read_response(afd, &r, 20), 0);
    close(afd);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(jstr(r.json, "api"), "v1");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST_TIMEOUT(unexposed_port_is_gone_and_its_connections_are_closed, 90)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{}", id, sizeof(id));
    run_server(&s, id, "8000");
    struct resp r;
    expose(&s, id, "{\"port\": 8000}", &r);
    resp_free(&r);
    wait_up(&s, id, 8000);
    _cleanup_free_ char *auth = bearer(s.token);
    char target[128];
    snprintf(target, sizeof(target), "/p/%s/8000/ws", id);
    int status = 0;
    int ws = ws_open(&s, target, auth, &status);
    ASSERT_EQ_INT(status, 101);
    ws_echo_check(ws, 1, "before", 6);
    /* and a long stream in flight */
    int st = connect_to(&s, NULL);
    char *head =
        xasprintf("GET /p/%s/8000/stream?n=100&ms=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", id, auth);
    send_all(st, head, strlen(head));
    free(head);
    char buf[256];
    ASSERT_EQ_INT(read_exact(st, buf, 64, 5000), 0);

    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8000", id);
    api(&s, "DELETE", path, NULL, 200, &r);
    ASSERT_TRUE(json_is_true(json_object_get(r.json, "unexposed")));
    resp_free(&r);
    ASSERT_TRUE(closed_within(ws, 3000));
    ASSERT_TRUE(closed_within(st, 3000));
    close(ws);
    close(st);
    snprintf(target, sizeof(target), "/p/%s/8000/info", id);
    http(&s, "GET", target, auth, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", id);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "ports")), 0);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8000", id);
    api(&s, "DELETE", path, NULL, 404, &r);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);
    /* exposed again, it serves again */
    expose(&s, id, "{\"port\": 8000}", &r);
    resp_free(&r);
    wait_up(&s, id, 8000);
    skiffd_finish(&s);
}

/* mint - a connect token for id:port (ttl seconds). */
static void mint(const struct skiffd *s, const char *id, int port, int ttl, char *tok, size_t size, char *url,
                 size_t url_size)
{
    char path[128], body[64];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/%d/connect-tokens", id, port);
    snprintf(body, sizeof(body), "{\"ttl_seconds\": %d}", ttl);
    struct resp r;
    api(s, "POST", path, body, 201, &r);
    snprintf(tok, size, "%s", jstr(r.json, "token"));
    if (url != NULL)
        snprintf(url, url_size, "%s", jstr(r.json, "url"));
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "port")), port);
    ASSERT_EQ_STR(jstr(r.json, "sandbox_id"), id);
    resp_free(&r);
}

static int status_of(const struct skiffd *s, const char *target, const char *headers)
{
    struct resp r;
    http(s, "GET", target, headers, &r);
    int st = r.status;
    resp_free(&r);
    return st;
}

TEST_TIMEOUT(connect_token_works_for_its_port_only, 90)
{
    struct skiffd s;
    start(&s);
    char a[64], b[64];
    create_box(&s, "{\"ports\": [8000, 8001]}", a, sizeof(a));
    create_box(&s, "{\"ports\": [8000]}", b, sizeof(b));
    run_server(&s, a, "8000");
    run_server(&s, a, "8001");
    run_server(&s, b, "8000");
    wait_up(&s, a, 8000);
    wait_up(&s, a, 8001);
    wait_up(&s, b, 8000);
    char tok[128], url[512];
    mint(&s, a, 8000, 3, tok, sizeof(tok), url, sizeof(url));
    ASSERT_EQ_INT(strncmp(tok, "skc_", 4), 0);
    _cleanup_free_ char *h = bearer(tok);
    char ta[128], ta1[128], tb[128];
    snprintf(ta, sizeof(ta), "/p/%s/8000/info", a);
    snprintf(ta1, sizeof(ta1), "/p/%s/8001/info", a);
    snprintf(tb, sizeof(tb), "/p/%s/8000/info", b);

    /* as a bearer token, in X-Skiff-Token, in the query, as the cookie */
    struct resp r;
    http(&s, "GET", ta, h, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_TRUE(forwarded_header(&r, "Authorization") == NULL);
    resp_free(&r);
    char *xh = xasprintf("X-Skiff-Token: %s\r\n", tok);
    ASSERT_EQ_INT(status_of(&s, ta, xh), 200);
    char q[256];
    snprintf(q, sizeof(q), "/p/%s/8000/info?x=1&skiff_token=%s", a, tok);
    http(&s, "GET", q, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(jstr(r.json, "path"), "/info?x=1"); /* the token is not passed on */
    const char *cookie = resp_header(&r, "Set-Cookie");
    ASSERT_CONTAINS(cookie, "skiff_connect=");
    ASSERT_CONTAINS(cookie, "HttpOnly");
    char path_attr[128];
    snprintf(path_attr, sizeof(path_attr), "Path=/p/%s/8000/", a);
    ASSERT_CONTAINS(cookie, path_attr);
    resp_free(&r);
    /* the minted URL works as it is (the server has nothing at its root) */
    const char *u = strstr(url, "/p/");
    ASSERT_TRUE(u != NULL);
    http(&s, "GET", u, NULL, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_EQ_STR(r.body, "not here");
    resp_free(&r);
    char *ch = xasprintf("Cookie: theme=dark; skiff_connect=%s\r\n", tok);
    http(&s, "GET", ta, ch, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(forwarded_header(&r, "Cookie"), "theme=dark"); /* ours is not passed on */
    resp_free(&r);

    /* not for another port of the sandbox, nor another sandbox */
    http(&s, "GET", ta1, h, &r);
    ASSERT_EQ_INT(r.status, 403);
    ASSERT_EQ_STR(err_code(&r), "permission_denied");
    resp_free(&r);
    ASSERT_EQ_INT(status_of(&s, tb, h), 403);
    /* without a token, or with a forged one */
    http(&s, "GET", ta, NULL, &r);
    ASSERT_EQ_INT(r.status, 401);
    ASSERT_EQ_STR(err_code(&r), "unauthenticated");
    ASSERT_TRUE(resp_header(&r, "WWW-Authenticate") != NULL);
    resp_free(&r);
    char forged[128];
    snprintf(forged, sizeof(forged), "%s", tok);
    forged[20] = forged[20] == 'A' ? 'B' : 'A';
    _cleanup_free_ char *fh = bearer(forged);
    ASSERT_EQ_INT(status_of(&s, ta, fh), 401);

    /* an API token in the query leaves a connect token in the cookie, never
     * the API token */
    snprintf(q, sizeof(q), "/p/%s/8000/info?skiff_token=%s", a, s.token);
    http(&s, "GET", q, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_CONTAINS(resp_header(&r, "Set-Cookie"), "skiff_connect=skc_");
    ASSERT_NOT_CONTAINS(resp_header(&r, "Set-Cookie"), s.token);
    resp_free(&r);

    /* re-exposing the port voids its earlier tokens */
    char tok2[128];
    mint(&s, a, 8001, 60, tok2, sizeof(tok2), NULL, 0);
    _cleanup_free_ char *h2 = bearer(tok2);
    ASSERT_EQ_INT(status_of(&s, ta1, h2), 200);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8001", a);
    api_ok(&s, "DELETE", path, NULL, 200);
    ASSERT_EQ_INT(status_of(&s, ta1, h2), 404); /* a token holder may learn it is gone */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", a);
    api_ok(&s, "POST", path, "{\"port\": 8001}", 201);
    ASSERT_EQ_INT(status_of(&s, ta1, h2), 401);

    /* and a token ends with its expiry */
    double t0 = now_ms();
    while (now_ms() - t0 < 3300)
        usleep(100000);
    ASSERT_EQ_INT(status_of(&s, ta, h), 401);
    ASSERT_EQ_INT(status_of(&s, ta, ch), 401);
    free(xh);
    free(ch);
    skiffd_finish(&s);
}

TEST_TIMEOUT(public_port_needs_no_token, 60)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{\"ports\": [{\"port\": 8000, \"public\": true}, 8001]}", id, sizeof(id));
    run_server(&s, id, "8000");
    wait_up(&s, id, 8000);
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8000/info", id);
    struct resp r;
    http(&s, "GET", t, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    /* a token sent anyway still stays with skiff */
    _cleanup_free_ char *auth = bearer(s.token);
    http(&s, "GET", t, auth, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_TRUE(forwarded_header(&r, "Authorization") == NULL);
    resp_free(&r);
    /* the other port is not public */
    snprintf(t, sizeof(t), "/p/%s/8001/info", id);
    ASSERT_EQ_INT(status_of(&s, t, NULL), 401);
    /* and nothing about unexposed ports is told without a token */
    snprintf(t, sizeof(t), "/p/%s/8002/info", id);
    ASSERT_EQ_INT(status_of(&s, t, NULL), 401);
    snprintf(t, sizeof(t), "/p/sb-0000000000000000/8000/info");
    ASSERT_EQ_INT(status_of(&s, t, NULL), 401);
    skiffd_finish(&s);
}

TEST_TIMEOUT(cidr_allowlist_refuses_other_addresses, 60)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s,
               "{\"ports\": [{\"port\": 8000, \"public\": true, \"allow_cidrs\": [\"127.0.0.2/32\", \"10.0.0.0/8\"]},"
               " {\"port\": 9000, \"protocol\": \"tcp\", \"allow_cidrs\": [\"127.0.0.2\"]}]}",
               id, sizeof(id));
    run_server(&s, id, "8000");
    run_server(&s, id, "--tcp 9000");
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8000/info", id);
    struct resp r;
    /* from 127.0.0.2: allowed (once the server is up) */
    int st = 0;
    for (int i = 0; i < 200; i++) {
        ASSERT_EQ_INT(http_from(&s, "127.0.0.2", "GET", t, NULL, NULL, 0, &r), 0);
        st = r.status;
        resp_free(&r);
        if (st == 200)
            break;
        usleep(25000);
    }
    ASSERT_EQ_INT(st, 200);
    /* from 127.0.0.1: refused, token or not */
    _cleanup_free_ char *auth = bearer(s.token);
    ASSERT_EQ_INT(http_from(&s, "127.0.0.1", "GET", t, auth, NULL, 0, &r), 0);
    ASSERT_EQ_INT(r.status, 403);
    ASSERT_EQ_STR(err_code(&r), "permission_denied");
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/9000", id);
    api(&s, "GET", path, NULL, 200, &r);
    int tcp_port = (int)json_integer_value(json_object_get(r.json, "tcp_port"));
    ASSERT_CONTAINS(jstr(r.json, "url"), "tcp://127.0.0.1:");
    ASSERT_EQ_STR(jstr(r.json, "tcp_host"), "127.0.0.1");
    resp_free(&r);
    ASSERT_GT_INT(tcp_port, 0);
    /* raw TCP from a refused address is closed at once; from 127.0.0.2 it echoes */
    int fd = tcp_connect("127.0.0.1", tcp_port);
    ASSERT_TRUE(fd >= 0);
    send_all(fd, "x", 1);
    ASSERT_TRUE(closed_within(fd, 3000));
    close(fd);
    for (int i = 0; i < 100; i++) {
        fd = tcp_connect("127.0.0.2", tcp_port);
        ASSERT_TRUE(fd >= 0);
        char c;
        send_all(fd, "?", 1);
        if (read_exact(fd, &c, 1, 2000) == 0)
            break;
        close(fd);
        fd = -1;
        usleep(50000); /* the echo server is still starting */
    }
    ASSERT_TRUE(fd >= 0);
    close(fd);
    fd = tcp_connect("127.0.0.2", tcp_port);
    tcp_echo(fd, 100000);
    close(fd);
    skiffd_finish(&s);
}

/* tcp_port_of - the host port of an exposed tcp port. */
static int tcp_port_of(const struct skiffd *s, const char *id, int port)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/%d", id, port);
    struct resp r;
    api(s, "GET", path, NULL, 200, &r);
    int p = (int)json_integer_value(json_object_get(r.json, "tcp_port"));
    resp_free(&r);
    return p;
}

/* tcp_wait_up - the echo server behind a tcp port answers; returns a
 * connection whose echo was checked. */
static void tcp_wait_up(int port)
{
    for (int i = 0; i < 200; i++) {
        int fd = tcp_connect(NULL, port);
        ASSERT_TRUE(fd >= 0);
        char c;
        send_all(fd, "?", 1);
        int rc = read_exact(fd, &c, 1, 2000);
        close(fd);
        if (rc == 0)
            return;
        usleep(25000);
    }
    FAIL("the tcp echo server on host port %d did not come up", port);
}

TEST_TIMEOUT(raw_tcp_port_relays_bytes_both_ways, 60)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{}", id, sizeof(id));
    run_server(&s, id, "--tcp 9000");
    struct resp r;
    expose(&s, id, "{\"port\": 9000, \"protocol\": \"tcp\", \"public\": true}", &r);
    ASSERT_EQ_STR(jstr(r.json, "protocol"), "tcp");
    int hp = (int)json_integer_value(json_object_get(r.json, "tcp_port"));
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "host_url")));
    resp_free(&r);
    ASSERT_GT_INT(hp, 0);
    tcp_wait_up(hp);
    /* 4 MiB there and back, with a half-close at the end */
    int fd = tcp_connect(NULL, hp);
    tcp_echo(fd, 4 << 20);
    close(fd);
    /* several at once */
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = tcp_connect(NULL, hp);
    for (int i = 0; i < 8; i++) {
        tcp_echo(fds[i], 10000 + (size_t)i);
        close(fds[i]);
    }
    /* a tcp port is not reached through the HTTP proxy, and takes no token */
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/9000/", id);
    _cleanup_free_ char *auth = bearer(s.token);
    http(&s, "GET", t, auth, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_CONTAINS(err_message(&r), "tcp port");
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/9000/connect-tokens", id);
    api(&s, "POST", path, "{}", 409, &r);
    ASSERT_EQ_STR(err_code(&r), "failed_precondition");
    resp_free(&r);
    /* unexposed: the listener is gone, and so is a connection through it */
    fd = tcp_connect(NULL, hp);
    ASSERT_TRUE(fd >= 0);
    send_all(fd, "?", 1);
    char c;
    ASSERT_EQ_INT(read_exact(fd, &c, 1, 5000), 0);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/9000", id);
    api_ok(&s, "DELETE", path, NULL, 200);
    ASSERT_TRUE(closed_within(fd, 3000));
    close(fd);
    ASSERT_EQ_INT(tcp_connect(NULL, hp), -1);
    skiffd_finish(&s);
}

TEST_TIMEOUT(nothing_listening_is_502_and_a_slow_answer_504, 60)
{
    struct skiffd s;
    const char *extra[] = {"--proxy-timeout", "1", NULL};
    start_with(&s, extra);
    char id[64];
    create_box(&s, "{\"ports\": [8000, 8001]}", id, sizeof(id));
    _cleanup_free_ char *auth = bearer(s.token);
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8001/info", id);
    struct resp r;
    http(&s, "GET", t, auth, &r);
    ASSERT_EQ_INT(r.status, 502);
    ASSERT_EQ_STR(err_code(&r), "bad_gateway");
    ASSERT_CONTAINS(err_message(&r), "nothing answers on port 8001");
    resp_free(&r);
    /* a WebSocket handshake too */
    snprintf(t, sizeof(t), "/p/%s/8001/ws", id);
    int status = 0;
    int fd = ws_open(&s, t, auth, &status);
    ASSERT_EQ_INT(status, 502);
    close(fd);

    run_server(&s, id, "8000");
    wait_up(&s, id, 8000);
    snprintf(t, sizeof(t), "/p/%s/8000/slow?ms=3000", id);
    double t0 = now_ms();
    http(&s, "GET", t, auth, &r);
    ASSERT_EQ_INT(r.status, 504);
    ASSERT_EQ_STR(err_code(&r), "deadline_exceeded");
    ASSERT_LT_INT(now_ms() - t0, 2500);
    resp_free(&r);
    /* the server is fine for what is quick */
    snprintf(t, sizeof(t), "/p/%s/8000/slow?ms=100", id);
    ASSERT_EQ_INT(status_of(&s, t, auth), 200);
    skiffd_finish(&s);
}

static const char *sandbox_state(const struct skiffd *s, const char *id, char *reason, size_t size)
{
    static char state[32];
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
    struct resp r;
    api(s, "GET", path, NULL, 200, &r);
    snprintf(state, sizeof(state), "%s", jstr(r.json, "state"));
    snprintf(reason, size, "%s", jstr(r.json, "reason"));
    resp_free(&r);
    return state;
}

TEST_TIMEOUT(activity_through_a_port_postpones_the_idle_timeout, 60)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{\"idle_timeout\": 2, \"ports\": [8000]}", id, sizeof(id));
    run_server(&s, id, "8000");
    wait_up(&s, id, 8000);
    _cleanup_free_ char *auth = bearer(s.token);
    char t[128], reason[64];
    snprintf(t, sizeof(t), "/p/%s/8000/info", id);
    /* 5 s of requests, one every 0.4 s: never idle for 2 s */
    double t0 = now_ms();
    while (now_ms() - t0 < 5000) {
        ASSERT_EQ_INT(status_of(&s, t, auth), 200);
        usleep(400000);
    }
    ASSERT_EQ_STR(sandbox_state(&s, id, reason, sizeof(reason)), "running");
    /* and a WebSocket that talks keeps it too */
    snprintf(t, sizeof(t), "/p/%s/8000/ws", id);
    int status = 0;
    int fd = ws_open(&s, t, auth, &status);
    ASSERT_EQ_INT(status, 101);
    t0 = now_ms();
    while (now_ms() - t0 < 3000) {
        ws_echo_check(fd, 1, "ping", 4);
        usleep(400000);
    }
    ASSERT_EQ_STR(sandbox_state(&s, id, reason, sizeof(reason)), "running");
    /* then quiet: it ends as idle */
    t0 = now_ms();
    const char *st = "running";
    while (now_ms() - t0 < 8000 && strcmp(st = sandbox_state(&s, id, reason, sizeof(reason)), "running") == 0)
        usleep(100000);
    ASSERT_EQ_STR(st, "terminated");
    ASSERT_EQ_STR(reason, "idle");
    ASSERT_GT_INT(now_ms() - t0, 1000);
    /* its ports went with it */
    ASSERT_TRUE(closed_within(fd, 3000));
    close(fd);
    snprintf(t, sizeof(t), "/p/%s/8000/info", id);
    ASSERT_EQ_INT(status_of(&s, t, auth), 404);
    skiffd_finish(&s);
}

TEST_TIMEOUT(ports_survive_a_restart_of_skiffd, 90)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{\"ports\": [8000, {\"port\": 9000, \"protocol\": \"tcp\", \"public\": true}]}", id, sizeof(id));
    run_server(&s, id, "8000");
    run_server(&s, id, "--tcp 9000");
    wait_up(&s, id, 8000);
    int hp = tcp_port_of(&s, id, 9000);
    tcp_wait_up(hp);
    char tok[128];
    mint(&s, id, 8000, 600, tok, sizeof(tok), NULL, 0);

    /* a crash: the sandbox lives on, the next skiffd re-adopts it */
    int old_port = s.port;
    ASSERT_EQ_INT(kill(s.pid, SIGKILL), 0);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    ASSERT_EQ_INT(tcp_connect(NULL, hp), -1);
    skiffd_start(&s);
    (void)old_port;
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", id);
    struct resp r;
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "ports")), 2);
    resp_free(&r);
    ASSERT_EQ_INT(tcp_port_of(&s, id, 9000), hp); /* the same host port */
    int fd = tcp_connect(NULL, hp);
    tcp_echo(fd, 50000);
    close(fd);
    /* the connect token minted before still works (key and exposure kept) */
    _cleanup_free_ char *h = bearer(tok);
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8000/info", id);
    ASSERT_EQ_INT(status_of(&s, t, h), 200);

    /* an orderly stop ends the sandbox; its ports with it */
    ASSERT_EQ_INT(skiffd_stop(&s), 0);
    skiffd_start(&s);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "ports")), 0);
    resp_free(&r);
    ASSERT_EQ_INT(tcp_connect(NULL, hp), -1);
    skiffd_finish(&s);
}

TEST_TIMEOUT(bad_inputs_get_the_documented_errors, 60)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{\"ports\": [8000]}", id, sizeof(id));
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", id);
    static const struct {
        const char *body;
        int status;
        const char *code;
        const char *in_message;
    } cases[] = {
        {"{\"port\": 0}", 400, "invalid_argument", "port"},
        {"{\"port\": 65536}", 400, "invalid_argument", "port"},
        {"{\"port\": \"80\"}", 400, "invalid_argument", "port"},
        {"{}", 400, "invalid_argument", "port"},
        {"{\"port\": 8000}", 409, "already_exists", "exposed already"},
        {"{\"port\": 81, \"protocol\": \"udp\"}", 400, "invalid_argument", "protocol"},
        {"{\"port\": 81, \"allow_cidrs\": [\"10.0.0.0/33\"]}", 400, "invalid_argument", "allow_cidrs"},
        {"{\"port\": 81, \"allow_cidrs\": [\"example.com\"]}", 400, "invalid_argument", "allow_cidrs"},
        {"{\"port\": 81, \"protocol\": \"tcp\"}", 400, "invalid_argument", "public"},
        {"{\"port\": 81, \"colour\": 1}", 400, "unknown_field", "colour"},
        {"{\"port\": 81", 400, "invalid_json", ""},
        {"[81]", 400, "invalid_argument", ""},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
        struct resp r;
        request(&s, "POST", path, s.token, cases[i].body, &r);
        if (r.status != cases[i].status || err_code(&r) == NULL || strcmp(err_code(&r), cases[i].code) != 0)
            FAIL("%s: %d %s, want %d %s", cases[i].body, r.status, r.body, cases[i].status, cases[i].code);
        ASSERT_CONTAINS(err_message(&r), cases[i].in_message);
        resp_free(&r);
    }
    struct resp r;
    /* unknown sandbox, unknown port, bad port in the path */
    api(&s, "POST", "/v1/sandboxes/no-such-box/ports", "{\"port\": 80}", 404, &r);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);
    api(&s, "GET", "/v1/sandboxes/no-such-box/ports", NULL, 404, &r);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8080", id);
    api(&s, "DELETE", path, NULL, 404, &r);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/http", id);
    api(&s, "DELETE", path, NULL, 400, &r);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/0", id);
    api(&s, "GET", path, NULL, 400, &r);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8000/connect-tokens", id);
    api(&s, "POST", path, "{\"ttl_seconds\": 0}", 400, &r);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8001/connect-tokens", id);
    api(&s, "POST", path, "{}", 404, &r);
    resp_free(&r);
    /* at create: each bad entry refused before anything is created */
    static const char *const bad_creates[] = {
        "{\"name\": \"x1\", \"ports\": [0]}",
        "{\"name\": \"x1\", \"ports\": [8000, 8000]}",
        "{\"name\": \"x1\", \"ports\": [\"8000\"]}",
        "{\"name\": \"x1\", \"ports\": [{\"port\": 9000, \"protocol\": \"tcp\"}]}",
        "{\"name\": \"x1\", \"ports\": 8000}",
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad_creates); i++) {
        request(&s, "POST", "/v1/sandboxes", s.token, bad_creates[i], &r);
        if (r.status != 400)
            FAIL("%s: %d %s", bad_creates[i], r.status, r.body);
        ASSERT_EQ_STR(err_code(&r), "invalid_argument");
        resp_free(&r);
        api(&s, "GET", "/v1/sandboxes/x1", NULL, 404, &r);
        resp_free(&r);
    }
    /* an ended sandbox has no ports and takes none */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/terminate", id);
    api_ok(&s, "POST", path, NULL, 200);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", id);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "ports")), 0);
    resp_free(&r);
    api(&s, "POST", path, "{\"port\": 80}", 409, &r);
    ASSERT_EQ_STR(err_code(&r), "failed_precondition");
    resp_free(&r);
    _cleanup_free_ char *auth = bearer(s.token);
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8000/", id);
    ASSERT_EQ_INT(status_of(&s, t, auth), 404);
    ASSERT_EQ_INT(status_of(&s, "/p/", auth), 404);
    ASSERT_EQ_INT(status_of(&s, "/p/x/99999/", auth), 404);
    skiffd_finish(&s);
}

TEST_TIMEOUT(metrics_count_proxied_traffic, 60)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, "{\"ports\": [8000, {\"port\": 9000, \"protocol\": \"tcp\", \"public\": true}]}", id, sizeof(id));
    run_server(&s, id, "8000");
    run_server(&s, id, "--tcp 9000");
    wait_up(&s, id, 8000);
    int hp = tcp_port_of(&s, id, 9000);
    tcp_wait_up(hp);
    int fd = tcp_connect(NULL, hp);
    tcp_echo(fd, 1000);
    close(fd);
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8000/bytes?n=5000", id);
    _cleanup_free_ char *auth = bearer(s.token);
    ASSERT_EQ_INT(status_of(&s, t, auth), 200);
    ASSERT_EQ_INT(status_of(&s, t, NULL), 401);
    struct resp r;
    api(&s, "GET", "/metrics", NULL, 200, &r);
    double http_req = 0, tcp_conns = 0, http_bytes = 0, tcp_bytes = 0, unauth = 0, ports_http = 0, ports_tcp = 0;
    for (char *line = r.body; line != NULL && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        sscanf(line, "skiff_proxy_requests_total{protocol=\"http\"} %lf", &http_req);
        sscanf(line, "skiff_proxy_connections_total{protocol=\"tcp\"} %lf", &tcp_conns);
        sscanf(line, "skiff_proxy_bytes_total{protocol=\"http\"} %lf", &http_bytes);
        sscanf(line, "skiff_proxy_bytes_total{protocol=\"tcp\"} %lf", &tcp_bytes);
        sscanf(line, "skiff_proxy_refused_total{reason=\"unauthenticated\"} %lf", &unauth);
        sscanf(line, "skiff_proxy_exposed_ports{protocol=\"http\"} %lf", &ports_http);
        sscanf(line, "skiff_proxy_exposed_ports{protocol=\"tcp\"} %lf", &ports_tcp);
    }
    resp_free(&r);
    ASSERT_GE_INT(http_req, 2);
    ASSERT_GE_INT(tcp_conns, 2);
    ASSERT_GE_INT(http_bytes, 5000);
    ASSERT_GE_INT(tcp_bytes, 2000);
    ASSERT_GE_INT(unauth, 1);
    ASSERT_EQ_INT(ports_http, 1);
    ASSERT_EQ_INT(ports_tcp, 1);
    skiffd_finish(&s);
}

/* skiff - build/skiff against s with the admin token; its exit code. */
static int skiff(const struct skiffd *s, struct sk_test_output *o, const char *const *args)
{
    char bin[PATH_MAX], url_kv[128], tok_kv[256];
    snprintf(bin, sizeof(bin), "%s/skiff", sk_test_bin_dir());
    snprintf(url_kv, sizeof(url_kv), "SKIFF_URL=http://127.0.0.1:%d", s->port);
    snprintf(tok_kv, sizeof(tok_kv), "SKIFF_TOKEN=%s", s->token);
    const char *argv[32] = {bin};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *envv[] = {url_kv, tok_kv, "SKIFF_CONFIG=", "XDG_CONFIG_HOME=", "HOME=/nonexistent", NULL};
    if (sk_test_run(argv, NULL, envv, 60, o) < 0)
        FAIL("run %s: %s", bin, strerror(errno));
    return o->exit_code;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

TEST_TIMEOUT(cli_exposes_lists_mints_and_unexposes, 60)
{
    struct skiffd s;
    start(&s);
    struct sk_test_output o;
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "create", "--name", "cli-web", "--port", "8000")), 0);
    char id[64];
    snprintf(id, sizeof(id), "%.*s", (int)strcspn(o.out, "\n"), o.out);
    sk_test_output_free(&o);
    run_server(&s, id, "8000");
    wait_up(&s, id, 8000);
    ASSERT_EQ_INT(
        skiff(&s, &o, ARGS("sandbox", "port", "expose", "cli-web", "9000", "--tcp", "--allow", "127.0.0.0/8")), 0);
    ASSERT_CONTAINS(o.out, "tcp://127.0.0.1:");
    sk_test_output_free(&o);
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "ls", "cli-web")), 0);
    ASSERT_CONTAINS(o.out, "PORT");
    ASSERT_CONTAINS(o.out, "8000  http      token");
    ASSERT_CONTAINS(o.out, "token, from 127.0.0.0/8");
    char url[256];
    snprintf(url, sizeof(url), "/p/%s/8000/", id);
    ASSERT_CONTAINS(o.out, url);
    sk_test_output_free(&o);
    /* a connect token's URL opens the port without the API token */
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "token", "cli-web", "8000", "--ttl", "60")), 0);
    ASSERT_CONTAINS(o.out, "?skiff_token=skc_");
    const char *p = strstr(o.out, "/p/");
    ASSERT_TRUE(p != NULL);
    char target[256];
    snprintf(target, sizeof(target), "%.*s", (int)strcspn(p, "\n"), p);
    sk_test_output_free(&o);
    struct resp r;
    http(&s, "GET", target, NULL, &r);
    ASSERT_EQ_INT(r.status, 404); /* the server's own: nothing at its root */
    ASSERT_EQ_STR(r.body, "not here");
    resp_free(&r);
    /* usage errors and API errors have their exit codes */
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "expose", "cli-web", "70000")), 2);
    sk_test_output_free(&o);
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "expose", "cli-web", "9001", "--tcp")), 2);
    ASSERT_CONTAINS(o.err, "--public or --allow");
    sk_test_output_free(&o);
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "expose", "cli-web", "8000")), 5);
    ASSERT_CONTAINS(o.err, "already_exists");
    sk_test_output_free(&o);
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "unexpose", "cli-web", "8000")), 0);
    sk_test_output_free(&o);
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "unexpose", "cli-web", "8000")), 3);
    sk_test_output_free(&o);
    ASSERT_EQ_INT(skiff(&s, &o, ARGS("sandbox", "port", "ls", "cli-web", "--json")), 0);
    ASSERT_CONTAINS(o.out, "\"port\": 9000");
    ASSERT_NOT_CONTAINS(o.out, "\"port\": 8000");
    sk_test_output_free(&o);
    skiffd_finish(&s);
}

TEST_TIMEOUT(kept_alive_connections_never_cross_sandboxes_or_ports, 60)
{
    struct skiffd s;
    start(&s);
    char a[64], b[64];
    create_box(&s, "{\"ports\": [8000, 8001]}", a, sizeof(a));
    create_box(&s, "{\"ports\": [8000]}", b, sizeof(b));
    run_server(&s, a, "8000");
    run_server(&s, a, "8001");
    run_server(&s, b, "8000");
    wait_up(&s, a, 8000);
    wait_up(&s, a, 8001);
    wait_up(&s, b, 8000);
    _cleanup_free_ char *auth = bearer(s.token);
    /* one client connection, requests for each in turn: skiffd keeps its
     * connections into the sandboxes alive, and each answer must come from
     * the sandbox and port asked for */
    int fd = connect_to(&s, NULL);
    const char *ids[3] = {a, a, b};
    const int ports[3] = {8000, 8001, 8000};
    for (int i = 0; i < 60; i++) {
        int k = i % 3;
        char *req = xasprintf("GET /p/%s/%d/info?i=%d HTTP/1.1\r\nHost: x\r\n%s\r\n", ids[k], ports[k], i, auth);
        send_all(fd, req, strlen(req));
        free(req);
        struct resp r;
        ASSERT_EQ_INT(read_response(fd, &r, 20), 0);
        ASSERT_EQ_INT(r.status, 200);
        ASSERT_EQ_STR(jstr(r.json, "hostname"), ids[k]);
        char want[32];
        snprintf(want, sizeof(want), "/info?i=%d", i);
        ASSERT_EQ_STR(jstr(r.json, "path"), want);
        resp_free(&r);
    }
    close(fd);
    /* a port unexposed and exposed again is reached afresh */
    char path[128];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports/8000", a);
    api_ok(&s, "DELETE", path, NULL, 200);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", a);
    api_ok(&s, "POST", path, "{\"port\": 8000}", 201);
    char t[128];
    snprintf(t, sizeof(t), "/p/%s/8000/info", a);
    struct resp r;
    http(&s, "GET", t, auth, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(jstr(r.json, "hostname"), a);
    resp_free(&r);
    skiffd_finish(&s);
}
