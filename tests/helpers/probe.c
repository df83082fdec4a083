/* probe.c - a static program that sandbox tests run inside a sandbox and
 * whose output they check line by line. libc only.
 *
 *   probe syscalls        "<name> <result>" per call the policy denies;
 *                         result: ALLOWED, an errno name (EPERM, ENOSYS, ...)
 *                         or a signal name (SIGSEGV) if the call killed it
 *   probe alloc MIB       "allocated MIB" once MIB MiB are touched
 *   probe forkbomb N      "forked K", then "fork-errno ENAME" if a fork failed
 *   probe spin SECONDS    "cpu_ms N" and "wall_ms N" after SECONDS of busy loop
 *   probe status          the Uid, Gid, CapEff, CapBnd, NoNewPrivs and Seccomp
 *                         lines of /proc/self/status, then "uid_map: IN OUT N"
 *                         per line of /proc/self/uid_map
 *   probe write PATH TEXT "ok", or the errno name and exit 1
 *   probe read PATH       the file's bytes, or "error ENAME" and exit 1
 *   probe netifs          one interface name per line
 *   probe hostname        the host name
 *   probe pid1            "cmdline ARGS" (/proc/1/cmdline, NULs as spaces) and
 *                         "pids N" (numeric entries in /proc)
 *
 * Exit status 0 unless stated; 2 for a usage error.
 *
 * `probe syscalls` must be harmless when nothing confines it, so every call
 * is made with arguments that would fail or change nothing even if the
 * kernel let it run (nonexistent paths, fd -1, invalid magic numbers,
 * read-only queries), and in a child of its own so that a call that got
 * through (unshare, personality) leaves the probe itself unchanged.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define X32_SYSCALL_BIT 0x40000000L
#define MIB (1024UL * 1024UL)

static const char *errno_name(int e)
{
    const char *n = strerrorname_np(e);
    return n != NULL ? n : "EUNKNOWN";
}

/* ---- probe syscalls ---------------------------------------------------- */

typedef long (*call_fn)(void);

static long c_init_module(void)
{
    return syscall(SYS_init_module, NULL, 0UL, "");
}
static long c_finit_module(void)
{
    return syscall(SYS_finit_module, -1, "", 0);
}
static long c_delete_module(void)
{
    return syscall(SYS_delete_module, "skiff_probe_no_such_module", (long)O_NONBLOCK);
}
static long c_kexec_load(void)
{
    /* Foreign-architecture flag and too many segments: EINVAL. */
    return syscall(SYS_kexec_load, 0UL, ~0UL, NULL, 0x80000000UL);
}
static long c_kexec_file_load(void)
{
    return syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0x80000000UL);
}
static long c_reboot(void)
{
    /* Wrong magic: EINVAL even for a process allowed to reboot. */
    return syscall(SYS_reboot, 0, 0, 0, NULL);
}
static long c_swapon(void)
{
    return syscall(SYS_swapon, "/nonexistent/skiff-probe", 0);
}
static long c_swapoff(void)
{
    return syscall(SYS_swapoff, "/nonexistent/skiff-probe");
}
static long c_settimeofday(void)
{
    /* Neither time nor zone: changes nothing. */
    return syscall(SYS_settimeofday, NULL, NULL);
}
static long c_clock_settime(void)
{
    /* The monotonic clock cannot be set: EINVAL. */
    struct timespec ts = {0, 0};
    return syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts);
}
static long c_clock_adjtime(void)
{
    struct timex tx = {.modes = 0}; /* read-only query */
    return syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx);
}
static long c_adjtimex(void)
{
    struct timex tx = {.modes = 0}; /* read-only query */
    return syscall(SYS_adjtimex, &tx);
}
static long c_keyctl(void)
{
    /* KEYCTL_GET_KEYRING_ID of the thread keyring, without creating it. */
    return syscall(SYS_keyctl, 0L, -1L, 0L);
}
static long c_add_key(void)
{
    return syscall(SYS_add_key, NULL, NULL, NULL, 0UL, 0L);
}
static long c_request_key(void)
{
    return syscall(SYS_request_key, NULL, NULL, NULL, 0L);
}
static long c_bpf(void)
{
    return syscall(SYS_bpf, 9999, NULL, 0U);
}
static long c_perf_event_open(void)
{
    return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0UL);
}
static long c_userfaultfd(void)
{
    return syscall(SYS_userfaultfd, ~0U);
}
static long c_open_by_handle_at(void)
{
    return syscall(SYS_open_by_handle_at, -1, NULL, 0);
}
static long c_name_to_handle_at(void)
{
    return syscall(SYS_name_to_handle_at, AT_FDCWD, "/nonexistent/skiff-probe", NULL, NULL, 0);
}
static long c_mount(void)
{
    return syscall(SYS_mount, "/nonexistent/skiff-src", "/nonexistent/skiff-dst", "skiff-nofs", 0UL, NULL);
}
static long c_umount2(void)
{
    return syscall(SYS_umount2, "/nonexistent/skiff-probe", 0);
}
static long c_pivot_root(void)
{
    return syscall(SYS_pivot_root, "/nonexistent/skiff-a", "/nonexistent/skiff-b");
}
static long c_move_mount(void)
{
    return syscall(SYS_move_mount, -1, "/nonexistent/skiff-a", -1, "/nonexistent/skiff-b", 0U);
}
static long c_open_tree(void)
{
    return syscall(SYS_open_tree, -1, "/nonexistent/skiff-probe", 0U);
}
static long c_fsopen(void)
{
    return syscall(SYS_fsopen, "skiff-nofs", 0U);
}
static long c_fsconfig(void)
{
    return syscall(SYS_fsconfig, -1, 0U, NULL, NULL, 0);
}
static long c_fsmount(void)
{
    return syscall(SYS_fsmount, -1, 0U, 0U);
}
static long c_fspick(void)
{
    return syscall(SYS_fspick, -1, "/nonexistent/skiff-probe", 0U);
}
static long c_mount_setattr(void)
{
    return syscall(SYS_mount_setattr, -1, "/nonexistent/skiff-probe", 0U, NULL, 0UL);
}
static long c_setns(void)
{
    return syscall(SYS_setns, -1, 0);
}
static long c_io_uring_setup(void)
{
    return syscall(SYS_io_uring_setup, 0U, NULL);
}
static long c_io_uring_enter(void)
{
    return syscall(SYS_io_uring_enter, -1, 0U, 0U, 0U, NULL, 0UL);
}
static long c_io_uring_register(void)
{
    return syscall(SYS_io_uring_register, -1, 0U, NULL, 0U);
}
static long c_acct(void)
{
    /* Not NULL: acct(NULL) would switch the host's accounting off. */
    return syscall(SYS_acct, "/nonexistent/skiff-probe");
}
static long c_quotactl(void)
{
    /* No device and not Q_SYNC: ENODEV. */
    return syscall(SYS_quotactl, 0, NULL, 0, NULL);
}
static long c_quotactl_fd(void)
{
    return syscall(SYS_quotactl_fd, -1, 0U, 0, NULL);
}
static long c_syslog(void)
{
    /* SYSLOG_ACTION_READ_ALL of zero bytes. */
    char buf[1];
    return syscall(SYS_syslog, 3, buf, 0);
}
static long c_lookup_dcookie(void)
{
    return syscall(SYS_lookup_dcookie, 0ULL, NULL, 0UL);
}
static long c_vhangup(void)
{
    /* Only as a session leader without a controlling terminal (the child
     * has called setsid()): there is then nothing to hang up. */
    if (getsid(0) != getpid())
        _exit(255);
    return syscall(SYS_vhangup);
}
static long c_iopl(void)
{
    return syscall(SYS_iopl, 4); /* levels stop at 3: EINVAL */
}
static long c_ioperm(void)
{
    return syscall(SYS_ioperm, 0UL, 0UL, 0); /* empty range: EINVAL */
}
static long c_uselib(void)
{
    return syscall(SYS_uselib, "/nonexistent/skiff-probe");
}
static long c_personality(void)
{
    /* Unsafe flag; the child that runs this exits straight after. */
    return syscall(SYS_personality, (unsigned long)ADDR_NO_RANDOMIZE);
}
static long c_ustat(void)
{
    char buf[64];
    return syscall(SYS_ustat, 0U, buf);
}
static long c_sysfs(void)
{
    return syscall(SYS_sysfs, 3); /* number of file system types */
}
static long c_sysctl(void)
{
    return syscall(SYS__sysctl, NULL);
}
static long c_nfsservctl(void)
{
    return syscall(SYS_nfsservctl, 0, NULL, NULL);
}
static long c_unshare_newuser(void)
{
    return syscall(SYS_unshare, (long)CLONE_NEWUSER);
}
static long c_clone_newuser(void)
{
    /* Like fork: a NULL stack means the new process runs on a copy of ours. */
    long pid = syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, 0L);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return pid;
}
static long c_clone3(void)
{
    return syscall(SYS_clone3, NULL, 0UL); /* too small: EINVAL */
}
static long c_x32_getpid(void)
{
    return syscall(SYS_getpid | X32_SYSCALL_BIT);
}
static long c_int80_getpid(void)
{
#if defined(__x86_64__)
    long ret;
    /* 20 is getpid in the i386 table. */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
#else
    errno = ENOSYS;
    return -1;
#endif
}
static long c_ioctl_tiocsti(void)
{
    char c = 'x';
    return syscall(SYS_ioctl, -1, (unsigned long)TIOCSTI, &c);
}
static long c_ioctl_tioclinux(void)
{
    char sub = 0;
    return syscall(SYS_ioctl, -1, (unsigned long)TIOCLINUX, &sub);
}

static const struct {
    const char *name;
    call_fn fn;
} calls[] = {
    {"init_module", c_init_module},
    {"finit_module", c_finit_module},
    {"delete_module", c_delete_module},
    {"kexec_load", c_kexec_load},
    {"kexec_file_load", c_kexec_file_load},
    {"reboot", c_reboot},
    {"swapon", c_swapon},
    {"swapoff", c_swapoff},
    {"settimeofday", c_settimeofday},
    {"clock_settime", c_clock_settime},
    {"clock_adjtime", c_clock_adjtime},
    {"adjtimex", c_adjtimex},
    {"keyctl", c_keyctl},
    {"add_key", c_add_key},
    {"request_key", c_request_key},
    {"bpf", c_bpf},
    {"perf_event_open", c_perf_event_open},
    {"userfaultfd", c_userfaultfd},
    {"open_by_handle_at", c_open_by_handle_at},
    {"name_to_handle_at", c_name_to_handle_at},
    {"mount", c_mount},
    {"umount2", c_umount2},
    {"pivot_root", c_pivot_root},
    {"move_mount", c_move_mount},
    {"open_tree", c_open_tree},
    {"fsopen", c_fsopen},
    {"fsconfig", c_fsconfig},
    {"fsmount", c_fsmount},
    {"fspick", c_fspick},
    {"mount_setattr", c_mount_setattr},
    {"setns", c_setns},
    {"io_uring_setup", c_io_uring_setup},
    {"io_uring_enter", c_io_uring_enter},
    {"io_uring_register", c_io_uring_register},
    {"acct", c_acct},
    {"quotactl", c_quotactl},
    {"quotactl_fd", c_quotactl_fd},
    {"syslog", c_syslog},
    {"lookup_dcookie", c_lookup_dcookie},
    {"vhangup", c_vhangup},
    {"iopl", c_iopl},
    {"ioperm", c_ioperm},
    {"uselib", c_uselib},
    {"personality", c_personality},
    {"ustat", c_ustat},
    {"sysfs", c_sysfs},
    {"_sysctl", c_sysctl},
    {"nfsservctl", c_nfsservctl},
    {"unshare-newuser", c_unshare_newuser},
    {"clone-newuser", c_clone_newuser},
    {"clone3", c_clone3},
    {"x32-getpid", c_x32_getpid},
    {"int80-getpid", c_int80_getpid},
    {"ioctl-tiocsti", c_ioctl_tiocsti},
    {"ioctl-tioclinux", c_ioctl_tioclinux},
};

/* run_call - make the call in a child and print "<name> <result>". The
 * child reports success as exit 0 and failure as the errno value. */
static void run_call(const char *name, call_fn fn)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        printf("%s fork-%s\n", name, errno_name(errno));
        return;
    }
    if (pid == 0) {
        setsid();
        errno = 0;
        long r = fn();
        _exit(r < 0 ? (errno > 0 && errno < 256 ? errno : 255) : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            printf("%s wait-%s\n", name, errno_name(errno));
            return;
        }
    }
    if (WIFSIGNALED(status)) {
        const char *sig = sigabbrev_np(WTERMSIG(status));
        printf("%s SIG%s\n", name, sig != NULL ? sig : "UNKNOWN");
    } else if (WEXITSTATUS(status) == 0) {
        printf("%s ALLOWED\n", name);
    } else {
        printf("%s %s\n", name, errno_name(WEXITSTATUS(status)));
    }
}

static int cmd_syscalls(void)
{
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
        run_call(calls[i].name, calls[i].fn);
    return 0;
}

/* ---- resource probes --------------------------------------------------- */

static bool parse_count(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static int cmd_alloc(unsigned long mib)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    for (unsigned long i = 0; i < mib; i++) {
        /* Never freed: the point is to hold the memory. */
        volatile char *p = malloc(MIB);
        if (p == NULL) {
            printf("malloc-failed %lu\n", i);
            return 1;
        }
        for (unsigned long off = 0; off < MIB; off += (unsigned long)page)
            p[off] = (char)(off | 1);
    }
    printf("allocated %lu\n", mib);
    return 0;
}

static int cmd_forkbomb(unsigned long n)
{
    pid_t parent = getpid();
    pid_t *pids = calloc(n > 0 ? n : 1, sizeof(*pids));
    if (pids == NULL) {
        printf("error %s\n", errno_name(errno));
        return 1;
    }
    unsigned long forked = 0;
    int fork_errno = 0;
    fflush(stdout);
    for (; forked < n; forked++) {
        pid_t pid = fork();
        if (pid < 0) {
            fork_errno = errno;
            break;
        }
        if (pid == 0) {
            /* Die with the probe whatever happens to it. */
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            if (getppid() != parent)
                _exit(0);
            for (;;)
                pause();
        }
        pids[forked] = pid;
    }
    printf("forked %lu\n", forked);
    if (fork_errno != 0)
        printf("fork-errno %s\n", errno_name(fork_errno));
    for (unsigned long i = 0; i < forked; i++)
        kill(pids[i], SIGKILL);
    for (unsigned long i = 0; i < forked; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    free(pids);
    return 0;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_spin(unsigned long seconds)
{
    int64_t start = clock_ms(CLOCK_MONOTONIC);
    int64_t until = start + (int64_t)seconds * 1000;
    volatile unsigned long sink = 0;
    while (clock_ms(CLOCK_MONOTONIC) < until)
        for (int i = 0; i < 100000; i++)
            sink += (unsigned long)i;
    printf("cpu_ms %lld\n", (long long)clock_ms(CLOCK_PROCESS_CPUTIME_ID));
    printf("wall_ms %lld\n", (long long)(clock_ms(CLOCK_MONOTONIC) - start));
    return 0;
}

/* ---- files and identity ------------------------------------------------ */

/* read_small - read up to cap-1 bytes of a file into buf, NUL-terminated.
 * Returns the length, or -1 with errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static int cmd_status(void)
{
    static const char *const keys[] = {"Uid:", "Gid:", "CapEff:", "CapBnd:", "NoNewPrivs:", "Seccomp:"};
    static char buf[65536];
    if (read_small("/proc/self/status", buf, sizeof(buf)) < 0) {
        printf("error %s\n", errno_name(errno));
        return 1;
    }
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n"))
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (strncmp(line, keys[i], strlen(keys[i])) == 0)
                printf("%s\n", line);

    if (read_small("/proc/self/uid_map", buf, sizeof(buf)) < 0) {
        printf("uid_map: error %s\n", errno_name(errno));
        return 1;
    }
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        unsigned long in, out, count;
        if (sscanf(line, "%lu %lu %lu", &in, &out, &count) == 3)
            printf("uid_map: %lu %lu %lu\n", in, out, count);
    }
    return 0;
}

static int cmd_write(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        printf("%s\n", errno_name(errno));
        return 1;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            printf("%s\n", errno_name(errno));
            close(fd);
            return 1;
        }
        done += (size_t)n;
    }
    if (close(fd) < 0) {
        printf("%s\n", errno_name(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}

static int cmd_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("error %s\n", errno_name(errno));
        return 1;
    }
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            printf("error %s\n", errno_name(errno));
            close(fd);
            return 1;
        }
        if (n == 0)
            break;
        fwrite(buf, 1, (size_t)n, stdout);
    }
    close(fd);
    return 0;
}

static int cmd_netifs(void)
{
    struct if_nameindex *ifs = if_nameindex();
    if (ifs != NULL) {
        for (struct if_nameindex *i = ifs; i->if_index != 0; i++)
            printf("%s\n", i->if_name);
        if_freenameindex(ifs);
        return 0;
    }
    /* No netlink: fall back to /proc/net/dev ("  name: counters..."). */
    static char buf[65536];
    if (read_small("/proc/net/dev", buf, sizeof(buf)) < 0) {
        printf("error %s\n", errno_name(errno));
        return 1;
    }
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        while (isspace((unsigned char)*line))
            line++;
        printf("%s\n", line);
    }
    return 0;
}

static int cmd_hostname(void)
{
    char name[256];
    if (gethostname(name, sizeof(name)) < 0) {
        printf("error %s\n", errno_name(errno));
        return 1;
    }
    name[sizeof(name) - 1] = '\0';
    printf("%s\n", name);
    return 0;
}

static int cmd_pid1(void)
{
    static char buf[65536];
    ssize_t len = read_small("/proc/1/cmdline", buf, sizeof(buf));
    if (len < 0) {
        printf("cmdline error %s\n", errno_name(errno));
    } else {
        for (ssize_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        while (len > 0 && buf[len - 1] == ' ')
            buf[--len] = '\0';
        printf("cmdline %s\n", buf);
    }

    DIR *d = opendir("/proc");
    if (d == NULL) {
        printf("pids error %s\n", errno_name(errno));
        return 1;
    }
    unsigned long pids = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        const char *p = e->d_name;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p != e->d_name && *p == '\0')
            pids++;
    }
    closedir(d);
    printf("pids %lu\n", pids);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: probe syscalls | alloc MIB | forkbomb N | spin SECONDS | status |\n"
                    "             write PATH TEXT | read PATH | netifs | hostname | pid1\n");
    return 2;
}

/* probe ptrace PID: try to attach to PID (skiff-init is pid 1 and must
 * refuse: it is not dumpable); PID 0 means a child the probe forks, which
 * any ptrace_scope allows. Prints "ptrace OK" or "ptrace <ERRNO>". */
static int cmd_ptrace(unsigned long pid)
{
    pid_t child = -1;
    if (pid == 0) {
        child = fork();
        if (child == 0) {
            sleep(5);
            _exit(0);
        }
        pid = (unsigned long)child;
    }
    if (ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL) == 0) {
        printf("ptrace OK\n");
        waitpid((pid_t)pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, (pid_t)pid, NULL, NULL);
    } else {
        printf("ptrace %s\n", errno_name(errno));
    }
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    return 0;
}

static bool parse_count0(const char *s, unsigned long *out)
{
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return true;
    }
    return parse_count(s, 1UL << 22, out);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    unsigned long n;
    int ret;
    if (strcmp(cmd, "syscalls") == 0 && argc == 2)
        ret = cmd_syscalls();
    else if (strcmp(cmd, "alloc") == 0 && argc == 3 && parse_count(argv[2], 1UL << 30, &n))
        ret = cmd_alloc(n);
    else if (strcmp(cmd, "forkbomb") == 0 && argc == 3 && parse_count(argv[2], 1UL << 22, &n))
        ret = cmd_forkbomb(n);
    else if (strcmp(cmd, "spin") == 0 && argc == 3 && parse_count(argv[2], 86400, &n))
        ret = cmd_spin(n);
    else if (strcmp(cmd, "status") == 0 && argc == 2)
        ret = cmd_status();
    else if (strcmp(cmd, "write") == 0 && argc == 4)
        ret = cmd_write(argv[2], argv[3]);
    else if (strcmp(cmd, "read") == 0 && argc == 3)
        ret = cmd_read(argv[2]);
    else if (strcmp(cmd, "netifs") == 0 && argc == 2)
        ret = cmd_netifs();
    else if (strcmp(cmd, "hostname") == 0 && argc == 2)
        ret = cmd_hostname();
    else if (strcmp(cmd, "pid1") == 0 && argc == 2)
        ret = cmd_pid1();
    else if (strcmp(cmd, "ptrace") == 0 && argc == 3 && parse_count0(argv[2], &n))
        ret = cmd_ptrace(n);
    else
        return usage();
    fflush(stdout);
    return ret;
}
