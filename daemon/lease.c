/*
 * lease.c - the leases of concurrency limits (see lease.h).
 *
 * A lease is a record in a hash table by id; each holding process has a holder with its
 * pidfd and the list of its leases; each limit that ever had a lease has a counter record
 * (found by a linear search: concurrency limits are few). Ids are a random 64-bit start
 * plus a count, so that a stale id of an earlier daemon or lease is not another's.
 */
#define _GNU_SOURCE
#include "lease.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "atomics.h"
#include "clock.h"
#include "log.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

typedef struct holder holder;

typedef struct lease {
    uint64_t      id;
    uint32_t      slot, gen;
    uint64_t      granted_ns;
    holder       *h;
    struct lease *prev, *next;      /* in its holder's list */
} lease;

struct holder {
    pid_t    pid;
    uid_t    uid;
    int      pidfd;
    uint32_t count;
    lease   *head;
};

typedef struct limit_rec {
    uint32_t slot, gen;
    uint32_t held;
    uint64_t granted, reclaimed;
} limit_rec;

struct leases {
    rldi_seg  *seg;
    lease    **tab;                 /* by id: open addressing, backward-shift deletion */
    uint32_t   cap, n;
    holder   **holders;
    uint32_t   nholders, holders_cap;
    limit_rec *limits;
    uint32_t   nlimits, limits_cap;
    uint64_t   next_id;
    uint64_t   reclaimed_total;
    struct pollfd *pfds;
};

leases *leases_new(rldi_seg *seg)
{
    leases *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->seg = seg;
    if (getrandom(&l->next_id, sizeof(l->next_id), 0) != (ssize_t)sizeof(l->next_id))
        l->next_id = rldi_mono_ns() * 0x9e3779b97f4a7c15ull;
    l->next_id |= 1;
    return l;
}

static void holder_close(holder *h)
{
    if (h->pidfd >= 0)
        close(h->pidfd);
    while (h->head) {
        lease *x = h->head;
        h->head = x->next;
        free(x);
    }
    free(h);
}

void leases_free(leases *l)
{
    if (!l)
        return;
    for (uint32_t i = 0; i < l->nholders; i++)
        holder_close(l->holders[i]);
    free(l->holders);
    free(l->tab);
    free(l->limits);
    free(l->pfds);
    free(l);
}

/* ---- the table by id ------------------------------------------------------------------ */

static inline uint32_t home(const leases *l, uint64_t id)
{
    return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (l->cap - 1);
}

static lease *tab_get(const leases *l, uint64_t id)
{
    if (!l->cap)
        return NULL;
    for (uint32_t i = home(l, id), n = 0; n < l->cap; i = (i + 1) & (l->cap - 1), n++) {
        if (!l->tab[i])
            return NULL;
        if (l->tab[i]->id == id)
            return l->tab[i];
    }
    return NULL;
}

static bool tab_put(leases *l, lease *x)
{
    if ((l->n + 1) * 2 > l->cap) {
        uint32_t ncap = l->cap ? l->cap * 2 : 64;
        lease **nt = calloc(ncap, sizeof(*nt));
        if (!nt)
            return false;
        lease **old = l->tab;
        uint32_t ocap = l->cap;
        l->tab = nt;
        l->cap = ncap;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i]) {
                uint32_t j = home(l, old[i]->id);
                while (l->tab[j])
                    j = (j + 1) & (l->cap - 1);
                l->tab[j] = old[i];
            }
        free(old);
    }
    uint32_t j = home(l, x->id);
    while (l->tab[j])
        j = (j + 1) & (l->cap - 1);
    l->tab[j] = x;
    l->n++;
    return true;
}

static void tab_del(leases *l, const lease *x)
{
    uint32_t i = home(l, x->id);
    while (l->tab[i] != x)
        i = (i + 1) & (l->cap - 1);
    l->tab[i] = NULL;
    l->n--;
    /* backward shift: entries after the hole that belong before it move up */
    for (uint32_t j = (i + 1) & (l->cap - 1); l->tab[j]; j = (j + 1) & (l->cap - 1)) {
        uint32_t h = home(l, l->tab[j]->id);
        if (((j - h) & (l->cap - 1)) >= ((j - i) & (l->cap - 1))) {
            l->tab[i] = l->tab[j];
            l->tab[j] = NULL;
            i = j;
        }
    }
}

/* ---- limits and holders ------------------------------------------------------------------ */

static limit_rec *limit_get(leases *l, uint32_t slot, uint32_t gen, bool make)
{
    for (uint32_t i = 0; i < l->nlimits; i++)
        if (l->limits[i].slot == slot) {
            if (l->limits[i].gen != gen && l->limits[i].held == 0 && make) {
                l->limits[i].gen = gen;         /* another limit in the slot */
                l->limits[i].granted = l->limits[i].reclaimed = 0;
            }
            return l->limits[i].gen == gen ? &l->limits[i] : NULL;
        }
    if (!make)
        return NULL;
    if (l->nlimits == l->limits_cap) {
        uint32_t nc = l->limits_cap ? l->limits_cap * 2 : 8;
        limit_rec *nl = realloc(l->limits, nc * sizeof(*nl));
        if (!nl)
            return NULL;
        l->limits = nl;
        l->limits_cap = nc;
    }
    limit_rec *r = &l->limits[l->nlimits++];
    *r = (limit_rec){ slot, gen, 0, 0, 0 };
    return r;
}

uint32_t leases_capacity(const leases *l, uint32_t slot)
{
    if (slot >= l->seg->slot_count)
        return 0;
    return rldi_load_relaxed(&l->seg->meta[slot].concurrency);
}

bool leases_available(const leases *l, uint32_t slot, uint32_t gen)
{
    uint32_t cap = leases_capacity(l, slot);
    limit_rec *r = limit_get((leases *)l, slot, gen, false);
    return cap > (r ? r->held : 0);
}

static holder *holder_get(leases *l, pid_t pid, uid_t uid, int *err)
{
    for (uint32_t i = 0; i < l->nholders; i++)
        if (l->holders[i]->pid == pid)
            return l->holders[i];
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        *err = errno == ESRCH ? -ESRCH : errno == EMFILE || errno == ENFILE ? -EMFILE : -errno;
        return NULL;
    }
    if (l->nholders == l->holders_cap) {
        uint32_t nc = l->holders_cap ? l->holders_cap * 2 : 16;
        holder **nh = realloc(l->holders, nc * sizeof(*nh));
        struct pollfd *np = realloc(l->pfds, nc * sizeof(*np));
        if (np)
            l->pfds = np;
        if (!nh || !np) {
            if (nh)
                l->holders = nh;
            close(fd);
            *err = -ENOMEM;
            return NULL;
        }
        l->holders = nh;
        l->holders_cap = nc;
    }
    holder *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    h->pid = pid;
    h->uid = uid;
    h->pidfd = fd;
    l->holders[l->nholders++] = h;
    return h;
}

static void holder_drop(leases *l, holder *h)
{
    for (uint32_t i = 0; i < l->nholders; i++)
        if (l->holders[i] == h) {
            l->holders[i] = l->holders[--l->nholders];
            break;
        }
    holder_close(h);
}

/* ---- grants and releases ------------------------------------------------------------------- */

int leases_grant(leases *l, uint32_t slot, uint32_t gen, pid_t pid, uid_t uid, uint64_t now,
                 uint64_t *id)
{
    if (!leases_available(l, slot, gen))
        return -ENOSPC;
    limit_rec *r = limit_get(l, slot, gen, true);
    if (!r)
        return -ENOMEM;
    int err = 0;
    holder *h = holder_get(l, pid, uid, &err);
    if (!h)
        return err;
    lease *x = calloc(1, sizeof(*x));
    if (x)
        x->id = l->next_id;
    if (!x || !tab_put(l, x)) {
        free(x);
        if (!h->count)
            holder_drop(l, h);
        return -ENOMEM;
    }
    l->next_id += 2;                    /* odd: never 0 */
    x->slot = slot;
    x->gen = gen;
    x->granted_ns = now;
    x->h = h;
    x->next = h->head;
    if (h->head)
        h->head->prev = x;
    h->head = x;
    h->count++;
    r->held++;
    r->granted++;
    *id = x->id;
    return 0;
}

/* Take X out of everything and free it. */
static void lease_free(leases *l, lease *x, bool reclaimed)
{
    limit_rec *r = limit_get(l, x->slot, x->gen, false);
    if (r) {
        r->held--;
        if (reclaimed)
            r->reclaimed++;
    }
    holder *h = x->h;
    if (x->prev)
        x->prev->next = x->next;
    else
        h->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    h->count--;
    tab_del(l, x);
    free(x);
}

int leases_release(leases *l, uint64_t id, uid_t uid, bool admin, uint32_t *slot)
{
    lease *x = tab_get(l, id);
    if (!x)
        return -ENOENT;
    if (!admin && x->h->uid != uid)
        return -EPERM;
    *slot = x->slot;
    holder *h = x->h;
    lease_free(l, x, false);
    if (!h->count)
        holder_drop(l, h);              /* no pidfd kept for a process holding nothing */
    return 0;
}

uint32_t leases_reap(leases *l, void (*fn)(uint32_t slot, void *ctx), void *ctx)
{
    if (!l->nholders)
        return 0;
    for (uint32_t i = 0; i < l->nholders; i++)
        l->pfds[i] = (struct pollfd){ l->holders[i]->pidfd, POLLIN, 0 };
    if (poll(l->pfds, l->nholders, 0) <= 0)
        return 0;
    uint32_t n = 0, nh = l->nholders;
    holder *dead[64];
    uint32_t nd = 0;
    for (uint32_t i = 0; i < nh && nd < 64; i++)
        if (l->pfds[i].revents)
            dead[nd++] = l->holders[i];
    for (uint32_t k = 0; k < nd; k++) {
        holder *h = dead[k];
        uint32_t slots[64], ns = 0;
        LOG_INFO("pid %d died holding %u lease%s: given back", (int)h->pid, h->count,
                 h->count == 1 ? "" : "s");
        while (h->head) {
            lease *x = h->head;
            bool seen = false;
            for (uint32_t j = 0; j < ns; j++)
                seen |= slots[j] == x->slot;
            if (!seen && ns < 64)
                slots[ns++] = x->slot;
            lease_free(l, x, true);
            n++;
        }
        holder_drop(l, h);
        for (uint32_t j = 0; j < ns; j++)
            fn(slots[j], ctx);
    }
    l->reclaimed_total += n;
    return n;
}

void leases_drop_slot(leases *l, uint32_t slot)
{
    for (uint32_t i = 0; i < l->nholders;) {
        holder *h = l->holders[i];
        for (lease *x = h->head, *nx; x; x = nx) {
            nx = x->next;
            if (x->slot == slot)
                lease_free(l, x, false);
        }
        if (!h->count)
            holder_drop(l, h);          /* the last one moved into place i */
        else
            i++;
    }
    for (uint32_t i = 0; i < l->nlimits; i++)
        if (l->limits[i].slot == slot) {
            l->limits[i] = l->limits[--l->nlimits];
            break;
        }
}

bool leases_any(const leases *l)
{
    return l->n != 0;
}

static int by_leases(const void *a, const void *b)
{
    const Rld__V1__LeaseHolder *x = a, *y = b;
    return x->leases < y->leases ? 1 : x->leases > y->leases ? -1 : (x->pid > y->pid) - (x->pid < y->pid);
}

size_t leases_status(const leases *l, uint32_t slot, uint64_t now, lease_stats *st,
                     Rld__V1__LeaseHolder *out, size_t max)
{
    memset(st, 0, sizeof(*st));
    for (uint32_t i = 0; i < l->nlimits; i++)
        if (l->limits[i].slot == slot) {
            st->held = l->limits[i].held;
            st->granted = l->limits[i].granted;
            st->reclaimed = l->limits[i].reclaimed;
        }
    if (!st->held || !max)
        return 0;
    Rld__V1__LeaseHolder *all = calloc(l->nholders, sizeof(*all));
    if (!all)
        return 0;
    size_t n = 0;
    for (uint32_t i = 0; i < l->nholders; i++) {
        uint32_t count = 0;
        uint64_t oldest = now;
        for (const lease *x = l->holders[i]->head; x; x = x->next)
            if (x->slot == slot) {
                count++;
                if (x->granted_ns < oldest)
                    oldest = x->granted_ns;
            }
        if (!count)
            continue;
        rld__v1__lease_holder__init(&all[n]);
        all[n].pid = (uint32_t)l->holders[i]->pid;
        all[n].leases = count;
        all[n].held_ns = now - oldest;
        n++;
    }
    qsort(all, n, sizeof(*all), by_leases);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}

void leases_totals(const leases *l, uint32_t *held, uint32_t *holders, uint64_t *reclaimed)
{
    *held = l->n;
    *holders = l->nholders;
    *reclaimed = l->reclaimed_total;
}
