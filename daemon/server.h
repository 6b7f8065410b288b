/*
 * server.h - rld's service: one io_uring loop for the socket (accept, receive, send), the
 * timers (grants, wait deadlines, heartbeat) and the signals (signalfd read through the
 * ring). Requests are handled in handlers.c, queued waits in waitq.c.
 */
#ifndef RLD_DAEMON_SERVER_H
#define RLD_DAEMON_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "dseg.h"
#include "instance.h"
#include "rld.h"
#include "wire.h"

#define SRV_MAX_CONNS          4096u    /* beyond: new connections are closed at once */
#define SRV_MAX_WAITS_PER_CONN 1024u    /* outstanding Wait requests per connection */
/* Replies queued for a peer: room for every wait of the connection granted at once, plus
 * some; beyond, the peer is not reading and is dropped. Bounds memory per connection to
 * ~100 KiB (about 400 MiB for SRV_MAX_CONNS peers doing their worst). */
#define SRV_MAX_OUTQ           (SRV_MAX_WAITS_PER_CONN + 64u)

struct waiter;
struct limitq;

typedef struct outmsg {
    struct outmsg *next;
    uint32_t len;
    /* a grant not yet delivered: refunded if the peer goes away first */
    uint32_t grant_slot, grant_gen;
    uint64_t grant_cost;
    uint8_t  data[];
} outmsg;

typedef struct conn {
    int       fd;
    uint32_t  idx, gen;
    pid_t     pid;
    uid_t     uid;
    gid_t     gid;
    bool      hello, admin, closing, recv_armed, send_armed;
    outmsg   *out_head, *out_tail;
    uint32_t  out_count;
    uint32_t  waits;               /* outstanding waits */
    struct waiter *waiters;        /* this connection's queued waits */
    struct conn   *next_closing;   /* in server.closing once closing */
    uint8_t   rbuf[RLDI_MAX_MESSAGE + 1];
} conn;

/* What happened that operators want counted; repeated failures are logged once a minute. */
typedef struct logonce {
    uint64_t count, suppressed, last_ns;
} logonce;

typedef struct server {
    /* configuration and segment */
    const char      *config_path;
    rldi_config     *conf;
    rldi_seg        *seg;
    rld_client      *self;         /* the daemon's own librld client: grants use rld_try_ex */
    rldi_paths       paths;
    gid_t            admin_gid;    /* (gid_t)-1: none */
    /* io */
    int              listen_fd, signal_fd;
    conn           **conns;        /* by index */
    uint32_t        *conn_free;
    uint32_t         conn_nfree, conn_count;
    uint32_t         next_gen;
    conn            *closing;      /* closed connections the ring may still refer to */
    bool             multishot_accept;
    /* waits */
    struct limitq  **queues;       /* by slot, lazily */
    void            *deadline_heap, *grant_heap;
    uint64_t         armed_ns;     /* earliest timeout armed in the ring, 0 none */
    uint64_t         heartbeat_due;
    /* state */
    bool             stopping;
    uint64_t         started_ns;
    uint64_t         requests, grants, timeouts, bad_messages;
    uint32_t         waiters;
    logonce          log_bad, log_full;
} server;

/* Create the socket (replacing a stale one: we hold the instance lock) with mode 0600, or
 * 0660 and group GID. 0 or -errno with ERR set. */
int srv_listen(server *s, gid_t gid, char *err, size_t errlen);

/* Run until SIGTERM/SIGINT; SIGHUP reloads. Returns 0, or -errno if the ring fails. */
int srv_run(server *s);

/* Queue a reply for C (packed now). GRANT (may be NULL) marks a delivery that carries
 * tokens: refunded if C closes before it is sent. */
void srv_reply(server *s, conn *c, const Rld__V1__Reply *rep, const struct waiter *grant);
/* A reply with just a code and message. */
void srv_reply_code(server *s, conn *c, uint64_t id, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Stop serving C: its waits are dropped, undelivered grants refunded. C stays valid until
 * the end of the current loop iteration; it is freed once the ring no longer uses it. */
void srv_close_conn(server *s, conn *c, const char *why);

uint64_t srv_now_ns(void);
void srv_logonce(logonce *l, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* handlers.c */
void handle_request(server *s, conn *c, const uint8_t *buf, size_t len);
/* Reload the configuration file; fills REP (code, message, body). */
int  srv_reload(server *s, Rld__V1__ReloadReply *counts, char *err, size_t errlen);

#endif
