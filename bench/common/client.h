/* client.h - what the bench programs share: a minimal keep-alive HTTP/1.1
 * client for skiffd, errors, progress lines and percentile statistics.
 *
 * The client is written here rather than taken from libcurl on purpose: the
 * benchmarks time requests of about a millisecond, and a client that costs
 * next to nothing (one plain socket with TCP_NODELAY, Content-Length and
 * chunked bodies, JSON by jansson) keeps its own cost out of the figures.
 *
 * Threads: a struct bench_conn belongs to one thread at a time; every other
 * function may be called from any thread. The last error is kept per thread
 * (bench_fail / bench_error), so that worker threads of a load generator
 * each report their own. */
#ifndef SKIFF_BENCH_CLIENT_H
#define SKIFF_BENCH_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define BENCH_REQUEST_TIMEOUT_MS 60000.0
#define BENCH_ID_MAX 64

/* ---- errors, progress, signals ---- */

/* bench_fail - set this thread's error message; returns -1. */
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* bench_error - this thread's last message ("" when none). */
const char *bench_error(void);

/* bench_progress_init - progress lines go to stderr as "<name>: ..."
 * unless quiet. Call once, before any thread starts. */
void bench_progress_init(const char *name, bool quiet);
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* bench_catch_signals - SIGINT and SIGTERM set a flag that every blocking
 * call of the client checks (bench_stopping), so a benchmark stops within a
 * poll interval and still cleans up; SIGPIPE is ignored. */
void bench_catch_signals(void);
bool bench_stopping(void);
/* bench_request_stop - set the same flag (a worker gives up for all). */
void bench_request_stop(void);

double bench_now_ms(void); /* CLOCK_MONOTONIC in ms */

/* ---- statistics ---- */

struct bench_stats {
    size_t n;
    double p50, p95, p99, min, max, mean;
};

/* bench_stats_of - percentiles by linear interpolation between closest
 * ranks (numpy's default, as spawnbench); sorts v in place. */
struct bench_stats bench_stats_of(double *v, size_t n);
/* bench_stats_json - {"n", "p50", "p95", "p99", "min", "max", "mean"}, ms
 * rounded to the microsecond. */
json_t *bench_stats_json(const struct bench_stats *s);
json_t *bench_ms_json(double ms);

/* ---- the HTTP client ---- */

struct bench_conn {
    int port;
    const char *token; /* borrowed; NULL: no Authorization header */
    int fd;
    char *buf; /* unread bytes are buf[start..end) */
    size_t cap, start, end;
};

struct bench_resp {
    int status;
    bool close; /* the server closes the connection after this answer */
    char *body; /* NUL-terminated when not NULL */
    size_t len, cap;
    double first_byte_ms; /* when the first body byte was read (0: none) */
    json_t *json;         /* the body parsed, when it is a JSON object */
};

/* bench_conn_init - a connection to 127.0.0.1:port, opened by the first
 * request; release with bench_conn_release. */
void bench_conn_init(struct bench_conn *c, int port, const char *token);
void bench_conn_release(struct bench_conn *c);
void bench_conn_close(struct bench_conn *c);

void bench_resp_free(struct bench_resp *r);

/* bench_http - one request and its whole answer on the kept-alive
 * connection, (re)opened as needed; a request on a connection the server
 * had closed while idle is retried once. A body is sent for POST and PUT (a
 * Content-Length of 0 when `body` is NULL). Returns 0 with *r filled (free
 * with bench_resp_free), or -1 (bench_error says why; *r is empty). */
int bench_http(struct bench_conn *c, const char *method, const char *path, const char *ctype, const void *body,
               size_t len, struct bench_resp *r);
/* bench_call - bench_http whose answer must have status `want` (any 2xx
 * when want is 0); otherwise -1 with the status and error in the message. */
int bench_call(struct bench_conn *c, const char *method, const char *path, const char *ctype, const void *body,
               size_t len, int want, struct bench_resp *r);
/* bench_call_json - bench_call with a JSON body (NUL-terminated or NULL). */
int bench_call_json(struct bench_conn *c, const char *method, const char *path, const char *json, int want,
                    struct bench_resp *r);

/* bench_sandbox_create - POST /v1/sandboxes with `body` (NULL: "{}"); the
 * new sandbox must answer 201 and run. Its id goes to id. */
int bench_sandbox_create(struct bench_conn *c, const char *body, char id[BENCH_ID_MAX]);
/* bench_sandbox_terminate - POST /v1/sandboxes/<id>/terminate (200). */
int bench_sandbox_terminate(struct bench_conn *c, const char *id);

/* bench_jstr - a string member of the answer's JSON object, or "". */
const char *bench_jstr(const struct bench_resp *r, const char *key);
/* bench_resp_error - the API error's message (or the raw body). */
const char *bench_resp_error(const struct bench_resp *r);
/* bench_resp_code - the API error's stable code, or "". */
const char *bench_resp_code(const struct bench_resp *r);

/* bench_healthy - does GET /healthz answer 200 on a fresh connection? */
bool bench_healthy(int port);

#endif
