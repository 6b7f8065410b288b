/*
 * fuzz_config.c - libFuzzer target for daemon/config.c (with common/rate.c and libinih):
 * rldi_config_parse on arbitrary text, and rldi_config_load on the same bytes through a
 * memfd (the getline path, which also sees embedded NUL bytes).
 *
 * Invariants (abort() when broken):
 *  - the return is 0 or negative; on error *out is all zero bytes and err is a single
 *    non-empty line starting with the given name followed by ':';
 *  - on success: every limit name passes rldi_name_check and is unique; count/period are in
 *    the parser's domain; a limited limit has burst >= 1 and a representable
 *    tau = burst * rldi_interval(count, period); an unlimited one has period 0;
 *    nlimits <= max_limits; max_limits, max_waiters and log_level are in range;
 *    rldi_config_find finds every limit;
 *  - round trip: the successful config written back as text (rates through
 *    rldi_format_rate) parses to the same values;
 *  - parse and load agree (same code, same message) on input without NUL bytes;
 *  - everything is freed (LeakSanitizer).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"
#include "gcra.h"
#include "rate.h"

#define NAME "fuzz.conf"

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void check_error(int r, const rldi_config *c, const char *err, const char *name)
{
    FUZZ_CHECK(r < 0, "config returned %d", r);
    FUZZ_CHECK(all_zero(c, sizeof *c), "config not zeroed on error %d (%s)", r, err);
    size_t nl = strlen(name);
    FUZZ_CHECK(strncmp(err, name, nl) == 0 && err[nl] == ':', "error does not start with '%s:': '%s'",
               name, err);
    FUZZ_CHECK(strlen(err) > nl + 1, "error message is empty: '%s'", err);
    FUZZ_CHECK(!strchr(err, '\n') && !strchr(err, '\r'), "error is not a single line: '%s'", err);
}

static void check_ok(const rldi_config *c)
{
    FUZZ_CHECK(c->max_limits >= 1 && c->max_limits <= RLDI_MAX_SLOTS, "max_limits %u", c->max_limits);
    FUZZ_CHECK(c->max_waiters >= 1 && c->max_waiters <= RLDI_CONF_MAX_WAITERS_MAX, "max_waiters %u",
               c->max_waiters);
    FUZZ_CHECK(!strcmp(c->log_level, "error") || !strcmp(c->log_level, "warn") ||
                   !strcmp(c->log_level, "info") || !strcmp(c->log_level, "debug"),
               "log_level '%s'", c->log_level);
    FUZZ_CHECK(c->nlimits <= c->max_limits, "%zu limits > max_limits %u", c->nlimits, c->max_limits);
    FUZZ_CHECK(c->nlimits == 0 || c->limits, "limits NULL");
    for (size_t i = 0; i < c->nlimits; i++) {
        const rldi_limitdef *l = &c->limits[i];
        const char *why;
        FUZZ_CHECK(memchr(l->name, 0, sizeof l->name), "name not terminated");
        FUZZ_CHECK(rldi_name_check(l->name, &why) == 0, "bad name '%s' accepted", l->name);
        FUZZ_CHECK(rldi_config_find(c, l->name) == l, "find('%s') is not the first and only one",
                   l->name);
        FUZZ_CHECK(l->line >= 1, "line %d", l->line);
        if (l->count == 0) {
            FUZZ_CHECK(l->period_ns == 0, "unlimited '%s' with a period", l->name);
            continue;
        }
        FUZZ_CHECK(l->count <= RLDI_RATE_COUNT_MAX && l->period_ns >= RLDI_PERIOD_MIN_NS &&
                       l->period_ns <= RLDI_PERIOD_MAX_NS,
                   "'%s' rate %llu/%lluns", l->name, (unsigned long long)l->count,
                   (unsigned long long)l->period_ns);
        FUZZ_CHECK(l->burst >= 1, "'%s' burst 0", l->name);
        rldi_u128 t, tau;
        FUZZ_CHECK(rldi_interval(l->count, l->period_ns, &t) == 0 && t > 0, "'%s' interval",
                   l->name);
        FUZZ_CHECK(rldi_tau(t, l->burst, &tau) == 0, "'%s': burst %llu x T not representable",
                   l->name, (unsigned long long)l->burst);
    }
}

/* The config as text; parsing it must give the same values. */
static void check_roundtrip(const rldi_config *c)
{
    size_t cap = 512 + c->nlimits * 256, len = 0;
    char *t = malloc(cap);
    FUZZ_CHECK(t != NULL, "malloc");
#define PUT(...) (len += (size_t)snprintf(t + len, cap - len, __VA_ARGS__))
    PUT("[rld]\nmax_limits = %u\nmax_waiters = %u\nlog_level = %s\n", c->max_limits,
        c->max_waiters, c->log_level);
    if (c->group[0])
        PUT("group = %s\n", c->group);
    if (c->admin_group[0])
        PUT("admin_group = %s\n", c->admin_group);
    for (size_t i = 0; i < c->nlimits; i++) {
        const rldi_limitdef *l = &c->limits[i];
        char rate[96];
        rldi_format_rate(rate, sizeof rate, l->count, l->period_ns);
        PUT("[limit %s]\nrate = %s\n", l->name, rate);
        if (l->burst != 0 && l->burst != l->count)
            PUT("burst = %llu\n", (unsigned long long)l->burst);
    }
#undef PUT
    FUZZ_CHECK(len < cap, "round-trip text truncated");

    rldi_config c2;
    char err[512];
    int r = rldi_config_parse(t, "roundtrip", &c2, err, sizeof err);
    FUZZ_CHECK(r == 0, "round trip fails: %s\n--- text:\n%s", err, t);
    FUZZ_CHECK(c2.max_limits == c->max_limits && c2.max_waiters == c->max_waiters &&
                   !strcmp(c2.log_level, c->log_level) && !strcmp(c2.group, c->group) &&
                   !strcmp(c2.admin_group, c->admin_group) && c2.nlimits == c->nlimits,
               "round trip changes [rld]:\n%s", t);
    for (size_t i = 0; i < c->nlimits; i++) {
        const rldi_limitdef *a = &c->limits[i], *b = &c2.limits[i];
        FUZZ_CHECK(!strcmp(a->name, b->name) && a->count == b->count &&
                       a->period_ns == b->period_ns && a->burst == b->burst,
                   "round trip changes limit '%s'", a->name);
    }
    rldi_config_free(&c2);
    free(t);
}

static bool same_config(const rldi_config *a, const rldi_config *b)
{
    if (a->max_limits != b->max_limits || a->max_waiters != b->max_waiters ||
        strcmp(a->log_level, b->log_level) || strcmp(a->group, b->group) ||
        strcmp(a->admin_group, b->admin_group) || a->nlimits != b->nlimits ||
        strcmp(a->path, b->path))
        return false;
    for (size_t i = 0; i < a->nlimits; i++)
        if (memcmp(&a->limits[i], &b->limits[i], sizeof a->limits[i]))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int memfd = -2;
    if (size > 1 << 16)
        return 0;
    char path[64];
    if (memfd == -2) {
        /* -1 (no memfd, or no /proc): the load path is skipped */
        memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
        if (memfd >= 0 && access(path, R_OK) != 0) {
            close(memfd);
            memfd = -1;
        }
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    char *text = fuzz_cstr(data, size);

    /* Dirty outputs: the parser must zero them. */
    rldi_config c;
    char err[512];
    memset(&c, 0xa5, sizeof c);
    memset(err, 'x', sizeof err);
    int r = rldi_config_parse(text, memfd >= 0 ? path : NAME, &c, err, sizeof err);
    if (r != 0) {
        check_error(r, &c, err, memfd >= 0 ? path : NAME);
    } else {
        check_ok(&c);
        check_roundtrip(&c);
    }

    /* The same bytes as a file. */
    if (memfd >= 0) {
        FUZZ_CHECK(ftruncate(memfd, 0) == 0 && pwrite(memfd, data, size, 0) == (ssize_t)size,
                   "memfd write");
        rldi_config c2;
        char err2[512];
        memset(&c2, 0x5a, sizeof c2);
        int r2 = rldi_config_load(path, &c2, err2, sizeof err2);
        if (r2 != 0)
            check_error(r2, &c2, err2, path);
        else
            check_ok(&c2);
        if (!memchr(data, 0, size)) {
            FUZZ_CHECK(r == r2, "parse %d ('%s') but load %d ('%s')", r, r ? err : "",
                       r2, r2 ? err2 : "");
            if (r)
                FUZZ_CHECK(!strcmp(err, err2), "messages differ:\n  parse: %s\n  load:  %s", err, err2);
            else
                FUZZ_CHECK(same_config(&c, &c2), "parse and load give different configs");
        }
        rldi_config_free(&c2);
    }

    /* A NULL or zero-length err buffer must be accepted too. */
    rldi_config c3;
    int r3 = rldi_config_parse(text, NULL, &c3, NULL, 0);
    FUZZ_CHECK(r3 == r, "parse without an err buffer: %d vs %d", r3, r);
    rldi_config_free(&c3);

    if (r == 0)
        rldi_config_free(&c);
    FUZZ_CHECK(all_zero(&c, sizeof c), "config_free does not zero");
    free(text);
    return 0;
}
