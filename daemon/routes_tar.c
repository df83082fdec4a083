/* routes_tar.c - bulk file transfer as tar archives (libarchive), on top of
 * skiff-init's file operations (never by exec'ing tar inside the sandbox):
 *
 *   PUT /v1/sandboxes/{id}/files/tar?path=DIR
 *       The body is a tar archive (ustar, pax or GNU; plain or compressed
 *       with gzip, bzip2, xz or zstd, detected by libarchive), extracted
 *       below DIR, which is created (mkdir -p) when missing. 201 with
 *       {"path", "files", "dirs", "bytes", "skipped": [{"path", "type"}],
 *       "skipped_count"}.
 *   GET /v1/sandboxes/{id}/files/tar?path=DIR[&gzip=1]
 *       DIR's tree as a streamed tar (pax where ustar does not suffice),
 *       gzip-compressed with gzip=1. Names are relative to DIR. The
 *       header X-Skiff-Skipped counts entries left out (see below).
 *
 * What an uploaded archive may contain, and why:
 *   - Regular files are written through skiff-init's atomic write (a temp
 *     file renamed over the target on commit), so an entry is either
 *     complete or absent; a missing parent directory is created.
 *   - Directories are created with mkdir -p; existing ones are kept as they
 *     are. A new directory gets at least owner rwx so the entries that
 *     follow it can be written.
 *   - setuid and setgid bits are stripped from every mode: an upload must
 *     not plant privilege-raising binaries, whoever later runs them.
 *   - Refused with 400 invalid_argument naming the entry: an absolute name
 *     or one with a ".." component (the archive must stay below DIR; skiff-
 *     init would keep even those inside the sandbox's root, but they would
 *     land outside DIR), a name whose full path exceeds 4096 bytes, hard
 *     links, character and block devices, FIFOs, sockets and unknown types,
 *     and more than TAR_MAX_ENTRIES entries (413 too_large). The check runs
 *     before anything of the entry is written, so nothing of the refused
 *     entry remains; entries extracted before it stay (extraction is not a
 *     transaction; the answer names where it stopped). A damaged or
 *     truncated archive and a client that goes away mid-entry also leave
 *     nothing of the entry being written (its temp file is aborted).
 *   - Symlinks are skipped and listed in "skipped": skiff-init has no
 *     operation that creates (or, for downloads, reads) a symlink. Making
 *     one would be safe - skiff-init resolves every path inside the
 *     sandbox's root, so a link cannot point the host anywhere - and only
 *     this one place changes when such an operation exists.
 *   Symlinks that already exist inside DIR are followed inside the root, as
 *   for PUT /files: they can redirect an entry elsewhere inside the
 *   sandbox, never out of it.
 *
 * A download contains directories and regular files. Symlinks (see above)
 * and other types are left out and counted in X-Skiff-Skipped. A file that
 * disappears meanwhile is left out too; one that shrinks is padded with
 * zeros, one that grows is cut at the size it had when it was opened.
 *
 * Memory stays flat in both directions: a download holds one listing of
 * DIR and at most one step of libarchive's output (a header or a 64 KiB
 * piece of one file); an upload holds no body at all (see "the bridge").
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "routes.h"
#include "routes_common.h"
#include "runtime/agent.h"
#include "sched/sandboxes.h"

#if defined(__SANITIZE_ADDRESS__)
#define TAR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAR_ASAN 1
#endif
#endif
#ifdef TAR_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define TAR_PATH_MAX 4096          /* a whole path inside the sandbox, as skiff-init takes it */
#define TAR_MAX_ENTRIES 1000000    /* entries of one upload */
#define TAR_SKIPPED_LISTED 100     /* skipped entries named in the answer */
#define TAR_NAME_SHOWN 200         /* bytes of an entry's name quoted in a message */
#define TAR_TRAILING_MAX (1 << 20) /* body bytes accepted after the end of the archive */
#define TAR_CHUNK (64 * 1024)      /* a download reads files in pieces of this size */
#define TAR_STACK_SIZE (1024 * 1024)

/* agent_again - the sandbox's agent for one synchronous call, looked up anew
 * each time: between two loop callbacks the sandbox may have ended. */
static struct sk_agent *agent_again(struct sk_daemon *d, const char *id, struct sk_error *err)
{
    struct sk_agent *a = sk_sched_agent(d->sched, id, err);
    if (a == NULL && err != NULL)
        sk_error_setv(err, EPIPE, "sandbox '%s' is no longer running", id);
    return a;
}

/* ============================== upload =============================== */

/* The bridge. The HTTP layer pushes the body into a sink, piece by piece,
 * on the loop thread; libarchive pulls its input through a read callback
 * and cannot be paused half-way through a header or a block. The two meet
 * in a coroutine: libarchive runs on a stack of its own (ucontext), and
 * its read callback, when it needs input, switches back to the sink, which
 * returns; the next sink call switches into the coroutine again with the
 * next piece. So the extraction advances exactly as far as the body has
 * arrived, and the loop never waits for the client.
 *
 * Why not the alternatives: a worker thread would have to send every
 * skiff-init call back to the loop (the agent belongs to the loop and is
 * not thread-safe) and wait for its answer, with locks, wake-ups and a
 * cancellation protocol on both sides; buffering "enough" of the body
 * before each libarchive call cannot work, since how much libarchive reads
 * ahead (a pax header, a compressor's block) is not known in advance. The
 * coroutine runs only inside the sink or close callback, on the loop
 * thread, so it needs no locks; libarchive reads MHD's buffer in place
 * (no copy, no buffer of our own), and backpressure comes for free: the
 * sink returns after the piece has been written into the sandbox, and MHD
 * reads no more from the socket until it has.
 *
 * Invariants: the coroutine is entered only from co_resume (sink, close)
 * and leaves only by co_suspend (from the read callback, when it needs the
 * next piece) or by ending. It ends at the archive's end, at the first
 * error, or on cancellation: the close callback resumes it with
 * `cancelled` set, the read callback then fails, and every path of the
 * extraction unwinds, aborting the file being written. Its stack is 1 MiB
 * of address space per upload, of which only the touched pages (a few
 * dozen KiB) become resident. */

struct tar_put {
    struct sk_daemon *d;
    char *sandbox_id;
    char *dir;
    struct archive *ar;

    /* the coroutine */
    ucontext_t loop_uc, co_uc;
    void *stack;
    bool co_started, co_running, co_done;
    const char *piece; /* the body piece the sink offers, valid while the sink runs */
    size_t piece_len;
    bool piece_fresh; /* not yet handed to libarchive */
    bool eof;         /* the body is complete */
    bool cancelled;   /* the request is gone */
#ifdef TAR_ASAN
    void *fake_stack;
    const void *loop_stack;
    size_t loop_stack_size;
#endif

    /* the file being written (a temp file until commit) */
    bool writing;
    uint32_t handle;
    int fd;

    /* the outcome */
    struct sk_error err; /* err.code != 0: failed */
    uint64_t files, dirs, bytes, entries, n_skipped;
    json_t *skipped;
    uint64_t trailing; /* body bytes after the archive's end */
};

static void co_suspend(struct tar_put *t)
{
    t->co_running = false;
#ifdef TAR_ASAN
    __sanitizer_start_switch_fiber(&t->fake_stack, t->loop_stack, t->loop_stack_size);
#endif
    swapcontext(&t->co_uc, &t->loop_uc);
#ifdef TAR_ASAN
    __sanitizer_finish_switch_fiber(t->fake_stack, &t->loop_stack, &t->loop_stack_size);
#endif
    t->co_running = true;
}

static void co_resume(struct tar_put *t)
{
    if (t->co_done)
        return;
    t->co_started = true;
#ifdef TAR_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, t->stack, TAR_STACK_SIZE);
#endif
    swapcontext(&t->loop_uc, &t->co_uc);
#ifdef TAR_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* put_read - libarchive's read callback, on the coroutine: the next piece
 * of the body. Asking for the next piece means libarchive is done with
 * the previous one, so the sink may now return it to MHD. */
static la_ssize_t put_read(struct archive *a, void *ctx, const void **buf)
{
    struct tar_put *t = ctx;
    if (!t->co_running) {
        /* libarchive reading outside the coroutine (it never should) */
        archive_set_error(a, EIO, "read outside the upload");
        return ARCHIVE_FATAL;
    }
    for (;;) {
        if (t->cancelled) {
            archive_set_error(a, ECANCELED, "upload cut short");
            return ARCHIVE_FATAL;
        }
        if (t->piece_fresh) {
            t->piece_fresh = false;
            *buf = t->piece;
            return (la_ssize_t)t->piece_len;
        }
        if (t->eof)
            return 0;
        co_suspend(t);
    }
}

static const char *shown(const char *name)
{
    return name != NULL ? name : "";
}

/* put_fail - record why extraction stopped at entry `name` (NULL: not at
 * an entry). Returns -1. */
static int put_fail(struct tar_put *t, int code, const char *name, const char *what)
{
    if (t->cancelled)
        code = ECANCELED;
    size_t len = strlen(shown(name));
    if (name != NULL)
        sk_error_setv(&t->err, code, "entry '%.*s%s': %s", TAR_NAME_SHOWN, name, len > TAR_NAME_SHOWN ? "..." : "",
                      what);
    else
        sk_error_setv(&t->err, code, "%s", what);
    return -1;
}

/* put_fail_archive - libarchive's own error (damaged input, a read error
 * or cancellation). */
static int put_fail_archive(struct tar_put *t, const char *name)
{
    const char *msg = archive_error_string(t->ar);
    char what[SK_ERROR_MSG_MAX];
    snprintf(what, sizeof(what), "bad archive: %s", msg != NULL ? msg : "unknown error");
    return put_fail(t, EINVAL, name, what);
}

static void put_abort_write(struct tar_put *t)
{
    if (!t->writing)
        return;
    t->writing = false;
    sk_close(&t->fd);
    struct sk_agent *a = agent_again(t->d, t->sandbox_id, NULL);
    if (a != NULL)
        sk_agent_write_abort(a, t->handle, NULL);
}

/* clean_name - an entry's name as a path below DIR: empty, "." components
 * and repeated or trailing slashes dropped. -EPERM for an absolute name or a
 * ".." component, -ENAMETOOLONG when it does not fit in `size`. */
static int clean_name(const char *name, char *out, size_t size)
{
    if (name[0] == '/')
        return -EPERM;
    size_t o = 0;
    for (const char *p = name; *p != '\0';) {
        if (*p == '/') {
            p++;
            continue;
        }
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -EPERM;
        if (!(n == 1 && p[0] == '.')) {
            if (o + (o > 0) + n >= size)
                return -ENAMETOOLONG;
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = end;
    }
    out[o] = '\0';
    return 0;
}

static void put_skip(struct tar_put *t, const char *rel, const char *type)
{
    if (t->n_skipped++ < TAR_SKIPPED_LISTED) {
        json_t *o = json_object();
        json_object_set_new(o, "path", sk_json_string_lossy(rel, strlen(rel)));
        json_object_set_new(o, "type", json_string(type));
        json_array_append_new(t->skipped, o);
    }
}

/* put_file - write one regular file through skiff-init's atomic write. */
static int put_file(struct tar_put *t, struct archive_entry *e, const char *name, const char *path, uint32_t mode)
{
    struct sk_error err = {0};
    struct sk_agent *a = agent_again(t->d, t->sandbox_id, &err);
    int r = a != NULL ? sk_agent_write_begin(a, path, mode, &t->fd, &t->handle, &err) : -1;
    if (r < 0 && err.code == ENOENT) {
        /* the archive did not list the parent directory first */
        char parent[TAR_PATH_MAX + 1];
        snprintf(parent, sizeof(parent), "%s", path);
        char *slash = strrchr(parent, '/');
        if (slash != NULL && slash != parent) {
            *slash = '\0';
            sk_error_clear(&err);
            r = sk_agent_mkdir(a, parent, 0755, true, &err);
            if (r >= 0)
                r = sk_agent_write_begin(a, path, mode, &t->fd, &t->handle, &err);
        }
    }
    if (r < 0)
        return put_fail(t, err.code, name, err.msg);
    t->writing = true;

    uint64_t end = 0;
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t off;
        r = archive_read_data_block(t->ar, &buf, &size, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            put_abort_write(t);
            return put_fail_archive(t, name);
        }
        if (off < 0 || (uint64_t)off > (UINT64_C(1) << 62)) {
            put_abort_write(t);
            return put_fail(t, EINVAL, name, "bad data offset");
        }
        /* pwrite at the block's offset: sparse entries come with holes */
        for (size_t done = 0; done < size;) {
            ssize_t n = pwrite(t->fd, (const char *)buf + done, size - done, (off_t)((uint64_t)off + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int code = errno;
                put_abort_write(t);
                return put_fail(t, code, name, strerror(code));
            }
            done += (size_t)n;
        }
        if ((uint64_t)off + size > end)
            end = (uint64_t)off + size;
        t->bytes += size;
    }
    /* a hole at the end of a sparse entry */
    if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > end &&
        ftruncate(t->fd, archive_entry_size(e)) < 0) {
        int code = errno;
        put_abort_write(t);
        return put_fail(t, code, name, strerror(code));
    }
    sk_close(&t->fd);
    t->writing = false;
    a = agent_again(t->d, t->sandbox_id, &err);
    if (a == NULL || sk_agent_write_commit(a, t->handle, &err) < 0) /* consumes the handle */
        return put_fail(t, err.code, name, err.msg);
    t->files++;
    return 0;
}

/* put_entry - check one entry and extract it. */
static int put_entry(struct tar_put *t, struct archive_entry *e)
{
    const char *name = archive_entry_pathname_utf8(e);
    if (name == NULL)
        name = archive_entry_pathname(e);
    if (name == NULL || name[0] == '\0')
        return put_fail(t, EINVAL, "", "entry without a name");

    char rel[TAR_PATH_MAX + 1];
    int r = clean_name(name, rel, sizeof(rel));
    if (r == -EPERM)
        return put_fail(t, EINVAL, name,
                        name[0] == '/' ? "absolute paths are not allowed" : "'..' is not allowed in paths");
    size_t dlen = strlen(t->dir);
    bool slash = dlen > 0 && t->dir[dlen - 1] == '/';
    if (r < 0 || dlen + !slash + strlen(rel) > TAR_PATH_MAX) {
        char what[64];
        snprintf(what, sizeof(what), "path is longer than %d bytes", TAR_PATH_MAX);
        return put_fail(t, ENAMETOOLONG, name, what);
    }
    if (archive_entry_hardlink(e) != NULL)
        return put_fail(t, EINVAL, name, "hard links are not supported");

    /* setuid and setgid never survive an upload */
    uint32_t mode = (uint32_t)archive_entry_perm(e) & 07777 & ~(uint32_t)(S_ISUID | S_ISGID);
    char path[TAR_PATH_MAX + 2];
    snprintf(path, sizeof(path), "%s%s%s", t->dir, slash || rel[0] == '\0' ? "" : "/", rel);
    struct sk_error err = {0};
    switch (archive_entry_filetype(e)) {
    case AE_IFDIR: {
        if (rel[0] == '\0')
            return 0; /* "." is DIR itself, created already */
        struct sk_agent *a = agent_again(t->d, t->sandbox_id, &err);
        if (a == NULL || sk_agent_mkdir(a, path, mode | 0700, true, &err) < 0)
            return put_fail(t, err.code, name, err.msg);
        t->dirs++;
        return 0;
    }
    case AE_IFREG:
        if (rel[0] == '\0')
            return put_fail(t, EINVAL, name, "a file cannot replace the target directory");
        return put_file(t, e, name, path, mode);
    case AE_IFLNK:
        /* see the top of the file: no symlink operation in skiff-init yet */
        put_skip(t, rel, "symlink");
        return 0;
    case AE_IFCHR:
    case AE_IFBLK: return put_fail(t, EINVAL, name, "device nodes are not allowed");
    case AE_IFIFO: return put_fail(t, EINVAL, name, "FIFOs are not allowed");
    case AE_IFSOCK: return put_fail(t, EINVAL, name, "sockets are not allowed");
    default: return put_fail(t, EINVAL, name, "unsupported entry type");
    }
}

/* put_extract - the coroutine's work: the whole archive, entry by entry. */
static void put_extract(struct tar_put *t)
{
    if (archive_read_open(t->ar, t, NULL, put_read, NULL) != ARCHIVE_OK) {
        put_fail_archive(t, NULL);
        return;
    }
    for (;;) {
        struct archive_entry *e = NULL;
        int r = archive_read_next_header(t->ar, &e);
        if (r == ARCHIVE_EOF)
            return;
        if (r < ARCHIVE_WARN) {
            put_fail_archive(t, NULL);
            return;
        }
        if (++t->entries > TAR_MAX_ENTRIES) {
            put_fail(t, E2BIG, NULL, "the archive has too many entries");
            return;
        }
        if (put_entry(t, e) < 0)
            return;
    }
}

static void co_main(unsigned int hi, unsigned int lo)
{
    struct tar_put *t = (struct tar_put *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
#ifdef TAR_ASAN
    __sanitizer_finish_switch_fiber(NULL, &t->loop_stack, &t->loop_stack_size);
#endif
    t->co_running = true;
    put_extract(t);
    put_abort_write(t); /* nothing of an unfinished entry remains */
    t->co_running = false;
    t->co_done = true;
#ifdef TAR_ASAN
    __sanitizer_start_switch_fiber(NULL, t->loop_stack, t->loop_stack_size);
#endif
    /* returning continues at uc_link: the loop, in co_resume */
}

static void put_free(struct tar_put *t)
{
    if (t == NULL)
        return;
    if (t->co_started && !t->co_done) {
        /* unwind the coroutine: the read callback now fails */
        t->cancelled = true;
        co_resume(t);
        if (!t->co_done)
            sk_log_error("tar upload into sandbox '%s' did not unwind", t->sandbox_id);
    }
    if (t->co_done || !t->co_started) {
        put_abort_write(t);
        if (t->stack != NULL)
            munmap(t->stack, TAR_STACK_SIZE);
    } /* else: leak the stack rather than free one still in use */
    if (t->ar != NULL)
        archive_read_free(t->ar);
    sk_close(&t->fd);
    json_decref(t->skipped);
    free(t->sandbox_id);
    free(t->dir);
    free(t);
}

static void put_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    put_free(ctx);
}

static void put_answer(struct sk_http_req *req, struct tar_put *t)
{
    if (t->err.code != 0) {
        if (t->err.code == ECANCELED)
            return;               /* nobody to answer */
        if (t->err.code == EPIPE) /* the sandbox (its skiff-init) ended meanwhile */
            sk_http_reply_api_error(req, SK_API_FAILED_PRECONDITION, "%s", t->err.msg);
        else
            sk_http_reply_error(req, &t->err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "path", sk_json_string_lossy(t->dir, strlen(t->dir)));
    json_object_set_new(o, "files", json_integer((json_int_t)t->files));
    json_object_set_new(o, "dirs", json_integer((json_int_t)t->dirs));
    json_object_set_new(o, "bytes", json_integer((json_int_t)t->bytes));
    json_object_set_new(o, "skipped", json_incref(t->skipped));
    json_object_set_new(o, "skipped_count", json_integer((json_int_t)t->n_skipped));
    sk_http_reply_json(req, 201, o);
}

static ssize_t put_sink(struct sk_http_req *req, const char *data, size_t len, void *ctx)
{
    struct tar_put *t = ctx;
    if (data != NULL && len == 0)
        return 0;
    if (!t->co_done) {
        t->piece = data;
        t->piece_len = len;
        t->piece_fresh = data != NULL;
        t->eof = data == NULL;
        co_resume(t);
        /* MHD's buffer is not ours once we return */
        t->piece = NULL;
        t->piece_fresh = false;
        if (t->co_done && (t->err.code != 0 || data == NULL))
            put_answer(req, t);
        else if (!t->co_done && data == NULL)
            sk_http_reply_api_error(req, SK_API_INTERNAL, "tar extraction did not finish at the end of the body");
        return data != NULL ? (ssize_t)len : 0;
    }
    /* the archive has ended: what follows is padding, or garbage */
    if (data == NULL) {
        put_answer(req, t);
        return 0;
    }
    t->trailing += len;
    if (t->trailing > TAR_TRAILING_MAX)
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "more than %d bytes after the end of the archive",
                                TAR_TRAILING_MAX);
    return (ssize_t)len;
}

/* put_new - the upload's state with its coroutine ready to start; NULL
 * (err set) when libarchive or the stack cannot be set up. */
static struct tar_put *put_new(struct sk_daemon *d, char *sandbox_id, const char *dir, struct sk_error *err)
{
    struct tar_put *t = xcalloc(1, sizeof(*t));
    t->d = d;
    t->sandbox_id = sandbox_id;
    t->dir = xstrdup(dir);
    t->fd = -1;
    t->skipped = json_array();
    t->ar = archive_read_new();
    if (t->ar == NULL) {
        sk_error_setv(err, ENOMEM, "libarchive: out of memory");
        goto fail;
    }
    /* Only filters libarchive runs itself: with a library missing, these
     * would fall back to running an external program, never wanted for
     * untrusted input in the daemon. */
    if (archive_read_support_filter_gzip(t->ar) != ARCHIVE_OK ||
        archive_read_support_filter_bzip2(t->ar) != ARCHIVE_OK || archive_read_support_filter_xz(t->ar) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(t->ar) != ARCHIVE_OK || archive_read_support_format_tar(t->ar) != ARCHIVE_OK ||
        archive_read_support_format_gnutar(t->ar) != ARCHIVE_OK) {
        sk_error_setv(err, ENOTSUP, "libarchive: %s", shown(archive_error_string(t->ar)));
        goto fail;
    }
    /* The coroutine's stack, with a guard page below it. */
    void *stack = mmap(NULL, TAR_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        sk_error_set(err, errno, "mmap upload stack");
        goto fail;
    }
    t->stack = stack;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (mprotect(stack, page, PROT_NONE) < 0 || getcontext(&t->co_uc) < 0) {
        sk_error_set(err, errno, "set up upload stack");
        goto fail;
    }
    t->co_uc.uc_stack.ss_sp = (char *)stack + page;
    t->co_uc.uc_stack.ss_size = TAR_STACK_SIZE - page;
    t->co_uc.uc_link = &t->loop_uc;
    uintptr_t p = (uintptr_t)t;
    makecontext(&t->co_uc, (void (*)(void))co_main, 2, (unsigned int)(p >> 32), (unsigned int)(p & 0xffffffffu));
    return t;
fail:
    put_free(t);
    return NULL;
}

void sk_route_files_tar_put(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *dir = NULL;
    char *id = NULL;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, TAR_PATH_MAX, &dir, &id);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    if (sk_agent_mkdir(a, dir, 0755, true, &err) < 0) {
        free(id);
        sk_http_reply_error(req, &err);
        return;
    }
    struct tar_put *t = put_new(d, id, dir, &err);
    if (t == NULL) {
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_on_close(req, put_closed, t);
    sk_http_body_sink(req, put_sink, t);
}

/* ============================= download ============================== */

/* The producer runs libarchive's writer step by step: when the client can
 * take bytes and none are pending, it writes one header or one TAR_CHUNK
 * piece of the current file; libarchive's write callback appends what it
 * emits to `out`, which the producer then hands out. */

struct tar_get {
    struct sk_daemon *d;
    char *sandbox_id;
    char *dir;
    struct sk_file_entry *ents;
    size_t n, next;
    struct archive *aw;
    struct archive_entry *ae;
    int fd;        /* the file being archived */
    uint64_t left; /* its bytes still to write */
    char *chunk;
    char *out;
    size_t out_len, out_pos, out_cap;
    bool finished;
};

static la_ssize_t get_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    (void)a;
    struct tar_get *g = ctx;
    if (g->out_len + len > g->out_cap) {
        g->out_cap = g->out_len + len > 2 * g->out_cap ? g->out_len + len : 2 * g->out_cap;
        g->out = xrealloc(g->out, g->out_cap);
    }
    memcpy(g->out + g->out_len, buf, len);
    g->out_len += len;
    return (la_ssize_t)len;
}

static void get_free(struct tar_get *g)
{
    if (g == NULL)
        return;
    if (g->aw != NULL)
        archive_write_free(g->aw);
    if (g->ae != NULL)
        archive_entry_free(g->ae);
    sk_close(&g->fd);
    sk_file_entries_free(g->ents, g->n);
    free(g->chunk);
    free(g->out);
    free(g->sandbox_id);
    free(g->dir);
    free(g);
}

static void get_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    get_free(ctx);
}

static int get_fail_archive(struct tar_get *g, const char *what, struct sk_error *err)
{
    return sk_error_setv(err, EIO, "%s: %s", what, shown(archive_error_string(g->aw)));
}

/* get_header - start entry `e`: a directory, or a regular file whose data
 * follows (g->fd, g->left). Other types and vanished files are skipped. */
static int get_header(struct tar_get *g, const struct sk_file_entry *e, struct sk_error *err)
{
    archive_entry_clear(g->ae);
    archive_entry_set_pathname(g->ae, e->path);
    archive_entry_set_perm(g->ae, (mode_t)(e->st.mode & 07777));
    archive_entry_set_mtime(g->ae, (time_t)(e->st.mtime_ns / 1000000000), 0);
    archive_entry_set_uid(g->ae, e->st.uid);
    archive_entry_set_gid(g->ae, e->st.gid);
    if (e->st.type == 'd') {
        archive_entry_set_filetype(g->ae, AE_IFDIR);
        archive_entry_set_size(g->ae, 0);
    } else if (e->st.type == 'f') {
        char path[TAR_PATH_MAX * 2 + 2];
        size_t dlen = strlen(g->dir);
        snprintf(path, sizeof(path), "%s%s%s", g->dir, dlen > 0 && g->dir[dlen - 1] == '/' ? "" : "/", e->path);
        struct sk_agent *a = agent_again(g->d, g->sandbox_id, err);
        if (a == NULL)
            return -1;
        struct sk_error oerr = {0};
        if (sk_agent_open_read(a, path, &g->fd, &oerr) < 0) {
            if (oerr.code == ENOENT || oerr.code == EISDIR || oerr.code == EINVAL)
                return 0; /* gone or replaced since the listing */
            *err = oerr;
            return -1;
        }
        struct stat st;
        if (fstat(g->fd, &st) < 0)
            return sk_error_set(err, errno, "stat '%s'", path);
        g->left = (uint64_t)st.st_size;
        archive_entry_set_filetype(g->ae, AE_IFREG);
        archive_entry_set_size(g->ae, st.st_size);
    } else {
        return 0; /* counted in X-Skiff-Skipped */
    }
    if (archive_write_header(g->aw, g->ae) < ARCHIVE_WARN)
        return get_fail_archive(g, "write header", err);
    if (g->fd >= 0 && g->left == 0) {
        sk_close(&g->fd);
        if (archive_write_finish_entry(g->aw) < ARCHIVE_WARN)
            return get_fail_archive(g, "finish entry", err);
    }
    return 0;
}

/* get_step - one step of the archive: a piece of the current file, the
 * next entry's header, or the archive's end. */
static int get_step(struct tar_get *g, struct sk_error *err)
{
    if (g->fd >= 0) {
        size_t want = g->left < TAR_CHUNK ? (size_t)g->left : TAR_CHUNK;
        ssize_t n;
        do
            n = read(g->fd, g->chunk, want);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return sk_error_set(err, errno, "read");
        if (n == 0) {
            g->left = 0; /* it shrank: libarchive pads the entry with zeros */
        } else {
            if (archive_write_data(g->aw, g->chunk, (size_t)n) != n)
                return get_fail_archive(g, "write data", err);
            g->left -= (uint64_t)n;
        }
        if (g->left == 0) {
            sk_close(&g->fd);
            if (archive_write_finish_entry(g->aw) < ARCHIVE_WARN)
                return get_fail_archive(g, "finish entry", err);
        }
        return 0;
    }
    if (g->next < g->n)
        return get_header(g, &g->ents[g->next++], err);
    if (archive_write_close(g->aw) != ARCHIVE_OK)
        return get_fail_archive(g, "close", err);
    g->finished = true;
    return 0;
}

static ssize_t get_produce(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx)
{
    (void)req;
    (void)pos;
    struct tar_get *g = ctx;
    while (g->out_pos == g->out_len) {
        g->out_pos = g->out_len = 0;
        if (g->finished)
            return SK_HTTP_STREAM_END;
        struct sk_error err = {0};
        if (get_step(g, &err) < 0) {
            /* the status is sent already: cut the body short */
            sk_log_warn("tar download of '%s' in sandbox '%s' cut short: %s", g->dir, g->sandbox_id, err.msg);
            return SK_HTTP_STREAM_ERROR;
        }
    }
    size_t n = g->out_len - g->out_pos < max ? g->out_len - g->out_pos : max;
    memcpy(buf, g->out + g->out_pos, n);
    g->out_pos += n;
    return (ssize_t)n;
}

void sk_route_files_tar_get(struct sk_daemon *d, struct sk_http_req *req)
{
    int64_t gzip = 0;
    if (sk_http_query_int(req, "gzip", 0, 1, 0, &gzip) < 0)
        return;
    const char *dir = NULL;
    char *id = NULL;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, TAR_PATH_MAX, &dir, &id);
    if (a == NULL)
        return;
    struct tar_get *g = xcalloc(1, sizeof(*g));
    g->d = d;
    g->sandbox_id = id;
    g->dir = xstrdup(dir);
    g->fd = -1;
    struct sk_error err = {0};
    if (sk_agent_list(a, dir, true, &g->ents, &g->n, &err) < 0) {
        get_free(g);
        sk_http_reply_error(req, &err);
        return;
    }
    g->chunk = xmalloc(TAR_CHUNK);
    g->ae = archive_entry_new();
    g->aw = archive_write_new();
    if (g->ae == NULL || g->aw == NULL || archive_write_set_format_pax_restricted(g->aw) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(g->aw, 1) != ARCHIVE_OK ||
        (gzip && archive_write_add_filter_gzip(g->aw) != ARCHIVE_OK) ||
        archive_write_open(g->aw, g, NULL, get_write, NULL) != ARCHIVE_OK) {
        sk_http_reply_api_error(req, SK_API_INTERNAL, "libarchive: %s",
                                g->aw ? shown(archive_error_string(g->aw)) : "out of memory");
        get_free(g);
        return;
    }
    uint64_t skipped = 0;
    for (size_t i = 0; i < g->n; i++)
        skipped += g->ents[i].st.type != 'd' && g->ents[i].st.type != 'f';
    char hdr[32];
    snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)skipped);
    sk_http_set_header(req, "X-Skiff-Skipped", hdr);
    sk_http_on_close(req, get_closed, g);
    sk_http_reply_stream(req, 200, gzip ? "application/gzip" : "application/x-tar", get_produce, g);
}
