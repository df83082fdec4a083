/* watch.c - WATCH_ADD, WATCH_REMOVE and the WATCH_EVENTs they produce.
 *
 * One inotify fd on the epoll loop, opened with the first watch and closed
 * with the last: an idle sandbox holds no inotify instance (the kernel
 * limits them per user, and every sandbox of one host user counts against
 * that limit). A watch is a tree of watched directories, one node each: its
 * directory alone, or with `recursive` every directory below it. One
 * directory may be in several watches; inotify gives it one watch
 * descriptor (wd), which their nodes share and which leaves the kernel with
 * the last of them.
 *
 * Paths stay inside the root. The watched directory is resolved like every
 * other path (openat2 RESOLVE_IN_ROOT) to an O_PATH fd, and
 * inotify_add_watch is given /proc/self/fd/N of that fd, so no symlink in
 * the request's path can redirect it. Subdirectories are opened level by
 * level with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS and O_NOFOLLOW, so a
 * recursive watch never follows a symlink, planted before or swapped in
 * while it works. A node found again later (to look at an entry, or to
 * watch a new subdirectory) is re-resolved the same way - the watch's path
 * inside the root, then the node's path beneath it - and must still be the
 * directory (dev, ino) it was added as. If the watched directory itself
 * is moved away, events in what is watched go on, but new subdirectories
 * can no longer be added (OVERFLOW) and entry types become '?'.
 *
 * Events are read in batches, one read(2) each. Within a batch, repeated
 * modifications of one path coalesce into one modify; a directory moved
 * inside a recursive watch keeps its nodes (re-parented when its MOVED_TO
 * comes), one moved out of it loses them at the end of the batch, one moved
 * in is walked; a directory created in a recursive watch is walked at once
 * and what it already holds is reported as create (it may predate the
 * directory's own watch, so such an entry may be reported twice).
 *
 * Sending never blocks pid 1: events go out on the control socket without
 * waiting, using at most half of its send buffer (replies and EXITs, sent
 * blocking, always find the other half), or queue behind each other
 * (bounded; EPOLLOUT drains the queue).
 * When the queue is full an event is dropped and its watch owes an
 * OVERFLOW, sent as soon as there is room and before any later event of
 * that watch.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "init.h"
#include "proto/channel.h"

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
#define BENEATH_NO_LINKS (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* IN_EXCL_UNLINK: nothing about files that are already unlinked. */
#define WATCH_MASK \
    (IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_ONLYDIR | \
     IN_EXCL_UNLINK)
#define WD_BUCKETS 1024
#define READ_BUF_SIZE (64 * 1024)
#define READS_PER_CALL 8      /* batches per call; the loop comes back for more */
#define COALESCE_LOOKBACK 256 /* batch events searched for an earlier modify */
#define PATH_DETACHED (-1)    /* node_path: below a directory moved away */
#define PATH_TOO_LONG (-2)    /* node_path: over SK_PROTO_PATH_MAX */
#define EVENT_MSG_MAX (SK_PROTO_HEADER_SIZE + 4 + 1 + 1 + 4 + 4 + SK_PROTO_PATH_MAX)

struct watch;

/* One watched directory of one watch. */
struct wdir {
    struct watch *watch;
    struct wdir *parent; /* NULL for the watch's root and while detached by a move */
    struct wdir *child, *sibling;
    struct wdir *hnext; /* next in its wd's bucket */
    int wd;
    dev_t dev;
    ino_t ino;
    char *name; /* its name in the parent; NULL for the root */
};

struct watch {
    struct watch *next;
    uint32_t id;
    bool recursive;
    bool lost;         /* events were dropped: an OVERFLOW is owed */
    char *path;        /* as WATCH_ADD named it, inside the root */
    struct wdir *root; /* NULL once the directory is gone */
};

/* An encoded WATCH_EVENT waiting for room on the control socket. */
struct queued {
    struct queued *next;
    uint32_t watch_id;
    size_t len;
    uint8_t msg[];
};

/* An event of the current batch, sent at its end. */
struct pending {
    uint32_t watch_id;
    uint8_t kind, type;
    uint32_t cookie;
    char *path; /* NULL when empty */
    uint32_t len;
};

/* A directory moved away in the current batch, waiting for its MOVED_TO. */
struct moved {
    uint32_t watch_id;
    uint32_t cookie;
    struct wdir *dir; /* NULL once re-attached or freed */
};

struct sk_init_watches {
    struct watch *list;
    size_t n_watches, n_dirs;
    struct wdir *buckets[WD_BUCKETS];
    struct queued *q_head, *q_tail;
    size_t q_len, q_bytes;
    bool want_out; /* EPOLLOUT is on for the control socket */
    int sndbuf;    /* the control socket's send buffer, bytes */
    /* the current batch */
    struct pending *pend;
    size_t n_pend, cap_pend;
    struct moved *moved;
    size_t n_moved, cap_moved;
    struct wdir *cached; /* the node open as cached_fd (-1: could not be opened) */
    int cached_fd;
    bool resync; /* the kernel's queue overflowed: look for unwatched directories */
    char buf[READ_BUF_SIZE] __attribute__((aligned(__alignof__(struct inotify_event))));
};

/* ---- nodes ---- */

static struct wdir **bucket(struct sk_init_watches *s, int wd)
{
    return &s->buckets[(unsigned)wd % WD_BUCKETS];
}

static struct wdir *any_node(struct sk_init_watches *s, int wd)
{
    for (struct wdir *d = *bucket(s, wd); d != NULL; d = d->hnext)
        if (d->wd == wd)
            return d;
    return NULL;
}

static struct wdir *node_of(struct sk_init_watches *s, const struct watch *w, int wd)
{
    for (struct wdir *d = *bucket(s, wd); d != NULL; d = d->hnext)
        if (d->wd == wd && d->watch == w)
            return d;
    return NULL;
}

static struct watch *find_watch(struct sk_init_watches *s, uint32_t id)
{
    for (struct watch *w = s->list; w != NULL; w = w->next)
        if (w->id == id)
            return w;
    return NULL;
}

static struct wdir *child_named(const struct wdir *d, const char *name)
{
    for (struct wdir *c = d->child; c != NULL; c = c->sibling)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int node_depth(const struct wdir *d)
{
    int n = 0;
    for (; d->parent != NULL; d = d->parent)
        n++;
    return n;
}

static void uncache(struct sk_init_watches *s)
{
    sk_close(&s->cached_fd);
    s->cached = NULL;
}

static void unlink_child(struct wdir *d)
{
    if (d->parent == NULL)
        return;
    for (struct wdir **pp = &d->parent->child; *pp != NULL; pp = &(*pp)->sibling) {
        if (*pp == d) {
            *pp = d->sibling;
            break;
        }
    }
    d->parent = NULL;
    d->sibling = NULL;
}

static void attach(struct wdir *d, struct wdir *parent, const char *name)
{
    d->parent = parent;
    d->sibling = parent->child;
    parent->child = d;
    free(d->name);
    d->name = xstrdup(name);
}

/* free_node - forget d (already unlinked from its tree, childless). Its wd
 * leaves the kernel with its last node, unless the kernel dropped it
 * already (gone_wd). */
static void free_node(struct sk_init *init, struct wdir *d, int gone_wd)
{
    struct sk_init_watches *s = init->watches;
    for (struct wdir **pp = bucket(s, d->wd); *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    }
    s->n_dirs--;
    if (d == d->watch->root)
        d->watch->root = NULL;
    if (s->cached == d)
        uncache(s);
    for (size_t i = 0; i < s->n_moved; i++)
        if (s->moved[i].dir == d)
            s->moved[i].dir = NULL;
    if (d->wd != gone_wd && any_node(s, d->wd) == NULL)
        inotify_rm_watch(init->watch_fd, d->wd);
    free(d->name);
    free(d);
}

/* free_tree - unlink `top` from its parent and free it with everything
 * below it (iteratively: a tree re-parented by moves can be deep). */
static void free_tree(struct sk_init *init, struct wdir *top, int gone_wd)
{
    unlink_child(top);
    struct wdir *d = top;
    for (;;) {
        while (d->child != NULL)
            d = d->child;
        struct wdir *p = d->parent;
        bool last = d == top;
        if (!last)
            p->child = d->sibling; /* d is p's first child */
        free_node(init, d, gone_wd);
        if (last)
            return;
        d = p;
    }
}

/* node_path - d's path relative to its watch's directory ("" for the root)
 * into buf (cap bytes, NUL-terminated). Returns its length, PATH_DETACHED or
 * PATH_TOO_LONG. */
static long node_path(const struct wdir *d, char *buf, size_t cap)
{
    size_t pos = cap - 1;
    buf[pos] = '\0';
    const struct wdir *p = d;
    for (; p->parent != NULL; p = p->parent) {
        size_t n = strlen(p->name), need = n + (p != d ? 1 : 0);
        if (need > pos)
            return PATH_TOO_LONG;
        if (p != d)
            buf[--pos] = '/';
        pos -= n;
        memcpy(buf + pos, p->name, n);
    }
    if (p != p->watch->root)
        return PATH_DETACHED;
    size_t len = cap - 1 - pos;
    memmove(buf, buf + pos, len + 1);
    return (long)len;
}

/* entry_path - the path of `name` in d, like node_path; buf holds
 * SK_PROTO_PATH_MAX + 1 bytes. */
static long entry_path(const struct wdir *d, const char *name, char *buf)
{
    long n = node_path(d, buf, SK_PROTO_PATH_MAX + 1);
    if (n < 0)
        return n;
    size_t nl = strlen(name), len = (size_t)n + (n > 0 ? 1 : 0) + nl;
    if (len > SK_PROTO_PATH_MAX)
        return PATH_TOO_LONG;
    if (n > 0)
        buf[n++] = '/';
    memcpy(buf + n, name, nl + 1);
    return (long)len;
}

/* same_dir - fd is the directory d was added as; closes fd otherwise. */
static int same_dir(int fd, const struct wdir *d)
{
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_dev != d->dev || st.st_ino != d->ino))
        sk_close(&fd);
    return fd;
}

/* open_node - an O_PATH fd of d's directory, found again: its watch's
 * directory by the watch's path inside the root, then d's path beneath it
 * without following symlinks; each must still be the directory it was
 * added as. -1 when it is not there any more. (No fd of the watched
 * directory is kept: it would hold back its IN_DELETE_SELF.) */
static int open_node(const struct sk_init *init, const struct wdir *d)
{
    const struct watch *w = d->watch;
    char path[SK_PROTO_PATH_MAX + 1];
    long n = node_path(d, path, sizeof(path));
    if (n < 0 || w->root == NULL)
        return -1;
    int fd = same_dir(sk__init_openat2(init->root_fd, w->path, O_PATH | O_DIRECTORY, IN_ROOT), w->root);
    if (fd < 0 || n == 0)
        return fd;
    int sub = sk__init_openat2(fd, path, O_PATH | O_DIRECTORY, BENEATH_NO_LINKS);
    close(fd);
    return same_dir(sub, d);
}

/* node_fd - open_node, cached for the batch (most events of a batch are in
 * few directories). The fd stays owned by the cache. */
static int node_fd(struct sk_init *init, struct wdir *d)
{
    struct sk_init_watches *s = init->watches;
    if (s->cached != d) {
        uncache(s);
        s->cached = d;
        s->cached_fd = open_node(init, d);
    }
    return s->cached_fd;
}

static uint8_t type_of(mode_t mode)
{
    if (S_ISREG(mode))
        return 'f';
    if (S_ISDIR(mode))
        return 'd';
    if (S_ISLNK(mode))
        return 'l';
    return 'o';
}

/* entry_type - what `name` in d is now (a non-directory event): '?' when it
 * is gone, or has become a directory meanwhile. */
static uint8_t entry_type(struct sk_init *init, struct wdir *d, const char *name)
{
    int fd = node_fd(init, d);
    struct stat st;
    if (fd < 0 || fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
        return SK_PROTO_WATCH_TYPE_UNKNOWN;
    return type_of(st.st_mode);
}

/* ---- the batch's events ---- */

static void pend(struct sk_init_watches *s, const struct watch *w, uint8_t kind, uint8_t type, uint32_t cookie,
                 const char *path, size_t len)
{
    if (s->n_pend == s->cap_pend) {
        s->cap_pend = s->cap_pend ? s->cap_pend * 2 : 64;
        s->pend = xrealloc(s->pend, s->cap_pend * sizeof(*s->pend));
    }
    s->pend[s->n_pend++] = (struct pending){
        .watch_id = w->id,
        .kind = kind,
        .type = type,
        .cookie = cookie,
        .path = len ? xstrndup(path, len) : NULL,
        .len = (uint32_t)len,
    };
}

/* pend_overflow - an OVERFLOW for w, unless its latest event is one. */
static void pend_overflow(struct sk_init_watches *s, const struct watch *w)
{
    for (size_t i = s->n_pend; i-- > 0;) {
        if (s->pend[i].watch_id != w->id)
            continue;
        if (s->pend[i].kind == SK_PROTO_WATCH_OVERFLOW)
            return;
        break;
    }
    pend(s, w, SK_PROTO_WATCH_OVERFLOW, SK_PROTO_WATCH_TYPE_UNKNOWN, 0, NULL, 0);
}

/* pend_at - an event about `name` in d; type 0: look it up now. Nothing
 * when d hangs below a directory moved away; OVERFLOW when the path is too
 * long to report. */
static void pend_at(struct sk_init *init, struct wdir *d, const char *name, uint8_t kind, uint8_t type, uint32_t cookie)
{
    struct sk_init_watches *s = init->watches;
    char path[SK_PROTO_PATH_MAX + 1];
    long n = entry_path(d, name, path);
    if (n == PATH_TOO_LONG) {
        pend_overflow(s, d->watch);
        return;
    }
    if (n < 0)
        return;
    if (kind == SK_PROTO_WATCH_MODIFY) {
        /* Several modifications of one path in a batch are one modify, as
         * long as nothing else happened to that path in between. */
        size_t stop = s->n_pend > COALESCE_LOOKBACK ? s->n_pend - COALESCE_LOOKBACK : 0;
        for (size_t i = s->n_pend; i-- > stop;) {
            const struct pending *p = &s->pend[i];
            if (p->watch_id != d->watch->id || p->len != (uint32_t)n || memcmp(p->path, path, (size_t)n) != 0)
                continue;
            if (p->kind == SK_PROTO_WATCH_MODIFY)
                return;
            break;
        }
    }
    if (type == 0)
        type = entry_type(init, d, name);
    pend(s, d->watch, kind, type, cookie, path, (size_t)n);
}

/* ---- adding directories ---- */

/* add_node - watch the directory open as fd (any mode) as child `name` of
 * `parent` (NULL: the root) in w. Returns 1 and *out, 0 when w has this
 * directory already (a bind mount inside its own tree; not descended
 * into again), or < 0: ENOSPC at SK_INIT_WATCH_DIRS_MAX or at the kernel's
 * limit, inotify_add_watch's errors. */
static int add_node(struct sk_init *init, struct watch *w, struct wdir *parent, const char *name, int fd,
                    struct wdir **out, struct sk_error *err)
{
    struct sk_init_watches *s = init->watches;
    *out = NULL;
    if (s->n_dirs >= SK_INIT_WATCH_DIRS_MAX)
        return sk_error_setv(err, ENOSPC, "more than %d directories would be watched", SK_INIT_WATCH_DIRS_MAX);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sk_error_set(err, errno, "stat directory");
    /* The magic link of our own fd: the directory we resolved, whatever
     * happened to its path meanwhile. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(init->watch_fd, proc, WATCH_MASK);
    if (wd < 0) {
        if (errno == ENOSPC)
            return sk_error_setv(err, ENOSPC,
                                 "the kernel's inotify watch limit is reached (fs.inotify.max_user_watches)");
        return sk_error_set(err, errno, "inotify_add_watch");
    }
    if (node_of(s, w, wd) != NULL)
        return 0;
    struct wdir *d = xcalloc(1, sizeof(*d));
    d->watch = w;
    d->wd = wd;
    d->dev = st.st_dev;
    d->ino = st.st_ino;
    if (parent != NULL)
        attach(d, parent, name);
    d->hnext = *bucket(s, wd);
    *bucket(s, wd) = d;
    s->n_dirs++;
    *out = d;
    return 1;
}

static uint8_t dirent_type(int dir_fd, const struct dirent *de)
{
    switch (de->d_type) {
    case DT_REG: return 'f';
    case DT_DIR: return 'd';
    case DT_LNK: return 'l';
    case DT_UNKNOWN: break;
    default: return 'o';
    }
    struct stat st;
    if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return SK_PROTO_WATCH_TYPE_UNKNOWN;
    return type_of(st.st_mode);
}

/* walk - add every directory below d (open as fd, any mode; `depth` levels
 * below its watch's directory) to d's watch, opening each level beneath the
 * previous one without following symlinks. With `report`, every entry
 * found becomes a create event. Entries that vanish meanwhile are skipped. */
static int walk(struct sk_init *init, struct wdir *d, int fd, int depth, bool report, struct sk_error *err)
{
    int rfd = sk__init_openat2(fd, ".", O_RDONLY | O_DIRECTORY, BENEATH_NO_LINKS);
    if (rfd < 0)
        return sk_error_set(err, errno, "open directory '%s'", d->name ? d->name : ".");
    DIR *dir = fdopendir(rfd);
    if (dir == NULL) {
        int e = errno;
        close(rfd);
        return sk_error_set(err, e, "read directory '%s'", d->name ? d->name : ".");
    }
    int r = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            if (errno != 0)
                r = sk_error_set(err, errno, "read directory '%s'", d->name ? d->name : ".");
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        uint8_t type = dirent_type(rfd, de);
        if (report)
            pend_at(init, d, de->d_name, SK_PROTO_WATCH_CREATE, type, 0);
        if (type != 'd')
            continue;
        if (depth + 1 >= SK_INIT_TREE_DEPTH_MAX) {
            r = sk_error_setv(err, ELOOP, "directory tree deeper than %d levels", SK_INIT_TREE_DEPTH_MAX);
            break;
        }
        int sub = sk__init_openat2(rfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW, BENEATH_NO_LINKS);
        if (sub < 0) {
            if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
                continue; /* gone or replaced meanwhile; never follow what took its place */
            r = sk_error_set(err, errno, "open '%s'", de->d_name);
            break;
        }
        struct wdir *c;
        r = add_node(init, d->watch, d, de->d_name, sub, &c, err);
        if (r > 0)
            r = walk(init, c, sub, depth + 1, report, err);
        close(sub);
        if (r < 0)
            break;
    }
    closedir(dir);
    return r < 0 ? r : 0;
}

/* add_dir - a directory `name` appeared in d (created, or moved in from
 * outside the watch): watch it and all below it. What cannot be watched
 * costs the watch an OVERFLOW; what is gone already costs nothing (its
 * creation and removal are both reported by d). */
static void add_dir(struct sk_init *init, struct wdir *d, const char *name, bool report)
{
    struct sk_init_watches *s = init->watches;
    struct sk_error err = {0};
    int pfd = node_fd(init, d);
    if (pfd < 0)
        return;
    int sub = sk__init_openat2(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, BENEATH_NO_LINKS);
    if (sub < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            return;
        sk_error_set(&err, errno, "open");
    } else {
        struct wdir *c;
        int r = add_node(init, d->watch, d, name, sub, &c, &err);
        if (r > 0)
            r = walk(init, c, sub, node_depth(c), report, &err);
        close(sub);
        if (r >= 0)
            return;
    }
    sk_log_warn("watch %u: directory '%s': %s", d->watch->id, name, err.msg);
    pend_overflow(s, d->watch);
}

/* detach - the directory `name` of d moved away (its MOVED_TO may follow in
 * this batch): keep its nodes aside. */
static void detach(struct sk_init_watches *s, struct wdir *d, const char *name, uint32_t cookie)
{
    struct wdir *c = child_named(d, name);
    if (c == NULL)
        return;
    unlink_child(c);
    uncache(s);
    if (s->n_moved == s->cap_moved) {
        s->cap_moved = s->cap_moved ? s->cap_moved * 2 : 8;
        s->moved = xrealloc(s->moved, s->cap_moved * sizeof(*s->moved));
    }
    s->moved[s->n_moved++] = (struct moved){.watch_id = d->watch->id, .cookie = cookie, .dir = c};
}

/* reattach - the directory moved away with `cookie` arrived as `name` in
 * d: its nodes follow. False when it came from outside the watch. */
static bool reattach(struct sk_init_watches *s, struct wdir *d, const char *name, uint32_t cookie)
{
    for (size_t i = 0; i < s->n_moved; i++) {
        struct moved *mv = &s->moved[i];
        if (mv->dir == NULL || mv->watch_id != d->watch->id || mv->cookie != cookie)
            continue;
        attach(mv->dir, d, name);
        mv->dir = NULL;
        uncache(s);
        return true;
    }
    return false;
}

/* resync_node - after the kernel's queue overflowed: watch directories
 * below d that have no node (their IN_CREATE was lost), and drop nodes of
 * directories that are not where they were. */
static void resync_node(struct sk_init *init, struct wdir *d)
{
    struct sk_error err = {0};
    int fd = open_node(init, d);
    if (fd < 0) {
        if (d != d->watch->root)
            free_tree(init, d, -1);
        return;
    }
    struct wdir *old = d->child; /* new nodes go in front of these */
    int rfd = sk__init_openat2(fd, ".", O_RDONLY | O_DIRECTORY, BENEATH_NO_LINKS);
    close(fd);
    DIR *dir = rfd >= 0 ? fdopendir(rfd) : NULL;
    if (dir == NULL) {
        sk_close(&rfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || dirent_type(rfd, de) != 'd' ||
            child_named(d, de->d_name) != NULL)
            continue;
        int sub = sk__init_openat2(rfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW, BENEATH_NO_LINKS);
        if (sub < 0)
            continue;
        struct wdir *c;
        int r = add_node(init, d->watch, d, de->d_name, sub, &c, &err);
        if (r > 0)
            r = walk(init, c, sub, node_depth(c), false, &err);
        close(sub);
        if (r < 0)
            sk_log_warn("watch %u: directory '%s': %s", d->watch->id, de->d_name, err.msg);
    }
    closedir(dir);
    for (struct wdir *c = old, *next; c != NULL; c = next) {
        next = c->sibling;
        resync_node(init, c);
    }
}

/* ---- sending ---- */

static void set_out(struct sk_init *init, bool on)
{
    struct sk_init_watches *s = init->watches;
    if (s->want_out == on || init->ctl_fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = init->ctl_fd};
    if (epoll_ctl(init->ep_fd, EPOLL_CTL_MOD, init->ctl_fd, &ev) == 0)
        s->want_out = on;
}

static bool connected(const struct sk_init *init)
{
    return init->ctl_fd >= 0 && !init->conn_broken && !init->host_gone;
}

static void send_failed(struct sk_init *init, const struct sk_error *err)
{
    sk_log_info("control socket: %s", err->msg);
    /* The loop drops the connection (and with it every watch). */
    init->conn_broken = true;
    if (init->listen_fd < 0)
        init->host_gone = true;
}

/* room - watch events may fill half of the socket's send buffer: the
 * other half stays free for replies and EXITs, so that a flood of events
 * the host has not read yet never blocks pid 1 in a send. */
static bool room(const struct sk_init *init)
{
    int out = 0;
    if (init->watches->sndbuf <= 0 || ioctl(init->ctl_fd, SIOCOUTQ, &out) < 0)
        return true;
    return out < init->watches->sndbuf / 2;
}

/* push - send an encoded event now or behind those already waiting; false
 * when it had to be dropped because the queue is full. */
static bool push(struct sk_init *init, uint32_t watch_id, const uint8_t *msg, size_t len)
{
    struct sk_init_watches *s = init->watches;
    if (!connected(init))
        return true; /* nobody to tell; the watches go with the connection */
    if (s->q_head == NULL && room(init)) {
        struct sk_error err = {0};
        int r = sk_channel_send(init->ctl_fd, msg, len, NULL, 0, true, &err);
        if (r == 0)
            return true;
        if (r != -EAGAIN) {
            send_failed(init, &err);
            return true;
        }
    }
    if (s->q_len >= SK_INIT_WATCH_QUEUE_MAX || s->q_bytes + len > SK_INIT_WATCH_QUEUE_BYTES)
        return false;
    struct queued *q = xmalloc(sizeof(*q) + len);
    q->next = NULL;
    q->watch_id = watch_id;
    q->len = len;
    memcpy(q->msg, msg, len);
    if (s->q_tail != NULL)
        s->q_tail->next = q;
    else
        s->q_head = q;
    s->q_tail = q;
    s->q_len++;
    s->q_bytes += len;
    set_out(init, true);
    return true;
}

static bool push_event(struct sk_init *init, uint32_t watch_id, uint8_t kind, uint8_t type, uint32_t cookie,
                       const char *path, uint32_t len)
{
    struct sk_proto_msg m = {.type = SK_PROTO_WATCH_EVENT, .id = 0};
    m.u.watch_event.watch_id = watch_id;
    m.u.watch_event.kind = kind;
    m.u.watch_event.type = type;
    m.u.watch_event.cookie = cookie;
    m.u.watch_event.path = (struct sk_proto_str){path != NULL ? path : "", len};
    uint8_t buf[EVENT_MSG_MAX];
    size_t n;
    struct sk_error err = {0};
    if (sk_proto_encode(&m, buf, sizeof(buf), &n, &err) < 0) {
        sk_log_error("cannot encode a watch event: %s", err.msg);
        return true;
    }
    return push(init, watch_id, buf, n);
}

/* emit - send an event of w, after the OVERFLOW it owes; without room it
 * is dropped and w owes one. */
static void emit(struct sk_init *init, struct watch *w, const struct pending *p)
{
    if (w->lost) {
        if (!push_event(init, w->id, SK_PROTO_WATCH_OVERFLOW, SK_PROTO_WATCH_TYPE_UNKNOWN, 0, NULL, 0))
            return;
        w->lost = false;
        if (p->kind == SK_PROTO_WATCH_OVERFLOW)
            return;
    }
    if (!push_event(init, w->id, p->kind, p->type, p->cookie, p->path, p->len))
        w->lost = true;
}

static void purge_queue(struct sk_init *init, uint32_t watch_id)
{
    struct sk_init_watches *s = init->watches;
    struct queued **pp = &s->q_head;
    s->q_tail = NULL;
    while (*pp != NULL) {
        struct queued *q = *pp;
        if (q->watch_id == watch_id) {
            *pp = q->next;
            s->q_len--;
            s->q_bytes -= q->len;
            free(q);
        } else {
            s->q_tail = q;
            pp = &q->next;
        }
    }
    if (s->q_head == NULL)
        set_out(init, false);
}

void sk_init_watch_flush(struct sk_init *init)
{
    struct sk_init_watches *s = init->watches;
    if (s == NULL)
        return;
    while (s->q_head != NULL && connected(init) && room(init)) {
        struct queued *q = s->q_head;
        struct sk_error err = {0};
        int r = sk_channel_send(init->ctl_fd, q->msg, q->len, NULL, 0, true, &err);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            send_failed(init, &err);
            break;
        }
        s->q_head = q->next;
        if (s->q_head == NULL)
            s->q_tail = NULL;
        s->q_len--;
        s->q_bytes -= q->len;
        free(q);
    }
    if (s->q_head == NULL && connected(init)) {
        for (struct watch *w = s->list; w != NULL; w = w->next)
            if (w->lost && push_event(init, w->id, SK_PROTO_WATCH_OVERFLOW, SK_PROTO_WATCH_TYPE_UNKNOWN, 0, NULL, 0))
                w->lost = false;
    }
    set_out(init, s->q_head != NULL);
}

/* ---- reading ---- */

static void handle_node(struct sk_init *init, struct wdir *d, const struct inotify_event *ev)
{
    struct sk_init_watches *s = init->watches;
    struct watch *w = d->watch;
    bool isdir = (ev->mask & IN_ISDIR) != 0;
    if (ev->mask & IN_DELETE_SELF) {
        /* A subdirectory's removal is reported by its parent. */
        if (d == w->root)
            pend(s, w, SK_PROTO_WATCH_DELETE, 'd', 0, NULL, 0);
        return;
    }
    if (ev->len == 0 || ev->name[0] == '\0')
        return;
    const char *name = ev->name;
    if (ev->mask & IN_CREATE) {
        pend_at(init, d, name, SK_PROTO_WATCH_CREATE, isdir ? 'd' : 0, 0);
        if (isdir && w->recursive)
            add_dir(init, d, name, true);
    } else if (ev->mask & (IN_MODIFY | IN_CLOSE_WRITE)) {
        pend_at(init, d, name, SK_PROTO_WATCH_MODIFY, isdir ? 'd' : 0, 0);
    } else if (ev->mask & IN_DELETE) {
        pend_at(init, d, name, SK_PROTO_WATCH_DELETE, isdir ? 'd' : SK_PROTO_WATCH_TYPE_UNKNOWN, 0);
    } else if (ev->mask & IN_MOVED_FROM) {
        pend_at(init, d, name, SK_PROTO_WATCH_MOVE_FROM, isdir ? 'd' : SK_PROTO_WATCH_TYPE_UNKNOWN, ev->cookie);
        if (isdir && w->recursive)
            detach(s, d, name, ev->cookie);
    } else if (ev->mask & IN_MOVED_TO) {
        pend_at(init, d, name, SK_PROTO_WATCH_MOVE_TO, isdir ? 'd' : 0, ev->cookie);
        if (isdir && w->recursive && !reattach(s, d, name, ev->cookie))
            add_dir(init, d, name, false);
    }
}

static void handle(struct sk_init *init, const struct inotify_event *ev)
{
    struct sk_init_watches *s = init->watches;
    if (ev->mask & IN_Q_OVERFLOW) {
        for (struct watch *w = s->list; w != NULL; w = w->next)
            pend_overflow(s, w);
        s->resync = true;
        return;
    }
    if (ev->mask & IN_IGNORED) {
        /* The kernel dropped the wd: the directory is gone (or unmounted). */
        struct wdir *d;
        while ((d = any_node(s, ev->wd)) != NULL)
            free_tree(init, d, ev->wd);
        return;
    }
    /* At most one node per watch has this wd, and handling one adds nodes
     * but removes none with it. */
    struct wdir *nodes[SK_INIT_WATCHES_MAX];
    size_t n = 0;
    for (struct wdir *d = *bucket(s, ev->wd); d != NULL && n < SK_ARRAY_SIZE(nodes); d = d->hnext)
        if (d->wd == ev->wd)
            nodes[n++] = d;
    for (size_t i = 0; i < n; i++)
        handle_node(init, nodes[i], ev);
}

/* batch - handle the events of one read, then send them. */
static void batch(struct sk_init *init, size_t len)
{
    struct sk_init_watches *s = init->watches;
    for (size_t off = 0; off + sizeof(struct inotify_event) <= len;) {
        const struct inotify_event *ev = (const struct inotify_event *)(s->buf + off);
        off += sizeof(*ev) + ev->len;
        if (off > len)
            break;
        handle(init, ev);
    }
    /* Directories moved away without a MOVED_TO in this batch have left
     * their watch (one split across two batches is walked again). */
    for (size_t i = 0; i < s->n_moved; i++)
        if (s->moved[i].dir != NULL)
            free_tree(init, s->moved[i].dir, -1);
    s->n_moved = 0;
    uncache(s);
    for (size_t i = 0; i < s->n_pend; i++) {
        struct watch *w = find_watch(s, s->pend[i].watch_id);
        if (w != NULL)
            emit(init, w, &s->pend[i]);
        free(s->pend[i].path);
    }
    s->n_pend = 0;
    if (s->resync) {
        s->resync = false;
        for (struct watch *w = s->list; w != NULL; w = w->next)
            if (w->recursive && w->root != NULL)
                resync_node(init, w->root);
    }
}

void sk_init_watch_read(struct sk_init *init)
{
    for (int i = 0; i < READS_PER_CALL && init->watches != NULL; i++) {
        struct sk_init_watches *s = init->watches;
        ssize_t n = read(init->watch_fd, s->buf, sizeof(s->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN)
                sk_log_warn("read inotify: %s", strerror(errno));
            return;
        }
        batch(init, (size_t)n);
    }
}

/* ---- requests ---- */

static int ensure_state(struct sk_init *init, struct sk_error *err)
{
    if (init->watches != NULL)
        return 0;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE)
            return sk_error_set(err, EMFILE, "inotify_init1 (fs.inotify.max_user_instances or open files)");
        return sk_error_set(err, errno, "inotify_init1");
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(init->ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        close(fd);
        return sk_error_set(err, e, "epoll add inotify fd");
    }
    struct sk_init_watches *s = xcalloc(1, sizeof(*s));
    s->cached_fd = -1;
    socklen_t len = sizeof(s->sndbuf);
    if (getsockopt(init->ctl_fd, SOL_SOCKET, SO_SNDBUF, &s->sndbuf, &len) < 0)
        s->sndbuf = 0;
    init->watches = s;
    init->watch_fd = fd;
    return 0;
}

static uint32_t new_watch_id(struct sk_init *init)
{
    for (;;) {
        uint32_t id = init->next_watch_id++;
        if (init->next_watch_id == 0)
            init->next_watch_id = 1;
        if (id != 0 && find_watch(init->watches, id) == NULL)
            return id;
    }
}

/* watch_free - remove w: its nodes, its queued events; with the last
 * watch the inotify fd goes too. */
static void watch_free(struct sk_init *init, struct watch *w)
{
    struct sk_init_watches *s = init->watches;
    if (w->root != NULL)
        free_tree(init, w->root, -1);
    for (size_t i = 0; i < s->n_moved; i++)
        if (s->moved[i].dir != NULL && s->moved[i].dir->watch == w)
            free_tree(init, s->moved[i].dir, -1);
    for (struct watch **pp = &s->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    s->n_watches--;
    purge_queue(init, w->id);
    free(w->path);
    free(w);
    if (s->n_watches == 0)
        sk_init_watch_clear(init);
}

int sk_init_watch_add(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    char path[SK_PROTO_PATH_MAX + 1];
    int r = sk_proto_str_copy(m->u.watch_add.path, path, sizeof(path), err);
    if (r < 0)
        return r;
    if (init->watches != NULL && init->watches->n_watches >= SK_INIT_WATCHES_MAX)
        return sk_error_setv(err, ENOSPC, "watch '%s': too many watches (%d)", path, SK_INIT_WATCHES_MAX);
    _cleanup_close_ int fd = sk__init_openat2(init->root_fd, path, O_PATH | O_DIRECTORY, IN_ROOT);
    if (fd < 0)
        return sk_error_set(err, errno, "watch '%s'", path);
    r = ensure_state(init, err);
    if (r < 0)
        return sk_error_prefix(err, "watch '%s'", path);
    struct sk_init_watches *s = init->watches;
    struct watch *w = xcalloc(1, sizeof(*w));
    w->id = new_watch_id(init);
    w->recursive = m->u.watch_add.recursive;
    w->path = xstrdup(path);
    w->next = s->list;
    s->list = w;
    s->n_watches++;
    r = add_node(init, w, NULL, NULL, fd, &w->root, err);
    if (r >= 0 && w->recursive)
        r = walk(init, w->root, fd, 0, false, err);
    if (r < 0) {
        sk_error_prefix(err, "watch '%s'", path);
        watch_free(init, w);
        return r;
    }
    sk_log_debug("watch %u: '%s'%s", w->id, path, w->recursive ? ", recursive" : "");
    sk_init_reply_ok(init, m->id, w->id, -1);
    return 0;
}

int sk_init_watch_remove(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    uint32_t id = m->u.watch_remove.watch_id;
    struct watch *w = init->watches != NULL ? find_watch(init->watches, id) : NULL;
    if (w == NULL)
        return sk_error_setv(err, ENOENT, "no watch %u", id);
    watch_free(init, w);
    sk_log_debug("watch %u removed", id);
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}

void sk_init_watch_clear(struct sk_init *init)
{
    struct sk_init_watches *s = init->watches;
    if (s == NULL)
        return;
    set_out(init, false);
    for (size_t b = 0; b < WD_BUCKETS; b++) {
        while (s->buckets[b] != NULL) {
            struct wdir *d = s->buckets[b];
            s->buckets[b] = d->hnext;
            free(d->name);
            free(d);
        }
    }
    while (s->list != NULL) {
        struct watch *w = s->list;
        s->list = w->next;
        free(w->path);
        free(w);
    }
    while (s->q_head != NULL) {
        struct queued *q = s->q_head;
        s->q_head = q->next;
        free(q);
    }
    for (size_t i = 0; i < s->n_pend; i++)
        free(s->pend[i].path);
    free(s->pend);
    free(s->moved);
    sk_close(&s->cached_fd);
    epoll_ctl(init->ep_fd, EPOLL_CTL_DEL, init->watch_fd, NULL);
    sk_close(&init->watch_fd);
    free(s);
    init->watches = NULL;
}
