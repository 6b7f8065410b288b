/*
 * test_sync.c - unit tests of rldi_bucket_sync (rld_penalize, rld_sync) for every
 * algorithm, and of shadow mode, through bucket.c's entry points on a segment in memory with
 * simulated clocks (as test_window.c).
 *
 * Why: a penalty must hold to the unit ("no process takes before now + D", and one does at
 * now + D), a sync must bound what comes before the reset ("at most REMAINING"), neither may
 * ever loosen the state, and neither may break the algorithm's own bound (GCRA's burst +
 * rate x elapsed, a sliding window's COUNT in any PERIOD, a fixed window's COUNT per
 * wall-clock window). The randomized parts interleave takes of random costs, penalties and
 * syncs at random times and check every sync's promise and the algorithm's bound on the
 * admissions recorded, greedy callers included (which find exactly what is left).
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

#include "breaker.h"
#include "bucket.h"
#include "keys_mem.h"
#include "limitdef.h"
#include "seg_mem.h"
#include "segment.h"
#include "window.h"

#define MS  1000000ull
#define SEC 1000000000ull

#define TEST_SEED_DEFAULT 0x51e55ed5eedull
#include "test_rng.h"

/* Slot 0: COUNT per PERIOD (BURST for GCRA, 0: the count), ALGO, fresh. */
static rldi_handle make_limit(uint32_t algo, uint64_t count, uint64_t period, uint64_t burst)
{
    rldi_limitdef def;
    memset(&def, 0, sizeof(def));
    snprintf(def.name, sizeof(def.name), "u");
    def.count = count;
    def.period_ns = period;
    def.algo = algo;
    def.burst = algo == RLDI_ALGO_GCRA ? (burst ? burst : count) : 0;
    return seg_mem_limit(&def, 0);
}

static int take(rldi_handle h, uint64_t cost, uint64_t now, rldi_verdict *v)
{
    return rldi_bucket_take(&seg, h, cost, rldi_fp_from_ns(now), 0, v);
}

static bool sync_at(rldi_handle h, uint64_t r, uint64_t x, uint64_t now)
{
    rldi_sync_out o;
    assert_int_equal(rldi_bucket_sync(&seg, h, r, x, rldi_fp_from_ns(now), &o), 0);
    return o.changed;
}

static uint64_t start_time(uint64_t align)
{
    uint64_t t = rldi_mono_ns() + 10 * SEC;
    return (t / align + 1) * align;
}

/* ---- GCRA ------------------------------------------------------------------------------ */

/* 10/s, burst 5: after penalize(D) nothing before t0 + D (1 ns before: denied, told 1 ns),
 * one token at t0 + D, the next one T later; a shorter penalty or a looser sync changes
 * nothing. */
static void test_gcra_penalize_exact(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_GCRA, 10, SEC, 5);
    uint64_t t0 = start_time(SEC) + 123457, D = 1234567891ull, T = 100 * MS;
    rldi_verdict v;
    assert_int_equal(take(h, 2, t0, &v), 0);
    assert_true(sync_at(h, 0, D, t0));
    assert_int_equal(take(h, 1, t0, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, D);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(take(h, 1, t0 + D - 1, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, 1);
    assert_int_equal(take(h, 1, t0 + D, &v), 0);
    assert_int_equal(take(h, 1, t0 + D, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, T);
    assert_int_equal(take(h, 1, t0 + D + T, &v), 0);
    /* never loosens: a shorter penalty, a sync that allows more, a penalty of 0 */
    uint64_t t1 = t0 + D + T;
    assert_true(sync_at(h, 0, 3 * SEC, t1));
    assert_false(sync_at(h, 0, SEC, t1 + 1));
    assert_false(sync_at(h, 50, 5 * SEC, t1 + 2));
    assert_false(sync_at(h, 0, 0, t1 + 3));
    assert_int_equal(take(h, 1, t1 + 3 * SEC - 1, &v), -EAGAIN);
    assert_int_equal(take(h, 1, t1 + 3 * SEC, &v), 0);
    /* D beyond the cap */
    assert_int_equal(rldi_bucket_sync(&seg, h, 0, RLDI_SYNC_MAX_NS + 1, rldi_fp_from_ns(t1), NULL),
                     -ERANGE);
}

/* Greedy callers from T0 to T0 + X: the number admitted before T0 + X. */
static uint64_t greedy(rldi_handle h, uint64_t t0, uint64_t x, uint64_t *first)
{
    uint64_t n = 0, t = t0;
    *first = 0;
    rldi_verdict v;
    while (t < t0 + x) {
        if (take(h, 1, t, &v) == 0) {
            if (n++ == 0)
                *first = t;
            continue;
        }
        assert_true(v.retry_after_ns > 0);
        t += v.retry_after_ns;
    }
    return n;
}

/* 100/s, burst 100: sync(R, X) leaves exactly R before t0 + X, the next at t0 + X. */
static void test_gcra_sync_exact(void **state)
{
    (void)state;
    static const uint64_t cases[][2] = { { 3, 2 * SEC }, { 50, 100 * MS }, { 0, 750 * MS },
                                         { 99, 10 * MS + 3 }, { 1, 1 } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rldi_handle h = make_limit(RLDI_ALGO_GCRA, 100, SEC, 100);
        uint64_t t0 = start_time(SEC) + 777, first, R = cases[i][0], X = cases[i][1];
        assert_true(sync_at(h, R, X, t0));
        assert_int_equal(greedy(h, t0, X, &first), R);
        rldi_verdict v;
        assert_int_equal(take(h, 1, t0 + X, &v), 0);
    }
    /* a sync that allows what the state allows anyway changes nothing */
    rldi_handle h = make_limit(RLDI_ALGO_GCRA, 100, SEC, 100);
    uint64_t t0 = start_time(SEC);
    assert_false(sync_at(h, 199, SEC, t0));     /* 100 now, 99 more before t0 + 1 s */
    assert_false(sync_at(h, UINT64_MAX, SEC, t0));
    assert_true(sync_at(h, 198, SEC, t0));
}

/* Random takes, penalties and syncs: each sync's promise, and GCRA's bound. */
static void test_gcra_random(void **state)
{
    (void)state;
    for (int round = 0; round < 60; round++) {
        reseed(10 + (uint64_t)round);
        uint64_t count = 1 + rnd() % 50, period = (10 + rnd() % 2000) * MS;
        uint64_t burst = 1 + rnd() % (2 * count);
        rldi_handle h = make_limit(RLDI_ALGO_GCRA, count, period, burst);
        enum { N = 3000, S = 64 };
        static uint64_t at[N], cost[N];
        struct { uint64_t t, r, x; } syncs[S];
        size_t n = 0, ns = 0;
        uint64_t t = start_time(SEC), t0 = t;
        for (int step = 0; step < 6000 && n < N; step++) {
            t += rnd() % (period / count + 1);
            if (rnd() % 40 == 0 && ns < S) {
                uint64_t r = rnd() % 3 == 0 ? 0 : rnd() % (2 * burst + 1);
                uint64_t x = 1 + rnd() % (3 * period);
                sync_at(h, r, x, t);
                syncs[ns++] = (typeof(syncs[0])){ t, r, x };
                continue;
            }
            uint64_t c = 1 + rnd() % (burst < 3 ? burst : 3);
            rldi_verdict v;
            if (take(h, c, t, &v) == 0) {
                at[n] = t;
                cost[n++] = c;
            }
        }
        for (size_t k = 0; k < ns; k++) {
            uint64_t sum = 0;
            for (size_t i = 0; i < n; i++)
                if (at[i] >= syncs[k].t && at[i] < syncs[k].t + syncs[k].x)
                    sum += cost[i];
            if (sum > syncs[k].r)
                fail_msg("round %d: %" PRIu64 " admitted after sync(%" PRIu64 ", %" PRIu64 ")",
                         round, sum, syncs[k].r, syncs[k].x);
        }
        /* the algorithm's own bound: burst + rate x elapsed, from the start */
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            sum += cost[i];
            long double bound = (long double)burst +
                                (long double)count * (long double)(at[i] - t0) / (long double)period;
            assert_true((long double)sum <= bound + 1e-9L);
        }
    }
}

/* ---- sliding ------------------------------------------------------------------------- */

/* 10/s (w = 62.5 ms): a penalty holds until the first sub-window boundary at or after
 * t0 + D (a sliding window decides per sub-window), the window's own tokens still count
 * after it; one longer than the period holds as long and leaves the window empty. */
static void test_sliding_penalize(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    uint64_t w = rldi_win_sub_width(SEC);
    uint64_t t0 = start_time(w) + 7 * MS, D = 300 * MS;
    rldi_verdict v;
    assert_int_equal(take(h, 3, t0, &v), 0);
    assert_true(sync_at(h, 0, D, t0));
    uint64_t until = ((t0 + D - 1) / w + 1) * w;
    assert_true(until >= t0 + D && until < t0 + D + w);
    assert_int_equal(take(h, 1, t0 + 1, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, until - t0 - 1);
    assert_int_equal(take(h, 1, until - 1, &v), -EAGAIN);
    assert_int_equal(take(h, 7, until, &v), 0);       /* the 3 of t0 still count */
    assert_int_equal(take(h, 1, until, &v), -EAGAIN);
    /* longer than the window: a jump; nothing before, all 10 at the boundary */
    uint64_t t1 = (t0 / w + 40) * w + 5 * MS, D2 = 3 * SEC + 5;
    assert_true(sync_at(h, 0, D2, t1));
    uint64_t until2 = ((t1 + D2 - 1) / w + 1) * w;
    assert_int_equal(take(h, 1, t1, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, until2 - t1);
    assert_int_equal(take(h, 1, until2 - 1, &v), -EAGAIN);
    assert_int_equal(take(h, 10, until2, &v), 0);
    /* a shorter one now changes nothing */
    assert_false(sync_at(h, 0, 100 * MS, until2));
}

/* Sliding: exactly R before t0 + X when the window's past leaves in time; at most R always. */
static void test_sliding_sync_exact(void **state)
{
    (void)state;
    uint64_t w = rldi_win_sub_width(SEC);
    /* empty window, the reset within it: exactly R */
    for (uint64_t R = 0; R <= 10; R += 3) {
        rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
        uint64_t t0 = start_time(w) + 1, first;
        sync_at(h, R, 500 * MS, t0);
        assert_int_equal(greedy(h, t0, 500 * MS, &first), R);
    }
    /* 6 taken at t0; sync(2, 1.5 s) at t0 + 0.2 s: at most 2 before t0 + 1.7 s, and the 2
     * are there once the 6 have left the window */
    rldi_handle h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    uint64_t t0 = start_time(w) + 1, first;
    rldi_verdict v;
    assert_int_equal(take(h, 6, t0, &v), 0);
    assert_true(sync_at(h, 2, 1500 * MS, t0 + 200 * MS));
    assert_int_equal(greedy(h, t0 + 200 * MS, 1500 * MS, &first), 2);
    /* far beyond the window (10 periods): at most R */
    h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    t0 = start_time(w) + 1;
    assert_true(sync_at(h, 4, 10 * SEC, t0));
    assert_true(greedy(h, t0, 10 * SEC, &first) <= 4);
    /* a sync allowing more than the window ever could changes nothing */
    h = make_limit(RLDI_ALGO_SLIDING, 10, SEC, 0);
    assert_false(sync_at(h, 10, 900 * MS, t0));
    assert_false(sync_at(h, 30, 2500 * MS, t0));
}

/* Sliding, random: takes, penalties and syncs; every sync's bound and COUNT in any PERIOD. */
static void test_sliding_random(void **state)
{
    (void)state;
    for (int round = 0; round < 60; round++) {
        reseed(200 + (uint64_t)round);
        uint64_t count = 1 + rnd() % 30, period = (50 + rnd() % 900) * MS + rnd() % 1000;
        rldi_handle h = make_limit(RLDI_ALGO_SLIDING, count, period, 0);
        uint64_t w = rldi_win_sub_width(period);
        enum { N = 2000, S = 64 };
        static uint64_t at[N], cost[N];
        struct { uint64_t t, r, x; } syncs[S];
        size_t n = 0, ns = 0;
        uint64_t t = start_time(w);
        for (int step = 0; step < 8000 && n < N; step++) {
            t += rnd() % (w / 2 + 1);
            if (rnd() % 50 == 0 && ns < S) {
                uint64_t r = rnd() % 3 == 0 ? 0 : rnd() % (2 * count + 1);
                uint64_t x = 1 + rnd() % (rnd() % 4 == 0 ? 5 * period : period + 2 * w);
                sync_at(h, r, x, t);
                syncs[ns++] = (typeof(syncs[0])){ t, r, x };
                continue;
            }
            uint64_t c = 1 + rnd() % (count < 3 ? count : 3);
            rldi_verdict v;
            int r = take(h, c, t, &v);
            if (r == 0) {
                at[n] = t;
                cost[n++] = c;
            } else {
                assert_int_equal(r, -EAGAIN);
            }
            if (rnd() % 8 == 0 && r != 0 && v.retry_after_ns < 4 * period)
                t += v.retry_after_ns;      /* a greedy caller, on time */
        }
        for (size_t k = 0; k < ns; k++) {
            uint64_t sum = 0;
            for (size_t i = 0; i < n; i++)
                if (at[i] >= syncs[k].t && at[i] < syncs[k].t + syncs[k].x)
                    sum += cost[i];
            if (sum > syncs[k].r) {
                if (getenv("RLD_TEST_VERBOSE")) {
                    printf("count %" PRIu64 " period %" PRIu64 " w %" PRIu64 "\n", count, period, w);
                    for (size_t i = 0; i < n; i++)
                        if (at[i] + 2 * period >= syncs[k].t && at[i] < syncs[k].t + syncs[k].x)
                            printf("  take %" PRIu64 " at sub %" PRIu64 " +%" PRIu64 "\n", cost[i],
                                   at[i] / w, at[i] % w);
                    for (size_t q = 0; q < ns; q++)
                        if (syncs[q].t + 2 * period >= syncs[k].t && syncs[q].t < syncs[k].t + syncs[k].x)
                            printf("  sync(%" PRIu64 ", %" PRIu64 ") at sub %" PRIu64 " +%" PRIu64
                                   " kx %" PRIu64 "\n", syncs[q].r, syncs[q].x, syncs[q].t / w,
                                   syncs[q].t % w, (syncs[q].t + syncs[q].x - 1) / w);
                }
                fail_msg("round %d: %" PRIu64 " admitted after sync(%" PRIu64 ", %" PRIu64 ")",
                         round, sum, syncs[k].r, syncs[k].x);
            }
        }
        size_t lo = 0;
        uint64_t in = 0;
        for (size_t i = 0; i < n; i++) {
            in += cost[i];
            while (at[lo] + period <= at[i])
                in -= cost[lo++];
            if (in > count)
                fail_msg("round %d: %" PRIu64 " in a period of %" PRIu64, round, in, count);
        }
        assert_true(n > 5);
    }
}

/* ---- fixed ----------------------------------------------------------------------------- */

/* 5 per 10 s wall-clock windows; t0 is 2 s into one. */
static void test_fixed_penalize_sync(void **state)
{
    (void)state;
    uint64_t P = 10 * SEC;
    rldi_handle h = make_limit(RLDI_ALGO_FIXED, 5, P, 0);
    uint64_t mono = rldi_mono_ns() + SEC;
    wall_off = (int64_t)(1800000000ull * SEC + 2 * SEC - mono);
    uint64_t end = mono + 8 * SEC;
    rldi_verdict v;
    assert_int_equal(take(h, 2, mono, &v), 0);
    /* a penalty within the window: nothing until t0 + D, then the window's own room */
    assert_true(sync_at(h, 0, 3 * SEC, mono));
    assert_int_equal(take(h, 1, mono + 1, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, 3 * SEC - 1);
    assert_int_equal(take(h, 1, mono + 3 * SEC - 1, &v), -EAGAIN);
    assert_int_equal(take(h, 3, mono + 3 * SEC, &v), 0);
    assert_int_equal(take(h, 1, mono + 3 * SEC, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, end - mono - 3 * SEC);
    assert_int_equal(take(h, 5, end, &v), 0);
    /* a penalty beyond the window's end: nothing until then, then all of that window's 5 */
    uint64_t t1 = end + SEC;            /* 1 s into the next window, which ends at end + P */
    assert_true(sync_at(h, 0, 12 * SEC, t1));
    assert_int_equal(take(h, 1, t1 + 12 * SEC - 1, &v), -EAGAIN);
    assert_int_equal(take(h, 5, t1 + 12 * SEC, &v), 0);
    assert_int_equal(take(h, 1, t1 + 12 * SEC, &v), -EAGAIN);
    assert_int_equal(v.retry_after_ns, end + 2 * P - t1 - 12 * SEC);
    /* a sync within a window: exactly R more in it */
    uint64_t t2 = end + 3 * P + SEC, first;
    assert_int_equal(take(h, 1, t2, &v), 0);
    assert_true(sync_at(h, 2, 3 * SEC, t2));
    assert_int_equal(greedy(h, t2, 3 * SEC, &first), 2);
    /* a sync beyond it: at most R before the reset, across the boundary */
    uint64_t t3 = end + 5 * P + 9 * SEC;
    assert_true(sync_at(h, 3, 4 * SEC, t3));
    assert_int_equal(greedy(h, t3, 4 * SEC, &first), 3);
    wall_off = 0;
}

/* Fixed, random: each wall-clock window holds at most COUNT; every sync its bound. */
static void test_fixed_random(void **state)
{
    (void)state;
    for (int round = 0; round < 60; round++) {
        reseed(700 + (uint64_t)round);
        uint64_t count = 1 + rnd() % 20, P = (20 + rnd() % 300) * MS;
        rldi_handle h = make_limit(RLDI_ALGO_FIXED, count, P, 0);
        uint64_t t = rldi_mono_ns() + SEC;
        wall_off = (int64_t)(1800000000ull * SEC + rnd() % (10 * SEC) - t);
        enum { N = 3000, S = 64 };
        static uint64_t at[N], cost[N];
        struct { uint64_t t, r, x; } syncs[S];
        size_t n = 0, ns = 0;
        for (int step = 0; step < 10000 && n < N; step++) {
            t += rnd() % (P / 15 + 1);
            if (rnd() % 40 == 0 && ns < S) {
                uint64_t r = rnd() % 3 == 0 ? 0 : rnd() % (2 * count + 1);
                uint64_t x = 1 + rnd() % (rnd() % 4 == 0 ? 4 * P : P);
                sync_at(h, r, x, t);
                syncs[ns++] = (typeof(syncs[0])){ t, r, x };
                continue;
            }
            uint64_t c = 1 + rnd() % (count < 2 ? count : 2);
            rldi_verdict v;
            int r = take(h, c, t, &v);
            if (r == 0) {
                at[n] = t;
                cost[n++] = c;
            } else {
                assert_int_equal(r, -EAGAIN);
                if (rnd() % 4 == 0 && v.retry_after_ns < 5 * P)
                    t += v.retry_after_ns;
            }
        }
        for (size_t k = 0; k < ns; k++) {
            uint64_t sum = 0;
            for (size_t i = 0; i < n; i++)
                if (at[i] >= syncs[k].t && at[i] < syncs[k].t + syncs[k].x)
                    sum += cost[i];
            if (sum > syncs[k].r)
                fail_msg("round %d: %" PRIu64 " admitted after sync(%" PRIu64 ", %" PRIu64 ")",
                         round, sum, syncs[k].r, syncs[k].x);
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t wi = (at[i] + (uint64_t)wall_off) / P, sum = 0;
            for (size_t j = 0; j < n; j++)
                if ((at[j] + (uint64_t)wall_off) / P == wi)
                    sum += cost[j];
            if (sum > count)
                fail_msg("round %d: %" PRIu64 " in one window of %" PRIu64, round, sum, count);
        }
        assert_true(n > 5);
    }
    wall_off = 0;
}

/* ---- shadow mode ------------------------------------------------------------------------ */

static void test_shadow(void **state)
{
    (void)state;
    for (uint32_t algo = RLDI_ALGO_GCRA; algo <= RLDI_ALGO_FIXED; algo++) {
        rldi_handle h = make_limit(algo, 3, SEC, 0);
        seg.slots[0].flags |= RLDI_SLOT_SHADOW;
        uint64_t t = start_time(SEC) + 1;
        rldi_verdict v;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(take(h, 1, t, &v), 0);
            assert_false(v.flags & RLDI_V_SHADOW);
        }
        /* would be denied: admitted, flagged, counted, nothing taken */
        rldi_u128 before = rldi_load16_split(&seg.slots[0].tat);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(take(h, 1, t, &v), 0);
            assert_true(v.flags & RLDI_V_SHADOW);
            assert_int_equal(v.retry_after_ns, 0);
            assert_int_equal(v.remaining, 0);
        }
        assert_int_equal(take(h, 2, t, NULL), 0);
        assert_true(rldi_load16_split(&seg.slots[0].tat) == before);
        assert_int_equal(seg.slots[0].shadowed, 6);
        /* what a take would say: a probe admits, an estimate has no wait */
        assert_int_equal(rldi_bucket_probe(&seg, h, 1, rldi_fp_from_ns(t), 0, &v), 0);
        assert_int_equal(rldi_bucket_estimate(&seg, h, 5, 1, rldi_fp_from_ns(t), &v), 0);
        assert_int_equal(v.retry_after_ns, 0);
        /* a penalty moves the state as the enforced limit's: still admitted, counted */
        assert_true(sync_at(h, 0, 10 * SEC, t + 2 * SEC));
        assert_int_equal(take(h, 1, t + 3 * SEC, &v), 0);
        assert_int_equal(seg.slots[0].shadowed, 7);
        /* too big is still too big */
        assert_int_equal(take(h, 4, t, &v), -E2BIG);
        /* enforcing again: denied */
        seg.slots[0].flags &= ~RLDI_SLOT_SHADOW;
        assert_int_equal(take(h, 1, t + 3 * SEC, &v), -EAGAIN);
    }
}

/* A pool (scope = global) refuses: the daemon's credits would loosen it. */
static void test_pool_refused(void **state)
{
    (void)state;
    rldi_handle h = make_limit(RLDI_ALGO_GCRA, 10, SEC, 10);
    rldi_bucket_publish_tokens(&seg.slots[0], RLDI_POOL_T, 10, 0, NULL);
    assert_int_equal(rldi_bucket_sync(&seg, h, 0, SEC, rldi_now_fp(), NULL), -EOPNOTSUPP);
    /* unlimited: nothing to bound, nothing done */
    h = make_limit(RLDI_ALGO_GCRA, 0, 0, 0);
    assert_int_equal(rldi_bucket_sync(&seg, h, 0, SEC, rldi_now_fp(), NULL), 0);
    /* a stale handle */
    assert_int_equal(rldi_bucket_sync(&seg, (rldi_handle){ 0, 3 }, 0, SEC, rldi_now_fp(), NULL),
                     -ESTALE);
}

/* Keys (rld_key's handles): a key of a fixed template is held as a named limit is; a key of
 * a sliding template has no ring to hold phantom tokens and is refused (rld.h), its state
 * untouched (it once was read as a named limit's and the ring, NULL, written to). */
static void test_keys(void **state)
{
    (void)state;
    static const uint64_t secret[2] = { 1, 2 };
    static const uint32_t algos[2] = { RLDI_ALGO_FIXED, RLDI_ALGO_SLIDING };
    for (int a = 0; a < 2; a++) {
        keys_mem m;
        assert_int_equal(keys_mem_make(&m, 70, algos[a], 10, SEC, 0, secret), 0);
        uint64_t t = start_time(SEC);
        for (int i = 0; i < 3; i++)
            assert_int_equal(keys_mem_try(&m, "k", 1, 1, t + (uint64_t)i * 100 * MS, NULL), 0);
        uint32_t idx, gen;
        bool created;
        assert_int_equal(rldi_key_get(&m.seg, &m.t, "k", 1, 0, false, rldi_fp_from_ns(t), &idx,
                                      &gen, &created), 0);
        rldi_handle h = { m.seg.slot_count + m.t.entry_base + idx, gen };
        rldi_key_entry *e = &m.t.entries[idx];
        rldi_u128 before = rldi_load16_split(&e->tat);
        rldi_sync_out o;
        int r = rldi_bucket_sync(&m.seg, h, 0, 5 * SEC, rldi_fp_from_ns(t + 300 * MS), &o);
        if (algos[a] == RLDI_ALGO_SLIDING) {
            assert_int_equal(r, -EOPNOTSUPP);
            assert_false(o.changed);
            assert_true(rldi_load16_split(&e->tat) == before);
            assert_int_equal(rldi_bucket_sync(&m.seg, h, 3, 0, rldi_fp_from_ns(t + 300 * MS), NULL),
                             -EOPNOTSUPP);
            /* the window goes on as before: 7 more, then full */
            for (int i = 0; i < 7; i++)
                assert_int_equal(keys_mem_try(&m, "k", 1, 1, t + 400 * MS, NULL), 0);
            assert_int_equal(keys_mem_try(&m, "k", 1, 1, t + 400 * MS, NULL), -EAGAIN);
        } else {
            assert_int_equal(r, 0);
            assert_true(o.changed);
            /* penalized for 5 s: nothing before t + 5.3 s, in this window or the next ones */
            assert_int_equal(keys_mem_try(&m, "k", 1, 1, t + 400 * MS, NULL), -EAGAIN);
            assert_int_equal(keys_mem_try(&m, "k", 1, 1, t + 5 * SEC, NULL), -EAGAIN);
        }
        keys_mem_free(&m);
    }
}

/* ---- breakers ----------------------------------------------------------------------------- */

/* Slot 1: a breaker (as dseg.c makes one: waiters ~0, the bank published fresh). */
static rldi_handle make_breaker(uint32_t failures, uint64_t open_for, uint32_t probes,
                                uint32_t successes, uint64_t probe_timeout)
{
    rldi_brk_conf bc = { failures, probes, successes, open_for, probe_timeout };
    const char *why;
    assert_int_equal(rldi_brk_conf_check(&bc, &why), 0);
    rldi_bank b;
    rldi_brk_bank(&bc, &b);
    rldi_slot *sl = &seg.slots[1];
    memset(sl, 0, sizeof(*sl));
    sl->gen = 1;
    sl->waiters = UINT32_MAX;
    sl->flags = RLDI_SLOT_LIVE;
    rldi_bucket_publish(sl, &seg.rings[1], &b, false, 0);
    return (rldi_handle){ 1, 1 };
}

static void test_breaker(void **state)
{
    (void)state;
    rldi_handle b = make_breaker(5, 30 * SEC, 1, 2, 10 * SEC);
    uint64_t t = rldi_mono_ns() + SEC;
    rldi_brk_ticket tk, closed = { 0, false };
    rldi_verdict v;
    rldi_brk_view bv;
    /* closed: 4 failures, a success clears them; 5 in a row open it */
    for (int i = 0; i < 4; i++)
        assert_int_equal(rldi_breaker_report(&seg, b, false, &closed, t), 0);
    assert_int_equal(rldi_breaker_report(&seg, b, true, &closed, t), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rldi_breaker_report(&seg, b, false, &closed, t), 0);
    assert_int_equal(rldi_breaker_enter(&seg, b, t, &v, &tk), 0);
    assert_false(tk.probe);
    assert_int_equal(rldi_breaker_report(&seg, b, false, &closed, t), 0);
    assert_int_equal(rldi_breaker_read(&seg, b, t, &bv), 0);
    assert_int_equal(bv.state, RLDI_BRK_OPEN);
    assert_int_equal(bv.opens, 1);
    /* open: refused until open_for is over (ms rounded up: never early) */
    assert_int_equal(rldi_breaker_enter(&seg, b, t + 1, &v, &tk), -EAGAIN);
    assert_true(v.retry_after_ns >= 30 * SEC - 1 && v.retry_after_ns < 30 * SEC + MS);
    uint64_t half = t + 1 + v.retry_after_ns;
    assert_int_equal(rldi_breaker_enter(&seg, b, half - 1, &v, &tk), -EAGAIN);
    /* half-open: exactly one probe; a stale report of a call made while closed changes nothing */
    assert_int_equal(rldi_breaker_enter(&seg, b, half, &v, &tk), 0);
    assert_true(tk.probe);
    rldi_brk_ticket p1 = tk;
    assert_int_equal(rldi_breaker_enter(&seg, b, half, &v, &tk), -EAGAIN);
    assert_int_equal(rldi_breaker_report(&seg, b, false, &closed, half), 0);
    assert_int_equal(rldi_breaker_read(&seg, b, half, &bv), 0);
    assert_int_equal(bv.state, RLDI_BRK_HALF_OPEN);
    assert_int_equal(bv.probes_out, 1);
    /* one success of two: a second probe may go, then closed */
    assert_int_equal(rldi_breaker_report(&seg, b, true, &p1, half + 1), 0);
    assert_int_equal(rldi_breaker_enter(&seg, b, half + 2, &v, &tk), 0);
    assert_true(tk.probe);
    assert_int_equal(rldi_breaker_report(&seg, b, true, &tk, half + 3), 0);
    assert_int_equal(rldi_breaker_read(&seg, b, half + 3, &bv), 0);
    assert_int_equal(bv.state, RLDI_BRK_CLOSED);
    assert_int_equal(bv.closes, 1);
    /* a probe that never reports counts as failed after probe_timeout */
    assert_int_equal(rldi_breaker_force(&seg, b, RLDI_BRK_OPEN, half + 4), 0);
    uint64_t t2 = half + 4 + 31 * SEC;
    assert_int_equal(rldi_breaker_enter(&seg, b, t2, &v, &tk), 0);
    assert_true(tk.probe);
    assert_int_equal(rldi_breaker_enter(&seg, b, t2 + 10 * SEC - 1, &v, &tk), -EAGAIN);
    assert_int_equal(rldi_breaker_read(&seg, b, t2 + 10 * SEC + MS, &bv), 0);
    assert_int_equal(bv.state, RLDI_BRK_OPEN);
    assert_int_equal(rldi_breaker_enter(&seg, b, t2 + 10 * SEC + MS, &v, &tk), -EAGAIN);
    assert_true(v.retry_after_ns >= 30 * SEC);
    assert_int_equal(rldi_breaker_read(&seg, b, t2 + 10 * SEC + MS, &bv), 0);
    assert_int_equal(bv.opens, 3);
    /* the late report of that probe decides nothing */
    assert_int_equal(rldi_breaker_report(&seg, b, true, &p1, t2 + 11 * SEC), 0);
    assert_int_equal(rldi_breaker_read(&seg, b, t2 + 11 * SEC, &bv), 0);
    assert_int_equal(bv.state, RLDI_BRK_OPEN);
    /* reset */
    assert_int_equal(rldi_breaker_force(&seg, b, RLDI_BRK_CLOSED, t2 + 12 * SEC), 0);
    assert_int_equal(rldi_breaker_enter(&seg, b, t2 + 12 * SEC, &v, &tk), 0);
    /* three probes: exactly three pass; a failure reopens it */
    b = make_breaker(1, SEC, 3, 1, SEC);
    t = rldi_mono_ns() + SEC;
    assert_int_equal(rldi_breaker_report(&seg, b, false, &closed, t), 0);
    int passed = 0;
    rldi_brk_ticket probes[10];
    for (int i = 0; i < 10; i++)
        if (rldi_breaker_enter(&seg, b, t + 2 * SEC, &v, &probes[passed]) == 0)
            passed++;
    assert_int_equal(passed, 3);
    assert_int_equal(rldi_breaker_report(&seg, b, false, &probes[1], t + 2 * SEC), 0);
    assert_int_equal(rldi_breaker_read(&seg, b, t + 2 * SEC, &bv), 0);
    assert_int_equal(bv.state, RLDI_BRK_OPEN);
    /* a limit's handle is not a breaker, a breaker is not a limit */
    rldi_handle l = make_limit(RLDI_ALGO_GCRA, 10, SEC, 0);
    assert_int_equal(rldi_breaker_enter(&seg, l, t, &v, &tk), -EINVAL);
    assert_int_equal(take(b, 1, t, &v), -EINVAL);
    assert_int_equal(rldi_breaker_enter(&seg, (rldi_handle){ 1, 3 }, t, &v, &tk), -ESTALE);
}

int main(void)
{
    seed_from_env("test_sync");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcra_penalize_exact),
        cmocka_unit_test(test_gcra_sync_exact),
        cmocka_unit_test(test_gcra_random),
        cmocka_unit_test(test_sliding_penalize),
        cmocka_unit_test(test_sliding_sync_exact),
        cmocka_unit_test(test_sliding_random),
        cmocka_unit_test(test_fixed_penalize_sync),
        cmocka_unit_test(test_fixed_random),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_pool_refused),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_breaker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
