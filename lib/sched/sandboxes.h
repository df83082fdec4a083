/* sandboxes.h - the sandbox manager: API-level sandboxes on this node.
 *
 * It ties the runtime (lib/runtime) to the store (lib/store): every sandbox
 * it creates is recorded before it is reported, ends with a recorded reason
 * (exited, timeout, idle, oom, terminated, error, lost), and stays queryable
 * after its end until the retention period passes. It enforces sandbox
 * timeouts and idle timeouts, runs execs whose output goes to files under
 * the data directory (so a reader can resume from any byte offset), and
 * notifies waiters.
 *
 * Everything runs on the owner's event loop, given as struct sk_loop_ops;
 * callbacks are called from that loop. Not thread-safe.
 *
 * Callbacks (waiters, exec watchers) are never called from inside an
 * sk_sched_* call: they run from a 0 ms timer of the loop once the current
 * callback has returned, after every store write they report on has been
 * committed. A callback may call any sk_sched_* function, including
 * cancelling itself or other watchers.
 *
 * Layout under <data_dir>/sandboxes/<sandbox id>/ (directories 0700, files
 * 0600): execs/<exec id>.stdout and .stderr, appended while the exec runs
 * and complete once it has ended; execs/<exec id>.stdout.truncated (and
 * .stderr.truncated), empty, when that stream passed max_output_bytes;
 * execs/<exec id>.proc, {"proc_id": N}, skiff-init's id of the exec's
 * process while it runs. Removed with the sandbox's record by the
 * retention sweep.
 *
 * Restarts. The sandboxes are persistent (runtime/sandbox.h): a crash of
 * the owning process (kill -9) leaves them and their execs running, and
 * the next process's sk_sched_recover adopts them again; their records say
 * "running" throughout. The process of an exec without a pty writes its
 * output files itself, so nothing of it is lost while nobody owns the
 * sandbox, and a reader resumes by offset. What does not survive: an exec's
 * stdin pipe (its write end was the crashed process's: the process reads
 * EOF, and sk_sched_exec_stdin says EALREADY afterwards) and, for a pty
 * exec, the master fd (it is opened again on adoption; output the pty
 * held when its process exited while nobody owned the sandbox is lost). An
 * orderly stop (sk_sched_free) still ends every sandbox.
 *
 * SIGPIPE: writes to an exec's stdin never raise SIGPIPE in the owner (it is
 * blocked and consumed around each write), so the owner need not ignore it.
 */
#ifndef SK_SCHED_SANDBOXES_H
#define SK_SCHED_SANDBOXES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"
#include "store/store.h"

/* The event loop the manager runs on. watch() calls cb(arg) whenever fd is
 * readable (level-triggered) until unwatch(); it returns 0, or -1 with errno
 * set. timer() calls cb(arg) once after delay_ms unless cancelled - never
 * from inside timer() itself, also for delay_ms 0 (then: once the current
 * callback has returned); ids are > 0 and never reused. A callback may
 * unwatch or cancel anything, itself included; a watch or timer removed that
 * way must not be called afterwards. A spurious call (fd not readable) is
 * harmless. */
struct sk_loop_ops {
    void *ctx;
    int (*watch)(void *ctx, int fd, void (*cb)(void *arg), void *arg);
    void (*unwatch)(void *ctx, int fd);
    uint64_t (*timer)(void *ctx, int64_t delay_ms, void (*cb)(void *arg), void *arg);
    void (*cancel)(void *ctx, uint64_t id);
};

struct sk_net;

struct sk_sched_config {
    const char *data_dir;       /* exec output lives in <data_dir>/sandboxes/<id>/ */
    int64_t default_timeout_ms; /* 0: 300 s (capped to max_timeout_ms when that is smaller) */
    int64_t max_timeout_ms;     /* 0: no maximum */
    int64_t retention_ms;       /* how long ended sandboxes stay queryable; 0: 24 h */
    int64_t max_output_bytes;   /* per exec stream; 0: 1 GiB. A process that writes more
                                   is SIGKILLed (pty: the excess is dropped instead) and
                                   its file cut back to the limit and marked truncated */
    /* Optional observers (metrics), called on the loop after the change is
     * stored: a sandbox started ("running") or ended ("terminated", with its
     * reason), an exec ended. They must not call back into the manager. */
    void (*on_sandbox)(void *ctx, const struct sk_sandbox_rec *rec);
    void (*on_exec_end)(void *ctx, const struct sk_exec_rec *rec);
    void *observer_ctx;
    /* Optional warm pool (runtime/pool.h; borrowed, must outlive the
     * manager): sk_sched_create claims a ready sandbox from it and creates
     * one cold only on a miss. */
    struct sk_pool *pool;
    /* Optional sandbox networking (net/net.h; borrowed, must outlive the
     * manager): every sandbox is attached to it after it is made and
     * before it is recorded (its state kept in the runtime record under
     * "network"), re-attached after a restart, detached at its end. Without
     * it, requests for a network other than mode "none" fail (ENOTSUP). */
    struct sk_net *net;
};

#define SK_EXEC_ID_LEN 19 /* "ex-" + 16 hex */
#define SK_SCHED_NAME_MAX 64
/* Bounds on what a request may carry (E2BIG beyond). */
#define SK_SCHED_ARGV_MAX 4096
#define SK_SCHED_ENV_MAX 1024
#define SK_SCHED_TAGS_MAX 64        /* tags per sandbox */
#define SK_SCHED_TAG_KEY_MAX 128    /* bytes */
#define SK_SCHED_TAG_VALUE_MAX 1024 /* bytes */
/* Bytes sk_sched_exec_stdin buffers per exec while the process does not
 * read (EAGAIN beyond: retry later). */
#define SK_SCHED_STDIN_BUF_MAX (1024 * 1024)
/* After a pty exec's process has exited, its output is read until the
 * master is quiet for SK_SCHED_EXEC_GRACE_MS (a background child may hold
 * the terminal open forever), at most SK_SCHED_EXEC_DRAIN_MAX_MS; then the
 * exec ends. (Any other exec ends with its process: it wrote its output
 * files itself. A background child that still holds them may append to
 * them afterwards - within max_output_bytes - until its sandbox ends.) */
#define SK_SCHED_EXEC_GRACE_MS 200
#define SK_SCHED_EXEC_DRAIN_MAX_MS 2000

struct sk_sched;

/* sk_sched_new - a manager on `loop` (copied) for the sandboxes of runtime
 * `rt` recorded in store `st` (both borrowed; they must outlive it). Creates
 * <data_dir>/sandboxes, runs the retention sweep once and then every minute.
 * Call sk_sched_recover next. The caller frees with sk_sched_free. */
int sk_sched_new(struct sk_runtime *rt, struct sk_store *st, const struct sk_loop_ops *loop,
                 const struct sk_sched_config *cfg, struct sk_sched **out, struct sk_error *err);
/* sk_sched_free - terminate every sandbox it runs (reason "terminated",
 * detail "server shutdown"), deliver the resulting end notifications to the
 * waiters and watchers registered at that moment (synchronously, from
 * inside this call), drop the rest without a call, and free. NULL is a
 * no-op. (This is the orderly stop; a process that dies without it leaves
 * its sandboxes running for sk_sched_recover.) */
void sk_sched_free(struct sk_sched *s);

/* sk_sched_recover - at start, before anything else uses the manager:
 * every sandbox the store says is running belonged to an earlier process
 * of this server. Each is adopted again (sk_sandbox_adopt with the adopt
 * info in its record) and carries on: its execs are matched with the
 * processes skiff-init lists - those still running go on (output followed
 * from where the files are, pty masters re-opened), those that ended
 * meanwhile are recorded with their real exit status, an exec whose process
 * is gone is recorded as exited with exit_code -1, a process no exec claims
 * is killed -, its timeout fires at its original deadline, its idle
 * timeout counts from now, and its entrypoint still ends it. A sandbox that
 * cannot be adopted (its pid 1 died, another boot, no adopt info, or it was
 * still being created) is destroyed (sk_sandbox_destroy_orphan) and
 * recorded with reason "lost" (detail "server restarted: <why>"), its
 * running execs as exited with exit_code -1. Then the runtime's stale sweep
 * removes every sandbox of the state directory that nobody owns. The
 * runtime must have been created with keep_unowned (else its own start
 * already swept them). Returns how many were recorded lost; logs how many
 * were re-adopted. */
int sk_sched_recover(struct sk_sched *s, struct sk_error *err);

/* sk_sched_purge - the retention sweep, now: delete the records of
 * sandboxes that ended more than retention_ms ago and remove the output
 * directory of every sandbox without a record. Returns how many records
 * were deleted. (Also runs on its own every minute.) */
int sk_sched_purge(struct sk_sched *s, struct sk_error *err);

struct sk_sandbox_req {
    const char *image;             /* NULL: "host" */
    const char *const *entrypoint; /* NULL or argv: the sandbox ends when it exits */
    bool entrypoint_stdin;         /* give the entrypoint a stdin pipe (write it through its
                                      exec: sk_sched_entrypoint_exec + sk_sched_exec_stdin) */
    const char *const *env;        /* NULL or "K=V" list for every process */
    const char *workdir;           /* NULL: "/"; else absolute */
    struct sk_cgroup_limits limits;
    int64_t disk_bytes;
    int64_t timeout_ms;      /* 0: default */
    int64_t idle_timeout_ms; /* 0: none */
    const char *name;        /* NULL or unique: 1 to 64 of [A-Za-z0-9._-] */
    const char *tags_json;   /* NULL or a JSON object of strings */
    const char *spec_json;   /* the request as accepted, stored verbatim (NULL: a
                                summary of this struct is stored) */
    /* NULL (mode "none") or sk_net_policy_json's object, network_group
     * included: the network to attach (net/policy.h) */
    const char *network_json;
};

/* sk_sched_create - create and start a sandbox; *out (caller releases) is
 * its stored record, state "running". EEXIST for a taken name, EINVAL (or
 * E2BIG) for a bad request (timeout above the maximum - the message names
 * it -, bad name, tags, env, limits, ...), runtime errors otherwise: then
 * the sandbox is recorded as ended with reason "error" (without its name,
 * which stays free) and the message names its id. An entrypoint that cannot
 * be started (ENOENT for a missing command) also ends the sandbox with
 * reason "error" and returns that error. */
int sk_sched_create(struct sk_sched *s, const struct sk_sandbox_req *req, struct sk_sandbox_rec *out,
                    struct sk_error *err);

/* sk_sched_create_async - sk_sched_create without holding up the loop.
 * The request is checked at once: its errors (EINVAL, E2BIG, EEXIST for a
 * taken name, EBUSY while shutting down) are returned here, nothing is
 * recorded and cb is never called. Otherwise (0) cb(arg, 0, rec, NULL)
 * or cb(arg, -code, NULL, err) follows from the loop - never from inside
 * this call - exactly as sk_sched_create would have answered: a sandbox
 * from the warm pool at once, one made on request on a worker thread (one
 * per CPU, at most 4), so that the loop serves other requests meanwhile and
 * creations run in parallel. req is copied; rec and err are borrowed for
 * the call. Creations still in flight at sk_sched_free are reported from
 * inside it with EBUSY. */
typedef void (*sk_sched_create_cb)(void *arg, int ret, const struct sk_sandbox_rec *rec, const struct sk_error *err);
int sk_sched_create_async(struct sk_sched *s, const struct sk_sandbox_req *req, sk_sched_create_cb cb, void *arg,
                          struct sk_error *err);

/* sk_sched_set_pool - use `pool` (borrowed, NULL: none) from now on, as
 * cfg->pool would (a daemon starts its pool after sk_sched_recover, so
 * that the recovery's stale sweep never meets a sandbox being made). */
void sk_sched_set_pool(struct sk_sched *s, struct sk_pool *pool);

/* sk_sched_prepare_dir - create <data_dir>/sandboxes/<sandbox_id>/execs
 * ahead of the sandbox's first exec (the warm pool's refill thread does it
 * for the sandboxes it makes). Touches no manager state: callable from any
 * thread. A directory nobody's record claims is removed by the retention
 * sweep. */
int sk_sched_prepare_dir(const char *data_dir, const char *sandbox_id, struct sk_error *err);

/* sk_sched_get - the stored record by id or name (ENOENT when unknown). */
int sk_sched_get(struct sk_sched *s, const char *id_or_name, struct sk_sandbox_rec *out, struct sk_error *err);

/* sk_sched_set_tags - replace the tags (same rules as at create). */
int sk_sched_set_tags(struct sk_sched *s, const char *id_or_name, const char *tags_json, struct sk_error *err);

/* sk_sched_entrypoint_exec - the id of the exec that runs (or ran) the
 * sandbox's entrypoint, for its logs (ENOENT when it has none). */
int sk_sched_entrypoint_exec(struct sk_sched *s, const char *id_or_name, char exec_id[SK_EXEC_ID_LEN + 1],
                             struct sk_error *err);

/* sk_sched_terminate - end a running sandbox: reason "terminated", detail
 * `by` (the token id). Terminating an ended sandbox is not an error.
 * ENOENT when unknown. */
int sk_sched_terminate(struct sk_sched *s, const char *id_or_name, const char *by, struct sk_error *err);

/* sk_sched_usage - live usage of a running sandbox (ENOENT when it is not
 * running here). */
int sk_sched_usage(struct sk_sched *s, const char *id, struct sk_cgroup_usage *u, struct sk_error *err);

/* sk_sched_touch - record API activity for the idle timeout (no-op for a
 * sandbox that does not run here). Starting an exec, writing its stdin,
 * signalling or resizing it and sk_sched_agent count as activity too. */
void sk_sched_touch(struct sk_sched *s, const char *id);

/* sk_sched_wait - call cb(arg, rec) once when the sandbox has ended, or with
 * rec->reason NULL when timeout_ms passes first (timeout_ms <= 0: no
 * timeout); soon (from the loop) if it has already ended. Returns a waiter
 * id for sk_sched_wait_cancel. ENOENT when unknown. rec is borrowed for the
 * call. */
typedef void (*sk_sched_wait_cb)(void *arg, const struct sk_sandbox_rec *rec);
int sk_sched_wait(struct sk_sched *s, const char *id, int64_t timeout_ms, sk_sched_wait_cb cb, void *arg,
                  uint64_t *waiter, struct sk_error *err);
/* sk_sched_wait_cancel - forget a waiter or exec watcher; its callback is
 * not called any more. Unknown or finished ids are ignored. */
void sk_sched_wait_cancel(struct sk_sched *s, uint64_t waiter);

/* ---- execs ---------------------------------------------------------------- */

struct sk_exec_req {
    const char *const *argv;
    const char *const *env; /* NULL: the sandbox's; else merged over the sandbox's */
    const char *workdir;    /* NULL: the sandbox's */
    int64_t timeout_ms;     /* 0: none; when it passes skiff-init SIGKILLs the process
                               group and the record says timed_out */
    bool stdin_pipe;        /* keep stdin open for sk_sched_exec_stdin (pty: always);
                               a pipe does not survive a restart (see above) */
    bool pty;
    uint16_t rows, cols;
};

/* sk_sched_exec - start a process in a running sandbox. Its stdout and
 * stderr are appended to files (see sk_sched_exec_output). *out (caller
 * releases) is the stored exec record. ENOENT for an unknown sandbox,
 * EALREADY for one that has ended, EINVAL/E2BIG for a bad request,
 * skiff-init's errors (ENOENT "exec 'foo': ...", EAGAIN) otherwise; a
 * process that could not be started is not recorded. */
int sk_sched_exec(struct sk_sched *s, const char *sandbox_id, const struct sk_exec_req *req, struct sk_exec_rec *out,
                  struct sk_error *err);
/* sk_sched_exec_async - sk_sched_exec without holding up the loop while
 * skiff-init forks and execs: the request is checked and sent at once (its
 * errors - ENOENT, EALREADY, EINVAL, E2BIG, EAGAIN when 64 starts are in
 * flight in that sandbox - are returned here and cb is never called);
 * then cb(arg, 0, rec, NULL) once the process runs and is recorded, or
 * cb(arg, -code, NULL, err) with skiff-init's error (ENOENT "exec 'foo':
 * ...") or EALREADY when the sandbox ended first - always from the loop,
 * never from inside an sk_sched_* call. The exec may have ended by then
 * (its watchers see that as usual). req is borrowed for the call. Starts
 * still unanswered at sk_sched_free are reported from inside it. */
typedef void (*sk_sched_exec_start_cb)(void *arg, int ret, const struct sk_exec_rec *rec, const struct sk_error *err);
int sk_sched_exec_async(struct sk_sched *s, const char *sandbox_id, const struct sk_exec_req *req,
                        sk_sched_exec_start_cb cb, void *arg, struct sk_error *err);

/* sk_sched_exec_signal - send signo (1..64) to the exec's process (not its
 * group). ENOENT for an unknown exec, EALREADY when it has exited. */
int sk_sched_exec_signal(struct sk_sched *s, const char *exec_id, int signo, struct sk_error *err);
/* ENOTTY for an exec without a pty. */
int sk_sched_exec_resize(struct sk_sched *s, const char *exec_id, uint16_t rows, uint16_t cols, struct sk_error *err);
/* sk_sched_exec_stdin - queue `data` for the exec's stdin and write what the
 * pipe takes now; the rest is written from the loop as the process reads.
 * Never blocks. At most SK_SCHED_STDIN_BUF_MAX bytes wait per exec: a write
 * that does not fit fails with EAGAIN and queues nothing (retry later).
 * With eof the pipe is closed once everything queued is written (for a pty
 * exec, eof sends ^D instead). EALREADY once stdin is closed or the process
 * has exited (data it never read is dropped then), EINVAL for an exec
 * started without stdin_pipe, ENOENT for an unknown exec. len 0 with eof
 * just closes. (This error was EPIPE in the first draft; EALREADY maps to a
 * 409 "failed_precondition", EPIPE would be a 500.) */
int sk_sched_exec_stdin(struct sk_sched *s, const char *exec_id, const void *data, size_t len, bool eof,
                        struct sk_error *err);

/* sk_sched_exec_output - open the output file of one stream ("stdout" or
 * "stderr"; for a pty exec everything is "stdout" and "stderr" stays empty)
 * for reading; the caller owns the fd (O_RDONLY, close-on-exec, blocking -
 * it is a regular file) and reads from any offset with pread. *ended (may
 * be NULL) tells whether the exec has ended (then the file is complete).
 * ENOENT for an unknown exec or a purged file, EINVAL for another stream. */
int sk_sched_exec_output(struct sk_sched *s, const char *exec_id, const char *stream, int *fd, bool *ended,
                         struct sk_error *err);

struct sk_exec_output_info {
    int64_t stdout_bytes, stderr_bytes;      /* stored so far */
    bool stdout_truncated, stderr_truncated; /* output past max_output_bytes was dropped */
    bool ended;                              /* the exec has ended: the sizes are final */
};
/* sk_sched_exec_output_info - sizes and truncation of an exec's output. */
int sk_sched_exec_output_info(struct sk_sched *s, const char *exec_id, struct sk_exec_output_info *info,
                              struct sk_error *err);

/* sk_sched_exec_watch - like sk_sched_wait, for one exec: cb(arg, rec, true)
 * once it has ended (its record says how; its output files are complete),
 * or cb(arg, rec, false) once when timeout_ms passes first (timeout_ms <= 0:
 * none). With on_output, also cb(arg, rec, false) after output was appended
 * (coalesced: one call per loop iteration at most), so a streaming reader
 * can follow; then timeout_ms must be <= 0 (EINVAL otherwise: the two
 * calls would look alike). The watcher is gone after the call with ended ==
 * true (or the timeout). rec is borrowed for the call. ENOENT for an
 * unknown exec. Cancel with sk_sched_exec_watch_cancel. */
typedef void (*sk_sched_exec_cb)(void *arg, const struct sk_exec_rec *rec, bool ended);
int sk_sched_exec_watch(struct sk_sched *s, const char *exec_id, int64_t timeout_ms, bool on_output,
                        sk_sched_exec_cb cb, void *arg, uint64_t *watcher, struct sk_error *err);
void sk_sched_exec_watch_cancel(struct sk_sched *s, uint64_t watcher);

/* ---- file watches ------------------------------------------------------------ */

/* sk_sched_watch_files - watch a directory (recursive: the whole tree)
 * inside a running sandbox through its skiff-init (inotify; every path is
 * resolved inside the sandbox root). cb(arg, ev, false) for each event
 * (paths relative to the watched directory; kind overflow means events were
 * lost: re-list), then once cb(arg, NULL, true) when the sandbox ends or the
 * server stops; not after sk_sched_watch_files_cancel. The end call may run
 * inside an sk_sched_* call that ends the sandbox (terminate, free). ENOENT
 * when the sandbox is not running, errors of skiff-init otherwise (ENOENT,
 * ENOTDIR, ENOSPC at its limits). */
struct sk_agent_watch_event;
typedef void (*sk_sched_fwatch_cb)(void *arg, const struct sk_agent_watch_event *ev, bool ended);
int sk_sched_watch_files(struct sk_sched *s, const char *sandbox_id, const char *path, bool recursive,
                         sk_sched_fwatch_cb cb, void *arg, uint64_t *id, struct sk_error *err);
void sk_sched_watch_files_cancel(struct sk_sched *s, uint64_t id);

/* sk_sched_agent - the runtime agent of a running sandbox, for file
 * operations (ENOENT when it does not run here). Borrowed: valid until the
 * current loop callback returns. Use it synchronously; exit events it
 * queues meanwhile are picked up from the loop afterwards. */
struct sk_agent *sk_sched_agent(struct sk_sched *s, const char *sandbox_id, struct sk_error *err);

/* ---- network policy (net/net.h) --------------------------------------------------- */

/* sk_sched_network_get - a sandbox's network policy (sk_net_policy_json's
 * object as text, heap, caller frees; mode "none" for a sandbox made
 * without one), for ended sandboxes too, with *running telling whether it
 * runs here (then sk_net_status has its live side). *id gets the id.
 * ENOENT when unknown. */
int sk_sched_network_get(struct sk_sched *s, const char *id_or_name, char id[24], char **policy_json, bool *running,
                         struct sk_error *err);
/* sk_sched_network_set - apply the fields of `patch_json` (the API's
 * "network" object; see sk_net_policy_patch) to a running sandbox's policy
 * at once (sk_net_update) and store it. *policy_json (heap, may be NULL) is
 * the effective policy. EINVAL for a bad patch (the message names the
 * field), EALREADY for a sandbox that has ended, ENOENT when unknown,
 * ENOTSUP without networking. */
int sk_sched_network_set(struct sk_sched *s, const char *id_or_name, const char *patch_json, char **policy_json,
                         struct sk_error *err);

/* ---- inbound ports (daemon/proxy*.c) ------------------------------------------ */

/* sk_sched_ports_get - the "ports" entry of a running sandbox's runtime
 * record (JSON array text, sched/ports.h's durable form; "[]" when it has
 * none) into *json (caller frees), and its id ("sb-" + 16 hex) into id
 * (may be NULL).
 * ENOENT for an unknown sandbox, EALREADY for one that is not running. */
int sk_sched_ports_get(struct sk_sched *s, const char *id_or_name, char id[20], char **json, struct sk_error *err);
/* sk_sched_ports_set - replace it (a JSON array) and commit the record
 * before returning; ENOENT/EALREADY as above, EINVAL for other JSON. */
int sk_sched_ports_set(struct sk_sched *s, const char *id, const char *json, struct sk_error *err);
/* sk_sched_netns_open - open the network namespace of a running sandbox
 * (its pid 1's /proc/<pid>/ns/net, checked against the pidfd so that a
 * reused pid cannot hand out another namespace): *fd is O_RDONLY |
 * O_CLOEXEC and the caller's. ENOENT when it does not run here. */
int sk_sched_netns_open(struct sk_sched *s, const char *id, int *fd, struct sk_error *err);

#endif
