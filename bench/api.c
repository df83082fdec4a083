/* api.c - what a client of skiffd waits for, measured through the HTTP API.
 *
 * Starts the real skiffd (BUILD/skiffd next to BUILD/bench/api) on a free
 * loopback port with a temporary data directory under /var/tmp, talks to it
 * over ONE keep-alive HTTP/1.1 connection with a minimal client written here
 * (plain socket, TCP_NODELAY, Content-Length and chunked bodies, JSON by
 * jansson), and measures, sequentially:
 *
 *  1. Time to first output, over N sandboxes each (interleaved, so load
 *     drift hits both alike; each sandbox is terminated after, untimed):
 *       exec_stream  POST /v1/sandboxes, POST .../execs {"argv":["echo","ok"]},
 *                    GET .../execs/{e}/output: from before the create to the
 *                    moment the first byte of "ok" is read off the stream;
 *       run          POST /v1/sandboxes, POST .../run {"argv":["echo","ok"]}:
 *                    from before the create to the complete answer.
 *  2. Exec round trip in one running sandbox, E times each (interleaved):
 *       run          POST .../run {"argv":["true"]} to the complete answer;
 *       exec_stream  POST .../execs {"argv":["true"]} + GET .../output read
 *                    to its end (the exec has exited).
 *  3. Bulk upload, R repetitions each (median reported; small files first,
 *     then big, tar and per file alternating within each size), into
 *     a fresh directory of one sandbox, removed after each repetition:
 *       tar_small    PUT .../files/tar?path=DIR, 1,000 files of 1 KiB;
 *       tar_big      PUT .../files/tar?path=DIR, one file of B MB;
 *       put_small    PUT .../files?path=DIR/f (one request per file), 200 x 1 KiB;
 *       put_big      PUT .../files?path=DIR/f, one file of B MB.
 *     The tars are built in memory by libarchive (pax restricted = ustar). The tar
 *     endpoint is probed first with an empty body: 404 or 405 means this
 *     skiffd has no tar upload, and both tar cases are "unavailable".
 *
 * Usage: api [-n N] [-e E] [-r R] [-b MB] [-s SKIFFD] [-q] [--json]
 *   -n N      sandboxes per first-output variant (200)
 *   -e E      round trips per exec variant (500)
 *   -r R      repetitions per upload case (5)
 *   -b MB     size of the single big file, in 10^6 bytes (100)
 *   -s PATH   the skiffd to start (default: ../skiffd from this program)
 *   -q        no progress lines on stderr
 *   --json    print one JSON object on stdout instead of the table
 *
 * Times are CLOCK_MONOTONIC, in ms; percentiles interpolate linearly between
 * closest ranks (as spawnbench and numpy). MB is 10^6 bytes. Exit status 0
 * when every measurement ran (an unavailable tar endpoint included), 1 when
 * skiffd could not be started or a request failed (the reason on stderr),
 * 2 for a bad command line. skiffd is stopped (SIGTERM, by pid) and the
 * temporary directory removed on every path, SIGINT/SIGTERM included; if
 * this program is killed outright, skiffd gets SIGTERM (PR_SET_PDEATHSIG). */
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

#define REQUEST_TIMEOUT_MS 60000.0
#define SMALL_FILES 1000
#define PUT_FILES 200
#define SMALL_SIZE 1024
#define MB 1e6

static volatile sig_atomic_t g_stop;
static char g_err[1024];
static bool g_quiet;

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof(g_err), fmt, ap);
    va_end(ap);
    return -1;
}

__attribute__((format(printf, 1, 2))) static void progress(const char *fmt, ...)
{
    if (g_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("api: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void on_signal(int signo)
{
    (void)signo;
    g_stop = 1;
}

/* ---- statistics ------------------------------------------------------------------ */

struct stats {
    size_t n;
    double p50, p95, p99, min, max, mean;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* pct - linear interpolation between closest ranks of sorted[0..n). */
static double pct(const double *sorted, size_t n, double p)
{
    double h = p * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

/* stats_of - sorts v in place. */
static struct stats stats_of(double *v, size_t n)
{
    struct stats s = {.n = n};
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

static json_t *jms(double v)
{
    return json_real(round(v * 1000.0) / 1000.0);
}

static json_t *stats_json(const struct stats *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    json_object_set_new(o, "p50", jms(s->p50));
    json_object_set_new(o, "p95", jms(s->p95));
    json_object_set_new(o, "p99", jms(s->p99));
    json_object_set_new(o, "min", jms(s->min));
    json_object_set_new(o, "max", jms(s->max));
    json_object_set_new(o, "mean", jms(s->mean));
    return o;
}

/* ---- a minimal keep-alive HTTP/1.1 client -------------------------------------------- */

struct conn {
    int port;
    const char *token;
    int fd;
    char *buf; /* unread bytes are buf[start..end) */
    size_t cap, start, end;
};

struct resp {
    int status;
    bool close; /* the server closes the connection after this answer */
    char *body;
    size_t len, cap;
    double first_byte_ms; /* when the first body byte was read (0: none) */
    json_t *json;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    if (r->json != NULL)
        json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->start = c->end = 0;
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
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int conn_open(struct conn *c)
{
    conn_close(c);
    c->fd = tcp_connect(c->port);
    if (c->fd < 0)
        return fail("connect to 127.0.0.1:%d: %s", c->port, strerror(errno));
    return 0;
}

/* conn_fill - read more into the buffer. Returns the bytes read, 0 at EOF,
 * -1 on error, timeout or interruption. */
static ssize_t conn_fill(struct conn *c, double deadline)
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
            return fail("interrupted");
        double left = deadline - now_ms();
        if (left <= 0)
            return fail("no answer within %.0f s", REQUEST_TIMEOUT_MS / 1000);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left + 1);
        if (r < 0 && errno != EINTR)
            return fail("poll: %s", strerror(errno));
        if (r <= 0)
            continue;
        ssize_t n = read(c->fd, c->buf + c->end, c->cap - c->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return fail("read: %s", strerror(errno));
        c->end += (size_t)n;
        return n;
    }
}

static void body_append(struct resp *r, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (r->first_byte_ms == 0)
        r->first_byte_ms = now_ms();
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
static int read_exact(struct conn *c, struct resp *r, size_t n, double deadline)
{
    while (n > 0) {
        if (c->start == c->end) {
            ssize_t got = conn_fill(c, deadline);
            if (got < 0)
                return -1;
            if (got == 0)
                return fail("connection closed in the middle of a body");
        }
        size_t take = c->end - c->start < n ? c->end - c->start : n;
        body_append(r, c->buf + c->start, take);
        c->start += take;
        n -= take;
    }
    return 0;
}

/* read_line - the next CRLF-terminated line (without it) into line[size]. */
static int read_line(struct conn *c, char *line, size_t size, double deadline)
{
    for (;;) {
        char *eol = memmem(c->buf + c->start, c->end - c->start, "\r\n", 2);
        if (eol != NULL) {
            size_t len = (size_t)(eol - (c->buf + c->start));
            if (len >= size)
                return fail("line of %zu bytes in a chunked body", len);
            memcpy(line, c->buf + c->start, len);
            line[len] = '\0';
            c->start += len + 2;
            return 0;
        }
        ssize_t got = conn_fill(c, deadline);
        if (got < 0)
            return -1;
        if (got == 0)
            return fail("connection closed in the middle of a chunked body");
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

/* read_response - one answer, body included. Returns 0; -1 with g_err set;
 * -2 when the connection ended before any byte of the answer (a kept-alive
 * connection the server had closed: the caller may retry once). */
static int read_response(struct conn *c, struct resp *r, bool head_only)
{
    double deadline = now_ms() + REQUEST_TIMEOUT_MS;
    char *end;
    while ((end = memmem(c->buf + c->start, c->end - c->start, "\r\n\r\n", 4)) == NULL) {
        size_t had = c->end - c->start;
        ssize_t got = conn_fill(c, deadline);
        if (got < 0)
            return -1;
        if (got == 0)
            return had == 0 ? -2 : fail("connection closed in the middle of the headers");
    }
    size_t head_len = (size_t)(end - (c->buf + c->start)) + 2;
    _cleanup_free_ char *head = xstrndup(c->buf + c->start, head_len);
    c->start += head_len + 2;
    if (sscanf(head, "HTTP/1.%*d %d", &r->status) != 1)
        return fail("bad status line: %.80s", head);
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
                return fail("bad chunk size line '%.40s'", line);
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
            return fail("interrupted");
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return fail("send: %s", strerror(errno));
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

/* http - one request and its whole answer, on the kept-alive connection
 * (opened or reopened as needed). A body is sent for POST and PUT (a
 * Content-Length of 0 when `body` is NULL). */
static int http(struct conn *c, const char *method, const char *path, const char *ctype, const void *body, size_t len,
                struct resp *r)
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
        return fail("request head too long for %s", path);
    for (int attempt = 0;; attempt++) {
        bool fresh = c->fd < 0;
        if (fresh && conn_open(c) < 0)
            return -1;
        struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, body ? len : 0}};
        int sent = write_iov(c->fd, iov, body && len ? 2 : 1);
        int got = read_response(c, r, strcmp(method, "HEAD") == 0);
        if (got == -2 && !fresh && attempt == 0) {
            conn_close(c); /* the server had closed the idle connection */
            resp_free(r);
            continue;
        }
        if (got < 0) {
            if (got == -2)
                fail("connection closed without an answer%s", sent < 0 ? " (send failed)" : "");
            conn_close(c);
            resp_free(r);
            return -1;
        }
        break;
    }
    if (r->close)
        conn_close(c);
    if (r->len > 0 && r->body[0] == '{')
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

static const char *error_text(const struct resp *r)
{
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    const char *msg = e ? json_string_value(json_object_get(e, "message")) : NULL;
    return msg ? msg : r->body ? r->body : "";
}

/* call - a request whose answer must have status `want` (or any 2xx when
 * want is 0). */
static int call(struct conn *c, const char *method, const char *path, const char *ctype, const void *body, size_t len,
                int want, struct resp *r)
{
    if (http(c, method, path, ctype, body, len, r) < 0) {
        char why[sizeof(g_err)];
        snprintf(why, sizeof(why), "%s", g_err);
        return fail("%s %s: %s", method, path, why);
    }
    bool ok = want ? r->status == want : r->status >= 200 && r->status < 300;
    if (!ok) {
        fail("%s %s: status %d, want %d: %.300s", method, path, r->status, want, error_text(r));
        resp_free(r);
        return -1;
    }
    return 0;
}

static int call_json(struct conn *c, const char *method, const char *path, const char *json, int want, struct resp *r)
{
    return call(c, method, path, "application/json", json, json ? strlen(json) : 0, want, r);
}

static const char *jstr(const struct resp *r, const char *key)
{
    const char *v = r->json ? json_string_value(json_object_get(r->json, key)) : NULL;
    return v ? v : "";
}

/* ---- skiffd ---------------------------------------------------------------------- */

struct daemon {
    pid_t pid;
    int port;
    char dir[PATH_MAX];  /* the temporary directory: everything below it */
    char data[PATH_MAX]; /* --data-dir */
    char log[PATH_MAX];
    char token[256];
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static char *read_small(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, &len, NULL) < 0)
        return NULL;
    return text;
}

static bool healthy(int port)
{
    struct conn c = {.port = port, .token = NULL, .fd = -1, .cap = 4096};
    c.buf = xmalloc(c.cap);
    c.fd = tcp_connect(port);
    bool ok = false;
    if (c.fd >= 0) {
        struct resp r;
        ok = http(&c, "GET", "/healthz", NULL, NULL, 0, &r) == 0 && r.status == 200;
        resp_free(&r);
    }
    conn_close(&c);
    free(c.buf);
    return ok;
}

static int daemon_start(struct daemon *d, const char *skiffd)
{
    snprintf(d->dir, sizeof(d->dir), "/var/tmp/skiff-bench-api-XXXXXX");
    if (mkdtemp(d->dir) == NULL)
        return fail("mkdtemp '%s': %s", d->dir, strerror(errno));
    snprintf(d->data, sizeof(d->data), "%s/data", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/skiffd.log", d->dir);
    pid_t self = getpid();
    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = free_port();
        if (d->port < 0)
            return fail("no free port: %s", strerror(errno));
        char listen[64];
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", d->port);
        pid_t pid = fork();
        if (pid < 0)
            return fail("fork: %s", strerror(errno));
        if (pid == 0) {
            /* skiffd must not outlive the bench, however the bench ends */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != self)
                _exit(1);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGPIPE, SIG_DFL);
            int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(127);
            const char *const argv[] = {skiffd, "--listen", listen, "--data-dir", d->data, "--log-level", "info", NULL};
            execv(skiffd, (char *const *)argv);
            _exit(127);
        }
        d->pid = pid;
        double deadline = now_ms() + 15000;
        bool up = false;
        while (!g_stop && now_ms() < deadline) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                d->pid = 0;
                break;
            }
            if ((up = healthy(d->port)))
                break;
            usleep(20000);
        }
        if (d->pid == 0) {
            _cleanup_free_ char *log = read_small(d->log);
            if (log != NULL && strstr(log, "in use") != NULL)
                continue; /* the free port was taken meanwhile */
            return fail("%s exited at start-up: %s", skiffd, log ? log : "(no log)");
        }
        if (!up)
            return fail("%s did not answer /healthz within 15 s", skiffd);
        char path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/admin.token", d->data);
        _cleanup_free_ char *tok = read_small(path);
        if (tok == NULL)
            return fail("no '%s'", path);
        tok[strcspn(tok, "\r\n")] = '\0';
        snprintf(d->token, sizeof(d->token), "%s", tok);
        return 0;
    }
    return fail("could not start skiffd on a free port");
}

/* daemon_stop - SIGTERM by pid (SIGKILL after 15 s), then the cgroup parent
 * skiffd made for its sandboxes (empty once they are gone), then the whole
 * temporary directory. Returns 0 when skiffd exited 0. */
static int daemon_stop(struct daemon *d)
{
    int rc = 0;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        double deadline = now_ms() + 15000;
        int status = 0;
        pid_t w = 0;
        while ((w = waitpid(d->pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
            usleep(10000);
        if (w != d->pid) {
            fprintf(stderr, "api: skiffd (pid %d) did not stop within 15 s of SIGTERM: killed\n", (int)d->pid);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            rc = -1;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "api: skiffd stopped with status 0x%x\n", (unsigned)status);
            rc = -1;
        }
        d->pid = 0;
    }
    if (d->dir[0] == '\0')
        return rc;
    /* "cgroup driver 'v1' (... under '/sys/fs/cgroup/<ctrl>/skiff-1234abcd')" */
    _cleanup_free_ char *log = read_small(d->log);
    const char *p = log;
    while (p != NULL && (p = strstr(p, "/skiff-")) != NULL &&
           !(strspn(p + 7, "0123456789abcdef") == 8 && p[15] == '\''))
        p += 7; /* not the data directory's "/var/tmp/skiff-bench-api-..." */
    if (p != NULL) {
        char pattern[64];
        glob_t g;
        int removed = 0;
        const char *const where[] = {"/sys/fs/cgroup/*/skiff-%.8s", "/sys/fs/cgroup/skiff-%.8s"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(where); i++) {
            snprintf(pattern, sizeof(pattern), where[i], p + 7);
            if (glob(pattern, GLOB_ONLYDIR, NULL, &g) != 0)
                continue;
            for (size_t k = 0; k < g.gl_pathc; k++) {
                if (rmdir(g.gl_pathv[k]) == 0)
                    removed++;
                else if (errno != ENOENT)
                    fprintf(stderr, "api: cgroup '%s' left behind: %s\n", g.gl_pathv[k], strerror(errno));
            }
            globfree(&g);
        }
        progress("removed skiffd's cgroup 'skiff-%.8s' from %d hierarchies", p + 7, removed);
    }
    if (rc != 0 && log != NULL)
        fprintf(stderr, "api: skiffd log:\n%s\n", log);
    struct sk_error err = {0};
    if (sk_remove_tree(d->dir, &err) < 0)
        fprintf(stderr, "api: could not remove '%s': %s\n", d->dir, err.msg);
    d->dir[0] = '\0';
    return rc;
}

/* ---- sandboxes ------------------------------------------------------------------- */

#define ID_MAX 64

static int sb_create(struct conn *c, char id[ID_MAX])
{
    struct resp r;
    if (call_json(c, "POST", "/v1/sandboxes", "{}", 201, &r) < 0)
        return -1;
    snprintf(id, ID_MAX, "%s", jstr(&r, "id"));
    bool running = strcmp(jstr(&r, "state"), "running") == 0;
    resp_free(&r);
    if (id[0] == '\0' || !running)
        return fail("POST /v1/sandboxes: no id or not running");
    return 0;
}

static int sb_terminate(struct conn *c, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/terminate", id);
    struct resp r;
    if (call_json(c, "POST", path, NULL, 200, &r) < 0)
        return -1;
    resp_free(&r);
    return 0;
}

/* exec_start - POST .../execs; the exec id into eid. */
static int exec_start(struct conn *c, const char *id, const char *body, char eid[ID_MAX])
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", id);
    struct resp r;
    if (call_json(c, "POST", path, body, 201, &r) < 0)
        return -1;
    snprintf(eid, ID_MAX, "%s", jstr(&r, "id"));
    resp_free(&r);
    return eid[0] ? 0 : fail("POST %s: no exec id", path);
}

/* exec_output - GET .../output, followed to the exec's end. */
static int exec_output(struct conn *c, const char *id, const char *eid, struct resp *r)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/output", id, eid);
    return call(c, "GET", path, NULL, NULL, 0, 200, r);
}

/* run - POST .../run; checks exit code 0 and the expected stdout. */
static int run(struct conn *c, const char *id, const char *body, const char *want_stdout)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    struct resp r;
    if (call_json(c, "POST", path, body, 200, &r) < 0)
        return -1;
    json_t *code = json_object_get(r.json, "exit_code");
    int rc = 0;
    if (!json_is_integer(code) || json_integer_value(code) != 0 || strcmp(jstr(&r, "stdout"), want_stdout) != 0)
        rc = fail("POST %s: unexpected answer %.300s", path, r.body ? r.body : "");
    resp_free(&r);
    return rc;
}

/* ---- 1: create -> first output ------------------------------------------------------ */

/* one_stream - create, start echo ok, read its output: ms to the first byte. */
static int one_stream(struct conn *c, double *total, double *t_create, double *t_first)
{
    char id[ID_MAX], eid[ID_MAX];
    struct resp r;
    double t0 = now_ms();
    if (sb_create(c, id) < 0)
        return -1;
    double t1 = now_ms();
    if (exec_start(c, id, "{\"argv\":[\"echo\",\"ok\"]}", eid) < 0 || exec_output(c, id, eid, &r) < 0)
        return -1;
    double t2 = r.first_byte_ms; /* taken as the first body byte is read */
    bool ok = r.len == 3 && memcmp(r.body, "ok\n", 3) == 0;
    if (!ok)
        fail("exec of echo ok streamed %zu bytes: '%.40s'", r.len, r.body ? r.body : "");
    resp_free(&r);
    if (!ok)
        return -1;
    *total = t2 - t0;
    *t_create = t1 - t0;
    *t_first = t2 - t1;
    return sb_terminate(c, id);
}

static int one_run(struct conn *c, double *total, double *t_create, double *t_run)
{
    char id[ID_MAX];
    double t0 = now_ms();
    if (sb_create(c, id) < 0)
        return -1;
    double t1 = now_ms();
    if (run(c, id, "{\"argv\":[\"echo\",\"ok\"]}", "ok\n") < 0)
        return -1;
    double t2 = now_ms();
    *total = t2 - t0;
    *t_create = t1 - t0;
    *t_run = t2 - t1;
    return sb_terminate(c, id);
}

static int bench_first_output(struct conn *c, size_t n, json_t *out, struct stats *s_stream, struct stats *s_run)
{
    double *stream = xcalloc(n, sizeof(double)), *s_create = xcalloc(n, sizeof(double));
    double *s_first = xcalloc(n, sizeof(double));
    double *runv = xcalloc(n, sizeof(double)), *r_create = xcalloc(n, sizeof(double));
    double *r_run = xcalloc(n, sizeof(double));
    double dummy[3];
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) /* warm-ups */
        if (one_stream(c, &dummy[0], &dummy[1], &dummy[2]) < 0 || one_run(c, &dummy[0], &dummy[1], &dummy[2]) < 0)
            rc = -1;
    double started = now_ms();
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* alternate which goes first, so neither always follows the other's teardown */
        for (int k = 0; k < 2 && rc == 0; k++) {
            if ((i + (size_t)k) % 2 == 0)
                rc = one_stream(c, &stream[i], &s_create[i], &s_first[i]);
            else
                rc = one_run(c, &runv[i], &r_create[i], &r_run[i]);
        }
        if (rc == 0 && (i + 1) % 50 == 0)
            progress("first output: %zu/%zu sandboxes per variant (%.1f s)", i + 1, n, (now_ms() - started) / 1000);
    }
    if (rc == 0) {
        *s_stream = stats_of(stream, n);
        *s_run = stats_of(runv, n);
        json_t *js = stats_json(s_stream), *jr = stats_json(s_run);
        struct stats a = stats_of(s_create, n), b = stats_of(s_first, n);
        json_object_set_new(js, "create_p50", jms(a.p50));
        json_object_set_new(js, "exec_to_first_byte_p50", jms(b.p50));
        json_object_set_new(
            js, "measure",
            json_string("POST /v1/sandboxes, POST .../execs {argv:[echo,ok]}, GET .../execs/{e}/output: "
                        "from before the create to the first output byte read"));
        a = stats_of(r_create, n);
        b = stats_of(r_run, n);
        json_object_set_new(jr, "create_p50", jms(a.p50));
        json_object_set_new(jr, "run_p50", jms(b.p50));
        json_object_set_new(jr, "measure",
                            json_string("POST /v1/sandboxes, POST .../run {argv:[echo,ok]}: "
                                        "from before the create to the complete answer"));
        json_t *o = json_object();
        json_object_set_new(o, "exec_stream", js);
        json_object_set_new(o, "run", jr);
        json_object_set_new(out, "first_output", o);
    }
    free(stream);
    free(s_create);
    free(s_first);
    free(runv);
    free(r_create);
    free(r_run);
    return rc;
}

/* ---- 2: exec round trip ------------------------------------------------------------ */

static int rt_run(struct conn *c, const char *id, double *ms)
{
    double t0 = now_ms();
    if (run(c, id, "{\"argv\":[\"true\"]}", "") < 0)
        return -1;
    *ms = now_ms() - t0;
    return 0;
}

static int rt_stream(struct conn *c, const char *id, double *ms)
{
    char eid[ID_MAX];
    struct resp r;
    double t0 = now_ms();
    if (exec_start(c, id, "{\"argv\":[\"true\"]}", eid) < 0 || exec_output(c, id, eid, &r) < 0)
        return -1;
    *ms = now_ms() - t0;
    size_t len = r.len;
    resp_free(&r);
    return len == 0 ? 0 : fail("exec of true streamed %zu bytes", len);
}

static int bench_round_trip(struct conn *c, size_t n, json_t *out, struct stats *s_run, struct stats *s_stream)
{
    char id[ID_MAX];
    if (sb_create(c, id) < 0)
        return -1;
    double *runv = xcalloc(n, sizeof(double)), *stream = xcalloc(n, sizeof(double));
    double dummy;
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++) /* warm-ups */
        if (rt_run(c, id, &dummy) < 0 || rt_stream(c, id, &dummy) < 0)
            rc = -1;
    for (size_t i = 0; i < n && rc == 0; i++)
        for (int k = 0; k < 2 && rc == 0; k++)
            rc = (i + (size_t)k) % 2 == 0 ? rt_run(c, id, &runv[i]) : rt_stream(c, id, &stream[i]);
    if (rc == 0) {
        *s_run = stats_of(runv, n);
        *s_stream = stats_of(stream, n);
        json_t *o = json_object(), *jr = stats_json(s_run), *js = stats_json(s_stream);
        json_object_set_new(jr, "measure", json_string("POST .../run {argv:[true]} to the complete answer"));
        json_object_set_new(js, "measure",
                            json_string("POST .../execs {argv:[true]} + GET .../output read to its end"));
        json_object_set_new(o, "run", jr);
        json_object_set_new(o, "exec_stream", js);
        json_object_set_new(out, "exec_round_trip", o);
    }
    free(runv);
    free(stream);
    if (rc == 0)
        rc = sb_terminate(c, id);
    return rc;
}

/* ---- 3: bulk upload --------------------------------------------------------------- */

enum { UP_TAR_SMALL, UP_TAR_BIG, UP_PUT_SMALL, UP_PUT_BIG, UP_N };
static const char *const up_names[UP_N] = {"tar_small", "tar_big", "put_small", "put_big"};

struct upload {
    const char *reason[UP_N]; /* unavailable when set */
    char *tar[2];             /* the two tars, in memory */
    size_t tar_len[2];
    char *big; /* the big file's content */
    size_t big_len;
    double *secs[UP_N];
    size_t files[UP_N], bytes[UP_N], request_bytes[UP_N];
};

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static void fill_random(char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        memcpy(p + i, &g_rng, 8);
    }
    for (; i < n; i++)
        p[i] = (char)(i * 31);
}

struct membuf {
    char *p;
    size_t len, cap;
};

static la_ssize_t membuf_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
    (void)a;
    struct membuf *m = ctx;
    if (m->len + n > m->cap) {
        m->cap = m->cap ? m->cap : 1 << 20;
        while (m->len + n > m->cap)
            m->cap *= 2;
        m->p = xrealloc(m->p, m->cap);
    }
    memcpy(m->p + m->len, buf, n);
    m->len += n;
    return (la_ssize_t)n;
}

/* make_tar - a tar (POSIX ustar/pax) built in memory by libarchive: the
 * directory `dir`/ and `n` regular files dir/NAME (names[i] or fNNNN) of
 * `each` bytes taken one after the other from `data`. Returns NULL with
 * the reason in g_err. */
static char *make_tar(const char *dir, size_t n, const char *name, const char *data, size_t each, size_t *len)
{
    struct membuf m = {0};
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    char path[256];
    bool ok = a != NULL && e != NULL && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
              archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
              archive_write_open(a, &m, NULL, membuf_write, NULL) == ARCHIVE_OK;
    time_t now = time(NULL);
    if (ok) {
        snprintf(path, sizeof(path), "%s/", dir);
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        archive_entry_set_mtime(e, now, 0);
        ok = archive_write_header(a, e) == ARCHIVE_OK;
    }
    for (size_t i = 0; ok && i < n; i++) {
        archive_entry_clear(e);
        if (name != NULL)
            snprintf(path, sizeof(path), "%s/%s", dir, name);
        else
            snprintf(path, sizeof(path), "%s/f%04zu", dir, i);
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)each);
        archive_entry_set_mtime(e, now, 0);
        ok = archive_write_header(a, e) == ARCHIVE_OK &&
             archive_write_data(a, data + i * each, each) == (la_ssize_t)each;
    }
    if (ok)
        ok = archive_write_close(a) == ARCHIVE_OK;
    if (!ok)
        fail("libarchive: %s", a ? archive_error_string(a) : "out of memory");
    if (e != NULL)
        archive_entry_free(e);
    if (a != NULL)
        archive_write_free(a);
    if (!ok) {
        free(m.p);
        return NULL;
    }
    *len = m.len;
    return m.p;
}

/* upload_prepare - the payloads, in memory: the big file's content (its
 * first 200 KiB also serve as the 200 small files sent one by one), and
 * the two tars. */
static int upload_prepare(struct upload *u, size_t big_bytes)
{
    u->big_len = big_bytes;
    u->big = xmalloc(big_bytes);
    fill_random(u->big, big_bytes);
    _cleanup_free_ char *small = xmalloc((size_t)SMALL_FILES * SMALL_SIZE);
    fill_random(small, (size_t)SMALL_FILES * SMALL_SIZE);
    u->tar[0] = make_tar("small", SMALL_FILES, NULL, small, SMALL_SIZE, &u->tar_len[0]);
    if (u->tar[0] != NULL)
        u->tar[1] = make_tar("big", 1, "blob", u->big, big_bytes, &u->tar_len[1]);
    if (u->tar[1] == NULL)
        u->reason[UP_TAR_SMALL] = u->reason[UP_TAR_BIG] = xasprintf("cannot build the tar: %s", g_err);
    u->files[UP_TAR_SMALL] = SMALL_FILES;
    u->bytes[UP_TAR_SMALL] = (size_t)SMALL_FILES * SMALL_SIZE;
    u->request_bytes[UP_TAR_SMALL] = u->tar_len[0];
    u->files[UP_TAR_BIG] = 1;
    u->bytes[UP_TAR_BIG] = big_bytes;
    u->request_bytes[UP_TAR_BIG] = u->tar_len[1];
    u->files[UP_PUT_SMALL] = PUT_FILES;
    u->bytes[UP_PUT_SMALL] = u->request_bytes[UP_PUT_SMALL] = (size_t)PUT_FILES * SMALL_SIZE;
    u->files[UP_PUT_BIG] = 1;
    u->bytes[UP_PUT_BIG] = u->request_bytes[UP_PUT_BIG] = big_bytes;
    return 0;
}

static int sb_mkdir(struct conn *c, const char *id, const char *dir)
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/mkdir", id);
    snprintf(body, sizeof(body), "{\"path\":\"%s\"}", dir);
    struct resp r;
    if (call_json(c, "POST", path, body, 200, &r) < 0)
        return -1;
    resp_free(&r);
    return 0;
}

static int sb_remove(struct conn *c, const char *id, const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=%s&recursive=1", id, dir);
    struct resp r;
    if (call(c, "DELETE", path, NULL, NULL, 0, 200, &r) < 0)
        return -1;
    resp_free(&r);
    return 0;
}

/* sb_stat_size - the size of a file in the sandbox, or -1. */
static long long sb_stat_size(struct conn *c, const char *id, const char *file)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/stat?path=%s", id, file);
    struct resp r;
    if (call(c, "GET", path, NULL, NULL, 0, 200, &r) < 0)
        return -1;
    json_t *size = json_object_get(r.json, "size");
    long long v = json_is_integer(size) ? (long long)json_integer_value(size) : -1;
    resp_free(&r);
    return v;
}

/* probe_tar - does PUT .../files/tar exist? 0 yes; 1 no (reason set); -1 error. */
static int probe_tar(struct conn *c, const char *id, const char *dir, struct upload *u)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=%s", id, dir);
    struct resp r;
    if (http(c, "PUT", path, "application/x-tar", NULL, 0, &r) < 0)
        return -1;
    int status = r.status;
    if (status == 404 || status == 405) {
        json_t *e = r.json ? json_object_get(r.json, "error") : NULL;
        const char *code = e ? json_string_value(json_object_get(e, "code")) : NULL;
        u->reason[UP_TAR_SMALL] = u->reason[UP_TAR_BIG] = xasprintf(
            "PUT /v1/sandboxes/{id}/files/tar answered %d %s: this skiffd has no tar upload", status, code ? code : "");
        resp_free(&r);
        return 1;
    }
    resp_free(&r);
    return 0; /* an empty archive may be refused (400): the route is there */
}

/* upload_once - one repetition of one case into a fresh directory `dir`
 * (created before, removed after, untimed). */
static int upload_once(struct conn *c, const char *id, struct upload *u, int k, const char *dir, double *secs,
                       bool verify)
{
    char path[PATH_MAX], file[PATH_MAX];
    struct resp r;
    if (sb_mkdir(c, id, dir) < 0)
        return -1;
    double t0 = now_ms();
    switch (k) {
    case UP_TAR_SMALL:
    case UP_TAR_BIG:
        snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=%s", id, dir);
        if (call(c, "PUT", path, "application/x-tar", u->tar[k == UP_TAR_BIG], u->tar_len[k == UP_TAR_BIG], 0, &r) < 0)
            return -1;
        resp_free(&r);
        break;
    case UP_PUT_SMALL:
        for (int i = 0; i < PUT_FILES; i++) {
            snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=%s/f%04d", id, dir, i);
            if (call(c, "PUT", path, "application/octet-stream", u->big + (size_t)i * SMALL_SIZE, SMALL_SIZE, 201, &r) <
                0)
                return -1;
            resp_free(&r);
        }
        break;
    case UP_PUT_BIG:
        snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=%s/blob", id, dir);
        if (call(c, "PUT", path, "application/octet-stream", u->big, u->big_len, 201, &r) < 0)
            return -1;
        resp_free(&r);
        break;
    default: return fail("no upload case %d", k);
    }
    *secs = (now_ms() - t0) / 1000.0;
    if (verify) {
        /* the last file of the case must be there, with its size */
        const char *const last[UP_N] = {"small/f0999", "big/blob", "f0199", "blob"};
        snprintf(file, sizeof(file), "%s/%s", dir, last[k]);
        long long size = sb_stat_size(c, id, file);
        long long want = k == UP_TAR_BIG || k == UP_PUT_BIG ? (long long)u->big_len : SMALL_SIZE;
        if (size != want)
            return fail("after %s, '%s' has size %lld, want %lld", up_names[k], file, size, want);
    }
    return sb_remove(c, id, dir);
}

static int bench_upload(struct conn *c, size_t reps, size_t big_bytes, json_t *out, struct upload *u)
{
    if (upload_prepare(u, big_bytes) < 0)
        return -1;
    char id[ID_MAX], dir[128];
    if (sb_create(c, id) < 0 || sb_mkdir(c, id, "/tmp/bench") < 0)
        return -1;
    if (u->reason[UP_TAR_SMALL] == NULL) {
        int p = probe_tar(c, id, "/tmp/bench", u);
        if (p < 0)
            return -1;
        if (p == 0 && sb_remove(c, id, "/tmp/bench") < 0)
            return -1;
    }
    for (int k = 0; k < UP_N; k++)
        u->secs[k] = xcalloc(reps, sizeof(double));
    double dummy;
    /* The small files first, then the big ones: writing back the big files
     * (the sandbox's root is on disk) would otherwise slow the small-file
     * cases that follow them several-fold. Within each size, tar and per
     * file alternate. One warm-up round each, not recorded. */
    const int order[2][2] = {{UP_TAR_SMALL, UP_PUT_SMALL}, {UP_TAR_BIG, UP_PUT_BIG}};
    for (int size = 0; size < 2; size++) {
        for (size_t rep = 0; rep <= reps; rep++) {
            for (int j = 0; j < 2; j++) {
                int k = order[size][(rep + (size_t)j) % 2];
                if (u->reason[k] != NULL)
                    continue;
                snprintf(dir, sizeof(dir), "/tmp/bench/%s-%zu", up_names[k], rep);
                if (upload_once(c, id, u, k, dir, rep == 0 ? &dummy : &u->secs[k][rep - 1], rep <= 1) < 0)
                    return -1;
            }
        }
        progress("upload: %s files done", size == 0 ? "small" : "big");
    }
    json_t *o = json_object();
    for (int k = 0; k < UP_N; k++) {
        json_t *e = json_object();
        bool tar = k == UP_TAR_SMALL || k == UP_TAR_BIG;
        json_object_set_new(e, "method",
                            json_string(tar ? "PUT /v1/sandboxes/{id}/files/tar?path=DIR (one request)"
                                            : "PUT /v1/sandboxes/{id}/files?path=FILE (one request per file)"));
        json_object_set_new(e, "files", json_integer((json_int_t)u->files[k]));
        json_object_set_new(e, "file_bytes", json_integer((json_int_t)u->bytes[k]));
        if (u->reason[k] != NULL) {
            json_object_set_new(e, "status", json_string("unavailable"));
            json_object_set_new(e, "reason", json_string(u->reason[k]));
        } else {
            json_t *samples = json_array();
            for (size_t i = 0; i < reps; i++)
                json_array_append_new(samples, json_real(round(u->secs[k][i] * 1e6) / 1e6));
            struct stats s = stats_of(u->secs[k], reps);
            json_object_set_new(e, "status", json_string("ok"));
            json_object_set_new(e, "request_bytes", json_integer((json_int_t)u->request_bytes[k]));
            json_object_set_new(e, "reps", json_integer((json_int_t)reps));
            json_object_set_new(e, "median_s", json_real(round(s.p50 * 1e6) / 1e6));
            json_object_set_new(e, "min_s", json_real(round(s.min * 1e6) / 1e6));
            json_object_set_new(e, "max_s", json_real(round(s.max * 1e6) / 1e6));
            json_object_set_new(e, "mb_per_s", json_real(round((double)u->bytes[k] / MB / s.p50 * 10) / 10));
            json_object_set_new(e, "files_per_s", json_real(round((double)u->files[k] / s.p50 * 10) / 10));
            json_object_set_new(e, "samples_s", samples);
        }
        json_object_set_new(o, up_names[k], e);
    }
    json_object_set_new(out, "upload", o);
    return sb_terminate(c, id);
}

/* ---- output ---------------------------------------------------------------------- */

static double jget(json_t *root, const char *a, const char *b, const char *key)
{
    json_t *v = json_object_get(json_object_get(json_object_get(root, a), b), key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void print_table(json_t *o)
{
    printf("skiffd API, sequential requests over one keep-alive connection, ms\n");
    printf("%-44s %5s %8s %8s %8s %8s\n", "case", "n", "p50", "p95", "p99", "max");
    const char *const rows[][3] = {
        {"first_output", "exec_stream", "create -> first byte (execs + output)"},
        {"first_output", "run", "create -> run answer (one-shot run)"},
        {"exec_round_trip", "run", "exec round trip: run true"},
        {"exec_round_trip", "exec_stream", "exec round trip: execs + output true"},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(rows); i++)
        printf("%-44s %5.0f %8.3f %8.3f %8.3f %8.3f\n", rows[i][2], jget(o, rows[i][0], rows[i][1], "n"),
               jget(o, rows[i][0], rows[i][1], "p50"), jget(o, rows[i][0], rows[i][1], "p95"),
               jget(o, rows[i][0], rows[i][1], "p99"), jget(o, rows[i][0], rows[i][1], "max"));
    printf("  (first byte: create p50 %.3f + exec start to first byte p50 %.3f; run: create p50 %.3f + run p50 "
           "%.3f)\n",
           jget(o, "first_output", "exec_stream", "create_p50"),
           jget(o, "first_output", "exec_stream", "exec_to_first_byte_p50"),
           jget(o, "first_output", "run", "create_p50"), jget(o, "first_output", "run", "run_p50"));
    printf("\nbulk upload into one sandbox, median of %.0f\n", jget(o, "upload", "put_big", "reps"));
    printf("%-44s %10s %10s %10s\n", "case", "median s", "MB/s", "files/s");
    const char *const labels[UP_N] = {"PUT files/tar: 1,000 x 1 KiB", "PUT files/tar: 1 x big file",
                                      "PUT files, per file: 200 x 1 KiB", "PUT files: 1 x big file"};
    for (int k = 0; k < UP_N; k++) {
        json_t *e = json_object_get(json_object_get(o, "upload"), up_names[k]);
        const char *status = json_string_value(json_object_get(e, "status"));
        if (status && strcmp(status, "ok") == 0)
            printf("%-44s %10.4f %10.1f %10.1f\n", labels[k], jget(o, "upload", up_names[k], "median_s"),
                   jget(o, "upload", up_names[k], "mb_per_s"), jget(o, "upload", up_names[k], "files_per_s"));
        else
            printf("%-44s unavailable: %s\n", labels[k], json_string_value(json_object_get(e, "reason")));
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: api [-n SANDBOXES] [-e EXECS] [-r REPS] [-b MB] [-s SKIFFD] [-q] [--json]\n");
    exit(2);
}

static long arg_long(const char *s, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    size_t n = 200, execs = 500, reps = 5, big_mb = 100;
    const char *skiffd = NULL;
    bool as_json = false;
    const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:e:r:b:s:q", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = (size_t)arg_long(optarg, 1, 100000); break;
        case 'e': execs = (size_t)arg_long(optarg, 1, 1000000); break;
        case 'r': reps = (size_t)arg_long(optarg, 1, 100); break;
        case 'b': big_mb = (size_t)arg_long(optarg, 1, 900); break;
        case 's': skiffd = optarg; break;
        case 'q': g_quiet = true; break;
        case 'j': as_json = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    char exe[PATH_MAX], def[PATH_MAX + 16];
    if (skiffd == NULL) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (len < 0) {
            fprintf(stderr, "api: /proc/self/exe: %s\n", strerror(errno));
            return 1;
        }
        exe[len] = '\0';
        *strrchr(exe, '/') = '\0'; /* BUILD/bench */
        char *up = strrchr(exe, '/');
        if (up != NULL)
            *up = '\0'; /* BUILD */
        snprintf(def, sizeof(def), "%s/skiffd", exe);
        skiffd = def;
    }
    if (access(skiffd, X_OK) < 0) {
        fprintf(stderr, "api: %s: %s\n", skiffd, strerror(errno));
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    double started = now_ms();
    struct daemon d = {0};
    struct upload u = {0};
    struct conn c = {.fd = -1, .cap = 65536};
    c.buf = xmalloc(c.cap);
    json_t *out = json_object();
    struct stats s1, s2, s3, s4;
    int rc = daemon_start(&d, skiffd);
    if (rc == 0) {
        c.port = d.port;
        c.token = d.token;
        struct resp r;
        if ((rc = call_json(&c, "GET", "/v1/version", NULL, 200, &r)) == 0) {
            json_object_set_new(out, "schema", json_integer(1));
            json_object_set_new(out, "unit", json_string("ms"));
            json_object_set_new(out, "skiffd_version", json_string(jstr(&r, "version")));
            json_object_set_new(out, "transport", json_string("HTTP/1.1 keep-alive over TCP loopback, sequential"));
            resp_free(&r);
        }
    }
    if (rc == 0) {
        progress("skiffd pid %d on 127.0.0.1:%d, data in %s", (int)d.pid, d.port, d.data);
        rc = bench_first_output(&c, n, out, &s1, &s2);
    }
    if (rc == 0) {
        progress("first output: p50 %.2f ms (exec+stream), %.2f ms (run)", s1.p50, s2.p50);
        rc = bench_round_trip(&c, execs, out, &s3, &s4);
    }
    if (rc == 0) {
        progress("exec round trip: p50 %.2f ms (run), %.2f ms (exec+stream)", s3.p50, s4.p50);
        rc = bench_upload(&c, reps, big_mb * (size_t)MB, out, &u);
    }
    conn_close(&c);
    free(c.buf);
    if (rc < 0)
        fprintf(stderr, "api: %s\n", g_err);
    if (daemon_stop(&d) < 0 && rc == 0)
        rc = -1;
    for (int k = 0; k < UP_N; k++)
        free(u.secs[k]);
    free(u.tar[0]);
    free(u.tar[1]);
    free(u.big);
    free((char *)u.reason[UP_TAR_SMALL]);
    if (rc < 0) {
        json_decref(out);
        return 1;
    }
    json_t *cfg = json_object();
    json_object_set_new(cfg, "sandboxes", json_integer((json_int_t)n));
    json_object_set_new(cfg, "execs", json_integer((json_int_t)execs));
    json_object_set_new(cfg, "upload_reps", json_integer((json_int_t)reps));
    json_object_set_new(cfg, "big_file_mb", json_integer((json_int_t)big_mb));
    json_object_set_new(out, "config", cfg);
    json_object_set_new(out, "elapsed_s", json_real(round((now_ms() - started) / 100) / 10));
    if (as_json) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
    } else {
        print_table(out);
        printf("(%.1f s in all)\n", (now_ms() - started) / 1000);
    }
    json_decref(out);
    return 0;
}
