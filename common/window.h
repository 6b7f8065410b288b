/*
 * window.h - window algorithms: at most COUNT tokens per PERIOD, counted in windows, the
 * alternatives to GCRA's steady rate (bucket.h dispatches to window.c by the bank's tag).
 *
 * fixed    Windows aligned to the wall clock: multiples of PERIOD since the Unix epoch,
 *          shifted by an alignment. The state word holds the current window's end as a
 *          CLOCK_MONOTONIC time and the tokens taken in it. The end is fixed when the window
 *          starts (from CLOCK_REALTIME, read then), so a step of the wall clock can neither
 *          shorten the current window nor make one longer than PERIOD: a window is never
 *          re-opened early and never holds more than COUNT (debts aside).
 *
 *   state:  tat = end (ns, monotonic)   frac = tokens taken (32 bits)   ver
 *
 * sliding  Never more than COUNT tokens in any interval of length PERIOD, kept exactly in
 *          sub-windows of width w = ceil(PERIOD / 16): an admission at time t counts the
 *          tokens of its sub-window and of the 16 before it (these 17 cover (t - PERIOD, t]),
 *          so it may under-admit by at most one sub-window, never over-admit. Throughput
 *          under saturation is at least 16/17 (94%) of COUNT per PERIOD. The head sub-window
 *          and the sum of the 16 before it live in the state word; the 16 past sub-windows
 *          in the slot's ring (layout.h), each written before the head moves past it.
 *
 *   state:  tat = head index (40 bits) | head tokens (24 bits)   frac = sum of the 16 before
 *           ring:  e[j % 16] = index j (40 bits) | tokens of j (24 bits)
 *
 * docs/DESIGN.md proves both exact under any interleaving of processes.
 */
#ifndef RLD_COMMON_WINDOW_H
#define RLD_COMMON_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define RLDI_WIN_SUBS        16u                 /* sub-windows of a sliding PERIOD */
#define RLDI_WIN_IDX_BITS    40u
#define RLDI_WIN_IDX_MASK    ((UINT64_C(1) << RLDI_WIN_IDX_BITS) - 1)
#define RLDI_WIN_CNT_BITS    24u
#define RLDI_WIN_SLIDING_MAX ((UINT64_C(1) << RLDI_WIN_CNT_BITS) - 1)  /* COUNT, sliding */
#define RLDI_WIN_FIXED_MAX   UINT32_MAX                                  /* COUNT, fixed */

/* the ring (layout.h) has one entry per sub-window, indexed j % RLDI_WIN_SUBS; an entry and
 * the head field are an index and a count in 64 bits */
static_assert(RLDI_RING_ENTRIES == RLDI_WIN_SUBS, "a ring entry per past sub-window");
static_assert(RLDI_WIN_IDX_BITS + RLDI_WIN_CNT_BITS == 64, "index | count in one word");

/* A window bank's parameters. */
typedef struct rldi_winparams {
    uint32_t algo;       /* RLDI_ALGO_SLIDING or RLDI_ALGO_FIXED */
    uint64_t period_ns;
    uint64_t count;
    uint64_t aux_ns;     /* fixed: the alignment (0 <= aux < period); sliding: the width w */
} rldi_winparams;

static inline uint64_t rldi_win_sub_width(uint64_t period_ns)
{
    return (period_ns + RLDI_WIN_SUBS - 1) / RLDI_WIN_SUBS;
}

/* ---- sliding: the state word and the ring -------------------------------------------- */

static inline uint64_t rldi_win_head(uint64_t lo) { return lo & RLDI_WIN_IDX_MASK; }
static inline uint64_t rldi_win_headcnt(uint64_t lo) { return lo >> RLDI_WIN_IDX_BITS; }
static inline uint64_t rldi_win_pack(uint64_t idx, uint64_t cnt)
{
    return (idx & RLDI_WIN_IDX_MASK) | (cnt << RLDI_WIN_IDX_BITS);
}

/* Index distance B - A in the 40-bit circle, as a signed number: sub-window indexes wrap
 * after 2^40 sub-windows (2.2 years of 62.5 us ones: the shortest); a limit idle for half
 * of that reads as the future, which only over-counts (denies), never over-admits. */
static inline int64_t rldi_win_dist(uint64_t a, uint64_t b)
{
    uint64_t d = (b - a) & RLDI_WIN_IDX_MASK;
    return d >= (UINT64_C(1) << (RLDI_WIN_IDX_BITS - 1)) ? (int64_t)d - (INT64_C(1) << RLDI_WIN_IDX_BITS)
                                                        : (int64_t)d;
}

/* ---- sliding: when a refused cost fits ------------------------------------------------- */

/* the most sub-windows a sliding window has: a key's N + 1 = 64 / B (window.c), 64 for
 * COUNT 1 (B = 1 bit a count); a named limit's are RLDI_WIN_SUBS + 1 */
#define RLDI_WIN_MAX_SUBS 64u

/*
 * When COST fits behind EXTRA queued tokens in a sliding window of SUBS sub-windows of
 * width W, now (NOW_NS) in absolute sub-window KABS, the window's COUNT: 0 when it fits now;
 * else the start of the first later sub-window where it does, as the oldest sub-windows
 * leave one by one and the queue ahead takes the room that frees, in order (what it takes
 * goes into that newest sub-window, and leaves SUBS sub-windows later). The window's
 * sub-windows, oldest first, are OLDEST[i * STEP], i = 0 .. SUBS - 1 (the last is KABS's);
 * TOTAL is what the window holds (a named limit's: the state word's sum and the head's
 * count, which the ring's entries need not add up to). Past SUBS * 64 sub-windows (a queue
 * of many windows), the rest at COUNT per SUBS sub-windows. SUBS <= RLDI_WIN_MAX_SUBS.
 *
 * Without a queue (rld_try's refusals) nothing enters the window: after M sub-windows it
 * holds TOTAL less the M oldest counts, a running sum read in place, and after SUBS of them
 * nothing changes any more (the horizon's answer then). With a queue, the same steps over a
 * circular copy: one slot leaves and is reused as the newest, O(1) a step. The arithmetic
 * (wrapping included, for counts that do not add up to TOTAL) is the old loop's, which
 * shifted the whole array at every step: tests/unit/test_window.c compares the two.
 */
static inline uint64_t rldi_win_wait(const uint64_t *oldest, ptrdiff_t step, unsigned subs,
                                     uint64_t total, uint64_t count, uint64_t w, uint64_t kabs,
                                     uint64_t now_ns, uint64_t extra, uint64_t cost)
{
    uint64_t c = count, want = extra + cost, horizon = (uint64_t)subs * 64 + 1;
    uint64_t room = total < c ? c - total : 0;
    if (want <= room)
        return 0;
    if (extra == 0) {
        /* cost (> 0 here) <= room: the window holds at most c - cost (never when cost > c) */
        if (cost <= c) {
            uint64_t most = c - cost;
            for (unsigned m = 1; m <= subs; m++) {
                total -= oldest[(ptrdiff_t)(m - 1) * step];
                if (total <= most)
                    return (kabs + m) * w - now_ns;
            }
        }
        return (kabs + horizon) * w - now_ns + (cost / c + 1) * subs * w;
    }
    uint64_t cnt[RLDI_WIN_MAX_SUBS];
    for (unsigned i = 0; i < subs; i++)
        cnt[i] = oldest[(ptrdiff_t)i * step];
    unsigned o = 0;                       /* cnt[o]: the oldest sub-window */
    for (uint64_t m = 1;; m++) {
        uint64_t *newest = &cnt[o];       /* leaves; its slot is sub-window KABS + M */
        total -= *newest;
        *newest = 0;
        o = o + 1 == subs ? 0 : o + 1;
        room = total < c ? c - total : 0;
        if (want <= room)
            return (kabs + m) * w - now_ns;
        if (room) {                       /* the queue ahead takes this sub-window's room */
            uint64_t q = room < extra ? room : extra;
            extra -= q;
            want -= q;
            *newest += q;
            total += q;
        }
        if (m == horizon)
            return (kabs + m) * w - now_ns + (want / c + 1) * subs * w;
    }
}

/* ---- fixed: where windows end ----------------------------------------------------------- */

/* A fixed bank's alignment (inv_t) may instead say where windows are anchored: at the first
 * take after the last one ended (the `limits` library's fixed window), or pushed to a period
 * after every attempt (its elastic expiry: a window that keeps being hit never ends). */
#define RLDI_WIN_ANCHOR_FIRST   (UINT64_MAX - 1)
#define RLDI_WIN_ANCHOR_ELASTIC (UINT64_MAX - 2)

/*
 * A fixed window's hold (rld_penalize, rld_sync; ABI minor 3): the end field's two top bits
 * (CLOCK_MONOTONIC ns stay below 2^62: 146 years of uptime) mark a window whose end is not
 * a wall-clock boundary. HOLD: at its end, its count is carried into the next window when
 * that is the wall-clock window the hold's last ns fell in (what it admitted there still
 * counts there). DENY: it admits nothing (its count is only that carry). docs/DESIGN.md.
 */
#define RLDI_WIN_HOLD        (UINT64_C(1) << 63)
#define RLDI_WIN_DENY        (UINT64_C(1) << 62)
#define RLDI_WIN_END(lo)     ((lo) & ~(RLDI_WIN_HOLD | RLDI_WIN_DENY))

/*
 * The end, in CLOCK_MONOTONIC ns, of the fixed window that contains wall-clock time REAL_NS
 * read at monotonic time MONO_NS: the next multiple of PERIOD (shifted by ALIGN) after it.
 */
static inline uint64_t rldi_win_fixed_end(uint64_t real_ns, uint64_t mono_ns, uint64_t period_ns,
                                          uint64_t align_ns)
{
    uint64_t into = (real_ns + period_ns - align_ns % period_ns) % period_ns;
    return mono_ns + (period_ns - into);
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC now (ns), read when a fixed window starts; the unit
 * tests point it at a clock of their own. */
extern int64_t (*rldi_win_wall_offset)(void);

#endif
