/* skiff sandbox - sandboxes on a skiffd: create, ls, get, rm, logs, wait,
 * tag here; exec and shell in exec.c, cp in cp.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "base/util.h"
#include "cli.h"
#include "client.h"
#include "follow.h"
#include "table.h"

#define WAIT_POLL_MAX_S 600 /* one long poll; the server allows up to 3600 */

/* ---- usage ------------------------------------------------------------------------- */

static void usage_create(FILE *out)
{
    fprintf(out, "usage: skiff sandbox create [options] [-- ENTRYPOINT [ARGS...]]\n"
                 "\n"
                 "Create a sandbox and print its id. With an ENTRYPOINT the sandbox runs it\n"
                 "and ends when it exits (reason 'exited'); without one it waits for execs.\n"
                 "\n"
                 "options:\n"
                 "  --name NAME          a unique name, usable wherever an id is\n"
                 "  --image host|PATH    root file system: the host's /usr (default) or a rootfs dir\n"
                 "  --cpu CORES          CPU quota in cores (e.g. 0.5)\n"
                 "  --memory MIB         memory limit in MiB (or with a unit: 512M, 2G)\n"
                 "  --pids N             maximum number of processes\n"
                 "  --disk MIB           size of the writable layer in MiB (or 1G, ...)\n"
                 "  --timeout SECONDS    end the sandbox after this long (reason 'timeout';\n"
                 "                       the server's default is 300)\n"
                 "  --idle-timeout SECONDS  end it after this long without API activity ('idle')\n"
                 "  --env K=V            an environment variable for every process (repeatable)\n"
                 "  --workdir DIR        working directory of its processes\n"
                 "  --tag K=V            a tag (repeatable); find sandboxes with ls --tag\n"
                 "  --port PORT          expose an http port once it runs (repeatable; a token is\n"
                 "                       needed: see `skiff sandbox port`)\n"
                 "  --egress             a network (default: none, loopback only); with no --allow\n"
                 "                       or --allow-domain: every public address\n"
                 "  --allow CIDR         egress only to these networks (repeatable)\n"
                 "  --allow-domain NAME  egress to names it may resolve (repeatable; *.example.com)\n"
                 "  --deny CIDR          never these networks (repeatable)\n"
                 "  --network-group NAME reach the sandboxes of this group by name\n"
                 "                       (see `skiff sandbox net`)\n" SK_CLI_COMMON_HELP);
}

static void usage_ls(FILE *out)
{
    fprintf(out, "usage: skiff sandbox ls [options]\n"
                 "\n"
                 "List sandboxes, newest first: running ones and ended ones that are still\n"
                 "retained. One page (--limit) unless --all.\n"
                 "\n"
                 "options:\n"
                 "  --state STATE        only sandboxes in STATE (creating, running, terminated)\n"
                 "  --tag K=V            only sandboxes with this tag (repeatable: all must match)\n"
                 "  --name NAME          only the sandbox called NAME\n"
                 "  --limit N            at most N per page (1-1000, default 100)\n"
                 "  --all                every page\n" SK_CLI_COMMON_HELP);
}

static void usage_get(FILE *out)
{
    fprintf(out, "usage: skiff sandbox get [options] ID\n"
                 "\n"
                 "Show one sandbox (by id or name): state, how it ended, limits, tags.\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

static void usage_rm(FILE *out)
{
    fprintf(out, "usage: skiff sandbox rm [options] ID...\n"
                 "\n"
                 "Terminate sandboxes (reason 'terminated', recorded with the token's id) and\n"
                 "print their ids. An ended sandbox stays queryable for the retention period;\n"
                 "terminating it again is not an error.\n"
                 "\n"
                 "options:\n" SK_CLI_COMMON_HELP);
}

static void usage_logs(FILE *out)
{
    fprintf(out, "usage: skiff sandbox logs [options] ID\n"
                 "\n"
                 "Print the entrypoint's output so far: its stdout on stdout, its stderr on\n"
                 "stderr. A dropped connection resumes where it left off.\n"
                 "\n"
                 "options:\n"
                 "  -f, --follow         keep printing until the entrypoint ends\n" SK_CLI_CONN_HELP);
}

static void usage_wait(FILE *out)
{
    fprintf(out,
            "usage: skiff sandbox wait [options] ID\n"
            "\n"
            "Wait until the sandbox ends and print why (exited with its code, timeout,\n"
            "idle, oom, terminated, error, lost). Exits 0 once it has ended, 124 when\n"
            "--timeout runs out first.\n"
            "\n"
            "options:\n"
            "  --timeout SECONDS    give up after this long (default: wait as long as it takes)\n" SK_CLI_COMMON_HELP);
}

static void usage_tag(FILE *out)
{
    fprintf(out, "usage: skiff sandbox tag [options] ID K=V...\n"
                 "\n"
                 "Replace the sandbox's tags with the given ones and print them.\n"
                 "\n"
                 "options:\n"
                 "  --clear              remove every tag (no K=V needed)\n" SK_CLI_COMMON_HELP);
}

/* ---- shared ------------------------------------------------------------------------ */

/* sandbox_path - "/v1/sandboxes/<id><suffix>" with the id escaped; freed by
 * the caller. */
static char *sandbox_path(const char *id, const char *suffix)
{
    _cleanup_free_ char *esc = sk_client_escape(id, false);
    return xasprintf("/v1/sandboxes/%s%s", esc, suffix);
}

/* reason_text - "exited (code 4)", "terminated (by token ...)", ...; buf. */
static const char *reason_text(const json_t *sb, char *buf, size_t size)
{
    const char *reason = sk_cli_jstr(sb, "reason", NULL);
    const char *detail = sk_cli_jstr(sb, "reason_detail", NULL);
    json_t *code = json_object_get(sb, "exit_code");
    if (reason == NULL)
        snprintf(buf, size, "-");
    else if (strcmp(reason, "exited") == 0 && json_is_integer(code))
        snprintf(buf, size, "exited (code %lld)", (long long)json_integer_value(code));
    else if (strcmp(reason, "terminated") == 0 && detail != NULL)
        snprintf(buf, size, "terminated (by token %s)", detail);
    else if (detail != NULL && detail[0] != '\0')
        snprintf(buf, size, "%s (%s)", reason, detail);
    else
        snprintf(buf, size, "%s", reason);
    return buf;
}

/* tags_text - "k=v,k2=v2" (sorted as the server stores them); freed by the
 * caller. */
static char *tags_text(const json_t *tags)
{
    size_t cap = 1, len = 0;
    char *out = xcalloc(1, 1);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)tags, k, v)
    {
        const char *val = json_string_value(v);
        size_t need = strlen(k) + (val ? strlen(val) : 0) + 3;
        out = xrealloc(out, cap += need);
        len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", len ? "," : "", k, val ? val : "");
    }
    return out;
}

static int report(const struct sk_client *c, const struct sk_client_error *e)
{
    return sk_client_report(c, e);
}

/* ---- create ----------------------------------------------------------------------- */

static int sb_create(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox create";
    enum {
        O_NAME = SK_OPT_FIRST_LOCAL,
        O_IMAGE,
        O_CPU,
        O_MEMORY,
        O_PIDS,
        O_DISK,
        O_TIMEOUT,
        O_IDLE,
        O_ENV,
        O_WORKDIR,
        O_TAG,
        O_PORT,
        O_EGRESS,
        O_ALLOW,
        O_ALLOW_DOMAIN,
        O_DENY,
        O_GROUP
    };
    static const struct option longopts[] = {
        {"name", required_argument, NULL, O_NAME},
        {"image", required_argument, NULL, O_IMAGE},
        {"cpu", required_argument, NULL, O_CPU},
        {"memory", required_argument, NULL, O_MEMORY},
        {"pids", required_argument, NULL, O_PIDS},
        {"disk", required_argument, NULL, O_DISK},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"env", required_argument, NULL, O_ENV},
        {"workdir", required_argument, NULL, O_WORKDIR},
        {"tag", required_argument, NULL, O_TAG},
        {"port", required_argument, NULL, O_PORT},
        {"egress", no_argument, NULL, O_EGRESS},
        {"allow", required_argument, NULL, O_ALLOW},
        {"allow-domain", required_argument, NULL, O_ALLOW_DOMAIN},
        {"deny", required_argument, NULL, O_DENY},
        {"network-group", required_argument, NULL, O_GROUP},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int dd = sk_cli_dashdash(argc, argv);
    json_t *body = json_object(), *env = json_object(), *tags = json_object();
    json_t *ports = json_array();
    json_t *network = json_object(); /* docs/networking.md */
    int rc = -1, c;
    sk_cli_reset_getopt();
    while (rc < 0 && (c = getopt_long(dd, argv, ":h", longopts, NULL)) != -1) {
        int64_t n = 0;
        const char *k, *v;
        switch (c) {
        case O_NAME: json_object_set_new(body, "name", json_string(optarg)); break;
        case O_IMAGE: json_object_set_new(body, "image", json_string(optarg)); break;
        case O_WORKDIR: json_object_set_new(body, "workdir", json_string(optarg)); break;
        case O_CPU: {
            char *end = NULL;
            errno = 0;
            double cpu = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(cpu > 0) || cpu > 1024)
                rc = sk_cli_usage_error(prog, "--cpu needs a number of cores (0.01 to 1024), not '%s'", optarg);
            else
                json_object_set_new(body, "cpu", json_real(cpu));
            break;
        }
        case O_MEMORY:
        case O_DISK:
            if (sk_cli_parse_mib(optarg, &n) < 0)
                rc = sk_cli_usage_error(prog, "--%s needs a size in MiB (256, or 512M, 2G), not '%s'",
                                        c == O_MEMORY ? "memory" : "disk", optarg);
            else
                json_object_set_new(body, c == O_MEMORY ? "memory" : "disk", json_integer(n));
            break;
        case O_PIDS:
            if (sk_cli_parse_int(optarg, 1, 4194304, &n) < 0)
                rc = sk_cli_usage_error(prog, "--pids needs a positive integer, not '%s'", optarg);
            else
                json_object_set_new(body, "pids", json_integer(n));
            break;
        case O_TIMEOUT:
        case O_IDLE:
            if (sk_cli_parse_int(optarg, 1, INT64_C(1) << 40, &n) < 0)
                rc = sk_cli_usage_error(prog, "--%s needs a positive number of seconds, not '%s'",
                                        c == O_TIMEOUT ? "timeout" : "idle-timeout", optarg);
            else
                json_object_set_new(body, c == O_TIMEOUT ? "timeout" : "idle_timeout", json_integer(n));
            break;
        case O_ENV:
        case O_TAG:
            if (sk_cli_parse_kv(optarg, &k, &v) < 0)
                rc = sk_cli_usage_error(prog, "--%s needs K=V, not '%s'", c == O_ENV ? "env" : "tag", optarg);
            else
                json_object_set_new(c == O_ENV ? env : tags, k, json_string(v));
            break;
        case O_PORT:
            if (sk_cli_parse_int(optarg, 1, 65535, &n) < 0)
                rc = sk_cli_usage_error(prog, "--port needs a port number 1-65535, not '%s'", optarg);
            else
                json_array_append_new(ports, json_integer(n));
            break;
        case O_EGRESS: json_object_set_new(network, "mode", json_string("egress")); break;
        case O_ALLOW:
        case O_ALLOW_DOMAIN:
        case O_DENY: {
            const char *key = c == O_ALLOW ? "allow_cidrs" : c == O_DENY ? "deny_cidrs" : "allow_domains";
            if (json_object_get(network, key) == NULL)
                json_object_set_new(network, key, json_array());
            json_array_append_new(json_object_get(network, key), json_string(optarg));
            json_object_set_new(network, "mode", json_string("egress"));
            break;
        }
        case O_GROUP: json_object_set_new(body, "network_group", json_string(optarg)); break;
        case 'h':
            usage_create(stdout);
            rc = 0;
            break;
        default:
            if (!sk_cli_common_opt(g, c, optarg))
                rc = sk_cli_getopt_error(prog, c, argv);
        }
    }
    if (rc < 0 && optind < dd)
        rc = sk_cli_usage_error(prog, "unexpected argument '%s' (the entrypoint goes after --)", argv[optind]);
    if (rc < 0 && dd < argc && dd + 1 == argc)
        rc = sk_cli_usage_error(prog, "an empty entrypoint after --");
    if (json_array_size(ports) > 0)
        json_object_set(body, "ports", ports);
    json_decref(ports);
    if (json_object_size(network) > 0)
        json_object_set(body, "network", network);
    json_decref(network);
    if (rc >= 0) {
        json_decref(body);
        json_decref(env);
        json_decref(tags);
        return rc;
    }
    if (json_object_size(env) > 0)
        json_object_set(body, "env", env);
    if (json_object_size(tags) > 0)
        json_object_set(body, "tags", tags);
    json_decref(env);
    json_decref(tags);
    if (dd + 1 < argc) {
        json_t *ep = json_array();
        for (int i = dd + 1; i < argc; i++)
            json_array_append_new(ep, json_string(argv[i]));
        json_object_set_new(body, "entrypoint", ep);
    }

    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) != 0) {
        json_decref(body);
        return rc;
    }
    struct sk_client_error e;
    json_t *answer = NULL;
    if (sk_client_request(&cl, "POST", "/v1/sandboxes", body, &answer, &e) < 0) {
        rc = report(&cl, &e);
    } else {
        if (g->json)
            sk_cli_print_json(answer);
        else
            printf("%s\n", sk_cli_jstr(answer, "id", ""));
        rc = 0;
    }
    json_decref(answer);
    json_decref(body);
    sk_client_close(&cl);
    return rc;
}

/* ---- ls ---------------------------------------------------------------------------- */

static void query_add(char **q, const char *key, const char *value)
{
    _cleanup_free_ char *esc = sk_client_escape(value, false);
    char *next = xasprintf("%s%s%s=%s", *q, (*q)[0] ? "&" : "?", key, esc);
    free(*q);
    *q = next;
}

static int sb_ls(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox ls";
    enum { O_STATE = SK_OPT_FIRST_LOCAL, O_TAG, O_NAME, O_LIMIT, O_ALL };
    static const struct option longopts[] = {
        {"state", required_argument, NULL, O_STATE},
        {"tag", required_argument, NULL, O_TAG},
        {"name", required_argument, NULL, O_NAME},
        {"limit", required_argument, NULL, O_LIMIT},
        {"all", no_argument, NULL, O_ALL},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *query = xstrdup("");
    _cleanup_free_ char *tagq = xstrdup("");
    bool all = false;
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int64_t n = 0;
        const char *k, *v;
        switch (c) {
        case O_STATE: query_add(&query, "state", optarg); break;
        case O_NAME: query_add(&query, "name", optarg); break;
        case O_LIMIT:
            if (sk_cli_parse_int(optarg, 1, 1000, &n) < 0)
                return sk_cli_usage_error(prog, "--limit needs a number from 1 to 1000, not '%s'", optarg);
            query_add(&query, "limit", optarg);
            break;
        case O_ALL: all = true; break;
        case O_TAG: {
            if (sk_cli_parse_kv(optarg, &k, &v) < 0 || strchr(k, ',') || strchr(k, ':') || strchr(v, ','))
                return sk_cli_usage_error(prog, "--tag needs K=V (without ',' or a ':' in K), not '%s'", optarg);
            char *next = xasprintf("%s%s%s:%s", tagq, tagq[0] ? "," : "", k, v);
            free(tagq);
            tagq = next;
            break;
        }
        case 'h': usage_ls(stdout); return 0;
        default:
            if (!sk_cli_common_opt(g, c, optarg))
                return sk_cli_getopt_error(prog, c, argv);
        }
    }
    if (optind < argc)
        return sk_cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (tagq[0])
        query_add(&query, "tag", tagq);

    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0)
        return rc;
    json_t *items = json_array();
    json_t *next_cursor = json_null();
    _cleanup_free_ char *cursor = NULL;
    struct sk_client_error e;
    for (;;) {
        _cleanup_free_ char *q = xstrdup(query);
        if (cursor != NULL)
            query_add(&q, "cursor", cursor);
        _cleanup_free_ char *path = xasprintf("/v1/sandboxes%s", q);
        json_t *page = NULL;
        if (sk_client_request(&cl, "GET", path, NULL, &page, &e) < 0) {
            rc = report(&cl, &e);
            break;
        }
        json_array_extend(items, json_object_get(page, "sandboxes"));
        const char *nc = sk_cli_jstr(page, "next_cursor", NULL);
        free(cursor);
        cursor = nc ? xstrdup(nc) : NULL;
        json_decref(page);
        if (cursor == NULL || !all)
            break;
    }
    if (rc == 0) {
        if (cursor != NULL) {
            json_decref(next_cursor);
            next_cursor = json_string(cursor);
        }
        if (g->json) {
            json_t *o = json_object();
            json_object_set(o, "sandboxes", items);
            json_object_set(o, "next_cursor", next_cursor);
            sk_cli_print_json(o);
            json_decref(o);
        } else {
            static const char *const head[] = {"ID", "NAME", "STATE", "REASON", "CREATED", "TAGS"};
            struct sk_table t;
            sk_table_init(&t, SK_ARRAY_SIZE(head), head);
            size_t i;
            json_t *sb;
            json_array_foreach(items, i, sb)
            {
                char reason[256], created[32];
                _cleanup_free_ char *tags = tags_text(json_object_get(sb, "tags"));
                const char *row[] = {sk_cli_jstr(sb, "id", ""),
                                     sk_cli_jstr(sb, "name", ""),
                                     sk_cli_jstr(sb, "state", ""),
                                     reason_text(sb, reason, sizeof(reason)),
                                     sk_cli_time(json_object_get(sb, "created_at"), created, sizeof(created)),
                                     tags};
                sk_table_add(&t, row);
            }
            sk_table_print(&t, stdout);
            sk_table_release(&t);
            if (cursor != NULL)
                fprintf(stderr, "skiff: there are more sandboxes: use --all (or a larger --limit)\n");
        }
    }
    json_decref(items);
    json_decref(next_cursor);
    sk_client_close(&cl);
    return rc;
}

/* ---- get, rm ----------------------------------------------------------------------- */

static void print_sandbox(const json_t *sb)
{
    char reason[512], t1[32], t2[32], t3[32];
    _cleanup_free_ char *tags = tags_text(json_object_get(sb, "tags"));
    _cleanup_free_ char *spec = json_dumps(json_object_get(sb, "spec"), JSON_COMPACT | JSON_SORT_KEYS);
    json_t *code = json_object_get(sb, "exit_code");
    printf("id:         %s\n", sk_cli_jstr(sb, "id", "-"));
    printf("name:       %s\n", sk_cli_jstr(sb, "name", "-"));
    printf("state:      %s\n", sk_cli_jstr(sb, "state", "-"));
    printf("reason:     %s\n", reason_text(sb, reason, sizeof(reason)));
    if (json_is_integer(code))
        printf("exit code:  %lld\n", (long long)json_integer_value(code));
    else
        printf("exit code:  -\n");
    printf("created:    %s\n", sk_cli_time(json_object_get(sb, "created_at"), t1, sizeof(t1)));
    printf("started:    %s\n", sk_cli_time(json_object_get(sb, "started_at"), t2, sizeof(t2)));
    printf("ended:      %s\n", sk_cli_time(json_object_get(sb, "ended_at"), t3, sizeof(t3)));
    printf("tags:       %s\n", tags[0] ? tags : "-");
    printf("spec:       %s\n", spec ? spec : "{}");
}

/* parse_common_only - a command with only the common options; -1 to go on,
 * else the exit code (after --help, 0). */
static int parse_common_only(const char *prog, int argc, char **argv, struct sk_cli *g, void (*usage_fn)(FILE *))
{
    static const struct option longopts[] = {SK_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage_fn(stdout);
            return 0;
        }
        if (!sk_cli_common_opt(g, c, optarg))
            return sk_cli_getopt_error(prog, c, argv);
    }
    return -1;
}

static int sb_get(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox get";
    int rc = parse_common_only(prog, argc, argv, g, usage_get);
    if (rc >= 0)
        return rc;
    if (optind + 1 != argc)
        return sk_cli_usage_error(prog, optind == argc ? "missing the sandbox ID" : "one sandbox ID, please");
    const char *id = argv[optind];
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) != 0)
        return rc;
    _cleanup_free_ char *path = sandbox_path(id, "");
    struct sk_client_error e;
    json_t *sb = NULL;
    if (sk_client_request(&cl, "GET", path, NULL, &sb, &e) < 0) {
        rc = report(&cl, &e);
    } else {
        if (g->json)
            sk_cli_print_json(sb);
        else
            print_sandbox(sb);
    }
    json_decref(sb);
    sk_client_close(&cl);
    return rc;
}

static int sb_rm(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox rm";
    int rc = parse_common_only(prog, argc, argv, g, usage_rm);
    if (rc >= 0)
        return rc;
    if (optind == argc)
        return sk_cli_usage_error(prog, "missing the sandbox ID");
    struct sk_client cl;
    if ((rc = sk_client_connect(&cl, g)) != 0)
        return rc;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *path = sandbox_path(argv[i], "/terminate");
        struct sk_client_error e;
        json_t *sb = NULL;
        if (sk_client_request(&cl, "POST", path, NULL, &sb, &e) < 0) {
            int r = report(&cl, &e);
            if (rc == 0)
                rc = r;
        } else if (g->json) {
            sk_cli_print_json(sb);
        } else {
            printf("%s\n", sk_cli_jstr(sb, "id", argv[i]));
        }
        json_decref(sb);
    }
    sk_client_close(&cl);
    return rc;
}

/* ---- logs ------------------------------------------------------------------------- */

static int sb_logs(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox logs";
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        SK_CLI_CONN_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool follow = false;
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":hf", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage_logs(stdout);
            return 0;
        }
        if (c == 'f')
            follow = true;
        else if (!sk_cli_common_opt(g, c, optarg))
            return sk_cli_getopt_error(prog, c, argv);
    }
    if (optind + 1 != argc)
        return sk_cli_usage_error(prog, optind == argc ? "missing the sandbox ID" : "one sandbox ID, please");
    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0)
        return rc;
    _cleanup_free_ char *path = sandbox_path(argv[optind], "/logs");
    struct sk_follow_opts fo = {
        .output_path = path,
        .follow = follow,
        .stdout_fd = STDOUT_FILENO,
        .stderr_fd = STDERR_FILENO,
        .stdin_fd = -1,
        .tty_fd = -1,
    };
    fflush(stdout);
    struct sk_client_error e;
    if (sk_follow(&cl, &fo, &e) < 0)
        rc = report(&cl, &e);
    sk_client_close(&cl);
    return rc;
}

/* ---- wait ------------------------------------------------------------------------- */

static int sb_wait(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox wait";
    enum { O_TIMEOUT = SK_OPT_FIRST_LOCAL };
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, O_TIMEOUT},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    int64_t timeout_s = -1;
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_TIMEOUT:
            if (sk_cli_parse_int(optarg, 0, INT64_C(1) << 40, &timeout_s) < 0)
                return sk_cli_usage_error(prog, "--timeout needs a number of seconds, not '%s'", optarg);
            break;
        case 'h': usage_wait(stdout); return 0;
        default:
            if (!sk_cli_common_opt(g, c, optarg))
                return sk_cli_getopt_error(prog, c, argv);
        }
    }
    if (optind + 1 != argc)
        return sk_cli_usage_error(prog, optind == argc ? "missing the sandbox ID" : "one sandbox ID, please");
    const char *id = argv[optind];
    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0)
        return rc;
    int64_t deadline = timeout_s >= 0 ? sk_now_ns() + timeout_s * 1000000000LL : 0;
    json_t *sb = NULL;
    struct sk_client_error e;
    for (;;) {
        int64_t poll_s = WAIT_POLL_MAX_S;
        if (deadline != 0) {
            int64_t left = (deadline - sk_now_ns() + 999999999LL) / 1000000000LL;
            poll_s = left < 0 ? 0 : left < poll_s ? left : poll_s;
        }
        _cleanup_free_ char *base = sandbox_path(id, "/wait");
        _cleanup_free_ char *path = xasprintf("%s?timeout=%lld", base, (long long)poll_s);
        json_decref(sb);
        sb = NULL;
        if (sk_client_request(&cl, "GET", path, NULL, &sb, &e) < 0) {
            rc = report(&cl, &e);
            break;
        }
        if (!json_is_null(json_object_get(sb, "reason")) && json_object_get(sb, "reason") != NULL)
            break;
        if (deadline != 0 && sk_now_ns() >= deadline) {
            rc = SK_EXIT_TIMEOUT;
            break;
        }
    }
    if (sb != NULL && (rc == 0 || rc == SK_EXIT_TIMEOUT)) {
        char reason[512];
        if (g->json)
            sk_cli_print_json(sb);
        else if (rc == 0)
            printf("%s\n", reason_text(sb, reason, sizeof(reason)));
        if (rc == SK_EXIT_TIMEOUT)
            fprintf(stderr, "skiff: sandbox '%s' is still %s after %lld s\n", id, sk_cli_jstr(sb, "state", "running"),
                    (long long)timeout_s);
    }
    json_decref(sb);
    sk_client_close(&cl);
    return rc;
}

/* ---- tag -------------------------------------------------------------------------- */

static int sb_tag(int argc, char **argv, struct sk_cli *g)
{
    const char *prog = "skiff sandbox tag";
    enum { O_CLEAR = SK_OPT_FIRST_LOCAL };
    static const struct option longopts[] = {
        {"clear", no_argument, NULL, O_CLEAR},
        SK_CLI_COMMON_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    bool clear = false;
    int c;
    sk_cli_reset_getopt();
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_CLEAR: clear = true; break;
        case 'h': usage_tag(stdout); return 0;
        default:
            if (!sk_cli_common_opt(g, c, optarg))
                return sk_cli_getopt_error(prog, c, argv);
        }
    }
    if (optind == argc)
        return sk_cli_usage_error(prog, "missing the sandbox ID");
    if (optind + 1 == argc && !clear)
        return sk_cli_usage_error(prog, "no tags given: K=V..., or --clear to remove them all");
    if (optind + 1 < argc && clear)
        return sk_cli_usage_error(prog, "--clear takes no K=V");
    const char *id = argv[optind];
    json_t *tags = json_object();
    for (int i = optind + 1; i < argc; i++) {
        const char *k, *v;
        if (sk_cli_parse_kv(argv[i], &k, &v) < 0) {
            json_decref(tags);
            return sk_cli_usage_error(prog, "a tag is K=V, not '%s'", argv[i]);
        }
        json_object_set_new(tags, k, json_string(v));
    }
    json_t *body = json_pack("{s:o}", "tags", tags);
    struct sk_client cl;
    int rc = sk_client_connect(&cl, g);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    _cleanup_free_ char *path = sandbox_path(id, "/tags");
    struct sk_client_error e;
    json_t *sb = NULL;
    if (sk_client_request(&cl, "PUT", path, body, &sb, &e) < 0) {
        rc = report(&cl, &e);
    } else if (g->json) {
        sk_cli_print_json(sb);
    } else {
        _cleanup_free_ char *text = tags_text(json_object_get(sb, "tags"));
        printf("%s\n", text[0] ? text : "-");
    }
    json_decref(sb);
    json_decref(body);
    sk_client_close(&cl);
    return rc;
}

/* ---- dispatch --------------------------------------------------------------------- */

static const struct sk_cli_subcommand subcommands[] = {
    {"create", NULL, "create a sandbox and print its id", sb_create, usage_create},
    {"ls", "list", "list sandboxes (filter by state, tag, name)", sb_ls, usage_ls},
    {"get", NULL, "show one sandbox", sb_get, usage_get},
    {"exec", NULL, "run a command in a sandbox, streaming its output", cmd_sandbox_exec, cmd_sandbox_exec_usage},
    {"shell", NULL, "an interactive shell in a sandbox (a terminal)", cmd_sandbox_shell, cmd_sandbox_shell_usage},
    {"cp", NULL, "copy files and directories in or out (ID:/path)", cmd_sandbox_cp, cmd_sandbox_cp_usage},
    {"rm", "terminate", "terminate sandboxes", sb_rm, usage_rm},
    {"logs", NULL, "the entrypoint's output", sb_logs, usage_logs},
    {"wait", NULL, "wait until a sandbox ends and print why", sb_wait, usage_wait},
    {"tag", NULL, "replace a sandbox's tags", sb_tag, usage_tag},
    {"port", NULL, "exposed ports: expose, unexpose, ls, token", cmd_sandbox_port, cmd_sandbox_port_usage},
    {"net", NULL, "its network: show, set (change it live), log", cmd_sandbox_net, cmd_sandbox_net_usage},
};

#define ABOUT "Sandboxes on a skiffd server (start one with `skiff serve` or `make run`)."

void cmd_sandbox_usage(FILE *out)
{
    sk_cli_group_usage(out, "sandbox", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands));
}

int cmd_sandbox(int argc, char **argv, struct sk_cli *g)
{
    return sk_cli_group_dispatch("sandbox", ABOUT, subcommands, SK_ARRAY_SIZE(subcommands), argc, argv, g);
}
