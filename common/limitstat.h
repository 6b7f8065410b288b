/*
 * limitstat.h - one limit as operators read it: its configuration, its state now and its
 * counters, from the segment. The one reader behind rld_info, the daemon's Status reply,
 * rlctl's list, status, watch and metrics, and the daemon's metrics endpoint, so that every
 * display says the same thing under the same name.
 *
 * Two waits that are easy to confuse, kept apart by name:
 *   retry_after_ns  until a call of cost 1 fits: what rld_try(cost 1) answers now, behind
 *                   the callers queued at the daemon (0 when one fits now);
 *   debt_ns         until the limit is out of debt: tokens taken beyond its burst (debits,
 *                   degraded waits) are paid back; the bucket is empty then, and a call of
 *                   cost 1 fits one emission interval later (0 when not in debt).
 */
#ifndef RLD_COMMON_LIMITSTAT_H
#define RLD_COMMON_LIMITSTAT_H

#include <stdbool.h>
#include <stdint.h>

#include "segment.h"

/* What the daemon configured: read under the index seqlock, never torn. */
typedef struct rldi_limit_conf {
    char     name[RLDI_NAME_MAX + 1];
    uint64_t rate_count;       /* tokens per period; 0 when unlimited */
    uint64_t rate_period_ns;
    uint64_t burst;            /* GCRA: tokens at once; a window: its COUNT */
    uint32_t origin;           /* RLDI_ORIGIN_* */
    uint32_t algo;             /* RLDI_ALGO_* */
    uint64_t align_ns;         /* fixed windows: their offset */
    uint32_t kind;             /* RLDI_KIND_*: a template's state is its keys' */
    uint32_t concurrency;      /* leases at most (concurrency = N); 0: none */
    bool     shadow;           /* mode = shadow */
} rldi_limit_conf;

/* The counters, since the limit was created (layout.h says what each counts). */
typedef struct rldi_limit_counts {
    uint64_t admitted, denied, refunded, rolled_back, debited;
    uint64_t shadowed;         /* mode = shadow: calls admitted it would have denied */
} rldi_limit_counts;

typedef struct rldi_limit_stat {
    rldi_limit_conf   conf;
    rldi_limit_counts counts;
    bool              unlimited;
    uint64_t          remaining;        /* tokens available now (UINT64_MAX when unlimited) */
    uint64_t          retry_after_ns;   /* until a call of cost 1 fits (see above) */
    uint64_t          debt_ns;          /* until the limit is out of debt (see above) */
    uint64_t          reset_after_ns;   /* until the bucket is full again */
    uint32_t          waiters;          /* callers queued at the daemon */
} rldi_limit_stat;

/* Limit (SLOT, GEN)'s configuration. 0, -ESTALE (deleted, or another limit's slot now),
 * -EINVAL (no such slot), -EAGAIN (the index stayed locked). */
int rldi_limit_conf_read(const rldi_seg *s, uint32_t slot, uint32_t gen, rldi_limit_conf *out);

/* Its counters (relaxed reads: each is exact, together they are not a snapshot). */
void rldi_limit_counts_read(const rldi_seg *s, uint32_t slot, rldi_limit_counts *out);

/* Everything, as of NOW_NS (CLOCK_MONOTONIC). Codes as rldi_limit_conf_read. A template
 * has no state of its own (its keys have it): its configuration and counters only. */
int rldi_limit_stat_read(const rldi_seg *s, uint32_t slot, uint32_t gen, uint64_t now_ns,
                         rldi_limit_stat *out);

#endif
