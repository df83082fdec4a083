/* phases - where the time of one sandbox goes, measured through libskiff
 * (no CLI process start): create, exec of /bin/true to its exit event,
 * kill, and teardown, over N sandboxes; percentiles per phase as JSON.
 *
 *   build/bench/phases [-n N] [-m MEMORY_BYTES]
 *
 * Run with SKIFF_CGROUP_DRIVER=v2 to measure the cgroup v2 path (on a
 * hybrid host the v2 mount has no controllers: pass -m 0). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"

enum { PH_CREATE, PH_EXEC, PH_KILL, PH_FREE, PH_TOTAL, PH_N };
static const char *const phase_names[PH_N] = {"create", "exec_true", "kill", "teardown", "total"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);
    return sorted[i];
}

static int one(struct sk_runtime *rt, const struct sk_sandbox_spec *spec, double *t, struct sk_error *err)
{
    int64_t a = sk_now_ns();
    struct sk_sandbox *sb = NULL;
    if (sk_sandbox_create(rt, spec, &sb, err) < 0)
        return -1;
    int64_t b = sk_now_ns();
    const char *const argv[] = {"/bin/true", NULL};
    struct sk_agent_spawn s = {.argv = argv};
    struct sk_agent_proc p;
    if (sk_sandbox_exec(sb, &s, &p, err) < 0) {
        sk_sandbox_free(sb);
        return -1;
    }
    struct sk_agent_event ev;
    int r = sk_agent_next_event(sk_sandbox_agent(sb), &ev, 10000, err);
    int64_t c = sk_now_ns();
    sk_close(&p.stdout_fd);
    sk_close(&p.stderr_fd);
    sk_close(&p.stdin_fd);
    sk_sandbox_kill(sb, SK_END_EXITED, NULL);
    int64_t d = sk_now_ns();
    sk_sandbox_free(sb);
    int64_t e = sk_now_ns();
    if (r != 1)
        return -1;
    t[PH_CREATE] = (double)(b - a) / 1e6;
    t[PH_EXEC] = (double)(c - b) / 1e6;
    t[PH_KILL] = (double)(d - c) / 1e6;
    t[PH_FREE] = (double)(e - d) / 1e6;
    t[PH_TOTAL] = (double)(e - a) / 1e6;
    return 0;
}

int main(int argc, char **argv)
{
    int n = 300;
    int64_t memory = 256 << 20;
    int c;
    while ((c = getopt(argc, argv, "n:m:")) != -1) {
        if (c == 'n')
            n = atoi(optarg);
        else if (c == 'm')
            memory = atoll(optarg);
        else
            return 2;
    }
    if (n < 10)
        n = 10;
    struct sk_error err = {0};
    struct sk_runtime *rt = NULL;
    if (sk_runtime_new(NULL, &rt, &err) < 0) {
        fprintf(stderr, "phases: %s\n", err.msg);
        return 1;
    }
    struct sk_sandbox_spec spec = {.limits = {.memory_bytes = memory}};
    double *t[PH_N];
    for (int k = 0; k < PH_N; k++)
        t[k] = xcalloc((size_t)n, sizeof(double));
    double row[PH_N];
    for (int i = 0; i < 10; i++)
        one(rt, &spec, row, &err);
    for (int i = 0; i < n; i++) {
        if (one(rt, &spec, row, &err) < 0) {
            fprintf(stderr, "phases: %s\n", err.msg);
            return 1;
        }
        for (int k = 0; k < PH_N; k++)
            t[k][i] = row[k];
    }
    printf("{\"driver\":\"%s\",\"n\":%d,\"memory_limit\":%lld,\"phases\":{",
           sk_cgroup_driver_name(sk_cgroup_system_driver(sk_runtime_cgroups(rt))), n, (long long)memory);
    for (int k = 0; k < PH_N; k++) {
        qsort(t[k], (size_t)n, sizeof(double), cmp_double);
        printf("%s\"%s\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f}", k ? "," : "", phase_names[k],
               pct(t[k], n, 0.5), pct(t[k], n, 0.95), pct(t[k], n, 0.99), t[k][n - 1]);
        free(t[k]);
    }
    printf("}}\n");
    sk_runtime_free(rt);
    return 0;
}
