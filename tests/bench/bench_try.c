/*
 * bench_try.c - cost of rld_try beside the physical floor, measured in the same run.
 *
 *   bench_try [--reps N] [--ms MS] [--csv]
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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

static const char *conf_text =
    "[limit bench.a]\nrate = 1000000000/s\nburst = 1000000000\n\n"
    "[limit bench.b]\nrate = 1000000000/s\nburst = 1000000000\n\n"
    "[limit bench.busy]\nrate = 1000000/s\nburst = 1000000000\n";

typedef struct shared {
    volatile int ready, go;
    volatile uint64_t calls[2];
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

static void run_worker(shared *sh, int id, enum kind k, int which, uint64_t ms, bool busy)
{
    rld_client *c = NULL;
    rld_limit lim;
    if (busy) {
        naive_t = 1000;
        naive_tau = 1000000000000ull;
    }
    if (k != NAIVE) {
        const char *name = busy ? "bench.busy" : which ? "bench.b" : "bench.a";
        if (rld_open(NULL, 0, &c) < 0 || rld_find(c, name, &lim) < 0)
            _exit(2);
    }
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);
    while (!sh->go)
        ;
    uint64_t end = clock_ns() + ms * 1000000u, n = 0;
    rld_result res;
    do {
        for (int i = 0; i < 256; i++) {
            if (k == NAIVE)
                naive_try(&sh->naive[which][0]);
            else
                rld_try(c, lim, 1, k == RLD_RES ? &res : NULL);
        }
        n += 256;
    } while (clock_ns() < end);
    sh->calls[id] = n;
    rld_close(c);
    _exit(0);
}

/* ns per call per process, averaged over the processes of one run. */
static double run(shared *sh, enum kind k, int nproc, bool same, uint64_t ms, bool busy)
{
    sh->ready = sh->go = 0;
    pid_t pids[2];
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            run_worker(sh, i, k, same ? 0 : i, ms, busy);
    }
    while (sh->ready < nproc)
        ;
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
    double sum = 0;
    for (int i = 0; i < nproc; i++)
        sum += (double)ms * 1e6 / (double)sh->calls[i];
    return sum / nproc;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stat3 { double med, min, max; } stat3;

static stat3 stats(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp);
    return (stat3){ v[n / 2], v[0], v[n - 1] };
}

int main(int argc, char **argv)
{
    int reps = 7;
    uint64_t ms = 300;
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            ms = (uint64_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--csv"))
            csv = true;
        else {
            fprintf(stderr, "usage: bench_try [--reps N] [--ms MS] [--csv]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 101 || ms < 10)
        return 2;
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
        /* interleave the kinds so drift in machine load hits all of them alike */
        for (int i = 0; i < reps; i++)
            for (int k = 0; k < 3; k++)
                v[k][i] = run(sh, (enum kind)k, rows[r].nproc, rows[r].same, ms, rows[r].busy);
        stat3 s[3];
        for (int k = 0; k < 3; k++)
            s[k] = stats(v[k], reps);
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
    t_daemon_stop(&d, SIGTERM);
    return 0;
}
