/*
 * peers_common.c - what every driver of peers_redis.c and peers_keys.c shares (bench_peers
 * and bench_try): the stop flag and the percentile, one copy (see peers.h).
 */
#include <math.h>
#include <stdlib.h>

#include "peers.h"

volatile int peers_stop;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

double peers_percentile(uint32_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u32);
    size_t rank = (size_t)ceil(q * (double)n);
    return v[rank ? rank - 1 : 0];
}
