/*
 * bench_upstream.c - what issue 15's calls cost, beside rld_try in the same run.
 *
 *   bench_upstream [--reps N]
 *
 * 1. rld_acquire_lease + rld_release_lease, uncontended: two round trips to the daemon on a
 *    pooled connection (p50/p99 of the pair), beside rld_try and an rld_wait the daemon
 *    grants at once (one round trip).
 * 2. rld_penalize and rld_sync that change the state (one CAS, no waiters: no message), and
 *    rld_breaker_enter + rld_breaker_report on a closed breaker (shared memory only).
 * 3. Reclaim: 4 processes hold the 4 leases of a limit; each is killed with SIGKILL in turn
 *    and the time until its lease is granted to a waiter is measured (the daemon polls the
 *    holders' pidfds every 100 ms while leases are held).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

static const char *conf_text =
    "[limit pool]\nconcurrency = 1000\n\n"
    "[limit four]\nconcurrency = 4\n\n"
    "[limit fast]\nrate = 1000000000/s\nburst = 1000000\n\n"
    "[limit held]\nrate = 1000000/s\n\n"
    "[breaker b]\nfailures = 4000\n";

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every timed call must succeed: a benchmark of an error path would say nothing. */
#define MUST(call)                                                                        \
    do {                                                                                 \
        int must_ = (call);                                                              \
        if (must_ != 0) {                                                                \
            fprintf(stderr, "bench_upstream: %s returned %s\n", #call, rld_strerror(must_)); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static void report(const char *what, uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    printf("%-44s p50 %9.0f ns   p99 %9.0f ns\n", what, (double)v[n / 2],
           (double)v[(size_t)(0.99 * (double)(n - 1))]);
}

int main(int argc, char **argv)
{
    int reps = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else
            reps = 0;                       /* unknown: the usage below */
    }
    if (reps < 1 || reps > 1000000) {
        fprintf(stderr, "usage: bench_upstream [--reps 1-1000000]\n");
        return 2;
    }
    t_daemon d;
    t_instance(&d, "benchup", conf_text);
    if (t_daemon_start(&d, NULL) != 0) {
        fprintf(stderr, "rld did not start (RLD_BIN: %s; its log: %s)\n", t_rld_bin(), d.log);
        return 1;
    }
    rld_client *c;
    rld_limit pool, four, fast, held, b;
    MUST(rld_open(NULL, 0, &c));
    MUST(rld_find(c, "pool", &pool));
    MUST(rld_find(c, "four", &four));
    MUST(rld_find(c, "fast", &fast));
    MUST(rld_find(c, "held", &held));
    MUST(rld_breaker_find(c, "b", &b));
    uint64_t *v = calloc((size_t)reps, sizeof(*v));
    if (!v)
        return 1;
    rld_result r;
    rld_lease l;
    /* warm the connection pool */
    MUST(rld_acquire_lease(c, pool, -1, &l));
    MUST(rld_release_lease(c, &l));
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = t_now_ns();
        int rc = rld_try(c, fast, 1, &r);
        v[i] = t_now_ns() - t0;
        MUST(rc);
    }
    report("rld_try (with the clock reads around it)", v, (size_t)reps);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = t_now_ns();
        int rc = rld_wait_ex(c, fast, 1, -1, &(rld_wait_opts){ 0, 0 }, &r);
        v[i] = t_now_ns() - t0;
        MUST(rc);
    }
    report("rld_wait granted on the fast path", v, (size_t)reps);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = t_now_ns();
        MUST(rld_acquire_lease(c, pool, -1, &l));
        MUST(rld_release_lease(c, &l));
        v[i] = t_now_ns() - t0;
    }
    report("rld_acquire_lease + rld_release_lease", v, (size_t)reps);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = t_now_ns();
        int rc = rld_penalize(c, held, (uint64_t)(i + 1) * 1000);
        v[i] = t_now_ns() - t0;
        MUST(rc);
    }
    report("rld_penalize (a change, nobody queued)", v, (size_t)reps);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = t_now_ns();
        int rc = rld_sync(c, held, 0, 5000000000ull + (uint64_t)i * 1000);
        v[i] = t_now_ns() - t0;
        MUST(rc);
    }
    report("rld_sync (a change, nobody queued)", v, (size_t)reps);
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = t_now_ns();
        int rc = rld_breaker_enter(c, b, &r);
        int rc2 = rld_breaker_report(c, b, 1);
        v[i] = t_now_ns() - t0;
        MUST(rc);
        MUST(rc2);
    }
    report("rld_breaker_enter + rld_breaker_report", v, (size_t)reps);

    /* reclaim after kill -9 */
    enum { H = 4 };
    pid_t kids[H];
    int ready[2];
    if (pipe(ready) < 0)
        return 1;
    for (int i = 0; i < H; i++) {
        kids[i] = fork();
        if (kids[i] < 0) {                      /* never kill(-1, ...) below */
            perror("fork");
            return 1;
        }
        if (kids[i] == 0) {
            rld_client *cc;
            rld_lease kl;
            if (rld_open(NULL, 0, &cc) < 0 || rld_acquire_lease(cc, four, -1, &kl) < 0)
                _exit(1);
            if (write(ready[1], "x", 1) != 1)
                _exit(1);
            pause();
            _exit(0);
        }
    }
    for (int i = 0; i < H; i++) {
        char ch;
        if (read(ready[0], &ch, 1) != 1)
            return 1;
    }
    uint64_t rec[H];
    for (int i = 0; i < H; i++) {
        uint64_t t0 = t_now_ns();
        kill(kids[i], SIGKILL);
        MUST(rld_acquire_lease(c, four, 5000000000ll, &l));
        rec[i] = t_now_ns() - t0;
        waitpid(kids[i], NULL, 0);
    }
    qsort(rec, H, sizeof(*rec), cmp_u64);
    printf("%-44s %.0f, %.0f, %.0f, %.0f ms\n", "lease back after kill -9 of its holder",
           (double)rec[0] / 1e6, (double)rec[1] / 1e6, (double)rec[2] / 1e6, (double)rec[3] / 1e6);
    rld_close(c);
    free(v);
    return t_daemon_stop_clean(&d) ? 0 : 1;
}
