#include "runtime/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "proto/channel.h"
#include "proto/proto.h"

/* Events kept while nobody asks for them; a sane skiff-init has at most one
 * per process it runs (SK_INIT_PROCS_MAX, 1024), so more means abuse. */
#define AGENT_EVENTS_MAX 4096

_Static_assert(SK_AGENT_WATCH_PATH_MAX == SK_PROTO_PATH_MAX, "a watch event's path is a protocol path");
_Static_assert((int)SK_AGENT_WATCH_CREATE == (int)SK_PROTO_WATCH_CREATE &&
                   (int)SK_AGENT_WATCH_MODIFY == (int)SK_PROTO_WATCH_MODIFY &&
                   (int)SK_AGENT_WATCH_DELETE == (int)SK_PROTO_WATCH_DELETE &&
                   (int)SK_AGENT_WATCH_MOVE_FROM == (int)SK_PROTO_WATCH_MOVE_FROM &&
                   (int)SK_AGENT_WATCH_MOVE_TO == (int)SK_PROTO_WATCH_MOVE_TO &&
                   (int)SK_AGENT_WATCH_OVERFLOW == (int)SK_PROTO_WATCH_OVERFLOW,
               "watch kinds are the protocol's");

/* A queued watch event; path is NULL when empty. */
struct agent_watch_event {
    uint32_t watch_id;
    uint8_t kind;
    char type;
    uint32_t cookie;
    char *path;
};

/* A watch this connection added. */
struct agent_watch {
    uint32_t id;
    bool lost; /* an event was dropped (queue full): an overflow is owed */
};

/* A SPAWN sent by sk_agent_spawn_start whose reply is kept for
 * sk_agent_spawn_finish (whoever reads the socket first stashes it). */
struct agent_pending {
    uint32_t id; /* request id; 0: free slot */
    bool done;
    bool pty, want_stdin, output_to_fds;
    uint32_t want; /* SK_PROTO_FD_* the reply must carry */
    int code;      /* done with an error: its errno, msg */
    char msg[SK_ERROR_MSG_MAX];
    uint32_t proc_id, pid, fds_mask;
    int fds[SK_PROTO_MAX_FDS];
    size_t nfds;
    char argv0[64];
};
#define AGENT_PENDING_MAX 64

struct sk_agent {
    int fd;
    uint32_t next_id;
    int timeout_ms;
    bool gone; /* skiff-init closed the socket */
    struct sk_agent_event *events;
    size_t ev_head, ev_len, ev_cap;
    struct agent_watch_event *wevents;
    size_t wev_head, wev_len, wev_cap;
    struct agent_watch *watches;
    size_t n_watches, watches_cap;
    struct agent_pending pending[AGENT_PENDING_MAX];
    size_t n_pending; /* slots in use */
    uint8_t rx[SK_PROTO_MSG_MAX];
    uint8_t tx[SK_PROTO_MSG_MAX];
};

static void close_fds(int *fds, size_t n);
static bool stash_reply(struct sk_agent *a, const struct sk_proto_msg *m, int *fds, size_t nfds);

int sk_agent_new(int fd, struct sk_agent **out, struct sk_error *err)
{
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) {
        if (fd >= 0)
            close(fd);
        return sk_error_setv(err, EINVAL, "fd %d is not a SOCK_SEQPACKET socket", fd);
    }
    struct sk_agent *a = xcalloc(1, sizeof(*a));
    a->fd = fd;
    a->next_id = 1;
    a->timeout_ms = SK_AGENT_DEFAULT_TIMEOUT_MS;
    *out = a;
    return 0;
}

void sk_agent_free(struct sk_agent *a)
{
    if (a == NULL)
        return;
    sk_close(&a->fd);
    free(a->events);
    for (size_t i = a->wev_head; i < a->wev_len; i++)
        free(a->wevents[i].path);
    free(a->wevents);
    free(a->watches);
    for (size_t i = 0; i < AGENT_PENDING_MAX; i++)
        if (a->pending[i].id != 0)
            close_fds(a->pending[i].fds, a->pending[i].nfds);
    free(a);
}

int sk_agent_fd(const struct sk_agent *a)
{
    return a->fd;
}

void sk_agent_set_timeout(struct sk_agent *a, int timeout_ms)
{
    a->timeout_ms = timeout_ms > 0 ? timeout_ms : SK_AGENT_DEFAULT_TIMEOUT_MS;
}

/* ---- transport ---- */

static int64_t deadline_in(int timeout_ms)
{
    if (timeout_ms < 0)
        return INT64_MAX;
    return sk_now_ns() + (int64_t)timeout_ms * 1000000;
}

/* wait_fd - poll fd for `events` until the deadline: 1 ready, 0 timed out. */
static int wait_fd(int fd, short events, int64_t deadline, struct sk_error *err)
{
    for (;;) {
        int ms = -1;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - sk_now_ns();
            if (left < 0)
                left = 0;
            ms = left / 1000000 > INT_MAX ? INT_MAX : (int)((left + 999999) / 1000000);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return sk_error_set(err, errno, "poll control socket");
        if (r > 0)
            return 1;
        if (ms == 0 || (deadline != INT64_MAX && sk_now_ns() >= deadline))
            return 0;
    }
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sk_close(&fds[i]);
}

static int agent_send(struct sk_agent *a, const struct sk_proto_msg *m, const int *fds, size_t nfds, int64_t deadline,
                      struct sk_error *err)
{
    size_t len;
    int r = sk_proto_encode(m, a->tx, sizeof(a->tx), &len, err);
    if (r < 0)
        return r;
    for (;;) {
        r = sk_channel_send(a->fd, a->tx, len, fds, nfds, true, err);
        if (r == -EPIPE) {
            a->gone = true;
            return sk_error_setv(err, EPIPE, "skiff-init is gone");
        }
        if (r != -EAGAIN)
            return r;
        r = wait_fd(a->fd, POLLOUT, deadline, err);
        if (r < 0)
            return r;
        if (r == 0)
            return sk_error_setv(err, ETIMEDOUT, "skiff-init does not take requests");
    }
}

/* agent_recv - one decoded message before the deadline: 1 = *m (pointing
 * into a->rx) and its fds, 0 = nothing in time, < 0 = error. */
static int agent_recv(struct sk_agent *a, int64_t deadline, struct sk_proto_msg *m, int *fds, size_t *nfds,
                      struct sk_error *err)
{
    if (a->gone)
        return sk_error_setv(err, EPIPE, "skiff-init is gone");
    for (;;) {
        size_t len;
        int r = sk_channel_recv(a->fd, a->rx, sizeof(a->rx), &len, fds, SK_PROTO_MAX_FDS, nfds, true, err);
        if (r == 0) {
            a->gone = true;
            return sk_error_setv(err, EPIPE, "skiff-init is gone");
        }
        if (r == -EAGAIN) {
            r = wait_fd(a->fd, POLLIN, deadline, err);
            if (r <= 0)
                return r;
            continue;
        }
        if (r == -EMSGSIZE || r == -EPROTO)
            return sk_error_prefix(err, "skiff-init sent a bad message");
        if (r < 0)
            return r;
        struct sk_error bad = {0};
        if (sk_proto_decode(a->rx, len, m, &bad) < 0) {
            close_fds(fds, *nfds);
            *nfds = 0;
            /* EPROTO whatever was wrong (a value out of its domain is
             * EINVAL to the decoder): callers tell a bad message from a
             * lost connection by it. */
            return sk_error_setv(err, EPROTO, "skiff-init sent a bad message: %s", bad.msg);
        }
        return 1;
    }
}

static void queue_event(struct sk_agent *a, const struct sk_proto_msg *m)
{
    if (a->ev_len - a->ev_head >= AGENT_EVENTS_MAX) {
        sk_log_warn("skiff-init floods exit events; dropping one for process %u", m->u.exit.proc_id);
        return;
    }
    if (a->ev_len == a->ev_cap) {
        if (a->ev_head > 0) {
            memmove(a->events, a->events + a->ev_head, (a->ev_len - a->ev_head) * sizeof(*a->events));
            a->ev_len -= a->ev_head;
            a->ev_head = 0;
        } else {
            a->ev_cap = a->ev_cap ? a->ev_cap * 2 : 16;
            a->events = xrealloc(a->events, a->ev_cap * sizeof(*a->events));
        }
    }
    struct sk_agent_event *ev = &a->events[a->ev_len++];
    ev->proc_id = m->u.exit.proc_id;
    ev->exit_code = m->u.exit.exit_code;
    ev->signo = (int)m->u.exit.signo;
    ev->timed_out = m->u.exit.timed_out;
    ev->core_dumped = m->u.exit.core_dumped;
}

static struct agent_watch *find_watch(struct sk_agent *a, uint32_t id)
{
    for (size_t i = 0; i < a->n_watches; i++)
        if (a->watches[i].id == id)
            return &a->watches[i];
    return NULL;
}

/* wev_append - queue a watch event if there is room; path is taken. */
static bool wev_append(struct sk_agent *a, uint32_t watch_id, uint8_t kind, char type, uint32_t cookie, char *path)
{
    if (a->wev_len - a->wev_head >= SK_AGENT_WATCH_EVENTS_MAX)
        return false;
    if (a->wev_len == a->wev_cap) {
        if (a->wev_head > 0) {
            memmove(a->wevents, a->wevents + a->wev_head, (a->wev_len - a->wev_head) * sizeof(*a->wevents));
            a->wev_len -= a->wev_head;
            a->wev_head = 0;
        } else {
            a->wev_cap = a->wev_cap ? a->wev_cap * 2 : 64;
            a->wevents = xrealloc(a->wevents, a->wev_cap * sizeof(*a->wevents));
        }
    }
    a->wevents[a->wev_len++] =
        (struct agent_watch_event){.watch_id = watch_id, .kind = kind, .type = type, .cookie = cookie, .path = path};
    return true;
}

/* pay_overflows - queue the overflow events owed, while there is room. */
static void pay_overflows(struct sk_agent *a)
{
    for (size_t i = 0; i < a->n_watches; i++) {
        struct agent_watch *w = &a->watches[i];
        if (w->lost && wev_append(a, w->id, SK_PROTO_WATCH_OVERFLOW, SK_PROTO_WATCH_TYPE_UNKNOWN, 0, NULL))
            w->lost = false;
    }
}

/* queue_watch_event - keep a WATCH_EVENT (the decoder has checked its
 * values and that its path is relative and free of "." and ".."). Events
 * of watches we did not add are dropped: a compromised skiff-init cannot
 * grow what we keep beyond our own watches. */
static void queue_watch_event(struct sk_agent *a, const struct sk_proto_msg *m)
{
    struct agent_watch *w = find_watch(a, m->u.watch_event.watch_id);
    if (w == NULL)
        return;
    pay_overflows(a);
    if (w->lost) /* still owed: no room */
        return;
    struct sk_proto_str p = m->u.watch_event.path;
    char *path = p.len ? xstrndup(p.ptr, p.len) : NULL;
    if (!wev_append(a, w->id, m->u.watch_event.kind, (char)m->u.watch_event.type, m->u.watch_event.cookie, path)) {
        free(path);
        sk_log_warn("nobody reads the events of watch %u: dropping them until there is room", w->id);
        w->lost = true;
    }
}

/* queue_any_event - put an event (request id 0) in its queue; false when
 * the message is not an event. */
static bool queue_any_event(struct sk_agent *a, const struct sk_proto_msg *m)
{
    if (m->id != 0)
        return false;
    if (m->type == SK_PROTO_EXIT)
        queue_event(a, m);
    else if (m->type == SK_PROTO_WATCH_EVENT)
        queue_watch_event(a, m);
    else
        return false;
    return true;
}

/* error_from_reply - skiff-init's ERROR as our error, with its errno (the
 * decoder bounded it to 1..4095) and its message minus control characters,
 * which could otherwise reach a terminal through logs. */
static int error_from_reply(const struct sk_proto_msg *m, struct sk_error *err)
{
    char msg[SK_PROTO_ERRMSG_MAX + 1];
    size_t n = m->u.error.message.len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m->u.error.message.ptr[i];
        msg[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    msg[n] = '\0';
    return sk_error_setv(err, (int)m->u.error.code, "%s", n ? msg : "skiff-init reported an error");
}

/* wait_reply - read until the reply to request `id`, queueing EXIT events
 * and dropping replies to abandoned requests. ERROR replies become errors. */
static int wait_reply(struct sk_agent *a, uint32_t id, int64_t deadline, struct sk_proto_msg *m, int *fds, size_t *nfds,
                      struct sk_error *err)
{
    for (;;) {
        int r = agent_recv(a, deadline, m, fds, nfds, err);
        if (r == 0)
            return sk_error_setv(err, ETIMEDOUT, "skiff-init did not answer in time");
        if (r < 0)
            return r;
        if (queue_any_event(a, m)) {
            close_fds(fds, *nfds);
            continue;
        }
        /* An ERROR that names no request: skiff-init could not read ours,
         * or refuses this connection (EBUSY: another owner is connected). */
        if (m->type == SK_PROTO_ERROR && m->id == 0) {
            close_fds(fds, *nfds);
            return error_from_reply(m, err);
        }
        if (m->id != id) {
            if (!stash_reply(a, m, fds, *nfds))
                close_fds(fds, *nfds);
            continue;
        }
        if (m->type == SK_PROTO_ERROR) {
            close_fds(fds, *nfds);
            return error_from_reply(m, err);
        }
        return 0;
    }
}

/* expect - the reply has `type` and exactly `want` fds; otherwise its fds
 * are closed and the call fails with EPROTO. */
static int expect(const struct sk_proto_msg *m, uint8_t type, int *fds, size_t nfds, size_t want, struct sk_error *err)
{
    if (m->type == type && nfds == want)
        return 0;
    close_fds(fds, nfds);
    return sk_error_setv(err, EPROTO, "skiff-init answered with '%s' and %zu fds where '%s' and %zu were due",
                         sk_proto_type_name(m->type), nfds, sk_proto_type_name(type), want);
}

/* gone_because - the send failed with EPIPE: skiff-init may have said why
 * before it closed (a refused connection: ERROR(EBUSY) with id 0). Read what
 * it left, keeping EXIT events; its ERROR, if any, becomes ours. */
static int gone_because(struct sk_agent *a, struct sk_error *err)
{
    for (;;) {
        int fds[SK_PROTO_MAX_FDS];
        size_t len, nfds = 0;
        struct sk_proto_msg m;
        int r = sk_channel_recv(a->fd, a->rx, sizeof(a->rx), &len, fds, SK_PROTO_MAX_FDS, &nfds, true, NULL);
        if (r <= 0 && r != -EMSGSIZE && r != -EPROTO)
            break;
        close_fds(fds, nfds);
        if (r < 0 || sk_proto_decode(a->rx, len, &m, NULL) < 0 || m.id != 0)
            continue;
        if (m.type == SK_PROTO_ERROR)
            return error_from_reply(&m, err);
        queue_any_event(a, &m);
    }
    return sk_error_setv(err, EPIPE, "skiff-init is gone");
}

/* call_with_fds - send `req` with a fresh id and `nreq` fds (borrowed) and
 * wait for its reply (see expect); the reply's fds land in out_fds
 * (want_fds of them). */
static int call_with_fds(struct sk_agent *a, struct sk_proto_msg *req, const int *req_fds, size_t nreq, int timeout_ms,
                         uint8_t reply_type, struct sk_proto_msg *reply, int *out_fds, size_t want_fds,
                         struct sk_error *err)
{
    if (a->gone)
        return sk_error_setv(err, EPIPE, "skiff-init is gone");
    req->id = a->next_id++;
    if (a->next_id == 0)
        a->next_id = 1; /* 0 is for events */
    int64_t deadline = deadline_in(timeout_ms);
    int r = agent_send(a, req, req_fds, nreq, deadline, err);
    if (r == -EPIPE)
        return gone_because(a, err);
    if (r < 0)
        return r;
    int fds[SK_PROTO_MAX_FDS];
    size_t nfds = 0;
    r = wait_reply(a, req->id, deadline, reply, fds, &nfds, err);
    if (r < 0)
        return r;
    r = expect(reply, reply_type, fds, nfds, want_fds, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < nfds; i++)
        out_fds[i] = fds[i];
    return 0;
}

/* call - call_with_fds without fds in the request. */
static int call(struct sk_agent *a, struct sk_proto_msg *req, int timeout_ms, uint8_t reply_type,
                struct sk_proto_msg *reply, int *out_fds, size_t want_fds, struct sk_error *err)
{
    return call_with_fds(a, req, NULL, 0, timeout_ms, reply_type, reply, out_fds, want_fds, err);
}

/* check_fd - fd is of file type `type` (S_IFREG, ...) and opened with an
 * access mode in `modes` (bit 1 << O_RDONLY etc.). */
static bool check_fd(int fd, mode_t type, unsigned modes)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) < 0)
        return false;
    return (st.st_mode & S_IFMT) == type && (modes & (1u << (fl & O_ACCMODE)));
}
#define READABLE ((1u << O_RDONLY) | (1u << O_RDWR))
#define WRITABLE ((1u << O_WRONLY) | (1u << O_RDWR))

/* ---- requests ---- */

int sk_agent_hello(struct sk_agent *a, int timeout_ms, pid_t *init_pid, struct sk_error *err)
{
    struct sk_proto_msg req = {.type = SK_PROTO_HELLO}, reply;
    req.u.hello.version = SK_PROTO_VERSION;
    int r = call(a, &req, timeout_ms < 0 ? a->timeout_ms : timeout_ms, SK_PROTO_HELLO_OK, &reply, NULL, 0, err);
    if (r < 0)
        return sk_error_prefix(err, "hello");
    if (reply.u.hello_ok.version != SK_PROTO_VERSION)
        return sk_error_setv(err, EPROTO, "skiff-init speaks protocol version %u, not %d", reply.u.hello_ok.version,
                             SK_PROTO_VERSION);
    if (reply.u.hello_ok.pid == 0 || reply.u.hello_ok.pid > INT_MAX)
        return sk_error_setv(err, EPROTO, "skiff-init reports pid %u", reply.u.hello_ok.pid);
    if (init_pid)
        *init_pid = (pid_t)reply.u.hello_ok.pid;
    return 0;
}

static int count_strv(const char *const *v, uint32_t *count, const char *what, struct sk_error *err)
{
    uint32_t n = 0;
    if (v != NULL)
        for (; v[n] != NULL; n++)
            if (n >= SK_PROTO_STRV_MAX)
                return sk_error_setv(err, E2BIG, "%s has more than %d entries", what, SK_PROTO_STRV_MAX);
    *count = n;
    return 0;
}

int sk_agent_spawn(struct sk_agent *a, const struct sk_agent_spawn *s, struct sk_agent_proc *out, struct sk_error *err)
{
    *out = (struct sk_agent_proc){.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1};
    uint32_t ticket = 0;
    int r = sk_agent_spawn_start(a, s, &ticket, err);
    if (r < 0)
        return r;
    int64_t deadline = deadline_in(a->timeout_ms);
    for (;;) {
        r = sk_agent_spawn_finish(a, ticket, out, err);
        if (r != 0)
            return r < 0 ? r : 0;
        struct sk_proto_msg m;
        int fds[SK_PROTO_MAX_FDS];
        size_t nfds = 0;
        r = agent_recv(a, deadline, &m, fds, &nfds, err);
        if (r <= 0) {
            sk_agent_spawn_abandon(a, ticket);
            return r == 0 ? sk_error_setv(err, ETIMEDOUT, "skiff-init did not answer in time") : r;
        }
        /* An ERROR that names no request: skiff-init could not read ours,
         * or refuses this connection (EBUSY: another owner is connected). */
        if (m.type == SK_PROTO_ERROR && m.id == 0) {
            close_fds(fds, nfds);
            sk_agent_spawn_abandon(a, ticket);
            return error_from_reply(&m, err);
        }
        /* events to their queues, answers (ours too) kept by ticket */
        if (queue_any_event(a, &m) || !stash_reply(a, &m, fds, nfds))
            close_fds(fds, nfds);
    }
}

/* ---- asynchronous spawn ---- */

static struct agent_pending *pending_find(struct sk_agent *a, uint32_t id)
{
    for (size_t i = 0; id != 0 && i < AGENT_PENDING_MAX; i++)
        if (a->pending[i].id == id)
            return &a->pending[i];
    return NULL;
}

/* stash_reply - keep the reply to a pending spawn (its fds taken); false
 * when m answers nothing pending. */
static bool stash_reply(struct sk_agent *a, const struct sk_proto_msg *m, int *fds, size_t nfds)
{
    struct agent_pending *p = pending_find(a, m->id);
    if (p == NULL || p->done)
        return false;
    p->done = true;
    if (m->type == SK_PROTO_ERROR) {
        struct sk_error e = {0};
        error_from_reply(m, &e);
        p->code = e.code;
        memcpy(p->msg, e.msg, sizeof(p->msg));
        close_fds(fds, nfds);
        return true;
    }
    if (m->type != SK_PROTO_SPAWN_OK || nfds != (size_t)__builtin_popcount(p->want)) {
        p->code = EPROTO;
        snprintf(p->msg, sizeof(p->msg), "skiff-init answered a spawn with '%s' and %zu fds",
                 sk_proto_type_name(m->type), nfds);
        close_fds(fds, nfds);
        return true;
    }
    p->proc_id = m->u.spawn_ok.proc_id;
    p->pid = m->u.spawn_ok.pid;
    p->fds_mask = m->u.spawn_ok.fds;
    for (size_t i = 0; i < nfds; i++)
        p->fds[i] = fds[i];
    p->nfds = nfds;
    return true;
}

int sk_agent_spawn_start(struct sk_agent *a, const struct sk_agent_spawn *s, uint32_t *ticket, struct sk_error *err)
{
    *ticket = 0;
    if (s->argv == NULL || s->argv[0] == NULL || s->argv[0][0] == '\0')
        return sk_error_setv(err, EINVAL, "spawn: argv[0] is missing");
    if (s->timeout_ms < 0)
        return sk_error_setv(err, EINVAL, "spawn: negative timeout");
    if (s->output_to_fds && (s->pty || s->stdout_fd < 0 || s->stderr_fd < 0))
        return sk_error_setv(err, EINVAL, "spawn: output fds need two fds and no pty");
    if (a->gone)
        return sk_error_setv(err, EPIPE, "skiff-init is gone");
    struct agent_pending *p = NULL;
    for (size_t i = 0; i < AGENT_PENDING_MAX && p == NULL; i++)
        if (a->pending[i].id == 0)
            p = &a->pending[i];
    if (p == NULL)
        return sk_error_setv(err, EAGAIN, "spawn: %d spawns are already in flight", AGENT_PENDING_MAX);
    struct sk_proto_msg req = {.type = SK_PROTO_SPAWN};
    int r = count_strv(s->argv, &req.u.spawn.argv.count, "argv", err);
    if (r < 0)
        return r;
    r = count_strv(s->envp, &req.u.spawn.envp.count, "envp", err);
    if (r < 0)
        return r;
    static const char *const empty[] = {NULL};
    req.u.spawn.argv.vec = s->argv;
    req.u.spawn.envp.vec = s->envp ? s->envp : empty;
    req.u.spawn.cwd = sk_proto_str_c(s->cwd);
    if (req.u.spawn.cwd.len > SK_PROTO_PATH_MAX)
        return sk_error_setv(err, ENAMETOOLONG, "spawn: cwd is longer than %d bytes", SK_PROTO_PATH_MAX);
    req.u.spawn.flags = (s->pty ? SK_PROTO_SPAWN_PTY : 0) | (s->want_stdin ? SK_PROTO_SPAWN_STDIN : 0) |
                        (s->output_to_fds ? SK_PROTO_SPAWN_OUTPUT_FDS : 0);
    req.u.spawn.rows = s->rows;
    req.u.spawn.cols = s->cols;
    req.u.spawn.timeout_ms = s->timeout_ms;
    req.id = a->next_id++;
    if (a->next_id == 0)
        a->next_id = 1;
    int out_fds[2] = {s->stdout_fd, s->stderr_fd};
    r = agent_send(a, &req, out_fds, s->output_to_fds ? 2 : 0, deadline_in(a->timeout_ms), err);
    if (r < 0) {
        if (r == -EPIPE)
            return gone_because(a, err);
        if (err && err->code == EMSGSIZE)
            return sk_error_setv(err, E2BIG, "spawn '%s': argv and envp exceed one message (%d bytes)", s->argv[0],
                                 SK_PROTO_PAYLOAD_MAX);
        return r;
    }
    *p = (struct agent_pending){.id = req.id,
                                .pty = s->pty,
                                .want_stdin = s->want_stdin,
                                .output_to_fds = s->output_to_fds,
                                .want = s->pty ? SK_PROTO_FD_PTY
                                               : (s->output_to_fds ? 0 : SK_PROTO_FD_STDOUT | SK_PROTO_FD_STDERR) |
                                                     (s->want_stdin ? SK_PROTO_FD_STDIN : 0)};
    snprintf(p->argv0, sizeof(p->argv0), "%s", s->argv[0]);
    a->n_pending++;
    *ticket = req.id;
    return 0;
}

int sk_agent_spawn_finish(struct sk_agent *a, uint32_t ticket, struct sk_agent_proc *out, struct sk_error *err)
{
    *out = (struct sk_agent_proc){.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1};
    struct agent_pending *p = pending_find(a, ticket);
    if (p == NULL)
        return sk_error_setv(err, ENOENT, "no spawn %u in flight", ticket);
    if (!p->done) {
        if (a->gone) {
            p->id = 0;
            a->n_pending--;
            return sk_error_setv(err, EPIPE, "skiff-init is gone");
        }
        return 0;
    }
    struct agent_pending done = *p;
    p->id = 0;
    a->n_pending--;
    if (done.code != 0)
        return sk_error_setv(err, done.code, "%s", done.msg);
    bool ok = done.fds_mask == done.want && done.pid > 0 && done.pid <= INT_MAX;
    size_t i = 0;
    if (ok && done.pty) {
        ok = check_fd(done.fds[0], S_IFCHR, 1u << O_RDWR);
    } else if (ok) {
        if (done.want_stdin)
            ok = check_fd(done.fds[i++], S_IFIFO, 1u << O_WRONLY);
        if (!done.output_to_fds)
            ok = ok && check_fd(done.fds[i], S_IFIFO, 1u << O_RDONLY) &&
                 check_fd(done.fds[i + 1], S_IFIFO, 1u << O_RDONLY);
    }
    if (!ok) {
        close_fds(done.fds, done.nfds);
        sk_agent_signal(a, done.proc_id, SIGKILL, NULL);
        return sk_error_setv(err, EPROTO, "spawn '%s': skiff-init passed the wrong file descriptors", done.argv0);
    }
    out->id = done.proc_id;
    out->pid = (pid_t)done.pid;
    if (done.pty) {
        out->pty_fd = done.fds[0];
    } else {
        i = 0;
        if (done.want_stdin)
            out->stdin_fd = done.fds[i++];
        if (!done.output_to_fds) {
            out->stdout_fd = done.fds[i];
            out->stderr_fd = done.fds[i + 1];
        }
    }
    return 1;
}

void sk_agent_spawn_abandon(struct sk_agent *a, uint32_t ticket)
{
    struct agent_pending *p = pending_find(a, ticket);
    if (p == NULL)
        return;
    if (p->done && p->code == 0) {
        close_fds(p->fds, p->nfds);
        sk_agent_signal(a, p->proc_id, SIGKILL, NULL); /* nobody will follow it */
    }
    p->id = 0;
    a->n_pending--;
}

int sk_agent_signal(struct sk_agent *a, uint32_t proc_id, int signo, struct sk_error *err)
{
    if (signo < 1 || signo > SK_PROTO_SIGNAL_MAX)
        return sk_error_setv(err, EINVAL, "signal %d is out of range", signo);
    struct sk_proto_msg req = {.type = SK_PROTO_SIGNAL}, reply;
    req.u.signal.proc_id = proc_id;
    req.u.signal.signo = (uint32_t)signo;
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}

int sk_agent_resize(struct sk_agent *a, uint32_t proc_id, uint16_t rows, uint16_t cols, struct sk_error *err)
{
    struct sk_proto_msg req = {.type = SK_PROTO_RESIZE}, reply;
    req.u.resize.proc_id = proc_id;
    req.u.resize.rows = rows;
    req.u.resize.cols = cols;
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}

int sk_agent_list_procs(struct sk_agent *a, struct sk_agent_proc_info **procs, size_t *n, struct sk_error *err)
{
    *procs = NULL;
    *n = 0;
    struct sk_proto_msg req = {.type = SK_PROTO_LIST_PROCS}, reply;
    int r = call(a, &req, a->timeout_ms, SK_PROTO_PROCS, &reply, NULL, 0, err);
    if (r < 0)
        return r;
    uint32_t count = reply.u.procs.count; /* <= SK_PROTO_PROCS_MAX, by the decoder */
    if (count == 0)
        return 0;
    struct sk_agent_proc_info *v = xcalloc(count, sizeof(*v));
    uint32_t cur = 0, i = 0;
    struct sk_proto_proc p;
    while (i < count && sk_proto_procs_next(&reply.u.procs, &cur, &p)) {
        bool dup = false;
        for (uint32_t k = 0; k < i; k++)
            dup |= v[k].id == p.proc_id;
        if (p.proc_id == 0 || dup || (!p.exited && (p.pid == 0 || p.pid > INT_MAX))) {
            free(v);
            return sk_error_setv(err, EPROTO, "list processes: skiff-init reports a bad process %u", p.proc_id);
        }
        struct sk_agent_proc_info *o = &v[i++];
        o->id = p.proc_id;
        o->pid = p.pid <= INT_MAX ? (pid_t)p.pid : 0;
        o->pty = p.flags & SK_PROTO_SPAWN_PTY;
        o->want_stdin = p.flags & SK_PROTO_SPAWN_STDIN;
        o->output_to_fds = p.flags & SK_PROTO_SPAWN_OUTPUT_FDS;
        o->exited = p.exited;
        o->end.proc_id = p.proc_id;
        o->end.exit_code = p.exit_code;
        o->end.signo = (int)p.signo;
        o->end.timed_out = p.timed_out;
        o->end.core_dumped = p.core_dumped;
    }
    *procs = v;
    *n = i;
    return 0;
}

int sk_agent_release(struct sk_agent *a, uint32_t proc_id, struct sk_error *err)
{
    struct sk_proto_msg req = {.type = SK_PROTO_RELEASE}, reply;
    req.u.proc_ref.proc_id = proc_id;
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}

int sk_agent_open_pty(struct sk_agent *a, uint32_t proc_id, int *fd, struct sk_error *err)
{
    *fd = -1;
    struct sk_proto_msg req = {.type = SK_PROTO_OPEN_PTY}, reply;
    req.u.proc_ref.proc_id = proc_id;
    int fds[1] = {-1};
    int r = call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, fds, 1, err);
    if (r < 0)
        return r;
    if (!check_fd(fds[0], S_IFCHR, 1u << O_RDWR)) {
        close(fds[0]);
        return sk_error_setv(err, EPROTO, "open pty of process %u: skiff-init passed something other than a pty",
                             proc_id);
    }
    *fd = fds[0];
    return 0;
}

int sk_agent_next_event(struct sk_agent *a, struct sk_agent_event *ev, int timeout_ms, struct sk_error *err)
{
    int64_t deadline = deadline_in(timeout_ms);
    for (;;) {
        if (a->ev_head < a->ev_len) {
            *ev = a->events[a->ev_head++];
            if (a->ev_head == a->ev_len)
                a->ev_head = a->ev_len = 0;
            return 1;
        }
        struct sk_proto_msg m;
        int fds[SK_PROTO_MAX_FDS];
        size_t nfds = 0;
        int r = agent_recv(a, deadline, &m, fds, &nfds, err);
        if (r <= 0)
            return r;
        /* Watch events go to their queue, replies to sk_agent_spawn_start
         * to theirs; anything else answers an abandoned request. */
        if (queue_any_event(a, &m) || !stash_reply(a, &m, fds, nfds))
            close_fds(fds, nfds);
    }
}

bool sk_agent_has_pending_events(const struct sk_agent *a)
{
    return a->ev_head < a->ev_len;
}

/* ---- watches ---- */

const char *sk_agent_watch_kind_name(enum sk_agent_watch_kind kind)
{
    return sk_proto_watch_kind_name((unsigned)kind);
}

bool sk_agent_has_pending_watch_events(const struct sk_agent *a)
{
    if (a->wev_head < a->wev_len)
        return true;
    for (size_t i = 0; i < a->n_watches; i++)
        if (a->watches[i].lost)
            return true;
    return false;
}

int sk_agent_next_watch_event(struct sk_agent *a, struct sk_agent_watch_event *ev, int timeout_ms, struct sk_error *err)
{
    int64_t deadline = deadline_in(timeout_ms);
    for (;;) {
        if (a->wev_head == a->wev_len)
            pay_overflows(a);
        if (a->wev_head < a->wev_len) {
            struct agent_watch_event *q = &a->wevents[a->wev_head++];
            ev->watch_id = q->watch_id;
            ev->kind = (enum sk_agent_watch_kind)q->kind;
            ev->type = q->type;
            ev->cookie = q->cookie;
            size_t n = q->path ? strlen(q->path) : 0;
            memcpy(ev->path, q->path ? q->path : "", n + 1);
            free(q->path);
            if (a->wev_head == a->wev_len)
                a->wev_head = a->wev_len = 0;
            /* Room again: what is owed goes behind what was queued before. */
            pay_overflows(a);
            return 1;
        }
        struct sk_proto_msg m;
        int fds[SK_PROTO_MAX_FDS];
        size_t nfds = 0;
        int r = agent_recv(a, deadline, &m, fds, &nfds, err);
        if (r <= 0)
            return r;
        /* replies to sk_agent_spawn_start are kept; anything else
         * answers an abandoned request */
        if (queue_any_event(a, &m) || !stash_reply(a, &m, fds, nfds))
            close_fds(fds, nfds);
    }
}

int sk_agent_watch_add(struct sk_agent *a, const char *path, bool recursive, uint32_t *watch_id, struct sk_error *err)
{
    *watch_id = 0;
    if (path == NULL || path[0] == '\0')
        return sk_error_setv(err, EINVAL, "empty path");
    if (strlen(path) > SK_PROTO_PATH_MAX)
        return sk_error_setv(err, ENAMETOOLONG, "path is longer than %d bytes", SK_PROTO_PATH_MAX);
    struct sk_proto_msg req = {.type = SK_PROTO_WATCH_ADD}, reply;
    req.u.watch_add.path = sk_proto_str_c(path);
    req.u.watch_add.recursive = recursive;
    int r = call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
    if (r < 0)
        return r;
    uint32_t id = reply.u.ok.handle;
    if (id == 0 || find_watch(a, id) != NULL)
        return sk_error_setv(err, EPROTO, "watch '%s': skiff-init answered with watch id %u", path, id);
    if (a->n_watches == a->watches_cap) {
        a->watches_cap = a->watches_cap ? a->watches_cap * 2 : 8;
        a->watches = xrealloc(a->watches, a->watches_cap * sizeof(*a->watches));
    }
    a->watches[a->n_watches++] = (struct agent_watch){.id = id};
    *watch_id = id;
    return 0;
}

/* forget_watch - drop watch `id` and its queued events. */
static void forget_watch(struct sk_agent *a, uint32_t id)
{
    struct agent_watch *w = find_watch(a, id);
    if (w == NULL)
        return;
    *w = a->watches[--a->n_watches];
    size_t k = a->wev_head;
    for (size_t i = a->wev_head; i < a->wev_len; i++) {
        if (a->wevents[i].watch_id == id)
            free(a->wevents[i].path);
        else
            a->wevents[k++] = a->wevents[i];
    }
    a->wev_len = k;
    if (a->wev_head == a->wev_len)
        a->wev_head = a->wev_len = 0;
}

int sk_agent_watch_remove(struct sk_agent *a, uint32_t watch_id, struct sk_error *err)
{
    if (watch_id == 0)
        return sk_error_setv(err, ENOENT, "no watch 0");
    struct sk_proto_msg req = {.type = SK_PROTO_WATCH_REMOVE}, reply;
    req.u.watch_remove.watch_id = watch_id;
    int r = call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
    /* Whatever skiff-init says, nothing more of it reaches the caller;
     * events it sent before its reply were read by call(). */
    forget_watch(a, watch_id);
    return r;
}

/* ---- files ---- */

static int check_path(const char *path, struct sk_error *err)
{
    if (path == NULL || path[0] == '\0')
        return sk_error_setv(err, EINVAL, "empty path");
    if (strlen(path) > SK_PROTO_PATH_MAX)
        return sk_error_setv(err, ENAMETOOLONG, "path is longer than %d bytes", SK_PROTO_PATH_MAX);
    return 0;
}

static void stat_from_proto(const struct sk_proto_stat *ps, struct sk_file_stat *st)
{
    st->type = (char)ps->type;
    st->mode = ps->mode;
    st->size = ps->size;
    st->mtime_ns = ps->mtime_ns;
    st->uid = ps->uid;
    st->gid = ps->gid;
}

int sk_agent_stat(struct sk_agent *a, const char *path, bool follow, struct sk_file_stat *st, struct sk_error *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    struct sk_proto_msg req = {.type = SK_PROTO_STAT}, reply;
    req.u.stat.path = sk_proto_str_c(path);
    req.u.stat.follow = follow;
    r = call(a, &req, a->timeout_ms, SK_PROTO_STAT_OK, &reply, NULL, 0, err);
    if (r < 0)
        return r;
    stat_from_proto(&reply.u.stat_ok, st);
    return 0;
}

int sk_agent_open_read(struct sk_agent *a, const char *path, int *fd, struct sk_error *err)
{
    *fd = -1;
    int r = check_path(path, err);
    if (r < 0)
        return r;
    struct sk_proto_msg req = {.type = SK_PROTO_OPEN_READ}, reply;
    req.u.open_read.path = sk_proto_str_c(path);
    int fds[1] = {-1};
    r = call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, fds, 1, err);
    if (r < 0)
        return r;
    if (!check_fd(fds[0], S_IFREG, READABLE)) {
        close(fds[0]);
        return sk_error_setv(err, EPROTO, "open '%s': skiff-init passed something other than a readable file", path);
    }
    *fd = fds[0];
    return 0;
}

int sk_agent_read_file(struct sk_agent *a, const char *path, uint64_t offset, uint64_t max_len, char **data,
                       size_t *len, struct sk_error *err)
{
    *data = NULL;
    *len = 0;
    if (offset > (uint64_t)INT64_MAX)
        return sk_error_setv(err, EINVAL, "read '%s': offset too large", path);
    /* Without a caller's bound (or with one above ours) more than the
     * maximum is an error rather than a silent cut. */
    bool strict = max_len == 0 || max_len > (uint64_t)SK_AGENT_READ_FILE_MAX;
    uint64_t limit = strict ? (uint64_t)SK_AGENT_READ_FILE_MAX : max_len;
    _cleanup_close_ int fd = -1;
    int r = sk_agent_open_read(a, path, &fd, err);
    if (r < 0)
        return r;
    size_t cap = (size_t)(limit < 65536 ? limit : 65536) + 1, n = 0;
    _cleanup_free_ char *buf = xmalloc(cap);
    while ((uint64_t)n < limit) {
        if (n + 1 == cap) {
            cap = (uint64_t)cap * 2 > limit + 1 ? (size_t)limit + 1 : cap * 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t got = pread(fd, buf + n, cap - 1 - n, (off_t)(offset + n));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return sk_error_set(err, errno, "read '%s'", path);
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (strict && (uint64_t)n == limit) {
        char c;
        if (pread(fd, &c, 1, (off_t)(offset + n)) == 1)
            return sk_error_setv(err, EFBIG, "read '%s': larger than %lld bytes", path, SK_AGENT_READ_FILE_MAX);
    }
    buf[n] = '\0';
    *data = steal_pointer(&buf);
    *len = n;
    return 0;
}

int sk_agent_write_begin(struct sk_agent *a, const char *path, uint32_t mode, int *fd, uint32_t *handle,
                         struct sk_error *err)
{
    *fd = -1;
    int r = check_path(path, err);
    if (r < 0)
        return r;
    if (mode > 07777)
        return sk_error_setv(err, EINVAL, "write '%s': mode %o has bits beyond 07777", path, mode);
    struct sk_proto_msg req = {.type = SK_PROTO_WRITE_BEGIN}, reply;
    req.u.write_begin.path = sk_proto_str_c(path);
    req.u.write_begin.mode = mode;
    int fds[1] = {-1};
    r = call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, fds, 1, err);
    if (r < 0)
        return r;
    if (reply.u.ok.handle == 0 || !check_fd(fds[0], S_IFREG, WRITABLE)) {
        close(fds[0]);
        if (reply.u.ok.handle != 0)
            sk_agent_write_abort(a, reply.u.ok.handle, NULL);
        return sk_error_setv(err, EPROTO, "write '%s': skiff-init passed something other than a writable file", path);
    }
    *fd = fds[0];
    *handle = reply.u.ok.handle;
    return 0;
}

static int write_end(struct sk_agent *a, uint8_t type, uint32_t handle, struct sk_error *err)
{
    struct sk_proto_msg req = {.type = type}, reply;
    req.u.write_end.handle = handle;
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}

int sk_agent_write_commit(struct sk_agent *a, uint32_t handle, struct sk_error *err)
{
    return write_end(a, SK_PROTO_WRITE_COMMIT, handle, err);
}

int sk_agent_write_abort(struct sk_agent *a, uint32_t handle, struct sk_error *err)
{
    return write_end(a, SK_PROTO_WRITE_ABORT, handle, err);
}

int sk_agent_write_file(struct sk_agent *a, const char *path, const void *data, size_t len, uint32_t mode,
                        struct sk_error *err)
{
    int fd;
    uint32_t handle;
    int r = sk_agent_write_begin(a, path, mode, &fd, &handle, err);
    if (r < 0)
        return r;
    if (sk_write_all(fd, data, len) < 0) {
        r = sk_error_set(err, errno, "write '%s'", path);
        close(fd);
        sk_agent_write_abort(a, handle, NULL);
        return r;
    }
    close(fd);
    return sk_agent_write_commit(a, handle, err);
}

/* safe_rel_path - an entry path from skiff-init must be relative and free of
 * "." and ".." components, so joining it to the listed directory cannot
 * leave it (a compromised skiff-init could otherwise steer host code that
 * acts on listed paths). */
static bool safe_rel_path(struct sk_proto_str p)
{
    if (p.len == 0 || p.ptr[0] == '/')
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= p.len; i++) {
        if (i < p.len && p.ptr[i] != '/')
            continue;
        size_t n = i - start;
        if (n == 0 || (n == 1 && p.ptr[start] == '.') || (n == 2 && p.ptr[start] == '.' && p.ptr[start + 1] == '.'))
            return false;
        start = i + 1;
    }
    return true;
}

void sk_file_entries_free(struct sk_file_entry *e, size_t n)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(e[i].path);
    free(e);
}

int sk_agent_list(struct sk_agent *a, const char *path, bool recursive, struct sk_file_entry **entries, size_t *n,
                  struct sk_error *err)
{
    *entries = NULL;
    *n = 0;
    int r = check_path(path, err);
    if (r < 0)
        return r;
    struct sk_proto_msg req = {.type = SK_PROTO_LIST}, reply;
    req.u.list.path = sk_proto_str_c(path);
    req.u.list.recursive = recursive;
    r = call(a, &req, a->timeout_ms, SK_PROTO_LIST_CHUNK, &reply, NULL, 0, err);
    if (r < 0)
        return r;
    struct sk_file_entry *list = NULL;
    size_t count = 0, cap = 0;
    for (;;) {
        const struct sk_proto_list_chunk *c = &reply.u.list_chunk;
        if (!c->final && c->count == 0) {
            r = sk_error_setv(err, EPROTO, "list '%s': skiff-init sent an empty chunk", path);
            goto fail;
        }
        if (c->count > SK_AGENT_LIST_MAX - count) {
            r = sk_error_setv(err, E2BIG, "list '%s': more than %d entries", path, SK_AGENT_LIST_MAX);
            goto fail;
        }
        if (count + c->count > cap) {
            cap = count + c->count > cap * 2 ? count + c->count : cap * 2;
            list = xrealloc(list, cap * sizeof(*list));
        }
        uint32_t cur = 0;
        struct sk_proto_entry e;
        while (sk_proto_list_next(c, &cur, &e)) {
            if (!safe_rel_path(e.path)) {
                r = sk_error_setv(err, EPROTO, "list '%s': skiff-init sent an unsafe entry path", path);
                goto fail;
            }
            list[count].path = xstrndup(e.path.ptr, e.path.len);
            stat_from_proto(&e.st, &list[count].st);
            count++;
        }
        if (c->final)
            break;
        int fds[SK_PROTO_MAX_FDS];
        size_t nfds = 0;
        r = wait_reply(a, req.id, deadline_in(a->timeout_ms), &reply, fds, &nfds, err);
        if (r == 0)
            r = expect(&reply, SK_PROTO_LIST_CHUNK, fds, nfds, 0, err);
        if (r < 0)
            goto fail;
    }
    *entries = list;
    *n = count;
    return 0;

fail:
    sk_file_entries_free(list, count);
    return r;
}

int sk_agent_mkdir(struct sk_agent *a, const char *path, uint32_t mode, bool parents, struct sk_error *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    if (mode > 07777)
        return sk_error_setv(err, EINVAL, "mkdir '%s': mode %o has bits beyond 07777", path, mode);
    struct sk_proto_msg req = {.type = SK_PROTO_MKDIR}, reply;
    req.u.mkdir.path = sk_proto_str_c(path);
    req.u.mkdir.mode = mode;
    req.u.mkdir.parents = parents;
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}

int sk_agent_remove(struct sk_agent *a, const char *path, bool recursive, struct sk_error *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    struct sk_proto_msg req = {.type = SK_PROTO_REMOVE}, reply;
    req.u.remove.path = sk_proto_str_c(path);
    req.u.remove.recursive = recursive;
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}

int sk_agent_rename(struct sk_agent *a, const char *from, const char *to, struct sk_error *err)
{
    int r = check_path(from, err);
    if (r < 0)
        return r;
    r = check_path(to, err);
    if (r < 0)
        return r;
    struct sk_proto_msg req = {.type = SK_PROTO_RENAME}, reply;
    req.u.rename.from = sk_proto_str_c(from);
    req.u.rename.to = sk_proto_str_c(to);
    return call(a, &req, a->timeout_ms, SK_PROTO_OK, &reply, NULL, 0, err);
}
