/*
 * cell.h - what admission works on, inside common/ (bucket.c, window.c, keys.c): a state
 * word, its identity and its configuration. A named limit's cell is its slot; a key's cell
 * is its entry in a template's table (keys.h), configured by the template's slot.
 *
 * A view (bucket.h's rldi_view) is built from a cell: the word, decoded, and the config bank
 * that goes with it. For a slot that is the bank its word's version names (the daemon swaps
 * bank and state in one CAS). A key's word carries its own gen in the version field instead
 * (so no CAS built on another key that lived in the entry can land), and its bank is the one
 * its template's word names: the template's word is re-read with the key's word before a
 * verdict that publishes nothing is trusted, as a seqlock reader would, and a key made in
 * another epoch of its template (a change of algorithm or reset of every key) is stale.
 */
#ifndef RLD_COMMON_CELL_H
#define RLD_COMMON_CELL_H

#include "bucket.h"
#include "keys.h"

typedef struct rldi_cell {
    uint64_t        *word;      /* the 16-byte state word (16-aligned) */
    const uint64_t  *genw;      /* gen | waiters << 32 */
    const rldi_slot *cfg;       /* the banks: the limit's own slot, or the key's template's */
    rldi_ring       *ring;      /* a named limit's sliding-window ring; NULL for a key */
    const uint32_t  *queued32;  /* a key's queued tokens (its bucket's header); NULL: cfg's */
    uint32_t         meta;      /* the slot whose meta (max_debt) and counters apply */
    uint32_t         gen;       /* the handle's */
    uint32_t         hslot;     /* the handle's slot (a key's: slot_count + its entry) */
    uint32_t         tmpl_gen;  /* a key: its template slot's gen */
    const uint64_t  *rate;      /* a key of a rate = caller template: its rate word (keys.h) */
    bool             keyed;
} rldi_cell;

/* A rate = caller key's bank, from its rate word (its template's algorithm and alignment):
 * 0, or -EINVAL for a word out of range (a hostile writer's). */
int rldi_cell_caller_rate(const rldi_cell *c, rldi_view *v);

/* The cell of H: 0, or -EINVAL for a handle no lookup could have produced (a detached client
 * has no slots: every handle). */
int rldi_cell_of(const rldi_seg *s, rldi_handle h, rldi_cell *c);

/* The view of C with state WORD. -ESTALE when the limit or key behind the handle is gone. */
static inline int rldi_cell_view(const rldi_cell *c, rldi_u128 word, rldi_view *v)
{
    uint64_t tat = (uint64_t)word, fv = (uint64_t)(word >> 64);
    uint64_t gw = rldi_load_relaxed(c->genw);         /* gen | waiters << 32 */
    if (rldi_unlikely((uint32_t)gw != c->gen || !(c->gen & 1)))
        return -ESTALE;
    if (rldi_unlikely(!c->keyed && (uint32_t)(gw >> 32) == UINT32_MAX))
        return -EINVAL;               /* a template's slot (dseg.c): not a limit */
    uint32_t parity = (uint32_t)(fv >> 32);
    v->cfg_word = 0;
    if (c->keyed) {
        rldi_u128 tw = rldi_load16_split(&c->cfg->tat);    /* epoch | frac | ver */
        if ((uint32_t)(fv >> 32) != c->gen ||
            (uint8_t)(uint64_t)tw != (uint8_t)RLDI_KEY_EPOCH(c->gen) ||
            rldi_load_relaxed(&c->cfg->gen) != c->tmpl_gen)
            return -ESTALE;
        v->cfg_word = tw;
        parity = (uint32_t)(tw >> 96);
    }
    const rldi_bank *b = &c->cfg->bank[parity & 1];
    v->word = word;
    v->tat = rldi_tat_unpack(tat, fv);
    v->ver = (uint32_t)(fv >> 32);
    v->waiters = (uint32_t)(gw >> 32);
    v->t = ((rldi_u128)rldi_load_relaxed(&b->t_hi) << 64) | rldi_load_relaxed(&b->t_lo);
    v->burst = rldi_load_relaxed(&b->burst);
    uint64_t bits = rldi_load_relaxed(&b->inv_t);
    memcpy(&v->inv, &bits, sizeof(v->inv));
    if (rldi_unlikely(c->rate != NULL))
        return rldi_cell_caller_rate(c, v);
    return 0;
}

/* True when C's word (and a key's template word) still are what V was built from. */
static inline bool rldi_cell_still(const rldi_cell *c, const rldi_view *v)
{
    rldi_fence_acquire();
    return rldi_load16_split(c->word) == v->word &&
           (!c->keyed || rldi_load16_split(&c->cfg->tat) == v->cfg_word);
}

/* True, with WORD reloaded, when the state moved since V was read: decide again. */
static inline bool rldi_cell_moved(const rldi_cell *c, const rldi_view *v, rldi_u128 *word)
{
    if (rldi_cell_still(c, v))
        return false;
    *word = rldi_load16_split(c->word);
    return true;
}

/* The tokens C's waiters want (the daemon publishes them). */
static inline uint64_t rldi_cell_queued(const rldi_cell *c)
{
    return c->queued32 ? rldi_load_relaxed(c->queued32) : rldi_load_relaxed(&c->cfg->queued);
}

/* The waiters of C now. */
static inline uint32_t rldi_cell_waiters(const rldi_cell *c)
{
    return (uint32_t)(rldi_load_relaxed(c->genw) >> 32);
}

/* rldi_bucket_take_any on a resolved cell (keys: librld's rld_try_key). */
int rldi_bucket_take_cell(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                          unsigned flags, rldi_verdict *out);

/* The cell of entry IDX of table T (keys.h), for a handle of gen GEN. */
void rldi_cell_of_key(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                      rldi_cell *c);

/* window.c: the window algorithms, with bucket.c's contracts, on a resolved cell */
int rldi_win_take(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                  unsigned flags, rldi_u128 word, rldi_verdict *out);
int rldi_win_probe(const rldi_seg *s, const rldi_cell *c, uint64_t cost, rldi_u128 now,
                   unsigned flags, rldi_verdict *out);
int rldi_win_estimate(const rldi_seg *s, const rldi_cell *c, uint64_t extra, uint64_t cost,
                      rldi_u128 now, rldi_verdict *out);
int rldi_win_peek(const rldi_seg *s, const rldi_cell *c, rldi_u128 now, rldi_verdict *out);
int rldi_win_refund(const rldi_seg *s, const rldi_cell *c, uint64_t amount, uint32_t window,
                    rldi_u128 now);
int rldi_win_debit(const rldi_seg *s, const rldi_cell *c, uint64_t amount, uint64_t max_debt_ns,
                   rldi_u128 now);
/* rldi_bucket_sync on a window limit (window.c). */
int rldi_win_sync(const rldi_seg *s, const rldi_cell *c, uint64_t remaining, uint64_t reset_ns,
                  rldi_u128 now, rldi_sync_out *out);
/* Is a key's window state WORD (its bank B: the template's, or one with the key's own
 * period in t_lo and count in burst) empty at NOW: what a new key's would be? */
bool rldi_win_idle(const rldi_bank *b, rldi_u128 word, rldi_u128 now);
/* The state word of a new key of window bank B (as above) at NOW, version VER. */
rldi_u128 rldi_win_fresh_key(const rldi_bank *b, rldi_u128 now, uint32_t ver);

#endif
