/*
 * redis.h - the daemon's Redis client for global limits (global.c), over hiredis's
 * synchronous API with connect and command timeouts: it runs on global.c's own thread,
 * never on the io_uring loop.
 *
 * Two Lua scripts live in Redis (SCRIPT LOAD at connect, EVALSHA, loaded again on NOSCRIPT):
 *   lease   GCRA on Redis's own clock (TIME), partial grants; when the hosts' demands
 *           together exceed the rate, a host gets at most its share of what is there, in
 *           proportion to its demand; records the host's demand for the others.
 *   give    tokens back (TAT moves back, never before now); a host that leaves is forgotten.
 * Keys: PREFIX{NAME}, one hash per limit (ep, tat, h:HOST), expiring when unused (PEXPIRE).
 */
#ifndef RLD_DAEMON_REDIS_H
#define RLD_DAEMON_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct rconn rconn;

/* Connect to R's server (timeouts from R), AUTH with the password in R's password_file
 * (and username), SELECT its db, load the scripts. NULL with ERR saying why. */
rconn *rconn_open(const rldi_redisconf *r, char *err, size_t errlen);
void rconn_close(rconn *c);

/* Check R's password_file as OpenSSH checks a key: a regular file, not readable or
 * writable by others, owned by us or root; and read its first line into PW. 0 or -errno
 * with ERR (which never holds the password). */
int redis_password_read(const char *path, char *pw, size_t pwlen, char *err, size_t errlen);

typedef struct lease_args {
    const char *key, *host;
    uint64_t want;          /* tokens wanted now (may be 0: only record the demand) */
    double   demand;        /* tokens per second this host would use */
    uint64_t t_ns, burst;   /* the global GCRA: interval (ns, rounded up) and burst */
    double   rate;          /* tokens per second */
    uint64_t ttl_ms, stale_ms;
    uint64_t period_ns;     /* this host's lease period */
} lease_args;

typedef struct lease_reply {
    uint64_t granted;       /* tokens taken from the global bucket for this host */
    uint64_t left;          /* still in the global bucket after */
    uint32_t hosts;         /* hosts seen within stale_ms, this one included */
    uint32_t share_ppm;     /* this host's share when contended, 10^6 = no cap */
    bool     fresh;         /* the bucket did not exist: new, expired or lost (FLUSHALL) */
} lease_reply;

/* One lease. 0, or -EIO (connection broken or timed out: close it) / -EPROTO (a Redis error
 * reply), with ERR. *RTT_NS: the call's round trip. */
int rconn_lease(rconn *c, const lease_args *a, lease_reply *out, uint64_t *rtt_ns, char *err,
                size_t errlen);

/* Give N tokens back to KEY's bucket; LEAVING also removes HOST's demand record. Same codes. */
int rconn_give(rconn *c, const char *key, const char *host, uint64_t n, uint64_t t_ns,
               uint64_t ttl_ms, bool leaving, char *err, size_t errlen);

#endif
