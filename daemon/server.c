/*
 * server.c - the io_uring event loop: the transport (see server.h).
 *
 * Every completion carries user data = kind (8 bits) | connection index (32) | generation
 * (24), so a completion that arrives after its connection was closed and the index reused
 * is recognised and ignored. Per connection there is at most one receive and one send in
 * flight; replies wait in a bounded queue. A connection is freed only when the ring holds
 * no operation on it any more. Each reply's undo is called exactly once: when the send
 * completes (delivered) or when the reply is dropped (not delivered).
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "httpd.h"

enum { K_ACCEPT = 1, K_RECV, K_SEND, K_SIGNAL, K_TIMER, K_WAKE };   /* httpd.c has 16.. */

#define RING_ENTRIES     512
#define ACCEPT_PAUSE_NS  100000000ull     /* after EMFILE: try accepting again then */

static struct io_uring ring;
static struct signalfd_siginfo siginfo;

static uint64_t ud(int kind, const conn *c)
{
    return (uint64_t)kind << 56 | (c ? (uint64_t)c->idx << 24 | (c->gen & 0xffffff) : 0);
}

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;   /* never NULL right after a submit with a ring of RING_ENTRIES */
}

struct io_uring_sqe *srv_sqe(void)
{
    return sqe_get();
}

/* ---- socket ---------------------------------------------------------------------------- */

int srv_listen(server *s, gid_t gid, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = s->socket_path;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    /* We hold the instance lock: a socket file there is a dead daemon's. */
    if (unlink(path) == 0)
        LOG_INFO("replaced stale socket %s", path);
    mode_t mode = gid != (gid_t)-1 ? 0660 : 0600;
    mode_t old = umask(0777 & ~mode);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) || listen(fd, 256) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    s->listen_fd = fd;
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void arm_recv(conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv(sqe, c->fd, c->rbuf, sizeof(c->rbuf), MSG_TRUNC);
    io_uring_sqe_set_data64(sqe, ud(K_RECV, c));
    c->recv_armed = true;
}

static void arm_send(conn *c)
{
    if (c->send_armed || !c->out_head)
        return;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, c->fd, c->out_head->data, c->out_head->len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud(K_SEND, c));
    c->send_armed = true;
}

static void arm_accept(server *s)
{
    s->accept_armed = true;
    struct io_uring_sqe *sqe = sqe_get();
    if (s->multishot_accept)
        io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud(K_ACCEPT, NULL));
}

static void arm_signal(server *s)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_read(sqe, s->signal_fd, &siginfo, sizeof(siginfo), 0);
    io_uring_sqe_set_data64(sqe, ud(K_SIGNAL, NULL));
}

static uint64_t wake_count;

/* Another thread's wake-ups (server.h: wake_fd): a read through the ring. */
static void arm_wake(server *s)
{
    if (s->wake_fd <= 0)                /* 0: a zeroed server has none */
        return;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_read(sqe, s->wake_fd, &wake_count, sizeof(wake_count), 0);
    io_uring_sqe_set_data64(sqe, ud(K_WAKE, NULL));
}

static struct __kernel_timespec timer_ts;

/* Make sure the ring wakes us by AT (absolute CLOCK_MONOTONIC ns). */
static void arm_timer(server *s, uint64_t at)
{
    if (s->armed_ns && s->armed_ns <= at)
        return;
    timer_ts.tv_sec = (long long)(at / 1000000000u);
    timer_ts.tv_nsec = (long long)(at % 1000000000u);
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_timeout(sqe, &timer_ts, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, ud(K_TIMER, NULL));
    s->armed_ns = at;
    /* the kernel copies the timespec at submission */
    io_uring_submit(&ring);
}

/* The one place a reply's undo runs. */
static void undo_run(srv_undo *u, bool delivered)
{
    if (u->fn) {
        void (*fn)(const srv_undo *, bool) = u->fn;
        u->fn = NULL;
        fn(u, delivered);
    }
}

static void conn_free(server *s, conn *c)
{
    while (c->out_head) {
        outmsg *m = c->out_head;
        c->out_head = m->next;
        undo_run(&m->undo, false);  /* never delivered */
        free(m);
    }
    close(c->fd);
    s->conns[c->idx] = NULL;
    s->conn_free[s->conn_nfree++] = c->idx;
    s->conn_count--;
    free(c);
}

/* Free the closing connections the ring no longer refers to (end of each iteration). */
static void reap_closing(server *s)
{
    conn **pp = &s->closing;
    while (*pp) {
        conn *c = *pp;
        if (!c->recv_armed && !c->send_armed) {
            *pp = c->next_closing;
            conn_free(s, c);
        } else {
            pp = &c->next_closing;
        }
    }
}

void srv_close_conn(server *s, conn *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    LOG_DEBUG("closing connection of pid %d: %s", (int)c->pid, why);
    s->ops.closing(s->ops.ctx, c);
    /* Stop reading (completes the pending receive); replies already queued, such as the
     * error that explains the close, still go out, then the fd is closed. A reply never
     * delivered has its undo run when its send fails or when the connection is freed. */
    shutdown(c->fd, SHUT_RD);
    c->next_closing = s->closing;
    s->closing = c;
}

uint32_t srv_max_conns(void)
{
    static uint32_t max;
    if (!max) {
        struct rlimit rl;
        uint64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                           ? rl.rlim_cur : SRV_MAX_CONNS + 64;
        /* the daemon's own descriptors (ring, segment, log, signals...) come first */
        max = fds > 64 + SRV_ADMIN_RESERVE ? (uint32_t)(fds - 64) : SRV_ADMIN_RESERVE + 1;
        if (max > SRV_MAX_CONNS)
            max = SRV_MAX_CONNS;
    }
    return max;
}

static void on_accept(server *s, int fd)
{
    conn *c = s->conn_nfree && s->conn_count < srv_max_conns() ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        rlog_once_at(&s->log_full, RLOG_WARN, "%u connections: refusing more", s->conn_count);
        close(fd);
        return;
    }
    c->fd = fd;
    c->idx = s->conn_free[--s->conn_nfree];
    c->gen = ++s->next_gen & 0xffffff;
    c->accepted_ns = rldi_mono_ns();
    struct ucred cred;
    socklen_t len = sizeof(cred);
    c->uid = (uid_t)-1;
    c->gid = (gid_t)-1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        c->pid = cred.pid;
        c->uid = cred.uid;
        c->gid = cred.gid;
    }
    len = sizeof(c->groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
        c->ngroups = len / sizeof(gid_t);
    /* (ERANGE: more than SRV_MAX_GROUPS groups; the first ones are not filled then, and the
     * peer counts as in none of them: never more rights than the kernel vouched for) */
    s->conns[c->idx] = c;
    s->conn_count++;
    if (!s->ops.accepted(s->ops.ctx, c)) {
        srv_close_conn(s, c, "refused at accept");
        return;
    }
    arm_recv(c);
}

void srv_each_conn(server *s, void (*fn)(void *ctx, conn *c), void *ctx)
{
    for (uint32_t i = 0; i < SRV_MAX_CONNS; i++)
        if (s->conns[i] && !s->conns[i]->closing)
            fn(ctx, s->conns[i]);
}

static conn *conn_of(server *s, uint64_t data)
{
    uint32_t idx = (uint32_t)(data >> 24) & 0xffffffffu;
    if (idx >= SRV_MAX_CONNS)
        return NULL;
    conn *c = s->conns[idx];
    return c && (c->gen & 0xffffff) == (data & 0xffffff) ? c : NULL;
}

void srv_reply(server *s, conn *c, const Rld__V1__Reply *rep, const srv_undo *undo)
{
    srv_undo u = undo ? *undo : (srv_undo){ 0 };
    if (c->closing) {
        undo_run(&u, false);          /* nobody to deliver to */
        return;
    }
    size_t n = rld__v1__reply__get_packed_size(rep);
    if (c->out_count >= SRV_MAX_OUTQ || n > RLDI_MAX_MESSAGE) {
        undo_run(&u, false);
        rlog_once_at(&s->log_full, RLOG_WARN, "pid %d does not read its replies: disconnected",
                     (int)c->pid);
        shutdown(c->fd, SHUT_RDWR);   /* nothing more will be sent to a peer that does not read */
        srv_close_conn(s, c, "reply queue full");
        return;
    }
    outmsg *m = malloc(sizeof(*m) + n);
    if (!m) {
        undo_run(&u, false);
        srv_close_conn(s, c, "out of memory");
        return;
    }
    m->next = NULL;
    m->len = (uint32_t)n;
    m->undo = u;
    rld__v1__reply__pack(rep, m->data);
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_count++;
    arm_send(c);
}

static void on_recv(server *s, conn *c, int res)
{
    c->recv_armed = false;
    if (c->closing || res <= 0) {
        if (!c->closing)
            srv_close_conn(s, c, res == 0 ? "peer closed" : strerror(-res));
        return;
    }
    if ((size_t)res > RLDI_MAX_MESSAGE) {
        s->bad_messages++;
        rlog_once_at(&s->log_bad, RLOG_WARN, "pid %d sent a %d-byte message (max %u): disconnected",
                     (int)c->pid, res, RLDI_MAX_MESSAGE);
        srv_reply_code(s, c, 0, -EMSGSIZE, "message of %d bytes exceeds %u", res, RLDI_MAX_MESSAGE);
        srv_close_conn(s, c, "oversized message");
        return;
    }
    s->requests++;
    s->ops.request(s->ops.ctx, c, c->rbuf, (size_t)res);
    if (!c->closing)
        arm_recv(c);
}

static void on_send(server *s, conn *c, int res)
{
    c->send_armed = false;
    outmsg *m = c->out_head;
    if (m) {
        undo_run(&m->undo, res >= 0);
        c->out_head = m->next;
        if (!c->out_head)
            c->out_tail = NULL;
        c->out_count--;
        free(m);
    }
    if (res < 0 && !c->closing)
        srv_close_conn(s, c, strerror(-res));
    if (c->closing && res >= 0 && c->out_head) {
        arm_send(c);                  /* flush the last replies (the reason for the close) */
        return;
    }
    if (c->closing) {
        /* undo anything else still queued, then let go */
        for (outmsg *o = c->out_head; o; o = o->next)
            undo_run(&o->undo, false);
        return;
    }
    arm_send(c);
}

/* ---- the loop ---------------------------------------------------------------------------- */

void srv_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigprocmask(SIG_BLOCK, set, NULL);
}

static void on_signal(server *s, int res)
{
    if (res != (int)sizeof(siginfo)) {
        arm_signal(s);
        return;
    }
    if (siginfo.ssi_signo == SIGHUP) {
        s->ops.reload(s->ops.ctx);
        arm_signal(s);
        return;
    }
    LOG_INFO("signal %u: stopping; the segment stays for clients and the next rld",
             siginfo.ssi_signo);
    s->stopping = true;
}

int srv_run(server *s)
{
    int r = io_uring_queue_init(RING_ENTRIES, &ring, 0);
    if (r < 0) {
        LOG_ERROR("io_uring_queue_init: %s (is io_uring disabled? see "
                  "/proc/sys/kernel/io_uring_disabled)", strerror(-r));
        return r;
    }
    sigset_t sigs;
    srv_block_signals(&sigs);
    s->signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
    s->conns = calloc(SRV_MAX_CONNS, sizeof(*s->conns));
    s->conn_free = calloc(SRV_MAX_CONNS, sizeof(*s->conn_free));
    if (s->signal_fd < 0 || !s->conns || !s->conn_free) {
        LOG_ERROR("cannot set up the event loop: %s", strerror(errno));
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < SRV_MAX_CONNS; i++)
        s->conn_free[s->conn_nfree++] = SRV_MAX_CONNS - 1 - i;
    /* Grants are due at exact times: no timer slack (default 50 us, which a burst-1 limit
     * would lose at every grant). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    s->multishot_accept = true;
    arm_accept(s);
    arm_signal(s);
    arm_wake(s);
    if (s->http)
        httpd_start(s->http);
    uint64_t next = s->ops.tick(s->ops.ctx, rldi_mono_ns());
    if (next)
        arm_timer(s, next);

    while (!s->stopping) {
        struct io_uring_cqe *cqe;
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            LOG_ERROR("io_uring: %s", strerror(-r));
            break;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t data = io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            conn *c;
            switch ((int)(data >> 56)) {
            case K_ACCEPT:
                if (!s->multishot_accept || !(cqe->flags & IORING_CQE_F_MORE))
                    s->accept_armed = false;
                if (res >= 0)
                    on_accept(s, res);
                else if (res == -EINVAL && s->multishot_accept) {
                    s->multishot_accept = false;    /* kernel without multishot accept */
                    LOG_DEBUG("multishot accept unavailable: single-shot accepts");
                } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
                    /* out of descriptors: re-arming now would spin on the same error; wait
                     * for a connection to close, or 100 ms */
                    rlog_once_at(&s->log_fds, RLOG_WARN, "accept: %s: pausing new connections",
                                 strerror(-res));
                    s->accept_resume_ns = rldi_mono_ns() + ACCEPT_PAUSE_NS;
                } else if (res != -ECANCELED)
                    rlog_once_at(&s->log_full, RLOG_WARN, "accept: %s", strerror(-res));
                break;
            case K_RECV:
                if ((c = conn_of(s, data)))
                    on_recv(s, c, res);
                break;
            case K_SEND:
                if ((c = conn_of(s, data)))
                    on_send(s, c, res);
                break;
            case K_SIGNAL:
                on_signal(s, res);
                break;
            case K_TIMER:
                s->armed_ns = 0;
                break;
            case K_WAKE:
                if (!s->stopping && res != -ECANCELED)
                    arm_wake(s);            /* the tick below does the work */
                break;
            default:
                if (s->http && httpd_owns(data))
                    httpd_complete(s->http, data, res, cqe->flags);
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
        uint32_t before = s->conn_count;
        reap_closing(s);
        uint64_t now = rldi_mono_ns();
        if (s->conn_count < before)
            s->accept_resume_ns = 0;           /* a descriptor came free */
        if (!s->accept_armed && !s->stopping && now >= s->accept_resume_ns)
            arm_accept(s);
        next = s->ops.tick(s->ops.ctx, now);
        if (!s->accept_armed && s->accept_resume_ns && (!next || s->accept_resume_ns < next))
            next = s->accept_resume_ns;
        if (s->http) {
            uint64_t h = httpd_tick(s->http, now);
            httpd_reap(s->http);
            if (h && (!next || h < next))
                next = h;
        }
        if (next)
            arm_timer(s, next);
    }

    /* Stopping: tell every waiter, flush what we can without blocking, then leave. */
    s->ops.stopping(s->ops.ctx);
    for (uint32_t i = 0; i < SRV_MAX_CONNS; i++) {
        conn *c = s->conns[i];
        if (!c)
            continue;
        for (outmsg *m = c->out_head; m; m = m->next) {
            if (send(c->fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                break;
            undo_run(&m->undo, true);
        }
    }
    io_uring_queue_exit(&ring);
    httpd_close(s->http);
    s->http = NULL;
    for (uint32_t i = 0; i < SRV_MAX_CONNS; i++)
        if (s->conns[i])
            conn_free(s, s->conns[i]);
    close(s->listen_fd);
    unlink(s->socket_path);
    close(s->signal_fd);
    free(s->conns);
    free(s->conn_free);
    return 0;
}
