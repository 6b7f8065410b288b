/*
 * wait.c - rld_wait: the fast path first, then a queued wait at the daemon, else (daemon
 * unreachable or stopping) a client-side reservation flagged RLD_F_DEGRADED.
 *
 * Each waiting thread borrows one connection from the client's pool for the whole wait, so
 * waits of different threads never serialise behind each other; connections are reused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bucket.h"
#include "client.h"
#include "clock.h"
#include "wire.h"

#define CONNECT_TIMEOUT_MS 1000
#define DOWN_BACKOFF_NS    1000000000ull   /* after a failed connect, degrade without retrying */
#define POLL_SLICE_MS      1000            /* how often a queued wait checks the daemon's pulse */

static rldi_conn *pool_get(rld_client *c)
{
    pthread_mutex_lock(&c->pool_lock);
    rldi_conn *k = c->npool ? c->pool[--c->npool] : NULL;
    uint64_t down = c->daemon_down_until;
    pthread_mutex_unlock(&c->pool_lock);
    if (k)
        return k;
    if (down && rldi_mono_ns() < down)
        return NULL;
    if (!c->paths.socket_path[0])
        return NULL;
    k = malloc(sizeof(*k));
    if (!k)
        return NULL;
    if (rldi_conn_open(c->paths.socket_path, "librld", CONNECT_TIMEOUT_MS, k, NULL, 0) < 0) {
        free(k);
        pthread_mutex_lock(&c->pool_lock);
        c->daemon_down_until = rldi_mono_ns() + DOWN_BACKOFF_NS;
        pthread_mutex_unlock(&c->pool_lock);
        return NULL;
    }
    return k;
}

static void pool_put(rld_client *c, rldi_conn *k)
{
    pthread_mutex_lock(&c->pool_lock);
    c->daemon_down_until = 0;
    if (c->npool < RLDC_POOL) {
        c->pool[c->npool++] = k;
        k = NULL;
    }
    pthread_mutex_unlock(&c->pool_lock);
    if (k) {
        rldi_conn_close(k);
        free(k);
    }
}

static void conn_drop(rldi_conn *k)
{
    rldi_conn_close(k);
    free(k);
}

void rldc_pool_close(rld_client *c)
{
    for (int i = 0; i < c->npool; i++)
        conn_drop(c->pool[i]);
    c->npool = 0;
}

static void fill(rld_result *res, const Rld__V1__WaitReply *w)
{
    if (!res)
        return;
    memset(res, 0, sizeof(*res));
    if (!w)
        return;
    res->limit = w->limit;
    res->remaining = w->remaining;
    res->retry_after_ns = w->retry_after_ns;
    res->reset_after_ns = w->reset_after_ns;
    res->queue_position = w->queue_position;
}

/* Ask the daemon. Returns the wait's outcome, or 1 when the daemon failed us (degrade). */
static int ask_daemon(rld_client *c, rldi_conn *k, rld_limit lim, uint64_t cost,
                      int64_t timeout_ns, int priority, rld_result *res)
{
    Rld__V1__Wait w = RLD__V1__WAIT__INIT;
    w.slot = lim.slot;
    w.gen = lim.gen;
    w.cost = cost;
    w.timeout_ns = timeout_ns;
    w.priority = priority;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_WAIT;
    req.wait = &w;
    uint64_t id;
    if (rldi_conn_send(k, &req, &id) < 0)
        return 1;
    /* The daemon answers by the timeout; past it (plus slack) it is not well. */
    uint64_t give_up = timeout_ns >= 0 ? rldi_mono_ns() + (uint64_t)timeout_ns + 2000000000ull : 0;
    for (;;) {
        Rld__V1__Reply *rep;
        int r = rldi_conn_recv(k, POLL_SLICE_MS, &rep);
        if (r == -ETIMEDOUT) {
            if (rldi_seg_daemon_stale(&c->seg, rldi_mono_ns()) ||
                (give_up && rldi_mono_ns() > give_up))
                return 1;
            continue;
        }
        if (r < 0)
            return 1;
        if (rep->id != id) {
            rld__v1__reply__free_unpacked(rep, NULL);
            continue;
        }
        int code = rep->code;
        fill(res, rep->body_case == RLD__V1__REPLY__BODY_WAIT ? rep->wait : NULL);
        rld__v1__reply__free_unpacked(rep, NULL);
        if (code == -ESHUTDOWN)
            return 1;
        return code;
    }
}

/*
 * The degraded wait: reserve COST now (into debt if need be) when it is due before
 * DEADLINE_NS (0: none), then sleep until it is due. 0, -ETIMEDOUT, or as rld_try.
 */
static int reserve(rld_client *c, rld_limit lim, uint64_t cost, uint64_t deadline_ns,
                   rld_result *res)
{
    rldi_verdict vd;
    uint64_t wait_ns;
    rldi_u128 now = rldi_now_fp();
    rldi_handle h = { lim.slot, lim.gen };
    int r = rldi_bucket_reserve(&c->seg, h, cost, deadline_ns, now, &vd, &wait_ns);
    if (r == 0)
        rldc_count(c, lim.slot, cost, 0, rldi_fp_to_ns(now));
    if (r == 0 && wait_ns) {
        struct timespec ts = { (time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (res && (r == 0 || r == -ETIMEDOUT)) {
        rldc_result(res, &vd);
        if (!(vd.flags & RLDI_V_UNLIMITED))
            res->flags |= RLD_F_DEGRADED;
    }
    return r;
}

int rld_wait_ex(rld_client *c, rld_limit lim, uint64_t cost, int64_t timeout_ns,
                const rld_wait_opts *opts, rld_result *res)
{
    rld_wait_opts def = { 0, 0 };
    if (!opts)
        opts = &def;
    if (!c || opts->priority < 0 || opts->priority > RLD_PRIORITY_MAX ||
        (opts->flags & ~RLD_WAIT_BARGE))
        return -EINVAL;
    uint64_t start = rldi_mono_ns();
    rld_result local;
    int r = rld_try_ex(c, lim, cost, (opts->flags & RLD_WAIT_BARGE) ? RLD_TRY_BARGE : 0, &local);
    if (r != -EAGAIN) {
        if (res)
            *res = local;
        return r;
    }
    if (timeout_ns >= 0 && local.retry_after_ns > (uint64_t)timeout_ns) {
        if (res)
            *res = local;
        return -ETIMEDOUT;      /* it cannot fit in time: no need to ask */
    }
    rldi_conn *k = pool_get(c);
    if (k) {
        r = ask_daemon(c, k, lim, cost, timeout_ns, opts->priority, res);
        if (r != 1) {
            pool_put(c, k);
            return r;
        }
        conn_drop(k);
        pthread_mutex_lock(&c->pool_lock);
        c->daemon_down_until = rldi_mono_ns() + DOWN_BACKOFF_NS;
        pthread_mutex_unlock(&c->pool_lock);
    }
    /* Degraded: no daemon to queue at. Reserve and sleep, within what is left of the timeout. */
    uint64_t deadline = timeout_ns >= 0 ? start + (uint64_t)timeout_ns : 0;
    if (deadline == 0 && timeout_ns >= 0)
        deadline = 1;
    return reserve(c, lim, cost, deadline, res);
}

int rld_wait(rld_client *c, rld_limit lim, uint64_t cost, int64_t timeout_ns, rld_result *res)
{
    return rld_wait_ex(c, lim, cost, timeout_ns, NULL, res);
}
