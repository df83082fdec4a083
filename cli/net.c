/* skiff sandbox net - a sandbox's network: show it (policy, addresses,
 * denials), change it while it runs, read the denial log
 * (docs/networking.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/util.h"
#include "cli.h"
#include "client.h"
#include "table.h"

static void usage_show(FILE *out)
{
    fprintf(out, "usage: skiff sandbox net show [options] ID\n"
                 "\n"
                 "The sandbox's network policy, its addresses and what was denied (connections\n"
                 "and DNS names refused), with the most recent denials.\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

static void usage_set(FILE *out)
{
    fprintf(out, "usage: skiff sandbox net set [options] ID\n"
                 "\n"
                 "Change a running sandbox's network now. Only what is given changes; a list\n"
                 "given replaces the old one. Connections the new policy denies are cut.\n"
                 "\n"
                 "options:\n"
                 "  --egress             give it a network (mode egress)\n"
                 "  --none               take its network away (loopback only)\n"
                 "  --allow CIDR         reach only these networks (repeatable), e.g. 203.0.113.0/24\n"
                 "  --allow-domain NAME  resolve only these names (repeatable): example.com,\n"
                 "                       *.example.com (every name below it)\n"
                 "  --open               drop both allow lists: every public address\n"
                 "  --deny CIDR          never these networks (repeatable)\n"
                 "  --no-deny            drop the deny list\n"
                 "  --bandwidth MBPS     cap each direction at MBPS Mbit/s ('none': no cap)\n"
                 "  --max-connections N  at most N connections at a time ('none': no cap)\n" SK_CLI_COMMON_HELP);
}

static void usage_log(FILE *out)
{
    fprintf(out, "usage: skiff sandbox net log [options] ID\n"
                 "\n"
                 "The sandbox's most recent network denials, oldest first: connections the\n"
                 "policy refused and DNS names the forwarder refused.\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

enum {
    O_EGRESS = SK_OPT_FIRST_LOCAL,
    O_NONE,
    O_ALLOW,
    O_ALLOW_DOMAIN,
    O_OPEN,
    O_DENY,
    O_NO_DENY,
    O_BANDWIDTH,
    O_MAX_CONN
};

/* id_arg - common options, then exactly the sandbox's ID; -1 to go on, else
 * the exit code. */
static int id_arg(const char *prog, int argc, char **argv, struct sk_cli *g, void (*usage)(FILE *))
{
    static const struct option longopts[] = {SK_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (!sk_cli_common_opt(g, c, optarg))
            return sk_cli_getopt_error(prog, c, argv);
    }
    if (argc - optind != 1)
        return sk_cli_usage_error(prog, "expected the sandbox's ID");
    return -1;
}

/* call - one API call; its answer (caller decrefs) in *answer. */
static int call(struct sk_cli *g, const char *method, const char *id, const json_t *body, json_t **answer)
{
    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0)
        return rc;
    _cleanup_free_ char *esc = sk_client_escape(id, false);
    _cleanup_free_ char *path = xasprintf("/v1/sandboxes/%s/network", esc);
    struct sk_client_error e;
    if (sk_client_request(&cl, method, path, body, answer, &e) < 0)
        rc = sk_client_report(&cl, &e);
    sk_client_close(&cl);
    return rc;
}

/* list_text - "a, b" for a JSON array of strings, `none` for null. */
static char *list_text(const json_t *a, const char *none)
{
    if (!json_is_array(a))
        return xstrdup(none);
    if (json_array_size(a) == 0)
        return xstrdup("(empty: nothing)");
    char *s = xstrdup("");
    for (size_t i = 0; i < json_array_size(a); i++) {
        char *n = xasprintf("%s%s%s", s, i ? ", " : "", json_string_value(json_array_get(a, i)));
        free(s);
        s = n;
    }
    return s;
}

static void print_policy(const json_t *a)
{
    bool egress = strcmp(sk_cli_jstr(a, "mode", ""), "egress") == 0;
    bool open =
        egress && json_is_null(json_object_get(a, "allow_cidrs")) && json_is_null(json_object_get(a, "allow_domains"));
    printf("mode             %s%s\n", sk_cli_jstr(a, "mode", "?"),
           open     ? " (every public address)"
           : egress ? ""
                    : " (loopback only)");
    _cleanup_free_ char *allow = list_text(json_object_get(a, "allow_cidrs"), "-");
    _cleanup_free_ char *domains = list_text(json_object_get(a, "allow_domains"), "-");
    _cleanup_free_ char *deny = list_text(json_object_get(a, "deny_cidrs"), "-");
    printf("allow_cidrs      %s\n", allow);
    printf("allow_domains    %s\n", domains);
    printf("deny_cidrs       %s\n", json_array_size(json_object_get(a, "deny_cidrs")) ? deny : "-");
    const json_t *bw = json_object_get(a, "bandwidth_mbps"), *mc = json_object_get(a, "max_connections");
    if (json_is_integer(bw))
        printf("bandwidth        %lld Mbit/s\n", (long long)json_integer_value(bw));
    else
        printf("bandwidth        no cap\n");
    if (json_is_integer(mc))
        printf("max connections  %lld\n", (long long)json_integer_value(mc));
    else
        printf("max connections  no cap\n");
    printf("network group    %s\n", sk_cli_jstr(a, "network_group", "-"));
}

/* log_what - one denial in words. */
static char *log_what(const json_t *e)
{
    if (strcmp(sk_cli_jstr(e, "kind", ""), "dns") == 0)
        return xasprintf("DNS %s %s refused", sk_cli_jstr(e, "type", "?"), sk_cli_jstr(e, "name", "?"));
    const json_t *port = json_object_get(e, "port");
    const char *dst = sk_cli_jstr(e, "destination", "?");
    if (json_is_integer(port))
        return xasprintf("%s to %s%s%s port %lld denied", sk_cli_jstr(e, "protocol", "?"), strchr(dst, ':') ? "[" : "",
                         dst, strchr(dst, ':') ? "]" : "", (long long)json_integer_value(port));
    return xasprintf("%s to %s denied", sk_cli_jstr(e, "protocol", "?"), dst);
}

static void print_log(const json_t *a)
{
    static const char *const head[] = {"TIME", "DENIED"};
    struct sk_table t;
    sk_table_init(&t, 2, head);
    const json_t *log = json_object_get(a, "log");
    for (size_t i = 0; i < json_array_size(log); i++) {
        const json_t *e = json_array_get(log, i);
        _cleanup_free_ char *what = log_what(e);
        const char *row[] = {sk_cli_jstr(e, "time", "?"), what};
        sk_table_add(&t, row);
    }
    sk_table_print(&t, stdout);
    sk_table_release(&t);
}

static void print_show(const json_t *a)
{
    print_policy(a);
    printf("running          %s\n", json_is_true(json_object_get(a, "running")) ? "yes" : "no");
    printf("interface        %s\n", sk_cli_jstr(a, "interface", "-"));
    const json_t *addrs = json_object_get(a, "addresses");
    static const char *const keys[] = {"ipv4", "ipv6", "gateway", "group", "dns"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(keys); i++)
        if (json_is_string(json_object_get(addrs, keys[i])))
            printf("%-16s %s\n", keys[i], sk_cli_jstr(addrs, keys[i], ""));
    const json_t *denied = json_object_get(a, "denied");
    printf("denied           %lld connection packet(s), %lld DNS name(s)\n",
           (long long)json_integer_value(json_object_get(denied, "connections")),
           (long long)json_integer_value(json_object_get(denied, "dns")));
    if (json_array_size(json_object_get(a, "log")) > 0) {
        printf("\n");
        print_log(a);
    }
}

static int net_show(int argc, char **argv, struct sk_cli *g)
{
    int rc = id_arg("skiff sandbox net show", argc, argv, g, usage_show);
    if (rc >= 0)
        return rc;
    json_t *answer = NULL;
    rc = call(g, "GET", argv[optind], NULL, &answer);
    if (rc == 0) {
        if (g->json)
            sk_cli_print_json(answer);
        else
            print_show(answer);
    }
    json_decref(answer);
    return rc;
}

static int net_log(int argc, char **argv, struct sk_cli *g)
{
    int rc = id_arg("skiff sandbox net log", argc, argv, g, usage_log);
    if (rc >= 0)
        return rc;
    json_t *answer = NULL;
    rc = call(g, "GET", argv[optind], NULL, &answer);
    if (rc == 0) {
        if (g->json)
            sk_cli_print_json(json_object_get(answer, "log"));
        else
            print_log(answer);
    }
    json_decref(answer);
    return rc;
}

/* list_add - append arg to body[key] (a list this command replaces). */
static void list_add(json_t *body, const char *key, const char *arg)
{
    json_t *a = json_object_get(body, key);
    if (!json_is_array(a)) {
        a = json_array();
        json_object_set_new(body, key, a);
    }
    json_array_append_new(a, json_string(arg));
}

static int cap_arg(const char *prog, const char *opt, const char *arg, int64_t max, json_t *body, const char *key)
{
    int64_t n = 0;
    if (strcmp(arg, "none") == 0) {
        json_object_set_new(body, key, json_null());
        return -1;
    }
    if (sk_cli_parse_int(arg, 1, max, &n) < 0)
        return sk_cli_usage_error(prog, "%s needs a number from 1 to %lld or 'none', not '%s'", opt, (long long)max,
                                  arg);
    json_object_set_new(body, key, json_integer(n));
    return -1;
}

static int net_set(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox net set";
    static const struct option longopts[] = {
        {"egress", no_argument, NULL, O_EGRESS},
        {"none", no_argument, NULL, O_NONE},
        {"allow", required_argument, NULL, O_ALLOW},
        {"allow-domain", required_argument, NULL, O_ALLOW_DOMAIN},
        {"open", no_argument, NULL, O_OPEN},
        {"deny", required_argument, NULL, O_DENY},
        {"no-deny", no_argument, NULL, O_NO_DENY},
        {"bandwidth", required_argument, NULL, O_BANDWIDTH},
        {"max-connections", required_argument, NULL, O_MAX_CONN},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    json_t *body = json_object();
    int rc = -1, c;
    bool open = false;
    sk_cli_reset_getopt();
    while (rc < 0 && (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_EGRESS:
        case O_NONE: json_object_set_new(body, "mode", json_string(c == O_EGRESS ? "egress" : "none")); break;
        case O_ALLOW: list_add(body, "allow_cidrs", optarg); break;
        case O_ALLOW_DOMAIN: list_add(body, "allow_domains", optarg); break;
        case O_DENY: list_add(body, "deny_cidrs", optarg); break;
        case O_NO_DENY: json_object_set_new(body, "deny_cidrs", json_null()); break;
        case O_OPEN: open = true; break;
        case O_BANDWIDTH: rc = cap_arg(prog, "--bandwidth", optarg, 100000, body, "bandwidth_mbps"); break;
        case O_MAX_CONN: rc = cap_arg(prog, "--max-connections", optarg, 1000000, body, "max_connections"); break;
        case 'h':
            usage_set(stdout);
            rc = 0;
            break;
        default:
            if (!sk_cli_common_opt(g, c, optarg))
                rc = sk_cli_getopt_error(prog, c, argv);
        }
    }
    if (rc < 0 && open && (json_object_get(body, "allow_cidrs") || json_object_get(body, "allow_domains")))
        rc = sk_cli_usage_error(prog, "--open drops the allow lists: it cannot go with --allow or --allow-domain");
    if (rc < 0 && open) {
        json_object_set_new(body, "allow_cidrs", json_null());
        json_object_set_new(body, "allow_domains", json_null());
    }
    if (rc < 0 && argc - optind != 1)
        rc = sk_cli_usage_error(prog, "expected the sandbox's ID");
    if (rc < 0 && json_object_size(body) == 0)
        rc = sk_cli_usage_error(prog, "nothing to change (see --help)");
    if (rc >= 0) {
        json_decref(body);
        return rc;
    }
    json_t *answer = NULL;
    rc = call(g, "PATCH", argv[optind], body, &answer);
    if (rc == 0) {
        if (g->json)
            sk_cli_print_json(answer);
        else
            print_policy(answer);
    }
    json_decref(answer);
    json_decref(body);
    return rc;
}

static const struct sk_cli_subcommand subcommands[] = {
    {"show", "get", "the policy, addresses and denials", net_show, usage_show},
    {"set", NULL, "change the policy of a running sandbox, at once", net_set, usage_set},
    {"log", NULL, "the most recent denials", net_log, usage_log},
};

#define ABOUT \
    "A sandbox's network (docs/networking.md): none (loopback only) by default; egress\n" \
    "with a policy the host enforces: allowed and denied networks, allowed DNS names,\n" \
    "caps. Give one at create with `skiff sandbox create --egress [--allow ...]`."

void cmd_sandbox_net_usage(FILE *out)
{
    sk_cli_group_usage(out, "sandbox net", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands));
}

int cmd_sandbox_net(int argc, char **argv, struct sk_cli *g)
{
    return sk_cli_group_dispatch("sandbox net", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands), argc, argv, g);
}
