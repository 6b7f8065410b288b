/*
 * segment.c - map, check and read an rld segment (see segment.h).
 *
 * Everything read here may have been written by any process that can open the segment, so
 * every offset and index is checked against the mapping before it is used.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomics.h"
#include "codes.h"
#include "handout.h"

#define LOAD_RELAXED(p) rldi_load_relaxed(p)
#define LOAD_ACQUIRE(p) rldi_load_acquire(p)

static uint32_t pow2_at_least(uint64_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

uint64_t rldi_seg_geometry(uint32_t slot_count, rldi_shm_header *hdr)
{
    return rldi_seg_geometry_keys(slot_count, 0, hdr);
}

uint64_t rldi_seg_geometry_keys(uint32_t slot_count, uint64_t keys_size, rldi_shm_header *hdr)
{
    if (slot_count == 0 || slot_count > RLDI_MAX_SLOTS || keys_size > RLDI_MAX_KEYS_SIZE)
        return 0;
    hdr->header_size = RLDI_HEADER_SIZE;
    hdr->slot_size = RLDI_SLOT_SIZE;
    hdr->meta_size = RLDI_META_SIZE;
    hdr->slot_count = slot_count;
    hdr->index_buckets = pow2_at_least((uint64_t)slot_count * 2);
    hdr->slots_off = RLDI_HEADER_SIZE;
    hdr->meta_off = hdr->slots_off + (uint64_t)slot_count * RLDI_SLOT_SIZE;
    hdr->rings_off = hdr->meta_off + (uint64_t)slot_count * RLDI_META_SIZE;
    hdr->index_off = hdr->rings_off + (uint64_t)slot_count * sizeof(rldi_ring);
    uint64_t end = hdr->index_off + (uint64_t)hdr->index_buckets * sizeof(uint32_t);
    uint64_t page = 4096;
    hdr->keys_off = (end + page - 1) / page * page;
    hdr->keys_size = (keys_size + page - 1) / page * page;
    hdr->segment_size = hdr->keys_off + hdr->keys_size;
    return hdr->segment_size;
}

int rldi_seg_check(const void *base, size_t size, bool require_ready)
{
    const rldi_shm_header *h = base;
    if (size < RLDI_HEADER_SIZE || memcmp(h->magic, RLDI_MAGIC, sizeof(h->magic)) != 0)
        return RLD_ECORRUPT;
    if (h->abi_major != RLDI_ABI_MAJOR)
        return RLD_EABI;
    /* Recompute the geometry from slot_count and the size (the key tables take the rest):
     * any other value is damage or hostility. */
    rldi_shm_header want;
    uint64_t base_size = rldi_seg_geometry(h->slot_count, &want);
    if (base_size == 0 || size < base_size ||
        rldi_seg_geometry_keys(h->slot_count, size - base_size, &want) != size ||
        h->keys_off != want.keys_off || h->keys_size != want.keys_size ||
        h->tmpl_count > RLDI_MAX_TEMPLATES || h->header_size != want.header_size ||
        h->slot_size != want.slot_size || h->meta_size != want.meta_size ||
        h->index_buckets != want.index_buckets || h->slots_off != want.slots_off ||
        h->meta_off != want.meta_off || h->index_off != want.index_off ||
        h->rings_off != want.rings_off ||
        h->segment_size != want.segment_size || h->segment_size != size)
        return RLD_ECORRUPT;
    uint32_t state = LOAD_ACQUIRE(&h->state);
    if ((state == RLDI_STATE_RETIRED || state == RLDI_STATE_RETIRING) && require_ready)
        return -EAGAIN;               /* replaced: the keeper hands out the new one */
    if (state == RLDI_STATE_RETIRING)
        return 0;
    if (state != RLDI_STATE_READY && (require_ready || state != RLDI_STATE_INIT))
        return state == RLDI_STATE_INIT ? -EAGAIN : RLD_ECORRUPT;
    return 0;
}

void rldi_seg_bind(rldi_seg *s, void *base, size_t size)
{
    rldi_shm_header *h = base;
    s->base = base;
    s->size = size;
    s->hdr = h;
    s->slots = (rldi_slot *)((char *)base + h->slots_off);
    s->meta = (rldi_meta *)((char *)base + h->meta_off);
    s->index = (uint32_t *)((char *)base + h->index_off);
    s->rings = (rldi_ring *)((char *)base + h->rings_off);
    s->slot_count = h->slot_count;
    s->index_mask = h->index_buckets - 1;
    s->keys = (uint8_t *)base + h->keys_off;
    s->keys_size = h->keys_size;
}

int rldi_seg_open(const char *seg_path, rldi_seg *s)
{
    memset(s, 0, sizeof(*s));
    int fd;
    rldi_handout h;
    int e = rldi_handout_fetch(seg_path, &fd, &h, NULL, NULL);
    if (e == -ECONNREFUSED)
        e = -ENOENT;                  /* a socket file and nobody behind it: no instance */
    if (e < 0)
        return e;
    rldi_shm_header geo;
    uint64_t base_size = rldi_seg_geometry(h.slot_count, &geo);
    if (h.abi_major != RLDI_ABI_MAJOR || base_size == 0 || h.size < base_size ||
        rldi_seg_geometry_keys(h.slot_count, h.size - base_size, &geo) != h.size) {
        close(fd);                    /* the keeper's word, which a client cannot forge */
        return h.abi_major != RLDI_ABI_MAJOR ? RLD_EABI : RLD_ECORRUPT;
    }
    void *base = mmap(NULL, (size_t)h.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    e = base == MAP_FAILED ? -errno : 0;
    close(fd);                        /* the mapping keeps the segment */
    if (e)
        return e;
    if ((e = rldi_seg_check(base, (size_t)h.size, true)) == 0 &&
        ((const rldi_shm_header *)base)->slot_count != h.slot_count)
        e = RLD_ECORRUPT;             /* the header says otherwise than its keeper */
    if (e < 0) {
        munmap(base, (size_t)h.size);
        return e;
    }
    rldi_seg_bind(s, base, (size_t)h.size);
    return 0;
}

void rldi_seg_close(rldi_seg *s)
{
    if (s->base)
        munmap(s->base, s->size);
    memset(s, 0, sizeof(*s));
}

uint64_t rldi_name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Copy a meta name word by word with atomic loads: the daemon may be rewriting it. */
static void name_copy(const rldi_meta *m, char *buf)
{
    const uint64_t *src = (const uint64_t *)m->name;
    uint64_t words[(RLDI_NAME_MAX + 1 + 7) / 8];
    for (size_t i = 0; i < sizeof(words) / 8; i++)
        words[i] = LOAD_RELAXED(&src[i]);
    memcpy(buf, words, RLDI_NAME_MAX + 1);
    buf[RLDI_NAME_MAX] = '\0';
}

#define SEQ_SPINS 1000000

static int seq_begin(const rldi_seg *s, uint64_t *seq)
{
    for (int i = 0; i < SEQ_SPINS; i++) {
        *seq = LOAD_ACQUIRE(&s->hdr->index_seq);
        if (!(*seq & 1))
            return 0;
        rldi_cpu_relax();
    }
    return -EAGAIN;
}

static bool seq_retry(const rldi_seg *s, uint64_t seq)
{
    rldi_fence_acquire();
    return LOAD_RELAXED(&s->hdr->index_seq) != seq;
}

int rldi_seg_lookup(const rldi_seg *s, const char *name, uint32_t *slot, uint32_t *gen)
{
    size_t len = strlen(name);
    uint64_t hash = rldi_name_hash(name, len);
    char buf[RLDI_NAME_MAX + 1];
    for (int attempt = 0; attempt < SEQ_SPINS; attempt++) {
        uint64_t seq;
        if (seq_begin(s, &seq) < 0)
            return -EAGAIN;
        int found = -ENOENT;
        uint32_t i = (uint32_t)hash & s->index_mask;
        for (uint32_t probes = 0; probes <= s->index_mask; probes++, i = (i + 1) & s->index_mask) {
            uint32_t v = LOAD_RELAXED(&s->index[i]);
            if (v == RLDI_INDEX_EMPTY)
                break;
            if (v == RLDI_INDEX_DELETED || v - 1 >= s->slot_count)
                continue;
            const rldi_meta *m = &s->meta[v - 1];
            if (LOAD_RELAXED(&m->name_hash) != hash)
                continue;
            name_copy(m, buf);
            if (strcmp(buf, name) != 0)
                continue;
            *slot = v - 1;
            *gen = LOAD_RELAXED(&s->slots[v - 1].gen);
            found = (LOAD_RELAXED(&s->slots[v - 1].flags) & RLDI_SLOT_LIVE) ? 0 : -ENOENT;
            break;
        }
        if (!seq_retry(s, seq))
            return found;
    }
    return -EAGAIN;
}

int rldi_seg_name(const rldi_seg *s, uint32_t slot, char *buf)
{
    if (slot >= s->slot_count)
        return -ENOENT;
    for (int attempt = 0; attempt < SEQ_SPINS; attempt++) {
        uint64_t seq;
        if (seq_begin(s, &seq) < 0)
            return -EAGAIN;
        bool live = LOAD_RELAXED(&s->slots[slot].flags) & RLDI_SLOT_LIVE;
        name_copy(&s->meta[slot], buf);
        if (!seq_retry(s, seq))
            return live ? 0 : -ENOENT;
    }
    return -EAGAIN;
}

int rldi_seg_next(const rldi_seg *s, uint32_t *cursor, uint32_t *slot, uint32_t *gen)
{
    for (uint32_t i = *cursor; i < s->slot_count; i++) {
        const rldi_slot *sl = &s->slots[i];
        if (!(LOAD_RELAXED(&sl->flags) & RLDI_SLOT_LIVE))
            continue;
        *slot = i;
        *gen = LOAD_RELAXED(&sl->gen);
        *cursor = i + 1;
        return 0;
    }
    *cursor = s->slot_count;
    return -ENOENT;
}

bool rldi_seg_daemon_stale(const rldi_seg *s, uint64_t now_ns)
{
    uint64_t beat = LOAD_RELAXED(&s->hdr->heartbeat_ns);
    if (now_ns > beat + RLDI_DAEMON_STALE_NS)
        return true;
    /* A beat missed: is the daemon gone (kill -9)? Only asked on this rare path. */
    uint32_t pid = LOAD_RELAXED(&s->hdr->daemon_pid);
    return now_ns > beat + RLDI_DAEMON_STALE_NS / 2 && pid && kill((pid_t)pid, 0) < 0 &&
           errno == ESRCH;
}
