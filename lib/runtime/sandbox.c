#include "runtime/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "base/log.h"
#include "base/util.h"
#include "image/image.h"
#include "runtime/rootfs.h"
#include "runtime/security.h"

/* How long the setup children may take before creation is abandoned. */
#define SETUP_TIMEOUT_MS 10000
#define HELLO_TIMEOUT_MS 5000
#define DEFAULT_NOFILE 65536

/* Fixed fd numbers in the sandbox's pid 1 just before it execs skiff-init. */
#define FD_CONTROL 3
#define FD_INIT_EXE 4
#define FD_REPORT 5

struct sk_sandbox {
    struct sk_runtime *rt;
    char id[SK_SANDBOX_ID_LEN + 1];
    char hostname[64];
    int lock_fd;
    struct sk_idrange range;
    struct sk_cgroup *cgroup;
    struct sk_agent *agent;
    pid_t pid;
    int pidfd;
    bool reaped;
    int64_t deadline_ns;
    enum sk_end_reason reason;
    char env_hostname[80];
    const char *default_env[6];
    const char *default_env_pty[7];
};

const char *sk_end_reason_name(enum sk_end_reason r)
{
    switch (r) {
    case SK_END_NONE: return "none";
    case SK_END_EXITED: return "exited";
    case SK_END_TIMEOUT: return "timeout";
    case SK_END_IDLE: return "idle";
    case SK_END_OOM: return "oom";
    case SK_END_TERMINATED: return "terminated";
    case SK_END_ERROR: return "error";
    case SK_END_LOST: return "lost";
    }
    return "unknown";
}

/* ---- the setup children --------------------------------------------------
 * Both run in forked children of a possibly multithreaded process: no
 * allocation, only system calls and snprintf into fixed buffers. They report
 * over a pipe: first the sandbox's host pid, then at most one error. */

enum { REPORT_PID = 1, REPORT_ERROR = 2 };

struct report {
    int32_t kind;
    int32_t code;
    int32_t pid;
    char msg[SK_ERROR_MSG_MAX];
};

struct launch {
    const struct sk_rootfs_plan *plan;
    const struct sk_seccomp *seccomp;
    const struct sk_cgroup *cgroup;
    int init_fd;
    int ctl_child;
    int report_w;
    int sync_r, sync_w;
    bool die_with_owner;
    bool in_cgroup; /* the setup process was born in the cgroup (v2) */
    uint64_t nofile;
    char uid_map[64];
    char gid_map[64];
};

static void report_error(int fd, const struct sk_error *e)
{
    struct report r = {.kind = REPORT_ERROR, .code = e->code};
    memcpy(r.msg, e->msg, sizeof(r.msg));
    ssize_t w = write(fd, &r, sizeof(r));
    (void)w;
}

static __attribute__((noreturn)) void child_fail(int fd, const struct sk_error *e)
{
    report_error(fd, e);
    _exit(1);
}

/* sandbox_main - the sandbox's pid 1 until it becomes skiff-init. */
static __attribute__((noreturn)) void sandbox_main(const struct launch *l)
{
    struct sk_error err = {0};
    char go = 0;
    close(l->sync_w);
    /* Wait until the setup process has written our uid/gid maps and built
     * the mount tree. EOF means it failed (it reported why). */
    if (SK_RETRY_EINTR(read(l->sync_r, &go, 1)) != 1)
        _exit(1);
    close(l->sync_r);
    if (sk_rootfs_enter(l->plan, &err) < 0)
        child_fail(l->report_w, &err);
    /* Become root of the new user namespace: host uid range[0]. */
    if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
        sk_error_set(&err, errno, "become sandbox root");
        child_fail(l->report_w, &err);
    }
    /* Credential changes clear the parent-death signal; set it afterwards. */
    if (l->die_with_owner)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Lay out fds for skiff-init: 0-2 /dev/null, 3 control socket, then the
     * init binary and the report pipe (both close-on-exec); nothing else of
     * the host's open-file table survives. */
    /* The source fds may themselves sit at 3..5 (a CLI opens few files):
     * lift them out of the way first so no dup3 clobbers another. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int ctl = fcntl(l->ctl_child, F_DUPFD_CLOEXEC, 10);
    int exe = fcntl(l->init_fd, F_DUPFD_CLOEXEC, 10);
    int rep = fcntl(l->report_w, F_DUPFD_CLOEXEC, 10);
    if (devnull < 0 || ctl < 0 || exe < 0 || rep < 0) {
        sk_error_set(&err, errno, "set up skiff-init's file descriptors");
        child_fail(l->report_w, &err);
    }
    if (dup3(ctl, FD_CONTROL, 0) < 0 || dup3(exe, FD_INIT_EXE, O_CLOEXEC) < 0 || dup3(rep, FD_REPORT, O_CLOEXEC) < 0 ||
        dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0) {
        sk_error_set(&err, errno, "set up skiff-init's file descriptors");
        child_fail(rep, &err);
    }
    if (syscall(SYS_close_range, FD_REPORT + 1, ~0U, 0) < 0) {
        sk_error_set(&err, errno, "close inherited file descriptors");
        child_fail(FD_REPORT, &err);
    }
    /* Privileges last: capabilities, rlimits, no_new_privs, then seccomp. */
    if (sk_privs_apply(sk_privs_default_caps(), l->nofile, &err) < 0 || sk_seccomp_install(l->seccomp, &err) < 0)
        child_fail(FD_REPORT, &err);
    static char *const argv[] = {(char *)"skiff-init", NULL};
    static char *const envp[] = {(char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    syscall(SYS_execveat, FD_INIT_EXE, "", argv, envp, AT_EMPTY_PATH);
    sk_error_set(&err, errno, "exec skiff-init");
    child_fail(FD_REPORT, &err);
}

static int write_proc_file(pid_t pid, const char *name, const char *data, struct sk_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    return sk_write_file_at(AT_FDCWD, path, data, strlen(data), err);
}

/* setup_main - host root, in a private mount namespace: start the sandbox's
 * pid 1 as a sibling (CLONE_PARENT, so the owner reaps it), map its ids,
 * build its mount tree, then let it go. */
static __attribute__((noreturn)) void setup_main(const struct launch *l)
{
    struct sk_error err = {0};
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        sk_error_set(&err, errno, "make mounts private");
        child_fail(l->report_w, &err);
    }
    /* Join the sandbox's cgroup first so pid 1 starts inside it and its
     * cgroup namespace is rooted there. */
    if (!l->in_cgroup && sk_cgroup_enter(l->cgroup, 0, &err) < 0)
        child_fail(l->report_w, &err);
    long pid = syscall(SYS_clone,
                       CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP |
                           CLONE_PARENT,
                       NULL, NULL, NULL, NULL);
    if (pid < 0) {
        sk_error_set(&err, errno, "clone sandbox namespaces");
        child_fail(l->report_w, &err);
    }
    if (pid == 0)
        sandbox_main(l);
    close(l->sync_r);
    struct report r = {.kind = REPORT_PID, .pid = (int32_t)pid};
    if (sk_write_all(l->report_w, &r, sizeof(r)) < 0) {
        kill((pid_t)pid, SIGKILL);
        _exit(1);
    }
    /* gid_map by a privileged writer: setgroups stays allowed inside. */
    int ret = write_proc_file((pid_t)pid, "uid_map", l->uid_map, &err);
    if (ret == 0)
        ret = write_proc_file((pid_t)pid, "gid_map", l->gid_map, &err);
    /* skiff-init must outlive the programs it watches when memory runs out;
     * it resets its children to 0 (raising the score needs no privilege). */
    if (ret == 0)
        write_proc_file((pid_t)pid, "oom_score_adj", "-998", NULL);
    int userns = -1;
    if (ret == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
        userns = open(path, O_RDONLY | O_CLOEXEC);
        if (userns < 0)
            ret = sk_error_set(&err, errno, "open '%s'", path);
    }
    if (ret == 0)
        ret = sk_rootfs_prepare(l->plan, userns, &err);
    if (ret < 0) {
        kill((pid_t)pid, SIGKILL);
        child_fail(l->report_w, &err);
    }
    char go = 1;
    if (write(l->sync_w, &go, 1) != 1) {
        kill((pid_t)pid, SIGKILL);
        _exit(1);
    }
    _exit(0);
}

/* ---- the owner's side ------------------------------------------------------ */

/* clone3's argument block (linux/sched.h, spelled out to keep glibc's and the
 * kernel's headers apart). */
struct clone3_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#define SK_CLONE_INTO_CGROUP 0x200000000ULL

/* spawn_setup - start the setup process (fork semantics). On cgroup v2 it is
 * born inside the sandbox's cgroup and in a new mount namespace with one
 * clone3(CLONE_INTO_CGROUP | CLONE_NEWNS): moving a running process between
 * cgroups takes a lock that waits for an RCU grace period, milliseconds on a
 * busy host, and is the main source of slow creations on cgroup v1, where
 * no such shortcut exists (see docs/performance.md). */
static pid_t spawn_setup(const struct sk_cgroup *cg, bool *in_cgroup)
{
    *in_cgroup = false;
    int cgfd = sk_cgroup_v2_fd(cg);
    if (cgfd >= 0) {
        struct clone3_args args = {
            .flags = CLONE_NEWNS | SK_CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgfd};
        long pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid >= 0) {
            *in_cgroup = true;
            return (pid_t)pid;
        }
        if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
            return -1;
        /* older kernel: fall back to fork + migration */
    }
    return fork();
}

static int validate_spec(const struct sk_sandbox_spec *s, struct sk_error *err)
{
    if (s->limits.memory_bytes < 0 || (s->limits.memory_bytes > 0 && s->limits.memory_bytes < 4 * 1024 * 1024))
        return sk_error_setv(err, EINVAL, "memory limit must be at least 4 MiB (got %lld bytes)",
                             (long long)s->limits.memory_bytes);
    if (s->limits.cpu < 0 || s->limits.cpu > 1024 || s->limits.cpu != s->limits.cpu)
        return sk_error_setv(err, EINVAL, "cpu must be between 0.01 and 1024 cores (got %g)", s->limits.cpu);
    if (s->limits.cpu > 0 && s->limits.cpu < 0.01)
        return sk_error_setv(err, EINVAL, "cpu must be at least 0.01 cores (got %g)", s->limits.cpu);
    if (s->limits.pids < 0 || s->limits.pids > 4194304)
        return sk_error_setv(err, EINVAL, "pids must be between 1 and 4194304 (got %lld)", (long long)s->limits.pids);
    if (s->disk_bytes < 0 || (s->disk_bytes > 0 && s->disk_bytes < 1024 * 1024))
        return sk_error_setv(err, EINVAL, "disk must be at least 1 MiB (got %lld bytes)", (long long)s->disk_bytes);
    if (s->timeout_ms < 0)
        return sk_error_setv(err, EINVAL, "timeout must not be negative");
    if (s->net != SK_NET_NONE)
        return sk_error_setv(err, EINVAL, "network mode %d is not supported", (int)s->net);
    if (s->hostname != NULL) {
        size_t n = strlen(s->hostname);
        if (n == 0 || n > 63)
            return sk_error_setv(err, EINVAL, "hostname must be 1 to 63 characters");
        for (size_t i = 0; i < n; i++) {
            char c = s->hostname[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                return sk_error_setv(err, EINVAL, "hostname '%s' may only hold letters, digits, '-' and '.'",
                                     s->hostname);
        }
    }
    return 0;
}

/* read_reports - collect the setup children's reports until every writer
 * has closed the pipe (setup exited, pid 1 exec'd skiff-init or died). */
static int read_reports(int fd, pid_t *pid, struct sk_error *err)
{
    int64_t deadline = sk_now_ns() + (int64_t)SETUP_TIMEOUT_MS * 1000000;
    int ret = 0;
    for (;;) {
        int64_t left = (deadline - sk_now_ns()) / 1000000;
        if (left <= 0)
            return sk_error_setv(err, ETIMEDOUT, "sandbox setup did not finish within %d ms", SETUP_TIMEOUT_MS);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sk_error_set(err, errno, "poll setup reports");
        if (n == 0)
            continue;
        struct report r;
        ssize_t got = sk_read_all(fd, &r, sizeof(r));
        if (got == 0)
            return ret;
        if (got != (ssize_t)sizeof(r))
            return ret < 0 ? ret : sk_error_setv(err, EPROTO, "short setup report");
        if (r.kind == REPORT_PID)
            *pid = r.pid;
        else if (r.kind == REPORT_ERROR && ret == 0) {
            r.msg[sizeof(r.msg) - 1] = '\0';
            ret = sk_error_setv(err, r.code > 0 ? r.code : EIO, "%s", r.msg);
        }
    }
}

static void reap(struct sk_sandbox *sb)
{
    if (sb->pid <= 0 || sb->reaped)
        return;
    while (waitpid(sb->pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    sb->reaped = true;
}

/* kill_pid1 - SIGKILL the sandbox's pid 1 and reap it. When the init of a
 * pid namespace dies the kernel kills every other process in it and waits
 * for them, so after the reap nothing of the sandbox runs any more: faster
 * than any cgroup-wide kill, which stays as the backstop. */
static void kill_pid1(struct sk_sandbox *sb)
{
    if (sb->pid <= 0 || sb->reaped)
        return;
    if (sb->pidfd < 0 || syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0) < 0)
        kill(sb->pid, SIGKILL);
    reap(sb);
}

int sk_sandbox_create(struct sk_runtime *rt, const struct sk_sandbox_spec *spec, struct sk_sandbox **out,
                      struct sk_error *err)
{
    int ret = validate_spec(spec, err);
    if (ret < 0)
        return ret;
    struct sk_sandbox *sb = xcalloc(1, sizeof(*sb));
    sb->rt = rt;
    sb->lock_fd = -1;
    sb->pidfd = -1;
    sb->range.lock_fd = -1;
    struct sk_image img = {0};
    _cleanup_free_ struct sk_rootfs_plan *plan = NULL;
    int ctl[2] = {-1, -1}, rep[2] = {-1, -1}, syn[2] = {-1, -1};

    char hex[17];
    if ((ret = sk_random_hex(hex, 8, err)) < 0)
        goto fail;
    snprintf(sb->id, sizeof(sb->id), "sb-%s", hex);
    snprintf(sb->hostname, sizeof(sb->hostname), "%s", spec->hostname ? spec->hostname : sb->id);
    if ((ret = sb->lock_fd = sk_runtime_lock_sandbox(rt, sb->id, err)) < 0)
        goto fail;
    if ((ret = sk_runtime_acquire_range(rt, &sb->range, err)) < 0)
        goto fail;
    if ((ret = sk_image_resolve(sk_runtime_state_dir(rt), spec->image, &img, err)) < 0)
        goto fail;
    if ((ret = sk_rootfs_plan_new(sk_runtime_state_dir(rt), &img, spec, sb->range.host_uid, sb->range.host_gid,
                                  sk_runtime_idmap(rt), sb->hostname, &plan, err)) < 0)
        goto fail;
    if ((ret = sk_cgroup_new(sk_runtime_cgroups(rt), sb->id, &spec->limits, &sb->cgroup, err)) < 0)
        goto fail;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 || pipe2(rep, O_CLOEXEC) < 0 ||
        pipe2(syn, O_CLOEXEC) < 0) {
        ret = sk_error_set(err, errno, "create setup channels");
        goto fail;
    }
    struct launch l = {
        .plan = plan,
        .seccomp = sk_runtime_seccomp(rt),
        .cgroup = sb->cgroup,
        .init_fd = sk_runtime_init_fd(rt),
        .ctl_child = ctl[1],
        .report_w = rep[1],
        .sync_r = syn[0],
        .sync_w = syn[1],
        .die_with_owner = spec->die_with_owner,
        .nofile = DEFAULT_NOFILE,
    };
    /* Raising the hard limit needs CAP_SYS_RESOURCE, which root may lack
     * (in a container, say): never ask for more than we have. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_max != RLIM_INFINITY && nofile.rlim_max < l.nofile)
        l.nofile = nofile.rlim_max;
    snprintf(l.uid_map, sizeof(l.uid_map), "0 %u %u\n", sb->range.host_uid, SK_UID_RANGE);
    snprintf(l.gid_map, sizeof(l.gid_map), "0 %u %u\n", sb->range.host_gid, SK_UID_RANGE);

    pid_t setup = spawn_setup(sb->cgroup, &l.in_cgroup);
    if (setup < 0) {
        ret = sk_error_set(err, errno, "fork setup process");
        goto fail;
    }
    if (setup == 0) {
        close(ctl[0]);
        close(rep[0]);
        if (!l.in_cgroup && unshare(CLONE_NEWNS) < 0) {
            struct sk_error e = {0};
            sk_error_set(&e, errno, "unshare mount namespace");
            child_fail(rep[1], &e);
        }
        setup_main(&l);
    }
    sk_close(&ctl[1]);
    sk_close(&rep[1]);
    sk_close(&syn[0]);
    sk_close(&syn[1]);
    pid_t pid = -1;
    ret = read_reports(rep[0], &pid, err);
    sk_close(&rep[0]);
    int status = 0;
    if (ret == -ETIMEDOUT)
        kill(setup, SIGKILL);
    while (waitpid(setup, &status, 0) < 0 && errno == EINTR)
        ;
    sb->pid = pid;
    if (ret == 0 && pid <= 0)
        ret = sk_error_setv(err, EIO, "sandbox setup ended without starting the sandbox (status %d)", status);
    if (ret < 0)
        goto fail;
    sb->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (sb->pidfd < 0) {
        ret = sk_error_set(err, errno, "pidfd_open");
        goto fail;
    }
    if ((ret = sk_agent_new(steal_fd(&ctl[0]), &sb->agent, err)) < 0)
        goto fail;
    pid_t init_pid = 0;
    if ((ret = sk_agent_hello(sb->agent, HELLO_TIMEOUT_MS, &init_pid, err)) < 0) {
        sk_error_prefix(err, "skiff-init did not answer");
        goto fail;
    }
    if (spec->timeout_ms > 0)
        sb->deadline_ns = sk_now_ns() + spec->timeout_ms * 1000000;
    snprintf(sb->env_hostname, sizeof(sb->env_hostname), "HOSTNAME=%s", sb->hostname);
    sb->default_env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    sb->default_env[1] = "HOME=/root";
    sb->default_env[2] = sb->env_hostname;
    sb->default_env[3] = "LANG=C.UTF-8";
    sb->default_env[4] = NULL;
    memcpy(sb->default_env_pty, sb->default_env, 4 * sizeof(char *));
    sb->default_env_pty[4] = "TERM=xterm-256color";
    sb->default_env_pty[5] = NULL;
    sk_image_release(&img);
    sk_log_debug("sandbox '%s' created (pid %d, uid %u)", sb->id, (int)sb->pid, sb->range.host_uid);
    *out = sb;
    return 0;
fail:
    sk_close(&ctl[0]);
    sk_close(&ctl[1]);
    sk_close(&rep[0]);
    sk_close(&rep[1]);
    sk_close(&syn[0]);
    sk_close(&syn[1]);
    sk_image_release(&img);
    if (sb->pid > 0 && !sb->reaped)
        kill(sb->pid, SIGKILL);
    sk_sandbox_free(sb);
    return ret;
}

void sk_sandbox_free(struct sk_sandbox *sb)
{
    if (sb == NULL)
        return;
    struct sk_error err = {0};
    kill_pid1(sb);
    if (sb->cgroup != NULL && sk_cgroup_destroy(sb->cgroup, &err) < 0)
        sk_log_warn("sandbox '%s': %s", sb->id, err.msg);
    sk_cgroup_free(sb->cgroup);
    sk_agent_free(sb->agent);
    sk_close(&sb->pidfd);
    sk_runtime_release_range(sb->rt, &sb->range);
    sk_runtime_unlock_sandbox(sb->rt, sb->id, &sb->lock_fd);
    free(sb);
}

const char *sk_sandbox_id(const struct sk_sandbox *sb)
{
    return sb->id;
}

struct sk_agent *sk_sandbox_agent(struct sk_sandbox *sb)
{
    return sb->agent;
}

int sk_sandbox_pidfd(const struct sk_sandbox *sb)
{
    return sb->pidfd;
}

pid_t sk_sandbox_pid(const struct sk_sandbox *sb)
{
    return sb->pid;
}

uid_t sk_sandbox_host_uid(const struct sk_sandbox *sb)
{
    return sb->range.host_uid;
}

int64_t sk_sandbox_deadline_ns(const struct sk_sandbox *sb)
{
    return sb->deadline_ns;
}

int sk_sandbox_exec(struct sk_sandbox *sb, const struct sk_agent_spawn *spawn, struct sk_agent_proc *proc,
                    struct sk_error *err)
{
    struct sk_agent_spawn s = *spawn;
    if (s.envp == NULL)
        s.envp = s.pty ? sb->default_env_pty : sb->default_env;
    return sk_agent_spawn(sb->agent, &s, proc, err);
}

uint64_t sk_sandbox_oom_kills(struct sk_sandbox *sb)
{
    struct sk_cgroup_usage u = {0};
    if (sk_cgroup_read_usage(sb->cgroup, &u, NULL) < 0)
        return 0;
    return u.oom_kills;
}

int sk_sandbox_usage(struct sk_sandbox *sb, struct sk_cgroup_usage *u, struct sk_error *err)
{
    return sk_cgroup_read_usage(sb->cgroup, u, err);
}

int sk_sandbox_kill(struct sk_sandbox *sb, enum sk_end_reason reason, struct sk_error *err)
{
    if (sb->reason == SK_END_NONE)
        sb->reason = reason;
    kill_pid1(sb);
    return sk_cgroup_kill(sb->cgroup, err);
}

enum sk_end_reason sk_sandbox_reason(const struct sk_sandbox *sb)
{
    return sb->reason;
}
