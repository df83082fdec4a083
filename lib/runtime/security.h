/* security.h - the privileges a sandbox keeps: capabilities, rlimits,
 * no_new_privs and the seccomp filter.
 *
 * The seccomp policy is a table in seccomp_policy.c (data, not code). It is
 * compiled with libseccomp at build time into a classic BPF program; struct
 * sk_seccomp holds a copy of it, and installing it in a child is a single prctl/seccomp
 * call that allocates nothing. Every blocked call fails with EPERM so
 * ordinary programs degrade gracefully; foreign architectures (the 32-bit
 * int 0x80 entry, x32) get EPERM too. clone3 gets ENOSYS so libc falls
 * back to clone, whose flags the filter can inspect (CLONE_NEWUSER denied).
 */
#ifndef SK_RUNTIME_SECURITY_H
#define SK_RUNTIME_SECURITY_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct sk_seccomp;

/* sk_seccomp_compile - the default policy's BPF program (generated at build
 * time from the policy table). The caller frees with sk_seccomp_free. */
int sk_seccomp_compile(struct sk_seccomp **out, struct sk_error *err);

/* sk_seccomp_program - the instructions of a compiled filter (borrowed). */
const void *sk_seccomp_program(const struct sk_seccomp *sc, size_t *n_insns);
void sk_seccomp_free(struct sk_seccomp *sc);

/* sk_seccomp_install - install the compiled filter on the calling thread.
 * Requires no_new_privs (sk_privs_apply sets it). Allocates nothing; safe in
 * a forked child. */
int sk_seccomp_install(const struct sk_seccomp *sc, struct sk_error *err);

/* The default capability set of a sandbox's processes (bit mask of CAP_*). */
uint64_t sk_privs_default_caps(void);

/* sk_privs_apply - in the child, as the last steps before seccomp: drop
 * every capability outside `caps` from the bounding set, set effective,
 * permitted to `caps` and inheritable to none, clear ambient caps, set rlimits
 * (RLIMIT_NOFILE to `nofile`, RLIMIT_CORE to 0) and PR_SET_NO_NEW_PRIVS.
 * `nofile` 0 leaves RLIMIT_NOFILE as it is; raising it above the current
 * hard limit needs CAP_SYS_RESOURCE (EPERM otherwise).
 * Allocates nothing; safe in a forked child. */
int sk_privs_apply(uint64_t caps, uint64_t nofile, struct sk_error *err);

#endif
