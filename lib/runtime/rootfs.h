/* rootfs.h - building a sandbox's root file system and entering it.
 *
 * The work is split between two processes of sk_sandbox_create (see
 * sandbox.c): the *setup* process runs as host root in a private mount
 * namespace and mounts the staging tmpfs, the idmapped lower layers, the
 * overlay, binds and /dev (sk_rootfs_prepare); the sandbox's future pid 1,
 * already in its own user namespace, then copies that mount tree into a new
 * mount namespace it owns (every mount in it locked), adds /proc, /sys and
 * /dev/pts, masks sensitive /proc entries and pivots into the root
 * (sk_rootfs_enter). Both run in forked children of a possibly
 * multithreaded process: they allocate nothing and use only the plan, which
 * sk_rootfs_plan_new fills in the parent beforehand.
 */
#ifndef SK_RUNTIME_ROOTFS_H
#define SK_RUNTIME_ROOTFS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "image/image.h"

#define SK_ROOTFS_MAX_BINDS 40

struct sk_rootfs_bind {
    char source[PATH_MAX];
    char target[PATH_MAX]; /* absolute, inside the sandbox */
    bool read_only;
    bool idmap; /* image content: present host root as sandbox root */
    bool is_file;
};

struct sk_rootfs_plan {
    char stage[PATH_MAX]; /* <state>/mnt: staging tmpfs mount point */
    char stage_opts[96];
    char root[PATH_MAX]; /* <stage>/root: the overlay */
    char overlay_opts[3072];
    size_t n_layers;
    char layer_src[SK_IMAGE_MAX_LAYERS][PATH_MAX];
    char layer_mnt[SK_IMAGE_MAX_LAYERS][PATH_MAX];
    size_t n_binds;
    struct sk_rootfs_bind binds[SK_ROOTFS_MAX_BINDS];
    bool idmap;
    uid_t uid; /* host uid of sandbox root */
    gid_t gid;
    char hostname[65];
};

struct sk_sandbox_spec;

/* sk_rootfs_plan_new - fill a heap plan (caller frees with free()) from the
 * resolved image and the spec's mounts. Validates mount targets (absolute,
 * no "." or ".." components) and sources (absolute, existing). */
int sk_rootfs_plan_new(const char *state_dir, const struct sk_image *img, const struct sk_sandbox_spec *spec, uid_t uid,
                       gid_t gid, bool idmap, const char *hostname, struct sk_rootfs_plan **out, struct sk_error *err);

/* sk_rootfs_prepare - in the setup process (host root, private mount
 * namespace): build the mount tree. `userns_fd` is the sandbox's user
 * namespace, used for the idmapped layers. */
int sk_rootfs_prepare(const struct sk_rootfs_plan *plan, int userns_fd, struct sk_error *err);

/* sk_rootfs_enter - in the sandbox's pid 1, after its uid/gid maps are
 * written and before it changes its host credentials (its host uid 0 must
 * still traverse the state directory, which the sandbox's range cannot
 * read): new mount namespace, /proc, /sys (read-only, optional), /dev/pts,
 * masks, pivot_root, hostname, loopback up. */
int sk_rootfs_enter(const struct sk_rootfs_plan *plan, struct sk_error *err);

#endif
