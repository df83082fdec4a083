/* args.c - option parsing shared by the skiff API commands. */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

bool sk_cli_common_opt(struct sk_cli *g, int c, const char *arg)
{
    switch (c) {
    case SK_OPT_URL: g->url = arg; return true;
    case SK_OPT_TOKEN: g->token = arg; return true;
    case SK_OPT_JSON: g->json = true; return true;
    default: return false;
    }
}

int sk_cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see %s --help)\n", prog);
    va_end(ap);
    return SK_EXIT_USAGE;
}

int sk_cli_getopt_error(const char *prog, int c, char **argv)
{
    const char *opt = argv[optind - 1];
    if (c == ':')
        return sk_cli_usage_error(prog, "option '%s' needs a value", opt);
    if (optopt != 0 && optopt < SK_OPT_URL)
        return sk_cli_usage_error(prog, "unknown option '-%c'", optopt);
    return sk_cli_usage_error(prog, "unknown option '%s'", opt);
}

void sk_cli_reset_getopt(void)
{
    optind = 0; /* GNU: a full re-initialisation */
    opterr = 0;
    optopt = 0;
}

int sk_cli_dashdash(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0)
            return i;
    return argc;
}

int sk_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int sk_cli_parse_mib(const char *s, int64_t *mib)
{
    size_t len = strlen(s);
    if (len == 0)
        return -1;
    if (s[len - 1] >= '0' && s[len - 1] <= '9')
        return sk_cli_parse_int(s, 1, INT64_C(1) << 30, mib);
    int64_t bytes = 0;
    struct sk_error err = {0};
    if (sk_parse_size(s, &bytes, &err) < 0 || bytes <= 0 || bytes % (1 << 20) != 0)
        return -1;
    *mib = bytes >> 20;
    return 0;
}

int sk_cli_parse_kv(char *s, const char **key, const char **value)
{
    char *eq = strchr(s, '=');
    if (eq == NULL || eq == s)
        return -1;
    *eq = '\0';
    *key = s;
    *value = eq + 1;
    return 0;
}

void sk_cli_print_json(const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        fputs(text, stdout);
        fputc('\n', stdout);
    }
    free(text);
}

const char *sk_cli_jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

const char *sk_cli_time(const json_t *v, char *buf, size_t size)
{
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) < 19) {
        snprintf(buf, size, "-");
        return buf;
    }
    snprintf(buf, size, "%.10s %.8s", s, s + 11);
    return buf;
}

void sk_cli_group_usage(FILE *out, const char *group, const char *about, const struct sk_cli_subcommand *subs, size_t n)
{
    fprintf(out, "usage: skiff %s <command> [options] [ARGS...]\n\n%s\n\ncommands:\n", group, about);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-8s %s\n", subs[i].name, subs[i].summary);
    fprintf(out, "\n`skiff %s <command> --help` shows a command's options.\n\n", group);
    sk_cli_usage_common(out);
}

int sk_cli_group_dispatch(const char *group, const char *about, const struct sk_cli_subcommand *subs, size_t n,
                          int argc, char **argv, struct sk_cli *g)
{
    if (argc < 2) {
        sk_cli_group_usage(stderr, group, about, subs, n);
        return SK_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        for (size_t i = 0; argc > 2 && i < n; i++)
            if (strcmp(argv[2], subs[i].name) == 0) {
                subs[i].usage(stdout);
                return 0;
            }
        sk_cli_group_usage(stdout, group, about, subs, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(sub, subs[i].name) == 0 || (subs[i].alias != NULL && strcmp(sub, subs[i].alias) == 0))
            return subs[i].fn(argc - 1, argv + 1, g);
    fprintf(stderr, "skiff %s: unknown command '%s'\n\n", group, sub);
    sk_cli_group_usage(stderr, group, about, subs, n);
    return SK_EXIT_USAGE;
}
