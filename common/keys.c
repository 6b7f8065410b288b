/*
 * keys.c - keyed limits' tables (see keys.h for the entry lifecycle, docs/DESIGN.md "Keyed
 * limits" for the proofs). Everything read from the segment here is checked before use: a
 * table's record is validated against the mapping, entry indexes against the table.
 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "atomics.h"
#include "cell.h"
#include "codes.h"

/* ---- sizes ------------------------------------------------------------------------------- */

uint32_t rldi_keys_nbuckets(uint32_t max_keys)
{
    /* 8 entries a bucket at a load of at most 7/8: max_keys / 7 buckets, at least 2 */
    uint64_t nb = ((uint64_t)max_keys + 6) / 7;
    return nb < 2 ? 2 : (uint32_t)nb;
}

uint64_t rldi_keys_table_bytes(uint32_t max_keys)
{
    uint64_t nb = rldi_keys_nbuckets(max_keys);
    return nb * (sizeof(rldi_key_bucket) + RLDI_KEY_BUCKET * sizeof(rldi_key_entry));
}

/* ---- SipHash-1-3 (Aumasson and Bernstein; 1 compression, 3 finalization rounds) -------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                             \
    do {                                                                                     \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                            \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                               \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                               \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                            \
    } while (0)

uint64_t rldi_siphash13(const uint64_t k[2], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ k[0], v1 = 0x646f72616e646f6dull ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ k[0], v3 = 0x7465646279746573ull ^ k[1];
    size_t left = len & 7;
    const uint8_t *end = p + (len - left);
    for (; p != end; p += 8) {
        uint64_t m;
        memcpy(&m, p, 8);               /* little-endian hosts (x86-64, aarch64) */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    switch (left) {
    case 7: b |= (uint64_t)p[6] << 48; /* fall through */
    case 6: b |= (uint64_t)p[5] << 40; /* fall through */
    case 5: b |= (uint64_t)p[4] << 32; /* fall through */
    case 4: b |= (uint64_t)p[3] << 24; /* fall through */
    case 3: b |= (uint64_t)p[2] << 16; /* fall through */
    case 2: b |= (uint64_t)p[1] << 8;  /* fall through */
    case 1: b |= (uint64_t)p[0];       break;
    case 0: break;
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- tables ------------------------------------------------------------------------------ */

int rldi_table_get(const rldi_seg *s, uint32_t index, rldi_table *t)
{
    if (!s->hdr || index >= RLDI_MAX_TEMPLATES ||
        index >= rldi_load_relaxed(&s->hdr->tmpl_count))
        return -ENOENT;
    rldi_tmpl *r = &s->hdr->tmpl[index];
    uint64_t nb = rldi_load_relaxed(&r->nbuckets);
    uint64_t boff = rldi_load_relaxed(&r->buckets_off), eoff = rldi_load_relaxed(&r->entries_off);
    uint64_t lo = s->hdr->keys_off, hi = lo + s->keys_size;
    uint64_t base = rldi_load_relaxed(&r->entry_base);
    uint32_t slot = rldi_load_relaxed(&r->slot);
    /* every byte of the table inside the key region, aligned, and its handles below the
     * pending bit of librld's handles (2^31) */
    if (nb == 0 || nb > (UINT64_C(1) << 28) || slot >= s->slot_count || boff % 64 || eoff % 64 ||
        boff < lo || eoff < lo || boff > hi || eoff > hi ||
        nb * sizeof(rldi_key_bucket) > hi - boff ||
        nb * RLDI_KEY_BUCKET * sizeof(rldi_key_entry) > hi - eoff ||
        (uint64_t)s->slot_count + base + nb * RLDI_KEY_BUCKET > (UINT64_C(1) << 31))
        return RLD_ECORRUPT;
    t->buckets = (rldi_key_bucket *)((uint8_t *)s->base + boff);
    t->entries = (rldi_key_entry *)((uint8_t *)s->base + eoff);
    t->rec = r;
    t->nbuckets = (uint32_t)nb;
    t->entry_base = (uint32_t)base;
    t->index = index;
    t->slot = slot;
    t->gen = rldi_load_relaxed(&r->gen);
    t->flags = rldi_load_relaxed(&r->flags);
    return 0;
}

int rldi_table_of(const rldi_seg *s, uint32_t slot, uint32_t gen, rldi_table *t)
{
    if (slot >= s->slot_count)
        return -EINVAL;
    const rldi_meta *m = &s->meta[slot];
    if (rldi_load_relaxed(&s->slots[slot].gen) != gen || !(gen & 1))
        return -ESTALE;
    if (rldi_load_relaxed(&m->kind) != RLDI_KIND_TEMPLATE)
        return -EINVAL;
    int r = rldi_table_get(s, rldi_load_relaxed(&m->tmpl), t);
    if (r < 0)
        return r == -ENOENT ? -ESTALE : r;
    if (t->slot != slot || t->gen != gen)
        return -ESTALE;
    return 0;
}

int rldi_table_of_entry(const rldi_seg *s, uint32_t hslot, rldi_table *t, uint32_t *idx)
{
    if (!s->hdr || hslot < s->slot_count)
        return -EINVAL;
    uint32_t gi = hslot - s->slot_count, n = rldi_load_relaxed(&s->hdr->tmpl_count);
    for (uint32_t i = 0; i < n && i < RLDI_MAX_TEMPLATES; i++) {
        rldi_tmpl *r = &s->hdr->tmpl[i];
        uint64_t base = rldi_load_relaxed(&r->entry_base);
        uint64_t cnt = (uint64_t)rldi_load_relaxed(&r->nbuckets) * RLDI_KEY_BUCKET;
        if (gi >= base && gi - base < cnt) {
            if (rldi_load_relaxed(&r->slot) == UINT32_MAX)
                return -ESTALE;         /* its template was deleted: its keys with it */
            if (rldi_table_get(s, i, t) < 0)
                return -EINVAL;
            *idx = (uint32_t)(gi - base);
            return 0;
        }
    }
    return -EINVAL;
}

uint32_t rldi_table_epoch(const rldi_seg *s, const rldi_table *t)
{
    return (uint8_t)rldi_load_relaxed(&s->slots[t->slot].tat);
}

int rldi_cell_of(const rldi_seg *s, rldi_handle h, rldi_cell *c)
{
    if (rldi_likely(h.slot < s->slot_count)) {
        rldi_slot *sl = &s->slots[h.slot];
        *c = (rldi_cell){ &sl->tat, (const uint64_t *)&sl->gen, sl, &s->rings[h.slot], NULL,
                          h.slot, h.gen, h.slot, 0, NULL, false };
        return 0;
    }
    rldi_table t;
    uint32_t idx;
    if (s->slot_count == 0)
        return -EINVAL;
    int r = rldi_table_of_entry(s, h.slot, &t, &idx);
    if (r < 0)
        return r;
    rldi_cell_of_key(s, &t, idx, h.gen, c);
    return 0;
}

void rldi_cell_of_key(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                      rldi_cell *c)
{
    rldi_key_entry *e = &t->entries[idx];
    *c = (rldi_cell){ &e->tat, (const uint64_t *)&e->gen, &s->slots[t->slot], NULL,
                      &t->buckets[idx / RLDI_KEY_BUCKET].queued[idx % RLDI_KEY_BUCKET], t->slot,
                      gen, s->slot_count + t->entry_base + idx, t->gen,
                      (t->flags & RLDI_TMPL_CALLER_RATE)
                          ? (const uint64_t *)((const uint8_t *)e + RLDI_KEY_RATE_OFF) : NULL,
                      true };
}

/* The emission intervals of the last rates this thread met: per-tenant plans are few, and
 * a 128-bit division per call is not the fast path's. */
static __thread struct { uint64_t w; rldi_u128 t; double inv; } rate_cache[4];
static __thread unsigned rate_next;

int rldi_cell_caller_rate(const rldi_cell *c, rldi_view *v)
{
    uint64_t w = rldi_load_relaxed(c->rate);
    uint64_t count = w & UINT32_MAX, period = (w >> 32) * 1000000u;
    if (count == 0 || period == 0)
        return -EINVAL;
    uint32_t algo = rldi_view_algo(v);
    v->burst = count;
    if (algo != RLDI_ALGO_GCRA) {
        /* a window: its period and count; the template's bank keeps the alignment */
        v->t = ((rldi_u128)((uint64_t)algo << RLDI_ALGO_SHIFT) << 64) | period;
        return 0;
    }
    for (unsigned i = 0; i < 4; i++)
        if (rate_cache[i].w == w) {
            v->t = rate_cache[i].t;
            v->inv = rate_cache[i].inv;
            return 0;
        }
    rldi_u128 t;
    if (rldi_interval(count, period, &t) < 0 || t == 0)
        return -EINVAL;
    rldi_bank b;
    rldi_bank_gcra(&b, t, count);
    double inv;
    memcpy(&inv, &b.inv_t, sizeof(inv));
    unsigned i = rate_next++ % 4;
    rate_cache[i].w = w;
    rate_cache[i].t = t;
    rate_cache[i].inv = inv;
    v->t = t;
    v->inv = inv;
    return 0;
}

/* ---- keys --------------------------------------------------------------------------------- */

/* The four buckets a key may live in: b1, b1 + 1, b2, b2 + 1 (two choices, each with its
 * neighbour: 7/8 full tables refuse a new key about once in 30,000; two choices alone, once
 * in 300). */
static void buckets_of(uint64_t h, uint32_t nb, uint32_t b[4])
{
    uint32_t b1 = (uint32_t)(((h & 0xffffffffu) * nb) >> 32);
    uint32_t b2 = (uint32_t)((((h * 0x9E3779B97F4A7C15ull) >> 32) * nb) >> 32);
    b[0] = b1;
    b[1] = b1 + 1 == nb ? 0 : b1 + 1;
    b[2] = b2;
    b[3] = b2 + 1 == nb ? 0 : b2 + 1;
}

static inline uint16_t tag_of(uint64_t h)
{
    return (uint16_t)(h >> 48) | 1;
}

/* N <= 8 bytes at P as a little-endian word (the rest 0), without a call or a byte loop:
 * two overlapping loads (their common bytes are the same bytes at the same places). */
static inline uint64_t bytes_le(const uint8_t *p, size_t n)
{
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return a | (uint64_t)b << (8 * (n - 4));
    }
    if (n == 0)
        return 0;
    return p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) | (uint64_t)p[n - 1] << (8 * (n - 1));
}

/* The identity words of a key as the entry holds them at offset 32: length - 1 and the
 * first bytes (up to 15; 7 when the last 8 bytes hold a caller's rate), zero-padded. Built
 * in registers: bytes stored one by one and read back as words stall the load (a failed
 * store forward, ~10 ns on every lookup). */
static inline void ident_of(const void *key, size_t len, bool caller, uint64_t w[2])
{
    const uint8_t *p = key;
    size_t keep = caller ? RLDI_KEY_RATE_PREFIX : RLDI_KEY_PREFIX;
    size_t n = len < keep ? len : keep;
    w[0] = (uint8_t)(len - 1) | bytes_le(p, n < 7 ? n : 7) << 8;
    w[1] = n > 7 ? bytes_le(p + 7, n - 7) : 0;
}

/* Start loading the four buckets' headers a key may live in: their misses overlap, where a
 * scan would wait for each in turn. */
static inline void prefetch_buckets(const rldi_table *t, const uint32_t b[4])
{
    for (int k = 0; k < 4; k++)
        __builtin_prefetch(&t->buckets[b[k]]);
}

static inline uint64_t *ident_words(rldi_key_entry *e)
{
    return (uint64_t *)((uint8_t *)e + 32);
}

/*
 * The bucket header's hint of its held places (layout.h rldi_key_bucket.held): bit i is set
 * once a claim of entry i won its CAS, cleared once an eviction of it is finished (or an
 * abandoned claim given back). It is only ever a hint, wrong for a moment around every
 * change (and for good where a 3.0 client, which does not keep it, claims or evicts): an
 * insertion chooses a place by it, then the claim's CAS checks the place (a held place
 * fails and is marked held); a table whose four buckets it calls full is scanned entry by
 * entry as before (so a wrong "held" never refuses a key), and the daemon's sweep sets it
 * right bucket by bucket. docs/DESIGN.md, "Keyed limits".
 */
static inline uint32_t held_of(const rldi_key_bucket *bk)
{
    return (uint32_t)rldi_load_relaxed(&bk->held) & 0xffu;
}

/* Set bits of a byte (no popcnt instruction assumed: libgcc's would be a call). */
static inline uint32_t bits8(uint32_t x)
{
    x = x - ((x >> 1) & 0x55u);
    x = (x & 0x33u) + ((x >> 2) & 0x33u);
    return (x + (x >> 4)) & 0x0fu;
}

static inline void held_set(rldi_key_bucket *bk, uint32_t i)
{
    if (!(rldi_load_relaxed(&bk->held) >> i & 1))
        __atomic_fetch_or(&bk->held, UINT64_C(1) << i, __ATOMIC_RELAXED);
}

static inline void held_clear(rldi_key_bucket *bk, uint32_t i)
{
    if (rldi_load_relaxed(&bk->held) >> i & 1)
        __atomic_fetch_and(&bk->held, ~(UINT64_C(1) << i), __ATOMIC_RELAXED);
}

static bool seen(const uint32_t *b, int k)
{
    for (int j = 0; j < k; j++)
        if (b[j] == b[k])
            return true;
    return false;
}

static inline uint32_t next_gen(uint32_t g, uint32_t epoch);

/*
 * An eviction is two steps: the word's CAS to the next, even gen (from then on no take
 * lands), then gen's. An entry between them looks live to a lookup, yet every take on it
 * fails, and its evictor may have died there (SIGKILL): whoever meets it finishes the
 * eviction (the second step is the same for everyone). True when entry AT (gen G) was one.
 */
static bool evict_finish_slow(const rldi_table *t, uint32_t at, uint32_t g);

static inline bool evict_finish(const rldi_table *t, uint32_t at, uint32_t g)
{
    rldi_key_entry *e = &t->entries[at];
    uint32_t v = (uint32_t)(rldi_load_acquire(&e->frac_ver) >> 32);
    if (rldi_likely(v != next_gen(g, RLDI_KEY_EPOCH(g))))
        return false;
    return evict_finish_slow(t, at, g);
}

static __attribute__((noinline)) bool evict_finish_slow(const rldi_table *t, uint32_t at,
                                                        uint32_t g)
{
    rldi_key_entry *e = &t->entries[at];
    uint32_t g2 = next_gen(g, RLDI_KEY_EPOCH(g));
    /* The tag stays: once gen is even the place may be claimed at once, and a tag cleared
     * after that claim (this process preempted here) would hide the new key from find(),
     * which would then insert it a second time: two buckets, a burst each. A stale tag on a
     * free place costs find() one look at its gen. */
    if (__atomic_compare_exchange_n(&e->gen, &g, g2, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        /* free: the hint says so (after gen: a claim of the place may come first, and its
         * bit cleared here only makes an insertion try it and fail, never a key lost) */
        held_clear(&t->buckets[at / RLDI_KEY_BUCKET], at % RLDI_KEY_BUCKET);
        rldi_add_relaxed(&t->rec->live, (uint64_t)-1);
        rldi_add_relaxed(&t->rec->evictions, 1);
    }
    return true;
}

static inline int find(const rldi_table *t, const uint32_t b[4], uint64_t hash,
                       const uint64_t id[2], bool caller, uint32_t epoch, uint32_t *idx,
                       uint32_t *gen)
{
    uint16_t tag = tag_of(hash);
    for (int k = 0; k < 4; k++) {
        if (seen(b, k))
            continue;
        rldi_key_bucket *bk = &t->buckets[b[k]];
        for (uint32_t i = 0; i < RLDI_KEY_BUCKET; i++) {
            if (rldi_load_relaxed(&bk->tag[i]) != tag)
                continue;
            uint32_t at = b[k] * RLDI_KEY_BUCKET + i;
            rldi_key_entry *e = &t->entries[at];
            /* an entry may straddle two lines (48 B entries): load both at once */
            __builtin_prefetch((const uint8_t *)e + sizeof(*e) - 1);
            uint32_t g = rldi_load_acquire(&e->gen);
            if (!(g & 1) || RLDI_KEY_EPOCH(g) != epoch)
                continue;
            if (evict_finish(t, at, g))
                continue;           /* an eviction half done: finished, no key there */
            uint64_t *w = ident_words(e);
            if (rldi_load_relaxed(&e->hash) != hash || rldi_load_relaxed(&w[0]) != id[0] ||
                (!caller && rldi_load_relaxed(&w[1]) != id[1]))
                continue;
            rldi_fence_acquire();
            if (rldi_load_relaxed(&e->gen) != g)
                continue;           /* rewritten while we read it */
            *idx = at;
            *gen = g;
            return 0;
        }
    }
    return -ENOENT;
}

int rldi_key_find(const rldi_table *t, uint64_t hash, const void *key, size_t len,
                  uint32_t epoch, uint32_t *idx, uint32_t *gen)
{
    if (len == 0 || len > RLDI_KEY_MAX)
        return -EINVAL;
    uint32_t b[4];
    uint64_t id[2];
    bool caller = t->flags & RLDI_TMPL_CALLER_RATE;
    buckets_of(hash, t->nbuckets, b);
    prefetch_buckets(t, b);
    ident_of(key, len, caller, id);
    return find(t, b, hash, id, caller, epoch, idx, gen);
}

/*
 * floor(X / T) for a GCRA bank's T (< 2^64 units), at most MAXQ, with INV ~= 1 / T (a hint
 * from shared memory: checked). A key's tolerance is often past 2^63 units (120/min with a
 * burst of 120 is 2.6e20), where gcra.h's rldi_div_floor_inv falls back to a 128-bit
 * division (~30 ns): here the estimate is corrected exactly with 128-bit products, and a
 * bad hint ends in the exact division.
 */
static inline uint64_t div_floor_t64(rldi_u128 x, uint64_t t, double inv, uint64_t maxq)
{
    if (t == 0 || x >> 96 || !(inv > 0))
        return rldi_div_floor(x, t, maxq);
    double qd = ((double)(uint64_t)(x >> 32) * 4294967296.0 + (double)(uint32_t)x) * inv;
    if (!(qd < 9.0e15))                 /* 2^53: past it the estimate is not within 1 */
        return rldi_div_floor(x, t, maxq);
    uint64_t q = (uint64_t)qd;
    rldi_u128 p = (rldi_u128)q * t;
    for (int i = 0; i < 4; i++) {
        if (p > x) {
            q--;
            p -= t;
        } else if (x - p >= t) {
            q++;
            p += t;
        } else {
            return q > maxq ? maxq : q;
        }
    }
    return rldi_div_floor(x, t, maxq);  /* the hint was not ~1/T */
}

/* rldi_bucket_verdict_fast for a key's admission (TT, BURST, COST of bank B of template
 * slot TS; new TAT NT at NOW): the same figures, with div_floor_t64's division. */
static void key_verdict(rldi_verdict *v, const rldi_slot *ts, const rldi_bank *b, uint64_t tt,
                        uint64_t burst, uint64_t cost, rldi_u128 nt, rldi_u128 now)
{
    rldi_u128 used = nt - now;
    if (tt == (uint64_t)RLDI_POOL_T || used == (rldi_u128)tt * cost) {
        rldi_bucket_verdict_fast(v, ts, b, tt, burst, cost, nt, now);
        return;
    }
    uint64_t bits = rldi_load_relaxed(&b->inv_t);
    double inv;
    memcpy(&inv, &bits, sizeof(inv));
    v->limit = burst;
    v->remaining = div_floor_t64((rldi_u128)tt * burst - used, tt, inv, burst);
    v->retry_after_ns = 0;
    v->reset_after_ns = rldi_fp_to_ns_ceil(used);
    v->flags = v->waiters = v->window = 0;
}

static inline int key_take(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                           uint64_t cost, uint64_t now_ns, rldi_verdict *v)
{
    rldi_key_entry *e = &t->entries[idx];
    const rldi_slot *ts = &s->slots[t->slot];
    uint64_t tat = rldi_load_relaxed(&e->tat), fv = rldi_load_relaxed(&e->frac_ver);
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&e->gen);     /* gen | waiters << 32 */
    /* the template's word (its epoch in tat's low byte, its bank's parity in the version)
     * and the bank it names: as rldi_cell_view reads them for a key */
    uint64_t ttat = rldi_load_relaxed(&ts->tat), tfv = rldi_load_relaxed(&ts->frac_ver);
    const rldi_bank *b = &ts->bank[(tfv >> 32) & 1];
    uint64_t tt = rldi_load_relaxed(&b->t_lo), burst = rldi_load_relaxed(&b->burst);
    if (rldi_unlikely((fv >> 32) != gen || gw != gen || !(gen & 1) ||
                      (uint8_t)ttat != (uint8_t)RLDI_KEY_EPOCH(gen) ||
                      rldi_load_relaxed(&ts->gen) != t->gen ||
                      (t->flags & RLDI_TMPL_CALLER_RATE) || rldi_load_relaxed(&b->t_hi) != 0 ||
                      tt == 0 || cost - 1 >= burst))
        return 1;
    /* GCRA, as rldi_bucket_take_busy: a full bucket (TAT < now) admits cost <= burst with
     * TAT = now + cost*T; else D = TAT - now admits iff D <= (burst - cost)*T, TAT += cost*T */
    rldi_u128 ct = (rldi_u128)tt * cost;
    uint64_t ntat, nfv;
    if (tat < now_ns) {
        ntat = now_ns + (uint64_t)(ct >> 32);
        nfv = (fv & RLDI_VER_MASK) | (uint32_t)ct;
    } else {
        rldi_u128 d = ((rldi_u128)(tat - now_ns) << 32) | (uint32_t)fv;
        if (d > (rldi_u128)tt * (burst - cost))
            return 1;                   /* a denial: the full path says it, with its figures */
        uint64_t f = (fv & RLDI_FRAC_MASK) + (uint32_t)ct;
        ntat = tat + (uint64_t)(ct >> 32) + (f >> 32);
        nfv = (fv & RLDI_VER_MASK) | (uint32_t)f;
    }
    bool was_full = tat < now_ns;
    if (rldi_unlikely(!rldi_cas16_halves(&e->tat, &tat, &fv, ntat, nfv)))
        return 1;                       /* moved: the full path decides on the new state */
    if (!v)
        return 0;
    if (was_full && tt != (uint64_t)RLDI_POOL_T) {
        /* the bucket was full: exactly burst - cost remain, full again after cost*T */
        *v = (rldi_verdict){ .limit = burst, .remaining = burst - cost,
                             .reset_after_ns = (uint64_t)(ct >> 32) + ((uint32_t)ct != 0) };
        return 0;
    }
    key_verdict(v, ts, b, tt, burst, cost, rldi_tat_unpack(ntat, nfv), rldi_fp_from_ns(now_ns));
    return 0;
}

int rldi_key_take(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                  uint64_t cost, uint64_t now_ns, rldi_verdict *v)
{
    return key_take(s, t, idx, gen, cost, now_ns, v);
}

int rldi_key_try(const rldi_seg *s, const rldi_table *t, const void *key, size_t len,
                 uint64_t cost, uint64_t now_ns, uint32_t *idx, uint32_t *gen, rldi_verdict *v)
{
    if (len == 0 || len > RLDI_KEY_MAX)
        return -EINVAL;
    bool caller = t->flags & RLDI_TMPL_CALLER_RATE;
    uint64_t hash = rldi_siphash13(s->hdr->key_secret, key, len), id[2];
    uint32_t b[4];
    buckets_of(hash, t->nbuckets, b);
    prefetch_buckets(t, b);
    ident_of(key, len, caller, id);
    int r = find(t, b, hash, id, caller, (uint8_t)rldi_load_relaxed(&s->slots[t->slot].tat),
                 idx, gen);
    if (r < 0)
        return r;
    return key_take(s, t, *idx, *gen, cost, now_ns, v);
}

/* The template's current bank (a seqlock read of its word). */
static void tmpl_bank(const rldi_seg *s, const rldi_table *t, rldi_bank *out, uint32_t *epoch)
{
    const rldi_slot *sl = &s->slots[t->slot];
    for (;;) {
        rldi_u128 w = rldi_load16_split(&sl->tat);
        rldi_bucket_config(sl, out);
        rldi_fence_acquire();
        if (rldi_load16_split(&sl->tat) == w) {
            *epoch = (uint8_t)(uint64_t)w;
            return;
        }
    }
}

static inline uint32_t next_gen(uint32_t g, uint32_t epoch)
{
    return (epoch << 24) | ((g + 1) & RLDI_KEY_SEQ_MASK);
}

/* The bank of a key of T: its template's B, with a rate = caller key's own period and
 * count (its rate word RATE) for the window algorithms' bookkeeping. */
static void key_bank(const rldi_table *t, const rldi_bank *b, uint64_t rate, rldi_bank *out)
{
    *out = *b;
    if ((t->flags & RLDI_TMPL_CALLER_RATE) && RLDI_BANK_ALGO(b->t_hi) != RLDI_ALGO_GCRA) {
        out->t_lo = (rate >> 32) * 1000000u;
        out->burst = rate & UINT32_MAX;
    }
}

/* Would a new key's state decide as WORD does at NOW (algorithm of B)? */
static bool idle(const rldi_bank *b, rldi_u128 word, rldi_u128 now)
{
    if (RLDI_BANK_ALGO(b->t_hi) != RLDI_ALGO_GCRA)
        return rldi_win_idle(b, word, now);
    /* a full bucket: TAT at or before now (any rate: unlimited ones too) */
    uint64_t fv = (uint64_t)(word >> 64);
    return rldi_tat_unpack((uint64_t)word, fv) <= now;
}

/* Evict entry IDX (gen GEN) if it is stale, or (unless STALE_ONLY) idle at NOW. B0 and
 * EPOCH0: the template's bank and epoch as the caller read them (tmpl_bank), used while the
 * epoch is still that one (a key of a newer epoch is never taken for a stale one); NULL:
 * read them here. 1 evicted, else 0. */
static int evict_b(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                   rldi_u128 now, bool stale_only, const rldi_bank *b0, uint32_t epoch0)
{
    rldi_key_entry *e = &t->entries[idx];
    rldi_key_bucket *bk = &t->buckets[idx / RLDI_KEY_BUCKET];
    uint32_t i = idx % RLDI_KEY_BUCKET;
    if (!(gen & 1) || rldi_load_acquire(&e->gen) != gen)
        return 0;
    rldi_u128 word = rldi_load16_split(&e->tat);
    if ((uint32_t)(word >> 96) != gen)
        return 0;
    rldi_bank b;
    uint32_t epoch;
    if (b0 && (uint8_t)rldi_load_relaxed(&s->slots[t->slot].tat) == epoch0) {
        b = *b0;
        epoch = epoch0;
    } else {
        tmpl_bank(s, t, &b, &epoch);
    }
    bool stale = RLDI_KEY_EPOCH(gen) != epoch;
    if (!stale) {
        /* a key with waiters, or not full again, holds state a new key would not have */
        rldi_bank kb;
        key_bank(t, &b, rldi_load_relaxed(&ident_words(e)[1]), &kb);
        if (stale_only || rldi_load_relaxed(&e->waiters) || rldi_load_relaxed(&bk->queued[i]) ||
            !idle(&kb, word, now))
            return 0;
    }
    uint32_t g2 = next_gen(gen, RLDI_KEY_EPOCH(gen));         /* even: free */
    rldi_u128 dead = (rldi_u128)g2 << 96;
    if (!rldi_cas16(&e->tat, &word, dead))
        return 0;               /* a take landed first: the key is in use, it stays */
    (void)bk;
    (void)i;
    evict_finish(t, idx, gen);  /* (or someone who met it half done already did) */
    return 1;
}

/* What evict_b would do with entry IDX now, without doing it (B, EPOCH: the template's, as
 * the caller read them): 2 evict (stale), 1 evict (idle), 0 keep or nothing there. */
static inline int evict_candidate(const rldi_table *t, uint32_t idx, rldi_u128 now,
                                  const rldi_bank *b, uint32_t epoch)
{
    rldi_key_entry *e = &t->entries[idx];
    uint32_t g = rldi_load_acquire(&e->gen);
    rldi_u128 word = rldi_load16_split(&e->tat);
    if (!(g & 1) || (uint32_t)(word >> 96) != g)
        return 0;
    if (RLDI_KEY_EPOCH(g) != epoch)
        return 2;
    if (rldi_load_relaxed(&e->waiters) ||
        rldi_load_relaxed(&t->buckets[idx / RLDI_KEY_BUCKET].queued[idx % RLDI_KEY_BUCKET]))
        return 0;
    rldi_bank kb;
    key_bank(t, b, rldi_load_relaxed(&ident_words(e)[1]), &kb);
    return idle(&kb, word, now) ? 1 : 0;
}

static int evict(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                 rldi_u128 now, bool stale_only)
{
    return evict_b(s, t, idx, gen, now, stale_only, NULL, 0);
}

int rldi_key_evict(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                   rldi_u128 now)
{
    if (idx >= t->nbuckets * RLDI_KEY_BUCKET)
        return 0;
    return evict(s, t, idx, gen, now, false);
}

/* ---- the insertion lock ------------------------------------------------------------------ */

#define LOCK_SPINS      (1u << 10)
#define LOCK_GIVE_UP_NS (50u * 1000 * 1000)        /* a holder stopped (SIGSTOP, ptrace) */
#define LOCK_LIVE_MAX_NS (2000u * 1000 * 1000)      /* any holder: descheduled that long? */

/* Is PID stopped or traced (its state in /proc/PID/stat: T or t)? False when it cannot be
 * read (another pid namespace): then only LOCK_LIVE_MAX_NS ends the wait. */
static bool holder_stopped(pid_t pid)
{
    char path[40], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    const char *p = strrchr(buf, ')');          /* the name may hold spaces and parens */
    return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* getpid() is a system call (~100 ns here, glibc does not cache it): once per process, and
 * again in a fork's child (pthread_atfork). */
static pid_t self_pid_v;
static pthread_once_t self_pid_once = PTHREAD_ONCE_INIT;

static void self_pid_forget(void)
{
    __atomic_store_n(&self_pid_v, 0, __ATOMIC_RELAXED);
}

static void self_pid_init(void)
{
    pthread_atfork(NULL, NULL, self_pid_forget);
}

static pid_t self_pid(void)
{
    pid_t p = __atomic_load_n(&self_pid_v, __ATOMIC_RELAXED);
    if (rldi_unlikely(p == 0)) {
        pthread_once(&self_pid_once, self_pid_init);
        p = getpid();
        __atomic_store_n(&self_pid_v, p, __ATOMIC_RELAXED);
    }
    return p;
}

static int lock_bucket(rldi_key_bucket *bk)
{
    uint64_t mine = (uint64_t)(uint32_t)self_pid() | (UINT64_C(1) << 32);
    uint64_t start = 0;
    for (uint32_t spins = 0;; spins++) {
        uint64_t cur = 0;
        if (__atomic_compare_exchange_n(&bk->lock, &cur, mine, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return 0;
        if (spins % LOCK_SPINS != LOCK_SPINS - 1) {
            __builtin_ia32_pause();
            continue;
        }
        /* held for a while: a holder that died leaves it to us, a live one is waited for
         * (a stopped one, in the end, makes this insertion fail) */
        pid_t holder = (pid_t)(uint32_t)cur;
        if (holder > 0 && kill(holder, 0) < 0 && errno == ESRCH) {
            if (__atomic_compare_exchange_n(&bk->lock, &cur, mine, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return 0;
            continue;
        }
        uint64_t now = rldi_mono_ns();
        if (!start)
            start = now;
        else if (now - start > LOCK_LIVE_MAX_NS ||
                 (now - start > LOCK_GIVE_UP_NS && holder > 0 && holder_stopped(holder)))
            return -EBUSY;      /* a live holder merely preempted (a loaded host) is waited */
        sched_yield();
    }
}

static void unlock_bucket(rldi_key_bucket *bk)
{
    __atomic_store_n(&bk->lock, 0, __ATOMIC_RELEASE);
}

/* ---- insertion ----------------------------------------------------------------------------- */

/* The state word of a new key of gen G at NOW (full: GCRA's TAT now, a window ended). */
static rldi_u128 fresh(const rldi_bank *b, rldi_u128 now, uint32_t g)
{
    if (RLDI_BANK_ALGO(b->t_hi) != RLDI_ALGO_GCRA)
        return rldi_win_fresh_key(b, now, g);   /* a window with nothing in it */
    return rldi_word_make(now, g);
}

/* A test's pause inside a claim (tests/unit/test_keys_defects.c: stalled-claim); NULL. */
void (*rldi_key_claim_hook)(uint32_t idx);

/*
 * Claim free entry IDX for the key (identity ID, hash HASH): 0, or -EAGAIN when another
 * process took it first. Three steps: the ticket (this process's pid in the free entry's
 * waiters, by a CAS of gen | waiters), which makes the place this process's alone; the state
 * word (ver g -> g+1, a fresh state); then the identity, and gen g -> g+1 with the ticket
 * cleared in one CAS (live). The daemon gives back a place claimed by a process that is gone
 * (rldi_key_unclaim), never one whose claimer lives, so a claimer stopped for any time
 * between the steps writes its identity over no other key's (docs/DESIGN.md, keyed limits).
 */
static int claim(const rldi_table *t, uint32_t idx, const rldi_bank *b, uint32_t epoch,
                 uint64_t hash, const uint64_t id[2], uint64_t rate, rldi_u128 now,
                 uint32_t *gen_out)
{
    rldi_key_entry *e = &t->entries[idx];
    rldi_key_bucket *bk = &t->buckets[idx / RLDI_KEY_BUCKET];
    uint64_t *gwp = (uint64_t *)&e->gen;                    /* gen | waiters << 32 */
    uint64_t gw = rldi_load_acquire(gwp);
    uint32_t g = (uint32_t)gw;
    rldi_u128 word = rldi_load16_split(&e->tat);
    if ((g & 1) || ((uint32_t)(gw >> 32) & RLDI_KEY_TICKET) || (uint32_t)(word >> 96) != g)
        return -EAGAIN;                         /* live, or being claimed */
    /* a free place's waiters may hold a count a late publish left (waitq.c): replaced */
    uint64_t mine = (uint64_t)g | (uint64_t)(RLDI_KEY_TICKET | ((uint32_t)self_pid() &
                                                                ~RLDI_KEY_TICKET)) << 32;
    if (!__atomic_compare_exchange_n(gwp, &gw, mine, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return -EAGAIN;
    uint32_t g1 = next_gen(g, epoch);
    rldi_bank kb;
    key_bank(t, b, rate, &kb);
    if (!rldi_cas16(&e->tat, &word, fresh(&kb, now, g1))) {
        __atomic_store_n(gwp, (uint64_t)g, __ATOMIC_RELEASE);  /* moved (a ticketless claimer) */
        return -EAGAIN;
    }
    held_set(bk, idx % RLDI_KEY_BUCKET);    /* ours: the hint says held from here */
    if (rldi_unlikely(rldi_key_claim_hook != NULL))
        rldi_key_claim_hook(idx);
    uint64_t *w = ident_words(e);
    rldi_store_relaxed(&e->hash, hash);
    rldi_store_relaxed(&w[0], id[0]);
    rldi_store_relaxed(&w[1], (t->flags & RLDI_TMPL_CALLER_RATE) ? rate : id[1]);
    rldi_store_relaxed(&bk->tag[idx % RLDI_KEY_BUCKET], tag_of(hash));
    rldi_store_relaxed(&bk->queued[idx % RLDI_KEY_BUCKET], 0);   /* a late publish's, too */
    /* live from here: the identity is published with the gen (release), the ticket ends */
    if (!__atomic_compare_exchange_n(gwp, &mine, (uint64_t)g1, false, __ATOMIC_RELEASE,
                                     __ATOMIC_RELAXED)) {
        held_clear(bk, idx % RLDI_KEY_BUCKET);  /* (free again, as far as we know) */
        return -EAGAIN;     /* the daemon thought this process gone (another pid namespace) */
    }
    rldi_add_relaxed(&t->rec->live, 1);
    *gen_out = g1;
    return 0;
}

/* Is entry E free: no key, no claimer (no ticket, a free word)? */
static inline bool place_free(const rldi_key_entry *e)
{
    uint64_t gw = rldi_load_relaxed((const uint64_t *)&e->gen);
    uint32_t g = (uint32_t)gw;
    return !(g & 1) && !((uint32_t)(gw >> 32) & RLDI_KEY_TICKET) &&
           (uint32_t)(rldi_load_relaxed(&e->frac_ver) >> 32) == g;
}

static uint32_t free_in(const rldi_table *t, uint32_t bkt)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < RLDI_KEY_BUCKET; i++)
        n += place_free(&t->entries[bkt * RLDI_KEY_BUCKET + i]);
    return n;
}

int rldi_key_get(const rldi_seg *s, const rldi_table *t, const void *key, size_t len,
                 uint64_t rate, bool rate_set, rldi_u128 now, uint32_t *idx, uint32_t *gen,
                 bool *created)
{
    if (len == 0 || len > RLDI_KEY_MAX)
        return -EINVAL;
    bool caller = t->flags & RLDI_TMPL_CALLER_RATE;
    uint64_t hash = rldi_siphash13(s->hdr->key_secret, key, len), id[2];
    uint32_t b[4];
    buckets_of(hash, t->nbuckets, b);
    prefetch_buckets(t, b);
    ident_of(key, len, caller, id);
    /* a lookup needs only the epoch (a take checks it again against the key's gen) */
    uint32_t epoch = rldi_table_epoch(s, t);
    *created = false;
    int r = find(t, b, hash, id, caller, epoch, idx, gen);
    if (r == 0)
        goto found;
    if (caller && !rate)
        return -EINVAL;                 /* a new key of a rate = caller template: its rate? */
    if (rldi_load_acquire(&s->hdr->state) != RLDI_STATE_READY)
        return -ESTALE;                 /* a segment being replaced: the new one takes keys */
    /* a new key: the bank its state is made for, and the epoch that goes with it */
    rldi_bank bank;
    tmpl_bank(s, t, &bank, &epoch);
    rldi_key_bucket *lk = &t->buckets[b[0]];
    if ((r = lock_bucket(lk)) < 0)
        return r;
    /* A new key's state is made from a clock read now, under the lock: after the eviction of
     * any earlier life of the key (the caller's NOW may be older), so that every admission
     * on the new life is at a time after the old one's end (docs/DESIGN.md, keyed limits). */
    rldi_u128 fresh_now = rldi_now_fp();
    if (fresh_now < now)
        fresh_now = now;
    int hinted = 0;                     /* places tried by the hint */
    bool prefetched = false;
    for (int attempt = 0; attempt < 16; attempt++) {
        if (find(t, b, hash, id, caller, epoch, idx, gen) == 0) {
            unlock_bucket(lk);
            goto found;
        }
        /* the least full of the four buckets by their headers' hints (in cache: find read
         * them), a place they call free; the claim checks it */
        int best = -1;
        uint32_t most = 0, at = UINT32_MAX;
        bool by_hint = hinted < 3;
        if (by_hint) {
            uint32_t free_bits = 0;         /* of the chosen bucket, as read once */
            for (int k = 0; k < 4; k++) {
                /* one read per bucket: the hint moves under other processes' claims */
                uint32_t fb = seen(b, k) ? 0 : ~held_of(&t->buckets[b[k]]) & 0xffu;
                uint32_t f = bits8(fb);
                if (f > most) {
                    most = f;
                    best = k;
                    free_bits = fb;
                }
            }
            if (best >= 0) {
                at = b[best] * RLDI_KEY_BUCKET + (uint32_t)__builtin_ctz(free_bits);
                hinted++;
            } else {
                by_hint = false;        /* full by the hints: look at every place */
                hinted = 3;
            }
        }
        /* else exactly as the entries say: the least full of the four buckets, else the
         * place of a stale or idle key (their 24 lines loaded at once) */
        if (!by_hint) {
            if (!prefetched) {
                for (int k = 0; k < 4; k++)
                    for (uint32_t l = 0; l < RLDI_KEY_BUCKET * sizeof(rldi_key_entry); l += 64)
                        __builtin_prefetch((const uint8_t *)&t->entries[b[k] * RLDI_KEY_BUCKET] + l);
                prefetched = true;
            }
            best = -1;
            most = 0;
            for (int k = 0; k < 4; k++) {
                uint32_t f = seen(b, k) ? 0 : free_in(t, b[k]);
                if (f > most) {
                    most = f;
                    best = k;
                }
            }
        }
        if (by_hint) {
            /* chosen above */
        } else if (best >= 0) {
            for (uint32_t i = 0; i < RLDI_KEY_BUCKET && at == UINT32_MAX; i++) {
                uint32_t j = b[best] * RLDI_KEY_BUCKET + i;
                if (place_free(&t->entries[j]))
                    at = j;
            }
        } else {
            /* one look at the 32 entries for a stale key, else an idle one (cheap checks, no
             * CAS), then the eviction of that one; the passes below if it moved meanwhile */
            uint32_t cand = UINT32_MAX;
            bool cand_stale = false;
            for (int k = 0; k < 4 && !cand_stale; k++) {
                if (seen(b, k))
                    continue;
                for (uint32_t i = 0; i < RLDI_KEY_BUCKET; i++) {
                    uint32_t j = b[k] * RLDI_KEY_BUCKET + i;
                    int c = evict_candidate(t, j, now, &bank, epoch);
                    if (c == 2) {
                        cand = j;
                        cand_stale = true;
                        break;
                    }
                    if (c == 1 && cand == UINT32_MAX)
                        cand = j;
                }
            }
            if (cand != UINT32_MAX &&
                evict_b(s, t, cand, rldi_load_acquire(&t->entries[cand].gen), now, cand_stale,
                        &bank, epoch) == 1)
                at = cand;
            for (int pass = 0; pass < 2 && at == UINT32_MAX; pass++)  /* stale first */
                for (int k = 0; k < 4 && at == UINT32_MAX; k++) {
                    if (seen(b, k))
                        continue;
                    for (uint32_t i = 0; i < RLDI_KEY_BUCKET && at == UINT32_MAX; i++) {
                        uint32_t j = b[k] * RLDI_KEY_BUCKET + i;
                        uint32_t g = rldi_load_acquire(&t->entries[j].gen);
                        if (evict_b(s, t, j, g, now, pass == 0, &bank, epoch) == 1)
                            at = j;
                    }
                }
        }
        if (at == UINT32_MAX) {
            /* none now: a place another process took, or changed, as we looked? Again (a
             * table of idle keys must never refuse one) */
            if (attempt < 12) {
                if (attempt > 2)
                    sched_yield();
                continue;
            }
            unlock_bucket(lk);
            rldi_add_relaxed(&t->rec->overflows, 1);
            return -ENOSPC;
        }
        if (claim(t, at, &bank, epoch, hash, id, rate, fresh_now, gen) == 0) {
            unlock_bucket(lk);
            *idx = at;
            *created = true;
            return 0;
        }
        /* another key took that place meanwhile (or the hint was wrong: it says held now);
         * look again */
        if (by_hint)
            held_set(&t->buckets[at / RLDI_KEY_BUCKET], at % RLDI_KEY_BUCKET);
    }
    unlock_bucket(lk);
    return -EAGAIN;
found:
    if (caller && rate_set) {
        uint64_t *w = ident_words(&t->entries[*idx]);
        if (rldi_load_relaxed(&w[1]) != rate)
            rldi_store_relaxed(&w[1], rate);
    }
    return 0;
}

uint32_t rldi_key_sweep(const rldi_seg *s, const rldi_table *t, uint32_t first, uint32_t n,
                        rldi_u128 now)
{
    uint32_t done = 0;
    for (uint32_t k = 0; k < n && first + k < t->nbuckets; k++) {
        rldi_key_bucket *bk = &t->buckets[first + k];
        uint32_t held = 0;
        for (uint32_t i = 0; i < RLDI_KEY_BUCKET; i++) {
            uint32_t j = (first + k) * RLDI_KEY_BUCKET + i;
            uint32_t g = rldi_load_acquire(&t->entries[j].gen);
            if ((g & 1) && !evict_finish(t, j, g))
                done += (uint32_t)evict(s, t, j, g, now, false);
            /* held after this look: live, ticketed or claimed (place_free says no) */
            held |= (uint32_t)!place_free(&t->entries[j]) << i;
        }
        /* set the hint right (a claim or eviction racing with this look makes one bit wrong
         * for a moment: a hint, see held_of) */
        uint32_t h = held_of(bk);
        if (h & ~held)
            __atomic_fetch_and(&bk->held, ~(uint64_t)(h & ~held), __ATOMIC_RELAXED);
        if (held & ~h)
            __atomic_fetch_or(&bk->held, (uint64_t)(held & ~h), __ATOMIC_RELAXED);
    }
    return done;
}

int rldi_key_seal(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t epoch,
                  rldi_u128 now, rldi_u128 *word, uint32_t *gen, uint64_t *hash, uint64_t id[2])
{
    rldi_key_entry *e = &t->entries[idx];
    rldi_bank b;
    uint32_t ep;
    tmpl_bank(s, t, &b, &ep);
    for (;;) {
        uint32_t g = rldi_load_acquire(&e->gen);
        rldi_u128 w = rldi_load16_split(&e->tat);
        if (!(g & 1) || (uint32_t)(w >> 96) != g || RLDI_KEY_EPOCH(g) != epoch)
            return 0;
        rldi_bank kb;
        key_bank(t, &b, rldi_load_relaxed(&ident_words(e)[1]), &kb);
        bool keep = rldi_load_relaxed(&e->waiters) || !idle(&kb, w, now);
        rldi_u128 sealed = (w & ~((rldi_u128)UINT32_MAX << 96)) |
                           (rldi_u128)(g ^ RLDI_KEY_SEALED) << 96;
        if (!rldi_cas16(&e->tat, &w, sealed))
            continue;                   /* a take landed: read it again */
        if (!keep)
            return 0;                   /* idle: a new key is the same, nothing to move */
        uint64_t *iw = ident_words(e);
        *word = w;
        *gen = g;
        *hash = rldi_load_relaxed(&e->hash);
        id[0] = rldi_load_relaxed(&iw[0]);
        id[1] = rldi_load_relaxed(&iw[1]);
        return 1;
    }
}

void rldi_key_unseal(const rldi_table *t, uint32_t idx)
{
    rldi_key_entry *e = &t->entries[idx];
    uint32_t g = rldi_load_acquire(&e->gen);
    rldi_u128 w = rldi_load16_split(&e->tat);
    if ((g & 1) && (uint32_t)(w >> 96) == (g ^ RLDI_KEY_SEALED))
        rldi_cas16(&e->tat, &w, (w & ~((rldi_u128)UINT32_MAX << 96)) | (rldi_u128)g << 96);
}

int rldi_key_place(const rldi_table *t, uint64_t hash, const uint64_t id[2], rldi_u128 word,
                   uint32_t gen)
{
    uint32_t b[4];
    buckets_of(hash, t->nbuckets, b);
    int best = -1;
    uint32_t most = 0;
    for (int k = 0; k < 4; k++) {
        uint32_t f = seen(b, k) ? 0 : free_in(t, b[k]);
        if (f > most) {
            most = f;
            best = k;
        }
    }
    if (best < 0)
        return -ENOSPC;
    for (uint32_t i = 0; i < RLDI_KEY_BUCKET; i++) {
        uint32_t j = b[best] * RLDI_KEY_BUCKET + i;
        rldi_key_entry *e = &t->entries[j];
        if (e->gen & 1)
            continue;
        uint32_t g = (gen & ~RLDI_KEY_SEQ_MASK) | ((e->gen + 1) & RLDI_KEY_SEQ_MASK);
        e->tat = (uint64_t)word;
        e->frac_ver = (uint64_t)(word >> 64 & 0xffffffffu) | (uint64_t)g << 32;
        e->hash = hash;
        memcpy((uint8_t *)e + 32, id, 16);
        t->buckets[b[best]].tag[i] = tag_of(hash);
        t->buckets[b[best]].held |= 1u << i;
        e->gen = g;
        t->rec->live++;
        return 0;
    }
    return -ENOSPC;
}

int rldi_key_reset(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                   rldi_u128 now)
{
    rldi_key_entry *e = &t->entries[idx];
    rldi_bank b, kb;
    uint32_t epoch;
    tmpl_bank(s, t, &b, &epoch);
    key_bank(t, &b, rldi_load_relaxed(&ident_words(e)[1]), &kb);
    rldi_u128 word = rldi_load16_split(&e->tat);
    for (;;) {
        if ((uint32_t)(word >> 96) != gen)
            return 0;                   /* evicted meanwhile: full */
        if (rldi_cas16(&e->tat, &word, fresh(&kb, now, gen)))
            return 0;
    }
}

bool rldi_key_claimed(const rldi_table *t, uint32_t idx, rldi_u128 *word)
{
    rldi_key_entry *e = &t->entries[idx];
    uint64_t gw = rldi_load_acquire((const uint64_t *)&e->gen);
    uint32_t g = (uint32_t)gw;
    *word = rldi_load16_split(&e->tat);
    if (g & 1)
        return false;
    if ((uint32_t)(gw >> 32) & RLDI_KEY_TICKET)
        return true;                            /* a claimer's ticket */
    uint32_t v = (uint32_t)(*word >> 96);
    return (v & 1) && (v & RLDI_KEY_SEQ_MASK) == ((g + 1) & RLDI_KEY_SEQ_MASK);
}

/* Is the process with pid PID gone? (kill(2): ESRCH.) */
static bool gone(uint32_t pid)
{
    return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int rldi_key_unclaim(const rldi_table *t, uint32_t idx, rldi_u128 word)
{
    rldi_key_entry *e = &t->entries[idx];
    uint64_t *gwp = (uint64_t *)&e->gen;
    uint64_t gw = rldi_load_acquire(gwp);
    uint32_t g = (uint32_t)gw, tk = (uint32_t)(gw >> 32);
    if (g & 1)
        return 0;
    if (tk & RLDI_KEY_TICKET) {
        if (!gone(tk & ~RLDI_KEY_TICKET))
            return 0;                           /* its claimer lives: slow or stopped, its place */
        if ((uint32_t)(word >> 96) == g)        /* it died holding the ticket alone */
            return __atomic_compare_exchange_n(gwp, &gw, (uint64_t)g, false, __ATOMIC_RELEASE,
                                               __ATOMIC_RELAXED);
    } else if ((uint32_t)(word >> 96) == g) {
        return 0;                               /* not claimed */
    }
    uint32_t g2 = (g & ~RLDI_KEY_SEQ_MASK) | ((g + 2) & RLDI_KEY_SEQ_MASK);
    if (!rldi_cas16(&e->tat, &word, (rldi_u128)g2 << 96))
        return 0;
    if (__atomic_compare_exchange_n(gwp, &gw, (uint64_t)g2, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
        held_clear(&t->buckets[idx / RLDI_KEY_BUCKET], idx % RLDI_KEY_BUCKET);
    return 1;
}

size_t rldi_key_prefix(const rldi_table *t, const rldi_key_entry *e, uint8_t *out, size_t *len)
{
    uint8_t b[16];
    uint64_t w[2] = { rldi_load_relaxed(&((const uint64_t *)((const uint8_t *)e + 32))[0]),
                      rldi_load_relaxed(&((const uint64_t *)((const uint8_t *)e + 32))[1]) };
    memcpy(b, w, 16);
    size_t keep = (t->flags & RLDI_TMPL_CALLER_RATE) ? RLDI_KEY_RATE_PREFIX : RLDI_KEY_PREFIX;
    *len = (size_t)b[0] + 1;
    size_t n = *len < keep ? *len : keep;
    memcpy(out, b + 1, n);
    return n;
}

uint64_t rldi_key_rate_word(uint64_t count, uint64_t period_ns)
{
    uint64_t ms = period_ns / 1000000u;
    if (count == 0 || count > UINT32_MAX || period_ns % 1000000u || ms == 0 || ms > UINT32_MAX)
        return 0;
    return count | ms << 32;
}
