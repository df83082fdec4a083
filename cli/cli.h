/* cli.h - the skiff command line: one file per subcommand, each exposing
 * int cmd_<name>(int argc, char **argv) that returns the process exit code. */
#ifndef SK_CLI_CLI_H
#define SK_CLI_CLI_H

#include <stdio.h>

#define SKIFF_VERSION "0.1.0"

int cmd_run(int argc, char **argv);
void cmd_run_usage(FILE *out);

#endif
