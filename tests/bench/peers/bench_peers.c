/*
 * bench_peers.c - rld beside what people run instead, every row measured in one run.
 *
 *   bench_peers [--reps N] [--ms MS] [--quick] [--csv | --json] [--no-redis] [--require-redis]
 *
 * Rows (docs/BENCHMARKS.md says what each one means and how it is measured):
 *   1. rld_try on a real instance (a daemon on a private instance, as bench_try does):
 *      1 process; 2 processes on one limit; 2 processes on two limits; N threads (N = CPUs)
 *      of one process on one limit. With and without a result struct.
 *   2. Baselines in the same harness and the same configurations: the naive clock+load+CAS
 *      GCRA on shared memory (the floor), and a token bucket behind a process-shared
 *      pthread mutex, robust (EOWNERDEAD handled) and plain.
 *   3. Redis: a private redis-server on loopback, a token-bucket and a GCRA Lua script called
 *      by EVALSHA from hiredis, 1 and 2 client processes: p50/p99 latency and calls/s
 *      (peers_redis.c; skipped when built without hiredis or redis-server is missing).
 *   4. The Unix socket: raw SOCK_SEQPACKET ping-pong (32 bytes) between two processes;
 *      rld_wait round trip and grants/s with 10,000 waiters (through the
 *      daemon's socket server). Memory per limit: the segment's geometry beside Redis keys.
 *   5. Keyed limits (issue 13, peers_keys.c): rld_try_key on a hot key, on a random one of
 *      1,000,000 live keys, on a new key (a free place; a full table), beside rld_try on the
 *      named limit in the same loop; bytes of segment per key of capacity; Redis EVALSHA of
 *      the GCRA script over 100,000 keys and its memory per key.
 *
 * Every row runs REPS times (interleaved: drift hits every row alike); the table gives the
 * median and min-max over the repetitions and the cost relative to rld_try in the same
 * configuration. Targets are checked at the end and printed PASS / MISS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "harness.h"
#include "peers.h"
#include "rld.h"
#include "instance.h"
#include "keys.h"
#include "segment.h"
#include "wire.h"

/* ---------------------------------------------------------------- common helpers */

static void on_signal(int sig)
{
    (void)sig;
    peers_stop = 1;
}

static void check_stop(void)
{
    if (peers_stop) {
        fprintf(stderr, "bench_peers: interrupted\n");
        exit(130);    /* atexit: redis-server and the daemon are stopped */
    }
}

/* ---------------------------------------------------------------- the shared-memory rows */

static const char *conf_text =
    "[limit bench.a]\nrate = 1000000000/s\nburst = 1000000000\n\n"
    "[limit bench.b]\nrate = 1000000000/s\nburst = 1000000000\n";

#define MAXW 64     /* workers (processes x threads) */

/* A token bucket behind a process-shared mutex: what a careful engineer writes without a
 * lock-free design. Same regime as the others: 1 token per ns, burst 10^9. */
typedef struct mbucket {
    _Alignas(128) pthread_mutex_t m;
    double tokens, rate_per_ns, burst;
    uint64_t last;
} mbucket;

typedef struct shared {
    volatile int ready, go, failed;
    uint64_t calls[MAXW], denied[MAXW];
    _Alignas(128) uint64_t naive[2][16];     /* two naive buckets, 128 B apart */
    _Alignas(128) uint64_t naive16[2][16];   /* the same with a 16-byte state word */
    mbucket mb[2][2];                        /* [robust, plain][limit a, limit b] */
} shared;

/* The floor, as in bench_try: what a careful engineer would write in ten lines.
 * T = 1 ns, tau = 1 s. */
static inline int naive_try(uint64_t *tat)
{
    uint64_t now = peers_clock_ns();
    uint64_t old = __atomic_load_n(tat, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t t0 = old > now ? old : now;
        uint64_t nw = t0 + 1;
        if (nw - now > 1000000000u)
            return -1;
        if (__atomic_compare_exchange_n(tat, &old, nw, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return 0;
    }
}

/* Diagnostic: the same floor with the state word rld uses, {tat, version} in 16 bytes and
 * one lock cmpxchg16b (rldi_cas16). The distance from the naive floor to this row is the
 * price of that design decision alone (docs/DESIGN.md, "Publishing a configuration"). */
static inline int naive16_try(uint64_t *w)
{
    uint64_t now = peers_clock_ns();
    rldi_u128 old = rldi_load16_split(w);
    for (;;) {
        uint64_t tat = (uint64_t)old, ver = (uint64_t)(old >> 64);
        uint64_t t0 = tat > now ? tat : now;
        uint64_t nw = t0 + 1;
        if (nw - now > 1000000000u)
            return -1;
        if (rldi_cas16(w, &old, ((rldi_u128)(ver + 1) << 64) | nw))
            return 0;
    }
}

/* The clock is read before taking the lock (the shortest critical section: generous to the
 * baseline); a holder that read an older clock than the last one refills nothing. */
static inline int mutex_try(mbucket *b)
{
    uint64_t now = peers_clock_ns();
    int r = pthread_mutex_lock(&b->m);
    if (r == EOWNERDEAD) {
        /* The holder died inside. Its update of two fields may be half done; both are
         * bounded (tokens is clamped to the burst below), so keep them and go on. */
        pthread_mutex_consistent(&b->m);
    } else if (r != 0) {
        fprintf(stderr, "pthread_mutex_lock: %s\n", strerror(r));
        _exit(3);
    }
    if (now > b->last) {
        b->tokens += (double)(now - b->last) * b->rate_per_ns;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last = now;
    }
    int ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    pthread_mutex_unlock(&b->m);
    return ok ? 0 : -1;
}

static void mbucket_init(mbucket *b, bool robust)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (robust)
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int r = pthread_mutex_init(&b->m, &a);
    pthread_mutexattr_destroy(&a);
    if (r != 0) {
        fprintf(stderr, "pthread_mutex_init: %s\n", strerror(r));
        exit(1);
    }
    b->rate_per_ns = 1.0;
    b->burst = b->tokens = 1e9;
    b->last = peers_clock_ns();
}

enum kind { K_NAIVE, K_NAIVE16, K_RLD_NULL, K_RLD_RES, K_MUTEX_ROBUST, K_MUTEX_PLAIN, K_COUNT };

static const char *const kind_names[K_COUNT] = {
    [K_NAIVE] = "naive clock+load+CAS GCRA (floor)",
    [K_NAIVE16] = "same, 16-byte CAS (diagnostic)",
    [K_RLD_NULL] = "rld_try (NULL result)",
    [K_RLD_RES] = "rld_try (with result)",
    [K_MUTEX_ROBUST] = "token bucket, robust pshared mutex",
    [K_MUTEX_PLAIN] = "token bucket, plain pshared mutex",
};

typedef struct config {
    char name[48];
    int nproc, nthreads;
    bool same;          /* one limit (contended) or one each */
} config;

enum { C_1P, C_2P_ONE, C_2P_TWO, C_THREADS, C_COUNT };

typedef struct wctx {
    shared *sh;
    enum kind k;
    int id, which;
    uint64_t ms;
    rld_client *c;
    rld_limit lim;
} wctx;

#define LOOP(expr)                                        \
    do {                                                  \
        for (int i_ = 0; i_ < 256; i_++)                  \
            den += (expr) != 0;                           \
        n += 256;                                         \
    } while (peers_clock_ns() < end)

static void *worker(void *arg)
{
    wctx *w = arg;
    shared *sh = w->sh;
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&sh->go, __ATOMIC_ACQUIRE))
        sched_yield();
    uint64_t end = peers_clock_ns() + w->ms * 1000000u, n = 0, den = 0;
    rld_result res;
    rld_client *c = w->c;
    rld_limit lim = w->lim;
    switch (w->k) {
    case K_NAIVE:
        LOOP(naive_try(&sh->naive[w->which][0]));
        break;
    case K_NAIVE16:
        LOOP(naive16_try(&sh->naive16[w->which][0]));
        break;
    case K_RLD_NULL:
        LOOP(rld_try(c, lim, 1, NULL));
        break;
    case K_RLD_RES:
        LOOP(rld_try(c, lim, 1, &res));
        break;
    case K_MUTEX_ROBUST:
        LOOP(mutex_try(&sh->mb[0][w->which]));
        break;
    case K_MUTEX_PLAIN:
        LOOP(mutex_try(&sh->mb[1][w->which]));
        break;
    case K_COUNT:
        break;
    }
    sh->calls[w->id] = n;
    sh->denied[w->id] = den;
    return NULL;
}

/* One worker process: P-th of the configuration, running NTHREADS threads. */
static void __attribute__((noreturn))
worker_process(shared *sh, enum kind k, const config *cf, int p, uint64_t ms)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    wctx w[MAXW];
    pthread_t th[MAXW];
    rld_client *c = NULL;
    rld_limit lim = { 0, 0 };
    int which = cf->same ? 0 : p;
    if (k == K_RLD_NULL || k == K_RLD_RES) {
        int r = rld_open(NULL, 0, &c);
        if (r == 0)
            r = rld_find(c, which ? "bench.b" : "bench.a", &lim);
        if (r < 0) {
            fprintf(stderr, "worker: rld: %s\n", rld_strerror(r));
            sh->failed = 1;
            __atomic_add_fetch(&sh->ready, cf->nthreads, __ATOMIC_SEQ_CST);
            _exit(2);
        }
    }
    for (int t = 0; t < cf->nthreads; t++) {
        w[t] = (wctx){ sh, k, p * cf->nthreads + t, which, ms, c, lim };
        if (cf->nthreads == 1)
            break;
        if (pthread_create(&th[t], NULL, worker, &w[t]) != 0) {
            sh->failed = 1;
            __atomic_add_fetch(&sh->ready, cf->nthreads - t, __ATOMIC_SEQ_CST);
            _exit(2);
        }
    }
    if (cf->nthreads == 1)
        worker(&w[0]);
    else
        for (int t = 0; t < cf->nthreads; t++)
            pthread_join(th[t], NULL);
    rld_close(c);
    _exit(0);
}

/* One run: ns per call per worker, averaged over the workers. */
static double run_shm(shared *sh, enum kind k, const config *cf, uint64_t ms, uint64_t *denied)
{
    int nw = cf->nproc * cf->nthreads;
    sh->ready = sh->go = sh->failed = 0;
    pid_t pids[MAXW];
    for (int i = 0; i < cf->nproc; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            exit(1);
        }
        if (pids[i] == 0)
            worker_process(sh, k, cf, i, ms);
    }
    while (__atomic_load_n(&sh->ready, __ATOMIC_SEQ_CST) < nw)
        sched_yield();
    __atomic_store_n(&sh->go, 1, __ATOMIC_RELEASE);
    int bad = 0;
    for (int i = 0; i < cf->nproc; i++) {
        int st;
        waitpid(pids[i], &st, 0);   /* not wait(): the daemon is our child too */
        bad |= !WIFEXITED(st) || WEXITSTATUS(st);
    }
    if (bad || sh->failed) {
        fprintf(stderr, "bench worker failed (%s, %s)\n", kind_names[k], cf->name);
        exit(1);
    }
    double sum = 0;
    for (int i = 0; i < nw; i++) {
        sum += (double)ms * 1e6 / (double)sh->calls[i];
        *denied += sh->denied[i];
    }
    return sum / nw;
}

/* ---------------------------------------------------------------- SEQPACKET ping-pong */

#define PP_CAP (1u << 22)

/* One run: a child echoes 32-byte packets on a socketpair; we time each round trip. */
static int pingpong_run(uint64_t ms, uint32_t *samples, lat_run *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        close(sv[0]);
        char buf[64];
        for (;;) {
            ssize_t n = recv(sv[1], buf, sizeof(buf), 0);
            if (n <= 0)
                _exit(n < 0);
            if (send(sv[1], buf, (size_t)n, MSG_NOSIGNAL) != n)
                _exit(1);
        }
    }
    close(sv[1]);
    char msg[32], back[64];
    memset(msg, 0x5a, sizeof(msg));
    int rc = 0;
    uint64_t n = 0;
    for (int i = 0; i < 200 && rc == 0; i++)   /* warm up */
        if (send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg) ||
            recv(sv[0], back, sizeof(back), 0) != (ssize_t)sizeof(msg))
            rc = -1;
    uint64_t end = peers_clock_ns() + ms * 1000000u, t1 = peers_clock_ns();
    while (rc == 0 && t1 < end) {
        uint64_t t0 = t1;
        memcpy(msg, &n, sizeof(n));
        if (send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg) ||
            recv(sv[0], back, sizeof(back), 0) != (ssize_t)sizeof(msg)) {
            rc = -1;
            break;
        }
        t1 = peers_clock_ns();
        if (n < PP_CAP)
            samples[n] = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);
        n++;
    }
    if (rc < 0)
        perror("ping-pong");
    close(sv[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        rc = -1;
    size_t m = n < PP_CAP ? n : PP_CAP;
    memset(out, 0, sizeof(*out));
    out->calls = n;
    out->p50_ns = peers_percentile(samples, m, 0.50);
    out->p99_ns = peers_percentile(samples, m, 0.99);
    out->per_s = (double)n * 1000.0 / (double)ms;
    return rc;
}

/*
 * Issue 5, item 4: rld_wait through the daemon, the way librld sends it (Wait by handle).
 *   - round trip: a Wait on bench.a (tokens always there: granted in the request's own
 *     handler), timed like the ping-pong, p50/p99;
 *   - grants/s: 10,000 waits queued behind a 300 ms debt on bench.b (10 connections of
 *     1,000, the daemon's per-connection bound is 1,024), all released at once; grants per
 *     second from the first reply to the last.
 */
static int send_wait(rldi_conn *k, rld_limit l)
{
    Rld__V1__Wait w = RLD__V1__WAIT__INIT;
    w.slot = l.slot;
    w.gen = l.gen;
    w.cost = 1;
    w.timeout_ns = -1;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_WAIT;
    req.wait = &w;
    return rldi_conn_send(k, &req, NULL);
}

static int wait_rtt_run(const char *sock, rld_limit l, uint64_t ms, uint32_t *samples,
                        lat_run *out)
{
    rldi_conn k;
    if (rldi_conn_open(sock, "bench_peers", 2000, &k, NULL, 0) < 0)
        return -1;
    uint64_t n = 0, end = peers_clock_ns() + ms * 1000000u, t1 = peers_clock_ns();
    int rc = 0;
    for (int i = 0; i < 200 + 1 && rc == 0; i++) {   /* warm up; the last one is timed */
        Rld__V1__Reply *rep;
        if (send_wait(&k, l) < 0 || rldi_conn_recv(&k, 2000, &rep) < 0)
            rc = -1;
        else
            rld__v1__reply__free_unpacked(rep, NULL);
    }
    t1 = peers_clock_ns();
    while (rc == 0 && t1 < end) {
        uint64_t t0 = t1;
        Rld__V1__Reply *rep;
        if (send_wait(&k, l) < 0 || rldi_conn_recv(&k, 2000, &rep) < 0) {
            rc = -1;
            break;
        }
        if (rep->code != 0)
            out->denied++;
        rld__v1__reply__free_unpacked(rep, NULL);
        t1 = peers_clock_ns();
        if (n < PP_CAP)
            samples[n] = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);
        n++;
    }
    rldi_conn_close(&k);
    size_t m = n < PP_CAP ? n : PP_CAP;
    out->calls = n;
    out->p50_ns = peers_percentile(samples, m, 0.50);
    out->p99_ns = peers_percentile(samples, m, 0.99);
    out->per_s = (double)n * 1000.0 / (double)ms;
    return rc;
}

static double grants_run(const char *sock, rld_client *c, rld_limit l)
{
    enum { NC = 10, PER = 1000 };
    rldi_conn k[NC];
    for (int i = 0; i < NC; i++)
        if (rldi_conn_open(sock, "bench_peers", 2000, &k[i], NULL, 0) < 0)
            return NAN;
    rld_debit(c, l, 300000000);                      /* 300 ms of bench.b's 10^9/s */
    for (int i = 0; i < NC * PER; i++)
        if (send_wait(&k[i / PER], l) < 0)
            return NAN;
    uint64_t first = 0, last = 0;
    int got = 0;
    while (got < NC * PER) {
        for (int i = 0; i < NC; i++) {
            Rld__V1__Reply *rep;
            int r = rldi_conn_recv(&k[i], 0, &rep);
            if (r == -ETIMEDOUT)
                continue;
            if (r < 0)
                return NAN;
            rld__v1__reply__free_unpacked(rep, NULL);
            last = peers_clock_ns();
            if (!got++)
                first = last;
        }
    }
    for (int i = 0; i < NC; i++)
        rldi_conn_close(&k[i]);
    return (double)(NC * PER - 1) / ((double)(last - first) / 1e9);
}

static bool bench_wait_rows(int reps, uint64_t ms, lat_run *wait_rtt, double *wait_grants)
{
    rldi_paths paths;
    rld_client *c;
    rld_limit a, b;
    if (rldi_paths_resolve(NULL, &paths) < 0 || rld_open(NULL, 0, &c) < 0)
        return false;
    if (rld_find(c, "bench.a", &a) < 0 || rld_find(c, "bench.b", &b) < 0) {
        rld_close(c);
        return false;
    }
    uint32_t *samples = malloc(sizeof(uint32_t) * PP_CAP);
    bool ok = samples != NULL;
    for (int i = 0; i < reps && ok; i++) {
        memset(&wait_rtt[i], 0, sizeof(wait_rtt[i]));
        ok = wait_rtt_run(paths.socket_path, a, ms, samples, &wait_rtt[i]) == 0;
        wait_grants[i] = ok ? grants_run(paths.socket_path, c, b) : NAN;
        ok = ok && !isnan(wait_grants[i]);
        check_stop();
    }
    free(samples);
    rld_close(c);
    return ok;
}

/* ---------------------------------------------------------------- rows and output */

typedef struct row {
    const char *group;
    char config[80];
    char name[80];
    const char *unit;
    const char *status;     /* measured, pending, skipped */
    double med, min, max, p50, p99, ratio;   /* NAN: not relevant */
} row;

typedef struct target {
    char name[160];
    const char *cmp;        /* "<=", ">", ">=" */
    double value, limit;
    const char *status;     /* PASS, MISS, PENDING, SKIPPED */
} target;

static row rows[96];
static int nrows;
static target targets[32];
static int ntargets;

static row *add_row(const char *group, const char *cfg, const char *name, const char *unit)
{
    if (nrows == (int)(sizeof(rows) / sizeof(rows[0]))) {
        fprintf(stderr, "too many rows\n");
        exit(1);
    }
    row *r = &rows[nrows++];
    r->group = group;
    snprintf(r->config, sizeof(r->config), "%s", cfg);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->unit = unit;
    r->status = "measured";
    r->med = r->min = r->max = r->p50 = r->p99 = r->ratio = NAN;
    return r;
}

static row *add_stat_row(const char *group, const char *cfg, const char *name, const char *unit,
                         stat3 s)
{
    row *r = add_row(group, cfg, name, unit);
    r->med = s.med;
    r->min = s.min;
    r->max = s.max;
    return r;
}

static void add_target(const char *name, const char *cmp, double value, double limit,
                       const char *status)
{
    target *t = &targets[ntargets++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->cmp = cmp;
    t->value = value;
    t->limit = limit;
    if (status)
        t->status = status;
    else if (!strcmp(cmp, "<="))
        t->status = value <= limit ? "PASS" : "MISS";
    else if (!strcmp(cmp, ">="))
        t->status = value >= limit ? "PASS" : "MISS";
    else
        t->status = value > limit ? "PASS" : "MISS";
}

static const char *fmt(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else if (fabs(v) >= 1e7)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (fabs(v) >= 1000)
        snprintf(buf, len, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

static void print_json_num(double v)
{
    if (isnan(v))
        printf("null");
    else
        printf("%.6g", v);
}

static void print_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    putchar('"');
}

static void print_csv_num(double v)
{
    if (!isnan(v))
        printf("%.6g", v);
}

typedef struct envinfo {
    long cpus;
    char cpu[96], kernel[96], redis[48];
    double load_start;               /* 1-minute load average before we start */
    double other_pct, steal_pct;     /* CPU time others used (and the hypervisor stole)
                                      * during the run, in % of all CPUs' time */
    int reps;
    uint64_t ms;
} envinfo;

static void print_human(const envinfo *e)
{
    printf("bench_peers: %d reps x %llu ms per row; %ld CPUs (%s); Linux %s; redis %s\n",
           e->reps, (unsigned long long)e->ms, e->cpus, e->cpu, e->kernel, e->redis);
    printf("load before the run %.2f; during it other processes used %.1f%% of the CPUs' time, "
           "steal %.1f%%%s\n", e->load_start, e->other_pct, e->steal_pct,
           e->other_pct > 5 || e->steal_pct > 5 ? " (NOT a quiet machine: times are inflated)" : "");
    printf("median and min-max over the reps; p50/p99 of single calls where timed; "
           "x rld = cost / rld_try (with result) cost, same configuration\n\n");
    printf("%-44s %-8s %9s %19s %9s %9s %9s\n", "", "unit", "median", "min-max", "p50", "p99",
           "x rld");
    const char *group = NULL, *cfg = NULL;
    char a[32], b[32], c[32], d[32], f[32], g[32];
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        if (!group || strcmp(group, r->group)) {
            printf("%s%s\n", group ? "\n" : "", r->group);
            group = r->group;
            cfg = NULL;
        }
        if (!cfg || strcmp(cfg, r->config)) {
            printf("  %s\n", r->config);
            cfg = r->config;
        }
        if (strcmp(r->status, "measured")) {
            printf("    %-40s %-8s %s\n", r->name, r->unit, r->status);
            continue;
        }
        char mm[72];
        if (isnan(r->min))
            snprintf(mm, sizeof(mm), "-");
        else
            snprintf(mm, sizeof(mm), "%s-%s", fmt(a, sizeof(a), r->min), fmt(b, sizeof(b), r->max));
        char ratio[40] = "-";
        if (!isnan(r->ratio))
            snprintf(ratio, sizeof(ratio), "%sx", fmt(g, sizeof(g), r->ratio));
        printf("    %-40s %-8s %9s %19s %9s %9s %9s\n", r->name, r->unit,
               fmt(c, sizeof(c), r->med), mm, fmt(d, sizeof(d), r->p50),
               fmt(f, sizeof(f), r->p99), ratio);
    }
    printf("\ntargets\n");
    for (int i = 0; i < ntargets; i++) {
        target *t = &targets[i];
        if (!strcmp(t->status, "PENDING") || !strcmp(t->status, "SKIPPED"))
            printf("  %-7s %s\n", t->status, t->name);
        else
            printf("  %-7s %s: %s %s %s\n", t->status, t->name, fmt(a, sizeof(a), t->value),
                   t->cmp, fmt(b, sizeof(b), t->limit));
    }
}

static void print_csv(void)
{
    printf("group,config,name,unit,median,min,max,p50,p99,ratio_vs_rld,status\n");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        printf("\"%s\",\"%s\",\"%s\",\"%s\",", r->group, r->config, r->name, r->unit);
        double v[] = { r->med, r->min, r->max, r->p50, r->p99, r->ratio };
        for (size_t j = 0; j < sizeof(v) / sizeof(v[0]); j++) {
            print_csv_num(v[j]);
            putchar(',');
        }
        printf("%s\n", r->status);
    }
    /* targets as rows: median = the measured value, unit = the condition */
    for (int i = 0; i < ntargets; i++) {
        target *t = &targets[i];
        printf("\"target\",\"\",\"%s\",\"x %s %g\",", t->name, t->cmp, t->limit);
        print_csv_num(t->value);
        printf(",,,,,,%s\n", t->status);
    }
}

static void print_json(const envinfo *e)
{
    printf("{\n  \"benchmark\": \"bench_peers\",\n  \"env\": {\"cpus\": %ld, \"cpu\": ", e->cpus);
    print_json_str(e->cpu);
    printf(", \"kernel\": ");
    print_json_str(e->kernel);
    printf(", \"redis\": ");
    print_json_str(e->redis);
    printf(", \"reps\": %d, \"ms\": %llu, \"load_start\": ", e->reps, (unsigned long long)e->ms);
    print_json_num(e->load_start);
    printf(", \"other_cpu_pct\": ");
    print_json_num(e->other_pct);
    printf(", \"steal_pct\": ");
    print_json_num(e->steal_pct);
    printf("},\n  \"rows\": [\n");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        printf("    {\"group\": ");
        print_json_str(r->group);
        printf(", \"config\": ");
        print_json_str(r->config);
        printf(", \"name\": ");
        print_json_str(r->name);
        printf(", \"unit\": ");
        print_json_str(r->unit);
        static const char *const keys[] = { "median", "min", "max", "p50", "p99", "ratio" };
        double v[] = { r->med, r->min, r->max, r->p50, r->p99, r->ratio };
        for (size_t j = 0; j < sizeof(v) / sizeof(v[0]); j++) {
            printf(", \"%s\": ", keys[j]);
            print_json_num(v[j]);
        }
        printf(", \"status\": \"%s\"}%s\n", r->status, i + 1 < nrows ? "," : "");
    }
    printf("  ],\n  \"targets\": [\n");
    for (int i = 0; i < ntargets; i++) {
        target *t = &targets[i];
        printf("    {\"name\": ");
        print_json_str(t->name);
        printf(", \"cmp\": \"%s\", \"value\": ", t->cmp);
        print_json_num(t->value);
        printf(", \"limit\": ");
        print_json_num(t->limit);
        printf(", \"status\": \"%s\"}%s\n", t->status, i + 1 < ntargets ? "," : "");
    }
    printf("  ]\n}\n");
}

static double loadavg1(void)
{
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = NAN;
        fclose(f);
    }
    return l;
}

static void env_info(envinfo *e)
{
    e->cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(e->cpu, sizeof(e->cpu), "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *p = strchr(line, ':') + 1;
            while (*p == ' ')
                p++;
            snprintf(e->cpu, sizeof(e->cpu), "%.*s", (int)strcspn(p, "\n"), p);
            break;
        }
    }
    if (f)
        fclose(f);
    e->load_start = loadavg1();
    e->other_pct = e->steal_pct = NAN;
    struct utsname u;
    snprintf(e->kernel, sizeof(e->kernel), "%s", uname(&u) == 0 ? u.release : "?");
    snprintf(e->redis, sizeof(e->redis), "-");
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_peers [--reps N] [--ms MS] [--quick] [--csv | --json] [--no-redis]\n"
            "                   [--require-redis] [--keys N | --no-keys]\n"
            "  --reps N          repetitions of every row (default 5; --quick: 3)\n"
            "  --ms MS           duration of one run of one row (default 300; --quick: 100)\n"
            "  --quick           a smoke run: fewer reps, shorter runs, 10,000 Redis keys\n"
            "  --csv, --json     machine-readable output (one record per row and per target)\n"
            "  --no-redis        skip the Redis rows\n"
            "  --require-redis   exit 77 (skip) when the Redis rows cannot run\n"
            "  --keys N          live keys of the keyed rows (default 1000000; --quick: 100000)\n"
            "  --no-keys         skip the keyed-limit rows\n"
            "environment: RLD_BIN (the rld daemon, default ./daemon/rld), REDIS_SERVER\n");
    exit(2);
}

static const char *const G_SHM =
    "rld_try and shared-memory baselines: ns per call per process/thread (all admitted)";
static const char *const G_SOCK = "Unix socket and rld_wait (issue 5 item 4)";
static const char *const G_MEM = "memory per limit";
static const char *const G_KEYS =
    "keyed limits (issue 13): ns per call, 1 process (all admitted); x rld = / rld_try on the "
    "named limit, same loop";

int main(int argc, char **argv)
{
    int reps = -1, ms_arg = -1;
    bool quick = false, csv = false, json = false, no_redis = false, require_redis = false;
    bool no_keys = false;
    long nkeys_arg = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            ms_arg = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--csv"))
            csv = true;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--no-redis"))
            no_redis = true;
        else if (!strcmp(argv[i], "--require-redis"))
            require_redis = true;
        else if (!strcmp(argv[i], "--no-keys"))
            no_keys = true;
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
            nkeys_arg = atol(argv[++i]);
        else
            usage();
    }
    if (reps < 0)
        reps = quick ? 3 : 5;
    if (ms_arg < 0)
        ms_arg = quick ? 100 : 300;
    if (reps < 1 || reps > PEERS_MAX_REPS || ms_arg < 10 || (csv && json))
        usage();
    uint64_t ms = (uint64_t)ms_arg;
    long mem_keys = quick ? 10000 : 100000;
    uint32_t nkeys = (uint32_t)(nkeys_arg > 0 ? nkeys_arg : quick ? 100000 : 1000000);
    if (nkeys_arg == 0 || nkeys_arg > 9999999)
        usage();

    envinfo env;
    env_info(&env);
    env.reps = reps;
    env.ms = ms;

    /* Redis first decides whether this run can be what the caller requires. */
    const char *redis_skip = NULL;
    char why[256] = "";
#ifdef RLD_HAVE_HIREDIS
    if (no_redis)
        redis_skip = "skipped (--no-redis)";
#else
    redis_skip = "skipped (built without hiredis: apt-get install libhiredis-dev, re-run cmake)";
    (void)no_redis;
    (void)why;
    (void)mem_keys;
#endif
    if (redis_skip && require_redis) {
        fprintf(stderr, "bench_peers: Redis rows %s\n", redis_skip);
        return T_SKIP;
    }

    cpustat cs0;
    peers_read_cpustat(&cs0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

#ifdef RLD_HAVE_HIREDIS
    static char skipmsg[300];
    if (!redis_skip && pr_start(why, sizeof(why)) < 0) {
        if (require_redis) {
            fprintf(stderr, "bench_peers: Redis rows skipped: %s\n", why);
            return T_SKIP;
        }
        snprintf(skipmsg, sizeof(skipmsg), "skipped (%s)", why);
        redis_skip = skipmsg;
    }
    if (!redis_skip)
        snprintf(env.redis, sizeof(env.redis), "%s", pr_version());
#endif
    if (redis_skip)
        fprintf(stderr, "bench_peers: Redis rows %s\n", redis_skip);

    /* the keyed rows' template: 1,000,000/s and a tolerance of 1,000 s (peers_keys.c) */
    static char conf[1024];
    snprintf(conf, sizeof(conf), "%s%s", conf_text, no_keys ? "" : "\n[template bench.keys]\n"
             "rate = 1000000/s\nburst = 1000000000\nmax_keys = ");
    if (!no_keys)
        snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf), "%u\n", nkeys);
    t_daemon d;
    t_instance(&d, "peers", conf);
    if (t_daemon_start(&d, NULL) < 0) {
        fprintf(stderr, "cannot start rld %s (set RLD_BIN)\n", t_rld_bin());
        return 1;
    }
    shared *sh = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    memset(sh, 0, sizeof(*sh));
    for (int w = 0; w < 2; w++)
        for (int l = 0; l < 2; l++)
            mbucket_init(&sh->mb[w][l], w == 0);

    int nthr = (int)(env.cpus < 1 ? 1 : env.cpus > MAXW ? MAXW : env.cpus);
    config cfgs[C_COUNT] = {
        [C_1P] = { "1 process", 1, 1, true },
        [C_2P_ONE] = { "2 processes, one limit", 2, 1, true },
        [C_2P_TWO] = { "2 processes, two limits", 2, 1, false },
        [C_THREADS] = { "", 1, nthr, true },
    };
    snprintf(cfgs[C_THREADS].name, sizeof(cfgs[C_THREADS].name), "%d threads of 1 process, one limit",
             nthr);

    /* 1 and 2: the shared-memory rows, kinds interleaved within every rep. */
    static double v[C_COUNT][K_COUNT][PEERS_MAX_REPS];
    uint64_t denied[C_COUNT][K_COUNT] = { { 0 } };
    for (int i = 0; i < reps; i++)
        for (int c = 0; c < C_COUNT; c++)
            for (int k = 0; k < K_COUNT; k++) {
                v[c][k][i] = run_shm(sh, (enum kind)k, &cfgs[c], ms, &denied[c][k]);
                check_stop();
            }
    stat3 s[C_COUNT][K_COUNT];
    for (int c = 0; c < C_COUNT; c++)
        for (int k = 0; k < K_COUNT; k++) {
            s[c][k] = peers_stats(v[c][k], reps);
            if (denied[c][k])
                fprintf(stderr, "warning: %llu calls denied in %s / %s: not the all-admitted "
                        "regime\n", (unsigned long long)denied[c][k], cfgs[c].name, kind_names[k]);
        }

    /* 5: keyed limits, rld side (Redis's per-key rows come with the other Redis rows). */
    static double kv[PK_COUNT][2 * PEERS_MAX_REPS], kvc[PK_COUNT][2 * PEERS_MAX_REPS];
    pk_stats kst[PK_COUNT];
    memset(kst, 0, sizeof(kst));
    double prefill_s = 0;
    uint32_t prefill_refused = 0, ncreate = 0;
    uint64_t live0 = 0;
    int nref = 0;
    bool have_keys = false;
    if (!no_keys) {
        have_keys = pk_prefill(nkeys, &prefill_s, &prefill_refused, &live0) == 0;
        check_stop();
        /* new keys per run: the free places (1/7 of the live keys) shared by the runs */
        uint32_t free_places = rldi_keys_nbuckets(nkeys) * RLDI_KEY_BUCKET - nkeys;
        ncreate = free_places / (uint32_t)(reps + 1) < 20000 ? free_places / (uint32_t)(reps + 1)
                                                               : 20000;
        /* the reference, hot, random, free-place and memory-floor rows interleaved in every
         * rep; then the full-table row (it fills the free places), each run after one of the
         * reference */
        for (int i = 0; i < reps && have_keys; i++)
            for (int k = PK_REF; k <= PK_FLOOR && have_keys; k++) {
                if (k == PK_CREATE_FULL)
                    continue;
                double c1, v1 = pk_run(k, ms, nkeys, (uint32_t)i * ncreate, ncreate, &kst[k], &c1);
                have_keys = !isnan(v1);
                int at = k == PK_REF ? nref++ : i;
                kv[k][at] = v1;
                kvc[k][at] = c1;
                check_stop();
            }
        for (int i = 0; i < reps && have_keys; i++) {
            kv[PK_REF][nref] = pk_run(PK_REF, ms, nkeys, 0, 0, &kst[PK_REF], &kvc[PK_REF][nref]);
            nref++;
            kv[PK_CREATE_FULL][i] = pk_run(PK_CREATE_FULL, ms, nkeys, (uint32_t)i * ncreate,
                                           ncreate, &kst[PK_CREATE_FULL], &kvc[PK_CREATE_FULL][i]);
            have_keys = !isnan(kv[PK_CREATE_FULL][i]) && !isnan(kv[PK_REF][nref - 1]);
            check_stop();
        }
        for (int k = 0; k < PK_COUNT && have_keys; k++)
            if (kst[k].refused)
                fprintf(stderr, "note: %s: %llu of %llu calls refused (-ENOSPC: the new key's 32 "
                        "places all hold keys with state)\n", pk_name(k),
                        (unsigned long long)kst[k].refused, (unsigned long long)kst[k].calls);
        for (int k = 0; k < PK_COUNT && have_keys; k++)
            if (kst[k].denied || kst[k].errors)
                fprintf(stderr, "warning: %s: %llu calls denied, %llu other errors (the first: "
                        "%s): not the all-admitted regime\n", pk_name(k),
                        (unsigned long long)kst[k].denied, (unsigned long long)kst[k].errors,
                        rld_strerror(kst[k].first_error));
        if (prefill_refused)
            fprintf(stderr, "note: %u of %u keys refused at prefill (table full near 7/8)\n",
                    prefill_refused, nkeys);
    }

    /* 4a: raw SEQPACKET ping-pong (and the pending rld_wait rows). */
    uint32_t *pp_samples = malloc(PP_CAP * sizeof(uint32_t));
    if (!pp_samples)
        return 1;
    double pp50[PEERS_MAX_REPS], pp99[PEERS_MAX_REPS], pps[PEERS_MAX_REPS];
    for (int i = 0; i < reps; i++) {
        lat_run lr;
        if (pingpong_run(ms, pp_samples, &lr) < 0)
            return 1;
        pp50[i] = lr.p50_ns / 1000;
        pp99[i] = lr.p99_ns / 1000;
        pps[i] = lr.per_s;
        check_stop();
    }
    free(pp_samples);
    lat_run wait_rtt[PEERS_MAX_REPS];
    double wait_grants[PEERS_MAX_REPS];
    bool have_wait = bench_wait_rows(reps, ms, wait_rtt, wait_grants);

    /* 3: Redis. */
#ifdef RLD_HAVE_HIREDIS
    enum { NSC = PR_NSCRIPTS + 1 };   /* the scripts and the PING reference */
    double r50[NSC][2][PEERS_MAX_REPS], r99[NSC][2][PEERS_MAX_REPS], rps[NSC][2][PEERS_MAX_REPS];
    uint64_t rden[NSC][2] = { { 0 } };
    double mem_usage[PR_NSCRIPTS], mem_per_key[PR_NSCRIPTS];
    double rk50[PEERS_MAX_REPS], rk99[PEERS_MAX_REPS], rkps[PEERS_MAX_REPS], rk_mem = NAN;
    uint64_t rkden = 0;
    if (!redis_skip) {
        for (int i = 0; i < reps; i++)
            for (int sc = 0; sc < NSC; sc++)
                for (int nc = 1; nc <= 2; nc++) {
                    lat_run lr;
                    if (sc == PR_PING && nc == 2)
                        continue;
                    if (pr_run(sc, nc, ms, &lr) < 0)
                        return 1;
                    r50[sc][nc - 1][i] = lr.p50_ns / 1000;
                    r99[sc][nc - 1][i] = lr.p99_ns / 1000;
                    rps[sc][nc - 1][i] = lr.per_s;
                    rden[sc][nc - 1] += lr.denied;
                    check_stop();
                }
        for (int sc = 0; sc < PR_NSCRIPTS; sc++) {
            if (pr_memory(sc, mem_keys, &mem_usage[sc], &mem_per_key[sc]) < 0)
                return 1;
            check_stop();
        }
        if (!no_keys) {
            if (pr_keys_prefill(mem_keys, &rk_mem) < 0)
                return 1;
            for (int i = 0; i < reps; i++) {
                lat_run lr;
                if (pr_keys_run(mem_keys, ms, &lr) < 0)
                    return 1;
                rk50[i] = lr.p50_ns / 1000;
                rk99[i] = lr.p99_ns / 1000;
                rkps[i] = lr.per_s;
                rkden += lr.denied;
                check_stop();
            }
            if (rkden)
                fprintf(stderr, "warning: %llu per-key Redis calls denied\n",
                        (unsigned long long)rkden);
        }
        pr_stop();
        for (int sc = 0; sc < NSC; sc++)
            for (int nc = 0; nc < 2; nc++)
                if (rden[sc][nc])
                    fprintf(stderr, "warning: %llu Redis calls denied (%s): not the "
                            "all-admitted regime\n", (unsigned long long)rden[sc][nc],
                            pr_script_name(sc));
    }
#endif

    /* ------------------------------------------------------------ the table */
    /* rld reference per configuration: rld_try with a result, the call the README shows */
    for (int c = 0; c < C_COUNT; c++)
        for (int k = 0; k < K_COUNT; k++) {
            row *r = add_stat_row(G_SHM, cfgs[c].name, kind_names[k], "ns/call", s[c][k]);
            r->ratio = s[c][k].med / s[c][K_RLD_RES].med;
        }

    double rld1 = s[C_1P][K_RLD_RES].med, rld2 = s[C_2P_ONE][K_RLD_RES].med;
    (void)rld2;    /* used by the Redis rows only */
    static char g_redis[160];
    snprintf(g_redis, sizeof(g_redis),
             "Redis%s%s, EVALSHA over loopback TCP from hiredis, TIME inside the script "
             "(1,000,000/s: all admitted)", redis_skip ? "" : " ", redis_skip ? "" : env.redis);
#ifdef RLD_HAVE_HIREDIS
    if (!redis_skip) {
        for (int nc = 1; nc <= 2; nc++) {
            char cfg[48];
            snprintf(cfg, sizeof(cfg), nc == 1 ? "1 client process" : "2 client processes, one key");
            double rld = nc == 1 ? rld1 : rld2;
            double rld_per_s = nc * 1e9 / rld;
            for (int sc = 0; sc < NSC; sc++) {
                if (sc == PR_PING && nc == 2)
                    continue;
                char name[80];
                snprintf(name, sizeof(name), "%s%s: latency", pr_script_name(sc),
                         sc == PR_PING ? " (no script, floor)" : " script");
                stat3 l = peers_stats(r50[sc][nc - 1], reps);
                row *r = add_stat_row(g_redis, cfg, name, "us", l);
                r->p50 = l.med;
                r->p99 = peers_stats(r99[sc][nc - 1], reps).med;
                r->ratio = l.med * 1000 / rld;
                snprintf(name, sizeof(name), "%s%s: throughput", pr_script_name(sc),
                         sc == PR_PING ? " (no script, floor)" : " script");
                stat3 t = peers_stats(rps[sc][nc - 1], reps);
                r = add_stat_row(g_redis, cfg, name, "calls/s", t);
                r->ratio = rld_per_s / t.med;
            }
        }
    }
#endif
    if (redis_skip) {
        const char *names[] = { "token bucket script", "GCRA script" };
        for (int nc = 1; nc <= 2; nc++)
            for (int sc = 0; sc < 2; sc++) {
                char name[80];
                snprintf(name, sizeof(name), "%s: latency", names[sc]);
                add_row(g_redis, nc == 1 ? "1 client process" : "2 client processes, one key",
                        name, "us")->status = redis_skip;
                snprintf(name, sizeof(name), "%s: throughput", names[sc]);
                add_row(g_redis, nc == 1 ? "1 client process" : "2 client processes, one key",
                        name, "calls/s")->status = redis_skip;
            }
    }

    stat3 pl = peers_stats(pp50, reps);
    row *r = add_stat_row(G_SOCK, "2 processes, socketpair", "raw SEQPACKET ping-pong, 32 B", "us", pl);
    r->p50 = pl.med;
    r->p99 = peers_stats(pp99, reps).med;
    r->ratio = pl.med * 1000 / rld1;
    r = add_stat_row(G_SOCK, "2 processes, socketpair", "raw SEQPACKET ping-pong, 32 B", "trips/s",
                     peers_stats(pps, reps));
    r->ratio = 1e9 / rld1 / r->med;
    double wait50 = NAN;
    if (have_wait) {
        double w50[PEERS_MAX_REPS], w99[PEERS_MAX_REPS];
        for (int i = 0; i < reps; i++) {
            w50[i] = wait_rtt[i].p50_ns / 1000;
            w99[i] = wait_rtt[i].p99_ns / 1000;
        }
        stat3 wl = peers_stats(w50, reps);
        r = add_stat_row(G_SOCK, "through the daemon", "rld_wait round trip", "us", wl);
        r->p50 = wait50 = wl.med;
        r->p99 = peers_stats(w99, reps).med;
        r->ratio = wl.med * 1000 / rld1;
        r = add_stat_row(G_SOCK, "through the daemon", "grants/s with 10,000 waiters", "grants/s",
                         peers_stats(wait_grants, reps));
    } else {
        const char *pend = "FAILED (the daemon did not answer)";
        add_row(G_SOCK, "through the daemon", "rld_wait round trip", "us")->status = pend;
        add_row(G_SOCK, "through the daemon", "grants/s with 10,000 waiters", "grants/s")->status =
            pend;
    }

    /* 4b: memory per limit: the segment's geometry (slot + meta + index + header share). */
    double rld_mem1k = 0;
    static const uint32_t nlim[] = { 1000, 1000000 };
    for (size_t i = 0; i < sizeof(nlim) / sizeof(nlim[0]); i++) {
        static rldi_shm_header hdr;
        uint64_t size = rldi_seg_geometry(nlim[i], &hdr);
        double per = (double)size / nlim[i];
        char name[80];
        snprintf(name, sizeof(name), "segment size / max_limits, %u", nlim[i]);
        r = add_row(G_MEM, "rld: slot + meta + index + header share", name, "B/limit");
        r->med = per;
        if (i == 0)
            rld_mem1k = per;
        r->ratio = per / rld_mem1k;
    }
#ifdef RLD_HAVE_HIREDIS
    if (!redis_skip) {
        char cfg[80];
        snprintf(cfg, sizeof(cfg), "Redis %s, one key per limit", env.redis);
        for (int sc = 0; sc < PR_NSCRIPTS; sc++) {
            char name[80];
            snprintf(name, sizeof(name), "%s key: MEMORY USAGE", pr_script_name(sc));
            r = add_row(G_MEM, cfg, name, "B/key");
            r->med = mem_usage[sc];
            r->ratio = r->med / rld_mem1k;
            snprintf(name, sizeof(name), "%s: used_memory/key, %ldk keys", pr_script_name(sc),
                     mem_keys / 1000);
            r = add_row(G_MEM, cfg, name, "B/key");
            r->med = mem_per_key[sc];
            r->ratio = r->med / rld_mem1k;
        }
    }
#endif
    if (redis_skip) {
        add_row(G_MEM, "Redis, one key per limit", "token bucket key: MEMORY USAGE", "B/key")->status =
            redis_skip;
        add_row(G_MEM, "Redis, one key per limit", "GCRA key: MEMORY USAGE", "B/key")->status =
            redis_skip;
    }

    /* 5: keyed limits */
    double key_ratio[PK_COUNT], key_ratio_cpu[PK_COUNT], key_mem = NAN, rk_ratio = NAN;
    for (int k = 0; k < PK_COUNT; k++)
        key_ratio[k] = key_ratio_cpu[k] = NAN;
    if (have_keys) {
        char cfg[96];
        stat3 ref = peers_stats(kv[PK_REF], nref), refc = peers_stats(kvc[PK_REF], nref);
        for (int cpu = 0; cpu < 2; cpu++) {
            snprintf(cfg, sizeof(cfg), "%u live keys (max_keys %u), %s", (unsigned)live0, nkeys,
                     cpu ? "CPU time of the process" : "wall clock");
            for (int k = 0; k < PK_COUNT; k++) {
                stat3 st = k == PK_REF ? (cpu ? refc : ref)
                                       : peers_stats(cpu ? kvc[k] : kv[k], reps);
                char name[80];
                snprintf(name, sizeof(name), "%s", pk_name(k));
                if (k == PK_RANDOM)
                    snprintf(name, sizeof(name), "rld_try_key, random of %u live keys",
                             (unsigned)live0);
                if (k == PK_FLOOR)
                    snprintf(name, sizeof(name), "memory floor: random read over %.0f MB",
                             (double)rldi_keys_table_bytes(nkeys) / 1e6);
                r = add_stat_row(G_KEYS, cfg, name, cpu ? "cpu ns" : "ns/call", st);
                r->ratio = st.med / (cpu ? refc : ref).med;
                (cpu ? key_ratio_cpu : key_ratio)[k] = r->ratio;
            }
        }
        /* the keyed rows as multiples of the memory floor (CPU time): a random key cannot
         * cost less than one dependent read, a new key than one or two */
        snprintf(cfg, sizeof(cfg), "%u live keys, CPU time / the memory floor's", (unsigned)live0);
        for (int k = PK_HOT; k <= PK_CREATE_FULL; k++) {
            r = add_row(G_KEYS, cfg, k == PK_RANDOM ? "rld_try_key, random live key" : pk_name(k),
                        "x floor");
            r->med = key_ratio_cpu[k] / key_ratio_cpu[PK_FLOOR];
        }
        snprintf(cfg, sizeof(cfg), "%u live keys (max_keys %u)", (unsigned)live0, nkeys);
        r = add_row(G_KEYS, cfg, "making a live key (rld_key + rld_debit)", "ns/call");
        r->med = prefill_s * 1e9 / nkeys;
        r->ratio = r->med / ref.med;
        r = add_row(G_KEYS, cfg, "reclaimed an idle key (table full)", "%");
        r->med = kst[PK_CREATE_FULL].calls
                     ? 100.0 * (double)kst[PK_CREATE_FULL].evictions / kst[PK_CREATE_FULL].calls
                     : NAN;
        r = add_row(G_KEYS, cfg, "new keys refused (32 places in use)", "%");
        r->med = kst[PK_CREATE].calls + kst[PK_CREATE_FULL].calls
                     ? 100.0 * (double)(kst[PK_CREATE].refused + kst[PK_CREATE_FULL].refused) /
                           (double)(kst[PK_CREATE].calls + kst[PK_CREATE_FULL].calls)
                     : NAN;
        /* bytes of segment per key of capacity: the key region of this instance */
        rld_client *kc;
        rld_instance ii;
        if (rld_open(NULL, 0, &kc) == 0 && rld_instance_info(kc, &ii) == 0) {
            static rldi_shm_header h0;
            uint64_t base_bytes = rldi_seg_geometry(ii.max_limits, &h0);
            key_mem = (double)(ii.segment_bytes - base_bytes) / nkeys;
            rld_close(kc);
        }
        char name[80];
        snprintf(name, sizeof(name), "key tables / max_keys, %u", nkeys);
        r = add_row(G_MEM, "rld: template bench.keys (segment bytes of the key region)", name,
                    "B/key");
        r->med = key_mem;
        r->ratio = key_mem / rld_mem1k;
        snprintf(name, sizeof(name), "key tables / max_keys, %u (formula)", 1000000u);
        r = add_row(G_MEM, "rld: template bench.keys (segment bytes of the key region)", name,
                    "B/key");
        r->med = (double)rldi_keys_table_bytes(1000000u) / 1e6;
        r->ratio = r->med / rld_mem1k;
#ifdef RLD_HAVE_HIREDIS
        if (!redis_skip) {
            char rcfg[96];
            snprintf(rcfg, sizeof(rcfg), "Redis %s, EVALSHA GCRA script, %ldk keys, 1 client",
                     env.redis, mem_keys / 1000);
            stat3 l = peers_stats(rk50, reps);
            r = add_stat_row(G_KEYS, rcfg, "per-key GCRA script: latency", "us", l);
            r->p50 = l.med;
            r->p99 = peers_stats(rk99, reps).med;
            r->ratio = l.med * 1000 / ref.med;
            rk_ratio = l.med * 1000 / peers_stats(kv[PK_RANDOM], reps).med;
            r = add_stat_row(G_KEYS, rcfg, "per-key GCRA script: throughput", "calls/s",
                             peers_stats(rkps, reps));
            r->ratio = 1e9 / ref.med / r->med;
            snprintf(rcfg, sizeof(rcfg), "Redis %s, per-key GCRA (bench.keys' parameters)",
                     env.redis);
            snprintf(name, sizeof(name), "GCRA: used_memory/key, %ldk keys", mem_keys / 1000);
            r = add_row(G_MEM, rcfg, name, "B/key");
            r->med = rk_mem;
            r->ratio = rk_mem / rld_mem1k;
        }
#endif
    } else if (!no_keys) {
        add_row(G_KEYS, "template bench.keys", "rld_try_key rows", "ns/call")->status =
            "FAILED (see the messages above)";
    }

    /* ------------------------------------------------------------ the targets */
    char tn[160];
    const int tcfg[] = { C_1P, C_2P_ONE, C_2P_TWO };
    for (size_t i = 0; i < sizeof(tcfg) / sizeof(tcfg[0]); i++)
        for (int k = K_RLD_NULL; k <= K_RLD_RES; k++) {
            int c = tcfg[i];
            snprintf(tn, sizeof(tn), "%s within 1.3x of the naive floor, %s", kind_names[k],
                     cfgs[c].name);
            add_target(tn, "<=", s[c][k].med / s[c][K_NAIVE].med, 1.3, NULL);
        }
    for (int c = 0; c < C_COUNT; c++)
        for (int k = K_RLD_NULL; k <= K_RLD_RES; k++) {
            double mutex = fmin(s[c][K_MUTEX_ROBUST].med, s[c][K_MUTEX_PLAIN].med);
            snprintf(tn, sizeof(tn), "%s faster than both mutex buckets, %.47s", kind_names[k],
                     cfgs[c].name);
            add_target(tn, ">", mutex / s[c][k].med, 1.0, NULL);
        }
    for (int nc = 1; nc <= 2; nc++)
        for (int sc = 0; sc < 2; sc++) {
            static const char *const sn[] = { "token bucket", "GCRA" };
            snprintf(tn, sizeof(tn), "rld_try >= 500x faster than Redis EVALSHA p50, %s, %d client%s",
                     sn[sc], nc, nc == 1 ? "" : "s (vs 2 processes, one limit)");
#ifdef RLD_HAVE_HIREDIS
            if (!redis_skip) {
                double p50 = peers_stats(r50[sc][nc - 1], reps).med * 1000;
                add_target(tn, ">=", p50 / (nc == 1 ? rld1 : rld2), 500, NULL);
                continue;
            }
#endif
            add_target(tn, ">=", NAN, 500, "SKIPPED");
        }
    if (!no_keys) {
        static const struct { int k; double lim; const char *what; } kt[] = {
            { PK_HOT, 2, "rld_try_key on an existing key (one hot key) <= 2x rld_try" },
            { PK_RANDOM, 2, "rld_try_key on an existing key (random live key) <= 2x rld_try" },
            { PK_CREATE, 4, "rld_try_key creating a key (free place) <= 4x rld_try" },
            { PK_CREATE_FULL, 4, "rld_try_key creating a key (table full: reclaims an idle key) "
                                 "<= 4x rld_try" },
        };
        for (size_t i = 0; i < sizeof(kt) / sizeof(kt[0]); i++) {
            /* by the process's CPU time (the wall clock's ratio is in the table and the name:
             * on a busy machine it also counts waiting for a CPU) */
            snprintf(tn, sizeof(tn), "%s, CPU time (wall clock: %.2f)", kt[i].what,
                     key_ratio[kt[i].k]);
            add_target(tn, "<=", key_ratio_cpu[kt[i].k], kt[i].lim, have_keys ? NULL : "MISS");
        }
        /* what the memory allows: a random key's header then its entry (two dependent reads),
         * a new key's headers, then the place it claims (two), plus the work of a call */
        static const struct { int k; double lim; const char *what; } kf[] = {
            { PK_RANDOM, 2.5, "rld_try_key (random live key) <= 2.5x the memory floor" },
            { PK_CREATE, 3, "rld_try_key creating a key (free place) <= 3x the memory floor" },
            { PK_CREATE_FULL, 4, "rld_try_key creating a key (table full) <= 4x the memory "
                                 "floor" },
        };
        for (size_t i = 0; i < sizeof(kf) / sizeof(kf[0]); i++) {
            snprintf(tn, sizeof(tn), "%s, CPU time (floor %.0f ns = %.2fx rld_try)", kf[i].what,
                     key_ratio_cpu[PK_FLOOR] * (have_keys ? peers_stats(kvc[PK_REF], nref).med : NAN),
                     key_ratio_cpu[PK_FLOOR]);
            add_target(tn, "<=", key_ratio_cpu[kf[i].k] / key_ratio_cpu[PK_FLOOR], kf[i].lim,
                       have_keys ? NULL : "MISS");
        }
        /* at max_keys 1,000,000: this instance's key region when it is that size, else the
         * sizing formula; to the hundredth of a byte (the region rounds up to a whole bucket
         * of 7 keys' room and a page: +0.004 B at 1,000,000) */
        double m = nkeys == 1000000u ? key_mem : (double)rldi_keys_table_bytes(1000000u) / 1e6;
        snprintf(tn, sizeof(tn), "segment bytes per key of capacity at max_keys 1,000,000%s <= 64",
                 nkeys == 1000000u ? "" : " (formula)");
        add_target(tn, "<=", round(m * 100) / 100, 64, have_keys && !isnan(m) ? NULL : "MISS");
#ifdef RLD_HAVE_HIREDIS
        if (!redis_skip && have_keys)
            add_target("rld_try_key (random live key) >= 500x faster than Redis EVALSHA per-key "
                       "GCRA p50", ">=", rk_ratio, 500, NULL);
        else
#endif
            add_target("rld_try_key (random live key) >= 500x faster than Redis EVALSHA per-key "
                       "GCRA p50", ">=", NAN, 500, "SKIPPED");
    }
    if (have_wait)
        add_target("rld_wait round trip <= 1.5x raw SEQPACKET ping-pong at p50", "<=",
                   wait50 / pl.med, 1.5, NULL);
    else
        add_target("rld_wait round trip <= 1.5x raw SEQPACKET ping-pong at p50 "
                   "(the daemon did not answer)", "<=", NAN, 1.5, "MISS");

    t_daemon_stop(&d, SIGTERM);     /* reaped: its CPU time counts as ours */
    cpustat cs1;
    peers_read_cpustat(&cs1);
    double dt = cs1.total - cs0.total;
    if (dt > 0 && cs0.total > 0) {
        env.other_pct = fmax(0, (cs1.busy - cs0.busy) - (cs1.own - cs0.own)) / dt * 100;
        env.steal_pct = (cs1.steal - cs0.steal) / dt * 100;
    }
    if (csv)
        print_csv();
    else if (json)
        print_json(&env);
    else
        print_human(&env);
    fflush(stdout);
    return 0;
}
