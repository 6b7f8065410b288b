/*
 * breaker.c - circuit breakers in the segment (see breaker.h). Every change is one 16-byte
 * CAS of the breaker's state word, retried with the value it returned; a decision that
 * publishes nothing is trusted only when the word did not move while the bank was read.
 */
#include "breaker.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "atomics.h"

#define MS          1000000ull
#define TIME_BITS   44u
#define TIME_MASK   ((UINT64_C(1) << TIME_BITS) - 1)
#define EPOCH_MASK  0xfffffu

/* the state word (breaker.h): every bound fits its field, the fields fit their halves */
static_assert(RLDI_BRK_FAILURES_MAX <= 0xfffu && RLDI_BRK_PROBES_MAX <= 0x1ffu &&
              RLDI_BRK_SUCCESSES_MAX <= 0x1ffu, "a count fits its field of the frac half");
static_assert(2 + 12 + 9 + 9 <= 32, "state, failures, probes out, successes in 32 bits");
static_assert(TIME_BITS + 20 == 64 && EPOCH_MASK == (1u << 20) - 1, "epoch | ms in the tat half");
static_assert(RLDI_BRK_TIME_MAX_NS / MS < (UINT64_C(1) << TIME_BITS) / 2,
              "open_for and probe_timeout in ms leave room for the clock in the time field");
/* the bank (rldi_brk_bank): failures, probes and successes in 16 bits each */
static_assert(RLDI_BRK_FAILURES_MAX <= 0xffffu, "failures fit the bank's 16 bits");

/* ---- configuration ------------------------------------------------------------------------ */

void rldi_brk_bank(const rldi_brk_conf *c, rldi_bank *b)
{
    b->t_lo = c->open_for_ns;
    b->t_hi = (uint64_t)RLDI_ALGO_BREAKER << RLDI_ALGO_SHIFT;
    b->burst = (uint64_t)c->failures | (uint64_t)c->probes << 16 | (uint64_t)c->successes << 32;
    b->inv_t = c->probe_timeout_ns;
}

int rldi_brk_conf_check(const rldi_brk_conf *c, const char **why)
{
    if (c->failures < 1 || c->failures > RLDI_BRK_FAILURES_MAX)
        *why = "failures must be 1..4095";
    else if (c->probes < 1 || c->probes > RLDI_BRK_PROBES_MAX)
        *why = "probes must be 1..511";
    else if (c->successes < 1 || c->successes > RLDI_BRK_SUCCESSES_MAX)
        *why = "successes must be 1..511";
    else if (c->open_for_ns < MS || c->open_for_ns > RLDI_BRK_TIME_MAX_NS)
        *why = "open_for must be 1ms..52 days";
    else if (c->probe_timeout_ns < MS || c->probe_timeout_ns > RLDI_BRK_TIME_MAX_NS)
        *why = "probe_timeout must be 1ms..52 days";
    else
        return 0;
    return -EINVAL;
}

bool rldi_brk_conf_of(const rldi_bank *b, rldi_brk_conf *c)
{
    if (RLDI_BANK_ALGO(b->t_hi) != RLDI_ALGO_BREAKER)
        return false;
    c->open_for_ns = b->t_lo;
    c->failures = (uint32_t)(b->burst & 0xffff);
    c->probes = (uint32_t)((b->burst >> 16) & 0xffff);
    c->successes = (uint32_t)((b->burst >> 32) & 0xffff);
    c->probe_timeout_ns = b->inv_t;
    const char *why;
    return rldi_brk_conf_check(c, &why) == 0;
}

/* ---- the state word ------------------------------------------------------------------------ */

typedef struct bview {
    rldi_slot    *sl;
    rldi_u128     word;
    uint32_t      ver;
    uint32_t      state, fails, out, succ, epoch;
    uint64_t      t_ms;
    bool          conf_ok;
    rldi_brk_conf conf;
} bview;

static int bview_fill(const rldi_seg *s, rldi_handle h, rldi_u128 word, bview *v)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl)
        return -EINVAL;
    uint64_t gen = rldi_load_relaxed(&sl->gen);
    if ((uint32_t)gen != h.gen || !(h.gen & 1))
        return -ESTALE;
    uint64_t tat = (uint64_t)word, fv = (uint64_t)(word >> 64);
    v->sl = sl;
    v->word = word;
    v->ver = (uint32_t)(fv >> 32);
    const rldi_bank *b = &sl->bank[v->ver & 1];
    rldi_bank bk = { rldi_load_relaxed(&b->t_lo), rldi_load_relaxed(&b->t_hi),
                     rldi_load_relaxed(&b->burst), rldi_load_relaxed(&b->inv_t) };
    if (RLDI_BANK_ALGO(bk.t_hi) != RLDI_ALGO_BREAKER) {
        /* a limit (or a bank being rewritten: then the word moved) */
        rldi_fence_acquire();
        return rldi_load16_split(&sl->tat) == word ? -EINVAL : 1;
    }
    v->conf_ok = rldi_brk_conf_of(&bk, &v->conf);
    uint32_t f = (uint32_t)fv;
    v->state = f & 3u;
    v->fails = (f >> 2) & 0xfffu;
    v->out = (f >> 14) & 0x1ffu;
    v->succ = (f >> 23) & 0x1ffu;
    v->epoch = (uint32_t)(tat >> TIME_BITS) & EPOCH_MASK;
    v->t_ms = tat & TIME_MASK;
    return 0;
}

/* bview_fill of *WORD, read again while the bank is being rewritten: 0, -ESTALE, -EINVAL. */
static int bview_get(const rldi_seg *s, rldi_handle h, rldi_u128 *word, bview *v)
{
    int r;
    while ((r = bview_fill(s, h, *word, v)) == 1)
        *word = rldi_load16_split(&v->sl->tat);
    return r;
}

static bool bview_moved(const bview *v, rldi_u128 *word)
{
    rldi_fence_acquire();
    rldi_u128 now = rldi_load16_split(&v->sl->tat);
    if (now == v->word)
        return false;
    *word = now;
    return true;
}

static rldi_u128 bword(uint32_t state, uint32_t fails, uint32_t out, uint32_t succ, uint32_t epoch,
                       uint64_t t_ms, uint32_t ver)
{
    uint32_t f = (state & 3u) | (fails & 0xfffu) << 2 | (out & 0x1ffu) << 14 | (succ & 0x1ffu) << 23;
    uint64_t tat = (uint64_t)(epoch & EPOCH_MASK) << TIME_BITS | (t_ms & TIME_MASK);
    return ((rldi_u128)(((uint64_t)ver << 32) | f) << 64) | tat;
}

/* NOW_NS + D in whole ms, rounded up (a breaker never reopens early). */
static uint64_t ms_after(uint64_t now_ns, uint64_t d)
{
    return (now_ns + d + MS - 1) / MS;
}

static uint64_t ns_until(uint64_t t_ms, uint64_t now_ns)
{
    return t_ms * MS > now_ns ? t_ms * MS - now_ns : 0;
}

static void verdict(rldi_verdict *v, const bview *b, uint64_t remaining, uint64_t retry)
{
    if (!v)
        return;
    memset(v, 0, sizeof(*v));
    v->limit = b->conf_ok ? b->conf.failures : 0;
    v->remaining = remaining;
    v->retry_after_ns = retry;
}

/* ---- calls ------------------------------------------------------------------------------- */

int rldi_breaker_enter(const rldi_seg *s, rldi_handle h, uint64_t now_ns, rldi_verdict *v,
                       rldi_brk_ticket *t)
{
    t->probe = false;
    t->epoch = 0;
    rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl)
        return -EINVAL;
    rldi_u128 word = rldi_load16_split(&sl->tat);
    for (;;) {
        bview b;
        int r = bview_get(s, h, &word, &b);
        if (r < 0)
            return r;
        rldi_u128 nw;
        if (!b.conf_ok || b.state == RLDI_BRK_CLOSED) {
            if (bview_moved(&b, &word))
                continue;
            rldi_add_relaxed(&sl->admitted, 1);
            verdict(v, &b, UINT64_MAX, 0);
            return 0;
        }
        bool probe = false, opens = false;
        if (b.state == RLDI_BRK_OPEN) {
            if (now_ns < b.t_ms * MS) {
                if (bview_moved(&b, &word))
                    continue;
                rldi_add_relaxed(&sl->denied, 1);
                verdict(v, &b, 0, ns_until(b.t_ms, now_ns));
                return -EAGAIN;
            }
            /* open_for is over: half-open, and this call is its first probe */
            nw = bword(RLDI_BRK_HALF_OPEN, 0, 1, 0, b.epoch + 1, ms_after(now_ns, b.conf.probe_timeout_ns),
                       b.ver);
            probe = true;
        } else if (b.out > 0 && now_ns >= b.t_ms * MS) {
            /* the probes out did not report in time (a process died, or hangs): failed */
            nw = bword(RLDI_BRK_OPEN, 0, 0, 0, b.epoch, ms_after(now_ns, b.conf.open_for_ns), b.ver);
            opens = true;
        } else if (b.out < b.conf.probes) {
            nw = bword(RLDI_BRK_HALF_OPEN, 0, b.out + 1, b.succ, b.epoch,
                       ms_after(now_ns, b.conf.probe_timeout_ns), b.ver);
            probe = true;
        } else {
            if (bview_moved(&b, &word))
                continue;
            rldi_add_relaxed(&sl->denied, 1);
            verdict(v, &b, 0, ns_until(b.t_ms, now_ns));
            return -EAGAIN;
        }
        if (!rldi_cas16(&sl->tat, &word, nw))
            continue;
        if (opens) {
            rldi_add_relaxed(&sl->queued, 1);
            rldi_add_relaxed(&sl->denied, 1);
            verdict(v, &b, 0, ns_until(ms_after(now_ns, b.conf.open_for_ns), now_ns));
            return -EAGAIN;
        }
        rldi_add_relaxed(&sl->admitted, 1);
        t->probe = probe;
        t->epoch = (uint32_t)((uint64_t)nw >> TIME_BITS) & EPOCH_MASK;
        uint32_t out = (uint32_t)((uint64_t)(nw >> 64) >> 14) & 0x1ffu;
        verdict(v, &b, b.conf.probes - out, 0);
        return 0;
    }
}

int rldi_breaker_report(const rldi_seg *s, rldi_handle h, bool ok, const rldi_brk_ticket *t,
                        uint64_t now_ns)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl)
        return -EINVAL;
    rldi_u128 word = rldi_load16_split(&sl->tat);
    for (;;) {
        bview b;
        int r = bview_get(s, h, &word, &b);
        if (r < 0)
            return r;
        rldi_u128 nw = word;
        bool opens = false, closes = false;
        uint64_t open_until = b.conf_ok ? ms_after(now_ns, b.conf.open_for_ns) : 0;
        if (!b.conf_ok || b.state == RLDI_BRK_OPEN) {
            /* decides nothing: a call that was let through before it opened */
        } else if (b.state == RLDI_BRK_CLOSED) {
            if (t && t->probe) {
                /* a probe of a half-open period that is over */
            } else if (ok) {
                if (b.fails)
                    nw = bword(RLDI_BRK_CLOSED, 0, 0, 0, b.epoch, 0, b.ver);
            } else if (b.fails + 1 >= b.conf.failures) {
                nw = bword(RLDI_BRK_OPEN, 0, 0, 0, b.epoch, open_until, b.ver);
                opens = true;
            } else {
                nw = bword(RLDI_BRK_CLOSED, b.fails + 1, 0, 0, b.epoch, 0, b.ver);
            }
        } else if (b.out > 0 && now_ns >= b.t_ms * MS) {
            /* the probes timed out before this report: they failed */
            nw = bword(RLDI_BRK_OPEN, 0, 0, 0, b.epoch, open_until, b.ver);
            opens = true;
        } else if (t && t->probe && t->epoch == b.epoch && b.out > 0) {
            if (!ok) {
                nw = bword(RLDI_BRK_OPEN, 0, 0, 0, b.epoch, open_until, b.ver);
                opens = true;
            } else if (b.succ + 1 >= b.conf.successes) {
                nw = bword(RLDI_BRK_CLOSED, 0, 0, 0, b.epoch, 0, b.ver);
                closes = true;
            } else {
                nw = bword(RLDI_BRK_HALF_OPEN, 0, b.out - 1, b.succ + 1, b.epoch, b.t_ms, b.ver);
            }
        }
        if (nw == word) {
            if (bview_moved(&b, &word))
                continue;
            return 0;
        }
        if (!rldi_cas16(&sl->tat, &word, nw))
            continue;
        if (opens)
            rldi_add_relaxed(&sl->queued, 1);
        if (closes)
            rldi_add_relaxed(&sl->lease_hint_ns, 1);
        return 0;
    }
}

int rldi_breaker_force(const rldi_seg *s, rldi_handle h, uint32_t state, uint64_t now_ns)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl || (state != RLDI_BRK_OPEN && state != RLDI_BRK_CLOSED))
        return -EINVAL;
    rldi_u128 word = rldi_load16_split(&sl->tat);
    for (;;) {
        bview b;
        int r = bview_get(s, h, &word, &b);
        if (r < 0)
            return r;
        uint64_t open_for = b.conf_ok ? b.conf.open_for_ns : 0;
        rldi_u128 nw = state == RLDI_BRK_OPEN
                           ? bword(RLDI_BRK_OPEN, 0, 0, 0, b.epoch, ms_after(now_ns, open_for), b.ver)
                           : bword(RLDI_BRK_CLOSED, 0, 0, 0, b.epoch, 0, b.ver);
        if (!rldi_cas16(&sl->tat, &word, nw))
            continue;
        if (state == RLDI_BRK_OPEN && b.state != RLDI_BRK_OPEN)
            rldi_add_relaxed(&sl->queued, 1);
        if (state == RLDI_BRK_CLOSED && b.state != RLDI_BRK_CLOSED)
            rldi_add_relaxed(&sl->lease_hint_ns, 1);
        return 0;
    }
}

int rldi_breaker_read(const rldi_seg *s, rldi_handle h, uint64_t now_ns, rldi_brk_view *out)
{
    rldi_slot *sl = rldi_slot_of(s, h);
    if (!sl)
        return -EINVAL;
    rldi_u128 word = rldi_load16_split(&sl->tat);
    for (;;) {
        bview b;
        int r = bview_get(s, h, &word, &b);
        if (r < 0)
            return r;
        memset(out, 0, sizeof(*out));
        out->conf = b.conf;
        out->state = b.conf_ok ? b.state : RLDI_BRK_CLOSED;
        out->failures = b.fails;
        out->probes_out = b.out;
        out->successes = b.succ;
        out->epoch = b.epoch;
        if (out->state == RLDI_BRK_OPEN) {
            out->until_ns = ns_until(b.t_ms, now_ns);
            if (out->until_ns == 0)
                out->state = RLDI_BRK_HALF_OPEN;        /* the next call probes */
        } else if (out->state == RLDI_BRK_HALF_OPEN && b.out) {
            out->until_ns = ns_until(b.t_ms, now_ns);
            if (out->until_ns == 0) {                   /* the probes timed out: failed */
                out->state = RLDI_BRK_OPEN;
                out->until_ns = b.conf.open_for_ns;
                out->probes_out = 0;
            }
        }
        out->opens = rldi_load_relaxed(&sl->queued);
        out->closes = rldi_load_relaxed(&sl->lease_hint_ns);
        out->admitted = rldi_load_relaxed(&sl->admitted);
        out->denied = rldi_load_relaxed(&sl->denied);
        if (bview_moved(&b, &word))
            continue;
        return 0;
    }
}
