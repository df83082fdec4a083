/* test_auth.c - API tokens (lib/auth) against a real store in a fresh
 * directory under /var/tmp: a new token verifies and only its hash is kept;
 * wrong secrets, unknown ids, malformed headers, revoked and expired tokens
 * are refused with EACCES and the documented message; last_used_at is
 * recorded; ids and secrets do not repeat. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <time.h>

#include "auth/auth.h"
#include "base/util.h"
#include "harness.h"

#define T0 1700000000000LL

struct fx {
    char dir[64];
    char path[128];
    struct sk_store *st;
};

static void fx_init(struct fx *f)
{
    struct sk_error err = {0};
    ASSERT_OK(sk_auth_init(&err));
    snprintf(f->dir, sizeof(f->dir), "/var/tmp/skiff-test-auth-XXXXXX");
    ASSERT_TRUE(mkdtemp(f->dir) != NULL);
    snprintf(f->path, sizeof(f->path), "%s/skiff.db", f->dir);
    ASSERT_OK(sk_store_open(f->path, &f->st, &err));
}

static void fx_done(struct fx *f)
{
    struct sk_error err = {0};
    sk_store_close(f->st);
    ASSERT_OK(sk_remove_tree(f->dir, &err));
}

/* issue - create and store a token, return its text in token. */
static void issue(struct fx *f, const char *name, int64_t ttl_ms, char token[SK_TOKEN_MAX_LEN + 1],
                  struct sk_token_rec *rec)
{
    struct sk_error err = {0};
    ASSERT_OK(sk_auth_token_new(name, "admin", "", T0, ttl_ms, token, rec, &err));
    ASSERT_OK(sk_store_token_insert(f->st, rec, &err));
}

static char *bearer(const char *token)
{
    return xasprintf("Bearer %s", token);
}

/* refused - verify must fail with EACCES and exactly `msg`. */
static void refused(struct fx *f, const char *header, int64_t now, const char *msg)
{
    struct sk_error err = {0};
    struct sk_token_rec rec;
    int r = sk_auth_verify(f->st, header, now, &rec, &err);
    if (r != -EACCES)
        FAIL("header '%.60s' gave %d (%s), expected -EACCES", header ? header : "(null)", r, err.msg);
    ASSERT_EQ_INT(err.code, EACCES);
    ASSERT_EQ_STR(err.msg, msg);
}

static void accepted(struct fx *f, const char *header, int64_t now, const char *want_id)
{
    struct sk_error err = {0};
    struct sk_token_rec rec;
    ASSERT_OK(sk_auth_verify(f->st, header, now, &rec, &err));
    ASSERT_EQ_STR(rec.id, want_id);
    sk_token_rec_release(&rec);
}

/* file_contains - whether the file at path holds the bytes of needle. */
static bool file_contains(const char *path, const char *needle)
{
    struct sk_error err = {0};
    char *buf = NULL;
    size_t len = 0;
    if (sk_read_file_at(AT_FDCWD, path, 64 << 20, &buf, &len, &err) < 0)
        return false;
    bool found = memmem(buf, len, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

TEST(a_new_token_verifies)
{
    struct fx f;
    fx_init(&f);
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    struct sk_error err = {0};
    ASSERT_OK(sk_auth_token_new("ci", "admin", "0123456789abcdef", T0, 0, token, &rec, &err));
    ASSERT_OK(sk_store_token_insert(f.st, &rec, &err));
    char *h = bearer(token);
    struct sk_token_rec got;
    ASSERT_OK(sk_auth_verify(f.st, h, T0 + 1, &got, &err));
    ASSERT_EQ_STR(got.id, rec.id);
    ASSERT_EQ_STR(got.name, "ci");
    ASSERT_EQ_STR(got.role, "admin");
    ASSERT_EQ_STR(got.created_by, "0123456789abcdef");
    ASSERT_EQ_INT(got.created_at, T0);
    ASSERT_EQ_INT(got.expires_at, 0);
    sk_token_rec_release(&got);
    /* the scheme is case-insensitive */
    memcpy(h, "bEARER", 6);
    accepted(&f, h, T0 + 2, rec.id);
    free(h);
    sk_token_rec_release(&rec);
    fx_done(&f);
}

TEST(the_token_has_the_documented_format_and_only_its_hash_is_kept)
{
    struct fx f;
    fx_init(&f);
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    issue(&f, "fmt", 60000, token, &rec);
    ASSERT_EQ_INT(strlen(token), 64);
    ASSERT_TRUE(strncmp(token, "skf_", 4) == 0);
    for (int i = 4; i < 20; i++)
        ASSERT_TRUE(strchr("0123456789abcdef", token[i]) != NULL);
    ASSERT_EQ_INT(token[20], '_');
    for (int i = 21; i < 64; i++)
        ASSERT_TRUE(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", token[i]) != NULL);
    /* the id in the text is the record's key */
    ASSERT_TRUE(strncmp(token + 4, rec.id, 16) == 0);
    ASSERT_EQ_INT(strlen(rec.id), 16);
    ASSERT_EQ_INT(rec.created_at, T0);
    ASSERT_EQ_INT(rec.expires_at, T0 + 60000);
    ASSERT_EQ_INT(rec.revoked_at, 0);

    /* the record holds BLAKE2b-256 of the secret and never the secret */
    const char *secret = token + 21;
    uint8_t want[32];
    crypto_generichash(want, sizeof(want), (const unsigned char *)secret, 43, NULL, 0);
    ASSERT_TRUE(memcmp(rec.hash, want, 32) == 0);
    ASSERT_NOT_CONTAINS(rec.name, secret);
    ASSERT_NOT_CONTAINS(rec.role, secret);
    ASSERT_NOT_CONTAINS(rec.created_by, secret);
    /* and so does the database, on disk */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f.path);
    ASSERT_FALSE(file_contains(f.path, secret));
    ASSERT_FALSE(file_contains(wal, secret));
    ASSERT_TRUE(file_contains(wal, rec.id)); /* proves the search sees stored text */
    sk_token_rec_release(&rec);
    fx_done(&f);
}

TEST(a_wrong_secret_or_unknown_id_is_refused)
{
    struct fx f;
    fx_init(&f);
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    issue(&f, "t", 0, token, &rec);

    char bad[SK_TOKEN_MAX_LEN + 1];
    memcpy(bad, token, sizeof(bad));
    bad[63] = bad[63] == 'A' ? 'B' : 'A'; /* last character of the secret */
    char *h = bearer(bad);
    refused(&f, h, T0, "unknown or revoked token");
    free(h);

    memcpy(bad, token, sizeof(bad));
    bad[21] = bad[21] == 'A' ? 'B' : 'A'; /* first character of the secret */
    h = bearer(bad);
    refused(&f, h, T0, "unknown or revoked token");
    free(h);

    memcpy(bad, token, sizeof(bad));
    bad[4] = bad[4] == 'a' ? 'b' : 'a'; /* the id */
    h = bearer(bad);
    refused(&f, h, T0, "unknown or revoked token");
    free(h);

    /* the right token still works after the failures */
    h = bearer(token);
    accepted(&f, h, T0, rec.id);
    free(h);
    sk_token_rec_release(&rec);
    fx_done(&f);
}

TEST(malformed_headers_are_refused)
{
    struct fx f;
    fx_init(&f);
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    issue(&f, "t", 0, token, &rec);

    refused(&f, NULL, T0, "missing Authorization header");
    refused(&f, "", T0, "missing Authorization header");

    char *cases[32];
    size_t n = 0;
    cases[n++] = xstrdup("Basic dXNlcjpwYXNz");
    cases[n++] = xstrdup("Bearer");
    cases[n++] = xstrdup("Bearer ");
    cases[n++] = xasprintf("%s", token);           /* no scheme */
    cases[n++] = xasprintf("Bearer  %s", token);   /* two spaces */
    cases[n++] = xasprintf("Bearer\t%s", token);   /* not a space */
    cases[n++] = xasprintf(" Bearer %s", token);   /* leading space */
    cases[n++] = xasprintf("Bearer %s ", token);   /* trailing space */
    cases[n++] = xasprintf("Bearer %s\n", token);  /* trailing newline */
    cases[n++] = xasprintf("Bearer %sA", token);   /* one character long */
    cases[n++] = xasprintf("Bearer %.63s", token); /* one character short */
    cases[n++] = xasprintf("Bearer %s %s", token, token);
    cases[n++] = xasprintf("Bearerx%s", token);
    cases[n++] = xasprintf("Token %s", token);
    char *c = xasprintf("Bearer %s", token);
    c[7 + 5] = 'G'; /* id: not hex */
    cases[n++] = c;
    c = xasprintf("Bearer %s", token);
    c[7 + 5] = 'A'; /* id: upper-case hex is not ours */
    cases[n++] = c;
    c = xasprintf("Bearer %s", token);
    c[7 + 30] = '!'; /* secret: not base64url */
    cases[n++] = c;
    c = xasprintf("Bearer %s", token);
    c[7 + 30] = '='; /* secret: padding */
    cases[n++] = c;
    c = xasprintf("Bearer %s", token);
    c[7 + 20] = '-'; /* separator */
    cases[n++] = c;
    c = xasprintf("Bearer %s", token);
    c[7 + 0] = 'S'; /* prefix is lower case */
    cases[n++] = c;
    c = xasprintf("Bearer %s", token);
    c[7 + 40] = '\0'; /* embedded NUL: too short as a C string */
    cases[n++] = c;
    /* a 10 KB header starting with a valid token */
    char *big = xmalloc(10 * 1024 + 1);
    memset(big, 'a', 10 * 1024);
    big[10 * 1024] = '\0';
    memcpy(big, "Bearer ", 7);
    memcpy(big + 7, token, 64);
    cases[n++] = big;
    /* a valid-looking token with a longer secret */
    cases[n++] = xasprintf("Bearer %sAAAA", token);
    /* the right length made of the wrong pieces: "skf_" + 17 hex + "_" + 42 */
    c = xasprintf("Bearer skf_%.16s0_%.42s", token + 4, token + 21);
    cases[n++] = c;

    for (size_t i = 0; i < n; i++) {
        refused(&f, cases[i], T0, "malformed token");
        free(cases[i]);
    }
    sk_token_rec_release(&rec);
    fx_done(&f);
}

TEST(a_revoked_token_is_refused)
{
    struct fx f;
    fx_init(&f);
    struct sk_error err = {0};
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    issue(&f, "t", 0, token, &rec);
    char *h = bearer(token);
    accepted(&f, h, T0, rec.id);
    ASSERT_OK(sk_store_token_revoke(f.st, rec.id, T0 + 10, &err));
    refused(&f, h, T0 + 20, "unknown or revoked token");
    free(h);
    sk_token_rec_release(&rec);
    fx_done(&f);
}

TEST(an_expired_token_is_refused)
{
    struct fx f;
    fx_init(&f);
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    issue(&f, "t", 5000, token, &rec);
    char *h = bearer(token);
    accepted(&f, h, T0 + 4999, rec.id);
    refused(&f, h, T0 + 5000, "token expired");
    refused(&f, h, T0 + 999999, "token expired");
    /* expiry is said only to a holder of the right secret */
    char bad[SK_TOKEN_MAX_LEN + 1];
    memcpy(bad, token, sizeof(bad));
    bad[40] = bad[40] == 'A' ? 'B' : 'A';
    char *hb = bearer(bad);
    refused(&f, hb, T0 + 999999, "unknown or revoked token");
    free(hb);
    free(h);
    sk_token_rec_release(&rec);
    fx_done(&f);
}

TEST(verify_records_last_used_at)
{
    struct fx f;
    fx_init(&f);
    struct sk_error err = {0};
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    issue(&f, "t", 0, token, &rec);
    char *h = bearer(token);
    struct sk_token_rec got, stored;

    ASSERT_OK(sk_store_token_get(f.st, rec.id, &stored, &err));
    ASSERT_EQ_INT(stored.last_used_at, 0);
    sk_token_rec_release(&stored);

    ASSERT_OK(sk_auth_verify(f.st, h, T0 + 100, &got, &err));
    ASSERT_EQ_INT(got.last_used_at, T0 + 100);
    sk_token_rec_release(&got);
    ASSERT_OK(sk_store_token_get(f.st, rec.id, &stored, &err));
    ASSERT_EQ_INT(stored.last_used_at, T0 + 100);
    sk_token_rec_release(&stored);

    ASSERT_OK(sk_auth_verify(f.st, h, T0 + 60000, &got, &err));
    sk_token_rec_release(&got);
    ASSERT_OK(sk_store_token_get(f.st, rec.id, &stored, &err));
    ASSERT_EQ_INT(stored.last_used_at, T0 + 60000);
    sk_token_rec_release(&stored);

    /* a failed attempt is not a use */
    char bad[SK_TOKEN_MAX_LEN + 1];
    memcpy(bad, token, sizeof(bad));
    bad[50] = bad[50] == 'A' ? 'B' : 'A';
    char *hb = bearer(bad);
    refused(&f, hb, T0 + 120000, "unknown or revoked token");
    free(hb);
    ASSERT_OK(sk_store_token_get(f.st, rec.id, &stored, &err));
    ASSERT_EQ_INT(stored.last_used_at, T0 + 60000);
    sk_token_rec_release(&stored);
    free(h);
    sk_token_rec_release(&rec);
    fx_done(&f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(ids_and_secrets_do_not_repeat)
{
    struct sk_error err = {0};
    ASSERT_OK(sk_auth_init(&err));
    enum { N = 1000 };
    char **ids = xcalloc(N, sizeof(char *));
    char **secrets = xcalloc(N, sizeof(char *));
    for (int i = 0; i < N; i++) {
        char token[SK_TOKEN_MAX_LEN + 1];
        struct sk_token_rec rec;
        ASSERT_OK(sk_auth_token_new("t", "admin", "", T0, 0, token, &rec, &err));
        ASSERT_EQ_INT(strlen(token), 64);
        ids[i] = xstrndup(token + 4, 16);
        secrets[i] = xstrdup(token + 21);
        sk_token_rec_release(&rec);
    }
    qsort(ids, N, sizeof(char *), cmp_str);
    qsort(secrets, N, sizeof(char *), cmp_str);
    for (int i = 1; i < N; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0)
            FAIL("id '%s' repeated", ids[i]);
        if (strcmp(secrets[i - 1], secrets[i]) == 0)
            FAIL("secret repeated");
    }
    for (int i = 0; i < N; i++) {
        free(ids[i]);
        free(secrets[i]);
    }
    free(ids);
    free(secrets);
}

TEST(token_new_rejects_bad_arguments)
{
    struct sk_error err = {0};
    ASSERT_OK(sk_auth_init(&err));
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    ASSERT_EQ_INT(sk_auth_token_new("", "admin", "", T0, 0, token, &rec, &err), -EINVAL);
    ASSERT_EQ_INT(sk_auth_token_new(NULL, "admin", "", T0, 0, token, &rec, &err), -EINVAL);
    ASSERT_EQ_INT(sk_auth_token_new("x", NULL, "", T0, 0, token, &rec, &err), -EINVAL);
    ASSERT_EQ_INT(sk_auth_token_new("x", "admin", "", T0, INT64_MAX, token, &rec, &err), -EINVAL);
    /* a negative lifetime means "never expires" */
    ASSERT_OK(sk_auth_token_new("x", "admin", NULL, T0, -5, token, &rec, &err));
    ASSERT_EQ_INT(rec.expires_at, 0);
    ASSERT_EQ_STR(rec.created_by, "");
    sk_token_rec_release(&rec);
}

TEST(now_ms_is_the_wall_clock)
{
    int64_t a = (int64_t)time(NULL) * 1000;
    int64_t now = sk_auth_now_ms();
    int64_t b = (int64_t)time(NULL) * 1000 + 1000;
    ASSERT_GE_INT(now, a);
    ASSERT_LE_INT(now, b);
}
