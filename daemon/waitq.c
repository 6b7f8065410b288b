/*
 * waitq.c - queued waits (see waitq.h).
 *
 * Grants are admissions like any other (bucket.h), made on the daemon's own mapping of the
 * segment, barging: the daemon is the queue, so it must not stay behind itself. The head of
 * the highest non-empty priority is always served first; when it does not fit, the limit's
 * next try is set to exactly the head's retry_after, so grants are on schedule to the
 * timer's resolution.
 */
#include "waitq.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "bucket.h"
#include "clock.h"
#include "codes.h"
#include "heap.h"
#include "log.h"
#include "rate.h"

typedef struct limitq limitq;

typedef struct waiter {
    heap_node      deadline;        /* in the deadline heap when it has a timeout */
    struct waiter *next, *prev;     /* in its limit's queue */
    struct waiter *cnext, *cprev;   /* in its connection's list */
    limitq        *q;
    conn          *c;
    uint64_t       id;              /* request id, echoed */
    uint64_t       cost;
    int            prio;
    uint32_t       position;        /* callers ahead when queued */
    uint64_t       enq_ns, expected_ns;
} waiter;

struct limitq {
    heap_node grant;                /* next time to try the head, in the grant heap */
    waiter   *head[WAITQ_PRIORITIES], *tail[WAITQ_PRIORITIES];
    uint32_t  count[WAITQ_PRIORITIES];
    uint64_t  tokens[WAITQ_PRIORITIES];
    uint32_t  total;
    uint64_t  queued;
    uint32_t  slot, gen;
    uint64_t  due_ns;               /* when the head fits (set with the timer), 0 if unknown */
    uint64_t  granted, timed_out;
};

/* A connection's waits, by connection index (the transport knows nothing of them). */
typedef struct conn_waits {
    waiter  *head;
    uint32_t count;
} conn_waits;

struct waitq {
    server     *srv;
    rldi_seg   *seg;
    uint32_t    max_waiters;
    limitq    **queues;             /* by slot, lazily */
    heap        deadlines, grants;
    conn_waits  conns[SRV_MAX_CONNS];
    uint32_t    waiters;
    uint64_t    grants_total, timeouts_total;
};

waitq *waitq_new(server *srv, rldi_seg *seg, uint32_t max_waiters)
{
    waitq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->queues = calloc(seg->slot_count, sizeof(*q->queues));
    if (!q->queues) {
        free(q);
        return NULL;
    }
    q->srv = srv;
    q->seg = seg;
    q->max_waiters = max_waiters;
    return q;
}

void waitq_free(waitq *q)
{
    if (!q)
        return;
    for (uint32_t i = 0; i < q->seg->slot_count; i++)
        free(q->queues[i]);
    free(q->queues);
    free(q->deadlines.v);
    free(q->grants.v);
    free(q);
}

void waitq_set_max_waiters(waitq *q, uint32_t max_waiters)
{
    q->max_waiters = max_waiters;
}

/* The slot's queue facts, as the fast path reads them. */
static void publish(waitq *wq, limitq *q)
{
    rldi_slot *sl = &wq->seg->slots[q->slot];
    rldi_store_relaxed(&sl->queued, q->queued);
    rldi_store_release(&sl->waiters, q->total);
}

static void unlink_waiter(waitq *wq, waiter *w)
{
    limitq *q = w->q;
    conn_waits *cw = &wq->conns[w->c->idx];
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head[w->prio] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail[w->prio] = w->prev;
    q->count[w->prio]--;
    q->tokens[w->prio] -= w->cost;
    q->total--;
    q->queued -= w->cost;
    if (w->cprev)
        w->cprev->cnext = w->cnext;
    else
        cw->head = w->cnext;
    if (w->cnext)
        w->cnext->cprev = w->cprev;
    cw->count--;
    heap_remove(&wq->deadlines, &w->deadline);
    wq->waiters--;
    if (q->total == 0) {
        heap_remove(&wq->grants, &q->grant);
        q->due_ns = 0;              /* a later waiter must not be backdated to it */
    }
}

static void finish(waitq *wq, waiter *w)
{
    limitq *q = w->q;
    unlink_waiter(wq, w);
    publish(wq, q);
    free(w);
}

/* A grant's tokens go back when its reply cannot be delivered. */
static void grant_undo(const srv_undo *u, bool delivered)
{
    if (delivered)
        return;
    waitq *wq = u->ctx;
    rldi_handle h = { (uint32_t)u->arg[0], (uint32_t)u->arg[1] };
    rldi_bucket_refund(wq->seg, h, u->arg[2], rldi_now_fp());
}

/* What a reply says about a wait; W (may be NULL) is the waiter it answers. */
typedef struct wait_answer {
    uint64_t id, cost;
    uint32_t slot, gen, position;
    uint64_t enq_ns, expected_ns;
} wait_answer;

static void reply_wait(waitq *wq, conn *c, const wait_answer *a, int code, const rldi_verdict *v,
                       uint64_t now, const char *msg)
{
    Rld__V1__WaitReply wr = RLD__V1__WAIT_REPLY__INIT;
    if (v) {
        wr.limit = v->limit;
        wr.remaining = v->remaining;
        wr.retry_after_ns = v->retry_after_ns;
        wr.reset_after_ns = v->reset_after_ns;
    }
    wr.queue_position = a->position;
    wr.expected_wait_ns = a->expected_ns;
    wr.waited_ns = a->enq_ns ? now - a->enq_ns : 0;
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = a->id;
    rep.code = code;
    rep.message = (char *)(msg ? msg : "");
    rep.body_case = RLD__V1__REPLY__BODY_WAIT;
    rep.wait = &wr;
    srv_undo u = { grant_undo, wq, { a->slot, a->gen, a->cost } };
    srv_reply(wq->srv, c, &rep, code == 0 && a->cost ? &u : NULL);
}

/*
 * Take W out of its queue, free it, then reply. In that order: a reply can close W's
 * connection (a peer that stopped reading), which drops every waiter of the connection,
 * W included; replying first left the caller holding a freed W. The reply is built from a
 * copy (its queue outlives it: queues are freed only with the waitq).
 */
static void finish_reply(waitq *wq, waiter *w, int code, const rldi_verdict *v, uint64_t now,
                         const char *msg)
{
    wait_answer a = { w->id, w->cost, w->q->slot, w->q->gen, w->position, w->enq_ns,
                      w->expected_ns };
    conn *c = w->c;
    finish(wq, w);
    reply_wait(wq, c, &a, code, v, now, msg);
}

/* Grant COST of H at NOW (charged as of DUE_NS at the earliest), counted in the slot. */
static int grant(waitq *wq, rldi_handle h, uint64_t cost, uint64_t due_ns, uint64_t now,
                 rldi_verdict *v)
{
    int r = rldi_bucket_grant(wq->seg, h, cost, due_ns, rldi_fp_from_ns(now), v);
    if (r == 0) {
        rldi_add_relaxed(&wq->seg->slots[h.slot].admitted, cost);
        wq->grants_total++;
    }
    return r;
}

/* Try the heads of Q while they fit; schedule the next try. */
static void serve(waitq *wq, limitq *q, uint64_t now)
{
    while (q->total) {
        waiter *w = NULL;
        for (int p = WAITQ_PRIORITIES - 1; p >= 0 && !w; p--)
            w = q->head[p];
        rldi_handle h = { q->slot, q->gen };
        rldi_verdict v;
        int rc = grant(wq, h, w->cost, q->due_ns ? q->due_ns : now, now, &v);
        if (rc == -EAGAIN) {
            uint64_t at = now + (v.retry_after_ns ? v.retry_after_ns : 1);
            q->due_ns = at;
            if (heap_set(&wq->grants, &q->grant, at) < 0)
                LOG_ERROR("out of memory scheduling a grant");
            return;
        }
        q->due_ns = 0;
        if (rc == 0) {
            q->granted++;
            finish_reply(wq, w, 0, &v, now, NULL);
        } else {
            finish_reply(wq, w, rc, NULL, now, rldi_strerror(rc));
        }
    }
}

static limitq *queue_for(waitq *wq, uint32_t slot, uint32_t gen)
{
    limitq *q = wq->queues[slot];
    if (q && q->gen != gen && q->total == 0) {
        q->gen = gen;            /* slot reused by another limit */
        q->granted = q->timed_out = 0;
    }
    if (!q) {
        q = calloc(1, sizeof(*q));
        if (!q)
            return NULL;
        q->slot = slot;
        q->gen = gen;
        q->grant.idx = HEAP_NONE;
        wq->queues[slot] = q;
    }
    return q->gen == gen ? q : NULL;
}

/* The limit a Wait names: by handle, or by name. 0, or a code after replying. */
static int wait_target(waitq *wq, conn *c, uint64_t id, const Rld__V1__Wait *w, rldi_handle *h)
{
    if (w->gen != 0) {
        h->slot = w->slot;
        h->gen = w->gen;
        if (h->slot >= wq->seg->slot_count) {
            srv_reply_code(wq->srv, c, id, -EINVAL, "no limit in slot %u", h->slot);
            return -EINVAL;
        }
        return 0;
    }
    const char *why;
    int r = rldi_name_check(w->limit, &why) < 0
                ? -EINVAL
                : rldi_seg_lookup(wq->seg, w->limit, &h->slot, &h->gen);
    if (r < 0) {
        char name[80];
        rlog_escape(w->limit, strlen(w->limit), name, sizeof(name));
        srv_reply_code(wq->srv, c, id, r, "limit '%s': %s", name, rldi_strerror(r));
    }
    return r;
}

void waitq_add(waitq *wq, conn *c, uint64_t id, const Rld__V1__Wait *w)
{
    uint64_t now = rldi_mono_ns();
    rldi_handle h;
    int r;
    if (wait_target(wq, c, id, w, &h) < 0)
        return;
    if (w->priority < 0 || w->priority >= WAITQ_PRIORITIES) {
        srv_reply_code(wq->srv, c, id, -EINVAL, "priority %d out of range 0..%d", w->priority,
                       WAITQ_PRIORITIES - 1);
        return;
    }
    wait_answer a = { id, w->cost, h.slot, h.gen, 0, now, 0 };
    /* Nobody queued: grant at once if it fits (the common round trip: no allocation). */
    limitq *q0 = wq->queues[h.slot];
    if (!q0 || q0->total == 0 || q0->gen != h.gen) {
        rldi_verdict gv;
        if ((r = grant(wq, h, w->cost, now, now, &gv)) == 0) {
            reply_wait(wq, c, &a, 0, &gv, now, NULL);
            return;
        }
        if (r != -EAGAIN) {
            srv_reply_code(wq->srv, c, id, r, "%s", rldi_strerror(r));
            return;
        }
    }
    /* Validate and handle what needs no queue: cost above the burst. */
    rldi_verdict peek;
    if ((r = rldi_bucket_peek(wq->seg, h, rldi_fp_from_ns(now), &peek)) < 0) {
        srv_reply_code(wq->srv, c, id, r, "%s", rldi_strerror(r));
        return;
    }
    if (w->cost > peek.limit) {
        srv_reply_code(wq->srv, c, id, -E2BIG, "cost %llu exceeds the burst %llu",
                       (unsigned long long)w->cost, (unsigned long long)peek.limit);
        return;
    }
    conn_waits *cw = &wq->conns[c->idx];
    if (cw->count >= SRV_MAX_WAITS_PER_CONN) {
        rlog_once_at(&wq->srv->log_full, RLOG_WARN, "connection of pid %d: more than %u waits",
                     (int)c->pid, SRV_MAX_WAITS_PER_CONN);
        srv_reply_code(wq->srv, c, id, -ENOSPC, "too many waits on this connection (max %u)",
                       SRV_MAX_WAITS_PER_CONN);
        return;
    }
    limitq *q = queue_for(wq, h.slot, h.gen);
    if (!q) {
        srv_reply_code(wq->srv, c, id, -ENOMEM, "out of memory");
        return;
    }
    if (q->total >= wq->max_waiters) {
        rlog_once_at(&wq->srv->log_full, RLOG_WARN, "limit in slot %u: more than %u waiters",
                     h.slot, wq->max_waiters);
        srv_reply_code(wq->srv, c, id, -ENOSPC, "too many waiters on this limit (max %u)",
                       wq->max_waiters);
        return;
    }
    /* Ahead of us: every waiter of our priority or higher. */
    uint64_t ahead = 0;
    uint32_t position = 0;
    for (int p = w->priority; p < WAITQ_PRIORITIES; p++) {
        ahead += q->tokens[p];
        position += q->count[p];
    }
    rldi_verdict v;
    if ((r = rldi_bucket_estimate(wq->seg, h, ahead, w->cost, rldi_fp_from_ns(now), &v)) < 0) {
        srv_reply_code(wq->srv, c, id, r, "%s", rldi_strerror(r));
        return;
    }
    if (w->timeout_ns >= 0 && v.retry_after_ns > (uint64_t)w->timeout_ns) {
        /* It could not be served in time: say so now, with the wait it would need. */
        a.position = position;
        a.enq_ns = 0;
        reply_wait(wq, c, &a, -ETIMEDOUT, &v, now, "the wait would exceed the timeout");
        wq->timeouts_total++;
        q->timed_out++;
        return;
    }
    waiter *n = calloc(1, sizeof(*n));
    if (!n) {
        srv_reply_code(wq->srv, c, id, -ENOMEM, "out of memory");
        return;
    }
    n->deadline.idx = HEAP_NONE;
    n->q = q;
    n->c = c;
    n->id = id;
    n->cost = w->cost;
    n->prio = w->priority;
    n->position = position;
    n->enq_ns = now;
    n->expected_ns = v.retry_after_ns;
    n->prev = q->tail[n->prio];
    if (n->prev)
        n->prev->next = n;
    else
        q->head[n->prio] = n;
    q->tail[n->prio] = n;
    q->count[n->prio]++;
    q->tokens[n->prio] += n->cost;
    q->total++;
    q->queued += n->cost;
    n->cnext = cw->head;
    if (cw->head)
        cw->head->cprev = n;
    cw->head = n;
    cw->count++;
    wq->waiters++;
    if (w->timeout_ns >= 0 &&
        heap_set(&wq->deadlines, &n->deadline, now + (uint64_t)w->timeout_ns) < 0)
        LOG_ERROR("out of memory for a wait deadline");
    publish(wq, q);
    serve(wq, q, now);
}

int waitq_cancel(waitq *wq, conn *c, uint64_t wait_id)
{
    for (waiter *w = wq->conns[c->idx].head; w; w = w->cnext) {
        if (w->id != wait_id)
            continue;
        limitq *q = w->q;
        uint64_t now = rldi_mono_ns();
        finish_reply(wq, w, -ECANCELED, NULL, now, "cancelled");
        serve(wq, q, now);
        return 0;
    }
    return -ENOENT;
}

void waitq_drop_conn(waitq *wq, conn *c)
{
    conn_waits *cw = &wq->conns[c->idx];
    while (cw->head) {
        waiter *w = cw->head;
        limitq *q = w->q;
        finish(wq, w);
        serve(wq, q, rldi_mono_ns());  /* the ones behind may fit now */
    }
}

uint32_t waitq_conn_waits(const waitq *wq, const conn *c)
{
    return wq->conns[c->idx].count;
}

uint64_t waitq_run(waitq *wq, uint64_t now)
{
    heap_node *n;
    while ((n = heap_min(&wq->deadlines)) && n->key <= now) {
        waiter *w = (waiter *)((char *)n - offsetof(waiter, deadline));
        limitq *q = w->q;
        uint64_t ahead = 0;
        for (int p = w->prio; p < WAITQ_PRIORITIES; p++)
            ahead += q->tokens[p];
        rldi_handle h = { q->slot, q->gen };
        rldi_verdict v = { 0 };
        if (rldi_bucket_estimate(wq->seg, h, ahead - w->cost, w->cost, rldi_fp_from_ns(now), &v) < 0)
            memset(&v, 0, sizeof(v));
        wq->timeouts_total++;
        q->timed_out++;
        finish_reply(wq, w, -ETIMEDOUT, &v, now,
                     "timed out in the queue (higher priorities came first)");
        serve(wq, q, now);
    }
    while ((n = heap_min(&wq->grants)) && n->key <= now) {
        limitq *q = (limitq *)((char *)n - offsetof(limitq, grant));
        heap_remove(&wq->grants, n);
        serve(wq, q, now);
    }
    heap_node *a = heap_min(&wq->deadlines), *b = heap_min(&wq->grants);
    if (!a)
        return b ? b->key : 0;
    if (!b)
        return a->key;
    return a->key < b->key ? a->key : b->key;
}

static void reply_all(waitq *wq, limitq *q, int code, const char *msg)
{
    uint64_t now = rldi_mono_ns();
    for (int p = 0; p < WAITQ_PRIORITIES; p++)
        while (q->head[p])
            finish_reply(wq, q->head[p], code, NULL, now, msg);
}

void waitq_limit_deleted(waitq *wq, uint32_t slot)
{
    limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : NULL;
    if (q)
        reply_all(wq, q, -ESTALE, "the limit was deleted");
}

void waitq_limit_changed(waitq *wq, uint32_t slot)
{
    limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : NULL;
    if (q && q->total)
        serve(wq, q, rldi_mono_ns());
}

void waitq_shutdown(waitq *wq)
{
    for (uint32_t i = 0; i < wq->seg->slot_count; i++)
        if (wq->queues[i])
            reply_all(wq, wq->queues[i], -ESHUTDOWN, "rld is stopping");
}

void waitq_limit_stats(const waitq *wq, uint32_t slot, waitq_stats *out)
{
    const limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : NULL;
    out->waiters = q ? q->total : 0;
    out->tokens = q ? q->queued : 0;
    out->granted = q ? q->granted : 0;
    out->timed_out = q ? q->timed_out : 0;
}

void waitq_totals(const waitq *wq, uint32_t *waiters, uint64_t *grants, uint64_t *timeouts)
{
    *waiters = wq->waiters;
    *grants = wq->grants_total;
    *timeouts = wq->timeouts_total;
}
