/*
 * demo_workers.c - several worker processes sharing one limit through librld.
 *
 *   demo_workers [LIMIT] [WORKERS] [SECONDS]      (default: demo 4 3)
 *
 * Each worker takes one token at a time with rld_wait(): the fast path when a token is
 * there, else a fair queue at the daemon (FIFO across the processes), so the workers get
 * even shares. At the end every worker prints what it got, and the parent compares the
 * total with what the limit allows: burst + rate x elapsed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rld.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int worker(int id, const char *name, double seconds, int out_fd)
{
    rld_client *c;
    rld_limit lim;
    int r = rld_open(NULL, 0, &c);
    if (r < 0 || (r = rld_find(c, name, &lim)) < 0) {
        fprintf(stderr, "worker %d: %s\n", id, rld_strerror(r));
        return 1;
    }
    unsigned long got = 0, queued = 0, degraded = 0;
    double end = now_s() + seconds;
    for (double left; (left = end - now_s()) > 0;) {
        rld_result res;
        r = rld_wait(c, lim, 1, (int64_t)(left * 1e9), &res);
        if (r == 0) {
            got++;
            queued += res.queue_position > 0;
            degraded += (res.flags & RLD_F_DEGRADED) != 0;
        } else if (r == -ETIMEDOUT) {
            break;                          /* the next token comes after the end */
        } else {
            fprintf(stderr, "worker %d: rld_wait: %s\n", id, rld_strerror(r));
            return 1;
        }
    }
    printf("worker %d (pid %d): got %lu tokens (%lu after queueing behind others%s)\n", id,
           (int)getpid(), got, queued, degraded ? ", some without the daemon" : "");
    fflush(stdout);
    if (write(out_fd, &got, sizeof(got)) != sizeof(got))
        return 1;
    rld_close(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "demo";
    int workers = argc > 2 ? atoi(argv[2]) : 4;
    double seconds = argc > 3 ? atof(argv[3]) : 3.0;
    if (workers < 1 || workers > 256 || seconds <= 0) {
        fprintf(stderr, "usage: demo_workers [LIMIT] [WORKERS 1-256] [SECONDS]\n");
        return 2;
    }
    rld_client *c;
    rld_limit lim;
    rld_result st;
    int r = rld_open(NULL, 0, &c);
    if (r < 0) {
        fprintf(stderr, "demo_workers: cannot open the rld instance: %s (is rld running?)\n",
                rld_strerror(r));
        return 1;
    }
    rld_limit_info info;
    if ((r = rld_find(c, name, &lim)) < 0 || (r = rld_peek(c, lim, &st)) < 0 ||
        (r = rld_info(c, lim, &info)) < 0) {
        fprintf(stderr, "demo_workers: limit %s: %s\n", name, rld_strerror(r));
        return 1;
    }
    int p[2];
    if (pipe(p) < 0)
        return 1;
    printf("%d workers share limit '%s' (burst %llu) for %.1f s\n", workers, name,
           (unsigned long long)st.limit, seconds);
    fflush(stdout);
    double t0 = now_s();
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(worker(i, name, seconds, p[1]));
    }
    close(p[1]);
    unsigned long total = 0, got;
    while (read(p[0], &got, sizeof(got)) == sizeof(got))
        total += got;
    int status, failed = 0;
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    double elapsed = now_s() - t0;
    printf("total %lu tokens in %.2f s across %d processes\n", total, elapsed, workers);
    if (info.rate_count) {
        double rate = (double)info.rate_count * 1e9 / (double)info.rate_period_ns;
        printf("the limit allows %llu available at the start + %.0f/s x %.2f s = %.0f\n",
               (unsigned long long)st.remaining, rate, elapsed, (double)st.remaining + rate * elapsed);
    }
    rld_close(c);
    return failed;
}
