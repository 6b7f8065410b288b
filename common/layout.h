/*
 * layout.h - the shared-memory segment of one rld instance: a sealed memfd handed out by its
 * keeper on <runtime>/<instance>.seg (handout.h).
 *
 * The daemon creates it and owns its shape; clients map it read-write and only move the
 * per-limit state words. Every process maps it at its own address, so nothing in it is a
 * pointer: everything is an offset from the segment base or an index.
 *
 *   +--------------------+ 0
 *   | rldi_shm_header    |   magic, ABI, geometry, epoch, daemon liveness (4 KiB reserved)
 *   +--------------------+ header->slots_off
 *   | rldi_slot[n]       |   128 B each: hot state line + read-mostly config line
 *   +--------------------+ header->meta_off
 *   | rldi_meta[n]       |   192 B each: name, the rate as configured, give-back counters
 *   +--------------------+ header->rings_off
 *   | rldi_ring[n]       |   128 B each: a sliding window's past sub-windows (window.h)
 *   +--------------------+ header->index_off
 *   | uint32_t index[m]  |   open-addressing hash: name -> slot + 1 (0 empty, ~0 deleted)
 *   +--------------------+ header->keys_off (a page boundary)
 *   | key tables         |   per template (header->tmpl[]): bucket headers (64 B each),
 *   |                    |   then entries (48 B each, 8 per bucket): keys.h
 *   +--------------------+ header->segment_size
 *
 * Any change of a field's meaning or offset bumps RLDI_ABI_MAJOR; appending into reserved
 * room bumps RLDI_ABI_MINOR. Static assertions below pin every offset.
 */
#ifndef RLD_COMMON_LAYOUT_H
#define RLD_COMMON_LAYOUT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define RLDI_MAGIC          "RLDSHM\x00\x01"   /* 8 bytes, NUL inside on purpose */
#define RLDI_ABI_MAJOR      3u   /* 2: sealed memfd handed out by the keeper; gen parity;
                                  * 3: meta of 192 bytes (give-back counters, overrides) */
#define RLDI_ABI_MINOR      1u   /* (2.1 was rldi_slot.lease_hint_ns, global limits; 2.2 keyed
                                  *  limits: templates, key tables, RLDI_FEATURE_KEYS; 2.3
                                  *  shadow mode (RLDI_SLOT_SHADOW, rldi_slot.shadowed),
                                  *  meta.concurrency (leases), breakers (RLDI_KIND_BREAKER),
                                  *  fixed-window holds (window.h): all part of 3.0)
                                  * 3.1: rldi_key_bucket.held, once reserved (0): a hint that
                                  *  3.0 clients neither read nor keep, and that no client
                                  *  trusts (keys.c), so 3.0 and 3.1 share a segment */
#define RLDI_HEADER_SIZE    4096u
#define RLDI_SLOT_SIZE      128u
#define RLDI_META_SIZE      192u
#define RLDI_NAME_MAX       64u                 /* bytes, without the NUL */
#define RLDI_MAX_SLOTS      (1u << 24)          /* hard cap on max_limits */

/* header->features */
#define RLDI_FEATURE_KEYS   0x1u /* key tables and templates (ABI minor 2) */

/* header->state */
#define RLDI_STATE_INIT     0u   /* being built: clients treat it as absent */
#define RLDI_STATE_READY    1u
#define RLDI_STATE_RETIRED  2u   /* replaced by a new segment (rld --fresh, or grown): attach
                                  * again (the keeper hands out the new one) */
#define RLDI_STATE_RETIRING 3u   /* being replaced: its limits are being sealed and copied;
                                  * a client that meets a sealed one waits for RETIRED */

/*
 * A template's key table (keyed limits, keys.h): where it lives and its counters. The
 * template itself is a slot (name, config banks, counters; meta kind RLDI_KIND_TEMPLATE);
 * its state word's tat field holds the table's epoch (keys of another epoch are stale).
 * Written by the daemon when the segment is built; counters by everyone (relaxed).
 */
#define RLDI_MAX_TEMPLATES  56u
typedef struct rldi_tmpl {
    uint32_t slot;              /*   0 the template's slot */
    uint32_t gen;               /*   4 that slot's gen when the table was made */
    uint32_t nbuckets;          /*   8 buckets of RLDI_KEY_BUCKET entries */
    uint32_t max_keys;          /*  12 as configured */
    uint64_t buckets_off;       /*  16 rldi_key_bucket[nbuckets] */
    uint64_t entries_off;       /*  24 rldi_key_entry[nbuckets * RLDI_KEY_BUCKET] */
    uint32_t entry_base;        /*  32 handles of its keys: slot = slot_count + base + i */
    uint32_t flags;             /*  36 RLDI_TMPL_* */
    uint64_t live;              /*  40 keys live now (relaxed, approximate under races) */
    uint64_t evictions;         /*  48 idle keys reclaimed (insertions and the daemon) */
    uint64_t overflows;         /*  56 new keys refused or let through: the table was full */
} rldi_tmpl;

#define RLDI_TMPL_OVERFLOW_ALLOW 0x1u   /* overflow = allow: a new key that finds no room is admitted */
#define RLDI_TMPL_CALLER_RATE    0x2u   /* rate = caller: each key's rate is in its entry */

/*
 * The key tables. A bucket is a header line and RLDI_KEY_BUCKET entries of 48 bytes (56 B
 * per entry, 64 B per key of capacity at the 7/8 load the tables are sized for).
 *
 * Entry: the state word (as a slot's: GCRA tat|frac, fixed end|count; the ver field holds
 * the entry's gen, so no CAS built on another incarnation can land), gen (bits 0-23 a
 * counter, odd while a key lives there; bits 24-31 the template epoch it was made in),
 * waiters (daemon), and the key's identity: a keyed 64-bit hash, its length and first bytes.
 */
#define RLDI_KEY_BUCKET     8u
#define RLDI_KEY_MAX        256u          /* bytes of a key */
#define RLDI_KEY_PREFIX     15u           /* bytes of the key kept in the entry */
#define RLDI_KEY_RATE_PREFIX 7u           /* rate = caller: the rest holds the key's rate */

typedef struct rldi_key_bucket {
    uint64_t lock;              /*   0 0, or the pid inserting a key whose first bucket this is */
    uint16_t tag[RLDI_KEY_BUCKET];   /*   8 a hint per entry: 16 bits of its hash | 1 (0: never used; a
                                      * free place keeps its last key's: only claims write it) */
    uint32_t queued[RLDI_KEY_BUCKET];/*  24 daemon: tokens wanted by each entry's waiters */
    uint64_t held;              /*  56 a hint (ABI 3.1): bit i set while entry i holds a key
                                 *     (claimed or live), so an insertion chooses a place from
                                 *     the headers alone. Never trusted: a claim's CAS checks
                                 *     the place, and a table the hint calls full is scanned
                                 *     as before (keys.c). Bits 8-63: 0 */
} rldi_key_bucket;

typedef struct rldi_key_entry {
    uint64_t tat;               /*   0 \ 16-byte CAS unit, as a slot's; ver = gen */
    uint64_t frac_ver;          /*   8 / */
    uint32_t gen;               /*  16 */
    uint32_t waiters;           /*  20 */
    uint64_t hash;              /*  24 */
    uint8_t  len1;              /*  32 key length - 1 (keys are 1..256 bytes) */
    uint8_t  prefix[RLDI_KEY_PREFIX];   /*  33 the key's first bytes (rate = caller: 7) */
} rldi_key_entry;
/* rate = caller: the key's rate at offset 40, one 8-byte word read and written whole:
 * COUNT (32 bits) | PERIOD in ms (32 bits) */
#define RLDI_KEY_RATE_OFF   40u

typedef struct rldi_shm_header {
    char     magic[8];          /*   0 RLDI_MAGIC */
    uint16_t abi_major;         /*   8 must equal ours */
    uint16_t abi_minor;         /*  10 may be newer: additions live in reserved room */
    uint32_t header_size;       /*  12 RLDI_HEADER_SIZE */
    uint64_t features;          /*  16 feature bits, none defined yet */
    uint64_t segment_size;      /*  24 bytes, equals the file size */
    uint32_t slot_size;         /*  32 RLDI_SLOT_SIZE */
    uint32_t slot_count;        /*  36 capacity (config: max_limits) */
    uint64_t slots_off;         /*  40 */
    uint32_t meta_size;         /*  48 RLDI_META_SIZE */
    uint32_t index_buckets;     /*  52 power of two, >= 2 * slot_count */
    uint64_t meta_off;          /*  56 */
    uint64_t index_off;         /*  64 */
    uint32_t state;             /*  72 RLDI_STATE_*; READY is stored last, with release */
    uint32_t daemon_pid;        /*  76 pid of the daemon attached now, 0 if none */
    uint64_t created_ns;        /*  80 CLOCK_REALTIME of creation, for humans */
    uint64_t index_seq;         /*  88 seqlock over index + meta: odd while the daemon writes */
    uint64_t limit_count;       /*  96 live limits */
    uint64_t heartbeat_ns;      /* 104 CLOCK_MONOTONIC, refreshed by the running daemon */
    uint64_t config_gen;        /* 112 bumped on every configuration change */
    uint32_t keeper_pid;        /* 120 the process holding the segment between daemons */
    uint32_t reserved1;         /* 124 */
    uint64_t rings_off;         /* 128 */
    uint64_t keys_off;          /* 136 the key tables: a page boundary after the index */
    uint64_t keys_size;         /* 144 bytes: segment_size - keys_off */
    uint64_t key_secret[2];     /* 152 SipHash key of this segment's key hashes (keys.h) */
    uint32_t tmpl_count;        /* 168 entries of tmpl[] in use */
    uint32_t reserved2;         /* 172 */
    uint64_t reserved0[42];     /* 176 .. 512: room for ABI minor additions */
    rldi_tmpl tmpl[RLDI_MAX_TEMPLATES];   /* 512 .. 4096: the templates' key tables */
} rldi_shm_header;

/*
 * One limit. 128 bytes so that two limits never share a cache line nor an adjacent-line
 * prefetch pair. Line 0 is written by every admission; line 1 only by the daemon.
 *
 * The state is one 16-byte word changed only by a 16-byte compare-and-swap:
 *   tat      integer nanoseconds of the theoretical arrival time (CLOCK_MONOTONIC)
 *   frac_ver low 32 bits: the TAT's fraction of a nanosecond (units of 2^-32 ns);
 *            high 32 bits: the config version. Config bank (ver & 1) holds the rate
 *            this TAT was computed with; the daemon publishes a new rate by writing the
 *            other bank and then swapping TAT and version in one CAS, so no reader can
 *            ever combine an old rate with a new state (or the reverse).
 */
typedef struct rldi_bank {
    uint64_t t_lo, t_hi;        /* emission interval T, 2^-32 ns units (128-bit); 0 = unlimited */
    uint64_t burst;             /* tokens; tau = burst * T */
    uint64_t inv_t;             /* bits of the IEEE double 1.0 / T: a hint, checked on use */
} rldi_bank;

/*
 * The algorithm of a bank is in the top byte of t_hi: 0 is GCRA (T never reaches 2^120
 * units), so the fast path's test "t_hi == 0" sends every other algorithm to the slow path.
 * A window bank (window.h) reads: t_lo = PERIOD in ns, burst = COUNT, inv_t = the alignment
 * (fixed) or the sub-window width in ns (sliding).
 */
#define RLDI_ALGO_SHIFT     56
#define RLDI_ALGO_GCRA      0u
#define RLDI_ALGO_SLIDING   1u
#define RLDI_ALGO_FIXED     2u
#define RLDI_ALGO_BREAKER   3u   /* a breaker's bank (breaker.h), never a limit's */
#define RLDI_BANK_ALGO(b_t_hi) ((uint32_t)((b_t_hi) >> RLDI_ALGO_SHIFT))

typedef struct rldi_slot {
    /* line 0: hot */
    uint64_t tat;               /*   0 \ 16-byte CAS unit, 16-aligned */
    uint64_t frac_ver;          /*   8 / */
    uint32_t gen;               /*  16 identity, odd while live: +1 at create and at delete;
                                 *     handles carry it, so a free slot (even) matches none */
    uint32_t waiters;           /*  20 queued waits (daemon): fast path denies while non-zero */
    uint64_t queued;            /*  24 tokens wanted by those waiters */
    uint64_t admitted;          /*  32 tokens admitted and kept (relaxed counter; see meta
                                 *     for those given back, rolled back and debited) */
    uint64_t denied;            /*  40 calls denied (relaxed counter) */
    uint32_t flags;             /*  48 RLDI_SLOT_* */
    uint32_t shadowed;          /*  52 shadow mode: calls admitted that the limit would have
                                 *     denied (relaxed counter, wraps at 2^32) */
    uint64_t lease_hint_ns;     /*  56 a global limit's pool (limitdef.h): the ns per token its
                                 *     leases bring, written by the daemon; denials and wait
                                 *     estimates use it instead of the pool's slow bank. 0: a
                                 *     host limit */
    /* line 1: config banks, written by the daemon only while not current */
    rldi_bank bank[2];          /*  64 */
} rldi_slot;

#define RLDI_SLOT_LIVE      1u   /* slot holds a limit (else free) */
#define RLDI_SLOT_SHADOW    2u   /* mode = shadow: admits what it would deny, counts it in
                                  * shadowed (a template's flag holds for its keys) */

/*
 * A breaker's slot (meta kind RLDI_KIND_BREAKER, breaker.h): waiters is ~0 (as a
 * template's: no fast path takes it for a limit), its state word is the breaker's (state,
 * counts, times), its banks hold its configuration (RLDI_ALGO_BREAKER), admitted and denied
 * count the calls it let through and refused, and two fields no breaker uses otherwise
 * count its transitions: queued = times it opened, lease_hint_ns = times it closed.
 */

/*
 * What the daemon knows of a limit (lines 0 and 1, and file_def_hash: written by the daemon
 * only, read under index_seq) and the counters of tokens that went back or around admission
 * (line 2: added to by clients and the daemon, relaxed). The counters live here, not beside
 * `admitted` in the slot, because the slot's hot line is full (4 bytes at 52 are left, the
 * only room a new admission algorithm has there); these are published in batches, so the
 * cold line they cost is paid once per batch.
 */
typedef struct rldi_meta {
    char     name[RLDI_NAME_MAX + 1]; /*   0 NUL-terminated */
    uint8_t  algo;                    /*  65 RLDI_ALGO_*, as configured */
    uint8_t  kind;                    /*  66 RLDI_KIND_*: a limit or a template */
    uint8_t  tmpl;                    /*  67 a template: its index in header->tmpl[] */
    uint32_t concurrency;             /*  68 leases in flight at most (concurrency = N); 0: none */
    uint64_t rate_count;              /*  72 as configured: COUNT/PERIOD */
    uint64_t rate_period_ns;          /*  80 */
    uint64_t burst;                   /*  88 */
    uint32_t unlimited;               /*  96 */
    uint32_t origin;                  /* 100 RLDI_ORIGIN_*: who created it */
    uint64_t name_hash;               /* 104 */
    uint64_t max_debt_ns;             /* 112 the most one call may put it in debt (beyond tau) */
    uint64_t align_ns;                /* 120 fixed windows: their offset from the period's multiples */
    /* line 2: counters (relaxed adds), since the limit was created */
    uint64_t refunded;                /* 128 tokens given back after admission (rld_refund,
                                       *     a granted wait cancelled or never collected) */
    uint64_t rolled_back;             /* 136 tokens taken and put back inside one all-or-nothing
                                       *     call that failed (never counted as admitted) */
    uint64_t debited;                 /* 144 tokens taken without asking (rld_debit) */
    /* ORIGIN_OVERRIDE: the file's definition when the override was made (rldi_limitdef
     * fields hashed by the daemon); another hash means the file's line changed since */
    uint64_t file_def_hash;           /* 152 */
    uint64_t reserved3[4];            /* 160 .. 192 */
} rldi_meta;

/* A sliding window's 16 past sub-windows: entry j % 16 holds sub-window j's count (24 bits)
 * and index (40 bits), written before the head moves past it (window.h). */
#define RLDI_RING_ENTRIES   16u
typedef struct rldi_ring {
    uint64_t e[RLDI_RING_ENTRIES];
} rldi_ring;

#define RLDI_KIND_LIMIT     0u   /* meta.kind: a limit (rld_find) */
#define RLDI_KIND_TEMPLATE  1u   /* a template of keyed limits (rld_find_template) */
#define RLDI_KIND_BREAKER   2u   /* a circuit breaker (rld_breaker_find, breaker.h) */

#define RLDI_ORIGIN_FILE     0u   /* declared in the configuration file */
#define RLDI_ORIGIN_RUNTIME  1u   /* created by a Put request: survives reloads */
#define RLDI_ORIGIN_OVERRIDE 2u   /* declared in the file, changed by a Put: kept across
                                   * reloads and restarts until the file's line changes */

#define RLDI_INDEX_EMPTY    0u
#define RLDI_INDEX_DELETED  UINT32_MAX

static_assert(sizeof(rldi_shm_header) == RLDI_HEADER_SIZE, "header size is ABI");
static_assert(offsetof(rldi_shm_header, abi_major) == 8, "ABI");
static_assert(offsetof(rldi_shm_header, segment_size) == 24, "ABI");
static_assert(offsetof(rldi_shm_header, slots_off) == 40, "ABI");
static_assert(offsetof(rldi_shm_header, meta_off) == 56, "ABI");
static_assert(offsetof(rldi_shm_header, index_off) == 64, "ABI");
static_assert(offsetof(rldi_shm_header, state) == 72, "ABI");
static_assert(offsetof(rldi_shm_header, index_seq) == 88, "ABI");
static_assert(offsetof(rldi_shm_header, config_gen) == 112, "ABI");
static_assert(offsetof(rldi_shm_header, keeper_pid) == 120, "ABI");
static_assert(offsetof(rldi_shm_header, rings_off) == 128, "ABI");
static_assert(sizeof(rldi_ring) == 128, "a ring is two cache lines");

static_assert(sizeof(rldi_bank) == 32, "ABI");
static_assert(sizeof(rldi_slot) == RLDI_SLOT_SIZE, "slot is two cache lines");
static_assert(offsetof(rldi_slot, tat) == 0, "CAS unit at the start of the slot");
static_assert(offsetof(rldi_slot, frac_ver) == 8, "CAS unit is 16 contiguous bytes");
static_assert(offsetof(rldi_slot, gen) == 16, "ABI");
static_assert(offsetof(rldi_slot, waiters) == 20, "ABI");
static_assert(offsetof(rldi_slot, queued) == 24, "ABI");
static_assert(offsetof(rldi_slot, admitted) == 32, "ABI");
static_assert(offsetof(rldi_slot, denied) == 40, "ABI");
static_assert(offsetof(rldi_slot, flags) == 48, "ABI");
static_assert(offsetof(rldi_slot, lease_hint_ns) == 56, "ABI minor 1");
static_assert(offsetof(rldi_slot, shadowed) == 52, "ABI minor 3");
static_assert(offsetof(rldi_slot, bank) == 64, "config on its own cache line");
static_assert(offsetof(rldi_slot, waiters) == offsetof(rldi_slot, gen) + 4,
              "gen and waiters are read as one 8-byte word");

static_assert(sizeof(rldi_meta) == RLDI_META_SIZE, "ABI");
static_assert(offsetof(rldi_meta, rate_count) == 72, "ABI");
static_assert(offsetof(rldi_meta, origin) == 100, "ABI");
static_assert(offsetof(rldi_meta, name_hash) == 104, "ABI");
static_assert(offsetof(rldi_meta, max_debt_ns) == 112, "ABI");
static_assert(offsetof(rldi_meta, algo) == 65, "ABI");
static_assert(offsetof(rldi_meta, align_ns) == 120, "ABI");
static_assert(offsetof(rldi_meta, refunded) == 128, "counters on the meta's last line");
static_assert(offsetof(rldi_meta, rolled_back) == 136, "ABI");
static_assert(offsetof(rldi_meta, debited) == 144, "ABI");
static_assert(offsetof(rldi_meta, file_def_hash) == 152, "ABI");

static_assert(RLDI_HEADER_SIZE % RLDI_SLOT_SIZE == 0, "slots start aligned");
static_assert(offsetof(rldi_shm_header, keys_off) == 136, "ABI");
static_assert(offsetof(rldi_shm_header, key_secret) == 152, "ABI");
static_assert(offsetof(rldi_shm_header, tmpl_count) == 168, "ABI");
static_assert(offsetof(rldi_shm_header, tmpl) == 512, "ABI");
static_assert(sizeof(rldi_tmpl) == 64, "ABI");
static_assert(offsetof(rldi_meta, kind) == 66, "ABI");
static_assert(offsetof(rldi_meta, tmpl) == 67, "ABI");
static_assert(offsetof(rldi_meta, concurrency) == 68, "ABI");
static_assert(sizeof(rldi_key_bucket) == 64, "a bucket's header is one cache line");
static_assert(sizeof(rldi_key_entry) == 48, "48 B per entry: 64 B per key of capacity");
static_assert(offsetof(rldi_key_entry, tat) == 0 && offsetof(rldi_key_entry, frac_ver) == 8,
              "the entry's state word is a slot's");
static_assert(offsetof(rldi_key_entry, gen) == 16 && offsetof(rldi_key_entry, waiters) == 20,
              "gen and waiters are read as one 8-byte word, as a slot's");
static_assert(offsetof(rldi_key_entry, hash) == 24 && offsetof(rldi_key_entry, len1) == 32,
              "ABI");
/* the fields the list above left out: every one the daemon, librld and rlctl read */
static_assert(offsetof(rldi_shm_header, magic) == 0 && offsetof(rldi_shm_header, abi_minor) == 10 &&
              offsetof(rldi_shm_header, header_size) == 12 &&
              offsetof(rldi_shm_header, features) == 16, "ABI");
static_assert(offsetof(rldi_shm_header, slot_size) == 32 &&
              offsetof(rldi_shm_header, slot_count) == 36 &&
              offsetof(rldi_shm_header, meta_size) == 48 &&
              offsetof(rldi_shm_header, index_buckets) == 52, "ABI");
static_assert(offsetof(rldi_shm_header, daemon_pid) == 76 &&
              offsetof(rldi_shm_header, created_ns) == 80 &&
              offsetof(rldi_shm_header, limit_count) == 96 &&
              offsetof(rldi_shm_header, heartbeat_ns) == 104, "ABI");
static_assert(offsetof(rldi_shm_header, keys_size) == 144 &&
              offsetof(rldi_shm_header, reserved2) == 172 &&
              offsetof(rldi_shm_header, reserved0) == 176, "ABI");
static_assert(offsetof(rldi_tmpl, slot) == 0 && offsetof(rldi_tmpl, gen) == 4 &&
              offsetof(rldi_tmpl, nbuckets) == 8 && offsetof(rldi_tmpl, max_keys) == 12 &&
              offsetof(rldi_tmpl, buckets_off) == 16 && offsetof(rldi_tmpl, entries_off) == 24 &&
              offsetof(rldi_tmpl, entry_base) == 32 && offsetof(rldi_tmpl, flags) == 36 &&
              offsetof(rldi_tmpl, live) == 40 && offsetof(rldi_tmpl, evictions) == 48 &&
              offsetof(rldi_tmpl, overflows) == 56, "ABI");
static_assert(offsetof(rldi_bank, t_lo) == 0 && offsetof(rldi_bank, t_hi) == 8 &&
              offsetof(rldi_bank, burst) == 16 && offsetof(rldi_bank, inv_t) == 24, "ABI");
static_assert(offsetof(rldi_meta, name) == 0 && offsetof(rldi_meta, rate_period_ns) == 80 &&
              offsetof(rldi_meta, burst) == 88 && offsetof(rldi_meta, unlimited) == 96 &&
              offsetof(rldi_meta, reserved3) == 160, "ABI");
static_assert(offsetof(rldi_key_bucket, lock) == 0 && offsetof(rldi_key_bucket, tag) == 8 &&
              offsetof(rldi_key_bucket, queued) == 24 && offsetof(rldi_key_bucket, held) == 56,
              "ABI");
static_assert(offsetof(rldi_key_entry, prefix) == 33, "ABI");
/* a table's entries follow its bucket headers (keys.c): every entry's state word stays
 * 16-aligned, as the 16-byte CAS needs, when the table starts 16-aligned */
static_assert(sizeof(rldi_key_bucket) % 16 == 0 && sizeof(rldi_key_entry) % 16 == 0,
              "key entries' state words are 16-aligned");
static_assert(RLDI_SLOT_SIZE % 16 == 0 && RLDI_META_SIZE % 16 == 0, "16-aligned CAS units");
static_assert(RLDI_KEY_RATE_OFF % 8 == 0 && RLDI_KEY_RATE_OFF == 33 + RLDI_KEY_RATE_PREFIX,
              "a caller's rate is one aligned 8-byte word after the short prefix");

#endif
