/* follow.h - follow a process's output streams from skiffd, concurrently
 * (one curl multi handle), while forwarding stdin, window size changes and
 * signals to it. Used by `sandbox exec`, `sandbox shell` and `sandbox logs`.
 *
 * Each stream is GET <output_path>?stream=stdout|stderr&offset=N&follow=0|1.
 * When a connection drops before the stream's end (the chunked answer lacks
 * its final chunk, the connection is refused or reset, the server answers
 * 503 while it stops), the stream is requested again from the byte offset
 * already written, so nothing is lost or repeated; it gives up after about
 * a minute without progress.
 *
 * For tests, $SKIFF_STREAM_DROP_AFTER=N makes the client read with a tiny
 * buffer and drop every stream connection after N bytes, so the resume path
 * runs without anything failing on the server's side.
 */
#ifndef SK_CLI_FOLLOW_H
#define SK_CLI_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"

struct sk_follow_opts {
    const char *output_path; /* ".../execs/EID/output" or ".../logs", escaped */
    bool follow;             /* wait for more output until the process ends */
    int stdout_fd;           /* where each stream goes; -1: not fetched */
    int stderr_fd;
    /* stdin forwarding: chunks POSTed to stdin_path in order, then ?eof=1 */
    int stdin_fd; /* -1: none */
    const char *stdin_path;
    /* a terminal: its size is POSTed to resize_path on SIGWINCH */
    const char *resize_path; /* NULL: none */
    int tty_fd;
    /* SIGINT, SIGTERM and SIGHUP are POSTed to signal_path (the third
     * SIGINT sends SIGKILL); NULL leaves them alone */
    const char *signal_path;
};

/* sk_follow - run until every requested stream has ended (the process has
 * ended and its output is written) or an error that retrying cannot fix.
 * Blocks the signals it forwards while it runs. Returns 0 or -1 (e set). */
int sk_follow(struct sk_client *c, const struct sk_follow_opts *o, struct sk_client_error *e);

#endif
