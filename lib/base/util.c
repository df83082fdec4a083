#include "base/util.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

static void oom(void)
{
    static const char msg[] = "skiff: out of memory\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        oom();
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom();
    return p;
}

void sk_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

ssize_t sk_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

ssize_t sk_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = read(fd, p + done, len - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

int sk_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len, struct sk_error *err)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sk_error_set(err, errno, "open '%s'", path);
    size_t cap = 4096, n = 0;
    _cleanup_free_ char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= max + 1)
                return sk_error_setv(err, EFBIG, "file '%s' is larger than %zu bytes", path, max);
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sk_error_set(err, errno, "read '%s'", path);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    *out = steal_pointer(&buf);
    return 0;
}

int sk_write_file_at(int dirfd, const char *path, const char *data, size_t len, struct sk_error *err)
{
    int fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return sk_error_set(err, errno, "open '%s'", path);
    ssize_t w = sk_write_all(fd, data, len);
    int saved = errno;
    close(fd);
    if (w < 0)
        return sk_error_set(err, saved, "write '%s'", path);
    return 0;
}

int sk_parse_size(const char *s, int64_t *out, struct sk_error *err)
{
    if (s == NULL || *s == '\0')
        return sk_error_setv(err, EINVAL, "empty size");
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v) || v < 0)
        return sk_error_setv(err, EINVAL, "invalid size '%s'", s);
    double mult = 1;
    switch (*end) {
    case '\0': break;
    case 'k':
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 't':
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default: return sk_error_setv(err, EINVAL, "invalid size '%s' (use a number with K, M, G or T)", s);
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0')
        return sk_error_setv(err, EINVAL, "invalid size '%s' (use a number with K, M, G or T)", s);
    v *= mult;
    if (v > 4611686018427387904.0)
        return sk_error_setv(err, ERANGE, "size '%s' is too large", s);
    *out = (int64_t)v;
    return 0;
}

int64_t sk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int sk_mkdir_p(const char *path, mode_t mode, struct sk_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return sk_error_setv(err, ENAMETOOLONG, "path '%s' is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return sk_error_set(err, errno, "mkdir '%s'", buf);
        buf[i] = c;
    }
    return 0;
}

int sk_random_hex(char *out, size_t nbytes, struct sk_error *err)
{
    unsigned char raw[64];
    if (nbytes > sizeof(raw))
        return sk_error_setv(err, EINVAL, "random request of %zu bytes is too large", nbytes);
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(raw + got, nbytes - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sk_error_set(err, errno, "getrandom");
        }
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int r = flag == FTW_DP ? rmdir(path) : unlink(path);
    return r < 0 && errno != ENOENT ? -1 : 0;
}

int sk_remove_tree(const char *path, struct sk_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : sk_error_set(err, errno, "stat '%s'", path);
    if (nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS) < 0)
        return sk_error_set(err, errno, "remove '%s'", path);
    return 0;
}
