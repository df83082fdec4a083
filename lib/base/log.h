/* log.h - the one logging module.
 *
 * Levels are checked before formatting. Messages are lowercase, without a
 * full stop, with the subject in quotes: sk_log_info("cgroup driver 'v1'").
 * Output goes to stderr as "skiff[pid]: level: message". Not thread-safe with
 * respect to sk_log_set_level; logging itself is a single write(2).
 */
#ifndef SK_BASE_LOG_H
#define SK_BASE_LOG_H

#include <stdbool.h>

enum sk_log_level { SK_LOG_ERROR = 0, SK_LOG_WARN = 1, SK_LOG_INFO = 2, SK_LOG_DEBUG = 3 };

/* sk_log_set_level - set the global threshold (default: SK_LOG_WARN, or the
 * value of $SKIFF_LOG: error|warn|info|debug, read by sk_log_init_from_env). */
void sk_log_set_level(enum sk_log_level level);
void sk_log_init_from_env(void);
bool sk_log_enabled(enum sk_log_level level);
void sk_log_write(enum sk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sk_log_error(...) \
    do { \
        if (sk_log_enabled(SK_LOG_ERROR)) \
            sk_log_write(SK_LOG_ERROR, __VA_ARGS__); \
    } while (0)
#define sk_log_warn(...) \
    do { \
        if (sk_log_enabled(SK_LOG_WARN)) \
            sk_log_write(SK_LOG_WARN, __VA_ARGS__); \
    } while (0)
#define sk_log_info(...) \
    do { \
        if (sk_log_enabled(SK_LOG_INFO)) \
            sk_log_write(SK_LOG_INFO, __VA_ARGS__); \
    } while (0)
#define sk_log_debug(...) \
    do { \
        if (sk_log_enabled(SK_LOG_DEBUG)) \
            sk_log_write(SK_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
