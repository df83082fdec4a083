/* main.c - skiffd's command line: parse options, run the daemon. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/log.h"
#include "base/util.h"
#include "daemon.h"
#include "net/net.h"

#define DEFAULT_DATA_DIR "./var"
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_PER_IP 256
#define DEFAULT_IDLE_TIMEOUT_S 60
#define DEFAULT_POOL_SIZE 4
#define FD_RESERVE 64 /* descriptors kept for the store, sandboxes, logs */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: skiffd [OPTIONS]\n"
            "\n"
            "The skiff API server.\n"
            "\n"
            "  --listen ADDR          HOST:PORT, [V6]:PORT or unix:/PATH (default %s)\n"
            "  --data-dir DIR         state: store, admin token (default %s; created 0700)\n"
            "  --max-body BYTES       largest request body, e.g. 16M (default 16M)\n"
            "  --max-connections N    all connections together (default %d)\n"
            "  --max-per-ip N         connections from one address (default %d)\n"
            "  --idle-timeout SECS    close connections idle this long (default %d)\n"
            "  --sandbox-timeout SECS default lifetime of a sandbox (default 300)\n"
            "  --max-sandbox-timeout SECS  largest timeout a request may ask for (default: none)\n"
            "  --retention SECS       how long ended sandboxes stay queryable (default 86400)\n"
            "  --pool-size N          warm pool: ready sandboxes always kept for the default\n"
            "                         key (host image, 1G disk, network none); 0 turns the\n"
            "                         pool off unless --pool names keys (default %d)\n"
            "  --pool-max N           adaptive growth bound per pool key (default 64)\n"
            "  --pool-idle SECS       a key without claims this long shrinks to its\n"
            "                         minimum (default 60)\n"
            "  --pool KEY             keep a pool for KEY, repeatable: image=host|/ROOTFS\n"
            "                         [,disk=SIZE][,net=none][,min=N][,max=N]\n"
            "  --log-level LEVEL      error, warn, info or debug (default info, or $SKIFF_LOG)\n"
            "  --proxy-domain DOMAIN  also route exposed ports by host name:\n"
            "                         <port>-<sandbox>.DOMAIN (wildcard DNS to this server)\n"
            "  --proxy-bind ADDR      address of raw TCP port listeners (default 127.0.0.1)\n"
            "  --proxy-timeout SECS   wait this long for a sandbox's answer headers (default 60)\n"
            "  --net-cidr CIDR        addresses of sandboxes with egress, a /30 each\n"
            "                         (default " SK_NET_DEFAULT_CIDR4 ")\n"
            "  --net-cidr6 CIDR|off   their IPv6 addresses, a /64 each; off: IPv4 only\n"
            "                         (default " SK_NET_DEFAULT_CIDR6 ")\n"
            "  --net-group-cidr CIDR  network groups' bridges, a /24 each\n"
            "                         (default " SK_NET_DEFAULT_GROUP_CIDR4 ")\n"
            "  --dns-upstream LIST    where the sandboxes' DNS forwarder sends allowed names:\n"
            "                         IP[:PORT],... (default: the nameservers of /etc/resolv.conf)\n"
            "  --nft-table NAME       nftables table of sandbox policies (default " SK_NET_DEFAULT_TABLE ")\n"
            "  --debug-routes         also serve /v1/debug/* (for tests)\n"
            "  --version              print the version\n"
            "  --help                 this text\n",
            SK_DAEMON_DEFAULT_LISTEN, DEFAULT_DATA_DIR, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_IP,
            DEFAULT_IDLE_TIMEOUT_S, DEFAULT_POOL_SIZE);
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "skiffd: %s must be an integer from %u to %u (got '%s')\n", opt, min, max, s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* parse_pool_key - "image=host,disk=2G,net=none,min=2,max=16" (image
 * first and required, the rest optional in any order). The image string
 * points into s (argv), which outlives the daemon. */
static int parse_pool_key(char *s, struct sk_pool_key_config *k)
{
    memset(k, 0, sizeof(*k));
    char *save = NULL;
    bool first = true;
    for (char *f = strtok_r(s, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save), first = false) {
        char *eq = strchr(f, '=');
        if (eq == NULL)
            goto bad;
        *eq = '\0';
        const char *v = eq + 1;
        struct sk_error e = {0};
        int64_t size = 0;
        unsigned n = 0;
        if (first != (strcmp(f, "image") == 0))
            goto bad;
        if (strcmp(f, "image") == 0) {
            if (strcmp(v, "host") != 0 && v[0] != '/')
                goto bad;
            k->image = v;
        } else if (strcmp(f, "disk") == 0) {
            if (sk_parse_size(v, &size, &e) < 0 || size < 1024 * 1024)
                goto bad;
            k->disk_bytes = size;
        } else if (strcmp(f, "net") == 0) {
            if (strcmp(v, "none") != 0)
                goto bad;
            k->net = SK_NET_NONE;
        } else if (strcmp(f, "min") == 0) {
            if (parse_uint("--pool min", v, 0, 4096, &n) < 0)
                return -1;
            k->min = n;
        } else if (strcmp(f, "max") == 0) {
            if (parse_uint("--pool max", v, 1, 4096, &n) < 0)
                return -1;
            k->max = n;
        } else {
            goto bad;
        }
    }
    if (k->image != NULL)
        return 0;
bad:
    fprintf(stderr, "skiffd: --pool wants image=host|/ROOTFS[,disk=SIZE][,net=none][,min=N][,max=N]\n");
    return -1;
}

static int parse_level(const char *s, enum sk_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum sk_log_level)i;
            return 0;
        }
    }
    fprintf(stderr, "skiffd: --log-level must be error, warn, info or debug (got '%s')\n", s);
    return -1;
}

/* raise_fd_limit - every connection is a descriptor: lift the soft limit
 * to the hard one and keep max_connections below it. */
static void raise_fd_limit(unsigned *max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)*max_connections + 2 * FD_RESERVE) {
        unsigned cap = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - 2 * FD_RESERVE) : 16;
        sk_log_warn("file descriptor limit %llu: serving at most %u connections", (unsigned long long)rl.rlim_cur, cap);
        *max_connections = cap;
    }
}

int main(int argc, char **argv)
{
    enum {
        OPT_LISTEN = 256,
        OPT_DATA_DIR,
        OPT_MAX_BODY,
        OPT_MAX_CONN,
        OPT_MAX_PER_IP,
        OPT_IDLE,
        OPT_SB_TIMEOUT,
        OPT_SB_MAX_TIMEOUT,
        OPT_RETENTION,
        OPT_LOG,
        OPT_POOL_SIZE,
        OPT_POOL_MAX,
        OPT_POOL_IDLE,
        OPT_POOL,
        OPT_PROXY_DOMAIN,
        OPT_PROXY_BIND,
        OPT_PROXY_TIMEOUT,
        OPT_NET_CIDR,
        OPT_NET_CIDR6,
        OPT_NET_GROUP_CIDR,
        OPT_DNS_UPSTREAM,
        OPT_NFT_TABLE,
        OPT_DEBUG,
        OPT_VERSION,
        OPT_HELP
    };
    static const struct option options[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"max-per-ip", required_argument, NULL, OPT_MAX_PER_IP},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"sandbox-timeout", required_argument, NULL, OPT_SB_TIMEOUT},
        {"max-sandbox-timeout", required_argument, NULL, OPT_SB_MAX_TIMEOUT},
        {"retention", required_argument, NULL, OPT_RETENTION},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"pool-size", required_argument, NULL, OPT_POOL_SIZE},
        {"pool-max", required_argument, NULL, OPT_POOL_MAX},
        {"pool-idle", required_argument, NULL, OPT_POOL_IDLE},
        {"pool", required_argument, NULL, OPT_POOL},
        {"proxy-domain", required_argument, NULL, OPT_PROXY_DOMAIN},
        {"proxy-bind", required_argument, NULL, OPT_PROXY_BIND},
        {"proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT},
        {"net-cidr", required_argument, NULL, OPT_NET_CIDR},
        {"net-cidr6", required_argument, NULL, OPT_NET_CIDR6},
        {"net-group-cidr", required_argument, NULL, OPT_NET_GROUP_CIDR},
        {"dns-upstream", required_argument, NULL, OPT_DNS_UPSTREAM},
        {"nft-table", required_argument, NULL, OPT_NFT_TABLE},
        {"debug-routes", no_argument, NULL, OPT_DEBUG},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct sk_daemon_config cfg = {
        .listen = SK_DAEMON_DEFAULT_LISTEN,
        .data_dir = DEFAULT_DATA_DIR,
        .max_body = SK_DAEMON_DEFAULT_MAX_BODY,
        .max_connections = DEFAULT_MAX_CONNECTIONS,
        .max_per_ip = DEFAULT_MAX_PER_IP,
        .idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S,
        .pool_size = DEFAULT_POOL_SIZE,
    };
    static struct sk_pool_key_config pool_keys[SK_POOL_KEYS_MAX];
    cfg.pool_keys = pool_keys;
    enum sk_log_level level = SK_LOG_INFO;
    if (getenv("SKIFF_LOG") != NULL && parse_level(getenv("SKIFF_LOG"), &level) < 0)
        level = SK_LOG_INFO;
    struct sk_error err = {0};
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int64_t size;
        switch (c) {
        case OPT_LISTEN: cfg.listen = optarg; break;
        case OPT_DATA_DIR: cfg.data_dir = optarg; break;
        case OPT_MAX_BODY:
            if (sk_parse_size(optarg, &size, &err) < 0 || size < 1 || size > (INT64_C(1) << 30)) {
                fprintf(stderr, "skiffd: --max-body must be from 1 byte to 1G (got '%s')\n", optarg);
                return 2;
            }
            cfg.max_body = (size_t)size;
            break;
        case OPT_MAX_CONN:
            if (parse_uint("--max-connections", optarg, 1, 1000000, &cfg.max_connections) < 0)
                return 2;
            break;
        case OPT_MAX_PER_IP:
            if (parse_uint("--max-per-ip", optarg, 1, 1000000, &cfg.max_per_ip) < 0)
                return 2;
            break;
        case OPT_IDLE:
            if (parse_uint("--idle-timeout", optarg, 1, 86400, &cfg.idle_timeout_s) < 0)
                return 2;
            break;
        case OPT_SB_TIMEOUT:
            if (parse_uint("--sandbox-timeout", optarg, 1, 4000000000U, &cfg.sandbox_timeout_s) < 0)
                return 2;
            break;
        case OPT_SB_MAX_TIMEOUT:
            if (parse_uint("--max-sandbox-timeout", optarg, 1, 4000000000U, &cfg.max_sandbox_timeout_s) < 0)
                return 2;
            break;
        case OPT_RETENTION:
            if (parse_uint("--retention", optarg, 1, 4000000000U, &cfg.retention_s) < 0)
                return 2;
            break;
        case OPT_LOG:
            if (parse_level(optarg, &level) < 0)
                return 2;
            break;
        case OPT_POOL_SIZE:
            if (parse_uint("--pool-size", optarg, 0, 4096, &cfg.pool_size) < 0)
                return 2;
            break;
        case OPT_POOL_MAX:
            if (parse_uint("--pool-max", optarg, 1, 4096, &cfg.pool_max) < 0)
                return 2;
            break;
        case OPT_POOL_IDLE:
            if (parse_uint("--pool-idle", optarg, 1, 86400, &cfg.pool_idle_s) < 0)
                return 2;
            break;
        case OPT_POOL:
            if (cfg.n_pool_keys >= SK_POOL_KEYS_MAX) {
                fprintf(stderr, "skiffd: at most %d --pool keys\n", SK_POOL_KEYS_MAX);
                return 2;
            }
            if (parse_pool_key(optarg, &pool_keys[cfg.n_pool_keys]) < 0)
                return 2;
            cfg.n_pool_keys++;
            break;
        case OPT_PROXY_DOMAIN: cfg.proxy_domain = optarg; break;
        case OPT_PROXY_BIND: cfg.proxy_bind = optarg; break;
        case OPT_PROXY_TIMEOUT:
            if (parse_uint("--proxy-timeout", optarg, 1, 86400, &cfg.proxy_timeout_s) < 0)
                return 2;
            break;
        case OPT_NET_CIDR: cfg.net_cidr = optarg; break;
        case OPT_NET_CIDR6: cfg.net_cidr6 = optarg; break;
        case OPT_NET_GROUP_CIDR: cfg.net_group_cidr = optarg; break;
        case OPT_DNS_UPSTREAM: cfg.dns_upstream = optarg; break;
        case OPT_NFT_TABLE: cfg.nft_table = optarg; break;
        case OPT_DEBUG: cfg.debug_routes = true; break;
        case OPT_VERSION: printf("skiffd %s\n", SK_DAEMON_VERSION); return 0;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "skiffd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    sk_log_set_level(level);
    /* jansson allocates through the x-allocators: out of memory aborts. */
    json_set_alloc_funcs(xmalloc, free);
    /* A client that hangs up must not kill the daemon with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&cfg.max_connections);

    struct sk_daemon d;
    /* Paths below the data dir end up in mount options and lock files that
     * other processes read: make it absolute once, here. */
    char abs_dir[PATH_MAX];
    if (cfg.data_dir[0] != '/') {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL ||
            snprintf(abs_dir, sizeof(abs_dir), "%s/%s", cwd, cfg.data_dir) >= (int)sizeof(abs_dir)) {
            fprintf(stderr, "skiffd: cannot make --data-dir '%s' absolute\n", cfg.data_dir);
            return 2;
        }
        cfg.data_dir = abs_dir;
    }
    int r = sk_daemon_init(&d, &cfg, &err);
    if (r == 0)
        r = sk_daemon_run(&d, &err);
    sk_daemon_release(&d);
    if (r < 0) {
        sk_log_error("%s", err.msg);
        return 1;
    }
    return 0;
}
