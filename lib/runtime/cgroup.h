/* cgroup.h - per-sandbox control groups, with a driver for cgroup v2 and one
 * for cgroup v1.
 *
 * sk_cgroup_system_detect() looks at the host once: pure v2 (cgroup2 at
 * /sys/fs/cgroup with the memory controller available) -> v2 driver; v1
 * controllers mounted under /sys/fs/cgroup/<ctrl> -> v1 driver (hybrid hosts,
 * like this project's CI machines, where cgroup2 at /sys/fs/cgroup/unified
 * holds no controllers). The choice is logged at info level
 * ("cgroup driver 'v1'...") and visible through sk_cgroup_system_driver().
 * $SKIFF_CGROUP_DRIVER=v1|v2 forces one (for tests).
 *
 * A struct sk_cgroup names one sandbox's group: <parent>/<name> in every
 * hierarchy the driver uses (v1: memory, cpu, cpuacct, pids, freezer; v2:
 * the one unified tree). Not thread-safe; one owner at a time.
 */
#ifndef SK_RUNTIME_CGROUP_H
#define SK_RUNTIME_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

enum sk_cgroup_driver { SK_CGROUP_V1 = 1, SK_CGROUP_V2 = 2 };

struct sk_cgroup_system;

/* sk_cgroup_system_detect - probe the host and pick a driver. `parent` is the
 * group under which sandboxes are created (e.g. "skiff"); it is created if
 * missing, and on v2 the memory, cpu and pids controllers are enabled in the
 * subtree_control files on the way down. The caller frees with _free. */
int sk_cgroup_system_detect(const char *parent, struct sk_cgroup_system **out, struct sk_error *err);
void sk_cgroup_system_free(struct sk_cgroup_system *sys);
enum sk_cgroup_driver sk_cgroup_system_driver(const struct sk_cgroup_system *sys);
const char *sk_cgroup_driver_name(enum sk_cgroup_driver d); /* "v1" / "v2" */

struct sk_cgroup_limits {
    int64_t memory_bytes; /* 0 = unlimited; swap is always off when set */
    double cpu;           /* cores, e.g. 0.5; 0 = unlimited */
    int64_t pids;         /* 0 = unlimited */
};

struct sk_cgroup_usage {
    uint64_t cpu_usec;       /* user+system CPU time of the whole group */
    uint64_t memory_current; /* bytes charged now */
    uint64_t memory_peak;    /* high-water mark in bytes (0 if unknown) */
    uint64_t pids_current;
    uint64_t oom_kills; /* OOM kills inside the group so far */
};

struct sk_cgroup;

/* sk_cgroup_new - create <parent>/<name> in every hierarchy and apply limits.
 * `name` must be a single path component ([A-Za-z0-9._-]). On failure nothing
 * is left behind. The caller frees with sk_cgroup_free (which does not remove
 * the group; use sk_cgroup_destroy). */
int sk_cgroup_new(struct sk_cgroup_system *sys, const char *name, const struct sk_cgroup_limits *lim,
                  struct sk_cgroup **out, struct sk_error *err);
void sk_cgroup_free(struct sk_cgroup *cg);

/* sk_cgroup_open - the existing group <parent>/<name> (e.g. of a sandbox
 * that outlived its owner), without changing it. ENOENT when it is missing
 * in a hierarchy. The caller frees with sk_cgroup_free. */
int sk_cgroup_open(struct sk_cgroup_system *sys, const char *name, struct sk_cgroup **out, struct sk_error *err);

/* sk_cgroup_enter - move `pid` (0 = the calling process) into the group.
 * Allocates nothing and uses only open/write/close: safe in a forked child. */
int sk_cgroup_enter(const struct sk_cgroup *cg, pid_t pid, struct sk_error *err);

/* sk_cgroup_v2_fd - on v2, an O_PATH|O_DIRECTORY fd of the group for
 * clone3(CLONE_INTO_CGROUP); -1 on v1. Owned by cg. */
int sk_cgroup_v2_fd(const struct sk_cgroup *cg);

/* sk_cgroup_set_limits - change limits of a live group. */
int sk_cgroup_set_limits(struct sk_cgroup *cg, const struct sk_cgroup_limits *lim, struct sk_error *err);

/* sk_cgroup_usage - read live usage; works at any time while the group exists. */
int sk_cgroup_read_usage(const struct sk_cgroup *cg, struct sk_cgroup_usage *u, struct sk_error *err);

/* sk_cgroup_kill - kill every process in the group and wait (bounded, ~2 s)
 * until it is empty: cgroup.kill on v2; freeze, SIGKILL each pid, thaw on v1. */
int sk_cgroup_kill(struct sk_cgroup *cg, struct sk_error *err);

/* sk_cgroup_is_empty - true when no process is left in the group. */
bool sk_cgroup_is_empty(const struct sk_cgroup *cg);

/* sk_cgroup_destroy - kill what is left, then remove the group's directories. */
int sk_cgroup_destroy(struct sk_cgroup *cg, struct sk_error *err);

/* sk_cgroup_cleanup_stale - find groups under the parent whose names start
 * with `prefix` and for which keep(name, opaque) returns false (NULL keep =
 * all), kill their processes and remove them. Returns the number removed.
 * Used at start-up to clean what a crashed process left behind. */
int sk_cgroup_cleanup_stale(struct sk_cgroup_system *sys, const char *prefix,
                            bool (*keep)(const char *name, void *opaque), void *opaque, struct sk_error *err);

/* sk_cgroup_count_children - number of groups directly under the parent whose
 * names start with `prefix` (for leak tests). */
int sk_cgroup_count_children(struct sk_cgroup_system *sys, const char *prefix, struct sk_error *err);

#endif
