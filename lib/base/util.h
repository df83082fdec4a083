/* util.h - allocation, cleanup attributes and small file helpers.
 *
 * The x-allocators abort on out-of-memory (never on user input: bound every
 * size that arrives from outside before allocating). The _cleanup_*_ macros
 * release a variable when it goes out of scope; hand ownership on with
 * steal_pointer()/steal_fd().
 */
#ifndef SK_BASE_UTIL_H
#define SK_BASE_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/error.h"

#define SK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xasprintf - allocate a formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void sk_freep(void *p)
{
    free(*(void **)p);
}
static inline void sk_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
#define _cleanup_free_ __attribute__((cleanup(sk_freep)))
#define _cleanup_close_ __attribute__((cleanup(sk_closep)))

/* steal_pointer - return *pp and set it to NULL (ownership hand-off). */
static inline void *sk_steal_pointer(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) sk_steal_pointer(pp)
/* steal_fd - return *fd and set it to -1. */
static inline int steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

/* sk_close - close fd if >= 0 and set it to -1. */
void sk_close(int *fd);

/* sk_read_file_at - read a whole (small) file into a NUL-terminated heap
 * buffer of at most `max` bytes; *out is freed by the caller. */
int sk_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len, struct sk_error *err);
/* sk_write_file_at - open(O_WRONLY|O_TRUNC|O_CLOEXEC) and write `data` fully.
 * Does not allocate; safe to call in a forked child. */
int sk_write_file_at(int dirfd, const char *path, const char *data, size_t len, struct sk_error *err);

/* sk_write_all / sk_read_all - loop over short writes/reads and EINTR.
 * sk_read_all returns the byte count read (less than len only at EOF). */
ssize_t sk_write_all(int fd, const void *buf, size_t len);
ssize_t sk_read_all(int fd, void *buf, size_t len);

/* sk_parse_size - "512", "64K", "256M", "1G", "1.5G" -> bytes (1024-based).
 * Rejects negatives, garbage and values above 2^62. */
int sk_parse_size(const char *s, int64_t *out, struct sk_error *err);

/* sk_now_ns - CLOCK_MONOTONIC in nanoseconds. */
int64_t sk_now_ns(void);

/* sk_mkdir_p - create a directory and its parents with `mode` (existing ok). */
int sk_mkdir_p(const char *path, mode_t mode, struct sk_error *err);

/* sk_remove_tree - remove path and everything below it without following
 * symlinks (like rm -rf). A missing path is not an error. */
int sk_remove_tree(const char *path, struct sk_error *err);

/* sk_random_hex - fill out with 2*nbytes hex chars from getrandom() plus NUL. */
int sk_random_hex(char *out, size_t nbytes, struct sk_error *err);

#define SK_RETRY_EINTR(expr) \
    ({ \
        long _r; \
        do \
            _r = (long)(expr); \
        while (_r == -1 && errno == EINTR); \
        _r; \
    })

#endif
