/*
 * gcra.h - the arithmetic of one limit (GCRA), pure functions on values.
 *
 * Time is fixed point: 64.32, units of 2^-32 ns, in 128-bit integers. A limit of r tokens per
 * period P has emission interval T = ceil(P * 2^32 / r) and tolerance tau = burst * T. With
 * T rounded up, the admitted rate is at most r and at least r * (1 - 2^-32 / T_ns): relative
 * error below 2.4e-10 for every rate up to 10^9/s, and no error accumulates with time since
 * TAT is exact in these units. The state TAT is an absolute CLOCK_MONOTONIC time.
 *
 *   try(n, now):  tat0 = max(TAT, now); new = tat0 + n*T
 *                 allowed iff new - now <= tau            -> TAT := new
 *   refund(n):    TAT := max(TAT - n*T, now)               (only if TAT > now)
 *   debit(n):     TAT := max(TAT, now) + n*T               (may exceed tau: debt)
 *
 * Everything rounds toward denying: retry_after and reset_after round up to whole ns,
 * remaining rounds down. Shared by librld, the daemon and the unit tests.
 */
#ifndef RLD_COMMON_GCRA_H
#define RLD_COMMON_GCRA_H

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"   /* rldi_u128 */

/* Fractional bits of every time and interval: units of 2^-32 ns. The state word (layout.h)
 * stores a TAT as 64 bits of ns and 32 bits of fraction, so this is ABI. */
#define RLDI_FRAC_BITS     32u
static_assert(RLDI_FRAC_BITS == 32, "the state word keeps a 32-bit fraction");
/* Largest tau and largest debt, in ns: 2^62 ns is 146 years. Keeps TAT < 2^64 ns. */
#define RLDI_TAU_MAX_NS    ((uint64_t)1 << 62)
#define RLDI_DEBT_MAX_NS   ((uint64_t)1 << 62)

/*
 * A global limit's pool: the local bucket of a limit leased from Redis (daemon/global.c).
 * Its bank has the slowest emission interval the inline fast path takes (T below 2^64
 * units: 2^32 - 1 ns, 4.29 s), so rld_try costs what it costs on a host limit; the daemon
 * cancels that natural refill as time passes and credits the tokens it leased. Its burst is
 * the limit's, at most RLDI_POOL_BURST_MAX (tau within 2^62 ns).
 */
#define RLDI_POOL_T_NS       0xffffffffull
#define RLDI_POOL_T          ((rldi_u128)RLDI_POOL_T_NS << 32)
#define RLDI_POOL_BURST_MAX  ((uint64_t)1 << 30)

static inline rldi_u128 rldi_fp_from_ns(uint64_t ns) { return (rldi_u128)ns << RLDI_FRAC_BITS; }

/* Whole ns, rounded down (a time read from the clock has no fraction). */
static inline uint64_t rldi_fp_to_ns(rldi_u128 x) { return (uint64_t)(x >> RLDI_FRAC_BITS); }

/* Whole ns, rounded up, saturated at UINT64_MAX. */
static inline uint64_t rldi_fp_to_ns_ceil(rldi_u128 x)
{
    rldi_u128 ns = (x >> RLDI_FRAC_BITS) + ((x & 0xffffffffu) != 0);
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/*
 * Emission interval of COUNT tokens per PERIOD_NS, rounded up. count == 0 is "unlimited"
 * and gives T = 0. Returns 0, or -EINVAL when the interval is not representable.
 */
static inline int rldi_interval(uint64_t count, uint64_t period_ns, rldi_u128 *t)
{
    if (count == 0) {
        *t = 0;
        return 0;
    }
    if (period_ns == 0)
        return -EINVAL;
    rldi_u128 p = rldi_fp_from_ns(period_ns);
    rldi_u128 q = p / count + (p % count != 0);
    *t = q;
    return 0;
}

/* tau = burst * T, or -ERANGE when it exceeds RLDI_TAU_MAX_NS. */
static inline int rldi_tau(rldi_u128 t, uint64_t burst, rldi_u128 *tau)
{
    rldi_u128 r;
    if (__builtin_mul_overflow(t, (rldi_u128)burst, &r) || r > rldi_fp_from_ns(RLDI_TAU_MAX_NS))
        return -ERANGE;
    *tau = r;
    return 0;
}

/*
 * floor(x / t), capped at maxq; t == 0 gives maxq. An exact 128-bit division: the fast path
 * avoids it (rldi_div_floor_inv); here correctness over any input matters more, as t and x
 * may come from a segment someone scribbled over.
 */
static inline uint64_t rldi_div_floor(rldi_u128 x, rldi_u128 t, uint64_t maxq)
{
    if (t == 0)
        return maxq;
    rldi_u128 q = x / t;
    return q > maxq ? maxq : (uint64_t)q;
}

/* What a caller learns; librld copies it into the public rld_result. */
typedef struct rldi_verdict {
    uint64_t limit, remaining, retry_after_ns, reset_after_ns;
    uint32_t flags;        /* RLDI_V_*: the bits of rld_result.flags */
    uint32_t waiters;      /* callers queued at the daemon, when it matters (denied, peek) */
    uint32_t window;       /* window algorithms: the (sub-)window it was decided in; 0 GCRA */
} rldi_verdict;
#define RLDI_V_DEGRADED   0x1u   /* = RLD_F_DEGRADED */
#define RLDI_V_UNLIMITED  0x2u   /* = RLD_F_UNLIMITED */

/*
 * floor(x / t) <= maxq, given inv ~= 1.0 / t (0 if unknown): one multiply and an exact
 * correction in the common case where both fit in 64 bits, else rldi_div_floor.
 */
static inline uint64_t rldi_div_floor_inv(rldi_u128 x, rldi_u128 t, double inv, uint64_t maxq)
{
    if (((x | t) >> 63) == 0 && inv > 0) {
        uint64_t xs = (uint64_t)x, ts = (uint64_t)t;
        double qd = (double)(int64_t)xs * inv;
        if (qd < 562949953421312.0) {               /* 2^49: error below one unit */
            uint64_t q = (uint64_t)qd;
            rldi_u128 p = (rldi_u128)q * ts;
            if (p > xs)
                q--, p -= ts;
            else if (p + ts <= xs)
                q++, p += ts;
            if (p <= xs && p + ts > xs)             /* exact, else fall through */
                return q > maxq ? maxq : q;
        }
    }
    return rldi_div_floor(x, t, maxq);
}

/*
 * The decision of one try of COST at NOW against (T, burst, TAT): true when allowed, with
 * *new_tat the state to publish. EXTRA is demand already promised to queued waiters: while
 * there is any, a (non-barging) try is denied. cost must be <= burst (callers: -E2BIG).
 * Kept apart from the verdict so the CAS window stays as short as possible.
 */
static inline bool rldi_gcra_decide(rldi_u128 t, uint64_t burst, rldi_u128 tat, rldi_u128 now,
                                    uint64_t cost, uint64_t extra, rldi_u128 *new_tat)
{
    rldi_u128 tau = t * burst;            /* validated at configuration: no overflow */
    rldi_u128 tat0 = tat > now ? tat : now;
    rldi_u128 nt = tat0 + t * cost;       /* cost <= burst */
    *new_tat = nt;
    return nt - now <= tau && extra == 0;
}

/* The verdict of an allowed try that published NEW_TAT at NOW. */
static inline void rldi_gcra_verdict_ok(rldi_u128 t, uint64_t burst, double inv, rldi_u128 new_tat,
                                        rldi_u128 now, rldi_verdict *v)
{
    rldi_u128 used = new_tat - now;
    v->limit = burst;
    v->remaining = rldi_div_floor_inv(t * burst - used, t, inv, burst);
    v->retry_after_ns = 0;
    v->reset_after_ns = rldi_fp_to_ns_ceil(used);
    v->flags = v->waiters = v->window = 0;
}

/*
 * The verdict of a denied try: when COST (behind EXTRA queued tokens) would fit. The queued
 * tokens count as taken, so the figures agree with each other as HTTP headers must:
 * remaining is what this caller could take now behind the queue, and always less than
 * COST (a denied caller is never told that its cost is there); reset_after is when the
 * bucket is full again once the queue is served, never before retry_after (cost <= burst).
 */
static inline void rldi_gcra_verdict_denied(rldi_u128 t, uint64_t burst, double inv, rldi_u128 tat,
                                            rldi_u128 now, uint64_t cost, uint64_t extra,
                                            rldi_verdict *v)
{
    rldi_u128 tau = t * burst;
    rldi_u128 tat0 = tat > now ? tat : now;
    rldi_u128 ahead, cap = (rldi_u128)1 << 100;   /* extra comes from shared memory: saturate */
    if (__builtin_mul_overflow(t, (rldi_u128)extra, &ahead) || ahead > cap)
        ahead = cap;
    rldi_u128 used = tat0 - now + ahead;
    rldi_u128 end = used + t * cost;
    v->limit = burst;
    v->remaining = used >= tau ? 0 : rldi_div_floor_inv(tau - used, t, inv, burst);
    if (v->remaining >= cost)
        v->remaining = cost ? cost - 1 : 0;       /* the queue fits now: it is served first */
    /* with a queue ahead: at least 1 ns, as the queue is served first */
    v->retry_after_ns = end > tau ? rldi_fp_to_ns_ceil(end - tau) : 1;
    v->reset_after_ns = rldi_fp_to_ns_ceil(used);
    v->flags = v->waiters = v->window = 0;
}

/* decide + verdict in one call (the unit tests, bucket.c's probe). */
static inline bool rldi_gcra_try(rldi_u128 t, uint64_t burst, rldi_u128 tat, rldi_u128 now,
                                 uint64_t cost, uint64_t extra, rldi_u128 *new_tat,
                                 rldi_verdict *v)
{
    rldi_u128 nt;
    bool ok = rldi_gcra_decide(t, burst, tat, now, cost, extra, &nt);
    if (ok)
        *new_tat = nt;
    if (v) {
        if (ok)
            rldi_gcra_verdict_ok(t, burst, 0, nt, now, v);
        else
            rldi_gcra_verdict_denied(t, burst, 0, tat, now, cost, extra, v);
    }
    return ok;
}

/* State without taking anything: what try(0) would say. */
static inline void rldi_gcra_peek(rldi_u128 t, uint64_t burst, rldi_u128 tat, rldi_u128 now,
                                  rldi_verdict *v)
{
    rldi_u128 tau = t * burst;
    rldi_u128 used = tat > now ? tat - now : 0;
    v->limit = burst;
    v->remaining = used >= tau ? 0 : rldi_div_floor(tau - used, t, burst);
    v->retry_after_ns = used > tau ? rldi_fp_to_ns_ceil(used - tau) : 0;
    v->reset_after_ns = rldi_fp_to_ns_ceil(used);
    v->flags = v->waiters = v->window = 0;
}

/* Give back AMOUNT: TAT moves back, never before now (a bucket cannot exceed its burst). */
static inline rldi_u128 rldi_gcra_refund(rldi_u128 t, rldi_u128 tat, rldi_u128 now,
                                         uint64_t amount)
{
    if (tat <= now)
        return tat;                       /* already full */
    rldi_u128 back;
    if (__builtin_mul_overflow(t, (rldi_u128)amount, &back) || back >= tat - now)
        return now;
    return tat - back;
}

/* Take AMOUNT unconditionally, into debt of at most MAX_DEBT_NS beyond the burst (never
 * more than RLDI_DEBT_MAX_NS). -ERANGE (nothing to publish) when it would go further. */
static inline int rldi_gcra_debit_max(rldi_u128 t, uint64_t burst, rldi_u128 tat, rldi_u128 now,
                                      uint64_t amount, uint64_t max_debt_ns, rldi_u128 *new_tat)
{
    rldi_u128 tat0 = tat > now ? tat : now;
    if (max_debt_ns > RLDI_DEBT_MAX_NS)
        max_debt_ns = RLDI_DEBT_MAX_NS;
    rldi_u128 cap = t * burst + rldi_fp_from_ns(max_debt_ns);
    rldi_u128 need;
    /* compare before adding: tat0 + need may wrap around 2^128 when need is near it */
    if (__builtin_mul_overflow(t, (rldi_u128)amount, &need) || tat0 - now > cap ||
        need > cap - (tat0 - now))
        return -ERANGE;
    *new_tat = tat0 + need;
    return 0;
}

/* rldi_gcra_debit_max with the largest debt there is (146 years). */
static inline int rldi_gcra_debit(rldi_u128 t, uint64_t burst, rldi_u128 tat, rldi_u128 now,
                                  uint64_t amount, rldi_u128 *new_tat)
{
    return rldi_gcra_debit_max(t, burst, tat, now, amount, RLDI_DEBT_MAX_NS, new_tat);
}

/* min(ceil(x * a / b), cap), b > 0: never below the exact value. Exact when x * a fits 128
 * bits; else in long double, nudged up past the error of its 3 conversions and 2 ops. */
static inline rldi_u128 rldi_scale_up(rldi_u128 x, rldi_u128 a, rldi_u128 b, rldi_u128 cap)
{
    rldi_u128 p;
    if (a == b)
        return x < cap ? x : cap;
    if (!__builtin_mul_overflow(x, a, &p)) {
        rldi_u128 q = p / b + (p % b != 0);
        return q < cap ? q : cap;
    }
    long double v = (long double)x / (long double)b * (long double)a;
    v += v * (8 * LDBL_EPSILON);
    if (v >= (long double)cap)
        return cap;
    rldi_u128 n = (rldi_u128)v + 1;
    return n < cap ? n : cap;
}

/*
 * Carry a state across a change of rate or burst. The time in use, TAT - now, is the
 * bucket's fill (at most the old tolerance) plus any debt beyond it:
 *
 *   fill: proportionally, the same fraction of the new tolerance (50 of 100 used becomes
 *         100 of 200 used): the change hands out no token the old state did not have;
 *   debt: in tokens, the same number of tokens still owed at the new interval, at most
 *         MAX_DEBT_NS (the new limit's cap: no state the new terms could not reach). Debt
 *         scaled with the tolerance, as it once was, turned 1.4 s owed into 84 s when the
 *         burst grew 60-fold: debt that nobody took.
 *
 * A full bucket stays full; to or from unlimited, the bucket starts full; an unchanged
 * (T, burst) keeps TAT exactly. Rounds up (toward denying). docs/DESIGN.md has the proof.
 */
static inline rldi_u128 rldi_gcra_carry(rldi_u128 t_old, uint64_t burst_old, rldi_u128 t_new,
                                        uint64_t burst_new, uint64_t max_debt_ns, rldi_u128 tat,
                                        rldi_u128 now)
{
    rldi_u128 tau_old = t_old * burst_old, tau_new = t_new * burst_new;
    if (tat <= now)
        return tat;
    if (tau_old == 0 || tau_new == 0)
        return now;
    if (t_old == t_new && burst_old == burst_new)
        return tat;
    rldi_u128 used = tat - now;
    rldi_u128 fill = used < tau_old ? used : tau_old, debt = used - fill;
    if (max_debt_ns > RLDI_DEBT_MAX_NS)
        max_debt_ns = RLDI_DEBT_MAX_NS;
    rldi_u128 fill_new = rldi_scale_up(fill, tau_new, tau_old, tau_new);
    rldi_u128 debt_new = debt ? rldi_scale_up(debt, t_new, t_old, rldi_fp_from_ns(max_debt_ns)) : 0;
    return now + fill_new + debt_new;
}

/* State word packing: (tat, frac_ver) <-> 64.32 TAT and 32-bit config version. */
static inline rldi_u128 rldi_tat_unpack(uint64_t tat, uint64_t frac_ver)
{
    return ((rldi_u128)tat << RLDI_FRAC_BITS) | (uint32_t)frac_ver;
}
static inline void rldi_tat_pack(rldi_u128 fp, uint32_t ver, uint64_t *tat, uint64_t *frac_ver)
{
    *tat = (uint64_t)(fp >> RLDI_FRAC_BITS);
    *frac_ver = ((uint64_t)ver << 32) | (uint32_t)fp;
}

#endif
