/*
 * client.c - librld: attach an instance, find limits and take tokens on the shared-memory
 * fast path. Admission itself lives in common/bucket.h (shared with the daemon); this file
 * checks arguments, picks the clock (precise or coarse), counts, and fills rld_result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "cell.h"
#include "client.h"
#include "clock.h"
#include "codes.h"
#include "rate.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline rldi_handle handle(rld_limit lim)
{
    return (rldi_handle){ lim.slot, lim.gen };
}

static inline void result_fill(rld_result *res, const rldi_verdict *vd)
{
    res->limit = vd->limit;
    res->remaining = vd->remaining;
    res->retry_after_ns = vd->retry_after_ns;
    res->reset_after_ns = vd->reset_after_ns;
    res->queue_position = vd->waiters;
    res->flags = vd->flags;
    res->index = 0;
    res->window = vd->window;
}

void rldc_result(rld_result *res, const rldi_verdict *vd)
{
    if (res)
        result_fill(res, vd);
}

int rld_open(const char *instance, unsigned flags, rld_client **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (flags & ~(RLD_OPEN_FAIL_OPEN | RLD_OPEN_MISSING_ADMIT))
        return -EINVAL;
    rldc_atfork_once();
    rld_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->flags = flags;
    int r = rldi_paths_find(instance, &c->paths);
    if (r == -EINVAL || r == -ENAMETOOLONG) {
        free(c);
        return -EINVAL;
    }
    rldi_seg seg;
    if (r == 0 && (r = rldi_seg_open(c->paths.seg_path, &seg)) == 0)
        c->seg = seg;
    if ((r = rldc_open_segment(c, r)) < 0) {
        free(c);
        return r;
    }
    pthread_mutex_init(&c->pool_lock, NULL);
    pthread_mutex_init(&c->names_lock, NULL);
    c->pool_forks = rldc_forks;
    /* The coarse path needs a coarse clock with a tick of at most 10 ms (HZ >= 100); it can
     * be turned off with RLD_NO_COARSE=1 (to compare, or on a kernel one does not trust). */
    struct timespec res;
    const char *off = getenv("RLD_NO_COARSE");
    if (!(off && *off && *off != '0') && clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 &&
        res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 10000000)
        c->coarse_margin = rldi_fp_from_ns(4 * (uint64_t)res.tv_nsec);
    rldc_register(c);
    *out = c;
    return 0;
}

void rld_close(rld_client *c)
{
    if (!c)
        return;
    rldc_unregister(c);
    rldc_async_free(c);
    rldc_pool_close(c);
    rldc_names_free(c);
    pthread_mutex_destroy(&c->pool_lock);
    pthread_mutex_destroy(&c->names_lock);
    rldi_seg_close(&c->seg);
    free(c);
}

int rld_find(rld_client *c, const char *name, rld_limit *out)
{
    const char *why;
    if (!c || !name || !out)
        return -EINVAL;
    int r = rldi_name_check(name, &why);
    if (r < 0)
        return -EINVAL;
    if (!rldc_attached(c))
        rldc_maybe_attach(c);
    if (!rldc_attached(c))
        return rldc_find_pending(c, name, out);     /* fail-open: admits until attached */
    uint32_t slot, gen;
    if ((r = rldi_seg_lookup(&c->seg, name, &slot, &gen)) == 0 &&
        rldi_load_relaxed(&c->seg.meta[slot].kind) != RLDI_KIND_LIMIT)
        r = -ENOENT;                    /* a template: rld_find_template */
    if (r < 0)
        return r == -ENOENT && (c->flags & RLD_OPEN_MISSING_ADMIT)
                   ? rldc_find_pending(c, name, out) : r;
    out->slot = slot;
    out->gen = gen;
    return 0;
}


int rld_next(rld_client *c, uint32_t *cursor, rld_limit *out)
{
    if (!c || !cursor || !out)
        return -EINVAL;
    if (!rldc_attached(c))
        return -ENOENT;
    uint32_t slot, gen;
    int r = rldi_seg_next(&c->seg, cursor, &slot, &gen);
    if (r == 0) {
        out->slot = slot;
        out->gen = gen;
    }
    return r;
}

int rld_instance_info(rld_client *c, rld_instance *out)
{
    if (!c || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", c->paths.instance);
    if (!rldc_attached(c))
        rldc_maybe_attach(c);
    if (!rldc_attached(c))
        return 0;                       /* fail-open, no instance yet: nothing to show */
    const rldi_shm_header *h = c->seg.hdr;
    out->max_limits = c->seg.slot_count;
    out->limits = (uint32_t)rldi_load_relaxed(&h->limit_count);
    out->segment_bytes = c->seg.size;
    out->daemon_pid = rldi_load_relaxed(&h->daemon_pid);
    out->keeper_pid = rldi_load_relaxed(&h->keeper_pid);
    uint64_t beat = rldi_load_relaxed(&h->heartbeat_ns), now = rldi_mono_ns();
    out->heartbeat_age_ns = now > beat ? now - beat : 0;
    out->daemon_alive = out->daemon_pid != 0 && !rldi_seg_daemon_stale(&c->seg, now);
    out->config_gen = rldi_load_relaxed(&h->config_gen);
    return 0;
}

/* Count the outcome R of a take of COST (batched per thread, see client.h). */
static inline void count(rld_client *c, uint32_t slot, int r, uint64_t cost, uint64_t now_ns)
{
    if (r == 0)
        rldc_count(c, slot, cost, 0, now_ns);
    else if (r == -EAGAIN)
        rldc_count(c, slot, 0, 1, now_ns);
}

static int take(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res, rldi_u128 now,
                unsigned flags);

/*
 * A take refused with -EINVAL: a handle outside the segment. That is where pending handles
 * (fail-open, missing names: RLDC_PENDING_BIT) land, at no cost to the others: resolved, they
 * take from their limit; unresolved, they admit with RLD_F_DEGRADED.
 */
static __attribute__((noinline, cold)) int take_pending(rld_client *c, rld_limit lim,
                                                        uint64_t cost, rld_result *res,
                                                        rldi_u128 now, unsigned flags)
{
    if (!(lim.slot & RLDC_PENDING_BIT))
        return -EINVAL;
    rld_limit real;
    int r = rldc_resolve(c, lim, &real);
    if (r == 1) {
        if (res)
            rldc_result_open(res);
        return 0;
    }
    if (r < 0)
        return r;
    r = take(c, real, cost, res, now, flags);
    if (r == -ESTALE) {
        rldc_unresolve(c, lim);         /* deleted: looked up again, admitting meanwhile */
        if (c->flags & RLD_OPEN_MISSING_ADMIT) {
            if (res)
                rldc_result_open(res);
            return 0;
        }
    }
    return r;
}

/* The precise path at NOW: admission in bucket.h, counted, result filled. */
static inline int take(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res,
                       rldi_u128 now, unsigned flags)
{
    rldi_verdict vd;
    int r = flags ? rldi_bucket_take(&c->seg, handle(lim), cost, now, flags, res ? &vd : NULL)
                  : rldi_bucket_take_fast(&c->seg, handle(lim), cost, now, res ? &vd : NULL);
    if (unlikely(r == -EINVAL))
        return take_pending(c, lim, cost, res, now, flags);
    count(c, lim.slot, r, cost, rldi_fp_to_ns(now));
    if (res && (r == 0 || r == -EAGAIN))
        result_fill(res, &vd);
    return r;
}

/* Per thread: the coarse path's floor and back-off (see rldi_bucket_take_coarse). */
static __thread rldi_coarse coarse __attribute__((tls_model("initial-exec")));

int rld_try(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res)
{
    if (unlikely(!c))
        return -EINVAL;
    if (c->coarse_margin) {
        rldi_verdict vd;
        uint64_t now_ns;
        int r = rldi_bucket_take_coarse(&c->seg, handle(lim), cost, c->coarse_margin,
                                        res != NULL, &coarse, res ? &vd : NULL, &now_ns);
        if (r != RLDI_TAKE_PRECISE) {
            count(c, lim.slot, r, cost, now_ns);
            if (res && r == 0)
                result_fill(res, &vd);
            return r;
        }
        rldi_u128 now = rldi_now_fp();
        /* the precise time less a tick is never after the coarse clock */
        coarse.floor_ns = rldi_fp_to_ns(now) - (uint64_t)(c->coarse_margin >> 34);
        return take(c, lim, cost, res, now, 0);
    }
    return take(c, lim, cost, res, rldi_now_fp(), 0);
}

int rld_try_ex(rld_client *c, rld_limit lim, uint64_t cost, unsigned flags, rld_result *res)
{
    if (!c || (flags & ~RLD_TRY_BARGE))
        return -EINVAL;
    return take(c, lim, cost, res, rldi_now_fp(), (flags & RLD_TRY_BARGE) ? RLDI_TAKE_BARGE : 0);
}

/* ---- keyed limits ------------------------------------------------------------------------ */

int rld_find_template(rld_client *c, const char *name, rld_template *out)
{
    const char *why;
    if (!c || !name || !out || rldi_name_check(name, &why) < 0)
        return -EINVAL;
    if (!rldc_attached(c))
        rldc_maybe_attach(c);
    if (!rldc_attached(c))
        return -ENOENT;
    uint32_t slot, gen;
    int r = rldi_seg_lookup(&c->seg, name, &slot, &gen);
    if (r < 0)
        return r;
    rldi_table t;
    if ((r = rldi_table_of(&c->seg, slot, gen, &t)) < 0)
        return r == -EINVAL ? -ENOENT : r;     /* a [limit] of that name */
    out->slot = slot;
    out->gen = gen;
    return 0;
}

/* The entry of KEY in template T, created if need be. */
static int key_get(rld_client *c, rld_template t, const void *key, size_t keylen,
                   rldi_table *tb, uint32_t *idx, uint32_t *gen, rldi_u128 now)
{
    if (!c || (!key && keylen) || keylen == 0 || keylen > RLDI_KEY_MAX)
        return -EINVAL;
    if (!rldc_attached(c))
        return -ESTALE;
    int r = rldi_table_of(&c->seg, t.slot, t.gen, tb);
    if (r < 0)
        return r;
    bool created;
    return rldi_key_get(&c->seg, tb, key, keylen, 0, false, now, idx, gen, &created);
}

int rld_key(rld_client *c, rld_template t, const void *key, size_t keylen, rld_limit *out)
{
    if (!out)
        return -EINVAL;
    rldi_table tb;
    uint32_t idx, gen;
    int r = key_get(c, t, key, keylen, &tb, &idx, &gen, rldi_now_fp());
    if (r < 0)
        return r;
    out->slot = c->seg.slot_count + tb.entry_base + idx;
    out->gen = gen;
    return 0;
}

int rld_try_key(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t cost,
                rld_result *res)
{
    rldi_u128 now = rldi_now_fp();
    for (int attempt = 0;; attempt++) {
        rldi_table tb;
        uint32_t idx, gen;
        int r = key_get(c, t, key, keylen, &tb, &idx, &gen, now);
        if (r == -ENOSPC && (tb.flags & RLDI_TMPL_OVERFLOW_ALLOW)) {
            if (res) {
                rldc_result_open(res);
                res->flags = RLD_F_OVERFLOW;
            }
            return 0;
        }
        if (r < 0)
            return r;
        rldi_cell cell;
        rldi_verdict vd;
        rldi_cell_of_key(&c->seg, &tb, idx, gen, &cell);
        r = rldi_bucket_take_cell(&c->seg, &cell, cost, now, 0, res ? &vd : NULL);
        if (r == -ESTALE && attempt < 3)
            continue;               /* reclaimed between the lookup and the take: again */
        count(c, tb.slot, r, cost, rldi_fp_to_ns(now));
        if (res && (r == 0 || r == -EAGAIN))
            result_fill(res, &vd);
        return r;
    }
}

/* The limit behind a pending handle for the calls that change or read it: 0 with *LIM
 * replaced, 1 when it admits (nothing to change), or a code. */
static int pending(rld_client *c, rld_limit *lim)
{
    if (likely(!(lim->slot & RLDC_PENDING_BIT)))
        return 0;
    return rldc_resolve(c, *lim, lim);
}

int rld_refund_ex(rld_client *c, rld_limit lim, uint64_t amount, uint32_t window)
{
    if (!c)
        return -EINVAL;
    int p = pending(c, &lim);
    if (p != 0)
        return p > 0 ? 0 : p;
    return rldi_bucket_refund(&c->seg, handle(lim), amount, window, rldi_now_fp());
}

int rld_refund(rld_client *c, rld_limit lim, uint64_t amount)
{
    /* a window limit's tokens go back to the window of this thread's last take of it */
    const rldi_win_take_rec *w = &rldi_win_last;
    uint32_t window = c && w->seg == c->seg.base && w->slot == lim.slot && w->gen == lim.gen
                          ? w->window : 0;
    return rld_refund_ex(c, lim, amount, window);
}

int rld_debit(rld_client *c, rld_limit lim, uint64_t amount)
{
    if (!c)
        return -EINVAL;
    int p = pending(c, &lim);
    if (p != 0)
        return p > 0 ? 0 : p;
    rldi_u128 now = rldi_now_fp();
    int r = rldi_bucket_debit(&c->seg, handle(lim), amount, now);
    if (r == 0)
        rldc_count(c, lim.slot, amount, 0, rldi_fp_to_ns(now));
    return r;
}

int rld_peek(rld_client *c, rld_limit lim, rld_result *res)
{
    if (!c)
        return -EINVAL;
    int p = pending(c, &lim);
    if (p != 0) {
        if (p > 0 && res)
            rldc_result_open(res);
        return p > 0 ? 0 : p;
    }
    rldi_verdict vd;
    int r = rldi_bucket_peek(&c->seg, handle(lim), rldi_now_fp(), &vd);
    if (r == 0 && res)
        result_fill(res, &vd);
    return r;
}

/*
 * A limit named more than once in CH whose summed cost exceeds its burst: the set can never
 * fit (each take alone may). The index of that limit's first charge, or -1. Called on the
 * denial path only, so that rld_try_multi, the waits and their degraded reservations all
 * say -E2BIG for it, as the daemon does.
 */
static int set_too_big(rld_client *c, const rld_charge *ch, size_t n, rldi_u128 now)
{
    rld_limit lim[RLD_MULTI_MAX];
    bool real[RLD_MULTI_MAX];
    for (size_t i = 0; i < n; i++) {
        lim[i] = ch[i].limit;
        real[i] = pending(c, &lim[i]) == 0;     /* admitting handles take nothing */
    }
    for (size_t i = 0; i + 1 < n; i++) {
        size_t j;
        for (j = 0; j < i && !(real[j] && lim[j].slot == lim[i].slot && lim[j].gen == lim[i].gen); j++)
            ;
        if (!real[i] || j < i)
            continue;                   /* admits, or counted with its first charge */
        uint64_t sum = ch[i].cost;
        bool twice = false;
        for (j = i + 1; j < n; j++)
            if (real[j] && lim[j].slot == lim[i].slot && lim[j].gen == lim[i].gen) {
                twice = true;
                if (__builtin_add_overflow(sum, ch[j].cost, &sum))
                    sum = UINT64_MAX;
            }
        rldi_verdict vd;
        if (twice && rldi_bucket_peek(&c->seg, handle(lim[i]), now, &vd) == 0 &&
            !(vd.flags & RLDI_V_UNLIMITED) && sum > vd.limit)
            return (int)i;
    }
    return -1;
}

int rld_try_multi(rld_client *c, const rld_charge *ch, size_t n, rld_result *res)
{
    return rldc_try_multi(c, ch, n, 0, res, NULL);
}

int rldc_try_multi(rld_client *c, const rld_charge *ch, size_t n, unsigned flags,
                   rld_result *res, uint32_t *windows_out)
{
    if (!c || !ch || n == 0 || n > RLD_MULTI_MAX)
        return -EINVAL;
    rldi_u128 now = rldi_now_fp();
    rld_result one = { 0 }, best = { 0 };
    size_t i;
    int r = 0;
    uint32_t windows[RLD_MULTI_MAX];
    for (i = 0; i < n; i++) {
        r = take(c, ch[i].limit, ch[i].cost, &one, now, flags);
        if (r < 0)
            break;
        windows[i] = one.window;
        /* the tightest: least remaining relative to its burst (128-bit cross products) */
        if (i == 0 || (unsigned __int128)one.remaining * best.limit <
                          (unsigned __int128)best.remaining * one.limit) {
            best = one;
            best.index = (uint32_t)i;
        }
    }
    if (r == 0) {
        if (res)
            *res = best;
        if (windows_out)
            memcpy(windows_out, windows, n * sizeof(*windows));
        return 0;
    }
    /* Roll back, newest first. A refund of exactly what was taken restores the state
     * unless the bucket refilled meanwhile, in which case it is full either way (a window
     * gets its tokens back while the window they were taken in is current). */
    size_t failed = i;
    while (i-- > 0)
        rld_refund_ex(c, ch[i].limit, ch[i].cost, windows[i]);
    if (r != -EAGAIN) {
        if (res) {
            memset(res, 0, sizeof(*res));
            res->index = (uint32_t)failed;
        }
        return r;
    }
    int big = n > 1 ? set_too_big(c, ch, n, now) : -1;
    if (big >= 0) {
        if (res) {
            memset(res, 0, sizeof(*res));
            res->index = (uint32_t)big;
        }
        return -E2BIG;
    }
    /* Report the longest wait among the denying charge and those after it. */
    best = one;
    best.index = (uint32_t)failed;
    for (i = failed + 1; i < n; i++) {
        rldi_verdict vd;
        rld_limit lim = ch[i].limit;
        if (pending(c, &lim) != 0)
            continue;                   /* admits, or its error is reported when reached */
        int pr = rldi_bucket_probe(&c->seg, handle(lim), ch[i].cost, now, flags, &vd);
        if (pr == -E2BIG || pr == -ESTALE || pr == -EINVAL) {
            if (res) {
                memset(res, 0, sizeof(*res));
                res->index = (uint32_t)i;
            }
            return pr;
        }
        if (pr == -EAGAIN && vd.retry_after_ns > best.retry_after_ns) {
            result_fill(&best, &vd);
            best.index = (uint32_t)i;
        }
    }
    if (res)
        *res = best;
    return -EAGAIN;
}

int rld_info(rld_client *c, rld_limit lim, rld_limit_info *out)
{
    if (!c || !out)
        return -EINVAL;
    int p = pending(c, &lim);
    if (p != 0)
        return p > 0 ? -ENOENT : p;     /* no limit behind it (yet) */
    uint32_t slot = lim.slot, kind = RLD_KIND_LIMIT;
    rldi_table tb;
    uint32_t waiters = 0, max_keys = 0;
    uint64_t keys = 0;
    if (slot >= c->seg.slot_count) {    /* a key: its template's, and its own waiters */
        uint32_t idx;
        int r = rldi_table_of_entry(&c->seg, slot, &tb, &idx);
        if (r < 0)
            return r;
        const rldi_key_entry *e = &tb.entries[idx];
        if (rldi_load_relaxed(&e->gen) != lim.gen || !(lim.gen & 1))
            return -ESTALE;
        waiters = rldi_load_relaxed(&e->waiters);
        slot = tb.slot;
        lim.gen = tb.gen;
        kind = RLD_KIND_KEY;
    }
    rldi_slot *s = rldi_slot_of(&c->seg, (rldi_handle){ slot, lim.gen });
    if (!s)
        return -EINVAL;
    const rldi_meta *m = &c->seg.meta[slot];
    if (rldi_load_relaxed(&m->kind) == RLDI_KIND_TEMPLATE) {
        if (rldi_table_of(&c->seg, slot, lim.gen, &tb) < 0)
            return -ESTALE;
        max_keys = rldi_load_relaxed(&tb.rec->max_keys);
        keys = rldi_load_relaxed(&tb.rec->live);
        if (kind == RLD_KIND_LIMIT)
            kind = RLD_KIND_TEMPLATE;
    }
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint64_t seq = rldi_load_acquire(&c->seg.hdr->index_seq);
        if (seq & 1) {
            rldi_cpu_relax();
            continue;
        }
        if (rldi_seg_name(&c->seg, slot, out->name) < 0 ||
            rldi_load_relaxed(&s->gen) != lim.gen)
            return -ESTALE;
        out->rate_count = rldi_load_relaxed(&m->rate_count);
        out->rate_period_ns = rldi_load_relaxed(&m->rate_period_ns);
        out->burst = rldi_load_relaxed(&m->burst);
        out->algorithm = rldi_load_relaxed(&m->algo);
        out->align_ns = rldi_load_relaxed(&m->align_ns);
        rldi_fence_acquire();
        if (rldi_load_relaxed(&c->seg.hdr->index_seq) != seq)
            continue;
        out->admitted = rldi_load_relaxed(&s->admitted);
        out->denied = rldi_load_relaxed(&s->denied);
        out->waiters = kind == RLD_KIND_LIMIT ? rldi_load_relaxed(&s->waiters) : waiters;
        if (rldi_load_relaxed(&m->kind) == RLDI_KIND_BREAKER) {
            kind = RLD_KIND_BREAKER;
            out->waiters = 0;
        }
        out->kind = kind;
        out->mode = rldi_load_relaxed(&s->flags) & RLDI_SLOT_SHADOW ? RLD_MODE_SHADOW
                                                                   : RLD_MODE_ENFORCE;
        out->concurrency = rldi_load_relaxed(&m->concurrency);
        out->shadowed = rldi_load_relaxed(&s->shadowed);
        out->max_keys = max_keys;
        out->keys = keys;
        return 0;
    }
    return -EAGAIN;
}

const char *rld_strerror(int err)
{
    return rldi_strerror(err);
}

int rld_version(void)
{
    return RLD_VERSION_MAJOR * 10000 + RLD_VERSION_MINOR * 100 + RLD_VERSION_PATCH;
}
