/* skiffd.c - a private skiffd for a benchmark. */
#include "skiffd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "client.h"

const char *bench_skiffd_default(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len < 0)
        return NULL;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return NULL;
    *slash = '\0'; /* BUILD/bench */
    slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0'; /* BUILD */
    snprintf(buf, size, "%s/skiffd", exe);
    return buf;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static char *read_small(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (sk_read_file_at(AT_FDCWD, path, 1 << 20, &text, &len, NULL) < 0)
        return NULL;
    return text;
}

/* parse_cgroup - from the log line "cgroup driver 'v1' (... under
 * '/sys/fs/cgroup/<ctrl>/skiff-1a2b3c4d')" or "cgroup driver 'v2' (... at
 * '/sys/fs/cgroup/.../skiff-1a2b3c4d')". */
static void parse_cgroup(struct bench_skiffd *d, const char *log)
{
    const char *p = log ? strstr(log, "cgroup driver '") : NULL;
    if (p == NULL)
        return;
    p += strlen("cgroup driver '");
    snprintf(d->cgroup_driver, sizeof(d->cgroup_driver), "%.2s", p);
    const char *eol = strchr(p, '\n');
    const char *q = strstr(p, " under '");
    size_t skip = strlen(" under '");
    if (q == NULL || (eol != NULL && q > eol)) {
        q = strstr(p, " at '");
        skip = strlen(" at '");
    }
    if (q == NULL || (eol != NULL && q > eol))
        return;
    q += skip;
    size_t len = strcspn(q, "'\n");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%.*s", (int)len, q);
    const char *base = strrchr(path, '/');
    snprintf(d->cgroup_parent, sizeof(d->cgroup_parent), "%s", base ? base + 1 : path);
    char *ctrl = strstr(path, "/<ctrl>/");
    if (ctrl != NULL) /* v1: the memory controller's hierarchy */
        snprintf(d->cgroup_memory_dir, sizeof(d->cgroup_memory_dir), "%.*s/memory/%s", (int)(ctrl - path), path,
                 ctrl + strlen("/<ctrl>/"));
    else
        snprintf(d->cgroup_memory_dir, sizeof(d->cgroup_memory_dir), "%s", path);
}

int bench_skiffd_start(struct bench_skiffd *d, const char *skiffd, const char *tag, const char *const *extra)
{
    memset(d, 0, sizeof(*d));
    size_t n_extra = 0;
    while (extra != NULL && extra[n_extra] != NULL)
        n_extra++;
    if (n_extra > BENCH_SKIFFD_ARGS_MAX)
        return bench_fail("too many skiffd options (%zu)", n_extra);
    if (access(skiffd, X_OK) < 0)
        return bench_fail("%s: %s", skiffd, strerror(errno));
    snprintf(d->dir, sizeof(d->dir), "/var/tmp/skiff-bench-%s-XXXXXX", tag);
    if (mkdtemp(d->dir) == NULL) {
        int saved = errno;
        d->dir[0] = '\0';
        return bench_fail("mkdtemp '/var/tmp/skiff-bench-%s-XXXXXX': %s", tag, strerror(saved));
    }
    snprintf(d->data, sizeof(d->data), "%s/data", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/skiffd.log", d->dir);
    pid_t self = getpid();
    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = free_port();
        if (d->port < 0)
            return bench_fail("no free port: %s", strerror(errno));
        char listen[64];
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", d->port);
        const char *argv[8 + BENCH_SKIFFD_ARGS_MAX] = {skiffd,  "--listen",    listen, "--data-dir",
                                                       d->data, "--log-level", "info"};
        for (size_t i = 0; i < n_extra; i++)
            argv[7 + i] = extra[i];
        pid_t pid = fork();
        if (pid < 0)
            return bench_fail("fork: %s", strerror(errno));
        if (pid == 0) {
            /* skiffd must not outlive the bench, however the bench ends */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != self)
                _exit(1);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGPIPE, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            /* its own process group: a ^C at the terminal reaches the bench,
             * which then stops skiffd in order */
            setpgid(0, 0);
            int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(127);
            execv(skiffd, (char *const *)argv);
            _exit(127);
        }
        d->pid = pid;
        double deadline = bench_now_ms() + 15000;
        bool up = false;
        while (!bench_stopping() && bench_now_ms() < deadline) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                d->pid = 0;
                break;
            }
            if ((up = bench_healthy(d->port)))
                break;
            usleep(20000);
        }
        if (d->pid == 0) {
            _cleanup_free_ char *log = read_small(d->log);
            if (log != NULL && strstr(log, "in use") != NULL) {
                unlink(d->log);
                continue; /* the free port was taken meanwhile */
            }
            size_t len = log ? strlen(log) : 0;
            while (len > 0 && log[len - 1] == '\n')
                log[--len] = '\0';
            return bench_fail("skiffd exited at start-up: %s", log && log[0] ? log : "(no log)");
        }
        if (!up)
            return bench_fail("skiffd did not answer /healthz within 15 s");
        char path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/admin.token", d->data);
        _cleanup_free_ char *tok = read_small(path);
        if (tok == NULL)
            return bench_fail("no '%s'", path);
        tok[strcspn(tok, "\r\n")] = '\0';
        snprintf(d->token, sizeof(d->token), "%s", tok);
        _cleanup_free_ char *log = read_small(d->log);
        parse_cgroup(d, log);
        return 0;
    }
    return bench_fail("could not start skiffd on a free port");
}

bool bench_skiffd_running(struct bench_skiffd *d)
{
    if (d->pid <= 0)
        return false;
    int status;
    return waitpid(d->pid, &status, WNOHANG) == 0;
}

int bench_skiffd_stop(struct bench_skiffd *d)
{
    int rc = 0;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        double deadline = bench_now_ms() + 15000;
        int status = 0;
        pid_t w = 0;
        while ((w = waitpid(d->pid, &status, WNOHANG)) == 0 && bench_now_ms() < deadline)
            usleep(10000);
        if (w != d->pid) {
            fprintf(stderr, "bench: skiffd (pid %d) did not stop within 15 s of SIGTERM: killed\n", (int)d->pid);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            rc = -1;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench: skiffd stopped with status 0x%x\n", (unsigned)status);
            rc = -1;
        }
        d->pid = 0;
    }
    if (d->dir[0] == '\0')
        return rc;
    _cleanup_free_ char *log = read_small(d->log);
    if (d->cgroup_parent[0] == '\0')
        parse_cgroup(d, log);
    if (strncmp(d->cgroup_parent, "skiff-", 6) == 0) {
        /* the parent is empty once skiffd has ended its sandboxes; the
         * name is checked so that nothing but skiffd's own group goes */
        char pattern[PATH_MAX];
        const char *const where[] = {"/sys/fs/cgroup/*/%s", "/sys/fs/cgroup/%s"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(where); i++) {
            glob_t g;
            snprintf(pattern, sizeof(pattern), where[i], d->cgroup_parent);
            if (glob(pattern, GLOB_ONLYDIR, NULL, &g) != 0)
                continue;
            for (size_t k = 0; k < g.gl_pathc; k++)
                if (rmdir(g.gl_pathv[k]) < 0 && errno != ENOENT)
                    fprintf(stderr, "bench: cgroup '%s' left behind: %s\n", g.gl_pathv[k], strerror(errno));
            globfree(&g);
        }
    }
    if (rc != 0 && log != NULL)
        fprintf(stderr, "bench: skiffd log (%s):\n%s\n", d->log, log);
    struct sk_error err = {0};
    if (sk_remove_tree(d->dir, &err) < 0)
        fprintf(stderr, "bench: could not remove '%s': %s\n", d->dir, err.msg);
    d->dir[0] = '\0';
    return rc;
}
