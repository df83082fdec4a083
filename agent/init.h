/* init.h - skiff-init's state and the pieces main.c, proc.c and files.c
 * share. Everything runs on one thread in one epoll loop (main.c); request
 * handlers run to completion and send their own replies.
 */
#ifndef SK_AGENT_INIT_H
#define SK_AGENT_INIT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "proto/proto.h"

#define SK_INIT_CTL_FD 3
/* In a persistent sandbox: a listening SOCK_SEQPACKET socket on which a new
 * owner connects after the previous connection ended (docs/protocol.md). */
#define SK_INIT_LISTEN_FD 4
#define SK_INIT_PROCS_MAX 1024     /* tracked processes at once */
#define SK_INIT_WRITES_MAX 64      /* open WRITE_BEGIN handles at once */
#define SK_INIT_TREE_DEPTH_MAX 128 /* directory levels for recursive LIST/REMOVE */
#define SK_INIT_LIST_ENTRIES_MAX 1000000
#define SK_INIT_WATCHES_MAX 64       /* WATCH_ADD watches at once */
#define SK_INIT_WATCH_DIRS_MAX 8192  /* watched directories (inotify watches), all watches together */
#define SK_INIT_WATCH_QUEUE_MAX 4096 /* WATCH_EVENTs waiting for room on the control socket */
#define SK_INIT_WATCH_QUEUE_BYTES (4 << 20)
#define SK_INIT_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

/* A process started by SPAWN, tracked until it is reaped, or in a
 * persistent sandbox until the host RELEASEs its EXIT. */
struct sk_init_proc {
    struct sk_init_proc *next;
    uint32_t id;
    pid_t pid; /* meaningless once exited: the number may be reused */
    uint32_t flags;
    int pty_fd;          /* our copy of the PTY master (for RESIZE), or -1 */
    int64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = no timeout */
    bool timed_out;
    bool exited; /* reaped; `status` holds its wait status */
    int status;
    uint64_t exit_seq; /* order of reaping, for re-sending EXITs in order */
};

/* An open WRITE_BEGIN: a temp file next to its target. */
struct sk_init_write {
    struct sk_init_write *next;
    uint32_t handle;
    int dir_fd; /* the target's directory, O_RDONLY|O_DIRECTORY */
    int fd;     /* our copy of the temp file's fd (for fsync) */
    char tmp_name[NAME_MAX + 1];
    char name[NAME_MAX + 1];
};

/* watch.c's state while a watch exists (opaque here). */
struct sk_init_watches;

struct sk_init {
    int ctl_fd;    /* control connection to the host; -1 while none (persistent) */
    int listen_fd; /* persistent sandboxes: where the next owner connects; else -1 */
    int root_fd;   /* O_PATH dirfd every file operation resolves in */
    int sig_fd;    /* signalfd for SIGCHLD */
    int ep_fd;
    bool host_gone;   /* shut down: the connection ended and we are not persistent */
    bool conn_broken; /* a send on ctl_fd failed: drop the connection */
    bool conn_hello;  /* the current connection has said HELLO */
    uint32_t next_proc_id;
    uint64_t next_exit_seq;
    uint32_t next_handle;
    struct sk_init_proc *procs;
    size_t n_procs;
    struct sk_init_write *writes;
    size_t n_writes;
    int watch_fd; /* inotify fd while a watch exists, else -1 */
    uint32_t next_watch_id;
    struct sk_init_watches *watches; /* NULL while no watch exists */
    uint8_t rx[SK_PROTO_MSG_MAX];
    uint8_t tx[SK_PROTO_MSG_MAX];
};

/* main.c */
/* sk_init_send - encode and send `msg` with fds (which stay open here) on
 * the current connection. -EPIPE when there is none; on a broken socket sets
 * conn_broken (and host_gone unless persistent). */
int sk_init_send(struct sk_init *init, const struct sk_proto_msg *msg, const int *fds, size_t nfds);
/* sk_init_reply_ok - OK(handle) to request `id`, with one fd when fd >= 0. */
int sk_init_reply_ok(struct sk_init *init, uint32_t id, uint32_t handle, int fd);
/* sk_init_reply_error - ERROR(code, message) to request `id`. */
int sk_init_reply_error(struct sk_init *init, uint32_t id, const struct sk_error *e);

/* proc.c - each handler replies itself on success and returns < 0 with `err`
 * set when main.c should reply ERROR. */
/* sk_init_spawn - `fds` are the request's (nfds of them); it closes them
 * (setting -1) as soon as the child has its copies, before replying. The
 * caller closes whatever is left >= 0. */
int sk_init_spawn(struct sk_init *init, const struct sk_proto_msg *m, int *fds, size_t nfds, struct sk_error *err);
int sk_init_signal(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_resize(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_list_procs(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_release(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_open_pty(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
/* sk_init_reap - reap every exited child; send EXIT for tracked ones. In a
 * persistent sandbox they stay tracked (exited) until RELEASE. */
void sk_init_reap(struct sk_init *init);
/* sk_init_resend_exits - send EXIT for every exited, unreleased process, in
 * the order they ended (after the first HELLO of a new connection). */
void sk_init_resend_exits(struct sk_init *init);
/* sk_init_expire - SIGKILL processes whose timeout has passed. */
void sk_init_expire(struct sk_init *init);
/* sk_init_next_timeout_ms - epoll timeout until the next deadline, -1 = none. */
int sk_init_next_timeout_ms(const struct sk_init *init);
/* sk_init_kill_all - SIGKILL every running tracked process group (shutdown). */
void sk_init_kill_all(struct sk_init *init);

/* files.c - same convention as proc.c. */
int sk_init_stat(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_open_read(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_write_begin(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_write_commit(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_write_abort(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_list(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_mkdir(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_remove(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_rename(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
/* sk_init_writes_cleanup - remove every pending temp file (shutdown). */
void sk_init_writes_cleanup(struct sk_init *init);
/* sk__init_openat2 - openat2(2) with O_CLOEXEC (and O_NOCTTY unless O_PATH),
 * retried on EINTR and briefly on EAGAIN; -1 with errno on failure. */
int sk__init_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve);

/* watch.c - WATCH_ADD and WATCH_REMOVE (same convention as proc.c) and the
 * WATCH_EVENTs they produce. Watches belong to the connection that added
 * them. */
int sk_init_watch_add(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
int sk_init_watch_remove(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err);
/* sk_init_watch_read - read what inotify has queued and send the events
 * (watch_fd readable, and before each request). */
void sk_init_watch_read(struct sk_init *init);
/* sk_init_watch_flush - the control socket is writable: send queued events. */
void sk_init_watch_flush(struct sk_init *init);
/* sk_init_watch_clear - drop every watch and queued event and close the
 * inotify fd (the connection ended; ctl_fd may already be closed). */
void sk_init_watch_clear(struct sk_init *init);

#endif
