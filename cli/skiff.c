/* skiff.c - the skiff command's entry point.
 *
 * `skiff run` (a sandbox, no server) is handled here, in a binary that links
 * only libskiff's runtime. Every other command belongs to skiff-api, a
 * sibling binary linked with libcurl and libarchive: loading those and the
 * dozens of shared libraries they pull in takes several milliseconds, which
 * `skiff run` must never pay (its start-up is benchmarked against bwrap). */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cli.h"

int main(int argc, char **argv)
{
    sk_log_init_from_env();
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "skiff: cannot find my own binary: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    snprintf(path, sizeof(path), "%s/skiff-api", dirname(self));
    execv(path, argv);
    fprintf(stderr, "skiff: cannot run '%s': %s (it is built and installed next to skiff)\n", path, strerror(errno));
    return 1;
}
