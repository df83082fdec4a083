/* channel.h - carry protocol messages over the control socket.
 *
 * One message is one record of a connected AF_UNIX SOCK_SEQPACKET socket,
 * with up to SK_PROTO_MAX_FDS file descriptors attached (SCM_RIGHTS). These
 * functions move bytes and fds only; sk_proto_decode judges the bytes.
 * Received fds are close-on-exec. Used by skiff-init and by the host side,
 * so nothing here allocates or logs. Thread-safe on distinct sockets.
 */
#ifndef SK_PROTO_CHANNEL_H
#define SK_PROTO_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* sk_channel_send - send one message of `len` bytes with `nfds` (at most
 * SK_PROTO_MAX_FDS) fds; the fds stay open here. Never raises SIGPIPE.
 * Returns 0, -EAGAIN when nonblock and the socket is full, -EPIPE when the
 * peer is gone, or another -errno. */
int sk_channel_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds, bool nonblock,
                    struct sk_error *err);

/* sk_channel_recv - receive one message into buf (cap bytes) and its fds
 * into fds (at most max_fds; *nfds gets the count, the caller owns them).
 * Returns 1 for a message (*len may be 0 for an empty record), 0 when the
 * peer has closed (after every message it sent before closing, also when it
 * closed with ours unread), -EAGAIN when nonblock and nothing is queued. A record
 * longer than cap gives -EMSGSIZE and one with more fds than fit gives
 * -EPROTO; in both cases *len holds the bytes kept (enough to read the
 * header) and every fd that came with it is already closed. */
int sk_channel_recv(int fd, void *buf, size_t cap, size_t *len, int *fds, size_t max_fds, size_t *nfds, bool nonblock,
                    struct sk_error *err);

#endif
