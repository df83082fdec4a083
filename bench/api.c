/* api.c - what a client of skiffd waits for, measured through the HTTP API.
 *
 * Starts the real skiffd (BUILD/skiffd next to BUILD/bench/api) on a free
 * loopback port with a temporary data directory under /var/tmp, talks to it
 * over ONE keep-alive HTTP/1.1 connection with the bench's minimal client
 * (bench/common/client.c: plain socket, TCP_NODELAY, Content-Length and
 * chunked bodies, JSON by jansson), and measures, sequentially:
 *
 *  1. Time to first output, over N sandboxes each (interleaved, so load
 *     drift hits both alike; each sandbox is terminated after, untimed):
 *       exec_stream  POST /v1/sandboxes, POST .../execs {"argv":["echo","ok"]},
 *                    GET .../execs/{e}/output: from before the create to the
 *                    moment the first byte of "ok" is read off the stream;
 *       run          POST /v1/sandboxes, POST .../run {"argv":["echo","ok"]}:
 *                    from before the create to the complete answer.
 *  2. Exec round trip in one running sandbox, E times each (interleaved):
 *       run          POST .../run {"argv":["true"]} to the complete answer;
 *       exec_stream  POST .../execs {"argv":["true"]} + GET .../output read
 *                    to its end (the exec has exited).
 *  3. Bulk upload, R repetitions each (median reported; small files first,
 *     then big, tar and per file alternating within each size), into
 *     a fresh directory of one sandbox, removed after each repetition:
 *       tar_small    PUT .../files/tar?path=DIR, 1,000 files of 1 KiB;
 *       tar_big      PUT .../files/tar?path=DIR, one file of B MB;
 *       put_small    PUT .../files?path=DIR/f (one request per file), 200 x 1 KiB;
 *       put_big      PUT .../files?path=DIR/f, one file of B MB.
 *     The tars are built in memory by libarchive (pax restricted = ustar). The tar
 *     endpoint is probed first with an empty body: 404 or 405 means this
 *     skiffd has no tar upload, and both tar cases are "unavailable".
 *
 * Usage: api [-n N] [-e E] [-r R] [-b MB] [-s SKIFFD] [-q] [--json]
 *   -n N      sandboxes per first-output variant (200)
 *   -e E      round trips per exec variant (500)
 *   -r R      repetitions per upload case (5)
 *   -b MB     size of the single big file, in 10^6 bytes (100)
 *   -s PATH   the skiffd to start (default: ../skiffd from this program)
 *   -q        no progress lines on stderr
 *   --json    print one JSON object on stdout instead of the table
 *
 * Times are CLOCK_MONOTONIC, in ms; percentiles interpolate linearly between
 * closest ranks (as spawnbench and numpy). MB is 10^6 bytes. Exit status 0
 * when every measurement ran (an unavailable tar endpoint included), 1 when
 * skiffd could not be started or a request failed (the reason on stderr),
 * 2 for a bad command line. skiffd is stopped (SIGTERM, by pid) and the
 * temporary directory removed on every path, SIGINT/SIGTERM included; if
 * this program is killed outright, skiffd gets SIGTERM (PR_SET_PDEATHSIG). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "common/client.h"
#include "common/skiffd.h"

#define SMALL_FILES 1000
#define PUT_FILES 200
#define SMALL_SIZE 1024
#define MB 1e6

/* ---- sandboxes ------------------------------------------------------------------- */

/* exec_start - POST .../execs; the exec id into eid. */
static int exec_start(struct bench_conn *c, const char *id, const char *body, char eid[BENCH_ID_MAX])
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs", id);
    struct bench_resp r;
    if (bench_call_json(c, "POST", path, body, 201, &r) < 0)
        return -1;
    snprintf(eid, BENCH_ID_MAX, "%s", bench_jstr(&r, "id"));
    bench_resp_free(&r);
    return eid[0] ? 0 : bench_fail("POST %s: no exec id", path);
}

/* exec_output - GET .../output, followed to the exec's end. */
static int exec_output(struct bench_conn *c, const char *id, const char *eid, struct bench_resp *r)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/execs/%s/output", id, eid);
    return bench_call(c, "GET", path, NULL, NULL, 0, 200, r);
}

/* run - POST .../run; checks exit code 0 and the expected stdout. */
static int run(struct bench_conn *c, const char *id, const char *body, const char *want_stdout)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", id);
    struct bench_resp r;
    if (bench_call_json(c, "POST", path, body, 200, &r) < 0)
        return -1;
    json_t *code = json_object_get(r.json, "exit_code");
    int rc = 0;
    if (!json_is_integer(code) || json_integer_value(code) != 0 || strcmp(bench_jstr(&r, "stdout"), want_stdout) != 0)
        rc = bench_fail("POST %s: unexpected answer %.300s", path, r.body ? r.body : "");
    bench_resp_free(&r);
    return rc;
}

/* ---- 1: create -> first output ------------------------------------------------------ */

/* one_stream - create, start echo ok, read its output: ms to the first byte. */
static int one_stream(struct bench_conn *c, double *total, double *t_create, double *t_first)
{
    char id[BENCH_ID_MAX], eid[BENCH_ID_MAX];
    struct bench_resp r;
    double t0 = bench_now_ms();
    if (bench_sandbox_create(c, NULL, id) < 0)
        return -1;
    double t1 = bench_now_ms();
    if (exec_start(c, id, "{\"argv\":[\"echo\",\"ok\"]}", eid) < 0 || exec_output(c, id, eid, &r) < 0)
        return -1;
    double t2 = r.first_byte_ms; /* taken as the first body byte is read */
    bool ok = r.len == 3 && memcmp(r.body, "ok\n", 3) == 0;
    if (!ok)
        bench_fail("exec of echo ok streamed %zu bytes: '%.40s'", r.len, r.body ? r.body : "");
    bench_resp_free(&r);
    if (!ok)
        return -1;
    *total = t2 - t0;
    *t_create = t1 - t0;
    *t_first = t2 - t1;
    return bench_sandbox_terminate(c, id);
}

static int one_run(struct bench_conn *c, double *total, double *t_create, double *t_run)
{
    char id[BENCH_ID_MAX];
    double t0 = bench_now_ms();
    if (bench_sandbox_create(c, NULL, id) < 0)
        return -1;
    double t1 = bench_now_ms();
    if (run(c, id, "{\"argv\":[\"echo\",\"ok\"]}", "ok\n") < 0)
        return -1;
    double t2 = bench_now_ms();
    *total = t2 - t0;
    *t_create = t1 - t0;
    *t_run = t2 - t1;
    return bench_sandbox_terminate(c, id);
}

static int bench_first_output(struct bench_conn *c, size_t n, json_t *out, struct bench_stats *s_stream,
                              struct bench_stats *s_run)
{
    double *stream = xcalloc(n, sizeof(double)), *s_create = xcalloc(n, sizeof(double));
    double *s_first = xcalloc(n, sizeof(double));
    double *runv = xcalloc(n, sizeof(double)), *r_create = xcalloc(n, sizeof(double));
    double *r_run = xcalloc(n, sizeof(double));
    double dummy[3];
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) /* warm-ups */
        if (one_stream(c, &dummy[0], &dummy[1], &dummy[2]) < 0 || one_run(c, &dummy[0], &dummy[1], &dummy[2]) < 0)
            rc = -1;
    double started = bench_now_ms();
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* alternate which goes first, so neither always follows the other's teardown */
        for (int k = 0; k < 2 && rc == 0; k++) {
            if ((i + (size_t)k) % 2 == 0)
                rc = one_stream(c, &stream[i], &s_create[i], &s_first[i]);
            else
                rc = one_run(c, &runv[i], &r_create[i], &r_run[i]);
        }
        if (rc == 0 && (i + 1) % 50 == 0)
            bench_progress("first output: %zu/%zu sandboxes per variant (%.1f s)", i + 1, n,
                           (bench_now_ms() - started) / 1000);
    }
    if (rc == 0) {
        *s_stream = bench_stats_of(stream, n);
        *s_run = bench_stats_of(runv, n);
        json_t *js = bench_stats_json(s_stream), *jr = bench_stats_json(s_run);
        struct bench_stats a = bench_stats_of(s_create, n), b = bench_stats_of(s_first, n);
        json_object_set_new(js, "create_p50", bench_ms_json(a.p50));
        json_object_set_new(js, "exec_to_first_byte_p50", bench_ms_json(b.p50));
        json_object_set_new(
            js, "measure",
            json_string("POST /v1/sandboxes, POST .../execs {argv:[echo,ok]}, GET .../execs/{e}/output: "
                        "from before the create to the first output byte read"));
        a = bench_stats_of(r_create, n);
        b = bench_stats_of(r_run, n);
        json_object_set_new(jr, "create_p50", bench_ms_json(a.p50));
        json_object_set_new(jr, "run_p50", bench_ms_json(b.p50));
        json_object_set_new(jr, "measure",
                            json_string("POST /v1/sandboxes, POST .../run {argv:[echo,ok]}: "
                                        "from before the create to the complete answer"));
        json_t *o = json_object();
        json_object_set_new(o, "exec_stream", js);
        json_object_set_new(o, "run", jr);
        json_object_set_new(out, "first_output", o);
    }
    free(stream);
    free(s_create);
    free(s_first);
    free(runv);
    free(r_create);
    free(r_run);
    return rc;
}

/* ---- 2: exec round trip ------------------------------------------------------------ */

static int rt_run(struct bench_conn *c, const char *id, double *ms)
{
    double t0 = bench_now_ms();
    if (run(c, id, "{\"argv\":[\"true\"]}", "") < 0)
        return -1;
    *ms = bench_now_ms() - t0;
    return 0;
}

static int rt_stream(struct bench_conn *c, const char *id, double *ms)
{
    char eid[BENCH_ID_MAX];
    struct bench_resp r;
    double t0 = bench_now_ms();
    if (exec_start(c, id, "{\"argv\":[\"true\"]}", eid) < 0 || exec_output(c, id, eid, &r) < 0)
        return -1;
    *ms = bench_now_ms() - t0;
    size_t len = r.len;
    bench_resp_free(&r);
    return len == 0 ? 0 : bench_fail("exec of true streamed %zu bytes", len);
}

static int bench_round_trip(struct bench_conn *c, size_t n, json_t *out, struct bench_stats *s_run,
                            struct bench_stats *s_stream)
{
    char id[BENCH_ID_MAX];
    if (bench_sandbox_create(c, NULL, id) < 0)
        return -1;
    double *runv = xcalloc(n, sizeof(double)), *stream = xcalloc(n, sizeof(double));
    double dummy;
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++) /* warm-ups */
        if (rt_run(c, id, &dummy) < 0 || rt_stream(c, id, &dummy) < 0)
            rc = -1;
    for (size_t i = 0; i < n && rc == 0; i++)
        for (int k = 0; k < 2 && rc == 0; k++)
            rc = (i + (size_t)k) % 2 == 0 ? rt_run(c, id, &runv[i]) : rt_stream(c, id, &stream[i]);
    if (rc == 0) {
        *s_run = bench_stats_of(runv, n);
        *s_stream = bench_stats_of(stream, n);
        json_t *o = json_object(), *jr = bench_stats_json(s_run), *js = bench_stats_json(s_stream);
        json_object_set_new(jr, "measure", json_string("POST .../run {argv:[true]} to the complete answer"));
        json_object_set_new(js, "measure",
                            json_string("POST .../execs {argv:[true]} + GET .../output read to its end"));
        json_object_set_new(o, "run", jr);
        json_object_set_new(o, "exec_stream", js);
        json_object_set_new(out, "exec_round_trip", o);
    }
    free(runv);
    free(stream);
    if (rc == 0)
        rc = bench_sandbox_terminate(c, id);
    return rc;
}

/* ---- 3: bulk upload --------------------------------------------------------------- */

enum { UP_TAR_SMALL, UP_TAR_BIG, UP_PUT_SMALL, UP_PUT_BIG, UP_N };
static const char *const up_names[UP_N] = {"tar_small", "tar_big", "put_small", "put_big"};

struct upload {
    const char *reason[UP_N]; /* unavailable when set */
    char *tar[2];             /* the two tars, in memory */
    size_t tar_len[2];
    char *big; /* the big file's content */
    size_t big_len;
    double *secs[UP_N];
    size_t files[UP_N], bytes[UP_N], request_bytes[UP_N];
};

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static void fill_random(char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        memcpy(p + i, &g_rng, 8);
    }
    for (; i < n; i++)
        p[i] = (char)(i * 31);
}

struct membuf {
    char *p;
    size_t len, cap;
};

static la_ssize_t membuf_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
    (void)a;
    struct membuf *m = ctx;
    if (m->len + n > m->cap) {
        m->cap = m->cap ? m->cap : 1 << 20;
        while (m->len + n > m->cap)
            m->cap *= 2;
        m->p = xrealloc(m->p, m->cap);
    }
    memcpy(m->p + m->len, buf, n);
    m->len += n;
    return (la_ssize_t)n;
}

/* make_tar - a tar (POSIX ustar/pax) built in memory by libarchive: the
 * directory `dir`/ and `n` regular files dir/NAME (names[i] or fNNNN) of
 * `each` bytes taken one after the other from `data`. Returns NULL with
 * the reason in bench_error(). */
static char *make_tar(const char *dir, size_t n, const char *name, const char *data, size_t each, size_t *len)
{
    struct membuf m = {0};
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    char path[256];
    bool ok = a != NULL && e != NULL && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
              archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
              archive_write_open(a, &m, NULL, membuf_write, NULL) == ARCHIVE_OK;
    time_t now = time(NULL);
    if (ok) {
        snprintf(path, sizeof(path), "%s/", dir);
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        archive_entry_set_mtime(e, now, 0);
        ok = archive_write_header(a, e) == ARCHIVE_OK;
    }
    for (size_t i = 0; ok && i < n; i++) {
        archive_entry_clear(e);
        if (name != NULL)
            snprintf(path, sizeof(path), "%s/%s", dir, name);
        else
            snprintf(path, sizeof(path), "%s/f%04zu", dir, i);
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)each);
        archive_entry_set_mtime(e, now, 0);
        ok = archive_write_header(a, e) == ARCHIVE_OK &&
             archive_write_data(a, data + i * each, each) == (la_ssize_t)each;
    }
    if (ok)
        ok = archive_write_close(a) == ARCHIVE_OK;
    if (!ok)
        bench_fail("libarchive: %s", a ? archive_error_string(a) : "out of memory");
    if (e != NULL)
        archive_entry_free(e);
    if (a != NULL)
        archive_write_free(a);
    if (!ok) {
        free(m.p);
        return NULL;
    }
    *len = m.len;
    return m.p;
}

/* upload_prepare - the payloads, in memory: the big file's content (its
 * first 200 KiB also serve as the 200 small files sent one by one), and
 * the two tars. */
static int upload_prepare(struct upload *u, size_t big_bytes)
{
    u->big_len = big_bytes;
    u->big = xmalloc(big_bytes);
    fill_random(u->big, big_bytes);
    _cleanup_free_ char *small = xmalloc((size_t)SMALL_FILES * SMALL_SIZE);
    fill_random(small, (size_t)SMALL_FILES * SMALL_SIZE);
    u->tar[0] = make_tar("small", SMALL_FILES, NULL, small, SMALL_SIZE, &u->tar_len[0]);
    if (u->tar[0] != NULL)
        u->tar[1] = make_tar("big", 1, "blob", u->big, big_bytes, &u->tar_len[1]);
    if (u->tar[1] == NULL)
        u->reason[UP_TAR_SMALL] = u->reason[UP_TAR_BIG] = xasprintf("cannot build the tar: %s", bench_error());
    u->files[UP_TAR_SMALL] = SMALL_FILES;
    u->bytes[UP_TAR_SMALL] = (size_t)SMALL_FILES * SMALL_SIZE;
    u->request_bytes[UP_TAR_SMALL] = u->tar_len[0];
    u->files[UP_TAR_BIG] = 1;
    u->bytes[UP_TAR_BIG] = big_bytes;
    u->request_bytes[UP_TAR_BIG] = u->tar_len[1];
    u->files[UP_PUT_SMALL] = PUT_FILES;
    u->bytes[UP_PUT_SMALL] = u->request_bytes[UP_PUT_SMALL] = (size_t)PUT_FILES * SMALL_SIZE;
    u->files[UP_PUT_BIG] = 1;
    u->bytes[UP_PUT_BIG] = u->request_bytes[UP_PUT_BIG] = big_bytes;
    return 0;
}

static int sb_mkdir(struct bench_conn *c, const char *id, const char *dir)
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/mkdir", id);
    snprintf(body, sizeof(body), "{\"path\":\"%s\"}", dir);
    struct bench_resp r;
    if (bench_call_json(c, "POST", path, body, 200, &r) < 0)
        return -1;
    bench_resp_free(&r);
    return 0;
}

static int sb_remove(struct bench_conn *c, const char *id, const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=%s&recursive=1", id, dir);
    struct bench_resp r;
    if (bench_call(c, "DELETE", path, NULL, NULL, 0, 200, &r) < 0)
        return -1;
    bench_resp_free(&r);
    return 0;
}

/* sb_stat_size - the size of a file in the sandbox, or -1. */
static long long sb_stat_size(struct bench_conn *c, const char *id, const char *file)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/stat?path=%s", id, file);
    struct bench_resp r;
    if (bench_call(c, "GET", path, NULL, NULL, 0, 200, &r) < 0)
        return -1;
    json_t *size = json_object_get(r.json, "size");
    long long v = json_is_integer(size) ? (long long)json_integer_value(size) : -1;
    bench_resp_free(&r);
    return v;
}

/* probe_tar - does PUT .../files/tar exist? 0 yes; 1 no (reason set); -1 error. */
static int probe_tar(struct bench_conn *c, const char *id, const char *dir, struct upload *u)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=%s", id, dir);
    struct bench_resp r;
    if (bench_http(c, "PUT", path, "application/x-tar", NULL, 0, &r) < 0)
        return -1;
    int status = r.status;
    if (status == 404 || status == 405) {
        json_t *e = r.json ? json_object_get(r.json, "error") : NULL;
        const char *code = e ? json_string_value(json_object_get(e, "code")) : NULL;
        u->reason[UP_TAR_SMALL] = u->reason[UP_TAR_BIG] = xasprintf(
            "PUT /v1/sandboxes/{id}/files/tar answered %d %s: this skiffd has no tar upload", status, code ? code : "");
        bench_resp_free(&r);
        return 1;
    }
    bench_resp_free(&r);
    return 0; /* an empty archive may be refused (400): the route is there */
}

/* upload_once - one repetition of one case into a fresh directory `dir`
 * (created before, removed after, untimed). */
static int upload_once(struct bench_conn *c, const char *id, struct upload *u, int k, const char *dir, double *secs,
                       bool verify)
{
    char path[PATH_MAX], file[PATH_MAX];
    struct bench_resp r;
    if (sb_mkdir(c, id, dir) < 0)
        return -1;
    double t0 = bench_now_ms();
    switch (k) {
    case UP_TAR_SMALL:
    case UP_TAR_BIG:
        snprintf(path, sizeof(path), "/v1/sandboxes/%s/files/tar?path=%s", id, dir);
        if (bench_call(c, "PUT", path, "application/x-tar", u->tar[k == UP_TAR_BIG], u->tar_len[k == UP_TAR_BIG], 0,
                       &r) < 0)
            return -1;
        bench_resp_free(&r);
        break;
    case UP_PUT_SMALL:
        for (int i = 0; i < PUT_FILES; i++) {
            snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=%s/f%04d", id, dir, i);
            if (bench_call(c, "PUT", path, "application/octet-stream", u->big + (size_t)i * SMALL_SIZE, SMALL_SIZE, 201,
                           &r) < 0)
                return -1;
            bench_resp_free(&r);
        }
        break;
    case UP_PUT_BIG:
        snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=%s/blob", id, dir);
        if (bench_call(c, "PUT", path, "application/octet-stream", u->big, u->big_len, 201, &r) < 0)
            return -1;
        bench_resp_free(&r);
        break;
    default: return bench_fail("no upload case %d", k);
    }
    *secs = (bench_now_ms() - t0) / 1000.0;
    if (verify) {
        /* the last file of the case must be there, with its size */
        const char *const last[UP_N] = {"small/f0999", "big/blob", "f0199", "blob"};
        snprintf(file, sizeof(file), "%s/%s", dir, last[k]);
        long long size = sb_stat_size(c, id, file);
        long long want = k == UP_TAR_BIG || k == UP_PUT_BIG ? (long long)u->big_len : SMALL_SIZE;
        if (size != want)
            return bench_fail("after %s, '%s' has size %lld, want %lld", up_names[k], file, size, want);
    }
    return sb_remove(c, id, dir);
}

static int bench_upload(struct bench_conn *c, size_t reps, size_t big_bytes, json_t *out, struct upload *u)
{
    if (upload_prepare(u, big_bytes) < 0)
        return -1;
    char id[BENCH_ID_MAX], dir[128];
    if (bench_sandbox_create(c, NULL, id) < 0 || sb_mkdir(c, id, "/tmp/bench") < 0)
        return -1;
    if (u->reason[UP_TAR_SMALL] == NULL) {
        int p = probe_tar(c, id, "/tmp/bench", u);
        if (p < 0)
            return -1;
        if (p == 0 && sb_remove(c, id, "/tmp/bench") < 0)
            return -1;
    }
    for (int k = 0; k < UP_N; k++)
        u->secs[k] = xcalloc(reps, sizeof(double));
    double dummy;
    /* The small files first, then the big ones: writing back the big files
     * (the sandbox's root is on disk) would otherwise slow the small-file
     * cases that follow them several-fold. Within each size, tar and per
     * file alternate. One warm-up round each, not recorded. */
    const int order[2][2] = {{UP_TAR_SMALL, UP_PUT_SMALL}, {UP_TAR_BIG, UP_PUT_BIG}};
    for (int size = 0; size < 2; size++) {
        for (size_t rep = 0; rep <= reps; rep++) {
            for (int j = 0; j < 2; j++) {
                int k = order[size][(rep + (size_t)j) % 2];
                if (u->reason[k] != NULL)
                    continue;
                snprintf(dir, sizeof(dir), "/tmp/bench/%s-%zu", up_names[k], rep);
                if (upload_once(c, id, u, k, dir, rep == 0 ? &dummy : &u->secs[k][rep - 1], rep <= 1) < 0)
                    return -1;
            }
        }
        bench_progress("upload: %s files done", size == 0 ? "small" : "big");
    }
    json_t *o = json_object();
    for (int k = 0; k < UP_N; k++) {
        json_t *e = json_object();
        bool tar = k == UP_TAR_SMALL || k == UP_TAR_BIG;
        json_object_set_new(e, "method",
                            json_string(tar ? "PUT /v1/sandboxes/{id}/files/tar?path=DIR (one request)"
                                            : "PUT /v1/sandboxes/{id}/files?path=FILE (one request per file)"));
        json_object_set_new(e, "files", json_integer((json_int_t)u->files[k]));
        json_object_set_new(e, "file_bytes", json_integer((json_int_t)u->bytes[k]));
        if (u->reason[k] != NULL) {
            json_object_set_new(e, "status", json_string("unavailable"));
            json_object_set_new(e, "reason", json_string(u->reason[k]));
        } else {
            json_t *samples = json_array();
            for (size_t i = 0; i < reps; i++)
                json_array_append_new(samples, json_real(round(u->secs[k][i] * 1e6) / 1e6));
            struct bench_stats s = bench_stats_of(u->secs[k], reps);
            json_object_set_new(e, "status", json_string("ok"));
            json_object_set_new(e, "request_bytes", json_integer((json_int_t)u->request_bytes[k]));
            json_object_set_new(e, "reps", json_integer((json_int_t)reps));
            json_object_set_new(e, "median_s", json_real(round(s.p50 * 1e6) / 1e6));
            json_object_set_new(e, "min_s", json_real(round(s.min * 1e6) / 1e6));
            json_object_set_new(e, "max_s", json_real(round(s.max * 1e6) / 1e6));
            json_object_set_new(e, "mb_per_s", json_real(round((double)u->bytes[k] / MB / s.p50 * 10) / 10));
            json_object_set_new(e, "files_per_s", json_real(round((double)u->files[k] / s.p50 * 10) / 10));
            json_object_set_new(e, "samples_s", samples);
        }
        json_object_set_new(o, up_names[k], e);
    }
    json_object_set_new(out, "upload", o);
    return bench_sandbox_terminate(c, id);
}

/* ---- output ---------------------------------------------------------------------- */

static double jget(json_t *root, const char *a, const char *b, const char *key)
{
    json_t *v = json_object_get(json_object_get(json_object_get(root, a), b), key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void print_table(json_t *o)
{
    printf("skiffd API, sequential requests over one keep-alive connection, ms\n");
    printf("%-44s %5s %8s %8s %8s %8s\n", "case", "n", "p50", "p95", "p99", "max");
    const char *const rows[][3] = {
        {"first_output", "exec_stream", "create -> first byte (execs + output)"},
        {"first_output", "run", "create -> run answer (one-shot run)"},
        {"exec_round_trip", "run", "exec round trip: run true"},
        {"exec_round_trip", "exec_stream", "exec round trip: execs + output true"},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(rows); i++)
        printf("%-44s %5.0f %8.3f %8.3f %8.3f %8.3f\n", rows[i][2], jget(o, rows[i][0], rows[i][1], "n"),
               jget(o, rows[i][0], rows[i][1], "p50"), jget(o, rows[i][0], rows[i][1], "p95"),
               jget(o, rows[i][0], rows[i][1], "p99"), jget(o, rows[i][0], rows[i][1], "max"));
    printf("  (first byte: create p50 %.3f + exec start to first byte p50 %.3f; run: create p50 %.3f + run p50 "
           "%.3f)\n",
           jget(o, "first_output", "exec_stream", "create_p50"),
           jget(o, "first_output", "exec_stream", "exec_to_first_byte_p50"),
           jget(o, "first_output", "run", "create_p50"), jget(o, "first_output", "run", "run_p50"));
    printf("\nbulk upload into one sandbox, median of %.0f\n", jget(o, "upload", "put_big", "reps"));
    printf("%-44s %10s %10s %10s\n", "case", "median s", "MB/s", "files/s");
    const char *const labels[UP_N] = {"PUT files/tar: 1,000 x 1 KiB", "PUT files/tar: 1 x big file",
                                      "PUT files, per file: 200 x 1 KiB", "PUT files: 1 x big file"};
    for (int k = 0; k < UP_N; k++) {
        json_t *e = json_object_get(json_object_get(o, "upload"), up_names[k]);
        const char *status = json_string_value(json_object_get(e, "status"));
        if (status && strcmp(status, "ok") == 0)
            printf("%-44s %10.4f %10.1f %10.1f\n", labels[k], jget(o, "upload", up_names[k], "median_s"),
                   jget(o, "upload", up_names[k], "mb_per_s"), jget(o, "upload", up_names[k], "files_per_s"));
        else
            printf("%-44s unavailable: %s\n", labels[k], json_string_value(json_object_get(e, "reason")));
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: api [-n SANDBOXES] [-e EXECS] [-r REPS] [-b MB] [-s SKIFFD] [-q] [--json]\n");
    exit(2);
}

static long arg_long(const char *s, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    size_t n = 200, execs = 500, reps = 5, big_mb = 100;
    const char *skiffd = NULL;
    bool as_json = false, quiet = false;
    const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:e:r:b:s:q", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = (size_t)arg_long(optarg, 1, 100000); break;
        case 'e': execs = (size_t)arg_long(optarg, 1, 1000000); break;
        case 'r': reps = (size_t)arg_long(optarg, 1, 100); break;
        case 'b': big_mb = (size_t)arg_long(optarg, 1, 900); break;
        case 's': skiffd = optarg; break;
        case 'q': quiet = true; break;
        case 'j': as_json = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    char def[PATH_MAX];
    if (skiffd == NULL && (skiffd = bench_skiffd_default(def, sizeof(def))) == NULL) {
        fprintf(stderr, "api: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    if (access(skiffd, X_OK) < 0) {
        fprintf(stderr, "api: %s: %s\n", skiffd, strerror(errno));
        return 1;
    }
    bench_progress_init("api", quiet);
    bench_catch_signals();

    double started = bench_now_ms();
    struct bench_skiffd d;
    struct upload u = {0};
    struct bench_conn c;
    json_t *out = json_object();
    struct bench_stats s1, s2, s3, s4;
    int rc = bench_skiffd_start(&d, skiffd, "api", NULL);
    bench_conn_init(&c, d.port, d.token);
    if (rc == 0) {
        struct bench_resp r;
        if ((rc = bench_call_json(&c, "GET", "/v1/version", NULL, 200, &r)) == 0) {
            json_object_set_new(out, "schema", json_integer(1));
            json_object_set_new(out, "unit", json_string("ms"));
            json_object_set_new(out, "skiffd_version", json_string(bench_jstr(&r, "version")));
            json_object_set_new(out, "transport", json_string("HTTP/1.1 keep-alive over TCP loopback, sequential"));
            bench_resp_free(&r);
        }
    }
    if (rc == 0) {
        bench_progress("skiffd pid %d on 127.0.0.1:%d, data in %s", (int)d.pid, d.port, d.data);
        rc = bench_first_output(&c, n, out, &s1, &s2);
    }
    if (rc == 0) {
        bench_progress("first output: p50 %.2f ms (exec+stream), %.2f ms (run)", s1.p50, s2.p50);
        rc = bench_round_trip(&c, execs, out, &s3, &s4);
    }
    if (rc == 0) {
        bench_progress("exec round trip: p50 %.2f ms (run), %.2f ms (exec+stream)", s3.p50, s4.p50);
        rc = bench_upload(&c, reps, big_mb * (size_t)MB, out, &u);
    }
    bench_conn_release(&c);
    if (rc < 0)
        fprintf(stderr, "api: %s\n", bench_error());
    if (bench_skiffd_stop(&d) < 0 && rc == 0)
        rc = -1;
    for (int k = 0; k < UP_N; k++)
        free(u.secs[k]);
    free(u.tar[0]);
    free(u.tar[1]);
    free(u.big);
    free((char *)u.reason[UP_TAR_SMALL]);
    if (rc < 0) {
        json_decref(out);
        return 1;
    }
    json_t *cfg = json_object();
    json_object_set_new(cfg, "sandboxes", json_integer((json_int_t)n));
    json_object_set_new(cfg, "execs", json_integer((json_int_t)execs));
    json_object_set_new(cfg, "upload_reps", json_integer((json_int_t)reps));
    json_object_set_new(cfg, "big_file_mb", json_integer((json_int_t)big_mb));
    json_object_set_new(out, "config", cfg);
    json_object_set_new(out, "elapsed_s", json_real(round((bench_now_ms() - started) / 100) / 10));
    if (as_json) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        fputc('\n', stdout);
    } else {
        print_table(out);
        printf("(%.1f s in all)\n", (bench_now_ms() - started) / 1000);
    }
    json_decref(out);
    return 0;
}
