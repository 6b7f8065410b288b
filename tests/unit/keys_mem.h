/*
 * keys_mem.h - a key table in memory for unit tests of common/keys.c: a segment with one
 * template slot (slot 0) and its table, built the way daemon/dseg.c builds them (header
 * record, template slot with its bank and epoch, meta kind TEMPLATE), with a secret of the
 * test's choice. Header-only: each test includes it once.
 */
#ifndef RLD_TESTS_KEYS_MEM_H
#define RLD_TESTS_KEYS_MEM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "cell.h"
#include "keys.h"
#include "limitdef.h"
#include "segment.h"

typedef struct keys_mem {
    rldi_seg    seg;
    rldi_table  t;
    void       *mem;
    uint64_t    size;
} keys_mem;

/* A template of COUNT per PERIOD_NS (ALGO, BURST 0: COUNT) holding MAX_KEYS keys, secret K.
 * 0, or -1. */
static inline int keys_mem_make(keys_mem *m, uint32_t max_keys, uint32_t algo, uint64_t count,
                                uint64_t period_ns, uint64_t burst, const uint64_t k[2])
{
    memset(m, 0, sizeof(*m));
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    m->size = rldi_seg_geometry_keys(4, rldi_keys_table_bytes(max_keys), &geo);
    if (m->size == 0 || posix_memalign(&m->mem, 4096, m->size) != 0)
        return -1;
    memset(m->mem, 0, m->size);
    memcpy(m->mem, &geo, sizeof(geo));
    rldi_seg_bind(&m->seg, m->mem, m->size);
    rldi_shm_header *h = m->seg.hdr;
    h->key_secret[0] = k[0];
    h->key_secret[1] = k[1];
    uint32_t nb = rldi_keys_nbuckets(max_keys);
    rldi_tmpl *r = &h->tmpl[0];
    r->slot = 0;
    r->gen = 1;
    r->nbuckets = nb;
    r->max_keys = max_keys;
    r->buckets_off = h->keys_off;
    r->entries_off = r->buckets_off + (uint64_t)nb * sizeof(rldi_key_bucket);
    r->entry_base = 0;
    r->flags = 1u << 8;                 /* epoch 1 */
    h->tmpl_count = 1;
    h->state = RLDI_STATE_READY;        /* (a growing segment says otherwise) */
    rldi_limitdef def;
    memset(&def, 0, sizeof(def));
    snprintf(def.name, sizeof(def.name), "t");
    def.count = count;
    def.period_ns = period_ns;
    def.burst = burst;
    def.algo = algo;
    def.kind = RLDI_KIND_TEMPLATE;
    def.max_keys = max_keys;
    rldi_bank b;
    if (rldi_limitdef_bank(&def, &b) < 0)
        return -1;
    rldi_slot *sl = &m->seg.slots[0];
    sl->gen = 1;
    sl->flags = RLDI_SLOT_LIVE;
    sl->waiters = UINT32_MAX;           /* a template's slot is never a limit (dseg.c) */
    rldi_bucket_publish_template(sl, &b, 1);
    m->seg.meta[0].kind = RLDI_KIND_TEMPLATE;
    m->seg.meta[0].tmpl = 0;
    return rldi_table_of(&m->seg, 0, 1, &m->t) == 0 ? 0 : -1;
}

/* Every entry free again (a cleared table, as dseg.c's table_clear leaves it). */
static inline void keys_mem_clear(keys_mem *m)
{
    memset(m->t.buckets, 0,
           (size_t)m->t.nbuckets * (sizeof(rldi_key_bucket) + RLDI_KEY_BUCKET * sizeof(rldi_key_entry)));
    m->t.rec->live = m->t.rec->evictions = m->t.rec->overflows = 0;
}

static inline void keys_mem_free(keys_mem *m)
{
    free(m->mem);
    m->mem = NULL;
}

/* What rld_try_key does with a clock read NOW: find or create the key, then take COST at
 * NOW, again (up to four times) when the key is reclaimed in between. *CREATED: made here. */
static inline int keys_mem_try(keys_mem *m, const void *key, size_t len, uint64_t cost,
                               uint64_t now_ns, bool *created)
{
    rldi_u128 now = rldi_fp_from_ns(now_ns);
    for (int attempt = 0;; attempt++) {
        uint32_t idx, gen;
        bool c = false;
        int r = rldi_key_get(&m->seg, &m->t, key, len, 0, false, now, &idx, &gen, &c);
        if (created)
            *created = c;
        if (r < 0)
            return r;
        rldi_cell cell;
        rldi_cell_of_key(&m->seg, &m->t, idx, gen, &cell);
        r = rldi_bucket_take_cell(&m->seg, &cell, cost, now, 0, NULL);
        if (r == -ESTALE && attempt < 3)
            continue;
        return r;
    }
}

/* keys.c's buckets_of (static there): the four buckets a key of hash H may live in. */
static inline void keys_mem_buckets(uint64_t h, uint32_t nb, uint32_t b[4])
{
    uint32_t b1 = (uint32_t)(((h & 0xffffffffu) * nb) >> 32);
    uint32_t b2 = (uint32_t)((((h * 0x9E3779B97F4A7C15ull) >> 32) * nb) >> 32);
    b[0] = b1;
    b[1] = b1 + 1 == nb ? 0 : b1 + 1;
    b[2] = b2;
    b[3] = b2 + 1 == nb ? 0 : b2 + 1;
}

#endif
