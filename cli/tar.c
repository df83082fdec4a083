/* tar.c - directory trees as tar streams for `skiff sandbox cp`. */
#include "tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define MAX_DEPTH 128
#define STEP_BYTES 65536 /* file data produced per step */

/* ---- careful local writes ---------------------------------------------------------- */

bool sk_tar_safe_rel(const char *p)
{
    if (p[0] == '\0' || p[0] == '/')
        return false;
    for (const char *s = p;;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n;
        if (*s == '\0')
            return true;
        s++; /* the '/'; a trailing one leaves an empty last part: refused */
    }
}

int sk_tar_open_dirs(int rootfd, const char *rel, bool leave_leaf, const char **leaf)
{
    _cleanup_free_ char *copy = xstrdup(rel);
    int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    char *save = NULL;
    char *comp = strtok_r(copy, "/", &save);
    while (fd >= 0 && comp != NULL) {
        char *next = strtok_r(NULL, "/", &save);
        if (next == NULL && leave_leaf) {
            *leaf = rel + (comp - copy);
            break;
        }
        if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
            sk_close(&fd);
            break;
        }
        /* O_NOFOLLOW: a symlink here is an error (ELOOP), never a detour */
        int sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        sk_close(&fd);
        errno = saved;
        fd = sub;
        comp = next;
    }
    return fd;
}

int sk_tar_tmpfile(int dirfd, char tmp[64])
{
    for (int i = 0; i < 100; i++) {
        char hex[17];
        if (sk_random_hex(hex, 8, NULL) < 0)
            return -1;
        snprintf(tmp, 64, ".skiff-cp-%s", hex);
        int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* ---- a local tree as a tar stream ---------------------------------------------- */

struct frame {
    DIR *d;
    char *rel; /* relative to the root; "" for the root */
};

struct sk_tar_src {
    struct archive *a;
    struct archive_entry *ent;
    char *root;
    char *buf; /* produced, not yet sent */
    size_t len, off, cap;
    struct frame stack[MAX_DEPTH + 1];
    int depth;
    int fd; /* the regular file being archived, or -1 */
    uint64_t remaining;
    char *cur; /* its name, for messages */
    bool closed;
    bool failed;
    struct sk_client_error err;
    unsigned skipped;
    char chunk[STEP_BYTES];
};

static la_ssize_t src_write(struct archive *a, void *ud, const void *data, size_t n)
{
    (void)a;
    struct sk_tar_src *s = ud;
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->buf = xrealloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    return (la_ssize_t)n;
}

static int src_fail(struct sk_tar_src *s, const char *what, const char *rel, int errnum)
{
    s->failed = true;
    sk_client_error_set(&s->err, SK_EXIT_ERROR, "%s '%s/%s': %s", what, s->root, rel,
                        errnum ? strerror(errnum) : archive_error_string(s->a));
    return -1;
}

static void set_header(struct sk_tar_src *s, const char *rel, const struct stat *st)
{
    archive_entry_clear(s->ent);
    archive_entry_set_pathname(s->ent, rel);
    archive_entry_set_filetype(s->ent, S_ISDIR(st->st_mode) ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(s->ent, st->st_mode & 0777);
    archive_entry_set_size(s->ent, S_ISREG(st->st_mode) ? st->st_size : 0);
    archive_entry_set_mtime(s->ent, st->st_mtim.tv_sec, 0);
}

/* src_file_step - the next piece of the current file; a file that shrank
 * meanwhile is padded with zeros, one that grew is cut at its size. */
static int src_file_step(struct sk_tar_src *s)
{
    char *chunk = s->chunk;
    size_t want = s->remaining < sizeof(s->chunk) ? (size_t)s->remaining : sizeof(s->chunk);
    ssize_t n = read(s->fd, chunk, want);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n < 0)
        return src_fail(s, "read", s->cur, errno);
    if (n == 0) {
        memset(chunk, 0, want);
        n = (ssize_t)want;
    }
    if (archive_write_data(s->a, chunk, (size_t)n) < 0)
        return src_fail(s, "archive", s->cur, 0);
    s->remaining -= (uint64_t)n;
    if (s->remaining == 0) {
        sk_close(&s->fd);
        free(s->cur);
        s->cur = NULL;
    }
    return 0;
}

/* src_step - produce the next bit of the archive: a piece of a file, an
 * entry's header, or its end. */
static int src_step(struct sk_tar_src *s)
{
    if (s->fd >= 0)
        return src_file_step(s);
    if (s->depth == 0) {
        if (archive_write_close(s->a) != ARCHIVE_OK)
            return src_fail(s, "finish the archive of", "", 0);
        s->closed = true;
        return 0;
    }
    struct frame *f = &s->stack[s->depth - 1];
    errno = 0;
    struct dirent *de = readdir(f->d);
    if (de == NULL) {
        if (errno != 0)
            return src_fail(s, "read directory", f->rel, errno);
        closedir(f->d);
        free(f->rel);
        s->depth--;
        return 0;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        return 0;
    _cleanup_free_ char *rel = f->rel[0] ? xasprintf("%s/%s", f->rel, de->d_name) : xstrdup(de->d_name);
    struct stat st;
    if (fstatat(dirfd(f->d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return src_fail(s, "stat", rel, errno);
    if (S_ISDIR(st.st_mode)) {
        if (s->depth > MAX_DEPTH)
            return src_fail(s, "archive", rel, ELOOP);
        int fd = openat(dirfd(f->d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (d == NULL) {
            int saved = errno;
            if (fd >= 0)
                close(fd);
            return src_fail(s, "open", rel, saved);
        }
        set_header(s, rel, &st);
        if (archive_write_header(s->a, s->ent) != ARCHIVE_OK) {
            closedir(d);
            return src_fail(s, "archive", rel, 0);
        }
        s->stack[s->depth++] = (struct frame){.d = d, .rel = steal_pointer(&rel)};
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "skiff: skipping '%s/%s': not a regular file or directory\n", s->root, rel);
        s->skipped++;
        return 0;
    }
    int fd = openat(dirfd(f->d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        return src_fail(s, "open", rel, saved);
    }
    set_header(s, rel, &st);
    if (archive_write_header(s->a, s->ent) != ARCHIVE_OK) {
        close(fd);
        return src_fail(s, "archive", rel, 0);
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    s->fd = fd;
    s->remaining = (uint64_t)st.st_size;
    s->cur = steal_pointer(&rel);
    return 0;
}

int sk_tar_src_new(const char *dir, struct sk_tar_src **out, struct sk_client_error *e)
{
    *out = NULL;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        return sk_client_error_set(e, SK_EXIT_ERROR, "open '%s': %s", dir, strerror(saved));
    }
    struct sk_tar_src *s = xcalloc(1, sizeof(*s));
    s->fd = -1;
    s->root = xstrdup(dir);
    s->stack[s->depth++] = (struct frame){.d = d, .rel = xstrdup("")};
    s->a = archive_write_new();
    s->ent = archive_entry_new();
    if (s->a == NULL || s->ent == NULL || archive_write_set_format_pax_restricted(s->a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(s->a, 0) != ARCHIVE_OK ||
        archive_write_open(s->a, s, NULL, src_write, NULL) != ARCHIVE_OK) {
        sk_tar_src_free(s);
        return sk_client_error_set(e, SK_EXIT_ERROR, "cannot set up a tar archive");
    }
    *out = s;
    return 0;
}

size_t sk_tar_src_read(char *buf, size_t size, size_t nmemb, void *ctx)
{
    struct sk_tar_src *s = ctx;
    while (s->off == s->len && !s->closed && !s->failed) {
        s->off = s->len = 0;
        src_step(s);
    }
    if (s->failed)
        return CURL_READFUNC_ABORT;
    size_t n = s->len - s->off;
    if (n > size * nmemb)
        n = size * nmemb;
    memcpy(buf, s->buf + s->off, n);
    s->off += n;
    return n;
}

const struct sk_client_error *sk_tar_src_error(const struct sk_tar_src *s)
{
    return s->failed ? &s->err : NULL;
}

unsigned sk_tar_src_skipped(const struct sk_tar_src *s)
{
    return s->skipped;
}

void sk_tar_src_free(struct sk_tar_src *s)
{
    if (s == NULL)
        return;
    if (s->a != NULL)
        archive_write_free(s->a); /* closes it first when needed */
    if (s->ent != NULL)
        archive_entry_free(s->ent);
    while (s->depth > 0) {
        s->depth--;
        closedir(s->stack[s->depth].d);
        free(s->stack[s->depth].rel);
    }
    sk_close(&s->fd);
    free(s->cur);
    free(s->root);
    free(s->buf);
    free(s);
}

/* ---- a tar stream into a local tree ---------------------------------------------- */

struct reader {
    sk_tar_read_fn fn;
    void *ctx;
    struct sk_client_error *e;
    bool failed;
};

static la_ssize_t extract_read(struct archive *a, void *ud, const void **data)
{
    struct reader *r = ud;
    ssize_t n = r->fn(r->ctx, data, r->e);
    if (n < 0) {
        r->failed = true;
        archive_set_error(a, EIO, "the download failed");
        return -1;
    }
    return (la_ssize_t)n;
}

/* extract_file - the current entry's data into the file `name` below rootfd. */
static int extract_file(struct archive *a, int rootfd, const char *name, const char *shown, mode_t mode,
                        uint64_t *bytes, struct sk_client_error *e)
{
    const char *leaf = NULL;
    _cleanup_close_ int dirfd = sk_tar_open_dirs(rootfd, name, true, &leaf);
    if (dirfd < 0)
        return sk_client_error_set(e, SK_EXIT_ERROR, "create the directory of '%s/%s': %s", shown, name,
                                   strerror(errno));
    char tmp[64];
    _cleanup_close_ int fd = sk_tar_tmpfile(dirfd, tmp);
    if (fd < 0)
        return sk_client_error_set(e, SK_EXIT_ERROR, "create '%s/%s': %s", shown, name, strerror(errno));
    char buf[65536];
    int ret = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            ret = -2; /* the archive's error: the caller says it */
            break;
        }
        if (sk_write_full(fd, buf, (size_t)n) < 0) {
            ret = sk_client_error_set(e, SK_EXIT_ERROR, "write '%s/%s': %s", shown, name, strerror(errno));
            break;
        }
        *bytes += (uint64_t)n;
    }
    if (ret == 0 && fchmod(fd, mode & 0777) < 0)
        ret = sk_client_error_set(e, SK_EXIT_ERROR, "chmod '%s/%s': %s", shown, name, strerror(errno));
    if (ret == 0 && close(steal_fd(&fd)) < 0)
        ret = sk_client_error_set(e, SK_EXIT_ERROR, "write '%s/%s': %s", shown, name, strerror(errno));
    if (ret == 0 && renameat(dirfd, tmp, dirfd, leaf) < 0)
        ret = sk_client_error_set(e, SK_EXIT_ERROR, "rename into '%s/%s': %s", shown, name, strerror(errno));
    if (ret != 0)
        unlinkat(dirfd, tmp, 0);
    return ret;
}

int sk_tar_extract(int rootfd, const char *shown, sk_tar_read_fn read_fn, void *ctx, struct sk_tar_stats *st,
                   struct sk_client_error *e)
{
    memset(st, 0, sizeof(*st));
    struct reader r = {.fn = read_fn, .ctx = ctx, .e = e};
    struct archive *a = archive_read_new();
    if (a == NULL)
        return sk_client_error_set(e, SK_EXIT_ERROR, "cannot set up a tar reader");
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open(a, &r, NULL, extract_read, NULL) != ARCHIVE_OK) {
        int ret = r.failed ? -1
                           : sk_client_error_set(e, SK_EXIT_ERROR, "the archive of '%s' is unreadable: %s", shown,
                                                 archive_error_string(a));
        archive_read_free(a);
        return ret;
    }
    int ret = 0;
    struct archive_entry *ent;
    int ar;
    while ((ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *raw = archive_entry_pathname(ent);
        _cleanup_free_ char *name = xstrdup(raw ? raw : "");
        char *p = name;
        while (p[0] == '.' && p[1] == '/')
            p += 2;
        size_t n = strlen(p);
        while (n > 0 && p[n - 1] == '/')
            p[--n] = '\0';
        if (n == 0 || strcmp(p, ".") == 0)
            continue; /* the root itself */
        if (!sk_tar_safe_rel(p)) {
            ret = sk_client_error_set(e, SK_EXIT_ERROR,
                                      "the archive from the sandbox names '%s'; nothing outside "
                                      "'%s' is written, so the copy stops here",
                                      raw, shown);
            break;
        }
        mode_t mode = archive_entry_perm(ent);
        switch (archive_entry_filetype(ent)) {
        case AE_IFDIR: {
            int fd = sk_tar_open_dirs(rootfd, p, false, NULL);
            if (fd < 0) {
                ret = sk_client_error_set(e, SK_EXIT_ERROR, "mkdir '%s/%s': %s", shown, p, strerror(errno));
                break;
            }
            fchmod(fd, (mode & 0777) | 0700); /* we still write into it */
            close(fd);
            st->dirs++;
            break;
        }
        case AE_IFREG:
            ret = extract_file(a, rootfd, p, shown, mode, &st->bytes, e);
            if (ret == -2)
                ret = r.failed ? -1
                               : sk_client_error_set(e, SK_EXIT_ERROR, "the archive of '%s' is damaged: %s", shown,
                                                     archive_error_string(a));
            else if (ret == 0)
                st->files++;
            break;
        default: fprintf(stderr, "skiff: skipping '%s/%s': not a regular file or directory\n", shown, p); st->skipped++;
        }
        if (ret < 0)
            break;
    }
    if (ret == 0 && ar != ARCHIVE_EOF)
        ret = r.failed ? -1
                       : sk_client_error_set(e, SK_EXIT_ERROR, "the archive of '%s' is damaged: %s", shown,
                                             archive_error_string(a));
    archive_read_free(a);
    return ret;
}
