/*
 * bucket.h - admission: the one place where a limit's state word is read, decided on and
 * changed. librld's calls (try, refund, debit, peek, the degraded wait) and the daemon's
 * grants, estimates and configuration changes all come here; the arithmetic itself is in
 * gcra.h. A new algorithm is a new case in bucket.c's functions (and, where it must be
 * fast, an inline path beside rldi_bucket_take_fast).
 *
 * A limit's state is one 16-byte word (layout.h) changed only by a 16-byte CAS. A reader
 * builds a view: the word decoded, and the config bank its version names. Outcomes that
 * publish nothing (denied, unlimited, cost too big, a peek) are trusted only when the word
 * did not move meanwhile, as a seqlock reader would check, so no verdict is ever built from
 * a bank being rewritten. Every function validates the handle against the mapping and works
 * on values a hostile writer of the segment may have scribbled: nothing here divides by or
 * indexes with an unchecked value.
 *
 * Bucket functions never count: callers do (librld batches per thread, the daemon adds).
 */
#ifndef RLD_COMMON_BUCKET_H
#define RLD_COMMON_BUCKET_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "atomics.h"
#include "clock.h"
#include "gcra.h"
#include "segment.h"

#define rldi_likely(x)   __builtin_expect(!!(x), 1)
#define rldi_unlikely(x) __builtin_expect(!!(x), 0)

/* A limit: its slot and the generation the slot had when the limit was found. */
typedef struct rldi_handle {
    uint32_t slot;
    uint32_t gen;
} rldi_handle;

/* One consistent view of a limit: state word and the config it was computed with. */
typedef struct rldi_view {
    rldi_u128 word;      /* raw 16-byte state: tat | frac_ver << 64 */
    rldi_u128 tat;       /* 64.32 */
    rldi_u128 t;         /* emission interval, 0 = unlimited */
    uint64_t  burst;
    double    inv;       /* ~1/T, a hint for the division (checked on use) */
    uint32_t  ver;
    uint32_t  waiters;
    uint64_t  max_debt_ns;   /* filled by the paths that can make debt (debit, reserve) */
    rldi_u128 cfg_word;  /* a key's: its template's word when the bank was read (cell.h) */
} rldi_view;

/* rldi_verdict.flags: a shadow limit (RLDI_SLOT_SHADOW) admitted what it would have denied
 * (= RLD_F_SHADOW) */
#define RLDI_V_SHADOW     0x8u

/* rldi_bucket_take flags */
#define RLDI_TAKE_BARGE   0x1u   /* take even while callers are queued at the daemon */

/* The slot of H, or NULL for a handle no lookup could have produced. */
static inline rldi_slot *rldi_slot_of(const rldi_seg *s, rldi_handle h)
{
    if (rldi_unlikely(h.slot >= s->slot_count))
        return NULL;
    return &s->slots[h.slot];
}

/* CLOCK_MONOTONIC in 64.32 fixed point: "now" for the arithmetic. */
static inline rldi_u128 rldi_now_fp(void)
{
    return rldi_fp_from_ns(rldi_mono_ns());
}

static inline rldi_u128 rldi_word_make(rldi_u128 tat_fp, uint32_t ver)
{
    uint64_t tat, fv;
    rldi_tat_pack(tat_fp, ver, &tat, &fv);
    return ((rldi_u128)fv << 64) | tat;
}

/*
 * Decode WORD and read the bank it names into V. -ESTALE when the limit behind GEN is gone.
 * The identity check comes after the state load (acquire): a delete bumps gen before it
 * bumps the version, so a reader that sees the new version also sees the new gen.
 */
static inline int rldi_view_fill(const rldi_slot *s, uint32_t gen, rldi_u128 word, rldi_view *v)
{
    uint64_t tat = (uint64_t)word, fv = (uint64_t)(word >> 64);
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&s->gen);   /* gen | waiters << 32 */
    if (rldi_unlikely((uint32_t)gw != gen || !(gen & 1)))   /* live limits' gens are odd */
        return -ESTALE;
    const rldi_bank *b = &s->bank[(fv >> 32) & 1];
    v->cfg_word = 0;
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
static inline bool rldi_view_still(const rldi_slot *s, const rldi_view *v)
{
    rldi_fence_acquire();
    return rldi_load16_split(&s->tat) == v->word;
}

/* True, with WORD reloaded, when the state word moved since V was read: decide again. */
static inline bool rldi_view_moved(const rldi_slot *s, const rldi_view *v, rldi_u128 *word)
{
    if (rldi_view_still(s, v))
        return false;
    *word = rldi_load16_split(&s->tat);
    return true;
}

/* The algorithm of V's bank (layout.h RLDI_ALGO_*). */
static inline uint32_t rldi_view_algo(const rldi_view *v)
{
    return RLDI_BANK_ALGO((uint64_t)(v->t >> 64));
}

/* The verdict of a limit that admits everything. */
static inline void rldi_verdict_unlimited(rldi_verdict *v)
{
    *v = (rldi_verdict){ UINT64_MAX, UINT64_MAX, 0, 0, RLDI_V_UNLIMITED, 0, 0 };
}

/* ---- taking tokens ---------------------------------------------------------------------- */

/*
 * Take COST tokens of H at NOW if they fit. 0: taken (V, when not NULL, says what is left;
 * V->flags has RLDI_V_UNLIMITED for an unlimited limit). -EAGAIN: denied (V says when it
 * fits, behind the queued waiters unless BARGE). -E2BIG: COST exceeds the burst. -ESTALE:
 * the limit was deleted. -EINVAL: a handle no lookup could produce. COST 0 takes nothing
 * and succeeds. WORD is the state word as the caller last read it.
 */
int rldi_bucket_take_word(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                          unsigned flags, rldi_u128 word, rldi_verdict *v);
/* The same when the caller has not read the word (a key's handle, or any). */
int rldi_bucket_take_any(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                         unsigned flags, rldi_verdict *v);

static inline int rldi_bucket_take(const rldi_seg *s, rldi_handle h, uint64_t cost,
                                   rldi_u128 now, unsigned flags, rldi_verdict *v)
{
    const rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl)                        /* a key's handle, or one no lookup made */
        return rldi_bucket_take_any(s, h, cost, now, flags, v);
    return rldi_bucket_take_word(s, h, cost, now, flags, rldi_load16_split(&sl->tat), v);
}

/* ---- the fast path (librld's rld_try) ------------------------------------------------------ */

/* The verdict of an admission by the fast path: out of line, to keep the CAS loop tight. */
void rldi_bucket_verdict_fast(rldi_verdict *v, const rldi_slot *sl, const rldi_bank *b,
                              uint64_t t, uint64_t burst, uint64_t cost, rldi_u128 nt,
                              rldi_u128 now);

/*
 * The coarse-clock path's state, one per thread (see rldi_bucket_take_coarse). A thread
 * tries the coarse path only while its hint says that its last admission left a bucket
 * busy: an idle bucket costs one thread-local load and a predicted branch, no coarse read
 * and no second look at the state line.
 */
typedef struct rldi_coarse {
    uint32_t hint;         /* set by a precise admission that left TAT >= now + margin;
                              cleared by every fallback of the coarse path */
    uint32_t backoff;      /* busy admissions left before the hint may be set again: after
                              a lost race on the coarse path RLDI_COARSE_BACKOFF, after a
                              fallback near the boundary a quarter of it */
    uint64_t floor_ns;     /* the coarse clock was at least this at the last look (the last
                              coarse reading, or a precise one less a tick) */
} rldi_coarse;
#define RLDI_COARSE_BACKOFF 256u

/* rldi_bucket_take_fast's outcomes besides the codes of a take */
#define RLDI_TAKE_FULL 2       /* admitted inline from a full bucket: the caller builds V */
#define RLDI_TAKE_MORE 3       /* not decided inline: the caller calls rldi_bucket_take_more */

/* What rldi_bucket_take_fast leaves to rldi_bucket_take_more: how to go on, and the state it
 * saw. Written only on its way out of the inline path. */
typedef struct rldi_take_more {
    uint32_t kind;         /* RLDI_MORE_* */
    uint64_t tat, fv;      /* the state word as last seen; RLDI_MORE_TOOK: as published */
    uint64_t t, burst;     /* RLDI_MORE_TOOK: the bank the admission was decided with */
} rldi_take_more;
#define RLDI_MORE_WORD  0u     /* rldi_bucket_take_word decides, from the word seen */
#define RLDI_MORE_BUSY  1u     /* a bucket not full, or a lost race: rldi_bucket_take_busy */
#define RLDI_MORE_TOOK  2u     /* admitted, outcome not FULL: the coarse hint, the verdict */

/* Out of line (bucket.c): a bucket not full or a lost race, from the state word TAT | FV <<
 * 64 the caller holds; the end of an admission (the coarse hint, the verdict). */
int rldi_bucket_take_busy(const rldi_seg *s, rldi_handle h, uint64_t cost, uint64_t now_ns,
                          uint64_t tat, uint64_t fv, uint64_t margin_ns, rldi_coarse *tc,
                          rldi_verdict *v);
int rldi_bucket_took(const rldi_slot *sl, uint64_t t, uint64_t burst, uint64_t cost,
                     uint64_t now_ns, uint64_t ntat, uint64_t nfv, uint64_t margin_ns,
                     rldi_coarse *tc, rldi_verdict *v);

/*
 * rld_try's window path (rldi_bucket_take_fast sends a window's bank out of line with
 * RLDI_MORE_WORD): the common admission of a named window limit, one CAS and nothing else,
 * from the state word TAT | FV << 64 the caller read (with acquire). It decides only what
 * rldi_win_take decides alike, verdict included: a live limit of H's gen with no waiters,
 * 1 <= cost <= COUNT, room for COST, and NOW_NS inside the current window (fixed: a hold
 * too, not a DENY one; not elastic, where every attempt moves the end) or inside the head
 * sub-window (sliding; or behind it, a clock read before another process moved the head,
 * counted as the head's as rldi_win_take counts it). A lost race is retried from the word
 * the CAS returned. 0 (V filled when not NULL, rldi_win_last set), or RLDI_TAKE_MORE with
 * nothing published: anything else (a GCRA bank, a window to start or to move, a denial),
 * for the general path from a fresh read. window.c; tests/unit/test_window.c proves it
 * decides as the general path does.
 */
int rldi_win_take_fast(const rldi_seg *s, rldi_slot *sl, rldi_handle h, uint64_t cost,
                       uint64_t now_ns, uint64_t tat, uint64_t fv, rldi_verdict *v);

/*
 * The rest of rldi_bucket_take_fast's RLDI_TAKE_MORE, called by its caller off the common
 * path: the codes and verdict (V may be NULL) of rldi_bucket_take. MARGIN_NS and TC are the
 * coarse path's (0 and NULL: none): an admission here that leaves TAT MARGIN_NS or more
 * ahead of now sets TC's hint.
 */
static inline int rldi_bucket_take_more(const rldi_seg *s, rldi_handle h, uint64_t cost,
                                        uint64_t now_ns, const rldi_take_more *m,
                                        uint64_t margin_ns, rldi_coarse *tc, rldi_verdict *v)
{
    if (m->kind == RLDI_MORE_BUSY)
        return rldi_bucket_take_busy(s, h, cost, now_ns, m->tat, m->fv, margin_ns, tc, v);
    if (m->kind == RLDI_MORE_WORD) {
        /* a window's bank (among other things): its common admission first */
        rldi_slot *sl = rldi_slot_of(s, h);
        if (rldi_unlikely(!sl))
            return -EINVAL;
        int r = rldi_win_take_fast(s, sl, h, cost, now_ns, m->tat, m->fv, v);
        if (r != RLDI_TAKE_MORE)
            return r;
    }
    if (m->kind == RLDI_MORE_TOOK) {
        const rldi_slot *sl = rldi_slot_of(s, h);
        if (rldi_unlikely(!sl))
            return -EINVAL;
        return rldi_bucket_took(sl, m->t, m->burst, cost, now_ns, m->tat, m->fv, margin_ns,
                                tc, v);
    }
    return rldi_bucket_take_word(s, h, cost, rldi_fp_from_ns(now_ns), 0,
                                 ((rldi_u128)m->fv << 64) | m->tat, v);
}

#define RLDI_FRAC_MASK 0xffffffffull            /* frac_ver: the fraction of TAT */
#define RLDI_VER_MASK  0xffffffff00000000ull    /* frac_ver: the config version */

/*
 * rldi_bucket_take without flags at NOW_NS (CLOCK_MONOTONIC, ns) on SL = rldi_slot_of(S, H),
 * not NULL (the caller checks the handle before reading the clock), in two parts: this one
 * inline, and rldi_bucket_take_more out of line for what it leaves (RLDI_TAKE_MORE, with *M
 * filled). The caller prepares the arguments only the second part needs (the verdict's
 * buffer, the coarse path's state) on its way there, not on the common path.
 *
 * RLDI_TAKE_FULL, the common case inline and small: a live limit with no waiters, 1 <= cost
 * <= burst, an interval T below 2^64 units (GCRA, any rate faster than one per 4.29 s; the
 * test t_hi == 0 also sends every window algorithm out of line), a full bucket (TAT < now),
 * a CAS won at the first attempt, and cost*T below FULL_MAX_NS. Then exactly burst - cost
 * tokens remain and the bucket is full again after cost*T: *BURST and *RESET_NS (cost*T
 * rounded up to the ns) say so. FULL_MAX_NS is the caller's: 0 never returns RLDI_TAKE_FULL;
 * it must be at most RLDI_POOL_T_NS (a pool's times are scaled out of line) and at most the
 * coarse margin when the caller uses the coarse path (an admission that leaves the bucket
 * busy sets its hint, out of line).
 *
 * A bucket not full and a lost race go on in rldi_bucket_take_busy, which retries at once
 * with the value the CAS returned; everything else in rldi_bucket_take_word, which handles
 * every case.
 *
 * Why it is written so. Between the clock read and the CAS, and between the CAS and the next
 * call's clock read, the CPU overlaps almost nothing (the vDSO's rdtscp waits for every
 * earlier instruction; a locked cmpxchg16b holds every later load): every instruction,
 * dependency chain, load latency and stack spill here adds to each call. Hence:
 *  - the arithmetic is on the two 64-bit halves of the state word (tat: integer ns; fv:
 *    fraction | version) and NOW in integer ns: from the clock to the CAS operands, one
 *    add. A full bucket (tat < now, so TAT < now) admits cost <= burst: new TAT = now +
 *    cost*T. cost*T <= tau <= 2^94 units (checked at configuration): its ns part fits;
 *    one token costs T, no multiply;
 *  - both config banks are loaded, and the version selects one: no load waits for another;
 *  - whether the outcome is RLDI_TAKE_FULL is decided before the CAS: after it, a load
 *    or a compare of a spilled value would wait for it;
 *  - the CAS is rldi_cas16_halves (no 128-bit operands through the stack);
 *  - nothing only the other outcomes need is computed on the way (see above).
 * Check the disassembly after a change (objdump -d librld.so, rld_try): no PLT call, no
 * division, one lock cmpxchg16b, no 128-bit value through the stack before the CAS.
 */
static __attribute__((always_inline)) inline int
rldi_bucket_take_fast(rldi_slot *sl, rldi_handle h, uint64_t cost, uint64_t now_ns,
                      uint64_t full_max_ns, rldi_take_more *m, uint64_t *reset_ns,
                      uint64_t *burst_out)
{
    uint64_t fv = rldi_load_acquire(&sl->frac_ver), tat = rldi_load_relaxed(&sl->tat);
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&sl->gen);   /* gen | waiters << 32 */
    uint64_t t0 = rldi_load_relaxed(&sl->bank[0].t_lo), t1 = rldi_load_relaxed(&sl->bank[1].t_lo);
    uint64_t b0 = rldi_load_relaxed(&sl->bank[0].burst), b1 = rldi_load_relaxed(&sl->bank[1].burst);
    uint64_t h0 = rldi_load_relaxed(&sl->bank[0].t_hi), h1 = rldi_load_relaxed(&sl->bank[1].t_hi);
    bool odd = (fv >> 32) & 1;
    uint64_t t = odd ? t1 : t0, burst = odd ? b1 : b0, th = odd ? h1 : h0;
    uint32_t kind = RLDI_MORE_WORD;
    /* the handle's gen, odd (a live limit's), no waiters; T below 2^64 units, not 0
     * (unlimited); 1 <= cost <= burst */
    if (rldi_unlikely(((gw ^ h.gen) | th | (~h.gen & 1)) != 0 || t == 0 || cost - 1 >= burst))
        goto more;
    kind = RLDI_MORE_BUSY;
    if (rldi_unlikely(tat >= now_ns))
        goto more;
    /* cost*T in ns and fraction; for one token (the common case) T itself, without the
     * multiply's latency on the way from the loads to the CAS (the empty asm keeps GCC
     * from folding the branch back into the multiply) */
    uint64_t ct_ns = t >> 32;
    uint32_t ct_frac = (uint32_t)t;
    if (rldi_unlikely(cost != 1)) {
        uint64_t n = cost;
        __asm__("" : "+r"(n));
        rldi_u128 ct = (rldi_u128)t * n;
        ct_ns = (uint64_t)(ct >> 32);
        ct_frac = (uint32_t)ct;
    }
    uint64_t ntat = now_ns + ct_ns, nfv = (fv & RLDI_VER_MASK) | ct_frac;
    uint64_t reset = ct_ns + (ct_frac != 0);            /* cost*T rounded up to the ns */
    bool full = ct_ns < full_max_ns;
    __asm__("" : "+r"(full));   /* decided before the CAS: a load after it waits for it */
    if (rldi_unlikely(!rldi_cas16_halves(&sl->tat, &tat, &fv, ntat, nfv)))
        goto more;                      /* lost a race: TAT | FV is the word now */
    if (rldi_unlikely(!full)) {
        *m = (rldi_take_more){ RLDI_MORE_TOOK, ntat, nfv, t, burst };
        return RLDI_TAKE_MORE;
    }
    *reset_ns = reset;
    *burst_out = burst;
    return RLDI_TAKE_FULL;
more:
    m->kind = kind;
    m->tat = tat;
    m->fv = fv;
    return RLDI_TAKE_MORE;
}

/*
 * The coarse-clock path, for busy buckets. CLOCK_MONOTONIC_COARSE costs a few ns against
 * ~20 for the precise clock, and returns the time of the last tick: for the true time s when
 * it is read, coarse <= s < coarse + margin, with margin = 4 ticks (the kernel advances it
 * at every tick; a CPU leaving idle catches it up before user code runs).
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
 *
 * Returns 0 / -EAGAIN when it decided (*now_ns: the coarse time used), RLDI_TAKE_PRECISE
 * when the precise path must decide; then TC's hint is cleared. Called while TC's hint is
 * set (see rldi_coarse); MARGIN_NS 0 (the coarse path off) always falls through. Under
 * contention the coarse path's speed only makes the line bounce more (measured 1.9x the
 * floor against 1.3x for the precise path, whose clock read spaces the attempts), and a
 * saturated bucket should not pay both clocks: a thread that loses a race here, or meets
 * the boundary, leaves the coarse path for a while (TC's back-off).
 */
#define RLDI_TAKE_PRECISE 1

static inline uint64_t rldi_coarse_ns(void)
{
    return rldi_clock_ns(CLOCK_MONOTONIC_COARSE);
}

static inline int rldi_bucket_take_coarse(const rldi_seg *s, rldi_handle h, uint64_t cost,
                                          uint64_t margin_ns, bool want_verdict, rldi_coarse *tc,
                                          rldi_verdict *v, uint64_t *now_ns)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (rldi_unlikely(!sl || !margin_ns))
        goto precise;
    uint64_t fv = rldi_load_acquire(&sl->frac_ver), tat = rldi_load_relaxed(&sl->tat);
    if (tat < tc->floor_ns + margin_ns)
        goto precise;                   /* not busy (any more): no coarse read */
    uint64_t lo = rldi_coarse_ns();
    tc->floor_ns = lo;
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&sl->gen);   /* gen | waiters << 32 */
    const rldi_bank *b = &sl->bank[(fv >> 32) & 1];
    uint64_t t = rldi_load_relaxed(&b->t_lo);
    uint64_t burst = rldi_load_relaxed(&b->burst);
    if (gw != h.gen || !(h.gen & 1) || rldi_load_relaxed(&b->t_hi) != 0 || t == 0 ||
        cost - 1 >= burst)
        goto precise;
    if (tat < lo + margin_ns)
        goto precise;                   /* not busy enough: the exact now matters */
    /* D = TAT - coarse >= margin. new - coarse = D + cost*T <= tau iff D <= (burst-cost)*T */
    rldi_u128 ct = (rldi_u128)t * cost, room = (rldi_u128)t * (burst - cost);
    rldi_u128 d = ((rldi_u128)(tat - lo) << 32) | (uint32_t)fv;
    *now_ns = lo;
    if (d <= room) {
        uint64_t f = (fv & RLDI_FRAC_MASK) + (uint32_t)ct;
        uint64_t ntat = tat + (uint64_t)(ct >> 32) + (f >> 32);
        uint64_t nfv = (fv & RLDI_VER_MASK) | (uint32_t)f;
        if (!rldi_cas16_halves(&sl->tat, &tat, &fv, ntat, nfv)) {
            tc->backoff = RLDI_COARSE_BACKOFF;      /* contended: precise for a while */
            goto precise;
        }
        if (v)
            rldi_bucket_verdict_fast(v, sl, b, t, burst, cost, rldi_tat_unpack(ntat, nfv),
                                     rldi_fp_from_ns(lo));
        return 0;
    }
    if (want_verdict || d - rldi_fp_from_ns(margin_ns) <= room) {
        /* near the boundary (a saturated bucket: every denial is), or an exact retry_after
         * wanted: the precise path decides, and this thread skips the coarse one for a
         * while, so a saturated limit does not pay both clocks */
        tc->backoff = RLDI_COARSE_BACKOFF / 4;
        goto precise;
    }
    /* denied for sure (new - (coarse + margin) > tau); trust the bank read only if the
     * state word did not move (a shadow limit admits its denials: the precise path does
     * that) */
    if (rldi_load_relaxed(&sl->flags) & RLDI_SLOT_SHADOW)
        goto precise;
    rldi_fence_acquire();
    if (rldi_load16_split(&sl->tat) != (((rldi_u128)fv << 64) | tat))
        goto precise;
    return -EAGAIN;
precise:
    tc->hint = 0;
    return RLDI_TAKE_PRECISE;
}

/* What a take of COST would say at NOW, taking nothing; a queue ahead counts (at least
 * one token) unless BARGE. Same codes as a take. */
int rldi_bucket_probe(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                      unsigned flags, rldi_verdict *v);

/* The state now, taking nothing: what a take of 0 would say, V->waiters the queue. */
int rldi_bucket_peek(const rldi_seg *s, rldi_handle h, rldi_u128 now, rldi_verdict *v);

/* Give back AMOUNT tokens; the bucket never exceeds its burst. WINDOW: for window
 * algorithms, the (sub-)window the tokens were taken in (rldi_verdict.window): they go back
 * only while it is current; 0 there is -EOPNOTSUPP (an earlier window's tokens given to this
 * one could over-admit). 0, -ESTALE, -EINVAL. */
int rldi_bucket_refund(const rldi_seg *s, rldi_handle h, uint64_t amount, uint32_t window,
                       rldi_u128 now);

/* Take AMOUNT without asking, into debt. -ERANGE when the debt would exceed the cap
 * (nothing taken); 0, -ESTALE, -EINVAL. */
int rldi_bucket_debit(const rldi_seg *s, rldi_handle h, uint64_t amount, rldi_u128 now);

/*
 * The daemon's grant to the head waiter of H's queue (it barges: the daemon is the queue):
 * take COST, charged as of DUE_NS but never more than one emission interval back, so a
 * late timer does not shift every later grant. Codes as a take.
 */
int rldi_bucket_grant(const rldi_seg *s, rldi_handle h, uint64_t cost, uint64_t due_ns,
                      rldi_u128 now, rldi_verdict *v);

/*
 * The degraded wait (no daemon to queue at): reserve COST now, into debt if need be, when
 * it is due by DEADLINE_NS (0: no deadline); *wait_ns is how long the caller must sleep
 * before using the tokens, and V is the state as of then. 0, -ETIMEDOUT (nothing taken;
 * V says when it would fit), or a take's codes.
 */
int rldi_bucket_reserve(const rldi_seg *s, rldi_handle h, uint64_t cost, uint64_t deadline_ns,
                        rldi_u128 now, rldi_verdict *v, uint64_t *wait_ns);

/* The daemon's estimate for a waiter of COST behind EXTRA queued tokens: V->retry_after_ns
 * is 0 when it fits now. 0 or -ESTALE / -EINVAL; -E2BIG when COST exceeds a window limit's
 * count (it never fits: a waiter's limit can shrink under it). */
int rldi_bucket_estimate(const rldi_seg *s, rldi_handle h, uint64_t extra, uint64_t cost,
                         rldi_u128 now, rldi_verdict *v);

/*
 * The upstream's word (rld_sync, rld_penalize; issue 15), one atomic change of the state for
 * every algorithm: from NOW on, at most REMAINING tokens are admitted before NOW + RESET_NS
 * (penalize: REMAINING 0, nothing before NOW + D). It never loosens: a state that admits
 * no more than that already stays as it is. 0 (OUT->changed says whether the state moved,
 * OUT->waiters who was queued then: the daemon re-times them), -ERANGE (RESET_NS beyond
 * RLDI_SYNC_MAX_NS), -EOPNOTSUPP (a global limit's pool, whose credits would undo it; a
 * key's sliding window), -ESTALE, -EINVAL. RESET_NS 0 bounds nothing. docs/DESIGN.md
 * ("Listening to the upstream") proves each algorithm's case exact.
 */
#define RLDI_SYNC_MAX_NS  ((uint64_t)1 << 52)      /* 52 days */
typedef struct rldi_sync_out {
    bool     changed;
    uint32_t waiters;
} rldi_sync_out;
int rldi_bucket_sync(const rldi_seg *s, rldi_handle h, uint64_t remaining, uint64_t reset_ns,
                     rldi_u128 now, rldi_sync_out *out);

/* ---- the daemon's writes ------------------------------------------------------------------ */

/* A GCRA bank of emission interval T and BURST (with its 1/T hint). */
void rldi_bank_gcra(rldi_bank *b, rldi_u128 t, uint64_t burst);
/* Do two banks mean the same limit? */
bool rldi_bank_same(const rldi_bank *a, const rldi_bank *b);

/* The config bank the state word names now. */
void rldi_bucket_config(const rldi_slot *sl, rldi_bank *out);

/*
 * Publish bank NB for slot SL (RING: its sliding-window ring): write the bank clients do not
 * read, then swap state and version in one CAS, the state carried into the new terms (CARRY,
 * same algorithm: GCRA as rldi_gcra_carry, debt capped at MAX_DEBT_NS; windows as window.c
 * says), or fresh: full, or an empty window. The daemon's only way to change a limit's rate,
 * algorithm or identity.
 */
void rldi_bucket_publish(rldi_slot *sl, rldi_ring *ring, const rldi_bank *nb, bool carry,
                         uint64_t max_debt_ns);

/* Bump the version of SL's word, its state and bank unchanged (the bank copied to the
 * other one): a CAS built on the word before fails. The daemon seals a limit this way after
 * changing its gen, so that nothing can be taken from it any more (dseg_grow). */
void rldi_bucket_seal(rldi_slot *sl);

/* A template's slot (keys.h): its keys' bank NB, and in the word's tat field the EPOCH of
 * its keys (keys of another epoch are stale), in one CAS as rldi_bucket_publish. */
void rldi_bucket_publish_template(rldi_slot *sl, const rldi_bank *nb, uint32_t epoch);

/* Make the bucket full (an empty window, its past in RING forgotten too): debt forgiven,
 * the configuration unchanged. */
void rldi_bucket_fill(rldi_slot *sl, rldi_ring *ring);

/* The calling thread's last take from a window limit (window.c sets it), so that a refund
 * that does not say which window its tokens came from can still give them to the right one
 * (librld's rld_refund). */
typedef struct rldi_win_take_rec {
    const void *seg;       /* the segment's base in this process */
    uint32_t    slot, gen, window;
} rldi_win_take_rec;
extern __thread rldi_win_take_rec rldi_win_last __attribute__((tls_model("initial-exec")));

/* window.c's daemon-side writes (its admission functions are in cell.h) */
rldi_u128 rldi_win_fresh(const rldi_bank *b, rldi_u128 now, uint32_t ver);
rldi_u128 rldi_win_carry(const rldi_bank *ob, const rldi_bank *nb, rldi_ring *ring,
                         rldi_u128 word, rldi_u128 now, uint32_t ver);

/* ---- a global limit's pool (gcra.h: RLDI_POOL_T; daemon/global.c) ------------------------- */

/* What a pool holds after rldi_bucket_pool: whole tokens available, tokens owed (debt). */
typedef struct rldi_pool_state {
    uint64_t avail, debt;
    uint64_t moved;     /* tokens credited or taken back by the call */
} rldi_pool_state;

/*
 * The daemon's one change of a pool, in one CAS: first cancel the natural refill of
 * HOLD_NS (TAT moves forward by it: called with the time since the last call, the pool
 * holds only what was credited), then credit CREDIT tokens (TAT back; a full pool takes no
 * more: OUT->moved says how many went in) or take back up to TAKE tokens (never into debt:
 * OUT->moved says how many came out). 0; -EAGAIN when the bank is not a pool's (the daemon
 * published another: nothing done); -ESTALE, -EINVAL.
 */
int rldi_bucket_pool(const rldi_seg *s, rldi_handle h, uint64_t hold_ns, uint64_t credit,
                     uint64_t take, rldi_u128 now, rldi_pool_state *out);

/*
 * Publish (T, BURST) for slot SL keeping the tokens available, not the proportion: after it
 * the bucket holds min(what it held, MAX_TOKENS, BURST) whole tokens (debt forgiven). How a
 * global limit's pool moves to and from its fallback bank and across a change of burst, so
 * that no token appears that was not leased. *HELD (may be NULL): tokens held before.
 */
void rldi_bucket_publish_tokens(rldi_slot *sl, rldi_u128 t, uint64_t burst, uint64_t max_tokens,
                                uint64_t *held);

#endif
