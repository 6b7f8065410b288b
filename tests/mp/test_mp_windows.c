/*
 * test_mp_windows.c - window limits (issue 14) under real contention, checked from the
 * outside: worker processes hammer one window limit and record every admission they get
 * in shared memory as (t_before, t_after, tokens), two CLOCK_MONOTONIC reads just before
 * and just after the admitting call (and two CLOCK_REALTIME reads around those for fixed
 * windows). Nothing the daemon or the segment says is trusted for the checks.
 *
 *   sliding     5 processes, costs 1..3, rate 200/500ms and 37/300ms (a COUNT that is no
 *               multiple of 16, sub-windows of 18.75 ms): no interval of PERIOD holds more
 *               than COUNT (sliding_max below), and throughput under saturation >= 90%
 *   mixed       5 processes on a sliding limit through rld_try, rld_try_multi with a GCRA
 *               limit (either order: each rolls back the other), rld_refund_ex and
 *               rld_refund of part of an admission right after taking it: the net tokens
 *               are still within the bound; the GCRA limit within its own
 *   fixed       5 processes, costs 1..3, rate 50/200ms, and 30/200ms with align = +50ms:
 *               never more than COUNT in one wall-clock window, every admission's
 *               reset_after points at that window's end, every window holds >= 90% of
 *               COUNT
 *   waits       5 processes in rld_wait (cost 1, timeout 2 s) on a sliding limit: the
 *               grants, made by the daemon process, keep the same bound
 *
 * Each limit is used by one scenario only, so it is empty when its scenario starts. Each
 * scenario runs 2-3 s. RLD_TEST_CASES=sliding,fixed,... (or limit names) runs only some.
 *
 * Every check was seen to fail against a broken common/window.c (one token over COUNT,
 * 4/5 of COUNT, reset_after 5 ms late, refunds counted twice, daemon grants for free, a
 * fixed window's end from a stale monotonic reading and a fresh CLOCK_REALTIME).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

#define MS     1000000ull
#define SEC    1000000000ull
#define NPROC  5
#define CAP    16384          /* admissions recorded per worker and scenario */

static const char *conf_text =
    "[limit sl.a]\nrate = 200/500ms\nalgorithm = sliding\n\n"
    "[limit sl.b]\nrate = 37/300ms\nalgorithm = sliding\n\n"
    "[limit sl.mix]\nrate = 100/250ms\nalgorithm = sliding\n\n"
    "[limit g.mix]\nrate = 240/s\nburst = 20\n\n"
    "[limit fx.a]\nrate = 50/200ms\nalgorithm = fixed\n\n"
    "[limit fx.al]\nrate = 30/200ms\nalgorithm = fixed\nalign = +50ms\n\n"
    "[limit sl.wait]\nrate = 40/400ms\nalgorithm = sliding\n";

/* One admission. The tokens were taken at some instant in [tb, ta] (CLOCK_MONOTONIC), and,
 * for fixed windows, in [rb, ra] (CLOCK_REALTIME, read outside the monotonic reads). */
typedef struct adm {
    uint64_t tb, ta;
    uint64_t rb, ra;
    uint64_t reset_after;    /* rld_result.reset_after_ns of the admitting call (fixed) */
    uint32_t tokens;         /* net: taken, less what was refunded right after */
    uint32_t pad;
} adm;

typedef struct wlog {
    uint32_t n;
    int      err;            /* a call returned something unexpected (its code) */
    int      full;           /* CAP admissions recorded: this worker stopped there */
    uint64_t calls, denied, timeouts, refunded;
    uint64_t gcra_net;       /* mixed: tokens the GCRA limit admitted */
    adm      a[CAP];
} wlog;

typedef struct shared {
    volatile int ready, go;
    volatile uint64_t t0, end;
    wlog w[NPROC];
} shared;

static shared *sh;

enum mode { TRY, MIXED, FIXED, WAIT };

static inline uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A limiter that admits far too much fills the log: the worker stops there, and the
 * checks run on what was recorded (which then exceeds the bound) before failing on it. */
static void record(wlog *w, uint64_t tb, uint64_t ta, uint64_t tokens)
{
    w->a[w->n++] = (adm){ .tb = tb, .ta = ta, .tokens = (uint32_t)tokens };
    w->full = w->n == CAP;
}

static int worker(enum mode m, int id, const char *name, const char *gname)
{
    wlog *w = &sh->w[id];
    rld_client *c;
    rld_limit lim, g = { 0 };
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, name, &lim) < 0 ||
        (gname && rld_find(c, gname, &g) < 0))
        return 2;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1) ^ (uint64_t)getpid();
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);
    while (!sh->go)
        sched_yield();
    uint64_t end = sh->end;
    rld_result res;
    while (w->err == 0) {
        uint64_t x = rnd(&seed), cost = 1 + x % 3;
        uint64_t rb = 0, ra = 0, tb, ta;
        int r;
        if (m == TRY) {
            tb = t_now_ns();
            r = rld_try(c, lim, cost, (x >> 8) & 1 ? &res : NULL);
            ta = t_now_ns();
            if (r == 0)
                record(w, tb, ta, cost);
        } else if (m == FIXED) {
            rb = real_ns();
            tb = t_now_ns();
            r = rld_try(c, lim, cost, &res);
            ta = t_now_ns();
            ra = real_ns();
            if (r == 0) {
                record(w, tb, ta, cost);
                w->a[w->n - 1].rb = rb;
                w->a[w->n - 1].ra = ra;
                w->a[w->n - 1].reset_after = res.reset_after_ns;
            }
        } else if (m == WAIT) {
            cost = 1;
            tb = t_now_ns();
            r = rld_wait(c, lim, 1, 2 * (int64_t)SEC, &res);
            ta = t_now_ns();
            if (r == 0)
                record(w, tb, ta, 1);
            else if (r == -ETIMEDOUT) {
                w->timeouts++;
                r = -EAGAIN;
            }
        } else {
            /* MIXED: a third plain tries (half of them refunding part right after), a third
             * the window first in a multi, a third the GCRA limit first */
            unsigned op = (unsigned)((x >> 8) % 3);
            if (op == 0) {
                tb = t_now_ns();
                r = rld_try(c, lim, cost, &res);
                ta = t_now_ns();
                uint64_t back = 0;
                if (r == 0 && (x >> 12) % 2) {
                    back = 1 + (x >> 16) % cost;
                    /* to the window the tokens came from, named or remembered by this
                     * thread; if that sub-window is over, nothing goes back and the
                     * limiter keeps counting them: net is then what we actually use */
                    int rr = (x >> 20) % 2 ? rld_refund_ex(c, lim, back, res.window)
                                           : rld_refund(c, lim, back);
                    if (rr != 0) {
                        w->err = rr;
                        break;
                    }
                    w->refunded += back;
                }
                if (r == 0)
                    record(w, tb, ta, cost - back);
            } else {
                rld_charge ch[2] = { { lim, cost }, { g, 1 } };
                if (op == 2) {
                    ch[0] = (rld_charge){ g, 1 };
                    ch[1] = (rld_charge){ lim, cost };
                }
                tb = t_now_ns();
                r = rld_try_multi(c, ch, 2, &res);
                ta = t_now_ns();
                if (r == 0) {
                    record(w, tb, ta, cost);
                    w->gcra_net += 1;
                }
            }
        }
        w->calls++;
        if (r == -EAGAIN)
            w->denied++;
        else if (r != 0)
            w->err = r;
        if (ta >= end || w->full)
            break;
    }
    rld_close(c);
    return w->err ? 3 : 0;
}

/* Run NPROC workers in mode M on limit NAME (and GNAME) for RUN_NS; return the merged
 * admissions (malloc'd) in *OUT, their number as the result. *D_NS: the run's length. */
static size_t run(enum mode m, const char *name, const char *gname, uint64_t run_ns,
                  adm **out, uint64_t *d_ns)
{
    memset(sh, 0, sizeof(*sh));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        T_CHECK(pids[i] >= 0, "fork");
        if (pids[i] == 0)
            _exit(worker(m, i, name, gname));
    }
    uint64_t deadline = t_now_ns() + 10 * SEC;
    while (__atomic_load_n(&sh->ready, __ATOMIC_SEQ_CST) < NPROC && t_now_ns() < deadline)
        t_sleep_ns(100000);
    sh->t0 = t_now_ns();
    sh->end = sh->t0 + run_ns;
    __atomic_store_n(&sh->go, 1, __ATOMIC_SEQ_CST);
    int bad = t_reap_all(pids, NPROC, "worker");
    for (int i = 0; i < NPROC; i++)
        T_CHECK(sh->w[i].err == 0, "%s: worker %d: %s", name, i, rld_strerror(sh->w[i].err));
    T_CHECK(!bad, "%s: a worker failed (above; 2: cannot open the instance or its limits)",
            name);
    size_t n = 0;
    for (int i = 0; i < NPROC; i++)
        n += sh->w[i].n;
    adm *a = malloc((n ? n : 1) * sizeof(adm));
    T_CHECK(a, "malloc");
    n = 0;
    for (int i = 0; i < NPROC; i++) {
        memcpy(a + n, sh->w[i].a, sh->w[i].n * sizeof(adm));
        n += sh->w[i].n;
    }
    *out = a;
    *d_ns = run_ns;
    return n;
}

/* After a scenario's checks: no worker filled its log (that many admissions: far too many). */
static void check_not_full(const char *name)
{
    for (int i = 0; i < NPROC; i++)
        T_CHECK(!sh->w[i].full, "%s: worker %d was admitted %d times (the log is full)", name,
                i, CAP);
}

static int by_tb(const void *x, const void *y)
{
    const adm *a = x, *b = y;
    return a->tb < b->tb ? -1 : a->tb > b->tb;
}

/*
 * The sliding bound, checked from recorded times. An admission's tokens were taken at an
 * unknown instant inside [tb, ta]. For an interval [x, x + P), the admissions that CERTAINLY
 * fall in it are those with tb >= x and ta < x + P: whatever their true instants, they are
 * inside, so their tokens must sum to at most COUNT. Admissions only partly inside cannot
 * be charged to it without risking a false alarm: nothing stronger can be said from outside
 * the limiter. Among all x, it is enough to try x = each recorded tb: moving x right up to
 * the next tb keeps every certain admission certain (their tb are >= it) and can only add
 * ones (x + P grows); so the largest certain sum over every x, including x = any ta, is
 * reached at some tb. Returns that largest sum, *AT its x.
 */
static uint64_t sliding_max(adm *a, size_t n, uint64_t period, uint64_t *at)
{
    qsort(a, n, sizeof(adm), by_tb);
    uint64_t best = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = a[i].tb, lim = x + period, sum = 0;
        for (size_t j = i; j < n && a[j].tb < lim; j++)
            if (a[j].ta < lim)
                sum += a[j].tokens;
        if (sum > best) {
            best = sum;
            *at = x;
        }
    }
    return best;
}

static uint64_t total_tokens(const adm *a, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i].tokens;
    return s;
}

static void totals(uint64_t *calls, uint64_t *denied)
{
    *calls = *denied = 0;
    for (int i = 0; i < NPROC; i++) {
        *calls += sh->w[i].calls;
        *denied += sh->w[i].denied;
    }
}

/*
 * Sliding, saturated: the bound, and throughput. The limit is empty at t0, so the run may
 * take COUNT at once and then COUNT per PERIOD: an exact sliding log admits about
 * COUNT + COUNT x (D - P) / P in a run of D. rld's sub-windows (w = ceil(P / 16)) keep each
 * token for 17 sub-windows, which guarantees COUNT per 17 w, 16/17 = 94% of the rate. So
 * the first window's allowance (COUNT, taken at t0) is set aside and the rest must reach 90%
 * of COUNT x (D - P) / P: counting it in would let a limiter that admits little after
 * its first window pass. With 17 w = 531 ms (500 ms) and 319 ms (300 ms), the greedy
 * schedule fits 5 and 7 more full windows into 3 s and 2.5 s: 1000 >= 900, 259 >= 244.
 */
static void test_sliding(const char *name, uint64_t count, uint64_t period, uint64_t run_ns)
{
    adm *a;
    uint64_t d;
    size_t n = run(TRY, name, NULL, run_ns, &a, &d);
    uint64_t at, max = sliding_max(a, n, period, &at), tot = total_tokens(a, n), calls, denied;
    totals(&calls, &denied);
    double rate_share = (double)tot / ((double)count * (double)d / (double)period);
    double floor_ = 0.9 * (double)count * (double)(d - period) / (double)period;
    printf("sliding %-7s %3llu/%llums  %zu admissions, %llu tokens in %.2f s (%.1f%% of COUNT x "
           "D/P), most in any period %llu (bound %llu), %llu calls, %llu denied\n",
           name, (unsigned long long)count, (unsigned long long)(period / MS), n,
           (unsigned long long)tot, (double)d / 1e9, 100 * rate_share, (unsigned long long)max,
           (unsigned long long)count, (unsigned long long)calls, (unsigned long long)denied);
    T_CHECK(max <= count, "%s: %llu tokens certainly admitted within %llu ms from t0+%.3f s",
            name, (unsigned long long)max, (unsigned long long)(period / MS),
            (double)(at - sh->t0) / 1e9);
    T_CHECK((double)tot - (double)count >= floor_,
            "%s: under-admitted: %llu tokens after the first window's %llu, < 90%% of %.0f",
            name, (unsigned long long)(tot - (tot > count ? count : tot)),
            (unsigned long long)count, floor_ / 0.9);
    check_not_full(name);
    free(a);
}

/* rld_try, rld_try_multi with a GCRA limit and refunds mixed: still within the bound. */
static void test_mixed(void)
{
    const uint64_t count = 100, period = 250 * MS, g_rate = 240, g_burst = 20;
    adm *a;
    uint64_t d;
    size_t n = run(MIXED, "sl.mix", "g.mix", 2500 * MS, &a, &d);
    uint64_t at, max = sliding_max(a, n, period, &at), tot = total_tokens(a, n), calls, denied;
    uint64_t gnet = 0, refunded = 0, last = sh->t0;
    totals(&calls, &denied);
    for (size_t i = 0; i < n; i++)
        last = a[i].ta > last ? a[i].ta : last;
    for (int i = 0; i < NPROC; i++) {
        gnet += sh->w[i].gcra_net;
        refunded += sh->w[i].refunded;
    }
    /* GCRA's bound (test_mp_hammer): full at t0, the last admission before LAST */
    double gbound = (double)g_burst + (double)g_rate * (double)(last - sh->t0) / 1e9 + 1;
    printf("mixed   sl.mix  %3llu/%llums  %zu admissions, %llu net tokens (%llu refunded), most "
           "in any period %llu (bound %llu); g.mix %llu (bound %.0f); %llu calls, %llu denied\n",
           (unsigned long long)count, (unsigned long long)(period / MS), n,
           (unsigned long long)tot, (unsigned long long)refunded, (unsigned long long)max,
           (unsigned long long)count, (unsigned long long)gnet, gbound,
           (unsigned long long)calls, (unsigned long long)denied);
    T_CHECK(max <= count, "sl.mix: %llu net tokens certainly admitted within %llu ms from "
            "t0+%.3f s", (unsigned long long)max, (unsigned long long)(period / MS),
            (double)(at - sh->t0) / 1e9);
    T_CHECK((double)gnet <= gbound, "g.mix over-admitted: %llu > %.0f",
            (unsigned long long)gnet, gbound);
    T_CHECK(refunded > 0 && gnet > 0 && tot > 2 * count, "every path was used: refunded %llu, "
            "multi %llu, window %llu", (unsigned long long)refunded, (unsigned long long)gnet,
            (unsigned long long)tot);
    check_not_full("sl.mix");
    free(a);
}

/*
 * Fixed windows, saturated. Windows are [k P + align, (k + 1) P + align) of CLOCK_REALTIME.
 * An admission whose two real-time reads fall in the same window certainly happened in it
 * (one straddling a boundary could be either's and is left out of the per-window sums). Its
 * reset_after, counted from the call, must land on that window's end: between the two
 * reads plus reset_after, within TOL (the monotonic and real clocks tick alike; the
 * limiter ties a window's end to the monotonic clock when the window starts).
 *
 * A window that ends even microseconds before its wall-clock boundary shows here: callers
 * hammering at the boundary open the next window inside the same wall-clock window, and
 * their admissions, certainly inside it, push its sum over COUNT (this caught fixed_now
 * computing the end from a stale CLOCK_MONOTONIC reading and a fresh CLOCK_REALTIME one:
 * 52-62 tokens in a window of 50 in 11 runs of 12).
 *
 * Throughput: each admission is also charged to the window the limiter counted it in, the
 * one whose end its reset_after names (straddling ones too); under saturation every window
 * that begins and ends inside the run must hold at least 90% of COUNT (it holds COUNT a
 * few microseconds after it begins).
 */
static void test_fixed(const char *name, uint64_t count, uint64_t period, uint64_t align,
                       uint64_t run_ns)
{
    const uint64_t tol = 3 * MS;
    adm *a;
    uint64_t d;
    size_t n = run(FIXED, name, NULL, run_ns, &a, &d);
    enum { NW = 64 };
    /* per wall-clock window: its certain admissions / those the limiter counted in it */
    uint64_t wall[NW] = { 0 }, att[NW] = { 0 }, last = 0;
    uint64_t base = UINT64_MAX, tot = total_tokens(a, n), straddle = 0;
    for (size_t i = 0; i < n; i++)
        if ((a[i].rb - align) / period < base)
            base = (a[i].rb - align) / period;
    size_t bad_reset = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t wb = (a[i].rb - align) / period, wa = (a[i].ra - align) / period;
        uint64_t ends = a[i].rb / 2 + a[i].ra / 2 + a[i].reset_after - align + period / 2;
        if (ends / period - 1 - base < NW)      /* the window whose end is nearest */
            att[ends / period - 1 - base] += a[i].tokens;
        last = wa - base > last ? wa - base : last;
        if (wb != wa) {
            straddle++;
            continue;
        }
        uint64_t k = wb - base;
        T_CHECK(k < NW, "%s: window index %llu", name, (unsigned long long)k);
        uint64_t boundary = (wb + 1) * period + align;
        uint64_t lo = a[i].rb + a[i].reset_after, hi = a[i].ra + a[i].reset_after;
        wall[k] += a[i].tokens;
        if (lo > boundary + tol || hi + tol < boundary) {
            bad_reset++;
            if (shown++ < 5)
                fprintf(stderr, "%s: reset_after %.3f ms from [%.3f, %.3f] ms before the "
                        "boundary\n", name, a[i].reset_after / 1e6,
                        (double)(boundary - a[i].ra) / 1e6, (double)(boundary - a[i].rb) / 1e6);
        }
    }
    uint64_t calls, denied, most = 0, windows = 0, least = UINT64_MAX;
    totals(&calls, &denied);
    for (int k = 0; k < NW; k++) {
        windows += wall[k] != 0;
        most = wall[k] > most ? wall[k] : most;
        if (k > 0 && (uint64_t)k < last)        /* inside the run: saturated throughout */
            least = att[k] < least ? att[k] : least;
    }
    printf("fixed   %-7s %3llu/%llums%s  %zu admissions, %llu tokens in %.2f s over %llu "
           "windows, most in one %llu (bound %llu), least in a whole one %llu, %llu "
           "straddling, %zu bad reset_after, %llu calls, %llu denied\n",
           name, (unsigned long long)count, (unsigned long long)(period / MS),
           align ? " +50ms" : "", n, (unsigned long long)tot, (double)d / 1e9,
           (unsigned long long)windows, (unsigned long long)most, (unsigned long long)count,
           (unsigned long long)least, (unsigned long long)straddle, bad_reset,
           (unsigned long long)calls, (unsigned long long)denied);
    for (int k = 0; k < NW; k++)
        T_CHECK(wall[k] <= count, "%s: %llu tokens in wall-clock window %d (COUNT %llu)", name,
                (unsigned long long)wall[k], k, (unsigned long long)count);
    T_CHECK(bad_reset == 0, "%s: %zu of %zu admissions with a reset_after off the boundary by "
            "more than %llu ms", name, bad_reset, n, (unsigned long long)(tol / MS));
    T_CHECK(last >= 3 && (double)least >= 0.9 * (double)count,
            "%s: under-admitted: %llu tokens in a window inside the run (COUNT %llu)", name,
            (unsigned long long)least, (unsigned long long)count);
    check_not_full(name);
    free(a);
}

/* Waits: the daemon grants as the window frees room; its grants keep the bound. */
static void test_waits(void)
{
    const uint64_t count = 40, period = 400 * MS;
    adm *a;
    uint64_t d;
    size_t n = run(WAIT, "sl.wait", NULL, 2500 * MS, &a, &d);
    uint64_t at, max = sliding_max(a, n, period, &at), tot = total_tokens(a, n), calls, denied;
    uint64_t timeouts = 0, longest = 0;
    totals(&calls, &denied);
    for (int i = 0; i < NPROC; i++)
        timeouts += sh->w[i].timeouts;
    for (size_t i = 0; i < n; i++)
        longest = a[i].ta - a[i].tb > longest ? a[i].ta - a[i].tb : longest;
    double rate_share = (double)tot / ((double)count * (double)d / (double)period);
    printf("waits   sl.wait %3llu/%llums  %llu grants in %.2f s (%.1f%% of COUNT x D/P), most "
           "in any period %llu (bound %llu), longest wait %.1f ms, %llu refused\n",
           (unsigned long long)count, (unsigned long long)(period / MS),
           (unsigned long long)tot, (double)d / 1e9, 100 * rate_share, (unsigned long long)max,
           (unsigned long long)count, (double)longest / 1e6, (unsigned long long)timeouts);
    T_CHECK(max <= count, "sl.wait: %llu grants certainly within %llu ms from t0+%.3f s",
            (unsigned long long)max, (unsigned long long)(period / MS),
            (double)(at - sh->t0) / 1e9);
    /* not vacuous: the waits were served at about the rate, and some interval of the
     * check above certainly held a full window (past the first burst, grants come as
     * sub-windows leave, and most waits last far less than the period) */
    double floor_ = 0.8 * (double)count * (double)(d - period) / (double)period;
    T_CHECK((double)tot - (double)count >= floor_, "sl.wait: only %llu grants",
            (unsigned long long)tot);
    T_CHECK(max >= count - 2, "sl.wait: the bound was reached (%llu)", (unsigned long long)max);
    check_not_full("sl.wait");
    free(a);
}

/* RLD_TEST_CASES: a comma-separated list of groups (sliding, mixed, fixed, waits) or
 * limits (sl.a, sl.b, sl.mix, fx.a, fx.al, sl.wait) to run; all by default. */
static int cases_run;

static bool want(const char *group, const char *limit)
{
    const char *e = getenv("RLD_TEST_CASES");
    if (!e || !*e)
        return ++cases_run;
    for (int i = 0; i < 2; i++) {
        const char *w = i ? limit : group;
        size_t n = strlen(w);
        for (const char *p = e; (p = strstr(p, w)); p += n)
            if ((p == e || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
                return ++cases_run;
    }
    return false;
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "mpwin", conf_text);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    sh = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_CHECK(sh != MAP_FAILED, "mmap");

    if (want("sliding", "sl.a"))
        test_sliding("sl.a", 200, 500 * MS, 3000 * MS);
    if (want("sliding", "sl.b"))
        test_sliding("sl.b", 37, 300 * MS, 2500 * MS);
    if (want("mixed", "sl.mix"))
        test_mixed();
    if (want("fixed", "fx.a"))
        test_fixed("fx.a", 50, 200 * MS, 0, 2000 * MS);
    if (want("fixed", "fx.al"))
        test_fixed("fx.al", 30, 200 * MS, 50 * MS, 2000 * MS);
    if (want("waits", "sl.wait"))
        test_waits();
    /* a misspelt RLD_TEST_CASES must not pass having checked nothing */
    T_CHECK(cases_run > 0, "RLD_TEST_CASES=%s names no case: groups sliding, mixed, fixed, "
            "waits; limits sl.a, sl.b, sl.mix, fx.a, fx.al, sl.wait", getenv("RLD_TEST_CASES"));

    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_mp_windows: ok\n");
    return 0;
}
