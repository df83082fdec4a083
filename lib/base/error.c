#include "base/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int error_vset(struct sk_error *err, int code, bool with_strerror, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int error_vset(struct sk_error *err, int code, bool with_strerror, const char *fmt, va_list ap)
{
    if (code <= 0)
        code = code < 0 ? -code : EIO;
    if (err == NULL)
        return -code;
    err->code = code;
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    if (with_strerror && n >= 0 && (size_t)n < sizeof(err->msg)) {
        char buf[128];
        const char *s = strerror_r(code, buf, sizeof(buf));
        snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", s);
    }
    return -code;
}

int sk_error_set(struct sk_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_vset(err, code, true, fmt, ap);
    va_end(ap);
    return r;
}

int sk_error_setv(struct sk_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_vset(err, code, false, fmt, ap);
    va_end(ap);
    return r;
}

int sk_error_prefix(struct sk_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return -EIO;
    char old[SK_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof(err->msg)) {
        size_t at = (size_t)n;
        err->msg[at++] = ':';
        err->msg[at++] = ' ';
        size_t rest = sizeof(err->msg) - at - 1;
        size_t olen = strnlen(old, rest);
        memcpy(err->msg + at, old, olen);
        err->msg[at + olen] = '\0';
    }
    if (err->code == 0)
        err->code = EIO;
    return -err->code;
}

void sk_error_clear(struct sk_error *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
