/* nft.h - nftables through libnftables, in-process: one context per user,
 * commands given as nft's own language and run as one atomic transaction
 * (nft_run_cmd_from_buffer), listings read back as JSON.
 *
 * struct sk_nft_buf collects commands ("add rule ...\n") so that a caller
 * can build one transaction from many pieces. Not thread-safe.
 */
#ifndef SK_NET_NFT_H
#define SK_NET_NFT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

struct sk_nft;

/* sk_nft_new - a context acting on the calling thread's network namespace
 * (the one it was created in). ENOTSUP when the kernel has no nf_tables
 * (checked with a harmless listing). */
int sk_nft_new(struct sk_nft **out, struct sk_error *err);
void sk_nft_free(struct sk_nft *n);

/* sk_nft_run - run `cmds` (nft syntax, one command per line) as one
 * transaction: all or nothing. EINVAL with nft's first error line when nft
 * refuses it, the kernel's errno otherwise (as nft reports it: ENOENT,
 * EEXIST, EBUSY ...; EIO when it cannot tell). */
int sk_nft_run(struct sk_nft *n, const char *cmds, struct sk_error *err);

/* sk_nft_list - run a "list ..." command and return its JSON output
 * (new reference; {"nftables": [...]}). ENOENT when the object is not
 * there. */
int sk_nft_list(struct sk_nft *n, const char *cmd, json_t **out, struct sk_error *err);

/* A growing command text. */
struct sk_nft_buf {
    char *s;
    size_t len, cap;
};
void sk_nft_buf_add(struct sk_nft_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sk_nft_buf_release(struct sk_nft_buf *b);
/* The text so far ("" when empty); borrowed. */
const char *sk_nft_buf_str(const struct sk_nft_buf *b);

#endif
