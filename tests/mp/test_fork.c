/*
 * test_fork.c - an rld_client opened before fork() (gunicorn --preload, celery prefork,
 * multiprocessing): 4 children wait concurrently through the parent's client, blocking and
 * non-blocking, while a thread of the parent is itself blocked in a wait across the fork.
 * Every wait is served by the daemon (none degraded) in about the time the rate needs; the
 * parent keeps working with its own connections and descriptor; counts are not doubled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

enum { CHILDREN = 4, BLOCKING = 10, ASYNC = 2 };

typedef struct shared {
    int      bad[CHILDREN];
    int      degraded[CHILDREN];
    double   took[CHILDREN];
} shared;

static shared *sh;
static rld_client *c;

/* A thread's blocking wait on *ARG through the shared client: NULL when served, not
 * degraded. */
static void *wait_on(void *arg)
{
    rld_limit *l = arg;
    rld_result r;
    int rc = rld_wait(c, *l, 1, 5000000000LL, &r);
    return (void *)(intptr_t)(rc == 0 && !(r.flags & RLD_F_DEGRADED) ? 0 : 1);
}

/* Start and await N non-blocking waits on L through the client's descriptor. */
static int async_waits(rld_limit l, int n, int *degraded)
{
    rld_charge ch = { l, 1 };
    uint64_t t;
    int done = 0, bad = 0;
    for (int i = 0; i < n; i++)
        if (rld_wait_start(c, &ch, 1, 5000000000LL, NULL, &t) < 0)
            bad++;
    uint64_t deadline = t_now_ns() + 6000000000ull;
    while (done < n - bad && t_now_ns() < deadline) {
        struct pollfd p = { rld_wait_fd(c), POLLIN, 0 };
        poll(&p, 1, 100);
        rld_completion x[8];
        int k = rld_wait_collect(c, x, 8);
        for (int i = 0; i < k; i++) {
            if (x[i].kind != RLD_COMPLETION_DONE)
                continue;
            done++;
            bad += x[i].code != 0;
            *degraded += (x[i].res.flags & RLD_F_DEGRADED) != 0;
        }
    }
    return bad + (n - done);
}

/*
 * A child that never uses the client closes its copies of the parent's daemon connections at
 * the fork, all of them: idle in the pool, lent to a thread blocked in a wait, and the
 * non-blocking waits' one. So the parent's rld_close ends them at the daemon at once, its
 * queued wait leaves the queue, while the child still lives. (They stayed open until the
 * child used the client, or for good for the lent one: the daemon kept the parent's wait
 * queued until the child exited.)
 */
static void test_child_closes(t_daemon *d)
{
    t_stats s0, s1;
    t_daemon_stats(d, &s0);
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit k, h;
    T_CODE(rld_find(c, "k", &k), 0);
    T_CODE(rld_find(c, "h", &h), 0);
    /* two connections in the pool: two threads wait at once (250 and 500 ms) */
    rld_try(c, k, 1, NULL);
    pthread_t th[2];
    void *rv;
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, wait_on, &k);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], &rv);
        T_CHECK(rv == NULL, "wait %d", i);
    }
    /* one of them lent to a thread blocked across the fork, the other idle */
    rld_try(c, k, 1, NULL);
    pthread_create(&th[0], NULL, wait_on, &k);
    /* and a non-blocking wait queued (h: one a minute) */
    rld_try(c, h, 1, NULL);
    rld_charge ch = { h, 1 };
    uint64_t t;
    T_CODE(rld_wait_start(c, &ch, 1, -1, NULL, &t), 0);
    /* both waits queued at the daemon: the thread's may take a while to get there on a
     * loaded machine (a fixed 50 ms was not always enough) */
    uint64_t queued_by = t_now_ns() + 5000000000ull;
    do {
        t_sleep_ns(10000000);
        t_daemon_stats(d, &s1);
    } while (s1.waiters < 2 && t_now_ns() < queued_by);
    fflush(stdout);
    uint32_t made = s1.connections - s0.connections;    /* 3, or 2 if the first wait of the
                                                           two ended before the second began */
    T_CHECK(made >= 2 && s1.waiters == 2, "%u connections (from %u), 2 waits queued (%u)",
            s1.connections, s0.connections, s1.waiters);
    pid_t p = fork();
    T_CHECK(p >= 0, "fork");
    if (p == 0) {
        t_sleep_ns(5000000000ull);      /* never touches the client */
        _exit(0);
    }
    pthread_join(th[0], &rv);
    T_CHECK(rv == NULL, "the thread waiting across the fork was served");
    rld_close(c);
    uint64_t deadline = t_now_ns() + 1000000000ull;
    do {
        t_sleep_ns(10000000);
        t_daemon_stats(d, &s1);
    } while ((s1.connections != s0.connections || s1.waiters) && t_now_ns() < deadline);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    T_CHECK(s1.connections == s0.connections && s1.waiters == 0,
            "after the parent's rld_close, with the child alive: %u connections (from %u), "
            "%u waits queued", s1.connections, s0.connections, s1.waiters);
    printf("fork: a child that never used the client kept none of the parent's %u daemon "
           "connections (idle, lent to a waiting thread, non-blocking)\n", made);
}

/* In the child: start a wait on L and await its completion through the descriptor FD (at
 * most 1 s). 0 when it came, granted. */
static int one_wait(int fd, rld_limit l)
{
    rld_charge ch = { l, 1 };
    uint64_t t;
    if (rld_wait_start(c, &ch, 1, 2000000000LL, NULL, &t) < 0)
        return 1;
    uint64_t deadline = t_now_ns() + 1000000000ull;
    while (t_now_ns() < deadline) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) != 1)
            continue;
        rld_completion x[4];
        int k = rld_wait_collect(c, x, 4);
        for (int i = 0; i < k; i++)
            if (x[i].ticket == t && x[i].kind == RLD_COMPLETION_DONE)
                return x[i].code != 0;
    }
    return 1;
}

/* A child with no descriptor left at its first non-blocking call: the rebuild of the wait
 * descriptor fails (-EMFILE) and the next call tries again, on the same number. (It used to
 * count as rebuilt: no event nor timer descriptor, still the parent's epoll instance.) */
static void test_rebuild_retry(void)
{
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit q, k;
    T_CODE(rld_find(c, "q", &q), 0);
    T_CODE(rld_find(c, "k", &k), 0);
    int pfd = rld_wait_fd(c);
    T_CHECK(pfd >= 0, "descriptor");
    fflush(stdout);
    pid_t p = fork();
    T_CHECK(p >= 0, "fork");
    if (p == 0) {
        struct rlimit rl;
        int fds[64], n = 0, bad = 0;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = 64;                           /* the soft limit only (valgrind) */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(16);
        while (n < 64 && (fds[n] = dup(2)) >= 0)
            n++;
        bad += rld_wait_fd(c) >= 0;                 /* nothing left: it fails */
        while (n > 0)
            close(fds[--n]);
        bad += (rld_wait_fd(c) != pfd) << 1;        /* tried again, the same number */
        bad += one_wait(pfd, q) << 2;               /* admitted at once: the eventfd */
        rld_try(c, k, 1, NULL);
        bad += one_wait(pfd, k) << 3;               /* queued at the daemon: the socket */
        _exit(bad);
    }
    int st;
    T_CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "child: exit status %d (bits: 1 no failure, 2 other number, 4 and 8 no completion, "
            "16 setrlimit)",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    rld_close(c);
    printf("fork: a child's failed rebuild (-EMFILE) was tried again by its next call\n");
}

int main(void)
{
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_CHECK(sh != MAP_FAILED, "mmap");
    t_daemon d;
    t_instance(&d, "fork", "[limit f]\nrate = 20/s\nburst = 1\n\n[limit g]\nrate = 1/s\nburst = 1\n\n"
               "[limit k]\nrate = 4/s\nburst = 1\n\n[limit h]\nrate = 1/min\nburst = 1\n\n"
               "[limit q]\nrate = 1000/s\nburst = 100\n");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit f, g;
    T_CODE(rld_find(c, "f", &f), 0);
    T_CODE(rld_find(c, "g", &g), 0);
    /* the parent has a pooled connection, an async connection and a descriptor */
    T_CODE(rld_wait(c, f, 1, -1, NULL), 0);
    int degraded = 0;
    T_CHECK(async_waits(f, 1, &degraded) == 0, "parent async wait");
    int pfd = rld_wait_fd(c);
    /* and a thread blocked in a wait across the fork */
    T_CODE(rld_try(c, g, 1, NULL), 0);
    pthread_t th;
    pthread_create(&th, NULL, wait_on, &g);
    t_sleep_ns(50000000);
    rld_limit_info info0;
    T_CODE(rld_info(c, f, &info0), 0);

    uint64_t t0 = t_now_ns();
    pid_t p[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        p[i] = fork();
        T_CHECK(p[i] >= 0, "fork");
        if (p[i] == 0) {
            uint64_t s = t_now_ns();
            for (int j = 0; j < BLOCKING; j++) {
                rld_result r;
                int rc = rld_wait(c, f, 1, 5000000000LL, &r);
                sh->bad[i] += rc != 0;
                sh->degraded[i] += (r.flags & RLD_F_DEGRADED) != 0;
            }
            sh->bad[i] += async_waits(f, ASYNC, &sh->degraded[i]);
            sh->bad[i] += rld_wait_fd(c) != pfd;       /* the same descriptor number */
            sh->took[i] = (double)(t_now_ns() - s) / 1e9;
            rld_close(c);
            _exit(0);
        }
    }
    /* the parent keeps working meanwhile, on its own connections */
    T_CODE(rld_wait(c, f, 1, 5000000000LL, NULL), 0);
    T_CHECK(async_waits(f, 1, &degraded) == 0 && degraded == 0, "parent async wait during");
    for (int i = 0; i < CHILDREN; i++) {
        int st;
        T_CHECK(waitpid(p[i], &st, 0) == p[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "child %d exited", i);
    }
    double all = (double)(t_now_ns() - t0) / 1e9;
    void *rv;
    pthread_join(th, &rv);
    T_CHECK(rv == NULL, "the parent's thread waiting across the fork was served");
    double worst = 0;
    for (int i = 0; i < CHILDREN; i++) {
        T_CHECK(sh->bad[i] == 0, "child %d: %d waits failed", i, sh->bad[i]);
        T_CHECK(sh->degraded[i] == 0, "child %d: %d waits degraded", i, sh->degraded[i]);
        if (sh->took[i] > worst)
            worst = sh->took[i];
    }
    /* 4 x 12 + 2 tokens at 20/s: 2.5 s; a shared connection used to take 12-14 s */
    int tokens = CHILDREN * (BLOCKING + ASYNC) + 2;
    T_CHECK(all < tokens / 20.0 + 1.5, "served in %.2f s (the rate needs %.2f s)", all, tokens / 20.0);
    T_CHECK(rld_wait_fd(c) == pfd, "the parent's descriptor unchanged");
    T_CHECK(async_waits(f, 2, &degraded) == 0 && degraded == 0, "parent async waits after");
    /* counts: nothing the parent had not published is counted twice by the children */
    rld_close(c);
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_limit_info info1;
    T_CODE(rld_info(c, f, &info1), 0);
    uint64_t expect = (uint64_t)tokens + 4;     /* + the 2 after, + 2 unpublished before */
    T_CHECK(info1.admitted - info0.admitted <= expect,
            "admitted %llu after the fork, at most %llu", (unsigned long long)(info1.admitted - info0.admitted),
            (unsigned long long)expect);
    rld_close(c);
    test_child_closes(&d);
    test_rebuild_retry();
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("fork: %d children x %d waits (%d blocking, %d non-blocking) through the parent's "
           "client in %.2f s (slowest child %.2f s; the rate needs %.2f s), none degraded; "
           "parent unaffected\n", CHILDREN, BLOCKING + ASYNC, BLOCKING, ASYNC, all, worst,
           tokens / 20.0);
    printf("test_fork: ok\n");
    return 0;
}
