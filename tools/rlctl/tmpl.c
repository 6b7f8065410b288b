/*
 * tmpl.c - templates (keyed limits, common/keys.h) as rlctl reads them: the templates of the
 * instance, their key tables and the state of one key, straight from the segment.
 *
 * librld has no call that walks a table or looks a key up without creating it, so rlctl maps
 * the segment itself (rldi_seg_open, beside librld's own mapping) and reads it with the
 * functions of common/. Everything is checked before use, as any process holding the
 * segment may have scribbled it: a table's bounds against the mapping as it was checked
 * when it was attached (not against the header's offsets, which may have changed since),
 * entry indexes against the table, a key's identity against its gen read before and after.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "cell.h"
#include "limitdef.h"
#include "rate.h"
#include "rlctl.h"

int rlctl_open_raw(rlctl_ctx *ctx)
{
    if (ctx->seg.base)
        return 0;
    int r = rlctl_open_segment(ctx);        /* librld's mapping: its errors say what to do */
    if (r != 0)
        return r;
    if ((r = rldi_seg_open(ctx->paths.seg_path, &ctx->seg)) < 0) {
        memset(&ctx->seg, 0, sizeof(ctx->seg));
        return rlctl_fail(rlctl_exit_for(r), "instance '%s': cannot map its segment: %s",
                          ctx->paths.instance, rld_strerror(r));
    }
    return 0;
}

int rlctl_key_table(const rldi_seg *s, uint32_t slot, uint32_t gen, rldi_table *t)
{
    int r = rldi_table_of(s, slot, gen, t);
    if (r < 0)
        return r;
    /* against the key region as attached: rldi_table_get reads the header's keys_off, which
     * a writer may have moved since the segment was checked */
    uint64_t lo = (uint64_t)(uintptr_t)s->keys, hi = lo + s->keys_size;
    uint64_t b = (uint64_t)(uintptr_t)t->buckets, e = (uint64_t)(uintptr_t)t->entries;
    uint64_t nb = t->nbuckets;
    if (b < lo || e < lo || b > hi || e > hi || nb * sizeof(rldi_key_bucket) > hi - b ||
        nb * RLDI_KEY_BUCKET * sizeof(rldi_key_entry) > hi - e)
        return RLD_ECORRUPT;
    return 0;
}

int rlctl_template_read(rlctl_ctx *ctx, rld_limit h, rlctl_tmpl *out, rldi_table *tp)
{
    memset(out, 0, sizeof(*out));
    out->handle = h;
    int r = rld_info(ctx->client, h, &out->info);
    if (r < 0)
        return r;
    if (out->info.kind != RLD_KIND_TEMPLATE)
        return -EINVAL;
    rldi_table t;
    if ((r = rlctl_key_table(&ctx->seg, h.slot, h.gen, &t)) < 0)
        return r;
    out->places = (uint64_t)t.nbuckets * RLDI_KEY_BUCKET;
    out->keys = rldi_load_relaxed(&t.rec->live);
    if (out->keys > out->places)
        out->keys = out->places;    /* a relaxed count, or a scribbled one: never above */
    out->evictions = rldi_load_relaxed(&t.rec->evictions);
    out->overflows = rldi_load_relaxed(&t.rec->overflows);
    out->overflow_allow = (t.flags & RLDI_TMPL_OVERFLOW_ALLOW) != 0;
    out->caller_rate = (t.flags & RLDI_TMPL_CALLER_RATE) != 0;
    out->unlimited = !out->caller_rate && out->info.rate_count == 0;
    if (out->caller_rate)
        snprintf(out->rate, sizeof(out->rate), "caller");
    else if (out->unlimited)
        snprintf(out->rate, sizeof(out->rate), "unlimited");
    else
        rldi_format_rate(out->rate, sizeof(out->rate), out->info.rate_count,
                         out->info.rate_period_ns);
    if (tp)
        *tp = t;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const rlctl_tmpl *)a)->info.name, ((const rlctl_tmpl *)b)->info.name);
}

int rlctl_templates(rlctl_ctx *ctx, rlctl_tmpl **out, size_t *n, uint32_t *total)
{
    *out = NULL;
    *n = 0;
    if (total)
        *total = 0;
    int r = rlctl_open_raw(ctx);
    if (r != 0)
        return r;
    rlctl_tmpl *v = calloc(RLDI_MAX_TEMPLATES, sizeof(*v));
    if (!v)
        return rlctl_fail(RLCTL_EXIT_UNREACHABLE, "out of memory");
    /* the templates are the header's table records (at most 56): no walk of every slot */
    const rldi_shm_header *h = ctx->seg.hdr;
    uint32_t count = rldi_load_relaxed(&h->tmpl_count), live = 0;
    size_t k = 0;
    for (uint32_t i = 0; i < count && i < RLDI_MAX_TEMPLATES; i++) {
        rld_limit hd = { rldi_load_acquire(&h->tmpl[i].slot), rldi_load_relaxed(&h->tmpl[i].gen) };
        rldi_table t;
        if (hd.slot >= ctx->seg.slot_count ||
            rlctl_key_table(&ctx->seg, hd.slot, hd.gen, &t) < 0 ||
            t.index != i)
            continue;                   /* a free table, or a record that is not its template's */
        if (rlctl_template_read(ctx, hd, &v[k], NULL) < 0)
            continue;                   /* deleted meanwhile */
        live++;
        if (rlctl_selected(ctx, v[k].info.name))
            k++;
    }
    qsort(v, k, sizeof(*v), by_name);
    *out = v;
    *n = k;
    if (total)
        *total = live;
    return 0;
}

int rlctl_find_template(rlctl_ctx *ctx, const char *name, rlctl_tmpl *out, rldi_table *t)
{
    int r = rlctl_check_name(ctx, name);
    if (r != 0 || (r = rlctl_open_raw(ctx)) != 0)
        return r;
    rld_template tp;
    rld_limit h;
    r = rld_find_template(ctx->client, name, &tp);
    if (r == -ENOENT && rld_find(ctx->client, name, &h) == 0)
        return rlctl_fail(RLCTL_EXIT_USAGE, "'%s' is a limit, not a template: only a "
                          "template has keys", name);
    if (r == -ENOENT)
        return rlctl_fail(RLCTL_EXIT_NOTFOUND, "no template '%s' in instance '%s' (rlctl list "
                          "shows them)", name, ctx->paths.instance);
    if (r == 0)
        r = rlctl_template_read(ctx, (rld_limit){ tp.slot, tp.gen }, out, t);
    if (r == -ESTALE || r == -ENOENT)
        return rlctl_fail(RLCTL_EXIT_NOTFOUND, "no template '%s' in instance '%s' (deleted "
                          "meanwhile?)", name, ctx->paths.instance);
    if (r < 0)
        return rlctl_fail(rlctl_exit_for(r), "template '%s': %s", name, rld_strerror(r));
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------ */

bool rlctl_key_printable(const uint8_t *k, size_t n)
{
    if (n >= 2 && k[0] == '0' && k[1] == 'x')
        return false;                   /* "0x..." always means hex */
    for (size_t i = 0; i < n; i++)
        if (k[i] <= 0x20 || k[i] >= 0x7f)
            return false;
    return n > 0;
}

void rlctl_hex(const uint8_t *k, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[k[i] >> 4];
        out[2 * i + 1] = hx[k[i] & 15];
    }
    out[2 * n] = '\0';
}

void rlctl_key_text(const uint8_t *k, size_t n, size_t len, char *out, size_t outlen)
{
    char buf[2 * RLDI_KEY_MAX + 3];
    if (n > RLDI_KEY_MAX)
        n = RLDI_KEY_MAX;
    if (rlctl_key_printable(k, n)) {
        memcpy(buf, k, n);
        buf[n] = '\0';
    } else {
        buf[0] = '0';
        buf[1] = 'x';
        rlctl_hex(k, n, buf + 2);
    }
    if (n < len)
        snprintf(out, outlen, "%s... (%zu bytes)", buf, len);
    else
        snprintf(out, outlen, "%s", buf);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rlctl_arg_key(const rlctl_ctx *ctx, const char *text, const char *hex, uint8_t *key,
                  size_t *len)
{
    if (text && hex)
        return rlctl_usage_error(ctx, "give the key once: KEY or --key-hex HEX");
    if (text) {
        size_t n = strlen(text);
        if (n == 0 || n > RLDI_KEY_MAX)
            return rlctl_usage_error(ctx, "bad key: 1 to %u bytes (a key of other bytes: "
                                     "--key-hex HEX)", RLDI_KEY_MAX);
        memcpy(key, text, n);
        *len = n;
        return 0;
    }
    const char *p = hex;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    size_t n = strlen(p);
    if (n == 0 || n % 2 || n / 2 > RLDI_KEY_MAX)
        return rlctl_usage_error(ctx, "bad --key-hex '%s': 1 to %u bytes as pairs of hex "
                                 "digits (e.g. 0a00ff)", hex, RLDI_KEY_MAX);
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(p[2 * i]), b = hexval(p[2 * i + 1]);
        if (a < 0 || b < 0)
            return rlctl_usage_error(ctx, "bad --key-hex '%s': not hex digits", hex);
        key[i] = (uint8_t)(a << 4 | b);
    }
    *len = n / 2;
    return 0;
}

bool rlctl_entry_rate(const rldi_table *t, const rldi_key_entry *e, uint64_t *count,
                      uint64_t *period_ns)
{
    *count = *period_ns = 0;
    if (!(t->flags & RLDI_TMPL_CALLER_RATE))
        return false;
    uint64_t w = rldi_load_relaxed((const uint64_t *)((const uint8_t *)e + RLDI_KEY_RATE_OFF));
    if ((uint32_t)w == 0 || (w >> 32) == 0)
        return false;
    *count = (uint32_t)w;
    *period_ns = (w >> 32) * 1000000u;
    return true;
}

/*
 * What rldi_bucket_peek says of a key handle, on the cell of entry IDX of T (a checked copy,
 * so the table is not looked up again from the header): the state now, taking nothing; a
 * verdict built from a word that moved meanwhile is built again.
 */
int rlctl_entry_peek(const rldi_seg *s, const rldi_table *t, uint32_t idx, uint32_t gen,
                     rldi_u128 now, rldi_verdict *out)
{
    if (idx >= t->nbuckets * RLDI_KEY_BUCKET)
        return -EINVAL;
    rldi_cell c;
    rldi_cell_of_key(s, t, idx, gen, &c);
    for (;;) {
        rldi_view v;
        int r = rldi_cell_view(&c, rldi_load16_split(c.word), &v);
        if (r < 0)
            return r;
        if (rldi_view_algo(&v) != RLDI_ALGO_GCRA)
            return rldi_win_peek(s, &c, now, out);
        rldi_verdict vd;
        memset(&vd, 0, sizeof(vd));
        if (v.t == 0)
            rldi_verdict_unlimited(&vd);
        else
            rldi_gcra_peek(v.t, v.burst, v.tat, now, &vd);
        vd.waiters = rldi_cell_waiters(&c);
        if (rldi_cell_still(&c, &v)) {
            *out = vd;
            return 0;
        }
    }
}

int rlctl_key_state(rlctl_ctx *ctx, const rlctl_tmpl *tp, const rldi_table *t,
                    const uint8_t *key, size_t len, rlctl_keystate *out)
{
    const rldi_seg *s = &ctx->seg;
    for (int attempt = 0;; attempt++) {
        /* as a new key would be: full (a rate = caller key not there: its rate unknown) */
        memset(out, 0, sizeof(*out));
        out->unlimited = tp->unlimited;
        out->burst = tp->info.burst;
        out->remaining = tp->info.burst;
        if (attempt == 8)
            return 0;   /* found each time, stale each time: an eviction half done (its
                         * evictor stopped between its two steps): the key is gone, full */
        uint64_t hash = rldi_siphash13(s->hdr->key_secret, key, len);
        uint32_t idx, gen;
        if (rldi_key_find(t, hash, key, len, rldi_table_epoch(s, t), &idx, &gen) < 0)
            return 0;                   /* not in the table: as a new key, full */
        rldi_verdict v;
        int r = rlctl_entry_peek(s, t, idx, gen, rldi_now_fp(), &v);
        if (r == -ESTALE)
            continue;                   /* evicted or reset meanwhile: look again */
        if (r < 0)
            return r;
        out->exists = true;
        out->unlimited = (v.flags & RLDI_V_UNLIMITED) != 0;
        out->burst = v.limit;
        out->remaining = v.remaining;
        out->retry_after_ns = v.retry_after_ns;
        out->reset_after_ns = v.reset_after_ns;
        out->waiters = v.waiters;
        out->index = idx;
        rlctl_entry_rate(t, &t->entries[idx], &out->rate_count, &out->rate_period_ns);
        rldi_fence_acquire();
        if (rldi_load_relaxed(&t->entries[idx].gen) != gen)
            continue;                   /* reused meanwhile: its rate may be another key's */
        return 0;
    }
}

/*
 * TEMPLATE fields (list, status, stats; README.md): name, rate ("caller" for rate = caller),
 * rate_count, rate_period_ns, unlimited, caller_rate (each key's rate from the client),
 * algorithm, align_ns, burst (each key's; a window's count; 0 with rate = caller), max_keys,
 * places (entries of its table), keys (live now), evictions, overflows, overflow ("deny" or
 * "allow"), admitted (tokens, all keys), denied (calls, all keys).
 */
void rlctl_json_template_fields(rlctl_json *j, const rlctl_tmpl *t)
{
    rlctl_json_str(j, "name", t->info.name);
    rlctl_json_str(j, "rate", t->rate);
    rlctl_json_u64(j, "rate_count", t->info.rate_count);
    rlctl_json_u64(j, "rate_period_ns", t->info.rate_period_ns);
    rlctl_json_bool(j, "unlimited", t->unlimited);
    rlctl_json_bool(j, "caller_rate", t->caller_rate);
    rlctl_json_str(j, "algorithm", rldi_algo_name(t->info.algorithm));
    rlctl_json_u64(j, "align_ns", t->info.align_ns);
    rlctl_json_u64(j, "burst", t->info.burst);
    rlctl_json_u64(j, "max_keys", t->info.max_keys);
    rlctl_json_u64(j, "places", t->places);
    rlctl_json_u64(j, "keys", t->keys);
    rlctl_json_u64(j, "evictions", t->evictions);
    rlctl_json_u64(j, "overflows", t->overflows);
    rlctl_json_str(j, "overflow", t->overflow_allow ? "allow" : "deny");
    rlctl_json_u64(j, "admitted", t->info.admitted);
    rlctl_json_u64(j, "denied", t->info.denied);
}

/* The key fields of keys and status TEMPLATE KEY: key (the bytes known, as text; null
 * when they are not all printable), key_hex, length, truncated (only the first bytes
 * are known). */
void rlctl_json_key_fields(rlctl_json *j, const uint8_t *k, size_t n, size_t len)
{
    char hex[2 * RLDI_KEY_MAX + 1], txt[RLDI_KEY_MAX + 1];
    if (n > RLDI_KEY_MAX)
        n = RLDI_KEY_MAX;
    bool pr = true;
    for (size_t i = 0; i < n; i++)
        pr = pr && k[i] >= 0x20 && k[i] < 0x7f;
    memcpy(txt, k, n);
    txt[n] = '\0';
    rlctl_hex(k, n, hex);
    if (pr && n > 0)
        rlctl_json_str(j, "key", txt);
    else
        rlctl_json_null(j, "key");
    rlctl_json_str(j, "key_hex", hex);
    rlctl_json_u64(j, "length", len);
    rlctl_json_bool(j, "truncated", n < len);
}
