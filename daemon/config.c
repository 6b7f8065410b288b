/*
 * config.c - load and validate the configuration file (see config.h).
 *
 * libinih does the key = value lines and comments. Our reader feeds it one physical line per
 * call, so its line numbers are ours (Debian builds it without INI_HANDLER_LINENO), catches
 * over-long lines (inih would silently split them into two) and parses section headers
 * itself: inih truncates section names to 49 bytes, shorter than "limit " plus a 64-byte
 * limit name. inih then only ever sees key lines, comments and blank lines.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "rate.h"
#include "window.h"

enum section { SEC_NONE, SEC_RLD, SEC_LIMIT, SEC_REDIS, SEC_BREAKER }; /* [template]: SEC_LIMIT */

enum { K_MAX_LIMITS, K_GROUP, K_ADMIN_GROUP, K_MAX_WAITERS, K_LOG_LEVEL, K_CONNS_PER_UID,
       K_WAITS_PER_UID, K_METRICS_LISTEN, N_RLD_KEYS };
enum { K_RATE, K_BURST, K_MAX_DEBT, K_ALGORITHM, K_ALIGN, K_SCOPE, K_FALLBACK, K_MAX_KEYS,
       K_OVERFLOW, K_MODE, K_CONCURRENCY, N_LIMIT_KEYS };
enum { K_FAILURES, K_OPEN_FOR, K_PROBES, K_SUCCESSES, K_PROBE_TIMEOUT, N_BREAKER_KEYS };
enum { K_URL, K_PASSWORD_FILE, K_USERNAME, K_CONNECT_TIMEOUT, K_TIMEOUT, K_LEASE_PERIOD,
       K_KEY_PREFIX, K_HOST_ID, N_REDIS_KEYS };
#define N_KEYS_MAX 16

static const char *const rld_keys[N_RLD_KEYS] = {
    "max_limits", "group", "admin_group", "max_waiters", "log_level",
    "max_connections_per_uid", "max_waits_per_uid", "metrics_listen",
};
static const char *const limit_keys[N_LIMIT_KEYS] = {"rate", "burst", "max_debt", "algorithm",
                                                     "align", "scope", "fallback", "max_keys",
                                                     "overflow", "mode", "concurrency"};
static const char *const breaker_keys[N_BREAKER_KEYS] = {"failures", "open_for", "probes",
                                                         "successes", "probe_timeout"};
static const char *const redis_keys[N_REDIS_KEYS] = {
    "url", "password_file", "username", "connect_timeout", "timeout", "lease_period",
    "key_prefix", "host_id",
};
static const char *const log_levels[] = {"error", "warn", "info", "debug"};

struct parser {
    const char *name;        /* file name, for messages */
    FILE *fp;                /* the source: a file, */
    const char *text;        /* or the rest of a string */
    char *line;              /* current physical line, without its line end */
    size_t linecap, linelen;
    int lineno;

    rldi_config *cfg;
    size_t cap;              /* of cfg->limits */
    uint32_t *index;         /* names -> limit index + 1, open addressing; 0 = empty */
    size_t index_size;       /* power of two */

    enum section sec;
    int sec_line;
    int key_line[N_KEYS_MAX]; /* per key of the current section: line, 0 if not yet seen */
    int rld_line;             /* line of [rld], 0 if none yet */
    int redis_line;           /* line of [redis], 0 if none yet */
    int max_limits_line;      /* line that set max_limits, 0 while the default holds */

    int err;                  /* first error, a negative errno; parsing stops there */
    char *errbuf;
    size_t errlen;
};

/*
 * Records the first error: "NAME:LINE: message 'token'" (line 0: "NAME: message").
 * The token is quoted as read, control bytes escaped, cut after 80 bytes (a whole name fits).
 */
__attribute__((format(printf, 5, 6)))
static void fail(struct parser *ps, int line, int err, const char *token, const char *fmt, ...)
{
    char msg[256], tok[128];
    va_list ap;

    if (ps->err)
        return;
    ps->err = err;
    if (!ps->errbuf || ps->errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (token) {
        size_t o = 0;
        const unsigned char *p = (const unsigned char *)token;
        for (; *p && o < 80; p++) {
            if (*p < 0x20 || *p == 0x7f)
                o += (size_t)snprintf(tok + o, sizeof tok - o, "\\x%02x", *p);
            else
                tok[o++] = (char)*p;
        }
        tok[o] = '\0';
        if (*p)
            strcpy(tok + o, "...");
    }
    if (line > 0 && token)
        snprintf(ps->errbuf, ps->errlen, "%s:%d: %s '%s'", ps->name, line, msg, tok);
    else if (line > 0)
        snprintf(ps->errbuf, ps->errlen, "%s:%d: %s", ps->name, line, msg);
    else
        snprintf(ps->errbuf, ps->errlen, "%s: %s", ps->name, msg);
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

static char *skip_blanks(char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        s[--n] = '\0';
}

/* ---- limits and their name index ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* Index of limit NAME, or -1. */
static long index_find(const struct parser *ps, const char *name)
{
    if (!ps->index)
        return -1;
    size_t mask = ps->index_size - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t v = ps->index[i];
        if (v == 0)
            return -1;
        if (strcmp(ps->cfg->limits[v - 1].name, name) == 0)
            return (long)(v - 1);
    }
}

static void index_put(uint32_t *index, size_t size, const char *name, uint32_t idx)
{
    size_t mask = size - 1, i = name_hash(name) & mask;
    while (index[i])
        i = (i + 1) & mask;
    index[i] = idx + 1;
}

/* Appends a limit NAME at LINE (name already checked, not a duplicate). */
static rldi_limitdef *add_limit(struct parser *ps, const char *name, int line)
{
    rldi_config *c = ps->cfg;
    if (c->nlimits == ps->cap) {
        size_t ncap = ps->cap ? ps->cap * 2 : 16;
        rldi_limitdef *nl = realloc(c->limits, ncap * sizeof *nl);
        if (!nl)
            return NULL;
        c->limits = nl;
        ps->cap = ncap;
    }
    if ((c->nlimits + 1) * 2 > ps->index_size) { /* keep the load factor at most 1/2 */
        size_t nsize = ps->index_size ? ps->index_size * 2 : 64;
        uint32_t *ni = calloc(nsize, sizeof *ni);
        if (!ni)
            return NULL;
        for (size_t i = 0; i < c->nlimits; i++)
            index_put(ni, nsize, c->limits[i].name, (uint32_t)i);
        free(ps->index);
        ps->index = ni;
        ps->index_size = nsize;
    }
    rldi_limitdef *l = &c->limits[c->nlimits];
    memset(l, 0, sizeof *l);
    strcpy(l->name, name); /* length checked by rldi_name_check */
    l->line = line;
    index_put(ps->index, ps->index_size, l->name, (uint32_t)c->nlimits);
    c->nlimits++;
    return l;
}

/* ---- sections ---- */

static const char *kind_name(uint8_t kind)
{
    return kind == RLDI_KIND_TEMPLATE ? "template" : kind == RLDI_KIND_BREAKER ? "breaker" : "limit";
}

/* Closes the current section: a limit must have had a rate. */
static bool end_section(struct parser *ps)
{
    if (ps->sec == SEC_BREAKER) {
        rldi_limitdef *l = &ps->cfg->limits[ps->cfg->nlimits - 1];
        if (l->brk_probe_timeout_ns == 0)
            l->brk_probe_timeout_ns = l->brk_open_for_ns;
        const char *why;
        if (rldi_limitdef_check(l, &why, NULL) < 0) {
            fail(ps, ps->sec_line, -EINVAL, l->name, "%s", why);
            return false;
        }
    } else if (ps->sec == SEC_LIMIT) {
        rldi_limitdef *l = &ps->cfg->limits[ps->cfg->nlimits - 1];
        if (!ps->key_line[K_RATE] && !l->concurrency) {
            fail(ps, ps->sec_line, -EINVAL, l->name, "%s has no rate%s", kind_name(l->kind),
                 l->kind == RLDI_KIND_LIMIT ? " (nor concurrency)"
                                            : " (rate = COUNT/PERIOD, or caller)");
            return false;
        }
        if (l->burst_x1000) {
            /* burst = 1.5x: a multiple of the count, known now */
            if (l->count == 0) {
                fail(ps, ps->key_line[K_BURST], -EINVAL, "burst", "burst as a multiple "
                     "(1.5x) needs a rate of COUNT/PERIOD");
                return false;
            }
            l->burst = rldi_burst_multiple(l->count, l->burst_x1000);
        }
        if (!ps->key_line[K_BURST] && l->algo == RLDI_ALGO_GCRA && !l->caller_rate)
            l->burst = l->count;
        /* scope and fallback against the rest, once all is known: on their own lines */
        const char *why;
        enum rldi_limitdef_field f;
        if (rldi_limitdef_check(l, &why, &f) < 0) {
            int at = ps->key_line[K_SCOPE] ? ps->key_line[K_SCOPE] : ps->sec_line;
            if (l->fallback_num && l->scope != RLDI_SCOPE_GLOBAL)
                at = ps->key_line[K_FALLBACK];
            if (f == RLDI_LD_ALGO && ps->key_line[K_ALGORITHM])
                at = ps->key_line[K_ALGORITHM];
            else if (f == RLDI_LD_RATE && ps->key_line[K_RATE])
                at = ps->key_line[K_RATE];
            else if (f == RLDI_LD_KEYS && ps->key_line[K_MAX_KEYS])
                at = ps->key_line[K_MAX_KEYS];
            else if (f == RLDI_LD_CONCURRENCY && ps->key_line[K_CONCURRENCY])
                at = ps->key_line[K_CONCURRENCY];
            else if (f == RLDI_LD_BURST && ps->key_line[K_BURST])
                at = ps->key_line[K_BURST];
            fail(ps, at, -EINVAL, l->name, "%s", why);
            return false;
        }
    } else if (ps->sec == SEC_REDIS && !ps->key_line[K_URL]) {
        fail(ps, ps->sec_line, -EINVAL, "redis", "[redis] has no url");
        return false;
    }
    ps->sec = SEC_NONE;
    memset(ps->key_line, 0, sizeof ps->key_line);
    return true;
}

/* Splits S in place into at most MAX blank-separated words; returns how many there were. */
static int split_words(char *s, char **w, int max)
{
    int n = 0;
    for (char *p = skip_blanks(s); *p; p = skip_blanks(p)) {
        if (n < max)
            w[n] = p;
        n++;
        while (*p && !is_blank(*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

/* A "[...]" line, P at the '['. */
static bool section_header(struct parser *ps, char *p)
{
    int line = ps->lineno;
    char *w[3];

    if (!end_section(ps))
        return false;
    char *close = strchr(p, ']');
    if (!close) {
        rtrim(p);
        fail(ps, line, -EINVAL, p, "missing ']' in section header");
        return false;
    }
    char *rest = skip_blanks(close + 1);
    if (*rest && *rest != ';' && *rest != '#') {
        rtrim(rest);
        fail(ps, line, -EINVAL, rest, "unexpected text after section header");
        return false;
    }
    *close = '\0';
    int n = split_words(p + 1, w, 3);
    if (n == 0) {
        fail(ps, line, -EINVAL, "[]", "empty section header");
        return false;
    }

    if (strcmp(w[0], "rld") == 0) {
        if (n > 1) {
            fail(ps, line, -EINVAL, w[1], "section [rld] takes no name");
            return false;
        }
        if (ps->rld_line) {
            fail(ps, line, -EINVAL, "rld", "duplicate section (first at line %d)", ps->rld_line);
            return false;
        }
        ps->rld_line = line;
        ps->sec = SEC_RLD;
        ps->sec_line = line;
        return true;
    }
    if (strcmp(w[0], "redis") == 0) {
        if (n > 1) {
            fail(ps, line, -EINVAL, w[1], "section [redis] takes no name");
            return false;
        }
        if (ps->redis_line) {
            fail(ps, line, -EINVAL, "redis", "duplicate section (first at line %d)", ps->redis_line);
            return false;
        }
        rldi_redisconf *r = &ps->cfg->redis;
        ps->redis_line = line;
        r->set = true;
        r->line = line;
        r->connect_timeout_ns = RLDI_REDIS_DEFAULT_CONNECT_TIMEOUT_NS;
        r->timeout_ns = RLDI_REDIS_DEFAULT_TIMEOUT_NS;
        r->lease_period_ns = RLDI_REDIS_DEFAULT_LEASE_PERIOD_NS;
        strcpy(r->key_prefix, "rld:");
        ps->sec = SEC_REDIS;
        ps->sec_line = line;
        return true;
    }
    bool tmpl = strcmp(w[0], "template") == 0, brk = strcmp(w[0], "breaker") == 0;
    if (strcmp(w[0], "limit") != 0 && !tmpl && !brk) {
        fail(ps, line, -EINVAL, w[0], "unknown section (expected [rld], [redis], [limit NAME], "
             "[template NAME] or [breaker NAME])");
        return false;
    }
    const char *what = tmpl ? "template" : brk ? "breaker" : "limit";
    if (n == 1) {
        fail(ps, line, -EINVAL, w[0], "missing %s name: [%s NAME]", what, what);
        return false;
    }
    if (n > 2) {
        fail(ps, line, -EINVAL, w[2], "exactly one %s name expected after '%s'", what, what);
        return false;
    }
    const char *why = NULL;
    if (rldi_name_check(w[1], &why) < 0) {
        fail(ps, line, -EINVAL, w[1], "bad %s name: %s", what, why);
        return false;
    }
    long dup = index_find(ps, w[1]);
    if (dup >= 0) {
        const char *first = kind_name(ps->cfg->limits[dup].kind);
        if (strcmp(first, what) == 0)
            fail(ps, line, -EINVAL, w[1], "duplicate %s (first defined at line %d)", what,
                 ps->cfg->limits[dup].line);
        else
            fail(ps, line, -EINVAL, w[1], "duplicate name (a %s at line %d)", first,
                 ps->cfg->limits[dup].line);
        return false;
    }
    if (tmpl && ps->cfg->ntemplates >= RLDI_MAX_TEMPLATES) {
        fail(ps, line, -EINVAL, w[1], "more than %u templates", RLDI_MAX_TEMPLATES);
        return false;
    }
    /* The cap is known once set, or when it is the hard one; the default can still be
     * raised by an [rld] further down, so that case waits for the end of the file. */
    uint32_t cap = ps->max_limits_line ? ps->cfg->max_limits : RLDI_MAX_SLOTS;
    if (ps->cfg->nlimits >= cap) {
        fail(ps, line, -EINVAL, w[1], "more limits than max_limits (%u)", (unsigned)cap);
        return false;
    }
    if (!add_limit(ps, w[1], line)) {
        fail(ps, 0, -ENOMEM, NULL, "out of memory");
        return false;
    }
    if (tmpl) {
        ps->cfg->limits[ps->cfg->nlimits - 1].kind = RLDI_KIND_TEMPLATE;
        ps->cfg->limits[ps->cfg->nlimits - 1].max_keys = RLDI_MAX_KEYS_DEFAULT;
        ps->cfg->ntemplates++;
    }
    if (brk) {
        rldi_limitdef_breaker_defaults(&ps->cfg->limits[ps->cfg->nlimits - 1]);
        ps->sec = SEC_BREAKER;
        ps->sec_line = line;
        return true;
    }
    ps->sec = SEC_LIMIT;
    ps->sec_line = line;
    return true;
}

/* ---- keys ---- */

/* Group names as useradd accepts them: [A-Za-z0-9_.-], not starting with '-', < 64 bytes. */
static bool group_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof ((rldi_config *)0)->group || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

int rldi_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                      const char **why)
{
    char host[64];
    const char *colon = strrchr(s, ':'), *hs = s;
    size_t hl;
    memset(ss, 0, sizeof(*ss));
    if (!colon || colon == s) {
        *why = "expected HOST:PORT";
        return -EINVAL;
    }
    hl = (size_t)(colon - s);
    if (s[0] == '[') {                     /* [IPv6]:PORT */
        if (hl < 3 || s[hl - 1] != ']') {
            *why = "an IPv6 address goes in brackets: [::1]:9731";
            return -EINVAL;
        }
        hs = s + 1;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host)) {
        *why = "expected HOST:PORT";
        return -EINVAL;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    uint64_t port;
    const char *pwhy;
    if (rldi_parse_u64(colon + 1, &port, &pwhy) < 0 || port == 0 || port > 65535) {
        *why = "the port must be 1..65535";
        return -EINVAL;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (hs != s) {
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
            *why = "not an IPv6 address";
            return -EINVAL;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return 0;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
        *why = strchr(host, ':') ? "an IPv6 address goes in brackets: [::1]:9731"
                                 : "an IPv4 address, [IPv6] or localhost (no name lookups)";
        return -EINVAL;
    }
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    return 0;
}

/* A u64 in LO..HI for KEY. */
static bool range_value(struct parser *ps, const char *key, const char *value, uint64_t lo,
                        uint64_t hi, uint64_t *out)
{
    const char *why = NULL;
    if (rldi_parse_u64(value, out, &why) < 0) {
        fail(ps, ps->lineno, -EINVAL, value, "bad %s: %s", key, why);
        return false;
    }
    if (*out < lo || *out > hi) {
        fail(ps, ps->lineno, -EINVAL, value, "%s must be %llu..%llu", key,
             (unsigned long long)lo, (unsigned long long)hi);
        return false;
    }
    return true;
}

static bool rld_key(struct parser *ps, int k, const char *value)
{
    rldi_config *c = ps->cfg;
    uint64_t v;

    switch (k) {
    case K_MAX_LIMITS:
        if (!range_value(ps, "max_limits", value, 1, RLDI_MAX_SLOTS, &v))
            return false;
        c->max_limits = (uint32_t)v;
        ps->max_limits_line = ps->lineno;
        if (c->nlimits > v) {
            const rldi_limitdef *l = &c->limits[v];
            fail(ps, l->line, -EINVAL, l->name, "more limits than max_limits (%u, set at line %d)",
                 (unsigned)v, ps->lineno);
            return false;
        }
        return true;
    case K_MAX_WAITERS:
        if (!range_value(ps, "max_waiters", value, 1, RLDI_CONF_MAX_WAITERS_MAX, &v))
            return false;
        c->max_waiters = (uint32_t)v;
        return true;
    case K_CONNS_PER_UID:
        if (!range_value(ps, "max_connections_per_uid", value, 1, 4096, &v))
            return false;
        c->max_conns_per_uid = (uint32_t)v;
        return true;
    case K_WAITS_PER_UID:
        if (!range_value(ps, "max_waits_per_uid", value, 1, RLDI_CONF_MAX_WAITERS_MAX, &v))
            return false;
        c->max_waits_per_uid = (uint32_t)v;
        return true;
    case K_GROUP:
    case K_ADMIN_GROUP:
        if (!group_ok(value)) {
            fail(ps, ps->lineno, -EINVAL, value, "bad group name");
            return false;
        }
        strcpy(k == K_GROUP ? c->group : c->admin_group, value);
        return true;
    case K_METRICS_LISTEN: {
        const char *why;
        if (strlen(value) >= sizeof(c->metrics_listen) ||
            rldi_parse_listen(value, &c->metrics_addr, &c->metrics_addrlen, &why) < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "bad metrics_listen: %s (examples: "
                 "127.0.0.1:9731, [::1]:9731, localhost:9731)",
                 strlen(value) >= sizeof(c->metrics_listen) ? "too long" : why);
            return false;
        }
        strcpy(c->metrics_listen, value);
        return true;
    }
    case K_LOG_LEVEL:
        for (size_t i = 0; i < sizeof log_levels / sizeof log_levels[0]; i++)
            if (strcmp(value, log_levels[i]) == 0) {
                strcpy(c->log_level, value);
                return true;
            }
        fail(ps, ps->lineno, -EINVAL, value, "log_level must be error, warn, info or debug");
        return false;
    }
    return false;
}

/* The definition as a whole (limitdef.h), checked once rate and burst are both known. */
static bool tolerance_ok(struct parser *ps, const rldi_limitdef *l, const char *value)
{
    const char *why;
    enum rldi_limitdef_field f;
    /* scope and fallback errors wait for the end of the section (keys come in any order) */
    if (rldi_limitdef_check(l, &why, &f) < 0 && f != RLDI_LD_SCOPE) {
        fail(ps, ps->lineno, -EINVAL, value, "%s", why);
        return false;
    }
    return true;
}

/* "deny", or "share F" with F a fraction of the global rate in (0, 1]: 1/3, 0.25, 25%. */
static bool fallback_value(struct parser *ps, rldi_limitdef *l, const char *value)
{
    if (strcmp(value, "deny") == 0) {
        l->fallback_num = 0;
        l->fallback_den = 1;
        return true;
    }
    const char *f = NULL;
    if (strncmp(value, "share", 5) == 0 && (value[5] == ' ' || value[5] == '\t'))
        f = value + 5;
    while (f && (*f == ' ' || *f == '\t'))
        f++;
    uint64_t num = 0, den = 0;
    if (f && *f) {
        char buf[64];
        const char *why;
        snprintf(buf, sizeof(buf), "%s", f);
        char *slash = strchr(buf, '/'), *pct = strchr(buf, '%'), *dot = strchr(buf, '.');
        if (slash) {
            *slash = '\0';
            if (rldi_parse_u64(buf, &num, &why) < 0 || rldi_parse_u64(slash + 1, &den, &why) < 0)
                num = den = 0;
        } else if (pct && pct[1] == '\0') {
            *pct = '\0';
            den = 100;
            if (rldi_parse_u64(buf, &num, &why) < 0)
                num = den = 0;
        } else if (dot && dot == buf + 1 && (buf[0] == '0' || buf[0] == '1') &&
                   strlen(dot + 1) >= 1 && strlen(dot + 1) <= 6) {
            uint64_t whole = (uint64_t)(buf[0] - '0'), frac;
            den = 1;
            for (size_t i = 0; i < strlen(dot + 1); i++)
                den *= 10;
            if (rldi_parse_u64(dot + 1, &frac, &why) < 0)
                num = den = 0;
            else
                num = whole * den + frac;
        } else if (strcmp(buf, "1") == 0) {
            num = den = 1;
        }
    }
    if (num == 0 || den == 0 || num > den || den > UINT32_MAX) {
        fail(ps, ps->lineno, -EINVAL, value,
             "fallback must be deny or share FRACTION in (0, 1] (1/3, 0.25, 25%%)");
        return false;
    }
    l->fallback_num = (uint32_t)num;
    l->fallback_den = (uint32_t)den;
    return true;
}

/* A [breaker NAME]'s key. */
static bool breaker_key(struct parser *ps, int k, const char *value)
{
    rldi_limitdef *l = &ps->cfg->limits[ps->cfg->nlimits - 1];
    const char *why = NULL;
    uint64_t n;
    if (k == K_OPEN_FOR || k == K_PROBE_TIMEOUT) {
        if (rldi_parse_duration(value, &n, &why) < 0 || n < 1000000ull || n > ((uint64_t)1 << 52)) {
            fail(ps, ps->lineno, -EINVAL, value, "bad %s: %s", breaker_keys[k],
                 why ? why : "1ms..52 days");
            return false;
        }
        *(k == K_OPEN_FOR ? &l->brk_open_for_ns : &l->brk_probe_timeout_ns) = n;
        return true;
    }
    uint64_t max = k == K_FAILURES ? 4095 : 511;
    if (rldi_parse_u64(value, &n, &why) < 0 || n == 0 || n > max) {
        fail(ps, ps->lineno, -EINVAL, value, "bad %s: 1..%llu", breaker_keys[k],
             (unsigned long long)max);
        return false;
    }
    if (k == K_FAILURES)
        l->brk_failures = (uint32_t)n;
    else if (k == K_PROBES)
        l->brk_probes = (uint32_t)n;
    else
        l->brk_successes = (uint32_t)n;
    return true;
}

static bool limit_key(struct parser *ps, int k, const char *value)
{
    rldi_limitdef *l = &ps->cfg->limits[ps->cfg->nlimits - 1];
    const char *why = NULL;
    int rc;

    if (k == K_MODE) {
        if (strcmp(value, "shadow") != 0 && strcmp(value, "enforce") != 0) {
            fail(ps, ps->lineno, -EINVAL, value, "mode must be enforce or shadow");
            return false;
        }
        l->shadow = value[0] == 's';
        return true;
    }
    if (k == K_CONCURRENCY) {
        uint64_t n;
        if (rldi_parse_u64(value, &n, &why) < 0 || n == 0 || n > RLDI_CONCURRENCY_MAX) {
            fail(ps, ps->lineno, -EINVAL, value, "bad concurrency: 1..%u", RLDI_CONCURRENCY_MAX);
            return false;
        }
        if (l->kind != RLDI_KIND_LIMIT) {
            fail(ps, ps->lineno, -EINVAL, limit_keys[k], "concurrency is for [limit NAME] sections");
            return false;
        }
        l->concurrency = (uint32_t)n;
        return true;
    }
    if (k == K_BURST && strpbrk(value, "xX")) {
        rc = rldi_burst_multiple_parse(value, &l->burst_x1000);
        if (rc < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "bad burst: a count (3500) or a multiple of "
                 "the rate's count (1.5x, up to 1000x, 3 decimals)");
            return false;
        }
        /* resolved at the end of the section (the rate may come later); a placeholder so
         * that a window refuses it as it refuses any burst */
        l->burst = 1;
        return true;
    }

    if (k == K_MAX_KEYS || k == K_OVERFLOW) {
        if (l->kind != RLDI_KIND_TEMPLATE) {
            fail(ps, ps->lineno, -EINVAL, limit_keys[k], "%s is for [template NAME] sections",
                 limit_keys[k]);
            return false;
        }
        if (k == K_OVERFLOW) {
            if (strcmp(value, "deny") != 0 && strcmp(value, "allow") != 0) {
                fail(ps, ps->lineno, -EINVAL, value, "overflow must be deny or allow");
                return false;
            }
            l->overflow_allow = value[0] == 'a';
            return true;
        }
        uint64_t n;
        if ((rc = rldi_parse_u64(value, &n, &why)) < 0 || n == 0 || n > RLDI_MAX_KEYS_MAX) {
            fail(ps, ps->lineno, -EINVAL, value, "bad max_keys: 1..%u", RLDI_MAX_KEYS_MAX);
            return false;
        }
        l->max_keys = (uint32_t)n;
        return true;
    }
    if (k == K_RATE && strcmp(value, "caller") == 0) {
        if (l->kind != RLDI_KIND_TEMPLATE) {
            fail(ps, ps->lineno, -EINVAL, value, "rate = caller is for [template NAME] sections");
            return false;
        }
        l->caller_rate = true;
        return true;
    }
    if (k == K_RATE) {
        if (rldi_parse_rate(value, &l->count, &l->period_ns, &why) < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "bad rate: %s", why);
            return false;
        }
        return tolerance_ok(ps, l, value);
    }
    if (k == K_ALGORITHM) {
        if (rldi_algo_parse(value, &l->algo) < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "algorithm must be gcra, sliding or fixed");
            return false;
        }
        return tolerance_ok(ps, l, value);
    }
    if (k == K_ALIGN) {
        const char *v = value;
        if (strcmp(v, "first") == 0 || strcmp(v, "elastic") == 0) {
            l->align_ns = v[0] == 'f' ? RLDI_WIN_ANCHOR_FIRST : RLDI_WIN_ANCHOR_ELASTIC;
            l->align_set = true;
            return tolerance_ok(ps, l, value);
        }
        if (*v == '+')
            v++;
        if ((rc = rldi_parse_duration(v, &l->align_ns, &why)) < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "bad align: %s", why);
            return false;
        }
        l->align_set = true;
        return tolerance_ok(ps, l, value);
    }
    if (k == K_SCOPE) {
        if (strcmp(value, "host") == 0)
            l->scope = RLDI_SCOPE_HOST;
        else if (strcmp(value, "global") == 0)
            l->scope = RLDI_SCOPE_GLOBAL;
        else {
            fail(ps, ps->lineno, -EINVAL, value, "scope must be host or global");
            return false;
        }
        return true;                            /* checked at the end of the section */
    }
    if (k == K_FALLBACK)
        return fallback_value(ps, l, value);
    if (k == K_MAX_DEBT) {
        if ((rc = rldi_parse_duration(value, &l->max_debt_ns, &why)) < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "bad max_debt: %s", why);
            return false;
        }
        l->max_debt_set = true;
        return tolerance_ok(ps, l, value);
    }
    if ((rc = rldi_parse_u64(value, &l->burst, &why)) < 0) {
        fail(ps, ps->lineno, -EINVAL, value, "bad burst: %s",
             rc == -ERANGE ? "number too large" : "must be a positive integer");
        return false;
    }
    if (l->burst == 0) {
        fail(ps, ps->lineno, -EINVAL, value, "bad burst: must be a positive integer");
        return false;
    }
    return !ps->key_line[K_RATE] || tolerance_ok(ps, l, value);
}

/* A string value of at most CAP - 1 bytes, without control bytes. */
static bool str_value(struct parser *ps, const char *key, const char *value, char *out,
                      size_t cap)
{
    if (strlen(value) >= cap) {
        fail(ps, ps->lineno, -EINVAL, value, "%s longer than %zu bytes", key, cap - 1);
        return false;
    }
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            fail(ps, ps->lineno, -EINVAL, value, "control byte in %s", key);
            return false;
        }
    strcpy(out, value);
    return true;
}

static bool duration_value(struct parser *ps, const char *key, const char *value, uint64_t lo,
                           uint64_t hi, uint64_t *out)
{
    const char *why;
    if (rldi_parse_duration(value, out, &why) < 0) {
        fail(ps, ps->lineno, -EINVAL, value, "bad %s: %s", key, why);
        return false;
    }
    if (*out < lo || *out > hi) {
        fail(ps, ps->lineno, -EINVAL, value, "%s must be %llu ms..%llu s", key,
             (unsigned long long)(lo / 1000000), (unsigned long long)(hi / 1000000000));
        return false;
    }
    return true;
}

int rldi_redis_url_parse(const char *url, rldi_redisconf *r, const char **why)
{
    r->host[0] = r->path[0] = '\0';
    r->port = 6379;
    r->db = 0;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7, *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/' || n >= sizeof(r->path)) {
            *why = "unix:// needs an absolute socket path (at most 107 bytes)";
            return -EINVAL;
        }
        if (strchr(p, '@')) {
            *why = "no password in the url: use password_file";
            return -EINVAL;
        }
        memcpy(r->path, p, n);
        r->path[n] = '\0';
        if (q) {
            uint64_t db;
            const char *w;
            if (strncmp(q, "?db=", 4) != 0 || rldi_parse_u64(q + 4, &db, &w) < 0 || db > 1000000) {
                *why = "unix:// takes only ?db=N";
                return -EINVAL;
            }
            r->db = (uint32_t)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        *why = "url must start with redis:// or unix://";
        return -EINVAL;
    }
    const char *p = url + 8;
    if (strchr(p, '@')) {
        *why = "no user or password in the url: use username and password_file";
        return -EINVAL;
    }
    const char *end;
    if (*p == '[') {                            /* [IPv6]:port */
        end = strchr(p, ']');
        if (!end || (size_t)(end - p - 1) >= sizeof(r->host) || end == p + 1) {
            *why = "bad [address] in the url";
            return -EINVAL;
        }
        memcpy(r->host, p + 1, (size_t)(end - p - 1));
        r->host[end - p - 1] = '\0';
        p = end + 1;
    } else {
        size_t n = strcspn(p, ":/");
        if (n == 0 || n >= sizeof(r->host)) {
            *why = "the url has no host";
            return -EINVAL;
        }
        memcpy(r->host, p, n);
        r->host[n] = '\0';
        p += n;
    }
    if (*p == ':') {
        char port[8];
        size_t n = strcspn(p + 1, "/");
        uint64_t v;
        const char *w;
        if (n == 0 || n >= sizeof(port)) {
            *why = "bad port in the url";
            return -EINVAL;
        }
        memcpy(port, p + 1, n);
        port[n] = '\0';
        if (rldi_parse_u64(port, &v, &w) < 0 || v == 0 || v > 65535) {
            *why = "bad port in the url";
            return -EINVAL;
        }
        r->port = (uint16_t)v;
        p += 1 + n;
    }
    if (*p == '/' && p[1]) {
        uint64_t db;
        const char *w;
        if (rldi_parse_u64(p + 1, &db, &w) < 0 || db > 1000000) {
            *why = "bad database number in the url";
            return -EINVAL;
        }
        r->db = (uint32_t)db;
    } else if (*p && strcmp(p, "/") != 0) {
        *why = "unexpected text in the url";
        return -EINVAL;
    }
    return 0;
}

static bool redis_key(struct parser *ps, int k, const char *value)
{
    rldi_redisconf *r = &ps->cfg->redis;
    const char *why;
    switch (k) {
    case K_URL:
        if (!str_value(ps, "url", value, r->url, sizeof(r->url)))
            return false;
        if (rldi_redis_url_parse(value, r, &why) < 0) {
            fail(ps, ps->lineno, -EINVAL, value, "bad url: %s", why);
            return false;
        }
        return true;
    case K_PASSWORD_FILE:
        if (!str_value(ps, "password_file", value, r->password_file, sizeof(r->password_file)))
            return false;
        if (value[0] != '/') {
            fail(ps, ps->lineno, -EINVAL, value, "password_file must be an absolute path");
            return false;
        }
        return true;
    case K_USERNAME:
        return str_value(ps, "username", value, r->username, sizeof(r->username));
    case K_CONNECT_TIMEOUT:
        /* a lease round must come back within 4.29 s (a pool's refill of one token): at
         * most a lease period and one timeout, so these stay small */
        return duration_value(ps, "connect_timeout", value, 1000000, 2000000000ull,
                              &r->connect_timeout_ns);
    case K_TIMEOUT:
        return duration_value(ps, "timeout", value, 1000000, 2000000000ull, &r->timeout_ns);
    case K_LEASE_PERIOD:
        return duration_value(ps, "lease_period", value, 10000000, 1000000000ull,
                              &r->lease_period_ns);
    case K_KEY_PREFIX:
        return str_value(ps, "key_prefix", value, r->key_prefix, sizeof(r->key_prefix));
    case K_HOST_ID:
        if (!str_value(ps, "host_id", value, r->host_id, sizeof(r->host_id)))
            return false;
        if (strchr(value, ' ')) {
            fail(ps, ps->lineno, -EINVAL, value, "host_id must not contain spaces");
            return false;
        }
        return true;
    }
    return false;
}

static int key_index(const char *const *keys, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return i;
    return -1;
}

/* inih's callback: one "key = value" line, both trimmed, comment removed. Nonzero is OK. */
static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct parser *ps = user;
    int line = ps->lineno, k;

    (void)section; /* always "": inih never sees our section headers */
    if (ps->err)
        return 0;
    if (!*key) {
        char *t = skip_blanks(ps->line);
        rtrim(t);
        fail(ps, line, -EINVAL, t, "missing key before '='");
        return 0;
    }
    switch (ps->sec) {
    case SEC_NONE:
        fail(ps, line, -EINVAL, key, "key outside of any section");
        return 0;
    case SEC_RLD:
        k = key_index(rld_keys, N_RLD_KEYS, key);
        if (k < 0) {
            fail(ps, line, -EINVAL, key, "unknown key in [rld]");
            return 0;
        }
        break;
    case SEC_LIMIT:
        k = key_index(limit_keys, N_LIMIT_KEYS, key);
        if (k < 0) {
            fail(ps, line, -EINVAL, key, "unknown key in [limit] (expected rate, burst, algorithm, "
                 "align, max_debt, scope, fallback, mode or concurrency; [template] also "
                 "max_keys, overflow)");
            return 0;
        }
        break;
    case SEC_REDIS:
        k = key_index(redis_keys, N_REDIS_KEYS, key);
        if (k < 0) {
            fail(ps, line, -EINVAL, key, "unknown key in [redis] (expected url, password_file, "
                 "username, connect_timeout, timeout, lease_period, key_prefix or host_id)");
            return 0;
        }
        break;
    case SEC_BREAKER:
        k = key_index(breaker_keys, N_BREAKER_KEYS, key);
        if (k < 0) {
            fail(ps, line, -EINVAL, key, "unknown key in [breaker] (expected failures, open_for, "
                 "probes, successes or probe_timeout)");
            return 0;
        }
        break;
    default:
        return 0;
    }
    if (ps->key_line[k]) {
        fail(ps, line, -EINVAL, key, "duplicate key (first at line %d)", ps->key_line[k]);
        return 0;
    }
    if (!*value) {
        fail(ps, line, -EINVAL, key, "empty value");
        return 0;
    }
    bool ok = ps->sec == SEC_RLD       ? rld_key(ps, k, value)
              : ps->sec == SEC_REDIS   ? redis_key(ps, k, value)
              : ps->sec == SEC_BREAKER ? breaker_key(ps, k, value)
                                       : limit_key(ps, k, value);
    ps->key_line[k] = line;
    return ok;
}

/* ---- input ---- */

/*
 * Next physical line into ps->line, line end removed: 1, 0 at the end, or -errno. A read
 * error is never taken for the end of the file (a reload would then delete every limit
 * after it): bounded reads, so a file of endless bytes cannot eat memory either; a line
 * longer than the buffer is kept as it fits and reported by the caller.
 */
static int next_line(struct parser *ps)
{
    size_t n;
    if (ps->fp) {
        size_t cap = RLDI_CONF_LINE_MAX + 8;
        if (ps->linecap < cap) {
            char *b = realloc(ps->line, cap);
            if (!b)
                return -ENOMEM;
            ps->line = b;
            ps->linecap = cap;
        }
        n = 0;
        int ch = EOF;
        while (n < cap - 1 && (ch = getc_unlocked(ps->fp)) != EOF) {
            ps->line[n++] = (char)ch;
            if (ch == '\n')
                break;
        }
        if (ch == EOF && ferror(ps->fp))
            return -(errno ? errno : EIO);
        if (n == 0)
            return 0;
        ps->line[n] = '\0';
    } else {
        if (!*ps->text)
            return 0;
        const char *nl = strchr(ps->text, '\n');
        n = nl ? (size_t)(nl - ps->text) + 1 : strlen(ps->text);
        if (n + 1 > ps->linecap) {
            char *b = realloc(ps->line, n + 1);
            if (!b)
                return -ENOMEM;
            ps->line = b;
            ps->linecap = n + 1;
        }
        memcpy(ps->line, ps->text, n);
        ps->line[n] = '\0';
        ps->text += n;
    }
    if (n > 0 && ps->line[n - 1] == '\n')
        n--;
    if (n > 0 && ps->line[n - 1] == '\r')
        n--;
    ps->line[n] = '\0';
    ps->linelen = n;
    return 1;
}

/* inih's fgets-like reader: exactly one physical line per call (see the top of the file). */
static char *reader(char *str, int num, void *stream)
{
    struct parser *ps = stream;

    if (ps->err)
        return NULL;
    int r = next_line(ps);
    if (r == 0)
        return NULL;
    if (r < 0) {
        fail(ps, 0, r, NULL, "%s", strerror(-r));
        return NULL;
    }
    ps->lineno++;
    if (ps->lineno == 1 && ps->linelen >= 3 && memcmp(ps->line, "\xef\xbb\xbf", 3) == 0) {
        ps->linelen -= 3; /* UTF-8 byte order mark */
        memmove(ps->line, ps->line + 3, ps->linelen + 1);
    }
    if (strlen(ps->line) != ps->linelen) {
        fail(ps, ps->lineno, -EINVAL, NULL, "NUL byte in line");
        return NULL;
    }
    /* inih needs room for "\r\n\0" (ini.h: INI_MAX_LINE) */
    if (num < 3 || ps->linelen > (size_t)num - 3) {
        char *t = skip_blanks(ps->line);
        fail(ps, ps->lineno, -EINVAL, t, "line longer than %d bytes", num - 3);
        return NULL;
    }
    char *p = skip_blanks(ps->line);
    if (*p == '[' && strlen(p) <= RLDI_CONF_LINE_MAX) {
        char copy[RLDI_CONF_LINE_MAX + 1];
        strcpy(copy, p); /* section_header() cuts its argument; keep ps->line intact */
        if (!section_header(ps, copy))
            return NULL;
        strcpy(str, "\n");
        return str;
    }
    memcpy(str, ps->line, ps->linelen);
    str[ps->linelen] = '\n';
    str[ps->linelen + 1] = '\0';
    return str;
}

/* ---- entry points ---- */

struct ini_knobs {
    bool multiline, bom, inline_comments, use_stack, stop_on_first_error, no_value;
    char *start_prefixes, *inline_prefixes;
    int max_line;
};

static void knobs_save(struct ini_knobs *k)
{
    k->multiline = ini_allow_multiline;
    k->bom = ini_allow_bom;
    k->inline_comments = ini_allow_inline_comments;
    k->use_stack = ini_use_stack;
    k->stop_on_first_error = ini_stop_on_first_error;
    k->no_value = ini_allow_no_value;
    k->start_prefixes = ini_start_comment_prefixes;
    k->inline_prefixes = ini_inline_comment_prefixes;
    k->max_line = ini_max_line;
}

static void knobs_restore(const struct ini_knobs *k)
{
    ini_allow_multiline = k->multiline;
    ini_allow_bom = k->bom;
    ini_allow_inline_comments = k->inline_comments;
    ini_use_stack = k->use_stack;
    ini_stop_on_first_error = k->stop_on_first_error;
    ini_allow_no_value = k->no_value;
    ini_start_comment_prefixes = k->start_prefixes;
    ini_inline_comment_prefixes = k->inline_prefixes;
    ini_max_line = k->max_line;
}

static int run(struct parser *ps, rldi_config *out)
{
    static char comment_prefixes[] = ";#";
    rldi_config *c = calloc(1, sizeof *c); /* 4 KiB path: not on the stack */
    struct ini_knobs saved;

    if (!c) {
        fail(ps, 0, -ENOMEM, NULL, "out of memory");
        return ps->err;
    }
    snprintf(c->path, sizeof c->path, "%s", ps->name);
    c->max_limits = RLDI_CONF_DEFAULT_MAX_LIMITS;
    c->max_waiters = RLDI_CONF_DEFAULT_MAX_WAITERS;
    c->max_conns_per_uid = RLDI_CONF_DEFAULT_CONNS_PER_UID;
    c->max_waits_per_uid = RLDI_CONF_DEFAULT_WAITS_PER_UID;
    strcpy(c->log_level, "info");
    ps->cfg = c;

    knobs_save(&saved);
    ini_allow_multiline = false;  /* an indented line is a line, not a continuation */
    ini_allow_bom = false;        /* the reader strips it */
    ini_allow_inline_comments = true;
    ini_start_comment_prefixes = comment_prefixes;
    ini_inline_comment_prefixes = comment_prefixes;
    ini_use_stack = true;
    ini_max_line = RLDI_CONF_LINE_MAX + 3;
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;
    int ret = ini_parse_stream(reader, ps, handler, ps);
    knobs_restore(&saved);

    if (!ps->err) {
        if (ret > 0) {
            /* inih stopped at once, so ps->line is still the offending line */
            char *t = skip_blanks(ps->line);
            rtrim(t);
            fail(ps, ret, -EINVAL, ret == ps->lineno ? t : NULL,
                 "expected 'key = value' or '[section]'");
        } else if (ret == -2) {
            fail(ps, 0, -ENOMEM, NULL, "out of memory");
        } else if (ret < 0) {
            fail(ps, 0, -EIO, NULL, "parser error %d", ret);
        } else if (end_section(ps) && !ps->max_limits_line && c->nlimits > c->max_limits) {
            const rldi_limitdef *l = &c->limits[c->max_limits];
            fail(ps, l->line, -EINVAL, l->name, "more limits than max_limits (%u, the default)",
                 (unsigned)c->max_limits);
        }
        for (size_t i = 0; !ps->err && i < c->nlimits; i++) {
            const rldi_limitdef *l = &c->limits[i];
            if (l->scope != RLDI_SCOPE_GLOBAL)
                continue;
            c->nglobal++;
            if (!c->redis.set)
                fail(ps, l->line, -EINVAL, l->name, "scope = global needs a [redis] section");
        }
    }
    free(ps->line);
    if (ps->err) {
        free(ps->index);
        free(c->limits);
        free(c);
        return ps->err;
    }
    c->index = ps->index;       /* rldi_config_find's */
    c->index_size = ps->index_size;
    *out = *c;
    free(c);
    return 0;
}

int rldi_config_parse(const char *text, const char *name, rldi_config *out, char *err,
                      size_t errlen)
{
    struct parser ps = {.name = name ? name : "<config>", .text = text ? text : "",
                        .errbuf = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    return run(&ps, out);
}

int rldi_config_load(const char *path, rldi_config *out, char *err, size_t errlen)
{
    struct parser ps = {.name = path ? path : "", .errbuf = err, .errlen = errlen};
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path) {
        fail(&ps, 0, -ENOENT, NULL, "%s", strerror(ENOENT));
        return ps.err;
    }
    if (strlen(path) >= sizeof out->path) {
        fail(&ps, 0, -ENAMETOOLONG, NULL, "%s", strerror(ENAMETOOLONG));
        return ps.err;
    }
    ps.fp = fopen(path, "re");
    if (!ps.fp) {
        int e = errno;
        fail(&ps, 0, -e, NULL, "%s", strerror(e));
        return ps.err;
    }
    /* a regular file of sane size: a link to /dev/zero or a FIFO must change nothing */
    struct stat st;
    if (fstat(fileno(ps.fp), &st) < 0)
        fail(&ps, 0, -errno, NULL, "%s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        fail(&ps, 0, -EISDIR, NULL, "%s", strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        fail(&ps, 0, -EINVAL, NULL, "not a regular file (a device, a FIFO?): refusing to read it");
    else if (st.st_size > RLDI_CONF_SIZE_MAX)
        fail(&ps, 0, -EFBIG, NULL, "larger than %d MiB", RLDI_CONF_SIZE_MAX >> 20);
    if (ps.err) {
        fclose(ps.fp);
        return ps.err;
    }
    int rc = run(&ps, out);
    fclose(ps.fp);
    return rc;
}

void rldi_config_free(rldi_config *c)
{
    if (!c)
        return;
    free(c->limits);
    free(c->index);
    memset(c, 0, sizeof *c);
}

const rldi_limitdef *rldi_config_find(const rldi_config *c, const char *name)
{
    if (!c || !name || !c->index)
        return NULL;
    size_t mask = c->index_size - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t v = c->index[i];
        if (v == 0)
            return NULL;
        if (strcmp(c->limits[v - 1].name, name) == 0)
            return &c->limits[v - 1];
    }
}
