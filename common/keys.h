/*
 * keys.h - keyed limits: a template's table of per-key buckets (per IP, per user, per
 * tenant), created by the clients themselves in shared memory, no daemon round trip.
 *
 * A template is a slot of its own (name, config banks, counters; meta kind TEMPLATE); its
 * table (layout.h: rldi_tmpl, rldi_key_bucket, rldi_key_entry) holds up to 8/7 x max_keys
 * entries in buckets of 8. A key lives in one entry of one of four buckets: b1, b1 + 1, b2,
 * b2 + 1, with b1 and b2 from a SipHash of the key keyed by a secret drawn per segment, so
 * keys an attacker chooses cannot be made to share buckets. A key's entry is a limit in
 * every respect: its handle is {slot_count + entry_base + index, gen} and every bucket.h
 * function takes it.
 *
 * Lifecycle of an entry (gen: bits 0-23 a counter, odd while a key lives there; bits 24-31
 * the template's epoch when it was made; the state word's ver field always equals the gen of
 * the key it belongs to, so a CAS built on another incarnation fails):
 *
 *   free (gen g even, ver g) --ticket: CAS gen|waiters g|w -> g|pid (RLDI_KEY_TICKET)-->
 *   ticketed --CAS word ver g -> g+1, fresh state--> claimed
 *   claimed --identity written, tag set, gen|waiters g|pid -> g+1|0 (CAS)--> live
 *   (ticketed or claimed, its claimer gone: the daemon's sweep frees it, rldi_key_unclaim)
 *   live (idle: full again, no waiters) --CAS word -> ver g+2, then gen -> g+2--> free
 *
 * Inserting a key takes the lock of its first bucket, so two processes never insert the
 * same key twice; everything else (lookups, takes, eviction) is lock-free. The place a new
 * key takes is chosen by its buckets' headers' hint of held places (layout.h
 * rldi_key_bucket.held), never trusted: the claim's CAS checks it, and buckets the hint
 * calls full are scanned entry by entry. docs/DESIGN.md
 * ("Keyed limits") proves that an eviction racing with a take loses nothing and admits
 * nothing extra: the eviction is a CAS of the state word from an idle state, which any take
 * that landed first makes fail, and which makes any take that comes after fail.
 */
#ifndef RLD_COMMON_KEYS_H
#define RLD_COMMON_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gcra.h"
#include "layout.h"
#include "segment.h"

#define RLDI_KEY_SEQ_MASK   0x00ffffffu
/* In a free entry's waiters while a process claims it: that process's pid | this bit
 * (a live key's waiters is a count of waiters, far below) */
#define RLDI_KEY_TICKET     0x80000000u
extern void (*rldi_key_claim_hook)(uint32_t idx);   /* tests only: a pause inside a claim */
#define RLDI_KEY_EPOCH(gen) ((gen) >> 24)

/* A template's table, its offsets checked against the mapping. */
typedef struct rldi_table {
    rldi_key_bucket *buckets;
    rldi_key_entry  *entries;
    rldi_tmpl       *rec;        /* the header's record (counters) */
    uint32_t         nbuckets;
    uint32_t         entry_base;
    uint32_t         index;      /* in header->tmpl[] */
    uint32_t         slot, gen;  /* the template's slot */
    uint32_t         flags;      /* RLDI_TMPL_* */
} rldi_table;

/* Entries and bytes of a table for MAX_KEYS keys (64 B per key, rounded up to buckets). */
uint32_t rldi_keys_nbuckets(uint32_t max_keys);
uint64_t rldi_keys_table_bytes(uint32_t max_keys);

/* SipHash-1-3 of DATA[0..LEN) under the 128-bit key K (64-bit result). */
uint64_t rldi_siphash13(const uint64_t k[2], const void *data, size_t len);

/* Table INDEX of S (0 .. tmpl_count - 1), checked: 0, or RLD_ECORRUPT / -ENOENT. */
int rldi_table_get(const rldi_seg *s, uint32_t index, rldi_table *t);

/* The table of template slot SLOT (gen GEN): 0, -ESTALE (not a live template now), -EINVAL,
 * RLD_ECORRUPT. */
int rldi_table_of(const rldi_seg *s, uint32_t slot, uint32_t gen, rldi_table *t);

/* The table and entry index of key handle slot HSLOT (>= slot_count): 0, or -EINVAL. */
int rldi_table_of_entry(const rldi_seg *s, uint32_t hslot, rldi_table *t, uint32_t *idx);

/* The template's epoch now (keys of another one are stale) and its slot's word. */
uint32_t rldi_table_epoch(const rldi_seg *s, const rldi_table *t);

/*
 * The entry of KEY (LEN bytes, hash HASH) in T, of epoch EPOCH: 0 with *IDX and *GEN, or
 * -ENOENT. Lock-free; a key being evicted meanwhile may be returned (its takes then say
 * -ESTALE and the caller looks again).
 */
int rldi_key_find(const rldi_table *t, uint64_t hash, const void *key, size_t len,
                  uint32_t epoch, uint32_t *idx, uint32_t *gen);

/*
 * Find KEY, or insert it: free places first, then an idle key's (evicted, lossless). RATE:
 * for RLDI_TMPL_CALLER_RATE tables, the key's rate word (COUNT | PERIOD_ms << 32), set when
 * it is created (and, when RATE_SET, changed when it exists). 0 with *IDX, *GEN and
 * *CREATED; -ENOSPC when every place is held by a key with state (the overflow policy is
 * the caller's); -EAGAIN when the insertion lock could not be had (a holder alive but stuck).
 */
int rldi_key_get(const rldi_seg *s, const rldi_table *t, const void *key, size_t len,
                 uint64_t rate, bool rate_set, rldi_u128 now, uint32_t *idx, uint32_t *gen,
                 bool *created);

/*
 * rld_try_key's admission on entry IDX of T (its key's gen GEN) for the common case, from
 * the state word and the template's bank with no view built: a GCRA template (not rate =
 * caller), a live key of the template's epoch with no waiters, 1 <= COST <= burst, and an
 * admission won at the first CAS. Exactly what rldi_bucket_take_cell decides then (the
 * same arithmetic as librld's inline path, bucket.h rldi_bucket_take_busy): 0 admitted,
 * with V (may be NULL) filled. 1: not decided here (a denial, a lost race, anything else):
 * the caller calls rldi_bucket_take_cell, which decides every case.
 */
int rldi_key_take(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                  uint64_t cost, uint64_t now_ns, rldi_verdict *v);

/*
 * rld_try_key on an existing key in one call: look KEY up (epoch: the template's now) and
 * rldi_key_take it. 0 admitted (V filled); 1 found (*IDX, *GEN) but not decided here: the
 * caller takes with rldi_bucket_take_cell; -ENOENT not found: rldi_key_get inserts it;
 * -EINVAL a bad length.
 */
int rldi_key_try(const rldi_seg *s, const rldi_table *t, const void *key, size_t len,
                 uint64_t cost, uint64_t now_ns, uint32_t *idx, uint32_t *gen, rldi_verdict *v);

/* Evict entry IDX of T if its key (gen GEN) is idle at NOW: full again, nobody waiting. 1
 * evicted, 0 not idle (or gone already). Lock-free; safe against any take (keys.h top). */
int rldi_key_evict(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                   rldi_u128 now);

/* Evict the stale and idle keys of buckets [FIRST, FIRST + N) of T (the daemon's sweep);
 * returns how many. */
uint32_t rldi_key_sweep(const rldi_seg *s, const rldi_table *t, uint32_t first, uint32_t n,
                        rldi_u128 now);

/* Make entry IDX's key (gen GEN) full again: 0 (an evicted one is full already). */
int rldi_key_reset(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                   rldi_u128 now);

/* Entry IDX of T, found claimed (a free gen and a claimer's ticket, or a claimed word) with
 * word WORD at an earlier sweep and unchanged since: freed again when its claimer is gone
 * (the ticket's pid: kill(2) says ESRCH), never while it lives: 1 done, 0 not (it lives, or
 * moved on). A claim without a ticket (none is made so any more) is freed as before. */
int rldi_key_unclaim(const rldi_table *t, uint32_t idx, rldi_u128 word);
/* Is entry IDX of T claimed and not yet live (*WORD its state word)? */
bool rldi_key_claimed(const rldi_table *t, uint32_t idx, rldi_u128 *word);

/*
 * Moving keys to a new segment (the daemon grows the segment, daemon/dseg.c). Seal entry IDX
 * of T: its key can take no more (its word's version no longer equals its gen, so every CAS
 * and view fails, -ESTALE); 1 with *WORD its final state (version: its gen), *GEN, *HASH and
 * its identity words ID; 0 when no key of epoch EPOCH with state lives there (free, stale,
 * idle: nothing to move). Unseal undoes it (a growth that did not complete).
 */
#define RLDI_KEY_SEALED     0x00800000u          /* in the word's version: gen ^ this */
int rldi_key_seal(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t epoch,
                  rldi_u128 now, rldi_u128 *word, uint32_t *gen, uint64_t *hash, uint64_t id[2]);
void rldi_key_unseal(const rldi_table *t, uint32_t idx);
/* Place a key (HASH, identity ID) with state WORD in T, of a segment nobody else uses yet;
 * its gen is GEN's epoch and a new count. 0, or -ENOSPC. */
int rldi_key_place(const rldi_table *t, uint64_t hash, const uint64_t id[2], rldi_u128 word,
                   uint32_t gen);

/* A key's printable form for rlctl: its bytes kept in the entry (all of them when LEN <=
 * the prefix). */
size_t rldi_key_prefix(const rldi_table *t, const rldi_key_entry *e, uint8_t *out, size_t *len);

/* The rate word of a rate = caller key: COUNT | PERIOD_ms << 32; 0 when out of range. */
uint64_t rldi_key_rate_word(uint64_t count, uint64_t period_ns);

#endif
