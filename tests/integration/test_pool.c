/* test_pool.c - the warm pool (lib/runtime/pool.c) with real sandboxes:
 * claims hand out ready sandboxes once each, apply the request's limits and
 * lifetime, miss for keys that have nothing ready, follow demand up and back
 * down, discard sandboxes that died or whose image changed, and leave
 * nothing behind - neither on sk_pool_free nor after their owner crashed. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/util.h"
#include "runtime/cgroup.h"
#include "runtime/pool.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"
#include "sandbox_test.h"

/* Their own state dir and cgroup parent: other test programs' sweeps never
 * meet these sandboxes, and the counts below see only ours. */
#define POOL_STATE_DIR TEST_STATE_DIR "-pool"
#define POOL_CGROUP "skiff-test-pool"

static struct sk_runtime *new_runtime(void)
{
    char init[PATH_MAX];
    snprintf(init, sizeof(init), "%s/skiff-init", sk_test_bin_dir());
    struct sk_runtime_config cfg = {.state_dir = POOL_STATE_DIR, .init_path = init, .cgroup_parent = POOL_CGROUP};
    struct sk_runtime *rt = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_runtime_new(&cfg, &rt, &err));
    return rt;
}

static int count_groups(struct sk_runtime *rt)
{
    struct sk_error err = {0};
    int n = sk_cgroup_count_children(sk_runtime_cgroups(rt), "sb-", &err);
    if (n < 0)
        FAIL("%s", err.msg);
    return n;
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static struct sk_pool *new_pool(struct sk_runtime *rt, const struct sk_pool_key_config *keys, size_t n,
                                unsigned max_per_key, int64_t idle_ms)
{
    struct sk_pool_config cfg = {
        .keys = keys, .n_keys = n, .max_per_key = max_per_key, .idle_ms = idle_ms, .adaptive_new_keys = true};
    struct sk_pool *p = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_pool_new(rt, &cfg, &p, &err));
    return p;
}

static struct sk_pool_key_stats stats_of(struct sk_pool *p, const char *key)
{
    struct sk_pool_key_stats st[SK_POOL_KEYS_MAX];
    size_t n = sk_pool_stats(p, st, SK_POOL_KEYS_MAX);
    for (size_t i = 0; i < n; i++)
        if (strcmp(st[i].key, key) == 0)
            return st[i];
    FAIL("no pool key '%s'", key);
}

/* run_true - the sandbox answers and runs a program to its end. */
static void run_true(struct sk_sandbox *sb)
{
    struct sk_error err = {0};
    static const char *const argv[] = {"/bin/sh", "-c", "exit 7", NULL};
    struct sk_agent_spawn s = {.argv = argv};
    struct sk_agent_proc proc;
    ASSERT_OK(sk_sandbox_exec(sb, &s, &proc, &err));
    sk_close(&proc.stdout_fd);
    sk_close(&proc.stderr_fd);
    sk_close(&proc.stdin_fd);
    struct sk_agent_event ev;
    ASSERT_OK(sk_agent_next_event(sk_sandbox_agent(sb), &ev, 10000, &err));
    ASSERT_EQ_INT(ev.proc_id, proc.id);
    ASSERT_EQ_INT(ev.exit_code, 7);
}

static const struct sk_sandbox_spec claim_spec = {.persistent = true};

static void wait_ready(struct sk_pool *p)
{
    if (!sk_pool_wait_ready(p, 30000))
        FAIL("the pool did not fill within 30 s");
}

TEST(claims_hand_out_each_ready_sandbox_once)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_pool_key_config key = {.image = "host", .min = 3};
    struct sk_pool *p = new_pool(rt, &key, 1, 8, 0);
    wait_ready(p);
    struct sk_pool_key_stats st = stats_of(p, "host/1g/none");
    ASSERT_EQ_INT(st.ready, 3);
    ASSERT_EQ_INT(st.target, 3);

    struct sk_sandbox *sb[12] = {0};
    struct sk_error err = {0};
    int hits = 0;
    for (int i = 0; i < 12; i++) {
        int r = sk_pool_claim(p, &claim_spec, &sb[i], &err);
        ASSERT_TRUE(r >= 0);
        if (r == 0)
            ASSERT_OK(sk_sandbox_create(rt, &claim_spec, &sb[i], &err));
        hits += r;
    }
    ASSERT_GE_INT(hits, 3); /* the first three at least; refills may serve more */
    for (int i = 0; i < 12; i++) {
        for (int j = 0; j < i; j++) {
            ASSERT_TRUE(strcmp(sk_sandbox_id(sb[i]), sk_sandbox_id(sb[j])) != 0);
            ASSERT_NE_INT(sk_sandbox_pid(sb[i]), sk_sandbox_pid(sb[j]));
        }
        run_true(sb[i]);
    }
    st = stats_of(p, "host/1g/none");
    ASSERT_EQ_INT(st.hits, hits);
    ASSERT_EQ_INT(st.misses, 12 - hits);
    for (int i = 0; i < 12; i++)
        sk_sandbox_free(sb[i]);
    sk_pool_free(p);
    ASSERT_EQ_INT(count_groups(rt), 0);
    ASSERT_EQ_INT(count_dir(POOL_STATE_DIR "/sandboxes"), 0);
    ASSERT_EQ_INT(count_dir(POOL_STATE_DIR "/locks"), 0);
    sk_runtime_free(rt);
}

/* read_cg - a file of the sandbox's cgroup in the memory (v1) or unified
 * (v2) hierarchy. */
static long long read_cg(struct sk_runtime *rt, const char *id, const char *v1_file, const char *v2_file)
{
    char path[PATH_MAX];
    bool v2 = sk_cgroup_system_driver(sk_runtime_cgroups(rt)) == SK_CGROUP_V2;
    if (v2)
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s/%s", POOL_CGROUP, id, v2_file);
    else
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s/%s/%s", strncmp(v1_file, "pids", 4) == 0 ? "pids" : "memory",
                 POOL_CGROUP, id, v1_file);
    char *data = NULL;
    struct sk_error err = {0};
    if (sk_read_file_at(AT_FDCWD, path, 4096, &data, NULL, &err) < 0)
        FAIL("%s", err.msg);
    long long v = strncmp(data, "max", 3) == 0 ? -1 : strtoll(data, NULL, 10);
    free(data);
    return v;
}

TEST(a_claim_applies_limits_and_lifetime)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_pool_key_config key = {.image = "host", .min = 2};
    struct sk_pool *p = new_pool(rt, &key, 1, 4, 0);
    wait_ready(p);
    struct sk_sandbox_spec spec = {.persistent = true, .timeout_ms = 5000};
    spec.limits.memory_bytes = 64 << 20;
    spec.limits.pids = 33;
    struct sk_sandbox *sb = NULL;
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_pool_claim(p, &spec, &sb, &err), 1);
    ASSERT_EQ_INT(read_cg(rt, sk_sandbox_id(sb), "memory.limit_in_bytes", "memory.max"), 64 << 20);
    ASSERT_EQ_INT(read_cg(rt, sk_sandbox_id(sb), "pids.max", "pids.max"), 33);
    int64_t left = sk_sandbox_deadline_ns(sb) - sk_now_ns();
    ASSERT_TRUE(left > 4000 * 1000000LL && left <= 5000 * 1000000LL);
    /* the adopt record carries the new deadline */
    struct sk_sandbox_adopt_info info;
    ASSERT_OK(sk_sandbox_describe(sb, &info, &err));
    ASSERT_EQ_INT(info.deadline_ns, sk_sandbox_deadline_ns(sb));
    /* the time it waited in the pool is not the user's */
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_sandbox_usage(sb, &u, &err));
    ASSERT_LT_INT(u.cpu_usec, 1000);
    run_true(sb);
    sk_sandbox_free(sb);

    /* limits a cgroup refuses: the same error as a cold create, nothing left */
    spec.limits.memory_bytes = 1024;
    int before = count_groups(rt);
    ASSERT_EQ_INT(sk_pool_claim(p, &spec, &sb, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "memory limit must be at least 4 MiB");
    ASSERT_TRUE(sb == NULL);
    ASSERT_LE_INT(count_groups(rt), before);
    sk_pool_free(p);
    ASSERT_EQ_INT(count_groups(rt), 0);
    sk_runtime_free(rt);
}

TEST(keys_are_kept_apart_and_unpoolable_specs_miss)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_pool_key_config keys[] = {{.image = "host", .min = 1},
                                        {.image = "host", .disk_bytes = 64 << 20, .min = 1}};
    struct sk_pool *p = new_pool(rt, keys, 2, 4, 0);
    wait_ready(p);
    struct sk_error err = {0};
    struct sk_sandbox *sb = NULL;
    struct sk_sandbox_spec small = {.persistent = true, .disk_bytes = 64 << 20};
    ASSERT_EQ_INT(sk_pool_claim(p, &small, &sb, &err), 1);
    ASSERT_EQ_INT(stats_of(p, "host/64m/none").hits, 1);
    ASSERT_EQ_INT(stats_of(p, "host/1g/none").hits, 0);
    sk_sandbox_free(sb);
    /* a spec the pool cannot serve is always cold, and not counted */
    struct sk_sandbox_spec named = {.persistent = true, .hostname = "box"};
    ASSERT_EQ_INT(sk_pool_claim(p, &named, &sb, &err), 0);
    struct sk_sandbox_spec owned = {.die_with_owner = true};
    ASSERT_EQ_INT(sk_pool_claim(p, &owned, &sb, &err), 0);
    ASSERT_EQ_INT(stats_of(p, "host/1g/none").misses, 0);
    /* a new key appears on its first claim (a miss) and then fills */
    struct sk_sandbox_spec other = {.persistent = true, .disk_bytes = 32 << 20};
    ASSERT_EQ_INT(sk_pool_claim(p, &other, &sb, &err), 0);
    struct sk_pool_key_stats st = stats_of(p, "host/32m/none");
    ASSERT_EQ_INT(st.misses, 1);
    ASSERT_EQ_INT(st.min, 0);
    ASSERT_EQ_INT(st.target, 1);
    wait_ready(p);
    ASSERT_EQ_INT(sk_pool_claim(p, &other, &sb, &err), 1);
    sk_sandbox_free(sb);
    sk_pool_free(p);
    ASSERT_EQ_INT(count_groups(rt), 0);
    sk_runtime_free(rt);
}

TEST_TIMEOUT(target_follows_demand_and_shrinks_when_idle, 90)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_pool_key_config key = {.image = "host", .min = 1};
    struct sk_pool *p = new_pool(rt, &key, 1, 6, 1500);
    wait_ready(p);
    struct sk_error err = {0};
    struct sk_sandbox *sb[10] = {0};
    for (int i = 0; i < 10; i++) /* a burst: ten creates within a second */
        if (sk_pool_claim(p, &claim_spec, &sb[i], &err) == 0)
            ASSERT_OK(sk_sandbox_create(rt, &claim_spec, &sb[i], &err));
    struct sk_pool_key_stats st = stats_of(p, "host/1g/none");
    ASSERT_EQ_INT(st.target, 6); /* ten asked for, bounded by max 6 */
    wait_ready(p);
    ASSERT_EQ_INT(stats_of(p, "host/1g/none").ready, 6);
    for (int i = 0; i < 10; i++)
        sk_sandbox_free(sb[i]);
    /* no claim for idle_ms: back to the minimum, the surplus destroyed */
    int64_t deadline = sk_now_ns() + 20000 * 1000000LL;
    while (stats_of(p, "host/1g/none").ready > 1 && sk_now_ns() < deadline)
        usleep(50000);
    st = stats_of(p, "host/1g/none");
    ASSERT_EQ_INT(st.target, 1);
    ASSERT_EQ_INT(st.ready, 1);
    usleep(200000);
    ASSERT_EQ_INT(count_groups(rt), 1);
    sk_pool_free(p);
    ASSERT_EQ_INT(count_groups(rt), 0);
    sk_runtime_free(rt);
}

/* kill_ready - SIGKILL the pid 1 of every sandbox of the pool's cgroups
 * (the test holds none itself at that moment). */
static int kill_ready(struct sk_runtime *rt)
{
    bool v2 = sk_cgroup_system_driver(sk_runtime_cgroups(rt)) == SK_CGROUP_V2;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s%s", v2 ? "" : "pids/", POOL_CGROUP);
    DIR *d = opendir(dir);
    if (d == NULL)
        FAIL("open '%s'", dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "sb-", 3) != 0)
            continue;
        char procs[PATH_MAX + 64];
        snprintf(procs, sizeof(procs), "%s/%s/cgroup.procs", dir, de->d_name);
        FILE *f = fopen(procs, "re");
        int pid;
        while (f != NULL && fscanf(f, "%d", &pid) == 1) {
            kill(pid, SIGKILL);
            n++;
        }
        if (f != NULL)
            fclose(f);
    }
    closedir(d);
    return n;
}

TEST(dead_or_outdated_sandboxes_are_discarded_not_handed_out)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_pool_key_config key = {.image = "host", .min = 2};
    struct sk_pool *p = new_pool(rt, &key, 1, 4, 0);
    wait_ready(p);
    ASSERT_GE_INT(kill_ready(rt), 2);
    usleep(100000);
    struct sk_error err = {0};
    struct sk_sandbox *sb = NULL;
    int r = sk_pool_claim(p, &claim_spec, &sb, &err);
    if (r == 1) /* the refill thread's check ran first and made a new one */
        run_true(sb);
    sk_sandbox_free(sb);
    int64_t deadline = sk_now_ns() + 10000 * 1000000LL;
    while (stats_of(p, "host/1g/none").discarded < 2 && sk_now_ns() < deadline)
        usleep(50000);
    ASSERT_GE_INT(stats_of(p, "host/1g/none").discarded, 2);
    sk_pool_free(p);

    /* an image directory replaced after its sandboxes were made */
    char img[] = "/var/tmp/skiff-test-pool-img-XXXXXX";
    ASSERT_TRUE(mkdtemp(img) != NULL);
    struct sk_pool_key_config ikey = {.image = img, .min = 3};
    p = new_pool(rt, &ikey, 1, 4, 0);
    wait_ready(p);
    char old[PATH_MAX];
    snprintf(old, sizeof(old), "%s.old", img);
    ASSERT_TRUE(rename(img, old) == 0);
    ASSERT_TRUE(mkdir(img, 0755) == 0);
    struct sk_sandbox_spec ispec = {.persistent = true, .image = img};
    ASSERT_EQ_INT(sk_pool_claim(p, &ispec, &sb, &err), 0);
    char text[SK_POOL_KEY_MAX];
    sk_pool_key_format(img, 0, SK_NET_NONE, text, sizeof(text));
    /* all three were made from the old directory: all are thrown away */
    ASSERT_EQ_INT(stats_of(p, text).discarded, 3);
    /* the refill makes one from the new directory, which is handed out */
    wait_ready(p);
    ASSERT_EQ_INT(sk_pool_claim(p, &ispec, &sb, &err), 1);
    struct sk_file_stat fst; /* an empty rootfs has no programs: its init answers */
    ASSERT_OK(sk_agent_stat(sk_sandbox_agent(sb), "/", true, &fst, &err));
    sk_sandbox_free(sb);
    sk_pool_free(p);
    rmdir(img);
    rmdir(old);
    ASSERT_EQ_INT(count_groups(rt), 0);
    sk_runtime_free(rt);
}

TEST(a_crashed_owners_pool_is_swept_at_the_next_start)
{
    int pipefd[2];
    ASSERT_TRUE(pipe(pipefd) == 0);
    pid_t child = fork();
    ASSERT_TRUE(child >= 0);
    if (child == 0) {
        close(pipefd[0]);
        struct sk_runtime *rt = new_runtime();
        struct sk_pool_key_config key = {.image = "host", .min = 3};
        struct sk_pool *p = new_pool(rt, &key, 1, 4, 0);
        if (!sk_pool_wait_ready(p, 30000))
            _exit(3);
        if (write(pipefd[1], "x", 1) != 1)
            _exit(4);
        pause(); /* killed with the pool full */
        _exit(0);
    }
    close(pipefd[1]);
    char c;
    ASSERT_EQ_INT(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    struct sk_runtime *rt = new_runtime(); /* its start sweeps what nobody owns */
    ASSERT_EQ_INT(count_groups(rt), 0);
    ASSERT_EQ_INT(count_dir(POOL_STATE_DIR "/sandboxes"), 0);
    ASSERT_EQ_INT(count_dir(POOL_STATE_DIR "/locks"), 0);
    sk_runtime_free(rt);
}

TEST(bad_pool_configs_are_refused)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_pool *p = NULL;
    struct sk_error err = {0};
    struct sk_pool_key_config rel = {.image = "relative/path", .min = 1};
    struct sk_pool_config cfg = {.keys = &rel, .n_keys = 1};
    ASSERT_EQ_INT(sk_pool_new(rt, &cfg, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "absolute rootfs path");
    struct sk_pool_key_config big = {.image = "host", .min = 9, .max = 2};
    cfg.keys = &big;
    ASSERT_EQ_INT(sk_pool_new(rt, &cfg, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "min 9 is above max 2");
    struct sk_pool_key_config tiny = {.image = "host", .disk_bytes = 1000, .min = 1};
    cfg.keys = &tiny;
    ASSERT_EQ_INT(sk_pool_new(rt, &cfg, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "disk must be at least 1 MiB");
    struct sk_pool_key_config twice[] = {{.image = "host", .min = 1}, {.image = "host", .min = 2}};
    cfg.keys = twice;
    cfg.n_keys = 2;
    ASSERT_EQ_INT(sk_pool_new(rt, &cfg, &p, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "configured twice");
    ASSERT_TRUE(p == NULL);
    sk_runtime_free(rt);
}
