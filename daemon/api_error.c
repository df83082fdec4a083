/* api_error.c - errno -> (HTTP status, stable code), in one table. */
#include "api_error.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/util.h"

static const struct {
    int status;
    const char *name;
} codes[SK_API_CODE_COUNT] = {
    [SK_API_INVALID_ARGUMENT] = {400, "invalid_argument"},
    [SK_API_INVALID_JSON] = {400, "invalid_json"},
    [SK_API_UNKNOWN_FIELD] = {400, "unknown_field"},
    [SK_API_UNAUTHENTICATED] = {401, "unauthenticated"},
    [SK_API_PERMISSION_DENIED] = {403, "permission_denied"},
    [SK_API_NOT_FOUND] = {404, "not_found"},
    [SK_API_METHOD_NOT_ALLOWED] = {405, "method_not_allowed"},
    [SK_API_ALREADY_EXISTS] = {409, "already_exists"},
    [SK_API_FAILED_PRECONDITION] = {409, "failed_precondition"},
    [SK_API_TOO_LARGE] = {413, "too_large"},
    [SK_API_INTERNAL] = {500, "internal"},
    [SK_API_NOT_IMPLEMENTED] = {501, "not_implemented"},
    [SK_API_BAD_GATEWAY] = {502, "bad_gateway"},
    [SK_API_UNAVAILABLE] = {503, "unavailable"},
    [SK_API_DEADLINE_EXCEEDED] = {504, "deadline_exceeded"},
    [SK_API_INSUFFICIENT_STORAGE] = {507, "insufficient_storage"},
};

enum sk_api_code sk_api_code_from_errno(int code)
{
    switch (code) {
    case EINVAL:
    case ERANGE:
    case EDOM:
    case EILSEQ:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case EXDEV: return SK_API_INVALID_ARGUMENT;
    case ENOENT:
    case ESRCH: return SK_API_NOT_FOUND;
    case EEXIST: return SK_API_ALREADY_EXISTS;
    case EACCES:
    case EPERM: return SK_API_PERMISSION_DENIED;
    case ENOTEMPTY:
    case ENOTTY: /* a terminal operation on a process without one */
    case EPIPE:  /* the sandbox or process on the other end is gone */
    case EALREADY: return SK_API_FAILED_PRECONDITION;
    case E2BIG:
    case EFBIG:
    case EMSGSIZE: return SK_API_TOO_LARGE;
    case ETIMEDOUT: return SK_API_DEADLINE_EXCEEDED;
    case EAGAIN:
    case EBUSY:
    case EUSERS:
    case EMFILE:
    case ENFILE: return SK_API_UNAVAILABLE;
    case ENOSPC:
    case EDQUOT: return SK_API_INSUFFICIENT_STORAGE;
    case ENOTSUP:
    case ENOSYS: return SK_API_NOT_IMPLEMENTED;
    default: return SK_API_INTERNAL;
    }
}

int sk_api_code_status(enum sk_api_code code)
{
    if ((unsigned)code >= SK_API_CODE_COUNT)
        return 500;
    return codes[code].status;
}

const char *sk_api_code_name(enum sk_api_code code)
{
    if ((unsigned)code >= SK_API_CODE_COUNT)
        return "internal";
    return codes[code].name;
}

/* utf8_len - length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

json_t *sk_api_error_json(enum sk_api_code code, const char *message)
{
    /* Messages can quote user input (a path, a field name): replace bytes
     * that are not UTF-8 with '?' so jansson accepts the string. */
    size_t len = strlen(message);
    _cleanup_free_ char *clean = xmalloc(len + 1);
    const unsigned char *s = (const unsigned char *)message;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = utf8_len(s + i, len - i);
        if (n == 0) {
            clean[o++] = '?';
            i++;
            continue;
        }
        memcpy(clean + o, s + i, n);
        o += n;
        i += n;
    }
    clean[o] = '\0';
    json_t *inner = json_object();
    json_object_set_new(inner, "code", json_string(sk_api_code_name(code)));
    json_object_set_new(inner, "message", json_string(clean));
    json_t *outer = json_object();
    json_object_set_new(outer, "error", inner);
    return outer;
}
