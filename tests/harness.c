#include "harness.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SK_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SK_TEST_LSAN 1
#endif
#endif

#ifdef SK_TEST_LSAN
/* LeakSanitizer's check; a test child leaves with _exit, which skips the
 * automatic one, so the harness runs it after each test. */
int __lsan_do_recoverable_leak_check(void);
#endif

struct test {
    const char *name;
    sk_test_fn fn;
    int timeout_s;
};

/* Registration runs from constructors before main; the table is the test
 * program's own state, not the library's. */
static struct test tests[512];
static size_t n_tests;

void sk_test_register(const char *name, sk_test_fn fn, int timeout_s)
{
    if (n_tests == sizeof(tests) / sizeof(tests[0])) {
        fprintf(stderr, "harness: too many tests\n");
        abort();
    }
    tests[n_tests++] = (struct test){name, fn, timeout_s};
}

/* The running test's failure hook (the child's own state). */
static void (*fail_hook)(void *arg);
static void *fail_hook_arg;

void sk_test_on_fail(void (*fn)(void *arg), void *arg)
{
    fail_hook = fn;
    fail_hook_arg = arg;
}

static void run_fail_hook(void)
{
    void (*fn)(void *) = fail_hook;
    fail_hook = NULL;
    if (fn != NULL)
        fn(fail_hook_arg);
}

/* A timed-out test gets the same clean-up as a failed one, then ends with
 * TIMEOUT_STATUS so the parent still reports the timeout. */
#define TIMEOUT_STATUS 124
static void on_alarm(int signo)
{
    (void)signo;
    run_fail_hook();
    _exit(TIMEOUT_STATUS);
}

void sk_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    run_fail_hook();
    _exit(1);
}

void sk_test_skip(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    skip: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    _exit(77);
}

static char bin_dir[PATH_MAX];

const char *sk_test_bin_dir(void)
{
    return bin_dir;
}

static void init_bin_dir(const char *argv0)
{
    const char *env = getenv("SKIFF_BUILD_DIR");
    if (env != NULL) {
        snprintf(bin_dir, sizeof(bin_dir), "%s", env);
        return;
    }
    /* Test binaries live in build/tests/<suite>/; the tools in build/. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(bin_dir, sizeof(bin_dir), "%s", argv0);
        return;
    }
    self[n] = '\0';
    char *d = dirname(self);
    char rel[PATH_MAX + 8];
    snprintf(rel, sizeof(rel), "%s/../..", d);
    if (realpath(rel, bin_dir) == NULL)
        snprintf(bin_dir, sizeof(bin_dir), "%s", rel);
}

static double elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        if (*buf == NULL)
            abort();
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

int sk_test_run(const char *const argv[], const char *input, const char *const env[], int timeout_s,
                struct sk_test_output *o)
{
    memset(o, 0, sizeof(*o));
    int outp[2], errp[2], inp[2];
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(inp, O_CLOEXEC) < 0)
        return -1;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(inp[0], 0);
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(outp[1]);
    close(errp[1]);
    close(inp[0]);
    if (input != NULL) {
        signal(SIGPIPE, SIG_IGN);
        size_t n = strlen(input), off = 0;
        while (off < n) {
            ssize_t w = write(inp[1], input + off, n - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    close(inp[1]);
    size_t ocap = 0, ecap = 0;
    append(&o->out, &o->out_len, &ocap, "", 0);
    append(&o->err, &o->err_len, &ecap, "", 0);
    struct pollfd p[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        int left = timeout_s * 1000 - (int)elapsed_ms(&start);
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(p, 2, left);
        if (n < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[65536];
            ssize_t r = read(p[i].fd, buf, sizeof(buf));
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                append(&o->out, &o->out_len, &ocap, buf, (size_t)r);
            } else {
                append(&o->err, &o->err_len, &ecap, buf, (size_t)r);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    while (waitpid(pid, &o->status, 0) < 0 && errno == EINTR)
        ;
    o->wall_ms = elapsed_ms(&start);
    o->exit_code = WIFEXITED(o->status) ? WEXITSTATUS(o->status) : 128 + WTERMSIG(o->status);
    return 0;
}

void sk_test_output_free(struct sk_test_output *o)
{
    free(o->out);
    free(o->err);
    memset(o, 0, sizeof(*o));
}

static bool selected(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return true;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]) != NULL)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    init_bin_dir(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n_tests; i++) {
        struct test *t = &tests[i];
        if (!selected(t->name, argc, argv))
            continue;
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("harness: fork");
            return 2;
        }
        if (pid == 0) {
            /* Own process group so a timeout kills everything the test started. */
            setpgid(0, 0);
            signal(SIGALRM, on_alarm);
            alarm((unsigned)t->timeout_s);
            t->fn();
            fflush(NULL);
#ifdef SK_TEST_LSAN
            if (__lsan_do_recoverable_leak_check() != 0) {
                fprintf(stderr, "    LeakSanitizer found leaks\n");
                _exit(1);
            }
#endif
            _exit(0);
        }
        setpgid(pid, pid);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        kill(-pid, SIGKILL);
        double ms = elapsed_ms(&start);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("PASS %s (%.0f ms)\n", t->name, ms);
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            printf("SKIP %s\n", t->name);
            skipped++;
        } else if ((WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) ||
                   (WIFEXITED(status) && WEXITSTATUS(status) == TIMEOUT_STATUS)) {
            printf("FAIL %s: timed out after %d s\n", t->name, t->timeout_s);
            failed++;
        } else if (WIFSIGNALED(status)) {
            printf("FAIL %s: killed by signal %d (%s)\n", t->name, WTERMSIG(status), strsignal(WTERMSIG(status)));
            failed++;
        } else {
            printf("FAIL %s (%.0f ms)\n", t->name, ms);
            failed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
