/* agent.h - the host side of the skiff-init control protocol.
 *
 * A struct sk_agent owns one end of the SOCK_SEQPACKET control socket whose
 * other end is fd 3 of a sandbox's skiff-init (docs/protocol.md). Requests
 * are synchronous: each call sends one request and reads until the reply with
 * the same request id, waiting at most the request timeout (30 s by default,
 * see sk_agent_set_timeout). Events that arrive meanwhile are queued: EXIT
 * events for sk_agent_next_event, WATCH events for
 * sk_agent_next_watch_event. Whichever function reads the socket puts each
 * event in its own queue, so neither kind is ever lost by reading the other.
 *
 * Nothing that comes back is trusted: skiff-init runs inside the sandbox and
 * may be under the control of the code it runs. Every reply is length- and
 * type-checked, file descriptors are counted and fstat'ed (an OPEN_READ fd
 * must be a regular file, stdio fds must be pipes of the right direction),
 * unexpected fds are closed, list entries with absolute or ".." paths are
 * rejected and error messages are stripped of control characters. A broken
 * reply fails the call with EPROTO; the connection stays usable.
 *
 * Errors reported by skiff-init keep its errno and message ("exec 'foo': No
 * such file or directory", ENOENT). When skiff-init is gone every call fails
 * with EPIPE; when it does not answer in time, with ETIMEDOUT. A persistent
 * sandbox's skiff-init that already serves another connection refuses a new
 * one: the first call (sk_agent_hello) fails with EBUSY.
 *
 * Persistent sandboxes (sandbox.h) outlive their owner's connection: their
 * skiff-init keeps every EXIT until sk_agent_release, re-sends the
 * unreleased ones after the HELLO of each new connection, and reports its
 * processes with sk_agent_list_procs, so a new owner can rebuild its view.
 *
 * Not thread-safe: one owner at a time (the daemon's event loop).
 */
#ifndef SK_RUNTIME_AGENT_H
#define SK_RUNTIME_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

#define SK_AGENT_DEFAULT_TIMEOUT_MS 30000
/* Upper bound of sk_agent_read_file with max_len 0 ("to the end"). */
#define SK_AGENT_READ_FILE_MAX (1024LL * 1024 * 1024)
/* Upper bound of entries one sk_agent_list call accepts. */
#define SK_AGENT_LIST_MAX 1000000

struct sk_agent;

/* sk_agent_new - wrap the host end `fd` of the control socket (a connected
 * AF_UNIX SOCK_SEQPACKET socket). Ownership of fd is taken even on failure.
 * EINVAL when fd is not such a socket. Free with sk_agent_free. */
int sk_agent_new(int fd, struct sk_agent **out, struct sk_error *err);

/* sk_agent_free - close the socket and free queued events. skiff-init then
 * kills its processes and exits, unless its sandbox is persistent: then they
 * keep running and it waits for the next connection. NULL is a no-op. */
void sk_agent_free(struct sk_agent *a);

/* sk_agent_fd - the control socket, for the caller's epoll: when it is
 * readable, call sk_agent_next_event with timeout 0 and, if it watches
 * files, drain sk_agent_next_watch_event with timeout 0 too (a readable
 * socket may have brought either kind). Any call that reads the socket
 * (every request, and both of those) can leave events queued that no
 * longer make the fd readable: check sk_agent_has_pending_events and
 * sk_agent_has_pending_watch_events after it. Owned by `a`. */
int sk_agent_fd(const struct sk_agent *a);

/* sk_agent_set_timeout - how long one request waits for its reply (and, for
 * LIST, for each further chunk); <= 0 restores the default. */
void sk_agent_set_timeout(struct sk_agent *a, int timeout_ms);

/* sk_agent_hello - check that skiff-init speaks protocol version 1, waiting
 * at most timeout_ms (< 0: the request timeout). *init_pid (may be NULL) gets
 * skiff-init's pid as it sees itself (1 inside a pid namespace). EPROTO on a
 * version mismatch. */
int sk_agent_hello(struct sk_agent *a, int timeout_ms, pid_t *init_pid, struct sk_error *err);

struct sk_agent_spawn {
    const char *const *argv; /* NULL-terminated, argv[0] non-empty; searched in envp's PATH */
    const char *const *envp; /* NULL-terminated; NULL = empty environment */
    const char *cwd;         /* NULL or "" = "/" */
    bool pty;                /* one PTY for stdin/stdout/stderr instead of pipes */
    uint16_t rows, cols;     /* initial PTY size (0 = leave the kernel's default) */
    bool want_stdin;         /* pipes only: a stdin pipe; otherwise stdin is /dev/null */
    int64_t timeout_ms;      /* 0 = none; when it passes the process group is SIGKILLed */
    /* Not with pty: the child writes its stdout and stderr straight to these
     * host fds (borrowed: sent along and left open here; skiff-init closes
     * its copies at once) instead of pipes, so output needs no reader and
     * survives the owner - e.g. O_APPEND files from sk_sandbox_output_open.
     * Each must be a regular file or pipe open for writing (EINVAL
     * otherwise); both may be the same fd. */
    bool output_to_fds;
    int stdout_fd, stderr_fd;
};

struct sk_agent_proc {
    uint32_t id;                                /* skiff-init's process id, for signal/resize/events */
    pid_t pid;                                  /* pid inside the sandbox's pid namespace (informational) */
    int stdin_fd, stdout_fd, stderr_fd, pty_fd; /* -1 where absent; caller owns fds */
};

/* sk_agent_spawn - start a process. On success the caller owns the fds in
 * *out (close-on-exec, blocking): stdin_fd is the write end of the process's
 * stdin pipe (close it to send EOF), stdout_fd/stderr_fd the read ends (-1
 * with s->output_to_fds), or with s->pty only pty_fd, the PTY master. Its end is reported once as an
 * event by sk_agent_next_event. Errors: skiff-init's (ENOENT "exec 'foo': No
 * such file or directory", ENOENT "chdir '/x': ...", EAGAIN when too many
 * processes run), EINVAL for a bad spec, E2BIG when argv+envp exceed one
 * message (64 KiB). */
int sk_agent_spawn(struct sk_agent *a, const struct sk_agent_spawn *s, struct sk_agent_proc *out, struct sk_error *err);

/* sk_agent_spawn_start - sk_agent_spawn without waiting for skiff-init's
 * answer (it forks and execs meanwhile): send the request and return a
 * ticket. The answer is read by whichever agent call reads the socket
 * next (sk_agent_next_event when the fd is readable, or any other call)
 * and kept; sk_agent_spawn_finish then returns 1 with *out (as
 * sk_agent_spawn's), 0 while it has not arrived, or its error. Its process
 * may end before it is finished: the EXIT event is queued as usual, behind
 * the answer (skiff-init sends them in that order). At most 64 in flight
 * (EAGAIN beyond). s's fds are sent at once (borrowed). */
int sk_agent_spawn_start(struct sk_agent *a, const struct sk_agent_spawn *s, uint32_t *ticket, struct sk_error *err);
int sk_agent_spawn_finish(struct sk_agent *a, uint32_t ticket, struct sk_agent_proc *out, struct sk_error *err);
/* sk_agent_spawn_abandon - forget a ticket; a process it started is killed
 * if its answer is in (else that answer is dropped when it comes). */
void sk_agent_spawn_abandon(struct sk_agent *a, uint32_t ticket);

/* sk_agent_signal - send signal `signo` (1..64) to the process itself (not
 * its group). ESRCH when proc_id is unknown or has already been reported. */
int sk_agent_signal(struct sk_agent *a, uint32_t proc_id, int signo, struct sk_error *err);

/* sk_agent_resize - set the PTY size of a process spawned with pty (its
 * foreground group gets SIGWINCH). ENOTTY when it has no PTY. */
int sk_agent_resize(struct sk_agent *a, uint32_t proc_id, uint16_t rows, uint16_t cols, struct sk_error *err);

struct sk_agent_event {
    uint32_t proc_id;
    int exit_code;  /* exit status, or 128 + signo when killed by a signal */
    int signo;      /* the killing signal, 0 when it exited */
    bool timed_out; /* killed by skiff-init because its timeout passed */
    bool core_dumped;
};

/* A process skiff-init tracks, as sk_agent_list_procs reports it. */
struct sk_agent_proc_info {
    uint32_t id;
    pid_t pid;                           /* in the sandbox's pid namespace; meaningless once exited */
    bool pty, want_stdin, output_to_fds; /* how it was spawned */
    bool exited;                         /* ended; its EXIT awaits sk_agent_release */
    struct sk_agent_event end;           /* when exited: how (end.proc_id == id); else
                                            only end.timed_out may be set (SIGKILL sent) */
};

/* sk_agent_list_procs - every process skiff-init tracks: running ones and,
 * in a persistent sandbox, exited ones not yet released; in the order they
 * were started. *procs (NULL when *n is 0) is freed by the caller with
 * free(). EPROTO for a malformed reply. */
int sk_agent_list_procs(struct sk_agent *a, struct sk_agent_proc_info **procs, size_t *n, struct sk_error *err);

/* sk_agent_release - a persistent sandbox's skiff-init forgets the EXIT of
 * process `proc_id` (call it once the EXIT is stored; until then every new
 * connection gets the EXIT again, and each unreleased one counts against
 * the 1024 tracked processes, EAGAIN for SPAWN beyond). ESRCH when unknown
 * (already released; in a non-persistent sandbox always, as EXITs are not
 * kept there), EBUSY while it runs. */
int sk_agent_release(struct sk_agent *a, uint32_t proc_id, struct sk_error *err);

/* sk_agent_open_pty - a new fd of the PTY master of a running pty process
 * (caller owns *fd), e.g. for a new owner to re-attach. ESRCH when it is not
 * running, ENOTTY without a pty, EPROTO if skiff-init passes anything but a
 * read-write character device. */
int sk_agent_open_pty(struct sk_agent *a, uint32_t proc_id, int *fd, struct sk_error *err);

/* sk_agent_next_event - the next process end: 1 = *ev filled, 0 = none
 * within timeout_ms (0 = do not wait, < 0 = wait forever), < 0 = error
 * (-EPIPE when skiff-init is gone, -EPROTO for a malformed event). Replies
 * to abandoned requests are dropped. A compromised skiff-init can invent
 * events: match proc_id against processes you started. */
int sk_agent_next_event(struct sk_agent *a, struct sk_agent_event *ev, int timeout_ms, struct sk_error *err);

/* ---- watching files ----
 *
 * A watch reports what happens in one directory of the sandbox (with
 * recursive, in its whole tree, including directories created later) as a
 * stream of events. Watches belong to this connection: skiff-init removes
 * them when it ends, so a new owner of a persistent sandbox adds again what
 * it needs (and re-lists, as it missed what happened meanwhile).
 *
 * Events wait in a queue of their own, next to the EXIT queue, until
 * sk_agent_next_watch_event returns them. A caller that drains EXITs with
 * sk_agent_next_event must also drain watch events: they accumulate up to
 * SK_AGENT_WATCH_EVENTS_MAX; beyond that each further event is dropped and
 * its watch gets one SK_AGENT_WATCH_OVERFLOW event (as soon as there is
 * room, before its later events). skiff-init does the same when the socket
 * is full. An overflow means "events were lost": list the directory again. */

#define SK_AGENT_WATCH_EVENTS_MAX 4096
#define SK_AGENT_WATCH_PATH_MAX 4096 /* bytes of an event's path */

enum sk_agent_watch_kind {
    SK_AGENT_WATCH_CREATE = 1,    /* an entry was created (or appeared with a new directory) */
    SK_AGENT_WATCH_MODIFY = 2,    /* a file was written to (or closed after writing) */
    SK_AGENT_WATCH_DELETE = 3,    /* an entry was removed; path "": the watched directory itself */
    SK_AGENT_WATCH_MOVE_FROM = 4, /* renamed away from path ... */
    SK_AGENT_WATCH_MOVE_TO = 5,   /* ... to path: the same cookie pairs the two halves */
    SK_AGENT_WATCH_OVERFLOW = 6,  /* events of this watch were lost; path "" */
};

struct sk_agent_watch_event {
    uint32_t watch_id;
    enum sk_agent_watch_kind kind;
    /* 'f' regular file, 'd' directory, 'l' symlink, 'o' other, '?' a
     * non-directory whose type is unknown (gone when skiff-init looked:
     * always for delete and move_from of a file) */
    char type;
    /* move_from and move_to of one rename have the same cookie (0 for
     * other kinds). A move_from without its move_to left the watched tree;
     * a move_to without its move_from came from outside (a directory
     * moved in brings its contents without further events). */
    uint32_t cookie;
    /* Relative to the watched directory ("a/b" in a recursive watch):
     * never absolute, never with "." or ".." components. Empty for an
     * overflow and for the watched directory's own deletion. */
    char path[SK_AGENT_WATCH_PATH_MAX + 1];
};

/* sk_agent_watch_add - watch the directory `path` (resolved inside the
 * sandbox's root like every path: a symlink to a host directory cannot be
 * watched). With recursive, every directory below it too, and those
 * created later; symlinks are never followed. *watch_id gets the watch's
 * id, which its events carry. Events coalesce: several modifications of a
 * path in a row may be one modify. Errors: ENOENT, ENOTDIR (not a
 * directory), ENOSPC (64 watches, or 8192 watched directories, in one
 * sandbox; or the kernel's inotify limit), EMFILE (the kernel's limit of
 * inotify instances), ELOOP (a tree deeper than 128 levels), EPROTO from an
 * older skiff-init. */
int sk_agent_watch_add(struct sk_agent *a, const char *path, bool recursive, uint32_t *watch_id, struct sk_error *err);

/* sk_agent_watch_remove - stop a watch. Its events still queued here are
 * discarded and none follow, even if the call fails. ENOENT when skiff-init
 * has no such watch. */
int sk_agent_watch_remove(struct sk_agent *a, uint32_t watch_id, struct sk_error *err);

/* sk_agent_next_watch_event - the next watch event: 1 = *ev filled, 0 =
 * none within timeout_ms (0 = do not wait, < 0 = wait forever), < 0 =
 * error (-EPIPE when skiff-init is gone, -EPROTO for a malformed message).
 * EXIT events read meanwhile are queued for sk_agent_next_event. Events of
 * watches this connection did not add (or has removed) are dropped. */
int sk_agent_next_watch_event(struct sk_agent *a, struct sk_agent_watch_event *ev, int timeout_ms,
                              struct sk_error *err);

/* sk_agent_has_pending_watch_events - watch events (or an owed overflow)
 * are queued: sk_agent_next_watch_event with timeout 0 returns one. */
bool sk_agent_has_pending_watch_events(const struct sk_agent *a);

/* sk_agent_has_pending_events - EXIT events are queued:
 * sk_agent_next_event with timeout 0 returns one. */
bool sk_agent_has_pending_events(const struct sk_agent *a);

/* sk_agent_watch_kind_name - "create", "modify", "delete", "move_from",
 * "move_to", "overflow"; "unknown" otherwise. */
const char *sk_agent_watch_kind_name(enum sk_agent_watch_kind kind);

/* File operations. Paths are interpreted inside the sandbox's root: absolute
 * or relative to it, "..", absolute and relative symlinks all stay inside
 * (openat2 RESOLVE_IN_ROOT in skiff-init). Paths must be non-empty, at most
 * 4096 bytes. */

struct sk_file_stat {
    char type;     /* 'f' regular, 'd' directory, 'l' symlink, 'o' other */
    uint32_t mode; /* permission bits (07777) */
    uint64_t size;
    int64_t mtime_ns;  /* since the epoch */
    uint32_t uid, gid; /* as seen inside the sandbox */
};

/* sk_agent_stat - stat `path`; with follow, a final symlink is followed
 * (inside the root), otherwise the link itself is described. */
int sk_agent_stat(struct sk_agent *a, const char *path, bool follow, struct sk_file_stat *st, struct sk_error *err);

/* sk_agent_open_read - open a regular file for reading; the caller owns *fd
 * (close-on-exec). EISDIR/EINVAL for a directory or another non-regular
 * file; EPROTO when skiff-init passes anything but a readable regular file. */
int sk_agent_open_read(struct sk_agent *a, const char *path, int *fd, struct sk_error *err);

/* sk_agent_read_file - read up to max_len bytes from `offset` (0 = to the end
 * of file, at most SK_AGENT_READ_FILE_MAX, EFBIG beyond). *data is
 * NUL-terminated (the NUL is not counted in *len) and freed by the caller.
 * Reading past the end gives 0 bytes. */
int sk_agent_read_file(struct sk_agent *a, const char *path, uint64_t offset, uint64_t max_len, char **data,
                       size_t *len, struct sk_error *err);

/* sk_agent_write_begin - start an atomic write: skiff-init creates a temp
 * file with `mode` (07777) next to `path` (whose directory must exist) and
 * the caller gets a write fd to it (*fd, caller owns) and a *handle for
 * commit or abort. */
int sk_agent_write_begin(struct sk_agent *a, const char *path, uint32_t mode, int *fd, uint32_t *handle,
                         struct sk_error *err);

/* sk_agent_write_commit - fsync the temp file and rename it over the target.
 * The handle is consumed even on failure (the temp file is then removed).
 * Close your fd before or after; it does not matter. */
int sk_agent_write_commit(struct sk_agent *a, uint32_t handle, struct sk_error *err);

/* sk_agent_write_abort - remove the temp file and forget the handle. */
int sk_agent_write_abort(struct sk_agent *a, uint32_t handle, struct sk_error *err);

/* sk_agent_write_file - begin + write all of `data` + commit: the target is
 * replaced atomically or left as it was. */
int sk_agent_write_file(struct sk_agent *a, const char *path, const void *data, size_t len, uint32_t mode,
                        struct sk_error *err);

struct sk_file_entry {
    char *path;             /* relative to the listed directory ("a/b" when recursive) */
    struct sk_file_stat st; /* of the entry itself (symlinks not followed) */
};

/* sk_agent_list - list a directory (recursive: the whole tree, not following
 * symlinks) in directory order. *entries (may be NULL when *n is 0) is freed
 * with sk_file_entries_free. E2BIG beyond SK_AGENT_LIST_MAX entries. */
int sk_agent_list(struct sk_agent *a, const char *path, bool recursive, struct sk_file_entry **entries, size_t *n,
                  struct sk_error *err);
void sk_file_entries_free(struct sk_file_entry *e, size_t n);

/* sk_agent_mkdir - create a directory with `mode` (exact, no umask); with
 * parents, also missing parents and no error when it exists (mkdir -p). */
int sk_agent_mkdir(struct sk_agent *a, const char *path, uint32_t mode, bool parents, struct sk_error *err);

/* sk_agent_remove - remove a file, symlink (never its target) or empty
 * directory; with recursive, a whole tree without following symlinks. */
int sk_agent_remove(struct sk_agent *a, const char *path, bool recursive, struct sk_error *err);

/* sk_agent_rename - rename(2) inside the root; replaces an existing target. */
int sk_agent_rename(struct sk_agent *a, const char *from, const char *to, struct sk_error *err);

#endif
