/*
 * seg_mem.h - a segment of 4 slots in memory for the cmocka unit tests of admission
 * (test_window.c, test_sync.c): no daemon, no file. Slot 0 is the limit under test; the
 * wall clock is simulated (wall_off: CLOCK_REALTIME - CLOCK_MONOTONIC as window.c sees it).
 * Header-only and static: each test program has its own (keys_mem.h is the keyed kind).
 */
#ifndef RLD_TEST_SEG_MEM_H
#define RLD_TEST_SEG_MEM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bucket.h"
#include "limitdef.h"
#include "segment.h"
#include "window.h"

static rldi_seg seg;
static void *seg_mem;
static int64_t wall_off;                      /* the simulated CLOCK_REALTIME - MONOTONIC */

static int64_t test_wall_offset(void) { return wall_off; }

static int setup(void **state)
{
    (void)state;
    rldi_shm_header geo;
    memset(&geo, 0, sizeof(geo));
    uint64_t size = rldi_seg_geometry(4, &geo);
    if (posix_memalign(&seg_mem, 4096, size) != 0)
        return -1;
    memset(seg_mem, 0, size);
    memcpy(seg_mem, &geo, sizeof(geo));
    rldi_seg_bind(&seg, seg_mem, size);
    rldi_win_wall_offset = test_wall_offset;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(seg_mem);
    return 0;
}

/* Slot 0 becomes a fresh limit of DEF; its ring first filled with RING_BYTE (a previous
 * tenant's garbage, or 0). */
static rldi_handle seg_mem_limit(const rldi_limitdef *def, int ring_byte)
{
    rldi_bank b;
    assert_int_equal(rldi_limitdef_bank(def, &b), 0);
    rldi_slot *sl = &seg.slots[0];
    memset(sl, 0, sizeof(*sl));
    sl->gen = 1;
    sl->flags = RLDI_SLOT_LIVE;
    memset(&seg.rings[0], ring_byte, sizeof(seg.rings[0]));
    rldi_bucket_publish(sl, &seg.rings[0], &b, false, 0);
    return (rldi_handle){ 0, 1 };
}

#endif
