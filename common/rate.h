/*
 * rate.h - text forms of rates, durations, counts and limit names.
 *
 * One parser shared by the daemon's configuration file and the rlctl command line, so a rate
 * means the same thing wherever a person writes it. Every parser ignores leading and trailing
 * white space, accepts nothing else it does not understand, and on error returns a negative
 * errno with *why (when why is non-NULL) pointing at a short static English reason.
 * Outputs are written only on success.
 */
#ifndef RLD_COMMON_RATE_H
#define RLD_COMMON_RATE_H

#include <stddef.h>
#include <stdint.h>

#define RLDI_RATE_COUNT_MAX   UINT64_C(1000000000000000)          /* 10^15 */
#define RLDI_PERIOD_MIN_NS    UINT64_C(1000000)                   /* 1 ms */
#define RLDI_PERIOD_MAX_NS    (UINT64_C(365) * 86400 * 1000000000) /* 365 days */

/*
 * Parse a rate "COUNT/PERIOD" or "unlimited". PERIOD is a unit with an optional positive
 * integer in front: ms, s, sec, second(s), min, minute(s), h, hr, hour(s), d, day(s)
 * (e.g. "3500/min", "10/s", "1000/hour", "120/60s", "5/500ms", "2/3day"). Blanks are allowed
 * around the '/', nowhere else inside. COUNT is 1..10^15; the period 1 ms..365 days.
 * "unlimited" gives *count = 0, *period_ns = 0. Returns 0 or -EINVAL.
 */
int rldi_parse_rate(const char *s, uint64_t *count, uint64_t *period_ns, const char **why);

/*
 * Parse a duration: a non-negative decimal number (fraction allowed, e.g. "1.5s") directly
 * followed by a unit: ns, us, ms, s, sec, second(s), min, minute(s), h, hr, hour(s), d, day(s).
 * "0" alone is allowed. Rounded to the nearest ns (halves up). Returns 0, -ERANGE on
 * overflow of 64-bit ns, or -EINVAL.
 */
int rldi_parse_duration(const char *s, uint64_t *ns, const char **why);

/* Parse a non-negative decimal integer (digits only, no sign). 0, -EINVAL or -ERANGE. */
int rldi_parse_u64(const char *s, uint64_t *out, const char **why);

/*
 * Limit names: 1..RLDI_NAME_MAX (64) bytes of [A-Za-z0-9._/:-], checked as they are (no
 * trimming). Returns 0, -EINVAL (empty or bad character) or -ENAMETOOLONG.
 */
int rldi_name_check(const char *name, const char **why);

/*
 * Human form of a rate, for status output: "3500/min", "5/500ms", "2/3day", "unlimited"
 * (count 0). The unit is the largest of day, h, min, s, ms, ns that divides the period
 * exactly, its multiplier omitted when 1; the result parses back to the same rate.
 * Returns the length snprintf would (buf may be NULL when len is 0).
 */
int rldi_format_rate(char *buf, size_t len, uint64_t count, uint64_t period_ns);

/*
 * Compact human form of a duration with at most 3 significant digits (except whole days
 * beyond 999): "0", "750ns", "250ms", "1.5s", "2min", "1.25h", "3d". Returns as snprintf.
 */
int rldi_format_duration(char *buf, size_t len, uint64_t ns);

#endif
