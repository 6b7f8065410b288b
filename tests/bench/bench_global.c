/*
 * bench_global.c - rld_try on a global limit (scope = global, leased from Redis) beside the
 * same call on a host limit, in the same run; and the Redis calls the daemon makes.
 *
 *   bench_global [--reps N] [--ms MS]
 *
 * Starts its own redis-server (private Unix socket, no persistence) and rld on a private
 * instance with two limits of 10^9 tokens per second: bench.host (scope = host) and
 * bench.global (scope = global). After a warm-up that lets the daemon's leases grow to the
 * demand, each repetition runs a tight loop of rld_try(c, lim, 1, &res) for MS milliseconds
 * on one limit then the other (order alternating); ns per call, calls admitted, and the
 * daemon's lease calls per second over the global runs (its Stats reply).
 * Exit 77 without redis-server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

static pid_t redis_pid;
static char redis_sock[400];

static void stop_redis(void)
{
    t_redis_stop(redis_pid, redis_sock);
}

/* The daemon's Redis calls so far (its own Stats reply). */
static uint64_t lease_calls(const t_daemon *d)
{
    t_stats st;
    t_daemon_stats(d, &st);
    return st.lease_calls;
}

/* ns per call of a loop of MS ms; *OK admitted of *CALLS calls. */
static double run(rld_client *c, rld_limit l, uint64_t ms, uint64_t *ok, uint64_t *ncalls)
{
    uint64_t calls = 0, good = 0, end = t_now_ns() + ms * 1000000u, t0 = t_now_ns();
    rld_result r;
    for (;;) {
        for (int i = 0; i < 256; i++)
            good += rld_try(c, l, 1, &r) == 0;
        calls += 256;
        if (t_now_ns() >= end)
            break;
    }
    *ok = good;
    *ncalls = calls;
    return (double)(t_now_ns() - t0) / (double)calls;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int reps = 5;
    uint64_t ms = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            ms = strtoull(argv[++i], NULL, 10);
        else
            reps = 0;                       /* unknown: the usage below */
    }
    if (reps < 1 || reps > 50 || ms < 10) {
        fprintf(stderr, "usage: bench_global [--reps 1-50] [--ms MS >= 10]\n");
        return 2;
    }
    if (!t_have("redis-server")) {
        fprintf(stderr, "SKIP: no redis-server (apt-get install redis-server)\n");
        return T_SKIP;
    }
    t_daemon d;
    t_instance(&d, "bglobal", "");
    char conf[1024];
    redis_pid = t_redis_start(d.dir, 0, NULL, redis_sock, sizeof(redis_sock));
    atexit(stop_redis);
    snprintf(conf, sizeof(conf),
             "[redis]\nurl = unix://%s\n\n"
             "[limit bench.host]\nrate = 1000000000/s\nburst = 1000000000\n\n"
             "[limit bench.global]\nrate = 1000000000/s\nburst = 1000000000\nscope = global\n",
             redis_sock);
    t_write_conf(&d, conf);
    if (t_daemon_start(&d, NULL) < 0) {
        fprintf(stderr, "rld did not start (RLD_BIN: %s; its log: %s)\n", t_rld_bin(), d.log);
        return 1;
    }
    rld_client *c;
    rld_limit h, g;
    if (rld_open(d.instance, 0, &c) < 0 || rld_find(c, "bench.host", &h) < 0 ||
        rld_find(c, "bench.global", &g) < 0) {
        fprintf(stderr, "cannot open the limits\n");
        return 1;
    }
    uint64_t ok, n;
    run(c, g, 1500, &ok, &n);                 /* warm-up: leases grow to the demand */
    run(c, h, 200, &ok, &n);
    double host[50], glob[50], gtime = 0;
    uint64_t hok = 0, gok = 0, hcalls = 0, gcalls = 0, lc = 0;
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < 2; k++) {
            bool global = (r + k) % 2;
            uint64_t c0 = global ? lease_calls(&d) : 0, t0 = t_now_ns();
            double ns = run(c, global ? g : h, ms, &ok, &n);
            if (global) {
                gtime += (double)(t_now_ns() - t0) / 1e9;
                lc += lease_calls(&d) - c0;
                glob[r] = ns;
                gok += ok;
                gcalls += n;
            } else {
                host[r] = ns;
                hok += ok;
                hcalls += n;
            }
        }
    }
    double hs[50], gs[50];
    memcpy(hs, host, sizeof(double) * (size_t)reps);
    memcpy(gs, glob, sizeof(double) * (size_t)reps);
    qsort(hs, (size_t)reps, sizeof(double), cmp);
    qsort(gs, (size_t)reps, sizeof(double), cmp);
    printf("bench_global: %d reps x %llu ms, rld_try(c, lim, 1, &res), 1 process\n", reps,
           (unsigned long long)ms);
    printf("  host limit    %7.2f ns/call (min-max %.2f-%.2f), %.4f%% admitted\n", hs[reps / 2],
           hs[0], hs[reps - 1], 100.0 * (double)hok / (double)(hcalls ? hcalls : 1));
    printf("  global limit  %7.2f ns/call (min-max %.2f-%.2f), %.4f%% admitted\n", gs[reps / 2],
           gs[0], gs[reps - 1], 100.0 * (double)gok / (double)(gcalls ? gcalls : 1));
    printf("  global / host %.3fx; Redis calls during the global runs: %.1f per second\n",
           gs[reps / 2] / hs[reps / 2], gtime > 0 ? (double)lc / gtime : 0.0);
    rld_close(c);
    t_daemon_stop(&d, SIGTERM);
    return 0;
}
