/* request.c - request state, input helpers and answers; no I/O here (the
 * HTTP layer turns the answer into a response), so it runs detached in the
 * fuzzer too. */
#include "request.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"

void sk_http_req_init(struct sk_http_req *req, const char *method, const char *path, size_t max_body)
{
    memset(req, 0, sizeof(*req));
    req->method_buf = xstrdup(method);
    req->path_buf = xstrdup(path);
    req->method = req->method_buf;
    req->path = req->path_buf;
    req->body = "";
    req->max_body = max_body;
    req->start_ns = sk_now_ns();
}

void sk_http_req_release(struct sk_http_req *req)
{
    free(req->method_buf);
    free(req->path_buf);
    free(req->query);
    free(req->headers);
    free(req->body_buf);
    if (req->json != NULL)
        json_decref(req->json);
    free(req->resp_body);
    free(req->resp_type);
    for (size_t i = 0; i < req->n_resp_headers; i++) {
        free(req->resp_headers[i].name);
        free(req->resp_headers[i].value);
    }
    free(req->resp_headers);
    free(req->raw_uri);
    if (req->authenticated)
        sk_token_rec_release(&req->auth);
    memset(req, 0, sizeof(*req));
}

static void kv_add(struct sk_http_kv **arr, size_t *n, size_t *cap, const char *key, const char *value)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *arr = xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[*n].key = key;
    (*arr)[*n].value = value ? value : "";
    (*n)++;
}

void sk_http_req_add_query(struct sk_http_req *req, const char *key, const char *value)
{
    if (req->n_query >= SK_HTTP_MAX_QUERY) {
        req->query_overflow = true;
        return;
    }
    kv_add(&req->query, &req->n_query, &req->cap_query, key, value);
}

void sk_http_req_add_header(struct sk_http_req *req, const char *key, const char *value)
{
    kv_add(&req->headers, &req->n_headers, &req->cap_headers, key, value);
}

int sk_http_req_append_body(struct sk_http_req *req, const char *data, size_t len)
{
    if (len > req->max_body || req->body_len > req->max_body - len)
        return -1;
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        req->body_buf = xrealloc(req->body_buf, cap);
        req->body_cap = cap;
    }
    memcpy(req->body_buf + req->body_len, data, len);
    req->body_len += len;
    req->body_buf[req->body_len] = '\0';
    req->body = req->body_buf;
    return 0;
}

bool sk_http_is_answered(const struct sk_http_req *req)
{
    return req->status != 0;
}

/* ---- input ------------------------------------------------------------------- */

const char *sk_http_header(const struct sk_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].key, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *sk_http_query(const struct sk_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_query; i++)
        if (strcmp(req->query[i].key, name) == 0)
            return req->query[i].value;
    return NULL;
}

const char *sk_http_raw_uri(const struct sk_http_req *req)
{
    return req->raw_uri != NULL ? req->raw_uri : req->path;
}

const char *sk_http_param(const struct sk_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->match.n_params; i++)
        if (strcmp(req->match.params[i].name, name) == 0)
            return req->match.params[i].value;
    return NULL;
}

/* query_once - the value of a query parameter given at most once. */
static int query_once(struct sk_http_req *req, const char *name, const char **out)
{
    *out = NULL;
    if (req->query_overflow) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "more than %d query parameters", SK_HTTP_MAX_QUERY);
        return -1;
    }
    for (size_t i = 0; i < req->n_query; i++) {
        if (strcmp(req->query[i].key, name) != 0)
            continue;
        if (*out != NULL) {
            sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "query parameter '%s' is given twice", name);
            return -1;
        }
        *out = req->query[i].value;
    }
    return 0;
}

int sk_http_query_int(struct sk_http_req *req, const char *name, int64_t min, int64_t max, int64_t def, int64_t *out)
{
    const char *v;
    if (query_once(req, name, &v) < 0)
        return -1;
    if (v == NULL) {
        *out = def;
        return 0;
    }
    /* Digits only (an optional '-'): strtoll would accept " 12", "+12", "0x". */
    const char *p = v[0] == '-' ? v + 1 : v;
    bool digits = *p != '\0' && strspn(p, "0123456789") == strlen(p) && strlen(p) <= 18;
    long long n = digits ? strtoll(v, NULL, 10) : 0;
    if (!digits || n < min || n > max) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "query parameter '%s' must be an integer between %" PRId64 " and %" PRId64, name, min,
                                max);
        return -1;
    }
    *out = n;
    return 0;
}

int sk_http_query_str(struct sk_http_req *req, const char *name, size_t max_len, const char **out)
{
    const char *v;
    if (query_once(req, name, &v) < 0)
        return -1;
    if (v == NULL) {
        *out = NULL;
        return 0;
    }
    size_t len = strnlen(v, max_len + 1);
    bool ok = len <= max_len;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)v[i] >= 0x20 && v[i] != 0x7f;
    if (!ok) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "query parameter '%s' must be at most %zu bytes without control characters", name,
                                max_len);
        return -1;
    }
    *out = v;
    return 0;
}

int sk_http_decode_json(struct sk_http_req *req, const struct sk_field *fields, size_t n)
{
    struct sk_error err = {0};
    enum sk_api_code code = SK_API_INVALID_ARGUMENT;
    if (req->json == NULL) {
        json_t *root = NULL;
        if (sk_json_parse(req->body, req->body_len, &root, &code, &err) < 0) {
            sk_http_reply_api_error(req, code, "%s", err.msg);
            return -1;
        }
        req->json = root;
    }
    if (sk_json_decode(req->json, fields, n, &code, &err) < 0) {
        sk_http_reply_api_error(req, code, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* ---- answers ----------------------------------------------------------------- */

/* begin_answer - whether an answer may be given now. */
static bool begin_answer(struct sk_http_req *req)
{
    if (req->closing || req->cancelled)
        return false;
    if (sk_http_is_answered(req)) {
        sk_log_warn("request '%s %s' answered twice; keeping status %d", req->method, req->path, req->status);
        return false;
    }
    return true;
}

/* end_answer - an answer given outside the request's own callback wakes
 * its sleeping connection so the HTTP layer sends it. */
static void end_answer(struct sk_http_req *req)
{
    if (!req->in_callback && req->suspended && req->ops != NULL)
        req->ops->resume(req);
}

void sk_http_set_header(struct sk_http_req *req, const char *name, const char *value)
{
    if (req->n_resp_headers == SK_HTTP_MAX_REPLY_HEADERS || sk_http_is_answered(req)) {
        sk_log_warn("request '%s %s': header '%s' dropped", req->method, req->path, name);
        return;
    }
    if (req->n_resp_headers == req->cap_resp_headers) {
        req->cap_resp_headers = req->cap_resp_headers ? req->cap_resp_headers * 2 : 8;
        req->resp_headers = xrealloc(req->resp_headers, req->cap_resp_headers * sizeof(*req->resp_headers));
    }
    req->resp_headers[req->n_resp_headers].name = xstrdup(name);
    req->resp_headers[req->n_resp_headers].value = xstrdup(value);
    req->n_resp_headers++;
}

void sk_http_reply_take(struct sk_http_req *req, int status, const char *content_type, char *buf, size_t len)
{
    if (!begin_answer(req)) {
        free(buf);
        return;
    }
    req->status = status;
    req->resp_type = xstrdup(content_type);
    req->resp_body = buf;
    req->resp_len = len;
    end_answer(req);
}

void sk_http_reply_data(struct sk_http_req *req, int status, const char *content_type, const void *data, size_t len)
{
    char *copy = xmalloc(len + 1);
    memcpy(copy, data, len);
    copy[len] = '\0';
    sk_http_reply_take(req, status, content_type, copy, len);
}

void sk_http_reply_json(struct sk_http_req *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (text == NULL)
        abort(); /* only on out-of-memory: jansson allocates through xmalloc */
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    text[len++] = '\n';
    text[len] = '\0';
    sk_http_reply_take(req, status, "application/json", text, len);
}

static void reply_code(struct sk_http_req *req, enum sk_api_code code, const char *msg)
{
    int status = sk_api_code_status(code);
    if (status >= 500 && code != SK_API_UNAVAILABLE)
        sk_log_error("request '%s %s': %s", req->method, req->path, msg);
    else if (status >= 500)
        sk_log_info("request '%s %s': %s", req->method, req->path, msg);
    else
        sk_log_debug("request '%s %s': %d %s", req->method, req->path, status, msg);
    sk_http_reply_json(req, status, sk_api_error_json(code, msg));
}

void sk_http_reply_error(struct sk_http_req *req, const struct sk_error *err)
{
    int code = err != NULL && err->code > 0 ? err->code : EIO;
    const char *msg = err != NULL && err->msg[0] != '\0' ? err->msg : "internal error";
    reply_code(req, sk_api_code_from_errno(code), msg);
}

void sk_http_reply_api_error(struct sk_http_req *req, enum sk_api_code code, const char *fmt, ...)
{
    char msg[SK_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_code(req, code, msg);
}

void sk_http_reply_stream(struct sk_http_req *req, int status, const char *content_type, sk_http_stream_fn fn,
                          void *ctx)
{
    if (!begin_answer(req))
        return;
    req->status = status;
    req->resp_type = content_type != NULL ? xstrdup(content_type) : NULL;
    req->stream_fn = fn;
    req->stream_ctx = ctx;
    end_answer(req);
}

void sk_http_set_stream_size(struct sk_http_req *req, uint64_t size)
{
    req->stream_sized = true;
    req->stream_size = size;
}

void sk_http_passthrough(struct sk_http_req *req)
{
    req->passthrough = true;
}

void sk_http_suspend(struct sk_http_req *req)
{
    req->want_suspend = true;
    req->wake_pending = false;
}

void sk_http_resume(struct sk_http_req *req)
{
    if (req->in_callback) {
        /* Not asleep yet: make the HTTP layer keep going instead. */
        req->want_suspend = false;
        req->wake_pending = true;
        return;
    }
    if (req->suspended && req->ops != NULL)
        req->ops->resume(req);
}

void sk_http_body_sink(struct sk_http_req *req, sk_http_sink_fn fn, void *ctx)
{
    req->sink_fn = fn;
    req->sink_ctx = ctx;
}

void sk_http_on_close(struct sk_http_req *req, sk_http_close_fn fn, void *ctx)
{
    req->close_fn = fn;
    req->close_ctx = ctx;
}
