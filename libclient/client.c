/*
 * client.c - librld: attach an instance and take tokens on the shared-memory fast path.
 *
 * A call reads the clock, loads the limit's 16-byte state word, computes GCRA (gcra.h) with
 * the config bank that word's version names, and publishes the new state with one 16-byte
 * compare-and-swap. Outcomes that publish nothing (denied, unlimited, cost too big) are
 * validated by re-reading the state word, as a seqlock reader would: the bank read is only
 * trusted if the version did not move meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atomics.h"
#include "client.h"
#include "gcra.h"
#include "rate.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* One consistent view of a limit: state word and the config it was computed with. */
typedef struct view {
    rldi_u128 word;      /* raw 16-byte state: tat | frac_ver << 64 */
    rldi_u128 tat;       /* 64.32 */
    rldi_u128 t;         /* emission interval, 0 = unlimited */
    uint64_t  burst;
    double    inv;       /* ~1/T, a hint for the division (checked) */
    uint32_t  ver;
    uint32_t  waiters;
} view;

static inline rldi_u128 now_fp(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return rldi_fp_from_ns((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/* Handle -> slot, or NULL for a handle that no rld_find could have produced. */
static inline rldi_slot *slot_of(const rld_client *c, rld_limit lim)
{
    if (unlikely(lim.slot >= c->seg.slot_count))
        return NULL;
    return &c->seg.slots[lim.slot];
}

/* Decode WORD and read the bank it names. -ESTALE when the limit behind the handle is gone.
 * The identity check comes after the state load (acquire): a delete bumps gen before it
 * bumps the version, so a reader that sees the new version also sees the new gen. */
static inline int view_fill(const rldi_slot *s, rld_limit lim, rldi_u128 word, view *v)
{
    uint64_t tat = (uint64_t)word, fv = (uint64_t)(word >> 64);
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&s->gen);   /* gen | waiters << 32 */
    if (unlikely((uint32_t)gw != lim.gen))
        return -ESTALE;
    const rldi_bank *b = &s->bank[(fv >> 32) & 1];
    v->word = word;
    v->tat = rldi_tat_unpack(tat, fv);
    v->ver = (uint32_t)(fv >> 32);
    v->waiters = (uint32_t)(gw >> 32);
    v->t = ((rldi_u128)rldi_load_relaxed(&b->t_hi) << 64) | rldi_load_relaxed(&b->t_lo);
    v->burst = rldi_load_relaxed(&b->burst);
    uint64_t bits = rldi_load_relaxed(&b->inv_t);
    memcpy(&v->inv, &bits, sizeof(v->inv));
    return 0;
}

/* True when the state word still equals what V was built from: V's bank read was consistent. */
static inline bool view_still(const rldi_slot *s, const view *v)
{
    rldi_fence_acquire();
    return rldi_load16_split(&s->tat) == v->word;
}

/* True, with WORD reloaded, when the state word moved since V was read: decide again. */
static inline bool view_moved(const rldi_slot *s, const view *v, rldi_u128 *word)
{
    if (view_still(s, v))
        return false;
    *word = rldi_load16_split(&s->tat);
    return true;
}

static inline rldi_u128 word_make(rldi_u128 tat_fp, uint32_t ver)
{
    uint64_t tat, fv;
    rldi_tat_pack(tat_fp, ver, &tat, &fv);
    return ((rldi_u128)fv << 64) | tat;
}

static inline void result_fill(rld_result *res, const rldi_verdict *vd, uint32_t flags)
{
    res->limit = vd->limit;
    res->remaining = vd->remaining;
    res->retry_after_ns = vd->retry_after_ns;
    res->reset_after_ns = vd->reset_after_ns;
    res->queue_position = 0;
    res->flags = flags;
    res->index = 0;
}

static void result_unlimited(rld_result *res)
{
    rldi_verdict vd = { UINT64_MAX, UINT64_MAX, 0, 0 };
    result_fill(res, &vd, RLD_F_UNLIMITED);
}

int rld_open(const char *instance, unsigned flags, rld_client **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (flags != 0)
        return -EINVAL;
    rld_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int r = rldi_paths_resolve(instance, &c->paths);
    if (r == -EINVAL || r == -ENAMETOOLONG) {
        free(c);
        return -EINVAL;
    }
    /* -ENOENT for the runtime dir only matters to waits (the socket); the segment is enough */
    if ((r = rldi_seg_open(c->paths.shm_name, &c->seg)) < 0) {
        free(c);
        return r;
    }
    pthread_mutex_init(&c->pool_lock, NULL);
    /* The coarse path needs a coarse clock with a tick of at most 10 ms (HZ >= 100); it can
     * be turned off with RLD_NO_COARSE=1 (to compare, or on a kernel one does not trust). */
    struct timespec res;
    const char *off = getenv("RLD_NO_COARSE");
    if (!(off && *off && *off != '0') && clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 &&
        res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 10000000)
        c->coarse_margin = rldi_fp_from_ns(4 * (uint64_t)res.tv_nsec);
    rldc_register(c);
    *out = c;
    return 0;
}

void rld_close(rld_client *c)
{
    if (!c)
        return;
    rldc_unregister(c);
    rldc_pool_close(c);
    pthread_mutex_destroy(&c->pool_lock);
    rldi_seg_close(&c->seg);
    free(c);
}

int rld_find(rld_client *c, const char *name, rld_limit *out)
{
    const char *why;
    if (!c || !name || !out)
        return -EINVAL;
    int r = rldi_name_check(name, &why);
    if (r < 0)
        return -EINVAL;
    uint32_t slot, gen;
    if ((r = rldi_seg_lookup(&c->seg, name, &slot, &gen)) < 0)
        return r;
    out->slot = slot;
    out->gen = gen;
    return 0;
}

/*
 * The fast path: decide, publish with one CAS, and only then compute what the caller wants
 * to know (outside the window in which another process could invalidate our CAS).
 * Returns 0 / -EAGAIN / -E2BIG / -ESTALE / -EINVAL.
 */
/* Waiters published by a daemon that stopped beating are stale: ignore them, or a dead
 * daemon would block the fast path until it is restarted. */
#define DAEMON_STALE_NS 3000000000ull

static bool daemon_stale(const rld_client *c, rldi_u128 now)
{
    uint64_t beat = rldi_load_relaxed(&c->seg.hdr->heartbeat_ns);
    uint64_t ns = (uint64_t)(now >> 32);
    if (ns > beat + DAEMON_STALE_NS)
        return true;
    /* A beat missed: is the daemon gone (kill -9)? Only asked on this rare path. */
    uint32_t pid = rldi_load_relaxed(&c->seg.hdr->daemon_pid);
    return ns > beat + DAEMON_STALE_NS / 2 && pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

bool rldc_daemon_stale(const rld_client *c)
{
    return daemon_stale(c, now_fp());
}

uint64_t rldc_now_ns(void)
{
    return (uint64_t)(now_fp() >> 32);
}

static __attribute__((noinline)) int try_slow(rld_client *c, rld_limit lim, uint64_t cost,
                                              rld_result *res, rldi_u128 now, rldi_u128 word,
                                              bool barge)
{
    rldi_slot *s = slot_of(c, lim);
    if (unlikely(!s))
        return -EINVAL;
    for (;;) {
        view v;
        int r = view_fill(s, lim, word, &v);
        if (unlikely(r < 0))
            return r;
        rldi_u128 new_tat;
        if (v.waiters && (barge || daemon_stale(c, now)))
            v.waiters = 0;
        /* 1 <= cost <= burst on a limited limit: the decision; all else is the slow path */
        if (likely(cost - 1 < v.burst && v.t != 0) &&
            rldi_gcra_decide(v.t, v.burst, v.tat, now, cost, v.waiters, &new_tat)) {
            if (likely(rldi_cas16(&s->tat, &word, word_make(new_tat, v.ver)))) {
                rldc_count(c, lim.slot, cost, 0, (uint64_t)(now >> 32));
                if (res) {
                    rldi_verdict vd;
                    rldi_gcra_verdict_ok(v.t, v.burst, v.inv, new_tat, now, &vd);
                    result_fill(res, &vd, 0);
                }
                return 0;
            }
            continue;   /* lost a race: WORD now holds the current state */
        }
        /* Nothing to publish: trust the bank read only if the state word did not move. */
        if (view_moved(s, &v, &word))
            continue;
        if (v.t == 0) {                         /* unlimited */
            rldc_count(c, lim.slot, cost, 0, (uint64_t)(now >> 32));
            if (res)
                result_unlimited(res);
            return 0;
        }
        if (cost > v.burst)
            return -E2BIG;
        rldi_verdict vd;
        if (cost == 0) {                        /* takes nothing, always succeeds */
            if (res) {
                rldi_gcra_peek(v.t, v.burst, v.tat, now, &vd);
                result_fill(res, &vd, 0);
            }
            return 0;
        }
        rldc_count(c, lim.slot, 0, 1, (uint64_t)(now >> 32));
        if (res) {
            uint64_t extra = v.waiters ? rldi_load_relaxed(&s->queued) : 0;
            rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, extra, &vd);
            result_fill(res, &vd, 0);
            res->queue_position = v.waiters;
        }
        return -EAGAIN;
    }
}

/* The result of an admission by the fast path: out of line, to keep the CAS loop tight. */
static __attribute__((noinline)) void verdict_fast(rld_result *res, const rldi_bank *b, uint64_t t,
                                                   uint64_t burst, uint64_t cost, rldi_u128 nt,
                                                   rldi_u128 now)
{
    rldi_verdict vd;
    if (nt - now == (rldi_u128)t * cost) {
        /* The bucket was full: exactly burst - cost remain, no division needed. */
        vd.limit = burst;
        vd.remaining = burst - cost;
        vd.retry_after_ns = 0;
        vd.reset_after_ns = rldi_fp_to_ns_ceil(nt - now);
        result_fill(res, &vd, 0);
        return;
    }
    uint64_t bits = rldi_load_relaxed(&b->inv_t);
    double inv;
    memcpy(&inv, &bits, sizeof(inv));
    rldi_gcra_verdict_ok(t, burst, inv, nt, now, &vd);
    result_fill(res, &vd, 0);
}

/*
 * The common case inline and small: a live limit with no waiters, 1 <= cost <= burst, an
 * interval below 2^64 units (any rate faster than one per 4.29 s) and an admission that
 * fits. Everything else, and a lost CAS race, goes to try_slow, which handles all cases.
 */
static inline int try_one(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res,
                          rldi_u128 now)
{
    if (unlikely(lim.slot >= c->seg.slot_count))
        return -EINVAL;
    rldi_slot *s = &c->seg.slots[lim.slot];
    rldi_u128 word = rldi_load16_split(&s->tat);
    const rldi_bank *b;
    uint64_t t, burst;
    rldi_u128 nt;
    for (;;) {
        uint64_t fv = (uint64_t)(word >> 64);
        uint64_t gw = rldi_load_relaxed((const uint64_t *)&s->gen);  /* gen | waiters << 32 */
        b = &s->bank[(fv >> 32) & 1];
        t = rldi_load_relaxed(&b->t_lo);
        burst = rldi_load_relaxed(&b->burst);
        if (unlikely(gw != lim.gen || rldi_load_relaxed(&b->t_hi) != 0 || t == 0 ||
                     cost - 1 >= burst))
            return try_slow(c, lim, cost, res, now, word, false);
        rldi_u128 tat = rldi_tat_unpack((uint64_t)word, fv);
        rldi_u128 tat0 = tat > now ? tat : now;
        nt = tat0 + (rldi_u128)t * cost;
        if (unlikely(nt - now > (rldi_u128)t * burst))
            return try_slow(c, lim, cost, res, now, word, false);
        if (likely(rldi_cas16(&s->tat, &word, word_make(nt, (uint32_t)(fv >> 32)))))
            break;
        /* lost a race: WORD holds the current state; decide again */
    }
    rldc_count(c, lim.slot, cost, 0, (uint64_t)(now >> 32));
    if (res) {
        rldi_u128 used = nt - now;
        if (likely(used == (rldi_u128)t * cost && (uint64_t)(used >> 32) < UINT64_MAX)) {
            /* the bucket was full: exactly burst - cost remain (inline: the common case) */
            res->limit = burst;
            res->remaining = burst - cost;
            res->retry_after_ns = 0;
            res->reset_after_ns = (uint64_t)(used >> 32) + ((uint32_t)used != 0);
            res->queue_position = 0;
            res->flags = 0;
            res->index = 0;
        } else {
            verdict_fast(res, b, t, burst, cost, nt, now);
        }
    }
    return 0;
}

/*
 * The coarse-clock path, for busy buckets. CLOCK_MONOTONIC_COARSE costs ~3 ns against ~21 ns
 * for the precise clock, and returns the time of the last tick: for the true time s when it
 * is read, coarse <= s < coarse + margin, with margin = 4 ticks (the kernel advances it at
 * every tick; a CPU leaving idle catches it up before user code runs).
 *
 *   allowed:  TAT >= coarse + margin > s, so max(TAT, s) = TAT and the new TAT = TAT + cost*T
 *             is exactly what GCRA computes at s; and new - s <= new - coarse <= tau.
 *   denied:   new - s > new - (coarse + margin) > tau.
 *
 * So each decision taken here is the precise decision at time s: never an admission the
 * precise path would refuse. Anything else (a bucket used by less than the margin, a case
 * near the boundary, a denial whose retry_after the caller wants exactly, waiters, slow
 * rates) falls through to the precise path. Results built here use coarse as "now":
 * remaining is at most the true value and reset_after at least (both toward denying).
 */
#define TRY_PRECISE 1

static inline uint64_t coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Per thread: a time known not to be after the coarse clock now (the last coarse reading,
 * or the last precise one minus a tick). A bucket whose TAT is below it plus the margin
 * cannot take the coarse path: we go straight to the precise one without reading the
 * coarse clock at all (an idle bucket costs one compare more than before). */
static __thread uint64_t coarse_floor_ns __attribute__((tls_model("initial-exec")));
/* Calls left before this thread tries the coarse path again after losing a CAS race: under
 * contention the coarse path's speed only makes the line bounce more (measured: 1.9x the
 * floor against 1.3x for the precise path, whose clock read spaces the attempts). */
static __thread uint32_t coarse_backoff __attribute__((tls_model("initial-exec")));
#define COARSE_BACKOFF_CALLS 256

static inline int try_coarse(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res)
{
    if (unlikely(lim.slot >= c->seg.slot_count))
        return TRY_PRECISE;
    if (unlikely(coarse_backoff)) {
        coarse_backoff--;
        return TRY_PRECISE;
    }
    rldi_slot *s = &c->seg.slots[lim.slot];
    rldi_u128 word = rldi_load16_split(&s->tat);
    uint64_t margin_ns = (uint64_t)(c->coarse_margin >> 32);
    if ((uint64_t)word < coarse_floor_ns + margin_ns) {
        /* an idle bucket: the precise path, and no second look at the line for a while
         * (under contention the extra load costs a cache-line transfer) */
        coarse_backoff = COARSE_BACKOFF_CALLS / 4;
        return TRY_PRECISE;
    }
    uint64_t lo_ns = coarse_ns();
    coarse_floor_ns = lo_ns;
    rldi_u128 lo = rldi_fp_from_ns(lo_ns);
    for (;;) {
        uint64_t fv = (uint64_t)(word >> 64);
        uint64_t gw = rldi_load_relaxed((const uint64_t *)&s->gen);   /* gen | waiters << 32 */
        const rldi_bank *b = &s->bank[(fv >> 32) & 1];
        uint64_t t = rldi_load_relaxed(&b->t_lo);
        uint64_t burst = rldi_load_relaxed(&b->burst);
        if (gw != lim.gen || rldi_load_relaxed(&b->t_hi) != 0 || t == 0 || cost - 1 >= burst)
            return TRY_PRECISE;
        rldi_u128 tat = rldi_tat_unpack((uint64_t)word, fv);
        if (tat < lo + c->coarse_margin)
            return TRY_PRECISE;             /* not busy enough: the exact now matters */
        rldi_u128 nt = tat + (rldi_u128)t * cost, tau = (rldi_u128)t * burst;
        if (nt - lo <= tau) {
            if (!rldi_cas16(&s->tat, &word, word_make(nt, (uint32_t)(fv >> 32)))) {
                coarse_backoff = COARSE_BACKOFF_CALLS;   /* contended: precise for a while */
                return TRY_PRECISE;
            }
            rldc_count(c, lim.slot, cost, 0, lo_ns);
            if (res)
                verdict_fast(res, b, t, burst, cost, nt, lo);
            return 0;
        }
        if (res || nt - (lo + c->coarse_margin) <= tau) {
            /* near the boundary (a saturated bucket: every denial is), or an exact retry_after
             * wanted: the precise path decides, and this thread skips the coarse one for a
             * while, so a saturated limit does not pay both clocks */
            coarse_backoff = COARSE_BACKOFF_CALLS / 4;
            return TRY_PRECISE;
        }
        /* denied for sure; trust the bank read only if the state word did not move */
        rldi_fence_acquire();
        if (rldi_load16_split(&s->tat) != word)
            return TRY_PRECISE;
        rldc_count(c, lim.slot, 0, 1, lo_ns);
        return -EAGAIN;
    }
}

int rld_try(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res)
{
    if (unlikely(!c))
        return -EINVAL;
    if (c->coarse_margin) {
        int r = try_coarse(c, lim, cost, res);
        if (r != TRY_PRECISE)
            return r;
        rldi_u128 now = now_fp();
        /* the precise time less a tick is never after the coarse clock */
        coarse_floor_ns = (uint64_t)(now >> 32) - (uint64_t)(c->coarse_margin >> 34);
        return try_one(c, lim, cost, res, now);
    }
    return try_one(c, lim, cost, res, now_fp());
}

int rld_try_ex(rld_client *c, rld_limit lim, uint64_t cost, unsigned flags, rld_result *res)
{
    if (!c || (flags & ~RLD_TRY_BARGE))
        return -EINVAL;
    if (!(flags & RLD_TRY_BARGE))
        return try_one(c, lim, cost, res, now_fp());
    if (lim.slot >= c->seg.slot_count)
        return -EINVAL;
    return try_slow(c, lim, cost, res, now_fp(), rldi_load16_split(&c->seg.slots[lim.slot].tat),
                    true);
}

/* Apply F to a limit's state in a CAS loop: refund and debit. */
typedef int (*update_fn)(const view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat);

static int update(rld_client *c, rld_limit lim, uint64_t amount, update_fn f, bool count)
{
    if (!c)
        return -EINVAL;
    rldi_slot *s = slot_of(c, lim);
    if (!s)
        return -EINVAL;
    rldi_u128 now = now_fp();
    rldi_u128 word = rldi_load16_split(&s->tat);
    for (;;) {
        view v;
        int r = view_fill(s, lim, word, &v);
        if (r < 0)
            return r;
        rldi_u128 new_tat;
        r = v.t == 0 ? 1 : f(&v, now, amount, &new_tat);
        if (r != 0 || new_tat == v.tat) {
            if (view_moved(s, &v, &word))
                continue;
            if (count && r >= 0)
                rldc_count(c, lim.slot, amount, 0, (uint64_t)(now >> 32));
            return r > 0 ? 0 : r;
        }
        if (rldi_cas16(&s->tat, &word, word_make(new_tat, v.ver))) {
            if (count)
                rldc_count(c, lim.slot, amount, 0, (uint64_t)(now >> 32));
            return 0;
        }
    }
}

static int do_refund(const view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat)
{
    *new_tat = rldi_gcra_refund(v->t, v->tat, now, amount);
    return 0;
}

static int do_debit(const view *v, rldi_u128 now, uint64_t amount, rldi_u128 *new_tat)
{
    return rldi_gcra_debit(v->t, v->burst, v->tat, now, amount, new_tat);
}

int rld_refund(rld_client *c, rld_limit lim, uint64_t amount)
{
    return update(c, lim, amount, do_refund, false);
}

int rld_debit(rld_client *c, rld_limit lim, uint64_t amount)
{
    return update(c, lim, amount, do_debit, true);
}

/* What a try of COST would say now, without taking: used to report the longest wait. */
static int probe(rld_client *c, rld_limit lim, uint64_t cost, rldi_u128 now, rldi_verdict *vd,
                 uint32_t *flags)
{
    rldi_slot *s = slot_of(c, lim);
    if (!s)
        return -EINVAL;
    for (;;) {
        view v;
        int r = view_fill(s, lim, rldi_load16_split(&s->tat), &v);
        if (r < 0)
            return r;
        rldi_u128 unused;
        bool ok = true;
        *flags = 0;
        if (v.t == 0) {
            *vd = (rldi_verdict){ UINT64_MAX, UINT64_MAX, 0, 0 };
            *flags = RLD_F_UNLIMITED;
        } else if (cost > v.burst) {
            r = -E2BIG;
        } else {
            uint64_t extra = v.waiters ? rldi_load_relaxed(&s->queued) | 1 : 0;
            ok = rldi_gcra_try(v.t, v.burst, v.tat, now, cost, extra, &unused, vd);
        }
        if (view_still(s, &v))
            return r < 0 ? r : ok ? 0 : -EAGAIN;
    }
}

int rld_peek(rld_client *c, rld_limit lim, rld_result *res)
{
    if (!c)
        return -EINVAL;
    rldi_slot *s = slot_of(c, lim);
    if (!s)
        return -EINVAL;
    rldi_u128 now = now_fp();
    for (;;) {
        view v;
        int r = view_fill(s, lim, rldi_load16_split(&s->tat), &v);
        if (r < 0)
            return r;
        rldi_verdict vd;
        uint32_t flags = 0;
        if (v.t == 0) {
            vd = (rldi_verdict){ UINT64_MAX, UINT64_MAX, 0, 0 };
            flags = RLD_F_UNLIMITED;
        } else {
            rldi_gcra_peek(v.t, v.burst, v.tat, now, &vd);
        }
        if (!view_still(s, &v))
            continue;
        if (res) {
            result_fill(res, &vd, flags);
            res->queue_position = rldi_load_relaxed(&s->waiters);
        }
        return 0;
    }
}

int rld_try_multi(rld_client *c, const rld_charge *ch, size_t n, rld_result *res)
{
    if (!c || !ch || n == 0 || n > RLD_MULTI_MAX)
        return -EINVAL;
    rldi_u128 now = now_fp();
    rld_result one, best;
    size_t i;
    int r = 0;
    for (i = 0; i < n; i++) {
        r = try_one(c, ch[i].limit, ch[i].cost, &one, now);
        if (r < 0)
            break;
        /* the tightest: least remaining relative to its burst (128-bit cross products) */
        if (i == 0 || (unsigned __int128)one.remaining * best.limit <
                          (unsigned __int128)best.remaining * one.limit) {
            best = one;
            best.index = (uint32_t)i;
        }
    }
    if (r == 0) {
        if (res)
            *res = best;
        return 0;
    }
    /* Roll back, newest first. A refund of exactly what was taken restores the state
     * unless the bucket refilled meanwhile, in which case it is full either way. */
    size_t failed = i;
    while (i-- > 0)
        rld_refund(c, ch[i].limit, ch[i].cost);
    if (r != -EAGAIN) {
        if (res) {
            memset(res, 0, sizeof(*res));
            res->index = (uint32_t)failed;
        }
        return r;
    }
    /* Report the longest wait among the denying charge and those after it. */
    best = one;
    best.index = (uint32_t)failed;
    for (i = failed + 1; i < n; i++) {
        rldi_verdict vd;
        uint32_t flags;
        int pr = probe(c, ch[i].limit, ch[i].cost, now, &vd, &flags);
        if (pr == -E2BIG || pr == -ESTALE || pr == -EINVAL) {
            if (res) {
                memset(res, 0, sizeof(*res));
                res->index = (uint32_t)i;
            }
            return pr;
        }
        if (pr == -EAGAIN && vd.retry_after_ns > best.retry_after_ns) {
            result_fill(&best, &vd, flags);
            best.index = (uint32_t)i;
        }
    }
    if (res)
        *res = best;
    return -EAGAIN;
}

int rldc_grant(rld_client *c, rld_limit lim, uint64_t cost, uint64_t due_ns, rld_result *res)
{
    rldi_slot *s = slot_of(c, lim);
    if (!s)
        return -EINVAL;
    rldi_u128 now = now_fp();
    rldi_u128 word = rldi_load16_split(&s->tat);
    for (;;) {
        view v;
        int r = view_fill(s, lim, word, &v);
        if (r < 0)
            return r;
        if (v.t == 0 || cost == 0 || cost > v.burst)
            return try_slow(c, lim, cost, res, now, word, true);
        /* Charged as of its due time, but never more than one emission interval back:
         * at most one token beyond burst + rate x elapsed over any window. */
        rldi_u128 due = rldi_fp_from_ns(due_ns), at = now;
        if (due < now)
            at = now - due > v.t ? now - v.t : due;
        rldi_u128 nt;
        if (!rldi_gcra_decide(v.t, v.burst, v.tat, at, cost, 0, &nt)) {
            if (view_moved(s, &v, &word))
                continue;
            if (res) {
                rldi_verdict vd;
                rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, 0, &vd);
                result_fill(res, &vd, 0);
            }
            return -EAGAIN;
        }
        if (!rldi_cas16(&s->tat, &word, word_make(nt, v.ver)))
            continue;
        rldc_count(c, lim.slot, cost, 0, (uint64_t)(now >> 32));
        if (res) {
            rldi_verdict vd;
            rldi_gcra_peek(v.t, v.burst, nt, now, &vd);
            result_fill(res, &vd, 0);
        }
        return 0;
    }
}

int rldc_reserve(rld_client *c, rld_limit lim, uint64_t cost, uint64_t deadline_ns,
                 rld_result *res)
{
    rldi_slot *s = slot_of(c, lim);
    if (!s)
        return -EINVAL;
    rldi_u128 now = now_fp();
    rldi_u128 word = rldi_load16_split(&s->tat);
    for (;;) {
        view v;
        int r = view_fill(s, lim, word, &v);
        if (r < 0)
            return r;
        if (v.t == 0 || cost > v.burst || cost == 0) {
            if (view_moved(s, &v, &word))
                continue;
            if (cost > v.burst && v.t != 0)
                return -E2BIG;
            if (res && v.t == 0) {
                result_unlimited(res);
            } else if (res) {                   /* cost 0: takes nothing */
                rldi_verdict vd;
                rldi_gcra_peek(v.t, v.burst, v.tat, now, &vd);
                result_fill(res, &vd, RLD_F_DEGRADED);
            }
            return 0;
        }
        /* take the tokens now, into debt (capped, as rld_debit: TAT must never wrap), and
         * wait until the debt is due */
        rldi_u128 nt, tau = v.t * v.burst;
        if (rldi_gcra_debit(v.t, v.burst, v.tat, now, cost, &nt) < 0) {
            if (view_moved(s, &v, &word))
                continue;
            if (res) {
                rldi_verdict vd;
                rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, 0, &vd);
                result_fill(res, &vd, RLD_F_DEGRADED);
            }
            return -ETIMEDOUT;
        }
        uint64_t wait_ns = nt - now > tau ? rldi_fp_to_ns_ceil(nt - now - tau) : 0;
        uint64_t now_ns = (uint64_t)(now >> 32);
        if (deadline_ns && now_ns + wait_ns > deadline_ns) {
            if (view_moved(s, &v, &word))
                continue;
            if (res) {
                rldi_verdict vd;
                rldi_gcra_verdict_denied(v.t, v.burst, v.inv, v.tat, now, cost, 0, &vd);
                result_fill(res, &vd, RLD_F_DEGRADED);
            }
            return -ETIMEDOUT;
        }
        if (!rldi_cas16(&s->tat, &word, word_make(nt, v.ver)))
            continue;
        rldc_count(c, lim.slot, cost, 0, now_ns);
        if (wait_ns) {
            struct timespec ts = { (time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u) };
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        if (res) {
            rldi_verdict vd;
            rldi_u128 later = now_fp();
            rldi_gcra_peek(v.t, v.burst, nt > later ? nt : later, later, &vd);
            result_fill(res, &vd, RLD_F_DEGRADED);
        }
        return 0;
    }
}

int rld_info(rld_client *c, rld_limit lim, rld_limit_info *out)
{
    if (!c || !out)
        return -EINVAL;
    rldi_slot *s = slot_of(c, lim);
    if (!s)
        return -EINVAL;
    const rldi_meta *m = &c->seg.meta[lim.slot];
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t seq = rldi_load_acquire(&c->seg.hdr->index_seq);
        if (seq & 1) {
            rldi_cpu_relax();
            continue;
        }
        if (rldi_seg_name(&c->seg, lim.slot, out->name) < 0 ||
            rldi_load_relaxed(&s->gen) != lim.gen)
            return -ESTALE;
        out->rate_count = rldi_load_relaxed(&m->rate_count);
        out->rate_period_ns = rldi_load_relaxed(&m->rate_period_ns);
        out->burst = rldi_load_relaxed(&m->burst);
        rldi_fence_acquire();
        if (rldi_load_relaxed(&c->seg.hdr->index_seq) != seq)
            continue;
        out->admitted = rldi_load_relaxed(&s->admitted);
        out->denied = rldi_load_relaxed(&s->denied);
        out->waiters = rldi_load_relaxed(&s->waiters);
        return 0;
    }
    return -EAGAIN;
}

const char *rld_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case -EAGAIN: return "denied: not enough tokens now (see retry_after)";
    case -ENOENT: return "no such instance or limit";
    case -ESTALE: return "the limit was deleted or replaced since it was found";
    case -E2BIG: return "the cost exceeds the limit's burst and can never be admitted";
    case -EINVAL: return "invalid argument";
    case -ERANGE: return "amount out of range (debt would exceed the maximum)";
    case -ENAMETOOLONG: return "name too long";
    case -EACCES: return "permission denied";
    case -ENOMEM: return "out of memory";
    case -ETIMEDOUT: return "the wait would exceed the timeout";
    case RLD_EABI: return "the instance's segment was made by an incompatible rld version";
    case RLD_ECORRUPT: return "the instance's segment is damaged or not an rld segment";
    default: return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
    }
}

int rld_version(void)
{
    return RLD_VERSION_MAJOR * 10000 + RLD_VERSION_MINOR * 100 + RLD_VERSION_PATCH;
}
