/* routes_debug.c - endpoints served only with --debug-routes. They drive
 * the three ways of answering later end to end (tests/integration/
 * test_daemon.c) and are the reference for writing such handlers:
 *
 *   GET  /v1/debug/stream?bytes=N&chunk=C&interval_ms=T   streamed answer
 *        whose data "arrives" C bytes every T ms (producer + resume)
 *   GET  /v1/debug/wait?ms=T                              long poll
 *        answered by a timer (suspend + later reply)
 *   POST /v1/debug/sink?delay_ms=T                        body sink taking
 *        64 KiB per T ms (backpressure), answering its size and FNV-1a hash
 *   POST /v1/debug/thread?value=V&sleep_ms=T              a worker thread
 *        that answers V*2 after T ms through a loop wake-up (slow work off
 *        the loop, as image builds will do)
 *   POST /v1/debug/child?exit=N&sleep_ms=T                a child process
 *        that exits with N after T ms, answered from its SIGCHLD (long poll
 *        on a child exit, as sandboxes will do)
 *
 * Each keeps its state in a heap context that the close callback frees:
 * the request can end (client gone, server stopping) at any time.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "routes.h"

#define DEBUG_BYTES_MAX (INT64_C(1) << 34)
#define SINK_PIECE (64 * 1024)

/* ---- streamed answer ------------------------------------------------------------ */

struct debug_stream {
    struct sk_loop *loop;
    struct sk_http_req *req;
    struct sk_loop_timer timer;
    uint64_t total, avail, chunk;
    int64_t interval_ms;
};

static void stream_tick(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    struct debug_stream *s = ctx;
    s->avail = s->avail + s->chunk > s->total ? s->total : s->avail + s->chunk;
    if (s->avail < s->total)
        sk_loop_timer_start(loop, t, s->interval_ms);
    sk_http_resume(s->req); /* data "arrived": wake the sleeping connection */
}

static ssize_t stream_produce(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx)
{
    struct debug_stream *s = ctx;
    (void)req;
    if (pos >= s->total)
        return SK_HTTP_STREAM_END;
    if (pos >= s->avail)
        return SK_HTTP_STREAM_WAIT;
    size_t n = (size_t)(s->avail - pos) < max ? (size_t)(s->avail - pos) : max;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (pos + i) % 26);
    return (ssize_t)n;
}

static void stream_close(struct sk_http_req *req, void *ctx)
{
    struct debug_stream *s = ctx;
    (void)req;
    sk_loop_timer_stop(s->loop, &s->timer);
    free(s);
}

void sk_route_debug_stream(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t bytes, chunk, interval;
    if (sk_http_query_int(req, "bytes", 0, DEBUG_BYTES_MAX, 1024, &bytes) < 0 ||
        sk_http_query_int(req, "chunk", 1, DEBUG_BYTES_MAX, 65536, &chunk) < 0 ||
        sk_http_query_int(req, "interval_ms", 0, 60000, 0, &interval) < 0)
        return;
    struct debug_stream *s = xcalloc(1, sizeof(*s));
    s->loop = d->loop;
    s->req = req;
    s->total = (uint64_t)bytes;
    s->chunk = (uint64_t)chunk;
    s->interval_ms = interval;
    s->avail = interval == 0 ? s->total : 0;
    sk_loop_timer_init(&s->timer, stream_tick, s);
    if (s->avail < s->total)
        sk_loop_timer_start(d->loop, &s->timer, interval);
    sk_http_on_close(req, stream_close, s);
    sk_http_reply_stream(req, 200, "application/octet-stream", stream_produce, s);
}

/* ---- long poll ------------------------------------------------------------------ */

struct debug_wait {
    struct sk_loop *loop;
    struct sk_http_req *req;
    struct sk_loop_timer timer;
    int64_t ms;
};

static void wait_done(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    struct debug_wait *w = ctx;
    (void)loop;
    (void)t;
    sk_http_reply_json(w->req, 200, json_pack("{s:I}", "waited_ms", (json_int_t)w->ms));
}

static void wait_close(struct sk_http_req *req, void *ctx)
{
    struct debug_wait *w = ctx;
    (void)req;
    sk_loop_timer_stop(w->loop, &w->timer);
    free(w);
}

void sk_route_debug_wait(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t ms;
    if (sk_http_query_int(req, "ms", 0, 3600000, 100, &ms) < 0)
        return;
    struct debug_wait *w = xcalloc(1, sizeof(*w));
    w->loop = d->loop;
    w->req = req;
    w->ms = ms;
    sk_loop_timer_init(&w->timer, wait_done, w);
    sk_loop_timer_start(d->loop, &w->timer, ms);
    sk_http_on_close(req, wait_close, w);
    sk_http_suspend(req);
}

/* ---- body sink ------------------------------------------------------------------ */

struct debug_sink {
    struct sk_loop *loop;
    struct sk_http_req *req;
    struct sk_loop_timer timer;
    int64_t delay_ms;
    bool ready; /* may take the next piece */
    uint64_t bytes, hash;
};

static void sink_ready(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    struct debug_sink *s = ctx;
    (void)loop;
    (void)t;
    s->ready = true;
    sk_http_resume(s->req);
}

static ssize_t sink_take(struct sk_http_req *req, const char *data, size_t len, void *ctx)
{
    struct debug_sink *s = ctx;
    if (data == NULL) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, s->hash);
        sk_http_reply_json(req, 200, json_pack("{s:I, s:s}", "bytes", (json_int_t)s->bytes, "fnv1a64", hex));
        return 0;
    }
    if (!s->ready)
        return 0; /* backpressure: the connection sleeps until sink_ready */
    size_t n = len < SINK_PIECE ? len : SINK_PIECE;
    for (size_t i = 0; i < n; i++) {
        s->hash ^= (unsigned char)data[i];
        s->hash *= UINT64_C(0x100000001b3);
    }
    s->bytes += n;
    if (s->delay_ms > 0) {
        s->ready = false;
        sk_loop_timer_start(s->loop, &s->timer, s->delay_ms);
    }
    return (ssize_t)n;
}

static void sink_close(struct sk_http_req *req, void *ctx)
{
    struct debug_sink *s = ctx;
    (void)req;
    sk_loop_timer_stop(s->loop, &s->timer);
    free(s);
}

void sk_route_debug_sink(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t delay;
    if (sk_http_query_int(req, "delay_ms", 0, 10000, 0, &delay) < 0)
        return;
    struct debug_sink *s = xcalloc(1, sizeof(*s));
    s->loop = d->loop;
    s->req = req;
    s->delay_ms = delay;
    s->ready = true;
    s->hash = UINT64_C(0xcbf29ce484222325);
    sk_loop_timer_init(&s->timer, sink_ready, s);
    sk_http_on_close(req, sink_close, s);
    sk_http_body_sink(req, sink_take, s);
}

/* ---- child exit ------------------------------------------------------------------ */

/* The context outlives the request when the client leaves first: the child
 * must still be reaped, so the exit callback frees it. */
struct debug_child {
    struct sk_http_req *req; /* NULL once the request is gone */
    bool exited;
};

static void child_exited(struct sk_loop *loop, pid_t pid, int status, void *ctx)
{
    struct debug_child *c = ctx;
    (void)loop;
    c->exited = true;
    if (c->req == NULL) {
        free(c);
        return;
    }
    json_t *o = json_pack("{s:i}", "pid", (int)pid);
    json_object_set_new(o, "exit_code", WIFEXITED(status) ? json_integer(WEXITSTATUS(status)) : json_null());
    json_object_set_new(o, "signal", WIFSIGNALED(status) ? json_integer(WTERMSIG(status)) : json_null());
    sk_http_reply_json(c->req, 200, o);
}

static void child_close(struct sk_http_req *req, void *ctx)
{
    struct debug_child *c = ctx;
    (void)req;
    if (c->exited)
        free(c);
    else
        c->req = NULL;
}

void sk_route_debug_child(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t code, sleep_ms;
    if (sk_http_query_int(req, "exit", 0, 255, 0, &code) < 0 ||
        sk_http_query_int(req, "sleep_ms", 0, 60000, 0, &sleep_ms) < 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        struct sk_error err;
        sk_error_set(&err, errno, "fork");
        sk_http_reply_error(req, &err);
        return;
    }
    if (pid == 0) {
        struct timespec ts = {.tv_sec = sleep_ms / 1000, .tv_nsec = (sleep_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        _exit((int)code);
    }
    struct debug_child *c = xcalloc(1, sizeof(*c));
    c->req = req;
    struct sk_error err;
    if (sk_loop_child_watch(d->loop, pid, child_exited, c, &err) < 0) {
        free(c);
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_on_close(req, child_close, c);
    sk_http_suspend(req);
}

/* ---- worker thread ---------------------------------------------------------------- */

/* Shared with the thread: `value`, `sleep_ms` and `result` are written
 * before the wake-up is sent and read after it arrives (the eventfd write
 * and read order them); nothing else is touched by the thread. */
struct debug_thread {
    struct sk_loop *loop;
    struct sk_http_req *req; /* NULL once the request is gone (loop thread only) */
    struct sk_loop_async *wake;
    pthread_t thread;
    int64_t value, sleep_ms, result;
};

static void *thread_main(void *arg)
{
    struct debug_thread *t = arg;
    struct timespec ts = {.tv_sec = t->sleep_ms / 1000, .tv_nsec = (t->sleep_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    t->result = t->value * 2;
    sk_loop_async_send(t->wake);
    return NULL;
}

static void thread_done(struct sk_loop *loop, void *ctx)
{
    struct debug_thread *t = ctx;
    pthread_join(t->thread, NULL);
    if (t->req != NULL) {
        sk_http_on_close(t->req, NULL, NULL);
        sk_http_reply_json(t->req, 200, json_pack("{s:I}", "result", (json_int_t)t->result));
    }
    sk_loop_async_free(loop, t->wake);
    free(t);
}

static void thread_close(struct sk_http_req *req, void *ctx)
{
    struct debug_thread *t = ctx;
    (void)req;
    t->req = NULL; /* the thread still runs: thread_done frees */
}

void sk_route_debug_thread(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t value, sleep_ms;
    if (sk_http_query_int(req, "value", -1000000, 1000000, 21, &value) < 0 ||
        sk_http_query_int(req, "sleep_ms", 0, 60000, 0, &sleep_ms) < 0)
        return;
    struct debug_thread *t = xcalloc(1, sizeof(*t));
    t->loop = d->loop;
    t->req = req;
    t->value = value;
    t->sleep_ms = sleep_ms;
    struct sk_error err;
    if (sk_loop_async_new(d->loop, thread_done, t, &t->wake, &err) < 0) {
        free(t);
        sk_http_reply_error(req, &err);
        return;
    }
    int r = pthread_create(&t->thread, NULL, thread_main, t);
    if (r != 0) {
        sk_loop_async_free(d->loop, t->wake);
        free(t);
        sk_error_set(&err, r, "pthread_create");
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_on_close(req, thread_close, t);
    sk_http_suspend(req);
}
