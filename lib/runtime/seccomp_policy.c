/* seccomp_policy.c - the seccomp policy as data, and its compilation.
 *
 * The policy is the table `policy` below: default ALLOW, and a list of
 * calls that a sandbox never needs and that reach kernel state shared with
 * the host (modules, clocks, keyrings, mounts, namespaces of other processes,
 * io_uring, accounting). libseccomp compiles it into a classic BPF program;
 * the build does that once (scripts/seccomp-gen.c) so that creating a
 * sandbox never pays for it, and the tests check the built-in program still
 * equals a fresh compilation of this table.
 */
#include "runtime/seccomp_policy.h"

#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

/* Calls denied with EPERM whatever their arguments. One X(name, why) per
 * call; expanded below into the policy table and the blocked-names list. */
#define SK_SECCOMP_ALWAYS_DENIED(X) \
    X(init_module, "loads code into the kernel every sandbox shares") \
    X(finit_module, "loads code into the kernel every sandbox shares") \
    X(delete_module, "unloads kernel modules the host relies on") \
    X(kexec_load, "replaces the running kernel") \
    X(kexec_file_load, "replaces the running kernel") \
    X(reboot, "reboots or halts the host") \
    X(swapon, "changes the host's swap") \
    X(swapoff, "changes the host's swap") \
    X(settimeofday, "the clock is not namespaced: it would change the host's time") \
    X(clock_settime, "the clock is not namespaced: it would change the host's time") \
    X(clock_adjtime, "adjusts the host's clock") \
    X(adjtimex, "adjusts the host's clock") \
    X(keyctl, "the kernel keyring is not namespaced") \
    X(add_key, "the kernel keyring is not namespaced") \
    X(request_key, "the kernel keyring is not namespaced") \
    X(bpf, "loads programs into the kernel; a large attack surface") \
    X(perf_event_open, "observes other processes and the kernel; a large attack surface") \
    X(userfaultfd, "stalls kernel page faults at will, the usual aid to kernel race exploits") \
    X(open_by_handle_at, "opens files by handle, bypassing the mount namespace (the shocker escape)") \
    X(name_to_handle_at, "the other half of open_by_handle_at") \
    X(mount, "the sandbox's mounts are made before it starts") \
    X(umount2, "would uncover what the sandbox's mounts hide") \
    X(pivot_root, "the sandbox's root is fixed before it starts") \
    X(move_mount, "new mount API: same reason as mount") \
    X(open_tree, "new mount API: same reason as mount") \
    X(fsopen, "new mount API: same reason as mount") \
    X(fsconfig, "new mount API: same reason as mount") \
    X(fsmount, "new mount API: same reason as mount") \
    X(fspick, "new mount API: same reason as mount") \
    X(mount_setattr, "would make read-only mounts writable") \
    X(setns, "joins namespaces the sandbox was not given") \
    X(io_uring_setup, "io_uring bypasses seccomp for the calls it performs and has a long CVE record") \
    X(io_uring_enter, "io_uring bypasses seccomp for the calls it performs and has a long CVE record") \
    X(io_uring_register, "io_uring bypasses seccomp for the calls it performs and has a long CVE record") \
    X(acct, "process accounting is host-wide") \
    X(quotactl, "disk quotas are host-wide") \
    X(quotactl_fd, "disk quotas are host-wide") \
    X(syslog, "the kernel log is host-wide and leaks kernel addresses") \
    X(lookup_dcookie, "profiling interface; host-wide") \
    X(vhangup, "hangs up terminals") \
    X(iopl, "raw I/O port access") \
    X(ioperm, "raw I/O port access") \
    X(uselib, "obsolete loader entry point") \
    X(ustat, "obsolete; reveals host file systems") \
    X(sysfs, "obsolete; reveals host file systems") \
    X(_sysctl, "obsolete sysctl interface") \
    X(nfsservctl, "obsolete NFS server control")

enum arg_cond {
    ARG_ANY,       /* whatever the arguments */
    ARG_HAS_FLAGS, /* (args[arg] & value) == value */
    ARG_EQ_U32,    /* (unsigned int)args[arg] == value */
    ARG_PERSONA,   /* (unsigned int)args[arg] is neither a combination of the
                    * flags in value nor the 0xffffffff query */
};

struct rule {
    const char *name;
    uint32_t action;
    enum arg_cond cond;
    unsigned int arg;
    uint64_t value;
    const char *why;
};

#define DENY_ALWAYS(n, w) {#n, SCMP_ACT_ERRNO(EPERM), ARG_ANY, 0, 0, w},

static const struct rule policy[] = {
    SK_SECCOMP_ALWAYS_DENIED(DENY_ALWAYS)

    /* ENOSYS, not EPERM: libc (glibc's pthread_create, for one) then falls
     * back to clone, whose flags are in a register the filter can read;
     * clone3's flags sit behind a pointer that seccomp cannot follow. */
    {"clone3", SCMP_ACT_ERRNO(ENOSYS), ARG_ANY, 0, 0, "flags out of the filter's reach"},

    /* A new user namespace gives its creator every capability inside it and
     * with them kernel code paths (netfilter, mounts of odd file systems)
     * that are otherwise root-only. Other namespace flags pass: without
     * CAP_SYS_ADMIN in the sandbox's own user namespace the kernel refuses
     * them, and the sandbox's root may legitimately use them. */
    {"clone", SCMP_ACT_ERRNO(EPERM), ARG_HAS_FLAGS, 0, CLONE_NEWUSER, "nested user namespaces"},
    {"unshare", SCMP_ACT_ERRNO(EPERM), ARG_HAS_FLAGS, 0, CLONE_NEWUSER, "nested user namespaces"},

    /* The request is an unsigned int to the kernel: compare only the low 32
     * bits, or TIOCSTI | 1 << 32 would slip past an exact match. */
    {"ioctl", SCMP_ACT_ERRNO(EPERM), ARG_EQ_U32, 1, TIOCSTI, "pushes input into a terminal another process reads"},
    {"ioctl", SCMP_ACT_ERRNO(EPERM), ARG_EQ_U32, 1, TIOCLINUX, "pushes input into a virtual console"},

    /* Docker's list: the default persona, the 32-bit and uname-2.6 flavours
     * and the query. The rest (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC,
     * MMAP_PAGE_ZERO, ...) only weaken exploit mitigations. */
    {"personality", SCMP_ACT_ERRNO(EPERM), ARG_PERSONA, 0, PER_LINUX32 | UNAME26, "disables exploit mitigations"},

    /* Deliberately not here, the default ALLOW covers them:
     * - ptrace, process_vm_readv/writev, kcmp: the sandbox's pid namespace
     *   makes only its own processes nameable, and the sandbox does not hold
     *   CAP_SYS_PTRACE, so the kernel's ptrace access check confines them to
     *   processes of the same credentials inside the sandbox. Debuggers and
     *   strace work, which agents use. */
};

#undef DENY_ALWAYS

#define BLOCKED_NAME(n, w) #n,

static const char *const blocked_names[] = {SK_SECCOMP_ALWAYS_DENIED(BLOCKED_NAME) NULL};

#undef BLOCKED_NAME

const char *const *sk_seccomp_blocked_names(void)
{
    return blocked_names;
}

static int add_cmp(scmp_filter_ctx ctx, const struct rule *r, int nr, enum scmp_compare op, uint64_t a, uint64_t b,
                   struct sk_error *err)
{
    struct scmp_arg_cmp cmp = {.arg = r->arg, .op = op, .datum_a = a, .datum_b = b};
    int ret = seccomp_rule_add_array(ctx, r->action, nr, 1, &cmp);
    if (ret < 0)
        return sk_error_set(err, -ret, "seccomp: add rule for '%s'", r->name);
    return 0;
}

/* add_persona_rules - deny unless the low 32 bits of the argument are a
 * combination of the flags in r->value, or 0xffffffff.
 *
 * libseccomp allows one comparison per argument in a rule and ORs rules, so
 * "not in this set" cannot be a single rule. Instead: a value is bad exactly
 * when some bit outside r->value is set and some bit is clear. Order the 32
 * bits in a cycle; for every bit c, let n(c) be the next bit after c (going
 * round) that lies outside r->value, and deny "bit c clear and bit n(c) set".
 * Each such rule needs a clear bit and a set bit outside the flags, so it
 * never denies a good value. A bad value has a clear bit z and a set outside
 * bit s; walking z, n(z), n(n(z)), ... visits every outside bit, s among
 * them, so somewhere a clear bit c is followed by a set n(c): a rule fires. */
static int add_persona_rules(scmp_filter_ctx ctx, const struct rule *r, int nr, struct sk_error *err)
{
    uint32_t outside = ~(uint32_t)r->value;
    if (outside == 0)
        return 0;
    for (unsigned int c = 0; c < 32; c++) {
        unsigned int n = (c + 1) % 32;
        while (!(outside & (UINT32_C(1) << n)))
            n = (n + 1) % 32;
        uint64_t clear = UINT64_C(1) << c, set = UINT64_C(1) << n;
        int ret = add_cmp(ctx, r, nr, SCMP_CMP_MASKED_EQ, clear | set, set, err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, struct sk_error *err)
{
    int nr = seccomp_syscall_resolve_name(r->name);
    /* A call this libseccomp does not know (or that x86_64 lacks) cannot be
     * made through the native table either: nothing to deny. */
    if (nr == __NR_SCMP_ERROR || nr < 0)
        return 0;

    int ret;
    switch (r->cond) {
    case ARG_ANY:
        ret = seccomp_rule_add(ctx, r->action, nr, 0);
        if (ret < 0)
            return sk_error_set(err, -ret, "seccomp: add rule for '%s'", r->name);
        return 0;
    case ARG_HAS_FLAGS: return add_cmp(ctx, r, nr, SCMP_CMP_MASKED_EQ, r->value, r->value, err);
    case ARG_EQ_U32: return add_cmp(ctx, r, nr, SCMP_CMP_MASKED_EQ, UINT32_MAX, r->value, err);
    case ARG_PERSONA: return add_persona_rules(ctx, r, nr, err);
    }
    return sk_error_setv(err, EINVAL, "seccomp: bad condition for '%s'", r->name);
}

static int build_policy(scmp_filter_ctx ctx, struct sk_error *err)
{
    /* The filter holds only the native (x86_64) architecture. Every other
     * entry point, the 32-bit int 0x80 one above all, reaches a different
     * syscall table with different numbers; it gets EPERM wholesale.
     * libseccomp also refuses x32 numbers (nr | 0x40000000) with this action
     * when x32 is not in the filter. */
    int ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
    if (ret < 0)
        return sk_error_set(err, -ret, "seccomp: set bad-architecture action");
    /* A binary tree of syscall numbers instead of a linear list. */
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (ret < 0)
        return sk_error_set(err, -ret, "seccomp: set optimization level");
    for (size_t i = 0; i < SK_ARRAY_SIZE(policy); i++) {
        ret = add_rule(ctx, &policy[i], err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* export_program - libseccomp 2.5 exports only to a file descriptor: write
 * into a memfd and read the instructions back into the heap. */
static int export_program(scmp_filter_ctx ctx, struct sock_filter **out, size_t *n_out, struct sk_error *err)
{
    _cleanup_close_ int fd = memfd_create("skiff-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return sk_error_set(err, errno, "seccomp: memfd_create");
    int ret = seccomp_export_bpf(ctx, fd);
    if (ret < 0)
        return sk_error_set(err, -ret, "seccomp: export program");

    struct stat st;
    if (fstat(fd, &st) < 0)
        return sk_error_set(err, errno, "seccomp: stat exported program");
    size_t len = (size_t)st.st_size;
    size_t n = len / sizeof(struct sock_filter);
    if (len == 0 || len % sizeof(struct sock_filter) != 0 || n > BPF_MAXINSNS)
        return sk_error_setv(err, EINVAL, "seccomp: exported program has %zu bytes", len);

    _cleanup_free_ struct sock_filter *insns = xmalloc(len);
    if (lseek(fd, 0, SEEK_SET) < 0)
        return sk_error_set(err, errno, "seccomp: rewind exported program");
    ssize_t got = sk_read_all(fd, insns, len);
    if (got < 0)
        return sk_error_set(err, errno, "seccomp: read exported program");
    if ((size_t)got != len)
        return sk_error_setv(err, EIO, "seccomp: exported program truncated (%zd of %zu bytes)", got, len);

    *n_out = n;
    *out = steal_pointer(&insns);
    return 0;
}

static void release_ctx(scmp_filter_ctx *ctx)
{
    if (*ctx != NULL)
        seccomp_release(*ctx);
}

int sk_seccomp_policy_compile(struct sock_filter **insns, size_t *n, struct sk_error *err)
{
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL)
        return sk_error_setv(err, ENOMEM, "seccomp: cannot create filter context");
    int ret = build_policy(ctx, err);
    if (ret < 0)
        return ret;
    return export_program(ctx, insns, n, err);
}
