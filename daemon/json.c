/* json.c - strict decoding of request bodies against declared fields. */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *sk_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

int sk_json_parse(const char *buf, size_t len, json_t **out, enum sk_api_code *code, struct sk_error *err)
{
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len) {
        *out = json_object();
        return 0;
    }
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        *code = SK_API_INVALID_JSON;
        return sk_error_setv(err, EINVAL, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        *code = SK_API_INVALID_ARGUMENT;
        int r = sk_error_setv(err, EINVAL, "request body must be a JSON object, not %s", sk_json_type_name(root));
        json_decref(root);
        return r;
    }
    *out = root;
    return 0;
}

static const char *type_wanted(enum sk_field_type t)
{
    switch (t) {
    case SK_FIELD_STRING: return "a string";
    case SK_FIELD_INT: return "an integer";
    case SK_FIELD_NUMBER: return "a number";
    case SK_FIELD_BOOL: return "a boolean";
    case SK_FIELD_OBJECT: return "an object";
    case SK_FIELD_ARRAY: return "an array";
    case SK_FIELD_STRING_ARRAY: return "an array of strings";
    case SK_FIELD_STRING_MAP: return "an object of strings";
    case SK_FIELD_ANY: return "a value";
    }
    return "a value";
}

/* Field names in messages: "prefix.name", bounded (user keys can be long). */
#define FIELD_FMT "'%s%s%.64s%s'"
#define FIELD_ARGS(prefix, name) (prefix) ? (prefix) : "", (prefix) ? "." : "", (name), strlen(name) > 64 ? "..." : ""

static int wrong_type(const char *prefix, const struct sk_field *f, const json_t *v, enum sk_api_code *code,
                      struct sk_error *err)
{
    *code = SK_API_INVALID_ARGUMENT;
    return sk_error_setv(err, EINVAL, "field " FIELD_FMT " must be %s, not %s", FIELD_ARGS(prefix, f->name),
                         type_wanted(f->type), sk_json_type_name(v));
}

static int decode_one(const char *prefix, const struct sk_field *f, const json_t *v, enum sk_api_code *code,
                      struct sk_error *err)
{
    size_t max;
    switch (f->type) {
    case SK_FIELD_STRING:
        if (!json_is_string(v))
            return wrong_type(prefix, f, v, code, err);
        max = f->max_len ? f->max_len : SK_JSON_STRING_MAX;
        if (json_string_length(v) > max) {
            *code = SK_API_INVALID_ARGUMENT;
            return sk_error_setv(err, EINVAL, "field " FIELD_FMT " is longer than %zu bytes",
                                 FIELD_ARGS(prefix, f->name), max);
        }
        *(const char **)f->out = json_string_value(v);
        return 0;
    case SK_FIELD_INT: {
        if (!json_is_integer(v))
            return wrong_type(prefix, f, v, code, err);
        json_int_t n = json_integer_value(v);
        if ((f->min != 0 || f->max != 0) && (n < f->min || n > f->max)) {
            *code = SK_API_INVALID_ARGUMENT;
            return sk_error_setv(err, EINVAL,
                                 "field " FIELD_FMT " must be between %" PRId64 " and %" PRId64 " (got %lld)",
                                 FIELD_ARGS(prefix, f->name), f->min, f->max, (long long)n);
        }
        *(int64_t *)f->out = (int64_t)n;
        return 0;
    }
    case SK_FIELD_NUMBER:
        if (!json_is_number(v))
            return wrong_type(prefix, f, v, code, err);
        *(double *)f->out = json_number_value(v);
        return 0;
    case SK_FIELD_BOOL:
        if (!json_is_boolean(v))
            return wrong_type(prefix, f, v, code, err);
        *(bool *)f->out = json_is_true(v);
        return 0;
    case SK_FIELD_OBJECT:
        if (!json_is_object(v))
            return wrong_type(prefix, f, v, code, err);
        *(const json_t **)f->out = v;
        return 0;
    case SK_FIELD_ARRAY:
    case SK_FIELD_STRING_ARRAY: {
        if (!json_is_array(v))
            return wrong_type(prefix, f, v, code, err);
        max = f->max_len ? f->max_len : SK_JSON_COLLECTION_MAX;
        if (json_array_size(v) > max) {
            *code = SK_API_INVALID_ARGUMENT;
            return sk_error_setv(err, EINVAL, "field " FIELD_FMT " has more than %zu elements",
                                 FIELD_ARGS(prefix, f->name), max);
        }
        if (f->type == SK_FIELD_STRING_ARRAY) {
            size_t i;
            const json_t *e;
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e)) {
                    *code = SK_API_INVALID_ARGUMENT;
                    return sk_error_setv(err, EINVAL,
                                         "field " FIELD_FMT " must be an array of strings, but "
                                         "element %zu is %s",
                                         FIELD_ARGS(prefix, f->name), i, sk_json_type_name(e));
                }
                if (json_string_length(e) > SK_JSON_ELEMENT_MAX) {
                    *code = SK_API_INVALID_ARGUMENT;
                    return sk_error_setv(err, EINVAL, "field " FIELD_FMT ": element %zu is longer than %d bytes",
                                         FIELD_ARGS(prefix, f->name), i, SK_JSON_ELEMENT_MAX);
                }
            }
        }
        *(const json_t **)f->out = v;
        return 0;
    }
    case SK_FIELD_STRING_MAP: {
        if (!json_is_object(v))
            return wrong_type(prefix, f, v, code, err);
        max = f->max_len ? f->max_len : SK_JSON_COLLECTION_MAX;
        if (json_object_size(v) > max) {
            *code = SK_API_INVALID_ARGUMENT;
            return sk_error_setv(err, EINVAL, "field " FIELD_FMT " has more than %zu entries",
                                 FIELD_ARGS(prefix, f->name), max);
        }
        const char *key;
        const json_t *e;
        json_object_foreach((json_t *)v, key, e)
        {
            if (key[0] == '\0' || strlen(key) > SK_JSON_KEY_MAX) {
                *code = SK_API_INVALID_ARGUMENT;
                return sk_error_setv(err, EINVAL, "field " FIELD_FMT ": keys must be 1 to %d bytes",
                                     FIELD_ARGS(prefix, f->name), SK_JSON_KEY_MAX);
            }
            if (!json_is_string(e)) {
                *code = SK_API_INVALID_ARGUMENT;
                return sk_error_setv(err, EINVAL, "field " FIELD_FMT ": value of '%.64s' must be a string, not %s",
                                     FIELD_ARGS(prefix, f->name), key, sk_json_type_name(e));
            }
            if (json_string_length(e) > SK_JSON_ELEMENT_MAX) {
                *code = SK_API_INVALID_ARGUMENT;
                return sk_error_setv(err, EINVAL, "field " FIELD_FMT ": value of '%.64s' is longer than %d bytes",
                                     FIELD_ARGS(prefix, f->name), key, SK_JSON_ELEMENT_MAX);
            }
        }
        *(const json_t **)f->out = v;
        return 0;
    }
    case SK_FIELD_ANY: *(const json_t **)f->out = v; return 0;
    }
    *code = SK_API_INTERNAL;
    return sk_error_setv(err, EINVAL, "field " FIELD_FMT " has an unknown declared type", FIELD_ARGS(prefix, f->name));
}

int sk_json_decode_at(const json_t *obj, const char *prefix, const struct sk_field *fields, size_t n,
                      enum sk_api_code *code, struct sk_error *err)
{
    if (!json_is_object(obj)) {
        *code = SK_API_INVALID_ARGUMENT;
        if (prefix != NULL)
            return sk_error_setv(err, EINVAL, "field '%s' must be an object, not %s", prefix, sk_json_type_name(obj));
        return sk_error_setv(err, EINVAL, "request body must be a JSON object, not %s", sk_json_type_name(obj));
    }
    /* Unknown fields first: a typo in an optional field must not pass silently. */
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(fields[i].name, key) == 0;
        if (!known) {
            *code = SK_API_UNKNOWN_FIELD;
            return sk_error_setv(err, EINVAL, "unknown field " FIELD_FMT, FIELD_ARGS(prefix, key));
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct sk_field *f = &fields[i];
        v = json_object_get(obj, f->name);
        bool given = v != NULL && !json_is_null(v);
        if (f->present != NULL)
            *f->present = given;
        if (!given) {
            if (f->required) {
                *code = SK_API_INVALID_ARGUMENT;
                return sk_error_setv(err, EINVAL, "field " FIELD_FMT " is required", FIELD_ARGS(prefix, f->name));
            }
            continue;
        }
        int r = decode_one(prefix, f, v, code, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int sk_json_decode(const json_t *obj, const struct sk_field *fields, size_t n, enum sk_api_code *code,
                   struct sk_error *err)
{
    return sk_json_decode_at(obj, NULL, fields, n, code, err);
}

json_t *sk_json_time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return json_null();
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return json_string(buf);
}
