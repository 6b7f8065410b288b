/*
 * cmd_take.c - `rlctl try NAME [COST]` and `rlctl wait NAME [COST] [--timeout DUR]
 * [--priority P]`: take tokens from the shell, so scripts and cron jobs share a limit with
 * the processes that link librld. Exit 0 granted, 1 denied or timed out.
 *
 * wait is librld's rld_wait_ex: the fast path first, then the daemon's fair queue (FIFO
 * within a priority, across processes); with no daemon answering, a client-side
 * reservation and sleep, flagged degraded, which rlctl reports.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "rate.h"
#include "rlctl.h"

typedef struct outcome {
    int      code;              /* 0 granted, -EAGAIN denied, -ETIMEDOUT, ... */
    bool     degraded;          /* waited client-side: the daemon did not answer */
    bool     unlimited;
    bool     overflow;          /* a key let through without a bucket (overflow = allow) */
    uint64_t limit, remaining, retry_after_ns, reset_after_ns;
    uint32_t queue_position;
    uint64_t waited_ns;         /* wait: from the call to its answer */
} outcome;

static void from_result(outcome *o, int code, const rld_result *res)
{
    o->code = code;
    o->unlimited = (res->flags & RLD_F_UNLIMITED) != 0;
    o->limit = res->limit;
    o->remaining = res->remaining;
    o->retry_after_ns = res->retry_after_ns;
    o->reset_after_ns = res->reset_after_ns;
    o->queue_position = res->queue_position;
    o->degraded = (res->flags & RLD_F_DEGRADED) != 0;
    o->overflow = (res->flags & RLD_F_OVERFLOW) != 0;
}

/* The arguments of try and wait, parsed the same way by check and exec. */
typedef struct take_args {
    const char *name;
    uint64_t    cost;
    int64_t     timeout_ns;     /* < 0: none */
    int         priority;
    bool        keyed;          /* try --key: NAME is a template */
    uint8_t     key[RLDI_KEY_MAX];
    size_t      keylen;
    uint64_t    rate_count, rate_period_ns;   /* try --rate: a rate = caller key's rate */
} take_args;

static int parse_take(const rlctl_ctx *ctx, take_args *a)
{
    a->name = ctx->argv[0];
    a->cost = 1;
    a->timeout_ns = -1;
    a->priority = 0;
    a->keyed = false;
    a->rate_count = a->rate_period_ns = 0;
    int r = rlctl_check_name(ctx, a->name);
    if (r == 0 && ctx->argc > 1)
        r = rlctl_arg_u64(ctx, "cost", ctx->argv[1], &a->cost);
    /* --key KEY, --key-hex HEX: try's options 0 and 1, wait's 2 and 3 */
    int k = ctx->cmd == &rlctl_cmd_try ? 0 : 2;
    if (r == 0 && (ctx->optv[k] || ctx->optv[k + 1])) {
        a->keyed = true;
        r = rlctl_arg_key(ctx, ctx->optv[k], ctx->optv[k + 1], a->key, &a->keylen);
    }
    if (r == 0 && ctx->cmd == &rlctl_cmd_try && ctx->optv[2]) {
        const char *why = NULL;
        if (!a->keyed)
            return rlctl_usage_error(ctx, "--rate is a key's rate: give --key KEY too");
        if (rldi_parse_rate(ctx->optv[2], &a->rate_count, &a->rate_period_ns, &why) < 0 ||
            a->rate_count == 0)
            return rlctl_usage_error(ctx, "bad --rate '%s': %s (a key's rate, e.g. 100/min)",
                                     ctx->optv[2], why ? why : "not unlimited");
    }
    if (r != 0 || ctx->cmd != &rlctl_cmd_wait)
        return r;
    uint64_t v;
    if (ctx->optv[0] && (r = rlctl_arg_duration(ctx, "timeout", ctx->optv[0], &v)) != 0)
        return r;
    if (ctx->optv[0])
        a->timeout_ns = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    if (ctx->optv[1] && (r = rlctl_arg_u64(ctx, "priority", ctx->optv[1], &v)) != 0)
        return r;
    if (ctx->optv[1] && v > RLD_PRIORITY_MAX)
        return rlctl_usage_error(ctx, "bad priority '%s': 0 (default) to %d (most urgent)",
                                 ctx->optv[1], RLD_PRIORITY_MAX);
    if (ctx->optv[1])
        a->priority = (int)v;
    return 0;
}

static int check_take(rlctl_ctx *ctx)
{
    take_args a;
    return parse_take(ctx, &a);
}

/*
 * try --json and wait --json: {"name", "cost", "granted" (bool), "unlimited",
 * "limit" (burst; null when unlimited), "remaining" (null when unlimited),
 * "retry_after_ns" (when denied: until COST would fit), "reset_after_ns",
 * "queue_position" (callers ahead: when denied, or when a wait was queued); wait adds
 * "degraded" (the daemon did not answer: waited client-side) and "waited_ns".
 */
static void print_outcome(const rlctl_ctx *ctx, const char *name, uint64_t cost,
                          const outcome *o, bool is_wait, const take_args *key)
{
    bool ok = o->code == 0;
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "name", name);
        if (key && key->keyed) {
            rlctl_json_key_fields(&j, key->key, key->keylen, key->keylen);
            rlctl_json_bool(&j, "overflow", o->overflow);
        }
        rlctl_json_u64(&j, "cost", cost);
        rlctl_json_bool(&j, "granted", ok);
        rlctl_json_bool(&j, "unlimited", o->unlimited);
        if (o->unlimited) {
            rlctl_json_null(&j, "limit");
            rlctl_json_null(&j, "remaining");
        } else {
            rlctl_json_u64(&j, "limit", o->limit);
            rlctl_json_u64(&j, "remaining", o->remaining);
        }
        rlctl_json_u64(&j, "retry_after_ns", o->retry_after_ns);
        rlctl_json_u64(&j, "reset_after_ns", o->reset_after_ns);
        rlctl_json_u64(&j, "queue_position", o->queue_position);
        if (is_wait) {
            rlctl_json_bool(&j, "degraded", o->degraded);
            rlctl_json_u64(&j, "waited_ns", o->waited_ns);
        }
        rlctl_json_end(&j, '}');
        return;
    }
    const char *tok = cost == 1 ? "token" : "tokens";
    char who[RLDI_NAME_MAX + RLCTL_KEY_TEXT + 8];
    if (key && key->keyed) {
        char kt[RLCTL_KEY_TEXT];
        rlctl_key_text(key->key, key->keylen, key->keylen, kt, sizeof(kt));
        snprintf(who, sizeof(who), "%s key %s", name, kt);
        name = who;
    }
    if (ok && o->overflow)
        printf("granted: %s is new and the table is full: let through without a bucket "
               "(overflow = allow)\n", name);
    else if (ok && o->unlimited)
        printf("granted: %s is unlimited\n", name);
    else if (ok)
        printf("granted: %llu %s from %s, %llu of %llu remaining%s%s\n",
               (unsigned long long)cost, tok, name, (unsigned long long)o->remaining,
               (unsigned long long)o->limit, is_wait && o->waited_ns ? ", waited " : "",
               is_wait && o->waited_ns ? rlctl_dur(o->waited_ns) : "");
    else if (o->code == -ETIMEDOUT)
        printf("timed out: %llu %s from %s would need %s more\n", (unsigned long long)cost,
               tok, name, rlctl_dur(o->retry_after_ns));
    else
        printf("denied: %s has %llu of %llu tokens%s; retry after %s\n", name,
               (unsigned long long)o->remaining, (unsigned long long)o->limit,
               o->queue_position ? " and callers queued" : "", rlctl_dur(o->retry_after_ns));
}

static int too_big(const rlctl_ctx *ctx, const char *name, uint64_t cost)
{
    rld_limit_info info;
    rld_limit h;
    rld_template tp;
    unsigned long long burst = 0;
    if (rld_find(ctx->client, name, &h) == 0 && rld_info(ctx->client, h, &info) == 0)
        burst = info.burst;
    else if (rld_find_template(ctx->client, name, &tp) == 0 &&
             rld_info(ctx->client, (rld_limit){ tp.slot, tp.gen }, &info) == 0)
        burst = info.burst;
    return rlctl_fail(RLCTL_EXIT_USAGE, "cost %llu exceeds the burst of %s (%llu): it can "
                      "never be admitted", (unsigned long long)cost, name, burst);
}

/* -E2BIG for a key: its burst is the template's, or with rate = caller its own rate's count. */
static int too_big_key(rlctl_ctx *ctx, const take_args *a)
{
    rlctl_tmpl tp;
    rldi_table t;
    rlctl_keystate ks;
    char buf[256], kt[RLCTL_KEY_TEXT];
    unsigned long long burst = 0;
    rlctl_capture_errors(buf, sizeof(buf));
    if (rlctl_find_template(ctx, a->name, &tp, &t) == 0 &&
        rlctl_key_state(ctx, &tp, &t, a->key, a->keylen, &ks) == 0)
        burst = a->rate_count ? a->rate_count : ks.burst;
    rlctl_capture_errors(NULL, 0);
    rlctl_key_text(a->key, a->keylen, a->keylen, kt, sizeof(kt));
    return rlctl_fail(RLCTL_EXIT_USAGE, "cost %llu exceeds the burst of %s key %s (%llu): it "
                      "can never be admitted", (unsigned long long)a->cost, a->name, kt, burst);
}

/* try TEMPLATE --key KEY: rld_try_key, which creates the key's bucket if need be. Its code
 * (0, -EAGAIN, ...), or *EXIT set (> 0) when the reason is printed already. */
static int try_key(rlctl_ctx *ctx, const take_args *a, rld_result *res, int *exit)
{
    rld_template tp;
    rld_limit h;
    int r = rld_find_template(ctx->client, a->name, &tp);
    if (r == -ENOENT && rld_find(ctx->client, a->name, &h) == 0)
        *exit = rlctl_fail(RLCTL_EXIT_USAGE, "'%s' is a limit, not a template: --key is for "
                           "templates", a->name);
    else if (r == -ENOENT)
        *exit = rlctl_fail(RLCTL_EXIT_NOTFOUND, "no template '%s' in instance '%s' (rlctl list "
                           "shows them)", a->name, ctx->paths.instance);
    if (r < 0)
        return r;
    int code = a->rate_count ? rld_try_key_rate(ctx->client, tp, a->key, a->keylen,
                                                a->rate_count, a->rate_period_ns, a->cost, res)
                             : rld_try_key(ctx->client, tp, a->key, a->keylen, a->cost, res);
    if (code == -EINVAL || code == -ERANGE) {
        /* what librld refuses here: a rate on a template of fixed rates, a new key of a
         * rate = caller template without one, a rate out of a key's range */
        rlctl_tmpl t;
        char buf[256];
        rlctl_capture_errors(buf, sizeof(buf));
        bool caller = rlctl_find_template(ctx, a->name, &t, NULL) == 0 && t.caller_rate;
        rlctl_capture_errors(NULL, 0);
        if (code == -ERANGE)
            *exit = rlctl_fail(RLCTL_EXIT_USAGE, "bad --rate '%s': a key's rate is at most "
                               "4294967295 per period, the period whole ms up to 49 days",
                               ctx->optv[2]);
        else if (caller && !a->rate_count)
            *exit = rlctl_fail(RLCTL_EXIT_USAGE, "template '%s' is rate = caller: a new key "
                               "needs its rate (--rate R)", a->name);
        else if (!caller && a->rate_count)
            *exit = rlctl_fail(RLCTL_EXIT_USAGE, "template '%s' has its keys' rate: --rate is "
                               "for rate = caller templates", a->name);
        return code;
    }
    if (code == -ENOSPC) {
        char kt[RLCTL_KEY_TEXT];
        rlctl_key_text(a->key, a->keylen, a->keylen, kt, sizeof(kt));
        *exit = rlctl_fail(RLCTL_EXIT_DENIED, "denied: key %s is new and template '%s' has no "
                           "room for it: its table is full of keys with state (overflow = "
                           "deny; rlctl keys %s shows them)", kt, a->name, a->name);
    }
    return code;
}

/* A limit of concurrency = N and no rate: try and wait take no lease, and would say only
 * "unlimited". Said on stderr (the answer on stdout stays what scripts parse). */
static void lease_note(rlctl_ctx *ctx, const char *name, rld_limit h)
{
    rld_limit_info info;
    if (ctx->json || rld_info(ctx->client, h, &info) < 0 || !info.concurrency ||
        info.rate_count != 0)
        return;
    fprintf(stderr, "note: '%s' has no rate, only concurrency = %u: rlctl %s takes no lease "
            "(leases: rld_acquire_lease(3); rlctl status %s shows the holders)\n", name,
            info.concurrency, ctx->cmd ? ctx->cmd->name : "try", name);
}

static int cmd_try(rlctl_ctx *ctx)
{
    take_args a;
    rld_limit h;
    int r = parse_take(ctx, &a);
    if (r != 0 || (!a.keyed && (r = rlctl_find(ctx, a.name, &h)) != 0))
        return r;
    if (!a.keyed)
        lease_note(ctx, a.name, h);
    rld_result res;
    memset(&res, 0, sizeof(res));
    int done = 0;
    int code = a.keyed ? try_key(ctx, &a, &res, &done) : rld_try(ctx->client, h, a.cost, &res);
    if (done)
        return done;
    if (code == -E2BIG)
        return a.keyed ? too_big_key(ctx, &a) : too_big(ctx, a.name, a.cost);
    if (code < 0 && code != -EAGAIN)
        return rlctl_fail(rlctl_exit_for(code), "try %s: %s", a.name, rld_strerror(code));
    outcome o;
    memset(&o, 0, sizeof(o));
    from_result(&o, code, &res);
    print_outcome(ctx, a.name, a.cost, &o, false, &a);
    return code == 0 ? RLCTL_EXIT_OK : RLCTL_EXIT_DENIED;
}

static const rlctl_opt try_opts[] = {
    { "key", "KEY", "NAME is a template: from KEY's bucket (made if new)" },
    { "key-hex", "HEX", "the same, the key given as hex digits (any bytes)" },
    { "rate", "R", "the key's rate (rate = caller templates: a plan)" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_try = {
    .name = "try", .args = "NAME [COST]",
    .summary = "Take COST tokens now, or exit 1 (denied)",
    .help = "COST defaults to 1. Exit 0 granted, 1 denied; a denial prints when COST would\n"
            "fit (retry_after). Denied while callers are queued at the daemon: they come\n"
            "first. A COST above the burst is a usage error (exit 2): it never fits.\n"
            "With --key, NAME is a template and the tokens come from that key's bucket,\n"
            "created when the key is new (as rld_try_key does); a new key that finds the\n"
            "table full is denied (exit 1), or let through with overflow = allow. A template\n"
            "of rate = caller takes each key's rate from --rate R (rld_try_key_rate): a\n"
            "new key needs it, an existing one changes to it.\n",
    .min_args = 1, .max_args = 2, .needs_segment = true, .opts = try_opts,
    .check = check_take, .exec = cmd_try,
};

/* wait TEMPLATE --key KEY: the key's handle (rld_key: created if new). 0, or an exit code
 * (the reason printed). */
static int key_handle(rlctl_ctx *ctx, const take_args *a, rld_limit *h)
{
    rld_template tp;
    int r = rld_find_template(ctx->client, a->name, &tp);
    if (r == -ENOENT && rld_find(ctx->client, a->name, h) == 0)
        return rlctl_fail(RLCTL_EXIT_USAGE, "'%s' is a limit, not a template: --key is for "
                          "templates", a->name);
    if (r == -ENOENT)
        return rlctl_fail(RLCTL_EXIT_NOTFOUND, "no template '%s' in instance '%s' (rlctl list "
                          "shows them)", a->name, ctx->paths.instance);
    if (r == 0)
        r = rld_key(ctx->client, tp, a->key, a->keylen, h);
    if (r == -ENOSPC) {
        char kt[RLCTL_KEY_TEXT];
        rlctl_key_text(a->key, a->keylen, a->keylen, kt, sizeof(kt));
        return rlctl_fail(RLCTL_EXIT_DENIED, "denied: key %s is new and template '%s' has no "
                          "room for it: its table is full of keys with state", kt, a->name);
    }
    if (r < 0)
        return rlctl_fail(rlctl_exit_for(r), "template '%s': %s", a->name, rld_strerror(r));
    return 0;
}

/* rld_wait_ex, timed: the wait the caller saw, whichever way it went. */
static void take_wait(rlctl_ctx *ctx, rld_limit h, const take_args *a, outcome *o)
{
    rld_wait_opts opts = { .priority = a->priority, .flags = 0 };
    rld_result res;
    memset(&res, 0, sizeof(res));
    uint64_t start = rldi_mono_ns();
    int code = rld_wait_ex(ctx->client, h, a->cost, a->timeout_ns, &opts, &res);
    from_result(o, code, &res);
    o->waited_ns = rldi_mono_ns() - start;
}

static int cmd_wait(rlctl_ctx *ctx)
{
    take_args a;
    rld_limit h;
    int r = parse_take(ctx, &a);
    if (r != 0 || (r = a.keyed ? key_handle(ctx, &a, &h) : rlctl_find(ctx, a.name, &h)) != 0)
        return r;
    if (!a.keyed)
        lease_note(ctx, a.name, h);
    outcome o;
    memset(&o, 0, sizeof(o));
    take_wait(ctx, h, &a, &o);
    if (o.degraded)
        fprintf(stderr, "rlctl: rld did not answer for instance '%s': waited client-side "
                "(degraded: no queue, no priority)\n", ctx->paths.instance);
    if (o.code == -E2BIG)
        return a.keyed ? too_big_key(ctx, &a) : too_big(ctx, a.name, a.cost);
    if (o.code != 0 && o.code != -EAGAIN && o.code != -ETIMEDOUT && o.code != -ECANCELED)
        return rlctl_fail(rlctl_exit_for(o.code), "wait %s: %s", a.name, rld_strerror(o.code));
    print_outcome(ctx, a.name, a.cost, &o, true, &a);
    return o.code == 0 ? RLCTL_EXIT_OK : RLCTL_EXIT_DENIED;
}

static const rlctl_opt wait_opts[] = {
    { "timeout", "DUR", "give up after DUR (250ms, 5s, 2min)" },
    { "priority", "P", "0 (default) to 7: higher ones are served first" },
    { "key", "KEY", "NAME is a template: wait on KEY's bucket" },
    { "key-hex", "HEX", "the same, the key given as hex digits" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_wait = {
    .name = "wait", .args = "NAME [COST]",
    .summary = "Queue fairly until COST tokens fit, take them",
    .help = "COST defaults to 1. Exit 0 granted, 1 timed out. Takes the tokens at once\n"
            "when they are there, else queues at the daemon (FIFO within a priority,\n"
            "across processes). A wait that would exceed --timeout is refused at once\n"
            "with the time it would have needed. When the daemon does not answer, waits\n"
            "client-side (degraded: no queue, no priority) and says so on stderr.\n"
            "With --key, NAME is a template and the wait is on that key's bucket (created\n"
            "when the key is new).\n",
    .min_args = 1, .max_args = 2, .needs_segment = true, .opts = wait_opts,
    .check = check_take, .exec = cmd_wait,
};
