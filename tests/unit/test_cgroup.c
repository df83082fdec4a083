/* test_cgroup.c - the cgroup drivers against the real kernel.
 *
 * Each test works under its own parent "skiff-test-<pid>" and removes it at
 * the end; parents left by a test that died (its pid gone) are swept at the
 * start of the next one. Paths and expected values are worked out here
 * independently of the library (mountinfo, /proc/<pid>/cgroup, reading the
 * control files back), so a wrong driver choice or a limit that was never
 * written makes a test fail. Needs root.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "runtime/cgroup.h"

#define MiB (1024LL * 1024LL)

static char parent[64];
static struct sk_cgroup_system *sys;
static struct sk_error err;

/* ---- host facts, found without the library ---------------------------- */

static bool is_fs(const char *path, unsigned long magic)
{
    struct statfs s;
    return statfs(path, &s) == 0 && (unsigned long)s.f_type == magic;
}

static bool read_text(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = sk_read_all(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* read_trim - a one-line control file, trailing newline dropped. */
static const char *read_trim(const char *path, char *buf, size_t size)
{
    if (!read_text(path, buf, size))
        FAIL("cannot read '%s': %s", path, strerror(errno));
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* mountinfo_fstype - the fs type mounted (last) at `point`, or "". */
static void mountinfo_fstype(const char *point, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return;
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        char mnt[1024], type[64];
        const char *dash = strstr(line, " - ");
        if (dash == NULL || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 || sscanf(dash, " - %63s", type) != 1)
            continue;
        if (strcmp(mnt, point) == 0)
            snprintf(out, size, "%s", type);
    }
    fclose(f);
}

static enum sk_cgroup_driver expected_auto_driver(void)
{
    char type[64], ctrls[1024];
    mountinfo_fstype("/sys/fs/cgroup", type, sizeof(type));
    if (strcmp(type, "cgroup2") == 0 && read_text("/sys/fs/cgroup/cgroup.controllers", ctrls, sizeof(ctrls)) &&
        strstr(ctrls, "memory") != NULL)
        return SK_CGROUP_V2;
    mountinfo_fstype("/sys/fs/cgroup/memory", type, sizeof(type));
    if (strcmp(type, "cgroup") == 0)
        return SK_CGROUP_V1;
    return 0;
}

/* v2_root - where a (possibly forced) v2 driver must work. */
static const char *v2_root(void)
{
    if (is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC))
        return "/sys/fs/cgroup";
    if (is_fs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC))
        return "/sys/fs/cgroup/unified";
    return NULL;
}

static const char *const v1_ctrls[] = {"memory", "cpu", "cpuacct", "pids", "freezer"};

/* group_paths - every directory the group must have: one per distinct v1
 * hierarchy (co-mounted cpu,cpuacct counts once), or the one v2 directory. */
static size_t group_paths(const char *name, char out[][PATH_MAX], size_t max)
{
    size_t n = 0;
    if (sk_cgroup_system_driver(sys) == SK_CGROUP_V2) {
        snprintf(out[n++], PATH_MAX, "%s/%s/%s", v2_root(), parent, name);
        return n;
    }
    dev_t seen[SK_ARRAY_SIZE(v1_ctrls)];
    size_t n_seen = 0;
    for (size_t i = 0; i < SK_ARRAY_SIZE(v1_ctrls) && n < max; i++) {
        char base[PATH_MAX];
        struct stat st;
        snprintf(base, sizeof(base), "/sys/fs/cgroup/%s", v1_ctrls[i]);
        if (!is_fs(base, 0x27e0eb) || stat(base, &st) < 0)
            continue;
        bool dup = false;
        for (size_t j = 0; j < n_seen; j++)
            dup = dup || seen[j] == st.st_dev;
        if (dup)
            continue;
        seen[n_seen++] = st.st_dev;
        snprintf(out[n++], PATH_MAX, "%s/%s/%s", base, parent, name);
    }
    return n;
}

/* ctrl_file - path of a control file of the group: v1 in the hierarchy named
 * for `ctrl` (a symlink on co-mounted layouts), v2 in the one directory. */
static const char *ctrl_file(const char *ctrl, const char *name, const char *file, char *buf, size_t size)
{
    if (sk_cgroup_system_driver(sys) == SK_CGROUP_V2)
        snprintf(buf, size, "%s/%s/%s/%s", v2_root(), parent, name, file);
    else
        snprintf(buf, size, "/sys/fs/cgroup/%s/%s/%s/%s", ctrl, parent, name, file);
    return buf;
}

static const char *read_ctrl(const char *ctrl, const char *name, const char *file)
{
    static char val[4096];
    char path[PATH_MAX];
    return read_trim(ctrl_file(ctrl, name, file, path, sizeof(path)), val, sizeof(val));
}

/* ---- set-up and tear-down --------------------------------------------- */

/* remove_parent - rmdir the test parent wherever it may exist; returns the
 * number of directories that could not be removed. */
static int remove_parent(const char *p)
{
    static const char *const bases[] = {"memory",      "cpu",         "cpuacct", "pids", "freezer",
                                        "cpu,cpuacct", "cpuacct,cpu", "unified", NULL};
    int failed = 0;
    char path[PATH_MAX];
    for (size_t i = 0; i < SK_ARRAY_SIZE(bases); i++) {
        if (bases[i] != NULL)
            snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s", bases[i], p);
        else
            snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", p);
        if (rmdir(path) < 0 && errno != ENOENT && errno != ENOTDIR) {
            fprintf(stderr, "    cannot remove '%s': %s\n", path, strerror(errno));
            failed++;
        }
    }
    return failed;
}

/* sweep_dead - remove parents that earlier runs, now dead, left behind. */
static void sweep_dead(const char *base, const char *driver)
{
    DIR *d = opendir(base);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = 0;
        char tail = 0;
        if (sscanf(e->d_name, "skiff-test-%d%c", &pid, &tail) != 1 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        struct sk_cgroup_system *old = NULL;
        struct sk_error e2 = {0};
        setenv("SKIFF_CGROUP_DRIVER", driver, 1);
        if (sk_cgroup_system_detect(e->d_name, &old, &e2) == 0) {
            (void)sk_cgroup_cleanup_stale(old, "", NULL, NULL, &e2);
            sk_cgroup_system_free(old);
        }
        unsetenv("SKIFF_CGROUP_DRIVER");
        (void)remove_parent(e->d_name);
    }
    closedir(d);
}

static void setup_with(const char *driver)
{
    if (geteuid() != 0)
        SKIP("cgroup tests need root");
    if (is_fs("/sys/fs/cgroup/memory", 0x27e0eb))
        sweep_dead("/sys/fs/cgroup/memory", "v1");
    if (v2_root() != NULL)
        sweep_dead(v2_root(), "v2");
    snprintf(parent, sizeof(parent), "skiff-test-%d", (int)getpid());
    /* Orphaned grandchildren must come to us to be reaped: pids.current
     * counts zombies, and pid 1 on some hosts never reaps them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (driver != NULL)
        setenv("SKIFF_CGROUP_DRIVER", driver, 1);
    else
        unsetenv("SKIFF_CGROUP_DRIVER");
    ASSERT_OK(sk_cgroup_system_detect(parent, &sys, &err));
}

static void setup(void)
{
    setup_with(NULL);
}

/* finish - remove every group left under the parent, then the parent. */
static void finish(void)
{
    int r = sk_cgroup_cleanup_stale(sys, "", NULL, NULL, &err);
    ASSERT_OK(r);
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "", &err), 0);
    sk_cgroup_system_free(sys);
    sys = NULL;
    ASSERT_EQ_INT(remove_parent(parent), 0);
    /* Everything we started is dead now; reap the orphans we adopted so no
     * zombie outlives the test (pid 1 may never reap it). */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* ---- child processes -------------------------------------------------- */

enum child_job { JOB_SLEEP, JOB_SLEEP_WITH_GRANDCHILD, JOB_OOM, JOB_FORK_BOMB, JOB_BUSY_1S };

static void sleep_forever(void)
{
    for (;;)
        pause();
}

/* Reports (successful forks, errno of the first failure) through `out`,
 * then holds the group full until killed. */
static void fork_until_refused(int out)
{
    int done = 0, failure = 0;
    for (int i = 0; i < 64; i++) {
        pid_t p = fork();
        if (p == 0)
            sleep_forever();
        if (p < 0) {
            failure = errno;
            break;
        }
        done++;
    }
    int msg[2] = {done, failure};
    if (write(out, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
        _exit(3);
    sleep_forever();
}

static void run_job(enum child_job job, int out)
{
    switch (job) {
    case JOB_SLEEP: sleep_forever(); break;
    case JOB_SLEEP_WITH_GRANDCHILD:
        if (fork() == 0)
            sleep_forever(); /* the test cannot wait for this one: only kill finds it */
        sleep_forever();
        break;
    case JOB_OOM: {
        size_t size = 256 * MiB;
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(2);
        for (size_t off = 0; off < size; off += 4096)
            p[off] = 1;
        _exit(0); /* reaching here means the limit did not hold */
    }
    case JOB_FORK_BOMB: fork_until_refused(out); break;
    case JOB_BUSY_1S: {
        int64_t end = sk_now_ns() + 1000LL * 1000 * 1000;
        volatile unsigned long spin = 0;
        while (sk_now_ns() < end)
            spin++;
        _exit(0);
    }
    }
    _exit(0);
}

/* spawn - fork a child that enters `cg` itself (sk_cgroup_enter(cg, 0)),
 * reports that through a pipe, then runs `job`. *report gets the read end
 * of the job's own output pipe when non-NULL. */
static pid_t spawn(const struct sk_cgroup *cg, enum child_job job, int *report)
{
    int ready[2], out[2];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        FAIL("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct sk_error e = {0};
        char ok = sk_cgroup_enter(cg, 0, &e) == 0 ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1 || ok != 'y') {
            if (ok != 'y' && write(ready[1], e.msg, strlen(e.msg)) < 0)
                _exit(4);
            _exit(3);
        }
        close(ready[1]);
        run_job(job, out[1]);
    }
    close(ready[1]);
    close(out[1]);
    char buf[SK_ERROR_MSG_MAX + 1] = "";
    ssize_t n = sk_read_all(ready[0], buf, sizeof(buf) - 1);
    close(ready[0]);
    if (n < 1 || buf[0] != 'y')
        FAIL("child could not enter the cgroup: %s", n > 1 ? buf + 1 : "(no report)");
    if (report != NULL)
        *report = out[0];
    else
        close(out[0]);
    return pid;
}

static int wait_status(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            FAIL("waitpid %d: %s", (int)pid, strerror(errno));
    return status;
}

static void assert_sigkilled(pid_t pid)
{
    int status = wait_status(pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        FAIL("pid %d: expected death by SIGKILL, status 0x%x", (int)pid, status);
}

/* reap_all - wait for every child left (all must be dead or dying). */
static void reap_all(void)
{
    while (waitpid(-1, NULL, 0) >= 0 || errno == EINTR)
        ;
}

/* assert_in_group - /proc/<pid>/cgroup names <parent>/<name> in every
 * hierarchy the driver uses (the "0::" line on v2). */
static void assert_in_group(pid_t pid, const char *name)
{
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    if (!read_text(path, text, sizeof(text)))
        FAIL("cannot read '%s'", path);
    if (sk_cgroup_system_driver(sys) == SK_CGROUP_V2) {
        char line[300];
        snprintf(line, sizeof(line), "0::/%s/%s\n", parent, name);
        ASSERT_CONTAINS(text, line);
        return;
    }
    /* Lines look like "4:memory:/path" or "2:cpu,cpuacct:/path". */
    int matched = 0;
    for (char *l = strtok(text, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        char ctrls[128], where[300];
        if (sscanf(l, "%*d:%127[^:]:%299s", ctrls, where) != 2)
            continue;
        char padded[140];
        snprintf(padded, sizeof(padded), ",%s,", ctrls);
        for (size_t i = 0; i < SK_ARRAY_SIZE(v1_ctrls); i++) {
            char word[32], want[300];
            snprintf(word, sizeof(word), ",%s,", v1_ctrls[i]);
            if (strstr(padded, word) == NULL)
                continue;
            snprintf(want, sizeof(want), "/%s/%s", parent, name);
            if (strcmp(where, want) != 0)
                FAIL("pid %d is in %s:%s, not in '%s'", (int)pid, ctrls, where, want);
            matched++;
        }
    }
    ASSERT_EQ_INT(matched, 5); /* memory, cpu, cpuacct, pids, freezer */
}

/* ---- tests ------------------------------------------------------------ */

/* Detection follows the host: v2 only when /sys/fs/cgroup is cgroup2 with the
 * memory controller, else v1 (this project's CI hosts are hybrid, so v1), and
 * says so in an info log line. */
TEST(detect_picks_the_host_driver_and_logs_it)
{
    enum sk_cgroup_driver want = expected_auto_driver();
    if (want == 0)
        SKIP("host has neither cgroup2 with memory at /sys/fs/cgroup nor cgroup v1 memory");
    if (geteuid() != 0)
        SKIP("cgroup tests need root");
    unsetenv("SKIFF_CGROUP_DRIVER");
    snprintf(parent, sizeof(parent), "skiff-test-%d", (int)getpid());

    /* Capture the log line. */
    int mfd = memfd_create("log", MFD_CLOEXEC);
    ASSERT_GE_INT(mfd, 0);
    int saved = dup(STDERR_FILENO);
    dup2(mfd, STDERR_FILENO);
    sk_log_set_level(SK_LOG_INFO);
    int r = sk_cgroup_system_detect(parent, &sys, &err);
    sk_log_set_level(SK_LOG_WARN);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char log[4096] = "";
    ssize_t n = pread(mfd, log, sizeof(log) - 1, 0);
    ASSERT_GE_INT(n, 0);
    close(mfd);
    ASSERT_OK(r);

    ASSERT_EQ_STR(sk_cgroup_driver_name(sk_cgroup_system_driver(sys)), sk_cgroup_driver_name(want));
    char line[64];
    snprintf(line, sizeof(line), "info: cgroup driver '%s'", sk_cgroup_driver_name(want));
    ASSERT_CONTAINS(log, line);
    ASSERT_CONTAINS(log, parent);
    /* The parent exists in every hierarchy, with no children yet. */
    char paths[8][PATH_MAX];
    size_t np = group_paths("", paths, 8);
    ASSERT_GE_INT(np, want == SK_CGROUP_V1 ? 5 : 1);
    for (size_t i = 0; i < np; i++)
        ASSERT_TRUE(path_exists(paths[i]));
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "", &err), 0);
    finish();
}

/* Bad parents and a bad $SKIFF_CGROUP_DRIVER are refused, not guessed at. */
TEST(detect_rejects_bad_input)
{
    static const char *const bad[] = {"", "..", "a//b", "/abs", "a/../b", "with space", "x/"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        struct sk_cgroup_system *s = NULL;
        ASSERT_EQ_INT(sk_cgroup_system_detect(bad[i], &s, &err), -EINVAL);
        ASSERT_TRUE(s == NULL);
    }
    setenv("SKIFF_CGROUP_DRIVER", "v3", 1);
    struct sk_cgroup_system *s = NULL;
    ASSERT_EQ_INT(sk_cgroup_system_detect("skiff-test-never", &s, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "SKIFF_CGROUP_DRIVER");
    ASSERT_FALSE(path_exists("/sys/fs/cgroup/memory/skiff-test-never"));
}

/* $SKIFF_CGROUP_DRIVER=v2 picks v2 at /sys/fs/cgroup, or at
 * /sys/fs/cgroup/unified on a hybrid host; =v1 picks v1 where it exists. */
TEST(detect_obeys_forced_driver)
{
    if (v2_root() == NULL)
        SKIP("no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
    setup_with("v2");
    ASSERT_EQ_INT(sk_cgroup_system_driver(sys), SK_CGROUP_V2);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", v2_root(), parent);
    ASSERT_TRUE(path_exists(path));
    finish();

    if (!is_fs("/sys/fs/cgroup/memory", 0x27e0eb)) {
        setenv("SKIFF_CGROUP_DRIVER", "v1", 1);
        ASSERT_EQ_INT(sk_cgroup_system_detect(parent, &sys, &err), -ENOTSUP);
        return;
    }
    setup_with("v1");
    ASSERT_EQ_INT(sk_cgroup_system_driver(sys), SK_CGROUP_V1);
    finish();
}

/* Limits land in the control files, can be raised, lowered and lifted;
 * bad names and bad values are refused and leave nothing behind. */
TEST(limits_are_visible_in_control_files)
{
    setup();
    bool v2 = sk_cgroup_system_driver(sys) == SK_CGROUP_V2;
    struct sk_cgroup_limits lim = {.memory_bytes = 64 * MiB, .cpu = 0.5, .pids = 32};
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "limits", &lim, &cg, &err));
    char path[PATH_MAX];
    bool memsw = !v2 && path_exists(ctrl_file("memory", "limits", "memory.memsw.limit_in_bytes", path, sizeof(path)));
    bool swapmax = v2 && path_exists(ctrl_file("memory", "limits", "memory.swap.max", path, sizeof(path)));
    if (v2) {
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.max"), "67108864");
        if (swapmax)
            ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.swap.max"), "0");
        ASSERT_EQ_STR(read_ctrl("cpu", "limits", "cpu.max"), "50000 100000");
        ASSERT_EQ_STR(read_ctrl("pids", "limits", "pids.max"), "32");
    } else {
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.limit_in_bytes"), "67108864");
        if (memsw)
            ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.memsw.limit_in_bytes"), "67108864");
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.swappiness"), "0");
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.use_hierarchy"), "1");
        ASSERT_EQ_STR(read_ctrl("cpu", "limits", "cpu.cfs_period_us"), "100000");
        ASSERT_EQ_STR(read_ctrl("cpu", "limits", "cpu.cfs_quota_us"), "50000");
        ASSERT_EQ_STR(read_ctrl("pids", "limits", "pids.max"), "32");
    }

    /* Raise (memsw must move first on v1), then lower, then lift. */
    lim = (struct sk_cgroup_limits){.memory_bytes = 256 * MiB, .cpu = 2, .pids = 100};
    ASSERT_OK(sk_cgroup_set_limits(cg, &lim, &err));
    ASSERT_EQ_STR(read_ctrl("memory", "limits", v2 ? "memory.max" : "memory.limit_in_bytes"), "268435456");
    if (memsw)
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.memsw.limit_in_bytes"), "268435456");
    ASSERT_EQ_STR(read_ctrl("cpu", "limits", v2 ? "cpu.max" : "cpu.cfs_quota_us"), v2 ? "200000 100000" : "200000");
    ASSERT_EQ_STR(read_ctrl("pids", "limits", "pids.max"), "100");

    lim = (struct sk_cgroup_limits){.memory_bytes = 16 * MiB, .cpu = 0.001, .pids = 8};
    ASSERT_OK(sk_cgroup_set_limits(cg, &lim, &err));
    ASSERT_EQ_STR(read_ctrl("memory", "limits", v2 ? "memory.max" : "memory.limit_in_bytes"), "16777216");
    if (memsw)
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.memsw.limit_in_bytes"), "16777216");
    /* The quota never goes below 1 ms per period. */
    ASSERT_EQ_STR(read_ctrl("cpu", "limits", v2 ? "cpu.max" : "cpu.cfs_quota_us"), v2 ? "1000 100000" : "1000");

    lim = (struct sk_cgroup_limits){0};
    ASSERT_OK(sk_cgroup_set_limits(cg, &lim, &err));
    if (v2) {
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.max"), "max");
        ASSERT_EQ_STR(read_ctrl("cpu", "limits", "cpu.max"), "max 100000");
    } else {
        /* v1 shows "unlimited" as the largest page-aligned value. */
        ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.limit_in_bytes"), "9223372036854771712");
        if (memsw)
            ASSERT_EQ_STR(read_ctrl("memory", "limits", "memory.memsw.limit_in_bytes"), "9223372036854771712");
        ASSERT_EQ_STR(read_ctrl("cpu", "limits", "cpu.cfs_quota_us"), "-1");
    }
    ASSERT_EQ_STR(read_ctrl("pids", "limits", "pids.max"), "max");

    lim = (struct sk_cgroup_limits){.memory_bytes = -1};
    ASSERT_EQ_INT(sk_cgroup_set_limits(cg, &lim, &err), -EINVAL);
    lim = (struct sk_cgroup_limits){.cpu = -0.5};
    ASSERT_EQ_INT(sk_cgroup_set_limits(cg, &lim, &err), -EINVAL);

    /* A second group of the same name is refused and the first survives. */
    struct sk_cgroup *dup = NULL;
    ASSERT_EQ_INT(sk_cgroup_new(sys, "limits", NULL, &dup, &err), -EEXIST);
    ASSERT_TRUE(dup == NULL);
    char paths[8][PATH_MAX];
    size_t np = group_paths("limits", paths, 8);
    for (size_t i = 0; i < np; i++)
        ASSERT_TRUE(path_exists(paths[i]));

    static const char *const bad[] = {
        "", ".", "..", "a/b", "a b", "x\n", "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        struct sk_cgroup *b = NULL;
        ASSERT_EQ_INT(sk_cgroup_new(sys, bad[i], NULL, &b, &err), -EINVAL);
        ASSERT_TRUE(b == NULL);
    }
    struct sk_cgroup *b = NULL;
    lim = (struct sk_cgroup_limits){.pids = -3};
    ASSERT_EQ_INT(sk_cgroup_new(sys, "badlim", &lim, &b, &err), -EINVAL);
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "", &err), 1);

    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    sk_cgroup_free(cg);
    for (size_t i = 0; i < np; i++)
        ASSERT_FALSE(path_exists(paths[i]));
    finish();
}

/* A forked child that calls sk_cgroup_enter(cg, 0) - and one the parent
 * moves by pid - shows up in the group in every hierarchy. */
TEST(enter_moves_a_forked_child)
{
    setup();
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "enter", NULL, &cg, &err));
    ASSERT_TRUE(sk_cgroup_is_empty(cg));
    ASSERT_EQ_INT(sk_cgroup_v2_fd(cg) >= 0, sk_cgroup_system_driver(sys) == SK_CGROUP_V2);

    pid_t a = spawn(cg, JOB_SLEEP, NULL);
    assert_in_group(a, "enter");
    ASSERT_FALSE(sk_cgroup_is_empty(cg));

    pid_t b = fork();
    if (b == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        sleep_forever();
    }
    ASSERT_GT_INT(b, 0);
    ASSERT_OK(sk_cgroup_enter(cg, b, &err));
    assert_in_group(b, "enter");
    /* A negative pid is refused rather than read as "the caller". */
    ASSERT_EQ_INT(sk_cgroup_enter(cg, -b, &err), -EINVAL);
    ASSERT_EQ_INT(sk_cgroup_enter(cg, -1, &err), -EINVAL);
    char self[64], text[4096];
    snprintf(self, sizeof(self), "/proc/%d/cgroup", (int)getpid());
    ASSERT_TRUE(read_text(self, text, sizeof(text)));
    ASSERT_NOT_CONTAINS(text, "/enter\n");

    struct sk_cgroup_usage u;
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_EQ_INT(u.pids_current, 2);

    /* Entering a group that does not exist any more reports it. */
    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    assert_sigkilled(a);
    assert_sigkilled(b);
    ASSERT_LT_INT(sk_cgroup_enter(cg, getpid(), &err), 0);
    ASSERT_CONTAINS(err.msg, "cgroup.procs");
    sk_cgroup_free(cg);
    finish();
}

/* A child that touches 256 MiB under a 32 MiB limit (swap off) is
 * OOM-killed, and the group counts the kill. */
TEST(memory_limit_oom_kills_the_child)
{
    setup();
    struct sk_cgroup_limits lim = {.memory_bytes = 32 * MiB};
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "oom", &lim, &cg, &err));
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_EQ_INT(u.oom_kills, 0);

    pid_t pid = spawn(cg, JOB_OOM, NULL);
    assert_sigkilled(pid);
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_GE_INT(u.oom_kills, 1);
    ASSERT_GT_INT(u.memory_peak, 16 * MiB);
    ASSERT_LE_INT(u.memory_peak, 32 * MiB);
    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    sk_cgroup_free(cg);
    finish();
}

/* Under pids.max 16 a fork loop stops at 16 tasks with EAGAIN. */
TEST(pids_limit_bounds_a_fork_loop)
{
    setup();
    struct sk_cgroup_limits lim = {.pids = 16};
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "pids", &lim, &cg, &err));
    int report = -1;
    pid_t pid = spawn(cg, JOB_FORK_BOMB, &report);
    int msg[2] = {0, 0};
    ASSERT_EQ_INT(sk_read_all(report, msg, sizeof(msg)), sizeof(msg));
    close(report);
    ASSERT_EQ_INT(msg[0], 15); /* the child itself is the 16th */
    ASSERT_EQ_INT(msg[1], EAGAIN);
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_EQ_INT(u.pids_current, 16);
    ASSERT_OK(sk_cgroup_kill(cg, &err));
    assert_sigkilled(pid);
    reap_all(); /* the 15 orphans, now ours as subreaper */
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_EQ_INT(u.pids_current, 0);
    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    sk_cgroup_free(cg);
    finish();
}

/* With cpu 0.5 a busy loop running for 1 s of wall time gets ~0.5 s of CPU. */
TEST(cpu_quota_halves_a_busy_loop)
{
    setup();
    struct sk_cgroup_limits lim = {.cpu = 0.5};
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "cpu", &lim, &cg, &err));
    pid_t pid = spawn(cg, JOB_BUSY_1S, NULL);
    int status = wait_status(pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_GE_INT(u.cpu_usec, 300000);
    ASSERT_LE_INT(u.cpu_usec, 700000);
    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    sk_cgroup_free(cg);
    finish();
}

/* Kill empties a group of sleepers, including a grandchild nobody waits
 * for, within the bound; destroy removes the group in every hierarchy, and
 * destroy alone also kills what is inside. */
TEST_TIMEOUT(kill_empties_and_destroy_removes, 30)
{
    setup();
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "kill", NULL, &cg, &err));
    pid_t kids[4];
    for (int i = 0; i < 4; i++)
        kids[i] = spawn(cg, i == 0 ? JOB_SLEEP_WITH_GRANDCHILD : JOB_SLEEP, NULL);
    struct sk_cgroup_usage u;
    int64_t deadline = sk_now_ns() + 2000LL * 1000 * 1000;
    do
        ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    while (u.pids_current < 5 && sk_now_ns() < deadline);
    ASSERT_EQ_INT(u.pids_current, 5);
    ASSERT_FALSE(sk_cgroup_is_empty(cg));

    int64_t t0 = sk_now_ns();
    ASSERT_OK(sk_cgroup_kill(cg, &err));
    ASSERT_LT_INT(sk_now_ns() - t0, 2500LL * 1000 * 1000);
    ASSERT_TRUE(sk_cgroup_is_empty(cg));
    for (int i = 0; i < 4; i++)
        assert_sigkilled(kids[i]);
    if (sk_cgroup_system_driver(sys) == SK_CGROUP_V1)
        ASSERT_EQ_STR(read_ctrl("freezer", "kill", "freezer.state"), "THAWED");
    /* The group is still usable after a kill. */
    pid_t again = spawn(cg, JOB_SLEEP, NULL);
    assert_in_group(again, "kill");

    char paths[8][PATH_MAX];
    size_t np = group_paths("kill", paths, 8);
    for (size_t i = 0; i < np; i++)
        ASSERT_TRUE(path_exists(paths[i]));
    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    assert_sigkilled(again);
    for (size_t i = 0; i < np; i++)
        ASSERT_FALSE(path_exists(paths[i]));
    ASSERT_TRUE(sk_cgroup_is_empty(cg));
    sk_cgroup_free(cg);
    finish();
}

static bool keep_named_keep(const char *name, void *opaque)
{
    int *asked = opaque;
    (*asked)++;
    return strstr(name, "keep") != NULL;
}

/* After a "crash" (groups freed, not destroyed, system re-detected), the
 * start-up sweep removes a matching leftover with a live process in it,
 * spares what keep() claims and what does not match the prefix. */
TEST_TIMEOUT(cleanup_stale_removes_leftovers, 30)
{
    setup();
    struct sk_cgroup *a = NULL, *k = NULL, *o = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "stale-a", NULL, &a, &err));
    ASSERT_OK(sk_cgroup_new(sys, "stale-keep", NULL, &k, &err));
    ASSERT_OK(sk_cgroup_new(sys, "other-x", NULL, &o, &err));
    pid_t pid = spawn(a, JOB_SLEEP_WITH_GRANDCHILD, NULL);
    sk_cgroup_free(a);
    sk_cgroup_free(k);
    sk_cgroup_free(o);
    sk_cgroup_system_free(sys);

    ASSERT_OK(sk_cgroup_system_detect(parent, &sys, &err));
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "stale-", &err), 2);
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "", &err), 3);
    int asked = 0;
    ASSERT_EQ_INT(sk_cgroup_cleanup_stale(sys, "stale-", keep_named_keep, &asked, &err), 1);
    ASSERT_EQ_INT(asked, 2);
    assert_sigkilled(pid);
    char paths[8][PATH_MAX];
    size_t np = group_paths("stale-a", paths, 8);
    for (size_t i = 0; i < np; i++)
        ASSERT_FALSE(path_exists(paths[i]));
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "stale-", &err), 1);
    ASSERT_EQ_INT(sk_cgroup_count_children(sys, "", &err), 2);
    ASSERT_EQ_INT(sk_cgroup_cleanup_stale(sys, "stale-", keep_named_keep, &asked, &err), 0);
    finish(); /* removes stale-keep and other-x, checks nothing is left */
}

static pid_t clone_into_cgroup(int cgfd)
{
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgfd;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        sleep_forever();
    }
    return (pid_t)pid;
}

/* Forced v2 on a hybrid host works in /sys/fs/cgroup/unified without any
 * controller: create, enter, clone3(CLONE_INTO_CGROUP), kill, destroy; a
 * memory or pids limit there fails with ENOTSUP naming the controller. */
TEST_TIMEOUT(forced_v2_works_without_controllers, 30)
{
    if (v2_root() == NULL)
        SKIP("no cgroup2 mount at /sys/fs/cgroup/unified (or /sys/fs/cgroup): nothing to force v2 onto");
    setup_with("v2");
    ASSERT_EQ_INT(sk_cgroup_system_driver(sys), SK_CGROUP_V2);
    struct sk_cgroup *cg = NULL;
    ASSERT_OK(sk_cgroup_new(sys, "v2", NULL, &cg, &err));
    ASSERT_GE_INT(sk_cgroup_v2_fd(cg), 0);
    pid_t a = spawn(cg, JOB_SLEEP_WITH_GRANDCHILD, NULL);
    assert_in_group(a, "v2");
    pid_t b = clone_into_cgroup(sk_cgroup_v2_fd(cg));
    ASSERT_GT_INT(b, 0);
    assert_in_group(b, "v2");
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_cgroup_read_usage(cg, &u, &err));
    ASSERT_FALSE(sk_cgroup_is_empty(cg));
    ASSERT_OK(sk_cgroup_kill(cg, &err));
    ASSERT_TRUE(sk_cgroup_is_empty(cg));
    assert_sigkilled(a);
    assert_sigkilled(b);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s/v2", v2_root(), parent);
    ASSERT_TRUE(path_exists(path));
    ASSERT_OK(sk_cgroup_destroy(cg, &err));
    ASSERT_FALSE(path_exists(path));
    sk_cgroup_free(cg);

    char ctrls[1024] = "";
    snprintf(path, sizeof(path), "%s/%s/cgroup.subtree_control", v2_root(), parent);
    ASSERT_TRUE(read_text(path, ctrls, sizeof(ctrls)));
    struct sk_cgroup_limits lim = {.memory_bytes = 32 * MiB};
    struct sk_cgroup *m = NULL;
    if (strstr(ctrls, "memory") == NULL) {
        char want[256];
        snprintf(want, sizeof(want), "cgroup v2 controller 'memory' is not available at '%s'", v2_root());
        ASSERT_EQ_INT(sk_cgroup_new(sys, "v2-mem", &lim, &m, &err), -ENOTSUP);
        ASSERT_CONTAINS(err.msg, want);
        ASSERT_TRUE(m == NULL);
        snprintf(path, sizeof(path), "%s/%s/v2-mem", v2_root(), parent);
        ASSERT_FALSE(path_exists(path));
    } else {
        ASSERT_OK(sk_cgroup_new(sys, "v2-mem", &lim, &m, &err));
        ASSERT_OK(sk_cgroup_destroy(m, &err));
        sk_cgroup_free(m);
    }
    if (strstr(ctrls, "pids") == NULL) {
        lim = (struct sk_cgroup_limits){.pids = 10};
        ASSERT_EQ_INT(sk_cgroup_new(sys, "v2-pids", &lim, &m, &err), -ENOTSUP);
        ASSERT_CONTAINS(err.msg, "controller 'pids'");
    }
    finish();
}
