/* The sandbox manager (lib/sched) on a real runtime and store: recorded
 * lifecycles and end reasons, timeouts, execs with output in files that a
 * reader can follow and resume, stdin, signals, re-adoption after a crash
 * (or a record of the loss) and the retention sweep. Each test runs its
 * own small epoll loop. */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/util.h"
#include "runtime/agent.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"
#include "sandbox_test.h"
#include "sched/sandboxes.h"
#include "store/store.h"

/* Apart from other suites' sandboxes, and each test process under a cgroup
 * parent of its own, so that counting cgroups is exact even while other
 * suites (or another run of this one) run. */
#define SCHED_STATE_DIR TEST_STATE_DIR "-sched"
#define SCHED_CGROUP_PARENT "skiff-test-sched"

static char cgroup_parent[64];
static char state_dir_path[PATH_MAX];

/* test_cgroup_parent - skiff-test-sched/p<pid> of the test process (a child
 * forked by a test inherits it). */
static const char *test_cgroup_parent(void)
{
    if (cgroup_parent[0] == '\0')
        snprintf(cgroup_parent, sizeof(cgroup_parent), SCHED_CGROUP_PARENT "/p%d", (int)getpid());
    return cgroup_parent;
}

/* state_dir - the runtime state dir of the test process, paired with its
 * cgroup parent (a child forked by a test inherits it): sandboxes are
 * persistent, and a runtime's start-up sweep removes the state of unowned
 * ones even when their cgroup is under another parent, where it cannot
 * kill them - so no two test processes share one. */
static const char *state_dir(void)
{
    if (state_dir_path[0] == '\0')
        snprintf(state_dir_path, sizeof(state_dir_path), SCHED_STATE_DIR "-p%d", (int)getpid());
    return state_dir_path;
}

/* remove_cgroup_parent - rmdir the test's (empty) parent in every
 * hierarchy: /sys/fs/cgroup/<ctrl>/... on v1, /sys/fs/cgroup/... on v2. */
static void remove_cgroup_parent(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", test_cgroup_parent());
    rmdir(path);
    DIR *d = opendir("/sys/fs/cgroup");
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s", de->d_name, test_cgroup_parent());
        rmdir(path);
    }
    closedir(d);
}

/* sweep_dead_test_processes - the sandboxes are persistent: those of an
 * earlier test process that failed (or was killed) run on without an
 * owner, under its cgroup parent, where no other test's runtime looks.
 * Kill them by their cgroups, then remove its cgroup parent and its state
 * dir. */
static void sweep_dead_test_processes(void)
{
    glob_t g;
    if (glob("/sys/fs/cgroup/*/" SCHED_CGROUP_PARENT "/p*", GLOB_ONLYDIR, NULL, &g) != 0) {
        globfree(&g);
        if (glob("/sys/fs/cgroup/" SCHED_CGROUP_PARENT "/p*", GLOB_ONLYDIR, NULL, &g) != 0) {
            globfree(&g);
            return;
        }
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int pid = atoi(strrchr(g.gl_pathv[i], '/') + 2);
        if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char parent[64], path[PATH_MAX];
        snprintf(parent, sizeof(parent), SCHED_CGROUP_PARENT "/p%d", pid);
        struct sk_cgroup_system *sys = NULL;
        if (sk_cgroup_system_detect(parent, &sys, NULL) == 0) {
            sk_cgroup_cleanup_stale(sys, "sb-", NULL, NULL, NULL); /* NULL keep: all */
            sk_cgroup_system_free(sys);
        }
        snprintf(path, sizeof(path), SCHED_STATE_DIR "-p%d", pid);
        sk_remove_tree(path, NULL);
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", parent);
        rmdir(path);
        DIR *d = opendir("/sys/fs/cgroup");
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s", de->d_name, parent);
            if (de->d_name[0] != '.')
                rmdir(path);
        }
        if (d != NULL)
            closedir(d);
    }
    globfree(&g);
}

/* ---- a tiny epoll loop implementing sk_loop_ops ------------------------------------ */

#define TL_MAX_FD 4096

struct tl_timer {
    uint64_t id;
    int64_t due_ns;
    void (*cb)(void *);
    void *arg;
};

struct tloop {
    int epfd;
    struct {
        void (*cb)(void *);
        void *arg;
    } w[TL_MAX_FD];
    struct tl_timer *timers;
    size_t n_timers, cap_timers;
    uint64_t next_id;
};

static int tl_watch(void *ctx, int fd, void (*cb)(void *), void *arg)
{
    struct tloop *l = ctx;
    if (fd < 0 || fd >= TL_MAX_FD) {
        errno = EMFILE;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    l->w[fd].cb = cb;
    l->w[fd].arg = arg;
    return 0;
}

static void tl_unwatch(void *ctx, int fd)
{
    struct tloop *l = ctx;
    if (fd < 0 || fd >= TL_MAX_FD)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->w[fd].cb = NULL;
}

static uint64_t tl_timer(void *ctx, int64_t delay_ms, void (*cb)(void *), void *arg)
{
    struct tloop *l = ctx;
    if (l->n_timers == l->cap_timers) {
        l->cap_timers = l->cap_timers ? l->cap_timers * 2 : 64;
        l->timers = xrealloc(l->timers, l->cap_timers * sizeof(*l->timers));
    }
    uint64_t id = ++l->next_id;
    l->timers[l->n_timers++] = (struct tl_timer){id, sk_now_ns() + delay_ms * 1000000, cb, arg};
    return id;
}

static void tl_cancel(void *ctx, uint64_t id)
{
    struct tloop *l = ctx;
    for (size_t i = 0; i < l->n_timers; i++) {
        if (l->timers[i].id == id) {
            l->timers[i] = l->timers[--l->n_timers];
            return;
        }
    }
}

static void tl_run_once(struct tloop *l, int max_ms)
{
    int64_t now = sk_now_ns();
    int timeout = max_ms;
    for (size_t i = 0; i < l->n_timers; i++) {
        int64_t ms = (l->timers[i].due_ns - now + 999999) / 1000000;
        if (ms < 0)
            ms = 0;
        if (ms < timeout)
            timeout = (int)ms;
    }
    struct epoll_event evs[64];
    int n = epoll_wait(l->epfd, evs, 64, timeout);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        /* looked up now: an earlier callback may have unwatched it */
        if (l->w[fd].cb != NULL)
            l->w[fd].cb(l->w[fd].arg);
    }
    /* timers due now that existed before this pass (0 ms timers armed by
     * these callbacks run on the next pass) */
    uint64_t limit = l->next_id;
    for (;;) {
        now = sk_now_ns();
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < l->n_timers; i++)
            if (l->timers[i].due_ns <= now && l->timers[i].id <= limit &&
                (best == SIZE_MAX || l->timers[i].due_ns < l->timers[best].due_ns))
                best = i;
        if (best == SIZE_MAX)
            break;
        struct tl_timer t = l->timers[best];
        l->timers[best] = l->timers[--l->n_timers];
        t.cb(t.arg);
    }
}

/* tl_run_until - run the loop until *flag or timeout_ms; returns *flag. */
static bool tl_run_until(struct tloop *l, const bool *flag, int timeout_ms)
{
    int64_t deadline = sk_now_ns() + (int64_t)timeout_ms * 1000000;
    while (!*flag) {
        int64_t left = (deadline - sk_now_ns()) / 1000000;
        if (left <= 0)
            return *flag;
        tl_run_once(l, left < 50 ? (int)left : 50);
    }
    return true;
}

static void tl_run_for(struct tloop *l, int ms)
{
    bool never = false;
    tl_run_until(l, &never, ms);
}

/* ---- fixture ------------------------------------------------------------------------ */

struct fx {
    struct tloop loop;
    struct sk_loop_ops ops;
    struct sk_runtime *rt;
    struct sk_store *st;
    struct sk_sched *s;
    char dir[64];
};

static struct fx FX; /* one per test process (each test is forked) */

/* new_runtime - keep_unowned as a restarted server's: its start leaves
 * sandboxes without an owner for sk_sched_recover. */
static struct sk_runtime *new_runtime(bool keep_unowned)
{
    char init[PATH_MAX];
    snprintf(init, sizeof(init), "%s/skiff-init", sk_test_bin_dir());
    struct sk_runtime_config cfg = {.state_dir = state_dir(),
                                    .init_path = init,
                                    .cgroup_parent = test_cgroup_parent(),
                                    .keep_unowned = keep_unowned};
    struct sk_runtime *rt = NULL;
    struct sk_error err = {0};
    ASSERT_OK(sk_runtime_new(&cfg, &rt, &err));
    return rt;
}

/* fx_start_as - runtime, store and manager on data dir `dir` (NULL: a new
 * temporary one); cfg may be NULL; keep_unowned for a restarted server. */
static struct fx *fx_start_as(const char *dir, const struct sk_sched_config *cfg, bool keep_unowned)
{
    struct fx *f = &FX;
    struct sk_error err = {0};
    sweep_dead_test_processes();
    memset(f, 0, sizeof(*f));
    f->loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    ASSERT_TRUE(f->loop.epfd >= 0);
    f->ops = (struct sk_loop_ops){&f->loop, tl_watch, tl_unwatch, tl_timer, tl_cancel};
    if (dir != NULL) {
        snprintf(f->dir, sizeof(f->dir), "%s", dir);
    } else {
        snprintf(f->dir, sizeof(f->dir), "/var/tmp/skiff-sched-XXXXXX");
        ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    }
    f->rt = new_runtime(keep_unowned);
    char db[PATH_MAX];
    snprintf(db, sizeof(db), "%s/skiff.db", f->dir);
    ASSERT_OK(sk_store_open(db, &f->st, &err));
    struct sk_sched_config c = cfg ? *cfg : (struct sk_sched_config){0};
    c.data_dir = f->dir;
    ASSERT_OK(sk_sched_new(f->rt, f->st, &f->ops, &c, &f->s, &err));
    return f;
}

static struct fx *fx_start(const char *dir, const struct sk_sched_config *cfg)
{
    return fx_start_as(dir, cfg, false);
}

static int sandbox_cgroups(struct fx *f)
{
    struct sk_error err = {0};
    int n = sk_cgroup_count_children(sk_runtime_cgroups(f->rt), "sb-", &err);
    ASSERT_GE_INT(n, 0);
    return n;
}

/* settled_cgroups - the number of sandbox cgroups once it reaches want, or
 * after 10 s: an ended sandbox's cgroup is removed by a worker thread. */
static int settled_cgroups(struct fx *f, int want)
{
    int n = sandbox_cgroups(f);
    for (int i = 0; i < 1000 && n != want; i++) {
        usleep(10000);
        n = sandbox_cgroups(f);
    }
    return n;
}

/* fx_stop - free everything; no sandbox cgroup may be left. */
static void fx_stop(struct fx *f)
{
    struct sk_error err = {0};
    sk_sched_free(f->s);
    f->s = NULL;
    ASSERT_EQ_INT(sandbox_cgroups(f), 0);
    sk_store_close(f->st);
    sk_runtime_free(f->rt);
    remove_cgroup_parent();
    close(f->loop.epfd);
    free(f->loop.timers);
    ASSERT_OK(sk_remove_tree(f->dir, &err));
    ASSERT_OK(sk_remove_tree(state_dir(), &err));
}

static char *create(struct fx *f, const struct sk_sandbox_req *req)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_create(f->s, req, &rec, &err));
    ASSERT_EQ_STR(rec.state, "running");
    char *id = xstrdup(rec.id);
    sk_sandbox_rec_release(&rec);
    return id;
}

/* ---- waiting ---------------------------------------------------------------------- */

struct sb_end {
    bool done;
    int calls;
    char state[32], reason[32], detail[256];
    bool has_reason;
    int exit_code;
    int64_t at_ns;
};

static void on_sb_end(void *arg, const struct sk_sandbox_rec *rec)
{
    struct sb_end *w = arg;
    w->calls++;
    w->done = true;
    w->at_ns = sk_now_ns();
    snprintf(w->state, sizeof(w->state), "%s", rec->state);
    w->has_reason = rec->reason != NULL;
    snprintf(w->reason, sizeof(w->reason), "%s", rec->reason ? rec->reason : "");
    snprintf(w->detail, sizeof(w->detail), "%s", rec->reason_detail ? rec->reason_detail : "");
    w->exit_code = rec->exit_code;
}

static void wait_sandbox(struct fx *f, const char *id, struct sb_end *w, int timeout_ms)
{
    struct sk_error err = {0};
    uint64_t waiter = 0;
    memset(w, 0, sizeof(*w));
    ASSERT_OK(sk_sched_wait(f->s, id, timeout_ms, on_sb_end, w, &waiter, &err));
    ASSERT_GT_INT(waiter, 0);
    if (!tl_run_until(&f->loop, &w->done, timeout_ms + 5000))
        FAIL("the waiter of sandbox '%s' was never called", id);
}

struct ex_end {
    bool done;
    bool ended;
    int calls;
    int exit_code, signal;
    bool timed_out;
    char state[32];
    int64_t at_ns;
};

static void on_ex_end(void *arg, const struct sk_exec_rec *rec, bool ended)
{
    struct ex_end *w = arg;
    w->calls++;
    w->done = true;
    w->ended = ended;
    w->at_ns = sk_now_ns();
    w->exit_code = rec->exit_code;
    w->signal = rec->signal;
    w->timed_out = rec->timed_out;
    snprintf(w->state, sizeof(w->state), "%s", rec->state);
}

static void watch_exec(struct fx *f, const char *id, struct ex_end *w, int64_t timeout_ms)
{
    struct sk_error err = {0};
    uint64_t watcher = 0;
    memset(w, 0, sizeof(*w));
    ASSERT_OK(sk_sched_exec_watch(f->s, id, timeout_ms, false, on_ex_end, w, &watcher, &err));
}

/* exec_start - start argv in sandbox sb; returns the exec id (heap). */
static char *exec_start(struct fx *f, const char *sb, const char *const *argv, bool want_stdin)
{
    struct sk_error err = {0};
    struct sk_exec_req req = {.argv = argv, .stdin_pipe = want_stdin};
    struct sk_exec_rec rec;
    ASSERT_OK(sk_sched_exec(f->s, sb, &req, &rec, &err));
    ASSERT_EQ_STR(rec.state, "running");
    ASSERT_EQ_INT(rec.exit_code, -1);
    char *id = xstrdup(rec.id);
    sk_exec_rec_release(&rec);
    return id;
}

/* exec_wait - wait for an exec to end; fails after timeout_ms. */
static void exec_wait(struct fx *f, const char *id, struct ex_end *w, int timeout_ms)
{
    watch_exec(f, id, w, 0);
    if (!tl_run_until(&f->loop, &w->done, timeout_ms))
        FAIL("exec '%s' did not end within %d ms", id, timeout_ms);
    ASSERT_TRUE(w->ended);
    ASSERT_EQ_STR(w->state, "exited");
}

/* read_output - the whole stream of an exec (heap, NUL-terminated). */
static char *read_output(struct fx *f, const char *exec_id, const char *stream, size_t *len_out)
{
    struct sk_error err = {0};
    int fd = -1;
    bool ended = false;
    ASSERT_OK(sk_sched_exec_output(f->s, exec_id, stream, &fd, &ended, &err));
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        ASSERT_GE_INT(r, 0);
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

static double elapsed_s(int64_t since_ns)
{
    return (double)(sk_now_ns() - since_ns) / 1e9;
}

/* tracked_procs - how many processes skiff-init of sandbox sb tracks
 * (running ones and exited ones whose EXIT was not released). */
static int tracked_procs(struct fx *f, const char *sb)
{
    struct sk_error err = {0};
    struct sk_agent *a = sk_sched_agent(f->s, sb, &err);
    ASSERT_TRUE(a != NULL);
    struct sk_agent_proc_info *procs = NULL;
    size_t n = 0;
    ASSERT_OK(sk_agent_list_procs(a, &procs, &n, &err));
    free(procs);
    return (int)n;
}

/* ---- sandboxes -------------------------------------------------------------------- */

/* A created sandbox is recorded as running before it is reported, can be
 * found by id and by name, and the manager's shutdown ends it with a
 * recorded reason. */
TEST(create_is_recorded_running_and_found_by_id_and_name)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {.name = "web-1", .tags_json = "{\"team\": \"ml\", \"env\": \"dev\"}"};
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_create(f->s, &req, &rec, &err));
    ASSERT_EQ_STR(rec.state, "running");
    ASSERT_TRUE(strncmp(rec.id, "sb-", 3) == 0);
    ASSERT_GT_INT(rec.started_at, 0);
    ASSERT_GE_INT(rec.started_at, rec.created_at);
    ASSERT_GT_INT(rec.host_pid, 0);
    ASSERT_TRUE(rec.reason == NULL);
    char *id = xstrdup(rec.id);
    sk_sandbox_rec_release(&rec);

    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    ASSERT_EQ_STR(rec.state, "running");
    ASSERT_EQ_STR(rec.name, "web-1");
    ASSERT_EQ_STR(rec.tags_json, "{\"env\":\"dev\",\"team\":\"ml\"}");
    ASSERT_EQ_INT(kill((pid_t)rec.host_pid, 0), 0);
    sk_sandbox_rec_release(&rec);
    ASSERT_OK(sk_sched_get(f->s, "web-1", &rec, &err));
    ASSERT_EQ_STR(rec.id, id);
    sk_sandbox_rec_release(&rec);
    ASSERT_EQ_INT(settled_cgroups(f, 1), 1);
    struct sk_cgroup_usage u;
    ASSERT_OK(sk_sched_usage(f->s, "web-1", &u, &err));
    ASSERT_GT_INT(u.memory_current, 0);
    ASSERT_TRUE(sk_sched_get(f->s, "nope", &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);

    /* shutdown: ended, recorded, and a waiter hears about it */
    struct sb_end w = {0};
    uint64_t waiter;
    ASSERT_OK(sk_sched_wait(f->s, id, 0, on_sb_end, &w, &waiter, &err));
    sk_sched_free(f->s);
    f->s = NULL;
    ASSERT_TRUE(w.done);
    ASSERT_EQ_STR(w.reason, "terminated");
    ASSERT_EQ_STR(w.detail, "server shutdown");
    ASSERT_OK(sk_store_sandbox_get(f->st, id, &rec, &err));
    ASSERT_EQ_STR(rec.state, "terminated");
    ASSERT_EQ_STR(rec.reason, "terminated");
    ASSERT_EQ_STR(rec.reason_detail, "server shutdown");
    ASSERT_GE_INT(rec.ended_at, rec.started_at);
    sk_sandbox_rec_release(&rec);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    free(id);
    fx_stop(f);
}

/* The entrypoint's exit ends the sandbox with reason "exited" and its code;
 * its output is kept like any exec's. */
TEST(entrypoint_exit_ends_sandbox_with_its_code)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    const char *const ep[] = {"/bin/sh", "-c", "echo from-entrypoint; exit 3", NULL};
    struct sk_sandbox_req req = {.entrypoint = ep};
    char *id = create(f, &req);
    struct sb_end w;
    wait_sandbox(f, id, &w, 10000);
    ASSERT_EQ_STR(w.state, "terminated");
    ASSERT_EQ_STR(w.reason, "exited");
    ASSERT_EQ_INT(w.exit_code, 3);
    ASSERT_EQ_INT(w.calls, 1);
    char ex[SK_EXEC_ID_LEN + 1];
    ASSERT_OK(sk_sched_entrypoint_exec(f->s, id, ex, &err));
    char *out = read_output(f, ex, "stdout", NULL);
    ASSERT_EQ_STR(out, "from-entrypoint\n");
    free(out);
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, ex, &xr, &err));
    ASSERT_EQ_STR(xr.state, "exited");
    ASSERT_EQ_INT(xr.exit_code, 3);
    sk_exec_rec_release(&xr);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    /* waiting on an ended sandbox answers at once, from the loop */
    wait_sandbox(f, id, &w, 1000);
    ASSERT_EQ_STR(w.reason, "exited");
    /* exec into it: it has ended */
    const char *const argv[] = {"/bin/true", NULL};
    struct sk_exec_req xreq = {.argv = argv};
    ASSERT_TRUE(sk_sched_exec(f->s, id, &xreq, &xr, &err) < 0);
    ASSERT_EQ_INT(err.code, EALREADY);
    /* a command that does not exist: the sandbox ends with reason error */
    const char *const bad[] = {"/no/such/command", NULL};
    struct sk_sandbox_req req2 = {.entrypoint = bad};
    struct sk_sandbox_rec rec;
    ASSERT_TRUE(sk_sched_create(f->s, &req2, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    free(id);
    fx_stop(f);
}

TEST(timeout_ends_sandbox_after_about_a_second)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_sandbox_req req = {.timeout_ms = 1000};
    int64_t t0 = sk_now_ns();
    char *id = create(f, &req);
    struct sb_end w;
    wait_sandbox(f, id, &w, 10000);
    ASSERT_EQ_STR(w.reason, "timeout");
    double s = (double)(w.at_ns - t0) / 1e9;
    if (s < 0.95 || s > 2.5)
        FAIL("timeout after %.3f s, expected about 1 s", s);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    free(id);
    fx_stop(f);
}

/* Idle: no exec and no activity for idle_timeout_ms. A running exec keeps
 * a sandbox busy; the idle time counts from its end. */
TEST(idle_timeout_ends_idle_sandbox_but_not_a_busy_one)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {.idle_timeout_ms = 1000};
    int64_t t0 = sk_now_ns();
    char *idle = create(f, &req);
    char *busy = create(f, &req);
    const char *const argv[] = {"/bin/sleep", "2", NULL};
    char *ex = exec_start(f, busy, argv, false);
    struct sb_end w1 = {0}, w2 = {0};
    uint64_t id1, id2;
    ASSERT_OK(sk_sched_wait(f->s, idle, 0, on_sb_end, &w1, &id1, &err));
    ASSERT_OK(sk_sched_wait(f->s, busy, 0, on_sb_end, &w2, &id2, &err));
    ASSERT_TRUE(tl_run_until(&f->loop, &w1.done, 5000));
    ASSERT_EQ_STR(w1.reason, "idle");
    double s = (double)(w1.at_ns - t0) / 1e9;
    if (s < 0.95 || s > 2.0)
        FAIL("idle end after %.3f s, expected about 1 s", s);
    tl_run_for(&f->loop, 1700 - (int)(elapsed_s(t0) * 1000));
    ASSERT_FALSE(w2.done); /* 1.7 s without API activity, but its exec runs */
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, busy, &rec, &err));
    ASSERT_EQ_STR(rec.state, "running");
    sk_sandbox_rec_release(&rec);
    ASSERT_TRUE(tl_run_until(&f->loop, &w2.done, 5000));
    ASSERT_EQ_STR(w2.reason, "idle");
    s = (double)(w2.at_ns - t0) / 1e9;
    if (s < 2.9 || s > 4.5)
        FAIL("busy sandbox went idle after %.3f s, expected about 3 s (2 s exec + 1 s)", s);
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, ex, &xr, &err));
    ASSERT_EQ_INT(xr.exit_code, 0);
    sk_exec_rec_release(&xr);
    free(idle);
    free(busy);
    free(ex);
    fx_stop(f);
}

/* sk_sched_touch (API activity) postpones the idle end. */
TEST(touch_postpones_idle)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_sandbox_req req = {.idle_timeout_ms = 600};
    int64_t t0 = sk_now_ns();
    char *id = create(f, &req);
    struct sb_end w = {0};
    uint64_t wid;
    struct sk_error err = {0};
    ASSERT_OK(sk_sched_wait(f->s, id, 0, on_sb_end, &w, &wid, &err));
    for (int i = 0; i < 4; i++) {
        tl_run_for(&f->loop, 300);
        sk_sched_touch(f->s, id);
    }
    ASSERT_FALSE(w.done);
    ASSERT_TRUE(tl_run_until(&f->loop, &w.done, 3000));
    ASSERT_EQ_STR(w.reason, "idle");
    ASSERT_GT_INT((w.at_ns - t0) / 1000000, 1700);
    free(id);
    fx_stop(f);
}

TEST(terminate_records_the_token_and_is_idempotent)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {.name = "victim"};
    char *id = create(f, &req);
    struct sb_end w = {0};
    uint64_t wid;
    ASSERT_OK(sk_sched_wait(f->s, id, 0, on_sb_end, &w, &wid, &err));
    ASSERT_OK(sk_sched_terminate(f->s, "victim", "tok-0123456789ab", &err));
    /* recorded at once, before any waiter is told */
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    ASSERT_EQ_STR(rec.state, "terminated");
    ASSERT_EQ_STR(rec.reason, "terminated");
    ASSERT_EQ_STR(rec.reason_detail, "tok-0123456789ab");
    sk_sandbox_rec_release(&rec);
    ASSERT_FALSE(w.done);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    ASSERT_TRUE(tl_run_until(&f->loop, &w.done, 2000));
    ASSERT_EQ_STR(w.reason, "terminated");
    ASSERT_EQ_STR(w.detail, "tok-0123456789ab");
    ASSERT_OK(sk_sched_terminate(f->s, id, "tok-other", &err));
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    ASSERT_EQ_STR(rec.reason_detail, "tok-0123456789ab"); /* the first reason wins */
    sk_sandbox_rec_release(&rec);
    ASSERT_TRUE(sk_sched_terminate(f->s, "sb-0000000000000000", "x", &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    struct sk_cgroup_usage u;
    ASSERT_TRUE(sk_sched_usage(f->s, id, &u, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    tl_run_for(&f->loop, 100);
    ASSERT_EQ_INT(w.calls, 1);
    free(id);
    fx_stop(f);
}

/* A waiter with a timeout hears first that the sandbox still runs
 * (reason NULL); a cancelled waiter is never called. */
TEST(wait_timeout_and_cancel)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *id = create(f, &req);
    struct sb_end w = {0}, c = {0};
    uint64_t wid, cid;
    int64_t t0 = sk_now_ns();
    ASSERT_OK(sk_sched_wait(f->s, id, 300, on_sb_end, &w, &wid, &err));
    ASSERT_OK(sk_sched_wait(f->s, id, 0, on_sb_end, &c, &cid, &err));
    sk_sched_wait_cancel(f->s, cid);
    ASSERT_TRUE(tl_run_until(&f->loop, &w.done, 3000));
    ASSERT_FALSE(w.has_reason);
    ASSERT_EQ_STR(w.state, "running");
    ASSERT_GE_INT((w.at_ns - t0) / 1000000, 290);
    ASSERT_OK(sk_sched_terminate(f->s, id, "t", &err));
    tl_run_for(&f->loop, 100);
    ASSERT_FALSE(c.done);
    ASSERT_EQ_INT(w.calls, 1);
    ASSERT_TRUE(sk_sched_wait(f->s, "sb-ffffffffffffffff", 0, on_sb_end, &w, &wid, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    free(id);
    fx_stop(f);
}

/* An entrypoint that needs more memory than the sandbox may use is killed by
 * the OOM killer: the sandbox ends with reason "oom". */
TEST(memory_limit_ends_sandbox_with_reason_oom)
{
    struct fx *f = fx_start(NULL, NULL);
    /* The shell keeps the whole command substitution in memory: 300 MB. */
    const char *const ep[] = {"/bin/sh", "-c", "a=$(head -c 300000000 /dev/zero | tr '\\0' x); echo survived", NULL};
    struct sk_sandbox_req req = {.entrypoint = ep, .limits = {.memory_bytes = 64LL << 20}};
    char *id = create(f, &req);
    struct sb_end w;
    wait_sandbox(f, id, &w, 30000);
    ASSERT_EQ_STR(w.reason, "oom");
    struct sk_error err = {0};
    char ex[SK_EXEC_ID_LEN + 1];
    ASSERT_OK(sk_sched_entrypoint_exec(f->s, id, ex, &err));
    char *out = read_output(f, ex, "stdout", NULL);
    ASSERT_NOT_CONTAINS(out, "survived");
    free(out);
    free(id);
    fx_stop(f);
}

/* When the sandbox's pid 1 dies (here: killed from the host), the sandbox
 * ends with reason "error" and says why. */
TEST(init_death_ends_sandbox_with_reason_error)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_create(f->s, &req, &rec, &err));
    const char *const argv[] = {"/bin/sleep", "30", NULL};
    char *ex = exec_start(f, rec.id, argv, false);
    ASSERT_EQ_INT(kill((pid_t)rec.host_pid, SIGKILL), 0);
    struct sb_end w;
    wait_sandbox(f, rec.id, &w, 5000);
    ASSERT_EQ_STR(w.reason, "error");
    ASSERT_EQ_STR(w.detail, "sandbox init process died");
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, ex, &xr, &err));
    ASSERT_EQ_STR(xr.state, "exited");
    ASSERT_EQ_INT(xr.signal, SIGKILL);
    sk_exec_rec_release(&xr);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    sk_sandbox_rec_release(&rec);
    free(ex);
    fx_stop(f);
}

/* ---- execs ---------------------------------------------------------------------------- */

/* File operations through sk_sched_agent are synchronous requests; an exit
 * event that arrives meanwhile is queued inside the agent (its socket is
 * then no longer readable) and must still end the exec. */
TEST(exit_queued_during_agent_use_is_not_lost)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sleep", "0.2", NULL};
    char *ex = exec_start(f, sb, argv, false);
    tl_run_for(&f->loop, 30); /* nothing of exec_start's is pending any more */
    struct sk_agent *a = sk_sched_agent(f->s, sb, &err);
    ASSERT_TRUE(a != NULL);
    int64_t t0 = sk_now_ns();
    while (elapsed_s(t0) < 0.5) {
        struct sk_file_stat st;
        ASSERT_OK(sk_agent_stat(a, "/", true, &st, &err));
    }
    struct ex_end w;
    exec_wait(f, ex, &w, 2000);
    ASSERT_EQ_INT(w.exit_code, 0);
    ASSERT_TRUE(sk_sched_agent(f->s, "sb-0000000000000000", &err) == NULL);
    ASSERT_EQ_INT(err.code, ENOENT);
    free(ex);
    free(sb);
    fx_stop(f);
}

TEST(exec_output_goes_to_files_and_exit_code_is_recorded)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sh", "-c", "echo hello; echo oops >&2; printf 'no newline'; exit 5", NULL};
    char *ex = exec_start(f, sb, argv, false);
    ASSERT_TRUE(strncmp(ex, "ex-", 3) == 0 && strlen(ex) == SK_EXEC_ID_LEN);
    struct ex_end w;
    exec_wait(f, ex, &w, 10000);
    ASSERT_EQ_INT(w.exit_code, 5);
    ASSERT_EQ_INT(w.signal, 0);
    ASSERT_FALSE(w.timed_out);
    char *out = read_output(f, ex, "stdout", NULL);
    char *errout = read_output(f, ex, "stderr", NULL);
    ASSERT_EQ_STR(out, "hello\nno newline");
    ASSERT_EQ_STR(errout, "oops\n");
    free(out);
    free(errout);
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, ex, &xr, &err));
    ASSERT_EQ_STR(xr.state, "exited");
    ASSERT_EQ_STR(xr.sandbox_id, sb);
    ASSERT_EQ_STR(xr.argv_json, "[\"/bin/sh\",\"-c\",\"echo hello; echo oops >&2; printf 'no newline'; exit 5\"]");
    ASSERT_GE_INT(xr.ended_at, xr.created_at);
    sk_exec_rec_release(&xr);
    /* its EXIT was released once stored (skiff-init keeps at most 1024) */
    tl_run_for(&f->loop, 20);
    ASSERT_EQ_INT(tracked_procs(f, sb), 0);
    /* files: 0600 in a 0700 directory */
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/sandboxes/%s/execs/%s.stdout", f->dir, sb, ex);
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 07777, 0600);
    snprintf(path, sizeof(path), "%s/sandboxes/%s/execs", f->dir, sb);
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 07777, 0700);
    struct sk_exec_output_info info;
    ASSERT_OK(sk_sched_exec_output_info(f->s, ex, &info, &err));
    ASSERT_TRUE(info.ended);
    ASSERT_EQ_INT(info.stdout_bytes, 16);
    ASSERT_EQ_INT(info.stderr_bytes, 5);
    ASSERT_FALSE(info.stdout_truncated);
    /* bad ids and streams */
    int fd;
    ASSERT_TRUE(sk_sched_exec_output(f->s, "ex-../../etc/passwd", "stdout", &fd, NULL, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_TRUE(sk_sched_exec_output(f->s, ex, "stdin", &fd, NULL, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    /* a command that is not there: an error, and no record */
    const char *const missing[] = {"/no/such/binary", NULL};
    struct sk_exec_req xreq = {.argv = missing};
    ASSERT_TRUE(sk_sched_exec(f->s, sb, &xreq, &xr, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    struct sk_exec_rec *list = NULL;
    size_t n = 0;
    ASSERT_OK(sk_store_exec_list(f->st, sb, &list, &n, &err));
    ASSERT_EQ_INT(n, 1);
    sk_exec_recs_free(list, n);
    free(sb);
    free(ex);
    fx_stop(f);
}

/* 20 MB of output arrive on disk complete and in order, byte for byte. */
TEST(large_output_is_complete_on_disk)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const int count = 2700000; /* 20.5 MB */
    const char *const argv[] = {"/usr/bin/seq", "1", "2700000", NULL};
    char *ex = exec_start(f, sb, argv, false);
    struct ex_end w;
    exec_wait(f, ex, &w, 20000);
    ASSERT_EQ_INT(w.exit_code, 0);
    size_t len = 0;
    char *out = read_output(f, ex, "stdout", &len);
    size_t cap = 24 << 20, n = 0;
    char *want = xmalloc(cap);
    for (int i = 1; i <= count; i++)
        n += (size_t)snprintf(want + n, cap - n, "%d\n", i);
    ASSERT_GT_INT(n, 20000000);
    ASSERT_EQ_INT(len, n);
    ASSERT_TRUE(memcmp(out, want, n) == 0);
    struct sk_exec_output_info info;
    ASSERT_OK(sk_sched_exec_output_info(f->s, ex, &info, &err));
    ASSERT_EQ_INT(info.stdout_bytes, n);
    ASSERT_FALSE(info.stdout_truncated);
    free(out);
    free(want);
    free(sb);
    free(ex);
    fx_stop(f);
}

/* A reader follows the output while it is written (watch with on_output,
 * pread from its own offset) and gets exactly the file; a reader that
 * comes back at an offset gets exactly the rest. */
struct follower {
    struct sk_sched *s;
    int fd;
    char buf[4096];
    size_t len;
    int outputs;
    bool done;
};

static void follow_read(struct follower *fo)
{
    for (;;) {
        ssize_t r = pread(fo->fd, fo->buf + fo->len, sizeof(fo->buf) - 1 - fo->len, (off_t)fo->len);
        if (r <= 0)
            break;
        fo->len += (size_t)r;
    }
    fo->buf[fo->len] = '\0';
}

static void on_follow(void *arg, const struct sk_exec_rec *rec, bool ended)
{
    struct follower *fo = arg;
    (void)rec;
    follow_read(fo);
    if (ended)
        fo->done = true;
    else
        fo->outputs++;
}

TEST(output_can_be_followed_and_resumed_from_an_offset)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done", NULL};
    char *ex = exec_start(f, sb, argv, false);
    struct follower fo = {.s = f->s, .fd = -1};
    bool ended = true;
    ASSERT_OK(sk_sched_exec_output(f->s, ex, "stdout", &fo.fd, &ended, &err));
    ASSERT_FALSE(ended);
    follow_read(&fo);
    uint64_t wid;
    ASSERT_TRUE(sk_sched_exec_watch(f->s, ex, 1000, true, on_follow, &fo, &wid, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_OK(sk_sched_exec_watch(f->s, ex, 0, true, on_follow, &fo, &wid, &err));
    ASSERT_TRUE(tl_run_until(&f->loop, &fo.done, 10000));
    ASSERT_EQ_STR(fo.buf, "line1\nline2\nline3\nline4\nline5\n");
    ASSERT_GE_INT(fo.outputs, 3); /* it was told as lines arrived */
    close(fo.fd);
    int fd;
    ASSERT_OK(sk_sched_exec_output(f->s, ex, "stdout", &fd, &ended, &err));
    ASSERT_TRUE(ended);
    char rest[64] = {0};
    ASSERT_EQ_INT(pread(fd, rest, sizeof(rest) - 1, 9), 21);
    ASSERT_EQ_STR(rest, "e2\nline3\nline4\nline5\n");
    close(fd);
    free(sb);
    free(ex);
    fx_stop(f);
}

TEST(exec_stdin_is_written_and_closed)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const cat[] = {"/bin/cat", NULL};
    char *ex = exec_start(f, sb, cat, true);
    ASSERT_OK(sk_sched_exec_stdin(f->s, ex, "hello ", 6, false, &err));
    ASSERT_OK(sk_sched_exec_stdin(f->s, ex, "stdin\n", 6, true, &err));
    ASSERT_TRUE(sk_sched_exec_stdin(f->s, ex, "late", 4, false, &err) < 0);
    ASSERT_EQ_INT(err.code, EALREADY);
    struct ex_end w;
    exec_wait(f, ex, &w, 10000);
    ASSERT_EQ_INT(w.exit_code, 0);
    char *out = read_output(f, ex, "stdout", NULL);
    ASSERT_EQ_STR(out, "hello stdin\n");
    free(out);
    free(ex);

    /* more than a pipe holds, while the process reads slowly: queued, not
     * blocking the loop, and delivered whole */
    const char *const slow[] = {"/bin/sh", "-c", "sleep 0.3; exec cat", NULL};
    ex = exec_start(f, sb, slow, true);
    size_t big = 600000;
    char *data = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    int64_t t0 = sk_now_ns();
    ASSERT_OK(sk_sched_exec_stdin(f->s, ex, data, big, true, &err));
    ASSERT_LT_INT((sk_now_ns() - t0) / 1000000, 200);
    exec_wait(f, ex, &w, 10000);
    size_t len = 0;
    out = read_output(f, ex, "stdout", &len);
    ASSERT_EQ_INT(len, big);
    ASSERT_TRUE(memcmp(out, data, big) == 0);
    free(out);
    free(data);
    free(ex);

    /* an exec started without stdin refuses writes */
    const char *const t[] = {"/bin/sleep", "5", NULL};
    ex = exec_start(f, sb, t, false);
    ASSERT_TRUE(sk_sched_exec_stdin(f->s, ex, "x", 1, false, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    /* a process that exits without reading: writes fail cleanly, no SIGPIPE */
    const char *const quit[] = {"/bin/sh", "-c", "exec 0<&-; sleep 0.2", NULL};
    char *ex2 = exec_start(f, sb, quit, true);
    tl_run_for(&f->loop, 100);
    ASSERT_TRUE(sk_sched_exec_stdin(f->s, ex2, "x", 1, false, &err) < 0);
    ASSERT_EQ_INT(err.code, EALREADY);
    free(ex);
    free(ex2);
    free(sb);
    fx_stop(f);
}

/* A signal goes to one exec only. */
TEST(signal_reaches_only_its_exec)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sleep", "30", NULL};
    char *a = exec_start(f, sb, argv, false);
    char *b = exec_start(f, sb, argv, false);
    tl_run_for(&f->loop, 50);
    ASSERT_OK(sk_sched_exec_signal(f->s, a, SIGTERM, &err));
    struct ex_end wa, wb;
    exec_wait(f, a, &wa, 5000);
    ASSERT_EQ_INT(wa.signal, SIGTERM);
    ASSERT_EQ_INT(wa.exit_code, 128 + SIGTERM);
    watch_exec(f, b, &wb, 300);
    ASSERT_TRUE(tl_run_until(&f->loop, &wb.done, 3000));
    ASSERT_FALSE(wb.ended); /* the timeout, not the end */
    ASSERT_EQ_STR(wb.state, "running");
    ASSERT_TRUE(sk_sched_exec_signal(f->s, a, SIGTERM, &err) < 0);
    ASSERT_EQ_INT(err.code, EALREADY);
    ASSERT_TRUE(sk_sched_exec_signal(f->s, b, 0, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_TRUE(sk_sched_exec_signal(f->s, "ex-0000000000000000", SIGTERM, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_OK(sk_sched_exec_signal(f->s, b, SIGKILL, &err));
    exec_wait(f, b, &wb, 5000);
    ASSERT_EQ_INT(wb.signal, SIGKILL);
    free(a);
    free(b);
    free(sb);
    fx_stop(f);
}

/* A background child that keeps stdout open does not keep the exec
 * running past the grace. */
TEST(background_child_holding_stdout_does_not_keep_exec_running)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sh", "-c", "sleep 30 & echo started", NULL};
    int64_t t0 = sk_now_ns();
    char *ex = exec_start(f, sb, argv, false);
    struct ex_end w;
    exec_wait(f, ex, &w, 5000);
    double s = elapsed_s(t0);
    if (s > 1.0)
        FAIL("exec ended %.3f s after start; the grace is %d ms", s, SK_SCHED_EXEC_GRACE_MS);
    ASSERT_EQ_INT(w.exit_code, 0);
    char *out = read_output(f, ex, "stdout", NULL);
    ASSERT_EQ_STR(out, "started\n");
    free(out);
    free(ex);
    free(sb);
    fx_stop(f);
}

/* When its sandbox ends, every exec still running is recorded as ended
 * (killed) and its watchers hear about it; its output so far is kept. */
TEST(sandbox_end_ends_running_execs)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sh", "-c", "echo before; exec sleep 30", NULL};
    char *a = exec_start(f, sb, argv, false);
    char *b = exec_start(f, sb, argv, true);
    struct ex_end wa, wb;
    watch_exec(f, a, &wa, 0);
    watch_exec(f, b, &wb, 0);
    tl_run_for(&f->loop, 200);
    ASSERT_OK(sk_sched_terminate(f->s, sb, "tok", &err));
    const char *ids[] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct sk_exec_rec xr;
        ASSERT_OK(sk_store_exec_get(f->st, ids[i], &xr, &err));
        ASSERT_EQ_STR(xr.state, "exited");
        ASSERT_EQ_INT(xr.signal, SIGKILL);
        ASSERT_EQ_INT(xr.exit_code, 128 + SIGKILL);
        ASSERT_GT_INT(xr.ended_at, 0);
        sk_exec_rec_release(&xr);
        char *out = read_output(f, ids[i], "stdout", NULL);
        ASSERT_EQ_STR(out, "before\n");
        free(out);
    }
    ASSERT_TRUE(tl_run_until(&f->loop, &wb.done, 2000));
    ASSERT_TRUE(tl_run_until(&f->loop, &wa.done, 2000));
    ASSERT_TRUE(wa.ended && wb.ended);
    ASSERT_EQ_INT(wa.signal, SIGKILL);
    ASSERT_TRUE(sk_sched_exec_stdin(f->s, b, "x", 1, false, &err) < 0);
    ASSERT_EQ_INT(err.code, EALREADY);
    free(a);
    free(b);
    free(sb);
    fx_stop(f);
}

/* An exec timeout is enforced by skiff-init and recorded. */
TEST(exec_timeout_is_recorded)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sleep", "10", NULL};
    struct sk_exec_req xreq = {.argv = argv, .timeout_ms = 300};
    struct sk_exec_rec xr;
    ASSERT_OK(sk_sched_exec(f->s, sb, &xreq, &xr, &err));
    struct ex_end w;
    exec_wait(f, xr.id, &w, 5000);
    ASSERT_TRUE(w.timed_out);
    ASSERT_EQ_INT(w.signal, SIGKILL);
    sk_exec_rec_release(&xr);
    free(sb);
    fx_stop(f);
}

/* A process that writes more than max_output_bytes to a stream is killed,
 * and the file holds exactly the limit (and says it was truncated); the
 * other stream is complete. An exec that stays below the limit is left
 * alone. */
TEST(output_cap_kills_the_writer_and_truncates)
{
    struct sk_sched_config cfg = {.max_output_bytes = 1000};
    struct fx *f = fx_start(NULL, &cfg);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sh", "-c", "echo start >&2; exec yes", NULL};
    char *ex = exec_start(f, sb, argv, false);
    struct ex_end w;
    exec_wait(f, ex, &w, 10000);
    ASSERT_EQ_INT(w.signal, SIGKILL);
    ASSERT_EQ_INT(w.exit_code, 128 + SIGKILL);
    struct sk_exec_output_info info;
    ASSERT_OK(sk_sched_exec_output_info(f->s, ex, &info, &err));
    ASSERT_EQ_INT(info.stdout_bytes, 1000);
    ASSERT_TRUE(info.stdout_truncated);
    ASSERT_FALSE(info.stderr_truncated);
    size_t len = 0;
    char *out = read_output(f, ex, "stdout", &len);
    ASSERT_EQ_INT(len, 1000);
    ASSERT_TRUE(strncmp(out, "y\ny\ny\n", 6) == 0);
    free(out);
    char *e = read_output(f, ex, "stderr", NULL);
    ASSERT_EQ_STR(e, "start\n");
    free(e);
    free(ex);
    /* exactly the limit is not too much */
    const char *const exact[] = {"/usr/bin/head", "-c", "1000", "/dev/zero", NULL};
    ex = exec_start(f, sb, exact, false);
    exec_wait(f, ex, &w, 10000);
    ASSERT_EQ_INT(w.exit_code, 0);
    ASSERT_OK(sk_sched_exec_output_info(f->s, ex, &info, &err));
    ASSERT_EQ_INT(info.stdout_bytes, 1000);
    ASSERT_FALSE(info.stdout_truncated);
    free(ex);
    free(sb);
    fx_stop(f);
}

/* A pty exec: a terminal inside, input through the same master, output in
 * "stdout". */
TEST(pty_exec_reads_input_and_writes_stdout)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    const char *const argv[] = {"/bin/sh", "-c", "test -t 0 && echo tty; read l; echo got:$l", NULL};
    struct sk_exec_req xreq = {.argv = argv, .pty = true, .rows = 30, .cols = 100};
    struct sk_exec_rec xr;
    ASSERT_OK(sk_sched_exec(f->s, sb, &xreq, &xr, &err));
    ASSERT_TRUE(xr.pty);
    ASSERT_OK(sk_sched_exec_resize(f->s, xr.id, 40, 120, &err));
    ASSERT_OK(sk_sched_exec_stdin(f->s, xr.id, "abc\n", 4, false, &err));
    struct ex_end w;
    exec_wait(f, xr.id, &w, 5000);
    ASSERT_EQ_INT(w.exit_code, 0);
    char *out = read_output(f, xr.id, "stdout", NULL);
    ASSERT_CONTAINS(out, "tty");
    ASSERT_CONTAINS(out, "got:abc");
    free(out);
    sk_exec_rec_release(&xr);
    free(sb);
    fx_stop(f);
}

/* ---- bad input --------------------------------------------------------------------------- */

/* A taken name is EEXIST, costs no sandbox, and the first one is untouched. */
TEST(name_clash_is_eexist_and_leaves_the_first_alone)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {.name = "dup"};
    char *id = create(f, &req);
    struct sk_sandbox_rec rec;
    ASSERT_TRUE(sk_sched_create(f->s, &req, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, EEXIST);
    ASSERT_CONTAINS(err.msg, "dup");
    ASSERT_OK(sk_sched_get(f->s, "dup", &rec, &err));
    ASSERT_EQ_STR(rec.id, id);
    ASSERT_EQ_STR(rec.state, "running");
    sk_sandbox_rec_release(&rec);
    ASSERT_EQ_INT(settled_cgroups(f, 1), 1);
    const char *const argv[] = {"/bin/true", NULL};
    char *ex = exec_start(f, id, argv, false);
    struct ex_end w;
    exec_wait(f, ex, &w, 5000);
    ASSERT_EQ_INT(w.exit_code, 0);
    free(ex);
    free(id);
    fx_stop(f);
}

TEST(bad_requests_are_einval_and_leave_nothing)
{
    struct sk_sched_config cfg = {.max_timeout_ms = 10000};
    struct fx *f = fx_start(NULL, &cfg);
    struct sk_error err = {0};
    struct sk_sandbox_rec rec;
    const char *bad_tags[] = {"[1]",           "{\"a\": 1}", "not json", "{\"a\": \"b\", \"a\": \"c\"}",
                              "{\"\": \"x\"}", "\"str\""};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad_tags); i++) {
        struct sk_sandbox_req req = {.tags_json = bad_tags[i]};
        if (sk_sched_create(f->s, &req, &rec, &err) >= 0)
            FAIL("tags %s were accepted", bad_tags[i]);
        ASSERT_EQ_INT(err.code, EINVAL);
    }
    struct sk_sandbox_req over = {.timeout_ms = 20000};
    ASSERT_TRUE(sk_sched_create(f->s, &over, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_CONTAINS(err.msg, "10000");
    const char *bad_names[] = {"a b", "", "x/y", "../etc",
                               "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(bad_names); i++) {
        struct sk_sandbox_req req = {.name = bad_names[i]};
        if (sk_sched_create(f->s, &req, &rec, &err) >= 0)
            FAIL("name '%s' was accepted", bad_names[i]);
        ASSERT_EQ_INT(err.code, EINVAL);
    }
    struct sk_sandbox_req neg = {.idle_timeout_ms = -1};
    ASSERT_TRUE(sk_sched_create(f->s, &neg, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    const char *const env[] = {"NOEQUALS", NULL};
    struct sk_sandbox_req badenv = {.env = env};
    ASSERT_TRUE(sk_sched_create(f->s, &badenv, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    struct sk_sandbox_req mem = {.limits = {.memory_bytes = 1024}};
    ASSERT_TRUE(sk_sched_create(f->s, &mem, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    /* nothing recorded, nothing running */
    struct sk_sandbox_filter filt = {0};
    struct sk_sandbox_rec *list = NULL;
    size_t n = 9;
    char *next = NULL;
    ASSERT_OK(sk_store_sandbox_list(f->st, &filt, &list, &n, &next, &err));
    ASSERT_EQ_INT(n, 0);
    sk_sandbox_recs_free(list, n);
    free(next);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    /* within the maximum is fine; env reaches processes */
    const char *const env2[] = {"GREETING=hi there", "HOME=/tmp", NULL};
    struct sk_sandbox_req ok = {.timeout_ms = 10000, .env = env2, .workdir = "/tmp"};
    char *id = create(f, &ok);
    const char *const argv[] = {"/bin/sh", "-c", "echo \"$GREETING|$HOME|$(pwd)|$PATH\"", NULL};
    char *ex = exec_start(f, id, argv, false);
    struct ex_end w;
    exec_wait(f, ex, &w, 5000);
    char *out = read_output(f, ex, "stdout", NULL);
    ASSERT_CONTAINS(out, "hi there|/tmp|/tmp|/usr/local/sbin:");
    free(out);
    ASSERT_OK(sk_sched_set_tags(f->s, id, "{\"k\": \"v\"}", &err));
    ASSERT_TRUE(sk_sched_set_tags(f->s, id, "{\"k\": 2}", &err) < 0);
    ASSERT_EQ_INT(err.code, EINVAL);
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    ASSERT_EQ_STR(rec.tags_json, "{\"k\":\"v\"}");
    sk_sandbox_rec_release(&rec);
    free(ex);
    free(id);
    fx_stop(f);
}

/* ---- restart and retention ---------------------------------------------------------------- */

/* The crash tests: a forked child of the test is the first server; it
 * creates sandboxes and execs, hands their ids over and dies by SIGKILL
 * without any teardown. The test (a child subreaper, so that the orphaned
 * sandboxes' pid 1 become its children as they would become init's) then
 * starts a second manager on the same data directory, as a restarted
 * server would, and recovers. */

#define CRASH_LOOP "for i in $(seq 1 30); do echo $i; sleep 0.1; done"

struct handoff {
    char sb[32], loop[32], quick[32], pty[32], cat[32];
    int64_t created_ns; /* CLOCK_MONOTONIC just before the create */
    int64_t host_pid;
    int64_t loop_bytes; /* of the loop's stdout when the owner died */
};

typedef void (*owner_fn)(struct fx *f, struct handoff *h);

/* crash_after - run fn as the first server in a forked child, which then
 * dies by SIGKILL; returns what it handed over. */
static void crash_after(const char *dir, owner_fn fn, struct handoff *h)
{
    ASSERT_EQ_INT(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    test_cgroup_parent(); /* the crashing owner shares ours */
    state_dir();
    int p[2];
    ASSERT_EQ_INT(pipe2(p, O_CLOEXEC), 0);
    pid_t owner = fork();
    ASSERT_GE_INT(owner, 0);
    if (owner == 0) {
        close(p[0]);
        struct fx *f = fx_start(dir, NULL);
        struct handoff mine;
        memset(&mine, 0, sizeof(mine));
        fn(f, &mine);
        if (write(p[1], &mine, sizeof(mine)) != (ssize_t)sizeof(mine))
            _exit(3);
        raise(SIGKILL); /* a crash: no teardown at all */
        _exit(4);
    }
    close(p[1]);
    memset(h, 0, sizeof(*h));
    ssize_t n = sk_read_all(p[0], h, sizeof(*h));
    close(p[0]);
    int status = 0;
    while (waitpid(owner, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(*h))
        FAIL("the first server did not hand over (status 0x%x)", (unsigned)status);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static int64_t file_size(const char *dir, const char *sb, const char *ex, const char *stream)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/sandboxes/%s/execs/%s.%s", dir, sb, ex, stream);
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static bool state_exists(const char *fmt, const char *id)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), fmt, id);
    return stat(path, &st) == 0;
}

/* process_gone - pid neither runs nor is a zombie of ours (reaped here: we
 * are its subreaper). */
static bool process_gone(pid_t pid)
{
    for (int i = 0; i < 500; i++) {
        waitpid(pid, NULL, WNOHANG | __WALL);
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        usleep(10000);
    }
    return false;
}

/* assert_sandbox_gone - no cgroup, no process, no runtime state of it
 * (within 10 s: a worker thread tears an ended sandbox down). */
static void assert_sandbox_gone(struct fx *f, const char *id, pid_t pid)
{
    struct sk_error err = {0};
    ASSERT_TRUE(process_gone(pid));
    char dir_fmt[PATH_MAX], lock_fmt[PATH_MAX];
    snprintf(dir_fmt, sizeof(dir_fmt), "%s/sandboxes/%%s", state_dir());
    snprintf(lock_fmt, sizeof(lock_fmt), "%s/locks/%%s.lock", state_dir());
    for (int i = 0; i < 1000; i++) {
        if (sk_cgroup_count_children(sk_runtime_cgroups(f->rt), id, &err) == 0 && !state_exists(dir_fmt, id) &&
            !state_exists(lock_fmt, id))
            break;
        usleep(10000);
    }
    ASSERT_EQ_INT(sk_cgroup_count_children(sk_runtime_cgroups(f->rt), id, &err), 0);
    ASSERT_FALSE(state_exists(dir_fmt, id));
    ASSERT_FALSE(state_exists(lock_fmt, id));
}

static void rec_deadline(struct fx *f, const char *id, int64_t *deadline_ns)
{
    struct sk_error err = {0};
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    json_t *j = json_loads(rec.runtime_json, 0, NULL);
    const char *adopt = json_string_value(json_object_get(j, "adopt"));
    ASSERT_TRUE(adopt != NULL);
    struct sk_sandbox_adopt_info info;
    ASSERT_OK(sk_sandbox_adopt_info_parse(adopt, &info, &err));
    ASSERT_EQ_STR(info.id, id);
    *deadline_ns = info.deadline_ns;
    json_decref(j);
    sk_sandbox_rec_release(&rec);
}

static void owner_with_running_execs(struct fx *f, struct handoff *h)
{
    struct sk_error err = {0};
    const char *const env[] = {"GREETING=still here", NULL};
    struct sk_sandbox_req req = {.name = "survivor", .timeout_ms = 6000, .env = env, .workdir = "/tmp"};
    h->created_ns = sk_now_ns();
    char *id = create(f, &req);
    snprintf(h->sb, sizeof(h->sb), "%s", id);
    const char *const loop[] = {"/bin/sh", "-c", CRASH_LOOP, NULL};
    char *ex = exec_start(f, id, loop, false);
    snprintf(h->loop, sizeof(h->loop), "%s", ex);
    free(ex);
    const char *const pty_argv[] = {"/bin/sh", "-c", "read l; echo got:$l", NULL};
    struct sk_exec_req preq = {.argv = pty_argv, .pty = true};
    struct sk_exec_rec prec;
    ASSERT_OK(sk_sched_exec(f->s, id, &preq, &prec, &err));
    snprintf(h->pty, sizeof(h->pty), "%s", prec.id);
    sk_exec_rec_release(&prec);
    tl_run_for(&f->loop, 300);
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    h->host_pid = rec.host_pid;
    sk_sandbox_rec_release(&rec);
    h->loop_bytes = file_size(f->dir, id, h->loop, "stdout");
    free(id);
}

/* The server is killed while a sandbox runs an exec that streams output
 * and a pty exec that waits for input; the next server re-adopts it: the
 * output file kept growing meanwhile and a reader resumes at its offset
 * with nothing lost or doubled, the exec ends with its real exit code, the
 * pty takes input again, new execs get the sandbox's env and workdir, the
 * record never stopped saying "running", and the sandbox's timeout fires
 * at its original deadline; then nothing of it is left. */
TEST_TIMEOUT(crashed_servers_sandbox_is_readopted_with_its_execs, 60)
{
    char dir[] = "/var/tmp/skiff-sched-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    struct handoff h;
    crash_after(dir, owner_with_running_execs, &h);
    ASSERT_GT_INT(h.loop_bytes, 0);
    /* Nobody owns it: it runs on and the loop's output keeps landing. */
    ASSERT_EQ_INT(kill((pid_t)h.host_pid, 0), 0);
    usleep(500000);
    int64_t unowned_bytes = file_size(dir, h.sb, h.loop, "stdout");
    ASSERT_GT_INT(unowned_bytes, h.loop_bytes);
    /* A client read this much before the crash. */
    char before[256] = {0};
    int64_t offset = h.loop_bytes;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/sandboxes/%s/execs/%s.stdout", dir, h.sb, h.loop);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT_GE_INT(fd, 0);
    ASSERT_EQ_INT(pread(fd, before, (size_t)offset, 0), offset);
    close(fd);

    struct fx *f = fx_start_as(dir, NULL, true);
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_sched_recover(f->s, &err), 0);
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, "survivor", &rec, &err));
    ASSERT_EQ_STR(rec.id, h.sb);
    ASSERT_EQ_STR(rec.state, "running");
    ASSERT_TRUE(rec.reason == NULL);
    ASSERT_EQ_INT(rec.host_pid, h.host_pid);
    sk_sandbox_rec_release(&rec);
    ASSERT_EQ_INT(settled_cgroups(f, 1), 1);
    int64_t deadline_ns = 0;
    rec_deadline(f, h.sb, &deadline_ns);
    ASSERT_GT_INT(deadline_ns, h.created_ns);

    /* The reader resumes at its offset and follows to the end. */
    struct follower fo = {.s = f->s, .fd = -1};
    memcpy(fo.buf, before, (size_t)offset);
    fo.len = (size_t)offset; /* follow_read goes on from here */
    bool ended = true;
    ASSERT_OK(sk_sched_exec_output(f->s, h.loop, "stdout", &fo.fd, &ended, &err));
    ASSERT_FALSE(ended);
    struct ex_end lw;
    watch_exec(f, h.loop, &lw, 0);
    uint64_t wid = 0;
    ASSERT_OK(sk_sched_exec_watch(f->s, h.loop, 0, true, on_follow, &fo, &wid, &err));
    ASSERT_TRUE(tl_run_until(&f->loop, &lw.done, 10000));
    ASSERT_TRUE(tl_run_until(&f->loop, &fo.done, 2000));
    ASSERT_TRUE(lw.ended);
    ASSERT_EQ_INT(lw.exit_code, 0);
    ASSERT_EQ_INT(lw.signal, 0);
    ASSERT_GE_INT(fo.outputs, 3); /* told as lines arrived after the adoption */
    char want[256] = {0};
    size_t wn = 0;
    for (int i = 1; i <= 30; i++)
        wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%d\n", i);
    ASSERT_EQ_INT(fo.len, wn);
    ASSERT_TRUE(memcmp(fo.buf, before, (size_t)offset) == 0);
    ASSERT_EQ_STR(fo.buf + offset, want + offset);
    ASSERT_EQ_STR(fo.buf, want);
    close(fo.fd);

    /* The pty exec: its master was opened again. */
    ASSERT_OK(sk_sched_exec_stdin(f->s, h.pty, "abc\n", 4, false, &err));
    struct ex_end pw;
    exec_wait(f, h.pty, &pw, 5000);
    ASSERT_EQ_INT(pw.exit_code, 0);
    char *out = read_output(f, h.pty, "stdout", NULL);
    ASSERT_CONTAINS(out, "got:abc");
    free(out);

    /* A new exec, with the sandbox's env and workdir. */
    const char *const argv[] = {"/bin/sh", "-c", "echo \"$GREETING|$(pwd)|$HOSTNAME\"", NULL};
    char *ex = exec_start(f, h.sb, argv, false);
    struct ex_end w;
    exec_wait(f, ex, &w, 5000);
    ASSERT_EQ_INT(w.exit_code, 0);
    out = read_output(f, ex, "stdout", NULL);
    char line[128];
    snprintf(line, sizeof(line), "still here|/tmp|%s\n", h.sb);
    ASSERT_EQ_STR(out, line);
    free(out);
    free(ex);
    /* Every EXIT was stored and released: skiff-init tracks nothing more. */
    tl_run_for(&f->loop, 50);
    ASSERT_EQ_INT(tracked_procs(f, h.sb), 0);

    /* The timeout fires at the deadline it had from the start. */
    struct sb_end sw;
    wait_sandbox(f, h.sb, &sw, 10000);
    ASSERT_EQ_STR(sw.reason, "timeout");
    ASSERT_GE_INT(sw.at_ns, deadline_ns);
    ASSERT_LT_INT(sw.at_ns - deadline_ns, 1000000000LL);
    ASSERT_LT_INT(sw.at_ns - h.created_ns, 7500000000LL);
    assert_sandbox_gone(f, h.sb, (pid_t)h.host_pid);
    /* a second start finds nothing to recover */
    ASSERT_EQ_INT(sk_sched_recover(f->s, &err), 0);
    fx_stop(f);
}

static void owner_with_quick_execs(struct fx *f, struct handoff *h)
{
    struct sk_error err = {0};
    const char *const ep[] = {"/bin/sh", "-c", "sleep 0.6; exit 3", NULL};
    struct sk_sandbox_req req = {.entrypoint = ep};
    char *id = create(f, &req);
    snprintf(h->sb, sizeof(h->sb), "%s", id);
    const char *const quick[] = {"/bin/sh", "-c", "sleep 0.2; echo bye; exit 7", NULL};
    char *ex = exec_start(f, id, quick, false);
    snprintf(h->quick, sizeof(h->quick), "%s", ex);
    free(ex);
    const char *const cat[] = {"/bin/cat", NULL};
    ex = exec_start(f, id, cat, true);
    snprintf(h->cat, sizeof(h->cat), "%s", ex);
    free(ex);
    ASSERT_OK(sk_sched_exec_stdin(f->s, h->cat, "in\n", 3, false, &err));
    tl_run_for(&f->loop, 50);
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    h->host_pid = rec.host_pid;
    sk_sandbox_rec_release(&rec);
    free(id);
}

/* Execs that end while nobody owns their sandbox are recorded with their
 * real exit status (an exec whose stdin pipe went with the server sees EOF
 * and ends normally); an entrypoint that ended meanwhile ends its sandbox
 * with its own exit code after the adoption. */
TEST_TIMEOUT(execs_that_end_while_unowned_get_their_real_exit_codes, 60)
{
    char dir[] = "/var/tmp/skiff-sched-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    struct handoff h;
    crash_after(dir, owner_with_quick_execs, &h);
    usleep(1000000); /* everything ends meanwhile */
    struct fx *f = fx_start_as(dir, NULL, true);
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_sched_recover(f->s, &err), 0);
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, h.quick, &xr, &err));
    ASSERT_EQ_STR(xr.state, "exited");
    ASSERT_EQ_INT(xr.exit_code, 7);
    ASSERT_EQ_INT(xr.signal, 0);
    sk_exec_rec_release(&xr);
    char *out = read_output(f, h.quick, "stdout", NULL);
    ASSERT_EQ_STR(out, "bye\n");
    free(out);
    ASSERT_OK(sk_store_exec_get(f->st, h.cat, &xr, &err));
    ASSERT_EQ_STR(xr.state, "exited");
    ASSERT_EQ_INT(xr.exit_code, 0);
    sk_exec_rec_release(&xr);
    out = read_output(f, h.cat, "stdout", NULL);
    ASSERT_EQ_STR(out, "in\n");
    free(out);
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, h.sb, &rec, &err));
    ASSERT_EQ_STR(rec.state, "terminated");
    ASSERT_EQ_STR(rec.reason, "exited");
    ASSERT_EQ_INT(rec.exit_code, 3);
    sk_sandbox_rec_release(&rec);
    assert_sandbox_gone(f, h.sb, (pid_t)h.host_pid);
    fx_stop(f);
}

static void owner_with_doomed_sandbox(struct fx *f, struct handoff *h)
{
    struct sk_error err = {0};
    struct sk_sandbox_req req = {.name = "doomed"};
    char *id = create(f, &req);
    snprintf(h->sb, sizeof(h->sb), "%s", id);
    const char *const argv[] = {"/bin/sh", "-c", "echo partial; exec sleep 60", NULL};
    char *ex = exec_start(f, id, argv, false);
    snprintf(h->loop, sizeof(h->loop), "%s", ex);
    free(ex);
    tl_run_for(&f->loop, 200);
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, id, &rec, &err));
    h->host_pid = rec.host_pid;
    sk_sandbox_rec_release(&rec);
    free(id);
}

/* A sandbox whose pid 1 died while nobody owned it cannot be re-adopted:
 * the next start records it lost (its running execs as ended, exit code
 * unknown), keeps its output readable, and leaves nothing of it. */
TEST_TIMEOUT(sandbox_that_died_while_unowned_is_recorded_lost, 60)
{
    char dir[] = "/var/tmp/skiff-sched-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    struct handoff h;
    crash_after(dir, owner_with_doomed_sandbox, &h);
    ASSERT_EQ_INT(kill((pid_t)h.host_pid, SIGKILL), 0);
    ASSERT_TRUE(process_gone((pid_t)h.host_pid));

    struct fx *f = fx_start_as(dir, NULL, true);
    struct sk_error err = {0};
    ASSERT_EQ_INT(sk_sched_recover(f->s, &err), 1);
    struct sk_sandbox_rec rec;
    ASSERT_OK(sk_sched_get(f->s, "doomed", &rec, &err));
    ASSERT_EQ_STR(rec.id, h.sb);
    ASSERT_EQ_STR(rec.state, "terminated");
    ASSERT_EQ_STR(rec.reason, "lost");
    ASSERT_TRUE(strncmp(rec.reason_detail, "server restarted: ", 18) == 0);
    ASSERT_GT_INT(rec.ended_at, 0);
    sk_sandbox_rec_release(&rec);
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, h.loop, &xr, &err));
    ASSERT_EQ_STR(xr.state, "exited");
    ASSERT_EQ_INT(xr.exit_code, -1);
    sk_exec_rec_release(&xr);
    char *out = read_output(f, h.loop, "stdout", NULL);
    ASSERT_EQ_STR(out, "partial\n");
    free(out);
    assert_sandbox_gone(f, h.sb, (pid_t)h.host_pid);
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    /* a second start finds nothing more to recover */
    ASSERT_EQ_INT(sk_sched_recover(f->s, &err), 0);
    fx_stop(f);
}

/* Ended sandboxes older than the retention go, with their output; running
 * ones and recent ones stay. */
TEST(purge_removes_old_sandboxes_and_their_output)
{
    struct sk_sched_config cfg = {.retention_ms = 300};
    struct fx *f = fx_start(NULL, &cfg);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *old = create(f, &req);
    char *live = create(f, &req);
    const char *const argv[] = {"/bin/echo", "x", NULL};
    char *ex_old = exec_start(f, old, argv, false);
    char *ex_live = exec_start(f, live, argv, false);
    struct ex_end w;
    exec_wait(f, ex_old, &w, 5000);
    exec_wait(f, ex_live, &w, 5000);
    ASSERT_OK(sk_sched_terminate(f->s, old, "t", &err));
    char old_dir[PATH_MAX], live_dir[PATH_MAX];
    snprintf(old_dir, sizeof(old_dir), "%s/sandboxes/%s", f->dir, old);
    snprintf(live_dir, sizeof(live_dir), "%s/sandboxes/%s", f->dir, live);
    struct stat st;
    ASSERT_EQ_INT(sk_sched_purge(f->s, &err), 0); /* too recent */
    ASSERT_EQ_INT(stat(old_dir, &st), 0);
    tl_run_for(&f->loop, 400);
    ASSERT_EQ_INT(sk_sched_purge(f->s, &err), 1);
    struct sk_sandbox_rec rec;
    ASSERT_TRUE(sk_sched_get(f->s, old, &rec, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_NE_INT(stat(old_dir, &st), 0);
    struct sk_exec_rec xr;
    ASSERT_TRUE(sk_store_exec_get(f->st, ex_old, &xr, &err) < 0);
    int fd;
    ASSERT_TRUE(sk_sched_exec_output(f->s, ex_old, "stdout", &fd, NULL, &err) < 0);
    ASSERT_EQ_INT(err.code, ENOENT);
    ASSERT_OK(sk_sched_get(f->s, live, &rec, &err));
    sk_sandbox_rec_release(&rec);
    ASSERT_EQ_INT(stat(live_dir, &st), 0);
    free(old);
    free(live);
    free(ex_old);
    free(ex_live);
    fx_stop(f);
}

/* ---- asynchronous creation -------------------------------------------------------------- */

struct created {
    bool done;
    int calls, ret, code;
    char id[64], state[32], msg[256];
};

static void on_created(void *arg, int ret, const struct sk_sandbox_rec *rec, const struct sk_error *err)
{
    struct created *c = arg;
    c->calls++;
    c->done = true;
    c->ret = ret;
    if (ret == 0) {
        snprintf(c->id, sizeof(c->id), "%s", rec->id);
        snprintf(c->state, sizeof(c->state), "%s", rec->state);
    } else {
        c->code = err->code;
        snprintf(c->msg, sizeof(c->msg), "%s", err->msg);
    }
}

TEST(async_creates_run_in_parallel_and_report_from_the_loop)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    enum { N = 6 };
    struct created c[N];
    memset(c, 0, sizeof(c));
    char names[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "async-%d", i);
        struct sk_sandbox_req req = {.name = names[i], .env = (const char *const[]){"WHO=async", NULL}};
        ASSERT_OK(sk_sched_create_async(f->s, &req, on_created, &c[i], &err));
        ASSERT_FALSE(c[i].done); /* never from inside the call */
    }
    for (int i = 0; i < N; i++) {
        ASSERT_TRUE(tl_run_until(&f->loop, &c[i].done, 30000));
        ASSERT_EQ_INT(c[i].ret, 0);
        ASSERT_EQ_INT(c[i].calls, 1);
        ASSERT_EQ_STR(c[i].state, "running");
        struct sk_sandbox_rec rec;
        ASSERT_OK(sk_sched_get(f->s, names[i], &rec, &err));
        ASSERT_EQ_STR(rec.id, c[i].id);
        sk_sandbox_rec_release(&rec);
        /* the request was copied: its env reached the sandbox */
        char *x = exec_start(f, c[i].id, (const char *const[]){"sh", "-c", "echo $WHO", NULL}, false);
        struct ex_end w;
        exec_wait(f, x, &w, 10000);
        size_t len = 0;
        char *out = read_output(f, x, "stdout", &len);
        ASSERT_EQ_STR(out, "async\n");
        free(out);
        free(x);
    }
    ASSERT_EQ_INT(settled_cgroups(f, N), N);

    /* a bad request is refused at once, without a call */
    struct created bad = {0};
    struct sk_sandbox_req rel = {.workdir = "relative"};
    ASSERT_EQ_INT(sk_sched_create_async(f->s, &rel, on_created, &bad, &err), -EINVAL);
    struct sk_sandbox_req taken = {.name = "async-0"};
    ASSERT_EQ_INT(sk_sched_create_async(f->s, &taken, on_created, &bad, &err), -EEXIST);
    /* a missing image fails on the worker: reported, recorded as error */
    struct sk_sandbox_req missing = {.image = "/nonexistent/rootfs"};
    ASSERT_OK(sk_sched_create_async(f->s, &missing, on_created, &bad, &err));
    ASSERT_TRUE(tl_run_until(&f->loop, &bad.done, 30000));
    ASSERT_EQ_INT(bad.ret, -ENOENT);
    ASSERT_CONTAINS(bad.msg, "/nonexistent/rootfs");
    tl_run_for(&f->loop, 100);
    ASSERT_EQ_INT(bad.calls, 1);
    fx_stop(f);
}

TEST(async_creates_in_flight_at_shutdown_are_reported_and_leave_nothing)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    enum { N = 8 };
    struct created c[N];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < N; i++) {
        struct sk_sandbox_req req = {0};
        ASSERT_OK(sk_sched_create_async(f->s, &req, on_created, &c[i], &err));
    }
    /* free at once: some are being built, the rest never start */
    sk_sched_free(f->s);
    f->s = NULL;
    int refused = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(c[i].calls, 1);
        if (c[i].ret != 0) {
            ASSERT_EQ_INT(c[i].code, EBUSY);
            ASSERT_CONTAINS(c[i].msg, "shutting down");
            refused++;
        }
    }
    ASSERT_GE_INT(refused, 1); /* N creations take far longer than the free */
    ASSERT_EQ_INT(settled_cgroups(f, 0), 0);
    fx_stop(f);
}

struct started {
    bool done;
    int calls, ret, code;
    char id[64], msg[256];
};

static void on_started(void *arg, int ret, const struct sk_exec_rec *rec, const struct sk_error *err)
{
    struct started *st = arg;
    st->calls++;
    st->done = true;
    st->ret = ret;
    if (ret == 0)
        snprintf(st->id, sizeof(st->id), "%s", rec->id);
    else {
        st->code = err->code;
        snprintf(st->msg, sizeof(st->msg), "%s", err->msg);
    }
}

TEST(async_execs_are_reported_from_the_loop)
{
    struct fx *f = fx_start(NULL, NULL);
    struct sk_error err = {0};
    struct sk_sandbox_req req = {0};
    char *sb = create(f, &req);
    struct started a = {0}, b = {0}, c = {0};
    struct sk_exec_req ok = {.argv = (const char *const[]){"sh", "-c", "echo out; exit 4", NULL}};
    struct sk_exec_req missing = {.argv = (const char *const[]){"/no/such/cmd", NULL}};
    ASSERT_OK(sk_sched_exec_async(f->s, sb, &ok, on_started, &a, &err));
    ASSERT_OK(sk_sched_exec_async(f->s, sb, &missing, on_started, &b, &err));
    ASSERT_FALSE(a.done || b.done); /* never from inside the call */
    ASSERT_TRUE(tl_run_until(&f->loop, &a.done, 10000));
    ASSERT_TRUE(tl_run_until(&f->loop, &b.done, 10000));
    ASSERT_EQ_INT(a.ret, 0);
    ASSERT_EQ_INT(b.ret, -ENOENT);
    ASSERT_CONTAINS(b.msg, "/no/such/cmd");
    struct ex_end w;
    exec_wait(f, a.id, &w, 10000);
    size_t len = 0;
    char *out = read_output(f, a.id, "stdout", &len);
    ASSERT_EQ_STR(out, "out\n");
    free(out);
    struct sk_exec_rec xr;
    ASSERT_OK(sk_store_exec_get(f->st, a.id, &xr, &err));
    ASSERT_EQ_INT(xr.exit_code, 4);
    ASSERT_GT_INT(xr.proc_id, 0);
    sk_exec_rec_release(&xr);
    /* unknown sandbox: refused at once */
    ASSERT_EQ_INT(sk_sched_exec_async(f->s, "sb-0000000000000000", &ok, on_started, &c, &err), -ENOENT);
    /* a sandbox that ends while a start is in flight: reported once, either way */
    ASSERT_OK(sk_sched_exec_async(f->s, sb, &ok, on_started, &c, &err));
    ASSERT_OK(sk_sched_terminate(f->s, sb, "test", &err));
    ASSERT_TRUE(tl_run_until(&f->loop, &c.done, 10000));
    tl_run_for(&f->loop, 100);
    ASSERT_EQ_INT(c.calls, 1);
    if (c.ret != 0)
        ASSERT_EQ_INT(c.code, EALREADY);
    free(sb);
    fx_stop(f);
}
