/* Isolation of a sandbox, checked from inside with the static probe helper
 * (build/tests/helpers/probe, mounted read-only at /probe) and from the host. */
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "runtime/runtime.h"
#include "runtime/security.h"
#include "sandbox_test.h"

/* pid 1 is skiff-init and no host process is visible. */
TEST(pid1_is_skiff_init_and_host_processes_invisible)
{
    struct sk_test_output o;
    skiff_run(&o, "--mount", probe_mount(), "--", "/probe/probe", "pid1");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_CONTAINS(o.out, "skiff-init");
    /* /proc holds skiff-init, the probe, nothing of the host. */
    const char *p = strstr(o.out, "pids ");
    ASSERT_TRUE(p != NULL);
    ASSERT_LE_INT(atoi(p + 5), 3);
    sk_test_output_free(&o);
}

TEST(hostname_is_the_sandboxs)
{
    struct utsname u;
    uname(&u);
    struct sk_test_output o;
    skiff_run(&o, "--hostname", "agent-box", "--", "/bin/hostname");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "agent-box\n");
    sk_test_output_free(&o);
    skiff_run(&o, "--", "/bin/hostname");
    ASSERT_NOT_CONTAINS(o.out, u.nodename);
    ASSERT_CONTAINS(o.out, "sb-");
    sk_test_output_free(&o);
}

TEST(only_loopback_exists)
{
    struct sk_test_output o;
    skiff_run(&o, "--mount", probe_mount(), "--", "/probe/probe", "netifs");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "lo\n");
    sk_test_output_free(&o);
}

/* Sandbox root is not host root: uid 0 inside maps to an unprivileged range. */
TEST(uid_map_is_not_identity)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/cat", "/proc/self/uid_map", "/proc/self/gid_map");
    ASSERT_EQ_INT(o.exit_code, 0);
    unsigned inside = 1, host = 0, count = 0;
    ASSERT_EQ_INT(sscanf(o.out, "%u %u %u", &inside, &host, &count), 3);
    ASSERT_EQ_INT(inside, 0);
    ASSERT_GE_INT(host, SK_UID_BASE);
    ASSERT_EQ_INT(count, SK_UID_RANGE);
    ASSERT_NOT_CONTAINS(o.out, "4294967295");
    sk_test_output_free(&o);
}

/* Two sandboxes at once get distinct host uid ranges. */
TEST(concurrent_sandboxes_get_distinct_uid_ranges)
{
    const char *argv[] = {skiff_bin(), "run", "--", "/bin/sh", "-c", "sleep 0.5; cat /proc/self/uid_map", NULL};
    struct sk_test_output a, b;
    pid_t pid = fork();
    if (pid == 0) {
        struct sk_test_output c;
        sk_test_run(argv, NULL, test_env, 20, &c);
        int fd = open("/var/tmp/skiff-test-uidmap", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (write(fd, c.out, c.out_len) < 0)
            _exit(1);
        _exit(0);
    }
    sk_test_run(argv, NULL, test_env, 20, &a);
    waitpid(pid, NULL, 0);
    char *other = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_read_file_at(AT_FDCWD, "/var/tmp/skiff-test-uidmap", 4096, &other, NULL, &err));
    unlink("/var/tmp/skiff-test-uidmap");
    unsigned x, ha = 0, hb = 0, c;
    ASSERT_EQ_INT(sscanf(a.out, "%u %u %u", &x, &ha, &c), 3);
    ASSERT_EQ_INT(sscanf(other, "%u %u %u", &x, &hb, &c), 3);
    ASSERT_NE_INT(ha, hb);
    (void)b;
    free(other);
    sk_test_output_free(&a);
}

/* A file written through a rw --mount is owned on the host by the mapped
 * uid, not by root. */
TEST(rw_mount_writes_are_owned_by_mapped_uid)
{
    char dir[] = "/var/tmp/skiff-mnt-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    chmod(dir, 0777);
    char mnt[PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s:/data", dir);
    struct sk_test_output o;
    skiff_run(&o, "--mount", mnt, "--", "/bin/sh", "-c", "echo hello > /data/out && id -u");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "0\n");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/out", dir);
    struct stat st;
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_NE_INT(st.st_uid, 0);
    ASSERT_GE_INT(st.st_uid, SK_UID_BASE);
    unlink(path);
    rmdir(dir);
    sk_test_output_free(&o);
}

TEST(read_only_mount_cannot_be_written)
{
    char dir[] = "/var/tmp/skiff-mnt-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    chmod(dir, 0777);
    char mnt[PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s:/data:ro", dir);
    struct sk_test_output o;
    skiff_run(&o, "--mount", mnt, "--", "/bin/sh", "-c", "echo x > /data/out");
    ASSERT_NE_INT(o.exit_code, 0);
    ASSERT_CONTAINS(o.err, "Read-only file system");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/out", dir);
    ASSERT_NE_INT(access(path, F_OK), 0);
    rmdir(dir);
    sk_test_output_free(&o);
}

TEST(host_root_home_is_unreadable)
{
    char canary[128];
    snprintf(canary, sizeof(canary), "/root/skiff-canary-%d", (int)getpid());
    int fd = open(canary, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(write(fd, "secret-canary", 13), 13);
    close(fd);
    char script[512];
    snprintf(script, sizeof(script), "cat %s /proc/1/root%s /proc/1/cwd%s 2>&1; exit 0", canary, canary, canary);
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c", script);
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_NOT_CONTAINS(o.out, "secret-canary");
    sk_test_output_free(&o);
    skiff_run(&o, "--", "/bin/ls", "-a", "/root");
    unlink(canary);
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_NOT_CONTAINS(o.out, "skiff-canary-");
    sk_test_output_free(&o);
}

TEST(host_secrets_absent_from_etc)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c",
              "for f in /etc/shadow /etc/gshadow /etc/ssh /etc/sudoers /etc/ssl/private /etc/machine-id; do "
              "test -e $f && echo present $f; done; cat /etc/passwd");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_NOT_CONTAINS(o.out, "present");
    ASSERT_CONTAINS(o.out, "root:x:0:0");
    /* the host's passwd has daemon accounts; the sandbox's does not */
    ASSERT_NOT_CONTAINS(o.out, "daemon:");
    sk_test_output_free(&o);
}

/* Every listed system call fails with EPERM inside (clone3 with ENOSYS so
 * libc falls back to clone). */
TEST(blocked_syscalls_fail_with_eperm)
{
    struct sk_test_output o;
    skiff_run(&o, "--mount", probe_mount(), "--", "/probe/probe", "syscalls");
    ASSERT_EQ_INT(o.exit_code, 0);
    static const char *const must[] = {
        "mount EPERM",
        "umount2 EPERM",
        "pivot_root EPERM",
        "keyctl EPERM",
        "add_key EPERM",
        "request_key EPERM",
        "bpf EPERM",
        "perf_event_open EPERM",
        "userfaultfd EPERM",
        "open_by_handle_at EPERM",
        "name_to_handle_at EPERM",
        "init_module EPERM",
        "finit_module EPERM",
        "delete_module EPERM",
        "kexec_load EPERM",
        "reboot EPERM",
        "swapon EPERM",
        "swapoff EPERM",
        "settimeofday EPERM",
        "clock_settime EPERM",
        "adjtimex EPERM",
        "setns EPERM",
        "io_uring_setup EPERM",
        "acct EPERM",
        "quotactl EPERM",
        "syslog EPERM",
        "unshare-newuser EPERM",
        "clone-newuser EPERM",
        "clone3 ENOSYS",
        "x32-getpid EPERM",
        "ioctl-tiocsti EPERM",
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(must); i++)
        ASSERT_CONTAINS(o.out, must[i]);
    ASSERT_NOT_CONTAINS(o.out, "ALLOWED");
    sk_test_output_free(&o);
}

/* The 32-bit entry point is closed too (skipped only without IA32 emulation). */
TEST(int80_entry_is_closed)
{
    struct sk_test_output o;
    skiff_run(&o, "--mount", probe_mount(), "--", "/probe/probe", "syscalls");
    ASSERT_EQ_INT(o.exit_code, 0);
    const char *p = strstr(o.out, "int80-getpid ");
    ASSERT_TRUE(p != NULL);
    if (strncmp(p, "int80-getpid ENOSYS", 19) == 0)
        SKIP("kernel built without IA32 emulation: int 0x80 is absent");
    ASSERT_TRUE(strncmp(p, "int80-getpid EPERM", 18) == 0);
    sk_test_output_free(&o);
}

static unsigned long long status_hex(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        FAIL("no %s in %s", key, text);
    return strtoull(p + strlen(key), NULL, 16);
}

TEST(capabilities_nnp_and_seccomp)
{
    struct sk_test_output o;
    skiff_run(&o, "--mount", probe_mount(), "--", "/probe/probe", "status");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_INT(status_hex(o.out, "CapEff:\t"), sk_privs_default_caps());
    ASSERT_EQ_INT(status_hex(o.out, "CapBnd:\t"), sk_privs_default_caps());
    ASSERT_CONTAINS(o.out, "NoNewPrivs:\t1");
    ASSERT_CONTAINS(o.out, "Seccomp:\t2");
    /* no CAP_SYS_ADMIN (21), CAP_NET_RAW (13), CAP_SYS_PTRACE (19), CAP_MKNOD (27) */
    unsigned long long eff = status_hex(o.out, "CapEff:\t");
    ASSERT_EQ_INT(eff & ((1ULL << 21) | (1ULL << 13) | (1ULL << 19) | (1ULL << 27)), 0);
    sk_test_output_free(&o);
}

TEST(proc_sensitive_entries_masked_or_read_only)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c",
              "echo kcore=$(head -c 16 /proc/kcore | wc -c); "
              "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo sysctl-written; "
              "echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq-written; "
              "cat /proc/keys 2>/dev/null | wc -c | sed 's/^/keys=/'; "
              "touch /sys/x 2>/dev/null && echo sys-written; exit 0");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_CONTAINS(o.out, "kcore=0");
    ASSERT_CONTAINS(o.out, "keys=0");
    ASSERT_NOT_CONTAINS(o.out, "sysctl-written");
    ASSERT_NOT_CONTAINS(o.out, "sysrq-written");
    ASSERT_NOT_CONTAINS(o.out, "sys-written");
    sk_test_output_free(&o);
}

/* The host's environment and open files do not reach the sandbox. */
TEST(host_environment_and_fds_do_not_leak)
{
    int fd = open("/etc/hostname", O_RDONLY); /* deliberately inheritable */
    ASSERT_TRUE(fd >= 0);
    const char *env[] = {"SKIFF_STATE_DIR=" TEST_STATE_DIR, "SKIFF_TEST_SECRET=hunter2", NULL};
    const char *argv[] = {skiff_bin(), "run", "--", "/bin/sh", "-c", "env; ls /proc/self/fd", NULL};
    struct sk_test_output o;
    ASSERT_EQ_INT(sk_test_run(argv, NULL, env, 30, &o), 0);
    close(fd);
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_NOT_CONTAINS(o.out, "hunter2");
    ASSERT_NOT_CONTAINS(o.out, "SKIFF_STATE_DIR");
    /* sh's fds 0-2 plus the one ls opens for /proc/self/fd: no fd 4+ */
    ASSERT_NOT_CONTAINS(o.out, "\n4\n");
    ASSERT_NOT_CONTAINS(o.out, "\n5\n");
    sk_test_output_free(&o);
}

TEST(oom_under_memory_limit_is_reported)
{
    struct sk_test_output o;
    skiff_run(&o, "--memory", "64M", "--json", "--mount", probe_mount(), "--", "/probe/probe", "alloc", "512");
    ASSERT_EQ_INT(o.exit_code, 137);
    ASSERT_CONTAINS(o.err, "oom");
    ASSERT_NOT_CONTAINS(o.out, "allocated 512");
    ASSERT_CONTAINS(last_line(o.out), "\"reason\":\"oom\"");
    sk_test_output_free(&o);
    /* the host and the runtime are fine: the next sandbox works */
    skiff_run(&o, "--", "/bin/echo", "still-here");
    ASSERT_EQ_STR(o.out, "still-here\n");
    sk_test_output_free(&o);
}

TEST(fork_loop_is_bounded_by_pids)
{
    struct sk_test_output o;
    skiff_run(&o, "--pids", "64", "--mount", probe_mount(), "--", "/probe/probe", "forkbomb", "500");
    ASSERT_EQ_INT(o.exit_code, 0);
    const char *p = strstr(o.out, "forked ");
    ASSERT_TRUE(p != NULL);
    int forked = atoi(p + 7);
    ASSERT_LT_INT(forked, 64);
    ASSERT_GT_INT(forked, 10);
    ASSERT_CONTAINS(o.out, "fork-errno EAGAIN");
    sk_test_output_free(&o);
}

TEST_TIMEOUT(cpu_quota_limits_busy_loop, 60)
{
    struct sk_test_output o;
    skiff_run(&o, "--cpu", "0.5", "--json", "--mount", probe_mount(), "--", "/probe/probe", "spin", "2");
    ASSERT_EQ_INT(o.exit_code, 0);
    double cpu_ms = json_num(last_line(o.out), "cpu_ms");
    /* 2 s of wall time at half a core: about 1 s of CPU */
    ASSERT_GT_INT(cpu_ms, 700);
    ASSERT_LT_INT(cpu_ms, 1300);
    sk_test_output_free(&o);
}

TEST(timeout_ends_sandbox_with_reason)
{
    struct sk_test_output o;
    skiff_run(&o, "--timeout", "1", "--json", "--", "/bin/sleep", "60");
    ASSERT_EQ_INT(o.exit_code, 137);
    ASSERT_CONTAINS(o.err, "timeout");
    ASSERT_CONTAINS(last_line(o.out), "\"reason\":\"timeout\"");
    ASSERT_GT_INT(o.wall_ms, 900);
    ASSERT_LT_INT(o.wall_ms, 4000);
    sk_test_output_free(&o);
}

/* Writes to the writable layer are bounded by --disk. */
TEST(disk_limit_bounds_writable_layer)
{
    struct sk_test_output o;
    skiff_run(&o, "--disk", "8M", "--", "/bin/sh", "-c",
              "dd if=/dev/zero of=/tmp/big bs=1M count=32 2>&1; ls -l /tmp/big");
    ASSERT_CONTAINS(o.out, "No space left on device");
    sk_test_output_free(&o);
}

TEST(sandbox_cannot_create_user_namespace_or_mount)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c",
              "unshare -U true 2>&1 && echo userns-ok; mount -t tmpfs none /mnt 2>&1 && echo mount-ok; exit 0");
    ASSERT_NOT_CONTAINS(o.out, "userns-ok");
    ASSERT_NOT_CONTAINS(o.out, "mount-ok");
    sk_test_output_free(&o);
}

/* ptrace is allowed inside (debuggers work), but only of the sandbox's own
 * processes, and skiff-init (pid 1) refuses even that: it is not dumpable. */
TEST(skiff_init_cannot_be_traced_but_own_children_can)
{
    struct sk_test_output o;
    skiff_run(&o, "--mount", probe_mount(), "--", "/bin/sh", "-c", "/probe/probe ptrace 1; /probe/probe ptrace 0");
    ASSERT_CONTAINS(o.out, "ptrace EPERM\nptrace OK\n");
    sk_test_output_free(&o);
}
