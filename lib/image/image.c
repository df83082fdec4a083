#include "image/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "base/log.h"
#include "base/util.h"

/* Bump when the skeleton's contents change, so old skeletons are not reused. */
#define HOST_SKELETON_VERSION 1

/* Top-level host entries that are either merged-/usr symlinks (copied as
 * symlinks) or real directories (bound read-only). */
static const char *const host_top_level[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};

/* Host /etc entries that carry no secrets and that ordinary programs need:
 * the dynamic loader's cache, Debian's alternatives, time zone, CA bundle,
 * protocol tables. Deliberately absent: shadow, gshadow, ssh/, sudoers*,
 * ssl/private, machine-id, environment (may hold proxy credentials). */
static const char *const host_etc_copy[] = {
    "ld.so.cache",  "ld.so.conf",
    "ld.so.conf.d", "alternatives",
    "localtime",    "timezone",
    "ssl/certs",    "ca-certificates.conf",
    "protocols",    "services",
    "mime.types",   "debian_version",
    "profile",      "bash.bashrc",
    "inputrc",      "magic",
    "magic.mime",   "python3",
    "python3.11",   "perl",
    "gai.conf",     "ethertypes",
    "networks",     "issue",
    "terminfo",     "bindresvport.blacklist",
};

static const char etc_passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char etc_group[] = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";
static const char etc_hosts[] = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
static const char etc_nsswitch[] = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                                   "networks: files\nprotocols: files\nservices: files\n";
static const char etc_resolv[] = "# skiff: network mode 'none' has no resolver\n";

static int write_new_file(int dirfd, const char *name, const char *data, mode_t mode, struct sk_error *err)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return sk_error_set(err, errno, "create '%s'", name);
    if (sk_write_all(fd, data, strlen(data)) < 0)
        return sk_error_set(err, errno, "write '%s'", name);
    if (fchmod(fd, mode) < 0)
        return sk_error_set(err, errno, "chmod '%s'", name);
    return 0;
}

/* copy_tree_at - copy files, directories and symlinks from (sdir, sname) to
 * (ddir, dname); other file types are skipped. Ownership is root's (the
 * caller runs as root); modes are kept. */
static int copy_tree_at(int sdir, const char *sname, int ddir, const char *dname, int depth, struct sk_error *err)
{
    if (depth > 16)
        return 0;
    struct stat st;
    if (fstatat(sdir, sname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return sk_error_set(err, errno, "stat '/etc/%s'", sname);
    }
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(sdir, sname, target, sizeof(target) - 1);
        if (n < 0)
            return sk_error_set(err, errno, "readlink '%s'", sname);
        target[n] = '\0';
        if (symlinkat(target, ddir, dname) < 0 && errno != EEXIST)
            return sk_error_set(err, errno, "symlink '%s'", dname);
        return 0;
    }
    if (S_ISREG(st.st_mode)) {
        _cleanup_close_ int in = openat(sdir, sname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (in < 0) {
            if (errno == EACCES)
                return 0;
            return sk_error_set(err, errno, "open '%s'", sname);
        }
        _cleanup_close_ int out = openat(ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
        if (out < 0)
            return sk_error_set(err, errno, "create '%s'", dname);
        char buf[65536];
        for (;;) {
            ssize_t r = read(in, buf, sizeof(buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return sk_error_set(err, errno, "read '%s'", sname);
            if (r == 0)
                break;
            if (sk_write_all(out, buf, (size_t)r) < 0)
                return sk_error_set(err, errno, "write '%s'", dname);
        }
        fchmod(out, st.st_mode & 07777);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (mkdirat(ddir, dname, st.st_mode & 07777) < 0 && errno != EEXIST)
        return sk_error_set(err, errno, "mkdir '%s'", dname);
    _cleanup_close_ int sfd = openat(sdir, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_close_ int dfd = openat(ddir, dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (sfd < 0 || dfd < 0)
        return sk_error_set(err, errno, "open directory '%s'", sname);
    int dup_fd = dup(sfd);
    if (dup_fd < 0)
        return sk_error_set(err, errno, "dup");
    DIR *d = fdopendir(dup_fd);
    if (d == NULL) {
        close(dup_fd);
        return sk_error_set(err, errno, "opendir '%s'", sname);
    }
    int ret = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        ret = copy_tree_at(sfd, de->d_name, dfd, de->d_name, depth + 1, err);
        if (ret < 0)
            break;
    }
    closedir(d);
    return ret;
}

static int build_host_skeleton(const char *dir, struct sk_error *err)
{
    /* Per thread: a daemon's pool thread may build it while a request does. */
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d.%ld", dir, (int)getpid(), (long)syscall(SYS_gettid));
    if (mkdir(tmp, 0755) < 0)
        return sk_error_set(err, errno, "mkdir '%s'", tmp);
    int ret = -1;
    _cleanup_close_ int etc = -1;
    _cleanup_close_ int root = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int host_etc = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || host_etc < 0) {
        ret = sk_error_set(err, errno, "open skeleton or '/etc'");
        goto fail;
    }
    static const struct {
        const char *name;
        mode_t mode;
    } dirs[] = {
        {"usr", 0755},       {"etc", 0755},     {"proc", 0555}, {"sys", 0555}, {"dev", 0755},      {"tmp", 01777},
        {"root", 0700},      {"home", 0755},    {"run", 0755},  {"var", 0755}, {"var/tmp", 01777}, {"var/lib", 0755},
        {"var/cache", 0755}, {"var/log", 0755}, {"mnt", 0755},  {"opt", 0755}, {"srv", 0755},      {"etc/ssl", 0755},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(dirs); i++) {
        if (mkdirat(root, dirs[i].name, dirs[i].mode) < 0 || fchmodat(root, dirs[i].name, dirs[i].mode, 0) < 0) {
            ret = sk_error_set(err, errno, "mkdir '%s'", dirs[i].name);
            goto fail;
        }
    }
    for (size_t i = 0; i < SK_ARRAY_SIZE(host_top_level); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/%s", host_top_level[i]);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char target[256];
            ssize_t n = readlink(path, target, sizeof(target) - 1);
            if (n < 0)
                continue;
            target[n] = '\0';
            if (symlinkat(target, root, host_top_level[i]) < 0) {
                ret = sk_error_set(err, errno, "symlink '%s'", host_top_level[i]);
                goto fail;
            }
        } else if (S_ISDIR(st.st_mode) && mkdirat(root, host_top_level[i], 0755) < 0) {
            ret = sk_error_set(err, errno, "mkdir '%s'", host_top_level[i]);
            goto fail;
        }
    }
    etc = openat(root, "etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (etc < 0) {
        ret = sk_error_set(err, errno, "open skeleton etc");
        goto fail;
    }
    if ((ret = write_new_file(etc, "passwd", etc_passwd, 0644, err)) < 0 ||
        (ret = write_new_file(etc, "group", etc_group, 0644, err)) < 0 ||
        (ret = write_new_file(etc, "hosts", etc_hosts, 0644, err)) < 0 ||
        (ret = write_new_file(etc, "hostname", "sandbox\n", 0644, err)) < 0 ||
        (ret = write_new_file(etc, "nsswitch.conf", etc_nsswitch, 0644, err)) < 0 ||
        (ret = write_new_file(etc, "resolv.conf", etc_resolv, 0644, err)) < 0)
        goto fail;
    if (symlinkat("../usr/lib/os-release", etc, "os-release") < 0) {
        ret = sk_error_set(err, errno, "symlink 'os-release'");
        goto fail;
    }
    for (size_t i = 0; i < SK_ARRAY_SIZE(host_etc_copy); i++) {
        ret = copy_tree_at(host_etc, host_etc_copy[i], etc, host_etc_copy[i], 0, err);
        if (ret < 0)
            goto fail;
    }
    if (rename(tmp, dir) < 0) {
        if (errno == ENOTEMPTY || errno == EEXIST) {
            /* Another process built it first; use theirs. */
            ret = 0;
            goto fail;
        }
        ret = sk_error_set(err, errno, "rename '%s'", tmp);
        goto fail;
    }
    sk_log_info("host image skeleton built at '%s'", dir);
    return 0;
fail:
    sk_remove_tree(tmp, NULL);
    return ret;
}

static int resolve_host(const char *state_dir, struct sk_image *img, struct sk_error *err)
{
    _cleanup_free_ char *dir = xasprintf("%s/images/host-v%d", state_dir, HOST_SKELETON_VERSION);
    struct stat st;
    if (stat(dir, &st) < 0) {
        _cleanup_free_ char *parent = xasprintf("%s/images", state_dir);
        int ret = sk_mkdir_p(parent, 0700, err);
        if (ret < 0)
            return ret;
        ret = build_host_skeleton(dir, err);
        if (ret < 0)
            return sk_error_prefix(err, "build host image");
    }
    img->name = xstrdup("host");
    img->layers[img->n_layers++] = steal_pointer(&dir);
    img->binds[img->n_binds++] = (struct sk_image_bind){xstrdup("/usr"), xstrdup("/usr")};
    for (size_t i = 0; i < SK_ARRAY_SIZE(host_top_level); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/%s", host_top_level[i]);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && img->n_binds < SK_IMAGE_MAX_BINDS)
            img->binds[img->n_binds++] = (struct sk_image_bind){xstrdup(path), xstrdup(path)};
    }
    return 0;
}

int sk_image_resolve(const char *state_dir, const char *ref, struct sk_image *img, struct sk_error *err)
{
    memset(img, 0, sizeof(*img));
    if (ref == NULL || strcmp(ref, "host") == 0)
        return resolve_host(state_dir, img, err);
    if (ref[0] != '/')
        return sk_error_setv(err, EINVAL, "image '%s' is neither 'host' nor an absolute rootfs path", ref);
    struct stat st;
    if (stat(ref, &st) < 0)
        return sk_error_set(err, errno, "image rootfs '%s'", ref);
    if (!S_ISDIR(st.st_mode))
        return sk_error_setv(err, ENOTDIR, "image rootfs '%s' is not a directory", ref);
    char *real = realpath(ref, NULL);
    if (real == NULL)
        return sk_error_set(err, errno, "resolve image rootfs '%s'", ref);
    img->name = xstrdup(ref);
    img->layers[img->n_layers++] = real;
    return 0;
}

void sk_image_release(struct sk_image *img)
{
    if (img == NULL)
        return;
    free(img->name);
    for (size_t i = 0; i < img->n_layers; i++)
        free(img->layers[i]);
    for (size_t i = 0; i < img->n_binds; i++) {
        free(img->binds[i].source);
        free(img->binds[i].target);
    }
    memset(img, 0, sizeof(*img));
}
