/*
 * test_keys_flood.c - hash flooding (issue 13 item 4): 100,000 keys an attacker chose to
 * collide cost no more than 100,000 random keys, on a key table in memory (keys_mem.h).
 *
 * The attack. Keys are attacker-chosen (IPs, user names). A key may live in 32 places: the
 * buckets b1, b1+1, b2, b2+1 of its hash (keys.c). If that hash were unkeyed, or keyed with
 * a secret the attacker knows, the attacker could compute it offline and keep the keys whose
 * b1 AND b2 both fall in the first eighth of the table: 100,000 such keys would all compete
 * for an eighth of the places (14,286 for 100,000 keys), so the table refuses most of them
 * and every lookup of a refused key scans its 32 places. The crafted keys here are exactly
 * that for SipHash-1-3 with the key {0, 0} (the algorithm keys.c uses, with the secret an
 * attacker would have if the segment did not draw one): "user:N" for the N that pass, about
 * 1 in 64.
 *
 * The measure. Timing alone is noisy on a shared machine, so the assertions are on counts
 * first, which are exact for a given secret:
 *   - refused insertions (-ENOSPC) of each set;
 *   - the share of the keys that landed in the eighth of the table the attack aimed at
 *     (buckets 0 .. nb/8: the choices below nb/8 and their neighbours);
 *   - buckets a lookup reads before it finds its key (1..4: keys.c scans b1, b1+1, b2,
 *     b2+1 in that order and stops at the key's), mean per set;
 * then time: insert and look up every key of each set, sets interleaved, 5 repetitions, the
 * fastest of each; crafted / random must stay below 2x.
 * The control: the same crafted keys in a table whose secret is {0, 0} must be refused in
 * the majority and all sit in the aimed-at eighth, which shows the keys are an attack and
 * that the checks above would catch a table that hashed without its segment's secret.
 *
 * Keys take their token from a 1/min template with a burst of 1, so none is idle and none
 * is evicted: the table only fills. 100,000 keys in a table of max_keys 100,000 (114,288
 * places): the 7/8 load tables are sized for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "keys_mem.h"

#define NKEYS    100000u
#define MAX_KEYS 100000u
#define KEYLEN   24
#define REPS     5

static int failures;
#define CHECK(cond, ...)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

typedef struct keyset {
    const char *name;
    char (*k)[KEYLEN];
    uint8_t *len;
} keyset;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static void alloc_set(keyset *s, const char *name)
{
    s->name = name;
    s->k = malloc(NKEYS * sizeof(*s->k));
    s->len = malloc(NKEYS);
    if (!s->k || !s->len) {
        perror("malloc");
        exit(1);
    }
}

/* Does a key of hash H fall, by both of its choices, in the first eighth of NB buckets? */
static bool aimed(uint64_t h, uint32_t nb)
{
    uint32_t b[4];
    keys_mem_buckets(h, nb, b);
    return b[0] < nb / 8 && b[2] < nb / 8;
}

/* Crafted: "user:N" whose unkeyed ({0, 0}) hash puts both choices in the first eighth. */
static uint64_t craft(keyset *s, uint32_t nb)
{
    static const uint64_t zero[2] = { 0, 0 };
    uint64_t tried = 0;
    for (uint32_t i = 0; i < NKEYS; tried++) {
        int n = snprintf(s->k[i], KEYLEN, "user:%" PRIu64, tried);
        if (aimed(rldi_siphash13(zero, s->k[i], (size_t)n), nb))
            s->len[i++] = (uint8_t)n;
    }
    return tried;
}

/* Random: "user:" and 16 random hex digits, as a stand-in for keys nobody chose. */
static void randomize(keyset *s)
{
    for (uint32_t i = 0; i < NKEYS; i++)
        s->len[i] = (uint8_t)snprintf(s->k[i], KEYLEN, "user:%016" PRIx64, rnd());
}

typedef struct result {
    uint64_t refused, found, aimed_at;
    double mean_probes;
    uint64_t insert_ns, lookup_ns;
    bool model_ok;
} result;

/* Clear M's table, insert every key of S (taking its token), look each one up again. */
static void run(keys_mem *m, const keyset *s, result *out, bool stats)
{
    keys_mem_clear(m);
    memset(out, 0, sizeof(*out));
    out->model_ok = true;
    /* ahead of the clock: a new key's state is made at max(caller's time, the clock's)
     * (keys.c), and these times must be the ones it uses */
    uint64_t now = mono_ns() + 1000000000000ull;
    uint64_t t0 = mono_ns();
    for (uint32_t i = 0; i < NKEYS; i++) {
        int r = keys_mem_try(m, s->k[i], s->len[i], 1, now += 1000, NULL);
        if (r == -ENOSPC)
            out->refused++;
        else if (r != 0) {
            fprintf(stderr, "%s: key %u: %d\n", s->name, i, r);
            exit(1);
        }
    }
    uint64_t t1 = mono_ns();
    rldi_u128 fnow = rldi_fp_from_ns(now);
    uint32_t nb = m->t.nbuckets;
    uint64_t probes = 0;
    for (uint32_t i = 0; i < NKEYS; i++) {
        uint32_t idx, gen;
        bool created;
        /* what rld_try_key does for a key that exists: hash, find (no lock); a refused key
         * is looked for in vain (all 32 places) and refused again */
        int r = rldi_key_get(&m->seg, &m->t, s->k[i], s->len[i], 0, false, fnow, &idx, &gen,
                             &created);
        if (r != 0 || !stats)
            continue;
        out->found++;
        uint32_t b[4], at = idx / RLDI_KEY_BUCKET;
        keys_mem_buckets(rldi_siphash13(m->seg.hdr->key_secret, s->k[i], s->len[i]), nb, b);
        int pos = -1, distinct = 0;
        for (int k = 0; k < 4 && pos < 0; k++) {
            bool dup = false;
            for (int j = 0; j < k; j++)
                dup |= b[j] == b[k];
            if (dup)
                continue;
            distinct++;
            if (b[k] == at)
                pos = distinct;
        }
        if (pos < 0)
            out->model_ok = false;
        probes += pos < 0 ? 4 : (uint64_t)pos;
        out->aimed_at += at <= nb / 8;       /* b1 and b2 below nb / 8: b1+1, b2+1 up to it */
    }
    uint64_t t2 = mono_ns();
    out->insert_ns = t1 - t0;
    out->lookup_ns = t2 - t1;
    out->mean_probes = out->found ? (double)probes / (double)out->found : 0;
}

static void report(const char *table, const keyset *s, const result *r)
{
    printf("  %-24s %-8s refused %6" PRIu64 "  in the aimed-at eighth %5.1f%%  buckets read per "
           "lookup %.3f  insert %6.1f ns/key  lookup %6.1f ns/key\n", table, s->name, r->refused,
           r->found ? 100.0 * (double)r->aimed_at / (double)r->found : 0.0, r->mean_probes,
           (double)r->insert_ns / NKEYS, (double)r->lookup_ns / NKEYS);
}

int main(void)
{
    uint64_t secret[2];
    if (getrandom(secret, sizeof(secret), 0) != sizeof(secret)) {
        perror("getrandom");
        return 1;
    }
    const char *seed = getenv("RLD_TEST_SEED");
    rng ^= seed ? strtoull(seed, NULL, 0) : secret[0];
    static const uint64_t zero[2] = { 0, 0 };
    keys_mem keyed, unkeyed;
    /* 1 per minute, burst 1: each key holds its token for a minute, so none is evicted */
    if (keys_mem_make(&keyed, MAX_KEYS, RLDI_ALGO_GCRA, 1, 60000000000ull, 1, secret) < 0 ||
        keys_mem_make(&unkeyed, MAX_KEYS, RLDI_ALGO_GCRA, 1, 60000000000ull, 1, zero) < 0) {
        fprintf(stderr, "cannot build the tables\n");
        return 1;
    }
    uint32_t nb = keyed.t.nbuckets;
    keyset rnd_set, crafted;
    alloc_set(&rnd_set, "random");
    alloc_set(&crafted, "crafted");
    randomize(&rnd_set);
    uint64_t t0 = mono_ns(), tried = craft(&crafted, nb);
    printf("test_keys_flood: %u keys in a table of max_keys %u (%u buckets, %u places); crafted "
           "keys: %" PRIu64 " candidates hashed (%.1f s) to keep %u whose two choices fall in the "
           "first eighth of the buckets under SipHash-1-3 keyed {0, 0}\n", NKEYS, MAX_KEYS, nb,
           nb * RLDI_KEY_BUCKET, tried, (double)(mono_ns() - t0) / 1e9, NKEYS);

    /* counts */
    result rr, rc, uc;
    run(&keyed, &rnd_set, &rr, true);
    run(&keyed, &crafted, &rc, true);
    run(&unkeyed, &crafted, &uc, true);
    report("segment's secret", &rnd_set, &rr);
    report("segment's secret", &crafted, &rc);
    report("secret {0, 0} (control)", &crafted, &uc);
    CHECK(rr.model_ok && rc.model_ok && uc.model_ok,
          "a key found outside its four buckets: keys.c's buckets_of changed, update keys_mem.h");
    /* the attack works against the unkeyed hash: the checks below can fail */
    CHECK(uc.refused > NKEYS / 2, "control: only %" PRIu64 " crafted keys refused", uc.refused);
    CHECK(uc.aimed_at == uc.found, "control: %" PRIu64 " of %" PRIu64 " in the aimed-at eighth",
          uc.aimed_at, uc.found);
    /* with the segment's secret, crafted keys behave as random ones */
    /* a 7/8 full table refuses about one new key in 30,000 near the end (DESIGN.md): a few
     * per 100,000 over the fill, for either set */
    CHECK(rc.refused <= 2 * rr.refused + 20, "crafted keys refused %" PRIu64 " times, random %"
          PRIu64, rc.refused, rr.refused);
    CHECK(rr.refused <= 30, "random keys refused %" PRIu64 " times at a 7/8 load", rr.refused);
    double share_r = (double)rr.aimed_at / (double)rr.found;
    double share_c = (double)rc.aimed_at / (double)rc.found;
    CHECK(share_c < share_r + 0.01 && share_c > share_r - 0.01,
          "crafted keys: %.2f%% in the aimed-at eighth, random %.2f%%", 100 * share_c,
          100 * share_r);
    CHECK(rc.mean_probes <= rr.mean_probes * 1.05, "crafted keys read %.3f buckets per lookup, "
          "random %.3f", rc.mean_probes, rr.mean_probes);

    /* time: fastest of REPS, sets interleaved */
    uint64_t best_r = UINT64_MAX, best_c = UINT64_MAX;
    for (int i = 0; i < 2 * REPS; i++) {       /* the order alternates: r c c r r c ... */
        result x;
        bool c = (i % 4 == 1 || i % 4 == 2);
        run(&keyed, c ? &crafted : &rnd_set, &x, false);
        uint64_t *best = c ? &best_c : &best_r;
        *best = x.insert_ns + x.lookup_ns < *best ? x.insert_ns + x.lookup_ns : *best;
    }
    uint64_t best_u = uc.insert_ns + uc.lookup_ns;
    double ratio = (double)best_c / (double)best_r;
    printf("  time to insert and look up every key, fastest of %d: random %.1f ms, crafted %.1f ms "
           "(%.2fx); crafted against the secret {0, 0} (once): %.1f ms (%.2fx)\n", REPS, best_r / 1e6,
           best_c / 1e6, ratio, best_u / 1e6, (double)best_u / (double)best_r);
    CHECK(ratio < 2.0, "crafted keys cost %.2fx random ones", ratio);

    keys_mem_free(&keyed);
    keys_mem_free(&unkeyed);
    free(rnd_set.k);
    free(rnd_set.len);
    free(crafted.k);
    free(crafted.len);
    if (failures) {
        fprintf(stderr, "test_keys_flood: %d checks failed (secret %016" PRIx64 "%016" PRIx64 ")\n",
                failures, secret[0], secret[1]);
        return 1;
    }
    printf("test_keys_flood: ok\n");
    return 0;
}
