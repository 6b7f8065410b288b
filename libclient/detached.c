/*
 * detached.c - librld without an instance or without a limit: RLD_OPEN_FAIL_OPEN (a client
 * that admits everything until the instance can be attached, then attaches by itself) and
 * RLD_OPEN_MISSING_ADMIT (handles for names the instance lacks, admitting until a limit of
 * that name exists). No thread: attach and look-up attempts are made by the calls
 * themselves, at most once a second each.
 *
 * A detached client has slot_count 0, so every handle fails the fast path's bounds check
 * (-EINVAL) and lands in client.c's take_pending, which asks here. Handles given out while
 * detached, or for a missing name, are pending handles (client.h): an index into a table of
 * names whose resolution (slot | gen << 32, 0 while unknown) is one atomic word.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atomics.h"
#include "bucket.h"
#include "client.h"
#include "clock.h"
#include "codes.h"

#define RETRY_NS 1000000000ull        /* attach and look-up attempts: at most once a second */

typedef struct rldc_name {
    char     name[RLDI_NAME_MAX + 1];
    uint64_t resolved;                /* slot | gen << 32 of the limit; 0 unknown (atomic) */
    uint64_t next_lookup_ns;          /* under names_lock */
    bool     missing;                 /* looked up on an attached instance, not found */
    uint32_t kind;                    /* RLDI_KIND_* it must be: a limit, a breaker */
} rldc_name;

/* Errors of rldi_seg_open that mean "no usable instance" (not a bad argument). */
static bool unusable(int r)
{
    return r == -ENOENT || r == -EAGAIN || r == -EACCES || r == -EPERM || r == RLD_EABI ||
           r == RLD_ECORRUPT || r == -ENOTDIR || r == -ENAMETOOLONG || r == -ENOMEM ||
           r == -EMFILE || r == -ENFILE || r == -EINVAL || r == -ECONNREFUSED ||
           r == -ETIMEDOUT || r == RLD_ECLOCK;
}

int rldc_open_segment(rld_client *c, int open_error)
{
    if (open_error == 0)
        return 0;
    if ((c->flags & RLD_OPEN_FAIL_OPEN) && unusable(open_error)) {
        memset(&c->seg0, 0, sizeof(c->seg0));     /* detached: slot_count 0 */
        c->next_attach_ns = rldi_mono_ns() + RETRY_NS;
        return 0;
    }
    return open_error;
}

void rldc_maybe_attach(rld_client *c)
{
    if (rldc_attached(c) || !(c->flags & RLD_OPEN_FAIL_OPEN))
        return;
    uint64_t now = rldi_mono_ns();
    if (now < __atomic_load_n(&c->next_attach_ns, __ATOMIC_RELAXED))
        return;
    if (pthread_mutex_trylock(&c->names_lock) != 0)
        return;                       /* another thread is at it */
    if (!rldc_attached(c) && now >= c->next_attach_ns) {
        __atomic_store_n(&c->next_attach_ns, now + RETRY_NS, __ATOMIC_RELAXED);
        rldi_seg seg;
        rldi_paths p;
        /* where the instance appears may be where it was not looked for at open (/run/rld) */
        if (rldi_paths_find(c->paths.instance, &p) == 0 && rldi_seg_open(p.seg_path, &seg) == 0) {
            if (strcmp(p.runtime_dir, c->paths.runtime_dir) != 0)
                c->paths = p;
            /* a segment of its own, made current at once (release): a thread that sees it
             * (acquire) sees every field */
            rldc_segment *ns = calloc(1, sizeof(*ns));
            if (ns) {
                ns->seg = seg;
                ns->older = c->segp;
                __atomic_store_n(&c->segp, ns, __ATOMIC_RELEASE);
            } else {
                rldi_seg_close(&seg);
            }
            /* names not found before are looked up at once */
            for (uint32_t i = 0; i < c->nnames; i++)
                c->names[i]->next_lookup_ns = 0;
        }
    }
    pthread_mutex_unlock(&c->names_lock);
}

int rldc_follow(rld_client *c)
{
    rldi_seg *s = rldc_seg(c);
    if (!s->hdr)
        return 0;                       /* detached */
    uint32_t st = rldi_load_acquire(&s->hdr->state);
    if (st != RLDI_STATE_RETIRING && st != RLDI_STATE_RETIRED)
        return 0;
    pthread_mutex_lock(&c->names_lock);
    int r = 0;
    if (rldc_seg(c) != s) {
        r = 1;                          /* another thread followed already */
    } else {
        /* the keeper hands out the old one (refused: not READY) until the new one is ready */
        uint64_t deadline = rldi_mono_ns() + 5000000000ull;
        rldi_seg seg;
        for (;;) {
            r = rldi_seg_open(c->paths.seg_path, &seg);
            if (r == 0 || (r != -EAGAIN && r != -ENOENT) || rldi_mono_ns() > deadline)
                break;
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        rldc_segment *ns = r == 0 ? calloc(1, sizeof(*ns)) : NULL;
        if (ns) {
            ns->seg = seg;
            ns->older = c->segp;
            __atomic_store_n(&c->segp, ns, __ATOMIC_RELEASE);
            r = 1;
        } else if (r == 0) {
            rldi_seg_close(&seg);
            r = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&c->names_lock);
    return r;
}

int rldc_find_pending(rld_client *c, const char *name, uint32_t kind, rld_limit *out)
{
    int r = 0;
    pthread_mutex_lock(&c->names_lock);
    uint32_t i;
    for (i = 0; i < c->nnames && (c->names[i]->kind != kind || strcmp(c->names[i]->name, name));
         i++)
        ;
    if (i == c->nnames) {
        if (!c->names)
            c->names = calloc(RLDC_MAX_PENDING, sizeof(*c->names));
        rldc_name *n = c->names && c->nnames < RLDC_MAX_PENDING ? calloc(1, sizeof(*n)) : NULL;
        if (!n) {
            r = c->names ? -ENOSPC : -ENOMEM;
        } else {
            strcpy(n->name, name);      /* checked by rld_find: at most RLDI_NAME_MAX */
            n->kind = kind;
            n->missing = rldc_attached(c);
            n->next_lookup_ns = rldi_mono_ns() + RETRY_NS;
            __atomic_store_n(&c->names[c->nnames], n, __ATOMIC_RELEASE);
            __atomic_store_n(&c->nnames, c->nnames + 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&c->names_lock);
    if (r == 0) {
        out->slot = RLDC_PENDING_BIT | i;
        out->gen = RLDC_PENDING_GEN;
    }
    return r;
}

/* The limit behind a resolved handle still exists (its slot's generation is the handle's). */
static bool live(rld_client *c, rld_limit lim)
{
    const rldi_slot *s = rldi_slot_of(rldc_seg(c), (rldi_handle){ lim.slot, lim.gen });
    return s && rldi_load_relaxed(&s->gen) == lim.gen;
}

int rldc_resolve(rld_client *c, rld_limit lim, rld_limit *out)
{
    if (!(lim.slot & RLDC_PENDING_BIT)) {
        *out = lim;
        return 0;
    }
    uint32_t i = lim.slot & ~RLDC_PENDING_BIT;
    if (lim.gen != RLDC_PENDING_GEN || i >= __atomic_load_n(&c->nnames, __ATOMIC_ACQUIRE))
        return -EINVAL;
    rldc_name *n = __atomic_load_n(&c->names[i], __ATOMIC_ACQUIRE);
    uint64_t v = __atomic_load_n(&n->resolved, __ATOMIC_ACQUIRE);
    if (v) {
        out->slot = (uint32_t)v;
        out->gen = (uint32_t)(v >> 32);
        if (live(c, *out))
            return 0;
        rldc_unresolve(c, lim);         /* deleted: looked up again now, whatever the call */
    }
    rldc_maybe_attach(c);
    if (!rldc_attached(c))
        return 1;                       /* fail-open: no instance yet */
    uint64_t now = rldi_mono_ns();
    bool missing = false;
    if (pthread_mutex_trylock(&c->names_lock) == 0) {
        if (!n->resolved && now >= n->next_lookup_ns) {
            n->next_lookup_ns = now + RETRY_NS;
            uint32_t slot, gen;
            const rldi_seg *s = rldc_seg(c);
            /* a name of another kind (a template for a limit's handle) is still missing */
            if (rldi_seg_lookup(s, n->name, &slot, &gen) == 0 &&
                rldi_load_relaxed(&s->meta[slot].kind) == n->kind) {
                __atomic_store_n(&n->resolved, (uint64_t)slot | (uint64_t)gen << 32,
                                 __ATOMIC_RELEASE);
                n->missing = false;
            } else {
                n->missing = true;
            }
        }
        missing = n->missing;
        pthread_mutex_unlock(&c->names_lock);
    } else {
        missing = __atomic_load_n(&n->missing, __ATOMIC_RELAXED);
    }
    v = __atomic_load_n(&n->resolved, __ATOMIC_ACQUIRE);
    if (v) {
        out->slot = (uint32_t)v;
        out->gen = (uint32_t)(v >> 32);
        return 0;
    }
    /* attached and not there: admit only if asked to */
    return missing && !(c->flags & RLD_OPEN_MISSING_ADMIT) ? -ENOENT : 1;
}

void rldc_unresolve(rld_client *c, rld_limit lim)
{
    uint32_t i = lim.slot & ~RLDC_PENDING_BIT;
    if (!(lim.slot & RLDC_PENDING_BIT) || i >= __atomic_load_n(&c->nnames, __ATOMIC_ACQUIRE))
        return;
    rldc_name *n = __atomic_load_n(&c->names[i], __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&c->names_lock);
    __atomic_store_n(&n->resolved, 0, __ATOMIC_RELEASE);
    n->next_lookup_ns = 0;
    pthread_mutex_unlock(&c->names_lock);
}

void rldc_result_open(rld_result *res)
{
    memset(res, 0, sizeof(*res));
    res->limit = UINT64_MAX;
    res->remaining = UINT64_MAX;
    res->flags = RLD_F_DEGRADED;
}

void rldc_names_free(rld_client *c)
{
    for (uint32_t i = 0; i < c->nnames; i++)
        free(c->names[i]);
    free(c->names);
    c->names = NULL;
    c->nnames = 0;
}
