/* cli.h - the skiff command line: one file per subcommand, each exposing
 * int cmd_<name>(int argc, char **argv, ...) that returns the process exit
 * code. argv[0] is the subcommand's own name. */
#ifndef SK_CLI_CLI_H
#define SK_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

#define SKIFF_VERSION "0.1.0"

/* Exit codes of the API commands (documented in `skiff --help`). A command
 * that runs a process (exec, shell) exits with the process's own code once
 * the process has started. */
enum {
    SK_EXIT_OK = 0,
    SK_EXIT_ERROR = 1,       /* an API error not listed below, or a local failure */
    SK_EXIT_USAGE = 2,       /* bad flags or arguments; no token configured */
    SK_EXIT_NOT_FOUND = 3,   /* not_found: no such sandbox, exec, token or file */
    SK_EXIT_AUTH = 4,        /* unauthenticated, permission_denied */
    SK_EXIT_CONFLICT = 5,    /* already_exists, failed_precondition */
    SK_EXIT_UNAVAILABLE = 6, /* skiffd unreachable, unavailable, deadline_exceeded */
    SK_EXIT_TIMEOUT = 124,   /* `sandbox wait --timeout` ran out */
    SK_EXIT_NO_COMMAND = 127 /* exec/shell: the program does not exist in the sandbox */
};

/* sk_cli - options every API command accepts (before the command, as in
 * `skiff --url U sandbox ls`, or among its own options). */
struct sk_cli {
    const char *url;   /* --url, or NULL */
    const char *token; /* --token, or NULL */
    bool json;         /* --json: print the API's JSON */
};

int cmd_run(int argc, char **argv);
void cmd_run_usage(FILE *out);

/* skiff sandbox create|ls|get|exec|shell|cp|rm|logs|wait|tag */
int cmd_sandbox(int argc, char **argv, struct sk_cli *g);
void cmd_sandbox_usage(FILE *out);
/* the sandbox subcommands in their own files */
int cmd_sandbox_exec(int argc, char **argv, struct sk_cli *g);
void cmd_sandbox_exec_usage(FILE *out);
int cmd_sandbox_shell(int argc, char **argv, struct sk_cli *g);
void cmd_sandbox_shell_usage(FILE *out);
int cmd_sandbox_cp(int argc, char **argv, struct sk_cli *g);
void cmd_sandbox_cp_usage(FILE *out);
/* skiff sandbox port expose|unexpose|ls|token (port.c) */
int cmd_sandbox_port(int argc, char **argv, struct sk_cli *g);
void cmd_sandbox_port_usage(FILE *out);
/* skiff sandbox net show|set|log (net.c) */
int cmd_sandbox_net(int argc, char **argv, struct sk_cli *g);
void cmd_sandbox_net_usage(FILE *out);

/* skiff token create|ls|revoke */
int cmd_token(int argc, char **argv, struct sk_cli *g);
void cmd_token_usage(FILE *out);

/* skiff serve: exec skiffd with the same arguments */
int cmd_serve(int argc, char **argv);
void cmd_serve_usage(FILE *out);

/* sk_cli_usage_common - the environment and the exit code table. */
void sk_cli_usage_common(FILE *out);

#endif
