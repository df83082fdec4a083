/* client.c - the skiff CLI's HTTP client for the skiffd API, on libcurl. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define ANSWER_MAX (64u << 20)    /* a JSON answer larger than this is refused */
#define CONFIG_MAX (64u << 10)    /* the config file */
#define TOKEN_FILE_MAX (4u << 10) /* a token file */
#define CONNECT_TIMEOUT_S 10L

/* ---- errors ------------------------------------------------------------------- */

int sk_client_error_set(struct sk_client_error *e, int exit_code, const char *fmt, ...)
{
    va_list ap;
    memset(e, 0, sizeof(*e));
    e->exit_code = exit_code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* exit_for_code - the exit code for an API error code (cli.h). */
static int exit_for_code(const char *code)
{
    static const struct {
        const char *code;
        int exit_code;
    } map[] = {
        {"not_found", SK_EXIT_NOT_FOUND},           {"unauthenticated", SK_EXIT_AUTH},
        {"permission_denied", SK_EXIT_AUTH},        {"already_exists", SK_EXIT_CONFLICT},
        {"failed_precondition", SK_EXIT_CONFLICT},  {"unavailable", SK_EXIT_UNAVAILABLE},
        {"deadline_exceeded", SK_EXIT_UNAVAILABLE},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(map); i++)
        if (strcmp(code, map[i].code) == 0)
            return map[i].exit_code;
    return SK_EXIT_ERROR;
}

void sk_client_error_from_answer(struct sk_client_error *e, long status, const char *body, size_t len)
{
    memset(e, 0, sizeof(*e));
    e->status = (int)status;
    json_t *j = body != NULL && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (code != NULL) {
        snprintf(e->code, sizeof(e->code), "%s", code);
        snprintf(e->msg, sizeof(e->msg), "%s", msg ? msg : code);
        e->exit_code = exit_for_code(code);
    } else {
        /* not the API's JSON: a protocol-level refusal, or not skiffd */
        size_t n = 0;
        while (body != NULL && n < len && n < 200 && body[n] != '\n' && body[n] != '\r')
            n++;
        snprintf(e->msg, sizeof(e->msg), "the server answered HTTP %ld%s%.*s", status, n ? ": " : "", (int)n,
                 n ? body : "");
        e->exit_code = status == 404                    ? SK_EXIT_NOT_FOUND
                       : status == 401 || status == 403 ? SK_EXIT_AUTH
                       : status >= 500                  ? SK_EXIT_UNAVAILABLE
                                                        : SK_EXIT_ERROR;
    }
    json_decref(j);
}

void sk_client_error_from_curl(const struct sk_client *c, struct sk_client_error *e, CURLcode rc, const char *detail)
{
    const char *what = detail != NULL && detail[0] ? detail : curl_easy_strerror(rc);
    const char *where = c->unix_path ? c->unix_path : c->base;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        sk_client_error_set(e, SK_EXIT_UNAVAILABLE,
                            "cannot reach skiffd at '%s': %s (is it running? `skiff serve` or `make run` starts it)",
                            where, what);
        break;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        sk_client_error_set(e, SK_EXIT_UNAVAILABLE, "connection to skiffd at '%s' failed: %s", where, what);
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT: sk_client_error_set(e, SK_EXIT_USAGE, "bad server URL '%s': %s", where, what); break;
    default: sk_client_error_set(e, SK_EXIT_ERROR, "request to '%s' failed: %s", where, what); break;
    }
}

int sk_client_report(const struct sk_client *c, const struct sk_client_error *e)
{
    if (e->code[0] != '\0')
        fprintf(stderr, "skiff: %s (%s)\n", e->msg, e->code);
    else
        fprintf(stderr, "skiff: %s\n", e->msg);
    if (strcmp(e->code, "unauthenticated") == 0)
        fprintf(stderr,
                "skiff: the token from %s was refused; set SKIFF_TOKEN, pass --token, or fix the config file "
                "(create a new one with `skiff token create`)\n",
                c != NULL && c->token_from != NULL ? c->token_from : "the configuration");
    return e->exit_code;
}

/* ---- configuration ---------------------------------------------------------------- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* config_path - the config file's path (caller frees), or NULL. */
static char *config_path(void)
{
    const char *p = getenv("SKIFF_CONFIG");
    if (p != NULL && p[0] != '\0')
        return xstrdup(p);
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg != NULL && xdg[0] == '/')
        return xasprintf("%s/skiff/config", xdg);
    const char *home = getenv("HOME");
    if (home != NULL && home[0] != '\0')
        return xasprintf("%s/.config/skiff/config", home);
    return NULL;
}

/* expand_path - "~/x" under $HOME, a relative path next to the config
 * file; caller frees. */
static char *expand_path(const char *p, const char *config)
{
    const char *home = getenv("HOME");
    if (p[0] == '~' && p[1] == '/' && home != NULL)
        return xasprintf("%s%s", home, p + 1);
    if (p[0] != '/' && config != NULL && strrchr(config, '/') != NULL)
        return xasprintf("%.*s/%s", (int)(strrchr(config, '/') - config), config, p);
    return xstrdup(p);
}

struct config {
    char *path;
    char *url, *token, *token_file;
};

static void config_release(struct config *cf)
{
    free(cf->path);
    free(cf->url);
    if (cf->token != NULL)
        explicit_bzero(cf->token, strlen(cf->token));
    free(cf->token);
    free(cf->token_file);
}

/* config_load - read the config file if there is one. A missing file is
 * not an error; a malformed one is. */
static int config_load(struct config *cf, struct sk_client_error *e)
{
    memset(cf, 0, sizeof(*cf));
    cf->path = config_path();
    if (cf->path == NULL)
        return 0;
    char *text = NULL;
    size_t len = 0;
    struct sk_error err = {0};
    if (sk_read_file_at(AT_FDCWD, cf->path, CONFIG_MAX, &text, &len, &err) < 0) {
        if (err.code == ENOENT)
            return 0;
        return sk_client_error_set(e, SK_EXIT_USAGE, "config file: %s", err.msg);
    }
    int lineno = 0, ret = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *s = trim(line);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            ret = sk_client_error_set(e, SK_EXIT_USAGE, "config file '%s', line %d: expected 'key = value'", cf->path,
                                      lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        char **slot = strcmp(key, "url") == 0          ? &cf->url
                      : strcmp(key, "token") == 0      ? &cf->token
                      : strcmp(key, "token_file") == 0 ? &cf->token_file
                                                       : NULL;
        if (slot == NULL) {
            ret = sk_client_error_set(e, SK_EXIT_USAGE,
                                      "config file '%s', line %d: unknown key '%s' (known: url, token, token_file)",
                                      cf->path, lineno, key);
            break;
        }
        free(*slot);
        *slot = xstrdup(value);
    }
    explicit_bzero(text, len);
    free(text);
    return ret;
}

static bool token_is_sane(const char *t)
{
    if (t[0] == '\0' || strlen(t) > 512)
        return false;
    for (const char *p = t; *p; p++)
        if (*p <= ' ' || *p > '~')
            return false; /* no spaces or line breaks in a header */
    return true;
}

static const char *nonempty_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* set_url - accept http(s)://HOST[:PORT][/prefix] or unix:/PATH. */
static int set_url(struct sk_client *c, const char *url, struct sk_client_error *e)
{
    if (strncmp(url, "unix:", 5) == 0) {
        if (url[5] != '/')
            return sk_client_error_set(e, SK_EXIT_USAGE, "bad server URL '%s': unix: needs an absolute path", url);
        c->unix_path = xstrdup(url + 5);
        c->base = xstrdup("http://localhost");
        return 0;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return sk_client_error_set(e, SK_EXIT_USAGE,
                                   "bad server URL '%s': it must start with http://, https:// or unix:", url);
    c->base = xstrdup(url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    return 0;
}

/* setup_curl - the shared handle and the header lists. */
static int setup_curl(struct sk_client *c)
{
    _cleanup_free_ char *auth = xasprintf("Authorization: Bearer %s", c->token);
    static const char *const common[] = {"Expect:", "Accept: application/json"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(common); i++) {
        c->hdr_json = curl_slist_append(c->hdr_json, common[i]);
        c->hdr_raw = curl_slist_append(c->hdr_raw, common[i]);
    }
    c->hdr_json = curl_slist_append(c->hdr_json, auth);
    c->hdr_raw = curl_slist_append(c->hdr_raw, auth);
    c->hdr_json = curl_slist_append(c->hdr_json, "Content-Type: application/json");
    c->hdr_raw = curl_slist_append(c->hdr_raw, "Content-Type: application/octet-stream");
    explicit_bzero(auth, strlen(auth));
    c->easy = curl_easy_init();
    return c->easy == NULL || c->hdr_json == NULL || c->hdr_raw == NULL ? -1 : 0;
}

int sk_client_open(struct sk_client *c, const struct sk_cli *g, struct sk_client_error *e)
{
    memset(c, 0, sizeof(*c));
    struct config cf;
    if (config_load(&cf, e) < 0) {
        config_release(&cf);
        return -1;
    }
    int ret = -1;
    const char *url = g->url ? g->url : nonempty_env("SKIFF_URL");
    if (url == NULL)
        url = cf.url ? cf.url : SK_CLIENT_DEFAULT_URL;
    if (set_url(c, url, e) < 0)
        goto out;

    if (g->token != NULL) {
        c->token = xstrdup(g->token);
        c->token_from = xstrdup("--token");
    } else if (nonempty_env("SKIFF_TOKEN") != NULL) {
        c->token = xstrdup(getenv("SKIFF_TOKEN"));
        c->token_from = xstrdup("$SKIFF_TOKEN");
    } else if (cf.token != NULL) {
        c->token = xstrdup(cf.token);
        c->token_from = xasprintf("'%s'", cf.path);
    } else if (cf.token_file != NULL) {
        _cleanup_free_ char *path = expand_path(cf.token_file, cf.path);
        char *text = NULL;
        size_t len = 0;
        struct sk_error err = {0};
        if (sk_read_file_at(AT_FDCWD, path, TOKEN_FILE_MAX, &text, &len, &err) < 0) {
            sk_client_error_set(e, SK_EXIT_USAGE, "token_file in '%s': %s", cf.path, err.msg);
            goto out;
        }
        c->token = xstrdup(trim(text));
        explicit_bzero(text, len);
        free(text);
        c->token_from = xasprintf("'%s'", path);
    }
    if (c->token == NULL || c->token[0] == '\0') {
        sk_client_error_set(e, SK_EXIT_USAGE,
                            "no API token: set SKIFF_TOKEN, pass --token, or write token = ... in "
                            "~/.config/skiff/config; the server's admin token is in <data-dir>/admin.token");
        goto out;
    }
    if (!token_is_sane(c->token)) {
        sk_client_error_set(e, SK_EXIT_USAGE, "the token from %s is malformed (spaces or control characters)",
                            c->token_from);
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || setup_curl(c) < 0) {
        sk_client_error_set(e, SK_EXIT_ERROR, "cannot initialise libcurl");
        goto out;
    }
    ret = 0;
out:
    config_release(&cf);
    if (ret < 0)
        sk_client_close(c);
    return ret;
}

int sk_client_connect(struct sk_client *c, const struct sk_cli *g)
{
    struct sk_client_error e;
    if (sk_client_open(c, g, &e) < 0)
        return sk_client_report(NULL, &e);
    return 0;
}

void sk_client_close(struct sk_client *c)
{
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdr_json);
    curl_slist_free_all(c->hdr_raw);
    if (c->token != NULL)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    free(c->token_from);
    free(c->base);
    free(c->unix_path);
    memset(c, 0, sizeof(*c));
}

/* ---- transfers ------------------------------------------------------------------- */

char *sk_client_escape(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(n * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~' || (keep_slash && ch == '/')) {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return out;
}

int sk_write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, -1);
            continue;
        }
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void set_common(struct sk_client *c, CURL *h, const char *path, bool raw)
{
    _cleanup_free_ char *url = xasprintf("%s%s", c->base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (c->unix_path != NULL)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, raw ? c->hdr_raw : c->hdr_json);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "skiff/" SKIFF_VERSION);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* the answer's body is ours to read, also for errors */
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 0L);
}

CURL *sk_client_easy_new(struct sk_client *c, const char *path, bool raw)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    set_common(c, h, path, raw);
    return h;
}

/* xfer - one synchronous transfer on the shared handle. */
struct xfer {
    CURL *h;
    long status;
    char *buf; /* the JSON answer or an error body */
    size_t len, cap;
    bool too_large;
    int out_fd; /* a download's destination, or -1 */
    uint64_t out_bytes;
    int out_errno;
    int in_fd; /* an upload's source, or -1 */
    int in_errno;
};

static size_t xfer_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->status == 0)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->out_fd >= 0 && x->status / 100 == 2) {
        if (sk_write_full(x->out_fd, data, n) < 0) {
            x->out_errno = errno;
            return 0; /* abort the transfer */
        }
        x->out_bytes += n;
        return n;
    }
    if (x->len + n > ANSWER_MAX) {
        x->too_large = true;
        return 0;
    }
    if (x->len + n + 1 > x->cap) {
        x->cap = (x->len + n + 1) * 2;
        x->buf = xrealloc(x->buf, x->cap);
    }
    memcpy(x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return n;
}

static size_t xfer_read(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    for (;;) {
        ssize_t n = read(x->in_fd, data, size * nmemb);
        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR) {
            x->in_errno = errno;
            return CURL_READFUNC_ABORT;
        }
    }
}

/* xfer_run - perform the prepared transfer; decode a JSON answer into
 * *answer (when not NULL) or fill e. */
static int xfer_run(struct sk_client *c, struct xfer *x, json_t **answer, struct sk_client_error *e)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(x->h);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, NULL);
    int ret = -1;
    if (x->out_errno != 0) {
        sk_client_error_set(e, SK_EXIT_ERROR, "write the download: %s", strerror(x->out_errno));
    } else if (x->in_errno != 0) {
        sk_client_error_set(e, SK_EXIT_ERROR, "read the upload: %s", strerror(x->in_errno));
    } else if (x->too_large) {
        sk_client_error_set(e, SK_EXIT_ERROR, "the server's answer is larger than %u MiB", ANSWER_MAX >> 20);
    } else if (rc != CURLE_OK) {
        sk_client_error_from_curl(c, e, rc, errbuf);
    } else if (x->status / 100 != 2) {
        sk_client_error_from_answer(e, x->status, x->buf, x->len);
    } else if (answer != NULL && x->out_fd < 0) {
        json_error_t jerr;
        *answer = x->len > 0 ? json_loadb(x->buf, x->len, 0, &jerr) : json_object();
        if (*answer == NULL)
            sk_client_error_set(e, SK_EXIT_ERROR, "the server's answer is not JSON: %s", jerr.text);
        else
            ret = 0;
    } else {
        ret = 0;
    }
    free(x->buf);
    x->buf = NULL;
    return ret;
}

static void prepare(struct sk_client *c, struct xfer *x, const char *method, const char *path, bool raw)
{
    memset(x, 0, sizeof(*x));
    x->h = c->easy;
    x->out_fd = -1;
    x->in_fd = -1;
    curl_easy_reset(x->h);
    set_common(c, x->h, path, raw);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
    sk_log_debug("%s '%s%s'", method, c->base, path);
}

int sk_client_request_raw(struct sk_client *c, const char *method, const char *path, const void *body, size_t len,
                          json_t **answer, struct sk_client_error *e)
{
    struct xfer x;
    prepare(c, &x, method, path, true);
    if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(x.h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(x.h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body != NULL ? len : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(x.h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (answer != NULL)
        *answer = NULL;
    return xfer_run(c, &x, answer, e);
}

int sk_client_request(struct sk_client *c, const char *method, const char *path, const json_t *body, json_t **answer,
                      struct sk_client_error *e)
{
    _cleanup_free_ char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    struct xfer x;
    prepare(c, &x, method, path, false);
    if (text != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(x.h, CURLOPT_POSTFIELDS, text != NULL ? text : "");
        curl_easy_setopt(x.h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(text != NULL ? strlen(text) : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(x.h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (answer != NULL)
        *answer = NULL;
    return xfer_run(c, &x, answer, e);
}

int sk_client_download(struct sk_client *c, const char *path, int fd, uint64_t *bytes, struct sk_client_error *e)
{
    struct xfer x;
    prepare(c, &x, "GET", path, true);
    x.out_fd = fd;
    int ret = xfer_run(c, &x, NULL, e);
    if (bytes != NULL)
        *bytes = x.out_bytes;
    return ret;
}

int sk_client_upload_fn(struct sk_client *c, const char *method, const char *path, curl_read_callback fn, void *ctx,
                        json_t **answer, struct sk_client_error *e)
{
    struct xfer x;
    prepare(c, &x, method, path, true);
    curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x.h, CURLOPT_READFUNCTION, fn);
    curl_easy_setopt(x.h, CURLOPT_READDATA, ctx);
    if (strcmp(method, "PUT") != 0)
        curl_easy_setopt(x.h, CURLOPT_CUSTOMREQUEST, method);
    if (answer != NULL)
        *answer = NULL;
    return xfer_run(c, &x, answer, e);
}

int sk_client_upload(struct sk_client *c, const char *method, const char *path, int fd, int64_t size, json_t **answer,
                     struct sk_client_error *e)
{
    struct xfer x;
    prepare(c, &x, method, path, true);
    x.in_fd = fd;
    curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x.h, CURLOPT_READFUNCTION, xfer_read);
    curl_easy_setopt(x.h, CURLOPT_READDATA, &x);
    if (size >= 0)
        curl_easy_setopt(x.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    if (strcmp(method, "PUT") != 0)
        curl_easy_setopt(x.h, CURLOPT_CUSTOMREQUEST, method);
    if (answer != NULL)
        *answer = NULL;
    return xfer_run(c, &x, answer, e);
}

/* ---- pulled downloads --------------------------------------------------------------- */

#define PULL_BUFFER_MAX (256u << 10) /* curl is paused while this much waits */

struct sk_client_pull {
    struct sk_client *c;
    CURLM *multi;
    CURL *h;
    long status;
    char *buf; /* delivered, not yet handed out */
    size_t len, cap;
    char *out; /* handed out by the last read */
    size_t out_cap;
    bool paused, done;
    CURLcode rc;
    char errbuf[CURL_ERROR_SIZE];
};

static size_t pull_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct sk_client_pull *p = ud;
    size_t n = size * nmemb;
    if (p->status == 0)
        curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &p->status);
    if (p->status / 100 == 2 && p->len >= PULL_BUFFER_MAX) {
        p->paused = true;
        return CURL_WRITEFUNC_PAUSE; /* curl keeps it and delivers it again */
    }
    if (p->status / 100 != 2 && p->len + n > ANSWER_MAX)
        return 0;
    if (p->len + n > p->cap) {
        p->cap = (p->len + n) * 2;
        p->buf = xrealloc(p->buf, p->cap);
    }
    memcpy(p->buf + p->len, data, n);
    p->len += n;
    return n;
}

/* pull_step - let curl work until something arrives or the transfer ends. */
static int pull_step(struct sk_client_pull *p)
{
    int running = 0;
    if (curl_multi_perform(p->multi, &running) != CURLM_OK)
        return -1;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            p->done = true;
            p->rc = msg->data.result;
        }
    }
    if (!p->done && p->len == 0 && curl_multi_poll(p->multi, NULL, 0, 1000, NULL) != CURLM_OK)
        return -1;
    return 0;
}

static int pull_fail(struct sk_client_pull *p, struct sk_client_error *e)
{
    if (p->status == 0)
        curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &p->status);
    if (p->rc != CURLE_OK)
        sk_client_error_from_curl(p->c, e, p->rc, p->errbuf);
    else
        sk_client_error_from_answer(e, p->status, p->buf, p->len);
    return -1;
}

int sk_client_pull_open(struct sk_client *c, const char *path, struct sk_client_pull **out, struct sk_client_error *e)
{
    *out = NULL;
    struct sk_client_pull *p = xcalloc(1, sizeof(*p));
    p->c = c;
    p->multi = curl_multi_init();
    p->h = sk_client_easy_new(c, path, true);
    if (p->multi == NULL || p->h == NULL) {
        sk_client_pull_close(p);
        return sk_client_error_set(e, SK_EXIT_ERROR, "cannot initialise libcurl");
    }
    curl_easy_setopt(p->h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(p->h, CURLOPT_WRITEFUNCTION, pull_write);
    curl_easy_setopt(p->h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->h, CURLOPT_ERRORBUFFER, p->errbuf);
    curl_multi_add_handle(p->multi, p->h);
    sk_log_debug("GET '%s%s' (pulled)", c->base, path);
    /* wait for the answer to begin: its status decides */
    while (!p->done && p->len == 0)
        if (pull_step(p) < 0) {
            sk_client_pull_close(p);
            return sk_client_error_set(e, SK_EXIT_ERROR, "waiting for the server failed");
        }
    if (p->status == 0)
        curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &p->status);
    if (p->status / 100 != 2) {
        while (!p->done && pull_step(p) == 0)
            ;
        pull_fail(p, e);
        sk_client_pull_close(p);
        return -1;
    }
    if (p->done && p->rc != CURLE_OK) {
        pull_fail(p, e);
        sk_client_pull_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

ssize_t sk_client_pull_read(struct sk_client_pull *p, const void **data, struct sk_client_error *e)
{
    *data = NULL;
    if (p->len == 0 && p->paused) {
        p->paused = false;
        curl_easy_pause(p->h, CURLPAUSE_CONT);
    }
    while (p->len == 0 && !p->done)
        if (pull_step(p) < 0)
            return sk_client_error_set(e, SK_EXIT_ERROR, "waiting for the server failed");
    if (p->len == 0) {
        if (p->rc != CURLE_OK)
            return pull_fail(p, e);
        return 0;
    }
    /* hand the buffer out and keep the other one for what comes next */
    char *t = p->out;
    size_t tcap = p->out_cap;
    p->out = p->buf;
    p->out_cap = p->cap;
    p->buf = t;
    p->cap = tcap;
    ssize_t n = (ssize_t)p->len;
    p->len = 0;
    *data = p->out;
    return n;
}

const char *sk_client_pull_header(struct sk_client_pull *p, const char *name)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(p->h, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || h == NULL)
        return NULL;
    return h->value;
}

void sk_client_pull_close(struct sk_client_pull *p)
{
    if (p == NULL)
        return;
    if (p->h != NULL) {
        if (p->multi != NULL)
            curl_multi_remove_handle(p->multi, p->h);
        curl_easy_cleanup(p->h);
    }
    if (p->multi != NULL)
        curl_multi_cleanup(p->multi);
    free(p->buf);
    free(p->out);
    free(p);
}
