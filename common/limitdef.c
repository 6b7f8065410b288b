/* limitdef.c - the one check of a limit's definition (see limitdef.h). */
#include "limitdef.h"

#include <errno.h>
#include <string.h>

#include "breaker.h"
#include "bucket.h"
#include "rate.h"
#include "window.h"

int rldi_algo_parse(const char *s, uint32_t *algo)
{
    static const char *const names[] = { "gcra", "sliding", "fixed" };
    for (uint32_t i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *algo = i;
            return 0;
        }
    return -EINVAL;
}

const char *rldi_algo_name(uint32_t algo)
{
    return algo == RLDI_ALGO_SLIDING ? "sliding" : algo == RLDI_ALGO_FIXED ? "fixed" : "gcra";
}

int rldi_limitdef_check(const rldi_limitdef *def, const char **why,
                        enum rldi_limitdef_field *field)
{
    const char *w = NULL;
    enum rldi_limitdef_field f = RLDI_LD_OK;
    int r = 0;
    rldi_u128 t, tau;
    if (def->kind == RLDI_KIND_BREAKER) {
        rldi_brk_conf bc = { def->brk_failures, def->brk_probes, def->brk_successes,
                             def->brk_open_for_ns, def->brk_probe_timeout_ns };
        if (rldi_name_check(def->name, &w) < 0) {
            f = RLDI_LD_NAME;
            r = -EINVAL;
        } else if (rldi_brk_conf_check(&bc, &w) < 0) {
            f = RLDI_LD_BREAKER;
            r = -EINVAL;
        }
        if (why)
            *why = w;
        if (field)
            *field = f;
        return r;
    }
    if (rldi_name_check(def->name, &w) < 0) {
        f = RLDI_LD_NAME;
        r = -EINVAL;
    } else if (def->concurrency > RLDI_CONCURRENCY_MAX) {
        w = "concurrency must be 1..1000000";
        f = RLDI_LD_CONCURRENCY;
        r = -EINVAL;
    } else if (def->concurrency && def->kind == RLDI_KIND_TEMPLATE) {
        w = "concurrency is for [limit] sections (leases are per limit)";
        f = RLDI_LD_CONCURRENCY;
        r = -EINVAL;
    } else if (def->count == 0 ? def->period_ns != 0
                               : def->count > RLDI_RATE_COUNT_MAX ||
                                     def->period_ns < RLDI_PERIOD_MIN_NS ||
                                     def->period_ns > RLDI_PERIOD_MAX_NS) {
        w = "rate out of range (1..10^15 per 1 ms..365 days)";
        f = RLDI_LD_RATE;
        r = -EINVAL;
    } else if (def->algo > RLDI_ALGO_FIXED) {
        w = "algorithm must be gcra, sliding or fixed";
        f = RLDI_LD_ALGO;
        r = -EINVAL;
    } else if (def->scope == RLDI_SCOPE_GLOBAL && def->kind != RLDI_KIND_TEMPLATE &&
               def->algo != RLDI_ALGO_GCRA) {
        /* before the window branch, which leaves the chain: checked for every algorithm (a
         * template's scope is checked below: templates are host limits) */
        w = "a global limit is a GCRA bucket in Redis: algorithm = gcra";
        f = RLDI_LD_SCOPE;
        r = -EINVAL;
    } else if (def->scope != RLDI_SCOPE_GLOBAL && def->fallback_num) {
        w = "fallback applies to scope = global only";
        f = RLDI_LD_SCOPE;
        r = -EINVAL;
    } else if (def->scope == RLDI_SCOPE_GLOBAL && def->kind != RLDI_KIND_TEMPLATE &&
               def->concurrency) {
        w = "concurrency counts leases on this host: it cannot be part of a global limit "
            "(declare a host limit with concurrency beside it)";
        f = RLDI_LD_CONCURRENCY;
        r = -EINVAL;
    } else if (def->algo != RLDI_ALGO_GCRA) {
        /* a window: COUNT per PERIOD is the cap, there is no burst */
        if (def->count == 0 && !def->caller_rate) {
            w = "a window algorithm needs a rate (COUNT/PERIOD), not unlimited";
            f = RLDI_LD_RATE;
        } else if (def->burst != 0) {
            w = "burst does not apply to a window algorithm: COUNT is the cap";
            f = RLDI_LD_BURST;
        } else if (def->count > (def->algo == RLDI_ALGO_SLIDING ? RLDI_WIN_SLIDING_MAX
                                                                : RLDI_WIN_FIXED_MAX)) {
            w = def->algo == RLDI_ALGO_SLIDING ? "a sliding window counts at most 16777215 "
                                                 "tokens per period"
                                               : "a fixed window counts at most 4294967295 "
                                                 "tokens per period";
            f = RLDI_LD_RATE;
        } else if (def->align_set && (def->algo != RLDI_ALGO_FIXED ||
                                      (!def->caller_rate && def->align_ns >= def->period_ns &&
                                       def->align_ns < RLDI_WIN_ANCHOR_ELASTIC))) {
            w = def->algo != RLDI_ALGO_FIXED ? "align applies to fixed windows only"
                                             : "align must be shorter than the period";
            f = RLDI_LD_ALIGN;
        }
        if (w)
            r = -EINVAL;
    } else if (def->align_set) {
        w = "align applies to fixed windows only";
        f = RLDI_LD_ALIGN;
        r = -EINVAL;
    } else if (def->count != 0 && (rldi_interval(def->count, def->period_ns, &t) < 0 ||
                                   t < RLDI_T_MIN_UNITS)) {
        w = "rate too high to enforce within 10^-6 (at most 4.2 x 10^12 per second; "
            "say 'unlimited')";
        f = RLDI_LD_RATE;
        r = -EINVAL;
    } else if (def->count != 0 && rldi_tau(t, rldi_limitdef_burst(def), &tau) < 0) {
        w = "burst x interval exceeds 146 years";
        f = RLDI_LD_BURST;
        r = -ERANGE;
    } else if (def->max_debt_set && def->max_debt_ns > RLDI_DEBT_MAX_NS) {
        w = "max_debt exceeds 146 years";
        f = RLDI_LD_DEBT;
        r = -ERANGE;
    } else if (def->scope == RLDI_SCOPE_GLOBAL && def->count == 0) {
        w = "an unlimited limit cannot be global (nothing to share)";
        f = RLDI_LD_SCOPE;
        r = -EINVAL;
    } else if (def->scope == RLDI_SCOPE_GLOBAL && def->count > def->period_ns) {
        w = "a global limit's rate is at most 10^9 per second";
        f = RLDI_LD_SCOPE;
        r = -ERANGE;
    } else if (def->scope == RLDI_SCOPE_GLOBAL &&
               (rldi_limitdef_burst(def) > RLDI_POOL_BURST_MAX ||
                (unsigned __int128)rldi_limitdef_global_t_ns(def) * rldi_limitdef_burst(def) >
                    RLDI_GLOBAL_TAU_MAX_NS)) {
        w = "a global limit's burst is at most 2^30 tokens and 13 days of its rate";
        f = RLDI_LD_SCOPE;
        r = -ERANGE;
    } else if (def->fallback_num && (def->fallback_den == 0 || def->fallback_num > def->fallback_den)) {
        w = "fallback share must be a fraction in (0, 1]";
        f = RLDI_LD_SCOPE;
        r = -EINVAL;
    }
    /* after the chain, which a window algorithm leaves by its own branch: every algorithm */
    if (r == 0 && def->kind == RLDI_KIND_TEMPLATE) {
        /* a template: its keys' definition (keys.h) */
        if (def->max_keys == 0 || def->max_keys > RLDI_MAX_KEYS_MAX) {
            w = "max_keys must be 1..268435456";
            f = RLDI_LD_KEYS;
        } else if (def->scope == RLDI_SCOPE_GLOBAL) {
            w = "a template's keys are host limits (scope = global is for [limit])";
            f = RLDI_LD_SCOPE;
        } else if (def->caller_rate && def->burst) {
            w = "with rate = caller each key's burst is its rate's count: no burst";
            f = RLDI_LD_BURST;
        }
        if (w)
            r = -EINVAL;
    } else if (r == 0 && (def->max_keys || def->overflow_allow || def->caller_rate)) {
        w = "max_keys, overflow and rate = caller are for [template]";
        f = RLDI_LD_KEYS;
        r = -EINVAL;
    }
    if (why)
        *why = w;
    if (field)
        *field = f;
    return r;
}

uint64_t rldi_limitdef_global_t_ns(const rldi_limitdef *def)
{
    if (def->count == 0)
        return 0;
    return def->period_ns / def->count + (def->period_ns % def->count != 0);
}

int rldi_limitdef_bank(const rldi_limitdef *def, rldi_bank *b)
{
    int r = rldi_limitdef_check(def, NULL, NULL);
    if (r < 0)
        return r;
    if (def->kind == RLDI_KIND_BREAKER) {
        rldi_brk_conf bc = { def->brk_failures, def->brk_probes, def->brk_successes,
                             def->brk_open_for_ns, def->brk_probe_timeout_ns };
        rldi_brk_bank(&bc, b);
        return 0;
    }
    if (def->algo != RLDI_ALGO_GCRA) {
        b->t_lo = def->period_ns;
        b->t_hi = (uint64_t)def->algo << RLDI_ALGO_SHIFT;
        b->burst = def->count;
        b->inv_t = def->algo == RLDI_ALGO_SLIDING ? rldi_win_sub_width(def->period_ns)
                                                  : def->align_ns;
        return 0;
    }
    if (def->scope == RLDI_SCOPE_GLOBAL) {      /* its pool (gcra.h) */
        rldi_bank_gcra(b, RLDI_POOL_T, rldi_limitdef_burst(def));
        return 0;
    }
    rldi_u128 t;
    if ((r = rldi_interval(def->count, def->period_ns, &t)) < 0)
        return r;
    rldi_bank_gcra(b, t, rldi_limitdef_burst(def));
    return 0;
}

uint64_t rldi_limitdef_max_debt(const rldi_limitdef *def)
{
    if (def->max_debt_set)
        return def->max_debt_ns;
    if (def->algo != RLDI_ALGO_GCRA)      /* a window's worth, at least 1 h */
        return def->period_ns > RLDI_DEBT_DEFAULT_MIN_NS ? def->period_ns : RLDI_DEBT_DEFAULT_MIN_NS;
    rldi_u128 t, tau = 0;
    if (def->count && rldi_interval(def->count, def->period_ns, &t) == 0)
        (void)rldi_tau(t, rldi_limitdef_burst(def), &tau);
    uint64_t tau_ns = rldi_fp_to_ns_ceil(tau);
    return tau_ns > RLDI_DEBT_DEFAULT_MIN_NS ? tau_ns : RLDI_DEBT_DEFAULT_MIN_NS;
}

void rldi_limitdef_breaker_defaults(rldi_limitdef *def)
{
    def->kind = RLDI_KIND_BREAKER;
    def->brk_failures = RLDI_BRK_DEFAULT_FAILURES;
    def->brk_open_for_ns = RLDI_BRK_DEFAULT_OPEN_FOR_NS;
    def->brk_probes = RLDI_BRK_DEFAULT_PROBES;
    def->brk_successes = RLDI_BRK_DEFAULT_SUCCESSES;
    def->brk_probe_timeout_ns = 0;
}

int rldi_burst_multiple_parse(const char *s, uint32_t *x1000)
{
    /* DIGITS[.DIGITS]x: at most 3 decimals, 0 < value <= 1000 */
    uint64_t whole = 0, frac = 0, scale = 1000;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((whole = whole * 10 + (uint64_t)(*p - '0')) > 1000)
            return -ERANGE;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale == 1)
                return -EINVAL;         /* more than 3 decimals */
            scale /= 10;
            frac += (uint64_t)(*p - '0') * scale;
        }
    }
    if ((*p != 'x' && *p != 'X') || p[1] != '\0')
        return -EINVAL;
    uint64_t v = whole * 1000 + frac;
    if (v == 0)
        return -EINVAL;
    if (v > 1000000)
        return -ERANGE;
    *x1000 = (uint32_t)v;
    return 0;
}

uint64_t rldi_burst_multiple(uint64_t count, uint32_t x1000)
{
    unsigned __int128 b = (unsigned __int128)count * x1000 / 1000;
    if (b > UINT64_MAX)
        return UINT64_MAX;
    return b ? (uint64_t)b : 1;
}
