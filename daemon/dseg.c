/*
 * dseg.c - the daemon writes the segment (see dseg.h).
 *
 * Publishing a limit's configuration: the daemon writes the bank clients do not read (the
 * one the next version selects), then swaps state and version in one 16-byte CAS, carrying
 * the state into the new rate's terms. Index and names change under a seqlock
 * (header->index_seq odd while writing) that readers retry on.
 */
#define _GNU_SOURCE
#include "dseg.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "bucket.h"
#include "clock.h"
#include "codes.h"
#include "handout.h"
#include "keeper.h"
#include "keys.h"
#include "log.h"
#include "rate.h"

static void index_lock(rldi_seg *s)
{
    uint64_t seq = rldi_load_relaxed(&s->hdr->index_seq);
    rldi_store_relaxed(&s->hdr->index_seq, seq | 1);
    rldi_fence_release();
}

static void index_unlock(rldi_seg *s)
{
    uint64_t seq = rldi_load_relaxed(&s->hdr->index_seq);
    rldi_store_release(&s->hdr->index_seq, (seq | 1) + 1);
}

/* ---- creation and attach ------------------------------------------------------------ */

static void unseal(rldi_seg *s);

/* The key hashes' secret as this daemon found or made it: a header scribbled over gets it
 * back (another secret would make every key's bucket a new one). */
static uint64_t key_secret[2];
static bool have_secret;

static void secret_restore(rldi_shm_header *h)
{
    if (have_secret) {
        h->key_secret[0] = key_secret[0];
        h->key_secret[1] = key_secret[1];
    }
    h->features |= RLDI_FEATURE_KEYS;
}

/*
 * The key tables' records (header->tmpl[]) as this daemon wrote them. A client with the
 * segment's fd can write over them (they are in the header's second half): without them
 * every template is gone (lookups fail, a reload finds no room). Like the secret, they are
 * restored from this copy: at every heartbeat when they differ, and after a header repair.
 * Only the daemon's fields (slot .. flags) are kept; the counters are the clients'.
 */
#define TMPL_OWNED offsetof(rldi_tmpl, live)
static rldi_tmpl tmpl_own[RLDI_MAX_TEMPLATES];
static uint32_t tmpl_own_count;
static const void *tmpl_own_base;       /* the segment the copy describes */

/* Take S's records as they are: a segment only this daemon has written since it mapped it
 * (new, grown) or adopted at start (checked on every use). */
static void tmpl_own_take(const rldi_seg *s)
{
    uint32_t n = s->hdr->tmpl_count;
    tmpl_own_count = n <= RLDI_MAX_TEMPLATES ? n : 0;
    memset(tmpl_own, 0, sizeof(tmpl_own));
    for (uint32_t i = 0; i < tmpl_own_count; i++)
        memcpy(&tmpl_own[i], &s->hdr->tmpl[i], TMPL_OWNED);
    tmpl_own_base = s->base;
}

/* Record I of S becomes R's daemon fields (the slot published last, with release). */
static void tmpl_put(rldi_seg *s, uint32_t i, const rldi_tmpl *r)
{
    rldi_tmpl *d = &s->hdr->tmpl[i];
    d->gen = r->gen;
    d->nbuckets = r->nbuckets;
    d->max_keys = r->max_keys;
    d->buckets_off = r->buckets_off;
    d->entries_off = r->entries_off;
    d->entry_base = r->entry_base;
    d->flags = r->flags;
    rldi_store_release(&d->slot, r->slot);
    if (s->base == tmpl_own_base) {
        memcpy(&tmpl_own[i], r, TMPL_OWNED);
        if (i >= tmpl_own_count)
            tmpl_own_count = i + 1;
    }
}

/* Put S's records back as this daemon wrote them: true when one had been changed. */
static bool tmpl_restore(rldi_seg *s)
{
    if (s->base != tmpl_own_base)
        return false;
    bool changed = s->hdr->tmpl_count != tmpl_own_count;
    for (uint32_t i = 0; i < tmpl_own_count; i++) {
        rldi_tmpl *d = &s->hdr->tmpl[i];
        if (memcmp(d, &tmpl_own[i], TMPL_OWNED) != 0) {
            memcpy(d, &tmpl_own[i], TMPL_OWNED);
            changed = true;
        }
    }
    if (changed)
        rldi_store_release(&s->hdr->tmpl_count, tmpl_own_count);
    return changed;
}

/* The header of a new segment of SLOT_COUNT slots (state INIT), or a repaired one. */
static void header_write(rldi_shm_header *h, const rldi_shm_header *geo, uint32_t state)
{
    uint64_t created = h->created_ns, secret[2] = { h->key_secret[0], h->key_secret[1] };
    uint32_t ntmpl = h->tmpl_count;
    memset(h, 0, offsetof(rldi_shm_header, tmpl));
    memcpy(h, geo, offsetof(rldi_shm_header, tmpl));
    /* a repair keeps what it cannot know better: the key tables (their records are checked
     * on every use) and their secret (another one would only make every key new) */
    h->key_secret[0] = secret[0];
    h->key_secret[1] = secret[1];
    h->tmpl_count = ntmpl <= RLDI_MAX_TEMPLATES ? ntmpl : 0;
    h->features = RLDI_FEATURE_KEYS;
    memcpy(h->magic, RLDI_MAGIC, sizeof(h->magic));
    h->abi_major = RLDI_ABI_MAJOR;
    h->abi_minor = RLDI_ABI_MINOR;
    h->created_ns = created ? created : rldi_real_ns();
    h->state = state;
}

static int create(const rldi_paths *p, const dseg_opts *o, rldi_seg *s, int *out_fd,
                  char *err, size_t errlen)
{
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    uint64_t size = rldi_seg_geometry_keys(o->max_limits, o->keys_size, &geo);
    if (size == 0) {
        snprintf(err, errlen, "max_limits %u out of range (1..%u), or key tables too large",
                 o->max_limits, RLDI_MAX_SLOTS);
        return -EINVAL;
    }
    /* a secret per segment: keys an attacker chooses cannot be made to share buckets (a
     * segment that replaces a grown one keeps its keys' secret) */
    if (!have_secret &&
        getrandom(key_secret, sizeof(key_secret), 0) != (ssize_t)sizeof(key_secret)) {
        int e = errno;
        snprintf(err, errlen, "cannot draw the key tables' secret (getrandom): %s", strerror(e));
        return -e;
    }
    have_secret = true;
    char name[RLDI_INSTANCE_MAX + 8];
    snprintf(name, sizeof(name), "rld.%s", p->instance);
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create the segment (memfd_create): %s", strerror(e));
        return -e;
    }
    /* Map first (an address-space limit fails here, cheaply), then posix_fallocate: without
     * memory the start must fail now with ENOMEM, not later with SIGBUS in whichever process
     * first touches a missing page. (Under a memory cgroup the kernel may choose to kill us
     * instead: the daemon's unit should leave room for the segment.) The seals make the size
     * final for everyone holding the fd, ourselves included. */
    void *base = MAP_FAILED;
    int fe = 0;
    if (ftruncate(fd, (off_t)size) < 0 ||
        (base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED ||
        (fe = posix_fallocate(fd, 0, (off_t)size)) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        if (fe)
            errno = fe;
        int e = errno;
        snprintf(err, errlen, "cannot set up the segment (%llu bytes for %u limits): %s%s",
                 (unsigned long long)size, o->max_limits, strerror(e),
                 e == ENOSPC || e == ENOMEM ? ": free memory or lower [rld] max_limits" : "");
        if (base != MAP_FAILED)
            munmap(base, size);
        close(fd);
        return -e;
    }
    /* memfd pages are zero: write the header, state INIT until the first sync is done.
     * Every slot starts free: an even generation, which no handle names (live ones are odd). */
    header_write(base, &geo, RLDI_STATE_INIT);
    secret_restore(base);
    rldi_seg_bind(s, base, size);
    tmpl_own_take(s);
    *out_fd = fd;
    return 0;
}

/*
 * Rewrite a damaged header of a segment of SIZE bytes whose slot count the keeper knows:
 * someone with the fd punched a hole in it or scribbled over it. The slots, names and index
 * are checked by dseg_repair afterwards. 0, or RLD_ECORRUPT when the geometry does not match.
 */
static int header_repair(void *base, uint64_t size, uint32_t slot_count)
{
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    uint64_t base_size = rldi_seg_geometry(slot_count, &geo);
    if (base_size == 0 || size < base_size ||
        rldi_seg_geometry_keys(slot_count, size - base_size, &geo) != size)
        return RLD_ECORRUPT;
    header_write(base, &geo, RLDI_STATE_INIT);
    return 0;
}

int dseg_open(const rldi_paths *p, const dseg_opts *o, rldi_seg *s, int *out_fd, pid_t *keeper,
              bool *created, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    *created = false;
    *out_fd = -1;
    *keeper = 0;
    int fd = -1;
    uint32_t slots = 0;
    uint16_t abi = RLDI_ABI_MAJOR;
    const char *from = "the keeper";
    int r = keeper_fetch(p->seg_path, &fd, keeper, &slots, &abi, err, errlen);
    if (r < 0 && r != -ENOENT && r != -ECONNREFUSED)
        return r;
    if (fd < 0 && o->inherited_fd >= 0) {
        fd = o->inherited_fd;
        from = "systemd's file descriptor store";
    }
    if (fd >= 0) {
        uint64_t size = 0;
        void *base = MAP_FAILED;
        r = rldi_handout_check_fd(fd, &size);
        if (r == 0 && abi != RLDI_ABI_MAJOR)
            r = RLD_EABI;         /* the keeper's word: the daemon that made it was another */
        if (r == 0 && (base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
            r = -errno;
        if (r == 0)
            r = rldi_seg_check(base, size, false);
        /* Of our ABI by the keeper's word, yet the header disagrees: someone with the fd wrote
         * over it or punched a hole in it. Rebuild it from what the keeper knows. */
        if ((r == RLD_ECORRUPT || r == RLD_EABI) && abi == RLDI_ABI_MAJOR && slots &&
            !o->fresh && header_repair(base, size, slots) == 0) {
            LOG_WARN("the segment's header was damaged (written by a client?): rebuilt from its "
                     "size and %u slots; limits are checked next", slots);
            r = rldi_seg_check(base, size, false);
        }
        if (r == 0 && !o->fresh) {
            rldi_seg_bind(s, base, size);
            if (rldi_load_acquire(&s->hdr->state) == RLDI_STATE_RETIRING) {
                LOG_WARN("the segment was being replaced by a larger one when its daemon "
                         "stopped: it is taken back as it was");
                unseal(s);
            }
            key_secret[0] = s->hdr->key_secret[0];
            key_secret[1] = s->hdr->key_secret[1];
            have_secret = true;
            tmpl_own_take(s);
            *out_fd = fd;
            if (s->slot_count > o->max_limits)
                LOG_WARN("the segment keeps its %u slots (a lower max_limits = %u takes effect "
                         "with a new segment: rld --fresh, which resets every limit)",
                         s->slot_count, o->max_limits);
            return 0;
        }
        if (base != MAP_FAILED && r == 0 && o->fresh) {
            /* --fresh: its clients learn that it is gone (every limit sealed, then RETIRED)
             * and follow to the new one, where no handle of theirs names another limit
             * (each slot's gen starts past the old one's) */
            rldi_seg old;
            rldi_seg_bind(&old, base, size);
            rldi_store_release(&old.hdr->state, RLDI_STATE_RETIRING);
            for (uint32_t i = 0; i < old.slot_count; i++) {
                uint32_t g = rldi_load_relaxed(&old.slots[i].gen);
                if (g & 1) {
                    rldi_store_release(&old.slots[i].gen, g + 1);
                    rldi_bucket_seal(&old.slots[i]);
                }
            }
            close(fd);
            LOG_WARN("--fresh: replacing the segment held by %s", from);
            r = create(p, o, s, out_fd, err, errlen);
            if (r == 0) {
                *created = true;
                for (uint32_t i = 0; i < old.slot_count && i < s->slot_count; i++)
                    s->slots[i].gen = (rldi_load_relaxed(&old.slots[i].gen) | 1) + 1;
            }
            rldi_store_release(&old.hdr->state, RLDI_STATE_RETIRED);
            munmap(base, size);
            return r;
        }
        if (base != MAP_FAILED)
            munmap(base, size);
        close(fd);
        if (!o->fresh) {
            snprintf(err, errlen,
                     "the segment held by %s %s; stop its clients and start rld with --fresh to "
                     "replace it (all limit state is lost)", from,
                     r == RLD_EABI ? "was made by an incompatible rld version"
                                   : "is damaged or not an rld segment");
            return r < 0 ? r : RLD_ECORRUPT;
        }
        LOG_WARN("--fresh: replacing the segment held by %s", from);
    }
    r = create(p, o, s, out_fd, err, errlen);
    if (r == 0)
        *created = true;
    return r;
}

/* A slot's name as the daemon may trust it: bounded and terminated (clients can write
 * the segment). */
static const char *slot_name(const rldi_seg *s, uint32_t slot, char *buf)
{
    memcpy(buf, s->meta[slot].name, RLDI_NAME_MAX);
    buf[RLDI_NAME_MAX] = '\0';
    return buf;
}

/* ---- limits ------------------------------------------------------------------------- */

static void meta_write(rldi_meta *m, const rldi_limitdef *l)
{
    memset(m->name, 0, sizeof(m->name));
    strcpy(m->name, l->name);
    rldi_store_relaxed(&m->concurrency, l->concurrency);
    m->name_hash = rldi_name_hash(l->name, strlen(l->name));
    m->rate_count = l->count;
    m->rate_period_ns = l->period_ns;
    m->burst = l->algo == RLDI_ALGO_GCRA ? l->burst : l->count;   /* a window's cap: COUNT */
    m->unlimited = l->count == 0;
    m->algo = (uint8_t)l->algo;
    m->align_ns = l->align_ns;
    rldi_store_relaxed(&m->max_debt_ns, rldi_limitdef_max_debt(l));
}

/* Insert; false when no bucket is free, which only a client scribbling over the index can
 * cause (there are twice as many buckets as slots): the caller rebuilds it. */
static bool index_try_insert(rldi_seg *s, const char *name, uint32_t slot)
{
    uint64_t hash = rldi_name_hash(name, strlen(name));
    uint32_t i = (uint32_t)hash & s->index_mask;
    for (uint32_t n = 0; n <= s->index_mask; n++, i = (i + 1) & s->index_mask) {
        uint32_t v = s->index[i];
        if (v == RLDI_INDEX_EMPTY || v == RLDI_INDEX_DELETED || v - 1 >= s->slot_count) {
            rldi_store_relaxed(&s->index[i], slot + 1);
            return true;
        }
    }
    return false;
}

static void index_rebuild_locked(rldi_seg *s);

static void index_insert(rldi_seg *s, const char *name, uint32_t slot)
{
    if (index_try_insert(s, name, slot))
        return;
    LOG_WARN("the name index was full of garbage (written by a client?): rebuilt");
    index_rebuild_locked(s);
    index_try_insert(s, name, slot);
}

/* Writer-side probe (the daemon holds the index): is NAME indexed already? */
static bool index_has(const rldi_seg *s, const char *name)
{
    uint64_t hash = rldi_name_hash(name, strlen(name));
    uint32_t i = (uint32_t)hash & s->index_mask;
    for (uint32_t n = 0; n <= s->index_mask; n++, i = (i + 1) & s->index_mask) {
        uint32_t v = s->index[i];
        if (v == RLDI_INDEX_EMPTY)
            return false;
        if (v != RLDI_INDEX_DELETED && v - 1 < s->slot_count &&
            strncmp(s->meta[v - 1].name, name, RLDI_NAME_MAX + 1) == 0)
            return true;
    }
    return false;
}

/* Remove SLOT (named NAME) from the index: a probe from NAME's bucket, and a full sweep
 * only if a client scribbled it away from there. */
static void index_remove(rldi_seg *s, uint32_t slot, const char *name)
{
    uint64_t hash = rldi_name_hash(name, strnlen(name, RLDI_NAME_MAX));
    uint32_t i = (uint32_t)hash & s->index_mask;
    for (uint32_t n = 0; n <= s->index_mask; n++, i = (i + 1) & s->index_mask) {
        uint32_t v = s->index[i];
        if (v == RLDI_INDEX_EMPTY)
            break;
        if (v == slot + 1) {
            rldi_store_relaxed(&s->index[i], RLDI_INDEX_DELETED);
            return;
        }
    }
    for (i = 0; i <= s->index_mask; i++)
        if (s->index[i] == slot + 1)
            rldi_store_relaxed(&s->index[i], RLDI_INDEX_DELETED);
}


/* ---- templates and their key tables ------------------------------------------------- */

#define TMPL_FREE      UINT32_MAX            /* rldi_tmpl.slot of a table no template has */
#define TMPL_EPOCH(f)  (((f) >> 8) & 0xffu)  /* rldi_tmpl.flags: the last epoch it was given */
#define TMPL_WAITERS   UINT32_MAX            /* a template slot's waiters: never a limit */

uint64_t dseg_keys_size(const rldi_config *conf)
{
    uint64_t n = 0;
    for (size_t i = 0; i < conf->nlimits; i++)
        if (conf->limits[i].kind == RLDI_KIND_TEMPLATE)
            n += rldi_keys_table_bytes(conf->limits[i].max_keys);
    return n;
}

static uint64_t table_bytes_of(const rldi_tmpl *r)
{
    return (uint64_t)r->nbuckets * (sizeof(rldi_key_bucket) + RLDI_KEY_BUCKET * sizeof(rldi_key_entry));
}

/* Bytes of the key region the records use (from its start), and entries numbered. */
static void keys_used(const rldi_seg *s, uint64_t *bytes, uint64_t *entries)
{
    *bytes = *entries = 0;
    for (uint32_t i = 0; i < s->hdr->tmpl_count && i < RLDI_MAX_TEMPLATES; i++) {
        const rldi_tmpl *r = &s->hdr->tmpl[i];
        uint64_t end = r->buckets_off - s->hdr->keys_off + table_bytes_of(r);
        if (end > *bytes)
            *bytes = end;
        uint64_t e = (uint64_t)r->entry_base + (uint64_t)r->nbuckets * RLDI_KEY_BUCKET;
        if (e > *entries)
            *entries = e;
    }
}

/* A table for L: a free one of its size, else new room. -EXFULL when there is none. DRY:
 * only say. TAKEN marks records already promised in a dry run. */
static int tmpl_alloc(rldi_seg *s, const rldi_limitdef *l, bool dry, bool *taken,
                      uint64_t *extra_bytes, uint32_t *index)
{
    uint32_t nb = rldi_keys_nbuckets(l->max_keys);
    for (uint32_t i = 0; i < s->hdr->tmpl_count && i < RLDI_MAX_TEMPLATES; i++) {
        rldi_tmpl *r = &s->hdr->tmpl[i];
        if (r->slot == TMPL_FREE && r->nbuckets == nb && !(taken && taken[i])) {
            if (taken)
                taken[i] = true;
            *index = i;
            return 0;
        }
    }
    uint64_t used, entries, need = rldi_keys_table_bytes(l->max_keys);
    keys_used(s, &used, &entries);
    used += *extra_bytes;
    if (s->hdr->tmpl_count >= RLDI_MAX_TEMPLATES || need > s->keys_size - used ||
        (uint64_t)s->slot_count + entries + (uint64_t)nb * RLDI_KEY_BUCKET > (UINT64_C(1) << 31))
        return -EXFULL;
    if (dry) {
        *extra_bytes += need;
        return 0;
    }
    uint32_t i = s->hdr->tmpl_count;
    rldi_tmpl r;
    memset(&r, 0, sizeof(r));
    r.slot = TMPL_FREE;
    r.nbuckets = nb;
    r.buckets_off = s->hdr->keys_off + used;
    r.entries_off = r.buckets_off + (uint64_t)nb * sizeof(rldi_key_bucket);
    r.entry_base = (uint32_t)entries;
    memset(&s->hdr->tmpl[i], 0, sizeof(r));
    tmpl_put(s, i, &r);
    rldi_store_release(&s->hdr->tmpl_count, i + 1);
    *index = i;
    return 0;
}

/* Every entry of table I free again (its template is gone; the memory is the kernel's zeros
 * for a new table). Racing clients of the old template fail their CAS (the word changes). */
static void table_clear(rldi_seg *s, uint32_t i)
{
    rldi_tmpl *r = &s->hdr->tmpl[i];
    uint64_t *p = (uint64_t *)((uint8_t *)s->base + r->buckets_off);
    for (uint64_t n = table_bytes_of(r) / 8; n-- > 0; p++)
        if (rldi_load_relaxed(p))
            rldi_store_relaxed(p, 0);
}

static uint32_t tmpl_flags(const rldi_limitdef *l, uint32_t epoch)
{
    return (l->overflow_allow ? RLDI_TMPL_OVERFLOW_ALLOW : 0) |
           (l->caller_rate ? RLDI_TMPL_CALLER_RATE : 0) | (epoch & 0xffu) << 8;
}

/* The epoch after E (never 0: a cleared table's entries are of epoch 0). */
static uint32_t epoch_next(uint32_t e)
{
    e = (e + 1) & 0xffu;
    return e ? e : 1;
}

uint64_t dseg_keys_free(const rldi_seg *s)
{
    uint64_t used, entries;
    keys_used(s, &used, &entries);
    return s->hdr->tmpl_count >= RLDI_MAX_TEMPLATES || used >= s->keys_size ? 0
                                                                            : s->keys_size - used;
}

uint32_t dseg_template_count(const rldi_seg *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->hdr->tmpl_count && i < RLDI_MAX_TEMPLATES; i++) {
        uint32_t slot = s->hdr->tmpl[i].slot;
        n += slot < s->slot_count && (s->slots[slot].flags & RLDI_SLOT_LIVE) &&
             s->meta[slot].kind == RLDI_KIND_TEMPLATE && s->meta[slot].tmpl == i;
    }
    return n;
}

static uint32_t alloc_cursor;

int dseg_limit_create(rldi_seg *s, const rldi_limitdef *l, uint32_t *slot)
{
    rldi_bank nb;
    if (rldi_limitdef_bank(l, &nb) < 0)
        return -EINVAL;
    uint32_t ti = 0;
    uint64_t none = 0;
    if (l->kind == RLDI_KIND_TEMPLATE && tmpl_alloc(s, l, false, NULL, &none, &ti) < 0)
        return -EXFULL;
    /* Round-robin from the last allocation: a freed slot is reused as late as possible. */
    for (uint32_t n = 0; n < s->slot_count; n++) {
        uint32_t i = (alloc_cursor + n) % s->slot_count;
        rldi_slot *sl = &s->slots[i];
        if (sl->flags & RLDI_SLOT_LIVE)
            continue;
        alloc_cursor = i + 1;
        rldi_store_relaxed(&sl->admitted, 0);
        rldi_store_relaxed(&sl->denied, 0);
        rldi_store_relaxed(&s->meta[i].file_def_hash, 0);
        rldi_store_relaxed(&s->meta[i].refunded, 0);
        rldi_store_relaxed(&s->meta[i].rolled_back, 0);
        rldi_store_relaxed(&s->meta[i].debited, 0);
        rldi_store_relaxed(&sl->waiters, 0);
        rldi_store_relaxed(&sl->queued, 0);
        rldi_store_relaxed(&sl->lease_hint_ns, 0);
        uint32_t epoch = 0;
        if (l->kind == RLDI_KIND_BREAKER) {
            /* never a limit either (as a template): its word is the breaker's state */
            rldi_store_relaxed(&sl->waiters, TMPL_WAITERS);
            rldi_bucket_publish(sl, &s->rings[i], &nb, false, 0);
        } else if (l->kind == RLDI_KIND_TEMPLATE) {
            /* never a limit: the fast paths see waiters and leave it to the slow one,
             * which refuses a template's slot */
            rldi_store_relaxed(&sl->waiters, TMPL_WAITERS);
            epoch = epoch_next(TMPL_EPOCH(s->hdr->tmpl[ti].flags));
            rldi_bucket_publish_template(sl, &nb, epoch);
        } else {
            rldi_bucket_publish(sl, &s->rings[i], &nb, false, 0);
        }
        if (l->scope == RLDI_SCOPE_GLOBAL)   /* a pool starts empty: only leases fill it */
            rldi_bucket_publish_tokens(sl, RLDI_POOL_T, nb.burst, 0, NULL);
        /* a new identity, odd (live): no handle of an earlier limit here matches it */
        rldi_store_release(&sl->gen, (rldi_load_relaxed(&sl->gen) + 1) | 1);
        if (l->kind == RLDI_KIND_TEMPLATE) {
            rldi_tmpl r = s->hdr->tmpl[ti];
            if (s->base == tmpl_own_base)
                memcpy(&r, &tmpl_own[ti], TMPL_OWNED);   /* (the table as allocated) */
            r.gen = rldi_load_relaxed(&sl->gen);
            r.max_keys = l->max_keys;
            r.flags = tmpl_flags(l, epoch);
            r.slot = i;
            s->hdr->tmpl[ti].live = s->hdr->tmpl[ti].evictions = s->hdr->tmpl[ti].overflows = 0;
            tmpl_put(s, ti, &r);
        }
        index_lock(s);
        meta_write(&s->meta[i], l);
        s->meta[i].kind = l->kind;
        s->meta[i].tmpl = (uint8_t)ti;
        s->meta[i].origin = RLDI_ORIGIN_FILE;
        rldi_store_relaxed(&sl->flags, RLDI_SLOT_LIVE | (l->shadow ? RLDI_SLOT_SHADOW : 0));
        rldi_store_relaxed(&sl->shadowed, 0);
        index_insert(s, l->name, i);
        s->hdr->limit_count++;
        index_unlock(s);
        *slot = i;
        return 0;
    }
    return -ENOSPC;
}

int dseg_limit_change(rldi_seg *s, uint32_t slot, const rldi_limitdef *l, bool *changed)
{
    rldi_slot *sl = &s->slots[slot];
    rldi_bank nb, ob;
    if (rldi_limitdef_bank(l, &nb) < 0)
        return -EINVAL;
    rldi_bucket_config(sl, &ob);
    rldi_meta *m = &s->meta[slot];
    *changed = !rldi_bank_same(&ob, &nb);
    if (m->kind != l->kind)
        return -EINVAL;                 /* a limit and a template do not share a name */
    uint32_t sflags = RLDI_SLOT_LIVE | (l->shadow ? RLDI_SLOT_SHADOW : 0);
    if (rldi_load_relaxed(&sl->flags) != sflags) {
        rldi_store_relaxed(&sl->flags, sflags);  /* mode = shadow | enforce: at once */
        *changed = true;
    }
    if (m->concurrency != l->concurrency)
        *changed = true;
    if (l->kind == RLDI_KIND_BREAKER) {
        if (!rldi_bank_same(&ob, &nb))      /* its state carries as it is */
            rldi_bucket_publish(sl, &s->rings[slot], &nb, true, 0);
    } else if (l->kind == RLDI_KIND_TEMPLATE) {
        rldi_tmpl *r = &s->hdr->tmpl[m->tmpl];
        if (rldi_keys_nbuckets(l->max_keys) != r->nbuckets)
            return -EXFULL;             /* another table: a new segment (checked by sync) */
        uint32_t epoch = (uint8_t)rldi_load_relaxed(&sl->tat);
        uint32_t flags = tmpl_flags(l, TMPL_EPOCH(r->flags));
        /* rate = caller on or off changes what an entry's last 8 bytes hold (a key's rate,
         * or bytes 8..15 of its key): no key of the other kind may be read as one of this */
        bool caller = ((r->flags ^ flags) & RLDI_TMPL_CALLER_RATE) != 0;
        if ((*changed && RLDI_BANK_ALGO(ob.t_hi) != l->algo) || caller) {
            if (caller)
                LOG_INFO("template %s: rate = caller %s: every key starts full", l->name,
                         l->caller_rate ? "on" : "off");
            else
                LOG_INFO("template %s: algorithm %s -> %s: every key starts full", l->name,
                         rldi_algo_name(RLDI_BANK_ALGO(ob.t_hi)), rldi_algo_name(l->algo));
            epoch = epoch_next(epoch);
            flags = tmpl_flags(l, epoch);
        }
        *changed |= r->flags != flags || r->max_keys != l->max_keys;
        rldi_tmpl nr = *r;
        if (s->base == tmpl_own_base)
            memcpy(&nr, &tmpl_own[m->tmpl], TMPL_OWNED);
        nr.flags = flags;
        nr.max_keys = l->max_keys;
        tmpl_put(s, m->tmpl, &nr);
        if (!rldi_bank_same(&ob, &nb) || epoch != (uint8_t)rldi_load_relaxed(&sl->tat))
            rldi_bucket_publish_template(sl, &nb, epoch);
    } else if (*changed && l->scope == RLDI_SCOPE_GLOBAL) {
        /* a pool holds leased tokens, counted, never a proportion: a new burst keeps them
         * (up to it); a limit that becomes global (or leaves its fallback bank) starts
         * empty, as its tokens were not leased */
        bool pool = ob.t_hi == 0 && ob.t_lo == (uint64_t)RLDI_POOL_T;
        rldi_bucket_publish_tokens(sl, RLDI_POOL_T, nb.burst, pool ? UINT64_MAX : 0, NULL);
    } else if (*changed) {
        if (RLDI_BANK_ALGO(ob.t_hi) != l->algo)
            LOG_INFO("limit %s: algorithm %s -> %s: it starts full", l->name,
                     rldi_algo_name(RLDI_BANK_ALGO(ob.t_hi)), rldi_algo_name(l->algo));
        rldi_bucket_publish(sl, &s->rings[slot], &nb, true, rldi_limitdef_max_debt(l));
    }
    if (*changed || m->rate_count != l->count || m->rate_period_ns != l->period_ns ||
        m->max_debt_ns != rldi_limitdef_max_debt(l) || m->algo != l->algo ||
        m->align_ns != l->align_ns || m->concurrency != l->concurrency) {
        index_lock(s);
        meta_write(m, l);   /* "60/min" -> "1/s" keeps the bank but shows the new words */
        index_unlock(s);
    }
    return 0;
}

void dseg_limit_delete(rldi_seg *s, uint32_t slot)
{
    rldi_slot *sl = &s->slots[slot];
    char name[RLDI_NAME_MAX + 1];
    if (s->meta[slot].kind == RLDI_KIND_TEMPLATE) {
        /* its keys go with it: their handles say -ESTALE (the template's gen changes), the
         * table is cleared and kept for a template of its size */
        uint32_t ti = s->meta[slot].tmpl;
        rldi_store_release(&sl->gen, (rldi_load_relaxed(&sl->gen) | 1) + 1);
        if (ti < s->hdr->tmpl_count && s->hdr->tmpl[ti].slot == slot) {
            table_clear(s, ti);
            rldi_tmpl r = s->hdr->tmpl[ti];
            if (s->base == tmpl_own_base)
                memcpy(&r, &tmpl_own[ti], TMPL_OWNED);
            r.flags = (uint32_t)(uint8_t)rldi_load_relaxed(&sl->tat) << 8;  /* its last epoch */
            r.slot = TMPL_FREE;
            s->hdr->tmpl[ti].live = 0;
            tmpl_put(s, ti, &r);
        }
        index_lock(s);
        index_remove(s, slot, slot_name(s, slot, name));
        rldi_store_relaxed(&sl->flags, 0);
        s->meta[slot].kind = RLDI_KIND_LIMIT;
        s->hdr->limit_count--;
        index_unlock(s);
        rldi_store_relaxed(&sl->waiters, 0);
        return;
    }
    index_lock(s);
    index_remove(s, slot, slot_name(s, slot, name));
    rldi_store_relaxed(&sl->flags, 0);
    s->hdr->limit_count--;
    index_unlock(s);
    /* gen first, then the version bump: a client that sees the new version sees the new gen.
     * Even: a free slot, which no handle names. */
    rldi_store_release(&sl->gen, (rldi_load_relaxed(&sl->gen) | 1) + 1);
    rldi_bank b;
    rldi_bucket_config(sl, &b);
    rldi_bucket_publish(sl, &s->rings[slot], &b, false, 0);
}

void dseg_limit_reset(rldi_seg *s, uint32_t slot)
{
    rldi_slot *sl = &s->slots[slot];
    if (s->meta[slot].kind == RLDI_KIND_TEMPLATE) {
        /* every key full again: a new epoch makes the keys of the last one stale (their
         * entries are reclaimed as they are met) */
        rldi_bank b;
        rldi_bucket_config(sl, &b);
        rldi_bucket_publish_template(sl, &b, epoch_next((uint8_t)rldi_load_relaxed(&sl->tat)));
        return;
    }
    rldi_bucket_fill(sl, &s->rings[slot]);
}

int dseg_key_reset(rldi_seg *s, uint32_t slot, const void *key, size_t len)
{
    rldi_table t;
    if (rldi_table_of(s, slot, rldi_load_relaxed(&s->slots[slot].gen), &t) < 0)
        return -EINVAL;
    uint64_t hash = rldi_siphash13(s->hdr->key_secret, key, len);
    uint32_t idx, gen;
    int r = rldi_key_find(&t, hash, key, len, rldi_table_epoch(s, &t), &idx, &gen);
    if (r < 0)
        return r;                       /* no such key: it is full already */
    return rldi_key_reset(s, &t, idx, gen, rldi_now_fp());
}

/* FNV-1a over the definition as it resolves (what a change of the file's line changes:
 * rate, burst, debt cap, algorithm, alignment, scope, fallback, a template's kind, keys and
 * overflow).
 * Stored in the segment: kept stable across versions, or overrides are dropped at an
 * upgrade (to the file's setting, the safe side). */
uint64_t dseg_def_hash(const rldi_limitdef *l)
{
    uint64_t v[] = { l->count, l->period_ns, rldi_limitdef_burst(l), rldi_limitdef_max_debt(l),
                     l->algo, l->align_ns, l->scope,
                     (uint64_t)l->fallback_num << 32 | l->fallback_den,
                     l->kind, l->max_keys, (uint64_t)l->overflow_allow << 1 | l->caller_rate };
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        for (int b = 0; b < 64; b += 8) {
            h ^= (v[i] >> b) & 0xff;
            h *= 0x100000001b3ull;
        }
    return h ? h : 1;          /* 0 means none */
}

void dseg_limit_origin(rldi_seg *s, uint32_t slot, uint32_t origin, uint64_t file_hash)
{
    rldi_meta *m = &s->meta[slot];
    index_lock(s);
    rldi_store_relaxed(&m->origin, origin);
    rldi_store_relaxed(&m->file_def_hash, origin == RLDI_ORIGIN_OVERRIDE ? file_hash : 0);
    index_unlock(s);
}

/* ---- whole-segment operations ------------------------------------------------------- */

/* Rebuild the index from the live slots (the caller holds the index seqlock). */
static void index_rebuild_locked(rldi_seg *s)
{
    uint32_t live = 0;
    memset(s->index, 0, (size_t)(s->index_mask + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < s->slot_count; i++) {
        rldi_slot *sl = &s->slots[i];
        if (!(sl->flags & RLDI_SLOT_LIVE))
            continue;
        rldi_meta *m = &s->meta[i];
        const char *why;
        m->name[RLDI_NAME_MAX] = '\0';
        if (rldi_name_check(m->name, &why) < 0 || index_has(s, m->name)) {
            LOG_WARN("segment slot %u has an unusable or duplicate name: dropped", i);
            sl->flags = 0;
            sl->gen = (sl->gen | 1) + 1;     /* free: even */
            continue;
        }
        if (!(sl->gen & 1))                  /* live with a free slot's identity: a new one */
            sl->gen++;
        m->name_hash = rldi_name_hash(m->name, strlen(m->name));
        index_try_insert(s, m->name, i);
        live++;
    }
    s->hdr->limit_count = live;
}

uint32_t dseg_repair(rldi_seg *s)
{
    index_lock(s);
    /* queues lived in the dead daemon's memory: none survive it */
    for (uint32_t i = 0; i < s->slot_count; i++) {
        bool live = (s->slots[i].flags & RLDI_SLOT_LIVE) != 0;
        bool brk = live && s->meta[i].kind == RLDI_KIND_BREAKER;
        bool tmpl = live && s->meta[i].kind == RLDI_KIND_TEMPLATE;
        rldi_store_relaxed(&s->slots[i].waiters, tmpl || brk ? TMPL_WAITERS : 0);
        if (!brk)       /* a breaker's queued counts its openings (breaker.h) */
            rldi_store_relaxed(&s->slots[i].queued, 0);
    }
    for (uint32_t i = 0; i < s->hdr->tmpl_count && i < RLDI_MAX_TEMPLATES; i++) {
        rldi_table t;
        if (rldi_table_get(s, i, &t) < 0)
            continue;
        for (uint64_t j = 0; j < (uint64_t)t.nbuckets * RLDI_KEY_BUCKET; j++)
            if (rldi_load_relaxed(&t.entries[j].waiters))
                rldi_store_relaxed(&t.entries[j].waiters, 0);
        for (uint32_t b = 0; b < t.nbuckets; b++)
            memset((void *)t.buckets[b].queued, 0, sizeof(t.buckets[b].queued));
    }
    index_rebuild_locked(s);
    uint32_t live = (uint32_t)s->hdr->limit_count;
    index_unlock(s);
    return live;
}

/* Limits named one by one in the log per kind of change; the rest are counted (the caller
 * logs the totals): a reload of 100,000 changed limits is one line, not 100,000. */
#define SYNC_LOG_EACH 16

/* "burst N" for GCRA, "sliding window" or "fixed window" (their count is the rate's). */
static void shape_of(uint32_t algo, uint64_t burst, char *buf, size_t len)
{
    if (algo == RLDI_ALGO_GCRA)
        snprintf(buf, len, "burst %llu", (unsigned long long)burst);
    else
        snprintf(buf, len, "%s window", rldi_algo_name(algo));
}

int dseg_sync(rldi_seg *s, const rldi_config *conf, dseg_changes *ch, dseg_keep_fn keep,
              dseg_delete_fn deleting, void *ctx)
{
    char nb[RLDI_NAME_MAX + 1];
    memset(ch, 0, sizeof(*ch));
    /* Capacity first: a sync that cannot complete changes nothing. */
    uint32_t need = 0, free_slots = 0, leaving = 0;
    bool taken[RLDI_MAX_TEMPLATES] = { false };
    uint64_t extra = 0;
    for (size_t i = 0; i < conf->nlimits; i++) {
        const rldi_limitdef *l = &conf->limits[i];
        uint32_t slot, gen, ti;
        bool have = rldi_seg_lookup(s, l->name, &slot, &gen) == 0;
        if (!have)
            need++;
        if (have && s->meta[slot].kind != l->kind)
            return -EINVAL;             /* a limit became a template, or the reverse */
        if (l->kind != RLDI_KIND_TEMPLATE)
            continue;
        /* a template's table: the one it has (of the same size), or one to be found */
        if (have ? rldi_keys_nbuckets(l->max_keys) != s->hdr->tmpl[s->meta[slot].tmpl].nbuckets
                 : tmpl_alloc(s, l, true, taken, &extra, &ti) < 0)
            return -EXFULL;
    }
    for (uint32_t i = 0; i < s->slot_count; i++) {
        if (!(s->slots[i].flags & RLDI_SLOT_LIVE))
            free_slots++;
        else if (!rldi_config_find(conf, slot_name(s, i, nb)) && !(keep && keep(i, ctx)))
            leaving++;
    }
    if (need > free_slots + leaving)
        return -ENOSPC;
    /* odd while the segment is being changed: a daemon killed meanwhile left a partial sync,
     * which the next start completes (it syncs to the file first thing) */
    rldi_store_release(&s->hdr->config_gen, rldi_load_relaxed(&s->hdr->config_gen) | 1);

    for (uint32_t i = 0; i < s->slot_count; i++) {
        if ((s->slots[i].flags & RLDI_SLOT_LIVE) && !rldi_config_find(conf, slot_name(s, i, nb)) &&
            !(keep && keep(i, ctx))) {
            if (ch->deleted < SYNC_LOG_EACH)
                LOG_INFO("limit %s: deleted (not in the configuration)", nb);
            if (deleting)
                deleting(i, ctx);
            dseg_limit_delete(s, i);
            ch->deleted++;
        }
    }
    for (size_t i = 0; i < conf->nlimits; i++) {
        const rldi_limitdef *l = &conf->limits[i];
        uint32_t slot, gen;
        if (rldi_seg_lookup(s, l->name, &slot, &gen) == 0) {
            const rldi_meta *m = &s->meta[slot];
            /* (only a [limit] can be set at run time: a template is the file's) */
            bool overridden = m->origin == RLDI_ORIGIN_OVERRIDE && l->kind == RLDI_KIND_LIMIT;
            if (overridden && m->file_def_hash == dseg_def_hash(l)) {
                /* set at run time since the file's line was this one: the setting stays */
                if (ch->overridden < SYNC_LOG_EACH) {
                    char now_rate[48], file_rate[48];
                    rldi_format_rate(now_rate, sizeof(now_rate), m->rate_count, m->rate_period_ns);
                    rldi_format_rate(file_rate, sizeof(file_rate), l->count, l->period_ns);
                    char now_shape[40], file_shape[40];
                    shape_of(m->algo, m->burst, now_shape, sizeof(now_shape));
                    shape_of(l->algo, rldi_limitdef_burst(l), file_shape, sizeof(file_shape));
                    LOG_INFO("limit %s: keeps its run-time setting %s, %s (the file says %s, "
                             "%s; rlctl revert %s returns to it)", l->name, now_rate, now_shape,
                             file_rate, file_shape, l->name);
                }
                ch->overridden++;
                ch->kept++;
                continue;
            }
            bool changed;
            dseg_limit_change(s, slot, l, &changed);
            if (m->origin != RLDI_ORIGIN_FILE)
                dseg_limit_origin(s, slot, RLDI_ORIGIN_FILE, 0);
            if (overridden) {
                if (ch->dropped < SYNC_LOG_EACH)
                    LOG_INFO("limit %s: the file's line changed: its run-time setting is "
                             "replaced by the file's", l->name);
                ch->dropped++;
            }
            if (changed) {
                if (ch->changed < SYNC_LOG_EACH)
                    LOG_INFO("limit %s: changed, state carried", l->name);
                ch->changed++;
            } else {
                ch->kept++;
            }
        } else if (dseg_limit_create(s, l, &slot) == 0) {
            LOG_DEBUG("limit %s: created in slot %u", l->name, slot);
            ch->created++;
        }
    }
    rldi_store_release(&s->hdr->config_gen, (rldi_load_relaxed(&s->hdr->config_gen) | 1) + 1);
    return 0;
}


/* ---- growing: a larger segment, every state carried, clients following ----------------- */

/* A segment left RETIRING by a daemon that died while growing it: take it back as it was
 * (the sealed limits and keys are unsealed; the new segment died with that daemon). */
static void unseal(rldi_seg *s)
{
    for (uint32_t i = 0; i < s->slot_count; i++) {
        rldi_slot *sl = &s->slots[i];
        uint32_t g = rldi_load_relaxed(&sl->gen);
        if ((rldi_load_relaxed(&sl->flags) & RLDI_SLOT_LIVE) && !(g & 1))
            rldi_store_release(&sl->gen, g - 1);
    }
    for (uint32_t i = 0; i < s->hdr->tmpl_count && i < RLDI_MAX_TEMPLATES; i++) {
        rldi_table t;
        if (rldi_table_get(s, i, &t) == 0)
            for (uint64_t j = 0; j < (uint64_t)t.nbuckets * RLDI_KEY_BUCKET; j++)
                rldi_key_unseal(&t, (uint32_t)j);
    }
}

bool dseg_needs_growth(const rldi_seg *s, const rldi_config *conf)
{
    return conf->max_limits > s->slot_count;
}

int dseg_grow(rldi_seg *s, int *fd, const rldi_paths *p, const rldi_config *conf,
              dseg_grown *out, char *err, size_t errlen)
{
    uint64_t t0 = rldi_mono_ns();
    char nb[RLDI_NAME_MAX + 1];
    memset(out, 0, sizeof(*out));
    /* the new sizes: the file's max_limits (never fewer slots), every template's table at
     * the file's max_keys (one the file lacks, kept at run time, keeps its own) */
    uint32_t slots = conf->max_limits > s->slot_count ? conf->max_limits : s->slot_count;
    uint64_t keys = 0;
    for (uint32_t i = 0; i < s->slot_count; i++) {
        if (!(s->slots[i].flags & RLDI_SLOT_LIVE) || s->meta[i].kind != RLDI_KIND_TEMPLATE)
            continue;
        const rldi_limitdef *l = rldi_config_find(conf, slot_name(s, i, nb));
        uint32_t ti = s->meta[i].tmpl;
        keys += rldi_keys_table_bytes(l && l->kind == RLDI_KIND_TEMPLATE ? l->max_keys
                                      : ti < s->hdr->tmpl_count ? s->hdr->tmpl[ti].max_keys : 1);
    }
    for (size_t i = 0; i < conf->nlimits; i++) {
        uint32_t slot, gen;
        if (conf->limits[i].kind == RLDI_KIND_TEMPLATE &&
            rldi_seg_lookup(s, conf->limits[i].name, &slot, &gen) < 0)
            keys += rldi_keys_table_bytes(conf->limits[i].max_keys);
    }
    dseg_opts o = { .max_limits = slots, .keys_size = keys, .fresh = false, .inherited_fd = -1 };
    rldi_seg n;
    int nfd;
    int r = create(p, &o, &n, &nfd, err, errlen);
    if (r < 0)
        return r;
    n.hdr->created_ns = s->hdr->created_ns;
    n.hdr->config_gen = s->hdr->config_gen & ~(uint64_t)1;

    /* From here every limit is sealed, then copied: a client that meets a sealed one waits
     * for the new segment (RETIRING), and nothing lands in the old one after its copy. */
    rldi_store_release(&s->hdr->state, RLDI_STATE_RETIRING);
    rldi_u128 now = rldi_now_fp();
    for (uint32_t i = 0; i < s->slot_count; i++) {
        rldi_slot *sl = &s->slots[i];
        if (!(rldi_load_relaxed(&sl->flags) & RLDI_SLOT_LIVE))
            continue;
        uint32_t g = rldi_load_relaxed(&sl->gen);
        rldi_store_release(&sl->gen, g + 1);          /* odd -> even: no handle matches */
        rldi_bucket_seal(sl);                         /* and no CAS built before lands */
        memcpy(&n.slots[i], sl, sizeof(*sl));
        n.slots[i].gen = g;                           /* the handles' gen, in the new one */
        memcpy(&n.meta[i], &s->meta[i], sizeof(n.meta[i]));
        memcpy(&n.rings[i], &s->rings[i], sizeof(n.rings[i]));
        out->limits++;
    }
    n.hdr->limit_count = s->hdr->limit_count;
    alloc_cursor = 0;
    /* templates: a table each in the new segment, every key with state moved there */
    for (uint32_t i = 0; i < s->slot_count; i++) {
        if (!(n.slots[i].flags & RLDI_SLOT_LIVE) || n.meta[i].kind != RLDI_KIND_TEMPLATE)
            continue;
        rldi_table ot, nt;
        uint32_t oti = s->meta[i].tmpl, nti;
        if (oti >= s->hdr->tmpl_count || rldi_table_get(s, oti, &ot) < 0)
            continue;
        const rldi_limitdef *l = rldi_config_find(conf, slot_name(s, i, nb));
        rldi_limitdef def;
        memset(&def, 0, sizeof(def));
        def.max_keys = l && l->kind == RLDI_KIND_TEMPLATE ? l->max_keys : s->hdr->tmpl[oti].max_keys;
        uint64_t none = 0;
        if (tmpl_alloc(&n, &def, false, NULL, &none, &nti) < 0)
            continue;                   /* sized above: cannot happen */
        rldi_tmpl *nr = &n.hdr->tmpl[nti];
        const rldi_tmpl *orr = &s->hdr->tmpl[oti];
        nr->gen = n.slots[i].gen;
        nr->max_keys = def.max_keys;
        nr->flags = orr->flags;
        nr->evictions = orr->evictions;
        nr->overflows = orr->overflows;
        nr->slot = i;
        n.meta[i].tmpl = (uint8_t)nti;
        if (rldi_table_get(&n, nti, &nt) < 0)
            continue;
        uint32_t epoch = (uint8_t)n.slots[i].tat;
        for (uint64_t j = 0; j < (uint64_t)ot.nbuckets * RLDI_KEY_BUCKET; j++) {
            rldi_u128 w;
            uint32_t g;
            uint64_t h, id[2];
            if (rldi_key_seal(s, &ot, (uint32_t)j, epoch, now, &w, &g, &h, id) != 1)
                continue;
            if (rldi_key_place(&nt, h, id, w, g) == 0)
                out->keys++;
            else
                out->keys_dropped++;
        }
    }
    /* fault injection for test_grow: a daemon killed after sealing, before the new one is
     * handed out (the next start takes the old one back) */
    if (getenv("RLD_TEST_GROW_ABORT"))
        abort();
    /* the templates of the file not yet made get their tables from dseg_sync */
    index_lock(&n);
    index_rebuild_locked(&n);
    index_unlock(&n);
    tmpl_own_take(&n);          /* ours alone until the keeper hands it out */
    dseg_publish(&n, getpid());
    rldi_store_relaxed(&n.hdr->keeper_pid, rldi_load_relaxed(&s->hdr->keeper_pid));
    /* the keeper hands out the new one, then the old one says so to its clients */
    if ((r = keeper_replace(p->seg_path, nfd, n.slot_count)) < 0)
        LOG_WARN("the segment keeper did not take the grown segment (%s): it is started again",
                 strerror(-r));
    rldi_store_release(&s->hdr->state, RLDI_STATE_RETIRED);
    rldi_seg_close(s);
    close(*fd);
    *s = n;
    *fd = nfd;
    out->keeper_failed = r < 0;
    out->seconds = (double)(rldi_mono_ns() - t0) / 1e9;
    return 0;
}

/* ---- the keys' background sweep -------------------------------------------------------- */

#define SWEEP_BUCKETS 16384u            /* per table per call: 131,072 entries */
#define STUCK_MAX     64u

static uint32_t sweep_cursor[RLDI_MAX_TEMPLATES];
static struct stuck { uint32_t tmpl, idx; rldi_u128 word; bool seen; } stuck[STUCK_MAX];
static uint32_t nstuck;

uint64_t dseg_keys_sweep(rldi_seg *s)
{
    uint64_t evicted = 0;
    rldi_u128 now = rldi_now_fp();
    /* claims seen at the last sweep and still there: their claimer died mid-claim */
    for (uint32_t k = 0; k < nstuck; k++) {
        rldi_table t;
        rldi_u128 w;
        if (rldi_table_get(s, stuck[k].tmpl, &t) == 0 && rldi_key_claimed(&t, stuck[k].idx, &w) &&
            w == stuck[k].word && rldi_key_unclaim(&t, stuck[k].idx, w))
            LOG_WARN("template table %u: a key's insertion left half done (its process died?): "
                     "place %u freed", stuck[k].tmpl, stuck[k].idx);
    }
    nstuck = 0;
    for (uint32_t i = 0; i < s->hdr->tmpl_count && i < RLDI_MAX_TEMPLATES; i++) {
        rldi_table t;
        if (rldi_table_get(s, i, &t) < 0 || t.slot == UINT32_MAX)
            continue;
        uint32_t first = sweep_cursor[i] < t.nbuckets ? sweep_cursor[i] : 0;
        uint32_t n = t.nbuckets - first < SWEEP_BUCKETS ? t.nbuckets - first : SWEEP_BUCKETS;
        evicted += rldi_key_sweep(s, &t, first, n, now);
        for (uint32_t j = first * RLDI_KEY_BUCKET; j < (first + n) * RLDI_KEY_BUCKET; j++) {
            rldi_u128 w;
            if (nstuck < STUCK_MAX && rldi_key_claimed(&t, j, &w))
                stuck[nstuck++] = (struct stuck){ i, j, w, true };
        }
        sweep_cursor[i] = first + n >= t.nbuckets ? 0 : first + n;
    }
    return evicted;
}

void dseg_publish(rldi_seg *s, pid_t pid)
{
    rldi_store_relaxed(&s->hdr->daemon_pid, (uint32_t)pid);
    rldi_store_relaxed(&s->hdr->heartbeat_ns, rldi_mono_ns());
    rldi_store_release(&s->hdr->state, RLDI_STATE_READY);
}

int dseg_heartbeat(rldi_seg *s, pid_t keeper)
{
    /* The header as we made it: a process holding the segment's fd may have written over it
     * or punched a hole in it (zeros). Clients already attached do not look at it again,
     * but new ones would be refused, so it is rebuilt from what only we know. */
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    rldi_seg_geometry_keys(s->slot_count, s->keys_size, &geo);
    rldi_shm_header *h = s->hdr;
    int r = 0;
    if (memcmp(h->magic, RLDI_MAGIC, sizeof(h->magic)) != 0 || h->abi_major != RLDI_ABI_MAJOR ||
        rldi_seg_check(s->base, s->size, true) != 0 || h->slot_count != s->slot_count ||
        (have_secret && (h->key_secret[0] != key_secret[0] || h->key_secret[1] != key_secret[1]))) {
        header_write(h, &geo, RLDI_STATE_INIT);
        secret_restore(h);
        tmpl_restore(s);
        dseg_repair(s);
        rldi_store_relaxed(&h->keeper_pid, (uint32_t)keeper);
        dseg_publish(s, getpid());
        r = 1;
    } else if (tmpl_restore(s)) {
        LOG_WARN("the key tables' records in the segment's header were written over (by a "
                 "client with the segment's fd?): restored as the daemon made them");
        r = 1;
    }
    rldi_store_relaxed(&h->heartbeat_ns, rldi_mono_ns());
    return r;
}

void dseg_detach(rldi_seg *s)
{
    if (!s->base)
        return;
    rldi_store_relaxed(&s->hdr->daemon_pid, 0);
    rldi_seg_close(s);
}
