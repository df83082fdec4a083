/* loop.h - skiffd's one event loop (epoll).
 *
 * Everything the daemon waits for is an event here: readiness of file
 * descriptors, timers, signals (through a signalfd, so nothing runs in a
 * signal handler), child exits (SIGCHLD) and deferred callbacks that run
 * once the current callbacks are done. Single-threaded: every function
 * must be called from the thread that runs the loop, and every callback
 * runs on it.
 *
 * Lifetimes follow one rule: an object handed to the loop (a watch, a
 * timer, a deferred call) may be removed or stopped from any callback,
 * including its own, and is never called after that. Watches are freed by
 * the loop after the current iteration's callbacks have returned; timers
 * and deferred calls are embedded in their owner's struct and never freed
 * by the loop.
 */
#ifndef SK_DAEMON_LOOP_H
#define SK_DAEMON_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "base/error.h"

struct sk_loop;

/* Event bits for watches: the epoll ones. A callback also sees EPOLLHUP and
 * EPOLLERR, which epoll reports whether asked for or not. */
#define SK_LOOP_READ EPOLLIN
#define SK_LOOP_WRITE EPOLLOUT

/* sk_loop_new - create a loop. Blocks SIGCHLD in the calling thread (it is
 * read from a signalfd; children must unblock it before exec). The caller
 * frees the loop with sk_loop_free. */
int sk_loop_new(struct sk_loop **out, struct sk_error *err);
/* sk_loop_free - close the loop's descriptors and free the watches still
 * registered (without calling them). NULL is a no-op. The fds watched are
 * not closed: they belong to whoever added them. */
void sk_loop_free(struct sk_loop *loop);

/* sk_loop_run - dispatch events until sk_loop_stop is called. Returns 0,
 * or negative when epoll itself fails. */
int sk_loop_run(struct sk_loop *loop, struct sk_error *err);
/* sk_loop_stop - make sk_loop_run return after the current callback. */
void sk_loop_stop(struct sk_loop *loop);

/* ---- file descriptors ------------------------------------------------------ */

struct sk_loop_watch;
typedef void (*sk_loop_fd_fn)(struct sk_loop *loop, int fd, uint32_t events, void *ctx);

/* sk_loop_watch_add - call fn whenever fd is ready for `events`
 * (level-triggered). *out (may be NULL) is the handle for modify/remove;
 * it stays valid until sk_loop_watch_remove. Errors: those of epoll_ctl
 * (EEXIST when fd is already watched). */
int sk_loop_watch_add(struct sk_loop *loop, int fd, uint32_t events, sk_loop_fd_fn fn, void *ctx,
                      struct sk_loop_watch **out, struct sk_error *err);
int sk_loop_watch_modify(struct sk_loop *loop, struct sk_loop_watch *w, uint32_t events, struct sk_error *err);
/* sk_loop_watch_remove - stop watching (the fd stays open; close it after
 * this call). Safe from any callback; NULL is a no-op. */
void sk_loop_watch_remove(struct sk_loop *loop, struct sk_loop_watch *w);

/* ---- timers ------------------------------------------------------------------ */

struct sk_loop_timer;
typedef void (*sk_loop_timer_fn)(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx);

/* A one-shot timer embedded in its owner's struct. Fields are private. */
struct sk_loop_timer {
    int64_t deadline_ns; /* CLOCK_MONOTONIC */
    size_t heap_index;   /* position in the loop's heap; SIZE_MAX when idle */
    sk_loop_timer_fn fn;
    void *ctx;
};

/* sk_loop_timer_init - prepare an idle timer (no allocation). */
void sk_loop_timer_init(struct sk_loop_timer *t, sk_loop_timer_fn fn, void *ctx);
/* sk_loop_timer_start - fire once after delay_ms (0: on the next iteration);
 * restarts a timer that is already active. The timer is idle again when
 * its callback runs, so the callback may start it again. */
void sk_loop_timer_start(struct sk_loop *loop, struct sk_loop_timer *t, int64_t delay_ms);
/* sk_loop_timer_stop - cancel; a timer that is not active is left alone. */
void sk_loop_timer_stop(struct sk_loop *loop, struct sk_loop_timer *t);
bool sk_loop_timer_is_active(const struct sk_loop_timer *t);

/* ---- deferred calls --------------------------------------------------------- */

struct sk_loop_deferred;
typedef void (*sk_loop_deferred_fn)(struct sk_loop *loop, void *ctx);

/* A call to make once the callbacks of the current iteration have returned,
 * embedded in its owner's struct. Fields are private. */
struct sk_loop_deferred {
    struct sk_loop_deferred *next;
    sk_loop_deferred_fn fn;
    void *ctx;
    bool queued;
};

/* sk_loop_defer - queue d (no-op when it is already queued). fn(loop, ctx)
 * runs before the loop next waits; a call queued from a deferred callback
 * runs on the next iteration. */
void sk_loop_defer(struct sk_loop *loop, struct sk_loop_deferred *d, sk_loop_deferred_fn fn, void *ctx);
/* sk_loop_defer_cancel - unqueue d if it is queued. */
void sk_loop_defer_cancel(struct sk_loop *loop, struct sk_loop_deferred *d);

/* ---- wake-ups from other threads ------------------------------------------- */

struct sk_loop_async;
typedef void (*sk_loop_async_fn)(struct sk_loop *loop, void *ctx);

/* sk_loop_async_new - a wake-up that other threads (worker threads doing
 * slow work) can send: fn(loop, ctx) runs on the loop thread after one or
 * more sk_loop_async_send calls (sends before it runs coalesce, so fn must
 * look at a queue or flag of its own, under the owner's lock). Loop thread
 * only; freed with sk_loop_async_free. */
int sk_loop_async_new(struct sk_loop *loop, sk_loop_async_fn fn, void *ctx, struct sk_loop_async **out,
                      struct sk_error *err);
/* sk_loop_async_send - from any thread (async-signal-safe: one write). */
void sk_loop_async_send(struct sk_loop_async *a);
/* sk_loop_async_free - loop thread only, after every sender has stopped. */
void sk_loop_async_free(struct sk_loop *loop, struct sk_loop_async *a);

/* ---- signals and children --------------------------------------------------- */

typedef void (*sk_loop_signal_fn)(struct sk_loop *loop, int signo, void *ctx);

/* sk_loop_signal_watch - block `signo` and call fn from the loop whenever it
 * arrives (SIGINT, SIGTERM, SIGHUP, ...; not SIGCHLD, which the loop keeps
 * for sk_loop_child_watch). One callback per signal; a second call replaces
 * the first. */
int sk_loop_signal_watch(struct sk_loop *loop, int signo, sk_loop_signal_fn fn, void *ctx, struct sk_error *err);

typedef void (*sk_loop_child_fn)(struct sk_loop *loop, pid_t pid, int status, void *ctx);

/* sk_loop_child_watch - reap child `pid` when it exits and call fn with its
 * waitpid status, once. Only registered children are reaped (other code
 * may wait for its own). A child that exited before this call is reaped on
 * the next iteration. Errors: EEXIST when pid is already watched. */
int sk_loop_child_watch(struct sk_loop *loop, pid_t pid, sk_loop_child_fn fn, void *ctx, struct sk_error *err);
/* sk_loop_child_unwatch - forget pid without reaping it (no-op if unknown). */
void sk_loop_child_unwatch(struct sk_loop *loop, pid_t pid);

#endif
