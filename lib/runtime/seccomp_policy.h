/* seccomp_policy.h - the sandbox seccomp policy (a table in
 * seccomp_policy.c) and its compilation with libseccomp.
 *
 * Only the build-time generator (scripts/seccomp-gen.c) and the tests call
 * this; the runtime installs the program generated from it (security.h), so
 * skiff's binaries do not need libseccomp at run time.
 */
#ifndef SK_RUNTIME_SECCOMP_POLICY_H
#define SK_RUNTIME_SECCOMP_POLICY_H

#include <linux/filter.h>
#include <stddef.h>

#include "base/error.h"

/* sk_seccomp_policy_compile - compile the policy table into classic BPF:
 * *insns (heap, caller frees) with *n instructions. */
int sk_seccomp_policy_compile(struct sock_filter **insns, size_t *n, struct sk_error *err);

/* sk_seccomp_blocked_names - NULL-terminated list of the syscall names the
 * policy denies outright (for tests and docs). Static storage. These fail
 * with EPERM whatever their arguments; the calls filtered on an argument
 * (clone, unshare, ioctl, personality) and clone3 (ENOSYS) are not listed. */
const char *const *sk_seccomp_blocked_names(void);

#endif
