/*
 * redis.c - the daemon's Redis client for global limits (see redis.h).
 *
 * Numbers in the scripts are Lua doubles: every time is whole ns relative to the bucket's
 * own epoch ("ep", a second of Redis's TIME), kept below 2^50 (13 days) by moving the
 * epoch forward, and the tolerance is at most 2^50 ns (limitdef.h), so every sum stays
 * below 2^53 and exact. Numbers are written back with %.0f (tostring would round to 14
 * digits). The interval is whole ns rounded up: the enforced rate is never above the
 * configured one.
 */
#define _GNU_SOURCE
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"

/* KEYS[1] the limit's hash. ARGV: host, want, demand (tokens/s), T (ns), burst, ttl (ms),
 * rate (tokens/s), stale (ms), the host's lease period (ns). Returns {granted, left, hosts,
 * share_ppm, fresh}.
 *
 * Fair shares: when the demands of the hosts heard of lately add up to more than the rate,
 * each host also has a bucket of its own (t:HOST) refilling at its share of the rate
 * (demand / total demand) with the global tolerance (at least two lease periods), and takes
 * at most what that holds: whatever the timing of the calls, the hosts split the rate in
 * proportion to their demands. */
static const char lease_lua[] =
    "local key, host = KEYS[1], ARGV[1]\n"
    "local want, demand = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local T, burst, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local rate, stale, period = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])\n"
    "local t = redis.call('TIME')\n"
    "local sec, usec = tonumber(t[1]), tonumber(t[2])\n"
    "local now_ms = sec * 1000 + math.floor(usec / 1000)\n"
    "local st = redis.call('HMGET', key, 'ep', 'tat', 't:' .. host)\n"
    "local ep, tat, th = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])\n"
    "local fresh = 0\n"
    "if not ep or not tat then ep = sec; tat = 0; fresh = 1; th = nil end\n"
    "local now = (sec - ep) * 1000000000 + usec * 1000\n"
    "if now >= 1125899906842624 then\n"              /* 2^50 ns: move the epoch */
    "  local shift = (sec - ep) * 1000000000\n"
    "  tat = tat - shift; if th then th = th - shift end; ep = sec; now = usec * 1000\n"
    "end\n"
    "if tat < now then tat = now end\n"
    "local tau = T * burst\n"
    "local avail = math.floor((now + tau - tat) / T)\n"
    "if avail < 0 then avail = 0 end\n"
    "local D, hosts = demand, 1\n"
    "local all = redis.call('HGETALL', key)\n"
    "for i = 1, #all, 2 do\n"
    "  local f = all[i]\n"
    "  if string.sub(f, 1, 2) == 'h:' and f ~= 'h:' .. host then\n"
    "    local d, seen = string.match(all[i + 1], '^(%S+) (%S+)$')\n"
    "    d, seen = tonumber(d), tonumber(seen)\n"
    "    if d and seen and now_ms - seen <= stale then\n"
    "      D = D + d; hosts = hosts + 1\n"
    "    else\n"
    "      redis.call('HDEL', key, f, 't:' .. string.sub(f, 3))\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local g, share = want, 1000000\n"
    "if g > avail then g = avail end\n"
    "if D > rate and D > 0 and demand > 0 then\n"     /* contended */
    "  local s = demand / D\n"
    "  share = math.floor(1000000 * s)\n"
    "  local Th, tauh = T / s, tau\n"
    "  if tauh < 2 * period then tauh = 2 * period end\n"
    "  if not th or th < now then th = now end\n"
    "  if th > now + tauh then th = now + tauh end\n"
    "  local ah = math.floor((now + tauh - th) / Th)\n"
    "  if ah < 0 then ah = 0 end\n"
    "  if g > ah then g = ah end\n"
    "  th = th + g * Th\n"
    "else th = nil end\n"
    "if g < 0 then g = 0 end\n"
    "tat = tat + g * T\n"
    "redis.call('HSET', key, 'ep', string.format('%.0f', ep), 'tat', string.format('%.0f', tat),\n"
    "           'h:' .. host, string.format('%.3f %.0f', demand, now_ms))\n"
    "if th then redis.call('HSET', key, 't:' .. host, string.format('%.0f', th))\n"
    "else redis.call('HDEL', key, 't:' .. host) end\n"
    "redis.call('PEXPIRE', key, ttl)\n"
    "return {g, avail - g, hosts, share, fresh}\n";

/* KEYS[1]; ARGV: n, T (ns), host, ttl (ms), leaving (0/1). Returns the tokens taken back. */
static const char give_lua[] =
    "local key, n, T, host = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]\n"
    "local t = redis.call('TIME')\n"
    "local sec, usec = tonumber(t[1]), tonumber(t[2])\n"
    "local st = redis.call('HMGET', key, 'ep', 'tat')\n"
    "local ep, tat = tonumber(st[1]), tonumber(st[2])\n"
    "if not ep or not tat then return 0 end\n"        /* no bucket: a new one is full anyway */
    "local now = (sec - ep) * 1000000000 + usec * 1000\n"
    "if now >= 1125899906842624 then\n"
    "  tat = tat - (sec - ep) * 1000000000; ep = sec; now = usec * 1000\n"
    "end\n"
    "local back = 0\n"
    "if tat > now then\n"
    "  local nt = tat - n * T\n"
    "  if nt < now then nt = now end\n"
    "  back = math.floor((tat - nt) / T)\n"
    "  tat = nt\n"
    "end\n"
    "redis.call('HSET', key, 'ep', string.format('%.0f', ep), 'tat', string.format('%.0f', tat))\n"
    "if ARGV[5] == '1' then redis.call('HDEL', key, 'h:' .. host)\n"
    "else redis.call('HSET', key, 'h:' .. host, string.format('0 %.0f', sec * 1000 + math.floor(usec / 1000))) end\n"
    "redis.call('PEXPIRE', key, tonumber(ARGV[4]))\n"
    "return back\n";

struct rconn {
    redisContext *ctx;
    char lease_sha[41], give_sha[41];
};

static struct timeval tv_of(uint64_t ns)
{
    return (struct timeval){ (time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000) };
}

int redis_password_read(const char *path, char *pw, size_t pwlen, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "password_file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        snprintf(err, errlen, "password_file %s: not a regular file", path);
    } else if (st.st_mode & 0007) {
        r = -EPERM;
        snprintf(err, errlen, "password_file %s is accessible by others (mode %04o): "
                 "chmod o-rwx it (refused, as OpenSSH refuses such a key)", path,
                 (unsigned)(st.st_mode & 07777));
    } else if (st.st_uid != 0 && st.st_uid != geteuid()) {
        r = -EPERM;
        snprintf(err, errlen, "password_file %s belongs to uid %u, not to root or rld's user",
                 path, (unsigned)st.st_uid);
    } else {
        ssize_t n = read(fd, pw, pwlen - 1);
        if (n < 0) {
            r = -errno;
            snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
        } else {
            pw[n] = '\0';
            pw[strcspn(pw, "\r\n")] = '\0';
            if (!pw[0]) {
                r = -EINVAL;
                snprintf(err, errlen, "password_file %s: empty first line", path);
            }
        }
    }
    close(fd);
    return r;
}

/* A reply's error text, or what the context says. */
static void reply_error(redisContext *ctx, redisReply *rep, const char *what, char *err,
                        size_t errlen)
{
    if (rep && rep->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s: %.*s", what, (int)(rep->len > 200 ? 200 : rep->len), rep->str);
    else if (ctx->err)
        snprintf(err, errlen, "%s: %s", what, ctx->errstr[0] ? ctx->errstr : "I/O error");
    else
        snprintf(err, errlen, "%s: unexpected reply", what);
}

static int load_script(rconn *c, const char *src, char *sha, char *err, size_t errlen)
{
    redisReply *rep = redisCommand(c->ctx, "SCRIPT LOAD %s", src);
    if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        reply_error(c->ctx, rep, "SCRIPT LOAD", err, errlen);
        if (rep)
            freeReplyObject(rep);
        return rep ? -EPROTO : -EIO;
    }
    memcpy(sha, rep->str, 40);
    sha[40] = '\0';
    freeReplyObject(rep);
    return 0;
}

rconn *rconn_open(const rldi_redisconf *r, char *err, size_t errlen)
{
    rconn *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ctx = r->path[0] ? redisConnectUnixWithTimeout(r->path, tv_of(r->connect_timeout_ns))
                        : redisConnectWithTimeout(r->host, r->port, tv_of(r->connect_timeout_ns));
    if (!c->ctx || c->ctx->err) {
        snprintf(err, errlen, "cannot connect to %s: %s", r->url,
                 c->ctx ? c->ctx->errstr : "out of memory");
        rconn_close(c);
        return NULL;
    }
    redisSetTimeout(c->ctx, tv_of(r->timeout_ns));
    if (!r->path[0])
        redisEnableKeepAlive(c->ctx);
    redisReply *rep = NULL;
    if (r->password_file[0]) {
        char pw[512];
        if (redis_password_read(r->password_file, pw, sizeof(pw), err, errlen) < 0) {
            rconn_close(c);
            return NULL;
        }
        rep = r->username[0] ? redisCommand(c->ctx, "AUTH %s %s", r->username, pw)
                             : redisCommand(c->ctx, "AUTH %s", pw);
        explicit_bzero(pw, sizeof(pw));
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            reply_error(c->ctx, rep, "AUTH", err, errlen);   /* Redis never echoes the password */
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db) {
        rep = redisCommand(c->ctx, "SELECT %u", (unsigned)r->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            reply_error(c->ctx, rep, "SELECT", err, errlen);
            goto fail;
        }
        freeReplyObject(rep);
    }
    rep = NULL;
    if (load_script(c, lease_lua, c->lease_sha, err, errlen) < 0 ||
        load_script(c, give_lua, c->give_sha, err, errlen) < 0)
        goto fail;
    return c;
fail:
    if (rep)
        freeReplyObject(rep);
    rconn_close(c);
    return NULL;
}

void rconn_close(rconn *c)
{
    if (!c)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    free(c);
}

/* EVALSHA SHA (SRC: what to load again when Redis forgot it: a restart, SCRIPT FLUSH). */
static redisReply *evalsha(rconn *c, char *sha, const char *src, int argc, const char **argv,
                           char *err, size_t errlen, int *code)
{
    for (int attempt = 0;; attempt++) {
        argv[1] = sha;
        size_t lens[16];
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        redisReply *rep = redisCommandArgv(c->ctx, argc, argv, lens);
        if (!rep) {
            reply_error(c->ctx, NULL, "EVALSHA", err, errlen);
            *code = -EIO;
            return NULL;
        }
        if (rep->type == REDIS_REPLY_ERROR && attempt == 0 && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(rep);
            int r = load_script(c, src, sha, err, errlen);
            if (r < 0) {
                *code = r;
                return NULL;
            }
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            reply_error(c->ctx, rep, "EVALSHA", err, errlen);
            freeReplyObject(rep);
            *code = -EPROTO;
            return NULL;
        }
        *code = 0;
        return rep;
    }
}

int rconn_lease(rconn *c, const lease_args *a, lease_reply *out, uint64_t *rtt_ns, char *err,
                size_t errlen)
{
    char want[24], demand[40], t[24], burst[24], ttl[24], rate[40], stale[24], period[24];
    snprintf(want, sizeof(want), "%llu", (unsigned long long)a->want);
    snprintf(demand, sizeof(demand), "%.3f", a->demand);
    snprintf(t, sizeof(t), "%llu", (unsigned long long)a->t_ns);
    snprintf(burst, sizeof(burst), "%llu", (unsigned long long)a->burst);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)a->ttl_ms);
    snprintf(rate, sizeof(rate), "%.6f", a->rate);
    snprintf(stale, sizeof(stale), "%llu", (unsigned long long)a->stale_ms);
    snprintf(period, sizeof(period), "%llu", (unsigned long long)a->period_ns);
    const char *argv[] = { "EVALSHA", NULL, "1", a->key, a->host, want, demand, t, burst, ttl,
                           rate, stale, period };
    uint64_t t0 = rldi_mono_ns();
    int code;
    redisReply *rep = evalsha(c, c->lease_sha, lease_lua, 13, argv, err, errlen, &code);
    *rtt_ns = rldi_mono_ns() - t0;
    if (!rep)
        return code;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5) {
        snprintf(err, errlen, "lease script: unexpected reply");
        freeReplyObject(rep);
        return -EPROTO;
    }
    long long v[5];
    for (int i = 0; i < 5; i++)
        v[i] = rep->element[i]->type == REDIS_REPLY_INTEGER ? rep->element[i]->integer : -1;
    freeReplyObject(rep);
    if (v[0] < 0 || (uint64_t)v[0] > a->want || v[1] < 0 || v[2] < 1 || v[3] < 0) {
        snprintf(err, errlen, "lease script: reply out of range");
        return -EPROTO;
    }
    out->granted = (uint64_t)v[0];
    out->left = (uint64_t)v[1];
    out->hosts = (uint32_t)v[2];
    out->share_ppm = v[3] > 1000000 ? 1000000 : (uint32_t)v[3];
    out->fresh = v[4] == 1;
    return 0;
}

int rconn_give(rconn *c, const char *key, const char *host, uint64_t n, uint64_t t_ns,
               uint64_t ttl_ms, bool leaving, char *err, size_t errlen)
{
    char num[24], t[24], ttl[24];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
    snprintf(t, sizeof(t), "%llu", (unsigned long long)t_ns);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = { "EVALSHA", NULL, "1", key, num, t, host, ttl, leaving ? "1" : "0" };
    int code;
    redisReply *rep = evalsha(c, c->give_sha, give_lua, 9, argv, err, errlen, &code);
    if (!rep)
        return code;
    freeReplyObject(rep);
    return 0;
}
