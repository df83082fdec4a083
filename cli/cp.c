/* skiff sandbox cp - copy files and directories into and out of a sandbox.
 *
 * One side is ID:/PATH, the other a local path. A file travels through the
 * file endpoints (PUT/GET /v1/sandboxes/{id}/files?path=), a directory as
 * one tar stream (PUT/GET .../files/tar?path=), produced and consumed as it
 * goes (tar.c). Against a server without the tar endpoints (or with
 * SKIFF_CP_WALK=1) a directory is walked instead: mkdir + one upload per
 * file, or the recursive listing + one download per file.
 *
 * Downloads write host files named by the sandbox, which is untrusted:
 * see tar.h for how names are checked and files created. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "base/util.h"
#include "cli.h"
#include "client.h"
#include "tar.h"

#define MAX_DEPTH 128

void cmd_sandbox_cp_usage(FILE *out)
{
    fprintf(out, "usage: skiff sandbox cp [options] SRC DST\n"
                 "\n"
                 "Copy a file or a directory (recursively, as one tar stream) between this\n"
                 "machine and a running sandbox. Exactly one of SRC and DST is ID:/PATH (an\n"
                 "absolute path in the sandbox ID); write ./NAME for a local name with a ':'\n"
                 "in it. Like cp -r: when DST is an existing directory, SRC is copied into it\n"
                 "under its own name. A local SRC of '-' uploads stdin to a file; a local DST\n"
                 "of '-' writes a downloaded file to stdout. Permission bits are kept (never\n"
                 "setuid/setgid); symlinks and special files are skipped with a warning.\n"
                 "\n"
                 "examples:\n"
                 "  skiff sandbox cp ./data.csv sb-0123456789abcdef:/work/\n"
                 "  skiff sandbox cp ./src box:/work/src     (a directory: no -r needed)\n"
                 "  skiff sandbox cp box:/work/out ./out\n"
                 "\n"
                 "options:\n"
                 "  --json               print the API's answer: the upload's (a file or a tar),\n"
                 "                       the source's stat (a file), or for a directory download\n"
                 "                       {path, files, dirs, bytes, skipped_count}\n" SK_CLI_CONN_HELP "\n"
                 "environment (testing):\n"
                 "  SKIFF_CP_WALK=1      copy directories file by file instead of as tar\n");
}

struct cp {
    struct sk_client *c;
    char *sb;    /* the sandbox id or name, escaped for a path */
    json_t *log; /* --json: the answers, or NULL */
    int rc;      /* the first error's exit code */
    bool walk;   /* copy directories file by file */
};

/* is_remote - "ID:..." with ID as the API's names: [A-Za-z0-9][A-Za-z0-9._-]*. */
static bool is_remote(const char *arg)
{
    if (!((arg[0] >= 'A' && arg[0] <= 'Z') || (arg[0] >= 'a' && arg[0] <= 'z') || (arg[0] >= '0' && arg[0] <= '9')))
        return false;
    for (const char *p = arg; *p; p++) {
        if (*p == ':')
            return true;
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return false;
    }
    return false;
}

/* base_name - the last component of path (trailing '/' ignored); freed by
 * the caller. */
static char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/')
        start--;
    return xstrndup(path + start, n - start);
}

/* join - "dir/name" without a doubled '/'; freed by the caller. */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    return xasprintf("%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", name);
}

static int fail(struct cp *cp, const struct sk_client_error *e)
{
    int code = sk_client_report(cp->c, e);
    if (cp->rc == 0)
        cp->rc = code;
    return -1;
}

/* fail_errno - a local failure: fmt has one %s for `arg`, then errno's text. */
static int fail_errno(struct cp *cp, const char *fmt, const char *arg)
{
    int saved = errno;
    struct sk_client_error e;
    _cleanup_free_ char *what = xasprintf(fmt, arg);
    sk_client_error_set(&e, SK_EXIT_ERROR, "%s: %s", what, strerror(saved));
    return fail(cp, &e);
}

static void keep(struct cp *cp, json_t *answer)
{
    if (cp->log != NULL && answer != NULL)
        json_array_append(cp->log, answer);
}

/* no_route - the server does not have this endpoint (an older skiffd). */
static bool no_route(const struct sk_client_error *e)
{
    return strcmp(e->code, "not_found") == 0 && strncmp(e->msg, "no route", 8) == 0;
}

/* files_url - "/v1/sandboxes/<sb>/files<what>?path=<path><extra>"; freed by
 * the caller. */
static char *files_url(const struct cp *cp, const char *what, const char *path, const char *extra)
{
    _cleanup_free_ char *q = sk_client_escape(path, true);
    return xasprintf("/v1/sandboxes/%s/files%s?path=%s%s", cp->sb, what, q, extra);
}

/* remote_stat - 1 and *st when path exists, 0 when not (not_found: e says
 * what was not found), -1 on another error. */
static int remote_stat(struct cp *cp, const char *path, json_t **st, struct sk_client_error *e)
{
    _cleanup_free_ char *url = files_url(cp, "/stat", path, "");
    *st = NULL;
    if (sk_client_request(cp->c, "GET", url, NULL, st, e) == 0)
        return 1;
    return strcmp(e->code, "not_found") == 0 ? 0 : -1;
}

static bool is_dir(const json_t *st)
{
    return strcmp(sk_cli_jstr(st, "type", ""), "directory") == 0;
}

static mode_t json_mode(const json_t *st, mode_t dflt)
{
    json_t *m = json_object_get(st, "mode");
    return json_is_integer(m) ? (mode_t)(json_integer_value(m) & 0777) : dflt;
}

/* ---- upload ----------------------------------------------------------------------- */

static int upload_file(struct cp *cp, int fd, int64_t size, mode_t mode, const char *dst)
{
    /* the server reads this query value as octal (daemon/routes_files.c) */
    char extra[32];
    snprintf(extra, sizeof(extra), "&mode=%04o", (unsigned)(mode & 0777));
    _cleanup_free_ char *url = files_url(cp, "", dst, extra);
    struct sk_client_error e;
    json_t *answer = NULL;
    if (sk_client_upload(cp->c, "PUT", url, fd, size, &answer, &e) < 0)
        return fail(cp, &e);
    keep(cp, answer);
    json_decref(answer);
    return 0;
}

static int remote_mkdir(struct cp *cp, const char *dst, mode_t mode)
{
    _cleanup_free_ char *url = xasprintf("/v1/sandboxes/%s/files/mkdir", cp->sb);
    json_t *body = json_pack("{s:s, s:i, s:b}", "path", dst, "mode", (int)(mode & 0777), "parents", 1);
    struct sk_client_error e;
    json_t *answer = NULL;
    int r = sk_client_request(cp->c, "POST", url, body, &answer, &e);
    json_decref(body);
    if (r < 0)
        return fail(cp, &e);
    keep(cp, answer);
    json_decref(answer);
    return 0;
}

/* walk_up - the directory open at fd (consumed; `local` in messages) to
 * the existing sandbox directory `dst`, file by file. */
static int walk_up(struct cp *cp, int fd, const char *local, const char *dst, int depth)
{
    DIR *d = depth <= MAX_DEPTH ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (depth > MAX_DEPTH)
            errno = ELOOP;
        close(fd);
        return fail_errno(cp, "read directory '%s'", local);
    }
    int ret = 0;
    struct dirent *de;
    while (ret == 0 && (errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *lpath = join(local, de->d_name);
        _cleanup_free_ char *rpath = join(dst, de->d_name);
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            ret = fail_errno(cp, "stat '%s'", lpath);
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                ret = fail_errno(cp, "open '%s'", lpath);
            else if ((ret = remote_mkdir(cp, rpath, st.st_mode)) < 0)
                close(sub);
            else
                ret = walk_up(cp, sub, lpath, rpath, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            _cleanup_close_ int file = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (file < 0)
                ret = fail_errno(cp, "open '%s'", lpath);
            else
                ret = upload_file(cp, file, st.st_size, st.st_mode, rpath);
        } else {
            fprintf(stderr, "skiff: skipping '%s': not a regular file or directory\n", lpath);
        }
    }
    if (ret == 0 && errno != 0)
        ret = fail_errno(cp, "read directory '%s'", local);
    closedir(d);
    return ret;
}

/* tar_up - the local directory `src` below the sandbox directory `dst` as
 * one tar stream; 1 when the server has no tar endpoint. */
static int tar_up(struct cp *cp, const char *src, const char *dst)
{
    struct sk_client_error e;
    struct sk_tar_src *ts = NULL;
    if (sk_tar_src_new(src, &ts, &e) < 0)
        return fail(cp, &e);
    _cleanup_free_ char *url = files_url(cp, "/tar", dst, "");
    json_t *answer = NULL;
    int r = sk_client_upload_fn(cp->c, "PUT", url, sk_tar_src_read, ts, &answer, &e);
    if (r < 0 && sk_tar_src_error(ts) != NULL)
        r = fail(cp, sk_tar_src_error(ts));
    else if (r < 0 && no_route(&e))
        r = 1;
    else if (r < 0)
        r = fail(cp, &e);
    else
        keep(cp, answer);
    json_decref(answer);
    sk_tar_src_free(ts);
    return r;
}

static int upload(struct cp *cp, const char *src, const char *dst)
{
    struct sk_client_error e;
    if (strcmp(src, "-") == 0)
        return upload_file(cp, STDIN_FILENO, -1, 0644, dst);
    _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return fail_errno(cp, "'%s'", src);
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        sk_client_error_set(&e, SK_EXIT_ERROR, "'%s' is not a regular file or directory", src);
        return fail(cp, &e);
    }
    json_t *rst = NULL;
    int exists = remote_stat(cp, dst, &rst, &e);
    if (exists < 0)
        return fail(cp, &e);
    bool into = exists == 1 && is_dir(rst);
    json_decref(rst);
    _cleanup_free_ char *name = base_name(src);
    _cleanup_free_ char *target = into ? join(dst, name) : xstrdup(dst);
    if (S_ISREG(st.st_mode))
        return upload_file(cp, fd, st.st_size, st.st_mode, target);
    if (exists == 1 && !into) {
        sk_client_error_set(&e, SK_EXIT_CONFLICT, "cannot copy the directory '%s' over the file '%s'", src, dst);
        return fail(cp, &e);
    }
    if (!cp->walk) {
        int r = tar_up(cp, src, target);
        if (r <= 0)
            return r;
    }
    if (remote_mkdir(cp, target, st.st_mode) < 0)
        return -1;
    return walk_up(cp, steal_fd(&fd), src, target, 0);
}

/* ---- download ---------------------------------------------------------------------- */

/* download_to - the sandbox file `src` into `leaf` in dirfd via a temporary
 * name (`shown` in messages). */
static int download_to(struct cp *cp, const char *src, int dirfd, const char *leaf, mode_t mode, const char *shown)
{
    char tmp[64];
    int fd = sk_tar_tmpfile(dirfd, tmp);
    if (fd < 0)
        return fail_errno(cp, "create a file for '%s'", shown);
    _cleanup_free_ char *url = files_url(cp, "", src, "");
    struct sk_client_error e;
    int r = sk_client_download(cp->c, url, fd, NULL, &e);
    if (r < 0)
        fail(cp, &e);
    else if (fchmod(fd, mode & 0777) < 0)
        r = fail_errno(cp, "chmod '%s'", shown);
    if (close(fd) < 0 && r == 0)
        r = fail_errno(cp, "write '%s'", shown);
    if (r == 0 && renameat(dirfd, tmp, dirfd, leaf) < 0)
        r = fail_errno(cp, "rename into '%s'", shown);
    if (r < 0)
        unlinkat(dirfd, tmp, 0);
    return r;
}

/* walk_down - the sandbox directory `src` below rootfd, file by file. */
static int walk_down(struct cp *cp, const char *src, int rootfd, const char *local)
{
    _cleanup_free_ char *url = files_url(cp, "/list", src, "&recursive=1");
    struct sk_client_error e;
    json_t *list = NULL;
    if (sk_client_request(cp->c, "GET", url, NULL, &list, &e) < 0)
        return fail(cp, &e);
    int ret = 0;
    size_t i;
    json_t *ent;
    json_array_foreach(json_object_get(list, "entries"), i, ent)
    {
        const char *rel = sk_cli_jstr(ent, "path", "");
        const char *type = sk_cli_jstr(ent, "type", "");
        _cleanup_free_ char *shown = join(local, rel);
        if (!sk_tar_safe_rel(rel)) {
            sk_client_error_set(&e, SK_EXIT_ERROR, "the sandbox listed '%s'; nothing outside '%s' is written", rel,
                                local);
            ret = fail(cp, &e);
        } else if (strcmp(type, "directory") == 0) {
            int fd = sk_tar_open_dirs(rootfd, rel, false, NULL);
            if (fd < 0) {
                ret = fail_errno(cp, "mkdir '%s'", shown);
            } else {
                fchmod(fd, json_mode(ent, 0755) | 0700);
                close(fd);
            }
        } else if (strcmp(type, "file") == 0) {
            const char *leaf = NULL;
            _cleanup_close_ int dirfd = sk_tar_open_dirs(rootfd, rel, true, &leaf);
            _cleanup_free_ char *rpath = join(src, rel);
            if (dirfd < 0)
                ret = fail_errno(cp, "mkdir for '%s'", shown);
            else
                ret = download_to(cp, rpath, dirfd, leaf, json_mode(ent, 0644), shown);
        } else {
            fprintf(stderr, "skiff: skipping '%s': a %s, not a regular file or directory\n", shown, type);
        }
        if (ret < 0)
            break;
    }
    json_decref(list);
    return ret;
}

static ssize_t pull_read(void *ctx, const void **data, struct sk_client_error *e)
{
    return sk_client_pull_read(ctx, data, e);
}

/* tar_down - the sandbox directory `src` below rootfd as one tar stream; 1
 * when the server has no tar endpoint. */
static int tar_down(struct cp *cp, const char *src, int rootfd, const char *local)
{
    _cleanup_free_ char *url = files_url(cp, "/tar", src, "");
    struct sk_client_error e;
    struct sk_client_pull *p = NULL;
    if (sk_client_pull_open(cp->c, url, &p, &e) < 0)
        return no_route(&e) ? 1 : fail(cp, &e);
    const char *skipped_hdr = sk_client_pull_header(p, "X-Skiff-Skipped");
    long skipped = skipped_hdr != NULL ? strtol(skipped_hdr, NULL, 10) : 0;
    struct sk_tar_stats st;
    int r = sk_tar_extract(rootfd, local, pull_read, p, &st, &e);
    sk_client_pull_close(p);
    if (r < 0)
        return fail(cp, &e);
    if (skipped > 0)
        fprintf(stderr, "skiff: %ld entries of '%s' were left out by the server (symlinks or special files)\n", skipped,
                src);
    if (cp->log != NULL) {
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "path", local, "files", (json_int_t)st.files, "dirs",
                              (json_int_t)st.dirs, "bytes", (json_int_t)st.bytes, "skipped_count",
                              (json_int_t)(st.skipped + (uint64_t)(skipped > 0 ? skipped : 0)));
        keep(cp, o);
        json_decref(o);
    }
    return 0;
}

static int download_dir(struct cp *cp, const char *src, const char *local, mode_t mode)
{
    if (mkdir(local, (mode & 0777) | 0700) < 0 && errno != EEXIST)
        return fail_errno(cp, "mkdir '%s'", local);
    _cleanup_close_ int rootfd = open(local, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return fail_errno(cp, "open '%s'", local);
    if (!cp->walk) {
        int r = tar_down(cp, src, rootfd, local);
        if (r <= 0)
            return r;
    }
    return walk_down(cp, src, rootfd, local);
}

static int download(struct cp *cp, const char *src, const char *dst)
{
    struct sk_client_error e;
    json_t *st = NULL;
    if (remote_stat(cp, src, &st, &e) <= 0)
        return fail(cp, &e); /* not_found says which: the sandbox or the path */
    bool dir = is_dir(st);
    mode_t mode = json_mode(st, 0644);
    if (!dir)
        keep(cp, st);
    json_decref(st);
    if (strcmp(dst, "-") == 0) {
        if (dir) {
            sk_client_error_set(&e, SK_EXIT_USAGE, "'%s' is a directory; it cannot go to stdout", src);
            return fail(cp, &e);
        }
        _cleanup_free_ char *url = files_url(cp, "", src, "");
        fflush(stdout);
        if (sk_client_download(cp->c, url, STDOUT_FILENO, NULL, &e) < 0)
            return fail(cp, &e);
        return 0;
    }
    struct stat lst;
    bool exists = stat(dst, &lst) == 0;
    bool into = exists && S_ISDIR(lst.st_mode);
    _cleanup_free_ char *name = base_name(src);
    _cleanup_free_ char *target = into ? join(dst, name) : xstrdup(dst);
    if (dir) {
        if (exists && !into) {
            sk_client_error_set(&e, SK_EXIT_CONFLICT, "cannot copy the directory '%s' over the file '%s'", src, dst);
            return fail(cp, &e);
        }
        return download_dir(cp, src, target, mode);
    }
    /* a file: into its directory under a temporary name, then renamed */
    _cleanup_free_ char *parent = xstrdup(target);
    char *slash = strrchr(parent, '/');
    const char *leaf = target;
    if (slash != NULL) {
        leaf = target + (slash - parent) + 1;
        slash[slash == parent ? 1 : 0] = '\0';
    }
    if (leaf[0] == '\0') {
        sk_client_error_set(&e, SK_EXIT_USAGE, "'%s' names no file", dst);
        return fail(cp, &e);
    }
    _cleanup_close_ int dirfd = open(slash != NULL ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return fail_errno(cp, "open the directory of '%s'", target);
    return download_to(cp, src, dirfd, leaf, mode, target);
}

/* ---- the command ----------------------------------------------------------------------- */

int cmd_sandbox_cp(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox cp";
    static const struct option longopts[] = {SK_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            cmd_sandbox_cp_usage(stdout);
            return 0;
        }
        if (!sk_cli_common_opt(g, c, optarg))
            return sk_cli_getopt_error(prog, c, argv);
    }
    if (argc - optind != 2)
        return sk_cli_usage_error(prog, "needs SRC and DST, one of them ID:/PATH");
    const char *src = argv[optind], *dst = argv[optind + 1];
    bool up = is_remote(dst), down = is_remote(src);
    if (up == down)
        return sk_cli_usage_error(prog, up ? "both SRC and DST are in a sandbox; one must be local"
                                           : "neither SRC nor DST is ID:/PATH");
    const char *remote = up ? dst : src;
    const char *colon = strchr(remote, ':');
    const char *rpath = colon + 1;
    if (rpath[0] != '/')
        return sk_cli_usage_error(prog, "the path in the sandbox must be absolute: '%s'", remote);
    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0)
        return rc;
    _cleanup_free_ char *id = xstrndup(remote, (size_t)(colon - remote));
    const char *walk = getenv("SKIFF_CP_WALK");
    struct cp cp = {
        .c = &cl,
        .sb = sk_client_escape(id, false),
        .log = g->json ? json_array() : NULL,
        .walk = walk != NULL && strcmp(walk, "1") == 0,
    };
    if (up)
        upload(&cp, src, rpath);
    else
        download(&cp, rpath, dst);
    if (cp.rc == 0 && cp.log != NULL) {
        if (json_array_size(cp.log) == 1) {
            sk_cli_print_json(json_array_get(cp.log, 0));
        } else {
            json_t *all = json_pack("{s:O}", "answers", cp.log);
            sk_cli_print_json(all);
            json_decref(all);
        }
    }
    json_decref(cp.log);
    free(cp.sb);
    sk_client_close(&cl);
    return cp.rc;
}
