/* loop_ops.c - lib/sched's view of skiffd's loop (struct sk_loop_ops):
 * fd watches keyed by fd and one-shot timers keyed by id, on top of the
 * loop's handle-based watches and embedded timers. */
#include "loop_ops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

struct fd_watch {
    struct sk_loop_watch *w;
    void (*cb)(void *arg);
    void *arg;
};

struct one_timer {
    struct sk_loop_timer t; /* first: the loop hands back &t */
    struct sk_loop_adapter *ad;
    uint64_t id;
    void (*cb)(void *arg);
    void *arg;
    struct one_timer *prev, *next;
};

static void on_fd(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)events;
    struct sk_loop_adapter *ad = ctx;
    if (fd < 0 || (size_t)fd >= ad->n_fds || ad->fds[fd] == NULL)
        return;
    struct fd_watch *fw = ad->fds[fd];
    fw->cb(fw->arg);
}

static int op_watch(void *ctx, int fd, void (*cb)(void *arg), void *arg)
{
    struct sk_loop_adapter *ad = ctx;
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= ad->n_fds) {
        size_t n = (size_t)fd + 64;
        ad->fds = xrealloc(ad->fds, n * sizeof(*ad->fds));
        memset(ad->fds + ad->n_fds, 0, (n - ad->n_fds) * sizeof(*ad->fds));
        ad->n_fds = n;
    }
    if (ad->fds[fd] != NULL) {
        errno = EEXIST;
        return -1;
    }
    struct fd_watch *fw = xcalloc(1, sizeof(*fw));
    fw->cb = cb;
    fw->arg = arg;
    struct sk_error err = {0};
    if (sk_loop_watch_add(ad->loop, fd, SK_LOOP_READ, on_fd, ad, &fw->w, &err) < 0) {
        sk_log_warn("watch fd %d: %s", fd, err.msg);
        free(fw);
        errno = err.code;
        return -1;
    }
    ad->fds[fd] = fw;
    return 0;
}

static void op_unwatch(void *ctx, int fd)
{
    struct sk_loop_adapter *ad = ctx;
    if (fd < 0 || (size_t)fd >= ad->n_fds || ad->fds[fd] == NULL)
        return;
    sk_loop_watch_remove(ad->loop, ad->fds[fd]->w);
    free(ad->fds[fd]);
    ad->fds[fd] = NULL;
}

static void timer_unlink(struct one_timer *t)
{
    struct sk_loop_adapter *ad = t->ad;
    if (t->prev)
        t->prev->next = t->next;
    else
        ad->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void on_timer(struct sk_loop *loop, struct sk_loop_timer *lt, void *ctx)
{
    (void)loop;
    (void)lt;
    struct one_timer *t = ctx;
    timer_unlink(t);
    void (*cb)(void *) = t->cb;
    void *arg = t->arg;
    free(t);
    cb(arg);
}

static uint64_t op_timer(void *ctx, int64_t delay_ms, void (*cb)(void *arg), void *arg)
{
    struct sk_loop_adapter *ad = ctx;
    struct one_timer *t = xcalloc(1, sizeof(*t));
    t->ad = ad;
    t->id = ++ad->next_timer_id;
    t->cb = cb;
    t->arg = arg;
    t->next = ad->timers;
    if (ad->timers)
        ad->timers->prev = t;
    ad->timers = t;
    sk_loop_timer_init(&t->t, on_timer, t);
    sk_loop_timer_start(ad->loop, &t->t, delay_ms < 0 ? 0 : delay_ms);
    return t->id;
}

static void op_cancel(void *ctx, uint64_t id)
{
    struct sk_loop_adapter *ad = ctx;
    for (struct one_timer *t = ad->timers; t; t = t->next) {
        if (t->id != id)
            continue;
        sk_loop_timer_stop(ad->loop, &t->t);
        timer_unlink(t);
        free(t);
        return;
    }
}

void sk_loop_adapter_init(struct sk_loop_adapter *ad, struct sk_loop *loop)
{
    memset(ad, 0, sizeof(*ad));
    ad->loop = loop;
    ad->ops = (struct sk_loop_ops){
        .ctx = ad, .watch = op_watch, .unwatch = op_unwatch, .timer = op_timer, .cancel = op_cancel};
}

void sk_loop_adapter_release(struct sk_loop_adapter *ad)
{
    for (size_t i = 0; i < ad->n_fds; i++)
        if (ad->fds[i] != NULL)
            op_unwatch(ad, (int)i);
    free(ad->fds);
    while (ad->timers)
        op_cancel(ad, ad->timers->id);
}
