/* The skiff command line against the real build/skiffd: every API command
 * run as a user runs it (build/skiff with SKIFF_URL/SKIFF_TOKEN), checking
 * what a user sees - stdout, stderr and the exit code (the table in
 * `skiff --help`). */
#include "skiffd_test.h"

#include <dirent.h>
#include <sys/ioctl.h>

/* ---- running build/skiff ------------------------------------------------------- */

struct cli {
    struct skiffd d;
    char top[PATH_MAX]; /* the test's scratch directory (also $HOME) */
    char url[64];
};

static void cli_start(struct cli *c)
{
    memset(c, 0, sizeof(*c));
    make_data_dir(&c->d);
    skiffd_start(&c->d);
    snprintf(c->top, sizeof(c->top), "%s", c->d.dir);
    *strrchr(c->top, '/') = '\0';
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d", c->d.port);
}

/* skiff_env - run build/skiff ARGS (NULL-terminated) with the server's URL,
 * a token (NULL: none at all) and extra environment; returns the exit
 * code. o is filled (free with sk_test_output_free). */
static int skiff_env(const struct cli *c, const char *token, const char *const *env, const char *input,
                     struct sk_test_output *o, const char *const *args)
{
    char bin[PATH_MAX], url_kv[128], tok_kv[256], home_kv[PATH_MAX + 8];
    snprintf(bin, sizeof(bin), "%s/skiff", sk_test_bin_dir());
    snprintf(url_kv, sizeof(url_kv), "SKIFF_URL=%s", c->url);
    snprintf(tok_kv, sizeof(tok_kv), "SKIFF_TOKEN=%s", token ? token : "");
    snprintf(home_kv, sizeof(home_kv), "HOME=%s", c->top);
    const char *argv[64] = {bin};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *envv[16] = {url_kv, tok_kv, home_kv, "SKIFF_CONFIG=", "XDG_CONFIG_HOME=", "SKIFF_LOG=warn"};
    size_t ne = 6;
    for (size_t i = 0; env && env[i] && ne < 15; i++)
        envv[ne++] = env[i];
    envv[ne] = NULL;
    if (sk_test_run(argv, input, envv, 60, o) < 0)
        FAIL("run %s: %s", bin, strerror(errno));
    return o->exit_code;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* SKIFF(c, o, args...) - with the admin token, no input */
#define SKIFF(c, o, ...) skiff_env((c), (c)->d.token, NULL, NULL, (o), ARGS(__VA_ARGS__))

/* must - the command succeeds (exit 0); otherwise show what it said. */
static void must(int rc, const struct sk_test_output *o, const char *what)
{
    if (rc != 0)
        FAIL("%s: exit %d\nstdout: %s\nstderr: %s", what, rc, o->out, o->err);
}

/* create_sandbox - `skiff sandbox create ARGS` → its id in id_out. */
static void create_sandbox(const struct cli *c, char *id_out, size_t size, const char *const *args)
{
    const char *argv[40] = {"sandbox", "create"};
    size_t n = 2;
    for (size_t i = 0; args && args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct sk_test_output o;
    must(skiff_env(c, c->d.token, NULL, NULL, &o, argv), &o, "sandbox create");
    o.out[strcspn(o.out, "\n")] = '\0';
    ASSERT_TRUE(strncmp(o.out, "sb-", 3) == 0);
    snprintf(id_out, size, "%s", o.out);
    sk_test_output_free(&o);
}

static json_t *parse_json(const struct sk_test_output *o)
{
    json_error_t jerr;
    json_t *j = json_loadb(o->out, o->out_len, 0, &jerr);
    if (j == NULL)
        FAIL("not JSON (%s): %s", jerr.text, o->out);
    return j;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || sk_write_all(fd, data, len) != (ssize_t)len)
        FAIL("write '%s': %s", path, strerror(errno));
    fchmod(fd, mode);
    close(fd);
}

static char *read_all(const char *path, size_t *len)
{
    char *text = NULL;
    struct sk_error err;
    if (sk_read_file_at(AT_FDCWD, path, 64 << 20, &text, len, &err) < 0)
        FAIL("read '%s': %s", path, err.msg);
    return text;
}

/* ---- the tests ------------------------------------------------------------------ */

TEST_TIMEOUT(create_ls_get_rm_round_trip_in_tables_and_json, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), ARGS("--name", "web", "--memory", "256", "--cpu", "0.5", "--tag", "team=a"));

    /* ls: a table with a header and the sandbox's row */
    must(SKIFF(&c, &o, "sandbox", "ls"), &o, "ls");
    ASSERT_TRUE(strncmp(o.out, "ID ", 3) == 0);
    ASSERT_CONTAINS(o.out, "STATE");
    ASSERT_CONTAINS(o.out, id);
    ASSERT_CONTAINS(o.out, "web");
    ASSERT_CONTAINS(o.out, "running");
    ASSERT_CONTAINS(o.out, "team=a");
    sk_test_output_free(&o);
    /* ls --json: the API's list */
    must(SKIFF(&c, &o, "sandbox", "ls", "--json"), &o, "ls --json");
    json_t *j = parse_json(&o);
    json_t *list = json_object_get(j, "sandboxes");
    ASSERT_EQ_INT(json_array_size(list), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(list, 0), "id")), id);
    ASSERT_TRUE(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    sk_test_output_free(&o);

    /* get by name: the limits as asked */
    must(SKIFF(&c, &o, "sandbox", "get", "web"), &o, "get");
    ASSERT_CONTAINS(o.out, id);
    ASSERT_CONTAINS(o.out, "state:      running");
    ASSERT_CONTAINS(o.out, "\"memory\":256");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "--json", "sandbox", "get", id), &o, "get --json");
    j = parse_json(&o);
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "name")), "web");
    ASSERT_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "spec"), "memory")), 256);
    json_decref(j);
    sk_test_output_free(&o);

    /* rm prints the id; the sandbox stays queryable with its reason */
    must(SKIFF(&c, &o, "sandbox", "rm", id), &o, "rm");
    o.out[strcspn(o.out, "\n")] = '\0';
    ASSERT_EQ_STR(o.out, id);
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "get", "--json", id), &o, "get after rm");
    j = parse_json(&o);
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "state")), "terminated");
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "reason")), "terminated");
    json_decref(j);
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "ls", "--state", "running"), &o, "ls --state running");
    ASSERT_NOT_CONTAINS(o.out, id);
    sk_test_output_free(&o);

    /* --all follows next_cursor through every page */
    char id2[64];
    create_sandbox(&c, id2, sizeof(id2), NULL);
    must(SKIFF(&c, &o, "sandbox", "ls", "--limit", "1"), &o, "ls --limit 1");
    ASSERT_CONTAINS(o.err, "--all");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "ls", "--limit", "1", "--all", "--json"), &o, "ls --all");
    j = parse_json(&o);
    ASSERT_EQ_INT(json_array_size(json_object_get(j, "sandboxes")), 2);
    json_decref(j);
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

/* ASSERT_OUT - o's stdout is exactly `want`. */
#define ASSERT_OUT(o, want) \
    do { \
        if ((o)->out_len != strlen(want) || memcmp((o)->out, (want), (o)->out_len) != 0) \
            FAIL("stdout \"%s\", want \"%s\" (stderr: %s)", (o)->out, (want), (o)->err); \
    } while (0)

TEST_TIMEOUT(exec_streams_stdout_and_stderr_apart_and_exits_with_the_code, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);

    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "exec", id, "--", "sh", "-c", "echo out; echo err >&2; exit 7"), 7);
    ASSERT_OUT(&o, "out\n");
    ASSERT_EQ_STR(o.err, "err\n");
    sk_test_output_free(&o);
    /* a signal: 128+N, like a shell */
    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "exec", id, "--", "sh", "-c", "kill -TERM $$"), 143);
    sk_test_output_free(&o);
    /* output that takes a while arrives in order; options after ID; env */
    must(SKIFF(&c, &o, "sandbox", "exec", "--env", "WHO=skiff", id, "--workdir", "/tmp", "--", "sh", "-c",
               "for i in 1 2 3; do echo $WHO $i; sleep 0.2; done; pwd"),
         &o, "exec with env and workdir");
    ASSERT_OUT(&o, "skiff 1\nskiff 2\nskiff 3\n/tmp\n");
    sk_test_output_free(&o);
    /* without -- the command's own options stay the command's */
    must(SKIFF(&c, &o, "sandbox", "exec", id, "sh", "-c", "echo no-dashes"), &o, "exec without --");
    ASSERT_OUT(&o, "no-dashes\n");
    sk_test_output_free(&o);
    /* a program that does not exist: 127 and the server's reason */
    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "exec", id, "--", "no-such-program"), 127);
    ASSERT_CONTAINS(o.err, "no-such-program");
    sk_test_output_free(&o);
    /* --json adds the exec's final record as the last line */
    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "exec", "--json", id, "--", "sh", "-c", "echo x; exit 3"), 3);
    ASSERT_TRUE(strncmp(o.out, "x\n{", 3) == 0);
    json_t *j = json_loads(o.out + 2, 0, NULL);
    ASSERT_TRUE(j != NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "exit_code")), 3);
    json_decref(j);
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

/* A dropped output connection resumes at the byte offset it had: with
 * SKIFF_STREAM_DROP_AFTER the client reads with a tiny buffer and drops
 * every connection after a few KiB; nothing may be lost or repeated. */
TEST_TIMEOUT(exec_output_resumes_by_offset_after_dropped_connections, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);
    static const char *const drop[] = {"SKIFF_STREAM_DROP_AFTER=2000", NULL};
    int rc = skiff_env(&c, c.d.token, drop, NULL, &o,
                       ARGS("sandbox", "exec", id, "--", "sh", "-c", "seq 1 20000; seq 1 5000 >&2; exit 9"));
    ASSERT_EQ_INT(rc, 9);
    struct sk_test_output want;
    ASSERT_EQ_INT(sk_test_run(ARGS("/bin/sh", "-c", "seq 1 20000; seq 1 5000 >&2"), NULL, NULL, 10, &want), 0);
    ASSERT_EQ_INT(o.out_len, want.out_len);
    ASSERT_TRUE(memcmp(o.out, want.out, o.out_len) == 0);
    ASSERT_EQ_INT(o.err_len, want.err_len);
    ASSERT_TRUE(memcmp(o.err, want.err, o.err_len) == 0);
    sk_test_output_free(&o);
    sk_test_output_free(&want);
    /* and the drops did happen: each resume is logged at level info */
    static const char *const drop_logged[] = {"SKIFF_STREAM_DROP_AFTER=2000", "SKIFF_LOG=info", NULL};
    rc = skiff_env(&c, c.d.token, drop_logged, NULL, &o, ARGS("sandbox", "exec", id, "--", "seq", "1", "20000"));
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(o.out_len, 108894);
    int resumes = 0;
    for (const char *p = o.err; (p = strstr(p, "resuming at offset")) != NULL; p++)
        resumes++;
    ASSERT_GE_INT(resumes, 20);
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(exec_interactive_forwards_stdin_and_eof, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);
    must(skiff_env(&c, c.d.token, NULL, "hello\nworld\n", &o,
                   ARGS("sandbox", "exec", "-i", id, "--", "sh", "-c", "cat; echo done")),
         &o, "exec -i");
    ASSERT_OUT(&o, "hello\nworld\ndone\n");
    sk_test_output_free(&o);
    /* more than one chunk, then EOF */
    size_t n = 300000;
    char *big = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    must(skiff_env(&c, c.d.token, NULL, big, &o, ARGS("sandbox", "exec", "-i", id, "--", "sh", "-c", "wc -c")), &o,
         "exec -i large");
    ASSERT_EQ_INT(atol(o.out), 300000);
    sk_test_output_free(&o);
    free(big);
    /* without -i the command's stdin is empty: ours is not read */
    must(skiff_env(&c, c.d.token, NULL, "not forwarded\n", &o, ARGS("sandbox", "exec", id, "--", "cat")), &o,
         "exec without -i");
    ASSERT_OUT(&o, "");
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(shell_runs_on_a_terminal_and_exits_with_its_code, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);
    int rc = skiff_env(&c, c.d.token, NULL, "tty; echo answer-$((6*7))\nexit 5\n", &o,
                       ARGS("sandbox", "shell", id, "--", "/bin/sh"));
    ASSERT_EQ_INT(rc, 5);
    ASSERT_CONTAINS(o.out, "answer-42");
    ASSERT_CONTAINS(o.out, "/dev/pts/");
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(cp_a_binary_file_in_and_out_byte_exact, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);
    size_t n = 1 << 20;
    unsigned char *data = xmalloc(n);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char)(i % 4096 < 16 ? 0 : x); /* zero runs too */
    }
    char in[PATH_MAX + 16], out[PATH_MAX + 16], dst[128];
    snprintf(in, sizeof(in), "%s/blob.bin", c.top);
    snprintf(out, sizeof(out), "%s/back.bin", c.top);
    write_file(in, data, n, 0640);
    snprintf(dst, sizeof(dst), "%s:/tmp/blob.bin", id);
    must(SKIFF(&c, &o, "sandbox", "cp", in, dst), &o, "cp in");
    sk_test_output_free(&o);
    /* inside: the same bytes (checksum computed in the sandbox) and mode */
    must(SKIFF(&c, &o, "sandbox", "exec", id, "--", "sh", "-c", "cksum < /tmp/blob.bin; stat -c %a /tmp/blob.bin"), &o,
         "cksum inside");
    struct sk_test_output host;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "cksum < '%s'; echo 640", in);
    ASSERT_EQ_INT(sk_test_run(ARGS("/bin/sh", "-c", cmd), NULL, NULL, 10, &host), 0);
    ASSERT_EQ_STR(o.out, host.out);
    sk_test_output_free(&host);
    sk_test_output_free(&o);
    /* out again */
    must(SKIFF(&c, &o, "sandbox", "cp", dst, out), &o, "cp out");
    sk_test_output_free(&o);
    size_t len = 0;
    _cleanup_free_ char *back = read_all(out, &len);
    ASSERT_EQ_INT(len, n);
    ASSERT_TRUE(memcmp(back, data, n) == 0);
    struct stat st;
    ASSERT_EQ_INT(stat(out, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0640);
    /* into an existing directory: under the source's name; to stdout with - */
    snprintf(dst, sizeof(dst), "%s:/tmp", id);
    must(SKIFF(&c, &o, "sandbox", "cp", in, dst), &o, "cp into a directory");
    sk_test_output_free(&o);
    snprintf(dst, sizeof(dst), "%s:/tmp/blob.bin", id);
    must(SKIFF(&c, &o, "sandbox", "cp", dst, "-"), &o, "cp to stdout");
    ASSERT_EQ_INT(o.out_len, n);
    ASSERT_TRUE(memcmp(o.out, data, n) == 0);
    sk_test_output_free(&o);
    /* a missing file in the sandbox: not_found, exit 3 */
    snprintf(dst, sizeof(dst), "%s:/tmp/nope", id);
    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "cp", dst, out), 3);
    ASSERT_CONTAINS(o.err, "(not_found)");
    sk_test_output_free(&o);
    free(data);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(cp_a_directory_of_50_files_in_and_out, 120)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);
    char tree[PATH_MAX + 16], path[PATH_MAX + 64];
    snprintf(tree, sizeof(tree), "%s/tree", c.top);
    ASSERT_EQ_INT(mkdir(tree, 0755), 0);
    snprintf(path, sizeof(path), "%s/sub", tree);
    ASSERT_EQ_INT(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/sub/deeper", tree);
    ASSERT_EQ_INT(mkdir(path, 0755), 0);
    for (int i = 0; i < 50; i++) {
        char body[64];
        int len = snprintf(body, sizeof(body), "file %d\n", i);
        snprintf(path, sizeof(path), "%s/%s/f%02d.txt", tree, i < 20 ? "." : i < 40 ? "sub" : "sub/deeper", i);
        write_file(path, body, (size_t)len, i == 7 ? 0755 : 0644);
    }
    snprintf(path, sizeof(path), "%s/sub/link", tree);
    ASSERT_EQ_INT(symlink("/etc/passwd", path), 0);
    char dst[128];
    snprintf(dst, sizeof(dst), "%s:/work/tree", id);
    must(SKIFF(&c, &o, "sandbox", "cp", "--json", tree, dst), &o, "cp a directory in");
    json_t *j = parse_json(&o); /* the tar upload's answer */
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "files")), 50);
    json_decref(j);
    ASSERT_CONTAINS(o.err, "skipping"); /* the symlink, with a warning */
    ASSERT_CONTAINS(o.err, "link");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "exec", id, "--", "sh", "-c",
               "find /work/tree -type f | wc -l; cat /work/tree/sub/deeper/f45.txt; stat -c %a /work/tree/f07.txt "
               "/work/tree/sub"),
         &o, "look inside");
    ASSERT_OUT(&o, "50\nfile 45\n755\n750\n");
    sk_test_output_free(&o);
    /* out, into an existing directory: DIR/tree */
    char back[PATH_MAX + 16];
    snprintf(back, sizeof(back), "%s/back", c.top);
    ASSERT_EQ_INT(mkdir(back, 0755), 0);
    must(SKIFF(&c, &o, "sandbox", "cp", dst, back), &o, "cp a directory out");
    sk_test_output_free(&o);
    int files = 0;
    for (int i = 0; i < 50; i++) {
        char want[64];
        snprintf(want, sizeof(want), "file %d\n", i);
        snprintf(path, sizeof(path), "%s/tree/%s/f%02d.txt", back, i < 20 ? "." : i < 40 ? "sub" : "sub/deeper", i);
        size_t len = 0;
        _cleanup_free_ char *got = read_all(path, &len);
        ASSERT_EQ_STR(got, want);
        files++;
    }
    ASSERT_EQ_INT(files, 50);
    struct stat st;
    snprintf(path, sizeof(path), "%s/tree/f07.txt", back);
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0755);
    /* nothing else arrived: no temporary files left behind */
    snprintf(path, sizeof(path), "%s/tree", back);
    DIR *d = opendir(path);
    ASSERT_TRUE(d != NULL);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.')
            entries++;
    closedir(d);
    ASSERT_EQ_INT(entries, 21); /* 20 files and sub/ */
    snprintf(path, sizeof(path), "%s/tree/sub/link", back);
    ASSERT_TRUE(access(path, F_OK) < 0);

    /* file by file (a server without the tar endpoints): the same trees */
    static const char *const walk[] = {"SKIFF_CP_WALK=1", NULL};
    snprintf(dst, sizeof(dst), "%s:/work/walked", id);
    must(skiff_env(&c, c.d.token, walk, NULL, &o, ARGS("sandbox", "cp", tree, dst)), &o, "walk in");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "exec", id, "--", "sh", "-c",
               "cd /work && find walked -type f | sort | sed s,^walked,, | xargs -I{} cmp tree{} walked{} && "
               "find walked -type f | wc -l"),
         &o, "compare inside");
    ASSERT_OUT(&o, "50\n");
    sk_test_output_free(&o);
    char walked[PATH_MAX + 16];
    snprintf(walked, sizeof(walked), "%s/walked", c.top);
    must(skiff_env(&c, c.d.token, walk, NULL, &o, ARGS("sandbox", "cp", dst, walked)), &o, "walk out");
    sk_test_output_free(&o);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "diff -r '%s/tree' '%s'", back, walked);
    struct sk_test_output diff;
    ASSERT_EQ_INT(sk_test_run(ARGS("/bin/sh", "-c", cmd), NULL, NULL, 10, &diff), 0);
    if (diff.exit_code != 0)
        FAIL("the trees differ: %s%s", diff.out, diff.err);
    sk_test_output_free(&diff);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(logs_and_wait_report_the_entrypoint, 90)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char id[64];
    create_sandbox(&c, id, sizeof(id), ARGS("--", "sh", "-c", "echo from-entrypoint; echo to-stderr >&2; exit 4"));
    must(SKIFF(&c, &o, "sandbox", "wait", "--timeout", "20", id), &o, "wait");
    ASSERT_EQ_STR(o.out, "exited (code 4)\n");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "wait", "--json", id), &o, "wait --json");
    json_t *j = parse_json(&o);
    ASSERT_EQ_STR(json_string_value(json_object_get(j, "reason")), "exited");
    ASSERT_EQ_INT(json_integer_value(json_object_get(j, "exit_code")), 4);
    json_decref(j);
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "logs", id), &o, "logs");
    ASSERT_OUT(&o, "from-entrypoint\n");
    ASSERT_EQ_STR(o.err, "to-stderr\n");
    sk_test_output_free(&o);
    /* -f follows a running entrypoint to its end */
    create_sandbox(&c, id, sizeof(id), ARGS("--", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.3; done"));
    must(SKIFF(&c, &o, "sandbox", "logs", "-f", id), &o, "logs -f");
    ASSERT_OUT(&o, "tick 1\ntick 2\ntick 3\n");
    sk_test_output_free(&o);
    /* terminated: the reason names the token */
    create_sandbox(&c, id, sizeof(id), NULL);
    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "wait", "--timeout", "1", id), 124);
    ASSERT_CONTAINS(o.err, "still running");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "rm", id), &o, "rm");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "wait", id), &o, "wait after rm");
    ASSERT_CONTAINS(o.out, "terminated (by token ");
    sk_test_output_free(&o);
    /* a sandbox without an entrypoint has no logs */
    ASSERT_EQ_INT(SKIFF(&c, &o, "sandbox", "logs", id), 3);
    ASSERT_CONTAINS(o.err, "no entrypoint");
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(tag_replaces_tags_and_ls_finds_them, 60)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    char a[64], b[64];
    create_sandbox(&c, a, sizeof(a), ARGS("--tag", "team=red"));
    create_sandbox(&c, b, sizeof(b), ARGS("--tag", "team=red"));
    must(SKIFF(&c, &o, "sandbox", "tag", a, "team=blue", "env=ci"), &o, "tag");
    ASSERT_EQ_STR(o.out, "env=ci,team=blue\n");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "ls", "--tag", "team=blue"), &o, "ls --tag");
    ASSERT_CONTAINS(o.out, a);
    ASSERT_NOT_CONTAINS(o.out, b);
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "ls", "--json", "--tag", "team=red"), &o, "ls --tag red");
    json_t *j = parse_json(&o);
    ASSERT_EQ_INT(json_array_size(json_object_get(j, "sandboxes")), 1);
    json_decref(j);
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "ls", "--tag", "team=blue", "--tag", "env=prod"), &o, "ls two tags");
    ASSERT_NOT_CONTAINS(o.out, a);
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "sandbox", "tag", "--clear", a), &o, "tag --clear");
    ASSERT_EQ_STR(o.out, "-\n");
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(tokens_create_ls_revoke_and_a_revoked_token_is_refused, 60)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    must(SKIFF(&c, &o, "token", "create", "ci", "--ttl", "3600"), &o, "token create");
    char token[256];
    snprintf(token, sizeof(token), "%.*s", (int)strcspn(o.out, "\n"), o.out);
    ASSERT_TRUE(strncmp(token, "skf_", 4) == 0);
    sk_test_output_free(&o);
    /* the new token works */
    must(skiff_env(&c, token, NULL, NULL, &o, ARGS("sandbox", "ls")), &o, "ls with the new token");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "token", "ls"), &o, "token ls");
    ASSERT_CONTAINS(o.out, "NAME");
    ASSERT_CONTAINS(o.out, "ci");
    ASSERT_CONTAINS(o.out, "active");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "token", "ls", "--json"), &o, "token ls --json");
    json_t *j = parse_json(&o);
    char tid[64] = "";
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "tokens"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "name")), "ci") == 0)
            snprintf(tid, sizeof(tid), "%s", json_string_value(json_object_get(t, "id")));
    }
    json_decref(j);
    sk_test_output_free(&o);
    ASSERT_EQ_INT(strlen(tid), 16);
    ASSERT_TRUE(strstr(token, tid) != NULL);
    must(SKIFF(&c, &o, "token", "revoke", tid), &o, "token revoke");
    ASSERT_CONTAINS(o.out, tid);
    sk_test_output_free(&o);
    /* refused, and the user is told what to do */
    ASSERT_EQ_INT(skiff_env(&c, token, NULL, NULL, &o, ARGS("sandbox", "ls")), 4);
    ASSERT_CONTAINS(o.err, "(unauthenticated)");
    ASSERT_CONTAINS(o.err, "was refused");
    ASSERT_CONTAINS(o.err, "SKIFF_TOKEN");
    sk_test_output_free(&o);
    must(SKIFF(&c, &o, "token", "ls"), &o, "token ls after revoke");
    ASSERT_CONTAINS(o.out, "revoked");
    sk_test_output_free(&o);
    /* the last admin token cannot be revoked: failed_precondition, exit 5 */
    char admin_id[32];
    snprintf(admin_id, sizeof(admin_id), "%.16s", c.d.token + 4);
    ASSERT_EQ_INT(SKIFF(&c, &o, "token", "revoke", admin_id), 5);
    ASSERT_CONTAINS(o.err, "(failed_precondition)");
    sk_test_output_free(&o);
    /* a name taken: already_exists, exit 5; --json shows the secret once */
    must(SKIFF(&c, &o, "token", "create", "--json", "other"), &o, "token create --json");
    j = parse_json(&o);
    ASSERT_TRUE(strncmp(json_string_value(json_object_get(j, "token")), "skf_", 4) == 0);
    json_decref(j);
    sk_test_output_free(&o);
    ASSERT_EQ_INT(SKIFF(&c, &o, "token", "create", "other"), 5);
    ASSERT_CONTAINS(o.err, "(already_exists)");
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(the_token_comes_from_flags_env_or_config_and_its_absence_is_explained, 60)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    /* nothing configured: exit 2 and where to find a token */
    ASSERT_EQ_INT(skiff_env(&c, NULL, NULL, NULL, &o, ARGS("sandbox", "ls")), 2);
    ASSERT_CONTAINS(o.err, "no API token");
    ASSERT_CONTAINS(o.err, "SKIFF_TOKEN");
    ASSERT_CONTAINS(o.err, "admin.token");
    ASSERT_EQ_STR(o.out, "");
    sk_test_output_free(&o);
    /* --token */
    must(skiff_env(&c, NULL, NULL, NULL, &o, ARGS("sandbox", "ls", "--token", c.d.token)), &o, "--token");
    sk_test_output_free(&o);
    /* ~/.config/skiff/config with url and token_file (relative to it) */
    char dir[PATH_MAX + 32], path[PATH_MAX + 64], text[512];
    snprintf(dir, sizeof(dir), "%s/.config/skiff", c.top);
    struct sk_error err;
    ASSERT_EQ_INT(sk_mkdir_p(dir, 0700, &err), 0);
    snprintf(path, sizeof(path), "%s/token", dir);
    write_file(path, c.d.token, strlen(c.d.token), 0600);
    snprintf(path, sizeof(path), "%s/config", dir);
    int len = snprintf(text, sizeof(text), "# skiff\nurl = %s\ntoken_file = token\n", c.url);
    write_file(path, text, (size_t)len, 0600);
    static const char *const no_url[] = {"SKIFF_URL=", NULL};
    must(skiff_env(&c, NULL, no_url, NULL, &o, ARGS("sandbox", "ls")), &o, "config file");
    sk_test_output_free(&o);
    /* a malformed config file says where */
    len = snprintf(text, sizeof(text), "url: %s\n", c.url);
    write_file(path, text, (size_t)len, 0600);
    ASSERT_EQ_INT(skiff_env(&c, NULL, NULL, NULL, &o, ARGS("sandbox", "ls")), 2);
    ASSERT_CONTAINS(o.err, "line 1");
    sk_test_output_free(&o);
    /* a server that is not there: exit 6 and a hint */
    ASSERT_EQ_INT(unlink(path), 0);
    static const char *const dead[] = {"SKIFF_URL=http://127.0.0.1:1", NULL};
    ASSERT_EQ_INT(skiff_env(&c, c.d.token, dead, NULL, &o, ARGS("sandbox", "ls")), 6);
    ASSERT_CONTAINS(o.err, "cannot reach skiffd");
    sk_test_output_free(&o);
    skiffd_finish(&c.d);
}

TEST_TIMEOUT(an_unknown_sandbox_is_not_found_with_exit_3, 60)
{
    struct cli c;
    cli_start(&c);
    struct sk_test_output o;
    const char *const *const cmds[] = {
        ARGS("sandbox", "get", "sb-0000000000000000"),
        ARGS("sandbox", "rm", "nosuchbox"),
        ARGS("sandbox", "exec", "nosuchbox", "--", "true"),
        ARGS("sandbox", "logs", "nosuchbox"),
        ARGS("sandbox", "wait", "nosuchbox"),
        ARGS("sandbox", "tag", "nosuchbox", "a=b"),
        ARGS("sandbox", "cp", "nosuchbox:/etc/hostname", "/tmp/x"),
        ARGS("sandbox", "shell", "nosuchbox"),
        ARGS("token", "revoke", "0000000000000000"),
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(cmds); i++) {
        int rc = skiff_env(&c, c.d.token, NULL, NULL, &o, cmds[i]);
        if (rc != 3 || strstr(o.err, "(not_found)") == NULL)
            FAIL("skiff %s %s: exit %d, stderr %s", cmds[i][0], cmds[i][1], rc, o.err);
        ASSERT_TRUE(strncmp(o.err, "skiff: ", 7) == 0);
        sk_test_output_free(&o);
    }
    skiffd_finish(&c.d);
}

TEST(bad_flags_give_usage_and_exit_2)
{
    struct cli c;
    memset(&c, 0, sizeof(c));
    snprintf(c.url, sizeof(c.url), "http://127.0.0.1:1"); /* never reached */
    snprintf(c.top, sizeof(c.top), "/nonexistent");
    snprintf(c.d.token, sizeof(c.d.token), "skf_0000000000000000_x");
    const char *const *const cmds[] = {
        ARGS("sandbox", "ls", "--bogus"),
        ARGS("sandbox", "ls", "--limit", "0"),
        ARGS("sandbox", "ls", "--tag", "novalue"),
        ARGS("sandbox", "create", "--memory", "lots"),
        ARGS("sandbox", "create", "--cpu"),
        ARGS("sandbox", "create", "--env", "=x"),
        ARGS("sandbox", "create", "stray"),
        ARGS("sandbox", "get"),
        ARGS("sandbox", "get", "a", "b"),
        ARGS("sandbox", "exec", "box"),
        ARGS("sandbox", "exec", "--workdir", "relative", "box", "--", "true"),
        ARGS("sandbox", "exec", "--bogus", "box", "--", "true"),
        ARGS("sandbox", "cp", "a", "b"),
        ARGS("sandbox", "cp", "box:relative", "b"),
        ARGS("sandbox", "wait", "--timeout", "soon", "box"),
        ARGS("sandbox", "tag", "box"),
        ARGS("sandbox", "logs", "--json", "box"),
        ARGS("sandbox", "frobnicate"),
        ARGS("sandbox"),
        ARGS("token", "create"),
        ARGS("token", "create", "--ttl", "-1", "x"),
        ARGS("nosuchcommand"),
        ARGS("--url"),
    };
    struct sk_test_output o;
    for (size_t i = 0; i < SK_ARRAY_SIZE(cmds); i++) {
        int rc = skiff_env(&c, c.d.token, NULL, NULL, &o, cmds[i]);
        if (rc != 2 || (strstr(o.err, "--help") == NULL && strstr(o.err, "usage:") == NULL))
            FAIL("skiff %s %s: exit %d, stderr %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", rc, o.err);
        sk_test_output_free(&o);
    }
}

TEST(every_help_exits_0_and_names_its_options)
{
    struct cli c;
    memset(&c, 0, sizeof(c));
    snprintf(c.url, sizeof(c.url), "http://127.0.0.1:1");
    snprintf(c.top, sizeof(c.top), "/nonexistent");
    const struct {
        const char *const *args;
        const char *want[4];
    } cases[] = {
        {ARGS("--help"), {"sandbox", "token", "serve", "exit codes"}},
        {ARGS("sandbox", "--help"), {"create", "shell", "cp", "124"}},
        {ARGS("sandbox", "create", "--help"), {"--memory", "--idle-timeout", "--tag", "ENTRYPOINT"}},
        {ARGS("sandbox", "ls", "--help"), {"--state", "--tag", "--limit", "--all"}},
        {ARGS("sandbox", "get", "--help"), {"--json", "--url", "--token", NULL}},
        {ARGS("sandbox", "exec", "--help"), {"--interactive", "--env", "--workdir", "--timeout"}},
        {ARGS("sandbox", "shell", "--help"), {"--env", "--workdir", "raw mode", NULL}},
        {ARGS("sandbox", "cp", "--help"), {"ID:/PATH", "--json", "directory", NULL}},
        {ARGS("sandbox", "rm", "--help"), {"--json", "terminate", NULL, NULL}},
        {ARGS("sandbox", "logs", "--help"), {"--follow", "stderr", NULL, NULL}},
        {ARGS("sandbox", "wait", "--help"), {"--timeout", "124", NULL, NULL}},
        {ARGS("sandbox", "tag", "--help"), {"--clear", "K=V", NULL, NULL}},
        {ARGS("token", "--help"), {"create", "ls", "revoke", NULL}},
        {ARGS("token", "create", "--help"), {"--ttl", "--json", NULL, NULL}},
        {ARGS("token", "ls", "--help"), {"--json", NULL, NULL, NULL}},
        {ARGS("token", "revoke", "--help"), {"--json", "last live admin", NULL, NULL}},
        {ARGS("serve", "--help"), {"--listen", "--data-dir", "admin.token", NULL}},
        {ARGS("help", "sandbox"), {"create", NULL, NULL, NULL}},
        {ARGS("run", "--help"), {"--memory", NULL, NULL, NULL}},
    };
    struct sk_test_output o;
    for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
        int rc = skiff_env(&c, NULL, NULL, NULL, &o, cases[i].args);
        if (rc != 0)
            FAIL("skiff %s %s: exit %d: %s", cases[i].args[0], cases[i].args[1] ? cases[i].args[1] : "", rc, o.err);
        ASSERT_CONTAINS(o.out, "usage:");
        for (size_t k = 0; k < 4 && cases[i].want[k] != NULL; k++)
            if (strstr(o.out, cases[i].want[k]) == NULL)
                FAIL("skiff %s %s --help lacks \"%s\"", cases[i].args[0], cases[i].args[1] ? cases[i].args[1] : "",
                     cases[i].want[k]);
        sk_test_output_free(&o);
    }
}

/* spawn_skiff - start build/skiff ARGS with stdout on a pipe (*out_fd)
 * and the server's URL and token in the environment. */
static pid_t spawn_skiff(const struct cli *c, int *out_fd, const char *const *args)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        FAIL("pipe: %s", strerror(errno));
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/skiff", sk_test_bin_dir());
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        setenv("SKIFF_URL", c->url, 1);
        setenv("SKIFF_TOKEN", c->d.token, 1);
        const char *argv[32] = {bin};
        for (size_t i = 0; args[i] != NULL && i < 30; i++)
            argv[i + 1] = args[i];
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* read_until - read fd into buf until it holds `want` (false on timeout/EOF). */
static bool read_until(int fd, char *buf, size_t size, size_t *len, const char *want, int timeout_ms)
{
    double deadline = now_ms() + timeout_ms;
    while (strstr(buf, want) == NULL) {
        int left = (int)(deadline - now_ms());
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return false;
        ssize_t n = read(fd, buf + *len, size - *len - 1);
        if (n <= 0)
            return false;
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    return true;
}

static int wait_exit(pid_t pid)
{
    int status = 0;
    double deadline = now_ms() + 20000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            FAIL("skiff did not exit");
        }
        usleep(10000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_TIMEOUT(exec_forwards_signals_to_the_command, 90)
{
    struct cli c;
    cli_start(&c);
    char id[64], buf[4096] = "";
    size_t len = 0;
    create_sandbox(&c, id, sizeof(id), NULL);
    int fd = -1;
    pid_t pid = spawn_skiff(&c, &fd,
                            ARGS("sandbox", "exec", id, "--", "sh", "-c",
                                 "trap 'echo got-term; exit 3' TERM; echo ready; sleep 30 & wait"));
    ASSERT_TRUE(read_until(fd, buf, sizeof(buf), &len, "ready\n", 10000));
    kill(pid, SIGTERM);
    ASSERT_TRUE(read_until(fd, buf, sizeof(buf), &len, "got-term\n", 10000));
    ASSERT_EQ_INT(wait_exit(pid), 3);
    close(fd);
    /* SIGINT ends a command that does not catch it: 128+2 */
    buf[0] = '\0';
    len = 0;
    pid = spawn_skiff(&c, &fd, ARGS("sandbox", "exec", id, "--", "sh", "-c", "echo ready; exec sleep 30"));
    ASSERT_TRUE(read_until(fd, buf, sizeof(buf), &len, "ready\n", 10000));
    kill(pid, SIGINT);
    ASSERT_EQ_INT(wait_exit(pid), 130);
    close(fd);
    skiffd_finish(&c.d);
}

/* On a real terminal: raw mode, keys forwarded, the window size passed on
 * at the start and after SIGWINCH, the exit code propagated. */
TEST_TIMEOUT(shell_on_a_terminal_follows_window_size_changes, 90)
{
    struct cli c;
    cli_start(&c);
    char id[64];
    create_sandbox(&c, id, sizeof(id), NULL);
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_TRUE(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    char slave[128];
    ASSERT_EQ_INT(ptsname_r(master, slave, sizeof(slave)), 0);
    struct winsize ws = {.ws_row = 30, .ws_col = 100};
    ASSERT_EQ_INT(ioctl(master, TIOCSWINSZ, &ws), 0);
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/skiff", sk_test_bin_dir());
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int fd = open(slave, O_RDWR); /* our controlling terminal now */
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("SKIFF_URL", c.url, 1);
        setenv("SKIFF_TOKEN", c.d.token, 1);
        execl(bin, bin, "sandbox", "shell", id, "--", "/bin/sh", (char *)NULL);
        _exit(127);
    }
    char buf[65536] = "";
    size_t len = 0;
    send_all(master, "stty size\n", 10);
    ASSERT_TRUE(read_until(master, buf, sizeof(buf), &len, "30 100", 10000));
    ws = (struct winsize){.ws_row = 40, .ws_col = 120};
    ASSERT_EQ_INT(ioctl(master, TIOCSWINSZ, &ws), 0); /* SIGWINCH to skiff */
    bool resized = false;
    for (int i = 0; i < 50 && !resized; i++) {
        usleep(100000);
        send_all(master, "stty size\n", 10);
        resized = read_until(master, buf, sizeof(buf), &len, "40 120", 300);
    }
    ASSERT_TRUE(resized);
    send_all(master, "exit 4\n", 7);
    ASSERT_EQ_INT(wait_exit(pid), 4);
    close(master);
    skiffd_finish(&c.d);
}

/* skiff serve runs skiffd (found next to skiff) with the same arguments. */
TEST_TIMEOUT(serve_runs_skiffd_with_the_same_arguments, 60)
{
    struct skiffd s;
    make_data_dir(&s);
    s.port = free_port();
    char bin[PATH_MAX], listen_at[64];
    snprintf(bin, sizeof(bin), "%s/skiff", sk_test_bin_dir());
    snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", s.port);
    snprintf(s.log, sizeof(s.log), "%s.log", s.dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(s.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "serve", "--listen", listen_at, "--data-dir", s.dir, (char *)NULL);
        _exit(127);
    }
    s.pid = pid;
    double deadline = now_ms() + 10000;
    while (!healthy(&s) && now_ms() < deadline)
        usleep(20000);
    ASSERT_TRUE(healthy(&s));
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/admin.token", s.dir);
    struct stat st;
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    ASSERT_EQ_INT(skiffd_stop(&s), 0); /* the same process: skiff exec'd skiffd */
    skiffd_finish(&s);
}
