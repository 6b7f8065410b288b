/* limitdef.c - the one check of a limit's definition (see limitdef.h). */
#include "limitdef.h"

#include <errno.h>

#include "rate.h"

int rldi_limitdef_check(const rldi_limitdef *def, const char **why,
                        enum rldi_limitdef_field *field)
{
    const char *w = NULL;
    enum rldi_limitdef_field f = RLDI_LD_OK;
    int r = 0;
    rldi_u128 t, tau;
    if (rldi_name_check(def->name, &w) < 0) {
        f = RLDI_LD_NAME;
        r = -EINVAL;
    } else if (def->count == 0 ? def->period_ns != 0
                               : def->count > RLDI_RATE_COUNT_MAX ||
                                     def->period_ns < RLDI_PERIOD_MIN_NS ||
                                     def->period_ns > RLDI_PERIOD_MAX_NS) {
        w = "rate out of range (1..10^15 per 1 ms..365 days)";
        f = RLDI_LD_RATE;
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
    }
    if (why)
        *why = w;
    if (field)
        *field = f;
    return r;
}

int rldi_limitdef_bank(const rldi_limitdef *def, rldi_u128 *t, uint64_t *burst)
{
    int r = rldi_limitdef_check(def, NULL, NULL);
    if (r < 0)
        return r;
    *burst = rldi_limitdef_burst(def);
    return rldi_interval(def->count, def->period_ns, t);
}

uint64_t rldi_limitdef_max_debt(const rldi_limitdef *def)
{
    if (def->max_debt_set)
        return def->max_debt_ns;
    rldi_u128 t, tau = 0;
    if (def->count && rldi_interval(def->count, def->period_ns, &t) == 0)
        (void)rldi_tau(t, rldi_limitdef_burst(def), &tau);
    uint64_t tau_ns = rldi_fp_to_ns_ceil(tau);
    return tau_ns > RLDI_DEBT_DEFAULT_MIN_NS ? tau_ns : RLDI_DEBT_DEFAULT_MIN_NS;
}
