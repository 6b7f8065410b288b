/*
 * test_mp_restart.c - kill -9 the daemon under load and restart it: processes keep taking
 * tokens on the fast path, waits fall back to the degraded reservation while it is down and
 * return to the daemon after, and over the whole run the limit never admits more than
 * burst + rate x elapsed + 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

#define RATE   2000.0
#define BURST  100.0
#define NPROC  4
#define RUN_NS 3000000000ull

typedef struct tally {
    int64_t admitted;
    uint64_t waits_ok, waits_degraded, waits_after, timeouts, tries_ok;
} tally;

static int worker(int id, uint64_t end, uint64_t restarted_at_min, tally *t)
{
    rld_client *c;
    rld_limit l;
    if (rld_open(NULL, 0, &c) < 0 || rld_find(c, "load", &l) < 0)
        return 2;
    while (t_now_ns() < end) {
        rld_result r;
        int rc = rld_try(c, l, 1, &r);
        if (rc == 0) {
            t->admitted++;
            t->tries_ok++;
            continue;
        }
        if (rc != -EAGAIN)
            return 3;
        rc = rld_wait(c, l, 1 + (uint64_t)id % 3, 300000000, &r);
        if (rc == 0) {
            t->admitted += 1 + id % 3;
            t->waits_ok++;
            if (r.flags & RLD_F_DEGRADED)
                t->waits_degraded++;
            else if (t_now_ns() > restarted_at_min)
                t->waits_after++;
        } else if (rc == -ETIMEDOUT) {
            t->timeouts++;
        } else {
            return 4;
        }
    }
    rld_close(c);
    return 0;
}

int main(void)
{
    t_daemon d;
    t_instance(&d, "restart", "[limit load]\nrate = 2000/s\nburst = 100\n");
    T_CHECK(t_daemon_start(&d, NULL) == 0, "rld started");
    tally *t = mmap(NULL, sizeof(tally) * NPROC, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    T_CHECK(t != MAP_FAILED, "mmap");
    memset(t, 0, sizeof(tally) * NPROC);
    uint64_t t0 = t_now_ns(), end = t0 + RUN_NS;
    pid_t p[NPROC];
    for (int i = 0; i < NPROC; i++) {
        p[i] = fork();
        if (p[i] == 0)
            _exit(worker(i, end, t0 + 1600000000ull, &t[i]));
    }
    t_sleep_ns(800000000);
    T_CHECK(t_daemon_stop(&d, SIGKILL) != 0, "kill -9 the daemon");
    t_sleep_ns(500000000);
    T_CHECK(t_daemon_start(&d, NULL) == 0, "restart under load");
    T_CHECK(t_log_has_since_start(&d, "re-attached"), "state re-attached, not recreated");
    T_CHECK(t_log_has_since_start(&d, "replaced stale socket"), "the dead daemon's socket replaced");
    int st, bad = 0;
    for (int i = 0; i < NPROC; i++) {
        waitpid(p[i], &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double elapsed = (double)(t_now_ns() - t0) / 1e9;
    T_CHECK(!bad, "a worker failed (status %d)", st);
    tally sum = { 0 };
    for (int i = 0; i < NPROC; i++) {
        sum.admitted += t[i].admitted;
        sum.waits_ok += t[i].waits_ok;
        sum.waits_degraded += t[i].waits_degraded;
        sum.waits_after += t[i].waits_after;
        sum.timeouts += t[i].timeouts;
        sum.tries_ok += t[i].tries_ok;
    }
    double bound = BURST + RATE * elapsed + 1;
    printf("restart: admitted %lld of a bound of %.1f (%.4f) in %.2f s; %llu tries, %llu waits "
           "(%llu degraded while down, %llu by the restarted daemon), %llu timeouts\n",
           (long long)sum.admitted, bound, (double)sum.admitted / bound, elapsed,
           (unsigned long long)sum.tries_ok, (unsigned long long)sum.waits_ok,
           (unsigned long long)sum.waits_degraded, (unsigned long long)sum.waits_after,
           (unsigned long long)sum.timeouts);
    T_CHECK((double)sum.admitted <= bound, "over-admitted: %lld > %.1f", (long long)sum.admitted, bound);
    T_CHECK((double)sum.admitted >= 0.9 * bound, "lost capacity: %lld < 90%% of %.1f",
            (long long)sum.admitted, bound);
    T_CHECK(sum.waits_degraded > 0, "waits degraded while the daemon was down");
    T_CHECK(sum.waits_after > 0, "waits served by the restarted daemon");
    T_CHECK(t_daemon_stop_clean(&d), "clean stop");
    printf("test_mp_restart: ok\n");
    return 0;
}
