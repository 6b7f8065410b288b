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
#include "limitstat.h"
#include "rldc_tools.h"
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
    c->segp = &c->seg0;
    if (r == 0)
        r = rldi_seg_open(c->paths.seg_path, &c->seg0.seg);
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
        c->coarse_margin_ns = 4 * (uint64_t)res.tv_nsec;
    /* rldi_bucket_take_fast's inline outcome: at most the margin (an admission that leaves
     * the bucket busy sets the coarse hint, out of line) and RLDI_POOL_T_NS (a pool's times
     * are scaled out of line) */
    c->fast_full_ns = c->coarse_margin_ns ? c->coarse_margin_ns : RLDI_POOL_T_NS;
    if (c->fast_full_ns > RLDI_POOL_T_NS)
        c->fast_full_ns = RLDI_POOL_T_NS;
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
    for (rldc_segment *s = c->segp; s;) {       /* the current one and every one it replaced */
        rldc_segment *older = s->older;
        rldi_seg_close(&s->seg);
        if (s != &c->seg0)
            free(s);
        s = older;
    }
    free(c);
}

int rldc_find_kind(rld_client *c, const char *name, uint32_t kind, rld_limit *out)
{
    const char *why;
    if (!c || !name || !out || rldi_name_check(name, &why) < 0)
        return -EINVAL;
    if (!rldc_attached(c))
        rldc_maybe_attach(c);
    if (!rldc_attached(c))
        return rldc_find_pending(c, name, kind, out);   /* fail-open: admits until attached */
    uint32_t slot, gen;
    int r;
    for (int again = 0;; again = 1) {
        rldi_seg *s = rldc_seg(c);
        if ((r = rldi_seg_lookup(s, name, &slot, &gen)) == 0 &&
            rldi_load_relaxed(&s->meta[slot].kind) != kind)
            r = -ENOENT;                /* another kind's name (rld_find_template, ...) */
        if (r != -ENOENT || again || rldc_follow(c) != 1)
            break;                      /* (one made in a grown segment: look there) */
    }
    if (r < 0)
        return r == -ENOENT && (c->flags & RLD_OPEN_MISSING_ADMIT)
                   ? rldc_find_pending(c, name, kind, out) : r;
    out->slot = slot;
    out->gen = gen;
    return 0;
}

int rld_find(rld_client *c, const char *name, rld_limit *out)
{
    return rldc_find_kind(c, name, RLDI_KIND_LIMIT, out);
}


int rld_next(rld_client *c, uint32_t *cursor, rld_limit *out)
{
    if (!c || !cursor || !out)
        return -EINVAL;
    if (!rldc_attached(c))
        return -ENOENT;
    if (*cursor == 0)
        rldc_follow(c);                 /* an enumeration starts on the current segment */
    uint32_t slot, gen;
    int r = rldi_seg_next(rldc_seg(c), cursor, &slot, &gen);
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
    rldc_follow(c);                     /* a grown segment: describe the new one */
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", c->paths.instance);
    if (!rldc_attached(c))
        rldc_maybe_attach(c);
    if (!rldc_attached(c))
        return 0;                       /* fail-open, no instance yet: nothing to show */
    const rldi_shm_header *h = rldc_seg(c)->hdr;
    out->max_limits = rldc_seg(c)->slot_count;
    out->limits = (uint32_t)rldi_load_relaxed(&h->limit_count);
    out->segment_bytes = rldc_seg(c)->size;
    out->daemon_pid = rldi_load_relaxed(&h->daemon_pid);
    out->keeper_pid = rldi_load_relaxed(&h->keeper_pid);
    uint64_t beat = rldi_load_relaxed(&h->heartbeat_ns), now = rldi_mono_ns();
    out->heartbeat_age_ns = now > beat ? now - beat : 0;
    out->daemon_alive = out->daemon_pid != 0 && !rldi_seg_daemon_stale(rldc_seg(c), now);
    out->config_gen = rldi_load_relaxed(&h->config_gen);
    return 0;
}

/* Count the outcome R of a take of COST (batched per thread, see client.h). DEFER: an
 * admission is counted by the caller (all-or-nothing calls count once all are taken). */
static inline void count(rld_client *c, uint32_t slot, int r, uint64_t cost, uint64_t now_ns,
                         bool defer)
{
    if (r == 0 && !defer)
        rldc_count(c, slot, RLDC_ADMITTED, cost, now_ns);
    else if (r == -EAGAIN)
        rldc_count(c, slot, RLDC_DENIED, 1, now_ns);
}

static int take(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res, rldi_u128 now,
                unsigned flags, bool defer);

/*
 * A take refused with -EINVAL: a handle outside the segment. That is where pending handles
 * (fail-open, missing names: RLDC_PENDING_BIT) land, at no cost to the others: resolved, they
 * take from their limit; unresolved, they admit with RLD_F_DEGRADED.
 */
static __attribute__((noinline, cold)) int take_pending(rld_client *c, rld_limit lim,
                                                        uint64_t cost, rld_result *res,
                                                        rldi_u128 now, unsigned flags,
                                                        bool defer)
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
    r = take(c, real, cost, res, now, flags, defer);
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

/* rldi_bucket_take without flags on segment S: the fast path's inline part and, for what it
 * leaves, its out-of-line part (no coarse path: MARGIN 0), or rldi_bucket_take_any for a
 * handle beyond the segment's slots (a key's, or a pending one). */
static inline int take_noflags(const rldi_seg *s, rldi_handle h, uint64_t cost, rldi_u128 now,
                               rldi_verdict *v)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (unlikely(!sl || (uint32_t)now != 0))     /* (NOW in whole ns, as the clock gives) */
        return rldi_bucket_take(s, h, cost, now, 0, v);
    uint64_t reset, burst, now_ns = rldi_fp_to_ns(now);
    rldi_take_more m;
    int r = rldi_bucket_take_fast(sl, h, cost, now_ns, 0, &m, &reset, &burst);
    if (r == RLDI_TAKE_MORE)            /* always, with FULL_MAX_NS 0 */
        r = rldi_bucket_take_more(s, h, cost, now_ns, &m, 0, NULL, v);
    return r;
}

/* The end of a take whose admission code is R (verdict VD): a grown segment followed, a
 * pending handle resolved, the outcome counted (an admission not when DEFER), the result
 * filled. */
static int take_end(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res, rldi_u128 now,
                    unsigned flags, bool defer, int r, rldi_verdict *vd)
{
    if (unlikely(r == -ESTALE || r == -EINVAL) && rldc_follow(c) == 1)   /* a grown segment */
        r = rldi_bucket_take(rldc_seg(c), handle(lim), cost, now, flags, res ? vd : NULL);
    if (unlikely(r == -EINVAL))
        return take_pending(c, lim, cost, res, now, flags, defer);
    count(c, lim.slot, r, cost, rldi_fp_to_ns(now), defer);
    if (res && (r == 0 || r == -EAGAIN))
        result_fill(res, vd);
    return r;
}

/* The precise path at NOW: admission in bucket.h, counted (an admission not when DEFER),
 * result filled. */
static int take(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res, rldi_u128 now,
                unsigned flags, bool defer)
{
    rldi_verdict vd;
    int r = flags ? rldi_bucket_take(rldc_seg(c), handle(lim), cost, now, flags, res ? &vd : NULL)
                  : take_noflags(rldc_seg(c), handle(lim), cost, now, res ? &vd : NULL);
    return take_end(c, lim, cost, res, now, flags, defer, r, &vd);
}

/* rld_try when the inline path did not decide (RLDI_TAKE_MORE, *M): out of line. */
static __attribute__((noinline)) int try_more(rld_client *c, rldc_pending *p, const rldi_seg *s,
                                              rld_limit lim, uint64_t cost, rld_result *res,
                                              uint64_t now_ns, const rldi_take_more *m)
{
    rldi_verdict vd;
    int r = rldi_bucket_take_more(s, handle(lim), cost, now_ns, m, c->coarse_margin_ns,
                                  &p->coarse, res ? &vd : NULL);
    return take_end(c, lim, cost, res, rldi_fp_from_ns(now_ns), 0, false, r, &vd);
}

/* rld_try while this thread's coarse hint is set (see rldi_coarse): RLDI_TAKE_PRECISE when
 * the precise path must decide. */
static __attribute__((noinline)) int try_coarse(rld_client *c, rldc_pending *p, rld_limit lim,
                                                uint64_t cost, rld_result *res)
{
    rldi_verdict vd;
    uint64_t now_ns;
    int r = rldi_bucket_take_coarse(rldc_seg(c), handle(lim), cost, c->coarse_margin_ns,
                                    res != NULL, &p->coarse, res ? &vd : NULL, &now_ns);
    if (r != RLDI_TAKE_PRECISE) {
        count(c, lim.slot, r, cost, now_ns, false);
        if (res && r == 0)
            result_fill(res, &vd);
    }
    return r;
}

/*
 * rld_try. The common case (rldi_bucket_take_fast's RLDI_TAKE_FULL, on a limit whose counts
 * this thread is batching with no publication due) is counted and its result filled inline;
 * everything else goes out of line: to the coarse path while this thread's hint is set, to
 * take() for a handle beyond the segment's slots (keys, pending handles), to try_more for
 * every other outcome of the fast path. Before the clock read only what chooses the clock
 * (the coarse hint) and the slot; the rest after it, where it overlaps with the clock's own
 * arithmetic (the vDSO's rdtscp waits for every earlier instruction, not for later ones).
 */
int rld_try(rld_client *c, rld_limit lim, uint64_t cost, rld_result *res)
{
    if (unlikely(!c))
        return -EINVAL;
    rldc_pending *p = &rldc_tls;
    /* the block's address in a register, once: else GCC loads the TLS offset from the GOT
     * again after the CAS, a load that waits for it */
    __asm__("" : "+r"(p));
    if (unlikely(p->coarse.hint)) {
        int r = try_coarse(c, p, lim, cost, res);
        if (r != RLDI_TAKE_PRECISE)
            return r;
    }
    /* the handle as one word: GCC splits a small struct argument through the stack */
    uint64_t lw;
    memcpy(&lw, &lim, sizeof(lw));
    rldi_handle h = { (uint32_t)lw, (uint32_t)(lw >> 32) };
    const rldi_seg *s = rldc_seg(c);
    rldi_slot *sl = rldi_slot_of(s, h);
    if (unlikely(!sl))                  /* a key's handle, a pending one, or none */
        return take(c, lim, cost, res, rldi_now_fp(), 0, false);
    uint64_t now = rldi_mono_ns();
    /* the inline outcome only when rldc_count would batch the admission */
    uint64_t full = rldc_batchable(p, c, h.slot, now) ? c->fast_full_ns : 0;
    rldi_take_more m;
    uint64_t reset = 0, burst = 0;   /* set with RLDI_TAKE_FULL (zeroed for the compiler) */
    int r = rldi_bucket_take_fast(sl, h, cost, now, full, &m, &reset, &burst);
    if (unlikely(r != RLDI_TAKE_FULL))
        return try_more(c, p, s, lim, cost, res, now, &m);
    p->calls++;                         /* rldc_count's batched case */
    p->n[RLDC_ADMITTED] += cost;
    if (res) {                  /* the bucket was full: exactly burst - cost remain */
        res->limit = burst;
        res->remaining = burst - cost;
        res->retry_after_ns = 0;
        res->reset_after_ns = reset;
        res->queue_position = 0;
        res->flags = 0;
        res->index = 0;
        res->window = 0;
    }
    return 0;
}

int rld_try_ex(rld_client *c, rld_limit lim, uint64_t cost, unsigned flags, rld_result *res)
{
    if (!c || (flags & ~RLD_TRY_BARGE))
        return -EINVAL;
    return take(c, lim, cost, res, rldi_now_fp(), (flags & RLD_TRY_BARGE) ? RLDI_TAKE_BARGE : 0,
                false);
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
    int r;
    rldi_table t;
    for (int again = 0;; again = 1) {
        rldi_seg *s = rldc_seg(c);
        r = rldi_seg_lookup(s, name, &slot, &gen);
        if (r == 0 && (r = rldi_table_of(s, slot, gen, &t)) == -EINVAL)
            r = -ENOENT;                /* a [limit] of that name */
        if ((r != -ENOENT && r != -ESTALE) || again || rldc_follow(c) != 1)
            break;
    }
    if (r < 0)
        return r;
    out->slot = slot;
    out->gen = gen;
    return 0;
}

/*
 * The table of template T in segment S, as rldi_table_of finds it. rldi_table_of checks the
 * template's slot, meta and header record against the mapping (four lines, ~25 branches):
 * too much for every rld_try_key on a hot key. Each thread keeps the last table it found,
 * for one client (its serial tells a reused address apart), one segment (a client keeps
 * every segment it mapped until rld_close, so the address names one) and one template
 * (slot, gen). What stays checked on every call: the template's gen (a deleted template's
 * table may be cleared and given to another template: its keys' takes fail on the gen in
 * any case, rldi_cell_view) and the record's flags (a reload may change them). Nothing
 * else of a record changes while its template lives (daemon/dseg.c: a table is sized once).
 */
static __thread struct {
    const rld_client *c;
    uint64_t          serial;
    const rldi_seg   *s;
    rldi_table        tb;       /* tb.slot, tb.gen: the template's */
    /* the last key this thread took from in that table, and where it was: a hot key skips
     * the hash and the lookup. Checked where it counts: the take fails on an entry whose
     * gen is no longer IDX's (evicted, another key's), and the key is looked up again. */
    uint32_t          keylen;   /* 0: none */
    uint32_t          kidx, kgen;
    uint8_t           key[32];
} table_cache __attribute__((tls_model("initial-exec")));  /* no __tls_get_addr call */

static inline void key_remember(const void *key, size_t len, uint32_t idx, uint32_t gen)
{
    if (len > sizeof(table_cache.key))
        return;
    memcpy(table_cache.key, key, len);
    table_cache.keylen = (uint32_t)len;
    table_cache.kidx = idx;
    table_cache.kgen = gen;
}

static inline bool key_recalled(const void *key, size_t len, uint32_t *idx, uint32_t *gen)
{
    if (len == 0 || len != table_cache.keylen || memcmp(key, table_cache.key, len) != 0)
        return false;
    *idx = table_cache.kidx;
    *gen = table_cache.kgen;
    return true;
}

static inline int table_of(const rld_client *c, const rldi_seg *s, rld_template t,
                           rldi_table *tb)
{
    if (likely(table_cache.s == s && table_cache.c == c && table_cache.serial == c->serial &&
               table_cache.tb.slot == t.slot && table_cache.tb.gen == t.gen &&
               rldi_load_relaxed(&s->slots[t.slot].gen) == t.gen)) {
        *tb = table_cache.tb;
        tb->flags = rldi_load_relaxed(&tb->rec->flags);
        return 0;
    }
    int r = rldi_table_of(s, t.slot, t.gen, tb);
    if (r == 0) {
        table_cache.c = c;
        table_cache.serial = c->serial;
        table_cache.s = s;
        table_cache.tb = *tb;
        table_cache.keylen = 0;
    }
    return r;
}

/* The entry of KEY in template T of segment *S (the current one: followed when the
 * template's slot was sealed by a growth), created if need be. */
static inline __attribute__((always_inline)) int
key_get(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t rate,
        rldi_seg **s, rldi_table *tb, uint32_t *idx, uint32_t *gen, rldi_u128 now, bool *created)
{
    if (!c || (!key && keylen) || keylen == 0 || keylen > RLDI_KEY_MAX)
        return -EINVAL;
    for (int again = 0;; again = 1) {
        *s = rldc_seg(c);
        if (!(*s)->slot_count)
            return -ESTALE;
        int r = table_of(c, *s, t, tb);
        if (r == 0 && rate && !(tb->flags & RLDI_TMPL_CALLER_RATE))
            return -EINVAL;             /* a rate for a template that has its own */
        if (r == 0)
            return rldi_key_get(*s, tb, key, keylen, rate, rate != 0, now, idx, gen, created);
        if (r != -ESTALE || again || rldc_follow(c) != 1)
            return r;
    }
}

static int key_handle(rld_client *c, rld_template t, const void *key, size_t keylen,
                      uint64_t rate, rld_limit *out)
{
    if (!out)
        return -EINVAL;
    rldi_seg *s;
    rldi_table tb;
    uint32_t idx, gen;
    bool created;
    int r = key_get(c, t, key, keylen, rate, &s, &tb, &idx, &gen, rldi_now_fp(), &created);
    if (r < 0)
        return r;
    out->slot = s->slot_count + tb.entry_base + idx;
    out->gen = gen;
    return 0;
}

int rld_key(rld_client *c, rld_template t, const void *key, size_t keylen, rld_limit *out)
{
    return key_handle(c, t, key, keylen, 0, out);
}

int rld_key_rate(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t count,
                 uint64_t period_ns, rld_limit *out)
{
    uint64_t w = rldi_key_rate_word(count, period_ns);
    return w ? key_handle(c, t, key, keylen, w, out) : -ERANGE;
}

static int try_key(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t rate,
                   uint64_t cost, rld_result *res);

int rld_try_key(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t cost,
                rld_result *res)
{
    return try_key(c, t, key, keylen, 0, cost, res);
}

int rld_try_key_rate(rld_client *c, rld_template t, const void *key, size_t keylen,
                     uint64_t count, uint64_t period_ns, uint64_t cost, rld_result *res)
{
    uint64_t w = rldi_key_rate_word(count, period_ns);
    return w ? try_key(c, t, key, keylen, w, cost, res) : -ERANGE;
}

static int try_key(rld_client *c, rld_template t, const void *key, size_t keylen, uint64_t rate,
                   uint64_t cost, rld_result *res)
{
    rldi_u128 now = rldi_now_fp();
    /* An existing key of a template with its own rate (rate = 0): one lookup, and the take
     * decided there in the common case (keys.h rldi_key_try); a key to insert, or anything
     * rldi_key_try cannot decide on the key it found, goes on below. */
    if (likely(!rate && c && (key || !keylen))) {
        rldi_seg *s = rldc_seg(c);
        rldi_table tb;
        uint32_t idx, gen;
        rldi_verdict vd;
        int r;
        if (likely(s->slot_count && table_of(c, s, t, &tb) == 0) &&
            (r = key_recalled(key, keylen, &idx, &gen)
                     ? rldi_key_take(s, &tb, idx, gen, cost, rldi_fp_to_ns(now), res ? &vd : NULL)
                     : rldi_key_try(s, &tb, key, keylen, cost, rldi_fp_to_ns(now), &idx, &gen,
                                    res ? &vd : NULL)) != -ENOENT) {
            key_remember(key, keylen, idx, gen);
            if (r == 1) {
                rldi_cell cell;
                rldi_cell_of_key(s, &tb, idx, gen, &cell);
                r = rldi_bucket_take_cell(s, &cell, cost, now, 0, res ? &vd : NULL);
            }
            if (likely(r != -ESTALE)) {
                count(c, tb.slot, r, cost, rldi_fp_to_ns(now), false);
                if (res && (r == 0 || r == -EAGAIN))
                    result_fill(res, &vd);
                return r;
            }
        }
    }
    for (int attempt = 0;; attempt++) {
        rldi_seg *s;
        rldi_table tb;
        uint32_t idx, gen;
        bool created = false;
        int r = key_get(c, t, key, keylen, rate, &s, &tb, &idx, &gen, now, &created);
        if (created)
            now = rldi_now_fp();    /* its state was made after our first read: take as of now */
        if (r == -ENOSPC && (tb.flags & RLDI_TMPL_OVERFLOW_ALLOW)) {
            if (res) {
                rldc_result_open(res);
                res->flags = RLD_F_OVERFLOW;
            }
            return 0;
        }
        if (r < 0)
            return r;
        if (!rate)
            key_remember(key, keylen, idx, gen);    /* (table_of above made it the cache's) */
        rldi_verdict vd;
        r = rldi_key_take(s, &tb, idx, gen, cost, rldi_fp_to_ns(now), res ? &vd : NULL);
        if (r > 0) {                /* not the common case: the path that decides them all */
            rldi_cell cell;
            rldi_cell_of_key(s, &tb, idx, gen, &cell);
            r = rldi_bucket_take_cell(s, &cell, cost, now, 0, res ? &vd : NULL);
        }
        if (r == -ESTALE && attempt < 3) {
            rldc_follow(c);         /* reclaimed (or moved by a growth) since: again */
            continue;
        }
        count(c, tb.slot, r, cost, rldi_fp_to_ns(now), false);
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

int rldc_give_back(rld_client *c, rld_limit lim, uint64_t amount, uint32_t window, rldi_u128 now,
                   uint32_t *slot)
{
    int p = pending(c, &lim);
    if (p != 0)
        return p > 0 ? 1 : p;
    int r = rldi_bucket_refund(rldc_seg(c), handle(lim), amount, window, now);
    if ((r == -ESTALE || r == -EINVAL) && rldc_follow(c) == 1)
        r = rldi_bucket_refund(rldc_seg(c), handle(lim), amount, window, now);
    *slot = lim.slot;
    return r;
}

int rld_refund_ex(rld_client *c, rld_limit lim, uint64_t amount, uint32_t window)
{
    if (!c)
        return -EINVAL;
    rldi_u128 now = rldi_now_fp();
    uint32_t slot;
    int r = rldc_give_back(c, lim, amount, window, now, &slot);
    if (r == 0)
        rldc_count(c, slot, RLDC_REFUNDED, amount, rldi_fp_to_ns(now));
    return r > 0 ? 0 : r;
}

int rld_refund(rld_client *c, rld_limit lim, uint64_t amount)
{
    /* a window limit's tokens go back to the window of this thread's last take of it */
    const rldi_win_take_rec *w = &rldi_win_last;
    uint32_t window = c && w->seg == rldc_seg(c)->base && w->slot == lim.slot && w->gen == lim.gen
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
    int r = rldi_bucket_debit(rldc_seg(c), handle(lim), amount, now);
    if ((r == -ESTALE || r == -EINVAL) && rldc_follow(c) == 1)
        r = rldi_bucket_debit(rldc_seg(c), handle(lim), amount, now);
    if (r == 0)
        rldc_count(c, lim.slot, RLDC_DEBITED, amount, rldi_fp_to_ns(now));
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
    int r = rldi_bucket_peek(rldc_seg(c), handle(lim), rldi_now_fp(), &vd);
    if ((r == -ESTALE || r == -EINVAL) && rldc_follow(c) == 1)
        r = rldi_bucket_peek(rldc_seg(c), handle(lim), rldi_now_fp(), &vd);
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
        if (twice && rldi_bucket_peek(rldc_seg(c), handle(lim[i]), now, &vd) == 0 &&
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
        r = take(c, ch[i].limit, ch[i].cost, &one, now, flags, true);
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
    uint64_t now_ns = rldi_fp_to_ns(now);
    if (r == 0) {
        /* kept: every charge counts as admitted now, never before (admitted = kept) */
        for (i = 0; i < n; i++) {
            rld_limit lim = ch[i].limit;
            if (pending(c, &lim) == 0)
                rldc_count(c, lim.slot, RLDC_ADMITTED, ch[i].cost, now_ns);
        }
        if (res)
            *res = best;
        if (windows_out)
            memcpy(windows_out, windows, n * sizeof(*windows));
        return 0;
    }
    /* Roll back, newest first. A refund of exactly what was taken restores the state
     * unless the bucket refilled meanwhile, in which case it is full either way (a window
     * gets its tokens back while the window they were taken in is current). Counted as
     * rolled back, not refunded: these tokens were never admitted. */
    size_t failed = i;
    while (i-- > 0) {
        uint32_t slot;
        if (rldc_give_back(c, ch[i].limit, ch[i].cost, windows[i], rldi_now_fp(), &slot) == 0)
            rldc_count(c, slot, RLDC_ROLLED_BACK, ch[i].cost, now_ns);
    }
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
        int pr = rldi_bucket_probe(rldc_seg(c), handle(lim), ch[i].cost, now, flags, &vd);
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

static int info_once(rld_client *c, rld_limit lim, rld_limit_info *out);

int rld_info(rld_client *c, rld_limit lim, rld_limit_info *out)
{
    int r = info_once(c, lim, out);
    if ((r == -ESTALE || r == -EINVAL) && c && rldc_follow(c) == 1)
        r = info_once(c, lim, out);
    return r;
}

static int info_once(rld_client *c, rld_limit lim, rld_limit_info *out)
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
    if (slot >= rldc_seg(c)->slot_count) {    /* a key: its template's, and its own waiters */
        uint32_t idx;
        int r = rldi_table_of_entry(rldc_seg(c), slot, &tb, &idx);
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
    rldi_slot *s = rldi_slot_of(rldc_seg(c), (rldi_handle){ slot, lim.gen });
    if (!s)
        return -EINVAL;
    const rldi_meta *m = &rldc_seg(c)->meta[slot];
    if (rldi_load_relaxed(&m->kind) == RLDI_KIND_TEMPLATE) {
        if (rldi_table_of(rldc_seg(c), slot, lim.gen, &tb) < 0)
            return -ESTALE;
        max_keys = rldi_load_relaxed(&tb.rec->max_keys);
        keys = rldi_load_relaxed(&tb.rec->live);
        if (kind == RLD_KIND_LIMIT)
            kind = RLD_KIND_TEMPLATE;
    }
    rldi_limit_conf conf;
    int r = rldi_limit_conf_read(rldc_seg(c), slot, lim.gen, &conf);
    if (r < 0)
        return r;
    rldi_limit_counts n;
    rldi_limit_counts_read(rldc_seg(c), slot, &n);
    memcpy(out->name, conf.name, sizeof(out->name));
    out->rate_count = conf.rate_count;
    out->rate_period_ns = conf.rate_period_ns;
    out->burst = conf.burst;
    out->algorithm = conf.algo;
    out->align_ns = conf.align_ns;
    out->admitted = n.admitted;
    out->denied = n.denied;
    out->waiters = kind == RLD_KIND_LIMIT ? rldi_load_relaxed(&s->waiters) : waiters;
    if (conf.kind == RLDI_KIND_BREAKER) {
        kind = RLD_KIND_BREAKER;
        out->waiters = 0;
    }
    out->kind = kind;
    out->max_keys = max_keys;
    out->keys = keys;
    out->refunded = n.refunded;
    out->rolled_back = n.rolled_back;
    out->debited = n.debited;
    out->mode = rldi_load_relaxed(&s->flags) & RLDI_SLOT_SHADOW ? RLD_MODE_SHADOW
                                                               : RLD_MODE_ENFORCE;
    out->concurrency = rldi_load_relaxed(&m->concurrency);
    out->shadowed = rldi_load_relaxed(&s->shadowed);
    return 0;
}

const rldi_seg *rldc_client_seg(const rld_client *c)
{
    return rldc_seg(c);
}

const char *rld_strerror(int err)
{
    return rldi_strerror(err);
}

int rld_version(void)
{
    return RLD_VERSION_MAJOR * 10000 + RLD_VERSION_MINOR * 100 + RLD_VERSION_PATCH;
}
