/* load.c - skiffd under many clients: time to interactive, sustained churn
 * and density, measured through the HTTP API.
 *
 * Every mode starts its own skiffd(s) (bench/common/skiffd.c: a free
 * loopback port, a temporary data directory, stopped by pid and cleaned up
 * on every path) and drives them from worker threads, each with its own
 * keep-alive HTTP/1.1 connection (bench/common/client.c), so the client
 * costs next to nothing next to what it measures. Output: a table, or with
 * --json one JSON object on stdout. Times are CLOCK_MONOTONIC, in ms.
 *
 *   load tti [-n N] [-c LIST] [-p POOL] [-w W]
 *     Time to interactive: from just before POST /v1/sandboxes to the first
 *     byte of `echo ok`'s output (POST .../execs, GET .../output), for N
 *     sandboxes per case (default 500), at each concurrency of LIST (default
 *     1,8,32), against two skiffds started side by side: "pool" (--pool-size
 *     POOL --pool-max POOL, default 32) and "cold" (--pool-size 0). Work
 *     goes in bursts: C workers start one sandbox each at the same moment
 *     (a barrier), and the burst is timed per sandbox; then, untimed, each
 *     worker terminates its sandbox and, before the next burst, the pool
 *     skiffd's pool is waited for until it is full again (GET /v1/pool:
 *     ready >= target for every key). Bursts alternate between the two
 *     skiffds (pool, cold, cold, pool, ...), so load drift hits both
 *     alike; W burst pairs per concurrency (default 2) are warm-ups. The
 *     pool's hits and misses over the timed bursts are reported with it.
 *
 *   load churn [-d SECS] [-c C] [-p POOL] [-w SECS]
 *     Sustained churn: C workers (default 8) repeat create -> POST .../run
 *     {"argv":["echo","ok"]} -> terminate for SECS seconds (default 60)
 *     after W seconds of warm-up (default 3), against one skiffd with
 *     --pool-size POOL --pool-max POOL (default 0: every create is cold; a
 *     fixed size, so the start and the end hold as many pooled sandboxes
 *     and compare like with like). Cycles that end
 *     inside the timed window count. skiffd's CPU time, RSS, PSS, open fds
 *     and threads are sampled every second, and at the start and the end
 *     of the window at a quiet moment (no cycle in flight, the pool full
 *     again, 1 s settled), so that "end vs start" compares like with like.
 *
 *   load density [-n N] [-c C]
 *     Density: N idle sandboxes (default 1000) created by C workers (default
 *     8) in one skiffd with --pool-size 0 (pool sandboxes would count as
 *     idle ones), each with a one-hour timeout. Then, after 2 s, host
 *     memory: PSS of skiffd (less its PSS before the first create) and of
 *     every process in the sandboxes' cgroups (skiff-init), plus the kernel
 *     memory charged to those cgroups (v1 memory.kmem.usage_in_bytes, v2
 *     memory.stat "kernel"), per sandbox. Cross checks: the cgroups' whole
 *     charge (page cache of shared files included), and the change of the
 *     host's /proc/meminfo (MemAvailable, Slab, PageTables, ...), which also
 *     sees kernel memory charged to no sandbox (and whatever else the host
 *     does meanwhile). Then every sandbox is checked: listed as running, and a `true`
 *     run in each; then all are terminated and skiffd's fds compared with
 *     before. Failures of each step are counted with their first reasons.
 *
 * Common options: -s SKIFFD (default ../skiffd next to this program), -q (no
 * progress on stderr), --json. Exit status 0 when the measurement ran (even
 * with failed requests, which are counted in the output), 1 when it could
 * not (skiffd would not start, no sample at all), 2 for a bad command line.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "common/client.h"
#include "common/skiffd.h"
#include "common/sysstat.h"

#define MAX_WORKERS 256
#define MAX_LEVELS 8
#define REASONS_KEPT 5
#define POOL_WAIT_MS 60000.0
#define MIB (1024.0 * 1024.0)

static double mib(uint64_t bytes)
{
    return (double)bytes / MIB;
}

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_stopping())
        ;
}

/* ---- failures, counted with their first distinct reasons ---------------------------- */

struct failures {
    pthread_mutex_t mu;
    long count;
    size_t kept;
    char reasons[REASONS_KEPT][320];
};

static void failures_init(struct failures *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
}

static void failures_add(struct failures *f, const char *reason)
{
    pthread_mutex_lock(&f->mu);
    f->count++;
    bool seen = false;
    for (size_t i = 0; i < f->kept && !seen; i++)
        seen = strcmp(f->reasons[i], reason) == 0;
    if (!seen && f->kept < REASONS_KEPT)
        snprintf(f->reasons[f->kept++], sizeof(f->reasons[0]), "%s", reason);
    pthread_mutex_unlock(&f->mu);
}

static json_t *failures_json(struct failures *f)
{
    json_t *o = json_object(), *a = json_array();
    pthread_mutex_lock(&f->mu);
    json_object_set_new(o, "count", json_integer(f->count));
    for (size_t i = 0; i < f->kept; i++)
        json_array_append_new(a, json_string(f->reasons[i]));
    pthread_mutex_unlock(&f->mu);
    json_object_set_new(o, "first_reasons", a);
    return o;
}

/* ---- a growing sample array, shared by workers ------------------------------------ */

struct samples {
    pthread_mutex_t mu;
    double *v;
    size_t n, cap;
};

static void samples_init(struct samples *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
}

static void samples_add(struct samples *s, double v)
{
    pthread_mutex_lock(&s->mu);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = xrealloc(s->v, s->cap * sizeof(double));
    }
    s->v[s->n++] = v;
    pthread_mutex_unlock(&s->mu);
}

static void samples_release(struct samples *s)
{
    free(s->v);
    pthread_mutex_destroy(&s->mu);
}

/* ---- the API calls -------------------------------------------------------------------- */

/* sb_echo_first_byte - POST .../execs echo ok, GET .../output: the time
 * its first byte was read; the stream must be exactly "ok\n". */
static int sb_echo_first_byte(struct bench_conn *c, const char *id, double *first_byte)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", id);
    struct bench_resp r;
    if (bench_call_json(c, "POST", path, "{\"argv\":[\"echo\",\"ok\"]}", 201, &r) < 0)
        return -1;
    char eid[BENCH_ID_MAX];
    snprintf(eid, sizeof(eid), "%s", bench_jstr(&r, "id"));
    bench_resp_free(&r);
    if (eid[0] == '\0')
        return bench_fail("POST %s: no exec id", path);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/output", id, eid);
    if (bench_call(c, "GET", path, NULL, NULL, 0, 200, &r) < 0)
        return -1;
    *first_byte = r.first_byte_ms;
    bool ok = r.len == 3 && memcmp(r.body, "ok\n", 3) == 0;
    if (!ok)
        bench_fail("echo ok streamed %zu bytes: '%.40s'", r.len, r.body ? r.body : "");
    bench_resp_free(&r);
    return ok ? 0 : -1;
}

/* sb_run - POST .../run argv_json; exit code 0 and stdout want_stdout. */
static int sb_run(struct bench_conn *c, const char *id, const char *body, const char *want_stdout)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    struct bench_resp r;
    if (bench_call_json(c, "POST", path, body, 200, &r) < 0)
        return -1;
    json_t *code = json_object_get(r.json, "exit_code");
    int rc = 0;
    if (!json_is_integer(code) || json_integer_value(code) != 0 || strcmp(bench_jstr(&r, "stdout"), want_stdout) != 0)
        rc = bench_fail("POST %s: unexpected answer %.200s", path, r.body ? r.body : "");
    bench_resp_free(&r);
    return rc;
}

/* The pool's counters summed over its keys. */
struct pool_state {
    bool enabled, full; /* full: every key holds at least its target */
    long keys, ready, target, hits, misses;
};

static int pool_read(struct bench_conn *c, struct pool_state *p)
{
    memset(p, 0, sizeof(*p));
    struct bench_resp r;
    if (bench_call(c, "GET", "/v1/pool", NULL, NULL, 0, 200, &r) < 0)
        return -1;
    p->enabled = json_is_true(json_object_get(r.json, "enabled"));
    p->full = true;
    json_t *keys = json_object_get(r.json, "keys"), *k;
    size_t i;
    json_array_foreach(keys, i, k)
    {
        long ready = (long)json_integer_value(json_object_get(k, "ready"));
        long target = (long)json_integer_value(json_object_get(k, "target"));
        p->keys++;
        p->ready += ready;
        p->target += target;
        p->hits += (long)json_integer_value(json_object_get(k, "hits"));
        p->misses += (long)json_integer_value(json_object_get(k, "misses"));
        p->full &= ready >= target;
    }
    bench_resp_free(&r);
    return 0;
}

/* pool_wait_full - poll GET /v1/pool until every key holds its target.
 * Returns 1 when full, 0 after POOL_WAIT_MS, -1 on a failed request. */
static int pool_wait_full(struct bench_conn *c, struct pool_state *p)
{
    double deadline = bench_now_ms() + POOL_WAIT_MS;
    for (;;) {
        if (pool_read(c, p) < 0)
            return -1;
        if (!p->enabled || (p->full && p->keys > 0))
            return 1;
        if (bench_stopping() || bench_now_ms() > deadline)
            return 0;
        sleep_ms(5);
    }
}

static json_t *pool_json(const struct pool_state *p)
{
    return json_pack("{s:b, s:I, s:I, s:I, s:I}", "enabled", p->enabled, "ready", (json_int_t)p->ready, "target",
                     (json_int_t)p->target, "hits", (json_int_t)p->hits, "misses", (json_int_t)p->misses);
}

/* ---- the skiffds ------------------------------------------------------------------------ */

struct target {
    const char *name; /* "pool" or "cold" */
    struct bench_skiffd d;
    bool up;
    char reason[512]; /* why it is not up */
    char pool_arg[16];
    const char *args[6];
};

static void target_start(struct target *t, const char *skiffd, const char *name, unsigned pool, bool cap)
{
    t->name = name;
    snprintf(t->pool_arg, sizeof(t->pool_arg), "%u", pool);
    size_t k = 0;
    t->args[k++] = "--pool-size";
    t->args[k++] = t->pool_arg;
    if (cap && pool > 0) {
        t->args[k++] = "--pool-max";
        t->args[k++] = t->pool_arg;
    }
    t->args[k] = NULL;
    if (bench_skiffd_start(&t->d, skiffd, name, t->args) < 0) {
        snprintf(t->reason, sizeof(t->reason), "%s", bench_error());
        return;
    }
    t->up = true;
    bench_progress("skiffd '%s' (--pool-size %u) pid %d on 127.0.0.1:%d, cgroup parent '%s'", name, pool, (int)t->d.pid,
                   t->d.port, t->d.cgroup_parent);
}

static json_t *target_args_json(const struct target *t)
{
    json_t *a = json_array();
    for (size_t i = 0; t->args[i] != NULL; i++)
        json_array_append_new(a, json_string(t->args[i]));
    return a;
}

/* ---- tti ------------------------------------------------------------------------------- */

enum { V_POOL, V_COLD, V_N };

struct tti {
    struct target *targets[V_N];
    pthread_mutex_t gate; /* held while the workers are started */
    pthread_barrier_t start, done, cleaned;
    int variant; /* of the current burst; -1: stop */
    bool timed;
    struct samples tti[V_N], create[V_N];
    struct failures fail[V_N];
};

struct tti_worker {
    struct tti *t;
    pthread_t th;
    struct bench_conn conn[V_N];
    char id[BENCH_ID_MAX];
};

/* tti_once - create, exec echo ok, first byte: total and create ms. */
static int tti_once(struct bench_conn *c, char id[BENCH_ID_MAX], double *total, double *create)
{
    double t0 = bench_now_ms(), first = 0;
    if (bench_sandbox_create(c, "{}", id) < 0)
        return -1;
    double t1 = bench_now_ms();
    if (sb_echo_first_byte(c, id, &first) < 0)
        return -1;
    *total = first - t0;
    *create = t1 - t0;
    return 0;
}

static void *tti_worker_main(void *arg)
{
    struct tti_worker *w = arg;
    struct tti *t = w->t;
    pthread_mutex_lock(&t->gate); /* the barriers are sized once every worker runs */
    pthread_mutex_unlock(&t->gate);
    for (;;) {
        pthread_barrier_wait(&t->start);
        int v = t->variant;
        if (v < 0)
            break;
        double total = 0, create = 0;
        if (tti_once(&w->conn[v], w->id, &total, &create) == 0) {
            if (t->timed) {
                samples_add(&t->tti[v], total);
                samples_add(&t->create[v], create);
            }
        } else if (!bench_stopping()) {
            failures_add(&t->fail[v], bench_error());
        }
        pthread_barrier_wait(&t->done);
        if (w->id[0] != '\0' && bench_sandbox_terminate(&w->conn[v], w->id) < 0 && !bench_stopping())
            failures_add(&t->fail[v], bench_error());
        w->id[0] = '\0';
        pthread_barrier_wait(&t->cleaned);
    }
    return NULL;
}

/* tti_level - every burst of one concurrency against both targets. */
static json_t *tti_level(struct tti *t, struct bench_conn ctl[V_N], unsigned conc, size_t n, unsigned warm_pairs)
{
    struct tti_worker *w = xcalloc(conc, sizeof(*w));
    for (int v = 0; v < V_N; v++) {
        samples_init(&t->tti[v]);
        samples_init(&t->create[v]);
        failures_init(&t->fail[v]);
    }
    pthread_mutex_init(&t->gate, NULL);
    pthread_mutex_lock(&t->gate);
    unsigned started = 0;
    for (; started < conc; started++) {
        w[started].t = t;
        for (int v = 0; v < V_N; v++)
            bench_conn_init(&w[started].conn[v], t->targets[v]->d.port, t->targets[v]->d.token);
        if (pthread_create(&w[started].th, NULL, tti_worker_main, &w[started]) != 0) {
            for (int v = 0; v < V_N; v++)
                bench_conn_release(&w[started].conn[v]);
            failures_add(&t->fail[V_COLD], "could not start every worker thread");
            conc = started;
            break;
        }
    }
    pthread_barrier_init(&t->start, NULL, started + 1);
    pthread_barrier_init(&t->done, NULL, started + 1);
    pthread_barrier_init(&t->cleaned, NULL, started + 1);
    pthread_mutex_unlock(&t->gate);
    size_t bursts = conc > 0 ? (n + conc - 1) / conc : 0;
    struct pool_state before = {0}, after = {0}, p;
    long pool_timeouts = 0;
    double t_start = bench_now_ms(), wait_ms = 0;
    bool up[V_N] = {t->targets[V_POOL]->up, t->targets[V_COLD]->up};
    for (size_t pair = 0; started > 0 && pair < warm_pairs + bursts && !bench_stopping(); pair++) {
        if (pair == warm_pairs && up[V_POOL] && pool_read(&ctl[V_POOL], &before) < 0)
            failures_add(&t->fail[V_POOL], bench_error());
        for (int k = 0; k < V_N; k++) {
            int v = (pair % 2 == 0) ? k : V_N - 1 - k; /* pool first, then cold first, ... */
            if (!up[v])
                continue;
            /* every burst starts with the pool full (and nothing in flight) */
            if (up[V_POOL]) {
                double w0 = bench_now_ms();
                int full = pool_wait_full(&ctl[V_POOL], &p);
                wait_ms += bench_now_ms() - w0;
                if (full < 0)
                    failures_add(&t->fail[V_POOL], bench_error());
                pool_timeouts += full == 0;
            }
            t->variant = v;
            t->timed = pair >= warm_pairs;
            pthread_barrier_wait(&t->start);
            pthread_barrier_wait(&t->done);
            pthread_barrier_wait(&t->cleaned);
        }
        if (pair + 1 == warm_pairs + bursts && up[V_POOL] && pool_read(&ctl[V_POOL], &after) < 0)
            failures_add(&t->fail[V_POOL], bench_error());
        if ((pair + 1) % 10 == 0)
            bench_progress("tti: concurrency %u: %zu/%zu burst pairs", conc, pair + 1, warm_pairs + bursts);
    }
    t->variant = -1;
    pthread_barrier_wait(&t->start);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(w[i].th, NULL);
        for (int v = 0; v < V_N; v++)
            bench_conn_release(&w[i].conn[v]);
    }
    json_t *cases = json_array();
    for (int v = 0; v < V_N; v++) {
        json_t *o = json_object();
        json_object_set_new(o, "variant", json_string(t->targets[v]->name));
        json_object_set_new(o, "concurrency", json_integer(conc));
        if (!up[v]) {
            json_object_set_new(o, "status", json_string("unavailable"));
            json_object_set_new(o, "reason", json_string(t->targets[v]->reason));
        } else {
            struct bench_stats s = bench_stats_of(t->tti[v].v, t->tti[v].n);
            struct bench_stats c = bench_stats_of(t->create[v].v, t->create[v].n);
            json_object_set_new(o, "status", json_string(s.n > 0 ? "ok" : "failed"));
            json_object_set_new(o, "bursts", json_integer((json_int_t)bursts));
            json_object_set_new(o, "tti", bench_stats_json(&s));
            json_object_set_new(o, "create", bench_stats_json(&c));
            json_object_set_new(o, "failures", failures_json(&t->fail[v]));
            if (v == V_POOL) {
                json_object_set_new(o, "pool_hits", json_integer(after.hits - before.hits));
                json_object_set_new(o, "pool_misses", json_integer(after.misses - before.misses));
                json_object_set_new(o, "pool_refill_timeouts", json_integer(pool_timeouts));
            }
            bench_progress("tti: %s, concurrency %u: p50 %.3f p99 %.3f ms (n %zu, %ld failed)", t->targets[v]->name,
                           conc, s.p50, s.p99, s.n, t->fail[v].count);
        }
        json_array_append_new(cases, o);
        samples_release(&t->tti[v]);
        samples_release(&t->create[v]);
    }
    bench_progress("tti: concurrency %u took %.1f s (%.1f s waiting for the pool to refill)", conc,
                   (bench_now_ms() - t_start) / 1000, wait_ms / 1000);
    pthread_barrier_destroy(&t->start);
    pthread_barrier_destroy(&t->done);
    pthread_barrier_destroy(&t->cleaned);
    pthread_mutex_destroy(&t->gate);
    free(w);
    return cases;
}

static int parse_levels(const char *s, unsigned *levels, size_t *n)
{
    *n = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        unsigned long v = strtoul(tok, &end, 10);
        if (*n == MAX_LEVELS || end == tok || *end != '\0' || v < 1 || v > MAX_WORKERS)
            return -1;
        levels[(*n)++] = (unsigned)v;
    }
    return *n > 0 ? 0 : -1;
}

static int run_tti(const char *skiffd, size_t n, const char *levels_arg, unsigned pool, unsigned warm_pairs,
                   json_t *out)
{
    unsigned levels[MAX_LEVELS];
    size_t n_levels;
    if (parse_levels(levels_arg, levels, &n_levels) < 0)
        return bench_fail("bad concurrency list '%s' (1-%d, comma-separated)", levels_arg, MAX_WORKERS);
    struct target targets[V_N] = {0};
    target_start(&targets[V_POOL], skiffd, "pool", pool, true);
    target_start(&targets[V_COLD], skiffd, "cold", 0, false);
    if (pool == 0 && targets[V_POOL].up) { /* asked for no pool: nothing to compare */
        bench_skiffd_stop(&targets[V_POOL].d);
        targets[V_POOL].up = false;
        snprintf(targets[V_POOL].reason, sizeof(targets[V_POOL].reason), "skipped (pool size 0)");
    }
    struct bench_conn ctl[V_N];
    for (int v = 0; v < V_N; v++)
        bench_conn_init(&ctl[v], targets[v].d.port, targets[v].d.token);
    struct pool_state p;
    if (targets[V_POOL].up && pool_read(&ctl[V_POOL], &p) < 0) {
        snprintf(targets[V_POOL].reason, sizeof(targets[V_POOL].reason), "GET /v1/pool: %s", bench_error());
        targets[V_POOL].up = false;
    } else if (targets[V_POOL].up && !p.enabled) {
        snprintf(targets[V_POOL].reason, sizeof(targets[V_POOL].reason), "GET /v1/pool says the pool is off");
        targets[V_POOL].up = false;
    }
    int rc = 0;
    if (!targets[V_POOL].up && !targets[V_COLD].up)
        rc = bench_fail("no skiffd started: %s", targets[V_COLD].reason);
    json_t *cases = json_array();
    struct tti t = {.targets = {&targets[V_POOL], &targets[V_COLD]}};
    double started = bench_now_ms();
    for (size_t i = 0; rc == 0 && i < n_levels && !bench_stopping(); i++) {
        json_t *level = tti_level(&t, ctl, levels[i], n, warm_pairs);
        json_array_extend(cases, level);
        json_decref(level);
    }
    for (int v = 0; v < V_N; v++) {
        bench_conn_release(&ctl[v]);
        if (bench_skiffd_stop(&targets[v].d) < 0 && rc == 0 && targets[v].up)
            rc = bench_fail("skiffd '%s' did not stop cleanly", targets[v].name);
    }
    if (bench_stopping() && rc == 0)
        rc = bench_fail("interrupted");
    json_object_set_new(out, "measure",
                        json_string("POST /v1/sandboxes {}, POST .../execs {argv:[echo,ok]}, GET .../output: from "
                                    "before the create to the first output byte read; C sandboxes started at once "
                                    "per burst, each on its own keep-alive connection"));
    json_object_set_new(out, "sandboxes_per_case", json_integer((json_int_t)n));
    json_object_set_new(out, "warmup_burst_pairs", json_integer(warm_pairs));
    json_object_set_new(out, "pool_size", json_integer(pool));
    json_t *args = json_object();
    for (int v = 0; v < V_N; v++)
        json_object_set_new(args, targets[v].name, target_args_json(&targets[v]));
    json_object_set_new(out, "skiffd_args", args);
    json_object_set_new(out, "cases", cases);
    json_object_set_new(out, "elapsed_s", json_real(round((bench_now_ms() - started) / 100) / 10));
    return rc;
}

/* ---- churn ------------------------------------------------------------------------------ */

struct churn {
    struct target *target;
    volatile int phase; /* 0 run, 1 pause, 2 stop */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned running; /* workers inside a cycle or about to start one */
    double t_start, t_end;
    long cycles; /* ended inside [t_start, t_end] */
    struct samples cycle_ms;
    struct failures fail;
};

struct churn_worker {
    struct churn *ch;
    pthread_t th;
    struct bench_conn conn;
};

static int churn_once(struct bench_conn *c)
{
    char id[BENCH_ID_MAX];
    int rc = bench_sandbox_create(c, "{}", id);
    if (rc == 0)
        rc = sb_run(c, id, "{\"argv\":[\"echo\",\"ok\"]}", "ok\n");
    if (id[0] != '\0' && bench_sandbox_terminate(c, id) < 0)
        rc = -1;
    return rc;
}

static void *churn_worker_main(void *arg)
{
    struct churn_worker *w = arg;
    struct churn *ch = w->ch;
    pthread_mutex_lock(&ch->mu);
    for (;;) {
        while (ch->phase == 1) {
            ch->running--;
            pthread_cond_broadcast(&ch->cond);
            pthread_cond_wait(&ch->cond, &ch->mu);
            ch->running++;
        }
        if (ch->phase == 2)
            break;
        pthread_mutex_unlock(&ch->mu);
        double t0 = bench_now_ms();
        int rc = churn_once(&w->conn);
        double t1 = bench_now_ms();
        if (rc < 0 && !bench_stopping()) {
            failures_add(&ch->fail, bench_error());
            sleep_ms(10); /* a skiffd that refuses everything must not be hammered */
        }
        pthread_mutex_lock(&ch->mu);
        if (rc == 0 && t1 >= ch->t_start && t1 <= ch->t_end) {
            ch->cycles++;
            pthread_mutex_unlock(&ch->mu);
            samples_add(&ch->cycle_ms, t1 - t0);
            pthread_mutex_lock(&ch->mu);
        }
        if (bench_stopping())
            break;
    }
    ch->running--;
    pthread_cond_broadcast(&ch->cond);
    pthread_mutex_unlock(&ch->mu);
    return NULL;
}

/* churn_pause - no cycle in flight when it returns. */
static void churn_set_phase(struct churn *ch, int phase)
{
    pthread_mutex_lock(&ch->mu);
    ch->phase = phase;
    pthread_cond_broadcast(&ch->cond);
    if (phase != 0)
        while (ch->running > 0)
            pthread_cond_wait(&ch->cond, &ch->mu);
    pthread_mutex_unlock(&ch->mu);
}

/* quiet_sample - with no cycle in flight: close the workers' connections
 * (they reconnect on their next request), let skiffd settle (the pool full
 * again, 1 s), then sample, so that the start and the end of the window
 * compare like with like. */
static void quiet_sample(struct bench_conn *ctl, struct churn *ch, struct churn_worker *w, unsigned n_workers,
                         struct bench_proc *proc, struct pool_state *pool)
{
    for (unsigned i = 0; i < n_workers; i++)
        bench_conn_close(&w[i].conn);
    memset(pool, 0, sizeof(*pool));
    if (ch->target->d.pid > 0 && strcmp(ch->target->pool_arg, "0") != 0 && pool_wait_full(ctl, pool) < 0)
        failures_add(&ch->fail, bench_error());
    sleep_ms(1000);
    *proc = bench_proc_read(ch->target->d.pid);
}

static json_t *sample_json(double t_s, const struct bench_proc *p)
{
    return json_pack("[f, f, I, I, I, I]", round(t_s * 10) / 10, p->cpu_s, (json_int_t)p->rss, (json_int_t)p->pss,
                     (json_int_t)p->fds, (json_int_t)p->threads);
}

static int run_churn(const char *skiffd, unsigned seconds, unsigned conc, unsigned pool, unsigned warm_s, json_t *out)
{
    struct target target = {0};
    /* a fixed pool size (--pool-max too): the quiet samples at the start and
     * the end then hold the same number of pooled sandboxes */
    target_start(&target, skiffd, pool > 0 ? "churn-pool" : "churn-cold", pool, true);
    if (!target.up) {
        bench_skiffd_stop(&target.d);
        return bench_fail("%s", target.reason);
    }
    struct churn ch = {.target = &target, .phase = 0, .t_start = INFINITY, .t_end = INFINITY};
    pthread_mutex_init(&ch.mu, NULL);
    pthread_cond_init(&ch.cond, NULL);
    samples_init(&ch.cycle_ms);
    failures_init(&ch.fail);
    struct bench_conn ctl;
    bench_conn_init(&ctl, target.d.port, target.d.token);
    struct bench_proc p_base = bench_proc_read(target.d.pid);
    struct churn_worker *w = xcalloc(conc, sizeof(*w));
    unsigned started = 0;
    ch.running = conc;
    for (; started < conc; started++) {
        w[started].ch = &ch;
        bench_conn_init(&w[started].conn, target.d.port, target.d.token);
        if (pthread_create(&w[started].th, NULL, churn_worker_main, &w[started]) != 0)
            break;
    }
    pthread_mutex_lock(&ch.mu);
    ch.running = started;
    pthread_mutex_unlock(&ch.mu);

    /* warm-up, then a quiet sample as the start */
    bench_progress("churn: %u s of warm-up with %u workers", warm_s, started);
    sleep_ms(warm_s * 1000.0);
    churn_set_phase(&ch, 1);
    struct bench_proc p_start, p_end;
    struct pool_state pool_start, pool_end;
    quiet_sample(&ctl, &ch, w, started, &p_start, &pool_start);
    uint64_t busy0, total0, busy1, total1;
    json_t *series = json_array();
    pthread_mutex_lock(&ch.mu);
    ch.t_start = bench_now_ms();
    ch.t_end = ch.t_start + seconds * 1000.0;
    ch.phase = 0;
    pthread_cond_broadcast(&ch.cond);
    pthread_mutex_unlock(&ch.mu);
    bench_host_cpu(&busy0, &total0);
    struct bench_proc p_mid = p_start, p_max = p_start;
    json_array_append_new(series, sample_json(0, &p_start));
    for (unsigned s = 1; s <= seconds && !bench_stopping(); s++) {
        sleep_ms(ch.t_start + s * 1000.0 - bench_now_ms());
        struct bench_proc p = bench_proc_read(target.d.pid);
        if (!p.ok)
            break;
        json_array_append_new(series, sample_json((bench_now_ms() - ch.t_start) / 1000, &p));
        p_max.rss = p.rss > p_max.rss ? p.rss : p_max.rss;
        p_max.pss = p.pss > p_max.pss ? p.pss : p_max.pss;
        p_max.fds = p.fds > p_max.fds ? p.fds : p_max.fds;
        p_max.threads = p.threads > p_max.threads ? p.threads : p_max.threads;
        p_mid = p;
        if (s % 10 == 0)
            bench_progress("churn: %u/%u s, %ld cycles", s, seconds, ch.cycles);
    }
    bench_host_cpu(&busy1, &total1);
    struct bench_proc p_window_end = p_mid;
    double window_s = (bench_now_ms() - ch.t_start) / 1000;
    if (window_s > seconds)
        window_s = seconds;
    churn_set_phase(&ch, 2);
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].th, NULL);
    quiet_sample(&ctl, &ch, w, started, &p_end, &pool_end);
    for (unsigned i = 0; i < started; i++)
        bench_conn_release(&w[i].conn);
    bool alive = bench_skiffd_running(&target.d);
    bench_conn_release(&ctl);

    struct bench_stats cs = bench_stats_of(ch.cycle_ms.v, ch.cycle_ms.n);
    double rate = window_s > 0 ? (double)ch.cycles / window_s : 0;
    json_object_set_new(out, "measure",
                        json_string("C workers each repeating POST /v1/sandboxes {}, POST .../run {argv:[echo,ok]}, "
                                    "POST .../terminate; cycles that ended inside the timed window"));
    json_object_set_new(out, "status", json_string(ch.cycles > 0 ? "ok" : "failed"));
    json_object_set_new(out, "skiffd_args", target_args_json(&target));
    json_object_set_new(out, "seconds", json_real(round(window_s * 10) / 10));
    json_object_set_new(out, "concurrency", json_integer(started));
    json_object_set_new(out, "cycles", json_integer(ch.cycles));
    json_object_set_new(out, "cycles_per_s", json_real(round(rate * 10) / 10));
    json_object_set_new(out, "cycle_ms", bench_stats_json(&cs));
    json_object_set_new(out, "failures", failures_json(&ch.fail));
    double cpu = p_window_end.cpu_s - p_start.cpu_s, child_cpu = p_end.child_cpu_s - p_start.child_cpu_s;
    json_t *sk = json_object();
    json_object_set_new(sk, "before_any", bench_proc_json(&p_base));
    json_object_set_new(sk, "start", bench_proc_json(&p_start));
    json_object_set_new(sk, "end", bench_proc_json(&p_end));
    json_object_set_new(sk, "max_during",
                        json_pack("{s:I, s:I, s:I, s:I}", "rss_bytes", (json_int_t)p_max.rss, "pss_bytes",
                                  (json_int_t)p_max.pss, "fds", (json_int_t)p_max.fds, "threads",
                                  (json_int_t)p_max.threads));
    json_object_set_new(sk, "cpu_s_during", json_real(round(cpu * 100) / 100));
    json_object_set_new(sk, "cpu_share_of_one_core", json_real(window_s > 0 ? round(cpu / window_s * 1000) / 1000 : 0));
    json_object_set_new(sk, "reaped_children_cpu_s", json_real(round(child_cpu * 100) / 100));
    json_object_set_new(sk, "rss_growth_bytes", json_integer((json_int_t)p_end.rss - (json_int_t)p_start.rss));
    json_object_set_new(sk, "pss_growth_bytes", json_integer((json_int_t)p_end.pss - (json_int_t)p_start.pss));
    json_object_set_new(sk, "fd_growth", json_integer(p_end.fds - p_start.fds));
    json_object_set_new(sk, "thread_growth", json_integer(p_end.threads - p_start.threads));
    json_object_set_new(sk, "alive_at_end", json_boolean(alive));
    json_object_set_new(sk, "series_columns",
                        json_pack("[s, s, s, s, s, s]", "t_s", "cpu_s", "rss_bytes", "pss_bytes", "fds", "threads"));
    json_object_set_new(sk, "series", series);
    json_object_set_new(out, "skiffd", sk);
    json_object_set_new(
        out, "host_busy_share",
        json_real(total1 > total0 ? round((double)(busy1 - busy0) / (double)(total1 - total0) * 1000) / 1000 : 0));
    if (pool > 0) {
        json_t *po = json_object();
        json_object_set_new(po, "start", pool_json(&pool_start));
        json_object_set_new(po, "end", pool_json(&pool_end));
        json_object_set_new(po, "hits_during", json_integer(pool_end.hits - pool_start.hits));
        json_object_set_new(po, "misses_during", json_integer(pool_end.misses - pool_start.misses));
        json_object_set_new(out, "pool", po);
    }
    bench_progress("churn: %.1f cycles/s over %.1f s (%ld failed); skiffd fds %ld -> %ld, pss %.1f -> %.1f MiB", rate,
                   window_s, ch.fail.count, p_start.fds, p_end.fds, mib(p_start.pss), mib(p_end.pss));
    samples_release(&ch.cycle_ms);
    free(w);
    int rc = bench_skiffd_stop(&target.d);
    if (ch.cycles == 0)
        return bench_fail("no cycle completed: %s", ch.fail.kept ? ch.fail.reasons[0] : "interrupted");
    if (bench_stopping())
        return bench_fail("interrupted");
    return rc < 0 ? bench_fail("skiffd did not stop cleanly") : 0;
}

/* ---- density ---------------------------------------------------------------------------- */

enum { D_CREATE, D_RUN, D_TERMINATE, D_STEPS };
static const char *const d_step_names[D_STEPS] = {"create", "run", "terminate"};

struct density {
    struct target *target;
    size_t n;
    char (*ids)[BENCH_ID_MAX];
    int step;
    size_t next; /* next index to work on, under mu */
    pthread_mutex_t mu;
    struct samples create_ms;
    struct failures fail[D_STEPS];
};

struct density_worker {
    struct density *dn;
    pthread_t th;
    struct bench_conn conn;
};

static void *density_worker_main(void *arg)
{
    struct density_worker *w = arg;
    struct density *dn = w->dn;
    for (;;) {
        pthread_mutex_lock(&dn->mu);
        size_t i = dn->next++;
        pthread_mutex_unlock(&dn->mu);
        if (i >= dn->n || bench_stopping())
            break;
        char *id = dn->ids[i];
        if (dn->step == D_CREATE) {
            double t0 = bench_now_ms();
            if (bench_sandbox_create(&w->conn, "{\"timeout\":3600}", id) < 0) {
                failures_add(&dn->fail[D_CREATE], bench_error());
                id[0] = '\0';
            } else {
                samples_add(&dn->create_ms, bench_now_ms() - t0);
            }
            if ((i + 1) % 100 == 0)
                bench_progress("density: %zu/%zu created", i + 1, dn->n);
        } else if (id[0] != '\0') {
            int rc = dn->step == D_RUN ? sb_run(&w->conn, id, "{\"argv\":[\"true\"]}", "")
                                       : bench_sandbox_terminate(&w->conn, id);
            if (rc < 0)
                failures_add(&dn->fail[dn->step], bench_error());
        }
    }
    return NULL;
}

/* density_step - one pass of every worker over the ids. */
static double density_step(struct density *dn, unsigned conc, int step)
{
    dn->step = step;
    dn->next = 0;
    struct density_worker *w = xcalloc(conc, sizeof(*w));
    double t0 = bench_now_ms();
    unsigned started = 0;
    for (; started < conc; started++) {
        w[started].dn = dn;
        bench_conn_init(&w[started].conn, dn->target->d.port, dn->target->d.token);
        if (pthread_create(&w[started].th, NULL, density_worker_main, &w[started]) != 0) {
            bench_conn_release(&w[started].conn);
            break;
        }
    }
    if (started == 0)
        failures_add(&dn->fail[step], "no worker thread could be started");
    for (unsigned i = 0; i < started; i++) {
        pthread_join(w[i].th, NULL);
        bench_conn_release(&w[i].conn);
    }
    free(w);
    return (bench_now_ms() - t0) / 1000;
}

/* count_running - sandboxes listed as running (every page). */
static long count_running(struct bench_conn *c)
{
    long n = 0;
    char cursor[256] = "", path[400];
    for (;;) {
        snprintf(path, sizeof(path), "/v1/sandboxes?state=running&limit=1000%s%s", cursor[0] ? "&cursor=" : "", cursor);
        struct bench_resp r;
        if (bench_call(c, "GET", path, NULL, NULL, 0, 200, &r) < 0)
            return -1;
        n += (long)json_array_size(json_object_get(r.json, "sandboxes"));
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
        bench_resp_free(&r);
        if (cursor[0] == '\0')
            return n;
    }
}

static int run_density(const char *skiffd, size_t n, unsigned conc, json_t *out)
{
    struct target target = {0};
    target_start(&target, skiffd, "density", 0, false);
    if (!target.up) {
        bench_skiffd_stop(&target.d);
        return bench_fail("%s", target.reason);
    }
    struct density dn = {.target = &target, .n = n};
    dn.ids = xcalloc(n, sizeof(*dn.ids));
    pthread_mutex_init(&dn.mu, NULL);
    samples_init(&dn.create_ms);
    for (int s = 0; s < D_STEPS; s++)
        failures_init(&dn.fail[s]);
    bool v2 = strcmp(target.d.cgroup_driver, "v2") == 0;
    struct bench_conn ctl;
    bench_conn_init(&ctl, target.d.port, target.d.token);

    /* before: one sandbox made and ended, so that skiffd's one-time costs
     * (the host image, the store's first pages) are not counted per sandbox */
    char warm_id[BENCH_ID_MAX];
    if (bench_sandbox_create(&ctl, "{}", warm_id) < 0 || bench_sandbox_terminate(&ctl, warm_id) < 0)
        failures_add(&dn.fail[D_CREATE], bench_error());
    sleep_ms(1000);
    struct bench_proc p_before = bench_proc_read(target.d.pid);
    struct bench_meminfo m_before, m_idle;
    bench_meminfo_read(&m_before);

    double create_s = density_step(&dn, conc, D_CREATE);
    long created = 0;
    for (size_t i = 0; i < n; i++)
        created += dn.ids[i][0] != '\0';
    bench_progress("density: %ld of %zu sandboxes created in %.1f s", created, n, create_s);
    sleep_ms(2000);
    struct bench_proc p_idle = bench_proc_read(target.d.pid);
    bench_meminfo_read(&m_idle);
    struct bench_cgroups cg = {0};
    char cg_reason[512] = "";
    if (target.d.cgroup_memory_dir[0] == '\0')
        snprintf(cg_reason, sizeof(cg_reason), "skiffd's log names no cgroup parent");
    else if (bench_cgroups_read(target.d.cgroup_memory_dir, v2, &cg) < 0)
        snprintf(cg_reason, sizeof(cg_reason), "%s", bench_error());
    long listed = count_running(&ctl);
    if (listed < 0)
        failures_add(&dn.fail[D_RUN], bench_error());
    double run_s = density_step(&dn, conc, D_RUN);
    double term_s = density_step(&dn, conc, D_TERMINATE);
    sleep_ms(2000);
    struct bench_proc p_after = bench_proc_read(target.d.pid);
    struct bench_cgroups cg_after = {0};
    if (cg_reason[0] == '\0')
        bench_cgroups_read(target.d.cgroup_memory_dir, v2, &cg_after);
    bool alive = bench_skiffd_running(&target.d);
    bench_conn_release(&ctl);

    int64_t skiffd_growth = (int64_t)p_idle.pss - (int64_t)p_before.pss;
    double per = created > 0 ? ((double)skiffd_growth + (double)cg.pss + (double)cg.kernel) / (double)created : 0;
    struct bench_stats cs = bench_stats_of(dn.create_ms.v, dn.create_ms.n);
    json_object_set_new(out, "measure",
                        json_string("idle sandboxes (POST /v1/sandboxes {timeout:3600}, pool off): host memory = "
                                    "skiffd's PSS growth + PSS of every process in the sandboxes' cgroups + kernel "
                                    "memory charged to those cgroups, per sandbox"));
    json_object_set_new(out, "status", json_string(created > 0 ? "ok" : "failed"));
    json_object_set_new(out, "sandboxes", json_integer((json_int_t)n));
    json_object_set_new(out, "created", json_integer(created));
    json_object_set_new(out, "concurrency", json_integer(conc));
    json_object_set_new(out, "create_seconds", json_real(round(create_s * 10) / 10));
    json_object_set_new(out, "create_ms", bench_stats_json(&cs));
    json_object_set_new(out, "listed_running", json_integer(listed));
    json_object_set_new(out, "run_seconds", json_real(round(run_s * 10) / 10));
    json_object_set_new(out, "terminate_seconds", json_real(round(term_s * 10) / 10));
    json_t *f = json_object();
    long errors = 0;
    for (int s = 0; s < D_STEPS; s++) {
        json_object_set_new(f, d_step_names[s], failures_json(&dn.fail[s]));
        errors += dn.fail[s].count;
    }
    if (listed >= 0 && listed != created) /* every sandbox made must be there */
        errors += labs(listed - created);
    json_object_set_new(out, "failures", f);
    json_object_set_new(out, "errors", json_integer(errors));
    json_t *mem = json_object();
    json_object_set_new(mem, "per_sandbox_bytes", json_integer((json_int_t)llround(per)));
    json_object_set_new(mem, "skiffd_pss_growth_bytes", json_integer((json_int_t)skiffd_growth));
    json_object_set_new(mem, "cgroup_driver", json_string(target.d.cgroup_driver));
    json_object_set_new(mem, "cgroups", bench_cgroups_json(&cg));
    if (cg_reason[0] != '\0')
        json_object_set_new(mem, "cgroups_reason", json_string(cg_reason));
    if (created > 0) {
        json_object_set_new(mem, "skiffd_per_sandbox_bytes",
                            json_integer((json_int_t)llround((double)skiffd_growth / (double)created)));
        json_object_set_new(mem, "processes_pss_per_sandbox_bytes",
                            json_integer((json_int_t)llround((double)cg.pss / (double)created)));
        json_object_set_new(mem, "kernel_per_sandbox_bytes",
                            json_integer((json_int_t)llround((double)cg.kernel / (double)created)));
        json_object_set_new(mem, "charged_per_sandbox_bytes",
                            json_integer((json_int_t)llround((double)cg.usage / (double)created)));
        json_object_set_new(mem, "host_meminfo_change_per_sandbox_bytes",
                            bench_meminfo_delta_json(&m_before, &m_idle, (double)created));
    }
    json_object_set_new(out, "memory", mem);
    json_t *sk = json_object();
    json_object_set_new(sk, "before", bench_proc_json(&p_before));
    json_object_set_new(sk, "idle", bench_proc_json(&p_idle));
    json_object_set_new(sk, "after_terminate", bench_proc_json(&p_after));
    json_object_set_new(
        sk, "fds_per_sandbox",
        json_real(created > 0 ? round((double)(p_idle.fds - p_before.fds) / (double)created * 100) / 100 : 0));
    json_object_set_new(sk, "fd_growth_after_terminate", json_integer(p_after.fds - p_before.fds));
    json_object_set_new(sk, "alive_at_end", json_boolean(alive));
    json_object_set_new(out, "skiffd", sk);
    json_object_set_new(out, "cgroups_left_after_terminate", json_integer(cg_after.groups));
    json_object_set_new(out, "skiffd_args", target_args_json(&target));
    bench_progress("density: %.0f KiB per idle sandbox (%ld created, %ld errors)", per / 1024, created, errors);

    samples_release(&dn.create_ms);
    free(dn.ids);
    int rc = bench_skiffd_stop(&target.d);
    if (bench_stopping())
        return bench_fail("interrupted");
    if (created == 0)
        return bench_fail("no sandbox created: %s", dn.fail[D_CREATE].kept ? dn.fail[D_CREATE].reasons[0] : "");
    return rc < 0 ? bench_fail("skiffd did not stop cleanly") : 0;
}

/* ---- the table -------------------------------------------------------------------------- */

static double jnum(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void print_table(const char *mode, json_t *o)
{
    if (strcmp(mode, "tti") == 0) {
        printf("time to interactive (create -> first byte of echo ok), ms\n");
        printf("%-6s %5s %5s %8s %8s %8s %8s %10s %6s %7s\n", "skiffd", "conc", "n", "p50", "p95", "p99", "max",
               "create p50", "hits", "misses");
        json_t *c;
        size_t i;
        json_array_foreach(json_object_get(o, "cases"), i, c)
        {
            const char *st = json_string_value(json_object_get(c, "status"));
            if (st == NULL || strcmp(st, "unavailable") == 0) {
                printf("%-6s %5.0f unavailable: %s\n", json_string_value(json_object_get(c, "variant")),
                       jnum(c, "concurrency"), json_string_value(json_object_get(c, "reason")));
                continue;
            }
            printf("%-6s %5.0f %5.0f %8.3f %8.3f %8.3f %8.3f %10.3f %6.0f %7.0f\n",
                   json_string_value(json_object_get(c, "variant")), jnum(c, "concurrency"), jnum(c, "tti.n"),
                   jnum(c, "tti.p50"), jnum(c, "tti.p95"), jnum(c, "tti.p99"), jnum(c, "tti.max"),
                   jnum(c, "create.p50"), jnum(c, "pool_hits"), jnum(c, "pool_misses"));
        }
    } else if (strcmp(mode, "churn") == 0) {
        printf("churn: %.1f cycles/s over %.1f s at concurrency %.0f (cycle p50 %.3f ms, p99 %.3f ms), %.0f failed\n",
               jnum(o, "cycles_per_s"), jnum(o, "seconds"), jnum(o, "concurrency"), jnum(o, "cycle_ms.p50"),
               jnum(o, "cycle_ms.p99"), jnum(o, "failures.count"));
        printf("skiffd start -> end: pss %.2f -> %.2f MiB, rss %.2f -> %.2f MiB, fds %.0f -> %.0f; "
               "%.0f%% of a core\n",
               jnum(o, "skiffd.start.pss_bytes") / MIB, jnum(o, "skiffd.end.pss_bytes") / MIB,
               jnum(o, "skiffd.start.rss_bytes") / MIB, jnum(o, "skiffd.end.rss_bytes") / MIB,
               jnum(o, "skiffd.start.fds"), jnum(o, "skiffd.end.fds"), jnum(o, "skiffd.cpu_share_of_one_core") * 100);
    } else {
        printf("density: %.0f of %.0f idle sandboxes, %.0f errors; %.1f KiB per sandbox "
               "(skiffd %.1f + processes %.1f + kernel %.1f)\n",
               jnum(o, "created"), jnum(o, "sandboxes"), jnum(o, "errors"), jnum(o, "memory.per_sandbox_bytes") / 1024,
               jnum(o, "memory.skiffd_per_sandbox_bytes") / 1024,
               jnum(o, "memory.processes_pss_per_sandbox_bytes") / 1024,
               jnum(o, "memory.kernel_per_sandbox_bytes") / 1024);
    }
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: load [-s SKIFFD] [-q] [--json] tti [-n N] [-c LIST] [-p POOL] [-w PAIRS]\n"
                    "       load [-s SKIFFD] [-q] [--json] churn [-d SECS] [-c C] [-p POOL] [-w SECS]\n"
                    "       load [-s SKIFFD] [-q] [--json] density [-n N] [-c C]\n");
    exit(2);
}

static unsigned long arg_ulong(const char *s, unsigned long min, unsigned long max)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *skiffd = NULL;
    bool as_json = false, quiet = false;
    const struct option common[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    /* the options before the mode, then the mode's own */
    while ((opt = getopt_long(argc, argv, "+s:q", common, NULL)) != -1) {
        switch (opt) {
        case 's': skiffd = optarg; break;
        case 'q': quiet = true; break;
        case 'j': as_json = true; break;
        default: usage();
        }
    }
    if (optind >= argc)
        usage();
    const char *mode = argv[optind];
    bool is_tti = strcmp(mode, "tti") == 0, is_churn = strcmp(mode, "churn") == 0;
    if (!is_tti && !is_churn && strcmp(mode, "density") != 0)
        usage();
    size_t n = is_tti ? 500 : 1000;
    unsigned conc = 8, pool = is_tti ? 32 : 0, warm = is_tti ? 2 : 3, seconds = 60;
    const char *levels = "1,8,32";
    argc -= optind;
    argv += optind;
    optind = 0; /* a full restart of getopt, on the mode's arguments */
    while ((opt = getopt_long(argc, argv, "n:c:p:w:d:", common, NULL)) != -1) {
        switch (opt) {
        case 'n': n = arg_ulong(optarg, 1, 100000); break;
        case 'c':
            if (is_tti)
                levels = optarg;
            else
                conc = (unsigned)arg_ulong(optarg, 1, MAX_WORKERS);
            break;
        case 'p':
            if (!is_tti && !is_churn)
                usage();
            pool = (unsigned)arg_ulong(optarg, 0, 4096);
            break;
        case 'w': warm = (unsigned)arg_ulong(optarg, 0, 3600); break;
        case 'd':
            if (!is_churn)
                usage();
            seconds = (unsigned)arg_ulong(optarg, 1, 86400);
            break;
        case 'j': as_json = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    char def[PATH_MAX];
    if (skiffd == NULL && (skiffd = bench_skiffd_default(def, sizeof(def))) == NULL) {
        fprintf(stderr, "load: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    bench_progress_init("load", quiet);
    bench_catch_signals();

    json_t *out = json_object();
    json_object_set_new(out, "schema", json_integer(1));
    json_object_set_new(out, "mode", json_string(mode));
    json_object_set_new(out, "unit", json_string("ms"));
    int rc;
    if (is_tti)
        rc = run_tti(skiffd, n, levels, pool, warm, out);
    else if (is_churn)
        rc = run_churn(skiffd, seconds, conc, pool, warm, out);
    else
        rc = run_density(skiffd, n, conc, out);
    if (rc < 0) {
        fprintf(stderr, "load: %s: %s\n", mode, bench_error());
        json_decref(out);
        return 1;
    }
    if (as_json) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
    } else {
        print_table(mode, out);
    }
    json_decref(out);
    return 0;
}
