/* test_security.c - the sandbox's privileges: capabilities, rlimits,
 * no_new_privs and the seccomp policy, checked by making the calls.
 *
 * Every call that the policy must refuse is made with harmless arguments in
 * a throwaway child, so that if the filter let it through nothing on the
 * host changes (nonexistent paths, invalid magic numbers, fd -1).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "runtime/seccomp_policy.h"
#include "runtime/security.h"

#define X32_SYSCALL_BIT 0x40000000L
#define TEST_NOFILE 1024

/* Each probe makes one call and returns its raw result (< 0 with errno). */
typedef long (*probe_fn)(void);

struct probe {
    const char *name;
    probe_fn fn;
};

static long p_mount(void)
{
    return syscall(SYS_mount, "/nonexistent/skiff-src", "/nonexistent/skiff-dst", "skiff-nofs", 0UL, NULL);
}
static long p_umount2(void)
{
    return syscall(SYS_umount2, "/nonexistent/skiff", 0);
}
static long p_pivot_root(void)
{
    return syscall(SYS_pivot_root, "/nonexistent/skiff-a", "/nonexistent/skiff-b");
}
static long p_keyctl(void)
{
    /* KEYCTL_GET_KEYRING_ID of the thread keyring without creating it. */
    return syscall(SYS_keyctl, 0L, -1L, 0L);
}
static long p_add_key(void)
{
    return syscall(SYS_add_key, NULL, NULL, NULL, 0UL, 0L);
}
static long p_bpf(void)
{
    return syscall(SYS_bpf, 9999, NULL, 0U);
}
static long p_perf_event_open(void)
{
    return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0UL);
}
static long p_userfaultfd(void)
{
    return syscall(SYS_userfaultfd, ~0U);
}
static long p_reboot(void)
{
    /* Wrong magic: EINVAL even for a process allowed to reboot. */
    return syscall(SYS_reboot, 0, 0, 0, NULL);
}
static long p_init_module(void)
{
    return syscall(SYS_init_module, NULL, 0UL, "");
}
static long p_kexec_load(void)
{
    /* Foreign architecture flag and too many segments: EINVAL. */
    return syscall(SYS_kexec_load, 0UL, ~0UL, NULL, 0x80000000UL);
}
static long p_swapon(void)
{
    return syscall(SYS_swapon, "/nonexistent/skiff", 0);
}
static long p_settimeofday(void)
{
    return syscall(SYS_settimeofday, NULL, NULL);
}
static long p_clock_settime(void)
{
    /* The monotonic clock cannot be set: EINVAL. */
    struct timespec ts = {0, 0};
    return syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts);
}
static long p_open_by_handle_at(void)
{
    return syscall(SYS_open_by_handle_at, -1, NULL, 0);
}
static long p_setns(void)
{
    return syscall(SYS_setns, -1, 0);
}
static long p_io_uring_setup(void)
{
    return syscall(SYS_io_uring_setup, 0U, NULL);
}
static long p_acct(void)
{
    return syscall(SYS_acct, "/nonexistent/skiff");
}
static long p_quotactl(void)
{
    return syscall(SYS_quotactl, 0, NULL, 0, NULL);
}
static long p_syslog(void)
{
    /* SYSLOG_ACTION_READ_ALL of zero bytes. */
    char buf[1];
    return syscall(SYS_syslog, 3, buf, 0);
}
static long p_unshare_newuser(void)
{
    return syscall(SYS_unshare, (long)CLONE_NEWUSER);
}
static long p_unshare_newuser_files(void)
{
    return syscall(SYS_unshare, (long)(CLONE_NEWUSER | CLONE_FILES));
}
static long p_clone_newuser(void)
{
    /* Like fork: a NULL stack means the child continues on a copy of ours. */
    long pid = syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, 0L);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return pid;
}
static long p_ioctl_tiocsti(void)
{
    char c = 'x';
    return syscall(SYS_ioctl, -1, (unsigned long)TIOCSTI, &c);
}
static long p_ioctl_tiocsti_high(void)
{
    /* The kernel truncates the request to 32 bits; so must the filter. */
    char c = 'x';
    return syscall(SYS_ioctl, -1, (1UL << 32) | TIOCSTI, &c);
}
static long p_ioctl_tioclinux(void)
{
    char sub = 0;
    return syscall(SYS_ioctl, -1, (unsigned long)TIOCLINUX, &sub);
}
static long p_personality_unsafe(void)
{
    return syscall(SYS_personality, (unsigned long)ADDR_NO_RANDOMIZE);
}

static const struct probe denied[] = {
    {"mount", p_mount},
    {"umount2", p_umount2},
    {"pivot_root", p_pivot_root},
    {"keyctl", p_keyctl},
    {"add_key", p_add_key},
    {"bpf", p_bpf},
    {"perf_event_open", p_perf_event_open},
    {"userfaultfd", p_userfaultfd},
    {"reboot", p_reboot},
    {"init_module", p_init_module},
    {"kexec_load", p_kexec_load},
    {"swapon", p_swapon},
    {"settimeofday", p_settimeofday},
    {"clock_settime", p_clock_settime},
    {"open_by_handle_at", p_open_by_handle_at},
    {"setns", p_setns},
    {"io_uring_setup", p_io_uring_setup},
    {"acct", p_acct},
    {"quotactl", p_quotactl},
    {"syslog", p_syslog},
    {"unshare(CLONE_NEWUSER)", p_unshare_newuser},
    {"unshare(CLONE_NEWUSER|CLONE_FILES)", p_unshare_newuser_files},
    {"clone(CLONE_NEWUSER)", p_clone_newuser},
    {"ioctl(TIOCSTI)", p_ioctl_tiocsti},
    {"ioctl(TIOCSTI | 1 << 32)", p_ioctl_tiocsti_high},
    {"ioctl(TIOCLINUX)", p_ioctl_tioclinux},
    {"personality(ADDR_NO_RANDOMIZE)", p_personality_unsafe},
};

/* run_probe - make the call in a child (a call that got through must not
 * change this process) and return 0 on success, the errno on failure, or
 * 1000 + signal if the child was killed. */
static int run_probe(probe_fn fn)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        errno = 0;
        long r = fn();
        _exit(r < 0 ? (errno > 0 && errno < 256 ? errno : 255) : 0);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        FAIL("waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
        return 1000 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static const char *result_name(int r)
{
    static char buf[64];
    if (r == 0)
        return "success";
    if (r >= 1000) {
        snprintf(buf, sizeof(buf), "killed by signal %d", r - 1000);
        return buf;
    }
    const char *n = strerrorname_np(r);
    snprintf(buf, sizeof(buf), "%s", n != NULL ? n : "unknown errno");
    return buf;
}

static struct sk_seccomp *compile_or_fail(void)
{
    struct sk_error err = {0};
    struct sk_seccomp *sc = NULL;
    ASSERT_OK(sk_seccomp_compile(&sc, &err));
    ASSERT_TRUE(sc != NULL);
    return sc;
}

/* confine - what a sandbox child does last: privileges, then the filter. */
static void confine(void)
{
    struct sk_error err = {0};
    struct sk_seccomp *sc = compile_or_fail();
    ASSERT_OK(sk_privs_apply(sk_privs_default_caps(), TEST_NOFILE, &err));
    ASSERT_OK(sk_seccomp_install(sc, &err));
    sk_seccomp_free(sc);
}

static bool have_cap(int cap)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    return (data[cap / 32].effective >> (cap % 32)) & 1;
}

static void check_all_denied(void)
{
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        int r = run_probe(denied[i].fn);
        if (r != EPERM)
            FAIL("%s: expected EPERM, got %s", denied[i].name, result_name(r));
    }
}

TEST(compile_and_free)
{
    struct sk_seccomp *sc = compile_or_fail();
    sk_seccomp_free(sc);
    sk_seccomp_free(NULL);
}

TEST(blocked_names_cover_required_calls)
{
    static const char *const required[] = {
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "swapon",
        "swapoff",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "open_by_handle_at",
        "name_to_handle_at",
        "mount",
        "umount2",
        "pivot_root",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        "setns",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "acct",
        "quotactl",
        "quotactl_fd",
        "syslog",
        "lookup_dcookie",
        "vhangup",
        "iopl",
        "ioperm",
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "nfsservctl",
    };
    const char *const *names = sk_seccomp_blocked_names();
    size_t n = 0;
    while (names[n] != NULL)
        n++;
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            found = strcmp(names[j], required[i]) == 0;
        if (!found)
            FAIL("'%s' missing from sk_seccomp_blocked_names()", required[i]);
    }
    /* Allowed on purpose: the pid namespace confines them (see security.c). */
    for (size_t j = 0; j < n; j++) {
        ASSERT_NE_INT(strcmp(names[j], "ptrace"), 0);
        ASSERT_NE_INT(strcmp(names[j], "process_vm_readv"), 0);
        for (size_t k = j + 1; k < n; k++)
            if (strcmp(names[j], names[k]) == 0)
                FAIL("'%s' listed twice", names[j]);
    }
}

TEST(default_caps_are_dockers_less_net_raw_and_mknod)
{
    uint64_t caps = sk_privs_default_caps();
    ASSERT_EQ_INT(caps, 0xa00405fbULL);
    ASSERT_EQ_INT(caps & (1ULL << CAP_NET_RAW), 0);
    ASSERT_EQ_INT(caps & (1ULL << CAP_MKNOD), 0);
    ASSERT_EQ_INT(caps & (1ULL << CAP_SYS_ADMIN), 0);
    ASSERT_EQ_INT(caps & (1ULL << CAP_SYS_PTRACE), 0);
}

/* The filter on its own, with every capability still held: each call that
 * root could make (or that fails with something other than EPERM) before
 * the filter fails with EPERM after it, so the EPERM is the filter's. */
TEST(filter_alone_denies_what_root_could_call)
{
    if (!have_cap(CAP_SYS_ADMIN))
        SKIP("needs CAP_SYS_ADMIN to tell the filter's EPERM from the kernel's");
    ASSERT_EQ_INT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        int r = run_probe(denied[i].fn);
        if (r == EPERM)
            FAIL("%s: EPERM before any filter; the probe proves nothing", denied[i].name);
    }
    struct sk_error err = {0};
    struct sk_seccomp *sc = compile_or_fail();
    ASSERT_OK(sk_seccomp_install(sc, &err));
    sk_seccomp_free(sc);
    check_all_denied();
}

TEST(confined_child_gets_eperm)
{
    confine();
    check_all_denied();
}

static long p_clone3(void)
{
    return syscall(SYS_clone3, NULL, 0UL);
}

TEST(clone3_gets_enosys)
{
    /* Unconfined, a NULL clone3 is EINVAL: the ENOSYS below is the filter's. */
    ASSERT_EQ_INT(run_probe(p_clone3), EINVAL);
    confine();
    ASSERT_EQ_INT(run_probe(p_clone3), ENOSYS);
}

static void *thread_main(void *arg)
{
    return arg;
}

TEST(ordinary_calls_still_work)
{
    confine();
    ASSERT_GT_INT(getpid(), 0);

    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ASSERT_GE_INT(fd, 0);
    close(fd);

    pid_t pid = fork();
    ASSERT_GE_INT(pid, 0);
    if (pid == 0)
        _exit(42);
    int status;
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 42);

    ASSERT_EQ_INT(unshare(CLONE_FILES), 0);

    /* glibc creates threads with clone3 and falls back to clone on ENOSYS. */
    static int token;
    pthread_t th;
    void *res = NULL;
    ASSERT_EQ_INT(pthread_create(&th, NULL, thread_main, &token), 0);
    ASSERT_EQ_INT(pthread_join(th, &res), 0);
    ASSERT_TRUE(res == &token);

    /* Terminal ioctls other than TIOCSTI/TIOCLINUX are untouched. */
    struct termios *none = NULL;
    errno = 0;
    ASSERT_EQ_INT(ioctl(-1, TCGETS, none), -1);
    ASSERT_EQ_INT(errno, EBADF);
}

TEST(personality_allows_only_dockers_values)
{
    confine();
    static const unsigned long good[] = {0, PER_LINUX32, UNAME26, PER_LINUX32 | UNAME26, 0xffffffffUL,
                                         /* the kernel reads 32 bits: these are 0 and the query */
                                         1UL << 32, ~0UL};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        errno = 0;
        long r = syscall(SYS_personality, good[i]);
        if (r < 0)
            FAIL("personality(0x%lx): %s", good[i], strerror(errno));
    }
    ASSERT_GE_INT(syscall(SYS_personality, 0UL), 0);

    /* Every single bit and every all-but-one-bit value outside the allowed
     * set, plus the flags that matter and a few mixtures. */
    unsigned long bad[80];
    size_t n = 0;
    for (unsigned int b = 0; b < 32; b++) {
        unsigned long bit = 1UL << b;
        if (bit != PER_LINUX32 && bit != UNAME26)
            bad[n++] = bit;
        bad[n++] = 0xffffffffUL & ~bit;
    }
    bad[n++] = ADDR_NO_RANDOMIZE | PER_LINUX32;
    bad[n++] = READ_IMPLIES_EXEC;
    bad[n++] = MMAP_PAGE_ZERO | UNAME26;
    bad[n++] = (1UL << 32) | ADDR_NO_RANDOMIZE;
    bad[n++] = 0x7fffffffUL;
    bad[n++] = 0xfffdfff7UL;
    for (size_t i = 0; i < n; i++) {
        errno = 0;
        long r = syscall(SYS_personality, bad[i]);
        if (r != -1 || errno != EPERM)
            FAIL("personality(0x%lx): expected EPERM, got %ld (%s)", bad[i], r, strerror(errno));
    }
}

TEST(x32_syscall_numbers_are_refused)
{
    confine();
    errno = 0;
    long r = syscall(SYS_getpid | X32_SYSCALL_BIT);
    ASSERT_EQ_INT(r, -1);
    ASSERT_EQ_INT(errno, EPERM);
}

#if defined(__x86_64__)
static long int80_getpid(void)
{
    long ret;
    /* 20 is getpid in the i386 table. */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

/* Exit 0 if int 0x80 getpid returned our pid, 1 if it returned -EPERM,
 * 2 for anything else. */
static long int80_probe(void)
{
    long r = int80_getpid();
    if (r == (long)getpid())
        _exit(0);
    _exit(r == -EPERM ? 1 : 2);
}

TEST(int80_entry_is_refused)
{
    /* Unconfined first: without IA32 emulation int 0x80 kills the caller
     * (or returns -ENOSYS), and there is nothing to filter. */
    int r = run_probe(int80_probe);
    if (r != 0)
        SKIP("kernel lacks IA32 emulation (int 0x80 getpid: %s)", result_name(r));
    confine();
    ASSERT_EQ_INT(run_probe(int80_probe), 1);
}
#endif

static unsigned long long status_hex(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    if (p == NULL)
        FAIL("'%s' missing from /proc/self/status", key);
    return strtoull(p + strlen(key), NULL, 16);
}

static long status_int(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    if (p == NULL)
        FAIL("'%s' missing from /proc/self/status", key);
    return strtol(p + strlen(key), NULL, 10);
}

TEST(proc_status_shows_the_applied_privileges)
{
    confine();
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ASSERT_GE_INT(fd, 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    ASSERT_GT_INT(n, 0);
    buf[n] = '\0';

    unsigned long long caps = sk_privs_default_caps();
    ASSERT_EQ_INT(status_hex(buf, "\nCapEff:"), caps);
    ASSERT_EQ_INT(status_hex(buf, "\nCapPrm:"), caps);
    ASSERT_EQ_INT(status_hex(buf, "\nCapInh:"), 0);
    ASSERT_EQ_INT(status_hex(buf, "\nCapBnd:"), caps);
    ASSERT_EQ_INT(status_hex(buf, "\nCapAmb:"), 0);
    ASSERT_CONTAINS(buf, "\nCapEff:\t00000000a00405fb\n");
    ASSERT_EQ_INT(status_int(buf, "\nNoNewPrivs:"), 1);
    ASSERT_EQ_INT(status_int(buf, "\nSeccomp:"), 2);

    struct rlimit lim;
    ASSERT_EQ_INT(getrlimit(RLIMIT_NOFILE, &lim), 0);
    ASSERT_EQ_INT(lim.rlim_cur, TEST_NOFILE);
    ASSERT_EQ_INT(lim.rlim_max, TEST_NOFILE);
    ASSERT_EQ_INT(getrlimit(RLIMIT_CORE, &lim), 0);
    ASSERT_EQ_INT(lim.rlim_cur, 0);
    ASSERT_EQ_INT(lim.rlim_max, 0);
}

/* The program libskiff installs is generated at build time; it must still
 * be exactly what the policy table compiles to today. */
TEST(builtin_program_matches_policy_table)
{
    struct sk_error err = {0};
    struct sock_filter *live = NULL;
    size_t n_live = 0;
    ASSERT_OK(sk_seccomp_policy_compile(&live, &n_live, &err));
    struct sk_seccomp *sc = NULL;
    ASSERT_OK(sk_seccomp_compile(&sc, &err));
    size_t n_builtin = 0;
    const void *builtin = sk_seccomp_program(sc, &n_builtin);
    ASSERT_GT_INT(n_live, 10);
    ASSERT_EQ_INT(n_builtin, n_live);
    ASSERT_TRUE(memcmp(builtin, live, n_live * sizeof(struct sock_filter)) == 0);
    free(live);
    sk_seccomp_free(sc);
}
