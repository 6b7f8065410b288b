/*
 * test_failopen.c - clients without an instance or without a limit. By default rld_open of
 * a missing instance fails (-ENOENT) and rld_find of a missing name fails. With
 * RLD_OPEN_FAIL_OPEN, a client opened before the instance exists admits everything
 * (RLD_F_DEGRADED) through every call, then attaches by itself within a second of the
 * daemon starting, and the handles it gave out become the real limits. With
 * RLD_OPEN_MISSING_ADMIT, a handle for a name the instance lacks admits until a limit of that
 * name is created (here by a reload), then is that limit. When it is deleted, every call
 * with such a handle (peek, refund, debit, info too, not only takes) looks the name up again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "rld.h"

static void expect_open_admit(rld_client *c, rld_limit l, const char *what)
{
    rld_result r;
    for (int i = 0; i < 5; i++) {
        T_CODE(rld_try(c, l, 1000, &r), 0);
        T_CHECK(r.flags & RLD_F_DEGRADED, "%s: degraded", what);
        T_CHECK(r.remaining == UINT64_MAX, "%s: remaining", what);
    }
    T_CODE(rld_wait(c, l, 5, 1000000, &r), 0);
    T_CHECK(r.flags & RLD_F_DEGRADED, "%s: wait degraded", what);
    rld_charge ch[2] = { { l, 1 }, { l, 2 } };
    T_CODE(rld_try_multi(c, ch, 2, &r), 0);
    T_CODE(rld_wait_multi(c, ch, 2, 0, NULL, &r), 0);
    T_CODE(rld_refund(c, l, 3), 0);
    T_CODE(rld_debit(c, l, 3), 0);
    T_CODE(rld_peek(c, l, &r), 0);
    uint64_t t;
    T_CODE(rld_wait_start(c, ch, 2, -1, NULL, &t), 0);
    struct pollfd p = { rld_wait_fd(c), POLLIN, 0 };
    T_CHECK(poll(&p, 1, 1000) == 1, "%s: completion ready", what);
    rld_completion x[2];
    T_CHECK(rld_wait_collect(c, x, 2) == 1 && x[0].ticket == t && x[0].code == 0 &&
                (x[0].res.flags & RLD_F_DEGRADED),
            "%s: non-blocking wait admitted, degraded", what);
}

/* Wait (at most 3 s) until a try on L stops being degraded. */
static void expect_attached(rld_client *c, rld_limit l, const char *what)
{
    rld_result r;
    uint64_t deadline = t_now_ns() + 3000000000ull;
    int rc;
    do {
        rc = rld_try(c, l, 1, &r);
        if (rc == 0 && !(r.flags & RLD_F_DEGRADED))
            break;
        t_sleep_ns(20000000);
    } while (t_now_ns() < deadline);
    T_CHECK(rc == 0 && !(r.flags & RLD_F_DEGRADED) && r.limit == 1, "%s: attached (%d, flags %u)",
            what, rc, r.flags);
    T_CODE(rld_try(c, l, 1, &r), -EAGAIN);            /* the real limit: 1/s, burst 1 */
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "failopen", "[limit a]\nrate = 1/s\nburst = 1\n\n"
                               "[limit w]\nrate = 5/s\nalgorithm = sliding\n");
    rld_client *c = NULL, *lax = NULL, *strict = NULL;

    /* 1. no instance: the default fails, fail-open admits */
    T_CODE(rld_open(NULL, 0, &c), -ENOENT);
    T_CODE(rld_open(NULL, RLD_OPEN_FAIL_OPEN, &c), 0);
    rld_limit a;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "bad name!", &a), -EINVAL);
    T_CODE(rld_find(c, "a", &a), 0);
    expect_open_admit(c, a, "no instance");
    rld_instance inst;
    T_CODE(rld_instance_info(c, &inst), 0);
    T_CHECK(inst.daemon_pid == 0 && inst.max_limits == 0, "nothing to show yet");

    /* 2. the instance appears: the client attaches by itself, the handle resolves */
    uint64_t t0 = t_now_ns();
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    expect_attached(c, a, "started later");
    double attach_s = (double)(t_now_ns() - t0) / 1e9;
    rld_limit a2;
    T_CODE(rld_find(c, "a", &a2), 0);
    T_CHECK(a2.slot < 1000000, "a real handle once attached");
    /* a client that attached late has the whole segment: sliding windows' rings too */
    rld_limit w;
    rld_result wr;
    T_CODE(rld_find(c, "w", &w), 0);
    T_CODE(rld_try(c, w, 3, &wr), 0);
    T_CHECK(wr.remaining == 2 && wr.window != 0, "sliding window after a late attach");
    rld_limit none;
    T_CODE(rld_find(c, "none", &none), -ENOENT);      /* fail-open is not missing-admit */

    /* 3. missing names: an error by default, admitted with RLD_OPEN_MISSING_ADMIT */
    T_CODE(rld_open(NULL, 0, &strict), 0);
    T_CODE(rld_find(strict, "b", &none), -ENOENT);
    T_CODE(rld_open(NULL, RLD_OPEN_MISSING_ADMIT, &lax), 0);
    rld_limit b;
    T_CODE(rld_find(lax, "b", &b), 0);
    expect_open_admit(lax, b, "missing name");
    rld_limit_info info;
    T_CODE(rld_info(lax, b, &info), -ENOENT);
    /* created by a reload: the handle becomes the limit */
    t_write_conf(&d, "[limit a]\nrate = 1/s\nburst = 1\n\n[limit b]\nrate = 1/s\nburst = 1\n");
    kill(d.pid, SIGHUP);
    expect_attached(lax, b, "created later");
    T_CODE(rld_info(lax, b, &info), 0);
    T_CHECK(strcmp(info.name, "b") == 0, "info of the resolved handle: %s", info.name);
    T_CODE(rld_find(strict, "b", &none), 0);

    /* 4. deleted (a reload without a and b): every call looks a pending handle's name up
     * again, not only a take (they said -ESTALE until one came) */
    t_write_conf(&d, "[limit z]\nrate = 1/s\n");
    kill(d.pid, SIGHUP);
    rld_result r;
    uint64_t deadline = t_now_ns() + 3000000000ull;
    while (rld_peek(strict, none, &r) != -ESTALE && t_now_ns() < deadline)
        t_sleep_ns(10000000);
    T_CODE(rld_peek(strict, none, &r), -ESTALE);      /* a handle found normally: for good */
    T_CODE(rld_peek(lax, b, &r), 0);
    T_CHECK(r.flags & RLD_F_DEGRADED, "missing again: peek admits, degraded");
    T_CODE(rld_refund(lax, b, 1), 0);
    T_CODE(rld_debit(lax, b, 1), 0);
    T_CODE(rld_info(lax, b, &info), -ENOENT);
    T_CODE(rld_peek(c, a, &r), -ENOENT);              /* fail-open only: as rld_find says */
    T_CODE(rld_refund(c, a, 1), -ENOENT);
    T_CODE(rld_debit(c, a, 1), -ENOENT);
    T_CODE(rld_info(c, a, &info), -ENOENT);
    /* created again: the handles find the new limits, through peek alone */
    t_write_conf(&d, "[limit a]\nrate = 1/s\nburst = 1\n\n[limit b]\nrate = 1/s\nburst = 2\n");
    kill(d.pid, SIGHUP);
    deadline = t_now_ns() + 3000000000ull;
    int ra, rb;
    rld_result pa, pb;
    do {
        t_sleep_ns(20000000);
        ra = rld_peek(c, a, &pa);
        rb = rld_peek(lax, b, &pb);
    } while ((ra != 0 || rb != 0 || (pb.flags & RLD_F_DEGRADED)) && t_now_ns() < deadline);
    T_CHECK(ra == 0 && pa.limit == 1 && rb == 0 && pb.limit == 2 && !(pb.flags & RLD_F_DEGRADED),
            "recreated: peek %d (limit %llu), %d (limit %llu, flags %u)", ra,
            (unsigned long long)pa.limit, rb, (unsigned long long)pb.limit, pb.flags);
    T_CODE(rld_info(lax, b, &info), 0);
    T_CHECK(info.burst == 2, "info of the new b: burst %llu", (unsigned long long)info.burst);

    /* 5. a name that comes back as a template (or a breaker) is still no limit: a pending
     * handle keeps admitting as missing, and never resolves to that slot */
    rld_limit tb, bb, kb;
    T_CODE(rld_find(lax, "t", &tb), 0);
    T_CODE(rld_find(lax, "k", &bb), 0);
    T_CODE(rld_breaker_find(lax, "k", &kb), 0);         /* missing too: a breaker's handle */
    t_write_conf(&d, "[limit a]\nrate = 1/s\nburst = 1\n\n[template t]\nrate = 1/s\n"
                     "max_keys = 8\n\n[breaker k]\nfailures = 3\n");
    kill(d.pid, SIGHUP);
    rld_template tt;
    deadline = t_now_ns() + 3000000000ull;
    while (rld_find_template(strict, "t", &tt) != 0 && t_now_ns() < deadline)
        t_sleep_ns(20000000);
    T_CODE(rld_find_template(strict, "t", &tt), 0);
    t_sleep_ns(1100000000ull);          /* past the pending names' once-a-second look-up */
    expect_open_admit(lax, tb, "a template's name");
    expect_open_admit(lax, bb, "a breaker's name");
    T_CODE(rld_info(lax, tb, &info), -ENOENT);
    T_CODE(rld_info(lax, bb, &info), -ENOENT);
    /* ... while the breaker's own pending handle becomes the breaker */
    rld_breaker_status bs;
    T_CODE(rld_breaker_info(lax, kb, &bs), 0);
    T_CHECK(strcmp(bs.name, "k") == 0 && bs.cfg_failures == 3, "the pending breaker handle "
            "resolved: %s, failures %u", bs.name, (unsigned)bs.cfg_failures);

    rld_close(c);
    rld_close(lax);
    rld_close(strict);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("fail-open: a client opened with no instance admitted everything (degraded), then "
           "attached %.2f s after rld started; a missing name admitted until a reload "
           "created it; the defaults stay errors\n", attach_s);
    printf("test_failopen: ok\n");
    return 0;
}
