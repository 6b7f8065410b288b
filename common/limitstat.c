/*
 * limitstat.c - one limit as operators read it (see limitstat.h).
 */
#include "limitstat.h"

#include <errno.h>
#include <string.h>

#include "atomics.h"
#include "bucket.h"

#define CONF_ATTEMPTS 1000

int rldi_limit_conf_read(const rldi_seg *s, uint32_t slot, uint32_t gen, rldi_limit_conf *out)
{
    if (slot >= s->slot_count)
        return -EINVAL;
    const rldi_slot *sl = &s->slots[slot];
    const rldi_meta *m = &s->meta[slot];
    for (int attempt = 0; attempt < CONF_ATTEMPTS; attempt++) {
        uint64_t seq = rldi_load_acquire(&s->hdr->index_seq);
        if (seq & 1) {
            rldi_cpu_relax();
            continue;
        }
        if (rldi_seg_name(s, slot, out->name) < 0 || rldi_load_relaxed(&sl->gen) != gen)
            return -ESTALE;
        out->rate_count = rldi_load_relaxed(&m->rate_count);
        out->rate_period_ns = rldi_load_relaxed(&m->rate_period_ns);
        out->burst = rldi_load_relaxed(&m->burst);
        out->origin = rldi_load_relaxed(&m->origin);
        out->algo = rldi_load_relaxed(&m->algo);
        out->align_ns = rldi_load_relaxed(&m->align_ns);
        out->kind = rldi_load_relaxed(&m->kind);
        out->concurrency = rldi_load_relaxed(&m->concurrency);
        out->shadow = (rldi_load_relaxed(&sl->flags) & RLDI_SLOT_SHADOW) != 0;
        rldi_fence_acquire();
        if (rldi_load_relaxed(&s->hdr->index_seq) == seq)
            return 0;
    }
    return -EAGAIN;
}

void rldi_limit_counts_read(const rldi_seg *s, uint32_t slot, rldi_limit_counts *out)
{
    const rldi_slot *sl = &s->slots[slot];
    const rldi_meta *m = &s->meta[slot];
    out->admitted = rldi_load_relaxed(&sl->admitted);
    out->denied = rldi_load_relaxed(&sl->denied);
    out->refunded = rldi_load_relaxed(&m->refunded);
    out->rolled_back = rldi_load_relaxed(&m->rolled_back);
    out->debited = rldi_load_relaxed(&m->debited);
    out->shadowed = rldi_load_relaxed(&sl->shadowed);
}

int rldi_limit_stat_read(const rldi_seg *s, uint32_t slot, uint32_t gen, uint64_t now_ns,
                         rldi_limit_stat *out)
{
    memset(out, 0, sizeof(*out));
    int r = rldi_limit_conf_read(s, slot, gen, &out->conf);
    if (r < 0)
        return r;
    rldi_limit_counts_read(s, slot, &out->counts);
    if (out->conf.kind != RLDI_KIND_LIMIT)
        return 0;                             /* a template's or breaker's state is not a bucket */
    rldi_handle h = { slot, gen };
    rldi_u128 now = rldi_fp_from_ns(now_ns);
    rldi_verdict peek, one;
    if ((r = rldi_bucket_peek(s, h, now, &peek)) < 0)
        return r;
    /* a call of cost 1, taking nothing: the verdict rld_try would give, queue included */
    r = rldi_bucket_probe(s, h, 1, now, 0, &one);
    if (r != 0 && r != -EAGAIN)
        return r;                             /* gone meanwhile */
    out->unlimited = (peek.flags & RLDI_V_UNLIMITED) != 0;
    out->remaining = peek.remaining;
    out->debt_ns = peek.retry_after_ns;       /* the peek's: until the debt is paid back */
    out->reset_after_ns = peek.reset_after_ns;
    out->retry_after_ns = r == -EAGAIN ? one.retry_after_ns : 0;
    out->waiters = peek.waiters;
    return 0;
}
