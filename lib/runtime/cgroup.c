/* cgroup.c - per-sandbox control groups: a cgroup v2 driver and a v1 driver.
 *
 * Both drivers keep the same shape: a struct sk_cgroup holds the full path of
 * the group in every hierarchy it uses (one on v2, up to five on v1) and the
 * precomputed cgroup.procs paths, so sk_cgroup_enter can run in a forked child
 * without allocating. Control files are written with a single write(2), as
 * cgroupfs expects; everything read from them is parsed defensively.
 */
#include "runtime/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define CG_MOUNT "/sys/fs/cgroup"
#define CG_UNIFIED CG_MOUNT "/unified"
#define CG_NAME_MAX 64
#define CG_PARENT_MAX 256
#define CG_MAX_HIER 5
#define CG_MAX_DEPTH 16
#define CG_CPU_PERIOD 100000LL
#define CG_CPU_MIN_QUOTA 1000LL
#define CG_MS (1000LL * 1000LL)
#define CG_KILL_TIMEOUT_NS (2000LL * CG_MS)
#define CG_FREEZE_TIMEOUT_NS (1000LL * CG_MS)
#define CG_RMDIR_TIMEOUT_NS (1000LL * CG_MS)

enum cg_ctrl { CTRL_MEMORY, CTRL_CPU, CTRL_CPUACCT, CTRL_PIDS, CTRL_FREEZER, CTRL_COUNT };

static const char *const ctrl_names[CTRL_COUNT] = {"memory", "cpu", "cpuacct", "pids", "freezer"};

struct cg_hier {
    char *mount;  /* hierarchy root: "/sys/fs/cgroup/memory" (v1) or the v2 root */
    char *parent; /* mount + "/" + parent name */
    dev_t dev;    /* v1: tells co-mounted hierarchies apart from symlinked names */
};

struct sk_cgroup_system {
    enum sk_cgroup_driver driver;
    char *parent_name;
    size_t n_hier;
    struct cg_hier hier[CG_MAX_HIER];
    /* v1: index into hier, -1 when the controller is not mounted. v2: 0 when
     * the controller is enabled for the parent's children, else -1. */
    int ctrl_hier[CTRL_COUNT];
};

struct sk_cgroup {
    enum sk_cgroup_driver driver;
    char *name;
    char *where; /* for error messages: the v2 root, or the v1 mount base */
    int ctrl_hier[CTRL_COUNT];
    size_t n;
    char *dir[CG_MAX_HIER];
    char *procs[CG_MAX_HIER]; /* dir + "/cgroup.procs", for sk_cgroup_enter */
    int v2_fd;
};

/* ---- small helpers ---------------------------------------------------- */

static void nap_us(long usec)
{
    struct timespec ts = {usec / 1000000, (usec % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* next_nap - poll intervals: from 50 us (callers start there: freezing and
 * dying take tens of microseconds), doubling, at most 20 ms. */
static long next_nap(long usec)
{
    return usec * 2 > 20000 ? 20000 : usec * 2;
}

static int join_path(char *buf, size_t size, const char *dir, const char *file)
{
    int n = snprintf(buf, size, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return 0;
}

static bool valid_component(const char *s, size_t len)
{
    if (len == 0 || len > CG_NAME_MAX)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_name(const char *name)
{
    return name != NULL && valid_component(name, strnlen(name, CG_NAME_MAX + 1));
}

/* valid_parent - one or more valid components separated by single slashes. */
static bool valid_parent(const char *parent)
{
    if (parent == NULL)
        return false;
    size_t len = strnlen(parent, CG_PARENT_MAX + 1);
    if (len == 0 || len > CG_PARENT_MAX)
        return false;
    const char *p = parent;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!valid_component(p, n))
            return false;
        if (slash == NULL)
            return true;
        p = slash + 1;
    }
}

static bool is_fs(const char *path, unsigned long magic)
{
    struct statfs s;
    return statfs(path, &s) == 0 && (unsigned long)s.f_type == magic;
}

/* write_str - write `val` to <dir>/<file> in one write(2); 0 or -errno. */
static int write_str(const char *dir, const char *file, const char *val)
{
    char path[PATH_MAX];
    int r = join_path(path, sizeof(path), dir, file);
    if (r < 0)
        return r;
    int fd = SK_RETRY_EINTR(open(path, O_WRONLY | O_CLOEXEC));
    if (fd < 0)
        return -errno;
    size_t len = strlen(val);
    ssize_t w = SK_RETRY_EINTR(write(fd, val, len));
    int saved = errno;
    close(fd);
    if (w < 0)
        return -saved;
    if ((size_t)w != len)
        return -EIO;
    return 0;
}

static int write_ctrl(const char *dir, const char *file, const char *val, struct sk_error *err)
{
    int r = write_str(dir, file, val);
    if (r < 0)
        return sk_error_set(err, -r, "write '%s' to '%s/%s'", val, dir, file);
    return 0;
}

/* read_small - read the start of <dir>/<file> into buf, NUL-terminated;
 * longer contents are cut at size-1 bytes. Returns the length or -errno. */
static ssize_t read_small(const char *dir, const char *file, char *buf, size_t size)
{
    char path[PATH_MAX];
    int r = join_path(path, sizeof(path), dir, file);
    if (r < 0)
        return r;
    int fd = SK_RETRY_EINTR(open(path, O_RDONLY | O_CLOEXEC));
    if (fd < 0)
        return -errno;
    ssize_t n = sk_read_all(fd, buf, size - 1);
    int saved = errno;
    close(fd);
    if (n < 0)
        return -saved;
    buf[n] = '\0';
    return n;
}

/* parse_u64 - a whole decimal number, surrounding whitespace allowed. */
static bool parse_u64(const char *s, uint64_t *out)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

/* keyed_u64 - the value of the line "<key> <number>" in a flat-keyed file. */
static bool keyed_u64(const char *buf, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *line = buf; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > klen + 1 && len < 64 && strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            char num[64];
            memcpy(num, line + klen + 1, len - klen - 1);
            num[len - klen - 1] = '\0';
            return parse_u64(num, out);
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

/* read_u64_file - a control file holding one number. Missing file, odd
 * contents: *out = 0 and 0 returned (the value is unknown, not an error). */
static int read_u64_file(const char *dir, const char *file, uint64_t *out)
{
    char buf[128];
    *out = 0;
    ssize_t n = read_small(dir, file, buf, sizeof(buf));
    if (n < 0)
        return n == -ENOENT ? 0 : (int)n;
    if (!parse_u64(buf, out))
        *out = 0;
    return 0;
}

static int read_keyed_file(const char *dir, const char *file, const char *key, uint64_t *out)
{
    char buf[4096];
    *out = 0;
    ssize_t n = read_small(dir, file, buf, sizeof(buf));
    if (n < 0)
        return n == -ENOENT ? 0 : (int)n;
    if (!keyed_u64(buf, key, out))
        *out = 0;
    return 0;
}

static bool has_token(const char *list, const char *word)
{
    size_t wlen = strlen(word);
    for (const char *p = list; *p != '\0';) {
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \n\t");
        if (n == wlen && strncmp(p, word, n) == 0)
            return true;
        p += n;
    }
    return false;
}

static bool file_has_token(const char *dir, const char *file, const char *word)
{
    char buf[1024];
    return read_small(dir, file, buf, sizeof(buf)) >= 0 && has_token(buf, word);
}

static size_t fmt_u64(char *buf, size_t size, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < sizeof(tmp));
    if (n + 1 > size)
        n = size - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* for_each_pid - call fn for every pid in <dir>/cgroup.procs, streaming the
 * file so its size does not matter. Tokens that are not positive pids are
 * skipped: a 0 or a negative number must never reach kill(2). */
static int for_each_pid(const char *dir, void (*fn)(pid_t pid, void *opaque), void *opaque)
{
    char path[PATH_MAX];
    int r = join_path(path, sizeof(path), dir, "cgroup.procs");
    if (r < 0)
        return r;
    _cleanup_close_ int fd = SK_RETRY_EINTR(open(path, O_RDONLY | O_CLOEXEC));
    if (fd < 0)
        return -errno;
    char buf[4096];
    long long cur = -1; /* -1: not inside a number */
    bool bad = false;
    for (;;) {
        ssize_t n = SK_RETRY_EINTR(read(fd, buf, sizeof(buf)));
        if (n < 0)
            return -errno;
        /* A final '\n' at EOF ends a number the file did not terminate. */
        size_t len = n > 0 ? (size_t)n : 1;
        for (size_t i = 0; i < len; i++) {
            char c = n > 0 ? buf[i] : '\n';
            if (c >= '0' && c <= '9') {
                cur = (cur < 0 ? 0 : cur) * 10 + (c - '0');
                if (cur > INT_MAX) {
                    bad = true;
                    cur = INT_MAX;
                }
            } else if (c == '\n' || c == ' ' || c == '\t') {
                if (cur > 0 && !bad)
                    fn((pid_t)cur, opaque);
                cur = -1;
                bad = false;
            } else {
                bad = true;
            }
        }
        if (n == 0)
            return 0;
    }
}

/* procs_nonempty - true when <dir>/cgroup.procs names at least one process. */
static bool procs_nonempty(const char *dir)
{
    char buf[64];
    ssize_t n = read_small(dir, "cgroup.procs", buf, sizeof(buf));
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] >= '1' && buf[i] <= '9')
            return true;
    return false;
}

/* walk_tree - call fn on dir and every cgroup below it (pre-order), bounded
 * in depth. A directory that vanished meanwhile is skipped. */
static void walk_tree(const char *dir, int depth, void (*fn)(const char *dir, void *opaque), void *opaque)
{
    fn(dir, opaque);
    if (depth >= CG_MAX_DEPTH)
        return;
    int fd = SK_RETRY_EINTR(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *sub = xasprintf("%s/%s", dir, e->d_name);
        walk_tree(sub, depth + 1, fn, opaque);
    }
    closedir(d);
}

/* rmdir_tree - remove dir and the cgroups below it (post-order). Retries
 * EBUSY briefly: a cgroup whose last task just exited may still be busy. */
static int rmdir_tree(const char *dir, int depth)
{
    if (depth < CG_MAX_DEPTH) {
        int fd = SK_RETRY_EINTR(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd < 0)
            return errno == ENOENT ? 0 : -errno;
        DIR *d = fdopendir(fd);
        if (d == NULL) {
            int saved = errno;
            close(fd);
            return -saved;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            _cleanup_free_ char *sub = xasprintf("%s/%s", dir, e->d_name);
            int r = rmdir_tree(sub, depth + 1);
            if (r < 0) {
                closedir(d);
                return r;
            }
        }
        closedir(d);
    }
    int64_t deadline = sk_now_ns() + CG_RMDIR_TIMEOUT_NS;
    for (long us = 50;; us = next_nap(us)) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || sk_now_ns() >= deadline)
            return -errno;
        nap_us(us);
    }
}

/* ---- detection -------------------------------------------------------- */

static void sys_add_hier(struct sk_cgroup_system *sys, const char *mount, dev_t dev)
{
    struct cg_hier *h = &sys->hier[sys->n_hier++];
    h->mount = xstrdup(mount);
    h->parent = xasprintf("%s/%s", mount, sys->parent_name);
    h->dev = dev;
}

/* v1_find - the hierarchy carrying `ctrl`: /sys/fs/cgroup/<ctrl>, or the
 * co-mounted "cpu,cpuacct" layout. Names that resolve to the same mount (a
 * symlink "cpu" -> "cpu,cpuacct") share one entry, found by st_dev. */
static void v1_find(struct sk_cgroup_system *sys, enum cg_ctrl ctrl)
{
    const char *cands[3] = {ctrl_names[ctrl], NULL, NULL};
    if (ctrl == CTRL_CPU || ctrl == CTRL_CPUACCT) {
        cands[1] = "cpu,cpuacct";
        cands[2] = "cpuacct,cpu";
    }
    sys->ctrl_hier[ctrl] = -1;
    for (size_t i = 0; i < SK_ARRAY_SIZE(cands) && cands[i] != NULL; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (join_path(path, sizeof(path), CG_MOUNT, cands[i]) < 0)
            continue;
        if (!is_fs(path, CGROUP_SUPER_MAGIC) || stat(path, &st) < 0)
            continue;
        for (size_t h = 0; h < sys->n_hier; h++) {
            if (sys->hier[h].dev == st.st_dev) {
                sys->ctrl_hier[ctrl] = (int)h;
                return;
            }
        }
        _cleanup_free_ char *real = realpath(path, NULL);
        sys_add_hier(sys, real ? real : path, st.st_dev);
        sys->ctrl_hier[ctrl] = (int)sys->n_hier - 1;
        return;
    }
}

static int setup_v1(struct sk_cgroup_system *sys, bool forced, struct sk_error *err)
{
    for (int c = 0; c < CTRL_COUNT; c++)
        v1_find(sys, (enum cg_ctrl)c);
    if (sys->ctrl_hier[CTRL_MEMORY] < 0)
        return sk_error_setv(err, ENOTSUP, "cgroup v1 controller 'memory' is not mounted at '%s/memory'", CG_MOUNT);
    for (size_t h = 0; h < sys->n_hier; h++) {
        int r = sk_mkdir_p(sys->hier[h].parent, 0755, err);
        if (r < 0)
            return sk_error_prefix(err, "create cgroup parent");
    }
    /* Children inherit use_hierarchy at creation, and only a childless group
     * can change it; without it a sandbox's own sub-groups escape its limit.
     * Kernels since 5.16 always have it on. */
    const char *mem_parent = sys->hier[sys->ctrl_hier[CTRL_MEMORY]].parent;
    uint64_t uh = 1;
    if (read_u64_file(mem_parent, "memory.use_hierarchy", &uh) == 0 && uh == 0) {
        int r = write_str(mem_parent, "memory.use_hierarchy", "1");
        if (r < 0)
            sk_log_warn("cannot enable 'memory.use_hierarchy' in '%s': %s", mem_parent, strerror(-r));
    }
    char list[128] = "";
    size_t used = 0;
    for (int c = 0; c < CTRL_COUNT; c++) {
        if (sys->ctrl_hier[c] < 0) {
            sk_log_warn("cgroup v1 controller '%s' is not mounted under '%s'", ctrl_names[c], CG_MOUNT);
            continue;
        }
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", ctrl_names[c]);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    sk_log_info("cgroup driver 'v1'%s (%s under '%s/<ctrl>/%s')", forced ? " (forced)" : "", list, CG_MOUNT,
                sys->parent_name);
    return 0;
}

/* v2_enable - enable memory, cpu and pids for the children of `dir`, those
 * that `dir` has available. Failure is not fatal here: a limit that needs a
 * missing controller fails later with a message naming it. */
static void v2_enable(const char *dir)
{
    static const char *const wanted[] = {"memory", "cpu", "pids"};
    char avail[1024], enabled[1024];
    if (read_small(dir, "cgroup.controllers", avail, sizeof(avail)) < 0)
        return;
    if (read_small(dir, "cgroup.subtree_control", enabled, sizeof(enabled)) < 0)
        enabled[0] = '\0';
    for (size_t i = 0; i < SK_ARRAY_SIZE(wanted); i++) {
        if (!has_token(avail, wanted[i]) || has_token(enabled, wanted[i]))
            continue;
        char op[16];
        snprintf(op, sizeof(op), "+%s", wanted[i]);
        int r = write_str(dir, "cgroup.subtree_control", op);
        if (r < 0)
            sk_log_warn("cannot enable cgroup v2 controller '%s' in '%s/cgroup.subtree_control': %s", wanted[i], dir,
                        strerror(-r));
    }
}

static int setup_v2(struct sk_cgroup_system *sys, const char *root, bool forced, struct sk_error *err)
{
    sys_add_hier(sys, root, 0);
    /* Walk down from the root, creating each level and enabling the
     * controllers in it, so that they reach the sandboxes' groups. */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", root);
    v2_enable(path);
    for (const char *p = sys->parent_name; *p != '\0';) {
        size_t n = strcspn(p, "/");
        size_t used = strlen(path);
        if (used + 1 + n >= sizeof(path))
            return sk_error_setv(err, ENAMETOOLONG, "cgroup path '%s/%s' is too long", root, sys->parent_name);
        path[used] = '/';
        memcpy(path + used + 1, p, n);
        path[used + 1 + n] = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return sk_error_set(err, errno, "create cgroup parent '%s'", path);
        v2_enable(path);
        p += n;
        if (*p == '/')
            p++;
    }
    const char *parent = sys->hier[0].parent;
    char enabled[1024] = "";
    if (read_small(parent, "cgroup.subtree_control", enabled, sizeof(enabled)) < 0)
        enabled[0] = '\0';
    for (int c = 0; c < CTRL_COUNT; c++)
        sys->ctrl_hier[c] = -1;
    /* cpu.stat (usage) and cgroup.freeze are core files on v2. */
    sys->ctrl_hier[CTRL_CPUACCT] = 0;
    sys->ctrl_hier[CTRL_FREEZER] = 0;
    char list[64] = "";
    size_t used = 0;
    static const enum cg_ctrl limited[] = {CTRL_MEMORY, CTRL_CPU, CTRL_PIDS};
    for (size_t i = 0; i < SK_ARRAY_SIZE(limited); i++) {
        if (!has_token(enabled, ctrl_names[limited[i]]))
            continue;
        sys->ctrl_hier[limited[i]] = 0;
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", ctrl_names[limited[i]]);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    sk_log_info("cgroup driver 'v2'%s (%s at '%s')", forced ? " (forced)" : "", used ? list : "no controllers", parent);
    return 0;
}

int sk_cgroup_system_detect(const char *parent, struct sk_cgroup_system **out, struct sk_error *err)
{
    *out = NULL;
    if (!valid_parent(parent))
        return sk_error_setv(err, EINVAL, "invalid cgroup parent '%.300s': use components of [A-Za-z0-9._-]",
                             parent ? parent : "(null)");
    const char *force = getenv("SKIFF_CGROUP_DRIVER");
    if (force != NULL && *force != '\0' && strcmp(force, "v1") != 0 && strcmp(force, "v2") != 0)
        return sk_error_setv(err, EINVAL, "$SKIFF_CGROUP_DRIVER must be 'v1' or 'v2', not '%.32s'", force);
    bool forced = force != NULL && *force != '\0';

    struct sk_cgroup_system *sys = xcalloc(1, sizeof(*sys));
    sys->parent_name = xstrdup(parent);
    bool v2_top = is_fs(CG_MOUNT, CGROUP2_SUPER_MAGIC);
    bool v2_unified = is_fs(CG_UNIFIED, CGROUP2_SUPER_MAGIC);
    bool v1_memory = is_fs(CG_MOUNT "/memory", CGROUP_SUPER_MAGIC);
    int r;
    if (forced && strcmp(force, "v1") == 0) {
        sys->driver = SK_CGROUP_V1;
        r = setup_v1(sys, true, err);
    } else if (forced) {
        sys->driver = SK_CGROUP_V2;
        if (v2_top || v2_unified)
            r = setup_v2(sys, v2_top ? CG_MOUNT : CG_UNIFIED, true, err);
        else
            r = sk_error_setv(err, ENOTSUP, "cgroup v2 is not mounted at '%s' or '%s'", CG_MOUNT, CG_UNIFIED);
    } else if (v2_top && file_has_token(CG_MOUNT, "cgroup.controllers", "memory")) {
        sys->driver = SK_CGROUP_V2;
        r = setup_v2(sys, CG_MOUNT, false, err);
    } else if (v1_memory) {
        sys->driver = SK_CGROUP_V1;
        r = setup_v1(sys, false, err);
    } else if (v2_top || v2_unified) {
        /* A v2 tree without the memory controller still groups and kills
         * sandboxes; memory limits then fail with a message naming it. */
        sk_log_warn("cgroup v2 without the 'memory' controller and no cgroup v1 memory hierarchy");
        sys->driver = SK_CGROUP_V2;
        r = setup_v2(sys, v2_top ? CG_MOUNT : CG_UNIFIED, false, err);
    } else {
        r = sk_error_setv(err, ENOTSUP, "no usable cgroup hierarchy under '%s'", CG_MOUNT);
    }
    if (r < 0) {
        sk_cgroup_system_free(sys);
        return r;
    }
    *out = sys;
    return 0;
}

void sk_cgroup_system_free(struct sk_cgroup_system *sys)
{
    if (sys == NULL)
        return;
    for (size_t i = 0; i < sys->n_hier; i++) {
        free(sys->hier[i].mount);
        free(sys->hier[i].parent);
    }
    free(sys->parent_name);
    free(sys);
}

enum sk_cgroup_driver sk_cgroup_system_driver(const struct sk_cgroup_system *sys)
{
    return sys->driver;
}

const char *sk_cgroup_driver_name(enum sk_cgroup_driver d)
{
    switch (d) {
    case SK_CGROUP_V1: return "v1";
    case SK_CGROUP_V2: return "v2";
    }
    return "unknown";
}

/* ---- groups ----------------------------------------------------------- */

/* cg_alloc - the struct for <parent>/<name>, touching nothing on disk. */
static struct sk_cgroup *cg_alloc(const struct sk_cgroup_system *sys, const char *name)
{
    struct sk_cgroup *cg = xcalloc(1, sizeof(*cg));
    cg->driver = sys->driver;
    cg->name = xstrdup(name);
    cg->where = xstrdup(sys->driver == SK_CGROUP_V2 ? sys->hier[0].mount : CG_MOUNT);
    memcpy(cg->ctrl_hier, sys->ctrl_hier, sizeof(cg->ctrl_hier));
    cg->n = sys->n_hier;
    for (size_t i = 0; i < cg->n; i++) {
        cg->dir[i] = xasprintf("%s/%s", sys->hier[i].parent, name);
        cg->procs[i] = xasprintf("%s/cgroup.procs", cg->dir[i]);
    }
    cg->v2_fd = -1;
    return cg;
}

void sk_cgroup_free(struct sk_cgroup *cg)
{
    if (cg == NULL)
        return;
    for (size_t i = 0; i < cg->n; i++) {
        free(cg->dir[i]);
        free(cg->procs[i]);
    }
    sk_close(&cg->v2_fd);
    free(cg->name);
    free(cg->where);
    free(cg);
}

static int missing_ctrl(const struct sk_cgroup *cg, enum cg_ctrl c, struct sk_error *err)
{
    if (cg->driver == SK_CGROUP_V2)
        return sk_error_setv(err, ENOTSUP, "cgroup v2 controller '%s' is not available at '%s'", ctrl_names[c],
                             cg->where);
    return sk_error_setv(err, ENOTSUP, "cgroup v1 controller '%s' is not mounted under '%s'", ctrl_names[c], cg->where);
}

/* ctrl_dir - the group's directory in the hierarchy carrying c, or NULL. */
static const char *ctrl_dir(const struct sk_cgroup *cg, enum cg_ctrl c)
{
    int h = cg->ctrl_hier[c];
    return h >= 0 && (size_t)h < cg->n ? cg->dir[h] : NULL;
}

static int check_limits(const struct sk_cgroup_limits *lim, struct sk_error *err)
{
    if (lim->memory_bytes < 0)
        return sk_error_setv(err, EINVAL, "invalid memory limit %lld", (long long)lim->memory_bytes);
    if (!(lim->cpu >= 0 && lim->cpu <= 1e6))
        return sk_error_setv(err, EINVAL, "invalid cpu limit %g", lim->cpu);
    if (lim->pids < 0)
        return sk_error_setv(err, EINVAL, "invalid pids limit %lld", (long long)lim->pids);
    return 0;
}

static long long cpu_quota(double cpu)
{
    long long q = (long long)(cpu * (double)CG_CPU_PERIOD + 0.5);
    return q < CG_CPU_MIN_QUOTA ? CG_CPU_MIN_QUOTA : q;
}

static int set_limits_v1(struct sk_cgroup *cg, const struct sk_cgroup_limits *lim, struct sk_error *err)
{
    char val[32];
    int r;
    const char *mem = ctrl_dir(cg, CTRL_MEMORY);
    if (mem == NULL) {
        if (lim->memory_bytes > 0)
            return missing_ctrl(cg, CTRL_MEMORY, err);
    } else {
        snprintf(val, sizeof(val), "%lld", lim->memory_bytes > 0 ? (long long)lim->memory_bytes : -1LL);
        char path[PATH_MAX];
        bool memsw = join_path(path, sizeof(path), mem, "memory.memsw.limit_in_bytes") == 0 && access(path, F_OK) == 0;
        /* The kernel keeps memsw >= limit: raising goes memsw first, lowering
         * limit first. Try limit first and swap the order on EINVAL. */
        r = write_str(mem, "memory.limit_in_bytes", val);
        if (r == -EINVAL && memsw) {
            r = write_ctrl(mem, "memory.memsw.limit_in_bytes", val, err);
            if (r < 0)
                return r;
            r = write_str(mem, "memory.limit_in_bytes", val);
        }
        if (r < 0)
            return sk_error_set(err, -r, "write '%s' to '%s/memory.limit_in_bytes'", val, mem);
        if (memsw) {
            r = write_ctrl(mem, "memory.memsw.limit_in_bytes", val, err);
            if (r < 0)
                return r;
        }
    }

    const char *cpu = ctrl_dir(cg, CTRL_CPU);
    if (cpu == NULL) {
        if (lim->cpu > 0)
            return missing_ctrl(cg, CTRL_CPU, err);
    } else {
        snprintf(val, sizeof(val), "%lld", CG_CPU_PERIOD);
        r = write_ctrl(cpu, "cpu.cfs_period_us", val, err);
        if (r < 0)
            return r;
        snprintf(val, sizeof(val), "%lld", lim->cpu > 0 ? cpu_quota(lim->cpu) : -1LL);
        r = write_ctrl(cpu, "cpu.cfs_quota_us", val, err);
        if (r < 0)
            return r;
    }

    const char *pids = ctrl_dir(cg, CTRL_PIDS);
    if (pids == NULL) {
        if (lim->pids > 0)
            return missing_ctrl(cg, CTRL_PIDS, err);
    } else {
        if (lim->pids > 0)
            snprintf(val, sizeof(val), "%lld", (long long)lim->pids);
        else
            snprintf(val, sizeof(val), "max");
        r = write_ctrl(pids, "pids.max", val, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* v2_write - write a controller file; a missing file means the controller is
 * not enabled here, which only matters when a limit is asked for. */
static int v2_write(const struct sk_cgroup *cg, enum cg_ctrl c, const char *file, const char *val, bool needed,
                    struct sk_error *err)
{
    int r = write_str(cg->dir[0], file, val);
    if (r == -ENOENT && access(cg->dir[0], F_OK) == 0)
        return needed ? missing_ctrl(cg, c, err) : 0;
    if (r < 0)
        return sk_error_set(err, -r, "write '%s' to '%s/%s'", val, cg->dir[0], file);
    return 0;
}

static int set_limits_v2(struct sk_cgroup *cg, const struct sk_cgroup_limits *lim, struct sk_error *err)
{
    char val[48];
    bool mem = lim->memory_bytes > 0;
    if (mem)
        snprintf(val, sizeof(val), "%lld", (long long)lim->memory_bytes);
    else
        snprintf(val, sizeof(val), "max");
    int r = v2_write(cg, CTRL_MEMORY, "memory.max", val, mem, err);
    if (r < 0)
        return r;
    /* memory.swap.max exists only with swap accounting; no file, no swap. */
    r = v2_write(cg, CTRL_MEMORY, "memory.swap.max", mem ? "0" : "max", false, err);
    if (r < 0)
        return r;

    if (lim->cpu > 0)
        snprintf(val, sizeof(val), "%lld %lld", cpu_quota(lim->cpu), CG_CPU_PERIOD);
    else
        snprintf(val, sizeof(val), "max %lld", CG_CPU_PERIOD);
    r = v2_write(cg, CTRL_CPU, "cpu.max", val, lim->cpu > 0, err);
    if (r < 0)
        return r;

    if (lim->pids > 0)
        snprintf(val, sizeof(val), "%lld", (long long)lim->pids);
    else
        snprintf(val, sizeof(val), "max");
    return v2_write(cg, CTRL_PIDS, "pids.max", val, lim->pids > 0, err);
}

int sk_cgroup_set_limits(struct sk_cgroup *cg, const struct sk_cgroup_limits *lim, struct sk_error *err)
{
    static const struct sk_cgroup_limits none = {0, 0, 0};
    if (lim == NULL)
        lim = &none;
    int r = check_limits(lim, err);
    if (r < 0)
        return r;
    r = cg->driver == SK_CGROUP_V2 ? set_limits_v2(cg, lim, err) : set_limits_v1(cg, lim, err);
    if (r < 0)
        return sk_error_prefix(err, "cgroup '%s'", cg->name);
    return 0;
}

int sk_cgroup_new(struct sk_cgroup_system *sys, const char *name, const struct sk_cgroup_limits *lim,
                  struct sk_cgroup **out, struct sk_error *err)
{
    *out = NULL;
    if (!valid_name(name))
        return sk_error_setv(err, EINVAL, "invalid cgroup name '%.80s': use 1 to %d of [A-Za-z0-9._-]",
                             name ? name : "(null)", CG_NAME_MAX);
    if (lim != NULL) {
        int r = check_limits(lim, err);
        if (r < 0)
            return r;
    }
    struct sk_cgroup *cg = cg_alloc(sys, name);
    size_t made = 0;
    int r = 0;
    for (; made < cg->n; made++) {
        if (mkdir(cg->dir[made], 0755) < 0) {
            if (errno == EEXIST)
                r = sk_error_setv(err, EEXIST, "cgroup '%s' already exists", cg->dir[made]);
            else
                r = sk_error_set(err, errno, "create cgroup '%s'", cg->dir[made]);
            goto undo_dirs;
        }
    }
    if (cg->driver == SK_CGROUP_V1) {
        const char *mem = ctrl_dir(cg, CTRL_MEMORY);
        uint64_t uh = 1;
        if (mem != NULL && read_u64_file(mem, "memory.use_hierarchy", &uh) == 0 && uh == 0)
            (void)write_str(mem, "memory.use_hierarchy", "1");
        if (mem != NULL)
            (void)write_str(mem, "memory.swappiness", "0"); /* best effort */
    } else {
        cg->v2_fd = SK_RETRY_EINTR(open(cg->dir[0], O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (cg->v2_fd < 0) {
            r = sk_error_set(err, errno, "open cgroup '%s'", cg->dir[0]);
            goto undo_dirs;
        }
    }
    r = sk_cgroup_set_limits(cg, lim, err);
    if (r < 0)
        goto undo_dirs;
    *out = cg;
    return 0;

undo_dirs:
    /* No process can be inside yet: only we know the new directories. */
    while (made > 0)
        rmdir(cg->dir[--made]);
    sk_cgroup_free(cg);
    return r;
}

int sk_cgroup_open(struct sk_cgroup_system *sys, const char *name, struct sk_cgroup **out, struct sk_error *err)
{
    *out = NULL;
    if (!valid_name(name))
        return sk_error_setv(err, EINVAL, "invalid cgroup name '%.80s'", name ? name : "(null)");
    struct sk_cgroup *cg = cg_alloc(sys, name);
    for (size_t i = 0; i < cg->n; i++) {
        struct stat st;
        int r = 0;
        if (stat(cg->dir[i], &st) < 0)
            r = sk_error_set(err, errno, "cgroup '%s'", cg->dir[i]);
        else if (!S_ISDIR(st.st_mode))
            r = sk_error_setv(err, ENOTDIR, "cgroup '%s' is not a directory", cg->dir[i]);
        if (r < 0) {
            sk_cgroup_free(cg);
            return r;
        }
    }
    if (cg->driver == SK_CGROUP_V2) {
        cg->v2_fd = SK_RETRY_EINTR(open(cg->dir[0], O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (cg->v2_fd < 0) {
            int r = sk_error_set(err, errno, "open cgroup '%s'", cg->dir[0]);
            sk_cgroup_free(cg);
            return r;
        }
    }
    *out = cg;
    return 0;
}

int sk_cgroup_enter(const struct sk_cgroup *cg, pid_t pid, struct sk_error *err)
{
    /* A negative pid must not turn into "0", which would move the caller. */
    if (pid < 0)
        return sk_error_setv(err, EINVAL, "invalid pid %d", (int)pid);
    char buf[24];
    size_t len = fmt_u64(buf, sizeof(buf), (unsigned long long)pid);
    for (size_t i = 0; i < cg->n; i++) {
        int fd = SK_RETRY_EINTR(open(cg->procs[i], O_WRONLY | O_CLOEXEC));
        if (fd < 0)
            return sk_error_set(err, errno, "open '%s'", cg->procs[i]);
        ssize_t w = SK_RETRY_EINTR(write(fd, buf, len));
        int saved = errno;
        close(fd);
        if (w < 0)
            return sk_error_set(err, saved, "move pid %d into '%s'", (int)(pid > 0 ? pid : getpid()), cg->dir[i]);
    }
    return 0;
}

int sk_cgroup_v2_fd(const struct sk_cgroup *cg)
{
    return cg->driver == SK_CGROUP_V2 ? cg->v2_fd : -1;
}

int sk_cgroup_read_usage(const struct sk_cgroup *cg, struct sk_cgroup_usage *u, struct sk_error *err)
{
    memset(u, 0, sizeof(*u));
    int r;
    if (cg->driver == SK_CGROUP_V2) {
        const char *d = cg->dir[0];
        char buf[2048];
        ssize_t n = read_small(d, "cpu.stat", buf, sizeof(buf));
        if (n < 0)
            return sk_error_set(err, (int)-n, "read '%s/cpu.stat'", d);
        if (!keyed_u64(buf, "usage_usec", &u->cpu_usec))
            u->cpu_usec = 0;
        if ((r = read_u64_file(d, "memory.current", &u->memory_current)) < 0 ||
            (r = read_u64_file(d, "memory.peak", &u->memory_peak)) < 0 ||
            (r = read_keyed_file(d, "memory.events", "oom_kill", &u->oom_kills)) < 0 ||
            (r = read_u64_file(d, "pids.current", &u->pids_current)) < 0)
            return sk_error_set(err, -r, "read usage of cgroup '%s'", d);
        return 0;
    }
    const char *mem = ctrl_dir(cg, CTRL_MEMORY);
    if (mem != NULL) {
        char buf[128];
        ssize_t n = read_small(mem, "memory.usage_in_bytes", buf, sizeof(buf));
        if (n < 0)
            return sk_error_set(err, (int)-n, "read '%s/memory.usage_in_bytes'", mem);
        if (!parse_u64(buf, &u->memory_current))
            u->memory_current = 0;
        if ((r = read_u64_file(mem, "memory.max_usage_in_bytes", &u->memory_peak)) < 0 ||
            (r = read_keyed_file(mem, "memory.oom_control", "oom_kill", &u->oom_kills)) < 0)
            return sk_error_set(err, -r, "read usage of cgroup '%s'", mem);
    }
    const char *acct = ctrl_dir(cg, CTRL_CPUACCT);
    if (acct != NULL) {
        uint64_t ns = 0;
        if ((r = read_u64_file(acct, "cpuacct.usage", &ns)) < 0)
            return sk_error_set(err, -r, "read '%s/cpuacct.usage'", acct);
        u->cpu_usec = ns / 1000;
    }
    const char *pids = ctrl_dir(cg, CTRL_PIDS);
    if (pids != NULL && (r = read_u64_file(pids, "pids.current", &u->pids_current)) < 0)
        return sk_error_set(err, -r, "read '%s/pids.current'", pids);
    return 0;
}

/* ---- kill, emptiness, removal ----------------------------------------- */

static void kill_pid(pid_t pid, void *opaque)
{
    (void)opaque;
    /* A caller that put itself into the group by mistake gets an error
     * (the group never empties), not a silent death. */
    if (pid == getpid())
        return;
    kill(pid, SIGKILL);
}

static void kill_dir(const char *dir, void *opaque)
{
    (void)for_each_pid(dir, kill_pid, opaque);
}

static void kill_all(const struct sk_cgroup *cg)
{
    for (size_t i = 0; i < cg->n; i++)
        walk_tree(cg->dir[i], 0, kill_dir, NULL);
}

static void note_nonempty(const char *dir, void *opaque)
{
    bool *busy = opaque;
    if (!*busy && procs_nonempty(dir))
        *busy = true;
}

bool sk_cgroup_is_empty(const struct sk_cgroup *cg)
{
    if (cg->driver == SK_CGROUP_V2) {
        /* "populated" covers the whole subtree, zombies excluded. */
        char buf[256];
        uint64_t populated;
        ssize_t n = read_small(cg->dir[0], "cgroup.events", buf, sizeof(buf));
        if (n == -ENOENT && access(cg->dir[0], F_OK) < 0)
            return true;
        if (n >= 0 && keyed_u64(buf, "populated", &populated))
            return populated == 0;
    }
    bool busy = false;
    for (size_t i = 0; i < cg->n && !busy; i++)
        walk_tree(cg->dir[i], 0, note_nonempty, &busy);
    return !busy;
}

/* wait_empty - poll until the group is empty, for at most ~2 s. With
 * `rekill`, signal what is left on every round (nothing stops a process from
 * forking between our read of cgroup.procs and its death when the group
 * could not be frozen). */
static int wait_empty(const struct sk_cgroup *cg, bool rekill, struct sk_error *err)
{
    int64_t deadline = sk_now_ns() + CG_KILL_TIMEOUT_NS;
    for (long us = 50;; us = next_nap(us)) {
        if (sk_cgroup_is_empty(cg))
            return 0;
        if (sk_now_ns() >= deadline)
            return sk_error_setv(err, EBUSY, "processes are left in cgroup '%s' after kill", cg->dir[0]);
        if (rekill)
            kill_all(cg);
        nap_us(us);
    }
}

static bool freezer_reads(const char *dir, const char *state)
{
    char buf[64];
    if (read_small(dir, "freezer.state", buf, sizeof(buf)) < 0)
        return false;
    size_t len = strcspn(buf, " \n");
    return len == strlen(state) && strncmp(buf, state, len) == 0;
}

static int kill_v1(struct sk_cgroup *cg, struct sk_error *err)
{
    const char *fz = ctrl_dir(cg, CTRL_FREEZER);
    bool frozen = false;
    /* Freezing first means no process can fork or exit while we read the
     * pid list, so every pid we signal is still the process we saw. */
    if (fz != NULL && write_str(fz, "freezer.state", "FROZEN") == 0) {
        frozen = true;
        int64_t deadline = sk_now_ns() + CG_FREEZE_TIMEOUT_NS;
        for (long us = 50; !freezer_reads(fz, "FROZEN"); us = next_nap(us)) {
            if (sk_now_ns() >= deadline) {
                sk_log_debug("cgroup '%s' did not freeze in time, killing anyway", fz);
                break;
            }
            nap_us(us);
        }
    }
    kill_all(cg);
    if (frozen) {
        int r = write_str(fz, "freezer.state", "THAWED");
        if (r < 0 && r != -ENOENT)
            return sk_error_set(err, -r, "thaw cgroup '%s'", fz);
    }
    return wait_empty(cg, true, err);
}

static int kill_v2(struct sk_cgroup *cg, struct sk_error *err)
{
    const char *d = cg->dir[0];
    int r = write_str(d, "cgroup.kill", "1");
    if (r == 0)
        return wait_empty(cg, false, err);
    if (r != -ENOENT)
        return sk_error_set(err, -r, "write '1' to '%s/cgroup.kill'", d);
    if (access(d, F_OK) < 0)
        return 0; /* the group is gone, so is everything in it */
    /* Kernels before 5.14 have no cgroup.kill: freeze, signal, thaw. */
    bool frozen = write_str(d, "cgroup.freeze", "1") == 0;
    kill_all(cg);
    if (frozen)
        (void)write_str(d, "cgroup.freeze", "0");
    return wait_empty(cg, true, err);
}

int sk_cgroup_kill(struct sk_cgroup *cg, struct sk_error *err)
{
    if (sk_cgroup_is_empty(cg))
        return 0;
    int r = cg->driver == SK_CGROUP_V2 ? kill_v2(cg, err) : kill_v1(cg, err);
    if (r < 0)
        return sk_error_prefix(err, "kill cgroup '%s'", cg->name);
    return 0;
}

int sk_cgroup_destroy(struct sk_cgroup *cg, struct sk_error *err)
{
    int r = sk_cgroup_kill(cg, err);
    if (r < 0)
        return r;
    sk_close(&cg->v2_fd);
    for (size_t i = 0; i < cg->n; i++) {
        int rr = rmdir_tree(cg->dir[i], 0);
        if (rr < 0 && r == 0)
            r = sk_error_set(err, -rr, "remove cgroup '%s'", cg->dir[i]);
    }
    return r;
}

/* ---- leftovers -------------------------------------------------------- */

struct name_list {
    char **names;
    size_t n, cap;
};

static void name_list_free(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
}

/* collect_children - the union, over hierarchies, of the groups directly
 * under the parent whose names start with prefix and could be ours. */
static int collect_children(const struct sk_cgroup_system *sys, const char *prefix, struct name_list *l,
                            struct sk_error *err)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    for (size_t h = 0; h < sys->n_hier; h++) {
        int fd = SK_RETRY_EINTR(open(sys->hier[h].parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            return sk_error_set(err, errno, "open '%s'", sys->hier[h].parent);
        }
        DIR *d = fdopendir(fd);
        if (d == NULL) {
            int saved = errno;
            close(fd);
            return sk_error_set(err, saved, "open '%s'", sys->hier[h].parent);
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_type != DT_DIR || !valid_name(e->d_name) || strncmp(e->d_name, prefix ? prefix : "", plen) != 0)
                continue;
            bool seen = false;
            for (size_t i = 0; i < l->n && !seen; i++)
                seen = strcmp(l->names[i], e->d_name) == 0;
            if (seen)
                continue;
            if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 16;
                l->names = xrealloc(l->names, l->cap * sizeof(*l->names));
            }
            l->names[l->n++] = xstrdup(e->d_name);
        }
        closedir(d);
    }
    return 0;
}

int sk_cgroup_cleanup_stale(struct sk_cgroup_system *sys, const char *prefix,
                            bool (*keep)(const char *name, void *opaque), void *opaque, struct sk_error *err)
{
    struct name_list l = {0};
    int r = collect_children(sys, prefix, &l, err);
    if (r < 0)
        return r;
    int removed = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (keep != NULL && keep(l.names[i], opaque))
            continue;
        struct sk_cgroup *cg = cg_alloc(sys, l.names[i]);
        struct sk_error one = {0};
        if (sk_cgroup_destroy(cg, &one) < 0) {
            /* Keep going: one stuck group must not shelter the others; the
             * first failure is what the caller gets back. */
            sk_log_warn("cannot remove stale cgroup '%s': %s", l.names[i], one.msg);
            if (r == 0)
                r = sk_error_setv(err, one.code ? one.code : EIO, "remove stale cgroup: %s", one.msg);
        } else {
            sk_log_info("removed stale cgroup '%s'", l.names[i]);
            removed++;
        }
        sk_cgroup_free(cg);
    }
    name_list_free(&l);
    return r < 0 ? r : removed;
}

int sk_cgroup_count_children(struct sk_cgroup_system *sys, const char *prefix, struct sk_error *err)
{
    struct name_list l = {0};
    int r = collect_children(sys, prefix, &l, err);
    int n = (int)l.n;
    name_list_free(&l);
    return r < 0 ? r : n;
}
