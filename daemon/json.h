/* json.h - strict request-body decoding and the API's JSON conventions.
 *
 * A handler declares the fields it accepts, each with a type and whether
 * it is required; sk_json_decode checks an object against that list and
 * rejects unknown fields, missing required ones, wrong types and values
 * out of range, naming the field in the message. Decoded strings and
 * json_t values are borrowed from the parsed document (valid as long as it
 * is; for requests: until the request is finished). A field that is absent
 * or null leaves its output untouched, so outputs hold their defaults.
 *
 * Example:
 *     const char *name = NULL;
 *     int64_t ttl = 0;
 *     const struct sk_field fields[] = {
 *         SK_FIELD_STR("name", &name, SK_REQUIRED, 64),
 *         SK_FIELD_INT("ttl_seconds", &ttl, SK_OPTIONAL, 1, 86400),
 *     };
 *     if (sk_http_decode_json(req, fields, SK_ARRAY_SIZE(fields)) < 0)
 *         return;  // answered 400 already
 */
#ifndef SK_DAEMON_JSON_H
#define SK_DAEMON_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_error.h"
#include "base/error.h"

enum sk_field_type {
    SK_FIELD_STRING,       /* out: const char ** (UTF-8, no NUL); max_len bytes (0: 4096) */
    SK_FIELD_INT,          /* out: int64_t *; min..max inclusive (both 0: any) */
    SK_FIELD_NUMBER,       /* out: double * (integer or real) */
    SK_FIELD_BOOL,         /* out: bool * */
    SK_FIELD_OBJECT,       /* out: const json_t ** (any object; decode it with sk_json_decode_at) */
    SK_FIELD_ARRAY,        /* out: const json_t **; max_len elements (0: 1024) */
    SK_FIELD_STRING_ARRAY, /* out: const json_t ** array of strings; max_len elements (0: 1024) */
    SK_FIELD_STRING_MAP,   /* out: const json_t ** object of string values; max_len entries (0: 1024) */
    SK_FIELD_ANY,          /* out: const json_t ** any value but null */
};

#define SK_REQUIRED true
#define SK_OPTIONAL false
#define SK_JSON_STRING_MAX 4096     /* default for SK_FIELD_STRING */
#define SK_JSON_ELEMENT_MAX 65536   /* each string in a string array or map */
#define SK_JSON_KEY_MAX 256         /* each key of a string map */
#define SK_JSON_COLLECTION_MAX 1024 /* default elements of arrays and maps */

struct sk_field {
    const char *name;
    enum sk_field_type type;
    bool required;
    void *out;
    bool *present; /* optional: set to whether the field was given (non-null) */
    int64_t min, max;
    size_t max_len;
};

#define SK_FIELD_STR(n, o, req, maxlen) \
    { \
        .name = (n), .type = SK_FIELD_STRING, .required = (req), .out = (o), .max_len = (maxlen) \
    }
#define SK_FIELD_INT(n, o, req, lo, hi) \
    { \
        .name = (n), .type = SK_FIELD_INT, .required = (req), .out = (o), .min = (lo), .max = (hi) \
    }
#define SK_FIELD_NUM(n, o, req) \
    { \
        .name = (n), .type = SK_FIELD_NUMBER, .required = (req), .out = (o) \
    }
#define SK_FIELD_BOOL(n, o, req) \
    { \
        .name = (n), .type = SK_FIELD_BOOL, .required = (req), .out = (o) \
    }
#define SK_FIELD_OBJ(n, o, req) \
    { \
        .name = (n), .type = SK_FIELD_OBJECT, .required = (req), .out = (o) \
    }
#define SK_FIELD_ARR(n, o, req, maxn) \
    { \
        .name = (n), .type = SK_FIELD_ARRAY, .required = (req), .out = (o), .max_len = (maxn) \
    }
#define SK_FIELD_STRV(n, o, req, maxn) \
    { \
        .name = (n), .type = SK_FIELD_STRING_ARRAY, .required = (req), .out = (o), .max_len = (maxn) \
    }
#define SK_FIELD_STRMAP(n, o, req, maxn) \
    { \
        .name = (n), .type = SK_FIELD_STRING_MAP, .required = (req), .out = (o), .max_len = (maxn) \
    }
#define SK_FIELD_ANY(n, o, req) \
    { \
        .name = (n), .type = SK_FIELD_ANY, .required = (req), .out = (o) \
    }

/* sk_json_parse - parse a request body (len bytes, need not be
 * NUL-terminated). An empty or all-whitespace body is {}. The top level
 * must be an object; duplicate keys are rejected. On success *out is a new
 * reference (the caller decrefs). On failure returns -EINVAL with *code =
 * SK_API_INVALID_JSON ("invalid JSON at line L, column C: <why>") or
 * SK_API_INVALID_ARGUMENT (not an object). */
int sk_json_parse(const char *buf, size_t len, json_t **out, enum sk_api_code *code, struct sk_error *err);

/* sk_json_decode - check `obj` against `fields` and fill their outputs.
 * Returns -EINVAL with *code = SK_API_UNKNOWN_FIELD (a field not in the
 * list; message "unknown field 'x'") or SK_API_INVALID_ARGUMENT (missing,
 * wrong type, out of range), and the field named in err->msg. Outputs of
 * fields decoded before the error may have been written. */
int sk_json_decode(const json_t *obj, const struct sk_field *fields, size_t n, enum sk_api_code *code,
                   struct sk_error *err);
/* sk_json_decode_at - the same for a nested object; `prefix` ("limits")
 * is put in front of field names in messages ("limits.cpu"). */
int sk_json_decode_at(const json_t *obj, const char *prefix, const struct sk_field *fields, size_t n,
                      enum sk_api_code *code, struct sk_error *err);

/* sk_json_time - the API's time format: RFC 3339 UTC with milliseconds
 * ("2025-01-02T03:04:05.678Z") for Unix epoch milliseconds > 0, and null
 * for 0 ("never" / "not yet"). New reference. */
json_t *sk_json_time(int64_t ms);

/* sk_json_type_name - "string", "integer", "object", ... for messages. */
const char *sk_json_type_name(const json_t *v);

#endif
