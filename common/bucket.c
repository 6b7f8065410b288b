/*
 * bucket.c - admission on a limit's state word: the out-of-line paths of bucket.h.
 *
 * Every function here follows one pattern: load the state word, build a view (the word and
 * the config bank its version names), decide with gcra.h, then either publish with one
 * 16-byte CAS (retrying with the value the CAS returned when it loses a race) or, when
 * nothing is published, check that the word did not move while the bank was read.
 */
#include "bucket.h"

#include <errno.h>
#include <string.h>

#include "cell.h"
#include "clock.h"
#include "window.h"

/* NS of a pool's bank (RLDI_POOL_T a token) in the terms of its leases (HINT ns a token),
 * rounded up. */
static uint64_t pool_scale(uint64_t ns, uint64_t hint)
{
    if (ns == 0)
        return 0;
    rldi_u128 x = (rldi_u128)ns * hint;
    x = x / RLDI_POOL_T_NS + (x % RLDI_POOL_T_NS != 0);
    return x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
}

/* A global limit's pool refills from leases, not from its bank's 4.29 s a token: when the
 * daemon left a hint, the verdict's times (retry_after, reset_after) follow it. Counts are
 * the pool's own. Host limits (hint 0) and a pool's fallback bank (another T) are as is. */
static void pool_times(const rldi_slot *sl, rldi_u128 t, rldi_verdict *v)
{
    if (rldi_likely(t != RLDI_POOL_T))
        return;
    uint64_t hint = rldi_load_relaxed(&sl->lease_hint_ns);
    if (hint == 0)
        return;
    v->retry_after_ns = pool_scale(v->retry_after_ns, hint);
    v->reset_after_ns = pool_scale(v->reset_after_ns, hint);
}

void rldi_bucket_verdict_fast(rldi_verdict *v, const rldi_slot *sl, const rldi_bank *b,
                              uint64_t t, uint64_t burst, uint64_t cost, rldi_u128 nt,
                              rldi_u128 now)
{
    if (nt - now == (rldi_u128)t * cost) {
        /* The bucket was full: exactly burst - cost remain, no division needed. */
        v->limit = burst;
        v->remaining = burst - cost;
        v->retry_after_ns = 0;
        v->reset_after_ns = rldi_fp_to_ns_ceil(nt - now);
        v->flags = v->waiters = v->window = 0;
    } else {
        uint64_t bits = rldi_load_relaxed(&b->inv_t);
        double inv;
        memcpy(&inv, &bits, sizeof(inv));
        rldi_gcra_verdict_ok(t, burst, inv, nt, now, v);
    }
    if (rldi_unlikely(t == (uint64_t)RLDI_POOL_T))
        pool_times(sl, t, v);
}

/* After an admission at NOW_NS that left TAT at NTAT (ns): the bucket is busy when TAT runs
 * MARGIN_NS or more ahead of now, and this thread tries the coarse path next (unless it is
 * backing off). The precise time less a tick is never after the coarse clock. */
static void coarse_after(rldi_coarse *tc, uint64_t margin_ns, uint64_t now_ns, uint64_t ntat)
{
    if (!tc || !margin_ns || ntat - now_ns < margin_ns)
        return;
    if (tc->backoff) {
        tc->backoff--;
        return;
    }
    tc->hint = 1;
    tc->floor_ns = now_ns - margin_ns / 4;
}

int rldi_bucket_took(const rldi_slot *sl, uint64_t t, uint64_t burst, uint64_t cost,
                     uint64_t now_ns, uint64_t ntat, uint64_t nfv, uint64_t margin_ns,
                     rldi_coarse *tc, rldi_verdict *v)
{
    coarse_after(tc, margin_ns, now_ns, ntat);
    if (v)
        rldi_bucket_verdict_fast(v, sl, &sl->bank[(nfv >> 32) & 1], t, burst, cost,
                                 rldi_tat_unpack(ntat, nfv), rldi_fp_from_ns(now_ns));
    return 0;
}

/*
 * The fast path's second attempt: a bucket not full at NOW_NS (tat >= now), or a CAS lost
 * by rldi_bucket_take_fast; TAT | FV << 64 is the state word as the caller last saw it.
 * Loops on lost races with the state the CAS returned while the version stays (the bank
 * read stays valid) and the limit stays as it was (same gen, no waiters): a contended line
 * is best retried at once, while this core owns it. A full bucket (TAT < now) admits cost
 * <= burst with new TAT = now + cost*T; else D = TAT - now, allowed iff D + cost*T <= tau,
 * i.e. D <= (burst - cost)*T, new TAT = TAT + cost*T. Denials and everything else go to
 * rldi_bucket_take_word.
 */
int rldi_bucket_take_busy(const rldi_seg *s, rldi_handle h, uint64_t cost, uint64_t now_ns,
                          uint64_t tat, uint64_t fv, uint64_t margin_ns, rldi_coarse *tc,
                          rldi_verdict *v)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (rldi_unlikely(!sl))
        return -EINVAL;
    uint64_t ver = fv >> 32;
    const rldi_bank *b = &sl->bank[ver & 1];
    uint64_t t = rldi_load_relaxed(&b->t_lo), burst = rldi_load_relaxed(&b->burst);
    const uint64_t *gw = (const uint64_t *)&sl->gen;     /* gen | waiters << 32 */
    if (rldi_load_relaxed(gw) != h.gen || !(h.gen & 1) || rldi_load_relaxed(&b->t_hi) != 0 ||
        t == 0 || cost - 1 >= burst)
        goto slow;
    rldi_u128 ct = (rldi_u128)t * cost, room = (rldi_u128)t * (burst - cost);
    uint64_t ntat, nfv;
    for (;;) {
        if (tat < now_ns) {
            ntat = now_ns + (uint64_t)(ct >> 32);
            nfv = (fv & RLDI_VER_MASK) | (uint32_t)ct;
        } else {
            rldi_u128 d = ((rldi_u128)(tat - now_ns) << 32) | (uint32_t)fv;
            if (d > room)
                goto slow;
            uint64_t f = (fv & RLDI_FRAC_MASK) + (uint32_t)ct;
            ntat = tat + (uint64_t)(ct >> 32) + (f >> 32);
            nfv = (fv & RLDI_VER_MASK) | (uint32_t)f;
        }
        if (rldi_cas16_halves(&sl->tat, &tat, &fv, ntat, nfv))
            break;
        if ((fv >> 32) != ver || rldi_load_relaxed(gw) != h.gen)
            goto slow;                  /* a new config, or a changed limit: decide again */
    }
    return rldi_bucket_took(sl, t, burst, cost, now_ns, ntat, nfv, margin_ns, tc, v);
slow:
    return rldi_bucket_take_word(s, h, cost, rldi_fp_from_ns(now_ns), 0,
                                 ((rldi_u128)fv << 64) | tat, v);
}

/* Is C's limit in shadow mode (mode = shadow: a template's flag holds for its keys)? */
static inline bool shadow_of(const rldi_cell *c)
{
    return rldi_unlikely(rldi_load_relaxed(&c->cfg->flags) & RLDI_SLOT_SHADOW);
}

/*
 * A shadow limit's denial: admitted after all, and counted (c->meta's shadowed). The state
 * stays what the denial left (nothing taken), so it moves exactly as the enforced limit's
 * would; OUT keeps the denial's figures, with RLDI_V_SHADOW and no retry_after.
 */
static int shadow_admit(const rldi_seg *s, const rldi_cell *c, rldi_verdict *out)
{
    __atomic_fetch_add(&s->slots[c->meta].shadowed, 1u, __ATOMIC_RELAXED);
    if (out) {
        out->retry_after_ns = 0;
        out->flags |= RLDI_V_SHADOW;
    }
    return 0;
}

static int take_cell0(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                      unsigned flags, rldi_u128 word, rldi_verdict *out);

/* rldi_bucket_take_word on a resolved cell; shadow mode turns a denial into an admission. */
static int take_cell(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                     unsigned flags, rldi_u128 word, rldi_verdict *out)
{
    int r = take_cell0(s, c, cost, now, flags, word, out);
    if (rldi_unlikely(r == -EAGAIN) && shadow_of(c))
        return shadow_admit(s, c, out);
    return r;
}

static int take_cell0(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                      unsigned flags, rldi_u128 word, rldi_verdict *out)
{
    const rldi_slot *sl = c->cfg;
    for (;;) {
        rldi_view v;
        int r = rldi_cell_view(c, word, &v);
        if (rldi_unlikely(r < 0))
            return r;
        if (rldi_view_algo(&v) != RLDI_ALGO_GCRA)
            return rldi_win_take(s, c, cost, now, flags, word, out);
        rldi_u128 new_tat;
        /* waiters of a daemon that stopped beating are stale: a dead daemon must not
         * block the fast path until it is restarted */
        if (v.waiters && ((flags & RLDI_TAKE_BARGE) || rldi_seg_daemon_stale(s, rldi_fp_to_ns(now))))
            v.waiters = 0;
        /* 1 <= cost <= burst on a limited limit: the decision; all else below */
        if (rldi_likely(cost - 1 < v.burst && v.t != 0) &&
            rldi_gcra_decide(v.t, v.burst, v.tat, now, cost, v.waiters, &new_tat)) {
            if (rldi_likely(rldi_cas16(c->word, &word, rldi_word_make(new_tat, v.ver)))) {
                if (out) {
                    rldi_gcra_verdict_ok(v.t, v.burst, v.inv, new_tat, now, out);
                    pool_times(sl, v.t, out);
                }
                return 0;
            }
            continue;   /* lost a race: WORD now holds the current state */
        }
        /* Nothing to publish: trust the bank read only if the state word did not move. */
        if (rldi_cell_moved(c, &v, &word))
            continue;
        if (v.t == 0) {
            if (out)
                rldi_verdict_unlimited(out);
            return 0;
        }
        if (cost > v.burst)
            return -E2BIG;
        if (cost == 0) {                        /* takes nothing, always succeeds */
            if (out) {
                rldi_gcra_peek(v.t, v.burst, v.tat, now, out);
                pool_times(sl, v.t, out);
            }
            return 0;
        }
        if (out) {
            uint64_t extra = v.waiters ? rldi_cell_queued(c) : 0;
            rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, extra, out);
            pool_times(sl, v.t, out);
            out->waiters = v.waiters;
        }
        return -EAGAIN;
    }
}

int rldi_bucket_take_word(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                          unsigned flags, rldi_u128 word, rldi_verdict *out)
{
    rldi_cell c;
    int r = rldi_cell_of(s, h, &c);
    if (rldi_unlikely(r < 0))
        return r;
    if (c.keyed)                    /* the caller read a slot's word, not the key's */
        word = rldi_load16_split(c.word);
    return take_cell(s, &c, cost, now, flags, word, out);
}

int rldi_bucket_take_cell(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                          unsigned flags, rldi_verdict *out)
{
    return take_cell(s, c, cost, now, flags, rldi_load16_split(c->word), out);
}

int rldi_bucket_take_any(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                         unsigned flags, rldi_verdict *out)
{
    rldi_cell c;
    int r = rldi_cell_of(s, h, &c);
    if (rldi_unlikely(r < 0))
        return r;
    return take_cell(s, &c, cost, now, flags, rldi_load16_split(c.word), out);
}

/*
 * Run F on a consistent view of H: F publishes nothing, and what it computed is kept only
 * if the state word did not move while it ran (else it runs again on the new state).
 */
typedef int (*view_fn)(const rldi_cell *c, const rldi_view *v, void *arg);
#define NOT_GCRA 2      /* the view is a window algorithm's: window.c decides */

static int with_view(const rldi_seg *s, rldi_handle h, view_fn f, void *arg, rldi_cell *c)
{
    int r = rldi_cell_of(s, h, c);
    if (r < 0)
        return r;
    for (;;) {
        rldi_view v;
        r = rldi_cell_view(c, rldi_load16_split(c->word), &v);
        if (r < 0)
            return r;
        r = rldi_view_algo(&v) == RLDI_ALGO_GCRA ? f(c, &v, arg) : NOT_GCRA;
        if (rldi_cell_still(c, &v))
            return r;
    }
}

struct probe_arg {
    uint64_t cost, extra;       /* extra: what a queue puts ahead (estimate), else 0 */
    unsigned flags;
    rldi_u128 now;
    rldi_verdict vd;
};

static int probe_fn(const rldi_cell *c, const rldi_view *v, void *arg)
{
    struct probe_arg *a = arg;
    const rldi_slot *sl = c->cfg;
    rldi_u128 unused;
    if (v->t == 0) {
        rldi_verdict_unlimited(&a->vd);
        return 0;
    }
    if (a->cost > v->burst)
        return -E2BIG;
    /* a queue counts as at least one token ahead */
    uint64_t extra = v->waiters && !(a->flags & RLDI_TAKE_BARGE) ? rldi_cell_queued(c) | 1 : 0;
    bool ok = rldi_gcra_try(v->t, v->burst, v->tat, a->now, a->cost, extra, &unused, &a->vd);
    pool_times(sl, v->t, &a->vd);
    a->vd.waiters = v->waiters;
    return ok ? 0 : -EAGAIN;
}

int rldi_bucket_probe(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                      unsigned flags, rldi_verdict *out)
{
    struct probe_arg a = { cost, 0, flags, now, { 0 } };
    rldi_cell c;
    int r = with_view(s, h, probe_fn, &a, &c);
    if (r == NOT_GCRA) {
        r = rldi_win_probe(s, &c, cost, now, flags, out);
    } else if (out && (r == 0 || r == -EAGAIN)) {
        *out = a.vd;
    }
    if (r == -EAGAIN && shadow_of(&c)) {    /* what a take would say: admitted */
        if (out) {
            out->retry_after_ns = 0;
            out->flags |= RLDI_V_SHADOW;
        }
        return 0;
    }
    return r;
}

static int peek_fn(const rldi_cell *c, const rldi_view *v, void *arg)
{
    struct probe_arg *a = arg;
    if (v->t == 0)
        rldi_verdict_unlimited(&a->vd);
    else
        rldi_gcra_peek(v->t, v->burst, v->tat, a->now, &a->vd);
    pool_times(c->cfg, v->t, &a->vd);
    a->vd.waiters = rldi_cell_waiters(c);
    return 0;
}

int rldi_bucket_peek(const rldi_seg *s, rldi_handle h, rldi_u128 now, rldi_verdict *out)
{
    struct probe_arg a = { 0, 0, 0, now, { 0 } };
    rldi_cell c;
    int r = with_view(s, h, peek_fn, &a, &c);
    if (r == NOT_GCRA) {
        rldi_verdict vd;
        r = rldi_win_peek(s, &c, now, &vd);
        if (out && r == 0)
            *out = vd;
        return r;
    }
    if (out && r == 0)
        *out = a.vd;
    return r;
}

static int estimate_fn(const rldi_cell *c, const rldi_view *v, void *arg)
{
    const rldi_slot *sl = c->cfg;
    struct probe_arg *a = arg;
    if (v->t == 0) {
        rldi_verdict_unlimited(&a->vd);
        return 0;
    }
    rldi_gcra_verdict_denied(v->t, v->burst, v->inv, v->tat, a->now, a->cost, a->extra, &a->vd);
    if (a->extra == 0 && a->vd.retry_after_ns == 1)
        a->vd.retry_after_ns = 0;               /* fits now */
    pool_times(sl, v->t, &a->vd);               /* a pool: when leases bring it */
    return 0;
}

int rldi_bucket_estimate(const rldi_seg *s, rldi_handle h, uint64_t extra, uint64_t cost,
                         rldi_u128 now, rldi_verdict *out)
{
    struct probe_arg a = { cost, extra, 0, now, { 0 } };
    rldi_cell c;
    int r = with_view(s, h, estimate_fn, &a, &c);
    if (r == NOT_GCRA)
        r = rldi_win_estimate(s, &c, extra, cost, now, out);
    else if (r == 0)
        *out = a.vd;
    if (r == 0 && shadow_of(&c))            /* a shadow limit never keeps a waiter */
        out->retry_after_ns = 0;
    return r;
}

static int do_debit(const rldi_view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat);

/* Apply F to a limit's state in a CAS loop (refund, debit). F returns 0 with *new_tat, or
 * a negative code (nothing to publish). Unlimited limits have no state to change. */
typedef int (*update_fn)(const rldi_view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat);

/* The most one call may put H's limit into debt: its configuration's (the daemon keeps it
 * in the slot's meta; a config change racing with the call may apply the old cap, which is
 * policy, not an invariant). */
static uint64_t rldi_max_debt(const rldi_seg *s, uint32_t slot)
{
    return rldi_load_relaxed(&s->meta[slot].max_debt_ns);
}

static int update(const rldi_seg *s, rldi_handle h, uint64_t amount, uint32_t window,
                  rldi_u128 now, update_fn f)
{
    rldi_cell c;
    int r = rldi_cell_of(s, h, &c);
    if (r < 0)
        return r;
    rldi_u128 word = rldi_load16_split(c.word);
    for (;;) {
        rldi_view v;
        r = rldi_cell_view(&c, word, &v);
        if (r < 0)
            return r;
        if (rldi_view_algo(&v) != RLDI_ALGO_GCRA)
            return f == do_debit ? rldi_win_debit(s, &c, amount, rldi_max_debt(s, c.meta), now)
                                 : rldi_win_refund(s, &c, amount, window, now);
        v.max_debt_ns = rldi_max_debt(s, c.meta);
        rldi_u128 new_tat = v.tat;
        if (v.t != 0)
            r = f(&v, now, amount, &new_tat);
        if (r < 0 || new_tat == v.tat) {
            if (rldi_cell_moved(&c, &v, &word))
                continue;
            return r;
        }
        if (rldi_cas16(c.word, &word, rldi_word_make(new_tat, v.ver)))
            return 0;
    }
}

static int do_refund(const rldi_view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat)
{
    *new_tat = rldi_gcra_refund(v->t, v->tat, now, amount);
    return 0;
}

static int do_debit(const rldi_view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat)
{
    return rldi_gcra_debit_max(v->t, v->burst, v->tat, now, amount, v->max_debt_ns, new_tat);
}

int rldi_bucket_refund(const rldi_seg *s, rldi_handle h, uint64_t amount, uint32_t window,
                       rldi_u128 now)
{
    return update(s, h, amount, window, now, do_refund);
}

int rldi_bucket_debit(const rldi_seg *s, rldi_handle h, uint64_t amount, rldi_u128 now)
{
    return update(s, h, amount, 0, now, do_debit);
}

int rldi_bucket_grant(const rldi_seg *s, rldi_handle h, uint64_t cost, uint64_t due_ns,
                      rldi_u128 now, rldi_verdict *out)
{
    rldi_cell c;
    int r = rldi_cell_of(s, h, &c);
    if (r < 0)
        return r;
    const rldi_slot *sl = c.cfg;
    rldi_u128 word = rldi_load16_split(c.word);
    for (;;) {
        rldi_view v;
        r = rldi_cell_view(&c, word, &v);
        if (r < 0)
            return r;
        if (v.t == 0 || cost == 0 || cost > v.burst || rldi_view_algo(&v) != RLDI_ALGO_GCRA)
            return take_cell(s, &c, cost, now, RLDI_TAKE_BARGE, word, out);
        /* Charged as of its due time, but never more than one emission interval back:
         * at most one token beyond burst + rate x elapsed over any window. */
        rldi_u128 due = rldi_fp_from_ns(due_ns), at = now;
        if (due < now)
            at = now - due > v.t ? now - v.t : due;
        rldi_u128 nt;
        if (!rldi_gcra_decide(v.t, v.burst, v.tat, at, cost, 0, &nt)) {
            if (rldi_cell_moved(&c, &v, &word))
                continue;
            if (out) {
                rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, 0, out);
                pool_times(sl, v.t, out);
            }
            return -EAGAIN;
        }
        if (!rldi_cas16(c.word, &word, rldi_word_make(nt, v.ver)))
            continue;
        if (out) {
            rldi_gcra_peek(v.t, v.burst, nt, now, out);
            pool_times(sl, v.t, out);
        }
        return 0;
    }
}

int rldi_bucket_reserve(const rldi_seg *s, rldi_handle h, uint64_t cost, uint64_t deadline_ns,
                        rldi_u128 now, rldi_verdict *out, uint64_t *wait_ns)
{
    rldi_cell c;
    *wait_ns = 0;
    int r = rldi_cell_of(s, h, &c);
    if (r < 0)
        return r;
    rldi_u128 word = rldi_load16_split(c.word);
    for (;;) {
        rldi_view v;
        r = rldi_cell_view(&c, word, &v);
        if (r < 0)
            return r;
        if (rldi_view_algo(&v) != RLDI_ALGO_GCRA) {
            /* A window cannot be booked ahead: take if it fits, else say how long to sleep
             * before trying again (-EINPROGRESS), within the deadline. */
            r = take_cell(s, &c, cost, now, RLDI_TAKE_BARGE, word, out);
            if (r != -EAGAIN)
                return r;
            uint64_t w = out ? out->retry_after_ns : 1000000;
            if (deadline_ns && rldi_fp_to_ns(now) + w > deadline_ns)
                return -ETIMEDOUT;
            *wait_ns = w ? w : 1;
            return -EINPROGRESS;
        }
        if (v.t == 0 || cost > v.burst || cost == 0)   /* nothing to wait for */
            return take_cell(s, &c, cost, now, RLDI_TAKE_BARGE, word, out);
        /* take the tokens now, into debt (capped, as a debit: TAT must never wrap), and
         * let the caller wait until the debt is due */
        rldi_u128 nt, tau = v.t * v.burst;
        uint64_t wait = 0;
        r = rldi_gcra_debit_max(v.t, v.burst, v.tat, now, cost, rldi_max_debt(s, c.meta), &nt);
        if (r == 0) {
            wait = nt - now > tau ? rldi_fp_to_ns_ceil(nt - now - tau) : 0;
            if (deadline_ns && rldi_fp_to_ns(now) + wait > deadline_ns)
                r = -ETIMEDOUT;
        }
        if (r < 0) {
            if (rldi_cell_moved(&c, &v, &word))
                continue;
            if (out)
                rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, 0, out);
            return -ETIMEDOUT;
        }
        if (!rldi_cas16(c.word, &word, rldi_word_make(nt, v.ver)))
            continue;
        *wait_ns = wait;
        if (out) {
            rldi_u128 then = now + rldi_fp_from_ns(wait);
            rldi_gcra_peek(v.t, v.burst, nt > then ? nt : then, then, out);
        }
        return 0;
    }
}

/* ---- the upstream's word: rld_penalize, rld_sync (issue 15) ------------------------------- */

/*
 * GCRA admits a token at t iff max(TAT, t) + T - t <= tau: from a state B = max(TAT, now),
 * the tokens admitted by time t >= now number at most floor((t + tau - B) / T), reached by
 * greedy callers. "At most R before now + X" is that count at the last ns before now + X,
 * so B must be at least now + X + tau - (R + 1) T: with exactly that B, the R-th token is due
 * at now + X - T and the (R+1)-th at now + X, to the unit (docs/DESIGN.md). Penalize is R = 0:
 * nothing before now + D, one token at now + D, then the rate. Publishing max(TAT, B) never
 * loosens; a pool (scope = global) is refused: the daemon's credits would undo it.
 */
int rldi_bucket_sync(const rldi_seg *s, rldi_handle h, uint64_t remaining, uint64_t reset_ns,
                     rldi_u128 now, rldi_sync_out *out)
{
    if (out)
        *out = (rldi_sync_out){ false, 0 };
    if (reset_ns > RLDI_SYNC_MAX_NS)
        return -ERANGE;
    rldi_cell c;
    int r = rldi_cell_of(s, h, &c);
    if (r < 0)
        return r;
    rldi_u128 word = rldi_load16_split(c.word);
    for (;;) {
        rldi_view v;
        r = rldi_cell_view(&c, word, &v);
        if (r < 0)
            return r;
        if (rldi_view_algo(&v) != RLDI_ALGO_GCRA)
            return rldi_win_sync(s, &c, remaining, reset_ns, now, out);
        rldi_u128 tau, step, nt = 0;
        bool pool = v.t == RLDI_POOL_T && v.burst <= RLDI_POOL_BURST_MAX;
        bool bound = !pool && v.t != 0 && reset_ns != 0 && remaining != UINT64_MAX &&
                     !__builtin_mul_overflow(v.t, (rldi_u128)v.burst, &tau) &&
                     tau <= rldi_fp_from_ns(RLDI_TAU_MAX_NS) &&
                     !__builtin_mul_overflow(v.t, (rldi_u128)remaining + 1, &step);
        if (bound) {
            rldi_u128 hi = now + rldi_fp_from_ns(reset_ns) + tau;
            bound = step < hi;
            if (bound)
                nt = hi - step;
            /* a TAT the word cannot hold (a clock or state no real process has) */
            if (bound && nt >= rldi_fp_from_ns(UINT64_MAX >> 1)) {
                if (rldi_cell_moved(&c, &v, &word))
                    continue;
                return -ERANGE;
            }
        }
        /* nothing to publish: no bound (unlimited, R beyond what the state can give), or
         * the state holds it already */
        if (!bound || nt <= v.tat || nt <= now) {
            if (rldi_cell_moved(&c, &v, &word))
                continue;
            return pool ? -EOPNOTSUPP : 0;
        }
        if (!rldi_cas16(c.word, &word, rldi_word_make(nt, v.ver)))
            continue;
        if (out) {
            out->changed = true;
            out->waiters = v.waiters;
        }
        return 0;
    }
}

/* ---- the daemon's writes ------------------------------------------------------------------ */

static void bank_read(const rldi_bank *b, rldi_bank *out)
{
    out->t_lo = rldi_load_relaxed(&b->t_lo);
    out->t_hi = rldi_load_relaxed(&b->t_hi);
    out->burst = rldi_load_relaxed(&b->burst);
    out->inv_t = rldi_load_relaxed(&b->inv_t);
}

static void bank_write(rldi_bank *b, const rldi_bank *in)
{
    rldi_store_relaxed(&b->t_lo, in->t_lo);
    rldi_store_relaxed(&b->t_hi, in->t_hi);
    rldi_store_relaxed(&b->burst, in->burst);
    rldi_store_relaxed(&b->inv_t, in->inv_t);
}

void rldi_bank_gcra(rldi_bank *b, rldi_u128 t, uint64_t burst)
{
    b->t_lo = (uint64_t)t;
    b->t_hi = (uint64_t)(t >> 64);
    b->burst = burst;
    double inv = t ? 1.0 / ((double)(uint64_t)(t >> 64) * 18446744073709551616.0 + (double)(uint64_t)t)
                   : 0.0;
    memcpy(&b->inv_t, &inv, sizeof(inv));
}

void rldi_bucket_config(const rldi_slot *sl, rldi_bank *out)
{
    uint32_t ver = (uint32_t)(rldi_load_relaxed(&sl->frac_ver) >> 32);
    bank_read(&sl->bank[ver & 1], out);
}

bool rldi_bank_same(const rldi_bank *a, const rldi_bank *b)
{
    /* inv_t is GCRA's hint, derived from T; for windows it is a parameter */
    return a->t_lo == b->t_lo && a->t_hi == b->t_hi && a->burst == b->burst &&
           (RLDI_BANK_ALGO(a->t_hi) == RLDI_ALGO_GCRA || a->inv_t == b->inv_t);
}

void rldi_bucket_publish(rldi_slot *sl, rldi_ring *ring, const rldi_bank *nb, bool carry,
                         uint64_t max_debt_ns)
{
    rldi_u128 word = rldi_load16_split(&sl->tat);
    uint32_t ver = (uint32_t)(word >> 96);
    bank_write(&sl->bank[(ver + 1) & 1], nb);
    rldi_fence_release();
    uint32_t nalgo = RLDI_BANK_ALGO(nb->t_hi);
    for (;;) {
        uint64_t fv = (uint64_t)(word >> 64);
        ver = (uint32_t)(fv >> 32);
        rldi_bank ob;
        bank_read(&sl->bank[ver & 1], &ob);
        rldi_u128 now = rldi_fp_from_ns(rldi_mono_ns()), nw;
        bool same = carry && RLDI_BANK_ALGO(ob.t_hi) == nalgo;
        if (nalgo == RLDI_ALGO_BREAKER) {
            /* a breaker's state carries as it is (closed when fresh): breaker.h */
            nw = same ? (word & ~((rldi_u128)UINT32_MAX << 96)) | ((rldi_u128)(ver + 1) << 96)
                      : (rldi_u128)(ver + 1) << 96;
        } else if (nalgo != RLDI_ALGO_GCRA) {
            /* a window: its own carry (same algorithm) or a fresh window, whose ring holds
             * nothing of a limit this slot held before */
            if (!same)
                for (unsigned i = 0; i < RLDI_RING_ENTRIES; i++)
                    rldi_store_relaxed(&ring->e[i], 0);
            nw = same ? rldi_win_carry(&ob, nb, ring, word, now, ver + 1)
                      : rldi_win_fresh(nb, now, ver + 1);
        } else {
            rldi_u128 nt = now;
            if (same) {
                rldi_u128 ot = ((rldi_u128)ob.t_hi << 64) | ob.t_lo;
                rldi_u128 t = ((rldi_u128)nb->t_hi << 64) | nb->t_lo;
                nt = rldi_gcra_carry(ot, ob.burst, t, nb->burst, max_debt_ns,
                                     rldi_tat_unpack((uint64_t)word, fv), now);
            }
            nw = rldi_word_make(nt, ver + 1);
        }
        if (rldi_cas16(&sl->tat, &word, nw))
            return;
    }
}

void rldi_bucket_seal(rldi_slot *sl)
{
    rldi_u128 word = rldi_load16_split(&sl->tat);
    for (;;) {
        uint32_t ver = (uint32_t)(word >> 96);
        rldi_bank b;
        bank_read(&sl->bank[ver & 1], &b);
        bank_write(&sl->bank[(ver + 1) & 1], &b);
        rldi_fence_release();
        rldi_u128 nw = (word & ~((rldi_u128)UINT32_MAX << 96)) | (rldi_u128)(ver + 1) << 96;
        if (rldi_cas16(&sl->tat, &word, nw))
            return;
    }
}

void rldi_bucket_publish_template(rldi_slot *sl, const rldi_bank *nb, uint32_t epoch)
{
    rldi_u128 word = rldi_load16_split(&sl->tat);
    uint32_t ver = (uint32_t)(word >> 96);
    bank_write(&sl->bank[(ver + 1) & 1], nb);
    rldi_fence_release();
    for (;;) {
        ver = (uint32_t)(word >> 96);
        if (rldi_cas16(&sl->tat, &word, ((rldi_u128)(ver + 1) << 96) | epoch))
            return;
    }
}

void rldi_bucket_fill(rldi_slot *sl, rldi_ring *ring)
{
    rldi_u128 word = rldi_load16_split(&sl->tat);
    /* A sliding window's past goes first; a take racing with this may write back what it
     * read before, which only over-counts (denies) until that sub-window leaves. */
    for (unsigned i = 0; i < RLDI_RING_ENTRIES; i++)
        rldi_store_relaxed(&ring->e[i], 0);
    for (;;) {
        uint32_t ver = (uint32_t)(word >> 96);
        rldi_bank b;
        bank_read(&sl->bank[ver & 1], &b);
        rldi_u128 now = rldi_fp_from_ns(rldi_mono_ns());
        rldi_u128 nw = RLDI_BANK_ALGO(b.t_hi) != RLDI_ALGO_GCRA ? rldi_win_fresh(&b, now, ver)
                                                               : rldi_word_make(now, ver);
        if (rldi_cas16(&sl->tat, &word, nw))
            return;
    }
}

/* ---- a global limit's pool ----------------------------------------------------------------- */

int rldi_bucket_pool(const rldi_seg *s, rldi_handle h, uint64_t hold_ns, uint64_t credit,
                     uint64_t take, rldi_u128 now, rldi_pool_state *out)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl)
        return -EINVAL;
    rldi_u128 word = rldi_load16_split(&sl->tat);
    for (;;) {
        rldi_view v;
        int r = rldi_view_fill(sl, h.gen, word, &v);
        if (r < 0)
            return r;
        if (v.t != RLDI_POOL_T || v.burst == 0 || v.burst > RLDI_POOL_BURST_MAX) {
            if (rldi_view_moved(sl, &v, &word))
                continue;
            return -EAGAIN;                     /* not a pool now: the daemon's fallback */
        }
        /* "used" is the pool's TAT ahead of now: tau - used is what it holds */
        rldi_u128 tau = v.t * v.burst, cap = tau + rldi_fp_from_ns(RLDI_DEBT_MAX_NS);
        rldi_u128 used = v.tat > now ? v.tat - now : 0, hold = rldi_fp_from_ns(hold_ns);
        used = used > cap ? cap : used;
        used = hold >= cap - used ? cap : used + hold;      /* the refill since, cancelled */
        uint64_t moved = 0;
        if (credit) {
            uint64_t room = (uint64_t)(used / v.t);         /* whole tokens that still fit */
            moved = credit < room ? credit : room;
            used -= (rldi_u128)moved * v.t;
        } else if (take) {
            uint64_t have = used >= tau ? 0 : (uint64_t)((tau - used) / v.t);
            moved = take < have ? take : have;
            used += (rldi_u128)moved * v.t;
        }
        rldi_u128 nt = now + used;
        if (nt != v.tat) {
            if (!rldi_cas16(&sl->tat, &word, rldi_word_make(nt, v.ver)))
                continue;
        } else if (rldi_view_moved(sl, &v, &word)) {
            continue;
        }
        if (out) {
            out->moved = moved;
            out->avail = used >= tau ? 0 : (uint64_t)((tau - used) / v.t);
            out->debt = used > tau ? (uint64_t)((used - tau + v.t - 1) / v.t) : 0;
        }
        return 0;
    }
}

void rldi_bucket_publish_tokens(rldi_slot *sl, rldi_u128 t, uint64_t burst, uint64_t max_tokens,
                                uint64_t *held)
{
    rldi_bank nb;
    rldi_bank_gcra(&nb, t, burst);
    rldi_u128 word = rldi_load16_split(&sl->tat);
    uint32_t ver = (uint32_t)(word >> 96);
    bank_write(&sl->bank[(ver + 1) & 1], &nb);
    rldi_fence_release();
    for (;;) {
        uint64_t fv = (uint64_t)(word >> 64);
        ver = (uint32_t)(fv >> 32);
        rldi_u128 tat = rldi_tat_unpack((uint64_t)word, fv);
        rldi_u128 now = rldi_fp_from_ns(rldi_mono_ns());
        rldi_bank ob;
        uint64_t have;
        bank_read(&sl->bank[ver & 1], &ob);
        rldi_u128 ot = ((rldi_u128)ob.t_hi << 64) | ob.t_lo;
        if (RLDI_BANK_ALGO(ob.t_hi) != RLDI_ALGO_GCRA) {
            have = 0;                           /* a window's counts are not tokens in hand */
        } else if (ot == 0) {
            have = ob.burst;                    /* unlimited: as full as it gets */
        } else {
            rldi_u128 used = tat > now ? tat - now : 0, tau;
            if (__builtin_mul_overflow(ot, (rldi_u128)ob.burst, &tau))
                tau = 0;                        /* a scribbled bank: holds nothing */
            have = used >= tau ? 0 : rldi_div_floor(tau - used, ot, UINT64_MAX);
        }
        uint64_t keep = have < max_tokens ? have : max_tokens;
        keep = keep < burst ? keep : burst;
        rldi_u128 nt = now + t * (burst - keep);
        if (rldi_cas16(&sl->tat, &word, rldi_word_make(nt, ver + 1))) {
            if (held)
                *held = have;
            return;
        }
    }
}
