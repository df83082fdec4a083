/* loop.c - epoll loop with timers (a binary min-heap), a signalfd for
 * signals and SIGCHLD, and deferred calls. */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define LOOP_MAX_EVENTS 64

struct sk_loop_watch {
    int fd;
    uint32_t events;
    sk_loop_fd_fn fn;
    void *ctx;
    bool dead;                  /* removed; freed at the end of the iteration */
    struct sk_loop_watch *next; /* all watches, or the dead list */
};

struct child_watch {
    pid_t pid;
    sk_loop_child_fn fn;
    void *ctx;
};

struct sk_loop {
    int epfd;
    int sigfd;
    sigset_t sigmask;
    bool stop;

    struct sk_loop_watch *watches; /* live */
    struct sk_loop_watch *dead;    /* removed this iteration */
    struct sk_loop_watch *sig_watch;

    struct sk_loop_timer **heap;
    size_t heap_len, heap_cap;

    struct sk_loop_deferred *defer_head, *defer_tail;
    size_t defer_len;

    struct {
        sk_loop_signal_fn fn;
        void *ctx;
    } signals[_NSIG];

    struct child_watch *children;
    size_t n_children, cap_children;
    bool reap_pending;
};

/* ---- timers: a min-heap of pointers; each timer knows its index ------------- */

static void heap_swap(struct sk_loop *loop, size_t a, size_t b)
{
    struct sk_loop_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void heap_up(struct sk_loop *loop, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->deadline_ns <= loop->heap[i]->deadline_ns)
            break;
        heap_swap(loop, i, parent);
        i = parent;
    }
}

static void heap_down(struct sk_loop *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->heap_len && loop->heap[l]->deadline_ns < loop->heap[m]->deadline_ns)
            m = l;
        if (r < loop->heap_len && loop->heap[r]->deadline_ns < loop->heap[m]->deadline_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(loop, i, m);
        i = m;
    }
}

static void heap_remove(struct sk_loop *loop, struct sk_loop_timer *t)
{
    size_t i = t->heap_index;
    size_t last = loop->heap_len - 1;
    if (i != last) {
        heap_swap(loop, i, last);
        loop->heap_len--;
        heap_down(loop, i);
        heap_up(loop, i);
    } else {
        loop->heap_len--;
    }
    t->heap_index = SIZE_MAX;
}

void sk_loop_timer_init(struct sk_loop_timer *t, sk_loop_timer_fn fn, void *ctx)
{
    t->deadline_ns = 0;
    t->heap_index = SIZE_MAX;
    t->fn = fn;
    t->ctx = ctx;
}

bool sk_loop_timer_is_active(const struct sk_loop_timer *t)
{
    return t->heap_index != SIZE_MAX;
}

void sk_loop_timer_stop(struct sk_loop *loop, struct sk_loop_timer *t)
{
    if (sk_loop_timer_is_active(t))
        heap_remove(loop, t);
}

void sk_loop_timer_start(struct sk_loop *loop, struct sk_loop_timer *t, int64_t delay_ms)
{
    sk_loop_timer_stop(loop, t);
    if (delay_ms < 0)
        delay_ms = 0;
    /* Bounded so the addition cannot overflow: ~100 years is "never" enough. */
    if (delay_ms > INT64_C(3153600000000))
        delay_ms = INT64_C(3153600000000);
    t->deadline_ns = sk_now_ns() + delay_ms * 1000000;
    if (loop->heap_len == loop->heap_cap) {
        loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
        loop->heap = xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
    }
    t->heap_index = loop->heap_len;
    loop->heap[loop->heap_len++] = t;
    heap_up(loop, t->heap_index);
}

static void run_timers(struct sk_loop *loop)
{
    int64_t now = sk_now_ns();
    while (!loop->stop && loop->heap_len > 0 && loop->heap[0]->deadline_ns <= now) {
        struct sk_loop_timer *t = loop->heap[0];
        heap_remove(loop, t);
        t->fn(loop, t, t->ctx);
    }
}

/* ---- deferred calls ------------------------------------------------------------ */

void sk_loop_defer(struct sk_loop *loop, struct sk_loop_deferred *d, sk_loop_deferred_fn fn, void *ctx)
{
    if (d->queued)
        return;
    d->fn = fn;
    d->ctx = ctx;
    d->next = NULL;
    d->queued = true;
    if (loop->defer_tail != NULL)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
    loop->defer_len++;
}

void sk_loop_defer_cancel(struct sk_loop *loop, struct sk_loop_deferred *d)
{
    if (!d->queued)
        return;
    struct sk_loop_deferred **pp = &loop->defer_head, *prev = NULL;
    while (*pp != NULL && *pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == d) {
        *pp = d->next;
        if (loop->defer_tail == d)
            loop->defer_tail = prev;
        loop->defer_len--;
    }
    d->queued = false;
    d->next = NULL;
}

static void run_deferred(struct sk_loop *loop)
{
    /* At most as many as are queued now, so a call that queues itself again
     * cannot keep the loop from waiting. */
    size_t budget = loop->defer_len;
    while (budget-- > 0 && !loop->stop && loop->defer_head != NULL) {
        struct sk_loop_deferred *d = loop->defer_head;
        loop->defer_head = d->next;
        if (loop->defer_head == NULL)
            loop->defer_tail = NULL;
        loop->defer_len--;
        d->next = NULL;
        d->queued = false;
        d->fn(loop, d->ctx);
    }
}

/* ---- watches ----------------------------------------------------------------- */

int sk_loop_watch_add(struct sk_loop *loop, int fd, uint32_t events, sk_loop_fd_fn fn, void *ctx,
                      struct sk_loop_watch **out, struct sk_error *err)
{
    struct sk_loop_watch *w = xcalloc(1, sizeof(*w));
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->ctx = ctx;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int r = sk_error_set(err, errno, "watch fd %d", fd);
        free(w);
        return r;
    }
    w->next = loop->watches;
    loop->watches = w;
    if (out != NULL)
        *out = w;
    return 0;
}

int sk_loop_watch_modify(struct sk_loop *loop, struct sk_loop_watch *w, uint32_t events, struct sk_error *err)
{
    if (w->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
        return sk_error_set(err, errno, "modify watch of fd %d", w->fd);
    w->events = events;
    return 0;
}

void sk_loop_watch_remove(struct sk_loop *loop, struct sk_loop_watch *w)
{
    if (w == NULL || w->dead)
        return;
    /* The fd may already be closed by a careless owner; ignore the error. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    struct sk_loop_watch **pp = &loop->watches;
    while (*pp != NULL && *pp != w)
        pp = &(*pp)->next;
    if (*pp == w)
        *pp = w->next;
    /* Freed after the iteration: an event for it may still be in the batch. */
    w->dead = true;
    w->next = loop->dead;
    loop->dead = w;
}

static void free_dead(struct sk_loop *loop)
{
    while (loop->dead != NULL) {
        struct sk_loop_watch *w = loop->dead;
        loop->dead = w->next;
        free(w);
    }
}

/* ---- wake-ups from other threads -------------------------------------------------- */

struct sk_loop_async {
    int fd; /* eventfd */
    struct sk_loop_watch *watch;
    sk_loop_async_fn fn;
    void *ctx;
};

static void on_async(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    struct sk_loop_async *a = ctx;
    (void)events;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return; /* EAGAIN: someone else's spurious wake-up */
    a->fn(loop, a->ctx);
}

int sk_loop_async_new(struct sk_loop *loop, sk_loop_async_fn fn, void *ctx, struct sk_loop_async **out,
                      struct sk_error *err)
{
    struct sk_loop_async *a = xcalloc(1, sizeof(*a));
    a->fn = fn;
    a->ctx = ctx;
    a->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->fd < 0) {
        int r = sk_error_set(err, errno, "eventfd");
        free(a);
        return r;
    }
    int r = sk_loop_watch_add(loop, a->fd, SK_LOOP_READ, on_async, a, &a->watch, err);
    if (r < 0) {
        close(a->fd);
        free(a);
        return r;
    }
    *out = a;
    return 0;
}

void sk_loop_async_send(struct sk_loop_async *a)
{
    uint64_t one = 1;
    /* EAGAIN only when the counter is at its maximum: a wake-up is pending. */
    while (write(a->fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void sk_loop_async_free(struct sk_loop *loop, struct sk_loop_async *a)
{
    if (a == NULL)
        return;
    sk_loop_watch_remove(loop, a->watch);
    close(a->fd);
    free(a);
}

/* ---- signals and children ------------------------------------------------------ */

static void reap_children(struct sk_loop *loop)
{
    loop->reap_pending = false;
    size_t i = 0;
    while (i < loop->n_children && !loop->stop) {
        struct child_watch c = loop->children[i];
        int status = 0;
        pid_t r = (pid_t)SK_RETRY_EINTR(waitpid(c.pid, &status, WNOHANG));
        if (r == c.pid || (r < 0 && errno == ECHILD)) {
            loop->children[i] = loop->children[--loop->n_children];
            if (r < 0) {
                sk_log_warn("child '%d' vanished before it could be reaped", (int)c.pid);
                status = 0;
            }
            /* The callback may watch or unwatch other children: restart. */
            c.fn(loop, c.pid, status, c.ctx);
            i = 0;
            continue;
        }
        i++;
    }
}

int sk_loop_child_watch(struct sk_loop *loop, pid_t pid, sk_loop_child_fn fn, void *ctx, struct sk_error *err)
{
    for (size_t i = 0; i < loop->n_children; i++)
        if (loop->children[i].pid == pid)
            return sk_error_setv(err, EEXIST, "child '%d' is already watched", (int)pid);
    if (loop->n_children == loop->cap_children) {
        loop->cap_children = loop->cap_children ? loop->cap_children * 2 : 16;
        loop->children = xrealloc(loop->children, loop->cap_children * sizeof(*loop->children));
    }
    loop->children[loop->n_children++] = (struct child_watch){.pid = pid, .fn = fn, .ctx = ctx};
    /* Its SIGCHLD may have been consumed before it was registered. */
    loop->reap_pending = true;
    return 0;
}

void sk_loop_child_unwatch(struct sk_loop *loop, pid_t pid)
{
    for (size_t i = 0; i < loop->n_children; i++) {
        if (loop->children[i].pid == pid) {
            loop->children[i] = loop->children[--loop->n_children];
            return;
        }
    }
}

static void on_signalfd(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)events;
    (void)ctx;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(si))
            return;
        int signo = (int)si.ssi_signo;
        if (signo == SIGCHLD) {
            /* Several exits may collapse into one SIGCHLD: poll them all. */
            loop->reap_pending = true;
        } else if (signo > 0 && signo < _NSIG && loop->signals[signo].fn != NULL) {
            loop->signals[signo].fn(loop, signo, loop->signals[signo].ctx);
        }
        if (loop->stop)
            return;
    }
}

int sk_loop_signal_watch(struct sk_loop *loop, int signo, sk_loop_signal_fn fn, void *ctx, struct sk_error *err)
{
    if (signo <= 0 || signo >= _NSIG || signo == SIGCHLD || signo == SIGKILL || signo == SIGSTOP)
        return sk_error_setv(err, EINVAL, "cannot watch signal %d", signo);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
        return sk_error_set(err, errno, "block signal %d", signo);
    sigaddset(&loop->sigmask, signo);
    if (signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
        return sk_error_set(err, errno, "update signalfd");
    loop->signals[signo].fn = fn;
    loop->signals[signo].ctx = ctx;
    return 0;
}

/* ---- lifecycle and dispatch ----------------------------------------------------- */

int sk_loop_new(struct sk_loop **out, struct sk_error *err)
{
    struct sk_loop *loop = xcalloc(1, sizeof(*loop));
    loop->epfd = -1;
    loop->sigfd = -1;
    int r;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        r = sk_error_set(err, errno, "epoll_create1");
        goto fail;
    }
    sigemptyset(&loop->sigmask);
    sigaddset(&loop->sigmask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) < 0) {
        r = sk_error_set(err, errno, "block SIGCHLD");
        goto fail;
    }
    loop->sigfd = signalfd(-1, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop->sigfd < 0) {
        r = sk_error_set(err, errno, "signalfd");
        goto fail;
    }
    r = sk_loop_watch_add(loop, loop->sigfd, SK_LOOP_READ, on_signalfd, NULL, &loop->sig_watch, err);
    if (r < 0)
        goto fail;
    *out = loop;
    return 0;
fail:
    sk_loop_free(loop);
    return r;
}

void sk_loop_free(struct sk_loop *loop)
{
    if (loop == NULL)
        return;
    while (loop->watches != NULL)
        sk_loop_watch_remove(loop, loop->watches);
    free_dead(loop);
    for (size_t i = 0; i < loop->heap_len; i++)
        loop->heap[i]->heap_index = SIZE_MAX;
    for (struct sk_loop_deferred *d = loop->defer_head; d != NULL;) {
        struct sk_loop_deferred *next = d->next;
        d->queued = false;
        d->next = NULL;
        d = next;
    }
    loop->defer_head = loop->defer_tail = NULL;
    loop->defer_len = 0;
    free(loop->heap);
    free(loop->children);
    sk_close(&loop->sigfd);
    sk_close(&loop->epfd);
    free(loop);
}

void sk_loop_stop(struct sk_loop *loop)
{
    loop->stop = true;
}

static int next_timeout_ms(struct sk_loop *loop)
{
    if (loop->defer_head != NULL || loop->reap_pending)
        return 0;
    if (loop->heap_len == 0)
        return -1;
    int64_t left = loop->heap[0]->deadline_ns - sk_now_ns();
    if (left <= 0)
        return 0;
    /* Round up: waking a little early would only spin until the deadline. */
    int64_t ms = (left + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

int sk_loop_run(struct sk_loop *loop, struct sk_error *err)
{
    loop->stop = false;
    struct epoll_event events[LOOP_MAX_EVENTS];
    while (!loop->stop) {
        run_deferred(loop);
        if (loop->stop)
            break;
        int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, next_timeout_ms(loop));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sk_error_set(err, errno, "epoll_wait");
        }
        for (int i = 0; i < n && !loop->stop; i++) {
            struct sk_loop_watch *w = events[i].data.ptr;
            if (w->dead)
                continue;
            w->fn(loop, w->fd, events[i].events, w->ctx);
        }
        if (!loop->stop && loop->reap_pending)
            reap_children(loop);
        run_timers(loop);
        free_dead(loop);
    }
    free_dead(loop);
    return 0;
}
