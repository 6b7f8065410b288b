/*
 * handlers.h - the daemon layer: what rld does with each request (proto/rld.proto) and with
 * time (heartbeat, wait queues), above the transport (server.h) and beside the segment
 * writer (dseg.h). main.c builds one rld_daemon and hands daemon_ops() to the transport.
 *
 *   main.c -> handlers.c -> waitq.c -> server.c (transport)
 *                        -> dseg.c  -> common/bucket.c (admission)
 */
#ifndef RLD_DAEMON_HANDLERS_H
#define RLD_DAEMON_HANDLERS_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "global.h"
#include "instance.h"
#include "lease.h"
#include "segment.h"
#include "server.h"
#include "uidcount.h"
#include "waitq.h"

typedef struct rld_daemon {
    const char  *config_path;
    rldi_config *conf;
    rldi_seg    *seg;
    int          seg_fd;         /* its memfd */
    pid_t        keeper_pid;     /* the process that holds it between daemons */
    mode_t       sock_mode;      /* of the sockets (a keeper started again uses them) */
    gid_t        sock_gid;
    rldi_paths   paths;
    gid_t        admin_gid;      /* (gid_t)-1: none */
    server      *srv;
    waitq       *wq;
    global      *global;         /* limits shared through Redis (scope = global) */
    leases      *leases;         /* concurrency limits' leases (issue 15), or NULL */
    uint64_t     reap_due;       /* next look for dead lease holders */
    uint64_t     started_ns;
    uint64_t     heartbeat_due;
    uidcount     conns_by_uid;   /* connections of non-admin peers, by uid */
    rlog_once    log_refused, log_keeper, log_conns;
} rld_daemon;

/* The transport's callbacks, bound to D. */
srv_ops daemon_ops(rld_daemon *d);

/* The body of the metrics endpoint (httpd.h): common/metrics.c's text of D's segment, the
 * same rlctl metrics prints. */
struct httpd_body;
void daemon_metrics_body(rld_daemon *d, struct httpd_body *out);

/* Re-read the configuration file and apply it, all or nothing. 0, or a negative code with
 * ERR saying why (nothing changed). COUNTS (may be NULL) gets what changed. */
int daemon_reload(rld_daemon *d, Rld__V1__ReloadReply *counts, char *err, size_t errlen);
/* Replace the segment by one large enough for CONF (dseg_grow), and tell the wait queues,
 * the lease thread, the keeper and systemd's store. 0 or a code with ERR. */
int daemon_grow(rld_daemon *d, const rldi_config *conf, char *err, size_t errlen);

/* One request from C (the transport's ops.request). */
void daemon_request(rld_daemon *d, conn *c, const uint8_t *buf, size_t len);

#endif
