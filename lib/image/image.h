/* image.h - what a sandbox's root filesystem is made of.
 *
 * An image resolves to an ordered list of read-only lower layers (top first,
 * as overlayfs wants them) plus read-only bind mounts that are placed into
 * the sandbox root after the overlay is mounted. For now two kinds exist:
 *
 *   "host"  - the host's /usr (and non-symlinked /bin, /lib*, ...) read-only,
 *             over a generated skeleton with a minimal /etc: no shadow, no ssh
 *             keys, no root's home. The skeleton is built once per state
 *             directory under <state>/images/host-v<N> (atomically: built in
 *             a temporary directory, then renamed).
 *   PATH    - any rootfs directory given by absolute path, used as the single
 *             lower layer.
 *
 * The image builder of a later issue slots in here.
 */
#ifndef SK_IMAGE_IMAGE_H
#define SK_IMAGE_IMAGE_H

#include <stddef.h>

#include "base/error.h"

#define SK_IMAGE_MAX_LAYERS 8
#define SK_IMAGE_MAX_BINDS 8

struct sk_image_bind {
    char *source; /* absolute host path */
    char *target; /* absolute path inside the sandbox */
};

struct sk_image {
    char *name; /* "host" or the rootfs path */
    char *layers[SK_IMAGE_MAX_LAYERS];
    size_t n_layers;
    struct sk_image_bind binds[SK_IMAGE_MAX_BINDS];
    size_t n_binds;
};

/* sk_image_resolve - resolve `ref` ("host" or an absolute directory path)
 * into layers and binds; builds the host skeleton under `state_dir` if it is
 * missing. Fills *img; release it with sk_image_release. Errors: EINVAL for a
 * relative path or unknown name, ENOENT/ENOTDIR for a missing rootfs. */
int sk_image_resolve(const char *state_dir, const char *ref, struct sk_image *img, struct sk_error *err);
void sk_image_release(struct sk_image *img);

#endif
