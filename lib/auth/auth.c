/* auth.c - API tokens (see auth.h).
 *
 * A token is "skf_" <16 lowercase hex id> "_" <43 base64url secret>, 64
 * characters. The secret is 32 bytes from randombytes_buf; the store keeps
 * only BLAKE2b-256 of its text. Verification never reveals which part of a
 * well-formed token was wrong: an unknown id, a wrong secret and a revoked
 * token give the same message, and expiry is reported only to a holder of
 * the right secret.
 */
#include "auth/auth.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"

#define TOKEN_PREFIX "skf_"
#define TOKEN_PREFIX_LEN 4
#define SECRET_BYTES 32
#define SECRET_LEN 43 /* base64url of 32 bytes, no padding */
#define TOKEN_LEN (TOKEN_PREFIX_LEN + SK_TOKEN_ID_LEN + 1 + SECRET_LEN)
#define SCHEME "Bearer "
#define SCHEME_LEN 7

/* last_used_at is kept to the second: a verify within a second of the last
 * recorded use skips the write, so a busy client does not cost an fsync per
 * request. */
#define TOUCH_INTERVAL_MS 1000

_Static_assert(TOKEN_LEN <= SK_TOKEN_MAX_LEN, "token text must fit SK_TOKEN_MAX_LEN");

int sk_auth_init(struct sk_error *err)
{
    if (sodium_init() < 0)
        return sk_error_setv(err, EIO, "libsodium could not be initialised");
    return 0;
}

int64_t sk_auth_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hash_secret(const char *secret, size_t len, uint8_t out[SK_TOKEN_HASH_LEN])
{
    crypto_generichash(out, SK_TOKEN_HASH_LEN, (const unsigned char *)secret, len, NULL, 0);
}

int sk_auth_token_new(const char *name, const char *role, const char *created_by, int64_t now, int64_t ttl_ms,
                      char token[SK_TOKEN_MAX_LEN + 1], struct sk_token_rec *rec, struct sk_error *err)
{
    memset(rec, 0, sizeof(*rec));
    token[0] = '\0';
    if (name == NULL || name[0] == '\0')
        return sk_error_setv(err, EINVAL, "a token needs a name");
    if (role == NULL || role[0] == '\0')
        return sk_error_setv(err, EINVAL, "token '%s' needs a role", name);
    if (ttl_ms > 0 && now > INT64_MAX - ttl_ms)
        return sk_error_setv(err, EINVAL, "token lifetime of %lld ms is too long", (long long)ttl_ms);

    uint8_t id_raw[SK_TOKEN_ID_LEN / 2];
    randombytes_buf(id_raw, sizeof(id_raw));
    sodium_bin2hex(rec->id, sizeof(rec->id), id_raw, sizeof(id_raw));

    uint8_t secret_raw[SECRET_BYTES];
    char secret[SECRET_LEN + 1];
    randombytes_buf(secret_raw, sizeof(secret_raw));
    sodium_bin2base64(secret, sizeof(secret), secret_raw, sizeof(secret_raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret_raw, sizeof(secret_raw));
    hash_secret(secret, SECRET_LEN, rec->hash);

    memcpy(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    memcpy(token + TOKEN_PREFIX_LEN, rec->id, SK_TOKEN_ID_LEN);
    token[TOKEN_PREFIX_LEN + SK_TOKEN_ID_LEN] = '_';
    memcpy(token + TOKEN_PREFIX_LEN + SK_TOKEN_ID_LEN + 1, secret, SECRET_LEN);
    token[TOKEN_LEN] = '\0';
    sodium_memzero(secret, sizeof(secret));

    rec->name = xstrdup(name);
    rec->role = xstrdup(role);
    rec->created_by = xstrdup(created_by != NULL ? created_by : "");
    rec->created_at = now;
    rec->expires_at = ttl_ms > 0 ? now + ttl_ms : 0;
    rec->revoked_at = 0;
    rec->last_used_at = 0;
    return 0;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_base64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* token_is_well_formed - check the shape of "skf_<id>_<secret>" (exactly
 * TOKEN_LEN characters). The secret may itself contain '_', so the parts
 * are found by position, not by searching. */
static bool token_is_well_formed(const char *t, size_t len)
{
    if (len != TOKEN_LEN || memcmp(t, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
        return false;
    for (size_t i = 0; i < SK_TOKEN_ID_LEN; i++)
        if (!is_lower_hex(t[TOKEN_PREFIX_LEN + i]))
            return false;
    if (t[TOKEN_PREFIX_LEN + SK_TOKEN_ID_LEN] != '_')
        return false;
    for (size_t i = 0; i < SECRET_LEN; i++)
        if (!is_base64url(t[TOKEN_PREFIX_LEN + SK_TOKEN_ID_LEN + 1 + i]))
            return false;
    return true;
}

int sk_auth_verify(struct sk_store *st, const char *authorization, int64_t now, struct sk_token_rec *rec,
                   struct sk_error *err)
{
    memset(rec, 0, sizeof(*rec));
    if (authorization == NULL || authorization[0] == '\0')
        return sk_error_setv(err, EACCES, "missing Authorization header");
    /* Bound the length before looking further: the header comes from the
     * network and we never need more than the scheme and one token. */
    size_t len = strnlen(authorization, SCHEME_LEN + TOKEN_LEN + 1);
    if (len != SCHEME_LEN + TOKEN_LEN || strncasecmp(authorization, SCHEME, SCHEME_LEN) != 0)
        return sk_error_setv(err, EACCES, "malformed token");
    const char *token = authorization + SCHEME_LEN;
    if (!token_is_well_formed(token, TOKEN_LEN))
        return sk_error_setv(err, EACCES, "malformed token");

    char id[SK_TOKEN_ID_LEN + 1];
    memcpy(id, token + TOKEN_PREFIX_LEN, SK_TOKEN_ID_LEN);
    id[SK_TOKEN_ID_LEN] = '\0';
    uint8_t presented[SK_TOKEN_HASH_LEN];
    hash_secret(token + TOKEN_PREFIX_LEN + SK_TOKEN_ID_LEN + 1, SECRET_LEN, presented);

    struct sk_token_rec t;
    int ret = sk_store_token_get(st, id, &t, err);
    if (ret == -ENOENT)
        return sk_error_setv(err, EACCES, "unknown or revoked token");
    if (ret < 0)
        return ret; /* a store failure is not the client's fault: keep EIO */
    if (sodium_memcmp(presented, t.hash, SK_TOKEN_HASH_LEN) != 0 || t.revoked_at != 0) {
        sk_token_rec_release(&t);
        return sk_error_setv(err, EACCES, "unknown or revoked token");
    }
    if (t.expires_at != 0 && now >= t.expires_at) {
        sk_token_rec_release(&t);
        return sk_error_setv(err, EACCES, "token expired");
    }
    if (t.last_used_at <= now - TOUCH_INTERVAL_MS || t.last_used_at > now) {
        /* A failed touch must not lock a valid client out: last_used_at is
         * bookkeeping, and a failing store shows up on the next write. */
        struct sk_error terr = {0};
        if (sk_store_token_touch(st, id, now, &terr) < 0)
            sk_log_warn("token '%s': could not record its use: %s", id, terr.msg);
        else
            t.last_used_at = now;
    }
    *rec = t;
    return 0;
}
