/*
 * cmd_daemon.c - the commands about the daemon itself, over its socket: `reload` (re-read
 * the configuration file, like SIGHUP, but with the outcome reported back) and `stats`
 * (the daemon's own counters).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rlctl.h"

/* reload --json: {"kept", "created", "changed", "deleted", "overridden", "dropped"} (limits,
 * by what happened; overridden: of kept, those keeping a run-time setting; dropped:
 * run-time settings the file's changed line replaced). */
static int cmd_reload(rlctl_ctx *ctx)
{
    Rld__V1__Reload rl = RLD__V1__RELOAD__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RELOAD;
    req.reload = &rl;
    Rld__V1__Reply *rep;
    int r = rlctl_call(ctx, &req, RLCTL_CALL_MS, &rep);
    if (r != 0)
        return r;
    if (rep->code != 0) {
        /* A bad file is a refusal (1), not a usage error of ours: the daemon kept its state. */
        if (rep->code == -EINVAL && rep->message && *rep->message)
            r = rlctl_fail(RLCTL_EXIT_DENIED, "%s", rep->message);   /* the daemon says it all */
        else if (rep->code == -EINVAL)
            r = rlctl_fail(RLCTL_EXIT_DENIED, "reload refused, configuration unchanged: %s",
                           rld_strerror(rep->code));
        else
            r = rlctl_reply_error(ctx, "reload", rep);
        rld__v1__reply__free_unpacked(rep, NULL);
        return r;
    }
    Rld__V1__ReloadReply zero = RLD__V1__RELOAD_REPLY__INIT;
    const Rld__V1__ReloadReply *rr =
        rep->body_case == RLD__V1__REPLY__BODY_RELOAD && rep->reload ? rep->reload : &zero;
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_u64(&j, "kept", rr->kept);
        rlctl_json_u64(&j, "created", rr->created);
        rlctl_json_u64(&j, "changed", rr->changed);
        rlctl_json_u64(&j, "deleted", rr->deleted);
        rlctl_json_u64(&j, "overridden", rr->overridden);
        rlctl_json_u64(&j, "dropped", rr->dropped);
        rlctl_json_end(&j, '}');
    } else {
        printf("reloaded: %u kept, %u created, %u changed, %u deleted\n", rr->kept,
               rr->created, rr->changed, rr->deleted);
        if (rr->overridden)
            printf("note: %u limit%s keep%s a setting made at run time (rlctl status NAME "
                   "shows the file's; rlctl revert NAME returns to it)\n", rr->overridden,
                   rr->overridden == 1 ? "" : "s", rr->overridden == 1 ? "s" : "");
        if (rr->dropped)
            printf("note: %u run-time setting%s replaced by the file's changed line%s\n",
                   rr->dropped, rr->dropped == 1 ? "" : "s", rr->dropped == 1 ? "" : "s");
    }
    rld__v1__reply__free_unpacked(rep, NULL);
    return RLCTL_EXIT_OK;
}

const rlctl_cmd rlctl_cmd_reload = {
    .name = "reload", .args = "",
    .summary = "Re-read rld.conf; a bad file changes nothing",
    .help = "A bad file is refused (exit 1) with the reason. Unchanged limits keep their\n"
            "state exactly, changed ones carry it (the fill proportionally, debt in tokens),\n"
            "limits no longer in the file are deleted. A limit set at run time (rlctl set)\n"
            "keeps that setting until the file's line for it changes. Needs root or [rld]\n"
            "admin_group.\n",
    .min_args = 0, .max_args = 0, .needs_daemon = true, .exec = cmd_reload,
};

/*
 * stats --json: {"instance", "server" (e.g. "rld 0.1.0"), "pid", "uptime_ns",
 * "connections", "waiters", "requests", "grants", "timeouts", "bad_messages", "limits",
 * "max_limits", "segment_bytes", "global_limits", "redis", "templates"}; "redis" is null
 * without global limits, else {"state" ("up"/"down"), "url", "error", "rtt_ns",
 * "lease_calls", "errors", "reconnects", "fallback_ns"}; "templates": [TEMPLATE...] (tmpl.c:
 * keys live, max_keys, evictions, overflows... read from the segment), null when rlctl
 * cannot read the segment. "limits" does not count the templates; both share max_limits.
 */
static int cmd_stats(rlctl_ctx *ctx)
{
    /* the templates' tables are in the segment, where every process counts; quietly none
     * when rlctl cannot read it (the daemon's figures still are worth showing) */
    rlctl_tmpl *tv = NULL;
    size_t tn = 0;
    bool have_tmpl = false;
    {
        char buf[512];
        rlctl_capture_errors(buf, sizeof(buf));
        have_tmpl = rlctl_templates(ctx, &tv, &tn, NULL) == 0;
        rlctl_capture_errors(NULL, 0);
    }
    Rld__V1__Stats st = RLD__V1__STATS__INIT;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATS;
    req.stats = &st;
    Rld__V1__Reply *rep;
    int r = rlctl_call(ctx, &req, RLCTL_CALL_MS, &rep);
    if (r != 0) {
        free(tv);
        return r;
    }
    if (rep->code != 0 || rep->body_case != RLD__V1__REPLY__BODY_STATS || !rep->stats) {
        r = rep->code ? rlctl_reply_error(ctx, "stats", rep)
                      : rlctl_fail(RLCTL_EXIT_UNREACHABLE, "stats: rld sent no statistics");
        rld__v1__reply__free_unpacked(rep, NULL);
        free(tv);
        return r;
    }
    const Rld__V1__StatsReply *s = rep->stats;
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "instance", ctx->paths.instance);
        rlctl_json_str(&j, "server", ctx->conn.server);
        rlctl_json_u64(&j, "pid", s->pid);
        rlctl_json_u64(&j, "uptime_ns", s->uptime_ns);
        rlctl_json_u64(&j, "connections", s->connections);
        rlctl_json_u64(&j, "waiters", s->waiters);
        rlctl_json_u64(&j, "requests", s->requests);
        rlctl_json_u64(&j, "grants", s->grants);
        rlctl_json_u64(&j, "timeouts", s->timeouts);
        rlctl_json_u64(&j, "bad_messages", s->bad_messages);
        rlctl_json_u64(&j, "limits", s->limits);
        rlctl_json_u64(&j, "max_limits", s->max_limits);
        rlctl_json_u64(&j, "segment_bytes", s->segment_bytes);
        rlctl_json_u64(&j, "global_limits", s->global_limits);
        if (s->redis && s->redis[0]) {
            rlctl_json_obj(&j, "redis");
            rlctl_json_str(&j, "state", s->redis);
            rlctl_json_str(&j, "url", s->redis_url);
            rlctl_json_str(&j, "error", s->redis_error);
            rlctl_json_u64(&j, "rtt_ns", s->redis_rtt_ns);
            rlctl_json_u64(&j, "lease_calls", s->lease_calls);
            rlctl_json_u64(&j, "errors", s->redis_errors);
            rlctl_json_u64(&j, "reconnects", s->redis_reconnects);
            rlctl_json_u64(&j, "fallback_ns", s->fallback_ns);
            rlctl_json_end(&j, '}');
        } else {
            rlctl_json_null(&j, "redis");
        }
        rlctl_json_str(&j, "metrics_listen", s->metrics_listen && *s->metrics_listen
                                                 ? s->metrics_listen : NULL);
        rlctl_json_u64(&j, "metrics_served", s->metrics_served);
        rlctl_json_u64(&j, "metrics_refused", s->metrics_refused);
        rlctl_json_u64(&j, "metrics_bad", s->metrics_bad);
        if (have_tmpl) {
            rlctl_json_arr(&j, "templates");
            for (size_t i = 0; i < tn; i++) {
                rlctl_json_obj(&j, NULL);
                rlctl_json_template_fields(&j, &tv[i]);
                rlctl_json_end(&j, '}');
            }
            rlctl_json_end(&j, ']');
        } else {
            rlctl_json_null(&j, "templates");
        }
        rlctl_json_end(&j, '}');
    } else {
        printf("%-14s %s, pid %u, instance %s\n", "daemon", ctx->conn.server, s->pid,
               ctx->paths.instance);
        printf("%-14s %s\n", "uptime", rlctl_dur(s->uptime_ns));
        printf("%-14s %u\n", "connections", s->connections);
        printf("%-14s %u\n", "waiters", s->waiters);
        printf("%-14s %llu\n", "requests", (unsigned long long)s->requests);
        printf("%-14s %llu\n", "grants", (unsigned long long)s->grants);
        printf("%-14s %llu\n", "timeouts", (unsigned long long)s->timeouts);
        printf("%-14s %llu\n", "bad messages", (unsigned long long)s->bad_messages);
        if (s->templates)
            printf("%-14s %u, and %u template%s: %u of %u slots\n", "limits", s->limits,
                   s->templates, s->templates == 1 ? "" : "s", s->limits + s->templates,
                   s->max_limits);
        else
            printf("%-14s %u of %u\n", "limits", s->limits, s->max_limits);
        printf("%-14s %llu bytes\n", "segment", (unsigned long long)s->segment_bytes);
        if (s->redis && s->redis[0]) {
            printf("%-14s %s, %s%s%s\n", "redis", s->redis_url, s->redis,
                   s->redis_error && s->redis_error[0] ? ": " : "",
                   s->redis_error ? s->redis_error : "");
            printf("%-14s %u global, round trip %s\n", "leases", s->global_limits,
                   rlctl_dur(s->redis_rtt_ns));
            printf("%-14s %llu calls, %llu errors, %llu reconnects\n", "redis calls",
                   (unsigned long long)s->lease_calls, (unsigned long long)s->redis_errors,
                   (unsigned long long)s->redis_reconnects);
            printf("%-14s %s\n", "on fallback", rlctl_dur(s->fallback_ns));
        }
        if (s->metrics_listen && *s->metrics_listen)
            printf("%-14s http://%s/metrics: %llu served, %llu refused, %llu bad requests\n",
                   "metrics", s->metrics_listen, (unsigned long long)s->metrics_served,
                   (unsigned long long)s->metrics_refused, (unsigned long long)s->metrics_bad);
        else
            printf("%-14s %s\n", "metrics", "not served ([rld] metrics_listen)");
        for (size_t i = 0; i < tn; i++)
            printf("%-14s %s: %llu keys (max_keys %u), %llu evictions, %llu overflows (%s)\n",
                   "template", tv[i].info.name, (unsigned long long)tv[i].keys,
                   tv[i].info.max_keys, (unsigned long long)tv[i].evictions,
                   (unsigned long long)tv[i].overflows, tv[i].overflow_allow ? "allow" : "deny");
    }
    rld__v1__reply__free_unpacked(rep, NULL);
    free(tv);
    return RLCTL_EXIT_OK;
}

const rlctl_cmd rlctl_cmd_stats = {
    .name = "stats", .args = "",
    .summary = "The daemon's own counters",
    .help = "Uptime, connections, queued waiters, requests, grants, timeouts, malformed\n"
            "messages, limits and capacity, segment size, pid; with global limits, Redis:\n"
            "health, last error, lease round trip, calls, errors, reconnects, fallback time;\n"
            "per template (from the segment): keys live, max_keys, evictions, overflows.\n",
    .min_args = 0, .max_args = 0, .needs_daemon = true, .exec = cmd_stats,
};
