/*
 * test_upstream.c - issue 15 through a real rld and several processes: rld_penalize (no
 * process admitted before now + D, all of them right after), rld_sync (exactly REMAINING
 * before the reset), leases (10 slots, 20 processes: never more than 10 held; kill -9 of 3
 * holders: their leases back within a second), a breaker opened by 5 failures in one
 * process refusing in all others and letting exactly `probes` through half-open (and a
 * probe killed with SIGKILL counted as failed), shadow mode, burst = 1.5x, waiters re-timed
 * by a penalty, a key's penalty. Each part takes a few seconds at most; timing checks leave
 * room for a busy 2-vCPU machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"

#define MS  1000000ull
#define SEC 1000000000ull

static const char *conf_text =
    "[limit api]\nrate = 20/s\nburst = 5\n\n"
    "[limit quota]\nrate = 100/s\nburst = 100\n\n"
    "[limit pool]\nconcurrency = 10\n\n"
    "[limit pool.rated]\nrate = 50/s\nconcurrency = 2\n\n"
    "[limit shadowed]\nrate = 2/s\nmode = shadow\n\n"
    "[limit multiple]\nrate = 10/s\nburst = 1.5x\n\n"
    "[limit slow]\nrate = 1/s\nburst = 1\n\n"
    "[limit win]\nrate = 10/s\nalgorithm = sliding\n\n"
    "[template per.ip]\nrate = 5/s\n\n"
    "[breaker shop.api]\nfailures = 5\nopen_for = 300ms\nprobes = 2\nsuccesses = 2\n"
    "probe_timeout = 400ms\n";

/* Shared with the children. */
typedef struct shared {
    uint64_t first_admit[16];        /* t_after of each child's first admission */
    uint64_t admits_before[16];      /* admissions whose call ended before a deadline */
    uint64_t admits_started[16];     /* admissions whose call began before a deadline */
    int      held, max_held;         /* leases held now (a lower bound), the most seen */
    int      errors;
    int      entered[16];            /* breaker: 1 let through, 0 refused */
    int      probe[16];
} shared;

static shared *sh;

static void wait_children(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int st;
        T_CHECK(waitpid(pids[i], &st, 0) == pids[i], "reap child %d", i);
        T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d exited %d", i,
                WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* 1. After rld_penalize(D) no process is admitted before D, and every one is right after. */
static void test_penalize(rld_client *c)
{
    enum { N = 4 };
    rld_limit api;
    T_CODE(rld_find(c, "api", &api), 0);
    uint64_t D = 400 * MS;
    memset(sh, 0, sizeof(*sh));
    uint64_t p_before = t_now_ns();
    T_CODE(rld_penalize(c, api, D), 0);
    uint64_t p_after = t_now_ns();
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            rld_client *cc;
            if (rld_open(NULL, 0, &cc) < 0)
                _exit(2);
            rld_result r;
            uint64_t stop = p_after + D + 2 * SEC;
            while (t_now_ns() < stop) {
                if (rld_try(cc, api, 1, &r) == 0) {
                    sh->first_admit[i] = t_now_ns();
                    break;
                }
                /* never told a time that is too early */
                uint64_t now = t_now_ns();
                if (now + r.retry_after_ns < p_before + D)
                    __atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
                t_sleep_ns(r.retry_after_ns < 5 * MS ? r.retry_after_ns : 5 * MS);
            }
            rld_close(cc);
            _exit(0);
        }
    }
    wait_children(pids, N);
    T_CHECK(sh->errors == 0, "%d retry_after figures earlier than the penalty's end", sh->errors);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        T_CHECK(sh->first_admit[i] != 0, "child %d admitted", i);
        T_CHECK(sh->first_admit[i] >= p_before + D, "child %d admitted %.3f ms before the end",
                i, (double)(p_before + D - sh->first_admit[i]) / 1e6);
        if (sh->first_admit[i] > last)
            last = sh->first_admit[i];
    }
    /* right after: one token at D, then the rate (20/s): 4 within 3 intervals, plus slack */
    T_CHECK(last <= p_after + D + 3 * 50 * MS + 250 * MS, "the last child %.1f ms after the end",
            (double)(last - p_after - D) / 1e6);
    printf("penalize: %d processes, none before +%llu ms, all by +%.1f ms\n", N,
           (unsigned long long)(D / MS), (double)(last - p_before) / 1e6);
}

/* 2. After rld_sync(R, X) exactly R are admitted before X, across processes. */
static void test_sync(rld_client *c)
{
    enum { N = 4 };
    rld_limit q;
    T_CODE(rld_find(c, "quota", &q), 0);
    uint64_t R = 7, X = 600 * MS;
    memset(sh, 0, sizeof(*sh));
    uint64_t p_before = t_now_ns();
    T_CODE(rld_sync(c, q, R, X), 0);
    uint64_t p_after = t_now_ns();
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            rld_client *cc;
            if (rld_open(NULL, 0, &cc) < 0)
                _exit(2);
            while (t_now_ns() < p_after + X + 100 * MS) {
                uint64_t t0 = t_now_ns();
                rld_result r;
                if (rld_try(cc, q, 1, &r) == 0) {
                    uint64_t t1 = t_now_ns();
                    if (t1 < p_before + X)
                        sh->admits_before[i]++;
                    if (t0 < p_after + X)
                        sh->admits_started[i]++;
                } else {
                    t_sleep_ns(r.retry_after_ns < MS ? r.retry_after_ns : MS);
                }
            }
            rld_close(cc);
            _exit(0);
        }
    }
    wait_children(pids, N);
    uint64_t surely = 0, maybe = 0;
    for (int i = 0; i < N; i++) {
        surely += sh->admits_before[i];
        maybe += sh->admits_started[i];
    }
    T_CHECK(surely <= R, "%llu admitted before the reset, at most %llu", (unsigned long long)surely,
            (unsigned long long)R);
    T_CHECK(maybe >= R, "only %llu admitted before the reset, %llu were left",
            (unsigned long long)maybe, (unsigned long long)R);
    printf("sync: %llu left for %llu ms: %llu admitted before it (at most %llu of calls that "
           "began before)\n", (unsigned long long)R, (unsigned long long)(X / MS),
           (unsigned long long)surely, (unsigned long long)maybe);
    /* never loosens: a sync saying more changes nothing */
    rld_result r;
    T_CODE(rld_sync(c, q, 1000, SEC), 0);
    T_CODE(rld_peek(c, q, &r), 0);
    T_CHECK(r.remaining < 100, "the sync of 1000 did not refill it (%llu)",
            (unsigned long long)r.remaining);
}

/* 3. 10 leases, 20 processes: never more than 10 held; kill -9 of 3 holders gives theirs back
 * within a second. */
static void test_leases(rld_client *c)
{
    rld_limit pool;
    T_CODE(rld_find(c, "pool", &pool), 0);
    rld_limit_info info;
    T_CODE(rld_info(c, pool, &info), 0);
    T_CHECK(info.concurrency == 10, "concurrency %u", info.concurrency);
    enum { N = 20 };
    memset(sh, 0, sizeof(*sh));
    pid_t pids[N];
    uint64_t end = t_now_ns() + 1500 * MS;
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            rld_client *cc;
            if (rld_open(NULL, 0, &cc) < 0)
                _exit(2);
            while (t_now_ns() < end) {
                rld_lease l;
                int r = rld_acquire_lease(cc, pool, 2 * (int64_t)SEC, &l);
                if (r != 0) {
                    __atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
                    continue;
                }
                int now = __atomic_add_fetch(&sh->held, 1, __ATOMIC_SEQ_CST);
                int m = __atomic_load_n(&sh->max_held, __ATOMIC_RELAXED);
                while (now > m && !__atomic_compare_exchange_n(&sh->max_held, &m, now, false,
                                                              __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
                    ;
                t_sleep_ns(5 * MS + (uint64_t)(i % 5) * MS);
                __atomic_sub_fetch(&sh->held, 1, __ATOMIC_SEQ_CST);
                if (rld_release_lease(cc, &l) != 0)
                    __atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
                sh->admits_before[i % 16]++;
            }
            rld_close(cc);
            _exit(0);
        }
    }
    wait_children(pids, N);
    uint64_t total = 0;
    for (int i = 0; i < 16; i++)
        total += sh->admits_before[i];
    T_CHECK(sh->errors == 0, "%d lease calls failed", sh->errors);
    T_CHECK(sh->max_held <= 10 && sh->max_held >= 5, "at most %d held at once", sh->max_held);
    printf("leases: 20 processes, 10 slots: %llu leases in 1.5 s, at most %d held at once\n",
           (unsigned long long)total, sh->max_held);

    /* all 10 held by 10 processes; 3 of them killed with SIGKILL */
    enum { H = 10 };
    int go[2];
    T_CHECK(pipe(go) == 0, "pipe");
    memset(sh, 0, sizeof(*sh));
    pid_t holders[H];
    for (int i = 0; i < H; i++) {
        if ((holders[i] = fork()) == 0) {
            close(go[1]);
            rld_client *cc;
            if (rld_open(NULL, 0, &cc) < 0)
                _exit(2);
            rld_lease l;
            if (rld_acquire_lease(cc, pool, 5 * (int64_t)SEC, &l) != 0)
                _exit(3);
            __atomic_add_fetch(&sh->held, 1, __ATOMIC_SEQ_CST);
            char b;
            if (read(go[0], &b, 1) < 0)             /* until the parent says (or dies) */
                _exit(4);
            int r = rld_release_lease(cc, &l);
            rld_close(cc);
            _exit(r == 0 ? 0 : 5);
        }
    }
    close(go[0]);
    uint64_t deadline = t_now_ns() + 5 * SEC;
    while (__atomic_load_n(&sh->held, __ATOMIC_SEQ_CST) < H && t_now_ns() < deadline)
        t_sleep_ns(2 * MS);
    T_CHECK(sh->held == H, "%d of 10 holding", sh->held);
    rld_lease extra;
    T_CODE(rld_acquire_lease(c, pool, 0, &extra), -EAGAIN);
    uint64_t t_kill = t_now_ns();
    for (int i = 0; i < 3; i++)
        kill(holders[i], SIGKILL);
    rld_lease got[3];
    uint64_t back = 0;
    for (int i = 0; i < 3; i++) {
        T_CODE(rld_acquire_lease(c, pool, 3 * (int64_t)SEC, &got[i]), 0);
        back = t_now_ns();
    }
    double ms = (double)(back - t_kill) / 1e6;
    T_CHECK(back - t_kill < 1000 * MS, "the 3 leases of the killed came back after %.0f ms", ms);
    printf("leases: kill -9 of 3 holders of 10: all 3 back after %.0f ms\n", ms);
    T_CODE(rld_acquire_lease(c, pool, 0, &extra), -EAGAIN);
    /* the 7 others give theirs back: all 10 for the taking */
    T_CHECK(write(go[1], "1234567", 7) == 7, "tell the holders");
    close(go[1]);
    for (int i = 0; i < H; i++) {
        int st;
        waitpid(holders[i], &st, 0);
        if (i >= 3)
            T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "holder %d exited %d", i,
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    rld_lease more[7];
    for (int i = 0; i < 7; i++)
        T_CODE(rld_acquire_lease(c, pool, (int64_t)SEC, &more[i]), 0);
    T_CODE(rld_acquire_lease(c, pool, 0, &extra), -EAGAIN);
    for (int i = 0; i < 7; i++)
        T_CODE(rld_release_lease(c, &more[i]), 0);
    for (int i = 0; i < 3; i++)
        T_CODE(rld_release_lease(c, &got[i]), 0);
    T_CODE(rld_release_lease(c, &got[0]), -ENOENT);   /* zeroed: released already */
    /* a limit without concurrency has no leases; with a rate, a lease takes a token too */
    rld_limit api, rated;
    T_CODE(rld_find(c, "api", &api), 0);
    T_CODE(rld_acquire_lease(c, api, 0, &extra), -EINVAL);
    T_CODE(rld_find(c, "pool.rated", &rated), 0);
    rld_lease r1, r2;
    T_CODE(rld_acquire_lease(c, rated, 0, &r1), 0);
    T_CODE(rld_acquire_lease(c, rated, 0, &r2), 0);
    T_CODE(rld_acquire_lease(c, rated, 0, &extra), -EAGAIN);
    rld_limit_info ri;
    T_CODE(rld_info(c, rated, &ri), 0);
    T_CHECK(ri.admitted >= 2, "the leases took tokens (%llu)", (unsigned long long)ri.admitted);
    T_CODE(rld_release_lease(c, &r1), 0);
    T_CODE(rld_release_lease(c, &r2), 0);
}

/* 4. A breaker opened by 5 failures in one process refuses in all others, and lets exactly
 * `probes` (2) through when half-open; a probe killed with SIGKILL counts as failed. */
static void test_breaker(rld_client *c)
{
    rld_limit b;
    T_CODE(rld_breaker_find(c, "shop.api", &b), 0);
    rld_limit notalimit;
    T_CODE(rld_find(c, "shop.api", &notalimit), -ENOENT);
    rld_result r;
    for (int i = 0; i < 5; i++) {
        T_CODE(rld_breaker_enter(c, b, &r), 0);
        T_CODE(rld_breaker_report(c, b, 0), 0);
    }
    rld_breaker_status bs;
    T_CODE(rld_breaker_info(c, b, &bs), 0);
    T_CHECK(bs.state == RLD_BREAKER_OPEN && bs.opens == 1, "open after 5 failures (state %u)",
            bs.state);
    enum { N = 8 };
    memset(sh, 0, sizeof(*sh));
    uint64_t half_at = t_now_ns() + 300 * MS + 60 * MS;
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            rld_client *cc;
            if (rld_open(NULL, 0, &cc) < 0)
                _exit(2);
            rld_limit bb;
            if (rld_breaker_find(cc, "shop.api", &bb) < 0)
                _exit(3);
            rld_result rr;
            if (rld_breaker_enter(cc, bb, &rr) != -EAGAIN || rr.retry_after_ns == 0)
                _exit(4);                           /* open: refused here too */
            while (t_now_ns() < half_at)
                ;                                   /* all at once when half-open */
            int e = rld_breaker_enter(cc, bb, &rr);
            sh->entered[i] = e == 0;
            sh->probe[i] = e == 0 && (rr.flags & RLD_F_PROBE);
            if (e == 0) {
                /* the probes report once every child has tried: exactly 2 were let in */
                while (t_now_ns() < half_at + 150 * MS)
                    t_sleep_ns(MS);
                rld_breaker_report(cc, bb, 1);
            }
            rld_close(cc);
            _exit(0);
        }
    }
    wait_children(pids, N);
    int passed = 0, probes = 0;
    for (int i = 0; i < N; i++) {
        passed += sh->entered[i];
        probes += sh->probe[i];
    }
    T_CHECK(passed == 2 && probes == 2, "%d of %d passed half-open (probes = 2)", passed, N);
    T_CODE(rld_breaker_info(c, b, &bs), 0);
    T_CHECK(bs.state == RLD_BREAKER_CLOSED && bs.closes == 1, "closed after 2 probe successes "
            "(state %u, closes %llu)", bs.state, (unsigned long long)bs.closes);
    printf("breaker: opened by 5 failures in one process, refused in 8 others, %d of 8 passed "
           "half-open, closed by their successes\n", passed);

    /* a probe whose process dies: counted as failed after probe_timeout (400 ms) */
    for (int i = 0; i < 5; i++)
        T_CODE(rld_breaker_report(c, b, 0), 0);
    t_sleep_ns(320 * MS);
    pid_t p = fork();
    if (p == 0) {
        rld_client *cc;
        if (rld_open(NULL, 0, &cc) < 0)
            _exit(2);
        rld_limit bb;
        rld_result rr;
        if (rld_breaker_find(cc, "shop.api", &bb) < 0 || rld_breaker_enter(cc, bb, &rr) != 0)
            _exit(3);
        pause();
        _exit(0);
    }
    t_sleep_ns(100 * MS);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    /* one probe out and a second may go; this one is the second */
    T_CODE(rld_breaker_enter(c, b, &r), 0);
    T_CHECK(r.flags & RLD_F_PROBE, "a probe");
    T_CODE(rld_breaker_report(c, b, 1), 0);
    t_sleep_ns(450 * MS);
    T_CODE(rld_breaker_enter(c, b, &r), -EAGAIN);          /* the dead probe failed: open */
    T_CODE(rld_breaker_info(c, b, &bs), 0);
    T_CHECK(bs.state == RLD_BREAKER_OPEN && bs.opens == 3, "open again (state %u, opens %llu)",
            bs.state, (unsigned long long)bs.opens);
}

/* 5. Shadow mode, burst = 1.5x. */
static void test_shadow_and_burst(rld_client *c)
{
    rld_limit s, m;
    T_CODE(rld_find(c, "shadowed", &s), 0);
    rld_result r;
    int flagged = 0;
    for (int i = 0; i < 10; i++) {
        T_CODE(rld_try(c, s, 1, &r), 0);
        flagged += (r.flags & RLD_F_SHADOW) != 0;
    }
    T_CHECK(flagged == 8, "%d of 10 would have been denied (2/s)", flagged);
    rld_limit_info info;
    T_CODE(rld_info(c, s, &info), 0);
    T_CHECK(info.mode == RLD_MODE_SHADOW && info.shadowed == 8, "mode %u shadowed %llu", info.mode,
            (unsigned long long)info.shadowed);
    T_CODE(rld_find(c, "multiple", &m), 0);
    T_CODE(rld_info(c, m, &info), 0);
    T_CHECK(info.burst == 15, "burst = 1.5x of 10: %llu", (unsigned long long)info.burst);
}

/* 6. A penalty re-times the waiters: one that cannot make its timeout any more is told at
 * once, not at its deadline. */
static void test_retime(rld_client *c)
{
    rld_limit slow;
    T_CODE(rld_find(c, "slow", &slow), 0);
    T_CODE(rld_try(c, slow, 1, NULL), 0);
    int fd[2];
    T_CHECK(pipe(fd) == 0, "pipe");
    pid_t p = fork();
    if (p == 0) {
        close(fd[0]);
        rld_client *cc;
        if (rld_open(NULL, 0, &cc) < 0)
            _exit(2);
        rld_result rr;
        uint64_t t0 = t_now_ns();
        int r = rld_wait(cc, slow, 1, 5 * (int64_t)SEC, &rr);
        uint64_t took = t_now_ns() - t0;
        char line[128];
        int n = snprintf(line, sizeof(line), "%d %llu %llu", r, (unsigned long long)took,
                         (unsigned long long)rr.retry_after_ns);
        if (write(fd[1], line, (size_t)n) != n)
            _exit(3);
        _exit(0);
    }
    close(fd[1]);
    /* until it is queued */
    uint64_t deadline = t_now_ns() + 2 * SEC;
    rld_limit_info info;
    do {
        t_sleep_ns(5 * MS);
        T_CODE(rld_info(c, slow, &info), 0);
    } while (info.waiters == 0 && t_now_ns() < deadline);
    T_CHECK(info.waiters == 1, "the child is queued");
    T_CODE(rld_penalize(c, slow, 30 * SEC), 0);
    char line[128] = "";
    ssize_t n = read(fd[0], line, sizeof(line) - 1);
    line[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    waitpid(p, NULL, 0);
    int code = 0;
    unsigned long long took = 0, retry = 0;
    T_CHECK(sscanf(line, "%d %llu %llu", &code, &took, &retry) == 3, "child said '%s'", line);
    T_CHECK(code == -ETIMEDOUT && took < 2 * SEC && retry > 25 * SEC,
            "the queued wait was re-timed: %d after %.0f ms, retry_after %.1f s", code,
            (double)took / 1e6, (double)retry / 1e9);
    printf("retime: a queued 5 s wait told -ETIMEDOUT %.0f ms after it queued, 30 s penalty\n",
           (double)took / 1e6);
}

/* 7. Windows and keys: a penalty on a sliding window holds to its sub-window; a key's handle
 * takes one too. */
static void test_windows_keys(rld_client *c)
{
    rld_limit w;
    T_CODE(rld_find(c, "win", &w), 0);
    uint64_t t0 = t_now_ns();
    T_CODE(rld_penalize(c, w, 250 * MS), 0);
    rld_result r;
    T_CODE(rld_try(c, w, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns + (t_now_ns() - t0) >= 250 * MS &&
            r.retry_after_ns <= 250 * MS + 63 * MS, "sliding: retry_after %.1f ms",
            (double)r.retry_after_ns / 1e6);
    rld_template t;
    rld_limit k, k2;
    T_CODE(rld_find_template(c, "per.ip", &t), 0);
    T_CODE(rld_key(c, t, "10.0.0.1", 8, &k), 0);
    T_CODE(rld_key(c, t, "10.0.0.2", 8, &k2), 0);
    T_CODE(rld_penalize(c, k, 2 * SEC), 0);
    T_CODE(rld_try(c, k, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > SEC, "the key is held (%.1f s)", (double)r.retry_after_ns / 1e9);
    T_CODE(rld_try(c, k2, 1, &r), 0);                 /* the other key is not */
    T_CODE(rld_sync(c, k2, 0, 3 * SEC), 0);
    T_CODE(rld_try(c, k2, 1, &r), -EAGAIN);
    T_CODE(rld_penalize(c, k, 60ull * 86400 * SEC), -ERANGE);
}

/* 8. The backoff helper: full jitter under the cap, Retry-After honoured, attempts bounded. */
static void test_backoff(void)
{
    rld_backoff b;
    rld_backoff_init(&b, 100 * MS, SEC, 5);
    uint64_t d, max = 0;
    for (int i = 0; i < 5; i++) {
        T_CODE(rld_backoff_next(&b, 0, &d), 0);
        uint64_t ceiling = (100 * MS) << i;
        T_CHECK(d <= (ceiling < SEC ? ceiling : SEC), "attempt %d: %llu ns", i, (unsigned long long)d);
        if (d > max)
            max = d;
    }
    T_CODE(rld_backoff_next(&b, 0, &d), -ETIMEDOUT);
    rld_backoff_reset(&b);
    T_CODE(rld_backoff_next(&b, 7 * SEC, &d), 0);
    T_CHECK(d == 7 * SEC, "Retry-After 7 s: %llu", (unsigned long long)d);
    T_CHECK(max > 0, "some jitter");
}

/* The daemon's answer to REQ on a connection of its own: the code, the message in MSG. */
static char sock_path[400];

static int raw_call(Rld__V1__Request *req, char *msg, size_t msglen)
{
    rldi_conn k;
    char err[256];
    int r = rldi_conn_open(sock_path, "upstream-bad-requests", 3000, &k, err, sizeof(err));
    T_CHECK(r == 0, "connect to %s: %s", sock_path, err);
    Rld__V1__Reply *rep;
    r = rldi_conn_call(&k, req, 3000, &rep);
    T_CHECK(r == 0, "call: %d", r);
    int code = rep->code;
    snprintf(msg, msglen, "%s", rep->message ? rep->message : "");
    rld__v1__reply__free_unpacked(rep, NULL);
    rldi_conn_close(&k);
    return code;
}

/* REQ must be refused with CODE and a message naming HINT (what to do, or what is wrong). */
static void expect_refused(const char *what, Rld__V1__Request *req, int code, const char *hint)
{
    char msg[512];
    int got = raw_call(req, msg, sizeof(msg));
    T_CHECK(got == code && strstr(msg, hint), "%s: code %d (expected %d), message '%s' "
            "(expected it to say '%s')", what, got, code, msg, hint);
}

static void bad_put(const char *what, const char *name, const char *rate, bool tmpl,
                    uint32_t max_keys, const char *overflow, const char *mode,
                    const char *algorithm, uint32_t concurrency, int code, const char *hint)
{
    Rld__V1__LimitConfig lc = RLD__V1__LIMIT_CONFIG__INIT;
    lc.name = (char *)name;
    lc.rate = (char *)rate;
    lc.template_ = tmpl;
    lc.max_keys = max_keys;
    lc.overflow = (char *)overflow;
    lc.mode = (char *)mode;
    lc.algorithm = (char *)algorithm;
    lc.concurrency = concurrency;
    Rld__V1__Put p = RLD__V1__PUT__INIT;
    p.limit = &lc;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.id = 1;
    req.body_case = RLD__V1__REQUEST__BODY_PUT;
    req.put = &p;
    expect_refused(what, &req, code, hint);
}

/* 9. Bad values of the wave's requests (Put of templates, Reset of a key, Revert, Lease,
 * Release, Retime, BreakerSet) on the wire, as a client that skips librld's checks sends
 * them: each refused with its code and a message that says what is wrong. */
static void test_bad_requests(void)
{
    /* Put */
    bad_put("overflow", "t.bad", "5/s", true, 0, "maybe", "", "", 0, -EINVAL, "deny or allow");
    bad_put("max_keys of a limit", "l.bad", "5/s", false, 10, "", "", "", 0, -EINVAL,
            "are for templates");
    bad_put("overflow of a limit", "l.bad", "5/s", false, 0, "allow", "", "", 0, -EINVAL,
            "are for templates");
    bad_put("max_keys too large", "t.bad", "5/s", true, (1u << 28) + 1, "", "", "", 0, -EINVAL,
            "1..268435456");
    bad_put("mode", "l.bad", "5/s", false, 0, "", "loud", "", 0, -EINVAL, "enforce or shadow");
    bad_put("algorithm", "l.bad", "5/s", false, 0, "", "", "leaky", 0, -EINVAL,
            "gcra, sliding or fixed");
    bad_put("rate", "l.bad", "5/fortnight", false, 0, "", "", "", 0, -EINVAL, "bad rate");
    bad_put("rate = caller of a limit", "l.bad", "caller", false, 0, "", "", "", 0, -EINVAL,
            "bad rate");
    bad_put("name", "a*b", "5/s", true, 0, "", "", "", 0, -EINVAL, "bad template name");
    bad_put("a template as a limit", "per.ip", "5/s", false, 0, "", "", "", 0, -EINVAL,
            "delete it first");
    bad_put("a limit as a template", "api", "5/s", true, 0, "", "", "", 0, -EINVAL,
            "delete it first");
    bad_put("a breaker", "shop.api", "5/s", false, 0, "", "", "", 0, -EINVAL, "is a breaker");
    bad_put("concurrency too large", "l.bad", "5/s", false, 0, "", "", "", 2000000, -EINVAL,
            "concurrency");

    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.id = 2;

    /* Reset of a key */
    Rld__V1__Reset rs = RLD__V1__RESET__INIT;
    uint8_t big[300];
    memset(big, 'k', sizeof(big));
    req.body_case = RLD__V1__REQUEST__BODY_RESET;
    req.reset = &rs;
    rs.limit = "per.ip";
    rs.key = (ProtobufCBinaryData){ 257, big };
    expect_refused("a key of 257 bytes", &req, -EINVAL, "1 to 256 bytes");
    rs.key = (ProtobufCBinaryData){ 3, big };
    expect_refused("a key not in the table", &req, -ENOENT, "full already");
    rs.limit = "api";
    expect_refused("a key of a limit", &req, -EINVAL, "not a template");
    rs.limit = "no.such";
    expect_refused("a key of no template", &req, -ENOENT, "no.such");

    /* Revert */
    Rld__V1__Revert rv = RLD__V1__REVERT__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_REVERT;
    req.revert = &rv;
    rv.limit = "no.such";
    expect_refused("revert of no limit", &req, -ENOENT, "no.such");
    rv.limit = "a*b";
    expect_refused("revert of a bad name", &req, -EINVAL, "a*b");

    /* Lease */
    Rld__V1__Lease ls = RLD__V1__LEASE__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_LEASE;
    req.lease = &ls;
    ls.limit = "pool";
    req.id = 3;            /* (an id of 0 rldi_conn_call replaces: fuzz_dispatch sends it) */
    ls.priority = 99;
    expect_refused("a lease's priority", &req, -EINVAL, "out of range");
    ls.priority = -1;
    expect_refused("a negative priority", &req, -EINVAL, "out of range");
    ls.priority = 0;
    ls.limit = "api";
    expect_refused("a lease of a limit without concurrency", &req, -EINVAL, "concurrency = N");
    ls.limit = "no.such";
    expect_refused("a lease of no limit", &req, -ENOENT, "");

    /* Release */
    Rld__V1__Release rl = RLD__V1__RELEASE__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RELEASE;
    req.release = &rl;
    rl.lease_id = 0;
    expect_refused("release of lease 0", &req, -ENOENT, "given back already");
    rl.lease_id = 0x123456789abcull;
    expect_refused("release of a lease never granted", &req, -ENOENT, "no such lease");

    /* Retime */
    Rld__V1__Retime rt = RLD__V1__RETIME__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RETIME;
    req.retime = &rt;
    rt.slot = 0;
    rt.gen = 0xfffffff0u;
    expect_refused("retime of a stale generation", &req, -ESTALE, "find it again");
    rt.slot = 0xfffffff0u;
    rt.gen = 0;
    expect_refused("retime of a slot past the segment", &req, -ESTALE, "no such limit");

    /* BreakerSet */
    Rld__V1__BreakerSet bs = RLD__V1__BREAKER_SET__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_BREAKER;
    req.breaker = &bs;
    bs.breaker = "api";
    bs.open = true;
    expect_refused("trip of a limit", &req, -ENOENT, "is not one");
    bs.breaker = "no.such";
    expect_refused("trip of nothing", &req, -ENOENT, "no.such");
    bs.breaker = "";
    expect_refused("trip of no name", &req, -EINVAL, "");
    printf("bad requests: each refused with its code and a message saying why\n");
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "upstream", conf_text);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "start");
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_CHECK(sh != MAP_FAILED, "shared memory");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    test_penalize(c);
    test_sync(c);
    test_leases(c);
    test_breaker(c);
    test_shadow_and_burst(c);
    test_retime(c);
    test_windows_keys(c);
    test_backoff();
    snprintf(sock_path, sizeof(sock_path), "%s/%s.sock", d.dir, d.instance);
    test_bad_requests();
    rld_close(c);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    return 0;
}
