/* test_adopt.c - persistent sandboxes outlive their owner: after the owner
 * is SIGKILLed a new owner adopts the sandbox (its processes, their output
 * in host files, their exit statuses - also those that ended while nobody
 * was connected), or destroys what cannot be adopted; either way nothing
 * (mount, cgroup, process, lock file, state directory, range claim) is left.
 *
 * Each owner is a forked child of the test, which is a child subreaper, so
 * the orphaned sandboxes' pid 1 become the test's children as they would
 * become init's (or systemd's) under a real daemon. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/util.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"
#include "sandbox_test.h"

/* A state dir of their own: other test programs' sweeps never meet these
 * sandboxes, and theirs never meet ours. */
#define ADOPT_STATE_DIR TEST_STATE_DIR "-adopt"

#define LOOP_CMD "for i in $(seq 1 50); do echo line $i; sleep 0.05; done"

static struct sk_runtime *new_runtime(bool keep_unowned)
{
    char init[PATH_MAX];
    snprintf(init, sizeof(init), "%s/skiff-init", sk_test_bin_dir());
    struct sk_runtime_config cfg = {.state_dir = ADOPT_STATE_DIR, .init_path = init, .keep_unowned = keep_unowned};
    struct sk_runtime *rt = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_runtime_new(&cfg, &rt, &err));
    return rt;
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

static bool exists(const char *fmt, const char *id)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), fmt, id);
    struct stat st;
    return stat(path, &st) == 0;
}

/* slot_claim - what the range's lock file says (empty = unclaimed). */
static void slot_claim(uint32_t slot, char *out, size_t size)
{
    char path[PATH_MAX];
    const char *run_dir = getenv("SKIFF_RUN_DIR");
    snprintf(path, sizeof(path), "%s/slots/%u.lock", run_dir && *run_dir ? run_dir : "/run/skiff", slot);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, size - 1) : -1;
    out[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
}

/* process_gone - pid is neither running nor a zombie of ours; reaps it if
 * it is our (subreaper) child. */
static bool process_gone(pid_t pid)
{
    for (int i = 0; i < 300; i++) {
        waitpid(pid, NULL, WNOHANG | __WALL);
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        usleep(10000);
    }
    return false;
}

/* assert_nothing_left - the leak checks every test ends with. */
static void assert_nothing_left(struct sk_runtime *rt, const struct sk_sandbox_adopt_info *info, int mounts0,
                                int host_mounts0)
{
    struct sk_error err = {0};
    ASSERT_TRUE(process_gone(info->pid));
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(rt), info->id, &err), 0);
    ASSERT_FALSE(exists(ADOPT_STATE_DIR "/sandboxes/%s", info->id));
    ASSERT_FALSE(exists(ADOPT_STATE_DIR "/locks/%s.lock", info->id));
    char claim[PATH_MAX];
    slot_claim(info->slot, claim, sizeof(claim));
    ASSERT_EQ_STR(claim, "");
    ASSERT_EQ_INT(count_lines("/proc/self/mountinfo"), mounts0);
    ASSERT_EQ_INT(count_lines("/proc/1/mountinfo"), host_mounts0);
}

/* What an owner hands to the test before it dies. */
struct handoff {
    char info[SK_SANDBOX_ADOPT_INFO_MAX];
    uint32_t loop_id, sleep_id;
    char out_path[PATH_MAX];
};

static void spawn_to_files(struct sk_sandbox *sb, const char *const *argv, const char *name, uint32_t *id)
{
    struct sk_error err = {0};
    char n_out[64], n_err[64];
    snprintf(n_out, sizeof(n_out), "%s.stdout", name);
    snprintf(n_err, sizeof(n_err), "%s.stderr", name);
    int out = -1, errfd = -1;
    if (sk_sandbox_output_open(sb, n_out, &out, &err) < 0 || sk_sandbox_output_open(sb, n_err, &errfd, &err) < 0)
        _exit(10);
    struct sk_agent_spawn s = {.argv = argv, .output_to_fds = true, .stdout_fd = out, .stderr_fd = errfd};
    struct sk_agent_proc p;
    if (sk_sandbox_exec(sb, &s, &p, &err) < 0)
        _exit(11);
    /* With output fds, nothing comes back but the process id. */
    if (p.stdout_fd != -1 || p.stderr_fd != -1 || p.stdin_fd != -1 || p.pty_fd != -1)
        _exit(12);
    close(out);
    close(errfd);
    *id = p.id;
}

/* crashing_owner - in a forked child: create a persistent sandbox, start
 * the 50-line loop and a sleep with output to files, hand the adopt info
 * to the test through `fd`, then die by SIGKILL without any teardown. */
static __attribute__((noreturn)) void crashing_owner(int fd, bool with_procs)
{
    struct sk_error err = {0};
    struct sk_runtime *rt = new_runtime(true);
    struct sk_sandbox_spec spec = {.persistent = true};
    struct sk_sandbox *sb = NULL;
    if (sk_sandbox_create(rt, &spec, &sb, &err) < 0) {
        fprintf(stderr, "owner: %s\n", err.msg);
        _exit(2);
    }
    struct handoff h = {0};
    if (with_procs) {
        spawn_to_files(sb, (const char *const[]){"/bin/sh", "-c", LOOP_CMD, NULL}, "loop", &h.loop_id);
        spawn_to_files(sb, (const char *const[]){"sleep", "60", NULL}, "sleep", &h.sleep_id);
    }
    struct sk_sandbox_adopt_info info;
    if (sk_sandbox_describe(sb, &info, &err) < 0 || sk_sandbox_adopt_info_format(&info, h.info, sizeof(h.info)) < 0)
        _exit(3);
    snprintf(h.out_path, sizeof(h.out_path), "%s/execs/loop.stdout", sk_sandbox_dir(sb));
    if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
        _exit(4);
    raise(SIGKILL);
    _exit(5);
}

/* start_owner - run crashing_owner, wait for its death, return its handoff. */
static void start_owner(struct handoff *h, bool with_procs)
{
    int p[2];
    ASSERT_EQ_INT(pipe2(p, O_CLOEXEC), 0);
    pid_t owner = fork();
    ASSERT_GE_INT(owner, 0);
    if (owner == 0) {
        close(p[0]);
        crashing_owner(p[1], with_procs);
    }
    close(p[1]);
    ssize_t n = sk_read_all(p[0], h, sizeof(*h));
    close(p[0]);
    int status = 0;
    while (waitpid(owner, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(*h))
        FAIL("the owner did not hand over (status 0x%x)", (unsigned)status);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* An output reader that resumes by offset, as a client of the daemon would:
 * it never re-reads a byte and checks that the file only grows. */
struct reader {
    char buf[4096];
    size_t off;
};

static void read_more(struct reader *r, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT_GE_INT(fd, 0);
    struct stat st;
    ASSERT_EQ_INT(fstat(fd, &st), 0);
    ASSERT_GE_INT(st.st_size, (off_t)r->off); /* offsets are monotonic */
    for (;;) {
        ASSERT_LT_INT(r->off, sizeof(r->buf) - 1);
        ssize_t n = pread(fd, r->buf + r->off, sizeof(r->buf) - 1 - r->off, (off_t)r->off);
        ASSERT_GE_INT(n, 0);
        if (n == 0)
            break;
        r->off += (size_t)n;
    }
    r->buf[r->off] = '\0';
    close(fd);
}

/* in_cgroup_of - /proc/<pid>/cgroup names the sandbox's group. */
static bool in_cgroup_of(const char *pid, const char *id)
{
    char path[300], buf[4096], want[64];
    snprintf(path, sizeof(path), "/proc/%s/cgroup", pid);
    snprintf(want, sizeof(want), "/%s\n", id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, want) != NULL;
}

/* loop_running - a process of sandbox `id` runs LOOP_CMD (its sh). */
static bool loop_running(const char *id)
{
    DIR *d = opendir("/proc");
    ASSERT_TRUE(d != NULL);
    struct dirent *de;
    bool found = false;
    while (!found && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        /* argv is NUL-separated: "/bin/sh" "-c" LOOP_CMD */
        size_t a0 = strlen(buf);
        if (a0 + 4 < (size_t)n && strcmp(buf + a0 + 1, "-c") == 0 && strcmp(buf + a0 + 4, LOOP_CMD) == 0)
            found = in_cgroup_of(de->d_name, id);
    }
    closedir(d);
    return found;
}

static void expected_loop_output(char *out, size_t size)
{
    size_t n = 0;
    for (int i = 1; i <= 50; i++)
        n += (size_t)snprintf(out + n, size - n, "line %d\n", i);
}

static void next_event(struct sk_sandbox *sb, struct sk_agent_event *ev, int timeout_ms)
{
    struct sk_error err = {0};
    int r = sk_agent_next_event(sk_sandbox_agent(sb), ev, timeout_ms, &err);
    if (r != 1)
        FAIL("no exit event within %d ms (%d: %s)", timeout_ms, r, err.msg);
}

static const struct sk_agent_proc_info *find_info(const struct sk_agent_proc_info *v, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

/* run_pipe - exec argv with ordinary pipes; its stdout and exit code. */
static int run_pipe(struct sk_sandbox *sb, const char *const *argv, char *out, size_t cap)
{
    struct sk_error err = {0};
    struct sk_agent_spawn s = {.argv = argv};
    struct sk_agent_proc p;
    ASSERT_OK(sk_sandbox_exec(sb, &s, &p, &err));
    size_t n = 0;
    ssize_t r;
    while ((r = read(p.stdout_fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    struct sk_agent_event ev;
    next_event(sb, &ev, 10000);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    sk_close(&p.stdout_fd);
    sk_close(&p.stderr_fd);
    /* A persistent skiff-init keeps the EXIT until it is released. */
    ASSERT_OK(sk_agent_release(sk_sandbox_agent(sb), p.id, &err));
    return ev.exit_code;
}

static void crash_and_adopt(bool loop_ends_while_unowned)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct sk_error err = {0};
    int mounts0 = count_lines("/proc/self/mountinfo");
    int host_mounts0 = count_lines("/proc/1/mountinfo");

    struct handoff h;
    start_owner(&h, true);
    struct sk_sandbox_adopt_info info;
    ASSERT_OK(sk_sandbox_adopt_info_parse(h.info, &info, &err));
    /* The owner is gone; its sandbox is not, and it has a session of its
     * own (a SIGKILL to the owner's process group would not reach it). */
    ASSERT_EQ_INT(kill(info.pid, 0), 0);
    ASSERT_EQ_INT(getsid(info.pid), info.pid);
    ASSERT_EQ_INT(getpgid(info.pid), info.pid);
    /* the host-wide range lock names the sandbox's directory */
    char claim[PATH_MAX], claim_want[PATH_MAX];
    slot_claim(info.slot, claim, sizeof(claim));
    snprintf(claim_want, sizeof(claim_want), ADOPT_STATE_DIR "/sandboxes/%s", info.id);
    ASSERT_EQ_STR(claim, claim_want);

    /* Output keeps landing in the file while nobody owns the sandbox. */
    struct reader rd = {.off = 0};
    read_more(&rd, h.out_path);
    size_t seen_at_crash = rd.off;
    if (loop_ends_while_unowned) {
        ASSERT_TRUE(loop_running(info.id)); /* 2.5 s long; and the helper sees it */
        for (int i = 0; i < 1000 && strstr(rd.buf, "line 50\n") == NULL; i++) {
            usleep(10000);
            read_more(&rd, h.out_path);
        }
        ASSERT_CONTAINS(rd.buf, "line 50\n");
        /* its last sleep 0.05, then it exits (and skiff-init reaps it) */
        for (int i = 0; i < 1000 && loop_running(info.id); i++)
            usleep(10000);
        ASSERT_FALSE(loop_running(info.id));
        ASSERT_GT_INT(rd.off, seen_at_crash);
    }

    /* A new owner: its runtime does not sweep the unowned sandbox. */
    struct sk_runtime *rt = new_runtime(true);
    ASSERT_EQ_INT(kill(info.pid, 0), 0);
    struct sk_sandbox *sb = NULL;
    ASSERT_OK(sk_sandbox_adopt(rt, &info, &sb, &err));
    ASSERT_TRUE(sk_sandbox_is_adopted(sb));
    ASSERT_EQ_INT(sk_sandbox_pid(sb), info.pid);
    struct sk_agent *a = sk_sandbox_agent(sb);

    /* Both processes are in the list: the sleep runs; the loop runs or, if
     * it ended in the gap, is listed as exited with its status. */
    struct sk_agent_proc_info *procs = NULL;
    size_t n = 0;
    ASSERT_OK(sk_agent_list_procs(a, &procs, &n, &err));
    ASSERT_EQ_INT(n, 2);
    const struct sk_agent_proc_info *loop = find_info(procs, n, h.loop_id);
    const struct sk_agent_proc_info *sleeper = find_info(procs, n, h.sleep_id);
    ASSERT_TRUE(loop != NULL && sleeper != NULL);
    ASSERT_TRUE(loop->output_to_fds && sleeper->output_to_fds);
    ASSERT_FALSE(sleeper->exited);
    ASSERT_GT_INT(sleeper->pid, 0);
    ASSERT_EQ_INT(loop->exited, loop_ends_while_unowned);
    if (loop_ends_while_unowned) {
        ASSERT_EQ_INT(loop->end.exit_code, 0);
        ASSERT_EQ_INT(loop->end.signo, 0);
    }
    free(procs);

    /* The loop's EXIT: queued while nobody was connected (re-sent after
     * HELLO) or live once it ends; exactly once either way. */
    struct sk_agent_event ev;
    next_event(sb, &ev, 10000);
    ASSERT_EQ_INT(ev.proc_id, h.loop_id);
    ASSERT_EQ_INT(ev.exit_code, 0);
    ASSERT_EQ_INT(ev.signo, 0);
    ASSERT_OK(sk_agent_release(a, h.loop_id, &err));
    ASSERT_EQ_INT(sk_agent_release(a, h.loop_id, &err), -ESRCH);

    /* All 50 lines, in order, nothing lost or doubled. */
    read_more(&rd, h.out_path);
    char want[1024];
    expected_loop_output(want, sizeof(want));
    ASSERT_EQ_STR(rd.buf, want);

    /* A signal to the sleep, and its EXIT. */
    ASSERT_OK(sk_agent_signal(a, h.sleep_id, SIGTERM, &err));
    next_event(sb, &ev, 10000);
    ASSERT_EQ_INT(ev.proc_id, h.sleep_id);
    ASSERT_EQ_INT(ev.signo, SIGTERM);
    ASSERT_EQ_INT(ev.exit_code, 128 + SIGTERM);
    ASSERT_EQ_INT(sk_agent_signal(a, h.sleep_id, SIGTERM, &err), -ESRCH); /* exited: its pid is not its own */
    ASSERT_OK(sk_agent_release(a, h.sleep_id, &err));
    ASSERT_OK(sk_agent_list_procs(a, &procs, &n, &err));
    ASSERT_EQ_INT(n, 0);
    free(procs);
    /* No EXIT comes twice. */
    ASSERT_EQ_INT(sk_agent_next_event(a, &ev, 300, &err), 0);

    /* The adopted sandbox is fully usable: a new exec and file operations. */
    char out[256];
    ASSERT_EQ_INT(
        run_pipe(sb, (const char *const[]){"/bin/sh", "-c", "echo adopted $HOSTNAME", NULL}, out, sizeof(out)), 0);
    char hello[128];
    snprintf(hello, sizeof(hello), "adopted %s\n", info.hostname);
    ASSERT_EQ_STR(out, hello);
    ASSERT_OK(sk_agent_write_file(a, "/tmp/after-adopt", "still here\n", 11, 0644, &err));
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(sk_agent_read_file(a, "/tmp/after-adopt", 0, 0, &data, &len, &err));
    ASSERT_EQ_STR(data, "still here\n");
    free(data);
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_sandbox_usage(sb, &u, &err));

    sk_sandbox_free(sb);
    assert_nothing_left(rt, &info, mounts0, host_mounts0);
    sk_runtime_free(rt);
}

TEST_TIMEOUT(adopt_after_owner_crash_loop_ends_while_owned, 60)
{
    crash_and_adopt(false);
}

TEST_TIMEOUT(adopt_after_owner_crash_loop_ends_while_unowned, 60)
{
    crash_and_adopt(true);
}

/* pid 1 died while nobody owned the sandbox: adoption fails cleanly, and
 * destroy_orphan removes the rest. */
TEST_TIMEOUT(dead_sandbox_is_not_adopted_and_is_destroyed, 60)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct sk_error err = {0};
    int mounts0 = count_lines("/proc/self/mountinfo");
    int host_mounts0 = count_lines("/proc/1/mountinfo");
    struct handoff h;
    start_owner(&h, true);
    struct sk_sandbox_adopt_info info;
    ASSERT_OK(sk_sandbox_adopt_info_parse(h.info, &info, &err));
    ASSERT_EQ_INT(kill(info.pid, SIGKILL), 0);
    /* Not yet reaped: a zombie is no sandbox either. */
    for (int i = 0; i < 500; i++) {
        char path[64], *stat = NULL;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)info.pid);
        ASSERT_OK(sk_read_file_at(AT_FDCWD, path, 4096, &stat, NULL, &err));
        bool zombie = strstr(strrchr(stat, ')'), ") Z ") != NULL;
        free(stat);
        if (zombie)
            break;
        usleep(10000);
    }
    struct sk_runtime *rt = new_runtime(true);
    struct sk_sandbox *sb = NULL;
    ASSERT_EQ_INT(sk_sandbox_adopt(rt, &info, &sb, &err), -ESRCH);
    ASSERT_TRUE(sb == NULL);
    ASSERT_TRUE(process_gone(info.pid)); /* reaped now */
    int r = sk_sandbox_adopt(rt, &info, &sb, &err);
    if (r != -ESRCH && r != -ENOENT)
        FAIL("adopt of a dead sandbox: %d (%s)", r, err.msg);
    /* A failed adoption changed nothing: its state is still there. */
    ASSERT_TRUE(exists(ADOPT_STATE_DIR "/sandboxes/%s", info.id));
    ASSERT_OK(sk_sandbox_destroy_orphan(rt, &info, &err));
    assert_nothing_left(rt, &info, mounts0, host_mounts0);
    /* Destroying again finds nothing and is fine. */
    ASSERT_OK(sk_sandbox_destroy_orphan(rt, &info, &err));
    sk_runtime_free(rt);
}

/* Adopt info whose start time does not match is refused (the pid may have
 * been reused), and leaves the sandbox alone; destroy_orphan of a live,
 * unowned sandbox ends it. */
TEST_TIMEOUT(pid_reuse_guard_and_destroy_of_a_live_orphan, 60)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct sk_error err = {0};
    int mounts0 = count_lines("/proc/self/mountinfo");
    int host_mounts0 = count_lines("/proc/1/mountinfo");
    struct handoff h;
    start_owner(&h, true);
    struct sk_sandbox_adopt_info info;
    ASSERT_OK(sk_sandbox_adopt_info_parse(h.info, &info, &err));
    struct sk_runtime *rt = new_runtime(true);
    struct sk_sandbox *sb = NULL;

    struct sk_sandbox_adopt_info wrong = info;
    wrong.start_time++;
    ASSERT_EQ_INT(sk_sandbox_adopt(rt, &wrong, &sb, &err), -ESRCH);
    ASSERT_CONTAINS(err.msg, "another process");
    wrong = info;
    wrong.boot_id[0] = wrong.boot_id[0] == 'a' ? 'b' : 'a';
    ASSERT_EQ_INT(sk_sandbox_adopt(rt, &wrong, &sb, &err), -ESRCH);
    wrong = info;
    wrong.pid = getpid(); /* alive, but not in the sandbox's cgroup */
    ASSERT_EQ_INT(sk_sandbox_adopt(rt, &wrong, &sb, &err), -ESRCH);
    ASSERT_TRUE(sb == NULL);
    ASSERT_EQ_INT(kill(info.pid, 0), 0); /* untouched */

    /* A correct adoption still works afterwards; a second adopter, while
     * this one owns it, gets EBUSY and so does destroy_orphan. */
    ASSERT_OK(sk_sandbox_adopt(rt, &info, &sb, &err));
    struct sk_sandbox *second = NULL;
    ASSERT_EQ_INT(sk_sandbox_adopt(rt, &info, &second, &err), -EBUSY);
    ASSERT_EQ_INT(sk_sandbox_destroy_orphan(rt, &info, &err), -EBUSY);
    ASSERT_EQ_INT(kill(info.pid, 0), 0);
    /* Let it go again (an orderly owner restart), then destroy it. */
    sk_sandbox_detach(sb);
    ASSERT_EQ_INT(kill(info.pid, 0), 0);
    ASSERT_OK(sk_sandbox_destroy_orphan(rt, &info, &err));
    assert_nothing_left(rt, &info, mounts0, host_mounts0);
    sk_runtime_free(rt);
}

/* The start-up sweep of a runtime without keep_unowned (skiff run's) kills
 * unowned persistent sandboxes and removes all of their state. */
TEST_TIMEOUT(stale_sweep_removes_unowned_persistent_sandboxes, 60)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct sk_error err = {0};
    int mounts0 = count_lines("/proc/self/mountinfo");
    int host_mounts0 = count_lines("/proc/1/mountinfo");
    struct handoff h;
    start_owner(&h, true);
    struct sk_sandbox_adopt_info info;
    ASSERT_OK(sk_sandbox_adopt_info_parse(h.info, &info, &err));
    ASSERT_EQ_INT(kill(info.pid, 0), 0);
    struct sk_runtime *rt = new_runtime(false);
    assert_nothing_left(rt, &info, mounts0, host_mounts0);
    sk_runtime_free(rt);
}

/* In one process: detach, adopt again, and the sandbox and its processes
 * are as they were; describe -> format -> parse round-trips. */
TEST_TIMEOUT(detach_and_readopt_in_process, 60)
{
    struct sk_error err = {0};
    struct sk_runtime *rt = new_runtime(true);
    struct sk_sandbox_spec spec = {.persistent = true, .hostname = "keeper", .timeout_ms = 600000};
    struct sk_sandbox *sb = NULL;
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    ASSERT_TRUE(sk_sandbox_is_persistent(sb));
    ASSERT_FALSE(sk_sandbox_is_adopted(sb));
    struct sk_agent_spawn s = {.argv = (const char *const[]){"sleep", "60", NULL}};
    struct sk_agent_proc p;
    ASSERT_OK(sk_sandbox_exec(sb, &s, &p, &err));
    sk_close(&p.stdout_fd);
    sk_close(&p.stderr_fd);
    struct sk_sandbox_adopt_info info, back;
    ASSERT_OK(sk_sandbox_describe(sb, &info, &err));
    char text[SK_SANDBOX_ADOPT_INFO_MAX];
    ASSERT_GT_INT(sk_sandbox_adopt_info_format(&info, text, sizeof(text)), 0);
    ASSERT_EQ_INT(sk_sandbox_adopt_info_format(&info, text, 20), -ENOSPC);
    ASSERT_GT_INT(sk_sandbox_adopt_info_format(&info, text, sizeof(text)), 0);
    ASSERT_OK(sk_sandbox_adopt_info_parse(text, &back, &err));
    ASSERT_EQ_STR(back.id, info.id);
    ASSERT_EQ_INT(back.pid, info.pid);
    ASSERT_EQ_INT(back.start_time, info.start_time);
    ASSERT_EQ_STR(back.boot_id, info.boot_id);
    ASSERT_EQ_INT(back.slot, info.slot);
    ASSERT_EQ_STR(back.hostname, "keeper");
    ASSERT_EQ_INT(back.deadline_ns, sk_sandbox_deadline_ns(sb));
    ASSERT_GT_INT(back.deadline_ns, 0);
    int64_t deadline = sk_sandbox_deadline_ns(sb);

    sk_sandbox_detach(sb);
    ASSERT_EQ_INT(kill(info.pid, 0), 0);
    ASSERT_OK(sk_sandbox_adopt(rt, &back, &sb, &err));
    ASSERT_EQ_INT(sk_sandbox_deadline_ns(sb), deadline);
    struct sk_agent_proc_info *procs = NULL;
    size_t n = 0;
    ASSERT_OK(sk_agent_list_procs(sk_sandbox_agent(sb), &procs, &n, &err));
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_INT(procs[0].id, p.id);
    ASSERT_FALSE(procs[0].exited);
    free(procs);
    /* The sleep's stdout pipe went with the first owner; it runs anyway. */
    sk_sandbox_free(sb);
    ASSERT_TRUE(process_gone(info.pid));
    ASSERT_FALSE(exists(ADOPT_STATE_DIR "/sandboxes/%s", info.id));
    sk_runtime_free(rt);
}

/* Malformed adopt records and output names are refused with EINVAL; a
 * sandbox that is not persistent has no adopt info and no output files. */
TEST_TIMEOUT(bad_adopt_records_and_names_are_refused, 60)
{
    struct sk_error err = {0};
    struct sk_sandbox_adopt_info info;
    const char *bad[] = {
        "",
        "skiff-adopt/2 id=sb-0123456789abcdef pid=1 start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=h deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdeg pid=1 start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=h deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=0 start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=h deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=-3 start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=h deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=1 start=1 boot=00000000-0000-0000-0000-000000000000 slot=4096 "
        "hostname=h deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=1 start=1 boot=../../etc slot=1 hostname=h deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=1 start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=a/b deadline=0",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=1 start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=h deadline=0 extra=1",
        "skiff-adopt/1 id=sb-0123456789abcdef pid=1 start=99999999999999999999999 "
        "boot=00000000-0000-0000-0000-000000000000 slot=1 hostname=h deadline=0",
        "skiff-adopt/1 pid=1 id=sb-0123456789abcdef start=1 boot=00000000-0000-0000-0000-000000000000 slot=1 "
        "hostname=h deadline=0",
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++)
        if (sk_sandbox_adopt_info_parse(bad[i], &info, &err) != -EINVAL)
            FAIL("accepted bad record %zu: '%s'", i, bad[i]);
    ASSERT_OK(sk_sandbox_adopt_info_parse("skiff-adopt/1 id=sb-0123456789abcdef pid=1 start=1 "
                                          "boot=00000000-0000-0000-0000-000000000000 slot=1 hostname=h deadline=0",
                                          &info, &err));

    struct sk_runtime *rt = new_runtime(true);
    /* A well-formed record of a sandbox that never existed. */
    struct sk_sandbox *sb = NULL;
    int r = sk_sandbox_adopt(rt, &info, &sb, &err);
    ASSERT_TRUE(r == -ENOENT || r == -ESRCH);
    ASSERT_OK(sk_sandbox_destroy_orphan(rt, &info, &err));
    ASSERT_FALSE(exists(ADOPT_STATE_DIR "/locks/%s.lock", info.id));

    struct sk_sandbox_spec spec = {0};
    ASSERT_OK(sk_sandbox_create(rt, &spec, &sb, &err));
    ASSERT_EQ_INT(sk_sandbox_describe(sb, &info, &err), -EINVAL);
    int fd;
    ASSERT_EQ_INT(sk_sandbox_output_open(sb, "x", &fd, &err), -EINVAL);
    ASSERT_TRUE(sk_sandbox_dir(sb) == NULL);
    sk_sandbox_free(sb);
    struct sk_sandbox_spec both = {.persistent = true, .die_with_owner = true};
    ASSERT_EQ_INT(sk_sandbox_create(rt, &both, &sb, &err), -EINVAL);

    struct sk_sandbox_spec ps = {.persistent = true};
    ASSERT_OK(sk_sandbox_create(rt, &ps, &sb, &err));
    const char *names[] = {"", ".", "..", "a/b", "../x", "a b", "x\n"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(names); i++)
        if (sk_sandbox_output_open(sb, names[i], &fd, &err) != -EINVAL)
            FAIL("accepted output name '%s'", names[i]);
    ASSERT_OK(sk_sandbox_output_open(sb, "ok.out", &fd, &err));
    ASSERT_TRUE((fcntl(fd, F_GETFL) & O_APPEND) != 0);
    close(fd);
    ASSERT_EQ_INT(sk_sandbox_output_open(sb, "ok.out", &fd, &err), -EEXIST);
    sk_sandbox_free(sb);
    sk_runtime_free(rt);
}
