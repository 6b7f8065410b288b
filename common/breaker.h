/*
 * breaker.h - circuit breakers shared by every process of the host ([breaker NAME] in
 * rld.conf; rld_breaker_find, rld_breaker_enter, rld_breaker_report): the state machine of
 * pybreaker and Envoy's outlier ejection, kept in one slot of the segment and changed only
 * by 16-byte CASes of its state word, as a limit's is.
 *
 *   closed     every call passes; FAILURES consecutive failed calls open it
 *   open       every call is refused until OPEN_FOR has passed since it opened
 *   half-open  the next PROBES calls pass (host-wide, exactly: a CAS counts them out) and
 *              are probes; a probe's failure opens it again, SUCCESSES probe successes
 *              close it; a probe that does not report within PROBE_TIMEOUT (its process
 *              died, or hangs) counts as failed
 *
 * No daemon is involved: transitions are decided by whichever call finds them due (the open
 * state's end by the first call after it, a probe's timeout by the first call after that).
 *
 * The slot (layout.h): meta kind RLDI_KIND_BREAKER, waiters ~0 (the limits' fast paths leave
 * it alone and their slow path refuses it), the configuration in its banks (tagged
 * RLDI_ALGO_BREAKER, published by the daemon as a limit's), counters: admitted (calls let
 * through), denied (refused), queued (times opened), lease_hint_ns (times closed).
 *
 *   state word:  tat      = epoch (20 bits) << 44 | a time in ms (44 bits: 557 years)
 *                             open: when it half-opens; half-open: when the probes out
 *                             time out (the last probe's entry + PROBE_TIMEOUT)
 *                frac     = state (2) | failures (12) << 2 | probes out (9) << 14 |
 *                           probe successes (9) << 23
 *                ver      = the configuration's version (the bank), as a limit's
 *
 * The epoch counts half-openings: a probe's report names the epoch it entered in, so the
 * late report of a call made before (or of a probe of another half-open period) decides
 * nothing.
 */
#ifndef RLD_COMMON_BREAKER_H
#define RLD_COMMON_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "bucket.h"

#define RLDI_BRK_FAILURES_MAX  4095u
#define RLDI_BRK_PROBES_MAX    511u
#define RLDI_BRK_SUCCESSES_MAX 511u
#define RLDI_BRK_TIME_MAX_NS   ((uint64_t)1 << 52)      /* open_for, probe_timeout: 52 days */

#define RLDI_BRK_CLOSED    0u
#define RLDI_BRK_OPEN      1u
#define RLDI_BRK_HALF_OPEN 2u

typedef struct rldi_brk_conf {
    uint32_t failures, probes, successes;
    uint64_t open_for_ns, probe_timeout_ns;
} rldi_brk_conf;

/* The bank of C (checked by rldi_brk_conf_check). */
void rldi_brk_bank(const rldi_brk_conf *c, rldi_bank *b);
/* A breaker bank's configuration; false when B is not one or is out of range (a segment
 * writer's garbage: the breaker then refuses nothing and decides nothing). */
bool rldi_brk_conf_of(const rldi_bank *b, rldi_brk_conf *c);
/* 0, or -EINVAL with *WHY. */
int rldi_brk_conf_check(const rldi_brk_conf *c, const char **why);

/* What a call that entered needs for its report: whether it is a probe, and of which
 * half-open period. */
typedef struct rldi_brk_ticket {
    uint32_t epoch;
    bool     probe;
} rldi_brk_ticket;

/*
 * Enter breaker H at NOW_NS: 0, the call may go (T->probe when it is a half-open probe);
 * -EAGAIN, refused (V->retry_after_ns: until it half-opens, or until the probes out time
 * out); -ESTALE (deleted), -EINVAL (not a breaker). V (may be NULL): limit = failures,
 * remaining = calls that may pass now (UINT64_MAX closed, probes left half-open, 0 open).
 */
int rldi_breaker_enter(const rldi_seg *s, rldi_handle h, uint64_t now_ns, rldi_verdict *v,
                       rldi_brk_ticket *t);

/* The outcome of a call that entered with ticket T: 0 (also when it decides nothing: a
 * late report), -ESTALE, -EINVAL. */
int rldi_breaker_report(const rldi_seg *s, rldi_handle h, bool ok, const rldi_brk_ticket *t,
                        uint64_t now_ns);

/* An operator's trip (OPEN: open now, for open_for) or reset (CLOSED: closed, counts
 * cleared). 0, -ESTALE, -EINVAL. */
int rldi_breaker_force(const rldi_seg *s, rldi_handle h, uint32_t state, uint64_t now_ns);

/* The state as a call at NOW_NS would find it (an open breaker whose time is over reads
 * half-open, probes timed out read open). */
typedef struct rldi_brk_view {
    uint32_t      state;
    uint32_t      failures;     /* consecutive, while closed */
    uint32_t      probes_out;   /* half-open: probes not reported yet */
    uint32_t      successes;    /* half-open: probe successes so far */
    uint32_t      epoch;
    uint64_t      until_ns;     /* open: until it half-opens; half-open: until the probes out
                                   time out (0: none out) */
    uint64_t      opens, closes, admitted, denied;
    rldi_brk_conf conf;
} rldi_brk_view;
int rldi_breaker_read(const rldi_seg *s, rldi_handle h, uint64_t now_ns, rldi_brk_view *out);

#endif
