/* ports.h - inbound ports of a sandbox: what an exposed port is (its spec
 * and the state the proxy keeps about it), the inbound CIDR allowlist, the
 * durable JSON form kept in the sandbox's runtime record, and connect
 * tokens.
 *
 * A port is exposed with a protocol ("http": HTTP and WebSocket, proxied by
 * skiffd by path or host name; "tcp": raw bytes on a host port of its own),
 * whether it is public (no token needed) and an optional list of client
 * networks allowed to connect. Raw TCP cannot carry a token, so a "tcp"
 * port must be public or have an allowlist (sk_port_spec_check).
 *
 * Connect tokens ("skc_" + 56 base64url characters) let one client reach
 * one port of one sandbox until they expire, without an API token. They are
 * not stored: the token carries the sandbox id, the port, the exposure's
 * generation (a random number drawn each time the port is exposed, so
 * unexposing a port voids its tokens for good) and the expiry, sealed with a
 * keyed BLAKE2b MAC (libsodium) under the server's connect-token key. Pure
 * functions, no I/O except sk_connect_key_load.
 */
#ifndef SK_SCHED_PORTS_H
#define SK_SCHED_PORTS_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/error.h"

#define SK_PORTS_MAX 64         /* exposed ports per sandbox */
#define SK_PORT_CIDRS_MAX 64    /* allow_cidrs entries per port */
#define SK_CIDR_TEXT_MAX 64     /* "ffff:...:ffff/128" */
#define SK_CONNECT_KEY_LEN 32   /* bytes */
#define SK_CONNECT_TOKEN_LEN 60 /* "skc_" + 56 */
#define SK_CONNECT_TOKEN_PREFIX "skc_"

enum sk_port_protocol {
    SK_PORT_HTTP = 0, /* HTTP and WebSocket through skiffd's listener */
    SK_PORT_TCP = 1,  /* raw TCP on a host port of its own */
};

struct sk_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
};

struct sk_port_spec {
    uint16_t port; /* inside the sandbox, 1-65535 */
    enum sk_port_protocol protocol;
    bool public;
    size_t n_cidrs; /* 0: any client */
    struct sk_cidr cidrs[SK_PORT_CIDRS_MAX];
    /* Kept by the proxy (not part of a request): */
    uint64_t generation; /* drawn at expose; voids older connect tokens */
    int64_t exposed_at;  /* Unix ms */
    uint16_t host_port;  /* tcp: the host port of its listener (0: not yet allocated) */
};

/* sk_port_protocol_name / _parse - "http" and "tcp". parse returns -1 for
 * anything else. */
const char *sk_port_protocol_name(enum sk_port_protocol p);
int sk_port_protocol_parse(const char *s, enum sk_port_protocol *out);

/* sk_cidr_parse - "10.0.0.0/8", "fd00::/8", or a single address ("::1",
 * "127.0.0.1" = /32, /128). Host bits below the prefix are cleared.
 * EINVAL with a message naming the text otherwise. */
int sk_cidr_parse(const char *text, struct sk_cidr *out, struct sk_error *err);
/* sk_cidr_format - the canonical text ("10.0.0.0/8") into out. */
void sk_cidr_format(const struct sk_cidr *c, char out[SK_CIDR_TEXT_MAX]);
/* sk_cidr_match - whether the socket address (AF_INET, or AF_INET6 incl.
 * IPv4-mapped ones, which match IPv4 networks) lies in c. Anything else
 * (a Unix socket) never matches. */
bool sk_cidr_match(const struct sk_cidr *c, const struct sockaddr *sa);
/* sk_port_spec_allows - no allowlist, or sa matches one entry. */
bool sk_port_spec_allows(const struct sk_port_spec *spec, const struct sockaddr *sa);

/* sk_port_spec_check - the rules a request must follow: port 1-65535, at
 * most SK_PORT_CIDRS_MAX networks, and a tcp port must be public or have
 * an allowlist. EINVAL naming the port otherwise. */
int sk_port_spec_check(const struct sk_port_spec *spec, struct sk_error *err);

/* ---- the durable form (the sandbox's runtime record) ------------------------ */

/* sk_ports_to_json - a JSON array of the specs, with their proxy state (new
 * reference). */
json_t *sk_ports_to_json(const struct sk_port_spec *specs, size_t n);
/* sk_ports_from_json - read what sk_ports_to_json wrote (NULL: none).
 * *out (caller frees) holds *n specs. Entries that do not parse are
 * skipped with a warning (a record is never refused as a whole). */
void sk_ports_from_json(const json_t *arr, struct sk_port_spec **out, size_t *n);

/* ---- connect tokens -------------------------------------------------------------- */

struct sk_connect_claims {
    char sandbox_id[20]; /* "sb-" + 16 hex */
    uint16_t port;
    uint64_t generation;
    int64_t expires_at; /* Unix ms */
};

/* sk_connect_key_load - read the 32-byte key at `path`, creating it (random,
 * mode 0600, written under a temporary name and renamed) when missing.
 * EINVAL for a file of another size. sodium_init must have run. */
int sk_connect_key_load(const char *path, uint8_t key[SK_CONNECT_KEY_LEN], struct sk_error *err);

/* sk_connect_token_mint - a token for `c` into out (NUL-terminated).
 * EINVAL for a sandbox id that is not "sb-" + 16 hex. */
int sk_connect_token_mint(const uint8_t key[SK_CONNECT_KEY_LEN], const struct sk_connect_claims *c,
                          char out[SK_CONNECT_TOKEN_LEN + 1], struct sk_error *err);

/* sk_connect_token_parse - check a token's form and MAC (constant time) and
 * fill *c. Not checked here: expiry, sandbox, port, generation - the caller
 * compares those with what it serves. EACCES for anything that is not a
 * token this key sealed. */
int sk_connect_token_parse(const uint8_t key[SK_CONNECT_KEY_LEN], const char *token, struct sk_connect_claims *c,
                           struct sk_error *err);

/* sk_port_generation_new - a random non-zero generation. */
uint64_t sk_port_generation_new(void);

#endif
