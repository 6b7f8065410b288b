/*
 * limitdef.h - a limit's definition as an operator writes it (name, rate, burst) and the
 * one check every way of defining a limit goes through: the configuration file, a Put
 * request (rlctl create/set) and the segment writer. A definition that passes can be
 * published: its emission interval and tolerance are representable (gcra.h).
 */
#ifndef RLD_COMMON_LIMITDEF_H
#define RLD_COMMON_LIMITDEF_H

#include <stdbool.h>
#include <stdint.h>

#include "gcra.h"
#include "layout.h"   /* RLDI_NAME_MAX */

typedef struct rldi_limitdef {
    char     name[RLDI_NAME_MAX + 1];
    uint64_t count;       /* tokens per period; 0 = unlimited */
    uint64_t period_ns;   /* 0 when unlimited */
    uint64_t burst;       /* tokens at once; 0 = the default (the count) */
    uint64_t max_debt_ns; /* the most one call (debit, degraded wait) may put it in debt */
    bool     max_debt_set;   /* else the default: one burst's worth of time, at least 1 h */
    uint32_t algo;        /* RLDI_ALGO_GCRA (default), _SLIDING or _FIXED (window.h) */
    uint64_t align_ns;    /* fixed windows: their start after each multiple of the period */
    bool     align_set;
    int      line;        /* line of its [limit] header in the configuration; 0 otherwise */
    /* scope = global (issue 17): shared by every rld through Redis (daemon/global.c); the
     * slot holds a pool the daemon fills with leased tokens (gcra.h: RLDI_POOL_T) */
    uint8_t  scope;          /* RLDI_SCOPE_* */
    uint32_t fallback_num;   /* while Redis is unreachable: this host admits num/den of the */
    uint32_t fallback_den;   /* global rate; num 0: deny (the default) */
    /* [template NAME] (issue 13): a limit per key, created by the clients (keys.h) */
    uint8_t  kind;           /* RLDI_KIND_LIMIT or RLDI_KIND_TEMPLATE (layout.h) */
    bool     overflow_allow; /* overflow = allow: a new key that finds the table full passes */
    bool     caller_rate;    /* rate = caller: each key's rate comes from the client */
    uint32_t max_keys;       /* capacity of the template's key table */
    /* issue 15: mode = shadow (admits what it would deny, counts it), concurrency = N
     * (leases in flight, the daemon's), burst = 1.5x (resolved against the count by the
     * parser: burst_x1000 remembers the multiple, 0 when the burst was a number) */
    bool     shadow;
    uint32_t concurrency;
    uint32_t burst_x1000;
    /* [breaker NAME] (kind RLDI_KIND_BREAKER, breaker.h): no rate, these instead */
    uint32_t brk_failures, brk_probes, brk_successes;
    uint64_t brk_open_for_ns, brk_probe_timeout_ns;
} rldi_limitdef;

#define RLDI_CONCURRENCY_MAX   1000000u      /* concurrency = N: 1..this */
#define RLDI_BRK_DEFAULT_FAILURES  5u
#define RLDI_BRK_DEFAULT_OPEN_FOR_NS (30ull * 1000000000ull)
#define RLDI_BRK_DEFAULT_PROBES    1u
#define RLDI_BRK_DEFAULT_SUCCESSES 1u

/* A breaker definition with the defaults (failures 5, open_for 30 s, probes 1, successes 1,
 * probe_timeout = open_for once the section ends). */
void rldi_limitdef_breaker_defaults(rldi_limitdef *def);

/* "1.5x", "2x", "0.25x": a burst as a multiple of the count, in thousandths (1500). -EINVAL
 * for another form (a plain number is the parser's rldi_parse_u64), -ERANGE beyond 1000x. */
int rldi_burst_multiple_parse(const char *s, uint32_t *x1000);
/* The burst X1000 thousandths of COUNT means: rounded down (toward denying), at least 1. */
uint64_t rldi_burst_multiple(uint64_t count, uint32_t x1000);

#define RLDI_MAX_KEYS_DEFAULT  100000u
#define RLDI_MAX_KEYS_MAX      (1u << 28)     /* per template; all tables share 2^31 handles */

#define RLDI_SCOPE_HOST    0u
#define RLDI_SCOPE_GLOBAL  1u
/* A global limit's tolerance is kept in Redis as integer ns in a Lua double: at most 2^50 ns
 * (13 days), its emission interval at least 1 ns (10^9 per second). */
#define RLDI_GLOBAL_TAU_MAX_NS  ((uint64_t)1 << 50)

#define RLDI_DEBT_DEFAULT_MIN_NS  (3600ull * 1000000000ull)
/* The smallest emission interval enforced within 10^-6 (T rounds up by < 1 unit): a rate
 * above 2^32 / 10^6 per ns (4.29 x 10^12 per second) cannot be. */
#define RLDI_T_MIN_UNITS          1000000u

/* What fails, so that each caller can point at the right place (a file's line, a field). */
enum rldi_limitdef_field { RLDI_LD_OK, RLDI_LD_NAME, RLDI_LD_RATE, RLDI_LD_BURST,
                           RLDI_LD_DEBT, RLDI_LD_ALGO, RLDI_LD_ALIGN, RLDI_LD_SCOPE,
                           RLDI_LD_KEYS, RLDI_LD_CONCURRENCY, RLDI_LD_BREAKER };

/* "gcra", "sliding", "fixed" <-> RLDI_ALGO_*; -EINVAL for another word. */
int rldi_algo_parse(const char *s, uint32_t *algo);
const char *rldi_algo_name(uint32_t algo);

/*
 * Check DEF: a valid name, a rate within the parser's bounds, a positive burst (0 stands for
 * the default), and burst x interval within 146 years. Returns 0, or -EINVAL / -ERANGE with
 * *why a short static English reason and *field (may be NULL) what is wrong.
 */
int rldi_limitdef_check(const rldi_limitdef *def, const char **why,
                        enum rldi_limitdef_field *field);

/* The burst DEF means: its own, else the count (for unlimited, 0 when not given). */
static inline uint64_t rldi_limitdef_burst(const rldi_limitdef *def)
{
    return def->burst ? def->burst : def->count;
}

/* The global emission interval of DEF in whole ns, rounded up (Redis's GCRA works in them). */
uint64_t rldi_limitdef_global_t_ns(const rldi_limitdef *def);

/* The config bank of a checked DEF (layout.h): GCRA's interval (0 = unlimited) and burst,
 * or a window's tagged parameters; for a global limit, its pool's (RLDI_POOL_T, the burst). */
int rldi_limitdef_bank(const rldi_limitdef *def, rldi_bank *b);

/* The debt cap DEF means, in ns: its own, else max(1 h, the burst's worth of time). */
uint64_t rldi_limitdef_max_debt(const rldi_limitdef *def);

#endif
