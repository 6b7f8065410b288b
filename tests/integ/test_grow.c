/*
 * test_grow.c - the segment grows without --fresh (issue 13, item 5): a reload (or a start)
 * whose file asks for more slots, a new template or a larger key table makes the daemon
 * build a larger segment, carry every limit's and key's state into it, and retire the old
 * one; clients follow by themselves: their limit handles keep working, their keys keep
 * their state. A process hammering a limit across the growth never sees an error and never
 * gets more than the limit allows. A daemon killed in the middle of a growth leaves the old
 * segment as it was, which the next start takes back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

#define SEC 1000000000ull
#define MS  1000000ull

static const char *small =
    "[rld]\nmax_limits = 4\n\n"
    "[limit a]\nrate = 10/s\nburst = 100\n\n"
    "[limit w]\nrate = 100/10s\nalgorithm = sliding\n\n"
    "[template t]\nrate = 1/min\nburst = 10\nmax_keys = 7\n\n"
    "[breaker br]\nfailures = 2\nopen_for = 1min\n";

static const char *larger =
    "[rld]\nmax_limits = 64\n\n"
    "[limit a]\nrate = 10/s\nburst = 100\n\n"
    "[limit w]\nrate = 100/10s\nalgorithm = sliding\n\n"
    "[template t]\nrate = 1/min\nburst = 10\nmax_keys = 100\n\n"
    "[limit b]\nrate = 5/s\n\n"
    "[template t2]\nrate = 2/s\nmax_keys = 50\n\n"
    "[breaker br]\nfailures = 2\nopen_for = 1min\n";

/* A child taking 1 from A as fast as it can until told to stop: counts admissions and
 * any error other than -EAGAIN. */
struct hammer {
    volatile int stop;
    uint64_t admitted, errors, first_ns, last_ns;
    int last_error;
};

static pid_t hammer_start(struct hammer *h)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    rld_client *c;
    rld_limit a;
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "a", &a) < 0)
        _exit(1);
    h->first_ns = t_now_ns();
    while (!h->stop) {
        int r = rld_try(c, a, 1, NULL);
        if (r == 0)
            h->admitted++;
        else if (r != -EAGAIN) {
            h->errors++;
            h->last_error = r;
        }
    }
    h->last_ns = t_now_ns();
    rld_close(c);
    _exit(0);
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "grow", small);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "start");
    rld_client *c;
    T_CODE(rld_open(NULL, 0, &c), 0);
    rld_instance inst;
    T_CODE(rld_instance_info(c, &inst), 0);
    T_CHECK(inst.max_limits == 4, "4 slots: %u", inst.max_limits);
    rld_limit a, w, kh;
    rld_template t;
    T_CODE(rld_find(c, "a", &a), 0);
    T_CODE(rld_find(c, "w", &w), 0);
    T_CODE(rld_find_template(c, "t", &t), 0);
    rld_result r;
    T_CODE(rld_try(c, w, 40, &r), 0);
    T_CODE(rld_try_key(c, t, "k1", 2, 7, &r), 0);
    T_CODE(rld_key(c, t, "k1", 2, &kh), 0);
    /* a client that, after the growth, only calls what listens to the upstream (breakers,
     * rld_penalize): those calls follow by themselves too */
    rld_client *c3;
    rld_limit a3, br3;
    T_CODE(rld_open(NULL, 0, &c3), 0);
    T_CODE(rld_find(c3, "a", &a3), 0);
    T_CODE(rld_breaker_find(c3, "br", &br3), 0);
    /* a new limit does not fit 4 slots: the reload grows the segment */
    struct hammer *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    T_CHECK(h != MAP_FAILED, "mmap");
    memset(h, 0, sizeof(*h));
    pid_t hp = hammer_start(h);
    t_sleep_ns(300 * MS);
    t_reload(&d, larger, "the segment grew");
    t_sleep_ns(300 * MS);
    h->stop = 1;
    int st;
    waitpid(hp, &st, 0);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hammer exited");
    T_CHECK(h->errors == 0, "no error across the growth: %llu (last %d %s)",
            (unsigned long long)h->errors, h->last_error, rld_strerror(h->last_error));
    double secs = (double)(h->last_ns - h->first_ns) / 1e9;
    T_CHECK(h->admitted <= 100 + 10 * secs + 2, "never more than the limit: %llu in %.2f s",
            (unsigned long long)h->admitted, secs);
    T_CHECK(h->admitted >= 100, "the burst was had: %llu", (unsigned long long)h->admitted);
    T_CHECK(t_log_count(&d, "reloaded ") >= 1, "and reloaded");

    /* this client follows by itself: the same handles, the state carried */
    T_CODE(rld_instance_info(c, &inst), 0);
    T_CHECK(inst.max_limits == 64, "64 slots now: %u", inst.max_limits);
    T_CODE(rld_peek(c, w, &r), 0);
    T_CHECK(r.remaining == 60, "w's window carried: %llu", (unsigned long long)r.remaining);
    T_CODE(rld_peek(c, a, &r), 0);
    T_CHECK(r.remaining < 100, "a's state carried (the hammer emptied it): %llu",
            (unsigned long long)r.remaining);
    T_CODE(rld_breaker_enter(c3, br3, &r), 0);
    T_CODE(rld_breaker_report(c3, br3, 0), 0);
    T_CODE(rld_breaker_enter(c3, br3, &r), 0);
    T_CODE(rld_breaker_report(c3, br3, 0), 0);
    rld_breaker_status bs;
    T_CODE(rld_breaker_info(c3, br3, &bs), 0);
    T_CHECK(bs.state == RLD_BREAKER_OPEN, "two failures opened br: state %u", bs.state);
    T_CODE(rld_breaker_enter(c, br3, &r), -EAGAIN);     /* and the followed client sees it */
    T_CODE(rld_penalize(c3, a3, 5 * SEC), 0);
    T_CODE(rld_try(c, a, 1, &r), -EAGAIN);
    T_CHECK(r.retry_after_ns > 4 * SEC, "the penalty applies to the grown segment: %llu ns",
            (unsigned long long)r.retry_after_ns);
    rld_close(c3);
    T_CODE(rld_try_key(c, t, "k1", 2, 3, &r), 0);
    T_CHECK(r.remaining == 0, "k1 kept its state: %llu", (unsigned long long)r.remaining);
    T_CODE(rld_try(c, kh, 1, &r), -ESTALE);            /* keys moved: look them up again */
    T_CODE(rld_key(c, t, "k1", 2, &kh), 0);
    T_CODE(rld_try(c, kh, 1, &r), -EAGAIN);
    /* the new limit and template, and the larger table */
    rld_limit b;
    rld_template t2;
    T_CODE(rld_find(c, "b", &b), 0);
    T_CODE(rld_try(c, b, 5, &r), 0);
    T_CODE(rld_find_template(c, "t2", &t2), 0);
    T_CODE(rld_try_key(c, t2, "x", 1, 2, &r), 0);
    char key[16];
    int placed = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        placed += rld_try_key(c, t, key, strlen(key), 1, NULL) == 0;
    }
    T_CHECK(placed >= 95, "the larger table holds them: %d of 100", placed);

    /* a client opened after: the new segment at once */
    rld_client *c2;
    T_CODE(rld_open(NULL, 0, &c2), 0);
    T_CODE(rld_peek(c2, w, &r), 0);
    T_CHECK(r.remaining == 60, "a new client sees the grown one");
    rld_close(c2);

    /* a daemon killed in the middle of a growth: the next start takes the old one back,
     * then grows it (the file asks for more) */
    T_CHECK(t_daemon_stop_clean(&d), "stop");
    setenv("RLD_TEST_GROW_ABORT", "1", 1);
    t_write_conf(&d, "[rld]\nmax_limits = 128\n\n[limit a]\nrate = 10/s\nburst = 100\n\n"
                     "[limit w]\nrate = 100/10s\nalgorithm = sliding\n");
    T_CHECK(t_daemon_start(&d, NULL) != 0, "the daemon died in its growth");
    unsetenv("RLD_TEST_GROW_ABORT");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "and starts again");
    T_CHECK(t_log_has_since_start(&d, "taken back as it was"), "the old segment taken back");
    T_CHECK(t_log_has_since_start(&d, "the segment grew to 128 slots"), "then grown");
    T_CODE(rld_peek(c, w, &r), 0);
    T_CHECK(r.remaining == 60, "w still carried: %llu", (unsigned long long)r.remaining);
    T_CODE(rld_instance_info(c, &inst), 0);
    T_CHECK(inst.max_limits == 128, "128 slots: %u", inst.max_limits);

    /* --fresh: the old segment's clients learn it is gone; their handles name nothing in the
     * new one (every limit new, full), rld_find gives the new ones */
    T_CHECK(t_daemon_stop_clean(&d), "stop");
    T_CHECK(t_daemon_start(&d, "--fresh") == 0, "start --fresh");
    T_CODE(rld_try(c, w, 1, &r), -ESTALE);
    T_CODE(rld_find(c, "w", &w), 0);
    T_CODE(rld_peek(c, w, &r), 0);
    T_CHECK(r.remaining == 100, "w new and full: %llu", (unsigned long long)r.remaining);
    rld_close(c);
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    return 0;
}
