/*
 * test_window.c - unit tests of common/window.c, the sliding and fixed window algorithms,
 * through bucket.c's entry points (as librld and the daemon call them) on a segment in
 * memory, with simulated clocks.
 *
 * Why: the window algorithms promise "never more than COUNT in any PERIOD" (sliding) and
 * "never more than COUNT per wall-clock window" (fixed) under any interleaving; an error
 * here admits silently. So, besides exact values (retry_after to the ns, reset_after at the
 * boundary), the randomized parts replay what concurrent processes do to the state word:
 * callers whose clock reads are stale by up to several sub-windows when their CAS lands (a
 * preempted process, a lost race retried with the old "now"), refunds to the window the
 * tokens came from, and then check the bound the way an outside observer can (docs/
 * DESIGN.md, "Window algorithms"): every admission happened at some time between its
 * caller's clock read (t_before) and the return (t_after), so the admissions with
 * t_before >= x and t_after < x + PERIOD all lie in [x, x + PERIOD) and must sum to at most
 * COUNT, for every x.
 *
 * Covered: sliding exactness and retry_after (never early, tight to the ns), the soundness
 * bound with stale clocks and refunds, throughput >= 16/17 of COUNT per PERIOD under
 * saturation, refund to current / past windows, window 0, debit and its cap, peek in debt,
 * estimate behind a queue, fixed windows at wall-clock boundaries (aligned), reset_after,
 * clock steps forward and back, carry across a change of count or period, fill (reset).
 *
 * Randomized parts use xorshift64* seeded from RLD_TEST_SEED (printed at the start).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "keys_mem.h"
#include "limitdef.h"
#include "seg_mem.h"
#include "segment.h"
#include "window.h"

#define MS  1000000ull
#define SEC 1000000000ull

#define TEST_SEED_DEFAULT 0x9e3779b97f4a7c15ull
#include "test_rng.h"

/* ---- a segment in memory, one limit per test ------------------------------------------ */

/* Slot 0 becomes a limit of COUNT per PERIOD with ALGO (ALIGN for fixed), fresh. */
static rldi_handle make_limit(uint32_t algo, uint64_t count, uint64_t period, uint64_t align)
{
    rldi_limitdef def;
    memset(&def, 0, sizeof(def));
    snprintf(def.name, sizeof(def.name), "w");
    def.count = count;
    def.period_ns = period;
    def.algo = algo;
    def.align_ns = align;
    def.align_set = align != 0;
    return seg_mem_limit(&def, 0xa5);
}

/* Change slot 0's definition, carrying the state (a reload that keeps the algorithm). */
static void change_limit(uint32_t algo, uint64_t count, uint64_t period, uint64_t align)
{
    rldi_limitdef def;
    memset(&def, 0, sizeof(def));
    snprintf(def.name, sizeof(def.name), "w");
    def.count = count;
    def.period_ns = period;
    def.algo = algo;
    def.align_ns = align;
    def.align_set = align != 0;
    rldi_bank b;
    assert_int_equal(rldi_limitdef_bank(&def, &b), 0);
    rldi_bucket_publish(&seg.slots[0], &seg.rings[0], &b, true, RLDI_DEBT_MAX_NS);
}

static int take(rldi_handle h, uint64_t cost, uint64_t now, rldi_verdict *v)
{
    return rldi_bucket_take(&seg, h, cost, rldi_fp_from_ns(now), 0, v);
}

static uint64_t remaining(rldi_handle h, uint64_t now)
{
    rldi_verdict v;
    assert_int_equal(rldi_bucket_peek(&seg, h, rldi_fp_from_ns(now), &v), 0);
    return v.remaining;
}

/* A time well after the publish (which read the real clock), on a sub-window boundary. */
static uint64_t start_time(uint64_t w)
{
    uint64_t t = rldi_mono_ns() + 10 * SEC;
    return (t / w + 1) * w;
}

/* ---- sliding ----------------------------------------------------------------------------- */

/* 10/s: w = 62.5 ms. All 10 at t0 (a sub-window's start): the 11th fits exactly when that
 * sub-window leaves, 17 sub-windows later, and not a ns before. */
static void test_sliding_exact(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    uint64_t w = rldi_win_sub_width(SEC);
    assert_int_equal(w, 62500000);
    uint64_t t0 = start_time(w) + 5 * MS;
    rldi_verdict v;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(take(h, 1, t0, &v), 0);
        assert_int_equal(v.remaining, 9 - i);
        assert_int_equal(v.limit, 10);
        assert_int_equal(v.retry_after_ns, 0);
        assert_true(v.window != 0);
    }
    /* full again when the sub-window of t0 leaves: (k + 17) * w */
    uint64_t k = t0 / w, leaves = (k + 17) * w;
    assert_int_equal(v.reset_after_ns, leaves - t0);
    assert_int_equal(take(h, 1, t0 + 1, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, leaves - t0 - 1);
    assert_int_equal(v.remaining, 0);
    /* the oldest call leaves the 1 s window at t0 + 1 s: retry_after is within w after it */
    assert_true(t0 + 1 + v.retry_after_ns >= t0 + SEC);
    assert_true(t0 + 1 + v.retry_after_ns <= t0 + SEC + w);
    assert_int_equal(take(h, 1, leaves - 1, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, 1);
    assert_int_equal(take(h, 10, leaves, &v), 0);
    assert_int_equal(take(h, 1, leaves, &v), -EAGAIN);
    /* cost 0 passes, more than COUNT never can */
    assert_int_equal(take(h, 0, leaves, &v), 0);
    assert_int_equal(take(h, 11, leaves, &v), -E2BIG);
    /* a cost of 3 spread: 2 at a, 8 at a + 5w: at a + 17w the first 2 left, 2 fit, not 3 */
    uint64_t a = leaves + 100 * w;
    assert_int_equal(take(h, 2, a, &v), 0);
    assert_int_equal(take(h, 8, a + 5 * w, &v), 0);
    assert_int_equal(take(h, 3, a + 17 * w, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, 5 * w);
    assert_int_equal(v.remaining, 2);
    assert_int_equal(take(h, 2, a + 17 * w, &v), 0);
}

/* Periods that 16 does not divide: w rounds up, still never more than COUNT per PERIOD. */
static void test_sliding_odd_period(void **state)
{
    (void)state;
    uint64_t period = 300 * MS + 7;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 37, period, 0);
    uint64_t w = rldi_win_sub_width(period);
    assert_true(w * 16 >= period && w * 15 < period);
    uint64_t t = start_time(w);
    /* greedy, one token per ns-step probe: admissions recorded, bound checked exactly */
    enum { N = 4000 };
    static uint64_t at[N];
    size_t n = 0;
    rldi_verdict v;
    while (n < N) {
        int r = take(h, 1, t, &v);
        if (r == 0) {
            at[n++] = t;
            t += rnd() % (w / 3);
        } else {
            assert_int_equal(r, -EAGAIN);
            assert_true(v.retry_after_ns > 0);
            t += v.retry_after_ns;
        }
    }
    size_t lo = 0;
    for (size_t i = 0; i < n; i++) {
        while (at[lo] + period <= at[i])
            lo++;
        assert_true(i - lo + 1 <= 37);
    }
}

/* Stale clocks, refunds, mixed costs: the outside observer's bound. */
typedef struct adm {
    uint64_t t_before, t_after, cost;
} adm;

static void check_bound(const adm *a, size_t n, uint64_t period, uint64_t count)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = a[i].t_before, sum = 0;
        for (size_t j = 0; j < n; j++)
            if (a[j].t_before >= x && a[j].t_after < x + period)
                sum += a[j].cost;
        if (sum > count)
            fail_msg("%" PRIu64 " admitted within [%" PRIu64 ", +%" PRIu64 "): more than %" PRIu64,
                     sum, x, period, count);
    }
}

static void test_sliding_stale_random(void **state)
{
    (void)state;
    for (int round = 0; round < 40; round++) {
        reseed(100 + (uint64_t)round);
        uint64_t count = 1 + rnd() % 40, period = (50 + rnd() % 500) * MS + rnd() % 1000;
        rldi_handle h = make_limit(RLDI_ALGO_SLIDING, count, period, 0);
        uint64_t w = rldi_win_sub_width(period);
        uint64_t real = start_time(w);
        enum { PROCS = 5, N = 1500 };
        static adm a[N];
        size_t n = 0;
        /* each process: a clock read not yet used (stale by the time it is) */
        uint64_t pending[PROCS];
        for (int p = 0; p < PROCS; p++)
            pending[p] = real;
        for (int step = 0; step < 20000 && n < N; step++) {
            real += rnd() % (w / 4 + 1);
            int p = (int)(rnd() % PROCS);
            uint64_t t = pending[p];            /* read at some earlier real time */
            uint64_t cost = 1 + rnd() % 3;
            if (cost > count)
                cost = count;
            rldi_verdict v;
            int r = take(h, cost, t, &v);
            if (r == 0) {
                assert_true(n < N);
                a[n++] = (adm){ t, real, cost };
                /* sometimes give some back right away, to the window it came from */
                if (rnd() % 4 == 0) {
                    uint64_t back = 1 + rnd() % cost, before = remaining(h, real);
                    assert_int_equal(rldi_bucket_refund(&seg, h, back, v.window,
                                                        rldi_fp_from_ns(real)), 0);
                    /* what came back (0 when the sub-window is no longer current) is no
                     * longer admitted */
                    uint64_t given = remaining(h, real) - before;
                    assert_true(given <= back);
                    a[n - 1].cost -= given;
                }
            } else {
                assert_int_equal(r, -EAGAIN);
                assert_true(v.retry_after_ns > 0);
            }
            /* the next read of P: now, or stale by up to 3 sub-windows when used */
            pending[p] = rnd() % 3 == 0 && real > 3 * w ? real - rnd() % (3 * w) : real;
            if (pending[p] < t && rnd() % 2)
                pending[p] = t;
        }
        check_bound(a, n, period, count);
        assert_true(n > 10);
    }
}

/* A refund frees room in its window, and not in another. */
static void test_sliding_refund(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    uint64_t w = rldi_win_sub_width(SEC);
    uint64_t t = start_time(w);
    rldi_verdict v;
    assert_int_equal(take(h, 6, t, &v), 0);
    uint32_t win = v.window;
    assert_int_equal(rldi_bucket_refund(&seg, h, 4, win, rldi_fp_from_ns(t + 1)), 0);
    assert_int_equal(remaining(h, t + 1), 8);
    /* never more than the sub-window holds */
    assert_int_equal(rldi_bucket_refund(&seg, h, 100, win, rldi_fp_from_ns(t + 2)), 0);
    assert_int_equal(remaining(h, t + 2), 10);
    assert_int_equal(take(h, 5, t + 3, &v), 0);
    /* the next sub-window: the refund of the old one's tokens gives nothing back */
    assert_int_equal(take(h, 1, t + w, &v), 0);
    assert_int_equal(remaining(h, t + w), 4);
    assert_int_equal(rldi_bucket_refund(&seg, h, 5, win, rldi_fp_from_ns(t + w + 1)), 0);
    assert_int_equal(remaining(h, t + w + 1), 4);
    /* window 0: not known: nothing back, said */
    assert_int_equal(rldi_bucket_refund(&seg, h, 1, 0, rldi_fp_from_ns(t + w + 2)), -EOPNOTSUPP);
    assert_int_equal(remaining(h, t + w + 2), 4);
    /* a refund of 0 is nothing, whatever the window */
    assert_int_equal(rldi_bucket_refund(&seg, h, 0, 0, rldi_fp_from_ns(t + w + 2)), 0);
    /* a window id of another limit or another time: nothing back */
    assert_int_equal(rldi_bucket_refund(&seg, h, 1, v.window ^ 0x40, rldi_fp_from_ns(t + w + 3)), 0);
    assert_int_equal(remaining(h, t + w + 3), 4);
    assert_int_equal(rldi_bucket_refund(&seg, h, 1, v.window, rldi_fp_from_ns(t + w + 3)), 0);
    assert_int_equal(remaining(h, t + w + 3), 5);
}

/* Saturating demand: at least 16/17 of COUNT per PERIOD, never more than COUNT per PERIOD. */
static void test_sliding_throughput(void **state)
{
    (void)state;
    reseed(7);
    uint64_t count = 1000, period = SEC;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, count, period, 0);
    uint64_t w = rldi_win_sub_width(period);
    uint64_t t0 = start_time(w), t = t0, admitted = 0;
    uint64_t end = t0 + 100 * period;
    rldi_verdict v;
    while (t < end) {
        uint64_t cost = 1 + rnd() % 4;
        if (take(h, cost, t, &v) == 0)
            admitted += cost;
        t += rnd() % (200 * 1000);          /* a call every 0..200 us */
    }
    double per_period = (double)admitted / 100.0;
    assert_true(admitted <= count * 101);
    if (per_period < count * 16.0 / 17.0 - 4)
        fail_msg("throughput %.1f per period, below 16/17 of %" PRIu64, per_period, count);
}

/* Debit: into debt up to max_debt's worth; peek says when the debt has left. */
static void test_sliding_debit_peek(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    seg.meta[0].max_debt_ns = SEC;                 /* one more window's worth: 10 */
    uint64_t w = rldi_win_sub_width(SEC), t = start_time(w);
    rldi_verdict v;
    assert_int_equal(rldi_bucket_debit(&seg, h, 15, rldi_fp_from_ns(t)), 0);
    assert_int_equal(rldi_bucket_peek(&seg, h, rldi_fp_from_ns(t), &v), 0);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_ns, 17 * w);          /* all in one sub-window */
    assert_int_equal(rldi_bucket_debit(&seg, h, 6, rldi_fp_from_ns(t)), -ERANGE);
    assert_int_equal(rldi_bucket_debit(&seg, h, 5, rldi_fp_from_ns(t)), 0);
    assert_int_equal(take(h, 1, t + 17 * w - 1, &v), -EAGAIN);
    assert_int_equal(take(h, 10, t + 17 * w, &v), 0);
}

/* What the daemon tells a waiter behind EXTRA queued tokens. */
static void test_sliding_estimate(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 4, 800 * MS, 0);
    uint64_t w = rldi_win_sub_width(800 * MS), t = start_time(w);
    rldi_verdict v;
    assert_int_equal(take(h, 4, t, &v), 0);
    /* alone: when the 4 leave */
    assert_int_equal(rldi_bucket_estimate(&seg, h, 0, 2, rldi_fp_from_ns(t), &v), 0);
    assert_int_equal(v.retry_after_ns, 17 * w);
    /* behind 4 queued: they take the room that frees at 17w, this one waits for theirs to
     * leave, 17 sub-windows after that */
    assert_int_equal(rldi_bucket_estimate(&seg, h, 4, 2, rldi_fp_from_ns(t), &v), 0);
    assert_int_equal(v.retry_after_ns, 34 * w);
    /* behind 2: 2 of the room that frees at 17w is left for it */
    assert_int_equal(rldi_bucket_estimate(&seg, h, 2, 2, rldi_fp_from_ns(t), &v), 0);
    assert_int_equal(v.retry_after_ns, 17 * w);
    /* the grant when it is due */
    assert_int_equal(rldi_bucket_grant(&seg, h, 2, t + 17 * w, rldi_fp_from_ns(t + 17 * w), &v), 0);
    /* a huge queue: finite, growing */
    assert_int_equal(rldi_bucket_estimate(&seg, h, 4000, 1, rldi_fp_from_ns(t + 17 * w), &v), 0);
    assert_true(v.retry_after_ns >= 999 * 17 * w && v.retry_after_ns < 1100 * 17 * w);
}

/* ---- when a refused cost fits: rldi_win_wait against the model it replaced ------------- */

static int model_horizon;      /* the last model call returned the many-windows rest */

/* window.c's sliding_wait before rldi_win_wait (shifting a 17-entry array at every
 * sub-window), its body kept as it was; only the view's fields became arguments. */
static uint64_t model_sliding_wait(const uint64_t cnt0[RLDI_WIN_SUBS + 1], uint64_t sum,
                                   uint64_t kc, uint64_t k_abs, uint64_t c, uint64_t w,
                                   uint64_t now_ns, uint64_t extra, uint64_t cost)
{
    uint64_t want = extra + cost;
    uint64_t cnt[RLDI_WIN_SUBS + 1];
    memcpy(cnt, cnt0, sizeof(cnt));
    uint64_t total = sum + kc;
    model_horizon = 0;
    /* m: how many sub-windows ahead of k we look at; cnt[] is the window there */
    for (uint64_t m = 0;; m++) {
        if (m > 0) {
            total -= cnt[0];
            memmove(cnt, cnt + 1, RLDI_WIN_SUBS * sizeof(cnt[0]));
            cnt[RLDI_WIN_SUBS] = 0;
        }
        uint64_t room = total < c ? c - total : 0;
        if (want <= room)
            return m == 0 ? 0 : (k_abs + m) * w - now_ns;
        if (m > 0 && room) {              /* the queue ahead takes this sub-window's room */
            uint64_t q = room < extra ? room : extra;
            extra -= q;
            want -= q;
            cnt[RLDI_WIN_SUBS] += q;
            total += q;
        }
        if (m > (RLDI_WIN_SUBS + 1) * 64) {
            /* a queue of many windows: the rest at COUNT per 17 sub-windows */
            uint64_t windows = want / c + 1;
            model_horizon = 1;
            return (k_abs + m) * w - now_ns + windows * (RLDI_WIN_SUBS + 1) * w;
        }
    }
}

/* window.c's ksl_wait before rldi_win_wait: a key's window, CNT0[0] the newest of N + 1. */
static uint64_t model_ksl_wait(uint32_t n, uint64_t kw, uint64_t c, const uint64_t cnt0[],
                               uint64_t kabs, uint64_t now_ns, uint64_t extra, uint64_t cost)
{
    uint64_t want = extra + cost, total = 0, cnt[RLDI_WIN_MAX_SUBS];
    model_horizon = 0;
    for (uint32_t i = 0; i <= n; i++)
        total += (cnt[i] = cnt0[i]);
    for (uint64_t m = 0;; m++) {
        if (m > 0) {
            total -= cnt[n];
            memmove(cnt + 1, cnt, n * sizeof(cnt[0]));
            cnt[0] = 0;
        }
        uint64_t room = total < c ? c - total : 0;
        if (want <= room)
            return m == 0 ? 0 : (kabs + m) * kw - now_ns;
        if (m > 0 && room) {
            uint64_t q = room < extra ? room : extra;
            extra -= q;
            want -= q;
            cnt[0] += q;
            total += q;
        }
        if (m > (uint64_t)(n + 1) * 64 && (model_horizon = 1))
            return (kabs + m) * kw - now_ns + (want / c + 1) * (n + 1) * kw;
    }
}

/* A count for sub-window I of SUBS: mostly empty, or a share of COUNT, or anything up to MAX
 * (debts, a ring a late writer raised, a hostile writer). */
static uint64_t rnd_cnt(uint64_t count, uint64_t max, unsigned shape)
{
    switch (shape) {
    case 0:  return rnd() % 4 == 0 ? rnd() % (count / 4 + 2) : 0;
    case 1:  return rnd() % (count / 8 + 2);
    case 2:  return rnd() % 3 == 0 ? rnd() % (count + 1) : 0;
    default: return rnd() % (max + 1);
    }
}

/* Queued tokens ahead: none (rld_try), a few, windows' worth, more than the fallback's
 * horizon, or near 2^64 (extra + cost wraps: the model's arithmetic is the reference). */
static uint64_t rnd_extra(uint64_t count)
{
    switch (rnd() % 16) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: return 0;
    case 8: case 9: case 10: return 1 + rnd() % (count + 1);
    case 11: case 12: return rnd() % (count * 40 + 1);
    case 13: return count * (1000 + rnd() % 200) + rnd() % count;
    case 14: return rnd() | 1;
    default: return UINT64_MAX - rnd() % 8;
    }
}

static uint64_t rnd_count(uint64_t max)
{
    switch (rnd() % 4) {
    case 0:  return 1 + rnd() % 8;
    case 1:  return 1 + rnd() % 100;
    case 2:  return 1 + rnd() % 100000;
    default: return 1 + rnd() % max;
    }
}

/* The named limits' wait: every state a refusal can see, and more (the ring's entries need
 * not add up to the word's sum: a late writer raises them, a hostile one writes anything). */
static void test_sliding_wait_model(void **state)
{
    (void)state;
    reseed(900);
    uint64_t nonzero = 0, fallback = 0;
    for (int it = 0; it < 200000; it++) {
        uint64_t count = rnd_count(RLDI_WIN_SLIDING_MAX);
        uint64_t w = rnd() % 2 ? rldi_win_sub_width(1 + rnd() % (1000 * SEC))
                               : 1 + rnd() % (UINT64_MAX / (RLDI_WIN_SUBS + 2));
        unsigned shape = (unsigned)(rnd() % 10 / 3);      /* 0, 1, 2: 3 in 10; 3: 1 in 10 */
        uint64_t cnt[RLDI_WIN_SUBS + 1], sum = 0;
        for (unsigned i = 0; i < RLDI_WIN_SUBS + 1; i++)
            cnt[i] = rnd_cnt(count, RLDI_WIN_SLIDING_MAX, shape);
        for (unsigned i = 0; i < RLDI_WIN_SUBS; i++)
            sum += cnt[i];
        uint64_t kc = cnt[RLDI_WIN_SUBS];
        switch (rnd() % 16) {            /* the word's sum against the ring's entries */
        case 0:  sum = sum > 0 ? sum - 1 - rnd() % sum : 0; break;
        case 1:  sum += rnd() % (count + 1); break;
        case 2:  sum = rnd() % ((uint64_t)UINT32_MAX + 1); break;
        default: break;
        }
        if (rnd() % 16 == 0)
            kc = rnd() % (RLDI_WIN_SLIDING_MAX + 1);
        uint64_t k_abs = rnd() % 2 ? rnd() % (UINT64_MAX / w) : rnd();
        /* now: in sub-window k_abs, or behind it (another process moved the head) */
        uint64_t now = k_abs * w + (rnd() % 4 ? rnd() % w : 0);
        if (rnd() % 4 == 0)
            now -= rnd() % (3 * w + 1);
        uint64_t cost = rnd() % 8 == 0 ? 0 : 1 + rnd() % count;
        if (rnd() % 4 == 0)
            cost = count;
        uint64_t extra = rnd_extra(count);
        uint64_t want = model_sliding_wait(cnt, sum, kc, k_abs, count, w, now, extra, cost);
        uint64_t got = rldi_win_wait(cnt, 1, RLDI_WIN_SUBS + 1, sum + kc, count, w, k_abs, now,
                                     extra, cost);
        if (got != want)
            fail_msg("it %d: count %" PRIu64 " w %" PRIu64 " sum %" PRIu64 " kc %" PRIu64
                     " k_abs %" PRIu64 " now %" PRIu64 " extra %" PRIu64 " cost %" PRIu64
                     ": %" PRIu64 ", the model %" PRIu64,
                     it, count, w, sum, kc, k_abs, now, extra, cost, got, want);
        nonzero += want != 0;
        fallback += model_horizon;
    }
    /* the states reached both ends: waits of a few sub-windows and the many-windows rest */
    printf("sliding wait: %" PRIu64 " refusals, %" PRIu64 " past the horizon\n", nonzero, fallback);
    assert_true(nonzero > 50000);
    assert_true(fallback > 1000);
}

/* A key's wait (no ring: the counts are the word's, N + 1 = 64 / B of them). */
static void test_ksl_wait_model(void **state)
{
    (void)state;
    reseed(901);
    uint64_t nonzero = 0, fallback = 0;
    for (int it = 0; it < 200000; it++) {
        uint64_t count = rnd_count(rnd() % 2 ? 65535 : UINT32_MAX);
        uint32_t b = 64 - (uint32_t)__builtin_clzll(count), n = 64 / b - 1;
        uint64_t mask = (UINT64_C(1) << b) - 1;
        uint64_t kw = (SEC + rnd() % (100 * SEC) + n - 1) / n;
        unsigned shape = (unsigned)(rnd() % 10 / 3);
        uint64_t cnt[RLDI_WIN_MAX_SUBS];
        for (uint32_t i = 0; i <= n; i++)
            cnt[i] = rnd_cnt(count, mask, shape);
        uint64_t kabs = rnd() % (UINT64_MAX / kw);
        uint64_t now = kabs * kw + (rnd() % 4 ? rnd() % kw : 0);
        if (rnd() % 4 == 0)
            now -= rnd() % (3 * kw + 1);
        uint64_t cost = rnd() % 8 == 0 ? 0 : 1 + rnd() % count;
        uint64_t extra = rnd_extra(count);
        uint64_t want = model_ksl_wait(n, kw, count, cnt, kabs, now, extra, cost);
        uint64_t total = 0;
        for (uint32_t i = 0; i <= n; i++)
            total += cnt[i];
        uint64_t got = rldi_win_wait(cnt + n, -1, n + 1, total, count, kw, kabs, now, extra, cost);
        if (got != want)
            fail_msg("it %d: count %" PRIu64 " n %u extra %" PRIu64 " cost %" PRIu64
                     ": %" PRIu64 ", the model %" PRIu64, it, count, n, extra, cost, got, want);
        nonzero += want != 0;
        fallback += model_horizon;
    }
    printf("key wait: %" PRIu64 " refusals, %" PRIu64 " past the horizon\n", nonzero, fallback);
    assert_true(nonzero > 50000);
    assert_true(fallback > 1000);
}

/* A key of a sliding template with a small COUNT: B = 1..3 bits a count, N + 1 = 64 / B
 * sub-windows (64 for COUNT 1), more than a named limit's 17. Exact as the named limits:
 * refused until the sub-window of its tokens leaves, N + 1 sub-windows later, admitted then;
 * peek, debit and refund on the same key. (window.c's arrays once held 17 counts: COUNT < 8
 * wrote past them, which AddressSanitizer reports.) */
static void test_key_sliding_small_count(void **state)
{
    (void)state;
    static const uint64_t secret[2] = { 5, 6 };
    static const uint64_t counts[] = { 1, 2, 3, 4, 7, 8, 255 };
    for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
        uint64_t count = counts[ci];
        uint32_t b = 64 - (uint32_t)__builtin_clzll(count), n = 64 / b - 1;
        uint64_t kw = (SEC + n - 1) / n;
        keys_mem m;
        assert_int_equal(keys_mem_make(&m, 70, RLDI_ALGO_SLIDING, count, SEC, 0, secret), 0);
        m.seg.meta[0].max_debt_ns = SEC;
        uint64_t t = (rldi_mono_ns() / kw + 1000) * kw + kw / 3;
        assert_int_equal(keys_mem_try(&m, "k", 1, count, t, NULL), 0);
        uint32_t idx, gen;
        bool created;
        rldi_u128 now = rldi_fp_from_ns(t + 1);
        assert_int_equal(rldi_key_get(&m.seg, &m.t, "k", 1, 0, false, now, &idx, &gen,
                                      &created), 0);
        rldi_handle h = { m.seg.slot_count + m.t.entry_base + idx, gen };
        uint64_t leaves = (t / kw + n + 1) * kw;
        rldi_verdict v;
        assert_int_equal(rldi_bucket_take(&m.seg, h, 1, now, 0, &v), -EAGAIN);
        assert_int_equal(v.retry_after_ns, leaves - (t + 1));
        assert_int_equal(v.reset_after_ns, leaves - (t + 1));
        assert_int_equal(v.remaining, 0);
        assert_int_equal(rldi_bucket_peek(&m.seg, h, now, &v), 0);
        assert_int_equal(v.remaining, 0);
        /* one more into debt (max_debt: a period's worth), when a count field holds it */
        uint64_t mask = (UINT64_C(1) << b) - 1;
        assert_int_equal(rldi_bucket_debit(&m.seg, h, 1, now), count + 1 <= mask ? 0 : -ERANGE);
        assert_int_equal(rldi_bucket_peek(&m.seg, h, now, &v), 0);
        assert_int_equal(v.retry_after_ns, count + 1 <= mask ? leaves - (t + 1) : 0);
        assert_int_equal(rldi_bucket_take(&m.seg, h, 1, rldi_fp_from_ns(leaves - 1), 0, &v),
                         -EAGAIN);
        assert_int_equal(v.retry_after_ns, 1);
        assert_int_equal(rldi_bucket_take(&m.seg, h, count, rldi_fp_from_ns(leaves), 0, &v), 0);
        assert_int_equal(rldi_bucket_refund(&m.seg, h, count, v.window,
                                            rldi_fp_from_ns(leaves + 1)), 0);
        assert_int_equal(rldi_bucket_peek(&m.seg, h, rldi_fp_from_ns(leaves + 1), &v), 0);
        assert_int_equal(v.remaining, count);
        keys_mem_free(&m);
    }
}

/* ---- fixed ------------------------------------------------------------------------------- */

/* Wall clock = monotonic + wall_off. Windows are the multiples of the period since the epoch,
 * plus align. */
static void test_fixed_boundaries(void **state)
{
    (void)state;
    uint64_t P = 3600 * SEC, align = 15 * 60 * SEC;
    for (int aligned = 0; aligned < 2; aligned++) {
        uint64_t al = aligned ? align : 0;
        rldi_handle h = make_limit(RLDI_ALGO_FIXED, 1000, P, al);
        uint64_t mono = rldi_mono_ns() + SEC;
        /* the wall clock says 10:40:00.5 UTC on some day */
        uint64_t wall = 1700000000ull / 86400 * 86400 * SEC + (10 * 3600 + 40 * 60) * SEC + SEC / 2;
        wall_off = (int64_t)(wall - mono);
        uint64_t boundary = aligned ? wall - (25 * 60) * SEC - SEC / 2 + P      /* 11:15 */
                                    : wall - (40 * 60) * SEC - SEC / 2 + P;     /* 11:00 */
        rldi_verdict v;
        assert_int_equal(take(h, 999, mono, &v), 0);
        assert_int_equal(v.reset_after_ns, boundary - wall);
        assert_int_equal(v.remaining, 1);
        assert_int_equal(take(h, 2, mono + 1, &v), -EAGAIN);
        assert_int_equal(v.retry_after_ns, boundary - wall - 1);
        assert_int_equal(v.reset_after_ns, boundary - wall - 1);
        assert_int_equal(take(h, 1, boundary - wall + mono - 1, &v), 0);
        assert_int_equal(take(h, 1, boundary - wall + mono - 1, &v), -EAGAIN);
        /* the boundary: all of it again */
        assert_int_equal(take(h, 1000, boundary - wall + mono, &v), 0);
        assert_int_equal(v.reset_after_ns, P);
        /* behind a queue of 1500: the rest of this window, the next, then half the one after */
        assert_int_equal(rldi_bucket_estimate(&seg, h, 1500, 1, rldi_fp_from_ns(boundary - wall + mono), &v), 0);
        assert_int_equal(v.retry_after_ns, 2 * P);
    }
}

/* A step of the wall clock during a window: the window keeps its end (never reopened early,
 * never longer than PERIOD); the next one ends at the stepped clock's boundary. */
static void test_fixed_clock_steps(void **state)
{
    (void)state;
    uint64_t P = 10 * SEC;
    rldi_handle h = make_limit(RLDI_ALGO_FIXED, 5, P, 0);
    uint64_t mono = rldi_mono_ns() + SEC;
    uint64_t wall = 1800000000ull * SEC + 2 * SEC;        /* 2 s into a window */
    wall_off = (int64_t)(wall - mono);
    rldi_verdict v;
    assert_int_equal(take(h, 5, mono, &v), 0);
    uint64_t end = mono + 8 * SEC;
    assert_int_equal(v.reset_after_ns, 8 * SEC);
    /* forward 7 s: the wall clock is past the boundary, the window is not */
    wall_off += 7 * SEC;
    assert_int_equal(take(h, 1, mono + SEC, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, end - (mono + SEC));
    /* back 20 s: still the same end */
    wall_off -= 20 * SEC;
    assert_int_equal(take(h, 1, mono + 2 * SEC, &v), -EAGAIN);
    assert_int_equal(v.reset_after_ns, end - (mono + 2 * SEC));
    /* at the end the next window starts, ending at the stepped clock's next boundary */
    assert_int_equal(take(h, 5, end, &v), 0);
    uint64_t w_now = end + (uint64_t)wall_off;
    uint64_t into = w_now % P;
    assert_int_equal(v.reset_after_ns, P - into);
    assert_true(v.reset_after_ns <= P);
    assert_int_equal(take(h, 1, end + 1, &v), -EAGAIN);
}

/* The offset read again when the next window starts comes out a little smaller (the reads'
 * jitter): the next window is still the next wall-clock window, not a few ns back in the
 * one that just ended (that gave two windows' worth in one wall-clock window). */
static void test_fixed_offset_jitter(void **state)
{
    (void)state;
    uint64_t P = 100 * MS;
    rldi_handle h = make_limit(RLDI_ALGO_FIXED, 5, P, 0);
    uint64_t mono = rldi_mono_ns() + SEC;
    wall_off = (int64_t)(1800000000ull * SEC + 30 * MS - mono);     /* 30 ms into a window */
    rldi_verdict v;
    assert_int_equal(take(h, 5, mono, &v), 0);
    uint64_t end = mono + v.reset_after_ns;
    assert_int_equal(v.reset_after_ns, 70 * MS);
    wall_off -= 40;                        /* 40 ns less: END now maps 40 ns before its boundary */
    assert_int_equal(take(h, 5, end + 1, &v), 0);
    assert_true(v.reset_after_ns > P - 1000);   /* the next window, P long (not 39 ns) */
    assert_int_equal(take(h, 1, end + 100, &v), -EAGAIN);   /* and it holds only COUNT */
}

/* Random: each wall-clock window (no steps) holds at most COUNT, under stale clocks. */
static void test_fixed_random(void **state)
{
    (void)state;
    for (int round = 0; round < 30; round++) {
        reseed(500 + (uint64_t)round);
        uint64_t count = 1 + rnd() % 20, P = (20 + rnd() % 300) * MS, al = rnd() % P;
        rldi_handle h = make_limit(RLDI_ALGO_FIXED, count, P, round % 2 ? al : 0);
        uint64_t real = rldi_mono_ns() + SEC;
        wall_off = (int64_t)(1800000000ull * SEC + rnd() % (10 * SEC) - real);
        enum { N = 3000 };
        static adm a[N];
        size_t n = 0;
        uint64_t pending = real;
        for (int step = 0; step < 20000 && n < N; step++) {
            real += rnd() % (P / 20 + 1);
            uint64_t t = pending, cost = 1 + rnd() % 2;
            if (cost > count)
                cost = count;
            rldi_verdict v;
            int r = take(h, cost, t, &v);
            if (r == 0)
                a[n++] = (adm){ t, real, cost };
            else
                assert_int_equal(r, -EAGAIN);
            pending = rnd() % 3 == 0 && real > P ? real - rnd() % (P / 3) : real;
            if (pending < t)
                pending = t;                /* one process: its clock does not go back */
        }
        /* by wall-clock window, counting those whose whole call was inside one */
        uint64_t shift = round % 2 ? al : 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t wi = (a[i].t_before + (uint64_t)wall_off - shift) / P, sum = 0;
            for (size_t j = 0; j < n; j++) {
                uint64_t b = (a[j].t_before + (uint64_t)wall_off - shift) / P;
                uint64_t e = (a[j].t_after + (uint64_t)wall_off - shift) / P;
                if (b == wi && e == wi)
                    sum += a[j].cost;
            }
            if (sum > count)
                fail_msg("round %d: %" PRIu64 " in one window of %" PRIu64, round, sum, count);
        }
        assert_true(n > 10);
    }
}

static void test_fixed_refund_debit(void **state)
{
    (void)state;
    uint64_t P = 60 * SEC;
    rldi_handle h = make_limit(RLDI_ALGO_FIXED, 10, P, 0);
    seg.meta[0].max_debt_ns = P;
    uint64_t mono = rldi_mono_ns() + SEC;
    wall_off = (int64_t)(1800000000ull * SEC + 30 * SEC - mono);    /* half-way */
    rldi_verdict v;
    assert_int_equal(take(h, 7, mono, &v), 0);
    uint32_t win = v.window;
    assert_int_equal(rldi_bucket_refund(&seg, h, 3, win, rldi_fp_from_ns(mono + 1)), 0);
    assert_int_equal(remaining(h, mono + 1), 6);
    assert_int_equal(rldi_bucket_refund(&seg, h, 3, 0, rldi_fp_from_ns(mono + 1)), -EOPNOTSUPP);
    /* debit past COUNT: until the boundary */
    assert_int_equal(rldi_bucket_debit(&seg, h, 14, rldi_fp_from_ns(mono + 2)), 0);
    assert_int_equal(rldi_bucket_peek(&seg, h, rldi_fp_from_ns(mono + 2), &v), 0);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_ns, 30 * SEC - 2);
    assert_int_equal(rldi_bucket_debit(&seg, h, 3, rldi_fp_from_ns(mono + 2)), -ERANGE);
    /* the next window: the debt is gone with its window, and the old window's refund too */
    assert_int_equal(take(h, 10, mono + 30 * SEC, &v), 0);
    assert_int_equal(rldi_bucket_refund(&seg, h, 5, win, rldi_fp_from_ns(mono + 30 * SEC)), 0);
    assert_int_equal(remaining(h, mono + 30 * SEC), 0);
}

/* ---- the daemon's writes ------------------------------------------------------------------ */

static void test_carry_and_fill(void **state)
{
    (void)state;
    /* sliding, count changes, period kept: everything carries */
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    uint64_t now = rldi_mono_ns();
    rldi_verdict v;
    assert_int_equal(take(h, 6, now, &v), 0);
    change_limit(RLDI_ALGO_SLIDING, 20, SEC, 0);
    now = rldi_mono_ns();
    assert_int_equal(remaining(h, now), 14);
    /* period changes: what the window holds stays, in the current sub-window (it leaves
     * later than it would have: toward denying) */
    change_limit(RLDI_ALGO_SLIDING, 20, 2 * SEC, 0);
    now = rldi_mono_ns();
    assert_int_equal(remaining(h, now), 14);
    uint64_t w = rldi_win_sub_width(2 * SEC);
    assert_int_equal(take(h, 1, now + 16 * w, &v), 0);
    assert_int_equal(v.remaining, 13);
    /* fill: empty again, the past forgotten */
    rldi_bucket_fill(&seg.slots[0], &seg.rings[0]);
    now = rldi_mono_ns();
    assert_int_equal(remaining(h, now), 20);
    assert_int_equal(remaining(h, now + 5 * w), 20);
    /* fixed keeps its window and what it holds */
    wall_off = (int64_t)(1800000000ull * SEC - now);
    h = make_limit(RLDI_ALGO_FIXED, 10, 60 * SEC, 0);
    assert_int_equal(take(h, 4, now + 1, &v), 0);
    change_limit(RLDI_ALGO_FIXED, 5, 60 * SEC, 0);
    assert_int_equal(remaining(h, now + 2), 1);
    /* a new tenant of a slot does not inherit the old one's ring */
    h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    now = rldi_mono_ns();
    assert_int_equal(remaining(h, now + 3 * rldi_win_sub_width(SEC)), 10);
}

/* A key's window whose template bank a hostile writer scribbled (a period or count of 0):
 * every entry point says -ESTALE, and nothing divides by the 0 first (rldi_win_debit once
 * computed the debt cap from the period before checking a key's sliding parameters). */
static void test_key_garbage(void **state)
{
    (void)state;
    static const uint64_t secret[2] = { 3, 4 };
    static const uint32_t algos[2] = { RLDI_ALGO_FIXED, RLDI_ALGO_SLIDING };
    for (int a = 0; a < 2; a++) {
        for (int field = 0; field < 2; field++) {
            keys_mem m;
            assert_int_equal(keys_mem_make(&m, 70, algos[a], 10, SEC, 0, secret), 0);
            uint64_t t = rldi_mono_ns() + 1000 * SEC;
            assert_int_equal(keys_mem_try(&m, "k", 1, 1, t, NULL), 0);
            uint32_t idx, gen;
            bool created;
            rldi_u128 now = rldi_fp_from_ns(t + 1);
            assert_int_equal(rldi_key_get(&m.seg, &m.t, "k", 1, 0, false, now, &idx, &gen,
                                          &created), 0);
            rldi_handle h = { m.seg.slot_count + m.t.entry_base + idx, gen };
            rldi_verdict v;
            assert_int_equal(rldi_bucket_peek(&m.seg, h, now, &v), 0);
            uint32_t win = v.window;
            rldi_slot *tsl = &m.seg.slots[0];
            m.seg.meta[0].max_debt_ns = 10 * SEC;
            rldi_bank *b = &tsl->bank[(tsl->frac_ver >> 32) & 1];
            if (field == 0)
                b->t_lo = 0;                       /* the period */
            else
                b->burst = 0;                      /* the count */
            int take = rldi_bucket_take(&m.seg, h, 1, now, 0, &v);
            assert_true(take == -ESTALE || (field == 1 && take == -E2BIG));
            assert_int_equal(rldi_bucket_peek(&m.seg, h, now, &v), -ESTALE);
            assert_int_equal(rldi_bucket_debit(&m.seg, h, 1, now), -ESTALE);
            assert_int_equal(rldi_bucket_refund(&m.seg, h, 1, win ? win : 1, now), -ESTALE);
            int probe = rldi_bucket_probe(&m.seg, h, 1, now, 0, &v);
            assert_true(probe == -ESTALE || (field == 1 && probe == -E2BIG));
            keys_mem_free(&m);
        }
    }
}

/* ---- rld_try's window path ----------------------------------------------------------------- */

/*
 * rldi_win_take_fast (rld_try's window path) decides as the general path does: from the same
 * word, whenever it decides, the same code, the same word published, the same verdict and
 * rldi_win_last; when it does not decide, it publishes nothing. States from random takes,
 * refunds, debits, syncs (fixed windows' holds) and waiters, with fresh and stale clocks.
 */
static void test_fast_equals_general(void **state)
{
    (void)state;
    uint64_t decided = 0, passed = 0;
    for (int round = 0; round < 48; round++) {
        reseed(900 + (uint64_t)round);
        bool fixed = round % 2;
        uint64_t count = 1 + rnd() % (round % 4 < 2 ? 20 : 100000);
        uint64_t P = (16 + rnd() % 400) * MS, al = fixed && rnd() % 2 ? rnd() % P : 0;
        rldi_handle h = make_limit(fixed ? RLDI_ALGO_FIXED : RLDI_ALGO_SLIDING, count, P, al);
        rldi_slot *sl = &seg.slots[h.slot];
        uint64_t t = start_time(rldi_win_sub_width(P));
        wall_off = (int64_t)(1800000000ull * SEC + rnd() % (10 * SEC) - t);
        for (int step = 0; step < 4000; step++) {
            t += rnd() % 4 ? rnd() % (P / 64 + 1) : rnd() % (P / 4 + 1);
            uint64_t now = rnd() % 4 == 0 ? t - rnd() % (P / 4) : t;   /* a stale read */
            uint64_t cost = rnd() % 8 ? 1 + rnd() % 3 : rnd() % (count + 2);
            uint32_t op = (uint32_t)(rnd() % 64);
            if (op == 0)
                (void)rldi_bucket_refund(&seg, h, 1 + rnd() % 4, rldi_win_last.window,
                                         rldi_fp_from_ns(t));
            else if (op == 1)
                (void)rldi_bucket_debit(&seg, h, 1 + rnd() % 4, rldi_fp_from_ns(t));
            else if (op == 2) {
                rldi_sync_out so;
                (void)rldi_bucket_sync(&seg, h, rnd() % (count + 1), rnd() % (2 * P),
                                       rldi_fp_from_ns(t), &so);
            }
            uint32_t waiters = op == 3 ? 1 : 0;
            sl->waiters = waiters;
            rldi_u128 w0 = rldi_load16_split(&sl->tat);
            rldi_verdict vf, vg;
            memset(&vf, 0x5a, sizeof(vf));
            memset(&vg, 0xa5, sizeof(vg));
            bool want = rnd() % 2;
            rldi_win_last = (rldi_win_take_rec){ 0 };
            int rf = rldi_win_take_fast(&seg, sl, h, cost, now, (uint64_t)w0,
                                        (uint64_t)(w0 >> 64), want ? &vf : NULL);
            rldi_u128 wf = rldi_load16_split(&sl->tat);
            rldi_win_take_rec lf = rldi_win_last;
            sl->tat = (uint64_t)w0;                     /* the general path from the same word */
            sl->frac_ver = (uint64_t)(w0 >> 64);
            rldi_win_last = (rldi_win_take_rec){ 0 };
            int rg = rldi_bucket_take(&seg, h, cost, rldi_fp_from_ns(now), 0, &vg);
            sl->waiters = 0;
            if (rf == RLDI_TAKE_MORE) {
                assert_true(wf == w0);                  /* nothing published */
                assert_null(lf.seg);
                passed++;
                continue;
            }
            decided++;
            if (rf != 0 || rg != 0)
                fail_msg("round %d step %d: fast %d, general %d", round, step, rf, rg);
            assert_true(wf == rldi_load16_split(&sl->tat));
            assert_memory_equal(&lf, &rldi_win_last, sizeof(lf));
            if (want) {
                assert_int_equal(vf.limit, vg.limit);
                assert_int_equal(vf.remaining, vg.remaining);
                assert_int_equal(vf.retry_after_ns, vg.retry_after_ns);
                assert_int_equal(vf.reset_after_ns, vg.reset_after_ns);
                assert_int_equal(vf.flags, vg.flags);
                assert_int_equal(vf.waiters, vg.waiters);
                assert_int_equal(vf.window, vg.window);
            }
        }
    }
    printf("fast path: decided %" PRIu64 ", passed on %" PRIu64 "\n", decided, passed);
    assert_true(decided > 50000 && passed > 10000);
}

int main(void)
{
    seed_from_env("test_window");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sliding_exact),
        cmocka_unit_test(test_sliding_odd_period),
        cmocka_unit_test(test_sliding_stale_random),
        cmocka_unit_test(test_sliding_refund),
        cmocka_unit_test(test_sliding_throughput),
        cmocka_unit_test(test_sliding_debit_peek),
        cmocka_unit_test(test_sliding_estimate),
        cmocka_unit_test(test_sliding_wait_model),
        cmocka_unit_test(test_ksl_wait_model),
        cmocka_unit_test(test_fixed_boundaries),
        cmocka_unit_test(test_fixed_clock_steps),
        cmocka_unit_test(test_fixed_offset_jitter),
        cmocka_unit_test(test_fixed_random),
        cmocka_unit_test(test_fixed_refund_debit),
        cmocka_unit_test(test_carry_and_fill),
        cmocka_unit_test(test_key_garbage),
        cmocka_unit_test(test_key_sliding_small_count),
        cmocka_unit_test(test_fast_equals_general),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
