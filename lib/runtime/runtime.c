#include "runtime/runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/util.h"
#include "runtime/cgroup.h"
#include "runtime/security.h"

struct sk_runtime {
    char *state_dir;
    char *locks_dir;
    char *slots_dir;
    char *sandboxes_dir;
    int init_fd;
    bool idmap;
    struct sk_cgroup_system *cgroups;
    struct sk_seccomp *seccomp;
};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int find_init(const char *configured, int *out, struct sk_error *err)
{
    const char *env = getenv("SKIFF_INIT");
    const char *path = configured ? configured : env;
    if (path != NULL) {
        int fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
            return sk_error_set(err, errno, "skiff-init '%s'", path);
        *out = fd;
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return sk_error_set(err, errno, "readlink '/proc/self/exe'");
    self[n] = '\0';
    char *dir = dirname(self);
    static const char *const rel[] = {"", "/..", "/../..", "/../../.."};
    for (size_t i = 0; i < SK_ARRAY_SIZE(rel); i++) {
        char cand[PATH_MAX];
        snprintf(cand, sizeof(cand), "%s%s/skiff-init", dir, rel[i]);
        int fd = open(cand, O_PATH | O_CLOEXEC);
        if (fd >= 0) {
            *out = fd;
            return 0;
        }
    }
    int fd = open("/usr/libexec/skiff/skiff-init", O_PATH | O_CLOEXEC);
    if (fd >= 0) {
        *out = fd;
        return 0;
    }
    return sk_error_setv(err, ENOENT, "skiff-init not found next to '%s'; set SKIFF_INIT to its path", self);
}

int sk_runtime_new(const struct sk_runtime_config *cfg, struct sk_runtime **out, struct sk_error *err)
{
    struct sk_runtime_config empty = {0};
    if (cfg == NULL)
        cfg = &empty;
    if (geteuid() != 0)
        return sk_error_setv(err, EPERM,
                             "skiff's sandbox runtime must run as root (it creates namespaces, "
                             "cgroups and mounts for unprivileged sandboxes)");
    struct sk_runtime *rt = xcalloc(1, sizeof(*rt));
    rt->init_fd = -1;
    const char *state = cfg->state_dir ? cfg->state_dir : getenv("SKIFF_STATE_DIR");
    rt->state_dir = xstrdup(state && *state ? state : "/var/lib/skiff");
    /* Paths below the state dir are built into fixed buffers for the
     * allocation-free setup children; keep them comfortably short. */
    /* It also ends up in overlayfs's comma- and colon-separated options. */
    if (rt->state_dir[0] != '/' || strlen(rt->state_dir) > 512 || strpbrk(rt->state_dir, ",:\\\n") != NULL) {
        int r = sk_error_setv(err, EINVAL,
                              "state dir '%s' must be an absolute path of at most 512 bytes without ',', ':' or '\\'",
                              rt->state_dir);
        sk_runtime_free(rt);
        return r;
    }
    rt->locks_dir = xasprintf("%s/locks", rt->state_dir);
    /* uid ranges are a host-wide resource: their locks live in one place for
     * every runtime on the host, whatever its state dir. */
    const char *run_dir = cfg->run_dir ? cfg->run_dir : getenv("SKIFF_RUN_DIR");
    rt->slots_dir = xasprintf("%s/slots", run_dir && *run_dir ? run_dir : "/run/skiff");
    rt->sandboxes_dir = xasprintf("%s/sandboxes", rt->state_dir);
    _cleanup_free_ char *mnt = xasprintf("%s/mnt", rt->state_dir);
    int ret;
    if ((ret = sk_mkdir_p(rt->state_dir, 0700, err)) < 0 || (ret = sk_mkdir_p(rt->locks_dir, 0700, err)) < 0 ||
        (ret = sk_mkdir_p(rt->slots_dir, 0700, err)) < 0 || (ret = sk_mkdir_p(rt->sandboxes_dir, 0700, err)) < 0 ||
        (ret = sk_mkdir_p(mnt, 0700, err)) < 0)
        goto fail;
    const char *idmap_env = getenv("SKIFF_IDMAP");
    rt->idmap = !(cfg->allow_no_idmap || (idmap_env && strcmp(idmap_env, "off") == 0));
    if (!rt->idmap)
        sk_log_warn("idmapped mounts disabled (SKIFF_IDMAP=off): image files appear owned by 'nobody' "
                    "inside sandboxes; sandbox root still maps to an unprivileged host uid");
    if ((ret = find_init(cfg->init_path, &rt->init_fd, err)) < 0)
        goto fail;
    /* Runtimes with different state dirs keep their sandboxes' cgroups
     * apart: the default dir uses "skiff", any other "skiff-<hash>". */
    char parent[64];
    if (cfg->cgroup_parent != NULL)
        snprintf(parent, sizeof(parent), "%s", cfg->cgroup_parent);
    else if (strcmp(rt->state_dir, "/var/lib/skiff") == 0)
        snprintf(parent, sizeof(parent), "skiff");
    else
        snprintf(parent, sizeof(parent), "skiff-%08x", fnv1a(rt->state_dir));
    if ((ret = sk_cgroup_system_detect(parent, &rt->cgroups, err)) < 0)
        goto fail;
    if ((ret = sk_seccomp_compile(&rt->seccomp, err)) < 0)
        goto fail;
    if (!cfg->keep_unowned) {
        /* A leftover that cannot be removed now (a process stuck in the
         * kernel, say) must not stop every later sandbox: warn, go on, and
         * try again at the next start. */
        struct sk_error sweep_err = {0};
        int n = sk_runtime_cleanup_stale(rt, &sweep_err);
        if (n < 0)
            sk_log_warn("clean up what crashed owners left behind: %s", sweep_err.msg);
        else if (n > 0)
            sk_log_warn("cleaned up %d sandbox(es) left behind by a crashed owner", n);
    }
    *out = rt;
    return 0;
fail:
    sk_runtime_free(rt);
    return ret;
}

void sk_runtime_free(struct sk_runtime *rt)
{
    if (rt == NULL)
        return;
    sk_close(&rt->init_fd);
    sk_seccomp_free(rt->seccomp);
    sk_cgroup_system_free(rt->cgroups);
    free(rt->state_dir);
    free(rt->locks_dir);
    free(rt->slots_dir);
    free(rt->sandboxes_dir);
    free(rt);
}

const char *sk_runtime_state_dir(const struct sk_runtime *rt)
{
    return rt->state_dir;
}

struct sk_cgroup_system *sk_runtime_cgroups(struct sk_runtime *rt)
{
    return rt->cgroups;
}

const struct sk_seccomp *sk_runtime_seccomp(const struct sk_runtime *rt)
{
    return rt->seccomp;
}

int sk_runtime_init_fd(const struct sk_runtime *rt)
{
    return rt->init_fd;
}

bool sk_runtime_idmap(const struct sk_runtime *rt)
{
    return rt->idmap;
}

/* A sandbox is alive while some process holds the flock on its lock file.
 * A group without a lock file here is not this state dir's (another runtime
 * with its own state dir may share the cgroup parent): never touch it. */
static bool sandbox_owner_alive(const char *name, void *opaque)
{
    struct sk_runtime *rt = opaque;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.lock", rt->locks_dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return true;
    bool alive = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    if (!alive)
        unlink(path);
    close(fd);
    return alive;
}

/* is_sandbox_id - "sb-" and lowercase hex, as sk_sandbox_create names them. */
static bool is_sandbox_id(const char *s, size_t len)
{
    if (len < 4 || len > 32 || strncmp(s, "sb-", 3) != 0)
        return false;
    for (size_t i = 3; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool claim_is_live(struct sk_runtime *rt, int fd);

/* sweep_claims - clear range claims of sandboxes that no longer exist (a
 * sweep or a crash removed their directory before the claim). */
static void sweep_claims(struct sk_runtime *rt)
{
    DIR *d = opendir(rt->slots_dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", rt->slots_dir, de->d_name);
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
            (void)claim_is_live(rt, fd); /* clears it when stale */
        close(fd);
    }
    closedir(d);
}

/* sweep_sandbox_dirs - persistent sandboxes whose owner is gone: kill what
 * is left in their cgroup, then remove their directory (which also voids
 * their range claim). A directory stays while its cgroup could not be
 * emptied: its processes still use the uid range it reserves. */
static int sweep_sandbox_dirs(struct sk_runtime *rt, struct sk_error *err)
{
    DIR *d = opendir(rt->sandboxes_dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : sk_error_set(err, errno, "open '%s'", rt->sandboxes_dir);
    int n = 0, ret = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_sandbox_id(de->d_name, strlen(de->d_name)))
            continue;
        struct sk_error one = {0};
        int lock = sk_runtime_lock_sandbox(rt, de->d_name, &one);
        if (lock < 0)
            continue; /* owned (or unlockable): not ours to touch */
        int r = sk_cgroup_cleanup_stale(rt->cgroups, de->d_name, NULL, NULL, &one);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", rt->sandboxes_dir, de->d_name);
        if (r >= 0)
            r = sk_remove_tree(path, &one);
        if (r < 0) {
            sk_log_warn("cannot remove stale sandbox '%s': %s", de->d_name, one.msg);
            if (ret == 0)
                ret =
                    sk_error_setv(err, one.code ? one.code : EIO, "remove stale sandbox '%s': %s", de->d_name, one.msg);
            close(lock); /* keep the lock file: the cgroup sweep finds it again */
            continue;
        }
        sk_log_info("removed stale persistent sandbox '%s'", de->d_name);
        sk_runtime_unlock_sandbox(rt, de->d_name, &lock);
        n++;
    }
    closedir(d);
    return ret < 0 ? ret : n;
}

int sk_runtime_cleanup_stale(struct sk_runtime *rt, struct sk_error *err)
{
    /* Persistent sandboxes first, each as a whole (cgroup and directory),
     * so that each counts once; then the cgroups of the others. */
    int m = sweep_sandbox_dirs(rt, err);
    if (m < 0)
        return m;
    int n = sk_cgroup_cleanup_stale(rt->cgroups, "sb-", sandbox_owner_alive, rt, err);
    if (n < 0)
        return n;
    /* Lock files whose owner died before its cgroup existed, or after it
     * was removed, have no cgroup to be found by: sweep them too. */
    DIR *d = opendir(rt->locks_dir);
    if (d == NULL)
        return n;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "sb-", 3) != 0 || len < 6 || strcmp(de->d_name + len - 5, ".lock") != 0)
            continue;
        char name[NAME_MAX + 1];
        snprintf(name, sizeof(name), "%.*s", (int)(len - 5), de->d_name);
        sandbox_owner_alive(name, rt); /* unlinks the file when nobody holds it */
    }
    closedir(d);
    /* Removed directories leave their range claims stale; clear them now
     * (acquire_range would also clear each when it meets it). */
    if (m > 0)
        sweep_claims(rt);
    return n + m;
}

/* read_claim - the sandbox directory recorded in a range's lock file
 * ("<state>/sandboxes/<id>": the full path, since runtimes with other state
 * dirs share the lock files), or "". */
static void read_claim(int fd, char *claim, size_t size)
{
    ssize_t got = pread(fd, claim, size - 1, 0);
    if (got <= 0) {
        claim[0] = '\0';
        return;
    }
    claim[got] = '\0';
    const char *slash = strrchr(claim, '/');
    if (claim[0] != '/' || (size_t)got != strlen(claim) || slash == NULL ||
        !is_sandbox_id(slash + 1, strlen(slash + 1)))
        claim[0] = '\0';
}

/* claim_path - what this runtime writes as the claim of sandbox `id`. */
static void claim_path(const struct sk_runtime *rt, const char *id, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", rt->sandboxes_dir, id);
}

/* claim_is_live - the locked range file `fd` is claimed by a persistent
 * sandbox that still exists. A stale or garbled claim is cleared. */
static bool claim_is_live(struct sk_runtime *rt, int fd)
{
    (void)rt;
    char claim[PATH_MAX];
    read_claim(fd, claim, sizeof(claim));
    if (claim[0] != '\0') {
        struct stat st;
        if (stat(claim, &st) == 0)
            return true;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && ftruncate(fd, 0) < 0)
        sk_log_warn("cannot clear a stale uid range claim: %s", strerror(errno));
    return false;
}

int sk_runtime_acquire_range(struct sk_runtime *rt, struct sk_idrange *r, struct sk_error *err)
{
    uint32_t start = 0;
    if (getrandom(&start, sizeof(start), GRND_NONBLOCK) < 0)
        start = (uint32_t)getpid();
    for (uint32_t i = 0; i < SK_UID_SLOTS; i++) {
        uint32_t slot = (start + i) % SK_UID_SLOTS;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%u.lock", rt->slots_dir, slot);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return sk_error_set(err, errno, "open '%s'", path);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && !claim_is_live(rt, fd)) {
            r->lock_fd = fd;
            r->slot = slot;
            r->host_uid = SK_UID_BASE + slot * SK_UID_RANGE;
            r->host_gid = r->host_uid;
            r->claimed = false;
            return 0;
        }
        close(fd);
    }
    return sk_error_setv(err, EAGAIN, "all %u uid ranges are in use", SK_UID_SLOTS);
}

int sk_runtime_claim_range(struct sk_runtime *rt, struct sk_idrange *r, const char *id, struct sk_error *err)
{
    if (!is_sandbox_id(id, strlen(id)))
        return sk_error_setv(err, EINVAL, "'%s' is not a sandbox id", id);
    char claim[PATH_MAX];
    claim_path(rt, id, claim, sizeof(claim));
    size_t len = strlen(claim);
    if (ftruncate(r->lock_fd, 0) < 0 || pwrite(r->lock_fd, claim, len, 0) != (ssize_t)len)
        return sk_error_set(err, errno ? errno : EIO, "claim uid range %u", r->slot);
    r->claimed = true;
    return 0;
}

/* lock_range_file - open and flock slots/<slot>.lock, waiting up to ~1 s
 * for a creator that briefly holds it while it checks the claim. */
static int lock_range_file(struct sk_runtime *rt, uint32_t slot, struct sk_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%u.lock", rt->slots_dir, slot);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return sk_error_set(err, errno, "open '%s'", path);
    for (int i = 0; i < 100; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        usleep(10000);
    }
    int e = errno == EWOULDBLOCK ? EBUSY : errno;
    close(fd);
    return sk_error_setv(err, e, "uid range %u is in use by another process", slot);
}

int sk_runtime_retake_range(struct sk_runtime *rt, uint32_t slot, const char *id, struct sk_idrange *r,
                            struct sk_error *err)
{
    if (slot >= SK_UID_SLOTS)
        return sk_error_setv(err, EINVAL, "uid range %u does not exist", slot);
    int fd = lock_range_file(rt, slot, err);
    if (fd < 0)
        return fd;
    char claim[PATH_MAX], mine[PATH_MAX];
    read_claim(fd, claim, sizeof(claim));
    claim_path(rt, id, mine, sizeof(mine));
    if (strcmp(claim, mine) != 0) {
        close(fd);
        return sk_error_setv(err, EBUSY, "uid range %u is not claimed by sandbox '%s'", slot, id);
    }
    r->lock_fd = fd;
    r->slot = slot;
    r->host_uid = SK_UID_BASE + slot * SK_UID_RANGE;
    r->host_gid = r->host_uid;
    r->claimed = true;
    return 0;
}

void sk_runtime_unclaim_range(struct sk_runtime *rt, uint32_t slot, const char *id)
{
    if (slot >= SK_UID_SLOTS)
        return;
    int fd = lock_range_file(rt, slot, NULL);
    if (fd < 0)
        return;
    char claim[PATH_MAX], mine[PATH_MAX];
    read_claim(fd, claim, sizeof(claim));
    claim_path(rt, id, mine, sizeof(mine));
    if (strcmp(claim, mine) == 0 && ftruncate(fd, 0) < 0)
        sk_log_warn("cannot clear the claim of '%s' on uid range %u: %s", id, slot, strerror(errno));
    close(fd);
}

void sk_runtime_release_range(struct sk_runtime *rt, struct sk_idrange *r)
{
    (void)rt;
    /* Drop the claim while still holding the lock: nobody can take the
     * range between the two. */
    if (r->claimed && r->lock_fd >= 0 && ftruncate(r->lock_fd, 0) < 0)
        sk_log_warn("cannot clear the claim on uid range %u: %s", r->slot, strerror(errno));
    r->claimed = false;
    sk_close(&r->lock_fd);
}

int sk_runtime_lock_sandbox(struct sk_runtime *rt, const char *id, struct sk_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.lock", rt->locks_dir, id);
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return sk_error_set(err, errno, "open '%s'", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            close(fd);
            return sk_error_set(err, e, "lock '%s'", path);
        }
        /* A concurrent stale sweep may have unlinked the file between our
         * open and flock; the lock must be on the file that the path names. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            return fd;
        close(fd);
    }
    return sk_error_setv(err, EAGAIN, "lock '%s': the file keeps disappearing", path);
}

void sk_runtime_unlock_sandbox(struct sk_runtime *rt, const char *id, int *fd)
{
    if (*fd < 0)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.lock", rt->locks_dir, id);
    unlink(path);
    sk_close(fd);
}
