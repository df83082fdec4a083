/* bench/net.c - what giving a sandbox a network costs at create: POST
 * /v1/sandboxes with {"network": {"mode": "egress"}} next to the same create
 * with no network (mode none), interleaved, one keep-alive client, each
 * sandbox terminated (untimed) before the next create.
 *
 * Never the host's network: the program first moves itself into a network
 * namespace of its own (unshare), where skiffd then runs and turns on
 * forwarding, NAT and its nftables rules; the namespace vanishes with the
 * program. Two variants: skiffd with a warm pool (every create claims a
 * ready sandbox; the network is added to it on claim - the wait until the
 * pool is full again is not timed), and with the pool off (every create
 * builds its sandbox). Prints one JSON object (--json) or a summary.
 *
 *   net [--json] [-n PAIRS] [-w WARMUP] [-s SKIFFD] [-q]
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/client.h"
#include "common/skiffd.h"

#define POOL_SIZE "4"

static long arg_long(const char *s, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "net: '%s' is not a number from %ld to %ld\n", s, lo, hi);
        exit(2);
    }
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: net [--json] [-n PAIRS] [-w WARMUP] [-s SKIFFD] [-q]\n");
    exit(2);
}

/* pool_full - wait (up to 10 s) until the pool's default key is ready again. */
static int pool_full(struct bench_conn *c)
{
    double deadline = bench_now_ms() + 10000;
    while (bench_now_ms() < deadline && !bench_stopping()) {
        struct bench_resp r = {0};
        if (bench_call_json(c, "GET", "/v1/pool", NULL, 200, &r) < 0)
            return -1;
        json_t *key = json_array_get(json_object_get(r.json, "keys"), 0);
        json_int_t ready = json_integer_value(json_object_get(key, "ready"));
        json_int_t target = json_integer_value(json_object_get(key, "target"));
        bench_resp_free(&r);
        if (key == NULL || ready >= target)
            return 0;
        usleep(5000);
    }
    return bench_stopping() ? -1 : bench_fail("the pool did not fill up again within 10 s");
}

/* one - create (timed) and terminate (untimed) one sandbox; *ms, *pooled. */
static int one(struct bench_conn *c, bool egress, double *ms, bool *pooled)
{
    static const char *const bodies[] = {"{}", "{\"network\": {\"mode\": \"egress\"}}"};
    struct bench_resp r = {0};
    double t0 = bench_now_ms();
    if (bench_call_json(c, "POST", "/v1/sandboxes", bodies[egress], 201, &r) < 0)
        return -1;
    *ms = bench_now_ms() - t0;
    *pooled = json_is_true(json_object_get(r.json, "pooled"));
    char path[96];
    snprintf(path, sizeof(path), "/v1/sandboxes/%s/terminate", bench_jstr(&r, "id"));
    bench_resp_free(&r);
    int rc = bench_call_json(c, "POST", path, "{}", 200, &r);
    bench_resp_free(&r);
    return rc;
}

/* variant - PAIRS interleaved none/egress creates against a fresh skiffd. */
static json_t *variant(const char *skiffd, bool pool, size_t pairs, size_t warmup)
{
    const char *extra_pool[] = {"--pool-size",    POOL_SIZE,    "--pool-max", POOL_SIZE,
                                "--dns-upstream", "192.0.2.53", NULL};
    const char *extra_cold[] = {"--pool-size", "0", "--dns-upstream", "192.0.2.53", NULL};
    struct bench_skiffd d;
    struct bench_conn c;
    json_t *out = json_object();
    double *none = calloc(pairs, sizeof(double)), *egress = calloc(pairs, sizeof(double));
    size_t pooled[2] = {0, 0};
    int rc = bench_skiffd_start(&d, skiffd, pool ? "net-pool" : "net-cold", pool ? extra_pool : extra_cold);
    bench_conn_init(&c, d.port, d.token);
    for (size_t i = 0; rc == 0 && i < warmup * 2; i++) {
        double ms;
        bool p;
        if (pool && (rc = pool_full(&c)) < 0)
            break;
        rc = one(&c, i % 2 == 1, &ms, &p);
    }
    bench_progress("%s: %zu pairs", pool ? "pool warm" : "pool off", pairs);
    for (size_t i = 0; rc == 0 && i < pairs && !bench_stopping(); i++) {
        /* alternate which goes first, so neither always follows a teardown */
        for (int k = 0; k < 2 && rc == 0; k++) {
            bool eg = (k == 0) == (i % 2 == 0);
            double ms = 0;
            bool p = false;
            if (pool && (rc = pool_full(&c)) < 0)
                break;
            rc = one(&c, eg, &ms, &p);
            (eg ? egress : none)[i] = ms;
            pooled[eg] += p;
        }
    }
    if (rc == 0) {
        struct bench_stats sn = bench_stats_of(none, pairs), se = bench_stats_of(egress, pairs);
        json_object_set_new(out, "none", bench_stats_json(&sn));
        json_object_set_new(out, "egress", bench_stats_json(&se));
        json_object_set_new(out, "added_p50_ms", bench_ms_json(se.p50 - sn.p50));
        json_object_set_new(out, "added_p95_ms", bench_ms_json(se.p95 - sn.p95));
        json_object_set_new(out, "pooled",
                            json_pack("{s:I, s:I}", "none", (json_int_t)pooled[0], "egress", (json_int_t)pooled[1]));
        /* skiffd's own view: the host side's setup per egress sandbox */
        struct bench_resp r = {0};
        if (bench_call(&c, "GET", "/metrics", NULL, NULL, 0, 200, &r) == 0 && r.body != NULL) {
            const char *sum = strstr(r.body, "skiff_net_setup_duration_seconds_sum ");
            const char *cnt = strstr(r.body, "skiff_net_setup_duration_seconds_count ");
            if (sum != NULL && cnt != NULL) {
                double s = strtod(sum + strlen("skiff_net_setup_duration_seconds_sum "), NULL);
                double n = strtod(cnt + strlen("skiff_net_setup_duration_seconds_count "), NULL);
                if (n > 0)
                    json_object_set_new(out, "server_setup_mean_ms", bench_ms_json(s / n * 1000.0));
            }
        }
        bench_resp_free(&r);
        json_object_set_new(out, "status", json_string("ok"));
    } else {
        json_object_set_new(out, "status", json_string("unavailable"));
        json_object_set_new(out, "reason", json_string(bench_error()));
    }
    bench_conn_release(&c);
    bench_skiffd_stop(&d);
    free(none);
    free(egress);
    return out;
}

int main(int argc, char **argv)
{
    size_t pairs = 200, warmup = 5;
    const char *skiffd = NULL;
    bool as_json = false, quiet = false;
    const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:w:s:q", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': pairs = (size_t)arg_long(optarg, 1, 100000); break;
        case 'w': warmup = (size_t)arg_long(optarg, 0, 1000); break;
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
        fprintf(stderr, "net: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    bench_progress_init("net", quiet);
    bench_catch_signals();
    json_t *out = json_object();
    /* a network namespace of our own: skiffd's forwarding, NAT and rules go
     * there, never into the host's */
    if (unshare(CLONE_NEWNET) < 0 || system("ip link set lo up") != 0) {
        json_object_set_new(out, "status", json_string("unavailable"));
        json_object_set_new(out, "reason", json_string("cannot make a network namespace (root and ip(8) needed)"));
    } else {
        double t0 = bench_now_ms();
        json_object_set_new(out, "schema", json_integer(1));
        json_object_set_new(out, "unit", json_string("ms"));
        json_object_set_new(out, "measure",
                            json_string("POST /v1/sandboxes to its 201, one keep-alive client; "
                                        "none and egress interleaved; terminate untimed"));
        json_object_set_new(out, "pairs", json_integer((json_int_t)pairs));
        json_object_set_new(out, "pool_size", json_integer(atoi(POOL_SIZE)));
        json_object_set_new(out, "pool", variant(skiffd, true, pairs, warmup));
        if (!bench_stopping())
            json_object_set_new(out, "cold", variant(skiffd, false, pairs, warmup));
        json_object_set_new(out, "elapsed_s", json_real((bench_now_ms() - t0) / 1000.0));
        json_object_set_new(out, "status", json_string("ok"));
    }
    if (as_json) {
        char *text = json_dumps(out, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
    } else {
        for (int v = 0; v < 2; v++) {
            json_t *x = json_object_get(out, v ? "cold" : "pool");
            if (x == NULL)
                continue;
            printf("%s: none p50 %.3f ms, egress p50 %.3f ms, added p50 %.3f ms p95 %.3f ms\n",
                   v ? "pool off" : "pool warm", json_real_value(json_object_get(json_object_get(x, "none"), "p50")),
                   json_real_value(json_object_get(json_object_get(x, "egress"), "p50")),
                   json_real_value(json_object_get(x, "added_p50_ms")),
                   json_real_value(json_object_get(x, "added_p95_ms")));
        }
    }
    json_decref(out);
    return 0;
}
