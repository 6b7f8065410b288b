/*
 * waitq.c - queued waits (see waitq.h).
 *
 * Grants go through the daemon's own librld client with RLD_TRY_BARGE: the daemon is the
 * queue, so it must not stay behind itself. The head of the highest non-empty priority is
 * always served first; when it does not fit, the limit's next try is set to exactly the
 * head's retry_after, so grants are on schedule to the timer's resolution.
 */
#include "waitq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "client.h"
#include "gcra.h"
#include "log.h"

#define DEADLINES(s) ((heap *)(s)->deadline_heap)
#define GRANTS(s)    ((heap *)(s)->grant_heap)

void waitq_init(server *s)
{
    s->queues = calloc(s->seg->slot_count, sizeof(*s->queues));
    s->deadline_heap = calloc(1, sizeof(heap));
    s->grant_heap = calloc(1, sizeof(heap));
    if (!s->queues || !s->deadline_heap || !s->grant_heap) {
        LOG_ERROR("out of memory for %u wait queues", s->seg->slot_count);
        exit(1);
    }
}

void waitq_free(server *s)
{
    if (!s->queues)
        return;
    for (uint32_t i = 0; i < s->seg->slot_count; i++)
        free(s->queues[i]);
    free(s->queues);
    free(DEADLINES(s)->v);
    free(GRANTS(s)->v);
    free(s->deadline_heap);
    free(s->grant_heap);
    s->queues = NULL;
}

/* The slot's queue facts, as the fast path reads them. */
static void publish(server *s, limitq *q)
{
    rldi_slot *sl = &s->seg->slots[q->slot];
    rldi_store_relaxed(&sl->queued, q->queued);
    rldi_store_release(&sl->waiters, q->total);
}

static void unlink_waiter(server *s, waiter *w)
{
    limitq *q = w->q;
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
        w->c->waiters = w->cnext;
    if (w->cnext)
        w->cnext->cprev = w->cprev;
    w->c->waits--;
    heap_remove(DEADLINES(s), &w->deadline);
    s->waiters--;
    if (q->total == 0) {
        heap_remove(GRANTS(s), &q->grant);
        q->due_ns = 0;              /* a later waiter must not be backdated to it */
    }
}

static void finish(server *s, waiter *w)
{
    limitq *q = w->q;
    unlink_waiter(s, w);
    publish(s, q);
    free(w);
}

static void reply_wait(server *s, conn *c, uint64_t id, int code, const rld_result *r,
                       const waiter *w, uint64_t now, const char *msg)
{
    Rld__V1__WaitReply wr = RLD__V1__WAIT_REPLY__INIT;
    if (r) {
        wr.limit = r->limit;
        wr.remaining = r->remaining;
        wr.retry_after_ns = r->retry_after_ns;
        wr.reset_after_ns = r->reset_after_ns;
    }
    if (w) {
        wr.queue_position = w->position;
        wr.expected_wait_ns = w->expected_ns;
        wr.waited_ns = now - w->enq_ns;
    }
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = id;
    rep.code = code;
    rep.message = (char *)(msg ? msg : "");
    rep.body_case = RLD__V1__REPLY__BODY_WAIT;
    rep.wait = &wr;
    srv_reply(s, c, &rep, code == 0 ? w : NULL);
}

/*
 * Take W out of its queue, free it, then reply. In that order: a reply can close W's
 * connection (a peer that stopped reading), which drops every waiter of the connection,
 * W included; replying first left the caller holding a freed W. The reply is built from a
 * copy (its queue outlives it: queues are freed only with the server).
 */
static void finish_reply(server *s, waiter *w, int code, const rld_result *r, uint64_t now,
                         const char *msg)
{
    waiter cp = *w;
    finish(s, w);
    reply_wait(s, cp.c, cp.id, code, r, &cp, now, msg);
}

/* Try the heads of Q while they fit; schedule the next try. */
static void serve(server *s, limitq *q, uint64_t now)
{
    while (q->total) {
        waiter *w = NULL;
        for (int p = WAITQ_PRIORITIES - 1; p >= 0 && !w; p--)
            w = q->head[p];
        rld_limit lim = { q->slot, q->gen };
        rld_result r;
        int rc = rldc_grant(s->self, lim, w->cost, q->due_ns ? q->due_ns : now, &r);
        if (rc == -EAGAIN) {
            uint64_t at = srv_now_ns() + (r.retry_after_ns ? r.retry_after_ns : 1);
            q->due_ns = at;
            if (heap_set(GRANTS(s), &q->grant, at) < 0)
                LOG_ERROR("out of memory scheduling a grant");
            return;
        }
        q->due_ns = 0;
        if (rc == 0) {
            q->granted++;
            s->grants++;
            r.queue_position = w->position;
            finish_reply(s, w, 0, &r, now, NULL);
        } else {
            finish_reply(s, w, rc, NULL, now, rld_strerror(rc));
        }
    }
}

/* What a try of COST behind EXTRA queued tokens would wait now; -ESTALE if gone. */
static int estimate(server *s, uint32_t slot, uint32_t gen, uint64_t extra, uint64_t cost,
                    uint64_t now, rldi_verdict *v)
{
    rldi_slot *sl = &s->seg->slots[slot];
    if (rldi_load_relaxed(&sl->gen) != gen)
        return -ESTALE;
    rldi_u128 word = rldi_load16_split(&sl->tat);
    uint64_t fv = (uint64_t)(word >> 64);
    const rldi_bank *b = &sl->bank[(fv >> 32) & 1];
    rldi_u128 t = ((rldi_u128)rldi_load_relaxed(&b->t_hi) << 64) | rldi_load_relaxed(&b->t_lo);
    uint64_t burst = rldi_load_relaxed(&b->burst);
    if (t == 0) {
        *v = (rldi_verdict){ UINT64_MAX, UINT64_MAX, 0, 0 };
        return 0;
    }
    rldi_gcra_verdict_denied(t, burst, 0, rldi_tat_unpack((uint64_t)word, fv),
                             rldi_fp_from_ns(now), cost, extra, v);
    if (extra == 0 && v->retry_after_ns == 1)
        v->retry_after_ns = 0;  /* fits now */
    return 0;
}

static limitq *queue_for(server *s, uint32_t slot, uint32_t gen)
{
    limitq *q = s->queues[slot];
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
        s->queues[slot] = q;
    }
    return q->gen == gen ? q : NULL;
}

void waitq_add(server *s, conn *c, uint64_t id, const Rld__V1__Wait *w)
{
    uint64_t now = srv_now_ns();
    rld_limit lim;
    int r;
    if (w->gen != 0) {
        lim.slot = w->slot;
        lim.gen = w->gen;
        if (lim.slot >= s->seg->slot_count) {
            srv_reply_code(s, c, id, -EINVAL, "no limit in slot %u", lim.slot);
            return;
        }
    } else if ((r = rld_find(s->self, w->limit, &lim)) < 0) {
        char name[80];
        rlog_escape(w->limit, strlen(w->limit), name, sizeof(name));
        srv_reply_code(s, c, id, r, "limit '%s': %s", name, rld_strerror(r));
        return;
    }
    if (w->priority < 0 || w->priority >= WAITQ_PRIORITIES) {
        srv_reply_code(s, c, id, -EINVAL, "priority %d out of range 0..%d", w->priority,
                       WAITQ_PRIORITIES - 1);
        return;
    }
    /* Nobody queued: grant at once if it fits (the common round trip: no allocation). */
    limitq *q0 = s->queues[lim.slot];
    if (!q0 || q0->total == 0 || q0->gen != lim.gen) {
        rld_result gr;
        if ((r = rldc_grant(s->self, lim, w->cost, now, &gr)) == 0) {
            waiter pseudo = { .q = &(limitq){ .slot = lim.slot, .gen = lim.gen }, .cost = w->cost,
                              .enq_ns = now };
            s->grants++;
            reply_wait(s, c, id, 0, &gr, &pseudo, now, NULL);
            return;
        }
        if (r != -EAGAIN) {
            srv_reply_code(s, c, id, r, "%s", rld_strerror(r));
            return;
        }
    }
    /* Validate and handle what needs no queue: cost above the burst. */
    rld_result peek;
    if ((r = rld_peek(s->self, lim, &peek)) < 0) {
        srv_reply_code(s, c, id, r, "%s", rld_strerror(r));
        return;
    }
    if (w->cost > peek.limit) {
        srv_reply_code(s, c, id, -E2BIG, "cost %llu exceeds the burst %llu",
                       (unsigned long long)w->cost, (unsigned long long)peek.limit);
        return;
    }
    if (c->waits >= SRV_MAX_WAITS_PER_CONN) {
        srv_logonce(&s->log_full, RLOG_WARN, "connection of pid %d: more than %u waits",
                    (int)c->pid, SRV_MAX_WAITS_PER_CONN);
        srv_reply_code(s, c, id, -ENOSPC, "too many waits on this connection (max %u)",
                       SRV_MAX_WAITS_PER_CONN);
        return;
    }
    limitq *q = queue_for(s, lim.slot, lim.gen);
    if (!q) {
        srv_reply_code(s, c, id, -ENOMEM, "out of memory");
        return;
    }
    if (q->total >= s->conf->max_waiters) {
        srv_logonce(&s->log_full, RLOG_WARN, "limit in slot %u: more than %u waiters",
                    lim.slot, s->conf->max_waiters);
        srv_reply_code(s, c, id, -ENOSPC, "too many waiters on this limit (max %u)",
                       s->conf->max_waiters);
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
    if ((r = estimate(s, lim.slot, lim.gen, ahead, w->cost, now, &v)) < 0) {
        srv_reply_code(s, c, id, r, "%s", rld_strerror(r));
        return;
    }
    if (w->timeout_ns >= 0 && v.retry_after_ns > (uint64_t)w->timeout_ns) {
        /* It could not be served in time: say so now, with the wait it would need. */
        rld_result rr = { v.limit, v.remaining, v.retry_after_ns, v.reset_after_ns, position, 0, 0 };
        reply_wait(s, c, id, -ETIMEDOUT, &rr, NULL, now,
                   "the wait would exceed the timeout");
        s->timeouts++;
        q->timed_out++;
        return;
    }
    waiter *n = calloc(1, sizeof(*n));
    if (!n) {
        srv_reply_code(s, c, id, -ENOMEM, "out of memory");
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
    n->cnext = c->waiters;
    if (c->waiters)
        c->waiters->cprev = n;
    c->waiters = n;
    c->waits++;
    s->waiters++;
    if (w->timeout_ns >= 0 && heap_set(DEADLINES(s), &n->deadline, now + (uint64_t)w->timeout_ns) < 0)
        LOG_ERROR("out of memory for a wait deadline");
    publish(s, q);
    serve(s, q, now);
}

int waitq_cancel(server *s, conn *c, uint64_t wait_id)
{
    for (waiter *w = c->waiters; w; w = w->cnext) {
        if (w->id != wait_id)
            continue;
        limitq *q = w->q;
        finish_reply(s, w, -ECANCELED, NULL, srv_now_ns(), "cancelled");
        serve(s, q, srv_now_ns());
        return 0;
    }
    return -ENOENT;
}

void waitq_drop_conn(server *s, conn *c)
{
    while (c->waiters) {
        waiter *w = c->waiters;
        limitq *q = w->q;
        finish(s, w);
        serve(s, q, srv_now_ns());  /* the ones behind may fit now */
    }
}

void waitq_run(server *s, uint64_t now)
{
    heap_node *n;
    while ((n = heap_min(DEADLINES(s))) && n->key <= now) {
        waiter *w = (waiter *)((char *)n - offsetof(waiter, deadline));
        limitq *q = w->q;
        rldi_verdict v;
        uint64_t ahead = 0;
        for (int p = w->prio; p < WAITQ_PRIORITIES; p++)
            ahead += q->tokens[p];
        rld_result rr = { 0 };
        if (estimate(s, q->slot, q->gen, ahead - w->cost, w->cost, now, &v) == 0)
            rr = (rld_result){ v.limit, v.remaining, v.retry_after_ns, v.reset_after_ns, 0, 0, 0 };
        s->timeouts++;
        q->timed_out++;
        finish_reply(s, w, -ETIMEDOUT, &rr, now,
                     "timed out in the queue (higher priorities came first)");
        serve(s, q, now);
    }
    while ((n = heap_min(GRANTS(s))) && n->key <= now) {
        limitq *q = (limitq *)((char *)n - offsetof(limitq, grant));
        heap_remove(GRANTS(s), n);
        serve(s, q, now);
    }
}

uint64_t waitq_next_due(const server *s)
{
    heap_node *a = heap_min(DEADLINES(s)), *b = heap_min(GRANTS(s));
    if (!a)
        return b ? b->key : 0;
    if (!b)
        return a->key;
    return a->key < b->key ? a->key : b->key;
}

static void reply_all(server *s, limitq *q, int code, const char *msg)
{
    uint64_t now = srv_now_ns();
    for (int p = 0; p < WAITQ_PRIORITIES; p++)
        while (q->head[p]) {
            finish_reply(s, q->head[p], code, NULL, now, msg);
        }
}

void waitq_limit_deleted(server *s, uint32_t slot)
{
    limitq *q = s->queues[slot];
    if (q)
        reply_all(s, q, -ESTALE, "the limit was deleted");
}

void waitq_limit_changed(server *s, uint32_t slot)
{
    limitq *q = s->queues[slot];
    if (q && q->total)
        serve(s, q, srv_now_ns());
}

void waitq_shutdown(server *s)
{
    for (uint32_t i = 0; i < s->seg->slot_count; i++)
        if (s->queues[i])
            reply_all(s, s->queues[i], -ESHUTDOWN, "rld is stopping");
}

void waitq_info(const server *s, uint32_t slot, uint32_t *waiters, uint64_t *tokens,
                uint64_t *granted, uint64_t *timed_out)
{
    const limitq *q = slot < s->seg->slot_count ? s->queues[slot] : NULL;
    *waiters = q ? q->total : 0;
    *tokens = q ? q->queued : 0;
    *granted = q ? q->granted : 0;
    *timed_out = q ? q->timed_out : 0;
}
