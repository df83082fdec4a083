/* routes_execs.c - processes in a sandbox: start, list, get, output stream
 * (resumable from a byte offset), stdin, signal, resize, wait, and the
 * one-shot run. Output lives in files (lib/sched), so a stream is a reader
 * following a file. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "routes.h"
#include "routes_common.h"
#include "sched/sandboxes.h"

#define RUN_OUTPUT_MAX (16 << 20) /* per stream in a /run answer */
#define WAIT_MAX_S 3600

static json_t *exec_json(const struct sk_exec_rec *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(e->id));
    json_object_set_new(o, "sandbox_id", json_string(e->sandbox_id));
    json_t *argv = e->argv_json ? json_loads(e->argv_json, 0, NULL) : NULL;
    json_object_set_new(o, "argv", argv ? argv : json_array());
    json_object_set_new(o, "state", json_string(e->state ? e->state : "unknown"));
    bool ended = e->state && strcmp(e->state, "running") != 0;
    json_object_set_new(o, "exit_code", ended && e->exit_code >= 0 ? json_integer(e->exit_code) : json_null());
    json_object_set_new(o, "signal", ended && e->signal > 0 ? json_integer(e->signal) : json_null());
    json_object_set_new(o, "timed_out", json_boolean(e->timed_out));
    json_object_set_new(o, "pty", json_boolean(e->pty));
    json_object_set_new(o, "created_at", sk_json_time(e->created_at));
    json_object_set_new(o, "ended_at", sk_json_time(e->ended_at));
    return o;
}

/* decode_exec_req - the fields shared by POST /execs and POST /run. */
struct exec_body {
    const json_t *argv, *env;
    const char *workdir, *stdin_text;
    int64_t timeout_s, rows, cols;
    bool pty, want_stdin;
};

static int decode_exec(struct sk_http_req *req, struct exec_body *b, bool for_run)
{
    memset(b, 0, sizeof(*b));
    struct sk_field fields[] = {
        SK_FIELD_STRV("argv", &b->argv, SK_REQUIRED, 1024),
        SK_FIELD_STRMAP("env", &b->env, SK_OPTIONAL, 1024),
        SK_FIELD_STR("workdir", &b->workdir, SK_OPTIONAL, 4096),
        SK_FIELD_INT("timeout", &b->timeout_s, SK_OPTIONAL, 1, INT64_C(1) << 32),
        SK_FIELD_BOOL("pty", &b->pty, SK_OPTIONAL),
        SK_FIELD_INT("rows", &b->rows, SK_OPTIONAL, 1, 65535),
        SK_FIELD_INT("cols", &b->cols, SK_OPTIONAL, 1, 65535),
        SK_FIELD_BOOL("stdin", &b->want_stdin, SK_OPTIONAL),
    };
    struct sk_field run_fields[] = {
        SK_FIELD_STRV("argv", &b->argv, SK_REQUIRED, 1024),
        SK_FIELD_STRMAP("env", &b->env, SK_OPTIONAL, 1024),
        SK_FIELD_STR("workdir", &b->workdir, SK_OPTIONAL, 4096),
        SK_FIELD_INT("timeout", &b->timeout_s, SK_OPTIONAL, 1, INT64_C(1) << 32),
        /* at most what the manager buffers, so the whole input is taken */
        SK_FIELD_STR("stdin", &b->stdin_text, SK_OPTIONAL, SK_SCHED_STDIN_BUF_MAX),
    };
    if (for_run ? sk_http_decode_json(req, run_fields, SK_ARRAY_SIZE(run_fields)) < 0
                : sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return -1;
    if (json_array_size(b->argv) == 0 || json_string_length(json_array_get(b->argv, 0)) == 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'argv' needs at least a program name");
        return -1;
    }
    if (b->workdir != NULL && b->workdir[0] != '/') {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'workdir' must be an absolute path");
        return -1;
    }
    return 0;
}

/* An exec whose process skiff-init is starting (sk_sched_exec_async):
 * lives until both the request is gone (start_closed) and the start was
 * reported (start_done). */
struct start_call {
    struct sk_daemon *d;
    struct sk_http_req *req; /* NULL once the request is gone */
    bool waiting;            /* start_done has not run yet */
    bool for_run;
    char *stdin_text; /* run: what to write to its stdin (a copy) */
};

static void start_call_free(struct start_call *c)
{
    free(c->stdin_text);
    free(c);
}

static void start_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct start_call *c = ctx;
    c->req = NULL;
    if (!c->waiting)
        start_call_free(c);
}

static void wait_for(struct sk_daemon *d, struct sk_http_req *req, const char *exec_id, int64_t timeout_ms, bool run);

static void start_done(void *arg, int ret, const struct sk_exec_rec *e, const struct sk_error *cerr)
{
    struct start_call *c = arg;
    struct sk_daemon *d = c->d;
    struct sk_http_req *req = c->req;
    c->waiting = false;
    if (ret == 0 && c->for_run && c->stdin_text != NULL) {
        struct sk_error err = {0};
        if (sk_sched_exec_stdin(d->sched, e->id, c->stdin_text, strlen(c->stdin_text), true, &err) < 0 &&
            err.code != EALREADY) {
            /* EALREADY: it exited without reading, not an error. Anything
             * else would leave it waiting for input that never comes. */
            sk_sched_exec_signal(d->sched, e->id, SIGKILL, NULL);
        }
    }
    if (req == NULL) { /* the client left; the exec runs on (its record says how it ends) */
        start_call_free(c);
        return;
    }
    if (ret < 0) {
        sk_http_reply_error(req, cerr);
        return; /* start_closed frees c */
    }
    if (c->for_run) {
        start_call_free(c); /* wait_for takes the request over (its own close handler) */
        /* a run waits as long as the process may take (its timeout, if any) */
        wait_for(d, req, e->id, 0, true);
        return;
    }
    char location[160];
    snprintf(location, sizeof(location), "/v1/sandboxes/%s/execs/%s", e->sandbox_id, e->id);
    sk_http_set_header(req, "Location", location);
    sk_http_reply_json(req, 201, exec_json(e));
}

/* start_exec - start the exec the body asks for; the answer comes from
 * start_done (while skiff-init starts it, the loop serves others). */
static void start_exec(struct sk_daemon *d, struct sk_http_req *req, const struct exec_body *b, bool for_run)
{
    struct sk_error err = {0};
    _cleanup_free_ const char **argv = sk_strv_from_json(b->argv);
    char **env = NULL;
    if (b->env != NULL && (env = sk_env_from_json(req, b->env)) == NULL)
        return;
    struct sk_exec_req er = {
        .argv = argv,
        .env = (const char *const *)env,
        .workdir = b->workdir,
        .timeout_ms = b->timeout_s * 1000,
        .stdin_pipe = b->want_stdin || b->stdin_text != NULL,
        .pty = b->pty,
        .rows = (uint16_t)b->rows,
        .cols = (uint16_t)b->cols,
    };
    struct start_call *c = xcalloc(1, sizeof(*c));
    c->d = d;
    c->req = req;
    c->waiting = true;
    c->for_run = for_run;
    c->stdin_text = b->stdin_text != NULL ? xstrdup(b->stdin_text) : NULL;
    sk_http_suspend(req);
    sk_http_on_close(req, start_closed, c);
    int r = sk_sched_exec_async(d->sched, sk_http_param(req, "id"), &er, start_done, c, &err);
    sk_env_free(env);
    if (r < 0) {
        c->waiting = false;
        sk_http_reply_error(req, &err);
    }
}

void sk_route_execs_create(struct sk_daemon *d, struct sk_http_req *req)
{
    struct exec_body b;
    if (decode_exec(req, &b, false) < 0)
        return;
    start_exec(d, req, &b, false);
}

void sk_route_execs_list(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec sb;
    memset(&sb, 0, sizeof(sb));
    if (sk_sched_get(d->sched, sk_http_param(req, "id"), &sb, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    struct sk_exec_rec *recs = NULL;
    size_t n = 0;
    int r = sk_store_exec_list(d->store, sb.id, &recs, &n, &err);
    sk_sandbox_rec_release(&sb);
    if (r < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, exec_json(&recs[i]));
    sk_exec_recs_free(recs, n);
    json_t *o = json_object();
    json_object_set_new(o, "execs", arr);
    sk_http_reply_json(req, 200, o);
}

void sk_route_execs_get(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    sk_http_reply_json(req, 200, exec_json(&e));
    sk_exec_rec_release(&e);
}

/* ---- output stream ---------------------------------------------------------- */

struct out_stream {
    struct sk_daemon *d;
    struct sk_http_req *req;
    char *exec_id;
    int fd;
    uint64_t start;
    bool follow;
    bool ended;
    uint64_t watcher;
};

static void out_stream_event(void *arg, const struct sk_exec_rec *rec, bool ended)
{
    (void)rec;
    struct out_stream *s = arg;
    if (ended) {
        s->ended = true;
        s->watcher = 0;
    }
    sk_http_resume(s->req);
}

static ssize_t out_stream_produce(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx)
{
    (void)req;
    struct out_stream *s = ctx;
    ssize_t n = pread(s->fd, buf, max, (off_t)(s->start + pos));
    if (n > 0)
        return n;
    if (n < 0 && errno != EINTR)
        return SK_HTTP_STREAM_ERROR;
    if (s->ended || !s->follow) {
        /* ended: the file is complete, but read once more: the last append
         * may have landed between our read and the end notice */
        n = pread(s->fd, buf, max, (off_t)(s->start + pos));
        return n > 0 ? n : SK_HTTP_STREAM_END;
    }
    return SK_HTTP_STREAM_WAIT;
}

static void out_stream_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct out_stream *s = ctx;
    if (s->watcher != 0)
        sk_sched_exec_watch_cancel(s->d->sched, s->watcher);
    sk_close(&s->fd);
    free(s->exec_id);
    free(s);
}

/* stream_output - answer with one output stream of an exec, from ?offset=,
 * following it until the exec ends unless ?follow=0. */
static void stream_output(struct sk_daemon *d, struct sk_http_req *req, const char *exec_id)
{
    const char *stream = NULL;
    int64_t offset = 0, follow = 1;
    if (sk_http_query_str(req, "stream", 16, &stream) < 0 ||
        sk_http_query_int(req, "offset", 0, INT64_MAX / 2, 0, &offset) < 0 ||
        sk_http_query_int(req, "follow", 0, 1, 1, &follow) < 0)
        return;
    if (stream == NULL)
        stream = "stdout";
    if (strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "query 'stream' must be 'stdout' or 'stderr'");
        return;
    }
    struct sk_error err = {0};
    struct out_stream *s = xcalloc(1, sizeof(*s));
    s->d = d;
    s->req = req;
    s->fd = -1;
    s->exec_id = xstrdup(exec_id);
    s->start = (uint64_t)offset;
    s->follow = follow != 0;
    if (sk_sched_exec_output(d->sched, s->exec_id, stream, &s->fd, &s->ended, &err) < 0 ||
        (!s->ended && s->follow &&
         sk_sched_exec_watch(d->sched, s->exec_id, 0, true, out_stream_event, s, &s->watcher, &err) < 0)) {
        out_stream_closed(req, s);
        sk_http_reply_error(req, &err);
        return;
    }
    char off[32];
    snprintf(off, sizeof(off), "%lld", (long long)offset);
    sk_http_set_header(req, "X-Skiff-Offset", off);
    sk_http_set_header(req, "X-Skiff-Exec", exec_id);
    sk_http_on_close(req, out_stream_closed, s);
    sk_http_reply_stream(req, 200, "application/octet-stream", out_stream_produce, s);
}

void sk_route_execs_output(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    stream_output(d, req, e.id);
    sk_exec_rec_release(&e);
}

/* GET /v1/sandboxes/{id}/logs - the entrypoint's output, like an exec's. */
void sk_route_sandboxes_logs(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    char exec_id[SK_EXEC_ID_LEN + 1];
    if (sk_sched_entrypoint_exec(d->sched, sk_http_param(req, "id"), exec_id, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    stream_output(d, req, exec_id);
}

/* ---- stdin, signal, resize ------------------------------------------------------ */

void sk_route_execs_stdin(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t eof = 0;
    if (sk_http_query_int(req, "eof", 0, 1, 0, &eof) < 0)
        return;
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    struct sk_error err = {0};
    int r = sk_sched_exec_stdin(d->sched, e.id, req->body, req->body_len, eof != 0, &err);
    if (r < 0) {
        sk_http_reply_error(req, &err);
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "written", json_integer((json_int_t)req->body_len));
        json_object_set_new(o, "eof", json_boolean(eof != 0));
        sk_http_reply_json(req, 200, o);
    }
    sk_exec_rec_release(&e);
}

static int signal_from_json(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        return n >= 1 && n <= 64 ? (int)n : -1;
    }
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (int i = 1; i < 65; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev != NULL && strcmp(abbrev, s) == 0)
            return i;
    }
    return -1;
}

void sk_route_execs_signal(struct sk_daemon *d, struct sk_http_req *req)
{
    const json_t *sig = NULL;
    const struct sk_field fields[] = {SK_FIELD_ANY("signal", &sig, SK_REQUIRED)};
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    int signo = signal_from_json(sig);
    if (signo < 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "field 'signal' must be a number 1..64 or a name like \"TERM\" or \"SIGKILL\"");
        return;
    }
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    struct sk_error err = {0};
    if (sk_sched_exec_signal(d->sched, e.id, signo, &err) < 0) {
        sk_http_reply_error(req, &err);
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(e.id));
        json_object_set_new(o, "signal", json_integer(signo));
        sk_http_reply_json(req, 200, o);
    }
    sk_exec_rec_release(&e);
}

void sk_route_execs_resize(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t rows = 0, cols = 0;
    const struct sk_field fields[] = {
        SK_FIELD_INT("rows", &rows, SK_REQUIRED, 1, 65535),
        SK_FIELD_INT("cols", &cols, SK_REQUIRED, 1, 65535),
    };
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    struct sk_error err = {0};
    if (sk_sched_exec_resize(d->sched, e.id, (uint16_t)rows, (uint16_t)cols, &err) < 0)
        sk_http_reply_error(req, &err);
    else
        sk_http_reply_json(req, 200, exec_json(&e));
    sk_exec_rec_release(&e);
}

/* ---- wait and run ------------------------------------------------------------- */

struct exec_waiter {
    struct sk_daemon *d;
    struct sk_http_req *req;
    uint64_t watcher;
    bool run; /* answer with the collected output (POST /run) */
    char *exec_id;
};

/* read_text - up to `max` bytes of an output file as a JSON string; invalid
 * UTF-8 is replaced (U+FFFD) so the answer is always valid JSON. */
static json_t *read_text(struct sk_daemon *d, const char *exec_id, const char *stream, bool *truncated)
{
    struct sk_error err = {0};
    int fd = -1;
    bool ended = false;
    if (sk_sched_exec_output(d->sched, exec_id, stream, &fd, &ended, &err) < 0)
        return json_string("");
    size_t cap = 65536, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= RUN_OUTPUT_MAX) {
                *truncated = true;
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    json_t *s = sk_json_string_lossy(buf, n);
    free(buf);
    return s;
}

static void exec_wait_done(void *arg, const struct sk_exec_rec *rec, bool ended)
{
    struct exec_waiter *w = arg;
    w->watcher = 0;
    json_t *o = exec_json(rec);
    if (!ended)
        json_object_set_new(o, "timed_out_waiting", json_true());
    if (w->run) {
        bool truncated = false;
        json_object_set_new(o, "stdout", read_text(w->d, w->exec_id, "stdout", &truncated));
        json_object_set_new(o, "stderr", read_text(w->d, w->exec_id, "stderr", &truncated));
        json_object_set_new(o, "truncated", json_boolean(truncated));
    }
    sk_http_reply_json(w->req, 200, o);
}

static void exec_wait_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct exec_waiter *w = ctx;
    if (w->watcher != 0)
        sk_sched_exec_watch_cancel(w->d->sched, w->watcher);
    free(w->exec_id);
    free(w);
}

static void wait_for(struct sk_daemon *d, struct sk_http_req *req, const char *exec_id, int64_t timeout_ms, bool run)
{
    struct exec_waiter *w = xcalloc(1, sizeof(*w));
    w->d = d;
    w->req = req;
    w->run = run;
    w->exec_id = xstrdup(exec_id);
    sk_http_suspend(req);
    sk_http_on_close(req, exec_wait_closed, w);
    struct sk_error err = {0};
    uint64_t id = 0;
    if (sk_sched_exec_watch(d->sched, exec_id, timeout_ms, false, exec_wait_done, w, &id, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    w->watcher = id; /* callbacks never run inside sk_sched_exec_watch */
}

void sk_route_execs_wait(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t timeout_s = 0;
    if (sk_http_query_int(req, "timeout", 0, WAIT_MAX_S, 60, &timeout_s) < 0)
        return;
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    wait_for(d, req, e.id, timeout_s * 1000, false);
    sk_exec_rec_release(&e);
}

void sk_route_sandboxes_run(struct sk_daemon *d, struct sk_http_req *req)
{
    struct exec_body b;
    if (decode_exec(req, &b, true) < 0)
        return;
    start_exec(d, req, &b, true);
}
