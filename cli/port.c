/* skiff sandbox port - a sandbox's exposed ports: expose, unexpose, ls and
 * connect tokens (docs/ports.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/util.h"
#include "cli.h"
#include "client.h"
#include "table.h"

static void usage_expose(FILE *out)
{
    fprintf(out,
            "usage: skiff sandbox port expose [options] ID PORT\n"
            "\n"
            "Expose PORT of a running sandbox and print where it is reached: an http port\n"
            "(HTTP and WebSocket) at http://<skiffd>/p/<sandbox>/<port>/, a tcp port at\n"
            "tcp://<host>:<port>. An http port needs a token (the API token, or one from\n"
            "`skiff sandbox port token`) unless --public.\n"
            "\n"
            "options:\n"
            "  --tcp                raw TCP on a host port of its own (needs --public or --allow)\n"
            "  --public             reachable without a token\n"
            "  --allow CIDR         only from this client network (repeatable), e.g. 10.0.0.0/8\n" SK_CLI_COMMON_HELP);
}

static void usage_unexpose(FILE *out)
{
    fprintf(out, "usage: skiff sandbox port unexpose [options] ID PORT\n"
                 "\n"
                 "Stop exposing PORT: its connections are closed and its connect tokens stop\n"
                 "working.\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

static void usage_ls(FILE *out)
{
    fprintf(out, "usage: skiff sandbox port ls [options] ID\n"
                 "\n"
                 "List the exposed ports of a sandbox with their URLs.\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

static void usage_token(FILE *out)
{
    fprintf(out, "usage: skiff sandbox port token [options] ID PORT\n"
                 "\n"
                 "Mint a connect token for one client: it opens this http port of this sandbox,\n"
                 "and nothing else, until it expires. Prints a URL that carries it (it works in\n"
                 "a browser); --json shows the token itself.\n"
                 "\n"
                 "options:\n"
                 "  --ttl SECONDS        how long it works (default 3600, at most 2592000)\n" SK_CLI_COMMON_HELP);
}

/* args - options, then exactly `want` arguments (ID [PORT]); -1 to go on,
 * else the exit code. */
static int args(const char *prog, int argc, char **argv, struct sk_cli *g, void (*usage)(FILE *),
                const struct option *longopts, int want, int (*local)(int c, const char *arg, void *ctx), void *ctx)
{
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c >= SK_OPT_FIRST_LOCAL && local != NULL) {
            int rc = local(c, optarg, ctx);
            if (rc >= 0)
                return rc;
            continue;
        }
        if (!sk_cli_common_opt(g, c, optarg))
            return sk_cli_getopt_error(prog, c, argv);
    }
    if (argc - optind != want)
        return sk_cli_usage_error(prog, want == 1 ? "expected the sandbox's ID" : "expected ID and PORT");
    return -1;
}

static int port_arg(const char *prog, const char *s, int64_t *port)
{
    if (sk_cli_parse_int(s, 1, 65535, port) < 0)
        return sk_cli_usage_error(prog, "PORT must be a port number 1-65535, not '%s'", s);
    return -1;
}

/* access_text - "token", "public", plus the allowlist. */
static char *access_text(const json_t *p)
{
    char *s = xstrdup(json_is_true(json_object_get(p, "public")) ? "public" : "token");
    const json_t *cidrs = json_object_get(p, "allow_cidrs");
    for (size_t i = 0; i < json_array_size(cidrs); i++) {
        char *n = xasprintf("%s%s%s", s, i == 0 ? ", from " : " ", json_string_value(json_array_get(cidrs, i)));
        free(s);
        s = n;
    }
    return s;
}

/* call - one API call whose answer is printed as JSON or by `print`. */
static int call(struct sk_cli *g, const char *method, const char *path, const json_t *body,
                void (*print)(const json_t *answer))
{
    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0)
        return rc;
    struct sk_client_error e;
    json_t *answer = NULL;
    if (sk_client_request(&cl, method, path, body, &answer, &e) < 0) {
        rc = sk_client_report(&cl, &e);
    } else {
        if (g->json)
            sk_cli_print_json(answer);
        else
            print(answer);
        rc = 0;
    }
    json_decref(answer);
    sk_client_close(&cl);
    return rc;
}

/* ---- expose ------------------------------------------------------------------------ */

struct expose_opts {
    const char *prog;
    bool tcp, public;
    json_t *allow;
};

enum { O_TCP = SK_OPT_FIRST_LOCAL, O_PUBLIC, O_ALLOW, O_TTL };

static int expose_opt(int c, const char *arg, void *ctx)
{
    struct expose_opts *o = ctx;
    if (c == O_TCP)
        o->tcp = true;
    else if (c == O_PUBLIC)
        o->public = true;
    else if (c == O_ALLOW)
        json_array_append_new(o->allow, json_string(arg));
    return -1;
}

static void print_url(const json_t *p)
{
    printf("%s\n", sk_cli_jstr(p, "url", ""));
}

static int port_expose(int argc, char **argv, struct sk_cli *g)
{
    static const struct option longopts[] = {
        {"tcp", no_argument, NULL, O_TCP},
        {"public", no_argument, NULL, O_PUBLIC},
        {"allow", required_argument, NULL, O_ALLOW},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct expose_opts o = {.prog = "skiff sandbox port expose", .allow = json_array()};
    int64_t port = 0;
    int rc = args(o.prog, argc, argv, g, usage_expose, longopts, 2, expose_opt, &o);
    if (rc < 0)
        rc = port_arg(o.prog, argv[optind + 1], &port);
    if (rc < 0 && o.tcp && !o.public && json_array_size(o.allow) == 0)
        rc = sk_cli_usage_error(o.prog, "a tcp port carries no token: give --public or --allow CIDR");
    if (rc >= 0) {
        json_decref(o.allow);
        return rc;
    }
    json_t *body = json_pack("{s:I}", "port", (json_int_t)port);
    if (o.tcp)
        json_object_set_new(body, "protocol", json_string("tcp"));
    if (o.public)
        json_object_set_new(body, "public", json_true());
    if (json_array_size(o.allow) > 0)
        json_object_set(body, "allow_cidrs", o.allow);
    json_decref(o.allow);
    _cleanup_free_ char *id = sk_client_escape(argv[optind], false);
    _cleanup_free_ char *path = xasprintf("/v1/sandboxes/%s/ports", id);
    rc = call(g, "POST", path, body, print_url);
    json_decref(body);
    return rc;
}

/* ---- unexpose ---------------------------------------------------------------------- */

static void print_port(const json_t *a)
{
    printf("%lld\n", (long long)json_integer_value(json_object_get(a, "port")));
}

static int port_unexpose(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox port unexpose";
    static const struct option longopts[] = {SK_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int64_t port = 0;
    int rc = args(prog, argc, argv, g, usage_unexpose, longopts, 2, NULL, NULL);
    if (rc < 0)
        rc = port_arg(prog, argv[optind + 1], &port);
    if (rc >= 0)
        return rc;
    _cleanup_free_ char *id = sk_client_escape(argv[optind], false);
    _cleanup_free_ char *path = xasprintf("/v1/sandboxes/%s/ports/%lld", id, (long long)port);
    return call(g, "DELETE", path, NULL, print_port);
}

/* ---- ls ---------------------------------------------------------------------------- */

static void print_list(const json_t *a)
{
    static const char *const head[] = {"PORT", "PROTOCOL", "ACCESS", "URL"};
    struct sk_table t;
    sk_table_init(&t, 4, head);
    const json_t *ports = json_object_get(a, "ports");
    for (size_t i = 0; i < json_array_size(ports); i++) {
        const json_t *p = json_array_get(ports, i);
        char num[16];
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(json_object_get(p, "port")));
        _cleanup_free_ char *access = access_text(p);
        const char *row[] = {num, sk_cli_jstr(p, "protocol", ""), access, sk_cli_jstr(p, "url", "")};
        sk_table_add(&t, row);
    }
    sk_table_print(&t, stdout);
    sk_table_release(&t);
}

static int port_ls(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox port ls";
    static const struct option longopts[] = {SK_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int rc = args(prog, argc, argv, g, usage_ls, longopts, 1, NULL, NULL);
    if (rc >= 0)
        return rc;
    _cleanup_free_ char *id = sk_client_escape(argv[optind], false);
    _cleanup_free_ char *path = xasprintf("/v1/sandboxes/%s/ports", id);
    return call(g, "GET", path, NULL, print_list);
}

/* ---- token ------------------------------------------------------------------------- */

static int ttl_opt(int c, const char *arg, void *ctx)
{
    (void)c;
    if (sk_cli_parse_int(arg, 1, 2592000, ctx) < 0)
        return sk_cli_usage_error("skiff sandbox port token",
                                  "--ttl needs a number of seconds (1 to 2592000), not '%s'", arg);
    return -1;
}

static int port_token(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox port token";
    static const struct option longopts[] = {
        {"ttl", required_argument, NULL, O_TTL},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int64_t ttl = 0, port = 0;
    int rc = args(prog, argc, argv, g, usage_token, longopts, 2, ttl_opt, &ttl);
    if (rc < 0)
        rc = port_arg(prog, argv[optind + 1], &port);
    if (rc >= 0)
        return rc;
    json_t *body = json_object();
    if (ttl > 0)
        json_object_set_new(body, "ttl_seconds", json_integer(ttl));
    _cleanup_free_ char *id = sk_client_escape(argv[optind], false);
    _cleanup_free_ char *path = xasprintf("/v1/sandboxes/%s/ports/%lld/connect-tokens", id, (long long)port);
    rc = call(g, "POST", path, body, print_url);
    json_decref(body);
    return rc;
}

/* ---- dispatch ---------------------------------------------------------------------- */

static const struct sk_cli_subcommand subcommands[] = {
    {"expose", NULL, "expose a port of a running sandbox and print its URL", port_expose, usage_expose},
    {"unexpose", "rm", "stop exposing a port (its connections are closed)", port_unexpose, usage_unexpose},
    {"ls", "list", "the exposed ports and their URLs", port_ls, usage_ls},
    {"token", NULL, "a connect token (URL) that opens one port for one client", port_token, usage_token},
};

#define ABOUT "A sandbox's exposed ports, proxied by skiffd (docs/ports.md)."

void cmd_sandbox_port_usage(FILE *out)
{
    sk_cli_group_usage(out, "sandbox port", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands));
}

int cmd_sandbox_port(int argc, char **argv, struct sk_cli *g)
{
    return sk_cli_group_dispatch("sandbox port", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands), argc, argv, g);
}
