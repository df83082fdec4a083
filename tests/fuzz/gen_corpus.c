/* gen_corpus.c - write one valid message of every type as fuzzer seeds.
 *
 *   cc -std=c17 -D_GNU_SOURCE -Ilib -o build/gen_corpus tests/fuzz/gen_corpus.c \
 *      lib/proto/proto.c lib/base/error.c lib/base/util.c && build/gen_corpus tests/fuzz/corpus
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

static int write_seed(const char *dir, const char *name, const struct sk_proto_msg *m)
{
    static uint8_t buf[SK_PROTO_MSG_MAX];
    struct sk_error err = {0};
    size_t len;
    if (sk_proto_encode(m, buf, sizeof(buf), &len, &err) < 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", name, err.msg);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    int bad = 0;
    struct sk_proto_msg m;

    m = (struct sk_proto_msg){.type = SK_PROTO_HELLO, .id = 1};
    m.u.hello.version = 1;
    bad |= write_seed(dir, "hello", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_HELLO_OK, .id = 1};
    m.u.hello_ok.version = 1;
    m.u.hello_ok.pid = 1;
    bad |= write_seed(dir, "hello_ok", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_ERROR, .id = 2};
    m.u.error.code = 2;
    m.u.error.message = sk_proto_str_c("exec 'foo': No such file or directory");
    bad |= write_seed(dir, "error", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_OK, .id = 3};
    m.u.ok.handle = 7;
    bad |= write_seed(dir, "ok", &m);

    static const char *const args[] = {"sh", "-c", "echo hi; exit 3", NULL};
    static const char *const env[] = {"PATH=/usr/bin:/bin", "TERM=xterm", NULL};
    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN, .id = 4};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 3, .vec = args};
    m.u.spawn.envp = (struct sk_proto_strv){.count = 2, .vec = env};
    m.u.spawn.cwd = sk_proto_str_c("/tmp");
    m.u.spawn.flags = SK_PROTO_SPAWN_PTY;
    m.u.spawn.rows = 24;
    m.u.spawn.cols = 80;
    m.u.spawn.timeout_ms = 60000;
    bad |= write_seed(dir, "spawn", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN_OK, .id = 4};
    m.u.spawn_ok.proc_id = 1;
    m.u.spawn_ok.pid = 2;
    m.u.spawn_ok.fds = SK_PROTO_FD_STDIN | SK_PROTO_FD_STDOUT | SK_PROTO_FD_STDERR;
    bad |= write_seed(dir, "spawn_ok", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_SIGNAL, .id = 5};
    m.u.signal.proc_id = 1;
    m.u.signal.signo = 15;
    bad |= write_seed(dir, "signal", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_RESIZE, .id = 6};
    m.u.resize.proc_id = 1;
    m.u.resize.rows = 40;
    m.u.resize.cols = 100;
    bad |= write_seed(dir, "resize", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_EXIT, .id = 0};
    m.u.exit.proc_id = 1;
    m.u.exit.exit_code = 137;
    m.u.exit.signo = 9;
    m.u.exit.timed_out = true;
    bad |= write_seed(dir, "exit", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_STAT, .id = 7};
    m.u.stat.path = sk_proto_str_c("/etc/passwd");
    m.u.stat.follow = true;
    bad |= write_seed(dir, "stat", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_STAT_OK, .id = 7};
    m.u.stat_ok = (struct sk_proto_stat){'f', 0644, 1234, 1700000000000000000LL, 0, 0};
    bad |= write_seed(dir, "stat_ok", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_OPEN_READ, .id = 8};
    m.u.open_read.path = sk_proto_str_c("data/file.txt");
    bad |= write_seed(dir, "open_read", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_WRITE_BEGIN, .id = 9};
    m.u.write_begin.path = sk_proto_str_c("out.bin");
    m.u.write_begin.mode = 0644;
    bad |= write_seed(dir, "write_begin", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_WRITE_COMMIT, .id = 10};
    m.u.write_end.handle = 1;
    bad |= write_seed(dir, "write_commit", &m);
    m.type = SK_PROTO_WRITE_ABORT;
    bad |= write_seed(dir, "write_abort", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_LIST, .id = 11};
    m.u.list.path = sk_proto_str_c("/");
    m.u.list.recursive = true;
    bad |= write_seed(dir, "list", &m);
    static const struct sk_proto_entry items[] = {
        {{"bin", 3}, {'d', 0755, 4096, 1, 0, 0}},
        {{"bin/sh", 6}, {'l', 0777, 4, 2, 0, 0}},
        {{"etc/passwd", 10}, {'f', 0644, 900, 3, 0, 0}},
    };
    m = (struct sk_proto_msg){.type = SK_PROTO_LIST_CHUNK, .id = 11};
    m.u.list_chunk = (struct sk_proto_list_chunk){.final = true, .count = 3, .items = items};
    bad |= write_seed(dir, "list_chunk", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_MKDIR, .id = 12};
    m.u.mkdir.path = sk_proto_str_c("a/b/c");
    m.u.mkdir.mode = 0755;
    m.u.mkdir.parents = true;
    bad |= write_seed(dir, "mkdir", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_REMOVE, .id = 13};
    m.u.remove.path = sk_proto_str_c("a");
    m.u.remove.recursive = true;
    bad |= write_seed(dir, "remove", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_RENAME, .id = 14};
    m.u.rename.from = sk_proto_str_c("a");
    m.u.rename.to = sk_proto_str_c("../b");
    bad |= write_seed(dir, "rename", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_SPAWN, .id = 15};
    m.u.spawn.argv = (struct sk_proto_strv){.count = 3, .vec = args};
    m.u.spawn.envp = (struct sk_proto_strv){.count = 2, .vec = env};
    m.u.spawn.flags = SK_PROTO_SPAWN_OUTPUT_FDS | SK_PROTO_SPAWN_STDIN;
    bad |= write_seed(dir, "spawn_output_fds", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_LIST_PROCS, .id = 16};
    bad |= write_seed(dir, "list_procs", &m);
    static const struct sk_proto_proc procs[] = {
        {.proc_id = 1, .pid = 7, .flags = SK_PROTO_SPAWN_OUTPUT_FDS},
        {.proc_id = 2, .pid = 8, .flags = SK_PROTO_SPAWN_PTY, .timed_out = true},
        {.proc_id = 3, .pid = 9, .exited = true, .exit_code = 137, .signo = 9, .core_dumped = true},
    };
    m = (struct sk_proto_msg){.type = SK_PROTO_PROCS, .id = 16};
    m.u.procs = (struct sk_proto_procs){.count = 3, .items = procs};
    bad |= write_seed(dir, "procs", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_RELEASE, .id = 17};
    m.u.proc_ref.proc_id = 3;
    bad |= write_seed(dir, "release", &m);
    m.type = SK_PROTO_OPEN_PTY;
    m.id = 18;
    m.u.proc_ref.proc_id = 2;
    bad |= write_seed(dir, "open_pty", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_ADD, .id = 19};
    m.u.watch_add.path = sk_proto_str_c("/work");
    m.u.watch_add.recursive = true;
    bad |= write_seed(dir, "watch_add", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_REMOVE, .id = 20};
    m.u.watch_remove.watch_id = 1;
    bad |= write_seed(dir, "watch_remove", &m);
    m = (struct sk_proto_msg){.type = SK_PROTO_WATCH_EVENT, .id = 0};
    m.u.watch_event.watch_id = 1;
    m.u.watch_event.kind = SK_PROTO_WATCH_MOVE_TO;
    m.u.watch_event.type = 'f';
    m.u.watch_event.cookie = 4242;
    m.u.watch_event.path = sk_proto_str_c("src/main.c");
    bad |= write_seed(dir, "watch_event", &m);
    m.u.watch_event.kind = SK_PROTO_WATCH_DELETE;
    m.u.watch_event.type = 'd';
    m.u.watch_event.cookie = 0;
    m.u.watch_event.path = sk_proto_str_c("");
    bad |= write_seed(dir, "watch_event_self_deleted", &m);
    m.u.watch_event.kind = SK_PROTO_WATCH_OVERFLOW;
    m.u.watch_event.type = SK_PROTO_WATCH_TYPE_UNKNOWN;
    bad |= write_seed(dir, "watch_event_overflow", &m);
    return bad ? 1 : 0;
}
