/*
 * test_rng.h - the unit tests' random states: xorshift64*, reseeded per case from a base
 * that RLD_TEST_SEED replaces (printed at the start, so a failing run can be replayed).
 * Define TEST_SEED_DEFAULT before including it.
 */
#ifndef RLD_TEST_RNG_H
#define RLD_TEST_RNG_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t seed_base = TEST_SEED_DEFAULT, rng_state = TEST_SEED_DEFAULT;

static inline uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* The sequence of case SALT. */
static inline void reseed(uint64_t salt)
{
    rng_state = seed_base ^ (salt * 0x9e3779b97f4a7c15ull);
    if (!rng_state)
        rng_state = 1;
}

/* RLD_TEST_SEED over the default, said on stdout as PROG: RLD_TEST_SEED=0x... */
static inline void seed_from_env(const char *prog)
{
    const char *env = getenv("RLD_TEST_SEED");
    if (env && *env)
        seed_base = strtoull(env, NULL, 0);
    rng_state = seed_base ? seed_base : 1;
    printf("%s: RLD_TEST_SEED=0x%016" PRIx64 "\n", prog, seed_base);
}

#endif
