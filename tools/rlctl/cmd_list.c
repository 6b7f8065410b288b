/*
 * cmd_list.c - `rlctl list` and `rlctl status NAME`: the limits as the shared-memory
 * segment shows them (so they work while the daemon is down), and for status, what only
 * the daemon knows (queued tokens, wait counts) when it answers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "limitdef.h"
#include "rate.h"
#include "rlctl.h"

/* Human cell for a count that means nothing when the limit is unlimited. */
static const char *num(char *buf, size_t len, uint64_t v)
{
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* Say on stderr that GLOBs selected nothing (the output itself stays well-formed). */
static void note_no_match(const rlctl_ctx *ctx, const rlctl_seg_info *si)
{
    fprintf(stderr, "rlctl: no limit of instance '%s' matches", ctx->paths.instance);
    for (int i = 0; i < ctx->nglobs; i++)
        fprintf(stderr, " '%s'", ctx->globs[i]);
    fprintf(stderr, " (of %u; `rlctl list` shows them all)\n", si->limits);
}

static int check_list(rlctl_ctx *ctx)
{
    return rlctl_select(ctx, (const char *const *)ctx->argv, ctx->argc);
}

/*
 * list [GLOB...] --json: {"instance": "...", "limits": [LIMIT...]}, LIMIT with the fields
 * of rlctl_json_limit_fields (output.c; README.md), sorted by name; only the limits
 * matching a GLOB when some are given.
 */
static int cmd_list(rlctl_ctx *ctx)
{
    rlctl_limit *v;
    size_t n;
    rlctl_seg_info si;
    int r = rlctl_snapshot(ctx, &v, &n, &si);
    if (r != 0)
        return r;
    if (n == 0 && ctx->nglobs > 0)
        note_no_match(ctx, &si);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "instance", ctx->paths.instance);
        rlctl_json_arr(&j, "limits");
        for (size_t i = 0; i < n; i++) {
            rlctl_json_obj(&j, NULL);
            rlctl_json_limit_fields(&j, &v[i]);
            rlctl_json_end(&j, '}');
        }
        rlctl_json_end(&j, ']');
        rlctl_json_end(&j, '}');
        free(v);
        return RLCTL_EXIT_OK;
    }
    static const char *const head[] = { "NAME", "RATE", "BURST", "REMAINING", "WAITERS",
                                        "ADMITTED", "DENIED" };
    static const bool right[] = { false, false, true, true, true, true, true };
    rlctl_table t;
    rlctl_table_init(&t, 7, head, right);
    for (size_t i = 0; i < n; i++) {
        const rlctl_limit *l = &v[i];
        char rate[64], burst[24], rem[24], w[24], adm[24], den[24];
        bool window = l->info.algorithm != RLD_ALGO_GCRA && !l->unlimited;
        /* A window has no burst: its count per period is in RATE, with the algorithm. */
        snprintf(rate, sizeof(rate), "%s%s%s", l->rate, window ? " " : "",
                 window ? rldi_algo_name(l->info.algorithm) : "");
        rlctl_table_row(&t, l->info.name, rate,
                        l->unlimited || window ? "-" : num(burst, sizeof(burst), l->info.burst),
                        l->unlimited ? "-" : num(rem, sizeof(rem), l->peek.remaining),
                        num(w, sizeof(w), l->info.waiters), num(adm, sizeof(adm), l->info.admitted),
                        num(den, sizeof(den), l->info.denied));
    }
    rlctl_table_print(&t, stdout, 0, 0, "\n");
    rlctl_table_free(&t);
    free(v);
    return RLCTL_EXIT_OK;
}

const rlctl_cmd rlctl_cmd_list = {
    .name = "list", .args = "[GLOB...]",
    .summary = "The limits: rate, burst, remaining, counters",
    .help = "Every limit, or those whose names match a GLOB (fnmatch(3): * ? [...]; '*'\n"
            "also matches '.', '/' and ':'; quote it from the shell): rlctl list 'llm.*'.\n"
            "Reads the instance's segment: works while the daemon is down. ADMITTED counts\n"
            "tokens, DENIED calls, since the limit was created (each process publishes its\n"
            "counts in batches: up to 64 calls or 50 ms late).\n",
    .min_args = 0, .max_args = -1, .needs_segment = true, .check = check_list,
    .exec = cmd_list,
};

/* What the daemon adds to a limit's status (Status request): NULL when it does not answer. */
static Rld__V1__Reply *daemon_status(rlctl_ctx *ctx, const char *name,
                                     const Rld__V1__LimitStatus **ls)
{
    *ls = NULL;
    if (rlctl_connect(ctx, 1000, true) != 0)
        return NULL;
    Rld__V1__Status st = RLD__V1__STATUS__INIT;
    st.limit = (char *)name;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATUS;
    req.status = &st;
    Rld__V1__Reply *rep = NULL;
    if (rldi_conn_call(&ctx->conn, &req, 2000, &rep) < 0)
        return NULL;
    if (rep->code == 0 && rep->body_case == RLD__V1__REPLY__BODY_STATUS && rep->status &&
        rep->status->n_limits == 1 && strcmp(rep->status->limits[0]->name, name) == 0)
        *ls = rep->status->limits[0];
    return rep;
}

/*
 * status --json: one object, the fields of rlctl_json_limit_fields plus
 *   "daemon": null when rld does not answer, else {"queued_tokens", "granted_waits",
 *   "timed_out_waits", "from_file", "scope", "global"} from its Status reply; "global" is
 *   null for a host limit, else {"state", "leased_tokens", "share", "hosts", "demand",
 *   "leased_total", "returned_total", "lease_calls"}.
 */
static int cmd_status(rlctl_ctx *ctx)
{
    const char *name = ctx->argv[0];
    rld_limit h;
    int r = rlctl_find(ctx, name, &h);
    if (r != 0)
        return r;
    rlctl_limit l;
    if ((r = rlctl_limit_read(ctx->client, h, &l)) < 0)
        return rlctl_fail(rlctl_exit_for(r), "limit '%s': %s", name, rld_strerror(r));
    const Rld__V1__LimitStatus *ls;
    Rld__V1__Reply *rep = daemon_status(ctx, name, &ls);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_limit_fields(&j, &l);
        if (ls) {
            rlctl_json_obj(&j, "daemon");
            rlctl_json_u64(&j, "queued_tokens", ls->queued_tokens);
            rlctl_json_u64(&j, "granted_waits", ls->granted_waits);
            rlctl_json_u64(&j, "timed_out_waits", ls->timed_out_waits);
            rlctl_json_bool(&j, "from_file", ls->from_file);
            bool global = ls->scope && strcmp(ls->scope, "global") == 0;
            rlctl_json_str(&j, "scope", global ? "global" : "host");
            if (global) {
                rlctl_json_obj(&j, "global");
                rlctl_json_str(&j, "state", ls->lease_state);
                rlctl_json_u64(&j, "leased_tokens", ls->leased_tokens);
                rlctl_json_num(&j, "share", ls->global_share);
                rlctl_json_u64(&j, "hosts", ls->global_hosts);
                rlctl_json_num(&j, "demand", ls->demand);
                rlctl_json_u64(&j, "leased_total", ls->leased_total);
                rlctl_json_u64(&j, "returned_total", ls->returned_total);
                rlctl_json_u64(&j, "lease_calls", ls->lease_calls);
                rlctl_json_end(&j, '}');
            } else {
                rlctl_json_null(&j, "global");
            }
            rlctl_json_end(&j, '}');
        } else {
            rlctl_json_null(&j, "daemon");
        }
        rlctl_upstream_status(&l, ls, &j);
        rlctl_json_end(&j, '}');
    } else {
        printf("%-16s %s\n", "limit", l.info.name);
        if (l.unlimited) {
            printf("%-16s %s\n", "rate", "unlimited (admits everything, still counted)");
        } else {
            if (l.info.rate_period_ns == 1000000000u)
                printf("%-16s %s\n", "rate", l.rate);
            else
                printf("%-16s %s (%.6g/s)\n", "rate", l.rate, rlctl_rate_per_s(&l.info));
            if (l.info.algorithm == RLD_ALGO_SLIDING) {
                printf("%-16s %s\n", "algorithm", "sliding window (at most the count in any "
                       "period; 16 sub-windows)");
            } else if (l.info.algorithm == RLD_ALGO_FIXED) {
                printf("%-16s fixed window (the count per wall-clock period", "algorithm");
                if (l.info.align_ns)
                    printf(", starting +%s", rlctl_dur(l.info.align_ns));
                printf(")\n");
            } else {
                printf("%-16s %s\n", "algorithm", "gcra");
                printf("%-16s %llu\n", "burst", (unsigned long long)l.info.burst);
            }
            printf("%-16s %llu\n", "remaining", (unsigned long long)l.peek.remaining);
            if (l.peek.retry_after_ns)
                printf("%-16s %s (%s)\n", "retry after", rlctl_dur(l.peek.retry_after_ns),
                       l.info.algorithm == RLD_ALGO_GCRA ? "in debt" : "window full");
            printf("%-16s %s\n", "full in", l.peek.reset_after_ns ?
                   rlctl_dur(l.peek.reset_after_ns) : "0 (full)");
        }
        printf("%-16s %u\n", "waiters", l.info.waiters);
        printf("%-16s %llu tokens\n", "admitted", (unsigned long long)l.info.admitted);
        printf("%-16s %llu calls\n", "denied", (unsigned long long)l.info.denied);
        rlctl_upstream_status(&l, ls, NULL);
        if (ls) {
            printf("%-16s %llu\n", "queued tokens", (unsigned long long)ls->queued_tokens);
            printf("%-16s %llu\n", "granted waits", (unsigned long long)ls->granted_waits);
            printf("%-16s %llu\n", "timed-out waits", (unsigned long long)ls->timed_out_waits);
            printf("%-16s %s\n", "declared", ls->from_file ? "in the configuration file"
                                                            : "at run time (rlctl create)");
            if (ls->scope && strcmp(ls->scope, "global") == 0) {
                printf("%-16s global (shared through Redis), %s\n", "scope",
                       ls->lease_state ? ls->lease_state : "");
                printf("%-16s %llu tokens in this host's pool\n", "leased",
                       (unsigned long long)ls->leased_tokens);
                printf("%-16s %.3g of the rate when contended, %u host%s, demand %.6g/s\n",
                       "share", ls->global_share, ls->global_hosts,
                       ls->global_hosts == 1 ? "" : "s", ls->demand);
                printf("%-16s %llu leased, %llu given back, %llu calls\n", "leases",
                       (unsigned long long)ls->leased_total, (unsigned long long)ls->returned_total,
                       (unsigned long long)ls->lease_calls);
            } else {
                printf("%-16s host\n", "scope");
            }
        } else {
            printf("%-16s %s\n", "daemon", "not answering: queue details unavailable");
        }
    }
    if (rep)
        rld__v1__reply__free_unpacked(rep, NULL);
    return RLCTL_EXIT_OK;
}

static int check_status(rlctl_ctx *ctx)
{
    return rlctl_check_name(ctx, ctx->argv[0]);
}

const rlctl_cmd rlctl_cmd_status = {
    .name = "status", .args = "NAME",
    .summary = "One limit in full: debt, time to full, waits",
    .help = "The state comes from the segment (works while the daemon is down); queued\n"
            "tokens and wait counts from the daemon when it answers.\n",
    .min_args = 1, .max_args = 1, .needs_segment = true, .check = check_status,
    .exec = cmd_status,
};
