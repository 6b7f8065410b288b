/*
 * cmd_config.c - the commands that change limits at run time, through the daemon (only it
 * shapes the segment): `create NAME rate=R [burst=B] [algorithm=A] [align=D]`,
 * `set NAME [rate=R] [burst=B] [algorithm=A] [align=D]`, `revert NAME`,
 * `delete NAME`, `reset NAME`. Arguments are checked here first with rld.conf's parsers,
 * so a typo exits 2 before anything is sent; the daemon checks again and decides
 * permissions (root or [rld] admin_group).
 */
#include <errno.h>
#include <string.h>

#include "limitdef.h"
#include "rate.h"
#include "rlctl.h"

typedef struct put_args {
    const char *name;
    const char *rate_text;      /* as given, NULL if absent */
    uint64_t    count, period_ns;
    uint64_t    burst;          /* 0: absent */
    const char *algo_text;      /* as given, NULL if absent */
    uint32_t    algo;
    uint64_t    align_ns;
    bool        align_set;
} put_args;

/* NAME then key=value words: rate=R, burst=B, algorithm=A, align=D, each at most once. */
static int parse_put(const rlctl_ctx *ctx, put_args *a)
{
    memset(a, 0, sizeof(*a));
    a->name = ctx->argv[0];
    int r = rlctl_check_name(ctx, a->name);
    if (r != 0)
        return r;
    for (int i = 1; i < ctx->argc; i++) {
        const char *w = ctx->argv[i], *why = NULL;
        if (strncmp(w, "rate=", 5) == 0) {
            if (a->rate_text)
                return rlctl_usage_error(ctx, "rate= given twice");
            a->rate_text = w + 5;
            if (rldi_parse_rate(a->rate_text, &a->count, &a->period_ns, &why) < 0)
                return rlctl_usage_error(ctx, "bad rate '%s': %s (examples: 10/s, 3500/min, "
                                         "5/500ms, unlimited)", a->rate_text, why);
        } else if (strncmp(w, "burst=", 6) == 0) {
            if (a->burst)
                return rlctl_usage_error(ctx, "burst= given twice");
            if (rldi_parse_u64(w + 6, &a->burst, &why) < 0)
                return rlctl_usage_error(ctx, "bad burst '%s': %s", w + 6, why);
            if (a->burst == 0)
                return rlctl_usage_error(ctx, "bad burst '0': must be at least 1");
        } else if (strncmp(w, "algorithm=", 10) == 0) {
            if (a->algo_text)
                return rlctl_usage_error(ctx, "algorithm= given twice");
            a->algo_text = w + 10;
            if (rldi_algo_parse(a->algo_text, &a->algo) < 0)
                return rlctl_usage_error(ctx, "bad algorithm '%s': gcra, sliding or fixed",
                                         a->algo_text);
        } else if (strncmp(w, "align=", 6) == 0) {
            if (a->align_set)
                return rlctl_usage_error(ctx, "align= given twice");
            const char *v = w + 6;
            if (*v == '+')
                v++;
            if (strcmp(v, "first") == 0 || strcmp(v, "elastic") == 0)
                a->align_ns = v[0] == 'f' ? RLD_ALIGN_FIRST : RLD_ALIGN_ELASTIC;
            else if (rldi_parse_duration(v, &a->align_ns, &why) < 0)
                return rlctl_usage_error(ctx, "bad align '%s': %s (e.g. align=+15min)", w + 6,
                                         why);
            a->align_set = true;
        } else {
            return rlctl_usage_error(ctx, "unexpected '%s' (expected rate=R, burst=B, "
                                     "algorithm=A or align=D)", w);
        }
    }
    if (ctx->cmd == &rlctl_cmd_create && !a->rate_text)
        return rlctl_usage_error(ctx, "rate=R is required (e.g. rate=10/s)");
    if (!a->rate_text && !a->burst && !a->algo_text && !a->align_set)
        return rlctl_usage_error(ctx, "nothing to change: give rate=R, burst=B, algorithm=A "
                                 "or align=D");
    if (a->algo_text && a->algo != RLDI_ALGO_GCRA && a->burst)
        return rlctl_usage_error(ctx, "burst= is for algorithm=gcra: a window admits the "
                                 "rate's count per period");
    if (a->algo_text && a->algo != RLDI_ALGO_FIXED && a->align_set)
        return rlctl_usage_error(ctx, "align= is for algorithm=fixed");
    return 0;
}

static int check_put(rlctl_ctx *ctx)
{
    put_args a;
    return parse_put(ctx, &a);
}

static int check_name(rlctl_ctx *ctx)
{
    return rlctl_check_name(ctx, ctx->argv[0]);
}

/* For set: what was not given keeps its current value (read from the segment). */
static int fill_current(rlctl_ctx *ctx, put_args *a)
{
    rld_limit h;
    rlctl_limit cur;
    int r = rlctl_find(ctx, a->name, &h);
    if (r != 0)
        return r;
    if ((r = rlctl_limit_read(ctx->client, h, &cur)) < 0)
        return rlctl_fail(rlctl_exit_for(r), "limit '%s': %s", a->name, rld_strerror(r));
    if (!a->rate_text) {
        a->count = cur.info.rate_count;
        a->period_ns = cur.info.rate_period_ns;
        a->rate_text = "";
    }
    if (!a->algo_text) {
        a->algo = cur.info.algorithm;       /* RLD_ALGO_* are the RLDI_ALGO_* values */
        if (a->burst && a->algo != RLDI_ALGO_GCRA)
            return rlctl_usage_error(ctx, "limit '%s' is a %s window: burst= is for gcra "
                                     "(give algorithm=gcra to change it)", a->name,
                                     rldi_algo_name(a->algo));
    }
    if (a->algo == RLDI_ALGO_GCRA && !a->burst) {
        /* Keep the burst, except that it follows the rate when it was the rate's count. */
        a->burst = cur.info.algorithm == RLDI_ALGO_GCRA ? cur.info.burst : 0;
    }
    if (a->algo != RLDI_ALGO_GCRA)
        a->burst = 0;
    if (a->algo == RLDI_ALGO_FIXED && !a->align_set && cur.info.algorithm == RLDI_ALGO_FIXED) {
        a->align_ns = cur.info.align_ns;
        a->align_set = a->align_ns != 0;
    }
    if (a->align_set && a->algo != RLDI_ALGO_FIXED)
        return rlctl_usage_error(ctx, "align= is for algorithm=fixed ('%s' is %s)", a->name,
                                 rldi_algo_name(a->algo));
    return 0;
}

/* Send REQ for limit NAME and report: "VERB NAME[: DETAIL]" and the daemon's note on a line
 * of its own, or {"ok": true, "name": ..., "note": null or the note}. */
static int simple_call(rlctl_ctx *ctx, Rld__V1__Request *req, const char *name,
                       const char *verb, const put_args *put)
{
    Rld__V1__Reply *rep;
    int r = rlctl_call(ctx, req, RLCTL_CALL_MS, &rep);
    if (r != 0)
        return r;
    if (rep->code == -ENOENT || rep->code == -ESTALE) {
        /* Said here, by name: the daemon's text may be librld's message for -ENOENT,
         * which cannot tell an instance from a limit. */
        r = rlctl_fail(RLCTL_EXIT_NOTFOUND, "%s %s: no limit '%s' in instance '%s' (rlctl "
                       "list shows them)", ctx->cmd->name, name, name, ctx->paths.instance);
        rld__v1__reply__free_unpacked(rep, NULL);
        return r;
    }
    if (rep->code != 0) {
        char what[128];
        snprintf(what, sizeof(what), "%s %s", ctx->cmd->name, name);
        r = rlctl_reply_error(ctx, what, rep);
        rld__v1__reply__free_unpacked(rep, NULL);
        return r;
    }
    char note[512] = "";
    if (rep->message && strcmp(rep->message, "ok") != 0)
        snprintf(note, sizeof(note), "%s", rep->message);
    rld__v1__reply__free_unpacked(rep, NULL);
    char rate[48] = "";
    if (put)
        rldi_format_rate(rate, sizeof(rate), put->count, put->period_ns);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_bool(&j, "ok", true);
        rlctl_json_str(&j, "name", name);
        if (put) {
            rlctl_json_str(&j, "rate", rate);
            rlctl_json_str(&j, "algorithm", rldi_algo_name(put->algo));
            if (put->algo != RLDI_ALGO_GCRA)
                rlctl_json_u64(&j, "burst", put->count);
            else if (put->burst)
                rlctl_json_u64(&j, "burst", put->burst);
            else
                rlctl_json_u64(&j, "burst", put->count);
            if (put->algo == RLDI_ALGO_FIXED)
                rlctl_json_u64(&j, "align_ns", put->align_ns);
        }
        rlctl_json_str(&j, "note", note[0] ? note : NULL);
        rlctl_json_end(&j, '}');
        return RLCTL_EXIT_OK;
    }
    if (put && put->algo == RLDI_ALGO_SLIDING) {
        printf("%s %s: rate %s, sliding window\n", verb, name, rate);
    } else if (put && put->algo == RLDI_ALGO_FIXED) {
        char al[48] = "";
        if (put->align_ns) {
            al[0] = '+';
            rldi_format_duration(al + 1, sizeof(al) - 1, put->align_ns);
        }
        printf("%s %s: rate %s, fixed window%s%s\n", verb, name, rate,
               put->align_ns ? " aligned " : "", al);
    } else if (put) {
        printf("%s %s: rate %s, burst %llu\n", verb, name, rate,
               (unsigned long long)(put->burst ? put->burst : put->count));
    } else {
        printf("%s %s\n", verb, name);
    }
    if (note[0])
        printf("note: %s\n", note);
    return RLCTL_EXIT_OK;
}

static int put(rlctl_ctx *ctx, bool create)
{
    put_args a;
    int r = parse_put(ctx, &a);
    if (r != 0 || (!create && (r = fill_current(ctx, &a)) != 0))
        return r;
    char rate[48];
    rldi_format_rate(rate, sizeof(rate), a.count, a.period_ns);   /* parses back the same */
    Rld__V1__LimitConfig lc = RLD__V1__LIMIT_CONFIG__INIT;
    lc.name = (char *)a.name;
    lc.rate = rate;
    lc.burst = a.burst;            /* 0: the rate's count, as in rld.conf */
    lc.algorithm = (char *)rldi_algo_name(a.algo);
    lc.align_ns = a.align_set ? a.align_ns : 0;
    Rld__V1__Put p = RLD__V1__PUT__INIT;
    p.limit = &lc;
    p.create_only = create;
    p.update_only = !create;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_PUT;
    req.put = &p;
    return simple_call(ctx, &req, a.name, create ? "created" : "changed", &a);
}

static int cmd_create(rlctl_ctx *ctx) { return put(ctx, true); }
static int cmd_set(rlctl_ctx *ctx) { return put(ctx, false); }

static int cmd_delete(rlctl_ctx *ctx)
{
    Rld__V1__Delete d = RLD__V1__DELETE__INIT;
    d.limit = ctx->argv[0];
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_DELETE;
    req.delete_ = &d;
    return simple_call(ctx, &req, ctx->argv[0], "deleted", NULL);
}

static int cmd_reset(rlctl_ctx *ctx)
{
    Rld__V1__Reset rs = RLD__V1__RESET__INIT;
    rs.limit = ctx->argv[0];
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RESET;
    req.reset = &rs;
    return simple_call(ctx, &req, ctx->argv[0], "reset (full again):", NULL);
}

static int cmd_revert(rlctl_ctx *ctx)
{
    Rld__V1__Revert rv = RLD__V1__REVERT__INIT;
    rv.limit = ctx->argv[0];
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_REVERT;
    req.revert = &rv;
    return simple_call(ctx, &req, ctx->argv[0], "reverted", NULL);
}

/* --json for all five: {"ok": true, "name": NAME, "note"}, create and set add "rate",
 * "algorithm", "burst" (the count for a window) and, for fixed windows, "align_ns". */
const rlctl_cmd rlctl_cmd_create = {
    .name = "create", .args = "NAME rate=R [burst=B] [algorithm=A] [align=D]",
    .summary = "Create a limit at run time",
    .help = "The burst defaults to the rate's count. algorithm= is gcra (the default),\n"
            "sliding (at most COUNT in any PERIOD) or fixed (COUNT per wall-clock window;\n"
            "align=+15min shifts the windows). Exit 1 if the limit exists already.\n"
            "It lives until deleted, or until a reload whose file does not declare it.\n"
            "Needs root or [rld] admin_group (else exit 4).\n",
    .min_args = 1, .max_args = 5, .needs_daemon = true, .check = check_put, .exec = cmd_create,
};

const rlctl_cmd rlctl_cmd_set = {
    .name = "set", .args = "NAME [rate=R] [burst=B] [algorithm=A] [align=D]",
    .summary = "Change a limit's rate, burst or algorithm",
    .help = "What is not given is kept. The state carries over: the fill proportionally\n"
            "(half used stays half used), debt in tokens; a change of algorithm starts the\n"
            "limit full. For a limit declared in rld.conf the new setting overrides the\n"
            "file's: it stays across reloads and restarts until the file's line for the limit\n"
            "changes (then the file's wins), or until rlctl revert; setting the file's own\n"
            "values ends the override. rlctl status shows it. Exit 5 if there is no such\n"
            "limit. Needs root or [rld] admin_group (else exit 4).\n",
    .min_args = 1, .max_args = 5, .needs_daemon = true, .check = check_put, .exec = cmd_set,
};

const rlctl_cmd rlctl_cmd_revert = {
    .name = "revert", .args = "NAME",
    .summary = "Give a limit of rld.conf its file's setting back",
    .help = "Ends a run-time override made with rlctl set (the state carries over). Exit 2\n"
            "for a limit created at run time (the file has no setting for it). Needs root\n"
            "or [rld] admin_group.\n",
    .min_args = 1, .max_args = 1, .needs_daemon = true, .check = check_name,
    .exec = cmd_revert,
};

const rlctl_cmd rlctl_cmd_delete = {
    .name = "delete", .args = "NAME",
    .summary = "Delete a limit",
    .help = "Processes holding a handle to it then get -ESTALE. A limit declared in\n"
            "rld.conf comes back on the next reload. Needs root or [rld] admin_group.\n",
    .min_args = 1, .max_args = 1, .needs_daemon = true, .check = check_name,
    .exec = cmd_delete,
};

const rlctl_cmd rlctl_cmd_reset = {
    .name = "reset", .args = "NAME",
    .summary = "Make a limit full again (debt forgiven)",
    .min_args = 1, .max_args = 1, .needs_daemon = true, .check = check_name,
    .exec = cmd_reset,
};
