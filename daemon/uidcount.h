/*
 * uidcount.h - how much each user holds (connections, queued waits): a small open-addressing
 * map uid -> count, so that one user's flood is capped without capping everyone. Entries
 * are never removed, only counted down (a host has few users); the table doubles at half
 * full. Out of memory, a count is refused (the caller treats it as over the cap).
 */
#ifndef RLD_DAEMON_UIDCOUNT_H
#define RLD_DAEMON_UIDCOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

typedef struct uidcount {
    struct uidcount_slot {
        uint32_t uid_plus1;     /* 0: empty */
        uint32_t count;
    } *v;
    uint32_t cap, used;
} uidcount;

static inline struct uidcount_slot *uidcount_find(uidcount *m, uid_t uid, bool add)
{
    if (add && (m->used + 1) * 2 > m->cap) {
        uint32_t ncap = m->cap ? m->cap * 2 : 64;
        struct uidcount_slot *nv = calloc(ncap, sizeof(*nv));
        if (!nv)
            return NULL;
        for (uint32_t i = 0; i < m->cap; i++) {
            if (!m->v[i].uid_plus1)
                continue;
            uint32_t j = (m->v[i].uid_plus1 * 2654435761u) & (ncap - 1);
            while (nv[j].uid_plus1)
                j = (j + 1) & (ncap - 1);
            nv[j] = m->v[i];
        }
        free(m->v);
        m->v = nv;
        m->cap = ncap;
    }
    if (!m->cap)
        return NULL;
    uint32_t key = (uint32_t)uid + 1;
    for (uint32_t j = (key * 2654435761u) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        if (m->v[j].uid_plus1 == key)
            return &m->v[j];
        if (!m->v[j].uid_plus1) {
            if (!add)
                return NULL;
            m->v[j].uid_plus1 = key;
            m->used++;
            return &m->v[j];
        }
    }
}

/* What UID holds now. */
static inline uint32_t uidcount_get(uidcount *m, uid_t uid)
{
    struct uidcount_slot *e = uidcount_find(m, uid, false);
    return e ? e->count : 0;
}

/* UID takes N more if it stays within CAP: true, counted; false, nothing changed. */
static inline bool uidcount_take(uidcount *m, uid_t uid, uint32_t n, uint32_t cap)
{
    struct uidcount_slot *e = uidcount_find(m, uid, true);
    if (!e || e->count + (uint64_t)n > cap)
        return false;
    e->count += n;
    return true;
}

static inline void uidcount_give(uidcount *m, uid_t uid, uint32_t n)
{
    struct uidcount_slot *e = uidcount_find(m, uid, false);
    if (e)
        e->count = e->count > n ? e->count - n : 0;
}

static inline void uidcount_free(uidcount *m)
{
    free(m->v);
    m->v = NULL;
    m->cap = m->used = 0;
}

#endif
