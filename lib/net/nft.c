/* nft.c - libnftables in-process (see nft.h). */
#include "net/nft.h"

#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

struct sk_nft {
    struct nft_ctx *ctx;  /* text output, for commands */
    struct nft_ctx *json; /* JSON output, for listings */
};

static struct nft_ctx *ctx_new(bool json)
{
    struct nft_ctx *c = nft_ctx_new(NFT_CTX_DEFAULT);
    if (c == NULL)
        return NULL;
    nft_ctx_buffer_output(c);
    nft_ctx_buffer_error(c);
    if (json)
        nft_ctx_output_set_flags(c, NFT_CTX_OUTPUT_JSON);
    return c;
}

int sk_nft_new(struct sk_nft **out, struct sk_error *err)
{
    *out = NULL;
    struct sk_nft *n = xcalloc(1, sizeof(*n));
    n->ctx = ctx_new(false);
    n->json = ctx_new(true);
    if (n->ctx == NULL || n->json == NULL) {
        sk_nft_free(n);
        return sk_error_setv(err, ENOMEM, "create a libnftables context");
    }
    /* A listing that needs nothing but a working nf_tables netlink. Every
     * buffer is read after each command: reading it is what empties it. */
    int probe = nft_run_cmd_from_buffer(n->json, "list tables");
    nft_ctx_get_output_buffer(n->json);
    if (probe != 0) {
        const char *e = nft_ctx_get_error_buffer(n->json);
        int r = sk_error_setv(err, ENOTSUP, "nftables is not usable here: %.200s", e && *e ? e : "no reason given");
        sk_nft_free(n);
        return r;
    }
    *out = n;
    return 0;
}

void sk_nft_free(struct sk_nft *n)
{
    if (n == NULL)
        return;
    if (n->ctx)
        nft_ctx_free(n->ctx);
    if (n->json)
        nft_ctx_free(n->json);
    free(n);
}

/* error_code - nft reports kernel errors as "Error: Could not process rule:
 * <strerror>" (and parse errors otherwise): map the text back to errno. */
static int error_code(const char *text)
{
    static const int codes[] = {ENOENT, EEXIST, EBUSY, ENOSPC, EPERM, EOPNOTSUPP, ENOMEM, E2BIG, ENFILE, EINVAL};
    for (size_t i = 0; i < SK_ARRAY_SIZE(codes); i++)
        if (strstr(text, strerror(codes[i])) != NULL)
            return codes[i];
    return strstr(text, "Could not process rule") ? EIO : EINVAL;
}

/* first_line - nft's first error line (without the caret lines). */
static void first_line(const char *text, char *out, size_t size)
{
    const char *e = strstr(text, "Error: ");
    e = e ? e + 7 : text;
    size_t n = strcspn(e, "\n");
    snprintf(out, size, "%.*s", (int)n, e);
}

int sk_nft_run(struct sk_nft *n, const char *cmds, struct sk_error *err)
{
    int r = nft_run_cmd_from_buffer(n->ctx, cmds);
    nft_ctx_get_output_buffer(n->ctx); /* drop what an echo may have printed */
    if (r == 0)
        return 0;
    const char *e = nft_ctx_get_error_buffer(n->ctx);
    char line[256];
    first_line(e ? e : "", line, sizeof(line));
    sk_log_debug("nft transaction failed: %s\n%s", e ? e : "", cmds);
    return sk_error_setv(err, error_code(e ? e : ""), "nftables: %s", line);
}

int sk_nft_list(struct sk_nft *n, const char *cmd, json_t **out, struct sk_error *err)
{
    *out = NULL;
    int r = nft_run_cmd_from_buffer(n->json, cmd);
    const char *text = nft_ctx_get_output_buffer(n->json); /* read (and emptied) either way */
    if (r != 0) {
        const char *e = nft_ctx_get_error_buffer(n->json);
        char line[256];
        first_line(e ? e : "", line, sizeof(line));
        return sk_error_setv(err, error_code(e ? e : ""), "nftables: %s: %s", cmd, line);
    }
    json_error_t jerr;
    json_t *j = json_loads(text ? text : "", 0, &jerr);
    if (j == NULL)
        return sk_error_setv(err, EIO, "nftables: %s: unreadable JSON (%s)", cmd, jerr.text);
    *out = j;
    return 0;
}

void sk_nft_buf_add(struct sk_nft_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (b->s != NULL && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->len + (size_t)n + 1) * 2;
        if (b->cap < 1024)
            b->cap = 1024;
        b->s = xrealloc(b->s, b->cap);
        b->s[b->len] = '\0';
    }
}

void sk_nft_buf_release(struct sk_nft_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof(*b));
}

const char *sk_nft_buf_str(const struct sk_nft_buf *b)
{
    return b->s ? b->s : "";
}
