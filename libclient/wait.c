/*
 * wait.c - the blocking waits (rld_wait, rld_wait_ex, rld_wait_multi: one path, a single
 * wait is the set of one): the fast path first, then a queued wait at the daemon, else
 * (daemon unreachable or stopping) a client-side reservation flagged RLD_F_DEGRADED. Also
 * what the non-blocking waits (async.c) share: the request, the result, the reservation.
 *
 * Each waiting thread borrows one connection from the client's pool for the whole wait, so
 * waits of different threads never serialise behind each other; connections are reused,
 * but never across fork(): a forked child closes its copies of all of them at once, in the
 * fork's child handler, lent ones included, and forgets them at its first wait.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bucket.h"
#include "client.h"
#include "clock.h"
#include "wire.h"

#define CONNECT_TIMEOUT_MS 1000
#define DOWN_BACKOFF_NS    1000000000ull   /* after a failed connect, degrade without retrying */
#define POLL_SLICE_MS      1000            /* how often a queued wait checks the daemon's pulse */

/*
 * A daemon connection of the pool: idle in c->pool[], or lent to one waiting thread and then
 * on c->lent. Its descriptor is made and closed under pool_lock, which the fork handlers
 * hold, and it is on one of the two from its making to its closing: so a fork's child finds
 * every descriptor of the pool, lent or not, and closes its copies at once
 * (rldc_pool_forget), before the daemon could take them for the parent's.
 */
typedef struct rldc_conn {
    rldi_conn         k;
    struct rldc_conn *prev, *next;      /* on c->lent while lent */
} rldc_conn;

static void lend(rld_client *c, rldc_conn *k)
{
    k->prev = NULL;
    k->next = c->lent;
    if (c->lent)
        c->lent->prev = k;
    c->lent = k;
}

static void unlend(rld_client *c, rldc_conn *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else if (c->lent == k)
        c->lent = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

static void forget(rldi_conn *k)
{
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
}

void rldc_pool_forget(rld_client *c)
{
    for (int i = 0; i < c->npool; i++)
        forget(&c->pool[i]->k);
    for (rldc_conn *k = c->lent; k; k = k->next)
        forget(&k->k);
}

/* In a forked child (under pool_lock): free what the pool held in the parent. Their
 * descriptors were closed by the fork's child handler; the threads that had borrowed some
 * do not exist here. */
static void pool_after_fork(rld_client *c)
{
    unsigned forks = __atomic_load_n(&rldc_forks, __ATOMIC_ACQUIRE);
    if (c->pool_forks == forks)
        return;
    for (int i = 0; i < c->npool; i++)
        free(c->pool[i]);
    c->npool = 0;
    while (c->lent) {
        rldc_conn *k = c->lent;
        c->lent = k->next;
        free(k);
    }
    c->daemon_down_until = 0;
    c->pool_forks = forks;
}

/* A connection for one wait, and the fork generation it belongs to. */
static rldc_conn *pool_get(rld_client *c, unsigned *forks)
{
    pthread_mutex_lock(&c->pool_lock);
    pool_after_fork(c);
    *forks = c->pool_forks;
    rldc_conn *k = c->npool ? c->pool[--c->npool] : NULL;
    bool fresh = false;
    if (!k && (!c->daemon_down_until || rldi_mono_ns() >= c->daemon_down_until) &&
        c->paths.socket_path[0] && (k = calloc(1, sizeof(*k)))) {
        if ((k->k.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0) {
            free(k);
            k = NULL;
        }
        fresh = k != NULL;
    }
    if (k)
        lend(c, k);
    pthread_mutex_unlock(&c->pool_lock);
    if (!fresh)
        return k;
    /* connect and Hello outside the lock; K keeps the descriptor meanwhile */
    rldi_conn made;
    int r = rldi_conn_open_fd(k->k.fd, c->paths.socket_path, "librld", CONNECT_TIMEOUT_MS,
                              &made, NULL, 0);
    pthread_mutex_lock(&c->pool_lock);
    if (r == 0) {
        made.fd = k->k.fd;              /* the same, or -1 if a fork's handler closed it */
        k->k = made;
    } else {
        unlend(c, k);
        forget(&k->k);
        c->daemon_down_until = rldi_mono_ns() + DOWN_BACKOFF_NS;
    }
    pthread_mutex_unlock(&c->pool_lock);
    if (r == 0)
        return k;
    free(k);
    return NULL;
}

/* Back to the pool (or closed) after a wait; DROP: closed, the daemon failed us (waits
 * degrade without trying it for a while). */
static void pool_put(rld_client *c, rldc_conn *k, unsigned forks, bool drop)
{
    pthread_mutex_lock(&c->pool_lock);
    unlend(c, k);
    pool_after_fork(c);
    c->daemon_down_until = drop ? rldi_mono_ns() + DOWN_BACKOFF_NS : 0;
    if (!drop && c->npool < RLDC_POOL && forks == c->pool_forks) {
        c->pool[c->npool++] = k;
        k = NULL;
    } else {
        forget(&k->k);
    }
    pthread_mutex_unlock(&c->pool_lock);
    free(k);
}

struct rldc_conn *rldc_pool_borrow(rld_client *c, unsigned *forks, rldi_conn **k)
{
    rldc_conn *x = pool_get(c, forks);
    *k = x ? &x->k : NULL;
    return x;
}

void rldc_pool_return(rld_client *c, struct rldc_conn *x, unsigned forks, bool drop)
{
    pool_put(c, x, forks, drop);
}

void rldc_pool_close(rld_client *c)
{
    for (int i = 0; i < c->npool; i++) {
        forget(&c->pool[i]->k);
        free(c->pool[i]);
    }
    c->npool = 0;
}

/* ---- shared with async.c --------------------------------------------------------------- */

int rldc_wait_charges(rld_client *c, const rld_charge *ch, size_t n, rld_charge *out,
                      size_t *m, uint8_t *map)
{
    *m = 0;
    for (size_t i = 0; i < n; i++) {
        rld_limit lim;
        int r = rldc_resolve(c, ch[i].limit, &lim);
        if (r < 0)
            return r;
        if (r == 1)
            continue;                   /* admits: nothing to queue for */
        out[*m] = (rld_charge){ lim, ch[i].cost };
        map[*m] = (uint8_t)i;
        (*m)++;
    }
    return 0;
}

void rldc_wait_request(Rld__V1__Wait *w, Rld__V1__Charge *charges, Rld__V1__Charge **ptrs,
                       const rld_charge *ch, size_t n, int64_t timeout_ns, int priority)
{
    rld__v1__wait__init(w);
    w->timeout_ns = timeout_ns;
    w->priority = priority;
    if (n == 1) {                       /* the form every daemon understands */
        w->slot = ch[0].limit.slot;
        w->gen = ch[0].limit.gen;
        w->cost = ch[0].cost;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        rld__v1__charge__init(&charges[i]);
        charges[i].slot = ch[i].limit.slot;
        charges[i].gen = ch[i].limit.gen;
        charges[i].cost = ch[i].cost;
        ptrs[i] = &charges[i];
    }
    w->n_charges = n;
    w->charges = ptrs;
}

void rldc_wait_result(rld_result *res, const Rld__V1__WaitReply *w, const uint8_t *map, size_t m,
                      uint32_t *windows)
{
    bool said = w && w->n_windows == m;
    if (windows)
        for (size_t j = 0; j < m; j++)
            windows[j] = said ? w->windows[j] : 0;
    if (!res)
        return;
    memset(res, 0, sizeof(*res));
    if (!w)
        return;
    if (said && w->index < m)
        res->window = w->windows[w->index];
    res->limit = w->limit;
    res->remaining = w->remaining;
    res->retry_after_ns = w->retry_after_ns;
    res->reset_after_ns = w->reset_after_ns;
    res->queue_position = w->queue_position;
    res->index = w->index < m ? map[w->index] : 0;
}

/* Give back every charge, counted as K at once (the callers may hold the wait lock, so
 * nothing here may take the registry's: no rld_refund, which counts in batches). A window
 * limit's tokens go to WINDOWS[i] (NULL: the window of this thread's last take of it, as
 * rld_refund's). */
static void give_back(rld_client *c, const rld_charge *ch, size_t n, const uint32_t *windows,
                      enum rldc_counter k)
{
    rldi_u128 now = rldi_now_fp();
    const rldi_win_take_rec *w = &rldi_win_last;
    while (n-- > 0) {
        rld_limit lim = ch[n].limit;
        uint32_t slot, window = windows ? windows[n]
                                : w->seg == rldc_seg(c)->base && w->slot == lim.slot &&
                                  w->gen == lim.gen ? w->window : 0;
        if (rldc_give_back(c, lim, ch[n].cost, window, now, &slot) == 0)
            rldc_count_now(c, slot, k, ch[n].cost);
    }
}

void rldc_refund_all(rld_client *c, const rld_charge *ch, size_t n, const uint32_t *windows)
{
    give_back(c, ch, n, windows, RLDC_REFUNDED);
}

int rldc_reserve_multi(rld_client *c, const rld_charge *ch, size_t n, uint64_t deadline_ns,
                       rld_result *res, uint64_t *wait_ns, uint32_t *windows)
{
    uint32_t taken[RLD_MULTI_MAX];
    rldi_u128 now = rldi_now_fp();
    uint64_t longest = 0;
    rld_result best = { 0 };
    size_t i;
    int r = 0;
    *wait_ns = 0;
    for (i = 0; i < n; i++) {
        rldi_verdict vd;
        uint64_t w;
        rldi_handle h = { ch[i].limit.slot, ch[i].limit.gen };
        r = rldi_bucket_reserve(rldc_seg(c), h, ch[i].cost, deadline_ns, now, &vd, &w);
        taken[i] = r == 0 ? vd.window : 0;
        if (r == -EINPROGRESS) {
            /* a window cannot be booked ahead: none of the set now, all of it again later */
            give_back(c, ch, i, taken, RLDC_ROLLED_BACK);
            *wait_ns = w;
            if (res) {
                rldc_result(res, &vd);
                res->flags |= RLD_F_DEGRADED;
                res->index = (uint32_t)i;
            }
            return r;
        }
        if (r < 0) {
            if (res) {
                memset(res, 0, sizeof(*res));
                if (r == -ETIMEDOUT) {
                    rldc_result(res, &vd);
                    res->flags |= RLD_F_DEGRADED;
                }
                res->index = (uint32_t)i;
            }
            break;
        }
        if (i == 0 || w > longest) {
            longest = w;
            rldc_result(&best, &vd);
            if (!(vd.flags & RLDI_V_UNLIMITED))
                best.flags |= RLD_F_DEGRADED;
            best.index = (uint32_t)i;
        }
    }
    if (r < 0) {
        give_back(c, ch, i, taken, RLDC_ROLLED_BACK);    /* never admitted */
        return r;
    }
    if (windows)
        memcpy(windows, taken, n * sizeof(*taken));
    /* counted at once (no batching): this may run under the async lock (see counters.c) */
    for (i = 0; i < n; i++)
        rldc_count_now(c, ch[i].limit.slot, RLDC_ADMITTED, ch[i].cost);
    *wait_ns = longest;
    if (res)
        *res = best;
    return 0;
}

/* ---- the blocking wait -------------------------------------------------------------------- */

/* Ask the daemon. Returns the wait's outcome, 1 when the daemon failed us (degrade), or 2
 * when it does not take sets (degrade this wait; the connection is fine). */
static int ask_daemon(rld_client *c, rldi_conn *k, const rld_charge *ch, size_t n,
                      const uint8_t *map, int64_t timeout_ns, int priority, rld_result *res)
{
    Rld__V1__Charge charges[RLDC_WAIT_MAX_CHARGES], *ptrs[RLDC_WAIT_MAX_CHARGES];
    Rld__V1__Wait w;
    if (n > 1 && !(k->features & RLD__V1__FEATURE__FEATURE_MULTI_WAIT))
        return 2;                       /* an older daemon: no sets */
    rldc_wait_request(&w, charges, ptrs, ch, n, timeout_ns, priority);
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
            if (rldi_seg_daemon_stale(rldc_seg(c), rldi_mono_ns()) ||
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
        uint32_t wins[RLDC_WAIT_MAX_CHARGES];
        rldc_wait_result(res, rep->body_case == RLD__V1__REPLY__BODY_WAIT ? rep->wait : NULL,
                         map, n, wins);
        rld__v1__reply__free_unpacked(rep, NULL);
        if (code == 0 && n == 1 && wins[0])     /* rld_refund knows this thread's take */
            rldi_win_last = (rldi_win_take_rec){ rldc_seg(c)->base, ch[0].limit.slot, ch[0].limit.gen,
                                                 wins[0] };
        if (code == -ESHUTDOWN)
            return 1;
        return code;
    }
}

int rld_wait_multi(rld_client *c, const rld_charge *ch, size_t n, int64_t timeout_ns,
                   const rld_wait_opts *opts, rld_result *res)
{
    rld_wait_opts def = { 0, 0 };
    if (!opts)
        opts = &def;
    if (!c || !ch || n == 0 || n > RLD_MULTI_MAX || opts->priority < 0 ||
        opts->priority > RLD_PRIORITY_MAX || (opts->flags & ~RLD_WAIT_BARGE))
        return -EINVAL;
    uint64_t start = rldi_mono_ns();
    rld_result local;
    int r = rldc_try_multi(c, ch, n, (opts->flags & RLD_WAIT_BARGE) ? RLDI_TAKE_BARGE : 0, &local,
                           NULL);
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
    /* What to queue for: handles that admit (fail-open, missing names) need no place. */
    rld_charge q[RLDC_WAIT_MAX_CHARGES];
    uint8_t map[RLDC_WAIT_MAX_CHARGES];
    size_t m;
    if ((r = rldc_wait_charges(c, ch, n, q, &m, map)) < 0)
        return r;
    if (m == 0) {
        if (res)
            rldc_result_open(res);
        return 0;
    }
    unsigned forks;
    rldc_conn *k = pool_get(c, &forks);
    if (k) {
        r = ask_daemon(c, &k->k, q, m, map, timeout_ns, opts->priority, res);
        pool_put(c, k, forks, r == 1);
        if (r != 1 && r != 2)
            return r;
    }
    /* Degraded: no daemon to queue at. Reserve and sleep, within what is left of the timeout. */
    uint64_t deadline = timeout_ns >= 0 ? start + (uint64_t)timeout_ns : 0;
    if (deadline == 0 && timeout_ns >= 0)
        deadline = 1;
    uint64_t wait_ns;
    while ((r = rldc_reserve_multi(c, q, m, deadline, res, &wait_ns, NULL)) == -EINPROGRESS) {
        struct timespec ts = { (time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (r == 0 && wait_ns) {
        struct timespec ts = { (time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    if (res)                    /* the reservation's index is into Q: the caller's is MAP's */
        res->index = res->index < m ? map[res->index] : 0;
    return r;
}

int rld_wait_ex(rld_client *c, rld_limit lim, uint64_t cost, int64_t timeout_ns,
                const rld_wait_opts *opts, rld_result *res)
{
    rld_charge ch = { lim, cost };
    return rld_wait_multi(c, &ch, 1, timeout_ns, opts, res);
}

int rld_wait(rld_client *c, rld_limit lim, uint64_t cost, int64_t timeout_ns, rld_result *res)
{
    return rld_wait_ex(c, lim, cost, timeout_ns, NULL, res);
}
