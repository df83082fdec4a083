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
 *   <run_dir>/slots/<n>.lock  held while uid/gid range <n> is in use; host-wide,
 *                       shared by every runtime whatever its state dir; holds the id
 *                       of the persistent sandbox that claims the range
 *   sandboxes/<id>/     persistent sandboxes only (0700): ctl.sock, where a
 *                       new owner connects to skiff-init, and execs/, output
 *                       files (sk_sandbox_output_open)
 * Nothing else of a sandbox lives on the host file system: its mounts exist
 * only in its own mount namespace and vanish with it.
 *
 * A persistent sandbox outlives its owner: while nobody holds its lock its
 * range stays claimed (a claim counts while sandboxes/<id>/ exists), so no
 * new sandbox gets its uids, until it is adopted (sk_sandbox_adopt) or
 * destroyed (sk_sandbox_destroy_orphan, or the stale sweep).
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
    const char *cgroup_parent; /* NULL: "skiff" for the default state dir, else "skiff-<hash>" */
    const char *run_dir;       /* host-wide uid-range locks; NULL: $SKIFF_RUN_DIR or /run/skiff
                                  (every runtime on a host must share it, whatever its state
                                  dir, so two sandboxes never share a uid range) */
    bool allow_no_idmap;       /* fall back (logged) when idmapped mounts are unavailable;
                                  also set by SKIFF_IDMAP=off */
    bool keep_unowned;         /* sk_runtime_new does not sweep sandboxes whose owner is
                                  gone: a daemon adopts (or destroys) the persistent ones
                                  it knows first, then calls sk_runtime_cleanup_stale */
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
 * skiff-init, and - unless cfg->keep_unowned - clean up what crashed owners
 * left behind (sk_runtime_cleanup_stale). The caller frees with _free. */
int sk_runtime_new(const struct sk_runtime_config *cfg, struct sk_runtime **out, struct sk_error *err);
void sk_runtime_free(struct sk_runtime *rt);

const char *sk_runtime_state_dir(const struct sk_runtime *rt);
struct sk_cgroup_system *sk_runtime_cgroups(struct sk_runtime *rt);
const struct sk_seccomp *sk_runtime_seccomp(const struct sk_runtime *rt);
int sk_runtime_init_fd(const struct sk_runtime *rt);
bool sk_runtime_idmap(const struct sk_runtime *rt);

/* sk_runtime_cleanup_stale - kill and remove every sandbox of this state dir
 * whose owner is gone (nobody holds its lock), persistent ones included:
 * their cgroups and processes, lock files and sandboxes/<id>/ directories.
 * Returns how many cgroups and sandbox directories were removed. */
int sk_runtime_cleanup_stale(struct sk_runtime *rt, struct sk_error *err);

/* A held uid/gid range. Released by sk_runtime_release_range. */
struct sk_idrange {
    int lock_fd;
    uint32_t slot;
    uid_t host_uid; /* first host uid of the range; sandbox uid 0 maps here */
    gid_t host_gid;
    bool claimed; /* claimed for a persistent sandbox (sk_runtime_claim_range) */
};
/* sk_runtime_acquire_range - lock a free range. Ranges claimed by a
 * persistent sandbox that still exists are skipped even when unlocked. */
int sk_runtime_acquire_range(struct sk_runtime *rt, struct sk_idrange *r, struct sk_error *err);
/* sk_runtime_claim_range - record in the held range's lock file that
 * persistent sandbox `id` uses it, so it stays reserved after the lock is
 * gone with its owner (valid while <state>/sandboxes/<id>/ exists). */
int sk_runtime_claim_range(struct sk_runtime *rt, struct sk_idrange *r, const char *id, struct sk_error *err);
/* sk_runtime_retake_range - lock range `slot` again for the persistent
 * sandbox `id` that claims it (adoption; waits up to ~1 s for a creator that
 * is looking at it). EBUSY when it is locked elsewhere or claimed by
 * another sandbox, EINVAL for a slot out of range. */
int sk_runtime_retake_range(struct sk_runtime *rt, uint32_t slot, const char *id, struct sk_idrange *r,
                            struct sk_error *err);
/* sk_runtime_unclaim_range - drop the claim of sandbox `id` on range `slot`
 * if it still holds it (best effort; for an orphan's clean-up). */
void sk_runtime_unclaim_range(struct sk_runtime *rt, uint32_t slot, const char *id);
/* sk_runtime_release_range - drop the claim (if any) and the lock. */
void sk_runtime_release_range(struct sk_runtime *rt, struct sk_idrange *r);

/* sk_runtime_lock_sandbox - create and flock <state>/locks/<id>.lock; returns
 * the fd (owned by the caller, close to release). EWOULDBLOCK when another
 * process holds it. */
int sk_runtime_lock_sandbox(struct sk_runtime *rt, const char *id, struct sk_error *err);
void sk_runtime_unlock_sandbox(struct sk_runtime *rt, const char *id, int *fd);

#endif
