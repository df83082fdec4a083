/* The warm pool through skiffd: creates are served from it and counted in
 * GET /v1/pool and /metrics, pooled sandboxes are invisible to users, a
 * sandbox claimed from the pool survives a crash of skiffd like any other
 * (its timeout included) while the crashed server's pooled sandboxes are
 * swept at the next start, and bad pool options are refused. */
#include "skiffd_test.h"

#include <dirent.h>
#include <sys/prctl.h>

static void start_with(struct skiffd *s, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    make_data_dir(s);
    skiffd_start_args(s, extra);
}

static void api(const struct skiffd *s, const char *method, const char *path, const char *body, int want,
                struct resp *r)
{
    request(s, method, path, s->token, body, r);
    if (r->status != want)
        FAIL("%s %s: status %d, want %d: %.*s", method, path, r->status, want,
             (int)(r->body_len > 400 ? 400 : r->body_len), r->body ? r->body : "");
}

/* pool_key - the stats object of the default key from GET /v1/pool. */
static long long pool_field(const struct skiffd *s, const char *field)
{
    struct resp r;
    api(s, "GET", "/v1/pool", NULL, 200, &r);
    json_t *keys = json_object_get(r.json, "keys");
    long long v = -1;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i);
        if (strcmp(json_string_value(json_object_get(k, "key")), "host/1g/none") == 0)
            v = (long long)json_integer_value(json_object_get(k, field));
    }
    resp_free(&r);
    if (v < 0)
        FAIL("no key host/1g/none in GET /v1/pool");
    return v;
}

static void wait_pool_ready(const struct skiffd *s, long long want)
{
    double deadline = now_ms() + 30000;
    while (pool_field(s, "ready") < want) {
        if (now_ms() > deadline)
            FAIL("the pool did not reach %lld ready sandboxes within 30 s", want);
        usleep(20000);
    }
}

static void create(const struct skiffd *s, const char *body, char *id, size_t size)
{
    struct resp r;
    api(s, "POST", "/v1/sandboxes", body, 201, &r);
    snprintf(id, size, "%s", json_string_value(json_object_get(r.json, "id")));
    resp_free(&r);
}

/* runtime_ids - the sandbox directories under <data>/runtime/sandboxes. */
static size_t runtime_ids(const struct skiffd *s, char ids[][32], size_t max)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/runtime/sandboxes", s->dir);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL && n < max)
        if (strncmp(de->d_name, "sb-", 3) == 0)
            snprintf(ids[n++], 32, "%s", de->d_name);
    if (d != NULL)
        closedir(d);
    return n;
}

/* memory_limit - the memory limit of sandbox id's cgroup (v1 or v2). */
static long long memory_limit(const char *id)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cat /sys/fs/cgroup/memory/skiff-*/%s/memory.limit_in_bytes /sys/fs/cgroup/skiff-*/%s/memory.max "
             "2>/dev/null; exit 0",
             id, id);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct sk_test_output o;
    ASSERT_EQ_INT(sk_test_run(argv, NULL, NULL, 10, &o), 0);
    long long v = strtoll(o.out, NULL, 10);
    sk_test_output_free(&o);
    return v;
}

TEST_TIMEOUT(creates_are_served_from_the_pool, 120)
{
    struct skiffd s;
    const char *extra[] = {"--pool-size", "3", NULL};
    start_with(&s, extra);
    wait_pool_ready(&s, 3);
    struct resp r;
    /* pooled sandboxes are nobody's: not listed */
    api(&s, "GET", "/v1/sandboxes", NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "sandboxes")), 0);
    resp_free(&r);

    char id[64], q[256];
    double t0 = now_ms();
    create(&s, "{\"memory\": 128, \"env\": {\"WHO\": \"pool\"}, \"workdir\": \"/tmp\"}", id, sizeof(id));
    double took = now_ms() - t0;
    ASSERT_EQ_INT(pool_field(&s, "hits"), 1);
    ASSERT_EQ_INT(pool_field(&s, "misses"), 0);
    /* its first exec's output files were made ahead, and are taken by it */
    char spare[PATH_MAX + 128];
    snprintf(spare, sizeof(spare), "%s/sandboxes/%s/execs/spare.stdout", s.dir, id);
    ASSERT_EQ_INT(access(spare, F_OK), 0);
    /* the per-request settings are the request's */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", q, "{\"argv\": [\"sh\", \"-c\", \"echo $WHO; pwd\"]}", 200, &r);
    ASSERT_CONTAINS(json_string_value(json_object_get(r.json, "stdout")), "pool\n/tmp\n");
    resp_free(&r);
    ASSERT_NE_INT(access(spare, F_OK), 0);
    ASSERT_EQ_INT(memory_limit(id), 128LL << 20);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/usage", id);
    api(&s, "GET", q, NULL, 200, &r); /* the pool's time is not charged */
    ASSERT_TRUE(json_real_value(json_object_get(r.json, "cpu_seconds")) < 0.5);
    resp_free(&r);
    api(&s, "GET", "/v1/sandboxes", NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "sandboxes")), 1);
    resp_free(&r);

    /* /metrics says the same */
    api(&s, "GET", "/metrics", NULL, 200, &r);
    ASSERT_CONTAINS(r.body, "skiff_pool_hits_total{key=\"host/1g/none\"} 1\n");
    ASSERT_CONTAINS(r.body, "skiff_pool_misses_total{key=\"host/1g/none\"} 0\n");
    ASSERT_CONTAINS(r.body, "skiff_pool_refill_seconds_count{key=\"host/1g/none\"}");
    ASSERT_CONTAINS(r.body, "# TYPE skiff_pool_ready gauge");
    resp_free(&r);
    fprintf(stderr, "    create from the pool took %.2f ms\n", took);

    /* more creates than ready sandboxes: the rest are cold, all work */
    char ids[8][64];
    for (int i = 0; i < 8; i++)
        create(&s, "{}", ids[i], sizeof(ids[i]));
    long long hits = pool_field(&s, "hits"), misses = pool_field(&s, "misses");
    ASSERT_EQ_INT(hits + misses, 9);
    ASSERT_GE_INT(hits, 3);
    for (int i = 0; i < 8; i++) {
        snprintf(q, sizeof(q), "/v1/sandboxes/%s/run", ids[i]);
        api(&s, "POST", q, "{\"argv\": [\"true\"]}", 200, &r);
        resp_free(&r);
    }
    skiffd_finish(&s);
}

TEST(the_pool_can_be_turned_off)
{
    struct skiffd s;
    const char *extra[] = {"--pool-size", "0", NULL};
    start_with(&s, extra);
    struct resp r;
    api(&s, "GET", "/v1/pool", NULL, 200, &r);
    ASSERT_TRUE(json_is_false(json_object_get(r.json, "enabled")));
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "keys")), 0);
    resp_free(&r);
    char id[64];
    create(&s, "{}", id, sizeof(id));
    api(&s, "GET", "/metrics", NULL, 200, &r);
    ASSERT_NOT_CONTAINS(r.body, "skiff_pool_hits_total");
    resp_free(&r);
    /* and needs a token like every other endpoint */
    request(&s, "GET", "/v1/pool", NULL, NULL, &r);
    ASSERT_EQ_INT(r.status, 401);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST_TIMEOUT(a_crash_keeps_claimed_sandboxes_and_sweeps_the_pool, 120)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct skiffd s;
    const char *extra[] = {"--pool-size", "3", NULL};
    start_with(&s, extra);
    wait_pool_ready(&s, 3);
    char id[64];
    create(&s, "{\"timeout\": 4}", id, sizeof(id));
    ASSERT_EQ_INT(pool_field(&s, "hits"), 1);
    wait_pool_ready(&s, 3);
    char before[16][32];
    size_t n = runtime_ids(&s, before, 16);
    ASSERT_EQ_INT(n, 4); /* the claimed one and three pooled */

    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    double crashed = now_ms();
    skiffd_start_args(&s, extra);

    /* the claimed sandbox is re-adopted, the old pooled ones are gone */
    struct resp r;
    char q[256];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "state")), "running");
    resp_free(&r);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(before[i], id) == 0)
            continue;
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/runtime/sandboxes/%s", s.dir, before[i]);
        ASSERT_NE_INT(access(path, F_OK), 0);
        ASSERT_FALSE(sandbox_cgroup_exists(before[i]));
    }
    /* its timeout (4 s from its claim, not from its making) still ends it */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=20", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "reason")), "timeout");
    resp_free(&r);
    ASSERT_LT_INT(now_ms() - crashed, 8000);
    skiffd_finish(&s);
    ASSERT_FALSE(sandbox_cgroup_exists(id));
}

TEST(bad_pool_options_are_refused)
{
    static const char *const bad[][2] = {
        {"--pool-size", "x"},
        {"--pool-size", "-1"},
        {"--pool", "disk=1g"},
        {"--pool", "image=relative"},
        {"--pool", "image=host,disk=1"},
        {"--pool", "image=host,net=wifi"},
        {"--pool", "image=host,bogus=1"},
        {"--pool-max", "0"},
    };
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/skiffd", sk_test_bin_dir());
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        const char *argv[] = {bin, "--data-dir", "/nonexistent/never-created", bad[i][0], bad[i][1], NULL};
        struct sk_test_output o;
        ASSERT_EQ_INT(sk_test_run(argv, NULL, NULL, 10, &o), 0);
        ASSERT_EQ_INT(o.exit_code, 2);
        ASSERT_CONTAINS(o.err, bad[i][0]);
        sk_test_output_free(&o);
    }
}
