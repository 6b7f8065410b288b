/*
 * segment.h - mapping and checking an instance's shared-memory segment, reading its name
 * index and enumerating its limits. Used by librld, the daemon (which also writes the
 * segment: daemon/dseg.c) and, through librld, the tools. Layout in layout.h; admission on
 * a limit's state word in bucket.h.
 */
#ifndef RLD_COMMON_SEGMENT_H
#define RLD_COMMON_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

typedef struct rldi_seg {
    void            *base;
    size_t           size;
    rldi_shm_header *hdr;
    rldi_slot       *slots;
    rldi_meta       *meta;
    rldi_ring       *rings;
    uint32_t        *index;
    uint32_t         slot_count;
    uint32_t         index_mask;
    uint8_t         *keys;          /* the key tables (keys.h): header->keys_off */
    uint64_t         keys_size;
} rldi_seg;

/* Offsets and size of a segment holding SLOT_COUNT limits, written into HDR's geometry
 * fields (nothing else). Returns the segment size, 0 if SLOT_COUNT is out of range. */
uint64_t rldi_seg_geometry(uint32_t slot_count, rldi_shm_header *hdr);
/* The same with KEYS_SIZE bytes of key tables after the index (keys.h), page-rounded. */
uint64_t rldi_seg_geometry_keys(uint32_t slot_count, uint64_t keys_size, rldi_shm_header *hdr);
#define RLDI_MAX_KEYS_SIZE (UINT64_C(1) << 40)   /* 1 TiB of key tables: a sanity bound */

/*
 * Check that BASE..BASE+SIZE is a usable segment of our ABI: magic, version, sizes and
 * every offset inside the mapping. 0; RLD_ECORRUPT; RLD_EABI; -EAGAIN not yet READY
 * (only when require_ready).
 */
int rldi_seg_check(const void *base, size_t size, bool require_ready);

/* Fill S's pointers from a checked mapping. */
void rldi_seg_bind(rldi_seg *s, void *base, size_t size);

/*
 * Get the segment from the keeper at SEG_PATH (handout.h), map it read-write and check it.
 * 0, or -ENOENT (no instance), -EACCES, RLD_ECORRUPT, RLD_EABI, RLD_ECLOCK (our monotonic
 * clock is not the daemon's), -EAGAIN (being created), another -errno from the system.
 */
int rldi_seg_open(const char *seg_path, rldi_seg *s);
void rldi_seg_close(rldi_seg *s);

/* FNV-1a, 64 bits: the index's hash of a limit name. */
uint64_t rldi_name_hash(const char *name, size_t len);

/*
 * Find NAME: *slot and *gen of the live limit. Consistent against a daemon writing the
 * index at the same time (seqlock; retries). -ENOENT absent; -EAGAIN the index stayed
 * locked (a daemon died mid-update: its successor repairs it).
 */
int rldi_seg_lookup(const rldi_seg *s, const char *name, uint32_t *slot, uint32_t *gen);

/* Read slot SLOT's name under the seqlock into BUF (RLDI_NAME_MAX + 1 bytes). 0 or -ENOENT
 * (free slot) or -EAGAIN. */
int rldi_seg_name(const rldi_seg *s, uint32_t slot, char *buf);

/*
 * The first live limit in a slot >= *CURSOR: its slot and generation, and *CURSOR moved past
 * it. -ENOENT when there is none. A limit created or deleted during an enumeration may or
 * may not be seen; every other one is seen once.
 */
int rldi_seg_next(const rldi_seg *s, uint32_t *cursor, uint32_t *slot, uint32_t *gen);

/*
 * Has the daemon stopped serving? Its heartbeat (refreshed every second) is older than 3 s,
 * or older than 1.5 s and its pid is gone. Waiters it published are then stale: clients
 * ignore them, and waits degrade to client-side reservations.
 */
#define RLDI_DAEMON_STALE_NS 3000000000ull
bool rldi_seg_daemon_stale(const rldi_seg *s, uint64_t now_ns);

#endif
