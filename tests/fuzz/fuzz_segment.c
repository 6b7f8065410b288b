/*
 * fuzz_segment.c - libFuzzer target for common/segment.c and the arithmetic of gcra.h on a
 * damaged or hostile segment: whatever any process with write access put into the mapping,
 * a client must get an error code or a verdict, never a crash, an out-of-bounds read or a
 * hang.
 *
 * The buffer is allocated with exactly the segment's size, so ASan sees any read past it.
 * rldi_seg_check() wants the exact geometry, so most inputs start from a valid header and
 * let the fuzzer write the rest:
 *
 *   byte 0  flags  bits 0-1  header: 0, 1 built from slot_count; 2 built, then patched by
 *                            (offset, byte) pairs; 3 raw bytes from the input
 *                  bit 2     state field from the input instead of READY
 *                  bit 3     populate limits first (consistent names, index, banks), then
 *                            patch the regions by (offset, byte) pairs; else the regions are
 *                            the input's bytes as they are
 *                  bit 4     a truncated mapping (size below the geometry's)
 *   byte 1  slot_count - 1 (mod 64)
 *   then    per mode: header patches / raw header, limits, region bytes or patches
 *
 * When the check passes: rldi_seg_bind, rldi_seg_name on every slot, rldi_seg_lookup of the
 * names found and of fixed names, and for every slot the client's decision sequence on the
 * values found there (the bank named by the state word's version, as librld's view_fill reads
 * it): rldi_gcra_decide/try/verdict_ok/verdict_denied with the bank's 1/T hint, peek, refund,
 * debit, and the daemon's carry between the two banks, at a few values of "now".
 *
 * Invariants beyond "no crash": check returns one of its documented codes; a passing check
 * means every region lies inside the mapping; lookups return a slot < slot_count; names read
 * are NUL-terminated within 64 bytes; remaining <= burst in every verdict; a denied verdict
 * has retry_after > 0; after a penalty (rldi_bucket_sync with REMAINING 0) that changed the
 * state, a take at the same time is denied unless the limit is in shadow mode; the breaker
 * calls (issue 15) on whatever a slot holds return their documented codes and read back a
 * state of 0..2. Populated slots may have the shadow flag and breaker banks.
 *
 * index_seq is forced even: with an odd one, lookups spin 10^6 times before -EAGAIN by
 * design (a daemon died mid-update), which would only slow the fuzzer down.
 */
#include <errno.h>
#include <stdbool.h>

#include "breaker.h"
#include "bucket.h"
#include "codes.h"
#include "fuzz_common.h"
#include "gcra.h"
#include "layout.h"
#include "rate.h"
#include "segment.h"
#include "window.h"

#define MAX_SEG       (256u * 1024)   /* raw headers may ask for more: capped */
#define MAX_SLOTS_RUN 256u            /* slots examined per input */

static const char *const probe_names[] = {
    "llm.requests", "llm.tokens", "shop.calls", "shop.video.list", "demo", "metered", "a",
    "x/y:z-1_2.3",
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._", /* 64 bytes */
};
#define NPROBE (sizeof probe_names / sizeof probe_names[0])

/* Rates the daemon can publish, and a few edges. */
static const struct { uint64_t count, period_ns, burst; uint32_t algo; } rates[] = {
    {3500, 60000000000ull, 3500},      {90000, 60000000000ull, 90000},
    {1000, 3600000000000ull, 1000},    {5, 60000000000ull, 5},
    {20, 1000000000ull, 10},           {0, 0, 0},                      /* unlimited */
    {1000000000000000ull, 1000000ull, 1000000000000000ull},           /* 10^15 per ms */
    {1, 31536000000000000ull, 1},      /* 1 per 365 days */
    {1, 31536000000000000ull, 146},    /* the longest tau that fits */
    {7, 500000000ull, 1},
    /* window limits (burst = COUNT); the fuzzer's burst override makes COUNT anything */
    {120, 60000000000ull, 120, RLDI_ALGO_SLIDING}, {37, 300000007ull, 37, RLDI_ALGO_SLIDING},
    {16777215, 1000000ull, 16777215, RLDI_ALGO_SLIDING},
    {1000, 3600000000000ull, 1000, RLDI_ALGO_FIXED},  {5, 1000000000ull, 5, RLDI_ALGO_FIXED},
    /* breakers: failures | probes << 16 | successes << 32, open_for (= probe_timeout) */
    {0, 30000000000ull, 5 | 1ull << 16 | 2ull << 32, RLDI_ALGO_BREAKER},
    {0, 1000000ull, 1 | 3ull << 16 | 1ull << 32, RLDI_ALGO_BREAKER},
};
#define NRATES (sizeof rates / sizeof rates[0])

static void fill_bank(rldi_bank *b, unsigned which, uint64_t burst_override)
{
    rldi_u128 t = 0;
    uint64_t burst = burst_override ? burst_override : rates[which].burst;
    if (rates[which].algo == RLDI_ALGO_BREAKER) {   /* as rldi_brk_bank writes them */
        b->t_lo = rates[which].period_ns;
        b->t_hi = (uint64_t)RLDI_ALGO_BREAKER << RLDI_ALGO_SHIFT;
        b->burst = burst;
        b->inv_t = rates[which].period_ns;
        return;
    }
    if (rates[which].algo != RLDI_ALGO_GCRA) {      /* as rldi_limitdef_bank writes them */
        b->t_lo = rates[which].period_ns;
        b->t_hi = (uint64_t)rates[which].algo << RLDI_ALGO_SHIFT;
        b->burst = burst;
        b->inv_t = rates[which].algo == RLDI_ALGO_SLIDING
                       ? rldi_win_sub_width(rates[which].period_ns)
                       : (burst_override ? burst_override % rates[which].period_ns : 0);
        return;
    }
    (void)rldi_interval(rates[which].count, rates[which].period_ns, &t);
    b->t_lo = (uint64_t)t;
    b->t_hi = (uint64_t)(t >> 64);
    b->burst = burst;
    double inv = t ? 1.0 / (double)t : 0.0;
    memcpy(&b->inv_t, &inv, sizeof inv);
}

/* Consistent limits, as the daemon would write them; the region patches come after. */
static void populate(uint8_t *base, const rldi_shm_header *g, fuzz_in *in)
{
    rldi_slot *slots = (rldi_slot *)(base + g->slots_off);
    rldi_meta *meta = (rldi_meta *)(base + g->meta_off);
    uint32_t *index = (uint32_t *)(base + g->index_off);
    uint32_t mask = g->index_buckets - 1;
    uint32_t k = fuzz_u8(in) % (g->slot_count + 1);

    for (uint32_t i = 0; i < k; i++) {
        uint8_t sel = fuzz_u8(in), rsel = fuzz_u8(in), flags = fuzz_u8(in);
        char name[RLDI_NAME_MAX + 1];
        if (sel < 2 * NPROBE && i < NPROBE)
            snprintf(name, sizeof name, "%s", probe_names[(sel + i) % NPROBE]);
        else
            snprintf(name, sizeof name, "limit.%u.%u", i, sel);
        rldi_slot *s = &slots[i];
        rldi_meta *m = &meta[i];
        uint32_t ver = fuzz_u8(in);
        unsigned r0 = rsel % NRATES, r1 = (rsel / NRATES) % NRATES;
        fill_bank(&s->bank[ver & 1], r0, (flags & 1) ? fuzz_u64(in) : 0);
        if (flags & 2)
            fill_bank(&s->bank[!(ver & 1)], r1, 0);
        rldi_u128 tat = (rldi_u128)fuzz_u64(in) << 32;
        tat |= fuzz_u8(in);
        rldi_tat_pack(tat, ver, &s->tat, &s->frac_ver);
        s->gen = 1 + fuzz_u8(in);
        s->waiters = (flags & 4) ? fuzz_u8(in) : 0;
        s->queued = (flags & 4) ? fuzz_u64(in) : 0;
        s->flags = ((flags & 8) ? 0 : RLDI_SLOT_LIVE) | ((flags & 32) ? RLDI_SLOT_SHADOW : 0);
        if (rates[r0].algo == RLDI_ALGO_BREAKER)
            m->kind = RLDI_KIND_BREAKER;
        memcpy(m->name, name, strlen(name) + 1);
        m->rate_count = rates[r0].count;
        m->rate_period_ns = rates[r0].period_ns;
        m->burst = rates[r0].burst;
        m->unlimited = rates[r0].count == 0;
        m->algo = (uint8_t)rates[r0].algo;
        m->name_hash = rldi_name_hash(name, strlen(name));
        uint32_t b = (uint32_t)m->name_hash & mask;
        while (index[b] != RLDI_INDEX_EMPTY)
            b = (b + 1) & mask;
        index[b] = (flags & 16) ? RLDI_INDEX_DELETED : i + 1;
    }
}

static void check_verdict(const rldi_verdict *v, uint64_t burst, bool denied, const char *what);

/*
 * The real admission code (bucket.c) on slot I, as librld and the daemon call it: every
 * entry point returns one of its documented codes, and a verdict it fills is sane. The
 * handle is the slot's own generation (a client that found the limit) and a stale one.
 */
static void buckets(const rldi_seg *s, uint32_t i)
{
    rldi_slot *sl = &s->slots[i];
    rldi_coarse tc = { 0 };
    rldi_handle hs[] = { { i, sl->gen }, { i, sl->gen + 1 } };
    /* waiters ~0: a template's or a breaker's slot, which the limits' calls refuse */
#define NOTLIMIT(r) ((r) == -EINVAL && rldi_load_relaxed(&sl->waiters) == UINT32_MAX)
    rldi_u128 nows[] = { rldi_fp_from_ns(sl->tat), rldi_fp_from_ns(sl->tat + 1000000000ull),
                         rldi_fp_from_ns(1) };
    for (size_t k = 0; k < sizeof(hs) / sizeof(hs[0]); k++) {
        if (sl->waiters == UINT32_MAX) {
            /* a template's slot (keyed limits: dseg.c marks it so): no limit to admit on */
            int r = rldi_bucket_take(s, hs[k], 1, nows[0], 0, NULL);
            FUZZ_CHECK(r == -EINVAL || r == -ESTALE, "take on a template's slot: %d", r);
            continue;
        }
        for (size_t j = 0; j < sizeof(nows) / sizeof(nows[0]); j++) {
            rldi_u128 now = nows[j];
            rldi_verdict v;
            uint64_t costs[] = { 0, 1, 3, UINT64_MAX };
            for (size_t c = 0; c < 4; c++) {
                int r = rldi_bucket_take(s, hs[k], costs[c], now, c & 1 ? RLDI_TAKE_BARGE : 0, &v);
                FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -E2BIG || r == -ESTALE || NOTLIMIT(r),
                           "take: %d", r);
                if (r == 0 || r == -EAGAIN)
                    FUZZ_CHECK(v.remaining <= v.limit, "take: remaining %llu > limit %llu",
                               (unsigned long long)v.remaining, (unsigned long long)v.limit);
                uint64_t reset, burst;
                rldi_take_more more;
                r = rldi_bucket_take_fast(sl, hs[k], costs[c], rldi_fp_to_ns(now),
                                          RLDI_POOL_T_NS, &more, &reset, &burst);
                if (r == RLDI_TAKE_MORE)
                    r = rldi_bucket_take_more(s, hs[k], costs[c], rldi_fp_to_ns(now), &more,
                                              4000000, &tc, &v);
                FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -E2BIG || r == -ESTALE || NOTLIMIT(r) ||
                           r == RLDI_TAKE_FULL, "fast: %d", r);
                if (r == RLDI_TAKE_FULL)
                    FUZZ_CHECK(costs[c] <= burst && reset <= RLDI_POOL_T_NS,
                               "fast: cost %llu, burst %llu", (unsigned long long)costs[c],
                               (unsigned long long)burst);
                if (tc.hint) {
                    uint64_t cnow;
                    r = rldi_bucket_take_coarse(s, hs[k], costs[c], 4000000, c & 1, &tc, &v,
                                                &cnow);
                    FUZZ_CHECK(r == 0 || r == -EAGAIN || r == RLDI_TAKE_PRECISE, "coarse: %d", r);
                }
                r = rldi_bucket_probe(s, hs[k], costs[c], now, 0, &v);
                FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -E2BIG || r == -ESTALE || NOTLIMIT(r), "probe: %d", r);
                r = rldi_bucket_grant(s, hs[k], costs[c], rldi_fp_to_ns(now) - 5, now, &v);
                FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -E2BIG || r == -ESTALE || NOTLIMIT(r), "grant: %d", r);
                uint64_t wait;
                r = rldi_bucket_reserve(s, hs[k], costs[c], rldi_fp_to_ns(now) + 1000, now, &v, &wait);
                /* -EINPROGRESS: a window limit (the caller sleeps, then takes) */
                FUZZ_CHECK(r == 0 || r == -ETIMEDOUT || r == -E2BIG || r == -ESTALE ||
                           r == -EINPROGRESS || NOTLIMIT(r), "reserve: %d", r);
                r = rldi_bucket_estimate(s, hs[k], costs[c], costs[c], now, &v);
                FUZZ_CHECK(r == 0 || r == -ESTALE || r == -E2BIG || NOTLIMIT(r), "estimate: %d", r);
            }
            int r = rldi_bucket_take(s, hs[k], 1, now, 0, &v);
            uint32_t win = r == 0 ? v.window : 0;
            r = rldi_bucket_peek(s, hs[k], now, &v);
            FUZZ_CHECK(r == 0 || r == -ESTALE || NOTLIMIT(r), "peek: %d", r);
            /* the window of a take, none (window limits: -EOPNOTSUPP), and a made-up one */
            const uint32_t wins[] = { win, 0, (uint32_t)sl->tat | 0x80000000u };
            for (size_t w = 0; w < 3; w++) {
                r = rldi_bucket_refund(s, hs[k], 7, wins[w], now);
                FUZZ_CHECK(r == 0 || r == -ESTALE || (r == -EOPNOTSUPP && wins[w] == 0) ||
                           NOTLIMIT(r), "refund: %d", r);
            }
            r = rldi_bucket_debit(s, hs[k], j ? 7 : UINT64_MAX, now);
            FUZZ_CHECK(r == 0 || r == -ERANGE || r == -ESTALE || NOTLIMIT(r), "debit: %d", r);
            /* issue 15: syncs and penalties; a penalty that changed the state holds */
            const uint64_t rem[] = { 0, 1, 50, UINT64_MAX }, xs[] = { 0, 1, 700000000ull,
                                                                     90000000000ull };
            for (size_t q = 0; q < 4; q++) {
                rldi_sync_out so;
                r = rldi_bucket_sync(s, hs[k], rem[q], xs[(q + j) % 4], now, &so);
                FUZZ_CHECK(r == 0 || r == -ESTALE || r == -EOPNOTSUPP || r == -EINVAL ||
                           r == -ERANGE, "sync: %d", r);
                if (r == 0 && so.changed && rem[q] == 0 &&
                    !(rldi_load_relaxed(&sl->flags) & RLDI_SLOT_SHADOW)) {
                    int t2 = rldi_bucket_take(s, hs[k], 1, now, RLDI_TAKE_BARGE, &v);
                    FUZZ_CHECK(t2 != 0, "admitted right after a penalty of %llu ns (algo %u t %llx:%llx "
                               "burst %llu word %llx:%llx now %llu)",
                               (unsigned long long)xs[(q + j) % 4],
                               RLDI_BANK_ALGO(sl->bank[(sl->frac_ver >> 32) & 1].t_hi),
                               (unsigned long long)sl->bank[(sl->frac_ver >> 32) & 1].t_hi,
                               (unsigned long long)sl->bank[(sl->frac_ver >> 32) & 1].t_lo,
                               (unsigned long long)sl->bank[(sl->frac_ver >> 32) & 1].burst,
                               (unsigned long long)sl->tat, (unsigned long long)sl->frac_ver,
                               (unsigned long long)rldi_fp_to_ns(now));
                }
            }
            r = rldi_bucket_sync(s, hs[k], 0, RLDI_SYNC_MAX_NS + 1, now, NULL);
            FUZZ_CHECK(r == -ERANGE, "sync beyond the cap: %d", r);
            /* breakers, on whatever the slot holds */
            uint64_t ns = rldi_fp_to_ns(now);
            rldi_brk_ticket tk;
            r = rldi_breaker_enter(s, hs[k], ns, &v, &tk);
            FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -ESTALE || r == -EINVAL, "enter: %d", r);
            r = rldi_breaker_report(s, hs[k], j & 1, &tk, ns + 1);
            FUZZ_CHECK(r == 0 || r == -ESTALE || r == -EINVAL, "report: %d", r);
            rldi_brk_view bv;
            r = rldi_breaker_read(s, hs[k], ns + 2, &bv);
            FUZZ_CHECK(r == 0 || r == -ESTALE || r == -EINVAL, "read: %d", r);
            if (r == 0)
                FUZZ_CHECK(bv.state <= RLDI_BRK_HALF_OPEN, "breaker state %u", bv.state);
            if (j == 2) {
                r = rldi_breaker_force(s, hs[k], k ? RLDI_BRK_CLOSED : RLDI_BRK_OPEN, ns);
                FUZZ_CHECK(r == 0 || r == -ESTALE || r == -EINVAL, "force: %d", r);
            }
        }
    }
    rldi_handle bad = { s->slot_count, 1 };
    FUZZ_CHECK(rldi_bucket_take(s, bad, 1, nows[0], 0, NULL) == -EINVAL, "take past the end");
}

static void check_verdict(const rldi_verdict *v, uint64_t burst, bool denied, const char *what)
{
    FUZZ_CHECK(v->limit == burst, "%s: limit %llu != burst %llu", what,
               (unsigned long long)v->limit, (unsigned long long)burst);
    FUZZ_CHECK(v->remaining <= burst, "%s: remaining %llu > burst %llu", what,
               (unsigned long long)v->remaining, (unsigned long long)burst);
    if (denied)
        FUZZ_CHECK(v->retry_after_ns > 0, "%s: denied with retry_after 0", what);
    else
        FUZZ_CHECK(v->retry_after_ns == 0, "%s: allowed with retry_after %llu", what,
                   (unsigned long long)v->retry_after_ns);
}

/* What librld computes for one slot, on whatever the slot holds. */
static void slot_arithmetic(const rldi_slot *s, const rldi_shm_header *h)
{
    uint64_t tat_ns = s->tat, fv = s->frac_ver;
    rldi_u128 tat = rldi_tat_unpack(tat_ns, fv);
    unsigned cur = (unsigned)((fv >> 32) & 1);
    const rldi_bank *b = &s->bank[cur], *o = &s->bank[!cur];
    rldi_u128 t = ((rldi_u128)b->t_hi << 64) | b->t_lo;
    rldi_u128 t_o = ((rldi_u128)o->t_hi << 64) | o->t_lo;
    uint64_t burst = b->burst;
    double inv;
    memcpy(&inv, &b->inv_t, sizeof inv);
    uint64_t extra = s->waiters ? s->queued : 0;

    const rldi_u128 nows[] = {
        0,
        rldi_fp_from_ns(tat_ns),
        rldi_fp_from_ns(tat_ns + 1000000000ull),
        rldi_fp_from_ns(h->heartbeat_ns),
        rldi_fp_from_ns(h->created_ns),
    };
    for (size_t k = 0; k < sizeof nows / sizeof nows[0]; k++) {
        rldi_u128 now = nows[k], nt = 0;
        rldi_verdict v;

        /* rld_peek: any burst, T != 0 */
        if (t != 0) {
            rldi_gcra_peek(t, burst, tat, now, &v);
            FUZZ_CHECK(v.remaining <= burst, "peek: remaining > burst");
        }
        /* rld_try: the decision only with 1 <= cost <= burst and T != 0 */
        if (t != 0 && burst >= 1) {
            const uint64_t costs[] = {1, burst, burst / 2 + 1};
            for (size_t j = 0; j < 3; j++) {
                bool ok = rldi_gcra_decide(t, burst, tat, now, costs[j], extra, &nt);
                if (ok) {
                    rldi_gcra_verdict_ok(t, burst, inv, nt, now, &v);
                    check_verdict(&v, burst, false, "verdict_ok");
                } else {
                    rldi_gcra_verdict_denied(t, burst, inv, tat, now, costs[j], extra, &v);
                    check_verdict(&v, burst, true, "verdict_denied");
                }
                /* probe() of rld_try_multi: rldi_gcra_try with queued | 1 */
                bool ok2 = rldi_gcra_try(t, burst, tat, now, costs[j], extra ? extra | 1 : 0, &nt, &v);
                check_verdict(&v, burst, !ok2, "try");
            }
            /* cost 0: peek */
            rldi_gcra_peek(t, burst, tat, now, &v);
        }
        /* refund / debit: T != 0, any amount */
        if (t != 0) {
            const uint64_t amounts[] = {1, burst, UINT64_MAX};
            for (size_t j = 0; j < 3; j++) {
                rldi_u128 r = rldi_gcra_refund(t, tat, now, amounts[j]);
                FUZZ_CHECK(r <= tat || r == now, "refund raised the TAT");
                rldi_u128 d = 12345;
                int rc = rldi_gcra_debit(t, burst, tat, now, amounts[j], &d);
                FUZZ_CHECK(rc == 0 || (rc == -ERANGE && d == 12345), "debit rc %d", rc);
            }
        }
        /* the daemon's reload: carry from the other bank to this one */
        (void)rldi_gcra_carry(t_o, o->burst, t, burst, RLDI_DEBT_MAX_NS, tat, now);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    uint32_t slot_count = 1 + fuzz_u8(&in) % 64;
    unsigned mode = flags & 3;

    /* The header, staged apart: the mapping may be shorter than a header. */
    static rldi_shm_header hdr;
    memset(&hdr, 0, sizeof hdr);
    rldi_shm_header geo;
    memset(&geo, 0, sizeof geo);
    uint64_t seg_size = rldi_seg_geometry(slot_count, &geo);
    FUZZ_CHECK(seg_size >= RLDI_HEADER_SIZE, "geometry(%u) = %llu", slot_count,
               (unsigned long long)seg_size);

    if (mode == 3) {
        size_t n = in.n < sizeof hdr ? in.n : sizeof hdr;
        memcpy(&hdr, in.p, n);
        in.p += n;
        in.n -= n;
        if (hdr.segment_size >= RLDI_HEADER_SIZE && hdr.segment_size <= MAX_SEG)
            seg_size = hdr.segment_size;
    } else {
        hdr = geo;
        memcpy(hdr.magic, RLDI_MAGIC, sizeof hdr.magic);
        hdr.abi_major = RLDI_ABI_MAJOR;
        hdr.abi_minor = RLDI_ABI_MINOR;
        hdr.state = RLDI_STATE_READY;
        hdr.limit_count = slot_count;
        hdr.heartbeat_ns = 1000000000000ull;
        hdr.created_ns = 1700000000000000000ull;
    }
    if (flags & 4)
        hdr.state = fuzz_u8(&in) % 4;
    if (flags & 16) {
        uint64_t cut = fuzz_u64(&in) % seg_size;   /* 0 .. size - 1 */
        seg_size = cut;
    }

    uint8_t *base = NULL;
    size_t alloc = seg_size ? seg_size : 1;
    if (posix_memalign((void **)&base, 64, alloc) != 0)
        abort();
    memset(base, 0, alloc);
    memcpy(base, &hdr, seg_size < sizeof hdr ? seg_size : sizeof hdr);

    bool populated = (flags & 8) && mode != 3 && seg_size == geo.segment_size;
    if (populated) {
        populate(base, &geo, &in);
        /* then sparse patches of the regions: (u16 offset, byte) */
        size_t region = seg_size - RLDI_HEADER_SIZE;
        while (in.n >= 3) {
            uint16_t off = fuzz_u8(&in);
            off |= (uint16_t)(fuzz_u8(&in) << 8);
            base[RLDI_HEADER_SIZE + off % region] = fuzz_u8(&in);
        }
    }
    if (mode == 2) {
        /* header patches: (offset < 128, byte), count from the input */
        unsigned n = fuzz_u8(&in) % 16;
        for (unsigned i = 0; i < n && seg_size > 0; i++) {
            uint8_t off = fuzz_u8(&in) % 128;
            if (off < seg_size)
                base[off] = fuzz_u8(&in);
        }
    }
    if (!populated && seg_size > RLDI_HEADER_SIZE) {
        size_t n = seg_size - RLDI_HEADER_SIZE;
        memcpy(base + RLDI_HEADER_SIZE, in.p, in.n < n ? in.n : n);
    }

    int r = rldi_seg_check(base, seg_size, true);
    static int debug = -1;   /* FUZZ_SEGMENT_DEBUG=1: say what each input became */
    if (debug < 0)
        debug = getenv("FUZZ_SEGMENT_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "fuzz_segment: mode %u, size %llu, populated %d: check %d\n", mode,
                (unsigned long long)seg_size, populated, r);
    FUZZ_CHECK(r == 0 || r == RLD_ECORRUPT || r == RLD_EABI || r == -EAGAIN, "check: %d", r);
    int r2 = rldi_seg_check(base, seg_size, false);
    FUZZ_CHECK(r2 == 0 || r2 == RLD_ECORRUPT || r2 == RLD_EABI, "check (not ready): %d", r2);
    FUZZ_CHECK(r != 0 || r2 == 0, "ready check passes, the weaker one fails");
    if (r != 0) {
        free(base);
        return 0;
    }

    rldi_seg s;
    rldi_seg_bind(&s, base, seg_size);
    FUZZ_CHECK(s.slot_count >= 1 && (uint64_t)s.hdr->slots_off + (uint64_t)s.slot_count * RLDI_SLOT_SIZE <= seg_size &&
                   (uint64_t)s.hdr->meta_off + (uint64_t)s.slot_count * RLDI_META_SIZE <= seg_size &&
                   (uint64_t)s.hdr->index_off + ((uint64_t)s.index_mask + 1) * 4 <= seg_size &&
                   ((s.index_mask + 1) & s.index_mask) == 0,
               "a checked segment has a region outside the mapping");
    s.hdr->index_seq &= ~(uint64_t)1;

    char name[RLDI_NAME_MAX + 1];
    uint32_t slot, gen;
    uint32_t nrun = s.slot_count < MAX_SLOTS_RUN ? s.slot_count : MAX_SLOTS_RUN;
    for (uint32_t i = 0; i < nrun; i++) {
        memset(name, 'x', sizeof name);
        int nr = rldi_seg_name(&s, i, name);
        FUZZ_CHECK(nr == 0 || nr == -ENOENT, "seg_name: %d", nr);
        FUZZ_CHECK(memchr(name, 0, sizeof name), "seg_name: not terminated");
        const char *why;
        if (nr == 0 && rldi_name_check(name, &why) == 0) {
            int lr = rldi_seg_lookup(&s, name, &slot, &gen);
            FUZZ_CHECK(lr == 0 || lr == -ENOENT, "lookup: %d", lr);
            if (lr == 0)
                FUZZ_CHECK(slot < s.slot_count, "lookup: slot %u of %u", slot, s.slot_count);
        }
        slot_arithmetic(&s.slots[i], s.hdr);
        if (i < 4)
            buckets(&s, i);     /* the real code is slower: a few slots suffice */
    }
    FUZZ_CHECK(rldi_seg_name(&s, s.slot_count, name) == -ENOENT, "seg_name past the end");
    for (size_t i = 0; i < NPROBE; i++) {
        int lr = rldi_seg_lookup(&s, probe_names[i], &slot, &gen);
        FUZZ_CHECK(lr == 0 || lr == -ENOENT, "lookup: %d", lr);
        if (lr == 0)
            FUZZ_CHECK(slot < s.slot_count, "lookup: slot %u of %u", slot, s.slot_count);
    }
    free(base);
    return 0;
}
