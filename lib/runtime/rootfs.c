#include "runtime/rootfs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "base/util.h"
#include "runtime/sandbox.h"

/* Files under /proc that leak host information or allow host-wide actions.
 * They are covered by /dev/null (files) or an empty read-only tmpfs (dirs). */
static const char *const proc_masked[] = {
    "kcore",         "keys",       "key-users",  "timer_list",  "sched_debug", "kallsyms",
    "latency_stats", "kpagecount", "kpageflags", "kpagecgroup", "vmallocinfo", "sysrq-trigger",
    "config.gz",     "acpi",       "scsi",       "asound",
};
/* Entries that stay readable but must not be written: the global kernel
 * settings (sysctls outside the sandbox's own namespaces) and interrupt and
 * bus controls. */
static const char *const proc_read_only[] = {"sys", "irq", "bus", "fs"};

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

int sk_rootfs_plan_new(const char *state_dir, const struct sk_image *img, const struct sk_sandbox_spec *spec, uid_t uid,
                       gid_t gid, bool idmap, const char *hostname, struct sk_rootfs_plan **out, struct sk_error *err)
{
    _cleanup_free_ struct sk_rootfs_plan *p = xcalloc(1, sizeof(*p));
    int64_t disk = spec->disk_bytes > 0 ? spec->disk_bytes : SK_SANDBOX_DEFAULT_DISK;
    snprintf(p->stage, sizeof(p->stage), "%s/mnt", state_dir);
    snprintf(p->stage_opts, sizeof(p->stage_opts), "size=%lld,mode=0755", (long long)disk);
    snprintf(p->root, sizeof(p->root), "%s/root", p->stage);
    p->idmap = idmap;
    p->uid = uid;
    p->gid = gid;
    snprintf(p->hostname, sizeof(p->hostname), "%s", hostname);
    if (img->n_layers == 0 || img->n_layers > SK_IMAGE_MAX_LAYERS)
        return sk_error_setv(err, EINVAL, "image '%s' has no layers", img->name);
    p->n_layers = img->n_layers;
    size_t off = (size_t)snprintf(p->overlay_opts, sizeof(p->overlay_opts), "lowerdir=");
    for (size_t i = 0; i < img->n_layers && off < sizeof(p->overlay_opts); i++) {
        snprintf(p->layer_src[i], PATH_MAX, "%s", img->layers[i]);
        snprintf(p->layer_mnt[i], PATH_MAX, "%s/mnt/l%zu", state_dir, i);
        off += (size_t)snprintf(p->overlay_opts + off, sizeof(p->overlay_opts) - off, "%s%s", i ? ":" : "",
                                p->layer_mnt[i]);
    }
    if (off < sizeof(p->overlay_opts))
        off += (size_t)snprintf(p->overlay_opts + off, sizeof(p->overlay_opts) - off,
                                ",upperdir=%s/mnt/upper,workdir=%s/mnt/work", state_dir, state_dir);
    if (off >= sizeof(p->overlay_opts))
        return sk_error_setv(err, ENAMETOOLONG, "overlay options for state dir '%s' are too long", state_dir);

    if (img->n_binds + spec->n_mounts > SK_ROOTFS_MAX_BINDS)
        return sk_error_setv(err, EINVAL, "too many mounts (at most %d)", SK_ROOTFS_MAX_BINDS - (int)img->n_binds);
    for (size_t i = 0; i < img->n_binds; i++) {
        struct sk_rootfs_bind *b = &p->binds[p->n_binds++];
        snprintf(b->source, PATH_MAX, "%s", img->binds[i].source);
        snprintf(b->target, PATH_MAX, "%s", img->binds[i].target);
        b->read_only = true;
        b->idmap = idmap;
    }
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct sk_mount_spec *m = &spec->mounts[i];
        if (m->source == NULL || m->source[0] != '/')
            return sk_error_setv(err, EINVAL, "mount source '%s' must be an absolute host path",
                                 m->source ? m->source : "");
        if (m->target == NULL || m->target[0] != '/' || strcmp(m->target, "/") == 0)
            return sk_error_setv(err, EINVAL, "mount target '%s' must be an absolute path below '/'",
                                 m->target ? m->target : "");
        if (strlen(m->source) >= PATH_MAX || strlen(m->target) >= PATH_MAX)
            return sk_error_setv(err, ENAMETOOLONG, "mount path too long");
        /* Reject "." and ".." components: targets are resolved beneath the
         * root without symlinks, and a ".." could only mean a mistake. */
        const char *c = m->target;
        while (*c) {
            while (*c == '/')
                c++;
            const char *e = strchrnul(c, '/');
            size_t n = (size_t)(e - c);
            if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                return sk_error_setv(err, EINVAL, "mount target '%s' must not contain '.' or '..'", m->target);
            c = e;
        }
        struct stat st;
        if (stat(m->source, &st) < 0)
            return sk_error_set(err, errno, "mount source '%s'", m->source);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            return sk_error_setv(err, EINVAL, "mount source '%s' is neither a directory nor a regular file", m->source);
        struct sk_rootfs_bind *b = &p->binds[p->n_binds++];
        snprintf(b->source, PATH_MAX, "%s", m->source);
        snprintf(b->target, PATH_MAX, "%s", m->target);
        b->read_only = m->read_only;
        b->idmap = false;
        b->is_file = S_ISREG(st.st_mode);
    }
    *out = steal_pointer(&p);
    return 0;
}

/* ---- setup process (host root) ---------------------------------------- */

static int fd_path(char *buf, size_t n, int fd)
{
    return snprintf(buf, n, "/proc/self/fd/%d", fd);
}

/* open_beneath - create (if missing) and open `path` below `rootfd`, one
 * component at a time, refusing symlinks and anything that resolves outside
 * the root: image content is untrusted and a planted symlink must not
 * redirect a host-root mount. Returns an O_PATH fd. New entries are given to
 * the sandbox's root (uid/gid). */
static int open_beneath(int rootfd, const char *path, bool is_file, uid_t uid, gid_t gid, struct sk_error *err)
{
    char comp[NAME_MAX + 1];
    int cur = dup(rootfd);
    if (cur < 0)
        return sk_error_set(err, errno, "dup");
    const char *c = path;
    for (;;) {
        while (*c == '/')
            c++;
        if (*c == '\0')
            return cur;
        const char *e = strchrnul(c, '/');
        size_t n = (size_t)(e - c);
        if (n > NAME_MAX) {
            close(cur);
            return sk_error_setv(err, ENAMETOOLONG, "path component too long in '%s'", path);
        }
        memcpy(comp, c, n);
        comp[n] = '\0';
        const char *rest = e;
        while (*rest == '/')
            rest++;
        bool last = *rest == '\0';
        if (last && is_file) {
            int f = openat(cur, comp, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
            if (f >= 0) {
                if (fchown(f, uid, gid) < 0) {
                    /* best effort: ownership of a mount point is cosmetic */
                }
                close(f);
            } else if (errno != EISDIR && errno != EEXIST) {
                int e2 = errno;
                close(cur);
                return sk_error_set(err, e2, "create mount point '%s'", path);
            }
        } else if (mkdirat(cur, comp, 0755) == 0) {
            if (fchownat(cur, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
                /* best effort, as above */
            }
        } else if (errno != EEXIST) {
            int e2 = errno;
            close(cur);
            return sk_error_set(err, e2, "create mount point '%s'", path);
        }
        struct open_how how = {
            .flags = O_PATH | O_CLOEXEC | (last && is_file ? 0 : O_DIRECTORY),
            .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        int next = (int)syscall(SYS_openat2, cur, comp, &how, sizeof(how));
        int e2 = errno;
        close(cur);
        if (next < 0) {
            if (e2 == ELOOP || e2 == EXDEV)
                return sk_error_setv(err, ELOOP, "mount point '%s' crosses a symlink in the image", path);
            return sk_error_set(err, e2, "open mount point '%s'", path);
        }
        cur = next;
        c = e;
    }
}

/* attach_tree - bind `source` onto the O_PATH fd `target_fd` using the new
 * mount API, so the target is exactly the inode open_beneath checked. */
static int attach_tree(const char *source, int target_fd, uint64_t attrs, int userns_fd, struct sk_error *err)
{
    int tfd = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tfd < 0)
        return sk_error_set(err, errno, "open_tree '%s'", source);
    if (attrs != 0) {
        struct mount_attr attr = {.attr_set = attrs};
        if (attrs & MOUNT_ATTR_IDMAP)
            attr.userns_fd = (uint64_t)userns_fd;
        if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
            int e = errno;
            close(tfd);
            if (attrs & MOUNT_ATTR_IDMAP)
                return sk_error_set(err, e,
                                    "idmapped mount of '%s' (needs Linux >= 5.12 and a file system that "
                                    "supports idmapping; SKIFF_IDMAP=off runs without it)",
                                    source);
            return sk_error_set(err, e, "mount_setattr '%s'", source);
        }
    }
    int r = (int)syscall(SYS_move_mount, tfd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    int e = errno;
    close(tfd);
    if (r < 0)
        return sk_error_set(err, e, "move_mount '%s'", source);
    return 0;
}

static int prepare_dev(const struct sk_rootfs_plan *plan, int rootfd, struct sk_error *err)
{
    char path[PATH_MAX], fdp[64];
    _cleanup_close_ int devfd = open_beneath(rootfd, "/dev", false, plan->uid, plan->gid, err);
    if (devfd < 0)
        return devfd;
    fd_path(fdp, sizeof(fdp), devfd);
    if (mount("tmpfs", fdp, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=256k,nr_inodes=512") < 0)
        return sk_error_set(err, errno, "mount tmpfs on '/dev'");
    snprintf(path, sizeof(path), "%s/dev", plan->root);
    _cleanup_close_ int dev = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dev < 0)
        return sk_error_set(err, errno, "open '/dev'");
    for (size_t i = 0; i < SK_ARRAY_SIZE(dev_nodes); i++) {
        int f = openat(dev, dev_nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f < 0)
            return sk_error_set(err, errno, "create '/dev/%s'", dev_nodes[i]);
        close(f);
        char src[64], dst[PATH_MAX];
        snprintf(src, sizeof(src), "/dev/%s", dev_nodes[i]);
        snprintf(dst, sizeof(dst), "%s/%s", path, dev_nodes[i]);
        if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
            return sk_error_set(err, errno, "bind '%s'", src);
    }
    static const struct {
        const char *target, *name;
    } links[] = {{"pts/ptmx", "ptmx"},
                 {"/proc/self/fd", "fd"},
                 {"/proc/self/fd/0", "stdin"},
                 {"/proc/self/fd/1", "stdout"},
                 {"/proc/self/fd/2", "stderr"}};
    for (size_t i = 0; i < SK_ARRAY_SIZE(links); i++)
        if (symlinkat(links[i].target, dev, links[i].name) < 0)
            return sk_error_set(err, errno, "symlink '/dev/%s'", links[i].name);
    if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0)
        return sk_error_set(err, errno, "mkdir in '/dev'");
    char shm[PATH_MAX];
    snprintf(shm, sizeof(shm), "%s/shm", path);
    if (mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k") < 0)
        return sk_error_set(err, errno, "mount '/dev/shm'");
    /* /dev itself is read-only for the sandbox: nothing can be added to it. */
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
        return sk_error_set(err, errno, "remount '/dev' read-only");
    return 0;
}

int sk_rootfs_prepare(const struct sk_rootfs_plan *plan, int userns_fd, struct sk_error *err)
{
    char path[PATH_MAX];
    if (mount("skiff-stage", plan->stage, "tmpfs", MS_NOSUID | MS_NODEV, plan->stage_opts) < 0)
        return sk_error_set(err, errno, "mount staging tmpfs on '%s'", plan->stage);
    _cleanup_close_ int stage = open(plan->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (stage < 0)
        return sk_error_set(err, errno, "open '%s'", plan->stage);
    if (mkdirat(stage, "upper", 0755) < 0 || mkdirat(stage, "work", 0700) < 0 || mkdirat(stage, "root", 0755) < 0)
        return sk_error_set(err, errno, "mkdir in staging tmpfs");
    /* The upper layer's root becomes the sandbox's "/": it must belong to
     * sandbox root or nothing could be created there. */
    if (fchownat(stage, "upper", plan->uid, plan->gid, 0) < 0)
        return sk_error_set(err, errno, "chown upper layer");
    uint64_t lower_attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (plan->idmap)
        lower_attrs |= MOUNT_ATTR_IDMAP;
    for (size_t i = 0; i < plan->n_layers; i++) {
        snprintf(path, sizeof(path), "l%zu", i);
        if (mkdirat(stage, path, 0755) < 0)
            return sk_error_set(err, errno, "mkdir layer mount point");
        _cleanup_close_ int lfd = open(plan->layer_mnt[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (lfd < 0)
            return sk_error_set(err, errno, "open '%s'", plan->layer_mnt[i]);
        int r = attach_tree(plan->layer_src[i], lfd, lower_attrs, userns_fd, err);
        if (r < 0)
            return r;
    }
    if (mount("overlay", plan->root, "overlay", MS_NOSUID | MS_NODEV, plan->overlay_opts) < 0)
        return sk_error_set(err, errno, "mount overlay root");
    _cleanup_close_ int rootfd = open(plan->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return sk_error_set(err, errno, "open overlay root");
    static const char *const needed[] = {"/proc", "/sys", "/tmp"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(needed); i++) {
        int fd = open_beneath(rootfd, needed[i], false, plan->uid, plan->gid, err);
        if (fd < 0)
            return fd;
        close(fd);
    }
    for (size_t i = 0; i < plan->n_binds; i++) {
        const struct sk_rootfs_bind *b = &plan->binds[i];
        _cleanup_close_ int tfd = open_beneath(rootfd, b->target, b->is_file, plan->uid, plan->gid, err);
        if (tfd < 0)
            return tfd;
        uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if (b->read_only)
            attrs |= MOUNT_ATTR_RDONLY;
        if (b->idmap)
            attrs |= MOUNT_ATTR_IDMAP;
        int r = attach_tree(b->source, tfd, attrs, userns_fd, err);
        if (r < 0)
            return r;
    }
    return prepare_dev(plan, rootfd, err);
}

/* ---- sandbox pid 1 (in its own user namespace) ------------------------- */

static int mask_proc(struct sk_error *err)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < SK_ARRAY_SIZE(proc_masked); i++) {
        snprintf(path, sizeof(path), "proc/%s", proc_masked[i]);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        int r;
        if (S_ISDIR(st.st_mode))
            r = mount("skiff-mask", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0");
        else
            r = mount("dev/null", path, NULL, MS_BIND, NULL);
        if (r < 0)
            return sk_error_set(err, errno, "mask '/proc/%s'", proc_masked[i]);
    }
    for (size_t i = 0; i < SK_ARRAY_SIZE(proc_read_only); i++) {
        snprintf(path, sizeof(path), "proc/%s", proc_read_only[i]);
        if (access(path, F_OK) < 0)
            continue;
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            return sk_error_set(err, errno, "make '/proc/%s' read-only", proc_read_only[i]);
    }
    return 0;
}

static int loopback_up(struct sk_error *err)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return sk_error_set(err, errno, "socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int e = errno;
    close(s);
    if (r < 0)
        return sk_error_set(err, e, "bring up 'lo'");
    return 0;
}

int sk_rootfs_enter(const struct sk_rootfs_plan *plan, struct sk_error *err)
{
    /* A mount namespace of our own, owned by the sandbox's user namespace:
     * every mount copied from the setup namespace is locked, so nothing
     * inside can unmount a mask or a read-only layer to see what is below.
     * Paths below are relative to the new root, our working directory. */
    if (unshare(CLONE_NEWNS) < 0)
        return sk_error_set(err, errno, "unshare mount namespace");
    /* pivot_root refuses a locked mount as the new root: bind the root onto
     * itself (its submounts stay locked) and step onto the new mount. */
    if (mount(plan->root, plan->root, NULL, MS_BIND | MS_REC, NULL) < 0)
        return sk_error_set(err, errno, "bind root onto itself");
    if (chdir(plan->root) < 0)
        return sk_error_set(err, errno, "chdir root");
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return sk_error_set(err, errno, "mount '/proc'");
    /* sysfs (read-only, showing only the sandbox's network devices) needs a
     * network namespace owned by our user namespace; without it /sys stays
     * an empty directory, which programs tolerate. */
    if (mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        /* absent /sys is acceptable */
    }
    if (mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
        return sk_error_set(err, errno, "mount '/dev/pts'");
    int r = mask_proc(err);
    if (r < 0)
        return r;
    /* pivot_root(".", ".") stacks the old root under the new one; detaching
     * it leaves the host's tree unreachable from this namespace. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return sk_error_set(err, errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        return sk_error_set(err, errno, "detach old root");
    if (chdir("/") < 0)
        return sk_error_set(err, errno, "chdir '/'");
    if (sethostname(plan->hostname, strlen(plan->hostname)) < 0)
        return sk_error_set(err, errno, "sethostname");
    return loopback_up(err);
}
