/* routes_ws.c - the interactive shell: a WebSocket (RFC 6455) attached to
 * a PTY exec, framed by wslay on skiffd's loop.
 *
 * GET /v1/sandboxes/{id}/execs/{exec}/attach with a WebSocket handshake
 * (Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Version: 13,
 * Sec-WebSocket-Key) and the usual bearer token. Query: ?offset=N (first
 * output byte to send, default 0: the whole screen history) and ?ping_ms=
 * (keepalive interval, default 20000, at least 50). The 101 answer carries
 * X-Skiff-Exec and X-Skiff-Offset like the output stream.
 *
 * Messages:
 *   client -> server  binary: bytes for the terminal (the exec's stdin)
 *                     text:   {"type":"resize","rows":R,"cols":C}
 *                             {"type":"eof"} (the terminal's ^D)
 *   server -> client  binary: terminal output, in order, from ?offset=
 *                     text:   {"type":"error","code":C,"message":M} when a
 *                             control message is refused (the session goes on)
 *                     text:   {"type":"exit","exit_code":N,"signal":S} once the
 *                             exec has ended and all its output was sent (null
 *                             for the one that does not apply), then a close
 *                             frame 1000
 * Keepalive: the server pings every ping_ms; when nothing at all (pong,
 * data, control) arrives from the client for 3 intervals it sends close
 * 1001 "keepalive timeout" and drops the connection. A client that answers
 * pings (every WebSocket client does) stays attached however long it idles.
 * Server shutdown sends close 1001 "server shutting down". Client messages
 * over 1 MiB get close 1009, unmasked client frames close 1002 (wslay).
 *
 * Closing the WebSocket (or losing it) never signals or kills the exec: it
 * runs on, its output keeps going to its file, and a new attach with
 * ?offset= set to the output bytes received so far resumes without loss or
 * duplicate. Several attachments to one exec may coexist: each follows the
 * output file on its own and each may type into the terminal.
 *
 * Output is read from the exec's output file only while wslay has less
 * than WS_QUEUE_HIGH bytes queued, so a slow client holds the daemon's
 * memory bounded; input waits in a bounded buffer while the exec's stdin
 * is full, and the socket is not read meanwhile.
 */
#include <errno.h>
#include <jansson.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "base/log.h"
#include "base/util.h"
#include "routes.h"
#include "routes_common.h"
#include "sched/sandboxes.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24    /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define WS_MSG_MAX (1024 * 1024)
#define WS_CHUNK (64 * 1024)          /* output bytes per binary frame; stdin bytes per write */
#define WS_QUEUE_HIGH (256 * 1024)    /* read no more output while this much waits for the socket */
#define WS_INPUT_MAX (2 * WS_MSG_MAX) /* input waiting for the exec's stdin (see ws_recv) */
#define WS_PING_DEFAULT_MS 20000
#define WS_PING_MIN_MS 50
#define WS_PING_MAX_MS 3600000
#define WS_PING_MISSES 3
#define WS_STDIN_RETRY_MS 20
#define WS_LINGER_MS 2000 /* wait this long for the client's close frame */

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_INTERNAL 1011

struct ws_session {
    struct sk_daemon *d;
    char *exec_id;
    struct sk_http_upgraded *up; /* NULL until the 101 went out */
    int fd;                      /* the socket: the HTTP server's, never closed here */
    struct sk_loop_watch *watch;
    uint32_t events;
    wslay_event_context_ptr ws;
    char *extra; /* bytes the client sent before the 101, read first */
    size_t extra_len, extra_off;

    int out_fd;       /* the exec's output file */
    uint64_t pos;     /* next output byte to send */
    bool ended;       /* the exec has ended: its output file is complete */
    bool exit_queued; /* the exit message: the close follows once it is sent */
    uint64_t watcher;
    char *buf; /* WS_CHUNK bytes for reading output */

    char *in_buf; /* input the exec's stdin could not take yet */
    size_t in_len, in_cap;
    bool in_eof; /* an eof follows in_buf */

    int64_t ping_ms;
    int64_t last_rx_ns;
    bool drop_after_close; /* the client is gone quiet: do not wait for its close */
    bool finished;         /* the connection is given back; only freeing is left */
    int busy;              /* our callbacks on the stack: free when the last returns */
    struct sk_loop_timer ping_timer, retry_timer, linger_timer;
    struct sk_loop_deferred kick;
};

static void ws_service(struct ws_session *s);

/* ---- handshake ---------------------------------------------------------------- */

/* has_token - whether the comma-separated header value `list` holds
 * `token` (case-insensitive), as Connection and Upgrade are written. */
static bool has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p != '\0') {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p += n;
    }
    return false;
}

/* ws_accept_key - Sec-WebSocket-Accept for a client's key: base64 of the
 * SHA-1 of the key and the protocol's GUID (RFC 6455, 4.2.2). Returns -1
 * when the key is not 16 bytes in base64. */
static int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
    size_t len = strlen(key);
    if (len != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return -1;
    for (size_t i = 0; i < 22; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return -1;
    }
    struct base64_decode_ctx b64;
    uint8_t raw[BASE64_DECODE_LENGTH(WS_KEY_LEN)];
    size_t raw_len = sizeof(raw);
    base64_decode_init(&b64);
    if (!base64_decode_update(&b64, &raw_len, raw, len, key) || !base64_decode_final(&b64) || raw_len != 16)
        return -1;

    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, len, (const uint8_t *)key);
    sha1_update(&sha, strlen(WS_GUID), (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof(digest), digest);
    base64_encode_raw(out, sizeof(digest), digest);
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

/* check_handshake - the request is a WebSocket opening handshake we speak;
 * otherwise answers 400 and returns -1. */
static int check_handshake(struct sk_http_req *req, char accept[WS_ACCEPT_LEN + 1])
{
    if (strcmp(req->method, "GET") != 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "a WebSocket handshake is a GET request, not '%.16s'",
                                req->method);
        return -1;
    }
    const char *upgrade = sk_http_header(req, "Upgrade");
    const char *connection = sk_http_header(req, "Connection");
    if (upgrade == NULL || !has_token(upgrade, "websocket") || connection == NULL ||
        !has_token(connection, "upgrade")) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "attach needs a WebSocket handshake (headers 'Upgrade: websocket' and 'Connection: "
                                "Upgrade')");
        return -1;
    }
    const char *version = sk_http_header(req, "Sec-WebSocket-Version");
    if (version == NULL || strcmp(version, "13") != 0) {
        sk_http_set_header(req, "Sec-WebSocket-Version", "13");
        sk_http_reply_api_error(
            req, SK_API_INVALID_ARGUMENT,
            "WebSocket version '%.32s' is not supported (header 'Sec-WebSocket-Version' must be 13)",
            version != NULL ? version : "");
        return -1;
    }
    const char *key = sk_http_header(req, "Sec-WebSocket-Key");
    if (key == NULL) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "missing header 'Sec-WebSocket-Key'");
        return -1;
    }
    if (ws_accept_key(key, accept) < 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "header 'Sec-WebSocket-Key' must be 16 bytes in base64 (24 characters)");
        return -1;
    }
    return 0;
}

/* ---- session life cycle ---------------------------------------------------- */

static void ws_free(struct ws_session *s)
{
    if (s->ws != NULL)
        wslay_event_context_free(s->ws);
    sk_close(&s->out_fd);
    free(s->exec_id);
    free(s->extra);
    free(s->buf);
    free(s->in_buf);
    free(s);
}

/* Every entry from the loop or the server brackets itself with ws_enter /
 * ws_leave; a finished session is freed when the outermost one returns, so
 * nothing on the stack (wslay included) touches freed memory. */
static void ws_enter(struct ws_session *s)
{
    s->busy++;
}

static void ws_leave(struct ws_session *s)
{
    if (--s->busy == 0 && s->finished)
        ws_free(s);
}

/* ws_finish - give the connection back (the server closes the socket) and
 * stop everything that could call us; ws_leave frees. Never signals the
 * exec: a closed terminal leaves it running. */
static void ws_finish(struct ws_session *s)
{
    struct sk_loop *loop = s->d->loop;
    if (!s->finished) {
        s->finished = true;
        sk_loop_watch_remove(loop, s->watch);
        s->watch = NULL;
        sk_loop_timer_stop(loop, &s->ping_timer);
        sk_loop_timer_stop(loop, &s->retry_timer);
        sk_loop_timer_stop(loop, &s->linger_timer);
        sk_loop_defer_cancel(loop, &s->kick);
        if (s->watcher != 0)
            sk_sched_exec_watch_cancel(s->d->sched, s->watcher);
        s->watcher = 0;
        sk_log_debug("attach to exec '%s' closed at output offset %llu", s->exec_id, (unsigned long long)s->pos);
        sk_http_upgraded_close(s->up);
        s->up = NULL;
    }
}

static void on_kick(struct sk_loop *loop, void *ctx)
{
    (void)loop;
    struct ws_session *s = ctx;
    ws_enter(s);
    ws_service(s);
    ws_leave(s);
}

/* ws_kick - service the session once the current callbacks returned (from
 * inside wslay's callbacks nothing may be sent). */
static void ws_kick(struct ws_session *s)
{
    if (!s->finished)
        sk_loop_defer(s->d->loop, &s->kick, on_kick, s);
}

/* ws_close - queue a close frame; the connection ends once the client
 * answers it or WS_LINGER_MS have passed. wslay sends control frames ahead
 * of queued messages and nothing after a close: what must arrive first
 * (the exit message) has to be sent before this is called. */
static void ws_close(struct ws_session *s, uint16_t code, const char *reason)
{
    if (s->finished || wslay_event_get_close_sent(s->ws))
        return;
    wslay_event_queue_close(s->ws, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    sk_loop_timer_stop(s->d->loop, &s->ping_timer);
    if (!sk_loop_timer_is_active(&s->linger_timer))
        sk_loop_timer_start(s->d->loop, &s->linger_timer, WS_LINGER_MS);
    ws_kick(s);
}

static void queue_text(struct ws_session *s, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        abort(); /* only on out-of-memory: jansson allocates through xmalloc */
    struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = strlen(text)};
    wslay_event_queue_msg(s->ws, &m);
    free(text);
}

static void queue_error(struct ws_session *s, enum sk_api_code code, const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("error"));
    json_object_set_new(o, "code", json_string(sk_api_code_name(code)));
    json_object_set_new(o, "message", sk_json_string_lossy(msg, strlen(msg)));
    queue_text(s, o);
}

/* ---- output: the exec's file to binary frames --------------------------------- */

static void queue_exit(struct ws_session *s)
{
    struct sk_error err = {0};
    struct sk_exec_rec rec;
    memset(&rec, 0, sizeof(rec));
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("exit"));
    if (sk_store_exec_get(s->d->store, s->exec_id, &rec, &err) == 0) {
        json_object_set_new(o, "exit_code", rec.exit_code >= 0 ? json_integer(rec.exit_code) : json_null());
        json_object_set_new(o, "signal", rec.signal > 0 ? json_integer(rec.signal) : json_null());
        sk_exec_rec_release(&rec);
    } else {
        sk_log_warn("exec '%s' ended but its record cannot be read: %s", s->exec_id, err.msg);
        json_object_set_new(o, "exit_code", json_null());
        json_object_set_new(o, "signal", json_null());
    }
    queue_text(s, o);
    s->exit_queued = true;
}

/* pump_output - queue output frames while the send queue has room; after
 * the last byte of an ended exec, the exit message and the close. */
static void pump_output(struct ws_session *s)
{
    while (!s->exit_queued && !wslay_event_get_close_sent(s->ws) &&
           wslay_event_get_queued_msg_length(s->ws) < WS_QUEUE_HIGH) {
        /* `ended` is read before the file: once set, a short read is the end */
        bool ended = s->ended;
        ssize_t n = pread(s->out_fd, s->buf, WS_CHUNK, (off_t)s->pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sk_log_error("exec '%s': read output at %llu: %s", s->exec_id, (unsigned long long)s->pos, strerror(errno));
            ws_close(s, WS_CLOSE_INTERNAL, "cannot read the output");
            return;
        }
        if (n == 0) {
            if (ended)
                queue_exit(s);
            return;
        }
        struct wslay_event_msg m = {
            .opcode = WSLAY_BINARY_FRAME, .msg = (const uint8_t *)s->buf, .msg_length = (size_t)n};
        if (wslay_event_queue_msg(s->ws, &m) != 0)
            return;
        s->pos += (uint64_t)n;
    }
}

static void on_exec_event(void *arg, const struct sk_exec_rec *rec, bool ended)
{
    (void)rec;
    struct ws_session *s = arg;
    if (ended) {
        s->ended = true;
        s->watcher = 0;
    }
    ws_enter(s);
    ws_service(s);
    ws_leave(s);
}

/* ---- input: binary frames to stdin, text frames to control ------------------- */

/* stdin_write - hand data to the exec's stdin in pieces it can take.
 * Returns how many bytes it took; stops early when its buffer is full. */
static size_t stdin_write(struct ws_session *s, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < WS_CHUNK ? len - done : WS_CHUNK;
        struct sk_error err = {0};
        if (sk_sched_exec_stdin(s->d->sched, s->exec_id, data + done, n, false, &err) == 0) {
            done += n;
            continue;
        }
        if (err.code == EAGAIN)
            return done;
        /* the process closed its terminal or is gone: what it never reads is dropped */
        sk_log_debug("attach to exec '%s': input dropped: %s", s->exec_id, err.msg);
        return len;
    }
    return done;
}

static void send_eof(struct ws_session *s)
{
    struct sk_error err = {0};
    if (sk_sched_exec_stdin(s->d->sched, s->exec_id, NULL, 0, true, &err) < 0)
        sk_log_debug("attach to exec '%s': eof dropped: %s", s->exec_id, err.msg);
}

/* flush_input - retry input that waited for room; true when none is left. */
static bool flush_input(struct ws_session *s)
{
    if (s->in_len > 0) {
        size_t n = stdin_write(s, s->in_buf, s->in_len);
        memmove(s->in_buf, s->in_buf + n, s->in_len - n);
        s->in_len -= n;
    }
    if (s->in_len > 0)
        return false;
    if (s->in_eof) {
        s->in_eof = false;
        send_eof(s);
    }
    return true;
}

static void take_input(struct ws_session *s, const char *data, size_t len)
{
    if (s->in_len == 0 && !s->in_eof) {
        size_t n = stdin_write(s, data, len);
        data += n;
        len -= n;
        if (len == 0)
            return;
    }
    if (s->in_len + len > WS_INPUT_MAX) {
        /* cannot happen while the socket is not read with input waiting */
        ws_close(s, WS_CLOSE_INTERNAL, "input overflow");
        return;
    }
    if (s->in_len + len > s->in_cap) {
        s->in_cap = s->in_len + len;
        s->in_buf = xrealloc(s->in_buf, s->in_cap);
    }
    memcpy(s->in_buf + s->in_len, data, len);
    s->in_len += len;
    if (!sk_loop_timer_is_active(&s->retry_timer))
        sk_loop_timer_start(s->d->loop, &s->retry_timer, WS_STDIN_RETRY_MS);
}

static void take_control(struct ws_session *s, const char *text, size_t len)
{
    struct sk_error err = {0};
    enum sk_api_code code = SK_API_INVALID_ARGUMENT;
    json_t *root = NULL;
    const char *type = NULL;
    if (sk_json_parse(text, len, &root, &code, &err) < 0) {
        queue_error(s, code, err.msg);
        return;
    }
    const json_t *t = json_object_get(root, "type");
    type = json_is_string(t) ? json_string_value(t) : NULL;
    if (type != NULL && strcmp(type, "resize") == 0) {
        int64_t rows = 0, cols = 0;
        const struct sk_field fields[] = {
            SK_FIELD_STR("type", &type, SK_REQUIRED, 16),
            SK_FIELD_INT("rows", &rows, SK_REQUIRED, 1, 65535),
            SK_FIELD_INT("cols", &cols, SK_REQUIRED, 1, 65535),
        };
        if (sk_json_decode(root, fields, SK_ARRAY_SIZE(fields), &code, &err) < 0)
            queue_error(s, code, err.msg);
        else if (sk_sched_exec_resize(s->d->sched, s->exec_id, (uint16_t)rows, (uint16_t)cols, &err) < 0)
            queue_error(s, sk_api_code_from_errno(err.code), err.msg);
    } else if (type != NULL && strcmp(type, "eof") == 0) {
        const struct sk_field fields[] = {SK_FIELD_STR("type", &type, SK_REQUIRED, 16)};
        if (sk_json_decode(root, fields, SK_ARRAY_SIZE(fields), &code, &err) < 0)
            queue_error(s, code, err.msg);
        else if (s->in_len > 0)
            s->in_eof = true; /* after the input still waiting */
        else
            send_eof(s);
    } else {
        queue_error(s, SK_API_INVALID_ARGUMENT,
                    "a text message must be JSON with 'type' \"resize\" or \"eof\" (terminal input goes in binary "
                    "messages)");
    }
    json_decref(root);
}

/* ---- wslay callbacks (no sending from here: ws_kick) ------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
    (void)flags;
    struct ws_session *s = user_data;
    if (s->in_len > 0 || s->in_eof) {
        /* The exec's stdin is full: leave the rest in the socket (the
         * client's sends block) until it drains. */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (s->extra_off < s->extra_len) {
        size_t n = s->extra_len - s->extra_off < len ? s->extra_len - s->extra_off : len;
        memcpy(buf, s->extra + s->extra_off, n);
        s->extra_off += n;
        return (ssize_t)n;
    }
    ssize_t n = SK_RETRY_EINTR(recv(s->fd, buf, len, 0));
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    /* 0: the client closed its end; or a reset */
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    struct ws_session *s = user_data;
    int sflags = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);
    ssize_t n = SK_RETRY_EINTR(send(s->fd, data, len, sflags));
    if (n >= 0)
        return n;
    wslay_event_set_error(ctx,
                          errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    (void)ctx;
    struct ws_session *s = user_data;
    s->last_rx_ns = sk_now_ns();
    if (s->finished)
        return;
    switch (arg->opcode) {
    case WSLAY_BINARY_FRAME: take_input(s, (const char *)arg->msg, arg->msg_length); break;
    case WSLAY_TEXT_FRAME: take_control(s, (const char *)arg->msg, arg->msg_length); break;
    default: break; /* ping (wslay answers), pong, close (wslay answers) */
    }
    ws_kick(s);
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv,
    .send_callback = ws_send,
    .on_msg_recv_callback = ws_on_msg,
};

/* ---- the loop's side --------------------------------------------------------- */

/* can_read - wslay wants client data and the exec's stdin can take it. */
static bool can_read(const struct ws_session *s)
{
    return wslay_event_want_read(s->ws) && s->in_len == 0 && !s->in_eof;
}

/* is_draining - our close frame is out but wslay reads no more (it failed
 * the connection: a protocol error, a message too big): read and drop
 * what the client still sends until it closes, so that closing the socket
 * with unread data (a TCP reset) cannot destroy the close frame on its
 * way. */
static bool is_draining(const struct ws_session *s)
{
    return wslay_event_get_close_sent(s->ws) && !wslay_event_get_close_received(s->ws) && !wslay_event_want_read(s->ws);
}

static void drain(struct ws_session *s)
{
    char junk[4096];
    for (;;) {
        ssize_t n = SK_RETRY_EINTR(recv(s->fd, junk, sizeof(junk), 0));
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        ws_finish(s); /* the client closed too */
        return;
    }
}

static int ws_send_queued(struct ws_session *s)
{
    if (wslay_event_want_write(s->ws) && wslay_event_send(s->ws) != 0)
        return -1;
    /* the exit message is out: now the close may go */
    if (s->exit_queued && !wslay_event_get_close_sent(s->ws) && wslay_event_get_queued_msg_count(s->ws) == 0) {
        ws_close(s, WS_CLOSE_NORMAL, NULL);
        if (wslay_event_send(s->ws) != 0)
            return -1;
    }
    return 0;
}

/* ws_service - queue what output there is room for, send what the socket
 * takes, and watch the socket for what wslay wants next; end the
 * connection once both sides are done. */
static void ws_service(struct ws_session *s)
{
    if (s->finished || s->ws == NULL)
        return;
    /* early bytes held back while input waited are not in the socket */
    if (s->extra_off < s->extra_len && can_read(s) && wslay_event_recv(s->ws) != 0) {
        ws_finish(s);
        return;
    }
    pump_output(s);
    if (ws_send_queued(s) < 0) {
        ws_finish(s);
        return;
    }
    bool want_write = wslay_event_want_write(s->ws);
    bool close_sent = wslay_event_get_close_sent(s->ws);
    if (close_sent && !want_write && (wslay_event_get_close_received(s->ws) || s->drop_after_close)) {
        ws_finish(s); /* the closing handshake is complete, or the client gone quiet */
        return;
    }
    bool draining = is_draining(s);
    if (draining && !sk_loop_timer_is_active(&s->linger_timer)) {
        /* our FIN after the close frame tells the client to close too */
        shutdown(s->fd, SHUT_WR);
        sk_loop_timer_start(s->d->loop, &s->linger_timer, WS_LINGER_MS);
    }
    if (!wslay_event_want_read(s->ws) && !want_write && !draining) {
        ws_finish(s);
        return;
    }
    uint32_t events = (draining || can_read(s) ? SK_LOOP_READ : 0) | (want_write ? SK_LOOP_WRITE : 0);
    if (events != s->events) {
        struct sk_error err = {0};
        if (sk_loop_watch_modify(s->d->loop, s->watch, events, &err) < 0) {
            sk_log_error("attach to exec '%s': %s", s->exec_id, err.msg);
            ws_finish(s);
            return;
        }
        s->events = events;
    }
}

static void on_socket(struct sk_loop *loop, int fd, uint32_t events, void *ctx)
{
    (void)loop;
    (void)fd;
    struct ws_session *s = ctx;
    if (s->finished)
        return;
    ws_enter(s);
    if ((events & (SK_LOOP_READ | EPOLLHUP | EPOLLERR)) && is_draining(s)) {
        drain(s);
    } else if ((events & (SK_LOOP_READ | EPOLLHUP | EPOLLERR)) && can_read(s)) {
        if (wslay_event_recv(s->ws) != 0)
            ws_finish(s);
    } else if (events & (EPOLLHUP | EPOLLERR)) {
        /* reported even when not asked for: the connection is gone */
        ws_finish(s);
    }
    ws_service(s); /* no-op once finished */
    ws_leave(s);
}

static void on_ping_timer(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)t;
    struct ws_session *s = ctx;
    int64_t now = sk_now_ns();
    if (s->in_len > 0)
        s->last_rx_ns = now; /* the client is not read while its input waits */
    if (now - s->last_rx_ns >= (int64_t)WS_PING_MISSES * s->ping_ms * 1000000) {
        sk_log_info("attach to exec '%s': no answer to %d pings, closing", s->exec_id, WS_PING_MISSES);
        s->drop_after_close = true;
        ws_close(s, WS_CLOSE_GOING_AWAY, "keepalive timeout");
        return;
    }
    struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
    wslay_event_queue_msg(s->ws, &ping);
    sk_loop_timer_start(loop, &s->ping_timer, s->ping_ms);
    ws_enter(s);
    ws_service(s);
    ws_leave(s);
}

static void on_retry_timer(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    struct ws_session *s = ctx;
    ws_enter(s);
    if (!flush_input(s))
        sk_loop_timer_start(loop, t, WS_STDIN_RETRY_MS);
    else
        ws_service(s); /* read the socket again */
    ws_leave(s);
}

static void on_linger_timer(struct sk_loop *loop, struct sk_loop_timer *t, void *ctx)
{
    (void)loop;
    (void)t;
    struct ws_session *s = ctx;
    ws_enter(s);
    ws_finish(s);
    ws_leave(s);
}

/* ---- the HTTP server's side ---------------------------------------------------- */

static void ws_started(struct sk_http_upgraded *up, int fd, const char *extra, size_t extra_len, void *ctx)
{
    struct ws_session *s = ctx;
    struct sk_error err = {0};
    ws_enter(s);
    s->up = up;
    s->fd = fd;
    if (extra_len > 0) {
        s->extra = xmalloc(extra_len);
        memcpy(s->extra, extra, extra_len);
        s->extra_len = extra_len;
    }
    if (wslay_event_context_server_init(&s->ws, &ws_callbacks, s) != 0)
        abort(); /* out of memory */
    wslay_event_config_set_max_recv_msg_length(s->ws, WS_MSG_MAX);
    s->events = SK_LOOP_READ;
    if (sk_loop_watch_add(s->d->loop, fd, s->events, on_socket, s, &s->watch, &err) < 0 ||
        sk_sched_exec_watch(s->d->sched, s->exec_id, 0, true, on_exec_event, s, &s->watcher, &err) < 0) {
        sk_log_warn("attach to exec '%s': %s", s->exec_id, err.msg);
        ws_finish(s);
        ws_leave(s);
        return;
    }
    sk_log_debug("attach to exec '%s' from output offset %llu (%zu bytes came early)", s->exec_id,
                 (unsigned long long)s->pos, extra_len);
    s->last_rx_ns = sk_now_ns();
    sk_loop_timer_start(s->d->loop, &s->ping_timer, s->ping_ms);
    /* bytes the client sent early are in `extra`, not in the socket */
    if (extra_len > 0 && wslay_event_recv(s->ws) != 0)
        ws_finish(s);
    ws_kick(s);
    ws_leave(s);
}

static void ws_stop(struct sk_http_upgraded *up, bool now, void *ctx)
{
    (void)up;
    struct ws_session *s = ctx;
    ws_enter(s);
    if (now) {
        ws_finish(s); /* freed right below: the server wants it gone */
    } else {
        s->drop_after_close = true;
        ws_close(s, WS_CLOSE_GOING_AWAY, "server shutting down");
    }
    ws_leave(s);
}

static const struct sk_http_upgrade_ops ws_ops = {.started = ws_started, .stop = ws_stop};

/* the 101 was never sent (the client left, the server stops) */
static void ws_req_closed(struct sk_http_req *req, void *ctx)
{
    (void)req;
    ws_free(ctx);
}

void sk_route_execs_attach(struct sk_daemon *d, struct sk_http_req *req)
{
    char accept[WS_ACCEPT_LEN + 1];
    int64_t offset = 0, ping_ms = WS_PING_DEFAULT_MS;
    if (check_handshake(req, accept) < 0 || sk_http_query_int(req, "offset", 0, INT64_MAX / 2, 0, &offset) < 0 ||
        sk_http_query_int(req, "ping_ms", WS_PING_MIN_MS, WS_PING_MAX_MS, WS_PING_DEFAULT_MS, &ping_ms) < 0)
        return;
    struct sk_exec_rec e;
    if (sk_route_get_exec(d, req, &e) < 0)
        return;
    if (!e.pty) {
        sk_http_reply_api_error(req, SK_API_FAILED_PRECONDITION,
                                "exec '%s' has no terminal: attach needs an exec started with \"pty\": true", e.id);
        sk_exec_rec_release(&e);
        return;
    }
    struct sk_error err = {0};
    struct ws_session *s = xcalloc(1, sizeof(*s));
    s->d = d;
    s->fd = -1;
    s->exec_id = xstrdup(e.id);
    s->pos = (uint64_t)offset;
    s->ping_ms = ping_ms;
    s->buf = xmalloc(WS_CHUNK);
    sk_loop_timer_init(&s->ping_timer, on_ping_timer, s);
    sk_loop_timer_init(&s->retry_timer, on_retry_timer, s);
    sk_loop_timer_init(&s->linger_timer, on_linger_timer, s);
    sk_exec_rec_release(&e);
    if (sk_sched_exec_output(d->sched, s->exec_id, "stdout", &s->out_fd, NULL, &err) < 0) {
        ws_free(s);
        sk_http_reply_error(req, &err);
        return;
    }
    char off[32];
    snprintf(off, sizeof(off), "%lld", (long long)offset);
    sk_http_set_header(req, "Sec-WebSocket-Accept", accept);
    sk_http_set_header(req, "X-Skiff-Exec", s->exec_id);
    sk_http_set_header(req, "X-Skiff-Offset", off);
    sk_http_on_close(req, ws_req_closed, s);
    sk_http_reply_upgrade(req, "websocket", &ws_ops, s);
}
