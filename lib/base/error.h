/* error.h - skiff's one error type.
 *
 * Every fallible function takes `struct sk_error *err` as its last parameter,
 * returns a negative value on failure and fills `err` (when non-NULL) with an
 * errno-style code and a human-readable message. See docs/error_handling.md.
 */
#ifndef SK_BASE_ERROR_H
#define SK_BASE_ERROR_H

#include <stdarg.h>

#define SK_ERROR_MSG_MAX 512

struct sk_error {
    int code;                   /* positive errno value (EINVAL, ENOENT, ...); 0 = no error */
    char msg[SK_ERROR_MSG_MAX]; /* lowercase, no full stop: "open '/x': No such file or directory" */
};

/* sk_error_set - record `code` and a formatted message in `err` (may be NULL).
 * The strerror(code) text is appended after ": ". Always returns -code (or -EIO
 * when code is 0) so callers can `return sk_error_set(err, errno, "...")`.
 * Async-signal-safe enough for a forked child: uses vsnprintf only. */
int sk_error_set(struct sk_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* sk_error_setv - like sk_error_set but without the strerror suffix. */
int sk_error_setv(struct sk_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* sk_error_prefix - prepend context: "create sandbox: <old message>". Returns -code. */
int sk_error_prefix(struct sk_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sk_error_clear - reset to "no error". */
void sk_error_clear(struct sk_error *err);

#endif
