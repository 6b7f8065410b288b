/*
 * test_windows.c - window limits (algorithm = sliding | fixed) through a real rld: the
 * example of issue 14 ("120 per 60 s per IP: the 121st within 60 s is refused, retry_after
 * = until the oldest call leaves"), fixed windows' reset_after at the wall-clock boundary
 * (aligned or not), refund to the window the tokens came from, rld_try_multi mixing
 * algorithms all-or-nothing, waits through the daemon, debit and peek, reload and Put
 * carrying or restarting the state, and the configuration errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "rld.h"

#define SEC 1000000000ull

static const char *conf_text =
    "[limit ip]\nrate = 120/60s\nalgorithm = sliding\n\n"
    "[limit hourly]\nrate = 1000/h\nalgorithm = fixed\n\n"
    "[limit at15]\nrate = 50/h\nalgorithm = fixed\nalign = +15min\n\n"
    "[limit s10]\nrate = 10/s\nalgorithm = sliding\n\n"
    "[limit f5]\nrate = 5/s\nalgorithm = fixed\n\n"
    "[limit g]\nrate = 10/s\nburst = 10\n\n"
    "[limit ffirst]\nrate = 3/2s\nalgorithm = fixed\nalign = first\n\n"
    "[limit felastic]\nrate = 3/2s\nalgorithm = fixed\nalign = elastic\n";

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* 1. The example, on a 60 s sliding window: exact count, then a retry_after between
 * the moment the oldest call leaves and one sub-window (60 s / 16) later. */
static void test_example(rld_client *c)
{
    rld_limit ip;
    T_CODE(rld_find(c, "ip", &ip), 0);
    rld_limit_info info;
    T_CODE(rld_info(c, ip, &info), 0);
    T_CHECK(info.algorithm == RLD_ALGO_SLIDING && info.burst == 120, "info: algo %u burst %llu",
            info.algorithm, (unsigned long long)info.burst);
    rld_result r;
    uint64_t t_first = t_now_ns();
    for (int i = 0; i < 120; i++) {
        T_CODE(rld_try(c, ip, 1, &r), 0);
        T_CHECK(r.limit == 120 && r.remaining == (uint64_t)(119 - i) && r.retry_after_ns == 0,
                "call %d: limit %llu remaining %llu", i + 1, (unsigned long long)r.limit,
                (unsigned long long)r.remaining);
        T_CHECK(r.window != 0, "a window id");
    }
    uint64_t t_last = t_now_ns();
    uint64_t t0 = t_now_ns();
    T_CODE(rld_try(c, ip, 1, &r), -EAGAIN);
    uint64_t t1 = t_now_ns();
    uint64_t fits_at_lo = t_first + 60 * SEC, fits_at_hi = t_last + 60 * SEC + 60 * SEC / 16;
    /* t0 + ra >= oldest leaves (t_first + 60 s), allowing the coarse clock's lag (10 ms) */
    T_CHECK(t1 + r.retry_after_ns + 10000000 >= fits_at_lo && t0 + r.retry_after_ns <= fits_at_hi,
            "121st: retry_after %.3f s (between %.3f and %.3f)", r.retry_after_ns / 1e9,
            (fits_at_lo - (double)t1) / 1e9, (fits_at_hi - (double)t0) / 1e9);
    T_CHECK(r.remaining == 0 && r.reset_after_ns >= r.retry_after_ns, "remaining 0, reset %.3f",
            r.reset_after_ns / 1e9);
    /* costs: 0 always passes, more than COUNT never can */
    T_CODE(rld_try(c, ip, 0, NULL), 0);
    T_CODE(rld_try(c, ip, 121, &r), -E2BIG);
    /* barging changes nothing on a full window */
    T_CODE(rld_try_ex(c, ip, 1, RLD_TRY_BARGE, &r), -EAGAIN);
    /* a wait that cannot fit its timeout is refused at once with the time it would need */
    uint64_t w0 = t_now_ns();
    T_CODE(rld_wait(c, ip, 1, 2 * SEC, &r), -ETIMEDOUT);
    T_CHECK(t_now_ns() - w0 < SEC, "refused at once");
    T_CHECK(r.retry_after_ns > 50 * SEC, "it says when: %.3f s", r.retry_after_ns / 1e9);
}

/* Sliding, short: retry_after is never early, and the call fits when it says. */
static void test_sliding_timing(rld_client *c)
{
    rld_limit s;
    T_CODE(rld_find(c, "s10", &s), 0);
    rld_result r;
    for (int i = 0; i < 10; i++)
        T_CODE(rld_try(c, s, 1, &r), 0);
    uint64_t t0 = t_now_ns();
    T_CODE(rld_try(c, s, 1, &r), -EAGAIN);
    uint64_t ra = r.retry_after_ns;
    T_CHECK(ra > 900000000ull && ra <= 1000000000ull + 62500000ull, "ra %.3f", ra / 1e9);
    /* shortly before: still refused (unless this thread slept past the time) */
    t_sleep_ns(ra - 30000000);
    int rc = rld_try(c, s, 1, &r);
    uint64_t t1 = t_now_ns();
    T_CHECK(rc == -EAGAIN || t1 + 10000000 >= t0 + ra, "admitted %.3f s early",
            ((double)t0 + ra - t1) / 1e9);
    while (t_now_ns() < t0 + ra + 2000000)
        t_sleep_ns(1000000);
    if (rc == -EAGAIN)
        T_CODE(rld_try(c, s, 1, &r), 0);
    /* the window now holds 1: 9 fit, a 10th does not */
    T_CODE(rld_try(c, s, 9, &r), 0);
    T_CODE(rld_try(c, s, 1, &r), -EAGAIN);
}

/* 2. Fixed windows: reset_after points at the wall-clock boundary, aligned or not. */
static void check_boundary(rld_client *c, const char *name, uint64_t period, uint64_t align,
                           uint64_t count)
{
    rld_limit l;
    T_CODE(rld_find(c, name, &l), 0);
    rld_limit_info info;
    T_CODE(rld_info(c, l, &info), 0);
    T_CHECK(info.algorithm == RLD_ALGO_FIXED && info.align_ns == align, "%s: fixed, align %llu",
            name, (unsigned long long)info.align_ns);
    rld_result r;
    uint64_t before = real_ns();
    T_CODE(rld_try(c, l, count, &r), 0);
    uint64_t after = real_ns();
    /* the boundary: the next multiple of the period (plus align) after the wall clock now */
    uint64_t into = (before + period - align) % period;
    uint64_t boundary = before - into + period;
    T_CHECK(before + r.reset_after_ns + 5000000 >= boundary &&
                after + r.reset_after_ns <= boundary + 5000000,
            "%s: reset_after %.3f s, boundary in %.3f s", name, r.reset_after_ns / 1e9,
            ((double)boundary - before) / 1e9);
    T_CHECK(r.remaining == 0 && r.limit == count, "%s: full", name);
    uint64_t reset = r.reset_after_ns;
    T_CODE(rld_try(c, l, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns <= reset && r.retry_after_ns + 50000000 >= reset,
            "%s: retry_after = the boundary (%.3f vs %.3f)", name, r.retry_after_ns / 1e9,
            reset / 1e9);
    /* the whole count fits the next window, not before */
    T_CODE(rld_wait(c, l, count, 0, &r), -ETIMEDOUT);
    T_CHECK(r.retry_after_ns + 50000000 >= reset && r.retry_after_ns <= reset + 1000,
            "%s: the whole next window", name);
}

static void test_fixed(rld_client *c)
{
    check_boundary(c, "hourly", 3600 * SEC, 0, 1000);
    check_boundary(c, "at15", 3600 * SEC, 15 * 60 * SEC, 50);

    /* short windows: never more than 5 in one wall-clock second, and full again after it */
    rld_limit f;
    T_CODE(rld_find(c, "f5", &f), 0);
    uint64_t end = t_now_ns() + 2300000000ull;
    uint64_t per_sec[8] = {0}, first = real_ns() / SEC;
    while (t_now_ns() < end) {
        uint64_t a = real_ns();
        int rc = rld_try(c, f, 1, NULL);
        uint64_t b = real_ns();
        if (rc == 0 && a / SEC == b / SEC)     /* (one straddling a second: not counted) */
            per_sec[(b / SEC - first) & 7]++;
        t_sleep_ns(1000000);
    }
    int full = 0;
    for (int i = 0; i < 4; i++) {
        T_CHECK(per_sec[i] <= 5, "second %d: %llu admitted", i, (unsigned long long)per_sec[i]);
        full += per_sec[i] == 5;
    }
    T_CHECK(full >= 2, "the windows were used: %d full seconds", full);
}

/* 2b. Windows anchored at their first take, or pushed on by every attempt. */
static void test_anchors(rld_client *c)
{
    rld_limit f, e;
    T_CODE(rld_find(c, "ffirst", &f), 0);
    T_CODE(rld_find(c, "felastic", &e), 0);
    rld_limit_info info;
    T_CODE(rld_info(c, f, &info), 0);
    T_CHECK(info.align_ns == RLD_ALIGN_FIRST, "first");
    T_CODE(rld_info(c, e, &info), 0);
    T_CHECK(info.align_ns == RLD_ALIGN_ELASTIC, "elastic");
    rld_result r;
    uint64_t t0 = t_now_ns();
    T_CODE(rld_try(c, f, 3, &r), 0);
    uint64_t t1 = t_now_ns();
    T_CHECK(r.reset_after_ns + (t1 - t0) + 5 * 1000000ull >= 2 * SEC && r.reset_after_ns <= 2 * SEC,
            "a period from the first take: %.3f s", r.reset_after_ns / 1e9);
    T_CODE(rld_try(c, e, 3, &r), 0);
    t_sleep_ns(600 * 1000000ull);
    T_CODE(rld_try(c, f, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns < 1500 * 1000000ull, "first: the end stays: %.3f s", r.retry_after_ns / 1e9);
    T_CODE(rld_try(c, e, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 1900 * 1000000ull, "elastic: the attempt pushed it: %.3f s",
            r.retry_after_ns / 1e9);
    t_sleep_ns(1500 * 1000000ull);                   /* f's window ended, e's was pushed */
    T_CODE(rld_try(c, f, 3, &r), 0);
    T_CODE(rld_try(c, e, 1, &r), -EAGAIN);
}

/* 3. Refund: to the window the tokens came from, while it is current. */
static void test_refund(rld_client *c)
{
    rld_limit s, f, g;
    T_CODE(rld_find(c, "s10", &s), 0);
    T_CODE(rld_find(c, "f5", &f), 0);
    T_CODE(rld_find(c, "g", &g), 0);
    rld_result r, p;
    /* a fresh sub-window: wait until s10 is empty again */
    t_sleep_ns(1100000000);
    T_CODE(rld_peek(c, s, &p), 0);
    T_CHECK(p.remaining == 10, "s10 empty: %llu", (unsigned long long)p.remaining);
    T_CODE(rld_try(c, s, 4, &r), 0);
    uint32_t win = r.window;
    T_CHECK(win != 0, "window id");
    T_CODE(rld_refund_ex(c, s, 3, win), 0);
    T_CODE(rld_peek(c, s, &p), 0);
    /* unless the sub-window (62.5 ms) ended in between, 3 came back */
    T_CHECK(p.remaining == 9 || p.remaining == 6, "refund_ex: %llu left",
            (unsigned long long)p.remaining);
    /* rld_refund knows this thread's last take */
    T_CODE(rld_try(c, s, 2, &r), 0);
    uint64_t before = r.remaining;
    T_CODE(rld_refund(c, s, 2), 0);
    T_CODE(rld_peek(c, s, &p), 0);
    T_CHECK(p.remaining == before + 2 || p.remaining == before, "refund: %llu -> %llu",
            (unsigned long long)before, (unsigned long long)p.remaining);
    /* never more than was taken in that window, never above COUNT */
    T_CODE(rld_refund_ex(c, s, 1000, r.window), 0);
    T_CODE(rld_peek(c, s, &p), 0);
    T_CHECK(p.remaining <= 10, "not above COUNT");
    /* a past sub-window: nothing given back */
    T_CODE(rld_try(c, s, 1, &r), 0);
    uint32_t old = r.window;
    t_sleep_ns(150000000);                       /* > 2 sub-windows */
    T_CODE(rld_peek(c, s, &p), 0);
    uint64_t rem = p.remaining;
    T_CODE(rld_refund_ex(c, s, 1, old), 0);
    T_CODE(rld_peek(c, s, &p), 0);
    T_CHECK(p.remaining == rem, "past window: nothing back (%llu, %llu)",
            (unsigned long long)rem, (unsigned long long)p.remaining);
    /* window 0: cannot know, nothing back */
    T_CODE(rld_refund_ex(c, s, 1, 0), -EOPNOTSUPP);
    /* after a take on another limit, this thread's record is that limit's */
    T_CODE(rld_try(c, f, 1, &r), 0);
    T_CODE(rld_try(c, g, 1, NULL), 0);
    T_CODE(rld_refund(c, s, 1), -EOPNOTSUPP);
    T_CODE(rld_refund(c, f, 1), 0);              /* f5's record is still this thread's */
    /* GCRA refund as before; a GCRA result says window 0 */
    T_CODE(rld_try(c, g, 1, &r), 0);
    T_CHECK(r.window == 0, "GCRA: window 0");
    T_CODE(rld_refund_ex(c, g, 1, 0), 0);
    T_CODE(rld_refund(c, g, 1), 0);
}

/* 4. rld_try_multi over a GCRA and a window limit: all or nothing, either one denying. */
static void test_multi(rld_client *c, t_daemon *d)
{
    t_reload(d, "[limit w]\nrate = 5/10s\nalgorithm = sliding\n\n"
                "[limit fx]\nrate = 5/h\nalgorithm = fixed\n\n"
                "[limit g]\nrate = 1/h\nburst = 3\n", "reloaded ");
    rld_limit w, fx, g;
    T_CODE(rld_find(c, "w", &w), 0);
    T_CODE(rld_find(c, "fx", &fx), 0);
    T_CODE(rld_find(c, "g", &g), 0);
    rld_result r, p;
    T_CODE(rld_peek(c, g, &p), 0);
    uint64_t g0 = p.remaining;
    T_CHECK(g0 >= 1, "g has tokens: %llu", (unsigned long long)g0);
    rld_charge ch[3] = { { g, 1 }, { w, 3 }, { fx, 3 } };
    T_CODE(rld_try_multi(c, ch, 3, &r), 0);
    T_CODE(rld_peek(c, w, &p), 0);
    T_CHECK(p.remaining == 2, "w took 3");
    /* the window denies: nothing is taken from the others */
    ch[1].cost = 3;
    ch[2].cost = 1;
    T_CODE(rld_try_multi(c, ch, 3, &r), -EAGAIN);
    T_CHECK(r.index == 1 && r.retry_after_ns > 0, "w decided: index %u", r.index);
    T_CODE(rld_peek(c, g, &p), 0);
    T_CHECK(p.remaining == g0 - 1, "g rolled back: %llu", (unsigned long long)p.remaining);
    T_CODE(rld_peek(c, fx, &p), 0);
    T_CHECK(p.remaining == 2, "fx rolled back: %llu", (unsigned long long)p.remaining);
    /* GCRA denies: the windows get theirs back */
    ch[0].cost = 3;
    ch[1].cost = 1;
    ch[2].cost = 1;
    T_CODE(rld_try_multi(c, ch, 3, &r), -EAGAIN);
    T_CHECK(r.index == 0, "g decided: index %u", r.index);
    T_CODE(rld_peek(c, w, &p), 0);
    T_CHECK(p.remaining == 2, "w rolled back: %llu", (unsigned long long)p.remaining);
    T_CODE(rld_peek(c, fx, &p), 0);
    T_CHECK(p.remaining == 2, "fx rolled back: %llu", (unsigned long long)p.remaining);
}

/* 5. Waits: the daemon knows when a window frees room, in FIFO order. */
struct waiter {
    rld_client *c;
    rld_limit   l;
    uint64_t    cost;
    int         rc;
    uint64_t    done_ns;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    rld_result r;
    w->rc = rld_wait(w->c, w->l, w->cost, 5 * SEC, &r);
    w->done_ns = t_now_ns();
    return NULL;
}

static void test_waits(rld_client *c, t_daemon *d)
{
    t_reload(d, "[limit sw]\nrate = 4/800ms\nalgorithm = sliding\n\n"
                "[limit fw]\nrate = 3/s\nalgorithm = fixed\n\n"
                "[limit g]\nrate = 100/s\nburst = 100\n", "reloaded ");
    rld_limit sw, fw, g;
    T_CODE(rld_find(c, "sw", &sw), 0);
    T_CODE(rld_find(c, "fw", &fw), 0);
    T_CODE(rld_find(c, "g", &g), 0);
    rld_result r;
    /* sliding: full, then 3 waiters of 2 each: they get in as the window frees room */
    T_CODE(rld_try(c, sw, 4, &r), 0);
    uint64_t t0 = t_now_ns();
    struct waiter ws[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        ws[i] = (struct waiter){ c, sw, 2, 1, 0 };
        T_CHECK(pthread_create(&th[i], NULL, wait_thread, &ws[i]) == 0, "thread");
        t_sleep_ns(20000000);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        T_CODE(ws[i].rc, 0);
    /* the first two fit when the 4 leave (~800 ms), the third ~800 ms later */
    T_CHECK(ws[0].done_ns - t0 >= 780000000ull && ws[1].done_ns - t0 >= 780000000ull,
            "not before the window frees: %.3f %.3f", (ws[0].done_ns - t0) / 1e9,
            (ws[1].done_ns - t0) / 1e9);
    T_CHECK(ws[2].done_ns - t0 >= 1560000000ull, "the third waits another window: %.3f",
            (ws[2].done_ns - t0) / 1e9);
    /* the first two are served together, when the 4 leave (their threads may wake in either
     * order on a loaded machine); the third a window later */
    T_CHECK(ws[2].done_ns > ws[0].done_ns + 700000000ull &&
                ws[2].done_ns > ws[1].done_ns + 700000000ull,
            "in order: the third a window after the first two");

    /* fixed: a wait is served at the boundary, a multi wait over a window and GCRA too */
    T_CODE(rld_try(c, fw, 3, &r), 0);
    uint64_t boundary_in = r.reset_after_ns;
    uint64_t w0 = t_now_ns();
    T_CODE(rld_wait(c, fw, 2, 3 * SEC, &r), 0);
    uint64_t waited = t_now_ns() - w0;
    T_CHECK(waited + 5000000 >= boundary_in, "served at the boundary: %.3f vs %.3f",
            waited / 1e9, boundary_in / 1e9);
    rld_charge ch[2] = { { g, 50 }, { fw, 2 } };
    w0 = t_now_ns();
    T_CODE(rld_peek(c, fw, &r), 0);
    boundary_in = r.reset_after_ns;
    T_CODE(rld_wait_multi(c, ch, 2, 3 * SEC, NULL, &r), 0);
    waited = t_now_ns() - w0;
    T_CHECK(waited + 5000000 >= boundary_in, "multi served at the boundary: %.3f vs %.3f",
            waited / 1e9, boundary_in / 1e9);
}

/* 5b. What a wait took on a window limit can be given back to its window: rld_refund after
 * rld_wait (the thread's take), rld_refund_ex with the result's window, and a non-blocking
 * wait granted by the daemon then cancelled before it is collected. */
static void test_wait_refunds(rld_client *c, t_daemon *d)
{
    t_reload(d, "[limit sr]\nrate = 4/2s\nalgorithm = sliding\n\n"
                "[limit fr]\nrate = 4/h\nalgorithm = fixed\n\n"
                "[limit fq]\nrate = 2/3s\nalgorithm = fixed\n", "reloaded ");
    rld_limit sr, fr;
    T_CODE(rld_find(c, "sr", &sr), 0);
    T_CODE(rld_find(c, "fr", &fr), 0);
    rld_result r, p;
    /* served by the daemon: full first, then a wait of 1 */
    T_CODE(rld_try(c, sr, 4, &r), 0);
    T_CODE(rld_wait(c, sr, 1, 5 * SEC, &r), 0);
    T_CHECK(r.window != 0, "a granted wait names its window");
    T_CODE(rld_peek(c, sr, &p), 0);
    uint64_t before = p.remaining;
    T_CODE(rld_refund(c, sr, 1), 0);                 /* the thread's last take: the wait */
    T_CODE(rld_peek(c, sr, &p), 0);
    T_CHECK(p.remaining == before + 1, "refund after a wait: %llu -> %llu",
            (unsigned long long)before, (unsigned long long)p.remaining);
    /* the fast path of a wait (room now) names its window too */
    T_CODE(rld_wait(c, fr, 2, 0, &r), 0);
    T_CHECK(r.window != 0, "window of a wait served at once");
    T_CODE(rld_refund_ex(c, fr, 2, r.window), 0);
    T_CODE(rld_peek(c, fr, &p), 0);
    T_CHECK(p.remaining == 4, "fr back to 4: %llu", (unsigned long long)p.remaining);
    /* a non-blocking wait the daemon grants, cancelled before it is collected: given back
     * to the window it was granted in (fq's windows last 3 s: time enough to see it) */
    rld_limit fq;
    T_CODE(rld_find(c, "fq", &fq), 0);
    T_CODE(rld_peek(c, fq, &p), 0);
    if (p.reset_after_ns < 1500000000ull)            /* not at the end of a window */
        t_sleep_ns(p.reset_after_ns + 10000000);
    T_CODE(rld_try(c, fq, 2, NULL), 0);
    uint64_t t;
    rld_charge ch = { fq, 1 };
    T_CODE(rld_wait_start(c, &ch, 1, 10 * SEC, NULL, &t), 0);
    uint64_t deadline = t_now_ns() + 5 * SEC;
    do {                                             /* granted at the boundary */
        t_sleep_ns(20000000);
        T_CODE(rld_peek(c, fq, &p), 0);
    } while (p.remaining != 1 && t_now_ns() < deadline);
    T_CHECK(p.remaining == 1, "the wait was granted in the new window: %llu",
            (unsigned long long)p.remaining);
    struct pollfd pf = { rld_wait_fd(c), POLLIN, 0 };
    T_CHECK(poll(&pf, 1, 2000) == 1, "its reply arrived");
    T_CODE(rld_wait_cancel(c, t), 0);
    rld_completion x[2];
    int got = rld_wait_collect(c, x, 2);            /* reads the grant: gives it back */
    T_CODE(rld_peek(c, fq, &p), 0);
    T_CHECK(p.remaining == 2, "the cancelled grant is back in fq's window: %llu",
            (unsigned long long)p.remaining);
    T_CHECK(got == 1 && x[0].code == -ECANCELED, "the cancel is what is collected");
}

/* 6. Debit and peek: past COUNT, peek says when the debt has left. */
static void test_debit(rld_client *c, t_daemon *d)
{
    t_reload(d, "[limit sd]\nrate = 10/s\nalgorithm = sliding\n\n"
                "[limit fd]\nrate = 10/h\nalgorithm = fixed\n", "reloaded ");
    rld_limit sd, fd;
    T_CODE(rld_find(c, "sd", &sd), 0);
    T_CODE(rld_find(c, "fd", &fd), 0);
    rld_result p;
    T_CODE(rld_debit(c, sd, 15), 0);
    T_CODE(rld_peek(c, sd, &p), 0);
    T_CHECK(p.remaining == 0 && p.retry_after_ns > 900000000ull &&
                p.retry_after_ns <= SEC + SEC / 16,
            "sliding debt: %.3f s", p.retry_after_ns / 1e9);
    T_CODE(rld_try(c, sd, 1, NULL), -EAGAIN);
    T_CODE(rld_debit(c, sd, 1u << 30), -ERANGE);     /* beyond the cap: nothing taken */
    T_CODE(rld_debit(c, fd, 15), 0);              /* max_debt 1 h: one more window's worth */
    T_CODE(rld_debit(c, fd, 6), -ERANGE);
    T_CODE(rld_peek(c, fd, &p), 0);
    T_CHECK(p.remaining == 0 && p.retry_after_ns > 0 && p.retry_after_ns == p.reset_after_ns,
            "fixed debt: until the boundary");
    T_CODE(rld_debit(c, fd, 1ull << 40), -ERANGE);
    T_CODE(rld_try(c, fd, 1, NULL), -EAGAIN);
}

/* 7. Reload and Put: state carried while the algorithm stays, a change starts full (logged). */
static void test_reload(rld_client *c, t_daemon *d)
{
    t_reload(d, "[limit a]\nrate = 10/s\nalgorithm = sliding\n\n"
                "[limit b]\nrate = 10/h\nalgorithm = fixed\n\n"
                "[limit x]\nrate = 10/h\nburst = 10\n", "reloaded ");
    rld_limit a, b, x;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "b", &b), 0);
    T_CODE(rld_find(c, "x", &x), 0);
    T_CODE(rld_try(c, a, 6, NULL), 0);
    T_CODE(rld_try(c, b, 6, NULL), 0);
    T_CODE(rld_try(c, x, 6, NULL), 0);
    /* counts change, algorithms stay: what the windows hold carries */
    t_reload(d, "[limit a]\nrate = 20/s\nalgorithm = sliding\n\n"
                "[limit b]\nrate = 20/h\nalgorithm = fixed\n\n"
                "[limit x]\nrate = 10/h\nburst = 10\n", "reloaded ");
    rld_result p;
    T_CODE(rld_peek(c, a, &p), 0);
    T_CHECK(p.limit == 20 && p.remaining == 14, "sliding carried: %llu of %llu",
            (unsigned long long)p.remaining, (unsigned long long)p.limit);
    T_CODE(rld_peek(c, b, &p), 0);
    T_CHECK(p.limit == 20 && p.remaining == 14, "fixed carried: %llu of %llu",
            (unsigned long long)p.remaining, (unsigned long long)p.limit);
    /* a: sliding -> gcra, x: gcra -> fixed: both start full, and the log says so */
    t_reload(d, "[limit a]\nrate = 20/s\n\n"
                "[limit b]\nrate = 20/h\nalgorithm = fixed\n\n"
                "[limit x]\nrate = 10/h\nalgorithm = fixed\n", "reloaded ");
    T_CODE(rld_peek(c, a, &p), 0);
    T_CHECK(p.limit == 20 && p.remaining == 20, "a full: %llu", (unsigned long long)p.remaining);
    T_CODE(rld_peek(c, x, &p), 0);
    T_CHECK(p.limit == 10 && p.remaining == 10, "x full: %llu", (unsigned long long)p.remaining);
    T_CHECK(t_log_has(d, "limit a: algorithm sliding -> gcra: it starts full"), "a logged");
    T_CHECK(t_log_has(d, "limit x: algorithm gcra -> fixed: it starts full"), "x logged");
    rld_limit_info info;
    T_CODE(rld_info(c, x, &info), 0);
    T_CHECK(info.algorithm == RLD_ALGO_FIXED && info.burst == 10, "x is a fixed window now");
    /* the handle stayed valid through it all */
    T_CODE(rld_try(c, x, 10, NULL), 0);
    T_CODE(rld_try(c, x, 1, NULL), -EAGAIN);

    /* a restart keeps windows as it keeps buckets */
    T_CHECK(t_daemon_stop_clean(d), "stop");
    T_CHECK(t_daemon_start(d, NULL) == 0, "restart");
    T_CODE(rld_peek(c, x, &p), 0);
    T_CHECK(p.remaining == 0, "x still full after a restart: %llu",
            (unsigned long long)p.remaining);
    T_CODE(rld_peek(c, b, &p), 0);
    T_CHECK(p.remaining == 14, "b kept: %llu", (unsigned long long)p.remaining);
}

/* 8. Configuration errors: named with file:line, and a bad reload changes nothing. */
static void test_config_errors(t_daemon *d)
{
    static const struct { const char *text, *needle; } bad[] = {
        { "[limit a]\nrate = 10/s\nalgorithm = sliding\nburst = 5\n", ":4:" },
        { "[limit a]\nrate = 10/s\nburst = 5\nalgorithm = fixed\n", "burst" },
        { "[limit a]\nrate = 10/s\nalgorithm = leaky\n", ":3:" },
        { "[limit a]\nrate = 10/s\nalign = +15min\n", "align" },
        { "[limit a]\nrate = 10/h\nalgorithm = fixed\nalign = 2h\n", "align" },
        { "[limit a]\nrate = 20000000/min\nalgorithm = sliding\n", "16777215" },
        { "[limit a]\nrate = unlimited\nalgorithm = sliding\n", "unlimited" },
    };
    char path[400], out[4096];
    snprintf(path, sizeof(path), "%s/bad.conf", d->dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(path, "w");
        T_CHECK(f, "write %s", path);
        fputs(bad[i].text, f);
        fclose(f);
        const char *args[] = { "--check-config", "--config", path, NULL };
        T_CHECK(t_run_rld(out, sizeof(out), args) == 1, "case %zu refused: %s", i, out);
        T_CHECK(strstr(out, bad[i].needle) && strstr(out, "bad.conf"),
                "case %zu names %s and the file: %s", i, bad[i].needle, out);
    }
    const char *good = "[limit a]\nrate = 10/h\nalgorithm = fixed\nalign = +15min\n\n"
                       "[limit b]\nrate = 10/s\nalgorithm = sliding\n\n"
                       "[limit c]\nrate = 10/s\nalgorithm = gcra\nburst = 3\n";
    FILE *f = fopen(path, "w");
    fputs(good, f);
    fclose(f);
    const char *args[] = { "--check-config", "--config", path, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), args) == 0, "good windows accepted: %s", out);
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "windows", conf_text);
    test_config_errors(&d);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "start");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    test_example(c);
    test_sliding_timing(c);
    test_fixed(c);
    test_anchors(c);
    test_refund(c);
    test_multi(c, &d);
    test_waits(c, &d);
    test_wait_refunds(c, &d);
    test_debit(c, &d);
    test_reload(c, &d);
    rld_close(c);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    return 0;
}
