/*
 * waitq.h - queued waits: per limit, FIFO within each of 8 priorities, higher first. A wait
 * is a set of 1..WAITQ_MAX_CHARGES charges (limit, cost) taken all at once: it has a place
 * in the queue of each of its limits and is served when it is first in all of them.
 *
 * While a limit has waiters, the daemon publishes their count and tokens in the slot
 * (waiters, queued) and the fast path denies non-barging callers, so the queue cannot be
 * starved. The daemon takes the tokens for the head waiter when they fit (a timer set to
 * the head's retry_after) and replies; a waiter holds nothing until then, so a waiter that
 * disconnects or dies gives back only its place. The grant's reply carries an undo owned
 * here: if the transport cannot deliver it, the tokens go back.
 */
#ifndef RLD_DAEMON_WAITQ_H
#define RLD_DAEMON_WAITQ_H

#include <stdint.h>

#include "lease.h"
#include "segment.h"
#include "server.h"

#define WAITQ_PRIORITIES  8
#define WAITQ_MAX_CHARGES 64      /* = RLD_MULTI_MAX */

typedef struct waitq waitq;

/* Wait queues over SEG, replying through SRV; at most MAX_WAITERS per limit and MAX_PER_UID
 * per user (across limits). NULL when out of memory. */
waitq *waitq_new(server *srv, rldi_seg *seg, uint32_t max_waiters, uint32_t max_per_uid);
void waitq_free(waitq *q);
void waitq_set_max_waiters(waitq *q, uint32_t max_waiters, uint32_t max_per_uid);

/* A Wait request from C: queue it, grant it at once, or refuse it; every outcome replies. */
void waitq_add(waitq *q, conn *c, uint64_t id, const Rld__V1__Wait *w);
/* The concurrency limits' leases (lease.h): Lease requests are refused without them. */
void waitq_set_leases(waitq *q, leases *l);
/* A Lease request from C: a wait for one lease of its limit (and a token when the limit
 * has a rate), in the limit's queue with the waits; granted with a lease of C's process
 * (WaitReply.lease_id). Every outcome replies; -EAGAIN at once for a timeout of 0. */
void waitq_add_lease(waitq *q, conn *c, uint64_t id, const Rld__V1__Lease *l);
/* A client changed SLOT's state under its waiters (rld_penalize, rld_sync: Retime): their
 * waits are foreseen again, those that cannot meet their deadline any more are told at once
 * (-ETIMEDOUT), the queue's timer follows the new state. */
void waitq_limit_retime(waitq *q, uint32_t slot, uint32_t gen);
uint64_t waitq_retimed(const waitq *q);
/* Cancel C's wait WAIT_ID: it gets -ECANCELED. Returns 0 or -ENOENT. */
int  waitq_cancel(waitq *q, conn *c, uint64_t wait_id);
/* Where C's wait WAIT_ID stands now: callers ahead (the most in any of its queues) and the
 * wait foreseen. 0 or -ENOENT (not queued: granted, refused, or never seen). */
int  waitq_position(waitq *q, conn *c, uint64_t wait_id, uint32_t *position,
                    uint64_t *expected_ns);
/* C is closing: drop its waits (no replies). */
void waitq_drop_conn(waitq *q, conn *c);
/* Grant what fits and expire what is due at NOW; returns the next time there is work
 * (0: none). */
uint64_t waitq_run(waitq *q, uint64_t now);
/* The limit in SLOT was deleted (-ESTALE to its waiters) or changed (reschedule). */
void waitq_limit_deleted(waitq *q, uint32_t slot);
void waitq_limit_changed(waitq *q, uint32_t slot);
/* The daemon is stopping: every waiter gets -ESHUTDOWN, slots show no waiters. */
void waitq_shutdown(waitq *q);

/* Queue facts for status. */
typedef struct waitq_stats {
    uint32_t waiters;       /* queued now (a multi-wait counts on each of its limits) */
    uint64_t tokens;        /* they want */
    uint64_t granted;       /* waits granted, since the limit got this slot */
    uint64_t timed_out;
} waitq_stats;
void waitq_limit_stats(const waitq *q, uint32_t slot, waitq_stats *out);
/* Totals for the instance: waiters now; grants and timeouts since start. */
void waitq_totals(const waitq *q, uint32_t *waiters, uint64_t *grants, uint64_t *timeouts);
/* Queue entries of C now, a multi-wait once per limit (for the fuzzer's invariant). */
uint32_t waitq_conn_waits(const waitq *q, const conn *c);

/* The segment was replaced by a larger one (dseg_grow; its slot count was OLD_COUNT): the
 * queues follow; waiters on keys get -ESTALE (keys moved). 0 or -ENOMEM. */
int waitq_grown(waitq *wq, uint32_t old_count);

#endif
