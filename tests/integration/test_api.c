/* The sandbox API of skiffd, end to end over HTTP against the real
 * build/skiffd: sandboxes, execs with streamed and resumable output, the
 * one-shot run, files served by skiff-init, reasons for every end, and the
 * bad input each endpoint must refuse without harm. */
#include "skiffd_test.h"

#include <glob.h>
#include <sys/prctl.h>

#include "runtime/cgroup.h"

static void start(struct skiffd *s)
{
    memset(s, 0, sizeof(*s));
    make_data_dir(s);
    skiffd_start(s);
}

/* api - request with the admin token; the response is checked for status. */
static void api(const struct skiffd *s, const char *method, const char *path, const char *body, int want,
                struct resp *r)
{
    request(s, method, path, s->token, body, r);
    if (r->status != want)
        FAIL("%s %s: status %d, want %d: %.*s", method, path, r->status, want,
             (int)(r->body_len > 400 ? 400 : r->body_len), r->body ? r->body : "");
}

static const char *jstr(const struct resp *r, const char *key)
{
    const char *v = json_string_value(json_object_get(r->json, key));
    return v ? v : "";
}

static long long jint(const struct resp *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    if (!json_is_integer(v))
        FAIL("'%s' is not an integer in %.*s", key, (int)r->body_len, r->body);
    return (long long)json_integer_value(v);
}

/* create - POST /v1/sandboxes with body; returns the id in id_out. */
static void create(const struct skiffd *s, const char *body, char *id_out, size_t size)
{
    struct resp r;
    api(s, "POST", "/v1/sandboxes", body, 201, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    snprintf(id_out, size, "%s", jstr(&r, "id"));
    ASSERT_TRUE(strncmp(id_out, "sb-", 3) == 0);
    ASSERT_CONTAINS(resp_header(&r, "Location"), id_out);
    resp_free(&r);
}

TEST_TIMEOUT(sandbox_lifecycle_run_exec_files, 120)
{
    struct skiffd s;
    start(&s);
    char id[64], path[256];
    create(&s, "{\"name\": \"box\", \"memory\": 256, \"cpu\": 1, \"tags\": {\"team\": \"a\", \"env\": \"ci\"}}", id,
           sizeof(id));
    struct resp r;

    /* get by id and by name */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "name"), "box");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "reason")));
    resp_free(&r);
    api(&s, "GET", "/v1/sandboxes/box", NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "id"), id);
    resp_free(&r);

    /* run: stdout, stderr and the exit code in one answer */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", path, "{\"argv\": [\"sh\", \"-c\", \"echo out; echo err >&2; exit 3\"]}", 200, &r);
    ASSERT_EQ_STR(jstr(&r, "stdout"), "out\n");
    ASSERT_EQ_STR(jstr(&r, "stderr"), "err\n");
    ASSERT_EQ_INT(jint(&r, "exit_code"), 3);
    resp_free(&r);
    api(&s, "POST", path, "{\"argv\": [\"cat\"], \"stdin\": \"piped in\"}", 200, &r);
    ASSERT_EQ_STR(jstr(&r, "stdout"), "piped in");
    resp_free(&r);
    /* invalid UTF-8 in output never breaks the JSON answer */
    api(&s, "POST", path, "{\"argv\": [\"printf\", \"a\\\\377b\"]}", 200, &r);
    ASSERT_EQ_STR(jstr(&r, "stdout"), "a\xef\xbf\xbd"
                                      "b");
    resp_free(&r);
    api(&s, "POST", path, "{\"argv\": [\"no-such-program\"]}", 404, &r);
    ASSERT_CONTAINS(err_message(&r), "no-such-program");
    resp_free(&r);

    /* exec: streamed output, then resumed from an offset */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", id);
    api(&s, "POST", path,
        "{\"argv\": [\"sh\", \"-c\", \"for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; echo bye >&2\"]}", 201,
        &r);
    char eid[64];
    snprintf(eid, sizeof(eid), "%s", jstr(&r, "id"));
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    char out_path[256];
    snprintf(out_path, sizeof(out_path), "/v1/sandboxes/%s/execs/%s/output", id, eid);
    api(&s, "GET", out_path, NULL, 200, &r); /* follows until the exec ends */
    ASSERT_EQ_INT(r.body_len, 35);
    ASSERT_TRUE(memcmp(r.body, "line 1\nline 2\nline 3\nline 4\nline 5\n", 35) == 0);
    resp_free(&r);
    char q[320];
    snprintf(q, sizeof(q), "%s?offset=14&follow=0", out_path);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(r.body_len, 21);
    ASSERT_TRUE(memcmp(r.body, "line 3\nline 4\nline 5\n", 21) == 0);
    resp_free(&r);
    snprintf(q, sizeof(q), "%s?stream=stderr", out_path);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(r.body_len, 4);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s/wait?timeout=5", id, eid);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "exited");
    ASSERT_EQ_INT(jint(&r, "exit_code"), 0);
    resp_free(&r);

    /* stdin and EOF, then the exec's end */
    api(&s, "POST", path, "{\"argv\": [\"sh\", \"-c\", \"wc -c\"], \"stdin\": true}", 201, &r);
    snprintf(eid, sizeof(eid), "%s", jstr(&r, "id"));
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s/stdin?eof=1", id, eid);
    api(&s, "POST", q, "twelve bytes", 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s/output", id, eid);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(r.body_len, 3);
    ASSERT_TRUE(memcmp(r.body, "12\n", 3) == 0);
    resp_free(&r);

    /* a signal reaches one exec only */
    char a[64], b[64];
    api(&s, "POST", path, "{\"argv\": [\"sleep\", \"30\"]}", 201, &r);
    snprintf(a, sizeof(a), "%s", jstr(&r, "id"));
    resp_free(&r);
    api(&s, "POST", path, "{\"argv\": [\"sleep\", \"30\"]}", 201, &r);
    snprintf(b, sizeof(b), "%s", jstr(&r, "id"));
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s/signal", id, a);
    api(&s, "POST", q, "{\"signal\": \"TERM\"}", 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s/wait?timeout=5", id, a);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(jint(&r, "signal"), 15);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s", id, b);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    api(&s, "GET", path, NULL, 200, &r);
    ASSERT_GE_INT(json_array_size(json_object_get(r.json, "execs")), 6);
    resp_free(&r);

    /* files: write (streamed, atomic), read with a range, stat, list, move, remove */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/mkdir", id);
    api(&s, "POST", q, "{\"path\": \"/work/src\"}", 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files?path=/work/src/main.py", id);
    api(&s, "PUT", q, "print('hello')\n", 201, &r);
    ASSERT_EQ_INT(jint(&r, "size"), 15);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files?path=/work/src/main.py&offset=6&length=7", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(r.body_len, 7);
    ASSERT_TRUE(memcmp(r.body, "'hello'", 7) == 0);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=/work/src/main.py", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "type"), "file");
    ASSERT_EQ_INT(jint(&r, "size"), 15);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/move", id);
    api(&s, "POST", q, "{\"from\": \"/work/src/main.py\", \"to\": \"/work/src/app.py\"}", 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/list?path=/work&recursive=1", id);
    api(&s, "GET", q, NULL, 200, &r);
    _cleanup_free_ char *listing = json_dumps(r.json, 0);
    ASSERT_CONTAINS(listing, "src/app.py");
    ASSERT_NOT_CONTAINS(listing, "main.py");
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", path, "{\"argv\": [\"python3\", \"/work/src/app.py\"]}", 200, &r);
    ASSERT_EQ_STR(jstr(&r, "stdout"), "hello\n");
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files?path=/work&recursive=1", id);
    api(&s, "DELETE", q, NULL, 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/stat?path=/work", id);
    api(&s, "GET", q, NULL, 404, &r);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);

    /* usage, tags, list by tag */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/usage", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_GT_INT(json_real_value(json_object_get(r.json, "cpu_seconds")) * 1e6, 0);
    ASSERT_GT_INT(jint(&r, "memory_bytes"), 0);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/tags", id);
    api(&s, "PUT", q, "{\"tags\": {\"team\": \"b\"}}", 200, &r);
    resp_free(&r);
    api(&s, "GET", "/v1/sandboxes?tag=team:b", NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "sandboxes")), 1);
    resp_free(&r);
    api(&s, "GET", "/v1/sandboxes?tag=team:a", NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "sandboxes")), 0);
    resp_free(&r);

    /* terminate: reason and who; the execs still running end with it */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/terminate", id);
    api(&s, "POST", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "terminated");
    ASSERT_EQ_STR(jstr(&r, "reason"), "terminated");
    ASSERT_EQ_INT(strlen(jstr(&r, "reason_detail")), 16); /* the admin token's id */
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s", id, b);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "exited");
    resp_free(&r);
    /* an ended sandbox stays queryable and refuses new work clearly */
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", path, "{\"argv\": [\"true\"]}", 409, &r);
    ASSERT_EQ_STR(err_code(&r), "failed_precondition");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(every_end_has_a_reason)
{
    struct skiffd s;
    start(&s);
    char id[64], q[256];
    struct resp r;
    /* the entrypoint's exit: "exited" with its code, and its logs */
    create(&s, "{\"entrypoint\": [\"sh\", \"-c\", \"echo from-entrypoint; exit 4\"]}", id, sizeof(id));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=10", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "reason"), "exited");
    ASSERT_EQ_INT(jint(&r, "exit_code"), 4);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/logs", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_INT(r.body_len, 16);
    ASSERT_TRUE(memcmp(r.body, "from-entrypoint\n", 16) == 0);
    resp_free(&r);
    /* the sandbox timeout */
    create(&s, "{\"timeout\": 1}", id, sizeof(id));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=10", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "reason"), "timeout");
    resp_free(&r);
    /* the idle timeout */
    create(&s, "{\"idle_timeout\": 1}", id, sizeof(id));
    api(&s, "GET", q, NULL, 200, &r); /* q still names the previous one: ended */
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=10", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "reason"), "idle");
    resp_free(&r);
    /* out of memory */
    create(&s, "{\"memory\": 32, \"entrypoint\": [\"python3\", \"-c\", \"b = bytearray(400 << 20)\"]}", id, sizeof(id));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=20", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "reason"), "oom");
    resp_free(&r);
    /* the metrics saw every end and every start */
    api(&s, "GET", "/metrics", NULL, 200, &r);
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"exited\"} 1");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"timeout\"} 1");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"idle\"} 1");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"oom\"} 1");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_creates_total 4");
    ASSERT_CONTAINS(r.body, "skiff_sandboxes{state=\"running\"} 0");
    ASSERT_CONTAINS(r.body, "skiff_exec_duration_seconds_count");
    resp_free(&r);
    /* a wait that times out says so and the sandbox runs on */
    create(&s, "{}", id, sizeof(id));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=1", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_TRUE(json_is_true(json_object_get(r.json, "timed_out")));
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(bad_input_is_refused_and_harms_nothing)
{
    struct skiffd s;
    start(&s);
    char id[64], q[512];
    struct resp r;
    create(&s, "{\"name\": \"keep\"}", id, sizeof(id));
    static const struct {
        const char *method, *path, *body, *code;
        int status;
    } cases[] = {
        {"POST", "/v1/sandboxes", "{\"bogus\": 1}", "unknown_field", 400},
        {"POST", "/v1/sandboxes", "{\"memory\": \"lots\"}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"memory\": 1}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"cpu\": -1}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"timeout\": -5}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"pids\": 0}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"entrypoint\": []}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"entrypoint\": [1, 2]}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"image\": \"relative/rootfs\"}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"image\": \"/nonexistent/rootfs\"}", "not_found", 404},
        {"POST", "/v1/sandboxes", "{\"name\": \"keep\"}", "already_exists", 409},
        {"POST", "/v1/sandboxes", "{\"name\": \"bad name!\"}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "{\"tags\": {\"k\": 1}}", "invalid_argument", 400},
        {"POST", "/v1/sandboxes", "not json", "invalid_json", 400},
        {"GET", "/v1/sandboxes/sb-0000000000000000", NULL, "not_found", 404},
        {"POST", "/v1/sandboxes/sb-0000000000000000/run", "{\"argv\": [\"true\"]}", "not_found", 404},
        {"GET", "/v1/sandboxes?limit=0", NULL, "invalid_argument", 400},
        {"GET", "/v1/sandboxes?cursor=garbage", NULL, "invalid_argument", 400},
        {"GET", "/v1/sandboxes?tag=nocolon", NULL, "invalid_argument", 400},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
        request(&s, cases[i].method, cases[i].path, s.token, cases[i].body, &r);
        if (r.status != cases[i].status || strcmp(err_code(&r), cases[i].code) != 0)
            FAIL("%s %s %s: %d %s, want %d %s", cases[i].method, cases[i].path, cases[i].body ? cases[i].body : "",
                 r.status, err_code(&r), cases[i].status, cases[i].code);
        resp_free(&r);
    }
    static const struct {
        const char *method, *suffix, *body, *code;
        int status;
    } per_box[] = {
        {"POST", "/run", "{\"argv\": []}", "invalid_argument", 400},
        {"POST", "/run", "{\"argv\": [\"true\"], \"workdir\": \"relative\"}", "invalid_argument", 400},
        {"POST", "/run", "{\"argv\": [\"true\"], \"env\": {\"A=B\": \"x\"}}", "invalid_argument", 400},
        {"POST", "/execs/ex-0000000000000000/signal", "{\"signal\": 9}", "not_found", 404},
        {"GET", "/files?path=/nonexistent", NULL, "not_found", 404},
        {"GET", "/files", NULL, "invalid_argument", 400},
        {"GET", "/files?path=/tmp", NULL, "invalid_argument", 400},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(per_box); i++) {
        snprintf(q, sizeof(q), "/v1/sandboxes/%s%s", id, per_box[i].suffix);
        request(&s, per_box[i].method, q, s.token, per_box[i].body, &r);
        if (r.status != per_box[i].status || strcmp(err_code(&r), per_box[i].code) != 0)
            FAIL("%s %s: %d %s, want %d %s", per_box[i].method, q, r.status, err_code(&r), per_box[i].status,
                 per_box[i].code);
        resp_free(&r);
    }
    /* hostile paths stay inside the sandbox: its own /etc/passwd, never the host's */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", q, "{\"argv\": [\"ln\", \"-s\", \"/etc/passwd\", \"/tmp/evil\"]}", 200, &r);
    resp_free(&r);
    _cleanup_free_ char *host_before = read_text("/etc/passwd");
    static const char *const hostile[] = {"/tmp/evil", "/../../../../etc/passwd", "../../etc/passwd",
                                          "/proc/1/root/etc/passwd"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(hostile); i++) {
        snprintf(q, sizeof(q), "/v1/sandboxes/%s/files?path=%s", id, hostile[i]);
        request(&s, "GET", q, s.token, NULL, &r);
        if (r.status == 200)
            ASSERT_TRUE(r.body_len < 4 || strstr(r.body, "daemon:") == NULL);
        resp_free(&r);
        request(&s, "PUT", q, s.token, "pwned\n", &r);
        resp_free(&r);
    }
    _cleanup_free_ char *host_after = read_text("/etc/passwd");
    ASSERT_EQ_STR(host_after, host_before);
    /* the sandbox that was there all along is untouched */
    api(&s, "GET", "/v1/sandboxes/keep", NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    skiffd_finish(&s);
}

/* 50 sandboxes created and used at once by 5 clients. */
TEST_TIMEOUT(fifty_concurrent_creates_and_execs, 180)
{
    struct skiffd s;
    start(&s);
    pid_t kids[5];
    for (int k = 0; k < 5; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            for (int i = 0; i < 10; i++) {
                struct resp r;
                request(&s, "POST", "/v1/sandboxes", s.token, "{\"memory\": 128}", &r);
                if (r.status != 201)
                    _exit(10 + i);
                char q[256];
                snprintf(q, sizeof(q), "/v1/sandboxes/%s/run", jstr(&r, "id"));
                resp_free(&r);
                char body[128];
                snprintf(body, sizeof(body), "{\"argv\": [\"sh\", \"-c\", \"echo $((%d * 100 + %d))\"]}", k, i);
                request(&s, "POST", q, s.token, body, &r);
                char want[32];
                snprintf(want, sizeof(want), "%d\n", k * 100 + i);
                if (r.status != 200 || strcmp(jstr(&r, "stdout"), want) != 0)
                    _exit(30 + i);
                resp_free(&r);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < 5; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        ASSERT_EQ_INT(WEXITSTATUS(status), 0);
    }
    struct resp r;
    api(&s, "GET", "/v1/sandboxes?state=running&limit=1000", NULL, 200, &r);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "sandboxes")), 50);
    resp_free(&r);
    skiffd_finish(&s);
}

static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_free_ char *st = read_text(path);
    const char *p = st ? strstr(st, "VmRSS:") : NULL;
    return p ? strtol(p + 6, NULL, 10) : -1;
}

/* 100 MB of output through a slow reader: the daemon's memory does not grow
 * with it (output goes to a file; the stream follows the file). */
TEST_TIMEOUT(large_output_through_a_slow_reader_keeps_memory_flat, 120)
{
    struct skiffd s;
    start(&s);
    char id[64], q[256];
    create(&s, "{}", id, sizeof(id));
    long rss0 = rss_kib(s.pid);
    struct resp r;
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs", id);
    api(&s, "POST", q, "{\"argv\": [\"head\", \"-c\", \"100000000\", \"/dev/zero\"]}", 201, &r);
    char path[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/output", id, jstr(&r, "id"));
    resp_free(&r);
    int fd = connect_to(&s, NULL);
    send_request(fd, "GET", path, s.token, NULL, 0, false);
    char buf[65536];
    size_t total = 0;
    long peak = rss0;
    for (int i = 0;; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        total += (size_t)n;
        if (i % 64 == 0) {
            usleep(2000); /* a slow reader */
            long rss = rss_kib(s.pid);
            if (rss > peak)
                peak = rss;
        }
        if (memmem(buf, (size_t)n, "\r\n0\r\n\r\n", 7) != NULL)
            break;
    }
    close(fd);
    ASSERT_GT_INT(total, 100000000);
    ASSERT_LT_INT(peak - rss0, 32 * 1024);
    skiffd_finish(&s);
}

/* ---- kill -9 of skiffd and its restart ---------------------------------------------- */

/* The tests below make themselves child subreapers: the sandboxes' pid 1,
 * children of the killed skiffd, become the test's (as they would become
 * init's), so that the test can reap them and tell "gone" from "zombie". */

#define CRASH_LOOP "for i in $(seq 1 30); do echo $i; sleep 0.1; done"

static int count_lines(const char *path)
{
    _cleanup_free_ char *text = read_text(path);
    int n = 0;
    for (const char *p = text; p != NULL && *p; p++)
        n += *p == '\n';
    return n;
}

/* sandbox_pids - the processes in the sandbox's cgroup (every hierarchy);
 * returns how many (duplicates included), at most max. */
static size_t sandbox_pids(const char *id, pid_t *pids, size_t max)
{
    char pattern[2][256];
    snprintf(pattern[0], sizeof(pattern[0]), "/sys/fs/cgroup/*/skiff-*/%s/cgroup.procs", id);
    snprintf(pattern[1], sizeof(pattern[1]), "/sys/fs/cgroup/skiff-*/%s/cgroup.procs", id);
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        glob_t g;
        if (glob(pattern[k], 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            _cleanup_free_ char *text = read_text(g.gl_pathv[i]);
            for (char *p = text, *end; p != NULL && *p && n < max; p = end) {
                long v = strtol(p, &end, 10);
                if (end == p)
                    break;
                if (v > 0)
                    pids[n++] = (pid_t)v;
            }
        }
        globfree(&g);
    }
    return n;
}

/* sandbox_init_pid - the host pid of the sandbox's skiff-init, or -1. */
static pid_t sandbox_init_pid(const char *id)
{
    pid_t pids[256];
    size_t n = sandbox_pids(id, pids, 256);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pids[i]);
        _cleanup_free_ char *comm = read_text(path);
        if (comm != NULL && strcmp(comm, "skiff-init\n") == 0)
            return pids[i];
    }
    return -1;
}

/* process_gone - neither running nor a zombie (reaped here if ours). */
static bool process_gone(pid_t pid)
{
    for (int i = 0; i < 500; i++) {
        waitpid(pid, NULL, WNOHANG | __WALL);
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        usleep(10000);
    }
    return false;
}

/* assert_no_cgroup - no cgroup of sandbox `id` in any hierarchy (within
 * 10 s: a worker thread tears an ended sandbox down). */
static void assert_no_cgroup(const char *id)
{
    for (int i = 0; i < 100 && sandbox_cgroup_exists(id); i++)
        usleep(100000);
    ASSERT_FALSE(sandbox_cgroup_exists(id));
}

/* assert_no_state - no runtime state directory or lock of sandbox `id`. */
static void assert_no_state(const struct skiffd *s, const char *id)
{
    char path[PATH_MAX + 128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/runtime/sandboxes/%s", s->dir, id);
    ASSERT_NE_INT(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/runtime/locks/%s.lock", s->dir, id);
    ASSERT_NE_INT(stat(path, &st), 0);
}

/* crash - kill -9 of skiffd, as a crash: no teardown at all. */
static void crash(struct skiffd *s)
{
    ASSERT_EQ_INT(kill(s->pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ_INT(waitpid(s->pid, &status, 0), s->pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    s->pid = 0;
}

/* stream_prefix - read a streamed (chunked) answer on fd until its body
 * holds at least `want` bytes: the complete chunks so far go to body. */
static size_t stream_prefix(int fd, char *body, size_t cap, size_t want, int timeout_s)
{
    char raw[8192];
    size_t raw_len = 0, len = 0;
    double deadline = now_ms() + timeout_s * 1000.0;
    while (len < want) {
        if (now_ms() > deadline)
            FAIL("only %zu bytes of the stream within %d s", len, timeout_s);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, raw + raw_len, sizeof(raw) - 1 - raw_len);
        if (n <= 0)
            FAIL("the stream ended after %zu bytes", len);
        raw_len += (size_t)n;
        raw[raw_len] = '\0';
        char *head_end = strstr(raw, "\r\n\r\n");
        if (head_end == NULL)
            continue;
        ASSERT_TRUE(strncmp(raw, "HTTP/1.1 200", 12) == 0);
        size_t pos = (size_t)(head_end - raw) + 4;
        len = 0;
        for (;;) {
            char *eol = strstr(raw + pos, "\r\n");
            if (eol == NULL)
                break;
            size_t sz = strtoul(raw + pos, NULL, 16);
            size_t data = (size_t)(eol - raw) + 2;
            if (sz == 0 || data + sz + 2 > raw_len)
                break;
            ASSERT_LT_INT(len + sz, cap);
            memcpy(body + len, raw + data, sz);
            len += sz;
            pos = data + sz + 2;
        }
    }
    body[len] = '\0';
    return len;
}

/* kill -9 of skiffd while an exec streams its output to a client: after the
 * restart the sandbox has been re-adopted - still "running", no reason -,
 * the client resumes at the offset it had read to and gets exactly the
 * rest (1..30, nothing lost or doubled), the exec ends with its real exit
 * code, new execs work, and terminating it leaves no cgroup, process,
 * mount or state directory. */
TEST_TIMEOUT(crash_and_restart_readopts_running_sandboxes, 120)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int mounts0 = count_lines("/proc/self/mountinfo");
    struct skiffd s;
    start(&s);
    char id[64], q[320], out_path[256];
    create(&s, "{\"name\": \"survivor\"}", id, sizeof(id));
    struct resp r;
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs", id);
    api(&s, "POST", q, "{\"argv\": [\"sh\", \"-c\", \"" CRASH_LOOP "\"]}", 201, &r);
    char eid[64];
    snprintf(eid, sizeof(eid), "%s", jstr(&r, "id"));
    resp_free(&r);
    snprintf(out_path, sizeof(out_path), "/v1/sandboxes/%s/execs/%s/output", id, eid);

    /* A client follows the output and has read part of it. */
    int fd = connect_to(&s, NULL);
    ASSERT_GE_INT(fd, 0);
    send_request(fd, "GET", out_path, s.token, NULL, 0, false);
    char got[512];
    size_t got_len = stream_prefix(fd, got, sizeof(got), 6, 10);
    ASSERT_TRUE(strncmp(got, "1\n2\n3\n", 6) == 0);
    pid_t init = sandbox_init_pid(id);
    ASSERT_GT_INT(init, 0);

    crash(&s);
    close(fd);                       /* its stream ended with the server */
    ASSERT_EQ_INT(kill(init, 0), 0); /* the sandbox did not */
    usleep(300000);
    skiffd_start(&s);

    snprintf(q, sizeof(q), "/v1/sandboxes/%s", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "running");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "reason")));
    resp_free(&r);
    ASSERT_EQ_INT(sandbox_init_pid(id), init);

    /* Resume at the offset: exactly the rest, following until the end. */
    snprintf(q, sizeof(q), "%s?offset=%zu", out_path, got_len);
    api(&s, "GET", q, NULL, 200, &r);
    char want[256], all[512];
    size_t wn = 0;
    for (int i = 1; i <= 30; i++)
        wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%d\n", i);
    ASSERT_LT_INT(got_len + r.body_len, sizeof(all));
    memcpy(all, got, got_len);
    memcpy(all + got_len, r.body, r.body_len);
    all[got_len + r.body_len] = '\0';
    ASSERT_EQ_STR(all, want);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s", id, eid);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "exited");
    ASSERT_EQ_INT(jint(&r, "exit_code"), 0);
    resp_free(&r);

    /* It is fully usable. */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", q, "{\"argv\": [\"sh\", \"-c\", \"echo after restart\"]}", 200, &r);
    ASSERT_EQ_STR(jstr(&r, "stdout"), "after restart\n");
    ASSERT_EQ_INT(jint(&r, "exit_code"), 0);
    resp_free(&r);
    api(&s, "GET", "/metrics", NULL, 200, &r);
    ASSERT_CONTAINS(r.body, "skiff_sandboxes{state=\"running\"} 1\n");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"lost\"} 0\n");
    resp_free(&r);

    /* Terminated, nothing of it is left. */
    pid_t pids[256];
    size_t np = sandbox_pids(id, pids, 256);
    ASSERT_GT_INT(np, 0);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/terminate", id);
    api(&s, "POST", q, NULL, 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "terminated");
    ASSERT_EQ_STR(jstr(&r, "reason"), "terminated");
    resp_free(&r);
    for (size_t i = 0; i < np; i++)
        ASSERT_TRUE(process_gone(pids[i]));
    assert_no_cgroup(id);
    assert_no_state(&s, id);
    ASSERT_EQ_INT(count_lines("/proc/self/mountinfo"), mounts0);
    skiffd_finish(&s);
}

/* kill -9 of skiffd, and the sandbox's pid 1 is killed while skiffd is
 * down: after the restart its record says "lost" (its running exec ended,
 * exit code unknown), and nothing of it is left behind. */
TEST_TIMEOUT(crash_and_restart_records_lost_and_leaves_nothing, 120)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int mounts0 = count_lines("/proc/self/mountinfo");
    struct skiffd s;
    start(&s);
    char id[64], q[256];
    create(&s, "{\"name\": \"doomed\"}", id, sizeof(id));
    struct resp r;
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs", id);
    api(&s, "POST", q, "{\"argv\": [\"sleep\", \"60\"]}", 201, &r);
    char eid[64];
    snprintf(eid, sizeof(eid), "%s", jstr(&r, "id"));
    resp_free(&r);
    pid_t init = sandbox_init_pid(id);
    ASSERT_GT_INT(init, 0);
    crash(&s);
    ASSERT_EQ_INT(kill(init, SIGKILL), 0);
    ASSERT_TRUE(process_gone(init));
    skiffd_start(&s);

    snprintf(q, sizeof(q), "/v1/sandboxes/%s", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "terminated");
    ASSERT_EQ_STR(jstr(&r, "reason"), "lost");
    ASSERT_CONTAINS(jstr(&r, "reason_detail"), "server restarted");
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s", id, eid);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "state"), "exited");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "exit_code")));
    resp_free(&r);
    api(&s, "GET", "/metrics", NULL, 200, &r);
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"lost\"} 1\n");
    ASSERT_CONTAINS(r.body, "skiff_sandboxes{state=\"running\"} 0\n");
    resp_free(&r);
    /* its cgroup (and with it every process) and its state are gone */
    pid_t pids[16];
    ASSERT_EQ_INT(sandbox_pids(id, pids, 16), 0);
    assert_no_cgroup(id);
    assert_no_state(&s, id);
    ASSERT_EQ_INT(count_lines("/proc/self/mountinfo"), mounts0);
    skiffd_finish(&s);
}

/* files/watch: a stream of create/modify/delete/move events (one JSON
 * object per line) that ends with the sandbox. */
TEST(file_watch_streams_changes)
{
    struct skiffd s;
    start(&s);
    char id[64], q[256];
    struct resp r;
    create(&s, "{}", id, sizeof(id));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/mkdir", id);
    api(&s, "POST", q, "{\"path\": \"/work\"}", 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/watch?path=/work&recursive=1", id);
    int fd = connect_to(&s, NULL);
    send_request(fd, "GET", q, s.token, NULL, 0, false);
    usleep(200000); /* the watch is in place once the stream has started */
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/run", id);
    api(&s, "POST", q,
        "{\"argv\": [\"sh\", \"-c\", \"echo a > /work/f; mkdir /work/d; echo b > /work/d/g; mv /work/f /work/h; "
        "rm /work/h\"]}",
        200, &r);
    resp_free(&r);
    usleep(300000);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/terminate", id);
    api(&s, "POST", q, NULL, 200, &r);
    resp_free(&r);
    ASSERT_EQ_INT(read_response(fd, &r, 10), 0); /* the stream ends with the sandbox */
    close(fd);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_CONTAINS(r.body, "{\"kind\":\"create\",\"type\":\"file\",\"path\":\"f\"}");
    ASSERT_CONTAINS(r.body, "{\"kind\":\"create\",\"type\":\"directory\",\"path\":\"d\"}");
    ASSERT_CONTAINS(r.body, "\"path\":\"d/g\""); /* a directory created after the watch began */
    ASSERT_CONTAINS(r.body, "{\"kind\":\"move_to\",\"type\":\"file\",\"path\":\"h\"");
    ASSERT_CONTAINS(r.body, "{\"kind\":\"delete\",\"type\":\"unknown\",\"path\":\"h\"}");
    resp_free(&r);
    /* watching needs a directory inside the sandbox, and a running sandbox */
    create(&s, "{}", id, sizeof(id));
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/files/watch?path=/nonexistent", id);
    api(&s, "GET", q, NULL, 404, &r);
    resp_free(&r);
    skiffd_finish(&s);
}

/* An entrypoint can be given a stdin, written through its exec. */
TEST(entrypoint_stdin)
{
    struct skiffd s;
    start(&s);
    struct resp r;
    api(&s, "POST", "/v1/sandboxes", "{\"entrypoint\": [\"sh\", \"-c\", \"read x; exit $x\"], \"stdin\": true}", 201,
        &r);
    char id[64], ex[64], q[256];
    snprintf(id, sizeof(id), "%s", jstr(&r, "id"));
    snprintf(ex, sizeof(ex), "%s", jstr(&r, "entrypoint_exec"));
    ASSERT_TRUE(strncmp(ex, "ex-", 3) == 0);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/execs/%s/stdin?eof=1", id, ex);
    api(&s, "POST", q, "9\n", 200, &r);
    resp_free(&r);
    snprintf(q, sizeof(q), "/v1/sandboxes/%s/wait?timeout=10", id);
    api(&s, "GET", q, NULL, 200, &r);
    ASSERT_EQ_STR(jstr(&r, "reason"), "exited");
    ASSERT_EQ_INT(jint(&r, "exit_code"), 9);
    resp_free(&r);
    api(&s, "POST", "/v1/sandboxes", "{\"stdin\": true}", 400, &r);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    skiffd_finish(&s);
}
