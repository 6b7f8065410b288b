/*
 * test_global.c - global limits across "hosts" (issue 17): three rld instances on this
 * machine share limits through one redis-server the test starts itself (AUTH with a
 * password file; two instances reach it over TCP, one over its Unix socket), two worker
 * processes per host (one taking with rld_try, one queueing with rld_wait).
 *
 *   A  all three saturate for 10 s: admitted <= burst + rate x elapsed, and >= 90% of it;
 *      Redis calls per host per second at steady state reported
 *   B  one host idle: the two others still get >= 90% of the bound, about evenly
 *   C  Redis killed for 3 s mid-run, then started again (empty): "share 1/3" admits about a
 *      third of the rate per host meanwhile, "deny" nothing beyond what was leased; after,
 *      leasing resumes and the total stays within the bound plus the fallback's allowance
 *      (and one burst: the restarted Redis lost the bucket)
 *   D  FLUSHALL mid-run: at most one extra burst
 *   E  a password file readable by others is refused (rld --check-config)
 *   F  the Redis figures in the metrics, from rlctl and from host 0's endpoint (HTTP GET)
 *
 * Needs redis-server (exit 77 without it). About 35 s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rld.h"

#define HOSTS   3
#define RATE    10000.0          /* tokens per second, every global limit */
#define BURST   1000.0
#define COST    5
#define PASSWORD "rld-test-secret-9f2c"

static t_daemon hosts[HOSTS];
static char redis_dir[300], redis_sock[360], pwfile[360];
static int redis_port, metrics_port;
static pid_t redis_pid;

/* Per host and limit, tokens admitted (shared with the workers). */
enum { L_A, L_B, L_SHARE, L_DENY, L_FLUSH, NLIM };
static const char *const lim_names[NLIM] = { "g.a", "g.b", "g.share", "g.deny", "g.flush" };
static _Atomic uint64_t (*admitted)[NLIM];

static void redis_start(void)
{
    redis_pid = t_redis_start(redis_dir, redis_port, PASSWORD, redis_sock, sizeof(redis_sock));
}

static void redis_kill(void)
{
    t_redis_stop(redis_pid, redis_sock);
    redis_pid = 0;
}

static int redis_cli(const char *cmd)
{
    char line[600];
    snprintf(line, sizeof(line), "redis-cli --no-auth-warning -s %s -a %s %s >/dev/null", redis_sock,
             PASSWORD, cmd);
    return system(line);
}

static void cleanup(void)
{
    for (int i = HOSTS - 1; i >= 0; i--) {
        if (hosts[i].pid > 0)
            t_daemon_stop(&hosts[i], SIGKILL);
        if (i > 0)
            t_keeper_stop(&hosts[i]);
    }
    redis_kill();
}

static void write_conf(int h, const char *pw)
{
    char url[400], conf[4096];
    if (h == 2)
        snprintf(url, sizeof(url), "unix://%s", redis_sock);
    else
        snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
    int n = 0;
    if (h == 0 && metrics_port)
        n = snprintf(conf, sizeof(conf), "[rld]\nmetrics_listen = 127.0.0.1:%d\n\n", metrics_port);
    n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                  "[redis]\nurl = %s\npassword_file = %s\ntimeout = 300ms\n"
                  "connect_timeout = 300ms\n\n", url, pw);
    for (int l = 0; l < NLIM; l++)
        n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                      "[limit %s]\nrate = %.0f/s\nburst = %.0f\nscope = global\nfallback = %s\n\n",
                      lim_names[l], RATE, BURST, l == L_DENY ? "deny" : "share 1/3");
    snprintf(conf + n, sizeof(conf) - (size_t)n, "[limit local]\nrate = 1000000/s\n");
    t_write_conf(&hosts[h], conf);
}

/* A worker of host H on limits MASK until END: KIND 0 takes with rld_try (and sleeps what
 * the denial says, at most 2 ms), KIND 1 queues with rld_wait. */
static void worker(int h, int kind, unsigned mask, uint64_t end)
{
    rld_client *c;
    rld_limit lim[NLIM];
    if (rld_open(hosts[h].instance, 0, &c) < 0)
        _exit(2);
    for (int l = 0; l < NLIM; l++)
        if ((mask >> l & 1) && rld_find(c, lim_names[l], &lim[l]) < 0)
            _exit(3);
    while (t_now_ns() < end) {
        for (int l = 0; l < NLIM; l++) {
            if (!(mask >> l & 1))
                continue;
            rld_result r;
            int rc = kind == 0 ? rld_try(c, lim[l], COST, &r) : rld_wait(c, lim[l], COST, 200000000, &r);
            if (rc == 0) {
                atomic_fetch_add(&admitted[h][l], COST);
            } else if (rc == -EAGAIN || rc == -ETIMEDOUT) {
                uint64_t ns = r.retry_after_ns < 2000000 ? r.retry_after_ns : 2000000;
                t_sleep_ns(ns < 100000 ? 100000 : ns);
            } else {
                fprintf(stderr, "worker %d/%d: %s\n", h, kind, rld_strerror(rc));
                _exit(4);
            }
        }
    }
    rld_close(c);
    _exit(0);
}

static pid_t workers[HOSTS * 2];
static int nworkers;

/* Two workers on each host of HOST_MASK: one with rld_try on TRY_MASK's limits, one with
 * rld_wait on WAIT_MASK's. */
static void start_workers2(unsigned host_mask, unsigned try_mask, unsigned wait_mask, uint64_t end)
{
    nworkers = 0;
    for (int h = 0; h < HOSTS; h++) {
        if (!(host_mask >> h & 1))
            continue;
        for (int k = 0; k < 2; k++) {
            pid_t p = fork();
            T_CHECK(p >= 0, "fork: %s", strerror(errno));   /* waitpid(-1) would reap a host */
            if (p == 0)
                worker(h, k, k ? wait_mask : try_mask, end);
            workers[nworkers++] = p;
        }
    }
}

/* Both workers of each host of HOST_MASK on LIM_MASK's limits. */
static void start_workers(unsigned host_mask, unsigned lim_mask, uint64_t end)
{
    start_workers2(host_mask, lim_mask, lim_mask, end);
}

static void join_workers(void)
{
    T_CHECK(t_reap_all(workers, nworkers, "worker") == 0,
            "a worker failed (above; 2, 3: cannot open the instance or its limits, 4: an "
            "rld call failed)");
}

static uint64_t total(int l)
{
    uint64_t s = 0;
    for (int h = 0; h < HOSTS; h++)
        s += atomic_load(&admitted[h][l]);
    return s;
}

/* Whether what CMD prints has the line LINE. */
static bool prints_line(const char *cmd, const char *line)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    char buf[1024];
    bool found = false;
    while (fgets(buf, sizeof(buf), p))
        if (strncmp(buf, line, strlen(line)) == 0 && buf[strlen(line)] == '\n')
            found = true;
    pclose(p);
    return found;
}

/* Whether the body of GET /metrics on 127.0.0.1:PORT has the line LINE (no curl needed:
 * the check runs wherever the test does). */
static bool endpoint_has_line(int port, const char *line)
{
    static char buf[1 << 16];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 2, 0 };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    size_t len = 0;
    ssize_t r = write(fd, req, sizeof(req) - 1);
    while (r >= 0 && len + 1 < sizeof(buf) && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    size_t n = strlen(line);
    for (const char *p = buf; (p = strstr(p, line)); p += n)
        if ((p == buf || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\r'))
            return true;
    return false;
}

/* The daemon's Redis counts for host H (its own Stats reply). */
static uint64_t lease_calls(int h)
{
    t_stats st;
    t_daemon_stats(&hosts[h], &st);
    return st.lease_calls;
}

static uint64_t fallback_ns(int h)
{
    t_stats st;
    t_daemon_stats(&hosts[h], &st);
    return st.fallback_ns;
}

int main(void)
{
    if (!t_have("redis-server") || !t_have("redis-cli")) {
        fprintf(stderr, "SKIP: no redis-server or redis-cli (apt-get install redis-server)\n");
        return T_SKIP;
    }
    if (!getenv("RLCTL_BIN")) {
        fprintf(stderr, "RLCTL_BIN is not set\n");
        return 1;
    }
    admitted = mmap(NULL, sizeof(*admitted) * HOSTS, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    t_instance(&hosts[0], "global", "");
    for (int h = 1; h < HOSTS; h++) {
        hosts[h] = hosts[0];
        snprintf(hosts[h].instance, sizeof(hosts[h].instance), "%.50s-h%d", hosts[0].instance, h);
        snprintf(hosts[h].conf, sizeof(hosts[h].conf), "%s/rld%d.conf", hosts[0].dir, h);
        snprintf(hosts[h].log, sizeof(hosts[h].log), "%s/rld%d.log", hosts[0].dir, h);
    }
    snprintf(redis_dir, sizeof(redis_dir), "%s", hosts[0].dir);
    snprintf(redis_sock, sizeof(redis_sock), "%s/redis.sock", redis_dir);
    snprintf(pwfile, sizeof(pwfile), "%s/redis.pass", redis_dir);
    atexit(cleanup);
    redis_port = t_free_port();
    T_CHECK(redis_port > 0, "no free port");
    metrics_port = t_free_port();
    T_CHECK(metrics_port > 0, "no free port");

    /* E: a password file others can read is refused, naming why */
    FILE *f = fopen(pwfile, "w");
    T_CHECK(f && fprintf(f, "%s\n", PASSWORD) > 0 && fclose(f) == 0, "%s: %s", pwfile,
            strerror(errno));
    chmod(pwfile, 0644);
    write_conf(0, pwfile);
    char out[1024];
    const char *args[] = { "--check-config", "--config", hosts[0].conf, NULL };
    T_CHECK(t_run_rld(out, sizeof(out), args) == 1 && strstr(out, "accessible by others"),
            "a 0644 password file was accepted: %s", out);
    chmod(pwfile, 0600);
    T_CHECK(t_run_rld(out, sizeof(out), args) == 0, "check-config: %s", out);

    redis_start();
    for (int h = 0; h < HOSTS; h++) {
        write_conf(h, pwfile);
        T_CHECK(t_daemon_start(&hosts[h], NULL) == 0, "host %d did not start", h);
    }

    /* F: the daemon's Redis figures in the metrics, as rlctl and the endpoint print them */
    char cmd[700], want[200];
    snprintf(want, sizeof(want), "rld_global_limits{rld_instance=\"%s\"} %d", hosts[0].instance,
             NLIM);
    snprintf(cmd, sizeof(cmd), "%s --instance %s metrics", getenv("RLCTL_BIN"), hosts[0].instance);
    uint64_t until = t_now_ns() + 5000000000ull;
    char up[200];
    snprintf(up, sizeof(up), "rld_redis_up{rld_instance=\"%s\"} 1", hosts[0].instance);
    while (!prints_line(cmd, up) && t_now_ns() < until)
        t_sleep_ns(100000000);
    T_CHECK(prints_line(cmd, up) && prints_line(cmd, want), "rlctl metrics: no %s, %s", up, want);
    T_CHECK(endpoint_has_line(metrics_port, up) && endpoint_has_line(metrics_port, want),
            "the endpoint 127.0.0.1:%d: no %s, %s", metrics_port, up, want);

    /* A: all three saturate g.a for 10 s */
    uint64_t calls0[HOSTS];
    for (int h = 0; h < HOSTS; h++)
        calls0[h] = lease_calls(h);
    uint64_t t0 = t_now_ns();
    start_workers(7, 1u << L_A, t0 + 10000000000ull);
    join_workers();
    double el = (double)(t_now_ns() - t0) / 1e9;
    double bound = BURST + RATE * el;
    uint64_t a = total(L_A);
    double calls = 0;
    for (int h = 0; h < HOSTS; h++)
        calls += (double)(lease_calls(h) - calls0[h]);
    printf("A: 3 hosts saturating %.2f s: admitted %llu of bound %.0f (%.1f%%); per host %llu %llu "
           "%llu; Redis calls per host per second %.1f\n", el, (unsigned long long)a, bound,
           100.0 * (double)a / bound, (unsigned long long)admitted[0][L_A],
           (unsigned long long)admitted[1][L_A], (unsigned long long)admitted[2][L_A],
           calls / HOSTS / el);
    T_CHECK((double)a <= bound, "A: over the bound: %llu > %.0f", (unsigned long long)a, bound);
    T_CHECK((double)a >= 0.9 * bound, "A: under 90%% of the bound: %llu < %.0f",
            (unsigned long long)a, 0.9 * bound);
    for (int h = 0; h < HOSTS; h++)
        T_CHECK(admitted[h][L_A] > a / 6, "A: host %d got %llu of %llu", h,
                (unsigned long long)admitted[h][L_A], (unsigned long long)a);

    /* B: host 2 idle, hosts 0 and 1 saturate g.b for 5 s */
    t0 = t_now_ns();
    start_workers(3, 1u << L_B, t0 + 5000000000ull);
    join_workers();
    el = (double)(t_now_ns() - t0) / 1e9;
    bound = BURST + RATE * el;
    uint64_t b = total(L_B);
    printf("B: host 2 idle, 2 hosts %.2f s: admitted %llu of bound %.0f (%.1f%%); per host %llu "
           "%llu %llu\n", el, (unsigned long long)b, bound, 100.0 * (double)b / bound,
           (unsigned long long)admitted[0][L_B], (unsigned long long)admitted[1][L_B],
           (unsigned long long)admitted[2][L_B]);
    T_CHECK((double)b <= bound, "B: over the bound");
    T_CHECK((double)b >= 0.9 * bound, "B: under 90%% of the bound: %llu", (unsigned long long)b);
    T_CHECK(admitted[2][L_B] == 0, "B: the idle host admitted");

    /* C: Redis killed for 3 s mid-run, then back (empty) */
    uint64_t fb0[HOSTS];
    for (int h = 0; h < HOSTS; h++)
        fb0[h] = fallback_ns(h);
    t0 = t_now_ns();
    start_workers2(7, 1u << L_SHARE, 1u << L_DENY, t0 + 10000000000ull);
    t_sleep_ns(2500000000ull);
    redis_kill();
    uint64_t t_kill = t_now_ns();
    t_sleep_ns(700000000ull);                 /* timeouts expire, pools of "deny" drain */
    uint64_t s1 = total(L_SHARE), d1 = total(L_DENY), t1 = t_now_ns();
    t_sleep_ns(3000000000ull - (t1 - t_kill));
    uint64_t s2 = total(L_SHARE), d2 = total(L_DENY), t2 = t_now_ns();
    redis_start();
    join_workers();
    el = (double)(t_now_ns() - t0) / 1e9;
    double fb_s = 0;
    for (int h = 0; h < HOSTS; h++)
        fb_s += (double)(fallback_ns(h) - fb0[h]) / 1e9;
    double share_rate = (double)(s2 - s1) / ((double)(t2 - t1) / 1e9);
    double allowance = RATE / 3 * fb_s;      /* each host F x rate for its fallback time */
    bound = BURST + RATE * el;
    uint64_t cs = total(L_SHARE), cd = total(L_DENY);
    printf("C: Redis down %.2f s: share 1/3 admitted %.0f/s during it (3 hosts, rate %.0f), "
           "deny %llu tokens after its pools drained; fallback time %.2f host-seconds; "
           "over %.2f s share admitted %llu of bound %.0f + allowance %.0f + one burst, deny %llu\n",
           (double)(t2 - t_kill) / 1e9, share_rate, RATE, (unsigned long long)(d2 - d1), fb_s,
           el, (unsigned long long)cs, bound, allowance, (unsigned long long)cd);
    T_CHECK(share_rate <= RATE * 1.02 + BURST / 2, "C: share fallback too fast: %.0f/s", share_rate);
    T_CHECK(share_rate >= RATE * 0.5, "C: share fallback admitted little: %.0f/s", share_rate);
    T_CHECK(d2 == d1, "C: deny fallback admitted %llu tokens", (unsigned long long)(d2 - d1));
    T_CHECK((double)cs <= bound + allowance + BURST, "C: share over bound + allowance + burst");
    T_CHECK((double)cd <= bound + BURST, "C: deny over the bound + burst");
    T_CHECK(cd > d2 + 1000, "C: leasing did not resume after Redis came back (%llu -> %llu)",
            (unsigned long long)d2, (unsigned long long)cd);
    T_CHECK(fb_s >= 3 * 2.5 && fb_s <= 3 * 8.0, "C: fallback time %.2f host-seconds", fb_s);

    /* D: FLUSHALL mid-run */
    t0 = t_now_ns();
    start_workers(7, 1u << L_FLUSH, t0 + 4000000000ull);
    t_sleep_ns(2000000000ull);
    T_CHECK(redis_cli("FLUSHALL") == 0, "FLUSHALL failed");
    join_workers();
    el = (double)(t_now_ns() - t0) / 1e9;
    bound = BURST + RATE * el;
    uint64_t fl = total(L_FLUSH);
    printf("D: FLUSHALL mid-run: admitted %llu of bound %.0f + one burst (%.1f%% of the bound)\n",
           (unsigned long long)fl, bound, 100.0 * (double)fl / bound);
    T_CHECK((double)fl <= bound + BURST, "D: more than one extra burst");
    T_CHECK((double)fl >= 0.9 * bound, "D: under 90%% of the bound");
    bool logged = false;
    for (int h = 0; h < HOSTS; h++)
        logged = logged || t_log_has(&hosts[h], "Redis had no bucket");
    T_CHECK(logged, "the lost bucket was not logged");

    for (int h = HOSTS - 1; h >= 0; h--)
        T_CHECK(t_daemon_stop_clean(&hosts[h]), "host %d did not stop cleanly", h);
    printf("test_global: ok\n");
    return 0;
}
