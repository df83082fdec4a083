/* dns.h - the DNS forwarder's message logic (libldns): read a sandbox's
 * query, build the answers skiffd gives itself (REFUSED, a group member's
 * address, SERVFAIL), and read the addresses out of an upstream answer.
 *
 * No I/O and no policy here: daemon/net_dns.c moves the bytes, lib/net/net.h
 * decides what a sandbox may resolve. Messages are at most
 * SK_DNS_MSG_MAX bytes (a TCP message's 16-bit length bounds it). Pure
 * functions; thread-safe.
 */
#ifndef SK_NET_DNS_H
#define SK_NET_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "net/policy.h"

#define SK_DNS_MSG_MAX 65535
#define SK_DNS_TYPE_A 1
#define SK_DNS_TYPE_AAAA 28
#define SK_DNS_RCODE_SERVFAIL 2
#define SK_DNS_RCODE_NXDOMAIN 3
#define SK_DNS_RCODE_REFUSED 5

struct sk_dns_query {
    uint16_t id;
    uint16_t qtype, qclass;
    /* The name as asked, lowercase, without the trailing dot; names that
     * are not plain host names (escapes, odd bytes) are kept in ldns's
     * escaped text form and never match a policy. */
    char name[4 * SK_NET_DOMAIN_MAX + 8];
    char type_name[16]; /* "A", "AAAA", "TXT", "TYPE65280" */
};

/* sk_dns_parse_query - one standard query (opcode QUERY, not a response,
 * exactly one question). EINVAL for anything else (malformed, a response,
 * another opcode, zero or several questions): drop it. */
int sk_dns_parse_query(const uint8_t *msg, size_t len, struct sk_dns_query *q, struct sk_error *err);

/* An address answer for sk_dns_reply. */
struct sk_dns_addr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint32_t ttl;
};

/* sk_dns_reply - a response to `query` (the client's bytes): same id and
 * question, RD copied, RA set, `rcode`, and with rcode 0 the given
 * addresses as A/AAAA records of the asked name (only those of the asked
 * type; none is a NODATA answer). *out (heap, the caller frees) and *out_len.
 * EINVAL when the query cannot be read. */
int sk_dns_reply(const uint8_t *query, size_t len, int rcode, const struct sk_dns_addr *addrs, size_t n_addrs,
                 uint8_t **out, size_t *out_len, struct sk_error *err);

/* sk_dns_read_answer - read an upstream response: its id, rcode and the A
 * and AAAA records of its answer section (at most max_addrs, the rest
 * ignored), and check that its question is `q`'s (EINVAL otherwise, or when
 * it is not a response). */
int sk_dns_read_answer(const uint8_t *msg, size_t len, const struct sk_dns_query *q, int *rcode,
                       struct sk_dns_addr *addrs, size_t max_addrs, size_t *n_addrs, struct sk_error *err);

/* sk_dns_get_id / sk_dns_set_id - the id in a message's header (len >= 2). */
uint16_t sk_dns_get_id(const uint8_t *msg);
void sk_dns_set_id(uint8_t *msg, uint16_t id);

#endif
