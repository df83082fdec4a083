/* client.h - the skiff CLI's HTTP client for the skiffd API, on libcurl.
 *
 * Where the server and the token come from, in order: the --url/--token
 * options, $SKIFF_URL/$SKIFF_TOKEN, the config file ($SKIFF_CONFIG, else
 * $XDG_CONFIG_HOME/skiff/config, else ~/.config/skiff/config) with lines
 *
 *     url = http://127.0.0.1:7433
 *     token = skf_...              # or: token_file = ~/skiff.token
 *
 * and for the URL finally http://127.0.0.1:7433. A URL `unix:/PATH` talks
 * HTTP over that Unix socket.
 *
 * Errors are a `struct sk_client_error`: the API's stable code (or "" for a
 * local or transport failure), a message for people, and the exit code the
 * command should end with (the table in cli.h). Single-threaded.
 */
#ifndef SK_CLI_CLIENT_H
#define SK_CLI_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli.h"

#define SK_CLIENT_DEFAULT_URL "http://127.0.0.1:7433"

struct sk_client_error {
    int status;     /* HTTP status; 0 when no answer arrived */
    int exit_code;  /* what the command exits with (SK_EXIT_*) */
    char code[48];  /* the API's error code ("not_found"), or "" */
    char msg[1024]; /* lowercase, no full stop */
};

struct sk_client {
    char *base;       /* "http://host:port" without a trailing '/' */
    char *unix_path;  /* for unix: URLs, else NULL */
    char *token;      /* never printed */
    char *token_from; /* where the token came from, for messages */
    CURL *easy;       /* reused for one-shot requests (keep-alive) */
    struct curl_slist *hdr_json, *hdr_raw;
};

/* sk_client_open - resolve the URL and token (see above) and get ready.
 * Fails with exit code SK_EXIT_USAGE when no token is configured or the
 * configuration is malformed. Release with sk_client_close. */
int sk_client_open(struct sk_client *c, const struct sk_cli *g, struct sk_client_error *e);
void sk_client_close(struct sk_client *c);

/* sk_client_connect - sk_client_open, reporting a failure on stderr.
 * Returns 0, or the exit code to end with. */
int sk_client_connect(struct sk_client *c, const struct sk_cli *g);

/* sk_client_report - print "skiff: <message> (<code>)" on stderr, with a
 * hint for a refused token (c may be NULL). Returns e->exit_code. */
int sk_client_report(const struct sk_client *c, const struct sk_client_error *e);

/* sk_client_error_set - a local failure with this exit code. Returns -1. */
int sk_client_error_set(struct sk_client_error *e, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sk_client_error_from_answer - fill e from a non-2xx answer (its body). */
void sk_client_error_from_answer(struct sk_client_error *e, long status, const char *body, size_t len);

/* sk_client_error_from_curl - fill e from a transport failure. */
void sk_client_error_from_curl(const struct sk_client *c, struct sk_client_error *e, CURLcode rc, const char *detail);

/* sk_client_escape - percent-encode s for a path segment or query value
 * ('/' is kept when keep_slash). The caller frees the result. */
char *sk_client_escape(const char *s, bool keep_slash);

/* sk_client_request - METHOD path (starting "/v1/...", already escaped)
 * with an optional JSON body. On a 2xx answer *answer (when not NULL)
 * holds the decoded JSON (the caller json_decref's it). Returns 0 or -1. */
int sk_client_request(struct sk_client *c, const char *method, const char *path, const json_t *body, json_t **answer,
                      struct sk_client_error *e);

/* sk_client_request_raw - the same with a body of raw bytes (NULL: none). */
int sk_client_request_raw(struct sk_client *c, const char *method, const char *path, const void *body, size_t len,
                          json_t **answer, struct sk_client_error *e);

/* sk_client_download - GET path and write the answer's body to fd. *bytes
 * (may be NULL) is what was written. A write failure on fd fails with exit
 * code SK_EXIT_ERROR. Returns 0 or -1. */
int sk_client_download(struct sk_client *c, const char *path, int fd, uint64_t *bytes, struct sk_client_error *e);

/* sk_client_upload - METHOD path with the body read from fd: `size` bytes,
 * or until EOF (chunked) when size < 0. The JSON answer as for
 * sk_client_request. Returns 0 or -1. */
int sk_client_upload(struct sk_client *c, const char *method, const char *path, int fd, int64_t size, json_t **answer,
                     struct sk_client_error *e);

/* sk_client_upload_fn - the same with the body produced by `fn` (curl's
 * read callback: bytes written to buf, 0 at the end, CURL_READFUNC_ABORT
 * to give up) and sent chunked. */
int sk_client_upload_fn(struct sk_client *c, const char *method, const char *path, curl_read_callback fn, void *ctx,
                        json_t **answer, struct sk_client_error *e);

/* sk_client_pull - a GET whose body the caller pulls piece by piece (for a
 * consumer that wants to read, like libarchive), with a bounded buffer. */
struct sk_client_pull;

/* sk_client_pull_open - GET path and wait for the answer to begin; a non-2xx
 * answer fails with its error. Close with sk_client_pull_close. */
int sk_client_pull_open(struct sk_client *c, const char *path, struct sk_client_pull **out, struct sk_client_error *e);
/* sk_client_pull_read - the next piece of the body in *data (valid until the
 * next call); 0 at its end, -1 when the transfer failed (e set; a body cut
 * short is a failure). */
ssize_t sk_client_pull_read(struct sk_client_pull *p, const void **data, struct sk_client_error *e);
/* sk_client_pull_header - a response header's value, or NULL. */
const char *sk_client_pull_header(struct sk_client_pull *p, const char *name);
void sk_client_pull_close(struct sk_client_pull *p);

/* sk_client_easy_new - a fresh handle for path with the URL, the token and
 * the connection options set; for transfers driven by a curl multi handle.
 * The caller sets the method, callbacks and body, and frees it with
 * curl_easy_cleanup. `raw` picks an octet-stream Content-Type over JSON. */
CURL *sk_client_easy_new(struct sk_client *c, const char *path, bool raw);

/* sk_write_full - write all of buf to fd, waiting while it would block
 * (a non-blocking terminal) and retrying on EINTR. Returns 0 or -1. */
int sk_write_full(int fd, const void *buf, size_t len);

#endif
