/* routes_files.c - files inside a sandbox, served by its skiff-init (never
 * by exec'ing a helper): read (byte ranges, streamed), write (streamed,
 * atomic), stat, list, mkdir -p, remove, move. Every path is resolved by
 * skiff-init inside the sandbox's root. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "routes.h"
#include "routes_common.h"
#include "runtime/agent.h"
#include "sched/sandboxes.h"

#define PATH_PARAM_MAX 4096

static const char *type_name(char t)
{
    switch (t) {
    case 'f': return "file";
    case 'd': return "directory";
    case 'l': return "symlink";
    default: return "other";
    }
}

static json_t *stat_json(const char *path, const struct sk_file_stat *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "path", sk_json_string_lossy(path, strlen(path)));
    json_object_set_new(o, "type", json_string(type_name(st->type)));
    json_object_set_new(o, "mode", json_integer(st->mode));
    json_object_set_new(o, "size", json_integer((json_int_t)st->size));
    json_object_set_new(o, "mtime", sk_json_time(st->mtime_ns / 1000000));
    json_object_set_new(o, "uid", json_integer(st->uid));
    json_object_set_new(o, "gid", json_integer(st->gid));
    return o;
}

void sk_route_files_stat(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL;
    int64_t follow = 1;
    if (sk_http_query_int(req, "follow", 0, 1, 1, &follow) < 0)
        return;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, PATH_PARAM_MAX, &path, NULL);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    struct sk_file_stat st;
    if (sk_agent_stat(a, path, follow != 0, &st, &err) < 0)
        sk_http_reply_error(req, &err);
    else
        sk_http_reply_json(req, 200, stat_json(path, &st));
}

void sk_route_files_list(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL;
    int64_t recursive = 0;
    if (sk_http_query_int(req, "recursive", 0, 1, 0, &recursive) < 0)
        return;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, PATH_PARAM_MAX, &path, NULL);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    struct sk_file_entry *ents = NULL;
    size_t n = 0;
    if (sk_agent_list(a, path, recursive != 0, &ents, &n, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, stat_json(ents[i].path, &ents[i].st));
    sk_file_entries_free(ents, n);
    json_t *o = json_object();
    json_object_set_new(o, "entries", arr);
    sk_http_reply_json(req, 200, o);
}

void sk_route_files_mkdir(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL;
    int64_t mode = 0755;
    bool parents = true;
    const struct sk_field fields[] = {
        SK_FIELD_STR("path", &path, SK_REQUIRED, PATH_PARAM_MAX),
        SK_FIELD_INT("mode", &mode, SK_OPTIONAL, 0, 07777),
        SK_FIELD_BOOL("parents", &parents, SK_OPTIONAL),
    };
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, 0, NULL, NULL);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    if (sk_agent_mkdir(a, path, (uint32_t)mode, parents, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(path));
    sk_http_reply_json(req, 200, o);
}

void sk_route_files_remove(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL;
    int64_t recursive = 0;
    if (sk_http_query_int(req, "recursive", 0, 1, 0, &recursive) < 0)
        return;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, PATH_PARAM_MAX, &path, NULL);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    if (sk_agent_remove(a, path, recursive != 0, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "removed", json_true());
    sk_http_reply_json(req, 200, o);
}

void sk_route_files_move(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *from = NULL, *to = NULL;
    const struct sk_field fields[] = {
        SK_FIELD_STR("from", &from, SK_REQUIRED, PATH_PARAM_MAX),
        SK_FIELD_STR("to", &to, SK_REQUIRED, PATH_PARAM_MAX),
    };
    if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, 0, NULL, NULL);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    if (sk_agent_rename(a, from, to, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "from", json_string(from));
    json_object_set_new(o, "to", json_string(to));
    sk_http_reply_json(req, 200, o);
}

/* ---- read: a stream from an fd skiff-init opened inside the sandbox ---------- */

struct file_read {
    int fd;
    uint64_t offset, remaining;
};

static ssize_t file_read_produce(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx)
{
    (void)req;
    struct file_read *r = ctx;
    if (r->remaining == 0)
        return SK_HTTP_STREAM_END;
    if (max > r->remaining)
        max = (size_t)r->remaining;
    ssize_t n = pread(r->fd, buf, max, (off_t)(r->offset + pos));
    if (n < 0)
        return errno == EINTR ? SK_HTTP_STREAM_WAIT : SK_HTTP_STREAM_ERROR;
    if (n == 0)
        return SK_HTTP_STREAM_END;
    r->remaining -= (uint64_t)n;
    return n;
}

static void file_read_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct file_read *r = ctx;
    sk_close(&r->fd);
    free(r);
}

void sk_route_files_read(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL;
    int64_t offset = 0, length = -1;
    if (sk_http_query_int(req, "offset", 0, INT64_MAX / 2, 0, &offset) < 0 ||
        sk_http_query_int(req, "length", 0, INT64_MAX / 2, -1, &length) < 0)
        return;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, PATH_PARAM_MAX, &path, NULL);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    int fd = -1;
    if (sk_agent_open_read(a, path, &fd, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        sk_http_reply_api_error(req, SK_API_INTERNAL, "stat '%s' failed", path);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t start = (uint64_t)offset > size ? size : (uint64_t)offset;
    uint64_t len = size - start;
    if (length >= 0 && (uint64_t)length < len)
        len = (uint64_t)length;
    struct file_read *r = xcalloc(1, sizeof(*r));
    r->fd = fd;
    r->offset = start;
    r->remaining = len;
    char hdr[32];
    snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)size);
    sk_http_set_header(req, "X-Skiff-File-Size", hdr);
    snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)start);
    sk_http_set_header(req, "X-Skiff-Offset", hdr);
    sk_http_on_close(req, file_read_closed, r);
    sk_http_reply_stream(req, 200, "application/octet-stream", file_read_produce, r);
}

/* ---- write: the body streams into a temp file, renamed over the target ----- */

struct file_write {
    struct sk_daemon *d;
    char *sandbox_id;
    char *path;
    int fd;
    uint32_t handle;
    bool open;
    uint64_t written;
};

static void file_write_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct file_write *w = ctx;
    if (w->open) {
        /* the client went away mid-upload: the target stays as it was */
        struct sk_agent *a = sk_sched_agent(w->d->sched, w->sandbox_id, NULL);
        if (a != NULL)
            sk_agent_write_abort(a, w->handle, NULL);
    }
    sk_close(&w->fd);
    free(w->sandbox_id);
    free(w->path);
    free(w);
}

static ssize_t file_write_sink(struct sk_http_req *req, const char *data, size_t len, void *ctx)
{
    struct file_write *w = ctx;
    struct sk_error err = {0};
    if (data != NULL) {
        if (sk_write_all(w->fd, data, len) < 0) {
            sk_error_set(&err, errno, "write '%s'", w->path);
            sk_http_reply_error(req, &err);
            return (ssize_t)len;
        }
        w->written += len;
        return (ssize_t)len;
    }
    /* end of body: commit atomically */
    sk_close(&w->fd);
    struct sk_agent *a = sk_sched_agent(w->d->sched, w->sandbox_id, &err);
    w->open = false;
    if (a == NULL || sk_agent_write_commit(a, w->handle, &err) < 0) {
        sk_http_reply_error(req, &err);
        return 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(w->path));
    json_object_set_new(o, "size", json_integer((json_int_t)w->written));
    sk_http_reply_json(req, 201, o);
    return 0;
}

void sk_route_files_write(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL, *mode_s = NULL;
    int64_t mode = 0644;
    if (sk_http_query_str(req, "mode", 8, &mode_s) < 0)
        return;
    if (mode_s != NULL) {
        /* file modes are octal, as people write them: mode=0755 or mode=755 */
        char *end = NULL;
        long m = strtol(mode_s, &end, 8);
        if (end == mode_s || *end != '\0' || m < 0 || m > 07777) {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "query 'mode' must be octal 0 to 7777, not '%s'",
                                    mode_s);
            return;
        }
        mode = m;
    }
    char *sandbox_id = NULL;
    struct sk_agent *a = sk_route_sandbox_agent(d, req, PATH_PARAM_MAX, &path, &sandbox_id);
    if (a == NULL)
        return;
    struct sk_error err = {0};
    struct file_write *w = xcalloc(1, sizeof(*w));
    w->d = d;
    w->fd = -1;
    w->path = xstrdup(path);
    w->sandbox_id = sandbox_id;
    if (sk_agent_write_begin(a, path, (uint32_t)mode, &w->fd, &w->handle, &err) < 0) {
        file_write_closed(req, w);
        sk_http_reply_error(req, &err);
        return;
    }
    w->open = true;
    sk_http_on_close(req, file_write_closed, w);
    sk_http_body_sink(req, file_write_sink, w);
}

/* ---- watch: a stream of change events, one JSON object per line ------------- */

#define WATCH_BUF_MAX (1 << 20) /* queued, unsent event lines; beyond: overflow */

struct file_watch {
    struct sk_daemon *d;
    struct sk_http_req *req;
    uint64_t id; /* 0 once the manager is done with it */
    char *buf;
    size_t len, off, cap;
    bool overflowed; /* an overflow line is owed */
    bool ended;
};

static void file_watch_append(struct file_watch *w, const char *line, size_t n)
{
    if (w->len - w->off + n > WATCH_BUF_MAX) {
        w->overflowed = true;
        return;
    }
    if (w->off > 0 && w->off == w->len)
        w->off = w->len = 0;
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2;
        w->buf = xrealloc(w->buf, w->cap);
    }
    memcpy(w->buf + w->len, line, n);
    w->len += n;
}

static void file_watch_event(void *arg, const struct sk_agent_watch_event *ev, bool ended)
{
    struct file_watch *w = arg;
    if (ended) {
        w->id = 0;
        w->ended = true;
        sk_http_resume(w->req);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(sk_agent_watch_kind_name(ev->kind)));
    json_object_set_new(o, "type", json_string(ev->type == '?' ? "unknown" : type_name(ev->type)));
    json_object_set_new(o, "path", sk_json_string_lossy(ev->path, strlen(ev->path)));
    if (ev->cookie != 0)
        json_object_set_new(o, "cookie", json_integer(ev->cookie));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text != NULL) {
        size_t n = strlen(text);
        text[n] = '\n';
        file_watch_append(w, text, n + 1);
        free(text);
    }
    sk_http_resume(w->req);
}

static ssize_t file_watch_produce(struct sk_http_req *req, uint64_t pos, char *buf, size_t max, void *ctx)
{
    (void)req;
    (void)pos;
    struct file_watch *w = ctx;
    if (w->overflowed && w->len == w->off) {
        static const char line[] = "{\"kind\":\"overflow\",\"type\":\"unknown\",\"path\":\"\"}\n";
        w->overflowed = false;
        file_watch_append(w, line, sizeof(line) - 1);
    }
    if (w->len > w->off) {
        size_t n = w->len - w->off < max ? w->len - w->off : max;
        memcpy(buf, w->buf + w->off, n);
        w->off += n;
        return (ssize_t)n;
    }
    return w->ended ? SK_HTTP_STREAM_END : SK_HTTP_STREAM_WAIT;
}

static void file_watch_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    struct file_watch *w = ctx;
    if (w->id != 0)
        sk_sched_watch_files_cancel(w->d->sched, w->id);
    free(w->buf);
    free(w);
}

void sk_route_files_watch(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *path = NULL;
    int64_t recursive = 0;
    if (sk_http_query_int(req, "recursive", 0, 1, 0, &recursive) < 0)
        return;
    _cleanup_free_ char *sandbox_id = NULL;
    if (sk_route_sandbox_agent(d, req, PATH_PARAM_MAX, &path, &sandbox_id) == NULL)
        return;
    struct sk_error err = {0};
    struct file_watch *w = xcalloc(1, sizeof(*w));
    w->d = d;
    w->req = req;
    int r = sk_sched_watch_files(d->sched, sandbox_id, path, recursive != 0, file_watch_event, w, &w->id, &err);
    if (r < 0) {
        free(w);
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_on_close(req, file_watch_closed, w);
    sk_http_reply_stream(req, 200, "application/x-ndjson", file_watch_produce, w);
}
