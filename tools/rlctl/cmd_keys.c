/*
 * cmd_keys.c - `rlctl keys TEMPLATE [--top N]`: the live keys of a template, the fullest
 * first, read from its key table in the segment (so it works while the daemon is down).
 *
 * An entry keeps the first 15 bytes of its key, its length and a keyed hash, not the key:
 * a longer key is shown by its first bytes, marked "... (LEN bytes)". The walk is lock-free
 * and takes a moment on a large table: keys created or reclaimed meanwhile may or may not be
 * shown, and each key's figures are its own at the moment it was read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "bucket.h"
#include "rate.h"
#include "rlctl.h"

typedef struct keyrow {
    uint8_t  prefix[RLDI_KEY_PREFIX];
    uint8_t  n;                 /* bytes of the prefix known */
    uint16_t len;               /* the key's length */
    bool     unlimited;
    uint32_t waiters;
    uint64_t burst, remaining, retry_after_ns, reset_after_ns;
    uint64_t rate_count, rate_period_ns;    /* a rate = caller key's own, else 0 */
} keyrow;

/* < 0 when A is fuller than B: less remaining relative to its burst (for a window: more of
 * its count used), then the longer wait, then the later refill, then by key bytes. */
static int fuller(const keyrow *a, const keyrow *b)
{
    if (a->unlimited != b->unlimited)
        return a->unlimited ? 1 : -1;
    unsigned __int128 x = (unsigned __int128)a->remaining * (b->burst ? b->burst : 1);
    unsigned __int128 y = (unsigned __int128)b->remaining * (a->burst ? a->burst : 1);
    if (x != y)
        return x < y ? -1 : 1;
    if (a->retry_after_ns != b->retry_after_ns)
        return a->retry_after_ns > b->retry_after_ns ? -1 : 1;
    if (a->reset_after_ns != b->reset_after_ns)
        return a->reset_after_ns > b->reset_after_ns ? -1 : 1;
    int c = memcmp(a->prefix, b->prefix, a->n < b->n ? a->n : b->n);
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int fuller_q(const void *a, const void *b)
{
    return fuller(a, b);
}

/* The rows kept: all of them, or with --top N the N fullest in a heap whose root is the
 * least full of them (the one a fuller key replaces). */
typedef struct rows {
    keyrow *v;
    size_t  n, cap, top;        /* top 0: keep all */
    uint64_t seen;              /* live keys met */
} rows;

static void sift_down(keyrow *v, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && fuller(&v[l], &v[m]) > 0)
            m = l;
        if (r < n && fuller(&v[r], &v[m]) > 0)
            m = r;
        if (m == i)
            return;
        keyrow t = v[i];
        v[i] = v[m];
        v[m] = t;
        i = m;
    }
}

static int rows_add(rows *rs, const keyrow *k)
{
    rs->seen++;
    if (rs->top && rs->n == rs->top) {
        if (fuller(k, &rs->v[0]) < 0) {
            rs->v[0] = *k;
            sift_down(rs->v, rs->n, 0);
        }
        return 0;
    }
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 256;
        keyrow *v = realloc(rs->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        rs->v = v;
        rs->cap = cap;
    }
    rs->v[rs->n++] = *k;
    if (rs->top) {                      /* sift up */
        for (size_t i = rs->n - 1; i > 0;) {
            size_t p = (i - 1) / 2;
            if (fuller(&rs->v[i], &rs->v[p]) <= 0)
                break;
            keyrow t = rs->v[i];
            rs->v[i] = rs->v[p];
            rs->v[p] = t;
            i = p;
        }
    }
    return 0;
}

/* Walk T's entries: the live keys of its current epoch, each read between two loads of its
 * gen (an entry reused meanwhile is left out, not shown half old and half new). */
static int walk(const rldi_seg *s, const rldi_table *t, rows *rs)
{
    uint32_t epoch = rldi_table_epoch(s, t);
    uint64_t n = (uint64_t)t->nbuckets * RLDI_KEY_BUCKET;
    rldi_u128 now = rldi_now_fp();
    for (uint64_t i = 0; i < n; i++) {
        const rldi_key_entry *e = &t->entries[i];
        uint32_t g = rldi_load_acquire(&e->gen);
        if (!(g & 1) || RLDI_KEY_EPOCH(g) != epoch)
            continue;
        keyrow k;
        memset(&k, 0, sizeof(k));
        size_t len;
        k.n = (uint8_t)rldi_key_prefix(t, e, k.prefix, &len);
        k.len = (uint16_t)len;
        rlctl_entry_rate(t, e, &k.rate_count, &k.rate_period_ns);
        rldi_verdict v;
        if (rlctl_entry_peek(s, t, (uint32_t)i, g, now, &v) < 0)
            continue;                   /* reclaimed meanwhile */
        rldi_fence_acquire();
        if (rldi_load_relaxed(&e->gen) != g)
            continue;
        k.unlimited = (v.flags & RLDI_V_UNLIMITED) != 0;
        k.burst = v.limit;
        k.remaining = v.remaining > v.limit && !k.unlimited ? v.limit : v.remaining;
        k.retry_after_ns = v.retry_after_ns;
        k.reset_after_ns = v.reset_after_ns;
        k.waiters = v.waiters;
        if (rows_add(rs, &k) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int check_keys(rlctl_ctx *ctx)
{
    int r = rlctl_check_name(ctx, ctx->argv[0]);
    uint64_t top;
    if (r == 0 && ctx->optv[0] && (r = rlctl_arg_u64(ctx, "--top", ctx->optv[0], &top)) == 0 &&
        (top == 0 || top > 100000000u))
        r = rlctl_usage_error(ctx, "bad --top '%s': 1 to 100000000 keys", ctx->optv[0]);
    return r;
}

static const char *u64s(char *buf, size_t len, uint64_t v)
{
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/*
 * keys --json: {"instance", "template", "max_keys", "places", "live" (keys met by the walk),
 * "shown", "keys": [KEY...]}, the fullest first; KEY: the key fields (key, key_hex, length,
 * truncated) and "unlimited", "rate" (a rate = caller key's own, else null), "burst",
 * "remaining" (null when unlimited), "retry_after_ns", "reset_after_ns", "waiters".
 */
static int cmd_keys(rlctl_ctx *ctx)
{
    const char *name = ctx->argv[0];
    rlctl_tmpl tp;
    rldi_table t;
    int r = rlctl_find_template(ctx, name, &tp, &t);
    if (r != 0)
        return r;
    rows rs;
    memset(&rs, 0, sizeof(rs));
    if (ctx->optv[0])
        rs.top = strtoull(ctx->optv[0], NULL, 10);     /* checked by check_keys */
    if (walk(&ctx->seg, &t, &rs) < 0) {
        free(rs.v);
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "out of memory");
    }
    if (rs.n)
        qsort(rs.v, rs.n, sizeof(*rs.v), fuller_q);
    if (ctx->json) {
        rlctl_json j;
        rlctl_json_init(&j, stdout);
        rlctl_json_obj(&j, NULL);
        rlctl_json_str(&j, "instance", ctx->paths.instance);
        rlctl_json_str(&j, "template", name);
        rlctl_json_u64(&j, "max_keys", tp.info.max_keys);
        rlctl_json_u64(&j, "places", tp.places);
        rlctl_json_u64(&j, "live", rs.seen);
        rlctl_json_u64(&j, "shown", rs.n);
        rlctl_json_arr(&j, "keys");
        for (size_t i = 0; i < rs.n; i++) {
            const keyrow *k = &rs.v[i];
            rlctl_json_obj(&j, NULL);
            rlctl_json_key_fields(&j, k->prefix, k->n, k->len);
            rlctl_json_bool(&j, "unlimited", k->unlimited);
            char kr[48];
            if (k->rate_count)
                rldi_format_rate(kr, sizeof(kr), k->rate_count, k->rate_period_ns);
            rlctl_json_str(&j, "rate", k->rate_count ? kr : NULL);
            if (k->unlimited) {
                rlctl_json_null(&j, "burst");
                rlctl_json_null(&j, "remaining");
            } else {
                rlctl_json_u64(&j, "burst", k->burst);
                rlctl_json_u64(&j, "remaining", k->remaining);
            }
            rlctl_json_u64(&j, "retry_after_ns", k->retry_after_ns);
            rlctl_json_u64(&j, "reset_after_ns", k->reset_after_ns);
            rlctl_json_u64(&j, "waiters", k->waiters);
            rlctl_json_end(&j, '}');
        }
        rlctl_json_end(&j, ']');
        rlctl_json_end(&j, '}');
        free(rs.v);
        return RLCTL_EXIT_OK;
    }
    /* rate = caller: each key's own rate, in a column after the key */
    static const char *const head[] = { "KEY", "REMAINING", "BURST", "RETRY_AFTER",
                                        "RESET_AFTER", "WAITERS" };
    static const char *const head_rate[] = { "KEY", "RATE", "REMAINING", "BURST",
                                             "RETRY_AFTER", "RESET_AFTER", "WAITERS" };
    static const bool right[] = { false, true, true, true, true, true };
    static const bool right_rate[] = { false, false, true, true, true, true, true };
    bool skip = !tp.caller_rate;
    rlctl_table tb;
    if (skip)
        rlctl_table_init(&tb, 6, head, right);
    else
        rlctl_table_init(&tb, 7, head_rate, right_rate);
    for (size_t i = 0; i < rs.n; i++) {
        const keyrow *k = &rs.v[i];
        char key[RLCTL_KEY_TEXT], rem[24], burst[24], w[24], kr[48] = "-";
        rlctl_key_text(k->prefix, k->n, k->len, key, sizeof(key));
        if (k->rate_count)
            rldi_format_rate(kr, sizeof(kr), k->rate_count, k->rate_period_ns);
        const char *remc = k->unlimited ? "-" : u64s(rem, sizeof(rem), k->remaining);
        const char *bc = k->unlimited ? "-" : u64s(burst, sizeof(burst), k->burst);
        const char *ra = k->retry_after_ns ? rlctl_dur(k->retry_after_ns) : "0";
        const char *rs_ = k->reset_after_ns ? rlctl_dur(k->reset_after_ns) : "0";
        u64s(w, sizeof(w), k->waiters);
        if (skip)
            rlctl_table_row(&tb, key, remc, bc, ra, rs_, w);
        else
            rlctl_table_row(&tb, key, kr, remc, bc, ra, rs_, w);
    }
    rlctl_table_print(&tb, stdout, 0, 0, "\n");
    rlctl_table_free(&tb);
    if (rs.seen > rs.n)
        printf("... %llu more (the %zu fullest of %llu live keys shown)\n",
               (unsigned long long)(rs.seen - rs.n), rs.n, (unsigned long long)rs.seen);
    free(rs.v);
    return RLCTL_EXIT_OK;
}

static const rlctl_opt keys_opts[] = {
    { "top", "N", "only the N fullest keys" },
    { NULL, NULL, NULL },
};

const rlctl_cmd rlctl_cmd_keys = {
    .name = "keys", .args = "TEMPLATE",
    .summary = "A template's live keys, the fullest first",
    .help = "Each key with its remaining tokens, burst (a window's count), time until a\n"
            "token fits while in debt or while the window is full (RETRY_AFTER), time until\n"
            "full again or the window's end (RESET_AFTER), and callers queued on it. The\n"
            "fullest first: the least remaining for its burst. A key is shown as its bytes\n"
            "when they are printable, else as 0x and hex; the table keeps a key's first 15\n"
            "bytes only, so a longer one ends with '... (LEN bytes)'. Reads the segment:\n"
            "works while the daemon is down. A key that is full again may be reclaimed at\n"
            "any time (that changes nothing): keys not shown are full.\n",
    .min_args = 1, .max_args = 1, .needs_segment = true, .opts = keys_opts,
    .check = check_keys, .exec = cmd_keys,
};
