/* harness.h - skiff's test harness.
 *
 * A test file defines tests with TEST(name) { ... } and links harness.o,
 * which provides main(). Each test runs in its own forked child with a
 * timeout (TEST_TIMEOUT(name, seconds, ...) to override the default 60 s).
 * Assertions print both values and end the child with status 1; SKIP()
 * ends it with 77 (use only when the kernel truly lacks a feature, and say
 * which). The run ends with the line "N passed, N failed, N skipped".
 * `./test_x NAME...` runs only tests whose name contains one of NAMEs.
 */
#ifndef SK_TESTS_HARNESS_H
#define SK_TESTS_HARNESS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef void (*sk_test_fn)(void);
void sk_test_register(const char *name, sk_test_fn fn, int timeout_s);
void sk_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
void sk_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* sk_test_on_fail - call fn(arg) when the current test fails or times out,
 * before its process ends (e.g. to stop a server it started and clean up
 * what that server left). One hook per test; a second call replaces it. */
void sk_test_on_fail(void (*fn)(void *arg), void *arg);
/* sk_test_bin_dir - directory holding the built binaries (build/), from
 * $SKIFF_BUILD_DIR or derived from the test executable's path. */
const char *sk_test_bin_dir(void);

/* sk_test_run - run argv (argv[0] is a path) with `input` on stdin (NULL:
 * /dev/null), capture stdout and stderr, and wait at most timeout_s
 * seconds (then SIGKILL). status is the waitpid status; exit_code is the
 * exit status, or 128+signal. Extra environment entries ("K=V") may be
 * given in env (NULL-terminated, may be NULL); they are added to ours. */
struct sk_test_output {
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
    int status;
    int exit_code;
    double wall_ms;
};
int sk_test_run(const char *const argv[], const char *input, const char *const env[], int timeout_s,
                struct sk_test_output *o);
void sk_test_output_free(struct sk_test_output *o);

#define TEST_TIMEOUT(name, secs) \
    static void test_##name(void); \
    __attribute__((constructor)) static void register_##name(void) \
    { \
        sk_test_register(#name, test_##name, secs); \
    } \
    static void test_##name(void)
#define TEST(name) TEST_TIMEOUT(name, 60)

#define SKIP(...) sk_test_skip(__VA_ARGS__)
#define FAIL(...) sk_test_fail(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT_TRUE(c) \
    do { \
        if (!(c)) \
            sk_test_fail(__FILE__, __LINE__, "expected true: %s", #c); \
    } while (0)
#define ASSERT_FALSE(c) \
    do { \
        if (c) \
            sk_test_fail(__FILE__, __LINE__, "expected false: %s", #c); \
    } while (0)

#define SK__ASSERT_INT(a, op, b) \
    do { \
        long long _a = (long long)(a), _b = (long long)(b); \
        if (!(_a op _b)) \
            sk_test_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, _a, _b); \
    } while (0)
#define ASSERT_EQ_INT(a, b) SK__ASSERT_INT(a, ==, b)
#define ASSERT_NE_INT(a, b) SK__ASSERT_INT(a, !=, b)
#define ASSERT_LT_INT(a, b) SK__ASSERT_INT(a, <, b)
#define ASSERT_LE_INT(a, b) SK__ASSERT_INT(a, <=, b)
#define ASSERT_GT_INT(a, b) SK__ASSERT_INT(a, >, b)
#define ASSERT_GE_INT(a, b) SK__ASSERT_INT(a, >=, b)

#define ASSERT_EQ_STR(a, b) \
    do { \
        const char *_a = (a), *_b = (b); \
        if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) \
            sk_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b, _a ? _a : "(null)", \
                         _b ? _b : "(null)"); \
    } while (0)
#define ASSERT_CONTAINS(hay, needle) \
    do { \
        const char *_h = (hay), *_n = (needle); \
        if (_h == NULL || strstr(_h, _n) == NULL) \
            sk_test_fail(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #hay, _n, _h ? _h : "(null)"); \
    } while (0)
#define ASSERT_NOT_CONTAINS(hay, needle) \
    do { \
        const char *_h = (hay), *_n = (needle); \
        if (_h != NULL && strstr(_h, _n) != NULL) \
            sk_test_fail(__FILE__, __LINE__, "%s contains \"%s\": \"%s\"", #hay, _n, _h); \
    } while (0)
/* ASSERT_OK(expr) - expr returns >= 0 on success and fills `err`. */
#define ASSERT_OK(expr) \
    do { \
        long long _r = (long long)(expr); \
        if (_r < 0) \
            sk_test_fail(__FILE__, __LINE__, "%s failed (%lld): %s", #expr, _r, err.msg); \
    } while (0)

#endif
