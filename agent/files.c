/* files.c - file operations inside the sandbox's root.
 *
 * Every path from the host is resolved with openat2(root_fd, path,
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): "..", absolute paths and
 * absolute or relative symlinks all stay inside the root, and /proc magic
 * links (which could point anywhere) are refused. Operations that change a
 * name (mkdir, remove, rename, the rename of a write commit) resolve the
 * parent directory that way and then act on the last component with *at()
 * calls, which never follow a final symlink. Recursive list and remove
 * descend with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS on every level, so a
 * symlink planted (or swapped in) inside the tree is never followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "init.h"

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
#define BENEATH_NO_LINKS (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

int sk__init_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
    struct open_how how = {.flags = flags | O_CLOEXEC | O_NOCTTY, .resolve = resolve};
    if (flags & O_PATH)
        how.flags = flags | O_CLOEXEC; /* O_PATH accepts only a few flags */
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        /* EAGAIN: a concurrent rename raced a ".." lookup; retry a little. */
        if (errno == EINTR || (errno == EAGAIN && tries < 16))
            continue;
        return -1;
    }
}

static int open_in_root(struct sk_init *init, const char *path, uint64_t flags, struct sk_error *err)
{
    int fd = sk__init_openat2(init->root_fd, path, flags, IN_ROOT);
    if (fd < 0)
        return sk_error_set(err, errno, "open '%s'", path);
    return fd;
}

/* path_arg - a request path as a C string (the decoder has checked it is
 * 1..SK_PROTO_PATH_MAX bytes without NUL). */
static int path_arg(struct sk_proto_str s, char *buf, struct sk_error *err)
{
    return sk_proto_str_copy(s, buf, SK_PROTO_PATH_MAX + 1, err);
}

/* A path split into its resolved parent directory and last component. */
struct parent {
    int dir_fd;
    char name[NAME_MAX + 1];
};

static void parent_release(struct parent *p)
{
    sk_close(&p->dir_fd);
}

/* open_parent - resolve the directory holding `path`'s last component inside
 * the root (dir_flags: O_PATH, or O_RDONLY to fsync it). Trailing slashes are
 * ignored; EINVAL when the last component is "." or ".." or the path is the
 * root itself, which no name-changing operation may touch. */
static int open_parent(struct sk_init *init, const char *path, uint64_t dir_flags, struct parent *out,
                       struct sk_error *err)
{
    char buf[SK_PROTO_PATH_MAX + 1];
    out->dir_fd = -1;
    size_t n = strlen(path);
    if (n == 0 || n > SK_PROTO_PATH_MAX)
        return sk_error_setv(err, EINVAL, "invalid path '%s'", path);
    memcpy(buf, path, n + 1);
    while (n > 0 && buf[n - 1] == '/')
        buf[--n] = '\0';
    if (n == 0)
        return sk_error_setv(err, EINVAL, "path '%s' is the root", path);
    char *slash = memrchr(buf, '/', n);
    const char *name = slash ? slash + 1 : buf;
    const char *dir = ".";
    if (slash != NULL) {
        *slash = '\0';
        dir = slash == buf ? "/" : buf;
    }
    size_t name_len = strlen(name);
    if (name_len > NAME_MAX)
        return sk_error_setv(err, ENAMETOOLONG, "name '%s' is too long", name);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return sk_error_setv(err, EINVAL, "path '%s' ends in '%s'", path, name);
    memcpy(out->name, name, name_len + 1);
    out->dir_fd = sk__init_openat2(init->root_fd, dir, dir_flags | O_DIRECTORY, IN_ROOT);
    if (out->dir_fd < 0)
        return sk_error_set(err, errno, "open '%s'", path);
    return 0;
}

static void fill_stat(const struct stat *st, struct sk_proto_stat *ps)
{
    if (S_ISREG(st->st_mode))
        ps->type = 'f';
    else if (S_ISDIR(st->st_mode))
        ps->type = 'd';
    else if (S_ISLNK(st->st_mode))
        ps->type = 'l';
    else
        ps->type = 'o';
    ps->mode = st->st_mode & 07777;
    ps->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
    ps->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    ps->uid = st->st_uid;
    ps->gid = st->st_gid;
}

int sk_init_stat(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.stat.path, path, err);
    if (r < 0)
        return r;
    /* O_PATH | O_NOFOLLOW opens a final symlink itself: lstat semantics. */
    _cleanup_close_ int fd = open_in_root(init, path, O_PATH | (m->u.stat.follow ? 0 : O_NOFOLLOW), err);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sk_error_set(err, errno, "stat '%s'", path);
    struct sk_proto_msg reply = {.type = SK_PROTO_STAT_OK, .id = m->id};
    fill_stat(&st, &reply.u.stat_ok);
    sk_init_send(init, &reply, NULL, 0);
    return 0;
}

int sk_init_open_read(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.open_read.path, path, err);
    if (r < 0)
        return r;
    /* Look before opening for real: opening a FIFO would block and opening
     * a device can have side effects. O_PATH does neither. */
    _cleanup_close_ int probe = open_in_root(init, path, O_PATH, err);
    if (probe < 0)
        return probe;
    struct stat st, st2;
    if (fstat(probe, &st) < 0)
        return sk_error_set(err, errno, "stat '%s'", path);
    if (S_ISDIR(st.st_mode))
        return sk_error_setv(err, EISDIR, "open '%s': is a directory", path);
    if (!S_ISREG(st.st_mode))
        return sk_error_setv(err, EINVAL, "open '%s': not a regular file", path);
    _cleanup_close_ int fd = open_in_root(init, path, O_RDONLY | O_NONBLOCK, err);
    if (fd < 0)
        return fd;
    if (fstat(fd, &st2) < 0)
        return sk_error_set(err, errno, "stat '%s'", path);
    if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino || !S_ISREG(st2.st_mode))
        return sk_error_setv(err, EAGAIN, "open '%s': it changed while being opened", path);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    sk_init_reply_ok(init, m->id, 0, fd);
    return 0;
}

/* ---- atomic writes ---- */

static struct sk_init_write *find_write(struct sk_init *init, uint32_t handle, bool unlink_it)
{
    for (struct sk_init_write **pp = &init->writes; *pp != NULL; pp = &(*pp)->next) {
        struct sk_init_write *w = *pp;
        if (w->handle != handle)
            continue;
        if (unlink_it) {
            *pp = w->next;
            init->n_writes--;
        }
        return w;
    }
    return NULL;
}

static void write_free(struct sk_init_write *w, bool remove_tmp)
{
    if (remove_tmp && unlinkat(w->dir_fd, w->tmp_name, 0) < 0 && errno != ENOENT)
        sk_log_warn("remove temp file '%s': %s", w->tmp_name, strerror(errno));
    sk_close(&w->fd);
    sk_close(&w->dir_fd);
    free(w);
}

int sk_init_write_begin(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.write_begin.path, path, err);
    if (r < 0)
        return r;
    if (init->n_writes >= SK_INIT_WRITES_MAX)
        return sk_error_setv(err, EMFILE, "too many writes in progress (%d)", SK_INIT_WRITES_MAX);
    struct parent p;
    r = open_parent(init, path, O_RDONLY, &p, err);
    if (r < 0)
        return r;
    struct stat st;
    if (fstatat(p.dir_fd, p.name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        parent_release(&p);
        return sk_error_setv(err, EISDIR, "write '%s': is a directory", path);
    }
    struct sk_init_write *w = xcalloc(1, sizeof(*w));
    w->dir_fd = steal_fd(&p.dir_fd);
    w->fd = -1;
    memcpy(w->name, p.name, sizeof(w->name));
    char hex[17];
    r = sk_random_hex(hex, 8, err);
    if (r < 0)
        goto fail;
    snprintf(w->tmp_name, sizeof(w->tmp_name), ".skiff-%s.tmp", hex);
    w->fd = openat(w->dir_fd, w->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        r = sk_error_set(err, errno, "create temp file for '%s'", path);
        goto fail;
    }
    if (fchmod(w->fd, m->u.write_begin.mode) < 0) {
        r = sk_error_set(err, errno, "chmod temp file for '%s'", path);
        write_free(w, true);
        return r;
    }
    w->handle = init->next_handle++;
    if (init->next_handle == 0)
        init->next_handle = 1;
    w->next = init->writes;
    init->writes = w;
    init->n_writes++;
    sk_init_reply_ok(init, m->id, w->handle, w->fd);
    return 0;

fail:
    write_free(w, false);
    return r;
}

int sk_init_write_commit(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    struct sk_init_write *w = find_write(init, m->u.write_end.handle, true);
    if (w == NULL)
        return sk_error_setv(err, EBADF, "no write in progress with handle %u", m->u.write_end.handle);
    int r = 0;
    if (fsync(w->fd) < 0)
        r = sk_error_set(err, errno, "fsync '%s'", w->name);
    else if (renameat(w->dir_fd, w->tmp_name, w->dir_fd, w->name) < 0)
        r = sk_error_set(err, errno, "rename temp file over '%s'", w->name);
    else if (fsync(w->dir_fd) < 0 && errno != EINVAL)
        sk_log_warn("fsync directory of '%s': %s", w->name, strerror(errno));
    write_free(w, r < 0);
    if (r < 0)
        return r;
    sk_init_reply_ok(init, m->id, m->u.write_end.handle, -1);
    return 0;
}

int sk_init_write_abort(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    struct sk_init_write *w = find_write(init, m->u.write_end.handle, true);
    if (w == NULL)
        return sk_error_setv(err, EBADF, "no write in progress with handle %u", m->u.write_end.handle);
    write_free(w, true);
    sk_init_reply_ok(init, m->id, m->u.write_end.handle, -1);
    return 0;
}

void sk_init_writes_cleanup(struct sk_init *init)
{
    while (init->writes != NULL) {
        struct sk_init_write *w = init->writes;
        init->writes = w->next;
        write_free(w, true);
    }
    init->n_writes = 0;
}

/* ---- listing ---- */

struct list_ctx {
    struct sk_init *init;
    uint32_t id;
    bool recursive;
    struct sk_proto_entry *items; /* SK_PROTO_LIST_MAX */
    char *names;                  /* SK_PROTO_PAYLOAD_MAX bytes of entry paths */
    size_t n_items, names_len, bytes;
    uint64_t total;
    char rel[SK_PROTO_PATH_MAX + 1]; /* path of the current entry, relative */
};

static int list_flush(struct list_ctx *c, bool final)
{
    struct sk_proto_msg m = {.type = SK_PROTO_LIST_CHUNK, .id = c->id};
    m.u.list_chunk.final = final;
    m.u.list_chunk.count = (uint32_t)c->n_items;
    m.u.list_chunk.items = c->items;
    int r = sk_init_send(c->init, &m, NULL, 0);
    c->n_items = c->names_len = c->bytes = 0;
    return r;
}

static int list_add(struct list_ctx *c, size_t rel_len, const struct stat *st, struct sk_error *err)
{
    struct sk_proto_entry e = {.path = {c->rel, (uint32_t)rel_len}};
    fill_stat(st, &e.st);
    size_t size = sk_proto_entry_size(&e);
    if (c->n_items == SK_PROTO_LIST_MAX || c->bytes + size > SK_PROTO_PAYLOAD_MAX - SK_PROTO_LIST_CHUNK_OVERHEAD) {
        if (list_flush(c, false) < 0)
            return sk_error_setv(err, EPIPE, "control socket closed");
    }
    if (++c->total > SK_INIT_LIST_ENTRIES_MAX)
        return sk_error_setv(err, E2BIG, "more than %d entries", SK_INIT_LIST_ENTRIES_MAX);
    memcpy(c->names + c->names_len, c->rel, rel_len);
    e.path.ptr = c->names + c->names_len;
    c->names_len += rel_len;
    c->bytes += size;
    c->items[c->n_items++] = e;
    return 0;
}

/* list_dir - add the entries of dir_fd (whose relative path is the first
 * rel_len bytes of c->rel) and, when recursive, of its subdirectories. */
static int list_dir(struct list_ctx *c, int dir_fd, size_t rel_len, int depth, struct sk_error *err)
{
    int dup_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return sk_error_set(err, errno, "dup");
    DIR *d = fdopendir(dup_fd);
    if (d == NULL) {
        int e = errno;
        close(dup_fd);
        return sk_error_set(err, e, "read directory '%s'", rel_len ? c->rel : ".");
    }
    int r = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                r = sk_error_set(err, errno, "read directory '%s'", rel_len ? c->rel : ".");
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t nl = strlen(de->d_name);
        size_t len = rel_len ? rel_len + 1 + nl : nl;
        if (len > SK_PROTO_PATH_MAX) {
            r = sk_error_setv(err, ENAMETOOLONG, "path below '%s' is longer than %d bytes", c->rel, SK_PROTO_PATH_MAX);
            break;
        }
        if (rel_len)
            c->rel[rel_len] = '/';
        memcpy(c->rel + (rel_len ? rel_len + 1 : 0), de->d_name, nl + 1);
        struct stat st;
        if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* removed meanwhile */
            r = sk_error_set(err, errno, "stat '%s'", c->rel);
            break;
        }
        r = list_add(c, len, &st, err);
        if (r < 0)
            break;
        if (!c->recursive || !S_ISDIR(st.st_mode))
            continue;
        if (depth + 1 >= SK_INIT_TREE_DEPTH_MAX) {
            r = sk_error_setv(err, ELOOP, "directory tree deeper than %d levels at '%s'", SK_INIT_TREE_DEPTH_MAX,
                              c->rel);
            break;
        }
        int sub = sk__init_openat2(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, BENEATH_NO_LINKS);
        if (sub < 0) {
            if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
                continue; /* replaced meanwhile; never follow what took its place */
            r = sk_error_set(err, errno, "open '%s'", c->rel);
            break;
        }
        r = list_dir(c, sub, len, depth + 1, err);
        close(sub);
        if (r < 0)
            break;
    }
    closedir(d);
    c->rel[rel_len] = '\0';
    return r;
}

int sk_init_list(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.list.path, path, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = open_in_root(init, path, O_RDONLY | O_DIRECTORY, err);
    if (fd < 0)
        return fd;
    struct list_ctx *c = xcalloc(1, sizeof(*c));
    c->init = init;
    c->id = m->id;
    c->recursive = m->u.list.recursive;
    c->items = xcalloc(SK_PROTO_LIST_MAX, sizeof(*c->items));
    c->names = xmalloc(SK_PROTO_PAYLOAD_MAX);
    r = list_dir(c, fd, 0, 0, err);
    if (r == 0)
        list_flush(c, true);
    free(c->names);
    free(c->items);
    free(c);
    return init->host_gone ? 0 : r;
}

/* ---- mkdir, remove, rename ---- */

static int mkdir_one(struct sk_init *init, const char *path, uint32_t mode, struct sk_error *err)
{
    struct parent p;
    int r = open_parent(init, path, O_PATH, &p, err);
    if (r < 0)
        return r;
    if (mkdirat(p.dir_fd, p.name, mode) < 0)
        r = sk_error_set(err, errno, "mkdir '%s'", path);
    parent_release(&p);
    return r;
}

int sk_init_mkdir(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.mkdir.path, path, err);
    if (r < 0)
        return r;
    uint32_t mode = m->u.mkdir.mode;
    if (!m->u.mkdir.parents) {
        r = mkdir_one(init, path, mode, err);
        if (r < 0)
            return r;
        sk_init_reply_ok(init, m->id, 0, -1);
        return 0;
    }
    /* mkdir -p: each prefix in turn, each resolved inside the root. */
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        if (path[i - 1] == '/')
            continue;
        char saved = path[i];
        path[i] = '\0';
        struct sk_error e = {0};
        r = mkdir_one(init, path, mode, &e);
        bool skip = r == -EEXIST || r == -EINVAL; /* exists, or a "." / ".." component */
        if (r < 0 && !skip) {
            *err = e;
            return r;
        }
        path[i] = saved;
    }
    _cleanup_close_ int fd = sk__init_openat2(init->root_fd, path, O_PATH, IN_ROOT);
    if (fd < 0)
        return sk_error_set(err, errno, "mkdir '%s'", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sk_error_set(err, errno, "stat '%s'", path);
    if (!S_ISDIR(st.st_mode))
        return sk_error_set(err, EEXIST, "mkdir '%s'", path);
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}

/* remove_tree - remove `name` in dir_fd and, if it is a directory, all it
 * holds. Every level is opened with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * relative to the previous one, so nothing outside the tree is reached even
 * when entries are swapped for symlinks while we work. */
static int remove_tree(int dir_fd, const char *name, int depth, struct sk_error *err)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : sk_error_set(err, errno, "stat '%s'", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
            return sk_error_set(err, errno, "remove '%s'", name);
        return 0;
    }
    if (depth >= SK_INIT_TREE_DEPTH_MAX)
        return sk_error_setv(err, ELOOP, "directory tree deeper than %d levels", SK_INIT_TREE_DEPTH_MAX);
    for (int pass = 0; pass < 4; pass++) {
        int fd = sk__init_openat2(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, BENEATH_NO_LINKS);
        if (fd < 0) {
            if (errno == ENOENT)
                return 0;
            if (errno == ENOTDIR || errno == ELOOP) /* swapped for a file or symlink */
                return remove_tree(dir_fd, name, depth + 1, err);
            return sk_error_set(err, errno, "open '%s'", name);
        }
        DIR *d = fdopendir(fd);
        if (d == NULL) {
            int e = errno;
            close(fd);
            return sk_error_set(err, e, "read directory '%s'", name);
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (errno = 0, de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                r = remove_tree(dirfd(d), de->d_name, depth + 1, err);
        }
        if (r == 0 && de == NULL && errno != 0)
            r = sk_error_set(err, errno, "read directory '%s'", name);
        closedir(d);
        if (r < 0)
            return r;
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != ENOTEMPTY)
            return sk_error_set(err, errno, "remove '%s'", name);
        /* Something was created meanwhile: go again. */
    }
    return sk_error_set(err, ENOTEMPTY, "remove '%s'", name);
}

int sk_init_remove(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.remove.path, path, err);
    if (r < 0)
        return r;
    struct parent p;
    r = open_parent(init, path, O_PATH, &p, err);
    if (r < 0)
        return r;
    struct stat st;
    if (fstatat(p.dir_fd, p.name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        r = sk_error_set(err, errno, "remove '%s'", path);
    } else if (S_ISDIR(st.st_mode) && m->u.remove.recursive) {
        r = remove_tree(p.dir_fd, p.name, 0, err);
        if (r < 0)
            sk_error_prefix(err, "remove '%s'", path);
    } else if (unlinkat(p.dir_fd, p.name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
        r = sk_error_set(err, errno, "remove '%s'", path);
    }
    parent_release(&p);
    if (r < 0)
        return r;
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}

int sk_init_rename(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char from[SK_PROTO_PATH_MAX + 1], to[SK_PROTO_PATH_MAX + 1];
    int r = path_arg(m->u.rename.from, from, err);
    if (r < 0)
        return r;
    r = path_arg(m->u.rename.to, to, err);
    if (r < 0)
        return r;
    struct parent a, b;
    r = open_parent(init, from, O_PATH, &a, err);
    if (r < 0)
        return r;
    r = open_parent(init, to, O_PATH, &b, err);
    if (r < 0) {
        parent_release(&a);
        return r;
    }
    if (renameat(a.dir_fd, a.name, b.dir_fd, b.name) < 0)
        r = sk_error_set(err, errno, "rename '%s' to '%s'", from, to);
    parent_release(&a);
    parent_release(&b);
    if (r < 0)
        return r;
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}
