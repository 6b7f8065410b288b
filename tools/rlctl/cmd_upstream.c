/*
 * cmd_upstream.c - rlctl's side of issue 15 (listening to the upstream):
 *
 *   breaker [GLOB...]              the breakers: state, failures, opens, closes, calls
 *   breaker trip|reset NAME        open one now / close it (the daemon, admin)
 *   penalize NAME DURATION         as a 429's Retry-After would (rld_penalize)
 *   sync NAME REMAINING RESET      as X-RateLimit-Remaining/-Reset would (rld_sync)
 *
 * and the parts of `status` and `metrics` that are issue 15's: the mode and what a shadow
 * limit would have denied, a limit's leases and their holders by pid, the breakers'
 * metrics. Breakers are read from the segment (they work while the daemon is down).
 */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "limitdef.h"
#include "rate.h"
#include "rlctl.h"
#include "rldc_tools.h"

static const char *state_name(uint32_t s)
{
    return s == RLD_BREAKER_OPEN ? "open" : s == RLD_BREAKER_HALF_OPEN ? "half-open" : "closed";
}

/* ---- breaker --------------------------------------------------------------------------- */

typedef struct brk {
    rld_limit          h;
    rld_breaker_status st;
} brk;

static int by_brk_name(const void *a, const void *b)
{
    return strcmp(((const brk *)a)->st.name, ((const brk *)b)->st.name);
}

/* Every breaker matching ctx->globs (all when none), sorted by name. */
static int breakers(rlctl_ctx *ctx, brk **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int r = rlctl_open_segment(ctx);
    if (r != 0)
        return r;
    rld_instance inst;
    if ((r = rld_instance_info(ctx->client, &inst)) < 0)
        return rlctl_fail(rlctl_exit_for(r), "instance '%s': %s", ctx->paths.instance,
                          rld_strerror(r));
    brk *v = calloc(inst.max_limits ? inst.max_limits : 1, sizeof(*v));
    if (!v)
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "out of memory");
    uint32_t cursor = 0;
    rld_limit h;
    size_t k = 0;
    while (k < inst.max_limits && rld_next(ctx->client, &cursor, &h) == 0) {
        rld_limit_info info;
        if (rld_info(ctx->client, h, &info) != 0 || info.kind != RLD_KIND_BREAKER ||
            !rlctl_selected(ctx, info.name))
            continue;
        v[k].h = h;
        if (rld_breaker_info(ctx->client, h, &v[k].st) == 0)
            k++;
    }
    qsort(v, k, sizeof(*v), by_brk_name);
    *out = v;
    *n = k;
    return 0;
}

static bool is_action(const char *w)
{
    return strcmp(w, "trip") == 0 || strcmp(w, "reset") == 0;
}

static int check_breaker(rlctl_ctx *ctx)
{
    if (ctx->argc > 0 && is_action(ctx->argv[0])) {
        if (ctx->argc != 2)
            return rlctl_usage_error(ctx, "breaker %s takes one NAME", ctx->argv[0]);
        return rlctl_check_name(ctx, ctx->argv[1]);
    }
    return rlctl_select(ctx, (const char *const *)ctx->argv, ctx->argc);
}

static int breaker_set(rlctl_ctx *ctx, const char *name, bool open)
{
    int r = rlctl_connect(ctx, RLCTL_CONNECT_MS, false);
    if (r != 0)
        return r;
    Rld__V1__BreakerSet b = RLD__V1__BREAKER_SET__INIT;
    b.breaker = (char *)name;
    b.open = open;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_BREAKER;
    req.breaker = &b;
    Rld__V1__Reply *rep;
    if ((r = rlctl_call(ctx, &req, RLCTL_CALL_MS, &rep)) != 0)
        return r;
    if (rep->code != 0) {
        r = rlctl_reply_error(ctx, open ? "breaker trip" : "breaker reset", rep);
        rld__v1__reply__free_unpacked(rep, NULL);
        return r;
    }
    rld__v1__reply__free_unpacked(rep, NULL);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "breaker", name);
        rlctl_json_str(&j, "state", open ? "open" : "closed");
        rlctl_json_end(&j, '}');
    } else {
        printf("breaker %s: %s\n", name, open ? "open (tripped)" : "closed (reset)");
    }
    return RLCTL_EXIT_OK;
}

static void breaker_json(rlctl_json *j, const rld_breaker_status *s)
{
    rlctl_json_str(j, "name", s->name);
    rlctl_json_str(j, "state", state_name(s->state));
    rlctl_json_u64(j, "failures", s->failures);
    rlctl_json_u64(j, "probes_out", s->probes_out);
    rlctl_json_u64(j, "successes", s->successes);
    rlctl_json_num(j, "retry_after_s", (double)s->retry_after_ns / 1e9);
    rlctl_json_u64(j, "opens", s->opens);
    rlctl_json_u64(j, "closes", s->closes);
    rlctl_json_u64(j, "admitted", s->admitted);
    rlctl_json_u64(j, "denied", s->denied);
    rlctl_json_obj(j, "config");
    rlctl_json_u64(j, "failures", s->cfg_failures);
    rlctl_json_num(j, "open_for_s", (double)s->cfg_open_for_ns / 1e9);
    rlctl_json_u64(j, "probes", s->cfg_probes);
    rlctl_json_u64(j, "successes", s->cfg_successes);
    rlctl_json_num(j, "probe_timeout_s", (double)s->cfg_probe_timeout_ns / 1e9);
    rlctl_json_end(j, '}');
}

/*
 * breaker --json: {"instance": "...", "breakers": [{"name", "state", "failures",
 * "probes_out", "successes", "retry_after_s", "opens", "closes", "admitted", "denied",
 * "config": {"failures", "open_for_s", "probes", "successes", "probe_timeout_s"}}...]}
 */
static int cmd_breaker(rlctl_ctx *ctx)
{
    if (ctx->argc > 0 && is_action(ctx->argv[0]))
        return breaker_set(ctx, ctx->argv[1], strcmp(ctx->argv[0], "trip") == 0);
    brk *v;
    size_t n;
    int r = breakers(ctx, &v, &n);
    if (r != 0)
        return r;
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "instance", ctx->paths.instance);
        rlctl_json_arr(&j, "breakers");
        for (size_t i = 0; i < n; i++) {
            rlctl_json_obj(&j, NULL);
            breaker_json(&j, &v[i].st);
            rlctl_json_end(&j, '}');
        }
        rlctl_json_end(&j, ']');
        rlctl_json_end(&j, '}');
        free(v);
        return RLCTL_EXIT_OK;
    }
    static const char *const head[] = { "NAME", "STATE", "FOR", "FAILURES", "OPENS", "CLOSES",
                                        "ADMITTED", "DENIED" };
    static const bool right[] = { false, false, true, true, true, true, true, true };
    rlctl_table t;
    rlctl_table_init(&t, 8, head, right);
    for (size_t i = 0; i < n; i++) {
        const rld_breaker_status *s = &v[i].st;
        char st[32], fails[32], op[24], cl[24], ad[24], de[24];
        snprintf(st, sizeof(st), "%s", state_name(s->state));
        if (s->state == RLD_BREAKER_HALF_OPEN)
            snprintf(st, sizeof(st), "half-open %u/%u", s->probes_out, s->cfg_probes);
        snprintf(fails, sizeof(fails), "%u/%u", s->failures, s->cfg_failures);
        snprintf(op, sizeof(op), "%llu", (unsigned long long)s->opens);
        snprintf(cl, sizeof(cl), "%llu", (unsigned long long)s->closes);
        snprintf(ad, sizeof(ad), "%llu", (unsigned long long)s->admitted);
        snprintf(de, sizeof(de), "%llu", (unsigned long long)s->denied);
        rlctl_table_row(&t, s->name, st, s->retry_after_ns ? rlctl_dur(s->retry_after_ns) : "-",
                        fails, op, cl, ad, de);
    }
    rlctl_table_print(&t, stdout, 0, 0, "\n");
    rlctl_table_free(&t);
    if (n == 0 && ctx->nglobs) {
        fprintf(stderr, "rlctl: no breaker of instance '%s' matches", ctx->paths.instance);
        for (int i = 0; i < ctx->nglobs; i++)
            fprintf(stderr, " '%s'", ctx->globs[i]);
        fprintf(stderr, " (`rlctl breaker` shows them all)\n");
    }
    free(v);
    return RLCTL_EXIT_OK;
}

const rlctl_cmd rlctl_cmd_breaker = {
    .name = "breaker", .args = "[trip|reset NAME | GLOB...]",
    .summary = "Circuit breakers: their state; trip or reset one",
    .help = "Without arguments (or with GLOBs), the breakers ([breaker NAME] in rld.conf):\n"
            "STATE closed, open or half-open (probes out of probes), FOR the time left open\n"
            "(or until the probes out time out), FAILURES consecutive of those that open it,\n"
            "OPENS and CLOSES since it was created, ADMITTED and DENIED calls. Read from the\n"
            "segment: works while the daemon is down.\n"
            "trip NAME opens it now (for its open_for); reset NAME closes it. Both go through\n"
            "the daemon and need an admin (root, rld's user or [rld] admin_group).\n",
    .min_args = 0, .max_args = -1, .needs_segment = false, .check = check_breaker,
    .exec = cmd_breaker,
};

/* ---- penalize, sync ----------------------------------------------------------------- */

static int check_penalize(rlctl_ctx *ctx)
{
    uint64_t ns;
    int r = rlctl_check_name(ctx, ctx->argv[0]);
    return r ? r : rlctl_arg_duration(ctx, "duration", ctx->argv[1], &ns);
}

static int check_sync(rlctl_ctx *ctx)
{
    uint64_t n, ns;
    int r = rlctl_check_name(ctx, ctx->argv[0]);
    if (r == 0)
        r = rlctl_arg_u64(ctx, "remaining", ctx->argv[1], &n);
    return r ? r : rlctl_arg_duration(ctx, "reset", ctx->argv[2], &ns);
}

/* The outcome R of `rlctl CMD` (penalize or sync; WHAT: what it did) on limit argv[0], whose
 * duration argument is DUR. */
static int after(rlctl_ctx *ctx, rld_limit h, const char *cmd, const char *what, const char *dur,
                 int r)
{
    if (r == -ERANGE)
        return rlctl_fail(RLCTL_EXIT_USAGE, "%s %s: %s is beyond 52 days, the longest rld "
                          "holds a limit back: give a shorter one", cmd, ctx->argv[0], dur);
    if (r == -EOPNOTSUPP)
        return rlctl_fail(rlctl_exit_for(r), "%s %s: not for a limit of scope = global (its "
                          "pool is refilled from Redis, which would undo it)", cmd, ctx->argv[0]);
    if (r < 0)
        return rlctl_fail(rlctl_exit_for(r), "%s %s: %s", cmd, ctx->argv[0], rld_strerror(r));
    rld_result res;
    rld_peek(ctx->client, h, &res);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "limit", ctx->argv[0]);
        rlctl_json_u64(&j, "remaining", res.remaining);
        rlctl_json_end(&j, '}');
    } else {
        printf("limit %s: %s; %llu remaining now\n", ctx->argv[0], what,
               (unsigned long long)res.remaining);
    }
    return RLCTL_EXIT_OK;
}

static int cmd_penalize(rlctl_ctx *ctx)
{
    rld_limit h;
    uint64_t ns;
    int r = rlctl_find(ctx, ctx->argv[0], &h);
    if (r != 0)
        return r;
    rlctl_arg_duration(ctx, "duration", ctx->argv[1], &ns);
    return after(ctx, h, "penalize", "penalized", ctx->argv[1],
                 rld_penalize(ctx->client, h, ns));
}

static int cmd_sync(rlctl_ctx *ctx)
{
    rld_limit h;
    uint64_t n, ns;
    int r = rlctl_find(ctx, ctx->argv[0], &h);
    if (r != 0)
        return r;
    rlctl_arg_u64(ctx, "remaining", ctx->argv[1], &n);
    rlctl_arg_duration(ctx, "reset", ctx->argv[2], &ns);
    return after(ctx, h, "sync", "synced", ctx->argv[2], rld_sync(ctx->client, h, n, ns));
}

const rlctl_cmd rlctl_cmd_penalize = {
    .name = "penalize", .args = "NAME DURATION",
    .summary = "Nothing from NAME before DURATION from now (as a 429's Retry-After)",
    .help = "rld_penalize(3) from the shell: no process takes from the limit before now +\n"
            "DURATION; never loosens it. Queued waiters are re-timed.\n",
    .min_args = 2, .max_args = 2, .needs_segment = true, .check = check_penalize,
    .exec = cmd_penalize,
};

const rlctl_cmd rlctl_cmd_sync = {
    .name = "sync", .args = "NAME REMAINING RESET",
    .summary = "At most REMAINING from NAME before RESET from now (as rate-limit headers)",
    .help = "rld_sync(3) from the shell: what X-RateLimit-Remaining and -Reset say, applied\n"
            "to the limit in one atomic change; never loosens it.\n",
    .min_args = 3, .max_args = 3, .needs_segment = true, .check = check_sync,
    .exec = cmd_sync,
};

/* ---- status and metrics ------------------------------------------------------------- */

void rlctl_upstream_status(const rlctl_limit *l, const Rld__V1__LimitStatus *ls, rlctl_json *j)
{
    bool shadow = l->info.mode == RLD_MODE_SHADOW;
    if (j) {
        rlctl_json_obj(j, "upstream");
        rlctl_json_str(j, "mode", shadow ? "shadow" : "enforce");
        rlctl_json_u64(j, "shadow_denied", l->info.shadowed);
        if (!l->info.concurrency) {
            rlctl_json_null(j, "leases");
            rlctl_json_end(j, '}');
            return;
        }
        rlctl_json_obj(j, "leases");
        rlctl_json_u64(j, "concurrency", l->info.concurrency);
        if (ls) {
            rlctl_json_u64(j, "held", ls->leases_held);
            rlctl_json_u64(j, "granted", ls->leases_granted);
            rlctl_json_u64(j, "reclaimed", ls->leases_reclaimed);
            rlctl_json_arr(j, "holders");
            for (size_t i = 0; i < ls->n_holders; i++) {
                rlctl_json_obj(j, NULL);
                rlctl_json_u64(j, "pid", ls->holders[i]->pid);
                rlctl_json_u64(j, "leases", ls->holders[i]->leases);
                rlctl_json_num(j, "held_s", (double)ls->holders[i]->held_ns / 1e9);
                rlctl_json_end(j, '}');
            }
            rlctl_json_end(j, ']');
        }
        rlctl_json_end(j, '}');
        rlctl_json_end(j, '}');
        return;
    }
    if (shadow)
        printf("%-16s shadow: admits all, would have denied %llu calls\n", "mode",
               (unsigned long long)l->info.shadowed);
    if (!l->info.concurrency)
        return;
    if (!ls) {
        printf("%-16s %u at most (holders: the daemon is not answering)\n", "leases",
               l->info.concurrency);
        return;
    }
    printf("%-16s %u held of %u; %llu granted, %llu given back by dead holders\n", "leases",
           ls->leases_held, l->info.concurrency, (unsigned long long)ls->leases_granted,
           (unsigned long long)ls->leases_reclaimed);
    for (size_t i = 0; i < ls->n_holders; i++)
        printf("%-16s pid %u: %u lease%s, the oldest for %s\n", i ? "" : "holders",
               ls->holders[i]->pid, ls->holders[i]->leases, ls->holders[i]->leases == 1 ? "" : "s",
               rlctl_dur(ls->holders[i]->held_ns));
}

/* The daemon's lease figures of one concurrency limit, for the metrics generator: one
 * Status call (rldi_metrics_leases_fn; ARG is the rlctl context). */
int rlctl_lease_figures(void *arg, uint32_t slot, uint32_t gen, uint64_t *held,
                        uint64_t *reclaimed)
{
    rlctl_ctx *ctx = arg;
    char name[RLDI_NAME_MAX + 1];
    if (rldi_seg_name(rldc_client_seg(ctx->client), slot, name) < 0)
        return -ENOENT;
    (void)gen;
    Rld__V1__Status st = RLD__V1__STATUS__INIT;
    st.limit = name;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_STATUS;
    req.status = &st;
    Rld__V1__Reply *rep;
    int r = rldi_conn_call(&ctx->conn, &req, 2000, &rep);
    if (r < 0)
        return r;
    r = -ENOENT;
    if (rep->code == 0 && rep->body_case == RLD__V1__REPLY__BODY_STATUS &&
        rep->status->n_limits == 1) {
        *held = rep->status->limits[0]->leases_held;
        *reclaimed = rep->status->limits[0]->leases_reclaimed;
        r = 0;
    }
    rld__v1__reply__free_unpacked(rep, NULL);
    return r;
}
