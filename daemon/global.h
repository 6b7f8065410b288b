/*
 * global.h - limits shared by every rld through Redis (scope = global, issue 17), with the
 * fast path still local.
 *
 * A global limit's slot is a pool (gcra.h: RLDI_POOL_T): an ordinary bucket workers take
 * from with the unchanged CAS, which only this module fills, with tokens it leased from a
 * GCRA bucket kept in Redis (redis.h) before any of them can be spent. A thread of its own
 * talks to Redis (hiredis, synchronous, with timeouts) and changes pools only through
 * bucket.c; the io_uring loop is never blocked: the thread wakes it through an eventfd
 * (server.h: wake_fd) when credits arrive, so the wait queue serves its waiters, and when a
 * limit must move to or from its fallback bank, which only the loop publishes.
 *
 * docs/DESIGN.md ("Global limits") has the bounds: what the hosts admit together, what
 * stays leased and unused, what "fair" guarantees, and what an outage costs.
 */
#ifndef RLD_DAEMON_GLOBAL_H
#define RLD_DAEMON_GLOBAL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "segment.h"
#include "waitq.h"
#include "wire.h"

typedef struct global global;

/* The module for SEG and instance INSTANCE. LAST_HEARTBEAT_NS: the segment's heartbeat as
 * the previous daemon left it (0 for a new segment): the pools' natural refill since then
 * is cancelled at the first sync. NULL when out of memory. */
global *global_new(rldi_seg *seg, const char *instance, uint64_t last_heartbeat_ns);

/* Check what CONF asks of the module that could fail at run time (the password file).
 * 0 or a negative code with ERR: a start fails, a reload is refused. */
int global_check(const rldi_config *conf, char *err, size_t errlen);

/* CONF was applied to the segment (start, reload): take the global limits it names, set
 * their hints, let go of the others; starts the Redis thread the first time there is a
 * global limit. 0, or -errno (no thread could be started) with the reason logged. */
int global_sync(global *g, const rldi_config *conf);

/* The descriptor the loop reads to be woken (an eventfd), or -1. */
int global_wake_fd(const global *g);

/* The loop's turn (every tick): kick the queues of limits that got tokens, move limits to
 * and from their fallback. Returns the next time it wants a turn (0: none). */
uint64_t global_tick(global *g, waitq *wq, uint64_t now);

/* True when SLOT holds a global limit now (Put and Reset refuse them). */
bool global_has(const global *g, uint32_t slot);

/* Status fields of the limit in SLOT (scope, leased tokens, state...). BUF holds strings the
 * fields point to. */
void global_limit_status(global *g, uint32_t slot, Rld__V1__LimitStatus *ls, char *buf,
                         size_t buflen);
/* The instance's Redis figures. BUF as above. */
void global_stats(global *g, Rld__V1__StatsReply *st, char *buf, size_t buflen);

/* Stopping: the thread gives the pools' unused tokens back to Redis and ends (bounded by
 * the configured timeouts). */
void global_stop(global *g);
void global_free(global *g);

/* Keep the lease thread off the segment (it only touches it under the module's lock):
 * while the daemon replaces the segment it grew. G may be NULL. */
void global_pause(global *g);
void global_resume(global *g);

#endif
