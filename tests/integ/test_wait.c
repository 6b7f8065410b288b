/*
 * test_wait.c - queued waits through a real rld: FIFO across processes, priorities,
 * refusal at once past the timeout, a waiter killed with SIGKILL gives back its place,
 * many concurrent waiters served at the configured rate, and the protocol's defences
 * (malformed, truncated, oversized, wrong-version, no-Hello messages). Permissions are
 * test_permission's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"

static const char *conf_text =
    "[limit fifo]\nrate = 4/s\nburst = 1\n\n"
    "[limit prio]\nrate = 20/s\nburst = 1\n\n"
    "[limit slow]\nrate = 1/s\nburst = 1\n\n"
    "[limit kill]\nrate = 10/s\nburst = 1\n\n"
    "[limit many]\nrate = 1000/s\nburst = 10\n\n"
    "[limit put]\nrate = 10/s\nburst = 100\n";

typedef struct shared {
    uint64_t granted_at[64];
    int      code[64];
    uint32_t position[64];
    uint32_t flags[64];
} shared;

static shared *sh;
static t_daemon d;

/* A child that waits on NAME with PRIORITY and records when it was granted. */
static pid_t spawn_waiter(int i, const char *name, int priority, int64_t timeout_ns)
{
    pid_t p = fork();
    T_CHECK(p >= 0, "fork");
    if (p == 0) {
        rld_client *c;
        rld_limit l;
        rld_result r;
        if (rld_open(NULL, 0, &c) < 0 || rld_find(c, name, &l) < 0)
            _exit(2);
        rld_wait_opts o = { priority, 0 };
        sh->code[i] = rld_wait_ex(c, l, 1, timeout_ns, &o, &r);
        sh->granted_at[i] = t_now_ns();
        sh->position[i] = r.queue_position;
        sh->flags[i] = r.flags;
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

static void test_fifo(rld_client *c)
{
    rld_limit l = t_find(c, "fifo");
    T_CODE(rld_try(c, l, 1, NULL), 0);               /* empty it */
    /* and 2 s in debt: no grant while the waiters are being started (a loaded machine can
     * take longer than the 250 ms between grants to start a process) */
    T_CODE(rld_debit(c, l, 8), 0);
    enum { N = 5 };
    pid_t p[N];
    for (int i = 0; i < N; i++) {
        p[i] = spawn_waiter(i, "fifo", 0, -1);
        t_await_waiters(c, l, (uint32_t)i + 1);         /* enqueued in this order */
    }
    /* the fast path stays behind the queue */
    rld_result r;
    T_CODE(rld_try(c, l, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 0, "queue-aware retry_after");
    for (int i = 0; i < N; i++)
        reap(p[i]);
    for (int i = 0; i < N; i++) {
        T_CHECK(sh->code[i] == 0, "waiter %d: %d", i, sh->code[i]);
        T_CHECK(sh->position[i] == (uint32_t)i, "waiter %d queued at %u", i, sh->position[i]);
        if (i)
            T_CHECK(sh->granted_at[i] > sh->granted_at[i - 1], "FIFO: %d after %d", i, i - 1);
    }
    /* 4/s: grants 250 ms apart */
    double span = (double)(sh->granted_at[N - 1] - sh->granted_at[0]) / 1e6;
    T_CHECK(span > 0.95 * 250 * (N - 1) && span < 250 * (N - 1) + 100, "grant spacing: %.1f ms", span);
    printf("fifo: %d waiters across processes granted in order, %.1f ms apart on average\n", N,
           span / (N - 1));
}

static void test_priority(rld_client *c)
{
    rld_limit l = t_find(c, "prio");
    T_CODE(rld_try(c, l, 1, NULL), 0);
    T_CODE(rld_debit(c, l, 40), 0);                 /* 2 s: all three queue before a grant */
    memset(sh, 0, sizeof(*sh));
    pid_t a = spawn_waiter(0, "prio", 0, -1);
    t_await_waiters(c, l, 1);
    pid_t b = spawn_waiter(1, "prio", 0, -1);
    t_await_waiters(c, l, 2);
    pid_t h = spawn_waiter(2, "prio", 7, -1);
    t_await_waiters(c, l, 3);
    reap(a);
    reap(b);
    reap(h);
    T_CHECK(sh->granted_at[2] < sh->granted_at[0] && sh->granted_at[0] < sh->granted_at[1],
            "priority 7 first, then FIFO within 0");
    T_CHECK(sh->position[2] == 0, "the urgent one had nobody ahead: %u", sh->position[2]);
    rld_wait_opts bad = { 8, 0 };
    T_CODE(rld_wait_ex(c, l, 1, 0, &bad, NULL), -EINVAL);
    bad.priority = -1;
    T_CODE(rld_wait_ex(c, l, 1, 0, &bad, NULL), -EINVAL);
    printf("priority: an urgent waiter passed two earlier ones\n");
}

static void test_timeout(rld_client *c)
{
    rld_limit l = t_find(c, "slow");
    rld_result r;
    T_CODE(rld_try(c, l, 1, NULL), 0);
    uint64_t t0 = t_now_ns();
    T_CODE(rld_wait(c, l, 1, 100000000, &r), -ETIMEDOUT);
    uint64_t took = t_now_ns() - t0;
    T_CHECK(took < 50000000ull, "refused at once, not after sleeping: %llu ns", (unsigned long long)took);
    T_CHECK(r.retry_after_ns > 900000000ull && r.retry_after_ns <= 1000000000ull,
            "retry_after %llu", (unsigned long long)r.retry_after_ns);
    double refused_ms = (double)took / 1e6, retry_ms = (double)r.retry_after_ns / 1e6;

    /* the daemon's own refusal, asked directly */
    rldi_conn k;
    T_CODE(rldi_conn_open(getenv("RLD_SOCK"), "test", 2000, &k, NULL, 0), 0);
    Rld__V1__Wait w = RLD__V1__WAIT__INIT;
    w.limit = "slow";
    w.cost = 1;
    w.timeout_ns = 100000000;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_WAIT;
    req.wait = &w;
    Rld__V1__Reply *rep;
    t0 = t_now_ns();
    T_CODE(rldi_conn_call(&k, &req, 2000, &rep), 0);
    took = t_now_ns() - t0;
    T_CHECK(rep->code == -ETIMEDOUT && rep->body_case == RLD__V1__REPLY__BODY_WAIT &&
                rep->wait->retry_after_ns > 800000000ull && took < 50000000ull,
            "daemon refusal: code %d, retry %llu, took %llu", rep->code,
            rep->body_case == RLD__V1__REPLY__BODY_WAIT ? (unsigned long long)rep->wait->retry_after_ns : 0ull,
            (unsigned long long)took);
    rld__v1__reply__free_unpacked(rep, NULL);
    /* within the timeout: granted after about the retry */
    t0 = t_now_ns();
    T_CODE(rld_wait(c, l, 1, 2000000000, &r), 0);
    took = t_now_ns() - t0;
    T_CHECK(took > 800000000ull && took < 1300000000ull, "waited %llu ns", (unsigned long long)took);
    rldi_conn_close(&k);
    printf("timeout: refused in %.2f ms with retry_after %.0f ms; a fitting wait granted\n",
           refused_ms, retry_ms);
}

static void test_killed_waiter(rld_client *c)
{
    rld_limit l = t_find(c, "kill");
    T_CODE(rld_try(c, l, 1, NULL), 0);
    T_CODE(rld_debit(c, l, 20), 0);                 /* 2 s: all three queue before a grant */
    memset(sh, 0, sizeof(*sh));
    pid_t a = spawn_waiter(0, "kill", 0, -1);
    t_await_waiters(c, l, 1);
    pid_t b = spawn_waiter(1, "kill", 0, -1);
    t_await_waiters(c, l, 2);
    pid_t x = spawn_waiter(2, "kill", 0, -1);
    t_await_waiters(c, l, 3);
    kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    t_await_waiters(c, l, 2);                           /* its place is given back */
    reap(a);
    reap(x);
    double gap = (double)(sh->granted_at[2] - sh->granted_at[0]) / 1e6;
    T_CHECK(gap < 150, "the one behind the killed waiter moved up: %.1f ms after the first", gap);
    printf("killed waiter: its place returned, the next granted %.1f ms after the first\n", gap);
}

/* 1,000 waiters: 50 processes x 20 threads, all at once. */
static void *many_thread(void *arg)
{
    rld_client *c = arg;
    rld_limit l;
    if (rld_find(c, "many", &l) < 0)
        return (void *)1;
    rld_result r;
    return rld_wait(c, l, 1, -1, &r) == 0 ? NULL : (void *)1;
}

static void test_many(rld_client *c)
{
    rld_limit l = t_find(c, "many");
    uint64_t t0 = t_now_ns();
    enum { P = 50, T = 20 };
    pid_t p[P];
    for (int i = 0; i < P; i++) {
        p[i] = fork();
        if (p[i] == 0) {
            rld_client *cc;
            if (rld_open(NULL, 0, &cc) < 0)
                _exit(2);
            pthread_t th[T];
            for (int j = 0; j < T; j++)
                pthread_create(&th[j], NULL, many_thread, cc);
            int bad = 0;
            for (int j = 0; j < T; j++) {
                void *rv;
                pthread_join(th[j], &rv);
                bad |= rv != NULL;
            }
            rld_close(cc);
            _exit(bad);
        }
    }
    for (int i = 0; i < P; i++)
        reap(p[i]);
    double elapsed = (double)(t_now_ns() - t0) / 1e9;
    /* all 1000 served: at 1000/s with 10 at once, no sooner than 0.99 s */
    double bound = 10 + 1000 * elapsed + 1;
    T_CHECK(1000 <= bound, "1000 grants need %.3f s at least", (1000 - 10 - 1) / 1000.0);
    T_CHECK(elapsed >= 0.98, "served too fast: %.3f s for 1000 tokens at 1000/s", elapsed);
    T_CHECK(elapsed < 3.0, "served too slowly: %.3f s", elapsed);
    rld_limit_info info;
    T_CODE(rld_info(c, l, &info), 0);
    printf("many: 1000 waiters over 50 processes served in %.3f s (bound allows %.0f)\n", elapsed,
           bound);
}

static void test_put(rld_client *c)
{
    rld_limit l = t_find(c, "put");
    T_CODE(rld_try(c, l, 50, NULL), 0);
    rldi_conn k;
    T_CODE(rldi_conn_open(getenv("RLD_SOCK"), "test", 2000, &k, NULL, 0), 0);
    T_CHECK(k.admin, "root (or the daemon's user) is admin");
    Rld__V1__LimitConfig lc = RLD__V1__LIMIT_CONFIG__INIT;
    lc.name = "put";
    lc.rate = "10/s";
    lc.burst = 200;
    Rld__V1__Put put = RLD__V1__PUT__INIT;
    put.limit = &lc;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_PUT;
    req.put = &put;
    Rld__V1__Reply *rep;
    T_CODE(rldi_conn_call(&k, &req, 2000, &rep), 0);
    T_CHECK(rep->code == 0, "put: %d %s", rep->code, rep->message);
    rld__v1__reply__free_unpacked(rep, NULL);
    rld_result r;
    T_CODE(rld_peek(c, l, &r), 0);
    T_CHECK(r.limit == 200 && r.remaining >= 100 && r.remaining <= 112,
            "Put carried half used into half used: %llu of %llu", (unsigned long long)r.remaining,
            (unsigned long long)r.limit);
    /* a bad rate changes nothing */
    req.id = 0;
    lc.rate = "10/fortnight";
    T_CODE(rldi_conn_call(&k, &req, 2000, &rep), 0);
    T_CHECK(rep->code == -EINVAL && strstr(rep->message, "fortnight"), "bad rate: %s", rep->message);
    rld__v1__reply__free_unpacked(rep, NULL);
    T_CODE(rld_peek(c, l, &r), 0);
    T_CHECK(r.limit == 200, "unchanged after a bad Put");
    rldi_conn_close(&k);
    printf("put: burst 100 -> 200 carried the state proportionally; a bad rate changed nothing\n");
}

/* ---- defences ---------------------------------------------------------------------------- */

static int raw_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, getenv("RLD_SOCK"));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    T_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    return fd;
}

/* Send BUF; expect a reply with CODE (0: any) and then the connection closed. */
static void expect_dropped(const void *buf, size_t len, int code, const char *what)
{
    int fd = raw_connect();
    T_CHECK(send(fd, buf, len, 0) == (ssize_t)len, "send %s", what);
    uint8_t in[8192];
    struct timeval tv = { 3, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, in, sizeof(in), 0);
    if (code) {
        T_CHECK(n > 0, "%s: a reply before the close (%zd)", what, n);
        Rld__V1__Reply *rep = rld__v1__reply__unpack(NULL, (size_t)n, in);
        T_CHECK(rep && rep->code == code, "%s: code %d, expected %d", what, rep ? rep->code : 0, code);
        rld__v1__reply__free_unpacked(rep, NULL);
        n = recv(fd, in, sizeof(in), 0);
    }
    T_CHECK(n == 0, "%s: connection closed (%zd)", what, n);
    close(fd);
}

static void still_serving(rld_client *c)
{
    rld_limit l = t_find(c, "fifo");
    rld_result r;
    T_CODE(rld_wait(c, l, 1, 2000000000, &r), 0);
    T_CHECK(!(r.flags & RLD_F_DEGRADED), "served by the daemon, not degraded");
}

static void test_defences(rld_client *c)
{
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(0xff - i * 7);
    expect_dropped(junk, sizeof(junk), -EPROTO, "garbage");
    still_serving(c);

    Rld__V1__Hello h = RLD__V1__HELLO__INIT;
    h.protocol_version = 99;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.id = 1;
    req.body_case = RLD__V1__REQUEST__BODY_HELLO;
    req.hello = &h;
    uint8_t buf[8192];
    size_t n = rld__v1__request__pack(&req, buf);
    expect_dropped(buf, n, -EPROTONOSUPPORT, "wrong version");
    h.protocol_version = 1;
    h.client_name = "a name long enough to make the message worth truncating";
    n = rld__v1__request__pack(&req, buf);
    expect_dropped(buf, n - 5, -EPROTO, "truncated");

    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request s2 = RLD__V1__REQUEST__INIT;
    s2.id = 2;
    s2.body_case = RLD__V1__REQUEST__BODY_STATS;
    s2.stats = &st;
    n = rld__v1__request__pack(&s2, buf);
    expect_dropped(buf, n, -EPROTO, "no Hello first");

    memset(buf, 0, sizeof(buf));
    expect_dropped(buf, 5000, -EMSGSIZE, "oversized");
    still_serving(c);
    printf("defences: garbage, wrong version, truncated, no Hello, oversized each dropped alone\n");
}

int main(void)
{
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_CHECK(sh != MAP_FAILED, "mmap");
    t_instance(&d, "wait", conf_text);
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    setenv("RLD_SOCK", sock, 1);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    test_fifo(c);
    test_priority(c);
    test_timeout(c);
    test_killed_waiter(c);
    test_many(c);
    test_put(c);
    test_defences(c);

    /* shutdown with a waiter queued: it is told (-ESHUTDOWN) and degrades, never hangs */
    rld_limit slow = t_find(c, "slow");
    rld_try(c, slow, 1, NULL);
    memset(sh, 0, sizeof(*sh));
    pid_t w = spawn_waiter(0, "slow", 0, 3000000000);
    t_await_waiters(c, slow, 1);
    uint64_t t0 = t_now_ns();
    T_CHECK(t_daemon_stop_clean(&d), "clean stop with a waiter queued");
    reap(w);
    double took = (double)(sh->granted_at[0] - t0) / 1e9;
    T_CHECK(sh->code[0] == 0 && (sh->flags[0] & RLD_F_DEGRADED) && took < 2.0,
            "the waiter degraded and was served: code %d flags %u after %.2f s", sh->code[0],
            sh->flags[0], took);
    printf("shutdown: a queued waiter was told and served itself, degraded, %.2f s later\n", took);
    rld_close(c);
    T_CHECK(!t_log_has(&d, "error:"), "no errors in the daemon's log");
    printf("test_wait: ok\n");
    return 0;
}
