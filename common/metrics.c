/*
 * metrics.c - the Prometheus text exposition of an instance (see metrics.h).
 *
 * A scrape is a little state machine: each step makes one unit (a family's # HELP and
 * # TYPE, or one sample) into a line buffer; a unit that does not fit what is left of the
 * caller's buffer is made again on the next call, from the state saved before it.
 */
#include "metrics.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "breaker.h"
#include "limitdef.h"   /* rldi_algo_name */
#include "keys.h"
#include "limitstat.h"

enum { P_UP, P_REDIS, P_INSTANCE, P_LIMITS, P_INFO, P_TEMPLATES, P_TINFO, P_EXTRA, P_DONE };

/* ---- formatting -------------------------------------------------------------------------- */

typedef struct line {
    char   buf[RLDI_METRICS_LINE_MAX];
    size_t len;
} line;

static void put(line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n < sizeof(l->buf) - l->len ? (size_t)n : sizeof(l->buf) - l->len - 1;
}

/* A label value escaped as the format says: backslash, double quote and newline. */
static void put_label(line *l, const char *v)
{
    for (; *v && l->len + 2 < sizeof(l->buf); v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            l->buf[l->len++] = '\\';
            l->buf[l->len++] = *v == '\n' ? 'n' : *v;
        } else {
            l->buf[l->len++] = *v;
        }
    }
}

static void family(line *l, const char *name, const char *type, const char *help)
{
    put(l, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: NAME{rld_instance="I"[,limit="L"]} VALUE. */
static void sample(line *l, const char *name, const char *inst, const char *limit,
                   const char *value)
{
    put(l, "%s{rld_instance=\"", name);
    put_label(l, inst);
    if (limit) {
        put(l, "\",limit=\"");
        put_label(l, limit);
    }
    put(l, "\"} %s\n", value);
}

static const char *u64s(char *buf, size_t len, uint64_t v)
{
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* The shortest of %.15g..%.17g that reads back exactly (0.1, not 0.10000000000000001);
 * Go's ParseFloat, Prometheus' reader, accepts these and "+Inf". */
static const char *dbls(char *buf, size_t len, double v)
{
    if (isinf(v)) {
        snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
        return buf;
    }
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* ---- the per-limit families ----------------------------------------------------------------- */

enum { M_ADMITTED, M_DENIED, M_REFUNDED, M_ROLLED_BACK, M_DEBITED, M_REMAINING, M_BURST,
       M_RATE, M_WAITERS, M_RETRY_AFTER, M_DEBT, M_COUNT };

static const struct {
    const char *name, *type, *help;
} per_limit[M_COUNT] = {
    { "rld_limit_admitted_tokens_total", "counter",
      "Tokens admitted and kept since the limit was created (published by clients in batches)." },
    { "rld_limit_denied_total", "counter", "Calls denied by the limit since it was created." },
    { "rld_limit_refunded_tokens_total", "counter",
      "Tokens given back after admission (rld_refund, granted waits cancelled)." },
    { "rld_limit_rolled_back_tokens_total", "counter",
      "Tokens taken and put back by all-or-nothing calls that failed (never admitted)." },
    { "rld_limit_debited_tokens_total", "counter",
      "Tokens taken without asking (rld_debit), not counted as admitted." },
    { "rld_limit_remaining_tokens", "gauge",
      "Tokens available now (+Inf when the limit is unlimited)." },
    { "rld_limit_burst_tokens", "gauge",
      "Tokens available at once when full; a window limit's count (+Inf when unlimited)." },
    { "rld_limit_rate_tokens_per_second", "gauge",
      "Configured refill rate in tokens per second (+Inf when unlimited)." },
    { "rld_limit_waiters", "gauge", "Callers queued at the daemon for the limit." },
    { "rld_limit_retry_after_seconds", "gauge",
      "Seconds until a call of cost 1 fits, behind queued callers (0 when one fits now)." },
    { "rld_limit_debt_seconds", "gauge",
      "Seconds until the limit's debt is paid back (0 when not in debt); empty then." },
};

const char *rldi_metrics_family_name(int i)
{
    return i >= 0 && i < M_COUNT ? per_limit[i].name : NULL;
}

static const char *value_of(char *buf, size_t len, const rldi_limit_stat *st, int m)
{
    const rldi_limit_counts *n = &st->counts;
    switch (m) {
    case M_ADMITTED:    return u64s(buf, len, n->admitted);
    case M_DENIED:      return u64s(buf, len, n->denied);
    case M_REFUNDED:    return u64s(buf, len, n->refunded);
    case M_ROLLED_BACK: return u64s(buf, len, n->rolled_back);
    case M_DEBITED:     return u64s(buf, len, n->debited);
    case M_WAITERS:     return u64s(buf, len, st->waiters);
    case M_RETRY_AFTER: return dbls(buf, len, (double)st->retry_after_ns / 1e9);
    case M_DEBT:        return dbls(buf, len, (double)st->debt_ns / 1e9);
    default: break;
    }
    if (st->unlimited || st->conf.rate_count == 0 || st->conf.rate_period_ns == 0)
        return "+Inf";
    if (m == M_REMAINING)
        return u64s(buf, len, st->remaining);
    if (m == M_BURST)
        return u64s(buf, len, st->conf.burst);
    return dbls(buf, len, (double)st->conf.rate_count * 1e9 / (double)st->conf.rate_period_ns);
}

/* ---- the per-template families (keyed limits: the table's figures, never a sample per
 * key, whose number is unbounded) --------------------------------------------------------- */

enum { T_KEYS, T_KEYS_MAX, T_PLACES, T_EVICTIONS, T_OVERFLOWS, T_ADMITTED, T_DENIED, T_COUNT };

static const struct {
    const char *name, *type, *help;
} per_template[T_COUNT] = {
    { "rld_template_keys", "gauge",
      "Keys live in the template's table now (approximate while keys come and go)." },
    { "rld_template_keys_max", "gauge", "The template's max_keys: the keys its table holds." },
    { "rld_template_places", "gauge",
      "Entries of the template's table (max_keys and room to place them)." },
    { "rld_template_evictions_total", "counter",
      "Idle keys (full again, nobody waiting) reclaimed from the template's table." },
    { "rld_template_overflows_total", "counter",
      "New keys that found the template's table full: refused (overflow = deny) or let "
      "through without a bucket (overflow = allow)." },
    { "rld_template_admitted_tokens_total", "counter",
      "Tokens admitted by the template's keys since it was created (published in batches)." },
    { "rld_template_denied_total", "counter",
      "Calls denied by the template's keys since it was created." },
};

/* A template's figures: false when SLOT is not a template (or went meanwhile). */
static bool template_of(const rldi_seg *seg, uint32_t slot, uint32_t gen, rldi_limit_conf *conf,
                        rldi_table *t)
{
    return rldi_limit_conf_read(seg, slot, gen, conf) == 0 &&
           conf->kind == RLDI_KIND_TEMPLATE && rldi_table_of(seg, slot, gen, t) == 0;
}

static const char *tvalue_of(char *buf, size_t len, const rldi_seg *seg, uint32_t slot,
                             const rldi_table *t, int m)
{
    uint64_t places = (uint64_t)t->nbuckets * RLDI_KEY_BUCKET, live;
    rldi_limit_counts n;
    switch (m) {
    case T_KEYS:
        live = rldi_load_relaxed(&t->rec->live);
        return u64s(buf, len, live < places ? live : places);   /* a relaxed count: never above */
    case T_KEYS_MAX:   return u64s(buf, len, rldi_load_relaxed(&t->rec->max_keys));
    case T_PLACES:     return u64s(buf, len, places);
    case T_EVICTIONS:  return u64s(buf, len, rldi_load_relaxed(&t->rec->evictions));
    case T_OVERFLOWS:  return u64s(buf, len, rldi_load_relaxed(&t->rec->overflows));
    default:
        rldi_limit_counts_read(seg, slot, &n);
        return u64s(buf, len, m == T_ADMITTED ? n.admitted : n.denied);
    }
}

/* ---- the families of some limits only (shadow, leases) and of the breakers ------------ */

enum { X_SHADOW, X_LEASES_MAX, X_LEASES_HELD, X_LEASES_RECLAIMED, X_BRK_STATE, X_BRK_OPENS,
       X_BRK_CLOSES, X_BRK_ADMITTED, X_BRK_DENIED, X_COUNT };

static const struct {
    const char *name, *type, *help;
} per_other[X_COUNT] = {
    { "rld_limit_shadow_denied_total", "counter",
      "Calls a limit in mode = shadow admitted that it would have denied (wraps at 2^32)." },
    { "rld_limit_leases_max", "gauge", "Leases a concurrency limit allows at once." },
    { "rld_limit_leases_held", "gauge", "Leases of a concurrency limit held now." },
    { "rld_limit_leases_reclaimed_total", "counter",
      "Leases given back because their process died (since the daemon started)." },
    { "rld_breaker_state", "gauge", "A breaker's state: 0 closed, 1 open, 2 half-open." },
    { "rld_breaker_opens_total", "counter", "Times a breaker opened." },
    { "rld_breaker_closes_total", "counter", "Times a breaker closed (after half-open)." },
    { "rld_breaker_admitted_total", "counter", "Calls a breaker let through." },
    { "rld_breaker_denied_total", "counter", "Calls a breaker refused." },
};

/* Family X's sample of slot (SLOT, GEN) into *V, its label's name and value into *LABEL and
 * NAME: false when the slot has none (not of its kind, deleted meanwhile). */
static bool other_of(const rldi_metrics *m, int x, uint32_t slot, uint32_t gen, uint64_t now,
                     rldi_limit_conf *conf, const char **label, uint64_t *v)
{
    if (rldi_limit_conf_read(m->seg, slot, gen, conf) < 0)
        return false;
    *label = x >= X_BRK_STATE ? "breaker" : "limit";
    if (x >= X_BRK_STATE) {
        rldi_brk_view b;
        if (conf->kind != RLDI_KIND_BREAKER ||
            rldi_breaker_read(m->seg, (rldi_handle){ slot, gen }, now, &b) < 0)
            return false;
        *v = x == X_BRK_STATE ? b.state : x == X_BRK_OPENS ? b.opens : x == X_BRK_CLOSES
             ? b.closes : x == X_BRK_ADMITTED ? b.admitted : b.denied;
        return true;
    }
    if (conf->kind != RLDI_KIND_LIMIT)
        return false;
    if (x == X_SHADOW) {
        rldi_limit_counts n;
        rldi_limit_counts_read(m->seg, slot, &n);
        *v = n.shadowed;
        return conf->shadow;
    }
    if (!conf->concurrency)
        return false;
    if (x == X_LEASES_MAX) {
        *v = conf->concurrency;
        return true;
    }
    uint64_t held, reclaimed;
    if (!m->leases || m->leases(m->leases_arg, slot, gen, &held, &reclaimed) < 0)
        return false;
    *v = x == X_LEASES_HELD ? held : reclaimed;
    return true;
}

static bool selected(const rldi_metrics *m, const char *name)
{
    if (m->nglobs == 0)
        return true;
    for (int i = 0; i < m->nglobs; i++)
        if (fnmatch(m->globs[i], name, 0) == 0)
            return true;
    return false;
}

/* ---- the scrape ------------------------------------------------------------------------------ */

void rldi_metrics_init(rldi_metrics *m, const rldi_seg *seg, const char *instance, bool up,
                       const rldi_metrics_redis *redis, const char *const *globs, int nglobs)
{
    memset(m, 0, sizeof(*m));
    m->seg = seg && seg->slot_count ? seg : NULL;
    snprintf(m->instance, sizeof(m->instance), "%s", instance);
    m->up = up;
    if (redis) {
        m->have_redis = true;
        m->redis = *redis;
    }
    m->globs = globs;
    m->nglobs = nglobs;
    m->part = P_UP;
}

void rldi_metrics_set_leases(rldi_metrics *m, rldi_metrics_leases_fn fn, void *arg)
{
    m->leases = fn;
    m->leases_arg = arg;
}

/* The daemon's Redis figures (global limits), one family per step (FAMILY counts them). */
static bool redis_step(rldi_metrics *m, line *l)
{
    const rldi_metrics_redis *r = &m->redis;
    char v[64];
    switch (m->family++) {
    case 0:
        family(l, "rld_redis_up", "gauge",
               "Whether Redis answers the daemon's lease calls (1) or its global limits are on "
               "their fallback (0).");
        sample(l, "rld_redis_up", m->instance, NULL, r->up ? "1" : "0");
        return true;
    case 1:
        family(l, "rld_redis_rtt_seconds", "gauge",
               "Round trip of a lease call to Redis (moving average).");
        sample(l, "rld_redis_rtt_seconds", m->instance, NULL,
               dbls(v, sizeof(v), (double)r->rtt_ns / 1e9));
        return true;
    case 2:
        family(l, "rld_redis_calls_total", "counter",
               "Calls to Redis for global limits (leases and returns).");
        sample(l, "rld_redis_calls_total", m->instance, NULL, u64s(v, sizeof(v), r->calls));
        return true;
    case 3:
        family(l, "rld_redis_errors_total", "counter",
               "Failed Redis calls and connection attempts.");
        sample(l, "rld_redis_errors_total", m->instance, NULL, u64s(v, sizeof(v), r->errors));
        return true;
    case 4:
        family(l, "rld_redis_reconnects_total", "counter", "Reconnections to Redis.");
        sample(l, "rld_redis_reconnects_total", m->instance, NULL,
               u64s(v, sizeof(v), r->reconnects));
        return true;
    case 5:
        family(l, "rld_global_fallback_seconds_total", "counter",
               "Time Redis was unreachable, global limits on their fallback.");
        sample(l, "rld_global_fallback_seconds_total", m->instance, NULL,
               dbls(v, sizeof(v), (double)r->fallback_ns / 1e9));
        return true;
    case 6:
        family(l, "rld_global_limits", "gauge", "Limits with scope = global.");
        sample(l, "rld_global_limits", m->instance, NULL, u64s(v, sizeof(v), r->global_limits));
        return true;
    default:
        return false;
    }
}

/* Slots of KIND in the segment (templates and breakers are slots too: the header's
 * limit_count counts them). */
static uint64_t of_kind(const rldi_seg *seg, uint32_t kind)
{
    uint64_t n = 0;
    uint32_t cursor = 0, slot, gen;
    while (rldi_seg_next(seg, &cursor, &slot, &gen) == 0)
        n += rldi_load_relaxed(&seg->meta[slot].kind) == kind;
    return n;
}

/* The instance's own gauges, one family per step (FAMILY counts them). */
static bool instance_step(rldi_metrics *m, line *l, uint64_t now)
{
    const rldi_shm_header *h = m->seg->hdr;
    char v[64];
    switch (m->family++) {
    case 0:
        family(l, "rld_daemon_attached", "gauge",
               "Whether a daemon is attached to the instance's segment (1) or not (0).");
        sample(l, "rld_daemon_attached", m->instance, NULL,
               rldi_load_relaxed(&h->daemon_pid) ? "1" : "0");
        return true;
    case 1: {
        uint64_t beat = rldi_load_relaxed(&h->heartbeat_ns);
        family(l, "rld_daemon_heartbeat_age_seconds", "gauge",
               "Seconds since the daemon last marked the segment alive (about 1 while it runs).");
        sample(l, "rld_daemon_heartbeat_age_seconds", m->instance, NULL,
               dbls(v, sizeof(v), now > beat ? (double)(now - beat) / 1e9 : 0.0));
        return true;
    }
    case 2:
        family(l, "rld_limits", "gauge", "Limits defined in the instance (templates and breakers apart).");
        {
            (void)h;
            sample(l, "rld_limits", m->instance, NULL,
                   u64s(v, sizeof(v), of_kind(m->seg, RLDI_KIND_LIMIT)));
        }
        return true;
    case 3:
        family(l, "rld_limits_max", "gauge",
               "Limits the instance's segment can hold ([rld] max_limits).");
        sample(l, "rld_limits_max", m->instance, NULL, u64s(v, sizeof(v), m->seg->slot_count));
        return true;
    case 4:
        family(l, "rld_templates", "gauge",
               "Templates (keyed limits) defined in the instance; they share max_limits with "
               "the limits.");
        sample(l, "rld_templates", m->instance, NULL, u64s(v, sizeof(v), of_kind(m->seg, RLDI_KIND_TEMPLATE)));
        return true;
    default:
        return false;
    }
}

/* One unit into L (maybe nothing: a slot skipped). False once everything was written. */
static bool step(rldi_metrics *m, line *l, uint64_t now)
{
    switch (m->part) {
    case P_UP:
        family(l, "rld_up", "gauge", "Whether the rld daemon answers on its socket (1) or not (0).");
        sample(l, "rld_up", m->instance, NULL, m->up ? "1" : "0");
        m->part = m->have_redis ? P_REDIS : m->seg ? P_INSTANCE : P_DONE;
        m->family = 0;
        return true;
    case P_REDIS:
        if (redis_step(m, l))
            return true;
        m->part = m->seg ? P_INSTANCE : P_DONE;
        m->family = 0;
        return true;
    case P_INSTANCE:
        if (instance_step(m, l, now))
            return true;
        m->part = P_LIMITS;
        m->family = 0;
        m->cursor = 0;
        m->opened = false;
        return true;
    case P_LIMITS: {
        uint32_t slot, gen;
        if (rldi_seg_next(m->seg, &m->cursor, &slot, &gen) < 0) {
            if (++m->family == M_COUNT)
                m->part = P_INFO;
            m->cursor = 0;
            m->opened = false;
            return true;
        }
        rldi_limit_stat st;
        if (rldi_limit_stat_read(m->seg, slot, gen, now, &st) < 0 || !selected(m, st.conf.name) ||
            st.conf.kind != RLDI_KIND_LIMIT)
            return true;                /* deleted meanwhile, not asked for, or not a limit */
        if (!m->opened) {
            family(l, per_limit[m->family].name, per_limit[m->family].type,
                   per_limit[m->family].help);
            m->opened = true;
            m->cursor = slot;           /* its sample is the next unit */
            return true;
        }
        char v[64];
        sample(l, per_limit[m->family].name, m->instance, st.conf.name,
               value_of(v, sizeof(v), &st, m->family));
        return true;
    }
    case P_INFO: {
        /* an info metric: join on it to tell window limits from GCRA ones */
        uint32_t slot, gen;
        if (rldi_seg_next(m->seg, &m->cursor, &slot, &gen) < 0) {
            m->part = P_TEMPLATES;
            m->family = 0;
            m->cursor = 0;
            m->opened = false;
            return true;
        }
        rldi_limit_conf conf;
        if (rldi_limit_conf_read(m->seg, slot, gen, &conf) < 0 || !selected(m, conf.name) ||
            conf.kind != RLDI_KIND_LIMIT)
            return true;
        if (!m->opened) {
            family(l, "rld_limit_info", "gauge",
                   "Always 1; the label algorithm is the limit's: gcra, sliding or fixed.");
            m->opened = true;
            m->cursor = slot;
            return true;
        }
        put(l, "rld_limit_info{rld_instance=\"");
        put_label(l, m->instance);
        put(l, "\",limit=\"");
        put_label(l, conf.name);
        put(l, "\",algorithm=\"%s\"} 1\n", rldi_algo_name(conf.algo));
        return true;
    }
    case P_TEMPLATES:
    case P_TINFO: {
        uint32_t slot, gen;
        if (rldi_seg_next(m->seg, &m->cursor, &slot, &gen) < 0) {
            if (m->part == P_TINFO || ++m->family == T_COUNT) {
                m->part = m->part == P_TINFO ? P_EXTRA : P_TINFO;
                m->family = 0;
            }
            m->cursor = 0;
            m->opened = false;
            return true;
        }
        rldi_limit_conf conf;
        rldi_table t;
        if (!template_of(m->seg, slot, gen, &conf, &t) || !selected(m, conf.name))
            return true;
        if (!m->opened) {
            if (m->part == P_TINFO)
                family(l, "rld_template_info", "gauge",
                       "Always 1; the labels are the algorithm of each of the template's keys "
                       "(gcra, sliding or fixed) and its overflow policy (deny or allow).");
            else
                family(l, per_template[m->family].name, per_template[m->family].type,
                       per_template[m->family].help);
            m->opened = true;
            m->cursor = slot;
            return true;
        }
        if (m->part == P_TINFO) {
            put(l, "rld_template_info{rld_instance=\"");
            put_label(l, m->instance);
            put(l, "\",template=\"");
            put_label(l, conf.name);
            put(l, "\",algorithm=\"%s\",overflow=\"%s\"} 1\n", rldi_algo_name(conf.algo),
                t.flags & RLDI_TMPL_OVERFLOW_ALLOW ? "allow" : "deny");
            return true;
        }
        char v[64];
        put(l, "%s{rld_instance=\"", per_template[m->family].name);
        put_label(l, m->instance);
        put(l, "\",template=\"");
        put_label(l, conf.name);
        put(l, "\"} %s\n", tvalue_of(v, sizeof(v), m->seg, slot, &t, m->family));
        return true;
    }
    case P_EXTRA: {
        uint32_t slot, gen;
        if (rldi_seg_next(m->seg, &m->cursor, &slot, &gen) < 0) {
            if (++m->family == X_COUNT)
                m->part = P_DONE;
            m->cursor = 0;
            m->opened = false;
            return true;
        }
        rldi_limit_conf conf;
        const char *label;
        uint64_t v;
        if (!other_of(m, m->family, slot, gen, now, &conf, &label, &v) || !selected(m, conf.name))
            return true;
        if (!m->opened) {
            family(l, per_other[m->family].name, per_other[m->family].type,
                   per_other[m->family].help);
            m->opened = true;
            m->cursor = slot;
            return true;
        }
        put(l, "%s{rld_instance=\"", per_other[m->family].name);
        put_label(l, m->instance);
        put(l, "\",%s=\"", label);
        put_label(l, conf.name);
        put(l, "\"} %llu\n", (unsigned long long)v);
        return true;
    }
    default:
        return false;
    }
}

size_t rldi_metrics_next(rldi_metrics *m, char *buf, size_t cap, uint64_t now_ns)
{
    size_t n = 0;
    for (;;) {
        rldi_metrics saved = *m;
        line l;
        l.len = 0;
        if (!step(m, &l, now_ns))
            break;
        if (l.len > cap - n) {
            *m = saved;                 /* made again next time */
            break;
        }
        memcpy(buf + n, l.buf, l.len);
        n += l.len;
    }
    return n;
}
