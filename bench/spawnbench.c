/* spawnbench.c - interleaved start-up timer for sandbox runners.
 *
 * Times fork + exec + waitpid wall time (CLOCK_MONOTONIC) of a set of
 * commands ("runners") and prints one JSON document with the samples and
 * their statistics. Built for a noisy shared machine:
 *
 *   - every runner first runs once as a pre-flight check (exit 0, and the
 *     expected stdout when one is given); a runner that fails it is reported
 *     as unavailable with the reason and never timed, the bench goes on;
 *   - then W warm-up runs per runner, then R rounds; each round runs every
 *     runner once in a freshly shuffled order, so drift in the machine's load
 *     hits all runners alike instead of whichever ran during a busy phase;
 *   - a runner with fewer iterations than R (a slow peer) takes part in
 *     rounds spread evenly over the whole run, still interleaved.
 *
 * All runners are timed by this one process. A runner marked "covered" runs
 * in a private mount namespace, prepared once at start, in which each -c
 * PATH is hidden under an empty tmpfs (crun refuses hybrid cgroup hosts
 * while cgroup2 is visible at /sys/fs/cgroup/unified); the child joins it
 * with setns() between fork and exec. The host's mounts are never changed:
 * the namespace is made MS_PRIVATE|MS_REC before anything is mounted.
 *
 * Usage: spawnbench [OPTIONS] RUNNER...
 *   -n N      timed runs per runner unless the runner says otherwise (500)
 *   -w N      warm-up runs per runner (10)
 *   -s SEED   shuffle seed (default: from the clock; printed in the JSON)
 *   -t SEC    per-run timeout in seconds; the run is killed and counted as a
 *             failure (30)
 *   -c PATH   cover PATH with an empty tmpfs in the "covered" namespace
 *             (repeatable)
 *   -o FILE   write the JSON to FILE instead of stdout
 *   -q        no progress lines on stderr
 *
 * RUNNER:  -r NAME [iters=N] [expect=TEXT] [covered] [first-byte] -- ARGV... [;]
 *   The argv runs as is (execvp). Every "{id}" inside an argument is replaced
 *   by an id unique to that run (for container names). ARGV[0] "@floor" is
 *   built in: clone() with CLONE_NEWUSER|NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET,
 *   then exec ARGV[1..] - the kernel's floor for a namespaced start.
 *   expect=TEXT: the pre-flight's stdout, less trailing newlines, must equal
 *   TEXT. A lone ";" ends the runner's argv (the last runner needs none).
 *   first-byte: stdout is a pipe, and the time from before fork() to the
 *   moment the first byte of output is read is recorded as well (as
 *   "first_byte"), next to the time to exit; every timed run's output must
 *   then also equal TEXT (when expect= is given). The wait for the first
 *   byte polls the pipe and a pidfd of the child, so a runner that exits
 *   without output, or leaves a process holding the pipe, cannot hang it.
 *
 * The child gets stdin and stdout on /dev/null (stdout is captured only in
 * the pre-flight, and in a pipe for first-byte runners) and stderr in a
 * memfd, read only after a failed run to give the reason. Exit status: 0 when the JSON was written (even if every
 * runner was unavailable), 2 on usage errors, 1 on other errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNNERS 64
#define MAX_COVERS 8
#define ID_MAX 64
#define REASON_MAX 256

#define FLOOR_ARG0 "@floor"
#define FLOOR_FLAGS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)

struct runner {
    const char *name;
    long iters;         /* timed runs wanted */
    const char *expect; /* pre-flight stdout, NULL = any */
    bool covered;       /* join the covered mount namespace */
    bool first_byte;    /* time the first byte of stdout too (a pipe) */
    bool floor;         /* built-in clone(FLOOR_FLAGS) */
    char **argv;        /* borrowed from main's argv, NULL-terminated copy */
    size_t argc;
    char **run_argv;      /* argv with {id} expanded for the next run */
    char (*id_args)[256]; /* storage for expanded arguments */
    bool *has_id;         /* argv[i] contains {id} */

    bool available;
    char reason[REASON_MAX];
    double *samples;  /* ms, in run order */
    double *first_ms; /* first_byte runners: ms to the first byte, same order */
    long n;
    long failures;
    long timeouts;
    bool dropped; /* broken mid-run: no more runs (see record_failure) */
    char first_failure[REASON_MAX];
    long seq;
    int err_fd; /* memfd for the child's stderr */
};

struct bench {
    struct runner runners[MAX_RUNNERS];
    size_t nrunners;
    long default_iters;
    long warmups;
    uint64_t seed;
    uint64_t rng;
    double timeout_s;
    const char *covers[MAX_COVERS];
    size_t ncovers;
    int covered_ns; /* fd of the covered mount namespace, -1 = none */
    char cover_error[REASON_MAX];
    int null_fd;
    bool quiet;
    sigset_t child_mask; /* the mask the children get back before exec */
    long rounds;
};

static void die(const char *msg)
{
    fprintf(stderr, "spawnbench: %s: %s\n", msg, strerror(errno));
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("spawnbench: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "spawnbench: %s%s%s%s\n", msg, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    fputs("usage: spawnbench [-n N] [-w N] [-s SEED] [-t SEC] [-c PATH] [-o FILE] [-q]\n"
          "                  -r NAME [iters=N] [expect=TEXT] [covered] [first-byte] -- ARGV... [;] ...\n",
          stderr);
    exit(2);
}

static long parse_long(const char *s, long min, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min)
        usage_error(what, s);
    return v;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* xorshift64*: a seeded, reproducible shuffle; quality needs are modest. */
static uint64_t rng_next(struct bench *b)
{
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 2685821657736338717ULL;
}

static void shuffle(struct bench *b, size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(b) % i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Bounded copy that always terminates; truncation is fine for reasons. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void set_reason(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, REASON_MAX, fmt, ap);
    va_end(ap);
}

/* ---- argument parsing ---------------------------------------------------- */

static int parse_runner(struct bench *b, int argc, char **argv, int i)
{
    if (b->nrunners == MAX_RUNNERS)
        usage_error("too many runners", NULL);
    if (i >= argc)
        usage_error("-r needs a name", NULL);
    struct runner *r = &b->runners[b->nrunners++];
    r->name = argv[i++];
    r->iters = -1;
    r->err_fd = -1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strncmp(argv[i], "iters=", 6) == 0)
            r->iters = parse_long(argv[i] + 6, 1, "bad iters");
        else if (strncmp(argv[i], "expect=", 7) == 0)
            r->expect = argv[i] + 7;
        else if (strcmp(argv[i], "covered") == 0)
            r->covered = true;
        else if (strcmp(argv[i], "first-byte") == 0)
            r->first_byte = true;
        else
            usage_error("unknown runner option", argv[i]);
    }
    if (i >= argc)
        usage_error("runner needs '-- ARGV'", r->name);
    i++; /* "--" */
    int start = i;
    while (i < argc && strcmp(argv[i], ";") != 0)
        i++;
    if (i == start)
        usage_error("runner has an empty argv", r->name);
    r->argc = (size_t)(i - start);
    r->argv = xcalloc(r->argc + 1, sizeof(char *));
    for (size_t k = 0; k < r->argc; k++)
        r->argv[k] = argv[start + (int)k];
    if (strcmp(r->argv[0], FLOOR_ARG0) == 0) {
        if (r->argc < 2)
            usage_error("@floor needs a command", r->name);
        if (r->covered)
            usage_error("@floor cannot be covered", r->name);
        if (r->first_byte)
            usage_error("@floor has no first byte", r->name);
        r->floor = true;
    }
    r->run_argv = xcalloc(r->argc + 1, sizeof(char *));
    r->id_args = xcalloc(r->argc, sizeof(*r->id_args));
    r->has_id = xcalloc(r->argc, sizeof(bool));
    for (size_t k = 0; k < r->argc; k++) {
        r->has_id[k] = strstr(r->argv[k], "{id}") != NULL;
        if (r->has_id[k] && strlen(r->argv[k]) + ID_MAX >= sizeof(r->id_args[k]))
            usage_error("argument with {id} too long", r->argv[k]);
    }
    return i < argc ? i + 1 : i; /* skip ";" */
}

static void parse_args(struct bench *b, int argc, char **argv, const char **out_path)
{
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        if (strcmp(a, "-r") == 0) {
            i = parse_runner(b, argc, argv, i + 1);
            continue;
        }
        if (strcmp(a, "-q") == 0) {
            b->quiet = true;
            i++;
            continue;
        }
        if (a[0] != '-' || strlen(a) != 2 || i + 1 >= argc)
            usage_error("bad argument", a);
        const char *v = argv[i + 1];
        switch (a[1]) {
        case 'n': b->default_iters = parse_long(v, 1, "bad -n"); break;
        case 'w': b->warmups = parse_long(v, 0, "bad -w"); break;
        case 's': b->seed = (uint64_t)parse_long(v, 0, "bad -s"); break;
        case 't': b->timeout_s = (double)parse_long(v, 1, "bad -t"); break;
        case 'o': *out_path = v; break;
        case 'c':
            if (b->ncovers == MAX_COVERS)
                usage_error("too many -c", v);
            b->covers[b->ncovers++] = v;
            break;
        default: usage_error("unknown option", a);
        }
        i += 2;
    }
    if (b->nrunners == 0)
        usage_error("no runners given", NULL);
}

/* ---- the covered mount namespace ------------------------------------------ */

/* Build the namespace in this process, keep an fd to it, and return to the
 * host namespace, so that only the children of covered runners are in it. */
static void prepare_covered_ns(struct bench *b)
{
    int host = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (host < 0)
        die("open '/proc/self/ns/mnt'");
    if (unshare(CLONE_NEWNS) < 0) {
        set_reason(b->cover_error, "unshare(CLONE_NEWNS): %s", strerror(errno));
        close(host);
        return;
    }
    /* private first: without it the tmpfs would propagate to the host */
    if (mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) < 0) {
        set_reason(b->cover_error, "make '/' private: %s", strerror(errno));
        goto back;
    }
    /* Writable and roomy: crun still mkdirs <id>/ and writes cgroup.procs in
     * the covered cgroup2 path and cannot rmdir them afterwards (a page per
     * run). They vanish with the namespace when this process exits. */
    for (size_t i = 0; i < b->ncovers; i++) {
        if (mount("none", b->covers[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=256m") < 0) {
            set_reason(b->cover_error, "cover '%s': %s", b->covers[i], strerror(errno));
            goto back;
        }
    }
    b->covered_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (b->covered_ns < 0)
        set_reason(b->cover_error, "open covered namespace: %s", strerror(errno));
back:
    if (setns(host, CLONE_NEWNS) < 0)
        die("return to the host mount namespace");
    close(host);
}

/* ---- one run ---------------------------------------------------------------- */

static void expand_ids(struct runner *r, size_t index)
{
    char id[ID_MAX];
    snprintf(id, sizeof(id), "skb%ld-%zu-%ld", (long)getpid(), index, r->seq++);
    for (size_t k = 0; k < r->argc; k++) {
        if (!r->has_id[k]) {
            r->run_argv[k] = r->argv[k];
            continue;
        }
        char *dst = r->id_args[k];
        size_t cap = sizeof(r->id_args[k]), len = 0;
        for (const char *s = r->argv[k]; *s && len + 1 < cap;) {
            if (strncmp(s, "{id}", 4) == 0) {
                len += (size_t)snprintf(dst + len, cap - len, "%s", id);
                s += 4;
            } else {
                dst[len++] = *s++;
            }
        }
        dst[len < cap ? len : cap - 1] = '\0';
        r->run_argv[k] = dst;
    }
    r->run_argv[r->argc] = NULL;
}

/* In the child: only async-signal-safe-ish calls, the parent is single-threaded. */
static void __attribute__((noreturn)) child_exec(const struct bench *b, const struct runner *r, int out_fd)
{
    sigprocmask(SIG_SETMASK, &b->child_mask, NULL);
    /* if the timer dies, its children do not linger */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(b->null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(r->err_fd, 2) < 0)
        _exit(126);
    if (r->covered && setns(b->covered_ns, CLONE_NEWNS) < 0) {
        dprintf(2, "spawnbench: setns covered namespace: %s\n", strerror(errno));
        _exit(126);
    }
    char *const *argv = r->floor ? r->run_argv + 1 : r->run_argv;
    execvp(argv[0], argv);
    dprintf(2, "spawnbench: exec '%s': %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Last non-empty line of the child's stderr (the memfd), for reasons. */
static void read_stderr_tail(int fd, char *dst, size_t cap)
{
    char buf[4096];
    dst[0] = '\0';
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0)
        return;
    off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    copy_str(dst, cap, line);
}

/* has_exited - has child `pid` ended? (not reaped: the exit wait does that) */
static bool has_exited(pid_t pid)
{
    siginfo_t si = {0};
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* wait_first_byte - read the pipe `rfd` until its first bytes arrive (into
 * out, *len), EOF, the child's exit or the deadline; returns the time of
 * the first byte, 0 when none came. A pidfd wakes the poll when the child
 * exits, even if some process it left keeps the pipe open. */
static double wait_first_byte(pid_t pid, int rfd, double deadline, char *out, size_t cap, size_t *len)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    double first = 0;
    for (;;) {
        double rem = deadline - now_ms();
        if (rem <= 0)
            break; /* the exit wait kills it */
        struct pollfd pf[2] = {{.fd = rfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        /* without a pidfd (Linux < 5.3), look at the child every 10 ms */
        int r = poll(pf, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? (int)rem + 1 : (rem < 10 ? (int)rem + 1 : 10));
        if (r < 0 && errno != EINTR)
            die("poll");
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(rfd, out + *len, cap - *len);
            if (n > 0) {
                first = now_ms();
                *len += (size_t)n;
                break;
            }
            if (n == 0)
                break; /* EOF without output */
        }
        if (pidfd >= 0 ? (pf[1].revents & POLLIN) != 0 : has_exited(pid))
            break;
    }
    if (pidfd >= 0)
        close(pidfd);
    return first;
}

/* drain - what is left in the non-blocking pipe, up to cap. */
static void drain(int rfd, char *out, size_t cap, size_t *len)
{
    int fl = fcntl(rfd, F_GETFL);
    if (fl >= 0)
        fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
    while (*len < cap) {
        ssize_t n = read(rfd, out + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
}

/* Run once. Returns 0 and the wall time in *ms on exit status 0; otherwise
 * -1 with a reason. `out_fd` receives the child's stdout; for a first-byte
 * runner stdout is a pipe read here (its bytes are copied to out_fd when
 * that is not /dev/null) and *first_ms is the time to its first byte. */
static int run_once(struct bench *b, struct runner *r, size_t index, int out_fd, double *ms, double *first_ms,
                    char *reason, bool *timed_out_out)
{
    *timed_out_out = false;
    expand_ids(r, index);
    if (ftruncate(r->err_fd, 0) < 0 || lseek(r->err_fd, 0, SEEK_SET) < 0)
        die("reset stderr memfd");
    int pipefd[2] = {-1, -1};
    if (r->first_byte && pipe2(pipefd, O_CLOEXEC) < 0)
        die("pipe2");
    char out[REASON_MAX];
    size_t out_len = 0;
    double t_first = 0;

    double t0 = now_ms();
    pid_t pid;
    if (r->floor)
        pid = (pid_t)syscall(SYS_clone, (unsigned long)(FLOOR_FLAGS | SIGCHLD), NULL, NULL, NULL, 0UL);
    else
        pid = fork();
    if (pid == 0)
        child_exec(b, r, r->first_byte ? pipefd[1] : out_fd);
    if (pid < 0) {
        set_reason(reason, "%s: %s", r->floor ? "clone" : "fork", strerror(errno));
        if (r->first_byte) {
            close(pipefd[0]);
            close(pipefd[1]);
        }
        return -1;
    }
    if (r->first_byte) {
        close(pipefd[1]);
        t_first = wait_first_byte(pid, pipefd[0], t0 + b->timeout_s * 1e3, out, sizeof(out) - 1, &out_len);
    }

    /* SIGCHLD is blocked in this process: wait for it with a deadline */
    int status = 0;
    bool timed_out = false;
    struct timespec left = {(time_t)b->timeout_s, 0};
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            die("waitpid");
        if (timed_out) {
            if (waitpid(pid, &status, 0) == pid)
                break;
            continue;
        }
        double waited = now_ms() - t0;
        double rem = b->timeout_s * 1e3 - waited;
        if (rem <= 0) {
            kill(pid, SIGKILL);
            timed_out = true;
            continue;
        }
        left.tv_sec = (time_t)(rem / 1e3);
        left.tv_nsec = (long)(fmod(rem, 1e3) * 1e6);
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigtimedwait(&chld, NULL, &left); /* EAGAIN on timeout: loop checks */
    }
    double t1 = now_ms();
    if (r->first_byte) {
        drain(pipefd[0], out, sizeof(out) - 1, &out_len);
        close(pipefd[0]);
        out[out_len] = '\0';
        if (out_fd != b->null_fd && out_len > 0 && write(out_fd, out, out_len) != (ssize_t)out_len)
            die("copy the output");
    }

    *timed_out_out = timed_out;
    if (timed_out) {
        set_reason(reason, "timed out after %.0f s", b->timeout_s);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (r->first_byte) {
            while (out_len > 0 && out[out_len - 1] == '\n')
                out[--out_len] = '\0';
            if (t_first == 0) {
                set_reason(reason, "exited 0 without output");
                return -1;
            }
            if (r->expect && strcmp(out, r->expect) != 0) {
                set_reason(reason, "stdout was '%.100s', expected '%.100s'", out, r->expect);
                return -1;
            }
            *first_ms = t_first - t0;
        }
        *ms = t1 - t0;
        return 0;
    }
    char tail[REASON_MAX];
    read_stderr_tail(r->err_fd, tail, sizeof(tail));
    if (WIFEXITED(status))
        set_reason(reason, "exit status %d%s%s", WEXITSTATUS(status), tail[0] ? ": " : "", tail);
    else
        set_reason(reason, "killed by signal %d%s%s", WTERMSIG(status), tail[0] ? ": " : "", tail);
    return -1;
}

/* A runner that keeps failing (or hangs) is dropped so that a broken build
 * cannot stretch the bench to rounds x timeout. */
static void record_failure(struct runner *r, const char *reason, bool timed_out)
{
    if (r->failures++ == 0)
        copy_str(r->first_failure, sizeof(r->first_failure), reason);
    r->timeouts += timed_out;
    if (r->timeouts >= 2 || (r->failures >= 5 && r->failures > r->n))
        r->dropped = true;
}

static void preflight(struct bench *b, struct runner *r, size_t index)
{
    char reason[REASON_MAX];
    double ms;
    bool timed_out;
    if (r->covered && b->covered_ns < 0) {
        set_reason(r->reason, "covered namespace: %s", b->cover_error[0] ? b->cover_error : "no -c given");
        return;
    }
    int out = memfd_create("spawnbench-stdout", MFD_CLOEXEC);
    if (out < 0)
        die("memfd_create");
    double first;
    if (run_once(b, r, index, out, &ms, &first, reason, &timed_out) < 0) {
        copy_str(r->reason, sizeof(r->reason), reason);
        close(out);
        return;
    }
    if (r->expect) {
        char buf[REASON_MAX];
        ssize_t n = pread(out, buf, sizeof(buf) - 1, 0);
        n = n < 0 ? 0 : n;
        buf[n] = '\0';
        while (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (strcmp(buf, r->expect) != 0) {
            set_reason(r->reason, "stdout was '%.100s', expected '%.100s'", buf, r->expect);
            close(out);
            return;
        }
    }
    close(out);
    r->available = true;
}

/* ---- statistics and output -------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between closest ranks (numpy's default). */
static double percentile(const double *sorted, long n, double p)
{
    if (n == 1)
        return sorted[0];
    double pos = p * (double)(n - 1);
    long lo = (long)floor(pos);
    long hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - (double)lo);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* write_stats - "p50": ..., "max": ... of samples[0..n), n > 0. */
static void write_stats(FILE *f, const double *samples, long n)
{
    double *sorted = xcalloc((size_t)n, sizeof(double));
    memcpy(sorted, samples, (size_t)n * sizeof(double));
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    double sum = 0, sq = 0;
    for (long i = 0; i < n; i++)
        sum += sorted[i];
    double mean = sum / (double)n;
    for (long i = 0; i < n; i++)
        sq += (sorted[i] - mean) * (sorted[i] - mean);
    double sd = n > 1 ? sqrt(sq / (double)(n - 1)) : 0.0;
    fprintf(f,
            "\"p50\": %.4f, \"p95\": %.4f, \"p99\": %.4f, \"mean\": %.4f, \"stddev\": %.4f, \"min\": %.4f, "
            "\"max\": %.4f",
            percentile(sorted, n, 0.50), percentile(sorted, n, 0.95), percentile(sorted, n, 0.99), mean, sd, sorted[0],
            sorted[n - 1]);
    free(sorted);
}

static void write_runner_json(FILE *f, const struct runner *r)
{
    fputs("    {\"name\": ", f);
    json_string(f, r->name);
    fputs(", \"argv\": [", f);
    for (size_t k = 0; k < r->argc; k++) {
        fputs(k ? ", " : "", f);
        json_string(f, r->argv[k]);
    }
    fputs("]", f);
    if (!r->available) {
        fputs(", \"status\": \"unavailable\", \"reason\": ", f);
        json_string(f, r->reason);
        fputs("}", f);
        return;
    }
    fprintf(f, ", \"status\": \"%s\", \"iters\": %ld, \"n\": %ld, \"failures\": %ld, \"dropped\": %s",
            r->n && !r->dropped ? "ok" : "failed", r->iters, r->n, r->failures, r->dropped ? "true" : "false");
    if (r->failures) {
        fputs(", \"first_failure\": ", f);
        json_string(f, r->first_failure);
    }
    if (r->n) {
        fputs(", ", f);
        write_stats(f, r->samples, r->n);
        fputs(", \"samples_ms\": [", f);
        for (long i = 0; i < r->n; i++)
            fprintf(f, "%s%.4f", i ? ", " : "", r->samples[i]);
        fputs("]", f);
    }
    if (r->n && r->first_byte) {
        fputs(", \"first_byte\": {", f);
        write_stats(f, r->first_ms, r->n);
        fputs("}, \"first_byte_samples_ms\": [", f);
        for (long i = 0; i < r->n; i++)
            fprintf(f, "%s%.4f", i ? ", " : "", r->first_ms[i]);
        fputs("]", f);
    }
    fputs("}", f);
}

static void write_json(const struct bench *b, FILE *f, double elapsed_s)
{
    fprintf(f,
            "{\n  \"tool\": \"spawnbench\", \"unit\": \"ms\", \"clock\": \"CLOCK_MONOTONIC\", \"seed\": %llu, "
            "\"warmups\": %ld, \"rounds\": %ld, \"timeout_s\": %.0f, \"elapsed_s\": %.2f,\n  \"runners\": [\n",
            (unsigned long long)b->seed, b->warmups, b->rounds, b->timeout_s, elapsed_s);
    for (size_t i = 0; i < b->nrunners; i++) {
        write_runner_json(f, &b->runners[i]);
        fputs(i + 1 < b->nrunners ? ",\n" : "\n", f);
    }
    fputs("  ]\n}\n", f);
}

/* ---- main ------------------------------------------------------------------- */

/* Does runner r take part in round k of R? Spreads r->iters runs evenly. */
static bool in_round(const struct runner *r, long k, long rounds)
{
    return ((k + 1) * r->iters) / rounds > (k * r->iters) / rounds;
}

static void run_rounds(struct bench *b)
{
    size_t order[MAX_RUNNERS];
    char reason[REASON_MAX];
    double ms, first;
    bool timed_out;

    /* warm-ups: interleaved too, and not recorded except as failures */
    for (long w = 0; w < b->warmups; w++) {
        for (size_t i = 0; i < b->nrunners; i++)
            order[i] = i;
        shuffle(b, order, b->nrunners);
        for (size_t i = 0; i < b->nrunners; i++) {
            struct runner *r = &b->runners[order[i]];
            if (r->available && !r->dropped &&
                run_once(b, r, order[i], b->null_fd, &ms, &first, reason, &timed_out) < 0)
                record_failure(r, reason, timed_out);
        }
    }

    double start = now_ms();
    long next_report = 1;
    for (long k = 0; k < b->rounds; k++) {
        size_t n = 0;
        for (size_t i = 0; i < b->nrunners; i++)
            if (b->runners[i].available && !b->runners[i].dropped && in_round(&b->runners[i], k, b->rounds))
                order[n++] = i;
        shuffle(b, order, n);
        for (size_t i = 0; i < n; i++) {
            struct runner *r = &b->runners[order[i]];
            if (run_once(b, r, order[i], b->null_fd, &ms, &first, reason, &timed_out) < 0) {
                record_failure(r, reason, timed_out);
            } else {
                if (r->first_byte)
                    r->first_ms[r->n] = first;
                r->samples[r->n++] = ms;
            }
        }
        if (!b->quiet && (k + 1) * 10 >= next_report * b->rounds) {
            fprintf(stderr, "spawnbench: round %ld/%ld (%.1f s)\n", k + 1, b->rounds, (now_ms() - start) / 1e3);
            next_report = ((k + 1) * 10) / b->rounds + 1;
        }
    }
}

int main(int argc, char **argv)
{
    static struct bench b;
    const char *out_path = NULL;
    b.default_iters = 500;
    b.warmups = 10;
    b.timeout_s = 30;
    b.covered_ns = -1;
    b.seed = 0;
    parse_args(&b, argc, argv, &out_path);
    if (b.seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        b.seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
    }
    b.rng = b.seed ? b.seed : 88172645463325252ULL;

    b.null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (b.null_fd < 0)
        die("open '/dev/null'");

    /* SIGCHLD stays blocked here so run_once can wait for it with a deadline */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, &b.child_mask) < 0)
        die("sigprocmask");

    bool need_cover = false;
    for (size_t i = 0; i < b.nrunners; i++)
        need_cover |= b.runners[i].covered;
    if (need_cover && b.ncovers)
        prepare_covered_ns(&b);

    double t_start = now_ms();
    for (size_t i = 0; i < b.nrunners; i++) {
        struct runner *r = &b.runners[i];
        if (r->iters < 0)
            r->iters = b.default_iters;
        if (r->iters > b.rounds)
            b.rounds = r->iters;
        r->err_fd = memfd_create("spawnbench-stderr", MFD_CLOEXEC);
        if (r->err_fd < 0)
            die("memfd_create");
        preflight(&b, r, i);
        if (!b.quiet)
            fprintf(stderr, "spawnbench: %-14s %s%s\n", r->name,
                    r->available ? "ok" : "unavailable: ", r->available ? "" : r->reason);
        r->samples = xcalloc((size_t)r->iters, sizeof(double));
        if (r->first_byte)
            r->first_ms = xcalloc((size_t)r->iters, sizeof(double));
    }

    run_rounds(&b);

    FILE *f = stdout;
    if (out_path) {
        f = fopen(out_path, "we");
        if (!f)
            die("open output");
    }
    write_json(&b, f, (now_ms() - t_start) / 1e3);
    if (fflush(f) != 0 || (f != stdout && fclose(f) != 0))
        die("write output");
    return 0;
}
