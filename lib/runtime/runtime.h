/* runtime.h - the per-host sandbox runtime context.
 *
 * struct sk_runtime holds what every sandbox on this host shares and what is
 * prepared once: the state directory, the cgroup driver, the compiled seccomp
 * filter, an O_PATH descriptor of the skiff-init binary and the idmap policy.
 * One instance per process (skiff run, skiffd); not thread-safe.
 *
 * State directory layout (default /var/lib/skiff, $SKIFF_STATE_DIR):
 *   images/host-v<N>/   the generated host image skeleton
 *   mnt/                empty mount point; each sandbox's staging tmpfs is
 *                       mounted over it in a private mount namespace only
 *   locks/<id>.lock     held (flock) by the process that owns sandbox <id>
 *   slots/<n>.lock      held while uid/gid range <n> is in use
 * Nothing else of a sandbox lives on the host file system: its mounts exist
 * only in its own mount namespace and vanish with it.
 */
#ifndef SK_RUNTIME_RUNTIME_H
#define SK_RUNTIME_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

struct sk_runtime_config {
    const char *state_dir;     /* NULL: $SKIFF_STATE_DIR or /var/lib/skiff */
    const char *init_path;     /* NULL: $SKIFF_INIT or skiff-init next to the running binary */
    const char *cgroup_parent; /* NULL: "skiff" */
    bool allow_no_idmap;       /* fall back (logged) when idmapped mounts are unavailable;
                                  also set by SKIFF_IDMAP=off */
};

/* First host uid/gid of sandbox ranges, and the size of one range. Range n is
 * [SK_UID_BASE + n * SK_UID_RANGE, +SK_UID_RANGE); SK_UID_SLOTS ranges exist. */
#define SK_UID_BASE 0x40000000u
#define SK_UID_RANGE 65536u
#define SK_UID_SLOTS 4096u

struct sk_runtime;
struct sk_cgroup_system;
struct sk_seccomp;

/* sk_runtime_new - check the host (root, kernel features), create the state
 * directory, detect the cgroup driver, compile the seccomp filter, locate
 * skiff-init, and clean up what crashed owners left behind (cgroups of
 * sandboxes whose lock is no longer held). The caller frees with _free. */
int sk_runtime_new(const struct sk_runtime_config *cfg, struct sk_runtime **out, struct sk_error *err);
void sk_runtime_free(struct sk_runtime *rt);

const char *sk_runtime_state_dir(const struct sk_runtime *rt);
struct sk_cgroup_system *sk_runtime_cgroups(struct sk_runtime *rt);
const struct sk_seccomp *sk_runtime_seccomp(const struct sk_runtime *rt);
int sk_runtime_init_fd(const struct sk_runtime *rt);
bool sk_runtime_idmap(const struct sk_runtime *rt);

/* sk_runtime_cleanup_stale - remove cgroups and lock files of sandboxes whose
 * owner process is gone. Returns how many sandboxes were cleaned. */
int sk_runtime_cleanup_stale(struct sk_runtime *rt, struct sk_error *err);

/* A held uid/gid range. Released by sk_runtime_release_range. */
struct sk_idrange {
    int lock_fd;
    uint32_t slot;
    uid_t host_uid; /* first host uid of the range; sandbox uid 0 maps here */
    gid_t host_gid;
};
int sk_runtime_acquire_range(struct sk_runtime *rt, struct sk_idrange *r, struct sk_error *err);
void sk_runtime_release_range(struct sk_runtime *rt, struct sk_idrange *r);

/* sk_runtime_lock_sandbox - create and flock <state>/locks/<id>.lock; returns
 * the fd (owned by the caller, close to release). */
int sk_runtime_lock_sandbox(struct sk_runtime *rt, const char *id, struct sk_error *err);
void sk_runtime_unlock_sandbox(struct sk_runtime *rt, const char *id, int *fd);

#endif
