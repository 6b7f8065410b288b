/*
 * global.c - global limits: leases from Redis into local pools (see global.h).
 *
 * Two threads share this module under one mutex, held only for bookkeeping and the
 * pools' CASes, never across a Redis call:
 *
 *   the lease thread  every lease_period: per global limit, cancel the pool's natural
 *                     refill since the last look (rldi_bucket_pool), measure what the host
 *                     used and wants, give back what sits unused, lease what it will need,
 *                     credit it; (re)connect with backoff and jitter; decide fallback.
 *   the loop (main)   syncs the module with the configuration, kicks wait queues when
 *                     credits arrive, and publishes banks: a share fallback's bank and
 *                     the pool's again when Redis is back (only the loop publishes).
 *
 * Accounting per pool, in whole tokens: tokens enter only as credits of tokens Redis
 * granted, so what workers can take never exceeds what was taken from the global bucket
 * (docs/DESIGN.md, "Global limits", has the proof and the bounds).
 */
#define _GNU_SOURCE
#include "global.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "bucket.h"
#include "clock.h"
#include "log.h"
#include "redis.h"

#define BACKOFF_MIN_NS   100000000ull      /* first reconnect after 100 ms, doubling... */
#define BACKOFF_MAX_NS  2000000000ull      /* ...up to 2 s, with jitter */
#define STOP_SHIELD_NS  3600000000000ull   /* a stopped daemon's pools: no refill for 1 h */
#define IDLE_NS         1000000000ull      /* unused for 1 s: give the pool back */
#define STALE_MIN_MS    2000u              /* a host not heard of for 2 s has no share */

enum gmode { G_LEASING, G_FALLBACK };

typedef struct glimit {
    struct glimit *next;
    char     name[RLDI_NAME_MAX + 1];
    char     key[RLDI_NAME_MAX + 72];      /* PREFIX{NAME} */
    rldi_handle h;
    /* the definition (the loop writes it, under the lock) */
    uint64_t count, period_ns, burst, t_ns;
    uint32_t fb_num, fb_den;
    double   rate;                         /* tokens per second */
    /* state */
    enum gmode mode;
    bool     want_fallback, want_leave;    /* asked of the loop by the thread */
    bool     kick;                         /* credits arrived: the loop kicks the queue */
    bool     never;                        /* no lease yet since start: "waiting for Redis" */
    uint32_t round;                        /* the thread's last round over it */
    uint64_t last_ns;                      /* the pool's refill is cancelled up to here */
    int64_t  value;                        /* pool tokens at the last look (debt: negative) */
    uint64_t a0;                           /* pool tokens when a share fallback began */
    double   demand;                       /* tokens per second */
    uint64_t demand_ns, consumed, last_denied, last_use_ns;
    uint64_t fallback_since;
    uint32_t hosts, share_ppm;
    uint64_t leased, returned, calls;
} glimit;

struct global {
    rldi_seg       *seg;
    char            instance[80];
    uint64_t        last_hb;               /* the previous daemon's heartbeat */
    bool            synced;                /* a first sync was done */
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    pthread_t       thread;
    bool            started, stop;
    int             wake_fd;
    glimit         *lims;
    uint32_t        nlims, gen;            /* gen: bumped when the list changes */
    rldi_redisconf  rc;
    bool            rc_changed, have_rc;
    char            host_id[160];
    /* the connection: the thread's */
    rconn          *conn;
    uint64_t        retry_at, backoff_ns;
    unsigned        seed;
    /* shared figures */
    bool            up, ever_up;
    char            error[512];
    uint64_t        down_since, fallback_ns, rtt_ns, calls, errors, reconnects;
};

/* ---- helpers ------------------------------------------------------------------------- */

static void wake_loop(global *g)
{
    uint64_t one = 1;
    if (g->wake_fd >= 0 && write(g->wake_fd, &one, sizeof(one)) < 0) {
        /* a full counter wakes the loop all the same */
    }
}

static glimit *find_slot(const global *g, uint32_t slot)
{
    for (glimit *L = g->lims; L; L = L->next)
        if (L->h.slot == slot)
            return L;
    return NULL;
}

/* The fallback bank: F x the global rate. */
static rldi_u128 fallback_t(const glimit *L)
{
    rldi_u128 t;
    if (rldi_interval(L->count, L->period_ns, &t) < 0)
        return RLDI_POOL_T;
    rldi_u128 ft = t * L->fb_den / L->fb_num + (t * L->fb_den % L->fb_num != 0);
    return ft;
}

static void fallback_words(const glimit *L, char *buf, size_t len)
{
    if (L->fb_num)
        snprintf(buf, len, "share %u/%u", L->fb_num, L->fb_den);
    else
        snprintf(buf, len, "deny");
}

static uint64_t stale_ms(const global *g)
{
    uint64_t ms = g->rc.lease_period_ns / 1000000u * 20u;
    return ms > STALE_MIN_MS ? ms : STALE_MIN_MS;
}

static uint64_t ttl_ms(const glimit *L)
{
    return (uint64_t)((unsigned __int128)L->t_ns * L->burst / 1000000u) + 60000u;
}

/* Redis is down (ERR): close, schedule the next attempt with backoff and jitter. Locked. */
static void mark_down(global *g, const char *err, uint64_t now)
{
    if (g->conn) {
        rconn_close(g->conn);
        g->conn = NULL;
    }
    g->errors++;
    if (g->up || !g->down_since) {
        LOG_WARN("Redis at %s unreachable: %s: global limits on their fallback until it "
                 "answers", g->rc.url, err);
    }
    if (!g->down_since)
        g->down_since = now;
    g->up = false;
    snprintf(g->error, sizeof(g->error), "%s", err);
    g->backoff_ns = g->backoff_ns ? g->backoff_ns * 2 : BACKOFF_MIN_NS;
    if (g->backoff_ns > BACKOFF_MAX_NS)
        g->backoff_ns = BACKOFF_MAX_NS;
    /* "equal jitter": half fixed, half random, so restarted hosts do not reconnect in step */
    uint64_t half = g->backoff_ns / 2;
    g->retry_at = now + half + (uint64_t)rand_r(&g->seed) % (half + 1);
}

/* Connect when there is none (or the settings changed) and it is time. Locked; unlocks
 * around the connect. */
static void ensure_conn(global *g, uint64_t now)
{
    if (g->conn && !g->rc_changed)
        return;
    if (g->conn) {
        rconn_close(g->conn);
        g->conn = NULL;
        g->retry_at = 0;
    }
    if (now < g->retry_at || !g->have_rc)
        return;
    g->rc_changed = false;
    rldi_redisconf rc = g->rc;
    char err[512];
    pthread_mutex_unlock(&g->mu);
    rconn *c = rconn_open(&rc, err, sizeof(err));
    pthread_mutex_lock(&g->mu);
    now = rldi_mono_ns();
    if (!c) {
        mark_down(g, err, now);
        return;
    }
    if (g->rc_changed) {                   /* changed meanwhile: connect again next round */
        rconn_close(c);
        return;
    }
    g->conn = c;
    if (g->ever_up)
        g->reconnects++;
    if (g->down_since && g->ever_up)
        LOG_INFO("Redis at %s reachable again after %.1f s: leasing resumes", rc.url,
                 (double)(now - g->down_since) / 1e9);
    else
        LOG_INFO("Redis at %s connected: %u global limit%s leased from it as %s", rc.url,
                 g->nlims, g->nlims == 1 ? "" : "s", g->host_id);
    if (g->down_since)
        g->fallback_ns += now - g->down_since;
    g->down_since = 0;
    g->up = g->ever_up = true;
    g->backoff_ns = 0;
    g->error[0] = '\0';
}

/* ---- the lease thread ---------------------------------------------------------------- */

/* What pool state PS says about L since the last look: use, value. */
static void observe(glimit *L, const rldi_pool_state *ps, int64_t credited, uint64_t now)
{
    int64_t value = (int64_t)ps->avail - (int64_t)ps->debt;
    int64_t before = value - credited;         /* what it held before this call's credit */
    if (before < L->value) {
        L->consumed += (uint64_t)(L->value - before);
        L->last_use_ns = now;
    }
    L->value = value;
}

/* Demand in tokens per second: what the host used lately, and when callers were denied or
 * queued ("hungry"), more, doubling up to the global rate, so a host that could use more
 * claims its share. */
static bool update_demand(global *g, glimit *L, uint64_t now, uint64_t *queued)
{
    const rldi_slot *sl = &g->seg->slots[L->h.slot];
    uint64_t denied = rldi_load_relaxed(&sl->denied);
    uint32_t waiters = rldi_load_relaxed(&sl->waiters);
    *queued = waiters ? rldi_load_relaxed(&sl->queued) : 0;
    bool hungry = denied != L->last_denied || waiters || L->value < 0;
    L->last_denied = denied;
    double dt = (double)(now - L->demand_ns) / 1e9;
    if (dt <= 0)
        return hungry;
    double period = (double)g->rc.lease_period_ns / 1e9;
    double sample = (double)L->consumed / dt;
    if (hungry) {
        double d = L->demand * 2;
        double floor_d = sample * 1.5 + (double)*queued / period;
        if (d < floor_d)
            d = floor_d;
        if (d < L->rate / 8)                /* full rate within 3 periods */
            d = L->rate / 8;
        L->demand = d < L->rate ? d : L->rate;
        L->last_use_ns = now;
    } else {
        L->demand = L->demand * 0.7 + sample * 0.3;
        if (L->demand < 1e-3)
            L->demand = 0;
    }
    L->consumed = 0;
    L->demand_ns = now;
    return hungry;
}

/* Give N tokens of L back to Redis. Locked; unlocks around the call. */
static void give_back(global *g, glimit *L, uint64_t n, bool leaving)
{
    if (!g->conn || n == 0)
        return;
    char key[sizeof(L->key)], host[sizeof(g->host_id)], err[512];
    memcpy(key, L->key, sizeof(key));
    memcpy(host, g->host_id, sizeof(host));
    uint64_t t_ns = L->t_ns, ttl = ttl_ms(L);
    rconn *c = g->conn;
    pthread_mutex_unlock(&g->mu);
    int r = rconn_give(c, key, host, n, t_ns, ttl, leaving, err, sizeof(err));
    pthread_mutex_lock(&g->mu);
    g->calls++;
    L->calls++;
    if (r < 0) {
        if (r == -EIO && g->conn == c)
            mark_down(g, err, rldi_mono_ns());
        else
            g->errors++;
        return;                             /* lost: the global bucket refills anyway */
    }
    L->returned += n;
}

static void lim_tick(global *g, glimit *L, uint64_t now)
{
    rldi_pool_state ps;
    bool pool = L->mode == G_LEASING || L->fb_num == 0;   /* deny keeps the pool's bank */
    if (pool) {
        int r = rldi_bucket_pool(g->seg, L->h, now - L->last_ns, 0, 0, rldi_fp_from_ns(now), &ps);
        if (r == -EAGAIN) {                 /* another bank for now (the loop moves it) */
            L->last_ns = now;
            return;
        }
        if (r < 0)
            return;                         /* deleted: the next sync lets it go */
        L->last_ns = now;
        observe(L, &ps, 0, now);
    }
    uint64_t queued;
    bool hungry = update_demand(g, L, now, &queued);
    if (!g->up) {
        if (L->mode == G_LEASING && !L->want_fallback) {
            L->want_fallback = true;
            wake_loop(g);
        }
        return;
    }
    if (L->mode == G_FALLBACK) {
        if (!L->want_leave) {
            L->want_leave = true;
            wake_loop(g);
        }
        return;
    }
    if (L->want_fallback || L->want_leave)
        return;

    /* Hold two lease periods of demand, and what the waiters ask; never above the burst. */
    double period = (double)g->rc.lease_period_ns / 1e9;
    uint64_t target = (uint64_t)ceil(L->demand * 2 * period) + queued;
    if (target > L->burst)
        target = L->burst;
    bool idle = now - L->last_use_ns > IDLE_NS && queued == 0;
    uint64_t give = 0;
    if (L->value > 0 && idle)
        give = (uint64_t)L->value;                        /* idle: all of it */
    else if (L->value > 0 && (uint64_t)L->value > 2 * target + 1)
        give = (uint64_t)L->value - target;               /* demand fell: the excess */
    if (give) {
        int r = rldi_bucket_pool(g->seg, L->h, 0, 0, give, rldi_fp_from_ns(now), &ps);
        if (r == 0) {
            L->value = (int64_t)ps.avail - (int64_t)ps.debt;
            give_back(g, L, ps.moved, false);
        }
        return;
    }
    uint64_t want = (int64_t)target > L->value ? (uint64_t)((int64_t)target - L->value) : 0;
    if (want == 0 || (!hungry && L->value * 2 >= (int64_t)target && L->value > 0))
        return;
    lease_args a = { L->key, g->host_id, want, L->demand, L->t_ns, L->burst, L->rate,
                     ttl_ms(L), stale_ms(g), g->rc.lease_period_ns };
    char key[sizeof(L->key)], host[sizeof(g->host_id)], err[512];
    memcpy(key, L->key, sizeof(key));
    memcpy(host, g->host_id, sizeof(host));
    a.key = key;
    a.host = host;
    rconn *c = g->conn;
    lease_reply rep;
    uint64_t rtt;
    pthread_mutex_unlock(&g->mu);
    int r = rconn_lease(c, &a, &rep, &rtt, err, sizeof(err));
    pthread_mutex_lock(&g->mu);
    uint64_t now2 = rldi_mono_ns();
    g->calls++;
    L->calls++;
    if (r < 0) {
        if (r == -EIO && g->conn == c)
            mark_down(g, err, now2);
        else {
            g->errors++;
            snprintf(g->error, sizeof(g->error), "%s", err);
        }
        return;
    }
    g->rtt_ns = g->rtt_ns ? (g->rtt_ns * 7 + rtt) / 8 : rtt;
    if (rep.fresh && !L->never)
        LOG_INFO("limit %s: Redis had no bucket (expired, flushed or restarted without its "
                 "data): a new one, full", L->name);
    L->never = false;
    L->hosts = rep.hosts;
    L->share_ppm = rep.share_ppm;
    /* denials and wait estimates: tokens come at this host's share of the rate */
    uint64_t hint = (uint64_t)((unsigned __int128)L->t_ns * 1000000u /
                               (rep.share_ppm ? rep.share_ppm : 1));
    rldi_store_relaxed(&g->seg->slots[L->h.slot].lease_hint_ns, hint ? hint : 1);
    if (rep.granted == 0)
        return;
    if (L->mode != G_LEASING || L->want_fallback) {
        give_back(g, L, rep.granted, false);   /* the loop moved it meanwhile */
        return;
    }
    r = rldi_bucket_pool(g->seg, L->h, now2 - L->last_ns, rep.granted, 0, rldi_fp_from_ns(now2),
                         &ps);
    if (r < 0) {
        give_back(g, L, rep.granted, false);
        return;
    }
    L->last_ns = now2;
    observe(L, &ps, (int64_t)ps.moved, now2);
    L->leased += ps.moved;
    if (ps.moved && rldi_load_relaxed(&g->seg->slots[L->h.slot].waiters)) {
        L->kick = true;
        wake_loop(g);
    }
    if (ps.moved < rep.granted)               /* the pool was full: not ours to keep */
        give_back(g, L, rep.granted - ps.moved, false);
}

/* The daemon stops: every pool's tokens go back, and the pool is shielded from its own
 * refill while no daemon runs (the next one forgives the shield). Locked. */
static void give_all_back(global *g)
{
    uint64_t total = 0;
    for (glimit *L = g->lims; L; L = L->next) {
        if (L->mode == G_FALLBACK && L->fb_num)
            continue;                       /* a share fallback's bank stays: F x the rate */
        uint64_t now = rldi_mono_ns();
        rldi_pool_state ps;
        rldi_u128 at = rldi_fp_from_ns(now);
        if (rldi_bucket_pool(g->seg, L->h, now - L->last_ns, 0, UINT64_MAX, at, &ps) < 0)
            continue;
        rldi_bucket_pool(g->seg, L->h, STOP_SHIELD_NS, 0, 0, at, NULL);
        L->last_ns = now;
        if (g->up)
            give_back(g, L, ps.moved, true);
        total += ps.moved;
    }
    if (total)
        LOG_INFO("stopping: %llu unused leased tokens %s", (unsigned long long)total,
                 g->up ? "given back to Redis" : "dropped (Redis unreachable)");
}

static void *lease_thread(void *arg)
{
    global *g = arg;
    /* hiredis writes with write(2): a Redis gone away must be an EPIPE, not SIGPIPE (which
     * would be delivered to this thread and end the daemon) */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uint32_t round = 0;
    pthread_mutex_lock(&g->mu);
    uint64_t next = rldi_mono_ns();
    while (!g->stop) {
        uint64_t now = rldi_mono_ns();
        if (now < next) {
            struct timespec ts = { (time_t)(next / 1000000000u), (long)(next % 1000000000u) };
            pthread_cond_timedwait(&g->cv, &g->mu, &ts);
            continue;
        }
        next = now + g->rc.lease_period_ns;
        ensure_conn(g, now);
        round++;
        uint32_t gen;
        do {                                /* the list may change while a call runs */
            gen = g->gen;
            for (glimit *L = g->lims; L && !g->stop && gen == g->gen; L = L->next) {
                if (L->round == round)
                    continue;
                L->round = round;
                lim_tick(g, L, rldi_mono_ns());
            }
        } while (gen != g->gen && !g->stop);
        if (g->up && !g->conn)
            g->up = false;
    }
    give_all_back(g);
    if (g->conn) {
        rconn_close(g->conn);
        g->conn = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ---- the loop's side ------------------------------------------------------------------- */

void global_pause(global *g)
{
    if (g)
        pthread_mutex_lock(&g->mu);
}

void global_resume(global *g)
{
    if (g)
        pthread_mutex_unlock(&g->mu);
}

global *global_new(rldi_seg *seg, const char *instance, uint64_t last_heartbeat_ns)
{
    global *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->seg = seg;
    snprintf(g->instance, sizeof(g->instance), "%s", instance);
    g->last_hb = last_heartbeat_ns;
    g->wake_fd = eventfd(0, EFD_CLOEXEC);   /* blocking: the ring reads it (server.c) */
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->seed = (unsigned)(getpid() ^ rldi_mono_ns());
    return g;
}

int global_wake_fd(const global *g)
{
    return g ? g->wake_fd : -1;
}

int global_check(const rldi_config *conf, char *err, size_t errlen)
{
    if (!conf->nglobal || !conf->redis.password_file[0])
        return 0;
    char pw[512];
    int r = redis_password_read(conf->redis.password_file, pw, sizeof(pw), err, errlen);
    explicit_bzero(pw, sizeof(pw));
    return r;
}

/* What a pool found at start holds: the refill since the last daemon's heartbeat is
 * cancelled (a daemon killed left no shield) and a stopped daemon's shield is forgiven. */
static void adopt_pool(global *g, glimit *L, uint64_t now)
{
    rldi_slot *sl = &g->seg->slots[L->h.slot];
    rldi_bank b;
    rldi_bucket_config(sl, &b);
    if (b.t_hi != 0 || b.t_lo != (uint64_t)RLDI_POOL_T)
        return;
    uint64_t burst = b.burst;
    uint64_t hold = g->last_hb && g->last_hb < now ? now - g->last_hb : 0;
    rldi_pool_state ps;
    if (rldi_bucket_pool(g->seg, L->h, hold, 0, 0, rldi_fp_from_ns(now), &ps) == 0 && ps.debt)
        rldi_bucket_publish_tokens(sl, RLDI_POOL_T, burst, UINT64_MAX, NULL);
    if (rldi_bucket_pool(g->seg, L->h, 0, 0, 0, rldi_fp_from_ns(now), &ps) == 0) {
        L->value = (int64_t)ps.avail;
        if (ps.avail)
            LOG_INFO("limit %s: %llu tokens a killed rld had leased are still in the pool",
                     L->name, (unsigned long long)ps.avail);
    }
}

static void define(glimit *L, const rldi_limitdef *l, const rldi_redisconf *rc)
{
    L->count = l->count;
    L->period_ns = l->period_ns;
    L->burst = rldi_limitdef_burst(l);
    L->t_ns = rldi_limitdef_global_t_ns(l);
    L->rate = (double)l->count * 1e9 / (double)l->period_ns;
    L->fb_num = l->fallback_num;
    L->fb_den = l->fallback_den ? l->fallback_den : 1;
    snprintf(L->key, sizeof(L->key), "%s{%s}", rc->key_prefix, l->name);
}

int global_sync(global *g, const rldi_config *conf)
{
    if (!g)
        return 0;
    uint64_t now = rldi_mono_ns();
    pthread_mutex_lock(&g->mu);
    if (conf->redis.set) {
        rldi_redisconf rc = conf->redis;
        if (!rc.host_id[0]) {
            char hn[64] = "localhost";
            gethostname(hn, sizeof(hn) - 1);
            snprintf(rc.host_id, sizeof(rc.host_id), "%.63s/%.63s", hn, g->instance);
        }
        if (g->have_rc && memcmp(&rc, &g->rc, sizeof(rc)) != 0) {
            g->rc_changed = true;
            LOG_INFO("[redis] changed: reconnecting to %s", rc.url);
        }
        g->rc = rc;
        g->have_rc = true;
        snprintf(g->host_id, sizeof(g->host_id), "%s", rc.host_id);
    }
    glimit *old = g->lims, *kept = NULL;
    g->lims = NULL;
    uint32_t n = 0;
    for (size_t i = 0; i < conf->nlimits; i++) {
        const rldi_limitdef *l = &conf->limits[i];
        if (l->scope != RLDI_SCOPE_GLOBAL)
            continue;
        uint32_t slot, gen;
        if (rldi_seg_lookup(g->seg, l->name, &slot, &gen) < 0)
            continue;
        glimit **pp = &old, *L;
        while (*pp && strcmp((*pp)->name, l->name) != 0)
            pp = &(*pp)->next;
        if ((L = *pp)) {
            *pp = L->next;
        } else if (!(L = calloc(1, sizeof(*L)))) {
            LOG_ERROR("out of memory for global limit %s", l->name);
            continue;
        } else {
            snprintf(L->name, sizeof(L->name), "%s", l->name);
            L->h = (rldi_handle){ slot, gen };
            L->last_ns = L->demand_ns = now;
            L->never = true;
            L->share_ppm = 1000000;
            define(L, l, &g->rc);
            if (!g->synced)
                adopt_pool(g, L, now);
            char fb[48];
            fallback_words(L, fb, sizeof(fb));
            LOG_INFO("limit %s: global, leased from Redis at %s as %s (fallback %s)", l->name,
                     g->rc.url, g->host_id, fb);
        }
        if (L->h.slot != slot || L->h.gen != gen) {   /* another limit of that name now */
            L->h = (rldi_handle){ slot, gen };
            L->mode = G_LEASING;
            L->want_fallback = L->want_leave = false;
            L->value = 0;
            L->last_ns = now;
        }
        define(L, l, &g->rc);
        rldi_slot *sl = &g->seg->slots[slot];
        if (!rldi_load_relaxed(&sl->lease_hint_ns))
            rldi_store_relaxed(&sl->lease_hint_ns, L->t_ns ? L->t_ns : 1);
        if (L->mode == G_FALLBACK && L->fb_num) {
            /* a reload put the pool's bank back (dseg: emptied): the fallback goes on */
            rldi_bank b;
            rldi_bucket_config(sl, &b);
            if ((((rldi_u128)b.t_hi << 64) | b.t_lo) != fallback_t(L) || b.burst != L->burst)
                rldi_bucket_publish_tokens(sl, fallback_t(L), L->burst, UINT64_MAX, NULL);
        } else if (L->mode == G_LEASING) {
            rldi_pool_state ps;
            if (rldi_bucket_pool(g->seg, L->h, now - L->last_ns, 0, 0, rldi_fp_from_ns(now), &ps) == 0) {
                L->last_ns = now;
                L->value = (int64_t)ps.avail - (int64_t)ps.debt;
            }
        }
        L->next = kept;
        kept = L;
        n++;
    }
    while (old) {                           /* no longer global: the lease is forgotten */
        glimit *L = old;
        old = L->next;
        LOG_INFO("limit %s: no longer global: tokens left in its pool stay this host's", L->name);
        free(L);
    }
    g->lims = kept;
    g->nlims = n;
    g->gen++;
    /* a slot that held a global limit and holds a host one now: no hint */
    for (uint32_t i = 0; i < g->seg->slot_count; i++) {
        rldi_slot *sl = &g->seg->slots[i];
        if (rldi_load_relaxed(&sl->lease_hint_ns) && !find_slot(g, i))
            rldi_store_relaxed(&sl->lease_hint_ns, 0);
    }
    int r = 0;
    if (n && !g->started) {
        if ((r = -pthread_create(&g->thread, NULL, lease_thread, g)) == 0)
            g->started = true;
        else
            LOG_ERROR("cannot start the Redis lease thread: %s", strerror(-r));
    }
    pthread_cond_signal(&g->cv);
    g->synced = true;
    pthread_mutex_unlock(&g->mu);
    return r;
}

/* Move L to its fallback (the loop: only it publishes). Locked. */
static void enter_fallback(global *g, glimit *L, uint64_t now)
{
    rldi_slot *sl = &g->seg->slots[L->h.slot];
    char fb[48];
    fallback_words(L, fb, sizeof(fb));
    if (rldi_load_relaxed(&sl->gen) != L->h.gen)
        return;
    L->mode = G_FALLBACK;
    L->fallback_since = now;
    if (L->fb_num) {
        uint64_t held = 0;
        rldi_bucket_publish_tokens(sl, fallback_t(L), L->burst, UINT64_MAX, &held);
        L->a0 = held;
        LOG_WARN("limit %s: fallback %s: this host admits %u/%u of the global rate while Redis "
                 "is unreachable (%llu leased tokens in hand)", L->name, fb, L->fb_num, L->fb_den,
                 (unsigned long long)held);
    } else {
        LOG_WARN("limit %s: fallback deny: this host admits only the %lld leased tokens in "
                 "hand while Redis is unreachable", L->name, (long long)(L->value > 0 ? L->value : 0));
    }
}

/* Back from the fallback: a share fallback keeps at most what was in hand when it began,
 * so the outage adds no burst (its allowance was F x rate x outage). Locked. */
static void leave_fallback(global *g, glimit *L, uint64_t now)
{
    rldi_slot *sl = &g->seg->slots[L->h.slot];
    if (rldi_load_relaxed(&sl->gen) != L->h.gen)
        return;
    uint64_t held = 0, kept = 0;
    if (L->fb_num) {
        rldi_bucket_publish_tokens(sl, RLDI_POOL_T, L->burst, L->a0, &held);
        kept = held < L->a0 ? held : L->a0;
    }
    rldi_pool_state ps;
    L->last_ns = now;
    if (rldi_bucket_pool(g->seg, L->h, 0, 0, 0, rldi_fp_from_ns(now), &ps) == 0)
        L->value = (int64_t)ps.avail - (int64_t)ps.debt;
    L->mode = G_LEASING;
    LOG_INFO("limit %s: leasing again after %.1f s of fallback%s", L->name,
             (double)(now - L->fallback_since) / 1e9,
             L->fb_num && held > kept ? " (tokens beyond those leased before it dropped)" : "");
}

uint64_t global_tick(global *g, waitq *wq, uint64_t now)
{
    if (!g || !g->started)
        return 0;
    uint32_t kicks[64], nk = 0;
    pthread_mutex_lock(&g->mu);
    for (glimit *L = g->lims; L; L = L->next) {
        bool kick = L->kick;
        if (L->want_fallback) {
            enter_fallback(g, L, now);
            L->want_fallback = false;
            kick = true;
        }
        if (L->want_leave) {
            leave_fallback(g, L, now);
            L->want_leave = false;
            kick = true;
        }
        L->kick = false;
        if (kick && nk < 64)
            kicks[nk++] = L->h.slot;
        else if (kick)
            L->kick = true;                 /* next turn */
    }
    pthread_mutex_unlock(&g->mu);
    for (uint32_t i = 0; i < nk; i++)
        waitq_limit_changed(wq, kicks[i]);
    return 0;
}

bool global_has(const global *g, uint32_t slot)
{
    if (!g)
        return false;
    pthread_mutex_lock((pthread_mutex_t *)&g->mu);
    bool r = find_slot(g, slot) != NULL;
    pthread_mutex_unlock((pthread_mutex_t *)&g->mu);
    return r;
}

void global_limit_status(global *g, uint32_t slot, Rld__V1__LimitStatus *ls, char *buf,
                         size_t buflen)
{
    ls->scope = "host";
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    glimit *L = find_slot(g, slot);
    if (L) {
        ls->scope = "global";
        char fb[48];
        fallback_words(L, fb, sizeof(fb));
        if (L->mode == G_FALLBACK)
            snprintf(buf, buflen, "fallback %s", fb);
        else if (L->never)
            snprintf(buf, buflen, "%s", g->up ? "leasing" : "waiting for Redis");
        else
            snprintf(buf, buflen, "leasing");
        ls->lease_state = buf;
        ls->leased_tokens = L->mode == G_FALLBACK && L->fb_num ? 0 : ls->remaining;
        ls->global_share = (double)L->share_ppm / 1e6;
        ls->global_hosts = L->hosts;
        ls->leased_total = L->leased;
        ls->returned_total = L->returned;
        ls->lease_calls = L->calls;
        ls->demand = L->demand;
    }
    pthread_mutex_unlock(&g->mu);
}

void global_stats(global *g, Rld__V1__StatsReply *st, char *buf, size_t buflen)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    st->global_limits = g->nlims;
    if (g->have_rc && g->nlims) {
        uint64_t now = rldi_mono_ns();
        st->redis = g->up ? "up" : "down";
        int n = snprintf(buf, buflen, "%s", g->rc.url);
        st->redis_url = buf;
        if (n >= 0 && (size_t)n + 1 < buflen) {
            snprintf(buf + n + 1, buflen - (size_t)n - 1, "%s", g->error);
            st->redis_error = buf + n + 1;
        }
        st->redis_rtt_ns = g->rtt_ns;
        st->lease_calls = g->calls;
        st->redis_errors = g->errors;
        st->redis_reconnects = g->reconnects;
        st->fallback_ns = g->fallback_ns + (g->down_since ? now - g->down_since : 0);
    }
    pthread_mutex_unlock(&g->mu);
}

void global_stop(global *g)
{
    if (!g || !g->started)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    g->started = false;
}

void global_free(global *g)
{
    if (!g)
        return;
    global_stop(g);
    while (g->lims) {
        glimit *L = g->lims;
        g->lims = L->next;
        free(L);
    }
    if (g->wake_fd >= 0)
        close(g->wake_fd);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}
