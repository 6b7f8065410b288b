/*
 * fuzz_gcra.c - libFuzzer target for common/gcra.h within its documented domain.
 *
 * The input is a tuple, read as little-endian words (zero past the end), each value reduced
 * into its domain with a selector byte that picks the range's edges one time in four:
 *   rate     COUNT 1..10^15 per PERIOD 1 ms..365 days (whole ms, as rldi_parse_rate gives),
 *            passed through rldi_format_rate + rldi_parse_rate, T = rldi_interval()
 *   burst    1..the largest burst with rldi_tau() ok
 *   now      0..2^62 - 1 ns (whole ns, as librld reads the clock)
 *   tat      now - 2^62 .. now + 2^62 ns with a 2^-32 ns fraction (or, one time in two,
 *            now .. now + tau + 2^62 ns: the debt states rldi_gcra_debit can reach), >= 0
 *   cost     0..burst;  extra (queued tokens) any u64;  amount any u64;
 *   a second rate and burst (or unlimited) for rldi_gcra_carry; a garbage 1/T hint.
 *
 * Invariants, against a reference written with plain 128-bit (and 256-bit) arithmetic:
 *   try:    allowed iff max(tat,now) + cost*T - now <= tau and extra == 0; *new_tat written
 *           only when allowed, and then exact and below 2^64 ns; retry_after > 0 iff denied;
 *           remaining <= burst and exact (floor); reset_after = ceil(used);
 *           denied -> allowed at now + retry_after and (extra == 0) denied 1 ns before;
 *           with extra queued: allowed at now + retry_after once the queue has been served;
 *           the verdicts are identical with the exact 1/T hint, no hint and a garbage hint.
 *   peek:   equals try(cost 0, extra 0) field by field.
 *   refund: never beyond now, never above tat; exact when it does not clamp.
 *   debit:  -ERANGE exactly when the debt would exceed tau + 2^62 ns (or overflow), and then
 *           *new_tat untouched; else exact and below 2^64 ns.
 *   tau:    rldi_tau(T, max burst) ok, rldi_tau(T, max burst + 1) -ERANGE.
 *   carry:  full stays full; to or from unlimited -> full; unchanged (T, burst) keeps tat;
 *           else the fill (used up to tau) keeps its fraction of tau and the debt beyond it
 *           its tokens (debt x T_new / T_old), each rounded toward denying by at most 2^-50
 *           relative + 2 units, the debt capped at a fuzzed max_debt (<= 2^62 ns).
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz_common.h"
#include "gcra.h"
#include "rate.h"

typedef rldi_u128 u128;

#define NS_MS    UINT64_C(1000000)
#define TWO62    (UINT64_C(1) << 62)
#define FP(ns)   rldi_fp_from_ns(ns)
#define SENTINEL (~(u128)0 - 12345)

static const char *u128s(u128 v, char *buf) /* 40 digits + NUL */
{
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

/* ---- 256-bit helpers for the carry check ---- */
typedef struct { uint64_t w[4]; } u256;   /* little-endian limbs */

static u256 mul256(u128 a, u128 b)
{
    uint64_t x[2] = {(uint64_t)a, (uint64_t)(a >> 64)}, y[2] = {(uint64_t)b, (uint64_t)(b >> 64)};
    u256 r = {{0, 0, 0, 0}};
    for (int i = 0; i < 2; i++) {
        u128 carry = 0;
        for (int j = 0; j < 2; j++) {
            u128 cur = (u128)x[i] * y[j] + r.w[i + j] + carry;
            r.w[i + j] = (uint64_t)cur;
            carry = cur >> 64;
        }
        for (int k = i + 2; k < 4 && carry; k++) {
            u128 cur = (u128)r.w[k] + carry;
            r.w[k] = (uint64_t)cur;
            carry = cur >> 64;
        }
    }
    return r;
}

static u256 add256(u256 a, u256 b)
{
    u256 r;
    u128 carry = 0;
    for (int i = 0; i < 4; i++) {
        u128 cur = (u128)a.w[i] + b.w[i] + carry;
        r.w[i] = (uint64_t)cur;
        carry = cur >> 64;
    }
    return r;
}

static u256 shr256(u256 a, unsigned s) /* 0 < s < 64 */
{
    u256 r;
    for (int i = 0; i < 4; i++)
        r.w[i] = (a.w[i] >> s) | (i < 3 ? a.w[i + 1] << (64 - s) : 0);
    return r;
}

static int cmp256(u256 a, u256 b)
{
    for (int i = 3; i >= 0; i--)
        if (a.w[i] != b.w[i])
            return a.w[i] < b.w[i] ? -1 : 1;
    return 0;
}

/* ---- input ---- */

/* A rate in the parser's domain, through its text form; T and the largest burst. */
static void take_rate(fuzz_in *in, uint64_t *count, uint64_t *period, u128 *t, uint64_t *maxb)
{
    uint64_t c = fuzz_range(in, 1, RLDI_RATE_COUNT_MAX);
    uint64_t p = fuzz_range(in, 1, RLDI_PERIOD_MAX_NS / NS_MS) * NS_MS;
    char buf[96];
    rldi_format_rate(buf, sizeof buf, c, p);
    const char *why = NULL;
    FUZZ_CHECK(rldi_parse_rate(buf, count, period, &why) == 0 && *count == c && *period == p,
               "rate %llu/%lluns -> '%s' does not parse back", (unsigned long long)c,
               (unsigned long long)p, buf);
    FUZZ_CHECK(rldi_interval(c, p, t) == 0 && *t > 0, "interval");
    u128 m = FP(TWO62) / *t;
    *maxb = m > UINT64_MAX ? UINT64_MAX : (uint64_t)m;
    FUZZ_CHECK(*maxb >= 1, "a rate of the parser's domain allows no burst");
    u128 tau;
    FUZZ_CHECK(rldi_tau(*t, *maxb, &tau) == 0, "tau of the largest burst");
    if (*maxb < UINT64_MAX)
        FUZZ_CHECK(rldi_tau(*t, *maxb + 1, &tau) == -ERANGE, "tau of the largest burst + 1");
}

static bool same_verdict(const rldi_verdict *a, const rldi_verdict *b)
{
    return a->limit == b->limit && a->remaining == b->remaining &&
           a->retry_after_ns == b->retry_after_ns && a->reset_after_ns == b->reset_after_ns;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    char b1[48], b2[48];
    uint64_t count, period, maxb;
    u128 t;
    take_rate(&in, &count, &period, &t, &maxb);
    uint64_t burst = fuzz_range(&in, 1, maxb);
    u128 tau = t * burst;

    uint64_t now_ns = fuzz_range(&in, 0, TWO62 - 1);
    u128 now = FP(now_ns);
    uint8_t tsel = fuzz_u8(&in);
    uint32_t frac = (uint32_t)fuzz_u64(&in);
    u128 tat;
    if (tsel & 1) {                             /* debt states: now .. now + tau + 2^62 ns */
        u128 span = tau + FP(TWO62);
        u128 off = (((u128)fuzz_u64(&in) << 64) | fuzz_u64(&in)) % (span + 1);
        if ((tsel & 6) == 0)
            off = span;
        tat = now + off;
    } else {                                    /* now - 2^62 .. now + 2^62 ns */
        uint64_t off = fuzz_range(&in, 0, 2 * TWO62);
        u128 t0 = FP(now_ns) + FP(off);
        tat = t0 >= FP(TWO62) ? (t0 - FP(TWO62)) | frac : frac;
        if (tat > now + FP(TWO62))
            tat = now + FP(TWO62);
    }
    uint64_t cost = fuzz_range(&in, 0, burst);
    uint64_t extra = (fuzz_u8(&in) & 1) ? fuzz_range(&in, 0, UINT64_MAX) : 0;
    uint64_t amount = fuzz_range(&in, 0, UINT64_MAX);
    uint64_t garbage_bits = fuzz_u64(&in);
    double inv_exact = 1.0 / (double)t, inv_garbage;
    memcpy(&inv_garbage, &garbage_bits, sizeof inv_garbage);

    /* ---- reference values ---- */
    u128 tat0 = tat > now ? tat : now;
    u128 used = tat0 - now;
    u128 ct = t * cost;
    bool want_ok = used + ct <= tau && extra == 0;

    /* ---- try ---- */
    u128 nt = SENTINEL;
    rldi_verdict v;
    bool ok = rldi_gcra_try(t, burst, tat, now, cost, extra, &nt, &v);
    FUZZ_CHECK(ok == want_ok, "try: %d, want %d (used %s, cost*T %s)", ok, want_ok, u128s(used, b1),
               u128s(ct, b2));
    FUZZ_CHECK(v.limit == burst, "try: limit");
    FUZZ_CHECK(v.remaining <= burst, "try: remaining %llu > burst %llu",
               (unsigned long long)v.remaining, (unsigned long long)burst);
    FUZZ_CHECK((v.retry_after_ns > 0) == !ok, "try: ok %d with retry_after %llu", ok,
               (unsigned long long)v.retry_after_ns);
    if (ok) {
        FUZZ_CHECK(nt == tat0 + ct, "try: new tat %s", u128s(nt, b1));
        FUZZ_CHECK((nt >> 96) == 0, "try: new tat beyond 2^64 ns");
        FUZZ_CHECK(v.remaining == (uint64_t)((tau - used - ct) / t), "try: remaining %llu, want %s",
                   (unsigned long long)v.remaining, u128s((tau - used - ct) / t, b1));
        FUZZ_CHECK(v.reset_after_ns == rldi_fp_to_ns_ceil(used + ct), "try: reset_after");
        rldi_verdict v2, v3;
        rldi_gcra_verdict_ok(t, burst, inv_exact, nt, now, &v2);
        rldi_gcra_verdict_ok(t, burst, inv_garbage, nt, now, &v3);
        FUZZ_CHECK(same_verdict(&v, &v2) && same_verdict(&v, &v3),
                   "verdict_ok depends on the 1/T hint: %llu / %llu / %llu",
                   (unsigned long long)v.remaining, (unsigned long long)v2.remaining,
                   (unsigned long long)v3.remaining);
    } else {
        FUZZ_CHECK(nt == SENTINEL, "try: new tat written on a denial");
        /* the queue ahead counts as taken; remaining stays below the cost asked */
        u128 q_ahead;
        if (__builtin_mul_overflow(t, (u128)extra, &q_ahead) || q_ahead > ((u128)1 << 100))
            q_ahead = (u128)1 << 100;
        u128 used_q = used + q_ahead;
        u128 want_rem = used_q >= tau ? 0 : (tau - used_q) / t;
        if (want_rem >= cost)
            want_rem = cost ? cost - 1 : 0;
        FUZZ_CHECK(v.remaining == (uint64_t)want_rem, "denied: remaining %llu, want %s",
                   (unsigned long long)v.remaining, u128s(want_rem, b1));
        FUZZ_CHECK(v.reset_after_ns == rldi_fp_to_ns_ceil(used_q), "denied: reset_after");
        FUZZ_CHECK(v.remaining < cost || cost == 0, "denied: remaining %llu not below cost %llu",
                   (unsigned long long)v.remaining, (unsigned long long)cost);
        FUZZ_CHECK(v.reset_after_ns >= v.retry_after_ns || v.retry_after_ns == 1 ||
                       cost > burst,
                   "denied: reset_after %llu before retry_after %llu",
                   (unsigned long long)v.reset_after_ns, (unsigned long long)v.retry_after_ns);
        rldi_verdict v2, v3;
        rldi_gcra_verdict_denied(t, burst, inv_exact, tat, now, cost, extra, &v2);
        rldi_gcra_verdict_denied(t, burst, inv_garbage, tat, now, cost, extra, &v3);
        FUZZ_CHECK(same_verdict(&v, &v2) && same_verdict(&v, &v3),
                   "verdict_denied depends on the 1/T hint");

        uint64_t r = v.retry_after_ns;
        u128 ahead;
        bool capped = __builtin_mul_overflow(t, (u128)extra, &ahead) || ahead > ((u128)1 << 100);
        if (!capped && r < TWO62) {
            /* the queue ahead is served first, then COST fits at now + retry_after */
            u128 tat_q = tat0 + ahead, nt2;
            FUZZ_CHECK(rldi_gcra_decide(t, burst, tat_q, now + FP(r), cost, 0, &nt2),
                       "denied (extra %llu): not allowed at now + retry_after %llu ns",
                       (unsigned long long)extra, (unsigned long long)r);
            if (extra == 0 && r >= 1)
                FUZZ_CHECK(!rldi_gcra_decide(t, burst, tat, now + FP(r - 1), cost, 0, &nt2),
                           "denied: already allowed 1 ns before retry_after %llu",
                           (unsigned long long)r);
        }
    }

    /* ---- peek == try(0) ---- */
    rldi_verdict pv, tv;
    u128 unused;
    rldi_gcra_peek(t, burst, tat, now, &pv);
    bool ok0 = rldi_gcra_try(t, burst, tat, now, 0, 0, &unused, &tv);
    FUZZ_CHECK(same_verdict(&pv, &tv), "peek differs from try(0): remaining %llu/%llu retry %llu/%llu",
               (unsigned long long)pv.remaining, (unsigned long long)tv.remaining,
               (unsigned long long)pv.retry_after_ns, (unsigned long long)tv.retry_after_ns);
    FUZZ_CHECK(ok0 == (used <= tau), "try(0) while in debt");
    if (extra == 0 && cost >= 1) {
        FUZZ_CHECK(ok == (used <= tau && pv.remaining >= cost), "try vs peek.remaining");
        if (ok)
            FUZZ_CHECK(v.remaining == pv.remaining - cost, "remaining after try != peek - cost");
    }

    /* ---- refund ---- */
    u128 rf = rldi_gcra_refund(t, tat, now, amount);
    if (tat <= now) {
        FUZZ_CHECK(rf == tat, "refund of a full bucket moved it");
    } else {
        FUZZ_CHECK(rf >= now && rf <= tat, "refund beyond now or above tat");
        u128 back;
        if (!__builtin_mul_overflow(t, (u128)amount, &back) && back < tat - now)
            FUZZ_CHECK(rf == tat - back, "refund not exact");
        else
            FUZZ_CHECK(rf == now, "refund clamps to now");
    }

    /* ---- debit ---- */
    u128 dt = SENTINEL, need;
    int drc = rldi_gcra_debit(t, burst, tat, now, amount, &dt);
    u128 cap = tau + FP(TWO62);
    bool want_debit = !__builtin_mul_overflow(t, (u128)amount, &need) && used <= cap &&
                      need <= cap - used;
    if (want_debit) {
        FUZZ_CHECK(drc == 0 && dt == tat0 + need, "debit: rc %d", drc);
        FUZZ_CHECK((dt >> 96) == 0, "debit: new tat beyond 2^64 ns");
    } else {
        FUZZ_CHECK(drc == -ERANGE && dt == SENTINEL, "debit beyond the cap: rc %d, output %s",
                   drc, dt == SENTINEL ? "untouched" : "written");
    }

    /* ---- carry to a second rate (or unlimited) ---- */
    uint64_t count2, period2, maxb2;
    u128 t2;
    take_rate(&in, &count2, &period2, &t2, &maxb2);
    uint64_t burst2 = fuzz_range(&in, 1, maxb2);
    uint8_t csel = fuzz_u8(&in);
    if ((csel & 7) == 0) {
        t2 = 0;                                 /* to unlimited */
    } else if ((csel & 7) == 1) {
        t2 = t, burst2 = burst;                 /* unchanged */
    }
    u128 told = t;
    uint64_t bold = burst;
    if ((csel & 0x38) == 0)
        told = 0;                               /* from unlimited */
    u128 tau_old = told * bold, tau_new = t2 * burst2;
    uint64_t max_debt = fuzz_range(&in, 0, TWO62);
    u128 c = rldi_gcra_carry(told, bold, t2, burst2, max_debt, tat, now);
    if (tat <= now) {
        FUZZ_CHECK(c == tat, "carry: a full bucket changed");
    } else if (tau_old == 0 || tau_new == 0) {
        FUZZ_CHECK(c == now, "carry to/from unlimited not full");
    } else if (told == t2 && bold == burst2) {
        FUZZ_CHECK(c == tat, "carry with the same (T, burst) changed tat");
    } else {
        u128 dcap = FP(max_debt);
        FUZZ_CHECK(c >= now && c - now <= tau_new + dcap, "carry beyond the debt cap");
        u128 un = c - now;
        u128 fill = used < tau_old ? used : tau_old, debt = used - fill;
        /* the fill: un_fill / tau_new >= fill / tau_old, rounded up by a hair at most */
        u128 ufill = un < tau_new ? un : tau_new, udebt = un - ufill;
        u256 lhs = mul256(ufill, tau_old), rhs = mul256(fill, tau_new);
        FUZZ_CHECK(cmp256(lhs, rhs) >= 0, "carry rounds the fill toward admitting: used %s -> %s",
                   u128s(used, b1), u128s(un, b2));
        u256 bound = add256(add256(rhs, shr256(rhs, 50)), mul256(2, tau_old));
        FUZZ_CHECK(cmp256(lhs, bound) <= 0, "carry rounds the fill up too much: used %s -> %s",
                   u128s(used, b1), u128s(un, b2));
        /* no debt before: none after; debt: its tokens (udebt / T2 >= debt / T), capped */
        FUZZ_CHECK(debt != 0 || udebt == 0, "carry invented debt: used %s -> %s",
                   u128s(used, b1), u128s(un, b2));
        if (debt && udebt != dcap) {
            lhs = mul256(udebt, told), rhs = mul256(debt, t2);
            FUZZ_CHECK(cmp256(lhs, rhs) >= 0, "carry forgave debt: used %s -> %s",
                       u128s(used, b1), u128s(un, b2));
            bound = add256(add256(rhs, shr256(rhs, 50)), mul256(2, told));
            FUZZ_CHECK(cmp256(lhs, bound) <= 0, "carry invented debt: used %s -> %s",
                       u128s(used, b1), u128s(un, b2));
        }
    }
    return 0;
}
