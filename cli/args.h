/* args.h - option parsing shared by the skiff API commands: the common
 * options (--url, --token, --json, --help), usage errors, and the small
 * parsers for numbers, sizes and K=V pairs. */
#ifndef SK_CLI_ARGS_H
#define SK_CLI_ARGS_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

enum { SK_OPT_URL = 1000, SK_OPT_TOKEN, SK_OPT_JSON, SK_OPT_FIRST_LOCAL };

/* SK_CLI_COMMON_OPTIONS - the getopt_long entries every API command has. */
#define SK_CLI_COMMON_OPTIONS \
    {"url", required_argument, NULL, SK_OPT_URL}, {"token", required_argument, NULL, SK_OPT_TOKEN}, \
        {"json", no_argument, NULL, SK_OPT_JSON}, \
    { \
        "help", no_argument, NULL, 'h' \
    }

/* SK_CLI_CONN_OPTIONS - the same without --json, for commands whose output
 * is a process's raw bytes (logs, shell). */
#define SK_CLI_CONN_OPTIONS \
    {"url", required_argument, NULL, SK_OPT_URL}, {"token", required_argument, NULL, SK_OPT_TOKEN}, \
    { \
        "help", no_argument, NULL, 'h' \
    }

/* SK_CLI_COMMON_HELP - their lines in a --help text. */
#define SK_CLI_COMMON_HELP "  --json               print the API's JSON answer instead of a table\n" SK_CLI_CONN_HELP
#define SK_CLI_CONN_HELP \
    "  --url URL            the skiffd API (default $SKIFF_URL, the config file, or\n" \
    "                       http://127.0.0.1:7433)\n" \
    "  --token TOKEN        the API token (default $SKIFF_TOKEN or the config file)\n" \
    "  -h, --help           show this help\n"

/* sk_cli_common_opt - apply a common option (not --help); false when `c` is
 * not one. */
bool sk_cli_common_opt(struct sk_cli *g, int c, const char *arg);

/* sk_cli_usage_error - print "<prog>: <message>" and a pointer to --help on
 * stderr; returns SK_EXIT_USAGE. */
int sk_cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sk_cli_getopt_error - the usage error for what getopt_long returned as
 * '?' (unknown option) or ':' (missing argument). */
int sk_cli_getopt_error(const char *prog, int c, char **argv);

/* sk_cli_reset_getopt - start a fresh getopt_long scan (errors are ours). */
void sk_cli_reset_getopt(void);

/* sk_cli_dashdash - the index of the first "--" in argv, or argc. */
int sk_cli_dashdash(int argc, char **argv);

/* sk_cli_parse_int - a decimal integer in [min, max]; -1 when it is not one. */
int sk_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* sk_cli_parse_mib - a size in MiB: "256" (MiB), or with a unit "512M", "2G",
 * "1048576K"; -1 when it is not a positive whole number of MiB. */
int sk_cli_parse_mib(const char *s, int64_t *mib);

/* sk_cli_parse_kv - split "K=V" in place (K non-empty); -1 when there is no '='.
 * The key and value point into `s`. */
int sk_cli_parse_kv(char *s, const char **key, const char **value);

/* sk_cli_print_json - the answer as indented JSON and a newline on stdout. */
void sk_cli_print_json(const json_t *j);

/* A command group's subcommands (skiff sandbox ..., skiff token ...). */
struct sk_cli_subcommand {
    const char *name, *alias, *summary;
    int (*fn)(int argc, char **argv, struct sk_cli *g);
    void (*usage)(FILE *out);
};

/* sk_cli_group_usage - "usage: skiff GROUP <command> ...", what the group is
 * for, its subcommands, and the options every command shares. */
void sk_cli_group_usage(FILE *out, const char *group, const char *about, const struct sk_cli_subcommand *subs,
                        size_t n);
/* sk_cli_group_dispatch - run the subcommand named by argv[1] (argv[0] is the
 * group); help for the group or one subcommand; usage and exit 2 otherwise. */
int sk_cli_group_dispatch(const char *group, const char *about, const struct sk_cli_subcommand *subs, size_t n,
                          int argc, char **argv, struct sk_cli *g);

/* sk_cli_jstr - a string member or `dflt` (NULL, absent or not a string). */
const char *sk_cli_jstr(const json_t *o, const char *key, const char *dflt);

/* sk_cli_time - an API time ("2025-01-02T03:04:05.678Z") shortened for a
 * table ("2025-01-02 03:04:05"), or "-" for null; written to buf. */
const char *sk_cli_time(const json_t *v, char *buf, size_t size);

#endif
