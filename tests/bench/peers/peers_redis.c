/*
 * peers_redis.c - the Redis peer of bench_peers: a private redis-server, two rate-limit Lua
 * scripts called by EVALSHA through hiredis, latency and throughput with 1 and 2 client
 * processes, and memory per key. Built only when hiredis is found (RLD_HAVE_HIREDIS).
 *
 * The scripts read the time with TIME inside the script, as the libraries they imitate do
 * (see docs/BENCHMARKS.md, "Which clock").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "peers.h"

/*
 * The token bucket most Redis rate limiters copy (the algorithm of Spring Cloud Gateway's
 * request_rate_limiter.lua, which uses two keys and the client's clock), in the form many
 * copies use: tokens and the last refill time in one hash; read both, refill by elapsed x
 * rate capped at the capacity, take if enough, write both back with an expiry of twice the
 * fill time.
 *   KEYS[1] bucket; ARGV: rate (tokens/s), capacity, requested.  Returns {allowed, tokens}.
 */
static const char *script_token_bucket =
    "local rate = tonumber(ARGV[1])\n"
    "local capacity = tonumber(ARGV[2])\n"
    "local requested = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
    "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(b[1])\n"
    "local ts = tonumber(b[2])\n"
    "if tokens == nil then tokens = capacity; ts = now end\n"
    "local delta = math.max(0, now - ts)\n"
    "tokens = math.min(capacity, tokens + delta * rate)\n"
    "local allowed = 0\n"
    "if tokens >= requested then\n"
    "  tokens = tokens - requested\n"
    "  allowed = 1\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)\n"
    "redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate * 2))\n"
    "return {allowed, math.floor(tokens)}\n";

/*
 * GCRA with the theoretical arrival time in one string key, in the shape of go-redis's
 * redis_rate and rwz/redis-gcra: seconds since 2017-01-01 as a double (keeps microsecond
 * precision in 53 bits), SET with an expiry when the new TAT is in the future.
 *   KEYS[1] TAT; ARGV: burst, rate, period (s), cost.
 *   Returns {allowed cost or 0, remaining, retry_after, reset_after} (times as strings).
 */
static const char *script_gcra =
    "local burst = tonumber(ARGV[1])\n"
    "local rate = tonumber(ARGV[2])\n"
    "local period = tonumber(ARGV[3])\n"
    "local cost = tonumber(ARGV[4])\n"
    "local emission_interval = period / rate\n"
    "local increment = emission_interval * cost\n"
    "local burst_offset = emission_interval * burst\n"
    "local t = redis.call('TIME')\n"
    "local now = (tonumber(t[1]) - 1483228800) + tonumber(t[2]) / 1000000\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
    "if not tat then tat = now end\n"
    "tat = math.max(tat, now)\n"
    "local new_tat = tat + increment\n"
    "local allow_at = new_tat - burst_offset\n"
    "local diff = now - allow_at\n"
    "local remaining = diff / emission_interval\n"
    "if remaining < 0 then\n"
    "  return {0, 0, tostring(-diff), tostring(tat - now)}\n"
    "end\n"
    "local reset_after = new_tat - now\n"
    "if reset_after > 0 then\n"
    "  redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(reset_after))\n"
    "end\n"
    "return {cost, math.floor(remaining), '-1', tostring(reset_after)}\n";

/*
 * A sliding-window log, the usual way to get an exact sliding window out of Redis (the
 * sorted-set pattern of the common rate-limiting tutorials and of many small libraries):
 * one member per admitted token, scored with its time in microseconds; drop the members
 * older than the window, count the rest, add if it fits, expire the key after a window of
 * silence.
 *   KEYS[1] log; ARGV: window (us), limit, cost.  Returns {allowed cost or 0, remaining}.
 * Members are "time-count-i", unique as long as two scripts never start in the same
 * microsecond with the same count (each takes several).
 */
static const char *script_sliding_log =
    "local window = tonumber(ARGV[1])\n"
    "local limit = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
    "local count = redis.call('ZCARD', KEYS[1])\n"
    "if count + cost > limit then\n"
    "  return {0, limit - count}\n"
    "end\n"
    "for i = 1, cost do\n"
    "  redis.call('ZADD', KEYS[1], now, now .. '-' .. count .. '-' .. i)\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))\n"
    "return {cost, limit - count - cost}\n";

/*
 * A fixed window the way the `limits` library (Flask-Limiter, slowapi) keeps it in Redis:
 * INCRBY the window's counter and give it an expiry when this call created it; the window
 * starts at its first hit (not at a wall-clock boundary, which would only change the key's
 * name). A denied call still counts, as in `limits`.
 *   KEYS[1] counter; ARGV: window (ms), limit, cost.  Returns {allowed cost or 0, remaining}.
 */
static const char *script_fixed_window =
    "local cost = tonumber(ARGV[3])\n"
    "local n = redis.call('INCRBY', KEYS[1], cost)\n"
    "if n == cost then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "end\n"
    "local limit = tonumber(ARGV[2])\n"
    "if n > limit then\n"
    "  return {0, 0}\n"
    "end\n"
    "return {cost, limit - n}\n";

/* The scripts run in the regime of the rld rows: a limit so fast that every call is
 * admitted (1,000,000/s, burst 1,000,000; the clients do ~30,000 calls/s). The window
 * scripts: 10^9 per 1 s window; the log then holds one member per call of the last second
 * (tens of thousands), and each call's ZREMRANGEBYSCORE drops about one. */
static const char *const script_args[PR_NALL][4] = {
    [PR_TOKEN_BUCKET] = { "1000000", "1000000", "1", NULL },
    [PR_GCRA] = { "1000000", "1000000", "1", "1" },
    [PR_SLIDING_LOG] = { "1000000", "1000000000", "1", NULL },
    [PR_FIXED_WINDOW] = { "1000", "1000000000", "1", NULL },
};
static const char *const script_names[PR_NALL] = {
    [PR_TOKEN_BUCKET] = "token bucket",
    [PR_GCRA] = "GCRA",
    [PR_PING] = "PING",
    [PR_SLIDING_LOG] = "sliding log",
    [PR_FIXED_WINDOW] = "fixed window",
};
static const char *const script_keys[PR_NALL] = {
    [PR_TOKEN_BUCKET] = "rl:tb",
    [PR_GCRA] = "rl:gcra",
    [PR_PING] = "",
    [PR_SLIDING_LOG] = "rl:slog",
    [PR_FIXED_WINDOW] = "rl:fw",
};

#define SAMPLE_CAP (1u << 21)    /* per client and run: 70 s of 33 us calls */

typedef struct ctl {
    volatile int ready, go;
    uint64_t calls[2], denied[2], nsamp[2];
    int err[2];
} ctl;

static struct {
    pid_t pid, owner;
    int port;
    char dir[64], log[96];
    char version[32];
    char sha[PR_NALL][48];
    ctl *ctl;
    uint32_t *samples;      /* [2][SAMPLE_CAP], shared with the client processes */
    uint32_t *merged;
    bool atexit_done;
} R;

const char *pr_version(void) { return R.version; }
const char *pr_script_name(int script) { return script_names[script]; }

static int find_exe(const char *name, char *out, size_t outlen)
{
    const char *env = getenv("REDIS_SERVER");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return access(out, X_OK);
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s:/usr/bin:/usr/sbin:/usr/local/bin", path ? path : "");
    for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (!*dir)
            continue;
        snprintf(out, outlen, "%s/%s", dir, name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* A port free now: bind port 0 on loopback and read what the kernel chose. Another
 * process may take it before redis-server binds it; pr_start then retries. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static redisContext *connect_redis(int timeout_ms)
{
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", R.port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){ 10, 0 });
    return c;
}

/* A bulk string reply (RESP3 servers may send INFO as verbatim text; hiredis >= 1.0). */
static bool is_text(const redisReply *r)
{
#ifdef REDIS_REPLY_VERBATIM
    if (r->type == REDIS_REPLY_VERBATIM)
        return true;
#endif
    return r->type == REDIS_REPLY_STRING;
}

static void print_log_tail(void)
{
    FILE *f = fopen(R.log, "r");
    if (!f)
        return;
    char line[512];
    fprintf(stderr, "---- redis-server log (%s) ----\n", R.log);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

void pr_stop(void)
{
    if (R.pid > 0 && getpid() == R.owner) {
        int st;
        kill(R.pid, SIGTERM);
        uint64_t deadline = peers_clock_ns() + 5000000000ull;
        while (waitpid(R.pid, &st, WNOHANG) == 0) {
            if (peers_clock_ns() > deadline) {
                kill(R.pid, SIGKILL);
                waitpid(R.pid, &st, 0);
                break;
            }
            usleep(5000);
        }
        R.pid = 0;
    }
    if (R.dir[0] && getpid() == R.owner) {
        /* --save '' and --appendonly no: the log is the only file it writes. */
        unlink(R.log);
        rmdir(R.dir);
        R.dir[0] = 0;
    }
}

static void pr_atexit(void)
{
    pr_stop();
}

/* Launch redis-server on a fresh port; 0 when it answers PING, 1 port taken (retry), -1. */
static int launch(const char *exe, char *why, size_t whylen)
{
    R.port = free_port();
    if (R.port <= 0) {
        snprintf(why, whylen, "no free loopback port: %s", strerror(errno));
        return -1;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", R.port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Die with the benchmark, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        int fd = open(R.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0 || chdir(R.dir) < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(exe, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--daemonize", "no", "--dir", R.dir, "--logfile", "",
              "--databases", "1", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    R.pid = pid;
    uint64_t deadline = peers_clock_ns() + 10000000000ull;
    while (peers_clock_ns() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            R.pid = 0;
            char line[512];
            FILE *f = fopen(R.log, "r");
            bool in_use = false;
            while (f && fgets(line, sizeof(line), f))
                in_use |= strstr(line, "Address already in use") != NULL;
            if (f)
                fclose(f);
            if (in_use)
                return 1;
            print_log_tail();
            snprintf(why, whylen, "redis-server exited at start-up (status %d)", st);
            return -1;
        }
        redisContext *c = connect_redis(200);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        usleep(10000);
    }
    print_log_tail();
    snprintf(why, whylen, "redis-server did not answer PING within 10 s");
    pr_stop();
    return -1;
}

int pr_start(char *why, size_t whylen)
{
    char exe[512];
    if (find_exe("redis-server", exe, sizeof(exe)) < 0) {
        snprintf(why, whylen, "redis-server not found (apt-get install redis-server)");
        return -1;
    }
    R.owner = getpid();
    if (!R.atexit_done) {
        atexit(pr_atexit);
        R.atexit_done = true;
    }
    snprintf(R.dir, sizeof(R.dir), "/tmp/rld-bench-redis.XXXXXX");
    if (!mkdtemp(R.dir)) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        R.dir[0] = 0;
        return -1;
    }
    snprintf(R.log, sizeof(R.log), "%s/redis.log", R.dir);
    int r = 1;
    for (int attempt = 0; attempt < 5 && r == 1; attempt++)
        r = launch(exe, why, whylen);
    if (r != 0) {
        if (r == 1)
            snprintf(why, whylen, "no port redis-server could bind after 5 attempts");
        pr_stop();
        return -1;
    }

    redisContext *c = connect_redis(2000);
    if (!c) {
        snprintf(why, whylen, "cannot connect to redis-server on port %d", R.port);
        pr_stop();
        return -1;
    }
    redisReply *rep = redisCommand(c, "INFO server");
    const char *v = rep && is_text(rep) ? rep->str : NULL;
    v = v ? strstr(v, "redis_version:") : NULL;
    snprintf(R.version, sizeof(R.version), "%.*s", v ? (int)strcspn(v + 14, "\r\n") : 1,
             v ? v + 14 : "?");
    freeReplyObject(rep);
    const char *src[PR_NALL] = { [PR_TOKEN_BUCKET] = script_token_bucket,
                                 [PR_GCRA] = script_gcra,
                                 [PR_SLIDING_LOG] = script_sliding_log,
                                 [PR_FIXED_WINDOW] = script_fixed_window };
    for (int s = 0; s < PR_NALL; s++) {
        if (!src[s])
            continue;
        rep = redisCommand(c, "SCRIPT LOAD %s", src[s]);
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len >= sizeof(R.sha[s])) {
            snprintf(why, whylen, "SCRIPT LOAD failed: %s",
                     rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->errstr);
            freeReplyObject(rep);
            redisFree(c);
            pr_stop();
            return -1;
        }
        memcpy(R.sha[s], rep->str, rep->len + 1);
        freeReplyObject(rep);
    }
    redisFree(c);

    if (!R.ctl) {
        size_t len = 4096 + 2 * (size_t)SAMPLE_CAP * sizeof(uint32_t);
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        R.merged = malloc(2 * (size_t)SAMPLE_CAP * sizeof(uint32_t));
        if (m == MAP_FAILED || !R.merged) {
            snprintf(why, whylen, "out of memory for latency samples");
            pr_stop();
            return -1;
        }
        R.ctl = m;
        R.samples = (uint32_t *)((char *)m + 4096);
    }
    return 0;
}

/* argv of one EVALSHA of SCRIPT on KEY. */
static int evalsha_argv(int script, const char *key, const char **argv)
{
    int n = 0;
    if (script == PR_PING) {
        argv[n++] = "PING";
        return n;
    }
    argv[n++] = "EVALSHA";
    argv[n++] = R.sha[script];
    argv[n++] = "1";
    argv[n++] = key;
    for (int i = 0; i < 4 && script_args[script][i]; i++)
        argv[n++] = script_args[script][i];
    return n;
}

/* -1 error, 0 denied, 1 admitted. */
static int reply_verdict(redisReply *r)
{
    if (r && r->type == REDIS_REPLY_STATUS)
        return !strcmp(r->str, "PONG") ? 1 : -1;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return -1;
    return r->element[0]->integer > 0;
}

/* ---- per-key GCRA (issue 13) -------------------------------------------------------------
 * The GCRA script with the parameters of rld's template bench.keys: 1,000,000/s, burst 10^9
 * (argv: burst, rate, period 1 s, cost). Each key is first put 100 s into use (cost 10^8),
 * as rld's keys are, so it outlives the run (SET ... EX 100) and every call of cost 1 is
 * admitted. */
static const char *const keys_args[3] = { "1000000000", "1000000", "1" };

static int keys_argv(const char *key, const char *cost, const char **argv)
{
    int n = 0;
    argv[n++] = "EVALSHA";
    argv[n++] = R.sha[PR_GCRA];
    argv[n++] = "1";
    argv[n++] = key;
    for (int i = 0; i < 3; i++)
        argv[n++] = keys_args[i];
    argv[n++] = cost;
    return n;
}

static void keys_key(char *buf, size_t len, long i)
{
    snprintf(buf, len, "rl:key:user:%07ld", i);
}

/* One call of a client: ARGV (SCRIPT on its key), or with NKEYS > 0 the per-key GCRA
 * script on a random one of NKEYS keys. -1 error (printed), 0 denied, 1 admitted. */
static int client_call(redisContext *c, int argc, const char **argv, long nkeys, uint64_t *seed)
{
    const char *kargv[8];
    char key[64];
    if (nkeys > 0) {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        keys_key(key, sizeof(key), (long)((*seed * 2685821657736338717ull) % (uint64_t)nkeys));
        argc = keys_argv(key, "1", kargv);
        argv = kargv;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int v = reply_verdict(r);
    if (v < 0)
        fprintf(stderr, "EVALSHA: %s\n", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    freeReplyObject(r);
    return v;
}

/* Client ID of run_clients: calls until MS ms have passed, one latency sample per call. */
static void client(int id, int script, uint64_t ms, long nkeys)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    ctl *k = R.ctl;
    redisContext *c = connect_redis(2000);
    if (!c) {
        k->err[id] = 1;
        __atomic_add_fetch(&k->ready, 1, __ATOMIC_SEQ_CST);
        _exit(1);
    }
    const char *argv[8];
    int argc = evalsha_argv(script, script_keys[script], argv);
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1) ^ peers_clock_ns();
    for (int i = 0; i < 50 && !k->err[id]; i++)   /* warm up: connection, script cache, key */
        k->err[id] = client_call(c, argc, argv, nkeys, &seed) < 0;
    __atomic_add_fetch(&k->ready, 1, __ATOMIC_SEQ_CST);
    while (!k->go)
        sched_yield();
    uint32_t *out = R.samples + (size_t)id * SAMPLE_CAP;
    uint64_t n = 0, denied = 0, end = peers_clock_ns() + ms * 1000000u;
    uint64_t t1 = peers_clock_ns();
    while (t1 < end && !k->err[id]) {
        uint64_t t0 = t1;
        int v = client_call(c, argc, argv, nkeys, &seed);
        t1 = peers_clock_ns();
        if (v < 0) {
            k->err[id] = 1;
            break;
        }
        denied += v == 0;
        if (n < SAMPLE_CAP)
            out[n] = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);
        n++;
    }
    k->calls[id] = n;
    k->denied[id] = denied;
    k->nsamp[id] = n < SAMPLE_CAP ? n : SAMPLE_CAP;
    redisFree(c);
    _exit(k->err[id] ? 1 : 0);
}

/* NCLIENTS client processes (1 or 2) for MS ms, as client() says; merged latencies. */
static int run_clients(int script, int nclients, uint64_t ms, long nkeys, lat_run *out)
{
    ctl *k = R.ctl;
    memset(k, 0, sizeof(*k));
    pid_t pids[2];
    for (int i = 0; i < nclients; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            return -1;
        }
        if (pids[i] == 0)
            client(i, script, ms, nkeys);
    }
    uint64_t deadline = peers_clock_ns() + 20000000000ull;
    while (__atomic_load_n(&k->ready, __ATOMIC_SEQ_CST) < nclients && peers_clock_ns() < deadline)
        sched_yield();
    if (k->ready < nclients)   /* a client hangs connecting: let them all fail */
        for (int i = 0; i < nclients; i++)
            kill(pids[i], SIGKILL);
    k->go = 1;
    int bad = 0;
    for (int i = 0; i < nclients; i++) {
        int st;
        waitpid(pids[i], &st, 0);   /* never wait(): the rld daemon is our child too */
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    if (bad) {
        fprintf(stderr, "redis client failed (%s)\n", nkeys > 0 ? "per-key GCRA"
                                                              : script_names[script]);
        return -1;
    }
    size_t m = 0;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < nclients; i++) {
        memcpy(R.merged + m, R.samples + (size_t)i * SAMPLE_CAP, k->nsamp[i] * sizeof(uint32_t));
        m += k->nsamp[i];
        out->calls += k->calls[i];
        out->denied += k->denied[i];
    }
    out->p50_ns = peers_percentile(R.merged, m, 0.50);
    out->p99_ns = peers_percentile(R.merged, m, 0.99);
    out->per_s = (double)out->calls * 1000.0 / (double)ms;
    return 0;
}

int pr_run(int script, int nclients, uint64_t ms, lat_run *out)
{
    return run_clients(script, nclients, ms, 0, out);
}

static long long info_used_memory(redisContext *c);

int pr_keys_prefill(long nkeys, double *per_key)
{
    redisContext *c = connect_redis(2000);
    if (!c)
        return -1;
    int rc = -1;
    redisReply *r = redisCommand(c, "FLUSHALL SYNC");
    freeReplyObject(r);
    long long before = info_used_memory(c);
    const char *argv[8];
    char key[64];
    for (long i = 0; i < nkeys && !peers_stop;) {
        long batch = 0;
        for (; batch < 1000 && i < nkeys; batch++, i++) {
            keys_key(key, sizeof(key), i);
            int argc = keys_argv(key, "100000000", argv);
            if (redisAppendCommandArgv(c, argc, argv, NULL) != REDIS_OK)
                goto out;
        }
        for (; batch > 0; batch--) {
            void *rv = NULL;
            if (redisGetReply(c, &rv) != REDIS_OK || reply_verdict(rv) != 1) {
                fprintf(stderr, "per-key prefill: %s\n", rv && ((redisReply *)rv)->type ==
                        REDIS_REPLY_ERROR ? ((redisReply *)rv)->str : "not admitted");
                freeReplyObject(rv);
                goto out;
            }
            freeReplyObject(rv);
        }
    }
    long long after = info_used_memory(c);
    if (before >= 0 && after >= 0 && !peers_stop) {
        *per_key = (double)(after - before) / (double)nkeys;
        rc = 0;
    }
out:
    redisFree(c);
    return rc;
}

int pr_keys_run(long nkeys, uint64_t ms, lat_run *out)
{
    return run_clients(PR_GCRA, 1, ms, nkeys, out);
}

static long long info_used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    long long v = -1;
    if (r && is_text(r)) {
        const char *p = strstr(r->str, "used_memory:");
        if (p)
            v = atoll(p + 12);
    }
    freeReplyObject(r);
    return v;
}

int pr_memory(int script, long nkeys, double *usage, double *per_key)
{
    redisContext *c = connect_redis(2000);
    if (!c)
        return -1;
    int rc = -1;
    const char *argv[8];
    char key[64];
    redisReply *r = redisCommand(c, "FLUSHALL SYNC");
    freeReplyObject(r);

    /* One key, as the script leaves it. SAMPLES 0: count every field. */
    snprintf(key, sizeof(key), "%s:user:1000001", script_keys[script]);
    int argc = evalsha_argv(script, key, argv);
    r = redisCommandArgv(c, argc, argv, NULL);
    int v = reply_verdict(r);
    freeReplyObject(r);
    r = redisCommand(c, "MEMORY USAGE %s SAMPLES 0", key);
    if (v < 0 || !r || r->type != REDIS_REPLY_INTEGER)
        goto out;
    *usage = (double)r->integer;
    freeReplyObject(r);
    r = redisCommand(c, "FLUSHALL SYNC");
    freeReplyObject(r);
    r = NULL;

    /* NKEYS keys of the same shape, pipelined; the growth of used_memory per key includes
     * the keyspace and expiry dictionaries, which MEMORY USAGE leaves out. */
    long long before = info_used_memory(c);
    for (long i = 0; i < nkeys && !peers_stop;) {
        long batch = 0;
        for (; batch < 1000 && i < nkeys; batch++, i++) {
            snprintf(key, sizeof(key), "%s:user:%ld", script_keys[script], 1000000 + i);
            argc = evalsha_argv(script, key, argv);
            if (redisAppendCommandArgv(c, argc, argv, NULL) != REDIS_OK)
                goto out;
        }
        for (; batch > 0; batch--) {
            void *rv = NULL;
            if (redisGetReply(c, &rv) != REDIS_OK || reply_verdict(rv) < 0) {
                freeReplyObject(rv);
                goto out;
            }
            freeReplyObject(rv);
        }
    }
    long long after = info_used_memory(c);
    if (before < 0 || after < 0)
        goto out;
    *per_key = (double)(after - before) / (double)nkeys;
    r = redisCommand(c, "FLUSHALL SYNC");
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "redis memory measurement failed: %s\n",
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}
