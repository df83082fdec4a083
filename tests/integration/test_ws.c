/* The interactive shell: a WebSocket attached to a PTY exec of the real
 * build/skiffd, spoken by a minimal client written here over a plain socket
 * (handshake, masked client frames, frame parsing), so that the tests can
 * also send what a broken client sends. */
#include "skiffd_test.h"

#include <netinet/tcp.h>

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="        /* RFC 6455, section 1.3 */
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* its answer */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* ---- fixture ------------------------------------------------------------------- */

static void start(struct skiffd *s)
{
    memset(s, 0, sizeof(*s));
    make_data_dir(s);
    skiffd_start(s);
}

static void api(const struct skiffd *s, const char *method, const char *path, const char *body, int want,
                struct resp *r)
{
    request(s, method, path, s->token, body, r);
    if (r->status != want)
        FAIL("%s %s: status %d, want %d: %.*s", method, path, r->status, want,
             (int)(r->body_len > 400 ? 400 : r->body_len), r->body ? r->body : "");
}

static const char *jstr(const struct resp *r, const char *key)
{
    const char *v = json_string_value(json_object_get(r->json, key));
    return v ? v : "";
}

static void create_sandbox(const struct skiffd *s, char *id, size_t size)
{
    struct resp r;
    api(s, "POST", "/v1/sandboxes", "{}", 201, &r);
    snprintf(id, size, "%s", jstr(&r, "id"));
    resp_free(&r);
}

/* start_exec - POST /execs with body; the exec's id. */
static void start_exec(const struct skiffd *s, const char *sb, const char *body, char *id, size_t size)
{
    char path[256];
    struct resp r;
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", sb);
    api(s, "POST", path, body, 201, &r);
    snprintf(id, size, "%s", jstr(&r, "id"));
    resp_free(&r);
}

#define SHELL_EXEC "{\"argv\": [\"sh\"], \"pty\": true, \"rows\": 24, \"cols\": 80, \"env\": {\"PS1\": \"$ \"}}"

/* ---- a minimal WebSocket client --------------------------------------------------- */

struct ws {
    int fd;
    char *buf; /* received, not parsed yet */
    size_t len, cap;
    char *out; /* binary payloads so far (terminal output) */
    size_t out_len;
    int pings;      /* pings seen */
    bool auto_pong; /* answer pings */
    int close_code; /* of the server's close frame; 0 until one came */
    char close_reason[128];
};

struct frame {
    int opcode;
    bool fin;
    char *data; /* NUL-terminated copy */
    size_t len;
};

static void frame_free(struct frame *f)
{
    free(f->data);
    memset(f, 0, sizeof(*f));
}

/* handshake_request - the opening handshake for `path` with the given key
 * and version (NULL: header left out) and token (NULL: none). */
static void handshake_request(int fd, const char *path, const char *token, const char *key, const char *version,
                              const char *extra_headers)
{
    char head[4096];
    int n = snprintf(head, sizeof(head),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s", path,
                     extra_headers ? extra_headers : "");
    if (token != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (key != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Sec-WebSocket-Key: %s\r\n", key);
    if (version != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Sec-WebSocket-Version: %s\r\n", version);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    send_all(fd, head, (size_t)n);
}

/* refused - a handshake that must be answered with a JSON error. */
static void refused(const struct skiffd *s, const char *path, const char *token, const char *key, const char *version,
                    const char *extra_headers, struct resp *r)
{
    int fd = connect_to(s, NULL);
    if (fd < 0)
        FAIL("connect: %s", strerror(errno));
    handshake_request(fd, path, token, key, version, extra_headers);
    if (read_response(fd, r, 10) < 0)
        FAIL("handshake for '%s': connection closed without an answer", path);
    close(fd);
    if (r->json == NULL)
        FAIL("handshake for '%s': status %d without a JSON body", path, r->status);
}

/* fill - read more bytes; 1 got some, 0 timeout, -1 EOF or error. */
static int fill(struct ws *w, int timeout_ms)
{
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    int pr = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (pr == 0)
        return 0;
    if (w->len + 65536 > w->cap) {
        w->cap = w->cap ? w->cap * 2 : 131072;
        w->buf = xrealloc(w->buf, w->cap);
    }
    ssize_t n = read(w->fd, w->buf + w->len, w->cap - w->len);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0)
        return -1;
    w->len += (size_t)n;
    return 1;
}

static void ws_send_frame(struct ws *w, int opcode, const void *data, size_t len, bool masked);

/* ws_open - connect and do the handshake with `key`; the 101's head in
 * *head (caller frees), or FAIL. Bytes after the head stay buffered. With
 * early_input, a binary frame of it follows the handshake at once (in the
 * same segment, before the 101 can have arrived). */
static void ws_open_early(const struct skiffd *s, const char *path, const char *key, const char *early_input,
                          struct ws *w, char **head)
{
    memset(w, 0, sizeof(*w));
    w->auto_pong = true;
    w->fd = connect_to(s, NULL);
    if (w->fd < 0)
        FAIL("connect: %s", strerror(errno));
    int one = 1;
    setsockopt(w->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one));
    handshake_request(w->fd, path, s->token, key, "13", NULL);
    if (early_input != NULL)
        ws_send_frame(w, 2, early_input, strlen(early_input), true);
    one = 0;
    setsockopt(w->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one));
    double deadline = now_ms() + 10000;
    for (;;) {
        char *end = w->len >= 4 ? memmem(w->buf, w->len, "\r\n\r\n", 4) : NULL;
        if (end != NULL) {
            size_t head_len = (size_t)(end - w->buf) + 4;
            *head = xstrndup(w->buf, head_len);
            memmove(w->buf, w->buf + head_len, w->len - head_len);
            w->len -= head_len;
            break;
        }
        if (now_ms() > deadline || fill(w, (int)(deadline - now_ms())) < 0)
            FAIL("no answer to the handshake for '%s' (%zu bytes: %.*s)", path, w->len, (int)w->len,
                 w->buf ? w->buf : "");
    }
    if (strncmp(*head, "HTTP/1.1 101", 12) != 0)
        FAIL("handshake for '%s' not accepted: %s", path, *head);
}

static void ws_open(const struct skiffd *s, const char *path, const char *key, struct ws *w, char **head)
{
    ws_open_early(s, path, key, NULL, w, head);
}

static void ws_attach(const struct skiffd *s, const char *sb, const char *ex, const char *query, struct ws *w)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/attach%s", sb, ex, query ? query : "");
    char *head = NULL;
    ws_open(s, path, "AAECAwQFBgcICQoLDA0ODw==", w, &head);
    free(head);
}

static void ws_free(struct ws *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w->out);
    memset(w, 0, sizeof(*w));
    w->fd = -1;
}

/* ws_send_frame - one frame, masked as a client must (unless masked ==
 * false, which a server must refuse). */
static void ws_send_frame(struct ws *w, int opcode, const void *data, size_t len, bool masked)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    uint8_t mbit = masked ? 0x80 : 0;
    if (len < 126) {
        hdr[h++] = (uint8_t)(mbit | len);
    } else if (len < 65536) {
        hdr[h++] = mbit | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (masked) {
        memcpy(hdr + h, mask, 4);
        h += 4;
    }
    uint8_t *frame = xmalloc(h + len);
    memcpy(frame, hdr, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = masked ? (uint8_t)(((const uint8_t *)data)[i] ^ mask[i % 4]) : ((const uint8_t *)data)[i];
    send_all(w->fd, frame, h + len);
    free(frame);
}

static void ws_send_text(struct ws *w, const char *text)
{
    ws_send_frame(w, OP_TEXT, text, strlen(text), true);
}

static void ws_send_input(struct ws *w, const char *text)
{
    ws_send_frame(w, OP_BINARY, text, strlen(text), true);
}

static void ws_send_close(struct ws *w, int code)
{
    uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    ws_send_frame(w, OP_CLOSE, b, 2, true);
}

/* parse - one complete frame from the buffer: 1, or 0 when incomplete. A
 * server frame is never masked. */
static int parse(struct ws *w, struct frame *f)
{
    const uint8_t *b = (const uint8_t *)w->buf;
    if (w->len < 2)
        return 0;
    size_t h = 2;
    uint64_t len = b[1] & 0x7f;
    if (b[1] & 0x80)
        FAIL("the server sent a masked frame");
    if (b[0] & 0x70)
        FAIL("the server set reserved bits (0x%02x)", b[0]);
    if (len == 126) {
        if (w->len < 4)
            return 0;
        len = (uint64_t)b[2] << 8 | b[3];
        h = 4;
    } else if (len == 127) {
        if (w->len < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | b[2 + i];
        h = 10;
    }
    if (len > (16u << 20))
        FAIL("frame of %llu bytes", (unsigned long long)len);
    if (w->len < h + len)
        return 0;
    f->opcode = b[0] & 0x0f;
    f->fin = (b[0] & 0x80) != 0;
    if (f->opcode == OP_BINARY && len > 65536)
        FAIL("an output frame of %llu bytes (over the server's 64 KiB)", (unsigned long long)len);
    f->len = (size_t)len;
    f->data = xmalloc(f->len + 1);
    memcpy(f->data, w->buf + h, f->len);
    f->data[f->len] = '\0';
    memmove(w->buf, w->buf + h + len, w->len - h - len);
    w->len -= h + len;
    return 1;
}

/* ws_next - the next frame within timeout_ms: 1, 0 on timeout, -1 when the
 * connection ended. Binary payloads are appended to w->out, pings counted
 * (and answered when w->auto_pong), the close code kept. */
static int ws_next(struct ws *w, int timeout_ms, struct frame *f)
{
    double deadline = now_ms() + timeout_ms;
    memset(f, 0, sizeof(*f));
    for (;;) {
        if (parse(w, f)) {
            if (!f->fin || f->opcode == OP_CONT)
                FAIL("the server fragmented a message (opcode %d, fin %d)", f->opcode, f->fin);
            if (f->opcode == OP_BINARY) {
                w->out = xrealloc(w->out, w->out_len + f->len + 1);
                memcpy(w->out + w->out_len, f->data, f->len);
                w->out_len += f->len;
                w->out[w->out_len] = '\0';
            } else if (f->opcode == OP_PING) {
                w->pings++;
                if (w->auto_pong)
                    ws_send_frame(w, OP_PONG, f->data, f->len, true);
            } else if (f->opcode == OP_CLOSE) {
                w->close_code = f->len >= 2 ? ((uint8_t)f->data[0] << 8 | (uint8_t)f->data[1]) : 1005;
                snprintf(w->close_reason, sizeof(w->close_reason), "%s", f->len > 2 ? f->data + 2 : "");
            }
            return 1;
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            return 0;
        int r = fill(w, left);
        if (r < 0)
            return -1;
    }
}

/* ws_read_until - read frames until the output holds `needle`. */
static void ws_read_until(struct ws *w, const char *needle, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    while (w->out == NULL || memmem(w->out, w->out_len, needle, strlen(needle)) == NULL) {
        struct frame f;
        int left = (int)(deadline - now_ms());
        int r = left > 0 ? ws_next(w, left, &f) : 0;
        if (r == 0)
            FAIL("no \"%s\" in the output within %d ms; got %zu bytes: %s", needle, timeout_ms, w->out_len,
                 w->out ? w->out : "");
        if (r < 0)
            FAIL("the connection ended before \"%s\" came; got: %s", needle, w->out ? w->out : "");
        if (f.opcode == OP_CLOSE)
            FAIL("the server closed (%d '%s') before \"%s\" came", w->close_code, w->close_reason, needle);
        if (f.opcode == OP_TEXT)
            FAIL("unexpected text message: %s", f.data);
        frame_free(&f);
    }
}

static size_t count_of(const char *hay, size_t len, const char *needle)
{
    size_t n = 0, nlen = strlen(needle);
    for (const char *p = hay; p != NULL && (size_t)(p - hay) + nlen <= len;) {
        p = memmem(p, len - (size_t)(p - hay), needle, nlen);
        if (p != NULL) {
            n++;
            p += nlen;
        }
    }
    return n;
}

/* ws_read_count - read frames until the output holds `needle` `times`. */
static void ws_read_count(struct ws *w, const char *needle, size_t times, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    while (w->out == NULL || count_of(w->out, w->out_len, needle) < times) {
        struct frame f;
        int left = (int)(deadline - now_ms());
        int r = left > 0 ? ws_next(w, left, &f) : 0;
        if (r <= 0 || f.opcode == OP_CLOSE || f.opcode == OP_TEXT) {
            const char *why = r == 0 ? "timeout" : "connection ended";
            if (r > 0)
                why = f.opcode == OP_CLOSE ? "closed" : "a text message";
            FAIL("\"%s\" not %zu times in the output (%s); got: %s", needle, times, why, w->out ? w->out : "");
        }
        frame_free(&f);
    }
}

/* ws_next_text - the next text message as JSON (other frames are taken in
 * along the way). */
static json_t *ws_next_text(struct ws *w, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        struct frame f;
        int left = (int)(deadline - now_ms());
        int r = left > 0 ? ws_next(w, left, &f) : 0;
        if (r <= 0)
            FAIL("no text message within %d ms (%s)", timeout_ms, r < 0 ? "connection ended" : "timeout");
        if (f.opcode == OP_CLOSE)
            FAIL("closed (%d '%s') before a text message", w->close_code, w->close_reason);
        if (f.opcode == OP_TEXT) {
            json_error_t jerr;
            json_t *j = json_loads(f.data, 0, &jerr);
            if (j == NULL)
                FAIL("text message is not JSON: %s", f.data);
            frame_free(&f);
            return j;
        }
        frame_free(&f);
    }
}

/* ws_expect_close - frames until the server's close frame (whose code is
 * returned); answers it and checks that the server then ends the TCP
 * connection. */
static int ws_expect_close(struct ws *w, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        struct frame f;
        int left = (int)(deadline - now_ms());
        int r = left > 0 ? ws_next(w, left, &f) : 0;
        if (r == 0)
            FAIL("no close frame within %d ms", timeout_ms);
        if (r < 0)
            FAIL("the connection ended without a close frame");
        int op = f.opcode;
        frame_free(&f);
        if (op == OP_CLOSE)
            break;
    }
    ws_send_close(w, w->close_code == 1005 ? 1000 : w->close_code);
    struct frame f;
    int r = ws_next(w, 3000, &f);
    if (r != -1)
        FAIL("the server did not end the connection after the close handshake (got %s)",
             r == 0 ? "nothing" : "another frame");
    return w->close_code;
}

/* ws_close_handshake - the client closes first; every frame the server
 * sent before its close is taken in. */
static void ws_close_handshake(struct ws *w)
{
    ws_send_close(w, 1000);
    double deadline = now_ms() + 5000;
    for (;;) {
        struct frame f;
        int left = (int)(deadline - now_ms());
        int r = left > 0 ? ws_next(w, left, &f) : 0;
        if (r <= 0)
            FAIL("no close frame in answer to ours (%s)", r < 0 ? "connection ended" : "timeout");
        int op = f.opcode;
        frame_free(&f);
        if (op == OP_CLOSE)
            break;
    }
    ASSERT_EQ_INT(w->close_code, 1000);
    struct frame f;
    ASSERT_EQ_INT(ws_next(w, 3000, &f), -1);
}

static void exec_state(const struct skiffd *s, const char *sb, const char *ex, const char *want)
{
    char path[256];
    struct resp r;
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s", sb, ex);
    api(s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), want);
    resp_free(&r);
}

/* ---- tests ---------------------------------------------------------------------------- */

/* Input typed into the WebSocket reaches the shell, its output comes back;
 * the handshake answer is RFC 6455's. */
TEST(attach_runs_a_command_in_the_shell)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64], path[512];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/attach", sb, ex);
    struct ws w;
    char *head = NULL;
    ws_open(&s, path, RFC_KEY, &w, &head);
    struct resp hr = {.head = head};
    ASSERT_EQ_STR(resp_header(&hr, "Sec-WebSocket-Accept"), RFC_ACCEPT);
    ASSERT_TRUE(strcasecmp(resp_header(&hr, "Upgrade"), "websocket") == 0);
    ASSERT_EQ_STR(resp_header(&hr, "X-Skiff-Exec"), ex);
    ASSERT_EQ_STR(resp_header(&hr, "X-Skiff-Offset"), "0");
    free(head);
    ws_send_input(&w, "echo hi\n");
    /* twice: the terminal's echo of "echo hi", then the command's output
     * (when the input arrives before the shell reads, the prompt may come
     * in between: do not rely on line starts) */
    ws_read_count(&w, "hi", 2, 10000);
    ws_send_input(&w, "echo $((6*7))\n");
    ws_read_until(&w, "42", 10000);
    ws_close_handshake(&w);
    ws_free(&w);
    /* closing the terminal does not end the shell */
    exec_state(&s, sb, ex, "running");

    /* input sent right behind the handshake (read by the HTTP server along
     * with the request) is not lost */
    ws_open_early(&s, path, RFC_KEY, "echo $((5*5))\n", &w, &head);
    free(head);
    ws_read_until(&w, "25", 10000);
    ws_close_handshake(&w);
    ws_free(&w);
    skiffd_finish(&s);
}

/* A resize message changes the terminal's size as the shell sees it. */
TEST(resize_changes_the_terminal_size)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w);
    ws_send_input(&w, "stty size\n");
    ws_read_until(&w, "24 80", 10000);
    ws_send_text(&w, "{\"type\": \"resize\", \"rows\": 33, \"cols\": 101}");
    ws_send_input(&w, "stty size\n");
    ws_read_until(&w, "33 101", 10000);
    /* a bad control message is answered, and the session goes on */
    ws_send_text(&w, "{\"type\": \"resize\", \"rows\": 0, \"cols\": 10}");
    json_t *e = ws_next_text(&w, 5000);
    ASSERT_EQ_STR(json_string_value(json_object_get(e, "type")), "error");
    ASSERT_EQ_STR(json_string_value(json_object_get(e, "code")), "invalid_argument");
    ASSERT_CONTAINS(json_string_value(json_object_get(e, "message")), "rows");
    json_decref(e);
    ws_send_text(&w, "not json");
    e = ws_next_text(&w, 5000);
    ASSERT_EQ_STR(json_string_value(json_object_get(e, "code")), "invalid_json");
    json_decref(e);
    ws_send_text(&w, "{\"type\": \"dance\"}");
    e = ws_next_text(&w, 5000);
    ASSERT_EQ_STR(json_string_value(json_object_get(e, "type")), "error");
    json_decref(e);
    ws_send_input(&w, "echo $((6*7))\n");
    ws_read_until(&w, "42", 10000);
    ws_close_handshake(&w);
    ws_free(&w);
    skiffd_finish(&s);
}

/* An idle session whose client answers pings stays up; one whose client
 * does not is closed after three intervals. */
TEST(idle_session_is_kept_alive_by_pongs)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, "?ping_ms=100", &w);
    double until = now_ms() + 1000;
    while (now_ms() < until) {
        struct frame f;
        int r = ws_next(&w, (int)(until - now_ms()) + 1, &f);
        if (r < 0)
            FAIL("connection ended while idle with pongs after %d pings", w.pings);
        if (r > 0 && f.opcode == OP_CLOSE)
            FAIL("closed while idle with pongs (%d '%s') after %d pings", w.close_code, w.close_reason, w.pings);
        if (r > 0)
            frame_free(&f);
    }
    ASSERT_GE_INT(w.pings, 6);
    ASSERT_LE_INT(w.pings, 12);
    /* and it still works */
    ws_send_input(&w, "echo $((40+2))\n");
    ws_read_until(&w, "42", 10000);
    ws_close_handshake(&w);
    ws_free(&w);

    /* a client that does not answer */
    ws_attach(&s, sb, ex, "?ping_ms=100", &w);
    w.auto_pong = false;
    double t0 = now_ms();
    int code = 0;
    for (;;) {
        struct frame f;
        int r = ws_next(&w, 5000, &f);
        if (r == 0)
            FAIL("still open %.0f ms after the last pong was due (%d pings)", now_ms() - t0, w.pings);
        if (r < 0) {
            code = -1;
            break;
        }
        int op = f.opcode;
        frame_free(&f);
        if (op == OP_CLOSE) {
            code = w.close_code;
            break;
        }
    }
    double took = now_ms() - t0;
    ASSERT_EQ_INT(code, 1001);
    ASSERT_CONTAINS(w.close_reason, "keepalive");
    ASSERT_GE_INT(took, 250);
    ASSERT_LE_INT(took, 1500);
    ASSERT_GE_INT(w.pings, 2);
    /* the server drops it without waiting for an answer */
    struct frame f;
    ASSERT_EQ_INT(ws_next(&w, 3000, &f), -1);
    ws_free(&w);
    exec_state(&s, sb, ex, "running");
    skiffd_finish(&s);
}

/* When the shell exits, a last text message says how, then a close. */
TEST(exit_message_carries_the_exit_code)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w);
    ws_send_input(&w, "echo bye-$((1+1))\n");
    ws_read_until(&w, "bye-2", 10000);
    ws_send_input(&w, "exit 5\n");
    json_t *m = ws_next_text(&w, 10000);
    ASSERT_EQ_STR(json_string_value(json_object_get(m, "type")), "exit");
    ASSERT_EQ_INT(json_integer_value(json_object_get(m, "exit_code")), 5);
    ASSERT_TRUE(json_is_integer(json_object_get(m, "exit_code")));
    ASSERT_TRUE(json_is_null(json_object_get(m, "signal")));
    json_decref(m);
    ASSERT_EQ_INT(ws_expect_close(&w, 5000), 1000);
    ws_free(&w);
    exec_state(&s, sb, ex, "exited");

    /* attaching to an ended exec replays its output, then the same end */
    ws_attach(&s, sb, ex, NULL, &w);
    m = ws_next_text(&w, 10000);
    ASSERT_EQ_STR(json_string_value(json_object_get(m, "type")), "exit");
    ASSERT_EQ_INT(json_integer_value(json_object_get(m, "exit_code")), 5);
    json_decref(m);
    ASSERT_TRUE(w.out != NULL && memmem(w.out, w.out_len, "bye-2", 5) != NULL);
    ASSERT_EQ_INT(ws_expect_close(&w, 5000), 1000);
    ws_free(&w);

    /* killed by a signal: exit_code null, the signal given */
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    ws_attach(&s, sb, ex, NULL, &w);
    ws_send_input(&w, "kill -9 $$\n");
    m = ws_next_text(&w, 10000);
    ASSERT_EQ_STR(json_string_value(json_object_get(m, "type")), "exit");
    ASSERT_EQ_INT(json_integer_value(json_object_get(m, "signal")), 9);
    ASSERT_EQ_INT(ws_expect_close(&w, 5000), 1000);
    ws_free(&w);
    /* the same outcome as the exec's record says */
    char path[256];
    struct resp r;
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s", sb, ex);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "signal")), 9);
    ASSERT_TRUE(json_equal(json_object_get(r.json, "exit_code"), json_object_get(m, "exit_code")));
    resp_free(&r);
    json_decref(m);
    skiffd_finish(&s);
}

/* A reattach from the byte count received so far continues exactly where
 * the first attachment stopped: nothing lost, nothing twice. */
TEST(reattach_with_offset_resumes_without_duplicates)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64], path[512];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w);
    ws_send_input(&w, "echo one-$((1+1))\n");
    ws_read_until(&w, "one-2", 10000);
    ws_close_handshake(&w);
    size_t first_len = w.out_len;
    char *first = xstrndup(w.out, w.out_len);
    ws_free(&w);

    /* more output while nobody is attached */
    struct resp r;
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/stdin", sb, ex);
    api(&s, "POST", path, "echo two-$((2+2))\n", 200, &r);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/output?follow=0", sb, ex);
    double deadline = now_ms() + 10000;
    for (;;) {
        api(&s, "GET", path, NULL, 200, &r);
        if (memmem(r.body, r.body_len, "two-4", 5) != NULL)
            break;
        resp_free(&r);
        if (now_ms() > deadline)
            FAIL("the second command's output never reached the output file");
        usleep(20000);
    }
    ASSERT_GT_INT(r.body_len, first_len);
    ASSERT_TRUE(memcmp(r.body, first, first_len) == 0);

    char q[64];
    snprintf(q, sizeof(q), "?offset=%zu", first_len);
    ws_attach(&s, sb, ex, q, &w);
    ws_read_until(&w, "two-4", 10000);
    /* exactly the bytes after the offset, as the file has them */
    ASSERT_LE_INT(w.out_len, r.body_len - first_len);
    ASSERT_TRUE(memcmp(w.out, r.body + first_len, w.out_len) == 0);
    ASSERT_TRUE(memmem(w.out, w.out_len, "one-2", 5) == NULL);
    ws_close_handshake(&w);
    ws_free(&w);
    resp_free(&r);
    free(first);
    skiffd_finish(&s);
}

/* Input for a process that does not read yet waits (the socket is not read
 * meanwhile) and arrives whole and in order, the eof after it. */
TEST(input_waits_for_a_slow_reader_without_loss)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, "{\"argv\": [\"sh\", \"-c\", \"stty -echo; echo ready; sleep 1; wc -c\"], \"pty\": true}", ex,
               sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w);
    ws_read_until(&w, "ready", 10000);
    /* 6 MiB in lines of 64 bytes: more than the exec's stdin buffer, the
     * terminal's and the sockets' together while the reader sleeps */
    int sndbuf = 64 * 1024;
    setsockopt(w.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    size_t total = 6u << 20, chunk = 64 * 1024;
    char *data = xmalloc(chunk);
    for (size_t i = 0; i < chunk; i++)
        data[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    double t0 = now_ms();
    for (size_t sent = 0; sent < total; sent += chunk)
        ws_send_frame(&w, OP_BINARY, data, chunk, true);
    free(data);
    ws_send_text(&w, "{\"type\": \"eof\"}");
    /* the sender was held back while the reader slept */
    ASSERT_GE_INT(now_ms() - t0, 300);
    json_t *m = ws_next_text(&w, 30000);
    ASSERT_EQ_STR(json_string_value(json_object_get(m, "type")), "exit");
    ASSERT_EQ_INT(json_integer_value(json_object_get(m, "exit_code")), 0);
    json_decref(m);
    char want[32];
    snprintf(want, sizeof(want), "%zu", total);
    ASSERT_CONTAINS(w.out, want);
    ASSERT_EQ_INT(ws_expect_close(&w, 5000), 1000);
    ws_free(&w);
    skiffd_finish(&s);
}

/* The HTTP idle timeout (for connections that send nothing) does not cut
 * an attached terminal: the session is the WebSocket's to keep alive. And
 * a burst of output arrives whole, in bounded frames. */
TEST(attached_session_outlives_the_http_idle_timeout)
{
    struct skiffd s;
    memset(&s, 0, sizeof(s));
    make_data_dir(&s);
    const char *const args[] = {"--idle-timeout", "1", NULL};
    skiffd_start_args(&s, args);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w); /* pings every 20 s: none in this test */
    double until = now_ms() + 2500;
    while (now_ms() < until) {
        struct frame f;
        int r = ws_next(&w, (int)(until - now_ms()) + 1, &f);
        if (r < 0 || (r > 0 && f.opcode == OP_CLOSE))
            FAIL("idle session cut within 2.5 s with an HTTP idle timeout of 1 s");
        if (r > 0)
            frame_free(&f); /* the prompt */
    }
    ASSERT_EQ_INT(w.pings, 0);
    ws_send_input(&w, "seq 1 30000; echo done-$((2*5))\n");
    ws_read_until(&w, "done-10", 20000);
    ASSERT_TRUE(memmem(w.out, w.out_len, "29999\r\n30000\r\n", 14) != NULL);
    ASSERT_GT_INT(w.out_len, 168000);
    ws_close_handshake(&w);
    ws_free(&w);
    skiffd_finish(&s);
}

/* Handshakes that are not WebSocket 13 with a key, or lack a token, get a
 * JSON error and no upgrade. */
TEST(bad_handshakes_get_json_errors)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64], path[512];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/attach", sb, ex);
    struct resp r;

    refused(&s, path, s.token, NULL, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    ASSERT_CONTAINS(err_message(&r), "Sec-WebSocket-Key");
    resp_free(&r);

    refused(&s, path, s.token, RFC_KEY, "8", NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    ASSERT_CONTAINS(err_message(&r), "version");
    ASSERT_EQ_STR(resp_header(&r, "Sec-WebSocket-Version"), "13");
    resp_free(&r);

    refused(&s, path, s.token, RFC_KEY, NULL, NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    resp_free(&r);

    refused(&s, path, s.token, "c2hvcnQ=", "13", NULL, &r); /* 5 bytes, not 16 */
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "Sec-WebSocket-Key");
    resp_free(&r);

    refused(&s, path, NULL, RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 401);
    ASSERT_EQ_STR(err_code(&r), "unauthenticated");
    resp_free(&r);

    refused(&s, path, "skf_not-a-real-token", RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 401);
    resp_free(&r);

    /* a plain GET, without Upgrade */
    request(&s, "GET", path, s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "WebSocket");
    resp_free(&r);

    /* bad query parameters */
    char q[600];
    snprintf(q, sizeof(q), "%s?ping_ms=10", path);
    refused(&s, q, s.token, RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "ping_ms");
    resp_free(&r);
    snprintf(q, sizeof(q), "%s?offset=-1", path);
    refused(&s, q, s.token, RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    resp_free(&r);

    /* the shell is untouched by all that */
    exec_state(&s, sb, ex, "running");
    skiffd_finish(&s);
}

/* Only a PTY exec can be attached; unknown ones are not found. */
TEST(attach_needs_an_existing_pty_exec)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64], path[512];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, "{\"argv\": [\"sleep\", \"30\"]}", ex, sizeof(ex));
    struct resp r;
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/attach", sb, ex);
    refused(&s, path, s.token, RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 409);
    ASSERT_EQ_STR(err_code(&r), "failed_precondition");
    ASSERT_CONTAINS(err_message(&r), "pty");
    resp_free(&r);

    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/ex-0123456789abcdef/attach", sb);
    refused(&s, path, s.token, RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);

    snprintf(path, sizeof(path), "/v1/sandboxes/sb-0123456789abcdef/execs/%s/attach", ex);
    refused(&s, path, s.token, RFC_KEY, "13", NULL, &r);
    ASSERT_EQ_INT(r.status, 404);
    resp_free(&r);
    skiffd_finish(&s);
}

/* Two terminals on one shell both see its output, and the daemon answers
 * other requests while they are attached. */
TEST(daemon_serves_others_while_attached)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64], path[512];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws a, b;
    ws_attach(&s, sb, ex, NULL, &a);
    ws_attach(&s, sb, ex, NULL, &b);
    ws_send_input(&a, "echo from-$((1+2))\n");
    ws_read_until(&a, "from-3", 10000);
    ws_read_until(&b, "from-3", 10000);
    ws_send_input(&b, "echo back-$((2+3))\n");
    ws_read_until(&a, "back-5", 10000);
    ws_read_until(&b, "back-5", 10000);

    struct resp r;
    api(&s, "GET", "/healthz", NULL, 200, &r);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", sb);
    api(&s, "POST", path, "{\"argv\": [\"echo\", \"meanwhile\"]}", 200, &r);
    ASSERT_EQ_STR(jstr(&r, "stdout"), "meanwhile\n");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s", sb);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    resp_free(&r);

    /* one goes, the other stays */
    ws_close_handshake(&a);
    ws_free(&a);
    ws_send_input(&b, "echo still-$((3+4))\n");
    ws_read_until(&b, "still-7", 10000);
    ws_close_handshake(&b);
    ws_free(&b);
    skiffd_finish(&s);
}

/* Frames a server must refuse: unmasked (1002) and over the size bound
 * (1009); the shell stays up. */
TEST(unmasked_and_oversized_frames_are_refused)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w);
    ws_send_frame(&w, OP_BINARY, "echo x\n", 7, false);
    ASSERT_EQ_INT(ws_expect_close(&w, 5000), 1002);
    ws_free(&w);

    ws_attach(&s, sb, ex, NULL, &w);
    /* the header of a 2 MiB frame and its first bytes: refused before the
     * rest arrives (and before 2 MiB are buffered) */
    uint8_t frame[14 + 8192] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4};
    send_all(w.fd, frame, sizeof(frame));
    double deadline = now_ms() + 5000;
    for (;;) {
        struct frame f;
        int r = ws_next(&w, (int)(deadline - now_ms()), &f);
        if (r <= 0)
            FAIL("no close frame for an oversized message (%s)", r < 0 ? "connection ended" : "timeout");
        int op = f.opcode;
        frame_free(&f);
        if (op == OP_CLOSE)
            break;
    }
    ASSERT_EQ_INT(w.close_code, 1009);
    ws_free(&w);
    exec_state(&s, sb, ex, "running");
    skiffd_finish(&s);
}

/* A graceful stop says goodbye to attached terminals (1001) and does not
 * wait for them to leave. */
TEST(shutdown_closes_attached_sessions)
{
    struct skiffd s;
    start(&s);
    char sb[64], ex[64];
    create_sandbox(&s, sb, sizeof(sb));
    start_exec(&s, sb, SHELL_EXEC, ex, sizeof(ex));
    struct ws w;
    ws_attach(&s, sb, ex, NULL, &w);
    ws_send_input(&w, "echo up-$((0+1))\n");
    ws_read_until(&w, "up-1", 10000);
    double t0 = now_ms();
    kill(s.pid, SIGTERM);
    for (;;) {
        struct frame f;
        int r = ws_next(&w, 5000, &f);
        if (r <= 0)
            FAIL("no close frame at shutdown (%s)", r < 0 ? "connection ended" : "timeout");
        int op = f.opcode;
        frame_free(&f);
        if (op == OP_CLOSE)
            break;
    }
    ASSERT_EQ_INT(w.close_code, 1001);
    ASSERT_CONTAINS(w.close_reason, "shutting down");
    int status = 0;
    while (waitpid(s.pid, &status, WNOHANG) == 0) {
        if (now_ms() - t0 > 4000)
            FAIL("skiffd still runs %.0f ms after SIGTERM with a terminal attached", now_ms() - t0);
        usleep(10000);
    }
    s.pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        _cleanup_free_ char *log = read_text(s.log);
        FAIL("skiffd ended with status 0x%x at SIGTERM; log:\n%s", status, log ? log : "");
    }
    ws_free(&w);
    skiffd_finish(&s);
}
