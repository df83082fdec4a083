/* skiff-init - pid 1 of every sandbox.
 *
 * The host side starts it with the control socket (SOCK_SEQPACKET) as fd 3
 * and stdin/stdout/stderr on /dev/null, after namespaces, pivot_root,
 * capabilities, no_new_privs and seccomp are in place. It serves the
 * requests of docs/protocol.md one at a time in one epoll loop over the
 * control socket, a signalfd for SIGCHLD and, while watches exist, an
 * inotify fd (watch.c), with per-process timeouts as the epoll timeout. It
 * reaps every child (orphans included) and reports the ones it started
 * with EXIT events. When the control socket closes it
 * SIGKILLs the processes it started and exits 0 - unless the sandbox is
 * persistent (a listening socket on fd 4): then its processes keep running,
 * EXITs are kept until the host RELEASEs them, and the next owner connects
 * on the listening socket, one connection at a time.
 *
 * It trusts nothing it receives: a malformed request gets an ERROR reply
 * (EPROTO/EINVAL) and the loop goes on.
 *
 * Environment:
 *   SKIFF_LOG=error|warn|info|debug   log level (logs go to stderr)
 *   SKIFF_INIT_ROOT=DIR               FOR TESTS ONLY: resolve file operations
 *       inside DIR instead of "/", so tests can drive the file operations of
 *       a real skiff-init outside any sandbox. Processes are not confined to
 *       DIR (spawn's cwd and PATH lookup use the real "/"). Never set it in a
 *       sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "init.h"
#include "proto/channel.h"

/* The one instance; main.c is the only file allowed a static one. */
static struct sk_init init_state;

int sk_init_send(struct sk_init *init, const struct sk_proto_msg *msg, const int *fds, size_t nfds)
{
    struct sk_error err = {0};
    size_t len;
    if (init->host_gone || init->conn_broken || init->ctl_fd < 0)
        return -EPIPE;
    int r = sk_proto_encode(msg, init->tx, sizeof(init->tx), &len, &err);
    if (r < 0) {
        sk_log_error("cannot encode reply: %s", err.msg);
        return r;
    }
    r = sk_channel_send(init->ctl_fd, init->tx, len, fds, nfds, false, &err);
    if (r < 0) {
        sk_log_info("control socket: %s", err.msg);
        /* The handler that sent goes on; the loop drops the connection. */
        init->conn_broken = true;
        if (init->listen_fd < 0)
            init->host_gone = true;
    }
    return r;
}

int sk_init_reply_ok(struct sk_init *init, uint32_t id, uint32_t handle, int fd)
{
    struct sk_proto_msg m = {.type = SK_PROTO_OK, .id = id};
    m.u.ok.handle = handle;
    return sk_init_send(init, &m, &fd, fd >= 0 ? 1 : 0);
}

int sk_init_reply_error(struct sk_init *init, uint32_t id, const struct sk_error *e)
{
    struct sk_proto_msg m = {.type = SK_PROTO_ERROR, .id = id};
    m.u.error.code = e->code > 0 && e->code <= 4095 ? (uint32_t)e->code : EIO;
    m.u.error.message = sk_proto_str_c(e->msg);
    if (m.u.error.message.len > SK_PROTO_ERRMSG_MAX)
        m.u.error.message.len = SK_PROTO_ERRMSG_MAX;
    sk_log_debug("request %u failed: %s", id, e->msg);
    return sk_init_send(init, &m, NULL, 0);
}

static int hello(struct sk_init *init, const struct sk_proto_msg *m, struct sk_error *err)
{
    if (m->u.hello.version < SK_PROTO_VERSION)
        return sk_error_setv(err, EPROTO, "protocol version %u is not supported (need %d)", m->u.hello.version,
                             SK_PROTO_VERSION);
    struct sk_proto_msg r = {.type = SK_PROTO_HELLO_OK, .id = m->id};
    r.u.hello_ok.version = SK_PROTO_VERSION;
    r.u.hello_ok.pid = (uint32_t)getpid();
    sk_init_send(init, &r, NULL, 0);
    /* A new owner learns how the processes ended that it has not released,
     * including those that ended while nobody was connected. */
    if (!init->conn_hello) {
        init->conn_hello = true;
        sk_init_resend_exits(init);
    }
    return 0;
}

static void dispatch(struct sk_init *init, const struct sk_proto_msg *m, int *fds, size_t nfds)
{
    struct sk_error err = {0};
    int r;
    sk_log_debug("request %u '%s'", m->id, sk_proto_type_name(m->type));
    switch (m->type) {
    case SK_PROTO_HELLO: r = hello(init, m, &err); break;
    case SK_PROTO_SPAWN: r = sk_init_spawn(init, m, fds, nfds, &err); break;
    case SK_PROTO_SIGNAL: r = sk_init_signal(init, m, &err); break;
    case SK_PROTO_RESIZE: r = sk_init_resize(init, m, &err); break;
    case SK_PROTO_STAT: r = sk_init_stat(init, m, &err); break;
    case SK_PROTO_OPEN_READ: r = sk_init_open_read(init, m, &err); break;
    case SK_PROTO_WRITE_BEGIN: r = sk_init_write_begin(init, m, &err); break;
    case SK_PROTO_WRITE_COMMIT: r = sk_init_write_commit(init, m, &err); break;
    case SK_PROTO_WRITE_ABORT: r = sk_init_write_abort(init, m, &err); break;
    case SK_PROTO_LIST: r = sk_init_list(init, m, &err); break;
    case SK_PROTO_MKDIR: r = sk_init_mkdir(init, m, &err); break;
    case SK_PROTO_REMOVE: r = sk_init_remove(init, m, &err); break;
    case SK_PROTO_RENAME: r = sk_init_rename(init, m, &err); break;
    case SK_PROTO_LIST_PROCS: r = sk_init_list_procs(init, m, &err); break;
    case SK_PROTO_RELEASE: r = sk_init_release(init, m, &err); break;
    case SK_PROTO_OPEN_PTY: r = sk_init_open_pty(init, m, &err); break;
    case SK_PROTO_WATCH_ADD: r = sk_init_watch_add(init, m, &err); break;
    case SK_PROTO_WATCH_REMOVE: r = sk_init_watch_remove(init, m, &err); break;
    default: r = sk_error_setv(&err, EPROTO, "'%s' is not a request", sk_proto_type_name(m->type)); break;
    }
    if (r < 0)
        sk_init_reply_error(init, m->id, &err);
}

/* close_fds - close the fds a request brought along (-1: already closed). */
static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sk_close(&fds[i]);
}

/* disconnect - end the current connection. Pending atomic writes and
 * watches die with it: their fds, handles and watch ids were only the
 * departed owner's. */
static void disconnect(struct sk_init *init)
{
    if (init->ctl_fd < 0)
        return;
    epoll_ctl(init->ep_fd, EPOLL_CTL_DEL, init->ctl_fd, NULL);
    sk_close(&init->ctl_fd);
    init->conn_broken = false;
    init->conn_hello = false;
    sk_init_writes_cleanup(init);
    sk_init_watch_clear(init);
    sk_log_info("owner disconnected; waiting for the next one");
}

/* connection_ended - the host closed the control socket (or it broke). */
static void connection_ended(struct sk_init *init)
{
    if (init->listen_fd < 0)
        init->host_gone = true;
    else
        disconnect(init);
}

/* peer_hung_up - the current connection's peer has closed its end. */
static bool peer_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int r = SK_RETRY_EINTR(poll(&p, 1, 0));
    return r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* accept_owner - a new owner connects. Only one connection is served at a
 * time: while the current one is alive the newcomer gets ERROR(EBUSY) with
 * request id 0 and is closed. A current connection whose peer already hung
 * up (a crashed owner whose EOF we have not read yet) gives way; requests it
 * left unread are dropped, as their sender is gone. */
static void accept_owner(struct sk_init *init)
{
    int fd = accept4(init->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            sk_log_warn("accept on the listening socket: %s", strerror(errno));
        return;
    }
    if (init->ctl_fd >= 0 && (init->conn_broken || peer_hung_up(init->ctl_fd)))
        disconnect(init);
    if (init->ctl_fd >= 0) {
        struct sk_error busy = {0};
        sk_error_setv(&busy, EBUSY, "another owner is connected to this sandbox");
        struct sk_proto_msg m = {.type = SK_PROTO_ERROR, .id = 0};
        m.u.error.code = EBUSY;
        m.u.error.message = sk_proto_str_c(busy.msg);
        size_t len;
        if (sk_proto_encode(&m, init->tx, sizeof(init->tx), &len, NULL) == 0)
            (void)sk_channel_send(fd, init->tx, len, NULL, 0, true, NULL);
        close(fd);
        sk_log_info("refused a second owner connection");
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(init->ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        sk_log_warn("epoll add owner connection: %s", strerror(errno));
        close(fd);
        return;
    }
    init->ctl_fd = fd;
    init->conn_broken = false;
    init->conn_hello = false;
    sk_log_info("owner connected");
}

/* request_fds_ok - only SPAWN with SK_PROTO_SPAWN_OUTPUT_FDS carries fds
 * (sk_init_spawn checks how many and what they are). */
static bool request_fds_ok(const struct sk_proto_msg *m, size_t nfds)
{
    if (m->type == SK_PROTO_SPAWN && (m->u.spawn.flags & SK_PROTO_SPAWN_OUTPUT_FDS))
        return true;
    return nfds == 0;
}

/* serve - handle every request queued on the control socket. */
static void serve(struct sk_init *init)
{
    while (init->ctl_fd >= 0 && !init->host_gone && !init->conn_broken) {
        struct sk_error err = {0};
        struct sk_proto_msg m;
        int fds[SK_PROTO_MAX_FDS];
        size_t len, nfds;
        int r =
            sk_channel_recv(init->ctl_fd, init->rx, sizeof(init->rx), &len, fds, SK_PROTO_MAX_FDS, &nfds, true, &err);
        if (r == -EAGAIN)
            return;
        if (r == 0) {
            close_fds(fds, nfds);
            sk_log_info("control socket closed");
            connection_ended(init);
            return;
        }
        if (r == -EMSGSIZE || r == -EPROTO) {
            (void)sk_proto_decode(init->rx, len, &m, NULL); /* only for the request id */
            sk_init_reply_error(init, m.id, &err);
            continue;
        }
        if (r < 0) {
            sk_log_error("control socket: %s", err.msg);
            connection_ended(init);
            return;
        }
        if (sk_proto_decode(init->rx, len, &m, &err) < 0) {
            close_fds(fds, nfds);
            sk_log_info("bad request: %s", err.msg);
            sk_init_reply_error(init, m.id, &err);
            continue;
        }
        if (!request_fds_ok(&m, nfds)) {
            close_fds(fds, nfds);
            sk_error_setv(&err, EPROTO, "'%s' request carries file descriptors", sk_proto_type_name(m.type));
            sk_init_reply_error(init, m.id, &err);
            continue;
        }
        /* Events that earlier requests (or anything else) caused go out
         * before this request acts, so the host sees them in order. */
        if (init->watch_fd >= 0)
            sk_init_watch_read(init);
        /* Whatever fds came along are closed as soon as the request is
         * handled: skiff-init keeps none of the host's. */
        dispatch(init, &m, fds, nfds);
        close_fds(fds, nfds);
    }
}

/* ---- set-up steps ---- */

/* Children get fresh fds 0-2, but the pipes we create for them must not land
 * on 0-2 here, so make sure those are taken. */
static int ensure_std_fds(struct sk_error *err)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n < 0)
            n = eventfd(0, 0); /* any placeholder will do */
        if (n < 0)
            return sk_error_set(err, errno, "open placeholder for fd %d", fd);
        if (n != fd) {
            /* Lower fds are taken, so this cannot happen; be safe anyway. */
            if (dup2(n, fd) < 0)
                return sk_error_set(err, errno, "dup2 to fd %d", fd);
            close(n);
        }
    }
    return 0;
}

static int check_ctl_fd(struct sk_init *init, struct sk_error *err)
{
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(SK_INIT_CTL_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return sk_error_set(err, errno, "fd %d is not the control socket", SK_INIT_CTL_FD);
    if (type != SOCK_SEQPACKET)
        return sk_error_setv(err, EINVAL, "fd %d is not a SOCK_SEQPACKET socket", SK_INIT_CTL_FD);
    if (fcntl(SK_INIT_CTL_FD, F_SETFD, FD_CLOEXEC) < 0)
        return sk_error_set(err, errno, "set close-on-exec on fd %d", SK_INIT_CTL_FD);
    init->ctl_fd = SK_INIT_CTL_FD;
    return 0;
}

/* check_listen_fd - a persistent sandbox's owner passes a listening unix
 * SOCK_SEQPACKET socket as fd 4; anything else there is not ours to use
 * (and, as before, left alone). */
static int check_listen_fd(struct sk_init *init, struct sk_error *err)
{
    int type = 0, domain = 0, listening = 0;
    socklen_t len = sizeof(int);
    if (getsockopt(SK_INIT_LISTEN_FD, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
        return 0;
    len = sizeof(int);
    if (getsockopt(SK_INIT_LISTEN_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
        return 0;
    len = sizeof(int);
    if (getsockopt(SK_INIT_LISTEN_FD, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
        return 0;
    if (fcntl(SK_INIT_LISTEN_FD, F_SETFD, FD_CLOEXEC) < 0)
        return sk_error_set(err, errno, "set close-on-exec on fd %d", SK_INIT_LISTEN_FD);
    int fl = fcntl(SK_INIT_LISTEN_FD, F_GETFL);
    if (fl < 0 || fcntl(SK_INIT_LISTEN_FD, F_SETFL, fl | O_NONBLOCK) < 0)
        return sk_error_set(err, errno, "make fd %d non-blocking", SK_INIT_LISTEN_FD);
    init->listen_fd = SK_INIT_LISTEN_FD;
    sk_log_info("persistent: owners reconnect on fd %d", SK_INIT_LISTEN_FD);
    return 0;
}

static int open_root(struct sk_init *init, struct sk_error *err)
{
    const char *root = getenv("SKIFF_INIT_ROOT");
    if (root == NULL || *root == '\0')
        root = "/";
    else
        sk_log_info("test mode: file operations resolve inside '%s'", root);
    init->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (init->root_fd < 0)
        return sk_error_set(err, errno, "open root '%s'", root);
    return 0;
}

static int setup_signals(struct sk_init *init, struct sk_error *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return sk_error_set(err, errno, "block SIGCHLD");
    init->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (init->sig_fd < 0)
        return sk_error_set(err, errno, "signalfd");
    /* A dead host must show up as EPIPE, not kill us. Children get SIG_DFL
     * back before exec. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int setup_epoll(struct sk_init *init, struct sk_error *err)
{
    init->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    if (init->ep_fd < 0)
        return sk_error_set(err, errno, "epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = init->ctl_fd};
    if (epoll_ctl(init->ep_fd, EPOLL_CTL_ADD, init->ctl_fd, &ev) < 0)
        return sk_error_set(err, errno, "epoll add control socket");
    ev.data.fd = init->sig_fd;
    if (epoll_ctl(init->ep_fd, EPOLL_CTL_ADD, init->sig_fd, &ev) < 0)
        return sk_error_set(err, errno, "epoll add signalfd");
    if (init->listen_fd >= 0) {
        ev.data.fd = init->listen_fd;
        if (epoll_ctl(init->ep_fd, EPOLL_CTL_ADD, init->listen_fd, &ev) < 0)
            return sk_error_set(err, errno, "epoll add listening socket");
    }
    return 0;
}

static int setup(struct sk_init *init, struct sk_error *err)
{
    int r;
    /* Not dumpable: processes in the sandbox, even as its root, can neither
     * ptrace us nor read /proc/1/{mem,environ,fd}. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return sk_error_set(err, errno, "prctl PR_SET_DUMPABLE");
    /* As pid 1 we reap orphans anyway; outside a pid namespace (tests) this
     * makes us their reaper too. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        sk_log_warn("prctl PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    /* File operations apply the modes they are given exactly. */
    umask(0);
    r = ensure_std_fds(err);
    if (r < 0)
        return r;
    r = check_ctl_fd(init, err);
    if (r < 0)
        return r;
    r = check_listen_fd(init, err);
    if (r < 0)
        return r;
    r = open_root(init, err);
    if (r < 0)
        return r;
    r = setup_signals(init, err);
    if (r < 0)
        return r;
    return setup_epoll(init, err);
}

static void drain_signalfd(struct sk_init *init)
{
    struct signalfd_siginfo si[8];
    while (read(init->sig_fd, si, sizeof(si)) > 0)
        ;
}

static void run(struct sk_init *init)
{
    while (!init->host_gone) {
        struct epoll_event evs[4];
        int n = epoll_wait(init->ep_fd, evs, (int)SK_ARRAY_SIZE(evs), sk_init_next_timeout_ms(init));
        if (n < 0 && errno != EINTR) {
            sk_log_error("epoll_wait: %s", strerror(errno));
            return;
        }
        sk_init_expire(init);
        for (int i = 0; i < n && !init->host_gone; i++) {
            if (evs[i].data.fd == init->sig_fd) {
                drain_signalfd(init);
                sk_init_reap(init);
            } else if (evs[i].data.fd == init->listen_fd) {
                accept_owner(init);
            } else if (evs[i].data.fd == init->ctl_fd) {
                if (evs[i].events & EPOLLOUT)
                    sk_init_watch_flush(init);
                serve(init);
            } else if (init->watch_fd >= 0 && evs[i].data.fd == init->watch_fd) {
                sk_init_watch_read(init);
            }
            if (init->conn_broken && !init->host_gone)
                disconnect(init);
        }
    }
}

int main(void)
{
    struct sk_init *init = &init_state;
    struct sk_error err = {0};
    sk_log_init_from_env();
    init->ctl_fd = init->listen_fd = init->root_fd = init->sig_fd = init->ep_fd = init->watch_fd = -1;
    init->next_proc_id = 1;
    init->next_watch_id = 1;
    init->next_handle = 1;
    if (setup(init, &err) < 0) {
        sk_log_error("skiff-init: %s", err.msg);
        return 1;
    }
    sk_log_info("skiff-init ready");
    run(init);
    sk_init_kill_all(init);
    sk_init_writes_cleanup(init);
    return 0;
}
