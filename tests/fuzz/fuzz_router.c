/* fuzz_router.c - libFuzzer target for skiffd's request layer without
 * sockets: the router (on the real route table), query helpers, strict
 * JSON body decoding, the error renderer and metric label escaping.
 *
 * Input: METHOD \0 PATH[?QUERY] \0 BODY. A method of zero or one byte
 * picks a common method, so the fuzzer reaches the routes quickly. What it
 * checks beyond "no crash, no leak, no UB": a match names a real route
 * with valid parameters, and every rejection is an answer with a JSON
 * error carrying a known code.
 *
 * Build and run by hand (the Makefile wires it in later):
 *   clang -std=c17 -D_GNU_SOURCE -g -O1 -Ilib -Idaemon -fsanitize=fuzzer,address,undefined \
 *     -o build/fuzz/fuzz_router tests/fuzz/fuzz_router.c $(find daemon -name '*.c' ! -name main.c) \
 *     lib/base/{error,log,util}.c lib/store/store.c lib/auth/auth.c \
 *     -lmicrohttpd -lsqlite3 -lsodium -ljansson -lm
 *   build/fuzz/fuzz_router -max_total_time=60 build/fuzz/router-corpus tests/fuzz/router_corpus
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_error.h"
#include "base/log.h"
#include "json.h"
#include "metrics.h"
#include "request.h"
#include "router.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sk_router *router;
static struct sk_route *table;

static void setup(void)
{
    if (router != NULL)
        return;
    sk_log_set_level(SK_LOG_ERROR);
    size_t n = sk_api_routes_len + sk_debug_routes_len;
    table = calloc(n, sizeof(*table));
    memcpy(table, sk_api_routes, sk_api_routes_len * sizeof(*table));
    memcpy(table + sk_api_routes_len, sk_debug_routes, sk_debug_routes_len * sizeof(*table));
    struct sk_error err;
    if (sk_router_new(table, n, &router, &err) < 0)
        abort();
}

/* next_field - the bytes up to the next NUL (or the end), as a string. */
static char *next_field(const uint8_t **p, size_t *left)
{
    const uint8_t *nul = memchr(*p, '\0', *left);
    size_t len = nul ? (size_t)(nul - *p) : *left;
    char *s = malloc(len + 1);
    memcpy(s, *p, len);
    s[len] = '\0';
    *p += nul ? len + 1 : len;
    *left -= nul ? len + 1 : len;
    return s;
}

/* check_answer - a rejected request holds a JSON error with a known code. */
static void check_answer(const struct sk_http_req *req)
{
    if (!sk_http_is_answered(req) || req->resp_body == NULL)
        abort();
    json_error_t jerr;
    json_t *doc = json_loadb(req->resp_body, req->resp_len, 0, &jerr);
    if (doc == NULL)
        abort();
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    bool known = false;
    for (int c = 0; code != NULL && c < SK_API_CODE_COUNT && !known; c++)
        known = strcmp(code, sk_api_code_name((enum sk_api_code)c)) == 0;
    if (!known || req->status != sk_api_code_status(SK_API_INVALID_ARGUMENT))
        abort();
    json_decref(doc);
}

static void check_match(enum sk_router_result rr, const struct sk_route_match *m, const char *method)
{
    switch (rr) {
    case SK_ROUTER_OK:
        if (m->route == NULL)
            abort();
        if (strcmp(m->route->method, method) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(m->route->method, "GET") == 0))
            abort();
        for (size_t i = 0; i < m->n_params; i++)
            if (!sk_router_is_valid_param(m->params[i].value))
                abort();
        break;
    case SK_ROUTER_METHOD_NOT_ALLOWED:
        if (m->allow[0] == '\0')
            abort();
        break;
    case SK_ROUTER_BAD_PARAM:
        if (m->bad_param == NULL)
            abort();
        break;
    case SK_ROUTER_NOT_FOUND: break;
    }
}

/* The field kinds a handler can declare, all at once. */
static void decode_everything(struct sk_http_req *req)
{
    const char *name = NULL, *role = NULL;
    int64_t ttl = 0, n = 0;
    double num = 0;
    bool flag = false, have_ttl = false;
    const json_t *obj = NULL, *arr = NULL, *argv = NULL, *env = NULL, *any = NULL;
    struct sk_field fields[] = {
        SK_FIELD_STR("name", &name, SK_OPTIONAL, 64),
        SK_FIELD_STR("role", &role, SK_OPTIONAL, 0),
        SK_FIELD_INT("ttl_seconds", &ttl, SK_OPTIONAL, 1, 315360000),
        SK_FIELD_INT("n", &n, SK_OPTIONAL, 0, 0),
        SK_FIELD_NUM("num", &num, SK_OPTIONAL),
        SK_FIELD_BOOL("flag", &flag, SK_OPTIONAL),
        SK_FIELD_OBJ("limits", &obj, SK_OPTIONAL),
        SK_FIELD_ARR("arr", &arr, SK_OPTIONAL, 4),
        SK_FIELD_STRV("argv", &argv, SK_OPTIONAL, 16),
        SK_FIELD_STRMAP("env", &env, SK_OPTIONAL, 16),
        SK_FIELD_ANY("any", &any, SK_OPTIONAL),
    };
    fields[2].present = &have_ttl;
    if (sk_http_decode_json(req, fields, sizeof(fields) / sizeof(fields[0])) < 0) {
        check_answer(req);
        return;
    }
    if (sk_http_is_answered(req))
        abort();
    if (have_ttl && (ttl < 1 || ttl > 315360000))
        abort();
    if (name != NULL && strlen(name) > 64)
        abort();
    if (argv != NULL)
        for (size_t i = 0; i < json_array_size(argv); i++)
            if (!json_is_string(json_array_get(argv, i)))
                abort();
    if (obj != NULL) {
        int64_t cpu = 0;
        const char *mem = NULL;
        const struct sk_field nested[] = {
            SK_FIELD_INT("cpu", &cpu, SK_REQUIRED, 1, 64),
            SK_FIELD_STR("memory", &mem, SK_OPTIONAL, 16),
        };
        enum sk_api_code code;
        struct sk_error err;
        if (sk_json_decode_at(obj, "limits", nested, 2, &code, &err) < 0 &&
            (err.code != EINVAL || strstr(err.msg, "limits") == NULL))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "HEAD", "PATCH", "OPTIONS"};
    setup();
    const uint8_t *p = data;
    size_t left = size;
    char *method = next_field(&p, &left);
    char *target = next_field(&p, &left);
    if (strlen(method) <= 1) {
        size_t i = method[0] ? (unsigned char)method[0] % (sizeof(methods) / sizeof(methods[0])) : 0;
        free(method);
        method = strdup(methods[i]);
    }
    char *query = strchr(target, '?');
    if (query != NULL)
        *query++ = '\0';

    struct sk_http_req req;
    sk_http_req_init(&req, method, target, 1 << 20);
    enum sk_router_result rr = sk_router_match(router, req.method, req.path, &req.match);
    check_match(rr, &req.match, req.method);

    /* Query: key=value&... (borrowed by the request: kept until release). */
    char *qcopy = query ? strdup(query) : NULL;
    for (char *save = NULL, *kv = qcopy ? strtok_r(qcopy, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq != NULL)
            *eq++ = '\0';
        sk_http_req_add_query(&req, kv, eq);
    }
    if (sk_http_req_append_body(&req, (const char *)p, left) < 0)
        abort();
    if (req.body_len != left || req.body[req.body_len] != '\0')
        abort();

    decode_everything(&req);

    /* Query helpers, each on its own copy of the answer state. */
    int64_t limit;
    const char *cursor;
    struct sk_http_req q;
    sk_http_req_init(&q, method, target, 0);
    q.query = req.query;
    q.n_query = req.n_query;
    q.query_overflow = req.query_overflow;
    if (sk_http_query_int(&q, "limit", 1, 1000, 100, &limit) < 0)
        check_answer(&q);
    else if (limit < 1 || limit > 1000)
        abort();
    q.query = NULL; /* borrowed from req */
    sk_http_req_release(&q);
    sk_http_req_init(&q, method, target, 0);
    q.query = req.query;
    q.n_query = req.n_query;
    q.query_overflow = req.query_overflow;
    if (sk_http_query_str(&q, "cursor", 64, &cursor) < 0)
        check_answer(&q);
    else if (cursor != NULL && strlen(cursor) > 64)
        abort();
    q.query = NULL;
    sk_http_req_release(&q);

    /* Errors quoting arbitrary bytes still render as JSON. */
    json_t *e = sk_api_error_json(SK_API_NOT_FOUND, req.body);
    char *text = json_dumps(e, JSON_COMPACT);
    if (text == NULL)
        abort();
    free(text);
    json_decref(e);

    /* Label values from outside are escaped and bounded. */
    struct sk_metrics *m = sk_metrics_new();
    struct sk_metric *c = sk_metrics_counter(m, "fuzz_total", "fuzz", "path");
    sk_metric_inc(c, req.path);
    sk_metric_inc(c, req.body);
    size_t len;
    char *out = sk_metrics_render(m, &len);
    if (strlen(out) != len)
        abort();
    free(out);
    sk_metrics_free(m);

    sk_http_req_release(&req);
    free(qcopy);
    free(method);
    free(target);
    return 0;
}
