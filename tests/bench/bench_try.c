/*
 * bench_try.c - cost of rld_try beside the physical floor, measured in the same run.
 *
 *   bench_try [--reps N] [--ms MS] [--csv] [--windows | --no-windows] [--no-redis]
 *
 * The floor is a naive GCRA on shared memory: clock_gettime + load + 64-bit CAS on a word
 * in its own cache line, integer-ns interval. rld_try is measured on a real instance (a
 * daemon is started on a private instance) in the same regime: a limit fast enough that
 * every call is admitted, so every call reads the clock and publishes with a CAS.
 *
 * Rows: 1 process; 2 processes on one limit (contended line); 2 processes on two limits;
 * and a busy bucket (1 token per us, 1000 s of burst: TAT runs ahead of the clock), where
 * rld_try decides with the coarse clock (client.c try_coarse) and the floor still reads the
 * precise one. The busy rows are reset between runs (a fresh daemon instance each time is
 * not needed: 1000 s of tolerance outlasts the benchmark).
 * Each row runs REPS times; we print the median ns/op with min-max, and the ratio of the
 * medians rld/naive. Time-based: each process counts calls during MS milliseconds.
 *
 * Window limits (issue 14), a second table: rld_try on a sliding and on a fixed window
 * beside a GCRA limit in the same configuration and run (the target: <= 2x GCRA), with and
 * without a result, in three configurations: 1 process with every call admitted (limits
 * far above the call rate, so every call publishes with a CAS), 2 processes on one limit
 * (admitted, contended line) and 1 process with every call denied (limits of 1 per hour,
 * spent before the rows). Each row gives ns per call by the wall clock (as above) and by
 * the workers' own CPU time (CLOCK_THREAD_CPUTIME_ID around the loop), which time slices
 * lost to other processes do not inflate. Then, when built with hiredis and a redis-server
 * is found, the usual Redis window limiters (a sorted-set sliding log and an INCRBY +
 * PEXPIRE fixed window, EVALSHA from 1 client) and the GCRA script of bench_peers, in the
 * same run (peers/peers_redis.c), their p50 latency beside rld_try on the same algorithm.
 * --windows: the second table (and Redis) only; --no-windows: the first only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "peers/peers.h"
#include "rld.h"

/* Window limits admit at most 16,777,215 (sliding) and 4,294,967,295 (fixed) per period:
 * periods short enough that ~40 M calls/s never fill them (sliding: 160 M/s, sub-windows
 * of 6.25 ms, the head moves every ~200,000 calls; fixed: 4 G/s, a new window every
 * second). The .deny limits are spent once before the rows: every call is then denied. */
static const char *conf_text =
    "[limit bench.a]\nrate = 1000000000/s\nburst = 1000000000\n\n"
    "[limit bench.b]\nrate = 1000000000/s\nburst = 1000000000\n\n"
    "[limit bench.busy]\nrate = 1000000/s\nburst = 1000000000\n\n"
    "[limit bench.sliding]\nrate = 16000000/100ms\nalgorithm = sliding\n\n"
    "[limit bench.fixed]\nrate = 4000000000/s\nalgorithm = fixed\n\n"
    "[limit bench.gcra.deny]\nrate = 1/h\nburst = 1\n\n"
    "[limit bench.sliding.deny]\nrate = 1/h\nalgorithm = sliding\n\n"
    "[limit bench.fixed.deny]\nrate = 1/h\nalgorithm = fixed\n";

typedef struct shared {
    volatile int ready, go;
    volatile uint64_t calls[2], admitted[2], cpu_ns[2];
    _Alignas(128) uint64_t naive[2][16];     /* two naive buckets, 128 B apart */
} shared;

static inline uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The floor: what a careful engineer would write in ten lines. Same regime as the limit:
 * T = 1 ns and tau = 1 s (always idle), or T = 1 us and tau = 1000 s (busy: TAT runs ahead). */
static uint64_t naive_t = 1, naive_tau = 1000000000u;

static inline int naive_try(uint64_t *tat)
{
    uint64_t now = clock_ns();
    uint64_t old = __atomic_load_n(tat, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t t0 = old > now ? old : now;
        uint64_t nw = t0 + naive_t;
        if (nw - now > naive_tau)
            return -1;
        if (__atomic_compare_exchange_n(tat, &old, nw, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return 0;
    }
}

enum kind { NAIVE, RLD_RES, RLD_NULL };

/* The last run's calls and admissions, all processes together (the regime check), its ns
 * per call of the workers' own CPU time, and the window table's calls (to set beside a
 * count of system calls: strace -f -c). */
static uint64_t last_calls, last_admitted, window_calls;
static double last_cpu;

static inline uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* NAME: the limit a worker of kind RLD_* calls (NULL: the GCRA rows' choice by WHICH, BUSY) */
static void run_worker(shared *sh, int id, enum kind k, int which, uint64_t ms, bool busy,
                       const char *name)
{
    rld_client *c = NULL;
    rld_limit lim;
    if (busy) {
        naive_t = 1000;
        naive_tau = 1000000000000ull;
    }
    if (k != NAIVE) {
        if (!name)
            name = busy ? "bench.busy" : which ? "bench.b" : "bench.a";
        if (rld_open(NULL, 0, &c) < 0 || rld_find(c, name, &lim) < 0) {
            fprintf(stderr, "bench worker: cannot open the instance or find %s\n", name);
            __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);   /* run() must not wait */
            _exit(2);
        }
    }
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);
    while (!sh->go)
        ;
    uint64_t end = clock_ns() + ms * 1000000u, n = 0, ok = 0, cpu0 = cpu_now_ns();
    rld_result res;
    do {
        for (int i = 0; i < 256; i++) {
            if (k == NAIVE)
                ok += naive_try(&sh->naive[which][0]) == 0;
            else
                ok += rld_try(c, lim, 1, k == RLD_RES ? &res : NULL) == 0;
        }
        n += 256;
    } while (clock_ns() < end);
    sh->cpu_ns[id] = cpu_now_ns() - cpu0;
    sh->calls[id] = n;
    sh->admitted[id] = ok;
    rld_close(c);
    _exit(0);
}

/* ns per call per process, averaged over the processes of one run. NAME as run_worker's. */
static double run(shared *sh, enum kind k, int nproc, bool same, uint64_t ms, bool busy,
                  const char *name)
{
    sh->ready = sh->go = 0;
    pid_t pids[2];
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            exit(1);
        }
        if (pids[i] == 0)
            run_worker(sh, i, k, same ? 0 : i, ms, busy, name);
    }
    /* a worker that died before it was ready would leave us spinning here for good */
    for (uint64_t deadline = clock_ns() + 10000000000ull; sh->ready < nproc;)
        if (clock_ns() > deadline) {
            fprintf(stderr, "bench workers not ready in 10 s\n");
            exit(1);
        }
    sh->go = 1;
    int st, bad = 0;
    for (int i = 0; i < nproc; i++) {
        waitpid(pids[i], &st, 0);   /* not wait(): the daemon is our child too */
        bad |= !WIFEXITED(st) || WEXITSTATUS(st);
    }
    if (bad) {
        fprintf(stderr, "bench worker failed\n");
        exit(1);
    }
    double sum = 0, cpu = 0;
    uint64_t calls = 0, admitted = 0;
    for (int i = 0; i < nproc; i++) {
        sum += (double)ms * 1e6 / (double)sh->calls[i];
        cpu += (double)sh->cpu_ns[i] / (double)sh->calls[i];
        calls += sh->calls[i];
        admitted += sh->admitted[i];
    }
    last_calls = calls;
    last_admitted = admitted;
    last_cpu = cpu / nproc;
    return sum / nproc;
}

/* A window-table row: wall-clock and CPU-time medians (min-max), each with its x GCRA. */
static void print_row(bool csv, const char *conf, const char *kind, stat3 w, double wx,
                      stat3 c, double cx)
{
    if (csv)
        printf("%s,%s,%.2f,%.2f,%.2f,%.3f,%.2f,%.2f,%.2f,%.3f\n", conf, kind, w.med, w.min,
               w.max, wx, c.med, c.min, c.max, cx);
    else
        printf("%-33s %-16s %6.1f %6.1f-%-6.1f %5.2fx   %6.1f %6.1f-%-6.1f %5.2fx\n", conf,
               kind, w.med, w.min, w.max, wx, c.med, c.min, c.max, cx);
}

/* The first table: rld_try beside the naive floor (GCRA limits). */
/* Returns false if a row's regime did not hold: every call admitted (the busy bucket's
 * 1000 s of tolerance is spent after ~100 s of calls: --reps and --ms that large deny). */
static bool gcra_table(shared *sh, int reps, uint64_t ms, bool csv)
{
    bool ok = true;
    static const struct { const char *name; int nproc; bool same, busy; } rows[] = {
        { "1 process", 1, true, false },
        { "2 processes, one limit", 2, true, false },
        { "2 processes, two limits", 2, false, false },
        { "1 process, busy bucket", 1, true, true },
        { "2 processes, busy bucket", 2, true, true },
    };
    static const char *kinds[] = { "naive CAS floor", "rld_try (result)", "rld_try (NULL)" };
    if (csv)
        printf("row,kind,median_ns,min_ns,max_ns,ratio_vs_naive\n");
    else
        printf("%-26s %-18s %9s %17s %8s\n", "configuration", "call", "median", "min-max", "ratio");
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        double v[3][101];
        uint64_t calls = 0, admitted = 0;
        /* interleave the kinds so drift in machine load hits all of them alike */
        for (int i = 0; i < reps; i++)
            for (int k = 0; k < 3; k++) {
                v[k][i] = run(sh, (enum kind)k, rows[r].nproc, rows[r].same, ms, rows[r].busy,
                              NULL);
                calls += last_calls;
                admitted += last_admitted;
            }
        if (admitted != calls) {
            fprintf(stderr, "%s: %llu of %llu calls admitted: not the intended regime\n",
                    rows[r].name, (unsigned long long)admitted, (unsigned long long)calls);
            ok = false;
        }
        stat3 s[3];
        for (int k = 0; k < 3; k++)
            s[k] = peers_stats(v[k], reps);
        for (int k = 0; k < 3; k++) {
            double ratio = s[k].med / s[0].med;
            if (csv)
                printf("%s,%s,%.2f,%.2f,%.2f,%.3f\n", rows[r].name, kinds[k], s[k].med, s[k].min,
                       s[k].max, ratio);
            else
                printf("%-26s %-18s %7.1f ns %7.1f-%-7.1f ns %7.2fx\n", rows[r].name, kinds[k],
                       s[k].med, s[k].min, s[k].max, ratio);
        }
    }
    return ok;
}

enum { W_GCRA, W_SLIDING, W_FIXED, W_ALGOS };
static const char *const algo_names[W_ALGOS] = { "GCRA", "sliding", "fixed" };

/*
 * The second table: window limits beside a GCRA limit, same configuration, same run. Kinds
 * interleave within each repetition. x GCRA = the row's median / the GCRA limit's median
 * with the same result argument. *ADMIT_RES: the 1-process admitted medians with a result,
 * per algorithm (the Redis rows' reference). Returns false if a regime did not hold.
 */
static bool window_table(shared *sh, int reps, uint64_t ms, bool csv, double *admit_res)
{
    static const struct {
        const char *name;
        int nproc;
        bool deny;
        const char *lim[W_ALGOS];
    } rows[] = {
        { "1 process, all admitted", 1, false, { "bench.a", "bench.sliding", "bench.fixed" } },
        { "2 processes, one limit, admitted", 2, false,
          { "bench.a", "bench.sliding", "bench.fixed" } },
        { "1 process, all denied", 1, true,
          { "bench.gcra.deny", "bench.sliding.deny", "bench.fixed.deny" } },
    };
    /* spend the 1-per-hour limits: every call of the denied rows is then refused (a fixed
     * window may open again at the hour: one admission in a run) */
    rld_client *c;
    if (rld_open(NULL, 0, &c) < 0)
        return false;
    for (int a = 0; a < W_ALGOS; a++) {
        rld_limit l;
        if (rld_find(c, rows[2].lim[a], &l) < 0)
            return false;
        rld_try(c, l, 1, NULL);
    }
    rld_close(c);

    bool ok = true;
    if (csv)
        printf("window_row,kind,median_ns,min_ns,max_ns,ratio_vs_gcra,"
               "cpu_median_ns,cpu_min_ns,cpu_max_ns,cpu_ratio_vs_gcra\n");
    else
        printf("\nwindow limits (issue 14): rld_try, ns per call per process, by the wall clock "
               "and by the worker's own CPU time (not inflated by time slices lost to other "
               "processes); median, min-max; x GCRA = median / the GCRA limit's median, same "
               "configuration and result argument, same run\n"
               "%-33s %-16s %6s %13s %6s   %6s %13s %6s\n", "configuration", "call", "wall",
               "min-max", "x GCRA", "cpu", "min-max", "x GCRA");
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        double v[2][W_ALGOS][101], u[2][W_ALGOS][101];
        uint64_t calls = 0, admitted = 0;
        for (int i = 0; i < reps; i++)
            for (int res = 0; res < 2; res++)
                for (int a = 0; a < W_ALGOS; a++) {
                    v[res][a][i] = run(sh, res ? RLD_NULL : RLD_RES, rows[r].nproc, true, ms,
                                       false, rows[r].lim[a]);
                    u[res][a][i] = last_cpu;
                    calls += last_calls;
                    admitted += last_admitted;
                    window_calls += last_calls;
                }
        for (int res = 0; res < 2; res++) {
            stat3 st[W_ALGOS], ct[W_ALGOS];
            for (int a = 0; a < W_ALGOS; a++) {
                st[a] = peers_stats(v[res][a], reps);
                ct[a] = peers_stats(u[res][a], reps);
            }
            for (int a = 0; a < W_ALGOS; a++) {
                char kind[32];
                snprintf(kind, sizeof(kind), "%s (%s)", algo_names[a], res ? "NULL" : "result");
                print_row(csv, rows[r].name, kind, st[a], st[a].med / st[W_GCRA].med, ct[a],
                          ct[a].med / ct[W_GCRA].med);
                if (r == 0 && res == 0)
                    admit_res[a] = st[a].med;
            }
        }
        /* the regime: admitted rows admit every call, denied rows (nearly) none */
        bool held = rows[r].deny ? admitted <= 3 : admitted == calls;
        if (!held) {
            fprintf(stderr, "%s: %llu of %llu calls admitted: not the intended regime\n",
                    rows[r].name, (unsigned long long)admitted, (unsigned long long)calls);
            ok = false;
        }
    }
    return ok;
}

#ifdef RLD_HAVE_HIREDIS
/* The usual Redis window limiters and the GCRA script, 1 client, interleaved; p50 latency
 * beside rld_try (result, 1 process, admitted) on the same algorithm. */
static bool redis_rows(int reps, uint64_t ms, bool csv, const double *admit_res)
{
    char why[256];
    if (pr_start(why, sizeof(why)) < 0) {
        printf("%sRedis rows skipped: %s\n", csv ? "# " : "\n", why);
        return true;
    }
    static const struct { int script, algo; const char *what; } rows[] = {
        { PR_SLIDING_LOG, W_SLIDING, "sliding log: ZREMRANGEBYSCORE ZCARD ZADD PEXPIRE" },
        { PR_FIXED_WINDOW, W_FIXED, "fixed window: INCRBY PEXPIRE" },
        { PR_GCRA, W_GCRA, "GCRA (bench_peers' script)" },
    };
    enum { NR = sizeof(rows) / sizeof(rows[0]) };
    double p50[NR][101], p99[NR][101];
    bool ok = true;
    for (int i = 0; i < reps && ok; i++)
        for (int r = 0; r < NR && ok; r++) {
            lat_run lr;
            if (pr_run(rows[r].script, 1, ms, &lr) < 0 || lr.denied) {
                fprintf(stderr, "redis %s: failed or denied\n", pr_script_name(rows[r].script));
                ok = false;
                break;
            }
            p50[r][i] = lr.p50_ns;
            p99[r][i] = lr.p99_ns;
        }
    pr_stop();
    if (!ok)
        return false;
    if (csv)
        printf("redis_row,kind,p50_median_ns,p50_min_ns,p50_max_ns,ratio_vs_rld\n");
    else
        printf("\nRedis %s, EVALSHA over loopback TCP from hiredis, 1 client, every call admitted: "
               "p50 latency per call (median of the reps' p50, min-max), p99 (median); x rld = "
               "p50 / rld_try (result, 1 process, admitted) on the same algorithm\n",
               pr_version());
    for (int r = 0; r < NR; r++) {
        stat3 st = peers_stats(p50[r], reps), s99 = peers_stats(p99[r], reps);
        double x = st.med / admit_res[rows[r].algo];
        if (csv)
            printf("%s,EVALSHA p50,%.0f,%.0f,%.0f,%.1f\n", pr_script_name(rows[r].script), st.med,
                   st.min, st.max, x);
        else
            printf("  %-50s %7.2f us %7.2f-%-7.2f us  p99 %7.2f us %7.0fx\n", rows[r].what,
                   st.med / 1e3, st.min / 1e3, st.max / 1e3, s99.med / 1e3, x);
    }
    return true;
}
#endif

static void loadavg(char *out, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = 0;
    if (f) {
        if (!fgets(out, (int)len, f))
            out[0] = 0;
        fclose(f);
    }
    out[strcspn(out, " ")] = 0;
}

int main(int argc, char **argv)
{
    int reps = 7;
    uint64_t ms = 300;
    bool csv = false, gcra = true, windows = true, redis = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            ms = (uint64_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--csv"))
            csv = true;
        else if (!strcmp(argv[i], "--windows"))
            gcra = false;
        else if (!strcmp(argv[i], "--no-windows"))
            windows = false;
        else if (!strcmp(argv[i], "--no-redis"))
            redis = false;
        else {
            fprintf(stderr, "usage: bench_try [--reps N] [--ms MS] [--csv] [--windows | "
                            "--no-windows] [--no-redis]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 101 || ms < 10) {
        fprintf(stderr, "bench_try: --reps is 1-101, --ms at least 10\n");
        return 2;
    }
    t_daemon d;
    t_instance(&d, "bench", conf_text);
    if (t_daemon_start(&d, NULL) < 0) {
        fprintf(stderr, "cannot start rld (set RLD_BIN)\n");
        return 1;
    }
    shared *sh = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    memset(sh, 0, sizeof(*sh));
    char load0[32], load1[32];
    loadavg(load0, sizeof(load0));
    cpustat cs0, cs1;
    peers_read_cpustat(&cs0);

    bool ok = true;
    if (gcra)
        ok = gcra_table(sh, reps, ms, csv);
    if (windows) {
        double admit_res[W_ALGOS] = { 0 };
        if (!csv)
            printf("%s", gcra ? "\n" : "");
        ok = window_table(sh, reps, ms, csv, admit_res) && ok;
#ifdef RLD_HAVE_HIREDIS
        if (ok && redis)
            ok = redis_rows(reps, ms, csv, admit_res);
#else
        if (redis)
            printf("%sRedis rows skipped: built without hiredis (apt-get install "
                   "libhiredis-dev)\n", csv ? "# " : "\n");
#endif
    }
    loadavg(load1, sizeof(load1));
    t_daemon_stop(&d, SIGTERM);     /* reaped: its CPU time counts as ours */
    peers_read_cpustat(&cs1);
    double dt = cs1.total - cs0.total, other = NAN;
    if (dt > 0 && cs0.total > 0)
        other = ((cs1.busy - cs0.busy) - (cs1.own - cs0.own)) / dt * 100;
    if (!csv)
        printf("\n%d reps x %llu ms per row; load average %s at the start, %s at the end; other "
               "processes used %.1f%% of the CPUs' time%s; %llu rld_try calls in the window "
               "rows\n", reps, (unsigned long long)ms, load0, load1, other < 0 ? 0 : other,
               other > 5 ? " (NOT a quiet machine: times are inflated)" : "",
               (unsigned long long)window_calls);
    return ok ? 0 : 1;
}
