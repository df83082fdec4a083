/* routes_tokens.c - API tokens: create (the only answer that ever holds a
 * secret), list, get, revoke. Only the hash of a secret is stored. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "base/util.h"
#include "routes.h"

#define TOKEN_NAME_MAX 64
#define TOKEN_TTL_MAX_S INT64_C(315360000) /* ten years */

static bool is_live(const struct sk_token_rec *t, int64_t now)
{
    return t->revoked_at == 0 && (t->expires_at == 0 || now < t->expires_at);
}

static const char *token_state(const struct sk_token_rec *t, int64_t now)
{
    if (t->revoked_at != 0)
        return "revoked";
    return is_live(t, now) ? "active" : "expired";
}

/* token_json - the public view of a token: never the secret or its hash. */
static json_t *token_json(const struct sk_token_rec *t, int64_t now)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "name", json_string(t->name ? t->name : ""));
    json_object_set_new(o, "role", json_string(t->role ? t->role : ""));
    json_object_set_new(o, "state", json_string(token_state(t, now)));
    json_object_set_new(o, "created_by", t->created_by && t->created_by[0] ? json_string(t->created_by) : json_null());
    json_object_set_new(o, "created_at", sk_json_time(t->created_at));
    json_object_set_new(o, "expires_at", sk_json_time(t->expires_at));
    json_object_set_new(o, "revoked_at", sk_json_time(t->revoked_at));
    json_object_set_new(o, "last_used_at", sk_json_time(t->last_used_at));
    return o;
}

/* require_admin - roles arrive in a later issue; the check is in place. */
static int require_admin(struct sk_http_req *req)
{
    if (req->auth.role != NULL && strcmp(req->auth.role, "admin") == 0)
        return 0;
    sk_http_reply_api_error(req, SK_API_PERMISSION_DENIED, "managing tokens needs an admin token");
    return -1;
}

void sk_route_tokens_create(struct sk_daemon *d, struct sk_http_req *req)
{
    const char *name = NULL, *role = "admin";
    int64_t ttl_s = 0;
    const struct sk_field fields[] = {
        SK_FIELD_STR("name", &name, SK_REQUIRED, TOKEN_NAME_MAX),
        SK_FIELD_STR("role", &role, SK_OPTIONAL, 32),
        SK_FIELD_INT("ttl_seconds", &ttl_s, SK_OPTIONAL, 1, TOKEN_TTL_MAX_S),
    };
    if (require_admin(req) < 0 || sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
        return;
    if (!sk_router_is_valid_param(name)) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT,
                                "field 'name' must be 1 to %d characters of [A-Za-z0-9._-] starting with a letter or "
                                "digit",
                                TOKEN_NAME_MAX);
        return;
    }
    if (strcmp(role, "admin") != 0) {
        sk_http_reply_api_error(req, SK_API_INVALID_ARGUMENT, "field 'role' must be \"admin\" (the only role so far)");
        return;
    }

    struct sk_error err = {0};
    int64_t now = sk_auth_now_ms();
    char token[SK_TOKEN_MAX_LEN + 1];
    struct sk_token_rec rec;
    memset(&rec, 0, sizeof(rec));
    if (sk_auth_token_new(name, role, req->auth.id, now, ttl_s * 1000, token, &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    int r = sk_store_token_insert(d->store, &rec, &err);
    if (r == -EEXIST) {
        sk_http_reply_api_error(req, SK_API_ALREADY_EXISTS, "a token named '%s' already exists", name);
    } else if (r < 0) {
        sk_http_reply_error(req, &err);
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(rec.id));
        json_object_set_new(o, "name", json_string(rec.name));
        json_object_set_new(o, "role", json_string(rec.role));
        json_object_set_new(o, "token", json_string(token));
        json_object_set_new(o, "created_at", sk_json_time(rec.created_at));
        json_object_set_new(o, "expires_at", sk_json_time(rec.expires_at));
        char location[64];
        snprintf(location, sizeof(location), "/v1/tokens/%s", rec.id);
        sk_http_set_header(req, "Location", location);
        sk_http_reply_json(req, 201, o);
    }
    explicit_bzero(token, sizeof(token));
    sk_token_rec_release(&rec);
}

void sk_route_tokens_list(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    struct sk_token_rec *recs = NULL;
    size_t n = 0;
    if (require_admin(req) < 0)
        return;
    if (sk_store_token_list(d->store, &recs, &n, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    int64_t now = sk_auth_now_ms();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, token_json(&recs[i], now));
    sk_token_recs_free(recs, n);
    sk_http_reply_json(req, 200, json_pack("{s:o}", "tokens", arr));
}

void sk_route_tokens_get(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    struct sk_token_rec rec;
    const char *id = sk_http_param(req, "id");
    if (require_admin(req) < 0)
        return;
    if (sk_store_token_get(d->store, id, &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    sk_http_reply_json(req, 200, token_json(&rec, sk_auth_now_ms()));
    sk_token_rec_release(&rec);
}

void sk_route_tokens_revoke(struct sk_daemon *d, struct sk_http_req *req)
{
    struct sk_error err = {0};
    struct sk_token_rec rec;
    const char *id = sk_http_param(req, "id");
    if (require_admin(req) < 0)
        return;
    if (sk_store_token_get(d->store, id, &rec, &err) < 0) {
        sk_http_reply_error(req, &err);
        return;
    }
    int64_t now = sk_auth_now_ms();
    if (rec.revoked_at != 0) {
        /* Revoking twice is not an error: the outcome is the one asked for. */
        sk_http_reply_json(req, 200, json_pack("{s:s, s:o}", "id", rec.id, "revoked_at", sk_json_time(rec.revoked_at)));
        sk_token_rec_release(&rec);
        return;
    }
    if (is_live(&rec, now) && rec.role != NULL && strcmp(rec.role, "admin") == 0) {
        int live = sk_store_token_count_admin(d->store, now, &err);
        if (live < 0) {
            sk_http_reply_error(req, &err);
            sk_token_rec_release(&rec);
            return;
        }
        if (live <= 1) {
            sk_http_reply_api_error(req, SK_API_FAILED_PRECONDITION,
                                    "token '%s' is the last live admin token; create another admin token before "
                                    "revoking it",
                                    rec.id);
            sk_token_rec_release(&rec);
            return;
        }
    }
    if (sk_store_token_revoke(d->store, rec.id, now, &err) < 0)
        sk_http_reply_error(req, &err);
    else
        sk_http_reply_json(req, 200, json_pack("{s:s, s:o}", "id", rec.id, "revoked_at", sk_json_time(now)));
    sk_token_rec_release(&rec);
}
