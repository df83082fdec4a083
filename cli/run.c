/* skiff run - run one command in a fresh sandbox without a daemon. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "cli.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"

#define MAX_ENV 256
#define MAX_MOUNTS 32

void cmd_run_usage(FILE *out)
{
    fprintf(out, "usage: skiff run [options] -- CMD [ARGS...]\n"
                 "\n"
                 "Run CMD in a fresh sandbox, stream its stdout and stderr, forward stdin, and\n"
                 "exit with CMD's exit code (128+N when a signal ended it). An abnormal end\n"
                 "(oom, timeout, ...) is reported on stderr.\n"
                 "\n"
                 "options:\n"
                 "  --memory SIZE        memory limit, swap off (e.g. 256M, 1G)\n"
                 "  --cpu CORES          CPU quota in cores (e.g. 0.5)\n"
                 "  --pids N             maximum number of processes\n"
                 "  --disk SIZE          size of the writable layer (default 1G; charged as memory)\n"
                 "  --timeout SECONDS    kill the sandbox after this long (reason 'timeout')\n"
                 "  --env K=V            set an environment variable (repeatable)\n"
                 "  --workdir DIR        working directory inside the sandbox (default /)\n"
                 "  --image host|PATH    root file system: the host's /usr (default) or a rootfs dir\n"
                 "  --mount HOST:SANDBOX[:ro|:rw]  bind a host path into the sandbox (repeatable;\n"
                 "                       the sandbox's root is an unprivileged host uid: a rw\n"
                 "                       source must be writable by it, e.g. mode 0777)\n"
                 "  --hostname NAME      hostname inside the sandbox (default: the sandbox id)\n"
                 "  --json               print one result record as the last line of stdout:\n"
                 "                       sandbox_id, exit_code, signal, reason, wall_ms, cpu_ms,\n"
                 "                       peak_memory_bytes\n"
                 "  -h, --help           show this help\n");
}

struct run_opts {
    struct sk_sandbox_spec spec;
    const char *env[MAX_ENV + 1];
    size_t n_env;
    struct sk_mount_spec mounts[MAX_MOUNTS];
    size_t n_mounts;
    const char *workdir;
    bool json;
    char **argv;
};

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "skiff run: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see skiff run --help)\n");
    return 2;
}

static int parse_mount(char *arg, struct sk_mount_spec *m)
{
    /* HOST:SANDBOX[:ro|:rw] */
    char *first = strchr(arg, ':');
    if (first == NULL)
        return -1;
    *first = '\0';
    char *target = first + 1;
    char *mode = strchr(target, ':');
    bool ro = false;
    if (mode != NULL) {
        *mode++ = '\0';
        if (strcmp(mode, "ro") == 0)
            ro = true;
        else if (strcmp(mode, "rw") != 0)
            return -1;
    }
    if (*arg == '\0' || *target == '\0')
        return -1;
    *m = (struct sk_mount_spec){.source = arg, .target = target, .read_only = ro};
    return 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
    enum { O_MEMORY = 256, O_CPU, O_PIDS, O_DISK, O_TIMEOUT, O_ENV, O_WORKDIR, O_IMAGE, O_MOUNT, O_JSON, O_HOSTNAME };
    static const struct option longopts[] = {
        {"memory", required_argument, NULL, O_MEMORY},
        {"cpu", required_argument, NULL, O_CPU},
        {"pids", required_argument, NULL, O_PIDS},
        {"disk", required_argument, NULL, O_DISK},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"env", required_argument, NULL, O_ENV},
        {"workdir", required_argument, NULL, O_WORKDIR},
        {"image", required_argument, NULL, O_IMAGE},
        {"mount", required_argument, NULL, O_MOUNT},
        {"json", no_argument, NULL, O_JSON},
        {"hostname", required_argument, NULL, O_HOSTNAME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sk_error err = {0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_MEMORY:
            if (sk_parse_size(optarg, &o->spec.limits.memory_bytes, &err) < 0)
                return bad_usage("--memory: %s", err.msg);
            break;
        case O_DISK:
            if (sk_parse_size(optarg, &o->spec.disk_bytes, &err) < 0)
                return bad_usage("--disk: %s", err.msg);
            break;
        case O_CPU:
            errno = 0;
            o->spec.limits.cpu = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->spec.limits.cpu > 0))
                return bad_usage("--cpu needs a positive number of cores, not '%s'", optarg);
            break;
        case O_PIDS:
            errno = 0;
            o->spec.limits.pids = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || o->spec.limits.pids <= 0)
                return bad_usage("--pids needs a positive integer, not '%s'", optarg);
            break;
        case O_TIMEOUT: {
            errno = 0;
            double t = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(t > 0) || t > 1e9)
                return bad_usage("--timeout needs a positive number of seconds, not '%s'", optarg);
            o->spec.timeout_ms = (int64_t)llround(t * 1000);
            if (o->spec.timeout_ms < 1)
                o->spec.timeout_ms = 1;
            break;
        }
        case O_ENV:
            if (strchr(optarg, '=') == NULL || optarg[0] == '=')
                return bad_usage("--env needs K=V, not '%s'", optarg);
            if (o->n_env == MAX_ENV)
                return bad_usage("too many --env options (at most %s)", "256");
            o->env[o->n_env++] = optarg;
            break;
        case O_WORKDIR:
            if (optarg[0] != '/')
                return bad_usage("--workdir must be an absolute path, not '%s'", optarg);
            o->workdir = optarg;
            break;
        case O_IMAGE: o->spec.image = optarg; break;
        case O_HOSTNAME: o->spec.hostname = optarg; break;
        case O_MOUNT:
            if (o->n_mounts == MAX_MOUNTS)
                return bad_usage("too many --mount options (at most %s)", "32");
            if (parse_mount(optarg, &o->mounts[o->n_mounts]) < 0)
                return bad_usage("--mount needs HOST:SANDBOX[:ro|:rw], not '%s'", optarg);
            o->n_mounts++;
            break;
        case O_JSON: o->json = true; break;
        case 'h': cmd_run_usage(stdout); return 0;
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return bad_usage("%s", "missing command: skiff run [options] -- CMD [ARGS...]");
    o->argv = argv + optind;
    o->spec.mounts = o->mounts;
    o->spec.n_mounts = o->n_mounts;
    o->spec.die_with_owner = true;
    return -1; /* go on */
}

/* build_env - the sandbox defaults, overridden by --env. */
static const char **build_env(struct run_opts *o, const char *hostname_kv)
{
    static const char *const defaults[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                           "HOME=/root", "LANG=C.UTF-8"};
    const char **env = xcalloc(SK_ARRAY_SIZE(defaults) + o->n_env + 2, sizeof(char *));
    size_t n = 0;
    const char *base[SK_ARRAY_SIZE(defaults) + 1];
    memcpy(base, defaults, sizeof(defaults));
    base[SK_ARRAY_SIZE(defaults)] = hostname_kv;
    for (size_t i = 0; i < SK_ARRAY_SIZE(base); i++) {
        size_t klen = strcspn(base[i], "=");
        bool overridden = false;
        for (size_t j = 0; j < o->n_env; j++)
            if (strncmp(o->env[j], base[i], klen + 1) == 0)
                overridden = true;
        if (!overridden)
            env[n++] = base[i];
    }
    for (size_t j = 0; j < o->n_env; j++)
        env[n++] = o->env[j];
    env[n] = NULL;
    return env;
}

/* A small buffer between our stdin and the sandbox's stdin pipe, so a
 * process that does not read its input never blocks our output loop. */
struct stdin_pump {
    char buf[65536];
    size_t len, off;
    bool eof;
};

struct outcome {
    int exit_code;
    int signo;
    bool exited;
    bool timed_out;
    enum sk_end_reason reason;
    char error[SK_ERROR_MSG_MAX];
};

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* copy_out - move what is readable from `from` to `to`; false at EOF/error. */
static bool copy_out(int from, int to)
{
    char buf[65536];
    ssize_t r = read(from, buf, sizeof(buf));
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (r <= 0)
        return false;
    if (sk_write_all(to, buf, (size_t)r) < 0) {
        /* our reader went away: keep draining so the sandbox is not blocked */
    }
    return true;
}

static int run_loop(struct sk_sandbox *sb, struct sk_agent_proc *proc, struct outcome *res)
{
    struct sk_error err = {0};
    struct sk_agent *agent = sk_sandbox_agent(sb);
    struct stdin_pump pump = {0};
    int in_fd = STDIN_FILENO;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
    if (proc->stdout_fd >= 0)
        set_nonblock(proc->stdout_fd);
    if (proc->stderr_fd >= 0)
        set_nonblock(proc->stderr_fd);
    if (proc->stdin_fd >= 0)
        set_nonblock(proc->stdin_fd);
    int interrupts = 0;
    bool main_done = false;
    int64_t drain_deadline = 0;
    for (;;) {
        enum { P_IN, P_PIPE_IN, P_OUT, P_ERR, P_AGENT, P_PIDFD, P_SIG, P_N };
        struct pollfd p[P_N];
        for (int i = 0; i < P_N; i++)
            p[i] = (struct pollfd){.fd = -1};
        bool want_input = proc->stdin_fd >= 0 && !pump.eof && pump.len == pump.off;
        if (want_input)
            p[P_IN] = (struct pollfd){.fd = in_fd, .events = POLLIN};
        if (proc->stdin_fd >= 0 && pump.len > pump.off)
            p[P_PIPE_IN] = (struct pollfd){.fd = proc->stdin_fd, .events = POLLOUT};
        p[P_OUT] = (struct pollfd){.fd = proc->stdout_fd, .events = POLLIN};
        p[P_ERR] = (struct pollfd){.fd = proc->stderr_fd, .events = POLLIN};
        if (!main_done) {
            p[P_AGENT] = (struct pollfd){.fd = sk_agent_fd(agent), .events = POLLIN};
            p[P_PIDFD] = (struct pollfd){.fd = sk_sandbox_pidfd(sb), .events = POLLIN};
            p[P_SIG] = (struct pollfd){.fd = sfd, .events = POLLIN};
        }
        if (main_done && proc->stdout_fd < 0 && proc->stderr_fd < 0)
            break;
        int timeout = -1;
        int64_t now = sk_now_ns();
        int64_t deadline = main_done ? drain_deadline : sk_sandbox_deadline_ns(sb);
        if (deadline > 0)
            timeout = deadline <= now ? 0 : (int)((deadline - now) / 1000000 + 1);
        int n = poll(p, P_N, timeout);
        if (n < 0 && errno != EINTR)
            return -1;
        now = sk_now_ns();
        if (!main_done && sk_sandbox_deadline_ns(sb) > 0 && now >= sk_sandbox_deadline_ns(sb)) {
            res->timed_out = true;
            res->reason = SK_END_TIMEOUT;
            res->signo = SIGKILL;
            res->exit_code = 128 + SIGKILL;
            sk_sandbox_kill(sb, SK_END_TIMEOUT, &err);
            main_done = true;
            drain_deadline = now + 2000000000LL;
            continue;
        }
        if (main_done && drain_deadline > 0 && now >= drain_deadline)
            break;
        if (n <= 0)
            continue;
        if (p[P_IN].revents) {
            ssize_t r = read(in_fd, pump.buf, sizeof(pump.buf));
            if (r > 0) {
                pump.len = (size_t)r;
                pump.off = 0;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                pump.eof = true;
                sk_close(&proc->stdin_fd);
            }
        }
        if (p[P_PIPE_IN].revents) {
            ssize_t w = write(proc->stdin_fd, pump.buf + pump.off, pump.len - pump.off);
            if (w > 0)
                pump.off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                pump.eof = true;
                sk_close(&proc->stdin_fd);
            }
        }
        if (p[P_OUT].revents && !copy_out(proc->stdout_fd, STDOUT_FILENO))
            sk_close(&proc->stdout_fd);
        if (p[P_ERR].revents && !copy_out(proc->stderr_fd, STDERR_FILENO))
            sk_close(&proc->stderr_fd);
        if (p[P_SIG].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (++interrupts >= 3) {
                    res->reason = SK_END_TERMINATED;
                    res->signo = SIGKILL;
                    res->exit_code = 128 + SIGKILL;
                    sk_sandbox_kill(sb, SK_END_TERMINATED, &err);
                    main_done = true;
                    drain_deadline = now + 2000000000LL;
                    break;
                }
                sk_agent_signal(agent, proc->id, (int)si.ssi_signo, &err);
            }
        }
        if (!main_done && p[P_AGENT].revents) {
            struct sk_agent_event ev;
            int r;
            while ((r = sk_agent_next_event(agent, &ev, 0, &err)) > 0) {
                if (ev.proc_id != proc->id)
                    continue;
                res->exited = true;
                res->exit_code = ev.exit_code;
                res->signo = ev.signo;
                if (ev.timed_out)
                    res->reason = SK_END_TIMEOUT;
                main_done = true;
            }
            if (r < 0 && !main_done) {
                snprintf(res->error, sizeof(res->error), "%s", err.msg);
                res->reason = SK_END_ERROR;
                res->exit_code = 128 + SIGKILL;
                res->signo = SIGKILL;
                main_done = true;
            }
        }
        if (!main_done && p[P_PIDFD].revents) {
            snprintf(res->error, sizeof(res->error), "the sandbox's init process died");
            res->reason = SK_END_ERROR;
            res->exit_code = 128 + SIGKILL;
            res->signo = SIGKILL;
            main_done = true;
        }
        if (main_done && drain_deadline == 0) {
            /* The main process is gone: end the rest of the sandbox so pipes
             * held by background processes reach EOF, then drain them. */
            if (res->reason == SK_END_NONE && res->signo == SIGKILL && sk_sandbox_oom_kills(sb) > 0)
                res->reason = SK_END_OOM;
            if (res->reason == SK_END_ERROR && sk_sandbox_oom_kills(sb) > 0)
                res->reason = SK_END_OOM;
            if (res->reason == SK_END_NONE)
                res->reason = SK_END_EXITED;
            sk_sandbox_kill(sb, res->reason, &err);
            drain_deadline = sk_now_ns() + 2000000000LL;
        }
    }
    sk_close(&sfd);
    return 0;
}

static void print_json(const char *id, const struct outcome *res, double wall_ms, const struct sk_cgroup_usage *u)
{
    printf("{\"sandbox_id\":\"%s\",\"exit_code\":%d,\"signal\":%d,\"reason\":\"%s\",\"wall_ms\":%.3f,"
           "\"cpu_ms\":%.3f,\"peak_memory_bytes\":%llu}\n",
           id, res->exit_code, res->signo, sk_end_reason_name(res->reason), wall_ms, (double)u->cpu_usec / 1000.0,
           (unsigned long long)u->memory_peak);
    fflush(stdout);
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    memset(&o, 0, sizeof(o));
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    int64_t start = sk_now_ns();
    struct sk_error err = {0};
    struct sk_runtime *rt = NULL;
    if (sk_runtime_new(NULL, &rt, &err) < 0) {
        fprintf(stderr, "skiff run: %s\n", err.msg);
        return 125;
    }
    struct sk_sandbox *sb = NULL;
    if (sk_sandbox_create(rt, &o.spec, &sb, &err) < 0) {
        fprintf(stderr, "skiff run: create sandbox: %s\n", err.msg);
        sk_runtime_free(rt);
        return 125;
    }
    char hostname_kv[96];
    snprintf(hostname_kv, sizeof(hostname_kv), "HOSTNAME=%s", o.spec.hostname ? o.spec.hostname : sk_sandbox_id(sb));
    _cleanup_free_ const char **env = build_env(&o, hostname_kv);
    struct sk_agent_spawn spawn = {
        .argv = (const char *const *)o.argv,
        .envp = env,
        .cwd = o.workdir,
        .want_stdin = true,
    };
    struct sk_agent_proc proc = {.stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1};
    int ret = sk_sandbox_exec(sb, &spawn, &proc, &err);
    if (ret < 0) {
        fprintf(stderr, "skiff run: %s\n", err.msg);
        sk_sandbox_free(sb);
        sk_runtime_free(rt);
        /* Like a shell: 127 for a command that was not found, 126 otherwise. */
        return err.code == ENOENT ? 127 : 126;
    }
    struct outcome res = {0};
    run_loop(sb, &proc, &res);
    sk_close(&proc.stdin_fd);
    sk_close(&proc.stdout_fd);
    sk_close(&proc.stderr_fd);
    struct sk_cgroup_usage usage = {0};
    sk_sandbox_usage(sb, &usage, NULL);
    double wall_ms = (double)(sk_now_ns() - start) / 1e6;
    switch (res.reason) {
    case SK_END_OOM:
        fprintf(stderr, "skiff run: sandbox ended: oom (the memory limit of %lld bytes was reached)\n",
                (long long)o.spec.limits.memory_bytes);
        break;
    case SK_END_TIMEOUT:
        fprintf(stderr, "skiff run: sandbox ended: timeout (after %.3f s)\n", (double)o.spec.timeout_ms / 1000.0);
        break;
    case SK_END_TERMINATED: fprintf(stderr, "skiff run: sandbox ended: terminated\n"); break;
    case SK_END_ERROR: fprintf(stderr, "skiff run: sandbox ended: error: %s\n", res.error); break;
    default: break;
    }
    if (o.json)
        print_json(sk_sandbox_id(sb), &res, wall_ms, &usage);
    sk_sandbox_free(sb);
    sk_runtime_free(rt);
    return res.exit_code;
}
