/* sandbox.h - one sandbox: namespaces + cgroup + overlay root + privileges,
 * with skiff-init as its pid 1.
 *
 * Lifecycle: sk_sandbox_create() builds it and connects to skiff-init;
 * sk_sandbox_exec() starts processes; the caller polls sk_sandbox_agent()'s
 * fd for exit events and the returned stdio fds for output; sk_sandbox_kill()
 * ends every process with a recorded reason; sk_sandbox_free() tears down
 * (kill, reap, remove cgroup, release uid range). Mounts live only in the
 * sandbox's mount namespace, so they vanish with its last process even when
 * the owner crashes; a crashed owner's cgroup is found and removed by the
 * next sk_runtime_new(). Not thread-safe; one owner per sandbox.
 *
 * Persistent sandboxes (spec.persistent) outlive their owner. Their
 * skiff-init also listens on <state>/sandboxes/<id>/ctl.sock (reachable only
 * by host root; the sandbox cannot see the path) and, when the owner's
 * connection ends, keeps its processes running and waits for a new owner.
 * The owner stores sk_sandbox_describe()'s record (as a string with
 * sk_sandbox_adopt_info_format); after a crash or restart it calls
 * sk_sandbox_adopt() with it, or sk_sandbox_destroy_orphan() to end a
 * sandbox it cannot adopt. Exec output that must survive the owner goes to
 * host files (sk_sandbox_output_open + sk_agent_spawn's output_to_fds)
 * instead of pipes. A daemon sets sk_runtime_config.keep_unowned, so that
 * its own sk_runtime_new does not sweep its sandboxes before it adopts them.
 *
 * The sandbox's pid 1 is the creating process's child (CLONE_PARENT); a
 * persistent one runs in a session (and process group) of its own, so that
 * signals to the owner's process group spare it. An adopted sandbox is not
 * the adopter's child: its end is seen through
 * sk_sandbox_pidfd() (readable when pid 1 has exited, which in a pid
 * namespace means every process of the sandbox has), never waitpid().
 */
#ifndef SK_RUNTIME_SANDBOX_H
#define SK_RUNTIME_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "runtime/agent.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"

#define SK_SANDBOX_ID_LEN 19 /* "sb-" + 16 hex */
#define SK_SANDBOX_DEFAULT_DISK (1024LL * 1024 * 1024)

enum sk_net_mode { SK_NET_NONE = 0 };
/* sk_net_mode_name - "none", ... (the API's and the pool keys' spelling). */
const char *sk_net_mode_name(enum sk_net_mode m);

struct sk_mount_spec {
    const char *source; /* absolute host path (directory or file) */
    const char *target; /* absolute path inside the sandbox */
    bool read_only;
};

struct sk_sandbox_spec {
    const char *image;    /* "host" (default when NULL) or an absolute rootfs path */
    const char *hostname; /* NULL: derived from the id */
    struct sk_cgroup_limits limits;
    int64_t disk_bytes; /* size of the writable layer; 0: SK_SANDBOX_DEFAULT_DISK */
    int64_t timeout_ms; /* sandbox lifetime; 0: none. Enforced by the owner via
                           sk_sandbox_deadline_ns() (see skiff run). */
    const struct sk_mount_spec *mounts;
    size_t n_mounts;
    enum sk_net_mode net;
    bool die_with_owner; /* SIGKILL the sandbox if the creating thread exits */
    bool persistent;     /* outlives its owner, for sk_sandbox_adopt (not with die_with_owner) */
};

/* Why a sandbox (or its main process) ended. */
enum sk_end_reason {
    SK_END_NONE = 0,
    SK_END_EXITED,
    SK_END_TIMEOUT,
    SK_END_IDLE,
    SK_END_OOM,
    SK_END_TERMINATED,
    SK_END_ERROR,
    SK_END_LOST,
};
const char *sk_end_reason_name(enum sk_end_reason r); /* "exited", "timeout", ... */

struct sk_sandbox;

/* sk_sandbox_create - create a sandbox from `spec` and wait until skiff-init
 * answers. Errors: EINVAL for a bad spec (message says which field), ENOENT
 * for a missing image or mount source, ENOTSUP when the kernel lacks a needed
 * feature (message names it). On failure nothing is left behind. */
int sk_sandbox_create(struct sk_runtime *rt, const struct sk_sandbox_spec *spec, struct sk_sandbox **out,
                      struct sk_error *err);

/* sk_sandbox_spec_validate - the checks sk_sandbox_create makes of a spec
 * before it builds anything (EINVAL naming the field). */
int sk_sandbox_spec_validate(const struct sk_sandbox_spec *spec, struct sk_error *err);

/* sk_sandbox_free - kill everything, reap, remove the cgroup and release the
 * uid range; for a persistent sandbox also remove <state>/sandboxes/<id>
 * (its output files included). NULL is a no-op. */
void sk_sandbox_free(struct sk_sandbox *sb);

/* sk_sandbox_detach - let a persistent sandbox run on without an owner:
 * close the connection to skiff-init and release the locks (not the range
 * claim), then free sb, so that this or another process can adopt it (a
 * daemon's orderly restart). The creating process stays the parent of its
 * pid 1 until it exits. For a sandbox that is not persistent this is
 * sk_sandbox_free. NULL is a no-op. */
void sk_sandbox_detach(struct sk_sandbox *sb);

/* What an owner stores to adopt a persistent sandbox after a restart. Its
 * cgroup is <the runtime's cgroup parent>/<id> and its directory
 * <state>/sandboxes/<id>: adopt with a runtime of the same configuration. */
struct sk_sandbox_adopt_info {
    char id[SK_SANDBOX_ID_LEN + 1];
    pid_t pid;           /* host pid of the sandbox's pid 1 (skiff-init) */
    uint64_t start_time; /* its start time, clock ticks after boot (/proc/<pid>/stat field 22):
                            tells it from a later process that reuses the pid */
    char boot_id[37];    /* /proc/sys/kernel/random/boot_id when it was described */
    uint32_t slot;       /* its uid/gid range */
    char hostname[64];
    int64_t deadline_ns; /* CLOCK_MONOTONIC (same boot), 0 = none */
};
/* Bytes sk_sandbox_adopt_info_format needs, NUL included. */
#define SK_SANDBOX_ADOPT_INFO_MAX 320

/* sk_sandbox_describe - fill *info for a persistent sandbox (EINVAL for one
 * that is not persistent). Store it before acknowledging the sandbox. */
int sk_sandbox_describe(const struct sk_sandbox *sb, struct sk_sandbox_adopt_info *info, struct sk_error *err);

/* sk_sandbox_adopt_info_format - *info as one line of text (no newline):
 * "skiff-adopt/1 id=... pid=... start=... boot=... slot=... hostname=...
 * deadline=...", into buf (SK_SANDBOX_ADOPT_INFO_MAX bytes suffice).
 * Returns its length, or -ENOSPC when it does not fit. */
int sk_sandbox_adopt_info_format(const struct sk_sandbox_adopt_info *info, char *buf, size_t size);

/* sk_sandbox_adopt_info_parse - the reverse; strict (every field once, in
 * that order, each checked). EINVAL with the offending field named. */
int sk_sandbox_adopt_info_parse(const char *s, struct sk_sandbox_adopt_info *info, struct sk_error *err);

/* sk_sandbox_adopt - become the owner of the still-running persistent
 * sandbox *info describes: take its lock and its uid range again, verify
 * that its pid 1 is the same process (boot id, start time, cgroup), open a
 * pidfd, reopen its cgroup, connect to its skiff-init and say HELLO. Then
 * list its processes with sk_agent_list_procs(sk_sandbox_agent(sb)); EXITs
 * it has not released arrive as events (sk_agent_release them once stored).
 * Errors: ESRCH when its pid 1 is gone or is another process (reused pid,
 * other boot), ENOENT when its directory or cgroup is gone, EBUSY when
 * another process owns it, EINVAL for a malformed *info. On failure nothing
 * was changed: call sk_sandbox_destroy_orphan to clean up. The caller
 * frees *out with sk_sandbox_free (or _detach). */
int sk_sandbox_adopt(struct sk_runtime *rt, const struct sk_sandbox_adopt_info *info, struct sk_sandbox **out,
                     struct sk_error *err);

/* sk_sandbox_destroy_orphan - end an unowned sandbox for good: SIGKILL its
 * pid 1 through a pidfd (only if it still is that process) and wait for it,
 * kill and remove its cgroup, remove <state>/sandboxes/<id>, drop its range
 * claim and lock file. Safe to repeat; 0 when nothing of it is left. EBUSY
 * (and nothing done) when another process owns it. */
int sk_sandbox_destroy_orphan(struct sk_runtime *rt, const struct sk_sandbox_adopt_info *info, struct sk_error *err);

/* sk_sandbox_output_open - create <state>/sandboxes/<id>/execs/<name>
 * (O_WRONLY | O_APPEND, mode 0600, must not exist; name: 1 to 64 of
 * [A-Za-z0-9._-], not "." or "..") for a persistent sandbox and return its
 * fd (caller owns it; close it once sk_agent_spawn has passed it on).
 * EINVAL for a sandbox that is not persistent. Readers open the same path
 * read-only and pread from any offset. */
int sk_sandbox_output_open(struct sk_sandbox *sb, const char *name, int *fd, struct sk_error *err);

/* sk_sandbox_dir - <state>/sandboxes/<id> of a persistent sandbox, else NULL. */
const char *sk_sandbox_dir(const struct sk_sandbox *sb);
/* sk_sandbox_is_persistent / sk_sandbox_is_adopted - how sb came to be. */
bool sk_sandbox_is_persistent(const struct sk_sandbox *sb);
bool sk_sandbox_is_adopted(const struct sk_sandbox *sb);

const char *sk_sandbox_id(const struct sk_sandbox *sb);
struct sk_agent *sk_sandbox_agent(struct sk_sandbox *sb);
/* A pidfd of the sandbox's pid 1 (readable when it exits), also for an
 * adopted sandbox. */
int sk_sandbox_pidfd(const struct sk_sandbox *sb);
/* Host pid of the sandbox's pid 1. */
pid_t sk_sandbox_pid(const struct sk_sandbox *sb);
/* First host uid of the sandbox's range (sandbox uid 0 maps here). */
uid_t sk_sandbox_host_uid(const struct sk_sandbox *sb);
/* CLOCK_MONOTONIC deadline in ns from spec.timeout_ms, or 0 when none. */
int64_t sk_sandbox_deadline_ns(const struct sk_sandbox *sb);

/* sk_sandbox_exec - start a process. NULL envp gets the default environment
 * (PATH, HOME=/root, HOSTNAME, and TERM for a pty); NULL cwd is "/". */
int sk_sandbox_exec(struct sk_sandbox *sb, const struct sk_agent_spawn *spawn, struct sk_agent_proc *proc,
                    struct sk_error *err);

/* sk_sandbox_claim - make a sandbox built ahead of demand (runtime/pool.h)
 * its user's: apply `lim` (a sandbox is built without limits, so all-zero
 * limits cost nothing) and set its lifetime to timeout_ms from now (0:
 * none). EINVAL for limits the cgroup refuses. */
int sk_sandbox_claim(struct sk_sandbox *sb, const struct sk_cgroup_limits *lim, int64_t timeout_ms,
                     struct sk_error *err);

/* sk_sandbox_mark_cpu_baseline - take the CPU time used so far as the
 * baseline that sk_sandbox_usage subtracts: the pool calls it once a
 * sandbox is ready, so a user is not charged for its making (an idle
 * sandbox in the pool uses none after that). */
void sk_sandbox_mark_cpu_baseline(struct sk_sandbox *sb);

/* sk_sandbox_is_alive - its pid 1 still runs (its pidfd is not readable). */
bool sk_sandbox_is_alive(const struct sk_sandbox *sb);

/* sk_sandbox_oom_kills - OOM kills in the sandbox since it was created. */
uint64_t sk_sandbox_oom_kills(struct sk_sandbox *sb);

/* sk_sandbox_usage - live usage of the whole sandbox (cgroup). */
int sk_sandbox_usage(struct sk_sandbox *sb, struct sk_cgroup_usage *u, struct sk_error *err);

/* sk_sandbox_kill - kill every process of the sandbox (pid 1 included) and
 * record `reason` (the first recorded reason wins). The cgroup stays, so
 * usage can still be read, until sk_sandbox_free. */
int sk_sandbox_kill(struct sk_sandbox *sb, enum sk_end_reason reason, struct sk_error *err);
enum sk_end_reason sk_sandbox_reason(const struct sk_sandbox *sb);

#endif
