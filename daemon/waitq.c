/*
 * waitq.c - queued waits (see waitq.h).
 *
 * A wait is a set of charges (one or more limits and a cost on each; a single wait is the
 * set of one). The waiter object holds the set and has one entry per charge in that limit's
 * queue. Every queue is ordered by (priority desc, arrival): the daemon links a waiter into
 * all its queues at once, so the order is the same in every queue and the first waiter of
 * all (highest priority, earliest) is at the head of each of its queues; no set can wait for
 * another in a cycle. A waiter is served when it is at the head of every one of its queues
 * and every charge fits: the daemon takes them all (bucket.h grants, barging: the daemon is
 * the queue), rolling back if one fails (the fast path of a barging client may race). When
 * one does not fit, the timer of that limit is set to exactly the largest retry_after of the
 * set, so grants are on schedule to the timer's resolution.
 *
 * A queue whose head may have changed is "kicked" onto a work list that every entry point
 * drains once (serve), so nothing recurses however replies close connections.
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
#include "keys.h"
#include "lease.h"
#include "log.h"
#include "uidcount.h"
#include "rate.h"

typedef struct limitq limitq;
typedef struct waiter waiter;

/* A waiter's place in one limit's queue: one per charge. */
typedef struct wentry {
    struct wentry *next, *prev;     /* in its limit's queue, priority list of its waiter */
    limitq        *q;
    waiter        *w;
    uint64_t       cost;
    uint32_t       index;           /* the charge's index in the request */
} wentry;

struct waiter {
    heap_node      deadline;        /* in the deadline heap when it has a timeout */
    waiter        *cnext, *cprev;   /* in its connection's list */
    conn          *c;
    uint64_t       id;              /* request id, echoed */
    int            prio;
    uint32_t       n;               /* charges (entries) */
    uint32_t       position;        /* callers ahead when queued (the most in any queue) */
    uint64_t       enq_ns, expected_ns;
    uint64_t       due_ns;          /* when the set was foreseen to fit (grants charge as of it) */
    bool           lease;           /* a Lease: granted with one of its limit's leases */
    wentry         e[];
};

struct limitq {
    heap_node grant;                /* next time to try the head, in the grant heap */
    wentry   *head[WAITQ_PRIORITIES], *tail[WAITQ_PRIORITIES];
    uint32_t  count[WAITQ_PRIORITIES];
    uint64_t  tokens[WAITQ_PRIORITIES];
    uint32_t  total;                /* entries: a multi-wait counts once per limit */
    uint64_t  queued;
    uint32_t  slot, gen;
    uint64_t  granted, timed_out;
    limitq   *knext;                /* in the kicked list */
    bool      kicked;
    bool      in_gc;                /* a key's queue on the list of those to free once empty */
    limitq   *gcnext;
};

/* The queues of keys (handle slots past the named limits'): few at once out of millions of
 * keys, so a map by handle slot (open addressing, backward-shift deletion), each freed once
 * empty. */
typedef struct keyq_map {
    limitq  **v;
    uint32_t  cap, n;               /* cap: a power of two, or 0 */
} keyq_map;

/* A connection's waits, by connection index (the transport knows nothing of them). */
typedef struct conn_waits {
    waiter  *head;
    uint32_t count;                 /* entries: a multi-wait counts once per limit */
} conn_waits;

struct waitq {
    server     *srv;
    rldi_seg   *seg;
    uint32_t    max_waiters;        /* per limit */
    uint32_t    max_per_uid;        /* waits of one user, across limits */
    uidcount    by_uid;
    rlog_once   log_uid;
    limitq    **queues;             /* by slot, lazily */
    keyq_map    keyqs;              /* keys' queues */
    limitq     *gc;                 /* keys' queues that became empty */
    heap        deadlines, grants;
    conn_waits  conns[SRV_MAX_CONNS];
    uint32_t    waiters;            /* waits */
    uint64_t    grants_total, timeouts_total;
    limitq     *kicked;             /* queues whose head may have changed */
    bool        serving;            /* serve() is running: a nested entry only kicks */
    leases     *leases;             /* concurrency limits' leases (lease.h), or NULL */
    uint64_t    retimed;            /* Retime requests */
};

/* One charge of a request, resolved. */
typedef struct charge {
    rldi_handle h;
    uint64_t    cost;
    uint32_t    index;
    uint32_t    window;     /* set by grant_all: the window the tokens came from (0: GCRA) */
} charge;

waitq *waitq_new(server *srv, rldi_seg *seg, uint32_t max_waiters, uint32_t max_per_uid)
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
    q->max_per_uid = max_per_uid;
    return q;
}

void waitq_free(waitq *q)
{
    if (!q)
        return;
    for (uint32_t i = 0; i < q->seg->slot_count; i++)
        free(q->queues[i]);
    free(q->queues);
    for (uint32_t i = 0; i < q->keyqs.cap; i++)
        free(q->keyqs.v[i]);
    free(q->keyqs.v);
    uidcount_free(&q->by_uid);
    free(q->deadlines.v);
    free(q->grants.v);
    free(q);
}

void waitq_set_leases(waitq *q, leases *l)
{
    q->leases = l;
}

void waitq_set_max_waiters(waitq *q, uint32_t max_waiters, uint32_t max_per_uid)
{
    q->max_waiters = max_waiters;
    q->max_per_uid = max_per_uid;
}

/* ---- keys' queues --------------------------------------------------------------------- */

static inline uint32_t keyq_home(const keyq_map *m, uint32_t slot)
{
    return (uint32_t)(((uint64_t)slot * 0x9E3779B97F4A7C15ull) >> 32) & (m->cap - 1);
}

static limitq *keyq_get(const waitq *wq, uint32_t slot)
{
    const keyq_map *m = &wq->keyqs;
    if (!m->cap)
        return NULL;
    for (uint32_t i = keyq_home(m, slot);; i = (i + 1) & (m->cap - 1)) {
        if (!m->v[i])
            return NULL;
        if (m->v[i]->slot == slot)
            return m->v[i];
    }
}

static bool keyq_put(waitq *wq, limitq *q)
{
    keyq_map *m = &wq->keyqs;
    if ((m->n + 1) * 2 > m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : 64;
        limitq **v = calloc(cap, sizeof(*v));
        if (!v)
            return false;
        keyq_map nm = { v, cap, 0 };
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->v[i]) {
                uint32_t j = keyq_home(&nm, m->v[i]->slot);
                while (v[j])
                    j = (j + 1) & (cap - 1);
                v[j] = m->v[i];
                nm.n++;
            }
        free(m->v);
        *m = nm;
    }
    uint32_t i = keyq_home(m, q->slot);
    while (m->v[i])
        i = (i + 1) & (m->cap - 1);
    m->v[i] = q;
    m->n++;
    return true;
}

static void keyq_del(waitq *wq, limitq *q)
{
    keyq_map *m = &wq->keyqs;
    uint32_t i = keyq_home(m, q->slot);
    while (m->v[i] != q)
        i = (i + 1) & (m->cap - 1);
    m->v[i] = NULL;
    m->n--;
    /* backward shift: the entries after it that it was between them and their home */
    for (uint32_t j = (i + 1) & (m->cap - 1); m->v[j]; j = (j + 1) & (m->cap - 1)) {
        uint32_t h = keyq_home(m, m->v[j]->slot);
        if (((j - h) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->v[i] = m->v[j];
            m->v[j] = NULL;
            i = j;
        }
    }
}

/* Free the keys' queues that are empty and nobody looks at (after serving). */
static void keyq_collect(waitq *wq)
{
    while (wq->gc) {
        limitq *q = wq->gc;
        wq->gc = q->gcnext;
        q->in_gc = false;
        if (q->total || q->kicked || q->grant.idx != HEAP_NONE)
            continue;
        keyq_del(wq, q);
        free(q);
    }
}

/* A key's entry behind handle slot SLOT of gen GEN, or NULL when it lives no more there. */
static rldi_key_entry *key_entry(const waitq *wq, uint32_t slot, uint32_t gen, uint32_t **queued,
                                 uint32_t *tmpl_slot)
{
    rldi_table t;
    uint32_t idx;
    if (rldi_table_of_entry(wq->seg, slot, &t, &idx) < 0)
        return NULL;
    rldi_key_entry *e = &t.entries[idx];
    if (rldi_load_relaxed(&e->gen) != gen)
        return NULL;
    if (queued)
        *queued = &t.buckets[idx / RLDI_KEY_BUCKET].queued[idx % RLDI_KEY_BUCKET];
    if (tmpl_slot)
        *tmpl_slot = t.slot;
    return e;
}

/* The slot whose counters count SLOT's admissions: its own, a key's template's. */
static rldi_slot *counted_slot(const waitq *wq, uint32_t slot, uint32_t gen)
{
    uint32_t ts;
    if (slot < wq->seg->slot_count)
        return &wq->seg->slots[slot];
    return key_entry(wq, slot, gen, NULL, &ts) ? &wq->seg->slots[ts] : NULL;
}

/*
 * A key's queue facts. The key may be evicted at any moment (a client's CAS) and its entry
 * given to another key, so a plain store after checking its gen could land on the next
 * key's entry: a waiters count nobody clears, which would make that key deny (a queue
 * ahead) and never be evicted. So waiters changes by a CAS of gen | waiters expecting this
 * key's gen, and queued (the bucket's line, not covered) follows only when it landed:
 * queued is read only while waiters says there is a queue, and a claim clears both.
 */
static void publish_key(rldi_key_entry *e, uint32_t *qd, uint32_t gen, uint32_t total,
                        uint32_t queued)
{
    uint64_t *gw = (uint64_t *)&e->gen;             /* gen | waiters << 32, one word */
    uint64_t cur = rldi_load_acquire(gw);
    do {
        if ((uint32_t)cur != gen)
            return;                                 /* evicted: not ours any more */
    } while (!__atomic_compare_exchange_n(gw, &cur, (uint64_t)gen | (uint64_t)total << 32,
                                          false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE));
    rldi_store_relaxed(qd, total ? queued : 0);
}

/* The slot's queue facts, as the fast path reads them. */
static void publish(waitq *wq, limitq *q)
{
    if (q->slot >= wq->seg->slot_count) {
        uint32_t *qd;
        rldi_key_entry *e = key_entry(wq, q->slot, q->gen, &qd, NULL);
        if (e)
            publish_key(e, qd, q->gen, q->total,
                        q->queued > UINT32_MAX ? UINT32_MAX : (uint32_t)q->queued);
        if (q->total == 0 && !q->in_gc) {
            q->in_gc = true;
            q->gcnext = wq->gc;
            wq->gc = q;
        }
        return;
    }
    rldi_slot *sl = &wq->seg->slots[q->slot];
    rldi_store_relaxed(&sl->queued, q->queued);
    rldi_store_release(&sl->waiters, q->total);
}

static void kick(waitq *wq, limitq *q)
{
    if (q->kicked)
        return;
    q->kicked = true;
    q->knext = wq->kicked;
    wq->kicked = q;
}

/* The first entry of Q: the head of its highest non-empty priority. */
static wentry *head_of(const limitq *q)
{
    for (int p = WAITQ_PRIORITIES - 1; p >= 0; p--)
        if (q->head[p])
            return q->head[p];
    return NULL;
}

static void unlink_entry(waitq *wq, wentry *e, int prio)
{
    limitq *q = e->q;
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head[prio] = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail[prio] = e->prev;
    q->count[prio]--;
    q->tokens[prio] -= e->cost;
    q->total--;
    q->queued -= e->cost;
    if (q->total == 0)
        heap_remove(&wq->grants, &q->grant);
    publish(wq, q);
    kick(wq, q);                    /* the ones behind may be served now */
}

/* Take W out of every queue and its connection's list, and free it. */
static void finish(waitq *wq, waiter *w)
{
    conn_waits *cw = &wq->conns[w->c->idx];
    for (uint32_t i = 0; i < w->n; i++)
        unlink_entry(wq, &w->e[i], w->prio);
    if (w->cprev)
        w->cprev->cnext = w->cnext;
    else
        cw->head = w->cnext;
    if (w->cnext)
        w->cnext->cprev = w->cprev;
    cw->count -= w->n;
    uidcount_give(&wq->by_uid, w->c->uid, w->n);
    heap_remove(&wq->deadlines, &w->deadline);
    wq->waiters--;
    free(w);
}

/* What a grant took, for its undo: inline for one charge, else an array the undo frees. */
typedef struct undo_charge {
    uint32_t slot, gen;
    uint64_t cost;
    uint32_t window;
} undo_charge;

/*
 * The end of one granted charge, when its reply was handed to the kernel (DELIVERED: the
 * tokens are the waiter's, counted as admitted) or never will be (given back to WINDOW, the
 * one they came from, and counted as rolled back: the waiter never had them). A limit
 * deleted meanwhile counts nothing: its slot may hold another limit now (the daemon alone
 * changes gen, so the check is exact).
 */
static void grant_end(waitq *wq, rldi_handle h, uint64_t cost, uint32_t window, bool delivered,
                      rldi_u128 now)
{
    if (!delivered && rldi_bucket_refund(wq->seg, h, cost, window, now) < 0)
        return;
    if (h.slot < wq->seg->slot_count && rldi_load_relaxed(&wq->seg->slots[h.slot].gen) != h.gen)
        return;
    rldi_slot *cs = counted_slot(wq, h.slot, h.gen);   /* a key counts in its template */
    if (!cs)
        return;
    if (delivered)
        rldi_add_relaxed(&cs->admitted, cost);
    else
        rldi_add_relaxed(&wq->seg->meta[cs - wq->seg->slots].rolled_back, cost);
}

/* A grant's reply went out, or its tokens go back (one charge, inline: arg[0] the slot and
 * generation, arg[1] the cost, arg[2] the window they came from). */
static void grant_undo1(const srv_undo *u, bool delivered)
{
    waitq *wq = u->ctx;
    rldi_handle h = { (uint32_t)u->arg[0], (uint32_t)(u->arg[0] >> 32) };
    grant_end(wq, h, u->arg[1], (uint32_t)u->arg[2], delivered, rldi_now_fp());
}

/* The same for a set: arg[0] is an undo_charge array of arg[1] entries, owned here. */
static void grant_undo_n(const srv_undo *u, bool delivered)
{
    waitq *wq = u->ctx;
    undo_charge *uc = (undo_charge *)(uintptr_t)u->arg[0];
    rldi_u128 now = rldi_now_fp();
    for (uint64_t i = u->arg[1]; i-- > 0;)
        grant_end(wq, (rldi_handle){ uc[i].slot, uc[i].gen }, uc[i].cost, uc[i].window,
                  delivered, now);
    free(uc);
}

/* A granted lease whose reply cannot be delivered: given back with its token (arg[0] the
 * slot and generation, arg[1] the lease, arg[2] the cost << 32 | the window). */
static void lease_undo(const srv_undo *u, bool delivered)
{
    if (delivered)
        return;
    waitq *wq = u->ctx;
    rldi_handle h = { (uint32_t)u->arg[0], (uint32_t)(u->arg[0] >> 32) };
    if (u->arg[2] >> 32)
        rldi_bucket_refund(wq->seg, h, u->arg[2] >> 32, (uint32_t)u->arg[2], rldi_now_fp());
    uint32_t slot;
    if (wq->leases && leases_release(wq->leases, u->arg[1], 0, true, &slot) == 0)
        waitq_limit_changed(wq, slot);
}

/* What a reply says about a wait. */
typedef struct wait_answer {
    uint64_t      id;
    uint32_t      position, index;
    uint64_t      enq_ns, expected_ns;
    uint32_t      n;                /* charges granted (for the undo), 0 if none */
    const charge *ch;
    uint64_t      lease_id;         /* a granted lease (its undo gives it back), 0 if none */
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
    wr.index = a->index;
    /* For the client's refunds, in request order (a limit named twice was one charge: its
     * window is at its first place, 0 at the others). */
    uint32_t windows[WAITQ_MAX_CHARGES] = { 0 }, nw = 0;
    bool any_window = false;
    for (uint32_t i = 0; i < a->n; i++) {
        windows[a->ch[i].index] = a->ch[i].window;
        any_window |= a->ch[i].window != 0;
        if (a->ch[i].index >= nw)
            nw = a->ch[i].index + 1;
    }
    if (code == 0 && any_window) {
        wr.n_windows = nw;
        wr.windows = windows;
    }
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = a->id;
    rep.code = code;
    rep.message = (char *)(msg ? msg : "");
    rep.body_case = RLD__V1__REPLY__BODY_WAIT;
    rep.wait = &wr;
    wr.lease_id = code == 0 ? a->lease_id : 0;
    srv_undo u = { NULL, wq, { 0, 0, 0 } };
    if (code == 0 && a->lease_id) {
        u = (srv_undo){ lease_undo, wq, { a->ch[0].h.slot | (uint64_t)a->ch[0].h.gen << 32,
                                           a->lease_id,
                                           (a->ch[0].cost > UINT32_MAX ? UINT32_MAX : a->ch[0].cost) << 32 |
                                               a->ch[0].window } };
    } else if (code == 0 && a->n == 1) {
        u = (srv_undo){ grant_undo1, wq, { a->ch[0].h.slot | (uint64_t)a->ch[0].h.gen << 32,
                                            a->ch[0].cost, a->ch[0].window } };
    } else if (code == 0 && a->n > 1) {
        undo_charge *uc = malloc(a->n * sizeof(*uc));
        if (!uc) {
            /* no undo to carry: give the tokens back now and say why */
            rldi_u128 t = rldi_now_fp();
            for (uint32_t i = 0; i < a->n; i++)
                grant_end(wq, a->ch[i].h, a->ch[i].cost, a->ch[i].window, false, t);
            srv_reply_code(wq->srv, c, a->id, -ENOMEM, "out of memory");
            return;
        }
        for (uint32_t i = 0; i < a->n; i++)
            uc[i] = (undo_charge){ a->ch[i].h.slot, a->ch[i].h.gen, a->ch[i].cost,
                                   a->ch[i].window };
        u = (srv_undo){ grant_undo_n, wq, { (uint64_t)(uintptr_t)uc, a->n, 0 } };
    }
    srv_reply(wq->srv, c, &rep, u.fn ? &u : NULL);
}

/* An error reply about charge INDEX of a request. */
static void reply_error(waitq *wq, conn *c, uint64_t id, uint32_t index, int code, const char *msg)
{
    wait_answer a = { id, 0, index, 0, 0, 0, NULL, 0 };
    reply_wait(wq, c, &a, code, NULL, 0, msg);
}

/* The charges of W (for grants and the undo). */
static uint32_t charges_of(const waitq *wq, const waiter *w, charge *ch)
{
    for (uint32_t i = 0; i < w->n; i++)
        ch[i] = (charge){ { w->e[i].q->slot, w->e[i].q->gen }, w->e[i].cost, w->e[i].index, 0 };
    (void)wq;
    return w->n;
}

/*
 * Take W out of its queues, free it, then reply. In that order: a reply can close W's
 * connection (a peer that stopped reading), which drops every waiter of the connection,
 * W included; replying first left the caller holding a freed W. The reply is built from a
 * copy (queues outlive waiters: they are freed only with the waitq). GRANTED: the charges
 * taken, for the undo (NULL when nothing was).
 */
static void finish_reply(waitq *wq, waiter *w, int code, const rldi_verdict *v, uint32_t index,
                         uint64_t now, const char *msg, const charge *granted)
{
    wait_answer a = { w->id, w->position, index, w->enq_ns, w->expected_ns,
                      granted ? w->n : 0, granted, 0 };
    if (granted && w->lease) {
        /* the lease with the token: a lease for the waiter's process, given back (and the
         * token with it) if the process is gone or the lease cannot be made */
        int r = wq->leases ? leases_grant(wq->leases, granted[0].h.slot, granted[0].h.gen,
                                          w->c->pid, w->c->uid, now, &a.lease_id)
                           : -EOPNOTSUPP;
        if (r < 0) {
            rldi_bucket_refund(wq->seg, granted[0].h, granted[0].cost, granted[0].window,
                               rldi_now_fp());
            a.n = 0;
            a.ch = NULL;
            code = r;
            v = NULL;
            msg = r == -ESRCH ? "the process that asked is gone" : rldi_strerror(r);
        }
    }
    conn *c = w->c;
    finish(wq, w);
    reply_wait(wq, c, &a, code, v, now, msg);
}

/*
 * Take every charge of CH at NOW (charged as of DUE_NS at the earliest), or none: a failure
 * rolls back what was taken (counted as rolled back). 0 with *V the verdict of the tightest
 * charge (least remaining relative to its burst) and *INDEX its position in CH; or a take's
 * code with *V and *INDEX for the charge that failed. A grant is counted as admitted once
 * its reply is delivered (grant_end), since only then does the waiter keep it.
 */
static int grant_all(waitq *wq, charge *ch, uint32_t n, uint64_t due_ns, uint64_t now,
                     rldi_verdict *v, uint32_t *index)
{
    rldi_u128 at = rldi_fp_from_ns(now);
    rldi_verdict one;
    uint32_t i;
    int r = 0;
    for (i = 0; i < n; i++) {
        r = rldi_bucket_grant(wq->seg, ch[i].h, ch[i].cost, due_ns, at, &one);
        if (r < 0)
            break;
        ch[i].window = one.window;
        if (i == 0 || (unsigned __int128)one.remaining * v->limit <
                          (unsigned __int128)v->remaining * one.limit) {
            *v = one;
            *index = i;
        }
    }
    if (r < 0) {
        *v = one;
        *index = i;
        rldi_u128 later = rldi_now_fp();
        while (i-- > 0)
            grant_end(wq, ch[i].h, ch[i].cost, ch[i].window, false, later);
        return r;
    }
    wq->grants_total++;
    return 0;
}

/* Ahead of entry E in its queue now: callers and tokens (higher priorities, then earlier
 * ones of its own). Walks its priority's list: O(queue) (Position requests only). */
static void ahead_of(const wentry *e, int prio, uint32_t *callers, uint64_t *tokens)
{
    const limitq *q = e->q;
    *callers = 0;
    *tokens = 0;
    for (int p = prio + 1; p < WAITQ_PRIORITIES; p++) {
        *callers += q->count[p];
        *tokens += q->tokens[p];
    }
    for (const wentry *x = q->head[prio]; x && x != e; x = x->next) {
        (*callers)++;
        *tokens += x->cost;
    }
}

/*
 * The wait foreseen for W's set with every token ahead of it (estimated at NOW); -1 when
 * the whole queue of its priority or higher counts (at enqueue: W is not linked yet, so its
 * whole priority is ahead). *V and *INDEX: the charge with the longest wait. 0 or a code.
 */
static int estimate_set(waitq *wq, const charge *ch, const uint64_t *ahead, uint32_t n,
                        uint64_t now, rldi_verdict *v, uint32_t *index)
{
    uint64_t worst = 0;
    *index = 0;
    *v = (rldi_verdict){ 0 };           /* no charges: nothing to wait for */
    for (uint32_t i = 0; i < n; i++) {
        rldi_verdict one;
        int r = rldi_bucket_estimate(wq->seg, ch[i].h, ahead[i], ch[i].cost,
                                     rldi_fp_from_ns(now), &one);
        if (r < 0) {
            *index = i;
            return r;
        }
        if (i == 0 || one.retry_after_ns > worst) {
            worst = one.retry_after_ns;
            *v = one;
            *index = i;
        }
    }
    return 0;
}

/* Serve Q: grant its head while the head is first in all its queues and its set fits;
 * schedule the next try when it does not fit. */
static void serve_one(waitq *wq, limitq *q, uint64_t now)
{
    charge ch[WAITQ_MAX_CHARGES];
    uint64_t zero[WAITQ_MAX_CHARGES] = { 0 };
    while (q->total) {
        waiter *w = head_of(q)->w;
        for (uint32_t i = 0; i < w->n; i++)
            if (head_of(w->e[i].q) != &w->e[i])
                return;     /* behind another waiter there: that queue kicks this one */
        if (w->lease && !(wq->leases && leases_available(wq->leases, q->slot, q->gen)))
            return;         /* none free: a release (or a holder's death) kicks this queue */
        uint32_t n = charges_of(wq, w, ch), idx;
        rldi_verdict v;
        int rc = estimate_set(wq, ch, zero, n, now, &v, &idx);
        if (rc == 0 && v.retry_after_ns == 0)
            rc = grant_all(wq, ch, n, w->due_ns ? w->due_ns : now, now, &v, &idx);
        else if (rc == 0)
            rc = -EAGAIN;
        if (rc == -EAGAIN) {
            /* the set fits when its slowest charge does: that limit's timer */
            uint64_t at = now + (v.retry_after_ns ? v.retry_after_ns : 1);
            w->due_ns = at;
            if (heap_set(&wq->grants, &w->e[idx].q->grant, at) < 0)
                LOG_ERROR("out of memory scheduling a grant");
            return;
        }
        if (rc == 0) {
            for (uint32_t i = 0; i < n; i++)
                w->e[i].q->granted++;
            finish_reply(wq, w, 0, &v, ch[idx].index, now, NULL, ch);
        } else {
            finish_reply(wq, w, rc, NULL, ch[idx].index, now, rldi_strerror(rc), NULL);
        }
    }
}

/* Serve every kicked queue, until none is left. Re-entry (a reply that closes a connection
 * drops its waits, which kicks more) only adds to the list this loop drains. */
static void serve(waitq *wq, uint64_t now)
{
    if (wq->serving)
        return;
    wq->serving = true;
    while (wq->kicked) {
        limitq *q = wq->kicked;
        wq->kicked = q->knext;
        q->kicked = false;
        serve_one(wq, q, now);
    }
    wq->serving = false;
}

static limitq *queue_for(waitq *wq, uint32_t slot, uint32_t gen)
{
    if (slot >= wq->seg->slot_count) {         /* a key: one queue per handle */
        limitq *q = keyq_get(wq, slot);
        if (q && q->gen != gen && q->total == 0) {
            q->gen = gen;
            q->granted = q->timed_out = 0;
        }
        if (!q) {
            if (!(q = calloc(1, sizeof(*q))))
                return NULL;
            q->slot = slot;
            q->gen = gen;
            q->grant.idx = HEAP_NONE;
            if (!keyq_put(wq, q)) {
                free(q);
                return NULL;
            }
        }
        return q->gen == gen ? q : NULL;
    }
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

/* The limit a charge names: by handle, or by name. 0, or a code with MSG set. */
static int charge_target(waitq *wq, const char *limit, uint32_t slot, uint32_t gen,
                         rldi_handle *h, char *msg, size_t msglen)
{
    if (gen != 0) {
        h->slot = slot;
        h->gen = gen;
        if (h->slot >= wq->seg->slot_count && !key_entry(wq, slot, gen, NULL, NULL)) {
            rldi_table t;
            uint32_t idx;
            int r = rldi_table_of_entry(wq->seg, slot, &t, &idx);
            if (r < 0 && r != -ESTALE) {
                snprintf(msg, msglen, "no limit in slot %u", h->slot);
                return -EINVAL;
            }
            snprintf(msg, msglen, "the key was reclaimed (or its template deleted): look it "
                     "up again");
            return -ESTALE;
        }
        return 0;
    }
    const char *why;
    const char *name = limit ? limit : "";
    int r = rldi_name_check(name, &why) < 0 ? -EINVAL
                                            : rldi_seg_lookup(wq->seg, name, &h->slot, &h->gen);
    if (r < 0) {
        char esc[80];
        rlog_escape(name, strlen(name), esc, sizeof(esc));
        snprintf(msg, msglen, "limit '%s': %s", esc, rldi_strerror(r));
    }
    return r;
}

/* The charges of a Wait: `charges`, or the single one of its first fields; a limit named
 * twice is one charge of the summed cost (it must not queue behind itself). Returns the
 * count, or a code after replying. */
static int wait_charges(waitq *wq, conn *c, uint64_t id, const Rld__V1__Wait *w, charge *ch)
{
    char msg[160];
    size_t n = w->n_charges ? w->n_charges : 1;
    if (n > WAITQ_MAX_CHARGES) {
        srv_reply_code(wq->srv, c, id, -EINVAL, "%zu charges: at most %u", n, WAITQ_MAX_CHARGES);
        return -EINVAL;
    }
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const Rld__V1__Charge *x = w->n_charges ? w->charges[i] : NULL;
        rldi_handle h;
        uint64_t cost = x ? x->cost : w->cost;
        int r = x ? charge_target(wq, x->limit, x->slot, x->gen, &h, msg, sizeof(msg))
                  : charge_target(wq, w->limit, w->slot, w->gen, &h, msg, sizeof(msg));
        if (r < 0) {
            reply_error(wq, c, id, (uint32_t)i, r, msg);
            return r;
        }
        uint32_t j;
        for (j = 0; j < m && (ch[j].h.slot != h.slot || ch[j].h.gen != h.gen); j++)
            ;
        if (j < m) {
            if (__builtin_add_overflow(ch[j].cost, cost, &ch[j].cost))
                ch[j].cost = UINT64_MAX;
            continue;
        }
        ch[m++] = (charge){ h, cost, (uint32_t)i, 0 };
    }
    return (int)m;
}

static void add_set(waitq *wq, conn *c, uint64_t id, charge *ch, uint32_t n, int64_t timeout_ns,
                    int priority, bool lease);

void waitq_add(waitq *wq, conn *c, uint64_t id, const Rld__V1__Wait *w)
{
    charge ch[WAITQ_MAX_CHARGES];
    if (w->priority < 0 || w->priority >= WAITQ_PRIORITIES) {
        srv_reply_code(wq->srv, c, id, -EINVAL, "priority %d out of range 0..%d", w->priority,
                       WAITQ_PRIORITIES - 1);
        return;
    }
    int got = wait_charges(wq, c, id, w, ch);
    if (got < 0)
        return;
    add_set(wq, c, id, ch, (uint32_t)got, w->timeout_ns, w->priority, false);
}

void waitq_add_lease(waitq *wq, conn *c, uint64_t id, const Rld__V1__Lease *l)
{
    char msg[160];
    charge ch;
    if (l->priority < 0 || l->priority >= WAITQ_PRIORITIES) {
        srv_reply_code(wq->srv, c, id, -EINVAL, "priority %d out of range 0..%d", l->priority,
                       WAITQ_PRIORITIES - 1);
        return;
    }
    int r = charge_target(wq, l->limit, l->slot, l->gen, &ch.h, msg, sizeof(msg));
    if (r < 0) {
        reply_error(wq, c, id, 0, r, msg);
        return;
    }
    if (!wq->leases || ch.h.slot >= wq->seg->slot_count ||
        leases_capacity(wq->leases, ch.h.slot) == 0) {
        reply_error(wq, c, id, 0, -EINVAL, "the limit has no concurrency (concurrency = N in "
                    "its [limit] section)");
        return;
    }
    /* a token with the lease when the limit has a rate, else nothing to take */
    rldi_verdict peek;
    if ((r = rldi_bucket_peek(wq->seg, ch.h, rldi_now_fp(), &peek)) < 0) {
        reply_error(wq, c, id, 0, r, rldi_strerror(r));
        return;
    }
    ch.cost = peek.flags & RLDI_V_UNLIMITED ? 0 : 1;
    ch.index = 0;
    ch.window = 0;
    if (l->timeout_ns == 0 && !leases_available(wq->leases, ch.h.slot, ch.h.gen)) {
        reply_error(wq, c, id, 0, -EAGAIN, "no lease free");
        return;
    }
    add_set(wq, c, id, &ch, 1, l->timeout_ns, l->priority, true);
}

static void add_set(waitq *wq, conn *c, uint64_t id, charge *ch, uint32_t n, int64_t timeout_ns,
                    int priority, bool lease)
{
    uint64_t now = rldi_mono_ns();
    int r;
    uint32_t idx = 0;
    wait_answer a = { id, 0, 0, now, 0, 0, NULL, 0 };
    rldi_verdict v;
    /* Nobody queued on any of its limits: grant at once if the set fits (the common round
     * trip: no allocation). */
    bool idle = true;
    for (uint32_t i = 0; i < n && idle; i++) {
        limitq *q0 = ch[i].h.slot < wq->seg->slot_count ? wq->queues[ch[i].h.slot]
                                                        : keyq_get(wq, ch[i].h.slot);
        idle = !q0 || q0->total == 0 || q0->gen != ch[i].h.gen;
    }
    if (idle && lease && !leases_available(wq->leases, ch[0].h.slot, ch[0].h.gen))
        idle = false;                   /* none free: to the queue */
    if (idle) {
        if ((r = grant_all(wq, ch, n, now, now, &v, &idx)) == 0) {
            a.index = ch[idx].index;
            a.n = n;
            a.ch = ch;
            if (lease && (r = leases_grant(wq->leases, ch[0].h.slot, ch[0].h.gen, c->pid,
                                           c->uid, now, &a.lease_id)) < 0) {
                rldi_bucket_refund(wq->seg, ch[0].h, ch[0].cost, ch[0].window, rldi_now_fp());
                reply_error(wq, c, id, 0, r, r == -ESRCH ? "the process that asked is gone"
                                                         : rldi_strerror(r));
                return;
            }
            reply_wait(wq, c, &a, 0, &v, now, NULL);
            return;
        }
        if (r != -EAGAIN) {
            reply_error(wq, c, id, ch[idx].index, r, rldi_strerror(r));
            return;
        }
    }
    /* Validate and handle what needs no queue: cost above the burst. */
    for (uint32_t i = 0; i < n; i++) {
        rldi_verdict peek;
        char msg[96];
        if ((r = rldi_bucket_peek(wq->seg, ch[i].h, rldi_fp_from_ns(now), &peek)) < 0) {
            reply_error(wq, c, id, ch[i].index, r, rldi_strerror(r));
            return;
        }
        if (ch[i].cost > peek.limit) {
            snprintf(msg, sizeof(msg), "cost %llu exceeds the burst %llu",
                     (unsigned long long)ch[i].cost, (unsigned long long)peek.limit);
            reply_error(wq, c, id, ch[i].index, -E2BIG, msg);
            return;
        }
    }
    conn_waits *cw = &wq->conns[c->idx];
    if (cw->count + n > SRV_MAX_WAITS_PER_CONN) {
        rlog_once_at(&wq->srv->log_full, RLOG_WARN, "connection of pid %d: more than %u waits",
                     (int)c->pid, SRV_MAX_WAITS_PER_CONN);
        srv_reply_code(wq->srv, c, id, -ENOSPC, "too many waits on this connection (max %u)",
                       SRV_MAX_WAITS_PER_CONN);
        return;
    }
    /* One user's waits, across its connections and limits: what it can hold the others
     * back by is bounded (admins too: their waits stand in the same queues). */
    if (uidcount_get(&wq->by_uid, c->uid) + (uint64_t)n > wq->max_per_uid) {
        rlog_once_at(&wq->log_uid, RLOG_WARN, "uid %u has %u queued waits: refused more "
                     "([rld] max_waits_per_uid)", (unsigned)c->uid,
                     uidcount_get(&wq->by_uid, c->uid));
        srv_reply_code(wq->srv, c, id, -ENOSPC, "too many queued waits for uid %u (max %u)",
                       (unsigned)c->uid, wq->max_per_uid);
        return;
    }
    limitq *qs[WAITQ_MAX_CHARGES];
    uint64_t ahead[WAITQ_MAX_CHARGES];
    uint32_t position = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!(qs[i] = queue_for(wq, ch[i].h.slot, ch[i].h.gen))) {
            srv_reply_code(wq->srv, c, id, -ENOMEM, "out of memory");
            return;
        }
        if (qs[i]->total >= wq->max_waiters) {
            rlog_once_at(&wq->srv->log_full, RLOG_WARN, "limit in slot %u: more than %u waiters",
                         ch[i].h.slot, wq->max_waiters);
            char msg[96];
            snprintf(msg, sizeof(msg), "too many waiters on this limit (max %u)", wq->max_waiters);
            reply_error(wq, c, id, ch[i].index, -ENOSPC, msg);
            return;
        }
        /* Ahead of us: every waiter of our priority or higher. */
        uint32_t pos = 0;
        ahead[i] = 0;
        for (int p = priority; p < WAITQ_PRIORITIES; p++) {
            ahead[i] += qs[i]->tokens[p];
            pos += qs[i]->count[p];
        }
        if (pos > position)
            position = pos;
    }
    if ((r = estimate_set(wq, ch, ahead, n, now, &v, &idx)) < 0) {
        reply_error(wq, c, id, ch[idx].index, r, rldi_strerror(r));
        return;
    }
    if (timeout_ns >= 0 && v.retry_after_ns > (uint64_t)timeout_ns) {
        /* It could not be served in time: say so now, with the wait it would need. */
        a.position = position;
        a.index = ch[idx].index;
        a.enq_ns = 0;
        reply_wait(wq, c, &a, -ETIMEDOUT, &v, now, "the wait would exceed the timeout");
        wq->timeouts_total++;
        qs[idx]->timed_out++;
        return;
    }
    waiter *nw = calloc(1, sizeof(*nw) + n * sizeof(wentry));
    if (!nw) {
        srv_reply_code(wq->srv, c, id, -ENOMEM, "out of memory");
        return;
    }
    nw->deadline.idx = HEAP_NONE;
    nw->c = c;
    nw->id = id;
    nw->prio = priority;
    nw->lease = lease;
    nw->n = n;
    nw->position = position;
    nw->enq_ns = now;
    nw->expected_ns = v.retry_after_ns;
    for (uint32_t i = 0; i < n; i++) {
        wentry *e = &nw->e[i];
        limitq *q = qs[i];
        e->q = q;
        e->w = nw;
        e->cost = ch[i].cost;
        e->index = ch[i].index;
        e->prev = q->tail[nw->prio];
        if (e->prev)
            e->prev->next = e;
        else
            q->head[nw->prio] = e;
        q->tail[nw->prio] = e;
        q->count[nw->prio]++;
        q->tokens[nw->prio] += e->cost;
        q->total++;
        q->queued += e->cost;
        publish(wq, q);
        kick(wq, q);
    }
    nw->cnext = cw->head;
    if (cw->head)
        cw->head->cprev = nw;
    cw->head = nw;
    cw->count += n;
    if (!uidcount_take(&wq->by_uid, c->uid, n, UINT32_MAX))
        LOG_ERROR("out of memory counting the waits of uid %u", (unsigned)c->uid);
    wq->waiters++;
    if (timeout_ns >= 0 &&
        heap_set(&wq->deadlines, &nw->deadline, now + (uint64_t)timeout_ns) < 0)
        LOG_ERROR("out of memory for a wait deadline");
    serve(wq, now);
}

static waiter *find_wait(waitq *wq, conn *c, uint64_t wait_id)
{
    for (waiter *w = wq->conns[c->idx].head; w; w = w->cnext)
        if (w->id == wait_id)
            return w;
    return NULL;
}

int waitq_cancel(waitq *wq, conn *c, uint64_t wait_id)
{
    waiter *w = find_wait(wq, c, wait_id);
    if (!w)
        return -ENOENT;
    uint64_t now = rldi_mono_ns();
    finish_reply(wq, w, -ECANCELED, NULL, 0, now, "cancelled", NULL);
    serve(wq, now);
    return 0;
}

int waitq_position(waitq *wq, conn *c, uint64_t wait_id, uint32_t *position,
                   uint64_t *expected_ns)
{
    waiter *w = find_wait(wq, c, wait_id);
    if (!w)
        return -ENOENT;
    charge ch[WAITQ_MAX_CHARGES];
    uint64_t ahead[WAITQ_MAX_CHARGES];
    uint32_t n = charges_of(wq, w, ch), idx;
    *position = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t callers;
        ahead_of(&w->e[i], w->prio, &callers, &ahead[i]);
        if (callers > *position)
            *position = callers;
    }
    rldi_verdict v = { 0 };
    *expected_ns = estimate_set(wq, ch, ahead, n, rldi_mono_ns(), &v, &idx) == 0
                       ? v.retry_after_ns : 0;
    return 0;
}

void waitq_drop_conn(waitq *wq, conn *c)
{
    conn_waits *cw = &wq->conns[c->idx];
    while (cw->head)
        finish(wq, cw->head);
    serve(wq, rldi_mono_ns());          /* the ones behind may fit now */
}

uint32_t waitq_conn_waits(const waitq *wq, const conn *c)
{
    return wq->conns[c->idx].count;
}

uint64_t waitq_run(waitq *wq, uint64_t now)
{
    heap_node *n;
    charge ch[WAITQ_MAX_CHARGES];
    uint64_t ahead[WAITQ_MAX_CHARGES];
    while ((n = heap_min(&wq->deadlines)) && n->key <= now) {
        waiter *w = (waiter *)((char *)n - offsetof(waiter, deadline));
        uint32_t cnt = charges_of(wq, w, ch), idx = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t callers;
            ahead_of(&w->e[i], w->prio, &callers, &ahead[i]);
        }
        rldi_verdict v = { 0 };
        if (estimate_set(wq, ch, ahead, cnt, now, &v, &idx) < 0)
            memset(&v, 0, sizeof(v));
        wq->timeouts_total++;
        w->e[idx].q->timed_out++;
        finish_reply(wq, w, -ETIMEDOUT, &v, ch[idx].index, now,
                     w->lease ? "timed out in the queue (no lease came free in time)"
                              : "timed out in the queue (higher priorities came first)", NULL);
    }
    while ((n = heap_min(&wq->grants)) && n->key <= now) {
        limitq *q = (limitq *)((char *)n - offsetof(limitq, grant));
        heap_remove(&wq->grants, n);
        kick(wq, q);
    }
    serve(wq, now);
    keyq_collect(wq);
    heap_node *a = heap_min(&wq->deadlines), *b = heap_min(&wq->grants);
    if (!a)
        return b ? b->key : 0;
    if (!b)
        return a->key;
    return a->key < b->key ? a->key : b->key;
}

/* Every waiter with an entry in Q gets CODE. */
static void reply_all(waitq *wq, limitq *q, int code, const char *msg)
{
    uint64_t now = rldi_mono_ns();
    wentry *e;
    while ((e = head_of(q)))
        finish_reply(wq, e->w, code, NULL, e->index, now, msg, NULL);
}

/* The keys' queues of template SLOT: CODE to all their waiters (MSG), or kicked (CODE 0). */
static void template_keys(waitq *wq, uint32_t slot, int code, const char *msg)
{
    rldi_table t;
    if (!wq->keyqs.cap || rldi_table_of(wq->seg, slot, rldi_load_relaxed(&wq->seg->slots[slot].gen),
                                        &t) < 0)
        return;
    uint64_t lo = (uint64_t)wq->seg->slot_count + t.entry_base;
    uint64_t hi = lo + (uint64_t)t.nbuckets * RLDI_KEY_BUCKET;
    for (uint32_t i = 0; i < wq->keyqs.cap; i++) {
        limitq *q = wq->keyqs.v[i];
        if (!q || q->slot < lo || q->slot >= hi || !q->total)
            continue;
        if (code)
            reply_all(wq, q, code, msg);       /* the map does not change: freed later */
        else
            kick(wq, q);
    }
}

void waitq_limit_deleted(waitq *wq, uint32_t slot)
{
    limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : NULL;
    if (slot < wq->seg->slot_count && wq->seg->meta[slot].kind == RLDI_KIND_TEMPLATE)
        template_keys(wq, slot, -ESTALE, "the key's template was deleted");
    if (q)
        reply_all(wq, q, -ESTALE, "the limit was deleted");
    serve(wq, rldi_mono_ns());
}

void waitq_limit_changed(waitq *wq, uint32_t slot)
{
    limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : NULL;
    if (slot < wq->seg->slot_count && wq->seg->meta[slot].kind == RLDI_KIND_TEMPLATE)
        template_keys(wq, slot, 0, NULL);
    if (q && q->total)
        kick(wq, q);
    serve(wq, rldi_mono_ns());
}

int waitq_grown(waitq *wq, uint32_t old_count)
{
    /* named limits keep their slots: their queues stay; keys moved: their waiters learn it */
    if (wq->seg->slot_count > old_count) {
        limitq **v = realloc(wq->queues, wq->seg->slot_count * sizeof(*v));
        if (!v)
            return -ENOMEM;
        memset(v + old_count, 0, (wq->seg->slot_count - old_count) * sizeof(*v));
        wq->queues = v;
    }
    for (uint32_t i = 0; i < wq->keyqs.cap; i++)
        if (wq->keyqs.v[i] && wq->keyqs.v[i]->total)
            reply_all(wq, wq->keyqs.v[i], -ESTALE, "the segment grew: keys moved, look the "
                      "key up again");
    serve(wq, rldi_mono_ns());
    return 0;
}

/*
 * A client changed the state of SLOT (GEN) under its waiters (rld_penalize, rld_sync): each
 * waiter's wait is foreseen again, and those that can no longer be served by their deadline
 * are told at once (-ETIMEDOUT with the wait they would need), as they would have been had
 * they arrived now; the queue is kicked, which sets its timer from the new state.
 */
void waitq_limit_retime(waitq *wq, uint32_t slot, uint32_t gen)
{
    limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : keyq_get(wq, slot);
    wq->retimed++;
    if (!q || !q->total || q->gen != gen)
        return;
    uint64_t now = rldi_mono_ns();
    struct late { conn *c; uint64_t id; } *late = malloc(q->total * sizeof(*late));
    uint32_t nlate = 0;
    charge ch[WAITQ_MAX_CHARGES];
    uint64_t ahead[WAITQ_MAX_CHARGES];
    for (int p = WAITQ_PRIORITIES - 1; p >= 0 && late; p--)
        for (wentry *e = q->head[p]; e; e = e->next) {
            waiter *w = e->w;
            if (w->deadline.idx == HEAP_NONE || w->lease)
                continue;
            uint32_t n = charges_of(wq, w, ch), idx, callers;
            for (uint32_t i = 0; i < n; i++)
                ahead_of(&w->e[i], w->prio, &callers, &ahead[i]);
            rldi_verdict v;
            if (estimate_set(wq, ch, ahead, n, now, &v, &idx) == 0 &&
                now + v.retry_after_ns > w->deadline.key && nlate < q->total)
                late[nlate++] = (struct late){ w->c, w->id };
        }
    for (uint32_t k = 0; k < nlate; k++) {
        waiter *w = find_wait(wq, late[k].c, late[k].id);
        if (!w)
            continue;                   /* gone meanwhile (its connection closed) */
        uint32_t n = charges_of(wq, w, ch), idx = 0, callers;
        for (uint32_t i = 0; i < n; i++)
            ahead_of(&w->e[i], w->prio, &callers, &ahead[i]);
        rldi_verdict v = { 0 };
        if (estimate_set(wq, ch, ahead, n, now, &v, &idx) < 0)
            continue;
        wq->timeouts_total++;
        w->e[idx].q->timed_out++;
        finish_reply(wq, w, -ETIMEDOUT, &v, ch[idx].index, now,
                     "the limit was held back (the upstream's answer): the wait would exceed "
                     "the timeout now", NULL);
    }
    free(late);
    kick(wq, q);
    serve(wq, now);
}

uint64_t waitq_retimed(const waitq *wq)
{
    return wq->retimed;
}

void waitq_shutdown(waitq *wq)
{
    wq->serving = true;                 /* nothing is granted any more */
    for (uint32_t i = 0; i < wq->seg->slot_count; i++)
        if (wq->queues[i])
            reply_all(wq, wq->queues[i], -ESHUTDOWN, "rld is stopping");
    for (uint32_t i = 0; i < wq->keyqs.cap; i++)
        if (wq->keyqs.v[i])
            reply_all(wq, wq->keyqs.v[i], -ESHUTDOWN, "rld is stopping");
    wq->kicked = NULL;
}

void waitq_limit_stats(const waitq *wq, uint32_t slot, waitq_stats *out)
{
    const limitq *q = slot < wq->seg->slot_count ? wq->queues[slot] : keyq_get(wq, slot);
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
