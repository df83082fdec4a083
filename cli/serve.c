/* skiff serve - run the API server: exec skiffd (next to skiff, else from
 * PATH) with the same arguments. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cmd_serve_usage(FILE *out)
{
    fprintf(out, "usage: skiff serve [skiffd options]\n"
                 "\n"
                 "Run the skiff API server in the foreground: skiffd from the directory of this\n"
                 "skiff binary, else from PATH, with the same options. On first start it writes\n"
                 "an admin token to DATA_DIR/admin.token (use it as SKIFF_TOKEN).\n"
                 "\n"
                 "skiffd options:\n"
                 "  --listen ADDR        HOST:PORT, [V6]:PORT or unix:/PATH (default 127.0.0.1:7433)\n"
                 "  --data-dir DIR       the store and admin.token (default ./var)\n"
                 "  --max-body BYTES     largest buffered request body (default 16M)\n"
                 "  --max-connections N  all connections together (default 1024)\n"
                 "  --max-per-ip N       connections from one client address (default 256)\n"
                 "  --idle-timeout SECS  close silent connections after this long (default 60)\n"
                 "  --pool-size N        warm pool: ready sandboxes kept for the default key\n"
                 "                       (default 4; 0 turns the pool off)\n"
                 "  --pool KEY           another pooled key: image=host|/ROOTFS[,disk=SIZE][,min=N][,max=N]\n"
                 "  --log-level L        error, warn, info, debug (default info)\n"
                 "  -h, --help           show this help (skiffd's own: skiffd --help)\n"
                 "\n"
                 "Exit status: skiffd's (0 after SIGTERM/SIGINT, 1 when it cannot start, 2 for a\n"
                 "bad command line); 127 when skiffd cannot be found.\n");
}

int cmd_serve(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            cmd_serve_usage(stdout);
            return 0;
        }
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    if (args == NULL)
        return 1;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            char bin[PATH_MAX + 16];
            snprintf(bin, sizeof(bin), "%.*s/skiffd", (int)(slash - self), self);
            if (access(bin, X_OK) == 0) {
                args[0] = bin;
                execv(bin, args);
                fprintf(stderr, "skiff serve: exec '%s': %s\n", bin, strerror(errno));
                free(args);
                return 126;
            }
        }
    }
    args[0] = (char *)"skiffd";
    execvp("skiffd", args);
    fprintf(stderr, "skiff serve: cannot find skiffd next to skiff or in PATH: %s\n", strerror(errno));
    free(args);
    return 127;
}
