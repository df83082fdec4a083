/* auth.h - API tokens: generation, hashing, verification.
 *
 * A token reads "skf_<id>_<secret>": <id> is 16 hex characters (the
 * store's key), <secret> 43 base64url characters (32 random bytes from
 * libsodium). Only BLAKE2b-256(secret) is stored; verification hashes the
 * presented secret and compares in constant time (sodium_memcmp). The role
 * model is a string ("admin" for now) so finer roles slot in later.
 * sk_auth_init must be called once per process (sodium_init).
 */
#ifndef SK_AUTH_AUTH_H
#define SK_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "store/store.h"

#define SK_TOKEN_MAX_LEN 80 /* "skf_" + 16 + "_" + 43, with room to spare */

int sk_auth_init(struct sk_error *err);

/* sk_auth_token_new - generate a token: the full text in `token` (the only
 * time the secret exists; show it once) and the record to store in *rec
 * (id, hash, name, role, created_by, created_at = now, expires_at = now +
 * ttl_ms or 0 for ttl_ms <= 0). rec's heap fields are the caller's. */
int sk_auth_token_new(const char *name, const char *role, const char *created_by, int64_t now, int64_t ttl_ms,
                      char token[SK_TOKEN_MAX_LEN + 1], struct sk_token_rec *rec, struct sk_error *err);

/* sk_auth_verify - check an HTTP Authorization header value ("Bearer
 * skf_..."): parse, look the id up, compare the secret's hash in constant
 * time, reject revoked and expired tokens. On success fills *rec (caller
 * releases) and touches last_used_at. Errors: EACCES with a message a person
 * can act on ("missing Authorization header", "malformed token", "unknown or
 * revoked token", "token expired"). Never says which part of a well-formed
 * token was wrong beyond that. */
int sk_auth_verify(struct sk_store *st, const char *authorization, int64_t now, struct sk_token_rec *rec,
                   struct sk_error *err);

/* sk_auth_now_ms - wall clock in Unix epoch milliseconds. */
int64_t sk_auth_now_ms(void);

#endif
