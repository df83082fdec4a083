/* proc.c - SPAWN, SIGNAL, RESIZE, LIST_PROCS, RELEASE, OPEN_PTY, reaping
 * and per-process timeouts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "init.h"

/* One PROCS reply lists every tracked process. */
_Static_assert(SK_INIT_PROCS_MAX <= SK_PROTO_PROCS_MAX, "PROCS must hold every tracked process");

/* What a child reports through its error pipe when it cannot exec. */
enum child_stage { STAGE_SETUP = 1, STAGE_CHDIR = 2, STAGE_EXEC = 3 };
struct child_failure {
    int32_t stage;
    int32_t code;
};

/* Everything the forked child needs, prepared before fork. */
struct child_plan {
    char **argv;
    char **envp;
    const char *cwd;
    int in_fd, out_fd, err_fd; /* become 0, 1, 2 */
    int pty_slave;             /* >= 0: becomes the controlling terminal */
    int report_fd;             /* error pipe, close-on-exec */
};

static void __attribute__((noreturn)) child_fail(int fd, enum child_stage stage, int code)
{
    struct child_failure f = {.stage = stage, .code = code};
    ssize_t w = write(fd, &f, sizeof(f));
    (void)w;
    _exit(127);
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp != NULL; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* exec_search - execve argv[0], looked up in envp's PATH (not ours) when it
 * has no slash. Returns the errno to report: that of the first candidate
 * that exists but fails, EACCES when only unexecutable ones were found,
 * else ENOENT. Shell scripts without a #! line fail with ENOEXEC. */
static int exec_search(char *const *argv, char *const *envp)
{
    const char *file = argv[0];
    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        return errno;
    }
    const char *path = env_get(envp, "PATH");
    if (path == NULL)
        path = SK_INIT_DEFAULT_PATH;
    size_t flen = strlen(file);
    bool saw_eacces = false;
    char buf[PATH_MAX];
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        if (dlen == 0) {
            buf[0] = '.';
            dlen = 1;
        } else if (dlen < sizeof(buf)) {
            memcpy(buf, p, dlen);
        }
        if (dlen + 1 + flen < sizeof(buf)) {
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
            execve(buf, argv, envp);
            switch (errno) {
            case EACCES: saw_eacces = true; break;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
            case ENAMETOOLONG:
            case ELOOP: break;
            default: return errno;
            }
        }
        if (*end == '\0')
            break;
        p = end;
    }
    return saw_eacces ? EACCES : ENOENT;
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void close_from(int lowest)
{
    if (close_range((unsigned)lowest, ~0U, 0) == 0)
        return;
    struct rlimit rl;
    int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
    for (int fd = lowest; fd < max; fd++)
        close(fd);
}

/* child_exec - runs in the forked child; never returns. Only the child's own
 * state changes here, and every failure goes back through report_fd. */
static void __attribute__((noreturn)) child_exec(const struct child_plan *p)
{
    int report = p->report_fd;
    if (setsid() < 0)
        child_fail(report, STAGE_SETUP, errno);
    if (p->pty_slave >= 0 && ioctl(p->pty_slave, TIOCSCTTY, 0) < 0)
        child_fail(report, STAGE_SETUP, errno);
    if (dup2(p->in_fd, 0) < 0 || dup2(p->out_fd, 1) < 0 || dup2(p->err_fd, 2) < 0)
        child_fail(report, STAGE_SETUP, errno);
    reset_signals();
    /* skiff-init may be protected from the OOM killer; its children are not.
     * Raising the score is always allowed; failure only means no /proc. */
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom >= 0) {
        ssize_t w = write(oom, "0", 1);
        (void)w;
        close(oom);
    }
    umask(022);
    if (chdir(p->cwd) < 0)
        child_fail(report, STAGE_CHDIR, errno);
    /* Keep only 0-2 and the error pipe (as fd 3, close-on-exec). */
    if (report != 3) {
        if (dup3(report, 3, O_CLOEXEC) < 0)
            child_fail(report, STAGE_SETUP, errno);
        report = 3;
    }
    close_from(4);
    child_fail(report, STAGE_EXEC, exec_search(p->argv, p->envp));
}

/* strv_to_c - copy a vector into NUL-terminated strings in `mem` (advanced)
 * and a NULL-terminated pointer array `vec`. */
static void strv_to_c(const struct sk_proto_strv *v, char **vec, char **mem)
{
    uint32_t cur = 0, i = 0;
    struct sk_proto_str s;
    while (i < v->count && sk_proto_strv_next(v, &cur, &s)) {
        memcpy(*mem, s.ptr, s.len);
        (*mem)[s.len] = '\0';
        vec[i++] = *mem;
        *mem += s.len + 1;
    }
    vec[i] = NULL;
}

static struct sk_init_proc *find_proc(struct sk_init *init, uint32_t id)
{
    for (struct sk_init_proc *p = init->procs; p != NULL; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

/* find_running - a tracked process that has not been reaped: only then is
 * its pid still its own. */
static struct sk_init_proc *find_running(struct sk_init *init, uint32_t id, struct sk_error *err)
{
    struct sk_init_proc *p = find_proc(init, id);
    if (p == NULL) {
        sk_error_setv(err, ESRCH, "no process %u", id);
        return NULL;
    }
    if (p->exited) {
        sk_error_setv(err, ESRCH, "process %u has exited", id);
        return NULL;
    }
    return p;
}

/* The fds of one spawn, -1 where absent. host_* go to the host. */
struct spawn_fds {
    int child_in, child_out, child_err, slave;
    int host_in, host_out, host_err, master;
    int report[2];
};

static void spawn_fds_close(struct spawn_fds *f)
{
    sk_close(&f->child_in);
    sk_close(&f->child_out);
    sk_close(&f->child_err);
    sk_close(&f->slave);
    sk_close(&f->host_in);
    sk_close(&f->host_out);
    sk_close(&f->host_err);
    sk_close(&f->master);
    sk_close(&f->report[0]);
    sk_close(&f->report[1]);
}

static int open_pty(struct spawn_fds *f, uint16_t rows, uint16_t cols, struct sk_error *err)
{
    f->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (f->master < 0)
        return sk_error_set(err, errno, "open pty master");
    if (grantpt(f->master) < 0 || unlockpt(f->master) < 0)
        return sk_error_set(err, errno, "unlock pty");
    if (rows || cols) {
        struct winsize ws = {.ws_row = rows, .ws_col = cols};
        if (ioctl(f->master, TIOCSWINSZ, &ws) < 0)
            return sk_error_set(err, errno, "set pty size");
    }
    /* TIOCGPTPEER opens our own peer without a path lookup in /dev/pts. */
    f->slave = ioctl(f->master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (f->slave < 0) {
        char name[128];
        if (ptsname_r(f->master, name, sizeof(name)) != 0)
            return sk_error_set(err, errno, "ptsname");
        f->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (f->slave < 0)
            return sk_error_set(err, errno, "open '%s'", name);
    }
    f->child_in = f->child_out = f->child_err = -1;
    return 0;
}

/* open_pipes - stdin (a pipe or /dev/null) and, unless the host passed its
 * own, stdout and stderr pipes. */
static int open_pipes(struct spawn_fds *f, bool want_stdin, bool want_output, struct sk_error *err)
{
    int p[2];
    if (want_output) {
        if (pipe2(p, O_CLOEXEC) < 0)
            return sk_error_set(err, errno, "pipe");
        f->host_out = p[0];
        f->child_out = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
            return sk_error_set(err, errno, "pipe");
        f->host_err = p[0];
        f->child_err = p[1];
    }
    if (want_stdin) {
        if (pipe2(p, O_CLOEXEC) < 0)
            return sk_error_set(err, errno, "pipe");
        f->child_in = p[0];
        f->host_in = p[1];
        return 0;
    }
    f->child_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (f->child_in >= 0)
        return 0;
    /* No /dev/null in this root: a pipe whose writer is gone reads as EOF. */
    if (pipe2(p, O_CLOEXEC) < 0)
        return sk_error_set(err, errno, "pipe");
    close(p[1]);
    f->child_in = p[0];
    return 0;
}

/* wait_exec - read the child's error pipe: 0 after a successful exec (the
 * pipe closed), else the failure as an error. */
static int wait_exec(int fd, pid_t pid, const char *arg0, const char *cwd, struct sk_error *err)
{
    struct child_failure f;
    ssize_t n = sk_read_all(fd, &f, sizeof(f));
    if (n == 0)
        return 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(f))
        return sk_error_setv(err, EIO, "start '%s': child ended during setup", arg0);
    int code = f.code > 0 ? f.code : EIO;
    switch (f.stage) {
    case STAGE_EXEC: return sk_error_set(err, code, "exec '%s'", arg0);
    case STAGE_CHDIR: return sk_error_set(err, code, "chdir '%s'", cwd);
    default: return sk_error_set(err, code, "set up process '%s'", arg0);
    }
}

static int64_t deadline_after(int64_t timeout_ms)
{
    const int64_t max_ms = 100LL * 365 * 24 * 3600 * 1000; /* ~100 years */
    if (timeout_ms <= 0)
        return 0;
    if (timeout_ms > max_ms)
        timeout_ms = max_ms;
    return sk_now_ns() + timeout_ms * 1000000;
}

/* check_output_fd - an fd the host passed for the child's stdout or stderr
 * must be a writable regular file or pipe: never a directory, a device (a
 * host terminal would let the sandbox inject input) or a socket. */
static int check_output_fd(int fd, const char *what, struct sk_error *err)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) < 0)
        return sk_error_set(err, errno, "spawn: %s fd", what);
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
        return sk_error_setv(err, EINVAL, "spawn: %s fd is neither a regular file nor a pipe", what);
    if ((fl & O_ACCMODE) != O_WRONLY && (fl & O_ACCMODE) != O_RDWR)
        return sk_error_setv(err, EINVAL, "spawn: %s fd is not open for writing", what);
    return 0;
}

static size_t count_exited(const struct sk_init *init)
{
    size_t n = 0;
    for (const struct sk_init_proc *p = init->procs; p != NULL; p = p->next)
        n += p->exited;
    return n;
}

int sk_init_spawn(struct sk_init *init, const struct sk_proto_msg *m, int *fds, size_t nfds, struct sk_error *err)
{
    int r;
    bool host_output = m->u.spawn.flags & SK_PROTO_SPAWN_OUTPUT_FDS;
    if (host_output && nfds != 2)
        return sk_error_setv(err, EPROTO, "spawn: output fds expected 2 fds, got %zu", nfds);
    if (!host_output && nfds != 0)
        return sk_error_setv(err, EPROTO, "spawn: unexpected fds");
    if (host_output &&
        ((r = check_output_fd(fds[0], "stdout", err)) < 0 || (r = check_output_fd(fds[1], "stderr", err)) < 0))
        return r;
    if (init->n_procs >= SK_INIT_PROCS_MAX)
        return sk_error_setv(err, EAGAIN, "too many processes (%d, of which %zu have exited and await RELEASE)",
                             SK_INIT_PROCS_MAX, count_exited(init));

    /* C copies of argv, envp and cwd; bounded by the message size. */
    uint32_t argc = m->u.spawn.argv.count, envc = m->u.spawn.envp.count;
    size_t size = ((size_t)argc + 1 + envc + 1) * sizeof(char *) + m->u.spawn.argv.raw_len + m->u.spawn.envp.raw_len +
                  m->u.spawn.cwd.len + 2;
    _cleanup_free_ char *mem = xmalloc(size);
    char **argv = (char **)mem;
    char **envp = argv + argc + 1;
    char *strings = (char *)(envp + envc + 1);
    strv_to_c(&m->u.spawn.argv, argv, &strings);
    strv_to_c(&m->u.spawn.envp, envp, &strings);
    char *cwd = strings;
    if (m->u.spawn.cwd.len == 0)
        strcpy(cwd, "/");
    else
        sk_proto_str_copy(m->u.spawn.cwd, cwd, m->u.spawn.cwd.len + 1, NULL);

    bool pty = m->u.spawn.flags & SK_PROTO_SPAWN_PTY;
    struct spawn_fds f = {-1, -1, -1, -1, -1, -1, -1, -1, {-1, -1}};
    r = pty ? open_pty(&f, m->u.spawn.rows, m->u.spawn.cols, err)
            : open_pipes(&f, m->u.spawn.flags & SK_PROTO_SPAWN_STDIN, !host_output, err);
    if (r < 0)
        goto fail;
    if (pipe2(f.report, O_CLOEXEC) < 0) {
        r = sk_error_set(err, errno, "pipe");
        goto fail;
    }

    struct child_plan plan = {
        .argv = argv,
        .envp = envp,
        .cwd = cwd,
        .in_fd = pty ? f.slave : f.child_in,
        .out_fd = pty           ? f.slave
                  : host_output ? fds[0]
                                : f.child_out,
        .err_fd = pty           ? f.slave
                  : host_output ? fds[1]
                                : f.child_err,
        .pty_slave = pty ? f.slave : -1,
        .report_fd = f.report[1],
    };
    pid_t pid = fork();
    if (pid < 0) {
        r = sk_error_set(err, errno, "fork");
        goto fail;
    }
    if (pid == 0)
        child_exec(&plan);

    sk_close(&f.report[1]);
    sk_close(&f.child_in);
    sk_close(&f.child_out);
    sk_close(&f.child_err);
    sk_close(&f.slave);
    /* The host's output fds are the child's business now: keep none. */
    for (size_t i = 0; host_output && i < nfds; i++)
        sk_close(&fds[i]);
    r = wait_exec(f.report[0], pid, argv[0], cwd, err);
    if (r < 0)
        goto fail;

    struct sk_init_proc *p = xcalloc(1, sizeof(*p));
    p->id = init->next_proc_id++;
    if (init->next_proc_id == 0)
        init->next_proc_id = 1;
    p->pid = pid;
    p->flags = m->u.spawn.flags;
    p->pty_fd = steal_fd(&f.master); /* kept for RESIZE; the host gets its own copy */
    p->deadline_ns = deadline_after(m->u.spawn.timeout_ms);
    p->next = init->procs;
    init->procs = p;
    init->n_procs++;

    struct sk_proto_msg ok = {.type = SK_PROTO_SPAWN_OK, .id = m->id};
    ok.u.spawn_ok.proc_id = p->id;
    ok.u.spawn_ok.pid = (uint32_t)pid;
    int out[SK_PROTO_MAX_FDS];
    size_t nout = 0;
    if (pty) {
        ok.u.spawn_ok.fds = SK_PROTO_FD_PTY;
        out[nout++] = p->pty_fd;
    } else {
        if (f.host_in >= 0) {
            ok.u.spawn_ok.fds |= SK_PROTO_FD_STDIN;
            out[nout++] = f.host_in;
        }
        if (!host_output) {
            ok.u.spawn_ok.fds |= SK_PROTO_FD_STDOUT | SK_PROTO_FD_STDERR;
            out[nout++] = f.host_out;
            out[nout++] = f.host_err;
        }
    }
    sk_log_debug("spawned '%s' as %u (pid %d)", argv[0], p->id, (int)pid);
    if (sk_init_send(init, &ok, out, nout) < 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    spawn_fds_close(&f);
    return 0;

fail:
    spawn_fds_close(&f);
    return r;
}

int sk_init_signal(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    struct sk_init_proc *p = find_running(init, m->u.signal.proc_id, err);
    if (p == NULL)
        return -ESRCH;
    /* Not yet reaped, so the pid cannot have been reused. */
    if (kill(p->pid, (int)m->u.signal.signo) < 0)
        return sk_error_set(err, errno, "signal %u to process %u", m->u.signal.signo, p->id);
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}

int sk_init_resize(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    struct sk_init_proc *p = find_running(init, m->u.resize.proc_id, err);
    if (p == NULL)
        return -ESRCH;
    if (p->pty_fd < 0)
        return sk_error_setv(err, ENOTTY, "process %u has no pty", p->id);
    struct winsize ws = {.ws_row = m->u.resize.rows, .ws_col = m->u.resize.cols};
    if (ioctl(p->pty_fd, TIOCSWINSZ, &ws) < 0)
        return sk_error_set(err, errno, "resize pty of process %u", p->id);
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}

/* exit_fields - a wait status as EXIT (and PROCS) report it. */
static void exit_fields(int status, int32_t *code, uint32_t *signo, bool *core)
{
    *code = 0;
    *signo = 0;
    *core = false;
    if (WIFEXITED(status)) {
        *code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        *signo = (uint32_t)WTERMSIG(status);
        *code = 128 + WTERMSIG(status);
        *core = WCOREDUMP(status);
    }
}

static void report_exit(struct sk_init *init, const struct sk_init_proc *p)
{
    struct sk_proto_msg ev = {.type = SK_PROTO_EXIT, .id = 0};
    ev.u.exit.proc_id = p->id;
    ev.u.exit.timed_out = p->timed_out;
    exit_fields(p->status, &ev.u.exit.exit_code, &ev.u.exit.signo, &ev.u.exit.core_dumped);
    sk_init_send(init, &ev, NULL, 0);
}

void sk_init_reap(struct sk_init *init)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        /* Only running processes own their pid: an exited one kept for
         * RELEASE may share its old number with this new child. */
        struct sk_init_proc **pp = &init->procs;
        while (*pp != NULL && ((*pp)->exited || (*pp)->pid != pid))
            pp = &(*pp)->next;
        struct sk_init_proc *p = *pp;
        if (p == NULL)
            continue; /* an orphan we inherited */
        p->exited = true;
        p->status = status;
        p->exit_seq = init->next_exit_seq++;
        sk_close(&p->pty_fd);
        sk_log_debug("process %u (pid %d) ended with status 0x%x", p->id, (int)pid, (unsigned)status);
        report_exit(init, p);
        /* A persistent sandbox keeps the record until the host RELEASEs it,
         * so an owner that dies before it has stored the EXIT (or while
         * nobody is connected) loses nothing. */
        if (init->listen_fd >= 0)
            continue;
        *pp = p->next;
        init->n_procs--;
        free(p);
    }
}

static int by_exit_seq(const void *a, const void *b)
{
    const struct sk_init_proc *x = *(const struct sk_init_proc *const *)a;
    const struct sk_init_proc *y = *(const struct sk_init_proc *const *)b;
    return x->exit_seq < y->exit_seq ? -1 : x->exit_seq > y->exit_seq;
}

void sk_init_resend_exits(struct sk_init *init)
{
    size_t n = count_exited(init);
    if (n == 0)
        return;
    _cleanup_free_ struct sk_init_proc **v = xcalloc(n, sizeof(*v));
    size_t i = 0;
    for (struct sk_init_proc *p = init->procs; p != NULL && i < n; p = p->next)
        if (p->exited)
            v[i++] = p;
    qsort(v, i, sizeof(*v), by_exit_seq);
    for (size_t k = 0; k < i; k++)
        report_exit(init, v[k]);
}

int sk_init_list_procs(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    (void)err;
    /* n_procs <= SK_INIT_PROCS_MAX == SK_PROTO_PROCS_MAX: one reply holds all. */
    _cleanup_free_ struct sk_proto_proc *items = xcalloc(init->n_procs ? init->n_procs : 1, sizeof(*items));
    size_t n = 0;
    for (const struct sk_init_proc *p = init->procs; p != NULL && n < init->n_procs; p = p->next) {
        struct sk_proto_proc *it = &items[n++];
        it->proc_id = p->id;
        it->pid = (uint32_t)p->pid;
        it->flags = p->flags;
        it->exited = p->exited;
        it->timed_out = p->timed_out;
        if (p->exited)
            exit_fields(p->status, &it->exit_code, &it->signo, &it->core_dumped);
    }
    /* The list is newest first; report in the order they were started. */
    for (size_t a = 0, b = n ? n - 1 : 0; a < b; a++, b--) {
        struct sk_proto_proc t = items[a];
        items[a] = items[b];
        items[b] = t;
    }
    struct sk_proto_msg r = {.type = SK_PROTO_PROCS, .id = m->id};
    r.u.procs.count = (uint32_t)n;
    r.u.procs.items = items;
    sk_init_send(init, &r, NULL, 0);
    return 0;
}

int sk_init_release(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    uint32_t id = m->u.proc_ref.proc_id;
    struct sk_init_proc **pp = &init->procs;
    while (*pp != NULL && (*pp)->id != id)
        pp = &(*pp)->next;
    struct sk_init_proc *p = *pp;
    if (p == NULL)
        return sk_error_setv(err, ESRCH, "no process %u (already released?)", id);
    if (!p->exited)
        return sk_error_setv(err, EBUSY, "process %u is still running", id);
    *pp = p->next;
    init->n_procs--;
    free(p);
    sk_init_reply_ok(init, m->id, 0, -1);
    return 0;
}

int sk_init_open_pty(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    struct sk_init_proc *p = find_running(init, m->u.proc_ref.proc_id, err);
    if (p == NULL)
        return -ESRCH;
    if (p->pty_fd < 0)
        return sk_error_setv(err, ENOTTY, "process %u has no pty", p->id);
    sk_init_reply_ok(init, m->id, 0, p->pty_fd);
    return 0;
}

void sk_init_expire(struct sk_init *init)
{
    int64_t now = sk_now_ns();
    for (struct sk_init_proc *p = init->procs; p != NULL; p = p->next) {
        if (p->exited || p->deadline_ns == 0 || p->timed_out || now < p->deadline_ns)
            continue;
        sk_log_info("process %u (pid %d) timed out", p->id, (int)p->pid);
        /* The process group (it is a session leader) and, should it have
         * moved, the process itself. */
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
        p->timed_out = true;
    }
}

int sk_init_next_timeout_ms(const struct sk_init *init)
{
    int64_t now = sk_now_ns(), best = -1;
    for (const struct sk_init_proc *p = init->procs; p != NULL; p = p->next) {
        if (p->exited || p->deadline_ns == 0 || p->timed_out)
            continue;
        int64_t left = p->deadline_ns - now;
        if (left < 0)
            left = 0;
        if (best < 0 || left < best)
            best = left;
    }
    if (best < 0)
        return -1;
    int64_t ms = (best + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void sk_init_kill_all(struct sk_init *init)
{
    for (struct sk_init_proc *p = init->procs; p != NULL; p = p->next) {
        if (p->exited)
            continue;
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
    }
}
