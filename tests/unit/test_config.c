/*
 * test_config.c - unit tests of daemon/config.c: the accepted syntax and its defaults, every
 * error reported as "NAME:LINE: ... 'token'" with nothing allocated, and loading real files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define SEC UINT64_C(1000000000)
#define MIN (60 * SEC)

static const char example[] =
    "[limit llm.requests]\n"
    "rate  = 3500/min\n"
    "burst = 3500\n"
    "\n"
    "[limit shop.video.list]\n"
    "rate = 5/min          # burst defaults to the count (5)\n";

static void assert_zeroed(const rldi_config *c)
{
    const unsigned char *p = (const unsigned char *)c;
    for (size_t i = 0; i < sizeof *c; i++)
        if (p[i])
            fail_msg("config not zeroed at byte %zu", i);
}

/* Parses TEXT, which must fail at LINE naming TOKEN (and mentioning ALSO, if non-NULL). */
static void expect_error(const char *text, int line, const char *token, const char *also)
{
    rldi_config c;
    char err[512], want[64], quoted[256];

    memset(&c, 0xa5, sizeof c);
    memset(err, 0, sizeof err);
    int rc = rldi_config_parse(text, "t.conf", &c, err, sizeof err);
    if (rc != -EINVAL)
        fail_msg("rc %d for:\n%s\n(err: %s)", rc, text, err);
    snprintf(want, sizeof want, "t.conf:%d: ", line);
    snprintf(quoted, sizeof quoted, "'%s'", token);
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, quoted) ||
        (also && !strstr(err, also)) || strchr(err, '\n'))
        fail_msg("got \"%s\", expected \"%s...%s...%s\" for:\n%s", err, want, quoted,
                 also ? also : "", text);
    assert_zeroed(&c);
}

static void test_example(void **state)
{
    (void)state;
    rldi_config c;
    char err[256] = "";
    int rc = rldi_config_parse(example, "rld.conf", &c, err, sizeof err);
    if (rc)
        fail_msg("%d: %s", rc, err);
    assert_string_equal(c.path, "rld.conf");
    assert_int_equal(c.nlimits, 2);
    assert_string_equal(c.limits[0].name, "llm.requests");
    assert_int_equal(c.limits[0].count, 3500);
    assert_int_equal(c.limits[0].period_ns, MIN);
    assert_int_equal(c.limits[0].burst, 3500);
    assert_int_equal(c.limits[0].line, 1);
    assert_string_equal(c.limits[1].name, "shop.video.list");
    assert_int_equal(c.limits[1].count, 5);
    assert_int_equal(c.limits[1].period_ns, MIN);
    assert_int_equal(c.limits[1].burst, 5);
    assert_int_equal(c.limits[1].line, 5);
    /* defaults */
    assert_int_equal(c.max_limits, 4096);
    assert_int_equal(c.max_waiters, 65536);
    assert_string_equal(c.log_level, "info");
    assert_string_equal(c.group, "");
    assert_string_equal(c.admin_group, "");

    assert_ptr_equal(rldi_config_find(&c, "llm.requests"), &c.limits[0]);
    assert_ptr_equal(rldi_config_find(&c, "shop.video.list"), &c.limits[1]);
    assert_null(rldi_config_find(&c, "llm"));
    assert_null(rldi_config_find(&c, "llm.requests2"));
    rldi_config_free(&c);
    assert_zeroed(&c);
    rldi_config_free(&c); /* twice is harmless */
}

static void test_full_syntax(void **state)
{
    (void)state;
    static const char text[] =
        "\xef\xbb\xbf; rld configuration\r\n"
        "# comment\n"
        "[rld]   ; inline comment after a header\n"
        "max_limits  = 10\n"
        "  group = rld  \n"
        "admin_group: rld-admin\n"
        "max_waiters = 100\t\n"
        "log_level = debug ; verbose\n"
        "\n"
        "  [ limit   api:v1/users ]  # spaces inside the brackets\n"
        "    burst = 20\n"
        "    rate = 10 / s\r\n"
        "[limit unl]\n"
        "rate = unlimited\n"
        "[limit unl.burst]\n"
        "rate = unlimited\n"
        "burst = 7\n"
        "[limit a]\n"
        "rate = 1/365d\n"
        "burst = 146   # 146 years of tolerance: the most that fits\n";
    rldi_config c;
    char err[256] = "";
    int rc = rldi_config_parse(text, "x", &c, err, sizeof err);
    if (rc)
        fail_msg("%d: %s", rc, err);
    assert_int_equal(c.max_limits, 10);
    assert_string_equal(c.group, "rld");
    assert_string_equal(c.admin_group, "rld-admin");
    assert_int_equal(c.max_waiters, 100);
    assert_string_equal(c.log_level, "debug");
    assert_string_equal(c.metrics_listen, "");          /* off unless given */
    assert_int_equal(c.nlimits, 4);
    assert_string_equal(c.limits[0].name, "api:v1/users");
    assert_int_equal(c.limits[0].count, 10);
    assert_int_equal(c.limits[0].period_ns, SEC);
    assert_int_equal(c.limits[0].burst, 20);
    assert_int_equal(c.limits[0].line, 10);
    assert_string_equal(c.limits[1].name, "unl");
    assert_int_equal(c.limits[1].count, 0);
    assert_int_equal(c.limits[1].period_ns, 0);
    assert_int_equal(c.limits[1].burst, 0);
    assert_int_equal(c.limits[2].count, 0);
    assert_int_equal(c.limits[2].burst, 7);
    assert_int_equal(c.limits[3].burst, 146);
    assert_int_equal(c.limits[3].line, 18);
    rldi_config_free(&c);
}

static void test_empty_and_comments_only(void **state)
{
    (void)state;
    rldi_config c;
    char err[128];
    assert_int_equal(rldi_config_parse("", "e", &c, err, sizeof err), 0);
    assert_int_equal(c.nlimits, 0);
    assert_null(c.limits);
    assert_int_equal(c.max_limits, 4096);
    rldi_config_free(&c);
    assert_int_equal(rldi_config_parse("; nothing\n# here\n\n[rld]\n", "e", &c, err, sizeof err),
                     0);
    assert_int_equal(c.nlimits, 0);
    rldi_config_free(&c);
    /* err and name may be NULL */
    assert_int_equal(rldi_config_parse("[limit a]\nrate=1/s\n", NULL, &c, NULL, 0), 0);
    rldi_config_free(&c);
    assert_int_equal(rldi_config_parse("[bad]\n", NULL, &c, NULL, 0), -EINVAL);
    assert_zeroed(&c);
}

/* Names of 64 bytes: longer than the 49 bytes inih keeps of a section name. */
static void test_long_name(void **state)
{
    (void)state;
    char name[65], text[256], err[256] = "";
    rldi_config c;
    memset(name, 'n', 64);
    name[64] = '\0';
    name[10] = '.';
    snprintf(text, sizeof text, "[limit %s]\nrate = 1/s\n", name);
    int rc = rldi_config_parse(text, "t", &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c.limits[0].name, name);
    assert_non_null(rldi_config_find(&c, name));
    rldi_config_free(&c);

    char n65[66];
    memset(n65, 'n', 65);
    n65[65] = '\0';
    snprintf(text, sizeof text, "[limit %s]\nrate = 1/s\n", n65);
    expect_error(text, 1, n65, "64");
}

/* Many limits: the array and the duplicate index grow, file order is kept. */
static void test_many_limits(void **state)
{
    (void)state;
    const int n = 5000;
    size_t cap = (size_t)n * 40 + 64, o = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    o += (size_t)snprintf(text + o, cap - o, "[rld]\nmax_limits = %d\n", n);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "[limit l%d]\nrate = %d/s\n", n - i, i + 1);
    rldi_config c;
    char err[256] = "";
    int rc = rldi_config_parse(text, "t", &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(c.nlimits, n);
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "l%d", n - i);
        assert_string_equal(c.limits[i].name, nm);
        assert_int_equal(c.limits[i].count, i + 1);
        assert_int_equal(c.limits[i].line, 3 + 2 * i);
        assert_ptr_equal(rldi_config_find(&c, nm), &c.limits[i]);
    }
    rldi_config_free(&c);

    /* one more than allowed: reported at the first limit too many */
    o = 0;
    o += (size_t)snprintf(text + o, cap - o, "[rld]\nmax_limits = %d\n", n - 1);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "[limit l%d]\nrate = 1/s\n", i);
    char tok[16];
    snprintf(tok, sizeof tok, "l%d", n - 1);
    expect_error(text, 3 + 2 * (n - 1), tok, "max_limits");

    /* the default (4096) applies when [rld] never sets it */
    o = 0;
    for (int i = 0; i < 4097; i++)
        o += (size_t)snprintf(text + o, cap - o, "[limit l%d]\nrate = 1/s\n", i);
    expect_error(text, 1 + 2 * 4096, "l4096", "max_limits");
    free(text);
}

struct err_case {
    const char *text;
    int line;
    const char *token, *also;
};

static const struct err_case errors[] = {
    /* global limits (issue 17): [redis], scope, fallback */
    {"[limit g]\nrate = 10/s\nscope = global\n", 1, "g", "needs a [redis] section"},
    {"[redis]\nurl = redis://h:1/0\n[limit g]\nrate = 10/s\nscope = galactic\n", 5, "galactic", "host or global"},
    {"[limit g]\nrate = 10/s\nfallback = share 1/3\n", 3, "g", "global only"},
    {"[redis]\nurl = redis://h:1/0\n[limit g]\nrate = 10/s\nscope = global\nfallback = share 2\n", 6, "share 2", "FRACTION"},
    {"[redis]\nurl = redis://h:1/0\n[limit g]\nrate = unlimited\nscope = global\n", 5, "g", "unlimited"},
    /* checked for window algorithms too (they once left the chain before these checks) */
    {"[redis]\nurl = redis://h:1/0\n[limit g]\nrate = 10/s\nalgorithm = sliding\nscope = global\n", 6, "g", "algorithm = gcra"},
    {"[redis]\nurl = redis://h:1/0\n[limit g]\nrate = 10/s\nalgorithm = fixed\nscope = global\n", 6, "g", "algorithm = gcra"},
    {"[limit w]\nrate = 10/s\nalgorithm = fixed\nfallback = share 1/3\n", 4, "w", "scope = global only"},
    {"[redis]\nurl = redis://h:1/0\n[limit g]\nrate = 10/s\nscope = global\nconcurrency = 2\n", 6, "g", "host limit with concurrency"},
    {"[redis]\nurl = redis://user:pw@h:1/0\n", 2, "redis://user:pw@h:1/0", "password_file"},
    {"[redis]\nurl = http://h/\n", 2, "http://h/", "redis://"},
    {"[redis]\npassword_file = /etc/x\n", 1, "redis", "no url"},
    {"[redis]\nurl = redis://h\ntimeout = 10s\n", 3, "10s", "timeout"},
    {"[redis]\nurl = unix://relative\n", 2, "unix://relative", "absolute"},
    /* sections */
    {"[foo]\n", 1, "foo", "unknown section"},
    {"[limits a]\nrate = 1/s\n", 1, "limits", "unknown section"},
    {"[limit]\n", 1, "limit", "name"},
    {"[limit a b]\nrate = 1/s\n", 1, "b", "one"},
    {"[limit a\nrate = 1/s\n", 1, "[limit a", "]"},
    {"[limit a] junk\nrate = 1/s\n", 1, "junk", NULL},
    {"[limit a*b]\nrate = 1/s\n", 1, "a*b", "name"},
    {"[limit caf\xc3\xa9]\nrate = 1/s\n", 1, "caf\xc3\xa9", "name"},
    {"[]\n", 1, "[]", NULL},
    {"[   ]\n", 1, "[]", NULL},
    {"[rld x]\n", 1, "x", "rld"},
    {"[rld]\n[rld]\n", 2, "rld", "line 1"},
    {"[RLD]\n", 1, "RLD", "unknown section"},
    /* keys */
    {"rate = 1/s\n", 1, "rate", "outside"},
    {"[limit a]\nrate = 1/s\nfoo = 1\n", 3, "foo", "unknown key"},
    {"[limit a]\nRate = 1/s\n", 2, "Rate", "unknown key"},
    {"[limit a]\nrate = 1/s\nrate = 2/s\n", 3, "rate", "line 2"},
    {"[limit a]\nrate = 1/s\nburst = 2\nburst = 3\n", 4, "burst", "duplicate"},
    {"[limit a]\nrate =\n", 2, "rate", "empty"},
    {"[limit a]\nrate = ; comment only\n", 2, "rate", "empty"},
    {"[limit a]\nrate 5/min\n", 2, "rate 5/min", NULL},
    {"[limit a]\n= 5\n", 2, "= 5", "key"},
    {"[rld]\nfoo = 1\n", 2, "foo", "unknown key"},
    {"[rld]\nrate = 1/s\n", 2, "rate", "unknown key"},
    {"[rld]\nlog_level = info\nlog_level = info\n", 3, "log_level", "line 2"},
    {"[limit a]\nrate = 1/s\n[rld]\nburst = 1\n", 4, "burst", "unknown key"},
    /* limits */
    {"[limit a]\nrate = 1/s\n[limit b]\nrate = 1/s\n[limit a]\nrate = 1/s\n", 5, "a", "line 1"},
    {"[limit a]\nburst = 5\n\n[limit b]\nrate = 1/s\n", 1, "a", "no rate"},
    {"[limit a]\nburst = 5\n", 1, "a", "no rate"},
    {"[limit a]\n", 1, "a", "no rate"},
    {"[limit a]\nrate = 1/s\n[limit b]\n[limit c]\nrate = 1/s\n", 3, "b", "no rate"},
    {"[limit a]\nrate = 5/fortnight\n", 2, "5/fortnight", "unknown time unit"},
    {"[limit a]\nrate = 0/s\n", 2, "0/s", "positive"},
    {"[limit a]\nrate = 5/min;x\n", 2, "5/min;x", "rate"},
    {"[limit a]\nrate = 5/min#x\n", 2, "5/min#x", "rate"},
    {"[limit a]\nrate = 5/400d\n", 2, "5/400d", "period too long"},
    {"[limit a]\nrate = 2000000000000000/s\n", 2, "2000000000000000/s", "count"},
    {"[limit a]\nrate = 1/s\nburst = 0\n", 3, "0", "burst"},
    {"[limit a]\nrate = 1/s\nburst = -1\n", 3, "-1", "burst"},
    {"[limit a]\nrate = 1/s\nburst = abc\n", 3, "abc", "burst"},
    {"[limit a]\nrate = 1/s\nburst = 1.5\n", 3, "1.5", "burst"},
    {"[limit a]\nrate = 1/s\nburst = 99999999999999999999999\n", 3,
     "99999999999999999999999", "burst"},
    /* tolerance: 1000 * 365 days, and 2^62 ns + 1 ns */
    {"[limit a]\nrate = 1/365d\nburst = 1000\n", 3, "1000", "146 years"},
    {"[limit a]\nburst = 1000\nrate = 1/365d\n", 3, "1/365d", "146 years"},
    {"[limit a]\nrate = 1/ms\nburst = 4611686018428\n", 3, "4611686018428", "146 years"},
    /* enforced 14% low: T of 5 units where 4.29 is exact (10^-6 promised) */
    {"[limit a]\nrate = 1000000000000000/ms\n", 2, "1000000000000000/ms", "within 10^-6"},
    {"[limit a]\nrate = 5000000000000/s\n", 2, "5000000000000/s", "within 10^-6"},
    {"[limit a]\nrate = 1/s\nmax_debt = 200000d\n", 3, "200000d", "146 years"},
    {"[limit a]\nrate = 1/s\nmax_debt = soon\n", 3, "soon", "bad max_debt"},
    /* [rld] values */
    {"[rld]\nmax_limits = 0\n", 2, "0", "max_limits"},
    {"[rld]\nmax_limits = 16777217\n", 2, "16777217", "max_limits"},
    {"[rld]\nmax_limits = many\n", 2, "many", "max_limits"},
    {"[rld]\nmax_limits = -1\n", 2, "-1", "max_limits"},
    {"[rld]\nmax_waiters = 0\n", 2, "0", "max_waiters"},
    {"[rld]\nmax_waiters = 16777217\n", 2, "16777217", "max_waiters"},
    {"[rld]\ngroup = bad group\n", 2, "bad group", "group"},
    {"[rld]\ngroup = -x\n", 2, "-x", "group"},
    {"[rld]\nadmin_group = a/b\n", 2, "a/b", "group"},
    {"[rld]\ngroup = gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\n", 2,
     "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg", "group"},
    {"[rld]\nlog_level = verbose\n", 2, "verbose", "log_level"},
    {"[rld]\nlog_level = INFO\n", 2, "INFO", "log_level"},
    /* metrics_listen: HOST:PORT, IPv4, [IPv6], localhost; no names looked up */
    {"[rld]\nmetrics_listen = 127.0.0.1\n", 2, "127.0.0.1", "HOST:PORT"},
    {"[rld]\nmetrics_listen = :9731\n", 2, ":9731", "HOST:PORT"},
    {"[rld]\nmetrics_listen = 127.0.0.1:0\n", 2, "127.0.0.1:0", "1..65535"},
    {"[rld]\nmetrics_listen = 127.0.0.1:65536\n", 2, "127.0.0.1:65536", "1..65535"},
    {"[rld]\nmetrics_listen = 127.0.0.1:http\n", 2, "127.0.0.1:http", "1..65535"},
    {"[rld]\nmetrics_listen = 127.0.0.256:9731\n", 2, "127.0.0.256:9731", "IPv4"},
    {"[rld]\nmetrics_listen = prom.example:9731\n", 2, "prom.example:9731", "no name"},
    {"[rld]\nmetrics_listen = ::1:9731\n", 2, "::1:9731", "brackets"},
    {"[rld]\nmetrics_listen = [::1:9731\n", 2, "[::1:9731", "brackets"},
    {"[rld]\nmetrics_listen = []:9731\n", 2, "[]:9731", "brackets"},
    {"[rld]\nmetrics_listen = [localhost]:9731\n", 2, "[localhost]:9731", "IPv6"},
    {"[rld]\nmetrics_listen = 1.2.3.4:1\nmetrics_listen = 1.2.3.4:2\n", 3, "metrics_listen",
     "line 2"},
    /* max_limits */
    {"[rld]\nmax_limits = 2\n[limit a]\nrate=1/s\n[limit b]\nrate=1/s\n[limit c]\nrate=1/s\n", 7,
     "c", "max_limits"},
    {"[limit a]\nrate=1/s\n[limit b]\nrate=1/s\n[limit c]\nrate=1/s\n[rld]\nmax_limits = 2\n", 5,
     "c", "line 8"},
    /* templates: their checks hold whatever the algorithm (a window's branch came first) */
    {"[template t]\nrate = 10/min\nalgorithm = fixed\nmax_keys = 10\noverflow = allow\nscope = global\n", 6, "t", "host limits"},
    {"[template t]\nrate = 10/min\nalgorithm = sliding\nmax_keys = 10\nscope = global\n", 5, "t", "host limits"},
    /* [template NAME]: max_keys, overflow, rate = caller; keys of [limit] refused there */
    {"[template t]\nrate = 10/s\nmax_keys = 0\n", 3, "0", "1..268435456"},
    {"[template t]\nrate = 10/s\nmax_keys = 268435457\n", 3, "268435457", "1..268435456"},
    {"[template t]\nrate = 10/s\nmax_keys = lots\n", 3, "lots", "bad max_keys"},
    {"[limit a]\nrate = 10/s\nmax_keys = 10\n", 3, "max_keys", "[template NAME]"},
    {"[limit a]\nrate = 10/s\noverflow = allow\n", 3, "overflow", "[template NAME]"},
    {"[template t]\nrate = 10/s\noverflow = maybe\n", 3, "maybe", "deny or allow"},
    {"[template t]\nrate = 10/s\nconcurrency = 3\n", 3, "concurrency", "[limit NAME]"},
    {"[limit a]\nrate = caller\n", 2, "caller", "[template NAME]"},
    {"[template t]\nrate = caller\nburst = 5\n", 3, "5", "no burst"},
    {"[template t]\nmax_keys = 10\n", 1, "t", "rate = COUNT/PERIOD, or caller"},
    {"[template]\n", 1, "template", "[template NAME]"},
    {"[template a b]\nrate = 1/s\n", 1, "b", "one template name"},
    {"[limit a]\nrate = 1/s\n[template a]\nrate = 1/s\n", 3, "a", "a limit at line 1"},
    /* mode, concurrency */
    {"[limit a]\nrate = 10/s\nmode = loud\n", 3, "loud", "enforce or shadow"},
    {"[limit a]\nrate = 10/s\nmode = Shadow\n", 3, "Shadow", "enforce or shadow"},
    {"[limit a]\nconcurrency = 0\n", 2, "0", "1..1000000"},
    {"[limit a]\nconcurrency = 1000001\n", 2, "1000001", "1..1000000"},
    {"[limit a]\nconcurrency = many\n", 2, "many", "bad concurrency"},
    /* algorithm, align, burst as a multiple */
    {"[limit a]\nrate = 10/s\nalgorithm = leaky\n", 3, "leaky", "gcra, sliding or fixed"},
    {"[limit a]\nrate = 10/min\nalgorithm = fixed\nalign = soon\n", 4, "soon", "bad align"},
    {"[limit a]\nrate = 10/min\nalgorithm = fixed\nalign = 2h\n", 4, "2h", "shorter than the period"},
    {"[limit a]\nrate = 10/min\nalgorithm = sliding\nalign = 15s\n", 4, "15s", "fixed windows only"},
    {"[limit a]\nrate = 10/min\nalign = 15s\n", 3, "15s", "fixed windows only"},
    {"[limit a]\nrate = 10/s\nalgorithm = sliding\nburst = 5\n", 4, "5", "COUNT is the cap"},
    {"[limit a]\nrate = unlimited\nalgorithm = fixed\n", 3, "fixed", "not unlimited"},
    {"[limit a]\nrate = 10/s\nburst = 2000x\n", 3, "2000x", "up to 1000x"},
    {"[limit a]\nrate = 10/s\nburst = 0x\n", 3, "0x", "1.5x"},
    {"[limit a]\nrate = 10/s\nburst = 1.2345x\n", 3, "1.2345x", "3 decimals"},
    {"[limit a]\nrate = unlimited\nburst = 2x\n", 3, "burst", "COUNT/PERIOD"},
    /* [breaker NAME] */
    {"[breaker b]\nfailures = 0\n", 2, "0", "1..4095"},
    {"[breaker b]\nfailures = 4096\n", 2, "4096", "1..4095"},
    {"[breaker b]\nfailures = x\n", 2, "x", "bad failures"},
    {"[breaker b]\nprobes = 0\n", 2, "0", "1..511"},
    {"[breaker b]\nprobes = 512\n", 2, "512", "1..511"},
    {"[breaker b]\nsuccesses = 600\n", 2, "600", "1..511"},
    {"[breaker b]\nopen_for = 0\n", 2, "0", "1ms..52 days"},
    {"[breaker b]\nopen_for = 0.5ms\n", 2, "0.5ms", "1ms..52 days"},
    {"[breaker b]\nopen_for = 100d\n", 2, "100d", "1ms..52 days"},
    {"[breaker b]\nopen_for = soon\n", 2, "soon", "bad open_for"},
    {"[breaker b]\nprobe_timeout = 0\n", 2, "0", "bad probe_timeout"},
    {"[breaker b]\nrate = 1/s\n", 2, "rate", "expected failures, open_for"},
    {"[breaker b]\nfailures = 2\nfailures = 3\n", 3, "failures", "line 2"},
    {"[breaker]\n", 1, "breaker", "[breaker NAME]"},
    {"[breaker b c]\n", 1, "c", "one breaker name"},
    {"[limit b]\nrate = 1/s\n[breaker b]\n", 3, "b", "a limit at line 1"},
    {"[breaker b]\n[template b]\nrate = 1/s\n", 2, "b", "a breaker at line 1"},
    /* [rld]: the per-user caps */
    {"[rld]\nmax_connections_per_uid = 0\n", 2, "0", "1..4096"},
    {"[rld]\nmax_connections_per_uid = 4097\n", 2, "4097", "1..4096"},
    {"[rld]\nmax_waits_per_uid = 0\n", 2, "0", "1..16777216"},
    {"[rld]\nmax_waits_per_uid = 16777217\n", 2, "16777217", "1..16777216"},
    /* [redis]: every key, and the url's parts */
    {"[redis]\nurl = redis://h\npassword_file = relative\n", 3, "relative", "absolute path"},
    {"[redis]\nurl = redis://h\nhost_id = a b\n", 3, "a b", "spaces"},
    {"[redis]\nurl = redis://h\nlease_period = 5ms\n", 3, "5ms", "10 ms..1 s"},
    {"[redis]\nurl = redis://h\nlease_period = 2s\n", 3, "2s", "10 ms..1 s"},
    {"[redis]\nurl = redis://h\nconnect_timeout = 0\n", 3, "0", "1 ms..2 s"},
    {"[redis]\nurl = redis://h\nconnect_timeout = 3s\n", 3, "3s", "1 ms..2 s"},
    {"[redis]\nurl = redis://h\ntimeout = never\n", 3, "never", "bad timeout"},
    {"[redis]\nurl = redis://h\nkey_prefix = "
     "0123456789012345678901234567890123456789012345678901234567890123\n", 3,
     "0123456789012345678901234567890123456789012345678901234567890123", "63 bytes"},
    {"[redis]\nurl = redis://h\nusername = a\x01" "b\n", 3, "a\\x01b", "control byte"},
    {"[redis]\nurl = redis://h:0\n", 2, "redis://h:0", "port"},
    {"[redis]\nurl = redis://h:65536\n", 2, "redis://h:65536", "port"},
    {"[redis]\nurl = redis://h:x\n", 2, "redis://h:x", "port"},
    {"[redis]\nurl = redis://h/x\n", 2, "redis://h/x", "database number"},
    {"[redis]\nurl = redis://\n", 2, "redis://", "no host"},
    {"[redis]\nurl = redis://[::1\n", 2, "redis://[::1", "[address]"},
    {"[redis]\nurl = redis://h/0?x\n", 2, "redis://h/0?x", "database number"},
    {"[redis]\nurl = unix:///run/r.sock?foo=1\n", 2, "unix:///run/r.sock?foo=1", "?db=N"},
    {"[redis]\nurl = unix:///a@b\n", 2, "unix:///a@b", "password_file"},
    {"[redis]\nurl = redis://h\nfoo = 1\n", 3, "foo", "expected url, password_file"},
    {"[redis x]\nurl = redis://h\n", 1, "x", "takes no name"},
    {"[redis]\nurl = redis://h\n[redis]\nurl = redis://h\n", 3, "redis", "line 1"},
    {"[redis]\nurl = redis://h\n[limit g]\nrate = 10/s\nscope = global\nfallback = share 0\n", 6, "share 0", "FRACTION"},
    {"[redis]\nurl = redis://h\n[limit g]\nrate = 10/s\nscope = global\nfallback = share 101%\n", 6, "share 101%", "FRACTION"},
    {"[redis]\nurl = redis://h\n[limit g]\nrate = 10/s\nscope = global\nfallback = allow\n", 6, "allow", "deny or share"},
    /* only the first error */
    {"[limit a]\nfoo = 1\n[bar]\n", 2, "foo", NULL},
    {"[limit a]\nrate = 1/s\nburst = 0\n[limit a]\n", 3, "0", NULL},
    {"[limit a]\n[limit a]\n", 1, "a", "no rate"},
};

/* metrics_listen as the daemon will bind it. */
static void test_metrics_listen(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int family;
        const char *addr;
        unsigned port;
    } ok[] = {
        { "127.0.0.1:9731", AF_INET, "127.0.0.1", 9731 },
        { "localhost:1", AF_INET, "127.0.0.1", 1 },
        { "0.0.0.0:65535", AF_INET, "0.0.0.0", 65535 },
        { "[::1]:9731", AF_INET6, "::1", 9731 },
        { "[::]:80", AF_INET6, "::", 80 },
        { "[fe80::1:2]:9731", AF_INET6, "fe80::1:2", 9731 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[128], err[256] = "", a[64];
        snprintf(text, sizeof text, "[rld]\nmetrics_listen = %s\n", ok[i].value);
        rldi_config c;
        if (rldi_config_parse(text, "t.conf", &c, err, sizeof err) != 0)
            fail_msg("%s: %s", ok[i].value, err);
        assert_string_equal(c.metrics_listen, ok[i].value);
        assert_int_equal(c.metrics_addr.ss_family, ok[i].family);
        if (ok[i].family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&c.metrics_addr;
            assert_int_equal(c.metrics_addrlen, sizeof(*s4));
            inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
            assert_int_equal(ntohs(s4->sin_port), ok[i].port);
        } else {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&c.metrics_addr;
            assert_int_equal(c.metrics_addrlen, sizeof(*s6));
            inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
            assert_int_equal(ntohs(s6->sin6_port), ok[i].port);
        }
        assert_string_equal(a, ok[i].addr);
        rldi_config_free(&c);
    }
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        expect_error(errors[i].text, errors[i].line, errors[i].token, errors[i].also);
}

/* The message format, exactly. */
static void test_error_format(void **state)
{
    (void)state;
    rldi_config c;
    char err[256];
    assert_int_equal(rldi_config_parse("[limit a]\nrate = 5/fortnight\n", "t.conf", &c, err,
                                       sizeof err),
                     -EINVAL);
    assert_string_equal(err, "t.conf:2: bad rate: unknown time unit '5/fortnight'");
    assert_int_equal(rldi_config_parse("[limit a]\nrate=1/s\n\n[limit a]\nrate=1/s\n", "t.conf",
                                       &c, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "t.conf:4: duplicate limit (first defined at line 1) 'a'");
    /* control bytes in tokens are escaped; a small buffer truncates safely */
    assert_int_equal(rldi_config_parse("[limit a]\nrate = 5/\x01s\n", "t", &c, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "'5/\\x01s'"));
    char small[8];
    assert_int_equal(rldi_config_parse("[foo]\n", "t.conf", &c, small, sizeof small), -EINVAL);
    assert_string_equal(small, "t.conf:");
    assert_zeroed(&c);
}

/* Lines up to RLDI_CONF_LINE_MAX bytes are fine, longer ones are an error on their line. */
static void test_long_lines(void **state)
{
    (void)state;
    char *text = malloc(3 * RLDI_CONF_LINE_MAX);
    rldi_config c;
    char err[256] = "";
    assert_non_null(text);

    /* exactly the maximum, with and without CR */
    int o = sprintf(text, "[limit a]\nrate = 1/s\n#");
    memset(text + o, 'x', RLDI_CONF_LINE_MAX - 1);
    strcpy(text + o + RLDI_CONF_LINE_MAX - 1, "\r\n[limit b]\nrate = 2/s\n");
    int rc = rldi_config_parse(text, "t", &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(c.nlimits, 2);
    rldi_config_free(&c);

    /* one more: inih would have split it in two and miscounted lines */
    o = sprintf(text, "[limit a]\nrate = 1/s\n#");
    memset(text + o, 'x', RLDI_CONF_LINE_MAX);
    strcpy(text + o + RLDI_CONF_LINE_MAX, "\n[limit b]\nrate = 2/s\n");
    char tok[96];
    snprintf(tok, sizeof tok, "%.80s...", text + o - 1); /* tokens are cut at 80 bytes */
    expect_error(text, 3, tok, "longer");

    /* a long value on a key line: the same */
    o = sprintf(text, "[limit a]\nrate = ");
    memset(text + o, '9', RLDI_CONF_LINE_MAX);
    strcpy(text + o + RLDI_CONF_LINE_MAX, "/s\n");
    snprintf(tok, sizeof tok, "%.80s...", text + 10);
    expect_error(text, 2, tok, "longer");
    free(text);
}

/* ---- real files ---- */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/rld-test-config.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    static const char *const files[] = {"ok.conf",   "bad.conf",  "nul.conf",
                                        "noperm.conf", "zero.conf", "fifo.conf"};
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/sub", tmpdir);
    rmdir(p);
    if (rmdir(tmpdir) < 0) {
        fprintf(stderr, "teardown: %s left behind (a file the tests made is not in the list)\n",
                tmpdir);
        return -1;
    }
    return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    rldi_config c;
    snprintf(path, sizeof path, "%s/ok.conf", tmpdir);
    write_file(path, example, strlen(example));
    int rc = rldi_config_load(path, &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c.path, path);
    assert_int_equal(c.nlimits, 2);
    assert_int_equal(c.limits[1].burst, 5);
    assert_int_equal(c.limits[1].line, 5);
    rldi_config_free(&c);
}

static void test_load_bad_file(void **state)
{
    (void)state;
    char path[128], want[256], err[512] = "";
    rldi_config c;
    snprintf(path, sizeof path, "%s/bad.conf", tmpdir);
    static const char bad[] = "[limit a]\nrate = 1/s\n\n[limit b]\nrate = 10/s\nburst = lots\n";
    write_file(path, bad, strlen(bad));
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:6: ", path);
    assert_memory_equal(err, want, strlen(want));
    assert_non_null(strstr(err, "'lots'"));
    assert_zeroed(&c);

    /* a NUL byte inside a line */
    snprintf(path, sizeof path, "%s/nul.conf", tmpdir);
    static const char nul[] = "[limit a]\nrate = 1/s\0 x\n";
    write_file(path, nul, sizeof nul - 1);
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:2: ", path);
    assert_memory_equal(err, want, strlen(want));
    assert_non_null(strstr(err, "NUL"));
    assert_zeroed(&c);
}

static void test_load_missing(void **state)
{
    (void)state;
    char path[128], want[256], err[512] = "";
    rldi_config c;
    memset(&c, 0xa5, sizeof c);
    snprintf(path, sizeof path, "%s/missing.conf", tmpdir);
    assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -ENOENT);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);
    assert_zeroed(&c);

    /* a directory */
    snprintf(path, sizeof path, "%s/sub", tmpdir);
    assert_int_equal(mkdir(path, 0700), 0);
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "%s: ", path);
    assert_memory_equal(err, want, strlen(want));
    assert_zeroed(&c);

    /* not a regular file: a device that never ends (a reload reading it to ENOMEM took the
     * error for the end of the file and deleted every limit), a FIFO nobody writes */
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(rldi_config_load("/dev/zero", &c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    assert_zeroed(&c);
    snprintf(path, sizeof path, "%s/zero.conf", tmpdir);
    assert_int_equal(symlink("/dev/zero", path), 0);
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -EINVAL);
    assert_zeroed(&c);
    snprintf(path, sizeof path, "%s/fifo.conf", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    int w = open(path, O_RDWR | O_NONBLOCK);   /* a writer, so opening it to read does not block */
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -EINVAL);
    assert_zeroed(&c);
    close(w);

    /* unreadable (root reads anything: nothing to test then) */
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/noperm.conf", tmpdir);
        write_file(path, example, strlen(example));
        assert_int_equal(chmod(path, 0), 0);
        memset(&c, 0xa5, sizeof c);
        assert_int_equal(rldi_config_load(path, &c, err, sizeof err), -EACCES);
        snprintf(want, sizeof want, "%s: Permission denied", path);
        assert_string_equal(err, want);
        assert_zeroed(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_full_syntax),
        cmocka_unit_test(test_empty_and_comments_only),
        cmocka_unit_test(test_long_name),
        cmocka_unit_test(test_many_limits),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_metrics_listen),
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_bad_file),
        cmocka_unit_test(test_load_missing),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
