/*
 * peers.h - what bench_peers.c (the driver, the shared-memory rows and the table) and
 * peers_redis.c (the Redis rows) share. See docs/BENCHMARKS.md.
 */
#ifndef RLD_BENCH_PEERS_H
#define RLD_BENCH_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PEERS_MAX_REPS 101

/* Latency samples of one run: per call, in ns (saturated at UINT32_MAX, 4.29 s). */
typedef struct lat_run {
    double p50_ns, p99_ns;
    double per_s;          /* calls (round trips) per second, all clients together */
    uint64_t calls;        /* all clients together */
    uint64_t denied;       /* calls the limiter refused: the regime says none should be */
} lat_run;

/* CLOCK_MONOTONIC in ns. Inline: bench_peers' shared-memory rows read it in their timed
 * loops (the naive floor's clock read), as they did when it lived in bench_peers.c. */
static inline uint64_t peers_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* peers_common.c, linked into every driver (bench_peers, bench_try): */
/* Nearest-rank percentile Q (0..1) of N samples; sorts V in place. 0 when N is 0. */
double peers_percentile(uint32_t *v, size_t n, double q);

/* Set by SIGINT/SIGTERM/SIGHUP in bench_peers; long phases check it and stop early. */
extern volatile int peers_stop;

/* Median (the mean of the two middle values for even N), min and max of N <= PEERS_MAX_REPS
 * repetitions. */
typedef struct stat3 { double med, min, max; } stat3;
stat3 peers_stats(const double *v, int n);

/* Whole-machine CPU time from /proc/stat, in seconds: busy (user..softirq), steal, total;
 * and ours: this process and the children reaped so far. */
typedef struct cpustat { double busy, steal, total, own; } cpustat;
void peers_read_cpustat(cpustat *c);

/*
 * Keyed limits (peers_keys.c, issue 13): rld_try_key on template "bench.keys" beside rld_try
 * on the named limit "bench.a", each run in a forked process.
 */
/* PK_FLOOR: not a call of librld but the memory floor the random and new-key rows are
 * bound by: one dependent random read (a pointer chase, one pointer per cache line) over a
 * shared buffer of the key table's size, 4 KiB pages like the segment's. */
enum { PK_REF, PK_HOT, PK_RANDOM, PK_CREATE, PK_CREATE_FULL, PK_FLOOR, PK_COUNT };
typedef struct pk_stats {
    uint64_t calls, denied, errors;   /* errors: codes other than 0, -EAGAIN and -ENOSPC */
    uint64_t refused;                 /* -ENOSPC: a new key whose 32 places all hold state */
    uint64_t evictions;               /* idle keys reclaimed by the timed calls */
    uint64_t live_after;              /* the table's live keys after the last run */
    int first_error;                  /* the first of the errors */
} pk_stats;
const char *pk_name(int kind);
/* Make live keys "user:0000000".. of bench.keys, each 100 s in use (rld_debit): 0 or -1;
 * the time it took, the keys the full table refused and the live count after. */
int pk_prefill(uint32_t nkeys, double *secs, uint32_t *refused, uint64_t *live);
/* One run of KIND: ns per call by the wall clock (NAN on failure), and in *CPU_NS by the
 * process's CPU time; counts added to *ST. PK_REF, PK_HOT and
 * PK_RANDOM loop for MS ms (RANDOM over the NKEYS live keys); PK_CREATE times NCREATE new
 * keys "new:BASE+j"; PK_CREATE_FULL first fills every free place with idle keys, then does
 * the same with keys "nfu:BASE+j"; PK_FLOOR loops for MS ms over a buffer of the size of
 * an NKEYS table. */
double pk_run(int kind, uint64_t ms, uint32_t nkeys, uint32_t base, uint32_t ncreate,
              pk_stats *st, double *cpu_ns);

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
/* Per-key GCRA (issue 13): NKEYS keys "rl:key:user:NNNNNNN" written by the GCRA script,
 * each 100 s into use (as rld's keys), after a FLUSHALL; the growth of used_memory per key.
 * 0 or -1. */
int pr_keys_prefill(long nkeys, double *per_key);
/* One run: 1 client process, EVALSHA of the GCRA script (cost 1) on a random one of the
 * NKEYS keys per call, for MS ms. 0 or -1. */
int pr_keys_run(long nkeys, uint64_t ms, lat_run *out);
void pr_stop(void);
#endif

#endif
