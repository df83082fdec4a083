/* follow.c - follow output streams, forward stdin, resizes and signals. */
#include "follow.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define RETRY_MAX 40                   /* consecutive failed connections per stream */
#define RETRY_BASE_NS 100000000LL      /* 100 ms, doubling ... */
#define RETRY_CAP_NS 2000000000LL      /* ... up to 2 s */
#define STDIN_FULL_RETRY_NS 50000000LL /* the server's stdin buffer is full */
#define STDIN_CHUNK 65536
#define ERROR_BODY_MAX 65536

enum job_kind { JOB_STREAM, JOB_STDIN, JOB_CONTROL };

/* Every transfer in the multi handle points (CURLOPT_PRIVATE) at a job. */
struct job {
    enum job_kind kind;
    CURL *h; /* in flight, or NULL */
    long status;
    char *body; /* an error answer */
    size_t body_len;
    char curl_err[CURL_ERROR_SIZE];
};

struct stream {
    struct job job;
    const char *name;
    int fd;
    uint64_t offset;     /* bytes delivered to fd: where a new connection resumes */
    uint64_t conn_bytes; /* on the current connection */
    bool done;
    bool sink_dead;      /* fd is gone (EPIPE): the rest is read and dropped */
    uint64_t drop_after; /* SKIFF_STREAM_DROP_AFTER, or 0 */
    bool drop_now;       /* ... and this connection had enough */
    int attempts;        /* connections in a row that brought nothing */
    int64_t retry_at;
};

struct pump {
    struct job job;
    int fd;
    bool read_done; /* EOF (or a read error) on fd */
    bool closed;    /* nothing more is sent */
    bool eof_sent_in_flight;
    char buf[STDIN_CHUNK];
    size_t len;
    int attempts;
    int64_t retry_at;
};

/* control - a fire-and-forget request (signal, resize). */
struct control {
    struct job job;
    char *payload;
    struct control *next;
};

struct follower {
    struct sk_client *c;
    const struct sk_follow_opts *o;
    CURLM *multi;
    struct stream streams[2];
    size_t n_streams;
    struct pump pump;
    struct control *controls;
    uint64_t drop_after;
    int interrupts;
};

static size_t job_body(struct job *j, const char *data, size_t n)
{
    if (j->body_len + n > ERROR_BODY_MAX)
        n = ERROR_BODY_MAX - j->body_len;
    j->body = xrealloc(j->body, j->body_len + n + 1);
    memcpy(j->body + j->body_len, data, n);
    j->body_len += n;
    j->body[j->body_len] = '\0';
    return n;
}

static size_t job_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct job *j = ud;
    size_t n = size * nmemb;
    job_body(j, data, n);
    return n;
}

static size_t stream_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct stream *s = ud;
    size_t n = size * nmemb;
    if (s->job.status == 0)
        curl_easy_getinfo(s->job.h, CURLINFO_RESPONSE_CODE, &s->job.status);
    if (s->job.status != 200) {
        job_body(&s->job, data, n);
        return n;
    }
    if (!s->sink_dead && sk_write_full(s->fd, data, n) < 0)
        s->sink_dead = true; /* our reader went away: keep draining */
    s->offset += n;
    s->conn_bytes += n;
    if (s->drop_after > 0 && s->conn_bytes >= s->drop_after) {
        /* testing: end this connection here; what was written is counted */
        s->drop_now = true;
        return 0;
    }
    return n;
}

static void job_reset(struct job *j)
{
    free(j->body);
    j->body = NULL;
    j->body_len = 0;
    j->status = 0;
    j->curl_err[0] = '\0';
}

static void job_finish(struct follower *f, struct job *j)
{
    if (j->h != NULL) {
        curl_multi_remove_handle(f->multi, j->h);
        curl_easy_cleanup(j->h);
        j->h = NULL;
    }
}

static int job_start(struct follower *f, struct job *j, CURL *h)
{
    job_reset(j);
    j->h = h;
    curl_easy_setopt(h, CURLOPT_PRIVATE, j);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->curl_err);
    if (curl_multi_add_handle(f->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        j->h = NULL;
        return -1;
    }
    return 0;
}

static int stream_start(struct follower *f, struct stream *s, struct sk_client_error *e)
{
    _cleanup_free_ char *path = xasprintf("%s?stream=%s&offset=%llu&follow=%d", f->o->output_path, s->name,
                                          (unsigned long long)s->offset, f->o->follow ? 1 : 0);
    CURL *h = sk_client_easy_new(f->c, path, true);
    if (h == NULL)
        return sk_client_error_set(e, SK_EXIT_ERROR, "cannot create a transfer");
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, stream_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    if (f->drop_after > 0)
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 1024L); /* the smallest curl allows */
    s->conn_bytes = 0;
    s->drop_now = false;
    if (job_start(f, &s->job, h) < 0)
        return sk_client_error_set(e, SK_EXIT_ERROR, "cannot start a transfer");
    sk_log_debug("stream '%s' from offset %llu", s->name, (unsigned long long)s->offset);
    return 0;
}

static int64_t backoff_ns(int attempts)
{
    int64_t d = RETRY_BASE_NS;
    for (int i = 1; i < attempts && d < RETRY_CAP_NS; i++)
        d *= 2;
    return d < RETRY_CAP_NS ? d : RETRY_CAP_NS;
}

/* stream_done - a stream's connection ended: finished, or resume later. */
static int stream_done(struct follower *f, struct stream *s, CURLcode rc, struct sk_client_error *e)
{
    long status = s->job.status;
    if (status == 0)
        curl_easy_getinfo(s->job.h, CURLINFO_RESPONSE_CODE, &status);
    bool purposely = s->drop_now && rc == CURLE_WRITE_ERROR;
    job_finish(f, &s->job);
    if (rc == CURLE_OK && status == 200) {
        s->done = true;
        return 0;
    }
    if (rc == CURLE_OK && status != 503) {
        sk_client_error_from_answer(e, status, s->job.body, s->job.body_len);
        return -1;
    }
    if (purposely) {
        sk_log_info("stream '%s' dropped after %llu bytes on purpose; resuming at offset %llu", s->name,
                    (unsigned long long)s->conn_bytes, (unsigned long long)s->offset);
        s->retry_at = 0;
        return 0;
    }
    if (s->conn_bytes > 0)
        s->attempts = 0;
    if (++s->attempts > RETRY_MAX) {
        if (rc == CURLE_OK)
            sk_client_error_from_answer(e, status, s->job.body, s->job.body_len);
        else
            sk_client_error_from_curl(f->c, e, rc, s->job.curl_err);
        return -1;
    }
    sk_log_info("stream '%s' dropped (%s); resuming at offset %llu", s->name,
                rc == CURLE_OK       ? "server unavailable"
                : s->job.curl_err[0] ? s->job.curl_err
                                     : curl_easy_strerror(rc),
                (unsigned long long)s->offset);
    s->retry_at = sk_now_ns() + backoff_ns(s->attempts);
    return 0;
}

/* ---- stdin ---------------------------------------------------------------------- */

static int pump_send(struct follower *f, struct pump *p)
{
    bool eof = p->read_done;
    _cleanup_free_ char *path = xasprintf("%s%s", f->o->stdin_path, eof ? "?eof=1" : "");
    CURL *h = sk_client_easy_new(f->c, path, true);
    if (h == NULL)
        return -1;
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->buf);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, job_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &p->job);
    p->eof_sent_in_flight = eof;
    return job_start(f, &p->job, h);
}

static void pump_done(struct follower *f, struct pump *p, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(p->job.h, CURLINFO_RESPONSE_CODE, &status);
    job_finish(f, &p->job);
    if (rc == CURLE_OK && status / 100 == 2) {
        p->len = 0;
        p->attempts = 0;
        if (p->eof_sent_in_flight)
            p->closed = true;
        return;
    }
    if (rc == CURLE_OK && status == 503) {
        /* the process reads slower than we send: try again shortly */
        p->retry_at = sk_now_ns() + STDIN_FULL_RETRY_NS;
        return;
    }
    if (rc == CURLE_OK && status == 409) {
        /* the process closed its stdin or ended: what is left has no reader */
        sk_log_debug("stdin closed by the process");
        p->closed = true;
        return;
    }
    if (rc != CURLE_OK && ++p->attempts <= RETRY_MAX) {
        p->retry_at = sk_now_ns() + backoff_ns(p->attempts);
        return;
    }
    struct sk_client_error e;
    if (rc == CURLE_OK)
        sk_client_error_from_answer(&e, status, p->job.body, p->job.body_len);
    else
        sk_client_error_from_curl(f->c, &e, rc, p->job.curl_err);
    fprintf(stderr, "skiff: stdin is not forwarded any more: %s%s%s%s\n", e.msg, e.code[0] ? " (" : "", e.code,
            e.code[0] ? ")" : "");
    p->closed = true;
}

/* pump_read - fd is readable: take what is there. */
static void pump_read(struct pump *p)
{
    ssize_t n = read(p->fd, p->buf, sizeof(p->buf));
    if (n > 0) {
        p->len = (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        p->read_done = true;
    }
}

/* ---- signals and resizes ---------------------------------------------------------- */

static void control_post(struct follower *f, const char *path, json_t *body)
{
    struct control *ctl = xcalloc(1, sizeof(*ctl));
    ctl->job.kind = JOB_CONTROL;
    ctl->payload = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    CURL *h = sk_client_easy_new(f->c, path, false);
    if (h == NULL || ctl->payload == NULL) {
        if (h != NULL)
            curl_easy_cleanup(h);
        free(ctl->payload);
        free(ctl);
        return;
    }
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, ctl->payload);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, job_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctl->job);
    if (job_start(f, &ctl->job, h) < 0) {
        free(ctl->payload);
        free(ctl);
        return;
    }
    ctl->next = f->controls;
    f->controls = ctl;
}

static void control_done(struct follower *f, struct control *ctl, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(ctl->job.h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status / 100 != 2)
        sk_log_info("forwarding '%s' failed: %s", ctl->payload,
                    rc != CURLE_OK  ? curl_easy_strerror(rc)
                    : ctl->job.body ? ctl->job.body
                                    : "");
    job_finish(f, &ctl->job);
    for (struct control **pp = &f->controls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ctl) {
            *pp = ctl->next;
            break;
        }
    }
    job_reset(&ctl->job);
    free(ctl->payload);
    free(ctl);
}

static void send_resize(struct follower *f)
{
    struct winsize ws;
    if (f->o->resize_path == NULL || ioctl(f->o->tty_fd, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0 || ws.ws_col == 0)
        return;
    control_post(f, f->o->resize_path, json_pack("{s:i, s:i}", "rows", (int)ws.ws_row, "cols", (int)ws.ws_col));
}

static void on_signal(struct follower *f, int signo)
{
    if (signo == SIGWINCH) {
        send_resize(f);
        return;
    }
    if (f->o->signal_path == NULL)
        return;
    if (signo == SIGINT && ++f->interrupts >= 3) {
        fprintf(stderr, "skiff: interrupted three times: sending SIGKILL\n");
        signo = SIGKILL;
    }
    control_post(f, f->o->signal_path, json_pack("{s:i}", "signal", signo));
}

/* ---- the loop ------------------------------------------------------------------------ */

static bool all_done(const struct follower *f)
{
    for (size_t i = 0; i < f->n_streams; i++)
        if (!f->streams[i].done)
            return false;
    return true;
}

static void dispatch(struct follower *f, struct job *j, CURLcode rc, int *ret, struct sk_client_error *e)
{
    switch (j->kind) {
    case JOB_STREAM:
        if (stream_done(f, (struct stream *)j, rc, e) < 0)
            *ret = -1;
        break;
    case JOB_STDIN: pump_done(f, (struct pump *)j, rc); break;
    case JOB_CONTROL: control_done(f, (struct control *)j, rc); break;
    }
}

static int64_t min_deadline(int64_t a, int64_t b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

int sk_follow(struct sk_client *c, const struct sk_follow_opts *o, struct sk_client_error *e)
{
    struct follower f;
    memset(&f, 0, sizeof(f));
    f.c = c;
    f.o = o;
    const char *drop = getenv("SKIFF_STREAM_DROP_AFTER");
    if (drop != NULL && drop[0] != '\0')
        f.drop_after = strtoull(drop, NULL, 10);
    const char *names[2] = {"stdout", "stderr"};
    int fds[2] = {o->stdout_fd, o->stderr_fd};
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 0)
            continue;
        struct stream *s = &f.streams[f.n_streams++];
        s->job.kind = JOB_STREAM;
        s->name = names[i];
        s->fd = fds[i];
        s->drop_after = f.drop_after;
    }
    f.pump.job.kind = JOB_STDIN;
    f.pump.fd = o->stdin_fd;
    f.pump.closed = o->stdin_fd < 0 || o->stdin_path == NULL;

    sigset_t mask, old;
    sigemptyset(&mask);
    if (o->signal_path != NULL) {
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
    }
    if (o->resize_path != NULL)
        sigaddset(&mask, SIGWINCH);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);

    int ret = 0;
    f.multi = curl_multi_init();
    if (f.multi == NULL) {
        ret = sk_client_error_set(e, SK_EXIT_ERROR, "cannot initialise libcurl");
        goto out;
    }
    if (o->resize_path != NULL)
        send_resize(&f); /* the size may have changed since the exec started */

    while (ret == 0 && !all_done(&f)) {
        int64_t now = sk_now_ns(), wake = 0;
        for (size_t i = 0; i < f.n_streams && ret == 0; i++) {
            struct stream *s = &f.streams[i];
            if (s->done || s->job.h != NULL)
                continue;
            if (s->retry_at <= now)
                ret = stream_start(&f, s, e);
            else
                wake = min_deadline(wake, s->retry_at);
        }
        if (ret < 0)
            break;
        struct pump *p = &f.pump;
        bool want_stdin = false;
        if (!p->closed && p->job.h == NULL) {
            if (p->len > 0 || p->read_done) {
                if (p->retry_at <= now) {
                    if (pump_send(&f, p) < 0)
                        p->closed = true;
                } else {
                    wake = min_deadline(wake, p->retry_at);
                }
            } else {
                want_stdin = true;
            }
        }
        struct curl_waitfd extra[2];
        unsigned n_extra = 0;
        if (want_stdin)
            extra[n_extra++] = (struct curl_waitfd){.fd = p->fd, .events = CURL_WAIT_POLLIN};
        if (sfd >= 0)
            extra[n_extra++] = (struct curl_waitfd){.fd = sfd, .events = CURL_WAIT_POLLIN};
        int timeout_ms = 1000;
        if (wake != 0) {
            int64_t left = (wake - now) / 1000000 + 1;
            if (left < timeout_ms)
                timeout_ms = left < 0 ? 0 : (int)left;
        }
        int running = 0;
        curl_multi_perform(f.multi, &running);
        if (curl_multi_poll(f.multi, extra, n_extra, timeout_ms, NULL) != CURLM_OK) {
            ret = sk_client_error_set(e, SK_EXIT_ERROR, "waiting for the server failed");
            break;
        }
        for (unsigned i = 0; i < n_extra; i++) {
            if (extra[i].revents == 0)
                continue;
            if (extra[i].fd == sfd) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                    on_signal(&f, (int)si.ssi_signo);
            } else {
                pump_read(p);
            }
        }
        curl_multi_perform(f.multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(f.multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            if (priv != NULL)
                dispatch(&f, (struct job *)(void *)priv, msg->data.result, &ret, e);
        }
    }

out:
    for (size_t i = 0; i < f.n_streams; i++) {
        job_finish(&f, &f.streams[i].job);
        job_reset(&f.streams[i].job);
    }
    job_finish(&f, &f.pump.job);
    job_reset(&f.pump.job);
    while (f.controls != NULL) {
        struct control *ctl = f.controls;
        f.controls = ctl->next;
        job_finish(&f, &ctl->job);
        job_reset(&ctl->job);
        free(ctl->payload);
        free(ctl);
    }
    if (f.multi != NULL)
        curl_multi_cleanup(f.multi);
    if (sfd >= 0)
        close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return ret;
}
