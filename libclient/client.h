/*
 * client.h - librld internals shared by its source files (client.c, wait.c, counters.c):
 * the client object and the per-thread counters of admitted and denied calls. Nothing
 * outside libclient/ includes it.
 */
#ifndef RLD_LIBCLIENT_CLIENT_H
#define RLD_LIBCLIENT_CLIENT_H

#include <pthread.h>
#include <stdint.h>

#include "gcra.h"
#include "instance.h"
#include "rld.h"
#include "segment.h"

#define RLDC_POOL 16                    /* idle daemon connections kept for waits */

struct rldi_conn;

struct rld_client {
    rldi_seg   seg;
    rldi_paths paths;
    uint64_t   serial;     /* unique per rld_open in this process: tells reused addresses apart */
    /* waits: connections to the daemon, one per waiting thread, reused */
    pthread_mutex_t   pool_lock;
    struct rldi_conn *pool[RLDC_POOL];
    int               npool;
    uint64_t          daemon_down_until;  /* ns: skip connecting until then */
    /* coarse-clock fast path (see client.c try_coarse): 0 = off */
    rldi_u128         coarse_margin;      /* 2^-32 ns units */
};

/* client.c: copy a bucket verdict into RES (may be NULL). */
void rldc_result(rld_result *res, const rldi_verdict *vd);
/* wait.c: close the pooled daemon connections. */
void rldc_pool_close(rld_client *c);

/*
 * Counters. A locked add per call on the limit's line would cost as much as the rest of the
 * fast path's arithmetic, so each thread accumulates its counts for the last (client, limit)
 * it used and publishes them with one atomic add every RLDC_FLUSH_CALLS calls, whenever
 * RLDC_FLUSH_NS passed since its last publication, when it moves to another limit, at
 * rld_close (calling thread), at thread exit and at process exit. Readers of the counters
 * therefore lag by at most that much per thread; a process killed by a signal loses its
 * unpublished counts. Counters are statistics: admission never depends on them.
 */
#define RLDC_FLUSH_CALLS 64u
#define RLDC_FLUSH_NS    50000000ull

typedef struct rldc_pending {
    const rld_client *c;
    uint64_t serial;
    uint32_t slot;
    uint32_t calls;
    uint64_t admitted, denied;
    uint64_t flushed_ns;
} rldc_pending;

extern __thread rldc_pending rldc_tls __attribute__((tls_model("initial-exec")));

void rldc_count_slow(rld_client *c, uint32_t slot, uint64_t admitted, uint64_t denied,
                     uint64_t now_ns);
void rldc_register(rld_client *c);
void rldc_unregister(rld_client *c);

static inline void rldc_count(rld_client *c, uint32_t slot, uint64_t admitted, uint64_t denied,
                              uint64_t now_ns)
{
    rldc_pending *p = &rldc_tls;
    if (__builtin_expect(p->c == c && p->slot == slot && p->serial == c->serial &&
                         p->calls + 1 < RLDC_FLUSH_CALLS && now_ns - p->flushed_ns < RLDC_FLUSH_NS, 1)) {
        p->calls++;
        p->admitted += admitted;
        p->denied += denied;
        return;
    }
    rldc_count_slow(c, slot, admitted, denied, now_ns);
}

#endif
