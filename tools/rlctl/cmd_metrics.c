/*
 * cmd_metrics.c - `rlctl metrics`: every limit in the Prometheus text exposition format
 * (version 0.0.4), for node_exporter's textfile collector:
 *
 *   rlctl metrics > /var/lib/node_exporter/rld.prom.$$ && mv rld.prom.$$ rld.prom
 *
 * One family per metric, each with # HELP and # TYPE, its samples together (the format
 * requires it). Labels: rld_instance (not "instance", which Prometheus reserves for the
 * scrape target) and limit. Values are read from the segment, so they are there while the
 * daemon is down; rld_up says whether the daemon answers on its socket. --match GLOB keeps
 * the per-limit samples of the matching limits only (an instance of hundreds of limits
 * gives thousands of lines); the instance-wide gauges stay whole.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limitdef.h"
#include "clock.h"
#include "rlctl.h"

/* A label value escaped as the format says: backslash, double quote and newline. */
static void put_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            fputs("\\\\", f);
        else if (*v == '"')
            fputs("\\\"", f);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: NAME{rld_instance="I"[,limit="L"]} VALUE. */
static void sample(FILE *f, const char *name, const char *inst, const char *limit,
                   const char *value)
{
    fprintf(f, "%s{rld_instance=\"", name);
    put_label(f, inst);
    if (limit) {
        fputs("\",limit=\"", f);
        put_label(f, limit);
    }
    fprintf(f, "\"} %s\n", value);
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

enum { M_ADMITTED, M_DENIED, M_REMAINING, M_BURST, M_RATE, M_WAITERS, M_DEBT, M_COUNT };

static const struct {
    const char *name, *type, *help;
} per_limit[M_COUNT] = {
    { "rld_limit_admitted_tokens_total", "counter",
      "Tokens admitted by the limit since it was created (published by clients in batches)." },
    { "rld_limit_denied_total", "counter", "Calls denied by the limit since it was created." },
    { "rld_limit_remaining_tokens", "gauge",
      "Tokens available now (+Inf when the limit is unlimited)." },
    { "rld_limit_burst_tokens", "gauge",
      "Tokens available at once when full; a window limit's count (+Inf when unlimited)." },
    { "rld_limit_rate_tokens_per_second", "gauge",
      "Configured refill rate in tokens per second (+Inf when unlimited)." },
    { "rld_limit_waiters", "gauge", "Callers queued at the daemon for the limit." },
    { "rld_limit_debt_seconds", "gauge",
      "Seconds until a single token fits again, while the limit is in debt (else 0)." },
};

static const char *value_of(char *buf, size_t len, const rlctl_limit *l, int m)
{
    switch (m) {
    case M_ADMITTED: return u64s(buf, len, l->info.admitted);
    case M_DENIED:   return u64s(buf, len, l->info.denied);
    case M_WAITERS:  return u64s(buf, len, l->info.waiters);
    case M_DEBT:     return dbls(buf, len, (double)l->peek.retry_after_ns / 1e9);
    default: break;
    }
    if (l->unlimited)
        return "+Inf";
    if (m == M_REMAINING)
        return u64s(buf, len, l->peek.remaining);
    if (m == M_BURST)
        return u64s(buf, len, l->info.burst);
    return dbls(buf, len, rlctl_rate_per_s(&l->info));
}

/* The daemon's Redis figures (global limits), when it answers and has any. */
static void redis_metrics(rlctl_ctx *ctx, const char *inst)
{
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    Rld__V1__Reply *rep;
    if (rlctl_call(ctx, &req, RLCTL_CALL_MS, &rep) != 0)
        return;
    const Rld__V1__StatsReply *s = rep->body_case == RLD__V1__REPLY__BODY_STATS ? rep->stats : NULL;
    char buf[64];
    if (s && s->redis && s->redis[0]) {
        family(stdout, "rld_redis_up", "gauge",
               "Whether Redis answers the daemon's lease calls (1) or its global limits are on "
               "their fallback (0).");
        sample(stdout, "rld_redis_up", inst, NULL, strcmp(s->redis, "up") == 0 ? "1" : "0");
        family(stdout, "rld_redis_rtt_seconds", "gauge",
               "Round trip of a lease call to Redis (moving average).");
        sample(stdout, "rld_redis_rtt_seconds", inst, NULL,
               dbls(buf, sizeof(buf), (double)s->redis_rtt_ns / 1e9));
        family(stdout, "rld_redis_calls_total", "counter",
               "Calls to Redis for global limits (leases and returns).");
        sample(stdout, "rld_redis_calls_total", inst, NULL, u64s(buf, sizeof(buf), s->lease_calls));
        family(stdout, "rld_redis_errors_total", "counter",
               "Failed Redis calls and connection attempts.");
        sample(stdout, "rld_redis_errors_total", inst, NULL, u64s(buf, sizeof(buf), s->redis_errors));
        family(stdout, "rld_redis_reconnects_total", "counter", "Reconnections to Redis.");
        sample(stdout, "rld_redis_reconnects_total", inst, NULL,
               u64s(buf, sizeof(buf), s->redis_reconnects));
        family(stdout, "rld_global_fallback_seconds_total", "counter",
               "Time Redis was unreachable, global limits on their fallback.");
        sample(stdout, "rld_global_fallback_seconds_total", inst, NULL,
               dbls(buf, sizeof(buf), (double)s->fallback_ns / 1e9));
        family(stdout, "rld_global_limits", "gauge", "Limits with scope = global.");
        sample(stdout, "rld_global_limits", inst, NULL, u64s(buf, sizeof(buf), s->global_limits));
    }
    rld__v1__reply__free_unpacked(rep, NULL);
}

static int check_metrics(rlctl_ctx *ctx)
{
    if (!ctx->optv[0])
        return 0;
    return rlctl_select(ctx, (const char *const *)&ctx->optv[0], 1);
}

static int cmd_metrics(rlctl_ctx *ctx)
{
    const char *inst = ctx->paths.instance;
    bool up = rlctl_connect(ctx, 1000, true) == 0;
    char buf[64];
    /* rld_up first and always, so an alert on it works even with no segment at all. */
    family(stdout, "rld_up", "gauge",
           "Whether the rld daemon answers on its socket (1) or not (0).");
    sample(stdout, "rld_up", inst, NULL, up ? "1" : "0");
    if (up)
        redis_metrics(ctx, inst);
    rlctl_limit *v;
    size_t n;
    rlctl_seg_info si;
    int r = rlctl_snapshot(ctx, &v, &n, &si);
    if (r != 0)
        return r;
    family(stdout, "rld_daemon_attached", "gauge",
           "Whether a daemon is attached to the instance's segment (1) or not (0).");
    sample(stdout, "rld_daemon_attached", inst, NULL, si.daemon_pid ? "1" : "0");
    uint64_t now = rldi_mono_ns();
    family(stdout, "rld_daemon_heartbeat_age_seconds", "gauge",
           "Seconds since the daemon last marked the segment alive (about 1 while it runs).");
    sample(stdout, "rld_daemon_heartbeat_age_seconds", inst, NULL,
           dbls(buf, sizeof(buf), now > si.heartbeat_ns ? (double)(now - si.heartbeat_ns) / 1e9
                                                        : 0.0));
    family(stdout, "rld_limits", "gauge", "Limits defined in the instance.");
    sample(stdout, "rld_limits", inst, NULL, u64s(buf, sizeof(buf), si.limits));
    family(stdout, "rld_limits_max", "gauge",
           "Limits the instance's segment can hold ([rld] max_limits).");
    sample(stdout, "rld_limits_max", inst, NULL, u64s(buf, sizeof(buf), si.slot_count));
    for (int m = 0; m < M_COUNT && n > 0; m++) {
        family(stdout, per_limit[m].name, per_limit[m].type, per_limit[m].help);
        for (size_t i = 0; i < n; i++)
            sample(stdout, per_limit[m].name, inst, v[i].info.name,
                   value_of(buf, sizeof(buf), &v[i], m));
    }
    if (n > 0) {
        /* an info metric: join on it to tell window limits from GCRA ones */
        family(stdout, "rld_limit_info", "gauge",
               "Always 1; the label algorithm is the limit's: gcra, sliding or fixed.");
        for (size_t i = 0; i < n; i++) {
            fputs("rld_limit_info{rld_instance=\"", stdout);
            put_label(stdout, inst);
            fputs("\",limit=\"", stdout);
            put_label(stdout, v[i].info.name);
            printf("\",algorithm=\"%s\"} 1\n", rldi_algo_name(v[i].info.algorithm));
        }
    }
    free(v);
    rlctl_upstream_metrics(ctx, up);     /* breakers, shadow, leases: cmd_upstream.c */
    return RLCTL_EXIT_OK;
}

static const rlctl_opt metrics_opts[] = {
    { "match", "GLOB", "only the limits whose names match (fnmatch(3), e.g. 'llm.*')" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_metrics = {
    .name = "metrics", .args = "",
    .summary = "Prometheus text format, for node_exporter",
    .help = "Metrics: rld_up, rld_daemon_attached, rld_daemon_heartbeat_age_seconds,\n"
            "rld_limits, rld_limits_max, and per limit rld_limit_admitted_tokens_total,\n"
            "rld_limit_denied_total, rld_limit_remaining_tokens, rld_limit_burst_tokens,\n"
            "rld_limit_rate_tokens_per_second, rld_limit_waiters, rld_limit_debt_seconds,\n"
            "rld_limit_info (label algorithm);\n"
            "with global limits, from the daemon: rld_redis_up, rld_redis_rtt_seconds,\n"
            "rld_redis_calls_total, rld_redis_errors_total, rld_redis_reconnects_total,\n"
            "rld_global_fallback_seconds_total, rld_global_limits.\n"
            "Labels: rld_instance, limit. With no instance, prints rld_up 0 and exits 3.\n"
            "--match GLOB keeps the per-limit samples of the matching limits only (the\n"
            "instance's gauges, rld_limits included, stay whole).\n"
            "For the textfile collector, write to a temporary file and rename it.\n",
    .min_args = 0, .max_args = 0, .opts = metrics_opts, .check = check_metrics,
    .exec = cmd_metrics,
};
