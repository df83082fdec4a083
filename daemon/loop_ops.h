/* loop_ops.h - struct sk_loop_ops (lib/sched) backed by skiffd's loop. */
#ifndef SK_DAEMON_LOOP_OPS_H
#define SK_DAEMON_LOOP_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "sched/sandboxes.h"

struct fd_watch;
struct one_timer;

struct sk_loop_adapter {
    struct sk_loop_ops ops; /* hand &ops to sk_sched_new */
    struct sk_loop *loop;
    struct fd_watch **fds; /* indexed by fd */
    size_t n_fds;
    struct one_timer *timers;
    uint64_t next_timer_id;
};

void sk_loop_adapter_init(struct sk_loop_adapter *ad, struct sk_loop *loop);
/* Remove every watch and cancel every timer still registered. */
void sk_loop_adapter_release(struct sk_loop_adapter *ad);

#endif
