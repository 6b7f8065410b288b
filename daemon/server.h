/*
 * server.h - rld's transport: one io_uring loop for the socket (accept, receive, send), one
 * timer (the earliest time the layer above has work) and the signals (a signalfd read
 * through the ring). It knows connections and packets, nothing about limits or tokens: a
 * request goes up to the daemon layer (handlers.h) through srv_ops, and a reply comes back
 * down with srv_reply, optionally carrying an undo the layer above owns (a grant's tokens,
 * given back if the reply is never delivered).
 */
#ifndef RLD_DAEMON_SERVER_H
#define RLD_DAEMON_SERVER_H

#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "log.h"
#include "wire.h"

#define SRV_MAX_CONNS          4096u    /* beyond: new connections are closed at once */
/* Queued waits per connection, a multi-wait once per limit it queues on. librld's
 * non-blocking API multiplexes all the waits of a client on one connection (one fd for the
 * caller's event loop, FIFO kept), so this is also the per-client cap: 10,000 concurrent
 * waits from one thread must fit. */
#define SRV_MAX_WAITS_PER_CONN 16384u
/* Replies queued for a peer: room for every wait of the connection granted at once, plus
 * some; beyond, the peer is not reading and is dropped. Bounds memory per connection to
 * ~1.6 MiB for a peer that fills it (about 100 bytes per reply). */
#define SRV_MAX_OUTQ           (SRV_MAX_WAITS_PER_CONN + 64u)

/*
 * What a reply carries for the layer that queued it: FN is called exactly once, with
 * DELIVERED true once the reply was handed to the kernel, false if it never will be (the
 * peer went away, did not read, or the daemon stops). A grant gives its tokens back there.
 */
typedef struct srv_undo {
    void (*fn)(const struct srv_undo *u, bool delivered);
    void    *ctx;
    uint64_t arg[3];
} srv_undo;

typedef struct outmsg {
    struct outmsg *next;
    uint32_t len;
    srv_undo undo;                 /* undo.fn NULL: a plain reply */
    uint8_t  data[];
} outmsg;

#define SRV_MAX_GROUPS         64u      /* supplementary groups of a peer we look at */

typedef struct conn {
    int       fd;
    uint32_t  idx, gen;            /* gen: 24 bits, tells a reused index apart */
    /* who the peer is, from the kernel at connect time (SO_PEERCRED, SO_PEERGROUPS): never
     * from /proc/<pid>, whose pid another process may have by the time we look */
    pid_t     pid;
    uid_t     uid;
    gid_t     gid;
    uint32_t  ngroups;
    gid_t     groups[SRV_MAX_GROUPS];
    uint64_t  accepted_ns;
    bool      hello, admin, closing, recv_armed, send_armed;
    bool      counted;             /* the layer above counts it against its uid's cap */
    outmsg   *out_head, *out_tail;
    uint32_t  out_count;
    struct conn *next_closing;     /* in server.closing once closing */
    uint8_t   rbuf[RLDI_MAX_MESSAGE + 1];
} conn;

/* What the transport asks of the layer above. CTX is srv_ops.ctx. */
typedef struct srv_ops {
    void    *ctx;
    /* C was accepted, its credentials filled: true to serve it (the layer above may set
     * C->admin), false to refuse it (a reply already queued says why; it is then closed). */
    bool     (*accepted)(void *ctx, conn *c);
    /* One packet from C, at most RLDI_MAX_MESSAGE bytes (bigger ones never come up). */
    void     (*request)(void *ctx, conn *c, const uint8_t *buf, size_t len);
    /* C is closing: forget it (its waits); C stays valid until this loop turn ends. */
    void     (*closing)(void *ctx, conn *c);
    /* Do what is due at NOW; return the next time there will be work (0: none). Called
     * after every batch of completions. */
    uint64_t (*tick)(void *ctx, uint64_t now);
    /* SIGHUP arrived. */
    void     (*reload)(void *ctx);
    /* The loop is stopping: reply to whoever waits (replies are flushed after). */
    void     (*stopping)(void *ctx);
} srv_ops;

struct httpd;

typedef struct server {
    srv_ops          ops;
    struct httpd    *http;         /* the metrics endpoint (httpd.h), NULL when off */
    const char      *socket_path;
    int              listen_fd, signal_fd;
    int              wake_fd;      /* an eventfd another thread writes to wake the loop (<= 0: none);
                                    * the loop reads it and calls ops.tick */
    conn           **conns;        /* by index */
    uint32_t        *conn_free;
    uint32_t         conn_nfree, conn_count;
    uint32_t         next_gen;
    conn            *closing;      /* closed connections the ring may still refer to */
    bool             multishot_accept, accept_armed;
    uint64_t         accept_resume_ns;   /* out of descriptors: accept again then (0: now) */
    uint64_t         armed_ns;     /* earliest timeout armed in the ring, 0 none */
    bool             stopping;
    uint64_t         requests, bad_messages;
    rlog_once        log_bad, log_full, log_fds;
} server;

/* Connections beyond which only admins are let in (SRV_ADMIN_RESERVE are kept for them),
 * from SRV_MAX_CONNS and the descriptors RLIMIT_NOFILE allows. */
#define SRV_ADMIN_RESERVE      16u
uint32_t srv_max_conns(void);

/* Call FN for every open connection (not closing). */
void srv_each_conn(server *s, void (*fn)(void *ctx, conn *c), void *ctx);

/* Create the socket at S->socket_path (replacing a stale one: we hold the instance lock)
 * with mode 0600, or 0660 and group GID. 0 or -errno with ERR set. */
int srv_listen(server *s, gid_t gid, char *err, size_t errlen);

/* Run until SIGTERM/SIGINT. Returns 0, or -errno if the ring fails. */
int srv_run(server *s);

/* Queue a reply for C (packed now). UNDO (may be NULL) is copied and called exactly once
 * (see srv_undo); when C is closing or full it is called at once with delivered false. */
void srv_reply(server *s, conn *c, const Rld__V1__Reply *rep, const srv_undo *undo);
/* A reply with just a code and a message (printf-style). */
static inline __attribute__((format(printf, 5, 6)))
void srv_reply_code(server *s, conn *c, uint64_t id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = id;
    rep.code = code;
    rep.message = msg;
    srv_reply(s, c, &rep, NULL);
}

/* A submission queue entry of the loop's ring, for httpd.c (never NULL). */
struct io_uring_sqe;
struct io_uring_sqe *srv_sqe(void);

/* Block the signals the loop reads (SIGTERM, SIGINT, SIGHUP) in the calling thread, before
 * anything else runs, and leave them in SET. */
void srv_block_signals(sigset_t *set);
/* Stop serving C: the layer above is told (ops.closing); replies already queued are still
 * flushed. C stays valid until the end of the current loop iteration; it is freed once the
 * ring no longer uses it. */
void srv_close_conn(server *s, conn *c, const char *why);

#endif
