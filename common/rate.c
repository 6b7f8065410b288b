/*
 * rate.c - text forms of rates, durations, counts and limit names (see rate.h).
 *
 * Hand-written scanners rather than strtoull/strtod: those accept signs, leading blanks,
 * hex and exponents, and depend on the locale; a configuration value must mean exactly one
 * thing or be rejected.
 */
#include "rate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "layout.h" /* RLDI_NAME_MAX */

#define NS_US  UINT64_C(1000)
#define NS_MS  UINT64_C(1000000)
#define NS_S   UINT64_C(1000000000)
#define NS_MIN (60 * NS_S)
#define NS_H   (3600 * NS_S)
#define NS_DAY (86400 * NS_S)

struct unit {
    const char *name;
    uint64_t ns;
};

/* Rate periods: nothing below 1 ms, so no ns/us. */
static const struct unit rate_units[] = {
    {"ms", NS_MS},
    {"s", NS_S},     {"sec", NS_S},     {"second", NS_S}, {"seconds", NS_S},
    {"min", NS_MIN}, {"minute", NS_MIN}, {"minutes", NS_MIN},
    {"h", NS_H},     {"hr", NS_H},      {"hour", NS_H},   {"hours", NS_H},
    {"d", NS_DAY},   {"day", NS_DAY},   {"days", NS_DAY},
};

static const struct unit duration_units[] = {
    {"ns", 1},       {"us", NS_US},     {"ms", NS_MS},
    {"s", NS_S},     {"sec", NS_S},     {"second", NS_S}, {"seconds", NS_S},
    {"min", NS_MIN}, {"minute", NS_MIN}, {"minutes", NS_MIN},
    {"h", NS_H},     {"hr", NS_H},      {"hour", NS_H},   {"hours", NS_H},
    {"d", NS_DAY},   {"day", NS_DAY},   {"days", NS_DAY},
};

static int fail(const char **why, const char *reason, int err)
{
    if (why)
        *why = reason;
    return err;
}

/* Locale-independent: isspace() would depend on setlocale(). */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static const char *skip_blanks(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

/* Trimmed view [*b, *e) of s. */
static void trim(const char *s, const char **b, const char **e)
{
    const char *p = skip_blanks(s), *q = p + strlen(p);
    while (q > p && is_blank(q[-1]))
        q--;
    *b = p;
    *e = q;
}

/*
 * Digits at *p, value capped: returns false (and stops consuming) once the value exceeds
 * cap, so any digit string, however long, is scanned without overflow.
 */
static bool scan_digits(const char **p, const char *end, uint64_t cap, uint64_t *out, bool *over)
{
    const char *q = *p;
    uint64_t v = 0;
    *over = false;
    if (q == end || !is_digit(*q))
        return false;
    while (q < end && is_digit(*q)) {
        unsigned d = (unsigned)(*q - '0');
        if (!*over && (v > (cap - d) / 10))
            *over = true;
        if (!*over)
            v = v * 10 + d;
        q++;
    }
    *p = q;
    *out = v;
    return true;
}

static const struct unit *find_unit(const struct unit *tab, size_t n, const char *b, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, b, len) == 0)
            return &tab[i];
    return NULL;
}

int rldi_parse_rate(const char *s, uint64_t *count, uint64_t *period_ns, const char **why)
{
    const char *p, *end;
    uint64_t c, mult = 1;
    bool over;

    if (!s)
        return fail(why, "empty rate", -EINVAL);
    trim(s, &p, &end);
    if (p == end)
        return fail(why, "empty rate", -EINVAL);
    if ((size_t)(end - p) == 9 && memcmp(p, "unlimited", 9) == 0) {
        *count = 0;
        *period_ns = 0;
        return 0;
    }

    if (!scan_digits(&p, end, RLDI_RATE_COUNT_MAX, &c, &over) || (p < end && is_alpha(*p)) ||
        (p < end && *p == '.'))
        return fail(why, "count must be a positive integer", -EINVAL);
    if (over)
        return fail(why, "count too large (at most 10^15)", -EINVAL);
    if (c == 0)
        return fail(why, "count must be a positive integer", -EINVAL);

    p = skip_blanks(p);
    if (p == end || *p != '/')
        return fail(why, "expected COUNT/PERIOD, e.g. 100/s", -EINVAL);
    p = skip_blanks(p + 1);
    if (p == end)
        return fail(why, "missing time unit", -EINVAL);

    if (is_digit(*p)) {
        /* Cap at the largest count of the smallest unit that can still fit. */
        if (!scan_digits(&p, end, RLDI_PERIOD_MAX_NS / NS_MS, &mult, &over) || over)
            return fail(why, "period too long (at most 365 days)", -EINVAL);
        if (mult == 0)
            return fail(why, "period must be positive", -EINVAL);
    }

    const char *ub = p;
    while (p < end && is_alpha(*p))
        p++;
    if (p == ub)
        return fail(why, p == end || is_blank(*p) ? "missing time unit" : "bad period", -EINVAL);
    const struct unit *u =
        find_unit(rate_units, sizeof rate_units / sizeof rate_units[0], ub, (size_t)(p - ub));
    if (!u)
        return fail(why, "unknown time unit", -EINVAL);
    if (p != end)
        return fail(why, "unexpected text after rate", -EINVAL);

    if (mult > RLDI_PERIOD_MAX_NS / u->ns)
        return fail(why, "period too long (at most 365 days)", -EINVAL);
    uint64_t period = mult * u->ns;
    if (period < RLDI_PERIOD_MIN_NS)
        return fail(why, "period too short (at least 1 ms)", -EINVAL);

    *count = c;
    *period_ns = period;
    return 0;
}

int rldi_parse_duration(const char *s, uint64_t *ns, const char **why)
{
    const char *p, *end;
    uint64_t ip;
    bool over;

    if (!s)
        return fail(why, "empty duration", -EINVAL);
    trim(s, &p, &end);
    if (p == end)
        return fail(why, "empty duration", -EINVAL);
    if (end - p == 1 && *p == '0') {
        *ns = 0;
        return 0;
    }

    if (!scan_digits(&p, end, UINT64_MAX, &ip, &over))
        return fail(why, "duration must be a non-negative number with a unit, e.g. 1.5s",
                    -EINVAL);
    const char *fb = NULL, *fe = NULL;
    if (p < end && *p == '.') {
        fb = ++p;
        while (p < end && is_digit(*p))
            p++;
        fe = p;
        if (fb == fe)
            return fail(why, "digits required after the decimal point", -EINVAL);
    }
    const char *ub = p;
    while (p < end && is_alpha(*p))
        p++;
    if (p == ub)
        return fail(why, p == end ? "missing time unit" : "bad duration", -EINVAL);
    const struct unit *u = find_unit(duration_units,
                                     sizeof duration_units / sizeof duration_units[0], ub,
                                     (size_t)(p - ub));
    if (!u)
        return fail(why, "unknown time unit", -EINVAL);
    if (p != end)
        return fail(why, "unexpected text after duration", -EINVAL);
    if (over)
        return fail(why, "duration too long", -ERANGE);

    /*
     * Fraction times unit, rounded half up, exactly for any number of digits: scanning the
     * digits from the right, carry = floor((d * 2u + carry) / 10) yields floor(2 * f * u)
     * (floor((m + x) / n) == floor((m + floor(x)) / n)), and round(y) = (floor(2y) + 1) / 2.
     * carry stays below 2u, so 64 bits suffice.
     */
    uint64_t frac = 0;
    if (fb) {
        uint64_t carry = 0, u2 = 2 * u->ns;
        for (const char *q = fe; q > fb; q--)
            carry = ((uint64_t)(q[-1] - '0') * u2 + carry) / 10;
        frac = (carry + 1) / 2;
    }
    uint64_t whole, total;
    if (__builtin_mul_overflow(ip, u->ns, &whole) || __builtin_add_overflow(whole, frac, &total))
        return fail(why, "duration too long", -ERANGE);
    *ns = total;
    return 0;
}

int rldi_parse_u64(const char *s, uint64_t *out, const char **why)
{
    const char *p, *end;
    uint64_t v;
    bool over;

    if (!s)
        return fail(why, "empty number", -EINVAL);
    trim(s, &p, &end);
    if (p == end)
        return fail(why, "empty number", -EINVAL);
    if (!scan_digits(&p, end, UINT64_MAX, &v, &over) || p != end)
        return fail(why, "not a non-negative decimal integer", -EINVAL);
    if (over)
        return fail(why, "number too large", -ERANGE);
    *out = v;
    return 0;
}

int rldi_name_check(const char *name, const char **why)
{
    if (!name || !*name)
        return fail(why, "empty name", -EINVAL);
    size_t n = strnlen(name, RLDI_NAME_MAX + 1);
    if (n > RLDI_NAME_MAX)
        return fail(why, "name longer than 64 bytes", -ENAMETOOLONG);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!(is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '/' || c == ':' ||
              c == '-'))
            return fail(why, "name may only contain A-Z a-z 0-9 . _ / : -", -EINVAL);
    }
    return 0;
}

int rldi_format_rate(char *buf, size_t len, uint64_t count, uint64_t period_ns)
{
    static const struct unit units[] = {
        {"day", NS_DAY}, {"h", NS_H}, {"min", NS_MIN}, {"s", NS_S}, {"ms", NS_MS}, {"ns", 1},
    };
    if (count == 0)
        return snprintf(buf, len, "unlimited");
    if (period_ns == 0)
        return snprintf(buf, len, "%llu/0s", (unsigned long long)count);
    const struct unit *u = &units[5];
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (period_ns % units[i].ns == 0) {
            u = &units[i];
            break;
        }
    uint64_t mult = period_ns / u->ns;
    if (mult == 1)
        return snprintf(buf, len, "%llu/%s", (unsigned long long)count, u->name);
    return snprintf(buf, len, "%llu/%llu%s", (unsigned long long)count,
                    (unsigned long long)mult, u->name);
}

int rldi_format_duration(char *buf, size_t len, uint64_t ns)
{
    static const struct unit units[] = {
        {"d", NS_DAY}, {"h", NS_H}, {"min", NS_MIN}, {"s", NS_S},
        {"ms", NS_MS}, {"us", NS_US}, {"ns", 1},
    };
    static const unsigned pow10[] = {1, 10, 100};
    typedef unsigned __int128 u128;
    const size_t nunits = sizeof units / sizeof units[0];

    if (ns == 0)
        return snprintf(buf, len, "0");
    for (;;) {
        size_t i = 0;
        while (i + 1 < nunits && ns < units[i].ns)
            i++;
        uint64_t u = units[i].ns, ip = ns / u;
        unsigned dec = ip < 10 ? 2 : ip < 100 ? 1 : 0;
        u128 scaled;
        for (;;) {
            /* round(ns * 10^dec / u), halves up */
            scaled = ((u128)ns * pow10[dec] * 2 + u) / ((u128)u * 2);
            if (dec == 0 || scaled < 1000)
                break;
            dec--; /* rounding gained a digit: 9.996 -> 10.0 */
        }
        /* Rounding may reach the next unit up (59.96s -> 60.0s): show that one instead. */
        if (i > 0 && scaled * u >= (u128)units[i - 1].ns * pow10[dec]) {
            ns = units[i - 1].ns;
            continue;
        }
        uint64_t whole = (uint64_t)(scaled / pow10[dec]);
        unsigned frac = (unsigned)(scaled % pow10[dec]);
        while (dec > 0 && frac % 10 == 0) {
            frac /= 10;
            dec--;
        }
        if (dec == 0)
            return snprintf(buf, len, "%llu%s", (unsigned long long)whole, units[i].name);
        return snprintf(buf, len, "%llu.%0*u%s", (unsigned long long)whole, (int)dec, frac,
                        units[i].name);
    }
}
