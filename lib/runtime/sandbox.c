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
#include <sys/un.h>
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

/* How long an adopted sandbox's pid 1 may take to die after SIGKILL (the
 * kernel first kills and waits for every process of its pid namespace). */
#define ADOPTED_KILL_TIMEOUT_MS 10000
#define CTL_SOCK "ctl.sock"
#define ADOPT_INFO_TAG "skiff-adopt/1"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Fixed fd numbers in the sandbox's pid 1 just before it execs skiff-init
 * (docs/protocol.md: 3 and, for a persistent sandbox, 4 stay open). */
#define FD_CONTROL 3
#define FD_LISTEN 4
#define FD_INIT_EXE 5
#define FD_REPORT 6

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
    bool persistent;
    bool adopted; /* not our child: its end is seen through the pidfd only */
    uint64_t start_time;
    char boot_id[37];
    char *dir; /* persistent: <state>/sandboxes/<id> */
    int64_t deadline_ns;
    enum sk_end_reason reason;
    uint64_t cpu_base_usec; /* CPU time before sk_sandbox_claim: not the user's */
    char env_hostname[80];
    const char *default_env[6];
    const char *default_env_pty[7];
};

const char *sk_net_mode_name(enum sk_net_mode m)
{
    switch (m) {
    case SK_NET_NONE: return "none";
    }
    return "unknown";
}

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
    int listen_fd; /* persistent: the listening control socket, else -1 */
    int report_w;
    int sync_r, sync_w;
    bool die_with_owner;
    bool persistent;
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
    /* A sandbox that outlives its owner leaves the owner's session and
     * process group: a SIGKILL to the owner's group (a shell's kill %1, a
     * supervisor) must not take it along. */
    if (l->persistent && setsid() < 0) {
        sk_error_set(&err, errno, "setsid");
        child_fail(l->report_w, &err);
    }
    /* Lay out fds for skiff-init: 0-2 /dev/null, 3 control socket, 4 the
     * listening socket of a persistent sandbox (else closed), then the init
     * binary and the report pipe (both close-on-exec); nothing else of the
     * host's open-file table survives. */
    /* The source fds may themselves sit at 3..6 (a CLI opens few files),
     * and so may /dev/null: lift them all out of the way first so no dup3
     * clobbers another. */
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int devnull = null_fd >= 0 ? fcntl(null_fd, F_DUPFD_CLOEXEC, 10) : -1;
    int ctl = fcntl(l->ctl_child, F_DUPFD_CLOEXEC, 10);
    int lis = l->listen_fd >= 0 ? fcntl(l->listen_fd, F_DUPFD_CLOEXEC, 10) : -2;
    int exe = fcntl(l->init_fd, F_DUPFD_CLOEXEC, 10);
    int rep = fcntl(l->report_w, F_DUPFD_CLOEXEC, 10);
    if (devnull < 0 || ctl < 0 || lis == -1 || exe < 0 || rep < 0) {
        sk_error_set(&err, errno, "set up skiff-init's file descriptors");
        child_fail(l->report_w, &err);
    }
    if (dup3(ctl, FD_CONTROL, 0) < 0 || (lis >= 0 && dup3(lis, FD_LISTEN, 0) < 0) ||
        dup3(exe, FD_INIT_EXE, O_CLOEXEC) < 0 || dup3(rep, FD_REPORT, O_CLOEXEC) < 0 || dup2(devnull, 0) < 0 ||
        dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0) {
        sk_error_set(&err, errno, "set up skiff-init's file descriptors");
        child_fail(rep, &err);
    }
    if (lis < 0)
        close(FD_LISTEN); /* whatever of the host's sat there (EBADF if nothing) */
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

static bool valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return true;
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
    if (s->persistent && s->die_with_owner)
        return sk_error_setv(err, EINVAL, "a persistent sandbox cannot die with its owner");
    if (s->hostname != NULL) {
        size_t n = strlen(s->hostname);
        if (n == 0 || n > 63)
            return sk_error_setv(err, EINVAL, "hostname must be 1 to 63 characters");
        if (!valid_hostname(s->hostname))
            return sk_error_setv(err, EINVAL, "hostname '%s' may only hold letters, digits, '-' and '.'", s->hostname);
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

/* wait_pidfd_exit - wait (bounded) until the process behind pidfd has
 * exited, and reap it if it happens to be our child (waitid by pidfd, so
 * never another child that reuses the number). True when it has exited. */
static bool wait_pidfd_exit(int pidfd, int timeout_ms)
{
    int64_t deadline = sk_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int64_t left = (deadline - sk_now_ns()) / 1000000;
        int n = poll(&p, 1, left > 0 ? (int)left : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            break;
        if (n < 0 || left <= 0)
            return false;
    }
    siginfo_t si;
    while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | __WALL) < 0 && errno == EINTR)
        ;
    return true;
}

/* kill_pid1 - SIGKILL the sandbox's pid 1 and reap it. When the init of a
 * pid namespace dies the kernel kills every other process in it and waits
 * for them, so after the reap nothing of the sandbox runs any more: faster
 * than any cgroup-wide kill, which stays as the backstop. An adopted
 * sandbox is not our child: it is signalled through its pidfd only (its pid
 * number may be reused once whoever reaps it has) and awaited by polling. */
static void kill_pid1(struct sk_sandbox *sb)
{
    if (sb->pid <= 0 || sb->reaped)
        return;
    if (sb->adopted) {
        if (sb->pidfd >= 0) {
            syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
            if (!wait_pidfd_exit(sb->pidfd, ADOPTED_KILL_TIMEOUT_MS))
                sk_log_warn("sandbox '%s': pid 1 did not exit within %d ms of SIGKILL", sb->id,
                            ADOPTED_KILL_TIMEOUT_MS);
        }
        sb->reaped = true;
        return;
    }
    if (sb->pidfd < 0 || syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0) < 0)
        kill(sb->pid, SIGKILL);
    reap(sb);
}

/* ---- persistent sandboxes: host-side helpers --------------------------- */

static bool parse_dec_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* read_start_time - field 22 of /proc/<pid>/stat: when the process started,
 * in clock ticks after boot. ESRCH when there is no such process. */
static int read_start_time(pid_t pid, uint64_t *out, struct sk_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *data = NULL;
    struct sk_error e = {0};
    if (sk_read_file_at(AT_FDCWD, path, 4096, &data, NULL, &e) < 0)
        return sk_error_setv(err, e.code == ENOENT ? ESRCH : e.code, "%s", e.msg);
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted after its last ')'. */
    const char *p = strrchr(data, ')');
    if (p == NULL)
        return sk_error_setv(err, EPROTO, "cannot parse '%s'", path);
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        const char *end = strchrnul(p, ' ');
        if (field == 22) {
            if (!parse_dec_u64(p, (size_t)(end - p), out))
                return sk_error_setv(err, EPROTO, "cannot parse the start time in '%s'", path);
            return 0;
        }
        if (*end == '\0')
            break;
        p = end;
    }
    return sk_error_setv(err, EPROTO, "cannot parse '%s'", path);
}

static bool valid_boot_id(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
            return false;
    return true;
}

static int read_boot_id(char out[37], struct sk_error *err)
{
    char buf[64];
    _cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sk_error_set(err, errno, "open '/proc/sys/kernel/random/boot_id'");
    ssize_t n = sk_read_all(fd, buf, sizeof(buf) - 1);
    if (n < 36)
        return sk_error_setv(err, EIO, "short boot id");
    memcpy(out, buf, 36);
    out[36] = '\0';
    if (!valid_boot_id(out))
        return sk_error_setv(err, EPROTO, "malformed boot id");
    return 0;
}

/* in_sandbox_cgroup - /proc/<pid>/cgroup places pid in a group named id. */
static bool in_sandbox_cgroup(pid_t pid, const char *id)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    _cleanup_free_ char *data = NULL;
    if (sk_read_file_at(AT_FDCWD, path, 1 << 16, &data, NULL, NULL) < 0)
        return false;
    size_t idlen = strlen(id);
    for (char *line = data; *line != '\0';) {
        char *nl = strchrnul(line, '\n');
        size_t len = (size_t)(nl - line);
        if (len > idlen && line[len - idlen - 1] == '/' && memcmp(line + len - idlen, id, idlen) == 0)
            return true;
        line = *nl ? nl + 1 : nl;
    }
    return false;
}

static bool valid_sandbox_id(const char *id)
{
    if (strlen(id) != SK_SANDBOX_ID_LEN || strncmp(id, "sb-", 3) != 0)
        return false;
    for (size_t i = 3; i < SK_SANDBOX_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

static int validate_info(const struct sk_sandbox_adopt_info *info, struct sk_error *err)
{
    if (memchr(info->id, '\0', sizeof(info->id)) == NULL || !valid_sandbox_id(info->id))
        return sk_error_setv(err, EINVAL, "adopt info: malformed sandbox id");
    if (info->pid <= 0)
        return sk_error_setv(err, EINVAL, "adopt info: pid must be positive");
    if (memchr(info->boot_id, '\0', sizeof(info->boot_id)) == NULL || !valid_boot_id(info->boot_id))
        return sk_error_setv(err, EINVAL, "adopt info: malformed boot id");
    if (info->slot >= SK_UID_SLOTS)
        return sk_error_setv(err, EINVAL, "adopt info: slot %u is out of range", info->slot);
    if (memchr(info->hostname, '\0', sizeof(info->hostname)) == NULL || !valid_hostname(info->hostname))
        return sk_error_setv(err, EINVAL, "adopt info: malformed hostname");
    if (info->deadline_ns < 0)
        return sk_error_setv(err, EINVAL, "adopt info: negative deadline");
    return 0;
}

/* ctl_addr - the address of <dir>/ctl.sock, reached through an O_PATH fd of
 * dir: a state dir may be longer than sun_path's 108 bytes. */
static void ctl_addr(struct sockaddr_un *a, int dirfd)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/" CTL_SOCK, dirfd);
}

/* listen_ctl - bind and listen on <dir>/ctl.sock; the fd goes to skiff-init. */
static int listen_ctl(const char *dir, int *out, struct sk_error *err)
{
    _cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return sk_error_set(err, errno, "open '%s'", dir);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sk_error_set(err, errno, "socket");
    struct sockaddr_un a;
    ctl_addr(&a, dirfd);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return sk_error_set(err, errno, "bind '%s/" CTL_SOCK "'", dir);
    if (listen(fd, 8) < 0)
        return sk_error_set(err, errno, "listen on '%s/" CTL_SOCK "'", dir);
    *out = steal_fd(&fd);
    return 0;
}

/* connect_ctl - connect to a persistent sandbox's skiff-init. ESRCH when
 * nobody listens there any more. */
static int connect_ctl(const char *dir, int *out, struct sk_error *err)
{
    _cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return sk_error_set(err, errno, "open '%s'", dir);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sk_error_set(err, errno, "socket");
    struct sockaddr_un a;
    ctl_addr(&a, dirfd);
    if (SK_RETRY_EINTR(connect(fd, (struct sockaddr *)&a, sizeof(a))) < 0) {
        if (errno == ECONNREFUSED)
            return sk_error_setv(err, ESRCH, "nobody listens on '%s/" CTL_SOCK "'", dir);
        return sk_error_set(err, errno, "connect to '%s/" CTL_SOCK "'", dir);
    }
    *out = steal_fd(&fd);
    return 0;
}

/* make_dir - <state>/sandboxes/<id> and its execs/, both 0700 (host root
 * only; the sandbox never sees them). */
static int make_dir(struct sk_sandbox *sb, struct sk_error *err)
{
    sb->dir = xasprintf("%s/sandboxes/%s", sk_runtime_state_dir(sb->rt), sb->id);
    if (mkdir(sb->dir, 0700) < 0) {
        int e = errno;
        free(steal_pointer(&sb->dir)); /* not ours to remove */
        return sk_error_set(err, e, "create '%s/sandboxes/%s'", sk_runtime_state_dir(sb->rt), sb->id);
    }
    _cleanup_free_ char *execs = xasprintf("%s/execs", sb->dir);
    if (mkdir(execs, 0700) < 0)
        return sk_error_set(err, errno, "create '%s'", execs);
    return 0;
}

static void set_default_env(struct sk_sandbox *sb)
{
    snprintf(sb->env_hostname, sizeof(sb->env_hostname), "HOSTNAME=%s", sb->hostname);
    sb->default_env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    sb->default_env[1] = "HOME=/root";
    sb->default_env[2] = sb->env_hostname;
    sb->default_env[3] = "LANG=C.UTF-8";
    sb->default_env[4] = NULL;
    memcpy(sb->default_env_pty, sb->default_env, 4 * sizeof(char *));
    sb->default_env_pty[4] = "TERM=xterm-256color";
    sb->default_env_pty[5] = NULL;
}

static struct sk_sandbox *sandbox_alloc(struct sk_runtime *rt)
{
    struct sk_sandbox *sb = xcalloc(1, sizeof(*sb));
    sb->rt = rt;
    sb->lock_fd = -1;
    sb->pidfd = -1;
    sb->range.lock_fd = -1;
    return sb;
}

/* abandon - free sb and our hold on the sandbox, leaving the sandbox itself
 * as it is: running, its lock file and range claim in place. */
static void abandon(struct sk_sandbox *sb)
{
    sk_agent_free(sb->agent);
    sk_cgroup_free(sb->cgroup);
    sk_close(&sb->pidfd);
    sk_close(&sb->range.lock_fd); /* the claim stays */
    sk_close(&sb->lock_fd);       /* the lock file stays, for the sweep to find */
    free(sb->dir);
    free(sb);
}

int sk_sandbox_spec_validate(const struct sk_sandbox_spec *spec, struct sk_error *err)
{
    return validate_spec(spec, err);
}

int sk_sandbox_create(struct sk_runtime *rt, const struct sk_sandbox_spec *spec, struct sk_sandbox **out,
                      struct sk_error *err)
{
    int ret = validate_spec(spec, err);
    if (ret < 0)
        return ret;
    struct sk_sandbox *sb = sandbox_alloc(rt);
    struct sk_image img = {0};
    _cleanup_free_ struct sk_rootfs_plan *plan = NULL;
    int ctl[2] = {-1, -1}, rep[2] = {-1, -1}, syn[2] = {-1, -1};
    int listen_fd = -1;

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
    if (spec->persistent) {
        sb->persistent = true;
        if ((ret = read_boot_id(sb->boot_id, err)) < 0 || (ret = make_dir(sb, err)) < 0 ||
            (ret = sk_runtime_claim_range(rt, &sb->range, sb->id, err)) < 0 ||
            (ret = listen_ctl(sb->dir, &listen_fd, err)) < 0)
            goto fail;
    }
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
        .listen_fd = listen_fd,
        .report_w = rep[1],
        .sync_r = syn[0],
        .sync_w = syn[1],
        .die_with_owner = spec->die_with_owner,
        .persistent = spec->persistent,
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
    sk_close(&listen_fd); /* skiff-init holds the only copy now */
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
    if (sb->persistent && (ret = read_start_time(pid, &sb->start_time, err)) < 0)
        goto fail;
    if ((ret = sk_agent_new(steal_fd(&ctl[0]), &sb->agent, err)) < 0)
        goto fail;
    pid_t init_pid = 0;
    if ((ret = sk_agent_hello(sb->agent, HELLO_TIMEOUT_MS, &init_pid, err)) < 0) {
        sk_error_prefix(err, "skiff-init did not answer");
        goto fail;
    }
    if (spec->timeout_ms > 0)
        sb->deadline_ns = sk_now_ns() + spec->timeout_ms * 1000000;
    set_default_env(sb);
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
    sk_close(&listen_fd);
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
    bool emptied = true;
    if (sb->cgroup != NULL && sk_cgroup_destroy(sb->cgroup, &err) < 0) {
        sk_log_warn("sandbox '%s': %s", sb->id, err.msg);
        emptied = false;
    }
    sk_cgroup_free(steal_pointer(&sb->cgroup));
    sk_agent_free(steal_pointer(&sb->agent));
    sk_close(&sb->pidfd);
    if (sb->persistent && !emptied) {
        /* Processes may be left that use the uid range: keep the claim,
         * the directory and the lock file for the stale sweep. */
        abandon(sb);
        return;
    }
    if (sb->dir != NULL && sk_remove_tree(sb->dir, &err) < 0)
        sk_log_warn("sandbox '%s': %s", sb->id, err.msg);
    sk_runtime_release_range(sb->rt, &sb->range);
    sk_runtime_unlock_sandbox(sb->rt, sb->id, &sb->lock_fd);
    free(sb->dir);
    free(sb);
}

void sk_sandbox_detach(struct sk_sandbox *sb)
{
    if (sb == NULL)
        return;
    if (!sb->persistent) {
        sk_sandbox_free(sb);
        return;
    }
    sk_log_debug("sandbox '%s' detached (pid %d)", sb->id, (int)sb->pid);
    abandon(sb);
}

int sk_sandbox_describe(const struct sk_sandbox *sb, struct sk_sandbox_adopt_info *info, struct sk_error *err)
{
    memset(info, 0, sizeof(*info));
    if (!sb->persistent)
        return sk_error_setv(err, EINVAL, "sandbox '%s' is not persistent", sb->id);
    snprintf(info->id, sizeof(info->id), "%s", sb->id);
    info->pid = sb->pid;
    info->start_time = sb->start_time;
    snprintf(info->boot_id, sizeof(info->boot_id), "%s", sb->boot_id);
    info->slot = sb->range.slot;
    snprintf(info->hostname, sizeof(info->hostname), "%s", sb->hostname);
    info->deadline_ns = sb->deadline_ns;
    return 0;
}

int sk_sandbox_adopt_info_format(const struct sk_sandbox_adopt_info *info, char *buf, size_t size)
{
    int n = snprintf(buf, size, ADOPT_INFO_TAG " id=%s pid=%d start=%llu boot=%s slot=%u hostname=%s deadline=%lld",
                     info->id, (int)info->pid, (unsigned long long)info->start_time, info->boot_id, info->slot,
                     info->hostname, (long long)info->deadline_ns);
    if (n < 0 || (size_t)n >= size)
        return -ENOSPC;
    return n;
}

/* next_field - expect "key=value" at *p, followed by one space or the end
 * (the end only when last); copy the value into val (size bytes). */
static bool next_field(const char **p, const char *key, bool last, char *val, size_t size)
{
    size_t klen = strlen(key);
    if (strncmp(*p, key, klen) != 0 || (*p)[klen] != '=')
        return false;
    const char *v = *p + klen + 1;
    const char *end = strchrnul(v, ' ');
    size_t len = (size_t)(end - v);
    if (len == 0 || len >= size || (last ? *end != '\0' : *end != ' '))
        return false;
    memcpy(val, v, len);
    val[len] = '\0';
    *p = last ? end : end + 1;
    return true;
}

int sk_sandbox_adopt_info_parse(const char *s, struct sk_sandbox_adopt_info *info, struct sk_error *err)
{
    memset(info, 0, sizeof(*info));
    const char *p = s;
    if (strncmp(p, ADOPT_INFO_TAG " ", strlen(ADOPT_INFO_TAG) + 1) != 0)
        return sk_error_setv(err, EINVAL, "adopt info: not a '" ADOPT_INFO_TAG "' record");
    p += strlen(ADOPT_INFO_TAG) + 1;
    char v[80];
    uint64_t u;
    if (!next_field(&p, "id", false, info->id, sizeof(info->id)))
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'id'");
    if (!next_field(&p, "pid", false, v, sizeof(v)) || !parse_dec_u64(v, strlen(v), &u) || u == 0 || u > INT32_MAX)
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'pid'");
    info->pid = (pid_t)u;
    if (!next_field(&p, "start", false, v, sizeof(v)) || !parse_dec_u64(v, strlen(v), &info->start_time))
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'start'");
    if (!next_field(&p, "boot", false, info->boot_id, sizeof(info->boot_id)))
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'boot'");
    if (!next_field(&p, "slot", false, v, sizeof(v)) || !parse_dec_u64(v, strlen(v), &u) || u >= SK_UID_SLOTS)
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'slot'");
    info->slot = (uint32_t)u;
    if (!next_field(&p, "hostname", false, info->hostname, sizeof(info->hostname)))
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'hostname'");
    if (!next_field(&p, "deadline", true, v, sizeof(v)) || !parse_dec_u64(v, strlen(v), &u) || u > INT64_MAX)
        return sk_error_setv(err, EINVAL, "adopt info: bad or missing 'deadline'");
    info->deadline_ns = (int64_t)u;
    return validate_info(info, err);
}

/* check_pid1 - info->pid is, in this boot, the very process that was the
 * sandbox's pid 1: same start time and in the sandbox's cgroup. Opens a
 * pidfd first, so the check and the pidfd refer to one process. */
static int check_pid1(const struct sk_sandbox_adopt_info *info, int *pidfd, struct sk_error *err)
{
    char boot[37];
    int r = read_boot_id(boot, err);
    if (r < 0)
        return r;
    if (strcmp(boot, info->boot_id) != 0)
        return sk_error_setv(err, ESRCH, "sandbox '%s' was created before the host restarted", info->id);
    _cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, info->pid, 0);
    if (fd < 0)
        return sk_error_set(err, errno, "sandbox '%s': pid %d", info->id, (int)info->pid);
    uint64_t start = 0;
    r = read_start_time(info->pid, &start, err);
    if (r < 0)
        return r;
    if (start != info->start_time)
        return sk_error_setv(err, ESRCH, "sandbox '%s': pid %d is another process now (started at tick %llu, not %llu)",
                             info->id, (int)info->pid, (unsigned long long)start, (unsigned long long)info->start_time);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (SK_RETRY_EINTR(poll(&p, 1, 0)) > 0)
        return sk_error_setv(err, ESRCH, "sandbox '%s': pid 1 has exited", info->id);
    if (!in_sandbox_cgroup(info->pid, info->id))
        return sk_error_setv(err, ESRCH, "sandbox '%s': pid %d is not in its cgroup", info->id, (int)info->pid);
    *pidfd = steal_fd(&fd);
    return 0;
}

int sk_sandbox_adopt(struct sk_runtime *rt, const struct sk_sandbox_adopt_info *info, struct sk_sandbox **out,
                     struct sk_error *err)
{
    *out = NULL;
    int ret = validate_info(info, err);
    if (ret < 0)
        return ret;
    struct sk_sandbox *sb = sandbox_alloc(rt);
    snprintf(sb->id, sizeof(sb->id), "%s", info->id);
    snprintf(sb->hostname, sizeof(sb->hostname), "%s", info->hostname);
    snprintf(sb->boot_id, sizeof(sb->boot_id), "%s", info->boot_id);
    sb->persistent = true;
    sb->adopted = true;
    sb->pid = info->pid;
    sb->start_time = info->start_time;
    sb->deadline_ns = info->deadline_ns;
    sb->dir = xasprintf("%s/sandboxes/%s", sk_runtime_state_dir(rt), sb->id);
    struct stat st;
    int ctl = -1;
    if ((ret = sb->lock_fd = sk_runtime_lock_sandbox(rt, sb->id, err)) < 0) {
        if (ret == -EWOULDBLOCK)
            ret = sk_error_setv(err, EBUSY, "sandbox '%s' is owned by another process", sb->id);
        goto fail;
    }
    if (stat(sb->dir, &st) < 0) {
        ret = sk_error_set(err, errno, "sandbox '%s' (no persistent state)", sb->id);
        goto fail;
    }
    if ((ret = check_pid1(info, &sb->pidfd, err)) < 0 ||
        (ret = sk_runtime_retake_range(rt, info->slot, sb->id, &sb->range, err)) < 0 ||
        (ret = sk_cgroup_open(sk_runtime_cgroups(rt), sb->id, &sb->cgroup, err)) < 0 ||
        (ret = connect_ctl(sb->dir, &ctl, err)) < 0 || (ret = sk_agent_new(ctl, &sb->agent, err)) < 0)
        goto fail;
    pid_t init_pid = 0;
    if ((ret = sk_agent_hello(sb->agent, HELLO_TIMEOUT_MS, &init_pid, err)) < 0) {
        sk_error_prefix(err, "sandbox '%s': skiff-init did not answer", sb->id);
        goto fail;
    }
    set_default_env(sb);
    sk_log_debug("sandbox '%s' adopted (pid %d, uid %u)", sb->id, (int)sb->pid, sb->range.host_uid);
    *out = sb;
    return 0;
fail:
    /* Leave the sandbox exactly as found; the caller decides whether to
     * destroy it (sk_sandbox_destroy_orphan). */
    abandon(sb);
    return ret;
}

int sk_sandbox_destroy_orphan(struct sk_runtime *rt, const struct sk_sandbox_adopt_info *info, struct sk_error *err)
{
    if (memchr(info->id, '\0', sizeof(info->id)) == NULL || !valid_sandbox_id(info->id))
        return sk_error_setv(err, EINVAL, "destroy: malformed sandbox id");
    int lock = sk_runtime_lock_sandbox(rt, info->id, err);
    if (lock < 0) {
        if (lock == -EWOULDBLOCK)
            return sk_error_setv(err, EBUSY, "sandbox '%s' is owned by another process", info->id);
        return lock;
    }
    int ret = 0;
    /* pid 1 first, through a pidfd and only if it still is that process;
     * its pid namespace dies with it. The cgroup kill is the backstop. */
    int pidfd = -1;
    struct sk_error e = {0};
    if (validate_info(info, &e) == 0 && check_pid1(info, &pidfd, &e) == 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        if (!wait_pidfd_exit(pidfd, ADOPTED_KILL_TIMEOUT_MS))
            sk_log_warn("sandbox '%s': pid 1 did not exit within %d ms of SIGKILL", info->id, ADOPTED_KILL_TIMEOUT_MS);
        sk_close(&pidfd);
    }
    int r = sk_cgroup_cleanup_stale(sk_runtime_cgroups(rt), info->id, NULL, NULL, err);
    if (r < 0) {
        /* Something may still run with its uids: keep the directory (and
         * with it the range claim) and the lock file for a later attempt. */
        close(lock);
        return r;
    }
    char *dir = xasprintf("%s/sandboxes/%s", sk_runtime_state_dir(rt), info->id);
    if ((r = sk_remove_tree(dir, err)) < 0)
        ret = r;
    free(dir);
    sk_runtime_unclaim_range(rt, info->slot, info->id);
    sk_runtime_unlock_sandbox(rt, info->id, &lock);
    return ret;
}

int sk_sandbox_output_open(struct sk_sandbox *sb, const char *name, int *fd, struct sk_error *err)
{
    *fd = -1;
    if (!sb->persistent || sb->dir == NULL)
        return sk_error_setv(err, EINVAL, "sandbox '%s' is not persistent: it has no output directory", sb->id);
    size_t n = name ? strlen(name) : 0;
    bool ok = n > 0 && n <= 64 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '-';
    }
    if (!ok)
        return sk_error_setv(err, EINVAL, "output name '%.80s' must be 1 to 64 of [A-Za-z0-9._-]", name ? name : "");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/execs/%s", sb->dir, name);
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd < 0)
        return sk_error_set(err, errno, "create '%s'", path);
    return 0;
}

const char *sk_sandbox_dir(const struct sk_sandbox *sb)
{
    return sb->dir;
}

bool sk_sandbox_is_persistent(const struct sk_sandbox *sb)
{
    return sb->persistent;
}

bool sk_sandbox_is_adopted(const struct sk_sandbox *sb)
{
    return sb->adopted;
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
    int ret = sk_cgroup_read_usage(sb->cgroup, u, err);
    if (ret == 0)
        u->cpu_usec = u->cpu_usec > sb->cpu_base_usec ? u->cpu_usec - sb->cpu_base_usec : 0;
    return ret;
}

int sk_sandbox_claim(struct sk_sandbox *sb, const struct sk_cgroup_limits *lim, int64_t timeout_ms,
                     struct sk_error *err)
{
    if (timeout_ms < 0)
        return sk_error_setv(err, EINVAL, "timeout must not be negative");
    if (lim->memory_bytes != 0 || lim->cpu != 0 || lim->pids != 0) {
        int ret = sk_cgroup_set_limits(sb->cgroup, lim, err);
        if (ret < 0)
            return ret;
    }
    sb->deadline_ns = timeout_ms > 0 ? sk_now_ns() + timeout_ms * 1000000 : 0;
    return 0;
}

void sk_sandbox_mark_cpu_baseline(struct sk_sandbox *sb)
{
    struct sk_cgroup_usage u;
    if (sk_cgroup_read_usage(sb->cgroup, &u, NULL) == 0)
        sb->cpu_base_usec = u.cpu_usec;
}

bool sk_sandbox_is_alive(const struct sk_sandbox *sb)
{
    if (sb->pidfd < 0 || sb->reaped)
        return false;
    struct pollfd p = {.fd = sb->pidfd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
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
