#include "proto/proto.h"

#include <errno.h>
#include <string.h>

#include "base/util.h"

/* ---- reader ---- */

void sk_proto_reader_init(struct sk_proto_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = false;
    r->why = NULL;
}

static void reader_fail(struct sk_proto_reader *r, const char *why)
{
    if (!r->bad) {
        r->bad = true;
        r->why = why;
    }
}

/* take - n bytes from the reader, or NULL (and the reader fails). */
static const uint8_t *take(struct sk_proto_reader *r, size_t n)
{
    if (r->bad)
        return NULL;
    if (n > r->len - r->off) {
        reader_fail(r, "truncated");
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t sk_proto_read_u8(struct sk_proto_reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t sk_proto_read_u16(struct sk_proto_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] | (unsigned)p[1] << 8) : 0;
}

uint32_t sk_proto_read_u32(struct sk_proto_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

uint64_t sk_proto_read_u64(struct sk_proto_reader *r)
{
    uint64_t lo = sk_proto_read_u32(r);
    uint64_t hi = sk_proto_read_u32(r);
    return r->bad ? 0 : lo | hi << 32;
}

int64_t sk_proto_read_i64(struct sk_proto_reader *r)
{
    uint64_t v = sk_proto_read_u64(r);
    int64_t s;
    memcpy(&s, &v, sizeof(s));
    return s;
}

bool sk_proto_read_bool(struct sk_proto_reader *r)
{
    uint8_t v = sk_proto_read_u8(r);
    if (v > 1) {
        reader_fail(r, "boolean is neither 0 nor 1");
        return false;
    }
    return v == 1;
}

struct sk_proto_str sk_proto_read_str(struct sk_proto_reader *r, uint32_t max)
{
    struct sk_proto_str s = {"", 0};
    uint32_t n = sk_proto_read_u32(r);
    if (r->bad)
        return s;
    if (n > max) {
        reader_fail(r, "string too long");
        return s;
    }
    const uint8_t *p = take(r, n);
    if (p == NULL)
        return s;
    if (memchr(p, '\0', n) != NULL) {
        reader_fail(r, "string contains a NUL byte");
        return s;
    }
    s.ptr = (const char *)p;
    s.len = n;
    return s;
}

const uint8_t *sk_proto_read_bytes(struct sk_proto_reader *r, uint32_t max, uint32_t *len)
{
    *len = 0;
    uint32_t n = sk_proto_read_u32(r);
    if (r->bad)
        return NULL;
    if (n > max) {
        reader_fail(r, "byte string too long");
        return NULL;
    }
    const uint8_t *p = take(r, n);
    if (p != NULL)
        *len = n;
    return p;
}

/* ---- writer ---- */

void sk_proto_writer_init(struct sk_proto_writer *w, void *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
}

static uint8_t *put(struct sk_proto_writer *w, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void sk_proto_write_u8(struct sk_proto_writer *w, uint8_t v)
{
    uint8_t *p = put(w, 1);
    if (p)
        p[0] = v;
}

void sk_proto_write_u16(struct sk_proto_writer *w, uint16_t v)
{
    uint8_t *p = put(w, 2);
    if (p) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
    }
}

void sk_proto_write_u32(struct sk_proto_writer *w, uint32_t v)
{
    uint8_t *p = put(w, 4);
    if (p) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
    }
}

void sk_proto_write_u64(struct sk_proto_writer *w, uint64_t v)
{
    sk_proto_write_u32(w, (uint32_t)v);
    sk_proto_write_u32(w, (uint32_t)(v >> 32));
}

void sk_proto_write_i64(struct sk_proto_writer *w, int64_t v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    sk_proto_write_u64(w, u);
}

void sk_proto_write_bool(struct sk_proto_writer *w, bool v)
{
    sk_proto_write_u8(w, v ? 1 : 0);
}

void sk_proto_write_bytes(struct sk_proto_writer *w, const void *p, uint32_t len)
{
    sk_proto_write_u32(w, len);
    uint8_t *d = put(w, len);
    if (d && len)
        memcpy(d, p, len);
}

void sk_proto_write_str(struct sk_proto_writer *w, struct sk_proto_str s)
{
    sk_proto_write_bytes(w, s.ptr, s.len);
}

/* ---- helpers ---- */

struct sk_proto_str sk_proto_str_c(const char *s)
{
    struct sk_proto_str v = {"", 0};
    if (s != NULL) {
        size_t n = strlen(s);
        v.ptr = s;
        v.len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    return v;
}

int sk_proto_str_copy(struct sk_proto_str s, char *buf, size_t size, struct sk_error *err)
{
    if (size == 0 || s.len > size - 1)
        return sk_error_setv(err, ENAMETOOLONG, "string of %u bytes is longer than %zu", s.len, size ? size - 1 : 0);
    if (s.len)
        memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return 0;
}

bool sk_proto_str_eq(struct sk_proto_str s, const char *c)
{
    size_t n = strlen(c);
    return n == s.len && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

const char *sk_proto_type_name(unsigned type)
{
    static const char *const names[] = {
        [SK_PROTO_HELLO] = "HELLO",
        [SK_PROTO_HELLO_OK] = "HELLO_OK",
        [SK_PROTO_ERROR] = "ERROR",
        [SK_PROTO_OK] = "OK",
        [SK_PROTO_SPAWN] = "SPAWN",
        [SK_PROTO_SPAWN_OK] = "SPAWN_OK",
        [SK_PROTO_SIGNAL] = "SIGNAL",
        [SK_PROTO_RESIZE] = "RESIZE",
        [SK_PROTO_EXIT] = "EXIT",
        [SK_PROTO_STAT] = "STAT",
        [SK_PROTO_STAT_OK] = "STAT_OK",
        [SK_PROTO_OPEN_READ] = "OPEN_READ",
        [SK_PROTO_WRITE_BEGIN] = "WRITE_BEGIN",
        [SK_PROTO_WRITE_COMMIT] = "WRITE_COMMIT",
        [SK_PROTO_WRITE_ABORT] = "WRITE_ABORT",
        [SK_PROTO_LIST] = "LIST",
        [SK_PROTO_LIST_CHUNK] = "LIST_CHUNK",
        [SK_PROTO_MKDIR] = "MKDIR",
        [SK_PROTO_REMOVE] = "REMOVE",
        [SK_PROTO_RENAME] = "RENAME",
        [SK_PROTO_LIST_PROCS] = "LIST_PROCS",
        [SK_PROTO_PROCS] = "PROCS",
        [SK_PROTO_RELEASE] = "RELEASE",
        [SK_PROTO_OPEN_PTY] = "OPEN_PTY",
        [SK_PROTO_WATCH_ADD] = "WATCH_ADD",
        [SK_PROTO_WATCH_REMOVE] = "WATCH_REMOVE",
        [SK_PROTO_WATCH_EVENT] = "WATCH_EVENT",
    };
    if (type < SK_ARRAY_SIZE(names) && names[type] != NULL)
        return names[type];
    return "unknown";
}

const char *sk_proto_watch_kind_name(unsigned kind)
{
    static const char *const names[] = {
        [SK_PROTO_WATCH_CREATE] = "create",   [SK_PROTO_WATCH_MODIFY] = "modify",
        [SK_PROTO_WATCH_DELETE] = "delete",   [SK_PROTO_WATCH_MOVE_FROM] = "move_from",
        [SK_PROTO_WATCH_MOVE_TO] = "move_to", [SK_PROTO_WATCH_OVERFLOW] = "overflow",
    };
    if (kind < SK_ARRAY_SIZE(names) && names[kind] != NULL)
        return names[kind];
    return "unknown";
}

bool sk_proto_rel_path_ok(struct sk_proto_str p)
{
    if (p.len == 0 || p.ptr[0] == '/')
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= p.len; i++) {
        if (i < p.len && p.ptr[i] != '/')
            continue;
        size_t n = i - start;
        if (n == 0 || (n == 1 && p.ptr[start] == '.') || (n == 2 && p.ptr[start] == '.' && p.ptr[start + 1] == '.'))
            return false;
        start = i + 1;
    }
    return true;
}

bool sk_proto_strv_next(const struct sk_proto_strv *v, uint32_t *cursor, struct sk_proto_str *s)
{
    if (v->vec != NULL) {
        if (*cursor >= v->count || v->vec[*cursor] == NULL)
            return false;
        *s = sk_proto_str_c(v->vec[*cursor]);
        (*cursor)++;
        return true;
    }
    if (v->raw == NULL || *cursor >= v->raw_len)
        return false;
    struct sk_proto_reader r;
    sk_proto_reader_init(&r, v->raw, v->raw_len);
    r.off = *cursor;
    struct sk_proto_str t = sk_proto_read_str(&r, UINT32_MAX);
    if (r.bad)
        return false;
    *s = t;
    *cursor = (uint32_t)r.off;
    return true;
}

static void read_stat(struct sk_proto_reader *r, struct sk_proto_stat *st)
{
    st->type = sk_proto_read_u8(r);
    st->mode = sk_proto_read_u32(r);
    st->size = sk_proto_read_u64(r);
    st->mtime_ns = sk_proto_read_i64(r);
    st->uid = sk_proto_read_u32(r);
    st->gid = sk_proto_read_u32(r);
    if (r->bad)
        return;
    if (st->type != 'f' && st->type != 'd' && st->type != 'l' && st->type != 'o')
        reader_fail(r, "unknown file type");
    else if (st->mode > 07777)
        reader_fail(r, "mode has bits beyond 07777");
}

static void write_stat(struct sk_proto_writer *w, const struct sk_proto_stat *st)
{
    sk_proto_write_u8(w, st->type);
    sk_proto_write_u32(w, st->mode);
    sk_proto_write_u64(w, st->size);
    sk_proto_write_i64(w, st->mtime_ns);
    sk_proto_write_u32(w, st->uid);
    sk_proto_write_u32(w, st->gid);
}

/* A path: 1..SK_PROTO_PATH_MAX bytes, no NUL. */
static struct sk_proto_str read_path(struct sk_proto_reader *r)
{
    struct sk_proto_str s = sk_proto_read_str(r, SK_PROTO_PATH_MAX);
    if (!r->bad && s.len == 0)
        reader_fail(r, "empty path");
    return s;
}

static void read_entry(struct sk_proto_reader *r, struct sk_proto_entry *e)
{
    e->path = read_path(r);
    read_stat(r, &e->st);
}

bool sk_proto_list_next(const struct sk_proto_list_chunk *c, uint32_t *cursor, struct sk_proto_entry *e)
{
    if (c->items != NULL) {
        if (*cursor >= c->count)
            return false;
        *e = c->items[*cursor];
        (*cursor)++;
        return true;
    }
    if (c->raw == NULL || *cursor >= c->raw_len)
        return false;
    struct sk_proto_reader r;
    sk_proto_reader_init(&r, c->raw, c->raw_len);
    r.off = *cursor;
    struct sk_proto_entry t;
    read_entry(&r, &t);
    if (r.bad)
        return false;
    *e = t;
    *cursor = (uint32_t)r.off;
    return true;
}

static void read_proc(struct sk_proto_reader *r, struct sk_proto_proc *p)
{
    p->proc_id = sk_proto_read_u32(r);
    p->pid = sk_proto_read_u32(r);
    p->flags = sk_proto_read_u32(r);
    p->exited = sk_proto_read_bool(r);
    p->exit_code = (int32_t)sk_proto_read_u32(r);
    p->signo = sk_proto_read_u32(r);
    p->timed_out = sk_proto_read_bool(r);
    p->core_dumped = sk_proto_read_bool(r);
    if (r->bad)
        return;
    if (p->flags & ~SK_PROTO_SPAWN_FLAGS)
        reader_fail(r, "unknown spawn flags in a process");
    else if (p->signo > SK_PROTO_SIGNAL_MAX)
        reader_fail(r, "signal number above 64 in a process");
    else if (!p->exited && (p->exit_code != 0 || p->signo != 0 || p->core_dumped))
        reader_fail(r, "a running process with an exit status");
}

static void write_proc(struct sk_proto_writer *w, const struct sk_proto_proc *p)
{
    sk_proto_write_u32(w, p->proc_id);
    sk_proto_write_u32(w, p->pid);
    sk_proto_write_u32(w, p->flags);
    sk_proto_write_bool(w, p->exited);
    sk_proto_write_u32(w, (uint32_t)p->exit_code);
    sk_proto_write_u32(w, p->signo);
    sk_proto_write_bool(w, p->timed_out);
    sk_proto_write_bool(w, p->core_dumped);
}

bool sk_proto_procs_next(const struct sk_proto_procs *p, uint32_t *cursor, struct sk_proto_proc *out)
{
    if (p->items != NULL) {
        if (*cursor >= p->count)
            return false;
        *out = p->items[*cursor];
        (*cursor)++;
        return true;
    }
    if (p->raw == NULL || *cursor >= p->raw_len)
        return false;
    struct sk_proto_reader r;
    sk_proto_reader_init(&r, p->raw, p->raw_len);
    r.off = *cursor;
    struct sk_proto_proc t;
    read_proc(&r, &t);
    if (r.bad)
        return false;
    *out = t;
    *cursor = (uint32_t)r.off;
    return true;
}

size_t sk_proto_entry_size(const struct sk_proto_entry *e)
{
    return 4 + (size_t)e->path.len + 1 + 4 + 8 + 8 + 4 + 4;
}

/* ---- decoding ---- */

static void read_strv(struct sk_proto_reader *r, struct sk_proto_strv *v)
{
    memset(v, 0, sizeof(*v));
    v->count = sk_proto_read_u32(r);
    if (r->bad)
        return;
    if (v->count > SK_PROTO_STRV_MAX) {
        reader_fail(r, "too many strings in a vector");
        return;
    }
    size_t start = r->off;
    for (uint32_t i = 0; i < v->count && !r->bad; i++)
        (void)sk_proto_read_str(r, SK_PROTO_PAYLOAD_MAX);
    if (r->bad)
        return;
    v->raw = r->p + start;
    v->raw_len = (uint32_t)(r->off - start);
}

static void read_list_chunk(struct sk_proto_reader *r, struct sk_proto_list_chunk *c)
{
    memset(c, 0, sizeof(*c));
    c->final = sk_proto_read_bool(r);
    c->count = sk_proto_read_u32(r);
    if (r->bad)
        return;
    if (c->count > SK_PROTO_LIST_MAX) {
        reader_fail(r, "too many entries in a list chunk");
        return;
    }
    size_t start = r->off;
    for (uint32_t i = 0; i < c->count && !r->bad; i++) {
        struct sk_proto_entry e;
        read_entry(r, &e);
    }
    if (r->bad)
        return;
    c->raw = r->p + start;
    c->raw_len = (uint32_t)(r->off - start);
}

static void read_procs(struct sk_proto_reader *r, struct sk_proto_procs *p)
{
    memset(p, 0, sizeof(*p));
    p->count = sk_proto_read_u32(r);
    if (r->bad)
        return;
    if (p->count > SK_PROTO_PROCS_MAX) {
        reader_fail(r, "too many processes");
        return;
    }
    size_t start = r->off;
    for (uint32_t i = 0; i < p->count && !r->bad; i++) {
        struct sk_proto_proc t;
        read_proc(r, &t);
    }
    if (r->bad)
        return;
    p->raw = r->p + start;
    p->raw_len = (uint32_t)(r->off - start);
}

/* watch_event_invalid - what is wrong with a decoded WATCH_EVENT, or NULL. */
static const char *watch_event_invalid(const struct sk_proto_msg *m)
{
    uint8_t kind = m->u.watch_event.kind, type = m->u.watch_event.type;
    bool move = kind == SK_PROTO_WATCH_MOVE_FROM || kind == SK_PROTO_WATCH_MOVE_TO;
    struct sk_proto_str path = m->u.watch_event.path;
    if (m->u.watch_event.watch_id == 0)
        return "watch id 0";
    if (kind < SK_PROTO_WATCH_CREATE || kind > SK_PROTO_WATCH_OVERFLOW)
        return "unknown watch event kind";
    if (type != 'f' && type != 'd' && type != 'l' && type != 'o' && type != SK_PROTO_WATCH_TYPE_UNKNOWN)
        return "unknown entry type";
    if (!move && m->u.watch_event.cookie != 0)
        return "cookie on an event that is not a move";
    if (kind == SK_PROTO_WATCH_OVERFLOW)
        return path.len == 0 && type == SK_PROTO_WATCH_TYPE_UNKNOWN ? NULL : "overflow with a path or a type";
    if (path.len == 0)
        return kind == SK_PROTO_WATCH_DELETE && type == 'd' ? NULL : "empty path";
    if (!sk_proto_rel_path_ok(path))
        return "path is not a plain relative path";
    return NULL;
}

/* decode_payload - read the payload of `m->type`; structural problems mark
 * the reader, values outside their domain are returned as a description. */
static const char *decode_payload(struct sk_proto_reader *r, struct sk_proto_msg *m, bool *known)
{
    *known = true;
    switch (m->type) {
    case SK_PROTO_HELLO: m->u.hello.version = sk_proto_read_u32(r); return NULL;
    case SK_PROTO_HELLO_OK:
        m->u.hello_ok.version = sk_proto_read_u32(r);
        m->u.hello_ok.pid = sk_proto_read_u32(r);
        return NULL;
    case SK_PROTO_ERROR:
        m->u.error.code = sk_proto_read_u32(r);
        m->u.error.message = sk_proto_read_str(r, SK_PROTO_ERRMSG_MAX);
        if (m->u.error.code == 0 || m->u.error.code > 4095)
            return "error code outside 1..4095";
        return NULL;
    case SK_PROTO_OK: m->u.ok.handle = sk_proto_read_u32(r); return NULL;
    case SK_PROTO_SPAWN: {
        read_strv(r, &m->u.spawn.argv);
        read_strv(r, &m->u.spawn.envp);
        m->u.spawn.cwd = sk_proto_read_str(r, SK_PROTO_PATH_MAX);
        m->u.spawn.flags = sk_proto_read_u32(r);
        m->u.spawn.rows = sk_proto_read_u16(r);
        m->u.spawn.cols = sk_proto_read_u16(r);
        m->u.spawn.timeout_ms = sk_proto_read_i64(r);
        if (r->bad)
            return NULL;
        uint32_t cur = 0;
        struct sk_proto_str arg0;
        if (!sk_proto_strv_next(&m->u.spawn.argv, &cur, &arg0) || arg0.len == 0)
            return "argv is empty or argv[0] is empty";
        if (m->u.spawn.flags & ~SK_PROTO_SPAWN_FLAGS)
            return "unknown spawn flags";
        if ((m->u.spawn.flags & SK_PROTO_SPAWN_PTY) && (m->u.spawn.flags & SK_PROTO_SPAWN_OUTPUT_FDS))
            return "pty combined with output fds";
        if (m->u.spawn.timeout_ms < 0)
            return "negative timeout";
        return NULL;
    }
    case SK_PROTO_SPAWN_OK: {
        m->u.spawn_ok.proc_id = sk_proto_read_u32(r);
        m->u.spawn_ok.pid = sk_proto_read_u32(r);
        m->u.spawn_ok.fds = sk_proto_read_u32(r);
        uint32_t fds = m->u.spawn_ok.fds;
        if (fds & ~(SK_PROTO_FD_STDIN | SK_PROTO_FD_STDOUT | SK_PROTO_FD_STDERR | SK_PROTO_FD_PTY))
            return "unknown fd bits";
        if ((fds & SK_PROTO_FD_PTY) && fds != SK_PROTO_FD_PTY)
            return "pty combined with pipes";
        return NULL;
    }
    case SK_PROTO_SIGNAL:
        m->u.signal.proc_id = sk_proto_read_u32(r);
        m->u.signal.signo = sk_proto_read_u32(r);
        if (m->u.signal.signo == 0 || m->u.signal.signo > SK_PROTO_SIGNAL_MAX)
            return "signal number outside 1..64";
        return NULL;
    case SK_PROTO_RESIZE:
        m->u.resize.proc_id = sk_proto_read_u32(r);
        m->u.resize.rows = sk_proto_read_u16(r);
        m->u.resize.cols = sk_proto_read_u16(r);
        return NULL;
    case SK_PROTO_EXIT:
        m->u.exit.proc_id = sk_proto_read_u32(r);
        m->u.exit.exit_code = (int32_t)sk_proto_read_u32(r);
        m->u.exit.signo = sk_proto_read_u32(r);
        m->u.exit.timed_out = sk_proto_read_bool(r);
        m->u.exit.core_dumped = sk_proto_read_bool(r);
        if (m->u.exit.signo > SK_PROTO_SIGNAL_MAX)
            return "signal number above 64";
        return NULL;
    case SK_PROTO_STAT:
        m->u.stat.path = read_path(r);
        m->u.stat.follow = sk_proto_read_bool(r);
        return NULL;
    case SK_PROTO_STAT_OK: read_stat(r, &m->u.stat_ok); return NULL;
    case SK_PROTO_OPEN_READ: m->u.open_read.path = read_path(r); return NULL;
    case SK_PROTO_WRITE_BEGIN:
        m->u.write_begin.path = read_path(r);
        m->u.write_begin.mode = sk_proto_read_u32(r);
        if (m->u.write_begin.mode > 07777)
            return "mode has bits beyond 07777";
        return NULL;
    case SK_PROTO_WRITE_COMMIT:
    case SK_PROTO_WRITE_ABORT: m->u.write_end.handle = sk_proto_read_u32(r); return NULL;
    case SK_PROTO_LIST:
        m->u.list.path = read_path(r);
        m->u.list.recursive = sk_proto_read_bool(r);
        return NULL;
    case SK_PROTO_LIST_CHUNK: read_list_chunk(r, &m->u.list_chunk); return NULL;
    case SK_PROTO_MKDIR:
        m->u.mkdir.path = read_path(r);
        m->u.mkdir.mode = sk_proto_read_u32(r);
        m->u.mkdir.parents = sk_proto_read_bool(r);
        if (m->u.mkdir.mode > 07777)
            return "mode has bits beyond 07777";
        return NULL;
    case SK_PROTO_REMOVE:
        m->u.remove.path = read_path(r);
        m->u.remove.recursive = sk_proto_read_bool(r);
        return NULL;
    case SK_PROTO_RENAME:
        m->u.rename.from = read_path(r);
        m->u.rename.to = read_path(r);
        return NULL;
    case SK_PROTO_LIST_PROCS: return NULL;
    case SK_PROTO_PROCS: read_procs(r, &m->u.procs); return NULL;
    case SK_PROTO_RELEASE:
    case SK_PROTO_OPEN_PTY: m->u.proc_ref.proc_id = sk_proto_read_u32(r); return NULL;
    case SK_PROTO_WATCH_ADD:
        m->u.watch_add.path = read_path(r);
        m->u.watch_add.recursive = sk_proto_read_bool(r);
        return NULL;
    case SK_PROTO_WATCH_REMOVE:
        m->u.watch_remove.watch_id = sk_proto_read_u32(r);
        return m->u.watch_remove.watch_id == 0 ? "watch id 0" : NULL;
    case SK_PROTO_WATCH_EVENT:
        m->u.watch_event.watch_id = sk_proto_read_u32(r);
        m->u.watch_event.kind = sk_proto_read_u8(r);
        m->u.watch_event.type = sk_proto_read_u8(r);
        m->u.watch_event.cookie = sk_proto_read_u32(r);
        m->u.watch_event.path = sk_proto_read_str(r, SK_PROTO_PATH_MAX);
        return r->bad ? NULL : watch_event_invalid(m);
    default: *known = false; return NULL;
    }
}

int sk_proto_decode(const void *buf, size_t len, struct sk_proto_msg *msg, struct sk_error *err)
{
    memset(msg, 0, sizeof(*msg));
    if (buf == NULL || len < SK_PROTO_HEADER_SIZE)
        return sk_error_setv(err, EPROTO, "message of %zu bytes is shorter than a header", buf ? len : 0);
    struct sk_proto_reader r;
    sk_proto_reader_init(&r, buf, SK_PROTO_HEADER_SIZE);
    uint16_t magic = sk_proto_read_u16(&r);
    uint8_t version = sk_proto_read_u8(&r);
    msg->type = sk_proto_read_u8(&r);
    msg->id = sk_proto_read_u32(&r);
    uint32_t plen = sk_proto_read_u32(&r);
    if (magic != SK_PROTO_MAGIC)
        return sk_error_setv(err, EPROTO, "bad magic 0x%04x", magic);
    if (version != SK_PROTO_VERSION)
        return sk_error_setv(err, EPROTO, "unsupported protocol version %u", version);
    if (plen > SK_PROTO_PAYLOAD_MAX)
        return sk_error_setv(err, EMSGSIZE, "payload of %u bytes exceeds %d", plen, SK_PROTO_PAYLOAD_MAX);
    if (plen != len - SK_PROTO_HEADER_SIZE)
        return sk_error_setv(err, EPROTO, "payload length %u does not match the %zu bytes received", plen,
                             len - SK_PROTO_HEADER_SIZE);

    const char *name = sk_proto_type_name(msg->type);
    struct sk_proto_reader pr;
    sk_proto_reader_init(&pr, (const uint8_t *)buf + SK_PROTO_HEADER_SIZE, plen);
    bool known;
    const char *invalid = decode_payload(&pr, msg, &known);
    if (!known)
        return sk_error_setv(err, EPROTO, "unknown message type %u", msg->type);
    if (pr.bad)
        return sk_error_setv(err, EPROTO, "malformed '%s' message: %s", name, pr.why);
    if (pr.off != pr.len)
        return sk_error_setv(err, EPROTO, "malformed '%s' message: %zu trailing bytes", name, pr.len - pr.off);
    if (invalid != NULL)
        return sk_error_setv(err, EINVAL, "invalid '%s' message: %s", name, invalid);
    return 0;
}

/* ---- encoding ---- */

/* write_strv - count + strings; false when a vec entry is NULL. */
static bool write_strv(struct sk_proto_writer *w, const struct sk_proto_strv *v)
{
    sk_proto_write_u32(w, v->count);
    if (v->vec == NULL) {
        if (v->raw_len) {
            uint8_t *d = put(w, v->raw_len);
            if (d)
                memcpy(d, v->raw, v->raw_len);
        }
        return true;
    }
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->vec[i] == NULL)
            return false;
        sk_proto_write_str(w, sk_proto_str_c(v->vec[i]));
    }
    return true;
}

static void write_list_chunk(struct sk_proto_writer *w, const struct sk_proto_list_chunk *c)
{
    sk_proto_write_bool(w, c->final);
    sk_proto_write_u32(w, c->count);
    if (c->items == NULL) {
        if (c->raw_len) {
            uint8_t *d = put(w, c->raw_len);
            if (d)
                memcpy(d, c->raw, c->raw_len);
        }
        return;
    }
    for (uint32_t i = 0; i < c->count; i++) {
        sk_proto_write_str(w, c->items[i].path);
        write_stat(w, &c->items[i].st);
    }
}

static void write_procs(struct sk_proto_writer *w, const struct sk_proto_procs *p)
{
    sk_proto_write_u32(w, p->count);
    if (p->items == NULL) {
        if (p->raw_len) {
            uint8_t *d = put(w, p->raw_len);
            if (d)
                memcpy(d, p->raw, p->raw_len);
        }
        return;
    }
    for (uint32_t i = 0; i < p->count; i++)
        write_proc(w, &p->items[i]);
}

/* encode_payload - false for an unknown type or a NULL string in a vector. */
static bool encode_payload(struct sk_proto_writer *w, const struct sk_proto_msg *m)
{
    switch (m->type) {
    case SK_PROTO_HELLO: sk_proto_write_u32(w, m->u.hello.version); return true;
    case SK_PROTO_HELLO_OK:
        sk_proto_write_u32(w, m->u.hello_ok.version);
        sk_proto_write_u32(w, m->u.hello_ok.pid);
        return true;
    case SK_PROTO_ERROR:
        sk_proto_write_u32(w, m->u.error.code);
        sk_proto_write_str(w, m->u.error.message);
        return true;
    case SK_PROTO_OK: sk_proto_write_u32(w, m->u.ok.handle); return true;
    case SK_PROTO_SPAWN:
        if (!write_strv(w, &m->u.spawn.argv) || !write_strv(w, &m->u.spawn.envp))
            return false;
        sk_proto_write_str(w, m->u.spawn.cwd);
        sk_proto_write_u32(w, m->u.spawn.flags);
        sk_proto_write_u16(w, m->u.spawn.rows);
        sk_proto_write_u16(w, m->u.spawn.cols);
        sk_proto_write_i64(w, m->u.spawn.timeout_ms);
        return true;
    case SK_PROTO_SPAWN_OK:
        sk_proto_write_u32(w, m->u.spawn_ok.proc_id);
        sk_proto_write_u32(w, m->u.spawn_ok.pid);
        sk_proto_write_u32(w, m->u.spawn_ok.fds);
        return true;
    case SK_PROTO_SIGNAL:
        sk_proto_write_u32(w, m->u.signal.proc_id);
        sk_proto_write_u32(w, m->u.signal.signo);
        return true;
    case SK_PROTO_RESIZE:
        sk_proto_write_u32(w, m->u.resize.proc_id);
        sk_proto_write_u16(w, m->u.resize.rows);
        sk_proto_write_u16(w, m->u.resize.cols);
        return true;
    case SK_PROTO_EXIT:
        sk_proto_write_u32(w, m->u.exit.proc_id);
        sk_proto_write_u32(w, (uint32_t)m->u.exit.exit_code);
        sk_proto_write_u32(w, m->u.exit.signo);
        sk_proto_write_bool(w, m->u.exit.timed_out);
        sk_proto_write_bool(w, m->u.exit.core_dumped);
        return true;
    case SK_PROTO_STAT:
        sk_proto_write_str(w, m->u.stat.path);
        sk_proto_write_bool(w, m->u.stat.follow);
        return true;
    case SK_PROTO_STAT_OK: write_stat(w, &m->u.stat_ok); return true;
    case SK_PROTO_OPEN_READ: sk_proto_write_str(w, m->u.open_read.path); return true;
    case SK_PROTO_WRITE_BEGIN:
        sk_proto_write_str(w, m->u.write_begin.path);
        sk_proto_write_u32(w, m->u.write_begin.mode);
        return true;
    case SK_PROTO_WRITE_COMMIT:
    case SK_PROTO_WRITE_ABORT: sk_proto_write_u32(w, m->u.write_end.handle); return true;
    case SK_PROTO_LIST:
        sk_proto_write_str(w, m->u.list.path);
        sk_proto_write_bool(w, m->u.list.recursive);
        return true;
    case SK_PROTO_LIST_CHUNK: write_list_chunk(w, &m->u.list_chunk); return true;
    case SK_PROTO_MKDIR:
        sk_proto_write_str(w, m->u.mkdir.path);
        sk_proto_write_u32(w, m->u.mkdir.mode);
        sk_proto_write_bool(w, m->u.mkdir.parents);
        return true;
    case SK_PROTO_REMOVE:
        sk_proto_write_str(w, m->u.remove.path);
        sk_proto_write_bool(w, m->u.remove.recursive);
        return true;
    case SK_PROTO_RENAME:
        sk_proto_write_str(w, m->u.rename.from);
        sk_proto_write_str(w, m->u.rename.to);
        return true;
    case SK_PROTO_LIST_PROCS: return true;
    case SK_PROTO_PROCS: write_procs(w, &m->u.procs); return true;
    case SK_PROTO_RELEASE:
    case SK_PROTO_OPEN_PTY: sk_proto_write_u32(w, m->u.proc_ref.proc_id); return true;
    case SK_PROTO_WATCH_ADD:
        sk_proto_write_str(w, m->u.watch_add.path);
        sk_proto_write_bool(w, m->u.watch_add.recursive);
        return true;
    case SK_PROTO_WATCH_REMOVE: sk_proto_write_u32(w, m->u.watch_remove.watch_id); return true;
    case SK_PROTO_WATCH_EVENT:
        sk_proto_write_u32(w, m->u.watch_event.watch_id);
        sk_proto_write_u8(w, m->u.watch_event.kind);
        sk_proto_write_u8(w, m->u.watch_event.type);
        sk_proto_write_u32(w, m->u.watch_event.cookie);
        sk_proto_write_str(w, m->u.watch_event.path);
        return true;
    default: return false;
    }
}

int sk_proto_encode(const struct sk_proto_msg *msg, void *buf, size_t cap, size_t *len, struct sk_error *err)
{
    const char *name = sk_proto_type_name(msg->type);
    struct sk_proto_writer w;
    sk_proto_writer_init(&w, buf, cap < SK_PROTO_MSG_MAX ? cap : SK_PROTO_MSG_MAX);
    sk_proto_write_u16(&w, SK_PROTO_MAGIC);
    sk_proto_write_u8(&w, SK_PROTO_VERSION);
    sk_proto_write_u8(&w, msg->type);
    sk_proto_write_u32(&w, msg->id);
    sk_proto_write_u32(&w, 0); /* payload length, patched below */
    if (w.overflow)
        return sk_error_setv(err, EMSGSIZE, "buffer of %zu bytes is too small for a header", cap);
    if (!encode_payload(&w, msg))
        return sk_error_setv(err, EINVAL, "cannot encode '%s' message (type %u)", name, msg->type);
    if (w.overflow)
        return sk_error_setv(err, EMSGSIZE, "'%s' message exceeds %d bytes", name,
                             cap < SK_PROTO_MSG_MAX ? (int)cap : SK_PROTO_MSG_MAX);
    uint32_t plen = (uint32_t)(w.len - SK_PROTO_HEADER_SIZE);
    w.len = 8;
    sk_proto_write_u32(&w, plen);
    w.len = SK_PROTO_HEADER_SIZE + plen;

    /* Never send what the other side would reject. */
    struct sk_proto_msg check;
    int r = sk_proto_decode(buf, w.len, &check, err);
    if (r < 0)
        return sk_error_prefix(err, "encode");
    *len = w.len;
    return 0;
}
