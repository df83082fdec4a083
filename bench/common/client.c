/* client.c - the bench programs' HTTP client, errors and statistics. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

/* Process-wide by nature: a signal handler can only reach a static flag, and
 * the progress settings are set once before any thread starts. */
static volatile sig_atomic_t g_stop;
static const char *g_name = "bench";
static bool g_quiet;
/* One message per thread, so that a load generator's workers do not
 * overwrite each other's reasons. */
static _Thread_local char t_err[1024];

int bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_err, sizeof(t_err), fmt, ap);
    va_end(ap);
    return -1;
}

const char *bench_error(void)
{
    return t_err;
}

void bench_progress_init(const char *name, bool quiet)
{
    g_name = name;
    g_quiet = quiet;
}

void bench_progress(const char *fmt, ...)
{
    if (g_quiet)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", g_name, line); /* one call: lines of threads do not mix */
}

static void on_signal(int signo)
{
    (void)signo;
    g_stop = 1;
}

void bench_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool bench_stopping(void)
{
    return g_stop != 0;
}

void bench_request_stop(void)
{
    g_stop = 1;
}

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    double h = p * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

struct bench_stats bench_stats_of(double *v, size_t n)
{
    struct bench_stats s = {.n = n};
    if (n == 0)
        return s;
    qsort(v, n, sizeof(double), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s.p50 = pct(v, n, 0.50);
    s.p95 = pct(v, n, 0.95);
    s.p99 = pct(v, n, 0.99);
    s.min = v[0];
    s.max = v[n - 1];
    s.mean = sum / (double)n;
    return s;
}

json_t *bench_ms_json(double v)
{
    return json_real(round(v * 1000.0) / 1000.0);
}

json_t *bench_stats_json(const struct bench_stats *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    if (s->n == 0)
        return o;
    json_object_set_new(o, "p50", bench_ms_json(s->p50));
    json_object_set_new(o, "p95", bench_ms_json(s->p95));
    json_object_set_new(o, "p99", bench_ms_json(s->p99));
    json_object_set_new(o, "min", bench_ms_json(s->min));
    json_object_set_new(o, "max", bench_ms_json(s->max));
    json_object_set_new(o, "mean", bench_ms_json(s->mean));
    return o;
}

/* ---- the HTTP client ---- */

void bench_conn_init(struct bench_conn *c, int port, const char *token)
{
    *c = (struct bench_conn){.port = port, .token = token, .fd = -1, .cap = 65536};
    c->buf = xmalloc(c->cap);
}

void bench_conn_close(struct bench_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->start = c->end = 0;
}

void bench_conn_release(struct bench_conn *c)
{
    bench_conn_close(c);
    free(c->buf);
    c->buf = NULL;
}

void bench_resp_free(struct bench_resp *r)
{
    free(r->body);
    if (r->json != NULL)
        json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int conn_open(struct bench_conn *c)
{
    bench_conn_close(c);
    c->fd = tcp_connect(c->port);
    if (c->fd < 0)
        return bench_fail("connect to 127.0.0.1:%d: %s", c->port, strerror(errno));
    return 0;
}

/* conn_fill - read more into the buffer. Returns the bytes read, 0 at EOF,
 * -1 on error, timeout or interruption. */
static ssize_t conn_fill(struct bench_conn *c, double deadline)
{
    if (c->start == c->end)
        c->start = c->end = 0;
    if (c->end == c->cap) {
        if (c->start > 0) {
            memmove(c->buf, c->buf + c->start, c->end - c->start);
            c->end -= c->start;
            c->start = 0;
        } else {
            c->cap *= 2;
            c->buf = xrealloc(c->buf, c->cap);
        }
    }
    for (;;) {
        if (g_stop)
            return bench_fail("interrupted");
        double left = deadline - bench_now_ms();
        if (left <= 0)
            return bench_fail("no answer within %.0f s", BENCH_REQUEST_TIMEOUT_MS / 1000);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        /* at most 200 ms at a time, so that a stop request is seen soon */
        int r = poll(&p, 1, left < 200 ? (int)left + 1 : 200);
        if (r < 0 && errno != EINTR)
            return bench_fail("poll: %s", strerror(errno));
        if (r <= 0)
            continue;
        ssize_t n = read(c->fd, c->buf + c->end, c->cap - c->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return bench_fail("read: %s", strerror(errno));
        c->end += (size_t)n;
        return n;
    }
}

static void body_append(struct bench_resp *r, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (r->first_byte_ms == 0)
        r->first_byte_ms = bench_now_ms();
    if (r->len + n + 1 > r->cap) {
        r->cap = r->cap ? r->cap : 4096;
        while (r->len + n + 1 > r->cap)
            r->cap *= 2;
        r->body = xrealloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
}

/* read_exact - move n body bytes from the connection into r. */
static int read_exact(struct bench_conn *c, struct bench_resp *r, size_t n, double deadline)
{
    while (n > 0) {
        if (c->start == c->end) {
            ssize_t got = conn_fill(c, deadline);
            if (got < 0)
                return -1;
            if (got == 0)
                return bench_fail("connection closed in the middle of a body");
        }
        size_t take = c->end - c->start < n ? c->end - c->start : n;
        body_append(r, c->buf + c->start, take);
        c->start += take;
        n -= take;
    }
    return 0;
}

/* read_line - the next CRLF-terminated line (without it) into line[size]. */
static int read_line(struct bench_conn *c, char *line, size_t size, double deadline)
{
    for (;;) {
        char *eol = memmem(c->buf + c->start, c->end - c->start, "\r\n", 2);
        if (eol != NULL) {
            size_t len = (size_t)(eol - (c->buf + c->start));
            if (len >= size)
                return bench_fail("line of %zu bytes in a chunked body", len);
            memcpy(line, c->buf + c->start, len);
            line[len] = '\0';
            c->start += len + 2;
            return 0;
        }
        ssize_t got = conn_fill(c, deadline);
        if (got < 0)
            return -1;
        if (got == 0)
            return bench_fail("connection closed in the middle of a chunked body");
    }
}

/* header_value - the value of header `name` in head (NUL-terminated), or NULL. */
static const char *header_value(const char *head, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t len = strcspn(v, "\r");
            snprintf(out, size, "%.*s", (int)len, v);
            return out;
        }
    }
    return NULL;
}

/* read_response - one answer, body included. Returns 0; -1 with the error
 * set; -2 when the connection ended before any byte of the answer (a
 * kept-alive connection the server had closed: the caller may retry once). */
static int read_response(struct bench_conn *c, struct bench_resp *r, bool head_only)
{
    double deadline = bench_now_ms() + BENCH_REQUEST_TIMEOUT_MS;
    char *end;
    while ((end = memmem(c->buf + c->start, c->end - c->start, "\r\n\r\n", 4)) == NULL) {
        size_t had = c->end - c->start;
        ssize_t got = conn_fill(c, deadline);
        if (got < 0)
            return -1;
        if (got == 0)
            return had == 0 ? -2 : bench_fail("connection closed in the middle of the headers");
    }
    size_t head_len = (size_t)(end - (c->buf + c->start)) + 2;
    _cleanup_free_ char *head = xstrndup(c->buf + c->start, head_len);
    c->start += head_len + 2;
    if (sscanf(head, "HTTP/1.%*d %d", &r->status) != 1)
        return bench_fail("bad status line: %.80s", head);
    char v[256];
    long long content_length = -1;
    bool chunked = false;
    if (header_value(head, "Content-Length", v, sizeof(v)) != NULL)
        content_length = atoll(v);
    if (header_value(head, "Transfer-Encoding", v, sizeof(v)) != NULL)
        chunked = strcasestr(v, "chunked") != NULL;
    if (header_value(head, "Connection", v, sizeof(v)) != NULL)
        r->close = strcasestr(v, "close") != NULL;
    if (head_only || r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200))
        return 0;
    if (chunked) {
        char line[256];
        for (;;) {
            if (read_line(c, line, sizeof(line), deadline) < 0)
                return -1;
            char *tail = NULL;
            unsigned long long size = strtoull(line, &tail, 16);
            if (tail == line)
                return bench_fail("bad chunk size line '%.40s'", line);
            if (size == 0)
                break;
            if (read_exact(c, r, (size_t)size, deadline) < 0 || read_line(c, line, sizeof(line), deadline) < 0)
                return -1;
        }
        do { /* trailers, up to the empty line */
            if (read_line(c, line, sizeof(line), deadline) < 0)
                return -1;
        } while (line[0] != '\0');
    } else if (content_length >= 0) {
        if (read_exact(c, r, (size_t)content_length, deadline) < 0)
            return -1;
    } else {
        for (;;) { /* until EOF */
            if (c->start < c->end) {
                body_append(r, c->buf + c->start, c->end - c->start);
                c->start = c->end;
            }
            ssize_t got = conn_fill(c, deadline);
            if (got < 0)
                return -1;
            if (got == 0)
                break;
        }
        r->close = true;
    }
    return 0;
}

static int write_iov(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        if (g_stop)
            return bench_fail("interrupted");
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return bench_fail("send: %s", strerror(errno));
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

int bench_http(struct bench_conn *c, const char *method, const char *path, const char *ctype, const void *body,
               size_t len, struct bench_resp *r)
{
    memset(r, 0, sizeof(*r));
    bool with_body = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    char head[1024];
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
    if (c->token != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Authorization: Bearer %s\r\n", c->token);
    if (with_body)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      ctype ? ctype : "application/json", len);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (n >= (int)sizeof(head))
        return bench_fail("request head too long for %s", path);
    for (int attempt = 0;; attempt++) {
        bool fresh = c->fd < 0;
        if (fresh && conn_open(c) < 0)
            return -1;
        struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, body ? len : 0}};
        int sent = write_iov(c->fd, iov, body && len ? 2 : 1);
        int got = read_response(c, r, strcmp(method, "HEAD") == 0);
        if (got == -2 && !fresh && attempt == 0) {
            bench_conn_close(c); /* the server had closed the idle connection */
            bench_resp_free(r);
            continue;
        }
        if (got < 0) {
            if (got == -2)
                bench_fail("connection closed without an answer%s", sent < 0 ? " (send failed)" : "");
            bench_conn_close(c);
            bench_resp_free(r);
            return -1;
        }
        break;
    }
    if (r->close)
        bench_conn_close(c);
    if (r->len > 0 && r->body[0] == '{')
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

const char *bench_resp_error(const struct bench_resp *r)
{
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    const char *msg = e ? json_string_value(json_object_get(e, "message")) : NULL;
    return msg ? msg : r->body ? r->body : "";
}

const char *bench_resp_code(const struct bench_resp *r)
{
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    const char *code = e ? json_string_value(json_object_get(e, "code")) : NULL;
    return code ? code : "";
}

int bench_call(struct bench_conn *c, const char *method, const char *path, const char *ctype, const void *body,
               size_t len, int want, struct bench_resp *r)
{
    if (bench_http(c, method, path, ctype, body, len, r) < 0) {
        char why[1024];
        snprintf(why, sizeof(why), "%s", bench_error());
        return bench_fail("%s %s: %s", method, path, why);
    }
    bool ok = want ? r->status == want : r->status >= 200 && r->status < 300;
    if (!ok) {
        bench_fail("%s %s: status %d, want %d: %.300s", method, path, r->status, want, bench_resp_error(r));
        bench_resp_free(r);
        return -1;
    }
    return 0;
}

int bench_call_json(struct bench_conn *c, const char *method, const char *path, const char *json, int want,
                    struct bench_resp *r)
{
    return bench_call(c, method, path, "application/json", json, json ? strlen(json) : 0, want, r);
}

int bench_sandbox_create(struct bench_conn *c, const char *body, char id[BENCH_ID_MAX])
{
    struct bench_resp r;
    id[0] = '\0';
    if (bench_call_json(c, "POST", "/v1/sandboxes", body ? body : "{}", 201, &r) < 0)
        return -1;
    snprintf(id, BENCH_ID_MAX, "%s", bench_jstr(&r, "id"));
    bool running = strcmp(bench_jstr(&r, "state"), "running") == 0;
    bench_resp_free(&r);
    if (id[0] == '\0' || !running)
        return bench_fail("POST /v1/sandboxes: no id or not running");
    return 0;
}

int bench_sandbox_terminate(struct bench_conn *c, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/terminate", id);
    struct bench_resp r;
    if (bench_call_json(c, "POST", path, NULL, 200, &r) < 0)
        return -1;
    bench_resp_free(&r);
    return 0;
}

const char *bench_jstr(const struct bench_resp *r, const char *key)
{
    const char *v = r->json ? json_string_value(json_object_get(r->json, key)) : NULL;
    return v ? v : "";
}

bool bench_healthy(int port)
{
    struct bench_conn c;
    bench_conn_init(&c, port, NULL);
    struct bench_resp r;
    bool ok = bench_http(&c, "GET", "/healthz", NULL, NULL, 0, &r) == 0 && r.status == 200;
    bench_resp_free(&r);
    bench_conn_release(&c);
    return ok;
}
