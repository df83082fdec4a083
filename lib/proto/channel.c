#include "proto/channel.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"

int sk_channel_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds, bool nonblock,
                    struct sk_error *err)
{
    if (nfds > SK_PROTO_MAX_FDS)
        return sk_error_setv(err, EINVAL, "cannot attach %zu fds to one message", nfds);
    union {
        char buf[CMSG_SPACE(sizeof(int) * SK_PROTO_MAX_FDS)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    int flags = MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0);
    ssize_t n;
    do
        n = sendmsg(fd, &mh, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return sk_error_setv(err, EAGAIN, "control socket is full");
        if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
            return sk_error_setv(err, EPIPE, "control socket peer is gone");
        return sk_error_set(err, errno, "send on control socket");
    }
    if ((size_t)n != len)
        return sk_error_setv(err, EIO, "short send on control socket (%zd of %zu bytes)", n, len);
    return 0;
}

/* peer_closed - after a 0-byte read: was it the peer's close, or an empty
 * record? A SEQPACKET socket reports both the same way. */
static bool peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int r;
    do
        r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    return r < 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int sk_channel_recv(int fd, void *buf, size_t cap, size_t *len, int *fds, size_t max_fds, size_t *nfds, bool nonblock,
                    struct sk_error *err)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * SK_PROTO_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    *len = 0;
    *nfds = 0;
    int flags = MSG_CMSG_CLOEXEC | (nonblock ? MSG_DONTWAIT : 0);
    ssize_t n;
    do
        n = recvmsg(fd, &mh, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ECONNRESET) {
        /* The peer closed with messages of ours unread. Linux reports that
         * once, ahead of what the peer sent before closing (a last EXIT, or
         * the ERROR that explains a refused connection): read on. */
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof(control.buf);
        mh.msg_flags = 0;
        do
            n = recvmsg(fd, &mh, flags | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return 0;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return sk_error_setv(err, EAGAIN, "no message on control socket");
        if (errno == ECONNRESET)
            return 0;
        return sk_error_set(err, errno, "receive on control socket");
    }

    /* Collect every fd that arrived, keeping at most max_fds. */
    bool too_many = (mh.msg_flags & MSG_CTRUNC) != 0;
    size_t got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int rfd;
            memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < max_fds) {
                fds[got++] = rfd;
            } else {
                close(rfd);
                too_many = true;
            }
        }
    }
    *len = (size_t)n <= cap ? (size_t)n : cap;
    bool truncated = (mh.msg_flags & MSG_TRUNC) != 0;
    if (truncated || too_many) {
        for (size_t i = 0; i < got; i++)
            close(fds[i]);
        if (truncated)
            return sk_error_setv(err, EMSGSIZE, "message on control socket exceeds %zu bytes", cap);
        return sk_error_setv(err, EPROTO, "message on control socket carries more than %zu fds", max_fds);
    }
    *nfds = got;
    if (n == 0 && got == 0 && peer_closed(fd))
        return 0;
    return 1;
}
