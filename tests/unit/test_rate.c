/*
 * test_rate.c - unit tests of common/rate.c: every accepted form, every rejection with its
 * exact code and a reason, and format/parse round trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rate.h"

#define MS  UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define MIN (60 * SEC)
#define HR  (3600 * SEC)
#define DAY (86400 * SEC)

struct rate_ok {
    const char *in;
    uint64_t count, period;
};

static const struct rate_ok rates_ok[] = {
    {"3500/min", 3500, MIN},
    {"10/s", 10, SEC},
    {"10/sec", 10, SEC},
    {"10/second", 10, SEC},
    {"10/seconds", 10, SEC},
    {"1/minute", 1, MIN},
    {"1/minutes", 1, MIN},
    {"1000/hour", 1000, HR},
    {"1000/hours", 1000, HR},
    {"1000/h", 1000, HR},
    {"1000/hr", 1000, HR},
    {"1/d", 1, DAY},
    {"1/day", 1, DAY},
    {"1/days", 1, DAY},
    {"120/60s", 120, 60 * SEC},
    {"5/500ms", 5, 500 * MS},
    {"2/3day", 2, 3 * DAY},
    {"1/1ms", 1, MS},
    {"1/ms", 1, MS},
    {"1/1s", 1, SEC},
    {"7/007s", 7, 7 * SEC},
    {"007/s", 7, SEC},
    {"90000/min", 90000, MIN},
    {"  7/s  ", 7, SEC},
    {"\t7/s\r\n", 7, SEC},
    {"5 / s", 5, SEC},
    {"5 /s", 5, SEC},
    {"5/ s", 5, SEC},
    {"5\t/\t2min", 5, 2 * MIN},
    {"1000000000000000/s", UINT64_C(1000000000000000), SEC},
    {"1000000000000000/ms", UINT64_C(1000000000000000), MS},
    {"1/365d", 1, 365 * DAY},
    {"1/365days", 1, 365 * DAY},
    {"1/8760h", 1, 365 * DAY},
    {"1/525600min", 1, 365 * DAY},
    {"1/31536000s", 1, 365 * DAY},
    {"1/31536000000ms", 1, 365 * DAY},
    {"unlimited", 0, 0},
    {"  unlimited\t", 0, 0},
};

static void test_rate_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rates_ok / sizeof rates_ok[0]; i++) {
        uint64_t c = 99, p = 99;
        const char *why = NULL;
        int rc = rldi_parse_rate(rates_ok[i].in, &c, &p, &why);
        if (rc != 0 || c != rates_ok[i].count || p != rates_ok[i].period)
            fail_msg("'%s': rc %d (%s) count %llu period %llu", rates_ok[i].in, rc,
                     why ? why : "-", (unsigned long long)c, (unsigned long long)p);
    }
    /* why may be NULL */
    uint64_t c, p;
    assert_int_equal(rldi_parse_rate("1/s", &c, &p, NULL), 0);
}

static const char *const rates_bad[] = {
    "0/s", "00/s", "-5/s", "+5/s", "5/", "/s", "5/0s", "5/00ms", "5/ms2", "5/s extra",
    "5/s;", "1e3/s", "0x10/s", "5.5/s", "5/1.5s", "5/60 s", "5 5/s", "5//s", "5/s/s",
    "1000000000000001/s", "99999999999999999999999/s",
    "18446744073709551616/s", "5/366d", "5/31536000001ms", "5/8761h",
    "5/99999999999999999999999s", "5/99999999999999999999999ms",
    "", "   ", "5", "5 s", "5/fortnight", "5/S", "5/Min", "5/m", "5/us", "5/ns", "5/-1s",
    "unlimited2", "Unlimited", "unlimited/s", "s/5", "five/s",
};

static void test_rate_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rates_bad / sizeof rates_bad[0]; i++) {
        uint64_t c = 42, p = 43;
        const char *why = NULL;
        int rc = rldi_parse_rate(rates_bad[i], &c, &p, &why);
        if (rc != -EINVAL || !why || !*why || c != 42 || p != 43)
            fail_msg("'%s': rc %d why %s (outputs %llu %llu)", rates_bad[i], rc,
                     why ? why : "NULL", (unsigned long long)c, (unsigned long long)p);
    }
    uint64_t c, p;
    const char *why = NULL;
    assert_int_equal(rldi_parse_rate(NULL, &c, &p, &why), -EINVAL);
    assert_non_null(why);
    assert_int_equal(rldi_parse_rate("0/s", &c, &p, NULL), -EINVAL);
}

static void test_rate_reasons(void **state)
{
    (void)state;
    static const struct { const char *in, *why; } cases[] = {
        {"5/fortnight", "unknown time unit"},
        {"0/s", "count must be a positive integer"},
        {"-5/s", "count must be a positive integer"},
        {"5/366d", "period too long"},
        {"5/", "missing time unit"},
        {"5/s extra", "unexpected text"},
        {"1000000000000001/s", "count too large"},
        {"5/0s", "period must be positive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t c, p;
        const char *why = NULL;
        assert_int_equal(rldi_parse_rate(cases[i].in, &c, &p, &why), -EINVAL);
        if (!why || !strstr(why, cases[i].why))
            fail_msg("'%s': why '%s', expected '%s'", cases[i].in, why ? why : "NULL",
                     cases[i].why);
    }
}

struct dur_ok {
    const char *in;
    uint64_t ns;
};

static const struct dur_ok durs_ok[] = {
    {"0", 0},
    {" 0 ", 0},
    {"0s", 0},
    {"0.0ms", 0},
    {"1ns", 1},
    {"1us", 1000},
    {"1ms", MS},
    {"1s", SEC},
    {"1sec", SEC},
    {"1second", SEC},
    {"2seconds", 2 * SEC},
    {"1.5s", 1500 * MS},
    {"250ms", 250 * MS},
    {"2min", 2 * MIN},
    {"1minute", MIN},
    {"3minutes", 3 * MIN},
    {"0.1min", 6 * SEC},
    {"1h", HR},
    {"1hr", HR},
    {"1hour", HR},
    {"2hours", 2 * HR},
    {"1d", DAY},
    {"1day", DAY},
    {"3days", 3 * DAY},
    {"1.25h", 4500 * SEC},
    {"\t10ms\n", 10 * MS},
    {"0.5ns", 1},               /* halves round up */
    {"0.4999999ns", 0},
    {"1.5ns", 2},
    {"2.5ns", 3},
    {"0.0005us", 1},
    {"0.0004999us", 0},
    {"1.0000000001s", SEC},     /* 0.1 ns */
    {"1.0000000005s", SEC + 1}, /* 0.5 ns */
    {"1.23456789012345678901234567890s", 1234567890},
    {"0.000000000000000000000000000001d", 0},
    {"0.00000000000000499999999999999d", 0},  /* 0.43199... ns */
    {"0.00000000000000578703703703704d", 1},  /* 0.5000000000002 ns */
    {"007s", 7 * SEC},
    {"18446744073709551615ns", UINT64_MAX},
    {"18446744073.709551615s", UINT64_MAX},
    {"213503d", 213503 * DAY},
};

static void test_duration_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof durs_ok / sizeof durs_ok[0]; i++) {
        uint64_t ns = 99;
        const char *why = NULL;
        int rc = rldi_parse_duration(durs_ok[i].in, &ns, &why);
        if (rc != 0 || ns != durs_ok[i].ns)
            fail_msg("'%s': rc %d (%s) ns %llu, expected %llu", durs_ok[i].in, rc,
                     why ? why : "-", (unsigned long long)ns, (unsigned long long)durs_ok[i].ns);
    }
}

static void test_duration_rejects(void **state)
{
    (void)state;
    static const char *const einval[] = {
        "", "  ", "5", "00", "1.5", "-1s", "+1s", ".5s", "5.s", "1e3s", "1.5 s", "5 s",
        "1s extra", "1s2", "5fortnight", "1,5s", "1.5.5s", "s", "0x10s", "5S", "1m",
        "99999999999999999999999x",
    };
    static const char *const erange[] = {
        "18446744073709551616ns", "18446744073.709551616s", "213504d",
        "99999999999999999999999s", "18446744073709551615.5ns", "18446744073709551615us",
    };
    for (size_t i = 0; i < sizeof einval / sizeof einval[0]; i++) {
        uint64_t ns = 42;
        const char *why = NULL;
        int rc = rldi_parse_duration(einval[i], &ns, &why);
        if (rc != -EINVAL || !why || ns != 42)
            fail_msg("'%s': rc %d why %s", einval[i], rc, why ? why : "NULL");
    }
    for (size_t i = 0; i < sizeof erange / sizeof erange[0]; i++) {
        uint64_t ns = 42;
        const char *why = NULL;
        int rc = rldi_parse_duration(erange[i], &ns, &why);
        if (rc != -ERANGE || !why || ns != 42)
            fail_msg("'%s': rc %d why %s", erange[i], rc, why ? why : "NULL");
    }
    uint64_t ns;
    const char *why = NULL;
    assert_int_equal(rldi_parse_duration(NULL, &ns, &why), -EINVAL);
    assert_non_null(why);
}

static void test_u64(void **state)
{
    (void)state;
    static const struct { const char *in; uint64_t v; } ok[] = {
        {"0", 0}, {"42", 42}, {" 42\t", 42}, {"0042", 42},
        {"18446744073709551615", UINT64_MAX},
    };
    static const char *const einval[] = {"", " ", "-1", "+1", "1.0", "0x10", "1e3", "4 2",
                                         "42a", "a42"};
    static const char *const erange[] = {"18446744073709551616", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 7;
        const char *why = NULL;
        if (rldi_parse_u64(ok[i].in, &v, &why) != 0 || v != ok[i].v)
            fail_msg("'%s'", ok[i].in);
    }
    for (size_t i = 0; i < sizeof einval / sizeof einval[0]; i++) {
        uint64_t v = 7;
        const char *why = NULL;
        if (rldi_parse_u64(einval[i], &v, &why) != -EINVAL || !why || v != 7)
            fail_msg("'%s'", einval[i]);
    }
    for (size_t i = 0; i < sizeof erange / sizeof erange[0]; i++) {
        uint64_t v = 7;
        const char *why = NULL;
        if (rldi_parse_u64(erange[i], &v, &why) != -ERANGE || !why || v != 7)
            fail_msg("'%s'", erange[i]);
    }
    uint64_t v;
    const char *why = NULL;
    assert_int_equal(rldi_parse_u64(NULL, &v, &why), -EINVAL);
    assert_non_null(why);
}

static void test_name_check(void **state)
{
    (void)state;
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'b', 65);
    n65[65] = '\0';

    static const char *const ok[] = {"a", "llm.requests", "shop.video.list", "A-Z_0.9/x:y",
                                     "-", "0", "api:v1/users"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (rldi_name_check(ok[i], NULL) != 0)
            fail_msg("'%s'", ok[i]);
    assert_int_equal(rldi_name_check(n64, NULL), 0);

    static const char *const bad[] = {"", "a b", "a\tb", "caf\xc3\xa9", "a*b", "a[b", "a]",
                                      "a=b", "a;b", "a#b", "a\nb", "a\\b", "a,b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        if (rldi_name_check(bad[i], &why) != -EINVAL || !why)
            fail_msg("'%s'", bad[i]);
    }
    const char *why = NULL;
    assert_int_equal(rldi_name_check(NULL, &why), -EINVAL);
    assert_non_null(why);
    why = NULL;
    assert_int_equal(rldi_name_check(n65, &why), -ENAMETOOLONG);
    assert_non_null(why);
}

static void test_format_rate(void **state)
{
    (void)state;
    static const struct { uint64_t c, p; const char *out; } cases[] = {
        {3500, MIN, "3500/min"},
        {5, 500 * MS, "5/500ms"},
        {120, 60 * SEC, "120/min"},
        {120, 90 * SEC, "120/90s"},
        {10, SEC, "10/s"},
        {1000, HR, "1000/h"},
        {1, 2 * HR, "1/2h"},
        {2, 3 * DAY, "2/3day"},
        {1, DAY, "1/day"},
        {1, 36 * HR, "1/36h"},
        {1, 1500 * MS, "1/1500ms"},
        {1, 1500000, "1/1500000ns"},
        {1, 1, "1/ns"},
        {0, 0, "unlimited"},
        {0, SEC, "unlimited"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = rldi_format_rate(buf, sizeof buf, cases[i].c, cases[i].p);
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(n, (int)strlen(cases[i].out));
    }
    /* snprintf semantics */
    assert_int_equal(rldi_format_rate(NULL, 0, 3500, MIN), 8);
    char small[4];
    assert_int_equal(rldi_format_rate(small, sizeof small, 3500, MIN), 8);
    assert_string_equal(small, "350");
}

static void test_rate_round_trip(void **state)
{
    (void)state;
    char buf[64];
    for (size_t i = 0; i < sizeof rates_ok / sizeof rates_ok[0]; i++) {
        uint64_t c, p, c2, p2;
        assert_int_equal(rldi_parse_rate(rates_ok[i].in, &c, &p, NULL), 0);
        rldi_format_rate(buf, sizeof buf, c, p);
        if (rldi_parse_rate(buf, &c2, &p2, NULL) != 0 || c2 != c || p2 != p)
            fail_msg("'%s' -> '%s' does not parse back", rates_ok[i].in, buf);
    }
    /* forms that are already canonical come back unchanged */
    static const char *const canon[] = {"3500/min", "10/s", "5/500ms", "2/3day", "1000/h",
                                        "120/90s", "1/365day", "unlimited"};
    for (size_t i = 0; i < sizeof canon / sizeof canon[0]; i++) {
        uint64_t c, p;
        assert_int_equal(rldi_parse_rate(canon[i], &c, &p, NULL), 0);
        rldi_format_rate(buf, sizeof buf, c, p);
        assert_string_equal(buf, canon[i]);
    }
}

static void test_format_duration(void **state)
{
    (void)state;
    static const struct { uint64_t ns; const char *out; } cases[] = {
        {0, "0"},
        {1, "1ns"},
        {999, "999ns"},
        {1000, "1us"},
        {1500, "1.5us"},
        {9995, "10us"},
        {250 * MS, "250ms"},
        {1500 * MS, "1.5s"},
        {2 * MIN, "2min"},
        {90 * SEC, "1.5min"},
        {HR, "1h"},
        {4500 * SEC, "1.25h"},
        {DAY, "1d"},
        {3 * DAY, "3d"},
        {1234567, "1.23ms"},
        {1235000, "1.24ms"},
        {12345678, "12.3ms"},
        {123456789, "123ms"},
        {999999999, "1s"},
        {59960 * MS, "1min"},
        {59940 * MS, "59.9s"},
        {1001 * MS, "1s"},
        {1010 * MS, "1.01s"},
        {23 * HR + 59 * MIN + 59 * SEC, "1d"},
        {UINT64_MAX, "213504d"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = rldi_format_duration(buf, sizeof buf, cases[i].ns);
        if (strcmp(buf, cases[i].out) != 0 || n != (int)strlen(cases[i].out))
            fail_msg("%llu ns: '%s' (%d), expected '%s'", (unsigned long long)cases[i].ns, buf,
                     n, cases[i].out);
    }
    assert_int_equal(rldi_format_duration(NULL, 0, 1500 * MS), 4);
}

/* format then parse stays within the 3-significant-digit rounding (0.5%). */
static void test_duration_round_trip(void **state)
{
    (void)state;
    char buf[64];
    uint64_t x = 1;
    for (int i = 0; i < 2000; i++) {
        uint64_t back;
        rldi_format_duration(buf, sizeof buf, x);
        if (rldi_parse_duration(buf, &back, NULL) != 0)
            fail_msg("%llu -> '%s' does not parse", (unsigned long long)x, buf);
        long double rel = ((long double)back - (long double)x) / (long double)x;
        if (rel > 0.005L || rel < -0.005L)
            fail_msg("%llu -> '%s' -> %llu", (unsigned long long)x, buf,
                     (unsigned long long)back);
        x = x + x / 47 + 1; /* spans 1 ns .. beyond 10^18 */
        if (x > UINT64_MAX / 2)
            x = 3 + (uint64_t)i;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_accepts),
        cmocka_unit_test(test_rate_rejects),
        cmocka_unit_test(test_rate_reasons),
        cmocka_unit_test(test_duration_accepts),
        cmocka_unit_test(test_duration_rejects),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_format_rate),
        cmocka_unit_test(test_rate_round_trip),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_duration_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
