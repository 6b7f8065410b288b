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
 *   | rldi_meta[n]       |   128 B each: name and the rate as configured (cold)
 *   +--------------------+ header->rings_off
 *   | rldi_ring[n]       |   128 B each: a sliding window's past sub-windows (window.h)
 *   +--------------------+ header->index_off
 *   | uint32_t index[m]  |   open-addressing hash: name -> slot + 1 (0 empty, ~0 deleted)
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
#define RLDI_ABI_MAJOR      2u   /* 2: sealed memfd handed out by the keeper; gen parity */
#define RLDI_ABI_MINOR      1u   /* 1: rldi_slot.lease_hint_ns (global limits) */
#define RLDI_HEADER_SIZE    4096u
#define RLDI_SLOT_SIZE      128u
#define RLDI_META_SIZE      128u
#define RLDI_NAME_MAX       64u                 /* bytes, without the NUL */
#define RLDI_MAX_SLOTS      (1u << 24)          /* hard cap on max_limits */

/* header->state */
#define RLDI_STATE_INIT     0u   /* being built: clients treat it as absent */
#define RLDI_STATE_READY    1u
#define RLDI_STATE_RETIRED  2u   /* replaced by a new segment (rld --fresh): attach again */

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
    uint64_t reserved0[47];     /* 136 .. 512: room for ABI minor additions */
    /* 512 .. 4096: reserved for keyed-limit templates (per-IP, per-user), next ABI minor. */
    uint8_t  reserved_keyed[RLDI_HEADER_SIZE - 512];
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
#define RLDI_BANK_ALGO(b_t_hi) ((uint32_t)((b_t_hi) >> RLDI_ALGO_SHIFT))

typedef struct rldi_slot {
    /* line 0: hot */
    uint64_t tat;               /*   0 \ 16-byte CAS unit, 16-aligned */
    uint64_t frac_ver;          /*   8 / */
    uint32_t gen;               /*  16 identity, odd while live: +1 at create and at delete;
                                 *     handles carry it, so a free slot (even) matches none */
    uint32_t waiters;           /*  20 queued waits (daemon): fast path denies while non-zero */
    uint64_t queued;            /*  24 tokens wanted by those waiters */
    uint64_t admitted;          /*  32 tokens admitted (relaxed counter) */
    uint64_t denied;            /*  40 calls denied (relaxed counter) */
    uint32_t flags;             /*  48 RLDI_SLOT_* */
    uint32_t reserved0;         /*  52 */
    uint64_t lease_hint_ns;     /*  56 a global limit's pool (limitdef.h): the ns per token its
                                 *     leases bring, written by the daemon; denials and wait
                                 *     estimates use it instead of the pool's slow bank. 0: a
                                 *     host limit */
    /* line 1: config banks, written by the daemon only while not current */
    rldi_bank bank[2];          /*  64 */
} rldi_slot;

#define RLDI_SLOT_LIVE      1u   /* slot holds a limit (else free) */

typedef struct rldi_meta {
    char     name[RLDI_NAME_MAX + 1]; /*   0 NUL-terminated */
    uint8_t  algo;                    /*  65 RLDI_ALGO_*, as configured */
    uint8_t  reserved0[6];            /*  66 */
    uint64_t rate_count;              /*  72 as configured: COUNT/PERIOD */
    uint64_t rate_period_ns;          /*  80 */
    uint64_t burst;                   /*  88 */
    uint32_t unlimited;               /*  96 */
    uint32_t origin;                  /* 100 RLDI_ORIGIN_*: who created it */
    uint64_t name_hash;               /* 104 */
    uint64_t max_debt_ns;             /* 112 the most one call may put it in debt (beyond tau) */
    uint64_t align_ns;                /* 120 fixed windows: their offset from the period's multiples */
} rldi_meta;

/* A sliding window's 16 past sub-windows: entry j % 16 holds sub-window j's count (24 bits)
 * and index (40 bits), written before the head moves past it (window.h). */
#define RLDI_RING_ENTRIES   16u
typedef struct rldi_ring {
    uint64_t e[RLDI_RING_ENTRIES];
} rldi_ring;

#define RLDI_ORIGIN_FILE    0u   /* declared in the configuration file */
#define RLDI_ORIGIN_RUNTIME 1u   /* created by a Put request: survives reloads */

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
static_assert(offsetof(rldi_shm_header, reserved_keyed) == 512, "ABI");

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

static_assert(RLDI_HEADER_SIZE % RLDI_SLOT_SIZE == 0, "slots start aligned");

#endif
