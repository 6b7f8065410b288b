/*
 * bench_wait.c - what waits through the daemon cost, beside the physical floor, in one run.
 *
 *   bench_wait [--reps N] [--csv]
 *
 * 1. Round trip of a Wait the daemon grants at once (protocol, io_uring loop, grant CAS),
 *    p50/p99, beside a raw SEQPACKET ping-pong of 32 bytes between two processes.
 * 2. Grant throughput: 10,000 waits queued behind a debt, then released at once (limit
 *    fast enough that the daemon, not the rate, is the bottleneck): grants per second.
 * 3. Lateness against the ideal schedule: 2,000 waits on a 1000/s limit. Each reply says how
 *    long the wait took and what the daemon foresaw when it was queued (the GCRA schedule
 *    with everything ahead of it); lateness = waited - foreseen, p50/p99. Measured by the
 *    daemon's clock, so the client's own scheduling does not enter it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"
#include "wire.h"

static const char *conf_text =
    "[limit rt]\nrate = unlimited\n\n"
    "[limit flood]\nrate = 1000000000/s\nburst = 1\n\n"
    "[limit sched]\nrate = 1000/s\nburst = 1\n\n"
    "[limit sched10]\nrate = 1000/s\nburst = 10\n";

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[(size_t)(p * (double)(n - 1))];
}

static rld_client *cl;

/* As librld sends it: by handle (slot + gen), not by name. */
static void send_wait(rldi_conn *k, const char *limit, uint64_t cost)
{
    Rld__V1__Wait w = RLD__V1__WAIT__INIT;
    rld_limit l;
    if (rld_find(cl, limit, &l) < 0)
        exit(1);
    w.slot = l.slot;
    w.gen = l.gen;
    w.cost = cost;
    w.timeout_ns = -1;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_WAIT;
    req.wait = &w;
    if (rldi_conn_send(k, &req, NULL) < 0) {
        fprintf(stderr, "send failed\n");
        exit(1);
    }
}

/* 1. round trips */
static void round_trips(const char *sock, int n, uint64_t *p50w, uint64_t *p99w, uint64_t *p50r,
                        uint64_t *p99r)
{
    rldi_conn k;
    if (rldi_conn_open(sock, "bench", 2000, &k, NULL, 0) < 0)
        exit(1);
    uint64_t *v = malloc(sizeof(uint64_t) * (size_t)n);
    for (int i = 0; i < n + 100; i++) {
        uint64_t t0 = t_now_ns();
        send_wait(&k, "rt", 1);
        Rld__V1__Reply *rep;
        if (rldi_conn_recv(&k, 2000, &rep) < 0 || rep->code != 0)
            exit(1);
        rld__v1__reply__free_unpacked(rep, NULL);
        if (i >= 100)
            v[i - 100] = t_now_ns() - t0;
    }
    *p50w = pct(v, (size_t)n, 0.5);
    *p99w = pct(v, (size_t)n, 0.99);
    rldi_conn_close(&k);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        exit(1);
    pid_t echo = fork();
    if (echo == 0) {
        char b[32];
        close(sv[0]);
        while (recv(sv[1], b, sizeof(b), 0) == 32)
            send(sv[1], b, 32, 0);
        _exit(0);
    }
    close(sv[1]);
    char b[32] = { 0 };
    for (int i = 0; i < n + 100; i++) {
        uint64_t t0 = t_now_ns();
        if (send(sv[0], b, 32, 0) != 32 || recv(sv[0], b, 32, 0) != 32)
            exit(1);
        if (i >= 100)
            v[i - 100] = t_now_ns() - t0;
    }
    close(sv[0]);
    waitpid(echo, NULL, 0);
    *p50r = pct(v, (size_t)n, 0.5);
    *p99r = pct(v, (size_t)n, 0.99);
    free(v);
}

/* Queue N waits on LIMIT over enough connections; return when all were granted, with the
 * receive time of each grant in AT (in the order received). */
static void flood(const char *sock, const char *limit, int n, uint64_t *at, uint64_t *late)
{
    enum { PER = 1000 };   /* the daemon allows 1024 waits per connection */
    int nc = (n + PER - 1) / PER;
    rldi_conn *k = calloc((size_t)nc, sizeof(*k));
    for (int c = 0; c < nc; c++)
        if (rldi_conn_open(sock, "bench", 2000, &k[c], NULL, 0) < 0)
            exit(1);
    for (int i = 0; i < n; i++)
        send_wait(&k[i / PER], limit, 1);
    int got = 0;
    while (got < n) {
        for (int c = 0; c < nc && got < n; c++) {
            Rld__V1__Reply *rep;
            int r = rldi_conn_recv(&k[c], 0, &rep);
            if (r == -ETIMEDOUT)
                continue;
            if (r < 0 || rep->code != 0) {
                fprintf(stderr, "wait failed: %d %s\n", r, r < 0 ? "" : rep->message);
                exit(1);
            }
            if (late)
                late[got] = rep->wait->waited_ns > rep->wait->expected_wait_ns
                                ? rep->wait->waited_ns - rep->wait->expected_wait_ns : 0;
            at[got++] = t_now_ns();
            rld__v1__reply__free_unpacked(rep, NULL);
        }
    }
    for (int c = 0; c < nc; c++)
        rldi_conn_close(&k[c]);
    free(k);
}

int main(int argc, char **argv)
{
    int reps = 3;
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--csv"))
            csv = true;
        else {
            fprintf(stderr, "usage: bench_wait [--reps N] [--csv]\n");
            return 2;
        }
    }
    t_daemon d;
    t_instance(&d, "benchwait", conf_text);
    if (t_daemon_start(&d, NULL) < 0)
        return 1;
    char sock[400];
    snprintf(sock, sizeof(sock), "%s/%s.sock", d.dir, d.instance);
    rld_client *c;
    rld_limit flood_l, sched_l;
    if (rld_open(NULL, 0, &c) < 0 || (cl = c, rld_find(c, "flood", &flood_l)) < 0 ||
        rld_find(c, "sched", &sched_l) < 0)
        return 1;

    if (csv)
        printf("metric,value,unit\n");
    for (int rep = 0; rep < reps; rep++) {
        uint64_t p50w, p99w, p50r, p99r;
        round_trips(sock, 20000, &p50w, &p99w, &p50r, &p99r);

        /* 2. 10,000 waits behind a 300 ms debt (1e9/s: 3e8 tokens), then all released */
        enum { NF = 10000 };
        uint64_t *at = malloc(sizeof(uint64_t) * NF);
        rld_debit(c, flood_l, 300000000);
        flood(sock, "flood", NF, at, NULL);
        double grants_s = (double)(NF - 1) / ((double)(at[NF - 1] - at[0]) / 1e9);

        /* 3. lateness: 2,000 waits at 1000/s; due k ms after the first grant */
        enum { NS = 2000 };
        rld_try(c, sched_l, 1, NULL);
        uint64_t *late = malloc(sizeof(uint64_t) * NS);
        flood(sock, "sched", NS, at, late);
        uint64_t l50 = pct(late, NS, 0.5), l99 = pct(late, NS, 0.99);
        /* burst 10: a late wake-up is caught up by the bucket instead of shifting the rest */
        rld_limit s10;
        if (rld_find(c, "sched10", &s10) < 0 || rld_try(c, s10, 10, NULL) < 0)
            return 1;
        flood(sock, "sched10", NS, at, late);
        uint64_t m50 = pct(late, NS, 0.5), m99 = pct(late, NS, 0.99);
        if (csv) {
            printf("wait_rtt_p50,%llu,ns\nwait_rtt_p99,%llu,ns\nraw_rtt_p50,%llu,ns\n"
                   "raw_rtt_p99,%llu,ns\nrtt_ratio_p50,%.3f,x\ngrants_per_s,%.0f,1/s\n"
                   "lateness_p50,%llu,ns\nlateness_p99,%llu,ns\n"
                   "lateness_burst10_p50,%llu,ns\nlateness_burst10_p99,%llu,ns\n",
                   (unsigned long long)p50w, (unsigned long long)p99w, (unsigned long long)p50r,
                   (unsigned long long)p99r, (double)p50w / (double)p50r, grants_s,
                   (unsigned long long)l50, (unsigned long long)l99, (unsigned long long)m50,
                   (unsigned long long)m99);
        } else {
            printf("run %d: wait round trip p50 %.1f us p99 %.1f us | raw SEQPACKET p50 %.1f us "
                   "p99 %.1f us | ratio p50 %.2fx | %.0f grants/s from 10,000 queued | "
                   "lateness (burst 1) p50 %.1f us p99 %.1f us | (burst 10) p50 %.1f us p99 %.1f us\n",
                   rep + 1, p50w / 1e3, p99w / 1e3, p50r / 1e3, p99r / 1e3,
                   (double)p50w / (double)p50r, grants_s, l50 / 1e3, l99 / 1e3, m50 / 1e3, m99 / 1e3);
        }
        free(at);
        free(late);
    }
    rld_close(c);
    t_daemon_stop(&d, SIGTERM);
    return 0;
}
