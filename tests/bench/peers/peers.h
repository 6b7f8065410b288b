/*
 * peers.h - what bench_peers.c (the driver, the shared-memory rows and the table) and
 * peers_redis.c (the Redis rows) share. See docs/BENCHMARKS.md.
 */
#ifndef RLD_BENCH_PEERS_H
#define RLD_BENCH_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEERS_MAX_REPS 101

/* Latency samples of one run: per call, in ns (saturated at UINT32_MAX, 4.29 s). */
typedef struct lat_run {
    double p50_ns, p99_ns;
    double per_s;          /* calls (round trips) per second, all clients together */
    uint64_t calls;        /* all clients together */
    uint64_t denied;       /* calls the limiter refused: the regime says none should be */
} lat_run;

uint64_t peers_clock_ns(void);

/* Nearest-rank percentile Q (0..1) of N samples; sorts V in place. 0 when N is 0. */
double peers_percentile(uint32_t *v, size_t n, double q);

/* Set by SIGINT/SIGTERM/SIGHUP in the driver; long phases check it and stop early. */
extern volatile int peers_stop;

#ifdef RLD_HAVE_HIREDIS
/*
 * The Redis peer (peers_redis.c). A private redis-server is started on 127.0.0.1 on a port
 * we pick, without persistence, and stopped by its PID at pr_stop() and at exit (atexit),
 * also when the benchmark fails; it dies with us if we are killed (PR_SET_PDEATHSIG).
 */
enum { PR_TOKEN_BUCKET, PR_GCRA, PR_NSCRIPTS,
       PR_PING = PR_NSCRIPTS,     /* pr_run only: a bare PING, the floor of any Redis call */
       PR_SLIDING_LOG,            /* pr_run only (bench_try): the usual Redis window limiters */
       PR_FIXED_WINDOW,
       PR_NALL };

/* 0, or -1 with the reason in WHY (redis-server missing, failed to start...). */
int pr_start(char *why, size_t whylen);
const char *pr_version(void);
const char *pr_script_name(int script);
/* One run: NCLIENTS processes (1 or 2) call EVALSHA SCRIPT on one shared key for MS ms.
 * 0, or -1 on any error (printed). */
int pr_run(int script, int nclients, uint64_t ms, lat_run *out);
/* MEMORY USAGE of one key written by SCRIPT, and used_memory growth per key over NKEYS
 * keys written by SCRIPT (pipelined). 0 or -1. */
int pr_memory(int script, long nkeys, double *usage, double *per_key);
void pr_stop(void);
#endif

#endif
