/* sysstat.c - process and cgroup costs from /proc and the cgroup files. */
#include "sysstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "client.h"

/* read_text - a small /proc or cgroup file, NUL-terminated; NULL if gone. */
static char *read_text(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, &len, NULL) < 0)
        return NULL;
    return text;
}

/* field_kb - the value of "Name:   123 kB" lines, in bytes. */
static uint64_t field_kb(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            return strtoull(line + n + 1, NULL, 10) * 1024;
    }
    return 0;
}

/* stat_value - "key value" lines (memory.stat): the value of key. */
static bool stat_value(const char *text, const char *key, uint64_t *out)
{
    size_t n = strlen(key);
    for (const char *line = text; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, key, n) == 0 && line[n] == ' ') {
            *out = strtoull(line + n + 1, NULL, 10);
            return true;
        }
    }
    return false;
}

uint64_t bench_pss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    _cleanup_free_ char *text = read_text(path);
    return text ? field_kb(text, "Pss") : 0;
}

static long count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

struct bench_proc bench_proc_read(pid_t pid)
{
    struct bench_proc p = {0};
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *stat = read_text(path);
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    _cleanup_free_ char *rollup = read_text(path);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_free_ char *status = read_text(path);
    if (stat == NULL || rollup == NULL || status == NULL)
        return p;
    /* after "pid (comm) ": state is field 3; utime..cstime are 14..17 */
    const char *s = strrchr(stat, ')');
    unsigned long long ut, st, cut, cst;
    if (s == NULL ||
        sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ut, &st, &cut, &cst) != 4)
        return p;
    double hz = (double)sysconf(_SC_CLK_TCK);
    p.cpu_s = (double)(ut + st) / hz;
    p.child_cpu_s = (double)(cut + cst) / hz;
    p.rss = field_kb(rollup, "Rss");
    p.pss = field_kb(rollup, "Pss");
    p.pss_anon = field_kb(rollup, "Pss_Anon");
    const char *t = strstr(status, "\nThreads:");
    p.threads = t ? strtol(t + strlen("\nThreads:"), NULL, 10) : 0;
    p.fds = count_fds(pid);
    p.ok = p.fds >= 0;
    return p;
}

json_t *bench_proc_json(const struct bench_proc *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "cpu_s", json_real(p->cpu_s));
    json_object_set_new(o, "child_cpu_s", json_real(p->child_cpu_s));
    json_object_set_new(o, "rss_bytes", json_integer((json_int_t)p->rss));
    json_object_set_new(o, "pss_bytes", json_integer((json_int_t)p->pss));
    json_object_set_new(o, "pss_anon_bytes", json_integer((json_int_t)p->pss_anon));
    json_object_set_new(o, "fds", json_integer(p->fds));
    json_object_set_new(o, "threads", json_integer(p->threads));
    return o;
}

/* group_kernel - kernel memory charged to one group. */
static bool group_kernel(const char *group, bool v2, uint64_t *out)
{
    char path[PATH_MAX + 32];
    if (!v2) {
        snprintf(path, sizeof(path), "%s/memory.kmem.usage_in_bytes", group);
        _cleanup_free_ char *text = read_text(path);
        if (text == NULL)
            return false;
        *out = strtoull(text, NULL, 10);
        return true;
    }
    snprintf(path, sizeof(path), "%s/memory.stat", group);
    _cleanup_free_ char *text = read_text(path);
    if (text == NULL)
        return false;
    if (stat_value(text, "kernel", out)) /* Linux 5.18+ */
        return true;
    static const char *const parts[] = {"slab",   "kernel_stack", "pagetables", "sec_pagetables",
                                        "percpu", "sock",         "vmalloc"};
    uint64_t sum = 0, v;
    for (size_t i = 0; i < SK_ARRAY_SIZE(parts); i++)
        if (stat_value(text, parts[i], &v))
            sum += v;
    *out = sum;
    return true;
}

static bool group_usage(const char *group, bool v2, uint64_t *out)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", group, v2 ? "memory.current" : "memory.usage_in_bytes");
    _cleanup_free_ char *text = read_text(path);
    if (text == NULL)
        return false;
    *out = strtoull(text, NULL, 10);
    return true;
}

int bench_cgroups_read(const char *dir, bool v2, struct bench_cgroups *out)
{
    *out = (struct bench_cgroups){0};
    DIR *d = opendir(dir);
    if (d == NULL)
        return bench_fail("list cgroup '%s': %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        char group[PATH_MAX], path[PATH_MAX + 32];
        snprintf(group, sizeof(group), "%s/%s", dir, e->d_name);
        out->groups++;
        uint64_t kernel = 0, usage = 0;
        if (!group_kernel(group, v2, &kernel) || !group_usage(group, v2, &usage)) {
            out->unreadable++;
            continue;
        }
        out->kernel += kernel;
        out->usage += usage;
        snprintf(path, sizeof(path), "%s/cgroup.procs", group);
        _cleanup_free_ char *procs = read_text(path);
        for (char *p = procs, *end = NULL; p != NULL && *p; p = end) {
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            out->procs++;
            out->pss += bench_pss((pid_t)pid);
            while (*end == '\n')
                end++;
        }
    }
    closedir(d);
    return 0;
}

json_t *bench_cgroups_json(const struct bench_cgroups *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "groups", json_integer(c->groups));
    json_object_set_new(o, "processes", json_integer(c->procs));
    json_object_set_new(o, "pss_bytes", json_integer((json_int_t)c->pss));
    json_object_set_new(o, "kernel_bytes", json_integer((json_int_t)c->kernel));
    json_object_set_new(o, "charged_bytes", json_integer((json_int_t)c->usage));
    json_object_set_new(o, "unreadable", json_integer(c->unreadable));
    return o;
}

static const char *const meminfo_names[BENCH_MEM_N] = {"MemAvailable", "Slab",   "SUnreclaim", "KernelStack",
                                                       "PageTables",   "Percpu", "Shmem"};

void bench_meminfo_read(struct bench_meminfo *m)
{
    *m = (struct bench_meminfo){0};
    _cleanup_free_ char *text = read_text("/proc/meminfo");
    for (int i = 0; text != NULL && i < BENCH_MEM_N; i++)
        m->v[i] = field_kb(text, meminfo_names[i]);
}

json_t *bench_meminfo_delta_json(const struct bench_meminfo *before, const struct bench_meminfo *after, double divisor)
{
    json_t *o = json_object();
    for (int i = 0; i < BENCH_MEM_N && divisor > 0; i++)
        json_object_set_new(o, meminfo_names[i],
                            json_integer((json_int_t)llround(((double)after->v[i] - (double)before->v[i]) / divisor)));
    return o;
}

void bench_host_cpu(uint64_t *busy, uint64_t *total)
{
    *busy = *total = 0;
    _cleanup_free_ char *text = read_text("/proc/stat");
    unsigned long long v[8] = {0};
    if (text == NULL || sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                               &v[5], &v[6], &v[7]) != 8)
        return;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *busy = *total - v[3] - v[4]; /* less idle and iowait */
}
