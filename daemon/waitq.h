/*
 * waitq.h - queued waits: per limit, FIFO within each of 8 priorities, higher first.
 *
 * While a limit has waiters, the daemon publishes their count and tokens in the slot
 * (waiters, queued) and the fast path denies non-barging callers, so the queue cannot be
 * starved. The daemon takes the tokens for the head waiter when they fit (a timer set to
 * the head's retry_after) and replies; a waiter holds nothing until then, so a waiter that
 * disconnects or dies gives back only its place. A grant whose reply was not delivered is
 * refunded.
 */
#ifndef RLD_DAEMON_WAITQ_H
#define RLD_DAEMON_WAITQ_H

#include <stdint.h>

#include "heap.h"
#include "server.h"

#define WAITQ_PRIORITIES 8

typedef struct waiter {
    heap_node      deadline;        /* in the deadline heap when it has a timeout */
    struct waiter *next, *prev;     /* in its limit's queue */
    struct waiter *cnext, *cprev;   /* in its connection's list */
    struct limitq *q;
    conn          *c;
    uint64_t       id;              /* request id, echoed */
    uint64_t       cost;
    int            prio;
    uint32_t       position;        /* callers ahead when queued */
    uint64_t       enq_ns, expected_ns;
} waiter;

typedef struct limitq {
    heap_node grant;                /* next time to try the head, in the grant heap */
    waiter   *head[WAITQ_PRIORITIES], *tail[WAITQ_PRIORITIES];
    uint32_t  count[WAITQ_PRIORITIES];
    uint64_t  tokens[WAITQ_PRIORITIES];
    uint32_t  total;
    uint64_t  queued;
    uint32_t  slot, gen;
    uint64_t  due_ns;               /* when the head fits (set with the timer), 0 if unknown */
    uint64_t  granted, timed_out;
} limitq;

void waitq_init(server *s);
void waitq_free(server *s);
/* A Wait request: queue it, grant it at once, or refuse it; every outcome replies. */
void waitq_add(server *s, conn *c, uint64_t id, const Rld__V1__Wait *w);
/* Cancel C's wait WAIT_ID: it gets -ECANCELED. Returns 0 or -ENOENT. */
int  waitq_cancel(server *s, conn *c, uint64_t wait_id);
/* C is closing: drop its waits (no replies). */
void waitq_drop_conn(server *s, conn *c);
/* Grant what fits and expire what is due at NOW. */
void waitq_run(server *s, uint64_t now);
/* Earliest time waitq_run has work, 0 if none. */
uint64_t waitq_next_due(const server *s);
/* The limit in SLOT was deleted (-ESTALE to its waiters) or changed (reschedule). */
void waitq_limit_deleted(server *s, uint32_t slot);
void waitq_limit_changed(server *s, uint32_t slot);
/* The daemon is stopping: every waiter gets -ESHUTDOWN, slots show no waiters. */
void waitq_shutdown(server *s);
/* Queue facts for status: waiters, tokens, granted, timed out. */
void waitq_info(const server *s, uint32_t slot, uint32_t *waiters, uint64_t *tokens,
                uint64_t *granted, uint64_t *timed_out);

#endif
