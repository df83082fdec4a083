/* security.c - capabilities, rlimits, no_new_privs and installing the
 * seccomp filter.
 *
 * The filter itself is the policy table in seccomp_policy.c, compiled by
 * libseccomp at build time (scripts/seccomp-gen.c) into the classic BPF
 * program that build/gen/seccomp_bpf.c holds. At run time nothing is
 * compiled and libseccomp is not even loaded: sk_seccomp_compile copies the
 * built-in program, and a child installs it with one prctl.
 */
#include "runtime/security.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct sk_seccomp {
    struct sock_fprog prog; /* prog.filter is a heap copy of the BPF program */
};

/* Generated at build time from the policy table (build/gen/seccomp_bpf.c). */
extern const struct sock_filter sk_seccomp_builtin_insns[];
extern const unsigned short sk_seccomp_builtin_len;

int sk_seccomp_compile(struct sk_seccomp **out, struct sk_error *err)
{
    if (sk_seccomp_builtin_len == 0 || sk_seccomp_builtin_len > BPF_MAXINSNS)
        return sk_error_setv(err, EINVAL, "seccomp: built-in program has %u instructions",
                             (unsigned)sk_seccomp_builtin_len);
    struct sk_seccomp *sc = xcalloc(1, sizeof(*sc));
    size_t bytes = sk_seccomp_builtin_len * sizeof(struct sock_filter);
    sc->prog.filter = xmalloc(bytes);
    memcpy(sc->prog.filter, sk_seccomp_builtin_insns, bytes);
    sc->prog.len = sk_seccomp_builtin_len;
    *out = sc;
    return 0;
}

const void *sk_seccomp_program(const struct sk_seccomp *sc, size_t *n_insns)
{
    *n_insns = sc->prog.len;
    return sc->prog.filter;
}

void sk_seccomp_free(struct sk_seccomp *sc)
{
    if (sc == NULL)
        return;
    free(sc->prog.filter);
    free(sc);
}

int sk_seccomp_install(const struct sk_seccomp *sc, struct sk_error *err)
{
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sc->prog, 0, 0) < 0)
        return sk_error_set(err, errno, "install seccomp filter");
    return 0;
}

#define CAP_BIT(c) (UINT64_C(1) << (c))

uint64_t sk_privs_default_caps(void)
{
    /* Docker's default set less NET_RAW (raw sockets: ARP/ICMP spoofing on
     * shared networks) and MKNOD (device nodes). */
    return CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FOWNER) | CAP_BIT(CAP_FSETID) |
           CAP_BIT(CAP_KILL) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETPCAP) |
           CAP_BIT(CAP_NET_BIND_SERVICE) | CAP_BIT(CAP_SYS_CHROOT) | CAP_BIT(CAP_SETFCAP) | CAP_BIT(CAP_AUDIT_WRITE);
}

static int set_rlimits(uint64_t nofile, struct sk_error *err)
{
    if (nofile != 0) {
        struct rlimit lim = {.rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile};
        if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
            return sk_error_set(err, errno, "set RLIMIT_NOFILE to %llu", (unsigned long long)nofile);
    }
    struct rlimit core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &core) < 0)
        return sk_error_set(err, errno, "set RLIMIT_CORE to 0");
    return 0;
}

/* drop_bounding - remove every capability outside `caps` from the bounding
 * set, so that no execve (of a setuid or file-capability binary, or as uid 0)
 * can bring it back. Capabilities are numbered without gaps, so the first
 * EINVAL from PR_CAPBSET_READ marks the kernel's last one; no need to read
 * /proc/sys/kernel/cap_last_cap. */
static int drop_bounding(uint64_t caps, struct sk_error *err)
{
    for (unsigned long cap = 0; cap < 64; cap++) {
        int held = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (held < 0 && errno == EINVAL)
            break;
        if (held < 0)
            return sk_error_set(err, errno, "read bounding capability %lu", cap);
        if (held == 0 || (caps & CAP_BIT(cap)))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return sk_error_set(err, errno, "drop bounding capability %lu", cap);
    }
    return 0;
}

static int set_caps(uint64_t caps, struct sk_error *err)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        uint32_t word = (uint32_t)(caps >> (32 * i));
        data[i].effective = word;
        data[i].permitted = word;
        /* Inheritable stays empty (CVE-2022-24769): a non-empty set would let
         * a file-capability binary hand bounding-set capabilities to a
         * process that does not hold them. */
        data[i].inheritable = 0;
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return sk_error_set(err, errno, "capset 0x%llx", (unsigned long long)caps);
    return 0;
}

int sk_privs_apply(uint64_t caps, uint64_t nofile, struct sk_error *err)
{
    /* Limits first: raising RLIMIT_NOFILE's hard limit needs
     * CAP_SYS_RESOURCE, which the capability steps below may take away. */
    int ret = set_rlimits(nofile, err);
    if (ret < 0)
        return ret;
    /* The bounding set next: dropping from it needs CAP_SETPCAP. */
    ret = drop_bounding(caps, err);
    if (ret < 0)
        return ret;
    /* Ambient capabilities would survive execve of an unprivileged binary. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return sk_error_set(err, errno, "clear ambient capabilities");
    ret = set_caps(caps, err);
    if (ret < 0)
        return ret;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sk_error_set(err, errno, "set no_new_privs");
    return 0;
}
