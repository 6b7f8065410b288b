/*
 * fuzz_rate.c - libFuzzer target for common/rate.c: rldi_parse_rate, rldi_parse_duration,
 * rldi_parse_u64 and rldi_name_check on arbitrary bytes (a NUL-terminated copy), plus the
 * formatters on what was parsed.
 *
 * Invariants (abort() when broken):
 *  - every parser returns 0 or one of its documented errors, sets *why on error and writes no
 *    output on error;
 *  - parse_rate: the result is in the documented domain (count 1..10^15, period 1 ms..365 days
 *    and a multiple of 1 ms, or "unlimited" = 0/0); rldi_format_rate of it re-parses to the
 *    same (count, period); the default burst (= count) always gives a representable
 *    tau = burst * T (config.c relies on that: it does not check the default);
 *  - the same round trip for a (count, period) taken from the input bytes directly;
 *  - parse_duration: the fraction is rounded to the nearest ns, halves up (checked against an
 *    independent 128-bit computation on the first 20 fraction digits, when those decide);
 *    rldi_format_duration's output re-parses to within 0.5 %;
 *  - parse_u64 and name_check agree with independent reference implementations.
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz_common.h"
#include "gcra.h"
#include "layout.h"
#include "rate.h"

typedef unsigned __int128 u128;

#define NS_MS  UINT64_C(1000000)
#define NS_DAY (UINT64_C(86400) * 1000000000)

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool digit(char c) { return c >= '0' && c <= '9'; }

static void trim(const char *s, const char **b, const char **e)
{
    const char *p = s, *q = s + strlen(s);
    while (blank(*p))
        p++;
    while (q > p && blank(q[-1]))
        q--;
    *b = p;
    *e = q;
}

static void check_rate_roundtrip(uint64_t c, uint64_t p, const char *src)
{
    char buf[96];
    int n = rldi_format_rate(buf, sizeof buf, c, p);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof buf, "format_rate(%llu, %llu) = %d", (unsigned long long)c,
               (unsigned long long)p, n);
    FUZZ_CHECK(rldi_format_rate(NULL, 0, c, p) == n, "format_rate length differs without a buffer");
    char small[4];
    FUZZ_CHECK(rldi_format_rate(small, sizeof small, c, p) == n && strlen(small) == sizeof small - 1,
               "format_rate truncation");
    uint64_t c2 = 1, p2 = 1;
    const char *why = NULL;
    int r = rldi_parse_rate(buf, &c2, &p2, &why);
    FUZZ_CHECK(r == 0 && c2 == c && p2 == p,
               "rate '%s' (%llu/%lluns) formats as '%s', which parses to r=%d %llu/%lluns (%s)", src,
               (unsigned long long)c, (unsigned long long)p, buf, r, (unsigned long long)c2,
               (unsigned long long)p2, why ? why : "");
}

static void fuzz_parse_rate(const char *s)
{
    const uint64_t C0 = 0xC0C0C0C0C0C0C0C0u, P0 = 0xD0D0D0D0D0D0D0D0u;
    uint64_t c = C0, p = P0;
    const char *why = NULL;
    int r = rldi_parse_rate(s, &c, &p, &why);
    if (r != 0) {
        FUZZ_CHECK(r == -EINVAL, "parse_rate returned %d", r);
        FUZZ_CHECK(why && *why, "parse_rate error without a reason");
        FUZZ_CHECK(c == C0 && p == P0, "parse_rate wrote its outputs on error");
        return;
    }
    if (c == 0) {
        FUZZ_CHECK(p == 0, "unlimited with a period");
    } else {
        FUZZ_CHECK(c <= RLDI_RATE_COUNT_MAX, "count %llu", (unsigned long long)c);
        FUZZ_CHECK(p >= RLDI_PERIOD_MIN_NS && p <= RLDI_PERIOD_MAX_NS && p % NS_MS == 0,
                   "period %llu", (unsigned long long)p);
        rldi_u128 t, tau;
        FUZZ_CHECK(rldi_interval(c, p, &t) == 0 && t > 0, "interval");
        FUZZ_CHECK(rldi_tau(t, c, &tau) == 0, "default burst %llu not representable",
                   (unsigned long long)c);
    }
    check_rate_roundtrip(c, p, s);
}

/* floor(2 * f * u) for the fraction digits [fb, fe), using at most 20 digits; false when the
 * digits beyond the 20th could change the result. */
static bool ref_frac2(const char *fb, const char *fe, uint64_t u, u128 *out)
{
    u128 F = 0, scale = 1;
    size_t k = 0;
    for (const char *q = fb; q < fe && k < 20; q++, k++) {
        F = F * 10 + (u128)(*q - '0');
        scale *= 10;
    }
    bool more = fe - fb > 20;
    u128 num = F * 2 * u;
    if (more && num % scale > scale - 2 * (u128)u)
        return false;
    *out = num / scale;
    return true;
}

static void fuzz_parse_duration(const char *s)
{
    const uint64_t N0 = 0xE0E0E0E0E0E0E0E0u;
    uint64_t ns = N0;
    const char *why = NULL;
    int r = rldi_parse_duration(s, &ns, &why);
    if (r != 0) {
        FUZZ_CHECK(r == -EINVAL || r == -ERANGE, "parse_duration returned %d", r);
        FUZZ_CHECK(why && *why, "parse_duration error without a reason");
        FUZZ_CHECK(ns == N0, "parse_duration wrote its output on error");
        return;
    }

    /* Reference for the rounding: NUMBER[.FRACTION]UNIT with the documented units. */
    static const struct { const char *name; uint64_t ns; } units[] = {
        {"ns", 1}, {"us", 1000}, {"ms", NS_MS}, {"s", 1000000000}, {"sec", 1000000000},
        {"second", 1000000000}, {"seconds", 1000000000}, {"min", 60000000000},
        {"minute", 60000000000}, {"minutes", 60000000000}, {"h", 3600000000000},
        {"hr", 3600000000000}, {"hour", 3600000000000}, {"hours", 3600000000000}, {"d", NS_DAY},
        {"day", NS_DAY}, {"days", NS_DAY},
    };
    const char *b, *e;
    trim(s, &b, &e);
    if (e - b == 1 && *b == '0') {
        FUZZ_CHECK(ns == 0, "'0' gives %llu", (unsigned long long)ns);
    } else {
        const char *q = b;
        u128 ip = 0;
        while (q < e && digit(*q)) {
            ip = ip * 10 + (u128)(*q - '0');
            if (ip > UINT64_MAX)
                ip = (u128)UINT64_MAX + 1;   /* saturate: must have been -ERANGE */
            q++;
        }
        FUZZ_CHECK(q > b && ip <= UINT64_MAX, "accepted a duration without digits or too long");
        const char *fb = NULL, *fe = NULL;
        if (q < e && *q == '.') {
            fb = ++q;
            while (q < e && digit(*q))
                q++;
            fe = q;
            FUZZ_CHECK(fe > fb, "accepted '.' without digits");
        }
        uint64_t u = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if ((size_t)(e - q) == strlen(units[i].name) && memcmp(q, units[i].name, (size_t)(e - q)) == 0)
                u = units[i].ns;
        FUZZ_CHECK(u != 0, "accepted an unknown unit in '%s'", s);
        u128 frac2 = 0;
        if (!fb || ref_frac2(fb, fe, u, &frac2)) {
            u128 want = ip * u + (frac2 + 1) / 2;
            FUZZ_CHECK(want == ns, "'%s' parsed to %llu ns, want %llu", s, (unsigned long long)ns,
                       (unsigned long long)want);
        }
    }

    /* The human form re-parses to within its 3 significant digits. */
    char buf[64];
    int n = rldi_format_duration(buf, sizeof buf, ns);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof buf, "format_duration(%llu) = %d", (unsigned long long)ns, n);
    FUZZ_CHECK(rldi_format_duration(NULL, 0, ns) == n, "format_duration length without a buffer");
    uint64_t ns2 = 0;
    r = rldi_parse_duration(buf, &ns2, &why);
    if (r == -ERANGE) {
        FUZZ_CHECK(ns > UINT64_MAX - NS_DAY, "'%s' (from %llu ns) does not parse back", buf,
                   (unsigned long long)ns);
        return;
    }
    FUZZ_CHECK(r == 0, "'%s' (from %llu ns) does not parse back: %s", buf, (unsigned long long)ns,
               why ? why : "");
    uint64_t diff = ns2 > ns ? ns2 - ns : ns - ns2;
    FUZZ_CHECK(diff <= ns / 200 + 1, "'%s' is %llu ns, from %llu ns", buf,
               (unsigned long long)ns2, (unsigned long long)ns);
}

static void fuzz_parse_u64(const char *s)
{
    const uint64_t V0 = 0xF0F0F0F0F0F0F0F0u;
    uint64_t v = V0;
    const char *why = NULL;
    int r = rldi_parse_u64(s, &v, &why);

    const char *b, *e;
    trim(s, &b, &e);
    bool all_digits = b < e;
    u128 want = 0;
    for (const char *q = b; q < e; q++) {
        if (!digit(*q)) {
            all_digits = false;
            break;
        }
        want = want * 10 + (u128)(*q - '0');
        if (want > UINT64_MAX)
            want = (u128)UINT64_MAX + 1;
    }
    int want_r = !all_digits ? -EINVAL : want > UINT64_MAX ? -ERANGE : 0;
    FUZZ_CHECK(r == want_r, "parse_u64('%s') = %d, want %d", s, r, want_r);
    if (r == 0)
        FUZZ_CHECK(v == (uint64_t)want, "parse_u64('%s') = %llu", s, (unsigned long long)v);
    else
        FUZZ_CHECK(v == V0 && why && *why, "parse_u64 error: output written or no reason");
}

static void fuzz_name_check(const char *s)
{
    const char *why = NULL;
    int r = rldi_name_check(s, &why);
    size_t n = strlen(s);
    int want = 0;
    if (n == 0)
        want = -EINVAL;
    else if (n > RLDI_NAME_MAX)
        want = -ENAMETOOLONG;
    else
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || digit(c) || c == '.' ||
                  c == '_' || c == '/' || c == ':' || c == '-'))
                want = -EINVAL;
        }
    FUZZ_CHECK(r == want, "name_check('%s') = %d, want %d", s, r, want);
    FUZZ_CHECK(r == 0 || (why && *why), "name_check error without a reason");
}

/* (count, period) straight from the bytes, in the parser's domain: must round-trip too. */
static void fuzz_format_domain(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    uint64_t c = fuzz_range(&in, 1, RLDI_RATE_COUNT_MAX);
    uint64_t ms = fuzz_range(&in, 1, RLDI_PERIOD_MAX_NS / NS_MS);
    check_rate_roundtrip(c, ms * NS_MS, "(from bytes)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = fuzz_cstr(data, size);
    fuzz_parse_rate(s);
    fuzz_parse_duration(s);
    fuzz_parse_u64(s);
    fuzz_name_check(s);
    fuzz_format_domain(data, size);
    free(s);
    return 0;
}
