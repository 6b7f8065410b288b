/*
 * test_threads.c - one client shared by many threads (rld_client is thread-safe), plus
 * threads opening and closing their own clients while counts are being batched: the
 * admission bound holds, the counters add up once every thread has published, and (in the
 * TSan build, label "threads") no data race is reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "rld.h"

#define NT      6
#define RUN_NS  1000000000ull

static rld_client *shared_c;
static rld_limit lim, other;
static uint64_t end_ns;
static int64_t admitted[NT + 2];
static uint64_t churn_opens;

static void *hammer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t n = 0;
    while (t_now_ns() < end_ns) {
        int r;
        switch (n++ % 5) {
        case 0:
        case 1:
            if ((r = rld_try(shared_c, lim, 1, NULL)) == 0)
                admitted[id]++;
            break;
        case 2: {
            rld_charge ch[2] = { { lim, 2 }, { other, 1 } };
            if (rld_try_multi(shared_c, ch, 2, NULL) == 0)
                admitted[id] += 2;
            break;
        }
        case 3: {
            rld_result res;
            if (rld_wait(shared_c, lim, 1, 5000000, &res) == 0)
                admitted[id]++;
            break;
        }
        case 4: {
            rld_limit_info info;
            rld_peek(shared_c, lim, NULL);
            rld_info(shared_c, lim, &info);
            break;
        }
        }
    }
    return NULL;
}

/* Open, use and close private clients in a loop: the counter registry under churn. */
static void *churn(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (t_now_ns() < end_ns) {
        rld_client *c;
        rld_limit l;
        if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "t", &l) < 0)
            return (void *)1;
        for (int i = 0; i < 50; i++)
            if (rld_try(c, l, 1, NULL) == 0)
                admitted[id]++;
        rld_close(c);
        __atomic_add_fetch(&churn_opens, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "threads", "[limit t]\nrate = 20000/s\nburst = 2000\n\n"
                              "[limit o]\nrate = unlimited\n");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    T_CODE(rld_open(NULL, 0, &shared_c), 0);
    T_CODE(rld_find(shared_c, "t", &lim), 0);
    T_CODE(rld_find(shared_c, "o", &other), 0);
    uint64_t t0 = t_now_ns();
    end_ns = t0 + RUN_NS;
    pthread_t th[NT + 2];
    for (int i = 0; i < NT; i++)
        pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i);
    for (int i = NT; i < NT + 2; i++)
        pthread_create(&th[i], NULL, churn, (void *)(intptr_t)i);
    for (int i = 0; i < NT + 2; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        T_CHECK(rv == NULL, "thread %d failed", i);
    }
    double elapsed = (double)(t_now_ns() - t0) / 1e9;
    int64_t total = 0;
    for (int i = 0; i < NT + 2; i++)
        total += admitted[i];
    double bound = 2000 + 20000 * elapsed + 1;
    /* threads that exited published their counts; this thread's go out at rld_close; the
     * daemon counts a grant once its reply is handed to the kernel, which the waiter may
     * see first: a moment's grace */
    rld_limit_info info;
    uint64_t until = t_now_ns() + 2000000000ull;
    do
        T_CODE(rld_info(shared_c, lim, &info), 0);
    while (info.admitted != (uint64_t)total && t_now_ns() < until && (t_sleep_ns(1000000), 1));
    printf("threads: %lld admitted of a bound of %.1f (%.4f) by %d threads in %.2f s, %llu "
           "client open/close cycles; counter says %llu\n", (long long)total, bound,
           (double)total / bound, NT + 2, elapsed, (unsigned long long)churn_opens,
           (unsigned long long)info.admitted);
    T_CHECK((double)total <= bound, "over-admitted: %lld > %.1f", (long long)total, bound);
    T_CHECK(info.admitted == (uint64_t)total, "counters add up: %llu != %lld",
            (unsigned long long)info.admitted, (long long)total);
    rld_close(shared_c);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_threads: ok\n");
    return 0;
}
