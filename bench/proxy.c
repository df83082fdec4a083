/* proxy.c - what an exposed port costs: HTTP requests to a server in a
 * sandbox through skiffd's port proxy, next to the same requests sent to
 * the same server directly.
 *
 * Starts the real skiffd (BUILD/skiffd) with a temporary data directory,
 * creates one sandbox, runs tests/helpers/port_server.py in it (Python's
 * ThreadingHTTPServer, HTTP/1.1 keep-alive) on port 8000 and exposes the
 * port. Then, with the bench's minimal keep-alive HTTP client
 * (bench/common/client.c):
 *
 *   proxied  GET http://127.0.0.1:<skiffd>/p/<sandbox>/8000/... with the
 *            API token (one keep-alive connection to skiffd; skiffd opens a
 *            connection inside the sandbox per request, as it always does);
 *   direct   GET http://127.0.0.1:8000/... from INSIDE the sandbox's
 *            network namespace (the thread setns()es into it: the server's
 *            own loopback, the shortest path there is), keep-alive.
 *
 *  1. latency: N sequential GET /bytes?n=100, direct and proxied
 *     interleaved one by one (load drift hits both alike): p50/p95/p99;
 *  2. throughput: C concurrent clients for T seconds each way: requests
 *     per second (the Python server is part of both figures);
 *  3. large body: R sequential GET /bytes?n=B MB each way (interleaved):
 *     MB/s of the median.
 *
 * Usage: proxy [-n N] [-c C] [-t T] [-r R] [-b MB] [-s SKIFFD] [-p SERVER.py] [-q] [--json]
 *
 * Times are CLOCK_MONOTONIC in ms; MB is 10^6 bytes. Exit status 0 when
 * every measurement ran, 1 otherwise (the reason on stderr), 2 for a bad
 * command line. skiffd is stopped and its directory removed on every path. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>

#include "base/util.h"
#include "common/client.h"
#include "common/skiffd.h"

#define PORT 8000
#define SMALL_PATH "/bytes?n=100"

static int self_ns = -1, box_ns = -1;
static char box_id[BENCH_ID_MAX];
static char marker[64];

static void usage(void)
{
    fprintf(stderr,
            "usage: proxy [-n N] [-c C] [-t SECONDS] [-r R] [-b MB] [-s SKIFFD] [-p SERVER.py] [-q] [--json]\n");
    exit(2);
}

static long arg_long(const char *s, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        usage();
    return v;
}

/* enter - this thread into the sandbox's namespace (true) or back (false). */
static int enter(bool box)
{
    if (setns(box ? box_ns : self_ns, CLONE_NEWNET) < 0)
        return bench_fail("setns: %s", strerror(errno));
    return 0;
}

/* find_server_ns - the network namespace of the server we started (its
 * command line carries `marker`). */
static int find_server_ns(void)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return bench_fail("/proc: %s", strerror(errno));
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d)) != NULL && found < 0) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
            buf[n] = '\0';
            if (strcmp(buf + i, marker) == 0) {
                snprintf(path, sizeof(path), "/proc/%s/ns/net", e->d_name);
                found = open(path, O_RDONLY | O_CLOEXEC);
                break;
            }
        }
    }
    closedir(d);
    if (found < 0)
        return bench_fail("the server's process (%s) was not found", marker);
    box_ns = found;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    char *text = NULL;
    struct sk_error err = {0};
    if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, len, &err) < 0) {
        bench_fail("%s", err.msg);
        return NULL;
    }
    return text;
}

/* setup - a sandbox running the server, port 8000 exposed and answering. */
static int setup(struct bench_conn *c, const char *server)
{
    struct bench_resp r;
    if (bench_call_json(c, "POST", "/v1/sandboxes", "{\"timeout\": 3600}", 201, &r) < 0)
        return -1;
    snprintf(box_id, sizeof(box_id), "%s", bench_jstr(&r, "id"));
    bench_resp_free(&r);
    size_t len = 0;
    _cleanup_free_ char *script = read_file(server, &len);
    if (script == NULL)
        return -1;
    char path[256], body[512];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/files?path=/tmp/port_server.py", box_id);
    if (bench_call(c, "PUT", path, "application/octet-stream", script, len, 201, &r) < 0)
        return -1;
    bench_resp_free(&r);
    snprintf(marker, sizeof(marker), "bench-proxy-%d", (int)getpid());
    snprintf(body, sizeof(body),
             "{\"argv\": [\"sh\", \"-c\", \"setsid python3 /tmp/port_server.py %d %s </dev/null >/dev/null 2>&1 &\"]}",
             PORT, marker);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/run", box_id);
    if (bench_call_json(c, "POST", path, body, 200, &r) < 0)
        return -1;
    bench_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/ports", box_id);
    snprintf(body, sizeof(body), "{\"port\": %d}", PORT);
    if (bench_call_json(c, "POST", path, body, 201, &r) < 0)
        return -1;
    bench_resp_free(&r);
    snprintf(path, sizeof(path), "/p/%s/%d%s", box_id, PORT, SMALL_PATH);
    for (int i = 0; i < 400 && !bench_stopping(); i++) {
        if (bench_http(c, "GET", path, NULL, NULL, 0, &r) < 0)
            return -1;
        int st = r.status;
        bench_resp_free(&r);
        if (st == 200)
            return find_server_ns();
        usleep(25000);
    }
    return bench_fail("the server in the sandbox did not answer through the proxy");
}

/* one - one GET; its time in ms, or -1. */
static double one(struct bench_conn *c, bool direct, const char *rest, size_t want_len)
{
    char path[256];
    if (direct)
        snprintf(path, sizeof(path), "%s", rest);
    else
        snprintf(path, sizeof(path), "/p/%s/%d%s", box_id, PORT, rest);
    if (direct && enter(true) < 0)
        return -1;
    double t0 = bench_now_ms();
    struct bench_resp r;
    int rc = bench_call(c, "GET", path, NULL, NULL, 0, 200, &r);
    double ms = bench_now_ms() - t0;
    if (direct && enter(false) < 0)
        rc = -1;
    if (rc == 0 && r.len != want_len)
        rc = bench_fail("GET %s: %zu bytes, expected %zu", path, r.len, want_len);
    if (rc == 0)
        bench_resp_free(&r);
    return rc < 0 ? -1 : ms;
}

static int latency(struct bench_conn *px, struct bench_conn *dx, size_t n, json_t *out, struct bench_stats *sd,
                   struct bench_stats *sp)
{
    double *d = xcalloc(n, sizeof(double)), *p = xcalloc(n, sizeof(double));
    int rc = 0;
    for (size_t i = 0; i < 20 && rc == 0; i++) /* warm-up */
        rc = one(dx, true, SMALL_PATH, 100) < 0 || one(px, false, SMALL_PATH, 100) < 0 ? -1 : 0;
    for (size_t i = 0; i < n && rc == 0 && !bench_stopping(); i++) {
        bool direct_first = i % 2 == 0;
        double a = one(direct_first ? dx : px, direct_first, SMALL_PATH, 100);
        double b = a < 0 ? -1 : one(direct_first ? px : dx, !direct_first, SMALL_PATH, 100);
        if (a < 0 || b < 0) {
            rc = -1;
            break;
        }
        d[i] = direct_first ? a : b;
        p[i] = direct_first ? b : a;
        if ((i + 1) % 500 == 0)
            bench_progress("latency: %zu of %zu pairs", i + 1, n);
    }
    if (rc == 0 && bench_stopping())
        rc = bench_fail("stopped");
    if (rc == 0) {
        *sd = bench_stats_of(d, n);
        *sp = bench_stats_of(p, n);
        json_t *l = json_object();
        json_object_set_new(l, "request", json_string("GET " SMALL_PATH " (100-byte body)"));
        json_object_set_new(l, "direct", bench_stats_json(sd));
        json_object_set_new(l, "proxied", bench_stats_json(sp));
        json_object_set_new(l, "overhead_p50_ms", bench_ms_json(sp->p50 - sd->p50));
        json_object_set_new(l, "overhead_p99_ms", bench_ms_json(sp->p99 - sd->p99));
        json_object_set_new(out, "latency", l);
    }
    free(d);
    free(p);
    return rc;
}

struct tp_worker {
    pthread_t th;
    bool direct;
    int port;
    const char *token;
    double until;
    long count;
    int rc;
    char error[512];
};

static void *tp_run(void *arg)
{
    struct tp_worker *w = arg;
    if (w->direct && setns(box_ns, CLONE_NEWNET) < 0) {
        snprintf(w->error, sizeof(w->error), "setns: %s", strerror(errno));
        w->rc = -1;
        return NULL;
    }
    struct bench_conn c;
    bench_conn_init(&c, w->port, w->token);
    char path[256];
    if (w->direct)
        snprintf(path, sizeof(path), "%s", SMALL_PATH);
    else
        snprintf(path, sizeof(path), "/p/%s/%d%s", box_id, PORT, SMALL_PATH);
    while (bench_now_ms() < w->until && !bench_stopping()) {
        struct bench_resp r;
        if (bench_call(&c, "GET", path, NULL, NULL, 0, 200, &r) < 0) {
            snprintf(w->error, sizeof(w->error), "%s", bench_error());
            w->rc = -1;
            break;
        }
        bench_resp_free(&r);
        w->count++;
    }
    bench_conn_release(&c);
    return NULL;
}

static int throughput_one(bool direct, const struct bench_skiffd *d, int clients, int seconds, double *rps)
{
    struct tp_worker *w = xcalloc((size_t)clients, sizeof(*w));
    double t0 = bench_now_ms();
    for (int i = 0; i < clients; i++) {
        w[i] = (struct tp_worker){.direct = direct,
                                  .port = direct ? PORT : d->port,
                                  .token = direct ? NULL : d->token,
                                  .until = t0 + seconds * 1000.0};
        if (pthread_create(&w[i].th, NULL, tp_run, &w[i]) != 0)
            abort();
    }
    long total = 0;
    int rc = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].th, NULL);
        total += w[i].count;
        if (w[i].rc < 0 && rc == 0)
            rc = bench_fail("%s", w[i].error);
    }
    double elapsed = (bench_now_ms() - t0) / 1000.0;
    *rps = (double)total / elapsed;
    free(w);
    return rc;
}

static int large(struct bench_conn *px, struct bench_conn *dx, size_t reps, size_t mb, json_t *out, double *mbs_d,
                 double *mbs_p)
{
    double *d = xcalloc(reps, sizeof(double)), *p = xcalloc(reps, sizeof(double));
    char rest[64];
    size_t bytes = mb * 1000000;
    snprintf(rest, sizeof(rest), "/bytes?n=%zu", bytes);
    int rc = 0;
    for (size_t i = 0; i < reps && rc == 0 && !bench_stopping(); i++) {
        d[i] = one(dx, true, rest, bytes);
        p[i] = d[i] < 0 ? -1 : one(px, false, rest, bytes);
        if (d[i] < 0 || p[i] < 0)
            rc = -1;
    }
    if (rc == 0) {
        struct bench_stats sd = bench_stats_of(d, reps), sp = bench_stats_of(p, reps);
        *mbs_d = (double)bytes / 1e6 / (sd.p50 / 1000.0);
        *mbs_p = (double)bytes / 1e6 / (sp.p50 / 1000.0);
        json_t *o = json_object();
        json_object_set_new(o, "request", json_string(rest));
        json_object_set_new(o, "size_mb", json_integer((json_int_t)mb));
        json_object_set_new(o, "reps", json_integer((json_int_t)reps));
        json_object_set_new(
            o, "direct",
            json_pack("{s:o, s:f}", "ms", bench_stats_json(&sd), "mb_per_s", (double)(int64_t)(*mbs_d * 10) / 10));
        json_object_set_new(
            o, "proxied",
            json_pack("{s:o, s:f}", "ms", bench_stats_json(&sp), "mb_per_s", (double)(int64_t)(*mbs_p * 10) / 10));
        json_object_set_new(out, "large_body", o);
    }
    free(d);
    free(p);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = 2000, reps = 5, big_mb = 64;
    int clients = 4, seconds = 3;
    const char *skiffd = NULL, *server = NULL;
    bool as_json = false, quiet = false;
    const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:c:t:r:b:s:p:q", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = (size_t)arg_long(optarg, 1, 1000000); break;
        case 'c': clients = (int)arg_long(optarg, 1, 256); break;
        case 't': seconds = (int)arg_long(optarg, 1, 3600); break;
        case 'r': reps = (size_t)arg_long(optarg, 1, 100); break;
        case 'b': big_mb = (size_t)arg_long(optarg, 1, 1000); break;
        case 's': skiffd = optarg; break;
        case 'p': server = optarg; break;
        case 'q': quiet = true; break;
        case 'j': as_json = true; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    char def[PATH_MAX], srv[PATH_MAX + 64];
    if (skiffd == NULL && (skiffd = bench_skiffd_default(def, sizeof(def))) == NULL) {
        fprintf(stderr, "proxy: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    if (server == NULL) {
        /* BUILD/skiffd -> BUILD/../tests/helpers/port_server.py */
        snprintf(srv, sizeof(srv), "%s", skiffd);
        char *slash = strrchr(srv, '/');
        snprintf(slash != NULL ? slash + 1 : srv, sizeof(srv) - (size_t)(slash != NULL ? slash + 1 - srv : 0),
                 "../tests/helpers/port_server.py");
        server = srv;
    }
    bench_progress_init("proxy", quiet);
    bench_catch_signals();
    self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_ns < 0) {
        fprintf(stderr, "proxy: our network namespace: %s\n", strerror(errno));
        return 1;
    }

    double started = bench_now_ms();
    struct bench_skiffd d;
    struct bench_conn px, dx;
    json_t *out = json_object();
    struct bench_stats sd = {0}, sp = {0};
    double rps_d = 0, rps_p = 0, mbs_d = 0, mbs_p = 0;
    int rc = bench_skiffd_start(&d, skiffd, "proxy", NULL);
    bench_conn_init(&px, d.port, d.token);
    bench_conn_init(&dx, PORT, NULL);
    if (rc == 0) {
        bench_progress("skiffd pid %d on 127.0.0.1:%d", (int)d.pid, d.port);
        rc = setup(&px, server);
    }
    if (rc == 0) {
        json_object_set_new(out, "schema", json_integer(1));
        json_object_set_new(out, "unit", json_string("ms"));
        json_object_set_new(out, "server", json_string("tests/helpers/port_server.py (Python ThreadingHTTPServer)"));
        json_object_set_new(out, "proxied", json_string("GET /p/<sandbox>/8000/... through skiffd, keep-alive client"));
        json_object_set_new(out, "direct", json_string("GET 127.0.0.1:8000/... inside the sandbox's netns"));
        bench_progress("sandbox %s serves port %d; latency, %zu pairs", box_id, PORT, n);
        rc = latency(&px, &dx, n, out, &sd, &sp);
    }
    if (rc == 0) {
        bench_progress("latency p50: direct %.3f ms, proxied %.3f ms; throughput, %d clients x %d s each way", sd.p50,
                       sp.p50, clients, seconds);
        rc = throughput_one(true, &d, clients, seconds, &rps_d);
        if (rc == 0)
            rc = throughput_one(false, &d, clients, seconds, &rps_p);
    }
    if (rc == 0) {
        json_object_set_new(out, "throughput",
                            json_pack("{s:i, s:i, s:s, s:f, s:f}", "clients", clients, "seconds", seconds, "request",
                                      "GET " SMALL_PATH, "direct_rps", (double)(int64_t)(rps_d * 10) / 10,
                                      "proxied_rps", (double)(int64_t)(rps_p * 10) / 10));
        bench_progress("throughput: direct %.0f req/s, proxied %.0f req/s; large body, %zu x %zu MB", rps_d, rps_p,
                       reps, big_mb);
        rc = large(&px, &dx, reps, big_mb, out, &mbs_d, &mbs_p);
    }
    bench_conn_release(&px);
    bench_conn_release(&dx);
    int stop_rc = bench_skiffd_stop(&d);
    if (rc < 0) {
        fprintf(stderr, "proxy: %s\n", bench_error());
        json_decref(out);
        return 1;
    }
    (void)stop_rc;
    json_object_set_new(out, "config",
                        json_pack("{s:I, s:i, s:i, s:I, s:I}", "pairs", (json_int_t)n, "clients", clients, "seconds",
                                  seconds, "reps", (json_int_t)reps, "big_mb", (json_int_t)big_mb));
    json_object_set_new(out, "elapsed_s", json_real((bench_now_ms() - started) / 1000.0));
    if (as_json) {
        char *text = json_dumps(out, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
    } else {
        printf("GET %s, ms          p50      p95      p99\n", SMALL_PATH);
        printf("  direct          %8.3f %8.3f %8.3f\n", sd.p50, sd.p95, sd.p99);
        printf("  proxied         %8.3f %8.3f %8.3f\n", sp.p50, sp.p95, sp.p99);
        printf("throughput (%d clients): direct %.0f req/s, proxied %.0f req/s\n", clients, rps_d, rps_p);
        printf("large body (%zu MB): direct %.1f MB/s, proxied %.1f MB/s\n", big_mb, mbs_d, mbs_p);
    }
    json_decref(out);
    return 0;
}
