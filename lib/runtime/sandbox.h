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

/* sk_sandbox_free - kill everything, reap, remove the cgroup and release the
 * uid range. NULL is a no-op. */
void sk_sandbox_free(struct sk_sandbox *sb);

const char *sk_sandbox_id(const struct sk_sandbox *sb);
struct sk_agent *sk_sandbox_agent(struct sk_sandbox *sb);
/* A pidfd of the sandbox's pid 1 (readable when it exits). */
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
