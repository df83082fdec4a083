/* skiffd_test.h - start the real build/skiffd on a free loopback port and
 * talk HTTP to it with a few plain sockets (so tests can also send what a
 * hostile or broken client sends). Header-only: each test file is its own
 * program. */
#ifndef SK_TESTS_SKIFFD_TEST_H
#define SK_TESTS_SKIFFD_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "harness.h"
#include "runtime/runtime.h"

/* ---- a skiffd child ------------------------------------------------------------ */

struct skiffd {
    pid_t pid;
    int port;
    char unix_path[108];
    char dir[PATH_MAX];
    char log[PATH_MAX + 16];
    char token[128]; /* from admin.token */
};

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void make_data_dir(struct skiffd *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/skiffd-test-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        FAIL("mkdtemp: %s", strerror(errno));
    /* skiffd creates its data directory itself: hand it a path below. */
    strcat(s->dir, "/data");
}

static inline int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        FAIL("free port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

static inline char *read_text(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    struct sk_error err;
    if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, &len, &err) < 0)
        return NULL;
    return text;
}

static inline int connect_to(const struct skiffd *s, const char *src_ip)
{
    int fd;
    if (s->unix_path[0] != '\0') {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && src_ip != NULL) {
            struct sockaddr_in src = {.sin_family = AF_INET};
            inet_pton(AF_INET, src_ip, &src.sin_addr);
            if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
                FAIL("bind %s: %s", src_ip, strerror(errno));
        }
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
    }
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
    return -1;
}

/* ---- a minimal HTTP/1.1 client ---------------------------------------------------- */

struct resp {
    int status;
    char *head; /* status line and headers */
    char *body;
    size_t body_len;
    json_t *json; /* when the body is JSON */
};

static inline void resp_free(struct resp *r)
{
    free(r->head);
    free(r->body);
    if (r->json)
        json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* resp_header - value of header `name` (a static copy), or NULL. */
static inline const char *resp_header(const struct resp *r, const char *name)
{
    static char value[1024];
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t len = end ? (size_t)(end - v) : strlen(v);
            snprintf(value, sizeof(value), "%.*s", (int)len, v);
            return value;
        }
    }
    return NULL;
}

static inline const char *err_code(const struct resp *r)
{
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    return e ? json_string_value(json_object_get(e, "code")) : NULL;
}

static inline const char *err_message(const struct resp *r)
{
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    return e ? json_string_value(json_object_get(e, "message")) : NULL;
}

static inline void send_all(int fd, const void *data, size_t len)
{
    if (sk_write_all(fd, data, len) != (ssize_t)len)
        FAIL("send: %s", strerror(errno));
}

static inline void send_request(int fd, const char *method, const char *path, const char *token, const char *body,
                                size_t body_len, bool keep_alive)
{
    char head[4096];
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                     keep_alive ? "" : "Connection: close\r\n");
    if (token != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (body != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      body_len);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    send_all(fd, head, (size_t)n);
    if (body != NULL && body_len > 0)
        send_all(fd, body, body_len);
}

/* read_response - read one response from fd (Content-Length, chunked, or
 * until EOF) within timeout_s. Returns 0, or -1 when the connection ended
 * before a complete response. */
static inline int read_response(int fd, struct resp *r, int timeout_s)
{
    memset(r, 0, sizeof(*r));
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap);
    double deadline = now_ms() + timeout_s * 1000.0;
    size_t head_end = 0;
    long long content_length = -1;
    bool chunked = false;
    for (;;) {
        if (head_end == 0) {
            buf[len] = '\0';
            char *p = strstr(buf, "\r\n\r\n");
            if (p != NULL) {
                head_end = (size_t)(p - buf) + 4;
                r->head = xstrndup(buf, head_end - 2);
                if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
                    FAIL("bad status line: %.80s", buf);
                const char *cl = resp_header(r, "Content-Length");
                if (cl)
                    content_length = atoll(cl);
                const char *te = resp_header(r, "Transfer-Encoding");
                chunked = te && strcasecmp(te, "chunked") == 0;
            }
        }
        if (head_end != 0) {
            if (content_length >= 0 && len - head_end >= (size_t)content_length)
                break;
            if (chunked) {
                buf[len] = '\0';
                /* Done when the terminating zero-size chunk has arrived. */
                size_t pos = head_end;
                bool done = false, ok = true;
                while (ok && !done) {
                    char *end = strstr(buf + pos, "\r\n");
                    if (!end) {
                        ok = false;
                        break;
                    }
                    size_t sz = strtoul(buf + pos, NULL, 16);
                    size_t data = (size_t)(end - buf) + 2;
                    if (data + sz + 2 > len) {
                        ok = false;
                        break;
                    }
                    if (sz == 0)
                        done = true;
                    pos = data + sz + 2;
                }
                if (done)
                    break;
            }
        }
        if (len + 65536 + 1 > cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        int left = (int)(deadline - now_ms());
        if (left <= 0)
            FAIL("response timed out after %d s (%zu bytes so far)", timeout_s, len);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (head_end != 0 && content_length < 0 && !chunked)
                break; /* body until EOF */
            free(buf);
            free(r->head);
            r->head = NULL;
            return -1;
        }
        len += (size_t)n;
    }
    /* Body: plain or de-chunked. */
    r->body = xmalloc(len - head_end + 1);
    if (chunked) {
        size_t pos = head_end, out = 0;
        for (;;) {
            size_t sz = strtoul(buf + pos, NULL, 16);
            size_t data = (size_t)(strstr(buf + pos, "\r\n") - buf) + 2;
            if (sz == 0)
                break;
            memcpy(r->body + out, buf + data, sz);
            out += sz;
            pos = data + sz + 2;
        }
        r->body_len = out;
    } else {
        r->body_len = content_length >= 0 ? (size_t)content_length : len - head_end;
        memcpy(r->body, buf + head_end, r->body_len);
    }
    r->body[r->body_len] = '\0';
    free(buf);
    const char *ct = resp_header(r, "Content-Type");
    if (ct && strncmp(ct, "application/json", 16) == 0) {
        json_error_t jerr;
        r->json = json_loadb(r->body, r->body_len, 0, &jerr);
        if (r->json == NULL)
            FAIL("response is not JSON (%s): %s", jerr.text, r->body);
    }
    return 0;
}

/* request - one request on a fresh connection; fails the test when there
 * is no complete answer. */
static inline void request_body(const struct skiffd *s, const char *method, const char *path, const char *token,
                                const char *body, size_t body_len, struct resp *r)
{
    int fd = connect_to(s, NULL);
    if (fd < 0)
        FAIL("connect: %s", strerror(errno));
    send_request(fd, method, path, token, body, body_len, false);
    if (read_response(fd, r, 20) < 0)
        FAIL("%s %s: connection closed without a response", method, path);
    close(fd);
}

static inline void request(const struct skiffd *s, const char *method, const char *path, const char *token,
                           const char *body, struct resp *r)
{
    request_body(s, method, path, token, body, body ? strlen(body) : 0, r);
}

/* ---- starting and stopping ------------------------------------------------------- */

static inline bool healthy(const struct skiffd *s)
{
    int fd = connect_to(s, NULL);
    if (fd < 0)
        return false;
    send_request(fd, "GET", "/healthz", NULL, NULL, 0, false);
    struct resp r;
    bool ok = read_response(fd, &r, 5) == 0 && r.status == 200;
    if (r.head)
        resp_free(&r);
    close(fd);
    return ok;
}

/* skiffd_on_fail - a failed test must not leave its server's sandboxes
 * running (they are persistent: they outlive skiffd by design): stop the
 * server, then let a runtime on its state dir sweep what is unowned. */
static inline void skiffd_on_fail(void *arg)
{
    struct skiffd *s = arg;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    char state[PATH_MAX + 16];
    snprintf(state, sizeof(state), "%s/runtime", s->dir);
    struct sk_runtime_config rc = {.state_dir = state};
    struct sk_runtime *rt = NULL;
    if (access(state, F_OK) == 0 && sk_runtime_new(&rc, &rt, NULL) == 0)
        sk_runtime_free(rt);
}

/* skiffd_start - run build/skiffd on s->dir with extra options (NULL-ended)
 * and wait until /healthz answers. */
static inline void skiffd_start_args(struct skiffd *s, const char *const *extra)
{
    sk_test_on_fail(skiffd_on_fail, s);
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/skiffd", sk_test_bin_dir());
    snprintf(s->log, sizeof(s->log), "%s.log", s->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        char listen[160];
        if (s->unix_path[0] != '\0') {
            snprintf(listen, sizeof(listen), "unix:%s", s->unix_path);
        } else {
            s->port = free_port();
            snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
        }
        const char *argv[32] = {bin, "--listen", listen, "--data-dir", s->dir, "--log-level", "info"};
        size_t n = 7;
        for (size_t i = 0; extra && extra[i] && n < 30; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid < 0)
            FAIL("fork: %s", strerror(errno));
        if (pid == 0) {
            int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            dup2(fd, 1);
            dup2(fd, 2);
            execv(bin, (char *const *)argv);
            _exit(127);
        }
        s->pid = pid;
        double deadline = now_ms() + 10000;
        while (now_ms() < deadline) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                s->pid = 0;
                break;
            }
            if (healthy(s))
                break;
            usleep(20000);
        }
        if (s->pid == 0) {
            _cleanup_free_ char *log = read_text(s->log);
            if (log && strstr(log, "in use") && s->unix_path[0] == '\0')
                continue; /* the free port was taken meanwhile */
            FAIL("skiffd exited at start-up: %s", log ? log : "(no log)");
        }
        if (!healthy(s))
            FAIL("skiffd did not answer /healthz within 10 s");
        char path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/admin.token", s->dir);
        _cleanup_free_ char *tok = read_text(path);
        if (tok == NULL)
            FAIL("no '%s'", path);
        tok[strcspn(tok, "\n")] = '\0';
        snprintf(s->token, sizeof(s->token), "%s", tok);
        return;
    }
    FAIL("could not start skiffd on a free port");
}

static inline void skiffd_start(struct skiffd *s)
{
    skiffd_start_args(s, NULL);
}

/* skiffd_stop - SIGTERM, then the exit status (or -1 after 10 s). */
static inline int skiffd_stop(struct skiffd *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    double deadline = now_ms() + 10000;
    int status = 0;
    while (now_ms() < deadline) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return -1;
}

/* skiffd_finish - stop if still running (expecting exit 0) and remove the
 * data directory. */
static inline void skiffd_finish(struct skiffd *s)
{
    int code = s->pid > 0 ? skiffd_stop(s) : 0;
    if (code != 0) {
        _cleanup_free_ char *log = read_text(s->log);
        FAIL("skiffd exited with %d on SIGTERM; log:\n%s", code, log ? log : "");
    }
    char top[PATH_MAX];
    snprintf(top, sizeof(top), "%s", s->dir);
    *strrchr(top, '/') = '\0';
    sk_remove_tree(top, NULL);
}

/* sandbox_cgroup_exists - a cgroup of sandbox `id` in any hierarchy (v1
 * controllers or the unified tree), under any skiff parent. */
static inline bool sandbox_cgroup_exists(const char *id)
{
    struct sk_test_output o;
    const char *argv[] = {"/bin/sh", "-c",
                          "for d in /sys/fs/cgroup/*/skiff-*/sb-* /sys/fs/cgroup/skiff-*/sb-*; do "
                          "[ -d \"$d\" ] && echo \"$d\"; done; exit 0",
                          NULL};
    if (sk_test_run(argv, NULL, NULL, 10, &o) < 0 || o.exit_code != 0)
        FAIL("could not list the sandbox cgroups");
    bool found = strstr(o.out, id) != NULL;
    sk_test_output_free(&o);
    return found;
}

/* create_token - POST /v1/tokens; returns the answer (status checked). */
static inline void create_token(const struct skiffd *s, const char *name, char *token_out, size_t size, char *id_out,
                                size_t id_size)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    struct resp r;
    request(s, "POST", "/v1/tokens", s->token, body, &r);
    ASSERT_EQ_INT(r.status, 201);
    snprintf(token_out, size, "%s", json_string_value(json_object_get(r.json, "token")));
    snprintf(id_out, id_size, "%s", json_string_value(json_object_get(r.json, "id")));
    resp_free(&r);
}

#endif
