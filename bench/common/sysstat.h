/* sysstat.h - what a process and a cgroup tree cost the host, read from
 * /proc and the cgroup file systems, for the bench programs.
 *
 * Memory figures are bytes. PSS (proportional set size, from
 * /proc/PID/smaps_rollup) splits every shared page between the processes
 * that map it, so summing it over many sandboxes' pid 1 counts the shared
 * skiff-init binary once, not once per sandbox. */
#ifndef SKIFF_BENCH_SYSSTAT_H
#define SKIFF_BENCH_SYSSTAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_proc {
    bool ok;            /* the process was there and readable */
    double cpu_s;       /* its own user+system CPU time, all threads */
    double child_cpu_s; /* CPU time of its children that it reaped */
    uint64_t rss, pss;  /* bytes */
    uint64_t pss_anon;  /* the anonymous part of pss (heap, stacks) */
    long fds, threads;
};

/* bench_proc_read - one sample of process `pid`; ok false when it is gone. */
struct bench_proc bench_proc_read(pid_t pid);
json_t *bench_proc_json(const struct bench_proc *p);

/* bench_pss - PSS of one process in bytes (0 when it is gone). */
uint64_t bench_pss(pid_t pid);

/* What the sandboxes under one cgroup parent cost. */
struct bench_cgroups {
    long groups;     /* child groups (one per sandbox) */
    long procs;      /* processes in them (skiff-init and whatever runs) */
    uint64_t pss;    /* summed PSS of those processes */
    uint64_t kernel; /* kernel memory charged to the groups (v1
                                 memory.kmem.usage_in_bytes; v2 memory.stat
                                 "kernel", or its parts on older kernels) */
    uint64_t usage;  /* everything charged to the groups, page cache
                                 of shared files included (v1
                                 memory.usage_in_bytes, v2 memory.current) */
    long unreadable; /* groups whose figures could not be read */
};

/* bench_cgroups_read - sum over the child groups of `dir` (a memory
 * hierarchy's directory, bench_skiffd.cgroup_memory_dir); `v2` picks the
 * file names. -1 with bench_error set when dir cannot be listed. */
int bench_cgroups_read(const char *dir, bool v2, struct bench_cgroups *out);
json_t *bench_cgroups_json(const struct bench_cgroups *c);

/* Host-wide figures of /proc/meminfo, bytes: a cross check that also sees
 * kernel memory charged to no sandbox's cgroup (and everything else the
 * host does meanwhile). */
enum {
    BENCH_MEM_AVAILABLE,
    BENCH_MEM_SLAB,
    BENCH_MEM_SUNRECLAIM,
    BENCH_MEM_KERNEL_STACK,
    BENCH_MEM_PAGE_TABLES,
    BENCH_MEM_PERCPU,
    BENCH_MEM_SHMEM,
    BENCH_MEM_N
};
struct bench_meminfo {
    uint64_t v[BENCH_MEM_N];
};
void bench_meminfo_read(struct bench_meminfo *m);
/* bench_meminfo_delta_json - (after - before) / divisor per field, by the
 * field names of /proc/meminfo. */
json_t *bench_meminfo_delta_json(const struct bench_meminfo *before, const struct bench_meminfo *after, double divisor);

/* bench_host_cpu - busy and total jiffies of the whole host (/proc/stat),
 * for the share of the machine a run used. */
void bench_host_cpu(uint64_t *busy, uint64_t *total);

#endif
