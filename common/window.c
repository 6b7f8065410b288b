/*
 * window.c - the window algorithms' admission (see window.h for the state, docs/DESIGN.md
 * for the proofs). Called by bucket.c when a slot's bank is tagged sliding or fixed; the
 * same contract as the bucket functions: every change of the state word is one 16-byte CAS
 * retried with the value it returned, every verdict built on a view is checked against the
 * word (or published with it), and nothing read from the segment is trusted unchecked.
 */
#include "window.h"

#include <errno.h>
#include <string.h>

#include "atomics.h"
#include "bucket.h"
#include "cell.h"
#include "clock.h"

__thread rldi_win_take_rec rldi_win_last __attribute__((tls_model("initial-exec")));

/* One consistent reading of a window limit. */
typedef struct wview {
    rldi_u128      word;
    rldi_u128      cfg_word;  /* a key's: its template's word (cell.h) */
    uint64_t       lo;        /* tat field: fixed end / sliding head|count */
    uint32_t       frac;      /* fixed count / sliding sum of the 16 before */
    uint32_t       ver;
    uint32_t       waiters;
    rldi_winparams p;
} wview;

static int wview_fill(const rldi_cell *c, rldi_u128 word, wview *v)
{
    rldi_view gv;                 /* the identity checks and the bank, as for GCRA */
    int r = rldi_cell_view(c, word, &gv);
    if (r < 0)
        return r;
    uint64_t fv = (uint64_t)(word >> 64);
    v->word = word;
    v->cfg_word = gv.cfg_word;
    v->lo = (uint64_t)word;
    v->frac = (uint32_t)fv;
    v->ver = (uint32_t)(fv >> 32);
    v->waiters = gv.waiters;
    v->p.algo = RLDI_BANK_ALGO((uint64_t)(gv.t >> 64));
    v->p.period_ns = (uint64_t)gv.t;
    v->p.count = gv.burst;
    memcpy(&v->p.aux_ns, &gv.inv, sizeof(v->p.aux_ns));
    return 0;
}

/* Parameters a hostile writer could have made unusable (no division by them then). */
static bool wparams_ok(const rldi_winparams *p)
{
    if (p->period_ns == 0 || p->count == 0)
        return false;
    if (p->algo == RLDI_ALGO_SLIDING)
        return p->aux_ns != 0 && p->count <= RLDI_WIN_SLIDING_MAX &&
               p->aux_ns <= UINT64_MAX / (RLDI_WIN_SUBS + 2);
    return p->algo == RLDI_ALGO_FIXED && p->count <= RLDI_WIN_FIXED_MAX;
}

static inline rldi_u128 wword(uint64_t lo, uint32_t frac, uint32_t ver)
{
    return ((rldi_u128)(((uint64_t)ver << 32) | frac) << 64) | lo;
}

/* A window id for rld_result.window: never 0 (0: GCRA, or not known). */
static inline uint32_t win_id(uint64_t idx)
{
    return (uint32_t)(idx & 0x7fffffffu) | 0x80000000u;
}

static bool queue_ahead(const rldi_seg *s, const wview *v, unsigned flags, uint64_t now_ns)
{
    return v->waiters && !(flags & RLDI_TAKE_BARGE) && !rldi_seg_daemon_stale(s, now_ns);
}

/* ---- fixed windows --------------------------------------------------------------------- */

/*
 * CLOCK_REALTIME - CLOCK_MONOTONIC, read when a window starts. The two reads are not
 * simultaneous: an offset off by D ends the window D late (or early), and a window that
 * ends late lets the next wall-clock window's first D of admissions count in the old one,
 * so that wall-clock window admits more than COUNT (test_mp_windows saw 52 of 50 when a
 * preemption fell between the reads). So the realtime read is bracketed by two monotonic
 * ones, the tightest of a few brackets kept (a preemption widens one bracket, rarely two),
 * and the later monotonic read used: the offset errs small, the window ends late, by at
 * most the bracket (tens of ns), never early.
 */
static int64_t wall_offset(void)
{
    uint64_t best_w = UINT64_MAX;
    int64_t best = 0;
    for (int i = 0; i < 4 && best_w > 1000; i++) {
        uint64_t m1 = rldi_mono_ns(), r = rldi_real_ns(), m2 = rldi_mono_ns();
        if (m2 - m1 < best_w) {
            best_w = m2 - m1;
            best = (int64_t)(r - m2);
        }
    }
    return best;
}

int64_t (*rldi_win_wall_offset)(void) = wall_offset;

/* The end of the wall-clock window holding monotonic time T, with the clocks' offset OFF. */
static inline uint64_t wall_end(const wview *v, int64_t off, uint64_t t)
{
    if (v->p.aux_ns >= RLDI_WIN_ANCHOR_ELASTIC)   /* anchored: from the first take (or any
                                                  * attempt, elastic), not the wall clock */
        return t + v->p.period_ns;
    return rldi_win_fixed_end(t + (uint64_t)off, t, v->p.period_ns, v->p.aux_ns % v->p.period_ns);
}

/* A fixed window at some time: its raw end field (flags included), its end, its count and
 * whether it admits at all (a DENY hold does not). */
typedef struct fixed_at {
    uint64_t lo, end, count;
    bool     deny;
} fixed_at;

/*
 * The window at NOW_NS: its end and what it holds (a fresh window when the current ended).
 * A window's end is the wall clock's next boundary after NOW_NS, through the offset between
 * the two clocks read together now (only when a window starts): NOW_NS may be a stale read
 * (a retry), and mixing it with a fresh CLOCK_REALTIME would end the window early. A hold
 * that ended carries its count into the new window when that is the wall-clock window its
 * last ns fell in (window.h).
 */
#define WALL_JITTER_NS 100000u      /* far above the offset's error (a bracket, tens of ns) */

static void fixed_now(const wview *v, uint64_t now_ns, fixed_at *f)
{
    uint64_t e = RLDI_WIN_END(v->lo);
    if (now_ns < e) {
        f->lo = v->lo;
        f->end = e;
        f->count = v->frac;
        f->deny = (v->lo & RLDI_WIN_DENY) != 0;
        return;
    }
    int64_t off = rldi_win_wall_offset();
    f->end = f->lo = wall_end(v, off, now_ns);
    /* The offset is read again for each window and may come out a little smaller than
     * the last time: NOW, just past E, then maps to just before the boundary E stood for,
     * and a window of a few ns would start there, then another: two windows' worth in one
     * wall-clock window (test_mp_windows saw 51 of 50). A window that would end within
     * WALL_JITTER_NS of its start, just after the last one ended, is the next one. (A
     * hold ends off the boundaries: its own rule, below; an anchored window is P long.) */
    if (e > 0 && !(v->lo & RLDI_WIN_HOLD) && v->p.aux_ns < RLDI_WIN_ANCHOR_ELASTIC &&
        now_ns - e < WALL_JITTER_NS && f->end - now_ns < WALL_JITTER_NS)
        f->end = f->lo = wall_end(v, off, f->end);
    f->count = 0;
    f->deny = false;
    if ((v->lo & RLDI_WIN_HOLD) && e > 0 && wall_end(v, off, e - 1) == f->end)
        f->count = v->frac;
}

/* When COST fits behind EXTRA tokens, at NOW_NS in a window ending at END holding COUNT:
 * the current window's room first, then whole windows. */
static uint64_t fixed_wait(const wview *v, uint64_t now_ns, uint64_t end, uint64_t count,
                           uint64_t extra, uint64_t cost)
{
    uint64_t c = v->p.count, room = count < c ? c - count : 0;
    if (extra + cost <= room)
        return 0;
    uint64_t later = extra + cost - room;             /* tokens for windows after this one */
    uint64_t windows = (later + c - 1) / c;           /* the one it lands in, 1-based */
    uint64_t wait = end - now_ns;
    if (windows > 1)
        wait += (windows - 1 > UINT64_MAX / v->p.period_ns) ? UINT64_MAX / 2
                                                            : (windows - 1) * v->p.period_ns;
    return wait;
}

/* fixed_wait for the window F at NOW_NS: a DENY hold first runs out, then its window (the
 * wall-clock one its last ns fell in) resumes with the count it carries. */
static uint64_t fixed_wait_at(const wview *v, uint64_t now_ns, const fixed_at *f, uint64_t extra,
                              uint64_t cost)
{
    if (!f->deny)
        return fixed_wait(v, now_ns, f->end, f->count, extra, cost);
    uint64_t e = f->end, wend = wall_end(v, rldi_win_wall_offset(), e - 1);
    uint64_t w = wend > e ? fixed_wait(v, e, wend, f->count, extra, cost)
                          : fixed_wait(v, e, e + v->p.period_ns, 0, extra, cost);
    return w > UINT64_MAX - (e - now_ns) ? UINT64_MAX : w + (e - now_ns);
}

static void fixed_verdict(rldi_verdict *out, const wview *v, uint64_t now_ns, uint64_t end,
                          uint64_t count, uint64_t wait, uint32_t window)
{
    out->limit = v->p.count;
    out->remaining = count < v->p.count ? v->p.count - count : 0;
    out->retry_after_ns = wait;
    out->reset_after_ns = end - now_ns;
    out->flags = 0;
    out->waiters = 0;
    out->window = window;
}

/* ---- sliding windows ------------------------------------------------------------------- */

/* Sub-window J's tokens from the ring, 0 when the entry is another sub-window's (one with no
 * tokens was never written; the ring never holds a sub-window newer than the head). */
static uint64_t ring_get(const rldi_ring *r, uint64_t j)
{
    uint64_t e = rldi_load_relaxed(&r->e[j % RLDI_WIN_SUBS]);
    return (e & RLDI_WIN_IDX_MASK) == (j & RLDI_WIN_IDX_MASK) ? e >> RLDI_WIN_IDX_BITS : 0;
}

/*
 * Record sub-window J's CNT tokens before the head moves past J. Only ever raises what the
 * entry says for J, and never overwrites a newer sub-window's entry: a writer that read an
 * old state may write late, and what it writes can then only over-count (never lose tokens).
 */
static void ring_put(rldi_ring *r, uint64_t j, uint64_t cnt)
{
    uint64_t *e = &r->e[j % RLDI_WIN_SUBS];
    uint64_t cur = rldi_load_relaxed(e);
    for (;;) {
        uint64_t tag = cur & RLDI_WIN_IDX_MASK;
        int64_t d = rldi_win_dist(tag, j);
        if (d < 0 || (d == 0 && (cur >> RLDI_WIN_IDX_BITS) >= cnt))
            return;
        uint64_t want = rldi_win_pack(j, cnt);
        if (__atomic_compare_exchange_n(e, &cur, want, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return;
    }
}

/* What an admission at sub-window k sees: its tokens and those of the 16 before it, each by
 * index (cnt[0] is k - 16, cnt[16] is k), from the state word's head (its tokens, and the 16
 * before it summing to S) and the ring. k >= head. */
typedef struct sliding_at {
    uint64_t k;                   /* 40-bit index of the sub-window of now (>= head) */
    uint64_t k_abs;               /* its absolute index: start at k_abs * w */
    uint64_t cnt[RLDI_WIN_SUBS + 1];
    uint64_t sum;                 /* of the 16 before k (the state word's S at k) */
    uint64_t kc;                  /* tokens in k */
    bool     have_cnt;            /* cnt[] filled */
} sliding_at;

static void sliding_now(const rldi_ring *ring, const wview *v, uint64_t now_ns, sliding_at *a)
{
    uint64_t w = v->p.aux_ns, head = rldi_win_head(v->lo), hc = rldi_win_headcnt(v->lo);
    a->k_abs = now_ns / w;
    uint64_t kt = a->k_abs & RLDI_WIN_IDX_MASK;
    int64_t d = rldi_win_dist(head, kt);
    if (d < -(INT64_C(1) << 38))
        d = INT64_MAX;      /* a head 2^38 sub-windows ahead is one from before a wrap */
    if (d <= 0) {
        /* our clock is in the head's sub-window, or behind it (read before another process
         * moved the head): we count as the head's, later than we are, which only denies */
        a->k = head;
        a->k_abs += (uint64_t)(-d);      /* the head's: ahead of our clock */
        a->sum = v->frac;
        a->kc = hc;
        a->have_cnt = false;
        return;
    }
    /* the head is behind now: sub-windows head+1 .. k-1 are empty, head holds hc, the ones
     * before it are in the ring */
    a->k = kt;
    a->kc = 0;
    a->sum = 0;
    a->cnt[RLDI_WIN_SUBS] = 0;
    for (uint64_t i = 0; i < RLDI_WIN_SUBS; i++) {
        int64_t rel = d - (int64_t)(RLDI_WIN_SUBS - i);         /* (kt - 16 + i) - head */
        uint64_t c = 0;
        if (rel == 0)
            c = hc;
        else if (rel < 0 && rel > -(int64_t)RLDI_WIN_SUBS)
            c = ring_get(ring, (kt - RLDI_WIN_SUBS + i) & RLDI_WIN_IDX_MASK);
        a->cnt[i] = c;
        a->sum += c;
    }
    a->have_cnt = true;
}

/* The per-sub-window counts of A when sliding_now did not need them (head in place). */
static void sliding_cnt(const rldi_ring *ring, sliding_at *a)
{
    if (a->have_cnt)
        return;
    for (uint64_t i = 0; i < RLDI_WIN_SUBS; i++)
        a->cnt[i] = ring_get(ring, (a->k - RLDI_WIN_SUBS + i) & RLDI_WIN_IDX_MASK);
    a->cnt[RLDI_WIN_SUBS] = a->kc;
    a->have_cnt = true;
}

/* When COST fits behind EXTRA tokens, from sub-window A->k on (window.h: rldi_win_wait). */
static uint64_t sliding_wait(const wview *v, const sliding_at *a, uint64_t now_ns,
                             uint64_t extra, uint64_t cost)
{
    return rldi_win_wait(a->cnt, 1, RLDI_WIN_SUBS + 1, a->sum + a->kc, v->p.count, v->p.aux_ns,
                         a->k_abs, now_ns, extra, cost);
}

static void sliding_verdict(rldi_verdict *out, const wview *v, const sliding_at *a,
                            uint64_t now_ns, uint64_t taken_here, uint64_t wait)
{
    uint64_t c = v->p.count, w = v->p.aux_ns;
    uint64_t total = a->sum + a->kc + taken_here;
    out->limit = c;
    out->remaining = total < c ? c - total : 0;
    out->retry_after_ns = wait;
    /* full again when the newest tokens leave: 17 sub-windows after the last one holding any */
    int64_t last = -1;
    if (a->kc + taken_here > 0)
        last = RLDI_WIN_SUBS;
    else if (a->have_cnt)
        for (int64_t i = RLDI_WIN_SUBS - 1; i >= 0 && last < 0; i--)
            if (a->cnt[i])
                last = i;
    out->reset_after_ns = last < 0 ? 0
        : (a->k_abs - RLDI_WIN_SUBS + (uint64_t)last + RLDI_WIN_SUBS + 1) * w - now_ns;
    out->flags = 0;
    out->waiters = 0;
    out->window = win_id(a->k);
}


/* ---- sliding windows of keys: the whole window in the state word ------------------------ */

static bool wview_moved(const rldi_cell *c, const wview *v, rldi_u128 *word);

/*
 * A key has no ring (64 bytes per key): its sliding window lives in the 96 bits of its word
 * beside the version (the key's gen). The head sub-window's index (32 bits) in the frac
 * field, and in the tat field the counts of the head and the N sub-windows before it, B
 * bits each, B the bits COUNT needs: N + 1 = 64 / B (COUNT 1: N = 63; 128..255: N = 7;
 * 2048..4095: N = 4; 4096..65535: N = 3; arrays of counts hold RLDI_WIN_MAX_SUBS, 64).
 * Sub-windows are w = ceil(PERIOD / N) wide: the N + 1 cover any interval of PERIOD, so the
 * check is exact as the named limits' is, and throughput under saturation is at least
 * N / (N + 1) of COUNT per PERIOD. Every change is one CAS of the whole window: no ring, no
 * order of writes to prove.
 */
typedef struct ksl {
    uint32_t n, b;          /* past sub-windows, bits a count */
    uint64_t w, mask;       /* sub-window width (ns); a count's largest value */
} ksl;

static bool ksl_of(const rldi_winparams *p, ksl *k)
{
    if (p->count == 0 || p->count > UINT32_MAX || p->period_ns == 0)
        return false;
    uint32_t b = 64 - (uint32_t)__builtin_clzll(p->count);
    k->n = 64 / b - 1;
    k->b = b;
    k->mask = (UINT64_C(1) << b) - 1;
    k->w = (p->period_ns + k->n - 1) / k->n;
    return k->n >= 1;
}

/* Are V's parameters usable by C's algorithm: a key's sliding window (no ring) needs
 * ksl_of's, the others wparams_ok's. Nothing is computed from them before this says so. */
static bool wusable(const rldi_cell *c, const wview *v)
{
    ksl k;
    return !c->ring && v->p.algo == RLDI_ALGO_SLIDING ? ksl_of(&v->p, &k) : wparams_ok(&v->p);
}

/* The window at NOW_NS: CNT[0] the head sub-window's count, CNT[i] the one i before; *K its
 * index (the head, or now's when the head is behind), *KABS now's absolute sub-window
 * (shifted back when our clock reads before the head). */
static void ksl_now(const ksl *k, const wview *v, uint64_t now_ns, uint64_t cnt[], uint32_t *kidx,
                    uint64_t *kabs)
{
    uint64_t nowi = now_ns / k->w;
    uint32_t h = v->frac;
    int64_t d = (int32_t)((uint32_t)nowi - h);
    if (d < -(INT64_C(1) << 30))
        d = INT64_MAX;      /* a head 2^30 sub-windows ahead is one from before a wrap */
    if (d <= 0) {
        /* our clock reads in the head's sub-window or before it (another process moved the
         * head): we count as the head's, later than we are, which only denies */
        *kidx = h;
        *kabs = nowi + (uint64_t)(-d);
        for (uint32_t i = 0; i <= k->n; i++)
            cnt[i] = (v->lo >> (i * k->b)) & k->mask;
        return;
    }
    *kidx = (uint32_t)nowi;
    *kabs = nowi;
    for (uint32_t i = 0; i <= k->n; i++)
        cnt[i] = (uint64_t)d <= i ? (v->lo >> ((i - (uint32_t)d) * k->b)) & k->mask : 0;
}

static uint64_t ksl_pack(const ksl *k, const uint64_t cnt[])
{
    uint64_t lo = 0;
    for (uint32_t i = 0; i <= k->n; i++)
        lo |= cnt[i] << (i * k->b);
    return lo;
}

/* When COST fits behind EXTRA queued tokens (window.h: rldi_win_wait): CNT0[0] is the
 * newest sub-window, CNT0[N] the oldest. */
static uint64_t ksl_wait(const ksl *k, const wview *v, const uint64_t cnt0[], uint64_t kabs,
                         uint64_t now_ns, uint64_t extra, uint64_t cost)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i <= k->n; i++)
        total += cnt0[i];
    return rldi_win_wait(cnt0 + k->n, -1, k->n + 1, total, v->p.count, k->w, kabs, now_ns, extra,
                         cost);
}

static void ksl_verdict(rldi_verdict *out, const ksl *k, const wview *v, const uint64_t cnt[],
                        uint32_t kidx, uint64_t kabs, uint64_t now_ns, uint64_t wait)
{
    uint64_t total = 0;
    int64_t newest = -1;
    for (uint32_t i = 0; i <= k->n; i++) {
        total += cnt[i];
        if (cnt[i] && newest < 0)
            newest = i;
    }
    out->limit = v->p.count;
    out->remaining = total < v->p.count ? v->p.count - total : 0;
    out->retry_after_ns = wait;
    /* full again when the newest tokens leave: N + 1 sub-windows after theirs */
    out->reset_after_ns = newest < 0 ? 0 : (kabs - (uint64_t)newest + k->n + 1) * k->w - now_ns;
    out->flags = 0;
    out->waiters = 0;
    out->window = win_id(kidx);
}

static int take_ksl(const rldi_cell *c, wview *v, uint64_t cost, uint64_t now_ns, bool queued,
                    uint64_t extra, bool dry, rldi_u128 *word, rldi_verdict *out, uint32_t *win)
{
    ksl k;
    uint64_t cnt[RLDI_WIN_MAX_SUBS], kabs, total = 0;
    uint32_t kidx;
    if (!ksl_of(&v->p, &k))
        return -ESTALE;
    ksl_now(&k, v, now_ns, cnt, &kidx, &kabs);
    for (uint32_t i = 0; i <= k.n; i++)
        total += cnt[i];
    if (!queued && total + cost <= v->p.count && cnt[0] + cost <= k.mask) {
        cnt[0] += cost;                 /* (again with a fresh view if the word moved) */
        if (cost == 0 || dry ? wview_moved(c, v, word)
                             : !rldi_cas16(c->word, word, wword(ksl_pack(&k, cnt), kidx, v->ver)))
            return 1;
        if (out)
            ksl_verdict(out, &k, v, cnt, kidx, kabs, now_ns, 0);
        *win = win_id(kidx);
        return 0;
    }
    if (wview_moved(c, v, word))
        return 1;
    if (out) {
        ksl_verdict(out, &k, v, cnt, kidx, kabs, now_ns, ksl_wait(&k, v, cnt, kabs, now_ns, extra, cost));
        out->waiters = v->waiters;
    }
    return -EAGAIN;
}

/* peek, refund and debit of a key's sliding window (window.c's public functions call them) */
static int peek_ksl(const wview *v, uint64_t now_ns, rldi_verdict *vd)
{
    ksl k;
    uint64_t cnt[RLDI_WIN_MAX_SUBS], kabs, total = 0;
    uint32_t kidx;
    if (!ksl_of(&v->p, &k))
        return -ESTALE;
    ksl_now(&k, v, now_ns, cnt, &kidx, &kabs);
    for (uint32_t i = 0; i <= k.n; i++)
        total += cnt[i];
    uint64_t wait = 0;
    for (uint64_t m = 1; m <= k.n + 1 && total > v->p.count; m++) {   /* in debt */
        total -= cnt[k.n + 1 - m];
        wait = (kabs + m) * k.w - now_ns;
    }
    ksl_verdict(vd, &k, v, cnt, kidx, kabs, now_ns, wait);
    return 0;
}

static int refund_ksl(const wview *v, uint64_t amount, uint32_t window, uint64_t now_ns,
                      rldi_u128 *want)
{
    ksl k;
    uint64_t cnt[RLDI_WIN_MAX_SUBS], kabs;
    uint32_t kidx;
    if (!ksl_of(&v->p, &k))
        return -ESTALE;
    ksl_now(&k, v, now_ns, cnt, &kidx, &kabs);
    if (kidx != v->frac || win_id(kidx) != window)
        return 1;                           /* that sub-window is in the past: nothing */
    cnt[0] = cnt[0] > amount ? cnt[0] - amount : 0;
    *want = wword(ksl_pack(&k, cnt), kidx, v->ver);
    return 0;
}

static int debit_ksl(const wview *v, uint64_t amount, uint64_t cap, uint64_t now_ns,
                     rldi_u128 *want)
{
    ksl k;
    uint64_t cnt[RLDI_WIN_MAX_SUBS], kabs, total = 0;
    uint32_t kidx;
    if (!ksl_of(&v->p, &k))
        return -ESTALE;
    ksl_now(&k, v, now_ns, cnt, &kidx, &kabs);
    for (uint32_t i = 0; i <= k.n; i++)
        total += cnt[i];
    if (amount > k.mask || cnt[0] + amount > k.mask || total + amount > cap)
        return -ERANGE;
    cnt[0] += amount;
    *want = wword(ksl_pack(&k, cnt), kidx, v->ver);
    return 0;
}

/* ---- the operations -------------------------------------------------------------------- */

/* The word still is what V was read from: nothing published, so check before trusting V. */
static bool wview_moved(const rldi_cell *c, const wview *v, rldi_u128 *word)
{
    rldi_view rv = { .word = v->word, .cfg_word = v->cfg_word };
    return rldi_cell_moved(c, &rv, word);
}

/* DRY: decide only (probe, estimate): nothing is published, the view is checked instead. */
static int take_fixed(const rldi_cell *c, wview *v, uint64_t cost, uint64_t now_ns, bool queued,
                      uint64_t extra, bool dry, rldi_u128 *word, rldi_verdict *out,
                      uint32_t *win)
{
    fixed_at f;
    fixed_now(v, now_ns, &f);
    if (v->p.aux_ns == RLDI_WIN_ANCHOR_ELASTIC && cost && now_ns + v->p.period_ns > f.end) {
        f.end = now_ns + v->p.period_ns;         /* every attempt pushes the end */
        f.lo = (f.lo & (RLDI_WIN_HOLD | RLDI_WIN_DENY)) | f.end;
    }
    uint32_t id = win_id(f.end / v->p.period_ns);
    if (!queued && !f.deny && f.count + cost <= v->p.count) {
        if (cost == 0 || dry ? wview_moved(c, v, word)
                             : !rldi_cas16(c->word, word, wword(f.lo, (uint32_t)(f.count + cost), v->ver)))
            return 1;                                   /* again */
        if (out)
            fixed_verdict(out, v, now_ns, f.end, f.count + cost, 0, id);
        *win = id;
        return 0;
    }
    /* denied; a window that ended is published as ended (cheaper for the next caller) */
    if (f.lo != v->lo && !dry ? !rldi_cas16(c->word, word, wword(f.lo, (uint32_t)f.count, v->ver))
                              : wview_moved(c, v, word))
        return 1;
    if (out) {
        fixed_verdict(out, v, now_ns, f.end, f.count, fixed_wait_at(v, now_ns, &f, extra, cost), id);
        if (f.deny)
            out->remaining = 0;
        out->waiters = v->waiters;
    }
    return -EAGAIN;
}

static int take_sliding(const rldi_cell *c, rldi_ring *ring, wview *v, uint64_t cost, uint64_t now_ns,
                        bool queued, uint64_t extra, bool dry, rldi_u128 *word, rldi_verdict *out,
                        uint32_t *win)
{
    sliding_at a;
    uint64_t head = rldi_win_head(v->lo);
    sliding_now(ring, v, now_ns, &a);
    bool moved = a.k != head;
    if (moved && !dry)  /* the head's tokens go to the ring before the head moves past it */
        ring_put(ring, head, rldi_win_headcnt(v->lo));
    if (!queued && a.sum + a.kc + cost <= v->p.count) {
        if (cost == 0 || dry ? wview_moved(c, v, word)
                             : !rldi_cas16(c->word, word, wword(rldi_win_pack(a.k, a.kc + cost),
                                                                  (uint32_t)a.sum, v->ver)))
            return 1;
        if (out)
            sliding_verdict(out, v, &a, now_ns, cost, 0);
        *win = win_id(a.k);
        return 0;
    }
    if (moved && !dry ? !rldi_cas16(c->word, word, wword(rldi_win_pack(a.k, a.kc),
                                                          (uint32_t)a.sum, v->ver))
                      : wview_moved(c, v, word))
        return 1;
    if (out) {
        sliding_cnt(ring, &a);
        sliding_verdict(out, v, &a, now_ns, 0, sliding_wait(v, &a, now_ns, extra, cost));
        out->waiters = v->waiters;
    }
    return -EAGAIN;
}

int rldi_win_take_fast(const rldi_seg *s, rldi_slot *sl, rldi_handle h, uint64_t cost,
                       uint64_t now_ns, uint64_t tat, uint64_t fv, rldi_verdict *out)
{
    for (;;) {
        uint64_t gw = rldi_load_relaxed((const uint64_t *)&sl->gen);   /* gen | waiters << 32 */
        const rldi_bank *b = &sl->bank[(fv >> 32) & 1];
        uint64_t th = rldi_load_relaxed(&b->t_hi), period = rldi_load_relaxed(&b->t_lo);
        uint64_t c = rldi_load_relaxed(&b->burst), aux = rldi_load_relaxed(&b->inv_t);
        uint32_t algo = RLDI_BANK_ALGO(th);
        /* H's live limit with no waiters (a template's slot has ~0 of them); wparams_ok */
        if (gw != h.gen || !(h.gen & 1) || cost - 1 >= c || period == 0)
            return RLDI_TAKE_MORE;
        uint64_t ntat, nfv = fv, left, reset;
        uint32_t win;
        if (algo == RLDI_ALGO_FIXED) {
            uint64_t end = RLDI_WIN_END(tat), n = (uint32_t)fv + cost;
            if (c > RLDI_WIN_FIXED_MAX || aux == RLDI_WIN_ANCHOR_ELASTIC || now_ns >= end ||
                (tat & RLDI_WIN_DENY) || n > c)
                return RLDI_TAKE_MORE;
            ntat = tat;
            nfv = (fv & RLDI_VER_MASK) | n;
            left = c - n;
            reset = end - now_ns;
            win = win_id(end / period);
        } else if (algo == RLDI_ALGO_SLIDING) {
            if (c > RLDI_WIN_SLIDING_MAX || aux == 0 || aux > UINT64_MAX / (RLDI_WIN_SUBS + 2))
                return RLDI_TAKE_MORE;
            uint64_t kabs = now_ns / aux, head = rldi_win_head(tat);
            int64_t d = rldi_win_dist(head, kabs & RLDI_WIN_IDX_MASK);
            uint64_t n = rldi_win_headcnt(tat) + cost, total = (uint32_t)fv + n;
            if (d > 0 || d < -(INT64_C(1) << 38) || total > c)
                return RLDI_TAKE_MORE;      /* the head moves (ring first), or no room */
            ntat = rldi_win_pack(head, n);
            left = c - total;
            /* full again when this sub-window leaves, 17 after the head's */
            reset = (kabs + (uint64_t)(-d) + RLDI_WIN_SUBS + 1) * aux - now_ns;
            win = win_id(head);
        } else {
            return RLDI_TAKE_MORE;
        }
        if (!rldi_cas16_halves(&sl->tat, &tat, &fv, ntat, nfv))
            continue;                       /* lost a race: decide again on the new word */
        rldi_win_last = (rldi_win_take_rec){ s->base, h.slot, h.gen, win };
        if (out)
            *out = (rldi_verdict){ .limit = c, .remaining = left, .retry_after_ns = 0,
                                   .reset_after_ns = reset, .flags = 0, .waiters = 0,
                                   .window = win };
        return 0;
    }
}

/* Take (or, DRY, decide) COST at NOW behind the queue (EXTRA: its tokens, ~0 to read them
 * from the slot) unless FLAGS barge. */
static int take(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now, unsigned flags,
                uint64_t extra_in, bool dry, rldi_u128 word, rldi_verdict *out)
{
    uint64_t now_ns = rldi_fp_to_ns(now);
    for (;;) {
        wview v;
        int r = wview_fill(c, word, &v);
        if (r < 0)
            return r;
        if ((!c->ring && v.p.algo == RLDI_ALGO_SLIDING ? false : !wparams_ok(&v.p)) ||
            cost > v.p.count) {
            if (wview_moved(c, &v, &word))
                continue;
            return cost <= v.p.count ? -ESTALE : -E2BIG;   /* garbage: a segment writer's doing */
        }
        bool queued;
        uint64_t extra;
        if (extra_in != UINT64_MAX) {
            queued = extra_in != 0;
            extra = extra_in;
        } else {
            queued = queue_ahead(s, &v, flags, now_ns);
            extra = queued ? rldi_cell_queued(c) | 1 : 0;
        }
        /* no verdict is built unless asked for (a refusal's wait is the costly part); the
         * window an admission took from is recorded for rld_refund either way */
        uint32_t win = 0;
        r = v.p.algo == RLDI_ALGO_FIXED
                ? take_fixed(c, &v, cost, now_ns, queued, extra, dry, &word, out, &win)
            : !c->ring ? take_ksl(c, &v, cost, now_ns, queued, extra, dry, &word, out, &win)
                       : take_sliding(c, c->ring, &v, cost, now_ns, queued, extra, dry, &word,
                                      out, &win);
        if (r == 0 && !dry && cost)
            rldi_win_last = (rldi_win_take_rec){ s->base, c->hslot, c->gen, win };
        if (r != 1)
            return r;
    }
}

int rldi_win_take(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                  unsigned flags, rldi_u128 word, rldi_verdict *out)
{
    return take(s, c, cost, now, flags, UINT64_MAX, false, word, out);
}

int rldi_win_probe(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                   unsigned flags, rldi_verdict *out)
{
    return take(s, c, cost, now, flags, UINT64_MAX, true, rldi_load16_split(c->word), out);
}

int rldi_win_estimate(const rldi_seg *s, const rldi_cell *c, uint64_t extra, uint64_t cost,
                      rldi_u128 now, rldi_verdict *out)
{
    int r = take(s, c, cost, now, 0, extra, true, rldi_load16_split(c->word), out);
    if (r == 0)
        out->retry_after_ns = 0;          /* fits now */
    return r == -EAGAIN ? 0 : r;
}

/* The state now, taking nothing; retry_after > 0 only in debt (more taken than COUNT),
 * until that is no longer so. */
int rldi_win_peek(const rldi_seg *s, const rldi_cell *c, rldi_u128 now, rldi_verdict *out)
{
    uint64_t now_ns = rldi_fp_to_ns(now);
    rldi_u128 word = rldi_load16_split(c->word);
    for (;;) {
        wview v;
        int r = wview_fill(c, word, &v);
        if (r < 0)
            return r;
        rldi_verdict vd;
        if (!c->ring && v.p.algo == RLDI_ALGO_SLIDING) {
            r = peek_ksl(&v, now_ns, &vd);
        } else if (!wparams_ok(&v.p)) {
            r = -ESTALE;
        } else if (v.p.algo == RLDI_ALGO_FIXED) {
            fixed_at f;
            fixed_now(&v, now_ns, &f);
            fixed_verdict(&vd, &v, now_ns, f.end, f.count,
                          f.count > v.p.count || f.deny ? f.end - now_ns : 0,
                          win_id(f.end / v.p.period_ns));
            if (f.deny)
                vd.remaining = 0;
        } else {
            sliding_at a;
            sliding_now(c->ring, &v, now_ns, &a);
            sliding_cnt(c->ring, &a);
            uint64_t wait = 0, total = a.sum + a.kc;
            if (total > v.p.count) {          /* in debt: until enough has left */
                uint64_t cnt[RLDI_WIN_SUBS + 1];
                memcpy(cnt, a.cnt, sizeof(cnt));
                for (uint64_t m = 1; m <= RLDI_WIN_SUBS + 1 && total > v.p.count; m++) {
                    total -= cnt[m - 1];
                    wait = (a.k_abs + m) * v.p.aux_ns - now_ns;
                }
            }
            sliding_verdict(&vd, &v, &a, now_ns, 0, wait);
        }
        if (wview_moved(c, &v, &word))
            continue;
        if (r == 0) {
            vd.waiters = rldi_cell_waiters(c);
            *out = vd;
        }
        return r;
    }
}

/*
 * Give back AMOUNT taken in WINDOW (rld_result.window): to that window or sub-window while
 * it is current; after that there is nothing to give back to (it no longer counts, or still
 * does as part of the past that leaves the window in its time). -EOPNOTSUPP for WINDOW 0:
 * the tokens may come from an earlier window, and giving them to this one could over-admit.
 */
int rldi_win_refund(const rldi_seg *s, const rldi_cell *c, uint64_t amount, uint32_t window,
                    rldi_u128 now)
{
    uint64_t now_ns = rldi_fp_to_ns(now);
    rldi_u128 word = rldi_load16_split(c->word);
    for (;;) {
        wview v;
        int r = wview_fill(c, word, &v);
        if (r < 0)
            return r;
        bool keyed_sliding = !c->ring && v.p.algo == RLDI_ALGO_SLIDING;
        if ((!keyed_sliding && !wparams_ok(&v.p)) || window == 0 || amount == 0) {
            if (wview_moved(c, &v, &word))
                continue;
            return !keyed_sliding && !wparams_ok(&v.p) ? -ESTALE
                   : window == 0 && amount                 ? -EOPNOTSUPP : 0;
        }
        rldi_u128 want;
        if (keyed_sliding) {
            r = refund_ksl(&v, amount, window, now_ns, &want);
            if (r != 0) {
                if (wview_moved(c, &v, &word))
                    continue;
                return r < 0 ? r : 0;
            }
        } else if (v.p.algo == RLDI_ALGO_FIXED) {
            uint64_t e = RLDI_WIN_END(v.lo);
            if (now_ns >= e || win_id(e / v.p.period_ns) != window) {
                if (wview_moved(c, &v, &word))
                    continue;
                return 0;                  /* that window is over */
            }
            uint64_t cnt = v.frac > amount ? v.frac - amount : 0;
            want = wword(v.lo, (uint32_t)cnt, v.ver);
        } else {
            uint64_t head = rldi_win_head(v.lo), hc = rldi_win_headcnt(v.lo);
            sliding_at a;
            sliding_now(c->ring, &v, now_ns, &a);
            if (a.k != head || win_id(head) != window) {
                if (wview_moved(c, &v, &word))
                    continue;
                return 0;                  /* that sub-window is in the past */
            }
            want = wword(rldi_win_pack(head, hc > amount ? hc - amount : 0), v.frac, v.ver);
        }
        if (rldi_cas16(c->word, &word, want))
            return 0;
    }
}

/* Take AMOUNT without asking: into debt up to MAX_DEBT_NS's worth of the window's tokens
 * (COUNT per PERIOD); -ERANGE beyond, nothing taken. */
int rldi_win_debit(const rldi_seg *s, const rldi_cell *c, uint64_t amount, uint64_t max_debt_ns,
                   rldi_u128 now)
{
    uint64_t now_ns = rldi_fp_to_ns(now);
    rldi_u128 word = rldi_load16_split(c->word);
    for (;;) {
        wview v;
        int r = wview_fill(c, word, &v);
        if (r < 0)
            return r;
        bool keyed_sliding = !c->ring && v.p.algo == RLDI_ALGO_SLIDING;
        if (!wusable(c, &v)) {              /* (no division by a period of 0 below) */
            if (wview_moved(c, &v, &word))
                continue;
            return -ESTALE;
        }
        /* the debt's tokens, at most 2^32 - 1: compared before the conversion, which is
         * undefined for a value past 2^64 (COUNT x MAX_DEBT / PERIOD reaches 10^20) */
        uint64_t cnt = v.p.count;
        long double debt = (long double)cnt * (long double)max_debt_ns / (long double)v.p.period_ns;
        uint64_t cap = cnt + (debt < (long double)UINT32_MAX ? (uint64_t)debt : UINT32_MAX);
        rldi_u128 want = 0;
        if (keyed_sliding) {
            r = debit_ksl(&v, amount, cap, now_ns, &want);
        } else if (v.p.algo == RLDI_ALGO_FIXED) {
            fixed_at f;
            fixed_now(&v, now_ns, &f);
            if (cap > RLDI_WIN_FIXED_MAX)
                cap = RLDI_WIN_FIXED_MAX;
            if (amount > cap || f.count + amount > cap)
                r = -ERANGE;
            want = wword(f.lo, (uint32_t)(f.count + amount), v.ver);
        } else {
            rldi_ring *ring = c->ring;
            uint64_t head = rldi_win_head(v.lo);
            sliding_at a;
            sliding_now(ring, &v, now_ns, &a);
            if (cap > RLDI_WIN_SLIDING_MAX)
                cap = RLDI_WIN_SLIDING_MAX;
            if (amount > cap || a.kc + amount > RLDI_WIN_SLIDING_MAX ||
                a.sum + a.kc + amount > cap)
                r = -ERANGE;
            else if (a.k != head)
                ring_put(ring, head, rldi_win_headcnt(v.lo));
            want = wword(rldi_win_pack(a.k, a.kc + amount), (uint32_t)a.sum, v.ver);
        }
        if (r < 0 || amount == 0) {
            if (wview_moved(c, &v, &word))
                continue;
            return r;
        }
        if (rldi_cas16(c->word, &word, want))
            return 0;
    }
}

/* ---- the upstream's word: rld_penalize, rld_sync ----------------------------------------- */

/*
 * Fixed: from NOW_NS on, at most R before PX = NOW_NS + X. *WANT the word to publish, true
 * when there is one (false: the state holds it already). docs/DESIGN.md has the cases:
 *   R = 0     a DENY hold until PX (or the later end of a hold under way), carrying the
 *             window's count into the wall-clock window PX falls in when that is its own;
 *   R > 0     within the current window: its count raised to COUNT - R; beyond its end: a
 *             HOLD until PX counting every admission (at most R more), carried at its end.
 * A DENY hold ending before PX is extended to PX unless R covers all that could come after
 * it (it cannot both deny and then count): toward denying.
 */
static bool sync_fixed(const wview *v, uint64_t r, uint64_t x, uint64_t now_ns, rldi_u128 *want)
{
    if (now_ns >= RLDI_WIN_DENY || x >= RLDI_WIN_DENY - now_ns)
        return false;         /* an end past 2^62 ns would run into the hold's flag bits */
    uint64_t c = v->p.count, period = v->p.period_ns, px = now_ns + x;
    uint64_t target = r < c ? c - r : 0;
    fixed_at f;
    fixed_now(v, now_ns, &f);
    bool hold = (f.lo & RLDI_WIN_HOLD) != 0;
    int64_t off = rldi_win_wall_offset();
    /* what the windows could admit from NOW_NS to PX at most: this one's room, then whole
     * windows (a hold's end is followed by its window's rest, at most one more) */
    uint64_t later = px > f.end ? (px - f.end + period - 1) / period + (hold ? 1 : 0) : 0;
    uint64_t room = f.deny ? 0 : f.count < c ? c - f.count : 0;
    bool covered = later > (UINT64_MAX - room) / c ? false : r >= room + later * c;
    uint64_t nlo, ncount;
    if (r == 0 || f.deny) {
        if (covered || (f.deny && px <= f.end) || (!f.deny && f.count >= c && px <= f.end))
            return false;                       /* nothing more can come before PX */
        uint64_t ne = hold && f.end > px ? f.end : px;
        nlo = ne | RLDI_WIN_HOLD | RLDI_WIN_DENY;
        ncount = wall_end(v, off, ne - 1) == wall_end(v, off, f.end - 1) ? f.count : 0;
    } else if (px <= f.end) {
        if (f.count >= target)
            return false;
        nlo = f.lo;
        ncount = target;
    } else {
        if (covered)
            return false;
        nlo = px | RLDI_WIN_HOLD;
        ncount = f.count > target ? f.count : target;
    }
    *want = wword(nlo, (uint32_t)ncount, v->ver);
    return nlo != v->lo || ncount != v->frac;
}

/*
 * Sliding: from NOW_NS on, at most R before NOW_NS + X, by phantom tokens (counted, never
 * admitted) placed where they count exactly until the last sub-window before NOW_NS + X,
 * kx. First the head moves up to k, the sub-window of NOW_NS, as a take's would (a CAS of
 * its own: *WANT, true). With the head at k:
 *   kx <= k        every admission before then counts in k: S + c_k >= COUNT - R (word)
 *   kx <= k + 16   sub-window j = kx - 16 counts for every sub-window up to kx and leaves
 *                  right after: j raised so that j..k hold COUNT - R (the ring, or c_k when
 *                  j = k), and S at least what the ring now holds for k-16..k-1
 *   beyond         the head jumps to j (admissions until j count there, later than they
 *                  are), holding max(COUNT - R, the past tokens the jump takes out of the
 *                  window): nothing the window counted is forgotten early
 * A ring entry of the past only rises (ring_put), to a target computed from the others, so
 * a retried attempt raises to the same value. A process moving the head reads the ring and
 * publishes with a CAS: a raise must be followed by a CAS that changes the word (*FORCE,
 * kept across attempts: S + 1 when nothing else changes), or a mover that read the ring
 * before the raise could still publish a sum without it. docs/DESIGN.md proves the bound.
 */
#define SYNC_MOVE 2     /* sync_sliding: *WANT only moves the head up to now; then again */

static int sync_sliding(rldi_ring *ring, const wview *v, uint64_t r, uint64_t x, uint64_t now_ns,
                        rldi_u128 *want, bool *force)
{
    uint64_t c = v->p.count, w = v->p.aux_ns, target = r < c ? c - r : 0;
    uint64_t head = rldi_win_head(v->lo), hc = rldi_win_headcnt(v->lo);
    if (x > UINT64_MAX - now_ns)
        return false;
    sliding_at a;
    sliding_now(ring, v, now_ns, &a);
    uint64_t kx = (now_ns + x - 1) / w;
    if (kx > a.k_abs + RLDI_WIN_SUBS) {
        /* beyond the window's reach: at most COUNT in any PERIOD already bounds it when R
         * covers that many periods */
        uint64_t periods = (x + v->p.period_ns - 1) / v->p.period_ns;
        if (periods <= UINT64_MAX / c && r >= periods * c)
            return false;
        uint64_t j_abs = kx - RLDI_WIN_SUBS;
        sliding_at aj;
        sliding_now(ring, v, j_abs * w, &aj);   /* the window at j, from the same state */
        uint64_t old = a.sum + a.kc, excluded = old > aj.sum ? old - aj.sum : 0;
        uint64_t f = target > excluded ? target : excluded;
        ring_put(ring, head, hc);
        *want = wword(rldi_win_pack(aj.k, f < RLDI_WIN_SLIDING_MAX ? f : RLDI_WIN_SLIDING_MAX),
                      (uint32_t)aj.sum, v->ver);
        return true;
    }
    if (a.k != head) {                          /* the head to now first, as a take */
        ring_put(ring, head, hc);
        *want = wword(rldi_win_pack(a.k, a.kc), (uint32_t)a.sum, v->ver);
        return SYNC_MOVE;
    }
    uint64_t nkc = a.kc, nsum = a.sum;
    if (kx > a.k_abs && kx - a.k_abs == RLDI_WIN_SUBS) {
        nkc = a.kc > target ? a.kc : target;    /* j = k */
    } else if (kx > a.k_abs) {
        uint64_t ij = kx - a.k_abs;             /* j = k - 16 + ij: cnt[ij] */
        sliding_cnt(ring, &a);
        uint64_t others = a.kc;
        for (uint64_t i = ij + 1; i < RLDI_WIN_SUBS; i++)
            others += a.cnt[i];
        if (target > others && a.cnt[ij] < target - others) {
            ring_put(ring, (a.k - RLDI_WIN_SUBS + ij) & RLDI_WIN_IDX_MASK, target - others);
            *force = true;
        }
        uint64_t held = 0;                      /* the ring as it is now, raise included */
        for (uint64_t i = 0; i < RLDI_WIN_SUBS; i++)
            held += ring_get(ring, (a.k - RLDI_WIN_SUBS + i) & RLDI_WIN_IDX_MASK);
        nsum = held > nsum ? held : nsum;
    }
    if (nsum + nkc < target)                    /* while the head stays at k */
        nsum = target - nkc;
    if (nsum == a.sum && nkc == a.kc) {
        if (!*force)
            return false;
        nsum++;                                 /* a raise must change the word */
    }
    *want = wword(rldi_win_pack(a.k, nkc), (uint32_t)nsum, v->ver);
    return true;
}

int rldi_win_sync(const rldi_seg *s, const rldi_cell *c, uint64_t remaining, uint64_t reset_ns,
                  rldi_u128 now, rldi_sync_out *out)
{
    uint64_t now_ns = rldi_fp_to_ns(now);
    rldi_u128 word = rldi_load16_split(c->word);
    bool force = false;
    for (;;) {
        wview v;
        int r = wview_fill(c, word, &v);
        if (r < 0)
            return r;
        if (!c->ring && v.p.algo == RLDI_ALGO_SLIDING) {
            /* a key's sliding window has no ring and packs its counts in the word: the
             * phantom tokens of sync_sliding have nowhere to go (rld.h: -EOPNOTSUPP) */
            if (wview_moved(c, &v, &word))
                continue;
            return -EOPNOTSUPP;
        }
        rldi_u128 want = 0;
        int write = 0;
        if (wparams_ok(&v.p) && reset_ns)
            write = v.p.algo == RLDI_ALGO_FIXED
                        ? sync_fixed(&v, remaining, reset_ns, now_ns, &want)
                        : sync_sliding(c->ring, &v, remaining, reset_ns, now_ns, &want, &force);
        if (!write) {
            if (wview_moved(c, &v, &word))
                continue;
            return wparams_ok(&v.p) ? 0 : -ESTALE;
        }
        if (!rldi_cas16(c->word, &word, want))
            continue;
        if (write == SYNC_MOVE) {           /* the head is at now: the sync itself next */
            word = want;
            continue;
        }
        if (out) {
            out->changed = true;
            out->waiters = v.waiters;
        }
        return 0;
    }
}

/* ---- the daemon's writes ------------------------------------------------------------------ */

rldi_u128 rldi_win_fresh(const rldi_bank *b, rldi_u128 now, uint32_t ver)
{
    uint64_t lo = 0;
    if (RLDI_BANK_ALGO(b->t_hi) == RLDI_ALGO_SLIDING && b->inv_t)
        lo = rldi_win_pack(rldi_fp_to_ns(now) / b->inv_t, 0);
    return wword(lo, 0, ver);
}

rldi_u128 rldi_win_carry(const rldi_bank *ob, const rldi_bank *nb, rldi_ring *ring,
                         rldi_u128 word, rldi_u128 now, uint32_t ver)
{
    uint64_t lo = (uint64_t)word;
    uint32_t frac = (uint32_t)(word >> 64);
    if (RLDI_BANK_ALGO(nb->t_hi) == RLDI_ALGO_FIXED)
        return wword(lo, frac, ver);      /* the window keeps its end and what it holds */
    if (ob->inv_t == nb->inv_t)
        return wword(lo, frac, ver);      /* same sub-windows: all of it carries */
    /* New sub-windows: everything the window holds is put in the current one, where it
     * leaves later than it would have (toward denying); the ring no longer means anything. */
    for (unsigned i = 0; i < RLDI_RING_ENTRIES; i++)
        rldi_store_relaxed(&ring->e[i], 0);
    uint64_t held = rldi_win_headcnt(lo) + frac;
    if (held > RLDI_WIN_SLIDING_MAX)
        held = RLDI_WIN_SLIDING_MAX;
    return wword(rldi_win_pack(rldi_fp_to_ns(now) / nb->inv_t, held), 0, ver);
}


/* ---- keys: is a window empty (keys.c evicts keys whose state a new key would have) ----- */

bool rldi_win_idle(const rldi_bank *b, rldi_u128 word, rldi_u128 now)
{
    uint64_t lo = (uint64_t)word, now_ns = rldi_fp_to_ns(now), e = RLDI_WIN_END(lo);
    uint32_t count = (uint32_t)(word >> 64);
    if (RLDI_BANK_ALGO(b->t_hi) == RLDI_ALGO_FIXED) {
        if (!(lo & RLDI_WIN_HOLD))
            return count == 0 || now_ns >= e;     /* nothing in it, or it ended */
        /* a hold: idle once over, and once its count (carried) is over too */
        if (now_ns < e)
            return false;
        if (count == 0 || b->t_lo == 0)
            return true;
        wview v = { .p = { RLDI_ALGO_FIXED, b->t_lo, b->burst, b->inv_t } };
        return now_ns >= wall_end(&v, rldi_win_wall_offset(), e - 1);
    }
    /* a key's sliding window: nothing left in it */
    wview v = { .lo = lo, .frac = count };
    v.p.period_ns = b->t_lo;
    v.p.count = b->burst;
    ksl k;
    uint64_t cnt[RLDI_WIN_MAX_SUBS], kabs;
    uint32_t kidx;
    if (!ksl_of(&v.p, &k))
        return true;                          /* unusable: nothing to keep */
    ksl_now(&k, &v, now_ns, cnt, &kidx, &kabs);
    for (uint32_t i = 0; i <= k.n; i++)
        if (cnt[i])
            return false;
    return true;
}

rldi_u128 rldi_win_fresh_key(const rldi_bank *b, rldi_u128 now, uint32_t ver)
{
    uint64_t now_ns = rldi_fp_to_ns(now);
    if (RLDI_BANK_ALGO(b->t_hi) == RLDI_ALGO_FIXED) {
        /* the window of NOW, nothing in it: a caller whose clock read is older counts in it
         * too (never in a window of the key's previous life) */
        wview v = { .lo = 0 };
        v.p.period_ns = b->t_lo;
        v.p.aux_ns = b->inv_t;
        if (v.p.period_ns == 0)
            return wword(0, 0, ver);
        fixed_at f;
        fixed_now(&v, now_ns, &f);
        return wword(f.lo, 0, ver);
    }
    rldi_winparams p = { RLDI_ALGO_SLIDING, b->t_lo, b->burst, 0 };
    ksl k;
    uint64_t head = 0;
    if (ksl_of(&p, &k))
        head = (uint32_t)(now_ns / k.w);                 /* now's sub-window, nothing in it */
    return wword(0, (uint32_t)head, ver);
}
