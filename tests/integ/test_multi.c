/*
 * test_multi.c - rld_wait_multi through a real rld: sets of charges queued fairly across
 * processes (a set is served when it is first in every one of its queues), refused at once
 * with the index of the charge that cannot fit, nothing taken from the others; one daemon
 * request per wait; and the result headers (librld(3), HEADERS) consistent on denials with a
 * queue ahead, in librld's results and in the printed headers of examples/llm_worker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"   /* old_daemon() speaks the protocol */

static const char *conf_text =
    "[limit a]\nrate = 4/s\nburst = 1\n\n"
    "[limit b]\nrate = 4/s\nburst = 1\n\n"
    "[limit slow]\nrate = 1/s\nburst = 1\n\n"
    "[limit fast]\nrate = 1000/s\nburst = 100\n\n"
    "[limit llm.requests]\nrate = 3500/min\n\n"
    "[limit llm.tokens]\nrate = 1000/s\nburst = 3000\n";

typedef struct shared {
    uint64_t granted_at[16];
    int      code[16];
    uint32_t index[16];
    int      old_sets, old_singles, old_positions;   /* what old_daemon() was sent */
} shared;

static shared *sh;
static t_daemon d;

/* A child that waits for COST on each limit named in NAMES ("a", "a,b"...). */
static pid_t spawn(int i, const char *names, uint64_t cost)
{
    pid_t p = fork();
    T_CHECK(p >= 0, "fork");
    if (p == 0) {
        rld_client *c;
        rld_charge ch[4];
        size_t n = 0;
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", names);
        if (rld_open(NULL, 0, &c) < 0)
            _exit(2);
        for (char *s = strtok(buf, ","); s && n < 4; s = strtok(NULL, ",")) {
            if (rld_find(c, s, &ch[n].limit) < 0)
                _exit(2);
            ch[n++].cost = cost;
        }
        rld_result r;
        sh->code[i] = rld_wait_multi(c, ch, n, -1, NULL, &r);
        sh->granted_at[i] = t_now_ns();
        sh->index[i] = r.index;
        rld_close(c);
        _exit(0);
    }
    return p;
}

static void reap(pid_t p)
{
    int st;
    T_CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d", (int)p);
}

static void test_sets_fifo(rld_client *c)
{
    rld_limit a = t_find(c, "a"), b = t_find(c, "b");
    T_CODE(rld_try(c, a, 1, NULL), 0);
    T_CODE(rld_try(c, b, 1, NULL), 0);
    memset(sh, 0, sizeof(*sh));
    /* queued in this order: {a,b}, {a}, {b}, {a,b} */
    pid_t p0 = spawn(0, "a,b", 1);
    t_await_waiters(c, a, 1);
    t_await_waiters(c, b, 1);
    pid_t p1 = spawn(1, "a", 1);
    t_await_waiters(c, a, 2);
    pid_t p2 = spawn(2, "b", 1);
    t_await_waiters(c, b, 2);
    pid_t p3 = spawn(3, "a,b", 1);
    t_await_waiters(c, a, 3);
    t_await_waiters(c, b, 3);
    /* the fast path stays behind every queue */
    rld_charge both[2] = { { a, 1 }, { b, 1 } };
    T_CODE(rld_try_multi(c, both, 2, NULL), -EAGAIN);
    reap(p0);
    reap(p1);
    reap(p2);
    reap(p3);
    for (int i = 0; i < 4; i++)
        T_CHECK(sh->code[i] == 0, "waiter %d: %d", i, sh->code[i]);
    uint64_t t0 = sh->granted_at[0];
    double g1 = (double)(sh->granted_at[1] - t0) / 1e6, g2 = (double)(sh->granted_at[2] - t0) / 1e6,
           g3 = (double)(sh->granted_at[3] - t0) / 1e6;
    /* 4/s: {a,b} first; {a} and {b} together 250 ms later; the second {a,b} after them */
    T_CHECK(g1 > 200 && g1 < 330 && g2 > 200 && g2 < 330, "the singles: %.0f, %.0f ms", g1, g2);
    T_CHECK(g3 > 450 && g3 < 600, "the second set after both: %.0f ms", g3);
    printf("sets: {a,b} {a} {b} {a,b} queued across processes, granted at 0, %.0f, %.0f, %.0f ms\n",
           g1, g2, g3);
}

static uint64_t daemon_requests(void)
{
    t_stats st;
    t_daemon_stats(&d, &st);
    return st.requests;   /* this connection's Hello and Stats included */
}

static void test_refusal(rld_client *c)
{
    rld_limit slow = t_find(c, "slow"), fast = t_find(c, "fast");
    T_CODE(rld_try(c, slow, 1, NULL), 0);
    rld_result before, r;
    T_CODE(rld_peek(c, fast, &before), 0);
    rld_charge ch[2] = { { fast, 5 }, { slow, 1 } };
    uint64_t t0 = t_now_ns();
    T_CODE(rld_wait_multi(c, ch, 2, 100000000, NULL, &r), -ETIMEDOUT);
    uint64_t took = t_now_ns() - t0;
    T_CHECK(took < 50000000ull, "refused at once: %llu ns", (unsigned long long)took);
    T_CHECK(r.index == 1 && r.retry_after_ns > 800000000ull, "index %u, retry %llu", r.index,
            (unsigned long long)r.retry_after_ns);
    rld_result after;
    T_CODE(rld_peek(c, fast, &after), 0);
    T_CHECK(after.remaining >= before.remaining, "nothing taken from the other limit");
    /* granted within the timeout, one Wait request for the pair */
    uint64_t q0 = daemon_requests();
    T_CODE(rld_wait_multi(c, ch, 2, 2000000000, NULL, &r), 0);
    uint64_t q1 = daemon_requests();
    T_CHECK(q1 - q0 <= 4, "%llu daemon requests for one wait (2 are the probe's)",
            (unsigned long long)(q1 - q0));
    T_CHECK(r.index == 1, "the tighter: %u", r.index);
    /* errors name the charge */
    rld_charge bad[2] = { { fast, 1 }, { slow, 2 } };
    T_CODE(rld_wait_multi(c, bad, 2, -1, NULL, &r), -E2BIG);
    T_CHECK(r.index == 1, "E2BIG on charge %u", r.index);
    T_CODE(rld_wait_multi(c, ch, 0, -1, NULL, &r), -EINVAL);
    T_CODE(rld_wait_multi(c, ch, RLD_MULTI_MAX + 1, -1, NULL, &r), -EINVAL);
    printf("refusal: refused in %.2f ms naming charge %u; granted with %llu daemon request(s)\n",
           (double)took / 1e6, 1u, (unsigned long long)(q1 - q0 - 2));
}

/* A limit named twice whose summed cost exceeds its burst (fast: burst 100) can never fit:
 * -E2BIG naming its first charge from every call, the daemon up (WITH_DAEMON) or not;
 * before, rld_try_multi said -EAGAIN for ever and a degraded wait took it into debt. */
static void test_twice_too_big(rld_client *c, bool with_daemon)
{
    rld_limit a = t_find(c, "a"), fast = t_find(c, "fast");
    rld_charge ch[3] = { { a, 1 }, { fast, 60 }, { fast, 60 } };
    rld_result r;
    T_CODE(rld_try_multi(c, ch, 3, &r), -E2BIG);
    T_CHECK(r.index == 1, "try_multi names charge %u", r.index);
    memset(&r, 0xff, sizeof(r));
    T_CODE(rld_wait_multi(c, ch, 3, 1000000000, NULL, &r), -E2BIG);
    T_CHECK(r.index == 1, "wait_multi names charge %u", r.index);
    T_CODE(rld_peek(c, fast, &r), 0);
    T_CHECK(r.retry_after_ns == 0, "nothing taken into debt: %llu ns",
            (unsigned long long)r.retry_after_ns);
    /* twice within the burst is fine */
    rld_charge ok[2] = { { fast, 30 }, { fast, 30 } };
    T_CODE(rld_try_multi(c, ok, 2, &r), 0);
    T_CODE(rld_refund(c, fast, 60), 0);
    printf("twice: a limit named twice above its burst is -E2BIG (charge 1) from try_multi and "
           "wait_multi, %s\n", with_daemon ? "daemon up" : "degraded");
}

/* One reply of old_daemon(). */
static void old_reply(int fd, uint64_t id, int code, Rld__V1__HelloReply *hello,
                      Rld__V1__WaitReply *wait)
{
    Rld__V1__Reply rep = RLD__V1__REPLY__INIT;
    rep.id = id;
    rep.code = code;
    if (hello) {
        rep.body_case = RLD__V1__REPLY__BODY_HELLO;
        rep.hello = hello;
    } else if (wait) {
        rep.body_case = RLD__V1__REPLY__BODY_WAIT;
        rep.wait = wait;
    }
    uint8_t buf[RLDI_MAX_MESSAGE];
    size_t n = rld__v1__reply__pack(&rep, buf);
    if (send(fd, buf, n, MSG_NOSIGNAL) < 0)
        perror("old daemon: send");
}

/*
 * An rld from before sets, on PATH until killed: its HelloReply has no FEATURE_MULTI_WAIT; a
 * Wait's charges are a field it does not know, so it reads the charge of fields 1-4 (none
 * here: -EINVAL); a single Wait is granted at once (it takes nothing: a protocol check);
 * Position is a request it does not know (-EOPNOTSUPP). Counts what it gets in SH.
 */
static pid_t old_daemon(const char *path)
{
    int ls = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    T_CHECK(strlen(path) < sizeof(sa.sun_path), "socket path fits");
    memcpy(sa.sun_path, path, strlen(path) + 1);
    T_CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 16) == 0,
            "old daemon listens on %s", path);
    pid_t p = fork();
    T_CHECK(p >= 0, "fork");
    if (p > 0) {
        close(ls);
        return p;
    }
    struct pollfd fds[16] = { { ls, POLLIN, 0 } };
    int n = 1;
    for (;;) {
        if (poll(fds, (nfds_t)n, -1) < 0)
            continue;
        for (int j = n - 1; j >= 0; j--) {
            if (!fds[j].revents)
                continue;
            if (j == 0) {
                int fd = accept(ls, NULL, NULL);
                if (fd >= 0 && n < 16)
                    fds[n++] = (struct pollfd){ fd, POLLIN, 0 };
                continue;
            }
            uint8_t buf[RLDI_MAX_MESSAGE];
            ssize_t len = recv(fds[j].fd, buf, sizeof(buf), 0);
            Rld__V1__Request *req = len > 0 ? rld__v1__request__unpack(NULL, (size_t)len, buf) : NULL;
            if (!req) {
                close(fds[j].fd);
                fds[j] = fds[--n];
                continue;
            }
            Rld__V1__HelloReply h = RLD__V1__HELLO_REPLY__INIT;
            Rld__V1__WaitReply w = RLD__V1__WAIT_REPLY__INIT;
            switch (req->body_case) {
            case RLD__V1__REQUEST__BODY_HELLO:
                h.protocol_version = 1;
                h.server_version = "rld 0.0.9";
                h.max_message = RLDI_MAX_MESSAGE;
                old_reply(fds[j].fd, req->id, 0, &h, NULL);
                break;
            case RLD__V1__REQUEST__BODY_WAIT:
                if (req->wait->n_charges) {
                    sh->old_sets++;
                    old_reply(fds[j].fd, req->id, -EINVAL, NULL, NULL);
                } else {
                    sh->old_singles++;
                    w.limit = 1;
                    old_reply(fds[j].fd, req->id, 0, NULL, &w);
                }
                break;
            case RLD__V1__REQUEST__BODY_POSITION:
                sh->old_positions++;
                old_reply(fds[j].fd, req->id, -EOPNOTSUPP, NULL, NULL);
                break;
            default:
                old_reply(fds[j].fd, req->id, -ENOENT, NULL, NULL);
                break;
            }
            rld__v1__request__free_unpacked(req, NULL);
        }
    }
}

/* Collect C's completions until TICKETS' N DONE ones are in (at most 2 s); POSITION ones
 * for them go to POS (its code, 1 while none). */
static void old_collect(rld_client *c, const uint64_t *tickets, rld_completion *done, int *pos,
                        int n)
{
    int got = 0;
    uint64_t deadline = t_now_ns() + 2000000000ull;
    while (got < n && t_now_ns() < deadline) {
        struct pollfd p = { rld_wait_fd(c), POLLIN, 0 };
        poll(&p, 1, 50);
        rld_completion x[8];
        int k = rld_wait_collect(c, x, 8);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < n; j++) {
                if (x[i].ticket != tickets[j])
                    continue;
                if (x[i].kind == RLD_COMPLETION_POSITION) {
                    pos[j] = x[i].code;
                } else {
                    done[j] = x[i];
                    got++;
                }
            }
    }
    T_CHECK(got == n, "%d of %d completions", got, n);
}

/* A daemon without FEATURE_MULTI_WAIT: sets degrade (client-side reservations), blocking or
 * not, and are never sent to it; single waits still queue there, and the blocking ones keep
 * their connection. The non-blocking waits used to send sets anyway (-EINVAL back). */
static void test_old_daemon(void)
{
    char sock[400], real[420];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    snprintf(real, sizeof(real), "%s.real", sock);
    T_CHECK(rename(sock, real) == 0, "socket moved aside");   /* rld goes on beating */
    sh->old_sets = sh->old_singles = sh->old_positions = 0;
    pid_t od = old_daemon(sock);
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit a = t_find(c, "a"), b = t_find(c, "b");
    rld_try(c, a, 1, NULL);
    rld_try(c, b, 1, NULL);
    rld_charge set[2] = { { a, 1 }, { b, 1 } }, one = { a, 1 };
    rld_result r;
    T_CODE(rld_wait_multi(c, set, 2, 2000000000, NULL, &r), 0);
    T_CHECK(r.flags & RLD_F_DEGRADED, "a blocking set degrades");
    T_CODE(rld_wait(c, a, 1, 2000000000, &r), 0);
    T_CHECK(!(r.flags & RLD_F_DEGRADED), "then a single wait queues there (connection kept)");
    /* non-blocking: before the daemon's Hello is read, then after */
    uint64_t t[3];
    rld_completion done[3];
    int pos[3] = { 1, 1, 1 };
    T_CODE(rld_wait_start(c, set, 2, 2000000000, NULL, &t[0]), 0);
    T_CODE(rld_wait_start(c, &one, 1, 2000000000, NULL, &t[1]), 0);
    T_CODE(rld_wait_position(c, t[1]), 0);
    old_collect(c, t, done, pos, 2);
    T_CODE(rld_wait_start(c, set, 2, 2000000000, NULL, &t[2]), 0);
    old_collect(c, t + 2, done + 2, pos + 2, 1);
    T_CHECK(done[0].code == 0 && (done[0].res.flags & RLD_F_DEGRADED) && done[2].code == 0 &&
                (done[2].res.flags & RLD_F_DEGRADED),
            "non-blocking sets degrade: %d (flags %u), %d (flags %u)", done[0].code,
            done[0].res.flags, done[2].code, done[2].res.flags);
    T_CHECK(done[1].code == 0 && !(done[1].res.flags & RLD_F_DEGRADED), "a single one queues there");
    T_CHECK(pos[1] == -EOPNOTSUPP, "its position: %d", pos[1]);
    T_CHECK(sh->old_sets == 0 && sh->old_positions == 0 && sh->old_singles == 2,
            "sent to the old daemon: %d sets, %d positions, %d single waits", sh->old_sets,
            sh->old_positions, sh->old_singles);
    rld_close(c);
    kill(od, SIGKILL);
    waitpid(od, NULL, 0);
    unlink(sock);
    T_CHECK(rename(real, sock) == 0, "socket back");
    printf("old daemon: sets degrade, blocking or not, and are never sent; single waits queue "
           "there; positions -EOPNOTSUPP\n");
}

/* Run llm_worker --try for one 2,000-token call; parse its headers. */
static void example_headers(uint64_t *remaining, uint64_t *reset, uint64_t *retry)
{
    const char *bin = getenv("LLM_WORKER");
    T_CHECK(bin && *bin, "LLM_WORKER set");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s 1 2000 --try", bin);
    FILE *f = popen(cmd, "r");
    T_CHECK(f != NULL, "popen");
    char line[256];
    *remaining = *reset = *retry = UINT64_MAX;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "  X-RateLimit-Remaining: %llu", &v) == 1)
            *remaining = v;
        else if (sscanf(line, "  X-RateLimit-Reset: %llu", &v) == 1)
            *reset = v;
        else if (sscanf(line, "  Retry-After: %llu", &v) == 1)
            *retry = v;
    }
    T_CHECK(pclose(f) == 0, "llm_worker ran");
}

static void test_headers(rld_client *c)
{
    rld_limit tok = t_find(c, "llm.tokens"), req = t_find(c, "llm.requests");
    /* 2,002 tokens left, and a waiter queued for 3,000 ahead of everyone */
    rld_result r;
    T_CODE(rld_peek(c, tok, &r), 0);
    T_CODE(rld_debit(c, tok, r.remaining - 2002), 0);
    memset(sh, 0, sizeof(*sh));
    pid_t p = spawn(0, "llm.tokens", 3000);
    t_await_waiters(c, tok, 1);
    rld_charge ch[2] = { { req, 1 }, { tok, 2000 } };
    T_CODE(rld_try_multi(c, ch, 2, &r), -EAGAIN);
    T_CHECK(r.index == 1, "the tokens decided");
    T_CHECK(r.remaining < 2000, "Remaining %llu below the cost of a denied call",
            (unsigned long long)r.remaining);
    T_CHECK(r.reset_after_ns >= r.retry_after_ns, "Reset %llu ns before Retry-After %llu ns",
            (unsigned long long)r.reset_after_ns, (unsigned long long)r.retry_after_ns);
    uint64_t rem, reset, retry;
    example_headers(&rem, &reset, &retry);
    T_CHECK(retry != UINT64_MAX && rem < 2000 && reset >= retry,
            "example headers: Remaining %llu, Reset %llu, Retry-After %llu",
            (unsigned long long)rem, (unsigned long long)reset, (unsigned long long)retry);
    printf("headers: a denied 2,000-token call behind a queue: Remaining %llu, Reset %llu s, "
           "Retry-After %llu s (example agrees)\n", (unsigned long long)rem,
           (unsigned long long)reset, (unsigned long long)retry);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

int main(void)
{
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_CHECK(sh != MAP_FAILED, "mmap");
    t_instance(&d, "multi", conf_text);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    test_sets_fifo(c);
    test_refusal(c);
    test_headers(c);
    test_twice_too_big(c, true);
    test_old_daemon();
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    test_twice_too_big(c, false);
    rld_close(c);
    T_CHECK(!t_log_has(&d, "error:"), "no errors in the daemon's log");
    printf("test_multi: ok\n");
    return 0;
}
