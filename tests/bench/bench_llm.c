/*
 * bench_llm.c - 8 worker processes share "requests AND tokens" (the examples/llm_worker.c
 * case), each call 1 request + 1,500 model tokens, 300 given back after the call. Two ways to
 * wait, measured in the same run on the same private rld:
 *
 *   old  rld_try_multi; when denied rld_wait on the denying limit, rld_refund, try again
 *        (the pattern llm_worker.c shipped before rld_wait_multi)
 *   new  rld_wait_multi: the pair queued at the daemon, taken when both fit
 *
 * Per run: admissions, daemon requests per admission (the daemon's own request counter),
 * daemon CPU per admission, and the spread of admissions across workers ((max - min) / mean).
 * Rates are the real ones (3,500/min, 90,000/min) times --scale (default 100), bursts small
 * so that the workers wait most of the time, as they do once a minute's budget is spent.
 *
 *   bench_llm [--ms RUN_MS] [--reps N] [--workers N] [--scale S] [--check]
 *
 * --check (the ctest smoke) exits 1 unless "new" needs at most 2 requests per admission.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

#define MAXW 64
enum { COST = 1500, GIVE_BACK = 300 };

typedef struct shared {
    volatile int go, stop;
    uint64_t admitted[MAXW];
} shared;

static shared *sh;

/* The daemon's request counter (the harness's Stats probe: a failed probe fails the run
 * rather than making a count out of nothing). */
static uint64_t daemon_requests(const t_daemon *d)
{
    t_stats st;
    t_daemon_stats(d, &st);
    return st.requests;
}

static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void worker(int i, int mode)
{
    rld_client *c;
    rld_limit req, tok;
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "llm.requests", &req) < 0 ||
        rld_find(c, "llm.tokens", &tok) < 0)
        _exit(2);
    while (!sh->go)
        usleep(100);
    while (!sh->stop) {
        rld_charge ch[2] = { { req, 1 }, { tok, COST } };
        rld_result res;
        int r;
        if (mode == 0) {
            while ((r = rld_try_multi(c, ch, 2, &res)) == -EAGAIN && !sh->stop) {
                rld_limit lim = ch[res.index].limit;
                uint64_t cost = ch[res.index].cost;
                if (rld_wait(c, lim, cost, 1000000000LL, &res) == 0)
                    rld_refund(c, lim, cost);
            }
        } else {
            r = rld_wait_multi(c, ch, 2, 1000000000LL, NULL, &res);
        }
        if (r == 0 && !sh->stop) {
            __atomic_add_fetch(&sh->admitted[i], 1, __ATOMIC_RELAXED);
            rld_refund(c, tok, GIVE_BACK);
        } else if (r == 0) {
            rld_refund(c, tok, COST);           /* admitted after the end: not counted */
            rld_refund(c, req, 1);
        }
    }
    rld_close(c);
    _exit(0);
}

typedef struct run {
    uint64_t admissions, requests;
    double   per_adm, cpu_ms_per_adm, spread;
    uint64_t min, max;
} run;

static run one_run(const t_daemon *d, int mode, int workers, int ms)
{
    memset(sh, 0, sizeof(*sh));
    t_sleep_ns(300000000);                      /* buckets refill */
    pid_t p[MAXW];
    for (int i = 0; i < workers; i++) {
        p[i] = fork();
        T_CHECK(p[i] >= 0, "fork: %s", strerror(errno));
        if (p[i] == 0)
            worker(i, mode);
    }
    t_sleep_ns(200000000);                      /* all opened */
    uint64_t q0 = daemon_requests(d);
    double c0 = cpu_s(d->pid);
    sh->go = 1;
    t_sleep_ns((uint64_t)ms * 1000000u);
    sh->stop = 1;
    double c1 = cpu_s(d->pid);
    uint64_t q1 = daemon_requests(d);
    /* a worker that could not open the instance would leave its share out of the counts */
    T_CHECK(t_reap_all(p, workers, "worker") == 0,
            "a worker failed (above; 2: cannot open the instance or its limits)");
    run r = { 0 };
    r.min = UINT64_MAX;
    for (int i = 0; i < workers; i++) {
        r.admissions += sh->admitted[i];
        if (sh->admitted[i] < r.min)
            r.min = sh->admitted[i];
        if (sh->admitted[i] > r.max)
            r.max = sh->admitted[i];
    }
    r.requests = q1 - q0 - 2;                   /* less the probe's own Hello and Stats */
    r.per_adm = r.admissions ? (double)r.requests / (double)r.admissions : 0;
    r.cpu_ms_per_adm = r.admissions ? (c1 - c0) * 1e3 / (double)r.admissions : 0;
    double mean = (double)r.admissions / workers;
    r.spread = mean > 0 ? (double)(r.max - r.min) / mean : 0;
    return r;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int ms = 3000, reps = 3, workers = 8, scale = 100, check = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check"))
            check = 1;
        else
            workers = 0;                        /* unknown: the usage below */
    }
    if (workers < 1 || workers > MAXW || reps < 1 || reps > 99 || ms < 100 || scale < 1) {
        fprintf(stderr, "usage: bench_llm [--ms RUN_MS >= 100] [--reps 1-99] [--workers 1-%d] "
                        "[--scale S >= 1] [--check]\n", MAXW);
        return 2;
    }
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));
    char conf[256];
    snprintf(conf, sizeof(conf),
             "[limit llm.requests]\nrate = %d/min\nburst = 10\n\n"
             "[limit llm.tokens]\nrate = %d/min\nburst = 3000\n", 3500 * scale, 90000 * scale);
    t_daemon d;
    t_instance(&d, "bench-llm", conf);
    if (t_daemon_start(&d, NULL) != 0) {
        fprintf(stderr, "bench_llm: rld did not start (RLD_BIN: %s; its log: %s)\n", t_rld_bin(),
                d.log);
        return 1;
    }
    printf("bench_llm: %d workers, 1 request + %d tokens per call (%d given back), rates "
           "%d/min and %d/min, %d ms per run, %d reps\n\n", workers, COST, GIVE_BACK,
           3500 * scale, 90000 * scale, ms, reps);
    printf("%-4s %4s %11s %9s %13s %12s %9s %9s\n", "mode", "rep", "admissions", "requests",
           "req/admission", "cpu ms/adm", "min-max", "spread");
    double per[2][99], cpu[2][99], spread[2][99], adm[2][99];
    for (int rep = 0; rep < reps; rep++)
        for (int mode = 0; mode < 2; mode++) {
            run r = one_run(&d, mode, workers, ms);
            per[mode][rep] = r.per_adm;
            cpu[mode][rep] = r.cpu_ms_per_adm;
            spread[mode][rep] = r.spread;
            adm[mode][rep] = (double)r.admissions;
            printf("%-4s %4d %11llu %9llu %13.2f %12.3f %4llu-%-4llu %8.1f%%\n",
                   mode ? "new" : "old", rep + 1, (unsigned long long)r.admissions,
                   (unsigned long long)r.requests, r.per_adm, r.cpu_ms_per_adm,
                   (unsigned long long)r.min, (unsigned long long)r.max, r.spread * 100);
            fflush(stdout);
        }
    double mo = median(per[0], reps), mn = median(per[1], reps);
    double co = median(cpu[0], reps), cn = median(cpu[1], reps);
    double so = median(spread[0], reps), sn = median(spread[1], reps);
    double ao = median(adm[0], reps), an = median(adm[1], reps);
    printf("\nmedians      admissions  req/admission  cpu ms/admission  spread\n");
    printf("old          %10.0f  %13.2f  %16.3f  %5.1f%%\n", ao, mo, co, so * 100);
    printf("new          %10.0f  %13.2f  %16.3f  %5.1f%%\n", an, mn, cn, sn * 100);
    printf("old/new      %10.2fx %13.1fx %16.1fx\n", an > 0 ? ao / an : 0, mn > 0 ? mo / mn : 0,
           cn > 0 ? co / cn : 0);
    t_daemon_stop_clean(&d);
    if (check && !(mn <= 2.0 && an > 0)) {
        fprintf(stderr, "bench_llm: new pattern needs %.2f daemon requests per admission (target <= 2)\n", mn);
        return 1;
    }
    return 0;
}
