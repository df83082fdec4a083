#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: skiff <command> [options]\n"
                 "\n"
                 "skiff runs untrusted code in isolated Linux sandboxes.\n"
                 "\n"
                 "commands:\n"
                 "  run        run a command in a fresh sandbox, without a daemon\n"
                 "  version    print the version\n"
                 "  help       show this help, or `skiff help <command>`\n"
                 "\n"
                 "environment:\n"
                 "  SKIFF_STATE_DIR   runtime state (default /var/lib/skiff)\n"
                 "  SKIFF_LOG         error|warn|info|debug (default warn)\n"
                 "  SKIFF_IDMAP=off   run without idmapped image layers (logged fallback)\n"
                 "  SKIFF_CGROUP_DRIVER=v1|v2  force a cgroup driver\n"
                 "  SKIFF_INIT        path of skiff-init (default: next to skiff)\n");
}

int main(int argc, char **argv)
{
    sk_log_init_from_env();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("skiff %s\n", SKIFF_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && strcmp(argv[2], "run") == 0)
            cmd_run_usage(stdout);
        else
            usage(stdout);
        return 0;
    }
    fprintf(stderr, "skiff: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
