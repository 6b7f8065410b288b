/*
 * peers_common.c - what every driver of peers_redis.c and peers_keys.c shares (bench_peers
 * and bench_try): the stop flag, the percentile, the median of the repetitions and the
 * machine's CPU time, one copy each (see peers.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

stat3 peers_stats(const double *in, int n)
{
    double v[PEERS_MAX_REPS];
    memcpy(v, in, (size_t)n * sizeof(double));
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    /* even N: the mean of the two middle values */
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (stat3){ med, v[0], v[n - 1] };
}

void peers_read_cpustat(cpustat *c)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                     &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
        memset(v, 0, sizeof(v));
    if (f)
        fclose(f);
    double hz = (double)sysconf(_SC_CLK_TCK);
    c->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
    c->steal = (double)v[7] / hz;
    c->total = (double)(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / hz;
    /* ours: this process and every child reaped so far (workers, clients, redis-server) */
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    c->own = (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
             (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
                      b.ru_stime.tv_usec) / 1e6;
}
