/* skiff sandbox exec / shell - a process in a running sandbox: its output
 * streamed (resumable), stdin forwarded, and its exit code as ours. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "args.h"
#include "base/util.h"
#include "cli.h"
#include "client.h"
#include "follow.h"

#define EXEC_WAIT_POLL_S 60

void cmd_sandbox_exec_usage(FILE *out)
{
    fprintf(out, "usage: skiff sandbox exec [options] ID -- CMD [ARGS...]\n"
                 "\n"
                 "Run CMD in the running sandbox ID, stream its stdout to stdout and its stderr\n"
                 "to stderr, and exit with CMD's exit code (128+N when signal N ended it).\n"
                 "SIGINT, SIGTERM and SIGHUP are forwarded to CMD (a third SIGINT sends\n"
                 "SIGKILL). A dropped connection resumes the output where it left off.\n"
                 "Exits 127 when CMD does not exist in the sandbox; before CMD starts, errors\n"
                 "exit as listed below.\n"
                 "\n"
                 "options:\n"
                 "  -i, --interactive    forward stdin to CMD (without it CMD's stdin is empty)\n"
                 "  --env K=V            an environment variable (repeatable)\n"
                 "  --workdir DIR        working directory (absolute)\n"
                 "  --timeout SECONDS    kill CMD after this long\n"
                 "  --json               after the output, print the exec's final record (the\n"
                 "                       API's JSON) as the last line of stdout\n" SK_CLI_CONN_HELP "\n"
                 "environment (testing):\n"
                 "  SKIFF_STREAM_DROP_AFTER=N  read with a tiny buffer and drop each output\n"
                 "                       connection after N bytes (exercises resuming)\n");
}

void cmd_sandbox_shell_usage(FILE *out)
{
    fprintf(out, "usage: skiff sandbox shell [options] ID [-- CMD [ARGS...]]\n"
                 "\n"
                 "An interactive shell (bash if the sandbox has it, else sh; or CMD) on a\n"
                 "terminal in the running sandbox ID. Your terminal is put in raw mode, keys go\n"
                 "to the sandbox, window size changes follow, and the shell's exit code\n"
                 "becomes skiff's.\n"
                 "\n"
                 "options:\n"
                 "  --env K=V            an environment variable (repeatable; TERM is passed on)\n"
                 "  --workdir DIR        working directory (absolute)\n" SK_CLI_CONN_HELP);
}

/* ---- shared -------------------------------------------------------------------- */

struct exec_opts {
    json_t *env;
    const char *workdir;
    int64_t timeout_s;
    bool interactive;
    const char *id;
    char **argv;
    int argc;
};

/* exec_paths - "/v1/sandboxes/<sb>/execs/<ex>" + suffix. */
static char *exec_path(const char *sandbox_id, const char *exec_id, const char *suffix)
{
    _cleanup_free_ char *sb = sk_client_escape(sandbox_id, false);
    _cleanup_free_ char *ex = sk_client_escape(exec_id, false);
    return xasprintf("/v1/sandboxes/%s/execs/%s%s", sb, ex, suffix);
}

/* start_exec - POST the exec; on success *answer is its record. A
 * not_found is told apart: the sandbox (exit 3) or the program (127). */
static int start_exec(struct sk_client *c, const char *id, json_t *body, json_t **answer)
{
    _cleanup_free_ char *sb = sk_client_escape(id, false);
    _cleanup_free_ char *path = xasprintf("/v1/sandboxes/%s/execs", sb);
    struct sk_client_error e;
    if (sk_client_request(c, "POST", path, body, answer, &e) == 0)
        return 0;
    if (strcmp(e.code, "not_found") == 0) {
        _cleanup_free_ char *sbpath = xasprintf("/v1/sandboxes/%s", sb);
        struct sk_client_error e2;
        if (sk_client_request(c, "GET", sbpath, NULL, NULL, &e2) < 0)
            return sk_client_report(c, &e2);
        sk_client_report(c, &e);
        return SK_EXIT_NO_COMMAND;
    }
    return sk_client_report(c, &e);
}

/* finish_exec - wait for the exec's end; its exit code (128+N for signal
 * N), or ours for an error. *record (when not NULL) gets the final record. */
static int finish_exec(struct sk_client *c, const char *sandbox_id, const char *exec_id, json_t **record)
{
    _cleanup_free_ char *base = exec_path(sandbox_id, exec_id, "/wait");
    _cleanup_free_ char *path = xasprintf("%s?timeout=%d", base, EXEC_WAIT_POLL_S);
    for (;;) {
        json_t *x = NULL;
        struct sk_client_error e;
        if (sk_client_request(c, "GET", path, NULL, &x, &e) < 0)
            return sk_client_report(c, &e);
        if (json_is_true(json_object_get(x, "timed_out_waiting"))) {
            json_decref(x);
            continue;
        }
        json_t *code = json_object_get(x, "exit_code"), *sig = json_object_get(x, "signal");
        int rc = json_is_integer(code)  ? (int)json_integer_value(code)
                 : json_is_integer(sig) ? 128 + (int)json_integer_value(sig)
                                        : SK_EXIT_ERROR;
        if (json_is_true(json_object_get(x, "timed_out")))
            fprintf(stderr, "skiff: exec '%s' timed out and was killed\n", exec_id);
        if (record != NULL)
            *record = x;
        else
            json_decref(x);
        return rc;
    }
}

/* parse_exec - the options shared by exec and shell; -1 to go on, else the
 * exit code. Positional: ID, then CMD (after --, or everything after ID). */
static int parse_exec(const char *prog, int argc, char **argv, struct sk_cli *g, bool shell, struct exec_opts *o)
{
    enum { O_ENV = SK_OPT_FIRST_LOCAL, O_WORKDIR, O_TIMEOUT };
    static const struct option exec_longopts[] = {
        {"env", required_argument, NULL, O_ENV},
        {"workdir", required_argument, NULL, O_WORKDIR},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"interactive", no_argument, NULL, 'i'},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static const struct option shell_longopts[] = {
        {"env", required_argument, NULL, O_ENV},
        {"workdir", required_argument, NULL, O_WORKDIR},
        SK_CLI_CONN_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->env = json_object();
    int dd = sk_cli_dashdash(argc, argv);
    int c;
    sk_cli_reset_getopt();
    /* without "--", stop at ID so CMD's own options stay CMD's */
    const char *shortopts = dd < argc ? (shell ? ":h" : ":hi") : (shell ? "+:h" : "+:hi");
    while ((c = getopt_long(dd, argv, shortopts, shell ? shell_longopts : exec_longopts, NULL)) != -1) {
        const char *k, *v;
        switch (c) {
        case O_ENV:
            if (sk_cli_parse_kv(optarg, &k, &v) < 0)
                return sk_cli_usage_error(prog, "--env needs K=V, not '%s'", optarg);
            json_object_set_new(o->env, k, json_string(v));
            break;
        case O_WORKDIR:
            if (optarg[0] != '/')
                return sk_cli_usage_error(prog, "--workdir must be an absolute path, not '%s'", optarg);
            o->workdir = optarg;
            break;
        case O_TIMEOUT:
            if (sk_cli_parse_int(optarg, 1, INT64_C(1) << 32, &o->timeout_s) < 0)
                return sk_cli_usage_error(prog, "--timeout needs a positive number of seconds, not '%s'", optarg);
            break;
        case 'i': o->interactive = true; break;
        case 'h':
            if (shell)
                cmd_sandbox_shell_usage(stdout);
            else
                cmd_sandbox_exec_usage(stdout);
            return 0;
        default:
            if (!sk_cli_common_opt(g, c, optarg))
                return sk_cli_getopt_error(prog, c, argv);
        }
    }
    if (optind >= dd)
        return sk_cli_usage_error(prog, "missing the sandbox ID");
    o->id = argv[optind];
    /* CMD: what follows ID before "--" (if anything), then what follows "--" */
    o->argv = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = optind + 1; i < dd; i++)
        o->argv[o->argc++] = argv[i];
    for (int i = dd + 1; i < argc; i++)
        o->argv[o->argc++] = argv[i];
    if (o->argc == 0 && !shell)
        return sk_cli_usage_error(prog, "missing the command: %s ID -- CMD [ARGS...]", prog);
    if (o->argc > 0 && o->argv[0][0] == '\0')
        return sk_cli_usage_error(prog, "the command's name is empty");
    return -1;
}

static void exec_opts_release(struct exec_opts *o)
{
    json_decref(o->env);
    free(o->argv);
}

static json_t *argv_json(const char *const *argv, int argc)
{
    json_t *a = json_array();
    for (int i = 0; i < argc; i++)
        json_array_append_new(a, json_string(argv[i]));
    return a;
}

/* ---- exec ----------------------------------------------------------------------- */

/* follow_exec - stream the exec in record `x` until it ends; its exit code. */
static int follow_exec(struct sk_client *cl, const json_t *x, const char *id, bool interactive, bool json)
{
    _cleanup_free_ char *sandbox_id = xstrdup(sk_cli_jstr(x, "sandbox_id", id));
    _cleanup_free_ char *exec_id = xstrdup(sk_cli_jstr(x, "id", ""));
    _cleanup_free_ char *out_path = exec_path(sandbox_id, exec_id, "/output");
    _cleanup_free_ char *in_path = exec_path(sandbox_id, exec_id, "/stdin");
    _cleanup_free_ char *sig_path = exec_path(sandbox_id, exec_id, "/signal");
    struct sk_follow_opts fo = {
        .output_path = out_path,
        .follow = true,
        .stdout_fd = STDOUT_FILENO,
        .stderr_fd = STDERR_FILENO,
        .stdin_fd = interactive ? STDIN_FILENO : -1,
        .stdin_path = in_path,
        .tty_fd = -1,
        .signal_path = sig_path,
    };
    fflush(stdout);
    struct sk_client_error e;
    if (sk_follow(cl, &fo, &e) < 0)
        return sk_client_report(cl, &e);
    json_t *record = NULL;
    int rc = finish_exec(cl, sandbox_id, exec_id, json ? &record : NULL);
    if (record != NULL) {
        char *text = json_dumps(record, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(record);
    }
    return rc;
}

int cmd_sandbox_exec(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox exec";
    struct exec_opts o;
    int rc = parse_exec(prog, argc, argv, g, false, &o);
    if (rc >= 0) {
        exec_opts_release(&o);
        return rc;
    }
    json_t *body = json_pack("{s:o}", "argv", argv_json((const char *const *)o.argv, o.argc));
    if (json_object_size(o.env) > 0)
        json_object_set(body, "env", o.env);
    if (o.workdir != NULL)
        json_object_set_new(body, "workdir", json_string(o.workdir));
    if (o.timeout_s > 0)
        json_object_set_new(body, "timeout", json_integer(o.timeout_s));
    if (o.interactive)
        json_object_set_new(body, "stdin", json_true());
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) == 0) {
        json_t *x = NULL;
        if ((rc = start_exec(&cl, o.id, body, &x)) == 0)
            rc = follow_exec(&cl, x, o.id, o.interactive, g->json);
        json_decref(x);
        sk_client_close(&cl);
    }
    json_decref(body);
    exec_opts_release(&o);
    return rc;
}

/* ---- shell ------------------------------------------------------------------------ */

/* follow_shell - the terminal in raw mode while the PTY exec `x` runs. */
static int follow_shell(struct sk_client *cl, const json_t *x, const char *id, bool tty)
{
    _cleanup_free_ char *sandbox_id = xstrdup(sk_cli_jstr(x, "sandbox_id", id));
    _cleanup_free_ char *exec_id = xstrdup(sk_cli_jstr(x, "id", ""));
    _cleanup_free_ char *out_path = exec_path(sandbox_id, exec_id, "/output");
    _cleanup_free_ char *in_path = exec_path(sandbox_id, exec_id, "/stdin");
    _cleanup_free_ char *sig_path = exec_path(sandbox_id, exec_id, "/signal");
    _cleanup_free_ char *resize_path = exec_path(sandbox_id, exec_id, "/resize");
    struct termios saved;
    bool raw = false;
    if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
        struct termios t = saved;
        cfmakeraw(&t);
        raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
    }
    /* the pty merges stderr into its one output stream */
    struct sk_follow_opts fo = {
        .output_path = out_path,
        .follow = true,
        .stdout_fd = STDOUT_FILENO,
        .stderr_fd = -1,
        .stdin_fd = STDIN_FILENO,
        .stdin_path = in_path,
        .resize_path = tty ? resize_path : NULL,
        .tty_fd = STDIN_FILENO,
        .signal_path = sig_path,
    };
    fflush(stdout);
    struct sk_client_error e;
    int fr = sk_follow(cl, &fo, &e);
    if (raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    if (fr < 0)
        return sk_client_report(cl, &e);
    return finish_exec(cl, sandbox_id, exec_id, NULL);
}

int cmd_sandbox_shell(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox shell";
    struct exec_opts o;
    int rc = parse_exec(prog, argc, argv, g, true, &o);
    if (rc >= 0) {
        exec_opts_release(&o);
        return rc;
    }
    static const char *const default_shell[] = {"/bin/sh", "-c",
                                                "command -v bash >/dev/null 2>&1 && exec bash || exec sh"};
    json_t *cmd = o.argc > 0 ? argv_json((const char *const *)o.argv, o.argc) : argv_json(default_shell, 3);
    bool tty = isatty(STDIN_FILENO) == 1;
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    if (tty && (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0 || ws.ws_col == 0)) {
        ws.ws_row = 24;
        ws.ws_col = 80;
    }
    if (json_object_get(o.env, "TERM") == NULL) {
        const char *term = getenv("TERM");
        json_object_set_new(o.env, "TERM", json_string(term && term[0] ? term : "xterm-256color"));
    }
    json_t *body = json_pack("{s:o, s:b, s:i, s:i, s:O}", "argv", cmd, "pty", 1, "rows", (int)ws.ws_row, "cols",
                             (int)ws.ws_col, "env", o.env);
    if (o.workdir != NULL)
        json_object_set_new(body, "workdir", json_string(o.workdir));
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) == 0) {
        json_t *x = NULL;
        if ((rc = start_exec(&cl, o.id, body, &x)) == 0)
            rc = follow_shell(&cl, x, o.id, tty);
        json_decref(x);
        sk_client_close(&cl);
    }
    json_decref(body);
    exec_opts_release(&o);
    return rc;
}
