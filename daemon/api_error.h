/* api_error.h - the API's error codes: the one place where an errno-style
 * sk_error code becomes an HTTP status and a stable string code.
 *
 * Every error the API answers is {"error": {"code": "<name>", "message":
 * "<text>"}}. The names below are part of the API contract (docs/api.md):
 * clients branch on them, so they never change meaning.
 */
#ifndef SK_DAEMON_API_ERROR_H
#define SK_DAEMON_API_ERROR_H

#include <jansson.h>

enum sk_api_code {
    SK_API_INVALID_ARGUMENT,     /* 400: a field, parameter or value is wrong */
    SK_API_INVALID_JSON,         /* 400: the body is not valid JSON */
    SK_API_UNKNOWN_FIELD,        /* 400: the body has a field the endpoint does not know */
    SK_API_UNAUTHENTICATED,      /* 401: missing, malformed, unknown, revoked or expired token */
    SK_API_PERMISSION_DENIED,    /* 403: the token may not do this / the OS refused */
    SK_API_NOT_FOUND,            /* 404: no such route or object */
    SK_API_METHOD_NOT_ALLOWED,   /* 405: the path exists, the method does not (see Allow) */
    SK_API_ALREADY_EXISTS,       /* 409: a unique name is taken */
    SK_API_FAILED_PRECONDITION,  /* 409: the object is in the wrong state for this */
    SK_API_TOO_LARGE,            /* 413: body or value over its limit */
    SK_API_INTERNAL,             /* 500: a bug or an unexpected failure */
    SK_API_NOT_IMPLEMENTED,      /* 501: not supported on this host/build */
    SK_API_BAD_GATEWAY,          /* 502: a proxied port: nothing answers in the sandbox, or not in HTTP */
    SK_API_UNAVAILABLE,          /* 503: busy, shutting down or out of capacity; retry */
    SK_API_DEADLINE_EXCEEDED,    /* 504: an operation took longer than allowed */
    SK_API_INSUFFICIENT_STORAGE, /* 507: out of disk or quota */
    SK_API_CODE_COUNT
};

/* sk_api_code_from_errno - the code for an sk_error code (positive errno):
 *   EINVAL ERANGE EDOM EILSEQ ENAMETOOLONG ENOTDIR EISDIR ELOOP -> invalid_argument
 *   ENOENT ESRCH -> not_found            EEXIST -> already_exists
 *   EACCES EPERM -> permission_denied    ENOTEMPTY EALREADY ENOTTY EPIPE -> failed_precondition
 *   EXDEV -> invalid_argument
 *   E2BIG EFBIG EMSGSIZE -> too_large    ETIMEDOUT -> deadline_exceeded
 *   EAGAIN EBUSY EUSERS EMFILE ENFILE -> unavailable
 *   ENOSPC EDQUOT -> insufficient_storage
 *   ENOTSUP ENOSYS -> not_implemented    anything else -> internal
 * An authentication failure is answered as unauthenticated by the request
 * dispatcher, which knows it came from the token check (EACCES elsewhere,
 * e.g. from a file inside a sandbox, is permission_denied). */
enum sk_api_code sk_api_code_from_errno(int code);
/* sk_api_code_status - the HTTP status for a code. */
int sk_api_code_status(enum sk_api_code code);
/* sk_api_code_name - the stable string ("invalid_argument", ...). */
const char *sk_api_code_name(enum sk_api_code code);

/* sk_api_error_json - a new {"error": {"code", "message"}} object (the
 * caller owns the reference). message must be UTF-8; invalid bytes are
 * replaced so that an error can always be rendered. */
json_t *sk_api_error_json(enum sk_api_code code, const char *message);

#endif
