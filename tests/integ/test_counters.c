/*
 * test_counters.c - the limits' counters mean what their names say (issue 16, item 4):
 * `admitted` counts tokens admitted and kept; tokens given back after admission (rld_refund,
 * a granted wait cancelled), tokens rolled back by an all-or-nothing call that failed
 * (rld_try_multi) and tokens debited (rld_debit) are counted apart. Checked through
 * rld_info, after each step, on a real rld.
 *
 * The estimate-then-adjust shape of an LLM worker (one request token and an estimate of
 * model tokens with rld_try_multi, the unused estimate refunded) made `admitted` read
 * 408,990,210 for 111,419 tokens really used: denied sets counted their rolled-back charges
 * as admitted, refunds were not counted at all.
 *
 * And the two waits every display shows (item 5), read by the one reader behind rlctl, the
 * daemon's Status reply and the metrics (common/limitstat.h): retry_after, until a call of
 * cost 1 fits, is what rld_try answers; debt, until the debt is paid back, is what rld_peek
 * answers; in debt they differ by one emission interval (the 44.2 s and 32.2 s).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "harness.h"
#include "instance.h"
#include "limitstat.h"
#include "rld.h"

static const char *conf_text =
    "[limit req]\nrate = 1/h\nburst = 10\n\n"
    "[limit tok]\nrate = 1/h\nburst = 1000\n\n"
    "[limit q]\nrate = 20/s\nburst = 1\n\n"
    "[limit slow]\nrate = 300/h\nburst = 1\n";

static t_daemon d;

typedef struct counts {
    uint64_t admitted, denied, refunded, rolled_back, debited;
} counts;

/* The counters of NAME, as a fresh client reads them (the worker closed its client, which
 * published its thread's counts). */
static counts read_counts(const char *name)
{
    rld_client *c;
    rld_limit l;
    rld_limit_info info;
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, name, &l), 0);
    T_CODE(rld_info(c, l, &info), 0);
    rld_close(c);
    return (counts){ info.admitted, info.denied, info.refunded, info.rolled_back, info.debited };
}

/* The daemon counts a grant once its reply is handed to the kernel, which may be after the
 * waiter read it: a few ms of grace. */
#define EXPECT(name, a, dn, rf, rb, db)                                                    \
    do {                                                                                 \
        counts k_;                                                                       \
        uint64_t until_ = t_now_ns() + 2000000000ull;                                    \
        do {                                                                             \
            k_ = read_counts(name);                                                      \
            if (k_.admitted == (a) && k_.denied == (dn) && k_.refunded == (rf) &&        \
                k_.rolled_back == (rb) && k_.debited == (db))                            \
                break;                                                                   \
            t_sleep_ns(5000000);                                                         \
        } while (t_now_ns() < until_);                                                   \
        T_CHECK(k_.admitted == (a) && k_.denied == (dn) && k_.refunded == (rf) &&        \
                    k_.rolled_back == (rb) && k_.debited == (db),                        \
                "%s: admitted %llu denied %llu refunded %llu rolled_back %llu debited %llu, " \
                "expected %llu %llu %llu %llu %llu", name,                               \
                (unsigned long long)k_.admitted, (unsigned long long)k_.denied,          \
                (unsigned long long)k_.refunded, (unsigned long long)k_.rolled_back,     \
                (unsigned long long)k_.debited, (unsigned long long)(a),                 \
                (unsigned long long)(dn), (unsigned long long)(rf),                      \
                (unsigned long long)(rb), (unsigned long long)(db));                     \
    } while (0)

/* Open a worker client, run one step, close it (publishing its counts). */
static rld_client *w;
static rld_limit req, tok, q;

static void worker_open(void)
{
    T_CODE(rld_open(NULL, 0, &w), 0);
    T_CODE(rld_find(w, "req", &req), 0);
    T_CODE(rld_find(w, "tok", &tok), 0);
    T_CODE(rld_find(w, "q", &q), 0);
}

static void worker_close(void)
{
    rld_close(w);
    w = NULL;
}

int main(void)
{
    t_instance(&d, "counters", conf_text);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");

    /* estimate then adjust: 1 request + 400 estimated tokens, 150 used: 250 refunded */
    worker_open();
    rld_charge set[2] = { { req, 1 }, { tok, 400 } };
    T_CODE(rld_try_multi(w, set, 2, NULL), 0);
    T_CODE(rld_refund(w, tok, 250), 0);
    worker_close();
    EXPECT("req", 1, 0, 0, 0, 0);
    EXPECT("tok", 400, 0, 250, 0, 0);

    /* a set denied by its second charge: the first one's tokens are rolled back, never
     * admitted; the denial is the second limit's (600 tokens are left of 1000: 250 back) */
    worker_open();
    rld_charge big[2] = { { req, 1 }, { tok, 900 } };
    rld_result res;
    T_CODE(rld_try_multi(w, big, 2, &res), -EAGAIN);
    T_CHECK(res.index == 1, "the tokens decided, index %u", res.index);
    worker_close();
    EXPECT("req", 1, 0, 0, 1, 0);
    EXPECT("tok", 400, 1, 250, 0, 0);

    /* taken without asking: debited, not admitted */
    worker_open();
    T_CODE(rld_debit(w, tok, 700), 0);
    worker_close();
    EXPECT("tok", 400, 1, 250, 0, 700);

    /* a wait the daemon grants: admitted once its reply is delivered (its first try, on
     * the shared-memory path, was denied: that counts, as rld_info(3) says) */
    worker_open();
    T_CODE(rld_try(w, q, 1, NULL), 0);
    T_CODE(rld_wait(w, q, 1, 2000000000, &res), 0);
    T_CHECK(!(res.flags & RLD_F_DEGRADED), "granted by the daemon");
    worker_close();
    EXPECT("q", 2, 1, 0, 0, 0);

    /* a wait decided at once by the fast path, then cancelled before it was collected:
     * its tokens go back, as a refund (it had been admitted) */
    t_sleep_ns(60000000);                  /* q refills its one token */
    worker_open();
    uint64_t ticket;
    rld_charge one = { q, 1 };
    T_CODE(rld_wait_start(w, &one, 1, 1000000000, NULL, &ticket), 0);
    T_CODE(rld_wait_cancel(w, ticket), 0);
    rld_completion done[4];
    T_CHECK(rld_wait_collect(w, done, 4) == 1 && done[0].code == -ECANCELED,
            "the cancelled wait completes as cancelled");
    worker_close();
    EXPECT("q", 3, 1, 1, 0, 0);

    /* tokens in use, as rld_info(3) says: admitted + debited - refunded */
    counts t = read_counts("tok");
    T_CHECK(t.admitted + t.debited - t.refunded == 150 + 700,
            "tok: %llu tokens in use, expected 850",
            (unsigned long long)(t.admitted + t.debited - t.refunded));

    /* in debt: 1 token taken and 2 debited at 300/h (12 s each): 24 s of debt, and a call
     * of cost 1 fits 12 s after that */
    rld_client *c;
    rld_limit slow;
    T_CODE(rld_open(NULL, 0, &c), 0);
    T_CODE(rld_find(c, "slow", &slow), 0);
    T_CODE(rld_try(c, slow, 1, NULL), 0);
    T_CODE(rld_debit(c, slow, 2), 0);
    rldi_paths paths;
    rldi_seg seg;
    rldi_limit_stat st;
    rld_result tried, peeked;
    T_CODE(rldi_paths_find(NULL, &paths), 0);
    T_CODE(rldi_seg_open(paths.seg_path, &seg), 0);
    T_CODE(rldi_limit_stat_read(&seg, slow.slot, slow.gen, (uint64_t)t_now_ns(), &st), 0);
    T_CODE(rld_try(c, slow, 1, &tried), -EAGAIN);
    T_CODE(rld_peek(c, slow, &peeked), 0);
    const uint64_t ms = 1000000, s12 = 12000 * ms;
    T_CHECK(st.debt_ns > 2 * s12 - 50 * ms && st.debt_ns <= 2 * s12,
            "debt %llu ns, expected 24 s", (unsigned long long)st.debt_ns);
    T_CHECK(st.retry_after_ns > 3 * s12 - 50 * ms && st.retry_after_ns <= 3 * s12,
            "retry after %llu ns, expected 36 s", (unsigned long long)st.retry_after_ns);
    T_CHECK(st.retry_after_ns - tried.retry_after_ns < 50 * ms,
            "retry after %llu ns, rld_try says %llu", (unsigned long long)st.retry_after_ns,
            (unsigned long long)tried.retry_after_ns);
    T_CHECK(st.debt_ns - peeked.retry_after_ns < 50 * ms, "debt %llu ns, rld_peek says %llu",
            (unsigned long long)st.debt_ns, (unsigned long long)peeked.retry_after_ns);
    T_CHECK(st.remaining == 0 && !st.unlimited, "empty");
    rldi_seg_close(&seg);
    rld_close(c);

    T_CHECK(t_daemon_stop_clean(&d), "rld stopped cleanly");
    printf("test_counters: ok\n");
    return 0;
}
