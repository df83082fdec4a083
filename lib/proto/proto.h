/* proto.h - the skiff-init control protocol: wire codec shared by skiff-init
 * and its host side (lib/runtime/agent.c). docs/protocol.md is the reference.
 *
 * One message is one SOCK_SEQPACKET record: a 12-byte header (magic u16,
 * version u8, type u8, request id u32, payload length u32) and at most
 * SK_PROTO_PAYLOAD_MAX bytes of payload. Every integer is little-endian.
 * Strings are a u32 length and that many bytes, no NUL inside; string
 * vectors are a u32 count and that many strings.
 *
 * sk_proto_decode() accepts any input: it checks the header, that the
 * payload is exactly consumed, every length and count against its bound and
 * every value against its domain (booleans 0/1, known flag bits, signal
 * numbers, mode bits, non-empty paths), so a decoded message needs no further
 * structural checks. Decoded strings and vectors point into the input buffer
 * (no allocation); they live as long as it does. The encoding is canonical:
 * encoding a decoded message gives back the same bytes.
 *
 * No global state; all functions are thread-safe on distinct buffers.
 */
#ifndef SK_PROTO_PROTO_H
#define SK_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define SK_PROTO_MAGIC 0x4b53u /* bytes 'S' 'K' on the wire */
#define SK_PROTO_VERSION 1
#define SK_PROTO_HEADER_SIZE 12
#define SK_PROTO_PAYLOAD_MAX (64 * 1024)
#define SK_PROTO_MSG_MAX (SK_PROTO_HEADER_SIZE + SK_PROTO_PAYLOAD_MAX)
#define SK_PROTO_STRV_MAX 4096  /* strings in one vector (argv, envp) */
#define SK_PROTO_PATH_MAX 4096  /* bytes in a path, without NUL */
#define SK_PROTO_ERRMSG_MAX 512 /* bytes in an ERROR message */
#define SK_PROTO_LIST_MAX 4096  /* entries in one LIST_CHUNK */
#define SK_PROTO_MAX_FDS 4      /* file descriptors attached to one message */
#define SK_PROTO_SIGNAL_MAX 64
#define SK_PROTO_PROCS_MAX 1024 /* processes in one PROCS reply */

/* Message types. The numbers are part of the wire format. */
enum sk_proto_type {
    SK_PROTO_HELLO = 1,         /* host -> init */
    SK_PROTO_HELLO_OK = 2,      /* init -> host */
    SK_PROTO_ERROR = 3,         /* init -> host, reply to any request */
    SK_PROTO_OK = 4,            /* init -> host, reply (+ fd for OPEN_READ, WRITE_BEGIN) */
    SK_PROTO_SPAWN = 5,         /* host -> init */
    SK_PROTO_SPAWN_OK = 6,      /* init -> host, + stdio fds */
    SK_PROTO_SIGNAL = 7,        /* host -> init, reply OK */
    SK_PROTO_RESIZE = 8,        /* host -> init, reply OK */
    SK_PROTO_EXIT = 9,          /* init -> host, unsolicited event (request id 0) */
    SK_PROTO_STAT = 10,         /* host -> init */
    SK_PROTO_STAT_OK = 11,      /* init -> host */
    SK_PROTO_OPEN_READ = 12,    /* host -> init, reply OK + fd */
    SK_PROTO_WRITE_BEGIN = 13,  /* host -> init, reply OK(handle) + fd */
    SK_PROTO_WRITE_COMMIT = 14, /* host -> init, reply OK */
    SK_PROTO_WRITE_ABORT = 15,  /* host -> init, reply OK */
    SK_PROTO_LIST = 16,         /* host -> init, replies LIST_CHUNK... (last has final) */
    SK_PROTO_LIST_CHUNK = 17,   /* init -> host */
    SK_PROTO_MKDIR = 18,        /* host -> init, reply OK */
    SK_PROTO_REMOVE = 19,       /* host -> init, reply OK */
    SK_PROTO_RENAME = 20,       /* host -> init, reply OK */
    SK_PROTO_LIST_PROCS = 21,   /* host -> init, reply PROCS */
    SK_PROTO_PROCS = 22,        /* init -> host */
    SK_PROTO_RELEASE = 23,      /* host -> init, reply OK */
    SK_PROTO_OPEN_PTY = 24,     /* host -> init, reply OK + fd */
    SK_PROTO_WATCH_ADD = 25,    /* host -> init, reply OK(watch id) */
    SK_PROTO_WATCH_REMOVE = 26, /* host -> init, reply OK */
    SK_PROTO_WATCH_EVENT = 27,  /* init -> host, unsolicited event (request id 0) */
};

/* SPAWN flags */
#define SK_PROTO_SPAWN_PTY 0x1u
#define SK_PROTO_SPAWN_STDIN 0x2u
/* The request carries two fds, the child's stdout and stderr, instead of
 * skiff-init creating pipes for them. Not with PTY. */
#define SK_PROTO_SPAWN_OUTPUT_FDS 0x4u
#define SK_PROTO_SPAWN_FLAGS 0x7u

/* SPAWN_OK fd mask: which fds are attached, in this order. Either PTY alone
 * or a combination of the three pipes. */
#define SK_PROTO_FD_STDIN 0x1u
#define SK_PROTO_FD_STDOUT 0x2u
#define SK_PROTO_FD_STDERR 0x4u
#define SK_PROTO_FD_PTY 0x8u

/* WATCH_EVENT kinds. The numbers are part of the wire format. */
enum sk_proto_watch_kind {
    SK_PROTO_WATCH_CREATE = 1,
    SK_PROTO_WATCH_MODIFY = 2,
    SK_PROTO_WATCH_DELETE = 3,    /* an entry; with an empty path, the watched directory itself */
    SK_PROTO_WATCH_MOVE_FROM = 4, /* paired with MOVE_TO by cookie */
    SK_PROTO_WATCH_MOVE_TO = 5,
    SK_PROTO_WATCH_OVERFLOW = 6, /* events were lost: empty path, type '?', cookie 0 */
};
/* WATCH_EVENT entry types: 'f' regular file, 'd' directory, 'l' symlink,
 * 'o' other, '?' a non-directory whose type is unknown (gone when looked at). */
#define SK_PROTO_WATCH_TYPE_UNKNOWN '?'

/* A string view into a buffer: not NUL-terminated, never contains NUL. */
struct sk_proto_str {
    const char *ptr;
    uint32_t len;
};

/* A string vector. To encode, set `vec` (count NUL-terminated strings). A
 * decoded vector has vec == NULL and `raw` pointing at its validated wire
 * bytes; walk it with sk_proto_strv_next. */
struct sk_proto_strv {
    uint32_t count;
    const char *const *vec;
    const uint8_t *raw;
    uint32_t raw_len;
};

/* File metadata as it travels (STAT_OK, LIST_CHUNK entries). */
struct sk_proto_stat {
    uint8_t type;  /* 'f', 'd', 'l' or 'o' */
    uint32_t mode; /* permission bits, <= 07777 */
    uint64_t size;
    int64_t mtime_ns;
    uint32_t uid, gid;
};

struct sk_proto_entry {
    struct sk_proto_str path; /* 1..SK_PROTO_PATH_MAX bytes */
    struct sk_proto_stat st;
};

/* One process as PROCS reports it. */
struct sk_proto_proc {
    uint32_t proc_id;
    uint32_t pid;   /* in the sandbox's pid namespace */
    uint32_t flags; /* the SPAWN flags it was started with */
    bool exited;    /* reaped, its EXIT not yet released */
    /* Only when exited (zero otherwise, except timed_out, which a running
     * process has once its timeout passed and the SIGKILL is on its way). */
    int32_t exit_code;
    uint32_t signo; /* 0..SK_PROTO_SIGNAL_MAX */
    bool timed_out;
    bool core_dumped;
};

/* A PROCS reply. To encode, set `items`. A decoded one has items == NULL
 * and `raw`; walk it with sk_proto_procs_next. */
struct sk_proto_procs {
    uint32_t count; /* <= SK_PROTO_PROCS_MAX */
    const struct sk_proto_proc *items;
    const uint8_t *raw;
    uint32_t raw_len;
};

/* A chunk of a listing. To encode, set `items`. A decoded chunk has
 * items == NULL and `raw`; walk it with sk_proto_list_next. */
struct sk_proto_list_chunk {
    bool final;
    uint32_t count;
    const struct sk_proto_entry *items;
    const uint8_t *raw;
    uint32_t raw_len;
};

struct sk_proto_msg {
    uint8_t type; /* enum sk_proto_type */
    uint32_t id;  /* request id; replies carry the request's, events 0 */
    union {
        struct {
            uint32_t version;
        } hello;
        struct {
            uint32_t version;
            uint32_t pid;
        } hello_ok;
        struct {
            uint32_t code; /* errno, 1..4095 */
            struct sk_proto_str message;
        } error;
        struct {
            uint32_t handle; /* WRITE_BEGIN's handle, WATCH_ADD's watch id, else 0 */
        } ok;
        struct {
            struct sk_proto_strv argv; /* 1..SK_PROTO_STRV_MAX, argv[0] non-empty */
            struct sk_proto_strv envp;
            struct sk_proto_str cwd; /* empty = "/" */
            uint32_t flags;          /* SK_PROTO_SPAWN_* */
            uint16_t rows, cols;
            int64_t timeout_ms; /* >= 0, 0 = none */
        } spawn;
        struct {
            uint32_t proc_id;
            uint32_t pid;
            uint32_t fds; /* SK_PROTO_FD_* */
        } spawn_ok;
        struct {
            uint32_t proc_id;
            uint32_t signo; /* 1..SK_PROTO_SIGNAL_MAX */
        } signal;
        struct {
            uint32_t proc_id;
            uint16_t rows, cols;
        } resize;
        struct {
            uint32_t proc_id;
            int32_t exit_code;
            uint32_t signo; /* 0..SK_PROTO_SIGNAL_MAX */
            bool timed_out;
            bool core_dumped;
        } exit;
        struct {
            struct sk_proto_str path;
            bool follow;
        } stat;
        struct sk_proto_stat stat_ok;
        struct {
            struct sk_proto_str path;
        } open_read;
        struct {
            struct sk_proto_str path;
            uint32_t mode;
        } write_begin;
        struct {
            uint32_t handle;
        } write_end; /* WRITE_COMMIT and WRITE_ABORT */
        struct {
            struct sk_proto_str path;
            bool recursive;
        } list;
        struct sk_proto_list_chunk list_chunk;
        struct {
            struct sk_proto_str path;
            uint32_t mode;
            bool parents;
        } mkdir;
        struct {
            struct sk_proto_str path;
            bool recursive;
        } remove;
        struct {
            struct sk_proto_str from, to;
        } rename;
        struct sk_proto_procs procs;
        struct {
            uint32_t proc_id;
        } proc_ref; /* RELEASE and OPEN_PTY */
        struct {
            struct sk_proto_str path;
            bool recursive;
        } watch_add;
        struct {
            uint32_t watch_id; /* non-zero */
        } watch_remove;
        struct {
            uint32_t watch_id; /* non-zero */
            uint8_t kind;      /* enum sk_proto_watch_kind */
            uint8_t type;      /* 'f', 'd', 'l', 'o' or '?' */
            uint32_t cookie;   /* pairs MOVE_FROM with MOVE_TO; 0 for other kinds */
            /* Relative to the watched directory: 0..SK_PROTO_PATH_MAX bytes,
             * no leading '/', no empty, "." or ".." component. Empty only
             * for OVERFLOW and for DELETE of the watched directory. */
            struct sk_proto_str path;
        } watch_event;
    } u;
};

/* sk_proto_decode - decode one whole message of `len` bytes into *msg.
 * Accepts any input. msg->type and msg->id are filled as soon as the header
 * could be read, also on failure, so an ERROR reply can name the request.
 * Errors: EPROTO (short, bad magic or version, length mismatch, truncated or
 * trailing payload, unknown type), EMSGSIZE (payload over the maximum),
 * EINVAL (a value outside its domain; the message names the field). */
int sk_proto_decode(const void *buf, size_t len, struct sk_proto_msg *msg, struct sk_error *err);

/* sk_proto_encode - encode *msg into buf (cap bytes; SK_PROTO_MSG_MAX always
 * suffices) and set *len. The result is checked with sk_proto_decode, so
 * nothing the other side would reject is sent. Errors: EMSGSIZE when the
 * payload exceeds SK_PROTO_PAYLOAD_MAX or cap, those of sk_proto_decode. */
int sk_proto_encode(const struct sk_proto_msg *msg, void *buf, size_t cap, size_t *len, struct sk_error *err);

/* sk_proto_strv_next - iterate a vector: start with *cursor = 0; returns
 * false after the last string. Works for encoder and decoder vectors. */
bool sk_proto_strv_next(const struct sk_proto_strv *v, uint32_t *cursor, struct sk_proto_str *s);

/* sk_proto_list_next - iterate the entries of a chunk, like strv_next. */
bool sk_proto_list_next(const struct sk_proto_list_chunk *c, uint32_t *cursor, struct sk_proto_entry *e);

/* sk_proto_procs_next - iterate the processes of a PROCS, like strv_next. */
bool sk_proto_procs_next(const struct sk_proto_procs *p, uint32_t *cursor, struct sk_proto_proc *out);

/* sk_proto_entry_size - bytes `e` takes in a LIST_CHUNK payload. */
size_t sk_proto_entry_size(const struct sk_proto_entry *e);
/* Payload bytes of a LIST_CHUNK before its entries. */
#define SK_PROTO_LIST_CHUNK_OVERHEAD 5

/* sk_proto_str_c - a view of the C string s (NULL gives an empty view). */
struct sk_proto_str sk_proto_str_c(const char *s);

/* sk_proto_str_copy - copy s into buf as a C string; -ENAMETOOLONG (with
 * err) when it does not fit in size bytes. */
int sk_proto_str_copy(struct sk_proto_str s, char *buf, size_t size, struct sk_error *err);

/* sk_proto_str_eq - s equals the C string c. */
bool sk_proto_str_eq(struct sk_proto_str s, const char *c);

/* sk_proto_type_name - "SPAWN", "EXIT", ...; "unknown" otherwise. */
const char *sk_proto_type_name(unsigned type);

/* sk_proto_watch_kind_name - "create", "modify", "delete", "move_from",
 * "move_to", "overflow"; "unknown" otherwise. */
const char *sk_proto_watch_kind_name(unsigned kind);

/* sk_proto_rel_path_ok - p is a safe relative path: non-empty, no leading
 * '/', and no empty, "." or ".." component. */
bool sk_proto_rel_path_ok(struct sk_proto_str p);

/* Bounds-checked little-endian reader. Failures are sticky: after the first
 * one every read returns 0/empty, `bad` is set and `why` says what failed. */
struct sk_proto_reader {
    const uint8_t *p;
    size_t len, off;
    bool bad;
    const char *why;
};

void sk_proto_reader_init(struct sk_proto_reader *r, const void *p, size_t len);
uint8_t sk_proto_read_u8(struct sk_proto_reader *r);
uint16_t sk_proto_read_u16(struct sk_proto_reader *r);
uint32_t sk_proto_read_u32(struct sk_proto_reader *r);
uint64_t sk_proto_read_u64(struct sk_proto_reader *r);
int64_t sk_proto_read_i64(struct sk_proto_reader *r);
/* A boolean is one byte, 0 or 1; anything else fails. */
bool sk_proto_read_bool(struct sk_proto_reader *r);
/* A string of at most `max` bytes without NUL. */
struct sk_proto_str sk_proto_read_str(struct sk_proto_reader *r, uint32_t max);
/* u32 length + that many raw bytes (at most `max`). */
const uint8_t *sk_proto_read_bytes(struct sk_proto_reader *r, uint32_t max, uint32_t *len);

/* Bounds-checked little-endian writer; `overflow` is sticky. */
struct sk_proto_writer {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
};

void sk_proto_writer_init(struct sk_proto_writer *w, void *buf, size_t cap);
void sk_proto_write_u8(struct sk_proto_writer *w, uint8_t v);
void sk_proto_write_u16(struct sk_proto_writer *w, uint16_t v);
void sk_proto_write_u32(struct sk_proto_writer *w, uint32_t v);
void sk_proto_write_u64(struct sk_proto_writer *w, uint64_t v);
void sk_proto_write_i64(struct sk_proto_writer *w, int64_t v);
void sk_proto_write_bool(struct sk_proto_writer *w, bool v);
void sk_proto_write_str(struct sk_proto_writer *w, struct sk_proto_str s);
void sk_proto_write_bytes(struct sk_proto_writer *w, const void *p, uint32_t len);

#endif
