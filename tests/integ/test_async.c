/*
 * test_async.c - the non-blocking waits through a real rld: 10,000 waits started from one
 * thread are served in the order they were started, driven by poll() on the client's one
 * descriptor; a wait decided at once still completes through the descriptor; cancel gives
 * up a place (the ones behind move up, nothing is taken) and refunds a grant not yet
 * collected; live queue positions; waits degrade (reservation, completion when due) when the
 * daemon is gone. A charge that can never be served fails rld_wait_start itself; the client's
 * cap of 16,384 queued charges, which a cancel relieves at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"

#define CONF_KEPT                                                                      \
    "[limit many]\nrate = 20000/s\nburst = 1\n\n"                                       \
    "[limit slow]\nrate = 2/s\nburst = 1\n\n"                                           \
    "[limit quick]\nrate = 100/s\nburst = 10\n\n"                                       \
    "[limit hold]\nrate = 1/h\nburst = 100\n\n"                                         \
    "[limit tenth]\nrate = 10/s\nburst = 1\n\n"                                        \
    "[limit half]\nrate = 1/h\nburst = 10\n\n"                                          \
    "[limit win]\nrate = 1/h\nalgorithm = sliding\n\n"
static const char *conf_text = CONF_KEPT "[limit gone]\nrate = 1/s\n";

static t_daemon d;

static rld_limit find(rld_client *c, const char *name)
{
    rld_limit l;
    T_CODE(rld_find(c, name, &l), 0);
    return l;
}

/* Wait for the descriptor (at most MS), then collect into OUT. */
static int collect(rld_client *c, rld_completion *out, size_t max, int ms)
{
    struct pollfd p = { rld_wait_fd(c), POLLIN, 0 };
    T_CHECK(p.fd >= 0, "descriptor");
    if (poll(&p, 1, ms) < 0)
        return 0;
    int k = rld_wait_collect(c, out, max);
    T_CHECK(k >= 0, "collect: %d", k);
    return k;
}

/* Collect until TICKET's DONE completion (at most MS); returns it. */
static rld_completion await(rld_client *c, uint64_t ticket, int ms)
{
    rld_completion x[16];
    uint64_t deadline = t_now_ns() + (uint64_t)ms * 1000000u;
    while (t_now_ns() < deadline) {
        int k = collect(c, x, 16, 50);
        for (int i = 0; i < k; i++)
            if (x[i].ticket == ticket && x[i].kind == RLD_COMPLETION_DONE)
                return x[i];
    }
    T_CHECK(0, "no completion for ticket %llu in %d ms", (unsigned long long)ticket, ms);
    return x[0];
}

static void test_fifo_10000(rld_client *c)
{
    enum { N = 10000 };
    rld_limit l = find(c, "many");
    T_CODE(rld_debit(c, l, 2000), 0);                 /* 100 ms of debt: every wait queues */
    uint64_t *tickets = calloc(N, sizeof(*tickets));
    rld_charge ch = { l, 1 };
    uint64_t t0 = t_now_ns();
    for (int i = 0; i < N; i++)
        T_CODE(rld_wait_start(c, &ch, 1, 10000000000LL, NULL, &tickets[i]), 0);
    double start_ms = (double)(t_now_ns() - t0) / 1e6;
    int done = 0, in_order = 1, max_batch = 0;
    rld_completion *x = calloc(N, sizeof(*x));
    uint64_t deadline = t_now_ns() + 15000000000ull;
    while (done < N && t_now_ns() < deadline) {
        int k = collect(c, x + done, (size_t)(N - done), 100);
        if (k > max_batch)
            max_batch = k;
        done += k;
    }
    double took = (double)(t_now_ns() - t0) / 1e9;
    T_CHECK(done == N, "%d of %d completed", done, N);
    for (int i = 0; i < N; i++) {
        T_CHECK(x[i].kind == RLD_COMPLETION_DONE && x[i].code == 0, "wait %d: kind %u code %d", i,
                x[i].kind, x[i].code);
        T_CHECK(!(x[i].res.flags & RLD_F_DEGRADED), "served by the daemon");
        if (x[i].ticket != tickets[i])
            in_order = 0;
    }
    T_CHECK(in_order, "granted in the order they were started");
    /* 10,000 at 20,000/s after 100 ms of debt: no sooner than 0.59 s */
    T_CHECK(took > 0.55 && took < 5.0, "served in %.3f s", took);
    printf("fifo: 10,000 waits started from one thread in %.1f ms, all granted in start order "
           "in %.3f s (up to %d per collect)\n", start_ms, took, max_batch);
    free(tickets);
    free(x);
}

static void test_at_once(rld_client *c)
{
    rld_limit l = find(c, "quick");
    rld_charge ch = { l, 1 };
    uint64_t t;
    T_CODE(rld_wait_start(c, &ch, 1, -1, NULL, &t), 0);
    struct pollfd p = { rld_wait_fd(c), POLLIN, 0 };
    T_CHECK(poll(&p, 1, 0) == 1, "readable at once for a wait the fast path admitted");
    rld_completion x[4];
    T_CHECK(rld_wait_collect(c, x, 4) == 1 && x[0].ticket == t && x[0].code == 0,
            "its completion");
    T_CHECK(poll(&p, 1, 0) == 0, "not readable once collected");
    /* refused at once: a cost that cannot fit the timeout */
    rld_charge big = { find(c, "slow"), 1 };
    T_CODE(rld_try(c, big.limit, 1, NULL), 0);
    T_CODE(rld_wait_start(c, &big, 1, 1000000, NULL, &t), 0);
    rld_completion r = await(c, t, 100);
    T_CHECK(r.code == -ETIMEDOUT && r.res.retry_after_ns > 1000000, "refused: %d", r.code);
    T_CODE(rld_wait_start(c, NULL, 1, 0, NULL, &t), -EINVAL);
    T_CODE(rld_wait_cancel(c, 12345), -ENOENT);
    T_CODE(rld_wait_position(c, 12345), -ENOENT);
    printf("at once: admitted and refused waits complete through the descriptor\n");
}

/* Only the set, nothing else, is ready or queued: the descriptor stays quiet. */
static void expect_nothing(rld_client *c, const char *what)
{
    struct pollfd p = { rld_wait_fd(c), POLLIN, 0 };
    T_CHECK(poll(&p, 1, 20) == 0, "%s: descriptor not readable", what);
    rld_completion x[4];
    T_CODE(rld_wait_collect(c, x, 4), 0);
}

/* A charge that can never be served fails rld_wait_start itself, with no ticket and no
 * completion (it used to give a ticket whose completion carried the error). */
static void test_start_errors(rld_client *c)
{
    rld_limit slow = find(c, "slow"), gone = find(c, "gone");
    uint64_t t = 99;
    rld_charge big = { slow, 2 };                     /* burst 1 */
    T_CODE(rld_wait_start(c, &big, 1, -1, NULL, &t), -E2BIG);
    T_CHECK(t == 0, "no ticket: %llu", (unsigned long long)t);
    rld_charge bogus = { { 7777777, 3 }, 1 };
    T_CODE(rld_wait_start(c, &bogus, 1, -1, NULL, &t), -EINVAL);
    t_write_conf(&d, CONF_KEPT);                      /* gone is deleted */
    kill(d.pid, SIGHUP);
    uint64_t deadline = t_now_ns() + 3000000000ull;
    while (rld_peek(c, gone, NULL) != -ESTALE && t_now_ns() < deadline)
        t_sleep_ns(10000000);
    rld_charge set[2] = { { slow, 1 }, { gone, 1 } };
    t_sleep_ns(500000000);                            /* slow has its token again */
    T_CODE(rld_wait_start(c, set, 2, -1, NULL, &t), -ESTALE);
    rld_result r;
    T_CODE(rld_peek(c, slow, &r), 0);
    T_CHECK(r.remaining == 1, "nothing taken from the other charge");
    expect_nothing(c, "bad charges");
    printf("start errors: -E2BIG, -EINVAL, -ESTALE returned by rld_wait_start, no ticket, no "
           "completion\n");
}

/* The client's cap: 16,384 charges queued at the daemon; a cancelled wait frees its share at
 * once (its Cancel reaches the daemon before any later Wait), not when its answer is read. */
static void test_nospc(rld_client *c)
{
    enum { N = 256 };
    rld_limit h = find(c, "hold");                    /* 1/h: nothing is granted here */
    T_CODE(rld_debit(c, h, 100), 0);
    rld_charge set[64];
    for (int i = 0; i < 64; i++)
        set[i] = (rld_charge){ h, 1 };
    uint64_t t[N + 1];
    for (int i = 0; i < N; i++)
        T_CODE(rld_wait_start(c, set, 64, -1, NULL, &t[i]), 0);
    T_CODE(rld_wait_start(c, set, 64, -1, NULL, &t[N]), -ENOSPC);
    T_CODE(rld_wait_cancel(c, t[0]), 0);
    T_CODE(rld_wait_start(c, set, 64, -1, NULL, &t[N]), 0);
    for (int i = 1; i <= N; i++)
        T_CODE(rld_wait_cancel(c, t[i]), 0);
    rld_completion x[N + 1];
    int done = 0;
    uint64_t deadline = t_now_ns() + 3000000000ull;
    while (done <= N && t_now_ns() < deadline)
        done += collect(c, x + done, (size_t)(N + 1 - done), 50);
    T_CHECK(done == N + 1, "%d completions", done);
    for (int i = 0; i < done; i++)
        T_CHECK(x[i].code == -ECANCELED, "cancelled: %d", x[i].code);
    printf("nospc: 16,384 charges queued, the next start -ENOSPC, one cancel makes room at "
           "once\n");
}

static void test_cancel_position(rld_client *c)
{
    rld_limit l = find(c, "slow");                    /* 2/s: a grant every 500 ms */
    rld_result before;
    T_CODE(rld_wait(c, l, 1, -1, NULL), 0);            /* empty, and the clock reset */
    rld_charge ch = { l, 1 };
    uint64_t a, b, e, t0 = t_now_ns();
    T_CODE(rld_wait_start(c, &ch, 1, -1, NULL, &a), 0);
    T_CODE(rld_wait_start(c, &ch, 1, -1, NULL, &b), 0);
    T_CODE(rld_wait_start(c, &ch, 1, -1, NULL, &e), 0);
    /* live position of the third: two ahead */
    t_sleep_ns(20000000);
    T_CODE(rld_wait_position(c, e), 0);
    rld_completion x[8];
    int got = 0;
    uint32_t pos = 99;
    uint64_t deadline = t_now_ns() + 300000000ull;
    while (!got && t_now_ns() < deadline) {
        int k = collect(c, x, 8, 50);
        for (int i = 0; i < k; i++)
            if (x[i].kind == RLD_COMPLETION_POSITION && x[i].ticket == e)
                got = 1, pos = x[i].res.queue_position;
    }
    T_CHECK(got && pos == 2, "position of the third: %u", pos);
    /* cancel the second: its place is given up at once */
    T_CODE(rld_wait_cancel(c, b), 0);
    T_CODE(rld_wait_cancel(c, b), -ENOENT);
    rld_completion rb = await(c, b, 100);
    T_CHECK(rb.code == -ECANCELED, "cancelled: %d", rb.code);
    T_CODE(rld_wait_position(c, e), 0);
    rld_completion ra = await(c, a, 1500);
    uint64_t ta = t_now_ns();
    rld_completion re = await(c, e, 1500);
    uint64_t te = t_now_ns();
    T_CHECK(ra.code == 0 && re.code == 0, "granted: %d %d", ra.code, re.code);
    double gap = (double)(te - ta) / 1e6, first = (double)(ta - t0) / 1e6;
    T_CHECK(gap > 350 && gap < 700, "the third moved up: %.0f ms after the first", gap);
    /* nothing was taken for the cancelled one: the bucket refills in 500 ms after the last */
    t_sleep_ns(520000000);
    T_CODE(rld_peek(c, l, &before), 0);
    T_CHECK(before.remaining == 1, "nothing taken by the cancelled wait: %llu left",
            (unsigned long long)before.remaining);
    /* a grant not yet collected, cancelled: the tokens go back */
    T_CODE(rld_wait_start(c, &ch, 1, -1, NULL, &a), 0);   /* admitted at once */
    T_CODE(rld_peek(c, l, &before), 0);
    T_CHECK(before.remaining == 0, "taken");
    T_CODE(rld_wait_cancel(c, a), 0);
    ra = await(c, a, 100);
    T_CHECK(ra.code == -ECANCELED, "cancelled after its grant: %d", ra.code);
    T_CODE(rld_peek(c, l, &before), 0);
    T_CHECK(before.remaining == 1, "refunded: %llu", (unsigned long long)before.remaining);
    printf("cancel: place given up (the next granted %.0f ms after the first, at %.0f ms), "
           "a collected-later grant refunded; position 2 reported live\n", gap, first);
}

/* Completions come in the order they were made ready, whatever their kind: a wait decided
 * at once comes before a cancellation made after it (cancellations and positions used to be
 * handed over before every other DONE completion). */
static void test_order(rld_client *c)
{
    rld_limit hold = find(c, "hold"), quick = find(c, "quick");   /* hold: in debt */
    rld_charge a = { hold, 1 }, b = { quick, 1 };
    uint64_t ta, tb;
    T_CODE(rld_wait_start(c, &a, 1, -1, NULL, &ta), 0);   /* queued at the daemon */
    T_CODE(rld_wait_start(c, &b, 1, -1, NULL, &tb), 0);   /* admitted at once */
    T_CODE(rld_wait_cancel(c, ta), 0);
    rld_completion x[4];
    int k = rld_wait_collect(c, x, 4);
    T_CHECK(k == 2 && x[0].ticket == tb && x[0].code == 0 && x[1].ticket == ta &&
                x[1].code == -ECANCELED,
            "decided first, cancelled second: %d completions, first %s %d", k,
            k > 0 && x[0].ticket == tb ? "the decided" : "the cancelled", k > 0 ? x[0].code : 0);
    printf("order: a wait decided at once is handed over before a later cancellation\n");
}

/* One rule for cancel: a ticket whose completion is not collected is cancelled once (0),
 * then -ENOENT, whatever its state; its completion then says -ECANCELED with res all 0 and
 * nothing stays taken. A decided wait used to answer 0 to every cancel. */
static void test_cancel_once(rld_client *c)
{
    rld_limit hold = find(c, "hold"), quick = find(c, "quick");
    rld_result before, after;
    T_CODE(rld_peek(c, quick, &before), 0);
    rld_charge a = { quick, 2 }, b = { hold, 1 };
    uint64_t ta, tb;
    T_CODE(rld_wait_start(c, &a, 1, -1, NULL, &ta), 0);        /* admitted at once */
    T_CODE(rld_wait_start(c, &b, 1, 1000000, NULL, &tb), 0);   /* refused at once */
    T_CODE(rld_wait_cancel(c, ta), 0);
    T_CODE(rld_wait_cancel(c, ta), -ENOENT);
    T_CODE(rld_wait_cancel(c, tb), 0);
    T_CODE(rld_wait_cancel(c, tb), -ENOENT);
    rld_completion x[4];
    T_CHECK(rld_wait_collect(c, x, 4) == 2, "two completions");
    rld_result zero;
    memset(&zero, 0, sizeof(zero));
    for (int i = 0; i < 2; i++)
        T_CHECK(x[i].code == -ECANCELED && memcmp(&x[i].res, &zero, sizeof(zero)) == 0,
                "cancelled, res all 0: %d", x[i].code);
    T_CODE(rld_peek(c, quick, &after), 0);
    T_CHECK(after.remaining >= before.remaining, "the admitted one given back: %llu of %llu",
            (unsigned long long)after.remaining, (unsigned long long)before.remaining);
    printf("cancel once: decided waits cancelled once, then -ENOENT; -ECANCELED with res 0\n");
}

/* Collect (at most MS) until TICKET's DONE completion; store the POSITION completions for it
 * seen before (at most 4) in POS, their count in *NPOS. Fails on one after the DONE. */
static rld_completion await_pos(rld_client *c, uint64_t ticket, int ms, rld_completion *pos,
                                int *npos)
{
    rld_completion x[16], done = { 0 };
    bool got = false;
    *npos = 0;
    uint64_t deadline = t_now_ns() + (uint64_t)ms * 1000000u;
    while (!got && t_now_ns() < deadline) {
        int k = collect(c, x, 16, 50);
        for (int i = 0; i < k; i++) {
            if (x[i].ticket != ticket)
                continue;
            if (x[i].kind == RLD_COMPLETION_DONE) {
                T_CHECK(!got, "one DONE completion");
                done = x[i];
                got = true;
            } else {
                T_CHECK(!got, "a POSITION completion after the DONE one");
                if (*npos < 4)
                    pos[*npos] = x[i];
                (*npos)++;
            }
        }
    }
    T_CHECK(got, "no completion for ticket %llu in %d ms", (unsigned long long)ticket, ms);
    /* nothing more for it arrives later (the daemon's late answers are dropped) */
    int k = collect(c, x, 16, 50);
    for (int i = 0; i < k; i++)
        T_CHECK(x[i].ticket != ticket, "a completion after the DONE one: kind %u", x[i].kind);
    return done;
}

/* Every rld_wait_position that returned 0 is answered by one POSITION completion, before
 * the ticket's DONE one: with the daemon's figures, or -ECANCELED / -ENOENT when the wait
 * was cancelled / decided before the answer was read (it used to never come then). */
static void test_position_answered(rld_client *c)
{
    rld_limit hold = find(c, "hold"), tenth = find(c, "tenth");
    rld_completion pos[4], done;
    int npos;
    /* cancelled before the answer is read */
    rld_charge a = { hold, 1 };
    uint64_t ta;
    T_CODE(rld_wait_start(c, &a, 1, -1, NULL, &ta), 0);
    T_CODE(rld_wait_position(c, ta), 0);
    T_CODE(rld_wait_cancel(c, ta), 0);
    done = await_pos(c, ta, 500, pos, &npos);
    T_CHECK(npos == 1 && pos[0].code == -ECANCELED && done.code == -ECANCELED,
            "cancelled: %d position(s), code %d", npos, npos ? pos[0].code : 0);
    /* decided (granted) before the answer is read: the daemon says -ENOENT to the question */
    T_CODE(rld_try(c, tenth, 1, NULL), 0);
    rld_charge b = { tenth, 1 };
    uint64_t tb;
    T_CODE(rld_wait_start(c, &b, 1, -1, NULL, &tb), 0);   /* granted in 100 ms */
    t_sleep_ns(200000000);
    T_CODE(rld_wait_position(c, tb), 0);
    done = await_pos(c, tb, 500, pos, &npos);
    T_CHECK(npos == 1 && pos[0].code == -ENOENT && done.code == 0,
            "decided: %d position(s), code %d, done %d", npos, npos ? pos[0].code : 0, done.code);
    /* answered by the daemon: figures */
    T_CODE(rld_wait_start(c, &a, 1, -1, NULL, &ta), 0);
    T_CODE(rld_wait_position(c, ta), 0);
    t_sleep_ns(20000000);
    rld_completion x[4];
    T_CHECK(collect(c, x, 4, 100) == 1 && x[0].kind == RLD_COMPLETION_POSITION &&
                x[0].code == 0 && x[0].res.retry_after_ns > 1000000000ull,
            "answered: code %d", x[0].code);
    T_CODE(rld_wait_cancel(c, ta), 0);
    done = await_pos(c, ta, 500, pos, &npos);
    T_CHECK(npos == 0 && done.code == -ECANCELED, "then cancelled");
    printf("positions: answered when cancelled (-ECANCELED) or decided (-ENOENT) before the "
           "daemon's answer, always before the DONE completion\n");
}

/* The daemon dies with a position question unanswered: the wait degrades and the question
 * is answered with its local position. Needs a daemon: restarted here, killed at the end. */
static void test_position_degraded(rld_client *c)
{
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld restarted");
    t_sleep_ns(1100000000);                           /* past the client's 1 s back-off */
    rld_charge a = { find(c, "hold"), 1 };
    uint64_t ta;
    T_CODE(rld_wait_start(c, &a, 1, -1, NULL, &ta), 0);
    rld_completion x[4];
    T_CHECK(collect(c, x, 4, 50) == 0, "queued at the daemon");
    kill(d.pid, SIGSTOP);
    T_CODE(rld_wait_position(c, ta), 0);
    t_daemon_stop(&d, SIGKILL);
    rld_completion pos[4];
    int npos = 0;
    uint64_t deadline = t_now_ns() + 2000000000ull;
    while (npos == 0 && t_now_ns() < deadline) {
        int k = collect(c, x, 4, 50);
        for (int i = 0; i < k; i++)
            if (x[i].ticket == ta)
                pos[npos++] = x[i];
    }
    T_CHECK(npos == 1 && pos[0].kind == RLD_COMPLETION_POSITION && pos[0].code == 0 &&
                (pos[0].res.flags & RLD_F_DEGRADED) && pos[0].res.retry_after_ns > 1000000000ull,
            "answered degraded: %d completions, kind %u code %d flags %u", npos,
            npos ? pos[0].kind : 9, npos ? pos[0].code : 0, npos ? pos[0].res.flags : 0);
    T_CODE(rld_wait_cancel(c, ta), 0);
    printf("positions: a question the dead daemon never answered is answered degraded\n");
}

/* Make limit NAME full through the daemon (Reset): it serves its queue at once. */
static void reset_limit(const char *name)
{
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    rldi_conn k;
    T_CODE(rldi_conn_open(sock, "test", 2000, &k, NULL, 0), 0);
    Rld__V1__Reset rs = RLD__V1__RESET__INIT;
    rs.limit = (char *)name;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RESET;
    req.reset = &rs;
    Rld__V1__Reply *rep;
    T_CODE(rldi_conn_call(&k, &req, 2000, &rep), 0);
    T_CODE(rep->code, 0);
    rld__v1__reply__free_unpacked(rep, NULL);
    rldi_conn_close(&k);
}

/* close(2), interposed for librld (a shared library's calls come here first): once armed,
 * the first SEQPACKET socket closed (rld_close's wait connection) first has its limit
 * "hold" reset, so the daemon grants every wait queued there after rld_close's last read. */
static volatile int close_hook;

int close(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);
    if (close_hook && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
        type == SOCK_SEQPACKET) {
        close_hook = 0;
        reset_limit("hold");
        t_sleep_ns(100000000);                        /* the daemon sends its grants */
    }
    return (int)syscall(SYS_close, fd);
}

/* rld_close with waits queued: the grants the daemon makes while it runs are given back
 * (they used to count as delivered once in the socket, and were lost); so are those it
 * made before, delivered and not collected (HOOK 0: the reset comes before rld_close). */
static void test_close_refunds(rld_client *c, int hook)
{
    enum { N = 20 };
    rld_client *c2;
    T_CODE(rld_open(NULL, 0, &c2), 0);
    rld_limit hold = find(c2, "hold");
    rld_result r;
    T_CODE(rld_peek(c2, hold, &r), 0);
    T_CHECK(r.remaining == 0, "hold empty: %llu", (unsigned long long)r.remaining);
    rld_charge ch = { hold, 1 };
    uint64_t t;
    for (int i = 0; i < N; i++)
        T_CODE(rld_wait_start(c2, &ch, 1, -1, NULL, &t), 0);
    rld_limit_info info;
    uint64_t deadline = t_now_ns() + 2000000000ull;
    do {
        t_sleep_ns(5000000);
        T_CODE(rld_info(c, hold, &info), 0);
    } while (info.waiters < N && t_now_ns() < deadline);
    T_CHECK(info.waiters == N, "%u queued", info.waiters);
    close_hook = hook;
    if (!hook) {
        reset_limit("hold");
        t_sleep_ns(50000000);
    }
    rld_close(c2);
    T_CHECK(close_hook == 0, "the wait connection was closed");
    T_CODE(rld_peek(c, hold, &r), 0);
    T_CHECK(r.remaining == 100, "every grant given back: %llu of 100 left",
            (unsigned long long)r.remaining);
    T_CODE(rld_info(c, hold, &info), 0);
    T_CHECK(info.waiters == 0, "no waiter left: %u", info.waiters);
    T_CODE(rld_debit(c, hold, 100), 0);               /* in debt again, for the others */
    printf("close: %d grants made %s rld_close ran were given back\n", N,
           hook ? "while" : "before");
}

/* No daemon: a set with a window that is full waits client-side holding nothing (a window
 * cannot be booked ahead; it tries again when the window allows). rld_close then gives
 * back nothing for it: it used to give back the other charges it never held. */
static void test_close_retry(void)
{
    /* a killed rld's listening socket outlives it briefly (its io_uring is torn down after
     * the process is reaped): wait until nothing answers there */
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    T_CHECK(strlen(sock) < sizeof(sa.sun_path), "socket path fits");
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    uint64_t deadline = t_now_ns() + 2000000000ull;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        int up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (!up || t_now_ns() > deadline)
            break;
        t_sleep_ns(10000000);
    }
    rld_client *c3;
    T_CODE(rld_open(NULL, 0, &c3), 0);
    rld_limit half = find(c3, "half"), win = find(c3, "win");
    T_CODE(rld_try(c3, half, 5, NULL), 0);
    T_CODE(rld_try(c3, win, 1, NULL), 0);             /* full for an hour */
    rld_charge set[2] = { { half, 1 }, { win, 1 } };
    uint64_t t;
    T_CODE(rld_wait_start(c3, set, 2, -1, NULL, &t), 0);
    rld_result r;
    T_CODE(rld_peek(c3, half, &r), 0);
    T_CHECK(r.remaining == 5, "nothing held for the set: %llu", (unsigned long long)r.remaining);
    rld_close(c3);
    rld_client *c4;
    T_CODE(rld_open(NULL, 0, &c4), 0);
    T_CODE(rld_peek(c4, find(c4, "half"), &r), 0);
    T_CHECK(r.remaining == 5, "rld_close gave back nothing it did not hold: %llu left of 5",
            (unsigned long long)r.remaining);
    rld_close(c4);
    printf("close: a degraded set waiting on a full window gives back nothing at rld_close\n");
}

static void test_degraded(rld_client *c)
{
    rld_limit l = find(c, "slow");
    T_CODE(rld_try(c, l, 1, NULL), 0);                 /* empty: next token in 500 ms */
    rld_charge ch = { l, 1 };
    uint64_t a;
    T_CODE(rld_wait_start(c, &ch, 1, 5000000000LL, NULL, &a), 0);
    t_sleep_ns(20000000);
    uint64_t t0 = t_now_ns();
    T_CHECK(t_daemon_stop_clean(&d), "clean stop with a wait queued");
    rld_completion r = await(c, a, 3000);
    double took = (double)(t_now_ns() - t0) / 1e6;
    T_CHECK(r.code == 0 && (r.res.flags & RLD_F_DEGRADED), "degraded grant: %d flags %u", r.code,
            r.res.flags);
    /* with no daemon, a new wait reserves and completes when due */
    uint64_t b;
    t0 = t_now_ns();
    T_CODE(rld_wait_start(c, &ch, 1, 5000000000LL, NULL, &b), 0);
    r = await(c, b, 3000);
    double took2 = (double)(t_now_ns() - t0) / 1e6;
    T_CHECK(r.code == 0 && (r.res.flags & RLD_F_DEGRADED), "degraded: %d", r.code);
    T_CHECK(took2 > 300 && took2 < 1200, "completed when due: %.0f ms", took2);
    /* a degraded wait not due yet is cancelled once, too */
    uint64_t e;
    T_CODE(rld_wait_start(c, &ch, 1, 5000000000LL, NULL, &e), 0);
    T_CODE(rld_wait_cancel(c, e), 0);
    T_CODE(rld_wait_cancel(c, e), -ENOENT);
    r = await(c, e, 100);
    T_CHECK(r.code == -ECANCELED && !(r.res.flags & RLD_F_DEGRADED), "cancelled: %d", r.code);
    printf("degraded: a queued wait served %.0f ms after the daemon stopped, a new one "
           "reserved and completed when due (%.0f ms)\n", took, took2);
}

int main(void)
{
    t_instance(&d, "async", conf_text);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    int fd = rld_wait_fd(c);
    T_CHECK(fd >= 0, "descriptor: %d", fd);
    test_at_once(c);
    test_start_errors(c);
    test_nospc(c);
    test_fifo_10000(c);
    test_cancel_position(c);
    test_order(c);
    test_cancel_once(c);
    T_CHECK(rld_wait_fd(c) == fd, "one descriptor for the client's life");
    test_position_answered(c);
    test_close_refunds(c, 0);
    test_close_refunds(c, 1);
    test_degraded(c);
    test_position_degraded(c);
    test_close_retry();
    rld_close(c);
    T_CHECK(!t_log_has(&d, "error:"), "no errors in the daemon's log");
    printf("test_async: ok\n");
    return 0;
}
