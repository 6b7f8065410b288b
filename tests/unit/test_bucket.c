/*
 * test_bucket.c - unit tests of bucket.h's fast paths (rldi_bucket_take_fast and the
 * coarse-clock path) against rldi_bucket_take_word, the path that handles every case, on a
 * segment in memory.
 *
 * Why: the fast path decides GCRA on the two 64-bit halves of the state word (integer ns and
 * fraction), takes one token without a multiply, retries lost races in a loop of its own
 * and builds the result of the common case inline; the coarse path decides with a clock
 * that may be up to a margin behind. An error in any of them admits silently or reports a
 * wrong remaining. So:
 *  - the fast path must return what rldi_bucket_take_word returns, publish the same state
 *    word and fill the same verdict (its inline outcome, RLDI_TAKE_FULL, turned into the
 *    verdict rld_try builds from it), for random states around every boundary: a full
 *    bucket, TAT a unit either side of now, carries out of the fraction, cost 0, 1, burst
 *    and beyond, intervals below and above 2^64 units, unlimited limits, a global limit's
 *    pool (whose times are scaled), stale handles, waiters, window banks, template and
 *    breaker slots (waiters ~0), shadow limits (a denial admitted and counted);
 *  - its inline outcome only when FULL_MAX_NS allows it, and the coarse hint only after an
 *    admission that left TAT the margin ahead of now;
 *  - the coarse path must decide only what the precise path decides at every true time the
 *    coarse reading allows (both ends of [coarse, coarse + margin)), with the same state
 *    word for an admission; remaining at most and reset_after at least the exact values.
 *
 * Randomized with xorshift64* seeded from RLD_TEST_SEED (printed at the start).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "seg_mem.h"            /* seg, setup, teardown: a segment of 4 slots in memory */

#define MS  1000000ull
#define SEC 1000000000ull

#define TEST_SEED_DEFAULT 0x9e3779b97f4a7c15ull
#include "test_rng.h"

/* ---- random states ----------------------------------------------------------------------- */

typedef struct tcase {
    rldi_handle h;
    uint64_t cost;
    uint64_t now_ns;
} tcase;

/* An interval: mostly GCRA below 2^64 units (the fast path's), and everything it sends out
 * of line. *HI receives t_hi. */
static rldi_u128 pick_t(void)
{
    switch (rnd() % 12) {
    case 0: return 1;                                   /* 2^-32 ns: 4.29 * 10^18 /s */
    case 1: return (rldi_u128)1 << 32;                  /* 1 ns */
    case 2: return (rldi_u128)1000 << 32;               /* 1 us */
    case 3: return (rldi_u128)(1000 * MS) << 32;        /* 1 s */
    case 4: return RLDI_POOL_T;                         /* a global limit's pool */
    case 5: return ((rldi_u128)1 << 64) + rnd();        /* slower than one per 4.29 s */
    case 6: return 0;                                   /* unlimited */
    case 7: return (rldi_u128)(rnd() % (SEC << 3)) << 29 | 1;
    default: return 1 + rnd() % ((uint64_t)1 << (1 + rnd() % 63));
    }
}

/* Slot 0 as a random limit and state, the handle and a call: returned in *TC. */
static void random_case(tcase *tc, uint64_t margin_ns)
{
    rldi_slot *sl = &seg.slots[0];
    memset(sl, 0, sizeof(*sl));
    uint32_t gen = (uint32_t)rnd() | 1;
    sl->gen = gen;
    sl->flags = RLDI_SLOT_LIVE;
    if (rnd() % 16 == 0)
        sl->waiters = 1 + (uint32_t)(rnd() % 3);
    else if (rnd() % 32 == 0)
        sl->waiters = UINT32_MAX;       /* a template's or a breaker's slot: refused */
    if (rnd() % 8 == 0)
        sl->flags |= RLDI_SLOT_SHADOW;  /* admits what it would deny, counted */
    uint32_t ver = (uint32_t)rnd();
    rldi_u128 t = pick_t();
    uint64_t burst = 1 + rnd() % ((uint64_t)1 << (rnd() % 40));
    if (t && burst > 1) {                               /* tau <= 2^62 ns, as configured */
        rldi_u128 cap = ((rldi_u128)1 << 94) / t;
        if (cap == 0)
            cap = 1;
        if (burst > cap)
            burst = (uint64_t)cap;
    }
    rldi_bank b;
    rldi_bank_gcra(&b, t, burst);
    if (rnd() % 32 == 0)                                /* a window bank: out of line */
        b.t_hi |= (uint64_t)RLDI_ALGO_FIXED << RLDI_ALGO_SHIFT;
    sl->bank[ver & 1] = b;
    rldi_bank_gcra(&sl->bank[(ver + 1) & 1], pick_t(), 1 + rnd() % 1000);   /* the other */
    if (t == RLDI_POOL_T && rnd() % 2)
        sl->lease_hint_ns = 1 + rnd() % (10 * MS);
    tc->now_ns = 1000 * SEC + rnd() % (1000 * SEC);
    rldi_u128 now = rldi_fp_from_ns(tc->now_ns), tau = t * burst, tat;
    uint64_t ct_ns = (uint64_t)((t * (rldi_u128)(1 + rnd() % burst)) >> 32);
    switch (rnd() % 8) {
    case 0: tat = now - (rldi_u128)(rnd() % (SEC << 2)) * (1 + rnd() % 4); break;   /* full */
    case 1: tat = now - 1; break;
    case 2: tat = now; break;
    case 3: tat = now + 1; break;
    case 4: tat = now + rldi_fp_from_ns(margin_ns) - 1 + rnd() % 3; break;
    case 5: tat = now + tau - t * (rnd() % 3) + rnd() % 3 - 1; break;      /* the boundary */
    case 6: tat = now + rldi_fp_from_ns(ct_ns); break;
    default: tat = now + (tau ? rnd() % (uint64_t)(tau > UINT64_MAX ? UINT64_MAX : tau) : 0);
    }
    uint64_t tw, fv;
    rldi_tat_pack(tat, ver, &tw, &fv);
    sl->tat = tw;
    sl->frac_ver = fv;
    tc->h = (rldi_handle){ 0, gen };
    if (rnd() % 32 == 0)
        tc->h.gen = gen + 2 * (1 + (uint32_t)(rnd() % 3));   /* a stale handle */
    switch (rnd() % 6) {
    case 0: tc->cost = 0; break;
    case 1: tc->cost = burst; break;
    case 2: tc->cost = burst + 1 + rnd() % 3; break;
    case 3: tc->cost = 1 + rnd() % burst; break;
    default: tc->cost = 1; break;
    }
}

/* What rld_try builds from RLDI_TAKE_FULL. */
static void full_verdict(rldi_verdict *v, uint64_t burst, uint64_t cost, uint64_t reset_ns)
{
    *v = (rldi_verdict){ burst, burst - cost, 0, reset_ns, 0, 0, 0 };
}

static void assert_verdict_equal(const rldi_verdict *a, const rldi_verdict *b, uint64_t n)
{
    if (a->limit != b->limit || a->remaining != b->remaining ||
        a->retry_after_ns != b->retry_after_ns || a->reset_after_ns != b->reset_after_ns ||
        a->flags != b->flags || a->waiters != b->waiters || a->window != b->window)
        fail_msg("case %" PRIu64 ": verdicts differ: limit %" PRIu64 "/%" PRIu64
                 " remaining %" PRIu64 "/%" PRIu64 " retry %" PRIu64 "/%" PRIu64
                 " reset %" PRIu64 "/%" PRIu64 " flags %u/%u waiters %u/%u", n, a->limit,
                 b->limit, a->remaining, b->remaining, a->retry_after_ns, b->retry_after_ns,
                 a->reset_after_ns, b->reset_after_ns, a->flags, b->flags, a->waiters,
                 b->waiters);
}

/* ---- the fast path against the slow one ------------------------------------------------- */

static void test_fast_equals_word(void **state)
{
    (void)state;
    reseed(1);
    rldi_slot *sl = &seg.slots[0];
    uint64_t inline_full = 0, hints = 0, admitted = 0, shadow_admits = 0;
    for (uint64_t n = 0; n < 400000; n++) {
        uint64_t margin = (n & 1) ? 4 * MS : 0;
        tcase tc;
        random_case(&tc, margin ? margin : 4 * MS);
        rldi_slot before = *sl;
        rldi_verdict vw, vf;
        memset(&vw, 0xa5, sizeof(vw));
        memset(&vf, 0x5a, sizeof(vf));
        int rw = rldi_bucket_take_word(&seg, tc.h, tc.cost, rldi_fp_from_ns(tc.now_ns), 0,
                                       rldi_load16_split(&sl->tat), &vw);
        rldi_u128 word_w = rldi_load16_split(&sl->tat);
        uint32_t shadowed_w = sl->shadowed;
        *sl = before;
        uint64_t full_max = n % 3 == 0 ? 0 : margin ? margin : RLDI_POOL_T_NS;
        rldi_coarse co = { 0, (uint32_t)(rnd() % 2), 0 };
        uint32_t backoff0 = co.backoff;
        uint64_t reset = 0, burst = 0;
        bool want = rnd() % 4 != 0;
        rldi_take_more more;
        int rf = rldi_bucket_take_fast(sl, tc.h, tc.cost, tc.now_ns, full_max, &more, &reset,
                                       &burst);
        if (rf == RLDI_TAKE_MORE)
            rf = rldi_bucket_take_more(&seg, tc.h, tc.cost, tc.now_ns, &more, margin, &co,
                                       want ? &vf : NULL);
        rldi_u128 word_f = rldi_load16_split(&sl->tat);
        if (sl->shadowed != shadowed_w)     /* a shadow limit's denial, counted once either way */
            fail_msg("case %" PRIu64 ": shadowed %u (fast), %u (word)", n, sl->shadowed,
                     shadowed_w);
        shadow_admits += shadowed_w != before.shadowed;
        if (rf == RLDI_TAKE_FULL) {
            inline_full++;
            /* only on a full bucket, for a cost*T under FULL_MAX_NS: no pool's times */
            assert_true(full_max != 0);
            assert_true(reset <= full_max);
            assert_true((uint64_t)before.tat < tc.now_ns);
            full_verdict(&vf, burst, tc.cost, reset);
            rf = 0;
        }
        if (rf != rw)
            fail_msg("case %" PRIu64 ": fast %d, word %d (cost %" PRIu64 ")", n, rf, rw, tc.cost);
        if (word_f != word_w) {
            const rldi_bank *bk = &before.bank[(before.frac_ver >> 32) & 1];
            fail_msg("case %" PRIu64 ": fast and word published different states: r %d, "
                     "now %" PRIu64 " tat %" PRIu64 ".%08" PRIx64 " cost %" PRIu64
                     " t %" PRIx64 ":%" PRIx64 " burst %" PRIu64 " -> fast %" PRIu64
                     ".%08" PRIx64 " word %" PRIu64 ".%08" PRIx64, n, rw, tc.now_ns,
                     before.tat, before.frac_ver & 0xffffffff, tc.cost, bk->t_hi, bk->t_lo,
                     bk->burst, (uint64_t)word_f, (uint64_t)(word_f >> 64) & 0xffffffff,
                     (uint64_t)word_w, (uint64_t)(word_w >> 64) & 0xffffffff);
        }
        if (want && (rw == 0 || rw == -EAGAIN))
            assert_verdict_equal(&vf, &vw, n);
        /* the coarse hint: only after an admission that left TAT the margin ahead */
        uint64_t ahead = (uint64_t)word_w - tc.now_ns;
        if (co.hint) {
            hints++;
            assert_true(rw == 0 && margin != 0 && (uint64_t)word_w >= tc.now_ns &&
                        ahead >= margin && backoff0 == 0);
            assert_true(co.floor_ns <= tc.now_ns);
        } else if (rw == 0 && margin && word_w != rldi_load16_split(&before.tat) &&
                   (uint64_t)word_w >= tc.now_ns && ahead >= margin && backoff0 == 0 &&
                   RLDI_BANK_ALGO(sl->bank[(before.frac_ver >> 32) & 1].t_hi) == RLDI_ALGO_GCRA &&
                   sl->bank[(before.frac_ver >> 32) & 1].t_hi == 0 && before.waiters == 0) {
            fail_msg("case %" PRIu64 ": a busy admission set no hint", n);
        }
        admitted += rw == 0;
        *sl = before;
    }
    printf("fast = word: %" PRIu64 " admitted, %" PRIu64 " inline, %" PRIu64 " hints, %" PRIu64
           " shadow admissions\n", admitted, inline_full, hints, shadow_admits);
    assert_true(inline_full > 10000 && hints > 1000 && shadow_admits > 1000);
}

/* A lost race: the fast path retries with the word its CAS returned, as often as it loses. */
static void test_fast_lost_race(void **state)
{
    (void)state;
    rldi_slot *sl = &seg.slots[0];
    memset(sl, 0, sizeof(*sl));
    sl->gen = 3;
    rldi_bank_gcra(&sl->bank[0], (rldi_u128)1000 << 32, 1000);   /* 1/us, burst 1000 */
    uint64_t now = 5000 * SEC;
    rldi_handle h = { 0, 3 };
    /* the bucket the caller saw: full; the bucket now: 10 us in use, its CAS fails */
    rldi_u128 now_fp = rldi_fp_from_ns(now);
    sl->tat = now + 10000;
    sl->frac_ver = 0;
    rldi_verdict v;
    assert_int_equal(rldi_bucket_take_busy(&seg, h, 1, now, now - 50, 0, 0, NULL, &v), 0);
    assert_int_equal(sl->tat, now + 11000);
    assert_int_equal(v.remaining, 1000 - 11);
    /* a new configuration meanwhile: decided again from scratch (the other bank) */
    rldi_bank_gcra(&sl->bank[1], (rldi_u128)2000 << 32, 10);
    sl->frac_ver = (uint64_t)1 << 32;
    sl->tat = now - 1;
    assert_int_equal(rldi_bucket_take_busy(&seg, h, 1, now, now - 50, 0, 0, NULL, &v), 0);
    assert_int_equal(sl->tat, now + 2000);
    assert_int_equal(v.limit, 10);
    assert_int_equal(v.remaining, 9);
    /* a full bucket reached only on retry: from now, not from the TAT seen first */
    sl->tat = now - 7;
    assert_int_equal(rldi_bucket_take_busy(&seg, h, 3, now, now + 3, (uint64_t)1 << 32, 0,
                                           NULL, &v), 0);
    assert_int_equal(sl->tat, now + 6000);
    (void)now_fp;
}

/* ---- the coarse path ------------------------------------------------------------------- */

/* What the precise path says at S on a copy of slot 0 (restored after). */
static int precise_at(const rldi_slot *from, rldi_handle h, uint64_t cost, uint64_t s,
                      rldi_u128 *word, rldi_verdict *v)
{
    rldi_slot *sl = &seg.slots[0];
    rldi_slot keep = *sl;
    *sl = *from;
    int r = rldi_bucket_take_word(&seg, h, cost, rldi_fp_from_ns(s), 0,
                                  rldi_load16_split(&sl->tat), v);
    *word = rldi_load16_split(&sl->tat);
    *sl = keep;
    return r;
}

static void test_coarse_sound(void **state)
{
    (void)state;
    reseed(2);
    const uint64_t margin = 4 * MS;
    rldi_slot *sl = &seg.slots[0];
    uint64_t decided = 0, denied = 0, tries = 0;
    for (uint64_t n = 0; n < 200000; n++) {
        tcase tc;
        uint64_t lo = rldi_coarse_ns();
        random_case(&tc, margin);
        /* the state as random_case made it, moved so that its "now" is the coarse clock */
        uint64_t shift = lo - tc.now_ns;
        sl->tat += shift;
        if (rnd() % 2)
            sl->tat += margin;                  /* busy enough for the coarse path */
        rldi_slot before = *sl;
        rldi_coarse co = { 1, 0, rnd() % 2 ? 0 : lo };
        rldi_verdict v;
        uint64_t used = 0;
        bool want = rnd() % 2;
        int r = rldi_bucket_take_coarse(&seg, tc.h, tc.cost, margin, want, &co, &v, &used);
        if (rldi_coarse_ns() != lo) {           /* a tick meanwhile: the reading is unknown */
            *sl = before;
            continue;
        }
        tries++;
        if (r == RLDI_TAKE_PRECISE) {
            assert_int_equal(co.hint, 0);
            assert_true(rldi_load16_split(&sl->tat) == rldi_load16_split(&before.tat));
            continue;
        }
        decided++;
        assert_int_equal(used, lo);
        assert_int_equal(co.hint, 1);
        rldi_u128 after = rldi_load16_split(&sl->tat);
        /* the precise decision at both ends of what the true time may be */
        uint64_t ends[2] = { lo, lo + margin - 1 };
        for (int e = 0; e < 2; e++) {
            rldi_u128 pw;
            rldi_verdict pv;
            int pr = precise_at(&before, tc.h, tc.cost, ends[e], &pw, &pv);
            if (pr != r)
                fail_msg("case %" PRIu64 ": coarse %d, precise at +%" PRIu64 " ns %d", n, r,
                         ends[e] - lo, pr);
            if (r == 0) {
                if (pw != after)
                    fail_msg("case %" PRIu64 ": coarse and precise published different states", n);
                assert_true(v.remaining <= pv.remaining);
                assert_true(v.reset_after_ns >= pv.reset_after_ns);
                assert_int_equal(v.limit, pv.limit);
            }
        }
        if (r == -EAGAIN) {
            denied++;
            assert_false(want);
            assert_true(after == rldi_load16_split(&before.tat));
        }
        *sl = before;
    }
    printf("coarse: %" PRIu64 " of %" PRIu64 " decided (%" PRIu64 " denied), each as the "
           "precise path at both ends of the margin\n", decided, tries, denied);
    assert_true(decided > 1000 && denied > 100);
}

int main(void)
{
    (void)seg_mem_limit;                /* seg_mem.h's helper: the states here are random */
    seed_from_env("test_bucket");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fast_equals_word, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_lost_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coarse_sound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
