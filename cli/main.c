#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli.h"

void sk_cli_usage_common(FILE *out)
{
    fprintf(out, "server and token (first found wins):\n"
                 "  --url URL, --token TOKEN         before the command or among its options\n"
                 "  SKIFF_URL, SKIFF_TOKEN           environment\n"
                 "  ~/.config/skiff/config           lines `url = ...` and `token = ...` (or\n"
                 "                                   `token_file = PATH`); $SKIFF_CONFIG or\n"
                 "                                   $XDG_CONFIG_HOME/skiff/config if set\n"
                 "  the URL defaults to http://127.0.0.1:7433 (unix:/PATH for a Unix socket);\n"
                 "  the server's admin token is in <data-dir>/admin.token\n"
                 "\n"
                 "exit codes:\n"
                 "  0    success\n"
                 "  1    an API error not listed below (invalid_argument, internal, ...) or a\n"
                 "       local failure\n"
                 "  2    bad usage: unknown option, missing or malformed argument; no API token\n"
                 "       configured or a malformed configuration\n"
                 "  3    not_found: no such sandbox, exec, token or file\n"
                 "  4    unauthenticated or permission_denied: the token was refused\n"
                 "  5    already_exists or failed_precondition (e.g. the sandbox has ended)\n"
                 "  6    skiffd cannot be reached, or unavailable / deadline_exceeded\n"
                 "  124  sandbox wait: --timeout ran out before the sandbox ended\n"
                 "  exec, shell: once the command runs, its exit code (128+N for signal N);\n"
                 "       127 when the command does not exist in the sandbox\n"
                 "Errors are printed as `skiff: <message> (<code>)`, code being the API's.\n");
}

static void usage(FILE *out)
{
    fprintf(out, "usage: skiff [--url URL] [--token TOKEN] [--json] <command> [options]\n"
                 "\n"
                 "skiff runs untrusted code in isolated Linux sandboxes.\n"
                 "\n"
                 "commands:\n"
                 "  sandbox    sandboxes on a skiffd server: create, ls, get, exec, shell, cp,\n"
                 "             rm, logs, wait, tag, port, net\n"
                 "  token      API tokens: create, ls, revoke\n"
                 "  serve      run the API server (skiffd) in the foreground\n"
                 "  run        run a command in a fresh sandbox, without a daemon\n"
                 "  version    print the version\n"
                 "  help       show this help, or `skiff help <command>`\n"
                 "\n"
                 "Every command has --help; API commands print tables, or the API's JSON\n"
                 "with --json.\n"
                 "\n");
    sk_cli_usage_common(out);
    fprintf(out, "\n"
                 "environment of `skiff run`:\n"
                 "  SKIFF_STATE_DIR   runtime state (default /var/lib/skiff)\n"
                 "  SKIFF_LOG         error|warn|info|debug (default warn)\n"
                 "  SKIFF_IDMAP=off   run without idmapped image layers (logged fallback)\n"
                 "  SKIFF_CGROUP_DRIVER=v1|v2  force a cgroup driver\n"
                 "  SKIFF_INIT        path of skiff-init (default: next to skiff)\n");
}

/* global_option - consume `--url X`, `--url=X`, `--token ...`, `--json` at
 * argv[*i]; 1 when it was one, 0 when not, -1 for a missing value. */
static int global_option(int argc, char **argv, int *i, struct sk_cli *g)
{
    static const char *const names[] = {"--url", "--token"};
    const char *arg = argv[*i];
    if (strcmp(arg, "--json") == 0) {
        g->json = true;
        return 1;
    }
    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(names[k]);
        if (strncmp(arg, names[k], n) != 0 || (arg[n] != '\0' && arg[n] != '='))
            continue;
        const char *value = arg[n] == '=' ? arg + n + 1 : NULL;
        if (value == NULL) {
            if (*i + 1 >= argc)
                return -1;
            value = argv[++*i];
        }
        if (k == 0)
            g->url = value;
        else
            g->token = value;
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    sk_log_init_from_env();
    struct sk_cli g = {0};
    int i = 1;
    for (; i < argc; i++) {
        int r = global_option(argc, argv, &i, &g);
        if (r < 0) {
            fprintf(stderr, "skiff: option '%s' needs a value\n(see skiff --help)\n", argv[i]);
            return SK_EXIT_USAGE;
        }
        if (r == 0)
            break;
    }
    if (i >= argc) {
        usage(stderr);
        return SK_EXIT_USAGE;
    }
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    if (strcmp(cmd, "run") == 0)
        return cmd_run(sub_argc, sub_argv);
    if (strcmp(cmd, "sandbox") == 0 || strcmp(cmd, "sandboxes") == 0 || strcmp(cmd, "sb") == 0)
        return cmd_sandbox(sub_argc, sub_argv, &g);
    if (strcmp(cmd, "token") == 0 || strcmp(cmd, "tokens") == 0)
        return cmd_token(sub_argc, sub_argv, &g);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(sub_argc, sub_argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("skiff %s\n", SKIFF_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        const char *topic = sub_argc > 1 ? sub_argv[1] : "";
        if (strcmp(topic, "run") == 0)
            cmd_run_usage(stdout);
        else if (strcmp(topic, "sandbox") == 0)
            cmd_sandbox_usage(stdout);
        else if (strcmp(topic, "token") == 0)
            cmd_token_usage(stdout);
        else if (strcmp(topic, "serve") == 0)
            cmd_serve_usage(stdout);
        else
            usage(stdout);
        return 0;
    }
    fprintf(stderr, "skiff: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return SK_EXIT_USAGE;
}
