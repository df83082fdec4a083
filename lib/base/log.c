#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The log threshold is process-wide configuration set once at startup; it is
 * the one piece of global state the style guide allows outside a context. */
static enum sk_log_level log_level = SK_LOG_WARN;

void sk_log_set_level(enum sk_log_level level)
{
    log_level = level;
}

void sk_log_init_from_env(void)
{
    const char *v = getenv("SKIFF_LOG");
    if (v == NULL)
        return;
    if (strcmp(v, "error") == 0)
        log_level = SK_LOG_ERROR;
    else if (strcmp(v, "warn") == 0)
        log_level = SK_LOG_WARN;
    else if (strcmp(v, "info") == 0)
        log_level = SK_LOG_INFO;
    else if (strcmp(v, "debug") == 0)
        log_level = SK_LOG_DEBUG;
}

bool sk_log_enabled(enum sk_log_level level)
{
    return level <= log_level;
}

void sk_log_write(enum sk_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "skiff[%d]: %s: ", (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}
