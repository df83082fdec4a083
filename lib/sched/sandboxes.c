/* sandboxes.c - the sandbox manager (see sandboxes.h).
 *
 * One struct sched_sandbox per sandbox that runs here, one struct
 * sched_exec per exec of it that has not ended. Ended sandboxes and execs
 * live only in the store (and their output files). Every path that ends a
 * sandbox goes through end_sandbox(); every path that ends an exec through
 * exec_finish(). User callbacks run only from dispatch(), a 0 ms timer, so
 * nothing of ours is on the stack when they call back into us.
 *
 * Sandboxes are persistent (they outlive this process; see
 * runtime/sandbox.h), so that a restarted server can adopt them again
 * (sk_sched_recover). What adoption needs is stored before it is reported:
 * the sandbox's adopt info in its record's runtime_json, and per exec
 * skiff-init's process id in the exec's record (execs of a server before
 * schema 2 kept it in a sidecar file execs/<exec>.proc, still read). The
 * process of an exec without a pty
 * writes its output files itself (output_to_fds), so output keeps landing
 * while nobody owns the sandbox; the manager follows the files' sizes with
 * inotify (or a timer). A pty's output cannot be a file: its master is read
 * and appended as a pipe's was, and re-opened after an adoption.
 */
#include "sched/sandboxes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "net/net.h"
#include "runtime/agent.h"
#include "runtime/pool.h"
#include "runtime/sandbox.h"

#define DEFAULT_TIMEOUT_MS (300LL * 1000)
#define DEFAULT_RETENTION_MS (24LL * 3600 * 1000)
#define DEFAULT_MAX_OUTPUT (1LL << 30)
#define RETENTION_SWEEP_MS (60LL * 1000)
#define READ_CHUNK 65536
/* Per stream callback, so that one chatty exec cannot starve the loop. */
#define READ_BUDGET (1024 * 1024)
/* After the sandbox is killed only what sits in a pipe is left to read. */
#define FINAL_DRAIN_MAX (16 * 1024 * 1024)
#define EVENTS_PER_PUMP 256
#define STDIN_RETRY_MS 10
/* When skiff-init's connection ends, how long to wait for pid 1's exit to
 * be seen (the socket closes before the pidfd turns readable: the kernel
 * first kills and reaps the rest of the pid namespace). */
#define INIT_EXIT_WAIT_MS 2000
/* How often output files are looked at when inotify is unavailable. */
#define OUTPUT_POLL_MS 50
/* Bound on the sidecar file with an exec's process id. */
#define PROC_FILE_MAX 256
#define TAGS_JSON_MAX (256 * 1024)
#define SPEC_JSON_MAX (1024 * 1024)

enum { OUT_STDOUT = 0, OUT_STDERR = 1 };
static const char *const stream_names[2] = {"stdout", "stderr"};

struct sched_exec;
struct sched_sandbox;

struct stream {
    struct sched_exec *x;
    int idx;
    int fd; /* read end (pipe, or the pty master for stdout); -1 once closed */
    bool watched;
    int file_fd;  /* <exec>.<stream>, O_APPEND, when we write it; else -1 */
    bool to_file; /* the process writes <exec>.<stream> itself (output_to_fds) */
    int64_t stored;
    bool truncated;
};

struct stdin_buf {
    char *data;
    size_t len;
    bool eof;    /* close (pty: ^D queued) once drained */
    bool closed; /* nothing more may be written */
};

struct sched_exec {
    struct sched_sandbox *e;
    struct sched_exec *next;
    char id[SK_EXEC_ID_LEN + 1];
    struct sk_exec_rec rec; /* as stored; "running" until exec_finish */
    uint32_t proc_id;
    bool pty, has_stdin;
    struct stream out[2];
    int stdin_fd; /* pipes: write end; a pty's input goes to out[0].fd */
    struct stdin_buf in;
    bool exited;        /* its EXIT event arrived */
    bool output_killed; /* SIGKILLed for passing max_output_bytes */
    struct sk_agent_event ev;
    int64_t exit_ns, last_data_ns;
    uint64_t grace_timer, stdin_timer;
};

struct fwatch {
    struct fwatch *next;
    uint64_t id;       /* the manager's */
    uint32_t agent_id; /* skiff-init's */
    sk_sched_fwatch_cb cb;
    void *arg;
};

struct sched_sandbox {
    struct sk_sched *s;
    struct fwatch *fwatches;
    struct sched_sandbox *next;
    char id[SK_SANDBOX_ID_LEN + 1];
    struct sk_sandbox *sb;
    struct sk_sandbox_rec rec; /* as stored */
    char **env, **env_pty;     /* defaults + the request's, for every process */
    char *workdir;
    int64_t idle_timeout_ms;
    int64_t last_activity_ns;
    uint64_t timeout_timer, idle_timer, pump_timer, gone_timer;
    bool agent_watched, pidfd_watched;
    bool execs_dir_made;          /* <sandboxes_dir>/<id>/execs exists (made once, kept while it runs) */
    bool spares_taken;            /* the output files made ahead (SPARE_NAME) were used or tried */
    struct exec_pending *pending; /* execs waiting for skiff-init's answer (sk_sched_exec_async) */
    bool agent_gone;              /* skiff-init's connection reached EOF */
    struct sched_exec *execs;
    struct sched_exec *entrypoint;
    bool ending;
    bool persistent; /* EXITs are kept by skiff-init until released */
    int wd;          /* inotify watch of its execs directory, -1: none */
    json_t *runtime; /* what rec.runtime_json holds, decoded */
};

enum watch_kind { W_SANDBOX, W_EXEC };

struct watcher {
    struct sk_sched *s;
    struct watcher *next;
    uint64_t id;
    enum watch_kind kind;
    char target[32];
    sk_sched_wait_cb sb_cb;
    sk_sched_exec_cb ex_cb;
    void *arg;
    bool on_output;
    uint64_t timer;
    bool output_pending, final_pending, ended;
};

#define SCHED_WORKERS_MAX 4
#define SPARE_NAME "spare" /* execs/spare.stdout, .stderr: the first exec's files, made ahead */
struct exec_pending;
struct create_job;
struct destroy_job;

struct sk_sched {
    struct sk_runtime *rt;
    struct sk_store *st;
    struct sk_loop_ops loop;
    char *data_dir;
    char *sandboxes_dir;
    int64_t default_timeout_ms, max_timeout_ms, retention_ms, max_output;
    struct sched_sandbox *sandboxes;
    struct watcher *watchers;
    uint64_t next_watcher_id;
    uint64_t dispatch_timer, retention_timer;
    int ino_fd; /* inotify on the execs directories, -1: unavailable */
    bool ino_watched;
    uint64_t poll_timer; /* follows output files without inotify */
    void (*on_sandbox)(void *ctx, const struct sk_sandbox_rec *rec);
    void (*on_exec_end)(void *ctx, const struct sk_exec_rec *rec);
    void *observer_ctx;
    struct sk_pool *pool;
    struct sk_net *net; /* sandbox networking, or NULL */
    /* asynchronous creation (sk_sched_create_async) */
    pthread_t workers[SCHED_WORKERS_MAX];
    int n_workers;
    pthread_mutex_t wq_mu;
    pthread_cond_t wq_cv;
    struct create_job *wq_head, *wq_tail, *wq_done; /* under wq_mu */
    struct destroy_job *dq_head;                    /* under wq_mu: sandboxes to tear down */
    bool wq_stop;                                   /* under wq_mu */
    int wq_fd;                                      /* eventfd: jobs done */
    struct create_job *jobs;                        /* every job not yet reported (loop only) */
    struct exec_pending *exec_done;                 /* async execs answered, not yet reported */
    bool freeing;
    char *buf; /* READ_CHUNK bytes */
};

/* ---- small helpers ------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_str(char **field, const char *v)
{
    free(*field);
    *field = v != NULL ? xstrdup(v) : NULL;
}

static char *dup_or_null(const char *v)
{
    return v != NULL ? xstrdup(v) : NULL;
}

static void sandbox_rec_copy(struct sk_sandbox_rec *dst, const struct sk_sandbox_rec *src)
{
    *dst = *src;
    dst->id = dup_or_null(src->id);
    dst->name = dup_or_null(src->name);
    dst->state = dup_or_null(src->state);
    dst->spec_json = dup_or_null(src->spec_json);
    dst->tags_json = dup_or_null(src->tags_json);
    dst->reason = dup_or_null(src->reason);
    dst->reason_detail = dup_or_null(src->reason_detail);
    dst->runtime_json = dup_or_null(src->runtime_json);
}

static void exec_rec_copy(struct sk_exec_rec *dst, const struct sk_exec_rec *src)
{
    *dst = *src;
    dst->id = dup_or_null(src->id);
    dst->sandbox_id = dup_or_null(src->sandbox_id);
    dst->argv_json = dup_or_null(src->argv_json);
    dst->state = dup_or_null(src->state);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return fd >= 0 && SK_RETRY_EINTR(poll(&p, 1, 0)) > 0;
}

/* write_nosigpipe - write(2) to a pipe whose reader may be gone without
 * raising SIGPIPE in the owner: block it for the write and consume the one
 * the write caused (unless one was already pending). */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w;
    do
        w = write(fd, buf, len);
    while (w < 0 && errno == EINTR);
    int saved = errno;
    if (w < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

static void timer_clear(struct sk_sched *s, uint64_t *id)
{
    if (*id != 0) {
        s->loop.cancel(s->loop.ctx, *id);
        *id = 0;
    }
}

static void timer_arm(struct sk_sched *s, uint64_t *id, int64_t delay_ms, void (*cb)(void *), void *arg)
{
    timer_clear(s, id);
    if (delay_ms < 0)
        delay_ms = 0;
    *id = s->loop.timer(s->loop.ctx, delay_ms, cb, arg);
}

static bool is_hex_id(const char *id, const char *prefix)
{
    if (id == NULL || strlen(id) != 19 || strncmp(id, prefix, 3) != 0)
        return false;
    for (size_t i = 3; i < 19; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

static size_t count_list(const char *const *l)
{
    size_t n = 0;
    while (l != NULL && l[n] != NULL)
        n++;
    return n;
}

/* ---- validation ----------------------------------------------------------------- */

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SK_SCHED_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static int validate_argv(const char *what, const char *const *argv, struct sk_error *err)
{
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
        return sk_error_setv(err, EINVAL, "%s needs a non-empty command", what);
    if (count_list(argv) > SK_SCHED_ARGV_MAX)
        return sk_error_setv(err, E2BIG, "%s has more than %d arguments", what, SK_SCHED_ARGV_MAX);
    return 0;
}

static int validate_env(const char *const *env, struct sk_error *err)
{
    size_t n = count_list(env);
    if (n > SK_SCHED_ENV_MAX)
        return sk_error_setv(err, E2BIG, "env has more than %d entries", SK_SCHED_ENV_MAX);
    for (size_t i = 0; i < n; i++)
        if (env[i][0] == '=' || strchr(env[i], '=') == NULL)
            return sk_error_setv(err, EINVAL, "env entry %zu is not of the form KEY=VALUE", i);
    return 0;
}

/* normalize_tags - check that text is a JSON object of string values within
 * the bounds and return it compact with sorted keys (caller frees). */
static int normalize_tags(const char *text, char **out, struct sk_error *err)
{
    *out = NULL;
    if (strlen(text) > TAGS_JSON_MAX)
        return sk_error_setv(err, E2BIG, "tags are larger than %d bytes", TAGS_JSON_MAX);
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return sk_error_setv(err, EINVAL, "tags are not valid JSON: %s", jerr.text);
    int ret = 0;
    if (!json_is_object(j)) {
        ret = sk_error_setv(err, EINVAL, "tags must be a JSON object of strings");
        goto out;
    }
    if (json_object_size(j) > SK_SCHED_TAGS_MAX) {
        ret = sk_error_setv(err, E2BIG, "more than %d tags", SK_SCHED_TAGS_MAX);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        size_t klen = strlen(key);
        if (klen == 0 || klen > SK_SCHED_TAG_KEY_MAX) {
            ret = sk_error_setv(err, EINVAL, "tag keys must be 1 to %d bytes", SK_SCHED_TAG_KEY_MAX);
            goto out;
        }
        if (!json_is_string(v)) {
            ret = sk_error_setv(err, EINVAL, "tag '%s' must have a string value", key);
            goto out;
        }
        if (json_string_length(v) > SK_SCHED_TAG_VALUE_MAX) {
            ret = sk_error_setv(err, EINVAL, "the value of tag '%s' is longer than %d bytes", key,
                                SK_SCHED_TAG_VALUE_MAX);
            goto out;
        }
    }
    *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (*out == NULL)
        ret = sk_error_setv(err, EINVAL, "tags cannot be encoded");
out:
    json_decref(j);
    return ret;
}

static json_t *argv_json_array(const char *const *argv, struct sk_error *err)
{
    json_t *a = json_array();
    for (size_t i = 0; argv[i] != NULL; i++) {
        json_t *v = json_string(argv[i]);
        if (v == NULL) {
            json_decref(a);
            sk_error_setv(err, EINVAL, "argument %zu is not valid UTF-8", i);
            return NULL;
        }
        json_array_append_new(a, v);
    }
    return a;
}

static char *argv_to_json(const char *const *argv, struct sk_error *err)
{
    json_t *a = argv_json_array(argv, err);
    if (a == NULL)
        return NULL;
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (s == NULL)
        sk_error_setv(err, EINVAL, "argv cannot be encoded");
    return s;
}

/* spec_summary - the stored spec when the caller gives none. */
static char *spec_summary(const struct sk_sandbox_req *req, int64_t timeout_ms, struct sk_error *err)
{
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:f, s:I, s:I}", "image", req->image ? req->image : "host",
                          "timeout_ms", (json_int_t)timeout_ms, "idle_timeout_ms", (json_int_t)req->idle_timeout_ms,
                          "memory_bytes", (json_int_t)req->limits.memory_bytes, "cpu", req->limits.cpu, "pids",
                          (json_int_t)req->limits.pids, "disk_bytes", (json_int_t)req->disk_bytes);
    if (j == NULL) {
        sk_error_setv(err, EINVAL, "image is not valid UTF-8");
        return NULL;
    }
    if (req->entrypoint != NULL) {
        json_t *a = argv_json_array(req->entrypoint, err);
        if (a == NULL) {
            json_decref(j);
            return NULL;
        }
        json_object_set_new(j, "entrypoint", a);
    }
    if (req->name != NULL)
        json_object_set_new(j, "name", json_string(req->name));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        sk_error_setv(err, EINVAL, "the spec cannot be encoded");
    return s;
}

/* ---- environment ------------------------------------------------------------------ */

/* env_merge - base with every key that `over` sets replaced; heap copies. */
static char **env_merge(const char *const *base, const char *const *over)
{
    size_t nb = count_list(base), no = count_list(over);
    char **env = xcalloc(nb + no + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) {
        size_t klen = strcspn(base[i], "=");
        bool replaced = false;
        for (size_t j = 0; j < no && !replaced; j++)
            replaced = strncmp(over[j], base[i], klen + 1) == 0;
        if (!replaced)
            env[n++] = xstrdup(base[i]);
    }
    for (size_t j = 0; j < no; j++)
        env[n++] = xstrdup(over[j]);
    env[n] = NULL;
    return env;
}

static void env_free(char **env)
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

/* The runtime's defaults (sandbox.c), which a request's env overrides. */
static void sandbox_env_init(struct sched_sandbox *e, const char *const *req_env)
{
    char hostname[64];
    snprintf(hostname, sizeof(hostname), "HOSTNAME=%s", e->id);
    const char *const defaults[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                                    hostname, "LANG=C.UTF-8", NULL};
    const char *const defaults_pty[] = {defaults[0], defaults[1],           defaults[2],
                                        defaults[3], "TERM=xterm-256color", NULL};
    e->env = env_merge(defaults, req_env);
    e->env_pty = env_merge(defaults_pty, req_env);
}

/* ---- lookups -------------------------------------------------------------------------- */

static struct sched_sandbox *sandbox_live(struct sk_sched *s, const char *id)
{
    for (struct sched_sandbox *e = s->sandboxes; e != NULL && id != NULL; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* sandbox_resolve - the live sandbox for an id or a name; NULL when it does
 * not run here (*exists then says whether the store knows it). */
static struct sched_sandbox *sandbox_resolve(struct sk_sched *s, const char *id_or_name, bool *exists)
{
    *exists = false;
    if (id_or_name == NULL)
        return NULL;
    struct sched_sandbox *e = sandbox_live(s, id_or_name);
    if (e != NULL) {
        *exists = true;
        return e;
    }
    struct sk_sandbox_rec rec;
    if (sk_store_sandbox_get(s->st, id_or_name, &rec, NULL) < 0)
        return NULL;
    *exists = true;
    e = sandbox_live(s, rec.id);
    sk_sandbox_rec_release(&rec);
    return e;
}

static struct sched_exec *exec_live(struct sk_sched *s, const char *id)
{
    if (id == NULL)
        return NULL;
    for (struct sched_sandbox *e = s->sandboxes; e != NULL; e = e->next)
        for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
            if (strcmp(x->id, id) == 0)
                return x;
    return NULL;
}

/* exec_not_live - the error for an exec that does not run here. */
static int exec_not_live(struct sk_sched *s, const char *id, struct sk_error *err)
{
    struct sk_exec_rec rec;
    if (!is_hex_id(id, "ex-") || sk_store_exec_get(s->st, id, &rec, NULL) < 0)
        return sk_error_setv(err, ENOENT, "exec '%s' not found", id ? id : "");
    sk_exec_rec_release(&rec);
    return sk_error_setv(err, EALREADY, "exec '%s' has ended", id);
}

static struct sched_exec *exec_by_proc(struct sched_sandbox *e, uint32_t proc_id)
{
    for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
        if (x->proc_id == proc_id)
            return x;
    return NULL;
}

/* ---- watchers and dispatch ----------------------------------------------------------- */

static void dispatch(void *arg);

static void schedule_dispatch(struct sk_sched *s)
{
    if (s->dispatch_timer == 0 && !s->freeing)
        s->dispatch_timer = s->loop.timer(s->loop.ctx, 0, dispatch, s);
}

static void watchers_mark_final(struct sk_sched *s, enum watch_kind kind, const char *target)
{
    bool any = false;
    for (struct watcher *w = s->watchers; w != NULL; w = w->next) {
        if (w->kind != kind || w->final_pending || strcmp(w->target, target) != 0)
            continue;
        w->final_pending = true;
        w->ended = true;
        timer_clear(s, &w->timer);
        any = true;
    }
    if (any)
        schedule_dispatch(s);
}

static void watchers_mark_output(struct sk_sched *s, const char *exec_id)
{
    bool any = false;
    for (struct watcher *w = s->watchers; w != NULL; w = w->next) {
        if (w->kind == W_EXEC && w->on_output && !w->final_pending && strcmp(w->target, exec_id) == 0) {
            w->output_pending = true;
            any = true;
        }
    }
    if (any)
        schedule_dispatch(s);
}

static void watcher_unlink(struct sk_sched *s, struct watcher *w)
{
    for (struct watcher **pp = &s->watchers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    timer_clear(s, &w->timer);
}

static void on_watch_timeout(void *arg)
{
    struct watcher *w = arg;
    w->timer = 0;
    w->final_pending = true;
    w->ended = false;
    schedule_dispatch(w->s);
}

static struct watcher *watcher_add(struct sk_sched *s, enum watch_kind kind, const char *target, int64_t timeout_ms,
                                   void *arg)
{
    struct watcher *w = xcalloc(1, sizeof(*w));
    w->s = s;
    w->id = ++s->next_watcher_id;
    w->kind = kind;
    snprintf(w->target, sizeof(w->target), "%s", target);
    w->arg = arg;
    if (timeout_ms > 0)
        timer_arm(s, &w->timer, timeout_ms, on_watch_timeout, w);
    w->next = s->watchers;
    s->watchers = w;
    return w;
}

static void deliver_sandbox(struct sk_sched *s, struct watcher *w)
{
    struct sk_sandbox_rec rec;
    struct sk_error err = {0};
    if (sk_store_sandbox_get(s->st, w->target, &rec, &err) == 0) {
        w->sb_cb(w->arg, &rec);
        sk_sandbox_rec_release(&rec);
        return;
    }
    /* Unreadable (purged in between, or the store fails): still answer. */
    sk_log_warn("sandbox '%s': %s", w->target, err.msg);
    char state_end[] = "terminated", state_run[] = "running", reason[] = "error";
    struct sk_sandbox_rec stub = {.id = w->target,
                                  .state = w->ended ? state_end : state_run,
                                  .exit_code = -1,
                                  .reason = w->ended ? reason : NULL,
                                  .reason_detail = err.msg};
    w->sb_cb(w->arg, &stub);
}

static void deliver_exec(struct sk_sched *s, struct watcher *w, bool ended)
{
    struct sched_exec *x = ended ? NULL : exec_live(s, w->target);
    if (x != NULL) {
        w->ex_cb(w->arg, &x->rec, false);
        return;
    }
    struct sk_exec_rec rec;
    struct sk_error err = {0};
    if (sk_store_exec_get(s->st, w->target, &rec, &err) == 0) {
        w->ex_cb(w->arg, &rec, ended);
        sk_exec_rec_release(&rec);
        return;
    }
    sk_log_warn("exec '%s': %s", w->target, err.msg);
    char state_end[] = "exited", state_run[] = "running", argv[] = "[]";
    struct sk_exec_rec stub = {
        .id = w->target, .argv_json = argv, .state = ended ? state_end : state_run, .exit_code = -1};
    w->ex_cb(w->arg, &stub, ended);
}

/* dispatch - deliver pending notifications, one at a time: a callback may
 * add or cancel watchers (itself included), so the list is searched anew
 * after each call, and a finished watcher is unlinked before its call. */
static void dispatch(void *arg)
{
    struct sk_sched *s = arg;
    s->dispatch_timer = 0;
    for (;;) {
        struct watcher *w = s->watchers;
        while (w != NULL && !w->final_pending && !w->output_pending)
            w = w->next;
        if (w == NULL)
            return;
        if (w->final_pending) {
            watcher_unlink(s, w);
            if (w->kind == W_SANDBOX)
                deliver_sandbox(s, w);
            else
                deliver_exec(s, w, w->ended);
            free(w);
        } else {
            w->output_pending = false;
            deliver_exec(s, w, false);
        }
    }
}

static void watcher_cancel(struct sk_sched *s, uint64_t id)
{
    for (struct watcher *w = s->watchers; w != NULL; w = w->next) {
        if (w->id == id) {
            watcher_unlink(s, w);
            free(w);
            return;
        }
    }
}

void sk_sched_wait_cancel(struct sk_sched *s, uint64_t waiter)
{
    watcher_cancel(s, waiter);
}

void sk_sched_exec_watch_cancel(struct sk_sched *s, uint64_t watcher)
{
    watcher_cancel(s, watcher);
}

/* ---- exec output -------------------------------------------------------------------- */

static void schedule_pump(struct sched_sandbox *e);

static void exec_output_path(struct sk_sched *s, const char *sandbox_id, const char *exec_id, const char *suffix,
                             char *path, size_t size)
{
    snprintf(path, size, "%s/%s/execs/%s.%s", s->sandboxes_dir, sandbox_id, exec_id, suffix);
}

/* touch_marker - create execs/<exec>.<stream>.truncated (empty) at once, so
 * that the truncation is known also after a restart. */
static void touch_marker(struct sk_sched *s, const char *sandbox_id, const char *exec_id, int idx)
{
    char path[PATH_MAX], suffix[32];
    snprintf(suffix, sizeof(suffix), "%s.truncated", stream_names[idx]);
    exec_output_path(s, sandbox_id, exec_id, suffix, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
        close(fd);
}

static void stream_set_truncated(struct stream *st)
{
    if (st->truncated)
        return;
    st->truncated = true;
    touch_marker(st->x->e->s, st->x->e->id, st->x->id, st->idx);
}

static void stream_store(struct sched_exec *x, struct stream *st, const char *buf, size_t n)
{
    int64_t cap = x->e->s->max_output;
    if (st->stored >= cap || st->file_fd < 0) {
        stream_set_truncated(st);
        return;
    }
    size_t w = n;
    if ((int64_t)w > cap - st->stored) {
        w = (size_t)(cap - st->stored);
        stream_set_truncated(st);
    }
    if (sk_write_all(st->file_fd, buf, w) < 0) {
        sk_log_error("exec '%s': write %s: %s; dropping its further output", x->id, stream_names[st->idx],
                     strerror(errno));
        sk_close(&st->file_fd);
        stream_set_truncated(st);
        return;
    }
    st->stored += (int64_t)w;
}

/* stream_drain - read what is there (at most `budget` bytes) into the
 * file. false at EOF or a read error (a pty says EIO once every slave is
 * closed). *got tells whether anything was read. */
static bool stream_drain(struct stream *st, size_t budget, bool *got)
{
    struct sched_exec *x = st->x;
    char *buf = x->e->s->buf;
    size_t done = 0;
    while (done < budget) {
        ssize_t r = read(st->fd, buf, READ_CHUNK);
        if (r > 0) {
            stream_store(x, st, buf, (size_t)r);
            done += (size_t)r;
            *got = true;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (r < 0 && errno != EIO)
            sk_log_warn("exec '%s': read %s: %s", x->id, stream_names[st->idx], strerror(errno));
        return false;
    }
    return true;
}

static void stream_close(struct sk_sched *s, struct stream *st)
{
    if (st->fd < 0)
        return;
    if (st->watched)
        s->loop.unwatch(s->loop.ctx, st->fd);
    st->watched = false;
    sk_close(&st->fd);
}

static bool streams_closed(const struct sched_exec *x)
{
    return x->out[0].fd < 0 && x->out[1].fd < 0;
}

static void exec_finish(struct sched_exec *x);
static void on_grace(void *arg);

static void on_stream(void *arg)
{
    struct stream *st = arg;
    struct sched_exec *x = st->x;
    struct sk_sched *s = x->e->s;
    if (st->fd < 0)
        return;
    bool got = false;
    bool open = stream_drain(st, READ_BUDGET, &got);
    if (got) {
        x->last_data_ns = sk_now_ns();
        watchers_mark_output(s, x->id);
    }
    if (!open) {
        stream_close(s, st);
        if (streams_closed(x) && x->pty)
            x->in.closed = true; /* the pty master was stdin too */
        if (x->exited && streams_closed(x))
            exec_finish(x); /* frees x */
    }
}

/* exec_after_exit - its process has exited: end the exec once its output
 * has reached EOF, or after the grace if something else holds the pipes. */
static void exec_after_exit(struct sched_exec *x)
{
    if (streams_closed(x)) {
        exec_finish(x);
        return;
    }
    timer_arm(x->e->s, &x->grace_timer, SK_SCHED_EXEC_GRACE_MS, on_grace, x);
}

static void exec_drain_all(struct sched_exec *x)
{
    struct sk_sched *s = x->e->s;
    for (int i = 0; i < 2; i++) {
        struct stream *st = &x->out[i];
        if (st->fd < 0)
            continue;
        bool got = false;
        stream_drain(st, FINAL_DRAIN_MAX, &got);
        stream_close(s, st);
    }
}

static void on_grace(void *arg)
{
    struct sched_exec *x = arg;
    struct sk_sched *s = x->e->s;
    x->grace_timer = 0;
    int64_t now = sk_now_ns();
    int64_t quiet_since = x->last_data_ns > x->exit_ns ? x->last_data_ns : x->exit_ns;
    int64_t quiet_ms = (now - quiet_since) / 1000000;
    int64_t since_exit_ms = (now - x->exit_ns) / 1000000;
    if (quiet_ms < SK_SCHED_EXEC_GRACE_MS && since_exit_ms < SK_SCHED_EXEC_DRAIN_MAX_MS) {
        timer_arm(s, &x->grace_timer, SK_SCHED_EXEC_GRACE_MS - quiet_ms, on_grace, x);
        return;
    }
    /* A background process holds the output open: take what the pipes
     * hold now and stop following them. */
    sk_log_debug("exec '%s': output still open %lld ms after its process exited; ending it", x->id,
                 (long long)since_exit_ms);
    exec_drain_all(x);
    exec_finish(x);
}

/* ---- output files the process writes itself --------------------------------------- */

/* cut_to_cap - an output file that has passed max_output_bytes is cut back
 * to it (what the process wrote beyond is dropped) and marked truncated.
 * O_APPEND writers that still hold it append at the new end, and are cut
 * back again at the next look. Returns the size it has now. */
static int64_t cut_to_cap(struct sk_sched *s, const char *sandbox_id, const char *exec_id, int idx, int64_t size)
{
    if (size <= s->max_output)
        return size;
    char path[PATH_MAX];
    exec_output_path(s, sandbox_id, exec_id, stream_names[idx], path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || ftruncate(fd, s->max_output) < 0)
        sk_log_warn("exec '%s': cut its %s to %lld bytes: %s", exec_id, stream_names[idx], (long long)s->max_output,
                    strerror(errno));
    if (fd >= 0)
        close(fd);
    touch_marker(s, sandbox_id, exec_id, idx);
    return s->max_output;
}

/* stream_poll_file - look at the size of a file the process writes itself:
 * tell output watchers when it grew; past max_output_bytes, SIGKILL the
 * process (once), cut the file back and mark it truncated. */
static void stream_poll_file(struct stream *st)
{
    struct sched_exec *x = st->x;
    struct sched_sandbox *e = x->e;
    struct sk_sched *s = e->s;
    char path[PATH_MAX];
    struct stat sb;
    exec_output_path(s, e->id, x->id, stream_names[st->idx], path, sizeof(path));
    if (lstat(path, &sb) < 0)
        return;
    int64_t size = sb.st_size;
    if (size > s->max_output) {
        size = cut_to_cap(s, e->id, x->id, st->idx, size);
        st->truncated = true;
        if (!x->exited && !x->output_killed && !e->ending && !e->agent_gone) {
            struct sk_error err = {0};
            x->output_killed = true;
            sk_log_info("exec '%s': its %s passed %lld bytes; killing it", x->id, stream_names[st->idx],
                        (long long)s->max_output);
            if (sk_agent_signal(sk_sandbox_agent(e->sb), x->proc_id, SIGKILL, &err) < 0 && err.code != ESRCH)
                sk_log_warn("exec '%s': %s", x->id, err.msg);
            schedule_pump(e);
        }
    }
    if (size > st->stored) {
        x->last_data_ns = sk_now_ns();
        watchers_mark_output(s, x->id);
    }
    st->stored = size;
}

static void exec_poll_files(struct sched_exec *x)
{
    for (int i = 0; i < 2; i++)
        if (x->out[i].to_file)
            stream_poll_file(&x->out[i]);
}

static bool exec_has_files(const struct sched_exec *x)
{
    return x->out[0].to_file || x->out[1].to_file;
}

/* on_output_file - execs/<name> of sandbox e was written to. */
static void on_output_file(struct sched_sandbox *e, const char *name)
{
    const char *dot = strchr(name, '.');
    if (dot == NULL || dot - name != SK_EXEC_ID_LEN)
        return;
    int idx = strcmp(dot + 1, "stdout") == 0 ? OUT_STDOUT : strcmp(dot + 1, "stderr") == 0 ? OUT_STDERR : -1;
    char id[SK_EXEC_ID_LEN + 1];
    memcpy(id, name, SK_EXEC_ID_LEN);
    id[SK_EXEC_ID_LEN] = '\0';
    if (idx < 0 || !is_hex_id(id, "ex-"))
        return;
    for (struct sched_exec *x = e->execs; x != NULL; x = x->next) {
        if (strcmp(x->id, id) == 0) {
            if (x->out[idx].to_file) /* else: our own writes of a pty's output */
                stream_poll_file(&x->out[idx]);
            return;
        }
    }
    /* An ended exec: a background process of the sandbox may still hold
     * the file; the cap holds for it too. */
    char path[PATH_MAX];
    struct stat sb;
    exec_output_path(e->s, e->id, id, stream_names[idx], path, sizeof(path));
    if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        cut_to_cap(e->s, e->id, id, idx, sb.st_size);
}

static void poll_all_files(struct sk_sched *s, bool unwatched_only)
{
    for (struct sched_sandbox *e = s->sandboxes; e != NULL; e = e->next)
        if (!unwatched_only || e->wd < 0)
            for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
                exec_poll_files(x);
}

static struct sched_sandbox *sandbox_by_wd(struct sk_sched *s, int wd)
{
    for (struct sched_sandbox *e = s->sandboxes; e != NULL; e = e->next)
        if (e->wd == wd)
            return e;
    return NULL;
}

static void schedule_poll(struct sk_sched *s);

static void on_inotify(void *arg)
{
    struct sk_sched *s = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (int round = 0; round < 64; round++) {
        ssize_t n = read(s->ino_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                poll_all_files(s, false);
                continue;
            }
            struct sched_sandbox *e = sandbox_by_wd(s, ev->wd);
            if (e == NULL)
                continue;
            if (ev->mask & IN_IGNORED) { /* its directory went away */
                e->wd = -1;
                schedule_poll(s);
            } else if (ev->len > 0) {
                on_output_file(e, ev->name);
            }
        }
    }
}

static bool needs_polling(struct sk_sched *s)
{
    for (struct sched_sandbox *e = s->sandboxes; e != NULL; e = e->next)
        if (e->wd < 0)
            for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
                if (exec_has_files(x))
                    return true;
    return false;
}

static void on_output_poll(void *arg)
{
    struct sk_sched *s = arg;
    s->poll_timer = 0;
    poll_all_files(s, true);
    schedule_poll(s);
}

/* schedule_poll - without inotify (or a watch), look at the output files
 * of running execs every OUTPUT_POLL_MS. */
static void schedule_poll(struct sk_sched *s)
{
    if (s->poll_timer == 0 && !s->freeing && needs_polling(s))
        s->poll_timer = s->loop.timer(s->loop.ctx, OUTPUT_POLL_MS, on_output_poll, s);
}

/* sandbox_watch_dir - follow writes to the files in its execs directory. */
static void sandbox_watch_dir(struct sched_sandbox *e, const char *dir)
{
    struct sk_sched *s = e->s;
    if (e->wd >= 0 || s->ino_fd < 0)
        return;
    e->wd = inotify_add_watch(s->ino_fd, dir, IN_MODIFY | IN_ONLYDIR | IN_DONT_FOLLOW);
    if (e->wd < 0)
        sk_log_warn("sandbox '%s': cannot watch '%s' (%s); polling its output files", e->id, dir, strerror(errno));
}

static void sandbox_unwatch_dir(struct sched_sandbox *e)
{
    if (e->wd >= 0)
        inotify_rm_watch(e->s->ino_fd, e->wd);
    e->wd = -1;
}

/* read_proc_file - the proc id write_proc_file stored; -ENOENT when there is
 * none, -EINVAL when it is malformed. */
static int read_proc_file(struct sk_sched *s, const char *sandbox_id, const char *exec_id, uint32_t *proc_id)
{
    char path[PATH_MAX];
    exec_output_path(s, sandbox_id, exec_id, "proc", path, sizeof(path));
    char *text = NULL;
    struct sk_error err = {0};
    int r = sk_read_file_at(AT_FDCWD, path, PROC_FILE_MAX, &text, NULL, &err);
    if (r < 0)
        return r;
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    json_t *v = json_object_get(j, "proc_id");
    r = -EINVAL;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX) {
        *proc_id = (uint32_t)json_integer_value(v);
        r = 0;
    }
    json_decref(j);
    return r;
}

/* ---- exec stdin -------------------------------------------------------------------- */

static void stdin_close(struct sched_exec *x)
{
    if (!x->pty)
        sk_close(&x->stdin_fd);
    free(x->in.data);
    x->in.data = NULL;
    x->in.len = 0;
    x->in.closed = true;
    timer_clear(x->e->s, &x->stdin_timer);
}

static void on_stdin_retry(void *arg);

/* stdin_flush - write what is queued without blocking; what the pipe does
 * not take now is retried from a timer (the loop only watches for input).
 * -EPIPE when the reading side is gone (the queue is dropped). */
static int stdin_flush(struct sched_exec *x)
{
    int fd = x->pty ? x->out[0].fd : x->stdin_fd;
    if (fd < 0) {
        stdin_close(x);
        return -EPIPE;
    }
    size_t off = 0;
    while (off < x->in.len) {
        ssize_t w = write_nosigpipe(fd, x->in.data + off, x->in.len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        stdin_close(x);
        return -EPIPE;
    }
    memmove(x->in.data, x->in.data + off, x->in.len - off);
    x->in.len -= off;
    if (x->in.len > 0) {
        if (x->stdin_timer == 0)
            timer_arm(x->e->s, &x->stdin_timer, STDIN_RETRY_MS, on_stdin_retry, x);
        return 0;
    }
    timer_clear(x->e->s, &x->stdin_timer);
    if (x->in.eof)
        stdin_close(x);
    return 0;
}

static void on_stdin_retry(void *arg)
{
    struct sched_exec *x = arg;
    x->stdin_timer = 0;
    stdin_flush(x);
}

/* ---- ending execs and sandboxes ----------------------------------------------------- */

static void exec_free(struct sched_exec *x)
{
    struct sk_sched *s = x->e->s;
    timer_clear(s, &x->grace_timer);
    timer_clear(s, &x->stdin_timer);
    for (int i = 0; i < 2; i++) {
        stream_close(s, &x->out[i]);
        sk_close(&x->out[i].file_fd);
    }
    if (!x->pty)
        sk_close(&x->stdin_fd);
    free(x->in.data);
    sk_exec_rec_release(&x->rec);
    free(x);
}

/* exec_finish - the exec has ended (its EXIT arrived and its output is
 * complete, or its sandbox ended): store how, then tell its watchers. */
static void exec_finish(struct sched_exec *x)
{
    struct sched_sandbox *e = x->e;
    struct sk_sched *s = e->s;
    /* A process that writes its files itself has written everything once
     * it has exited (or its sandbox has): their sizes are final. */
    exec_poll_files(x);
    for (int i = 0; i < 2; i++) {
        stream_close(s, &x->out[i]);
        if (x->out[i].truncated)
            touch_marker(s, e->id, x->id, i);
    }
    set_str(&x->rec.state, "exited");
    if (x->exited) {
        x->rec.exit_code = x->ev.exit_code;
        x->rec.signal = x->ev.signo;
        x->rec.timed_out = x->ev.timed_out;
    } else {
        /* Its sandbox ended first: killed with it. */
        x->rec.exit_code = 128 + SIGKILL;
        x->rec.signal = SIGKILL;
    }
    x->rec.ended_at = now_ms();
    struct sk_error err = {0};
    if (sk_store_exec_update(s->st, &x->rec, &err) < 0) {
        /* skiff-init keeps the EXIT (not released): a later owner can
         * still record it. */
        sk_log_error("exec '%s': %s", x->id, err.msg);
    } else if (e->persistent) {
        if (x->rec.proc_id == 0) { /* started by a server before schema 2 */
            char path[PATH_MAX];
            exec_output_path(s, e->id, x->id, "proc", path, sizeof(path));
            unlink(path);
        }
        /* Stored: skiff-init may forget it now. */
        if (x->exited && !e->ending && !e->agent_gone &&
            sk_agent_release(sk_sandbox_agent(e->sb), x->proc_id, &err) < 0 && err.code != ESRCH)
            sk_log_warn("exec '%s': release its exit: %s", x->id, err.msg);
    }
    if (s->on_exec_end != NULL)
        s->on_exec_end(s->observer_ctx, &x->rec);
    watchers_mark_final(s, W_EXEC, x->id);
    for (struct sched_exec **pp = &e->execs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    }
    if (e->entrypoint == x)
        e->entrypoint = NULL;
    e->last_activity_ns = sk_now_ns();
    exec_free(x);
}

static enum sk_end_reason reason_code(const char *reason)
{
    static const struct {
        const char *name;
        enum sk_end_reason code;
    } map[] = {{"exited", SK_END_EXITED}, {"timeout", SK_END_TIMEOUT},       {"idle", SK_END_IDLE},
               {"oom", SK_END_OOM},       {"terminated", SK_END_TERMINATED}, {"error", SK_END_ERROR},
               {"lost", SK_END_LOST}};
    for (size_t i = 0; i < SK_ARRAY_SIZE(map); i++)
        if (strcmp(map[i].name, reason) == 0)
            return map[i].code;
    return SK_END_ERROR;
}

static void agent_unwatch(struct sched_sandbox *e)
{
    if (e->agent_watched)
        e->s->loop.unwatch(e->s->loop.ctx, sk_agent_fd(sk_sandbox_agent(e->sb)));
    e->agent_watched = false;
}

static void sandbox_unwatch(struct sched_sandbox *e)
{
    agent_unwatch(e);
    if (e->pidfd_watched)
        e->s->loop.unwatch(e->s->loop.ctx, sk_sandbox_pidfd(e->sb));
    e->pidfd_watched = false;
}

static void sandbox_entry_free(struct sched_sandbox *e)
{
    json_decref(e->runtime);
    env_free(e->env);
    env_free(e->env_pty);
    free(e->workdir);
    sk_sandbox_rec_release(&e->rec);
    free(e);
}

/* end_sandbox - the one way a sandbox ends; the first reason wins. Kills
 * it, ends its execs, records the end, frees the runtime sandbox (its cgroup
 * goes), then lets waiters know (from the loop). e is freed. */
static void destroy_later(struct sk_sched *s, struct sk_sandbox *sb);
static void pending_spawns_check(struct sched_sandbox *e);
static void pending_spawns_fail(struct sched_sandbox *e);
static void exec_pending_report(struct exec_pending *p);

static void end_sandbox(struct sched_sandbox *e, const char *reason, const char *detail, int exit_code)
{
    if (e->ending)
        return;
    e->ending = true;
    struct sk_sched *s = e->s;
    pending_spawns_fail(e);
    while (e->fwatches != NULL) {
        struct fwatch *w = e->fwatches;
        e->fwatches = w->next;
        w->cb(w->arg, NULL, true);
        free(w);
    }
    struct sk_error err = {0};
    timer_clear(s, &e->timeout_timer);
    timer_clear(s, &e->idle_timer);
    timer_clear(s, &e->pump_timer);
    timer_clear(s, &e->gone_timer);
    sandbox_unwatch(e);
    sandbox_unwatch_dir(e);
    if (sk_sandbox_kill(e->sb, reason_code(reason), &err) < 0)
        sk_log_warn("sandbox '%s': %s", e->id, err.msg);
    /* Its network namespace goes with its last process (and its veths with
     * it): only the host's rules and addresses are left to remove. */
    if (s->net != NULL)
        sk_net_detach(s->net, e->id, true);
    /* EXITs skiff-init sent before it died still say how those ended. */
    struct sk_agent_event ev;
    for (int i = 0; i < 4096 && sk_agent_next_event(sk_sandbox_agent(e->sb), &ev, 0, NULL) > 0; i++) {
        struct sched_exec *x = exec_by_proc(e, ev.proc_id);
        if (x != NULL && !x->exited) {
            x->exited = true;
            x->ev = ev;
        }
    }
    /* Every process is gone: what is left in the pipes is all there is. */
    while (e->execs != NULL) {
        exec_drain_all(e->execs);
        exec_finish(e->execs);
    }
    set_str(&e->rec.state, "terminated");
    set_str(&e->rec.reason, reason);
    set_str(&e->rec.reason_detail, detail);
    e->rec.exit_code = exit_code;
    e->rec.ended_at = now_ms();
    if (sk_store_sandbox_update(s->st, &e->rec, &err) < 0)
        sk_log_error("sandbox '%s': record its end (%s): %s", e->id, reason, err.msg);
    sk_log_info("sandbox '%s' ended: %s%s%s", e->id, reason, detail ? ": " : "", detail ? detail : "");
    if (s->on_sandbox != NULL)
        s->on_sandbox(s->observer_ctx, &e->rec);
    /* Every process is dead and reaped: what is left (removing cgroups,
     * which waits for the kernel on cgroup v1, the runtime's directory,
     * the uid range) needs no answer, and a worker does it. */
    destroy_later(s, steal_pointer(&e->sb));
    for (struct sched_sandbox **pp = &s->sandboxes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    watchers_mark_final(s, W_SANDBOX, e->id);
    sandbox_entry_free(e);
}

/* ---- sandbox events ------------------------------------------------------------------- */

static bool pid1_dead(struct sched_sandbox *e)
{
    return fd_readable(sk_sandbox_pidfd(e->sb));
}

/* init_gone - pid 1 died, or skiff-init dropped its connection and pid 1
 * did not exit within INIT_EXIT_WAIT_MS. */
static void init_gone(struct sched_sandbox *e)
{
    if (sk_sandbox_oom_kills(e->sb) > 0)
        end_sandbox(e, "oom", NULL, -1);
    else if (pid1_dead(e))
        end_sandbox(e, "error", "sandbox init process died", -1);
    else
        end_sandbox(e, "error", "skiff-init closed its connection", -1);
}

static void on_gone_timeout(void *arg)
{
    struct sched_sandbox *e = arg;
    e->gone_timer = 0;
    init_gone(e);
}

/* agent_lost - the connection to skiff-init ended. pid 1's exit usually
 * follows within milliseconds; its pidfd tells (on_pidfd), or the timer
 * ends the sandbox anyway. false when the sandbox has ended. */
static bool agent_lost(struct sched_sandbox *e)
{
    e->agent_gone = true;
    agent_unwatch(e);
    timer_clear(e->s, &e->pump_timer);
    if (pid1_dead(e)) {
        init_gone(e);
        return false;
    }
    timer_arm(e->s, &e->gone_timer, INIT_EXIT_WAIT_MS, on_gone_timeout, e);
    return true;
}

static void schedule_pump(struct sched_sandbox *e);

/* agent_pump - handle the exit events skiff-init sent (also those queued
 * by synchronous requests). false when the sandbox has ended (e is freed). */
static bool agent_pump(struct sched_sandbox *e)
{
    if (e->agent_gone)
        return true;
    /* File-watch events first: they sit in their own queue in the agent. */
    struct sk_agent_watch_event wev;
    for (int i = 0; i < EVENTS_PER_PUMP && e->fwatches != NULL &&
                    sk_agent_next_watch_event(sk_sandbox_agent(e->sb), &wev, 0, NULL) > 0;
         i++) {
        for (struct fwatch *w = e->fwatches; w != NULL; w = w->next) {
            if (w->agent_id == wev.watch_id) {
                w->cb(w->arg, &wev, false);
                break;
            }
        }
    }
    if (sk_agent_has_pending_watch_events(sk_sandbox_agent(e->sb)))
        schedule_pump(e);
    pending_spawns_check(e);
    for (int i = 0; i < EVENTS_PER_PUMP; i++) {
        struct sk_agent_event ev;
        struct sk_error err = {0};
        int r = sk_agent_next_event(sk_sandbox_agent(e->sb), &ev, 0, &err);
        /* answers read meanwhile come before the EXITs behind them */
        pending_spawns_check(e);
        if (r == 0) {
            /* watch events read by this loop wait in their own queue, and
             * the socket may have nothing more to wake us: deliver them */
            if (e->fwatches != NULL && sk_agent_has_pending_watch_events(sk_sandbox_agent(e->sb)))
                schedule_pump(e);
            return true;
        }
        if (r < 0) {
            if (r == -EPROTO) {
                sk_log_warn("sandbox '%s': %s", e->id, err.msg);
                continue;
            }
            sk_log_debug("sandbox '%s': %s", e->id, err.msg);
            return agent_lost(e);
        }
        /* skiff-init is not trusted: only processes we started count. */
        struct sched_exec *x = exec_by_proc(e, ev.proc_id);
        if (x == NULL) {
            /* Already stored (an EXIT sent again after an adoption) or never
             * ours (killed unrecorded): let skiff-init forget it. */
            if (e->persistent)
                sk_agent_release(sk_sandbox_agent(e->sb), ev.proc_id, NULL);
            continue;
        }
        if (x->exited)
            continue;
        x->exited = true;
        x->ev = ev;
        x->exit_ns = sk_now_ns();
        if (x == e->entrypoint) {
            bool oom = ev.signo == SIGKILL && sk_sandbox_oom_kills(e->sb) > 0;
            end_sandbox(e, oom ? "oom" : "exited", NULL, ev.exit_code);
            return false;
        }
        exec_after_exit(x);
    }
    schedule_pump(e); /* more may be queued */
    return true;
}

static void on_agent(void *arg)
{
    agent_pump(arg);
}

static void on_pump_timer(void *arg)
{
    struct sched_sandbox *e = arg;
    e->pump_timer = 0;
    agent_pump(e);
}

/* schedule_pump - after a synchronous request, events it queued inside the
 * agent do not make its fd readable: look at them from the loop. */
static void schedule_pump(struct sched_sandbox *e)
{
    if (e->pump_timer == 0 && !e->ending && !e->agent_gone)
        e->pump_timer = e->s->loop.timer(e->s->loop.ctx, 0, on_pump_timer, e);
}

static void on_pidfd(void *arg)
{
    struct sched_sandbox *e = arg;
    if (!pid1_dead(e))
        return;
    /* EXITs sent before it died come first (the entrypoint's, say). */
    if (!agent_pump(e))
        return;
    init_gone(e);
}

static void on_timeout(void *arg)
{
    struct sched_sandbox *e = arg;
    e->timeout_timer = 0;
    end_sandbox(e, "timeout", NULL, -1);
}

static void on_idle(void *arg)
{
    struct sched_sandbox *e = arg;
    e->idle_timer = 0;
    int64_t idle_ns = e->idle_timeout_ms * 1000000;
    if (e->execs != NULL) {
        timer_arm(e->s, &e->idle_timer, e->idle_timeout_ms, on_idle, e);
        return;
    }
    int64_t quiet_ns = sk_now_ns() - e->last_activity_ns;
    if (quiet_ns >= idle_ns) {
        end_sandbox(e, "idle", NULL, -1);
        return;
    }
    timer_arm(e->s, &e->idle_timer, (idle_ns - quiet_ns) / 1000000 + 1, on_idle, e);
}

/* ---- starting execs --------------------------------------------------------------------- */

static int open_output(const char *path, int *fd, struct sk_error *err)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0)
        return sk_error_set(err, errno, "create '%s'", path);
    return 0;
}

/* take_spare - give the output file sk_sched_prepare_dir made ahead (empty,
 * 0600, in our own 0700 directory) the name of stream idx of an exec and
 * open it; false (nothing changed) when there is none. */
static bool take_spare(struct sk_sched *s, const char *sandbox_id, int idx, const char *path, int *fd)
{
    char spare[PATH_MAX + 32];
    snprintf(spare, sizeof(spare), "%s/%s/execs/" SPARE_NAME ".%s", s->sandboxes_dir, sandbox_id, stream_names[idx]);
    if (renameat2(AT_FDCWD, spare, AT_FDCWD, path, RENAME_NOREPLACE) < 0)
        return false;
    *fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (*fd >= 0 && fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
        return true;
    sk_close(fd);
    unlink(path);
    return false;
}

/* An exec between its request and skiff-init's answer: what exec_prepare
 * made (its id, its output files) and what exec_complete needs. */
struct exec_start {
    char id[SK_EXEC_ID_LEN + 1];
    char paths[2][PATH_MAX];
    int files[2];
    bool to_file, pty, stdin_pipe, entrypoint;
    char *argv_json;
    char **env; /* merged env for the spawn, or NULL */
    struct sk_agent_spawn spawn;
};

static void exec_start_release(struct exec_start *xs, bool unlink_files)
{
    for (int i = 0; i < 2; i++) {
        sk_close(&xs->files[i]);
        if (unlink_files && xs->paths[i][0] != '\0')
            unlink(xs->paths[i]);
    }
    free(steal_pointer(&xs->argv_json));
    env_free(steal_pointer(&xs->env));
}

/* exec_prepare - check the request, pick the exec's id, create its output
 * files and fill the spawn request (borrowing req's strings). */
static int exec_prepare(struct sched_sandbox *e, const struct sk_exec_req *req, bool entrypoint, struct exec_start *xs,
                        struct sk_error *err)
{
    struct sk_sched *s = e->s;
    memset(xs, 0, sizeof(*xs));
    xs->files[0] = xs->files[1] = -1;
    int ret = validate_argv(entrypoint ? "entrypoint" : "exec", req->argv, err);
    if (ret < 0)
        return ret;
    if ((ret = validate_env(req->env, err)) < 0)
        return ret;
    if (req->workdir != NULL && req->workdir[0] != '/')
        return sk_error_setv(err, EINVAL, "workdir must be an absolute path");
    if (req->timeout_ms < 0)
        return sk_error_setv(err, EINVAL, "exec timeout must not be negative");
    char hex[17];
    if ((ret = sk_random_hex(hex, 8, err)) < 0)
        return ret;
    snprintf(xs->id, sizeof(xs->id), "ex-%s", hex);
    const char *id = xs->id;

    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s/execs", s->sandboxes_dir, e->id);
    if (!e->execs_dir_made) {
        /* one stat when the pool (sk_sched_prepare_dir) made it already */
        struct stat dst;
        if (stat(dir, &dst) < 0 && (ret = sk_mkdir_p(dir, 0700, err)) < 0)
            return ret;
        e->execs_dir_made = true;
    }
    /* In a persistent sandbox the process writes its files itself, so its
     * output survives us; a pty's output is read from the master. */
    bool to_file = e->persistent && !req->pty;
    if (to_file)
        sandbox_watch_dir(e, dir);
    for (int i = 0; i < 2; i++) {
        exec_output_path(s, e->id, id, stream_names[i], xs->paths[i], sizeof(xs->paths[i]));
        if (!e->spares_taken && take_spare(s, e->id, i, xs->paths[i], &xs->files[i]))
            continue;
        if ((ret = open_output(xs->paths[i], &xs->files[i], err)) < 0) {
            xs->paths[i][0] = '\0'; /* not ours to remove */
            exec_start_release(xs, true);
            return ret;
        }
    }
    e->spares_taken = true; /* used now, or never made */
    xs->argv_json = argv_to_json(req->argv, err);
    if (xs->argv_json == NULL) {
        exec_start_release(xs, true);
        return -err->code;
    }
    xs->to_file = to_file;
    xs->pty = req->pty;
    xs->stdin_pipe = req->stdin_pipe;
    xs->entrypoint = entrypoint;
    char **env = req->env != NULL ? env_merge((const char *const *)(req->pty ? e->env_pty : e->env), req->env) : NULL;
    xs->env = env;
    int *files = xs->files;
    xs->spawn = (struct sk_agent_spawn){
        .argv = req->argv,
        .envp = (const char *const *)(env != NULL ? env
                                      : req->pty  ? e->env_pty
                                                  : e->env),
        .cwd = req->workdir != NULL ? req->workdir : e->workdir,
        .pty = req->pty,
        .rows = req->rows,
        .cols = req->cols,
        .want_stdin = !req->pty && req->stdin_pipe,
        .timeout_ms = req->timeout_ms,
        .output_to_fds = to_file,
        .stdout_fd = to_file ? files[OUT_STDOUT] : -1,
        .stderr_fd = to_file ? files[OUT_STDERR] : -1,
    };
    return 0;
}

/* exec_complete - skiff-init started the process (proc): record the exec
 * and follow its output. On failure the process is killed and nothing is
 * recorded. xs is released either way. */
static int exec_complete(struct sched_sandbox *e, struct exec_start *xs, const struct sk_agent_proc *pproc,
                         struct sk_exec_rec *out, struct sk_error *err)
{
    struct sk_sched *s = e->s;
    struct sk_agent_proc proc = *pproc;
    const char *id = xs->id;
    int ret;
    struct sched_exec *x = xcalloc(1, sizeof(*x));
    x->e = e;
    memcpy(x->id, id, sizeof(x->id));
    x->proc_id = proc.id;
    x->pty = xs->pty;
    x->has_stdin = xs->pty || xs->stdin_pipe;
    x->stdin_fd = proc.stdin_fd;
    for (int i = 0; i < 2; i++)
        x->out[i] =
            (struct stream){.x = x, .idx = i, .fd = -1, .file_fd = steal_fd(&xs->files[i]), .to_file = xs->to_file};
    x->out[OUT_STDOUT].fd = xs->pty ? proc.pty_fd : proc.stdout_fd;
    x->out[OUT_STDERR].fd = xs->pty ? -1 : proc.stderr_fd;
    if (xs->pty)
        sk_close(&proc.stderr_fd); /* never set with a pty; belt and braces */
    x->rec = (struct sk_exec_rec){.id = xstrdup(id),
                                  .sandbox_id = xstrdup(e->id),
                                  .argv_json = steal_pointer(&xs->argv_json),
                                  .state = xstrdup("running"),
                                  .exit_code = -1,
                                  .created_at = now_ms(),
                                  .pty = xs->pty,
                                  .proc_id = proc.id};
    /* Recorded with skiff-init's id of its process: a new owner matches the
     * processes skiff-init lists with it. A crash before the commit leaves
     * a process no record claims, which is killed on adoption. */
    ret = sk_store_exec_insert(s->st, &x->rec, err);
    if (ret < 0) {
        /* Not recorded, so it must not run: its EXIT will be ignored. */
        sk_agent_signal(sk_sandbox_agent(e->sb), proc.id, SIGKILL, NULL);
        exec_free(x);
        exec_start_release(xs, true);
        return ret;
    }
    if (x->stdin_fd >= 0)
        set_nonblock(x->stdin_fd);
    for (int i = 0; i < 2; i++) {
        struct stream *st = &x->out[i];
        if (st->fd < 0)
            continue;
        set_nonblock(st->fd);
        struct sk_error werr = {0};
        if (s->loop.watch(s->loop.ctx, st->fd, on_stream, st) < 0) {
            sk_error_set(&werr, errno, "watch");
            sk_log_error("exec '%s': cannot follow its %s: %s", id, stream_names[i], werr.msg);
            sk_close(&st->fd);
            continue;
        }
        st->watched = true;
    }
    x->next = e->execs;
    e->execs = x;
    if (xs->entrypoint)
        e->entrypoint = x;
    e->last_activity_ns = sk_now_ns();
    if (xs->to_file)
        schedule_poll(s);
    exec_start_release(xs, false);
    exec_rec_copy(out, &x->rec);
    return 0;
}

/* ---- asynchronous exec start ---------------------------------------------------------
 * The loop does not wait while skiff-init forks and execs: the SPAWN goes
 * out, the answer is picked up by agent_pump (which completes pending
 * execs before it looks at any EXIT, so an exec is recorded before its
 * end), and the caller hears from a 0 ms timer. */

struct exec_pending {
    struct sched_sandbox *e; /* NULL once answered */
    struct sk_sched *s;
    struct exec_pending *next;
    uint32_t ticket;
    struct exec_start xs;
    sk_sched_exec_start_cb cb;
    void *arg;
    int ret;
    struct sk_error err;
    struct sk_exec_rec rec;
    uint64_t timer;
};

static void exec_pending_report(struct exec_pending *p)
{
    struct sk_sched *s = p->s;
    for (struct exec_pending **pp = &s->exec_done; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    timer_clear(s, &p->timer);
    p->cb(p->arg, p->ret, p->ret == 0 ? &p->rec : NULL, p->ret == 0 ? NULL : &p->err);
    sk_exec_rec_release(&p->rec);
    free(p);
}

static void on_exec_pending_report(void *arg)
{
    struct exec_pending *p = arg;
    p->timer = 0;
    exec_pending_report(p);
}

/* exec_pending_done - move an answered exec from its sandbox to the
 * report list. */
static void exec_pending_done(struct exec_pending *p)
{
    struct sched_sandbox *e = p->e;
    for (struct exec_pending **pp = &e->pending; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    p->e = NULL;
    struct sk_sched *s = p->s;
    p->next = s->exec_done;
    s->exec_done = p;
    if (!s->freeing)
        timer_arm(s, &p->timer, 0, on_exec_pending_report, p);
}

/* pending_spawns_check - complete every pending exec of e whose answer
 * has arrived. */
static void pending_spawns_check(struct sched_sandbox *e)
{
    struct exec_pending *p = e->pending;
    while (p != NULL) {
        struct exec_pending *next = p->next;
        struct sk_agent_proc proc;
        int r = sk_agent_spawn_finish(sk_sandbox_agent(e->sb), p->ticket, &proc, &p->err);
        if (r != 0) {
            if (r < 0) {
                exec_start_release(&p->xs, true);
                p->ret = r;
            } else {
                p->ret = exec_complete(e, &p->xs, &proc, &p->rec, &p->err);
            }
            exec_pending_done(p);
        }
        p = next;
    }
}

/* pending_spawns_fail - e ends: what skiff-init has answered is completed
 * (its exec then ends with the sandbox), the rest fails with EALREADY. */
static void pending_spawns_fail(struct sched_sandbox *e)
{
    pending_spawns_check(e);
    while (e->pending != NULL) {
        struct exec_pending *p = e->pending;
        sk_agent_spawn_abandon(sk_sandbox_agent(e->sb), p->ticket);
        exec_start_release(&p->xs, true);
        p->ret = sk_error_setv(&p->err, EALREADY, "sandbox '%s' ended before exec '%s' started", e->id, p->xs.id);
        exec_pending_done(p);
    }
}

/* exec_start - start an exec and wait for skiff-init's answer. */
static int exec_start(struct sched_sandbox *e, const struct sk_exec_req *req, bool entrypoint, struct sk_exec_rec *out,
                      struct sk_error *err)
{
    struct exec_start xs;
    int ret = exec_prepare(e, req, entrypoint, &xs, err);
    if (ret < 0)
        return ret;
    struct sk_agent_proc proc = {.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1};
    ret = sk_sandbox_exec(e->sb, &xs.spawn, &proc, err);
    schedule_pump(e);
    if (xs.to_file) {
        /* skiff-init has its own copies now */
        sk_close(&xs.files[OUT_STDOUT]);
        sk_close(&xs.files[OUT_STDERR]);
    }
    if (ret < 0) {
        exec_start_release(&xs, true);
        return ret;
    }
    return exec_complete(e, &xs, &proc, out, err);
}

/* ---- public: lifecycle ------------------------------------------------------------------- */

static void on_retention(void *arg);

int sk_sched_new(struct sk_runtime *rt, struct sk_store *st, const struct sk_loop_ops *loop,
                 const struct sk_sched_config *cfg, struct sk_sched **out, struct sk_error *err)
{
    *out = NULL;
    if (rt == NULL || st == NULL || loop == NULL || cfg == NULL || cfg->data_dir == NULL)
        return sk_error_setv(err, EINVAL, "the sandbox manager needs a runtime, a store, a loop and a data dir");
    if (cfg->default_timeout_ms < 0 || cfg->max_timeout_ms < 0 || cfg->retention_ms < 0 || cfg->max_output_bytes < 0)
        return sk_error_setv(err, EINVAL, "sandbox manager limits must not be negative");
    struct sk_sched *s = xcalloc(1, sizeof(*s));
    s->rt = rt;
    s->st = st;
    s->loop = *loop;
    s->data_dir = xstrdup(cfg->data_dir);
    s->sandboxes_dir = xasprintf("%s/sandboxes", cfg->data_dir);
    s->default_timeout_ms = cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : DEFAULT_TIMEOUT_MS;
    s->max_timeout_ms = cfg->max_timeout_ms;
    if (s->max_timeout_ms > 0 && s->default_timeout_ms > s->max_timeout_ms)
        s->default_timeout_ms = s->max_timeout_ms;
    s->retention_ms = cfg->retention_ms > 0 ? cfg->retention_ms : DEFAULT_RETENTION_MS;
    s->max_output = cfg->max_output_bytes > 0 ? cfg->max_output_bytes : DEFAULT_MAX_OUTPUT;
    s->on_sandbox = cfg->on_sandbox;
    s->on_exec_end = cfg->on_exec_end;
    s->observer_ctx = cfg->observer_ctx;
    s->pool = cfg->pool;
    s->net = cfg->net;
    s->wq_fd = -1;
    pthread_mutex_init(&s->wq_mu, NULL);
    pthread_cond_init(&s->wq_cv, NULL);
    s->buf = xmalloc(READ_CHUNK);
    s->ino_fd = -1;
    int ret = sk_mkdir_p(s->sandboxes_dir, 0700, err);
    if (ret < 0) {
        sk_sched_free(s);
        return ret;
    }
    /* Output files are followed with inotify; without it, by a timer. */
    s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->ino_fd < 0)
        sk_log_warn("inotify: %s; output files are polled every %d ms", strerror(errno), OUTPUT_POLL_MS);
    else if (s->loop.watch(s->loop.ctx, s->ino_fd, on_inotify, s) < 0)
        sk_close(&s->ino_fd);
    else
        s->ino_watched = true;
    struct sk_error perr = {0};
    if (sk_sched_purge(s, &perr) < 0)
        sk_log_warn("retention sweep: %s", perr.msg);
    timer_arm(s, &s->retention_timer, RETENTION_SWEEP_MS, on_retention, s);
    *out = s;
    return 0;
}

static void workers_stop(struct sk_sched *s);

void sk_sched_free(struct sk_sched *s)
{
    if (s == NULL)
        return;
    /* From here on nothing new is accepted and no timer is armed for
     * notifications: they are delivered below, from inside this call. */
    s->freeing = true;
    workers_stop(s); /* creations in flight end first: theirs are reported as failed */
    while (s->sandboxes != NULL)
        end_sandbox(s->sandboxes, "terminated", "server shutdown", -1);
    while (s->exec_done != NULL) /* execs that never got to run, and answers not yet reported */
        exec_pending_report(s->exec_done);
    /* Those waiting learn how it ended; then nothing more is called. */
    timer_clear(s, &s->dispatch_timer);
    dispatch(s);
    while (s->watchers != NULL) {
        struct watcher *w = s->watchers;
        watcher_unlink(s, w);
        free(w);
    }
    timer_clear(s, &s->retention_timer);
    timer_clear(s, &s->poll_timer);
    if (s->ino_watched)
        s->loop.unwatch(s->loop.ctx, s->ino_fd);
    sk_close(&s->ino_fd);
    free(s->data_dir);
    free(s->sandboxes_dir);
    free(s->buf);
    pthread_cond_destroy(&s->wq_cv);
    pthread_mutex_destroy(&s->wq_mu);
    free(s);
}

/* ---- public: retention and recovery -------------------------------------------------------- */

/* sweep_output_dirs - remove the output directory of every sandbox the
 * store no longer knows (purged, or a crash between purge and removal). */
static void sweep_output_dirs(struct sk_sched *s)
{
    DIR *d = opendir(s->sandboxes_dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_hex_id(de->d_name, "sb-") || sandbox_live(s, de->d_name) != NULL)
            continue;
        struct sk_sandbox_rec rec;
        struct sk_error err = {0};
        bool gone;
        if (sk_store_sandbox_get(s->st, de->d_name, &rec, &err) == 0) {
            gone = strcmp(rec.id, de->d_name) != 0; /* only a name spelled like it */
            sk_sandbox_rec_release(&rec);
        } else {
            gone = err.code == ENOENT;
        }
        if (!gone)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", s->sandboxes_dir, de->d_name);
        if (sk_remove_tree(path, &err) < 0)
            sk_log_warn("retention sweep: %s", err.msg);
    }
    closedir(d);
}

int sk_sched_purge(struct sk_sched *s, struct sk_error *err)
{
    int n = sk_store_sandbox_purge(s->st, now_ms() - s->retention_ms, err);
    if (n < 0)
        return n;
    sweep_output_dirs(s);
    if (n > 0)
        sk_log_info("retention sweep: %d ended sandboxes purged", n);
    return n;
}

static void on_retention(void *arg)
{
    struct sk_sched *s = arg;
    s->retention_timer = 0;
    struct sk_error err = {0};
    if (sk_sched_purge(s, &err) < 0)
        sk_log_warn("retention sweep: %s", err.msg);
    timer_arm(s, &s->retention_timer, RETENTION_SWEEP_MS, on_retention, s);
}

/* ms_until - milliseconds until CLOCK_MONOTONIC deadline_ns (rounded up,
 * 0 when past); `fallback` when there is no deadline. */
static int64_t ms_until(int64_t deadline_ns, int64_t fallback)
{
    if (deadline_ns <= 0)
        return fallback;
    int64_t left = deadline_ns - sk_now_ns();
    return left <= 0 ? 0 : (left + 999999) / 1000000;
}

/* runtime_json_new - the part of a sandbox's runtime_json that comes from
 * the request: its env, workdir and idle timeout, which its execs need
 * after an adoption too. EINVAL for text that is not UTF-8. */
static json_t *runtime_json_new(const struct sk_sandbox_req *req, struct sk_error *err)
{
    json_t *j = json_object();
    if (req->env != NULL) {
        json_t *env = json_array();
        for (size_t i = 0; req->env[i] != NULL; i++) {
            json_t *v = json_string(req->env[i]);
            if (v == NULL) {
                json_decref(env);
                json_decref(j);
                sk_error_setv(err, EINVAL, "env entry %zu is not valid UTF-8", i);
                return NULL;
            }
            json_array_append_new(env, v);
        }
        json_object_set_new(j, "env", env);
    }
    if (req->workdir != NULL) {
        json_t *v = json_string(req->workdir);
        if (v == NULL) {
            json_decref(j);
            sk_error_setv(err, EINVAL, "workdir is not valid UTF-8");
            return NULL;
        }
        json_object_set_new(j, "workdir", v);
    }
    if (req->idle_timeout_ms > 0)
        json_object_set_new(j, "idle_timeout_ms", json_integer((json_int_t)req->idle_timeout_ms));
    return j;
}

static void runtime_json_sync(struct sched_sandbox *e)
{
    free(e->rec.runtime_json);
    e->rec.runtime_json = json_dumps(e->runtime, JSON_COMPACT | JSON_SORT_KEYS);
}

/* ---- recovery ------------------------------------------------------------------------------ */

/* exec_record_lost - an exec recorded as running whose process cannot be
 * found: it ended while nobody watched, how is unknown (exit_code -1). */
static void exec_record_lost(struct sk_sched *s, struct sk_exec_rec *xr, int64_t now)
{
    struct sk_error err = {0};
    set_str(&xr->state, "exited");
    xr->exit_code = -1;
    xr->ended_at = now;
    if (sk_store_exec_update(s->st, xr, &err) < 0)
        sk_log_error("exec '%s': %s", xr->id, err.msg);
    else
        sk_log_warn("exec '%s': its process was not found after a restart; recorded as ended (exit code unknown)",
                    xr->id);
}

/* mark_lost - record a sandbox that could not be re-adopted (its remains
 * are removed by the caller) and its running execs as ended. */
static void mark_lost(struct sk_sched *s, struct sk_sandbox_rec *rec, const char *detail)
{
    struct sk_error err = {0};
    int64_t now = now_ms();
    struct sk_exec_rec *execs = NULL;
    size_t n = 0;
    if (sk_store_exec_list(s->st, rec->id, &execs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(execs[i].state, "running") == 0)
                exec_record_lost(s, &execs[i], now);
        sk_exec_recs_free(execs, n);
    } else {
        sk_log_error("sandbox '%s': list its execs: %s", rec->id, err.msg);
    }
    set_str(&rec->state, "terminated");
    set_str(&rec->reason, "lost");
    set_str(&rec->reason_detail, detail);
    rec->ended_at = now;
    if (sk_store_sandbox_update(s->st, rec, &err) < 0)
        sk_log_error("sandbox '%s': record it lost: %s", rec->id, err.msg);
    else
        sk_log_warn("sandbox '%s' ended: lost: %s", rec->id, detail);
    if (s->on_sandbox != NULL)
        s->on_sandbox(s->observer_ctx, rec);
}

/* exec_adopt - the live state of an exec recorded as running whose process
 * skiff-init lists as `pi`; linked into e. Its stdin pipe is gone (it went
 * with the earlier process: the process has seen EOF); a pty's master is
 * opened again, and input and output go through it as before. */
static struct sched_exec *exec_adopt(struct sched_sandbox *e, const struct sk_exec_rec *xr,
                                     const struct sk_agent_proc_info *pi)
{
    struct sk_sched *s = e->s;
    struct sched_exec *x = xcalloc(1, sizeof(*x));
    x->e = e;
    snprintf(x->id, sizeof(x->id), "%s", xr->id);
    exec_rec_copy(&x->rec, xr);
    x->proc_id = pi->id;
    x->pty = xr->pty;
    x->has_stdin = pi->pty || pi->want_stdin;
    x->stdin_fd = -1;
    x->in.closed = true;
    for (int i = 0; i < 2; i++) {
        struct stream *st = &x->out[i];
        *st = (struct stream){.x = x, .idx = i, .fd = -1, .file_fd = -1, .to_file = !x->pty};
        char path[PATH_MAX], suffix[32];
        struct stat sb;
        snprintf(suffix, sizeof(suffix), "%s.truncated", stream_names[i]);
        exec_output_path(s, e->id, x->id, suffix, path, sizeof(path));
        st->truncated = lstat(path, &sb) == 0;
        exec_output_path(s, e->id, x->id, stream_names[i], path, sizeof(path));
        if (lstat(path, &sb) == 0)
            st->stored = sb.st_size;
        if (x->pty && i == OUT_STDOUT) {
            st->file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (st->file_fd < 0)
                sk_log_error("exec '%s': open '%s': %s; dropping its further output", x->id, path, strerror(errno));
        }
    }
    if (x->pty && !pi->exited) {
        struct sk_error err = {0};
        struct stream *st = &x->out[OUT_STDOUT];
        if (sk_agent_open_pty(sk_sandbox_agent(e->sb), x->proc_id, &st->fd, &err) < 0) {
            sk_log_warn("exec '%s': re-open its pty: %s; its output is not followed", x->id, err.msg);
        } else {
            set_nonblock(st->fd);
            if (s->loop.watch(s->loop.ctx, st->fd, on_stream, st) < 0) {
                sk_log_error("exec '%s': cannot follow its pty: %s", x->id, strerror(errno));
                sk_close(&st->fd);
            } else {
                st->watched = true;
                x->in.closed = false;
            }
        }
    }
    if (pi->exited) {
        x->exited = true;
        x->ev = pi->end;
        x->exit_ns = sk_now_ns();
    }
    x->next = e->execs;
    e->execs = x;
    return x;
}

/* proc_matches - pi can be the process of exec xr (spawned the same way). */
static bool proc_matches(const struct sk_agent_proc_info *pi, const struct sk_exec_rec *xr)
{
    return pi->pty == xr->pty && pi->output_to_fds == !xr->pty;
}

/* reconcile_execs - match skiff-init's processes with the execs the store
 * says are running: a match goes on (or, if it ended while nobody owned
 * the sandbox, is finished by the caller with its real status); an exec
 * without a process is recorded as ended (-1); a process no running exec
 * claims is killed (its EXIT is released when it comes) or, if it has
 * ended, released. */
static int reconcile_execs(struct sched_sandbox *e, struct sk_error *err)
{
    struct sk_sched *s = e->s;
    struct sk_agent *a = sk_sandbox_agent(e->sb);
    struct sk_agent_proc_info *procs = NULL;
    size_t n = 0;
    int ret = sk_agent_list_procs(a, &procs, &n, err);
    if (ret < 0)
        return sk_error_prefix(err, "list its processes");
    struct sk_exec_rec *xrs = NULL;
    size_t nx = 0;
    if ((ret = sk_store_exec_list(s->st, e->id, &xrs, &nx, err)) < 0) {
        free(procs);
        return sk_error_prefix(err, "list its execs");
    }
    bool *claimed = xcalloc(n + 1, sizeof(bool));
    int64_t now = now_ms();
    for (size_t i = 0; i < nx; i++) {
        if (strcmp(xrs[i].state, "running") != 0)
            continue;
        uint32_t proc_id = xrs[i].proc_id;
        const struct sk_agent_proc_info *pi = NULL;
        if (proc_id != 0 || read_proc_file(s, e->id, xrs[i].id, &proc_id) == 0) {
            for (size_t k = 0; k < n && pi == NULL; k++) {
                if (!claimed[k] && procs[k].id == proc_id && proc_matches(&procs[k], &xrs[i])) {
                    claimed[k] = true;
                    pi = &procs[k];
                }
            }
        }
        if (pi == NULL)
            exec_record_lost(s, &xrs[i], now);
        else
            exec_adopt(e, &xrs[i], pi);
    }
    for (size_t k = 0; k < n; k++) {
        if (claimed[k])
            continue;
        struct sk_error perr = {0};
        if (procs[k].exited) {
            sk_agent_release(a, procs[k].id, NULL);
            continue;
        }
        sk_log_warn("sandbox '%s': process %u (pid %d) belongs to no recorded exec; killing it", e->id, procs[k].id,
                    (int)procs[k].pid);
        if (sk_agent_signal(a, procs[k].id, SIGKILL, &perr) < 0 && perr.code != ESRCH)
            sk_log_warn("sandbox '%s': %s", e->id, perr.msg);
    }
    free(claimed);
    free(procs);
    sk_exec_recs_free(xrs, nx);
    return 0;
}

/* network_readopt - take the adopted sandbox's network back (its veths and
 * chains survived us), or record it with mode "none" when it has none. */
static int network_readopt(struct sched_sandbox *e, struct sk_error *err)
{
    struct sk_sched *s = e->s;
    const json_t *state = json_object_get(e->runtime, "network");
    if (state != NULL)
        return sk_net_readopt(s->net, e->id, e->rec.name, sk_sandbox_pid(e->sb), state, err);
    struct sk_net_policy none = {0};
    json_t *st = NULL;
    int ret = sk_net_attach(s->net, e->id, e->rec.name, sk_sandbox_pid(e->sb), NULL, &none, &st, err);
    json_decref(st);
    return ret;
}

/* sandbox_readopt - rebuild the live state of adopted sandbox sb from its
 * record: env, workdir, watches, its execs, timers. Returns 1 when it runs
 * on, 0 when it turned out to have ended (its entrypoint exited while
 * nobody owned it: recorded as usual), -1 when it was recorded lost. */
static int sandbox_readopt(struct sk_sched *s, const struct sk_sandbox_rec *rec, json_t *runtime, struct sk_sandbox *sb)
{
    struct sched_sandbox *e = xcalloc(1, sizeof(*e));
    struct sk_error err = {0};
    e->s = s;
    e->sb = sb;
    e->wd = -1;
    e->persistent = true;
    e->runtime = json_incref(runtime);
    snprintf(e->id, sizeof(e->id), "%s", rec->id);
    sandbox_rec_copy(&e->rec, rec);
    json_t *env_j = json_object_get(runtime, "env");
    const char **env = NULL;
    if (json_is_array(env_j)) {
        env = xcalloc(json_array_size(env_j) + 1, sizeof(char *));
        size_t k = 0;
        for (size_t i = 0; i < json_array_size(env_j); i++) {
            const char *v = json_string_value(json_array_get(env_j, i));
            if (v != NULL && v[0] != '=' && strchr(v, '=') != NULL)
                env[k++] = v;
        }
    }
    sandbox_env_init(e, env);
    free(env);
    const char *workdir = json_string_value(json_object_get(runtime, "workdir"));
    e->workdir = workdir != NULL && workdir[0] == '/' ? xstrdup(workdir) : NULL;
    json_int_t idle = json_integer_value(json_object_get(runtime, "idle_timeout_ms"));
    e->idle_timeout_ms = idle > 0 ? (int64_t)idle : 0;
    e->last_activity_ns = sk_now_ns();
    e->next = s->sandboxes;
    s->sandboxes = e;
    /* Counted as running like a new one; its end is counted as usual. */
    if (s->on_sandbox != NULL)
        s->on_sandbox(s->observer_ctx, &e->rec);

    struct sk_loop_ops *l = &s->loop;
    if (l->watch(l->ctx, sk_agent_fd(sk_sandbox_agent(sb)), on_agent, e) < 0) {
        sk_error_set(&err, errno ? errno : EIO, "server restarted; watch its control socket");
        end_sandbox(e, "lost", err.msg, -1);
        return -1;
    }
    e->agent_watched = true;
    if (l->watch(l->ctx, sk_sandbox_pidfd(sb), on_pidfd, e) < 0) {
        sk_error_set(&err, errno ? errno : EIO, "server restarted; watch its init process");
        end_sandbox(e, "lost", err.msg, -1);
        return -1;
    }
    e->pidfd_watched = true;
    if (s->net != NULL && network_readopt(e, &err) < 0) {
        sk_error_prefix(&err, "server restarted");
        end_sandbox(e, "lost", err.msg, -1);
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s/execs", s->sandboxes_dir, e->id);
    if (sk_mkdir_p(dir, 0700, &err) == 0)
        sandbox_watch_dir(e, dir);
    if (reconcile_execs(e, &err) < 0) {
        sk_error_prefix(&err, "server restarted");
        end_sandbox(e, "lost", err.msg, -1);
        return -1;
    }

    /* The timeout at its original deadline (the runtime's, kept in the
     * adopt info); idleness counts from now. */
    int64_t deadline = sk_sandbox_deadline_ns(sb);
    if (deadline > 0)
        timer_arm(s, &e->timeout_timer, ms_until(deadline, 0), on_timeout, e);
    if (e->idle_timeout_ms > 0)
        timer_arm(s, &e->idle_timer, e->idle_timeout_ms, on_idle, e);

    const char *ep = json_string_value(json_object_get(runtime, "entrypoint_exec"));
    if (ep != NULL) {
        for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
            if (strcmp(x->id, ep) == 0)
                e->entrypoint = x;
        if (e->entrypoint == NULL) {
            /* It ended before the crash (and its sandbox's end was not
             * stored), or its process is gone: the sandbox ends with it. */
            struct sk_exec_rec xr;
            int code = -1;
            if (sk_store_exec_get(s->st, ep, &xr, NULL) == 0) {
                code = xr.exit_code;
                sk_exec_rec_release(&xr);
            }
            if (code >= 0) {
                end_sandbox(e, "exited", NULL, code);
                return 0;
            }
            end_sandbox(e, "lost", "server restarted; its entrypoint's process was not found", -1);
            return -1;
        }
        if (e->entrypoint->exited) {
            const struct sk_agent_event *ev = &e->entrypoint->ev;
            bool oom = ev->signo == SIGKILL && sk_sandbox_oom_kills(e->sb) > 0;
            end_sandbox(e, oom ? "oom" : "exited", NULL, ev->exit_code);
            return 0;
        }
    }
    /* Execs that ended while nobody owned the sandbox: their real status. */
    size_t n_ended = 0;
    for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
        n_ended += x->exited;
    if (n_ended > 0) {
        struct sched_exec **ended = xcalloc(n_ended, sizeof(*ended));
        size_t k = 0;
        for (struct sched_exec *x = e->execs; x != NULL; x = x->next)
            if (x->exited)
                ended[k++] = x;
        for (size_t i = 0; i < k; i++)
            exec_after_exit(ended[i]); /* each frees only itself */
        free(ended);
    }
    size_t running = 0;
    for (struct sched_exec *x = e->execs; x != NULL; x = x->next) {
        exec_poll_files(x); /* the cap, for what was written while nobody looked */
        running++;
    }
    schedule_poll(s);
    schedule_pump(e); /* EXITs skiff-init sent again after HELLO */
    sk_log_info("sandbox '%s' re-adopted (pid %d, %zu exec(s) running, %zu ended meanwhile)", e->id,
                (int)sk_sandbox_pid(sb), running, n_ended);
    return 1;
}

/* recover_one - re-adopt the sandbox of record rec, or destroy what is left
 * of it and record it lost. Returns as sandbox_readopt. */
static int recover_one(struct sk_sched *s, struct sk_sandbox_rec *rec)
{
    struct sk_error err = {0};
    json_t *runtime = rec->runtime_json != NULL ? json_loads(rec->runtime_json, 0, NULL) : NULL;
    const char *adopt = json_string_value(json_object_get(runtime, "adopt"));
    struct sk_sandbox_adopt_info info;
    int parsed = adopt != NULL ? sk_sandbox_adopt_info_parse(adopt, &info, &err)
                               : sk_error_setv(&err, ENOENT, "no adopt record");
    if (parsed == 0 && strcmp(info.id, rec->id) != 0)
        parsed = sk_error_setv(&err, EINVAL, "its adopt record names another sandbox");
    bool have_info = parsed == 0;
    if (have_info && strcmp(rec->state, "running") != 0) {
        sk_error_setv(&err, EINPROGRESS, "it was still being created");
    } else if (have_info) {
        struct sk_sandbox *sb = NULL;
        if (sk_sandbox_adopt(s->rt, &info, &sb, &err) == 0) {
            int r = sandbox_readopt(s, rec, runtime, sb);
            json_decref(runtime);
            return r;
        }
    }
    json_decref(runtime);
    char detail[sizeof(err.msg) + 32];
    snprintf(detail, sizeof(detail), "server restarted: %s", err.msg);
    struct sk_error derr = {0};
    if (have_info && sk_sandbox_destroy_orphan(s->rt, &info, &derr) < 0)
        sk_log_warn("sandbox '%s': %s", rec->id, derr.msg);
    mark_lost(s, rec, detail);
    return -1;
}

int sk_sched_recover(struct sk_sched *s, struct sk_error *err)
{
    /* Every record first (recovering changes states, and with them the
     * pages of a listing by state). */
    struct sk_sandbox_rec *all = NULL;
    size_t n_all = 0;
    static const char *const states[] = {"running", "creating"};
    for (size_t k = 0; k < SK_ARRAY_SIZE(states); k++) {
        char *cursor = NULL;
        do {
            struct sk_sandbox_filter f = {.state = states[k], .limit = 1000, .cursor = cursor};
            struct sk_sandbox_rec *recs = NULL;
            size_t n = 0;
            char *next = NULL;
            int ret = sk_store_sandbox_list(s->st, &f, &recs, &n, &next, err);
            free(cursor);
            cursor = NULL;
            if (ret < 0) {
                sk_sandbox_recs_free(all, n_all);
                return ret;
            }
            all = xrealloc(all, (n_all + n + 1) * sizeof(*all));
            if (n > 0)
                memcpy(all + n_all, recs, n * sizeof(*recs));
            n_all += n;
            free(recs); /* the records' fields moved to all */
            cursor = next;
        } while (cursor != NULL);
    }
    int lost = 0, adopted = 0;
    for (size_t i = 0; i < n_all; i++) {
        if (sandbox_live(s, all[i].id) != NULL)
            continue;
        int r = recover_one(s, &all[i]);
        adopted += r > 0;
        lost += r < 0;
    }
    sk_sandbox_recs_free(all, n_all);
    /* Whatever no record claims (an earlier process died between creating
     * a sandbox and recording it, or recorded it lost): kill and remove. */
    struct sk_error serr = {0};
    int swept = sk_runtime_cleanup_stale(s->rt, &serr);
    if (swept < 0)
        sk_log_warn("stale sandbox sweep: %s", serr.msg);
    else if (swept > 0)
        sk_log_info("stale sandbox sweep: %d leftover(s) removed", swept);
    /* The same for networks: veths, rules and bridges no sandbox claims. */
    if (s->net != NULL && sk_net_sweep(s->net, &serr) < 0)
        sk_log_warn("network sweep: %s", serr.msg);
    if (adopted > 0 || lost > 0)
        sk_log_info("recovery: %d sandbox(es) re-adopted, %d lost", adopted, lost);
    return lost;
}

/* ---- public: sandboxes ----------------------------------------------------------------- */

/* record_failed - a sandbox the runtime could not create is still recorded,
 * under an id of its own and without its name (which stays free). */
static void record_failed(struct sk_sched *s, int64_t created_at, const char *spec_json, const char *tags,
                          struct sk_error *err)
{
    char hex[17], id[SK_SANDBOX_ID_LEN + 1];
    struct sk_error e2 = {0};
    if (sk_random_hex(hex, 8, &e2) < 0)
        return;
    snprintf(id, sizeof(id), "sb-%s", hex);
    char state[] = "terminated", reason[] = "error";
    struct sk_sandbox_rec rec = {.id = id,
                                 .state = state,
                                 .spec_json = (char *)spec_json,
                                 .tags_json = (char *)tags,
                                 .created_at = created_at,
                                 .ended_at = now_ms(),
                                 .exit_code = -1,
                                 .reason = reason,
                                 .reason_detail = err->msg};
    if (sk_store_sandbox_insert(s->st, &rec, &e2) < 0) {
        sk_log_error("sandbox '%s': record its failure: %s", id, e2.msg);
        return;
    }
    sk_error_prefix(err, "sandbox '%s'", id);
}

/* What sk_sched_create checked and prepared before it has a sandbox. */
struct create_prep {
    int64_t timeout;
    int64_t created_at;
    char *tags;      /* normalized, or NULL */
    char *spec_json; /* as stored */
    json_t *runtime; /* what a new owner needs besides the adopt info */
    struct sk_sandbox_spec spec;
    struct sk_net_policy net; /* the network to attach (zero: mode "none") */
};

static void create_prep_release(struct create_prep *p)
{
    free(steal_pointer(&p->tags));
    free(steal_pointer(&p->spec_json));
    json_decref(steal_pointer(&p->runtime));
    sk_net_policy_release(&p->net);
}

/* network_check - the network a create request asks for, parsed and
 * checked against what this server offers. */
static int network_check(struct sk_sched *s, const char *text, struct sk_net_policy *out, struct sk_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    int ret = sk_net_policy_from_json(j, out, err);
    json_decref(j);
    if (ret < 0)
        return ret;
    if ((out->egress || out->group != NULL) && s->net == NULL)
        return sk_error_setv(err, ENOTSUP, "sandbox networking is not available on this server");
    return s->net != NULL ? sk_net_check_policy(s->net, out, err) : 0;
}

/* create_check - everything about a create request that needs no sandbox:
 * its errors cost nothing and record nothing. */
static int create_check(struct sk_sched *s, const struct sk_sandbox_req *req, struct create_prep *p,
                        struct sk_error *err)
{
    memset(p, 0, sizeof(*p));
    if (s->freeing)
        return sk_error_setv(err, EBUSY, "the server is shutting down");
    int64_t timeout = req->timeout_ms;
    if (timeout < 0)
        return sk_error_setv(err, EINVAL, "timeout must not be negative");
    if (timeout == 0)
        timeout = s->default_timeout_ms;
    else if (s->max_timeout_ms > 0 && timeout > s->max_timeout_ms)
        return sk_error_setv(err, EINVAL, "timeout of %lld ms is above the maximum of %lld ms", (long long)timeout,
                             (long long)s->max_timeout_ms);
    if (req->idle_timeout_ms < 0)
        return sk_error_setv(err, EINVAL, "idle timeout must not be negative");
    if (req->name != NULL && !valid_name(req->name))
        return sk_error_setv(err, EINVAL, "name must be 1 to %d of A-Z a-z 0-9 . _ -", SK_SCHED_NAME_MAX);
    if (req->workdir != NULL && req->workdir[0] != '/')
        return sk_error_setv(err, EINVAL, "workdir must be an absolute path");
    int ret = validate_env(req->env, err);
    if (ret < 0)
        return ret;
    if (req->entrypoint != NULL && (ret = validate_argv("entrypoint", req->entrypoint, err)) < 0)
        return ret;
    _cleanup_free_ char *tags = NULL;
    if (req->tags_json != NULL && (ret = normalize_tags(req->tags_json, &tags, err)) < 0)
        return ret;
    _cleanup_free_ char *spec_json = NULL;
    if (req->spec_json != NULL) {
        if (strlen(req->spec_json) > SPEC_JSON_MAX)
            return sk_error_setv(err, E2BIG, "the spec is larger than %d bytes", SPEC_JSON_MAX);
        json_t *j = json_loads(req->spec_json, 0, NULL);
        bool ok = json_is_object(j);
        json_decref(j);
        if (!ok)
            return sk_error_setv(err, EINVAL, "the spec must be a JSON object");
        spec_json = xstrdup(req->spec_json);
    } else if ((spec_json = spec_summary(req, timeout, err)) == NULL) {
        return -err->code;
    }
    if (req->name != NULL) {
        /* Checked here so that a clash costs no sandbox; the insert below
         * checks again (the store's unique index decides). */
        struct sk_sandbox_rec other;
        if (sk_store_sandbox_get(s->st, req->name, &other, NULL) == 0) {
            bool taken = other.name != NULL && strcmp(other.name, req->name) == 0;
            sk_sandbox_rec_release(&other);
            if (taken)
                return sk_error_setv(err, EEXIST, "a sandbox named '%s' already exists", req->name);
        }
    }

    if (req->network_json != NULL && (ret = network_check(s, req->network_json, &p->net, err)) < 0)
        return ret;

    /* What a new owner needs besides the runtime's adopt info. */
    json_t *runtime = runtime_json_new(req, err);
    if (runtime == NULL)
        return -err->code;

    p->timeout = timeout;
    p->created_at = now_ms();
    p->tags = steal_pointer(&tags);
    p->spec_json = steal_pointer(&spec_json);
    p->runtime = runtime;
    p->spec = (struct sk_sandbox_spec){
        .image = req->image,
        .limits = req->limits,
        .disk_bytes = req->disk_bytes,
        .timeout_ms = timeout,
        .die_with_owner = false,
        .persistent = true, /* a restarted server adopts it (sk_sched_recover) */
    };
    return 0;
}

/* create_finish - the sandbox exists (ret 0: sb, from the pool when
 * pooled) or could not be made (ret < 0, err says why): record it, watch
 * it, start its entrypoint, report it. Takes p's strings and JSON. */
static int create_finish(struct sk_sched *s, const struct sk_sandbox_req *req, struct create_prep *p,
                         struct sk_sandbox *sb, int ret, bool pooled, struct sk_sandbox_rec *out, struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    int64_t timeout = p->timeout, created_at = p->created_at;
    _cleanup_free_ char *tags = steal_pointer(&p->tags);
    _cleanup_free_ char *spec_json = steal_pointer(&p->spec_json);
    json_t *runtime = steal_pointer(&p->runtime);
    struct sk_sandbox_adopt_info info;
    char adopt[SK_SANDBOX_ADOPT_INFO_MAX];
    if (ret == 0 && (ret = sk_sandbox_describe(sb, &info, err)) == 0 &&
        sk_sandbox_adopt_info_format(&info, adopt, sizeof(adopt)) < 0)
        ret = sk_error_setv(err, ENOSPC, "sandbox '%s': its adopt record does not fit", sk_sandbox_id(sb));
    if (ret < 0) {
        sk_sandbox_free(sb);
        json_decref(runtime);
        if (err->code != EINVAL) /* EINVAL: a bad request, not a failed sandbox */
            record_failed(s, created_at, spec_json, tags, err);
        return ret;
    }
    json_object_set_new(runtime, "adopt", json_string(adopt));
    /* Its network before anything can run in it (the entrypoint starts
     * below), and before it is recorded, so that the record says how to
     * re-attach it. */
    json_t *net_state = NULL;
    if (s->net != NULL && (ret = sk_net_attach(s->net, sk_sandbox_id(sb), req->name, sk_sandbox_pid(sb),
                                               sk_sandbox_agent(sb), &p->net, &net_state, err)) < 0) {
        sk_error_prefix(err, "sandbox '%s': network", sk_sandbox_id(sb));
        sk_sandbox_free(sb);
        json_decref(runtime);
        if (err->code != EINVAL)
            record_failed(s, created_at, spec_json, tags, err);
        return ret;
    }
    if (net_state != NULL)
        json_object_set_new(runtime, "network", net_state);

    struct sched_sandbox *e = xcalloc(1, sizeof(*e));
    e->s = s;
    e->sb = sb;
    e->wd = -1;
    e->persistent = sk_sandbox_is_persistent(sb);
    e->runtime = runtime;
    snprintf(e->id, sizeof(e->id), "%s", sk_sandbox_id(sb));
    e->rec = (struct sk_sandbox_rec){.id = xstrdup(e->id),
                                     .name = dup_or_null(req->name),
                                     /* Without an entrypoint nothing happens between the
                                        insert and "running": one commit instead of two. */
                                     .state = xstrdup(req->entrypoint != NULL ? "creating" : "running"),
                                     .spec_json = steal_pointer(&spec_json),
                                     .tags_json = tags != NULL ? steal_pointer(&tags) : xstrdup("{}"),
                                     .created_at = created_at,
                                     .started_at = req->entrypoint != NULL ? 0 : now_ms(),
                                     .exit_code = -1,
                                     .host_pid = sk_sandbox_pid(sb)};
    if (pooled)
        json_object_set_new(e->runtime, "pooled", json_true());
    runtime_json_sync(e);
    /* Committed with its adopt info before anything is reported: a crash
     * from here on leaves a record that recovery can act on. */
    ret = sk_store_sandbox_insert(s->st, &e->rec, err);
    if (ret < 0) {
        if (s->net != NULL)
            sk_net_detach(s->net, e->id, false);
        sk_sandbox_free(sb);
        sandbox_entry_free(e);
        return ret;
    }
    sandbox_env_init(e, req->env);
    e->workdir = dup_or_null(req->workdir);
    e->idle_timeout_ms = req->idle_timeout_ms;
    e->last_activity_ns = sk_now_ns();
    e->next = s->sandboxes;
    s->sandboxes = e;

    struct sk_loop_ops *l = &s->loop;
    if (l->watch(l->ctx, sk_agent_fd(sk_sandbox_agent(sb)), on_agent, e) < 0) {
        ret = sk_error_set(err, errno ? errno : EIO, "watch the sandbox's control socket");
        end_sandbox(e, "error", err->msg, -1);
        return ret;
    }
    e->agent_watched = true;
    if (l->watch(l->ctx, sk_sandbox_pidfd(sb), on_pidfd, e) < 0) {
        ret = sk_error_set(err, errno ? errno : EIO, "watch the sandbox's init process");
        end_sandbox(e, "error", err->msg, -1);
        return ret;
    }
    e->pidfd_watched = true;

    if (req->entrypoint != NULL) {
        struct sk_exec_req xr = {.argv = req->entrypoint, .stdin_pipe = req->entrypoint_stdin};
        struct sk_exec_rec xrec;
        ret = exec_start(e, &xr, true, &xrec, err);
        if (ret < 0) {
            sk_error_prefix(err, "start the entrypoint");
            end_sandbox(e, "error", err->msg, -1);
            return ret;
        }
        json_object_set_new(e->runtime, "entrypoint_exec", json_string(xrec.id));
        runtime_json_sync(e);
        sk_exec_rec_release(&xrec);
    }
    if (req->entrypoint != NULL) {
        set_str(&e->rec.state, "running");
        e->rec.started_at = now_ms();
        ret = sk_store_sandbox_update(s->st, &e->rec, err);
        if (ret < 0) {
            end_sandbox(e, "error", err->msg, -1);
            return ret;
        }
    }
    /* The runtime's deadline, the same one an adoption re-arms. */
    timer_arm(s, &e->timeout_timer, ms_until(sk_sandbox_deadline_ns(sb), timeout), on_timeout, e);
    if (e->idle_timeout_ms > 0)
        timer_arm(s, &e->idle_timer, e->idle_timeout_ms, on_idle, e);
    sk_log_info("sandbox '%s' running (pid %d%s)", e->id, (int)sk_sandbox_pid(sb), pooled ? ", from the pool" : "");
    if (s->on_sandbox != NULL)
        s->on_sandbox(s->observer_ctx, &e->rec);
    sandbox_rec_copy(out, &e->rec);
    return 0;
}

int sk_sched_create(struct sk_sched *s, const struct sk_sandbox_req *req, struct sk_sandbox_rec *out,
                    struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    struct create_prep p;
    int ret = create_check(s, req, &p, err);
    if (ret < 0) {
        create_prep_release(&p);
        return ret;
    }
    struct sk_sandbox *sb = NULL;
    /* A ready sandbox from the warm pool when there is one: no namespace,
     * mount or cgroup is made on this path then. */
    ret = s->pool != NULL ? sk_pool_claim(s->pool, &p.spec, &sb, err) : 0;
    bool pooled = ret > 0;
    if (ret == 0)
        ret = sk_sandbox_create(s->rt, &p.spec, &sb, err);
    else if (ret > 0)
        ret = 0;
    ret = create_finish(s, req, &p, sb, ret, pooled, out, err);
    create_prep_release(&p);
    return ret;
}

/* ---- asynchronous creation ----------------------------------------------------------------
 * A create that the pool cannot serve builds its sandbox on a worker
 * thread (the runtime allows concurrent creations), so the loop keeps
 * serving everything else meanwhile and creations use every CPU. Workers
 * touch nothing of the manager but the job queue. */

struct create_job {
    struct sk_sched *s;
    struct create_job *next;     /* in the worker queue, then the done list */
    struct create_job *all_next; /* every job not yet reported */
    /* the request, copied */
    struct sk_sandbox_req req;
    char *image, *workdir, *name, *tags_json, *spec_json, *network_json;
    char **entrypoint, **env;
    struct create_prep prep;
    sk_sched_create_cb cb;
    void *arg;
    /* the outcome */
    struct sk_sandbox *sb;
    bool pooled;
    int ret;
    struct sk_error err;
    struct sk_sandbox_rec rec;
    bool finished; /* create_finish ran: rec/ret/err are final */
    uint64_t timer;
};

static char **strv_dup(const char *const *v)
{
    if (v == NULL)
        return NULL;
    size_t n = count_list(v);
    char **out = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static void job_free(struct create_job *j)
{
    free(j->image);
    free(j->workdir);
    free(j->name);
    free(j->tags_json);
    free(j->spec_json);
    free(j->network_json);
    strv_free(j->entrypoint);
    strv_free(j->env);
    create_prep_release(&j->prep);
    sk_sandbox_rec_release(&j->rec);
    free(j);
}

static void job_unlink(struct sk_sched *s, struct create_job *j)
{
    for (struct create_job **pp = &s->jobs; *pp != NULL; pp = &(*pp)->all_next)
        if (*pp == j) {
            *pp = j->all_next;
            return;
        }
}

/* job_report - call the job's callback (once) and free it. */
static void job_report(struct create_job *j)
{
    struct sk_sched *s = j->s;
    job_unlink(s, j);
    timer_clear(s, &j->timer);
    j->cb(j->arg, j->ret, j->ret == 0 ? &j->rec : NULL, j->ret == 0 ? NULL : &j->err);
    job_free(j);
}

static void on_job_report(void *arg)
{
    struct create_job *j = arg;
    j->timer = 0;
    job_report(j);
}

static void job_finish(struct create_job *j)
{
    j->ret = create_finish(j->s, &j->req, &j->prep, j->sb, j->ret, j->pooled, &j->rec, &j->err);
    j->sb = NULL; /* create_finish owns it now (kept or freed) */
    j->finished = true;
}

struct destroy_job {
    struct sk_sandbox *sb;
    struct destroy_job *next;
};

static void *create_worker(void *arg)
{
    struct sk_sched *s = arg;
    pthread_mutex_lock(&s->wq_mu);
    for (;;) {
        while (s->wq_head == NULL && s->dq_head == NULL && !s->wq_stop)
            pthread_cond_wait(&s->wq_cv, &s->wq_mu);
        if (s->wq_head == NULL && s->dq_head != NULL) {
            /* creations first (someone waits for them); teardowns when
             * there is none, and all of them before a stop */
            struct destroy_job *dj = s->dq_head;
            s->dq_head = dj->next;
            pthread_mutex_unlock(&s->wq_mu);
            sk_sandbox_free(dj->sb);
            free(dj);
            pthread_mutex_lock(&s->wq_mu);
            continue;
        }
        if (s->wq_head == NULL)
            break;
        struct create_job *j = s->wq_head;
        s->wq_head = j->next;
        if (s->wq_head == NULL)
            s->wq_tail = NULL;
        pthread_mutex_unlock(&s->wq_mu);
        j->ret = sk_sandbox_create(s->rt, &j->prep.spec, &j->sb, &j->err);
        pthread_mutex_lock(&s->wq_mu);
        j->next = s->wq_done;
        s->wq_done = j;
        uint64_t one = 1;
        ssize_t w = write(s->wq_fd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_unlock(&s->wq_mu);
    return NULL;
}

/* on_jobs_done - on the loop: finish what the workers built, oldest
 * first, and report it. */
static void on_jobs_done(void *arg)
{
    struct sk_sched *s = arg;
    uint64_t n;
    ssize_t r = read(s->wq_fd, &n, sizeof(n));
    (void)r;
    pthread_mutex_lock(&s->wq_mu);
    struct create_job *done = s->wq_done;
    s->wq_done = NULL;
    pthread_mutex_unlock(&s->wq_mu);
    struct create_job *rev = NULL;
    while (done != NULL) {
        struct create_job *next = done->next;
        done->next = rev;
        rev = done;
        done = next;
    }
    while (rev != NULL) {
        struct create_job *j = rev;
        rev = j->next;
        job_finish(j);
        job_report(j);
    }
}

static int workers_start(struct sk_sched *s, struct sk_error *err)
{
    if (s->n_workers > 0)
        return 0;
    s->wq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wq_fd < 0)
        return sk_error_set(err, errno, "eventfd");
    if (s->loop.watch(s->loop.ctx, s->wq_fd, on_jobs_done, s) < 0) {
        int e = errno ? errno : EIO;
        sk_close(&s->wq_fd);
        return sk_error_set(err, e, "watch the creation workers");
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus < 1 ? 1 : cpus > SCHED_WORKERS_MAX ? SCHED_WORKERS_MAX : (int)cpus;
    for (int i = 0; i < want; i++) {
        int e = pthread_create(&s->workers[s->n_workers], NULL, create_worker, s);
        if (e != 0) {
            if (s->n_workers > 0)
                break;
            s->loop.unwatch(s->loop.ctx, s->wq_fd);
            sk_close(&s->wq_fd);
            return sk_error_set(err, e, "start a creation worker");
        }
        s->n_workers++;
    }
    return 0;
}

/* workers_stop - at sk_sched_free: let the workers end what they build,
 * then report every job left (sandboxes made for them are destroyed). */
static void workers_stop(struct sk_sched *s)
{
    if (s->n_workers > 0) {
        pthread_mutex_lock(&s->wq_mu);
        s->wq_stop = true;
        /* jobs nobody started are not started */
        for (struct create_job *j = s->wq_head; j != NULL; j = j->next) {
            j->ret = sk_error_setv(&j->err, EBUSY, "the server is shutting down");
            j->finished = true;
        }
        s->wq_head = s->wq_tail = NULL;
        pthread_cond_broadcast(&s->wq_cv);
        pthread_mutex_unlock(&s->wq_mu);
        for (int i = 0; i < s->n_workers; i++)
            pthread_join(s->workers[i], NULL);
        s->n_workers = 0;
        s->loop.unwatch(s->loop.ctx, s->wq_fd);
        sk_close(&s->wq_fd);
    }
    while (s->jobs != NULL) {
        struct create_job *j = s->jobs;
        if (!j->finished) {
            sk_sandbox_free(steal_pointer(&j->sb));
            create_prep_release(&j->prep);
            j->ret = sk_error_setv(&j->err, EBUSY, "the server is shutting down");
            j->finished = true;
        }
        job_report(j);
    }
}

/* destroy_later - sk_sandbox_free on a worker (at once here when no
 * worker can be had, or while the manager is being freed). */
static void destroy_later(struct sk_sched *s, struct sk_sandbox *sb)
{
    if (sb == NULL)
        return;
    if (s->freeing || workers_start(s, NULL) < 0) {
        sk_sandbox_free(sb);
        return;
    }
    struct destroy_job *dj = xcalloc(1, sizeof(*dj));
    dj->sb = sb;
    pthread_mutex_lock(&s->wq_mu);
    dj->next = s->dq_head;
    s->dq_head = dj;
    pthread_cond_signal(&s->wq_cv);
    pthread_mutex_unlock(&s->wq_mu);
}

int sk_sched_create_async(struct sk_sched *s, const struct sk_sandbox_req *req, sk_sched_create_cb cb, void *arg,
                          struct sk_error *err)
{
    struct create_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->cb = cb;
    j->arg = arg;
    j->image = req->image ? xstrdup(req->image) : NULL;
    j->workdir = req->workdir ? xstrdup(req->workdir) : NULL;
    j->name = req->name ? xstrdup(req->name) : NULL;
    j->tags_json = req->tags_json ? xstrdup(req->tags_json) : NULL;
    j->spec_json = req->spec_json ? xstrdup(req->spec_json) : NULL;
    j->network_json = req->network_json ? xstrdup(req->network_json) : NULL;
    j->entrypoint = strv_dup(req->entrypoint);
    j->env = strv_dup(req->env);
    j->req = *req;
    j->req.image = j->image;
    j->req.workdir = j->workdir;
    j->req.name = j->name;
    j->req.tags_json = j->tags_json;
    j->req.spec_json = j->spec_json;
    j->req.network_json = j->network_json;
    j->req.entrypoint = (const char *const *)j->entrypoint;
    j->req.env = (const char *const *)j->env;
    int ret = create_check(s, &j->req, &j->prep, err);
    if (ret < 0) {
        job_free(j);
        return ret;
    }
    j->prep.spec.image = j->image; /* the copy's, which lives with the job */
    ret = s->pool != NULL ? sk_pool_claim(s->pool, &j->prep.spec, &j->sb, &j->err) : 0;
    if (ret != 0) {
        /* served by the pool (or failed applying its limits): at once */
        j->pooled = ret > 0;
        j->ret = ret > 0 ? 0 : ret;
        job_finish(j);
        j->all_next = s->jobs;
        s->jobs = j;
        timer_arm(s, &j->timer, 0, on_job_report, j);
        return 0;
    }
    if ((ret = workers_start(s, err)) < 0) {
        job_free(j);
        return ret;
    }
    j->all_next = s->jobs;
    s->jobs = j;
    pthread_mutex_lock(&s->wq_mu);
    if (s->wq_tail != NULL)
        s->wq_tail->next = j;
    else
        s->wq_head = j;
    s->wq_tail = j;
    pthread_cond_signal(&s->wq_cv);
    pthread_mutex_unlock(&s->wq_mu);
    return 0;
}

void sk_sched_set_pool(struct sk_sched *s, struct sk_pool *pool)
{
    s->pool = pool;
}

int sk_sched_prepare_dir(const char *data_dir, const char *sandbox_id, struct sk_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/sandboxes/%s/execs", data_dir, sandbox_id);
    int ret = sk_mkdir_p(dir, 0700, err);
    /* The first exec's output files, made here: creating a file can cost a
     * millisecond or more on a busy file system, renaming one does not. */
    for (int i = 0; ret == 0 && i < 2; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/" SPARE_NAME ".%s", dir, stream_names[i]);
        int fd = -1;
        ret = open_output(path, &fd, err);
        sk_close(&fd);
    }
    return ret;
}

int sk_sched_get(struct sk_sched *s, const char *id_or_name, struct sk_sandbox_rec *out, struct sk_error *err)
{
    return sk_store_sandbox_get(s->st, id_or_name, out, err);
}

int sk_sched_set_tags(struct sk_sched *s, const char *id_or_name, const char *tags_json, struct sk_error *err)
{
    _cleanup_free_ char *tags = NULL;
    int ret = normalize_tags(tags_json != NULL ? tags_json : "{}", &tags, err);
    if (ret < 0)
        return ret;
    struct sk_sandbox_rec rec;
    if ((ret = sk_store_sandbox_get(s->st, id_or_name, &rec, err)) < 0)
        return ret;
    ret = sk_store_sandbox_set_tags(s->st, rec.id, tags, err);
    struct sched_sandbox *e = sandbox_live(s, rec.id);
    if (ret == 0 && e != NULL)
        set_str(&e->rec.tags_json, tags);
    sk_sandbox_rec_release(&rec);
    return ret;
}

int sk_sched_entrypoint_exec(struct sk_sched *s, const char *id_or_name, char exec_id[SK_EXEC_ID_LEN + 1],
                             struct sk_error *err)
{
    exec_id[0] = '\0';
    struct sk_sandbox_rec rec;
    int ret = sk_store_sandbox_get(s->st, id_or_name, &rec, err);
    if (ret < 0)
        return ret;
    json_t *j = rec.runtime_json != NULL ? json_loads(rec.runtime_json, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "entrypoint_exec"));
    if (id != NULL && is_hex_id(id, "ex-"))
        snprintf(exec_id, SK_EXEC_ID_LEN + 1, "%s", id);
    else
        ret = sk_error_setv(err, ENOENT, "sandbox '%s' has no entrypoint", rec.id);
    json_decref(j);
    sk_sandbox_rec_release(&rec);
    return ret;
}

int sk_sched_terminate(struct sk_sched *s, const char *id_or_name, const char *by, struct sk_error *err)
{
    bool exists = false;
    struct sched_sandbox *e = sandbox_resolve(s, id_or_name, &exists);
    if (e == NULL) {
        if (!exists)
            return sk_error_setv(err, ENOENT, "sandbox '%s' not found", id_or_name ? id_or_name : "");
        return 0; /* it has ended already */
    }
    end_sandbox(e, "terminated", by, -1);
    return 0;
}

int sk_sched_usage(struct sk_sched *s, const char *id, struct sk_cgroup_usage *u, struct sk_error *err)
{
    bool exists = false;
    struct sched_sandbox *e = sandbox_resolve(s, id, &exists);
    if (e == NULL)
        return sk_error_setv(err, ENOENT, "sandbox '%s' is not running", id ? id : "");
    return sk_sandbox_usage(e->sb, u, err);
}

void sk_sched_touch(struct sk_sched *s, const char *id)
{
    struct sched_sandbox *e = sandbox_live(s, id);
    if (e != NULL)
        e->last_activity_ns = sk_now_ns();
}

int sk_sched_wait(struct sk_sched *s, const char *id, int64_t timeout_ms, sk_sched_wait_cb cb, void *arg,
                  uint64_t *waiter, struct sk_error *err)
{
    *waiter = 0;
    if (cb == NULL)
        return sk_error_setv(err, EINVAL, "a waiter needs a callback");
    if (s->freeing)
        return sk_error_setv(err, EBUSY, "the server is shutting down");
    struct sk_sandbox_rec rec;
    int ret = sk_store_sandbox_get(s->st, id, &rec, err);
    if (ret < 0)
        return ret;
    struct sched_sandbox *e = sandbox_live(s, rec.id);
    struct watcher *w = watcher_add(s, W_SANDBOX, rec.id, e != NULL ? timeout_ms : 0, arg);
    w->sb_cb = cb;
    if (e == NULL) {
        /* ended (or never to be seen running here): answer from the loop */
        w->final_pending = true;
        w->ended = true;
        schedule_dispatch(s);
    }
    sk_sandbox_rec_release(&rec);
    *waiter = w->id;
    return 0;
}

int sk_sched_watch_files(struct sk_sched *s, const char *sandbox_id, const char *path, bool recursive,
                         sk_sched_fwatch_cb cb, void *arg, uint64_t *id, struct sk_error *err)
{
    bool exists = false;
    struct sched_sandbox *e = sandbox_resolve(s, sandbox_id, &exists);
    if (e == NULL || e->ending || e->agent_gone)
        return sk_error_setv(err, ENOENT, "sandbox '%s' is not running", sandbox_id ? sandbox_id : "");
    uint32_t agent_id = 0;
    int r = sk_agent_watch_add(sk_sandbox_agent(e->sb), path, recursive, &agent_id, err);
    schedule_pump(e);
    if (r < 0)
        return r;
    struct fwatch *w = xcalloc(1, sizeof(*w));
    w->id = ++s->next_watcher_id;
    w->agent_id = agent_id;
    w->cb = cb;
    w->arg = arg;
    w->next = e->fwatches;
    e->fwatches = w;
    e->last_activity_ns = sk_now_ns();
    *id = w->id;
    return 0;
}

void sk_sched_watch_files_cancel(struct sk_sched *s, uint64_t id)
{
    for (struct sched_sandbox *e = s->sandboxes; e != NULL; e = e->next) {
        for (struct fwatch **pp = &e->fwatches; *pp != NULL; pp = &(*pp)->next) {
            struct fwatch *w = *pp;
            if (w->id != id)
                continue;
            *pp = w->next;
            if (!e->ending && !e->agent_gone)
                sk_agent_watch_remove(sk_sandbox_agent(e->sb), w->agent_id, NULL);
            free(w);
            return;
        }
    }
}

struct sk_agent *sk_sched_agent(struct sk_sched *s, const char *sandbox_id, struct sk_error *err)
{
    bool exists = false;
    struct sched_sandbox *e = sandbox_resolve(s, sandbox_id, &exists);
    if (e == NULL || e->ending) {
        sk_error_setv(err, ENOENT, "sandbox '%s' is not running", sandbox_id ? sandbox_id : "");
        return NULL;
    }
    e->last_activity_ns = sk_now_ns();
    schedule_pump(e);
    return sk_sandbox_agent(e->sb);
}

/* ---- public: execs --------------------------------------------------------------------- */

/* exec_target - the running sandbox an exec is asked for: ENOENT when
 * unknown, EALREADY when it has ended. */
static int exec_target(struct sk_sched *s, const char *sandbox_id, struct sched_sandbox **out, struct sk_error *err)
{
    bool exists = false;
    *out = sandbox_resolve(s, sandbox_id, &exists);
    if (*out != NULL && !(*out)->ending)
        return 0;
    if (!exists)
        return sk_error_setv(err, ENOENT, "sandbox '%s' not found", sandbox_id ? sandbox_id : "");
    return sk_error_setv(err, EALREADY, "sandbox '%s' has ended", sandbox_id);
}

int sk_sched_exec_async(struct sk_sched *s, const char *sandbox_id, const struct sk_exec_req *req,
                        sk_sched_exec_start_cb cb, void *arg, struct sk_error *err)
{
    if (s->freeing)
        return sk_error_setv(err, EBUSY, "the server is shutting down");
    struct sched_sandbox *e = NULL;
    int ret = exec_target(s, sandbox_id, &e, err);
    if (ret < 0)
        return ret;
    struct exec_pending *p = xcalloc(1, sizeof(*p));
    p->s = s;
    p->e = e;
    p->cb = cb;
    p->arg = arg;
    ret = exec_prepare(e, req, false, &p->xs, err);
    if (ret < 0) {
        free(p);
        return ret;
    }
    struct sk_agent_spawn spawn = p->xs.spawn;
    if (spawn.envp == NULL) /* never: the sandbox's env is always set */
        spawn.envp = (const char *const *)(spawn.pty ? e->env_pty : e->env);
    ret = sk_agent_spawn_start(sk_sandbox_agent(e->sb), &spawn, &p->ticket, err);
    if (p->xs.to_file) {
        /* skiff-init has its own copies now (sent with the request) */
        sk_close(&p->xs.files[OUT_STDOUT]);
        sk_close(&p->xs.files[OUT_STDERR]);
    }
    if (ret < 0) {
        exec_start_release(&p->xs, true);
        free(p);
        return ret;
    }
    /* spawn's strings (argv, cwd) were copied into the request: done with */
    p->next = e->pending;
    e->pending = p;
    e->last_activity_ns = sk_now_ns();
    schedule_pump(e); /* a reply read by another call is completed there */
    return 0;
}

int sk_sched_exec(struct sk_sched *s, const char *sandbox_id, const struct sk_exec_req *req, struct sk_exec_rec *out,
                  struct sk_error *err)
{
    memset(out, 0, sizeof(*out));
    struct sched_sandbox *e = NULL;
    int ret = exec_target(s, sandbox_id, &e, err);
    if (ret < 0)
        return ret;
    return exec_start(e, req, false, out, err);
}

int sk_sched_exec_signal(struct sk_sched *s, const char *exec_id, int signo, struct sk_error *err)
{
    if (signo < 1 || signo > 64)
        return sk_error_setv(err, EINVAL, "signal %d is out of range (1 to 64)", signo);
    struct sched_exec *x = exec_live(s, exec_id);
    if (x == NULL)
        return exec_not_live(s, exec_id, err);
    if (x->exited)
        return sk_error_setv(err, EALREADY, "exec '%s' has exited", exec_id);
    x->e->last_activity_ns = sk_now_ns();
    int ret = sk_agent_signal(sk_sandbox_agent(x->e->sb), x->proc_id, signo, err);
    schedule_pump(x->e);
    if (ret == -ESRCH)
        return sk_error_setv(err, EALREADY, "exec '%s' has exited", exec_id);
    return ret;
}

int sk_sched_exec_resize(struct sk_sched *s, const char *exec_id, uint16_t rows, uint16_t cols, struct sk_error *err)
{
    struct sched_exec *x = exec_live(s, exec_id);
    if (x == NULL)
        return exec_not_live(s, exec_id, err);
    if (!x->pty)
        return sk_error_setv(err, ENOTTY, "exec '%s' has no pty", exec_id);
    if (x->exited)
        return sk_error_setv(err, EALREADY, "exec '%s' has exited", exec_id);
    x->e->last_activity_ns = sk_now_ns();
    int ret = sk_agent_resize(sk_sandbox_agent(x->e->sb), x->proc_id, rows, cols, err);
    schedule_pump(x->e);
    if (ret == -ESRCH)
        return sk_error_setv(err, EALREADY, "exec '%s' has exited", exec_id);
    return ret;
}

int sk_sched_exec_stdin(struct sk_sched *s, const char *exec_id, const void *data, size_t len, bool eof,
                        struct sk_error *err)
{
    struct sched_exec *x = exec_live(s, exec_id);
    if (x == NULL)
        return exec_not_live(s, exec_id, err);
    if (!x->has_stdin)
        return sk_error_setv(err, EINVAL, "exec '%s' was started without stdin", exec_id);
    if (x->in.closed || x->in.eof || x->exited)
        return sk_error_setv(err, EALREADY, "the stdin of exec '%s' is closed", exec_id);
    size_t extra = x->pty && eof ? 1 : 0;
    if (len > SK_SCHED_STDIN_BUF_MAX || len + extra > SK_SCHED_STDIN_BUF_MAX - x->in.len)
        return sk_error_setv(err, EAGAIN, "the stdin buffer of exec '%s' is full (%d bytes); retry later", exec_id,
                             SK_SCHED_STDIN_BUF_MAX);
    x->e->last_activity_ns = sk_now_ns();
    if (len + extra > 0) {
        x->in.data = xrealloc(x->in.data, x->in.len + len + extra);
        if (len > 0)
            memcpy(x->in.data + x->in.len, data, len);
        if (extra)
            x->in.data[x->in.len + len] = '\x04'; /* a terminal's end of input */
        x->in.len += len + extra;
    }
    x->in.eof = eof;
    if (stdin_flush(x) < 0)
        return sk_error_setv(err, EALREADY, "exec '%s' closed its stdin", exec_id);
    return 0;
}

/* exec_locate - an exec's live state (NULL when it does not run here) and
 * its sandbox's id. */
static int exec_locate(struct sk_sched *s, const char *exec_id, struct sched_exec **live, char *sandbox_id,
                       struct sk_error *err)
{
    *live = exec_live(s, exec_id);
    if (*live != NULL) {
        snprintf(sandbox_id, SK_SANDBOX_ID_LEN + 1, "%s", (*live)->e->id);
        return 0;
    }
    struct sk_exec_rec rec;
    if (!is_hex_id(exec_id, "ex-") || sk_store_exec_get(s->st, exec_id, &rec, NULL) < 0)
        return sk_error_setv(err, ENOENT, "exec '%s' not found", exec_id ? exec_id : "");
    bool ok = is_hex_id(rec.sandbox_id, "sb-");
    if (ok)
        snprintf(sandbox_id, SK_SANDBOX_ID_LEN + 1, "%s", rec.sandbox_id);
    sk_exec_rec_release(&rec);
    if (!ok)
        return sk_error_setv(err, ENOENT, "exec '%s' not found", exec_id);
    return 0;
}

int sk_sched_exec_output(struct sk_sched *s, const char *exec_id, const char *stream, int *fd, bool *ended,
                         struct sk_error *err)
{
    *fd = -1;
    if (stream == NULL || (strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0))
        return sk_error_setv(err, EINVAL, "stream must be \"stdout\" or \"stderr\"");
    struct sched_exec *x = NULL;
    char sandbox_id[SK_SANDBOX_ID_LEN + 1];
    int ret = exec_locate(s, exec_id, &x, sandbox_id, err);
    if (ret < 0)
        return ret;
    char path[PATH_MAX];
    exec_output_path(s, sandbox_id, exec_id, stream, path, sizeof(path));
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0)
        return sk_error_set(err, errno, "open the %s of exec '%s'", stream, exec_id);
    *fd = f;
    if (ended != NULL)
        *ended = x == NULL; /* nothing appends to an exec that does not run here */
    return 0;
}

int sk_sched_exec_output_info(struct sk_sched *s, const char *exec_id, struct sk_exec_output_info *info,
                              struct sk_error *err)
{
    memset(info, 0, sizeof(*info));
    struct sched_exec *x = NULL;
    char sandbox_id[SK_SANDBOX_ID_LEN + 1];
    int ret = exec_locate(s, exec_id, &x, sandbox_id, err);
    if (ret < 0)
        return ret;
    if (x != NULL) {
        exec_poll_files(x);
        info->stdout_bytes = x->out[OUT_STDOUT].stored;
        info->stderr_bytes = x->out[OUT_STDERR].stored;
        info->stdout_truncated = x->out[OUT_STDOUT].truncated;
        info->stderr_truncated = x->out[OUT_STDERR].truncated;
        return 0;
    }
    info->ended = true;
    int64_t *bytes[2] = {&info->stdout_bytes, &info->stderr_bytes};
    bool *trunc[2] = {&info->stdout_truncated, &info->stderr_truncated};
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX], suffix[32];
        struct stat st;
        exec_output_path(s, sandbox_id, exec_id, stream_names[i], path, sizeof(path));
        if (lstat(path, &st) < 0)
            return sk_error_set(err, errno, "stat the %s of exec '%s'", stream_names[i], exec_id);
        *bytes[i] = st.st_size;
        snprintf(suffix, sizeof(suffix), "%s.truncated", stream_names[i]);
        exec_output_path(s, sandbox_id, exec_id, suffix, path, sizeof(path));
        *trunc[i] = lstat(path, &st) == 0;
    }
    return 0;
}

int sk_sched_exec_watch(struct sk_sched *s, const char *exec_id, int64_t timeout_ms, bool on_output,
                        sk_sched_exec_cb cb, void *arg, uint64_t *watcher, struct sk_error *err)
{
    *watcher = 0;
    if (cb == NULL)
        return sk_error_setv(err, EINVAL, "a watcher needs a callback");
    if (on_output && timeout_ms > 0)
        return sk_error_setv(err, EINVAL, "an output watcher takes no timeout");
    if (s->freeing)
        return sk_error_setv(err, EBUSY, "the server is shutting down");
    struct sched_exec *x = exec_live(s, exec_id);
    if (x == NULL) {
        struct sk_exec_rec rec;
        if (!is_hex_id(exec_id, "ex-") || sk_store_exec_get(s->st, exec_id, &rec, NULL) < 0)
            return sk_error_setv(err, ENOENT, "exec '%s' not found", exec_id ? exec_id : "");
        sk_exec_rec_release(&rec);
    }
    struct watcher *w = watcher_add(s, W_EXEC, exec_id, x != NULL ? timeout_ms : 0, arg);
    w->ex_cb = cb;
    w->on_output = on_output;
    if (x == NULL) {
        w->final_pending = true;
        w->ended = true;
        schedule_dispatch(s);
    }
    *watcher = w->id;
    return 0;
}

/* ---- public: network policy ----------------------------------------------------------- */

/* network_policy_of - the stored policy of a runtime record (mode "none"
 * when it has none). */
static int network_policy_of(const json_t *runtime, struct sk_net_policy *out, struct sk_error *err)
{
    const json_t *pol = json_object_get(json_object_get(runtime, "network"), "policy");
    if (pol == NULL) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    return sk_net_policy_from_json(pol, out, err);
}

int sk_sched_network_get(struct sk_sched *s, const char *id_or_name, char id[24], char **policy_json, bool *running,
                         struct sk_error *err)
{
    *policy_json = NULL;
    *running = false;
    struct sk_sandbox_rec rec;
    int ret = sk_store_sandbox_get(s->st, id_or_name, &rec, err);
    if (ret < 0)
        return ret;
    snprintf(id, 24, "%s", rec.id);
    struct sched_sandbox *e = sandbox_live(s, rec.id);
    json_t *stored = e == NULL && rec.runtime_json != NULL ? json_loads(rec.runtime_json, 0, NULL) : NULL;
    sk_sandbox_rec_release(&rec);
    struct sk_net_policy p;
    ret = network_policy_of(e != NULL ? e->runtime : stored, &p, err);
    json_decref(stored);
    if (ret < 0)
        return ret;
    json_t *j = sk_net_policy_json(&p);
    *policy_json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    sk_net_policy_release(&p);
    *running = e != NULL && !e->ending;
    return 0;
}

int sk_sched_network_set(struct sk_sched *s, const char *id_or_name, const char *patch_json, char **policy_json,
                         struct sk_error *err)
{
    if (policy_json != NULL)
        *policy_json = NULL;
    bool exists = false;
    struct sched_sandbox *e = sandbox_resolve(s, id_or_name, &exists);
    if (e == NULL || e->ending)
        return exists ? sk_error_setv(err, EALREADY, "sandbox '%s' is not running", id_or_name)
                      : sk_error_setv(err, ENOENT, "no sandbox '%s'", id_or_name);
    struct sk_net_policy p;
    int ret = network_policy_of(e->runtime, &p, err);
    if (ret < 0)
        return ret;
    json_t *patch = json_loads(patch_json, 0, NULL);
    ret = sk_net_policy_patch(&p, patch, "network.", err);
    json_decref(patch);
    if (ret == 0 && s->net == NULL && (p.egress || p.group != NULL))
        ret = sk_error_setv(err, ENOTSUP, "sandbox networking is not available on this server");
    json_t *state = NULL;
    if (ret == 0 && s->net != NULL)
        ret = sk_net_update(s->net, e->id, sk_sandbox_pid(e->sb), sk_sandbox_agent(e->sb), &p, &state, err);
    if (ret == 0 && state != NULL) {
        json_t *old = json_incref(json_object_get(e->runtime, "network"));
        json_object_set_new(e->runtime, "network", state);
        runtime_json_sync(e);
        ret = sk_store_sandbox_update(s->st, &e->rec, err);
        if (ret < 0) {
            /* Not stored: back to what the record says, so that a restart
             * does not bring back another policy than the one in force. */
            struct sk_net_policy back = {0};
            json_t *st2 = NULL;
            if (old == NULL || sk_net_policy_from_json(json_object_get(old, "policy"), &back, NULL) == 0)
                sk_net_update(s->net, e->id, sk_sandbox_pid(e->sb), sk_sandbox_agent(e->sb), &back, &st2, NULL);
            sk_net_policy_release(&back);
            json_decref(st2);
            if (old != NULL)
                json_object_set(e->runtime, "network", old);
            else
                json_object_del(e->runtime, "network");
            runtime_json_sync(e);
        }
        json_decref(old);
    }
    if (ret == 0 && policy_json != NULL) {
        json_t *j = sk_net_policy_json(&p);
        *policy_json = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    sk_net_policy_release(&p);
    if (ret == 0)
        sk_log_info("sandbox '%s': network policy changed", e->id);
    return ret;
}

/* ---- public: inbound ports ------------------------------------------------------------ */

/* Ports live in the sandbox's runtime record (key "ports") so that a
 * re-adopted sandbox keeps them; daemon/proxy.c owns their meaning. */

static struct sched_sandbox *ports_sandbox(struct sk_sched *s, const char *id_or_name, struct sk_error *err)
{
    bool exists = false;
    struct sched_sandbox *e = sandbox_resolve(s, id_or_name, &exists);
    if (e == NULL || e->ending) {
        if (!exists)
            sk_error_setv(err, ENOENT, "sandbox '%s' not found", id_or_name ? id_or_name : "");
        else
            sk_error_setv(err, EALREADY, "sandbox '%s' is not running", id_or_name);
        return NULL;
    }
    return e;
}

int sk_sched_ports_get(struct sk_sched *s, const char *id_or_name, char id[20], char **json, struct sk_error *err)
{
    *json = NULL;
    struct sched_sandbox *e = ports_sandbox(s, id_or_name, err);
    if (e == NULL)
        return -err->code;
    if (id != NULL)
        snprintf(id, SK_SANDBOX_ID_LEN + 1, "%s", e->id);
    json_t *ports = json_object_get(e->runtime, "ports");
    *json = json_is_array(ports) ? json_dumps(ports, JSON_COMPACT) : xstrdup("[]");
    return 0;
}

int sk_sched_ports_set(struct sk_sched *s, const char *id, const char *json, struct sk_error *err)
{
    struct sched_sandbox *e = ports_sandbox(s, id, err);
    if (e == NULL)
        return -err->code;
    json_t *ports = json_loads(json, 0, NULL);
    if (!json_is_array(ports)) {
        json_decref(ports);
        return sk_error_setv(err, EINVAL, "ports must be a JSON array");
    }
    json_t *old = json_incref(json_object_get(e->runtime, "ports"));
    json_object_set_new(e->runtime, "ports", ports);
    runtime_json_sync(e);
    int ret = sk_store_sandbox_update(s->st, &e->rec, err);
    if (ret < 0) {
        /* what is stored is what holds */
        if (old != NULL)
            json_object_set(e->runtime, "ports", old);
        else
            json_object_del(e->runtime, "ports");
        runtime_json_sync(e);
    }
    json_decref(old);
    return ret;
}

int sk_sched_netns_open(struct sk_sched *s, const char *id, int *fd, struct sk_error *err)
{
    *fd = -1;
    struct sched_sandbox *e = sandbox_live(s, id);
    if (e == NULL || e->ending || e->sb == NULL)
        return sk_error_setv(err, ENOENT, "sandbox '%s' is not running", id ? id : "");
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)sk_sandbox_pid(e->sb));
    int nfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nfd < 0)
        return sk_error_set(err, errno, "sandbox '%s': open '%s'", id, path);
    /* pid 1 still alive after the open: the namespace is this sandbox's */
    if (pid1_dead(e)) {
        close(nfd);
        return sk_error_setv(err, ENOENT, "sandbox '%s' is not running", id);
    }
    *fd = nfd;
    return 0;
}
