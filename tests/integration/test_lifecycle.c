/* Sandbox lifecycle through libskiff: create, exec, file operations through
 * skiff-init, teardown without leaks, and clean-up after a crashed owner. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "base/util.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"
#include "sandbox_test.h"

static struct sk_runtime *new_runtime(void)
{
    char init[PATH_MAX];
    snprintf(init, sizeof(init), "%s/skiff-init", sk_test_bin_dir());
    struct sk_runtime_config cfg = {.state_dir = TEST_STATE_DIR, .init_path = init};
    struct sk_runtime *rt = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_runtime_new(&cfg, &rt, &err));
    return rt;
}

/* run_to_end - exec argv, collect stdout, wait for its exit event. */
static int run_to_end(struct sk_sandbox *sb, const char *const *argv, char *out, size_t cap)
{
    struct sk_error err = {0};
    struct sk_agent_spawn s = {.argv = argv};
    struct sk_agent_proc p;
    ASSERT_OK(sk_sandbox_exec(sb, &s, &p, &err));
    size_t n = 0;
    for (;;) {
        ssize_t r = read(p.stdout_fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    struct sk_agent_event ev;
    int r = sk_agent_next_event(sk_sandbox_agent(sb), &ev, 10000, &err);
    ASSERT_EQ_INT(r, 1);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    sk_close(&p.stdout_fd);
    sk_close(&p.stderr_fd);
    sk_close(&p.stdin_fd);
    return ev.exit_code;
}

TEST(exec_and_usage)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_sandbox_spec spec = {.limits = {.memory_bytes = 128 << 20}};
    struct sk_sandbox *sb = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    char out[4096];
    const char *const argv[] = {"/bin/sh", "-c", "echo $HOME $PATH; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
                                NULL};
    ASSERT_EQ_INT(run_to_end(sb, argv, out, sizeof(out)), 0);
    ASSERT_CONTAINS(out, "/root /usr/local/sbin");
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_sandbox_usage(sb, &u, &err));
    ASSERT_GT_INT(u.cpu_usec, 0);
    ASSERT_GT_INT(u.memory_current, 0);
    ASSERT_GE_INT(u.memory_peak, u.memory_current);
    sk_sandbox_free(sb);
    sk_runtime_free(rt);
}

/* Symlinks planted inside the sandbox cannot make a file operation reach
 * the host: resolution happens in skiff-init, inside the sandbox root. */
TEST(planted_symlink_cannot_reach_host_files)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_sandbox_spec spec = {0};
    struct sk_sandbox *sb = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    char *before = NULL;
    size_t before_len = 0;
    ASSERT_OK(sk_read_file_at(AT_FDCWD, "/etc/passwd", 1 << 20, &before, &before_len, &err));
    char out[256];
    const char *const argv[] = {"/bin/sh", "-c",
                                "ln -s /etc/passwd /tmp/evil && ln -s ../../../../../../etc/passwd /tmp/evil2 && "
                                "ln -s /proc/1/root/etc/passwd /tmp/evil3",
                                NULL};
    ASSERT_EQ_INT(run_to_end(sb, argv, out, sizeof(out)), 0);
    struct sk_agent *a = sk_sandbox_agent(sb);
    const char *targets[] = {"/tmp/evil", "/tmp/evil2", "/tmp/evil3", "/../../../etc/passwd"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(targets); i++) {
        /* reading follows the link only within the sandbox: the sandbox's
         * own passwd, which lacks the host's daemon accounts */
        char *data = NULL;
        size_t len = 0;
        if (sk_agent_read_file(a, targets[i], 0, 1 << 20, &data, &len, &err) == 0) {
            ASSERT_NOT_CONTAINS(data, "daemon:");
            free(data);
        }
        sk_agent_write_file(a, targets[i], "pwned\n", 6, 0644, &err);
        sk_agent_remove(a, targets[i], false, &err);
    }
    char *after = NULL;
    size_t after_len = 0;
    ASSERT_OK(sk_read_file_at(AT_FDCWD, "/etc/passwd", 1 << 20, &after, &after_len, &err));
    ASSERT_EQ_INT(after_len, before_len);
    ASSERT_TRUE(memcmp(before, after, before_len) == 0);
    ASSERT_NOT_CONTAINS(after, "pwned");
    free(before);
    free(after);
    sk_sandbox_free(sb);
    sk_runtime_free(rt);
}

TEST(file_operations_through_skiff_init)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_sandbox_spec spec = {0};
    struct sk_sandbox *sb = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    struct sk_agent *a = sk_sandbox_agent(sb);
    ASSERT_OK(sk_agent_mkdir(a, "/work/src/pkg", 0755, true, &err));
    ASSERT_OK(sk_agent_write_file(a, "/work/src/pkg/main.py", "print('hi')\n", 12, 0644, &err));
    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(a, "/work/src/pkg/main.py", true, &st, &err));
    ASSERT_EQ_INT(st.type, 'f');
    ASSERT_EQ_INT(st.size, 12);
    ASSERT_EQ_INT(st.uid, 0);
    ASSERT_OK(sk_agent_rename(a, "/work/src/pkg/main.py", "/work/src/pkg/app.py", &err));
    char out[256];
    const char *const argv[] = {"/bin/cat", "/work/src/pkg/app.py", NULL};
    ASSERT_EQ_INT(run_to_end(sb, argv, out, sizeof(out)), 0);
    ASSERT_EQ_STR(out, "print('hi')\n");
    struct sk_file_entry *ents = NULL;
    size_t n = 0;
    ASSERT_OK(sk_agent_list(a, "/work", true, &ents, &n, &err));
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strstr(ents[i].path, "src/pkg/app.py"))
            found = true;
    ASSERT_TRUE(found);
    sk_file_entries_free(ents, n);
    ASSERT_OK(sk_agent_remove(a, "/work", true, &err));
    ASSERT_TRUE(sk_agent_stat(a, "/work", false, &st, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    sk_sandbox_free(sb);
    sk_runtime_free(rt);
}

static int count_lines(const char *path)
{
    char *data = NULL;
    struct sk_error err = {0};
    if (sk_read_file_at(AT_FDCWD, path, 16 << 20, &data, NULL, &err) < 0)
        FAIL("%s", err.msg);
    int n = 0;
    for (char *p = data; *p; p++)
        n += *p == '\n';
    free(data);
    return n;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static long rss_kib(void)
{
    char *data = NULL;
    struct sk_error err = {0};
    if (sk_read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &data, NULL, &err) < 0)
        FAIL("%s", err.msg);
    const char *p = strstr(data, "VmRSS:");
    long v = p ? strtol(p + 6, NULL, 10) : -1;
    free(data);
    return v;
}

/* No leaks: 500 create/destroy cycles leave the mount table, the cgroup
 * directories, our open fds and our memory where they started. */
TEST_TIMEOUT(no_leaks_over_500_cycles, 300)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_error err = {0};
    struct sk_sandbox_spec spec = {.limits = {.memory_bytes = 64 << 20, .pids = 64, .cpu = 1}};
    /* warm up allocator and skeleton */
    for (int i = 0; i < 5; i++) {
        struct sk_sandbox *sb = NULL;
        ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
        sk_sandbox_free(sb);
    }
    int mounts0 = count_lines("/proc/self/mountinfo");
    int host_mounts0 = count_lines("/proc/1/mountinfo");
    int cgroups0 = sk_cgroup_count_children(sk_runtime_cgroups(rt), "sb-", &err);
    int fds0 = count_fds();
    long rss0 = rss_kib();
    for (int i = 0; i < 500; i++) {
        struct sk_sandbox *sb = NULL;
        ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
        if (i % 50 == 0) {
            char out[64];
            const char *const argv[] = {"/bin/true", NULL};
            ASSERT_EQ_INT(run_to_end(sb, argv, out, sizeof(out)), 0);
        }
        sk_sandbox_free(sb);
    }
    ASSERT_EQ_INT(count_lines("/proc/self/mountinfo"), mounts0);
    ASSERT_EQ_INT(count_lines("/proc/1/mountinfo"), host_mounts0);
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(rt), "sb-", &err), cgroups0);
    ASSERT_EQ_INT(count_fds(), fds0);
#ifndef __SANITIZE_ADDRESS__
    /* Under ASan freed memory sits in its quarantine, so RSS says nothing;
     * there LeakSanitizer checks every test instead (see harness.c). */
    ASSERT_LT_INT(rss_kib() - rss0, 2048);
#else
    (void)rss0;
#endif
    /* nothing left in the state dir but the long-lived entries */
    char locks[PATH_MAX];
    snprintf(locks, sizeof(locks), "%s/locks", TEST_STATE_DIR);
    DIR *d = opendir(locks);
    struct dirent *de;
    int left = 0;
    while ((de = readdir(d)) != NULL)
        left += de->d_name[0] != '.';
    closedir(d);
    ASSERT_EQ_INT(left, 0);
    sk_runtime_free(rt);
}

/* A crash of the owning process leaves nothing that the next start cannot
 * find and clean: its cgroup and processes are removed. */
TEST(crashed_owner_is_cleaned_up_by_next_start)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    struct sk_runtime *observer = new_runtime();
    struct sk_error err = {0};
    int pipefd[2];
    ASSERT_EQ_INT(pipe(pipefd), 0);
    pid_t owner = fork();
    if (owner == 0) {
        struct sk_runtime *rt = new_runtime();
        struct sk_sandbox_spec spec = {.die_with_owner = false};
        struct sk_sandbox *sb = NULL;
        if (sk_sandbox_create(rt, &spec, &sb, &err) < 0)
            _exit(2);
        char line[64];
        int n = snprintf(line, sizeof(line), "%d %s\n", (int)sk_sandbox_pid(sb), sk_sandbox_id(sb));
        if (write(pipefd[1], line, (size_t)n) != n)
            _exit(3);
        raise(SIGKILL); /* crash without any teardown */
    }
    close(pipefd[1]);
    char line[64] = {0};
    ASSERT_GT_INT(read(pipefd[0], line, sizeof(line) - 1), 0);
    int status;
    waitpid(owner, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    int sb_pid = 0;
    char id[40] = {0};
    ASSERT_EQ_INT(sscanf(line, "%d %39s", &sb_pid, id), 2);
    ASSERT_EQ_INT(kill(sb_pid, 0), 0);     /* the orphaned sandbox still runs */
    struct sk_runtime *rt = new_runtime(); /* the next start cleans up */
    /* reap the orphan (we are its subreaper) and check it is gone */
    for (int i = 0; i < 200 && kill(sb_pid, 0) == 0; i++) {
        waitpid(sb_pid, NULL, WNOHANG);
        usleep(10000);
    }
    ASSERT_NE_INT(kill(sb_pid, 0), 0);
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(observer), id, &err), 0);
    struct stat st;
    char lock[PATH_MAX];
    snprintf(lock, sizeof(lock), "%s/locks/%s.lock", TEST_STATE_DIR, id);
    ASSERT_NE_INT(stat(lock, &st), 0);
    sk_runtime_free(rt);
    sk_runtime_free(observer);
}

/* Runtimes with different state dirs never clean up each other's live
 * sandboxes, even when they share a cgroup parent and both sweep for stale
 * sandboxes at start. */
TEST(other_state_dirs_sandboxes_are_left_alone)
{
    char init[PATH_MAX];
    snprintf(init, sizeof(init), "%s/skiff-init", sk_test_bin_dir());
    struct sk_runtime_config a = {.state_dir = TEST_STATE_DIR, .init_path = init, .cgroup_parent = "skiff-shared-test"};
    struct sk_runtime_config b = a;
    b.state_dir = TEST_STATE_DIR "-other";
    struct sk_error err = {0};
    struct sk_runtime *rt = NULL, *rt2 = NULL;
    ASSERT_OK(sk_runtime_new(&a, &rt, &err));
    struct sk_sandbox_spec spec = {0};
    struct sk_sandbox *sb = NULL;
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    ASSERT_OK(sk_runtime_new(&b, &rt2, &err));
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(rt2), sk_sandbox_id(sb), &err), 1);
    char out[64];
    const char *const argv[] = {"/bin/echo", "alive", NULL};
    ASSERT_EQ_INT(run_to_end(sb, argv, out, sizeof(out)), 0);
    ASSERT_EQ_STR(out, "alive\n");
    sk_runtime_free(rt2);
    sk_sandbox_free(sb);
    sk_runtime_free(rt);
}

TEST(owner_exit_kills_sandbox_when_die_with_owner)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int pipefd[2];
    ASSERT_EQ_INT(pipe(pipefd), 0);
    pid_t owner = fork();
    if (owner == 0) {
        struct sk_runtime *rt = new_runtime();
        struct sk_sandbox_spec spec = {.die_with_owner = true};
        struct sk_sandbox *sb = NULL;
        struct sk_error err = {0};
        if (sk_sandbox_create(rt, &spec, &sb, &err) < 0)
            _exit(2);
        int pid = (int)sk_sandbox_pid(sb);
        if (write(pipefd[1], &pid, sizeof(pid)) != sizeof(pid))
            _exit(3);
        raise(SIGKILL);
    }
    close(pipefd[1]);
    int sb_pid = 0;
    ASSERT_EQ_INT(read(pipefd[0], &sb_pid, sizeof(sb_pid)), sizeof(sb_pid));
    waitpid(owner, NULL, 0);
    for (int i = 0; i < 200 && kill(sb_pid, 0) == 0; i++) {
        waitpid(sb_pid, NULL, WNOHANG);
        usleep(10000);
    }
    ASSERT_NE_INT(kill(sb_pid, 0), 0);
}

TEST(bad_specs_are_rejected_with_clear_errors)
{
    struct sk_runtime *rt = new_runtime();
    struct sk_error err = {0};
    struct sk_sandbox *sb = NULL;
    struct sk_sandbox_spec s1 = {.limits = {.memory_bytes = 1024}};
    ASSERT_TRUE(sk_sandbox_create(rt, &s1, &sb, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_CONTAINS(err.msg, "memory");
    struct sk_sandbox_spec s2 = {.image = "relative/rootfs"};
    ASSERT_TRUE(sk_sandbox_create(rt, &s2, &sb, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    struct sk_sandbox_spec s3 = {.image = "/nonexistent/rootfs"};
    ASSERT_TRUE(sk_sandbox_create(rt, &s3, &sb, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    struct sk_mount_spec m = {.source = "/tmp", .target = "/data/../etc"};
    struct sk_sandbox_spec s4 = {.mounts = &m, .n_mounts = 1};
    ASSERT_TRUE(sk_sandbox_create(rt, &s4, &sb, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_CONTAINS(err.msg, "..");
    struct sk_sandbox_spec s5 = {.hostname = "bad host!"};
    ASSERT_TRUE(sk_sandbox_create(rt, &s5, &sb, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    /* a failed create leaves no cgroup behind */
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(rt), "sb-", &err), 0);
    sk_runtime_free(rt);
}

/* An image whose mount point is a symlink must not redirect a host-root
 * mount: creation fails instead. */
TEST(image_symlink_mountpoint_is_refused)
{
    char dir[] = "/var/tmp/skiff-img-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/dev", dir);
    ASSERT_EQ_INT(symlink("/etc", path), 0);
    struct sk_runtime *rt = new_runtime();
    struct sk_error err = {0};
    struct sk_sandbox *sb = NULL;
    struct sk_sandbox_spec spec = {.image = dir};
    ASSERT_TRUE(sk_sandbox_create(rt, &spec, &sb, &err) < 0);
    ASSERT_CONTAINS(err.msg, "symlink");
    sk_runtime_free(rt);
    unlink(path);
    rmdir(dir);
}

/* On cgroup v2 the sandbox is born in its cgroup (clone3 CLONE_INTO_CGROUP).
 * This host's cgroup2 mount has no controllers, so the v2 driver is forced
 * there and the sandbox runs without limits. */
TEST(cgroup_v2_sandbox_is_born_in_its_cgroup)
{
    if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) != 0 &&
        access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0)
        SKIP("no cgroup2 hierarchy mounted");
    setenv("SKIFF_CGROUP_DRIVER", "v2", 1);
    struct sk_runtime *rt = new_runtime();
    ASSERT_EQ_INT(sk_cgroup_system_driver(sk_runtime_cgroups(rt)), SK_CGROUP_V2);
    struct sk_error err = {0};
    struct sk_sandbox_spec spec = {0};
    struct sk_sandbox *sb = NULL;
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    char path[64], *data = NULL;
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)sk_sandbox_pid(sb));
    ASSERT_OK(sk_read_file_at(AT_FDCWD, path, 1 << 16, &data, NULL, &err));
    char want[64];
    snprintf(want, sizeof(want), "/%s\n", sk_sandbox_id(sb));
    const char *v2 = strstr(data, "0::/");
    ASSERT_TRUE(v2 != NULL);
    ASSERT_CONTAINS(v2, want);
    free(data);
    char out[64];
    const char *const argv[] = {"/bin/echo", "v2", NULL};
    ASSERT_EQ_INT(run_to_end(sb, argv, out, sizeof(out)), 0);
    ASSERT_EQ_STR(out, "v2\n");
    sk_sandbox_free(sb);
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(rt), "sb-", &err), 0);
    sk_runtime_free(rt);
}

/* The state dir is spliced into overlayfs options: separators are refused. */
TEST(state_dir_with_option_separators_is_refused)
{
    struct sk_runtime_config cfg = {.state_dir = "/var/tmp/skiff,upperdir=/etc"};
    struct sk_runtime *rt = NULL;
    struct sk_error err = {0};
    ASSERT_TRUE(sk_runtime_new(&cfg, &rt, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_CONTAINS(err.msg, "state dir");
    struct sk_runtime_config rel = {.state_dir = "relative/dir"};
    ASSERT_TRUE(sk_runtime_new(&rel, &rt, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
}

/* uid ranges are host-wide: a runtime with another state dir never hands
 * out a range that this one holds. Deterministic: the other runtime takes
 * every free range and must miss exactly ours. */
TEST(uid_ranges_are_exclusive_across_state_dirs)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < SK_UID_SLOTS + 64)
        SKIP("RLIMIT_NOFILE hard limit %llu is below the %u ranges this test holds open",
             (unsigned long long)rl.rlim_max, SK_UID_SLOTS);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    struct sk_runtime *a = new_runtime();
    char init[PATH_MAX];
    snprintf(init, sizeof(init), "%s/skiff-init", sk_test_bin_dir());
    struct sk_runtime_config other = {.state_dir = TEST_STATE_DIR "-ranges", .init_path = init};
    struct sk_runtime *b = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_runtime_new(&other, &b, &err));
    struct sk_idrange mine;
    ASSERT_OK(sk_runtime_acquire_range(a, &mine, &err));
    static struct sk_idrange taken[SK_UID_SLOTS];
    size_t n = 0;
    while (n < SK_UID_SLOTS && sk_runtime_acquire_range(b, &taken[n], &err) == 0) {
        ASSERT_NE_INT(taken[n].slot, mine.slot);
        n++;
    }
    /* every other range was free (nothing else runs sandboxes meanwhile,
     * or holds a few: those are missed too, never ours) */
    ASSERT_GT_INT(n, SK_UID_SLOTS - 64);
    ASSERT_EQ_INT(err.code, EAGAIN);
    for (size_t i = 0; i < n; i++)
        sk_runtime_release_range(b, &taken[i]);
    sk_runtime_release_range(a, &mine);
    sk_runtime_free(b);
    sk_runtime_free(a);
}
