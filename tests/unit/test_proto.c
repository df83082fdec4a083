/* test_proto.c - the skiff-init wire codec (lib/proto): primitives, a round
 * trip of every message type, rejection of truncated, oversized, malformed
 * and out-of-domain input, and the SEQPACKET channel with fds. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "harness.h"
#include "proto/channel.h"
#include "proto/proto.h"

static uint8_t buf[SK_PROTO_MSG_MAX];
static uint8_t buf2[SK_PROTO_MSG_MAX];

/* encode_ok - encode m into buf, decode it into *out, and check that
 * encoding the decoded message gives the same bytes. */
static size_t roundtrip(const struct sk_proto_msg *m, struct sk_proto_msg *out)
{
    struct sk_error err = {0};
    size_t len = 0, len2 = 0;
    ASSERT_OK(sk_proto_encode(m, buf, sizeof(buf), &len, &err));
    ASSERT_GE_INT(len, SK_PROTO_HEADER_SIZE);
    ASSERT_OK(sk_proto_decode(buf, len, out, &err));
    ASSERT_EQ_INT(out->type, m->type);
    ASSERT_EQ_INT(out->id, m->id);
    ASSERT_OK(sk_proto_encode(out, buf2, sizeof(buf2), &len2, &err));
    ASSERT_EQ_INT(len2, len);
    ASSERT_TRUE(memcmp(buf, buf2, len) == 0);
    return len;
}

static bool str_is(struct sk_proto_str s, const char *c)
{
    return sk_proto_str_eq(s, c);
}

/* set_plen - patch the payload length field of the message in b. */
static void set_plen(uint8_t *b, uint32_t plen)
{
    b[8] = (uint8_t)plen;
    b[9] = (uint8_t)(plen >> 8);
    b[10] = (uint8_t)(plen >> 16);
    b[11] = (uint8_t)(plen >> 24);
}

/* every payload prefix of a valid message (with a matching length field)
 * must be rejected, and so must one extra trailing byte. */
static void assert_truncations_rejected(size_t len)
{
    static uint8_t t[SK_PROTO_MSG_MAX + 1];
    struct sk_proto_msg m;
    struct sk_error err = {0};
    size_t plen = len - SK_PROTO_HEADER_SIZE;
    for (size_t cut = 0; cut < plen; cut++) {
        memcpy(t, buf, SK_PROTO_HEADER_SIZE + cut);
        set_plen(t, (uint32_t)cut);
        int r = sk_proto_decode(t, SK_PROTO_HEADER_SIZE + cut, &m, &err);
        if (r >= 0)
            FAIL("type %u: payload cut to %zu of %zu bytes decoded", buf[3], cut, plen);
    }
    memcpy(t, buf, len);
    t[len] = 0;
    set_plen(t, (uint32_t)plen + 1);
    ASSERT_LT_INT(sk_proto_decode(t, len + 1, &m, &err), 0);
    ASSERT_CONTAINS(err.msg, "trailing");
}

TEST(primitives_are_little_endian_and_round_trip)
{
    uint8_t b[64];
    struct sk_proto_writer w;
    sk_proto_writer_init(&w, b, sizeof(b));
    sk_proto_write_u8(&w, 0xab);
    sk_proto_write_u16(&w, 0x1234);
    sk_proto_write_u32(&w, 0x01020304);
    sk_proto_write_u64(&w, 0x1122334455667788ULL);
    sk_proto_write_i64(&w, -5);
    sk_proto_write_bool(&w, true);
    sk_proto_write_str(&w, sk_proto_str_c("hey"));
    sk_proto_write_bytes(&w, "\0\1", 2);
    ASSERT_FALSE(w.overflow);
    ASSERT_EQ_INT(w.len, 1 + 2 + 4 + 8 + 8 + 1 + 7 + 6);
    ASSERT_EQ_INT(b[1], 0x34);
    ASSERT_EQ_INT(b[2], 0x12);
    ASSERT_EQ_INT(b[3], 0x04);
    ASSERT_EQ_INT(b[6], 0x01);
    ASSERT_EQ_INT(b[7], 0x88);

    struct sk_proto_reader r;
    sk_proto_reader_init(&r, b, w.len);
    ASSERT_EQ_INT(sk_proto_read_u8(&r), 0xab);
    ASSERT_EQ_INT(sk_proto_read_u16(&r), 0x1234);
    ASSERT_EQ_INT(sk_proto_read_u32(&r), 0x01020304);
    ASSERT_TRUE(sk_proto_read_u64(&r) == 0x1122334455667788ULL);
    ASSERT_EQ_INT(sk_proto_read_i64(&r), -5);
    ASSERT_TRUE(sk_proto_read_bool(&r));
    ASSERT_TRUE(str_is(sk_proto_read_str(&r, 10), "hey"));
    uint32_t n;
    const uint8_t *p = sk_proto_read_bytes(&r, 10, &n);
    ASSERT_EQ_INT(n, 2);
    ASSERT_TRUE(p != NULL && p[0] == 0 && p[1] == 1);
    ASSERT_FALSE(r.bad);
    ASSERT_EQ_INT(r.off, r.len);
}

TEST(reader_failures_are_sticky)
{
    uint8_t b[] = {1, 2, 3};
    struct sk_proto_reader r;
    sk_proto_reader_init(&r, b, sizeof(b));
    ASSERT_EQ_INT(sk_proto_read_u32(&r), 0);
    ASSERT_TRUE(r.bad);
    ASSERT_EQ_STR(r.why, "truncated");
    ASSERT_EQ_INT(sk_proto_read_u8(&r), 0); /* nothing more after a failure */
    ASSERT_EQ_INT(r.off, 0);

    uint8_t s[] = {3, 0, 0, 0, 'a', 0, 'b'};
    sk_proto_reader_init(&r, s, sizeof(s));
    (void)sk_proto_read_str(&r, 100);
    ASSERT_TRUE(r.bad);
    ASSERT_CONTAINS(r.why, "NUL");

    uint8_t l[] = {3, 0, 0, 0, 'a', 'b', 'c'};
    sk_proto_reader_init(&r, l, sizeof(l));
    (void)sk_proto_read_str(&r, 2);
    ASSERT_TRUE(r.bad);
    ASSERT_CONTAINS(r.why, "too long");

    uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a'};
    sk_proto_reader_init(&r, huge, sizeof(huge));
    (void)sk_proto_read_str(&r, UINT32_MAX);
    ASSERT_TRUE(r.bad);

    uint8_t bl[] = {2};
    sk_proto_reader_init(&r, bl, sizeof(bl));
    (void)sk_proto_read_bool(&r);
    ASSERT_TRUE(r.bad);

    struct sk_proto_writer w;
    uint8_t small[3];
    sk_proto_writer_init(&w, small, sizeof(small));
    sk_proto_write_u32(&w, 1);
    ASSERT_TRUE(w.overflow);
    sk_proto_write_u8(&w, 1);
    ASSERT_EQ_INT(w.len, 0);
}

TEST(round_trip_hello_error_ok)
{
    struct sk_proto_msg m = {.type = SK_PROTO_HELLO, .id = 7}, d;
    m.u.hello.version = 1;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.hello.version, 1);

    m = (struct sk_proto_msg){.type = SK_PROTO_HELLO_OK, .id = 7};
    m.u.hello_ok.version = 1;
    m.u.hello_ok.pid = 4242;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.hello_ok.pid, 4242);

    m = (struct sk_proto_msg){.type = SK_PROTO_ERROR, .id = 9};
    m.u.error.code = ENOENT;
    m.u.error.message = sk_proto_str_c("exec 'foo': No such file or directory");
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.error.code, ENOENT);
    ASSERT_TRUE(str_is(d.u.error.message, "exec 'foo': No such file or directory"));

    m = (struct sk_proto_msg){.type = SK_PROTO_OK, .id = 10};
    m.u.ok.handle = 99;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.ok.handle, 99);
}

TEST(round_trip_spawn_and_process_messages)
{
    const char *argv[] = {"sh", "-c", "echo hi", "", NULL};
    const char *envp[] = {"PATH=/bin", "A=b=c", NULL};
    struct sk_proto_msg m = {.type = SK_PROTO_SPAWN, .id = 0xfffffffe}, d;
    m.u.spawn.argv = (struct sk_proto_strv){.count = 4, .vec = argv};
    m.u.spawn.envp = (struct sk_proto_strv){.count = 2, .vec = envp};
    m.u.spawn.cwd = sk_proto_str_c("/tmp");
    m.u.spawn.flags = SK_PROTO_SPAWN_PTY | SK_PROTO_SPAWN_STDIN;
    m.u.spawn.rows = 24;
    m.u.spawn.cols = 80;
    m.u.spawn.timeout_ms = 1500;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.spawn.argv.count, 4);
    ASSERT_TRUE(d.u.spawn.argv.vec == NULL);
    uint32_t cur = 0, i = 0;
    struct sk_proto_str s;
    while (sk_proto_strv_next(&d.u.spawn.argv, &cur, &s))
        ASSERT_TRUE(str_is(s, argv[i++]));
    ASSERT_EQ_INT(i, 4);
    cur = i = 0;
    while (sk_proto_strv_next(&d.u.spawn.envp, &cur, &s))
        ASSERT_TRUE(str_is(s, envp[i++]));
    ASSERT_EQ_INT(i, 2);
    ASSERT_TRUE(str_is(d.u.spawn.cwd, "/tmp"));
    ASSERT_EQ_INT(d.u.spawn.flags, 3);
    ASSERT_EQ_INT(d.u.spawn.rows, 24);
    ASSERT_EQ_INT(d.u.spawn.cols, 80);
    ASSERT_EQ_INT(d.u.spawn.timeout_ms, 1500);

    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN_OK, .id = 1};
    m.u.spawn_ok.proc_id = 5;
    m.u.spawn_ok.pid = 77;
    m.u.spawn_ok.fds = SK_PROTO_FD_STDIN | SK_PROTO_FD_STDOUT | SK_PROTO_FD_STDERR;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.spawn_ok.fds, 7);

    m = (struct sk_proto_msg){.type = SK_PROTO_SIGNAL, .id = 2};
    m.u.signal.proc_id = 5;
    m.u.signal.signo = 15;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.signal.signo, 15);

    m = (struct sk_proto_msg){.type = SK_PROTO_RESIZE, .id = 3};
    m.u.resize.proc_id = 5;
    m.u.resize.rows = 40;
    m.u.resize.cols = 100;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.resize.cols, 100);

    m = (struct sk_proto_msg){.type = SK_PROTO_EXIT, .id = 0};
    m.u.exit.proc_id = 5;
    m.u.exit.exit_code = -1;
    m.u.exit.signo = 9;
    m.u.exit.timed_out = true;
    m.u.exit.core_dumped = true;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.exit.exit_code, -1);
    ASSERT_EQ_INT(d.u.exit.signo, 9);
    ASSERT_TRUE(d.u.exit.timed_out && d.u.exit.core_dumped);
}

/* The messages a new owner uses to rebuild its view of a persistent
 * sandbox: LIST_PROCS/PROCS, RELEASE, OPEN_PTY, and SPAWN with output fds. */
TEST(round_trip_owner_messages)
{
    struct sk_proto_msg m = {.type = SK_PROTO_LIST_PROCS, .id = 9}, d;
    ASSERT_EQ_INT(roundtrip(&m, &d), SK_PROTO_HEADER_SIZE);
    assert_truncations_rejected(SK_PROTO_HEADER_SIZE);

    const struct sk_proto_proc items[] = {
        {.proc_id = 1, .pid = 42, .flags = SK_PROTO_SPAWN_OUTPUT_FDS | SK_PROTO_SPAWN_STDIN},
        {.proc_id = 2, .pid = 43, .flags = SK_PROTO_SPAWN_PTY, .timed_out = true},
        {.proc_id = 7, .pid = 44, .exited = true, .exit_code = 137, .signo = 9, .timed_out = true, .core_dumped = true},
        {.proc_id = 8, .pid = 45, .exited = true, .exit_code = -3},
    };
    m = (struct sk_proto_msg){.type = SK_PROTO_PROCS, .id = 9};
    m.u.procs = (struct sk_proto_procs){.count = 4, .items = items};
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.procs.count, 4);
    ASSERT_TRUE(d.u.procs.items == NULL);
    uint32_t cur = 0, i = 0;
    struct sk_proto_proc p;
    while (sk_proto_procs_next(&d.u.procs, &cur, &p)) {
        ASSERT_LT_INT(i, 4);
        const struct sk_proto_proc *w = &items[i++];
        ASSERT_EQ_INT(p.proc_id, w->proc_id);
        ASSERT_EQ_INT(p.pid, w->pid);
        ASSERT_EQ_INT(p.flags, w->flags);
        ASSERT_EQ_INT(p.exited, w->exited);
        ASSERT_EQ_INT(p.exit_code, w->exit_code);
        ASSERT_EQ_INT(p.signo, w->signo);
        ASSERT_EQ_INT(p.timed_out, w->timed_out);
        ASSERT_EQ_INT(p.core_dumped, w->core_dumped);
    }
    ASSERT_EQ_INT(i, 4);
    /* An empty process list is fine. */
    m.u.procs = (struct sk_proto_procs){.count = 0};
    roundtrip(&m, &d);
    ASSERT_EQ_INT(d.u.procs.count, 0);
    cur = 0;
    ASSERT_FALSE(sk_proto_procs_next(&d.u.procs, &cur, &p));

    m = (struct sk_proto_msg){.type = SK_PROTO_RELEASE, .id = 10};
    m.u.proc_ref.proc_id = 7;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.proc_ref.proc_id, 7);
    m.type = SK_PROTO_OPEN_PTY;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.type, SK_PROTO_OPEN_PTY);
    ASSERT_EQ_INT(d.u.proc_ref.proc_id, 7);

    const char *argv[] = {"sh", NULL};
    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN, .id = 11};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 1, .vec = argv};
    m.u.spawn.flags = SK_PROTO_SPAWN_OUTPUT_FDS | SK_PROTO_SPAWN_STDIN;
    roundtrip(&m, &d);
    ASSERT_EQ_INT(d.u.spawn.flags, SK_PROTO_SPAWN_OUTPUT_FDS | SK_PROTO_SPAWN_STDIN);

    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_LIST_PROCS), "LIST_PROCS");
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_PROCS), "PROCS");
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_RELEASE), "RELEASE");
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_OPEN_PTY), "OPEN_PTY");
}

/* PROCS entries are checked like every other value: bounded count, known
 * flags, signal range, and no exit status on a running process. */
TEST(procs_values_are_checked)
{
    struct sk_error err = {0};
    static struct sk_proto_proc many[SK_PROTO_PROCS_MAX + 1];
    for (uint32_t i = 0; i <= SK_PROTO_PROCS_MAX; i++)
        many[i] = (struct sk_proto_proc){.proc_id = i + 1, .pid = i + 2};
    struct sk_proto_msg m = {.type = SK_PROTO_PROCS, .id = 1}, d;
    m.u.procs = (struct sk_proto_procs){.count = SK_PROTO_PROCS_MAX, .items = many};
    size_t len;
    /* The most a skiff-init can track fits one message. */
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    ASSERT_OK(sk_proto_decode(buf, len, &d, &err));
    m.u.procs.count = SK_PROTO_PROCS_MAX + 1;
    ASSERT_EQ_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "too many processes");

    struct sk_proto_proc one = {.proc_id = 1, .pid = 2, .flags = 8};
    m.u.procs = (struct sk_proto_procs){.count = 1, .items = &one};
    ASSERT_EQ_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "flags");
    one = (struct sk_proto_proc){.proc_id = 1, .pid = 2, .exited = true, .signo = 65};
    ASSERT_EQ_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), -EPROTO);
    one = (struct sk_proto_proc){.proc_id = 1, .pid = 2, .exit_code = 1};
    ASSERT_EQ_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "running process with an exit status");
    one = (struct sk_proto_proc){.proc_id = 1, .pid = 2, .exited = true, .exit_code = 1};
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    /* A boolean byte of 2 (the `exited` flag) is not canonical. */
    buf[SK_PROTO_HEADER_SIZE + 4 + 12] = 2;
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "boolean");

    /* A count that claims more entries than the payload holds. */
    uint8_t b[SK_PROTO_HEADER_SIZE + 4] = {0x53, 0x4b, 1, SK_PROTO_PROCS, 1, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0};
    ASSERT_EQ_INT(sk_proto_decode(b, sizeof(b), &d, &err), -EPROTO);
}

TEST(round_trip_file_messages)
{
    struct sk_proto_msg m = {.type = SK_PROTO_STAT, .id = 1}, d;
    m.u.stat.path = sk_proto_str_c("/etc/passwd");
    m.u.stat.follow = true;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_TRUE(str_is(d.u.stat.path, "/etc/passwd") && d.u.stat.follow);

    m = (struct sk_proto_msg){.type = SK_PROTO_STAT_OK, .id = 1};
    m.u.stat_ok = (struct sk_proto_stat){'d', 0755, 4096, -123456789, 1000, 1001};
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.stat_ok.type, 'd');
    ASSERT_EQ_INT(d.u.stat_ok.mode, 0755);
    ASSERT_EQ_INT(d.u.stat_ok.mtime_ns, -123456789);
    ASSERT_EQ_INT(d.u.stat_ok.gid, 1001);

    m = (struct sk_proto_msg){.type = SK_PROTO_OPEN_READ, .id = 2};
    m.u.open_read.path = sk_proto_str_c("a");
    assert_truncations_rejected(roundtrip(&m, &d));

    m = (struct sk_proto_msg){.type = SK_PROTO_WRITE_BEGIN, .id = 3};
    m.u.write_begin.path = sk_proto_str_c("dir/file");
    m.u.write_begin.mode = 04755;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.write_begin.mode, 04755);

    m = (struct sk_proto_msg){.type = SK_PROTO_WRITE_COMMIT, .id = 4};
    m.u.write_end.handle = 12;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.write_end.handle, 12);
    m.type = SK_PROTO_WRITE_ABORT;
    assert_truncations_rejected(roundtrip(&m, &d));

    m = (struct sk_proto_msg){.type = SK_PROTO_LIST, .id = 5};
    m.u.list.path = sk_proto_str_c(".");
    m.u.list.recursive = true;
    assert_truncations_rejected(roundtrip(&m, &d));

    struct sk_proto_entry items[] = {
        {sk_proto_str_c("x"), {'f', 0644, 3, 1, 0, 0}},
        {sk_proto_str_c("e/y"), {'l', 0777, 1, 2, 3, 4}},
    };
    m = (struct sk_proto_msg){.type = SK_PROTO_LIST_CHUNK, .id = 5};
    m.u.list_chunk = (struct sk_proto_list_chunk){.final = true, .count = 2, .items = items};
    size_t len = roundtrip(&m, &d);
    assert_truncations_rejected(len);
    ASSERT_EQ_INT(len, SK_PROTO_HEADER_SIZE + SK_PROTO_LIST_CHUNK_OVERHEAD + sk_proto_entry_size(&items[0]) +
                           sk_proto_entry_size(&items[1]));
    ASSERT_TRUE(d.u.list_chunk.final);
    uint32_t cur = 0, i = 0;
    struct sk_proto_entry e;
    while (sk_proto_list_next(&d.u.list_chunk, &cur, &e)) {
        ASSERT_TRUE(sk_proto_str_eq(e.path, i == 0 ? "x" : "e/y"));
        ASSERT_EQ_INT(e.st.type, items[i].st.type);
        ASSERT_EQ_INT(e.st.gid, items[i].st.gid);
        i++;
    }
    ASSERT_EQ_INT(i, 2);

    m = (struct sk_proto_msg){.type = SK_PROTO_MKDIR, .id = 6};
    m.u.mkdir.path = sk_proto_str_c("a/b/c");
    m.u.mkdir.mode = 0700;
    m.u.mkdir.parents = true;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_TRUE(d.u.mkdir.parents);

    m = (struct sk_proto_msg){.type = SK_PROTO_REMOVE, .id = 7};
    m.u.remove.path = sk_proto_str_c("a");
    m.u.remove.recursive = true;
    assert_truncations_rejected(roundtrip(&m, &d));

    m = (struct sk_proto_msg){.type = SK_PROTO_RENAME, .id = 8};
    m.u.rename.from = sk_proto_str_c("a");
    m.u.rename.to = sk_proto_str_c("b");
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_TRUE(str_is(d.u.rename.to, "b"));
}

/* A valid HELLO in buf; returns its length. */
static size_t hello_bytes(uint32_t id)
{
    struct sk_proto_msg m = {.type = SK_PROTO_HELLO, .id = id};
    struct sk_error err = {0};
    size_t len;
    m.u.hello.version = 1;
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    return len;
}

TEST(bad_headers_are_rejected_but_name_the_request)
{
    struct sk_proto_msg m;
    struct sk_error err = {0};
    size_t len = hello_bytes(31);
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), 0);

    for (size_t n = 0; n < SK_PROTO_HEADER_SIZE; n++)
        ASSERT_EQ_INT(sk_proto_decode(buf, n, &m, &err), -EPROTO);
    ASSERT_EQ_INT(sk_proto_decode(NULL, 100, &m, &err), -EPROTO);

    buf[0] ^= 0xff; /* magic */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "magic");
    ASSERT_EQ_INT(m.id, 31); /* so an ERROR reply can name it */
    buf[0] ^= 0xff;

    buf[2] = 2; /* version */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "version");
    buf[2] = 1;

    buf[3] = 200; /* type */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "unknown message type 200");
    buf[3] = 0;
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EPROTO);
    buf[3] = SK_PROTO_HELLO;

    set_plen(buf, 5); /* says more than there is */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EPROTO);
    set_plen(buf, 3); /* says less */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EPROTO);
    set_plen(buf, 0xffffffffu);
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EMSGSIZE);
    set_plen(buf, SK_PROTO_PAYLOAD_MAX + 1);
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), -EMSGSIZE);
    set_plen(buf, 4);
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &m, &err), 0);
}

TEST(oversized_messages_are_rejected)
{
    /* argv of 70 KiB cannot be encoded... */
    static char big[70 * 1024];
    memset(big, 'x', sizeof(big) - 1);
    const char *argv[] = {big, NULL};
    struct sk_proto_msg m = {.type = SK_PROTO_SPAWN, .id = 1}, d;
    m.u.spawn.argv = (struct sk_proto_strv){.count = 1, .vec = argv};
    struct sk_error err = {0};
    size_t len;
    ASSERT_EQ_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), -EMSGSIZE);
    /* ...nor into a small buffer... */
    uint8_t small[20];
    const char *argv2[] = {"echo", "hello world", NULL};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 2, .vec = argv2};
    ASSERT_EQ_INT(sk_proto_encode(&m, small, sizeof(small), &len, &err), -EMSGSIZE);
    /* ...and a message above the maximum is not decoded. */
    static uint8_t huge[SK_PROTO_MSG_MAX + 8];
    hello_bytes(1);
    memcpy(huge, buf, SK_PROTO_HEADER_SIZE);
    set_plen(huge, SK_PROTO_PAYLOAD_MAX + 8);
    ASSERT_EQ_INT(sk_proto_decode(huge, sizeof(huge), &d, &err), -EMSGSIZE);
    /* A path over SK_PROTO_PATH_MAX is refused on both sides. */
    static char longpath[SK_PROTO_PATH_MAX + 2];
    memset(longpath, 'a', SK_PROTO_PATH_MAX + 1);
    m = (struct sk_proto_msg){.type = SK_PROTO_STAT, .id = 1};
    m.u.stat.path = sk_proto_str_c(longpath);
    ASSERT_LT_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), 0);
    longpath[SK_PROTO_PATH_MAX] = '\0';
    m.u.stat.path = sk_proto_str_c(longpath);
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
}

TEST(embedded_nul_and_empty_paths_are_rejected)
{
    struct sk_proto_msg m = {.type = SK_PROTO_STAT, .id = 4}, d;
    struct sk_error err = {0};
    size_t len;
    m.u.stat.path = (struct sk_proto_str){"ab\0cd", 5};
    ASSERT_LT_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), 0);
    ASSERT_CONTAINS(err.msg, "NUL");

    /* Hand-made: patch a NUL into an encoded path. */
    m.u.stat.path = sk_proto_str_c("abxcd");
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    buf[SK_PROTO_HEADER_SIZE + 4 + 2] = '\0';
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "NUL");
    ASSERT_EQ_INT(d.id, 4);

    /* NUL inside an argv string. */
    const char *argv[] = {"echo", "hi", NULL};
    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN, .id = 5};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 2, .vec = argv};
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    buf[SK_PROTO_HEADER_SIZE + 4 + 4 + 4 + 4 + 1] = '\0'; /* the 'i' of "hi" */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EPROTO);

    m = (struct sk_proto_msg){.type = SK_PROTO_REMOVE, .id = 6};
    m.u.remove.path = sk_proto_str_c("");
    ASSERT_LT_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), 0);
    ASSERT_CONTAINS(err.msg, "empty path");
}

TEST(counts_are_bounded)
{
    struct sk_error err = {0};
    struct sk_proto_msg d;
    /* SPAWN whose argv count claims 4097 strings. */
    static const char *many[SK_PROTO_STRV_MAX + 2];
    for (int i = 0; i < SK_PROTO_STRV_MAX + 1; i++)
        many[i] = "a";
    struct sk_proto_msg m = {.type = SK_PROTO_SPAWN, .id = 1};
    m.u.spawn.argv = (struct sk_proto_strv){.count = SK_PROTO_STRV_MAX, .vec = many};
    size_t len;
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    m.u.spawn.argv.count = SK_PROTO_STRV_MAX + 1;
    ASSERT_LT_INT(sk_proto_encode(&m, buf, sizeof(buf), &len, &err), 0);
    ASSERT_CONTAINS(err.msg, "too many strings");

    /* A count of 2^32-1 over a tiny payload fails fast, not after 4e9 steps. */
    uint8_t b[SK_PROTO_HEADER_SIZE + 5] = {0x53, 0x4b, 1,   SK_PROTO_LIST_CHUNK, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0xff,
                                           0xff, 0xff, 0xff};
    ASSERT_LT_INT(sk_proto_decode(b, sizeof(b), &d, &err), 0);
    b[SK_PROTO_HEADER_SIZE + 1] = 5; /* 5 entries claimed, none present */
    b[SK_PROTO_HEADER_SIZE + 2] = b[SK_PROTO_HEADER_SIZE + 3] = b[SK_PROTO_HEADER_SIZE + 4] = 0;
    ASSERT_EQ_INT(sk_proto_decode(b, sizeof(b), &d, &err), -EPROTO);
    b[SK_PROTO_HEADER_SIZE + 1] = 0; /* zero entries: fine */
    ASSERT_OK(sk_proto_decode(b, sizeof(b), &d, &err));

    uint8_t v[SK_PROTO_HEADER_SIZE + 8] = {0x53, 0x4b, 1, SK_PROTO_SPAWN, 1,    0, 0, 0, 8,
                                           0,    0,    0, 0x01,           0x10, 0, 0}; /* argv count 4097 */
    ASSERT_EQ_INT(sk_proto_decode(v, sizeof(v), &d, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "too many strings");
}

/* decode_fails - encoding m must fail with `code` (the encoder checks its
 * output with the decoder). */
static void encode_fails(const struct sk_proto_msg *m, int code, const char *what)
{
    struct sk_error err = {0};
    size_t len;
    int r = sk_proto_encode(m, buf, sizeof(buf), &len, &err);
    if (r != -code)
        FAIL("%s: encode gave %d (%s), expected %d", what, r, err.msg, -code);
}

TEST(values_outside_their_domain_are_rejected)
{
    struct sk_proto_msg m = {.type = SK_PROTO_SIGNAL, .id = 1};
    m.u.signal.signo = 0;
    encode_fails(&m, EINVAL, "signal 0");
    m.u.signal.signo = 65;
    encode_fails(&m, EINVAL, "signal 65");

    m = (struct sk_proto_msg){.type = SK_PROTO_WRITE_BEGIN, .id = 1};
    m.u.write_begin.path = sk_proto_str_c("f");
    m.u.write_begin.mode = 010000;
    encode_fails(&m, EINVAL, "mode 010000");

    m = (struct sk_proto_msg){.type = SK_PROTO_MKDIR, .id = 1};
    m.u.mkdir.path = sk_proto_str_c("f");
    m.u.mkdir.mode = 0xffffffff;
    encode_fails(&m, EINVAL, "mkdir mode");

    const char *argv[] = {"x", NULL}, *empty_argv0[] = {"", NULL};
    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN, .id = 1};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 1, .vec = argv};
    m.u.spawn.flags = 8;
    encode_fails(&m, EINVAL, "unknown spawn flag");
    m.u.spawn.flags = SK_PROTO_SPAWN_PTY | SK_PROTO_SPAWN_OUTPUT_FDS;
    encode_fails(&m, EINVAL, "pty with output fds");
    m.u.spawn.flags = 0;
    m.u.spawn.timeout_ms = -1;
    encode_fails(&m, EINVAL, "negative timeout");
    m.u.spawn.timeout_ms = 0;
    m.u.spawn.argv.count = 0;
    encode_fails(&m, EINVAL, "empty argv");
    m.u.spawn.argv = (struct sk_proto_strv){.count = 1, .vec = empty_argv0};
    encode_fails(&m, EINVAL, "empty argv[0]");

    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN_OK, .id = 1};
    m.u.spawn_ok.fds = SK_PROTO_FD_PTY | SK_PROTO_FD_STDOUT;
    encode_fails(&m, EINVAL, "pty and pipes");
    m.u.spawn_ok.fds = 0x10;
    encode_fails(&m, EINVAL, "unknown fd bit");

    m = (struct sk_proto_msg){.type = SK_PROTO_ERROR, .id = 1};
    m.u.error.code = 0;
    encode_fails(&m, EINVAL, "error code 0");
    m.u.error.code = 5000;
    encode_fails(&m, EINVAL, "error code 5000");

    m = (struct sk_proto_msg){.type = SK_PROTO_EXIT, .id = 0};
    m.u.exit.signo = 65;
    encode_fails(&m, EINVAL, "exit signal 65");

    m = (struct sk_proto_msg){.type = SK_PROTO_STAT_OK, .id = 1};
    m.u.stat_ok.type = 'x';
    encode_fails(&m, EPROTO, "file type 'x'");

    m = (struct sk_proto_msg){.type = 99, .id = 1};
    encode_fails(&m, EINVAL, "unknown type");

    /* A boolean byte of 2 is not canonical. */
    m = (struct sk_proto_msg){.type = SK_PROTO_LIST, .id = 1};
    m.u.list.path = sk_proto_str_c("d");
    struct sk_error err = {0};
    size_t len;
    struct sk_proto_msg d;
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    buf[len - 1] = 2;
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EPROTO);
}

/* ---- watches ---- */

static struct sk_proto_msg watch_event(uint8_t kind, uint8_t type, uint32_t cookie, const char *path)
{
    struct sk_proto_msg m = {.type = SK_PROTO_WATCH_EVENT, .id = 0};
    m.u.watch_event.watch_id = 3;
    m.u.watch_event.kind = kind;
    m.u.watch_event.type = type;
    m.u.watch_event.cookie = cookie;
    m.u.watch_event.path = sk_proto_str_c(path);
    return m;
}

TEST(round_trip_watch_messages)
{
    struct sk_proto_msg m = {.type = SK_PROTO_WATCH_ADD, .id = 20}, d;
    m.u.watch_add.path = sk_proto_str_c("/work/src");
    m.u.watch_add.recursive = true;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_TRUE(str_is(d.u.watch_add.path, "/work/src"));
    ASSERT_TRUE(d.u.watch_add.recursive);

    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_REMOVE, .id = 21};
    m.u.watch_remove.watch_id = 0xfffffff0u;
    assert_truncations_rejected(roundtrip(&m, &d));
    ASSERT_EQ_INT(d.u.watch_remove.watch_id, 0xfffffff0u);

    /* Every kind, with the paths and types each allows. */
    const struct {
        uint8_t kind, type;
        uint32_t cookie;
        const char *path;
    } ok[] = {
        {SK_PROTO_WATCH_CREATE, 'f', 0, "a.txt"},   {SK_PROTO_WATCH_CREATE, 'l', 0, "sub/dir/link"},
        {SK_PROTO_WATCH_MODIFY, 'o', 0, "fifo"},    {SK_PROTO_WATCH_DELETE, '?', 0, "gone"},
        {SK_PROTO_WATCH_DELETE, 'd', 0, ""}, /* the watched directory itself */
        {SK_PROTO_WATCH_MOVE_FROM, 'd', 77, "a/b"}, {SK_PROTO_WATCH_MOVE_TO, 'f', 0xffffffffu, "c/..x/.d/e f"},
        {SK_PROTO_WATCH_OVERFLOW, '?', 0, ""},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(ok); i++) {
        m = watch_event(ok[i].kind, ok[i].type, ok[i].cookie, ok[i].path);
        size_t len = roundtrip(&m, &d);
        assert_truncations_rejected(len);
        ASSERT_EQ_INT(len, SK_PROTO_HEADER_SIZE + 4 + 1 + 1 + 4 + 4 + strlen(ok[i].path));
        ASSERT_EQ_INT(d.u.watch_event.watch_id, 3);
        ASSERT_EQ_INT(d.u.watch_event.kind, ok[i].kind);
        ASSERT_EQ_INT(d.u.watch_event.type, ok[i].type);
        ASSERT_EQ_INT(d.u.watch_event.cookie, ok[i].cookie);
        ASSERT_TRUE(str_is(d.u.watch_event.path, ok[i].path));
    }
    /* The longest path fits. */
    static char longest[SK_PROTO_PATH_MAX + 2];
    memset(longest, 'p', SK_PROTO_PATH_MAX);
    longest[SK_PROTO_PATH_MAX] = '\0';
    m = watch_event(SK_PROTO_WATCH_CREATE, 'f', 0, longest);
    roundtrip(&m, &d);
    ASSERT_EQ_INT(d.u.watch_event.path.len, SK_PROTO_PATH_MAX);

    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_WATCH_ADD), "WATCH_ADD");
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_WATCH_REMOVE), "WATCH_REMOVE");
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_WATCH_EVENT), "WATCH_EVENT");
    ASSERT_EQ_STR(sk_proto_watch_kind_name(SK_PROTO_WATCH_MOVE_FROM), "move_from");
    ASSERT_EQ_STR(sk_proto_watch_kind_name(SK_PROTO_WATCH_OVERFLOW), "overflow");
    ASSERT_EQ_STR(sk_proto_watch_kind_name(0), "unknown");
    ASSERT_EQ_STR(sk_proto_watch_kind_name(7), "unknown");
}

/* A WATCH_EVENT from a compromised skiff-init must not steer the host: its
 * path is relative and stays below the watched directory, and every value
 * is in its domain, so the encoding stays canonical. */
TEST(malformed_watch_messages_are_rejected)
{
    struct sk_proto_msg m = watch_event(SK_PROTO_WATCH_CREATE, 'f', 0, "x");
    m.u.watch_event.watch_id = 0;
    encode_fails(&m, EINVAL, "watch id 0");
    m = watch_event(0, 'f', 0, "x");
    encode_fails(&m, EINVAL, "kind 0");
    m = watch_event(7, 'f', 0, "x");
    encode_fails(&m, EINVAL, "kind 7");
    m = watch_event(SK_PROTO_WATCH_CREATE, 'x', 0, "x");
    encode_fails(&m, EINVAL, "type 'x'");
    m = watch_event(SK_PROTO_WATCH_CREATE, 0, 0, "x");
    encode_fails(&m, EINVAL, "type 0");
    m = watch_event(SK_PROTO_WATCH_MODIFY, 'f', 5, "x");
    encode_fails(&m, EINVAL, "cookie on a modify");
    m = watch_event(SK_PROTO_WATCH_OVERFLOW, '?', 0, "x");
    encode_fails(&m, EINVAL, "overflow with a path");
    m = watch_event(SK_PROTO_WATCH_OVERFLOW, 'd', 0, "");
    encode_fails(&m, EINVAL, "overflow with a type");
    m = watch_event(SK_PROTO_WATCH_CREATE, 'f', 0, "");
    encode_fails(&m, EINVAL, "create without a path");
    m = watch_event(SK_PROTO_WATCH_DELETE, 'f', 0, "");
    encode_fails(&m, EINVAL, "the watched directory deleted as a file");
    const char *unsafe[] = {"/etc/passwd", "..", "../x", "a/../../x", "a/..", ".", "./a", "a/.", "a//b", "a/", "/"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(unsafe); i++) {
        m = watch_event(SK_PROTO_WATCH_MOVE_TO, 'f', 1, unsafe[i]);
        encode_fails(&m, EINVAL, unsafe[i]);
    }
    ASSERT_TRUE(sk_proto_rel_path_ok(sk_proto_str_c("a/b..c/.d")));
    ASSERT_FALSE(sk_proto_rel_path_ok(sk_proto_str_c("")));

    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_REMOVE, .id = 1};
    encode_fails(&m, EINVAL, "remove watch 0");
    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_ADD, .id = 1};
    encode_fails(&m, EPROTO, "watch an empty path");

    /* Raw bytes: an over-long path, a NUL in a path, a boolean of 2. */
    struct sk_error err = {0};
    struct sk_proto_msg d;
    size_t len;
    static char longer[SK_PROTO_PATH_MAX + 2];
    memset(longer, 'p', SK_PROTO_PATH_MAX + 1);
    m = watch_event(SK_PROTO_WATCH_CREATE, 'f', 0, "x");
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    m.u.watch_event.path = sk_proto_str_c(longer);
    encode_fails(&m, EPROTO, "path over 4096 bytes");
    m = watch_event(SK_PROTO_WATCH_CREATE, 'f', 0, "ab");
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    buf[len - 1] = '\0';
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "NUL");
    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_ADD, .id = 1};
    m.u.watch_add.path = sk_proto_str_c("d");
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    buf[len - 1] = 2;
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EPROTO);
    ASSERT_CONTAINS(err.msg, "boolean");
    /* A decoded error still names the message. */
    m = watch_event(SK_PROTO_WATCH_CREATE, 'f', 0, "x");
    ASSERT_OK(sk_proto_encode(&m, buf, sizeof(buf), &len, &err));
    buf[SK_PROTO_HEADER_SIZE + 4] = 9; /* kind */
    ASSERT_EQ_INT(sk_proto_decode(buf, len, &d, &err), -EINVAL);
    ASSERT_CONTAINS(err.msg, "WATCH_EVENT");
    ASSERT_EQ_INT(d.type, SK_PROTO_WATCH_EVENT);
}

TEST(type_names)
{
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_SPAWN), "SPAWN");
    ASSERT_EQ_STR(sk_proto_type_name(SK_PROTO_RENAME), "RENAME");
    ASSERT_EQ_STR(sk_proto_type_name(0), "unknown");
    ASSERT_EQ_STR(sk_proto_type_name(250), "unknown");
    char small[4];
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_proto_str_copy(sk_proto_str_c("abcd"), small, sizeof(small), &err), -ENAMETOOLONG);
    ASSERT_OK(sk_proto_str_copy(sk_proto_str_c("abc"), small, sizeof(small), &err));
    ASSERT_EQ_STR(small, "abc");
}

TEST(channel_carries_messages_and_fds)
{
    int sv[2];
    ASSERT_EQ_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    struct sk_error err = {0};
    int p[2];
    ASSERT_EQ_INT(pipe(p), 0);
    ASSERT_OK(sk_channel_send(sv[0], "abc", 3, p, 2, false, &err));
    char rx[16];
    int fds[SK_PROTO_MAX_FDS];
    size_t len, nfds;
    ASSERT_EQ_INT(sk_channel_recv(sv[1], rx, sizeof(rx), &len, fds, SK_PROTO_MAX_FDS, &nfds, false, &err), 1);
    ASSERT_EQ_INT(len, 3);
    ASSERT_EQ_INT(nfds, 2);
    ASSERT_TRUE(memcmp(rx, "abc", 3) == 0);
    ASSERT_TRUE(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    struct stat st;
    ASSERT_EQ_INT(fstat(fds[1], &st), 0);
    ASSERT_TRUE(S_ISFIFO(st.st_mode));
    close(fds[0]);
    close(fds[1]);

    /* Nothing queued: EAGAIN when not blocking. */
    ASSERT_EQ_INT(sk_channel_recv(sv[1], rx, sizeof(rx), &len, fds, SK_PROTO_MAX_FDS, &nfds, true, &err), -EAGAIN);

    /* More fds than the receiver takes: all closed, EPROTO. */
    ASSERT_OK(sk_channel_send(sv[0], "x", 1, p, 2, false, &err));
    ASSERT_EQ_INT(sk_channel_recv(sv[1], rx, sizeof(rx), &len, fds, 1, &nfds, false, &err), -EPROTO);
    ASSERT_EQ_INT(nfds, 0);

    /* Too long for the buffer: EMSGSIZE, the start is kept. */
    char big[64];
    memset(big, 'z', sizeof(big));
    ASSERT_OK(sk_channel_send(sv[0], big, sizeof(big), NULL, 0, false, &err));
    ASSERT_EQ_INT(sk_channel_recv(sv[1], rx, sizeof(rx), &len, fds, 1, &nfds, false, &err), -EMSGSIZE);
    ASSERT_EQ_INT(len, sizeof(rx));

    /* An empty record is a message, not the end. */
    ASSERT_OK(sk_channel_send(sv[0], "", 0, NULL, 0, false, &err));
    ASSERT_EQ_INT(sk_channel_recv(sv[1], rx, sizeof(rx), &len, fds, 1, &nfds, false, &err), 1);
    ASSERT_EQ_INT(len, 0);

    /* The peer's close is. */
    close(sv[0]);
    ASSERT_EQ_INT(sk_channel_recv(sv[1], rx, sizeof(rx), &len, fds, 1, &nfds, false, &err), 0);
    ASSERT_EQ_INT(sk_channel_send(sv[1], "a", 1, NULL, 0, false, &err), -EPIPE);
    ASSERT_EQ_INT(sk_channel_send(sv[1], "a", 1, p, SK_PROTO_MAX_FDS + 1, false, &err), -EINVAL);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}
