/*
 * test_keys_fast.c - rld_try_key's lean path (common/keys.c rldi_key_take, rldi_key_try)
 * against the path that decides every case (rldi_bucket_take_cell), on random states:
 * whenever the lean path decides, it must return, publish and report exactly what the full
 * path does from the same state; when it does not, it must leave the state as it was. The
 * banks cover tolerances below and far past 2^63 units (the verdict's division), costs
 * around 1 and the burst, buckets full, busy and denying, keys with waiters, of another
 * epoch, stale gens and a deleted template.
 *
 * And the buckets' hints of their held places (keys.c held_of), which an insertion chooses
 * a place by: scribbled to say every place held, a table with room must still take every
 * new key; scribbled to say every place free, a table full of keys with state must refuse
 * new keys (-ENOSPC) and keep every key it has, each once.
 *     build/tests/unit/test_keys_fast [ROUNDS]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys_mem.h"

#define MS 1000000ull

#define TEST_SEED_DEFAULT 0x9e3779b97f4a7c15ull
#include "test_rng.h"

static void store16(rldi_key_entry *e, rldi_u128 w)
{
    e->tat = (uint64_t)w;
    e->frac_ver = (uint64_t)(w >> 64);
}

static uint64_t n_decided, n_rounds;

static int check(keys_mem *m, uint64_t round, uint64_t count, uint64_t burst)
{
    uint64_t now = 1000000 * MS + rnd() % (1000 * MS);
    char key[24];
    int len = snprintf(key, sizeof(key), "k%" PRIu64, round % 50);
    uint32_t idx, gen;
    bool created;
    int r = rldi_key_get(&m->seg, &m->t, key, (size_t)len, 0, false, rldi_fp_from_ns(now), &idx,
                         &gen, &created);
    if (r < 0) {
        printf("round %" PRIu64 ": rldi_key_get %d\n", round, r);
        return 1;
    }
    rldi_key_entry *e = &m->t.entries[idx];
    /* a random state for the key: TAT before, at or after now, up to past the tolerance */
    rldi_bank b;
    rldi_bucket_config(&m->seg.slots[0], &b);
    rldi_u128 t = ((rldi_u128)b.t_hi << 64) | b.t_lo, tau = t * b.burst;
    rldi_u128 tat;
    switch (rnd() % 5) {
    case 0: tat = rldi_fp_from_ns(now) - (rnd() % (t + 1)); break;       /* full */
    case 1: tat = rldi_fp_from_ns(now); break;
    case 2: tat = rldi_fp_from_ns(now) + (tau ? (rldi_u128)(rnd() % 1000) * (tau / 1000) : 0) +
                  rnd() % 4096; break;
    case 3: tat = rldi_fp_from_ns(now) + tau - t * (rnd() % 3) + (rnd() % 3) - 1; break;
    default: tat = rldi_fp_from_ns(now) + tau + rnd() % (t + 1); break;
    }
    uint32_t ver = gen;
    uint32_t waiters = 0;
    uint32_t hgen = gen;
    switch (rnd() % 16) {
    case 0: waiters = 1 + (uint32_t)(rnd() % 3); break;
    case 1: hgen = gen + 2; break;                                 /* a stale handle */
    case 2: ver = gen ^ RLDI_KEY_SEALED; break;                    /* sealed by a growth */
    default: break;
    }
    rldi_u128 word = rldi_word_make(tat, ver);
    store16(e, word);
    e->waiters = waiters;
    uint64_t cost;
    switch (rnd() % 4) {
    case 0: cost = 1; break;
    case 1: cost = burst; break;
    case 2: cost = burst + 1; break;
    default: cost = rnd() % (burst + 2); break;
    }
    /* the full path, from a copy of the state */
    rldi_cell cell;
    rldi_cell_of_key(&m->seg, &m->t, idx, hgen, &cell);
    rldi_verdict v1, v2;
    memset(&v1, 0, sizeof(v1));
    memset(&v2, 0, sizeof(v2));
    int r1 = rldi_bucket_take_cell(&m->seg, &cell, cost, rldi_fp_from_ns(now), 0, &v1);
    rldi_u128 w1 = rldi_load16_split(&e->tat);
    store16(e, word);
    int r2 = (round & 1) ? rldi_key_take(&m->seg, &m->t, idx, hgen, cost, now, &v2)
                         : rldi_key_try(&m->seg, &m->t, key, (size_t)len, cost, now, &idx, &gen,
                                        &v2);
    rldi_u128 w2 = rldi_load16_split(&e->tat);
    n_rounds++;
    n_decided += r2 == 0;
    if (!(round & 1) && hgen != gen)
        r2 = 1, w2 = word;      /* (rldi_key_try finds the live gen itself: not comparable) */
    if (r2 == 1) {
        if (w2 != word) {
            printf("round %" PRIu64 ": undecided but the state moved\n", round);
            return 1;
        }
        return 0;
    }
    if (r2 != r1 || w2 != w1 || (r1 == 0 && memcmp(&v1, &v2, sizeof(v1)) != 0)) {
        printf("round %" PRIu64 " (count %" PRIu64 " burst %" PRIu64 " cost %" PRIu64 "): full "
               "path %d remaining %" PRIu64 " reset %" PRIu64 "; lean %d remaining %" PRIu64
               " reset %" PRIu64 "; words %s\n", round, count, burst, cost, r1, v1.remaining,
               v1.reset_after_ns, r2, v2.remaining, v2.reset_after_ns,
               w1 == w2 ? "equal" : "differ");
        return 1;
    }
    return 0;
}

/* Insert keys "hN" into M until it refuses one (every key takes a token, so none is idle):
 * the count placed. Every key placed must be found again, in one place only. */
static int fill(keys_mem *m, uint64_t now, uint32_t *placed)
{
    *placed = 0;
    for (uint32_t n = 0; n < 10000; n++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "h%u", n);
        bool created;
        int r = keys_mem_try(m, key, (size_t)len, 1, now, &created);
        if (r == -ENOSPC)
            return 0;
        if (r != 0 || !created)
            return -1;
        (*placed)++;
    }
    return -1;
}

static int hints(void)
{
    static const uint64_t secret[2] = { 5, 6 };
    keys_mem m;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);        /* (a new key's state is made at the clock's) */
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1000 * MS;
    if (keys_mem_make(&m, 70, RLDI_ALGO_GCRA, 10, 1000 * MS, 0, secret) < 0)
        return -1;
    uint32_t places = m.t.nbuckets * RLDI_KEY_BUCKET, placed0, placed, again;
    /* the same keys take the same places whether the hints are right or say every place
     * held (then the exact scan chooses, by the same rule) */
    if (fill(&m, now, &placed0) < 0)
        return -1;
    keys_mem_clear(&m);
    for (uint32_t i = 0; i < m.t.nbuckets; i++)
        m.t.buckets[i].held = ~UINT64_C(0);
    if (fill(&m, now, &placed) < 0 || placed != placed0) {
        printf("hints all held, table empty: %u keys placed, %u with right hints\n", placed,
               placed0);
        return 1;
    }
    uint32_t held = 0;
    for (uint32_t j = 0; j < places; j++)
        held += m.t.entries[j].gen & 1;
    /* every place free by the hints, none in fact: refused, every key still there once */
    for (uint32_t i = 0; i < m.t.nbuckets; i++)
        m.t.buckets[i].held = 0;
    bool created;
    char late[16];              /* the key fill() was refused: its 32 places hold state */
    int llen = snprintf(late, sizeof(late), "h%u", placed);
    int r = keys_mem_try(&m, late, (size_t)llen, 1, now, &created);
    uint32_t live = 0;
    for (uint32_t j = 0; j < places; j++)
        live += m.t.entries[j].gen & 1;
    for (again = 0; again < placed; again++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "h%u", again);
        uint32_t idx, gen, n = 0;
        uint64_t h = rldi_siphash13(secret, key, (size_t)len);
        if (rldi_key_find(&m.t, h, key, (size_t)len, 1, &idx, &gen) != 0)
            break;
        for (uint32_t j = 0; j < places; j++)
            n += (m.t.entries[j].gen & 1) && m.t.entries[j].hash == h;
        if (n != 1)
            break;
    }
    printf("hints: all held on an empty table: %u keys placed (%u with right hints); all free "
           "on the full one: a new key %s, %u live, %u of %u keys found once\n", placed, placed0,
           r == -ENOSPC ? "refused" : "NOT refused", live, again, placed);
    int bad = r != -ENOSPC || live != held || again != placed;
    /* and the daemon's sweep sets them right */
    rldi_key_sweep(&m.seg, &m.t, 0, m.t.nbuckets, rldi_fp_from_ns(now));
    for (uint32_t i = 0; i < m.t.nbuckets; i++) {
        uint64_t want = 0;
        for (uint32_t j = 0; j < RLDI_KEY_BUCKET; j++)
            want |= (uint64_t)(m.t.entries[i * RLDI_KEY_BUCKET + j].gen & 1) << j;
        if (m.t.buckets[i].held != want) {
            printf("hints: bucket %u's hint %#llx after a sweep, its live places %#llx\n", i,
                   (unsigned long long)m.t.buckets[i].held, (unsigned long long)want);
            bad = 1;
            break;
        }
    }
    keys_mem_free(&m);
    return bad;
}

int main(int argc, char **argv)
{
    seed_from_env("test_keys_fast");
    uint64_t rounds = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    static const uint64_t secret[2] = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
    /* COUNT/PERIOD and burst: tolerances from 2^40 to 2^96 units */
    static const struct { uint64_t count, period_ns, burst; } banks[] = {
        { 1000000, 1000 * MS, 1000000000 },      /* bench_peers' template: tau 1000 s */
        { 120, 60000 * MS, 120 },                /* 120/min: tau 2.6e20 units */
        { 10, 1000 * MS, 10 },
        { 1000000000, 1000 * MS, 1 },            /* 1 ns a token, burst 1 */
        { 3, 7 * MS, 5 },
        { 1, 3600000 * MS, 2 },                  /* T past 2^64 units: never the lean path */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(banks) / sizeof(banks[0]); i++) {
        keys_mem m;
        if (keys_mem_make(&m, 700, RLDI_ALGO_GCRA, banks[i].count, banks[i].period_ns,
                          banks[i].burst, secret) < 0) {
            printf("bank %zu: could not set up\n", i);
            return 2;
        }
        for (uint64_t k = 0; k < rounds / 6 && !bad; k++)
            bad |= check(&m, k, banks[i].count, banks[i].burst ? banks[i].burst : banks[i].count);
        /* a deleted template (its slot's gen moved): the lean path never decides */
        m.seg.slots[0].gen += 2;
        uint32_t idx, gen;
        rldi_verdict v;
        if (rldi_key_try(&m.seg, &m.t, "k1", 2, 1, 1000000 * MS, &idx, &gen, &v) == 0) {
            printf("bank %zu: a take on a deleted template's key\n", i);
            bad = 1;
        }
        keys_mem_free(&m);
    }
    printf("%" PRIu64 " rounds, %" PRIu64 " decided by the lean path: %s\n", n_rounds, n_decided,
           bad ? "FAIL" : "ok, it agrees with rldi_bucket_take_cell");
    if (n_decided < n_rounds / 5) {
        printf("FAIL: the lean path decided too few rounds to test it\n");
        bad = 1;
    }
    int h = hints();
    if (h < 0) {
        printf("hints: could not set up\n");
        return 2;
    }
    bad |= h;
    return bad;
}
