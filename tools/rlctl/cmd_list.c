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

/* status's algorithm line of a fixed window: wall-clock periods (ALIGN after each), or
 * anchored at the first take, or elastic. */
static void print_fixed(uint64_t align_ns)
{
    if (align_ns == RLD_ALIGN_FIRST) {
        printf("%-16s fixed window (the count per period from its first take)\n", "algorithm");
    } else if (align_ns == RLD_ALIGN_ELASTIC) {
        printf("%-16s fixed window (elastic: each attempt pushes its end a period on)\n",
               "algorithm");
    } else {
        printf("%-16s fixed window (the count per wall-clock period", "algorithm");
        if (align_ns)
            printf(", starting +%s", rlctl_dur(align_ns));
        printf(")\n");
    }
}

/* Say on stderr that GLOBs selected nothing (the output itself stays well-formed). */
static void note_no_match(const rlctl_ctx *ctx, const rlctl_seg_info *si, uint32_t templates)
{
    fprintf(stderr, "rlctl: no limit of instance '%s' matches", ctx->paths.instance);
    for (int i = 0; i < ctx->nglobs; i++)
        fprintf(stderr, " '%s'", ctx->globs[i]);
    if (templates)
        fprintf(stderr, " (of %u limits and %u templates; `rlctl list` shows them all)\n",
                si->limits, templates);
    else
        fprintf(stderr, " (of %u; `rlctl list` shows them all)\n", si->limits);
}

/* The templates' table of list: after the limits', one line apart. */
static void print_templates(const rlctl_tmpl *v, size_t n)
{
    static const char *const head[] = { "TEMPLATE", "RATE", "BURST", "KEYS", "MAX_KEYS",
                                        "EVICTIONS", "OVERFLOWS", "ADMITTED", "DENIED" };
    static const bool right[] = { false, false, true, true, true, true, true, true, true };
    rlctl_table t;
    rlctl_table_init(&t, 9, head, right);
    for (size_t i = 0; i < n; i++) {
        const rlctl_tmpl *p = &v[i];
        char rate[64], burst[24], keys[24], max[24], ev[24], ov[40], adm[24], den[24];
        bool window = p->info.algorithm != RLD_ALGO_GCRA && !p->unlimited;
        snprintf(rate, sizeof(rate), "%s%s%s", p->rate, window ? " " : "",
                 window ? rldi_algo_name(p->info.algorithm) : "");
        window |= p->caller_rate;       /* each key its own burst: none to show */
        snprintf(ov, sizeof(ov), "%llu%s", (unsigned long long)p->overflows,
                 p->overflow_allow ? " allow" : "");
        rlctl_table_row(&t, p->info.name, rate,
                        p->unlimited || window ? "-" : num(burst, sizeof(burst), p->info.burst),
                        num(keys, sizeof(keys), p->keys), num(max, sizeof(max), p->info.max_keys),
                        num(ev, sizeof(ev), p->evictions), ov,
                        num(adm, sizeof(adm), p->info.admitted),
                        num(den, sizeof(den), p->info.denied));
    }
    rlctl_table_print(&t, stdout, 0, 0, "\n");
    rlctl_table_free(&t);
}

static int check_list(rlctl_ctx *ctx)
{
    return rlctl_select(ctx, (const char *const *)ctx->argv, ctx->argc);
}

/*
 * list [GLOB...] --json: {"instance": "...", "limits": [LIMIT...], "templates":
 * [TEMPLATE...]}, LIMIT with the fields of rlctl_json_limit_fields (output.c; README.md),
 * TEMPLATE with those of rlctl_json_template_fields (tmpl.c), each sorted by name; only
 * those matching a GLOB when some are given.
 */
static int cmd_list(rlctl_ctx *ctx)
{
    rlctl_limit *v;
    size_t n, tn;
    rlctl_seg_info si;
    rlctl_tmpl *tv;
    uint32_t ttotal;
    int r = rlctl_snapshot(ctx, &v, &n, &si);
    if (r != 0)
        return r;
    if ((r = rlctl_templates(ctx, &tv, &tn, &ttotal)) != 0) {
        free(v);
        return r;
    }
    if (n == 0 && tn == 0 && ctx->nglobs > 0)
        note_no_match(ctx, &si, ttotal);
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
        rlctl_json_arr(&j, "templates");
        for (size_t i = 0; i < tn; i++) {
            rlctl_json_obj(&j, NULL);
            rlctl_json_template_fields(&j, &tv[i]);
            rlctl_json_end(&j, '}');
        }
        rlctl_json_end(&j, ']');
        rlctl_json_end(&j, '}');
        free(v);
        free(tv);
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
                        l->unlimited ? "-" : num(rem, sizeof(rem), l->st.remaining),
                        num(w, sizeof(w), l->info.waiters), num(adm, sizeof(adm), l->info.admitted),
                        num(den, sizeof(den), l->info.denied));
    }
    rlctl_table_print(&t, stdout, 0, 0, "\n");
    rlctl_table_free(&t);
    if (tn > 0) {
        putchar('\n');
        print_templates(tv, tn);
    }
    free(v);
    free(tv);
    return RLCTL_EXIT_OK;
}

const rlctl_cmd rlctl_cmd_list = {
    .name = "list", .args = "[GLOB...]",
    .summary = "Limits and templates: rate, burst, remaining",
    .help = "Every limit, or those whose names match a GLOB (fnmatch(3): * ? [...]; '*'\n"
            "also matches '.', '/' and ':'; quote it from the shell): rlctl list 'llm.*'.\n"
            "Reads the instance's segment: works while the daemon is down. ADMITTED counts\n"
            "tokens admitted and kept, DENIED calls, since the limit was created (each\n"
            "process publishes its counts in batches: up to 64 calls or 50 ms late); --json\n"
            "adds the tokens refunded, rolled back and debited.\n"
            "Templates (keyed limits), if any, follow in a table of their own, after an\n"
            "empty line: each key's rate and burst, KEYS live now of MAX_KEYS, EVICTIONS\n"
            "(idle keys reclaimed), OVERFLOWS (new keys refused while the table was full;\n"
            "'allow' when they are let through), ADMITTED and DENIED over all its keys.\n"
            "rlctl keys TEMPLATE shows the keys.\n",
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
 *   "timed_out_waits", "from_file", "overridden" (declared in the file and set at run
 *   time), "file_rate", "file_burst" (what the file says when overridden, else null),
 *   "scope", "global"} from its Status reply; "global" is null for a host limit, else
 *   {"state", "leased_tokens", "share", "hosts", "demand", "leased_total",
 *   "returned_total", "lease_calls"}.
 */
/* status TEMPLATE: the template and its table (the keys: rlctl keys). */
static int template_status(rlctl_ctx *ctx, const char *name)
{
    rlctl_tmpl tp;
    int r = rlctl_find_template(ctx, name, &tp, NULL);
    if (r != 0)
        return r;
    const Rld__V1__LimitStatus *ls;
    Rld__V1__Reply *rep = daemon_status(ctx, name, &ls);
    if (ls && (!ls->kind || strcmp(ls->kind, "template") != 0))
        ls = NULL;                      /* an older daemon, or another one meanwhile */
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "kind", "template");
        rlctl_json_template_fields(&j, &tp);
        if (ls) {
            rlctl_json_obj(&j, "daemon");
            rlctl_json_bool(&j, "from_file", ls->from_file);
            rlctl_json_end(&j, '}');
        } else {
            rlctl_json_null(&j, "daemon");
        }
        rlctl_json_end(&j, '}');
    } else {
        printf("%-16s %s\n", "template", tp.info.name);
        if (tp.caller_rate)
            printf("%-16s %s\n", "rate", "caller: each key's own, given by the client "
                   "(rld_try_key_rate), its burst its count");
        else if (tp.unlimited)
            printf("%-16s %s\n", "rate", "unlimited (admits everything, still counted)");
        else if (tp.info.rate_period_ns == 1000000000u)
            printf("%-16s %s per key\n", "rate", tp.rate);
        else
            printf("%-16s %s per key (%.6g/s)\n", "rate", tp.rate, rlctl_rate_per_s(&tp.info));
        if (!tp.unlimited && tp.info.algorithm == RLD_ALGO_FIXED) {
            print_fixed(tp.info.align_ns);
        } else if (!tp.unlimited && tp.info.algorithm == RLD_ALGO_SLIDING) {
            printf("%-16s %s\n", "algorithm", "sliding window (at most the count in any period)");
        } else if (!tp.unlimited) {
            printf("%-16s %s\n", "algorithm", "gcra");
            if (!tp.caller_rate)
                printf("%-16s %llu per key\n", "burst", (unsigned long long)tp.info.burst);
        }
        printf("%-16s %u (a table of %llu places)\n", "max_keys", tp.info.max_keys,
               (unsigned long long)tp.places);
        printf("%-16s %llu live\n", "keys", (unsigned long long)tp.keys);
        printf("%-16s %llu idle keys reclaimed\n", "evictions",
               (unsigned long long)tp.evictions);
        printf("%-16s %llu new keys %s: the table was full\n", "overflows",
               (unsigned long long)tp.overflows, tp.overflow_allow ? "let through" : "refused");
        printf("%-16s %s\n", "overflow", tp.overflow_allow
               ? "allow: a new key that finds the table full is admitted, without a bucket"
               : "deny: a new key that finds the table full is refused (-ENOSPC)");
        printf("%-16s %llu tokens (all keys)\n", "admitted", (unsigned long long)tp.info.admitted);
        printf("%-16s %llu calls (all keys)\n", "denied", (unsigned long long)tp.info.denied);
        if (ls)
            printf("%-16s %s\n", "declared", ls->from_file ? "in the configuration file"
                                                           : "at run time (rlctl create)");
        else
            printf("%-16s %s\n", "daemon", "not answering");
    }
    if (rep)
        rld__v1__reply__free_unpacked(rep, NULL);
    return RLCTL_EXIT_OK;
}

/*
 * status TEMPLATE KEY --json: {"template", the key fields (key, key_hex, length, truncated:
 * false), "exists" (in the table), "unlimited", "rate" (a rate = caller key's own, else
 * null), "burst", "remaining" (null when unlimited, or for a rate = caller key not in the
 * table, whose rate comes with its first take), "retry_after_ns", "reset_after_ns",
 * "waiters"}; a key not in the table is full.
 */
static int key_status(rlctl_ctx *ctx, const char *name, const char *text, const char *hex)
{
    uint8_t key[RLDI_KEY_MAX];
    size_t len;
    rlctl_tmpl tp;
    rldi_table t;
    rlctl_keystate ks;
    int r = rlctl_arg_key(ctx, text, hex, key, &len);
    if (r != 0 || (r = rlctl_find_template(ctx, name, &tp, &t)) != 0)
        return r;
    if ((r = rlctl_key_state(ctx, &tp, &t, key, len, &ks)) < 0)
        return rlctl_fail(rlctl_exit_for(r), "template '%s': %s", name, rld_strerror(r));
    /* a rate = caller key not in the table: its rate, so its burst, comes with it */
    bool unknown = tp.caller_rate && !ks.exists;
    char krate[48] = "";
    if (ks.rate_count)
        rldi_format_rate(krate, sizeof(krate), ks.rate_count, ks.rate_period_ns);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "template", tp.info.name);
        rlctl_json_key_fields(&j, key, len, len);
        rlctl_json_bool(&j, "exists", ks.exists);
        rlctl_json_bool(&j, "unlimited", ks.unlimited);
        rlctl_json_str(&j, "rate", *krate ? krate : NULL);
        if (ks.unlimited || unknown) {
            rlctl_json_null(&j, "burst");
            rlctl_json_null(&j, "remaining");
        } else {
            rlctl_json_u64(&j, "burst", ks.burst);
            rlctl_json_u64(&j, "remaining", ks.remaining);
        }
        rlctl_json_u64(&j, "retry_after_ns", ks.retry_after_ns);
        rlctl_json_u64(&j, "reset_after_ns", ks.reset_after_ns);
        rlctl_json_u64(&j, "waiters", ks.waiters);
        rlctl_json_end(&j, '}');
        return RLCTL_EXIT_OK;
    }
    char kt[RLCTL_KEY_TEXT];
    rlctl_key_text(key, len, len, kt, sizeof(kt));
    printf("%-16s %s\n", "template", tp.info.name);
    printf("%-16s %s (%zu byte%s)\n", "key", kt, len, len == 1 ? "" : "s");
    if (!ks.exists) {
        printf("%-16s %s\n", "state", "full (not in the table)");
    } else {
        printf("%-16s %s\n", "state", "in the table");
    }
    if (*krate)
        printf("%-16s %s (the key's own)\n", "rate", krate);
    if (ks.unlimited) {
        printf("%-16s %s\n", "remaining", "unlimited");
    } else if (unknown) {
        printf("%-16s %s\n", "remaining", "all of its burst (its rate comes with its first "
               "take)");
    } else {
        printf("%-16s %llu of %llu\n", "remaining", (unsigned long long)ks.remaining,
               (unsigned long long)ks.burst);
        if (ks.retry_after_ns)
            printf("%-16s %s (%s)\n", "retry after", rlctl_dur(ks.retry_after_ns),
                   tp.info.algorithm == RLD_ALGO_GCRA ? "in debt" : "window full");
        printf("%-16s %s\n", tp.info.algorithm == RLD_ALGO_GCRA ? "full in" : "window ends in",
               ks.reset_after_ns ? rlctl_dur(ks.reset_after_ns) : "0 (full)");
    }
    printf("%-16s %u\n", "waiters", ks.waiters);
    return RLCTL_EXIT_OK;
}

static int cmd_status(rlctl_ctx *ctx)
{
    const char *name = ctx->argv[0];
    if (ctx->argc > 1 || ctx->optv[0])
        return key_status(ctx, name, ctx->argc > 1 ? ctx->argv[1] : NULL, ctx->optv[0]);
    rld_limit h;
    rld_template tpl;
    if (rld_find(ctx->client, name, &h) == -ENOENT &&
        rld_find_template(ctx->client, name, &tpl) == 0)
        return template_status(ctx, name);
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
            rlctl_json_bool(&j, "overridden", ls->overridden);
            if (ls->overridden && ls->file_rate && *ls->file_rate) {
                rlctl_json_str(&j, "file_rate", ls->file_rate);
                rlctl_json_u64(&j, "file_burst", ls->file_burst);
            } else {
                rlctl_json_null(&j, "file_rate");
                rlctl_json_null(&j, "file_burst");
            }
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
                print_fixed(l.info.align_ns);
            } else {
                printf("%-16s %s\n", "algorithm", "gcra");
                printf("%-16s %llu\n", "burst", (unsigned long long)l.info.burst);
            }
            printf("%-16s %llu\n", "remaining", (unsigned long long)l.st.remaining);
            /* two waits, named apart: until a call fits, and until the debt is paid back */
            if (l.st.retry_after_ns)
                printf("%-16s %s (until a call of cost 1 fits)\n", "retry after",
                       rlctl_dur(l.st.retry_after_ns));
            if (l.st.debt_ns)
                printf("%-16s %s (until paid back; the limit is empty then)\n", "in debt for",
                       rlctl_dur(l.st.debt_ns));
            printf("%-16s %s\n", "full in", l.st.reset_after_ns ?
                   rlctl_dur(l.st.reset_after_ns) : "0 (full)");
        }
        printf("%-16s %u\n", "waiters", l.info.waiters);
        printf("%-16s %llu tokens\n", "admitted", (unsigned long long)l.info.admitted);
        printf("%-16s %llu tokens\n", "refunded", (unsigned long long)l.info.refunded);
        printf("%-16s %llu tokens\n", "rolled back", (unsigned long long)l.info.rolled_back);
        printf("%-16s %llu tokens\n", "debited", (unsigned long long)l.info.debited);
        printf("%-16s %llu calls\n", "denied", (unsigned long long)l.info.denied);
        rlctl_upstream_status(&l, ls, NULL);
        if (ls) {
            printf("%-16s %llu\n", "queued tokens", (unsigned long long)ls->queued_tokens);
            printf("%-16s %llu\n", "granted waits", (unsigned long long)ls->granted_waits);
            printf("%-16s %llu\n", "timed-out waits", (unsigned long long)ls->timed_out_waits);
            if (ls->overridden)
                printf("%-16s in the configuration file, set at run time (file says %s, burst "
                       "%llu)\n%-16s kept until the file's line changes; rlctl revert %s "
                       "returns to the file's\n", "declared",
                       ls->file_rate && *ls->file_rate ? ls->file_rate : "?",
                       (unsigned long long)ls->file_burst, "", name);
            else
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
    uint8_t key[RLDI_KEY_MAX];
    size_t len;
    int r = rlctl_check_name(ctx, ctx->argv[0]);
    if (r == 0 && (ctx->argc > 1 || ctx->optv[0]))
        r = rlctl_arg_key(ctx, ctx->argc > 1 ? ctx->argv[1] : NULL, ctx->optv[0], key, &len);
    return r;
}

static const rlctl_opt status_opts[] = {
    { "key-hex", "HEX", "the KEY of a template as hex digits (any bytes)" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_status = {
    .name = "status", .args = "NAME [KEY]",
    .summary = "One limit, template or key in full: debt, waits",
    .help = "The state comes from the segment (works while the daemon is down); queued\n"
            "tokens and wait counts from the daemon when it answers.\n"
            "A template: each key's rate, its table (max_keys, live keys, evictions,\n"
            "overflows) and overflow policy. A template and a KEY (its bytes, or\n"
            "--key-hex HEX): that key's bucket; a key not in the table is full (a key that\n"
            "is full again may be reclaimed at any time: that changes nothing).\n",
    .min_args = 1, .max_args = 2, .needs_segment = true, .opts = status_opts,
    .check = check_status, .exec = cmd_status,
};
