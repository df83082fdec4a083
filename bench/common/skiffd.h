/* skiffd.h - a private skiffd for a benchmark: started on a free loopback
 * port with its own temporary data directory, stopped by pid, and cleaned up
 * after (its cgroup parent and the directory), on every path.
 *
 * Threads: start and stop from the main thread. */
#ifndef SKIFF_BENCH_SKIFFD_H
#define SKIFF_BENCH_SKIFFD_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define BENCH_SKIFFD_ARGS_MAX 16

struct bench_skiffd {
    pid_t pid;
    int port;
    char dir[PATH_MAX];  /* the temporary directory: everything below it */
    char data[PATH_MAX]; /* --data-dir */
    char log[PATH_MAX];
    char token[256]; /* the admin token */
    /* from skiffd's log: "v1" or "v2", and the directory of the sandboxes'
     * cgroup parent in the hierarchy that holds memory accounting
     * (v1: /sys/fs/cgroup/memory/<parent>; v2: the unified group) */
    char cgroup_driver[4];
    char cgroup_memory_dir[PATH_MAX];
    char cgroup_parent[128]; /* its last component, e.g. skiff-1a2b3c4d */
};

/* bench_skiffd_default - BUILD/skiffd for a program BUILD/bench/NAME, into
 * buf. Returns buf, or NULL when /proc/self/exe cannot be read. */
const char *bench_skiffd_default(char *buf, size_t size);

/* bench_skiffd_start - start `skiffd` with --listen on a free port,
 * --data-dir in a new /var/tmp/skiff-bench-<tag>-XXXXXX, --log-level info,
 * and the NULL-terminated `extra` options (at most BENCH_SKIFFD_ARGS_MAX;
 * NULL for none); wait (up to 15 s) until /healthz answers, then read the
 * admin token. skiffd gets SIGTERM if this process dies (PR_SET_PDEATHSIG).
 * Returns 0, or -1 with bench_error set (skiffd's log in it when it exited
 * at start-up, e.g. for an option it does not know). Stop it with
 * bench_skiffd_stop in every case: it also removes what a failed start
 * left. */
int bench_skiffd_start(struct bench_skiffd *d, const char *skiffd, const char *tag, const char *const *extra);

/* bench_skiffd_stop - SIGTERM by pid (SIGKILL after 15 s), then the empty
 * cgroup parent skiffd made for its sandboxes, then the temporary
 * directory. Returns 0 when skiffd exited 0 (or never started); prints
 * what it could not clean to stderr. Idempotent. */
int bench_skiffd_stop(struct bench_skiffd *d);

/* bench_skiffd_running - is the process still there (not reaped)? */
bool bench_skiffd_running(struct bench_skiffd *d);

#endif
