/*
 * clock.h - the clocks rld reads, in one place. Limits run on CLOCK_MONOTONIC (integer ns,
 * or 64.32 fixed point for the GCRA arithmetic); CLOCK_REALTIME only labels things for humans.
 */
#ifndef RLD_COMMON_CLOCK_H
#define RLD_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rldi_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in ns: the time base of every state word, deadline and heartbeat. */
static inline uint64_t rldi_mono_ns(void) { return rldi_clock_ns(CLOCK_MONOTONIC); }
/* CLOCK_REALTIME in ns: creation stamps shown to people. */
static inline uint64_t rldi_real_ns(void) { return rldi_clock_ns(CLOCK_REALTIME); }

#endif
