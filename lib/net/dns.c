/* dns.c - DNS messages with libldns (see dns.h). */
#include "net/dns.h"

#include <ctype.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/util.h"

uint16_t sk_dns_get_id(const uint8_t *msg)
{
    return (uint16_t)((msg[0] << 8) | msg[1]);
}

void sk_dns_set_id(uint8_t *msg, uint16_t id)
{
    msg[0] = (uint8_t)(id >> 8);
    msg[1] = (uint8_t)id;
}

/* owner_text - the owner name of rr as lowercase text without the final
 * dot ("" for the root). */
static void owner_text(const ldns_rr *rr, char *out, size_t size)
{
    char *s = ldns_rdf2str(ldns_rr_owner(rr));
    size_t n = s ? strlen(s) : 0;
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n >= size)
        n = size - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = '\0';
    free(s);
}

static ldns_pkt *read_msg(const uint8_t *msg, size_t len)
{
    if (len < 12 || len > SK_DNS_MSG_MAX)
        return NULL;
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, msg, len) != LDNS_STATUS_OK)
        return NULL;
    return p;
}

int sk_dns_parse_query(const uint8_t *msg, size_t len, struct sk_dns_query *q, struct sk_error *err)
{
    memset(q, 0, sizeof(*q));
    ldns_pkt *p = read_msg(msg, len);
    if (p == NULL)
        return sk_error_setv(err, EINVAL, "not a DNS message");
    int r = 0;
    if (ldns_pkt_qr(p) || ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY)
        r = sk_error_setv(err, EINVAL, "not a standard query");
    else if (ldns_pkt_qdcount(p) != 1 || ldns_rr_list_rr_count(ldns_pkt_question(p)) != 1)
        r = sk_error_setv(err, EINVAL, "a query must ask exactly one question");
    if (r == 0) {
        const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        q->id = ldns_pkt_id(p);
        q->qtype = (uint16_t)ldns_rr_get_type(question);
        q->qclass = (uint16_t)ldns_rr_get_class(question);
        owner_text(question, q->name, sizeof(q->name));
        char *t = ldns_rr_type2str(ldns_rr_get_type(question));
        snprintf(q->type_name, sizeof(q->type_name), "%s", t ? t : "?");
        free(t);
    }
    ldns_pkt_free(p);
    return r;
}

int sk_dns_reply(const uint8_t *query, size_t len, int rcode, const struct sk_dns_addr *addrs, size_t n_addrs,
                 uint8_t **out, size_t *out_len, struct sk_error *err)
{
    *out = NULL;
    *out_len = 0;
    ldns_pkt *in = read_msg(query, len);
    if (in == NULL || ldns_rr_list_rr_count(ldns_pkt_question(in)) != 1) {
        ldns_pkt_free(in);
        return sk_error_setv(err, EINVAL, "not a DNS query");
    }
    const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(in), 0);
    ldns_rr_type qtype = ldns_rr_get_type(question);
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_id(p, ldns_pkt_id(in));
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
    ldns_pkt_set_rd(p, ldns_pkt_rd(in));
    ldns_pkt_set_ra(p, true);
    ldns_pkt_set_rcode(p, (uint8_t)rcode);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
    for (size_t i = 0; rcode == 0 && i < n_addrs; i++) {
        bool v4 = addrs[i].family == AF_INET;
        if ((v4 && qtype != LDNS_RR_TYPE_A) || (!v4 && qtype != LDNS_RR_TYPE_AAAA))
            continue;
        ldns_rr *rr = ldns_rr_new();
        ldns_rr_set_owner(rr, ldns_rdf_clone(ldns_rr_owner(question)));
        ldns_rr_set_type(rr, v4 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA);
        ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
        ldns_rr_set_ttl(rr, addrs[i].ttl);
        ldns_rr_push_rdf(rr,
                         ldns_rdf_new_frm_data(v4 ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA, v4 ? 4 : 16, addrs[i].addr));
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    ldns_pkt_set_aa(p, rcode == 0);
    uint8_t *wire = NULL;
    size_t size = 0;
    ldns_status st = ldns_pkt2wire(&wire, p, &size);
    ldns_pkt_free(p);
    ldns_pkt_free(in);
    if (st != LDNS_STATUS_OK || wire == NULL) {
        free(wire);
        return sk_error_setv(err, EIO, "build a DNS answer: %s", ldns_get_errorstr_by_id(st));
    }
    /* ldns allocates with malloc: hand it on as ours. */
    *out = wire;
    *out_len = size;
    return 0;
}

int sk_dns_read_answer(const uint8_t *msg, size_t len, const struct sk_dns_query *q, int *rcode,
                       struct sk_dns_addr *addrs, size_t max_addrs, size_t *n_addrs, struct sk_error *err)
{
    *n_addrs = 0;
    *rcode = SK_DNS_RCODE_SERVFAIL;
    ldns_pkt *p = read_msg(msg, len);
    if (p == NULL)
        return sk_error_setv(err, EINVAL, "the upstream answer is not a DNS message");
    int r = 0;
    if (!ldns_pkt_qr(p) || ldns_rr_list_rr_count(ldns_pkt_question(p)) != 1) {
        r = sk_error_setv(err, EINVAL, "the upstream answer is not a response to one question");
    } else {
        const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        char name[sizeof(q->name)];
        owner_text(question, name, sizeof(name));
        if ((uint16_t)ldns_rr_get_type(question) != q->qtype || strcmp(name, q->name) != 0)
            r = sk_error_setv(err, EINVAL, "the upstream answer is for another question");
    }
    if (r == 0) {
        *rcode = ldns_pkt_get_rcode(p);
        const ldns_rr_list *an = ldns_pkt_answer(p);
        for (size_t i = 0; i < ldns_rr_list_rr_count(an) && *n_addrs < max_addrs; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(an, i);
            ldns_rr_type t = ldns_rr_get_type(rr);
            const ldns_rdf *rd = ldns_rr_rd_count(rr) == 1 ? ldns_rr_rdf(rr, 0) : NULL;
            size_t want = t == LDNS_RR_TYPE_A ? 4 : t == LDNS_RR_TYPE_AAAA ? 16 : 0;
            if (want == 0 || rd == NULL || ldns_rdf_size(rd) != want || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
                continue;
            struct sk_dns_addr *a = &addrs[(*n_addrs)++];
            memset(a, 0, sizeof(*a));
            a->family = want == 4 ? AF_INET : AF_INET6;
            memcpy(a->addr, ldns_rdf_data(rd), want);
            a->ttl = ldns_rr_ttl(rr);
        }
    }
    ldns_pkt_free(p);
    return r;
}
