/* test_agent.c - the real build/skiff-init, outside any sandbox, driven
 * through lib/runtime/agent: processes (stdio, exit codes, exec errors,
 * PTY, signals, timeouts, reaping), output to host fds, persistence across
 * owner connections (reconnect, kept EXITs, one owner at a time), file
 * operations confined to the root ($SKIFF_INIT_ROOT, a fresh temp dir),
 * malformed requests, and the host side's distrust of bad replies (a fake
 * skiff-init). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "harness.h"
#include "proto/channel.h"
#include "proto/proto.h"
#include "runtime/agent.h"

static const char *const test_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL};

struct fx {
    pid_t init_pid;
    struct sk_agent *a;
    char root[64];
    /* persistent: where skiff-init listens for the next owner */
    bool persistent;
    char ctl_dir[64];
    struct sockaddr_un ctl;
};

static void fx_start_mode(struct fx *f, bool persistent)
{
    struct sk_error err = {0};
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/skiff-init", sk_test_bin_dir());
    if (access(bin, X_OK) != 0)
        FAIL("'%s' is missing: build it first", bin);
    snprintf(f->root, sizeof(f->root), "/tmp/skiff-agent-root-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->root) != NULL);
    f->persistent = persistent;
    int lis = -1;
    if (persistent) {
        snprintf(f->ctl_dir, sizeof(f->ctl_dir), "/tmp/skiff-agent-ctl-XXXXXX");
        ASSERT_TRUE(mkdtemp(f->ctl_dir) != NULL);
        memset(&f->ctl, 0, sizeof(f->ctl));
        f->ctl.sun_family = AF_UNIX;
        snprintf(f->ctl.sun_path, sizeof(f->ctl.sun_path), "%s/ctl.sock", f->ctl_dir);
        lis = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ASSERT_GE_INT(lis, 0);
        ASSERT_EQ_INT(bind(lis, (struct sockaddr *)&f->ctl, sizeof(f->ctl)), 0);
        ASSERT_EQ_INT(listen(lis, 8), 0);
    }
    int sv[2];
    ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    f->init_pid = fork();
    ASSERT_GE_INT(f->init_pid, 0);
    if (f->init_pid == 0) {
        /* fd 3 the connection, fd 4 the listening socket (persistent) */
        int c = fcntl(sv[1], F_DUPFD_CLOEXEC, 20);
        int l = lis >= 0 ? fcntl(lis, F_DUPFD_CLOEXEC, 20) : -1;
        if (c < 0 || dup2(c, 3) < 0 || (l >= 0 && dup2(l, 4) < 0))
            _exit(126);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(null, 0);
        setenv("SKIFF_INIT_ROOT", f->root, 1);
        execl(bin, "skiff-init", (char *)NULL);
        _exit(127);
    }
    if (lis >= 0)
        close(lis); /* skiff-init holds the only copy, as in a sandbox */
    close(sv[1]);
    ASSERT_OK(sk_agent_new(sv[0], &f->a, &err));
    pid_t pid = 0;
    ASSERT_OK(sk_agent_hello(f->a, 5000, &pid, &err));
    ASSERT_EQ_INT(pid, f->init_pid);
}

static void fx_start(struct fx *f)
{
    fx_start_mode(f, false);
}

/* fx_stop - close the socket: skiff-init must exit 0 promptly. A persistent
 * one does not exit: it is SIGKILLed (its processes must be gone already). */
static void fx_stop(struct fx *f)
{
    if (f->persistent) {
        sk_agent_free(f->a);
        f->a = NULL;
        kill(f->init_pid, SIGKILL);
        while (waitpid(f->init_pid, NULL, 0) < 0 && errno == EINTR)
            ;
        struct sk_error err = {0};
        ASSERT_OK(sk_remove_tree(f->root, &err));
        ASSERT_OK(sk_remove_tree(f->ctl_dir, &err));
        return;
    }
    sk_agent_free(f->a);
    f->a = NULL;
    int status = 0;
    for (int i = 0; i < 300; i++) {
        pid_t r = waitpid(f->init_pid, &status, WNOHANG);
        if (r == f->init_pid)
            break;
        if (i == 299)
            FAIL("skiff-init did not exit after the socket closed");
        usleep(10000);
    }
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 0);
    struct sk_error err = {0};
    ASSERT_OK(sk_remove_tree(f->root, &err));
}

/* read_until_eof - everything from fd until EOF (or EIO for a pty), at
 * most 5 s. The result is NUL-terminated static storage. */
static const char *read_until_eof(int fd)
{
    static char out[65536];
    size_t n = 0;
    int64_t deadline = sk_now_ns() + 5000000000LL;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = (int)((deadline - sk_now_ns()) / 1000000);
        if (ms <= 0)
            FAIL("no EOF within 5 s; got \"%.*s\"", (int)n, out);
        if (poll(&p, 1, ms) <= 0)
            continue;
        ssize_t r = read(fd, out + n, sizeof(out) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    return out;
}

/* read_until - read fd until the output so far contains `needle`. */
static const char *read_until(int fd, const char *needle, char *out, size_t cap)
{
    size_t n = strlen(out);
    int64_t deadline = sk_now_ns() + 5000000000LL;
    while (strstr(out, needle) == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = (int)((deadline - sk_now_ns()) / 1000000);
        if (ms <= 0)
            FAIL("\"%s\" not seen within 5 s; got \"%s\"", needle, out);
        if (poll(&p, 1, ms) <= 0)
            continue;
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            FAIL("EOF before \"%s\"; got \"%s\"", needle, out);
        n += (size_t)r;
        out[n] = '\0';
    }
    return out;
}

static void wait_event(struct fx *f, struct sk_agent_event *ev, int timeout_ms)
{
    struct sk_error err = {0};
    int r = sk_agent_next_event(f->a, ev, timeout_ms, &err);
    if (r != 1)
        FAIL("no exit event within %d ms (%d: %s)", timeout_ms, r, err.msg);
}

static void close_proc(struct sk_agent_proc *p)
{
    sk_close(&p->stdin_fd);
    sk_close(&p->stdout_fd);
    sk_close(&p->stderr_fd);
    sk_close(&p->pty_fd);
}

static void spawn_argv(struct fx *f, const char *const *argv, struct sk_agent_proc *p)
{
    struct sk_error err = {0};
    struct sk_agent_spawn s = {.argv = argv, .envp = test_env};
    ASSERT_OK(sk_agent_spawn(f->a, &s, p, &err));
}

/* ---- processes ---- */

TEST_TIMEOUT(hello_reports_the_init_pid, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    pid_t pid = 0;
    ASSERT_OK(sk_agent_hello(f.a, -1, &pid, &err));
    ASSERT_EQ_INT(pid, f.init_pid);
    fx_stop(&f);
}

TEST_TIMEOUT(spawn_echo_output_and_exit_event, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"echo", "hi", NULL}, &p);
    ASSERT_GT_INT(p.id, 0);
    ASSERT_GT_INT(p.pid, 0);
    ASSERT_EQ_INT(p.stdin_fd, -1);
    ASSERT_EQ_INT(p.pty_fd, -1);
    ASSERT_TRUE(fcntl(p.stdout_fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "hi\n");
    ASSERT_EQ_STR(read_until_eof(p.stderr_fd), "");
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    ASSERT_EQ_INT(ev.exit_code, 0);
    ASSERT_EQ_INT(ev.signo, 0);
    ASSERT_FALSE(ev.timed_out);
    close_proc(&p);
    fx_stop(&f);
}

TEST_TIMEOUT(stderr_is_separate_from_stdout, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"sh", "-c", "echo out; echo err >&2", NULL}, &p);
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "out\n");
    ASSERT_EQ_STR(read_until_eof(p.stderr_fd), "err\n");
    close_proc(&p);
    fx_stop(&f);
}

TEST_TIMEOUT(exit_code_is_reported, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"sh", "-c", "exit 3", NULL}, &p);
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    ASSERT_EQ_INT(ev.exit_code, 3);
    ASSERT_EQ_INT(ev.signo, 0);
    close_proc(&p);
    fx_stop(&f);
}

TEST_TIMEOUT(exec_failures_come_back_as_errors, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct sk_agent_proc p;
    struct sk_agent_spawn s = {.argv = (const char *const[]){"skiff-no-such-command", NULL}, .envp = test_env};
    ASSERT_LT_INT(sk_agent_spawn(f.a, &s, &p, &err), 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_EQ_STR(err.msg, "exec 'skiff-no-such-command': No such file or directory");
    ASSERT_EQ_INT(p.stdout_fd, -1);

    s.argv = (const char *const[]){"/nonexistent/skiff-bin", NULL};
    ASSERT_LT_INT(sk_agent_spawn(f.a, &s, &p, &err), 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_CONTAINS(err.msg, "exec '/nonexistent/skiff-bin'");

    char noexec[PATH_MAX];
    snprintf(noexec, sizeof(noexec), "%s/not-executable", f.root);
    int fd = open(noexec, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE_INT(fd, 0);
    close(fd);
    s.argv = (const char *const[]){noexec, NULL};
    ASSERT_LT_INT(sk_agent_spawn(f.a, &s, &p, &err), 0);
    ASSERT_EQ_INT(err.code, EACCES);

    s.argv = (const char *const[]){"true", NULL};
    s.cwd = "/nonexistent-skiff-dir";
    ASSERT_LT_INT(sk_agent_spawn(f.a, &s, &p, &err), 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_CONTAINS(err.msg, "chdir '/nonexistent-skiff-dir'");

    s.argv = (const char *const[]){"", NULL};
    ASSERT_EQ_INT(sk_agent_spawn(f.a, &s, &p, &err), -EINVAL);

    /* None of these became a process that exits later. */
    struct sk_agent_event ev;
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 200, &err), 0);
    fx_stop(&f);
}

TEST_TIMEOUT(path_search_uses_the_spawned_environment, 20)
{
    struct fx f;
    fx_start(&f);
    /* A command found only through envp's PATH. */
    char dir[128], script[192], pathvar[224];
    snprintf(dir, sizeof(dir), "%s-bin", f.root);
    ASSERT_EQ_INT(mkdir(dir, 0755), 0);
    snprintf(script, sizeof(script), "%s/skiff-hello", dir);
    FILE *fp = fopen(script, "w");
    ASSERT_TRUE(fp != NULL);
    fputs("#!/bin/sh\necho \"from path $1\"\n", fp);
    fclose(fp);
    ASSERT_EQ_INT(chmod(script, 0755), 0);
    snprintf(pathvar, sizeof(pathvar), "PATH=/nonexistent:%s:/bin", dir);
    const char *env[] = {pathvar, NULL};
    struct sk_error err = {0};
    struct sk_agent_proc p;
    struct sk_agent_spawn s = {.argv = (const char *const[]){"skiff-hello", "x", NULL}, .envp = env};
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "from path x\n");
    close_proc(&p);

    /* Without PATH in envp the default applies; the environment is exactly envp. */
    const char *env2[] = {"ONLY=1", NULL};
    s = (struct sk_agent_spawn){.argv = (const char *const[]){"env", NULL}, .envp = env2};
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "ONLY=1\n");
    close_proc(&p);
    ASSERT_OK(sk_remove_tree(dir, &err));
    fx_stop(&f);
}

TEST_TIMEOUT(stdin_round_trip_through_cat, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct sk_agent_proc p;
    struct sk_agent_spawn s = {.argv = (const char *const[]){"cat", NULL}, .envp = test_env, .want_stdin = true};
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    ASSERT_GE_INT(p.stdin_fd, 0);
    ASSERT_EQ_INT(write(p.stdin_fd, "hello\nworld", 11), 11);
    sk_close(&p.stdin_fd); /* EOF */
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "hello\nworld");
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.exit_code, 0);
    close_proc(&p);

    /* Without want_stdin, stdin is empty (/dev/null): cat ends at once. */
    s.want_stdin = false;
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    ASSERT_EQ_INT(p.stdin_fd, -1);
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "");
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.exit_code, 0);
    close_proc(&p);
    fx_stop(&f);
}

TEST_TIMEOUT(pty_is_a_terminal_and_resize_changes_its_size, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct sk_agent_proc p;
    struct sk_agent_spawn s = {
        .argv = (const char *const[]){"sh", "-c",
                                      "if [ -t 0 ] && [ -t 1 ] && [ -t 2 ]; then echo is-a-tty; fi; "
                                      "echo \"size $(stty size)\"; read x; echo \"size $(stty size)\"",
                                      NULL},
        .envp = test_env,
        .pty = true,
        .rows = 24,
        .cols = 80,
    };
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    ASSERT_GE_INT(p.pty_fd, 0);
    ASSERT_EQ_INT(p.stdout_fd, -1);
    ASSERT_TRUE(isatty(p.pty_fd));
    char out[4096] = "";
    read_until(p.pty_fd, "size 24 80", out, sizeof(out));
    ASSERT_CONTAINS(out, "is-a-tty");
    ASSERT_OK(sk_agent_resize(f.a, p.id, 40, 100, &err));
    ASSERT_EQ_INT(write(p.pty_fd, "\n", 1), 1);
    read_until(p.pty_fd, "size 40 100", out, sizeof(out));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.exit_code, 0);
    close_proc(&p);

    /* RESIZE on a process without a pty. */
    spawn_argv(&f, (const char *const[]){"sleep", "5", NULL}, &p);
    ASSERT_EQ_INT(sk_agent_resize(f.a, p.id, 1, 1, &err), -ENOTTY);
    close_proc(&p);
    fx_stop(&f);
}

TEST_TIMEOUT(signal_reaches_only_its_process, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct sk_agent_proc p1, p2;
    spawn_argv(&f, (const char *const[]){"sleep", "30", NULL}, &p1);
    spawn_argv(&f, (const char *const[]){"sleep", "30", NULL}, &p2);
    ASSERT_NE_INT(p1.id, p2.id);
    ASSERT_OK(sk_agent_signal(f.a, p1.id, SIGTERM, &err));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p1.id);
    ASSERT_EQ_INT(ev.signo, SIGTERM);
    ASSERT_EQ_INT(ev.exit_code, 128 + SIGTERM);
    ASSERT_FALSE(ev.timed_out);
    /* The other one still runs. */
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 300, &err), 0);
    ASSERT_EQ_INT(kill(p2.pid, 0), 0);
    /* p1 is gone: signalling it again is ESRCH, as is an unknown id. */
    ASSERT_EQ_INT(sk_agent_signal(f.a, p1.id, SIGTERM, &err), -ESRCH);
    ASSERT_EQ_INT(sk_agent_signal(f.a, 9999, SIGTERM, &err), -ESRCH);
    ASSERT_EQ_INT(sk_agent_signal(f.a, p2.id, 0, &err), -EINVAL);
    ASSERT_OK(sk_agent_signal(f.a, p2.id, SIGKILL, &err));
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p2.id);
    ASSERT_EQ_INT(ev.signo, SIGKILL);
    close_proc(&p1);
    close_proc(&p2);
    fx_stop(&f);
}

TEST_TIMEOUT(timeout_kills_with_timed_out, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct sk_agent_proc p, q;
    struct sk_agent_spawn s = {.argv = (const char *const[]){"sleep", "60", NULL}, .envp = test_env, .timeout_ms = 300};
    int64_t t0 = sk_now_ns();
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    /* A second process with a later timeout must not be affected early. */
    s.timeout_ms = 20000;
    ASSERT_OK(sk_agent_spawn(f.a, &s, &q, &err));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    int64_t ms = (sk_now_ns() - t0) / 1000000;
    ASSERT_EQ_INT(ev.proc_id, p.id);
    ASSERT_TRUE(ev.timed_out);
    ASSERT_EQ_INT(ev.signo, SIGKILL);
    ASSERT_GE_INT(ms, 250);
    ASSERT_LT_INT(ms, 3000);
    ASSERT_EQ_INT(kill(q.pid, 0), 0);
    close_proc(&p);
    close_proc(&q);
    fx_stop(&f);
}

/* children_of - count processes whose parent is `ppid`, and zombies among them. */
static void children_of(pid_t ppid, int *n, int *zombies)
{
    *n = *zombies = 0;
    DIR *d = opendir("/proc");
    ASSERT_TRUE(d != NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[300], line[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        char *ok = fgets(line, sizeof(line), fp);
        fclose(fp);
        if (ok == NULL)
            continue;
        char *rp = strrchr(line, ')');
        char state;
        int pp;
        if (rp == NULL || sscanf(rp + 2, "%c %d", &state, &pp) != 2 || pp != ppid)
            continue;
        (*n)++;
        if (state == 'Z')
            (*zombies)++;
    }
    closedir(d);
}

static char proc_state(pid_t pid, pid_t *ppid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    char *ok = fgets(line, sizeof(line), fp);
    fclose(fp);
    char *rp = ok ? strrchr(line, ')') : NULL;
    char state;
    int pp;
    if (rp == NULL || sscanf(rp + 2, "%c %d", &state, &pp) != 2)
        return 0;
    *ppid = pp;
    return state;
}

TEST_TIMEOUT(orphans_are_reaped, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"sh", "-c", "sleep 0.6 >/dev/null 2>&1 & echo $!", NULL}, &p);
    const char *out = read_until_eof(p.stdout_fd);
    pid_t orphan = (pid_t)atoi(out);
    ASSERT_GT_INT(orphan, 0);
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.exit_code, 0);
    /* The background sleep now belongs to skiff-init... */
    pid_t ppid = 0;
    char st = proc_state(orphan, &ppid);
    ASSERT_TRUE(st != 0 && st != 'Z');
    ASSERT_EQ_INT(ppid, f.init_pid);
    /* ...which reaps it when it ends, leaving no zombie, and reports nothing
     * for a process it did not start. */
    int64_t deadline = sk_now_ns() + 5000000000LL;
    while (proc_state(orphan, &ppid) != 0 && ppid == f.init_pid) {
        if (sk_now_ns() > deadline)
            FAIL("orphan %d was not reaped (state %c)", (int)orphan, proc_state(orphan, &ppid));
        usleep(20000);
    }
    int n, zombies;
    children_of(f.init_pid, &n, &zombies);
    ASSERT_EQ_INT(zombies, 0);
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 200, &err), 0);
    close_proc(&p);
    fx_stop(&f);
}

TEST_TIMEOUT(events_during_requests_are_queued, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct sk_agent_proc p[3];
    for (int i = 0; i < 3; i++)
        spawn_argv(&f, (const char *const[]){"true", NULL}, &p[i]);
    usleep(300000);
    /* Requests meanwhile read the EXIT events first and keep them. */
    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "/", true, &st, &err));
    ASSERT_OK(sk_agent_stat(f.a, ".", true, &st, &err));
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        struct sk_agent_event ev;
        ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 0, &err), 1);
        for (int j = 0; j < 3; j++)
            if (ev.proc_id == p[j].id)
                seen[j] = true;
    }
    ASSERT_TRUE(seen[0] && seen[1] && seen[2]);
    for (int i = 0; i < 3; i++)
        close_proc(&p[i]);
    fx_stop(&f);
}

TEST_TIMEOUT(closing_the_socket_kills_processes, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"sleep", "60", NULL}, &p);
    pid_t pid = p.pid;
    close_proc(&p);
    fx_stop(&f); /* asserts skiff-init exits 0 */
    pid_t ppid;
    int64_t deadline = sk_now_ns() + 3000000000LL;
    char st;
    while ((st = proc_state(pid, &ppid)) != 0 && st != 'Z') {
        if (sk_now_ns() > deadline)
            FAIL("process %d survived skiff-init (state %c)", (int)pid, st);
        usleep(20000);
    }
}

/* ---- files ---- */

static void host_path(const struct fx *f, const char *rel, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->root, rel);
}

TEST_TIMEOUT(write_and_read_files, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    ASSERT_OK(sk_agent_write_file(f.a, "a.txt", "hello world", 11, 0640, &err));
    char hp[PATH_MAX];
    host_path(&f, "a.txt", hp, sizeof(hp));
    struct stat hst;
    ASSERT_EQ_INT(stat(hp, &hst), 0);
    ASSERT_EQ_INT(hst.st_mode & 07777, 0640);

    char *data;
    size_t len;
    ASSERT_OK(sk_agent_read_file(f.a, "a.txt", 0, 0, &data, &len, &err));
    ASSERT_EQ_INT(len, 11);
    ASSERT_EQ_STR(data, "hello world");
    free(data);
    ASSERT_OK(sk_agent_read_file(f.a, "/a.txt", 6, 3, &data, &len, &err));
    ASSERT_EQ_STR(data, "wor");
    free(data);
    ASSERT_OK(sk_agent_read_file(f.a, "a.txt", 6, 100, &data, &len, &err));
    ASSERT_EQ_STR(data, "world");
    free(data);
    ASSERT_OK(sk_agent_read_file(f.a, "a.txt", 100, 0, &data, &len, &err));
    ASSERT_EQ_INT(len, 0);
    ASSERT_EQ_STR(data, "");
    free(data);

    /* A larger file, overwritten atomically. */
    size_t big = 300000;
    char *buf = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)('a' + i % 26);
    ASSERT_OK(sk_agent_write_file(f.a, "a.txt", buf, big, 0600, &err));
    ASSERT_OK(sk_agent_read_file(f.a, "a.txt", 0, 0, &data, &len, &err));
    ASSERT_EQ_INT(len, big);
    ASSERT_TRUE(memcmp(data, buf, big) == 0);
    free(data);
    free(buf);

    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "a.txt", false, &st, &err));
    ASSERT_EQ_INT(st.type, 'f');
    ASSERT_EQ_INT(st.mode, 0600);
    ASSERT_EQ_INT(st.size, big);
    ASSERT_EQ_INT(st.uid, getuid());
    ASSERT_GT_INT(st.mtime_ns, 1000000000LL * 1600000000LL);

    /* Errors keep skiff-init's errno. */
    ASSERT_EQ_INT(sk_agent_read_file(f.a, "missing", 0, 0, &data, &len, &err), -ENOENT);
    ASSERT_CONTAINS(err.msg, "missing");
    ASSERT_EQ_INT(sk_agent_read_file(f.a, "/", 0, 0, &data, &len, &err), -EISDIR);
    ASSERT_EQ_INT(sk_agent_write_file(f.a, "nodir/x", "x", 1, 0644, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_stat(f.a, "", false, &st, &err), -EINVAL);
    ASSERT_EQ_INT(sk_agent_write_file(f.a, "/", "x", 1, 0644, &err), -EINVAL);

    /* Nothing but a.txt is left: no temp files. */
    struct sk_file_entry *e;
    size_t n;
    ASSERT_OK(sk_agent_list(f.a, "/", false, &e, &n, &err));
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_STR(e[0].path, "a.txt");
    sk_file_entries_free(e, n);
    fx_stop(&f);
}

TEST_TIMEOUT(write_begin_commit_and_abort, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    int fd;
    uint32_t h;
    ASSERT_OK(sk_agent_write_begin(f.a, "b.txt", 0644, &fd, &h, &err));
    ASSERT_EQ_INT(write(fd, "partial", 7), 7);
    close(fd);
    struct sk_file_stat st;
    ASSERT_EQ_INT(sk_agent_stat(f.a, "b.txt", false, &st, &err), -ENOENT); /* not there before commit */
    ASSERT_OK(sk_agent_write_abort(f.a, h, &err));
    ASSERT_EQ_INT(sk_agent_stat(f.a, "b.txt", false, &st, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_write_commit(f.a, h, &err), -EBADF); /* handle consumed */

    ASSERT_OK(sk_agent_write_begin(f.a, "b.txt", 0755, &fd, &h, &err));
    ASSERT_EQ_INT(write(fd, "#!/bin/sh\n", 10), 10);
    ASSERT_OK(sk_agent_write_commit(f.a, h, &err));
    close(fd);
    ASSERT_OK(sk_agent_stat(f.a, "b.txt", false, &st, &err));
    ASSERT_EQ_INT(st.mode, 0755);
    ASSERT_EQ_INT(st.size, 10);

    struct sk_file_entry *e;
    size_t n;
    ASSERT_OK(sk_agent_list(f.a, ".", false, &e, &n, &err));
    ASSERT_EQ_INT(n, 1);
    sk_file_entries_free(e, n);
    ASSERT_EQ_INT(sk_agent_write_begin(f.a, "b.txt", 010000, &fd, &h, &err), -EINVAL);
    fx_stop(&f);
}

static const struct sk_file_entry *find_entry(const struct sk_file_entry *e, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].path, path) == 0)
            return &e[i];
    return NULL;
}

TEST_TIMEOUT(stat_list_mkdir_remove_rename, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    ASSERT_OK(sk_agent_mkdir(f.a, "d/e/f", 0750, true, &err));
    ASSERT_OK(sk_agent_mkdir(f.a, "d/e/f", 0750, true, &err)); /* -p: existing is fine */
    ASSERT_EQ_INT(sk_agent_mkdir(f.a, "d/e", 0700, false, &err), -EEXIST);
    ASSERT_EQ_INT(sk_agent_mkdir(f.a, "x/y", 0700, false, &err), -ENOENT);
    ASSERT_OK(sk_agent_mkdir(f.a, "d/g", 0700, false, &err));
    ASSERT_OK(sk_agent_write_file(f.a, "d/x", "1", 1, 0644, &err));
    ASSERT_OK(sk_agent_write_file(f.a, "d/e/y", "22", 2, 0644, &err));
    ASSERT_EQ_INT(sk_agent_mkdir(f.a, "d/x/z", 0700, true, &err), -ENOTDIR);
    ASSERT_EQ_INT(sk_agent_mkdir(f.a, "d/x", 0700, true, &err), -EEXIST);
    char hp[PATH_MAX];
    host_path(&f, "d/link", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink("/", hp), 0);

    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "d/e/f", false, &st, &err));
    ASSERT_EQ_INT(st.type, 'd');
    ASSERT_EQ_INT(st.mode, 0750);
    ASSERT_OK(sk_agent_stat(f.a, "d/link", false, &st, &err));
    ASSERT_EQ_INT(st.type, 'l');
    ASSERT_OK(sk_agent_stat(f.a, "d/link", true, &st, &err)); /* "/" inside the root */
    ASSERT_EQ_INT(st.type, 'd');

    struct sk_file_entry *e;
    size_t n;
    ASSERT_OK(sk_agent_list(f.a, "d", false, &e, &n, &err));
    ASSERT_EQ_INT(n, 4);
    ASSERT_TRUE(find_entry(e, n, "x") && find_entry(e, n, "e") && find_entry(e, n, "g") && find_entry(e, n, "link"));
    sk_file_entries_free(e, n);
    ASSERT_OK(sk_agent_list(f.a, "d", true, &e, &n, &err));
    ASSERT_EQ_INT(n, 6); /* x e e/y e/f g link - and nothing below the symlink */
    const struct sk_file_entry *y = find_entry(e, n, "e/y");
    ASSERT_TRUE(y != NULL);
    ASSERT_EQ_INT(y->st.type, 'f');
    ASSERT_EQ_INT(y->st.size, 2);
    ASSERT_EQ_INT(find_entry(e, n, "e/f")->st.type, 'd');
    ASSERT_EQ_INT(find_entry(e, n, "link")->st.type, 'l');
    sk_file_entries_free(e, n);
    ASSERT_EQ_INT(sk_agent_list(f.a, "d/x", false, &e, &n, &err), -ENOTDIR);

    ASSERT_OK(sk_agent_rename(f.a, "d/x", "d/e/x2", &err));
    ASSERT_EQ_INT(sk_agent_stat(f.a, "d/x", false, &st, &err), -ENOENT);
    char *data;
    size_t len;
    ASSERT_OK(sk_agent_read_file(f.a, "d/e/x2", 0, 0, &data, &len, &err));
    ASSERT_EQ_STR(data, "1");
    free(data);
    ASSERT_EQ_INT(sk_agent_rename(f.a, "d/nope", "d/x3", &err), -ENOENT);

    ASSERT_EQ_INT(sk_agent_remove(f.a, "d", false, &err), -ENOTEMPTY);
    ASSERT_OK(sk_agent_remove(f.a, "d/g", false, &err));
    ASSERT_OK(sk_agent_remove(f.a, "d/e/x2", false, &err));
    ASSERT_OK(sk_agent_remove(f.a, "d", true, &err));
    ASSERT_EQ_INT(sk_agent_stat(f.a, "d", false, &st, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_remove(f.a, "d", true, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_remove(f.a, "/", true, &err), -EINVAL);
    ASSERT_EQ_INT(sk_agent_remove(f.a, "..", true, &err), -EINVAL);
    ASSERT_EQ_INT(sk_agent_remove(f.a, "a/..", true, &err), -EINVAL);
    /* The root itself is intact. */
    ASSERT_OK(sk_agent_stat(f.a, "/", false, &st, &err));
    ASSERT_EQ_INT(st.type, 'd');

    /* A listing larger than one message comes in several chunks. */
    ASSERT_OK(sk_agent_mkdir(f.a, "many", 0755, false, &err));
    for (int i = 0; i < 3000; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/many/file-with-a-longish-name-%04d", f.root, i);
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        ASSERT_GE_INT(fd, 0);
        close(fd);
    }
    ASSERT_OK(sk_agent_list(f.a, "many", true, &e, &n, &err));
    ASSERT_EQ_INT(n, 3000);
    sk_file_entries_free(e, n);
    ASSERT_OK(sk_agent_remove(f.a, "many", true, &err));
    fx_stop(&f);
}

TEST_TIMEOUT(paths_and_symlinks_cannot_leave_the_root, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    /* A host directory with a secret, outside the root. */
    char host[64], secret[128], hp[PATH_MAX], target[PATH_MAX];
    snprintf(host, sizeof(host), "/tmp/skiff-host-XXXXXX");
    ASSERT_TRUE(mkdtemp(host) != NULL);
    snprintf(secret, sizeof(secret), "%s/secret", host);
    int fd = open(secret, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_EQ_INT(write(fd, "SECRET", 6), 6);
    close(fd);

    /* Planted inside the root: absolute and relative links to it. */
    host_path(&f, "abs", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(secret, hp), 0);
    host_path(&f, "absdir", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(host, hp), 0);
    snprintf(target, sizeof(target), "../../../../../../../..%s/secret", host);
    host_path(&f, "rel", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(target, hp), 0);
    snprintf(target, sizeof(target), "../../../../../../../..%s", host);
    host_path(&f, "reldir", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(target, hp), 0);
    host_path(&f, "fifo", hp, sizeof(hp));
    ASSERT_EQ_INT(mkfifo(hp, 0644), 0);
    char dotdot[PATH_MAX], dotdot_dir[PATH_MAX];
    snprintf(dotdot, sizeof(dotdot), "../../../../../../../..%s/secret", host);
    snprintf(dotdot_dir, sizeof(dotdot_dir), "../../../../../../../..%s", host);

    char *data = NULL;
    size_t len;
    struct sk_file_stat st;
    const char *reads[] = {"abs", "absdir/secret", "rel", "reldir/secret", dotdot, secret};
    for (size_t i = 0; i < SK_ARRAY_SIZE(reads); i++) {
        int r = sk_agent_read_file(f.a, reads[i], 0, 0, &data, &len, &err);
        if (r >= 0)
            FAIL("read '%s' succeeded: \"%s\"", reads[i], data);
        ASSERT_EQ_INT(err.code, ENOENT);
        ASSERT_EQ_INT(sk_agent_stat(f.a, reads[i], true, &st, &err), -ENOENT);
    }
    /* A FIFO is refused without blocking. */
    ASSERT_EQ_INT(sk_agent_read_file(f.a, "fifo", 0, 0, &data, &len, &err), -EINVAL);

    const char *writes[] = {"absdir/secret", "reldir/secret", dotdot, secret};
    for (size_t i = 0; i < SK_ARRAY_SIZE(writes); i++)
        ASSERT_LT_INT(sk_agent_write_file(f.a, writes[i], "EVIL", 4, 0644, &err), 0);
    /* Writing "abs" replaces the link inside the root, not its target. */
    ASSERT_OK(sk_agent_write_file(f.a, "abs", "EVIL", 4, 0644, &err));
    ASSERT_OK(sk_agent_stat(f.a, "abs", false, &st, &err));
    ASSERT_EQ_INT(st.type, 'f');

    struct sk_file_entry *e;
    size_t n;
    ASSERT_EQ_INT(sk_agent_list(f.a, "absdir", false, &e, &n, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_list(f.a, dotdot_dir, false, &e, &n, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_mkdir(f.a, "absdir/new", 0755, false, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_mkdir(f.a, "reldir/new", 0755, true, &err), -ENOENT); /* dangling inside the root */
    ASSERT_LT_INT(sk_agent_remove(f.a, "absdir/secret", false, &err), 0);
    ASSERT_LT_INT(sk_agent_remove(f.a, dotdot, false, &err), 0);
    ASSERT_LT_INT(sk_agent_rename(f.a, dotdot, "stolen", &err), 0);
    ASSERT_LT_INT(sk_agent_rename(f.a, "absdir/secret", "stolen", &err), 0);
    /* Removing the links removes the links only. */
    ASSERT_OK(sk_agent_remove(f.a, "absdir", true, &err));
    ASSERT_OK(sk_agent_remove(f.a, "rel", true, &err));
    /* A tree holding a link to the host directory: removed without following. */
    ASSERT_OK(sk_agent_mkdir(f.a, "t/u", 0755, true, &err));
    host_path(&f, "t/u/hostlink", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(host, hp), 0);
    ASSERT_OK(sk_agent_list(f.a, "t", true, &e, &n, &err));
    ASSERT_EQ_INT(n, 2); /* u, u/hostlink */
    sk_file_entries_free(e, n);
    ASSERT_OK(sk_agent_remove(f.a, "t", true, &err));

    /* The host file is untouched and alone in its directory. */
    char *content;
    ASSERT_OK(sk_read_file_at(AT_FDCWD, secret, 100, &content, &len, &err));
    ASSERT_EQ_STR(content, "SECRET");
    free(content);
    int count = 0;
    DIR *d = opendir(host);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        count += de->d_name[0] != '.';
    closedir(d);
    ASSERT_EQ_INT(count, 1);
    ASSERT_OK(sk_remove_tree(host, &err));
    fx_stop(&f);
}

/* ---- malformed requests ---- */

/* raw_reply - the next message on fd, decoded (skipping events). */
static void raw_reply(int fd, struct sk_proto_msg *m, uint8_t *rx, size_t cap)
{
    struct sk_error err = {0};
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ASSERT_EQ_INT(poll(&p, 1, 5000), 1);
        int fds[SK_PROTO_MAX_FDS];
        size_t len, nfds;
        ASSERT_EQ_INT(sk_channel_recv(fd, rx, cap, &len, fds, SK_PROTO_MAX_FDS, &nfds, false, &err), 1);
        ASSERT_EQ_INT(nfds, 0);
        ASSERT_OK(sk_proto_decode(rx, len, m, &err));
        if (m->type != SK_PROTO_EXIT)
            return;
    }
}

static void expect_error_reply(int fd, uint32_t id, int code)
{
    static uint8_t rx[SK_PROTO_MSG_MAX];
    struct sk_proto_msg m;
    raw_reply(fd, &m, rx, sizeof(rx));
    ASSERT_EQ_INT(m.type, SK_PROTO_ERROR);
    ASSERT_EQ_INT(m.id, id);
    ASSERT_EQ_INT(m.u.error.code, code);
}

static size_t header(uint8_t *b, uint16_t magic, uint8_t type, uint32_t id, uint32_t plen)
{
    b[0] = (uint8_t)magic;
    b[1] = (uint8_t)(magic >> 8);
    b[2] = 1;
    b[3] = type;
    memcpy(b + 4, &id, 4); /* x86: little-endian */
    memcpy(b + 8, &plen, 4);
    return SK_PROTO_HEADER_SIZE;
}

TEST_TIMEOUT(malformed_requests_get_errors_and_service_continues, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    int fd = sk_agent_fd(f.a);
    static uint8_t b[SK_PROTO_MSG_MAX + 1024];

    /* Random bytes, too short for a header. */
    ASSERT_EQ_INT(send(fd, "\x01\x02\x03\x04\x05", 5, 0), 5);
    expect_error_reply(fd, 0, EPROTO);
    /* Random bytes, long. */
    for (size_t i = 0; i < 200; i++)
        b[i] = (uint8_t)(i * 37 + 11);
    ASSERT_EQ_INT(send(fd, b, 200, 0), 200);
    expect_error_reply(fd, (uint32_t)(b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24), EPROTO);
    /* Wrong magic. */
    size_t n = header(b, 0x1234, SK_PROTO_HELLO, 778, 4);
    memset(b + n, 0, 4);
    ASSERT_EQ_INT(send(fd, b, n + 4, 0), (ssize_t)(n + 4));
    expect_error_reply(fd, 778, EPROTO);
    /* Length field larger than the payload, and smaller. */
    n = header(b, SK_PROTO_MAGIC, SK_PROTO_HELLO, 779, 100);
    ASSERT_EQ_INT(send(fd, b, n + 4, 0), (ssize_t)(n + 4));
    expect_error_reply(fd, 779, EPROTO);
    n = header(b, SK_PROTO_MAGIC, SK_PROTO_HELLO, 780, 2);
    ASSERT_EQ_INT(send(fd, b, n + 4, 0), (ssize_t)(n + 4));
    expect_error_reply(fd, 780, EPROTO);
    /* Unknown type; a reply type sent as a request. */
    n = header(b, SK_PROTO_MAGIC, 200, 781, 0);
    ASSERT_EQ_INT(send(fd, b, n, 0), (ssize_t)n);
    expect_error_reply(fd, 781, EPROTO);
    n = header(b, SK_PROTO_MAGIC, SK_PROTO_OK, 782, 4);
    memset(b + n, 0, 4);
    ASSERT_EQ_INT(send(fd, b, n + 4, 0), (ssize_t)(n + 4));
    expect_error_reply(fd, 782, EPROTO);
    /* A path with a NUL in it. */
    n = header(b, SK_PROTO_MAGIC, SK_PROTO_STAT, 783, 4 + 3 + 1);
    memcpy(b + n, "\x03\0\0\0a\0b\x01", 8);
    ASSERT_EQ_INT(send(fd, b, n + 8, 0), (ssize_t)(n + 8));
    expect_error_reply(fd, 783, EPROTO);
    /* A bad value: signal 0. */
    n = header(b, SK_PROTO_MAGIC, SK_PROTO_SIGNAL, 784, 8);
    memset(b + n, 0, 8);
    ASSERT_EQ_INT(send(fd, b, n + 8, 0), (ssize_t)(n + 8));
    expect_error_reply(fd, 784, EINVAL);
    /* Oversized: more than a message can be. */
    n = header(b, SK_PROTO_MAGIC, SK_PROTO_HELLO, 785, SK_PROTO_PAYLOAD_MAX + 100);
    memset(b + n, 'x', SK_PROTO_PAYLOAD_MAX + 100);
    ASSERT_EQ_INT(send(fd, b, n + SK_PROTO_PAYLOAD_MAX + 100, 0), (ssize_t)(n + SK_PROTO_PAYLOAD_MAX + 100));
    expect_error_reply(fd, 785, EMSGSIZE);
    /* A valid request with an fd attached. */
    struct sk_proto_msg m = {.type = SK_PROTO_HELLO, .id = 786};
    m.u.hello.version = 1;
    ASSERT_OK(sk_proto_encode(&m, b, sizeof(b), &n, &err));
    int p[2];
    ASSERT_EQ_INT(pipe(p), 0);
    ASSERT_OK(sk_channel_send(fd, b, n, p, 2, false, &err));
    close(p[0]);
    close(p[1]);
    expect_error_reply(fd, 786, EPROTO);
    /* An empty record is not the end of the connection. */
    ASSERT_EQ_INT(send(fd, "", 0, 0), 0);
    expect_error_reply(fd, 0, EPROTO);

    /* And after all that, it still serves. */
    pid_t pid;
    ASSERT_OK(sk_agent_hello(f.a, 5000, &pid, &err));
    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "/", false, &st, &err));
    struct sk_agent_proc proc;
    spawn_argv(&f, (const char *const[]){"echo", "still here", NULL}, &proc);
    ASSERT_EQ_STR(read_until_eof(proc.stdout_fd), "still here\n");
    close_proc(&proc);
    fx_stop(&f);
}

/* ---- the host side against a fake, hostile skiff-init ---- */

/* fake_reply - in a child: read one request and answer with `reply` (its
 * id set to the request's) and `nfds` fds, then wait for the peer to go. */
static pid_t fake_init(struct sk_agent *a, int fd, struct sk_proto_msg *reply, const int *fds, size_t nfds,
                       bool raw_garbage)
{
    pid_t pid = fork();
    ASSERT_GE_INT(pid, 0);
    if (pid != 0)
        return pid;
    close(sk_agent_fd(a)); /* so that we see the host's close */
    static uint8_t rx[SK_PROTO_MSG_MAX], tx[SK_PROTO_MSG_MAX];
    struct sk_error err = {0};
    int rfds[SK_PROTO_MAX_FDS];
    size_t len, rn;
    struct sk_proto_msg req;
    if (sk_channel_recv(fd, rx, sizeof(rx), &len, rfds, SK_PROTO_MAX_FDS, &rn, false, &err) != 1 ||
        sk_proto_decode(rx, len, &req, &err) < 0)
        _exit(1);
    if (raw_garbage) {
        if (sk_channel_send(fd, "garbage!garbage!", 16, fds, nfds, false, &err) < 0)
            _exit(1);
    } else {
        reply->id = req.id;
        if (sk_proto_encode(reply, tx, sizeof(tx), &len, &err) < 0 ||
            sk_channel_send(fd, tx, len, fds, nfds, false, &err) < 0)
            _exit(1);
    }
    char c;
    while (read(fd, &c, 1) > 0)
        ;
    _exit(0);
}

static struct sk_agent *fake_pair(int *peer)
{
    int sv[2];
    struct sk_error err = {0};
    ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    struct sk_agent *a;
    ASSERT_OK(sk_agent_new(sv[0], &a, &err));
    sk_agent_set_timeout(a, 2000);
    *peer = sv[1];
    return a;
}

static int count_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

TEST_TIMEOUT(host_side_rejects_bad_replies, 30)
{
    struct sk_error err = {0};
    int peer, p[2];
    ASSERT_EQ_INT(pipe(p), 0);
    int baseline = count_open_fds();

    /* OPEN_READ answered with a pipe instead of a regular file. */
    struct sk_agent *a = fake_pair(&peer);
    struct sk_proto_msg ok = {.type = SK_PROTO_OK};
    pid_t child = fake_init(a, peer, &ok, &p[0], 1, false);
    int fd;
    ASSERT_EQ_INT(sk_agent_open_read(a, "x", &fd, &err), -EPROTO);
    ASSERT_EQ_INT(fd, -1);
    sk_agent_free(a);
    close(peer);
    waitpid(child, NULL, 0);

    /* SPAWN_OK with the wrong fd set. */
    a = fake_pair(&peer);
    struct sk_proto_msg so = {.type = SK_PROTO_SPAWN_OK};
    so.u.spawn_ok.proc_id = 1;
    so.u.spawn_ok.pid = 10;
    so.u.spawn_ok.fds = SK_PROTO_FD_STDOUT;
    child = fake_init(a, peer, &so, &p[0], 1, false);
    struct sk_agent_proc proc;
    struct sk_agent_spawn s = {.argv = (const char *const[]){"x", NULL}};
    ASSERT_EQ_INT(sk_agent_spawn(a, &s, &proc, &err), -EPROTO);
    ASSERT_EQ_INT(proc.stdout_fd, -1);
    sk_agent_free(a);
    close(peer);
    waitpid(child, NULL, 0);

    /* A listing with an entry that climbs out. */
    a = fake_pair(&peer);
    struct sk_proto_entry items[] = {{sk_proto_str_c("ok"), {'f', 0644, 0, 0, 0, 0}},
                                     {sk_proto_str_c("a/../../etc"), {'f', 0644, 0, 0, 0, 0}}};
    struct sk_proto_msg lc = {.type = SK_PROTO_LIST_CHUNK};
    lc.u.list_chunk = (struct sk_proto_list_chunk){.final = true, .count = 2, .items = items};
    child = fake_init(a, peer, &lc, NULL, 0, false);
    struct sk_file_entry *e;
    size_t n;
    ASSERT_EQ_INT(sk_agent_list(a, "/", true, &e, &n, &err), -EPROTO);
    ASSERT_TRUE(e == NULL);
    sk_agent_free(a);
    close(peer);
    waitpid(child, NULL, 0);

    /* An error message with terminal escapes, and a reply with fds where
     * none are due. */
    a = fake_pair(&peer);
    struct sk_proto_msg em = {.type = SK_PROTO_ERROR};
    em.u.error.code = EACCES;
    em.u.error.message = sk_proto_str_c("bad\x1b]0;pwned\x07 thing");
    child = fake_init(a, peer, &em, p, 2, false);
    struct sk_file_stat st;
    ASSERT_EQ_INT(sk_agent_stat(a, "x", false, &st, &err), -EACCES);
    ASSERT_EQ_STR(err.msg, "bad?]0;pwned? thing");
    sk_agent_free(a);
    close(peer);
    waitpid(child, NULL, 0);

    /* Garbage: EPROTO. */
    a = fake_pair(&peer);
    child = fake_init(a, peer, NULL, p, 1, true);
    ASSERT_EQ_INT(sk_agent_stat(a, "x", false, &st, &err), -EPROTO);
    sk_agent_free(a);
    close(peer);
    waitpid(child, NULL, 0);

    /* No answer: ETIMEDOUT in the set time; the peer's end: EPIPE. */
    a = fake_pair(&peer);
    sk_agent_set_timeout(a, 200);
    ASSERT_EQ_INT(sk_agent_stat(a, "x", false, &st, &err), -ETIMEDOUT);
    close(peer);
    ASSERT_EQ_INT(sk_agent_stat(a, "x", false, &st, &err), -EPIPE);
    struct sk_agent_event ev;
    ASSERT_EQ_INT(sk_agent_next_event(a, &ev, 100, &err), -EPIPE);
    sk_agent_free(a);

    /* Every fd the fakes passed was closed again. */
    ASSERT_EQ_INT(count_open_fds(), baseline);
    close(p[0]);
    close(p[1]);
    ASSERT_EQ_INT(sk_agent_new(p[0] + 1000, &a, &err), -EINVAL);
}

/* ---- output to host fds ---- */

static int tmp_file(char *path, size_t size, int flags)
{
    snprintf(path, size, "/tmp/skiff-agent-out-XXXXXX");
    int fd = mkstemp(path);
    ASSERT_GE_INT(fd, 0);
    close(fd);
    fd = open(path, flags | O_CLOEXEC);
    ASSERT_GE_INT(fd, 0);
    return fd;
}

static const char *file_text(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT_GE_INT(fd, 0);
    ssize_t n = sk_read_all(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* holds_file - some fd of process pid refers to path. */
static bool holds_file(pid_t pid, const char *path)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    ASSERT_TRUE(d != NULL);
    struct dirent *de;
    bool found = false;
    while ((de = readdir(d)) != NULL) {
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            found |= strcmp(target, path) == 0;
        }
    }
    closedir(d);
    return found;
}

TEST_TIMEOUT(output_goes_to_host_fds_and_init_keeps_none, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    char out_path[64], err_path[64];
    int out = tmp_file(out_path, sizeof(out_path), O_WRONLY | O_APPEND);
    int errf = tmp_file(err_path, sizeof(err_path), O_WRONLY | O_APPEND);
    ASSERT_EQ_INT(write(out, "before\n", 7), 7);
    struct sk_agent_proc p;
    struct sk_agent_spawn s = {
        .argv = (const char *const[]){"sh", "-c", "echo out; echo err >&2; sleep 0.3; echo late", NULL},
        .envp = test_env,
        .output_to_fds = true,
        .stdout_fd = out,
        .stderr_fd = errf,
    };
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    /* No pipes come back; ours stay open and skiff-init holds none. */
    ASSERT_EQ_INT(p.stdout_fd, -1);
    ASSERT_EQ_INT(p.stderr_fd, -1);
    ASSERT_EQ_INT(p.stdin_fd, -1);
    ASSERT_GE_INT(fcntl(out, F_GETFD), 0);
    ASSERT_FALSE(holds_file(f.init_pid, out_path));
    ASSERT_FALSE(holds_file(f.init_pid, err_path));
    ASSERT_TRUE(holds_file(p.pid, out_path)); /* the process itself does */
    close(out);
    close(errf);
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    ASSERT_EQ_INT(ev.exit_code, 0);
    /* Appended after what was there: O_APPEND travels with the fd. */
    ASSERT_EQ_STR(file_text(out_path), "before\nout\nlate\n");
    ASSERT_EQ_STR(file_text(err_path), "err\n");

    /* One fd for both, with a stdin pipe. */
    out = open(out_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    ASSERT_GE_INT(out, 0);
    s = (struct sk_agent_spawn){.argv = (const char *const[]){"sh", "-c", "cat; echo e >&2", NULL},
                                .envp = test_env,
                                .want_stdin = true,
                                .output_to_fds = true,
                                .stdout_fd = out,
                                .stderr_fd = out};
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    close(out);
    ASSERT_GE_INT(p.stdin_fd, 0);
    ASSERT_EQ_INT(p.stdout_fd, -1);
    ASSERT_EQ_INT(write(p.stdin_fd, "in\n", 3), 3);
    sk_close(&p.stdin_fd);
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.exit_code, 0);
    ASSERT_EQ_STR(file_text(out_path), "in\ne\n");

    /* What skiff-init refuses: a read-only fd, a directory, a device. */
    int ro = open(out_path, O_RDONLY | O_CLOEXEC);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dev = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int good = open(err_path, O_WRONLY | O_CLOEXEC);
    const int bad[] = {ro, dir, dev};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
        s = (struct sk_agent_spawn){.argv = (const char *const[]){"true", NULL},
                                    .envp = test_env,
                                    .output_to_fds = true,
                                    .stdout_fd = good,
                                    .stderr_fd = bad[i]};
        ASSERT_EQ_INT(sk_agent_spawn(f.a, &s, &p, &err), -EINVAL);
        ASSERT_CONTAINS(err.msg, "stderr");
    }
    /* The host side refuses output fds with a pty, or missing ones. */
    s = (struct sk_agent_spawn){.argv = (const char *const[]){"true", NULL},
                                .pty = true,
                                .output_to_fds = true,
                                .stdout_fd = good,
                                .stderr_fd = good};
    ASSERT_EQ_INT(sk_agent_spawn(f.a, &s, &p, &err), -EINVAL);
    s = (struct sk_agent_spawn){
        .argv = (const char *const[]){"true", NULL}, .output_to_fds = true, .stdout_fd = -1, .stderr_fd = good};
    ASSERT_EQ_INT(sk_agent_spawn(f.a, &s, &p, &err), -EINVAL);
    /* Nothing was started by the refused requests. */
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 200, &err), 0);
    close(ro);
    close(dir);
    close(dev);
    close(good);
    unlink(out_path);
    unlink(err_path);
    fx_stop(&f);
}

/* A SPAWN request that says "output fds" must carry exactly two; any other
 * request carrying fds is refused as before. */
TEST_TIMEOUT(spawn_with_wrong_fd_count_is_refused, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    int fd = sk_agent_fd(f.a);
    static uint8_t b[SK_PROTO_MSG_MAX];
    const char *argv[] = {"true", NULL};
    struct sk_proto_msg m = {.type = SK_PROTO_SPAWN, .id = 900};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 1, .vec = argv};
    m.u.spawn.flags = SK_PROTO_SPAWN_OUTPUT_FDS;
    size_t n;
    ASSERT_OK(sk_proto_encode(&m, b, sizeof(b), &n, &err));
    int p[2];
    ASSERT_EQ_INT(pipe(p), 0);
    ASSERT_OK(sk_channel_send(fd, b, n, &p[1], 1, false, &err));
    expect_error_reply(fd, 900, EPROTO);
    ASSERT_OK(sk_channel_send(fd, b, n, NULL, 0, false, &err));
    expect_error_reply(fd, 900, EPROTO);
    const int three[] = {p[1], p[1], p[1]};
    ASSERT_OK(sk_channel_send(fd, b, n, three, 3, false, &err));
    expect_error_reply(fd, 900, EPROTO);
    /* Without the flag, fds are refused too. */
    m.u.spawn.flags = 0;
    ASSERT_OK(sk_proto_encode(&m, b, sizeof(b), &n, &err));
    ASSERT_OK(sk_channel_send(fd, b, n, three, 2, false, &err));
    expect_error_reply(fd, 900, EPROTO);
    /* skiff-init kept none of them: the pipe's write ends are all ours, so
     * closing ours gives EOF at once. */
    close(p[1]);
    char c;
    ASSERT_EQ_INT(read(p[0], &c, 1), 0);
    close(p[0]);
    /* Without persistence there is nothing to release. */
    struct sk_agent_proc proc;
    spawn_argv(&f, (const char *const[]){"true", NULL}, &proc);
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(sk_agent_release(f.a, proc.id, &err), -ESRCH);
    close_proc(&proc);
    fx_stop(&f);
}

/* ---- persistent skiff-init ---- */

/* fx_reconnect - drop the current connection and connect anew on the
 * listening socket, as a new owner would; returns hello's result. */
static int fx_reconnect(struct fx *f, struct sk_error *out)
{
    struct sk_error err = {0};
    sk_agent_free(f->a);
    f->a = NULL;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ASSERT_GE_INT(fd, 0);
    ASSERT_EQ_INT(connect(fd, (struct sockaddr *)&f->ctl, sizeof(f->ctl)), 0);
    ASSERT_OK(sk_agent_new(fd, &f->a, &err));
    sk_agent_set_timeout(f->a, 5000);
    pid_t pid = 0;
    int r = sk_agent_hello(f->a, 5000, &pid, out);
    if (r == 0)
        ASSERT_EQ_INT(pid, f->init_pid);
    return r;
}

static bool init_alive(const struct fx *f)
{
    return waitpid(f->init_pid, NULL, WNOHANG) == 0;
}

static const struct sk_agent_proc_info *list_find(struct fx *f, uint32_t id, struct sk_agent_proc_info **v, size_t *n)
{
    struct sk_error err = {0};
    free(*v);
    ASSERT_OK(sk_agent_list_procs(f->a, v, n, &err));
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].id == id)
            return &(*v)[i];
    return NULL;
}

TEST_TIMEOUT(persistent_init_survives_eof_and_takes_a_new_owner, 20)
{
    struct fx f;
    fx_start_mode(&f, true);
    struct sk_error err = {0};
    struct sk_agent_proc sleeper;
    spawn_argv(&f, (const char *const[]){"sleep", "60", NULL}, &sleeper);
    close_proc(&sleeper);
    /* The owner goes: skiff-init and its process stay. */
    sk_agent_free(f.a);
    f.a = NULL;
    usleep(200000);
    ASSERT_TRUE(init_alive(&f));
    ASSERT_EQ_INT(kill(sleeper.pid, 0), 0);
    /* A new owner connects and finds it. */
    ASSERT_OK(fx_reconnect(&f, &err));
    struct sk_agent_proc_info *v = NULL;
    size_t n = 0;
    const struct sk_agent_proc_info *pi = list_find(&f, sleeper.id, &v, &n);
    ASSERT_EQ_INT(n, 1);
    ASSERT_TRUE(pi != NULL);
    ASSERT_FALSE(pi->exited);
    ASSERT_EQ_INT(pi->pid, sleeper.pid);
    ASSERT_FALSE(pi->pty || pi->output_to_fds || pi->want_stdin);
    ASSERT_EQ_INT(sk_agent_release(f.a, sleeper.id, &err), -EBUSY);
    /* It serves the new owner fully. */
    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "/", false, &st, &err));
    ASSERT_OK(sk_agent_signal(f.a, sleeper.id, SIGKILL, &err));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, sleeper.id);
    ASSERT_EQ_INT(ev.signo, SIGKILL);
    /* Exited but not released: listed with its status; then forgotten. */
    pi = list_find(&f, sleeper.id, &v, &n);
    ASSERT_TRUE(pi != NULL && pi->exited);
    ASSERT_EQ_INT(pi->end.exit_code, 128 + SIGKILL);
    ASSERT_EQ_INT(sk_agent_signal(f.a, sleeper.id, SIGTERM, &err), -ESRCH);
    ASSERT_OK(sk_agent_release(f.a, sleeper.id, &err));
    ASSERT_TRUE(list_find(&f, sleeper.id, &v, &n) == NULL);
    ASSERT_EQ_INT(n, 0);
    free(v);
    /* Quick owner changes: a closed connection always gives way, even when
     * skiff-init has not read its end yet. */
    for (int i = 0; i < 20; i++)
        ASSERT_OK(fx_reconnect(&f, &err));
    fx_stop(&f);
}

TEST_TIMEOUT(exits_while_nobody_is_connected_are_kept_until_released, 20)
{
    struct fx f;
    fx_start_mode(&f, true);
    struct sk_error err = {0};
    char path[64];
    int out = tmp_file(path, sizeof(path), O_WRONLY | O_APPEND);
    struct sk_agent_proc p[2];
    const char *const *argvs[] = {(const char *const[]){"sh", "-c", "sleep 0.2; echo first", NULL},
                                  (const char *const[]){"sh", "-c", "sleep 0.4; echo second; exit 7", NULL}};
    for (int i = 0; i < 2; i++) {
        struct sk_agent_spawn s = {
            .argv = argvs[i], .envp = test_env, .output_to_fds = true, .stdout_fd = out, .stderr_fd = out};
        ASSERT_OK(sk_agent_spawn(f.a, &s, &p[i], &err));
    }
    close(out);
    sk_agent_free(f.a); /* nobody connected while both end */
    f.a = NULL;
    /* Both gone means both reaped by skiff-init (their parent). */
    for (int i = 0; i < 1000 && (kill(p[0].pid, 0) == 0 || kill(p[1].pid, 0) == 0); i++)
        usleep(10000);
    ASSERT_NE_INT(kill(p[0].pid, 0), 0);
    ASSERT_NE_INT(kill(p[1].pid, 0), 0);
    ASSERT_EQ_STR(file_text(path), "first\nsecond\n");
    /* The EXITs come after HELLO, in the order the processes ended. */
    ASSERT_OK(fx_reconnect(&f, &err));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 2000);
    ASSERT_EQ_INT(ev.proc_id, p[0].id);
    ASSERT_EQ_INT(ev.exit_code, 0);
    wait_event(&f, &ev, 2000);
    ASSERT_EQ_INT(ev.proc_id, p[1].id);
    ASSERT_EQ_INT(ev.exit_code, 7);
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 200, &err), 0);
    /* Not released: the next owner gets them again (its predecessor may
     * have died before storing them). */
    ASSERT_OK(sk_agent_release(f.a, p[0].id, &err));
    ASSERT_OK(fx_reconnect(&f, &err));
    wait_event(&f, &ev, 2000);
    ASSERT_EQ_INT(ev.proc_id, p[1].id);
    ASSERT_EQ_INT(ev.exit_code, 7);
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 200, &err), 0);
    ASSERT_OK(sk_agent_release(f.a, p[1].id, &err));
    ASSERT_OK(fx_reconnect(&f, &err));
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 200, &err), 0);
    unlink(path);
    fx_stop(&f);
}

TEST_TIMEOUT(a_second_owner_is_refused_while_one_is_connected, 20)
{
    struct fx f;
    fx_start_mode(&f, true);
    struct sk_error err = {0};
    for (int i = 0; i < 3; i++) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ASSERT_EQ_INT(connect(fd, (struct sockaddr *)&f.ctl, sizeof(f.ctl)), 0);
        struct sk_agent *second = NULL;
        ASSERT_OK(sk_agent_new(fd, &second, &err));
        ASSERT_EQ_INT(sk_agent_hello(second, 5000, NULL, &err), -EBUSY);
        ASSERT_CONTAINS(err.msg, "another owner");
        sk_agent_free(second);
    }
    /* The first owner never noticed. */
    pid_t pid;
    ASSERT_OK(sk_agent_hello(f.a, 5000, &pid, &err));
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"echo", "first", NULL}, &p);
    ASSERT_EQ_STR(read_until_eof(p.stdout_fd), "first\n");
    close_proc(&p);
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_OK(sk_agent_release(f.a, p.id, &err));
    fx_stop(&f);
}

TEST_TIMEOUT(a_new_owner_reopens_a_running_pty, 20)
{
    struct fx f;
    fx_start_mode(&f, true);
    struct sk_error err = {0};
    struct sk_agent_proc p;
    struct sk_agent_spawn s = {.argv = (const char *const[]){"cat", NULL}, .envp = test_env, .pty = true};
    ASSERT_OK(sk_agent_spawn(f.a, &s, &p, &err));
    close_proc(&p); /* the first owner's master goes with it */
    ASSERT_OK(fx_reconnect(&f, &err));
    int m = -1;
    ASSERT_OK(sk_agent_open_pty(f.a, p.id, &m, &err));
    ASSERT_TRUE(isatty(m));
    ASSERT_EQ_INT(write(m, "again\n", 6), 6);
    char buf[256] = {0};
    read_until(m, "again\r\nagain\r\n", buf, sizeof(buf)); /* echo, then cat */
    ASSERT_EQ_INT(sk_agent_open_pty(f.a, 4242, &m, &err), -ESRCH);
    struct sk_agent_proc plain;
    spawn_argv(&f, (const char *const[]){"sleep", "60", NULL}, &plain);
    int m2 = -1;
    ASSERT_EQ_INT(sk_agent_open_pty(f.a, plain.id, &m2, &err), -ENOTTY);
    ASSERT_OK(sk_agent_signal(f.a, plain.id, SIGKILL, &err));
    ASSERT_OK(sk_agent_signal(f.a, p.id, SIGKILL, &err));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    wait_event(&f, &ev, 5000);
    close_proc(&plain);
    close(m);
    fx_stop(&f);
}

/* ---- watching files ---- */

/* The watch events read so far, for comparing sequences. */
struct wlog {
    size_t n;
    struct {
        uint32_t id;
        enum sk_agent_watch_kind kind;
        char type;
        uint32_t cookie;
        char *path;
    } e[4096];
    char text[65536];
};

enum { WLOG_TYPES = 1, WLOG_NO_MODIFY = 2, WLOG_IDS = 4 };

static struct wlog *wlog_new(void)
{
    return xcalloc(1, sizeof(struct wlog));
}

static void wlog_reset(struct wlog *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].path);
    l->n = 0;
}

static void wlog_free(struct wlog *l)
{
    wlog_reset(l);
    free(l);
}

/* tmp_name - the temp files of sk_agent_write_file (".skiff-*.tmp") are
 * an implementation detail the tests leave out. */
static bool tmp_name(const char *path)
{
    const char *base = strrchr(path, '/');
    return strncmp(base ? base + 1 : path, ".skiff-", 7) == 0;
}

static bool wlog_has(const struct wlog *l, uint32_t id, enum sk_agent_watch_kind kind, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if ((id == 0 || l->e[i].id == id) && l->e[i].kind == kind && strcmp(l->e[i].path, path) == 0)
            return true;
    return false;
}

/* wlog_text - the events of watch `id` (0: all) as "kind path[ type][ #n]"
 * joined by "; ", where #n numbers cookies by first appearance (so a
 * move_from and its move_to show the same #n). Temp files are left out and
 * a modify repeating the previous entry of its watch is folded into it:
 * how writes split into read batches is timing. */
static const char *wlog_text(struct wlog *l, uint32_t id, unsigned flags)
{
    uint32_t cookies[4096];
    size_t n_cookies = 0;
    char last[SK_AGENT_WATCH_PATH_MAX + 64] = "";
    size_t len = 0;
    l->text[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        if ((id != 0 && l->e[i].id != id) || tmp_name(l->e[i].path))
            continue;
        if ((flags & WLOG_NO_MODIFY) && l->e[i].kind == SK_AGENT_WATCH_MODIFY)
            continue;
        char entry[SK_AGENT_WATCH_PATH_MAX + 64];
        int n = 0;
        if (flags & WLOG_IDS)
            n += snprintf(entry + n, sizeof(entry) - (size_t)n, "w%u ", l->e[i].id);
        n += snprintf(entry + n, sizeof(entry) - (size_t)n, "%s %s", sk_agent_watch_kind_name(l->e[i].kind),
                      l->e[i].path[0] ? l->e[i].path : "\"\"");
        if (flags & WLOG_TYPES)
            n += snprintf(entry + n, sizeof(entry) - (size_t)n, " %c", l->e[i].type);
        if (l->e[i].cookie != 0) {
            size_t k = 0;
            while (k < n_cookies && cookies[k] != l->e[i].cookie)
                k++;
            if (k == n_cookies)
                cookies[n_cookies++] = l->e[i].cookie;
            n += snprintf(entry + n, sizeof(entry) - (size_t)n, " #%zu", k + 1);
        }
        if (l->e[i].kind == SK_AGENT_WATCH_MODIFY && strcmp(entry, last) == 0)
            continue;
        memcpy(last, entry, (size_t)n + 1);
        n = snprintf(l->text + len, sizeof(l->text) - len, "%s%s", len ? "; " : "", entry);
        if (n < 0 || (size_t)n >= sizeof(l->text) - len)
            FAIL("watch log overflows");
        len += (size_t)n;
    }
    return l->text;
}

/* watch_until - read watch events into l until one of watch `id` (0: any)
 * with `kind` at `path` is there; FAIL after 5 s. */
static void watch_until(struct fx *f, struct wlog *l, uint32_t id, enum sk_agent_watch_kind kind, const char *path)
{
    struct sk_error err = {0};
    int64_t deadline = sk_now_ns() + 5000000000LL;
    static struct sk_agent_watch_event ev;
    while (!wlog_has(l, id, kind, path)) {
        int ms = (int)((deadline - sk_now_ns()) / 1000000);
        if (ms <= 0)
            FAIL("no %s '%s' within 5 s; got: %s", sk_agent_watch_kind_name(kind), path,
                 wlog_text(l, 0, WLOG_IDS | WLOG_TYPES));
        int r = sk_agent_next_watch_event(f->a, &ev, ms, &err);
        if (r < 0)
            FAIL("next watch event: %d (%s)", r, err.msg);
        if (r == 0)
            continue;
        if (l->n == SK_ARRAY_SIZE(l->e))
            FAIL("more than %zu watch events", SK_ARRAY_SIZE(l->e));
        l->e[l->n].id = ev.watch_id;
        l->e[l->n].kind = ev.kind;
        l->e[l->n].type = ev.type;
        l->e[l->n].cookie = ev.cookie;
        l->e[l->n].path = xstrdup(ev.path);
        l->n++;
    }
}

/* watch_quiet - no watch event arrives within ms. */
static void watch_quiet(struct fx *f, int ms)
{
    struct sk_error err = {0};
    static struct sk_agent_watch_event ev;
    int r = sk_agent_next_watch_event(f->a, &ev, ms, &err);
    if (r != 0)
        FAIL("expected no watch event, got %d: %s '%s' of watch %u", r, sk_agent_watch_kind_name(ev.kind), ev.path,
             ev.watch_id);
}

static void mkdir_host(const struct fx *f, const char *rel)
{
    char hp[PATH_MAX];
    host_path(f, rel, hp, sizeof(hp));
    ASSERT_EQ_INT(mkdir(hp, 0755), 0);
}

static int run_sh(struct fx *f, const char *script)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd '%s' && %s", f->root, script);
    struct sk_agent_proc p;
    spawn_argv(f, (const char *const[]){"sh", "-c", cmd, NULL}, &p);
    close_proc(&p);
    struct sk_agent_event ev;
    wait_event(f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    return ev.exit_code;
}

TEST_TIMEOUT(watch_reports_file_operations_in_order, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    ASSERT_OK(sk_agent_mkdir(f.a, "w", 0755, false, &err));
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "/w", false, &id, &err));
    ASSERT_NE_INT(id, 0);
    ASSERT_FALSE(sk_agent_has_pending_watch_events(f.a));

    ASSERT_OK(sk_agent_mkdir(f.a, "w/d", 0755, false, &err));
    ASSERT_OK(sk_agent_write_file(f.a, "w/a.txt", "hello", 5, 0644, &err));
    ASSERT_OK(sk_agent_rename(f.a, "w/a.txt", "w/b.txt", &err));
    ASSERT_OK(sk_agent_remove(f.a, "w/b.txt", false, &err));
    /* Not recursive: what happens inside d is not reported, d's removal is. */
    ASSERT_OK(sk_agent_write_file(f.a, "w/d/inner", "x", 1, 0644, &err));
    ASSERT_OK(sk_agent_remove(f.a, "w/d", true, &err));
    ASSERT_OK(sk_agent_mkdir(f.a, "w/end", 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "end");
    /* The atomic write shows as the temp file's move to its name and the
     * close of the written file (skiff-init's last fd of it). */
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES),
                  "create d d; move_to a.txt f #1; modify a.txt f; move_from a.txt ? #2; move_to b.txt f #2; "
                  "delete b.txt ?; delete d d; create end d");
    for (size_t i = 0; i < l->n; i++)
        ASSERT_EQ_INT(l->e[i].id, id);

    /* Writes through the host's fd, and the watched directory's own end. */
    wlog_reset(l);
    int fd;
    uint32_t handle;
    ASSERT_OK(sk_agent_write_begin(f.a, "w/big", 0600, &fd, &handle, &err));
    for (int i = 0; i < 50; i++)
        ASSERT_EQ_INT(write(fd, "0123456789", 10), 10);
    close(fd);
    ASSERT_OK(sk_agent_write_commit(f.a, handle, &err));
    ASSERT_OK(sk_agent_remove(f.a, "w/big", false, &err));
    ASSERT_OK(sk_agent_remove(f.a, "w/end", false, &err));
    ASSERT_OK(sk_agent_remove(f.a, "w", false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_DELETE, "");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES),
                  "move_to big f #1; modify big f; delete big ?; delete end d; delete \"\" d");
    /* A watch whose directory is gone is still there to remove. */
    ASSERT_OK(sk_agent_watch_remove(f.a, id, &err));
    wlog_free(l);
    fx_stop(&f);
}

/* Modifications of a path that one read of inotify brings are one modify,
 * even when they alternate with another path's (the kernel itself merges
 * only identical neighbours). skiff-init is stopped meanwhile, so that all
 * of them are in one read. */
TEST_TIMEOUT(modifications_in_one_batch_coalesce, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &id, &err));
    char pa[PATH_MAX], pb[PATH_MAX];
    host_path(&f, "w/a", pa, sizeof(pa));
    host_path(&f, "w/b", pb, sizeof(pb));
    int a = open(pa, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), b = open(pb, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_TRUE(a >= 0 && b >= 0);
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "b");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES), "create a f; create b f");
    wlog_reset(l);
    ASSERT_EQ_INT(kill(f.init_pid, SIGSTOP), 0);
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ_INT(write(a, "a", 1), 1);
        ASSERT_EQ_INT(write(b, "b", 1), 1);
    }
    close(a);
    close(b);
    ASSERT_EQ_INT(kill(f.init_pid, SIGCONT), 0);
    ASSERT_OK(sk_agent_mkdir(f.a, "w/end", 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "end");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES), "modify a f; modify b f; create end d");
    ASSERT_EQ_INT(l->n, 3);
    wlog_free(l);
    fx_stop(&f);
}

TEST_TIMEOUT(watch_reports_changes_made_by_processes, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &id, &err));
    ASSERT_EQ_INT(run_sh(&f, "cd w && echo hi > a && echo more >> a && mv a b && rm b && mkdir sub && rmdir sub && "
                             "ln -s /etc l && touch end"),
                  0);
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "end");
    /* Types are left out: by the time skiff-init looks, a and b are gone. */
    ASSERT_EQ_STR(wlog_text(l, id, 0), "create a; modify a; move_from a #1; move_to b #1; delete b; create sub; "
                                       "delete sub; create l; create end");
    ASSERT_EQ_INT(l->e[l->n - 2].type, 'l');
    wlog_free(l);
    fx_stop(&f);
}

/* EXIT events and watch events share the socket: whichever function reads
 * it, each lands in its own queue. */
TEST_TIMEOUT(exits_and_watch_events_both_arrive, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &id, &err));
    /* sk_agent_next_event reads past 200 watch events to the EXIT. */
    struct sk_agent_proc p;
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd), "cd '%s/w' && i=1; while [ $i -le 100 ]; do : > f$i; i=$((i+1)); done; exit 3", f.root);
    spawn_argv(&f, (const char *const[]){"sh", "-c", cmd, NULL}, &p);
    close_proc(&p);
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    ASSERT_EQ_INT(ev.exit_code, 3);
    ASSERT_FALSE(sk_agent_has_pending_events(f.a));
    watch_until(&f, l, id, SK_AGENT_WATCH_MODIFY, "f100");
    char want[4096];
    size_t n = 0;
    for (int i = 1; i <= 100; i++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%screate f%d; modify f%d", i > 1 ? "; " : "", i, i);
    ASSERT_EQ_STR(wlog_text(l, id, 0), want);

    /* sk_agent_next_watch_event reads past the EXIT and keeps it. */
    wlog_reset(l);
    snprintf(cmd, sizeof(cmd), "touch '%s/w/g1'; exit 7", f.root);
    spawn_argv(&f, (const char *const[]){"sh", "-c", cmd, NULL}, &p);
    close_proc(&p);
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "g1");
    int64_t deadline = sk_now_ns() + 5000000000LL;
    while (!sk_agent_has_pending_events(f.a) && sk_now_ns() < deadline) {
        static struct sk_agent_watch_event wev;
        ASSERT_GE_INT(sk_agent_next_watch_event(f.a, &wev, 50, &err), 0);
    }
    ASSERT_TRUE(sk_agent_has_pending_events(f.a));
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 0, &err), 1);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    ASSERT_EQ_INT(ev.exit_code, 7);
    /* Requests queue both kinds too. */
    wlog_reset(l);
    snprintf(cmd, sizeof(cmd), "touch '%s/w/g2'", f.root);
    spawn_argv(&f, (const char *const[]){"sh", "-c", cmd, NULL}, &p);
    close_proc(&p);
    usleep(300000);
    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "w", false, &st, &err));
    ASSERT_OK(sk_agent_stat(f.a, "w", false, &st, &err));
    ASSERT_TRUE(sk_agent_has_pending_events(f.a));
    ASSERT_TRUE(sk_agent_has_pending_watch_events(f.a));
    ASSERT_EQ_INT(sk_agent_next_event(f.a, &ev, 0, &err), 1);
    ASSERT_EQ_INT(ev.proc_id, p.id);
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "g2");
    wlog_free(l);
    fx_stop(&f);
}

TEST_TIMEOUT(recursive_watch_follows_the_tree, 30)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "r");
    mkdir_host(&f, "r/a");
    mkdir_host(&f, "r/a/b");
    mkdir_host(&f, "out");
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "r", true, &id, &err));

    /* Directories that were there. */
    ASSERT_OK(sk_agent_write_file(f.a, "r/a/b/f1", "1", 1, 0644, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_MOVE_TO, "a/b/f1");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES | WLOG_NO_MODIFY), "move_to a/b/f1 f #1");

    /* A directory created after the watch started. */
    wlog_reset(l);
    ASSERT_OK(sk_agent_mkdir(f.a, "r/new", 0755, false, &err));
    ASSERT_OK(sk_agent_write_file(f.a, "r/new/x", "x", 1, 0644, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_MOVE_TO, "new/x");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES | WLOG_NO_MODIFY), "create new d; move_to new/x f #1");

    /* A tree made by a process faster than skiff-init reads: what a new
     * directory held before its watch existed is reported as created. */
    wlog_reset(l);
    ASSERT_EQ_INT(run_sh(&f, "mkdir -p r/s1/s2 && echo hi > r/s1/s2/f && mkdir r/s1/s2/s3 && touch r/s1/s2/s3/end"), 0);
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "s1/s2/s3/end");
    const char *t = wlog_text(l, id, WLOG_NO_MODIFY);
    ASSERT_TRUE(strncmp(t, "create s1; ", 11) == 0);
    const char *p2 = strstr(t, "create s1/s2;"), *pf = strstr(t, "create s1/s2/f;"),
               *p3 = strstr(t, "create s1/s2/s3;");
    if (p2 == NULL || pf == NULL || p3 == NULL || pf < p2 || p3 < p2)
        FAIL("unexpected events: %s", t);
    /* And it is watched. */
    wlog_reset(l);
    ASSERT_OK(sk_agent_remove(f.a, "r/s1/s2/s3/end", false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_DELETE, "s1/s2/s3/end");

    /* A directory renamed inside the watch keeps being watched, under its
     * new name. */
    wlog_reset(l);
    ASSERT_OK(sk_agent_rename(f.a, "r/a", "r/c", &err));
    ASSERT_OK(sk_agent_write_file(f.a, "r/c/b/g", "g", 1, 0644, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_MOVE_TO, "c/b/g");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES | WLOG_NO_MODIFY),
                  "move_from a d #1; move_to c d #1; move_to c/b/g f #2");

    /* Moved out: nothing more from it. Moved back in: watched again. */
    wlog_reset(l);
    ASSERT_OK(sk_agent_rename(f.a, "r/c", "out/c", &err));
    ASSERT_OK(sk_agent_write_file(f.a, "out/c/b/h", "h", 1, 0644, &err));
    ASSERT_OK(sk_agent_mkdir(f.a, "r/end2", 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "end2");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES | WLOG_NO_MODIFY), "move_from c d #1; create end2 d");
    wlog_reset(l);
    ASSERT_OK(sk_agent_rename(f.a, "out/c", "r/back", &err));
    ASSERT_OK(sk_agent_write_file(f.a, "r/back/b/i", "i", 1, 0644, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_MOVE_TO, "back/b/i");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_TYPES | WLOG_NO_MODIFY), "move_to back d #1; move_to back/b/i f #2");

    /* A non-recursive watch of the same tree sees only its top level; both
     * share the kernel's watch of r, and removing one keeps the other. */
    uint32_t top = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "r", false, &top, &err));
    ASSERT_NE_INT(top, id);
    wlog_reset(l);
    ASSERT_OK(sk_agent_mkdir(f.a, "r/back/deep", 0755, false, &err));
    ASSERT_OK(sk_agent_mkdir(f.a, "r/both", 0755, false, &err));
    watch_until(&f, l, top, SK_AGENT_WATCH_CREATE, "both");
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "both");
    ASSERT_EQ_STR(wlog_text(l, top, WLOG_NO_MODIFY), "create both");
    ASSERT_EQ_STR(wlog_text(l, id, WLOG_NO_MODIFY), "create back/deep; create both");
    ASSERT_OK(sk_agent_watch_remove(f.a, id, &err));
    wlog_reset(l);
    ASSERT_OK(sk_agent_mkdir(f.a, "r/after", 0755, false, &err));
    watch_until(&f, l, top, SK_AGENT_WATCH_CREATE, "after");
    ASSERT_EQ_STR(wlog_text(l, 0, WLOG_IDS), l->n == 1 ? l->text : "one event");
    ASSERT_EQ_INT(l->n, 1);
    wlog_free(l);
    fx_stop(&f);
}

/* A symlink inside the root that points at a host directory resolves inside
 * the root (so it is refused here), and a recursive watch never follows
 * one: nothing that happens in the host directory is ever reported. */
TEST_TIMEOUT(watches_cannot_leave_the_root, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    char host[] = "/tmp/skiff-watch-host-XXXXXX";
    ASSERT_TRUE(mkdtemp(host) != NULL);
    char hp[PATH_MAX], target[PATH_MAX];
    host_path(&f, "esc", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(host, hp), 0);
    host_path(&f, "rel", hp, sizeof(hp));
    snprintf(target, sizeof(target), "../../../../../../../..%s", host);
    ASSERT_EQ_INT(symlink(target, hp), 0);
    uint32_t id = 0;
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "esc", false, &id, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "esc/", true, &id, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "rel", true, &id, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, host, true, &id, &err), -ENOENT);
    ASSERT_EQ_INT(id, 0);
    /* The same link resolves to the root's own directory when there is one. */
    ASSERT_OK(sk_agent_mkdir(f.a, host, 0755, true, &err));
    ASSERT_OK(sk_agent_watch_add(f.a, "esc", false, &id, &err));
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%s/mine", host);
    ASSERT_OK(sk_agent_mkdir(f.a, rel, 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "mine");
    ASSERT_OK(sk_agent_watch_remove(f.a, id, &err));

    /* The whole root, recursively, with the links in it. */
    wlog_reset(l);
    ASSERT_OK(sk_agent_watch_add(f.a, "/", true, &id, &err));
    char hf[PATH_MAX];
    snprintf(hf, sizeof(hf), "%s/x", host);
    int fd = open(hf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE_INT(fd, 0);
    ASSERT_EQ_INT(write(fd, "x", 1), 1);
    close(fd);
    ASSERT_OK(sk_agent_mkdir(f.a, "sentinel", 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "sentinel");
    ASSERT_EQ_STR(wlog_text(l, 0, WLOG_TYPES), "create sentinel d");
    /* A link planted later is reported as a link and not followed. */
    wlog_reset(l);
    host_path(&f, "sentinel/later", hp, sizeof(hp));
    ASSERT_EQ_INT(symlink(host, hp), 0);
    snprintf(hf, sizeof(hf), "%s/y", host);
    fd = open(hf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE_INT(fd, 0);
    close(fd);
    ASSERT_OK(sk_agent_mkdir(f.a, "sentinel2", 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "sentinel2");
    ASSERT_EQ_STR(wlog_text(l, 0, WLOG_TYPES), "create sentinel/later l; create sentinel2 d");
    watch_quiet(&f, 200);
    ASSERT_OK(sk_remove_tree(host, &err));
    wlog_free(l);
    fx_stop(&f);
}

TEST_TIMEOUT(watch_remove_stops_events, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t id1 = 0, id2 = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &id1, &err));
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &id2, &err));
    ASSERT_NE_INT(id1, id2);
    ASSERT_OK(sk_agent_mkdir(f.a, "w/one", 0755, false, &err));
    watch_until(&f, l, id1, SK_AGENT_WATCH_CREATE, "one");
    watch_until(&f, l, id2, SK_AGENT_WATCH_CREATE, "one");
    /* Events still queued here go with the watch. */
    ASSERT_OK(sk_agent_mkdir(f.a, "w/queued", 0755, false, &err));
    ASSERT_OK(sk_agent_remove(f.a, "w/queued", false, &err));
    struct sk_file_stat st;
    ASSERT_OK(sk_agent_stat(f.a, "w", false, &st, &err));
    ASSERT_OK(sk_agent_watch_remove(f.a, id1, &err));
    ASSERT_EQ_INT(sk_agent_watch_remove(f.a, id1, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_watch_remove(f.a, 999999, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_watch_remove(f.a, 0, &err), -ENOENT);
    wlog_reset(l);
    ASSERT_OK(sk_agent_mkdir(f.a, "w/two", 0755, false, &err));
    watch_until(&f, l, id2, SK_AGENT_WATCH_CREATE, "two");
    char want[256];
    snprintf(want, sizeof(want), "w%u create queued; w%u delete queued; w%u create two", id2, id2, id2);
    ASSERT_EQ_STR(wlog_text(l, 0, WLOG_IDS), want);
    ASSERT_OK(sk_agent_watch_remove(f.a, id2, &err));
    ASSERT_OK(sk_agent_mkdir(f.a, "w/three", 0755, false, &err));
    ASSERT_OK(sk_agent_stat(f.a, "w", false, &st, &err));
    watch_quiet(&f, 300);
    ASSERT_FALSE(sk_agent_has_pending_watch_events(f.a));
    wlog_free(l);
    fx_stop(&f);
}

TEST_TIMEOUT(watch_limits_and_errors, 30)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    mkdir_host(&f, "w");
    ASSERT_OK(sk_agent_write_file(f.a, "w/file", "x", 1, 0644, &err));
    uint32_t id = 0, ids[64];
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "missing", false, &id, &err), -ENOENT);
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "w/file", false, &id, &err), -ENOTDIR);
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "", false, &id, &err), -EINVAL);
    for (int i = 0; i < 64; i++)
        ASSERT_OK(sk_agent_watch_add(f.a, "w", i % 2 == 0, &ids[i], &err));
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "w", false, &id, &err), -ENOSPC);
    ASSERT_CONTAINS(err.msg, "64");
    ASSERT_OK(sk_agent_watch_remove(f.a, ids[10], &err));
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &ids[10], &err));
    for (int i = 0; i < 64; i++)
        ASSERT_OK(sk_agent_watch_remove(f.a, ids[i], &err));

    /* 8193 directories (big and 8192 below it) are one too many; the
     * failed watch leaves nothing behind. */
    mkdir_host(&f, "big");
    char hp[PATH_MAX];
    for (int i = 0; i < 8192; i++) {
        snprintf(hp, sizeof(hp), "%s/big/%c%04d", f.root, 'a' + i % 8, i);
        ASSERT_EQ_INT(mkdir(hp, 0755), 0);
    }
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "big", true, &id, &err), -ENOSPC);
    ASSERT_CONTAINS(err.msg, "8192");
    ASSERT_CONTAINS(err.msg, "big");
    uint32_t more;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &more, &err));
    ASSERT_OK(sk_agent_watch_remove(f.a, more, &err));
    snprintf(hp, sizeof(hp), "%s/big/a0000", f.root);
    ASSERT_EQ_INT(rmdir(hp), 0);
    ASSERT_OK(sk_agent_watch_add(f.a, "big", true, &id, &err)); /* now exactly 8192 */
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "w", false, &more, &err), -ENOSPC);
    ASSERT_OK(sk_agent_watch_remove(f.a, id, &err));
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &more, &err));
    fx_stop(&f);
}

/* Watches belong to the connection: a new owner of a persistent sandbox
 * starts with none (all 64 are free again) and gets no events of the old
 * ones. */
TEST_TIMEOUT(watches_end_with_their_connection, 20)
{
    struct fx f;
    fx_start_mode(&f, true);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t ids[64], id;
    for (int i = 0; i < 64; i++)
        ASSERT_OK(sk_agent_watch_add(f.a, "w", true, &ids[i], &err));
    ASSERT_EQ_INT(sk_agent_watch_add(f.a, "w", false, &id, &err), -ENOSPC);
    ASSERT_OK(fx_reconnect(&f, &err));
    for (int i = 0; i < 64; i++)
        ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &ids[i], &err));
    for (int i = 1; i < 64; i++)
        ASSERT_OK(sk_agent_watch_remove(f.a, ids[i], &err));
    ASSERT_OK(sk_agent_mkdir(f.a, "w/x", 0755, false, &err));
    watch_until(&f, l, ids[0], SK_AGENT_WATCH_CREATE, "x");
    ASSERT_EQ_INT(l->n, 1);
    wlog_free(l);
    fx_stop(&f);
}

/* The host side against a hostile skiff-init: events of watches it did not
 * add are dropped, the queue is bounded (then one overflow), and a
 * malformed event fails one call and no more. */
TEST_TIMEOUT(host_side_bounds_watch_events, 30)
{
    struct sk_error err = {0};
    int peer;
    struct sk_agent *a = fake_pair(&peer);
    pid_t child = fork();
    ASSERT_GE_INT(child, 0);
    if (child == 0) {
        close(sk_agent_fd(a));
        static uint8_t rx[SK_PROTO_MSG_MAX], tx[SK_PROTO_MSG_MAX];
        int rfds[SK_PROTO_MAX_FDS];
        size_t len, rn;
        struct sk_proto_msg req, m;
        if (sk_channel_recv(peer, rx, sizeof(rx), &len, rfds, SK_PROTO_MAX_FDS, &rn, false, &err) != 1 ||
            sk_proto_decode(rx, len, &req, &err) < 0 || req.type != SK_PROTO_WATCH_ADD)
            _exit(1);
        m = (struct sk_proto_msg){.type = SK_PROTO_OK, .id = req.id};
        m.u.ok.handle = 5;
        if (sk_proto_encode(&m, tx, sizeof(tx), &len, &err) < 0 || sk_channel_send(peer, tx, len, NULL, 0, false, &err))
            _exit(1);
        for (int i = 0; i < 5000 + 3; i++) {
            char path[32];
            snprintf(path, sizeof(path), "f%d", i);
            m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_EVENT};
            m.u.watch_event.watch_id = i < 5000 ? 5 : 9; /* 9: never added */
            m.u.watch_event.kind = SK_PROTO_WATCH_CREATE;
            m.u.watch_event.type = 'f';
            m.u.watch_event.path = sk_proto_str_c(path);
            if (sk_proto_encode(&m, tx, sizeof(tx), &len, &err) < 0 ||
                sk_channel_send(peer, tx, len, NULL, 0, false, &err) < 0)
                _exit(1);
        }
        m = (struct sk_proto_msg){.type = SK_PROTO_EXIT};
        m.u.exit.proc_id = 1;
        m.u.exit.exit_code = 4;
        if (sk_proto_encode(&m, tx, sizeof(tx), &len, &err) < 0 || sk_channel_send(peer, tx, len, NULL, 0, false, &err))
            _exit(1);
        /* An event whose path climbs out ("ab" patched to ".."), then a
         * good one. */
        m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_EVENT};
        m.u.watch_event.watch_id = 5;
        m.u.watch_event.kind = SK_PROTO_WATCH_DELETE;
        m.u.watch_event.type = '?';
        m.u.watch_event.path = sk_proto_str_c("ab");
        if (sk_proto_encode(&m, tx, sizeof(tx), &len, &err) < 0)
            _exit(1);
        tx[len - 2] = tx[len - 1] = '.';
        if (sk_channel_send(peer, tx, len, NULL, 0, false, &err) < 0)
            _exit(1);
        m.u.watch_event.path = sk_proto_str_c("last");
        if (sk_proto_encode(&m, tx, sizeof(tx), &len, &err) < 0 || sk_channel_send(peer, tx, len, NULL, 0, false, &err))
            _exit(1);
        char c;
        while (read(peer, &c, 1) > 0)
            ;
        _exit(0);
    }
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(a, "w", false, &id, &err));
    ASSERT_EQ_INT(id, 5);
    /* Reading for the EXIT fills the watch queue to its bound. */
    struct sk_agent_event ev;
    ASSERT_EQ_INT(sk_agent_next_event(a, &ev, 10000, &err), 1);
    ASSERT_EQ_INT(ev.exit_code, 4);
    ASSERT_TRUE(sk_agent_has_pending_watch_events(a));
    static struct sk_agent_watch_event wev;
    for (int i = 0; i < SK_AGENT_WATCH_EVENTS_MAX; i++) {
        ASSERT_EQ_INT(sk_agent_next_watch_event(a, &wev, 0, &err), 1);
        char path[32];
        snprintf(path, sizeof(path), "f%d", i);
        ASSERT_EQ_STR(wev.path, path);
        ASSERT_EQ_INT(wev.watch_id, 5);
        ASSERT_EQ_INT(wev.kind, SK_AGENT_WATCH_CREATE);
    }
    ASSERT_EQ_INT(sk_agent_next_watch_event(a, &wev, 0, &err), 1);
    ASSERT_EQ_INT(wev.kind, SK_AGENT_WATCH_OVERFLOW);
    ASSERT_EQ_INT(wev.watch_id, 5);
    ASSERT_EQ_STR(wev.path, "");
    ASSERT_FALSE(sk_agent_has_pending_watch_events(a));
    ASSERT_EQ_INT(sk_agent_next_watch_event(a, &wev, 2000, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "relative");
    ASSERT_EQ_INT(sk_agent_next_watch_event(a, &wev, 2000, &err), 1);
    ASSERT_EQ_STR(wev.path, "last");
    ASSERT_EQ_INT(wev.kind, SK_AGENT_WATCH_DELETE);
    ASSERT_EQ_INT(wev.type, '?');
    ASSERT_EQ_INT(sk_agent_next_watch_event(a, &wev, 100, &err), 0);
    ASSERT_EQ_STR(sk_agent_watch_kind_name(SK_AGENT_WATCH_MOVE_TO), "move_to");
    sk_agent_free(a);
    close(peer);
    int status;
    ASSERT_EQ_INT(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* read_overflow - read watch events until an overflow of watch id; how many
 * came before it. */
static size_t read_until_overflow(struct fx *f, uint32_t id)
{
    struct sk_error err = {0};
    static struct sk_agent_watch_event ev;
    int64_t deadline = sk_now_ns() + 10000000000LL;
    for (size_t n = 0;; n++) {
        int ms = (int)((deadline - sk_now_ns()) / 1000000);
        if (ms <= 0)
            FAIL("no overflow within 10 s (%zu events)", n);
        int r = sk_agent_next_watch_event(f->a, &ev, ms, &err);
        if (r < 0)
            FAIL("next watch event: %s", err.msg);
        if (r == 1 && ev.watch_id == id && ev.kind == SK_AGENT_WATCH_OVERFLOW) {
            ASSERT_EQ_STR(ev.path, "");
            ASSERT_EQ_INT(ev.type, '?');
            return n;
        }
    }
}

/* The kernel's event queue overflows while skiff-init cannot read: the host
 * gets an overflow, and a recursive watch finds the directory whose
 * creation was lost and watches it. */
TEST_TIMEOUT(kernel_overflow_is_reported_and_resynced, 30)
{
    long max_queued = 0;
    FILE *mq = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    if (mq == NULL || fscanf(mq, "%ld", &max_queued) != 1 || max_queued <= 0)
        SKIP("no /proc/sys/fs/inotify/max_queued_events");
    fclose(mq);
    if (max_queued > 2000000)
        SKIP("fs.inotify.max_queued_events is %ld: too many events to overflow quickly", max_queued);
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", true, &id, &err));
    char pa[PATH_MAX], pb[PATH_MAX];
    host_path(&f, "w/a", pa, sizeof(pa));
    host_path(&f, "w/b", pb, sizeof(pb));
    int a = open(pa, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), b = open(pb, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_TRUE(a >= 0 && b >= 0);
    ASSERT_EQ_INT(kill(f.init_pid, SIGSTOP), 0);
    /* Alternating writes: the kernel merges identical neighbours only. */
    for (long i = 0; i < max_queued / 2 + 16; i++) {
        ASSERT_EQ_INT(pwrite(a, "a", 1, 0), 1);
        ASSERT_EQ_INT(pwrite(b, "b", 1, 0), 1);
    }
    close(a);
    close(b);
    mkdir_host(&f, "w/lost"); /* its IN_CREATE does not fit any more */
    ASSERT_EQ_INT(kill(f.init_pid, SIGCONT), 0);
    read_until_overflow(&f, id);
    ASSERT_OK(sk_agent_write_file(f.a, "w/lost/x", "x", 1, 0644, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_MOVE_TO, "lost/x");
    wlog_free(l);
    fx_stop(&f);
}

/* A host that does not read: skiff-init neither blocks nor grows without
 * bound; it drops events, and the overflow it owes arrives once the host
 * reads again, followed by what happens next. */
TEST_TIMEOUT(unread_events_are_dropped_with_an_overflow, 30)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    struct wlog *l = wlog_new();
    mkdir_host(&f, "w");
    uint32_t id = 0;
    ASSERT_OK(sk_agent_watch_add(f.a, "w", false, &id, &err));
    /* A process whose timeout must be enforced while nobody reads. */
    struct sk_agent_proc sleeper;
    struct sk_agent_spawn ss = {
        .argv = (const char *const[]){"sleep", "60", NULL}, .envp = test_env, .timeout_ms = 2500};
    ASSERT_OK(sk_agent_spawn(f.a, &ss, &sleeper, &err));
    close_proc(&sleeper);
    int64_t started = sk_now_ns();
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd), "cd '%s/w' && i=1; while [ $i -le 6000 ]; do : > f$i; i=$((i+1)); done; : > ../done",
             f.root);
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"sh", "-c", cmd, NULL}, &p);
    close_proc(&p);
    char done[PATH_MAX];
    host_path(&f, "done", done, sizeof(done));
    for (int i = 0; i < 2000 && access(done, F_OK) != 0; i++)
        usleep(10000);
    ASSERT_EQ_INT(access(done, F_OK), 0);
    /* skiff-init never blocked on the full socket: it killed and reaped the
     * sleeper on time, and sent both EXITs, without anybody reading. */
    while (sk_now_ns() - started < 3500000000LL)
        usleep(20000);
    pid_t ppid;
    char st = proc_state(sleeper.pid, &ppid);
    if (st != 0)
        FAIL("the sleeper (pid %d) is still there (state %c): skiff-init is stuck", (int)sleeper.pid, st);
    size_t before = read_until_overflow(&f, id);
    ASSERT_GE_INT(before, 4096);  /* its queue held that much */
    ASSERT_LT_INT(before, 12000); /* not everything */
    ASSERT_OK(sk_agent_mkdir(f.a, "w/after", 0755, false, &err));
    watch_until(&f, l, id, SK_AGENT_WATCH_CREATE, "after");
    struct sk_agent_event ev[2];
    wait_event(&f, &ev[0], 5000);
    wait_event(&f, &ev[1], 5000);
    int k = ev[0].proc_id == sleeper.id ? 0 : 1;
    ASSERT_EQ_INT(ev[k].proc_id, sleeper.id);
    ASSERT_TRUE(ev[k].timed_out);
    ASSERT_EQ_INT(ev[1 - k].proc_id, p.id);
    ASSERT_EQ_INT(ev[1 - k].exit_code, 0);
    wlog_free(l);
    fx_stop(&f);
}

/* spawn_start/finish: several starts in flight at once; their answers are
 * kept whoever reads them (here: the event reader and a synchronous call),
 * each process's EXIT comes after its answer, errors come back per ticket. */
TEST_TIMEOUT(spawns_in_flight_are_answered_by_ticket, 20)
{
    struct fx f;
    fx_start(&f);
    struct sk_error err = {0};
    uint32_t t[3];
    ASSERT_OK(sk_agent_spawn_start(
        f.a, &(struct sk_agent_spawn){.argv = (const char *const[]){"sh", "-c", "exit 3", NULL}, .envp = test_env},
        &t[0], &err));
    ASSERT_OK(sk_agent_spawn_start(
        f.a, &(struct sk_agent_spawn){.argv = (const char *const[]){"/no/such/program", NULL}, .envp = test_env}, &t[1],
        &err));
    ASSERT_OK(sk_agent_spawn_start(
        f.a, &(struct sk_agent_spawn){.argv = (const char *const[]){"echo", "hi", NULL}, .envp = test_env}, &t[2],
        &err));
    ASSERT_TRUE(t[0] != t[1] && t[1] != t[2]);
    /* a synchronous call meanwhile reads (and keeps) the answers before its own */
    struct sk_agent_proc p;
    spawn_argv(&f, (const char *const[]){"true", NULL}, &p);
    close_proc(&p);
    struct sk_agent_proc q[3];
    ASSERT_EQ_INT(sk_agent_spawn_finish(f.a, t[0], &q[0], &err), 1);
    ASSERT_EQ_INT(sk_agent_spawn_finish(f.a, t[1], &q[1], &err), -ENOENT);
    ASSERT_CONTAINS(err.msg, "/no/such/program");
    ASSERT_EQ_INT(sk_agent_spawn_finish(f.a, t[2], &q[2], &err), 1);
    ASSERT_EQ_STR(read_until_eof(q[2].stdout_fd), "hi\n");
    /* a ticket is answered once */
    ASSERT_EQ_INT(sk_agent_spawn_finish(f.a, t[0], &q[1], &err), -ENOENT);
    /* every started process reports its end */
    int seen = 0, code0 = -1;
    for (int i = 0; i < 3; i++) {
        struct sk_agent_event ev;
        wait_event(&f, &ev, 5000);
        if (ev.proc_id == q[0].id)
            code0 = ev.exit_code;
        seen |= ev.proc_id == q[0].id ? 1 : ev.proc_id == q[2].id ? 2 : ev.proc_id == p.id ? 4 : 0;
    }
    ASSERT_EQ_INT(seen, 7);
    ASSERT_EQ_INT(code0, 3);
    close_proc(&q[0]);
    close_proc(&q[2]);

    /* an answer that arrives while only events are read is kept too */
    ASSERT_OK(sk_agent_spawn_start(
        f.a, &(struct sk_agent_spawn){.argv = (const char *const[]){"sh", "-c", "exit 5", NULL}, .envp = test_env},
        &t[0], &err));
    struct sk_agent_event ev;
    wait_event(&f, &ev, 5000); /* its EXIT: read behind the answer, which is stashed */
    ASSERT_EQ_INT(sk_agent_spawn_finish(f.a, t[0], &q[0], &err), 1);
    ASSERT_EQ_INT(ev.proc_id, q[0].id);
    ASSERT_EQ_INT(ev.exit_code, 5);
    close_proc(&q[0]);
    /* an abandoned ticket's process is killed and its answer dropped */
    ASSERT_OK(sk_agent_spawn_start(
        f.a, &(struct sk_agent_spawn){.argv = (const char *const[]){"sleep", "30", NULL}, .envp = test_env}, &t[1],
        &err));
    for (int i = 0; i < 100 && sk_agent_spawn_finish(f.a, t[1], &q[1], &err) == 0; i++) {
        struct sk_agent_event none;
        sk_agent_next_event(f.a, &none, 20, NULL);
    }
    close_proc(&q[1]);
    uint32_t killed = q[1].id;
    ASSERT_OK(sk_agent_spawn_start(
        f.a, &(struct sk_agent_spawn){.argv = (const char *const[]){"sleep", "30", NULL}, .envp = test_env}, &t[2],
        &err));
    sk_agent_next_event(f.a, &ev, 200, NULL); /* reads (stashes) its answer */
    sk_agent_spawn_abandon(f.a, t[2]);
    ASSERT_EQ_INT(sk_agent_spawn_finish(f.a, t[2], &q[2], &err), -ENOENT);
    sk_agent_signal(f.a, killed, SIGKILL, NULL);
    for (int i = 0; i < 2; i++) {
        wait_event(&f, &ev, 5000);
        ASSERT_EQ_INT(ev.signo, SIGKILL);
    }
    fx_stop(&f);
}
