/*
 * cmd_metrics.c - `rlctl metrics`: every limit in the Prometheus text exposition format
 * (version 0.0.4), for node_exporter's textfile collector:
 *
 *   rlctl metrics > /var/lib/node_exporter/rld.prom.$$ && mv rld.prom.$$ rld.prom
 *
 * The text is common/metrics.c's, the same the daemon serves on [rld] metrics_listen.
 * Values are read from the segment, so they are there while the daemon is down; rld_up
 * says whether the daemon answers on its socket. --match GLOB keeps the per-limit samples
 * of the matching limits (and templates) only (an instance of hundreds of limits gives thousands of lines);
 * the instance-wide gauges stay whole.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "metrics.h"
#include "rlctl.h"
#include "rldc_tools.h"

/* The daemon's Redis figures (global limits), when it answers and has any: false if not. */
static bool redis_figures(rlctl_ctx *ctx, rldi_metrics_redis *out)
{
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    Rld__V1__Reply *rep;
    if (rlctl_call(ctx, &req, RLCTL_CALL_MS, &rep) != 0)
        return false;
    const Rld__V1__StatsReply *s = rep->body_case == RLD__V1__REPLY__BODY_STATS ? rep->stats : NULL;
    bool have = s && s->redis && s->redis[0];
    if (have)
        *out = (rldi_metrics_redis){ strcmp(s->redis, "up") == 0, s->redis_rtt_ns, s->lease_calls,
                                     s->redis_errors, s->redis_reconnects, s->fallback_ns,
                                     s->global_limits };
    rld__v1__reply__free_unpacked(rep, NULL);
    return have;
}

static int check_metrics(rlctl_ctx *ctx)
{
    if (!ctx->optv[0])
        return 0;
    return rlctl_select(ctx, (const char *const *)&ctx->optv[0], 1);
}

static int cmd_metrics(rlctl_ctx *ctx)
{
    bool up = rlctl_connect(ctx, 1000, true) == 0;
    rldi_metrics_redis redis;
    bool have_redis = up && redis_figures(ctx, &redis);
    /* rld_up first and always, so an alert on it works even with no segment at all */
    int r = rlctl_open_segment(ctx);
    rldi_metrics m;
    rldi_metrics_init(&m, r == 0 ? rldc_client_seg(ctx->client) : NULL, ctx->paths.instance, up,
                      have_redis ? &redis : NULL, ctx->globs, ctx->nglobs);
    if (up)
        rldi_metrics_set_leases(&m, rlctl_lease_figures, ctx);
    char *buf = malloc(1 << 16);
    if (!buf)
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "out of memory");
    size_t n;
    while ((n = rldi_metrics_next(&m, buf, 1 << 16, rldi_mono_ns())) > 0)
        fwrite(buf, 1, n, stdout);
    free(buf);
    return r;
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
            "rld_limit_denied_total, rld_limit_refunded_tokens_total,\n"
            "rld_limit_rolled_back_tokens_total, rld_limit_debited_tokens_total,\n"
            "rld_limit_remaining_tokens, rld_limit_burst_tokens,\n"
            "rld_limit_rate_tokens_per_second, rld_limit_waiters,\n"
            "rld_limit_retry_after_seconds (until a call of cost 1 fits, as rlctl try says),\n"
            "rld_limit_debt_seconds (until the debt is paid back), rld_limit_info (label\n"
            "algorithm); with global limits, from the daemon: rld_redis_up,\n"
            "rld_redis_rtt_seconds, rld_redis_calls_total, rld_redis_errors_total,\n"
            "rld_redis_reconnects_total, rld_global_fallback_seconds_total, rld_global_limits.\n"
            "Templates (keyed limits): rld_templates, and per template (label template)\n"
            "rld_template_keys, rld_template_keys_max, rld_template_places,\n"
            "rld_template_evictions_total, rld_template_overflows_total,\n"
            "rld_template_admitted_tokens_total, rld_template_denied_total,\n"
            "rld_template_info (labels algorithm, overflow); never a sample per key.\n"
            "Labels: rld_instance, limit. With no instance, prints rld_up 0 and exits 3.\n"
            "--match GLOB keeps the per-limit (and per-template) samples of the matching\n"
            "limits (and templates) only (the instance's gauges, rld_limits and\n"
            "rld_templates included, stay whole).\n"
            "For the textfile collector, write to a temporary file and rename it; or let\n"
            "Prometheus scrape the daemon ([rld] metrics_listen in rld.conf(5)): the same text.\n",
    .min_args = 0, .max_args = 0, .opts = metrics_opts, .check = check_metrics,
    .exec = cmd_metrics,
};
