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
    bool        tmpl;           /* --template NAME (set: or NAME is one) */
    bool        caller;         /* rate=caller: a template's keys' rates from the client */
    uint64_t    max_keys;       /* 0: absent */
    const char *overflow;       /* "deny", "allow"; NULL if absent */
} put_args;

/* NAME (or --template NAME) then key=value words: rate=R, burst=B, algorithm=A, align=D,
 * and for a template max_keys=N, overflow=deny|allow, each at most once. */
static int parse_put(const rlctl_ctx *ctx, put_args *a)
{
    memset(a, 0, sizeof(*a));
    int first = 1;
    if (ctx->optv[0]) {
        a->name = ctx->optv[0];
        a->tmpl = true;
        first = 0;
        if (ctx->argc > 0 && !strchr(ctx->argv[0], '='))
            return rlctl_usage_error(ctx, "give the name once: --template NAME or NAME, "
                                     "not both ('%s')", ctx->argv[0]);
    } else if (ctx->argc == 0) {
        return rlctl_usage_error(ctx, "missing argument: NAME (or --template NAME)");
    } else {
        a->name = ctx->argv[0];
    }
    int r = rlctl_check_name(ctx, a->name);
    if (r != 0)
        return r;
    for (int i = first; i < ctx->argc; i++) {
        const char *w = ctx->argv[i], *why = NULL;
        if (strncmp(w, "rate=", 5) == 0) {
            if (a->rate_text)
                return rlctl_usage_error(ctx, "rate= given twice");
            a->rate_text = w + 5;
            a->caller = strcmp(a->rate_text, "caller") == 0;
            if (!a->caller && rldi_parse_rate(a->rate_text, &a->count, &a->period_ns, &why) < 0)
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
        } else if (strncmp(w, "max_keys=", 9) == 0) {
            if (a->max_keys)
                return rlctl_usage_error(ctx, "max_keys= given twice");
            if (rldi_parse_u64(w + 9, &a->max_keys, &why) < 0)
                return rlctl_usage_error(ctx, "bad max_keys '%s': %s", w + 9, why);
            if (a->max_keys == 0 || a->max_keys > RLDI_MAX_KEYS_MAX)
                return rlctl_usage_error(ctx, "bad max_keys '%s': 1 to %u", w + 9,
                                         RLDI_MAX_KEYS_MAX);
        } else if (strncmp(w, "overflow=", 9) == 0) {
            if (a->overflow)
                return rlctl_usage_error(ctx, "overflow= given twice");
            a->overflow = w + 9;
            if (strcmp(a->overflow, "deny") != 0 && strcmp(a->overflow, "allow") != 0)
                return rlctl_usage_error(ctx, "bad overflow '%s': deny or allow", a->overflow);
        } else {
            return rlctl_usage_error(ctx, "unexpected '%s' (expected rate=R, burst=B, "
                                     "algorithm=A or align=D; for a template also "
                                     "max_keys=N, overflow=deny|allow)", w);
        }
    }
    if (ctx->cmd == &rlctl_cmd_create && !a->rate_text)
        return rlctl_usage_error(ctx, "rate=R is required (e.g. rate=10/s)");
    if (ctx->cmd == &rlctl_cmd_create && !a->tmpl && (a->max_keys || a->overflow))
        return rlctl_usage_error(ctx, "max_keys= and overflow= are for a template: create "
                                 "--template NAME rate=R ...");
    if (ctx->cmd == &rlctl_cmd_create && !a->tmpl && a->caller)
        return rlctl_usage_error(ctx, "rate=caller is for a template: each key's rate comes "
                                 "from the client (create --template NAME rate=caller)");
    if (a->caller && a->burst)
        return rlctl_usage_error(ctx, "burst= does not go with rate=caller: each key's burst "
                                 "is its own rate's count");
    if (!a->rate_text && !a->burst && !a->algo_text && !a->align_set && !a->max_keys &&
        !a->overflow)
        return rlctl_usage_error(ctx, "nothing to change: give rate=R, burst=B, algorithm=A "
                                 "or align=D (a template: also max_keys=N, overflow=O)");
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
    rld_template tpl;
    int r = rlctl_open_segment(ctx);
    if (r != 0)
        return r;
    if (a->tmpl || (rld_find(ctx->client, a->name, &h) == -ENOENT &&
                    rld_find_template(ctx->client, a->name, &tpl) == 0)) {
        /* a template: the same, its key table's size and policy too */
        rlctl_tmpl tp;
        if ((r = rlctl_find_template(ctx, a->name, &tp, NULL)) != 0)
            return r;
        a->tmpl = true;
        memset(&cur, 0, sizeof(cur));
        cur.info = tp.info;
        if (!a->max_keys)
            a->max_keys = tp.info.max_keys;
        if (!a->overflow)
            a->overflow = tp.overflow_allow ? "allow" : "deny";
        if (!a->rate_text && tp.caller_rate) {
            a->caller = true;           /* kept: every key keeps its own rate */
            a->rate_text = "caller";
            if (a->burst)
                return rlctl_usage_error(ctx, "template '%s' is rate = caller: each key's "
                                         "burst is its own rate's count (no burst=)", a->name);
        }
    } else {
        if ((r = rlctl_find(ctx, a->name, &h)) != 0)
            return r;
        if (a->max_keys || a->overflow || a->caller)
            return rlctl_usage_error(ctx, "'%s' is a limit: max_keys=, overflow= and "
                                     "rate=caller are for templates", a->name);
        if ((r = rlctl_limit_read(ctx->client, h, &cur)) < 0)
            return rlctl_fail(rlctl_exit_for(r), "limit '%s': %s", a->name, rld_strerror(r));
    }
    if (!a->rate_text) {
        a->count = cur.info.rate_count;
        a->period_ns = cur.info.rate_period_ns;
        a->rate_text = "";
    }
    if (!a->algo_text) {
        a->algo = cur.info.algorithm;       /* RLD_ALGO_* are the RLDI_ALGO_* values */
        if (a->burst && a->algo != RLDI_ALGO_GCRA)
            return rlctl_usage_error(ctx, "%s '%s' is a %s window: burst= is for gcra "
                                     "(give algorithm=gcra to change it)",
                                     a->tmpl ? "template" : "limit", a->name,
                                     rldi_algo_name(a->algo));
    }
    if (a->algo == RLDI_ALGO_GCRA && !a->burst && !a->caller) {
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

/* Is NAME a template, as the segment shows it? (false when it cannot be read: the daemon
 * then says what is wrong) */
static bool is_template(rlctl_ctx *ctx, const char *name)
{
    rld_template tp;
    rld_limit h;
    if (!ctx->client && rld_open(ctx->paths.instance, 0, &ctx->client) < 0) {
        ctx->client = NULL;
        return false;
    }
    return rld_find(ctx->client, name, &h) == -ENOENT &&
           rld_find_template(ctx->client, name, &tp) == 0;
}

/* Send REQ for limit (or template) NAME and report: "VERB NAME[: DETAIL]" and the daemon's
 * note on a line of its own, or {"ok": true, "name": ..., "note": null or the note}. */
static int simple_call(rlctl_ctx *ctx, Rld__V1__Request *req, const char *name,
                       const char *verb, const put_args *put, bool tmpl)
{
    Rld__V1__Reply *rep;
    int r = rlctl_call(ctx, req, RLCTL_CALL_MS, &rep);
    if (r != 0)
        return r;
    if (rep->code == -ENOENT || rep->code == -ESTALE) {
        /* Said here, by name: the daemon's text may be librld's message for -ENOENT,
         * which cannot tell an instance from a limit. */
        r = rlctl_fail(RLCTL_EXIT_NOTFOUND, "%s %s: no %s '%s' in instance '%s' (rlctl "
                       "list shows them)", ctx->cmd->name, name, tmpl ? "template" : "limit",
                       name, ctx->paths.instance);
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
    if (put && put->caller)
        snprintf(rate, sizeof(rate), "caller");
    else if (put)
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
            if (put->caller)
                rlctl_json_null(&j, "burst");
            else if (put->algo != RLDI_ALGO_GCRA)
                rlctl_json_u64(&j, "burst", put->count);
            else if (put->burst)
                rlctl_json_u64(&j, "burst", put->burst);
            else
                rlctl_json_u64(&j, "burst", put->count);
            if (put->algo == RLDI_ALGO_FIXED)
                rlctl_json_u64(&j, "align_ns", put->align_ns);
        }
        if (tmpl)
            rlctl_json_bool(&j, "template", true);
        if (put && put->tmpl) {
            rlctl_json_u64(&j, "max_keys", put->max_keys ? put->max_keys
                                                         : RLDI_MAX_KEYS_DEFAULT);
            rlctl_json_str(&j, "overflow", put->overflow ? put->overflow : "deny");
        }
        rlctl_json_str(&j, "note", note[0] ? note : NULL);
        rlctl_json_end(&j, '}');
        return RLCTL_EXIT_OK;
    }
    char keys[96] = "";
    if (put && put->tmpl)
        snprintf(keys, sizeof(keys), ", max_keys %llu, overflow %s",
                 (unsigned long long)(put->max_keys ? put->max_keys : RLDI_MAX_KEYS_DEFAULT),
                 put->overflow ? put->overflow : "deny");
    const char *per = put && put->caller ? " (each key's own)" : put && put->tmpl ? " per key"
                                                                                 : "";
    const char *what = tmpl ? "template " : "";
    if (put && put->algo == RLDI_ALGO_SLIDING) {
        printf("%s %s%s: rate %s%s, sliding window%s\n", verb, what, name, rate, per, keys);
    } else if (put && put->algo == RLDI_ALGO_FIXED) {
        char al[48] = "";
        if (put->align_ns == RLD_ALIGN_FIRST) {
            snprintf(al, sizeof(al), " from its first take");
        } else if (put->align_ns == RLD_ALIGN_ELASTIC) {
            snprintf(al, sizeof(al), ", elastic");
        } else if (put->align_ns) {
            snprintf(al, sizeof(al), " aligned +");
            rldi_format_duration(al + 10, sizeof(al) - 10, put->align_ns);
        }
        printf("%s %s%s: rate %s%s, fixed window%s%s\n", verb, what, name, rate, per, al, keys);
    } else if (put && put->caller) {
        printf("%s %s%s: rate %s%s%s\n", verb, what, name, rate, per, keys);
    } else if (put) {
        printf("%s %s%s: rate %s%s, burst %llu%s\n", verb, what, name, rate, per,
               (unsigned long long)(put->burst ? put->burst : put->count), keys);
    } else {
        printf("%s %s%s\n", verb, what, name);
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
    if (a.caller)
        snprintf(rate, sizeof(rate), "caller");
    else
        rldi_format_rate(rate, sizeof(rate), a.count, a.period_ns);   /* parses back the same */
    Rld__V1__LimitConfig lc = RLD__V1__LIMIT_CONFIG__INIT;
    lc.name = (char *)a.name;
    lc.rate = rate;
    lc.burst = a.burst;            /* 0: the rate's count, as in rld.conf */
    lc.algorithm = (char *)rldi_algo_name(a.algo);
    lc.align_ns = a.align_set ? a.align_ns : 0;
    lc.template_ = a.tmpl;
    lc.max_keys = (uint32_t)a.max_keys;     /* 0: the default (checked: at most 2^28) */
    lc.overflow = (char *)(a.overflow ? a.overflow : "");
    Rld__V1__Put p = RLD__V1__PUT__INIT;
    p.limit = &lc;
    p.create_only = create;
    p.update_only = !create;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_PUT;
    req.put = &p;
    return simple_call(ctx, &req, a.name, create ? "created" : "changed", &a, a.tmpl);
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
    bool tmpl = is_template(ctx, ctx->argv[0]);
    return simple_call(ctx, &req, ctx->argv[0], "deleted", NULL, tmpl);
}

/*
 * reset TEMPLATE KEY: that key full again. A key not in the table is full already: said,
 * and exit 0. --json: {"ok": true, "name", "template": true, the key fields, "existed"}.
 */
static int reset_key(rlctl_ctx *ctx, const char *name, const uint8_t *key, size_t len)
{
    Rld__V1__Reset rs = RLD__V1__RESET__INIT;
    rs.limit = (char *)name;
    rs.key.data = (uint8_t *)key;
    rs.key.len = len;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RESET;
    req.reset = &rs;
    bool tmpl = is_template(ctx, name);
    Rld__V1__Reply *rep;
    int r = rlctl_call(ctx, &req, RLCTL_CALL_MS, &rep);
    if (r != 0)
        return r;
    int code = rep->code;
    bool existed = code == 0;
    char kt[RLCTL_KEY_TEXT];
    rlctl_key_text(key, len, len, kt, sizeof(kt));
    if (code == -ENOENT && tmpl) {
        code = 0;                       /* the template is there, the key is not: full */
    } else if (code == -ENOENT || code == -ESTALE) {
        r = rlctl_fail(RLCTL_EXIT_NOTFOUND, "reset %s: no template '%s' in instance '%s' "
                       "(rlctl list shows them)", name, name, ctx->paths.instance);
    } else if (code != 0) {
        char what[RLDI_NAME_MAX + RLCTL_KEY_TEXT + 16];
        snprintf(what, sizeof(what), "reset %s key %s", name, kt);
        r = rlctl_reply_error(ctx, what, rep);
    }
    rld__v1__reply__free_unpacked(rep, NULL);
    if (code != 0)
        return r;
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_bool(&j, "ok", true);
        rlctl_json_str(&j, "name", name);
        rlctl_json_bool(&j, "template", true);
        rlctl_json_key_fields(&j, key, len, len);
        rlctl_json_bool(&j, "existed", existed);
        rlctl_json_end(&j, '}');
    } else if (existed) {
        printf("reset template %s key %s: full again\n", name, kt);
    } else {
        printf("reset template %s key %s: not in the table (full already)\n", name, kt);
    }
    return RLCTL_EXIT_OK;
}

static int check_reset(rlctl_ctx *ctx)
{
    uint8_t key[RLDI_KEY_MAX];
    size_t len;
    int r = rlctl_check_name(ctx, ctx->argv[0]);
    if (r == 0 && (ctx->argc > 1 || ctx->optv[0]))
        r = rlctl_arg_key(ctx, ctx->argc > 1 ? ctx->argv[1] : NULL, ctx->optv[0], key, &len);
    return r;
}

static int cmd_reset(rlctl_ctx *ctx)
{
    const char *name = ctx->argv[0];
    if (ctx->argc > 1 || ctx->optv[0]) {
        uint8_t key[RLDI_KEY_MAX];
        size_t len;
        int r = rlctl_arg_key(ctx, ctx->argc > 1 ? ctx->argv[1] : NULL, ctx->optv[0], key, &len);
        return r != 0 ? r : reset_key(ctx, name, key, len);
    }
    Rld__V1__Reset rs = RLD__V1__RESET__INIT;
    rs.limit = (char *)name;
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_RESET;
    req.reset = &rs;
    bool tmpl = is_template(ctx, name);
    return simple_call(ctx, &req, name, tmpl ? "reset (every key full again):"
                                             : "reset (full again):", NULL, tmpl);
}

static int cmd_revert(rlctl_ctx *ctx)
{
    Rld__V1__Revert rv = RLD__V1__REVERT__INIT;
    rv.limit = ctx->argv[0];
    Rld__V1__Request req = RLD__V1__REQUEST__INIT;
    req.body_case = RLD__V1__REQUEST__BODY_REVERT;
    req.revert = &rv;
    return simple_call(ctx, &req, ctx->argv[0], "reverted", NULL, false);
}

/* --json for all five: {"ok": true, "name": NAME, "note"}, create and set add "rate",
 * "algorithm", "burst" (the count for a window) and, for fixed windows, "align_ns"; for a
 * template, "template": true, and create and set add "max_keys" and "overflow". */
static const rlctl_opt put_opts[] = {
    { "template", "NAME", "a template (keyed limits): max_keys=N, overflow=O" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_create = {
    .name = "create", .args = "NAME rate=R [burst=B] [algorithm=A] [align=D]",
    .summary = "Create a limit, or a template, at run time",
    .help = "The burst defaults to the rate's count. algorithm= is gcra (the default),\n"
            "sliding (at most COUNT in any PERIOD) or fixed (COUNT per wall-clock window;\n"
            "align=+15min shifts the windows). Exit 1 if the limit exists already.\n"
            "It lives until deleted, or until a reload whose file does not declare it.\n"
            "Needs root or [rld] admin_group (else exit 4).\n"
            "--template NAME rate=R [burst=B] [algorithm=A] [align=D] [max_keys=N]\n"
            "[overflow=deny|allow] creates a template of keyed limits: each key's rate and\n"
            "burst (rate=caller: each key's own rate, from the client), a table of max_keys\n"
            "keys (default 100000), and what a new key gets while the table is full (deny:\n"
            "refused, the default; allow: let through). Its table needs room in the segment:\n"
            "a table left by a deleted template of the same size, or room the file's\n"
            "templates left. When there is none (exit 1), declare the template in rld.conf\n"
            "and reload: the segment grows for it, every limit and key carried.\n",
    .min_args = 0, .max_args = 7, .needs_daemon = true, .opts = put_opts, .check = check_put,
    .exec = cmd_create,
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
            "limit. Needs root or [rld] admin_group (else exit 4).\n"
            "A template created at run time (NAME, or --template NAME): the same for every\n"
            "key at once, each keeping its state in time (a change of algorithm, or of\n"
            "rate=caller, makes every key full), and overflow=deny|allow; max_keys=N only\n"
            "within the size of its table (another size: in rld.conf, and reload). A\n"
            "template of rld.conf is changed there (exit 4).\n",
    .min_args = 0, .max_args = 7, .needs_daemon = true, .opts = put_opts, .check = check_put,
    .exec = cmd_set,
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
    .summary = "Delete a limit or a template",
    .help = "Processes holding a handle to it then get -ESTALE. A limit declared in\n"
            "rld.conf comes back on the next reload. Needs root or [rld] admin_group.\n"
            "A template is deleted with all its keys.\n",
    .min_args = 1, .max_args = 1, .needs_daemon = true, .check = check_name,
    .exec = cmd_delete,
};

static const rlctl_opt reset_opts[] = {
    { "key-hex", "HEX", "the KEY of a template as hex digits (any bytes)" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_reset = {
    .name = "reset", .args = "NAME [KEY]",
    .summary = "Make a limit full again (debt forgiven)",
    .help = "A template: every key full again (their buckets are dropped). A template and\n"
            "a KEY (its bytes, or --key-hex HEX): that key only; a key not in the table is\n"
            "full already (said, exit 0). Needs root or [rld] admin_group (else exit 4).\n",
    .min_args = 1, .max_args = 2, .needs_daemon = true, .opts = reset_opts,
    .check = check_reset, .exec = cmd_reset,
};
