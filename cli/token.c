/* skiff token - API tokens on a skiffd: create (the secret is shown once),
 * ls, revoke. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/util.h"
#include "cli.h"
#include "client.h"
#include "table.h"

static void usage_create(FILE *out)
{
    fprintf(out, "usage: skiff token create [options] NAME\n"
                 "\n"
                 "Create an API token called NAME and print it. This is the only time the\n"
                 "secret is shown: store it now (for example: token = ... in\n"
                 "~/.config/skiff/config, or SKIFF_TOKEN).\n"
                 "\n"
                 "options:\n"
                 "  --ttl SECONDS        the token expires after this long (default: never)\n" SK_CLI_COMMON_HELP);
}

static void usage_ls(FILE *out)
{
    fprintf(out, "usage: skiff token ls [options]\n"
                 "\n"
                 "List every token, revoked and expired ones included (never their secrets).\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

static void usage_revoke(FILE *out)
{
    fprintf(out, "usage: skiff token revoke [options] ID\n"
                 "\n"
                 "Revoke a token: it stops working at once. The last live admin token cannot\n"
                 "be revoked (create another one first).\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

/* parse - options (with --ttl for create); -1 to go on, else the exit code. */
static int parse(const char *prog, int argc, char **argv, struct sk_cli *g, void (*usage)(FILE *), int64_t *ttl)
{
    enum { O_TTL = SK_OPT_FIRST_LOCAL };
    static const struct option with_ttl[] = {
        {"ttl", required_argument, NULL, O_TTL},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", ttl ? with_ttl : with_ttl + 1, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == O_TTL) {
            if (sk_cli_parse_int(optarg, 1, INT64_C(315360000), ttl) < 0)
                return sk_cli_usage_error(prog, "--ttl needs a number of seconds (1 to 315360000), not '%s'", optarg);
            continue;
        }
        if (!sk_cli_common_opt(g, c, optarg))
            return sk_cli_getopt_error(prog, c, argv);
    }
    return -1;
}

static int tok_create(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff token create";
    int64_t ttl = 0;
    int rc = parse(prog, argc, argv, g, usage_create, &ttl);
    if (rc >= 0)
        return rc;
    if (optind + 1 != argc)
        return sk_cli_usage_error(prog, optind == argc ? "missing the token's NAME" : "one NAME, please");
    json_t *body = json_pack("{s:s}", "name", argv[optind]);
    if (ttl > 0)
        json_object_set_new(body, "ttl_seconds", json_integer(ttl));
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) == 0) {
        struct sk_client_error e;
        json_t *answer = NULL;
        if (sk_client_request(&cl, "POST", "/v1/tokens", body, &answer, &e) < 0)
            rc = sk_client_report(&cl, &e);
        else if (g->json)
            sk_cli_print_json(answer);
        else
            printf("%s\n", sk_cli_jstr(answer, "token", ""));
        json_decref(answer);
        sk_client_close(&cl);
    }
    json_decref(body);
    return rc;
}

static int tok_ls(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff token ls";
    int rc = parse(prog, argc, argv, g, usage_ls, NULL);
    if (rc >= 0)
        return rc;
    if (optind != argc)
        return sk_cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) != 0)
        return rc;
    struct sk_client_error e;
    json_t *answer = NULL;
    if (sk_client_request(&cl, "GET", "/v1/tokens", NULL, &answer, &e) < 0) {
        rc = sk_client_report(&cl, &e);
    } else if (g->json) {
        sk_cli_print_json(answer);
    } else {
        static const char *const head[] = {"ID", "NAME", "ROLE", "STATE", "CREATED", "EXPIRES", "LAST USED"};
        struct sk_table t;
        sk_table_init(&t, SK_ARRAY_SIZE(head), head);
        size_t i;
        json_t *tok;
        json_array_foreach(json_object_get(answer, "tokens"), i, tok)
        {
            char created[32], expires[32], used[32];
            const char *row[] = {sk_cli_jstr(tok, "id", ""),
                                 sk_cli_jstr(tok, "name", ""),
                                 sk_cli_jstr(tok, "role", ""),
                                 sk_cli_jstr(tok, "state", ""),
                                 sk_cli_time(json_object_get(tok, "created_at"), created, sizeof(created)),
                                 sk_cli_time(json_object_get(tok, "expires_at"), expires, sizeof(expires)),
                                 sk_cli_time(json_object_get(tok, "last_used_at"), used, sizeof(used))};
            sk_table_add(&t, row);
        }
        sk_table_print(&t, stdout);
        sk_table_release(&t);
    }
    json_decref(answer);
    sk_client_close(&cl);
    return rc;
}

static int tok_revoke(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff token revoke";
    int rc = parse(prog, argc, argv, g, usage_revoke, NULL);
    if (rc >= 0)
        return rc;
    if (optind + 1 != argc)
        return sk_cli_usage_error(prog, optind == argc ? "missing the token ID" : "one token ID, please");
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) != 0)
        return rc;
    _cleanup_free_ char *esc = sk_client_escape(argv[optind], false);
    _cleanup_free_ char *path = xasprintf("/v1/tokens/%s", esc);
    struct sk_client_error e;
    json_t *answer = NULL;
    if (sk_client_request(&cl, "DELETE", path, NULL, &answer, &e) < 0)
        rc = sk_client_report(&cl, &e);
    else if (g->json)
        sk_cli_print_json(answer);
    else
        printf("revoked %s\n", sk_cli_jstr(answer, "id", argv[optind]));
    json_decref(answer);
    sk_client_close(&cl);
    return rc;
}

static const struct sk_cli_subcommand subcommands[] = {
    {"create", NULL, "create a token and print its secret (shown once)", tok_create, usage_create},
    {"ls", "list", "list tokens", tok_ls, usage_ls},
    {"revoke", "rm", "revoke a token", tok_revoke, usage_revoke},
};

#define ABOUT "API tokens of a skiffd server."

void cmd_token_usage(FILE *out)
{
    sk_cli_group_usage(out, "token", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands));
}

int cmd_token(int argc, char **argv, struct sk_cli *g)
{
    return sk_cli_group_dispatch("token", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands), argc, argv, g);
}
