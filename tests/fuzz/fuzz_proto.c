/* fuzz_proto.c - libFuzzer target for the skiff-init wire codec.
 *
 * Any input goes to sk_proto_decode. What decodes must iterate cleanly and
 * re-encode to exactly the input bytes (the encoding is canonical), so a
 * message the decoder accepts can never mean two things. Run: make fuzz
 * (seeds in tests/fuzz/corpus, written by gen_corpus.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[SK_PROTO_MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sk_proto_msg m;
    struct sk_error err;
    if (sk_proto_decode(data, size, &m, &err) < 0) {
        if (err.code <= 0 || err.msg[0] == '\0')
            abort();
        return 0;
    }
    uint32_t cur = 0, n = 0;
    struct sk_proto_str s;
    if (m.type == SK_PROTO_SPAWN) {
        while (sk_proto_strv_next(&m.u.spawn.argv, &cur, &s))
            n++;
        if (n != m.u.spawn.argv.count)
            abort();
        cur = n = 0;
        while (sk_proto_strv_next(&m.u.spawn.envp, &cur, &s))
            if (memchr(s.ptr, '\0', s.len) != NULL || ++n > m.u.spawn.envp.count)
                abort();
        if (n != m.u.spawn.envp.count)
            abort();
    }
    if (m.type == SK_PROTO_LIST_CHUNK) {
        struct sk_proto_entry e;
        while (sk_proto_list_next(&m.u.list_chunk, &cur, &e))
            if (e.path.len == 0 || e.path.len > SK_PROTO_PATH_MAX || ++n > m.u.list_chunk.count)
                abort();
        if (n != m.u.list_chunk.count)
            abort();
    }
    if (m.type == SK_PROTO_PROCS) {
        struct sk_proto_proc p;
        while (sk_proto_procs_next(&m.u.procs, &cur, &p))
            if (p.flags & ~SK_PROTO_SPAWN_FLAGS || p.signo > SK_PROTO_SIGNAL_MAX || ++n > m.u.procs.count)
                abort();
        if (n != m.u.procs.count)
            abort();
    }
    if (m.type == SK_PROTO_WATCH_EVENT) {
        /* A path the host would join to the watched directory never leaves it. */
        struct sk_proto_str p = m.u.watch_event.path;
        if (p.len > 0
                ? !sk_proto_rel_path_ok(p)
                : (m.u.watch_event.kind != SK_PROTO_WATCH_OVERFLOW && m.u.watch_event.kind != SK_PROTO_WATCH_DELETE))
            abort();
        if (m.u.watch_event.watch_id == 0 || sk_proto_watch_kind_name(m.u.watch_event.kind)[0] == 'u')
            abort();
    }
    size_t len = 0;
    if (sk_proto_encode(&m, out, sizeof(out), &len, &err) < 0)
        abort();
    if (len != size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
