/* sandbox_test.h - shared helpers for tests that run `skiff run`.
 * Header-only (each test file is its own program). */
#ifndef SK_TESTS_SANDBOX_TEST_H
#define SK_TESTS_SANDBOX_TEST_H

#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>

#include "base/util.h"
#include "harness.h"

/* Tests keep their runtime state apart from a user's /var/lib/skiff. */
#define TEST_STATE_DIR "/var/tmp/skiff-test-state"

static const char *const test_env[] = {"SKIFF_STATE_DIR=" TEST_STATE_DIR, NULL};

static inline const char *skiff_bin(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/skiff", sk_test_bin_dir());
    return path;
}

static inline const char *probe_mount(void)
{
    static char arg[PATH_MAX];
    snprintf(arg, sizeof(arg), "%s/tests/helpers:/probe:ro", sk_test_bin_dir());
    return arg;
}

/* skiff_run - run `skiff run <args...>` (NULL-terminated) with optional stdin. */
static inline void skiff_run_in(struct sk_test_output *o, const char *input, int timeout_s, ...)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = skiff_bin();
    argv[n++] = "run";
    va_list ap;
    va_start(ap, timeout_s);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 62)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    if (sk_test_run(argv, input, test_env, timeout_s, o) < 0)
        FAIL("could not run %s", argv[0]);
}
#define skiff_run(o, ...) skiff_run_in(o, NULL, 60, __VA_ARGS__, (const char *)NULL)

/* json_int - the integer value of "key": in a one-line JSON record. */
static inline long long json_int(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (p == NULL)
        FAIL("no \"%s\" in %s", key, json ? json : "(null)");
    return strtoll(p + strlen(pat), NULL, 10);
}

static inline double json_num(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (p == NULL)
        FAIL("no \"%s\" in %s", key, json ? json : "(null)");
    return strtod(p + strlen(pat), NULL);
}

/* last_line - pointer to the last non-empty line of s (modifies s). */
static inline const char *last_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
    char *p = strrchr(s, '\n');
    return p ? p + 1 : s;
}

#endif
