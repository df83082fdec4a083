/* Bulk file transfer as tar (PUT and GET /v1/sandboxes/{id}/files/tar)
 * against the real build/skiffd: 1,000 small files in one request, checked
 * file by file; the download compared with the original by GNU tar and
 * diff; gzip both ways; hostile entries refused by name without a trace
 * outside DIR; a 200 MB upload with the daemon's memory flat; a client that
 * leaves mid-upload leaving no partial file. */
#include <archive.h>
#include <archive_entry.h>
#include <sys/sysmacros.h>

#include "skiffd_test.h"

static void start(struct skiffd *s)
{
    make_data_dir(s);
    skiffd_start(s);
}

/* api - request with the admin token; fails the test unless `want`. */
static void api(const struct skiffd *s, const char *method, const char *path, const char *body, int want,
                struct resp *r)
{
    request(s, method, path, s->token, body, r);
    if (r->status != want)
        FAIL("%s %s: status %d, want %d: %.*s", method, path, r->status, want,
             (int)(r->body_len > 400 ? 400 : r->body_len), r->body ? r->body : "");
}

static long long jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        FAIL("'%s' is not an integer", key);
    return (long long)json_integer_value(v);
}

static void create_box(const struct skiffd *s, char *id, size_t size)
{
    struct resp r;
    api(s, "POST", "/v1/sandboxes", "{}", 201, &r);
    snprintf(id, size, "%s", json_string_value(json_object_get(r.json, "id")));
    resp_free(&r);
}

/* send_head - a request head for a body of `len` bytes. */
static void send_head(int fd, const char *method, const char *path, const char *token, const char *type, size_t len)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     method, path, token, type, len);
    send_all(fd, head, (size_t)n);
}

/* put_tar - PUT the archive in `data` into DIR of sandbox id. */
static void put_tar(const struct skiffd *s, const char *id, const char *dir, const char *data, size_t len,
                    struct resp *r)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=%s", id, dir);
    int fd = connect_to(s, NULL);
    if (fd < 0)
        FAIL("connect: %s", strerror(errno));
    send_head(fd, "PUT", path, s->token, "application/x-tar", len);
    send_all(fd, data, len);
    if (read_response(fd, r, 60) < 0)
        FAIL("PUT %s: no response", path);
    close(fd);
}

static char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    struct sk_error err;
    if (sk_read_file_at(AT_FDCWD, path, (size_t)1 << 28, &data, len, &err) < 0)
        FAIL("read '%s': %s", path, err.msg);
    return data;
}

static void spit(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || sk_write_all(fd, data, len) != (ssize_t)len)
        FAIL("write '%s': %s", path, strerror(errno));
    close(fd);
}

static void run_ok(const char *const argv[])
{
    struct sk_test_output o;
    if (sk_test_run(argv, NULL, NULL, 60, &o) < 0)
        FAIL("cannot run %s", argv[0]);
    if (o.exit_code != 0)
        FAIL("%s %s exited %d: %s%s", argv[0], argv[1], o.exit_code, o.out ? o.out : "", o.err ? o.err : "");
    sk_test_output_free(&o);
}

static char *temp_dir(const char *tag)
{
    char *d = xasprintf("/tmp/skiff-tar-%s-XXXXXX", tag);
    if (mkdtemp(d) == NULL)
        FAIL("mkdtemp: %s", strerror(errno));
    return d;
}

/* ---- the 1,000-file tree ----------------------------------------------------------- */

#define TREE_DIRS 10
#define TREE_SUBDIRS 10
#define TREE_FILES 10
#define TREE_N (TREE_DIRS * TREE_SUBDIRS * TREE_FILES)

/* tree_file - contents of file i (0..TREE_N-1): 0 to 4,000 bytes, distinct. */
static size_t tree_file(int i, char *buf)
{
    size_t len = (size_t)((i * 397) % 4001);
    uint32_t x = 2166136261u ^ (uint32_t)i;
    for (size_t k = 0; k < len; k++) {
        x = x * 1103515245u + 12345u;
        buf[k] = (char)(x >> 16);
    }
    return len;
}

static void tree_rel(int i, char *out, size_t size)
{
    snprintf(out, size, "d%d/s%d/f%d.bin", i / (TREE_SUBDIRS * TREE_FILES), (i / TREE_FILES) % TREE_SUBDIRS,
             i % TREE_FILES);
}

/* make_tree - write the tree under root; returns its total file bytes. */
static uint64_t make_tree(const char *root)
{
    uint64_t total = 0;
    char buf[4096], rel[64], path[PATH_MAX];
    for (int i = 0; i < TREE_N; i++) {
        tree_rel(i, rel, sizeof(rel));
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        *strrchr(path, '/') = '\0';
        struct sk_error err;
        if (sk_mkdir_p(path, 0755, &err) < 0)
            FAIL("mkdir '%s': %s", path, err.msg);
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        size_t len = tree_file(i, buf);
        spit(path, buf, len);
        if (i == 7 && chmod(path, 0640) < 0)
            FAIL("chmod: %s", strerror(errno));
        total += len;
    }
    return total;
}

/* tree_tar - the tree as a tar made by GNU tar (gzip: tar -z). */
static char *tree_tar(const char *root, bool gzip, size_t *len)
{
    char out[PATH_MAX];
    snprintf(out, sizeof(out), "%s.tar", root);
    const char *argv[] = {"/bin/tar", "-C", root, gzip ? "-czf" : "-cf", out, ".", NULL};
    run_ok(argv);
    char *data = slurp(out, len);
    unlink(out);
    return data;
}

/* check_tree - every file of the tree in the sandbox, byte for byte, and
 * nothing else below dir. */
static void check_tree(const struct skiffd *s, const char *id, const char *dir)
{
    char buf[4096], rel[64], q[512];
    for (int i = 0; i < TREE_N; i++) {
        tree_rel(i, rel, sizeof(rel));
        snprintf(q, sizeof(q), "/v1/sandboxes/%s/files?path=%s/%s", id, dir, rel);
        struct resp r;
        api(s, "GET", q, NULL, 200, &r);
        size_t len = tree_file(i, buf);
        if (r.body_len != len || memcmp(r.body, buf, len) != 0)
            FAIL("'%s': %zu bytes differ from the %zu uploaded", rel, r.body_len, len);
        resp_free(&r);
    }
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/list?path=%s&recursive=1", id, dir);
    struct resp r;
    api(s, "GET", q, NULL, 200, &r);
    json_t *ents = json_object_get(r.json, "entries");
    size_t files = 0, dirs = 0, other = 0, i;
    json_t *e;
    json_array_foreach(ents, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        if (strcmp(type, "file") == 0)
            files++;
        else if (strcmp(type, "directory") == 0)
            dirs++;
        else
            other++;
    }
    ASSERT_EQ_INT(files, TREE_N);
    ASSERT_EQ_INT(dirs, TREE_DIRS + TREE_DIRS * TREE_SUBDIRS);
    ASSERT_EQ_INT(other, 0);
    resp_free(&r);
}

/* 1,000 small files in nested directories arrive in one request, each one
 * byte-exact, and the upload's speed is reported. */
TEST_TIMEOUT(upload_thousand_small_files, 180)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, id, sizeof(id));
    _cleanup_free_ char *root = temp_dir("src");
    uint64_t total = make_tree(root);
    size_t len;
    _cleanup_free_ char *tar = tree_tar(root, false, &len);

    struct resp r;
    double t0 = now_ms();
    put_tar(&s, id, "/work/up", tar, len, &r);
    double ms = now_ms() - t0;
    if (r.status != 201)
        FAIL("upload: %d %s", r.status, r.body);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "path")), "/work/up");
    ASSERT_EQ_INT(jint(r.json, "files"), TREE_N);
    ASSERT_EQ_INT(jint(r.json, "dirs"), TREE_DIRS + TREE_DIRS * TREE_SUBDIRS);
    ASSERT_EQ_INT(jint(r.json, "bytes"), total);
    ASSERT_EQ_INT(jint(r.json, "skipped_count"), 0);
    resp_free(&r);
    printf("    upload: %d files, %zu tar bytes (%llu file bytes) in %.1f ms: %.1f MB/s, %.0f files/s\n", TREE_N, len,
           (unsigned long long)total, ms, (double)len / 1e6 / (ms / 1e3), TREE_N / (ms / 1e3));

    check_tree(&s, id, "/work/up");
    /* mode bits travel (0640 on file 7) */
    char rel[64], q[512];
    tree_rel(7, rel, sizeof(rel));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=/work/up/%s", id, rel);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(jint(r.json, "mode"), 0640);
    resp_free(&r);
    sk_remove_tree(root, NULL);
    skiffd_finish(&s);
}

/* get_tar - GET the tree below dir as a tar into file `out`. */
static void get_tar(const struct skiffd *s, const char *id, const char *dir, bool gzip, const char *out)
{
    char q[512];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/tar?path=%s%s", id, dir, gzip ? "&gzip=1" : "");
    struct resp r;
    api(s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(resp_header(&r, "Content-Type"), gzip ? "application/gzip" : "application/x-tar");
    ASSERT_EQ_STR(resp_header(&r, "X-Skiff-Skipped"), "0");
    ASSERT_GT_INT(r.body_len, 1024);
    spit(out, r.body, r.body_len);
    resp_free(&r);
}

/* The downloaded tree, unpacked by GNU tar, is the uploaded one; plain and
 * gzip-compressed (gzip also on the way up). */
TEST_TIMEOUT(download_matches_original_plain_and_gzip, 180)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, id, sizeof(id));
    _cleanup_free_ char *root = temp_dir("src");
    make_tree(root);
    size_t len;
    _cleanup_free_ char *tgz = tree_tar(root, true, &len);
    ASSERT_TRUE(len > 2 && (unsigned char)tgz[0] == 0x1f && (unsigned char)tgz[1] == 0x8b);
    struct resp r;
    put_tar(&s, id, "/srv/tree", tgz, len, &r);
    if (r.status != 201)
        FAIL("gzip upload: %d %s", r.status, r.body);
    ASSERT_EQ_INT(jint(r.json, "files"), TREE_N);
    resp_free(&r);
    check_tree(&s, id, "/srv/tree");

    for (int gz = 0; gz < 2; gz++) {
        _cleanup_free_ char *dst = temp_dir("dst");
        char file[PATH_MAX];
        snprintf(file, sizeof(file), "%s.tar", dst);
        get_tar(&s, id, "/srv/tree", gz == 1, file);
        const char *untar[] = {"/bin/tar", "-C", dst, gz ? "-xzf" : "-xf", file, NULL};
        run_ok(untar);
        const char *diff[] = {"/usr/bin/diff", "-r", root, dst, NULL};
        run_ok(diff);
        char rel[64], p[PATH_MAX];
        tree_rel(7, rel, sizeof(rel));
        snprintf(p, sizeof(p), "%s/%s", dst, rel);
        struct stat st;
        ASSERT_EQ_INT(stat(p, &st), 0);
        ASSERT_EQ_INT(st.st_mode & 07777, 0640);
        unlink(file);
        sk_remove_tree(dst, NULL);
    }
    /* not a directory / not there: an answer before any byte of tar */
    char q[512];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/tar?path=/srv/nope", id);
    api(&s, "GET", q, NULL, 404, &r);
    resp_free(&r);
    sk_remove_tree(root, NULL);
    skiffd_finish(&s);
}

/* ---- archives made entry by entry --------------------------------------------------- */

struct membuf {
    char *data;
    size_t len, cap;
};

static la_ssize_t membuf_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    (void)a;
    struct membuf *m = ctx;
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->data = xrealloc(m->data, m->cap);
    }
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    return (la_ssize_t)len;
}

static struct archive *tar_new(struct membuf *m)
{
    memset(m, 0, sizeof(*m));
    struct archive *a = archive_write_new();
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open(a, m, NULL, membuf_write, NULL) != ARCHIVE_OK)
        FAIL("libarchive: %s", archive_error_string(a));
    return a;
}

/* tar_add - one entry: type AE_IFREG (with `data`), AE_IFDIR, AE_IFLNK or
 * AE_IFCHR/AE_IFIFO (target: the symlink's); hardlink: a hard link to it. */
static void tar_add(struct archive *a, const char *name, unsigned type, unsigned mode, const char *data,
                    const char *target, const char *hardlink)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_mtime(e, 1700000000, 0);
    size_t len = data ? strlen(data) : 0;
    archive_entry_set_size(e, (la_int64_t)len);
    if (target)
        archive_entry_set_symlink(e, target);
    if (hardlink) {
        archive_entry_set_hardlink(e, hardlink);
        archive_entry_set_size(e, 0);
        len = 0;
    }
    if (type == AE_IFCHR)
        archive_entry_set_rdev(e, makedev(1, 3));
    if (archive_write_header(a, e) < ARCHIVE_WARN)
        FAIL("write header '%s': %s", name, archive_error_string(a));
    if (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
        FAIL("write data '%s': %s", name, archive_error_string(a));
    archive_entry_free(e);
}

static void tar_end(struct archive *a)
{
    if (archive_write_close(a) != ARCHIVE_OK)
        FAIL("close: %s", archive_error_string(a));
    archive_write_free(a);
}

static int stat_status(const struct skiffd *s, const char *id, const char *path)
{
    char q[8192];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=%s&follow=0", id, path);
    struct resp r;
    request(s, "GET", q, s->token, NULL, &r);
    int status = r.status;
    resp_free(&r);
    return status;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* list_names - the sorted paths of a recursive listing, one per line. */
static char *list_names(const struct skiffd *s, const char *id, const char *dir)
{
    char q[512];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/list?path=%s&recursive=1", id, dir);
    struct resp r;
    api(s, "GET", q, NULL, 200, &r);
    json_t *ents = json_object_get(r.json, "entries");
    size_t n = json_array_size(ents);
    const char **paths = xcalloc(n + 1, sizeof(*paths));
    for (size_t i = 0; i < n; i++)
        paths[i] = json_string_value(json_object_get(json_array_get(ents, i), "path"));
    qsort(paths, n, sizeof(*paths), cmp_str);
    char *out = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        char *next = xasprintf("%s%s\n", out, paths[i]);
        free(out);
        out = next;
    }
    free(paths);
    resp_free(&r);
    return out;
}

/* Each hostile entry gets 400 invalid_argument naming it; the entry before
 * it stays, nothing of it or after it is written, nothing appears outside
 * DIR in the sandbox nor anywhere on the host. */
TEST_TIMEOUT(hostile_entries_refused_by_name, 120)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, id, sizeof(id));
    struct resp r;
    char abs_name[128], esc_name[128], host_esc[160];
    snprintf(abs_name, sizeof(abs_name), "/tmp/skiff-tar-abs-%d", (int)getpid());
    snprintf(esc_name, sizeof(esc_name), "../escape-%d", (int)getpid());
    snprintf(host_esc, sizeof(host_esc), "/work/escape-%d", (int)getpid());
    static const struct {
        unsigned type;
        const char *what;
    } kinds[] = {
        {AE_IFREG, "'..' is not allowed"},          {AE_IFREG, "absolute paths are not allowed"},
        {AE_IFREG, "hard links are not supported"}, {AE_IFCHR, "device nodes are not allowed"},
        {AE_IFIFO, "FIFOs are not allowed"},
    };
    for (size_t k = 0; k < SK_ARRAY_SIZE(kinds); k++) {
        const char *bad = k == 0 ? esc_name : k == 1 ? abs_name : k == 2 ? "hl" : k == 3 ? "dev0" : "fifo0";
        char ok[32], after[32];
        snprintf(ok, sizeof(ok), "ok-%zu.txt", k);
        snprintf(after, sizeof(after), "after-%zu.txt", k);
        struct membuf m;
        struct archive *a = tar_new(&m);
        tar_add(a, ok, AE_IFREG, 0644, "fine\n", NULL, NULL);
        tar_add(a, bad, kinds[k].type, 0644, kinds[k].type == AE_IFREG && k != 2 ? "evil\n" : NULL, NULL,
                k == 2 ? ok : NULL);
        tar_add(a, after, AE_IFREG, 0644, "never\n", NULL, NULL);
        tar_end(a);
        put_tar(&s, id, "/work/up", m.data, m.len, &r);
        free(m.data);
        if (r.status != 400)
            FAIL("entry '%s': status %d: %s", bad, r.status, r.body);
        ASSERT_EQ_STR(err_code(&r), "invalid_argument");
        char named[160];
        snprintf(named, sizeof(named), "entry '%s'", bad);
        ASSERT_CONTAINS(err_message(&r), named);
        ASSERT_CONTAINS(err_message(&r), kinds[k].what);
        resp_free(&r);
        char p[256];
        snprintf(p, sizeof(p), "/work/up/%s", ok);
        ASSERT_EQ_INT(stat_status(&s, id, p), 200); /* earlier entries stay */
        snprintf(p, sizeof(p), "/work/up/%s", after);
        ASSERT_EQ_INT(stat_status(&s, id, p), 404);
        if (k >= 2) {
            snprintf(p, sizeof(p), "/work/up/%s", bad);
            ASSERT_EQ_INT(stat_status(&s, id, p), 404);
        }
    }
    /* in the sandbox: exactly the five ok files under /work, no temp file */
    _cleanup_free_ char *names = list_names(&s, id, "/work");
    ASSERT_EQ_STR(names, "up\nup/ok-0.txt\nup/ok-1.txt\nup/ok-2.txt\nup/ok-3.txt\nup/ok-4.txt\n");
    ASSERT_EQ_INT(stat_status(&s, id, abs_name), 404);
    ASSERT_EQ_INT(stat_status(&s, id, "/up/ok-0.txt"), 404);
    /* on the host: nothing */
    struct stat st;
    ASSERT_TRUE(lstat(abs_name, &st) < 0 && errno == ENOENT);
    ASSERT_TRUE(lstat(host_esc, &st) < 0 && errno == ENOENT);
    skiffd_finish(&s);
}

/* Symlinks are skipped and reported (skiff-init cannot create them yet);
 * setuid and setgid bits are stripped; "./" prefixes are harmless. */
TEST(symlinks_skipped_setuid_stripped)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, id, sizeof(id));
    struct membuf m;
    struct archive *a = tar_new(&m);
    tar_add(a, "./", AE_IFDIR, 0755, NULL, NULL, NULL);
    tar_add(a, "./bin/", AE_IFDIR, 02755, NULL, NULL, NULL);
    tar_add(a, "./bin/tool", AE_IFREG, 06755, "#!/bin/sh\n", NULL, NULL);
    tar_add(a, "./bin/link", AE_IFLNK, 0777, NULL, "/etc/passwd", NULL);
    tar_end(a);
    struct resp r;
    put_tar(&s, id, "/opt/x", m.data, m.len, &r);
    free(m.data);
    if (r.status != 201)
        FAIL("upload: %d %s", r.status, r.body);
    ASSERT_EQ_INT(jint(r.json, "files"), 1);
    ASSERT_EQ_INT(jint(r.json, "dirs"), 1);
    ASSERT_EQ_INT(jint(r.json, "skipped_count"), 1);
    json_t *sk = json_array_get(json_object_get(r.json, "skipped"), 0);
    ASSERT_EQ_STR(json_string_value(json_object_get(sk, "path")), "bin/link");
    ASSERT_EQ_STR(json_string_value(json_object_get(sk, "type")), "symlink");
    resp_free(&r);
    char q[256];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=/opt/x/bin/tool", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(jint(r.json, "mode"), 0755);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=/opt/x/bin", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(jint(r.json, "mode") & 06000, 0);
    resp_free(&r);
    ASSERT_EQ_INT(stat_status(&s, id, "/opt/x/bin/link"), 404);
    skiffd_finish(&s);
}

/* A path over 4096 bytes, a damaged archive and a body that is no archive
 * are refused with 400; nothing is written. */
TEST(oversized_path_and_garbage_refused)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, id, sizeof(id));
    char longname[5001];
    for (size_t i = 0; i < 5000; i++)
        longname[i] = i % 100 == 99 ? '/' : 'a';
    longname[5000] = '\0';
    struct membuf m;
    struct archive *a = tar_new(&m);
    tar_add(a, longname, AE_IFREG, 0644, "x", NULL, NULL);
    tar_end(a);
    struct resp r;
    put_tar(&s, id, "/work/long", m.data, m.len, &r);
    if (r.status != 400)
        FAIL("long path: %d %s", r.status, r.body);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    ASSERT_CONTAINS(err_message(&r), "entry 'aaaaaaaa");
    ASSERT_CONTAINS(err_message(&r), "longer than 4096 bytes");
    resp_free(&r);
    free(m.data);
    /* an archive cut in the middle of its data */
    a = tar_new(&m);
    char big[20000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tar_add(a, "big.txt", AE_IFREG, 0644, big, NULL, NULL);
    tar_end(a);
    put_tar(&s, id, "/work/long", m.data, 512 + 8192, &r);
    free(m.data);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    ASSERT_CONTAINS(err_message(&r), "big.txt");
    resp_free(&r);
    static const char garbage[] = "this is not a tar archive, not even close; it is plain text.";
    put_tar(&s, id, "/work/long", garbage, sizeof(garbage), &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    _cleanup_free_ char *names = list_names(&s, id, "/work/long");
    ASSERT_EQ_STR(names, "");
    skiffd_finish(&s);
}

/* ---- big uploads ---------------------------------------------------------------- */

static long proc_kb(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_free_ char *text = read_text(path);
    const char *p = text ? strstr(text, field) : NULL;
    if (p == NULL)
        FAIL("no %s in %s", field, path);
    return atol(p + strlen(field) + 1);
}

struct sock_sink {
    int fd;
    pid_t daemon;
    uint64_t sent, next_sample;
    long rss_max_kb;
};

static la_ssize_t sock_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    (void)a;
    struct sock_sink *k = ctx;
    send_all(k->fd, buf, len);
    k->sent += len;
    if (k->sent >= k->next_sample) {
        long rss = proc_kb(k->daemon, "VmRSS");
        if (rss > k->rss_max_kb)
            k->rss_max_kb = rss;
        k->next_sample += 4 << 20;
    }
    return (la_ssize_t)len;
}

#define BIG_FILES 4
#define BIG_FILE_SIZE (50u << 20)

/* 200 MB streamed into a sandbox: the daemon's resident memory does not
 * grow with it (sampled every 4 MB, and its peak). */
TEST_TIMEOUT(upload_200mb_memory_flat, 300)
{
    struct skiffd s;
    start(&s);
    char id[64];
    create_box(&s, id, sizeof(id));
    /* warm up: libarchive, zlib and the first upload's allocations */
    struct membuf m;
    struct archive *a = tar_new(&m);
    tar_add(a, "warm.txt", AE_IFREG, 0644, "warm\n", NULL, NULL);
    tar_end(a);
    struct resp r;
    put_tar(&s, id, "/big", m.data, m.len, &r);
    free(m.data);
    ASSERT_EQ_INT(r.status, 201);
    resp_free(&r);
    long rss0 = proc_kb(s.pid, "VmRSS"), hwm0 = proc_kb(s.pid, "VmHWM");

    size_t len = (size_t)BIG_FILES * (512 + BIG_FILE_SIZE) + 1024; /* ustar, no padding to a record */
    char path[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=/big", id);
    int fd = connect_to(&s, NULL);
    ASSERT_TRUE(fd >= 0);
    send_head(fd, "PUT", path, s.token, "application/x-tar", len);
    struct sock_sink k = {.fd = fd, .daemon = s.pid, .rss_max_kb = rss0};
    a = archive_write_new();
    archive_write_set_format_ustar(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open(a, &k, NULL, sock_write, NULL) != ARCHIVE_OK)
        FAIL("libarchive: %s", archive_error_string(a));
    char *block = xmalloc(1 << 20);
    double t0 = now_ms();
    for (int f = 0; f < BIG_FILES; f++) {
        struct archive_entry *e = archive_entry_new();
        char name[32];
        snprintf(name, sizeof(name), "big-%d.bin", f);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, BIG_FILE_SIZE);
        ASSERT_EQ_INT(archive_write_header(a, e), ARCHIVE_OK);
        for (uint32_t mb = 0; mb < BIG_FILE_SIZE >> 20; mb++) {
            memset(block, 'A' + (int)((f * 7 + mb) % 26), 1 << 20);
            ASSERT_EQ_INT(archive_write_data(a, block, 1 << 20), 1 << 20);
        }
        archive_entry_free(e);
    }
    ASSERT_EQ_INT(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    free(block);
    ASSERT_EQ_INT(k.sent, len);
    if (read_response(fd, &r, 120) < 0)
        FAIL("no response to the 200 MB upload");
    double ms = now_ms() - t0;
    close(fd);
    if (r.status != 201)
        FAIL("upload: %d %s", r.status, r.body);
    ASSERT_EQ_INT(jint(r.json, "files"), BIG_FILES);
    ASSERT_EQ_INT(jint(r.json, "bytes"), (long long)BIG_FILES * BIG_FILE_SIZE);
    resp_free(&r);
    long hwm1 = proc_kb(s.pid, "VmHWM");
    printf("    200 MB upload: %.1f MB/s; VmRSS %ld kB before, at most %ld kB during; VmHWM +%ld kB\n",
           (double)len / 1e6 / (ms / 1e3), rss0, k.rss_max_kb, hwm1 - hwm0);
    ASSERT_LT_INT(k.rss_max_kb - rss0, 32 * 1024);
    ASSERT_LT_INT(hwm1 - hwm0, 32 * 1024);
    /* what arrived: the sizes, and a piece of the last file */
    char q[256];
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=/big/big-%d.bin", id, BIG_FILES - 1);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(jint(r.json, "size"), BIG_FILE_SIZE);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files?path=/big/big-%d.bin&offset=%u&length=4", id, BIG_FILES - 1,
             (49u << 20) + 100);
    api(&s, "GET", q, NULL, 200, &r);
    char want = (char)('A' + ((BIG_FILES - 1) * 7 + 49) % 26);
    ASSERT_EQ_INT(r.body_len, 4);
    ASSERT_TRUE(r.body[0] == want && r.body[3] == want);
    resp_free(&r);
    skiffd_finish(&s);
}

/* A client that goes away in the middle of a file leaves neither the file
 * nor its temp file; the daemon serves the next upload. (With a short
 * idle timeout: libmicrohttpd 0.9.75 in epoll mode does not always notice
 * a peer's FIN that arrives with the last data, and then only the idle
 * timeout ends the request; either way the close callback cleans up.) */
TEST_TIMEOUT(client_gone_mid_upload_leaves_nothing, 120)
{
    struct skiffd s;
    make_data_dir(&s);
    static const char *const opts[] = {"--idle-timeout", "3", NULL};
    skiffd_start_args(&s, opts);
    char id[64];
    create_box(&s, id, sizeof(id));
    struct membuf m;
    struct archive *a = tar_new(&m);
    tar_add(a, "first.txt", AE_IFREG, 0644, "complete\n", NULL, NULL);
    size_t big_len = 8u << 20;
    char *big = xmalloc(big_len + 1);
    memset(big, 'q', big_len);
    big[big_len] = '\0';
    tar_add(a, "partial.bin", AE_IFREG, 0644, big, NULL, NULL);
    free(big);
    tar_end(a);
    char path[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=/cut", id);
    int fd = connect_to(&s, NULL);
    ASSERT_TRUE(fd >= 0);
    send_head(fd, "PUT", path, s.token, "application/x-tar", m.len);
    send_all(fd, m.data, m.len / 2);
    /* wait until the partial file is being written (its temp file shows) */
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        _cleanup_free_ char *names = list_names(&s, id, "/cut");
        seen = strstr(names, ".skiff-") != NULL;
        if (!seen)
            usleep(25000);
    }
    ASSERT_TRUE(seen);
    close(fd);
    bool clean = false;
    _cleanup_free_ char *last = NULL;
    for (int i = 0; i < 400 && !clean; i++) {
        free(last);
        last = list_names(&s, id, "/cut");
        clean = strcmp(last, "first.txt\n") == 0;
        if (!clean)
            usleep(25000);
    }
    if (!clean)
        FAIL("after the client left, /cut holds: %s", last);
    struct resp r;
    put_tar(&s, id, "/cut", m.data, m.len, &r);
    free(m.data);
    ASSERT_EQ_INT(r.status, 201);
    ASSERT_EQ_INT(jint(r.json, "files"), 2);
    resp_free(&r);
    skiffd_finish(&s);
}
