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

/* The verdict of an admission by the fast path: out of line, to keep the CAS loop tight. */
void rldi_bucket_verdict_fast(rldi_verdict *v, const rldi_slot *sl, const rldi_bank *b,
                              uint64_t t, uint64_t burst, uint64_t cost, rldi_u128 nt,
                              rldi_u128 now);

/*
 * rldi_bucket_take without flags, the common case inline and small: a live limit with no
 * waiters, 1 <= cost <= burst, an interval below 2^64 units (any rate faster than one per
 * 4.29 s) and an admission that fits. Everything else, and a lost CAS race, goes to
 * rldi_bucket_take_word, which handles every case.
 */
static inline int rldi_bucket_take_fast(const rldi_seg *s, rldi_handle h, uint64_t cost,
                                        rldi_u128 now, rldi_verdict *v)
{
    if (rldi_unlikely(h.slot >= s->slot_count))     /* a key's handle, or one no lookup made */
        return rldi_bucket_take_any(s, h, cost, now, 0, v);
    rldi_slot *sl = &s->slots[h.slot];
    rldi_u128 word = rldi_load16_split(&sl->tat);
    uint64_t fv = (uint64_t)(word >> 64);
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&sl->gen);   /* gen | waiters << 32 */
    const rldi_bank *b = &sl->bank[(fv >> 32) & 1];
    uint64_t t = rldi_load_relaxed(&b->t_lo);
    uint64_t burst = rldi_load_relaxed(&b->burst);
    if (rldi_unlikely(gw != h.gen || !(h.gen & 1) || rldi_load_relaxed(&b->t_hi) != 0 ||
                      t == 0 || cost - 1 >= burst))
        return rldi_bucket_take_word(s, h, cost, now, 0, word, v);
    rldi_u128 tat = rldi_tat_unpack((uint64_t)word, fv);
    rldi_u128 tat0 = tat > now ? tat : now;
    rldi_u128 nt = tat0 + (rldi_u128)t * cost;
    if (rldi_unlikely(nt - now > (rldi_u128)t * burst) ||
        rldi_unlikely(!rldi_cas16(&sl->tat, &word, rldi_word_make(nt, (uint32_t)(fv >> 32)))))
        return rldi_bucket_take_word(s, h, cost, now, 0, word, v);
    if (v)
        rldi_bucket_verdict_fast(v, sl, b, t, burst, cost, nt, now);
    return 0;
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
 * when the precise path must decide. TC is the calling thread's state: a time known not to
 * be after the coarse clock (the last coarse reading, or the last precise one less a tick),
 * which lets a bucket idle by more than the margin skip even the coarse read, and a
 * back-off: under contention the coarse path's speed only makes the line bounce more
 * (measured 1.9x the floor against 1.3x for the precise path, whose clock read spaces the
 * attempts), so a thread that loses a race or meets the boundary leaves it for a while.
 */
#define RLDI_TAKE_PRECISE 1
typedef struct rldi_coarse {
    uint64_t floor_ns;     /* the coarse clock was at least this at the last look */
    uint32_t backoff;      /* calls left on the precise path */
} rldi_coarse;
#define RLDI_COARSE_BACKOFF 256u

static inline uint64_t rldi_coarse_ns(void)
{
    return rldi_clock_ns(CLOCK_MONOTONIC_COARSE);
}

static inline int rldi_bucket_take_coarse(const rldi_seg *s, rldi_handle h, uint64_t cost,
                                          rldi_u128 margin, bool want_verdict, rldi_coarse *tc,
                                          rldi_verdict *v, uint64_t *now_ns)
{
    if (tc->backoff) {
        tc->backoff--;
        return RLDI_TAKE_PRECISE;
    }
    if (h.slot >= s->slot_count)
        return RLDI_TAKE_PRECISE;
    rldi_slot *sl = &s->slots[h.slot];
    rldi_u128 word = rldi_load16_split(&sl->tat);
    uint64_t margin_ns = (uint64_t)(margin >> 32);
    if ((uint64_t)word < tc->floor_ns + margin_ns) {
        /* an idle bucket: the precise path, and no second look at the line for a while
         * (under contention the extra load costs a cache-line transfer) */
        tc->backoff = RLDI_COARSE_BACKOFF / 4;
        return RLDI_TAKE_PRECISE;
    }
    uint64_t lo_ns = rldi_coarse_ns();
    tc->floor_ns = lo_ns;
    rldi_u128 lo = rldi_fp_from_ns(lo_ns);
    uint64_t fv = (uint64_t)(word >> 64);
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&sl->gen);   /* gen | waiters << 32 */
    const rldi_bank *b = &sl->bank[(fv >> 32) & 1];
    uint64_t t = rldi_load_relaxed(&b->t_lo);
    uint64_t burst = rldi_load_relaxed(&b->burst);
    if (gw != h.gen || !(h.gen & 1) || rldi_load_relaxed(&b->t_hi) != 0 || t == 0 ||
        cost - 1 >= burst)
        return RLDI_TAKE_PRECISE;
    rldi_u128 tat = rldi_tat_unpack((uint64_t)word, fv);
    if (tat < lo + margin)
        return RLDI_TAKE_PRECISE;             /* not busy enough: the exact now matters */
    rldi_u128 nt = tat + (rldi_u128)t * cost, tau = (rldi_u128)t * burst;
    *now_ns = lo_ns;
    if (nt - lo <= tau) {
        if (!rldi_cas16(&sl->tat, &word, rldi_word_make(nt, (uint32_t)(fv >> 32)))) {
            tc->backoff = RLDI_COARSE_BACKOFF;  /* contended: precise for a while */
            return RLDI_TAKE_PRECISE;
        }
        if (v)
            rldi_bucket_verdict_fast(v, sl, b, t, burst, cost, nt, lo);
        return 0;
    }
    if (want_verdict || nt - (lo + margin) <= tau) {
        /* near the boundary (a saturated bucket: every denial is), or an exact retry_after
         * wanted: the precise path decides, and this thread skips the coarse one for a
         * while, so a saturated limit does not pay both clocks */
        tc->backoff = RLDI_COARSE_BACKOFF / 4;
        return RLDI_TAKE_PRECISE;
    }
    /* denied for sure; trust the bank read only if the state word did not move (a shadow
     * limit admits its denials: the precise path does that) */
    if (rldi_load_relaxed(&sl->flags) & RLDI_SLOT_SHADOW)
        return RLDI_TAKE_PRECISE;
    rldi_fence_acquire();
    if (rldi_load16_split(&sl->tat) != word)
        return RLDI_TAKE_PRECISE;
    return -EAGAIN;
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
